//! A Kafka topic as a monitor source (docs/monitoring.md "The monitor"):
//! `kafka://HOST:PORT[,HOST:PORT...]/TOPIC`, read with the consumer group
//! `apinode-monitor-<service>` from the earliest offset, up to the end each
//! partition had when its assignment came, without committing (so every
//! run reads everything, and several monitors in the group split the
//! partitions between them). Only reads.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::Message as _;

/// A `kafka://` source: brokers and topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSource {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// The topic.
    pub topic: String,
}

impl KafkaSource {
    /// Reads `kafka://HOST:PORT/TOPIC`; `None` for anything else.
    pub fn parse(text: &str) -> Option<KafkaSource> {
        let rest = text.strip_prefix("kafka://")?;
        let (brokers, topic) = rest.split_once('/')?;
        (!brokers.is_empty() && !topic.is_empty() && !topic.contains('/'))
            .then(|| KafkaSource { brokers: brokers.to_owned(), topic: topic.to_owned() })
    }
}

/// How long to wait for an assignment and, after it, for more records.
const PATIENCE: Duration = Duration::from_secs(20);

/// Calls `each` with every record of the topic (as text) this consumer
/// is assigned; returns how many were read.
///
/// # Errors
/// When the consumer cannot be made or the topic cannot be read.
pub fn read(source: &KafkaSource, service: &str, mut each: impl FnMut(&str)) -> Result<u64, String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &source.brokers)
        .set("group.id", format!("apinode-monitor-{service}"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .map_err(|e| format!("kafka://{}/{}: {e}", source.brokers, source.topic))?;
    consumer.subscribe(&[&source.topic]).map_err(|e| format!("subscribing to {}: {e}", source.topic))?;
    // The end of each assigned partition, as it was when first seen.
    let mut ends: HashMap<i32, i64> = HashMap::new();
    let mut next: HashMap<i32, i64> = HashMap::new();
    let mut read = 0;
    let mut last_progress = Instant::now();
    loop {
        if let Ok(assigned) = consumer.assignment() {
            for e in assigned.elements() {
                let p = e.partition();
                if let std::collections::hash_map::Entry::Vacant(v) = ends.entry(p) {
                    let (low, high) = consumer
                        .fetch_watermarks(&source.topic, p, Duration::from_secs(10))
                        .map_err(|e| format!("the end of {}[{p}]: {e}", source.topic))?;
                    v.insert(high);
                    next.entry(p).or_insert(low);
                }
            }
        }
        let done = !ends.is_empty() && ends.iter().all(|(p, end)| next.get(p).is_some_and(|n| n >= end));
        if done || last_progress.elapsed() > PATIENCE {
            break;
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                last_progress = Instant::now();
                next.insert(m.partition(), m.offset() + 1);
                if ends.get(&m.partition()).is_some_and(|end| m.offset() >= *end) {
                    continue;
                }
                if let Some(Ok(text)) = m.payload_view::<str>() {
                    each(text);
                    read += 1;
                }
            }
            Some(Err(e)) => return Err(format!("reading {}: {e}", source.topic)),
            None => {}
        }
    }
    if ends.is_empty() {
        return Err(format!("no partition of {} was assigned within {} s", source.topic, PATIENCE.as_secs()));
    }
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_read() {
        assert_eq!(
            KafkaSource::parse("kafka://a:9092,b:9092/apinode-queries"),
            Some(KafkaSource { brokers: "a:9092,b:9092".into(), topic: "apinode-queries".into() })
        );
        assert_eq!(KafkaSource::parse("/var/audit"), None);
        assert_eq!(KafkaSource::parse("kafka://a:9092/"), None);
    }
}
