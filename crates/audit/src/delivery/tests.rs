//! Tests of [`super::Delivery`] with an in-process destination that can be
//! switched off or made to refuse records: order through outages, a restart
//! with a spool, onFull DROP and BLOCK, refused batches split down to the
//! culprit, per-record rejections, bad spool lines.

use std::sync::atomic::AtomicBool;

use super::*;
use crate::Topic;
use crate::message::{EventId, Message};

/// How the fake destination answers a batch holding a "bad" record.
#[derive(Clone, Copy, Default, PartialEq)]
enum Mode {
    /// Refuses the whole batch without saying which record (an HTTP 413).
    #[default]
    Refuse,
    /// Names the bad records (Kafka's per-record errors).
    Name,
}

/// An in-process destination that can be switched off, and that never takes
/// a record whose body holds `"bad"`.
#[derive(Clone, Default)]
struct Fake {
    got: Arc<Mutex<Vec<String>>>,
    off: Arc<AtomicBool>,
    calls: Arc<AtomicU64>,
    mode: Mode,
}

impl Sink<Message> for Fake {
    fn deliver(&mut self, batch: &[Message]) -> Result<(), Failure> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.off.load(Ordering::SeqCst) {
            return Err(Failure::Retry("switched off".into()));
        }
        let bad: Vec<usize> = (0..batch.len()).filter(|i| batch[*i].text.contains("\"bad\"")).collect();
        if !bad.is_empty() && self.mode == Mode::Refuse {
            return Err(Failure::Refused("413 batch too large".into()));
        }
        let mut got = self.got.lock().expect("lock");
        got.extend(batch.iter().enumerate().filter(|(i, _)| !bad.contains(i)).map(|(_, m)| m.event_id.to_string()));
        if bad.is_empty() {
            Ok(())
        } else {
            Err(Failure::Rejected(bad.into_iter().map(|i| (i, "too large".to_owned())).collect()))
        }
    }
}

fn msg(i: usize) -> Message {
    let id = format!("e{i:05}");
    let text = format!(r#"{{"topic":"apinode-query","eventId":"{id}"}}"#);
    Message {
        topic: Topic::ApinodeQuery,
        level: log::Level::Info,
        routing_key: None,
        event_id: EventId::from_text(&id),
        text: Arc::from(text),
    }
}

fn bad_msg(i: usize) -> Message {
    let mut m = msg(i);
    m.text = Arc::from(format!(r#"{{"topic":"apinode-query","eventId":"{}","x":"bad"}}"#, m.event_id));
    m
}

/// A delivery to `fake`, spooling in `dir`.
fn start(dir: &std::path::Path, fake: &Fake, settings: DeliverySettings) -> Delivery<Message> {
    start_with_events(dir, fake, settings, None)
}

fn start_with_events(
    dir: &std::path::Path,
    fake: &Fake,
    settings: DeliverySettings,
    events: Option<Events>,
) -> Delivery<Message> {
    let sink = fake.clone();
    Delivery::start("t", "TEST", dir, settings, Box::new(move || Box::new(sink)), events).expect("start")
}

fn settings(on_full: OnFull, cap: u64) -> DeliverySettings {
    DeliverySettings { on_full, spool_max_bytes: cap, queue_capacity: 64 }
}

fn wait_for(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn ids(range: impl Iterator<Item = usize>) -> Vec<String> {
    range.map(|i| format!("e{i:05}")).collect()
}

fn dead_letters(dir: &std::path::Path) -> Vec<serde_json::Value> {
    let Ok(entries) = std::fs::read_dir(dir.join(dead_letter::FOLDER)) else { return Vec::new() };
    let mut out = Vec::new();
    for e in entries {
        let text = std::fs::read_to_string(e.expect("entry").path()).expect("read");
        out.extend(text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json")));
    }
    out
}

#[test]
fn an_outage_delays_messages_and_keeps_their_order() {
    let dir = tempfile::tempdir().expect("tmp");
    let fake = Fake::default();
    let d = start(dir.path(), &fake, settings(OnFull::Block, 1 << 30));
    for i in 0..100 {
        d.send(msg(i));
    }
    wait_for("the first delivery", || fake.got.lock().expect("lock").len() == 100);
    fake.off.store(true, Ordering::SeqCst);
    for i in 100..3000 {
        d.send(msg(i));
    }
    wait_for("the spool", || d.shared.stats.spooled.load(Ordering::Relaxed) >= 2900);
    assert!(d.shared.gauge.messages.load(Ordering::Relaxed) > 0);
    fake.off.store(false, Ordering::SeqCst);
    wait_for("the replay", || fake.got.lock().expect("lock").len() >= 3000);
    d.shutdown(Instant::now() + Duration::from_secs(5));
    let got = fake.got.lock().expect("lock").clone();
    assert_eq!(got, ids(0..3000), "every message once, in order");
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0, "the spool is empty");
}

#[test]
fn a_stop_while_down_keeps_everything_for_the_next_start() {
    let dir = tempfile::tempdir().expect("tmp");
    let fake = Fake::default();
    fake.off.store(true, Ordering::SeqCst);
    let d = start(dir.path(), &fake, settings(OnFull::Block, 1 << 30));
    for i in 0..500 {
        d.send(msg(i));
    }
    d.shutdown(Instant::now() + Duration::from_millis(200));
    assert!(fake.got.lock().expect("lock").is_empty());
    // Next start, destination back: the spool is delivered first.
    fake.off.store(false, Ordering::SeqCst);
    let d = start(dir.path(), &fake, settings(OnFull::Block, 1 << 30));
    d.send(msg(500));
    wait_for("the replay", || fake.got.lock().expect("lock").len() >= 501);
    d.shutdown(Instant::now() + Duration::from_secs(5));
    assert_eq!(*fake.got.lock().expect("lock"), ids(0..501));
}

#[test]
fn a_full_spool_drops_queries_under_drop_and_counts_them() {
    let dir = tempfile::tempdir().expect("tmp");
    let fake = Fake::default();
    fake.off.store(true, Ordering::SeqCst);
    let d = start(dir.path(), &fake, settings(OnFull::Drop, 4096));
    let mut sent = 0;
    while d.shared.gauge.bytes.load(Ordering::Relaxed) < 4096 {
        d.send(msg(sent));
        sent += 1;
        std::thread::sleep(Duration::from_micros(200));
    }
    for i in 0..10 {
        d.send(msg(sent + i));
    }
    assert_eq!(d.dropped(), 10, "the ten sent while full are dropped and counted");
    let snap = d.snapshot();
    assert_eq!(snap["dropped"], 10);
    assert_eq!(snap["state"], "DOWN");
    d.shutdown(Instant::now());
}

#[test]
fn a_full_spool_under_block_hands_the_record_back_and_a_blocking_send_waits_for_room() {
    let dir = tempfile::tempdir().expect("tmp");
    let fake = Fake::default();
    fake.off.store(true, Ordering::SeqCst);
    let d = Arc::new(start(dir.path(), &fake, settings(OnFull::Block, 4096)));
    let mut sent = 0;
    while d.shared.gauge.bytes.load(Ordering::Relaxed) < 4096 {
        d.send(msg(sent));
        sent += 1;
        std::thread::sleep(Duration::from_micros(200));
    }
    let back = d.try_send(msg(sent)).expect_err("a full spool under BLOCK hands the record back");
    assert_eq!(back.event_id.as_str(), format!("e{sent:05}"));
    let waiting = {
        let d = d.clone();
        std::thread::spawn(move || d.send(back))
    };
    std::thread::sleep(Duration::from_millis(200));
    assert!(!waiting.is_finished(), "a blocking send waits while the spool is full");
    fake.off.store(false, Ordering::SeqCst);
    waiting.join().expect("the sender is released once the spool drains");
    wait_for("everything", || fake.got.lock().expect("lock").len() > sent);
    d.shutdown(Instant::now() + Duration::from_secs(5));
    assert_eq!(*fake.got.lock().expect("lock"), ids(0..=sent), "nothing lost, order kept");
    assert!(d.snapshot()["blockedWaits"].as_u64() >= Some(1));
}

/// A refused batch is split until the bad record is alone; it goes to the
/// dead letters, is counted and reported, and everything else is delivered
/// once, in order, from the queue and from the spool alike.
#[test]
fn a_refused_batch_is_split_and_only_the_culprit_is_rejected() {
    for mode in [Mode::Refuse, Mode::Name] {
        let dir = tempfile::tempdir().expect("tmp");
        let fake = Fake { mode, ..Fake::default() };
        let (events, reports) = Events::channel();
        let d = start_with_events(dir.path(), &fake, settings(OnFull::Block, 1 << 30), Some(events));
        let bad = [7usize, 300, 301, 999];
        for i in 0..1000 {
            d.send(if bad.contains(&i) { bad_msg(i) } else { msg(i) });
        }
        wait_for("the good ones", || fake.got.lock().expect("lock").len() >= 996);
        // The same through the spool: an outage, then the replay.
        fake.off.store(true, Ordering::SeqCst);
        for i in 1000..1500 {
            d.send(if i == 1234 { bad_msg(i) } else { msg(i) });
        }
        wait_for("the spool", || d.shared.stats.spooled.load(Ordering::Relaxed) >= 400);
        fake.off.store(false, Ordering::SeqCst);
        wait_for("the replay", || fake.got.lock().expect("lock").len() >= 1495);
        d.shutdown(Instant::now() + Duration::from_secs(5));
        let all_bad = [7usize, 300, 301, 999, 1234];
        let want = ids((0..1500).filter(|i| !all_bad.contains(i)));
        assert_eq!(*fake.got.lock().expect("lock"), want, "every good record once, in order");
        let dead = dead_letters(dir.path());
        let dead_ids: Vec<&str> = dead.iter().map(|d| d["record"]["eventId"].as_str().expect("id")).collect();
        assert_eq!(dead_ids, ids(all_bad.into_iter()), "the culprits, in the dead letters");
        assert_eq!(d.snapshot()["rejected"], 5);
        let rejected: Vec<Event> =
            reports.try_iter().map(|(_, e)| e).filter(|e| matches!(e, Event::Rejected { .. })).collect();
        assert_eq!(rejected.len(), 5, "{rejected:?}");
        if mode == Mode::Refuse {
            // Splitting costs about 2·log2(batch) calls per culprit, not one per record.
            assert!(fake.calls.load(Ordering::SeqCst) < 400, "calls: {}", fake.calls.load(Ordering::SeqCst));
        }
    }
}

#[test]
fn a_spool_line_that_is_not_a_record_goes_to_the_dead_letters() {
    let dir = tempfile::tempdir().expect("tmp");
    {
        let mut s = Spool::open(dir.path()).expect("spool");
        let (a, b) = (msg(0), msg(1));
        s.append([&*a.text, "garbage", &*b.text]).expect("append");
        s.sync().expect("sync");
    }
    let fake = Fake::default();
    let d = start(dir.path(), &fake, settings(OnFull::Block, 1 << 30));
    wait_for("the replay", || fake.got.lock().expect("lock").len() >= 2);
    d.shutdown(Instant::now() + Duration::from_secs(5));
    assert_eq!(*fake.got.lock().expect("lock"), ids(0..2));
    let dead = dead_letters(dir.path());
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["line"], "garbage");
    assert_eq!(d.snapshot()["badSpoolLines"], 1);
}
