//! What leaves the disk, and how that is recorded (docs/integrity.md
//! "Retention"). Records leave the node's disk only through an appender's
//! retention policy: `MaxBackupIndex` of a rolling appender, and a
//! `MaxBackupAge` (such as `30d`) on any rolling appender. Each rolled file a
//! policy deletes is read first (its records counted, its first and last
//! record time, its SHA-256), announced (`audit-file-deleted`, through the
//! reporter, which waits until the announcement is written), counted, and
//! only then deleted. Rolled files may be compressed (`Compress=gzip`).
//!
//! All of this runs on one retention thread per logging configuration, never
//! on the writer thread: at a roll the writer only renames the live file to
//! a staged name (`<file>.rolling-<n>`) and opens a new one; the retention
//! thread then shifts the backups (`<file>.i` → `<file>.i+1`, deleting what
//! falls off the end), moves the staged file to `<file>.1`, compresses it,
//! and applies the age limit, one job after another, so a roll never races
//! a compression. Staged files left by a crash are finished at the next start.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use super::registry::RetentionStats;
use crate::report::{Ack, Event, Events, FileDeleted};

/// What a rolling appender keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policy {
    /// `MaxBackupIndex` of a size-rolling appender (None: a daily appender,
    /// whose backups are named by date and kept until `max_age`).
    pub max_backups: Option<u32>,
    /// `MaxBackupAge`: rolled files older than this are deleted.
    pub max_age: Option<Duration>,
    /// `Compress=gzip`: rolled files are gzip-compressed (`.gz`).
    pub compress: bool,
}

impl Policy {
    fn ext(&self) -> &'static str {
        if self.compress { ".gz" } else { "" }
    }
}

/// One job of the retention thread.
#[derive(Debug)]
enum Job {
    /// A size-rolling appender rolled: `staged` is the old live file.
    Rolled {
        base: PathBuf,
        staged: PathBuf,
        policy: Policy,
    },
    /// A daily appender rolled to `dated`.
    Dated {
        base: PathBuf,
        dated: PathBuf,
        policy: Policy,
    },
    /// A daily appender's age limit, at start.
    Sweep {
        base: PathBuf,
        policy: Policy,
    },
    Stop,
}

/// The retention thread of one logging configuration.
#[derive(Debug)]
pub struct Retention {
    tx: Sender<Job>,
    thread: Option<JoinHandle<()>>,
}

impl Retention {
    /// Starts the thread; announcements go to `events`, counts to `stats`.
    ///
    /// # Errors
    /// When the thread cannot start.
    pub fn start(events: Events, stats: RetentionStats) -> io::Result<Retention> {
        let (tx, rx) = mpsc::channel();
        let ctx = Ctx { events, stats };
        let thread = std::thread::Builder::new().name("audit-retention".into()).spawn(move || run(&rx, &ctx))?;
        Ok(Retention { tx, thread: Some(thread) })
    }

    /// A size-rolling appender rolled its live file to `staged`.
    pub fn rolled(&self, base: &Path, staged: PathBuf, policy: Policy) {
        let _ = self.tx.send(Job::Rolled { base: base.to_path_buf(), staged, policy });
    }

    /// A daily appender rolled to `dated`.
    pub fn dated(&self, base: &Path, dated: PathBuf, policy: Policy) {
        let _ = self.tx.send(Job::Dated { base: base.to_path_buf(), dated, policy });
    }

    /// An appender opened `base`: finishes what a crash left (staged files,
    /// an uncompressed `.1`) and applies the age limit.
    pub fn opened(&self, base: &Path, policy: Policy) {
        for staged in staged_files(base) {
            self.rolled(base, staged, policy);
        }
        let _ = self.tx.send(Job::Sweep { base: base.to_path_buf(), policy });
    }

    /// Finishes every job and stops.
    pub fn stop(&mut self) {
        let _ = self.tx.send(Job::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Retention {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `<base>.rolling-<n>` files, oldest first.
fn staged_files(base: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (base.parent(), base.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    let prefix = format!("{name}.rolling-");
    let mut found: Vec<(u128, PathBuf)> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_str()?.strip_prefix(&prefix)?.parse::<u128>().ok()?;
            Some((n, e.path()))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, p)| p).collect()
}

/// A fresh staged name for the live file `base`.
pub fn staged_name(base: &Path) -> PathBuf {
    let n = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    with_suffix(base, &format!(".rolling-{n}"))
}

fn with_suffix(base: &Path, suffix: &str) -> PathBuf {
    let mut name = base.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// What the jobs report to.
struct Ctx {
    events: Events,
    stats: RetentionStats,
}

fn run(rx: &Receiver<Job>, events: &Ctx) {
    while let Ok(job) = rx.recv() {
        let done = match job {
            Job::Stop => return,
            Job::Rolled { base, staged, policy } => rolled(&base, &staged, policy, events),
            Job::Dated { base, dated, policy } => dated_job(&base, &dated, policy, events),
            Job::Sweep { base, policy } => sweep(&base, policy, events),
        };
        if let Err(e) = done {
            log::error!("Audit retention: {e}");
        }
    }
}

fn rolled(base: &Path, staged: &Path, policy: Policy, events: &Ctx) -> io::Result<()> {
    let n = policy.max_backups.unwrap_or(1);
    let ext = policy.ext();
    if n == 0 {
        // log4j's MaxBackupIndex=0 keeps no history: the rolled file goes.
        return delete(base, staged, events);
    }
    let backup = |i: u32| with_suffix(base, &format!(".{i}{ext}"));
    if backup(n).exists() {
        delete(base, &backup(n), events)?;
    }
    for i in (1..n).rev() {
        if backup(i).exists() {
            fs::rename(backup(i), backup(i + 1))?;
        }
    }
    let first = with_suffix(base, ".1");
    fs::rename(staged, &first)?;
    if policy.compress {
        compress(&first)?;
    }
    age_limit(base, policy, events)
}

fn dated_job(base: &Path, dated: &Path, policy: Policy, events: &Ctx) -> io::Result<()> {
    if policy.compress && dated.exists() {
        compress(dated)?;
    }
    sweep(base, policy, events)
}

/// Finishes an interrupted compression of `<base>.1`, then the age limit.
fn sweep(base: &Path, policy: Policy, events: &Ctx) -> io::Result<()> {
    let first = with_suffix(base, ".1");
    if policy.compress && policy.max_backups.is_some() && first.exists() {
        compress(&first)?;
    }
    age_limit(base, policy, events)
}

/// Deletes the rolled files of `base` older than the policy's age.
fn age_limit(base: &Path, policy: Policy, events: &Ctx) -> io::Result<()> {
    let Some(max_age) = policy.max_age else { return Ok(()) };
    for file in rolled_files(base) {
        let age = fs::metadata(&file)?.modified()?.elapsed().unwrap_or_default();
        if age > max_age {
            delete(base, &file, events)?;
        }
    }
    Ok(())
}

/// The rolled files of `base` (`<base>.<anything>` but staged and temporary ones).
pub fn rolled_files(base: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (base.parent(), base.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    let prefix = format!("{name}.");
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&prefix) && !n.contains(".rolling-") && !n.ends_with(".tmp"))
        })
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

/// Compresses `file` to `<file>.gz` (through a temporary file, synced),
/// then removes `file`.
fn compress(file: &Path) -> io::Result<()> {
    let target = with_suffix(file, ".gz");
    let tmp = with_suffix(file, ".gz.tmp");
    {
        let mut input = File::open(file)?;
        let out = std::fs::OpenOptions::new().create(true).write(true).truncate(true).mode(0o640).open(&tmp)?;
        let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
        io::copy(&mut input, &mut gz)?;
        let out = gz.finish()?;
        out.sync_all()?;
    }
    fs::rename(&tmp, &target)?;
    fs::remove_file(file)
}

/// Reads, announces (waiting until the announcement is written), counts
/// and deletes one rolled file.
fn delete(base: &Path, file: &Path, ctx: &Ctx) -> io::Result<()> {
    let deleted = describe(base, file)?;
    let records = deleted.records;
    let (ack, acked) = mpsc::channel();
    ctx.events.report(&base.display().to_string(), Event::FileDeleted(Box::new(deleted), Ack::new(ack)));
    // The reporter answers once the announcement is written (or failed).
    if ctx.events.is_read() && acked.recv_timeout(Duration::from_secs(10)).is_err() {
        log::error!("Audit retention: the deletion of {} was not confirmed as announced", file.display());
    }
    fs::remove_file(file)?;
    ctx.stats.count(&base.display().to_string(), records);
    log::info!("Audit retention: deleted {} ({records} records)", file.display());
    Ok(())
}

/// What a rolled file holds: records, first and last record time, SHA-256.
/// Streams the file once (a rolled file may be hundreds of megabytes: it is
/// never held in memory); only its first and last lines are parsed.
pub fn describe(base: &Path, file: &Path) -> io::Result<FileDeleted> {
    use std::io::BufRead as _;
    let gz = file.extension().is_some_and(|e| e == "gz");
    let mut lines: Box<dyn io::BufRead> = if gz {
        Box::new(io::BufReader::with_capacity(256 << 10, flate2::read::MultiGzDecoder::new(File::open(file)?)))
    } else {
        Box::new(io::BufReader::with_capacity(256 << 10, File::open(file)?))
    };
    let (mut records, mut first_leaf, mut first_time) = (0u64, None, None);
    let mut last: Vec<u8> = Vec::new();
    let mut line = Vec::with_capacity(1024);
    loop {
        line.clear();
        if lines.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        records += 1;
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        if first_leaf.is_none() {
            first_leaf = Some(base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                audit_types::tlog::merkle::leaf_hash(text),
            ));
        }
        if !text.is_empty() {
            if first_time.is_none() {
                // The first non-empty line's time (it may carry none).
                first_time = Some(record_time(&String::from_utf8_lossy(text)));
            }
            last.clear();
            last.extend_from_slice(text);
        }
    }
    drop(lines);
    // The hash is of the bytes on disk (compressed ones for a `.gz`).
    let mut rest = File::open(file)?;
    let mut raw = Sha256::new();
    io::copy(&mut rest, &mut HashSink(&mut raw))?;
    let sha256 = hex(&raw.finalize());
    let last_time = (!last.is_empty()).then(|| record_time(&String::from_utf8_lossy(&last))).flatten();
    Ok(FileDeleted {
        appender: base.display().to_string(),
        file: file.display().to_string(),
        records,
        first_time: first_time.flatten(),
        last_time,
        sha256,
        first_leaf,
    })
}

/// A writer into a hasher.
struct HashSink<'a>(&'a mut Sha256);

impl io::Write for HashSink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn hex(digest: &[u8]) -> String {
    let mut out = String::with_capacity(64);
    for b in digest {
        use std::fmt::Write as _;
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The time a line carries: `timestamp` of a JSON line, or of its embedded
/// `message` (the JSON layouts), else none.
fn record_time(line: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let t = v.get("timestamp").or_else(|| v.get("message").and_then(|m| m.get("timestamp")))?;
    t.as_str().map(str::to_owned)
}

/// Writes `lines` to `path` (tests).
#[doc(hidden)]
pub fn write_lines(path: &Path, lines: &[&str]) -> io::Result<()> {
    let mut f = File::create(path)?;
    for l in lines {
        writeln!(f, "{l}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deleted_file_is_described_whole_plain_or_compressed() {
        let dir = tempfile::tempdir().expect("tmp");
        let base = dir.path().join("q.log");
        let file = dir.path().join("q.log.3");
        write_lines(&file, &[r#"{"timestamp":"t1","a":1}"#, "not json", r#"{"message":{"timestamp":"t3"}}"#])
            .expect("write");
        let d = describe(&base, &file).expect("describe");
        assert_eq!((d.records, d.first_time.as_deref(), d.last_time.as_deref()), (3, Some("t1"), Some("t3")));
        assert_eq!(d.sha256, hex(&Sha256::digest(fs::read(&file).expect("read"))));
        compress(&file).expect("compress");
        let gz = dir.path().join("q.log.3.gz");
        assert!(!file.exists() && gz.exists());
        let d = describe(&base, &gz).expect("describe");
        assert_eq!(d.records, 3, "a compressed file is read through");
        assert_eq!(d.sha256, hex(&Sha256::digest(fs::read(&gz).expect("read"))), "the hash of the bytes on disk");
    }
}
