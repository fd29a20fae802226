//! The monitor of the feedback loop (docs/monitoring.md "The monitor"):
//! reads query and feedback records from where the trail keeps them,
//! joins them, and writes `report.json`, `report.prom` and a
//! self-contained `report.html`. Runs offline (`apinode-admin monitor`);
//! it never changes the trail.
//!
//! # Layout
//!
//! - [`read`]: sources (audit files, rolled and `.gz`; event server folders) to records.
//! - [`kafka`]: a Kafka topic as a source, read with a consumer group.
//! - [`join`]: the join and the summaries per generation and window.
//! - [`perf`]: the performance metrics, as scikit-learn computes them.
//! - [`ks`]: the Kolmogorov-Smirnov p-values, as scipy computes them.
//! - [`html`]: the report page, with hand-written SVG charts.

pub mod html;
pub mod join;
pub mod kafka;
pub mod ks;
pub mod perf;
pub mod read;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use join::{Failures, Filter, Outcomes, Queries};

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

/// Reads `sources` for records of `topic`, handing each to `take`; returns
/// the files read and the lines that held no record.
fn scan(
    sources: &[PathBuf],
    topic: &str,
    service: &str,
    mut take: impl FnMut(&read::Rec<'_>),
) -> Result<(usize, u64), MonitorError> {
    let (mut files, mut unreadable) = (0, 0);
    for source in sources {
        if let Some(k) = source.to_str().and_then(kafka::KafkaSource::parse) {
            files += 1;
            kafka::read(&k, service, |text| match read::record(text) {
                Some(r) => take(&r),
                None => unreadable += 1,
            })
            .map_err(MonitorError::Kafka)?;
            continue;
        }
        let found = read::files(source).map_err(|e| MonitorError::Read { path: source.clone(), source: e })?;
        for path in found.iter().filter(|p| read::may_hold(p, topic) || found.len() == 1) {
            files += 1;
            read::lines(path, |line| {
                if line.is_empty() {
                    return;
                }
                match read::record(line) {
                    Some(r) => take(&r),
                    None => unreadable += 1,
                }
            })
            .map_err(|e| MonitorError::Read { path: path.clone(), source: e })?;
        }
    }
    Ok((files, unreadable))
}

/// The report of `options` (the JSON of `report.json`). Queries and
/// outcomes are read on two threads.
///
/// # Errors
/// When a source cannot be read.
pub fn report(options: &Options) -> Result<Value, MonitorError> {
    let (queries, outcomes) = std::thread::scope(|scope| {
        let feedback = scope.spawn(|| {
            let mut o = Outcomes::new(options.filter.clone());
            let (files, unreadable) =
                scan(&options.feedback, "apinode-feedback", &options.filter.service, |r| o.take(r))?;
            o.unreadable = unreadable;
            Ok::<_, MonitorError>((o, files))
        });
        let mut q = Queries::new(options.filter.clone());
        let queries = scan(&options.queries, "apinode-query", &options.filter.service, |r| q.take(r)).and_then(
            |(files, unreadable)| {
                q.unreadable = unreadable;
                // Refused requests, from the failure files beside the query files.
                let mut f = Failures::new(options.filter.clone());
                let local: Vec<PathBuf> = options
                    .queries
                    .iter()
                    .filter(|s| s.to_str().is_none_or(|t| !t.starts_with("kafka://")))
                    .cloned()
                    .collect();
                scan(&local, "generic-failure", &options.filter.service, |r| f.take(r))?;
                Ok((q, f, files))
            },
        );
        let outcomes = feedback.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        (queries, outcomes)
    });
    let ((queries, failures, query_files), (outcomes, feedback_files)) = (queries?, outcomes?);
    let mut report = join::summarise(&queries, &outcomes, options.window_ms);
    report["errors"] = failures.summary(options.window_ms);
    report["service"] = json!(options.filter.service);
    report["endpoint"] = json!(options.filter.endpoint);
    report["window"] = json!(options.window_text);
    report["since"] = json!(options.filter.since_ms.map(join::rfc3339));
    report["until"] = json!(options.filter.until_ms.map(join::rfc3339));
    report["generatedAt"] = json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    report["sources"] = json!({"queryFiles": query_files, "feedbackFiles": feedback_files});
    Ok(report)
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
