//! The process's logger: an [`AsyncLogger`] in front of a
//! `log4rs::Logger`. A caller (a request thread) only checks the level and
//! moves an owned record into a bounded queue; one writer thread runs log4rs
//! (hierarchy, filters, appenders, layouts) in batches. A full queue makes
//! the caller wait rather than drop (nothing is lost; the wait is counted);
//! [`LogWriter::try_emit`] hands the record back instead, for callers on an
//! async runtime's worker threads. [`LoggingGuard::shutdown`] drains the
//! queue before the process exits.
//!
//! **Commits.** A record may carry a [`Ticket`] (docs/integrity.md
//! "Durability"): its sender waits until the record is written. The writer
//! gives every record a sequence number, writes a batch, then commits it:
//! every file writes its buffer with one `write` (and, when some ticket of
//! the batch asks for it, every written file is synced: one `fdatasync`
//! covers the whole batch, a group commit), then each ticket is settled:
//! done, or failed when a file reported the record lost. Without tickets
//! (ASYNC) files are written at most every 10 ms under load and as soon as
//! the queue is empty. A lost record is counted per logger whatever its
//! ticket. While a file fails, the writer probes it every 500 ms, so the
//! node recovers by itself when space returns.
//!
//! What stays process-global, and why: [`install`] makes the logger the
//! `log` facade's (`log::set_boxed_logger`, once per process), because
//! that is the only way `log::info!` calls of this and every other crate
//! reach log4rs. Audit records do not go through the facade: the audit
//! runtime holds a [`LogWriter`] handle. Records keep the time and thread of
//! the call through [`RecordContext`] (see `record_context`).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use log::{Level, Log, Metadata, Record};

use crate::appender::AppenderRegistry;
use crate::commit::Ticket;
pub use crate::record_context::RecordContext;

/// Records waiting for the writer thread, at most.
pub const QUEUE_CAPACITY: usize = 65_536;

/// A record that left its caller.
#[derive(Debug)]
struct OwnedRecord {
    level: Level,
    target: Cow<'static, str>,
    message: Arc<str>,
    context: RecordContext,
    ticket: Unsettled,
}

/// A record's ticket part until the writer takes it: a record dropped
/// unwritten (left in the queue when the writer thread ended, in the short
/// window between its last look at the queue and its exit) fails its part
/// instead of leaving its sender waiting forever.
#[derive(Debug, Default)]
struct Unsettled(Option<Ticket>);

impl Unsettled {
    fn take(&mut self) -> Option<Ticket> {
        self.0.take()
    }
}

impl Drop for Unsettled {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.failed("the log writer stopped before writing it");
        }
    }
}

enum Msg {
    Record(OwnedRecord),
    Flush(mpsc::Sender<()>),
    /// Commit, then sign and announce a checkpoint of every file's tree.
    Checkpoint(mpsc::Sender<()>),
    Stop,
}

/// Counters of the writer.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Records handed to the writer.
    pub enqueued: AtomicU64,
    /// Records the writer passed to log4rs.
    pub written: AtomicU64,
    /// Times a caller waited because the queue was full.
    pub full_waits: AtomicU64,
    /// Appender errors reported by log4rs (a file that cannot be written).
    pub appender_errors: AtomicU64,
    /// Commits (writes of a batch whose senders wait), and syncs.
    pub commits: AtomicU64,
    /// Syncs (`fdatasync` of every written file) made for FSYNC records.
    pub syncs: AtomicU64,
    /// Records lost by failed writes, per logger (dotted name).
    pub lost: Mutex<BTreeMap<String, u64>>,
    /// Records committed to every file that took them, per logger (dotted
    /// name): with `lost`, what `/metrics` reports per stream.
    pub written_by: Mutex<BTreeMap<String, u64>>,
}

impl WriterStats {
    /// Records lost so far, all loggers.
    pub fn lost_total(&self) -> u64 {
        self.lost.lock().unwrap_or_else(PoisonError::into_inner).values().sum()
    }
}

struct Shared {
    inner: log4rs::Logger,
    tx: SyncSender<Msg>,
    stats: Arc<WriterStats>,
    registry: AppenderRegistry,
    /// The writer thread, and whether it is parked between two polls: a
    /// sender that waits for its record unparks it.
    thread: OnceLock<Thread>,
    parked: AtomicBool,
    /// The next record's sequence number (0 means "not written by the writer").
    next_seq: AtomicU64,
}

/// The logger: level checks here, writing on the writer thread.
pub struct AsyncLogger {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AsyncLogger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncLogger").field("stats", &self.shared.stats).finish()
    }
}

impl AsyncLogger {
    /// A handle for writing audit records through this logger.
    pub fn writer(&self) -> LogWriter {
        LogWriter { shared: self.shared.clone() }
    }
}

/// A handle on a running writer: what the audit runtime writes its LOG4J
/// records with (cheap to clone).
#[derive(Clone)]
pub struct LogWriter {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWriter").field("stats", &self.shared.stats).finish()
    }
}

impl Shared {
    fn enabled(&self, level: Level, target: &str) -> bool {
        self.inner.enabled(&Metadata::builder().level(level).target(target).build())
    }

    /// Wakes the writer if it is parked (a sender waits for its record).
    fn wake(&self) {
        if self.parked.load(Ordering::SeqCst)
            && let Some(t) = self.thread.get()
        {
            t.unpark();
        }
    }

    /// Queues a record unless the queue is full.
    fn try_send(&self, record: OwnedRecord) -> Result<(), OwnedRecord> {
        let waits = record.ticket.0.is_some();
        match self.tx.try_send(Msg::Record(record)) {
            Ok(()) => {
                self.stats.enqueued.fetch_add(1, Ordering::Relaxed);
                if waits {
                    self.wake();
                }
                Ok(())
            }
            Err(TrySendError::Full(Msg::Record(r))) => Err(r),
            Err(TrySendError::Disconnected(Msg::Record(r))) => {
                // The writer has stopped (the process is exiting): write here.
                self.stats.enqueued.fetch_add(1, Ordering::Relaxed);
                self.write_alone(r);
                Ok(())
            }
            Err(_) => Ok(()),
        }
    }

    fn send(&self, record: OwnedRecord) {
        let record = match self.try_send(record) {
            Ok(()) => return,
            Err(r) => r,
        };
        self.stats.full_waits.fetch_add(1, Ordering::Relaxed);
        self.stats.enqueued.fetch_add(1, Ordering::Relaxed);
        let waits = record.ticket.0.is_some();
        match self.tx.send(Msg::Record(record)) {
            Ok(()) if waits => self.wake(),
            Ok(()) => {}
            Err(mpsc::SendError(Msg::Record(r))) => self.write_alone(r),
            Err(_) => {}
        }
    }

    /// Writes and commits one record on the caller's thread (the writer has
    /// stopped: the process is exiting).
    fn write_alone(&self, record: OwnedRecord) {
        let mut batch = Batch::default();
        batch.write(self, record);
        batch.commit(self);
    }
}

impl Log for AsyncLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.shared.inner.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.shared.enabled(record.level(), record.target()) {
            return;
        }
        self.shared.send(OwnedRecord {
            level: record.level(),
            target: Cow::Owned(record.target().to_owned()),
            message: Arc::from(record.args().to_string()),
            context: RecordContext::now(),
            ticket: Unsettled::default(),
        });
    }

    fn flush(&self) {
        let (ack, done) = mpsc::channel();
        if self.shared.tx.send(Msg::Flush(ack)).is_ok() {
            self.shared.wake();
            let _ = done.recv();
        }
    }
}

impl LogWriter {
    fn record(level: Level, target: &'static str, message: Arc<str>, ticket: Option<Ticket>) -> OwnedRecord {
        OwnedRecord {
            level,
            target: Cow::Borrowed(target),
            message,
            context: RecordContext::now(),
            ticket: Unsettled(ticket),
        }
    }

    /// True when a record of `level` on `target` would be written (lets
    /// callers skip building a record nobody wants, such as `allcalls` when
    /// it is OFF).
    pub fn enabled(&self, target: &str, level: Level) -> bool {
        self.shared.enabled(level, target)
    }

    /// Writes an audit record on the log4rs target `target` (a `::` path
    /// such as `dku::apinode::audit::queries`) without formatting it again:
    /// the message moves into the queue. With a ticket, one part of it is
    /// settled once the record is written (and synced if the ticket asks).
    /// Waits while the queue is full: never call it on an async runtime's
    /// worker thread. Returns whether a logger takes the record.
    pub fn emit(&self, target: &'static str, level: Level, message: Arc<str>, ticket: Option<&Ticket>) -> bool {
        if !self.shared.enabled(level, target) {
            return false;
        }
        if let Some(t) = ticket {
            t.add_part();
        }
        self.shared.send(Self::record(level, target, message, ticket.cloned()));
        true
    }

    /// As [`LogWriter::emit`], but never waits.
    ///
    /// # Errors
    /// The message, when the queue is full (its ticket part is not added).
    pub fn try_emit(
        &self,
        target: &'static str,
        level: Level,
        message: Arc<str>,
        ticket: Option<&Ticket>,
    ) -> Result<bool, Arc<str>> {
        if !self.shared.enabled(level, target) {
            return Ok(false);
        }
        if let Some(t) = ticket {
            t.add_part();
        }
        match self.shared.try_send(Self::record(level, target, message, ticket.cloned())) {
            Ok(()) => Ok(true),
            Err(mut r) => {
                if let Some(t) = r.ticket.take() {
                    // Not handed over after all: take the part back.
                    t.done();
                }
                Err(r.message.clone())
            }
        }
    }

    /// The writer's counters.
    pub fn stats(&self) -> Arc<WriterStats> {
        self.shared.stats.clone()
    }

    /// The registry its appenders share.
    pub fn registry(&self) -> &AppenderRegistry {
        &self.shared.registry
    }
}

/// Stops the writer thread after it has written everything queued.
#[derive(Debug)]
pub struct LoggingGuard {
    tx: SyncSender<Msg>,
    thread: Option<JoinHandle<()>>,
}

impl LoggingGuard {
    /// Has the writer commit what it holds and sign a checkpoint of every
    /// file's tree that grew, announced to the network targets; waits at
    /// most `timeout`.
    pub fn checkpoint(&self, timeout: Duration) {
        let (tx, rx) = mpsc::channel();
        if self.tx.send(Msg::Checkpoint(tx)).is_ok() {
            if let Some(t) = &self.thread {
                t.thread().unpark();
            }
            let _ = rx.recv_timeout(timeout);
        }
    }

    /// Drains the queue, writes and syncs every file, and stops the writer.
    /// Later records are written on the caller's thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

impl Drop for LoggingGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Why the logger could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// A global logger exists already.
    #[error("a logger is already installed")]
    AlreadyInstalled,
    /// The writer thread could not start.
    #[error("cannot start the log writer thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Installs `config` (whose appenders share `registry`) as the process's
/// logger, behind a writer thread, and returns the handle audit records are
/// written with.
///
/// # Errors
/// [`InstallError`] when a logger exists or the thread cannot start.
pub fn install(config: log4rs::Config, registry: &AppenderRegistry) -> Result<(LogWriter, LoggingGuard), InstallError> {
    let (logger, guard) = start(config, registry)?;
    let max = logger.shared.inner.max_log_level();
    let writer = logger.writer();
    log::set_boxed_logger(Box::new(logger)).map_err(|_| InstallError::AlreadyInstalled)?;
    log::set_max_level(max);
    Ok((writer, guard))
}

/// Starts a writer for `config` without installing it (tests, embedding).
///
/// # Errors
/// [`InstallError::Thread`] when the thread cannot start.
pub fn start(config: log4rs::Config, registry: &AppenderRegistry) -> Result<(AsyncLogger, LoggingGuard), InstallError> {
    let stats = Arc::new(WriterStats::default());
    let last_error: Mutex<Option<String>> = Mutex::new(None);
    let handler_stats = stats.clone();
    let inner = log4rs::Logger::new_with_err_handler(
        config,
        Box::new(move |e: &anyhow::Error| {
            // The files report their lost records to the registry; this
            // only counts and tells stderr once per distinct error.
            handler_stats.appender_errors.fetch_add(1, Ordering::Relaxed);
            let message = format!("{e:#}");
            let mut last = last_error.lock().unwrap_or_else(PoisonError::into_inner);
            if last.as_deref() != Some(message.as_str()) {
                eprintln!("apinode logging: an appender failed: {message}");
                *last = Some(message);
            }
        }),
    );
    let (tx, rx) = mpsc::sync_channel(QUEUE_CAPACITY);
    let shared = Arc::new(Shared {
        inner,
        tx: tx.clone(),
        stats,
        registry: registry.clone(),
        thread: OnceLock::new(),
        parked: AtomicBool::new(false),
        next_seq: AtomicU64::new(1),
    });
    let for_thread = shared.clone();
    let thread = std::thread::Builder::new().name("log-writer".into()).spawn(move || run(&for_thread, &rx))?;
    let _ = shared.thread.set(thread.thread().clone());
    Ok((AsyncLogger { shared }, LoggingGuard { tx, thread: Some(thread) }))
}

/// While records flow, the writer polls the queue at this pace instead of
/// sleeping in `recv`: a sender that finds no sleeping receiver does no
/// futex wake-up, which profiling showed to be most of the audit's cost
/// (one syscall and one context switch per record). A sender that waits for
/// its record (a ticket) unparks the writer instead of waiting for the poll.
const POLL_PAUSE: Duration = Duration::from_millis(1);
/// After this long without records, the writer sleeps until the next one.
const IDLE_AFTER: Duration = Duration::from_millis(50);
/// Under load, records without a ticket are written at most this often (few
/// large writes); whenever the queue is found empty, at once.
const FLUSH_INTERVAL: Duration = Duration::from_millis(10);
/// How often the writer looks for trees whose checkpoint is due.
const CHECKPOINT_LOOK: Duration = Duration::from_secs(1);
/// While a file fails, it is probed this often.
const PROBE_EVERY: Duration = Duration::from_millis(500);

/// Records written to the appenders' buffers and not committed yet.
#[derive(Default)]
struct Batch {
    /// Each record's sequence number, logger, and ticket.
    records: Vec<(u64, Cow<'static, str>, Option<Ticket>)>,
    /// Some sender waits: commit at the end of this round.
    waiting: bool,
    /// Some ticket asks for a sync.
    sync: bool,
}

impl Batch {
    fn write(&mut self, shared: &Shared, mut record: OwnedRecord) {
        let ticket = record.ticket.take();
        if let Some(t) = &ticket
            && !t.start()
        {
            // Its sender was told "not recorded" and gave up: never written.
            t.done();
            return;
        }
        let seq = shared.next_seq.fetch_add(1, Ordering::Relaxed);
        let OwnedRecord { level, target, message, mut context, .. } = record;
        context.seq = seq;
        context.ticket = ticket.clone();
        crate::record_context::with_context(context, || {
            shared.inner.log(&Record::builder().level(level).target(&target).args(format_args!("{message}")).build());
        });
        shared.stats.written.fetch_add(1, Ordering::Relaxed);
        if let Some(t) = &ticket {
            self.waiting = true;
            self.sync |= t.sync();
        }
        self.records.push((seq, target, ticket));
    }

    /// Writes every file's buffer (and syncs when asked), then settles each
    /// record: its ticket done or failed, its loss counted.
    fn commit(&mut self, shared: &Shared) {
        shared.inner.flush();
        let synced = if self.sync {
            shared.stats.syncs.fetch_add(1, Ordering::Relaxed);
            shared.registry.sync_all()
        } else {
            Ok(())
        };
        let seqs: Vec<u64> = self.records.iter().map(|(s, _, _)| *s).collect();
        let lost: HashMap<u64, String> = shared.registry.take_lost_of(&seqs).into_iter().collect();
        if self.waiting {
            shared.stats.commits.fetch_add(1, Ordering::Relaxed);
        }
        // Per logger: (logger, written, lost); a batch has few loggers.
        let mut tally: Vec<(Cow<'static, str>, u64, u64)> = Vec::new();
        for (seq, target, ticket) in self.records.drain(..) {
            let reason = lost.get(&seq);
            let (w, l) = if reason.is_some() { (0, 1) } else { (1, 0) };
            match tally.iter_mut().find(|(t, _, _)| *t == target) {
                Some(entry) => {
                    entry.1 += w;
                    entry.2 += l;
                }
                None => tally.push((target, w, l)),
            }
            let Some(t) = ticket else { continue };
            match (reason, &synced) {
                (Some(r), _) => t.failed(r),
                (None, Err(e)) if t.sync() => t.failed(&format!("written but not synced: {e}")),
                _ => t.done(),
            }
        }
        if !tally.is_empty() {
            let mut written = shared.stats.written_by.lock().unwrap_or_else(PoisonError::into_inner);
            let mut all = shared.stats.lost.lock().unwrap_or_else(PoisonError::into_inner);
            for (logger, w, l) in tally {
                let logger = logger.replace("::", ".");
                if w > 0 {
                    *written.entry(logger.clone()).or_default() += w;
                }
                if l > 0 {
                    *all.entry(logger).or_default() += l;
                }
            }
        }
        self.waiting = false;
        self.sync = false;
    }
}

fn run(shared: &Shared, rx: &Receiver<Msg>) {
    let mut batch = Batch::default();
    let mut last_commit = Instant::now();
    let mut last_record = Instant::now();
    let mut last_probe = Instant::now();
    let mut last_checkpoint_look = Instant::now();
    // With trees to checkpoint, an idle writer still wakes up to sign them.
    let idle_wait = shared.registry.integrity().map(|_| CHECKPOINT_LOOK);
    loop {
        let mut got = 0usize;
        let mut stop = false;
        while !stop && got < 4096 {
            match rx.try_recv() {
                Ok(Msg::Record(r)) => {
                    batch.write(shared, r);
                    got += 1;
                }
                Ok(Msg::Flush(ack)) => {
                    batch.commit(shared);
                    let _ = ack.send(());
                }
                Ok(Msg::Checkpoint(ack)) => {
                    batch.commit(shared);
                    shared.registry.checkpoint_files(true, true);
                    let _ = ack.send(());
                }
                Ok(Msg::Stop) => stop = true,
                Err(_) => break,
            }
        }
        if stop {
            // Records sent after Stop by threads still running are written too.
            while let Ok(msg) = rx.try_recv() {
                if let Msg::Record(r) = msg {
                    batch.write(shared, r);
                }
            }
            batch.sync = true;
            batch.commit(shared);
            shared.registry.checkpoint_files(true, false);
            return;
        }
        if got > 0 {
            last_record = Instant::now();
        }
        let pending = !batch.records.is_empty();
        if pending && (batch.waiting || got == 0 || last_commit.elapsed() >= FLUSH_INTERVAL) {
            batch.commit(shared);
            last_commit = Instant::now();
        }
        if last_probe.elapsed() >= PROBE_EVERY {
            shared.registry.probe_failing();
            last_probe = Instant::now();
        }
        if last_checkpoint_look.elapsed() >= CHECKPOINT_LOOK {
            shared.registry.checkpoint_files(false, true);
            last_checkpoint_look = Instant::now();
        }
        if got > 0 {
            continue;
        }
        if last_record.elapsed() >= IDLE_AFTER && shared.registry.failing().is_empty() {
            let next = match idle_wait {
                Some(wait) => match rx.recv_timeout(wait) {
                    Ok(m) => Ok(m),
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(std::sync::mpsc::RecvError),
                },
                None => rx.recv(),
            };
            match next {
                Ok(Msg::Record(r)) => {
                    batch.write(shared, r);
                    last_record = Instant::now();
                }
                Ok(Msg::Flush(ack)) => {
                    batch.commit(shared);
                    let _ = ack.send(());
                }
                Ok(Msg::Checkpoint(ack)) => {
                    batch.commit(shared);
                    shared.registry.checkpoint_files(true, true);
                    let _ = ack.send(());
                }
                Ok(Msg::Stop) | Err(_) => {
                    batch.sync = true;
                    batch.commit(shared);
                    shared.registry.checkpoint_files(true, false);
                    return;
                }
            }
        } else {
            shared.parked.store(true, Ordering::SeqCst);
            std::thread::park_timeout(POLL_PAUSE);
            shared.parked.store(false, Ordering::SeqCst);
        }
    }
}
