//! A service's audit policy and the node's audit HMAC keys through the admin
//! API (docs/privacy.md): read and replace a policy (an admin change like
//! any other: validated with every problem named, recorded, committed,
//! reloaded), look up the tokens of a known value (`auditHash`, itself
//! recorded, without the value), list and rotate the HMAC keys (recorded
//! before the new key is stored). Never answers or records a secret or a
//! looked-up value.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::services::{change_service_with, find};
use super::{AdminCall, body_json, io_failed, record_change};
use crate::http::error::ApiError;
use crate::privacy::AuditPolicy;
use crate::privacy::policy::{Action, FieldPath};
use crate::state::Node;

/// Every problem of a policy in one message: `auditPolicy.fields.x: ...; ...`.
pub fn problems_message(found: &[(String, String)]) -> String {
    let named: Vec<String> = found
        .iter()
        .map(
            |(path, msg)| {
                if path.is_empty() { format!("auditPolicy: {msg}") } else { format!("auditPolicy.{path}: {msg}") }
            },
        )
        .collect();
    named.join("; ")
}

/// `GET /services/{id}/auditPolicy` → `{"auditPolicy": <policy or null>}`
pub async fn get(State(node): State<Arc<Node>>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let service = find(&node, &id)?;
    Ok(Json(json!({"auditPolicy": service.file.audit_policy})))
}

/// `PUT /services/{id}/auditPolicy` with the policy as the body (`null`
/// removes it: the trail keeps everything again).
pub async fn put(
    State(node): State<Arc<Node>>,
    Extension(call): Extension<AdminCall>,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let policy: Value = body_json(&node, body).await?;
    if !policy.is_null() {
        AuditPolicy::parse(&policy).map_err(|found| ApiError::InvalidRequest(problems_message(&found)))?;
    }
    let stored = (!policy.is_null()).then(|| policy.clone());
    change_service_with(&node, &call, &id, "service-audit-policy-set", json!({"auditPolicy": policy}), move |f| {
        f.audit_policy = stored;
        Ok(())
    })
    .await?;
    Ok(super::ok())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HashBody {
    field: String,
    value: Value,
}

/// Checks that `field` is HMAC'd by `policy` (a look-up of any other field
/// would find nothing and mislead the investigator).
pub fn check_hashed_field(policy: Option<&Value>, service: &str, field: &str) -> Result<(), String> {
    let path = FieldPath::parse(field).ok_or_else(|| {
        format!("field: {field:?} is not features.<name>, context.<dotted path> or result.explanations")
    })?;
    let action = match policy.map(AuditPolicy::parse) {
        None => None,
        Some(Ok(p)) => p.fields.get(&path).copied(),
        Some(Err(found)) => {
            return Err(format!("service {service} has an invalid audit policy: {}", problems_message(&found)));
        }
    };
    match action {
        Some(Action::Hmac) => Ok(()),
        Some(other) => Err(format!(
            "field: {field} is not HMAC'd by the audit policy of service {service} (it is {other}); its records hold no token"
        )),
        None => Err(format!(
            "field: {field} is not HMAC'd by the audit policy of service {service}; its records hold no token"
        )),
    }
}

/// `POST /services/{id}/auditHash` `{"field", "value"}` → the value's
/// tokens under every key (newest first), to search the trail with.
pub async fn hash(
    State(node): State<Arc<Node>>,
    Extension(call): Extension<AdminCall>,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let body: HashBody = body_json(&node, body).await?;
    let service = find(&node, &id)?;
    check_hashed_field(service.file.audit_policy.as_ref(), &id, &body.field).map_err(ApiError::InvalidRequest)?;
    // A look-up is recorded like a change (who looked up which field of
    // which service), never with the value.
    record_change(&node, &call, "audit-hash-lookup", json!({"serviceId": id, "field": body.field})).await?;
    let tokens = node.hmac_keys.tokens(&body.value);
    Ok(Json(json!({"serviceId": id, "field": body.field, "tokens": tokens})))
}

/// `GET /auditHmacKeys` → `{"current", "keys": [{"id", "createdOn"}]}`
pub async fn list_keys(State(node): State<Arc<Node>>) -> Json<Value> {
    Json(node.hmac_keys.list())
}

/// `POST /auditHmacKeys/actions/rotate` → `{"keyId"}`: a new key becomes
/// current; older keys stay for look-ups.
pub async fn rotate(
    State(node): State<Arc<Node>>,
    Extension(call): Extension<AdminCall>,
) -> Result<Json<Value>, ApiError> {
    let _lock = node.admin_lock.lock().await;
    let key = node.hmac_keys.prepare();
    let id = key.id().to_owned();
    record_change(&node, &call, "audit-hmac-rotate", json!({"keyId": id})).await?;
    node.hmac_keys.commit(key).map_err(io_failed("storing the new audit HMAC key"))?;
    Ok(Json(json!({"keyId": id})))
}
