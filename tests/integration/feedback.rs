//! The feedback loop (docs/monitoring.md "Outcomes in", "The monitor"),
//! with real processes: outcomes through the route and `apinode-admin
//! feedback-import`, bad input refused whole and audited, then
//! `apinode-admin monitor` on the node's files: an A/B test of two
//! generations whose outcomes make one better, late and duplicated
//! outcomes, unlabelled records, every metric checked against
//! scikit-learn by an independent Python join; the same join from an
//! event server's folders fed by two nodes; the HTML page self-contained.

use std::path::Path;
use std::process::Command;

use rand::{Rng as _, SeedableRng as _};
use serde_json::{Value, json};

use crate::common::dss::{DssNode, text};
use crate::common::eventserver::EventServer;
use crate::common::{copy_dir, data_dir, python};

fn admin_cli(node: &DssNode, args: &[&str]) -> String {
    let out = crate::common::admin(node.dir.path()).args(args).output().expect("apinode-admin runs");
    assert!(out.status.success(), "apinode-admin {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The fixtures plus `churn2`: the sample churn model as generations v1
/// and v2, mapped 50/50.
fn ab_data_dir() -> tempfile::TempDir {
    let dir = data_dir();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    for g in ["v1", "v2"] {
        copy_dir(
            &repo.join("services/churn/generations/v1"),
            &dir.path().join(format!("services/churn2/generations/{g}")),
        );
        let gen_file = dir.path().join(format!("services/churn2/generations/{g}/generation.json"));
        let mut v: Value = serde_json::from_slice(&std::fs::read(&gen_file).expect("read")).expect("json");
        v["generationId"] = json!(g);
        std::fs::write(&gen_file, v.to_string()).expect("write");
    }
    let service = json!({"enabled": true, "mapping": {"entries": [{"generation": "v1", "proba": 0.5}, {"generation": "v2", "proba": 0.5}]}});
    std::fs::write(dir.path().join("services/churn2/service.json"), service.to_string()).expect("write");
    dir
}

async fn predict(base: &str, service: &str, endpoint: &str, id: &str, features: Value) -> Value {
    let r = reqwest::Client::new()
        .post(format!("{base}/public/api/v1/{service}/{endpoint}/predict"))
        .header("x-request-id", id)
        .json(&json!({"features": features}))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.expect("json")
}

async fn feedback(base: &str, service: &str, endpoint: &str, body: &Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}/public/api/v1/{service}/{endpoint}/feedback"))
        .json(body)
        .send()
        .await
        .expect("answer");
    (r.status().as_u16(), r.json().await.expect("json"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ab_test_joined_with_late_and_duplicated_outcomes_matches_scikit_learn() {
    let node = DssNode::with_dir(ab_data_dir(), None);
    node.start();
    let base = node.base();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    // 600 churn predictions; v1's outcomes agree with it 90% of the time, v2's 55%.
    let mut csv = String::from("requestId,outcome,time\n");
    let mut late = String::from("requestId,outcome,time\n");
    let mut by_generation = std::collections::BTreeMap::<String, usize>::new();
    for i in 0..600 {
        let plan = ["basic", "plus", "enterprise"][rng.random_range(0..3)];
        let features = json!({"tenure_months": rng.random_range(1..72), "monthly_charges": rng.random_range(20.0..120.0),
            "plan": plan, "support_calls": rng.random_range(0..8)});
        let id = format!("c-{i}");
        let answer = predict(&base, "churn2", "score", &id, features).await;
        let generation = answer["apiContext"]["serviceGeneration"].as_str().expect("generation").to_owned();
        *by_generation.entry(generation.clone()).or_default() += 1;
        if i >= 500 {
            continue; // unlabelled
        }
        let predicted = answer["result"]["prediction"].as_str().expect("prediction");
        let right = rng.random_bool(if generation == "v1" { 0.9 } else { 0.55 });
        let other = if predicted == "yes" { "no" } else { "yes" };
        let outcome = if right { predicted } else { other };
        if i < 50 {
            // A wrong outcome first, corrected an hour later; then an older one arrives late.
            csv.push_str(&format!("{id},{other},2026-12-01T00:00:00Z\n"));
            late.push_str(&format!("{id},{outcome},2026-12-01T01:00:00Z\n{id},{other},2026-11-30T23:00:00Z\n"));
        } else {
            csv.push_str(&format!("{id},{outcome},2026-12-01T00:00:00Z\n"));
        }
    }
    assert!(by_generation.len() == 2 && by_generation.values().all(|n| *n > 200), "{by_generation:?}");
    csv.push_str("nobody-1,yes,2026-12-01T00:00:00Z\n");
    let work = tempfile::tempdir().expect("tmp");
    std::fs::write(work.path().join("outcomes.csv"), &csv).expect("write");
    std::fs::write(work.path().join("late.csv"), &late).expect("write");
    let imported = admin_cli(
        &node,
        &[
            "feedback-import",
            "churn2",
            "score",
            work.path().join("outcomes.csv").to_str().expect("utf-8"),
            "--batch",
            "200",
        ],
    );
    assert!(imported.contains("Imported 501 outcomes"), "{imported}");
    admin_cli(&node, &["feedback-import", "churn2", "score", work.path().join("late.csv").to_str().expect("utf-8")]);
    // Regression: the ab service's two generations, weighted outcomes, as JSON lines.
    let mut lines = String::new();
    for i in 0..300 {
        let x: f64 = rng.random_range(-5.0..5.0);
        let id = format!("r-{i}");
        let answer = predict(&base, "ab", "score", &id, json!({"x": x})).await;
        let p = answer["result"]["prediction"].as_f64().expect("number");
        let outcome = p + rng.random_range(-1.0..1.0) + 0.5;
        lines.push_str(&format!(
            "{}\n",
            json!({"requestId": id, "outcome": outcome, "weight": rng.random_range(0.5..2.0)})
        ));
    }
    std::fs::write(work.path().join("ab.jsonl"), &lines).expect("write");
    admin_cli(&node, &["feedback-import", "ab", "score", work.path().join("ab.jsonl").to_str().expect("utf-8")]);

    // Bad input: refused whole, naming the item; nothing of it kept; audited.
    let before = node.audit_lines("feedback.log").len();
    let bad = json!({"items": [{"requestId": "c-1", "outcome": "yes"}, {"requestId": "c-2", "outcome": "no"},
        {"requestId": "c-3", "outcome": {"label": "yes"}}]});
    let (status, body) = feedback(&base, "churn2", "score", &bad).await;
    assert_eq!((status, body["errorType"].as_str()), (400, Some("InvalidRequest")), "{body}");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("items[2].outcome")), "{body}");
    let (status, _) =
        feedback(&base, "churn2", "nope", &json!({"items": [{"requestId": "c-1", "outcome": "yes"}]})).await;
    assert_eq!(status, 404);
    node.stop();
    let feedback_lines = node.audit_lines("feedback.log");
    assert_eq!(feedback_lines.len(), before, "nothing of a refused batch is kept");
    assert_eq!(feedback_lines.len(), 501 + 100 + 300);
    let failures = node.audit_lines("failures.log").join("\n");
    assert!(failures.contains("items[2].outcome"), "the refusal is audited");

    // Duplicated deliveries: the same feedback file twice.
    let dup = work.path().join("dup");
    std::fs::create_dir_all(&dup).expect("mkdir");
    std::fs::copy(node.audit_file("feedback.log"), dup.join("feedback.log")).expect("copy");
    let audit = node.dir.path().join("run/audit");
    for (service, out) in [("churn2", "report-churn"), ("ab", "report-ab")] {
        let out_dir = work.path().join(out);
        admin_cli(
            &node,
            &[
                "monitor",
                "--service",
                service,
                "--feedback",
                audit.to_str().expect("utf-8"),
                "--feedback",
                dup.to_str().expect("utf-8"),
                "--window",
                "1h",
                "--out",
                out_dir.to_str().expect("utf-8"),
            ],
        );
        let report: Value =
            serde_json::from_slice(&std::fs::read(out_dir.join("report.json")).expect("report")).expect("json");
        let check = Command::new(python())
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration/monitor_check.py"))
            .arg(out_dir.join("report.json"))
            .arg(service)
            .arg(node.audit_file("queries.log"))
            .arg(node.audit_file("feedback.log"))
            .arg(dup.join("feedback.log"))
            .output()
            .expect("python runs");
        assert!(check.status.success(), "monitor_check.py {service}: {}", text(&check));
        eprint!("{}", String::from_utf8_lossy(&check.stdout));
        let totals = &report["totals"];
        assert!(totals["duplicates"].as_u64() >= Some(300), "the copied feedback counted once: {totals}");
        if service == "churn2" {
            assert_eq!(totals["queryRecords"], 600);
            assert_eq!(totals["unmatchedOutcomes"], 1, "nobody-1");
            assert_eq!(report["errors"]["total"], 2, "the refused feedback calls, from failures.log");
            let g = &report["generations"];
            let unlabelled = g["v1"]["overall"]["unlabelled"].as_u64().unwrap_or(0)
                + g["v2"]["overall"]["unlabelled"].as_u64().unwrap_or(0);
            assert_eq!(unlabelled, 100);
            let (a1, a2) = (
                g["v1"]["overall"]["performance"]["accuracy"].as_f64(),
                g["v2"]["overall"]["performance"]["accuracy"].as_f64(),
            );
            assert!(a1 > Some(0.8) && a2 < Some(0.7), "v1 is clearly better: {a1:?} vs {a2:?}");
        }
        let html = std::fs::read_to_string(out_dir.join("report.html")).expect("html");
        assert!(html.len() < 2 << 20, "under 2 MB");
        assert!(html.matches("<svg").count() >= 3 && html.contains("<polyline"), "charts");
        assert!(!html.contains("<script") && !html.contains("src=") && !html.contains("href="), "nothing fetched");
        let prom = std::fs::read_to_string(out_dir.join("report.prom")).expect("prom");
        assert!(prom.contains("apinode_monitor_labelled{service=\""), "{prom}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_of_two_nodes_at_an_event_server_make_one_report() {
    let es = EventServer::new(json!({}));
    es.start();
    let settings = json!({"auditLog": {"settings": {"targets": [{"type": "LOG4J"},
        {"type": "EVENT_SERVER", "name": "central", "url": es.url()}]}}});
    let mut nodes = Vec::new();
    for name in ["node-a", "node-b"] {
        let mut s = settings.clone();
        s["nodeId"] = json!(name);
        let node = DssNode::with_settings(data_dir(), None, s);
        node.start();
        nodes.push(node);
    }
    // Predictions on both nodes; every outcome sent to node-a.
    let mut items = Vec::new();
    for i in 0..40 {
        let node = &nodes[i % 2];
        let answer = predict(&node.base(), "kinds", "linear", &format!("n-{i}"), json!({"x": i, "color": "red"})).await;
        let p = answer["result"]["prediction"].as_f64().expect("number");
        items.push(json!({"requestId": format!("n-{i}"), "outcome": p + 1.0}));
    }
    let (status, body) = feedback(&nodes[0].base(), "kinds", "linear", &json!({"items": items})).await;
    assert_eq!((status, body["accepted"].as_u64()), (200, Some(40)), "{body}");
    for n in &nodes {
        n.stop();
    }
    es.stop();
    let out = tempfile::tempdir().expect("tmp");
    let root = es.root();
    admin_cli(
        &nodes[0],
        &[
            "monitor",
            "--service",
            "kinds",
            "--endpoint",
            "linear",
            "--queries",
            root.to_str().expect("utf-8"),
            "--feedback",
            root.to_str().expect("utf-8"),
            "--out",
            out.path().to_str().expect("utf-8"),
        ],
    );
    let report: Value =
        serde_json::from_slice(&std::fs::read(out.path().join("report.json")).expect("report")).expect("json");
    assert_eq!(report["totals"]["queryRecords"], 40, "{}", report["totals"]);
    let overall = &report["generations"]["v1"]["overall"];
    assert_eq!(overall["labelled"], 40);
    let mae = overall["performance"]["mae"].as_f64().expect("mae");
    assert!((mae - 1.0).abs() < 1e-9, "every outcome is the prediction + 1: {mae}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_report_from_kafka_as_from_the_files() {
    let broker = crate::common::kafka::Broker::start();
    for t in ["mon-apinode-query", "mon-apinode-feedback"] {
        broker.create_topic(t, 2);
    }
    let settings = json!({
        "kafkaConnections": {"main": {"bootstrap.servers": broker.bootstrap()}},
        "auditLog": {"settings": {"targets": [{"type": "LOG4J"}, {"type": "KAFKA", "name": "kafka", "connection": "main",
            "topic": "mon-${topic}", "topicsFiltering": "SELECTED", "topics": ["apinode-query", "apinode-feedback"]}]}},
    });
    let node = DssNode::with_settings(data_dir(), None, settings);
    node.start();
    let base = node.base();
    let mut items = Vec::new();
    for i in 0..60 {
        let answer = predict(&base, "kinds", "linear", &format!("k-{i}"), json!({"x": i, "color": "blue"})).await;
        let p = answer["result"]["prediction"].as_f64().expect("number");
        if i % 3 != 0 {
            items.push(
                json!({"requestId": format!("k-{i}"), "outcome": p + f64::from(i % 5) - 2.0, "weight": 1 + i % 2}),
            );
        }
    }
    let (status, _) = feedback(&base, "kinds", "linear", &json!({"items": items})).await;
    assert_eq!(status, 200);
    node.stop();
    let work = tempfile::tempdir().expect("tmp");
    let report = |name: &str, sources: &[&str]| -> Value {
        let out = work.path().join(name);
        let mut args = vec!["monitor", "--service", "kinds", "--out", out.to_str().expect("utf-8")];
        args.extend_from_slice(sources);
        admin_cli(&node, &args);
        serde_json::from_slice(&std::fs::read(out.join("report.json")).expect("report")).expect("json")
    };
    let from_files = report("files", &[]);
    let kafka_queries = format!("kafka://{}/mon-apinode-query", broker.bootstrap());
    let kafka_feedback = format!("kafka://{}/mon-apinode-feedback", broker.bootstrap());
    let from_kafka = report("kafka", &["--queries", &kafka_queries, "--feedback", &kafka_feedback]);
    assert_eq!(from_kafka["totals"], from_files["totals"], "the same records");
    assert_eq!(from_kafka["totals"]["queryRecords"], 60);
    assert_eq!(from_kafka["generations"], from_files["generations"], "the same figures");
    assert_eq!(from_kafka["generations"]["v1"]["overall"]["labelled"], 40);
}
