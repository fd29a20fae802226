//! The worker thread of one target: takes batches from the queue (or, while
//! anything is spooled, sends the queue behind the spool and replays the
//! spool first), hands them to the sink and settles every record: delivered,
//! kept for a retry, or rejected into the dead letters. A batch the
//! destination refuses without naming the culprit is split in halves until
//! the culprit is alone; everything else of it is delivered. Retries back
//! off from 100 ms to 2 s. A graceful stop delivers or spools what is
//! queued and replays the spool while the destination answers and time is
//! left.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{BATCH_MAX, BATCH_MAX_BYTES, Event, Failure, Record, Shared, Sink, lock};

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

pub(super) struct Worker<R> {
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

/// How far a batch got.
enum Settled {
    /// Every record was delivered or rejected.
    All,
    /// The first `n` records are settled; the rest wait for a retry (why).
    Upto(usize, String),
}

/// Where a record of a batch came from: the queue, or the spool (replayed).
#[derive(Clone, Copy)]
enum From {
    Queue,
    Spool,
}

impl<R: Record> Worker<R> {
    pub(super) fn new(shared: Arc<Shared<R>>) -> Worker<R> {
        Worker { shared }
    }

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

    pub(super) fn run(self, mut sink: Box<dyn Sink<R>>) {
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
                    match self.settle(sink.as_mut(), &batch, From::Queue) {
                        Settled::All => self.recovered(&mut backoff),
                        Settled::Upto(n, e) => {
                            self.failed(&e, &mut backoff, &mut retry_at);
                            // Newer messages may have gone to the spool
                            // meanwhile: the rest goes in front of them.
                            let mut spool = self.shared.spool();
                            self.shared.spool_append(&mut spool, &batch[n..], true);
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
                let (mut queue, _) =
                    self.shared.wake.wait_timeout(queue, wait).unwrap_or_else(std::sync::PoisonError::into_inner);
                queue.sleeping = false;
            }
        }
    }

    /// Delivers `batch`, splitting what the destination refuses until each
    /// refused record is alone (and rejected), and counts what was delivered.
    fn settle(&self, sink: &mut dyn Sink<R>, batch: &[R], from: From) -> Settled {
        let stats = &self.shared.stats;
        let delivered = |n: usize| {
            let counter = match from {
                From::Queue => &stats.delivered,
                From::Spool => &stats.replayed,
            };
            counter.fetch_add(n as u64, Ordering::Relaxed);
            stats.last_progress_ms.store(super::now_ms(), Ordering::Relaxed);
        };
        if batch.is_empty() {
            return Settled::All;
        }
        match sink.deliver(batch) {
            Ok(()) => {
                delivered(batch.len());
                Settled::All
            }
            Err(Failure::Retry(e)) => Settled::Upto(0, e),
            Err(Failure::Rejected(list)) => {
                let rejected: BTreeMap<usize, String> = list.into_iter().filter(|(i, _)| *i < batch.len()).collect();
                for (i, reason) in &rejected {
                    let r = &batch[*i];
                    self.shared.reject(&r.line(), r.event_id(), reason);
                }
                delivered(batch.len() - rejected.len());
                Settled::All
            }
            Err(Failure::Refused(reason)) if batch.len() == 1 => {
                let r = &batch[0];
                self.shared.reject(&r.line(), r.event_id(), &reason);
                Settled::All
            }
            Err(Failure::Refused(_)) => {
                let mid = batch.len() / 2;
                match self.settle(sink, &batch[..mid], from) {
                    Settled::All => match self.settle(sink, &batch[mid..], from) {
                        Settled::All => Settled::All,
                        Settled::Upto(n, e) => Settled::Upto(mid + n, e),
                    },
                    partly => partly,
                }
            }
        }
    }

    /// Sends the oldest spooled lines; the number settled. A line that is
    /// not a record goes to the dead letters.
    fn replay_chunk(&self, sink: &mut dyn Sink<R>) -> Result<usize, String> {
        let stats = &self.shared.stats;
        let lines =
            self.shared.spool().peek(BATCH_MAX, BATCH_MAX_BYTES).map_err(|e| format!("reading the spool: {e}"))?;
        let mut records = Vec::with_capacity(lines.len());
        // The spool line of each record, so that a partial delivery commits
        // exactly the lines before the first record left for a retry.
        let mut line_of = Vec::with_capacity(lines.len());
        for (i, line) in lines.iter().enumerate() {
            match R::from_line(line) {
                Ok(m) => {
                    records.push(m);
                    line_of.push(i);
                }
                Err(e) => {
                    stats.bad_lines.fetch_add(1, Ordering::Relaxed);
                    self.shared.reject(line, None, &format!("a spool line that is not a record: {e}"));
                }
            }
        }
        let (settled, outcome) = match self.settle(sink, &records, From::Spool) {
            Settled::All => (lines.len(), Ok(lines.len())),
            Settled::Upto(n, e) => (line_of[n], Err(e)),
        };
        self.shared.spool().commit(settled).map_err(|e| format!("removing a delivered spool segment: {e}"))?;
        self.shared.room.notify_all();
        outcome
    }

    fn failed(&self, error: &str, backoff: &mut Duration, retry_at: &mut Instant) {
        let stats = &self.shared.stats;
        stats.delivery_errors.fetch_add(1, Ordering::Relaxed);
        if !stats.down.swap(true, Ordering::Relaxed) {
            log::warn!("Audit target {} is not reachable, spooling until it is back: {error}", self.shared.name);
            self.shared.report(Event::Down(error.to_owned()));
        }
        *lock(&stats.last_error) = Some(error.to_owned());
        *retry_at = Instant::now() + *backoff;
        *backoff = (*backoff * 2).min(RETRY_MAX);
    }

    fn recovered(&self, backoff: &mut Duration) {
        *backoff = RETRY_MIN;
        if self.shared.stats.down.swap(false, Ordering::Relaxed) {
            log::info!("Audit target {} is reachable again; replaying its spool", self.shared.name);
            self.shared.report(Event::Up);
        }
    }

    /// Graceful stop: what is queued goes to the destination or the spool;
    /// the spool is replayed while the destination answers and time is left.
    fn finish(&self, sink: &mut dyn Sink<R>, batch: Vec<R>, deadline: Instant) {
        let stats = &self.shared.stats;
        if !batch.is_empty() {
            let direct = self.shared.spool().is_empty() && !stats.down.load(Ordering::Relaxed);
            let settled = if direct {
                match self.settle(sink, &batch, From::Queue) {
                    Settled::All => batch.len(),
                    Settled::Upto(n, _) => n,
                }
            } else {
                0
            };
            if settled < batch.len() {
                // Queued messages are newer than anything spooled.
                let mut spool = self.shared.spool();
                self.shared.spool_append(&mut spool, &batch[settled..], false);
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
        if let Err(e) = spool.sync().and_then(|()| spool.close_if_empty()) {
            log::error!("Audit target {}: cannot sync the spool: {e}", self.shared.name);
        }
        let left = spool.gauge().messages.load(Ordering::Relaxed);
        if left > 0 {
            log::info!("Audit target {}: {left} messages wait in the spool for the next start", self.shared.name);
        }
    }
}
