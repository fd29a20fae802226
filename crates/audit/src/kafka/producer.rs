//! The one rdkafka producer shape every Kafka path of the node uses (the
//! KAFKA target, the log4j appender, entity audit): the audit-trail
//! settings of `kafka::config` (idempotence, `acks=all`, lz4, a bounded
//! local queue, a delivery timeout, a record limit), then the connection's
//! own properties on top. A batch is delivered when the broker acknowledged
//! every record of it. A record the producer or the broker will never take
//! (larger than `message.max.bytes`, an invalid record or topic) is
//! rejected by itself ([`Failure::Rejected`], so the caller keeps it in its
//! dead letters); a full local queue, any other delivery error or a timeout
//! fails the batch for a retry (so a record may come twice, identical, never
//! zero times). librdkafka's own log goes to the `rdkafka` logger, which
//! never carries a credential. Owns the client; knows no message format.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};

use super::config::{check, client_config};
use crate::delivery::Failure;

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

/// Collects delivery failures of the batch in flight: the record's index
/// in the batch, librdkafka's code and the error's text.
#[derive(Debug, Default)]
pub struct Ctx {
    failures: Mutex<Vec<(usize, Option<RDKafkaErrorCode>, String)>>,
}

/// Errors that no retry can cure: the record itself is at fault.
fn permanent(code: Option<RDKafkaErrorCode>) -> bool {
    matches!(
        code,
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::MessageBatchTooLarge
                | RDKafkaErrorCode::InvalidTopic
        )
    )
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
    type DeliveryOpaque = usize;
    fn delivery(&self, result: &DeliveryResult<'_>, index: usize) {
        if let Err((e, _)) = result {
            let failure = (index, e.rdkafka_error_code(), e.to_string());
            self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(failure);
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
    /// [`Failure::Rejected`] for records that can never be produced (the
    /// others were delivered), [`Failure::Retry`] when some record is not
    /// known to be delivered for any other reason.
    pub fn send_batch(&mut self, records: &[Outgoing<'_>]) -> Result<(), Failure> {
        let outcome = self.produce_all(records);
        if matches!(outcome, Err(Failure::Retry(_))) {
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

    fn produce_all(&mut self, records: &[Outgoing<'_>]) -> Result<(), Failure> {
        if self.suspect {
            self.inner
                .client()
                .fetch_metadata(None, PROBE_TIMEOUT)
                .map_err(|e| Failure::Retry(format!("the broker does not answer: {e}")))?;
        }
        self.inner.context().failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
        let deadline = Instant::now() + self.batch_timeout;
        let mut rejected = Vec::new();
        for (index, r) in records.iter().enumerate() {
            let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
            for (k, v) in r.headers {
                headers = headers.insert(Header { key: k, value: Some(*v) });
            }
            let mut record =
                BaseRecord::<str, str, usize>::with_opaque_to(r.topic, index).payload(r.value).headers(headers);
            if let Some(k) = r.key {
                record = record.key(k);
            }
            loop {
                match self.inner.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        if Instant::now() >= deadline {
                            return Err(Failure::Retry("the local producer queue stayed full".into()));
                        }
                        self.inner.poll(Duration::from_millis(20));
                        record = back;
                    }
                    Err((e, _)) if permanent(e.rdkafka_error_code()) => {
                        rejected.push((index, format!("producing {} bytes to {}: {e}", r.value.len(), r.topic)));
                        break;
                    }
                    Err((e, _)) => return Err(Failure::Retry(format!("producing to {}: {e}", r.topic))),
                }
            }
            self.inner.poll(Duration::ZERO);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let flushed = self.inner.flush(left);
        let failures = std::mem::take(
            &mut *self.inner.context().failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        if let Some((code, reason)) = self.inner.client().fatal_error() {
            return Err(Failure::Retry(format!("fatal producer error ({code:?}): {reason}")));
        }
        if let Err(e) = flushed {
            return Err(Failure::Retry(format!("the broker did not acknowledge in time: {e}")));
        }
        if let Some((_, _, first)) = failures.iter().find(|(_, code, _)| !permanent(*code)) {
            return Err(Failure::Retry(format!(
                "{} of {} records not acknowledged: {first}",
                failures.len(),
                records.len()
            )));
        }
        rejected.extend(failures.into_iter().map(|(i, _, e)| (i, format!("the broker refused the record: {e}"))));
        if rejected.is_empty() { Ok(()) } else { Err(Failure::Rejected(rejected)) }
    }

    /// Waits for what is in flight (graceful stop).
    pub fn flush(&self, timeout: Duration) {
        let _ = self.inner.flush(timeout);
    }
}
