//! log4j's `FileAppender` and `RollingFileAppender`. A rolling file rolls
//! after the write that takes it to `MaxFileSize` or beyond: `file.N` is
//! deleted, `file.i` becomes `file.i+1`, `file` becomes `file.1`, and a new
//! `file` starts, exactly as log4j 1.x does. With `MaxBackupIndex=0` the file
//! is truncated instead (log4j's behaviour: that configuration keeps no
//! history). Records are never split across files.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use log4rs::append::Append;
use log4rs::encode::Encode;

use super::{AppenderRegistry, LogFile, encode, lock};

/// Appends every record to one file.
#[derive(Debug)]
pub struct FileAppender {
    file: Mutex<LogFile>,
    encoder: Box<dyn Encode>,
    registry: AppenderRegistry,
}

impl FileAppender {
    /// Opens `path` (append or truncate).
    ///
    /// # Errors
    /// The I/O error, naming the path.
    pub fn new(
        path: &Path,
        append: bool,
        encoder: Box<dyn Encode>,
        registry: &AppenderRegistry,
    ) -> std::io::Result<Self> {
        let file = LogFile::open(path, append, registry.reopen_signal())?;
        Ok(Self { file: Mutex::new(file), encoder, registry: registry.clone() })
    }
}

impl Append for FileAppender {
    fn append(&self, record: &log::Record<'_>) -> anyhow::Result<()> {
        let bytes = encode(&*self.encoder, record)?;
        let mut file = lock(&self.file);
        file.write(&bytes)?;
        if self.registry.confirming() {
            file.flush_confirmed()?;
        }
        Ok(())
    }

    fn flush(&self) {
        let _ = lock(&self.file).flush();
    }
}

/// Rolls to `file.1` … `file.N` by size.
#[derive(Debug)]
pub struct RollingFileAppender {
    file: Mutex<LogFile>,
    encoder: Box<dyn Encode>,
    max_size: u64,
    max_backups: u32,
    registry: AppenderRegistry,
}

impl RollingFileAppender {
    /// Opens `path`; rolls at `max_size` bytes keeping `max_backups` files.
    ///
    /// # Errors
    /// The I/O error, naming the path.
    pub fn new(
        path: &Path,
        append: bool,
        max_size: u64,
        max_backups: u32,
        encoder: Box<dyn Encode>,
        registry: &AppenderRegistry,
    ) -> std::io::Result<Self> {
        let file = LogFile::open(path, append, registry.reopen_signal())?;
        Ok(Self { file: Mutex::new(file), encoder, max_size, max_backups, registry: registry.clone() })
    }

    fn roll(&self, file: &mut LogFile) -> std::io::Result<()> {
        file.flush()?;
        let base = file.path().to_path_buf();
        if self.max_backups > 0 {
            let _ = std::fs::remove_file(backup(&base, self.max_backups));
            for i in (1..self.max_backups).rev() {
                let from = backup(&base, i);
                if from.exists() {
                    std::fs::rename(&from, backup(&base, i + 1))?;
                }
            }
            std::fs::rename(&base, backup(&base, 1))?;
        }
        file.reopen(false)
    }
}

/// `file.i`
fn backup(base: &Path, i: u32) -> PathBuf {
    let mut name = base.as_os_str().to_owned();
    name.push(format!(".{i}"));
    PathBuf::from(name)
}

impl Append for RollingFileAppender {
    fn append(&self, record: &log::Record<'_>) -> anyhow::Result<()> {
        let bytes = encode(&*self.encoder, record)?;
        let mut file = lock(&self.file);
        file.write(&bytes)?;
        if self.registry.confirming() {
            file.flush_confirmed()?;
        }
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
        let appender = RollingFileAppender::new(&path, true, 30, 2, layout, &AppenderRegistry::new()).expect("open");
        record_bytes(&appender, 10);
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
        record_bytes(&RollingFileAppender::new(&path, true, 25, 0, layout(), &r).expect("open"), 4);
        assert_eq!(read(&path), "line 0003\n");
        assert!(!backup(&path, 1).exists());
        record_bytes(&FileAppender::new(&path, false, layout(), &r).expect("open"), 1);
        assert_eq!(read(&path), "line 0000\n");
        record_bytes(&FileAppender::new(&path, true, layout(), &r).expect("open"), 1);
        assert_eq!(read(&path), "line 0000\nline 0000\n");
    }

    #[test]
    fn reopens_after_an_external_rename() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("q.log");
        let registry = AppenderRegistry::new();
        let appender = FileAppender::new(&path, true, Box::new(PatternLayout::parse("%m%n").expect("p")), &registry)
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
mod confirm_tests {
    use super::*;
    use crate::layout::PatternLayout;

    #[test]
    fn a_confirmed_record_on_a_full_disk_fails_and_is_not_written_later() {
        // /dev/full accepts opens and fails every write with ENOSPC.
        let registry = AppenderRegistry::new();
        let layout = Box::new(PatternLayout::parse("%m%n").expect("p"));
        let appender = FileAppender::new(Path::new("/dev/full"), true, layout, &registry).expect("open /dev/full");
        let args = format_args!("admin change");
        let record = log::Record::builder().args(args).build();
        registry.set_confirming(true);
        let result = appender.append(&record);
        registry.set_confirming(false);
        assert!(result.is_err(), "the write must be reported as failed");
        // The failed bytes were dropped: a later flush has nothing to write.
        let file = lock(&appender.file);
        assert_eq!(file.writer.buffer().len(), 0);
    }
}
