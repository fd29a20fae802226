//! Storage of accepted events (docs/audit.md "Event server"): each event goes to
//! every destination whose filters take it, as one line
//! `{"clientEvent": ..., "origAddress": ..., "serverTimestamp": ...}` of
//! `<root>/<topic>/<routingKey or _none>/YYYY/MM/DD/HH/<server start>.jsonl`
//! (UTC hour of arrival). A batch is written, then every file it touched is
//! fsynced (policy ALWAYS), and only then are its event ids remembered:
//! events already stored are skipped, so a sender's retry writes nothing
//! twice. Ids are remembered per arrival hour for the dedup window, and read
//! back from the files of that window at start. Owns files and ids; it does
//! not parse requests or check keys.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::config::{Destination, Fsync};
use crate::ingest::Event;

/// The folder of events without a routing key.
pub const NO_ROUTING_KEY: &str = "_none";

/// What a batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Events written (once, whatever the number of destinations).
    pub stored: usize,
    /// Events already stored before (or twice in the batch).
    pub duplicates: usize,
    /// Events no destination takes.
    pub unrouted: usize,
}

/// An event id, hashed to 128 bits (ids are caller-chosen text of any length).
type IdHash = u128;

fn hash(id: &str) -> IdHash {
    let d = Sha256::digest(id.as_bytes());
    u128::from_be_bytes(d[..16].try_into().expect("16 bytes"))
}

/// The files and the ids already stored.
#[derive(Debug)]
pub struct Store {
    destinations: Vec<Destination>,
    fsync: Fsync,
    window_hours: u64,
    /// `<server start>.jsonl`.
    file_name: String,
    /// Ids by arrival hour (hours since the epoch).
    seen: BTreeMap<i64, HashSet<IdHash>>,
    open: HashMap<PathBuf, File>,
    open_hour: i64,
}

#[derive(Deserialize)]
struct StoredLine {
    #[serde(rename = "clientEvent")]
    client_event: StoredEvent,
}

#[derive(Deserialize)]
struct StoredEvent {
    #[serde(rename = "eventId")]
    event_id: String,
}

impl Store {
    /// Opens the destinations' roots and reads back the ids of the files
    /// written during the dedup window.
    ///
    /// # Errors
    /// When a root cannot be created or read.
    pub fn open(destinations: Vec<Destination>, fsync: Fsync, window_hours: u64) -> io::Result<Store> {
        let start = Utc::now();
        let mut store = Store {
            destinations,
            fsync,
            window_hours,
            file_name: format!("{}-{}.jsonl", start.format("%Y%m%dT%H%M%S%3fZ"), std::process::id()),
            seen: BTreeMap::new(),
            open: HashMap::new(),
            open_hour: 0,
        };
        let since = SystemTime::now() - Duration::from_secs(window_hours * 3600);
        let hour = start.timestamp() / 3600;
        let mut files = 0;
        for root in store.destinations.iter().map(|d| d.root.clone()).collect::<Vec<_>>() {
            fs::DirBuilder::new().recursive(true).mode(0o750).create(&root)?;
            for file in jsonl_files(&root)? {
                if fs::metadata(&file)?.modified()? < since {
                    continue;
                }
                files += 1;
                let set = store.seen.entry(hour).or_default();
                for line in BufReader::new(File::open(&file)?).lines() {
                    if let Ok(l) = serde_json::from_str::<StoredLine>(&line?) {
                        set.insert(hash(&l.client_event.event_id));
                    }
                }
            }
        }
        let ids: usize = store.seen.values().map(HashSet::len).sum();
        log::info!("Read back {ids} event ids from {files} files of the last {window_hours} hours for deduplication");
        Ok(store)
    }

    /// The destinations taking an event.
    pub fn routes<'a>(&'a self, event: &'a Event) -> impl Iterator<Item = &'a Destination> + 'a {
        self.destinations.iter().filter(|d| d.takes(&event.topic, event.routing_key.as_deref()))
    }

    /// Whether an event with this id was stored already (within the window).
    pub fn has(&self, event_id: &str) -> bool {
        self.is_seen(hash(event_id))
    }

    fn is_seen(&self, id: IdHash) -> bool {
        self.seen.values().any(|s| s.contains(&id))
    }

    /// Stores a checked batch from `orig_address` (and the client
    /// certificate named `client_name`, over mutual TLS).
    ///
    /// # Errors
    /// When a file cannot be written or synced; ids of that batch are not
    /// remembered, so the sender's retry stores them.
    pub fn write(&mut self, events: &[Event], orig_address: &str, client_name: Option<&str>) -> io::Result<Outcome> {
        let now: DateTime<Utc> = Utc::now();
        let hour = now.timestamp() / 3600;
        if hour != self.open_hour {
            self.open.clear();
            self.open_hour = hour;
            let oldest = hour - self.window_hours as i64;
            self.seen.retain(|h, _| *h >= oldest);
        }
        let server_ts = now.to_rfc3339_opts(SecondsFormat::Millis, true);
        let folder_time = now.format("%Y/%m/%d/%H").to_string();
        let mut outcome = Outcome::default();
        let mut batch_ids = HashSet::new();
        let mut lines: BTreeMap<PathBuf, String> = BTreeMap::new();
        for event in events {
            let id = hash(&event.event_id);
            if self.is_seen(id) || !batch_ids.insert(id) {
                outcome.duplicates += 1;
                continue;
            }
            let mut routed = false;
            for d in self.routes(event) {
                routed = true;
                let path = d
                    .root
                    .join(&event.topic)
                    .join(event.routing_key.as_deref().unwrap_or(NO_ROUTING_KEY))
                    .join(&folder_time)
                    .join(&self.file_name);
                let buf = lines.entry(path).or_default();
                buf.push_str(r#"{"clientEvent":"#);
                buf.push_str(event.raw.get());
                buf.push_str(r#","origAddress":"#);
                buf.push_str(&serde_json::Value::String(orig_address.to_owned()).to_string());
                if let Some(name) = client_name {
                    buf.push_str(r#","origClientName":"#);
                    buf.push_str(&serde_json::Value::String(name.to_owned()).to_string());
                }
                buf.push_str(r#","serverTimestamp":""#);
                buf.push_str(&server_ts);
                buf.push_str("\"}\n");
            }
            if routed {
                outcome.stored += 1;
            } else {
                outcome.unrouted += 1;
            }
        }
        let mut touched = Vec::new();
        for (path, text) in &lines {
            let file = self.file(path)?;
            file.write_all(text.as_bytes())?;
            touched.push(path);
        }
        if self.fsync == Fsync::Always {
            for path in touched {
                self.file(path)?.sync_data()?;
            }
        }
        self.seen.entry(hour).or_default().extend(batch_ids);
        Ok(outcome)
    }

    fn file(&mut self, path: &Path) -> io::Result<&mut File> {
        if !self.open.contains_key(path) {
            let dir = path.parent().expect("a file in a folder");
            let new_dir = !dir.exists();
            fs::DirBuilder::new().recursive(true).mode(0o750).create(dir)?;
            let file = OpenOptions::new().create(true).append(true).mode(0o640).open(path)?;
            if self.fsync == Fsync::Always {
                // The new file's name must survive a crash as its lines do.
                File::open(dir)?.sync_all()?;
                if new_dir && let Some(parent) = dir.parent() {
                    File::open(parent)?.sync_all()?;
                }
            }
            self.open.insert(path.to_path_buf(), file);
        }
        Ok(self.open.get_mut(path).expect("inserted above"))
    }
}

/// Every `.jsonl` file under `root`.
fn jsonl_files(root: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "jsonl") {
                out.push(path);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::parse;

    fn dest(root: &Path) -> Destination {
        Destination {
            name: "all".into(),
            filter: audit_types::Filter::all(),
            required_key: None,
            required_client_name: None,
            root: root.to_path_buf(),
        }
    }

    #[test]
    fn events_land_by_topic_key_and_hour_once() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut store = Store::open(vec![dest(dir.path())], Fsync::Always, 48).expect("open");
        let batch = parse(
            br#"[{"topic":"apinode-query","routingKey":"churn","eventId":"a"},{"topic":"generic","eventId":"b"},
                 {"topic":"generic","eventId":"b"}]"#,
            100,
        )
        .expect("valid");
        assert_eq!(
            store.write(&batch, "10.0.0.1", None).expect("write"),
            Outcome { stored: 2, duplicates: 1, unrouted: 0 }
        );
        assert_eq!(store.write(&batch, "10.0.0.1", None).expect("retry").duplicates, 3, "a retry stores nothing");
        let files = jsonl_files(dir.path()).expect("files");
        assert_eq!(files.len(), 2);
        let query = files.iter().find(|f| f.starts_with(dir.path().join("apinode-query/churn"))).expect("query file");
        let hour_dir = query.parent().expect("hour").strip_prefix(dir.path().join("apinode-query/churn")).expect("rel");
        assert_eq!(hour_dir.components().count(), 4, "YYYY/MM/DD/HH: {hour_dir:?}");
        let line: serde_json::Value =
            serde_json::from_str(fs::read_to_string(query).expect("read").trim()).expect("json line");
        assert_eq!(line["clientEvent"]["eventId"], "a");
        assert_eq!(line["origAddress"], "10.0.0.1");
        assert!(line["serverTimestamp"].as_str().expect("ts").ends_with('Z'));
        assert!(files.iter().any(|f| f.starts_with(dir.path().join("generic").join(NO_ROUTING_KEY))));
        // A restarted server remembers what is stored.
        drop(store);
        let mut store = Store::open(vec![dest(dir.path())], Fsync::Always, 48).expect("reopen");
        assert_eq!(store.write(&batch, "10.0.0.1", None).expect("after restart").stored, 0);
    }
}
