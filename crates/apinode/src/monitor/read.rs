//! Reading audit records for the monitor from where the trail keeps them:
//! a node's audit files (current, rolled, `.gz`), or an event server's
//! folders (`<topic>/<routingKey>/YYYY/MM/DD/HH/*.jsonl`, any depth). A
//! line is a log4j line (`{"message": {...}}`), an event server line
//! (`{"clientEvent": {...}}`) or a bare record. Only reads; a line that is
//! not a record is counted, never fatal.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

/// Every file under `source` (itself when it is a file), sorted.
pub fn files(source: &Path) -> std::io::Result<Vec<PathBuf>> {
    if source.is_file() {
        return Ok(vec![source.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![source.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let t = entry.file_type()?;
            if t.is_dir() {
                // The tree and checkpoint state of the integrity module is not audit records.
                if entry.file_name() != "integrity" && entry.file_name() != "dead-letter" {
                    stack.push(entry.path());
                }
            } else if t.is_file() {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Whether a file may hold records of `topic` (`apinode-query`,
/// `apinode-feedback` or `generic-failure`): a node's `queries.log*`,
/// `feedback.log*` or `failures.log*`, or any `.jsonl` under an event
/// server folder of that topic.
pub fn may_hold(path: &Path, topic: &str) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let node_file = match topic {
        "apinode-query" => "queries.log",
        "generic-failure" => "failures.log",
        _ => "feedback.log",
    };
    if name.starts_with(node_file) {
        return true;
    }
    (name.ends_with(".jsonl") || name.ends_with(".jsonl.gz"))
        && path.components().any(|c| c.as_os_str() == std::ffi::OsStr::new(topic))
}

/// The fields of a query or feedback record the monitor uses, borrowed
/// from the line (the features and everything else are skipped unread:
/// parsing whole records into JSON trees was most of the monitor's time).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rec<'a> {
    /// `prediction-query` or `prediction-feedback`.
    #[serde(borrow)]
    pub msg_type: Option<Cow<'a, str>>,
    /// Deduplication.
    #[serde(borrow)]
    pub event_id: Option<Cow<'a, str>>,
    /// The join key.
    #[serde(borrow)]
    pub request_id: Option<Cow<'a, str>>,
    /// When the record was made.
    #[serde(borrow)]
    pub timestamp: Option<Cow<'a, str>>,
    /// The service.
    #[serde(borrow)]
    pub service_id: Option<Cow<'a, str>>,
    /// The endpoint.
    #[serde(borrow)]
    pub endpoint_id: Option<Cow<'a, str>>,
    /// The generation that answered (queries).
    #[serde(borrow)]
    pub generation: Option<Cow<'a, str>>,
    /// The answer (queries).
    #[serde(borrow)]
    pub result: Option<ResultPart<'a>>,
    /// Stage times, µs (queries).
    pub timing: Option<TimingPart>,
    /// The features as sent (queries), parsed only when drift needs them.
    #[serde(borrow)]
    pub features: Option<&'a serde_json::value::RawValue>,
    /// The audit policy's sampling rate (queries).
    pub sampling_rate: Option<f64>,
    /// The outcome (feedback).
    pub outcome: Option<Value>,
    /// When the outcome happened (feedback).
    #[serde(borrow)]
    pub time: Option<Cow<'a, str>>,
    /// The outcome's weight (feedback).
    pub weight: Option<f64>,
}

/// A query record's `result`.
#[derive(Debug, Default, Deserialize)]
pub struct ResultPart<'a> {
    /// A class or a number.
    pub prediction: Option<Value>,
    /// Class probabilities in the model's order.
    #[serde(borrow)]
    pub probas: Option<Ordered<'a>>,
    /// Not scored.
    pub ignored: Option<bool>,
}

/// A query record's `timing`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TimingPart {
    pre_processing: f64,
    wait: f64,
    enrich: f64,
    preparation: f64,
    prediction: f64,
    post_processing: f64,
}

impl TimingPart {
    /// Every stage, µs.
    pub fn total(&self) -> f64 {
        self.pre_processing + self.wait + self.enrich + self.preparation + self.prediction + self.post_processing
    }
}

/// A JSON object, in its order (of numbers unless said otherwise: the
/// probabilities; drift reads features as one of scalars).
#[derive(Debug, Default)]
pub struct Ordered<'a, V = f64>(pub Vec<(Cow<'a, str>, V)>);

impl<'de: 'a, 'a, V: Deserialize<'de>> Deserialize<'de> for Ordered<'a, V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a, V>(std::marker::PhantomData<(&'a (), V)>);
        impl<'de: 'a, 'a, V: Deserialize<'de>> serde::de::Visitor<'de> for Visit<'a, V> {
            type Value = Ordered<'a, V>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(self, mut m: M) -> Result<Ordered<'a, V>, M::Error> {
                let mut out = Vec::new();
                while let Some(entry) = m.next_entry::<Cow<'de, str>, V>()? {
                    out.push(entry);
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    message: Option<Rec<'a>>,
    #[serde(borrow, rename = "clientEvent")]
    client_event: Option<Rec<'a>>,
}

/// The record a line carries: a log4j line's `message`, an event server
/// line's `clientEvent`, or the line itself.
pub fn record(line: &str) -> Option<Rec<'_>> {
    let envelope: Envelope<'_> = serde_json::from_str(line).ok()?;
    match envelope {
        Envelope { message: Some(r), .. } | Envelope { client_event: Some(r), .. } => Some(r),
        _ => serde_json::from_str(line).ok(),
    }
}

/// Calls `each` with every line of `path` (gunzipped when it ends in `.gz`).
///
/// # Errors
/// When the file cannot be read.
pub fn lines(path: &Path, mut each: impl FnMut(&str)) -> std::io::Result<()> {
    let file = std::fs::File::open(path)?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        each(line.trim_end());
    }
}

/// A part of a file to read: all of it, or the lines that start in
/// `start..end` (a byte range of a plain file), so that two threads can
/// share one big file.
#[derive(Debug, Clone)]
pub struct Piece {
    /// The file.
    pub path: PathBuf,
    /// The byte range its lines start in, and the file opened once for all
    /// its pieces (a node rolling its files meanwhile renames the file,
    /// not what the pieces read); None: the whole file, opened when read.
    pub range: Option<((u64, u64), Arc<File>)>,
}

/// `files` cut into pieces of about `size` bytes. A `.gz` file is one
/// piece; the last piece of a file runs to its end as it is when read (a
/// node may still be appending).
///
/// # Errors
/// When a file cannot be opened or its size read.
pub fn pieces(files: &[PathBuf], size: u64) -> std::io::Result<Vec<Piece>> {
    let mut out = Vec::new();
    for path in files {
        let len = std::fs::metadata(path)?.len();
        if path.extension().is_some_and(|e| e == "gz") || len <= size {
            out.push(Piece { path: path.clone(), range: None });
            continue;
        }
        let file = Arc::new(File::open(path)?);
        let len = file.metadata()?.len();
        let mut start = 0;
        while start < len {
            let end = if start + size >= len { u64::MAX } else { start + size };
            out.push(Piece { path: path.clone(), range: Some(((start, end), file.clone())) });
            start = end;
        }
    }
    Ok(out)
}

/// A shared file read from a position of its own (`pread`): the pieces of
/// one file are read on two threads at once.
struct At<'a> {
    file: &'a File,
    pos: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Calls `each` with every line of `piece`: a line belongs to the piece
/// its first byte is in, so the pieces of a file read each line once.
///
/// # Errors
/// When the file cannot be read.
pub fn piece_lines(piece: &Piece, mut each: impl FnMut(&str)) -> std::io::Result<()> {
    let Some(((start, end), file)) = &piece.range else { return lines(&piece.path, each) };
    let (start, end) = (*start, *end);
    let mut at = start.saturating_sub(1);
    let mut reader = BufReader::with_capacity(1 << 20, At { file, pos: at });
    if start > 0 {
        // Up to the end of the line holding byte start - 1 (just that byte
        // when it ends a line): the piece before reads that line.
        at += reader.skip_until(b'\n')? as u64;
    }
    let mut line = String::new();
    while at < end {
        line.clear();
        let n = reader.read_line(&mut line)?;
        if n == 0 {
            break;
        }
        at += n as u64;
        each(line.trim_end());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file rolled (renamed, and a new one begun) after the pieces were
    /// planned: they still read the file they were planned on.
    #[test]
    fn pieces_read_the_planned_file_when_it_is_rolled_meanwhile() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("queries.log");
        let lines: Vec<String> = (0..50).map(|i| format!("record {i}")).collect();
        std::fs::write(&path, lines.join("\n") + "\n").expect("write");
        let planned = pieces(std::slice::from_ref(&path), 64).expect("pieces");
        assert!(planned.len() > 2);
        std::fs::rename(&path, dir.path().join("queries.log.1")).expect("roll");
        std::fs::write(&path, "a new file\n").expect("new file");
        let mut read = Vec::new();
        for piece in &planned {
            piece_lines(piece, |l| read.push(l.to_owned())).expect("read");
        }
        assert_eq!(read, lines);
    }

    /// Every way of cutting a file into pieces reads each line once, in order.
    #[test]
    fn pieces_read_every_line_once() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("queries.log");
        let lines: Vec<String> = (0..200).map(|i| "x".repeat(i % 17) + &i.to_string()).collect();
        std::fs::write(&path, lines.join("\n") + "\n").expect("write");
        for size in [1, 2, 3, 7, 16, 17, 100, 1000, 1 << 20] {
            let mut read = Vec::new();
            for piece in pieces(std::slice::from_ref(&path), size).expect("pieces") {
                piece_lines(&piece, |l| read.push(l.to_owned())).expect("read");
            }
            assert_eq!(read, lines, "pieces of {size} bytes");
        }
    }
}
