//! The audit runtime of one node: one value that owns everything the audit
//! trail needs while the node runs (the dispatcher and its targets, entity
//! audit, the log writer and its appenders' registry, the reporter that
//! turns delivery events into messages) and stops it in one order
//! ([`AuditRuntime::shutdown`]). The node's state holds it; nothing of it is
//! a process global (the `log` facade excepted: see `writer`).
//!
//! Senders on an async runtime's worker threads use [`AuditRuntime::submit`]
//! and [`AuditRuntime::publish_entity`], which never wait there: what a full
//! queue or spool cannot take at once is finished on the blocking pool.
//! [`AuditRuntime::in_memory`] builds a runtime whose only target keeps
//! every record in memory, for in-process tests.
//!
//! - `reporter`: delivery events → `generic` / `generic-failure` messages.
//! - [`entity`]: where entity audit messages go.

pub mod entity;
mod reporter;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use serde_json::{Value, json};

use crate::Topic;
use crate::appender::AppenderRegistry;
use crate::dispatch::config::AuditSettings;
use crate::dispatch::memory::MemoryTarget;
use crate::dispatch::{BuildError, Dispatcher};
use crate::message::Message;
use crate::writer::{ConfirmError, LogWriter, LoggingGuard};
pub use entity::{ENTITY_TARGET, EntityKafka, EntityMessage, EntityPublisher};
pub use reporter::REJECTION_REPORT_PERIOD;
use reporter::Reporter;

/// A running log writer: the handle audit records are written with, and the
/// guard that drains it.
#[derive(Debug)]
pub struct Logging {
    /// The handle.
    pub writer: LogWriter,
    /// Drains and stops the writer.
    pub guard: LoggingGuard,
    /// The registry its appenders share.
    pub registry: AppenderRegistry,
}

/// What a runtime is built from.
#[derive(Debug)]
pub struct RuntimeSettings<'a> {
    /// This node's id (`nodeId` of the messages the runtime itself sends).
    pub node_id: &'a str,
    /// The validated `auditLog` section.
    pub audit: &'a AuditSettings,
    /// Network targets spool under `<spool_root>/<target>/`.
    pub spool_root: &'a Path,
    /// Entity audit to Kafka: the connection's properties and the topic.
    pub entity_kafka: Option<(&'a [(String, String)], &'a str)>,
}

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A target could not start.
    #[error(transparent)]
    Target(#[from] BuildError),
    /// Entity audit to Kafka could not start.
    #[error("entity audit to Kafka cannot start: {0}")]
    EntityKafka(String),
    /// The reporter thread could not start.
    #[error("cannot start the audit reporter thread: {0}")]
    Thread(std::io::Error),
}

/// The audit trail of one node.
#[derive(Debug)]
pub struct AuditRuntime {
    dispatcher: Arc<Dispatcher>,
    entity: EntityPublisher,
    registry: AppenderRegistry,
    guard: Mutex<Option<LoggingGuard>>,
    reporter: Mutex<Option<Reporter>>,
    memory: Option<MemoryTarget>,
    stopped: AtomicBool,
}

impl AuditRuntime {
    /// Starts the targets of `settings` on `logging` (no logging: LOG4J
    /// targets write through the `log` facade), entity audit, and the
    /// reporter.
    ///
    /// # Errors
    /// [`StartError`] naming what could not start.
    pub fn start(settings: &RuntimeSettings<'_>, logging: Option<Logging>) -> Result<Arc<AuditRuntime>, StartError> {
        let (writer, guard, registry) = match logging {
            Some(l) => (Some(l.writer), Some(l.guard), l.registry),
            None => (None, None, AppenderRegistry::new()),
        };
        let events = registry.events();
        let dispatcher = Arc::new(Dispatcher::build(settings.audit, settings.spool_root, writer.as_ref(), &events)?);
        let kafka = match settings.entity_kafka {
            Some((properties, topic)) => Some(
                EntityKafka::start(properties, topic, &settings.spool_root.join("entity-audit"), events)
                    .map_err(StartError::EntityKafka)?,
            ),
            None => None,
        };
        let entity = EntityPublisher { writer, kafka, memory: None };
        Self::assemble(settings.node_id, dispatcher, entity, registry, guard, None)
    }

    /// A runtime whose only target keeps every message (and entity message)
    /// in memory, for in-process tests; the [`MemoryTarget`] reads them.
    ///
    /// # Panics
    /// When the reporter thread cannot start.
    pub fn in_memory(node_id: &str) -> (Arc<AuditRuntime>, MemoryTarget) {
        let memory = MemoryTarget::default();
        let dispatcher = Arc::new(Dispatcher::memory(memory.clone()));
        let entity = EntityPublisher { writer: None, kafka: None, memory: Some(memory.clone()) };
        let runtime = Self::assemble(node_id, dispatcher, entity, AppenderRegistry::new(), None, Some(memory.clone()))
            .expect("the reporter thread starts");
        (runtime, memory)
    }

    fn assemble(
        node_id: &str,
        dispatcher: Arc<Dispatcher>,
        entity: EntityPublisher,
        registry: AppenderRegistry,
        guard: Option<LoggingGuard>,
        memory: Option<MemoryTarget>,
    ) -> Result<Arc<AuditRuntime>, StartError> {
        let reporter = match registry.take_event_receiver() {
            Some(rx) => {
                Some(Reporter::start(node_id.to_owned(), rx, Arc::downgrade(&dispatcher)).map_err(StartError::Thread)?)
            }
            None => None,
        };
        Ok(Arc::new(AuditRuntime {
            dispatcher,
            entity,
            registry,
            guard: Mutex::new(guard),
            reporter: Mutex::new(reporter),
            memory,
            stopped: AtomicBool::new(false),
        }))
    }

    /// The dispatcher.
    pub fn dispatcher(&self) -> &Dispatcher {
        &self.dispatcher
    }

    /// The in-memory target of a runtime made by [`AuditRuntime::in_memory`].
    pub fn memory(&self) -> Option<&MemoryTarget> {
        self.memory.as_ref()
    }

    /// Whether some target may take a message of `topic`.
    pub fn wants(&self, topic: Topic) -> bool {
        self.dispatcher.wants(topic)
    }

    /// Sends a message; may wait (full queue or spool under BLOCK): from
    /// threads of your own only, never from an async runtime's worker.
    pub fn send(&self, msg: Message) {
        self.dispatcher.send(msg);
    }

    /// Sends messages from async code: never waits on the calling worker;
    /// what a target cannot take at once is finished on the blocking pool,
    /// in order, before this returns.
    pub async fn submit(self: &Arc<Self>, messages: Vec<Message>) {
        let blocked = self.dispatcher.try_send_all(messages);
        if blocked.is_empty() {
            return;
        }
        let me = self.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for b in blocked {
                me.dispatcher.finish_blocked(b);
            }
        })
        .await;
    }

    /// Sends a message and waits (on the blocking pool) until it is recorded:
    /// for changes that may only happen once recorded (admin changes).
    ///
    /// # Errors
    /// [`ConfirmError`] when it is not known to be recorded.
    pub async fn record_confirmed(self: &Arc<Self>, msg: Message) -> Result<(), ConfirmError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.dispatcher.send_confirmed(&msg))
            .await
            .unwrap_or(Err(ConfirmError::Unavailable))
    }

    /// Publishes an entity message from async code (never waits on the
    /// calling worker).
    pub async fn publish_entity(self: &Arc<Self>, msg: EntityMessage) {
        if let Err(blocked) = self.entity.try_publish(msg) {
            let me = self.clone();
            let _ = tokio::task::spawn_blocking(move || me.entity.finish_blocked(*blocked)).await;
        }
    }

    /// Messages dropped so far by every target, entity audit and Kafka appender.
    pub fn dropped(&self) -> u64 {
        self.dispatcher.dropped()
            + self.entity.kafka.as_ref().map_or(0, |k| k.delivery().dropped())
            + self.registry.deliveries_dropped()
    }

    /// Makes every file appender reopen its file (`bin/dss reopenlogs`).
    pub fn reopen_logs(&self) {
        self.registry.request_reopen();
    }

    /// The counters: the writer's, and every target's by name (entity
    /// audit as `entity-audit`, Kafka appenders as `kafka-appender-<NAME>`).
    pub fn snapshot(&self) -> Value {
        let writer = self.entity.writer.as_ref().map_or(Value::Null, |w| {
            let s = w.stats();
            let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            json!({
                "enqueued": load(&s.enqueued),
                "written": load(&s.written),
                "fullWaits": load(&s.full_waits),
                "appenderErrors": load(&s.appender_errors),
            })
        });
        let mut targets = self.dispatcher.snapshot();
        if let Some(t) = targets.as_object_mut() {
            if let Some(k) = &self.entity.kafka {
                t.insert("entity-audit".into(), k.delivery().snapshot());
            }
            t.extend(self.registry.delivery_snapshots());
        }
        json!({"writer": writer, "targets": targets})
    }

    /// Stops in order, once: network targets deliver or spool what they hold
    /// (trying destinations until `deadline`), entity audit the same, the
    /// reporter sends what it still has, the writer drains its queue and
    /// flushes every file, then the Kafka appenders (which took the writer's
    /// last records) drain in turn.
    pub fn shutdown(&self, deadline: Instant) {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        self.dispatcher.shutdown(deadline);
        if let Some(k) = &self.entity.kafka {
            k.delivery().shutdown(deadline);
        }
        if let Some(r) = self.reporter.lock().unwrap_or_else(PoisonError::into_inner).take() {
            r.stop();
        }
        if let Some(g) = self.guard.lock().unwrap_or_else(PoisonError::into_inner).take() {
            g.shutdown();
        }
        self.registry.shutdown_deliveries(deadline);
    }
}
