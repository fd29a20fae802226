//! The on-disk state of one appender's tree, under
//! `run/audit/integrity/<APPENDER>/` (docs/integrity.md "Tamper evidence"):
//!
//! - `meta.json`: the origin and the appender's live file, for the verifier;
//! - `segments`: one JSON line per file the appender started (a segment):
//!   its first leaf index, the leaf hash of its first line (how a file is
//!   recognised whatever it was renamed to) and the tree's frontier before
//!   it (what stands for older leaves once their files are deleted);
//! - `leaves/<start>`: the leaf hashes of a segment, 32 bytes each (how a
//!   verifier says which line changed, once their root is checked against a
//!   signed checkpoint; kept while the segment's file exists);
//! - `checkpoints`: every signed checkpoint, notes separated by a blank line.
//!
//! Owns these files' formats; it decides nothing about when they are written.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead as _, BufReader, Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use audit_types::tlog::merkle::{Frontier, Hash, LeafSource, TreeError};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

/// One file of an appender, as the tree knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Index of its first leaf.
    pub start: u64,
    /// The leaf hash of its first line.
    pub first_leaf: Hash,
    /// The tree's frontier of the `start` leaves before it.
    pub frontier: Frontier,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SegmentLine {
    start: u64,
    first_leaf: String,
    frontier: Vec<String>,
}

/// What the verifier needs to find an appender's files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// `<nodeId>/<APPENDER>`.
    pub origin: String,
    /// The appender's live file, as configured.
    pub file: PathBuf,
}

/// The state folder of one appender's tree.
#[derive(Debug, Clone)]
pub struct Ledger {
    dir: PathBuf,
}

fn decode_hash(s: &str) -> Option<Hash> {
    B64.decode(s).ok()?.try_into().ok()
}

fn bad(path: &Path, why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{}: {why}", path.display()))
}

impl Ledger {
    /// The ledger in `dir` (created, 0750, when `create`).
    ///
    /// # Errors
    /// When the folder cannot be created.
    pub fn open(dir: &Path, create: bool) -> io::Result<Ledger> {
        if create {
            std::fs::DirBuilder::new().recursive(true).mode(0o750).create(dir.join("leaves"))?;
        }
        Ok(Ledger { dir: dir.to_path_buf() })
    }

    /// Its folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `meta.json`.
    ///
    /// # Errors
    /// The I/O error.
    pub fn write_meta(&self, meta: &Meta) -> io::Result<()> {
        let path = self.dir.join("meta.json");
        if std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Meta>(&b).ok()).as_ref() == Some(meta) {
            return Ok(());
        }
        std::fs::write(&path, serde_json::to_vec_pretty(meta).map_err(io::Error::other)?)
    }

    /// Reads `meta.json`.
    ///
    /// # Errors
    /// When it is missing or malformed.
    pub fn meta(&self) -> io::Result<Meta> {
        let path = self.dir.join("meta.json");
        serde_json::from_slice(&std::fs::read(&path)?).map_err(|e| bad(&path, &e.to_string()))
    }

    /// Every segment, in order. A last line cut by a crash is ignored.
    ///
    /// # Errors
    /// When the file cannot be read or a whole line is malformed.
    pub fn segments(&self) -> io::Result<Vec<Segment>> {
        let path = self.dir.join("segments");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let whole = text.rfind('\n').map_or("", |i| &text[..i]);
        let mut out: Vec<Segment> = Vec::new();
        for line in whole.lines().filter(|l| !l.is_empty()) {
            let s: SegmentLine = serde_json::from_str(line).map_err(|e| bad(&path, &e.to_string()))?;
            let hashes: Option<Vec<Hash>> = s.frontier.iter().map(|h| decode_hash(h)).collect();
            let frontier = hashes
                .ok_or_else(|| bad(&path, "a frontier hash is not base64"))
                .and_then(|h| Frontier::from_parts(s.start, h).map_err(|e| bad(&path, &e.to_string())))?;
            let first_leaf = decode_hash(&s.first_leaf).ok_or_else(|| bad(&path, "a first leaf is not base64"))?;
            if out.last().is_some_and(|p| p.start >= s.start) {
                return Err(bad(&path, "segments are not in order"));
            }
            out.push(Segment { start: s.start, first_leaf, frontier });
        }
        Ok(out)
    }

    /// Appends a segment (synced).
    ///
    /// # Errors
    /// The I/O error.
    pub fn add_segment(&self, s: &Segment) -> io::Result<()> {
        let line = SegmentLine {
            start: s.start,
            first_leaf: B64.encode(s.first_leaf),
            frontier: s.frontier.nodes().iter().map(|h| B64.encode(h)).collect(),
        };
        let mut text = serde_json::to_string(&line).map_err(io::Error::other)?;
        text.push('\n');
        let mut f = append(&self.dir.join("segments"))?;
        f.write_all(text.as_bytes())?;
        f.sync_data()
    }

    /// The leaves file of the segment starting at `start`.
    pub fn leaves_path(&self, start: u64) -> PathBuf {
        self.dir.join("leaves").join(format!("{start:020}"))
    }

    /// Replaces the leaves of a segment.
    ///
    /// # Errors
    /// The I/O error.
    pub fn write_leaves(&self, start: u64, leaves: &[Hash]) -> io::Result<()> {
        let mut f =
            OpenOptions::new().create(true).write(true).truncate(true).mode(0o640).open(self.leaves_path(start))?;
        f.write_all(leaves.as_flattened())?;
        f.sync_data()
    }

    /// Opens a segment's leaves file for appending.
    ///
    /// # Errors
    /// The I/O error.
    pub fn leaves_appender(&self, start: u64) -> io::Result<File> {
        append(&self.leaves_path(start))
    }

    /// The leaves kept for a segment (whole hashes only), if any.
    pub fn read_leaves(&self, start: u64) -> Option<Vec<Hash>> {
        let bytes = std::fs::read(self.leaves_path(start)).ok()?;
        Some(bytes.chunks_exact(32).map(|c| c.try_into().expect("32 bytes")).collect())
    }

    /// Deletes the leaves of a segment whose file is gone.
    pub fn drop_leaves(&self, start: u64) {
        let _ = std::fs::remove_file(self.leaves_path(start));
    }

    /// Appends a signed checkpoint (synced).
    ///
    /// # Errors
    /// The I/O error.
    pub fn add_checkpoint(&self, note: &str) -> io::Result<()> {
        let mut f = append(&self.checkpoints_path())?;
        let at = f.seek(SeekFrom::End(0))?;
        let text = if at == 0 { note.to_owned() } else { format!("\n{note}") };
        f.write_all(text.as_bytes())?;
        f.sync_data()
    }

    /// The checkpoints file.
    pub fn checkpoints_path(&self) -> PathBuf {
        self.dir.join("checkpoints")
    }

    /// Every note of the checkpoints file, in order.
    pub fn checkpoints(&self) -> Vec<String> {
        std::fs::read_to_string(self.checkpoints_path()).map(|t| split_notes(&t)).unwrap_or_default()
    }
}

fn append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).mode(0o640).open(path)
}

/// Splits text holding signed notes separated by blank lines (a note is a
/// body, a blank line and its signature lines).
pub fn split_notes(text: &str) -> Vec<String> {
    let mut notes = Vec::new();
    let mut current = String::new();
    let mut in_signatures = false;
    for line in text.split_inclusive('\n') {
        let blank = line.trim_end_matches('\n').is_empty();
        if blank {
            if in_signatures {
                notes.push(std::mem::take(&mut current));
                in_signatures = false;
            } else if !current.is_empty() {
                current.push_str(line);
                in_signatures = true;
            }
            continue;
        }
        if in_signatures && !line.starts_with('\u{2014}') {
            notes.push(std::mem::take(&mut current));
            in_signatures = false;
        }
        current.push_str(line);
    }
    if in_signatures && !current.is_empty() {
        notes.push(current);
    }
    notes
}

/// Leaves read from a ledger's leaves files (the node's consistency proofs).
pub struct LedgerLeaves<'a> {
    /// The ledger.
    pub ledger: &'a Ledger,
    /// Its segments.
    pub segments: &'a [Segment],
}

impl LeafSource for LedgerLeaves<'_> {
    fn for_each(&self, lo: u64, hi: u64, f: &mut dyn FnMut(&Hash)) -> Result<(), TreeError> {
        let read_err = |why: String| TreeError::Read { lo, hi, why };
        let mut at = lo;
        while at < hi {
            let seg = self.segments.iter().rev().find(|s| s.start <= at).ok_or(TreeError::Unknown(at))?;
            let file = File::open(self.ledger.leaves_path(seg.start)).map_err(|e| read_err(e.to_string()))?;
            let mut r = BufReader::with_capacity(64 << 10, file);
            r.seek(SeekFrom::Start((at - seg.start) * 32)).map_err(|e| read_err(e.to_string()))?;
            let mut h = [0u8; 32];
            let mut read_any = false;
            while at < hi {
                match r.read_exact(&mut h) {
                    Ok(()) => {
                        f(&h);
                        at += 1;
                        read_any = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(read_err(e.to_string())),
                }
            }
            if !read_any {
                return Err(TreeError::Unknown(at));
            }
            let _ = r.fill_buf();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_split_at_blank_lines_between_notes_only() {
        let a = "o\n1\nAAAA\n\n\u{2014} n abc\n";
        let b = "o\n2\nBBBB\n\n\u{2014} n def\n\u{2014} w ghi\n";
        assert_eq!(split_notes(&format!("{a}\n{b}")), vec![a.to_owned(), b.to_owned()]);
        assert_eq!(split_notes(a), vec![a.to_owned()]);
        assert!(split_notes("").is_empty());
    }

    #[test]
    fn segments_and_leaves_round_trip_and_a_cut_line_is_ignored() {
        let dir = tempfile::tempdir().expect("tmp");
        let l = Ledger::open(dir.path(), true).expect("ledger");
        let mut f = Frontier::new();
        for i in 0..5u8 {
            f.push([i; 32]);
        }
        let s = Segment { start: 5, first_leaf: [9; 32], frontier: f };
        l.add_segment(&s).expect("add");
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("segments"))
            .and_then(|mut f| f.write_all(b"{\"start\":9,"))
            .expect("cut");
        assert_eq!(l.segments().expect("read"), vec![s.clone()]);
        l.write_leaves(5, &[[1; 32], [2; 32]]).expect("leaves");
        let segs = [s];
        let src = LedgerLeaves { ledger: &l, segments: &segs };
        let mut got = Vec::new();
        src.for_each(5, 7, &mut |h| got.push(*h)).expect("read");
        assert_eq!(got, vec![[1; 32], [2; 32]]);
        assert!(src.for_each(5, 8, &mut |_| {}).is_err());
    }
}
