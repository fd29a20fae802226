//! eventserver: the central collector of the audit of many apinodes
//! (Dataiku's Event Server). Nodes post batches of audit messages to
//! `POST /events`; each message is checked, routed to the destinations whose
//! topic and routing-key filters take it, written as a JSON line under
//! `<root>/<topic>/<routingKey>/YYYY/MM/DD/HH/`, synced, and only then
//! acknowledged. Retries are recognised by `eventId` and stored once. It is
//! also the witness of the nodes' signed audit checkpoints: an inconsistent
//! one is refused. It serves HTTP or HTTPS through the `serve` crate; over
//! mutual TLS each event is stored with the client certificate's name, and a
//! destination may take only one certificate's events.
//!
//! # Layout
//!
//! - [`config`]: `config/eventserver.json`, validated with paths.
//! - [`ingest`]: reading and checking one batch (nothing stored if any event is bad).
//! - [`store`]: files by topic / routing key / hour, fsync, deduplication.
//! - [`witness`]: checkpoint signatures and consistency, the latest note per origin.
//! - [`server`]: the HTTP routes, key checks, lifecycle.

pub mod config;
pub mod ingest;
pub mod server;
pub mod store;
pub mod witness;
