//! Reading an appender's files as the tree sees them: the live file and its
//! rolled siblings (`queries.log.1`, `queries.log.2026-11-21`, staged
//! `queries.log.rolling-3`, compressed `.gz`), line by line, each line's
//! leaf hash. Used when a tree is rebuilt at start and by the verifier.
//! Reads only; never changes a file.

use std::fs::File;
use std::io::{self, BufRead as _, BufReader, Read};
use std::path::{Path, PathBuf};

use audit_types::tlog::merkle::{Hash, leaf_hash};

/// The live file (if it exists) and every file beside it whose name is the
/// live file's name, a dot, and more.
pub fn siblings(live: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if live.is_file() {
        out.push(live.to_path_buf());
    }
    let (Some(dir), Some(name)) = (live.parent(), live.file_name().and_then(|n| n.to_str())) else { return out };
    let prefix = format!("{name}.");
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut rolled: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with(&prefix)))
            .map(|e| e.path())
            .collect();
        rolled.sort();
        out.extend(rolled);
    }
    out
}

fn reader(path: &Path) -> io::Result<Box<dyn Read>> {
    let file = File::open(path)?;
    Ok(if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    })
}

/// Calls `f` with each line of `path` (without its newline; a last line
/// without one counts too), decompressing `.gz` files. Stops early when
/// `f` returns false.
///
/// # Errors
/// The I/O error.
pub fn for_each_line(path: &Path, mut f: impl FnMut(&[u8]) -> bool) -> io::Result<()> {
    let mut r = BufReader::with_capacity(256 << 10, reader(path)?);
    let mut line = Vec::with_capacity(1024);
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        if !f(text) {
            return Ok(());
        }
    }
}

/// The leaf hash of every line of `path`.
///
/// # Errors
/// The I/O error.
pub fn leaves(path: &Path) -> io::Result<Vec<Hash>> {
    let mut out = Vec::new();
    for_each_line(path, |l| {
        out.push(leaf_hash(l));
        true
    })?;
    Ok(out)
}

/// The leaf hash of the first line of `path`, if it has one.
pub fn first_leaf(path: &Path) -> Option<Hash> {
    let mut first = None;
    for_each_line(path, |l| {
        first = Some(leaf_hash(l));
        false
    })
    .ok()?;
    first
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn siblings_and_compressed_lines_are_read() {
        let dir = tempfile::tempdir().expect("tmp");
        let live = dir.path().join("q.log");
        std::fs::write(&live, "a\nb\n").expect("write");
        std::fs::write(dir.path().join("q.log.1"), "c\n").expect("write");
        std::fs::write(dir.path().join("q.logger"), "x\n").expect("write");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"d\ne").expect("gz");
        std::fs::write(dir.path().join("q.log.2.gz"), gz.finish().expect("gz")).expect("write");
        let found = siblings(&live);
        let names: Vec<String> =
            found.iter().map(|p| p.file_name().expect("name").to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["q.log", "q.log.1", "q.log.2.gz"]);
        assert_eq!(leaves(&found[2]).expect("lines"), vec![leaf_hash(b"d"), leaf_hash(b"e")]);
        assert_eq!(first_leaf(&live), Some(leaf_hash(b"a")));
    }
}
