//! The event server as witness of the nodes' audit checkpoints
//! (docs/integrity.md "The event server as witness"): an `audit-checkpoint`
//! event of a node listed in `witness.nodes` is accepted only when its
//! signed note verifies with that node's key and is consistent with the
//! last checkpoint accepted for its origin (the RFC 6962 proof it carries).
//! The newest accepted note of each origin is kept in
//! `<root>/audit-integrity/latest/<origin with '/' as '_'>`, so a verifier
//! can use the witness's view of every node, and so that a node (or anyone
//! with its disk) cannot rewrite or shorten its past unseen.
//!
//! Checks run with the store's lock held, so two batches of one origin are
//! judged one after the other. Never stores events; the store does.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use audit_types::tlog::merkle::{Hash, verify_consistency};
use audit_types::tlog::note::{Checkpoint, NoteVerifier, SignedNote};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;

use crate::ingest::Event;

/// The topic of checkpoints.
pub const TOPIC: &str = "audit-integrity";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Body {
    msg_type: Option<String>,
    node_id: Option<String>,
    origin: Option<String>,
    checkpoint: Option<String>,
    previous_tree_size: Option<u64>,
    #[serde(default)]
    consistency_proof: Vec<String>,
}

/// A checkpoint accepted, to be kept as its origin's latest.
#[derive(Debug, Clone)]
pub struct Accepted {
    origin: String,
    note: String,
    roots: Vec<PathBuf>,
}

/// Where the latest notes are kept: every root whose destination takes
/// the node's checkpoints.
fn latest_path(root: &Path, origin: &str) -> PathBuf {
    root.join(TOPIC).join("latest").join(origin.replace('/', "_"))
}

/// The checkpoint last accepted for `origin`, if any.
fn latest(roots: &[PathBuf], origin: &str, key: &NoteVerifier) -> Option<Checkpoint> {
    roots.iter().find_map(|r| {
        let note = std::fs::read_to_string(latest_path(r, origin)).ok()?;
        key.open_checkpoint(&note).ok()
    })
}

/// Judges the checkpoint events of a batch, in order. `roots_of` gives the
/// roots an event is stored under; `is_duplicate` says whether the store
/// has the event already (a resent event is not judged again).
///
/// # Errors
/// The first refused event, named by its index, and why.
pub fn check(
    nodes: &BTreeMap<String, NoteVerifier>,
    events: &[Event],
    roots_of: &dyn Fn(&Event) -> Vec<PathBuf>,
    is_duplicate: &dyn Fn(&Event) -> bool,
) -> Result<Vec<Accepted>, String> {
    let mut accepted: Vec<Accepted> = Vec::new();
    let mut now: HashMap<String, Checkpoint> = HashMap::new();
    for (i, event) in events.iter().enumerate() {
        if event.topic != TOPIC || is_duplicate(event) {
            continue;
        }
        let body: Body = serde_json::from_str(event.raw.get()).map_err(|e| format!("[{i}]: {e}"))?;
        if body.msg_type.as_deref() != Some("audit-checkpoint") {
            continue;
        }
        let Some(node) = body.node_id.as_deref() else { return Err(format!("[{i}]: no nodeId")) };
        let Some(key) = nodes.get(node) else { continue };
        let note = body.checkpoint.ok_or_else(|| format!("[{i}]: no checkpoint"))?;
        let cp = key.open_checkpoint(&note).map_err(|e| format!("[{i}]: checkpoint of node {node}: {e}"))?;
        if body.origin.as_deref() != Some(cp.origin.as_str()) || !cp.origin.starts_with(&format!("{node}/")) {
            return Err(format!("[{i}]: the checkpoint's origin {:?} is not one of node {node}'s", cp.origin));
        }
        let roots = roots_of(event);
        let before = now.get(&cp.origin).cloned().or_else(|| latest(&roots, &cp.origin, key));
        if let Some(old) = &before {
            judge(old, &cp, body.previous_tree_size, &body.consistency_proof).map_err(|e| format!("[{i}]: {e}"))?;
        }
        now.insert(cp.origin.clone(), cp.clone());
        accepted.retain(|a| a.origin != cp.origin);
        accepted.push(Accepted { origin: cp.origin, note, roots });
    }
    Ok(accepted)
}

fn judge(old: &Checkpoint, new: &Checkpoint, previous: Option<u64>, proof: &[String]) -> Result<(), String> {
    let origin = &new.origin;
    if new.size == old.size {
        return if new.root == old.root {
            Ok(())
        } else {
            Err(format!("{origin}: a second checkpoint of size {} with another root: the log was rewritten", new.size))
        };
    }
    if new.size < old.size {
        return Err(format!(
            "{origin}: a checkpoint of size {} after one of size {} was accepted: the log was cut",
            new.size, old.size
        ));
    }
    if previous != Some(old.size) {
        return Err(format!(
            "{origin}: the consistency proof starts at {} but the last checkpoint accepted has size {}",
            previous.map_or_else(|| "nothing".into(), |p| p.to_string()),
            old.size
        ));
    }
    let hashes: Option<Vec<Hash>> = proof.iter().map(|h| B64.decode(h).ok()?.try_into().ok()).collect();
    let hashes = hashes.ok_or_else(|| format!("{origin}: the consistency proof is not base64 SHA-256 hashes"))?;
    if verify_consistency(old.size, new.size, &old.root, &new.root, &hashes) {
        Ok(())
    } else {
        Err(format!(
            "{origin}: the tree of size {} is not an extension of the one of size {} accepted before",
            new.size, old.size
        ))
    }
}

/// Keeps each accepted note as its origin's latest (once its event is stored).
///
/// # Errors
/// When a file cannot be written.
pub fn keep(accepted: &[Accepted]) -> std::io::Result<()> {
    for a in accepted {
        for root in &a.roots {
            let path = latest_path(root, &a.origin);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let staged = path.with_extension("tmp");
            let mut f = std::fs::File::create(&staged)?;
            f.write_all(a.note.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&staged, &path)?;
        }
        log::info!("Witnessed {}", SignedNote::parse(&a.note).map(|n| n.body.replace('\n', " ")).unwrap_or_default());
    }
    Ok(())
}
