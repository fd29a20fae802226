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
//! `submit` returns when the records are recorded as the node's
//! [`Durability`] says (docs/integrity.md): handed over (ASYNC), written to
//! every file and spool that takes them (WRITTEN), or synced too (FSYNC).
//! Admin records are always FSYNC and may be cancelled by a timeout
//! ([`AuditRuntime::record_confirmed`]).
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
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::Topic;
use crate::appender::AppenderRegistry;
use crate::commit::{Durability, OnWriteFailure, Ticket, Unrecorded};
use crate::dispatch::config::AuditSettings;
use crate::dispatch::memory::MemoryTarget;
use crate::dispatch::{BuildError, Dispatcher};
use crate::message::Message;
use crate::writer::{LogWriter, LoggingGuard};
pub use entity::{ENTITY_TARGET, EntityKafka, EntityMessage, EntityPublisher};
pub use reporter::REPORT_PERIOD;
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
    durability: Durability,
    on_write_failure: OnWriteFailure,
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
        let policy = (settings.audit.durability, settings.audit.on_write_failure);
        Self::assemble(settings.node_id, policy, dispatcher, entity, registry, guard, None)
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
        let policy = (Durability::Written, OnWriteFailure::Continue);
        let registry = AppenderRegistry::new();
        let runtime = Self::assemble(node_id, policy, dispatcher, entity, registry, None, Some(memory.clone()))
            .expect("the reporter thread starts");
        (runtime, memory)
    }

    fn assemble(
        node_id: &str,
        (durability, on_write_failure): (Durability, OnWriteFailure),
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
            durability,
            on_write_failure,
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

    /// The node's durability mode.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// What the node does when records cannot be recorded.
    pub fn on_write_failure(&self) -> OnWriteFailure {
        self.on_write_failure
    }

    /// Sends messages from async code and returns once they are recorded as
    /// the node's durability (raised to `at_least`) says. Never waits on the
    /// calling worker: what a target cannot take at once is finished on the
    /// blocking pool, in order.
    ///
    /// # Errors
    /// [`Unrecorded`] when some part was not recorded (a file or spool
    /// failed): the caller decides (CONTINUE or REFUSE).
    pub async fn submit(self: &Arc<Self>, messages: Vec<Message>, at_least: Durability) -> Result<(), Unrecorded> {
        if messages.is_empty() {
            return Ok(());
        }
        let durability = self.durability.max(at_least);
        if durability == Durability::Async {
            let blocked = self.dispatcher.try_send_all(messages, None);
            self.finish(blocked).await;
            return Ok(());
        }
        let (ticket, receipt) = Ticket::new(durability == Durability::Fsync);
        let blocked = self.dispatcher.try_send_all(messages, Some(&ticket));
        self.finish(blocked).await;
        ticket.seal();
        receipt.wait().await
    }

    async fn finish(self: &Arc<Self>, blocked: Vec<crate::dispatch::Blocked>) {
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

    /// Sends a message and waits until it is written and synced by every
    /// target that takes it: for changes that may only happen once recorded
    /// (admin changes). When that takes longer than `timeout` and nothing of
    /// it is being written yet, it is cancelled and never written.
    ///
    /// # Errors
    /// [`Unrecorded`] when it is not known to be recorded, or no target
    /// records it at all.
    pub async fn record_confirmed(
        self: &Arc<Self>,
        msg: Message,
        timeout: std::time::Duration,
    ) -> Result<(), Unrecorded> {
        if self.dispatcher.routes(&msg) == 0 {
            return Err(Unrecorded {
                parts: 1,
                reason: format!("no audit target records topic {} (its logger is OFF)", msg.topic),
            });
        }
        let (ticket, receipt) = Ticket::new(true);
        let blocked = self.dispatcher.try_send(msg, Some(&ticket));
        if let Err(b) = blocked {
            // Finished in the background: the wait below may cancel it.
            let me = self.clone();
            tokio::task::spawn_blocking(move || me.dispatcher.finish_blocked(b));
        }
        ticket.seal();
        receipt.wait_or_cancel(timeout).await
    }

    /// Whether some file or spool of the trail fails to take writes now.
    pub fn failing(&self) -> bool {
        !self.registry.failing().is_empty()
            || self.dispatcher.failing()
            || self.entity.kafka.as_ref().is_some_and(|k| k.delivery().failing())
    }

    /// The files failing now, with their error and the records they lost.
    pub fn failing_files(&self) -> std::collections::BTreeMap<std::path::PathBuf, crate::appender::registry::Failing> {
        self.registry.failing()
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
            let lost = s.lost.lock().unwrap_or_else(PoisonError::into_inner).clone();
            json!({
                "enqueued": load(&s.enqueued),
                "written": load(&s.written),
                "fullWaits": load(&s.full_waits),
                "appenderErrors": load(&s.appender_errors),
                "commits": load(&s.commits),
                "syncs": load(&s.syncs),
                "lost": lost,
                "writtenByLogger": s.written_by.lock().unwrap_or_else(PoisonError::into_inner).clone(),
                "queued": load(&s.enqueued).saturating_sub(load(&s.written)),
            })
        });
        // Seconds since each appender's last signed checkpoint, by appender
        // (the origin is `<nodeId>/<APPENDER>`).
        let checkpoints: serde_json::Map<String, Value> =
            self.registry.integrity().map_or_else(Default::default, |i| {
                i.checkpoint_ages()
                    .into_iter()
                    .map(|(origin, age)| {
                        let appender = origin.rsplit('/').next().unwrap_or(&origin).to_owned();
                        (appender, json!(age))
                    })
                    .collect()
            });
        let failing: serde_json::Map<String, Value> = self
            .registry
            .failing()
            .into_iter()
            .map(|(p, f)| (p.display().to_string(), json!({"error": f.error, "lost": f.lost})))
            .collect();
        let mut targets = self.dispatcher.snapshot();
        if let Some(t) = targets.as_object_mut() {
            if let Some(k) = &self.entity.kafka {
                t.insert("entity-audit".into(), k.delivery().snapshot());
            }
            t.extend(self.registry.delivery_snapshots());
        }
        let retention: serde_json::Map<String, Value> = self
            .registry
            .retention_stats()
            .into_iter()
            .map(|(a, (files, records))| (a, json!({"deletedFiles": files, "deletedRecords": records})))
            .collect();
        json!({
            "checkpointAgeSeconds": checkpoints,
            "retention": retention,
            "durability": self.durability.as_str(),
            "onWriteFailure": self.on_write_failure.as_str(),
            "failing": self.failing(),
            "failingFiles": failing,
            "writer": writer,
            "targets": targets,
        })
    }

    /// Stops in order, once: with integrity on, every file's tree signs a
    /// checkpoint that the reporter hands to the network targets; network
    /// targets deliver or spool what they hold
    /// (trying destinations until `deadline`; later messages go straight to
    /// their spools), entity audit the same, the writer drains its queue and
    /// writes and syncs every file (later records are written by their
    /// sender), the retention thread finishes its jobs, the reporter sends
    /// what it still has, then the Kafka appenders (which took the writer's
    /// last records) drain in turn.
    pub fn shutdown(&self, deadline: Instant) {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        if self.registry.integrity().is_some() {
            // Last checkpoints first, handed to the network targets before
            // they drain: a clean stop leaves the witness up to date.
            if let Some(g) = self.guard.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
                g.checkpoint(Duration::from_secs(5));
            }
            self.registry.events().barrier(Duration::from_secs(5));
        }
        self.dispatcher.shutdown(deadline);
        if let Some(k) = &self.entity.kafka {
            k.delivery().shutdown(deadline);
        }
        if let Some(g) = self.guard.lock().unwrap_or_else(PoisonError::into_inner).take() {
            g.shutdown();
        }
        self.registry.stop_retention();
        if let Some(r) = self.reporter.lock().unwrap_or_else(PoisonError::into_inner).take() {
            r.stop();
        }
        self.registry.shutdown_deliveries(deadline);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Condvar, Mutex};

    use std::time::Duration;

    use log4rs::append::Append;
    use log4rs::config::{Appender, Config, Logger, Root};

    use super::*;

    /// An appender that holds the writer until its gate opens, and keeps
    /// what it was given.
    #[derive(Debug, Default, Clone)]
    struct Gate {
        open: Arc<(Mutex<bool>, Condvar)>,
        seen: Arc<Mutex<Vec<String>>>,
    }

    impl Append for Gate {
        fn append(&self, record: &log::Record<'_>) -> anyhow::Result<()> {
            let (lock, cv) = &*self.open;
            let mut open = lock.lock().expect("gate");
            while !*open {
                open = cv.wait(open).expect("gate");
            }
            self.seen.lock().expect("seen").push(record.args().to_string());
            Ok(())
        }
        fn flush(&self) {}
    }

    /// An admin change refused because its record timed out is never
    /// written later, even once the writer moves again.
    #[tokio::test]
    async fn a_record_whose_sender_gave_up_is_never_written() {
        let gate = Gate::default();
        let config = Config::builder()
            .appender(Appender::builder().build("gate", Box::new(gate.clone())))
            .logger(
                Logger::builder()
                    .appender("gate")
                    .additive(false)
                    .build(Topic::Generic.target(), log::LevelFilter::Info),
            )
            .build(Root::builder().build(log::LevelFilter::Off))
            .expect("config");
        let registry = AppenderRegistry::new();
        let (logger, guard) = crate::writer::start(config, &registry).expect("writer");
        let spool = tempfile::tempdir().expect("tmp");
        let audit = AuditSettings::default();
        let settings = RuntimeSettings { node_id: "n", audit: &audit, spool_root: spool.path(), entity_kafka: None };
        let logging = Logging { writer: logger.writer(), guard, registry };
        let runtime = AuditRuntime::start(&settings, Some(logging)).expect("runtime");
        let event = |t: &str| Message::event(Topic::Generic, log::Level::Info, "n", t, None, serde_json::json!({}));
        // The writer is held by the first record...
        runtime.send(event("first"));
        // ...so the admin record waits, times out and is cancelled.
        let refused = runtime.record_confirmed(event("refused-change"), Duration::from_millis(300)).await;
        assert!(refused.unwrap_err().reason.contains("cancelled"));
        {
            let (lock, cv) = &*gate.open;
            *lock.lock().expect("gate") = true;
            cv.notify_all();
        }
        let accepted = runtime.record_confirmed(event("accepted-change"), Duration::from_secs(5)).await;
        assert!(accepted.is_ok(), "{accepted:?}");
        runtime.shutdown(Instant::now() + Duration::from_secs(1));
        let seen = gate.seen.lock().expect("seen").join("\n");
        assert!(seen.contains("\"first\"") && seen.contains("\"accepted-change\""), "{seen}");
        assert!(!seen.contains("refused-change"), "a refused change appeared later: {seen}");
    }
}
