//! The one rdkafka producer shape every Kafka path of the node uses (the
//! KAFKA target, the log4j appender, entity audit): settings chosen for an
//! audit trail (idempotence, `acks=all`, lz4, a bounded local queue, a
//! delivery timeout), then the connection's own properties on top. A batch
//! is delivered when the broker acknowledged every record of it; a full
//! local queue, a delivery error or a timeout fails the batch, which the
//! caller spools and retries (so a record may come twice, identical, never
//! zero times). librdkafka's own log goes to the `rdkafka` logger, which
//! never carries a credential. Owns the client; knows no message format.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};

/// Settings applied before the connection's properties (which win).
pub const AUDIT_DEFAULTS: [(&str, &str); 6] = [
    ("enable.idempotence", "true"),
    ("acks", "all"),
    ("compression.type", "lz4"),
    ("queue.buffering.max.messages", "20000"),
    ("linger.ms", "5"),
    ("message.timeout.ms", "10000"),
];

/// Properties whose values are secrets: never logged or echoed.
pub fn is_secret(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("password") || n.contains("secret") || n.contains("jaas") || n.ends_with(".key.pem")
}

/// librdkafka properties whose `Debug` hides secret values.
#[derive(Clone, PartialEq, Eq)]
pub struct Properties(pub Vec<(String, String)>);

impl std::fmt::Debug for Properties {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.0.iter().map(|(k, v)| (k, if is_secret(k) { "***" } else { v.as_str() }))).finish()
    }
}

/// One record to produce.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    /// The Kafka topic.
    pub topic: &'a str,
    /// The record key.
    pub key: Option<&'a str>,
    /// The value.
    pub value: &'a str,
    /// Headers.
    pub headers: &'a [(&'a str, &'a str)],
}

/// Collects delivery failures of the batch in flight.
#[derive(Debug, Default)]
pub struct Ctx {
    failures: Mutex<Vec<String>>,
}

impl ClientContext for Ctx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        let level = match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
                log::Level::Error
            }
            RDKafkaLogLevel::Warning => log::Level::Warn,
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => log::Level::Info,
            RDKafkaLogLevel::Debug => log::Level::Debug,
        };
        log::log!(target: "rdkafka", level, "librdkafka {fac}: {log_message}");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        log::warn!(target: "rdkafka", "librdkafka: {error}: {reason}");
    }
}

impl ProducerContext for Ctx {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(e.to_string());
        }
    }
}

/// A producer for one connection.
pub struct Producer {
    properties: Vec<(String, String)>,
    inner: BaseProducer<Ctx>,
    batch_timeout: Duration,
    /// The last batch failed: ask for metadata (a quick answer, or a quick
    /// failure) before waiting a whole delivery timeout on a dead broker.
    suspect: bool,
}

/// How long the metadata probe of a suspect broker may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Properties may hold credentials: never printed.
        f.debug_struct("Producer").finish_non_exhaustive()
    }
}

/// The client configuration of `properties` over the audit defaults.
pub fn client_config(properties: &[(String, String)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in AUDIT_DEFAULTS {
        c.set(k, v);
    }
    for (k, v) in properties {
        c.set(k, v);
    }
    c.set_log_level(RDKafkaLogLevel::Warning);
    c
}

/// Checks `bootstrap.servers`: comma-separated `host:port`, optionally with
/// a `PLAINTEXT://`-style prefix.
///
/// # Errors
/// What is wrong with which entry.
pub fn check_brokers(list: &str) -> Result<(), String> {
    if list.trim().is_empty() {
        return Err("the broker list is empty (expected host:port[,host:port...])".into());
    }
    for entry in list.split(',').map(str::trim) {
        let address = entry.split_once("://").map_or(entry, |(_, a)| a);
        let ok = address
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
        if !ok {
            return Err(format!("{entry:?} is not host:port (expected host:port[,host:port...])"));
        }
    }
    Ok(())
}

/// Checks a connection's properties without creating a client (no thread,
/// no connection): the broker list, and every name and value as librdkafka
/// reads them.
///
/// # Errors
/// A bad broker list, an unknown property, a bad value.
pub fn check(properties: &[(String, String)]) -> Result<(), String> {
    match properties.iter().find(|(k, _)| k == "bootstrap.servers" || k == "metadata.broker.list") {
        Some((_, v)) => check_brokers(v)?,
        None => return Err("bootstrap.servers is required".into()),
    }
    client_config(properties).create_native_config().map(drop).map_err(|e| e.to_string())
}

impl Producer {
    /// Creates the producer (librdkafka checks every property name and value).
    ///
    /// # Errors
    /// A bad broker list, an unknown property, a bad value.
    pub fn new(properties: &[(String, String)]) -> Result<Producer, String> {
        check(properties)?;
        let config = client_config(properties);
        let inner: BaseProducer<Ctx> = config.create_with_context(Ctx::default()).map_err(|e| e.to_string())?;
        let timeout_ms = config.get("message.timeout.ms").and_then(|v| v.parse::<u64>().ok()).unwrap_or(10_000);
        Ok(Producer {
            properties: properties.to_vec(),
            inner,
            batch_timeout: Duration::from_millis(timeout_ms) + Duration::from_secs(2),
            suspect: false,
        })
    }

    /// Produces every record and waits until the broker acknowledged them all.
    ///
    /// # Errors
    /// Why some record is not known to be delivered.
    pub fn send_batch(&mut self, records: &[Outgoing<'_>]) -> Result<(), String> {
        if self.suspect {
            self.inner
                .client()
                .fetch_metadata(None, PROBE_TIMEOUT)
                .map_err(|e| format!("the broker does not answer: {e}"))?;
        }
        self.inner.context().failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
        let deadline = Instant::now() + self.batch_timeout;
        for r in records {
            let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
            for (k, v) in r.headers {
                headers = headers.insert(Header { key: k, value: Some(*v) });
            }
            let mut record = BaseRecord::<str, str>::to(r.topic).payload(r.value).headers(headers);
            if let Some(k) = r.key {
                record = record.key(k);
            }
            loop {
                match self.inner.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        if Instant::now() >= deadline {
                            return Err("the local producer queue stayed full".into());
                        }
                        self.inner.poll(Duration::from_millis(20));
                        record = back;
                    }
                    Err((e, _)) => return Err(format!("producing to {}: {e}", r.topic)),
                }
            }
            self.inner.poll(Duration::ZERO);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let flushed = self.inner.flush(left);
        let failures = std::mem::take(
            &mut *self.inner.context().failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let outcome = if let Some((code, reason)) = self.inner.client().fatal_error() {
            Err(format!("fatal producer error ({code:?}): {reason}"))
        } else if let Err(e) = flushed {
            Err(format!("the broker did not acknowledge in time: {e}"))
        } else if let Some(first) = failures.first() {
            Err(format!("{} of {} records not acknowledged: {first}", failures.len(), records.len()))
        } else {
            Ok(())
        };
        if outcome.is_err() {
            // The batch is retried by a new producer: an idempotent
            // producer's id and sequence numbers may be what the broker
            // refuses (a fatal state, or a broker that lost its producer
            // state in a restart), and a fresh one starts clean. Nothing is
            // in flight any more: every record was acknowledged, failed, or
            // timed out during the flush.
            match Producer::new(&self.properties) {
                Ok(fresh) => *self = fresh,
                Err(e) => log::error!("Cannot recreate the Kafka producer: {e}"),
            }
            self.suspect = true;
        } else {
            self.suspect = false;
        }
        outcome
    }

    /// Waits for what is in flight (graceful stop).
    pub fn flush(&self, timeout: Duration) {
        let _ = self.inner.flush(timeout);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn bad_broker_lists_and_unknown_properties_are_refused() {
        assert!(Producer::new(&props(&[("bootstrap.servers", "127.0.0.1:9092")])).is_ok());
        assert!(Producer::new(&props(&[("bootstrap.servers", "PLAINTEXT://a:1,b:2")])).is_ok());
        for bad in ["", "nohost", "host:port", "host:0", ":9092"] {
            let e = Producer::new(&props(&[("bootstrap.servers", bad)])).unwrap_err();
            assert!(e.contains("host:port") || e.contains("empty"), "{bad}: {e}");
        }
        let e = Producer::new(&props(&[("bootstrap.servers", "a:1"), ("no.such.property", "1")])).unwrap_err();
        assert!(e.contains("no.such.property"), "{e}");
        assert!(Producer::new(&[]).unwrap_err().contains("bootstrap.servers"));
    }

    #[test]
    fn secrets_are_recognised_and_never_printed() {
        assert!(is_secret("sasl.password") && is_secret("SaslJaasConfig") && !is_secret("sasl.username"));
        let p = Properties(props(&[("sasl.username", "u"), ("sasl.password", "hunter2")]));
        let shown = format!("{p:?}");
        assert!(shown.contains("\"u\"") && !shown.contains("hunter2"), "{shown}");
    }
}
