//! A network target's disk spool (`run/spool/<target>/`): messages that
//! could not be delivered yet, as JSON lines in numbered segment files
//! (`0000000000000001.jsonl`, a new one every 8 MiB and at every start, so a
//! line cut by a crash can only end a closed segment). An append is one
//! `write` of whole lines; when it fails the segment is cut back to its last
//! whole line, so a line is never glued to the next. The worker reads the
//! oldest lines, delivers them and only then commits them; a fully delivered
//! closed segment is deleted, and the open segment is emptied in place when
//! the worker has caught up with it (no file churn under steady traffic).
//! With WRITTEN and FSYNC durability the spool is the target's write-ahead
//! log. Owns the files and their order; it does not deliver anything or
//! decide when.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A segment is closed once it holds this many bytes.
const SEGMENT_MAX_BYTES: u64 = 8 << 20;

/// Sizes of a spool, readable without its lock.
#[derive(Debug, Default)]
pub struct SpoolGauge {
    /// Bytes of the segment files on disk.
    pub bytes: AtomicU64,
    /// Messages not yet delivered.
    pub messages: AtomicU64,
}

struct Segment {
    seq: u64,
    path: PathBuf,
    bytes: u64,
    /// Bytes at the start already delivered (set when a segment is put in
    /// front of it while it was being read).
    start: u64,
}

/// Lines handed out and not committed: their segment, where the reader was
/// before them, and where each of them ends (so that a part can be committed).
struct Uncommitted {
    seq: u64,
    start: u64,
    ends: Vec<u64>,
}

/// The first segment number of a new spool: leaves room below for
/// [`Spool::prepend`].
const FIRST_SEQ: u64 = 1 << 32;

/// The spool of one target. Not thread-safe: its owner wraps it in a mutex.
pub struct Spool {
    dir: PathBuf,
    segments: VecDeque<Segment>,
    /// The open segment new lines go to (the last of `segments`).
    writer: Option<File>,
    /// Written to since the last sync.
    dirty: bool,
    /// The head segment, positioned after the last committed line.
    reader: Option<BufReader<File>>,
    /// The lines handed out by [`Spool::peek`] and not yet committed.
    uncommitted: Option<Uncommitted>,
    next_seq: u64,
    gauge: Arc<SpoolGauge>,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool").field("dir", &self.dir).field("segments", &self.segments.len()).finish()
    }
}

fn segment_seq(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    name.strip_suffix(".jsonl")?.parse().ok()
}

impl Spool {
    /// Opens (creating) the spool in `dir`, counting what earlier runs left.
    ///
    /// # Errors
    /// When the folder cannot be created or read.
    pub fn open(dir: &Path) -> io::Result<Spool> {
        fs::DirBuilder::new().recursive(true).mode(0o750).create(dir)?;
        let mut segments: Vec<Segment> = Vec::new();
        let mut messages = 0u64;
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            let Some(seq) = segment_seq(&path) else { continue };
            let bytes = fs::metadata(&path)?.len();
            if bytes == 0 {
                fs::remove_file(&path)?;
                continue;
            }
            messages += BufReader::new(File::open(&path)?).lines().count() as u64;
            segments.push(Segment { seq, path, bytes, start: 0 });
        }
        segments.sort_by_key(|s| s.seq);
        let gauge = Arc::new(SpoolGauge::default());
        gauge.bytes.store(segments.iter().map(|s| s.bytes).sum(), Ordering::Relaxed);
        gauge.messages.store(messages, Ordering::Relaxed);
        let next_seq = segments.last().map_or(FIRST_SEQ, |s| s.seq + 1);
        Ok(Spool {
            dir: dir.to_path_buf(),
            segments: segments.into(),
            writer: None,
            dirty: false,
            reader: None,
            uncommitted: None,
            next_seq,
            gauge,
        })
    }

    /// The sizes, shared.
    pub fn gauge(&self) -> Arc<SpoolGauge> {
        self.gauge.clone()
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        match self.segments.len() {
            0 => true,
            1 => self.segments[0].bytes <= self.segments[0].start,
            _ => false,
        }
    }

    /// Appends messages (one line each) after everything pending, with one
    /// `write` per segment (a crash of the process loses nothing once this
    /// returns; [`Spool::sync`] makes them survive a crash of the machine).
    /// On failure the segment is cut back to its last whole line.
    ///
    /// # Errors
    /// When the segment cannot be created or written.
    pub fn append<'a>(&mut self, lines: impl IntoIterator<Item = &'a str>) -> io::Result<()> {
        let mut buf: Vec<u8> = Vec::new();
        let mut count = 0u64;
        for line in lines {
            let full = self.writer.is_none()
                || self.segments.back().is_none_or(|s| s.bytes + buf.len() as u64 >= SEGMENT_MAX_BYTES);
            if full {
                self.write_whole(&buf, count)?;
                (buf, count) = (Vec::new(), 0);
                self.rotate()?;
            }
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
            count += 1;
        }
        self.write_whole(&buf, count)
    }

    /// Writes `buf` (whole lines) to the open segment, or cuts it back.
    fn write_whole(&mut self, buf: &[u8], lines: u64) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let (Some(w), Some(seg)) = (self.writer.as_mut(), self.segments.back_mut()) else {
            return Err(io::Error::other("no open spool segment"));
        };
        if let Err(e) = w.write_all(buf) {
            let _ = w.set_len(seg.bytes);
            return Err(e);
        }
        seg.bytes += buf.len() as u64;
        self.dirty = true;
        self.gauge.bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
        self.gauge.messages.fetch_add(lines, Ordering::Relaxed);
        Ok(())
    }

    /// Whether the spool's disk takes data again: writes 4 KiB past the end
    /// of the open segment (or a probe file), then cuts them off.
    ///
    /// # Errors
    /// The I/O error of the probe.
    pub fn probe(&mut self) -> io::Result<()> {
        let probe = self.dir.join("probe.tmp");
        let mut f = OpenOptions::new().create(true).truncate(true).write(true).open(&probe)?;
        let written = f.write_all(&[b' '; 4096]).and_then(|()| f.sync_data());
        let _ = fs::remove_file(&probe);
        written
    }

    /// Puts messages in front of everything pending: a batch that was being
    /// delivered from the queue when newer messages went to the spool.
    ///
    /// # Errors
    /// When the segment cannot be written.
    pub fn prepend<'a>(&mut self, lines: impl IntoIterator<Item = &'a str>) -> io::Result<()> {
        let Some(front) = self.segments.front() else { return self.append(lines) };
        if front.seq == 0 {
            return self.append(lines);
        }
        // Remember how far the head was read; a new reader starts there.
        let read_to = match (self.uncommitted.take(), self.reader.as_mut()) {
            (Some(u), _) if u.seq == front.seq => u.start,
            (_, Some(r)) => r.stream_position()?,
            (_, None) => front.start,
        };
        self.reader = None;
        let seq = front.seq - 1;
        self.segments.front_mut().expect("front exists").start = read_to;
        let path = self.dir.join(format!("{seq:016}.jsonl"));
        let mut buf: Vec<u8> = Vec::new();
        let mut n = 0u64;
        for line in lines {
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
            n += 1;
        }
        let mut w = OpenOptions::new().create(true).append(true).mode(0o640).open(&path)?;
        if let Err(e) = w.write_all(&buf) {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        self.segments.push_front(Segment { seq, path, bytes: buf.len() as u64, start: 0 });
        self.gauge.bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
        self.gauge.messages.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        if let Some(w) = self.writer.take()
            && self.dirty
        {
            // A closed segment is synced once, whatever the durability.
            w.sync_data()?;
            self.dirty = false;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let path = self.dir.join(format!("{seq:016}.jsonl"));
        let file = OpenOptions::new().create(true).append(true).mode(0o640).open(&path)?;
        self.writer = Some(file);
        self.segments.push_back(Segment { seq, path, bytes: 0, start: 0 });
        Ok(())
    }

    /// Up to `max` of the oldest pending lines (at most about `max_bytes`),
    /// left pending until [`Spool::commit`]. A line cut short by a crash is
    /// skipped with a warning.
    ///
    /// # Errors
    /// When a segment cannot be read.
    pub fn peek(&mut self, max: usize, max_bytes: usize) -> io::Result<Vec<String>> {
        if let Some(u) = self.uncommitted.take() {
            // Lines handed out before and not committed: read them again.
            if self.segments.front().is_some_and(|s| s.seq == u.seq)
                && let Some(r) = self.reader.as_mut()
            {
                r.seek(SeekFrom::Start(u.start))?;
            }
        }
        loop {
            let Some(head) = self.segments.front() else { return Ok(Vec::new()) };
            let (seq, writing) = (head.seq, self.segments.len() == 1 && self.writer.is_some());
            if self.reader.is_none() {
                let mut r = BufReader::new(File::open(&head.path)?);
                r.seek(SeekFrom::Start(head.start))?;
                self.reader = Some(r);
            }
            let reader = self.reader.as_mut().expect("opened above");
            let start = reader.stream_position()?;
            let (out, ends, at_end) = read_lines(reader, max, max_bytes, writing, &self.dir, seq)?;
            if out.is_empty() && at_end && !writing {
                // Everything in this closed segment was delivered (or was a
                // cut line): remove it and go on with the next one.
                self.reader = None;
                self.drop_head()?;
                continue;
            }
            self.uncommitted = Some(Uncommitted { seq, start, ends });
            return Ok(out);
        }
    }

    fn drop_head(&mut self) -> io::Result<()> {
        let done = self.segments.pop_front().expect("a head segment");
        fs::remove_file(&done.path)?;
        self.gauge.bytes.fetch_sub(done.bytes.min(self.gauge.bytes.load(Ordering::Relaxed)), Ordering::Relaxed);
        if self.segments.is_empty() {
            self.gauge.messages.store(0, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Marks the first `lines` lines of the last [`Spool::peek`] as
    /// delivered (the others are handed out again by the next peek); deletes
    /// the head segment once it is fully delivered.
    ///
    /// # Errors
    /// When a delivered segment cannot be removed.
    pub fn commit(&mut self, lines: usize) -> io::Result<()> {
        let Some(u) = self.uncommitted.take() else { return Ok(()) };
        let lines = lines.min(u.ends.len());
        self.gauge
            .messages
            .fetch_sub((lines as u64).min(self.gauge.messages.load(Ordering::Relaxed)), Ordering::Relaxed);
        let Some(head) = self.segments.front() else { return Ok(()) };
        if head.seq != u.seq {
            return Ok(());
        }
        let Some(reader) = self.reader.as_mut() else { return Ok(()) };
        let at = if lines < u.ends.len() {
            let at = if lines == 0 { u.start } else { u.ends[lines - 1] };
            reader.seek(SeekFrom::Start(at))?;
            at
        } else {
            reader.stream_position()?
        };
        if at >= head.bytes {
            let is_writer = self.segments.len() == 1 && self.writer.is_some();
            if is_writer {
                // Caught up with the open segment: empty it in place rather
                // than delete and create a file per batch.
                let w = self.writer.as_mut().expect("the open segment");
                w.set_len(0)?;
                let seg = self.segments.front_mut().expect("the head");
                self.gauge.bytes.fetch_sub(seg.bytes.min(self.gauge.bytes.load(Ordering::Relaxed)), Ordering::Relaxed);
                self.gauge.messages.store(0, Ordering::Relaxed);
                (seg.bytes, seg.start) = (0, 0);
                self.reader = None;
            } else {
                self.reader = None;
                self.drop_head()?;
            }
        }
        Ok(())
    }

    /// Removes the open segment when nothing is pending in it (a graceful
    /// stop), so that an empty folder means an empty spool.
    ///
    /// # Errors
    /// When the file cannot be removed.
    pub fn close_if_empty(&mut self) -> io::Result<()> {
        if self.segments.len() == 1 && self.segments[0].bytes == 0 {
            let seg = self.segments.pop_front().expect("one segment");
            self.writer = None;
            self.reader = None;
            fs::remove_file(&seg.path)?;
        }
        Ok(())
    }

    /// Forces pending lines to disk (graceful stop).
    ///
    /// # Errors
    /// When the file cannot be synced.
    pub fn sync(&mut self) -> io::Result<()> {
        if let Some(w) = self.writer.as_mut()
            && self.dirty
        {
            w.sync_data()?;
            self.dirty = false;
        }
        Ok(())
    }
}

/// Reads whole lines from `reader`, with the offset where each ends; true
/// when it reached the end of the file.
fn read_lines(
    reader: &mut BufReader<File>,
    max: usize,
    max_bytes: usize,
    writing: bool,
    dir: &Path,
    seq: u64,
) -> io::Result<(Vec<String>, Vec<u64>, bool)> {
    let mut out = Vec::new();
    let mut ends = Vec::new();
    let mut bytes = 0usize;
    let mut line = String::new();
    let mut at = reader.stream_position()?;
    while out.len() < max && bytes < max_bytes {
        line.clear();
        let n = reader.read_line(&mut line)?;
        if n == 0 {
            return Ok((out, ends, true));
        }
        if !line.ends_with('\n') {
            if writing {
                // Not possible for lines this process wrote (they are flushed
                // whole); read it again next time.
                reader.seek(SeekFrom::Current(-(n as i64)))?;
                return Ok((out, ends, false));
            }
            log::warn!("Spool {}: skipping a line cut short ({n} bytes) in segment {seq}", dir.display());
            return Ok((out, ends, true));
        }
        bytes += n;
        at += n as u64;
        ends.push(at);
        out.push(line.trim_end_matches('\n').to_owned());
    }
    Ok((out, ends, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Files holding something (the open segment stays, emptied, once caught up).
    fn files(dir: &Path) -> usize {
        fs::read_dir(dir)
            .expect("dir")
            .filter(|e| e.as_ref().expect("entry").metadata().expect("meta").len() > 0)
            .count()
    }

    #[test]
    fn lines_come_back_in_order_and_only_commit_removes_them() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut s = Spool::open(dir.path()).expect("open");
        assert!(s.is_empty());
        s.append(["a", "b", "c"]).expect("append");
        assert_eq!(s.peek(2, usize::MAX).expect("peek"), ["a", "b"]);
        // Not committed: the same lines again.
        assert_eq!(s.peek(2, usize::MAX).expect("peek"), ["a", "b"]);
        s.commit(2).expect("commit");
        s.append(["d"]).expect("append");
        assert_eq!(s.peek(10, usize::MAX).expect("peek"), ["c", "d"]);
        s.commit(2).expect("commit");
        assert!(s.is_empty());
        assert_eq!(files(dir.path()), 0, "a delivered spool leaves no file");
        assert_eq!(s.gauge().bytes.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_restart_finds_what_was_left_and_skips_a_cut_line() {
        let dir = tempfile::tempdir().expect("tmp");
        {
            let mut s = Spool::open(dir.path()).expect("open");
            s.append(["one", "two"]).expect("append");
            s.sync().expect("sync");
        }
        // A crash cut the last line of the segment.
        let seg = fs::read_dir(dir.path()).expect("dir").next().expect("a file").expect("entry").path();
        let mut f = OpenOptions::new().append(true).open(&seg).expect("open");
        f.write_all(b"{\"cut").expect("write");
        let mut s = Spool::open(dir.path()).expect("reopen");
        assert_eq!(s.gauge().messages.load(Ordering::Relaxed), 3, "counted lines, the cut one included");
        s.append(["three"]).expect("append after restart goes to a new segment");
        assert_eq!(files(dir.path()), 2);
        assert_eq!(s.peek(10, usize::MAX).expect("peek"), ["one", "two"]);
        s.commit(2).expect("commit");
        assert_eq!(s.peek(10, usize::MAX).expect("peek"), ["three"]);
        s.commit(1).expect("commit");
        assert!(s.is_empty());
        assert_eq!(files(dir.path()), 0);
    }

    #[test]
    fn a_prepended_batch_comes_first_and_the_head_keeps_its_place() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut s = Spool::open(dir.path()).expect("open");
        s.append(["c", "d", "e"]).expect("append");
        assert_eq!(s.peek(1, usize::MAX).expect("peek"), ["c"]);
        s.commit(1).expect("commit");
        s.prepend(["a", "b"]).expect("prepend");
        let mut all = Vec::new();
        loop {
            let got = s.peek(10, usize::MAX).expect("peek");
            if got.is_empty() {
                break;
            }
            s.commit(got.len()).expect("commit");
            all.extend(got);
        }
        assert_eq!(all, ["a", "b", "d", "e"]);
        assert_eq!(files(dir.path()), 0);
    }

    #[test]
    fn a_partial_commit_hands_the_rest_out_again() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut s = Spool::open(dir.path()).expect("open");
        s.append(["a", "b", "c", "d"]).expect("append");
        assert_eq!(s.peek(3, usize::MAX).expect("peek"), ["a", "b", "c"]);
        s.commit(1).expect("commit one of three");
        assert_eq!(s.peek(10, usize::MAX).expect("peek"), ["b", "c", "d"]);
        s.commit(0).expect("commit none");
        assert_eq!(s.peek(10, usize::MAX).expect("peek"), ["b", "c", "d"]);
        s.commit(3).expect("commit all");
        assert!(s.is_empty());
        assert_eq!(s.gauge().messages.load(Ordering::Relaxed), 0);
        assert_eq!(files(dir.path()), 0);
    }

    #[test]
    fn large_spools_roll_segments() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut s = Spool::open(dir.path()).expect("open");
        let line = "x".repeat(1 << 20);
        for _ in 0..20 {
            s.append([line.as_str()]).expect("append");
        }
        assert!(files(dir.path()) >= 2, "20 MiB spans segments of 8 MiB");
        let mut n = 0;
        loop {
            let got = s.peek(4, usize::MAX).expect("peek");
            if got.is_empty() {
                break;
            }
            n += got.len();
            s.commit(got.len()).expect("commit");
        }
        assert_eq!(n, 20);
        assert_eq!(files(dir.path()), 0);
    }
}
