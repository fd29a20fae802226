//! An answered request is an audited request (docs/integrity.md), with real
//! processes: nodes run by `bin/dss`, killed with `kill -9` at random moments
//! under load, audit files on a small tmpfs that fills up, rolling files with
//! retention. Counted per request id, never eyeballed: answered vs recorded.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::Digest as _;

use crate::common::dss::DssNode;
use crate::common::eventserver::EventServer;
use crate::common::{data_dir, send};

/// A small pseudo-random generator (xorshift), seeded from the clock and
/// printed, so that a failing run can be replayed.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn seeded(what: &str) -> Rng {
        let seed = std::env::var("APINODE_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1
        });
        eprintln!("{what}: seed {seed} (APINODE_TEST_SEED replays it)");
        Rng(seed)
    }

    /// A number in `lo..hi`.
    pub(crate) fn between(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        lo + self.0 % (hi - lo)
    }
}

/// Every line of the files of `dir` whose names start with `prefix`
/// (current, rolled, `.gz`), and how many did not parse as JSON.
fn lines(dir: &Path, prefix: &str) -> (Vec<Value>, Vec<String>) {
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    let Ok(entries) = std::fs::read_dir(dir) else { return (good, bad) };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(prefix)))
        .collect();
    paths.sort();
    for path in paths {
        let mut text = String::new();
        let file = std::fs::File::open(&path).expect("open");
        if path.extension().is_some_and(|e| e == "gz") {
            flate2::read::MultiGzDecoder::new(file).read_to_string(&mut text).expect("gunzip");
        } else {
            std::io::BufReader::new(file).read_to_string(&mut text).expect("read");
        }
        for line in text.lines() {
            match serde_json::from_str::<Value>(line) {
                Ok(v) => good.push(v),
                Err(_) => bad.push(format!("{}: {line:.120}", path.display())),
            }
        }
    }
    (good, bad)
}

/// The request ids of the query records in `run/audit` (every line must parse).
pub(crate) fn recorded_ids(node: &DssNode) -> BTreeMap<String, usize> {
    recorded_ids_in(node, "queries.log")
}

/// The request ids of the records of `run/audit/<file>*` (every line must parse).
fn recorded_ids_in(node: &DssNode, file: &str) -> BTreeMap<String, usize> {
    let (records, bad) = lines(&node.dir.path().join("run/audit"), file);
    assert!(bad.is_empty(), "{} lines do not parse, such as {:?}", bad.len(), &bad[..bad.len().min(3)]);
    let mut ids = BTreeMap::new();
    for r in records {
        let id = r["message"]["requestId"].as_str().expect("a record has a requestId").to_owned();
        *ids.entry(id).or_default() += 1;
    }
    ids
}

/// Sends predictions with their own request ids (`<tag>-<client>-<i>`) from
/// `clients` tasks until `stop`; returns the ids answered 200 and the other
/// statuses seen.
pub(crate) async fn load(
    base: String,
    tag: String,
    clients: usize,
    stop: Arc<AtomicBool>,
) -> (Vec<String>, BTreeMap<u16, u64>) {
    load_kind(base, tag, clients, stop, false).await
}

/// [`load`] of predictions, or (`outcomes`) of outcomes, one per request,
/// whose request ids are `<tag>-<client>-<i>`.
async fn load_kind(
    base: String,
    tag: String,
    clients: usize,
    stop: Arc<AtomicBool>,
    outcomes: bool,
) -> (Vec<String>, BTreeMap<u16, u64>) {
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let (base, tag, stop) = (base.clone(), tag.clone(), stop.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let (mut ok, mut other) = (Vec::new(), BTreeMap::<u16, u64>::new());
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let id = format!("{tag}-{c}-{i}");
                    let sent = if outcomes {
                        client
                            .post(format!("{base}/public/api/v1/kinds/linear/feedback"))
                            .json(&json!({"items": [{"requestId": id, "outcome": i % 7}]}))
                            .send()
                            .await
                    } else {
                        client
                            .post(format!("{base}/public/api/v1/kinds/linear/predict"))
                            .header("x-request-id", &id)
                            .json(&json!({"features": {"x": i % 50, "color": "red"}}))
                            .send()
                            .await
                    };
                    match sent {
                        Ok(r) if r.status().is_success() => {
                            // Only a whole answer counts as answered.
                            if r.bytes().await.is_ok() {
                                ok.push(id);
                            }
                        }
                        Ok(r) => *other.entry(r.status().as_u16()).or_default() += 1,
                        Err(_) => {
                            if stop.load(Ordering::Relaxed) {
                                break;
                            }
                            // The node is gone (killed): stop this client.
                            break;
                        }
                    }
                }
                (ok, other)
            })
        })
        .collect();
    let (mut ok, mut other) = (Vec::new(), BTreeMap::new());
    for h in handles {
        let (o, s) = h.await.expect("client");
        ok.extend(o);
        for (k, v) in s {
            *other.entry(k).or_insert(0) += v;
        }
    }
    (ok, other)
}

pub(crate) fn kill9(node: &DssNode) {
    let pid = std::fs::read_to_string(node.dir.path().join("run/apinode.pid")).expect("pid file");
    let status = Command::new("kill").args(["-9", pid.trim()]).status().expect("kill");
    assert!(status.success());
    // Wait until the process is gone.
    let proc = PathBuf::from(format!("/proc/{}", pid.trim()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while proc.exists() && std::fs::read_to_string(proc.join("stat")).is_ok_and(|s| !s.contains(") Z")) {
        assert!(Instant::now() < deadline, "the node did not die");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Loads `node` with 16 clients and kills it with `kill -9` at a random
/// moment, `trials` times, restarting it each time; returns every id
/// answered.
async fn crash_trials(node: &DssNode, rng: &mut Rng, trials: usize, tag: &str) -> (Vec<String>, Vec<usize>) {
    crash_trials_of(node, rng, trials, tag, false).await
}

/// [`crash_trials`] of predictions, or (`outcomes`) of outcomes.
async fn crash_trials_of(
    node: &DssNode,
    rng: &mut Rng,
    trials: usize,
    tag: &str,
    outcomes: bool,
) -> (Vec<String>, Vec<usize>) {
    let mut answered = Vec::new();
    let mut per_trial = Vec::new();
    for trial in 0..trials {
        node.start();
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(load_kind(node.base(), format!("{tag}{trial}"), 16, stop.clone(), outcomes));
        let after = rng.between(300, 1500);
        tokio::time::sleep(Duration::from_millis(after)).await;
        kill9(node);
        stop.store(true, Ordering::Relaxed);
        let (ok, _) = task.await.expect("load");
        eprintln!("{tag} trial {trial}: killed after {after} ms, {} requests answered", ok.len());
        per_trial.push(ok.len());
        answered.extend(ok);
    }
    (answered, per_trial)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_under_load_loses_no_answered_record_in_the_files() {
    let node = DssNode::with_settings(data_dir(), None, json!({"auditLog": {"durability": "WRITTEN"}}));
    let mut rng = Rng::seeded("kill -9, files");
    let (answered, _) = crash_trials(&node, &mut rng, 10, "f").await;
    // The node restarts on what the crashes left, and stops cleanly.
    node.start();
    node.stop();
    all_recorded_once(&answered, &recorded_ids(&node), "queries.log");
    eprintln!("kill -9, files: {} answered, all {} recorded, 0 lost", answered.len(), answered.len());
}

/// Every answered id is one `reached` has (`place`: where they were looked for).
fn none_missing(answered: &[String], reached: impl Fn(&str) -> bool, place: &str) {
    let missing: Vec<&String> = answered.iter().filter(|id| !reached(id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} answered requests never reached {place}, such as {:?}",
        missing.len(),
        answered.len(),
        &missing[..missing.len().min(5)]
    );
}

/// Every answered id is in `recorded` (from `file`), and none twice.
fn all_recorded_once(answered: &[String], recorded: &BTreeMap<String, usize>, file: &str) {
    none_missing(answered, |id| recorded.contains_key(id), file);
    let twice: Vec<_> = recorded.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(twice.is_empty(), "recorded twice: {twice:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_under_load_loses_no_answered_outcome() {
    let node = DssNode::with_settings(data_dir(), None, json!({"auditLog": {"durability": "WRITTEN"}}));
    let mut rng = Rng::seeded("kill -9, outcomes");
    let (answered, _) = crash_trials_of(&node, &mut rng, 4, "o", true).await;
    node.start();
    node.stop();
    assert!(answered.len() > 100, "the load ran: {} outcomes answered", answered.len());
    all_recorded_once(&answered, &recorded_ids_in(&node, "feedback.log"), "feedback.log");
    eprintln!("kill -9, outcomes: {} answered, all recorded once, 0 lost", answered.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_under_load_loses_no_answered_record_on_the_way_to_the_event_server() {
    let es = EventServer::new(json!({}));
    es.start();
    let target = json!({"type": "EVENT_SERVER", "name": "central", "url": es.url()});
    let settings = json!({"auditLog": {"settings": {"targets": [{"type": "LOG4J"}, target]}}});
    let node = DssNode::with_settings(data_dir(), None, settings);
    let mut rng = Rng::seeded("kill -9, event server");
    let (answered, _) = crash_trials(&node, &mut rng, 10, "e").await;
    // The restarted node replays its spool (the write-ahead log) to the event server.
    node.start();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let m = send(
            reqwest::Client::new()
                .get(format!("{}/admin/api/metrics", node.base()))
                .basic_auth(node.admin_secret(), Some("")),
        )
        .await;
        let t = &m.ok()["audit"]["targets"]["central"];
        if t["spoolMessages"] == 0 && t["queued"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the spool was not replayed in 2 minutes: {t}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    node.stop();
    es.stop();
    let recorded = recorded_ids(&node);
    let mut central: BTreeSet<String> = BTreeSet::new();
    for s in EventServer::stored(&es.root()) {
        let e = &s.line["clientEvent"];
        if e["topic"] == "apinode-query" {
            central.insert(e["requestId"].as_str().expect("requestId").to_owned());
        }
    }
    let places =
        [("queries.log", recorded.keys().cloned().collect::<BTreeSet<String>>()), ("the event server", central)];
    for (what, has) in &places {
        none_missing(&answered, |id| has.contains(id), what);
    }
    eprintln!("kill -9, event server: {} answered, all in the files and at the event server", answered.len());
}

/// Under WRITTEN the Kafka log4j appender journals each record in its spool
/// before the answer: killed with `kill -9` under load (a live broker), the
/// restarted node delivers every answered record (at least once).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_under_load_loses_no_answered_record_on_the_way_to_kafka() {
    let broker = crate::common::kafka::Broker::start();
    broker.create_topic("crash-queries", 1);
    let appender = format!(
        "log4j.appender.KAFKA=org.apache.kafka.log4jappender.KafkaLog4jAppender
log4j.appender.KAFKA.BrokerList={}
log4j.appender.KAFKA.Topic=crash-queries
log4j.appender.KAFKA.layout=org.apache.log4j.PatternLayout
log4j.appender.KAFKA.layout.ConversionPattern=%m%n
log4j.logger.dku.apinode.audit.queries=INFO, QUERIES_AUDIT_FILE, KAFKA
",
        broker.bootstrap()
    );
    let node = DssNode::with_settings(data_dir(), Some(&appender), json!({}));
    let mut rng = Rng::seeded("kill -9, Kafka appender");
    let (answered, _) = crash_trials(&node, &mut rng, 3, "k").await;
    // The restarted node replays the appender's spool (its write-ahead log).
    node.start();
    let spool = node.dir.path().join("run/spool/kafka-appender-KAFKA");
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::fs::read_dir(&spool).map(Iterator::count).unwrap_or(0) > 0 {
        assert!(Instant::now() < deadline, "the appender's spool was not delivered in 2 minutes");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    node.stop();
    // At least once: a record delivered just before a crash may come again.
    let records = broker.consume("crash-queries", answered.len(), Duration::from_secs(60));
    let delivered: BTreeSet<String> = records
        .iter()
        .map(|r| {
            let v: Value = serde_json::from_str(&r.value).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.value));
            v["requestId"].as_str().expect("requestId").to_owned()
        })
        .collect();
    none_missing(&answered, |id| delivered.contains(id), &format!("Kafka ({} records read)", records.len()));
    eprintln!("kill -9, Kafka appender: {} answered, all delivered ({} records read)", answered.len(), records.len());
}

/// The loss window of ASYNC on a crash, measured (README states the figure).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_under_async_durability_loses_a_measured_window() {
    let node = DssNode::with_settings(data_dir(), None, json!({"auditLog": {"durability": "ASYNC"}}));
    let mut rng = Rng::seeded("kill -9, ASYNC");
    let mut lost = Vec::new();
    for trial in 0..5 {
        let before = recorded_ids(&node);
        let (answered, _) = crash_trials(&node, &mut rng, 1, &format!("a{trial}-")).await;
        let after = recorded_ids(&node);
        let missing = answered.iter().filter(|id| !after.contains_key(*id)).count();
        assert!(after.len() >= before.len(), "a crash never takes away what was recorded before it");
        lost.push((missing, answered.len()));
    }
    node.start();
    node.stop();
    eprintln!("kill -9 under ASYNC: answered but not recorded per crash (lost of answered): {lost:?}");
}

/// `mount -t tmpfs` of `size` on `dir` (tests run as root in CI; elsewhere
/// this test cannot run and says so).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).expect("mkdir");
        let out = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(dir).output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs(dir.to_path_buf())),
            Ok(o) => {
                let uid =
                    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
                assert_ne!(
                    uid.as_deref().ok(),
                    Some("0"),
                    "root could not mount a tmpfs: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
                eprintln!("skipped: mounting a tmpfs needs root");
                None
            }
            Err(e) => panic!("mount: {e}"),
        }
    }

    fn resize(&self, size: &str) {
        let out =
            Command::new("mount").args(["-o", &format!("remount,size={size}")]).arg(&self.0).output().expect("mount");
        assert!(out.status.success(), "remount: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

async fn metrics(node: &DssNode) -> Value {
    let r = reqwest::Client::new()
        .get(format!("{}/admin/api/metrics", node.base()))
        .basic_auth(node.admin_secret(), Some(""));
    send(r).await.ok().clone()
}

async fn is_alive(node: &DssNode) -> u16 {
    reqwest::get(format!("{}/isAlive/", node.base())).await.expect("isAlive").status().as_u16()
}

/// Sends `n` predictions one at a time; the ids answered 200, and the count of each other status.
async fn predictions(node: &DssNode, tag: &str, n: usize) -> (Vec<String>, BTreeMap<u16, u64>) {
    let client = reqwest::Client::new();
    let (mut ok, mut other) = (Vec::new(), BTreeMap::new());
    for i in 0..n {
        let id = format!("{tag}-{i}");
        let r = client
            .post(format!("{}/public/api/v1/kinds/linear/predict", node.base()))
            .header("x-request-id", &id)
            .json(&json!({"features": {"x": i % 50, "color": "red"}, "context": {"pad": "p".repeat(400)}}))
            .send()
            .await
            .expect("answer");
        if r.status().is_success() {
            ok.push(id);
        } else {
            *other.entry(r.status().as_u16()).or_default() += 1;
        }
    }
    (ok, other)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_under_continue_answers_and_counts_exactly_what_it_lost() {
    let dir = data_dir();
    let Some(fs) = Tmpfs::mount(&dir.path().join("run/audit"), "256k") else { return };
    let node = DssNode::with_settings(dir, None, json!({"auditLog": {"onWriteFailure": "CONTINUE"}}));
    node.start();
    // About 1 KB a record: the disk fills within a few hundred.
    let (mut answered, other) = predictions(&node, "full", 600).await;
    assert!(other.is_empty(), "CONTINUE answers everything: {other:?}");
    let m = metrics(&node).await;
    let lost = m["audit"]["writer"]["lost"]["dku.apinode.audit.queries"].as_u64().unwrap_or(0);
    assert!(lost > 0, "the disk filled up: {}", m["audit"]);
    assert!(m["audit"]["failing"] == true, "{}", m["audit"]);
    assert_eq!(is_alive(&node).await, 200, "CONTINUE stays alive");
    // Space returns: writes succeed again by themselves.
    fs.resize("64m");
    let recovered = Instant::now();
    while metrics(&node).await["audit"]["failing"] == true {
        assert!(recovered.elapsed() < Duration::from_secs(10), "not recovered 10 s after space returned");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (after, _) = predictions(&node, "after", 50).await;
    answered.extend(after.iter().cloned());
    let m = metrics(&node).await;
    let lost = m["audit"]["writer"]["lost"]["dku.apinode.audit.queries"].as_u64().unwrap_or(0);
    node.stop();
    let recorded = recorded_ids(&node);
    assert!(after.iter().all(|id| recorded.contains_key(id)), "everything after the recovery is recorded");
    assert!(recorded.keys().all(|id| answered.contains(id)), "only answered requests are recorded");
    assert_eq!(recorded.len() as u64 + lost, answered.len() as u64, "answered = recorded + counted as lost, exactly");
    let (failures, _) = lines(&node.dir.path().join("run/audit"), "failures.log");
    let reports: Vec<&Value> = failures.iter().filter(|f| f["message"]["msgType"] == "audit-write-failed").collect();
    let main = std::fs::read_to_string(node.dir.path().join("run/apimain.log")).expect("main log");
    assert!(
        !reports.is_empty() || main.contains("audit-write-failed") || main.contains("cannot be written"),
        "the failure is reported"
    );
    eprintln!("full disk, CONTINUE: {} answered, {} recorded, {lost} counted lost", answered.len(), recorded.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_under_refuse_answers_503_records_every_200_and_recovers_by_itself() {
    let dir = data_dir();
    let Some(fs) = Tmpfs::mount(&dir.path().join("run/audit"), "256k") else { return };
    let node = DssNode::with_settings(dir, None, json!({"auditLog": {"onWriteFailure": "REFUSE"}}));
    node.start();
    let (mut answered, other) = predictions(&node, "full", 600).await;
    assert!(other.get(&503).copied().unwrap_or(0) > 0, "REFUSE answers 503 once the disk is full: {other:?}");
    assert_eq!(other.keys().copied().collect::<Vec<_>>(), [503], "{other:?}");
    assert_eq!(is_alive(&node).await, 503, "not alive while writes fail");
    fs.resize("64m");
    let recovered = Instant::now();
    while is_alive(&node).await != 200 {
        assert!(recovered.elapsed() < Duration::from_secs(10), "not alive again 10 s after space returned");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (after, other) = predictions(&node, "after", 50).await;
    assert!(other.is_empty(), "serves again: {other:?}");
    answered.extend(after);
    node.stop();
    let recorded = recorded_ids(&node);
    let missing: Vec<&String> = answered.iter().filter(|id| !recorded.contains_key(*id)).collect();
    assert!(missing.is_empty(), "every 200 is recorded; missing: {:?}", &missing[..missing.len().min(5)]);
    eprintln!("full disk, REFUSE: {} answered 200, all recorded", answered.len());
}

/// `audit-file-deleted` announcements in the admin records of `apimain.log`.
fn deletions(node: &DssNode) -> Vec<Value> {
    std::fs::read_to_string(node.dir.path().join("run/apimain.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("[dku.apinode.audit.admin]") && l.contains("audit-file-deleted"))
        .map(|l| serde_json::from_str::<Value>(l.split_once(" - ").expect("pattern").1).expect("JSON"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_on_disk_plus_records_announced_deleted_equal_records_scored() {
    // (Compress, MaxBackupAge, MaxBackupIndex): by index, compressed, and by
    // age alone (an index the load never reaches, pauses longer than the age).
    for (compress, max_age, backups) in [(false, None, 2), (true, None, 2), (false, Some("1s"), 500)] {
        let mut overrides = format!(
            "log4j.appender.QUERIES_AUDIT_FILE.MaxFileSize=8KB\nlog4j.appender.QUERIES_AUDIT_FILE.MaxBackupIndex={backups}\n"
        );
        if compress {
            overrides.push_str("log4j.appender.QUERIES_AUDIT_FILE.Compress=gzip\n");
        }
        if let Some(age) = max_age {
            overrides.push_str(&format!("log4j.appender.QUERIES_AUDIT_FILE.MaxBackupAge={age}\n"));
        }
        let node = DssNode::with_settings(data_dir(), Some(&overrides), json!({}));
        node.start();
        let mut answered = Vec::new();
        for round in 0..3 {
            let (ok, other) = predictions(&node, &format!("r{round}"), 100).await;
            assert!(other.is_empty(), "{other:?}");
            answered.extend(ok);
            if max_age.is_some() {
                tokio::time::sleep(Duration::from_millis(1500)).await;
            }
        }
        node.stop();
        let on_disk = recorded_ids(&node);
        let announced = deletions(&node);
        let deleted: u64 = announced.iter().map(|d| d["records"].as_u64().expect("records")).sum();
        assert!(!announced.is_empty(), "small files roll and the oldest go");
        // Names are reused as files shift; contents are not: no file left
        // on disk is one that was announced deleted.
        let remaining: BTreeSet<String> = std::fs::read_dir(node.dir.path().join("run/audit"))
            .expect("dir")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("queries.log"))
            .map(|e| hex::encode(sha2::Sha256::digest(std::fs::read(e.path()).expect("read"))))
            .collect();
        for d in &announced {
            let hash = d["sha256"].as_str().expect("sha256");
            assert_eq!(hash.len(), 64, "{d}");
            assert!(!remaining.contains(hash), "announced deleted, yet still on disk: {d}");
        }
        assert_eq!(
            on_disk.len() as u64 + deleted,
            answered.len() as u64,
            "compress {compress}, age {max_age:?}, index {backups}: {} on disk + {deleted} announced deleted",
            on_disk.len()
        );
        let names: Vec<String> = std::fs::read_dir(node.dir.path().join("run/audit"))
            .expect("dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("queries.log"))
            .collect();
        if compress {
            assert!(names.iter().any(|n| n.ends_with(".gz")), "{names:?}");
        }
        assert!(!names.iter().any(|n| n.contains(".rolling-")), "nothing left half-rolled: {names:?}");
        let m = node.dir.path().join("run/audit");
        eprintln!(
            "retention (compress {compress}, age {max_age:?}): {} on disk, {deleted} deleted in {} files ({})",
            on_disk.len(),
            announced.len(),
            m.display()
        );
    }
}

#[tokio::test]
async fn more_items_than_the_limit_are_refused_whole_with_413() {
    let mut config = apinode::config::ServerConfig::default();
    config.limits.max_items_per_request = 10_000;
    let node = crate::common::TestNode::start_with(data_dir(), config).await;
    let items: Vec<Value> = (0..10_001).map(|_| json!({"features": {}})).collect();
    let r = node.post("/public/api/v1/kinds/linear/predict-multi", &json!({"items": items})).await;
    let message = r.error(413, "PayloadTooLarge");
    assert!(message.contains("10000") && message.contains("maxItemsPerRequest"), "{message}");
    assert!(node.audit.bodies(audit::Topic::ApinodeQuery).is_empty(), "no item was scored");
    assert_eq!(node.audit.bodies(audit::Topic::GenericFailure).len(), 1, "the refusal is recorded");
    let items: Vec<Value> = (0..10_000).map(|_| json!({"features": {}})).collect();
    let r = node.post("/public/api/v1/kinds/linear/predict-multi", &json!({"items": items})).await;
    assert_eq!(r.ok()["results"].as_array().map(Vec::len), Some(10_000), "the limit itself is allowed");
    node.stop().await;
}
