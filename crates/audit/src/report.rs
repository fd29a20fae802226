//! What the parts of the audit trail report about themselves, and the
//! channel they report on: a destination down or back, a record a
//! destination rejected, a file or spool that cannot be written (or can
//! again), a rolled file a retention policy deletes, a checkpoint signed. Deliveries, file
//! appenders and the retention thread send [`Event`]s; the runtime's
//! reporter turns them into audit messages of the node. Sending never waits.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};

/// Something a target's worker reports about its destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The destination stopped answering (the error).
    Down(String),
    /// It answers again.
    Up,
    /// A file (or spool) could not be written: records were lost.
    WriteFailed {
        /// The error.
        error: String,
        /// Records lost since it started failing.
        lost: u64,
        /// Whether it was healthy until now.
        first: bool,
    },
    /// It takes writes again.
    WriteRecovered {
        /// Records lost while it failed.
        lost: u64,
    },
    /// A record was rejected for good and kept in a dead-letter file.
    Rejected {
        /// Why the destination refused it.
        reason: String,
        /// Its event id, when it has one.
        event_id: Option<String>,
        /// The dead-letter file it went to.
        file: PathBuf,
    },
    /// A retention policy is about to delete a rolled file: announce it,
    /// then answer on the [`Ack`] so that the file may go.
    FileDeleted(Box<FileDeleted>, Ack),
    /// A file appender's tree signed a checkpoint: send it to the network
    /// targets (topic `audit-integrity`).
    Checkpoint(Box<CheckpointReport>),
    /// Answered once everything reported before it was handed on (a stop
    /// waits for it before the network targets drain).
    Barrier(Ack),
}

/// A signed checkpoint of one appender's tree (docs/integrity.md "Tamper
/// evidence").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointReport {
    /// `<nodeId>/<APPENDER>`.
    pub origin: String,
    /// Its tree size.
    pub size: u64,
    /// The signed note.
    pub note: String,
    /// The size of the previous checkpoint, when there is one and the
    /// proof could be made.
    pub previous_size: Option<u64>,
    /// The RFC 6962 consistency proof from it (base64 hashes).
    pub consistency_proof: Vec<String>,
}

/// What a rolled file held when a retention policy deleted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDeleted {
    /// The appender's live file.
    pub appender: String,
    /// The deleted file.
    pub file: String,
    /// Its records (lines).
    pub records: u64,
    /// The time of its first record, when records carry one.
    pub first_time: Option<String>,
    /// The time of its last record, when records carry one.
    pub last_time: Option<String>,
    /// SHA-256 of the file's bytes as they were on disk (hex).
    pub sha256: String,
    /// The leaf hash of its first line (base64): how the verifier knows
    /// which part of the tree the file held.
    pub first_leaf: Option<String>,
}

/// Answers the reporter of an event once it is handled (cheap to clone;
/// equal to any other: it carries no data).
#[derive(Debug, Clone)]
pub struct Ack(mpsc::Sender<()>);

impl Ack {
    /// An answer on `tx`.
    pub fn new(tx: mpsc::Sender<()>) -> Ack {
        Ack(tx)
    }

    /// Says the event was handled.
    pub fn done(&self) {
        let _ = self.0.send(());
    }
}

impl PartialEq for Ack {
    fn eq(&self, _: &Ack) -> bool {
        true
    }
}

impl Eq for Ack {}

/// Where targets report [`Event`]s, with their name: the audit runtime
/// turns them into `generic` / `generic-failure` messages. Sending never
/// waits.
#[derive(Debug, Clone)]
pub struct Events {
    tx: mpsc::Sender<(String, Event)>,
    /// Whether something reads the channel (an event that must be answered
    /// is only waited for then).
    read: Arc<AtomicBool>,
}

impl Events {
    /// A channel of events and its receiving end (read from now on).
    pub fn channel() -> (Events, mpsc::Receiver<(String, Event)>) {
        let (tx, rx) = mpsc::channel();
        (Events { tx, read: Arc::new(AtomicBool::new(true)) }, rx)
    }

    /// A channel whose receiving end is not read yet ([`Events::mark_read`]).
    pub fn unread_channel() -> (Events, mpsc::Receiver<(String, Event)>) {
        let (tx, rx) = mpsc::channel();
        (Events { tx, read: Arc::new(AtomicBool::new(false)) }, rx)
    }

    /// Says that something reads the channel now.
    pub fn mark_read(&self) {
        self.read.store(true, Ordering::SeqCst);
    }

    /// Whether something reads the channel.
    pub fn is_read(&self) -> bool {
        self.read.load(Ordering::SeqCst)
    }

    /// Waits (at most `timeout`) until the reader has handed on everything
    /// reported before now; returns at once when nothing reads.
    pub fn barrier(&self, timeout: std::time::Duration) {
        if !self.is_read() {
            return;
        }
        let (tx, rx) = mpsc::channel();
        self.report("barrier", Event::Barrier(Ack::new(tx)));
        let _ = rx.recv_timeout(timeout);
    }

    /// Reports `event` of `target` (nothing happens once the receiver is gone).
    pub fn report(&self, target: &str, event: Event) {
        let _ = self.tx.send((target.to_owned(), event));
    }
}
