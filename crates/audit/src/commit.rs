//! When a record counts as recorded (docs/integrity.md "Durability", "Write
//! failures"): the node's [`Durability`] mode, what happens when a write
//! fails ([`OnWriteFailure`]), and the [`Ticket`] a sender gets back, which
//! tells it once every part of what it handed over is recorded (or why a
//! part is not). A ticket may be cancelled by its sender only while no part
//! has started writing: a record whose sender was told "refused" is never
//! written later. Owns these values; it writes nothing.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

/// When the answer of a request may leave the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Durability {
    /// Once each record is handed to the writer and the targets' queues: a
    /// crash of the process may lose what was not written yet.
    Async,
    /// Once each record is written (the `write` call returned) by every file
    /// appender that takes it and appended to the spool of every network
    /// target that takes it: survives `kill -9` of the node.
    Written,
    /// As `Written`, then synced to disk (`fdatasync`; one sync covers every
    /// record written before it): survives a power loss.
    Fsync,
}

impl Durability {
    /// The configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Async => "ASYNC",
            Durability::Written => "WRITTEN",
            Durability::Fsync => "FSYNC",
        }
    }

    /// Reads a configuration name.
    pub fn parse(name: &str) -> Option<Durability> {
        match name {
            "ASYNC" => Some(Durability::Async),
            "WRITTEN" => Some(Durability::Written),
            "FSYNC" => Some(Durability::Fsync),
            _ => None,
        }
    }
}

/// What the node does with a request whose records could not be recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnWriteFailure {
    /// Answer anyway; count the loss and report it.
    Continue,
    /// Answer 503 `AuditUnavailable`, and be "not alive" while writes fail.
    Refuse,
}

impl OnWriteFailure {
    /// The configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            OnWriteFailure::Continue => "CONTINUE",
            OnWriteFailure::Refuse => "REFUSE",
        }
    }
}

/// Why something handed over was not recorded (the first reason seen).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{parts} audit record part(s) not recorded: {reason}")]
pub struct Unrecorded {
    /// How many parts failed.
    pub parts: usize,
    /// The first reason.
    pub reason: String,
}

const PENDING: u8 = 0;
const WRITING: u8 = 1;
const CANCELLED: u8 = 2;

#[derive(Debug)]
struct Inner {
    /// Parts not settled yet, plus one held by the sender until it has
    /// handed every part over ([`Ticket::seal`]).
    pending: AtomicUsize,
    state: AtomicU8,
    /// Whether the parts must be synced to disk before they count.
    sync: bool,
    failed: Mutex<Option<Unrecorded>>,
    done: Mutex<Option<oneshot::Sender<()>>>,
}

/// The sender's side: given to every part of what it hands over. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Ticket(Arc<Inner>);

/// The waiting side of a ticket.
#[derive(Debug)]
pub struct Receipt {
    ticket: Ticket,
    done: oneshot::Receiver<()>,
}

impl Ticket {
    /// A ticket whose parts must be written (and synced, with `sync`), and
    /// its receipt.
    pub fn new(sync: bool) -> (Ticket, Receipt) {
        let (tx, rx) = oneshot::channel();
        let inner = Inner {
            pending: AtomicUsize::new(1),
            state: AtomicU8::new(PENDING),
            sync,
            failed: Mutex::new(None),
            done: Mutex::new(Some(tx)),
        };
        let ticket = Ticket(Arc::new(inner));
        (ticket.clone(), Receipt { ticket, done: rx })
    }

    /// Whether the parts must be synced before they count.
    pub fn sync(&self) -> bool {
        self.0.sync
    }

    /// Announces one more part (before handing it over).
    pub fn add_part(&self) {
        self.0.pending.fetch_add(1, Ordering::AcqRel);
    }

    /// Called by a writer before it writes a part: false when the sender
    /// cancelled the ticket (the part must be dropped, and settled with
    /// [`Ticket::done`]).
    pub fn start(&self) -> bool {
        match self.0.state.compare_exchange(PENDING, WRITING, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => true,
            Err(state) => state == WRITING,
        }
    }

    /// One part is recorded (or dropped after a cancel).
    pub fn done(&self) {
        self.release();
    }

    /// One part could not be recorded, for `reason`.
    pub fn failed(&self, reason: &str) {
        {
            let mut failed = self.0.failed.lock().unwrap_or_else(PoisonError::into_inner);
            match failed.as_mut() {
                Some(f) => f.parts += 1,
                None => *failed = Some(Unrecorded { parts: 1, reason: reason.to_owned() }),
            }
        }
        self.release();
    }

    /// The sender has handed every part over.
    pub fn seal(&self) {
        self.release();
    }

    fn release(&self) {
        if self.0.pending.fetch_sub(1, Ordering::AcqRel) == 1
            && let Some(tx) = self.0.done.lock().unwrap_or_else(PoisonError::into_inner).take()
        {
            let _ = tx.send(());
        }
    }

    fn outcome(&self) -> Result<(), Unrecorded> {
        match self.0.failed.lock().unwrap_or_else(PoisonError::into_inner).take() {
            Some(f) => Err(f),
            None => Ok(()),
        }
    }
}

impl Receipt {
    /// Waits until every part is settled.
    ///
    /// # Errors
    /// [`Unrecorded`] when some part was not recorded.
    pub async fn wait(self) -> Result<(), Unrecorded> {
        let _ = self.done.await;
        self.ticket.outcome()
    }

    /// Waits at most `timeout`. When time is up and no part has started
    /// writing, the ticket is cancelled: no part will ever be written, and
    /// this answers "not recorded". When some part is being written, the
    /// wait goes on until everything is settled, so that the answer is true.
    ///
    /// # Errors
    /// [`Unrecorded`] when some part was not recorded or the ticket was cancelled.
    pub async fn wait_or_cancel(mut self, timeout: std::time::Duration) -> Result<(), Unrecorded> {
        if tokio::time::timeout(timeout, &mut self.done).await.is_ok() {
            return self.ticket.outcome();
        }
        let inner = &self.ticket.0;
        if inner.state.compare_exchange(PENDING, CANCELLED, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            return Err(Unrecorded {
                parts: inner.pending.load(Ordering::Acquire),
                reason: format!("not written within {} s; cancelled, it will never be written", timeout.as_secs()),
            });
        }
        let _ = self.done.await;
        self.ticket.outcome()
    }

    /// Blocking form of [`Receipt::wait`], for threads that may wait.
    ///
    /// # Errors
    /// [`Unrecorded`] when some part was not recorded.
    pub fn wait_blocking(self) -> Result<(), Unrecorded> {
        let _ = self.done.blocking_recv();
        self.ticket.outcome()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_ticket_settles_when_every_part_and_the_seal_are_in() {
        let (t, r) = Ticket::new(false);
        t.add_part();
        t.add_part();
        t.done();
        t.failed("disk full");
        t.seal();
        let e = r.wait().await.unwrap_err();
        assert_eq!((e.parts, e.reason.as_str()), (1, "disk full"));
        let (t, r) = Ticket::new(true);
        assert!(t.sync());
        t.seal();
        assert!(r.wait().await.is_ok(), "no part: recorded at once");
    }

    #[tokio::test]
    async fn a_cancelled_ticket_is_never_written_and_a_started_one_is_waited_for() {
        let (t, r) = Ticket::new(false);
        t.add_part();
        t.seal();
        let waited = r.wait_or_cancel(std::time::Duration::from_millis(20)).await;
        assert!(waited.unwrap_err().reason.contains("cancelled"));
        assert!(!t.start(), "a writer that comes later drops the part");
        t.done();
        let (t, r) = Ticket::new(false);
        t.add_part();
        t.seal();
        assert!(t.start(), "the writer took it first");
        let writer = t.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(60)).await;
            writer.done();
        });
        let waited = r.wait_or_cancel(std::time::Duration::from_millis(10)).await;
        assert!(waited.is_ok(), "a part being written is waited for, not cancelled");
    }
}
