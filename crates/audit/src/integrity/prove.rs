//! `apinode-admin audit-prove REQUEST_ID` (docs/integrity.md "Proof of one
//! record"): finds the record's line in the appenders' files, and writes a
//! self-contained proof that it is leaf `leafIndex` of the tree signed in
//! the newest checkpoint covering it: `{"origin", "leafIndex", "treeSize",
//! "line", "inclusionProof", "checkpoint"}`. Anyone with the verifier key
//! can check it without the node. Reads only.

use std::path::{Path, PathBuf};

use audit_types::tlog::merkle::{Known, leaf_hash, verify_inclusion};
use audit_types::tlog::note::NoteVerifier;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;

use super::files;
use super::trail::{self, Trail};

/// A proof of one record.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Proof {
    /// The tree's origin.
    pub origin: String,
    /// The record's leaf index.
    pub leaf_index: u64,
    /// The size of the signed tree.
    pub tree_size: u64,
    /// The record's line, exactly as in the file (no newline).
    pub line: String,
    /// The RFC 9162 audit path (base64 hashes).
    pub inclusion_proof: Vec<String>,
    /// The signed checkpoint (C2SP signed note).
    pub checkpoint: String,
    /// The file the line is in (for people; not part of the proof).
    pub file: String,
}

/// Why no proof could be made.
#[derive(Debug, thiserror::Error)]
pub enum ProveError {
    /// The state cannot be read.
    #[error("cannot read the audit integrity state: {0}")]
    Io(#[from] std::io::Error),
    /// No line carries the id.
    #[error("no audit record has the request id {0:?}")]
    NotFound(String),
    /// The record is newer than every checkpoint.
    #[error(
        "the record {0:?} is not covered by a signed checkpoint yet (checkpoints are signed every few seconds while records arrive; try again)"
    )]
    NotSigned(String),
    /// The files do not give the signed root.
    #[error("the files of {0} do not match its signed checkpoint: run audit-verify")]
    Mismatch(String),
    /// A hash needed is not known.
    #[error("cannot build the proof: {0}")]
    Tree(#[from] audit_types::tlog::TreeError),
}

/// Finds the record with `request_id` and proves it.
///
/// # Errors
/// [`ProveError`].
pub fn prove(data_dir: &Path, request_id: &str, key: &NoteVerifier) -> Result<Proof, ProveError> {
    let state = data_dir.join(super::STATE_DIR);
    let mut dirs: Vec<PathBuf> =
        std::fs::read_dir(&state)?.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    let needle = format!("\"requestId\":\"{request_id}\"");
    let finder = memchr::memmem::Finder::new(needle.as_bytes());
    for dir in dirs {
        let Ok(t) = Trail::load(data_dir, &dir) else { continue };
        for (i, file) in t.files.iter().enumerate() {
            let Some(file) = file else { continue };
            let mut hit: Option<(u64, String)> = None;
            let mut n = 0u64;
            files::for_each_line(&file.path, |line| {
                if finder.find(line).is_some() {
                    hit = Some((n, String::from_utf8_lossy(line).into_owned()));
                    return false;
                }
                n += 1;
                true
            })?;
            if let Some((offset, line)) = hit {
                let index = t.segments[i].start + offset;
                return prove_leaf(&t, index, line, &file.path, request_id, key);
            }
        }
    }
    Err(ProveError::NotFound(request_id.to_owned()))
}

fn prove_leaf(
    t: &Trail,
    index: u64,
    line: String,
    path: &Path,
    id: &str,
    key: &NoteVerifier,
) -> Result<Proof, ProveError> {
    let newest = t
        .ledger
        .checkpoints()
        .into_iter()
        .filter_map(|note| trail::open(key, &note).ok().map(|cp| (cp, note)))
        .filter(|(cp, _)| cp.origin == t.origin && cp.size > index)
        .max_by_key(|(cp, _)| cp.size);
    let Some((cp, note)) = newest else { return Err(ProveError::NotSigned(id.to_owned())) };
    // Known hashes: the frontier kept before the first segment of the run
    // of files (no gap) that reaches the record.
    let mut first = t.segment_of(index).unwrap_or(0);
    while first > 0 && t.files[first - 1].is_some() {
        first -= 1;
    }
    let known = Known::new(&t.segments[first].frontier, t);
    if known.root(cp.size)? != cp.root {
        return Err(ProveError::Mismatch(t.origin.clone()));
    }
    let proof = known.inclusion_proof(index, cp.size)?;
    debug_assert!(verify_inclusion(index, cp.size, &leaf_hash(line.as_bytes()), &proof, &cp.root));
    Ok(Proof {
        origin: t.origin.clone(),
        leaf_index: index,
        tree_size: cp.size,
        line,
        inclusion_proof: proof.iter().map(|h| B64.encode(h)).collect(),
        checkpoint: note,
        file: path.display().to_string(),
    })
}
