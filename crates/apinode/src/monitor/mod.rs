//! The monitor of the feedback loop (docs/monitoring.md "The monitor"):
//! reads query and feedback records from where the trail keeps them,
//! joins them, and writes `report.json`, `report.prom` and a
//! self-contained `report.html`. Runs offline (`apinode-admin monitor`);
//! it never changes the trail.
//!
//! # Layout
//!
//! - [`read`]: sources (audit files, rolled and `.gz`; event server folders) to records.
//! - [`scan`]: the sources read on two threads, big files shared in pieces.
//! - [`seen`]: event ids seen, so a record delivered twice counts once.
//! - [`kafka`]: a Kafka topic as a source, read with a consumer group.
//! - [`join`]: the join and the summaries per generation and window.
//! - [`perf`]: the performance metrics, as scikit-learn computes them.
//! - [`merge`]: partial runs written and combined (`--partial`, `--merge`).
//! - [`reference`]: reference profiles, from model files or a CSV file.
//! - [`drift`]: current values per generation and window, and their drift.
//! - [`features`]: a query record's features parsed for drift.
//! - [`stattest`]: one column's drift, as Evidently decides it by default.
//! - [`ks`]: the Kolmogorov-Smirnov p-values, as scipy computes them.
//! - [`chart`]: escaping, numbers and the SVG line chart the page's sections share.
//! - [`html`]: the report page, with hand-written SVG charts.
//! - [`html_drift`]: the page's drift section (table, histograms).

pub mod chart;
pub mod drift;
pub mod features;
pub mod html;
pub mod html_drift;
pub mod join;
pub mod kafka;
pub mod ks;
pub mod merge;
pub mod perf;
pub mod read;
pub mod reference;
pub mod scan;
pub mod seen;
pub mod stattest;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use join::Filter;

/// What to monitor, from where, into where.
#[derive(Debug, Clone)]
pub struct Options {
    /// Service, endpoint and time range.
    pub filter: Filter,
    /// Where query records are (files or folders).
    pub queries: Vec<PathBuf>,
    /// Where feedback records are (files or folders).
    pub feedback: Vec<PathBuf>,
    /// Window length, ms.
    pub window_ms: i64,
    /// The window as the user wrote it (`1h`).
    pub window_text: String,
    /// The service's generations folder (their model files hold the
    /// reference profiles).
    pub generations: Option<PathBuf>,
    /// `--reference FILE.csv`: the reference of every generation.
    pub reference: Option<PathBuf>,
    /// `--partial`: where to write what was read, for a later `--merge`.
    pub partial: Option<PathBuf>,
    /// `--merge`: partial runs to combine instead of reading sources.
    pub merge: Vec<PathBuf>,
}

/// Errors of a monitor run.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// A source cannot be read.
    #[error("cannot read {}", .path.display())]
    Read {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A reference cannot be read.
    #[error(transparent)]
    Reference(#[from] reference::ReferenceError),
    /// Partial runs cannot be written, read or combined.
    #[error(transparent)]
    Merge(#[from] merge::MergeError),
    /// A Kafka source cannot be read.
    #[error("{0}")]
    Kafka(String),
    /// The report cannot be written.
    #[error("cannot write {}", .path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The report of `options` (the JSON of `report.json`). Queries and
/// outcomes are read on two threads.
///
/// # Errors
/// When a source cannot be read.
pub fn report(options: &Options) -> Result<Value, MonitorError> {
    let references = reference::References::load(
        options.generations.as_deref(),
        options.filter.endpoint.as_deref(),
        options.reference.as_deref(),
    )?;
    let partial = if options.merge.is_empty() {
        scan::read(options, &references)?
    } else {
        let mut parts = Vec::new();
        for dir in &options.merge {
            parts.push((dir.clone(), merge::load(dir)?));
        }
        let merged = merge::merge(parts)?;
        let mismatch =
            |why: String| MonitorError::Merge(merge::MergeError::Mismatch { path: options.merge[0].clone(), why });
        if merged.window_ms != options.window_ms {
            return Err(mismatch(format!("window {} ms, not --window {}", merged.window_ms, options.window_text)));
        }
        if merged.queries.filter != options.filter {
            return Err(mismatch(format!("made for {:?}, not {:?}", merged.queries.filter, options.filter)));
        }
        merged
    };
    if let Some(dir) = &options.partial {
        merge::write(&partial, dir)?;
    }
    Ok(finish(partial, options, &references))
}

/// The report of what was read (or merged).
fn finish(partial: merge::Partial, options: &Options, references: &reference::References) -> Value {
    let merge::Partial { mut queries, mut outcomes, failures, files: (query_files, feedback_files), .. } = partial;
    // Repeats are dropped by now (and a partial run written): the event ids
    // can go before the summaries need their memory.
    queries.seen.forget();
    outcomes.seen.forget();
    queries.in_canonical_order();
    // Drift beside the join's summaries (which run on one core).
    let collector = queries.drift.take();
    let (drift, mut report) = std::thread::scope(|scope| {
        let drift = scope.spawn(|| {
            collector.map(|d| d.finish(queries.generations(), references, drift_threads())).unwrap_or_default()
        });
        let report = join::summarise(&queries, &outcomes, options.window_ms);
        (drift.join().unwrap_or_else(|p| std::panic::resume_unwind(p)), report)
    });
    attach_drift(&mut report, drift, options.window_ms);
    report["errors"] = failures.summary(options.window_ms);
    report["service"] = json!(options.filter.service);
    report["endpoint"] = json!(options.filter.endpoint);
    report["window"] = json!(options.window_text);
    report["since"] = json!(options.filter.since_ms.map(join::rfc3339));
    report["until"] = json!(options.filter.until_ms.map(join::rfc3339));
    report["generatedAt"] = json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    report["sources"] =
        json!({"queryFiles": query_files, "feedbackFiles": feedback_files, "merged": options.merge.len()});
    report
}

/// Threads for drift's tests: every core but the one the join's summaries
/// take (on 2 cores, sharing both with them made the summaries a second
/// slower than drift alone on one core), at most 8.
fn drift_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).saturating_sub(1).clamp(1, 8)
}

/// One line per generation on the whole period's drift, for people:
/// `drift v1: 2 of 4 features drifted (monthly_charges, plan); prediction drifted`.
pub fn drift_lines(report: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for (g, v) in report["generations"].as_object().into_iter().flatten() {
        let d = &v["overall"]["drift"];
        let Some(features) = d["features"].as_object() else {
            if let Some(why) = d["why"].as_str() {
                out.push(format!("drift {g}: {why}"));
            }
            continue;
        };
        let drifted: Vec<&str> =
            features.iter().filter(|(_, f)| f["drifted"] == true).map(|(n, _)| n.as_str()).collect();
        let prediction = match d["prediction"]["drifted"].as_bool() {
            Some(true) => "; prediction drifted",
            Some(false) => "; prediction stable",
            None => "",
        };
        out.push(format!(
            "drift {g}: {} of {} features drifted{}{prediction}{}",
            drifted.len(),
            d["testedFeatures"],
            if drifted.is_empty() { String::new() } else { format!(" ({})", drifted.join(", ")) },
            if d["datasetDrift"] == true { " — dataset drift" } else { "" },
        ));
    }
    out
}

/// Puts each generation's drift beside its other figures: the whole
/// period's in `overall.drift`, each window's in its window.
fn attach_drift(report: &mut Value, drift: std::collections::BTreeMap<String, Value>, window_ms: i64) {
    for (g, mut d) in drift {
        let Some(generation) = report["generations"].get_mut(&g) else { continue };
        generation["overall"]["drift"] = d["overall"].take();
        for w in generation["windows"].as_array_mut().into_iter().flatten() {
            let start = w["start"].as_str().and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
            if let Some(start) = start {
                let key = (start.timestamp_millis().div_euclid(window_ms) * window_ms).to_string();
                w["drift"] = d["windows"][&key].take();
            }
        }
    }
}

/// The headline figures in the Prometheus text format (a textfile collector's).
pub fn prom(report: &Value) -> String {
    let service = report["service"].as_str().unwrap_or_default();
    let mut out = String::new();
    let metrics = [
        ("records", "Query records read", &["records"][..]),
        ("labelled", "Query records with an outcome", &["labelled"]),
        ("join_rate", "Share of scored records with an outcome", &["joinRate"]),
        ("accuracy", "Accuracy of the labelled records", &["performance", "accuracy"]),
        ("roc_auc", "ROC AUC of the labelled records", &["performance", "rocAuc"]),
        ("log_loss", "Log loss of the labelled records", &["performance", "logLoss"]),
        ("rmse", "RMSE of the labelled records", &["performance", "rmse"]),
        ("mae", "MAE of the labelled records", &["performance", "mae"]),
    ];
    for (name, help, path) in metrics {
        let mut lines = Vec::new();
        for (g, v) in report["generations"].as_object().into_iter().flatten() {
            let mut x = &v["overall"];
            for p in path {
                x = &x[*p];
            }
            if let Some(n) = x.as_f64() {
                lines.push(format!("apinode_monitor_{name}{{service=\"{service}\",generation=\"{g}\"}} {n}"));
            }
        }
        if !lines.is_empty() {
            out.push_str(&format!("# HELP apinode_monitor_{name} {help}.\n# TYPE apinode_monitor_{name} gauge\n"));
            for l in lines {
                out.push_str(&l);
                out.push('\n');
            }
        }
    }
    out.push_str(&drift_prom(report, service));
    out
}

/// Escapes a Prometheus label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The whole period's drift per generation and feature.
fn drift_prom(report: &Value, service: &str) -> String {
    let mut share = Vec::new();
    let mut dataset = Vec::new();
    let mut drifted = Vec::new();
    let mut score = Vec::new();
    let mut psi = Vec::new();
    for (g, v) in report["generations"].as_object().into_iter().flatten() {
        let d = &v["overall"]["drift"];
        let base = format!("service=\"{}\",generation=\"{}\"", label(service), label(g));
        if let Some(s) = d["share"].as_f64() {
            share.push(format!("{{{base}}} {s}"));
            dataset.push(format!("{{{base}}} {}", u8::from(d["datasetDrift"] == true)));
        }
        let prediction = [("(prediction)".to_owned(), &d["prediction"])];
        let columns = d["features"].as_object().into_iter().flatten().map(|(k, v)| (k.clone(), v));
        for (name, f) in columns.chain(prediction.iter().map(|(k, v)| (k.clone(), *v))) {
            let Some(is) = f["drifted"].as_bool() else { continue };
            let l = format!("{base},feature=\"{}\"", label(&name));
            drifted.push(format!("{{{l}}} {}", u8::from(is)));
            if let (Some(s), Some(m)) = (f["score"].as_f64(), f["method"].as_str()) {
                score.push(format!("{{{l},method=\"{m}\"}} {s}"));
            }
            if let Some(p) = f["psi"].as_f64() {
                psi.push(format!("{{{l}}} {p}"));
            }
        }
    }
    let mut out = String::new();
    for (name, help, lines) in [
        ("drift_share", "Share of tested features that drifted, whole period", share),
        ("dataset_drift", "1 when at least half the features drifted, whole period", dataset),
        ("feature_drifted", "1 when the feature (or the prediction) drifted, whole period", drifted),
        ("feature_drift_score", "The drift test's p-value or distance, whole period", score),
        ("feature_psi", "Population stability index, whole period", psi),
    ] {
        if lines.is_empty() {
            continue;
        }
        let _ = writeln!(out, "# HELP apinode_monitor_{name} {help}.\n# TYPE apinode_monitor_{name} gauge");
        for l in lines {
            let _ = writeln!(out, "apinode_monitor_{name}{l}");
        }
    }
    out
}

/// Writes `report.json`, `report.prom` and `report.html` into `dir`.
///
/// # Errors
/// When a file cannot be written.
pub fn write(report: &Value, dir: &Path) -> Result<(), MonitorError> {
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(|e| MonitorError::Write { path, source: e })
    };
    std::fs::create_dir_all(dir).map_err(|e| MonitorError::Write { path: dir.to_path_buf(), source: e })?;
    write("report.json", &serde_json::to_vec_pretty(report).unwrap_or_default())?;
    write("report.prom", prom(report).as_bytes())?;
    write("report.html", html::page(report).as_bytes())
}

/// Reads `1h`, `30m`, `1d`, `90s` as milliseconds.
pub fn parse_window(text: &str) -> Option<i64> {
    let (n, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit())?);
    let n: i64 = n.parse().ok().filter(|n| *n > 0)?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    Some(n * unit_ms)
}
