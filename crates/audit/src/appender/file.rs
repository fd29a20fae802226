//! log4j's `FileAppender` and `RollingFileAppender`. A rolling file rolls
//! after the write that takes it to `MaxFileSize` or beyond: `file.N` is
//! deleted, `file.i` becomes `file.i+1`, `file` becomes `file.1`, and a new
//! `file` starts, as log4j 1.x does; with `MaxBackupIndex=0` the rolled file
//! is deleted (log4j's behaviour: that configuration keeps no history). Here
//! the writer thread only moves the live file aside and starts a new one;
//! the shifting, deleting (counted and announced) and compressing happen on
//! the retention thread (`retention`). Records are never split across files.

use std::path::Path;
use std::sync::{Arc, Mutex};

use log4rs::append::Append;
use log4rs::encode::Encode;

use super::retention::{self, Policy};
use super::{AppenderRegistry, LogFile, encode, lock};
use crate::record_context::RecordContext;

/// Appends every record to one file.
#[derive(Debug)]
pub struct FileAppender {
    file: Arc<Mutex<LogFile>>,
    encoder: Box<dyn Encode>,
}

impl FileAppender {
    /// Opens `path` (append or truncate) for the appender `name`.
    ///
    /// # Errors
    /// The I/O error, naming the path.
    pub fn new(
        name: &str,
        path: &Path,
        append: bool,
        encoder: Box<dyn Encode>,
        registry: &AppenderRegistry,
    ) -> std::io::Result<Self> {
        let mut opened = LogFile::open(path, append, registry)?;
        opened.attach_tree(name);
        let file = Arc::new(Mutex::new(opened));
        registry.add_file(&file);
        Ok(Self { file, encoder })
    }
}

impl Append for FileAppender {
    fn append(&self, record: &log::Record<'_>) -> anyhow::Result<()> {
        let bytes = encode(&*self.encoder, record)?;
        lock(&self.file).write(&bytes, RecordContext::current_seq())?;
        Ok(())
    }

    fn flush(&self) {
        let _ = lock(&self.file).flush();
    }
}

/// Rolls to `file.1` … `file.N` by size.
#[derive(Debug)]
pub struct RollingFileAppender {
    file: Arc<Mutex<LogFile>>,
    encoder: Box<dyn Encode>,
    max_size: u64,
    policy: Policy,
    registry: AppenderRegistry,
}

impl RollingFileAppender {
    /// Opens `path` for the appender `name`; rolls at `max_size` bytes and
    /// keeps what `policy` says (`policy.max_backups` is `MaxBackupIndex`).
    ///
    /// # Errors
    /// The I/O error, naming the path.
    pub fn new(
        name: &str,
        path: &Path,
        append: bool,
        max_size: u64,
        policy: Policy,
        encoder: Box<dyn Encode>,
        registry: &AppenderRegistry,
    ) -> std::io::Result<Self> {
        let mut opened = LogFile::open(path, append, registry)?;
        opened.attach_tree(name);
        let file = Arc::new(Mutex::new(opened));
        registry.add_file(&file);
        registry.with_retention(|r| r.opened(path, policy));
        Ok(Self { file, encoder, max_size, policy, registry: registry.clone() })
    }

    /// Moves the live file aside and starts a new one; the retention thread
    /// does the rest.
    fn roll(&self, file: &mut LogFile) -> std::io::Result<()> {
        file.flush()?;
        file.sync()?;
        file.checkpoint(true, false);
        let base = file.path().to_path_buf();
        let staged = retention::staged_name(&base);
        std::fs::rename(&base, &staged)?;
        file.reopen(false)?;
        self.registry.with_retention(|r| r.rolled(&base, staged, self.policy));
        file.prune_tree();
        Ok(())
    }
}

/// `file.i` (tests).
#[cfg(test)]
fn backup(base: &Path, i: u32) -> std::path::PathBuf {
    let mut name = base.as_os_str().to_owned();
    name.push(format!(".{i}"));
    std::path::PathBuf::from(name)
}

impl Append for RollingFileAppender {
    fn append(&self, record: &log::Record<'_>) -> anyhow::Result<()> {
        let bytes = encode(&*self.encoder, record)?;
        let mut file = lock(&self.file);
        file.write(&bytes, RecordContext::current_seq())?;
        if file.size() >= self.max_size {
            self.roll(&mut file)?;
        }
        Ok(())
    }

    fn flush(&self) {
        let _ = lock(&self.file).flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::PatternLayout;

    fn record_bytes(appender: &dyn Append, n: usize) {
        for i in 0..n {
            let args = format_args!("line {i:04}");
            appender.append(&log::Record::builder().args(args).build()).expect("append");
        }
        appender.flush();
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_default()
    }

    #[test]
    fn rolls_like_log4j_and_keeps_max_backup_index_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("q.log");
        let layout = Box::new(PatternLayout::parse("%m%n").expect("pattern"));
        // Each line is 10 bytes; roll after 30 bytes; keep 2 backups.
        let registry = AppenderRegistry::new();
        let policy = Policy { max_backups: Some(2), ..Policy::default() };
        let appender = RollingFileAppender::new("Q", &path, true, 30, policy, layout, &registry).expect("open");
        record_bytes(&appender, 10);
        registry.stop_retention();
        // Lines 0-2 were rolled away and dropped beyond .2; then 3-5 (.2), 6-8 (.1), 9 (live).
        assert_eq!(read(&path), "line 0009\n");
        assert_eq!(read(&backup(&path, 1)), "line 0006\nline 0007\nline 0008\n");
        assert_eq!(read(&backup(&path, 2)), "line 0003\nline 0004\nline 0005\n");
        assert!(!backup(&path, 3).exists());
    }

    #[test]
    fn zero_backups_truncates_and_append_false_starts_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("q.log");
        let layout = || Box::new(PatternLayout::parse("%m%n").expect("pattern"));
        // log4j rolls after the write that reaches the size: line 2 is written,
        // then the file is truncated (no backups kept), then line 3 starts it.
        let r = AppenderRegistry::new();
        let policy = Policy { max_backups: Some(0), ..Policy::default() };
        record_bytes(&RollingFileAppender::new("Q", &path, true, 25, policy, layout(), &r).expect("open"), 4);
        r.stop_retention();
        assert_eq!(read(&path), "line 0003\n");
        assert!(!backup(&path, 1).exists());
        record_bytes(&FileAppender::new("Q", &path, false, layout(), &r).expect("open"), 1);
        assert_eq!(read(&path), "line 0000\n");
        record_bytes(&FileAppender::new("Q", &path, true, layout(), &r).expect("open"), 1);
        assert_eq!(read(&path), "line 0000\nline 0000\n");
    }

    #[test]
    fn reopens_after_an_external_rename() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("q.log");
        let registry = AppenderRegistry::new();
        let appender =
            FileAppender::new("Q", &path, true, Box::new(PatternLayout::parse("%m%n").expect("p")), &registry)
                .expect("open");
        record_bytes(&appender, 1);
        std::fs::rename(&path, dir.path().join("q.log.rotated")).expect("rename");
        registry.request_reopen();
        record_bytes(&appender, 1);
        assert_eq!(read(&dir.path().join("q.log.rotated")), "line 0000\n");
        assert_eq!(read(&path), "line 0000\n", "the new file holds what came after the reopen");
    }
}

#[cfg(test)]
mod failure_tests {
    use super::*;
    use crate::layout::PatternLayout;

    #[test]
    fn a_failed_write_loses_its_records_reports_them_and_keeps_nothing_for_later() {
        // /dev/full accepts opens and fails every write with ENOSPC.
        let registry = AppenderRegistry::new();
        let layout = Box::new(PatternLayout::parse("%m%n").expect("p"));
        let appender = FileAppender::new("Q", Path::new("/dev/full"), true, layout, &registry).expect("open /dev/full");
        for seq in [7, 8] {
            let context = RecordContext { seq, ..RecordContext::now() };
            crate::record_context::with_context(context, || {
                let args = format_args!("admin change {seq}");
                appender.append(&log::Record::builder().args(args).build()).expect("buffered");
            });
        }
        appender.flush();
        let lost: Vec<u64> = registry.take_lost().into_iter().map(|(s, _)| s).collect();
        assert_eq!(lost, [7, 8], "both records are reported lost");
        assert!(registry.failing().contains_key(Path::new("/dev/full")));
        // The failed bytes were dropped: nothing is written later.
        assert_eq!(lock(&appender.file).size(), 0);
    }

    #[test]
    fn a_cut_last_line_is_removed_at_open_and_a_failed_write_leaves_whole_lines() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("q.log");
        std::fs::write(&path, "{\"a\":1}\n{\"b\":2}\n{\"cut").expect("write");
        let registry = AppenderRegistry::new();
        let layout = Box::new(PatternLayout::parse("%m%n").expect("p"));
        let appender = FileAppender::new("Q", &path, true, layout, &registry).expect("open");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "{\"a\":1}\n{\"b\":2}\n");
        appender.append(&log::Record::builder().args(format_args!("{{\"c\":3}}")).build()).expect("append");
        appender.flush();
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n");
    }
}
