//! Counters for `/admin/api/metrics`: requests, errors and a latency
//! histogram per service and endpoint: an HDR histogram of microseconds
//! with two significant digits, so every percentile is within 1% of the
//! exact one (hdrhistogram; a short lock per request). No I/O.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use hdrhistogram::Histogram;

use serde_json::{Value, json};

/// Counters of the server, for the metrics (the accept loop's own).
pub use serve::ServeStats;

/// Latencies above an hour are counted as an hour.
const MAX_MICROS: u64 = 3_600_000_000;

/// The counters of one endpoint.
#[derive(Debug)]
pub struct Counters {
    requests: AtomicU64,
    errors: AtomicU64,
    scoring_us: AtomicU64,
    latency: Mutex<Histogram<u64>>,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            scoring_us: AtomicU64::new(0),
            latency: Mutex::new(Histogram::new_with_bounds(1, MAX_MICROS, 2).expect("valid bounds")),
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
        let mut h = self.latency.lock().unwrap_or_else(PoisonError::into_inner);
        h.saturating_record(micros.clamp(1, MAX_MICROS));
    }

    fn snapshot(&self) -> Value {
        let h = self.latency.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let q = |q: f64| if h.is_empty() { 0 } else { h.value_at_quantile(q) };
        json!({
            "requests": self.requests.load(Ordering::Relaxed),
            "errors": self.errors.load(Ordering::Relaxed),
            "latencyUs": {"p50": q(0.5), "p95": q(0.95), "p99": q(0.99), "p999": q(0.999), "max": h.max(),
                          "mean": (h.mean() * 10.0).round() / 10.0},
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
    fn percentiles_are_within_one_percent_of_the_exact_ones() {
        let m = Metrics::default();
        // 1.1 ms and 2.0 ms used to read alike (2048 µs); a spread of values.
        let mut values: Vec<u64> = (0..10_000u64).map(|i| 100 + (i * i) % 90_000).collect();
        values.extend([1_100, 2_000]);
        for v in &values {
            m.record("s", "e", true, *v, 0);
        }
        values.sort_unstable();
        let snapshot = m.snapshot();
        let l = &snapshot["services"]["s"]["endpoints"]["e"]["latencyUs"];
        for (key, q) in [("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999)] {
            let exact = values[((q * values.len() as f64).ceil() as usize).saturating_sub(1)] as f64;
            let got = l[key].as_f64().expect("number");
            assert!((got - exact).abs() <= exact * 0.01, "{key}: {got} vs exact {exact}");
        }
        let one = Metrics::default();
        one.record("a", "b", true, 1_100, 0);
        let two = Metrics::default();
        two.record("a", "b", true, 2_000, 0);
        let p = |m: &Metrics| m.snapshot()["services"]["a"]["endpoints"]["b"]["latencyUs"]["p50"].as_u64();
        assert_ne!(p(&one), p(&two), "1.1 ms and 2.0 ms no longer read alike");
    }

    #[test]
    fn counts_and_percentiles() {
        let m = Metrics::default();
        for us in [10, 20, 30, 5000] {
            m.record("s", "e", us != 5000, us, us / 2);
        }
        let v = m.snapshot();
        let e = &v["services"]["s"]["endpoints"]["e"];
        assert_eq!((e["requests"].as_u64(), e["errors"].as_u64()), (Some(4), Some(1)));
        assert_eq!(e["latencyUs"]["p50"], 20, "the second of four");
        let p99 = e["latencyUs"]["p99"].as_f64().expect("p99");
        assert!((p99 - 5000.0).abs() <= 50.0, "within 1% of 5000: {p99}");
        assert_eq!(m.usage()["s"], (4, 5 + 10 + 15 + 2500));
    }
}
