//! When and where a record was logged ([`RecordContext`]): the writer
//! thread writes records long after (and far from) the call that made them,
//! so the time and thread of the call travel with each record and are made
//! current on the writer thread while log4rs runs. This is a thread-local
//! because log4rs hands encoders and appenders a `log::Record` and nothing
//! else; it is set only around one record's write ([`with_context`]).

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime};

use chrono::{DateTime, Local};

use crate::commit::Ticket;

/// When and where a record was logged.
#[derive(Debug, Clone)]
pub struct RecordContext {
    /// The logging thread's name.
    pub thread: Arc<str>,
    /// The time of the call.
    pub time: SystemTime,
    /// The writer's sequence number of the record (0 outside the writer):
    /// appenders report a failed write by it, so that the writer knows whose
    /// records were lost.
    pub seq: u64,
    /// The record's ticket when its sender waits for it (WRITTEN, FSYNC):
    /// an appender that does not write a file (the Kafka appender) adds its
    /// own part, settled once the record is in its spool.
    pub ticket: Option<Ticket>,
}

thread_local! {
    static THREAD_NAME: Arc<str> = Arc::from(std::thread::current().name().unwrap_or("unnamed"));
    /// The context of the record the writer thread is writing.
    static CURRENT: RefCell<Option<RecordContext>> = const { RefCell::new(None) };
}

fn process_start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

impl RecordContext {
    /// The context of a call made now, on this thread.
    pub fn now() -> Self {
        Self { thread: THREAD_NAME.with(Arc::clone), time: SystemTime::now(), seq: 0, ticket: None }
    }

    /// A fixed context (tests): `time` in RFC 3339.
    ///
    /// # Panics
    /// When `time` is not RFC 3339.
    pub fn fixed(thread: &str, time: &str) -> Self {
        let time = DateTime::parse_from_rfc3339(time).expect("an RFC 3339 time");
        Self { thread: Arc::from(thread), time: time.into(), seq: 0, ticket: None }
    }

    /// The time in the local time zone, as log4j prints it.
    pub fn local_time(&self) -> DateTime<Local> {
        self.time.into()
    }

    /// Milliseconds since the process started (log4j's `%r`).
    pub fn millis_since_start(&self) -> u128 {
        process_start().elapsed().as_millis()
    }

    /// The writer's sequence number of the record being written (0 outside the writer).
    pub fn current_seq() -> u64 {
        CURRENT.with(|c| c.borrow().as_ref().map_or(0, |c| c.seq))
    }

    /// The ticket of the record being written, if its sender waits for it.
    pub fn current_ticket() -> Option<Ticket> {
        CURRENT.with(|c| c.borrow().as_ref().and_then(|c| c.ticket.clone()))
    }

    /// Runs `f` with the context of the record being written: the one the
    /// writer thread set, or "now, here" outside the writer.
    pub fn with_current<R>(f: impl FnOnce(&RecordContext) -> R) -> R {
        CURRENT.with(|c| match &*c.borrow() {
            Some(context) => f(context),
            None => f(&RecordContext::now()),
        })
    }
}

/// Runs `f` with `context` current (the writer thread around one record;
/// tests of layouts and appenders).
pub fn with_context<R>(context: RecordContext, f: impl FnOnce() -> R) -> R {
    CURRENT.with(|c| *c.borrow_mut() = Some(context));
    let r = f();
    CURRENT.with(|c| *c.borrow_mut() = None);
    r
}
