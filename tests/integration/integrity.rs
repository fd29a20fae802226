//! Tamper evidence (docs/integrity.md "Tamper evidence"), with real
//! processes: nodes run by `bin/dss` under load, an event server as witness,
//! `apinode-admin audit-verify` / `audit-prove` on the files, and proofs and
//! checkpoint chains checked by an independent verifier in Python
//! (`tlog_check.py`, with the `cryptography` package).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use audit::integrity::tlog::merkle::leaf_hash;
use audit::integrity::tlog::note::{Checkpoint, NoteSigner};
use serde_json::{Value, json};

use crate::common::dss::DssNode;
use crate::common::eventserver::EventServer;
use crate::common::{admin, data_dir, python};
use crate::durability::{Rng, kill9, load, recorded_ids};

const NODE: &str = "test-node";
const QUERIES: &str = "test-node/QUERIES_AUDIT_FILE";

/// `audit-verify --output json`, with more checkpoint folders: (exit ok, report).
fn verify(dir: &Path, checkpoints: &[&Path]) -> (bool, Value) {
    let mut c = admin(dir);
    c.args(["--output", "json", "audit-verify"]);
    for p in checkpoints {
        c.arg("--checkpoints").arg(p);
    }
    let out = c.output().expect("apinode-admin");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {} {}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    });
    (out.status.success(), report)
}

/// The report of one appender.
fn appender<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["appenders"].as_array().expect("appenders").iter().find(|a| a["appender"] == name).expect("appender")
}

/// The independent verifier: `tlog_check.py MODE KEY PATH` → (ok, its line).
fn python_check(mode: &str, key: &str, path: &Path) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration/tlog_check.py");
    let out = Command::new(python()).arg(script).args([mode, key]).arg(path).output().expect("python");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// A node whose key exists before it starts (so that the witness can be
/// told), with checkpoints every second, sending them to `es` (a witness).
fn witnessed(overrides: Option<&str>) -> (DssNode, EventServer, String) {
    let dir = data_dir();
    let key = audit::integrity::signing_key(dir.path(), NODE).expect("key").verifier().to_text();
    let es = EventServer::new(json!({"witness": {"nodes": {NODE: key}}}));
    es.start();
    let settings = json!({"auditLog": {
        "integrity": {"checkpointIntervalSeconds": 1},
        "settings": {"targets": [{"type": "LOG4J"},
            {"type": "EVENT_SERVER", "name": "central", "url": es.url(),
             "topicsFiltering": "SELECTED", "topics": ["audit-integrity"]}]}}});
    (DssNode::with_settings(dir, overrides, settings), es, key)
}

async fn run_load(node: &DssNode, tag: &str, millis: u64) -> Vec<String> {
    let stop = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn(load(node.base(), tag.into(), 16, stop.clone()));
    tokio::time::sleep(Duration::from_millis(millis)).await;
    stop.store(true, Ordering::Relaxed);
    let (ok, other) = task.await.expect("load");
    assert!(other.is_empty(), "{other:?}");
    ok
}

/// A copy of a data directory, to tamper with.
fn copy(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().expect("tmp");
    let status = Command::new("cp").arg("-a").arg(format!("{}/.", from.display())).arg(to.path()).status().expect("cp");
    assert!(status.success());
    to
}

fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).expect("read").lines().map(str::to_owned).collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).expect("write");
}

/// Runs `verify` on a tampered copy and returns its first problem.
fn first_problem(dir: &Path, checkpoints: &[&Path], what: &str) -> Value {
    let (ok, report) = verify(dir, checkpoints);
    assert!(!ok, "{what}: verify exits 0 on a tampered trail: {report}");
    let problems: Vec<&Value> = report["appenders"]
        .as_array()
        .expect("appenders")
        .iter()
        .flat_map(|a| a["problems"].as_array().expect("problems"))
        .collect();
    assert!(!problems.is_empty(), "{what}: {report}");
    eprintln!("{what}: {}", problems[0]);
    problems[0].clone()
}

#[track_caller]
fn assert_problem(p: &Value, kind: &str, file: Option<&str>, line: Option<u64>) {
    assert_eq!(p["kind"], kind, "{p}");
    if let Some(f) = file {
        assert!(p["file"].as_str().is_some_and(|x| x.ends_with(f)), "{p}");
    }
    if let Some(l) = line {
        assert_eq!(p["line"], l, "{p}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_untouched_trail_verifies_and_every_tampering_is_named_with_its_file_and_line() {
    let rolling =
        "log4j.appender.QUERIES_AUDIT_FILE.MaxFileSize=48KB\nlog4j.appender.QUERIES_AUDIT_FILE.MaxBackupIndex=4\n";
    let (node, es, key) = witnessed(Some(rolling));
    node.start();
    let answered = run_load(&node, "t", 2500).await;
    // Let a periodic checkpoint cover the last records and reach the witness.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    node.stop();
    es.stop();
    let dir = node.dir.path();
    let witness = es.root().join("audit-integrity");
    let (ok, report) = verify(dir, &[&witness]);
    assert!(ok, "{report}");
    let q = appender(&report, "QUERIES_AUDIT_FILE");
    assert!(q["checkpointsChecked"].as_u64() > Some(2), "{q}");
    assert!(!q["deletedByRetention"].as_array().expect("list").is_empty(), "retention deleted files, announced: {q}");
    eprintln!(
        "untouched: {} answered; {} records verified in {} appenders",
        answered.len(),
        report["records"],
        report["appenders"].as_array().map_or(0, Vec::len)
    );
    let (ok, line) = python_check("chain", &key, &es.root());
    assert!(ok, "{line}");
    eprintln!("python: {line}");

    // A proof of a record still on disk, checked by the independent verifier.
    let kept = recorded_ids(&node);
    let id = answered.iter().rev().find(|id| kept.contains_key(*id)).expect("a kept record");
    let proof_file = dir.join("proof.json");
    let out = admin(dir).args(["audit-prove", id, "--output-file"]).arg(&proof_file).output().expect("prove");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (ok, line) = python_check("prove", &key, &proof_file);
    assert!(ok, "{line}");
    let mut forged: Value = serde_json::from_slice(&std::fs::read(&proof_file).expect("proof")).expect("json");
    forged["line"] = forged["line"].as_str().expect("line").replacen("linear", "linear ", 1).into();
    std::fs::write(&proof_file, forged.to_string()).expect("write");
    let (ok, line) = python_check("prove", &key, &proof_file);
    assert!(!ok, "a changed line must not verify: {line}");

    let rolled = "run/audit/queries.log.2";
    let a: &Path = &witness;
    // One byte flipped in a middle line.
    let t = copy(dir);
    let path = t.path().join(rolled);
    let mut l = lines_of(&path);
    l[4] = l[4].replacen("\"x\":", "\"x\": ", 1);
    write_lines(&path, &l);
    assert_problem(&first_problem(t.path(), &[a], "byte flipped"), "modified", Some(rolled), Some(5));
    // A line deleted.
    let t = copy(dir);
    let path = t.path().join(rolled);
    let mut l = lines_of(&path);
    l.remove(4);
    write_lines(&path, &l);
    assert_problem(&first_problem(t.path(), &[a], "line deleted"), "deleted", Some(rolled), Some(5));
    // A line inserted.
    let t = copy(dir);
    let path = t.path().join(rolled);
    let mut l = lines_of(&path);
    let extra = l[2].replacen("requestId\":\"", "requestId\":\"forged-", 1);
    l.insert(4, extra);
    write_lines(&path, &l);
    assert_problem(&first_problem(t.path(), &[a], "line inserted"), "inserted", Some(rolled), Some(5));
    // Two lines swapped.
    let t = copy(dir);
    let path = t.path().join(rolled);
    let mut l = lines_of(&path);
    l.swap(4, 5);
    write_lines(&path, &l);
    assert_problem(&first_problem(t.path(), &[a], "lines swapped"), "reordered", Some(rolled), Some(5));
    // A rolled file deleted without a retention record.
    let t = copy(dir);
    std::fs::remove_file(t.path().join("run/audit/queries.log.3")).expect("rm");
    assert_problem(&first_problem(t.path(), &[a], "rolled file deleted"), "file-missing", None, None);

    // The newest lines dropped, and the local checkpoints and kept leaves
    // that covered them rewritten: with local checkpoints only, this cannot
    // be seen (whoever can change the files can change them too); the
    // witness's checkpoints show it.
    let t = copy(dir);
    let live = t.path().join("run/audit/queries.log");
    let mut l = lines_of(&live);
    let keep = l.len() - 3;
    l.truncate(keep);
    write_lines(&live, &l);
    let state = t.path().join("run/audit/integrity/QUERIES_AUDIT_FILE");
    let signer = NoteSigner::parse(&std::fs::read_to_string(t.path().join("config/audit-signing.key")).expect("key"))
        .expect("signer");
    let notes =
        audit::integrity::ledger::split_notes(&std::fs::read_to_string(state.join("checkpoints")).expect("cps"));
    let segments = audit::integrity::ledger::Ledger::open(&state, false).expect("ledger").segments().expect("segments");
    let last_start = segments.last().expect("segment").start;
    let total = last_start + keep as u64;
    let kept_notes: Vec<String> = notes
        .into_iter()
        .filter(|n| {
            let body = audit::integrity::tlog::SignedNote::parse(n).expect("note").body;
            Checkpoint::parse(&body).expect("checkpoint").size <= total
        })
        .collect();
    std::fs::write(state.join("checkpoints"), kept_notes.join("\n")).expect("rewrite");
    let leaves = state.join(format!("leaves/{last_start:020}"));
    let bytes = std::fs::read(&leaves).expect("leaves");
    std::fs::write(&leaves, &bytes[..keep * 32]).expect("cut leaves");
    let (ok, local) = verify(t.path(), &[]);
    assert!(ok, "with local checkpoints only, dropped last lines are not visible (stated limit): {local}");
    assert_problem(&first_problem(t.path(), &[a], "last lines dropped"), "truncated", Some("queries.log"), None);

    // A rolled file replaced with another node's.
    let other = DssNode::with_settings(data_dir(), Some(rolling), json!({"nodeId": "other-node"}));
    other.start();
    run_load(&other, "o", 800).await;
    other.stop();
    let t = copy(dir);
    std::fs::copy(other.dir.path().join("run/audit/queries.log.1"), t.path().join("run/audit/queries.log.3"))
        .expect("cp");
    let p = first_problem(t.path(), &[a], "rolled file replaced by another node's");
    assert_problem(&p, "file-missing", None, None);
    assert!(p["detail"].as_str().is_some_and(|d| d.contains("queries.log.3")), "the foreign file is named: {p}");

    // Two checkpoints of one size with different roots (the key was stolen).
    let t = copy(dir);
    let cps = t.path().join("run/audit/integrity/QUERIES_AUDIT_FILE/checkpoints");
    let size = audit::integrity::tlog::Checkpoint::parse(
        &audit::integrity::tlog::SignedNote::parse(
            &audit::integrity::ledger::split_notes(&std::fs::read_to_string(&cps).expect("cps"))[0],
        )
        .expect("note")
        .body,
    )
    .expect("checkpoint")
    .size;
    let fork = signer.sign(&Checkpoint { origin: QUERIES.into(), size, root: leaf_hash(b"fork") }.body());
    let mut text = std::fs::read_to_string(&cps).expect("cps");
    text.push('\n');
    text.push_str(&fork);
    std::fs::write(&cps, text).expect("append");
    assert_problem(&first_problem(t.path(), &[a], "forked checkpoint"), "inconsistent-checkpoints", None, None);

    // A checkpoint signed by another key.
    let t = copy(dir);
    let cps = t.path().join("run/audit/integrity/QUERIES_AUDIT_FILE/checkpoints");
    let stranger = NoteSigner::from_seed(NODE, [7; 32]).expect("signer");
    let mut text = std::fs::read_to_string(&cps).expect("cps");
    text.push('\n');
    text.push_str(&stranger.sign(&Checkpoint { origin: QUERIES.into(), size: 1, root: leaf_hash(b"x") }.body()));
    std::fs::write(&cps, text).expect("append");
    assert_problem(&first_problem(t.path(), &[], "checkpoint of another key"), "bad-signature", None, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_witness_refuses_a_checkpoint_that_rewrites_or_cuts_the_log() {
    let (node, es, _) = witnessed(None);
    node.start();
    run_load(&node, "w", 800).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    node.stop();
    let latest = es.root().join("audit-integrity/latest").join(QUERIES.replace('/', "_"));
    let note = std::fs::read_to_string(&latest).expect("the witness keeps the latest checkpoint");
    let body = audit::integrity::tlog::SignedNote::parse(&note).expect("note").body;
    let accepted = Checkpoint::parse(&body).expect("checkpoint");
    let signer =
        NoteSigner::parse(&std::fs::read_to_string(node.dir.path().join("config/audit-signing.key")).expect("key"))
            .expect("signer");
    let client = reqwest::Client::new();
    let post = |cp: Checkpoint, previous: Option<u64>, id: &str| {
        let event = json!([{"topic": "audit-integrity", "routingKey": NODE, "eventId": id, "msgType": "audit-checkpoint",
            "nodeId": NODE, "origin": cp.origin, "treeSize": cp.size, "checkpoint": signer.sign(&cp.body()),
            "previousTreeSize": previous, "consistencyProof": []}]);
        client.post(format!("{}/events", es.url())).json(&event).send()
    };
    let rewritten = Checkpoint { origin: QUERIES.into(), size: accepted.size, root: leaf_hash(b"rewritten") };
    let r = post(rewritten, None, "forged-1").await.expect("answer");
    assert_eq!(r.status().as_u16(), 409, "same size, another root");
    let text = r.text().await.expect("body");
    assert!(text.contains("InconsistentCheckpoint") && text.contains("rewritten"), "{text}");
    let cut = Checkpoint { origin: QUERIES.into(), size: accepted.size - 1, root: leaf_hash(b"cut") };
    assert_eq!(post(cut, None, "forged-2").await.expect("answer").status().as_u16(), 409, "a shorter log");
    let longer = Checkpoint { origin: QUERIES.into(), size: accepted.size + 5, root: leaf_hash(b"grown") };
    assert_eq!(
        post(longer, Some(accepted.size), "forged-3").await.expect("answer").status().as_u16(),
        409,
        "no valid proof"
    );
    let again = post(accepted.clone(), None, "resent").await.expect("answer");
    assert_eq!(again.status().as_u16(), 200, "the accepted checkpoint sent again is taken");
    es.stop();
    let log = std::fs::read_to_string(es.dir.path().join("run/eventserver.log")).expect("log");
    assert!(log.matches("InconsistentCheckpoint").count() >= 3 || log.matches("409").count() >= 3, "{log}");
    assert_eq!(std::fs::read_to_string(&latest).expect("latest"), note, "refused checkpoints never become the latest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_kill_9_under_load_and_restarts_the_trail_verifies_and_the_witness_took_every_checkpoint() {
    let (node, es, key) = witnessed(None);
    let mut rng = Rng::seeded("integrity, kill -9");
    let mut answered = Vec::new();
    for trial in 0..3 {
        node.start();
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(load(node.base(), format!("k{trial}"), 16, stop.clone()));
        let after = rng.between(1200, 2500);
        tokio::time::sleep(Duration::from_millis(after)).await;
        kill9(&node);
        stop.store(true, Ordering::Relaxed);
        let (ok, _) = task.await.expect("load");
        eprintln!("trial {trial}: killed after {after} ms, {} answered", ok.len());
        answered.extend(ok);
    }
    node.start();
    answered.extend(run_load(&node, "k-final", 1000).await);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    node.stop();
    es.stop();
    let recorded = recorded_ids(&node);
    let missing = answered.iter().filter(|id| !recorded.contains_key(*id)).count();
    assert_eq!(missing, 0, "answered but not recorded");
    let (ok, report) = verify(node.dir.path(), &[&es.root().join("audit-integrity")]);
    assert!(ok, "{report}");
    let q = appender(&report, "QUERIES_AUDIT_FILE");
    assert_eq!(q["records"].as_u64(), Some(recorded.values().map(|n| *n as u64).sum()), "{q}");
    // The witness took every checkpoint: none was refused and dead-lettered.
    let dead = node.dir.path().join("run/spool/central/dead-letter");
    let refused: Vec<PathBuf> =
        std::fs::read_dir(&dead).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    assert!(refused.is_empty(), "checkpoints refused by the witness: {refused:?}");
    let (ok, line) = python_check("chain", &key, &es.root());
    assert!(ok, "{line}");
    eprintln!("kill -9 x3: {} answered, all recorded, trail ok; {line}", answered.len());
    for id in answered.iter().step_by(answered.len() / 3 + 1) {
        let proof = node.dir.path().join(format!("{id}.proof"));
        let out =
            admin(node.dir.path()).args(["audit-prove", id, "--output-file"]).arg(&proof).output().expect("prove");
        assert!(out.status.success(), "{id}: {}", String::from_utf8_lossy(&out.stderr));
        let (ok, line) = python_check("prove", &key, &proof);
        assert!(ok, "{id}: {line}");
    }
}
