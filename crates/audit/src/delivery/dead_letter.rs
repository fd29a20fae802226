//! A target's dead letters (`run/spool/<target>/dead-letter/`): records its
//! destination will never take (too large for the broker, refused by the
//! event server), kept so that nothing of the trail disappears and the
//! target can go on with everything else. One JSON line per record in a
//! file per UTC day, `YYYY-MM-DD.jsonl`:
//! `{"rejectedAt": "<RFC 3339>", "target": "<name>", "reason": "...", "record": <the record>}`
//! (`"line": "<text>"` instead of `record` when the spool line was not
//! JSON). Each line is synced before the record counts as rejected: rejections
//! are rare, and a dead letter is the only copy. Owns these files only.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::value::RawValue;

/// The folder, relative to a target's spool folder.
pub const FOLDER: &str = "dead-letter";

/// The dead-letter files of one target.
#[derive(Debug)]
pub struct DeadLetter {
    target: String,
    dir: PathBuf,
    open: Option<(String, File)>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Entry<'a> {
    rejected_at: String,
    target: &'a str,
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<&'a str>,
}

impl DeadLetter {
    /// The dead letters of `target`, whose spool is `spool_dir` (nothing is
    /// created before the first rejection).
    pub fn new(target: &str, spool_dir: &Path) -> DeadLetter {
        DeadLetter { target: target.to_owned(), dir: spool_dir.join(FOLDER), open: None }
    }

    /// Keeps `line` (a spool line) with the reason it was rejected; returns
    /// the file it went to, once it is on disk.
    ///
    /// # Errors
    /// When the folder or file cannot be created, written or synced.
    pub fn keep(&mut self, line: &str, reason: &str) -> io::Result<PathBuf> {
        let now = chrono::Utc::now();
        let day = now.format("%Y-%m-%d").to_string();
        if self.open.as_ref().is_none_or(|(d, _)| *d != day) {
            fs::DirBuilder::new().recursive(true).mode(0o750).create(&self.dir)?;
            let path = self.dir.join(format!("{day}.jsonl"));
            let file = OpenOptions::new().create(true).append(true).mode(0o640).open(&path)?;
            self.open = Some((day.clone(), file));
        }
        let raw: Option<&RawValue> = serde_json::from_str(line).ok();
        let entry = Entry {
            rejected_at: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            target: &self.target,
            reason,
            record: raw,
            line: if raw.is_some() { None } else { Some(line) },
        };
        let mut text = serde_json::to_string(&entry).map_err(io::Error::other)?;
        text.push('\n');
        let (_, file) = self.open.as_mut().expect("opened above");
        // One write of the whole line (append mode): a crash leaves it whole or absent.
        file.write_all(text.as_bytes())?;
        file.sync_data()?;
        Ok(self.dir.join(format!("{day}.jsonl")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejected_record_is_kept_whole_with_its_reason() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut d = DeadLetter::new("central", dir.path());
        assert!(!dir.path().join(FOLDER).exists(), "nothing before the first rejection");
        let file = d.keep(r#"{"eventId":"e1","x":[1,2]}"#, "413 too large").expect("kept");
        d.keep("not json", "not a record").expect("kept");
        let text = fs::read_to_string(&file).expect("read");
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
        assert_eq!(lines[0]["record"], serde_json::json!({"eventId": "e1", "x": [1, 2]}));
        assert_eq!(
            (lines[0]["reason"].as_str(), lines[0]["target"].as_str()),
            (Some("413 too large"), Some("central"))
        );
        assert_eq!(lines[1]["line"], "not json");
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(fs::metadata(&file).expect("meta").permissions().mode() & 0o777, 0o640);
    }
}
