//! The join of the feedback loop (docs/monitoring.md "The monitor"): query
//! records of one service (and endpoint), each matched with the newest
//! outcome of its `requestId`; a record delivered twice (same `eventId`)
//! counts once. Then the summaries per generation, for the whole period
//! and per window: volume, join rate, latency, predictions, performance.
//! Queries and outcomes are collected apart (on two threads, see `scan`)
//! in compact form: classes and generations by index, event ids by a
//! 128-bit hash. Pure: records in, JSON out.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use serde_json::{Map, Value, json};

use super::perf::{self, Labelled};
use super::read::Rec;
use super::seen::{Repeat, Seen, SharedSeen};

/// What one query record says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Query {
    /// Its `eventId`'s hash (merging partial runs drops repeats by it).
    pub(super) event: Option<u128>,
    pub(super) request_id: Box<str>,
    pub(super) generation: u16,
    pub(super) time_ms: i64,
    pub(super) ignored: bool,
    pub(super) latency_us: f32,
    pub(super) prediction: Prediction,
    /// Probabilities in the order of `Queries::classes`.
    #[serde(deserialize_with = "nan_from_null")]
    pub(super) probas: Box<[f64]>,
    /// `samplingRate` of the service's audit policy (1 when absent).
    pub(super) sampling_rate: f64,
}

/// Absent probabilities are NaN, which JSON writes as null.
fn nan_from_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Box<[f64]>, D::Error> {
    let v: Vec<Option<f64>> = Deserialize::deserialize(d)?;
    Ok(v.into_iter().map(|x| x.unwrap_or(f64::NAN)).collect())
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(super) enum Prediction {
    Class(u16),
    Number(f64),
    None,
}

/// The newest outcome of a request id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Outcome {
    pub(super) time_ms: i64,
    value: Value,
    weight: f64,
}

fn time_ms(v: Option<&str>) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(v?).ok().map(|d| d.timestamp_millis())
}

/// Which records count: one service, optionally one endpoint, a time range.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
    fn takes(&self, r: &Rec<'_>, msg_type: &str) -> bool {
        r.msg_type.as_deref() == Some(msg_type)
            && r.service_id.as_deref() == Some(self.service.as_str())
            && self.endpoint.as_deref().is_none_or(|e| r.endpoint_id.as_deref() == Some(e))
    }

    fn in_range(&self, time: i64) -> bool {
        self.since_ms.is_none_or(|s| time >= s) && self.until_ms.is_none_or(|u| time < u)
    }
}

/// The index of `name` in `names`, appended when new (a handful of
/// generations and classes: a scan is cheaper than a map).
fn index_of(names: &mut Vec<String>, name: &str) -> u16 {
    match names.iter().position(|n| n == name) {
        Some(i) => i as u16,
        None => {
            names.push(name.to_owned());
            (names.len() - 1) as u16
        }
    }
}

/// The query side of a join.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Queries {
    pub(super) filter: Filter,
    pub(super) seen: Seen,
    pub(super) queries: Vec<Query>,
    pub(super) classes: Vec<String>,
    pub(super) generations: Vec<String>,
    /// Records read twice.
    pub duplicates: u64,
    /// Lines that held no record.
    pub unreadable: u64,
    /// Where current values for drift go, when some generation has a reference.
    pub drift: Option<super::drift::Collector>,
}

impl Queries {
    /// The queries `filter` takes.
    pub fn new(filter: Filter) -> Queries {
        Queries { filter, ..Queries::default() }
    }

    /// The index of a generation, added when new.
    pub(super) fn generation(&mut self, name: &str) -> u16 {
        index_of(&mut self.generations, name)
    }

    /// The generations seen, by index.
    pub fn generations(&self) -> &[String] {
        &self.generations
    }

    /// The index of a class, added when new.
    pub(super) fn class(&mut self, name: &str) -> u16 {
        index_of(&mut self.classes, name)
    }

    /// Puts the records in one order whoever read them, in whatever order:
    /// by time, then event id (two copies of a record, either of which may
    /// have been kept, share both). Sums over the records then come out
    /// the same to the last bit from one reader, two threads or merged
    /// partial runs. The records are nearly in time order already, so the
    /// stable sort is mostly a scan.
    pub fn in_canonical_order(&mut self) {
        self.queries.sort_by_key(|q| (q.time_ms, q.event));
    }

    /// Takes a query record (others are skipped), its event id admitted by
    /// `seen` (shared by the threads reading one run's sources).
    pub(super) fn take(&mut self, r: &Rec<'_>, seen: &SharedSeen) {
        if !self.filter.takes(r, "prediction-query") {
            return;
        }
        let Some(time) = time_ms(r.timestamp.as_deref()).filter(|t| self.filter.in_range(*t)) else { return };
        match seen.admit(r.event_id.as_deref()) {
            Ok(event) => self.add(r, time, event),
            Err(Repeat) => self.duplicates += 1,
        }
    }

    /// Adds an admitted record.
    fn add(&mut self, r: &Rec<'_>, time: i64, event: Option<u128>) {
        let generation = self.generation(r.generation.as_deref().unwrap_or("-"));
        let result = r.result.as_ref();
        let mut probas = vec![f64::NAN; self.classes.len()];
        for (name, p) in result.and_then(|x| x.probas.as_ref()).map_or(&[][..], |o| &o.0[..]) {
            let i = usize::from(self.class(name));
            if i >= probas.len() {
                probas.resize(i + 1, f64::NAN);
            }
            probas[i] = *p;
        }
        let prediction = match result.and_then(|x| x.prediction.as_ref()) {
            Some(Value::String(c)) => Prediction::Class(self.class(c)),
            Some(Value::Number(n)) => n.as_f64().map_or(Prediction::None, Prediction::Number),
            _ => Prediction::None,
        };
        let ignored = result.and_then(|x| x.ignored).unwrap_or(false);
        if let Some(d) = self.drift.as_mut() {
            let predicted = match prediction {
                _ if ignored => None,
                Prediction::Class(c) => Some(super::drift::Predicted::Class(&self.classes[usize::from(c)])),
                Prediction::Number(n) => Some(super::drift::Predicted::Number(n)),
                Prediction::None => None,
            };
            d.take(generation, time, r.features, predicted);
        }
        self.queries.push(Query {
            event,
            request_id: r.request_id.as_deref().unwrap_or_default().into(),
            generation,
            time_ms: time,
            ignored,
            latency_us: r.timing.as_ref().map_or(0.0, |t| t.total() as f32),
            prediction,
            probas: probas.into_boxed_slice(),
            sampling_rate: r.sampling_rate.filter(|s| *s > 0.0).unwrap_or(1.0),
        });
    }
}

/// The outcome side of a join.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Outcomes {
    pub(super) filter: Filter,
    pub(super) seen: Seen,
    pub(super) outcomes: HashMap<Box<str>, Outcome>,
    /// Records read twice.
    pub duplicates: u64,
    /// Lines that held no record.
    pub unreadable: u64,
    /// Outcome records read (before keeping the newest per request id).
    pub records: u64,
}

impl Outcomes {
    /// The outcomes `filter` takes (its time range is the predictions').
    pub fn new(filter: Filter) -> Outcomes {
        Outcomes { filter, ..Outcomes::default() }
    }

    /// Takes a feedback record (others are skipped); the newest outcome of
    /// a request id wins (by its `time`; the later read on a tie).
    pub fn take(&mut self, r: &Rec<'_>) {
        if !self.filter.takes(r, "prediction-feedback") {
            return;
        }
        let Some(time) = time_ms(r.time.as_deref()).or_else(|| time_ms(r.timestamp.as_deref())) else { return };
        if self.seen.admit(r.event_id.as_deref()).is_err() {
            self.duplicates += 1;
            return;
        }
        self.records += 1;
        let (Some(id), Some(value)) = (r.request_id.as_deref(), r.outcome.as_ref()) else { return };
        let outcome = Outcome { time_ms: time, value: value.clone(), weight: r.weight.unwrap_or(1.0) };
        self.keep_newest(id, outcome);
    }

    /// Keeps `outcome` for `id` unless the one kept is newer (a tie: the later wins).
    pub(super) fn keep_newest(&mut self, id: &str, outcome: Outcome) {
        match self.outcomes.get_mut(id) {
            Some(old) if old.time_ms > outcome.time_ms => {}
            Some(old) => *old = outcome,
            None => {
                self.outcomes.insert(id.into(), outcome);
            }
        }
    }
}

/// Requests of the service refused as a whole (`prediction-failure`
/// records: they have no generation), counted per window.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Failures {
    pub(super) filter: Filter,
    pub(super) seen: Seen,
    /// When, and the event id's hash.
    pub(super) times: Vec<(i64, Option<u128>)>,
}

impl Failures {
    /// The failures `filter` takes.
    pub fn new(filter: Filter) -> Failures {
        Failures { filter, ..Failures::default() }
    }

    /// Takes a failure record (others are skipped).
    pub fn take(&mut self, r: &Rec<'_>) {
        if !self.filter.takes(r, "prediction-failure") {
            return;
        }
        let Some(time) = time_ms(r.timestamp.as_deref()) else { return };
        if !self.filter.in_range(time) {
            return;
        }
        if let Ok(event) = self.seen.admit(r.event_id.as_deref()) {
            self.times.push((time, event));
        }
    }

    /// `{"total", "windows": [{"start", "count"}]}`
    pub fn summary(&self, window_ms: i64) -> Value {
        let mut windows: BTreeMap<i64, u64> = BTreeMap::new();
        for (t, _) in &self.times {
            *windows.entry(t.div_euclid(window_ms) * window_ms).or_default() += 1;
        }
        let windows: Vec<Value> = windows.iter().map(|(s, n)| json!({"start": rfc3339(*s), "count": n})).collect();
        json!({"total": self.times.len(), "windows": windows})
    }
}

/// The report's figures: totals, and per generation the whole period and
/// each window of `window_ms`.
pub fn summarise(q: &Queries, o: &Outcomes, window_ms: i64) -> Value {
    let mut by_generation: BTreeMap<&str, Vec<&Query>> = BTreeMap::new();
    for query in &q.queries {
        by_generation.entry(q.generations[usize::from(query.generation)].as_str()).or_default().push(query);
    }
    // Outcomes some query matched, each once: told apart by where their
    // key lives in the map (a sorted list of addresses is a quarter of the
    // memory a set of a million request ids takes).
    let mut matched: Vec<usize> = q
        .queries
        .iter()
        .filter_map(|x| o.outcomes.get_key_value(&x.request_id).map(|(k, _)| k.as_ptr() as usize))
        .collect();
    matched.sort_unstable();
    matched.dedup();
    let mut generations = Map::new();
    for (g, qs) in &by_generation {
        let mut windows: BTreeMap<i64, Vec<&Query>> = BTreeMap::new();
        for x in qs {
            windows.entry(x.time_ms.div_euclid(window_ms) * window_ms).or_default().push(x);
        }
        let windows: Vec<Value> = windows
            .iter()
            .map(|(start, qs)| {
                let mut s = summary(q, o, qs);
                s["start"] = json!(rfc3339(*start));
                s["end"] = json!(rfc3339(start + window_ms));
                s
            })
            .collect();
        generations.insert((*g).to_owned(), json!({"overall": summary(q, o, qs), "windows": windows}));
    }
    json!({
        "totals": {
            "queryRecords": q.queries.len(),
            "outcomeRecords": o.records,
            "outcomes": o.outcomes.len(),
            "unmatchedOutcomes": o.outcomes.len() - matched.len(),
            "duplicates": q.duplicates + o.duplicates,
            "unreadableLines": q.unreadable + o.unreadable,
            "sampled": q.queries.iter().any(|x| x.sampling_rate < 1.0),
        },
        "generations": generations,
    })
}

fn summary(q: &Queries, o: &Outcomes, qs: &[&Query]) -> Value {
    let ignored = qs.iter().filter(|x| x.ignored).count();
    let scored: Vec<&&Query> = qs.iter().filter(|x| !x.ignored).collect();
    let labelled: Vec<(&&Query, &Outcome)> =
        scored.iter().filter_map(|x| Some((*x, o.outcomes.get(&x.request_id)?))).collect();
    let mut latency: Vec<f32> = qs.iter().map(|x| x.latency_us).collect();
    latency.sort_by(f32::total_cmp);
    let pick = |p: f64| latency.get(((p * latency.len() as f64).ceil() as usize).saturating_sub(1)).copied();
    let classifier = scored.iter().any(|x| matches!(x.prediction, Prediction::Class(_)));
    let class_name = |i: u16| q.classes[usize::from(i)].clone();
    let (predictions, performance) = if classifier {
        let mut counts: BTreeMap<String, f64> = BTreeMap::new();
        for x in &scored {
            if let Prediction::Class(c) = x.prediction {
                *counts.entry(class_name(c)).or_default() += 1.0 / x.sampling_rate;
            }
        }
        // The model's classes: those its records gave probabilities for, in order.
        let classes: Vec<String> = scored
            .first()
            .map(|x| (0..x.probas.len()).filter(|i| !x.probas[*i].is_nan()).map(|i| q.classes[i].clone()).collect())
            .unwrap_or_default();
        // Where each of the model's classes is in the records' probabilities.
        let at: Vec<Option<usize>> = classes.iter().map(|name| q.classes.iter().position(|k| k == name)).collect();
        // Every row's probabilities in one buffer (a row borrows its slice):
        // no allocation per row.
        let classified: Vec<(&Query, &Outcome, u16)> = labelled
            .iter()
            .filter_map(|(x, out)| if let Prediction::Class(c) = x.prediction { Some((**x, *out, c)) } else { None })
            .collect();
        let flat: Vec<f64> = classified
            .iter()
            .flat_map(|(x, _, _)| at.iter().map(|i| i.and_then(|i| x.probas.get(i).copied()).unwrap_or(f64::NAN)))
            .collect();
        let rows: Vec<Labelled<'_>> = classified
            .iter()
            .zip(flat.chunks(at.len().max(1)).chain(std::iter::repeat(&[][..])))
            .map(|((x, out, c), probas)| Labelled {
                truth: text(&out.value),
                predicted: &q.classes[usize::from(*c)],
                probas,
                weight: out.weight / x.sampling_rate,
            })
            .collect();
        (json!({"classes": counts}), perf::classification(&rows, &classes))
    } else {
        let mut values: Vec<f64> = scored
            .iter()
            .filter_map(|x| if let Prediction::Number(n) = x.prediction { Some(n) } else { None })
            .collect();
        values.sort_by(f64::total_cmp);
        let at = |p: f64| values.get(((p * values.len() as f64).ceil() as usize).saturating_sub(1)).copied();
        let rows: Vec<(f64, f64, f64)> = labelled
            .iter()
            .filter_map(|(x, out)| {
                let Prediction::Number(p) = x.prediction else { return None };
                Some((number(&out.value)?, p, out.weight / x.sampling_rate))
            })
            .collect();
        (
            json!({"quantiles": {"p5": at(0.05), "p25": at(0.25), "p50": at(0.5), "p75": at(0.75), "p95": at(0.95)}}),
            perf::regression(&rows),
        )
    };
    let records: f64 = qs.iter().map(|x| 1.0 / x.sampling_rate).sum();
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

fn text(v: &Value) -> std::borrow::Cow<'_, str> {
    match v {
        Value::String(s) => std::borrow::Cow::Borrowed(s),
        other => std::borrow::Cow::Owned(other.to_string()),
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
