//! A plain Kafka record (topic, key, value, headers) for the paths that are
//! not audit messages: the log4j appender's lines and the CDAP entity
//! messages. It spools as one JSON line. [`RecordSink`] produces batches of
//! them. No message format is known here.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::producer::{Outgoing, Producer};
use crate::delivery::{Delivery, DeliverySettings, Events, Failure, Record, Sink};

/// One record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaRecord {
    /// The Kafka topic.
    pub topic: String,
    /// The key, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The value.
    pub value: String,
    /// Headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
}

impl Record for KafkaRecord {
    fn line(&self) -> Cow<'_, str> {
        Cow::Owned(serde_json::to_string(self).unwrap_or_default())
    }
    fn from_line(line: &str) -> Result<Self, String> {
        serde_json::from_str(line).map_err(|e| e.to_string())
    }
    fn droppable(&self) -> bool {
        false
    }
    fn event_id(&self) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == "eventId").map(|(_, v)| v.as_str())
    }
}

/// Starts a delivery queue of plain records (onFull BLOCK, default spool cap
/// and queue) producing with `properties`, spooling under `spool_dir`,
/// reporting outages and rejections to `events`.
///
/// # Errors
/// A bad property, or a spool that cannot be opened.
pub fn start_delivery(
    name: &str,
    kind: &'static str,
    properties: &[(String, String)],
    spool_dir: &std::path::Path,
    events: Option<Events>,
) -> Result<Delivery<KafkaRecord>, String> {
    let producer = Producer::new(properties)?;
    let sink = Box::new(move || -> Box<dyn Sink<KafkaRecord>> { Box::new(RecordSink::new(producer)) });
    Delivery::start(name, kind, spool_dir, DeliverySettings::default(), sink, events)
        .map_err(|e| format!("cannot open the spool {}: {e}", spool_dir.display()))
}

/// Produces [`KafkaRecord`]s.
#[derive(Debug)]
pub struct RecordSink {
    producer: Producer,
}

impl RecordSink {
    /// A sink on a producer.
    pub fn new(producer: Producer) -> RecordSink {
        RecordSink { producer }
    }
}

impl Sink<KafkaRecord> for RecordSink {
    fn deliver(&mut self, batch: &[KafkaRecord]) -> Result<(), Failure> {
        let headers: Vec<Vec<(&str, &str)>> =
            batch.iter().map(|r| r.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()).collect();
        let out: Vec<Outgoing<'_>> = batch
            .iter()
            .zip(&headers)
            .map(|(r, h)| Outgoing { topic: &r.topic, key: r.key.as_deref(), value: &r.value, headers: h })
            .collect();
        self.producer.send_batch(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_survives_the_spool_with_newlines_in_its_value() {
        let r = KafkaRecord {
            topic: "t".into(),
            key: Some("k".into()),
            value: "line one\nline two".into(),
            headers: vec![("h".into(), "v".into())],
        };
        let line = r.line();
        assert!(!line.contains('\n'));
        assert_eq!(KafkaRecord::from_line(&line), Ok(r));
    }
}
