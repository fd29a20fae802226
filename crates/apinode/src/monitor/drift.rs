//! Data drift per generation and window (docs/monitoring.md "Data
//! drift"): the current values of each profiled feature and of the
//! predictions are collected while the query records stream by, then each
//! window (and the whole period) is compared with its generation's
//! reference profile, feature by feature, with Evidently's default tests.
//!
//! Owns the collection and the drift part of `report.json`; the
//! statistics are `stattest`'s, the profiles `reference`'s. Missing values
//! are counted and left out of the tests, as Evidently drops them.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::features::{Features, Scalar, category_text, each_flat, number};
use super::reference::{Kind, Profile, References};
use super::stattest::{self, Categories, Column, Numbers};

/// A prediction as drift sees it.
#[derive(Debug, Clone, Copy)]
pub enum Predicted<'a> {
    /// A class.
    Class(&'a str),
    /// A number.
    Number(f64),
}

/// Current values of one column in one window.
#[derive(Debug, Serialize, Deserialize)]
enum Current {
    Numbers(Vec<f64>),
    Categories(Counts),
}

/// Category counts: a short list searched in order (most features have a
/// handful of levels: cheaper than hashing), indexed once it grows.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Counts {
    list: Vec<(Box<str>, u64)>,
    #[serde(skip)]
    index: HashMap<Box<str>, usize>,
}

impl Counts {
    fn add(&mut self, key: &str) {
        self.add_n(key, 1);
    }

    fn add_n(&mut self, key: &str, n: u64) {
        let found = if self.list.len() <= 16 {
            self.list.iter().position(|(k, _)| &**k == key)
        } else {
            if self.index.is_empty() {
                self.index = self.list.iter().enumerate().map(|(i, (k, _))| (k.clone(), i)).collect();
            }
            self.index.get(key).copied()
        };
        match found {
            Some(i) => self.list[i].1 += n,
            None => {
                if !self.index.is_empty() || self.list.len() > 16 {
                    self.index.insert(key.into(), self.list.len());
                }
                self.list.push((key.into(), n));
            }
        }
    }
}

impl Current {
    fn new(kind: Kind) -> Current {
        match kind {
            Kind::Numeric => Current::Numbers(Vec::new()),
            Kind::Category => Current::Categories(Counts::default()),
        }
    }

    fn push(&mut self, s: &Scalar<'_>) {
        match self {
            Current::Numbers(v) => v.extend(number(s)),
            Current::Categories(m) => match s {
                Scalar::Text(t) => m.add(t),
                other => {
                    if let Some(t) = category_text(other) {
                        m.add(&t);
                    }
                }
            },
        }
    }

    fn sort(&mut self) {
        if let Current::Numbers(v) = self {
            // A radix sort: the windows' sorts are most of drift's time.
            // Same order as `f64::total_cmp` (no NaN is kept).
            radsort::sort(v);
        }
    }

    /// The column of sorted values.
    fn column(&self) -> Column {
        match self {
            Current::Numbers(v) => Column::Numbers(Numbers::from_sorted_pairs(v.iter().map(|x| (*x, 1)))),
            Current::Categories(m) => Column::Categories(m.list.iter().map(|(k, v)| (k.to_string(), *v)).collect()),
        }
    }
}

/// One generation's window.
#[derive(Debug, Serialize, Deserialize)]
struct Window {
    rows: u64,
    predictions: u64,
    columns: Vec<Current>,
    prediction: Current,
}

/// Collects current values while records are read.
#[derive(Debug, Serialize, Deserialize)]
pub struct Collector {
    window_ms: i64,
    /// Profiled feature names and kinds; the index is the column's.
    #[serde(skip)]
    names: HashMap<String, usize>,
    kinds: Vec<(String, Kind)>,
    prediction_kind: Kind,
    /// The column of each position of the previous record's features (most
    /// records list them in one order: one string compare instead of a hash).
    #[serde(skip)]
    hint: Vec<(String, Option<usize>)>,
    windows: Vec<((u16, i64), Window)>,
    /// Where each window is in `windows`, and the last one per generation
    /// (records come roughly in time order: one compare instead of a hash).
    #[serde(skip)]
    index: HashMap<(u16, i64), usize>,
    #[serde(skip)]
    last: Vec<Option<(i64, usize)>>,
}

impl Collector {
    /// A collector of every feature some profile has, or None when no
    /// generation has a profile (then features are not even parsed).
    pub fn new(references: &References, window_ms: i64) -> Option<Collector> {
        let mut kinds: BTreeMap<String, Kind> = BTreeMap::new();
        let mut prediction_kind = None;
        for p in references.all() {
            for (name, c) in &p.features {
                kinds.entry(name.clone()).or_insert(c.kind());
            }
            prediction_kind = prediction_kind.or(p.prediction.as_ref().map(|c| c.kind()));
        }
        references.all().next()?;
        let kinds: Vec<(String, Kind)> = kinds.into_iter().collect();
        Some(Collector {
            window_ms,
            names: kinds.iter().enumerate().map(|(i, (n, _))| (n.clone(), i)).collect(),
            kinds,
            prediction_kind: prediction_kind.unwrap_or(Kind::Category),
            hint: Vec::new(),
            windows: Vec::new(),
            index: HashMap::new(),
            last: Vec::new(),
        })
    }

    /// A collector of the same features, with nothing collected.
    pub fn emptied(&self) -> Collector {
        Collector {
            window_ms: self.window_ms,
            names: self.names.clone(),
            kinds: self.kinds.clone(),
            prediction_kind: self.prediction_kind,
            hint: Vec::new(),
            windows: Vec::new(),
            index: HashMap::new(),
            last: Vec::new(),
        }
    }

    /// Adds the windows of `other` (another process's partial run), its
    /// generation `g` being this one's `generations[g]`; features this
    /// collector does not profile are left out.
    pub fn merge(&mut self, other: Collector, generations: &[u16]) {
        self.names = self.kinds.iter().enumerate().map(|(i, (n, _))| (n.clone(), i)).collect();
        self.index = self.windows.iter().enumerate().map(|(i, (k, _))| (*k, i)).collect();
        self.last.clear();
        let columns: Vec<Option<usize>> = other.kinds.iter().map(|(n, _)| self.names.get(n).copied()).collect();
        for ((g, start), w) in other.windows {
            let generation = generations.get(usize::from(g)).copied().unwrap_or(g);
            let at = self.window(generation, start);
            let mine = &mut self.windows[at].1;
            mine.rows += w.rows;
            mine.predictions += w.predictions;
            let theirs = w.columns.into_iter().zip(&columns).filter_map(|(c, i)| Some((c, (*i)?)));
            for (c, i) in theirs.chain(std::iter::once((w.prediction, usize::MAX))) {
                let target = if i == usize::MAX { &mut mine.prediction } else { &mut mine.columns[i] };
                match (target, c) {
                    (Current::Numbers(a), Current::Numbers(b)) => {
                        a.reserve_exact(b.len());
                        a.extend(b);
                    }
                    (Current::Categories(a), Current::Categories(b)) => {
                        for (k, n) in b.list {
                            a.add_n(&k, n);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Where the window of `generation` starting at `start` is, added when new.
    fn window(&mut self, generation: u16, start: i64) -> usize {
        let g = usize::from(generation);
        if self.last.len() <= g {
            self.last.resize(g + 1, None);
        }
        match self.last[g] {
            Some((s, at)) if s == start => at,
            _ => {
                let (kinds, prediction_kind) = (&self.kinds, self.prediction_kind);
                let windows = &mut self.windows;
                let at = *self.index.entry((generation, start)).or_insert_with(|| {
                    windows.push((
                        (generation, start),
                        Window {
                            rows: 0,
                            predictions: 0,
                            columns: kinds.iter().map(|(_, k)| Current::new(*k)).collect(),
                            prediction: Current::new(prediction_kind),
                        },
                    ));
                    windows.len() - 1
                });
                self.last[g] = Some((start, at));
                at
            }
        }
    }

    /// Takes one query record's features and prediction (None when ignored).
    pub fn take(
        &mut self,
        generation: u16,
        time_ms: i64,
        features: Option<&RawValue>,
        predicted: Option<Predicted<'_>>,
    ) {
        let start = time_ms.div_euclid(self.window_ms) * self.window_ms;
        let at = self.window(generation, start);
        let w = &mut self.windows[at].1;
        w.rows += 1;
        if let Some(p) = predicted {
            w.predictions += 1;
            match p {
                Predicted::Class(c) => w.prediction.push(&Scalar::Text(Cow::Borrowed(c))),
                Predicted::Number(v) => w.prediction.push(&Scalar::Number(v)),
            }
        }
        let Some(text) = features.map(RawValue::get) else { return };
        let (hint, names) = (&mut self.hint, &self.names);
        let mut put = |pos: usize, name: &str, value: &Scalar<'_>| {
            let column = match hint.get(pos) {
                Some((hinted, column)) if hinted == name => *column,
                _ => {
                    let column = names.get(name).copied();
                    if pos < hint.len() {
                        hint[pos] = (name.to_owned(), column);
                    } else {
                        hint.push((name.to_owned(), column));
                    }
                    column
                }
            };
            if let Some(i) = column {
                w.columns[i].push(value);
            }
        };
        // By hand where it can; serde for the members after the first it cannot.
        if let Err(from) = each_flat(text, |pos, name, value| put(pos, name, &value))
            && let Ok(all) = serde_json::from_str::<Features<'_>>(text)
        {
            for (pos, (name, value)) in all.0.iter().enumerate().skip(from) {
                put(pos, name, value);
            }
        }
    }

    /// The drift of every window and of the whole period, per generation
    /// (`generations[i]` names generation index `i`): `{generation:
    /// {"overall": drift, "windows": {start_ms: drift}}}`. Windows are
    /// computed on all cores; numbers are sorted in place and kept as
    /// such, so the whole period needs no second copy of a window.
    pub fn finish(self, generations: &[String], references: &References, threads: usize) -> BTreeMap<String, Value> {
        let Collector { kinds, mut windows, .. } = self;
        windows.sort_by_key(|(k, _)| *k);
        let profile_of = |g: u16| generations.get(usize::from(g)).and_then(|name| references.of(name));
        let window_json: Vec<Value> = parallel(threads, &mut windows, |(key, w)| {
            w.columns.iter_mut().chain(std::iter::once(&mut w.prediction)).for_each(Current::sort);
            let columns: Vec<Column> = w.columns.iter().map(Current::column).collect();
            window_drift(&kinds, &columns, &w.prediction.column(), w.rows, w.predictions, profile_of(key.0), false)
        });
        let mut out: BTreeMap<String, Value> = BTreeMap::new();
        let mut start = 0;
        while start < windows.len() {
            let g = windows[start].0.0;
            let end = start + windows[start..].iter().take_while(|w| w.0.0 == g).count();
            let group = &windows[start..end];
            let mut per_window = Map::new();
            for ((key, _), json) in group.iter().zip(&window_json[start..end]) {
                per_window.insert(key.1.to_string(), json.clone());
            }
            let (rows, predictions) = group.iter().fold((0, 0), |(r, p), (_, w)| (r + w.rows, p + w.predictions));
            let mut indices: Vec<usize> = (0..=kinds.len()).collect();
            let mut columns: Vec<Column> = parallel(threads, &mut indices, |i| {
                merge(group.iter().map(|(_, w)| if *i < kinds.len() { &w.columns[*i] } else { &w.prediction }))
            });
            let prediction = columns.pop().unwrap_or(Column::Categories(Categories::new()));
            let overall = window_drift(&kinds, &columns, &prediction, rows, predictions, profile_of(g), true);
            let name = generations.get(usize::from(g)).cloned().unwrap_or_default();
            out.insert(name, json!({"overall": overall, "windows": per_window}));
            start = end;
        }
        out
    }
}

/// `f` of every item, on `threads` threads (at least 1), in the items' order.
fn parallel<T: Send, R: Send>(threads: usize, items: &mut [T], f: impl Fn(&mut T) -> R + Sync) -> Vec<R> {
    let threads = threads.max(1);
    let per = items.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let f = &f;
        let handles: Vec<_> = items
            .chunks_mut(per)
            .map(|chunk| scope.spawn(move || chunk.iter_mut().map(f).collect::<Vec<R>>()))
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
    })
}

/// One column over several windows (each sorted).
fn merge<'a>(parts: impl Iterator<Item = &'a Current>) -> Column {
    let parts: Vec<&Current> = parts.collect();
    match parts.first() {
        Some(Current::Numbers(_)) => {
            let mut all: Vec<f64> = Vec::new();
            for p in &parts {
                if let Current::Numbers(v) = p {
                    all.extend_from_slice(v);
                }
            }
            radsort::sort(&mut all);
            Column::Numbers(Numbers::from_sorted_pairs(all.into_iter().map(|v| (v, 1))))
        }
        Some(Current::Categories(_)) => {
            let mut all = Categories::new();
            for p in &parts {
                if let Current::Categories(c) = p {
                    for (k, v) in &c.list {
                        *all.entry(k.to_string()).or_default() += v;
                    }
                }
            }
            Column::Categories(all)
        }
        None => Column::Categories(Categories::new()),
    }
}

/// The drift JSON of one window (or, with `histograms`, the whole period).
fn window_drift(
    kinds: &[(String, Kind)],
    columns: &[Column],
    prediction: &Column,
    rows: u64,
    predictions: u64,
    profile: Option<&Profile>,
    histograms: bool,
) -> Value {
    let Some(profile) = profile else {
        return json!({"reference": null, "why": "no reference profile for this generation"});
    };
    let mut features = Map::new();
    let (mut tested, mut drifted) = (0u64, 0u64);
    for ((name, _), current) in kinds.iter().zip(columns) {
        let Some(reference) = profile.features.get(name) else { continue };
        let v = column_drift(&reference.column, current, rows, reference.sampled, histograms);
        if let Some(d) = v["drifted"].as_bool() {
            tested += 1;
            drifted += u64::from(d);
        }
        features.insert(name.clone(), v);
    }
    let prediction = profile
        .prediction
        .as_ref()
        .map(|r| column_drift(&r.column, prediction, predictions, r.sampled, histograms))
        .unwrap_or(Value::Null);
    let share = if tested == 0 { Value::Null } else { json!(drifted as f64 / tested as f64) };
    json!({
        "reference": profile.source,
        "driftedFeatures": drifted,
        "testedFeatures": tested,
        "share": share,
        "datasetDrift": share.as_f64().map(|s| s >= 0.5),
        "features": features,
        "prediction": prediction,
    })
}

fn column_drift(reference: &Column, current: &Column, rows: u64, approximate: bool, histograms: bool) -> Value {
    let n = current.n();
    let kind = if matches!(reference, Column::Numbers(_)) { "NUMERIC" } else { "CATEGORY" };
    let mut v = json!({
        "type": kind,
        "referenceRows": reference.n(),
        "currentRows": n,
        "currentMissing": rows.saturating_sub(n),
        "approximate": approximate,
    });
    match stattest::drift(reference, current) {
        Some(d) => {
            v["method"] = json!(d.method);
            v["score"] = json!(d.score);
            v["statistic"] = json!(d.statistic);
            v["threshold"] = json!(d.threshold);
            v["drifted"] = json!(d.drifted);
            v["psi"] = json!(d.psi);
        }
        None => v["drifted"] = Value::Null,
    }
    if histograms {
        v["histogram"] = histogram(reference, current);
    }
    v
}

/// Reference and current shares for the page: Evidently's Sturges bins
/// for numbers, the 12 most frequent reference categories (and the rest).
fn histogram(reference: &Column, current: &Column) -> Value {
    let (nr, nc) = (reference.n().max(1) as f64, current.n().max(1) as f64);
    match (reference, current) {
        (Column::Numbers(r), Column::Numbers(c)) if !r.values.is_empty() => {
            let edges = stattest::sturges_edges(r, c);
            let share = |x: &Numbers, n: f64| -> Vec<f64> {
                stattest::histogram(x, &edges).iter().map(|k| *k as f64 / n).collect()
            };
            json!({"edges": edges, "reference": share(r, nr), "current": share(c, nc)})
        }
        (Column::Categories(r), Column::Categories(c)) => {
            let mut keys: Vec<&String> = r.keys().collect();
            keys.sort_by_key(|k| std::cmp::Reverse(r[*k]));
            keys.truncate(12);
            let share = |m: &Categories, n: f64| -> Vec<f64> {
                let mut out: Vec<f64> = keys.iter().map(|k| m.get(*k).copied().unwrap_or(0) as f64 / n).collect();
                out.push(1.0 - out.iter().sum::<f64>());
                out
            };
            let mut names: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
            names.push("(other)");
            json!({"categories": names, "reference": share(r, nr), "current": share(c, nc)})
        }
        _ => Value::Null,
    }
}
