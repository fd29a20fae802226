//! The one error table of the HTTP boundary: every refusal of the node is an
//! [`ApiError`], and this file alone decides its status, its stable
//! `errorType` and its body `{"errorType", "message"}` (the two keys Dataiku's
//! Python client reads). Messages of 5xx errors never carry paths, stacks or
//! secrets; the detail goes to the runtime log instead.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::registry::ResolveError;

/// Every error the HTTP API answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// Not JSON, wrong shape, wrong feature type, bad dispatch.
    #[error("{0}")]
    InvalidRequest(String),
    /// The body exceeds the configured limit (bytes).
    #[error("the request body is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    /// Unknown service, endpoint or route.
    #[error("{0}")]
    NotFound(String),
    /// The route exists but not with this method.
    #[error("method {0} is not allowed on this path")]
    MethodNotAllowed(String),
    /// Disabled service, no active generation, service that failed to start.
    #[error("{0}")]
    ServiceUnavailable(String),
    /// Missing or bad API key.
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but not allowed (a user key on the admin API).
    #[error("{0}")]
    Forbidden(String),
    /// The model failed at scoring.
    #[error("the model of endpoint {0} failed to score the record")]
    ScoringFailed(String),
    /// A failure of the node itself (a disk write after validation).
    #[error("{0}")]
    Internal(String),
    /// An admin change whose audit record could not be written.
    #[error("the audit record of this change could not be written; the change was not made")]
    AuditUnavailable,
    /// A request whose audit records could not be written, under
    /// `auditLog.onWriteFailure: REFUSE`.
    #[error(
        "the audit records of this request could not be written, so its result is not returned (auditLog.onWriteFailure is REFUSE)"
    )]
    RequestNotRecorded,
    /// More items than `limits.maxItemsPerRequest`.
    #[error("a request may hold at most {0} items (limits.maxItemsPerRequest); nothing was scored")]
    TooManyItems(usize),
    /// The body did not arrive within `limits.bodyReadTimeoutSeconds`.
    #[error("the request body did not arrive within {0} s (limits.bodyReadTimeoutSeconds)")]
    BodyTimeout(u64),
    /// Too many authentication failures from this address this minute.
    #[error(
        "too many authentication failures from this address: try again in the next minute (limits.authFailuresPerMinute)"
    )]
    TooManyRequests,
    /// A request head the node refuses (too many or too large headers).
    #[error("{0}")]
    HeaderTooLarge(String),
}

impl ApiError {
    /// The HTTP status and the stable `errorType` of this error.
    pub fn status_and_type(&self) -> (StatusCode, &'static str) {
        match self {
            Self::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "InvalidRequest"),
            Self::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "NotFound"),
            Self::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed"),
            Self::ServiceUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "Unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "Forbidden"),
            Self::ScoringFailed(_) => (StatusCode::INTERNAL_SERVER_ERROR, "ScoringFailed"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
            Self::AuditUnavailable | Self::RequestNotRecorded => (StatusCode::SERVICE_UNAVAILABLE, "AuditUnavailable"),
            Self::TooManyItems(_) => (StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge"),
            Self::BodyTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "RequestTimeout"),
            Self::TooManyRequests => (StatusCode::TOO_MANY_REQUESTS, "TooManyRequests"),
            Self::HeaderTooLarge(_) => (StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "HeaderTooLarge"),
        }
    }
}

impl From<ResolveError> for ApiError {
    fn from(e: ResolveError) -> Self {
        match e {
            ResolveError::UnknownGeneration(..) | ResolveError::UnusableGeneration(..) => {
                ApiError::InvalidRequest(format!("dispatch.forcedGeneration: {e}"))
            }
            // The reason names files of the data directory: it goes to the log
            // and to the admin API's startAbortedReason, not to callers.
            ResolveError::Aborted(id, _) => ApiError::ServiceUnavailable(format!(
                "service {id} could not start (its startAbortedReason is in the admin API and the node's log)"
            )),
            ResolveError::Disabled(_) | ResolveError::NoActiveGeneration(_) => {
                ApiError::ServiceUnavailable(e.to_string())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, error_type) = self.status_and_type();
        let body = json!({"errorType": error_type, "message": self.to_string()});
        (status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ServiceId;

    #[test]
    fn the_table_matches_the_spec() {
        let cases = [
            (ApiError::InvalidRequest("x".into()), 400, "InvalidRequest"),
            (ApiError::PayloadTooLarge(1), 413, "PayloadTooLarge"),
            (ApiError::TooManyItems(10), 413, "PayloadTooLarge"),
            (ApiError::BodyTimeout(30), 408, "RequestTimeout"),
            (ApiError::TooManyRequests, 429, "TooManyRequests"),
            (ApiError::HeaderTooLarge("x".into()), 431, "HeaderTooLarge"),
            (ApiError::RequestNotRecorded, 503, "AuditUnavailable"),
            (ApiError::NotFound("x".into()), 404, "NotFound"),
            (ApiError::ServiceUnavailable("x".into()), 503, "ServiceUnavailable"),
            (ApiError::Unauthorized("x".into()), 401, "Unauthorized"),
            (ApiError::Forbidden("x".into()), 403, "Forbidden"),
            (ApiError::ScoringFailed("e".into()), 500, "ScoringFailed"),
            (ApiError::AuditUnavailable, 503, "AuditUnavailable"),
        ];
        for (err, status, kind) in cases {
            let (s, k) = err.status_and_type();
            assert_eq!((s.as_u16(), k), (status, kind));
        }
    }

    #[test]
    fn aborted_services_do_not_leak_file_paths() {
        let id = ServiceId::new("s").expect("valid");
        let e = ApiError::from(ResolveError::Aborted(id, "services/s/service.json: bad".into()));
        assert!(!e.to_string().contains("service.json"), "{e}");
        assert_eq!(e.status_and_type().0, StatusCode::SERVICE_UNAVAILABLE);
    }
}
