//! Hostile and slow clients (docs/security.md), against nodes run by
//! `bin/dss`: slow heads, slow bodies and idle sockets while others are
//! served; a stop under a slowloris flood; the connection cap; flood
//! control of wrong keys; `/isAlive/` while big batches score; request ids;
//! JSON bodies for the errors the HTTP layer makes.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::data_dir;
use crate::common::dss::DssNode;

fn node_with_limits(limits: Value) -> DssNode {
    let node = DssNode::with_settings(data_dir(), None, json!({"limits": limits}));
    node.start();
    node
}

fn connect(node: &DssNode) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", node.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    s
}

/// Whether the server closed `s` (EOF or reset) within `within`; any bytes
/// it sent first are returned.
fn closed_within(s: &mut TcpStream, within: Duration) -> Option<String> {
    s.set_read_timeout(Some(within)).expect("timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(String::from_utf8_lossy(&got).into_owned()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::ConnectionReset) => {
                return Some(String::from_utf8_lossy(&got).into_owned());
            }
            Err(_) => return None,
        }
    }
}

fn p99(mut latencies: Vec<Duration>) -> f64 {
    latencies.sort();
    latencies.get(latencies.len() * 99 / 100).copied().unwrap_or_default().as_secs_f64() * 1000.0
}

/// Predictions one after another for `n` requests; latencies of the 200s.
async fn served(node: &DssNode, n: usize) -> Vec<Duration> {
    let client = reqwest::Client::new();
    let mut out = Vec::new();
    for i in 0..n {
        let started = Instant::now();
        let r = client
            .post(format!("{}/public/api/v1/kinds/linear/predict", node.base()))
            .json(&json!({"features": {"x": i % 50}}))
            .send()
            .await
            .expect("served while the flood lasts");
        assert!(r.status().is_success(), "{}", r.status());
        out.push(started.elapsed());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_heads_slow_bodies_and_idle_sockets_are_cut_while_others_are_served() {
    let node =
        node_with_limits(json!({"headerReadTimeoutSeconds": 2, "bodyReadTimeoutSeconds": 2, "idleTimeoutSeconds": 2}));
    let mut slow_heads: Vec<TcpStream> = (0..30).map(|_| connect(&node)).collect();
    for s in &mut slow_heads {
        s.write_all(b"POST /public/api/v1/kinds/linear/predict HTTP/1.1\r\nHost: x\r\n").expect("half a head");
    }
    let mut slow_bodies: Vec<TcpStream> = (0..30).map(|_| connect(&node)).collect();
    for s in &mut slow_bodies {
        s.write_all(
            b"POST /public/api/v1/kinds/linear/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"features\"",
        )
        .expect("half a body");
    }
    let mut idle: Vec<TcpStream> = (0..40).map(|_| connect(&node)).collect();
    let started = Instant::now();
    let latencies = served(&node, 300).await;
    eprintln!("served during a flood of 100 slow or idle sockets: 300 predictions, p99 {:.2} ms", p99(latencies));
    for (what, list) in [("slow head", &mut slow_heads), ("idle", &mut idle)] {
        for s in list.iter_mut() {
            let left = Duration::from_secs(6).saturating_sub(started.elapsed());
            assert!(closed_within(s, left.max(Duration::from_millis(100))).is_some(), "a {what} socket was not closed");
        }
    }
    for s in &mut slow_bodies {
        let answer = closed_within(s, Duration::from_secs(6)).expect("a slow body is answered and closed");
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("\"errorType\":\"RequestTimeout\""), "a JSON error body: {answer}");
    }
    node.stop();
    let failures = node.audit_lines("failures").join("\n");
    assert!(failures.contains("RequestTimeout"), "a slow body is a refused request, recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_under_a_slowloris_flood_is_quick_and_writes_node_stop() {
    let node =
        node_with_limits(json!({"stopGraceSeconds": 2, "bodyReadTimeoutSeconds": 120, "idleTimeoutSeconds": 120}));
    let mut flood: Vec<TcpStream> = (0..20).map(|_| connect(&node)).collect();
    for s in &mut flood {
        s.write_all(b"POST /public/api/v1/kinds/linear/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
            .expect("a slow body");
    }
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let out = node.dss("stop");
    let took = started.elapsed();
    assert!(out.status.success());
    eprintln!("bin/dss stop under a slowloris flood of 20 bodies: {:.2} s (stopGraceSeconds 2)", took.as_secs_f64());
    assert!(took < Duration::from_secs(7), "stop took {took:?}, more than stopGraceSeconds + 5 s");
    let main = std::fs::read_to_string(node.dir.path().join("run/apimain.log")).expect("log");
    assert!(main.contains("\"msgType\":\"node-stop\""), "node-stop is recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_connections_new_ones_are_closed_at_once_and_counted() {
    let node = node_with_limits(json!({"maxConnections": 20, "idleTimeoutSeconds": 3}));
    let mut held: Vec<TcpStream> = (0..30).map(|_| connect(&node)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let closed = held.iter_mut().filter_map(|s| closed_within(s, Duration::from_millis(200))).count();
    assert!(closed >= 10, "{closed} of the 30 closed at once (cap 20)");
    drop(held);
    // Once the idle ones are gone, clients are served again.
    std::thread::sleep(Duration::from_millis(3500));
    served(&node, 5).await;
    let m = reqwest::Client::new()
        .get(format!("{}/admin/api/metrics", node.base()))
        .basic_auth(node.admin_secret(), Some(""))
        .send()
        .await
        .expect("metrics")
        .json::<Value>()
        .await
        .expect("json");
    assert!(m["connections"]["refused"].as_u64() >= Some(10), "{}", m["connections"]);
    node.stop();
    let main = std::fs::read_to_string(node.dir.path().join("run/apimain.log")).expect("log");
    assert!(main.contains("maxConnections (20)"), "the refusal is logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_wrong_keys_from_one_address_leave_a_few_records_and_429s_while_another_is_served() {
    let node = node_with_limits(json!({"authFailuresPerMinute": 20}));
    let url = format!("{}/public/api/v1/secured/score/predict", node.base());
    let attacker = reqwest::Client::new();
    // Another address on the loopback: 127.0.0.2.
    let other =
        reqwest::Client::builder().local_address("127.0.0.2".parse::<std::net::IpAddr>().ok()).build().expect("client");
    let mut statuses = std::collections::BTreeMap::new();
    for i in 0..1000 {
        let r = attacker
            .post(&url)
            .bearer_auth(format!("guess-{i}"))
            .json(&json!({"features": {}}))
            .send()
            .await
            .expect("answer");
        *statuses.entry(r.status().as_u16()).or_insert(0) += 1;
        if i % 100 == 0 {
            let ok = other
                .post(&url)
                .bearer_auth("secret-key-1")
                .json(&json!({"features": {"x": 1}}))
                .send()
                .await
                .expect("other");
            assert!(ok.status().is_success(), "the other address is served: {}", ok.status());
        }
    }
    eprintln!("1,000 wrong keys from one address: {statuses:?}");
    assert_eq!(statuses.get(&401).copied(), Some(20), "{statuses:?}");
    assert_eq!(statuses.get(&429).copied(), Some(980), "{statuses:?}");
    node.stop();
    let auth = node.audit_lines("auth");
    assert!(auth.len() <= 25, "{} auth.log lines", auth.len());
    let summary = auth.iter().find(|l| l.contains("authfail-summary")).expect("the minute's summary");
    assert!(summary.contains("\"summarised\":980"), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn is_alive_answers_at_once_while_big_batches_score() {
    let node = node_with_limits(json!({}));
    let items: Vec<Value> = (0..10_000).map(|i| json!({"features": {"x": i % 50, "color": "red"}})).collect();
    let body = json!({"items": items});
    let batches: Vec<_> = (0..8)
        .map(|_| {
            let (url, body) = (format!("{}/public/api/v1/kinds/linear/predict-multi", node.base()), body.clone());
            tokio::spawn(
                async move { reqwest::Client::new().post(url).json(&body).send().await.expect("batch").status() },
            )
        })
        .collect();
    let client = reqwest::Client::new();
    let mut alive = Vec::new();
    while !batches.iter().all(|b| b.is_finished()) {
        let started = Instant::now();
        let r = client.get(format!("{}/isAlive/", node.base())).send().await.expect("isAlive");
        assert!(r.status().is_success());
        alive.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for b in batches {
        assert!(b.await.expect("task").is_success());
    }
    let worst = alive.iter().max().copied().unwrap_or_default();
    eprintln!(
        "/isAlive/ during 8 concurrent 10,000-item batches: {} probes, p99 {:.2} ms, worst {:.2} ms",
        alive.len(),
        p99(alive),
        worst.as_secs_f64() * 1000.0
    );
    assert!(worst < Duration::from_secs(1), "a probe waited {worst:?}");
    node.stop();
}

#[tokio::test]
async fn request_ids_are_validated_not_silently_replaced() {
    let strict = node_with_limits(json!({}));
    let url = format!("{}/public/api/v1/kinds/linear/predict", strict.base());
    let client = reqwest::Client::new();
    let r = client
        .post(&url)
        .header("x-request-id", "has space!")
        .json(&json!({"features": {}}))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["errorType"], "InvalidRequest");
    assert!(
        body["message"].as_str().is_some_and(|m| m.contains("X-Request-Id") && m.contains("[A-Za-z0-9._:-]")),
        "{body}"
    );
    strict.stop();
    let failures = strict.audit_lines("failures").join("\n");
    assert!(failures.contains("X-Request-Id"), "the refusal is recorded");
    let lenient = node_with_limits(json!({"requestIds": "REPLACE"}));
    let url = format!("{}/public/api/v1/kinds/linear/predict", lenient.base());
    let r = client
        .post(&url)
        .header("x-request-id", "has space!")
        .json(&json!({"features": {}}))
        .send()
        .await
        .expect("answer");
    assert!(r.status().is_success());
    assert_eq!(r.headers()["x-request-id-replaced"], "true");
    lenient.stop();
}

#[tokio::test]
async fn errors_the_http_layer_makes_have_json_bodies() {
    let node = node_with_limits(json!({}));
    let client = reqwest::Client::new();
    let base = node.base();
    let mut too_many = reqwest::header::HeaderMap::new();
    for i in 0..150 {
        too_many.insert(
            reqwest::header::HeaderName::from_bytes(format!("x-h{i}").as_bytes()).expect("name"),
            "v".parse().expect("value"),
        );
    }
    let cases = [
        (client.get(format!("{base}/nowhere")), 404, "NotFound"),
        (client.delete(format!("{base}/public/api/v1/kinds/linear/predict")), 405, "MethodNotAllowed"),
        (
            client.post(format!("{base}/public/api/v1/kinds/linear/predict")).body(vec![b'x'; 2 << 20]),
            413,
            "PayloadTooLarge",
        ),
        (client.get(format!("{base}/isAlive/")).headers(too_many), 431, "HeaderTooLarge"),
    ];
    for (request, status, error_type) in cases {
        let r = request.send().await.expect("answer");
        assert_eq!(r.status().as_u16(), status);
        let body: Value = r.json().await.expect("a JSON body");
        assert_eq!(body["errorType"], error_type, "{body}");
        assert!(body["message"].is_string());
    }
    node.stop();
}
