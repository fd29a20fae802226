//! What the appenders of one logging configuration share with the audit
//! runtime that drives them, passed to every appender when it is built
//! (log4rs builds appenders without any context of ours, so the
//! translation hands this value to each one instead of a process global):
//!
//! - the reopen signal (`bin/dss reopenlogs`, SIGHUP): every file appender
//!   reopens its file before its next write after [`AppenderRegistry::request_reopen`];
//! - the journal of the file appenders: every open file (so that the
//!   writer can sync them and probe failing ones), the records a failed
//!   write lost (by writer sequence number, for the writer to settle their
//!   senders and count the loss), and which files are failing (health,
//!   `/isAlive/` under REFUSE, `audit-write-failed` reports);
//! - the deliveries its appenders started (the Kafka appenders'), for
//!   metrics and the drain at stop;
//! - the channel on which deliveries report outages and rejected records;
//! - the integrity context (signing key, state folder) the files' trees
//!   share, when tamper evidence is on, and the checkpoints of every file.
//!
//! Owns these handles; it writes nothing itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Instant;

use super::LogFile;
use super::retention::Retention;
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

/// A file that fails to take writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failing {
    /// The last error.
    pub error: String,
    /// Records lost since it started failing.
    pub lost: u64,
}

#[derive(Debug)]
struct Inner {
    reopen: ReopenSignal,
    files: Mutex<Vec<Weak<Mutex<LogFile>>>>,
    /// Records lost by failed writes since the writer last looked: their
    /// sequence numbers, and why.
    lost: Mutex<Vec<(u64, String)>>,
    failing: Mutex<BTreeMap<PathBuf, Failing>>,
    retention: Mutex<Option<Retention>>,
    retention_stats: RetentionStats,
    deliveries: Mutex<Vec<Arc<dyn Running>>>,
    events: Events,
    event_rx: Mutex<Option<Receiver<(String, Event)>>>,
    integrity: Mutex<Option<Arc<crate::integrity::Integrity>>>,
}

/// Files and records deleted by retention policies, per appender (its live file).
#[derive(Debug, Clone, Default)]
pub struct RetentionStats(Arc<Mutex<BTreeMap<String, (u64, u64)>>>);

impl RetentionStats {
    /// Counts one deleted file of `appender` holding `records`.
    pub fn count(&self, appender: &str, records: u64) {
        let mut all = lock(&self.0);
        let e = all.entry(appender.to_owned()).or_default();
        e.0 += 1;
        e.1 += records;
    }

    /// Per appender: (deleted files, deleted records).
    pub fn snapshot(&self) -> BTreeMap<String, (u64, u64)> {
        lock(&self.0).clone()
    }
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
        let (events, rx) = Events::unread_channel();
        AppenderRegistry {
            inner: Arc::new(Inner {
                reopen: ReopenSignal::default(),
                files: Mutex::new(Vec::new()),
                lost: Mutex::new(Vec::new()),
                failing: Mutex::new(BTreeMap::new()),
                retention: Mutex::new(None),
                retention_stats: RetentionStats::default(),
                deliveries: Mutex::new(Vec::new()),
                events,
                event_rx: Mutex::new(Some(rx)),
                integrity: Mutex::new(None),
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

    /// Registers an open file (its appender keeps it).
    pub fn add_file(&self, file: &Arc<Mutex<LogFile>>) {
        lock(&self.inner.files).push(Arc::downgrade(file));
    }

    fn files(&self) -> Vec<Arc<Mutex<LogFile>>> {
        lock(&self.inner.files).iter().filter_map(Weak::upgrade).collect()
    }

    /// Syncs every file written since its last sync.
    ///
    /// # Errors
    /// The first file that could not be synced, and why.
    pub fn sync_all(&self) -> Result<(), String> {
        let mut first = None;
        for f in self.files() {
            if let Err(e) = lock(&f).sync() {
                first.get_or_insert_with(|| e.to_string());
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Gives every file opened from now on a Merkle tree under `ctx`
    /// (docs/integrity.md "Tamper evidence"); set before the appenders are built.
    pub fn set_integrity(&self, ctx: Arc<crate::integrity::Integrity>) {
        *lock(&self.inner.integrity) = Some(ctx);
    }

    /// The integrity context, when trees are kept.
    pub fn integrity(&self) -> Option<Arc<crate::integrity::Integrity>> {
        lock(&self.inner.integrity).clone()
    }

    /// Takes a checkpoint of every file whose tree grew: those whose
    /// interval passed, or all of them and waiting until they are signed
    /// (`all`, at stop); `announce` sends them to the network targets (the
    /// writer's very last ones are only written).
    pub fn checkpoint_files(&self, all: bool, announce: bool) {
        if lock(&self.inner.integrity).is_none() {
            return;
        }
        for f in self.files() {
            let mut f = lock(&f);
            if all || f.checkpoint_due() {
                f.checkpoint(announce, all);
            }
        }
    }

    /// Probes every failing file: one that takes data again is healthy again.
    pub fn probe_failing(&self) {
        if lock(&self.inner.failing).is_empty() {
            return;
        }
        for f in self.files() {
            let mut f = lock(&f);
            if lock(&self.inner.failing).contains_key(f.path()) {
                let _ = f.probe();
            }
        }
    }

    /// A write to `path` failed: the records `seqs` are lost, for `error`.
    pub fn note_lost(&self, path: &Path, seqs: &[u64], error: &str) {
        lock(&self.inner.lost).extend(seqs.iter().map(|s| (*s, format!("{}: {error}", path.display()))));
        let mut failing = lock(&self.inner.failing);
        let newly = !failing.contains_key(path);
        let f = failing.entry(path.to_path_buf()).or_insert_with(|| Failing { error: String::new(), lost: 0 });
        f.error = error.to_owned();
        f.lost += seqs.len() as u64;
        let lost = f.lost;
        drop(failing);
        log::error!("Audit file {} cannot be written ({error}); {} records lost", path.display(), seqs.len());
        self.inner
            .events
            .report(&path.display().to_string(), Event::WriteFailed { error: error.to_owned(), lost, first: newly });
    }

    /// A write to `path` succeeded: it is healthy (again).
    pub fn note_written(&self, path: &Path) {
        let mut failing = lock(&self.inner.failing);
        if failing.is_empty() {
            return;
        }
        if let Some(f) = failing.remove(path) {
            drop(failing);
            log::info!("Audit file {} takes writes again ({} records were lost)", path.display(), f.lost);
            self.inner.events.report(&path.display().to_string(), Event::WriteRecovered { lost: f.lost });
        }
    }

    /// Runs `f` with the retention thread (started at first use).
    pub fn with_retention(&self, f: impl FnOnce(&Retention)) {
        let mut r = lock(&self.inner.retention);
        if r.is_none() {
            match Retention::start(self.inner.events.clone(), self.inner.retention_stats.clone()) {
                Ok(started) => *r = Some(started),
                Err(e) => {
                    log::error!("Cannot start the audit retention thread: {e}; rolled files are kept");
                    return;
                }
            }
        }
        if let Some(r) = r.as_ref() {
            f(r);
        }
    }

    /// Finishes every retention job and stops the thread.
    pub fn stop_retention(&self) {
        if let Some(mut r) = lock(&self.inner.retention).take() {
            r.stop();
        }
    }

    /// Files and records deleted by retention so far.
    pub fn retention_stats(&self) -> BTreeMap<String, (u64, u64)> {
        self.inner.retention_stats.snapshot()
    }

    /// The records lost since the last call, with why.
    pub fn take_lost(&self) -> Vec<(u64, String)> {
        std::mem::take(&mut *lock(&self.inner.lost))
    }

    /// Those of `seqs` that were lost, with why (forgotten once taken; the
    /// others' losses stay for their own writers).
    pub fn take_lost_of(&self, seqs: &[u64]) -> Vec<(u64, String)> {
        let mut lost = lock(&self.inner.lost);
        if lost.is_empty() {
            return Vec::new();
        }
        let mut mine = Vec::new();
        lost.retain(|(s, r)| {
            if seqs.contains(s) {
                mine.push((*s, r.clone()));
                false
            } else {
                true
            }
        });
        mine
    }

    /// The files failing now.
    pub fn failing(&self) -> BTreeMap<PathBuf, Failing> {
        lock(&self.inner.failing).clone()
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
        let rx = lock(&self.inner.event_rx).take();
        if rx.is_some() {
            self.inner.events.mark_read();
        }
        rx
    }
}
