//! The admin API (`/admin/api/...`): admin-key authentication for every
//! route (a missing or wrong key is a 401, a user API key a 403, each with
//! one `authfail` record), and the rule every change follows: validate,
//! stage on disk, write the admin audit record and wait until it is on disk,
//! and only then commit. If the record cannot be written the change is not
//! made (503 `AuditUnavailable`). Handlers live in `services`,
//! `accounts`, `service_keys` and `audit_policy`; archives in `archive`, disk mechanics in `store`; the admin
//! key store is `auth::admin_keys` (re-exported as `keys`).

pub mod accounts;
pub mod archive;
pub mod audit_policy;
pub mod service_keys;
pub mod services;
pub mod store;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde_json::{Value, json};

use crate::audit_log;
use crate::auth::admin_keys::Verdict;
use crate::auth::{AuthFailure, Principal, secret_from_header};
use crate::http::error::ApiError;
use crate::http::request::{parse_json, read_body};
use crate::state::Node;

/// The admin key store lives with the other key stores in `auth`.
pub use crate::auth::admin_keys as keys;

/// An admin call: who makes it, from where (set by the auth middleware).
#[derive(Debug, Clone)]
pub struct AdminCall {
    /// The admin key.
    pub who: Principal,
    /// The caller's address.
    pub client_ip: IpAddr,
}

impl AdminCall {
    /// The name audit messages give the caller: the key's label, else its id.
    pub fn user(&self) -> &str {
        self.who.user()
    }
}

/// The admin routes, to be nested under `/admin/api`.
pub fn router(node: Arc<Node>) -> Router<Arc<Node>> {
    use services::*;
    let svc = "/services/{service}";
    Router::new()
        .route("/services", get(list_services).post(create_service))
        .route("/services/", get(list_services).post(create_service))
        .route(svc, delete(delete_service))
        .route(&format!("{svc}/generations"), get(list_generations))
        .route("/service/{service}/generations", get(list_generations))
        .route(&format!("{svc}/generations/actions/importFromArchive"), post(import_generation))
        .route(&format!("{svc}/generations/{{generation}}/preload"), post(preload_generation))
        .route(&format!("{svc}/actions/enable"), post(enable_service))
        .route(&format!("{svc}/actions/disable"), post(disable_service))
        .route(&format!("{svc}/actions/switchToNewest"), post(switch_to_newest))
        .route(&format!("{svc}/actions/switchTo/{{generation}}"), post(switch_to))
        .route(&format!("{svc}/actions/setMapping"), post(set_mapping))
        .route(&format!("{svc}/metadata"), get(get_metadata).put(put_metadata))
        .route(&format!("{svc}/queries"), get(get_queries).delete(purge_queries))
        .route("/keys", get(accounts::list_keys).post(accounts::create_key))
        .route("/keys/{secret}", delete(accounts::delete_key_by_secret))
        .route("/keys/{id}/key", delete(accounts::delete_key_by_id))
        .route("/metrics", get(accounts::metrics))
        .route(&format!("{svc}/keys"), get(service_keys::list).post(service_keys::create))
        .route(&format!("{svc}/keys/{{key}}"), delete(service_keys::delete))
        .route(&format!("{svc}/auditPolicy"), get(audit_policy::get).put(audit_policy::put))
        .route(&format!("{svc}/auditHash"), post(audit_policy::hash))
        .route("/auditHmacKeys", get(audit_policy::list_keys))
        .route("/auditHmacKeys/actions/rotate", post(audit_policy::rotate))
        .fallback(|| async { ApiError::NotFound("no such admin API path".into()) })
        // Inner: refusals of authenticated calls; outer: authentication.
        .route_layer(axum::middleware::from_fn_with_state(node.clone(), record_refusal))
        .route_layer(axum::middleware::from_fn_with_state(node, require_admin))
}

/// Authenticates every admin call; refusals are answered and recorded here.
pub(crate) async fn require_admin(
    State(node): State<Arc<Node>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    if node.auth_throttle.refuses(addr.ip()) {
        return ApiError::TooManyRequests.into_response();
    }
    let header = request.headers().get(axum::http::header::AUTHORIZATION).cloned();
    match authenticate(&node, header.as_ref()) {
        Ok(who) => {
            request.extensions_mut().insert(AdminCall { who, client_ip: addr.ip() });
            next.run(request).await
        }
        Err((error, reason, key_id)) => {
            if !node.auth_throttle.failure(addr.ip()) {
                // Over the per-address limit: the minute's summary counts it.
                return error.into_response();
            }
            let method = request.method().to_string();
            // A secret in the path (DELETE /keys/{secret}) never reaches a record.
            // The full path as the client sent it, not the one the nest stripped.
            let uri = request.extensions().get::<axum::extract::OriginalUri>().map_or(request.uri(), |o| &o.0);
            let path = crate::auth::redact_path(uri.path(), &node.admin_keys);
            let message = error.to_string();
            let record = audit_log::auth_failure(
                &node.config.node_id,
                addr.ip(),
                &method,
                &path,
                reason,
                &message,
                key_id.as_deref(),
            );
            match node.record(vec![record]).await {
                Err(_) if node.refuses_unrecorded() => ApiError::RequestNotRecorded.into_response(),
                _ => error.into_response(),
            }
        }
    }
}

/// Records an authenticated admin call that was refused (docs/security.md
/// "Admin refusals are audited"): one `generic-failure` record
/// `admin-refused` with the action (the route, never a secret of the path),
/// the key's id and label, the client address and the reason.
async fn record_refusal(
    State(node): State<Arc<Node>>,
    matched: Option<axum::extract::MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let action = format!("{} {}", request.method(), matched.as_ref().map_or("?", |m| m.as_str()));
    let call = request.extensions().get::<AdminCall>().cloned();
    let response = next.run(request).await;
    let status = response.status();
    let Some(call) = call.filter(|_| status.is_client_error() || status.is_server_error()) else {
        return response;
    };
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
    let reason: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let details = json!({"action": action, "status": status.as_u16(), "errorType": reason["errorType"],
                         "reason": reason["message"]});
    let record = audit_log::admin_refused(&node.config.node_id, &call.who, call.client_ip, details);
    let _ = node.record(vec![record]).await;
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

type Refusal = (ApiError, &'static str, Option<String>);

fn authenticate(node: &Node, header: Option<&HeaderValue>) -> Result<Principal, Refusal> {
    let unauthorized = |m: &str| ApiError::Unauthorized(m.to_owned());
    let Some(header) = header else {
        return Err((unauthorized("the admin API requires an admin key (HTTP Basic user name)"), "MISSING_KEY", None));
    };
    let secret = secret_from_header(header.as_bytes()).map_err(|f| match f {
        AuthFailure::MissingKey => (unauthorized("the admin API requires an admin key"), f.code(), None),
        _ => (unauthorized("the Authorization header is malformed"), f.code(), None),
    })?;
    match node.admin_keys.verify(&secret) {
        Verdict::Valid(who) => Ok(who),
        Verdict::Expired(id) => Err((unauthorized("the admin key has expired"), "EXPIRED_KEY", Some(id))),
        Verdict::Unknown => match node.registry.find_user_key(header.as_bytes(), &node.key_hasher) {
            Some((service, key_id)) => Err((
                ApiError::Forbidden(format!("a user API key of service {service} cannot call the admin API")),
                "NOT_ADMIN",
                Some(key_id),
            )),
            None => Err((unauthorized("the admin key is not valid"), AuthFailure::UnknownKey.code(), None)),
        },
    }
}

/// How long an admin change waits for its record before it is refused (and
/// its record cancelled: it will never be written).
pub const CONFIRM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Writes the admin audit record of a change and waits until it is on disk
/// (written and synced, whatever the node's durability).
/// Called after the change is staged and before it is committed.
///
/// # Errors
/// [`ApiError::AuditUnavailable`] when the record is not known to be written.
pub async fn record_change(node: &Node, call: &AdminCall, msg_type: &str, details: Value) -> Result<(), ApiError> {
    let message = audit_log::admin_message(&node.config.node_id, &call.who, call.client_ip, msg_type, details);
    node.audit.record_confirmed(message, CONFIRM_TIMEOUT).await.map_err(|e| {
        log::error!("Refused an admin change ({msg_type}) because its audit record could not be written: {e}");
        ApiError::AuditUnavailable
    })
}

/// `{"ok": true}`
pub fn ok() -> axum::Json<Value> {
    axum::Json(json!({"ok": true}))
}

/// A disk operation of a change failed after validation.
/// An admin request's JSON body, read within the node's body limits.
pub(crate) async fn body_json<T: serde::de::DeserializeOwned>(
    node: &Node,
    body: axum::body::Body,
) -> Result<T, ApiError> {
    parse_json(&admin_body(node, body).await?)
}

/// [`body_json`], where an empty body means `T::default()`.
pub(crate) async fn body_json_or_default<T: serde::de::DeserializeOwned + Default>(
    node: &Node,
    body: axum::body::Body,
) -> Result<T, ApiError> {
    let bytes = admin_body(node, body).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) { Ok(T::default()) } else { parse_json(&bytes) }
}

async fn admin_body(node: &Node, body: axum::body::Body) -> Result<axum::body::Bytes, ApiError> {
    read_body(body, node.config.max_body_bytes, node.config.limits.body_read_timeout).await
}

pub fn io_failed(what: &str) -> impl FnOnce(std::io::Error) -> ApiError + '_ {
    move |e| {
        log::error!("Admin change failed while {what}: {e}");
        ApiError::Internal(format!("the change could not be saved ({what})"))
    }
}
