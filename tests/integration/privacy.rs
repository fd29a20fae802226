//! The audit policy (docs/privacy.md), with real processes: a node run by
//! `bin/dss` with a file appender, an event server and a Kafka broker;
//! distinctive values planted in features, context and malformed bodies,
//! then searched for in every file, every stored event and every Kafka
//! record; look-ups with `apinode-admin audit-hash` before and after a key
//! rotation; sampling by request id, the same records everywhere.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::common::dss::{DssNode, text};
use crate::common::eventserver::EventServer;
use crate::common::kafka::Broker;
use crate::common::{data_dir, files_under};

fn admin_cli(node: &DssNode, args: &[&str], stdin: Option<&str>) -> String {
    let mut c = crate::common::admin(node.dir.path());
    c.args(args);
    c.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = c.spawn().expect("apinode-admin runs");
    {
        use std::io::Write as _;
        let mut input = child.stdin.take().expect("stdin");
        input.write_all(stdin.unwrap_or("").as_bytes()).expect("write stdin");
    }
    let out = child.wait_with_output().expect("apinode-admin ends");
    assert!(out.status.success(), "apinode-admin {args:?}: {}", text(&out));
    String::from_utf8(out.stdout).expect("utf-8")
}

const POLICY: &str = r#"{"default": "KEEP", "fields": {
    "features.ssn": "HMAC", "features.email": "MASK", "features.income": "BUCKET:10000",
    "features.name": "TRUNCATE:1", "features.note": "DROP",
    "context.user.phone": "DROP", "context.user.card": "HMAC"}}"#;

fn planted_item(i: usize) -> Value {
    json!({"features": {"x": 10 + i, "color": "red", "ssn": format!("SSN-PLANTED-{i:04}"),
        "email": format!("mail-PLANTED-{i}@example.org"), "income": 987_654.321 + i as f64,
        "name": format!("Zebulon-PLANTED-{i}"), "note": format!("NOTE-PLANTED-{i}")},
        "context": {"user": {"phone": format!("PHONE-PLANTED-{i}"), "card": format!("CARD-PLANTED-{i}"), "tier": "gold"}}})
}

/// Values the trail must never hold (the HMAC'd, masked, truncated,
/// bucketed and dropped ones).
const PROTECTED: [&str; 7] =
    ["SSN-PLANTED", "mail-PLANTED", "987654", "ebulon", "NOTE-PLANTED", "PHONE-PLANTED", "CARD-PLANTED"];

fn lines_with<'a>(lines: &'a [String], needles: &[&str]) -> Vec<&'a String> {
    lines.iter().filter(|l| needles.iter().any(|n| l.contains(n))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_personal_data_reaches_no_file_event_or_kafka_record_and_tokens_find_a_person() {
    let broker = Broker::start();
    for t in ["priv-apinode-query", "priv-generic-failure", "priv-apicalls"] {
        broker.create_topic(t, 1);
    }
    let es = EventServer::new(json!({}));
    es.start();
    let settings = json!({
        "kafkaConnections": {"main": {"bootstrap.servers": broker.bootstrap()}},
        "auditLog": {"settings": {"targets": [{"type": "LOG4J"},
            {"type": "EVENT_SERVER", "name": "central", "url": es.url()},
            {"type": "KAFKA", "name": "kafka", "connection": "main", "topic": "priv-${topic}",
             "topicsFiltering": "SELECTED", "topics": ["apinode-query", "generic-failure", "apicalls"]}]}},
    });
    let overrides = "log4j.logger.dku.apinode.audit.allcalls=INFO, ALLCALLS_AUDIT_FILE\n";
    let node = DssNode::with_settings(data_dir(), Some(overrides), settings);
    node.start();
    // An invalid policy is refused, naming every problem; nothing changes.
    let client = reqwest::Client::new();
    let admin = node.admin_secret();
    let url = format!("{}/admin/api/services/kinds/auditPolicy", node.base());
    let bad =
        json!({"default": "MAYBE", "fields": {"features.ssn": "HASH", "feature.x": "KEEP"}, "sampling": {"rate": 2}});
    let r = client.put(&url).basic_auth(&admin, Some("")).json(&bad).send().await.expect("answer");
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["errorType"], "InvalidRequest");
    let message = body["message"].as_str().expect("message");
    for named in [
        "auditPolicy.default",
        "auditPolicy.fields.features.ssn",
        "auditPolicy.fields.feature.x",
        "auditPolicy.sampling.rate",
    ] {
        assert!(message.contains(named), "{named} is named: {message}");
    }
    // The policy through the CLI: an admin change like any other.
    admin_cli(&node, &["service-set-audit-policy", "kinds"], Some(POLICY));
    let shown: Value =
        serde_json::from_str(&admin_cli(&node, &["service-get-audit-policy", "kinds"], None)).expect("json");
    assert_eq!(shown["fields"]["features.ssn"], "HMAC");
    let predict = format!("{}/public/api/v1/kinds/linear/predict", node.base());
    let mut answers = Vec::new();
    for i in 0..20 {
        let r = client.post(&predict).json(&planted_item(i)).send().await.expect("answer");
        assert_eq!(r.status().as_u16(), 200);
        answers.push(r.text().await.expect("body"));
    }
    let multi = format!("{}/public/api/v1/kinds/linear/predict-multi", node.base());
    let items: Vec<Value> = (20..25).map(planted_item).collect();
    let r = client.post(&multi).json(&json!({"items": items})).send().await.expect("answer");
    assert_eq!(r.status().as_u16(), 200);
    // Refused bodies: one that does not parse (withheld whole), one that
    // parses but is refused (kept under the policy).
    let broken = r#"{"features": {"ssn": "SSN-PLANTED-BROKEN", "name": "Zebulon-PLANTED-B", "x": "#;
    let r = client.post(&predict).header("content-type", "application/json").body(broken).send().await.expect("answer");
    assert_eq!(r.status().as_u16(), 400);
    let mut refused = planted_item(99);
    refused["dispatch"] = json!({"forcedGeneration": "no-such-generation"});
    let r = client.post(&predict).json(&refused).send().await.expect("answer");
    assert!(r.status().is_client_error(), "{}", r.status());
    // A person's records, by the token of their SSN; then a rotation, a
    // new record of the same person, and both found.
    let tokens = |node: &DssNode, field: &str, value: &str| -> Vec<String> {
        admin_cli(node, &["audit-hash", "kinds", field, value], None).lines().map(str::to_owned).collect()
    };
    let before = tokens(&node, "features.ssn", "SSN-PLANTED-0003");
    assert_eq!(before.len(), 1, "{before:?}");
    assert!(before[0].starts_with("hmac-sha256:k1:"), "{before:?}");
    let rotated = admin_cli(&node, &["audit-hmac-rotate"], None);
    assert!(rotated.contains("k2"), "{rotated}");
    let r = client.post(&predict).json(&planted_item(3)).send().await.expect("answer");
    assert_eq!(r.status().as_u16(), 200);
    let after = tokens(&node, "features.ssn", "SSN-PLANTED-0003");
    assert_eq!(after.len(), 2, "a token per key, newest first: {after:?}");
    assert!(after[0].starts_with("hmac-sha256:k2:") && after[1] == before[0], "{after:?}");
    // A field the policy does not HMAC has no tokens to find: refused.
    let out = crate::common::admin(node.dir.path()).args(["audit-hash", "kinds", "features.email", "x"]).output();
    let out = out.expect("runs");
    assert!(!out.status.success() && text(&out).contains("not HMAC'd"), "{}", text(&out));
    let ring = client
        .get(format!("{}/admin/api/services/kinds/queries?limit=100", node.base()))
        .basic_auth(&admin, Some(""))
        .send()
        .await
        .expect("answer")
        .text()
        .await
        .expect("body");
    assert!(ring.contains("hmac-sha256:k2:"), "the ring holds the records as recorded");
    node.stop();
    es.stop();

    // Every query record of person 3, and only theirs, carries one of the tokens.
    let queries = node.audit_lines("queries");
    let found = lines_with(&queries, &after.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(found.len(), 2, "person 3's two records: {found:#?}");
    assert!(found.iter().any(|l| l.contains(&after[0])) && found.iter().any(|l| l.contains(&after[1])));
    let card = tokens(&node, "context.user.card", "CARD-PLANTED-3");
    assert_eq!(lines_with(&queries, &card.iter().map(String::as_str).collect::<Vec<_>>()).len(), 2, "offline look-up");
    assert_eq!(queries.len(), 26, "20 + 5 + 1 query records");
    let record: Value = serde_json::from_str::<Value>(&queries[0]).expect("json")["message"].clone();
    let f = &record["features"];
    assert_eq!(
        (f["email"].as_str(), f["name"].as_str(), f["income"].as_f64()),
        (Some("***"), Some("Z"), Some(980_000.0))
    );
    assert!(f.get("note").is_none() && f["x"] == 10 && f["color"] == "red", "{f}");
    assert_eq!(record["context"], json!({"user": {"card": record["context"]["user"]["card"], "tier": "gold"}}));
    let failures: Vec<String> =
        node.audit_lines("failures").into_iter().filter(|l| l.contains("\"prediction-failure\"")).collect();
    assert_eq!(failures.len(), 2, "{failures:#?}");
    let withheld: Value = serde_json::from_str::<Value>(&failures[0]).expect("json")["message"].clone();
    assert_eq!((withheld["bodyWithheld"].as_bool(), withheld["body"].as_str()), (Some(true), Some("")), "{withheld}");
    assert!(failures[1].contains("hmac-sha256:k1:") && failures[1].contains("\\\"***\\\""), "{}", failures[1]);

    // Nothing protected anywhere: the data directory (but its key files),
    // the event server's files, every Kafka record.
    let mut searched: Vec<(String, String)> = Vec::new();
    let config = node.dir.path().join("config");
    for f in files_under(node.dir.path(), &|_| false).into_iter().chain(files_under(es.dir.path(), &|_| false)) {
        if f.starts_with(&config) {
            continue;
        }
        let bytes = std::fs::read(&f).expect("read");
        searched.push((f.display().to_string(), String::from_utf8_lossy(&bytes).into_owned()));
    }
    searched.push(("the query ring".into(), ring));
    let mut kafka = 0;
    for topic in ["priv-apinode-query", "priv-generic-failure", "priv-apicalls"] {
        for r in broker.consume(topic, usize::MAX, Duration::from_secs(5)) {
            kafka += 1;
            searched.push((format!("kafka {topic}"), r.value));
        }
    }
    assert!(kafka >= 28, "26 queries and 2 failures reached Kafka: {kafka}");
    let es_queries =
        EventServer::stored(&es.root()).iter().filter(|s| s.line["clientEvent"]["topic"] == "apinode-query").count();
    assert_eq!(es_queries, 26, "the event server got every query record");
    let mut hits = Vec::new();
    for (name, text) in &searched {
        for v in PROTECTED {
            if let Some(line) = text.lines().find(|l| l.contains(v)) {
                hits.push(format!("{name} holds {v}: {line:.300}"));
            }
        }
    }
    assert!(hits.is_empty(), "protected values found: {hits:#?}");
    let tokens_seen = searched.iter().filter(|(_, t)| t.contains("hmac-sha256:k1:")).count();
    assert!(tokens_seen >= 4, "tokens in the files, the event server and Kafka: {tokens_seen}");
    eprintln!(
        "planted values: {} protected values, {} files and records searched, 0 hits",
        PROTECTED.len(),
        searched.len()
    );
    // The admin trail: the change, the look-ups (never the value), the rotation.
    let main_log = std::fs::read_to_string(node.dir.path().join("run/apimain.log")).expect("apimain.log");
    let admin_log: Vec<&str> = main_log.lines().filter(|l| l.contains("[dku.apinode.audit.admin]")).collect();
    for t in ["service-audit-policy-set", "audit-hash-lookup", "audit-hmac-rotate"] {
        assert!(admin_log.iter().any(|l| l.contains(&format!("\"msgType\":\"{t}\""))), "{t} recorded");
    }
    let lookups: Vec<&&str> = admin_log.iter().filter(|l| l.contains("audit-hash-lookup")).collect();
    assert_eq!(lookups.len(), 3, "two look-ups through the API, one offline: {lookups:#?}");
    assert!(lookups.iter().all(|l| l.contains("\"field\":") && !l.contains("PLANTED")), "never the value");
}

/// The rule of docs/privacy.md, written again here: the first 53 bits of
/// SHA-256(requestId) as a fraction, below the rate.
fn kept_by_rule(id: &str, rate: f64) -> bool {
    let d = Sha256::digest(id.as_bytes());
    let x = (u64::from_be_bytes(d[..8].try_into().expect("8 bytes")) >> 11) as f64 / (1u64 << 53) as f64;
    x < rate
}

fn ids_of<'a>(lines: impl Iterator<Item = &'a Value>) -> BTreeSet<String> {
    lines.map(|v| v["requestId"].as_str().expect("requestId").to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_keeps_a_tenth_and_the_same_records_in_the_file_the_event_server_and_the_ring() {
    let es = EventServer::new(json!({}));
    es.start();
    let settings = json!({"auditLog": {"settings": {"targets": [{"type": "LOG4J"},
        {"type": "EVENT_SERVER", "name": "central", "url": es.url()}]}}});
    let node = DssNode::with_settings(data_dir(), None, settings);
    node.start();
    admin_cli(&node, &["service-set-audit-policy", "kinds"], Some(r#"{"sampling": {"rate": 0.1}}"#));
    let client = reqwest::Client::new();
    let multi = format!("{}/public/api/v1/kinds/linear/predict-multi", node.base());
    let mut answered = Vec::new();
    for round in 0..20 {
        let items: Vec<Value> = (0..1000).map(|i| json!({"features": {"x": round * 1000 + i}})).collect();
        let r = client.post(&multi).json(&json!({"items": items})).send().await.expect("answer");
        assert_eq!(r.status().as_u16(), 200);
        let body: Value = r.json().await.expect("json");
        for res in body["results"].as_array().expect("results") {
            answered.push(res["requestId"].as_str().expect("id").to_owned());
        }
    }
    assert_eq!(answered.len(), 20_000);
    let ring: Value = client
        .get(format!("{}/admin/api/services/kinds/queries?limit=10000", node.base()))
        .basic_auth(node.admin_secret(), Some(""))
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("json");
    node.stop();
    es.stop();
    let file: Vec<Value> = node
        .audit_lines("queries")
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).expect("json")["message"].clone())
        .collect();
    let stored: Vec<Value> = EventServer::stored(&es.root())
        .into_iter()
        .map(|s| s.line["clientEvent"].clone())
        .filter(|e| e["topic"] == "apinode-query")
        .collect();
    let in_file = ids_of(file.iter());
    let kept = in_file.len();
    assert!((1_800..=2_200).contains(&kept), "10% ± 1% of 20,000: {kept}");
    assert_eq!(kept, file.len(), "each kept record once");
    assert!(file.iter().all(|v| v["samplingRate"] == 0.1), "kept records say their rate");
    let expected: BTreeSet<String> = answered.iter().filter(|id| kept_by_rule(id, 0.1)).cloned().collect();
    assert_eq!(in_file, expected, "decided by the request id alone");
    let at_es = ids_of(stored.iter());
    assert_eq!(at_es.len(), stored.len(), "each record stored once");
    assert_eq!(at_es, in_file, "the event server keeps the same records");
    let ring_ids = ids_of(ring.as_array().expect("ring").iter());
    assert_eq!(ring_ids, in_file, "the ring keeps the same records");
    eprintln!("sampling 0.1: {kept} of 20,000 records kept, the same in the file, the event server and the ring");
}
