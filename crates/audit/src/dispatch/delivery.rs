//! At-least-once delivery for one network target (audit.md "Delivery"): a
//! bounded in-memory queue in front of one worker thread, which sends
//! batches through the target's [`Sink`]. What the sink cannot take right
//! now goes to the target's [`Spool`] and is replayed, oldest first, once the
//! destination answers again; while anything is spooled, new messages queue
//! behind it so that order is kept. A sender never waits on the network: a
//! full queue spills to the spool. Only a spool at its cap makes a sender
//! wait (BLOCK) or drop and count (DROP, queries and calls only). This module
//! owns queue, worker, spool policy and counters; it knows no protocol.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::config::{DeliverySettings, OnFull};
use super::spool::{Spool, SpoolGauge};
use crate::message::Message;

/// Messages sent in one batch, at most.
pub const BATCH_MAX: usize = 500;
/// Bytes of one batch, about at most.
pub const BATCH_MAX_BYTES: usize = 4 << 20;
/// First pause after a failed delivery; it doubles up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_millis(100);
/// Longest pause between two attempts on a dead destination.
const RETRY_MAX: Duration = Duration::from_secs(2);
/// While messages flow the worker polls the queue at this pace instead of
/// sleeping on the condvar, so that senders do no futex wake-up (the audit
/// writer measured this as most of a record's cost).
const POLL_PAUSE: Duration = Duration::from_millis(2);
/// After this long without messages the worker sleeps until the next one.
const IDLE_AFTER: Duration = Duration::from_millis(50);

/// What a delivery queue carries: an audit [`Message`], or a plain Kafka
/// record of the log4j appender and the entity audit. It must survive the
/// spool as one line.
pub trait Record: Clone + Send + 'static {
    /// The spool line (no newline inside).
    fn line(&self) -> Cow<'_, str>;
    /// A record read back from its spool line.
    ///
    /// # Errors
    /// Why the line is not a record.
    fn from_line(line: &str) -> Result<Self, String>;
    /// Whether onFull DROP may drop it when the spool is full.
    fn droppable(&self) -> bool;
}

impl Record for Message {
    fn line(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.text)
    }
    fn from_line(line: &str) -> Result<Self, String> {
        Message::from_line(line).map_err(|e| e.to_string())
    }
    fn droppable(&self) -> bool {
        self.topic.droppable()
    }
}

/// Where a target's records go: an event server, a Kafka topic.
pub trait Sink<R>: Send {
    /// Delivers every record of `batch`, or reports why not (then the whole
    /// batch is kept and retried; consumers deduplicate on eventId).
    ///
    /// # Errors
    /// Why the batch was not delivered.
    fn deliver(&mut self, batch: &[R]) -> Result<(), String>;
}

/// Told when a target becomes unreachable (`Some(error)`) and reachable
/// again (`None`), with the target's name.
pub type StateHook = Arc<dyn Fn(&str, Option<&str>) + Send + Sync>;

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
    /// Dropped because the spool was full (onFull DROP).
    pub dropped: AtomicU64,
    /// Times a sender waited because the spool was full (onFull BLOCK).
    pub blocked: AtomicU64,
    /// Failed delivery attempts.
    pub delivery_errors: AtomicU64,
    /// Spool lines that were not messages and were skipped.
    pub bad_lines: AtomicU64,
    /// Whether the last attempt succeeded.
    pub down: AtomicBool,
    /// The last delivery error.
    pub last_error: Mutex<Option<String>>,
}

struct QueueState<R> {
    items: VecDeque<R>,
    /// Set by a graceful stop: senders then write to the spool directly.
    stop: Option<Instant>,
    /// The worker sleeps on the condvar (a sender must wake it).
    sleeping: bool,
}

struct Shared<R> {
    queue: Mutex<QueueState<R>>,
    wake: Condvar,
    spool: Mutex<Spool>,
    stats: TargetStats,
    capacity: usize,
    name: String,
    on_state: Option<StateHook>,
}

impl<R: Record> Shared<R> {
    fn queue(&self) -> MutexGuard<'_, QueueState<R>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn spool(&self) -> MutexGuard<'_, Spool> {
        self.spool.lock().unwrap_or_else(PoisonError::into_inner)
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
}

/// One network target's queue and worker.
pub struct Delivery<R> {
    kind: &'static str,
    shared: Arc<Shared<R>>,
    gauge: Arc<SpoolGauge>,
    settings: DeliverySettings,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl<R> std::fmt::Debug for Delivery<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery").field("name", &self.shared.name).field("stats", &self.shared.stats).finish()
    }
}

impl<R: Record> Delivery<R> {
    /// Opens the spool in `spool_dir` (what an earlier run left is replayed
    /// first) and starts the worker, which builds its sink with `make_sink`
    /// on its own thread.
    ///
    /// # Errors
    /// When the spool cannot be opened or the thread cannot start.
    pub fn start(
        name: &str,
        kind: &'static str,
        spool_dir: &Path,
        settings: DeliverySettings,
        make_sink: Box<dyn FnOnce() -> Box<dyn Sink<R>> + Send>,
        on_state: Option<StateHook>,
    ) -> std::io::Result<Delivery<R>> {
        let spool = Spool::open(spool_dir)?;
        let gauge = spool.gauge();
        let pending = gauge.messages.load(Ordering::Relaxed);
        if pending > 0 {
            log::info!("Audit target {name}: {pending} spooled messages from an earlier run will be delivered first");
        }
        let shared = Arc::new(Shared {
            queue: Mutex::new(QueueState { items: VecDeque::new(), stop: None, sleeping: false }),
            wake: Condvar::new(),
            spool: Mutex::new(spool),
            stats: TargetStats::default(),
            capacity: settings.queue_capacity,
            name: name.to_owned(),
            on_state,
        });
        let worker = Worker { shared: shared.clone() };
        let thread = std::thread::Builder::new().name(format!("audit-{name}")).spawn(move || {
            let sink = make_sink();
            worker.run(sink);
        })?;
        Ok(Delivery { kind, shared, gauge, settings, worker: Mutex::new(Some(thread)) })
    }

    /// Hands a message over without waiting on I/O (unless the spool is at
    /// its cap and the policy is BLOCK).
    pub fn send(&self, msg: R) {
        let stats = &self.shared.stats;
        stats.enqueued.fetch_add(1, Ordering::Relaxed);
        if self.gauge.bytes.load(Ordering::Relaxed) >= self.settings.spool_max_bytes {
            if self.settings.on_full == OnFull::Drop && msg.droppable() {
                stats.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            stats.blocked.fetch_add(1, Ordering::Relaxed);
            while self.gauge.bytes.load(Ordering::Relaxed) >= self.settings.spool_max_bytes
                && self.shared.queue().stop.is_none()
            {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let mut queue = self.shared.queue();
        if queue.stop.is_none() && queue.items.len() < self.shared.capacity {
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
    /// `deadline`, syncs the spool and stops the worker.
    pub fn shutdown(&self, deadline: Instant) {
        {
            let mut queue = self.shared.queue();
            queue.stop = Some(deadline);
            self.shared.wake.notify_one();
        }
        if let Some(t) = self.worker.lock().unwrap_or_else(PoisonError::into_inner).take() {
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
            "blockedWaits": load(&s.blocked),
            "deliveryErrors": load(&s.delivery_errors),
            "badSpoolLines": load(&s.bad_lines),
            "queued": self.shared.queue().items.len(),
            "spoolMessages": load(&self.gauge.messages),
            "spoolBytes": load(&self.gauge.bytes),
            "spoolMaxBytes": self.settings.spool_max_bytes,
            "onFull": match self.settings.on_full { OnFull::Block => "BLOCK", OnFull::Drop => "DROP" },
            "lastError": *s.last_error.lock().unwrap_or_else(PoisonError::into_inner),
        })
    }
}

struct Worker<R> {
    shared: Arc<Shared<R>>,
}

/// What the worker took from the queue.
enum Taken<R> {
    /// A batch to deliver now (nothing was spooled).
    Direct(Vec<R>),
    /// The queue went behind the spool (or was empty).
    Spooled(usize),
    /// A graceful stop: what was queued, and the deadline.
    Stop(Vec<R>, Instant),
}

impl<R: Record> Worker<R> {
    /// Takes the next batch. While holding the queue: when the spool has a
    /// backlog, the queue goes behind it; otherwise up to a batch is taken.
    fn take(&self) -> Taken<R> {
        let mut queue = self.shared.queue();
        if let Some(deadline) = queue.stop {
            return Taken::Stop(queue.items.drain(..).collect(), deadline);
        }
        let mut spool = self.shared.spool();
        if spool.is_empty() {
            let n = queue.items.len().min(BATCH_MAX);
            return Taken::Direct(queue.items.drain(..n).collect());
        }
        let n = queue.items.len();
        if n > 0 {
            let records: Vec<R> = queue.items.drain(..).collect();
            self.shared.spool_append(&mut spool, &records, false);
        }
        Taken::Spooled(n)
    }

    fn run(self, mut sink: Box<dyn Sink<R>>) {
        let stats = &self.shared.stats;
        let mut backoff = RETRY_MIN;
        let mut retry_at = Instant::now();
        let mut last_msg = Instant::now();
        loop {
            let got = match self.take() {
                Taken::Stop(batch, deadline) => {
                    self.finish(sink.as_mut(), batch, deadline);
                    return;
                }
                Taken::Spooled(n) => n,
                Taken::Direct(batch) if batch.is_empty() => 0,
                Taken::Direct(batch) => {
                    match sink.deliver(&batch) {
                        Ok(()) => {
                            stats.delivered.fetch_add(batch.len() as u64, Ordering::Relaxed);
                            self.recovered(&mut backoff);
                        }
                        Err(e) => {
                            self.failed(&e, &mut backoff, &mut retry_at);
                            // Newer messages may have gone to the spool
                            // meanwhile: this batch goes in front of them.
                            let mut spool = self.shared.spool();
                            self.shared.spool_append(&mut spool, &batch, true);
                        }
                    }
                    batch.len()
                }
            };
            if got > 0 {
                last_msg = Instant::now();
            }
            let mut replayed = false;
            if Instant::now() >= retry_at && !self.shared.spool().is_empty() {
                match self.replay_chunk(sink.as_mut()) {
                    Ok(n) => {
                        replayed = n > 0;
                        self.recovered(&mut backoff);
                    }
                    Err(e) => self.failed(&e, &mut backoff, &mut retry_at),
                }
            }
            if got > 0 || replayed {
                continue;
            }
            if last_msg.elapsed() < IDLE_AFTER {
                std::thread::sleep(POLL_PAUSE);
                continue;
            }
            // Idle: sleep until a message comes or the next retry is due.
            let wait = if self.shared.spool().is_empty() {
                Duration::from_secs(1)
            } else {
                retry_at.saturating_duration_since(Instant::now()).max(POLL_PAUSE)
            };
            let mut queue = self.shared.queue();
            if queue.items.is_empty() && queue.stop.is_none() {
                queue.sleeping = true;
                let (mut queue, _) = self.shared.wake.wait_timeout(queue, wait).unwrap_or_else(PoisonError::into_inner);
                queue.sleeping = false;
            }
        }
    }

    /// Sends the oldest spooled lines; the number delivered.
    fn replay_chunk(&self, sink: &mut dyn Sink<R>) -> Result<usize, String> {
        let stats = &self.shared.stats;
        let lines =
            self.shared.spool().peek(BATCH_MAX, BATCH_MAX_BYTES).map_err(|e| format!("reading the spool: {e}"))?;
        let mut messages = Vec::with_capacity(lines.len());
        for line in &lines {
            match R::from_line(line) {
                Ok(m) => messages.push(m),
                Err(e) => {
                    stats.bad_lines.fetch_add(1, Ordering::Relaxed);
                    log::error!("Audit target {}: skipping a spool line that is not a message ({e})", self.shared.name);
                }
            }
        }
        if !messages.is_empty() {
            sink.deliver(&messages)?;
        }
        self.shared.spool().commit(lines.len()).map_err(|e| format!("removing a delivered spool segment: {e}"))?;
        stats.replayed.fetch_add(messages.len() as u64, Ordering::Relaxed);
        Ok(lines.len())
    }

    fn failed(&self, error: &str, backoff: &mut Duration, retry_at: &mut Instant) {
        let stats = &self.shared.stats;
        stats.delivery_errors.fetch_add(1, Ordering::Relaxed);
        if !stats.down.swap(true, Ordering::Relaxed) {
            log::warn!("Audit target {} is not reachable, spooling until it is back: {error}", self.shared.name);
            if let Some(hook) = &self.shared.on_state {
                hook(&self.shared.name, Some(error));
            }
        }
        *stats.last_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(error.to_owned());
        *retry_at = Instant::now() + *backoff;
        *backoff = (*backoff * 2).min(RETRY_MAX);
    }

    fn recovered(&self, backoff: &mut Duration) {
        *backoff = RETRY_MIN;
        if self.shared.stats.down.swap(false, Ordering::Relaxed) {
            log::info!("Audit target {} is reachable again; replaying its spool", self.shared.name);
            if let Some(hook) = &self.shared.on_state {
                hook(&self.shared.name, None);
            }
        }
    }

    /// Graceful stop: what is queued goes to the destination or the spool;
    /// the spool is replayed while the destination answers and time is left.
    fn finish(&self, sink: &mut dyn Sink<R>, batch: Vec<R>, deadline: Instant) {
        let stats = &self.shared.stats;
        if !batch.is_empty() {
            let direct = self.shared.spool().is_empty() && !stats.down.load(Ordering::Relaxed);
            if direct && sink.deliver(&batch).is_ok() {
                stats.delivered.fetch_add(batch.len() as u64, Ordering::Relaxed);
            } else {
                // Queued messages are newer than anything spooled.
                let mut spool = self.shared.spool();
                self.shared.spool_append(&mut spool, &batch, false);
            }
        }
        while Instant::now() < deadline && !self.shared.spool().is_empty() && !stats.down.load(Ordering::Relaxed) {
            match self.replay_chunk(sink) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    log::warn!("Audit target {}: left in the spool at stop: {e}", self.shared.name);
                    break;
                }
            }
        }
        let mut spool = self.shared.spool();
        if let Err(e) = spool.sync() {
            log::error!("Audit target {}: cannot sync the spool: {e}", self.shared.name);
        }
        let left = spool.gauge().messages.load(Ordering::Relaxed);
        if left > 0 {
            log::info!("Audit target {}: {left} messages wait in the spool for the next start", self.shared.name);
        }
    }
}

#[cfg(test)]
#[path = "delivery_tests.rs"]
mod tests;
