//! Counters for `/admin/api/metrics`: requests, errors and a latency
//! histogram per service and endpoint (log2 buckets of microseconds, so the
//! percentiles are upper bounds within a factor of two). Lock-free on the
//! request path once an endpoint has been seen; no I/O.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde_json::{Value, json};

/// Counters of the server, for the metrics (the accept loop's own).
pub use serve::ServeStats;

const BUCKETS: usize = 40;

/// The counters of one endpoint.
#[derive(Debug)]
pub struct Counters {
    requests: AtomicU64,
    errors: AtomicU64,
    scoring_us: AtomicU64,
    buckets: [AtomicU64; BUCKETS],
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            scoring_us: AtomicU64::new(0),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl Counters {
    fn record(&self, ok: bool, micros: u64, scoring_us: u64) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if scoring_us > 0 {
            self.scoring_us.fetch_add(scoring_us, Ordering::Relaxed);
        }
        if !ok {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let bucket = (64 - micros.leading_zeros() as usize).min(BUCKETS - 1);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
    }

    fn percentile(&self, counts: &[u64], q: f64) -> u64 {
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0;
        }
        let target = (q * total as f64).ceil() as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= target {
                return 1u64 << i;
            }
        }
        1u64 << (BUCKETS - 1)
    }

    fn snapshot(&self) -> Value {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        json!({
            "requests": self.requests.load(Ordering::Relaxed),
            "errors": self.errors.load(Ordering::Relaxed),
            "latencyUs": {"p50": self.percentile(&counts, 0.5), "p95": self.percentile(&counts, 0.95), "p99": self.percentile(&counts, 0.99)},
        })
    }
}

/// Every endpoint's counters. Endpoint `*` counts a service's calls refused
/// before an endpoint was resolved.
#[derive(Debug, Default)]
pub struct Metrics {
    /// service → endpoint → counters; searched with `&str`, no allocation
    /// once an endpoint has been seen.
    endpoints: RwLock<BTreeMap<String, BTreeMap<String, Arc<Counters>>>>,
}

impl Metrics {
    /// Counts one call that took `micros`, `scoring_us` of them scoring.
    pub fn record(&self, service: &str, endpoint: &str, ok: bool, micros: u64, scoring_us: u64) {
        let found = self
            .endpoints
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(service)
            .and_then(|e| e.get(endpoint))
            .cloned();
        let counters = match found {
            Some(c) => c,
            None => self
                .endpoints
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(service.to_owned())
                .or_default()
                .entry(endpoint.to_owned())
                .or_default()
                .clone(),
        };
        counters.record(ok, micros, scoring_us);
    }

    /// Per service, since the start: requests and microseconds spent scoring.
    pub fn usage(&self) -> BTreeMap<String, (u64, u64)> {
        let endpoints = self.endpoints.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        endpoints
            .iter()
            .map(|(s, eps)| {
                let sum = eps.values().fold((0, 0), |(r, us), c| {
                    (r + c.requests.load(Ordering::Relaxed), us + c.scoring_us.load(Ordering::Relaxed))
                });
                (s.clone(), sum)
            })
            .collect()
    }

    /// Forgets a deleted service's counters.
    pub fn forget(&self, service: &str) {
        self.endpoints.write().unwrap_or_else(std::sync::PoisonError::into_inner).remove(service);
    }

    /// `{"services": {svc: {"endpoints": {ep: {...}}}}}` (the admin route
    /// adds the audit runtime's counters under `audit`).
    pub fn snapshot(&self) -> Value {
        let mut services = serde_json::Map::new();
        for (s, endpoints) in self.endpoints.read().unwrap_or_else(std::sync::PoisonError::into_inner).iter() {
            let endpoints: serde_json::Map<String, Value> =
                endpoints.iter().map(|(e, c)| (e.clone(), c.snapshot())).collect();
            services.insert(s.clone(), json!({"endpoints": endpoints}));
        }
        json!({"services": services})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_percentiles() {
        let m = Metrics::default();
        for us in [10, 20, 30, 5000] {
            m.record("s", "e", us != 5000, us, us / 2);
        }
        let v = m.snapshot();
        let e = &v["services"]["s"]["endpoints"]["e"];
        assert_eq!((e["requests"].as_u64(), e["errors"].as_u64()), (Some(4), Some(1)));
        // Values in bucket b lie in [2^(b-1), 2^b); a percentile is reported as 2^b.
        assert_eq!(e["latencyUs"]["p50"], 32, "20 µs is in the 16..32 bucket");
        assert_eq!(e["latencyUs"]["p99"], 8192, "5000 µs is in the 4096..8192 bucket");
        assert_eq!(m.usage()["s"], (4, 5 + 10 + 15 + 2500));
    }
}
