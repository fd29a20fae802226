//! `--merge` (docs/monitoring.md "The monitor"): how the monitor scales
//! past one machine. A run with `--partial` writes, beside its report, what
//! it read in mergeable form (`partial.json.gz`: the query side un-joined,
//! the newest outcome per request id, the event ids seen, refused requests,
//! drift's current values); `--merge DIR...` loads several, combines them
//! as if one process had read every source, and reports. Joining after the
//! merge is what makes it exact: a query and its outcome may be read by two
//! processes (two Kafka partitions), and exact ROC AUC and medians need the
//! records themselves, not summaries of them.
//!
//! Owns the partial file and the merge; the join, drift and the report are
//! the other modules'. Event ids are compared by their 128-bit hashes,
//! computed alike in every process of one apinode version.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::join::{Failures, Outcomes, Prediction, Queries, Query};

/// What a partial run read.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Partial {
    /// The partial file format.
    pub version: u32,
    /// Window length, ms.
    pub window_ms: i64,
    /// The query side.
    pub queries: Queries,
    /// The outcome side.
    pub outcomes: Outcomes,
    /// Requests refused as a whole.
    pub failures: Failures,
    /// Files (or topics) read for queries and for outcomes.
    pub files: (usize, usize),
}

/// The partial file's name in a report folder.
pub const FILE: &str = "partial.json.gz";

/// Errors of a merge.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// A partial file cannot be read or written.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A partial file is not one.
    #[error("{}: not a partial monitor run ({why})", .path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// Partial runs that do not fit together.
    #[error("{}: {why}", .path.display())]
    Mismatch {
        /// The partial that differs.
        path: PathBuf,
        /// How.
        why: String,
    },
}

const VERSION: u32 = 1;

/// Writes `partial` as `dir/partial.json.gz`.
///
/// # Errors
/// When the file cannot be written.
pub fn write(partial: &Partial, dir: &Path) -> Result<(), MergeError> {
    let path = dir.join(FILE);
    let io = |source| MergeError::Io { path: path.clone(), source };
    std::fs::create_dir_all(dir).map_err(io)?;
    // The records' features and outcomes are in it: not world-readable, as the audit files.
    let file = {
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&path).map_err(io)?
    };
    let mut gz = flate2::write::GzEncoder::new(std::io::BufWriter::new(file), flate2::Compression::fast());
    let view = View {
        version: VERSION,
        window_ms: partial.window_ms,
        queries: &partial.queries,
        outcomes: &partial.outcomes,
        failures: &partial.failures,
        files: partial.files,
    };
    serde_json::to_writer(&mut gz, &view).map_err(|e| io(std::io::Error::other(e)))?;
    gz.finish().and_then(|mut w| w.flush()).map_err(io)
}

/// [`Partial`] borrowed, for writing.
#[derive(Serialize)]
struct View<'a> {
    version: u32,
    window_ms: i64,
    queries: &'a Queries,
    outcomes: &'a Outcomes,
    failures: &'a Failures,
    files: (usize, usize),
}

/// Reads `dir/partial.json.gz` (or the file itself).
///
/// # Errors
/// When it cannot be read or is not a partial run of this version.
pub fn load(dir: &Path) -> Result<Partial, MergeError> {
    let path = if dir.is_dir() { dir.join(FILE) } else { dir.to_path_buf() };
    let file = std::fs::File::open(&path).map_err(|source| MergeError::Io { path: path.clone(), source })?;
    // Streamed: the JSON text of a million records is a gigabyte.
    let reader = std::io::BufReader::with_capacity(1 << 20, flate2::read::GzDecoder::new(file));
    let partial: Partial =
        serde_json::from_reader(reader).map_err(|e| MergeError::Invalid { path: path.clone(), why: e.to_string() })?;
    if partial.version != VERSION {
        return Err(MergeError::Invalid {
            path,
            why: format!("format version {}, expected {VERSION}", partial.version),
        });
    }
    Ok(partial)
}

/// Combines partial runs into one, as if one process had read every
/// source: records seen twice (by event id) count once, the newest outcome
/// of each request id wins.
///
/// # Errors
/// When they were made for other services, endpoints, time ranges or windows.
pub fn merge(parts: Vec<(PathBuf, Partial)>) -> Result<Partial, MergeError> {
    let mut parts = parts.into_iter();
    let Some((_, mut all)) = parts.next() else { return Ok(Partial::default()) };
    for (path, p) in parts {
        if p.window_ms != all.window_ms {
            return Err(MergeError::Mismatch {
                path,
                why: format!("window {} ms, not {} ms", p.window_ms, all.window_ms),
            });
        }
        if p.queries.filter != all.queries.filter {
            return Err(MergeError::Mismatch {
                path,
                why: format!("made for {:?}, not {:?}", p.queries.filter, all.queries.filter),
            });
        }
        merge_queries(&mut all.queries, p.queries, true);
        merge_outcomes(&mut all.outcomes, p.outcomes);
        for (t, e) in p.failures.times {
            if all.failures.seen.admit_hash(e).is_ok() {
                all.failures.times.push((t, e));
            }
        }
        all.files = (all.files.0 + p.files.0, all.files.1 + p.files.1);
    }
    Ok(all)
}

/// Where another side's generation and class indexes are in the tables
/// of `all` (which gains those it lacks).
struct Remap {
    generations: Vec<u16>,
    classes: Vec<u16>,
    /// Classes in the same order (the usual case): probabilities stay as they are.
    same_classes: bool,
}

impl Remap {
    fn new(all: &mut Queries, other: &Queries) -> Remap {
        let generations: Vec<u16> = other.generations.iter().map(|g| all.generation(g)).collect();
        let classes: Vec<u16> = other.classes.iter().map(|c| all.class(c)).collect();
        let same_classes = classes.iter().enumerate().all(|(i, c)| usize::from(*c) == i);
        Remap { generations, classes, same_classes }
    }

    /// Renumbers a record of the other side; `classes` is how many `all` has.
    fn apply(&self, q: &mut Query, classes: usize) {
        q.generation = self.generations[usize::from(q.generation)];
        if let Prediction::Class(c) = q.prediction {
            q.prediction = Prediction::Class(self.classes[usize::from(c)]);
        }
        if !self.same_classes {
            let mut probas = vec![f64::NAN; classes];
            for (i, p) in q.probas.iter().enumerate() {
                probas[usize::from(self.classes[i])] = *p;
            }
            q.probas = probas.into_boxed_slice();
        }
    }
}

/// Adds `other`'s query records to `all`'s: another run's, each record
/// once by event id (`readmit`), or another thread's of this run, whose
/// records were admitted already.
pub(super) fn merge_queries(all: &mut Queries, other: Queries, readmit: bool) {
    let remap = Remap::new(all, &other);
    // Its event ids are in its records: its set of them can go first.
    let Queries { seen, queries, duplicates, unreadable, drift, .. } = other;
    drop(seen);
    all.queries.reserve_exact(queries.len());
    for mut q in queries {
        if readmit && all.seen.admit_hash(q.event).is_err() {
            all.duplicates += 1;
            continue;
        }
        remap.apply(&mut q, all.classes.len());
        all.queries.push(q);
    }
    all.duplicates += duplicates;
    all.unreadable += unreadable;
    match (all.drift.as_mut(), drift) {
        (Some(mine), Some(theirs)) => mine.merge(theirs, &remap.generations),
        (None, Some(theirs)) => {
            // Renumber its generations: merge it into an empty copy of itself.
            let mut empty = theirs.emptied();
            empty.merge(theirs, &remap.generations);
            all.drift = Some(empty);
        }
        _ => {}
    }
}

fn merge_outcomes(all: &mut Outcomes, other: Outcomes) {
    let mut repeated = 0;
    for h in other.seen.ids {
        if !all.seen.ids.insert(h) {
            repeated += 1;
        }
    }
    all.duplicates += other.duplicates + repeated;
    all.records += other.records.saturating_sub(repeated);
    all.unreadable += other.unreadable;
    for (id, o) in other.outcomes {
        all.keep_newest(&id, o);
    }
}
