//! Scoring records on one endpoint's model and shaping each answer as
//! Dataiku's `result` object (`prediction`, `probas`, `probaPercentile`,
//! `ignored`, `explanations`), while timing each stage in microseconds. This
//! is the domain step between the HTTP handlers and the model; it does no
//! I/O and knows nothing of requests, auth or dispatch.

use std::time::Instant;

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::model::explain::{ExplainSettings, explain};
use crate::model::features::RawValue;
use crate::model::{Model, Prediction, ScoringError};

/// Where the time of a request went, in microseconds (Dataiku's keys).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Timing {
    /// Reading and checking the request, up to the model's raw values.
    pub pre_processing: u64,
    /// Waiting for a scoring thread (batches and explanations run off the
    /// request threads).
    pub wait: u64,
    /// Enrichment lookups (none in this node: always 0).
    pub enrich: u64,
    /// Encoding the features into the model's columns.
    pub preparation: u64,
    /// Evaluating the model.
    pub prediction: u64,
    /// Explanations and shaping the answer.
    pub post_processing: u64,
}

/// Microseconds elapsed since `since`.
pub fn micros(since: Instant) -> u64 {
    since.elapsed().as_micros().try_into().unwrap_or(u64::MAX)
}

/// Scores every record and returns one `result` object per record, in order.
/// Records that cannot be scored are answered `ignored`; the others are still
/// scored.
///
/// # Errors
/// [`ScoringError`] when the model fails on any record.
pub fn score_records(
    model: &Model,
    records: &[Vec<RawValue>],
    explain_with: Option<&ExplainSettings>,
    timing: &mut Timing,
) -> Result<Vec<Map<String, Value>>, ScoringError> {
    records.iter().map(|raw| score_one(model, raw, explain_with, timing)).collect()
}

fn score_one(
    model: &Model,
    raw: &[RawValue],
    explain_with: Option<&ExplainSettings>,
    timing: &mut Timing,
) -> Result<Map<String, Value>, ScoringError> {
    let t = Instant::now();
    let encoded = model.encode(raw);
    timing.preparation += micros(t);
    let x = match encoded {
        Ok(x) => x,
        Err(reason) => {
            let mut out = Map::new();
            out.insert("ignored".into(), Value::Bool(true));
            out.insert("ignoreReason".into(), reason.code().into());
            out.insert("ignoreDetail".into(), reason.detail().into());
            return Ok(out);
        }
    };
    let t = Instant::now();
    let prediction = model.predict(&x)?;
    timing.prediction += micros(t);

    let t = Instant::now();
    let mut out = Map::new();
    let explained_class = match &prediction {
        Prediction::Value(v) => {
            out.insert("prediction".into(), json!(v));
            0
        }
        Prediction::Class { index, probas, percentile } => {
            out.insert("prediction".into(), model.classes()[*index].clone().into());
            let probas: Map<String, Value> =
                model.classes().iter().zip(probas).map(|(c, p)| (c.clone(), json!(p))).collect();
            out.insert("probas".into(), Value::Object(probas));
            if let Some(p) = percentile {
                out.insert("probaPercentile".into(), json!(p));
            }
            // Binary: the positive class's log-odds; multiclass: the predicted one's.
            if model.classes().len() == 2 { 1 } else { *index }
        }
    };
    out.insert("ignored".into(), Value::Bool(false));
    if let Some(settings) = explain_with {
        let contributions: Map<String, Value> =
            explain(model, raw, explained_class, settings).into_iter().map(|(f, c)| (f, json!(c))).collect();
        out.insert("explanations".into(), Value::Object(contributions));
    }
    timing.post_processing += micros(t);
    Ok(out)
}
