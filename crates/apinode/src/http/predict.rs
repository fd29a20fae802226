//! The user API handlers: `predict`, `predict-multi` and `predict-simple`.
//! Each one reads the request, finds the service, checks the caller's key,
//! dispatches to a generation and endpoint, hands the records to `scoring`,
//! and shapes Dataiku's answer (`result(s)`, `timing`, `apiContext`) with the
//! request id in the `X-Request-Id` header and in each result. Scoring runs
//! inline when it is a few microseconds, on the blocking pool otherwise.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::request::{
    DispatchBody, MultiBody, PredictBody, explain_settings, parse_json, read_body,
};
use crate::ids::{EndpointId, GenerationId, RequestId, ServiceId};
use crate::model::Model;
use crate::model::explain::ExplainSettings;
use crate::model::features::{InvalidFeature, RawValue};
use crate::model::spec::{ExplanationDefaults, ExplanationMethod};
use crate::node::Node;
use crate::registry::Service;
use crate::registry::dispatch::Dispatch;
use crate::scoring::{Timing, micros, score_records};

/// Batches up to this size are scored on the request's own thread; larger
/// ones, and SHAPLEY explanations, go to the blocking pool so that they
/// cannot stall other connections. Measured (`cargo bench --bench scoring`):
/// a record scores in 0.1-0.3 µs and ICE explains it in about 4 µs, less
/// than the pool's hand-off; SHAPLEY with 100 steps takes about 70 µs.
const INLINE_MAX_RECORDS: usize = 16;

/// The endpoint that answers a request.
struct Target {
    service: ServiceId,
    generation: GenerationId,
    endpoint: EndpointId,
    model: Arc<Model>,
    defaults: ExplanationDefaults,
}

impl Target {
    fn api_context(&self) -> Value {
        json!({"serviceId": self.service, "endpointId": self.endpoint, "serviceGeneration": self.generation})
    }
}

/// `POST /public/api/v1/{service}/{endpoint}/predict`
pub async fn predict(
    State(node): State<Arc<Node>>,
    Path((service, endpoint)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let request_id = request_id(&headers);
    let bytes = read_body(body, node.config.max_body_bytes).await?;
    let service = authorised_service(&node, &service, &headers)?;
    let body: PredictBody = parse_json(&bytes)?;
    let target = resolve(&service, &endpoint, body.dispatch.as_ref())?;
    let explain = explain_settings(body.explanations.as_ref(), &target.defaults)?;
    let raw = target
        .model
        .preprocessor()
        .parse(&body.features)
        .map_err(invalid_feature(None))?;
    let timing = Timing {
        pre_processing: micros(started),
        ..Timing::default()
    };
    let (mut results, timing) = run_scoring(&target, vec![raw], explain, timing).await?;
    let mut result = results.pop().unwrap_or_default();
    result.insert("requestId".into(), json!(request_id));
    Ok(respond(
        &request_id,
        json!({"result": result, "timing": timing, "apiContext": target.api_context()}),
    ))
}

/// `POST /public/api/v1/{service}/{endpoint}/predict-multi`
pub async fn predict_multi(
    State(node): State<Arc<Node>>,
    Path((service, endpoint)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let request_id = request_id(&headers);
    let bytes = read_body(body, node.config.max_body_bytes).await?;
    let service = authorised_service(&node, &service, &headers)?;
    let body: MultiBody = parse_json(&bytes)?;
    if body.items.is_empty() {
        return Err(ApiError::InvalidRequest(
            "items: must hold at least one record".into(),
        ));
    }
    let target = resolve(&service, &endpoint, body.dispatch.as_ref())?;
    let explain = explain_settings(body.explanations.as_ref(), &target.defaults)?;
    let preprocessor = target.model.preprocessor();
    let records = body
        .items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            preprocessor
                .parse(&item.features)
                .map_err(invalid_feature(Some(i)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let timing = Timing {
        pre_processing: micros(started),
        ..Timing::default()
    };
    let (mut results, timing) = run_scoring(&target, records, explain, timing).await?;
    for (i, result) in results.iter_mut().enumerate() {
        result.insert("requestId".into(), json!(request_id.item(i)));
    }
    Ok(respond(
        &request_id,
        json!({"results": results, "timing": timing, "apiContext": target.api_context()}),
    ))
}

/// `GET /public/api/v1/{service}/{endpoint}/predict-simple?feature=value&...`
pub async fn predict_simple(
    State(node): State<Arc<Node>>,
    Path((service, endpoint)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let request_id = request_id(&headers);
    let service = authorised_service(&node, &service, &headers)?;
    let Query(features) = Query::<HashMap<String, String>>::try_from_uri(&uri)
        .map_err(|e| ApiError::InvalidRequest(format!("the query string is not valid: {e}")))?;
    let target = resolve(&service, &endpoint, None)?;
    let explain = explain_settings(None, &target.defaults)?;
    let raw = target
        .model
        .preprocessor()
        .parse_text(&features)
        .map_err(invalid_feature(None))?;
    let timing = Timing {
        pre_processing: micros(started),
        ..Timing::default()
    };
    let (mut results, timing) = run_scoring(&target, vec![raw], explain, timing).await?;
    let mut result = results.pop().unwrap_or_default();
    result.insert("requestId".into(), json!(request_id));
    Ok(respond(
        &request_id,
        json!({"result": result, "timing": timing, "apiContext": target.api_context()}),
    ))
}

/// The client's `X-Request-Id` when it is a reasonable token, else a new one.
fn request_id(headers: &HeaderMap) -> RequestId {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .and_then(RequestId::from_client)
        .unwrap_or_else(RequestId::generate)
}

/// Finds the service and checks the caller's key.
fn authorised_service(
    node: &Node,
    service: &str,
    headers: &HeaderMap,
) -> Result<Arc<Service>, ApiError> {
    let found = node
        .registry
        .get(service)
        .ok_or_else(|| ApiError::NotFound(format!("unknown service {service:?}")))?;
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    found.auth.check(header).map_err(|failure| {
        log::info!("Refused a call to service {service}: {}", failure.code());
        ApiError::Unauthorized(failure.to_string())
    })?;
    Ok(found)
}

/// Dispatches to a generation and finds the endpoint in it.
fn resolve(
    service: &Service,
    endpoint: &str,
    dispatch: Option<&DispatchBody>,
) -> Result<Target, ApiError> {
    let rule = dispatch.map_or(Dispatch::Random, DispatchBody::rule);
    let generation = service.resolve(rule)?;
    let found = EndpointId::new(endpoint)
        .ok()
        .and_then(|id| generation.endpoints.get(&id));
    let Some(ep) = found else {
        return Err(ApiError::NotFound(format!(
            "service {} (generation {}) has no endpoint {endpoint:?}",
            service.id, generation.id
        )));
    };
    Ok(Target {
        service: service.id.clone(),
        generation: generation.id.clone(),
        endpoint: ep.id.clone(),
        model: ep.model.clone(),
        defaults: ep.explanations,
    })
}

fn invalid_feature(item: Option<usize>) -> impl Fn(InvalidFeature) -> ApiError {
    move |e| match item {
        Some(i) => ApiError::InvalidRequest(format!("items[{i}].features: {e}")),
        None => ApiError::InvalidRequest(format!("features: {e}")),
    }
}

/// Scores on this thread when cheap, on the blocking pool otherwise.
async fn run_scoring(
    target: &Target,
    records: Vec<Vec<RawValue>>,
    explain: Option<ExplainSettings>,
    mut timing: Timing,
) -> Result<(Vec<Map<String, Value>>, Timing), ApiError> {
    let failed = |e: crate::model::ScoringError| {
        log::error!(
            "Scoring failed on {}/{} generation {}: {e}",
            target.service,
            target.endpoint,
            target.generation
        );
        ApiError::ScoringFailed(target.endpoint.to_string())
    };
    let shapley = explain.is_some_and(|e| e.method == ExplanationMethod::Shapley);
    if !shapley && records.len() <= INLINE_MAX_RECORDS {
        let results = score_records(&target.model, &records, explain.as_ref(), &mut timing)
            .map_err(failed)?;
        return Ok((results, timing));
    }
    let model = target.model.clone();
    let queued = Instant::now();
    let (results, timing) = tokio::task::spawn_blocking(move || {
        timing.wait = micros(queued);
        (
            score_records(&model, &records, explain.as_ref(), &mut timing),
            timing,
        )
    })
    .await
    .map_err(|e| {
        log::error!(
            "A scoring task of {}/{} panicked: {e}",
            target.service,
            target.endpoint
        );
        ApiError::ScoringFailed(target.endpoint.to_string())
    })?;
    Ok((results.map_err(failed)?, timing))
}

fn respond(request_id: &RequestId, body: Value) -> Response {
    let mut response = Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(request_id.as_str()) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}
