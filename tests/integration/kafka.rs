//! Kafka, against a real broker (tansu, started by the test on 127.0.0.1):
//! query records through the KafkaLog4jAppender matched one to one with what
//! was scored; the KAFKA target's filters, topic templates, keys and headers;
//! CDAP entity messages for admin actions, in order; a broker outage in the
//! middle of load, and a broker that only returns after the node restarted;
//! bad settings refused at start.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::dss::{DssNode, text};
use crate::common::kafka::{Broker, Consumed};
use crate::common::{data_dir, send};

fn appender_properties(broker: &Broker, topic: &str) -> String {
    format!(
        "log4j.appender.KAFKA=org.apache.kafka.log4jappender.KafkaLog4jAppender
log4j.appender.KAFKA.BrokerList={}
log4j.appender.KAFKA.Topic={topic}
log4j.appender.KAFKA.SyncSend=false
log4j.appender.KAFKA.RequiredNumAcks=-1
log4j.appender.KAFKA.layout=org.apache.log4j.PatternLayout
log4j.appender.KAFKA.layout.ConversionPattern=%m%n
log4j.logger.dku.apinode.audit.queries=INFO, QUERIES_AUDIT_FILE, KAFKA
",
        broker.bootstrap()
    )
}

/// Sends `n` predictions to kinds/linear; the request ids answered.
async fn predictions(node: &DssNode, n: usize) -> Vec<String> {
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for i in 0..n {
        let body = json!({"features": {"x": i, "color": "red"}});
        let r = send(client.post(format!("{}/public/api/v1/kinds/linear/predict", node.base())).json(&body)).await;
        ids.push(r.ok()["result"]["requestId"].as_str().expect("id").to_owned());
    }
    ids
}

fn by_request_id(records: &[Consumed]) -> BTreeMap<String, Vec<&Consumed>> {
    let mut out: BTreeMap<String, Vec<&Consumed>> = BTreeMap::new();
    for r in records {
        let v: Value = serde_json::from_str(&r.value).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.value));
        out.entry(v["requestId"].as_str().expect("requestId").to_owned()).or_default().push(r);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_records_through_the_appender_match_what_was_scored() {
    let broker = Broker::start();
    broker.create_topic("apinode-queries", 3);
    let node = DssNode::new(Some(&appender_properties(&broker, "apinode-queries")));
    node.start();
    let ids = predictions(&node, 150).await;
    node.stop();
    let records = broker.consume("apinode-queries", ids.len(), Duration::from_secs(30));
    let found = by_request_id(&records);
    assert_eq!(found.keys().cloned().collect::<BTreeSet<_>>(), ids.iter().cloned().collect(), "one to one");
    assert!(found.values().all(|v| v.len() == 1), "each query once");
    assert!(records.iter().all(|r| r.key.as_deref() == Some("kinds")), "keyed by service");
    assert_eq!(node.audit_lines("queries").len(), ids.len(), "the file appender got them too");
}

fn set_routing_key(data: &std::path::Path, service: &str, key: &str) {
    let path = data.join("services").join(service).join("service.json");
    let mut s: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    s["routingKey"] = key.into();
    std::fs::write(&path, s.to_string()).expect("write");
}

/// A node whose audit goes to the LOG4J files and to `target` on the broker.
fn kafka_node(broker: &Broker, dir: tempfile::TempDir, target: Value, extra: Value) -> DssNode {
    let mut settings = json!({
        "kafkaConnections": {"main": {"bootstrap.servers": broker.bootstrap()}},
        "auditLog": {"settings": {"targets": [{"type": "LOG4J"}, target]}},
    });
    if let (Some(s), Some(e)) = (settings.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    let node = DssNode::with_settings(dir, None, settings);
    node.start();
    node
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kafka_target_applies_filters_topic_templates_keys_and_headers() {
    let broker = Broker::start();
    for t in ["dku-apinode-query-kinds-prod", "dku-apinode-query-_none", "dku-authfail-_none", "dku-generic-_none"] {
        broker.create_topic(t, 2);
    }
    let dir = data_dir();
    set_routing_key(dir.path(), "kinds", "kinds-prod");
    let target = json!({"type": "KAFKA", "name": "kafka", "connection": "main", "topic": "dku-${topic}-${routingKey}",
        "topicsFiltering": "SELECTED", "topics": ["apinode-query", "authfail"]});
    let node = kafka_node(&broker, dir, target, json!({}));
    let client = reqwest::Client::new();
    let mut kinds = BTreeSet::new();
    let mut ab = BTreeSet::new();
    for i in 0..10 {
        let body = json!({"features": {"x": i, "color": "red"}});
        let r = send(client.post(format!("{}/public/api/v1/kinds/linear/predict", node.base())).json(&body)).await;
        kinds.insert(r.ok()["result"]["requestId"].as_str().expect("id").to_owned());
        let r = send(client.post(format!("{}/public/api/v1/ab/score/predict", node.base())).json(&body)).await;
        ab.insert(r.ok()["result"]["requestId"].as_str().expect("id").to_owned());
        send(client.post(format!("{}/public/api/v1/secured/score/predict", node.base())).json(&body)).await;
    }
    node.stop();
    let with_key = broker.consume("dku-apinode-query-kinds-prod", 10, Duration::from_secs(30));
    let without = broker.consume("dku-apinode-query-_none", 10, Duration::from_secs(30));
    let auth = broker.consume("dku-authfail-_none", 10, Duration::from_secs(30));
    assert_eq!(by_request_id(&with_key).into_keys().collect::<BTreeSet<_>>(), kinds);
    assert_eq!(by_request_id(&without).into_keys().collect::<BTreeSet<_>>(), ab);
    assert_eq!(auth.len(), 10, "one authfail per refused call");
    let header = |r: &Consumed, k: &str| r.headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    for r in &with_key {
        assert_eq!(r.key.as_deref(), Some("kinds-prod"), "the routing key is the record key");
        assert_eq!(header(r, "topic").as_deref(), Some("apinode-query"));
        assert_eq!(header(r, "routingKey").as_deref(), Some("kinds-prod"));
        let v: Value = serde_json::from_str(&r.value).expect("json");
        assert_eq!(header(r, "eventId").as_deref(), v["eventId"].as_str(), "the eventId header is the message's");
    }
    assert!(without.iter().all(|r| r.key.as_deref() == Some("ab")), "no routing key: the service id is the key");
    assert!(auth.iter().all(|r| r.value.contains("\"msgType\":\"authfail\"")));
    // generic was not selected: its topic stays empty although admin-like messages (node start/stop) were sent.
    assert!(broker.consume("dku-generic-_none", 1, Duration::from_secs(3)).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entity_messages_of_admin_actions_reach_the_audit_topic_in_order() {
    let broker = Broker::start();
    broker.create_topic("cdap-audit", 3);
    let settings = json!({
        "kafkaConnections": {"main": {"bootstrap.servers": broker.bootstrap()}},
        "audit": {"enabled": true, "topic": "cdap-audit"},
    });
    let node = DssNode::with_settings(data_dir(), None, settings);
    let store = apinode::admin::keys::AdminKeyStore::open(node.dir.path()).expect("key store");
    let (_, key) = store.create(Some("ops".into()), None, Some("tests".into()), None).expect("admin key");
    node.start();
    let archive = node.dir.path().join("g1.zip");
    crate::common::write_zip(&archive, &crate::common::constant_generation("g1", 1.0));
    let client = reqwest::Client::new();
    let admin = |method: reqwest::Method, path: String, body: Option<Value>| {
        let mut r = client.request(method, format!("{}/admin/api{path}", node.base())).basic_auth(&key, Some(""));
        if let Some(b) = body {
            r = r.body(b.to_string());
        }
        r
    };
    use reqwest::Method;
    send(admin(Method::POST, "/services/".into(), Some(json!({"serviceId": "fraud"})))).await.ok();
    let import = format!("/services/fraud/generations/actions/importFromArchive?filePath={}", archive.display());
    send(admin(Method::POST, import, None)).await.ok();
    send(admin(Method::POST, "/services/fraud/actions/switchToNewest".into(), None)).await.ok();
    send(admin(
        Method::PUT,
        "/services/fraud/metadata".into(),
        Some(json!({"properties": {"owner": "risk"}, "tags": []})),
    ))
    .await
    .ok();
    send(admin(Method::DELETE, "/services/fraud".into(), None)).await.ok();
    node.stop();
    let local: Vec<Value> = node
        .audit_lines("entity")
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).expect("json")["message"].clone())
        .filter(|m| {
            m["entityId"]["application"] == "fraud"
                || m["entityId"]["artifact"] == "fraud"
                || m["entityId"]["dataset"] == "fraud.queries"
        })
        .collect();
    assert!(local.len() >= 6, "{local:?}");
    let records = broker.consume("cdap-audit", local.len(), Duration::from_secs(30));
    assert!(records.iter().all(|r| r.key.as_deref() == Some("fraud")), "keyed by service");
    let partitions: BTreeSet<i32> = records.iter().map(|r| r.partition).collect();
    assert_eq!(partitions.len(), 1, "one service, one partition, so one order");
    let published: Vec<Value> = records.iter().map(|r| serde_json::from_str(&r.value).expect("json")).collect();
    assert_eq!(published, local, "the same messages, in the same order, as the entity log");
    let types: Vec<(&str, &str)> = published
        .iter()
        .map(|m| (m["entityId"]["entity"].as_str().unwrap_or(""), m["type"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(types.first(), Some(&("APPLICATION", "CREATE")));
    assert_eq!(types.last(), Some(&("APPLICATION", "DELETE")));
    for t in [
        ("ARTIFACT", "CREATE"),
        ("PROGRAM", "CREATE"),
        ("ARTIFACT", "METADATA_CHANGE"),
        ("APPLICATION", "METADATA_CHANGE"),
    ] {
        assert!(types.contains(&t), "no {t:?} in {types:?}");
    }
}

#[test]
fn bad_kafka_settings_stop_the_node_at_start_with_a_clear_error() {
    let cases: Vec<(Option<String>, Value, &str)> = vec![
        (
            Some("log4j.appender.K=org.apache.kafka.log4jappender.KafkaLog4jAppender\nlog4j.appender.K.BrokerList=localhost\nlog4j.appender.K.Topic=t\nlog4j.rootLogger=INFO, K\n".into()),
            json!({}),
            "\"localhost\" is not host:port",
        ),
        (
            Some("log4j.appender.K=org.apache.kafka.log4jappender.KafkaLog4jAppender\nlog4j.appender.K.BrokerList=127.0.0.1:9\nlog4j.appender.K.Topic=t\nlog4j.appender.K.ProducerConfig.no.such.thing=1\nlog4j.rootLogger=INFO, K\n".into()),
            json!({}),
            "no.such.thing",
        ),
        (
            Some("log4j.appender.K=org.apache.kafka.log4jappender.KafkaLog4jAppender\nlog4j.appender.K.BrokerList=127.0.0.1:9\nlog4j.appender.K.Colour=red\nlog4j.rootLogger=INFO, K\n".into()),
            json!({}),
            "unknown property Colour",
        ),
        (None, json!({"kafkaConnections": {"main": {"bootstrap.servers": "127.0.0.1"}}}), "kafkaConnections.main: \"127.0.0.1\" is not host:port"),
        (
            None,
            json!({"kafkaConnections": {"main": {"bootstrap.servers": "127.0.0.1:9", "sasl.password": "hunter2", "linger.mss": "5"}}}),
            "linger.mss",
        ),
    ];
    for (properties, settings, needle) in cases {
        let node = DssNode::with_settings(data_dir(), properties.as_deref(), settings);
        let out = node.dss("start");
        let said = text(&out);
        assert!(!out.status.success(), "{needle}: the node started");
        assert!(said.contains(needle), "{needle:?} not in {said}");
        assert!(!said.contains("hunter2"), "a credential was printed: {said}");
    }
}

/// The appender (topic `via-appender`) and a KAFKA target (topic
/// `via-target`) on the same node, with short delivery timeouts.
fn outage_node(broker: &Broker) -> DssNode {
    broker.create_topic("via-appender", 2);
    broker.create_topic("via-target", 2);
    let properties = format!(
        "{}log4j.appender.KAFKA.ProducerConfig.message.timeout.ms=3000\n",
        appender_properties(broker, "via-appender")
    );
    let settings = json!({
        "kafkaConnections": {"main": {"bootstrap.servers": broker.bootstrap(), "message.timeout.ms": "3000"}},
        "auditLog": {"settings": {"targets": [{"type": "LOG4J"},
            {"type": "KAFKA", "name": "kafka", "connection": "main", "topic": "via-target",
             "topicsFiltering": "SELECTED", "topics": ["apinode-query"]}]}},
    });
    let node = DssNode::with_settings(data_dir(), Some(&properties), settings);
    node.start();
    node
}

/// Every id once at least; a duplicate only as an identical redelivery.
fn assert_all_once(topic: &str, records: &[Consumed], ids: &BTreeSet<String>) {
    eprintln!("{topic}: read {} records for {} ids", records.len(), ids.len());
    let found = by_request_id(records);
    let missing: Vec<_> = ids.iter().filter(|id| !found.contains_key(*id)).take(5).collect();
    assert!(
        missing.is_empty(),
        "{topic}: {} of {} missing, such as {missing:?}",
        ids.len() - found.len().min(ids.len()),
        ids.len()
    );
    assert_eq!(found.len(), ids.len(), "{topic}: nothing else");
    for (id, copies) in &found {
        assert!(copies.iter().all(|c| c.value == copies[0].value), "{topic}: {id} redelivered with another value");
    }
    let dups = found.values().filter(|c| c.len() > 1).count();
    eprintln!("{topic}: {} records, {} ids, {dups} identical redeliveries", records.len(), found.len());
}

/// Predictions from `tasks` concurrent clients for `seconds`: the ids answered.
async fn load_for(node: &DssNode, tasks: usize, seconds: f64) -> Vec<String> {
    let base = node.base();
    let deadline = std::time::Instant::now() + Duration::from_secs_f64(seconds);
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let base = base.clone();
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut ids = Vec::new();
                let mut i = t * 1_000_000;
                while std::time::Instant::now() < deadline {
                    i += 1;
                    let body = json!({"features": {"x": i % 100, "color": "red"}});
                    let r = client.post(format!("{base}/public/api/v1/kinds/linear/predict")).json(&body).send().await;
                    let v: Value = r.expect("answer").json().await.expect("json");
                    ids.push(v["result"]["requestId"].as_str().expect("id").to_owned());
                }
                ids
            })
        })
        .collect();
    let mut ids = Vec::new();
    for h in handles {
        ids.extend(h.await.expect("task"));
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_outage_in_the_middle_of_load_delays_records_and_loses_none() {
    let mut broker = Broker::start();
    if !broker.controllable() {
        eprintln!("skipped: KAFKA_BOOTSTRAP_SERVERS names a broker this test cannot stop");
        return;
    }
    let node = outage_node(&broker);
    let mut ids = BTreeSet::new();
    let before = load_for(&node, 2, 1.5).await;
    broker.pause();
    let during = load_for(&node, 2, 2.5).await;
    broker.resume();
    let after = load_for(&node, 2, 1.5).await;
    eprintln!(
        "predictions/s: {:.0} before the outage, {:.0} while the broker is down, {:.0} after (debug build)",
        before.len() as f64 / 1.5,
        during.len() as f64 / 2.5,
        after.len() as f64 / 1.5
    );
    ids.extend(before);
    ids.extend(during);
    ids.extend(after);
    // The backlog drains while the node runs.
    let started = std::time::Instant::now();
    let key = std::fs::read_to_string(node.dir.path().join("run/admin-local.secret")).expect("secret");
    loop {
        let r =
            reqwest::Client::new().get(format!("{}/admin/api/metrics", node.base())).basic_auth(key.trim(), Some(""));
        let m = send(r).await;
        let targets = &m.ok()["audit"]["targets"];
        let pending: Vec<u64> = ["kafka", "kafka-appender-KAFKA"]
            .iter()
            .map(|t| {
                targets[*t]["spoolMessages"].as_u64().expect("spool gauge")
                    + targets[*t]["queued"].as_u64().unwrap_or(0)
            })
            .collect();
        if pending.iter().all(|p| *p == 0) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "still pending after 2 minutes: {pending:?} {targets}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!("the backlog was delivered {:.1} s after the load ended", started.elapsed().as_secs_f64());
    node.stop();
    for topic in ["via-appender", "via-target"] {
        let records = broker.consume(topic, ids.len(), Duration::from_secs(120));
        assert_all_once(topic, &records, &ids);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_spooled_while_the_broker_is_gone_are_delivered_by_the_restarted_node() {
    let mut broker = Broker::start();
    if !broker.controllable() {
        eprintln!("skipped: KAFKA_BOOTSTRAP_SERVERS names a broker this test cannot stop");
        return;
    }
    let node = outage_node(&broker);
    broker.pause();
    let ids: BTreeSet<String> = predictions(&node, 100).await.into_iter().collect();
    let out = node.dss("stop");
    assert!(out.status.success(), "{}", text(&out));
    for spool in ["run/spool/kafka", "run/spool/kafka-appender-KAFKA"] {
        let files = std::fs::read_dir(node.dir.path().join(spool)).map(Iterator::count).unwrap_or(0);
        assert!(files > 0, "{spool} holds the undelivered records");
    }
    broker.resume();
    node.start();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    for spool in ["run/spool/kafka", "run/spool/kafka-appender-KAFKA"] {
        while std::fs::read_dir(node.dir.path().join(spool)).map(Iterator::count).unwrap_or(0) > 0 {
            assert!(std::time::Instant::now() < deadline, "{spool} was not delivered");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    node.stop();
    for topic in ["via-appender", "via-target"] {
        let records = broker.consume(topic, ids.len(), Duration::from_secs(30));
        assert_all_once(topic, &records, &ids);
    }
}
