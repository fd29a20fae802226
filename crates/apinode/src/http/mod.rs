//! The HTTP server: the router (user API, `/isAlive/`), the headers every
//! response carries (`DSS-API-Version`, `DSS-Version`), JSON answers for
//! unknown routes and methods, the `allcalls` record of every call (when that
//! logger is on), and serving with graceful shutdown. Handlers live in their
//! own files and map domain results through the one error table of `error`.

pub mod error;
pub mod feedback;
pub mod observe;
pub mod predict;
pub mod request;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::net::TcpListener;

use crate::auth::Principal;
use crate::state::Node;
use error::ApiError;

/// `DSS-API-Version` of every response.
pub const DSS_API_VERSION: &str = "1";

/// The file whose presence makes `/isAlive/` answer 503.
pub const NOT_ALIVE_FILE: &str = "apinode-not-alive.txt";

/// The whole HTTP API of a node: the user API here, the admin API
/// (`admin`, built by the admin module) nested under `/admin/api`, and
/// `metrics` (`observe::metrics_router`, with the layers the server adds).
pub fn router(node: Arc<Node>, admin: Router<Arc<Node>>, metrics: Router<Arc<Node>>) -> Router {
    let user = "/public/api/v1/{service}/{endpoint}";
    Router::new()
        .route(&format!("{user}/predict"), post(predict::predict))
        .route(&format!("{user}/predict-multi"), post(predict::predict_multi))
        .route(&format!("{user}/predict-simple"), get(predict::predict_simple))
        .route(&format!("{user}/feedback"), post(feedback::feedback))
        .route("/public/api/v1/{service}/openapi.json", get(observe::openapi))
        .merge(metrics)
        .route("/isAlive", get(is_alive))
        .route("/isAlive/", get(is_alive))
        .nest("/admin/api", admin)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(limit_headers))
        .layer(axum::middleware::map_response(add_version_headers))
        .layer(axum::middleware::from_fn_with_state(node.clone(), record_call))
        .with_state(node)
}

/// Serves `app` on `listener` until `shutdown` completes, with the node's
/// limits (`serve`), then stops gracefully within `stopGraceSeconds`.
///
/// # Errors
/// An I/O error of the listener.
pub async fn serve(
    listener: TcpListener,
    node: &Node,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let l = &node.config.limits;
    let limits = ::serve::ServeLimits {
        max_connections: l.max_connections,
        header_read_timeout: l.header_read_timeout,
        idle_timeout: l.idle_timeout,
        stop_grace: l.stop_grace,
    };
    ::serve::serve(listener, app, limits, node.tls.clone(), node.serve_stats.clone(), shutdown).await
}

async fn is_alive(State(node): State<Arc<Node>>) -> Response {
    if node.data_dir.join(NOT_ALIVE_FILE).exists() {
        ApiError::ServiceUnavailable(format!("the node is marked not alive ({NOT_ALIVE_FILE} is present)"))
            .into_response()
    } else if node.refuses_unrecorded() && node.audit.failing() {
        // A load balancer takes the node out while it cannot record; it
        // comes back by itself once writes succeed (docs/integrity.md).
        ApiError::ServiceUnavailable("audit records cannot be written and auditLog.onWriteFailure is REFUSE".into())
            .into_response()
    } else {
        axum::Json(json!({"alive": true})).into_response()
    }
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no such path: {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed(method.to_string())
}

/// Writes one `allcalls` record per HTTP call when that logger is on.
async fn record_call(
    State(node): State<Arc<Node>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    if !node.audit.wants(audit::Topic::ApiCalls) {
        return next.run(request).await;
    }
    let started = Instant::now();
    let method = request.method().clone();
    // A secret in the path (DELETE /admin/api/keys/{secret}) never reaches a record.
    let path = crate::auth::redact_path(request.uri().path(), &node.admin_keys).into_owned();
    let response = next.run(request).await;
    let key = response.extensions().get::<Principal>().map(|k| k.key_id.as_str());
    let duration = crate::scoring::micros(started);
    let status = response.status().as_u16();
    let record =
        crate::audit_log::api_call(&node.config.node_id, method.as_str(), &path, status, duration, addr.ip(), key);
    match node.record(vec![record]).await {
        Err(_) if node.refuses_unrecorded() => ApiError::RequestNotRecorded.into_response(),
        _ => response,
    }
}

/// Headers a request may have, at most, and their total size: beyond, a
/// 431 with the JSON error body (hyper's own limits are set higher, so that
/// this answer, not hyper's bodiless one, is what clients see).
pub const MAX_HEADERS: usize = 100;
/// See [`MAX_HEADERS`].
pub const MAX_HEADER_BYTES: usize = 32 << 10;

async fn limit_headers(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let bytes: usize = headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    if headers.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        return ApiError::HeaderTooLarge(format!(
            "the request has {} headers of {bytes} bytes; at most {MAX_HEADERS} headers of {MAX_HEADER_BYTES} bytes are accepted",
            headers.len()
        ))
        .into_response();
    }
    next.run(request).await
}

async fn add_version_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert("dss-api-version", HeaderValue::from_static(DSS_API_VERSION));
    headers.insert("dss-version", HeaderValue::from_static(env!("CARGO_PKG_VERSION")));
    response
}
