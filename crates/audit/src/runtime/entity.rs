//! Where entity audit messages (CDAP AuditMessages, shaped by the node) go:
//! the logger `dku.apinode.audit.entity` and, with `audit.enabled` and a
//! Kafka connection, the Kafka topic `audit.topic`, keyed by service id so
//! that one service's entities keep their order, through a delivery queue
//! with its spool (`run/spool/entity-audit/`). Owns that publisher; it does
//! not shape messages.

use std::path::Path;

use log::Level;

use crate::delivery::{Delivery, Events};
use crate::dispatch::memory::MemoryTarget;
use crate::kafka::record::KafkaRecord;
use crate::writer::LogWriter;

/// The log4rs target of `dku.apinode.audit.entity`.
pub const ENTITY_TARGET: &str = "dku::apinode::audit::entity";

/// The Kafka side of entity audit.
#[derive(Debug)]
pub struct EntityKafka {
    delivery: Delivery<KafkaRecord>,
    topic: String,
}

impl EntityKafka {
    /// Starts publishing to `topic` with a producer of `properties`,
    /// spooling under `spool_dir`.
    ///
    /// # Errors
    /// A producer or spool that cannot start.
    pub fn start(
        properties: &[(String, String)],
        topic: &str,
        spool_dir: &Path,
        events: Events,
    ) -> Result<Self, String> {
        let delivery = crate::kafka::record::start_delivery(
            "entity-audit",
            "KAFKA_ENTITY_AUDIT",
            properties,
            spool_dir,
            Some(events),
        )?;
        Ok(EntityKafka { delivery, topic: topic.to_owned() })
    }

    /// The delivery, for metrics and the drain at stop.
    pub fn delivery(&self) -> &Delivery<KafkaRecord> {
        &self.delivery
    }
}

/// One entity message on its way.
#[derive(Debug, Clone)]
pub struct EntityMessage {
    /// The service it belongs to (the Kafka key).
    pub service: String,
    /// CDAP's type (the Kafka header `type`).
    pub kind: String,
    /// The AuditMessage, one JSON line.
    pub text: std::sync::Arc<str>,
}

/// What still has to take an entity message that could not go at once.
#[derive(Debug)]
pub struct EntityBlocked {
    msg: EntityMessage,
    writer: bool,
    kafka: Option<KafkaRecord>,
}

/// The publisher: a logger and, maybe, Kafka (or the in-memory target).
#[derive(Debug)]
pub struct EntityPublisher {
    pub(super) writer: Option<LogWriter>,
    pub(super) kafka: Option<EntityKafka>,
    pub(super) memory: Option<MemoryTarget>,
}

impl EntityPublisher {
    fn record(&self, msg: &EntityMessage) -> Option<KafkaRecord> {
        self.kafka.as_ref().map(|k| KafkaRecord {
            topic: k.topic.clone(),
            key: Some(msg.service.clone()),
            value: msg.text.to_string(),
            headers: vec![("type".into(), msg.kind.clone())],
        })
    }

    /// Publishes without ever waiting.
    ///
    /// # Errors
    /// What could not take it yet.
    pub fn try_publish(&self, msg: EntityMessage) -> Result<(), Box<EntityBlocked>> {
        if let Some(m) = &self.memory {
            m.push_entity(&msg.text);
        }
        let kafka = match (self.kafka.as_ref(), self.record(&msg)) {
            (Some(k), Some(r)) => k.delivery.try_send(r).err(),
            _ => None,
        };
        let writer = match &self.writer {
            Some(w) => w.try_emit(ENTITY_TARGET, Level::Info, msg.text.clone(), None).is_err(),
            None => {
                log::info!(target: ENTITY_TARGET, "{}", msg.text);
                false
            }
        };
        if writer || kafka.is_some() { Err(Box::new(EntityBlocked { msg, writer, kafka })) } else { Ok(()) }
    }

    /// Finishes a blocked publication, waiting as long as needed.
    pub fn finish_blocked(&self, blocked: EntityBlocked) {
        if let (true, Some(w)) = (blocked.writer, &self.writer) {
            w.emit(ENTITY_TARGET, Level::Info, blocked.msg.text.clone(), None);
        }
        if let (Some(r), Some(k)) = (blocked.kafka, &self.kafka) {
            k.delivery.send(r);
        }
    }
}
