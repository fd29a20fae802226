//! Kafka, on rdkafka: the producer every Kafka path shares, the KAFKA audit
//! target, plain records for the log4j appender and entity audit, and the
//! `kafkaConnections` section of `config/server.json`. Every path delivers
//! through `crate::delivery` (queue, worker, spool, onFull, dead letters,
//! drain), so a broker outage delays records and never loses them, and a
//! record the broker will never take is kept aside instead of blocking the
//! rest.
//!
//! - [`config`]: connections, audit-trail defaults, topic templates (pure).
//! - [`producer`]: the rdkafka producer.
//! - [`target`]: the KAFKA target's sink.
//! - [`record`]: a plain Kafka record and its sink.
//! - [`appender`]: `KafkaLog4jAppender`, a log4rs appender.

pub mod appender;
pub mod config;
pub mod producer;
pub mod record;
pub mod target;

pub use config::{Connections, parse_connections};
