//! Centralising the audit of many nodes (docs/audit.md "Targets", "Delivery",
//! "Event server"), with real processes on 127.0.0.1: nodes started by
//! `bin/dss`, an event server by `bin/eventserver`. Every query of two nodes
//! reaches the event server exactly once, through an outage of the event
//! server and a restart of a node while it is down; a target's filters take
//! exactly the messages they select; bad ingest input is refused whole.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::dss::DssNode;
use crate::common::eventserver::EventServer;
use crate::common::{data_dir, send};

/// A node whose `kinds` service has `routing_key` (if any) and whose audit
/// goes to the log4j files and to the event server at `url`.
fn node(node_id: &str, routing_key: Option<&str>, target: Value) -> DssNode {
    let dir = data_dir();
    if let Some(key) = routing_key {
        set_routing_key(dir.path(), "kinds", key);
    }
    let settings = json!({"nodeId": node_id, "auditLog": {"settings": {"targets": [{"type": "LOG4J"}, target]}}});
    let node = DssNode::with_settings(dir, None, settings);
    node.start();
    node
}

fn set_routing_key(data: &Path, service: &str, key: &str) {
    let path = data.join("services").join(service).join("service.json");
    let mut s: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    s["routingKey"] = key.into();
    std::fs::write(&path, s.to_string()).expect("write");
}

fn event_server_target(url: &str) -> Value {
    json!({"type": "EVENT_SERVER", "name": "central", "url": url, "topicsFiltering": "ALL", "routingKeysFiltering": "ALL"})
}

/// Sends predictions to `base` until `stop`, keeping the request id of each
/// one answered (connection errors while the node restarts are skipped).
async fn load(base: String, stop: Arc<AtomicBool>) -> Vec<String> {
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let body = json!({"features": {"x": i % 50, "color": "red"}});
        let sent = client.post(format!("{base}/public/api/v1/kinds/linear/predict")).json(&body).send().await;
        match sent {
            Ok(r) if r.status().is_success() => {
                let v: Value = r.json().await.expect("json");
                ids.push(v["result"]["requestId"].as_str().expect("requestId").to_owned());
            }
            Ok(r) => panic!("prediction refused: {}", r.status()),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    ids
}

async fn metrics(node: &DssNode) -> Value {
    let r = reqwest::Client::new()
        .get(format!("{}/admin/api/metrics", node.base()))
        .basic_auth(node.admin_secret(), Some(""));
    send(r).await.ok().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_queries_reach_the_event_server_once_through_an_outage_and_a_restart() {
    let es = EventServer::new(json!({}));
    es.start();
    let a = node("node-a", Some("kinds-a"), event_server_target(&es.url()));
    let b = node("node-b", None, event_server_target(&es.url()));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = [a.base(), a.base(), b.base(), b.base()]
        .into_iter()
        .map(|base| tokio::spawn(load(base, stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // The event server goes away in the middle of the load.
    es.stop();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let during = metrics(&a).await;
    let central = &during["audit"]["targets"]["central"];
    assert_eq!(central["state"], "DOWN", "{central}");
    assert!(central["spoolMessages"].as_u64().expect("spool") > 0, "{central}");
    // Node b stops while the event server is down: its spool stays on disk.
    b.stop();
    assert!(!b.spool_files("central").is_empty(), "node b kept its undelivered messages");
    let failures = b.audit_lines("failures").join("\n");
    assert!(failures.contains("audit-target-down") && failures.contains("central"), "the outage is recorded locally");
    es.start();
    b.start();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut sent: Vec<Vec<String>> = Vec::new();
    for t in tasks {
        sent.push(t.await.expect("load task"));
    }
    let after = metrics(&a).await;
    assert!(after["audit"]["targets"]["central"]["replayed"].as_u64().expect("replayed") > 0, "{after}");
    a.stop();
    b.stop();
    es.stop();

    for (node, (ids, routing)) in [
        ("node-a", ([&sent[0][..], &sent[1][..]].concat(), "kinds-a")),
        ("node-b", ([&sent[2][..], &sent[3][..]].concat(), "_none")),
    ] {
        let stored = EventServer::stored(&es.root());
        let mut found: BTreeMap<String, usize> = BTreeMap::new();
        for s in stored.iter().filter(|s| s.line["clientEvent"]["nodeId"] == node) {
            let e = &s.line["clientEvent"];
            if e["topic"] != "apinode-query" {
                continue;
            }
            assert!(s.folder.starts_with(Path::new("apinode-query").join(routing)), "{node}: {:?}", s.folder);
            assert_eq!(s.folder.components().count(), 6, "topic/key/YYYY/MM/DD/HH: {:?}", s.folder);
            *found.entry(e["requestId"].as_str().expect("requestId").to_owned()).or_default() += 1;
            assert_eq!(s.line["origAddress"], "127.0.0.1");
        }
        let want: BTreeSet<String> = ids.iter().cloned().collect();
        assert!(want.len() > 50, "{node}: the load ran ({} queries)", want.len());
        let twice: Vec<_> = found.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "{node}: stored more than once: {twice:?}");
        let got: BTreeSet<String> = found.into_keys().collect();
        let missing: Vec<_> = want.difference(&got).take(5).collect();
        assert!(missing.is_empty(), "{node}: {} queries missing, such as {missing:?}", want.difference(&got).count());
        assert_eq!(got, want, "{node}: exactly the queries it answered");
    }
    for n in [&a, &b] {
        assert!(n.spool_files("central").is_empty(), "spools are empty at the end: {:?}", n.spool_files("central"));
    }
    // The other topics went too: start, stop and resource usage of both nodes.
    let stored = EventServer::stored(&es.root());
    for node in ["node-a", "node-b"] {
        let types: BTreeSet<&str> = stored
            .iter()
            .filter(|s| s.line["clientEvent"]["nodeId"] == node)
            .filter_map(|s| s.line["clientEvent"]["msgType"].as_str())
            .collect();
        // Node b was restarted while its target was down: the new process
        // starts UP and replays, so only node a sees the target come back.
        let up = if node == "node-a" { "audit-target-up" } else { "node-start" };
        for t in ["node-start", "node-stop", "compute-resource-usage-complete", "audit-target-down", up] {
            assert!(types.contains(t), "{node}: no {t} in {types:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_takes_exactly_the_messages_its_filters_select() {
    // The event server requires a key: the node sends the target's authKey.
    let es = EventServer::new(json!({"auth": {"required": true, "keys": ["node-key-123456"]}}));
    es.start();
    let dir = data_dir();
    set_routing_key(dir.path(), "kinds", "kinds-prod");
    set_routing_key(dir.path(), "ab", "ab-prod");
    let target = json!({"type": "EVENT_SERVER", "name": "central", "url": es.url(), "authKey": "node-key-123456",
        "topicsFiltering": "SELECTED", "topics": ["apinode-query", "authfail"],
        "routingKeysFiltering": "SELECTED", "routingKeys": ["kinds-prod"]});
    let settings = json!({"nodeId": "filtered", "auditLog": {"settings": {"targets": [{"type": "LOG4J"}, target]}}});
    let node = DssNode::with_settings(dir, None, settings);
    node.start();
    let client = reqwest::Client::new();
    let predict = |service: &str, endpoint: &str| {
        client
            .post(format!("{}/public/api/v1/{service}/{endpoint}/predict", node.base()))
            .json(&json!({"features": {"x": 1, "color": "red"}}))
    };
    let mut wanted = BTreeSet::new();
    for _ in 0..5 {
        let r = send(predict("kinds", "linear")).await;
        wanted.insert(r.ok()["result"]["requestId"].as_str().expect("id").to_owned());
        send(predict("ab", "score")).await.ok();
        // No routing key: an auth failure matches only routingKeysFiltering ALL.
        send(predict("secured", "score")).await;
    }
    node.stop();
    es.stop();
    let stored = EventServer::stored(&es.root());
    let ids: BTreeSet<String> =
        stored.iter().map(|s| s.line["clientEvent"]["requestId"].as_str().unwrap_or("none").to_owned()).collect();
    assert_eq!(ids, wanted, "only the kinds-prod queries");
    assert!(stored.iter().all(|s| s.folder.starts_with("apinode-query/kinds-prod")));
    // The LOG4J target took everything.
    let queries = node.audit_lines("queries").join("\n");
    assert_eq!(queries.matches("\"routingKey\":\"ab-prod\"").count(), 5, "the ab queries are in the local file");
    assert_eq!(node.audit_lines("auth").len(), 5, "the auth failures are in the local file");
    let log = std::fs::read_to_string(node.dir.path().join("run/apimain.log")).expect("log");
    assert!(!log.contains("node-key-123456"), "the target's key is never logged");
}

#[test]
fn an_invalid_audit_section_stops_the_node_naming_every_problem() {
    let settings = json!({"auditLog": {"settings": {"targets": [
        {"type": "EVENT_SERVER", "topicsFiltering": "SELECTED", "topics": ["apinode-querry"]},
        {"type": "LOG4J", "onFull": "DROP"}]}}});
    let node = DssNode::with_settings(data_dir(), None, settings);
    let out = node.dss("start");
    assert!(!out.status.success());
    let text = crate::common::dss::text(&out);
    for needle in [
        "auditLog.settings.targets[0].topics[0]: unknown topic \"apinode-querry\"",
        "auditLog.settings.targets[0].url: is required",
        "auditLog.settings.targets[1].onFull: unknown key for a LOG4J target",
    ] {
        assert!(text.contains(needle), "{needle} missing from {text}");
    }
}

#[tokio::test]
async fn bad_ingest_input_is_refused_whole_and_stores_nothing() {
    let es = EventServer::new(json!({
    "auth": {"required": true, "keys": ["global-key-1234"]},
    "maxBatchBytes": 4096, "maxBatchEvents": 5,
    "destinations": [
        {"name": "all", "topicsFiltering": "ALL", "routingKeysFiltering": "ALL", "root": "data/all"},
        {"name": "churn", "topicsFiltering": "SELECTED", "topics": ["apinode-query"],
         "routingKeysFiltering": "SELECTED", "routingKeys": ["churn"], "requiredKey": "churn-key-1234", "root": "data/churn"}
    ]}));
    es.start();
    let client = reqwest::Client::new();
    let post = |key: Option<&str>, body: String| {
        let r = client.post(format!("{}/events", es.url())).body(body);
        match key {
            Some(k) => r.bearer_auth(k),
            None => r,
        }
    };
    let good = |id: &str| json!({"topic": "generic", "eventId": id, "msgType": "x"});
    let key = Some("global-key-1234");
    let cases: Vec<(Option<&str>, String, u16, &str, &str)> = vec![
        (key, "not json".into(), 400, "InvalidBatch", "not a JSON array"),
        (key, json!({"topic": "generic"}).to_string(), 400, "InvalidBatch", "not a JSON array"),
        (key, json!([good("1"), {"eventId": "2"}]).to_string(), 400, "InvalidBatch", "[1].topic: is missing"),
        (
            key,
            json!([good("1"), {"topic": "generic", "routingKey": "../../etc", "eventId": "3"}]).to_string(),
            400,
            "InvalidBatch",
            "[1].routingKey: \"../../etc\"",
        ),
        (key, json!([{"topic": "..", "eventId": "4"}]).to_string(), 400, "InvalidBatch", "[0].topic: \"..\""),
        (key, json!([good("1"), {"topic": "generic"}]).to_string(), 400, "InvalidBatch", "[1].eventId: is missing"),
        (None, json!([good("1")]).to_string(), 401, "Unauthorized", "Bearer"),
        (Some("wrong-key-000"), json!([good("1")]).to_string(), 401, "Unauthorized", "not known"),
        (
            key,
            json!([{"topic": "apinode-query", "routingKey": "churn", "eventId": "5"}]).to_string(),
            403,
            "Forbidden",
            "\"churn\"",
        ),
        (
            key,
            json!([good("1"), good("2"), good("3"), good("4"), good("5"), good("6")]).to_string(),
            413,
            "InvalidBatch",
            "at most 5",
        ),
        (
            key,
            json!([{"topic": "generic", "eventId": "7", "pad": "x".repeat(5000)}]).to_string(),
            413,
            "BatchTooLarge",
            "maxBatchBytes",
        ),
    ];
    for (k, body, status, error_type, needle) in cases {
        let message = send(post(k, body.clone())).await.error(status, error_type);
        assert!(message.contains(needle), "{body}: {needle:?} not in {message:?}");
    }
    assert!(EventServer::stored(&es.dir.path().join("data")).is_empty(), "nothing of a refused batch is stored");

    // A good batch is stored once; its retry is recognised.
    let batch = json!([good("a"), {"topic": "apinode-query", "routingKey": "churn", "eventId": "b"}]).to_string();
    let first = send(post(Some("churn-key-1234"), batch.clone())).await;
    assert_eq!(first.ok()["stored"], 2);
    let retry = send(post(Some("churn-key-1234"), batch)).await;
    assert_eq!((retry.ok()["stored"].as_u64(), retry.ok()["duplicates"].as_u64()), (Some(0), Some(2)));
    es.stop();
    let all = EventServer::stored(&es.dir.path().join("data/all"));
    let churn = EventServer::stored(&es.dir.path().join("data/churn"));
    assert_eq!((all.len(), churn.len()), (2, 1), "both events in 'all', the churn query also in 'churn'");
    assert!(churn[0].folder.starts_with("apinode-query/churn"));
    let log = std::fs::read_to_string(es.dir.path().join("run/eventserver.log")).expect("runtime log");
    assert!(log.contains("Refused a batch"), "refusals are in the event server's own log");
    assert!(!log.contains("global-key-1234") && !log.contains("churn-key-1234"), "keys are never logged");
}

/// The `message` of a JSONAuditLayout line, as JSON.
fn message_of(line: &str) -> Value {
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    match &v["message"] {
        Value::String(s) => serde_json::from_str(s).unwrap_or_else(|e| panic!("message not JSON ({e}): {s}")),
        m => m.clone(),
    }
}

#[tokio::test]
async fn resource_usage_is_reported_every_period_and_at_stop() {
    let node =
        DssNode::with_settings(data_dir(), None, json!({"auditLog": {"computeResourceUsageIntervalSeconds": 1}}));
    node.start();
    let client = reqwest::Client::new();
    for i in 0..20 {
        let body = json!({"features": {"x": i, "color": "red"}});
        send(client.post(format!("{}/public/api/v1/kinds/linear/predict", node.base())).json(&body)).await.ok();
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    node.stop();
    let messages: Vec<Value> = node.audit_lines("cru").iter().map(|l| message_of(l)).collect();
    let types: Vec<&str> = messages.iter().filter_map(|m| m["msgType"].as_str()).collect();
    assert!(types.iter().filter(|t| **t == "compute-resource-usage-update").count() >= 2, "{types:?}");
    assert_eq!(types.last(), Some(&"compute-resource-usage-complete"), "{types:?}");
    let requests: u64 = messages.iter().filter_map(|m| m["services"]["kinds"]["requests"].as_u64()).sum();
    assert_eq!(requests, 20, "each request is counted in exactly one period");
    let last = messages.last().expect("a message");
    assert_eq!(last["topic"], "compute-resource-usage");
    let p = &last["computeResourceUsage"]["localProcess"];
    assert_eq!(last["computeResourceUsage"]["type"], "LOCAL_PROCESS");
    assert!(p["pid"].as_u64().is_some() && p["memoryRSSMB"].as_f64().expect("rss") > 0.0, "{last}");
    assert!(p["cpuUserTimeMS"].as_u64().is_some() && p["memoryPeakRSSMB"].as_f64().is_some(), "{last}");
    assert!(last["eventId"].as_str().is_some() && last["nodeId"] == "test-node");
}
