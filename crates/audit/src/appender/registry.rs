//! What the appenders of one logging configuration share with the audit
//! runtime that drives them, passed to every appender when it is built
//! (log4rs builds appenders without any context of ours, so the
//! translation hands this value to each one instead of a process global):
//!
//! - the reopen signal (`bin/dss reopenlogs`, SIGHUP): every file appender
//!   reopens its file before its next write after [`AppenderRegistry::request_reopen`];
//! - the confirmation of a record whose sender waits until it is written
//!   (an admin change): the writer marks the record, appenders flush it at
//!   once and their failures are collected here for the writer to read;
//! - the deliveries its appenders started (the Kafka appenders'), for
//!   metrics and the drain at stop;
//! - the channel on which deliveries report outages and rejected records.
//!
//! Owns these handles; it writes nothing itself.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::delivery::{Event, Events, Running};

/// Makes file appenders reopen their files (cloned into each file).
#[derive(Debug, Clone, Default)]
pub struct ReopenSignal(Arc<AtomicU64>);

impl ReopenSignal {
    /// Asks every file sharing this signal to reopen before its next write.
    pub fn request(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    /// How many reopens were requested so far.
    pub fn generation(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Debug)]
struct Inner {
    reopen: ReopenSignal,
    confirming: AtomicBool,
    failure: Mutex<Option<String>>,
    deliveries: Mutex<Vec<Arc<dyn Running>>>,
    events: Events,
    event_rx: Mutex<Option<Receiver<(String, Event)>>>,
}

/// The shared handles of one logging configuration's appenders.
#[derive(Debug, Clone)]
pub struct AppenderRegistry {
    inner: Arc<Inner>,
}

impl Default for AppenderRegistry {
    fn default() -> Self {
        Self::new()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl AppenderRegistry {
    /// A registry with a fresh event channel.
    pub fn new() -> AppenderRegistry {
        let (events, rx) = Events::channel();
        AppenderRegistry {
            inner: Arc::new(Inner {
                reopen: ReopenSignal::default(),
                confirming: AtomicBool::new(false),
                failure: Mutex::new(None),
                deliveries: Mutex::new(Vec::new()),
                events,
                event_rx: Mutex::new(Some(rx)),
            }),
        }
    }

    /// The reopen signal every file appender of this configuration shares.
    pub fn reopen_signal(&self) -> ReopenSignal {
        self.inner.reopen.clone()
    }

    /// Makes every file appender reopen its file before its next write
    /// (after an external tool renamed it).
    pub fn request_reopen(&self) {
        self.inner.reopen.request();
    }

    /// True while the writer writes a record whose sender waits for it to be
    /// in its files: appenders must flush before returning and report failures.
    pub fn confirming(&self) -> bool {
        self.inner.confirming.load(Ordering::Relaxed)
    }

    /// Starts (or ends) a confirmed record; starting forgets earlier failures.
    pub fn set_confirming(&self, on: bool) {
        if on {
            lock(&self.inner.failure).take();
        }
        self.inner.confirming.store(on, Ordering::Relaxed);
    }

    /// Notes an appender's failure while confirming (the first one is kept).
    pub fn note_failure(&self, message: &str) {
        if self.confirming() {
            lock(&self.inner.failure).get_or_insert_with(|| message.to_owned());
        }
    }

    /// The first failure of the confirmed record, if any.
    pub fn take_failure(&self) -> Option<String> {
        lock(&self.inner.failure).take()
    }

    /// Registers a delivery an appender started.
    pub fn add_delivery(&self, delivery: Arc<dyn Running>) {
        lock(&self.inner.deliveries).push(delivery);
    }

    /// Counters of every appender's delivery, by name (`kafka-appender-<NAME>`).
    pub fn delivery_snapshots(&self) -> Vec<(String, serde_json::Value)> {
        lock(&self.inner.deliveries).iter().map(|d| (d.name().to_owned(), d.snapshot())).collect()
    }

    /// Records dropped by the appenders' deliveries so far.
    pub fn deliveries_dropped(&self) -> u64 {
        lock(&self.inner.deliveries).iter().map(|d| d.dropped()).sum()
    }

    /// Drains every appender's delivery to its destination or its spool
    /// (after the log writer has written its last records).
    pub fn shutdown_deliveries(&self, deadline: Instant) {
        let started = std::mem::take(&mut *lock(&self.inner.deliveries));
        for d in started {
            d.shutdown(deadline);
        }
    }

    /// Where deliveries report outages and rejections.
    pub fn events(&self) -> Events {
        self.inner.events.clone()
    }

    /// The receiving end of [`AppenderRegistry::events`] (once).
    pub fn take_event_receiver(&self) -> Option<Receiver<(String, Event)>> {
        lock(&self.inner.event_rx).take()
    }
}
