//! Audit: what the node records about itself, and where it goes.
//!
//! Every audit message has a [`Topic`] set by the node's code (never by a
//! caller), which decides the logger it is written to (`dku.apinode.audit.*`).
//! The whole process logs through log4rs, configured from log4j 1.x
//! properties: [`log4j`] translates them, [`appender`] and [`layout`] provide
//! log4j's file appenders and layouts, and [`writer`] puts a queue and one
//! writer thread between callers and the files, so that a request never
//! waits on disk. Every audit [`Message`] goes through the [`dispatch`]er,
//! which hands it to its targets: the LOG4J target (the writer) and network
//! targets with a queue, a worker and a disk spool each. This crate has no
//! HTTP server and no model code.
//!
//! # Layout
//!
//! - [`topic`]: the audit topics and their loggers.
//! - [`message`]: a message, its routing key and event id.
//! - [`dispatch`]: targets, filters, delivery, spool, the event server sink.
//! - [`kafka`]: the rdkafka producer, the KAFKA target, the Kafka log4j appender.
//! - [`log4j`]: properties → typed model → log4rs configuration.
//! - [`layout`]: `PatternLayout` and `JSONAuditLayout` encoders.
//! - [`appender`]: log4j's File, RollingFile and DailyRollingFile appenders.
//! - [`writer`]: the global asynchronous logger and its drain on stop.

pub mod appender;
pub mod dispatch;
pub mod kafka;
pub mod layout;
pub mod log4j;
pub mod message;
pub mod topic;
pub mod writer;

pub use message::{EventId, Message, RoutingKey};
pub use topic::Topic;
