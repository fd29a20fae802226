//! `apinode-admin audit-verify` (docs/integrity.md "Verification"): every
//! appender's tree is computed again from its files and compared with every
//! signed checkpoint given (the local ones, plus off-box copies such as the
//! event server's). The answer per appender is `ok`, or the problems found
//! with their kind, file and line.
//!
//! How a problem is located: the roots computed from the files say that
//! something changed before a checkpoint. The leaf hashes the node kept
//! (`leaves/`) are then checked against the same signed checkpoints; when
//! they match, they are the authentic lines, and comparing them with the
//! files names the first line modified, inserted, deleted or reordered.
//! When they do not (the state was altered too), the problem is reported
//! at the first line after the last checkpoint that still holds.
//!
//! Reads only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use audit_types::tlog::merkle::{Frontier, Hash};
use audit_types::tlog::note::NoteVerifier;
use serde::Serialize;

use super::trail::{self, Deletion, Trail};

/// What went wrong, as the report names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A line differs from what was signed.
    Modified,
    /// A line that was never signed sits among signed ones.
    Inserted,
    /// A signed line is gone.
    Deleted,
    /// Signed lines are in another order.
    Reordered,
    /// The files hold fewer records than a signed checkpoint.
    Truncated,
    /// A rolled file is gone without an announced deletion.
    FileMissing,
    /// A checkpoint not signed by the key.
    BadSignature,
    /// Two signed checkpoints that cannot both be true.
    InconsistentCheckpoints,
}

/// One problem.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// Its kind.
    pub kind: Kind,
    /// The file, when one is concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The line (from 1), when one is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// In words.
    pub detail: String,
}

/// The result for one appender.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppenderReport {
    /// The appender.
    pub appender: String,
    /// Its origin.
    pub origin: String,
    /// `ok` or `failed`.
    pub status: &'static str,
    /// Records in its files.
    pub records: u64,
    /// Signed checkpoints checked against the files.
    pub checkpoints_checked: usize,
    /// The largest tree size checked.
    pub verified_size: u64,
    /// Records after the newest checkpoint (not signed yet).
    pub unsigned_records: u64,
    /// Rolled files deleted by retention, as announced.
    pub deleted_by_retention: Vec<String>,
    /// What is wrong.
    pub problems: Vec<Problem>,
}

/// The whole answer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// `ok` when every appender is.
    pub status: &'static str,
    /// The verifier key used.
    pub key: String,
    /// Where it came from.
    pub key_source: String,
    /// Per appender.
    pub appenders: Vec<AppenderReport>,
    /// Records read.
    pub records: u64,
}

impl Report {
    /// Whether everything verified.
    pub fn ok(&self) -> bool {
        self.status == "ok"
    }
}

/// Verifies every trail under `data_dir` against its local checkpoints and
/// those in `extra`, with `key`.
///
/// # Errors
/// When the state folder cannot be read.
pub fn verify(data_dir: &Path, extra: &[PathBuf], key: &NoteVerifier, key_source: &str) -> std::io::Result<Report> {
    let state = data_dir.join(super::STATE_DIR);
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&state)?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    let trails: Vec<Trail> = dirs.iter().filter_map(|d| Trail::load(data_dir, d).ok()).collect();
    let deletions = trail::deletions(&trails);
    let external = trail::collect_notes(extra);
    let appenders: Vec<AppenderReport> = trails.iter().map(|t| check(t, &external, &deletions, key)).collect();
    let ok = appenders.iter().all(|a| a.problems.is_empty());
    Ok(Report {
        status: if ok { "ok" } else { "failed" },
        key: key.to_text(),
        key_source: key_source.to_owned(),
        records: appenders.iter().map(|a| a.records).sum(),
        appenders,
    })
}

fn problem(kind: Kind, file: Option<&Path>, line: Option<u64>, detail: String) -> Problem {
    Problem { kind, file: file.map(|f| f.display().to_string()), line, detail }
}

/// The signed checkpoints of `t`'s origin, by size; bad and conflicting
/// ones become problems.
fn checkpoints(
    t: &Trail,
    external: &[trail::Found],
    key: &NoteVerifier,
    out: &mut Vec<Problem>,
) -> BTreeMap<u64, Hash> {
    let mut notes: Vec<trail::Found> = t
        .ledger
        .checkpoints()
        .into_iter()
        .map(|note| trail::Found { note, source: t.ledger.checkpoints_path().display().to_string() })
        .collect();
    notes.extend(external.iter().filter(|f| trail::claimed_origin(&f.note).as_deref() == Some(&t.origin)).cloned());
    let mut by_size: BTreeMap<u64, (Hash, String)> = BTreeMap::new();
    for f in notes {
        match trail::open(key, &f.note) {
            Ok(cp) if cp.origin == t.origin => match by_size.get(&cp.size) {
                Some((root, source)) if *root != cp.root => out.push(problem(
                    Kind::InconsistentCheckpoints,
                    None,
                    None,
                    format!(
                        "two signed checkpoints of size {} have different roots ({source} and {})",
                        cp.size, f.source
                    ),
                )),
                _ => {
                    by_size.insert(cp.size, (cp.root, f.source));
                }
            },
            Ok(_) => {}
            Err(e) => out.push(problem(Kind::BadSignature, None, None, format!("a checkpoint in {}: {e}", f.source))),
        }
    }
    by_size.into_iter().map(|(s, (r, _))| (s, r)).collect()
}

/// The roots at the checkpoint sizes that `leaves_of` lets compute:
/// segment by segment, starting from a segment's kept frontier only at the
/// first segment or after a gap (a file that is gone). A file holding more
/// or fewer lines than its segment does not restart anything: the lines
/// after it shift, and the next roots differ from the signed ones. `None`
/// for sizes inside a gap.
fn roots_at(t: &Trail, sizes: &[u64], leaves_of: &dyn Fn(usize) -> Option<Vec<Hash>>) -> BTreeMap<u64, Option<Hash>> {
    let mut out: BTreeMap<u64, Option<Hash>> = sizes.iter().map(|s| (*s, None)).collect();
    let mut cur: Option<Frontier> = None;
    let mut wanted = sizes.iter().copied().peekable();
    for (i, seg) in t.segments.iter().enumerate() {
        let Some(leaves) = leaves_of(i) else {
            cur = None;
            continue;
        };
        if cur.is_none() {
            cur = Some(seg.frontier.clone());
        }
        let f = cur.as_mut().expect("set above");
        while wanted.peek().is_some_and(|s| *s < f.size()) {
            wanted.next();
        }
        if wanted.peek() == Some(&f.size()) {
            out.insert(f.size(), Some(f.root()));
        }
        for h in &leaves {
            f.push(*h);
            while wanted.peek().is_some_and(|s| *s < f.size()) {
                wanted.next();
            }
            if wanted.peek() == Some(&f.size()) {
                out.insert(f.size(), Some(f.root()));
            }
        }
    }
    out
}

fn check(
    t: &Trail,
    external: &[trail::Found],
    deletions: &std::collections::HashMap<Hash, Deletion>,
    key: &NoteVerifier,
) -> AppenderReport {
    let mut problems = Vec::new();
    let signed = checkpoints(t, external, key, &mut problems);
    let mut deleted_by_retention = Vec::new();
    for (i, seg) in t.segments.iter().enumerate() {
        if t.files[i].is_some() {
            continue;
        }
        let (start, end) = t.range(i);
        if let Some(d) = deletions.get(&seg.first_leaf) {
            deleted_by_retention.push(format!("{} ({} records)", d.file, d.records));
        } else {
            let unknown = if t.unknown.is_empty() {
                String::new()
            } else {
                format!("; files holding no known segment: {}", names(&t.unknown))
            };
            problems.push(problem(
                Kind::FileMissing,
                None,
                None,
                format!(
                    "the file holding records {start}..{end} is gone and no retention deletion announced it{unknown}"
                ),
            ));
        }
    }
    let sizes: Vec<u64> = signed.keys().copied().collect();
    let actual = roots_at(t, &sizes, &|i| t.files[i].as_ref().map(|f| f.leaves.clone()));
    let total_end = t.segments.last().map_or(0, |s| s.start)
        + t.files.last().and_then(|f| f.as_ref()).map_or(0, |f| f.leaves.len() as u64);
    let mut checked = 0;
    let mut verified = 0;
    let mut first_bad: Option<u64> = None;
    let mut last_good = 0;
    for (size, root) in &signed {
        match actual.get(size).copied().flatten() {
            Some(r) if r == *root => {
                checked += 1;
                verified = *size;
                if first_bad.is_none() {
                    last_good = *size;
                }
            }
            Some(_) => {
                checked += 1;
                first_bad.get_or_insert(*size);
            }
            None if *size > total_end => {
                first_bad.get_or_insert(*size);
            }
            None => {}
        }
    }
    if let Some(bad) = first_bad {
        problems.extend(locate(t, &signed, last_good, bad, total_end));
    }
    let newest = signed.keys().next_back().copied().unwrap_or(0);
    AppenderReport {
        appender: t.name.clone(),
        origin: t.origin.clone(),
        status: if problems.is_empty() { "ok" } else { "failed" },
        records: t.records(),
        checkpoints_checked: checked,
        verified_size: verified,
        unsigned_records: total_end.saturating_sub(newest),
        deleted_by_retention,
        problems,
    }
}

fn names(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

/// Names the first changed line, using the kept leaves when they are
/// authentic (they give the signed roots).
fn locate(t: &Trail, signed: &BTreeMap<u64, Hash>, last_good: u64, first_bad: u64, total_end: u64) -> Vec<Problem> {
    let sizes: Vec<u64> = signed.keys().copied().collect();
    let kept = roots_at(t, &sizes, &|i| t.ledger.read_leaves(t.segments[i].start));
    let authentic = signed.iter().all(|(s, r)| kept.get(s).copied().flatten().is_none_or(|k| k == *r))
        && kept.get(&first_bad).copied().flatten().is_some();
    if authentic {
        for (i, seg) in t.segments.iter().enumerate() {
            let (Some(file), Some(original)) = (t.files[i].as_ref(), t.ledger.read_leaves(seg.start)) else { continue };
            let last = i + 1 == t.segments.len();
            if let Some(p) = diff(&file.path, &file.leaves, &original, last, seg.start, first_bad) {
                return vec![p];
            }
        }
    }
    if first_bad > total_end {
        let file = t.files.iter().rev().flatten().next().map(|f| f.path.clone());
        return vec![problem(
            Kind::Truncated,
            file.as_deref(),
            None,
            format!("the files hold {total_end} records; a signed checkpoint covers {first_bad}"),
        )];
    }
    let (file, line) = position(t, last_good);
    vec![problem(
        Kind::Modified,
        file.as_deref(),
        line,
        format!(
            "the records after {last_good} do not give the root signed for {first_bad} (and the kept leaf hashes were altered too, so the exact line is not known)"
        ),
    )]
}

/// The file and line (from 1) of leaf `index`.
fn position(t: &Trail, index: u64) -> (Option<PathBuf>, Option<u64>) {
    let Some(i) = t.segment_of(index) else { return (None, None) };
    (t.files[i].as_ref().map(|f| f.path.clone()), Some(index - t.segments[i].start + 1))
}

/// The first difference between a file's leaves and the signed ones.
fn diff(path: &Path, actual: &[Hash], original: &[Hash], last: bool, start: u64, signed_to: u64) -> Option<Problem> {
    // Only what a checkpoint covers can be judged (the live file goes on).
    let covered = usize::try_from(signed_to.saturating_sub(start)).unwrap_or(usize::MAX).min(original.len());
    let original = &original[..covered];
    let i = actual.iter().zip(original).position(|(a, o)| a != o).unwrap_or(actual.len().min(original.len()));
    let line = |k: usize| Some(k as u64 + 1);
    if i == original.len() {
        return None;
    }
    if i == actual.len() {
        let kind = if last { Kind::Truncated } else { Kind::Deleted };
        let missing = original.len() - actual.len();
        return Some(problem(kind, Some(path), line(i), format!("{missing} signed records after line {i} are gone")));
    }
    let (a, o) = (actual, original);
    if let Some(j) = (i + 1..a.len().min(o.len())).find(|&j| a[j] == o[i] && a[i] == o[j]) {
        return Some(problem(
            Kind::Reordered,
            Some(path),
            line(i),
            format!("lines {} and {} are swapped", i + 1, j + 1),
        ));
    }
    if a.get(i) == o.get(i + 1) && a.get(i + 1) == o.get(i + 2) {
        return Some(problem(Kind::Deleted, Some(path), line(i), format!("signed line {} is gone", i + 1)));
    }
    if a.get(i + 1) == o.get(i) {
        return Some(problem(Kind::Inserted, Some(path), line(i), format!("line {} was never signed", i + 1)));
    }
    Some(problem(Kind::Modified, Some(path), line(i), format!("line {} differs from the signed one", i + 1)))
}
