//! Reading audit records for the monitor from where the trail keeps them:
//! a node's audit files (current, rolled, `.gz`), or an event server's
//! folders (`<topic>/<routingKey>/YYYY/MM/DD/HH/*.jsonl`, any depth). A
//! line is a log4j line (`{"message": {...}}`), an event server line
//! (`{"clientEvent": {...}}`) or a bare record. Only reads; a line that is
//! not a record is counted, never fatal.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

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

/// Whether a file may hold records of `topic` (`apinode-query` or
/// `apinode-feedback`): a node's `queries.log*` / `feedback.log*`, or any
/// `.jsonl` under an event server folder of that topic.
pub fn may_hold(path: &Path, topic: &str) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let node_file = if topic == "apinode-query" { "queries.log" } else { "feedback.log" };
    if name.starts_with(node_file) {
        return true;
    }
    (name.ends_with(".jsonl") || name.ends_with(".jsonl.gz"))
        && path.components().any(|c| c.as_os_str() == std::ffi::OsStr::new(topic))
}

/// The record a line carries, if any.
pub fn record(line: &str) -> Option<Value> {
    let v: Value = serde_json::from_str(line).ok()?;
    match v {
        Value::Object(mut o) => {
            if let Some(Value::Object(m)) = o.remove("message") {
                return Some(Value::Object(m));
            }
            if let Some(Value::Object(e)) = o.remove("clientEvent") {
                return Some(Value::Object(e));
            }
            Some(Value::Object(o))
        }
        _ => None,
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
