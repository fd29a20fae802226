//! The audit dispatcher (audit.md "Targets", "Delivery"): every audit
//! message of the node goes through [`send`], which hands it to every target
//! whose filters take it. The LOG4J target writes it on the topic's logger
//! through the asynchronous writer; network targets (EVENT_SERVER, and KAFKA
//! on the same [`delivery::Sink`] interface) put it in their own queue. No
//! caller waits on I/O. One dispatcher is installed per process, like the
//! logger; before [`install`] (tests embedding the node) the default, one
//! LOG4J target for every topic, is used.
//!
//! - [`config`]: the `auditLog` section, validated with paths.
//! - [`filter`]: topic and routing-key filters.
//! - [`delivery`]: queue, worker, spool policy and counters of a network target.
//! - [`spool`]: the on-disk spool.
//! - [`event_server`]: the EVENT_SERVER sink.

pub mod config;
pub mod delivery;
pub mod event_server;
pub mod filter;
pub mod spool;

use std::path::Path;
use std::sync::OnceLock;
use std::time::Instant;

use serde_json::{Map, Value};

use crate::Topic;
use crate::message::Message;
use crate::writer::{self, ConfirmError};
use config::{AuditSettings, TargetKind, TargetSpec};
use delivery::Delivery;
use event_server::EventServerSink;
use filter::Filter;

enum Route {
    Log4j,
    Network(Delivery<Message>),
}

struct Target {
    name: String,
    filter: Filter,
    route: Route,
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

impl Dispatcher {
    /// One LOG4J target for every topic (no `auditLog` section).
    pub fn log4j_only() -> Dispatcher {
        Dispatcher { targets: vec![Target { name: "log4j".into(), filter: Filter::all(), route: Route::Log4j }] }
    }

    /// Starts the targets of `settings`; network targets spool under
    /// `spool_root/<name>/` and first replay what an earlier run left there.
    /// A target that becomes unreachable is reported on `generic-failure`
    /// (`audit-target-down`), its return on `generic` (`audit-target-up`),
    /// as messages of node `node_id`.
    ///
    /// # Errors
    /// [`BuildError`] when a spool cannot be opened.
    pub fn build(settings: &AuditSettings, spool_root: &Path, node_id: &str) -> Result<Dispatcher, BuildError> {
        let hook = state_hook(node_id.to_owned());
        let mut targets = Vec::new();
        for TargetSpec { name, filter, kind } in &settings.targets {
            let route = match kind {
                TargetKind::Log4j => Route::Log4j,
                TargetKind::EventServer { url, auth_key, routing_key_mode, delivery } => {
                    let (url, mode) = (url.clone(), routing_key_mode.clone());
                    let key = auth_key.as_ref().map(|k| k.0.clone());
                    let sink =
                        move || -> Box<dyn delivery::Sink<Message>> { Box::new(EventServerSink::new(&url, key, mode)) };
                    network(name, "EVENT_SERVER", spool_root, delivery, &hook, Ok(Box::new(sink)))?
                }
                TargetKind::Kafka { properties, topic, delivery, .. } => {
                    let template = topic.clone();
                    let sink = crate::kafka::producer::Producer::new(&properties.0).map(|producer| {
                        Box::new(move || -> Box<dyn delivery::Sink<Message>> {
                            Box::new(crate::kafka::target::MessageSink::new(producer, template))
                        }) as SinkMaker
                    });
                    network(name, "KAFKA", spool_root, delivery, &hook, sink)?
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
    /// node's audit volume).
    pub fn wants(&self, topic: Topic) -> bool {
        self.targets.iter().any(|t| {
            t.filter.takes_topic(topic)
                && match t.route {
                    Route::Log4j => writer::enabled(topic.target(), log::Level::Info),
                    Route::Network(_) => topic != Topic::ApiCalls || t.filter.topics.is_some(),
                }
        })
    }

    /// Hands `msg` to every target that takes it.
    pub fn send(&self, msg: Message) {
        for t in &self.targets {
            if !t.filter.takes(msg.topic, msg.routing_key.as_ref()) {
                continue;
            }
            match &t.route {
                Route::Log4j => writer::emit(msg.topic.target(), msg.level, msg.text.clone()),
                Route::Network(d) => d.send(msg.clone()),
            }
        }
    }

    /// Hands `msg` over and returns once it is recorded: written and flushed
    /// by the LOG4J target, queued (and so spooled if need be) by network
    /// targets. For changes that may only happen once recorded.
    ///
    /// # Errors
    /// [`ConfirmError`] when a LOG4J appender failed, or no target took it.
    pub fn send_confirmed(&self, msg: &Message) -> Result<(), ConfirmError> {
        let mut recorded = false;
        let mut disabled = None;
        for t in &self.targets {
            if !t.filter.takes(msg.topic, msg.routing_key.as_ref()) {
                continue;
            }
            match &t.route {
                Route::Log4j => match writer::emit_confirmed(msg.topic.target(), msg.level, msg.text.to_string()) {
                    Ok(()) => recorded = true,
                    Err(ConfirmError::Disabled(d)) => disabled = Some(d),
                    Err(e) => return Err(e),
                },
                Route::Network(d) => {
                    d.send(msg.clone());
                    recorded = true;
                }
            }
        }
        if recorded {
            Ok(())
        } else {
            Err(ConfirmError::Disabled(
                disabled.unwrap_or_else(|| format!("every audit target for topic {}", msg.topic)),
            ))
        }
    }

    /// Messages dropped by every target so far.
    pub fn dropped(&self) -> u64 {
        self.targets.iter().map(|t| if let Route::Network(d) = &t.route { d.dropped() } else { 0 }).sum()
    }

    /// Drains every network target to its destination or its spool, trying
    /// destinations until `deadline`.
    pub fn shutdown(&self, deadline: Instant) {
        for t in &self.targets {
            if let Route::Network(d) = &t.route {
                d.shutdown(deadline);
            }
        }
    }

    /// Counters of every network target, by name.
    pub fn snapshot(&self) -> Value {
        let targets: Map<String, Value> = self
            .targets
            .iter()
            .map(|t| match &t.route {
                Route::Log4j => (t.name.clone(), serde_json::json!({"type": "LOG4J"})),
                Route::Network(d) => (t.name.clone(), d.snapshot()),
            })
            .collect();
        Value::Object(targets)
    }
}

/// Sends `audit-target-down` / `audit-target-up` through the process's
/// dispatcher, from a thread of its own: the worker that calls the hook must
/// not wait on its own queue (a full spool under BLOCK would never drain).
fn state_hook(node_id: String) -> delivery::StateHook {
    std::sync::Arc::new(move |target: &str, error: Option<&str>| {
        let msg = match error {
            Some(e) => Message::event(
                Topic::GenericFailure,
                log::Level::Warn,
                &node_id,
                "audit-target-down",
                None,
                serde_json::json!({"target": target, "error": e}),
            ),
            None => Message::event(
                Topic::Generic,
                log::Level::Info,
                &node_id,
                "audit-target-up",
                None,
                serde_json::json!({"target": target}),
            ),
        };
        let _ = std::thread::Builder::new().name("audit-state".into()).spawn(move || send(msg));
    })
}

/// Builds a network target's sink on its worker thread.
type SinkMaker = Box<dyn FnOnce() -> Box<dyn delivery::Sink<Message>> + Send>;

/// Starts a network target: its spool under `spool_root/<name>/`, its
/// worker with the sink `make_sink` builds (or the error of creating it).
fn network(
    name: &str,
    kind: &'static str,
    spool_root: &Path,
    settings: &config::DeliverySettings,
    hook: &delivery::StateHook,
    make_sink: Result<SinkMaker, String>,
) -> Result<Route, BuildError> {
    let dir = spool_root.join(name);
    let failed =
        |source: std::io::Error| BuildError { target: name.to_owned(), spool: dir.display().to_string(), source };
    let make_sink = make_sink.map_err(|e| failed(std::io::Error::other(e)))?;
    let d = Delivery::start(name, kind, &dir, settings.clone(), make_sink, Some(hook.clone())).map_err(failed)?;
    Ok(Route::Network(d))
}

static GLOBAL: OnceLock<Dispatcher> = OnceLock::new();

/// Installs the process's dispatcher (once).
///
/// # Errors
/// Gives the dispatcher back when one is installed already.
pub fn install(dispatcher: Dispatcher) -> Result<&'static Dispatcher, Dispatcher> {
    GLOBAL.set(dispatcher)?;
    Ok(GLOBAL.get().expect("just set"))
}

/// The installed dispatcher, or the default one.
pub fn global() -> &'static Dispatcher {
    static DEFAULT: OnceLock<Dispatcher> = OnceLock::new();
    GLOBAL.get().unwrap_or_else(|| DEFAULT.get_or_init(Dispatcher::log4j_only))
}

/// [`Dispatcher::send`] on the process's dispatcher.
pub fn send(msg: Message) {
    global().send(msg);
}

/// [`Dispatcher::wants`] on the process's dispatcher.
pub fn wants(topic: Topic) -> bool {
    global().wants(topic)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::config::parse;

    #[test]
    fn apicalls_is_produced_only_when_a_target_selects_it_by_name() {
        let dir = tempfile::tempdir().expect("tmp");
        let build = |targets: serde_json::Value| {
            let settings = parse(Some(&serde_json::json!({"settings": {"targets": targets}})), &Default::default())
                .expect("valid");
            Dispatcher::build(&settings, dir.path(), "n").expect("build")
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
}
