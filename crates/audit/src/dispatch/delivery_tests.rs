//! Tests of [`super::Delivery`] with an in-process destination that can be
//! switched off: order through outages, a restart with a spool, onFull DROP.

use std::sync::atomic::AtomicBool;

use super::*;
use crate::Topic;
use crate::message::EventId;

/// An in-process destination that can be switched off.
#[derive(Clone, Default)]
struct Fake {
    got: Arc<Mutex<Vec<String>>>,
    off: Arc<AtomicBool>,
}

impl Sink<Message> for Fake {
    fn deliver(&mut self, batch: &[Message]) -> Result<(), String> {
        if self.off.load(Ordering::SeqCst) {
            return Err("switched off".into());
        }
        self.got.lock().expect("lock").extend(batch.iter().map(|m| m.event_id.to_string()));
        Ok(())
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

/// A delivery to `fake`, spooling in `dir`.
fn start(dir: &std::path::Path, fake: &Fake, settings: DeliverySettings) -> Delivery<Message> {
    let sink = fake.clone();
    Delivery::start("t", "TEST", dir, settings, Box::new(move || Box::new(sink)), None).expect("start")
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
    assert!(d.gauge.messages.load(Ordering::Relaxed) > 0);
    fake.off.store(false, Ordering::SeqCst);
    wait_for("the replay", || fake.got.lock().expect("lock").len() >= 3000);
    d.shutdown(Instant::now() + Duration::from_secs(5));
    let got = fake.got.lock().expect("lock").clone();
    let want: Vec<String> = (0..3000).map(|i| format!("e{i:05}")).collect();
    assert_eq!(got, want, "every message once, in order");
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
    let got = fake.got.lock().expect("lock").clone();
    assert_eq!(got, (0..501).map(|i| format!("e{i:05}")).collect::<Vec<_>>());
}

#[test]
fn a_full_spool_drops_queries_under_drop_and_counts_them() {
    let dir = tempfile::tempdir().expect("tmp");
    let fake = Fake::default();
    fake.off.store(true, Ordering::SeqCst);
    let d = start(dir.path(), &fake, settings(OnFull::Drop, 4096));
    let mut sent = 0;
    while d.gauge.bytes.load(Ordering::Relaxed) < 4096 {
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
