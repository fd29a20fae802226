//! An appender's trail as the offline tools find it on disk: its segments
//! (from the ledger), the file that holds each one (recognised by its first
//! lines, whatever it was renamed or compressed to), files nobody knows,
//! the signed checkpoints of its origin from every source given, and the
//! deletions the retention policies announced. Reads only.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use audit_types::tlog::merkle::{Hash, LeafSource, TreeError};
use audit_types::tlog::note::{Checkpoint, NoteVerifier, SignedNote};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use super::files;
use super::ledger::{Ledger, Segment, split_notes};

/// A file of the trail and the leaves of its lines.
#[derive(Debug, Clone)]
pub struct SegmentFile {
    /// Where it is.
    pub path: PathBuf,
    /// The leaf hash of each line.
    pub leaves: Vec<Hash>,
}

/// One appender's trail.
#[derive(Debug)]
pub struct Trail {
    /// The appender's name (its state folder).
    pub name: String,
    /// `<nodeId>/<APPENDER>`.
    pub origin: String,
    /// The live file.
    pub live: PathBuf,
    /// The ledger.
    pub ledger: Ledger,
    /// Its segments, in order.
    pub segments: Vec<Segment>,
    /// The file found for each segment.
    pub files: Vec<Option<SegmentFile>>,
    /// Files beside the live one that hold no known segment.
    pub unknown: Vec<PathBuf>,
    /// Its lines that announce a deleted file (`audit-file-deleted`).
    pub announced: Vec<Vec<u8>>,
}

/// The marker of the lines [`Trail::announced`] keeps.
const DELETED: &[u8] = b"\"audit-file-deleted\"";

/// What scanning one file gives: its leaves and its announcement lines.
type Scanned = std::io::Result<(Vec<Hash>, Vec<Vec<u8>>)>;

/// Scans `paths` on every core (hashing is most of verification's time).
fn scan_all(paths: Vec<PathBuf>) -> Vec<(PathBuf, Scanned)> {
    use std::sync::{Mutex, PoisonError};
    let workers = std::thread::available_parallelism().map_or(2, std::num::NonZero::get).min(paths.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let finder = memchr::memmem::Finder::new(DELETED);
    let slots: Vec<Mutex<Option<Scanned>>> = paths.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(path) = paths.get(i) else { break };
                    *slots[i].lock().unwrap_or_else(PoisonError::into_inner) = Some(files::scan(path, Some(&finder)));
                }
            });
        }
    });
    paths
        .into_iter()
        .zip(slots)
        .map(|(p, slot)| {
            let r = slot.into_inner().unwrap_or_else(PoisonError::into_inner);
            (p, r.unwrap_or_else(|| Err(std::io::Error::other("not scanned"))))
        })
        .collect()
}

impl Trail {
    /// Loads the trail whose state is in `state_dir`, resolving its
    /// relative live file against `data_dir`.
    ///
    /// # Errors
    /// When the state cannot be read.
    pub fn load(data_dir: &Path, state_dir: &Path) -> std::io::Result<Trail> {
        let ledger = Ledger::open(state_dir, false)?;
        let meta = ledger.meta()?;
        let live = if meta.file.is_absolute() { meta.file.clone() } else { data_dir.join(&meta.file) };
        let segments = ledger.segments()?;
        let by_first: HashMap<Hash, usize> = segments.iter().enumerate().map(|(i, s)| (s.first_leaf, i)).collect();
        let mut found: Vec<Option<SegmentFile>> = vec![None; segments.len()];
        let mut unknown = Vec::new();
        let mut announced = Vec::new();
        for (path, scanned) in scan_all(files::siblings(&live)) {
            let Ok((leaves, lines)) = scanned else {
                unknown.push(path);
                continue;
            };
            announced.extend(lines);
            if leaves.is_empty() {
                continue;
            }
            match by_first.get(&leaves[0]) {
                Some(&i) if found[i].is_none() => found[i] = Some(SegmentFile { path, leaves }),
                _ => unknown.push(path),
            }
        }
        // A file whose first lines were changed: matched by its next lines
        // against the leaves kept for a segment that has no file.
        let mut still = Vec::new();
        for path in unknown {
            let leaves = files::leaves(&path).unwrap_or_default();
            let head: Vec<&Hash> = leaves.iter().take(3).collect();
            let hit = (0..segments.len()).find(|&i| {
                found[i].is_none()
                    && ledger
                        .read_leaves(segments[i].start)
                        .is_some_and(|kept| kept.iter().take(3).any(|k| head.contains(&k)))
            });
            match hit {
                Some(i) => found[i] = Some(SegmentFile { path, leaves }),
                None => still.push(path),
            }
        }
        let name = state_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        Ok(Trail { name, origin: meta.origin, live, ledger, segments, files: found, unknown: still, announced })
    }

    /// The segment range `[start, end)` of segment `i` as the ledger says
    /// (the last one ends where its file ends).
    pub fn range(&self, i: usize) -> (u64, u64) {
        let start = self.segments[i].start;
        let end = self
            .segments
            .get(i + 1)
            .map_or_else(|| start + self.files[i].as_ref().map_or(0, |f| f.leaves.len() as u64), |n| n.start);
        (start, end)
    }

    /// Records in the files found.
    pub fn records(&self) -> u64 {
        self.files.iter().flatten().map(|f| f.leaves.len() as u64).sum()
    }

    /// The segment that holds leaf `index`.
    pub fn segment_of(&self, index: u64) -> Option<usize> {
        self.segments.iter().rposition(|s| s.start <= index)
    }
}

/// Leaves read from the files of a trail, by absolute index.
impl LeafSource for Trail {
    fn for_each(&self, lo: u64, hi: u64, f: &mut dyn FnMut(&Hash)) -> Result<(), TreeError> {
        let mut at = lo;
        while at < hi {
            let i = self.segment_of(at).ok_or(TreeError::Unknown(at))?;
            let file = self.files[i].as_ref().ok_or(TreeError::Unknown(at))?;
            let offset = usize::try_from(at - self.segments[i].start).map_err(|_| TreeError::Unknown(at))?;
            let available = file.leaves.get(offset..).filter(|l| !l.is_empty()).ok_or(TreeError::Unknown(at))?;
            let take = usize::try_from(hi - at).unwrap_or(usize::MAX).min(available.len());
            available[..take].iter().for_each(&mut *f);
            at += take as u64;
        }
        Ok(())
    }
}

/// A signed checkpoint found somewhere, and where.
#[derive(Debug, Clone)]
pub struct Found {
    /// The note.
    pub note: String,
    /// Where it was read.
    pub source: String,
}

/// Every note in `paths` (files or folders, read recursively): files of
/// notes separated by blank lines, and JSON lines carrying a note in a
/// `checkpoint` field (the event server's stored events).
pub fn collect_notes(paths: &[PathBuf]) -> Vec<Found> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = paths.to_vec();
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&p) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&p) else { continue };
        let source = p.display().to_string();
        let mut any_json = false;
        for line in text.lines().filter(|l| l.starts_with('{')) {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
            let note = v.get("checkpoint").or_else(|| v.get("clientEvent").and_then(|c| c.get("checkpoint")));
            if let Some(n) = note.and_then(|n| n.as_str()) {
                any_json = true;
                out.push(Found { note: n.to_owned(), source: source.clone() });
            }
        }
        if !any_json {
            out.extend(split_notes(&text).into_iter().map(|note| Found { note, source: source.clone() }));
        }
    }
    out
}

/// The origin a note claims (its first line), signed or not.
pub fn claimed_origin(note: &str) -> Option<String> {
    let body = SignedNote::parse(note).ok()?.body;
    Checkpoint::parse(&body).ok().map(|c| c.origin)
}

/// Opens a note with `key`.
///
/// # Errors
/// Why it cannot be trusted.
pub fn open(key: &NoteVerifier, note: &str) -> Result<Checkpoint, String> {
    key.open_checkpoint(note).map_err(|e| e.to_string())
}

/// A deletion a retention policy announced (`audit-file-deleted`).
#[derive(Debug, Clone)]
pub struct Deletion {
    /// The file deleted.
    pub file: String,
    /// Its records.
    pub records: u64,
}

/// Every announced deletion in `trails`' files, by the first leaf of the
/// file deleted.
pub fn deletions(trails: &[Trail]) -> HashMap<Hash, Deletion> {
    let mut out = HashMap::new();
    for line in trails.iter().flat_map(|t| &t.announced) {
        let Some(start) = memchr::memchr(b'{', line) else { continue };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&line[start..]) else { continue };
        let v = v.get("message").filter(|m| m.is_object()).unwrap_or(&v);
        let leaf = v["firstLeafHash"].as_str().and_then(|h| B64.decode(h).ok()).and_then(|h| h.try_into().ok());
        if let Some(leaf) = leaf {
            let d = Deletion {
                file: v["file"].as_str().unwrap_or_default().to_owned(),
                records: v["records"].as_u64().unwrap_or_default(),
            };
            out.insert(leaf, d);
        }
    }
    out
}
