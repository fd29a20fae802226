//! serve: the accept loop apinode and its event server share
//! (docs/security.md "Hostile and slow clients", "TLS"). It owns the
//! listener and every connection: at most `maxConnections` open (one more
//! is closed at once and counted), a request head within its timeout, idle
//! connections closed, a graceful stop bounded in time, and, when given
//! certificates, TLS with rustls, with client certificates checked against
//! a CA and their name handed to the application. It knows no route.
//!
//! # Layout
//!
//! - [`listener`]: the accept loop, per-connection service, graceful stop.
//! - [`idle`]: the idle timeout of a connection.
//! - [`tls`]: certificate files, the rustls server and client settings, the
//!   name of a client certificate, plain HTTP sent to a TLS port.
//! - [`stats`]: the counters the servers show in their metrics.

pub mod idle;
pub mod listener;
pub mod stats;
pub mod tls;

pub use listener::{ServeLimits, serve};
pub use stats::ServeStats;
pub use tls::{ClientName, TlsError, TlsFiles, TlsSettings};
