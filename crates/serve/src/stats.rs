//! The counters of one server, for its metrics. No I/O.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

/// Counters of the server.
#[derive(Debug, Default)]
pub struct ServeStats {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections closed at once because `maxConnections` were open.
    pub refused: AtomicU64,
    /// Connections closed for idleness or a slow request head.
    pub timed_out: AtomicU64,
    /// Connections open now.
    pub open: AtomicU64,
    /// TLS handshakes that failed (no or a wrong client certificate, a
    /// client that does not trust the server, plain HTTP on a TLS port).
    pub tls_failed: AtomicU64,
}

impl ServeStats {
    /// The counters as JSON.
    pub fn snapshot(&self) -> Value {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        json!({"accepted": load(&self.accepted), "refused": load(&self.refused), "timedOut": load(&self.timed_out),
               "open": load(&self.open), "tlsFailed": load(&self.tls_failed)})
    }
}
