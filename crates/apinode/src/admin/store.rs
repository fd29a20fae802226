//! Durable admin changes on disk, in two steps so that a change can be
//! recorded in the audit before it takes effect: *stage* writes everything
//! the change needs next to its final place (a temporary file or folder,
//! fsynced), *commit* makes it take effect with one rename. A staged change
//! that is dropped uncommitted leaves nothing behind. Only file mechanics
//! here: no validation, no audit.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

/// A change written next to its target, waiting for its commit.
#[derive(Debug)]
pub struct Staged {
    temp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl Staged {
    /// Replaces the target with the staged file or folder.
    ///
    /// # Errors
    /// The I/O error of the rename.
    pub fn commit(mut self) -> std::io::Result<()> {
        std::fs::rename(&self.temp, &self.target)?;
        self.committed = true;
        Ok(())
    }
}

impl Staged {
    /// Leaves the staged folder in place (it is taken over by another
    /// [`Staged`]).
    pub fn disarm(mut self) -> PathBuf {
        self.committed = true;
        self.temp.clone()
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.temp);
            let _ = std::fs::remove_dir_all(&self.temp);
        }
    }
}

fn temp_next_to(target: &Path) -> PathBuf {
    let name = target.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    target.with_file_name(format!(".{name}.staged-{}", uuid::Uuid::new_v4().simple()))
}

/// Stages a JSON file (pretty-printed, fsynced, mode 0600: service files
/// hold key hashes).
///
/// # Errors
/// The I/O error.
pub fn stage_json<T: serde::Serialize>(target: &Path, value: &T) -> std::io::Result<Staged> {
    let temp = temp_next_to(target);
    let staged = Staged { temp: temp.clone(), target: target.to_path_buf(), committed: false };
    let mut text = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    text.push(b'\n');
    let mut f = std::fs::OpenOptions::new().create(true).write(true).truncate(true).mode(0o600).open(&temp)?;
    f.write_all(&text)?;
    f.sync_all()?;
    Ok(staged)
}

/// Stages a folder filled by `fill` (which receives the temporary path).
///
/// # Errors
/// The I/O error of creating or filling it.
pub fn stage_dir(target: &Path, fill: impl FnOnce(&Path) -> std::io::Result<()>) -> std::io::Result<Staged> {
    let temp = temp_next_to(target);
    std::fs::create_dir_all(&temp)?;
    let staged = Staged { temp: temp.clone(), target: target.to_path_buf(), committed: false };
    fill(&temp)?;
    Ok(staged)
}

/// A folder already filled at `temp` (next to `target`), staged for `target`.
pub fn staged_dir(temp: PathBuf, target: &Path) -> Staged {
    Staged { temp, target: target.to_path_buf(), committed: false }
}

/// A fresh temporary name next to `target` (for [`staged_dir`]).
pub fn temp_for(target: &Path) -> PathBuf {
    temp_next_to(target)
}

/// Removes a folder: renamed aside first (one atomic step), then deleted.
///
/// # Errors
/// The I/O error of the rename.
pub fn remove_dir(target: &Path) -> std::io::Result<()> {
    let aside = target.with_file_name(format!(".deleted-{}", uuid::Uuid::new_v4().simple()));
    std::fs::rename(target, &aside)?;
    if let Err(e) = std::fs::remove_dir_all(&aside) {
        log::warn!("Could not remove {}: {e}", aside.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_changes_appear_only_on_commit_and_vanish_when_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("service.json");
        let staged = stage_json(&target, &serde_json::json!({"a": 1})).expect("stage");
        assert!(!target.exists());
        staged.commit().expect("commit");
        assert!(std::fs::read_to_string(&target).expect("read").contains("\"a\": 1"));
        drop(stage_json(&target, &serde_json::json!({"a": 2})).expect("stage"));
        assert!(
            std::fs::read_to_string(&target).expect("read").contains("\"a\": 1"),
            "the dropped change left no trace"
        );
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 1, "no temporary file left");
        let folder = dir.path().join("gen");
        drop(stage_dir(&folder, |p| std::fs::write(p.join("x"), "y")).expect("stage dir"));
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 1);
    }
}
