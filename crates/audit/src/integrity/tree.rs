//! The tree of one file appender while the node writes (docs/integrity.md
//! "Tamper evidence"): every line the appender's file took is a leaf;
//! a new file (after a roll or an external rotation) starts a segment; a
//! checkpoint signs the root every interval while the tree grew, at every
//! roll and at stop, after the file and the leaves are synced, with a
//! consistency proof from the previous checkpoint.
//!
//! At open, the tree is rebuilt from the files, not trusted from memory:
//! the last segment's file is found (the live file, or a rolled one if a
//! crash came between a roll and its first new line) and hashed again, so
//! after a `kill -9` the tree is exactly the lines on disk, and agrees with
//! every checkpoint already signed (checkpoints only cover synced lines).
//!
//! Runs on the writer thread, inside the appender's [`crate::appender::LogFile`].
//! It never writes the audit files; its own state goes to the [`Ledger`].

use std::fs::File;
use std::io::{self, BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use audit_types::tlog::merkle::{Frontier, Hash, Known, leaf_hash};
use audit_types::tlog::note::{Checkpoint, NoteSigner};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use super::Integrity;
use super::files;
use super::ledger::{Ledger, LedgerLeaves, Meta, Segment};
use crate::report::CheckpointReport;

/// One appender's growing tree.
#[derive(Debug)]
pub struct AppenderTree {
    ctx: Arc<Integrity>,
    origin: String,
    live: PathBuf,
    ledger: Ledger,
    segments: Vec<Segment>,
    frontier: Frontier,
    /// The next line starts a segment (a new file).
    new_segment: bool,
    /// The current segment's leaves file.
    leaves: Option<BufWriter<File>>,
    /// The last checkpoint: its size and the frontier at it.
    last: Option<Frontier>,
    last_at: Instant,
    /// The state could not be written: said once.
    complained: bool,
}

impl AppenderTree {
    /// Opens (or starts) the tree of the appender `name` whose live file is
    /// `live` (already cut to whole lines), rebuilding it from the files.
    /// Also returns the last checkpoint written, to be sent again.
    ///
    /// # Errors
    /// When the state folder or a file cannot be read or written.
    pub fn open(ctx: &Arc<Integrity>, name: &str, live: &Path) -> io::Result<(AppenderTree, Option<CheckpointReport>)> {
        let ledger = Ledger::open(&ctx.dir.join(name), true)?;
        let origin = match ledger.meta() {
            Ok(m) => m.origin,
            Err(_) => format!("{}/{name}", ctx.node_id),
        };
        let recorded = live.strip_prefix(&ctx.data_dir).unwrap_or(live).to_path_buf();
        ledger.write_meta(&Meta { origin: origin.clone(), file: recorded })?;
        ctx.opened(&origin);
        let mut segments = ledger.segments()?;
        let live_leaves = files::leaves(live).unwrap_or_default();
        let mut frontier = Frontier::new();
        let mut continues = false;
        if let Some(last) = segments.last() {
            frontier = last.frontier.clone();
            continues = live_leaves.first() == Some(&last.first_leaf);
            let leaves = if continues { live_leaves.clone() } else { rolled_leaves(&ledger, live, last) };
            leaves.iter().for_each(|h| frontier.push(*h));
            ledger.write_leaves(last.start, &leaves)?;
        }
        let mut tree = AppenderTree {
            ctx: ctx.clone(),
            origin,
            live: live.to_path_buf(),
            ledger,
            segments: Vec::new(),
            frontier,
            new_segment: !continues,
            leaves: None,
            last: None,
            last_at: Instant::now(),
            complained: false,
        };
        if continues {
            let start = segments.last().map_or(0, |s| s.start);
            tree.leaves = Some(BufWriter::with_capacity(32 << 10, tree.ledger.leaves_appender(start)?));
        }
        tree.segments = std::mem::take(&mut segments);
        if !continues {
            for h in &live_leaves {
                tree.push(*h)?;
            }
        }
        tree.flush_leaves()?;
        let (last, again) = tree.resume();
        tree.last = last;
        Ok((tree, again))
    }

    /// The sizes of the checkpoints of this tree written so far, in order.
    fn checkpoint_sizes(&self) -> Vec<(u64, String)> {
        self.ledger
            .checkpoints()
            .into_iter()
            .filter_map(|n| {
                let body = audit_types::tlog::note::SignedNote::parse(&n).ok()?.body;
                let cp = Checkpoint::parse(&body).ok().filter(|c| c.origin == self.origin)?;
                Some((cp.size, n))
            })
            .collect()
    }

    /// The frontier at `size`, rebuilt from the kept leaves.
    fn frontier_at(&self, size: u64) -> Option<Frontier> {
        let seg = self.segments.iter().rev().find(|s| s.start <= size)?;
        let mut f = seg.frontier.clone();
        let leaves = self.ledger.read_leaves(seg.start)?;
        leaves.get(..usize::try_from(size - seg.start).ok()?)?.iter().for_each(|h| f.push(*h));
        Some(f)
    }

    /// The frontier at the last checkpoint written, and that checkpoint
    /// again (with a proof from the one before), to be sent once more: a
    /// crash may have lost it between the ledger and the network targets'
    /// spools, and a witness must see every step. A witness that has it
    /// already takes it again as it is.
    fn resume(&self) -> (Option<Frontier>, Option<CheckpointReport>) {
        let written = self.checkpoint_sizes();
        let Some((size, note)) = written.last().cloned() else { return (None, None) };
        if size > self.frontier.size() {
            log::error!(
                "Audit integrity of {}: the last checkpoint signed {size} records but the files hold {}; \
                 the verifier will report them truncated",
                self.origin,
                self.frontier.size()
            );
            return (None, None);
        }
        let last = self.frontier_at(size);
        let before = written.len().checked_sub(2).map(|i| written[i].0);
        let (previous_size, proof) = match before.and_then(|b| Some((b, self.frontier_at(b)?))) {
            Some((b, f)) => {
                let source = LedgerLeaves { ledger: &self.ledger, segments: &self.segments };
                match Known::new(&f, &source).consistency_proof(b, size) {
                    Ok(p) => (Some(b), p.iter().map(|h| B64.encode(h)).collect()),
                    Err(_) => (None, Vec::new()),
                }
            }
            None => (None, Vec::new()),
        };
        let report =
            CheckpointReport { origin: self.origin.clone(), size, note, previous_size, consistency_proof: proof };
        (last, Some(report))
    }

    /// The tree's origin (`<nodeId>/<APPENDER>`).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Leaves so far.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// The file was (re)opened empty: its first line starts a segment.
    pub fn new_file(&mut self) {
        if let Err(e) = self.flush_leaves() {
            self.complain(&e);
        }
        self.new_segment = true;
    }

    fn push(&mut self, h: Hash) -> io::Result<()> {
        if self.new_segment {
            self.flush_leaves()?;
            let seg = Segment { start: self.frontier.size(), first_leaf: h, frontier: self.frontier.clone() };
            self.ledger.add_segment(&seg)?;
            self.ledger.write_leaves(seg.start, &[])?;
            self.leaves = Some(BufWriter::with_capacity(32 << 10, self.ledger.leaves_appender(seg.start)?));
            self.segments.push(seg);
            self.new_segment = false;
        }
        self.frontier.push(h);
        if let Some(w) = self.leaves.as_mut() {
            w.write_all(&h)?;
        }
        Ok(())
    }

    /// Lines the file took (whole lines, each ending with a newline).
    pub fn written(&mut self, bytes: &[u8]) {
        let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        if bytes.is_empty() {
            return;
        }
        for line in lines(body) {
            if let Err(e) = self.push(leaf_hash(line)) {
                self.complain(&e);
            }
        }
    }

    fn complain(&mut self, e: &io::Error) {
        if !self.complained {
            self.complained = true;
            log::error!("Audit integrity of {}: cannot write its state: {e}", self.origin);
        }
    }

    fn flush_leaves(&mut self) -> io::Result<()> {
        if let Some(w) = self.leaves.as_mut() {
            w.flush()?;
            w.get_ref().sync_data()?;
        }
        Ok(())
    }

    /// Whether a checkpoint is due: the tree grew and the interval passed.
    pub fn due(&self) -> bool {
        self.grew() && self.last_at.elapsed() >= self.ctx.interval
    }

    fn grew(&self) -> bool {
        self.frontier.size() > self.last.as_ref().map_or(0, Frontier::size)
    }

    /// Takes what a checkpoint of the tree as it is needs, if it grew since
    /// the last one: cheap, on the writer thread (the leaves are handed to
    /// the OS; syncing, proving and signing happen in [`Pending::finish`],
    /// on the integrity thread). `file` is a handle on the appender's file,
    /// to be synced before the root is signed.
    pub fn prepare(&mut self, file: Option<File>) -> Option<Pending> {
        self.last_at = Instant::now();
        if !self.grew() {
            return None;
        }
        let mut sync: Vec<File> = file.into_iter().collect();
        if let Some(w) = self.leaves.as_mut() {
            if let Err(e) = w.flush() {
                self.complain(&e);
                return None;
            }
            sync.extend(w.get_ref().try_clone().ok());
        }
        let previous = self.last.replace(self.frontier.clone());
        Some(Pending {
            ledger: self.ledger.clone(),
            segments: self.segments.clone(),
            checkpoint: Checkpoint {
                origin: self.origin.clone(),
                size: self.frontier.size(),
                root: self.frontier.root(),
            },
            previous,
            sync,
        })
    }

    /// Deletes the kept leaves of segments whose file is gone (retention).
    pub fn prune(&mut self) {
        let present: Vec<Hash> = files::siblings(&self.live).iter().filter_map(|p| files::first_leaf(p)).collect();
        let keep_from = self.segments.len().saturating_sub(2);
        for s in &self.segments[..keep_from] {
            if !present.contains(&s.first_leaf) {
                self.ledger.drop_leaves(s.start);
            }
        }
    }
}

/// The leaves of the segment `last` when the live file does not continue
/// it: its file was rolled (found by its first line among the siblings),
/// else what the ledger kept.
fn rolled_leaves(ledger: &Ledger, live: &Path, last: &Segment) -> Vec<Hash> {
    for path in files::siblings(live) {
        if files::first_leaf(&path) == Some(last.first_leaf)
            && let Ok(leaves) = files::leaves(&path)
        {
            return leaves;
        }
    }
    ledger.read_leaves(last.start).unwrap_or_default()
}

/// A checkpoint taken on the writer thread, to be synced, proven, signed
/// and written on the integrity thread.
#[derive(Debug)]
pub struct Pending {
    ledger: Ledger,
    segments: Vec<Segment>,
    checkpoint: Checkpoint,
    /// The frontier at the previous checkpoint (the proof starts there).
    previous: Option<Frontier>,
    /// The appender's file and the leaves file, synced before signing.
    sync: Vec<File>,
}

impl Pending {
    /// The tree's origin.
    pub fn origin(&self) -> &str {
        &self.checkpoint.origin
    }

    /// Syncs, signs with `signer`, proves consistency with the previous
    /// checkpoint, writes the note to the ledger; the report to send.
    ///
    /// # Errors
    /// When a file cannot be synced or the note written (nothing is signed
    /// then, or the note is not kept).
    pub fn finish(self, signer: &NoteSigner) -> io::Result<CheckpointReport> {
        for f in &self.sync {
            f.sync_data()?;
        }
        let cp = &self.checkpoint;
        let note = signer.sign(&cp.body());
        let (previous_size, proof) = match &self.previous {
            Some(old) => {
                let source = LedgerLeaves { ledger: &self.ledger, segments: &self.segments };
                match Known::new(old, &source).consistency_proof(old.size(), cp.size) {
                    Ok(p) => (Some(old.size()), p),
                    Err(e) => {
                        log::error!("Audit integrity of {}: no consistency proof from {}: {e}", cp.origin, old.size());
                        (None, Vec::new())
                    }
                }
            }
            None => (None, Vec::new()),
        };
        self.ledger.add_checkpoint(&note)?;
        Ok(CheckpointReport {
            origin: cp.origin.clone(),
            size: cp.size,
            note,
            previous_size,
            consistency_proof: proof.iter().map(|h| B64.encode(h)).collect(),
        })
    }
}

/// The lines of `body` split at every newline, as `<[u8]>::split` would:
/// memchr finds the newlines (a byte-by-byte split cost a few thousand
/// instructions per record, as much as the rest of the tree's work besides
/// SHA-256).
fn lines(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    memchr::memchr_iter(b'\n', body).chain(std::iter::once(body.len())).map(move |end| {
        let line = &body[start..end];
        start = end + 1;
        line
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn lines_split_like_the_slice_split() {
        for body in [&b""[..], b"a", b"a\nb", b"\n", b"a\n\nb", b"\n\na\n", "é\nü".as_bytes()] {
            let ours: Vec<&[u8]> = super::lines(body).collect();
            let std: Vec<&[u8]> = body.split(|b| *b == b'\n').collect();
            assert_eq!(ours, std, "{body:?}");
        }
    }
}
