//! `GET /metrics` in the Prometheus text format (docs/monitoring.md "Live
//! metrics"), on `prometheus-client`: request counters and latency
//! histograms counted on the request path (labels only from known
//! services and endpoints, so a caller cannot grow the label sets), and,
//! read at each scrape, the audit pipeline (per stream, target and
//! appender, from the audit runtime's counters) and the process. It owns
//! no audit state and never blocks a request on a scrape.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde_json::Value;

use audit::runtime::AuditRuntime;

/// Latency buckets, seconds: 0.5 ms to 10 s.
pub const DURATION_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The labels of one kind of call.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// The service (known services only).
    pub service: String,
    /// The endpoint, or `*` when the call was refused before one was found.
    pub endpoint: String,
    /// The generation that answered, or `-`.
    pub generation: String,
    /// `predict`, `predict-multi` or `predict-simple`.
    pub verb: String,
    /// The HTTP status.
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScoredLabels {
    service: String,
    endpoint: String,
    generation: String,
    outcome: &'static str,
}

/// One call kind's handles (the family's own, shared).
#[derive(Debug, Clone)]
struct CallHandles {
    generation: String,
    verb: String,
    status: u16,
    requests: Counter,
    duration: Histogram,
}

/// One generation's record counters.
#[derive(Debug, Clone)]
struct ScoredHandles {
    generation: String,
    scored: Counter,
    ignored: Counter,
}

/// service → endpoint → handles: found with `&str` under a read lock, so a
/// call allocates nothing and hashes no label set once its kind was seen.
type Cache<T> = RwLock<BTreeMap<String, BTreeMap<String, Vec<T>>>>;

/// The metrics the request path counts, and the registry a scrape encodes.
#[derive(Debug)]
pub struct Prometheus {
    registry: Registry,
    requests: Family<CallLabels, Counter>,
    durations: Family<CallLabels, Histogram>,
    scored: Family<ScoredLabels, Counter>,
    calls: Cache<CallHandles>,
    records: Cache<ScoredHandles>,
}

fn lock_read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn lock_write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Prometheus {
    /// The metrics of a node whose audit is `audit`, started at `started`
    /// (epoch seconds).
    pub fn new(audit: Arc<AuditRuntime>, started: f64) -> Prometheus {
        let mut registry = Registry::default();
        let requests = Family::<CallLabels, Counter>::default();
        let durations = Family::<CallLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(DURATION_BUCKETS)) as fn() -> Histogram,
        );
        let scored = Family::<ScoredLabels, Counter>::default();
        registry.register("apinode_requests", "Prediction calls to known services", requests.clone());
        registry.register(
            "apinode_request_duration_seconds",
            "Time from the request to the answer of prediction calls",
            durations.clone(),
        );
        registry.register(
            "apinode_records_scored",
            "Records scored (outcome scored) or ignored by the model",
            scored.clone(),
        );
        registry.register_collector(Box::new(AuditCollector { audit }));
        registry.register_collector(Box::new(ProcessCollector { started }));
        Prometheus { registry, requests, durations, scored, calls: Cache::default(), records: Cache::default() }
    }

    /// Counts one call of `verb` to `service`/`endpoint` answered by
    /// `generation` with `status`, that took `seconds`.
    pub fn call(&self, service: &str, endpoint: &str, generation: &str, verb: &str, status: u16, seconds: f64) {
        {
            let calls = lock_read(&self.calls);
            let found = calls
                .get(service)
                .and_then(|e| e.get(endpoint))
                .and_then(|v| v.iter().find(|h| h.status == status && h.generation == generation && h.verb == verb));
            if let Some(h) = found {
                h.requests.inc();
                h.duration.observe(seconds);
                return;
            }
        }
        let labels = &CallLabels {
            service: service.to_owned(),
            endpoint: endpoint.to_owned(),
            generation: generation.to_owned(),
            verb: verb.to_owned(),
            status,
        };
        let requests = self.requests.get_or_create(labels).clone();
        let duration = self.durations.get_or_create(labels).clone();
        let h = CallHandles {
            generation: labels.generation.clone(),
            verb: labels.verb.clone(),
            status: labels.status,
            requests,
            duration,
        };
        h.requests.inc();
        h.duration.observe(seconds);
        let mut calls = lock_write(&self.calls);
        let list = calls.entry(labels.service.clone()).or_default().entry(labels.endpoint.clone()).or_default();
        if !list.iter().any(|x| x.status == h.status && x.generation == h.generation && x.verb == h.verb) {
            list.push(h);
        }
    }

    /// Counts the records of one call.
    pub fn scored(&self, service: &str, endpoint: &str, generation: &str, scored: u64, ignored: u64) {
        let add = |h: &ScoredHandles| {
            if scored > 0 {
                h.scored.inc_by(scored);
            }
            if ignored > 0 {
                h.ignored.inc_by(ignored);
            }
        };
        {
            let records = lock_read(&self.records);
            let found = records
                .get(service)
                .and_then(|e| e.get(endpoint))
                .and_then(|v| v.iter().find(|h| h.generation == generation));
            if let Some(h) = found {
                add(h);
                return;
            }
        }
        let labels = |outcome| ScoredLabels {
            service: service.to_owned(),
            endpoint: endpoint.to_owned(),
            generation: generation.to_owned(),
            outcome,
        };
        // One statement per look-up: a family's guard lives to the end of
        // its statement, and a second look-up that inserts would wait for it.
        let scored_counter = self.scored.get_or_create(&labels("scored")).clone();
        let ignored_counter = self.scored.get_or_create(&labels("ignored")).clone();
        let h = ScoredHandles { generation: generation.to_owned(), scored: scored_counter, ignored: ignored_counter };
        add(&h);
        let mut records = lock_write(&self.records);
        let list = records.entry(service.to_owned()).or_default().entry(endpoint.to_owned()).or_default();
        if !list.iter().any(|x| x.generation == h.generation) {
            list.push(h);
        }
    }

    /// The exposition in the Prometheus text format 0.0.4.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            log::error!("Encoding /metrics failed: {e}");
        }
        classic_text(&out)
    }
}

/// The crate writes OpenMetrics, where a counter family is named without
/// its `_total` suffix and the text ends with `# EOF`; the Prometheus text
/// format (what `promtool check metrics` reads, and what every scraper
/// takes) names the family as its samples. Written by hand: no crate
/// converts between the two, and the change is only these lines.
fn classic_text(open_metrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = open_metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .filter(|name| !name.ends_with("_total"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len() + 64);
    for line in open_metrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let described = ["# HELP ", "# TYPE "].iter().find_map(|p| Some((*p, line.strip_prefix(p)?)));
        match described.and_then(|(p, rest)| Some((p, rest.split_once(' ')?))) {
            Some((p, (name, tail))) if counters.contains(name) => {
                out.push_str(p);
                out.push_str(name);
                out.push_str("_total ");
                out.push_str(tail);
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// One labelled family written by hand at scrape time.
fn family<M: EncodeMetric, L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    rows: impl IntoIterator<Item = (L, M)>,
) -> Result<(), std::fmt::Error> {
    let mut rows = rows.into_iter().peekable();
    if rows.peek().is_none() {
        return Ok(());
    }
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in rows {
        value.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// Short stream names: `dku.apinode.audit.queries` → `queries`.
fn stream(logger: &str) -> String {
    logger.strip_prefix("dku.apinode.audit.").unwrap_or(logger).to_owned()
}

/// The audit pipeline, read from the runtime's counters at each scrape.
#[derive(Debug)]
struct AuditCollector {
    audit: Arc<AuditRuntime>,
}

impl Collector for AuditCollector {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = self.audit.snapshot();
        let w = &s["writer"];
        let mut records = Vec::new();
        for (result, key) in [("written", "writtenByLogger"), ("lost", "lost")] {
            for (logger, n) in w[key].as_object().into_iter().flatten() {
                records.push(([("stream", stream(logger)), ("result", result.to_owned())], ConstCounter::new(u(n))));
            }
        }
        family(
            &mut e,
            "apinode_audit_records",
            "Audit records committed to or lost by the files, per stream",
            MetricType::Counter,
            records,
        )?;
        let mut depth = vec![([("stream", "writer".to_owned())], ConstGauge::new(u(&w["queued"]) as i64))];
        let targets: Vec<(&String, &Value)> =
            s["targets"].as_object().into_iter().flatten().filter(|(_, t)| t.get("delivered").is_some()).collect();
        for (name, t) in &targets {
            depth.push(([("stream", (*name).clone())], ConstGauge::new(u(&t["queued"]) as i64)));
        }
        family(
            &mut e,
            "apinode_audit_queue_depth",
            "Audit records waiting in memory: the file writer's queue, each network target's",
            MetricType::Gauge,
            depth,
        )?;
        let mut events = Vec::new();
        for (name, t) in &targets {
            for result in ["delivered", "spooled", "replayed", "dropped", "rejected"] {
                events.push((
                    [("target", (*name).clone()), ("result", result.to_owned())],
                    ConstCounter::new(u(&t[result])),
                ));
            }
        }
        family(
            &mut e,
            "apinode_audit_target_events",
            "Audit records per network target and outcome",
            MetricType::Counter,
            events,
        )?;
        let spool =
            targets.iter().map(|(n, t)| ([("target", (*n).clone())], ConstGauge::new(u(&t["spoolBytes"]) as i64)));
        family(&mut e, "apinode_audit_spool_bytes", "Bytes in each network target's spool", MetricType::Gauge, spool)?;
        let lag = targets.iter().map(|(n, t)| {
            ([("target", (*n).clone())], ConstGauge::new(t["deliveryLagSeconds"].as_f64().unwrap_or(0.0)))
        });
        family(
            &mut e,
            "apinode_audit_delivery_lag_seconds",
            "Seconds since a network target last delivered, while records wait for it (0 when none wait)",
            MetricType::Gauge,
            lag,
        )?;
        let retention = s["retention"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(a, r)| ([("appender", a.clone())], ConstCounter::new(u(&r["deletedRecords"]))));
        family(
            &mut e,
            "apinode_audit_retention_deleted_records",
            "Audit records deleted by retention, per appender (each file announced first)",
            MetricType::Counter,
            retention,
        )?;
        let ages = s["checkpointAgeSeconds"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(a, age)| ([("appender", a.clone())], ConstGauge::new(age.as_f64().unwrap_or(0.0))));
        family(
            &mut e,
            "apinode_audit_checkpoint_age_seconds",
            "Seconds since each audit file's last signed checkpoint",
            MetricType::Gauge,
            ages,
        )?;
        let failing = ConstGauge::new(i64::from(s["failing"].as_bool().unwrap_or(false)));
        failing.encode(e.encode_descriptor(
            "apinode_audit_failing",
            "1 while an audit file cannot be written",
            None,
            MetricType::Gauge,
        )?)?;
        Ok(())
    }
}

/// The standard `process_*` metrics, read from `/proc/self` at each scrape.
#[derive(Debug)]
struct ProcessCollector {
    started: f64,
}

impl Collector for ProcessCollector {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let p = crate::process::sample();
        let cpu = (p.user_cpu_ms + p.system_cpu_ms) as f64 / 1000.0;
        let c = ConstCounter::new(cpu);
        c.encode(e.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            MetricType::Counter,
        )?)?;
        let gauges: [(&str, &str, f64); 5] = [
            ("process_resident_memory_bytes", "Resident memory size in bytes", (p.rss_kb * 1024) as f64),
            ("process_virtual_memory_bytes", "Virtual memory size in bytes", (p.virtual_kb * 1024) as f64),
            ("process_open_fds", "Number of open file descriptors", crate::process::open_fds() as f64),
            ("process_max_fds", "Maximum number of open file descriptors", crate::process::max_fds() as f64),
            ("process_start_time_seconds", "Start time of the process since the Unix epoch in seconds", self.started),
        ];
        for (name, help, v) in gauges {
            ConstGauge::new(v).encode(e.encode_descriptor(name, help, None, MetricType::Gauge)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_and_records_are_counted_once_per_kind_and_encoded() {
        let (audit, _memory) = AuditRuntime::in_memory("t");
        let p = Prometheus::new(audit, 0.0);
        for _ in 0..3 {
            p.call("s", "e", "v1", "predict", 200, 0.001);
            p.scored("s", "e", "v1", 2, 1);
        }
        p.call("s", "e", "v1", "predict", 400, 0.001);
        let text = p.encode();
        assert!(
            text.contains(
                r#"apinode_requests_total{service="s",endpoint="e",generation="v1",verb="predict",status="200"} 3"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"status="400"} 1"#), "{text}");
        assert!(
            text.contains(
                r#"apinode_records_scored_total{service="s",endpoint="e",generation="v1",outcome="scored"} 6"#
            )
        );
        assert!(text.contains(r#"outcome="ignored"} 3"#));
        assert!(text.contains("# TYPE apinode_requests_total counter") && !text.contains("# EOF"));
    }
}
