//! Every row of the error table over HTTP, and bad inputs of every kind:
//! each answer has the right status, `errorType` and a message naming what
//! is wrong.

use apinode::config::ServerConfig;
use base64::Engine;
use serde_json::json;

use crate::common::{TestNode, data_dir};

#[tokio::test]
async fn malformed_json_wrong_shapes_and_wrong_types_are_400() {
    let node = TestNode::start().await;
    let url = format!("{}/public/api/v1/kinds/linear/predict", node.base);
    let raw =
        node.send(node.client.post(&url).header("content-type", "application/json").body("{\"features\": ")).await;
    assert!(raw.error(400, "InvalidRequest").contains("not valid JSON"));
    for (body, needle) in [
        (json!({"features": [1, 2]}), "features: invalid type"),
        (json!({"feature": {"x": 1}}), "missing field `features`"),
        (json!({"features": {"x": "abc"}}), "feature \"x\": expected a number"),
        (json!({"features": {"x": [1]}}), "feature \"x\": expected a number, got an array"),
        (json!({"features": {"color": {"a": 1}}}), "feature \"color\": expected a string, got an object"),
        (json!({"features": {}, "dispatch": {"forcedGeneration": 3}}), "dispatch.forcedGeneration: invalid type"),
        (json!({"features": {}, "explanations": {"enabled": true, "method": "LIME"}}), "unknown variant `LIME`"),
        (json!({"features": {}, "explanations": {"enabled": true, "nMonteCarloSteps": 5}}), "nMonteCarloSteps: 5"),
        (json!({"features": {}, "explanations": {"enabled": true, "nExplanations": 0}}), "nExplanations: 0"),
        (json!([1]), "must be a JSON object, got an array"),
    ] {
        let r = node.predict("kinds", "linear", &body).await;
        let message = r.error(400, "InvalidRequest");
        assert!(message.contains(needle), "{body}: {message:?} lacks {needle:?}");
    }
    let r = node.post("/public/api/v1/kinds/linear/predict-multi", &json!({"items": []})).await;
    assert!(r.error(400, "InvalidRequest").contains("items"));
    let r = node
        .post(
            "/public/api/v1/kinds/linear/predict-multi",
            &json!({"items": [{"features": {"x": 1}}, {"features": {"x": true}}]}),
        )
        .await;
    assert!(r.error(400, "InvalidRequest").starts_with("items[1].features: feature \"x\""));
    node.stop().await;
}

#[tokio::test]
async fn a_body_without_content_type_is_accepted_when_it_is_json() {
    let node = TestNode::start().await;
    let url = format!("{}/public/api/v1/kinds/linear/predict", node.base);
    let r = node.send(node.client.post(&url).body(r#"{"features": {"x": 14, "color": "blue"}}"#)).await;
    assert_eq!(r.ok()["result"]["prediction"], 5.0);
    node.stop().await;
}

#[tokio::test]
async fn unknown_services_endpoints_paths_and_methods() {
    let node = TestNode::start().await;
    let r = node.predict("nope", "linear", &json!({"features": {}})).await;
    assert!(r.error(404, "NotFound").contains("nope"));
    let r = node.predict("kinds", "nope", &json!({"features": {}})).await;
    assert!(r.error(404, "NotFound").contains("no endpoint \"nope\""));
    let r = node.predict("bad id!", "linear", &json!({"features": {}})).await;
    r.error(404, "NotFound");
    let r = node.get("/public/api/v1/kinds/linear/forecast").await;
    r.error(404, "NotFound");
    let r = node.get("/public/api/v1/kinds/linear/predict").await;
    r.error(405, "MethodNotAllowed");
    assert_eq!(r.headers["dss-api-version"], "1", "errors carry the version headers too");
    node.stop().await;
}

#[tokio::test]
async fn oversized_bodies_are_413_before_parsing() {
    let config = ServerConfig { max_body_bytes: 2048, ..ServerConfig::default() };
    let node = TestNode::start_with(data_dir(), config).await;
    let big = json!({"features": {"x": 1, "padding": "x".repeat(4000)}});
    let r = node.predict("kinds", "linear", &big).await;
    assert!(r.error(413, "PayloadTooLarge").contains("2048"));
    // Streamed in chunks without Content-Length: the limit still holds.
    let answer = chunked_post(&node.base, "/public/api/v1/kinds/linear/predict", 10, 1000).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("PayloadTooLarge"), "{answer}");
    // A body under the limit still works.
    let r = node.predict("kinds", "linear", &json!({"features": {"x": 14, "color": "blue"}})).await;
    assert_eq!(r.ok()["result"]["prediction"], 5.0);
    node.stop().await;
}

/// POSTs `chunks` chunks of `size` bytes with chunked transfer encoding, over
/// a raw socket, and returns the whole answer as text.
async fn chunked_post(base: &str, path: &str, chunks: usize, size: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head =
        format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.expect("write head");
    for _ in 0..chunks {
        let chunk = format!("{size:x}\r\n{}\r\n", "x".repeat(size));
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break; // the server may answer and close before the end
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn unavailable_services_are_503_and_bad_forced_generations_400() {
    let node = TestNode::start().await;
    let body = json!({"features": {"x": 1}});
    assert!(node.predict("disabled", "score", &body).await.error(503, "ServiceUnavailable").contains("disabled"));
    assert!(
        node.predict("unmapped", "score", &body)
            .await
            .error(503, "ServiceUnavailable")
            .contains("no active generation")
    );
    let message = node.predict("broken", "score", &body).await.error(503, "ServiceUnavailable");
    assert!(!message.contains("service.json") && !message.contains('/'), "no paths leak: {message}");
    let forced = json!({"features": {"x": 1}, "dispatch": {"forcedGeneration": "v9"}});
    let message = node.predict("ab", "score", &forced).await.error(400, "InvalidRequest");
    assert!(message.contains("v9"), "{message}");
    node.stop().await;
}

#[tokio::test]
async fn api_keys_are_required_on_secured_services() {
    let node = TestNode::start().await;
    let url = format!("{}/public/api/v1/secured/score/predict", node.base);
    let body = json!({"features": {"x": 1}});
    let basic = |key: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{key}:")));
    let none = node.send(node.client.post(&url).json(&body)).await;
    assert!(none.error(401, "Unauthorized").contains("requires an API key"));
    let wrong = node.send(node.client.post(&url).header("authorization", basic("guess")).json(&body)).await;
    let message = wrong.error(401, "Unauthorized");
    assert!(!message.contains("guess"), "the key is never echoed: {message}");
    let garbled = node.send(node.client.post(&url).header("authorization", "Digest abc").json(&body)).await;
    garbled.error(401, "Unauthorized");
    let good = node.send(node.client.post(&url).header("authorization", basic("secret-key-1")).json(&body)).await;
    assert_eq!(good.ok()["result"]["prediction"], 7.0);
    let bearer = node.send(node.client.post(&url).bearer_auth("secret-key-1").json(&body)).await;
    assert_eq!(bearer.ok()["result"]["prediction"], 7.0);
    node.stop().await;
}

#[tokio::test]
async fn a_model_that_overflows_is_500_without_internals() {
    let node = TestNode::start().await;
    let r = node.predict("kinds", "overflow", &json!({"features": {"x": 1e10}})).await;
    let message = r.error(500, "ScoringFailed");
    assert_eq!(message, "the model of endpoint overflow failed to score the record");
    node.stop().await;
}

#[tokio::test]
async fn is_alive_follows_the_not_alive_file() {
    let node = TestNode::start().await;
    assert_eq!(node.get("/isAlive/").await.ok()["alive"], true);
    assert_eq!(node.get("/isAlive").await.ok()["alive"], true);
    let flag = node.dir.path().join("apinode-not-alive.txt");
    std::fs::write(&flag, "maintenance").expect("write flag");
    node.get("/isAlive/").await.error(503, "ServiceUnavailable");
    // Traffic still flows while the probe says not alive.
    let r = node.predict("kinds", "linear", &json!({"features": {"x": 14, "color": "blue"}})).await;
    assert_eq!(r.ok()["result"]["prediction"], 5.0);
    std::fs::remove_file(&flag).expect("remove flag");
    assert_eq!(node.get("/isAlive/").await.ok()["alive"], true);
    node.stop().await;
}
