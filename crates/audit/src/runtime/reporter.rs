//! The reporter thread of a runtime: what deliveries report (a destination
//! down or back, a record rejected for good) becomes an audit message of the
//! node, sent through the runtime's own dispatcher:
//!
//! - `audit-target-down` on `generic-failure` and `audit-target-up` on
//!   `generic`, once per change of state;
//! - `audit-record-rejected` on `generic-failure`: the first rejection of a
//!   target at once (reason, event id, dead-letter file), then at most one
//!   summary a minute per target (count, last reason), so that a target
//!   that rejects everything cannot flood the trail with reports about
//!   itself, nor loop on them;
//! - `audit-write-failed` on `generic-failure` when a file or a spool cannot
//!   be written (the stream, the error, the records lost so far): at once,
//!   then at most once a minute while the failure lasts; and
//!   `audit-write-recovered` on `generic` when it takes writes again;
//! - `audit-file-deleted` on `generic` for each rolled file a retention
//!   policy deletes (appender, file, records, first and last record time,
//!   SHA-256): sent at once and waited for (written and synced where the
//!   admin records go) before the retention thread may delete the file.
//!
//! - `audit-checkpoint` on `audit-integrity` for each checkpoint a file
//!   appender's tree signed (origin, size, the signed note, the consistency
//!   proof from the previous one), for the network targets.
//!
//! It runs on a thread of its own because sending may wait (a spool at its
//! cap under BLOCK), and a delivery worker must never wait on its own queue.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::Level;
use serde_json::json;

use crate::Topic;
use crate::commit::Ticket;
use crate::delivery::Event;
use crate::dispatch::Dispatcher;
use crate::message::Message;

/// Rejections and write failures of one target or file are summarised at
/// most this often.
pub const REPORT_PERIOD: Duration = Duration::from_secs(60);

/// How often the thread looks at its stop flag and pending summaries.
const TICK: Duration = Duration::from_millis(100);

#[derive(Debug, Default)]
struct Pending {
    /// When the last report went out.
    last_report: Option<Instant>,
    /// Rejections since then.
    count: u64,
    last_reason: String,
}

/// A write failure being reported.
#[derive(Debug)]
struct FailingWrite {
    last_report: Instant,
    error: String,
    lost: u64,
    /// Something new happened since the last report.
    news: bool,
}

/// What the reporter remembers between events.
#[derive(Debug, Default)]
struct State {
    rejections: BTreeMap<String, Pending>,
    writes: BTreeMap<String, FailingWrite>,
}

/// The running reporter.
#[derive(Debug)]
pub struct Reporter {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Reporter {
    /// Starts the thread: events from `events` become messages of `node_id`
    /// sent through `dispatcher` (held weakly: the runtime owns it).
    ///
    /// # Errors
    /// When the thread cannot start.
    pub fn start(
        node_id: String,
        events: Receiver<(String, Event)>,
        dispatcher: Weak<Dispatcher>,
    ) -> std::io::Result<Reporter> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("audit-reports".into())
            .spawn(move || run(&node_id, &events, &dispatcher, &flag))?;
        Ok(Reporter { stop, thread })
    }

    /// Reports what is still pending, then stops.
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.thread.join();
    }
}

fn run(node_id: &str, events: &Receiver<(String, Event)>, dispatcher: &Weak<Dispatcher>, stop: &AtomicBool) {
    let mut pending = State::default();
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        let mut out = Vec::new();
        let mut next = match events.recv_timeout(TICK) {
            Ok(e) => Some(e),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        while let Some((target, event)) = next.take().or_else(|| events.try_recv().ok()) {
            match event {
                Event::FileDeleted(deleted, ack) => {
                    // In order: what came before is sent first.
                    send_all(dispatcher, std::mem::take(&mut out));
                    announce_deletion(node_id, dispatcher, &deleted);
                    ack.done();
                }
                Event::Checkpoint(cp) => out.push(checkpoint_message(node_id, &cp)),
                Event::Barrier(ack) => {
                    send_all(dispatcher, std::mem::take(&mut out));
                    ack.done();
                }
                event => out.extend(message(node_id, &target, event, &mut pending)),
            }
        }
        out.extend(summaries(node_id, &mut pending, stopping));
        send_all(dispatcher, out);
        if stopping {
            return;
        }
    }
}

fn send_all(dispatcher: &Weak<Dispatcher>, messages: Vec<Message>) {
    if messages.is_empty() {
        return;
    }
    if let Some(d) = dispatcher.upgrade() {
        for m in messages {
            d.send(m);
        }
    }
}

/// Sends `audit-file-deleted` and waits until it is written and synced.
fn announce_deletion(node_id: &str, dispatcher: &Weak<Dispatcher>, d: &crate::report::FileDeleted) {
    let Some(dispatcher) = dispatcher.upgrade() else { return };
    let msg = Message::event(
        Topic::Generic,
        Level::Info,
        node_id,
        "audit-file-deleted",
        None,
        json!({"appender": d.appender, "file": d.file, "records": d.records, "firstRecordTime": d.first_time,
               "lastRecordTime": d.last_time, "sha256": d.sha256, "firstLeafHash": d.first_leaf}),
    );
    let (ticket, receipt) = Ticket::new(true);
    if let Err(blocked) = dispatcher.try_send(msg, Some(&ticket)) {
        dispatcher.finish_blocked(blocked);
    }
    ticket.seal();
    if let Err(e) = receipt.wait_blocking() {
        log::error!("The deletion of {} could not be announced durably: {e}", d.file);
    }
}

/// `audit-checkpoint` on `audit-integrity`, with the node as routing key
/// (the event server files it under `audit-integrity/<nodeId>/`).
fn checkpoint_message(node_id: &str, cp: &crate::report::CheckpointReport) -> Message {
    let key = audit_types::RoutingKey::new(node_id).ok();
    let mut msg = Message::event(
        Topic::AuditIntegrity,
        Level::Info,
        node_id,
        "audit-checkpoint",
        None,
        json!({"routingKey": key.as_ref().map(audit_types::RoutingKey::as_str), "origin": cp.origin,
               "treeSize": cp.size, "checkpoint": cp.note, "previousTreeSize": cp.previous_size,
               "consistencyProof": cp.consistency_proof}),
    );
    msg.routing_key = key;
    msg
}

fn message(node_id: &str, target: &str, event: Event, pending: &mut State) -> Option<Message> {
    let make = |topic, level, msg_type, details| Message::event(topic, level, node_id, msg_type, None, details);
    match event_kind(target, event, pending) {
        Kind::Down(error) => Some(make(
            Topic::GenericFailure,
            Level::Warn,
            "audit-target-down",
            json!({"target": target, "error": error}),
        )),
        Kind::Up => Some(make(Topic::Generic, Level::Info, "audit-target-up", json!({"target": target}))),
        Kind::FirstRejection { reason, event_id, file } => Some(make(
            Topic::GenericFailure,
            Level::Error,
            "audit-record-rejected",
            json!({"target": target, "reason": reason, "rejectedEventId": event_id, "deadLetterFile": file,
                   "rejected": 1}),
        )),
        Kind::WriteFailed { error, lost } => Some(make(
            Topic::GenericFailure,
            Level::Error,
            "audit-write-failed",
            json!({"stream": target, "error": error, "lostSoFar": lost}),
        )),
        Kind::WriteRecovered { lost } => Some(make(
            Topic::Generic,
            Level::Warn,
            "audit-write-recovered",
            json!({"stream": target, "lostWhileFailing": lost}),
        )),
        Kind::Counted => None,
    }
}

enum Kind {
    Down(String),
    Up,
    FirstRejection { reason: String, event_id: Option<String>, file: String },
    WriteFailed { error: String, lost: u64 },
    WriteRecovered { lost: u64 },
    Counted,
}

fn event_kind(target: &str, event: Event, state: &mut State) -> Kind {
    match event {
        Event::Down(e) => Kind::Down(e),
        Event::Up => Kind::Up,
        Event::WriteFailed { error, lost, .. } => match state.writes.get_mut(target) {
            Some(f) => {
                (f.error, f.lost, f.news) = (error, lost, true);
                Kind::Counted
            }
            None => {
                let f = FailingWrite { last_report: Instant::now(), error: error.clone(), lost, news: false };
                state.writes.insert(target.to_owned(), f);
                Kind::WriteFailed { error, lost }
            }
        },
        Event::WriteRecovered { lost } => {
            state.writes.remove(target);
            Kind::WriteRecovered { lost }
        }
        // Handled by the loop (it must be waited for).
        Event::FileDeleted(..) | Event::Checkpoint(_) | Event::Barrier(_) => Kind::Counted,
        Event::Rejected { reason, event_id, file } => {
            let p = state.rejections.entry(target.to_owned()).or_default();
            if p.last_report.is_none_or(|t| t.elapsed() >= REPORT_PERIOD) && p.count == 0 {
                p.last_report = Some(Instant::now());
                Kind::FirstRejection { reason, event_id, file: file.display().to_string() }
            } else {
                p.count += 1;
                p.last_reason = reason;
                Kind::Counted
            }
        }
    }
}

/// One summary per target whose period is over (or every pending one at stop).
fn summaries(node_id: &str, state: &mut State, all: bool) -> Vec<Message> {
    let mut out = Vec::new();
    for (stream, f) in state.writes.iter_mut() {
        if f.news && (all || f.last_report.elapsed() >= REPORT_PERIOD) {
            out.push(Message::event(
                Topic::GenericFailure,
                Level::Error,
                node_id,
                "audit-write-failed",
                None,
                json!({"stream": stream, "error": f.error, "lostSoFar": f.lost}),
            ));
            (f.news, f.last_report) = (false, Instant::now());
        }
    }
    for (target, p) in state.rejections.iter_mut() {
        let due = all || p.last_report.is_none_or(|t| t.elapsed() >= REPORT_PERIOD);
        if p.count > 0 && due {
            out.push(Message::event(
                Topic::GenericFailure,
                Level::Error,
                node_id,
                "audit-record-rejected",
                None,
                json!({"target": target, "reason": p.last_reason, "rejected": p.count}),
            ));
            p.count = 0;
            p.last_report = Some(Instant::now());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::Events;
    use crate::dispatch::memory::MemoryTarget;
    use serde_json::Value;

    #[test]
    fn a_flood_of_rejections_is_one_report_then_one_summary() {
        let memory = MemoryTarget::default();
        let dispatcher = Arc::new(Dispatcher::memory(memory.clone()));
        let (events, rx) = Events::channel();
        let reporter = Reporter::start("n".into(), rx, Arc::downgrade(&dispatcher)).expect("start");
        events.report("central", Event::Down("refused".into()));
        for i in 0..1000 {
            let rejected =
                Event::Rejected { reason: format!("413 #{i}"), event_id: Some(format!("e{i}")), file: "f".into() };
            events.report("central", rejected);
        }
        events.report("central", Event::Up);
        events.report("/x/queries.log", Event::WriteFailed { error: "No space".into(), lost: 3, first: true });
        events.report("/x/queries.log", Event::WriteFailed { error: "No space".into(), lost: 9, first: false });
        events.report("/x/queries.log", Event::WriteRecovered { lost: 9 });
        reporter.stop();
        let failures = memory.bodies(Topic::GenericFailure);
        let kinds: Vec<&str> = failures.iter().map(|b| b["msgType"].as_str().expect("type")).collect();
        assert_eq!(
            kinds,
            ["audit-target-down", "audit-record-rejected", "audit-write-failed", "audit-record-rejected"]
        );
        assert_eq!(
            (failures[2]["stream"].as_str(), failures[2]["lostSoFar"].as_u64()),
            (Some("/x/queries.log"), Some(3))
        );
        assert_eq!((failures[1]["rejected"].as_u64(), failures[1]["rejectedEventId"].as_str()), (Some(1), Some("e0")));
        assert_eq!((failures[3]["rejected"].as_u64(), failures[3]["reason"].as_str()), (Some(999), Some("413 #999")));
        let generic: Vec<Value> = memory.bodies(Topic::Generic);
        assert_eq!(generic[0]["msgType"], "audit-target-up");
        assert_eq!(
            (generic[1]["msgType"].as_str(), generic[1]["lostWhileFailing"].as_u64()),
            (Some("audit-write-recovered"), Some(9))
        );
    }
}
