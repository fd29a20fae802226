//! Audit: what the node records about itself, and where it goes.
//!
//! Every audit [`Message`] has a [`Topic`] set by the node's code (never by a
//! caller), which decides the logger it is written to (`dku.apinode.audit.*`).
//! The whole process logs through log4rs, configured from log4j 1.x
//! properties: [`log4j`] translates them, [`appender`] and [`layout`] provide
//! log4j's file appenders and layouts, and [`writer`] puts a queue and one
//! writer thread between callers and the files, so that a request never
//! waits on disk. Every audit message goes through the [`dispatch`]er, which
//! hands it to its targets: the LOG4J target (the writer) and network
//! targets, each with the queue, worker, spool and dead letters of
//! [`delivery`]. One [`runtime::AuditRuntime`] value owns all of it for a
//! node, and stops it in order. The contract is in the repository's
//! `docs/audit.md` and `docs/logging.md`. This crate has no HTTP server and
//! no model code.
//!
//! # Layout
//!
//! - [`message`]: a message (topics, routing keys and event ids come from `audit-types`).
//! - [`commit`]: durability modes, write-failure policy, the tickets senders wait on.
//! - [`runtime`]: the audit runtime of a node: dispatcher, entity audit,
//!   appenders, writer, reports, ordered shutdown.
//! - [`dispatch`]: targets, filters, the event server sink, the in-memory target.
//! - [`delivery`]: queue, worker, spool, dead letters, the sink contract.
//! - [`kafka`]: Kafka settings, the rdkafka producer, the KAFKA target, the Kafka log4j appender.
//! - [`log4j`]: properties → typed model → log4rs configuration.
//! - [`layout`]: `PatternLayout` and `JSONAuditLayout` encoders.
//! - [`appender`]: log4j's File, RollingFile and DailyRollingFile appenders, and their registry.
//! - [`writer`]: the asynchronous logger and its drain on stop.
//! - [`integrity`]: Merkle trees of the file appenders, signed checkpoints, offline verify and prove.
//! - [`record_context`]: the time and thread of a record's call, for layouts.
//! - [`report`]: the events the trail's parts report about themselves.

pub mod appender;
pub mod commit;
pub mod delivery;
pub mod dispatch;
pub mod integrity;
pub mod kafka;
pub mod layout;
pub mod log4j;
pub mod message;
pub mod record_context;
pub mod report;
pub mod runtime;
pub mod writer;

pub use audit_types::{Filter, Topic, topic};
pub use message::{EventId, Message, RoutingKey};
pub use runtime::AuditRuntime;
