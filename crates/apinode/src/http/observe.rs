//! What the node shows of itself to tools: `GET /metrics` (the Prometheus
//! text format, docs/monitoring.md "Live metrics"; behind an admin key when
//! `metrics.auth` is `ADMIN_KEY`) and each service's OpenAPI document
//! (`GET /public/api/v1/{service}/openapi.json`). Handlers only (the admin
//! key layer of `/metrics` is added by `server`, which composes the app): the
//! exposition is `prometheus`'s, the document `openapi`'s.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::error::ApiError;
use crate::state::Node;

/// The `/metrics` route (absent when `metrics.enabled` is false); the
/// server puts it behind the admin key layer when `metrics.auth` asks.
pub fn metrics_router(node: &Arc<Node>) -> Router<Arc<Node>> {
    if node.prometheus.is_none() {
        return Router::new();
    }
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(node): State<Arc<Node>>) -> Response {
    let Some(p) = &node.prometheus else { return ApiError::NotFound("metrics are turned off".into()).into_response() };
    let text = p.encode();
    let mut response = text.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    response
}

/// `GET /public/api/v1/{service}/openapi.json`: the service's active
/// endpoints; a service with user keys asks for one, as its predictions do
/// (a refused key is one `authfail` record, under the same throttle).
pub async fn openapi(
    State(node): State<Arc<Node>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path(service): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(found) = node.registry.get(&service) else {
        return ApiError::NotFound(format!("unknown service {service:?}")).into_response();
    };
    if found.auth.requires_key() && node.auth_throttle.refuses(addr.ip()) {
        return ApiError::TooManyRequests.into_response();
    }
    if let Err(failure) =
        found.auth.check(headers.get(header::AUTHORIZATION).map(HeaderValue::as_bytes), &node.key_hasher)
    {
        let error = ApiError::Unauthorized(failure.to_string());
        if node.auth_throttle.failure(addr.ip()) {
            let path = format!("/public/api/v1/{service}/openapi.json");
            let message = error.to_string();
            let record = crate::audit_log::auth_failure(
                &node.config.node_id,
                addr.ip(),
                "GET",
                &path,
                failure.code(),
                &message,
                None,
            );
            if node.record(vec![record]).await.is_err() && node.refuses_unrecorded() {
                return ApiError::RequestNotRecorded.into_response();
            }
        }
        return error.into_response();
    }
    axum::Json(crate::openapi::document(&found)).into_response()
}
