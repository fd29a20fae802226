//! The wire format of prediction requests and the reading of bodies: the size
//! limit (413 before anything is parsed), JSON parsing with the path of the
//! offending field in the message, and the merge of per-request explanation
//! settings with the endpoint's defaults. Nothing here scores or dispatches.

use axum::body::Body;
use http_body_util::LengthLimitError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::ApiError;
use crate::model::explain::ExplainSettings;
use crate::model::spec::{ExplanationDefaults, ExplanationMethod};
use crate::registry::dispatch::Dispatch;

/// Body of `predict`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PredictBody {
    /// Feature name → value.
    pub features: Map<String, Value>,
    /// Caller metadata: logged, not used for scoring.
    #[serde(default)]
    pub context: Option<Map<String, Value>>,
    /// Explanation overrides (members may be null).
    #[serde(default)]
    pub explanations: Option<ExplanationsBody>,
    /// Generation choice.
    #[serde(default)]
    pub dispatch: Option<DispatchBody>,
}

/// Body of `predict-multi`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MultiBody {
    /// The records.
    pub items: Vec<ItemBody>,
    /// Explanation overrides for every item.
    #[serde(default)]
    pub explanations: Option<ExplanationsBody>,
    /// Generation choice for the whole batch.
    #[serde(default)]
    pub dispatch: Option<DispatchBody>,
}

/// One item of `predict-multi`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemBody {
    /// Feature name → value.
    pub features: Map<String, Value>,
    /// Caller metadata.
    #[serde(default)]
    pub context: Option<Map<String, Value>>,
}

/// `explanations` as Dataiku's client sends it: null means "endpoint default".
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExplanationsBody {
    enabled: Option<bool>,
    method: Option<ExplanationMethod>,
    n_explanations: Option<i64>,
    n_monte_carlo_steps: Option<i64>,
}

/// `dispatch`: a forced generation or a dispatch key.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DispatchBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    forced_generation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dispatch_key: Option<String>,
}

impl DispatchBody {
    /// The dispatch rule; a forced generation wins over a key.
    pub fn rule(&self) -> Dispatch<'_> {
        match (&self.forced_generation, &self.dispatch_key) {
            (Some(g), _) => Dispatch::Forced(g),
            (None, Some(k)) => Dispatch::Key(k),
            (None, None) => Dispatch::Random,
        }
    }
}

/// The range Dataiku documents for `nMonteCarloSteps`.
pub const MONTE_CARLO_STEPS: std::ops::RangeInclusive<i64> = 25..=1000;

/// Merges request overrides over endpoint defaults; `None` when explanations
/// are off.
///
/// # Errors
/// [`ApiError::InvalidRequest`] for an out-of-range count.
pub fn explain_settings(
    body: Option<&ExplanationsBody>,
    defaults: &ExplanationDefaults,
) -> Result<Option<ExplainSettings>, ApiError> {
    let body = body.cloned().unwrap_or_default();
    if !body.enabled.unwrap_or(defaults.enabled) {
        return Ok(None);
    }
    let n_explanations = match body.n_explanations {
        None => defaults.n_explanations,
        Some(n) if n >= 1 => n as usize,
        Some(n) => {
            return Err(ApiError::InvalidRequest(format!("explanations.nExplanations: {n} must be at least 1")));
        }
    };
    let n_monte_carlo_steps = match body.n_monte_carlo_steps {
        None => defaults.n_monte_carlo_steps,
        Some(n) if MONTE_CARLO_STEPS.contains(&n) => n as usize,
        Some(n) => {
            return Err(ApiError::InvalidRequest(format!(
                "explanations.nMonteCarloSteps: {n} must be between {} and {}",
                MONTE_CARLO_STEPS.start(),
                MONTE_CARLO_STEPS.end()
            )));
        }
    };
    Ok(Some(ExplainSettings { method: body.method.unwrap_or(defaults.method), n_explanations, n_monte_carlo_steps }))
}

/// Reads a whole body of at most `limit` bytes.
///
/// # Errors
/// [`ApiError::PayloadTooLarge`] past the limit, `InvalidRequest` when the
/// body cannot be read.
pub async fn read_body(body: Body, limit: usize, timeout: std::time::Duration) -> Result<axum::body::Bytes, ApiError> {
    let read = tokio::time::timeout(timeout, axum::body::to_bytes(body, limit));
    let Ok(read) = read.await else { return Err(ApiError::BodyTimeout(timeout.as_secs())) };
    read.map_err(|e| {
        let inner = e.into_inner();
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(inner.as_ref());
        while let Some(c) = cause {
            if c.is::<LengthLimitError>() {
                return ApiError::PayloadTooLarge(limit);
            }
            cause = c.source();
        }
        ApiError::InvalidRequest(format!("the request body could not be read: {inner}"))
    })
}

/// Parses a body as JSON of type `T`, naming the offending field on error.
///
/// # Errors
/// [`ApiError::InvalidRequest`] saying whether the body is not JSON or has
/// the wrong shape, and where.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // One pass straight into T; only a failure pays for finding out whether
    // the body was not JSON, not an object, or an object of the wrong shape.
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize(&mut de) {
        Ok(v) if de.end().is_ok() => Ok(v),
        // Trailing characters after the value: the body is not JSON.
        Ok(_) => Err(describe(bytes, None)),
        Err(e) => Err(describe(bytes, Some(e))),
    }
}

fn describe(bytes: &[u8], e: Option<serde_path_to_error::Error<serde_json::Error>>) -> ApiError {
    let value = match serde_json::from_slice::<Value>(bytes) {
        Err(syntax) => return ApiError::InvalidRequest(format!("the request body is not valid JSON: {syntax}")),
        Ok(v) => v,
    };
    if !value.is_object() {
        let kind = crate::model::features::json_type(&value);
        return ApiError::InvalidRequest(format!("the request body must be a JSON object, got {kind}"));
    }
    let Some(e) = e else { return ApiError::InvalidRequest("the request body is not valid JSON".into()) };
    let path = e.path().to_string();
    let at = if path == "." { String::from("the body") } else { path };
    ApiError::InvalidRequest(format!("{at}: {}", e.inner()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_errors_name_the_field() {
        let e = parse_json::<MultiBody>(br#"{"items": [{"features": {}}, {"features": 3}]}"#).unwrap_err();
        assert!(e.to_string().starts_with("items[1].features: invalid type"), "{e}");
        let e = parse_json::<PredictBody>(b"{}").unwrap_err();
        assert!(e.to_string().contains("missing field `features`"), "{e}");
        let e = parse_json::<PredictBody>(b"{not json").unwrap_err();
        assert!(e.to_string().starts_with("the request body is not valid JSON"), "{e}");
    }

    #[test]
    fn explanation_nulls_mean_defaults() {
        let defaults = ExplanationDefaults { enabled: true, ..Default::default() };
        let body: ExplanationsBody = serde_json::from_str(
            r#"{"enabled": null, "method": null, "nExplanations": null, "nMonteCarloSteps": null}"#,
        )
        .expect("parses");
        let s = explain_settings(Some(&body), &defaults).expect("valid").expect("enabled by default");
        assert_eq!((s.method, s.n_explanations, s.n_monte_carlo_steps), (ExplanationMethod::Ice, 3, 100));
        let off = ExplanationsBody { enabled: Some(false), ..Default::default() };
        assert_eq!(explain_settings(Some(&off), &defaults).expect("valid"), None);
        let bad = ExplanationsBody { n_monte_carlo_steps: Some(5), ..Default::default() };
        assert!(explain_settings(Some(&bad), &defaults).is_err());
    }
}
