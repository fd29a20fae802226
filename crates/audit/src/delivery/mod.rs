//! At-least-once delivery for one network target (docs/audit.md
//! "Delivery"): a bounded in-memory queue in front of one worker thread,
//! which sends batches through the target's [`Sink`]. What the sink cannot
//! take right now goes to the target's [`Spool`] and is replayed, oldest
//! first, once the destination answers again; while anything is spooled,
//! new messages queue behind it so that order is kept. What the destination
//! will never take goes to the target's [`DeadLetter`] file, is counted and
//! reported, and the target goes on with everything else: one bad record
//! never stalls a target.
//!
//! A sender never waits on the network: a full queue spills to the spool.
//! Only a spool at its cap makes a sender wait (BLOCK) or drop and count
//! (DROP, queries and calls only). A record sent with a [`Ticket`]
//! (WRITTEN and FSYNC durability, docs/integrity.md) goes through the
//! journal instead: a spooler thread appends batches of them to the spool
//! (one `write`, one sync for the batch when asked) and settles their
//! tickets, and the worker delivers from the spool: the spool is the
//! target's write-ahead log. [`Delivery::try_send`] never waits at all
//! (it hands the record back instead), for callers on an async runtime's
//! worker threads; [`Delivery::send`] waits, for callers on threads of their
//! own. The dispatcher's targets, the Kafka log4j appender and entity audit
//! all use this module. It owns queue, worker, spool policy, dead letters
//! and counters; it knows no protocol.
//!
//! - [`policy`]: queue, spool cap and onFull settings.
//! - [`sink`]: the contract with a destination, and what a record offers.
//! - [`spool`]: the on-disk spool.
//! - [`dead_letter`]: records no destination will take.
//! - `worker`: the thread that delivers, retries, splits and replays.
//! - `spooler`: the thread that appends ticketed records to the spool.

pub mod dead_letter;
pub mod policy;
pub mod sink;
pub mod spool;
mod spooler;
mod worker;

use std::borrow::Cow;
use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::commit::Ticket;
pub use crate::report::{Event, Events};
pub use dead_letter::DeadLetter;
pub use policy::{DeliverySettings, OnFull};
pub use sink::{Failure, Record, Sink};
pub use spool::{Spool, SpoolGauge};

/// Messages sent in one batch, at most.
pub const BATCH_MAX: usize = 500;
/// Bytes of one batch, about at most.
pub const BATCH_MAX_BYTES: usize = 4 << 20;

/// Counters of one target, for `/admin/api/metrics`.
#[derive(Debug, Default)]
pub struct TargetStats {
    /// Messages handed to the target.
    pub enqueued: AtomicU64,
    /// Delivered straight from the queue.
    pub delivered: AtomicU64,
    /// Written to the spool.
    pub spooled: AtomicU64,
    /// Delivered from the spool.
    pub replayed: AtomicU64,
    /// Dropped because the spool was full (onFull DROP) or could not be written.
    pub dropped: AtomicU64,
    /// Refused for good by the destination and kept in the dead letters.
    pub rejected: AtomicU64,
    /// Ticketed records that could not be appended to the spool (lost).
    pub lost: AtomicU64,
    /// Whether the spool fails to take writes now.
    pub failing: AtomicBool,
    /// Times a sender waited because the spool was full (onFull BLOCK).
    pub blocked: AtomicU64,
    /// Failed delivery attempts.
    pub delivery_errors: AtomicU64,
    /// Spool lines that were not records (kept in the dead letters).
    pub bad_lines: AtomicU64,
    /// Whether the last attempt failed.
    pub down: AtomicBool,
    /// The last delivery error.
    pub last_error: Mutex<Option<String>>,
    /// When the target last delivered something, or started (epoch ms):
    /// the delivery lag is counted from it while records wait.
    pub last_progress_ms: AtomicU64,
}

/// Now, in epoch milliseconds.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl TargetStats {
    /// Seconds since the target last delivered, while `waiting` records
    /// wait for it; 0 when nothing waits.
    pub fn delivery_lag_seconds(&self, waiting: u64) -> f64 {
        if waiting == 0 {
            return 0.0;
        }
        now_ms().saturating_sub(self.last_progress_ms.load(Ordering::Relaxed)) as f64 / 1000.0
    }
}

struct QueueState<R> {
    items: VecDeque<R>,
    /// Set by a graceful stop: senders then write to the spool directly.
    stop: Option<Instant>,
    /// The worker sleeps on the condvar (a sender must wake it).
    sleeping: bool,
}

/// Ticketed records waiting for the spooler.
struct Journal<R> {
    items: VecDeque<(R, Ticket)>,
    stop: bool,
    sleeping: bool,
}

struct Shared<R> {
    queue: Mutex<QueueState<R>>,
    journal: Mutex<Journal<R>>,
    /// Wakes the spooler.
    journal_wake: Condvar,
    /// Wakes the worker.
    wake: Condvar,
    /// Wakes senders waiting for room in the spool (BLOCK).
    room: Condvar,
    spool: Mutex<Spool>,
    dead: Mutex<DeadLetter>,
    gauge: Arc<SpoolGauge>,
    settings: DeliverySettings,
    stats: TargetStats,
    name: String,
    events: Option<Events>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<R: Record> Shared<R> {
    fn queue(&self) -> MutexGuard<'_, QueueState<R>> {
        lock(&self.queue)
    }

    fn spool(&self) -> MutexGuard<'_, Spool> {
        lock(&self.spool)
    }

    fn full(&self) -> bool {
        self.gauge.bytes.load(Ordering::Relaxed) >= self.settings.spool_max_bytes
    }

    fn report(&self, event: Event) {
        if let Some(events) = &self.events {
            events.report(&self.name, event);
        }
    }

    /// Appends to the spool, counting; a spool that cannot be written loses
    /// the messages, counted as drops and logged.
    fn spool_append(&self, spool: &mut Spool, records: &[R], front: bool) {
        let n = records.len();
        let lines: Vec<Cow<'_, str>> = records.iter().map(Record::line).collect();
        let lines = lines.iter().map(|l| &**l);
        let written = if front { spool.prepend(lines) } else { spool.append(lines) };
        match written {
            Ok(()) => {
                self.stats.spooled.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) => {
                self.stats.dropped.fetch_add(n as u64, Ordering::Relaxed);
                log::error!("Audit target {}: {n} messages could not be spooled and are lost: {e}", self.name);
            }
        }
    }

    /// Keeps a record the destination will never take in the dead letters,
    /// counts and reports it.
    fn reject(&self, line: &str, event_id: Option<&str>, reason: &str) {
        let kept = lock(&self.dead).keep(line, reason);
        match kept {
            Ok(file) => {
                self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                log::error!(
                    "Audit target {}: a record ({}) was refused for good and kept in {}: {reason}",
                    self.name,
                    event_id.unwrap_or("no event id"),
                    file.display()
                );
                self.report(Event::Rejected { reason: reason.to_owned(), event_id: event_id.map(str::to_owned), file });
            }
            Err(e) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                log::error!(
                    "Audit target {}: a refused record ({}) could not be kept in the dead letters and is lost: {e} (refused: {reason})",
                    self.name,
                    event_id.unwrap_or("no event id")
                );
            }
        }
    }
}

/// One network target's queue and worker.
pub struct Delivery<R> {
    kind: &'static str,
    shared: Arc<Shared<R>>,
    worker: Mutex<Option<JoinHandle<()>>>,
    spooler: Mutex<Option<JoinHandle<()>>>,
}

impl<R> std::fmt::Debug for Delivery<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery").field("name", &self.shared.name).field("stats", &self.shared.stats).finish()
    }
}

/// Builds a target's sink on its worker thread.
pub type SinkMaker<R> = Box<dyn FnOnce() -> Box<dyn Sink<R>> + Send>;

impl<R: Record> Delivery<R> {
    /// Opens the spool in `spool_dir` (what an earlier run left is replayed
    /// first) and starts the worker, which builds its sink with `make_sink`
    /// on its own thread. Outages, returns and rejections go to `events`.
    ///
    /// # Errors
    /// When the spool cannot be opened or the thread cannot start.
    pub fn start(
        name: &str,
        kind: &'static str,
        spool_dir: &Path,
        settings: DeliverySettings,
        make_sink: SinkMaker<R>,
        events: Option<Events>,
    ) -> std::io::Result<Delivery<R>> {
        let spool = Spool::open(spool_dir)?;
        let gauge = spool.gauge();
        let pending = gauge.messages.load(Ordering::Relaxed);
        if pending > 0 {
            log::info!("Audit target {name}: {pending} spooled messages from an earlier run will be delivered first");
        }
        let shared = Arc::new(Shared {
            queue: Mutex::new(QueueState { items: VecDeque::new(), stop: None, sleeping: false }),
            journal: Mutex::new(Journal { items: VecDeque::new(), stop: false, sleeping: false }),
            journal_wake: Condvar::new(),
            wake: Condvar::new(),
            room: Condvar::new(),
            spool: Mutex::new(spool),
            dead: Mutex::new(DeadLetter::new(name, spool_dir)),
            gauge,
            settings,
            stats: TargetStats { last_progress_ms: AtomicU64::new(now_ms()), ..TargetStats::default() },
            name: name.to_owned(),
            events,
        });
        let worker = worker::Worker::new(shared.clone());
        let thread = std::thread::Builder::new().name(format!("audit-{name}")).spawn(move || {
            let sink = make_sink();
            worker.run(sink);
        })?;
        let for_spooler = shared.clone();
        let spooler =
            std::thread::Builder::new().name(format!("spool-{name}")).spawn(move || spooler::run(&for_spooler))?;
        Ok(Delivery { kind, shared, worker: Mutex::new(Some(thread)), spooler: Mutex::new(Some(spooler)) })
    }

    /// Hands over a record whose sender waits (`ticket`): one part of the
    /// ticket is settled once the record is appended to the spool (and
    /// synced when the ticket asks). Never waits; under onFull DROP a
    /// droppable record is dropped (counted, its part settled at once).
    ///
    /// # Errors
    /// The record, when the spool is at its cap under BLOCK.
    pub fn try_send_ticketed(&self, msg: R, ticket: &Ticket) -> Result<(), R> {
        if self.shared.full() {
            if self.shared.settings.on_full == OnFull::Drop && msg.droppable() {
                self.shared.stats.enqueued.fetch_add(1, Ordering::Relaxed);
                self.shared.stats.dropped.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            if !lock(&self.shared.journal).stop {
                return Err(msg);
            }
        }
        self.journal(msg, ticket);
        Ok(())
    }

    /// As [`Delivery::try_send_ticketed`], waiting while the spool is at
    /// its cap under BLOCK (never on an async runtime's worker thread).
    pub fn send_ticketed(&self, msg: R, ticket: &Ticket) {
        let Err(msg) = self.try_send_ticketed(msg, ticket) else { return };
        self.wait_for_room();
        self.journal(msg, ticket);
    }

    fn journal(&self, msg: R, ticket: &Ticket) {
        self.shared.stats.enqueued.fetch_add(1, Ordering::Relaxed);
        ticket.add_part();
        let mut journal = lock(&self.shared.journal);
        if journal.stop {
            // The spooler has stopped (a graceful stop): append here.
            drop(journal);
            spooler::append(&self.shared, vec![(msg, ticket.clone())]);
            return;
        }
        journal.items.push_back((msg, ticket.clone()));
        if journal.sleeping {
            journal.sleeping = false;
            self.shared.journal_wake.notify_one();
        }
    }

    fn wait_for_room(&self) {
        self.shared.stats.blocked.fetch_add(1, Ordering::Relaxed);
        let mut queue = self.shared.queue();
        while self.shared.full() && queue.stop.is_none() {
            // The worker signals `room` after every commit; the timeout
            // covers room made by other paths (a segment dropped on read).
            queue = self
                .shared
                .room
                .wait_timeout(queue, Duration::from_millis(100))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Whether the spool fails to take writes now.
    pub fn failing(&self) -> bool {
        self.shared.stats.failing.load(Ordering::Relaxed)
    }

    /// Hands a record over without ever waiting. When the spool is at its
    /// cap under BLOCK, the record is handed back: the caller waits
    /// somewhere it may ([`Delivery::send`] on a thread of its own).
    ///
    /// # Errors
    /// The record, when taking it would mean waiting.
    pub fn try_send(&self, msg: R) -> Result<(), R> {
        if self.shared.full() {
            if self.shared.settings.on_full == OnFull::Drop && msg.droppable() {
                self.shared.stats.enqueued.fetch_add(1, Ordering::Relaxed);
                self.shared.stats.dropped.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            if self.shared.queue().stop.is_none() {
                return Err(msg);
            }
        }
        self.enqueue(msg);
        Ok(())
    }

    /// Hands a record over; waits while the spool is at its cap under
    /// BLOCK. Never call it on an async runtime's worker thread (use
    /// [`Delivery::try_send`] there).
    pub fn send(&self, msg: R) {
        let Err(msg) = self.try_send(msg) else { return };
        self.wait_for_room();
        self.enqueue(msg);
    }

    fn enqueue(&self, msg: R) {
        self.shared.stats.enqueued.fetch_add(1, Ordering::Relaxed);
        let mut queue = self.shared.queue();
        if queue.stop.is_none() && queue.items.len() < self.shared.settings.queue_capacity {
            queue.items.push_back(msg);
            if queue.sleeping {
                queue.sleeping = false;
                self.shared.wake.notify_one();
            }
            return;
        }
        // The queue is full (the worker waits on a slow destination) or the
        // worker has stopped: what is queued and this message go to the
        // spool, in order. The spool is locked before the queue is released
        // (so nothing newer can be spooled first), and written after it is
        // released (so other senders do not wait on this disk write).
        let mut spool = self.shared.spool();
        let mut records: Vec<R> = std::mem::take(&mut queue.items).into();
        drop(queue);
        records.push(msg);
        self.shared.spool_append(&mut spool, &records, false);
    }

    /// Delivers or spools everything queued, trying the destination until
    /// `deadline`, syncs the spool and stops the worker. Senders waiting
    /// for room are released (their records go to the spool).
    pub fn shutdown(&self, deadline: Instant) {
        {
            // The journal first: what senders wait for goes to the spool.
            let mut journal = lock(&self.shared.journal);
            journal.stop = true;
            self.shared.journal_wake.notify_one();
        }
        if let Some(t) = lock(&self.spooler).take() {
            let _ = t.join();
        }
        {
            let mut queue = self.shared.queue();
            queue.stop = Some(deadline);
            self.shared.wake.notify_one();
            self.shared.room.notify_all();
        }
        if let Some(t) = lock(&self.worker).take() {
            let _ = t.join();
        }
    }

    /// The target's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Dropped so far.
    pub fn dropped(&self) -> u64 {
        self.shared.stats.dropped.load(Ordering::Relaxed)
    }

    /// The counters.
    pub fn stats(&self) -> &TargetStats {
        &self.shared.stats
    }

    /// Messages and bytes in the spool.
    pub fn gauge(&self) -> &SpoolGauge {
        &self.shared.gauge
    }

    /// The counters as JSON.
    pub fn snapshot(&self) -> Value {
        let s = &self.shared.stats;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        json!({
            "type": self.kind,
            "state": if s.down.load(Ordering::Relaxed) { "DOWN" } else { "UP" },
            "enqueued": load(&s.enqueued),
            "delivered": load(&s.delivered),
            "spooled": load(&s.spooled),
            "replayed": load(&s.replayed),
            "dropped": load(&s.dropped),
            "rejected": load(&s.rejected),
            "lost": load(&s.lost),
            "failing": s.failing.load(Ordering::Relaxed),
            "blockedWaits": load(&s.blocked),
            "deliveryErrors": load(&s.delivery_errors),
            "badSpoolLines": load(&s.bad_lines),
            "queued": self.shared.queue().items.len(),
            "spoolMessages": load(&self.shared.gauge.messages),
            "spoolBytes": load(&self.shared.gauge.bytes),
            "deliveryLagSeconds": s.delivery_lag_seconds(
                load(&self.shared.gauge.messages) + self.shared.queue().items.len() as u64,
            ),
            "spoolMaxBytes": self.shared.settings.spool_max_bytes,
            "onFull": self.shared.settings.on_full.as_str(),
            "lastError": *lock(&s.last_error),
        })
    }
}

/// A running delivery as its owner sees it, whatever records it carries:
/// lets a registry keep deliveries of any kind (the Kafka appenders') without
/// knowing their record type.
pub trait Running: Send + Sync + std::fmt::Debug {
    /// The target's name.
    fn name(&self) -> &str;
    /// The counters as JSON.
    fn snapshot(&self) -> Value;
    /// Dropped so far.
    fn dropped(&self) -> u64;
    /// Delivers or spools what it holds, trying until `deadline`, and stops.
    fn shutdown(&self, deadline: Instant);
}

impl<R: Record> Running for Delivery<R> {
    fn name(&self) -> &str {
        Delivery::name(self)
    }
    fn snapshot(&self) -> Value {
        Delivery::snapshot(self)
    }
    fn dropped(&self) -> u64 {
        Delivery::dropped(self)
    }
    fn shutdown(&self, deadline: Instant) {
        Delivery::shutdown(self, deadline);
    }
}

#[cfg(test)]
mod tests;
