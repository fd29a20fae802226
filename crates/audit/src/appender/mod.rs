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
pub mod retention;

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

pub use daily::DailyRollingFileAppender;
pub use file::{FileAppender, RollingFileAppender};
pub use registry::{AppenderRegistry, ReopenSignal};

/// Bytes written past the end of a failing file to learn whether it can
/// take data again (then cut off).
const PROBE_BYTES: usize = 4096;

/// An open log file whose content is only ever whole records.
///
/// Records are encoded into a buffer and written with one `write_all` per
/// flush; the file's length up to the last whole record is known
/// (`committed`). When a write fails part-way (disk full, I/O error), the
/// file is cut back to that length and the buffered records are reported
/// lost to the registry, by their writer sequence numbers: every line of
/// the file is a whole record, whatever happened. A file found at open with
/// a cut last line (a crash during a write) is cut back the same way.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    file: File,
    /// The file's length up to its last whole record.
    committed: u64,
    /// Encoded records not written yet.
    pending: Vec<u8>,
    /// Their writer sequence numbers.
    seqs: Vec<u64>,
    /// Written since the last sync.
    dirty: bool,
    registry: AppenderRegistry,
    reopen_seen: u64,
    /// Its Merkle tree, when integrity is on (docs/integrity.md "Tamper evidence").
    tree: Option<crate::integrity::tree::AppenderTree>,
}

/// Buffered bytes past which a file writes at once (a batch of large records).
const PENDING_MAX: usize = 256 << 10;

impl LogFile {
    /// Opens (creating parent folders) in append or truncate mode; the file
    /// reopens itself when the registry's reopen signal is raised, and
    /// reports lost records and its health to `registry`.
    ///
    /// # Errors
    /// The I/O error, with the path in its text.
    pub fn open(path: &Path, append: bool, registry: &AppenderRegistry) -> io::Result<LogFile> {
        if let Some(parent) = path.parent() {
            std::fs::DirBuilder::new().recursive(true).mode(0o750).create(parent).map_err(|e| with_path(e, parent))?;
        }
        // Audit files hold personal data: owner and group only (docs/security.md).
        let mut options = OpenOptions::new();
        options.create(true).read(true).mode(0o640);
        if !append {
            options.clone().write(true).truncate(true).open(path).map_err(|e| with_path(e, path))?;
        }
        let file = options.append(true).open(path).map_err(|e| with_path(e, path))?;
        let committed = cut_to_last_line(&file, path).map_err(|e| with_path(e, path))?;
        Ok(LogFile {
            path: path.to_path_buf(),
            file,
            committed,
            pending: Vec::with_capacity(64 << 10),
            seqs: Vec::new(),
            dirty: false,
            reopen_seen: registry.reopen_signal().generation(),
            registry: registry.clone(),
            tree: None,
        })
    }

    /// Gives the file the tree of appender `name` when the registry keeps
    /// trees (rebuilt from the files; a tree that cannot be opened is
    /// reported and the file is written without one).
    pub fn attach_tree(&mut self, name: &str) {
        let Some(ctx) = self.registry.integrity() else { return };
        if !std::fs::metadata(&self.path).is_ok_and(|m| m.is_file()) {
            // A device or a pipe (`/dev/stdout`) is not a file one can verify.
            log::info!("Audit integrity: {} is not a regular file; its lines get no tree", self.path.display());
            return;
        }
        match crate::integrity::tree::AppenderTree::open(&ctx, name, &self.path) {
            Ok((tree, again)) => {
                self.tree = Some(tree);
                if let Some(report) = again {
                    let origin = report.origin.clone();
                    self.registry.events().report(&origin, crate::report::Event::Checkpoint(Box::new(report)));
                }
            }
            Err(e) => log::error!(
                "Audit integrity: the tree of {name} ({}) cannot be opened: {e}; its lines are not covered",
                self.path.display()
            ),
        }
    }

    /// Whether its tree grew and its checkpoint interval passed.
    pub fn checkpoint_due(&self) -> bool {
        self.tree.as_ref().is_some_and(crate::integrity::tree::AppenderTree::due)
    }

    /// Writes what is buffered and takes a checkpoint of its tree (if it
    /// grew), finished on the integrity thread: synced, signed, written
    /// and, with `announce`, reported for the network targets (the last
    /// one of a run is only written: the next start sends it). With `wait`,
    /// returns once it is done.
    pub fn checkpoint(&mut self, announce: bool, wait: bool) {
        if self.tree.is_none() {
            return;
        }
        if let Err(e) = self.flush() {
            log::error!("Audit integrity: {} cannot be written for a checkpoint: {e}", self.path.display());
            return;
        }
        let handle = self.file.try_clone().ok();
        let (Some(tree), Some(ctx)) = (self.tree.as_mut(), self.registry.integrity()) else { return };
        if let Some(pending) = tree.prepare(handle) {
            ctx.submit(pending, announce.then(|| self.registry.events()), wait);
        }
    }

    /// After a roll: drops the kept leaves of files retention deleted.
    pub fn prune_tree(&mut self) {
        if let Some(t) = self.tree.as_mut() {
            t.prune();
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes in the file, including buffered ones.
    pub fn size(&self) -> u64 {
        self.committed + self.pending.len() as u64
    }

    /// Buffers one encoded record (reopening first if a reopen was
    /// requested); `seq` is its writer sequence number.
    ///
    /// # Errors
    /// A reopen or an early write that failed (the record is then reported lost).
    pub fn write(&mut self, bytes: &[u8], seq: u64) -> io::Result<()> {
        if self.registry.reopen_signal().generation() != self.reopen_seen
            && let Err(e) = self.reopen(true)
        {
            self.registry.note_lost(&self.path, &[seq], &e.to_string());
            return Err(e);
        }
        self.pending.extend_from_slice(bytes);
        self.seqs.push(seq);
        if self.pending.len() >= PENDING_MAX {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the buffered records with one `write_all`. On failure the file
    /// is cut back to its last whole record and the buffered records are
    /// reported lost; nothing of them is kept for a later retry.
    ///
    /// # Errors
    /// The I/O error.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        match self.file.write_all(&self.pending) {
            Ok(()) => {
                if let Some(t) = self.tree.as_mut() {
                    t.written(&self.pending);
                }
                self.committed += self.pending.len() as u64;
                self.dirty = true;
                self.pending.clear();
                self.seqs.clear();
                self.registry.note_written(&self.path);
                Ok(())
            }
            Err(e) => {
                if let Err(cut) = self.file.set_len(self.committed) {
                    log::error!("Cannot cut {} back to its last whole record: {cut}", self.path.display());
                }
                self.registry.note_lost(&self.path, &self.seqs, &e.to_string());
                self.pending.clear();
                self.seqs.clear();
                Err(with_path(e, &self.path))
            }
        }
    }

    /// Makes what was written durable (`fdatasync`), if anything was.
    ///
    /// # Errors
    /// The I/O error.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.dirty {
            self.file.sync_data().map_err(|e| with_path(e, &self.path))?;
            self.dirty = false;
        }
        Ok(())
    }

    /// Whether the file can take data again: writes [`PROBE_BYTES`] past its
    /// end, then cuts them off.
    ///
    /// # Errors
    /// The I/O error of the probe.
    pub fn probe(&mut self) -> io::Result<()> {
        let written = self.file.write_all(&[b' '; PROBE_BYTES]);
        self.file.set_len(self.committed)?;
        written?;
        self.registry.note_written(&self.path);
        Ok(())
    }

    /// Flushes, then opens the path again (append or truncate).
    ///
    /// # Errors
    /// The I/O error; the old file stays in use if the new one cannot open.
    pub fn reopen(&mut self, append: bool) -> io::Result<()> {
        self.flush()?;
        self.sync()?;
        let registry = self.registry.clone();
        let fresh = LogFile::open(&self.path.clone(), append, &registry)?;
        let tree = self.tree.take();
        *self = fresh;
        self.tree = tree;
        if self.committed == 0
            && let Some(t) = self.tree.as_mut()
        {
            t.new_file();
        }
        Ok(())
    }
}

/// The length of `file` up to its last whole line; a cut last line (a crash
/// during a write) is removed.
fn cut_to_last_line(file: &File, path: &Path) -> io::Result<u64> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(0);
    }
    let mut reader = file;
    let mut at = len;
    let mut buf = vec![0u8; 64 << 10];
    while at > 0 {
        let n = (buf.len() as u64).min(at);
        reader.seek(SeekFrom::Start(at - n))?;
        reader.read_exact(&mut buf[..n as usize])?;
        if let Some(i) = buf[..n as usize].iter().rposition(|b| *b == b'\n') {
            let whole = at - n + i as u64 + 1;
            if whole < len {
                log::warn!("{}: cut {} bytes of a record left incomplete by a crash", path.display(), len - whole);
                file.set_len(whole)?;
            }
            return Ok(whole);
        }
        at -= n;
    }
    log::warn!("{}: cut {len} bytes that hold no whole record (left by a crash)", path.display());
    file.set_len(0)?;
    Ok(0)
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
