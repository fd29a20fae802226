//! The spooler thread of one target: appends the records whose senders wait
//! (a [`Ticket`](crate::commit::Ticket)) to the spool, a batch at a time
//! (one `write`; one sync when some ticket of the batch asks for it), then
//! settles their tickets and wakes the worker, which delivers from the
//! spool. A record whose sender cancelled is dropped unwritten. When the
//! spool cannot be written the batch's records are lost (counted, their
//! tickets failed, reported once per failure), and the spool is probed every
//! 500 ms until it takes writes again.

use std::borrow::Cow;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Event, Record, Shared, lock};

/// At most this many records per append.
const BATCH: usize = 4096;
/// While the spool fails, it is probed this often.
const PROBE_EVERY: Duration = Duration::from_millis(500);

pub(super) fn run<R: Record>(shared: &Shared<R>) {
    loop {
        let (batch, stop) = {
            let mut journal = lock(&shared.journal);
            while journal.items.is_empty() && !journal.stop {
                journal.sleeping = true;
                let wait =
                    if shared.stats.failing.load(Ordering::Relaxed) { PROBE_EVERY } else { Duration::from_secs(3600) };
                let (j, timeout) =
                    shared.journal_wake.wait_timeout(journal, wait).unwrap_or_else(std::sync::PoisonError::into_inner);
                journal = j;
                journal.sleeping = false;
                if timeout.timed_out() {
                    break;
                }
            }
            let n = journal.items.len().min(BATCH);
            let batch: Vec<_> = journal.items.drain(..n).collect();
            (batch, journal.stop && journal.items.is_empty())
        };
        if batch.is_empty() {
            if stop {
                return;
            }
            probe(shared);
            continue;
        }
        append(shared, batch);
        if stop && lock(&shared.journal).items.is_empty() {
            return;
        }
    }
}

fn probe<R: Record>(shared: &Shared<R>) {
    if !shared.stats.failing.load(Ordering::Relaxed) {
        return;
    }
    if shared.spool().probe().is_ok() {
        recovered(shared);
    }
}

fn recovered<R: Record>(shared: &Shared<R>) {
    if shared.stats.failing.swap(false, Ordering::Relaxed) {
        let lost = shared.stats.lost.load(Ordering::Relaxed);
        log::info!("Audit target {}: its spool takes writes again", shared.name);
        shared.report(Event::WriteRecovered { lost });
    }
}

pub(super) fn append<R: Record>(shared: &Shared<R>, batch: Vec<(R, crate::commit::Ticket)>) {
    let mut kept = Vec::with_capacity(batch.len());
    for (record, ticket) in batch {
        if ticket.start() {
            kept.push((record, ticket));
        } else {
            // Its sender was told "not recorded" and gave up: never written.
            ticket.done();
        }
    }
    if kept.is_empty() {
        return;
    }
    let sync = kept.iter().any(|(_, t)| t.sync());
    let written = {
        let lines: Vec<Cow<'_, str>> = kept.iter().map(|(r, _)| r.line()).collect();
        let mut spool = shared.spool();
        spool.append(lines.iter().map(|l| &**l)).and_then(|()| if sync { spool.sync() } else { Ok(()) })
    };
    match written {
        Ok(()) => {
            shared.stats.spooled.fetch_add(kept.len() as u64, Ordering::Relaxed);
            recovered(shared);
            for (_, t) in &kept {
                t.done();
            }
            let mut queue = shared.queue();
            if queue.sleeping {
                queue.sleeping = false;
                shared.wake.notify_one();
            }
        }
        Err(e) => {
            let n = kept.len() as u64;
            let lost = shared.stats.lost.fetch_add(n, Ordering::Relaxed) + n;
            let first = !shared.stats.failing.swap(true, Ordering::Relaxed);
            let reason = format!("spool of audit target {}: {e}", shared.name);
            log::error!("Audit target {}: {n} records could not be spooled and are lost: {e}", shared.name);
            shared.report(Event::WriteFailed { error: e.to_string(), lost, first });
            for (_, t) in &kept {
                t.failed(&reason);
            }
        }
    }
}
