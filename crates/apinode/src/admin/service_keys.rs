//! A service's user API keys through the admin API (docs/security.md "Key
//! management"): list (never a secret nor a hash), create (the secret is
//! shown once; the service switches to `API_KEYS` with its first key) and
//! delete by key id. Each change is an admin change like any other: staged,
//! recorded, committed, reloaded, with no restart. Keys are stored as
//! peppered hashes (`auth::hasher`).

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::services::{change_service_with, find};
use super::{AdminCall, body_json_or_default};
use crate::auth::admin_keys::new_secret;
use crate::http::error::ApiError;
use crate::registry::files::{AuthMethod, UserKeyFile};
use crate::state::Node;

fn shown(k: &UserKeyFile) -> Value {
    json!({"id": k.id, "label": k.label, "createdOn": k.created_on})
}

/// `GET /services/{id}/keys`
pub async fn list(State(node): State<Arc<Node>>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let service = find(&node, &id)?;
    let keys: Vec<Value> = service.file.auth.keys.iter().map(shown).collect();
    Ok(Json(json!({"method": service.file.auth.method, "keys": keys})))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateBody {
    label: Option<String>,
}

/// `POST /services/{id}/keys` `{"label"?}` → the key with its secret in `key` (shown once).
pub async fn create(
    State(node): State<Arc<Node>>,
    Extension(call): Extension<AdminCall>,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    // An empty body is a key without a label.
    let body: CreateBody = body_json_or_default(&node, body).await?;
    if body.label.as_deref().is_some_and(|l| l.len() > 200) {
        return Err(ApiError::InvalidRequest("label: at most 200 characters".into()));
    }
    let secret = new_secret();
    let key = UserKeyFile {
        id: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
        label: body.label,
        hmac_sha256: Some(hex::encode(node.key_hasher.hmac(&secret))),
        sha256: None,
        created_on: Some(chrono::Utc::now().timestamp_millis().max(0) as u64),
    };
    let extra = json!({"keyId": key.id, "keyLabel": key.label});
    let stored = key.clone();
    change_service_with(&node, &call, &id, "service-key-create", extra, move |f| {
        f.auth.method = AuthMethod::ApiKeys;
        f.auth.keys.push(stored);
        Ok(())
    })
    .await?;
    let mut answer = shown(&key);
    answer["key"] = json!(secret);
    Ok(Json(answer))
}

/// `DELETE /services/{id}/keys/{keyId}` (the service stays `API_KEYS`: with
/// no key left, nobody can call it until a key is created).
pub async fn delete(
    State(node): State<Arc<Node>>,
    Extension(call): Extension<AdminCall>,
    Path((id, key)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let service = find(&node, &id)?;
    let Some(found) = service.file.auth.keys.iter().find(|k| k.id == key).cloned() else {
        return Err(ApiError::NotFound(format!("service {id} has no key {key:?}")));
    };
    let extra = json!({"keyId": found.id, "keyLabel": found.label});
    change_service_with(&node, &call, &id, "service-key-delete", extra, move |f| {
        f.auth.keys.retain(|k| k.id != key);
        Ok(())
    })
    .await?;
    Ok(super::ok())
}
