//! The process's logger: an [`AsyncLogger`] in front of a
//! `log4rs::Logger`. A caller (a request thread) only checks the level and
//! moves an owned record into a bounded queue; one writer thread runs log4rs
//! (hierarchy, filters, appenders, layouts) in batches, flushing the files at
//! most every 10 ms under load and as soon as the queue is empty otherwise.
//! A full queue makes the caller wait rather than drop (nothing is lost; the
//! wait is counted); [`LogWriter::try_emit`] hands the record back instead,
//! for callers on an async runtime's worker threads. [`LoggingGuard::shutdown`]
//! drains the queue before the process exits.
//!
//! What stays process-global, and why: [`install`] makes the logger the
//! `log` facade's (`log::set_boxed_logger`, once per process), because
//! that is the only way `log::info!` calls of this and every other crate
//! reach log4rs. Audit records do not go through the facade: the audit
//! runtime holds a [`LogWriter`] handle. Records keep the time and thread of
//! the call through [`RecordContext`] (see `record_context`).

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{Level, Log, Metadata, Record};

use crate::appender::AppenderRegistry;
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
}

enum Msg {
    Record(OwnedRecord),
    /// A record whose sender waits to learn whether every appender that
    /// took it wrote it to its file.
    Confirmed(OwnedRecord, mpsc::Sender<Result<(), String>>),
    Flush(mpsc::Sender<()>),
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
}

struct Shared {
    inner: log4rs::Logger,
    tx: SyncSender<Msg>,
    stats: Arc<WriterStats>,
    registry: AppenderRegistry,
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

    /// Queues a record unless the queue is full.
    fn try_send(&self, record: OwnedRecord) -> Result<(), OwnedRecord> {
        match self.tx.try_send(Msg::Record(record)) {
            Ok(()) => {
                self.stats.enqueued.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(TrySendError::Full(Msg::Record(r))) => Err(r),
            Err(TrySendError::Disconnected(Msg::Record(r))) => {
                // The writer has stopped (the process is exiting): write here.
                self.stats.enqueued.fetch_add(1, Ordering::Relaxed);
                write_record(&self.inner, &self.stats, r);
                self.inner.flush();
                Ok(())
            }
            Err(_) => Ok(()),
        }
    }

    fn send(&self, record: OwnedRecord) {
        self.stats.enqueued.fetch_add(1, Ordering::Relaxed);
        let msg = match self.tx.try_send(Msg::Record(record)) {
            Ok(()) => return,
            Err(TrySendError::Full(msg)) => {
                self.stats.full_waits.fetch_add(1, Ordering::Relaxed);
                match self.tx.send(msg) {
                    Ok(()) => return,
                    Err(mpsc::SendError(msg)) => msg,
                }
            }
            Err(TrySendError::Disconnected(msg)) => msg,
        };
        // The writer has stopped (the process is exiting): write here rather
        // than lose the record.
        if let Msg::Record(record) = msg {
            write_record(&self.inner, &self.stats, record);
            self.inner.flush();
        }
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
        });
    }

    fn flush(&self) {
        let (ack, done) = mpsc::channel();
        if self.shared.tx.send(Msg::Flush(ack)).is_ok() {
            let _ = done.recv();
        }
    }
}

/// Why a confirmed record was not written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfirmError {
    /// The logger is off for this target: nothing would record it.
    #[error("the logger {0} is OFF")]
    Disabled(String),
    /// An appender failed to write or flush it.
    #[error("an appender failed: {0}")]
    Appender(String),
    /// The writer did not answer in time, or has stopped.
    #[error("the log writer is not available")]
    Unavailable,
}

/// How long a confirmed write may take before it counts as failed.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

impl LogWriter {
    fn record(level: Level, target: &'static str, message: Arc<str>) -> OwnedRecord {
        OwnedRecord { level, target: Cow::Borrowed(target), message, context: RecordContext::now() }
    }

    /// True when a record of `level` on `target` would be written (lets
    /// callers skip building a record nobody wants, such as `allcalls` when
    /// it is OFF).
    pub fn enabled(&self, target: &str, level: Level) -> bool {
        self.shared.enabled(level, target)
    }

    /// Writes an audit record on the log4rs target `target` (a `::` path
    /// such as `dku::apinode::audit::queries`) without formatting it again:
    /// the message moves into the queue. Waits while the queue is full:
    /// never call it on an async runtime's worker thread.
    pub fn emit(&self, target: &'static str, level: Level, message: Arc<str>) {
        if self.shared.enabled(level, target) {
            self.shared.send(Self::record(level, target, message));
        }
    }

    /// As [`LogWriter::emit`], but never waits.
    ///
    /// # Errors
    /// The message, when the queue is full.
    pub fn try_emit(&self, target: &'static str, level: Level, message: Arc<str>) -> Result<(), Arc<str>> {
        if !self.shared.enabled(level, target) {
            return Ok(());
        }
        self.shared.try_send(Self::record(level, target, message)).map_err(|r| r.message)
    }

    /// Writes a record and waits until every appender that took it has
    /// written it to its file. For changes that may only happen once
    /// recorded (admin API). Blocks the calling thread (use `spawn_blocking`
    /// from async code).
    ///
    /// # Errors
    /// [`ConfirmError`] when the record is not known to be written.
    pub fn emit_confirmed(&self, target: &'static str, level: Level, message: Arc<str>) -> Result<(), ConfirmError> {
        if !self.shared.enabled(level, target) {
            return Err(ConfirmError::Disabled(target.replace("::", ".")));
        }
        let (ack, done) = mpsc::channel();
        self.shared.stats.enqueued.fetch_add(1, Ordering::Relaxed);
        self.shared
            .tx
            .send(Msg::Confirmed(Self::record(level, target, message), ack))
            .map_err(|_| ConfirmError::Unavailable)?;
        match done.recv_timeout(CONFIRM_TIMEOUT) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ConfirmError::Appender(e)),
            Err(_) => Err(ConfirmError::Unavailable),
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
    /// Drains the queue, flushes every appender, and stops the writer. Later
    /// records are written on the caller's thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(t) = self.thread.take() {
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
    let handler_registry = registry.clone();
    let inner = log4rs::Logger::new_with_err_handler(
        config,
        Box::new(move |e: &anyhow::Error| {
            handler_stats.appender_errors.fetch_add(1, Ordering::Relaxed);
            let message = format!("{e:#}");
            handler_registry.note_failure(&message);
            let mut last = last_error.lock().unwrap_or_else(PoisonError::into_inner);
            if last.as_deref() != Some(message.as_str()) {
                eprintln!("apinode logging: an appender failed: {message}");
                *last = Some(message);
            }
        }),
    );
    let (tx, rx) = mpsc::sync_channel(QUEUE_CAPACITY);
    let shared = Arc::new(Shared { inner, tx: tx.clone(), stats, registry: registry.clone() });
    let for_thread = shared.clone();
    let thread = std::thread::Builder::new().name("log-writer".into()).spawn(move || run(&for_thread, &rx))?;
    Ok((AsyncLogger { shared }, LoggingGuard { tx, thread: Some(thread) }))
}

/// While records flow, the writer polls the queue at this pace instead of
/// sleeping in `recv`: a sender that finds no sleeping receiver does no
/// futex wake-up, which profiling showed to be most of the audit's cost
/// (one syscall and one context switch per record).
const POLL_PAUSE: Duration = Duration::from_millis(1);
/// After this long without records, the writer sleeps until the next one.
const IDLE_AFTER: Duration = Duration::from_millis(50);
/// Under load, files are flushed at most this often (few large writes);
/// whenever the queue is found empty, they are flushed at once.
const FLUSH_INTERVAL: Duration = Duration::from_millis(10);

fn run(shared: &Shared, rx: &Receiver<Msg>) {
    let (inner, stats) = (&shared.inner, &*shared.stats);
    let mut last_flush = Instant::now();
    let mut last_record = Instant::now();
    let mut dirty = false;
    loop {
        let mut got = 0usize;
        let mut stop = false;
        while !stop {
            match rx.try_recv() {
                Ok(msg) => {
                    stop = handle(shared, msg);
                    got += 1;
                }
                Err(_) => break,
            }
        }
        if stop {
            // Records sent after Stop by threads still running are written too.
            while let Ok(msg) = rx.try_recv() {
                if let Msg::Record(record) | Msg::Confirmed(record, _) = msg {
                    write_record(inner, stats, record);
                }
            }
            inner.flush();
            return;
        }
        if got > 0 {
            last_record = Instant::now();
            dirty = true;
        }
        if dirty && (got == 0 || last_flush.elapsed() >= FLUSH_INTERVAL) {
            inner.flush();
            (last_flush, dirty) = (Instant::now(), false);
        }
        if got == 0 && last_record.elapsed() >= IDLE_AFTER {
            match rx.recv() {
                Ok(msg) => {
                    if handle(shared, msg) {
                        inner.flush();
                        return;
                    }
                    last_record = Instant::now();
                    dirty = true;
                }
                Err(_) => break,
            }
        } else {
            std::thread::sleep(POLL_PAUSE);
        }
    }
    inner.flush();
}

/// Handles one message; true for `Stop`.
fn handle(shared: &Shared, msg: Msg) -> bool {
    let (inner, stats) = (&shared.inner, &*shared.stats);
    match msg {
        Msg::Record(record) => write_record(inner, stats, record),
        Msg::Confirmed(record, ack) => {
            // Appenders flush a confirmed record at once and report their
            // failures to the registry (through the error handler).
            shared.registry.set_confirming(true);
            write_record(inner, stats, record);
            shared.registry.set_confirming(false);
            let _ = ack.send(shared.registry.take_failure().map_or(Ok(()), Err));
        }
        Msg::Flush(ack) => {
            inner.flush();
            let _ = ack.send(());
        }
        Msg::Stop => return true,
    }
    false
}

fn write_record(inner: &log4rs::Logger, stats: &WriterStats, record: OwnedRecord) {
    crate::record_context::with_context(record.context, || {
        inner.log(
            &Record::builder()
                .level(record.level)
                .target(&record.target)
                .args(format_args!("{}", record.message))
                .build(),
        );
    });
    stats.written.fetch_add(1, Ordering::Relaxed);
}
