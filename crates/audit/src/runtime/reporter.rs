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
//!   itself, nor loop on them.
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
use crate::delivery::Event;
use crate::dispatch::Dispatcher;
use crate::message::Message;

/// Rejections of one target are summarised at most this often.
pub const REJECTION_REPORT_PERIOD: Duration = Duration::from_secs(60);

/// How often the thread looks at its stop flag and pending summaries.
const TICK: Duration = Duration::from_millis(100);

#[derive(Debug, Default)]
struct Pending {
    /// When the last report of this target's rejections went out.
    last_report: Option<Instant>,
    /// Rejections since then.
    count: u64,
    last_reason: String,
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
    let mut pending: BTreeMap<String, Pending> = BTreeMap::new();
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        let mut out = Vec::new();
        match events.recv_timeout(TICK) {
            Ok((target, event)) => out.extend(message(node_id, &target, event, &mut pending)),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        while let Ok((target, event)) = events.try_recv() {
            out.extend(message(node_id, &target, event, &mut pending));
        }
        out.extend(summaries(node_id, &mut pending, stopping));
        if !out.is_empty() {
            let Some(d) = dispatcher.upgrade() else { return };
            for m in out {
                d.send(m);
            }
        }
        if stopping {
            return;
        }
    }
}

fn message(node_id: &str, target: &str, event: Event, pending: &mut BTreeMap<String, Pending>) -> Option<Message> {
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
        Kind::Counted => None,
    }
}

enum Kind {
    Down(String),
    Up,
    FirstRejection { reason: String, event_id: Option<String>, file: String },
    Counted,
}

fn event_kind(target: &str, event: Event, pending: &mut BTreeMap<String, Pending>) -> Kind {
    match event {
        Event::Down(e) => Kind::Down(e),
        Event::Up => Kind::Up,
        Event::Rejected { reason, event_id, file } => {
            let p = pending.entry(target.to_owned()).or_default();
            if p.last_report.is_none_or(|t| t.elapsed() >= REJECTION_REPORT_PERIOD) && p.count == 0 {
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
fn summaries(node_id: &str, pending: &mut BTreeMap<String, Pending>, all: bool) -> Vec<Message> {
    let mut out = Vec::new();
    for (target, p) in pending.iter_mut() {
        let due = all || p.last_report.is_none_or(|t| t.elapsed() >= REJECTION_REPORT_PERIOD);
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
        reporter.stop();
        let failures = memory.bodies(Topic::GenericFailure);
        let kinds: Vec<&str> = failures.iter().map(|b| b["msgType"].as_str().expect("type")).collect();
        assert_eq!(kinds, ["audit-target-down", "audit-record-rejected", "audit-record-rejected"]);
        assert_eq!((failures[1]["rejected"].as_u64(), failures[1]["rejectedEventId"].as_str()), (Some(1), Some("e0")));
        assert_eq!((failures[2]["rejected"].as_u64(), failures[2]["reason"].as_str()), (Some(999), Some("413 #999")));
        assert_eq!(memory.bodies(Topic::Generic)[0]["msgType"], "audit-target-up");
    }
}
