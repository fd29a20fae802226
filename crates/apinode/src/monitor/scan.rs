//! Reading a monitor run's sources on two threads: outcomes on one,
//! queries on the other, and the outcome thread, once done, takes query
//! pieces too (query records are most of the work: with drift, twice the
//! outcomes'), from the back, into a second join side merged in at the end
//! as a partial run would be, the records in file order. Event ids are
//! admitted by one set both threads share, so a repeated record is dropped
//! before it reaches the join or drift, whoever reads it. Big files are
//! shared in pieces of [`PIECE_BYTES`]; a `.gz` file and a Kafka source are
//! one piece each. Refused requests are read last, from the failure files
//! beside the query files. Owns the order of reading; what a record means
//! is `join`'s and `drift`'s.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use super::join::{Failures, Outcomes, Queries};
use super::kafka::KafkaSource;
use super::read::{self, Piece};
use super::reference::References;
use super::seen::SharedSeen;
use super::{MonitorError, Options, drift, merge};

/// The size of the pieces big files are read in: small enough that the two
/// threads end close together, big enough that a piece's start costs
/// nothing.
const PIECE_BYTES: u64 = 16 << 20;

/// One unit of reading.
enum Work {
    /// A Kafka topic, read with a consumer group.
    Kafka(KafkaSource),
    /// A file or part of one.
    Piece(Piece),
}

/// What to read in `sources` for records of `topic`, and how many files
/// (or Kafka sources) that is.
fn plan(sources: &[PathBuf], topic: &str, piece_bytes: u64) -> Result<(Vec<Work>, usize), MonitorError> {
    let (mut work, mut files) = (Vec::new(), 0);
    for source in sources {
        if let Some(k) = source.to_str().and_then(KafkaSource::parse) {
            work.push(Work::Kafka(k));
            files += 1;
            continue;
        }
        let read_error = |e| MonitorError::Read { path: source.clone(), source: e };
        let found = read::files(source).map_err(read_error)?;
        let chosen: Vec<PathBuf> =
            found.iter().filter(|p| read::may_hold(p, topic) || found.len() == 1).cloned().collect();
        files += chosen.len();
        work.extend(read::pieces(&chosen, piece_bytes).map_err(read_error)?.into_iter().map(Work::Piece));
    }
    Ok((work, files))
}

/// Reads one unit, handing each record to `take`; returns the lines that
/// held no record.
fn run(work: &Work, service: &str, take: &mut impl FnMut(&read::Rec<'_>)) -> Result<u64, MonitorError> {
    let mut unreadable = 0;
    let mut line = |text: &str| {
        if text.is_empty() {
            return;
        }
        match read::record(text) {
            Some(r) => take(&r),
            None => unreadable += 1,
        }
    };
    match work {
        Work::Kafka(k) => super::kafka::read(k, service, line).map_err(MonitorError::Kafka)?,
        Work::Piece(p) => {
            read::piece_lines(p, &mut line).map_err(|e| MonitorError::Read { path: p.path.clone(), source: e })?;
            0
        }
    };
    Ok(unreadable)
}

/// Units of `work` shared by two threads: one takes them from the front,
/// the other from the back, until they meet. Each thread's records are
/// then in file order (the back's once its blocks are turned round), and
/// the front's all come before the back's: one in-place reversal and one
/// append give the order one reader would have read (the join's canonical
/// order, by time and event id, is then mostly a scan away, and keeps
/// records that tie in file order).
struct Shared<'a> {
    work: &'a [Work],
    /// The units not taken yet.
    left: Mutex<Range<usize>>,
    /// Event ids: each record is taken by one thread, once.
    seen: SharedSeen,
}

impl Shared<'_> {
    fn take(&self, from_back: bool) -> Option<&Work> {
        let mut left = self.left.lock().unwrap_or_else(PoisonError::into_inner);
        let at = if from_back { left.next_back() } else { left.next() }?;
        self.work.get(at)
    }

    /// Reads units until none is left (or one fails: then the other thread
    /// stops too), into `q`; returns the lines that held no record. Units
    /// taken from the back are put in file order before returning.
    fn drain(&self, service: &str, q: &mut Queries, from_back: bool) -> Result<u64, MonitorError> {
        let (mut unreadable, mut starts) = (0, Vec::new());
        while let Some(w) = self.take(from_back) {
            starts.push(q.queries.len());
            match run(w, service, &mut |r| q.take(r, &self.seen)) {
                Ok(n) => unreadable += n,
                Err(e) => {
                    *self.left.lock().unwrap_or_else(PoisonError::into_inner) = 0..0;
                    return Err(e);
                }
            }
        }
        if from_back {
            turn_blocks_round(&mut q.queries, &starts);
        }
        Ok(unreadable)
    }
}

/// Reverses the order of the blocks of `v` that start at `starts`, each
/// block's own order kept, in place: the whole, then each block, reversed.
fn turn_blocks_round<T>(v: &mut [T], starts: &[usize]) {
    let n = v.len();
    v.reverse();
    for (k, start) in starts.iter().enumerate() {
        let end = starts.get(k + 1).copied().unwrap_or(n);
        v[n - end..n - start].reverse();
    }
}

/// Reads the sources of `options`: queries (and refused requests) and
/// outcomes, on two threads.
///
/// # Errors
/// When a source cannot be read.
pub fn read(options: &Options, references: &References) -> Result<merge::Partial, MonitorError> {
    read_in(options, references, PIECE_BYTES)
}

fn read_in(options: &Options, references: &References, piece_bytes: u64) -> Result<merge::Partial, MonitorError> {
    let service = options.filter.service.as_str();
    let (query_work, query_files) = plan(&options.queries, "apinode-query", piece_bytes)?;
    let (feedback_work, feedback_files) = plan(&options.feedback, "apinode-feedback", u64::MAX)?;
    let shared = Shared { work: &query_work, left: Mutex::new(0..query_work.len()), seen: SharedSeen::default() };
    let side = || {
        let mut q = Queries::new(options.filter.clone());
        q.drift = drift::Collector::new(references, options.window_ms);
        q
    };
    let (mine, theirs) = std::thread::scope(|scope| {
        let feedback = scope.spawn(|| {
            let mut o = Outcomes::new(options.filter.clone());
            for w in &feedback_work {
                let unreadable = run(w, service, &mut |r| o.take(r))?;
                o.unreadable += unreadable;
            }
            let mut helped = side();
            helped.unreadable = shared.drain(service, &mut helped, true)?;
            Ok::<_, MonitorError>((o, helped))
        });
        let mut q = side();
        let mine = shared.drain(service, &mut q, false).map(|unreadable| {
            q.unreadable = unreadable;
            q
        });
        (mine, feedback.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
    });
    let (mut queries, (outcomes, helped)) = (mine?, theirs?);
    merge::merge_queries(&mut queries, helped, false);
    if options.partial.is_some() {
        // A partial run keeps its event ids, for the merge.
        queries.seen = shared.seen.into_seen();
    }
    // Refused requests, from the failure files beside the query files.
    let local: Vec<PathBuf> =
        options.queries.iter().filter(|s| s.to_str().is_none_or(|t| !t.starts_with("kafka://"))).cloned().collect();
    let mut failures = Failures::new(options.filter.clone());
    for w in plan(&local, "generic-failure", u64::MAX)?.0 {
        run(&w, service, &mut |r| failures.take(r))?;
    }
    Ok(merge::Partial {
        version: 0,
        window_ms: options.window_ms,
        queries,
        outcomes,
        failures,
        files: (query_files, feedback_files),
    })
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;
    use std::path::Path;

    use serde_json::{Value, json};

    use super::*;
    use crate::monitor::join::Filter;

    /// Log4j lines of 3,000 query records (two generations, numbers and
    /// categories, a tenth repeated later in the file, some ignored) and
    /// outcomes for most of them (some twice, the later one newer).
    fn write_records(dir: &Path) {
        let (mut queries, mut feedback) = (String::new(), String::new());
        let line = |out: &mut String, logger: &str, record: Value| {
            let _ = writeln!(out, r#"{{"logger": "dku.apinode.audit.{logger}", "message": {record}}}"#);
        };
        let mut repeats = Vec::new();
        for i in 0..3000u32 {
            let p = f64::from((i * 7919) % 1000) / 1000.0;
            let plan = ["a", "b", "c"][(i % 3) as usize];
            let record = json!({
                "topic": "apinode-query", "msgType": "prediction-query", "eventId": format!("q{i}"),
                "requestId": format!("r{i}"), "timestamp": format!("2026-12-01T{:02}:{:02}:00.000Z", i / 600, (i / 10) % 60),
                "serviceId": "churn", "endpointId": "score", "generation": if i % 3 == 0 { "v2" } else { "v1" },
                "features": {"x": f64::from(i % 97) / 7.0, "plan": plan},
                "result": {"prediction": if p > 0.5 { "yes" } else { "no" }, "probas": {"no": 1.0 - p, "yes": p},
                           "ignored": i % 50 == 0},
                "timing": {"prediction": i % 13},
            });
            if i % 10 == 0 {
                repeats.push(record.clone());
            }
            line(&mut queries, "queries", record);
            if i % 4 != 0 {
                let outcome = |o: &str, t: &str| {
                    json!({"topic": "apinode-feedback", "msgType": "prediction-feedback", "eventId": format!("f{i}{t}"),
                           "requestId": format!("r{i}"), "serviceId": "churn", "endpointId": "score", "outcome": o,
                           "time": format!("2026-12-02T00:00:{t}.000Z"), "weight": 1.0})
                };
                line(&mut feedback, "feedback", outcome(if i % 3 == 1 { "yes" } else { "no" }, "01"));
                if i % 7 == 0 {
                    line(&mut feedback, "feedback", outcome("yes", "02"));
                }
            }
        }
        for record in repeats {
            line(&mut queries, "queries", record);
        }
        std::fs::write(dir.join("queries.log"), queries).expect("queries");
        std::fs::write(dir.join("feedback.log"), feedback).expect("feedback");
        let mut reference = String::from("x,plan,prediction\n");
        for i in 0..400u32 {
            let (plan, prediction) = (["a", "b"][(i % 2) as usize], ["no", "yes"][(i % 3 / 2) as usize]);
            let _ = writeln!(reference, "{},{plan},{prediction}", f64::from(i % 89) / 6.0);
        }
        std::fs::write(dir.join("reference.csv"), reference).expect("reference");
    }

    #[test]
    fn blocks_are_turned_round_in_place() {
        let mut v = vec![5, 6, 7, 3, 4, 0, 1, 2];
        turn_blocks_round(&mut v, &[0, 3, 3, 5, 8]);
        assert_eq!(v, [0, 1, 2, 3, 4, 5, 6, 7]);
    }

    /// Read in pieces of a few lines, by two threads, the report is the one
    /// a single piece gives, to the last bit: every record once, repeats
    /// dropped, the newest outcome kept, drift over every value.
    #[test]
    fn two_threads_reading_pieces_report_what_one_reader_reports() {
        let dir = tempfile::tempdir().expect("dir");
        write_records(dir.path());
        let options = Options {
            filter: Filter { service: "churn".into(), ..Filter::default() },
            queries: vec![dir.path().join("queries.log")],
            feedback: vec![dir.path().join("feedback.log")],
            window_ms: 3_600_000,
            window_text: "1h".into(),
            generations: None,
            reference: Some(dir.path().join("reference.csv")),
            partial: None,
            merge: Vec::new(),
        };
        let references = References::load(None, None, options.reference.as_deref()).expect("reference");
        let report = |piece_bytes| {
            let partial = read_in(&options, &references, piece_bytes).expect("read");
            let mut report = super::super::finish(partial, &options, &references);
            report["generatedAt"] = Value::Null;
            report
        };
        let whole = report(u64::MAX);
        assert_eq!(whole["totals"]["queryRecords"], 3000, "{}", whole["totals"]);
        assert_eq!(whole["totals"]["duplicates"].as_u64().map(|d| d >= 300), Some(true), "{}", whole["totals"]);
        assert!(whole["generations"]["v1"]["overall"]["drift"]["features"]["x"].is_object(), "{whole}");
        for piece_bytes in [700, 4096, 65_536] {
            assert!(whole == report(piece_bytes), "pieces of {piece_bytes} bytes");
        }
    }
}
