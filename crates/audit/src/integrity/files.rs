//! Reading an appender's files as the tree sees them: the live file and its
//! rolled siblings (`queries.log.1`, `queries.log.2026-11-21`, staged
//! `queries.log.rolling-3`, compressed `.gz`), line by line, each line's
//! leaf hash. Used when a tree is rebuilt at start and by the verifier.
//! Reads only; never changes a file.

use std::fs::File;
use std::io::{self, Read};
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
/// `f` returns false. Reads 1 MiB at a time and splits with `memchr`.
///
/// # Errors
/// The I/O error.
pub fn for_each_line(path: &Path, mut f: impl FnMut(&[u8]) -> bool) -> io::Result<()> {
    let mut r = reader(path)?;
    let mut buf = vec![0u8; 1 << 20];
    // Bytes of a line not finished in the previous read.
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let chunk = &buf[..n];
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', chunk) {
            let keep_going = if carry.is_empty() {
                f(&chunk[start..end])
            } else {
                carry.extend_from_slice(&chunk[start..end]);
                let go = f(&carry);
                carry.clear();
                go
            };
            if !keep_going {
                return Ok(());
            }
            start = end + 1;
        }
        carry.extend_from_slice(&chunk[start..]);
    }
    if !carry.is_empty() {
        f(&carry);
    }
    Ok(())
}

/// One chunk hashed: its index, its leaves, the lines found in it.
type Hashed = (usize, Vec<Hash>, Vec<Vec<u8>>);

/// The leaf hash of every line of `path`, and the lines `finder` finds
/// (the verifier's `audit-file-deleted` records), in one read. This thread
/// reads chunks of whole lines into a few recycled buffers; the other
/// threads hash them (SHA-256 of every line is most of verification's time).
///
/// # Errors
/// The I/O error.
pub fn scan(path: &Path, finder: Option<&memchr::memmem::Finder<'_>>) -> io::Result<(Vec<Hash>, Vec<Vec<u8>>)> {
    use std::sync::{Mutex, PoisonError, mpsc};
    const CHUNK: usize = 2 << 20;
    let workers = std::thread::available_parallelism().map_or(2, std::num::NonZero::get).clamp(1, 8);
    let mut r = reader(path)?;
    let (to_workers, jobs) = mpsc::sync_channel::<(usize, Vec<u8>)>(workers);
    let jobs = Mutex::new(jobs);
    let (to_reader, free) = mpsc::channel::<Vec<u8>>();
    for _ in 0..=workers {
        let _ = to_reader.send(Vec::with_capacity(CHUNK + (64 << 10)));
    }
    let done: Mutex<Vec<Hashed>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| -> io::Result<()> {
        for _ in 0..workers {
            let to_reader = to_reader.clone();
            let (jobs, done) = (&jobs, &done);
            scope.spawn(move || {
                while let Ok((i, chunk)) = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv() {
                    let (mut leaves, mut found) = (Vec::with_capacity(chunk.len() / 512), Vec::new());
                    let mut start = 0;
                    let mut line = |l: &[u8]| {
                        leaves.push(leaf_hash(l));
                        if finder.is_some_and(|f| f.find(l).is_some()) {
                            found.push(l.to_vec());
                        }
                    };
                    for end in memchr::memchr_iter(b'\n', &chunk) {
                        line(&chunk[start..end]);
                        start = end + 1;
                    }
                    if start < chunk.len() {
                        line(&chunk[start..]);
                    }
                    done.lock().unwrap_or_else(PoisonError::into_inner).push((i, leaves, found));
                    let _ = to_reader.send(chunk);
                }
            });
        }
        let mut carry: Vec<u8> = Vec::new();
        let mut index = 0;
        let result = loop {
            let Ok(mut buf) = free.recv() else { break Ok(()) };
            buf.clear();
            buf.append(&mut carry);
            let want = (CHUNK.saturating_sub(buf.len())) as u64;
            let n = match (&mut r).take(want).read_to_end(&mut buf) {
                Ok(n) => n,
                Err(e) => break Err(e),
            };
            if n == 0 {
                if !buf.is_empty() {
                    let _ = to_workers.send((index, buf));
                }
                break Ok(());
            }
            if let Some(last) = memchr::memrchr(b'\n', &buf) {
                carry.extend_from_slice(&buf[last + 1..]);
                buf.truncate(last + 1);
                let _ = to_workers.send((index, buf));
                index += 1;
            } else {
                carry = buf;
            }
        };
        drop(to_workers);
        result
    })?;
    let mut parts = done.into_inner().unwrap_or_else(PoisonError::into_inner);
    parts.sort_by_key(|(i, _, _)| *i);
    let mut leaves = Vec::with_capacity(parts.iter().map(|p| p.1.len()).sum());
    let mut found = Vec::new();
    for (_, l, f) in parts {
        leaves.extend(l);
        found.extend(f);
    }
    Ok((leaves, found))
}

/// The leaf hash of every line of `path`.
///
/// # Errors
/// The I/O error.
pub fn leaves(path: &Path) -> io::Result<Vec<Hash>> {
    scan(path, None).map(|(l, _)| l)
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
