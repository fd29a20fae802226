//! The audit dispatcher (docs/audit.md "Targets", "Delivery"): every audit
//! message of the node goes through a [`Dispatcher`], which hands it to
//! every target whose filters take it. The LOG4J target writes it on the
//! topic's logger through the asynchronous writer; network targets
//! (EVENT_SERVER, KAFKA) put it in their own delivery queue; the in-memory
//! target (tests) keeps it in a list. No caller waits on I/O. The
//! dispatcher is a value owned by the audit runtime, never a global.
//!
//! - [`config`]: the `auditLog` section, validated with paths.
//! - [`event_server`]: the EVENT_SERVER sink.
//! - [`memory`]: the in-memory target.

pub mod config;
pub mod event_server;
pub mod memory;

use std::path::Path;
use std::time::Instant;

use serde_json::{Map, Value};

use crate::Topic;
use crate::commit::Ticket;
use crate::delivery::{Delivery, DeliverySettings, Events, Sink, SinkMaker};
use crate::message::{Message, RoutingKey};
use crate::writer::LogWriter;
use audit_types::Filter;
use config::{AuditSettings, TargetKind, TargetSpec};
use event_server::EventServerSink;
use memory::MemoryTarget;

enum Route {
    /// The loggers of this process: through the writer, or through the `log`
    /// facade when no writer runs (a node embedded in a test).
    Log4j(Option<LogWriter>),
    Network(Delivery<Message>),
    Memory(MemoryTarget),
}

struct Target {
    name: String,
    filter: Filter,
    route: Route,
}

impl Target {
    /// Whether its filter takes the topic and key. A LOG4J target never
    /// takes `audit-integrity`: checkpoints are about the files, and a
    /// checkpoint written into them would grow the tree it signs.
    fn takes(&self, topic: &Topic, key: Option<&RoutingKey>) -> bool {
        self.filter.takes(topic, key) && !(matches!(self.route, Route::Log4j(_)) && *topic == Topic::AuditIntegrity)
    }
}

/// The node's targets.
pub struct Dispatcher {
    targets: Vec<Target>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.targets.iter().map(|t| &t.name)).finish()
    }
}

/// Why a target could not start.
#[derive(Debug, thiserror::Error)]
#[error("audit target {target} (spool {spool}) cannot start: {source}")]
pub struct BuildError {
    /// The target.
    pub target: String,
    /// Its spool folder.
    pub spool: String,
    /// The cause.
    pub source: std::io::Error,
}

/// A message some targets could not take without waiting (a full writer
/// queue, a spool at its cap under BLOCK): hand it to
/// [`Dispatcher::finish_blocked`] on a thread that may wait.
#[derive(Debug)]
pub struct Blocked {
    msg: Message,
    /// Indexes of the targets that still have to take it.
    targets: Vec<usize>,
    /// The sender's ticket, if it waits for the message to be recorded.
    ticket: Option<Ticket>,
}

impl Dispatcher {
    /// One in-memory target for every topic (tests).
    pub fn memory(target: MemoryTarget) -> Dispatcher {
        Dispatcher {
            targets: vec![Target { name: "memory".into(), filter: Filter::all(), route: Route::Memory(target) }],
        }
    }

    /// Starts the targets of `settings`: LOG4J targets write with `writer`
    /// (the `log` facade when there is none); network targets spool under
    /// `spool_root/<name>/`, first replay what an earlier run left there, and
    /// report outages and rejections to `events`.
    ///
    /// # Errors
    /// [`BuildError`] when a spool cannot be opened or a producer created.
    pub fn build(
        settings: &AuditSettings,
        spool_root: &Path,
        writer: Option<&LogWriter>,
        events: &Events,
    ) -> Result<Dispatcher, BuildError> {
        let mut targets = Vec::new();
        for TargetSpec { name, filter, kind } in &settings.targets {
            let route = match kind {
                TargetKind::Log4j => Route::Log4j(writer.cloned()),
                TargetKind::EventServer { url, auth_key, routing_key_mode, delivery, tls } => {
                    let (url, mode) = (url.clone(), routing_key_mode.clone());
                    let key = auth_key.as_ref().map(|k| k.0.clone());
                    let sink = event_server::TlsMaterial::load(tls).map(|material| {
                        Box::new(move || -> Box<dyn Sink<Message>> {
                            Box::new(EventServerSink::new(&url, key.clone(), mode.clone(), &material))
                        }) as SinkMaker<Message>
                    });
                    network(name, "EVENT_SERVER", spool_root, delivery, events, sink)?
                }
                TargetKind::Kafka { properties, topic, delivery, .. } => {
                    let template = topic.clone();
                    let sink = crate::kafka::producer::Producer::new(&properties.0).map(|producer| {
                        Box::new(move || -> Box<dyn Sink<Message>> {
                            Box::new(crate::kafka::target::MessageSink::new(producer, template))
                        }) as SinkMaker<Message>
                    });
                    network(name, "KAFKA", spool_root, delivery, events, sink)?
                }
            };
            targets.push(Target { name: name.clone(), filter: filter.clone(), route });
        }
        Ok(Dispatcher { targets })
    }

    /// Whether some target may take a message of `topic`: lets callers skip
    /// building messages nobody takes. `apicalls`, one message per HTTP call
    /// for debugging, is produced only when turned on: its logger enabled,
    /// or a network target that lists it in its SELECTED topics (`ALL` alone
    /// does not turn it on, or every target with `ALL` would double the
    /// node's audit volume). The in-memory target takes everything.
    pub fn wants(&self, topic: Topic) -> bool {
        self.targets.iter().any(|t| {
            t.filter.takes_topic(&topic)
                && !(matches!(t.route, Route::Log4j(_)) && topic == Topic::AuditIntegrity)
                && match &t.route {
                    Route::Log4j(Some(w)) => w.enabled(topic.target(), log::Level::Info),
                    Route::Log4j(None) => log::log_enabled!(target: topic.target(), log::Level::Info),
                    Route::Network(_) => topic != Topic::ApiCalls || t.filter.topics.is_some(),
                    Route::Memory(_) => true,
                }
        })
    }

    /// Hands `msg` to every target that takes it; may wait (a full writer
    /// queue, a full spool under BLOCK): call it from threads of your own,
    /// never from an async runtime's worker thread ([`Dispatcher::try_send`]).
    pub fn send(&self, msg: Message) {
        if let Err(blocked) = self.try_send(msg, None) {
            self.finish_blocked(blocked);
        }
    }

    /// Hands `msg` to every target that takes it without ever waiting. With
    /// a ticket, every target that takes it adds a part to the ticket and
    /// settles it once the message is recorded (written to the files,
    /// appended to the spool; the in-memory target and the `log` facade at
    /// once).
    ///
    /// # Errors
    /// [`Blocked`] with the targets that could not take it yet.
    pub fn try_send(&self, msg: Message, ticket: Option<&Ticket>) -> Result<(), Blocked> {
        self.try_send_after(msg, ticket, &mut Vec::new())
    }

    /// Hands messages over without ever waiting; returns those some target
    /// could not take, in order. Once a target could not take a message,
    /// the later ones wait for it too, so that it keeps their order.
    pub fn try_send_all(&self, messages: impl IntoIterator<Item = Message>, ticket: Option<&Ticket>) -> Vec<Blocked> {
        let mut stuck = Vec::new();
        messages.into_iter().filter_map(|m| self.try_send_after(m, ticket, &mut stuck).err()).collect()
    }

    /// How many targets record a message like `msg` (its topic and key
    /// taken, its logger on): none means it would be recorded nowhere.
    pub fn routes(&self, msg: &Message) -> usize {
        self.targets
            .iter()
            .filter(|t| t.takes(&msg.topic, msg.routing_key.as_ref()))
            .filter(|t| match &t.route {
                Route::Log4j(Some(w)) => w.enabled(msg.topic.target(), msg.level),
                Route::Log4j(None) => log::log_enabled!(target: msg.topic.target(), msg.level),
                Route::Network(_) | Route::Memory(_) => true,
            })
            .count()
    }

    /// [`Dispatcher::try_send`], with the targets in `stuck` not tried (and
    /// targets that cannot take `msg` added to it).
    fn try_send_after(&self, msg: Message, ticket: Option<&Ticket>, stuck: &mut Vec<usize>) -> Result<(), Blocked> {
        let mut waiting = Vec::new();
        for (i, t) in self.targets.iter().enumerate() {
            if !t.takes(&msg.topic, msg.routing_key.as_ref()) {
                continue;
            }
            if stuck.contains(&i) {
                waiting.push(i);
                continue;
            }
            let taken = match &t.route {
                Route::Log4j(Some(w)) => w.try_emit(msg.topic.target(), msg.level, msg.text.clone(), ticket).is_ok(),
                Route::Log4j(None) => {
                    log::log!(target: msg.topic.target(), msg.level, "{}", msg.text);
                    true
                }
                Route::Network(d) => match ticket {
                    Some(tk) => d.try_send_ticketed(msg.clone(), tk).is_ok(),
                    None => d.try_send(msg.clone()).is_ok(),
                },
                Route::Memory(m) => {
                    m.push(msg.clone());
                    true
                }
            };
            if !taken {
                waiting.push(i);
                stuck.push(i);
            }
        }
        if waiting.is_empty() { Ok(()) } else { Err(Blocked { msg, targets: waiting, ticket: ticket.cloned() }) }
    }

    /// Hands a blocked message to the targets that could not take it,
    /// waiting as long as they need.
    pub fn finish_blocked(&self, blocked: Blocked) {
        let Blocked { msg, targets, ticket } = blocked;
        for i in targets {
            match (&self.targets[i].route, &ticket) {
                (Route::Log4j(Some(w)), t) => {
                    w.emit(msg.topic.target(), msg.level, msg.text.clone(), t.as_ref());
                }
                (Route::Network(d), Some(t)) => d.send_ticketed(msg.clone(), t),
                (Route::Network(d), None) => d.send(msg.clone()),
                (Route::Log4j(None) | Route::Memory(_), _) => {}
            }
        }
    }

    /// Whether some target fails to record now (its spool cannot be written).
    pub fn failing(&self) -> bool {
        self.networks().any(Delivery::failing)
    }

    /// Messages dropped by every target so far.
    pub fn dropped(&self) -> u64 {
        self.networks().map(Delivery::dropped).sum()
    }

    /// Every network target's delivery.
    pub fn networks(&self) -> impl Iterator<Item = &Delivery<Message>> {
        self.targets.iter().filter_map(|t| if let Route::Network(d) = &t.route { Some(d) } else { None })
    }

    /// Drains every network target to its destination or its spool, trying
    /// destinations until `deadline`.
    pub fn shutdown(&self, deadline: Instant) {
        for d in self.networks() {
            d.shutdown(deadline);
        }
    }

    /// Counters of every target, by name.
    pub fn snapshot(&self) -> Value {
        let targets: Map<String, Value> = self
            .targets
            .iter()
            .map(|t| match &t.route {
                Route::Log4j(_) => (t.name.clone(), serde_json::json!({"type": "LOG4J"})),
                Route::Network(d) => (t.name.clone(), d.snapshot()),
                Route::Memory(m) => (t.name.clone(), serde_json::json!({"type": "MEMORY", "kept": m.messages().len()})),
            })
            .collect();
        Value::Object(targets)
    }
}

/// Starts a network target: its spool under `spool_root/<name>/`, its
/// worker with the sink `make_sink` builds (or the error of creating it).
fn network(
    name: &str,
    kind: &'static str,
    spool_root: &Path,
    settings: &DeliverySettings,
    events: &Events,
    make_sink: Result<SinkMaker<Message>, String>,
) -> Result<Route, BuildError> {
    let dir = spool_root.join(name);
    let failed =
        |source: std::io::Error| BuildError { target: name.to_owned(), spool: dir.display().to_string(), source };
    let make_sink = make_sink.map_err(|e| failed(std::io::Error::other(e)))?;
    let d = Delivery::start(name, kind, &dir, settings.clone(), make_sink, Some(events.clone())).map_err(failed)?;
    Ok(Route::Network(d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::config::parse;

    #[test]
    fn apicalls_is_produced_only_when_a_target_selects_it_by_name() {
        let dir = tempfile::tempdir().expect("tmp");
        let (events, _rx) = Events::channel();
        let build = |targets: serde_json::Value| {
            let settings = parse(Some(&serde_json::json!({"settings": {"targets": targets}})), &Default::default())
                .expect("valid");
            Dispatcher::build(&settings, dir.path(), None, &events).expect("build")
        };
        let all = build(serde_json::json!([{"type": "EVENT_SERVER", "url": "http://127.0.0.1:1"}]));
        assert!(all.wants(Topic::ApinodeQuery));
        assert!(!all.wants(Topic::ApiCalls), "ALL does not turn the debugging stream on");
        all.shutdown(Instant::now());
        let named = build(serde_json::json!([{"type": "EVENT_SERVER", "name": "n", "url": "http://127.0.0.1:1",
            "topicsFiltering": "SELECTED", "topics": ["apicalls"]}]));
        assert!(named.wants(Topic::ApiCalls) && !named.wants(Topic::ApinodeQuery));
        named.shutdown(Instant::now());
    }

    #[test]
    fn the_memory_target_keeps_every_message_in_order() {
        let memory = MemoryTarget::default();
        let d = Dispatcher::memory(memory.clone());
        for t in [Topic::Generic, Topic::ApinodeQuery] {
            d.send(Message::event(t, log::Level::Info, "n", "x", None, serde_json::json!({})));
        }
        assert_eq!(d.routes(&memory.messages()[0]), 1);
        assert!(d.wants(Topic::ApiCalls));
        let topics: Vec<Topic> = memory.messages().iter().map(|m| m.topic).collect();
        assert_eq!(topics, [Topic::Generic, Topic::ApinodeQuery]);
        assert_eq!(memory.bodies(Topic::Generic)[0]["nodeId"], "n");
    }
}
