//! Compute resource usage (docs/audit.md "Compute resource usage"): every period
//! (a minute unless `auditLog.computeResourceUsageIntervalSeconds` says
//! otherwise) and once at stop, one `compute-resource-usage` message
//! describing the node as a `LOCAL_PROCESS` (pid, start time, user and
//! system CPU, RSS and peak RSS, read from `/proc/self`) with, per service,
//! the requests and the time spent scoring during the period. The same tick
//! reports audit messages dropped by full spools on `generic-failure`. Owns
//! the sampling and the message shape; the dispatcher delivers it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use audit::{AuditRuntime, Topic};
use log::Level;
use serde_json::{Map, json};

use crate::audit_log;
use crate::metrics::Metrics;
use crate::state::Node;

pub use crate::process::{ProcessSample, sample};

/// What the previous period ended with.
#[derive(Debug, Default)]
struct Period {
    started: Option<String>,
    per_service: BTreeMap<String, (u64, u64)>,
    dropped: u64,
}

fn mb(kb: u64) -> f64 {
    (kb as f64 / 1024.0 * 10.0).round() / 10.0
}

/// The resource-usage reports of one node run (cheap to clone; clones share
/// the period).
#[derive(Debug, Clone)]
pub struct Usage {
    node_id: Arc<str>,
    started_at: Arc<str>,
    period: Arc<Mutex<Period>>,
}

impl Usage {
    /// Reports of node `node_id`, started at `started_at` (RFC 3339).
    pub fn new(node_id: &str, started_at: String) -> Usage {
        Usage { node_id: node_id.into(), started_at: started_at.into(), period: Arc::default() }
    }

    /// The messages of the period that ends now: its usage (`complete` at
    /// stop) and, when audit messages were dropped since the last period,
    /// a `generic-failure` saying how many.
    pub fn messages(&self, metrics: &Metrics, audit: &AuditRuntime, complete: bool) -> Vec<audit::Message> {
        let mut p = self.period.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = vec![self.usage_message(metrics, &mut p, complete)];
        out.extend(self.drops_message(audit, &mut p));
        out
    }

    /// [`Usage::messages`] of the last period, at stop.
    pub fn final_messages(&self, metrics: &Metrics, audit: &AuditRuntime) -> Vec<audit::Message> {
        self.messages(metrics, audit, true)
    }

    fn usage_message(&self, metrics: &Metrics, period: &mut Period, complete: bool) -> audit::Message {
        let now = audit_log::now();
        let p = sample();
        let usage = metrics.usage();
        let mut services = Map::new();
        for (service, (requests, scoring_us)) in &usage {
            let (r0, us0) = period.per_service.get(service).copied().unwrap_or((0, 0));
            services.insert(
                service.clone(),
                json!({"requests": requests.saturating_sub(r0), "scoringCpuMs": (scoring_us.saturating_sub(us0)) / 1000}),
            );
        }
        let details = json!({
            "computeResourceUsage": {
                "type": "LOCAL_PROCESS",
                "localProcess": {
                    "pid": std::process::id(),
                    "startTime": &*self.started_at,
                    "cpuUserTimeMS": p.user_cpu_ms,
                    "cpuSystemTimeMS": p.system_cpu_ms,
                    "memoryRSSMB": mb(p.rss_kb),
                    "memoryPeakRSSMB": mb(p.peak_rss_kb),
                },
            },
            "periodStart": period.started.clone().unwrap_or_else(|| self.started_at.to_string()),
            "periodEnd": now,
            "services": services,
        });
        period.started = Some(now);
        period.per_service = usage;
        let msg_type = if complete { "compute-resource-usage-complete" } else { "compute-resource-usage-update" };
        audit::Message::event(Topic::ComputeResourceUsage, Level::Info, &self.node_id, msg_type, None, details)
    }

    /// A `generic-failure` message when audit messages were dropped since
    /// the last call.
    fn drops_message(&self, audit: &AuditRuntime, period: &mut Period) -> Option<audit::Message> {
        let dropped = audit.dropped();
        let new = dropped.saturating_sub(period.dropped);
        period.dropped = dropped;
        (new > 0).then(|| {
            log::error!("{new} audit messages were dropped because a target's spool was full (onFull: DROP)");
            audit::Message::event(
                Topic::GenericFailure,
                Level::Error,
                &self.node_id,
                "audit-messages-dropped",
                None,
                json!({"dropped": new, "droppedSinceStart": dropped, "targets": audit.snapshot()["targets"]}),
            )
        })
    }

    /// Sends the period's messages every `auditLog.computeResourceUsageIntervalSeconds`
    /// until the task is aborted.
    pub async fn run(self, node: Arc<Node>) {
        let interval = node.config.audit.cru_interval;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        loop {
            tick.tick().await;
            let messages = self.messages(&node.metrics, &node.audit, false);
            let _ = node.record(messages).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_cpu_and_memory() {
        let s = sample();
        assert!(s.rss_kb > 0 && s.peak_rss_kb >= s.rss_kb, "{s:?}");
        let spin = std::time::Instant::now();
        let mut x = 0u64;
        while spin.elapsed() < std::time::Duration::from_millis(50) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        assert!(sample().user_cpu_ms + sample().system_cpu_ms > 0);
    }
}
