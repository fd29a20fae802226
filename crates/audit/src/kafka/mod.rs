//! Kafka, on rdkafka: the producer every Kafka path shares, the KAFKA audit
//! target, plain records for the log4j appender and entity audit, and the
//! `kafkaConnections` section of `config/server.json`. Every path delivers
//! through `dispatch::delivery` (queue, worker, spool, onFull, drain), so a
//! broker outage delays records and never loses them.
//!
//! - [`producer`]: the rdkafka producer and its audit-trail settings.
//! - [`target`]: topic templates and the KAFKA target's sink.
//! - [`record`]: a plain Kafka record and its sink.
//! - [`appender`]: `KafkaLog4jAppender`, a log4rs appender.

pub mod appender;
pub mod producer;
pub mod record;
pub mod target;

use std::collections::BTreeMap;

use serde_json::Value;

/// Named connections: librdkafka properties each (`bootstrap.servers`, ...).
pub type Connections = BTreeMap<String, Vec<(String, String)>>;

/// Reads `kafkaConnections`: `{"main": {"bootstrap.servers": "host:9092", ...}}`.
/// Each connection's properties are checked as librdkafka reads them
/// (without creating a client), so a bad broker list or an unknown property
/// stops the node at start.
///
/// # Errors
/// Every problem, as (path, message).
pub fn parse_connections(value: Option<&Value>) -> Result<Connections, Vec<(String, String)>> {
    let mut out = Connections::new();
    let mut problems = Vec::new();
    let Some(value) = value else { return Ok(out) };
    let Some(map) = value.as_object() else {
        return Err(vec![("kafkaConnections".into(), "must be an object of named connections".into())]);
    };
    for (name, props) in map {
        let path = format!("kafkaConnections.{name}");
        let Some(props) = props.as_object() else {
            problems.push((path, "must be an object of librdkafka properties".into()));
            continue;
        };
        let mut list = Vec::new();
        for (k, v) in props {
            match v {
                Value::String(s) => list.push((k.clone(), s.clone())),
                Value::Number(n) => list.push((k.clone(), n.to_string())),
                Value::Bool(b) => list.push((k.clone(), b.to_string())),
                _ => problems.push((format!("{path}.{k}"), "must be a string, number or boolean".into())),
            }
        }
        match producer::check(&list) {
            Ok(()) => {
                out.insert(name.clone(), list);
            }
            Err(e) => problems.push((path, e)),
        }
    }
    if problems.is_empty() { Ok(out) } else { Err(problems) }
}
