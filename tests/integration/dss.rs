//! `bin/dss` as an operator uses it: start (waits for /isAlive/), status
//! (exit 0 running / 3 stopped), a prediction, stop (graceful), on a
//! temporary data directory. The binary under test is this build's
//! `apinode`, handed to the script through `APINODE_BIN`.

use crate::common::data_dir;
use crate::common::dss::{dss, text};

#[tokio::test]
async fn start_status_predict_stop_cycle() {
    let dir = data_dir();
    let data = dir.path();
    std::fs::create_dir_all(data.join("config")).expect("mkdir");
    std::fs::write(data.join("config/server.json"), r#"{"port": 0, "bindAddress": "127.0.0.1"}"#).expect("write");

    let status = dss(data, "status");
    assert_eq!(status.status.code(), Some(3), "stopped before start: {}", text(&status));

    let start = dss(data, "start");
    assert!(start.status.success(), "start failed: {}", text(&start));
    let status = dss(data, "status");
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
    let port = std::fs::read_to_string(data.join("run/apinode.port")).expect("port file");
    assert!(text(&status).contains("running") && text(&status).contains(port.trim()), "{}", text(&status));

    let url = format!("http://127.0.0.1:{}/public/api/v1/kinds/linear/predict", port.trim());
    let answer: serde_json::Value = reqwest::Client::new()
        .post(url)
        .json(&serde_json::json!({"features": {"x": 14, "color": "blue"}}))
        .send()
        .await
        .expect("predict")
        .json()
        .await
        .expect("json");
    assert_eq!(answer["result"]["prediction"], 5.0);

    let again = dss(data, "start");
    assert!(again.status.success() && text(&again).contains("already running"), "{}", text(&again));

    let stop = dss(data, "stop");
    assert!(stop.status.success(), "stop failed: {}", text(&stop));
    let status = dss(data, "status");
    assert_eq!(status.status.code(), Some(3), "{}", text(&status));
    assert!(!data.join("run/apinode.pid").exists(), "the pid file is removed");
    let log = std::fs::read_to_string(data.join("run/apimain.log")).expect("runtime log");
    assert!(log.contains("SIGTERM received") && log.contains("Stopped serving"), "{log}");
    assert!(log.contains("Service broken could not start"), "bad services are reported in the log");
}

#[test]
fn start_fails_with_the_log_when_the_configuration_is_invalid() {
    let dir = data_dir();
    let data = dir.path();
    std::fs::create_dir_all(data.join("config")).expect("mkdir");
    std::fs::write(data.join("config/server.json"), r#"{"port": "twelve thousand"}"#).expect("write");
    let start = dss(data, "start");
    assert!(!start.status.success(), "{}", text(&start));
    assert!(text(&start).contains("port: must be an integer"), "{}", text(&start));
    assert_eq!(dss(data, "status").status.code(), Some(3));
}
