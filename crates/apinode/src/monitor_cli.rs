//! `apinode-admin feedback-import` and `apinode-admin monitor`
//! (docs/monitoring.md): reading an outcomes file (CSV with a header
//! `requestId,outcome[,time,weight]`, or JSON lines) into feedback items,
//! checked whole before anything is sent; and the monitor's options from
//! the command line. The HTTP calls are `admin_cli`'s.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::{Map, Value, json};

use crate::monitor::join::Filter;
use crate::monitor::{Options, parse_window};

/// The feedback items of `file`, or the first problem with its line.
///
/// # Errors
/// An unreadable file or a bad line (named by its number).
pub fn outcomes_file(file: &Path) -> anyhow::Result<Vec<Value>> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or_default();
    if first.trim_start().starts_with('{') {
        return text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str::<Value>(l)
                    .ok()
                    .filter(Value::is_object)
                    .with_context(|| format!("{} line {}: not a JSON object", file.display(), i + 1))
            })
            .collect();
    }
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers()?.iter().map(str::to_owned).collect();
    for h in &header {
        if !matches!(h.as_str(), "requestId" | "outcome" | "time" | "weight") {
            bail!("{}: unknown column {h:?} (known: requestId, outcome, time, weight)", file.display());
        }
    }
    if !header.iter().any(|h| h == "requestId") || !header.iter().any(|h| h == "outcome") {
        bail!("{}: the header must name requestId and outcome", file.display());
    }
    let mut items = Vec::new();
    for (i, row) in reader.records().enumerate() {
        let row = row.with_context(|| format!("{} line {}", file.display(), i + 2))?;
        let mut item = Map::new();
        for (h, v) in header.iter().zip(row.iter()) {
            if v.is_empty() {
                continue;
            }
            let value = if h == "weight" {
                json!(v.parse::<f64>().with_context(|| format!(
                    "{} line {}: weight {v:?} is not a number",
                    file.display(),
                    i + 2
                ))?)
            } else {
                json!(v)
            };
            item.insert(h.clone(), value);
        }
        items.push(Value::Object(item));
    }
    Ok(items)
}

/// A time given as RFC 3339, in epoch milliseconds.
fn millis(text: &Option<String>, what: &str) -> anyhow::Result<Option<i64>> {
    text.as_deref()
        .map(|t| {
            chrono::DateTime::parse_from_rfc3339(t)
                .map(|d| d.timestamp_millis())
                .with_context(|| format!("--{what} {t:?}: not an RFC 3339 time such as 2026-12-01T00:00:00Z"))
        })
        .transpose()
}

/// The monitor's options; sources default to the node's own `run/audit`.
///
/// # Errors
/// A bad window or time.
#[allow(clippy::too_many_arguments)]
pub fn options(
    data_dir: &Path,
    service: &str,
    endpoint: Option<String>,
    queries: &[PathBuf],
    feedback: &[PathBuf],
    since: &Option<String>,
    until: &Option<String>,
    window: &str,
    reference: Option<PathBuf>,
    partial: Option<PathBuf>,
    merge: &[PathBuf],
) -> anyhow::Result<Options> {
    let window_ms =
        parse_window(window).with_context(|| format!("--window {window:?}: a number and s, m, h or d (1h)"))?;
    let own = vec![data_dir.join("run/audit")];
    Ok(Options {
        filter: Filter {
            service: service.to_owned(),
            endpoint,
            since_ms: millis(since, "since")?,
            until_ms: millis(until, "until")?,
        },
        queries: if queries.is_empty() { own.clone() } else { queries.to_vec() },
        feedback: if feedback.is_empty() { own } else { feedback.to_vec() },
        window_ms,
        window_text: window.to_owned(),
        generations: Some(data_dir.join("services").join(service).join("generations")),
        reference,
        partial,
        merge: merge.to_vec(),
    })
}
