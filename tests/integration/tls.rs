//! TLS everywhere the audit travels (docs/security.md "TLS"), with real
//! processes and certificates made at test time: an HTTPS node for
//! Dataiku's Python client, `apinode-admin` and `bin/dss`; nodes presenting
//! client certificates to an HTTPS event server that keeps each out of the
//! other's folder; a node that does not trust the event server says why and
//! delivers everything once fixed; Kafka over TLS.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::certs::Pki;
use crate::common::dss::DssNode;
use crate::common::eventserver::EventServer;
use crate::common::kafka::Broker;
use crate::common::tls_proxy::TlsProxy;
use crate::common::{data_dir, python};

fn https(node: &DssNode) -> String {
    format!("https://127.0.0.1:{}", node.port)
}

/// A plain HTTP request on `port` written line by line with pauses, and
/// everything read back (a write or read refused by a reset panics).
fn plain_http_in_pieces(port: u16) -> String {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    for piece in ["GET /isAlive/ HTTP/1.0\r\n", "Host: 127.0.0.1\r\n", "\r\n"] {
        s.write_all(piece.as_bytes()).expect("the node did not wait for the whole head");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("the answer was reset before it was read");
    answer
}

/// A client trusting `pki`'s CA, presenting `identity` when given.
fn client(pki: &Pki, identity: Option<(&Path, &Path)>) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(pki.ca_file()).expect("ca")).expect("pem");
    let mut b = reqwest::Client::builder().tls_built_in_root_certs(false).add_root_certificate(ca);
    if let Some((c, k)) = identity {
        let mut pem = std::fs::read(c).expect("cert");
        pem.extend(std::fs::read(k).expect("key"));
        b = b.identity(reqwest::Identity::from_pem(&pem).expect("identity"));
    }
    b.build().expect("client")
}

fn admin_cli(node: &DssNode, args: &[&str]) -> (bool, String) {
    let out = crate::common::admin(node.dir.path()).args(args).output().expect("apinode-admin");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

async fn predict_ids(base: &str, client: &reqwest::Client, tag: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let id = format!("{tag}-{i}");
        let r = client
            .post(format!("{base}/public/api/v1/kinds/linear/predict"))
            .header("x-request-id", &id)
            .json(&json!({"features": {"x": i, "color": "red"}}))
            .send()
            .await
            .expect("answer");
        assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap_or_default());
        ids.push(id);
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_node_serves_the_python_client_the_cli_and_dss_and_can_require_client_certificates() {
    let pki = Pki::new("test-ca");
    let (cert, key) = pki.issue("node");
    let tls = json!({"certFile": cert, "keyFile": key});
    let node = DssNode::with_settings(data_dir(), None, json!({"tls": tls}));
    node.start();
    let base = https(&node);
    let r = client(&pki, None).get(format!("{base}/isAlive/")).send().await.expect("https");
    assert_eq!(r.status().as_u16(), 200);
    // Plain HTTP on the TLS port: a clear error, not a hang or garbage.
    let r = reqwest::get(format!("http://127.0.0.1:{}/isAlive/", node.port)).await.expect("plain");
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["errorType"], "HttpsRequired", "{body}");
    // ... also for a client writing its head in pieces (as bash's printf
    // does): the answer waits for the head, and the close does not reset it.
    let answer = plain_http_in_pieces(node.port);
    assert!(answer.starts_with("HTTP/1.1 400") && answer.contains("HttpsRequired"), "{answer}");
    // A client that does not trust the node's CA is refused by its own TLS.
    let untrusting = reqwest::Client::builder().tls_built_in_root_certs(true).build().expect("client");
    assert!(untrusting.get(format!("{base}/isAlive/")).send().await.is_err());
    // Dataiku's Python client, with the CA as requests' bundle.
    let script = r#"
import sys, dataikuapi
c = dataikuapi.APINodeClient(sys.argv[1], "kinds")
r = c.predict_record("linear", {"x": 3, "color": "red"})
assert "prediction" in r["result"], r
print("python over https ok", r["result"]["prediction"])
"#;
    let out = Command::new(python())
        .args(["-c", script, &base])
        .env("REQUESTS_CA_BUNDLE", pki.ca_file())
        .output()
        .expect("python");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("python over https ok"), "{text}");
    let (ok, text) = admin_cli(&node, &["services-list"]);
    assert!(ok && text.contains("kinds"), "{text}");
    node.stop();

    // Client certificates required: the CLI presents the one configured for it.
    let (tool_cert, tool_key) = pki.issue("apinode-admin");
    let tls = json!({"certFile": cert, "keyFile": key, "clientCaFile": pki.ca_file(),
                     "clientCertFile": tool_cert, "clientKeyFile": tool_key});
    let config = node.dir.path().join("config/server.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&config).expect("config")).expect("json");
    v["tls"] = tls;
    std::fs::write(&config, v.to_string()).expect("write");
    node.start();
    let anonymous = client(&pki, None).get(format!("{base}/isAlive/")).send().await;
    assert!(anonymous.is_err(), "no client certificate, no connection");
    let (c, k) = pki.issue("partner");
    let r = client(&pki, Some((&c, &k))).get(format!("{base}/isAlive/")).send().await.expect("mTLS");
    assert_eq!(r.status().as_u16(), 200);
    let (ok, text) = admin_cli(&node, &["services-list"]);
    assert!(ok && text.contains("kinds"), "{text}");
    let (ok, text) = admin_cli(&node, &["--output", "json", "metrics-get"]);
    assert!(ok, "{text}");
    let metrics: Value = serde_json::from_str(text.trim()).expect("json");
    assert!(metrics["connections"]["tlsFailed"].as_u64() >= Some(1), "{metrics}");
    node.stop();
}

/// An HTTPS event server that requires client certificates, with one
/// folder per node that only that node's certificate may write.
fn mtls_event_server(pki: &Pki) -> EventServer {
    let (cert, key) = pki.issue("collector");
    let dest = |node: &str| json!({"name": node, "routingKeysFiltering": "SELECTED", "routingKeys": [node], "requiredClientName": node});
    let es = EventServer::new(json!({
        "tls": {"certFile": cert, "keyFile": key, "clientCaFile": pki.ca_file()},
        "destinations": [dest("node-a"), dest("node-b")],
    }));
    es.start();
    es
}

fn node_sending_to(es: &EventServer, pki: &Pki, cert_name: &str, routing_key: &str, ca: &Path) -> DssNode {
    let (cert, key) = pki.issue(cert_name);
    let target = json!({"type": "EVENT_SERVER", "name": "central", "url": format!("https://127.0.0.1:{}", es.port),
        "caFile": ca, "clientCertFile": cert, "clientKeyFile": key,
        "routingKeyMode": "STATIC", "routingKey": routing_key,
        "topicsFiltering": "SELECTED", "topics": ["apinode-query"]});
    let settings = json!({"nodeId": cert_name, "auditLog": {"settings": {"targets": [{"type": "LOG4J"}, target]}}});
    DssNode::with_settings(data_dir(), None, settings)
}

async fn metrics(node: &DssNode) -> Value {
    reqwest::Client::new()
        .get(format!("{}/admin/api/metrics", node.base()))
        .basic_auth(node.admin_secret(), Some(""))
        .send()
        .await
        .expect("metrics")
        .json()
        .await
        .expect("json")
}

/// Waits until the `central` target has nothing left to send.
async fn drained(node: &DssNode) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let t = metrics(node).await["audit"]["targets"]["central"].clone();
        if t["spoolMessages"] == 0 && t["queued"] == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "not delivered: {t}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The request ids stored under `folder` (relative to the root), with the
/// client name each was stored with.
fn stored(es: &EventServer, folder: &str) -> Vec<(String, Value)> {
    EventServer::stored(&es.root())
        .into_iter()
        .filter(|s| s.folder.starts_with(folder))
        .map(|s| {
            (
                s.line["clientEvent"]["requestId"].as_str().unwrap_or_default().to_owned(),
                s.line["origClientName"].clone(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_with_client_certificates_feed_one_event_server_and_neither_writes_the_others_folder() {
    let pki = Pki::new("test-ca");
    let es = mtls_event_server(&pki);
    let a = node_sending_to(&es, &pki, "node-a", "node-a", &pki.ca_file());
    // Node b is set to write into node a's folder.
    let b = node_sending_to(&es, &pki, "node-b", "node-a", &pki.ca_file());
    a.start();
    b.start();
    let http = reqwest::Client::new();
    let ids_a = predict_ids(&a.base(), &http, "a", 40).await;
    let ids_b = predict_ids(&b.base(), &http, "b", 40).await;
    drained(&a).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let central_b = metrics(&b).await["audit"]["targets"]["central"].clone();
    let why = central_b["lastError"].as_str().unwrap_or_default().to_owned();
    assert!(why.contains("403") && why.contains("takes only events from the client certificate"), "{central_b}");
    assert!(why.contains("presented \\\"node-b\\\""), "the refusal names the certificate presented: {why}");
    assert!(central_b["spoolMessages"].as_u64() > Some(0), "node b keeps its records: {central_b}");
    a.stop();
    b.stop();
    es.stop();
    let in_a = stored(&es, "apinode-query/node-a");
    let got: BTreeSet<String> = in_a.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(got, ids_a.iter().cloned().collect::<BTreeSet<_>>(), "exactly node a's records in its folder");
    assert!(in_a.iter().all(|(_, name)| name == "node-a"), "each stored with the certificate's name");
    assert!(ids_b.iter().all(|id| !got.contains(id)), "none of node b's");
    let log = std::fs::read_to_string(es.dir.path().join("run/eventserver.log")).expect("log");
    assert!(log.contains("403") && log.contains("node-b"), "the refusal is in the event server's log");
    eprintln!("mTLS: node-a {} records stored with its name; node-b refused ({why})", in_a.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_does_not_trust_the_event_server_says_why_and_delivers_everything_once_fixed() {
    let pki = Pki::new("test-ca");
    let wrong = Pki::new("some-other-ca");
    let es = mtls_event_server(&pki);
    let node = node_sending_to(&es, &pki, "node-a", "node-a", &wrong.ca_file());
    node.start();
    let http = reqwest::Client::new();
    let mut ids = predict_ids(&node.base(), &http, "before", 30).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t = metrics(&node).await["audit"]["targets"]["central"].clone();
    let why = t["lastError"].as_str().unwrap_or_default().to_owned();
    assert!(why.to_ascii_lowercase().contains("certificate"), "the metrics say why: {t}");
    node.stop();
    let failures = node.audit_lines("failures").join("\n");
    assert!(
        failures.contains("audit-target-down") && failures.to_ascii_lowercase().contains("certificate"),
        "{failures}"
    );
    // The operator fixes the CA and restarts: the spool goes out, once.
    let config = node.dir.path().join("config/server.json");
    let text = std::fs::read_to_string(&config).expect("config");
    let fixed = text.replace(&wrong.ca_file().display().to_string(), &pki.ca_file().display().to_string());
    assert_ne!(fixed, text, "the CA path was replaced");
    std::fs::write(&config, fixed).expect("write");
    node.start();
    ids.extend(predict_ids(&node.base(), &http, "after", 10).await);
    drained(&node).await;
    node.stop();
    es.stop();
    let stored = stored(&es, "apinode-query/node-a");
    let mut seen = BTreeSet::new();
    for (id, _) in &stored {
        assert!(seen.insert(id.clone()), "{id} stored twice");
    }
    assert_eq!(seen, ids.iter().cloned().collect::<BTreeSet<_>>(), "every answered record, once");
    eprintln!("wrong CA: refused ({why}); after the fix {} records delivered once", stored.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_records_reach_kafka_over_tls() {
    let pki = Pki::new("test-ca");
    let (cert, key) = pki.issue("broker");
    let port = TlsProxy::free_port();
    let broker = Broker::start_behind(port);
    let _proxy = TlsProxy::start(port, broker.port(), &cert, &key, None);
    broker.create_topic("tls-queries", 1);
    let bootstrap = format!("127.0.0.1:{port}");
    let ca = pki.ca_file().display().to_string();
    let settings = json!({
        "kafkaConnections": {"secure": {"bootstrap.servers": bootstrap, "security.protocol": "ssl",
                                        "ssl.ca.location": ca}},
        "auditLog": {"settings": {"targets": [{"type": "LOG4J"},
            {"type": "KAFKA", "name": "kafka", "connection": "secure", "topic": "tls-queries",
             "topicsFiltering": "SELECTED", "topics": ["apinode-query"]}]}},
    });
    let node = DssNode::with_settings(data_dir(), None, settings);
    node.start();
    let ids = predict_ids(&node.base(), &reqwest::Client::new(), "k", 25).await;
    node.stop();
    let props =
        [("bootstrap.servers", bootstrap.as_str()), ("security.protocol", "ssl"), ("ssl.ca.location", ca.as_str())];
    let records = broker.consume_with("tls-queries", ids.len(), Duration::from_secs(30), &props);
    let got: BTreeSet<String> = records
        .iter()
        .filter_map(|r| serde_json::from_str::<Value>(&r.value).ok())
        .filter_map(|v| v["requestId"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(got, ids.iter().cloned().collect::<BTreeSet<_>>(), "every record over TLS");
    eprintln!("Kafka over TLS: {} records through a TLS listener in front of the broker", got.len());
}
