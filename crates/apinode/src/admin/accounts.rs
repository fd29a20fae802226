//! Admin handlers for admin keys (list without secrets, create showing the
//! secret once, delete by secret or by id) and for the node's metrics. Key
//! changes follow the admin rule: the audit record (key id and label, never
//! the secret) is on disk before the key file changes.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::keys::AdminKey;
use super::{AdminCall, body_json_or_default, ok, record_change};
use crate::http::error::ApiError;
use crate::state::Node;

fn shown(k: &AdminKey) -> Value {
    json!({"id": k.id, "label": k.label, "description": k.description, "createdBy": k.created_by,
           "createdOn": k.created_on, "expiry": k.expiry})
}

fn store_failed(e: super::keys::KeyStoreError) -> ApiError {
    log::error!("Admin key store: {e}");
    ApiError::Internal("the admin keys could not be saved".into())
}

/// `GET /keys`
pub async fn list_keys(State(node): State<Arc<Node>>) -> Json<Value> {
    Json(Value::Array(node.admin_keys.list().iter().map(shown).collect()))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateKeyBody {
    label: Option<String>,
    description: Option<String>,
    created_by: Option<String>,
    expiry: Option<Value>,
}

/// An expiry as epoch milliseconds, or an RFC 3339 date.
pub fn parse_expiry(v: &Value) -> Result<Option<u64>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => {
            n.as_u64().map(Some).ok_or_else(|| ApiError::InvalidRequest("expiry: must be positive".into()))
        }
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|d| Some(d.timestamp_millis().max(0) as u64))
            .map_err(|e| ApiError::InvalidRequest(format!("expiry: {s:?} is not an RFC 3339 date: {e}"))),
        _ => Err(ApiError::InvalidRequest("expiry: epoch milliseconds or an RFC 3339 date".into())),
    }
}

/// `POST /keys` → the key with its secret in `key` (shown only here).
pub async fn create_key(
    State(node): State<Arc<Node>>,
    Extension(call): Extension<AdminCall>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let body: CreateKeyBody = body_json_or_default(&node, body).await?;
    let expiry = body.expiry.as_ref().map_or(Ok(None), parse_expiry)?;
    let _lock = node.admin_lock.lock().await;
    let (key, secret) = node.admin_keys.prepare(body.label, body.description, body.created_by, expiry);
    record_change(&node, &call, "admin-key-create", json!({"keyId": key.id, "keyLabel": key.label})).await?;
    node.admin_keys.insert(key.clone()).map_err(store_failed)?;
    let mut answer = shown(&key);
    answer["key"] = json!(secret);
    Ok(Json(answer))
}

/// `DELETE /keys/{secret}`
pub async fn delete_key_by_secret(
    State(node): State<Arc<Node>>,
    Extension(call): Extension<AdminCall>,
    Path(secret): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let key = node
        .admin_keys
        .find_by_secret(&secret)
        .ok_or_else(|| ApiError::NotFound("no admin key has this secret".into()))?;
    delete(&node, &call, &key).await
}

/// `DELETE /keys/{id}/key`
pub async fn delete_key_by_id(
    State(node): State<Arc<Node>>,
    Extension(call): Extension<AdminCall>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let key = node
        .admin_keys
        .list()
        .into_iter()
        .find(|k| k.id == id)
        .ok_or_else(|| ApiError::NotFound(format!("no admin key {id:?}")))?;
    delete(&node, &call, &key).await
}

async fn delete(node: &Node, call: &AdminCall, key: &AdminKey) -> Result<Json<Value>, ApiError> {
    let _lock = node.admin_lock.lock().await;
    record_change(node, call, "admin-key-delete", json!({"keyId": key.id, "keyLabel": key.label})).await?;
    node.admin_keys.delete_by_id(&key.id).map_err(store_failed)?;
    Ok(ok())
}

/// `GET /metrics`
pub async fn metrics(State(node): State<Arc<Node>>) -> Json<Value> {
    let mut snapshot = node.metrics.snapshot();
    snapshot["audit"] = node.audit.snapshot();
    snapshot["connections"] = node.serve_stats.snapshot();
    Json(snapshot)
}
