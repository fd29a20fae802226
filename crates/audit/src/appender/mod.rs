//! File appenders that behave as log4j's: `FileAppender`,
//! `RollingFileAppender` (`file.1` … `file.N`, `MaxBackupIndex` honoured) and
//! `DailyRollingFileAppender` (`file` + the `DatePattern` of the period that
//! ended). They are written here rather than taken from log4rs because
//! log4rs's file appenders cannot reopen their files on SIGHUP (needed by
//! external logrotate: `bin/dss reopenlogs`) and name rolled files
//! differently. All of them run only on the writer thread; they buffer and
//! flush when the writer's queue is empty. Each is built with the
//! [`AppenderRegistry`] of its configuration, whose reopen signal makes
//! every file reopen before its next write.

pub mod daily;
pub mod file;
pub mod registry;

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write as _};
use std::path::{Path, PathBuf};

pub use daily::DailyRollingFileAppender;
pub use file::{FileAppender, RollingFileAppender};
pub use registry::{AppenderRegistry, ReopenSignal};

/// An open log file: buffered, size-tracked, reopened on request.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    writer: BufWriter<File>,
    size: u64,
    reopen: ReopenSignal,
    reopen_seen: u64,
}

impl LogFile {
    /// Opens (creating parent folders) in append or truncate mode; the file
    /// reopens itself when `reopen` is signalled.
    ///
    /// # Errors
    /// The I/O error, with the path in its text.
    pub fn open(path: &Path, append: bool, reopen: ReopenSignal) -> io::Result<LogFile> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| with_path(e, parent))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(append)
            .write(true)
            .truncate(!append)
            .open(path)
            .map_err(|e| with_path(e, path))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(LogFile {
            path: path.to_path_buf(),
            writer: BufWriter::with_capacity(64 * 1024, file),
            size,
            reopen_seen: reopen.generation(),
            reopen,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes in the file, including buffered ones.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends bytes (reopening first if a reopen was requested).
    ///
    /// # Errors
    /// The I/O error.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.reopen.generation() != self.reopen_seen {
            self.reopen(true)?;
        }
        self.writer.write_all(bytes)?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// Writes the buffer to the file.
    ///
    /// # Errors
    /// The I/O error.
    pub fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }

    /// Flushes for a confirmed record. On failure the unwritten bytes are
    /// dropped, not kept for a later retry: a change refused because its
    /// record could not be written must not show up once the disk recovers.
    ///
    /// # Errors
    /// The I/O error of the flush (or of reopening after it).
    pub fn flush_confirmed(&mut self) -> io::Result<()> {
        let Err(e) = self.writer.flush() else { return Ok(()) };
        let file = OpenOptions::new().append(true).open(&self.path)?;
        let old = std::mem::replace(&mut self.writer, BufWriter::with_capacity(64 * 1024, file));
        // into_parts hands back the buffer instead of flushing it on drop.
        drop(old.into_parts());
        Err(e)
    }

    /// Flushes, then opens the path again (append or truncate).
    ///
    /// # Errors
    /// The I/O error; the old file stays in use if the new one cannot open.
    pub fn reopen(&mut self, append: bool) -> io::Result<()> {
        self.writer.flush()?;
        *self = LogFile::open(&self.path.clone(), append, self.reopen.clone())?;
        Ok(())
    }
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// A byte buffer that log4rs encoders can write into.
#[derive(Debug, Default)]
pub(crate) struct Buf(pub Vec<u8>);

impl io::Write for Buf {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl log4rs::encode::Write for Buf {}

/// Encodes a record into a fresh buffer.
pub(crate) fn encode(encoder: &dyn log4rs::encode::Encode, record: &log::Record<'_>) -> anyhow::Result<Vec<u8>> {
    let mut buf = Buf(Vec::with_capacity(512));
    encoder.encode(&mut buf, record)?;
    Ok(buf.0)
}

/// Locks a mutex, recovering the data if a panic poisoned it (a log file is
/// still usable after a panic elsewhere).
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
