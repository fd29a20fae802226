//! What tools see of a node (docs/monitoring.md "Live metrics", "OpenAPI"),
//! with real processes: `/metrics` checked by Prometheus' own `promtool`,
//! its audit counters reconciled exactly with the audit files and the
//! event server after a target outage, the alert rules checked by
//! `promtool check rules`, `metrics.auth`; each sample service's OpenAPI
//! document validated by a standard validator from PyPI and a request built
//! from it answered.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::dss::{DssNode, text};
use crate::common::eventserver::EventServer;
use crate::common::{copy_dir, data_dir, python};

fn promtool() -> String {
    crate::common::installed_tool("APINODE_PROMTOOL", "setup-promtool")
}

/// Samples of the exposition: `name{labels}` → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

fn value(s: &BTreeMap<String, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = s
        .iter()
        .filter(|(k, _)| {
            k.split('{').next() == Some(name) && labels.iter().all(|(l, v)| k.contains(&format!("{l}=\"{v}\"")))
        })
        .map(|(_, v)| *v)
        .collect();
    assert!(!found.is_empty(), "no sample {name} {labels:?}");
    found.iter().sum()
}

async fn scrape(base: &str) -> String {
    let r = reqwest::get(format!("{base}/metrics")).await.expect("scrape");
    assert_eq!(r.status().as_u16(), 200);
    r.text().await.expect("text")
}

async fn predictions(base: &str, n: usize) {
    let client = reqwest::Client::new();
    for i in 0..n {
        let r = client
            .post(format!("{base}/public/api/v1/kinds/linear/predict"))
            .json(&json!({"features": {"x": i, "color": "red"}}))
            .send()
            .await
            .expect("answer");
        assert_eq!(r.status().as_u16(), 200);
    }
}

/// Waits until the target `central` has nothing waiting.
async fn drained(base: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = scrape(base).await;
        let s = samples(&text);
        let waiting = value(&s, "apinode_audit_spool_bytes", &[("target", "central")])
            + value(&s, "apinode_audit_queue_depth", &[("stream", "central")]);
        if waiting == 0.0 {
            return text;
        }
        assert!(Instant::now() < deadline, "the target did not drain: {waiting}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_and_reconcile_with_the_audit_files_after_a_target_outage() {
    let promtool = promtool();
    let es = EventServer::new(json!({}));
    let settings = json!({"auditLog": {"settings": {"targets": [{"type": "LOG4J"},
        {"type": "EVENT_SERVER", "name": "central", "url": es.url()}]}}});
    let node = DssNode::with_settings(data_dir(), None, settings);
    node.start();
    let base = node.base();
    // The event server is down: records are spooled; then it comes up and
    // they are replayed; then more go straight through.
    predictions(&base, 120).await;
    es.start();
    drained(&base).await;
    predictions(&base, 80).await;
    let text = drained(&base).await;

    let mut check = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    check.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write");
    let out = check.wait_with_output().expect("promtool ends");
    assert!(out.status.success(), "promtool check metrics: {}\n{text}", text_of(&out));

    let s = samples(&text);
    // Requests and records scored.
    let ok = [("service", "kinds"), ("endpoint", "linear"), ("verb", "predict"), ("status", "200")];
    assert_eq!(value(&s, "apinode_requests_total", &ok), 200.0);
    assert_eq!(value(&s, "apinode_request_duration_seconds_count", &ok), 200.0);
    assert_eq!(value(&s, "apinode_records_scored_total", &[("service", "kinds"), ("outcome", "scored")]), 200.0);
    // The files: every query record committed, none lost.
    let queries = node.audit_lines("queries.log");
    assert_eq!(queries.len(), 200);
    let written = value(&s, "apinode_audit_records_total", &[("stream", "queries"), ("result", "written")]);
    assert_eq!(written, queries.len() as f64, "records written = lines in queries.log");
    assert!(!s.keys().any(|k| k.contains("result=\"lost\"")), "nothing lost");
    // The target: what was spooled during the outage was replayed; what the
    // event server stored is exactly what was delivered and replayed.
    let t = |r: &str| value(&s, "apinode_audit_target_events_total", &[("target", "central"), ("result", r)]);
    // (Under WRITTEN, the default, a network target's spool is its
    // write-ahead log: records go through it even when the server is up.)
    assert!(t("spooled") >= 120.0, "the outage's records were spooled: {}", t("spooled"));
    assert_eq!(t("replayed"), t("spooled"), "every spooled record was replayed");
    assert!(t("delivered") + t("replayed") >= 200.0, "every query left: {} + {}", t("delivered"), t("replayed"));
    assert_eq!((t("dropped"), t("rejected")), (0.0, 0.0));
    // Exactly what the event server holds: read between two scrapes that
    // agree (the node counts a batch once the server acknowledged it).
    let left = |s: &BTreeMap<String, f64>| {
        ["delivered", "replayed"]
            .iter()
            .map(|r| value(s, "apinode_audit_target_events_total", &[("target", "central"), ("result", r)]))
            .sum::<f64>()
    };
    let mut reconciled = None;
    for _ in 0..50 {
        let before = left(&samples(&scrape(&base).await));
        let at_server = EventServer::stored(&es.root()).len() as f64;
        let after = left(&samples(&scrape(&base).await));
        if before == after && before == at_server {
            reconciled = Some(at_server);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reconciled = reconciled.expect("delivered + replayed never matched what the event server stored");
    assert!(reconciled >= 200.0, "{reconciled}");
    node.stop();
    es.stop();
    let stored = EventServer::stored(&es.root());
    let queries_stored = stored.iter().filter(|e| e.line["clientEvent"]["topic"] == "apinode-query").count();
    assert_eq!(queries_stored, 200, "every query at the event server once");
    // Process metrics and the integrity checkpoints are there.
    for name in
        ["process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds", "process_start_time_seconds"]
    {
        assert!(value(&s, name, &[]) > 0.0, "{name}");
    }
    assert!(s.keys().any(|k| k.starts_with("apinode_audit_checkpoint_age_seconds{")), "checkpoint ages");

    // The alert rules of docs/alerts.yml.
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/alerts.yml");
    let out = Command::new(&promtool).args(["check", "rules"]).arg(&rules).output().expect("promtool runs");
    assert!(out.status.success(), "promtool check rules: {}", text_of(&out));
}

fn text_of(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_behind_an_admin_key_and_turned_off() {
    let node = DssNode::with_settings(data_dir(), None, json!({"metrics": {"auth": "ADMIN_KEY"}}));
    node.start();
    let url = format!("{}/metrics", node.base());
    let client = reqwest::Client::new();
    assert_eq!(client.get(&url).send().await.expect("answer").status().as_u16(), 401);
    let r = client.get(&url).basic_auth(node.admin_secret(), Some("")).send().await.expect("answer");
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.text().await.expect("text").contains("process_open_fds"));
    node.stop();
    assert!(node.audit_lines("auth.log").iter().any(|l| l.contains("/metrics")), "the refusal is audited");
    let off = DssNode::with_settings(data_dir(), None, json!({"metrics": {"enabled": false}}));
    off.start();
    let r = client.get(format!("{}/metrics", off.base())).send().await.expect("answer");
    assert_eq!(r.status().as_u16(), 404);
    off.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_service_has_a_valid_openapi_document_that_builds_a_working_request() {
    let dir = tempfile::tempdir().expect("tmp");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    copy_dir(&repo.join("services"), &dir.path().join("services"));
    let node = DssNode::with_dir(dir, None);
    node.start();
    let services = ["churn", "iris", "breast-cancer", "diabetes"];
    let out = Command::new(python())
        .arg(repo.join("tests/integration/openapi_check.py"))
        .arg(node.base())
        .args(services)
        .output()
        .expect("python runs");
    assert!(out.status.success(), "openapi_check.py: {}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        printed.lines().filter(|l| l.starts_with("ok ")).count(),
        12,
        "predict, predict-multi and feedback of 4 services: {printed}"
    );
    // Typed from the model: churn's plan is a category with its levels.
    let doc: serde_json::Value = reqwest::get(format!("{}/public/api/v1/churn/openapi.json", node.base()))
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let plan = &doc["components"]["schemas"]["score.Features"]["properties"]["plan"];
    assert!(plan["enum"].as_array().is_some_and(|l| l.iter().any(|v| v == "basic")), "{plan}");
    assert_eq!(doc["openapi"], "3.1.0");
    let missing = reqwest::get(format!("{}/public/api/v1/nope/openapi.json", node.base())).await.expect("get");
    assert_eq!(missing.status().as_u16(), 404);
    node.stop();
}
