//! The user API handlers: `predict`, `predict-multi` and `predict-simple`.
//! Each one reads the request into a [`Call`], finds the service, checks the
//! caller's key, dispatches to a generation and endpoint, hands the records
//! to `scoring`, and answers in Dataiku's shape (`result(s)`, `timing`,
//! `apiContext`) with the request id in `X-Request-Id` and in each result.
//! Every outcome is recorded exactly once: one query record per scored
//! record, or one failure (or authfail) record for a refused call.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use audit::Topic;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::request::{
    DispatchBody, ExplanationsBody, ItemBody, MultiBody, PredictBody, explain_settings, parse_json, read_body,
};
use crate::audit_log::{self, CallInfo, Fields, Scored};
use crate::auth::Principal;
use crate::ids::{EndpointId, GenerationId, RequestId, ServiceId};
use crate::model::Model;
use crate::model::explain::ExplainSettings;
use crate::model::features::InvalidFeature;
use crate::model::spec::{ExplanationDefaults, ExplanationMethod};
use crate::privacy::apply::View;
use crate::registry::Service;
use crate::registry::dispatch::Dispatch;
use crate::scoring::{Timing, micros, score_records};
use crate::state::Node;

/// Batches up to this size are scored on the request's own thread; larger
/// ones, and SHAPLEY explanations, go to the blocking pool so that they
/// cannot stall other connections. Measured (`cargo bench --bench scoring`):
/// a record scores in 0.1-0.3 µs and ICE explains it in about 4 µs, less
/// than the pool's hand-off; SHAPLEY with 100 steps takes about 70 µs.
const INLINE_MAX_RECORDS: usize = 16;

/// Bodies up to this size are parsed on the request's own thread; larger
/// ones on the blocking pool.
const INLINE_BODY_BYTES: usize = 64 << 10;

/// One prediction call, from arrival to answer (an extractor: the path, the
/// client's address and the headers it needs).
pub struct Call {
    started: Instant,
    request_id: RequestId,
    /// Whether the client's `X-Request-Id` was invalid (refused or replaced).
    id_problem: IdProblem,
    client_ip: IpAddr,
    path: String,
    service: String,
    pub(super) endpoint: String,
    caller: Option<Principal>,
    /// The `Authorization` header, checked against the service's keys.
    authorization: Option<HeaderValue>,
    /// Why authentication failed, when it did.
    auth_failure: Option<&'static str>,
    /// Whether that failure is recorded one by one (within the per-address
    /// limit of `authFailuresPerMinute`).
    auth_failure_recorded: bool,
    /// Whether the service exists (only then is the call counted in metrics).
    service_found: bool,
    /// Whether the endpoint was resolved (else the call counts under `*`).
    pub(super) endpoint_found: std::sync::atomic::AtomicBool,
    /// Microseconds spent scoring (compute-resource-usage).
    scoring_us: std::sync::atomic::AtomicU64,
    /// The generation that answered, once resolved.
    generation: std::sync::OnceLock<String>,
    /// The request body, kept for a failure record.
    pub(super) body: Bytes,
}

/// What was wrong with the client's `X-Request-Id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IdProblem {
    None,
    /// Refused (`requestIds: STRICT`, the default).
    Invalid,
    /// Replaced by a fresh id (`requestIds: REPLACE`).
    Replaced,
}

/// The endpoint that answers a request.
struct Target {
    service: ServiceId,
    generation: GenerationId,
    endpoint: EndpointId,
    routing_key: Option<audit::RoutingKey>,
    model: Arc<Model>,
    defaults: ExplanationDefaults,
    /// The service's audit policy (docs/privacy.md).
    policy: Option<Arc<crate::privacy::AuditPolicy>>,
}

/// Dataiku's answer: `result` (or `results`), `timing`, `apiContext`.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Answer<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    results: Option<&'a [Map<String, Value>]>,
    timing: &'a Timing,
    api_context: ApiContext<'a>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiContext<'a> {
    service_id: &'a str,
    endpoint_id: &'a str,
    service_generation: &'a str,
}

/// What a request asks to score.
struct Request {
    items: Vec<ItemBody>,
    explanations: Option<ExplanationsBody>,
    dispatch: Option<DispatchBody>,
    multi: bool,
}

/// `POST /public/api/v1/{service}/{endpoint}/predict`
pub async fn predict(State(node): State<Arc<Node>>, mut call: Call, body: Body) -> Response {
    let outcome = async {
        call.body = read_body(body, node.config.max_body_bytes, node.config.limits.body_read_timeout).await?;
        let service = call.authorise(&node)?;
        let body: PredictBody = parse_json(&call.body)?;
        let items = vec![ItemBody { features: body.features, context: body.context }];
        let request = Request { items, explanations: body.explanations, dispatch: body.dispatch, multi: false };
        call.score(&node, &service, request).await
    }
    .await;
    call.finish(&node, outcome).await
}

/// `POST /public/api/v1/{service}/{endpoint}/predict-multi`
pub async fn predict_multi(State(node): State<Arc<Node>>, mut call: Call, body: Body) -> Response {
    let outcome = async {
        call.body = read_body(body, node.config.max_body_bytes, node.config.limits.body_read_timeout).await?;
        let service = call.authorise(&node)?;
        // A large body is parsed off the async workers.
        let body: MultiBody = if call.body.len() <= INLINE_BODY_BYTES {
            parse_json(&call.body)?
        } else {
            let bytes = call.body.clone();
            tokio::task::spawn_blocking(move || parse_json(&bytes))
                .await
                .map_err(|e| ApiError::Internal(format!("parsing the body failed: {e}")))??
        };
        if body.items.is_empty() {
            return Err(ApiError::InvalidRequest("items: must hold at least one record".into()));
        }
        if body.items.len() > node.config.limits.max_items_per_request {
            return Err(ApiError::TooManyItems(node.config.limits.max_items_per_request));
        }
        let request =
            Request { items: body.items, explanations: body.explanations, dispatch: body.dispatch, multi: true };
        call.score(&node, &service, request).await
    }
    .await;
    call.finish(&node, outcome).await
}

/// `GET /public/api/v1/{service}/{endpoint}/predict-simple?feature=value&...`
/// Every value is text; numeric features parse it.
pub async fn predict_simple(State(node): State<Arc<Node>>, mut call: Call, uri: Uri) -> Response {
    call.body = Bytes::from(uri.query().unwrap_or_default().to_owned());
    let outcome = async {
        let service = call.authorise(&node)?;
        let Query(query) = Query::<HashMap<String, String>>::try_from_uri(&uri)
            .map_err(|e| ApiError::InvalidRequest(format!("the query string is not valid: {e}")))?;
        let features: Map<String, Value> = query.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
        let items = vec![ItemBody { features, context: None }];
        call.score(&node, &service, Request { items, explanations: None, dispatch: None, multi: false }).await
    }
    .await;
    call.finish(&node, outcome).await
}

impl FromRequestParts<Arc<Node>> for Call {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<Node>) -> Result<Call, Response> {
        let Path((service, endpoint)) =
            Path::<(String, String)>::from_request_parts(parts, state).await.map_err(IntoResponse::into_response)?;
        let client_ip =
            parts.extensions.get::<ConnectInfo<SocketAddr>>().map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
        // The client's X-Request-Id must be a valid token: the caller joins
        // on it. An invalid one is refused (the call then gets a fresh id for
        // its failure record), or replaced and said so with `requestIds: REPLACE`.
        let (request_id, id_problem) = match parts.headers.get("x-request-id") {
            None => (RequestId::generate(), IdProblem::None),
            Some(v) => match v.to_str().ok().and_then(RequestId::from_client) {
                Some(id) => (id, IdProblem::None),
                None if state.config.limits.replace_request_ids => (RequestId::generate(), IdProblem::Replaced),
                None => (RequestId::generate(), IdProblem::Invalid),
            },
        };
        Ok(Call {
            started: Instant::now(),
            request_id,
            id_problem,
            client_ip,
            path: parts.uri.path().to_owned(),
            service,
            endpoint,
            caller: None,
            authorization: parts.headers.get(axum::http::header::AUTHORIZATION).cloned(),
            auth_failure: None,
            auth_failure_recorded: false,
            service_found: false,
            endpoint_found: std::sync::atomic::AtomicBool::new(false),
            scoring_us: std::sync::atomic::AtomicU64::new(0),
            generation: std::sync::OnceLock::new(),
            body: Bytes::new(),
        })
    }
}

impl Call {
    /// The body a failure record keeps: under the service's audit policy,
    /// when the service is known (docs/privacy.md).
    fn recorded_body(&self, node: &Node) -> Option<Vec<u8>> {
        let policy = node.registry.get(&self.service).and_then(|s| s.audit_policy.clone());
        match policy {
            None => Some(self.body.to_vec()),
            Some(p) => crate::privacy::apply::body(&p, &node.hmac_keys, &self.body).map(String::into_bytes),
        }
    }

    pub(super) fn info<'a>(&'a self, node: &'a Node) -> CallInfo<'a> {
        CallInfo {
            node_id: &node.config.node_id,
            request_id: &self.request_id,
            client_ip: self.client_ip,
            service_id: &self.service,
            endpoint_id: &self.endpoint,
            caller: self.caller.as_ref(),
        }
    }

    /// Checks the request id, finds the service and checks the caller's key
    /// (an address over its `authFailuresPerMinute` gets 429 first).
    pub(super) fn authorise(&mut self, node: &Node) -> Result<Arc<Service>, ApiError> {
        if self.id_problem == IdProblem::Invalid {
            return Err(ApiError::InvalidRequest(
                "X-Request-Id: must be 1 to 128 characters of [A-Za-z0-9._:-] \
                 (or set limits.requestIds to REPLACE to have invalid ids replaced)"
                    .into(),
            ));
        }
        let found = node
            .registry
            .get(&self.service)
            .ok_or_else(|| ApiError::NotFound(format!("unknown service {:?}", self.service)))?;
        self.service_found = true;
        if found.auth.requires_key() && node.auth_throttle.refuses(self.client_ip) {
            return Err(ApiError::TooManyRequests);
        }
        match found.auth.check(self.authorization.as_ref().map(HeaderValue::as_bytes), &node.key_hasher) {
            Ok(key) => self.caller = key.map(Principal::from),
            Err(failure) => {
                self.auth_failure = Some(failure.code());
                self.auth_failure_recorded = node.auth_throttle.failure(self.client_ip);
                return Err(ApiError::Unauthorized(failure.to_string()));
            }
        }
        Ok(found)
    }

    /// Dispatches, scores every item, records one query per item, answers.
    async fn score(&self, node: &Arc<Node>, service: &Service, request: Request) -> Result<Response, ApiError> {
        let target = resolve(service, &self.endpoint, request.dispatch.as_ref())?;
        self.endpoint_found.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = self.generation.set(target.generation.as_str().to_owned());
        let explain = explain_settings(request.explanations.as_ref(), &target.defaults)?;
        let shapley = explain.is_some_and(|e| e.method == ExplanationMethod::Shapley);
        let inline = !shapley && request.items.len() <= INLINE_MAX_RECORDS;
        let job = ScoreJob {
            info: OwnedInfo {
                node_id: node.config.node_id.clone(),
                request_id: self.request_id.clone(),
                client_ip: self.client_ip,
                service_id: self.service.clone(),
                endpoint_id: self.endpoint.clone(),
                caller: self.caller.clone(),
            },
            target,
            explain,
            items: request.items,
            multi: request.multi,
            dispatch: request.dispatch.as_ref().and_then(|d| serde_json::to_value(d).ok()),
            started: self.started,
            log_queries: node.audit.wants(Topic::ApinodeQuery),
        };
        // Reading the features, scoring, one record per item and the answer
        // are heavy for a batch: all of it runs on the blocking pool then,
        // never on the async workers (docs/security.md).
        let (finished, scoring_us) = if inline {
            job.run(node, None)?
        } else {
            let node = node.clone();
            let queued = Instant::now();
            let endpoint = job.target.endpoint.to_string();
            tokio::task::spawn_blocking(move || job.run(&node, Some(queued))).await.map_err(|e| {
                log::error!("A scoring task of endpoint {endpoint} panicked: {e}");
                ApiError::ScoringFailed(endpoint)
            })??
        };
        self.scoring_us.store(scoring_us, std::sync::atomic::Ordering::Relaxed);
        if node.record_at(finished.messages, service.audit_durability).await.is_err() && node.refuses_unrecorded() {
            return Err(ApiError::RequestNotRecorded);
        }
        if let Some(service_id) = finished.ring_updated {
            node.entity(crate::entity::Entity::Queries(&service_id), "UPDATE", "apinode", json!({})).await;
        }
        let mut response = Response::new(Body::from(finished.answer));
        response.headers_mut().insert(axum::http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(response)
    }

    /// Records a refusal and turns the outcome into the answer.
    pub(super) async fn finish(self, node: &Node, outcome: Result<Response, ApiError>) -> Response {
        let endpoint =
            if self.endpoint_found.load(std::sync::atomic::Ordering::Relaxed) { self.endpoint.as_str() } else { "*" };
        if self.service_found {
            let scoring_us = self.scoring_us.load(std::sync::atomic::Ordering::Relaxed);
            node.metrics.record(&self.service, endpoint, outcome.is_ok(), micros(self.started), scoring_us);
        }
        let mut response = match outcome {
            Ok(response) => response,
            Err(error) => {
                let (status, error_type) = error.status_and_type();
                let message = error.to_string();
                let record = match self.auth_failure {
                    // Over the per-address limit: only the minute's summary counts it.
                    Some(_) if !self.auth_failure_recorded => None,
                    Some(reason) => Some(audit_log::auth_failure(
                        &node.config.node_id,
                        self.client_ip,
                        "POST",
                        &self.path,
                        reason,
                        &message,
                        None,
                    )),
                    None if matches!(error, ApiError::TooManyRequests) => None,
                    None => {
                        let body = self.recorded_body(node);
                        Some(audit_log::failure(
                            &self.info(node),
                            status.as_u16(),
                            error_type,
                            &message,
                            body.as_deref(),
                        ))
                    }
                };
                match node.record(record.into_iter().collect()).await {
                    Err(_) if node.refuses_unrecorded() => ApiError::RequestNotRecorded.into_response(),
                    _ => error.into_response(),
                }
            }
        };
        if let Ok(v) = HeaderValue::from_str(self.request_id.as_str()) {
            response.headers_mut().insert("x-request-id", v);
        }
        if self.id_problem == IdProblem::Replaced {
            response.headers_mut().insert("x-request-id-replaced", HeaderValue::from_static("true"));
        }
        // Known services only: a caller cannot grow the label sets.
        if self.service_found
            && let Some(p) = &node.prometheus
        {
            p.call(
                &self.service,
                endpoint,
                self.generation.get().map_or("-", String::as_str),
                self.path.rsplit('/').next().unwrap_or_default(),
                response.status().as_u16(),
                self.started.elapsed().as_secs_f64(),
            );
        }
        if let Some(caller) = self.caller {
            response.extensions_mut().insert(caller);
        }
        response
    }
}

/// The caller's side of a prediction call, owned (it may cross to the
/// blocking pool).
struct OwnedInfo {
    node_id: String,
    request_id: RequestId,
    client_ip: IpAddr,
    service_id: String,
    endpoint_id: String,
    caller: Option<Principal>,
}

/// What a call asks to score, owned (it may cross to the blocking pool).
struct ScoreJob {
    info: OwnedInfo,
    target: Target,
    explain: Option<ExplainSettings>,
    items: Vec<ItemBody>,
    multi: bool,
    dispatch: Option<Value>,
    started: Instant,
    log_queries: bool,
}

impl ScoreJob {
    /// Reads every item's features, scores them, and makes the records and
    /// the answer; `queued` is when it was handed to the blocking pool.
    fn run(self, node: &Node, queued: Option<Instant>) -> Result<(Finished, u64), ApiError> {
        let preprocessor = self.target.model.preprocessor();
        let records = self
            .items
            .iter()
            .enumerate()
            .map(|(i, item)| preprocessor.parse(&item.features).map_err(invalid_feature(self.multi.then_some(i))))
            .collect::<Result<Vec<_>, _>>()?;
        let mut timing = Timing { pre_processing: micros(self.started), ..Timing::default() };
        if let Some(q) = queued {
            timing.wait = micros(q);
        }
        let target = &self.target;
        let results = score_records(&target.model, &records, self.explain.as_ref(), &mut timing).map_err(|e| {
            log::error!(
                "Scoring failed on {}/{} generation {}: {e}",
                target.service,
                target.endpoint,
                target.generation
            );
            ApiError::ScoringFailed(target.endpoint.to_string())
        })?;
        let scoring_us = timing.preparation + timing.prediction + timing.post_processing;
        let scoring = Scoring {
            info: self.info,
            target: self.target,
            items: self.items,
            multi: self.multi,
            dispatch: self.dispatch,
            results,
            timing,
            log_queries: self.log_queries,
        };
        Ok((scoring.finish(node), scoring_us))
    }
}

/// What scoring produced, to be turned into records and an answer.
struct Scoring {
    info: OwnedInfo,
    target: Target,
    items: Vec<ItemBody>,
    multi: bool,
    dispatch: Option<Value>,
    results: Vec<Map<String, Value>>,
    timing: Timing,
    log_queries: bool,
}

/// Records and answer of a scored call.
struct Finished {
    messages: Vec<audit::Message>,
    /// The service whose recent-query ring asks for an entity UPDATE.
    ring_updated: Option<String>,
    answer: Vec<u8>,
}

impl Scoring {
    /// One query record per item (kept by the ring too), and the answer
    /// serialised straight from borrowed parts (no intermediate JSON tree).
    fn finish(mut self, node: &Node) -> Finished {
        let i = &self.info;
        let info = CallInfo {
            node_id: &i.node_id,
            request_id: &i.request_id,
            client_ip: i.client_ip,
            service_id: &i.service_id,
            endpoint_id: &i.endpoint_id,
            caller: i.caller.as_ref(),
        };
        let target = &self.target;
        let mut messages = Vec::with_capacity(if self.log_queries { self.results.len() } else { 0 });
        let mut ring_updated = false;
        for (n, (item, result)) in self.items.iter().zip(self.results.iter_mut()).enumerate() {
            let id = if self.multi { i.request_id.item(n) } else { i.request_id.clone() };
            result.insert("requestId".into(), json!(id));
            // The service's audit policy: sampled out records go nowhere
            // (no file, no target, no ring); the others keep what it says.
            let policy = target.policy.as_deref();
            if policy.is_some_and(|p| !p.keeps(id.as_str())) {
                continue;
            }
            let applied =
                policy.map(|p| crate::privacy::apply::query(p, &node.hmac_keys, item.context.as_ref(), result));
            let scored = Scored {
                request_id: &id,
                generation: target.generation.as_str(),
                routing_key: target.routing_key.as_ref(),
                features: match policy {
                    Some(p) => Fields::Protected(View::features(p, &node.hmac_keys, &item.features)),
                    None => Fields::Plain(&item.features),
                },
                context: match &applied {
                    Some(a) => a.context.map(Fields::Protected),
                    None => item.context.as_ref().map(Fields::Plain),
                },
                dispatch: self.dispatch.as_ref(),
                result: applied.as_ref().map_or(&*result, |a| &*a.result),
                timing: &self.timing,
                sampling_rate: policy.map(|p| p.rate).filter(|r| *r < 1.0),
            };
            let message = audit_log::query_message(&info, &scored);
            ring_updated |= node.queries.push(target.service.as_str(), message.text.clone());
            if self.log_queries {
                messages.push(message);
            }
        }
        if let Some(p) = &node.prometheus {
            let ignored = self.results.iter().filter(|r| r.get("ignored") == Some(&Value::Bool(true))).count() as u64;
            let all = self.results.len() as u64;
            p.scored(
                target.service.as_str(),
                target.endpoint.as_str(),
                target.generation.as_str(),
                all - ignored,
                ignored,
            );
        }
        let api_context = ApiContext {
            service_id: target.service.as_str(),
            endpoint_id: target.endpoint.as_str(),
            service_generation: target.generation.as_str(),
        };
        let answer = if self.multi {
            Answer { result: None, results: Some(&self.results), timing: &self.timing, api_context }
        } else {
            Answer { result: self.results.first(), results: None, timing: &self.timing, api_context }
        };
        let answer = serde_json::to_vec(&answer).unwrap_or_else(|e| {
            log::error!("An answer could not be serialised: {e}");
            br#"{"errorType":"Internal","message":"the answer could not be serialised"}"#.to_vec()
        });
        Finished { messages, ring_updated: ring_updated.then(|| target.service.to_string()), answer }
    }
}

/// Dispatches to a generation and finds the endpoint in it.
fn resolve(service: &Service, endpoint: &str, dispatch: Option<&DispatchBody>) -> Result<Target, ApiError> {
    let rule = dispatch.map_or(Dispatch::Random, DispatchBody::rule);
    let generation = service.resolve(rule)?;
    let found = EndpointId::new(endpoint).ok().and_then(|id| generation.endpoints.get(&id));
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
        routing_key: service.routing_key.clone(),
        model: ep.model.clone(),
        defaults: ep.explanations,
        policy: service.audit_policy.clone(),
    })
}

fn invalid_feature(item: Option<usize>) -> impl Fn(InvalidFeature) -> ApiError {
    move |e| match item {
        Some(i) => ApiError::InvalidRequest(format!("items[{i}].features: {e}")),
        None => ApiError::InvalidRequest(format!("features: {e}")),
    }
}
