//! The process's logger: an [`AsyncLogger`] installed as the `log` facade's
//! global logger, in front of a `log4rs::Logger`. A caller (a request thread)
//! only checks the level and moves an owned record into a bounded queue; one
//! writer thread runs log4rs (hierarchy, filters, appenders, layouts) in
//! batches, flushing the files at most every 10 ms under load and as soon as
//! the queue is empty otherwise. A full queue makes the
//! caller wait rather than drop (nothing is lost; the wait is counted), and
//! [`LoggingGuard::shutdown`] drains the queue before the process exits.
//! Records keep the time and thread of the call through [`RecordContext`].

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Local};
use log::{Level, Log, Metadata, Record};

/// Records waiting for the writer thread, at most.
pub const QUEUE_CAPACITY: usize = 65_536;

/// When and where a record was logged.
#[derive(Debug, Clone)]
pub struct RecordContext {
    /// The logging thread's name.
    pub thread: Arc<str>,
    /// The time of the call.
    pub time: SystemTime,
}

thread_local! {
    static THREAD_NAME: Arc<str> = Arc::from(std::thread::current().name().unwrap_or("unnamed"));
    static CURRENT: RefCell<Option<RecordContext>> = const { RefCell::new(None) };
    /// Set while the writer writes a confirmed record: appenders then flush
    /// at once and report failures through log4rs's error handler.
    static CONFIRMING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// The first appender failure seen while confirming.
    static CONFIRM_FAILURE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// True while the writer is writing a record whose sender waits for it to
/// be on disk: appenders must flush before returning.
pub fn confirming() -> bool {
    CONFIRMING.with(std::cell::Cell::get)
}

fn process_start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

impl RecordContext {
    /// The context of a call made now, on this thread.
    pub fn now() -> Self {
        Self { thread: THREAD_NAME.with(Arc::clone), time: SystemTime::now() }
    }

    /// A fixed context (tests): `time` in RFC 3339.
    ///
    /// # Panics
    /// When `time` is not RFC 3339.
    pub fn fixed(thread: &str, time: &str) -> Self {
        let time = DateTime::parse_from_rfc3339(time).expect("an RFC 3339 time");
        Self { thread: Arc::from(thread), time: time.into() }
    }

    /// The time in the local time zone, as log4j prints it.
    pub fn local_time(&self) -> DateTime<Local> {
        self.time.into()
    }

    /// Milliseconds since the process started (log4j's `%r`).
    pub fn millis_since_start(&self) -> u128 {
        process_start().elapsed().as_millis()
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
}

/// The global logger: level checks here, writing on the writer thread.
pub struct AsyncLogger {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AsyncLogger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncLogger").field("stats", &self.shared.stats).finish()
    }
}

static GLOBAL: OnceLock<Arc<Shared>> = OnceLock::new();

impl Shared {
    fn enabled(&self, level: Level, target: &str) -> bool {
        self.inner.enabled(&Metadata::builder().level(level).target(target).build())
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

/// Writes an audit record on the log4rs target `target` (a `::` path such as
/// `dku::apinode::audit::queries`) without formatting it again: the message
/// moves into the queue. Before [`install`] (tests), it goes through the
/// `log` facade.
pub fn emit(target: &'static str, level: Level, message: impl Into<Arc<str>>) {
    match GLOBAL.get() {
        Some(shared) => {
            if shared.enabled(level, target) {
                shared.send(OwnedRecord {
                    level,
                    target: Cow::Borrowed(target),
                    message: message.into(),
                    context: RecordContext::now(),
                });
            }
        }
        None => log::log!(target: target, level, "{}", message.into()),
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

/// Writes a record and waits until every appender that took it has written
/// it to its file. For changes that may only happen once recorded (admin
/// API). Blocks the calling thread (use `spawn_blocking` from async code).
///
/// # Errors
/// [`ConfirmError`] when the record is not known to be written.
pub fn emit_confirmed(target: &'static str, level: Level, message: String) -> Result<(), ConfirmError> {
    let Some(shared) = GLOBAL.get() else {
        // No writer (tests embedding the node): the log facade is all there is.
        log::log!(target: target, level, "{message}");
        return Ok(());
    };
    if !shared.enabled(level, target) {
        return Err(ConfirmError::Disabled(target.replace("::", ".")));
    }
    let (ack, done) = mpsc::channel();
    let record = OwnedRecord {
        level,
        target: Cow::Borrowed(target),
        message: Arc::from(message),
        context: RecordContext::now(),
    };
    shared.stats.enqueued.fetch_add(1, Ordering::Relaxed);
    shared.tx.send(Msg::Confirmed(record, ack)).map_err(|_| ConfirmError::Unavailable)?;
    match done.recv_timeout(CONFIRM_TIMEOUT) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(ConfirmError::Appender(e)),
        Err(_) => Err(ConfirmError::Unavailable),
    }
}

/// True when a record of `level` on `target` would be written (lets callers
/// skip building a record nobody wants, such as `allcalls` when it is OFF).
pub fn enabled(target: &str, level: Level) -> bool {
    match GLOBAL.get() {
        Some(shared) => shared.enabled(level, target),
        None => log::log_enabled!(target: target, level),
    }
}

/// Counters of the installed writer, if any.
pub fn stats() -> Option<Arc<WriterStats>> {
    GLOBAL.get().map(|s| s.stats.clone())
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

/// Installs `config` as the process's logger, behind a writer thread.
///
/// # Errors
/// [`InstallError`] when a logger exists or the thread cannot start.
pub fn install(config: log4rs::Config) -> Result<LoggingGuard, InstallError> {
    let (logger, guard) = start(config)?;
    let max = logger.shared.inner.max_log_level();
    GLOBAL.set(logger.shared.clone()).map_err(|_| InstallError::AlreadyInstalled)?;
    log::set_boxed_logger(Box::new(logger)).map_err(|_| InstallError::AlreadyInstalled)?;
    log::set_max_level(max);
    Ok(guard)
}

/// Starts a writer for `config` without installing it (tests, embedding).
///
/// # Errors
/// [`InstallError::Thread`] when the thread cannot start.
pub fn start(config: log4rs::Config) -> Result<(AsyncLogger, LoggingGuard), InstallError> {
    let stats = Arc::new(WriterStats::default());
    let last_error: Arc<Mutex<Option<String>>> = Arc::default();
    let handler_stats = stats.clone();
    let inner = log4rs::Logger::new_with_err_handler(
        config,
        Box::new(move |e: &anyhow::Error| {
            handler_stats.appender_errors.fetch_add(1, Ordering::Relaxed);
            let message = format!("{e:#}");
            if confirming() {
                CONFIRM_FAILURE.with(|f| f.borrow_mut().get_or_insert_with(|| message.clone()).len());
            }
            let mut last = last_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.as_deref() != Some(message.as_str()) {
                eprintln!("apinode logging: an appender failed: {message}");
                *last = Some(message);
            }
        }),
    );
    let (tx, rx) = mpsc::sync_channel(QUEUE_CAPACITY);
    let shared = Arc::new(Shared { inner, tx: tx.clone(), stats });
    let for_thread = shared.clone();
    let thread = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || run(&for_thread.inner, &for_thread.stats, &rx))?;
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

fn run(inner: &log4rs::Logger, stats: &WriterStats, rx: &Receiver<Msg>) {
    let mut last_flush = Instant::now();
    let mut last_record = Instant::now();
    let mut dirty = false;
    loop {
        let mut got = 0usize;
        let mut stop = false;
        while !stop {
            match rx.try_recv() {
                Ok(msg) => {
                    stop = handle(inner, stats, msg);
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
                    if handle(inner, stats, msg) {
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
fn handle(inner: &log4rs::Logger, stats: &WriterStats, msg: Msg) -> bool {
    match msg {
        Msg::Record(record) => write_record(inner, stats, record),
        Msg::Confirmed(record, ack) => {
            CONFIRMING.with(|c| c.set(true));
            CONFIRM_FAILURE.with(|f| f.borrow_mut().take());
            write_record(inner, stats, record);
            CONFIRMING.with(|c| c.set(false));
            let _ = ack.send(CONFIRM_FAILURE.with(|f| f.borrow_mut().take()).map_or(Ok(()), Err));
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
    CURRENT.with(|c| *c.borrow_mut() = Some(record.context));
    inner.log(
        &Record::builder().level(record.level).target(&record.target).args(format_args!("{}", record.message)).build(),
    );
    CURRENT.with(|c| *c.borrow_mut() = None);
    stats.written.fetch_add(1, Ordering::Relaxed);
}

/// Helpers for tests of layouts and appenders that need a record context.
#[doc(hidden)]
pub mod tests_support {
    use super::{CURRENT, RecordContext};

    /// Runs `f` as the writer does for a confirmed record.
    pub fn confirming<R>(f: impl FnOnce() -> R) -> R {
        super::CONFIRMING.with(|c| c.set(true));
        let r = f();
        super::CONFIRMING.with(|c| c.set(false));
        r
    }

    /// Runs `f` as the writer thread would, with `context` current.
    pub fn with_context<R>(context: RecordContext, f: impl FnOnce() -> R) -> R {
        CURRENT.with(|c| *c.borrow_mut() = Some(context));
        let r = f();
        CURRENT.with(|c| *c.borrow_mut() = None);
        r
    }
}
