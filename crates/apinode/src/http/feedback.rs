//! `POST /public/api/v1/{service}/{endpoint}/feedback` (docs/monitoring.md
//! "Outcomes in"): outcomes sent back for predictions, authenticated like
//! predictions. The whole batch is checked first (a bad item is a 400
//! naming its index, and nothing of the batch is kept), then each item is
//! one `prediction-feedback` record on `apinode-feedback`, recorded with
//! the service's durability before the answer. An outcome for a request id
//! this node never saw is accepted: the monitor joins later, across nodes.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::ApiError;
use super::predict::Call;
use super::request::{parse_json, read_body};
use crate::audit_log::{self, Outcome};
use crate::ids::{EndpointId, RequestId};
use crate::state::Node;

/// Checks one item; the message names what is wrong (the caller prefixes the index).
fn outcome(item: &Value, now: &str) -> Result<Outcome, String> {
    let Some(o) = item.as_object() else { return Err("must be an object {\"requestId\", \"outcome\"}".into()) };
    if let Some(k) = o.keys().find(|k| !matches!(k.as_str(), "requestId" | "outcome" | "time" | "weight")) {
        return Err(format!("{k}: unknown key (known: requestId, outcome, time, weight)"));
    }
    let request_id = match o.get("requestId").and_then(Value::as_str) {
        Some(id) if RequestId::from_client(id).is_some() => id.to_owned(),
        Some(id) => {
            return Err(format!("requestId: {id:?} is not a request id (1 to 128 characters of [A-Za-z0-9._:-])"));
        }
        None => return Err("requestId: required, the X-Request-Id (or answer requestId) of the prediction".into()),
    };
    let outcome = match o.get("outcome") {
        Some(Value::String(s)) if !s.is_empty() => Value::String(s.clone()),
        Some(Value::Number(n)) if n.as_f64().is_some_and(f64::is_finite) => Value::Number(n.clone()),
        Some(_) => return Err("outcome: must be a class label (non-empty text) or a number".into()),
        None => return Err("outcome: required".into()),
    };
    let time = match o.get("time") {
        None | Some(Value::Null) => now.to_owned(),
        Some(Value::String(t)) => match chrono::DateTime::parse_from_rfc3339(t) {
            Ok(d) => d.with_timezone(&chrono::Utc).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            Err(e) => return Err(format!("time: {t:?} is not an ISO-8601 time with a zone: {e}")),
        },
        Some(_) => return Err("time: must be an ISO-8601 text such as 2026-12-01T10:00:00Z".into()),
    };
    let weight = match o.get("weight") {
        None | Some(Value::Null) => 1.0,
        Some(w) => match w.as_f64().filter(|w| w.is_finite() && *w >= 0.0) {
            Some(w) => w,
            None => return Err("weight: must be a number ≥ 0".into()),
        },
    };
    Ok(Outcome { request_id, outcome, time, weight })
}

/// Every item of a batch, or the first problem with its index.
pub fn outcomes(body: &Value, max_items: usize) -> Result<Vec<Outcome>, ApiError> {
    let Some(items) = body.get("items").and_then(Value::as_array) else {
        return Err(ApiError::InvalidRequest("items: required, an array of {\"requestId\", \"outcome\"}".into()));
    };
    if let Some(k) = body.as_object().and_then(|o| o.keys().find(|k| *k != "items")) {
        return Err(ApiError::InvalidRequest(format!("{k}: unknown key (known: items)")));
    }
    if items.is_empty() {
        return Err(ApiError::InvalidRequest("items: must hold at least one outcome".into()));
    }
    if items.len() > max_items {
        return Err(ApiError::TooManyItems(max_items));
    }
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            outcome(item, &now)
                .map_err(|m| ApiError::InvalidRequest(format!("items[{i}].{m} (nothing of this batch was kept)")))
        })
        .collect()
}

/// `POST .../feedback` → `{"accepted": N}`
pub async fn feedback(State(node): State<Arc<Node>>, mut call: Call, body: Body) -> Response {
    let outcome = async {
        call.body = read_body(body, node.config.max_body_bytes, node.config.limits.body_read_timeout).await?;
        let service = call.authorise(&node)?;
        let known = EndpointId::new(&call.endpoint)
            .ok()
            .is_some_and(|id| service.generations.values().any(|g| g.endpoints.contains_key(&id)));
        if !known {
            return Err(ApiError::NotFound(format!("service {} has no endpoint {:?}", service.id, call.endpoint)));
        }
        call.endpoint_found.store(true, std::sync::atomic::Ordering::Relaxed);
        let body: Value = parse_json(&call.body)?;
        let items = outcomes(&body, node.config.limits.max_items_per_request)?;
        let info = call.info(&node);
        let messages: Vec<audit::Message> =
            items.iter().map(|o| audit_log::feedback_message(&info, service.routing_key.as_ref(), o)).collect();
        let n = messages.len();
        match node.record_at(messages, service.audit_durability).await {
            Err(_) if node.refuses_unrecorded() => Err(ApiError::RequestNotRecorded),
            _ => Ok(Json(json!({"accepted": n})).into_response()),
        }
    }
    .await;
    call.finish(&node, outcome).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_item_refuses_the_batch_naming_its_index() {
        let ok = json!({"items": [{"requestId": "r-1", "outcome": "yes"}, {"requestId": "r-2", "outcome": 3.5,
            "time": "2026-11-30T10:00:00+01:00", "weight": 2}]});
        let got = outcomes(&ok, 10).expect("valid");
        assert_eq!(got[1].time, "2026-11-30T09:00:00.000Z");
        assert_eq!((got[0].weight, got[1].weight), (1.0, 2.0));
        for (bad, named) in [
            (
                json!({"items": [{"requestId": "r-1", "outcome": "yes"}, {"requestId": "r 2", "outcome": "no"}]}),
                "items[1].requestId",
            ),
            (json!({"items": [{"requestId": "r-1"}]}), "items[0].outcome: required"),
            (json!({"items": [{"requestId": "r-1", "outcome": true}]}), "items[0].outcome"),
            (json!({"items": [{"requestId": "r-1", "outcome": 1, "time": "yesterday"}]}), "items[0].time"),
            (json!({"items": [{"requestId": "r-1", "outcome": 1, "weight": -1}]}), "items[0].weight"),
            (json!({"items": [{"requestId": "r-1", "outcome": 1, "colour": 1}]}), "items[0].colour"),
            (json!({"items": []}), "items: must hold"),
            (json!({"outcomes": []}), "items: required"),
        ] {
            let e = outcomes(&bad, 10).unwrap_err().to_string();
            assert!(e.contains(named), "{named} in {e}");
        }
        let three = json!({"items": vec![json!({"requestId": "a", "outcome": 1}); 3]});
        assert!(matches!(outcomes(&three, 2), Err(ApiError::TooManyItems(2))));
    }
}
