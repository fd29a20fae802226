//! The join of the feedback loop (docs/monitoring.md "The monitor"): query
//! records of one service (and endpoint), each matched with the newest
//! outcome of its `requestId`; a record delivered twice (same `eventId`)
//! counts once. Then the summaries per generation, for the whole period
//! and per window: volume, join rate, latency, predictions, performance.
//! Pure: records in, JSON out.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Map, Value, json};

use super::perf::{self, Labelled};

/// What one query record says.
#[derive(Debug, Clone)]
pub struct Query {
    request_id: String,
    generation: String,
    time_ms: i64,
    ignored: bool,
    latency_us: f64,
    prediction: Value,
    probas: BTreeMap<String, f64>,
    /// The classes in the model's order (the keys of `probas` as recorded).
    classes: Vec<String>,
    /// `samplingRate` of the service's audit policy (1 when absent).
    sampling_rate: f64,
}

/// The newest outcome of a request id.
#[derive(Debug, Clone)]
struct Outcome {
    time_ms: i64,
    value: Value,
    weight: f64,
}

fn time_ms(v: &Value) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(v.as_str()?).ok().map(|d| d.timestamp_millis())
}

/// Which records count: one service, optionally one endpoint, a time range.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// The service.
    pub service: String,
    /// The endpoint, or all.
    pub endpoint: Option<String>,
    /// From this time (epoch ms), inclusive.
    pub since_ms: Option<i64>,
    /// Until this time (epoch ms), exclusive.
    pub until_ms: Option<i64>,
}

impl Filter {
    fn takes(&self, r: &Value, msg_type: &str, time: i64) -> bool {
        r["msgType"] == msg_type
            && r["serviceId"] == self.service.as_str()
            && self.endpoint.as_deref().is_none_or(|e| r["endpointId"] == e)
            && self.since_ms.is_none_or(|s| time >= s)
            && self.until_ms.is_none_or(|u| time < u)
    }
}

/// Query and feedback records, deduplicated, joined.
#[derive(Debug, Default)]
pub struct Join {
    filter: Filter,
    seen: HashSet<String>,
    queries: Vec<Query>,
    outcomes: HashMap<String, Outcome>,
    /// Counts: duplicates, unreadable lines, outcomes read.
    pub duplicates: u64,
    /// Lines that held no record.
    pub unreadable: u64,
    /// Outcome records read (before keeping the newest per request id).
    pub outcome_records: u64,
}

impl Join {
    /// An empty join of the records `filter` takes.
    pub fn new(filter: Filter) -> Join {
        Join { filter, ..Join::default() }
    }

    fn first_time(&mut self, r: &Value) -> bool {
        match r["eventId"].as_str() {
            Some(id) if !self.seen.insert(id.to_owned()) => {
                self.duplicates += 1;
                false
            }
            _ => true,
        }
    }

    /// Takes a query record (others are skipped).
    pub fn query(&mut self, r: &Value) {
        let Some(time) = time_ms(&r["timestamp"]) else { return };
        if !self.filter.takes(r, "prediction-query", time) || !self.first_time(r) {
            return;
        }
        let result = &r["result"];
        let probas: Vec<(String, f64)> = result["probas"]
            .as_object()
            .map(|p| p.iter().filter_map(|(k, v)| Some((k.clone(), v.as_f64()?))).collect())
            .unwrap_or_default();
        let latency_us = r["timing"].as_object().map_or(0.0, |t| t.values().filter_map(Value::as_f64).sum());
        self.queries.push(Query {
            request_id: r["requestId"].as_str().unwrap_or_default().to_owned(),
            generation: r["generation"].as_str().unwrap_or("-").to_owned(),
            time_ms: time,
            ignored: result["ignored"] == true,
            latency_us,
            prediction: result["prediction"].clone(),
            classes: probas.iter().map(|(k, _)| k.clone()).collect(),
            probas: probas.into_iter().collect(),
            sampling_rate: r["samplingRate"].as_f64().filter(|s| *s > 0.0).unwrap_or(1.0),
        });
    }

    /// Takes a feedback record (others are skipped); the newest outcome of
    /// a request id wins (by its `time`; the later read on a tie).
    pub fn feedback(&mut self, r: &Value) {
        let Some(time) = time_ms(&r["time"]).or_else(|| time_ms(&r["timestamp"])) else { return };
        if r["msgType"] != "prediction-feedback" || r["serviceId"] != self.filter.service.as_str() {
            return;
        }
        if self.filter.endpoint.as_deref().is_some_and(|e| r["endpointId"] != e) || !self.first_time(r) {
            return;
        }
        self.outcome_records += 1;
        let Some(id) = r["requestId"].as_str() else { return };
        let outcome =
            Outcome { time_ms: time, value: r["outcome"].clone(), weight: r["weight"].as_f64().unwrap_or(1.0) };
        match self.outcomes.get(id) {
            Some(old) if old.time_ms > time => {}
            _ => {
                self.outcomes.insert(id.to_owned(), outcome);
            }
        }
    }

    /// The report's figures: totals, and per generation the whole period
    /// and each window of `window_ms`.
    pub fn summarise(&self, window_ms: i64) -> Value {
        let mut by_generation: BTreeMap<&str, Vec<&Query>> = BTreeMap::new();
        for q in &self.queries {
            by_generation.entry(q.generation.as_str()).or_default().push(q);
        }
        let matched: HashSet<&str> = self
            .queries
            .iter()
            .filter(|q| self.outcomes.contains_key(&q.request_id))
            .map(|q| q.request_id.as_str())
            .collect();
        let mut generations = Map::new();
        for (g, qs) in &by_generation {
            let mut windows: BTreeMap<i64, Vec<&Query>> = BTreeMap::new();
            for q in qs {
                windows.entry(q.time_ms.div_euclid(window_ms) * window_ms).or_default().push(q);
            }
            let windows: Vec<Value> = windows
                .iter()
                .map(|(start, qs)| {
                    let mut s = self.summary(qs);
                    s["start"] = json!(rfc3339(*start));
                    s["end"] = json!(rfc3339(start + window_ms));
                    s
                })
                .collect();
            generations.insert((*g).to_owned(), json!({"overall": self.summary(qs), "windows": windows}));
        }
        json!({
            "totals": {
                "queryRecords": self.queries.len(),
                "outcomeRecords": self.outcome_records,
                "outcomes": self.outcomes.len(),
                "unmatchedOutcomes": self.outcomes.len() - matched.len(),
                "duplicates": self.duplicates,
                "unreadableLines": self.unreadable,
                "sampled": self.queries.iter().any(|q| q.sampling_rate < 1.0),
            },
            "generations": generations,
        })
    }

    fn summary(&self, qs: &[&Query]) -> Value {
        let ignored = qs.iter().filter(|q| q.ignored).count();
        let scored: Vec<&&Query> = qs.iter().filter(|q| !q.ignored).collect();
        let labelled: Vec<(&&Query, &Outcome)> =
            scored.iter().filter_map(|q| Some((*q, self.outcomes.get(&q.request_id)?))).collect();
        let mut latency: Vec<f64> = qs.iter().map(|q| q.latency_us).collect();
        latency.sort_by(f64::total_cmp);
        let pick = |p: f64| latency.get(((p * latency.len() as f64).ceil() as usize).saturating_sub(1)).copied();
        let classifier = scored.iter().any(|q| q.prediction.is_string());
        let (predictions, performance) = if classifier {
            let mut counts: BTreeMap<String, f64> = BTreeMap::new();
            for q in &scored {
                *counts.entry(text(&q.prediction)).or_default() += 1.0 / q.sampling_rate;
            }
            let classes = scored.first().map(|q| q.classes.clone()).unwrap_or_default();
            let rows: Vec<Labelled> = labelled
                .iter()
                .map(|(q, o)| Labelled {
                    truth: text(&o.value),
                    predicted: text(&q.prediction),
                    probas: q.probas.clone(),
                    weight: o.weight / q.sampling_rate,
                })
                .collect();
            (json!({"classes": counts}), perf::classification(&rows, &classes))
        } else {
            let mut values: Vec<f64> = scored.iter().filter_map(|q| q.prediction.as_f64()).collect();
            values.sort_by(f64::total_cmp);
            let q = |p: f64| values.get(((p * values.len() as f64).ceil() as usize).saturating_sub(1)).copied();
            let rows: Vec<(f64, f64, f64)> = labelled
                .iter()
                .filter_map(|(q, o)| Some((number(&o.value)?, q.prediction.as_f64()?, o.weight / q.sampling_rate)))
                .collect();
            (
                json!({"quantiles": {"p5": q(0.05), "p25": q(0.25), "p50": q(0.5), "p75": q(0.75), "p95": q(0.95)}}),
                perf::regression(&rows),
            )
        };
        let records: f64 = qs.iter().map(|q| 1.0 / q.sampling_rate).sum();
        json!({
            "records": qs.len(),
            "estimatedRecords": records,
            "ignored": ignored,
            "labelled": labelled.len(),
            "unlabelled": scored.len() - labelled.len(),
            "joinRate": if scored.is_empty() { Value::Null } else { json!(labelled.len() as f64 / scored.len() as f64) },
            "latencyUs": {"p50": pick(0.5), "p95": pick(0.95), "p99": pick(0.99)},
            "predictions": predictions,
            "performance": performance,
        })
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn number(v: &Value) -> Option<f64> {
    v.as_f64().or_else(|| v.as_str()?.trim().parse().ok())
}

/// An RFC 3339 time of epoch milliseconds.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}
