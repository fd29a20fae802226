//! The audit streams as files, with the real binary run through `bin/dss`:
//! the seed snippet, the README's recipes, every query recorded exactly once
//! across many rolls and across a restart in the middle of load, reopening
//! after an external rotation, refusal of invalid properties, and auth and
//! call records that never hold a secret.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::dss::{DssNode, text};

/// The seed document's snippet, unchanged.
const SEED: &str = r#"log4j.appender.QUERIES_AUDIT_FILE.layout.ConversionPattern={"timestamp" : "%d{yyyy/MM/dd-HH:mm:ss.SSS}Z", "logger": "%c", "severity" : "%p", "message" : %m}%n
log4j.logger.dku.audit= INFO, AUDITFILE
log4j.logger.dku.audit.generic= INFO, QUERIES_AUDIT_FILE
"#;

/// The query records in `lines`: requestId → count.
fn record_ids(lines: &[String]) -> HashMap<String, usize> {
    let mut ids = HashMap::new();
    for line in lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert_eq!(v["logger"], "dku.apinode.audit.queries", "{line}");
        let id = v["message"]["requestId"].as_str().unwrap_or_else(|| panic!("no requestId: {line}"));
        *ids.entry(id.to_owned()).or_insert(0) += 1;
    }
    ids
}

/// Sends `per_task` requests from each of `tasks` tasks, alternating
/// `predict` and a 3-item `predict-multi`, each with its own X-Request-Id.
/// A request that fails at the transport (node restarting) is retried under
/// a new id. Returns the request ids of every record answered 200.
async fn load(base: Arc<std::sync::RwLock<String>>, tasks: usize, per_task: usize) -> Vec<String> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let mut handles = Vec::new();
    for t in 0..tasks {
        let client = client.clone();
        let base = base.clone();
        handles.push(tokio::spawn(async move {
            let mut ok = Vec::new();
            for i in 0..per_task {
                let multi = i % 2 == 1;
                for attempt in 0..200 {
                    let id = format!("t{t}-r{i}-a{attempt}");
                    let url = base.read().expect("lock").clone();
                    let (path, body) = if multi {
                        let items: Vec<Value> = (0..3).map(|k| json!({"features": {"h": k}})).collect();
                        ("/public/api/v1/kinds/gb-reg/predict-multi", json!({"items": items}))
                    } else {
                        ("/public/api/v1/kinds/linear/predict", json!({"features": {"x": i, "color": "red"}}))
                    };
                    match client.post(format!("{url}{path}")).header("X-Request-Id", &id).json(&body).send().await {
                        Ok(r) if r.status().is_success() => {
                            if multi {
                                ok.extend((0..3).map(|k| format!("{id}-{k}")));
                            } else {
                                ok.push(id);
                            }
                            break;
                        }
                        Ok(r) => panic!("{id}: status {}", r.status()),
                        Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
            }
            ok
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.expect("load task"));
    }
    all
}

#[track_caller]
fn assert_exactly_once(scored: &[String], records: &HashMap<String, usize>) {
    let duplicates: Vec<_> = records.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicates.is_empty(), "records written twice: {duplicates:?}");
    let scored: HashSet<&String> = scored.iter().collect();
    let missing: Vec<_> = scored.iter().filter(|id| !records.contains_key(id.as_str())).take(5).collect();
    assert!(missing.is_empty(), "scored but not recorded (first 5): {missing:?}");
    assert_eq!(records.len(), scored.len(), "as many records as records scored");
}

#[tokio::test]
async fn the_seed_snippet_pasted_unchanged_gives_one_json_line_per_query() {
    let node = DssNode::new(Some(SEED));
    node.start();
    let client = reqwest::Client::new();
    let url = format!("{}/public/api/v1/kinds/linear/predict", node.base());
    let mut ids = Vec::new();
    for x in 0..5 {
        let r = client.post(&url).json(&json!({"features": {"x": x}})).send().await.expect("predict");
        ids.push(r.headers()["x-request-id"].to_str().expect("ascii").to_owned());
    }
    node.stop();
    let lines = node.audit_lines("queries.log");
    assert_exactly_once(&ids, &record_ids(&lines));
    let first: Value = serde_json::from_str(&lines[0]).expect("JSON");
    assert_eq!(first["severity"], "INFO");
    assert_eq!(first["message"]["msgType"], "prediction-query");
    assert_eq!(first["message"]["nodeId"], "test-node");
    assert_eq!(first["message"]["generation"], "v1");
    assert_eq!(first["message"]["features"], json!({"x": 0}));
}

#[tokio::test]
async fn concurrent_load_across_many_rolls_records_every_query_exactly_once() {
    let overrides =
        "log4j.appender.QUERIES_AUDIT_FILE.MaxFileSize=16KB\nlog4j.appender.QUERIES_AUDIT_FILE.MaxBackupIndex=100000\n";
    let node = DssNode::new(Some(overrides));
    node.start();
    let scored = load(Arc::new(std::sync::RwLock::new(node.base())), 8, 120).await;
    node.stop();
    let files = std::fs::read_dir(node.dir.path().join("run/audit")).expect("dir").count();
    assert!(files > 30, "the load should roll the query log many times, saw {files} files");
    assert_eq!(scored.len(), 8 * 60 + 8 * 60 * 3);
    assert_exactly_once(&scored, &record_ids(&node.audit_lines("queries.log")));
    // The backups follow log4j's names: queries.log.1 is the newest.
    assert!(node.audit_file("queries.log.1").exists());
}

#[tokio::test]
async fn a_restart_in_the_middle_of_load_loses_no_query() {
    let overrides =
        "log4j.appender.QUERIES_AUDIT_FILE.MaxFileSize=64KB\nlog4j.appender.QUERIES_AUDIT_FILE.MaxBackupIndex=100000\n";
    let node = Arc::new(DssNode::new(Some(overrides)));
    node.start();
    let base = Arc::new(std::sync::RwLock::new(node.base()));
    let restarter = {
        let node = node.clone();
        tokio::task::spawn_blocking(move || {
            std::thread::sleep(Duration::from_millis(400));
            let out = node.dss("restart");
            assert!(out.status.success(), "restart: {}", text(&out));
        })
    };
    let scored = load(base, 6, 150).await;
    restarter.await.expect("restart task");
    node.stop();
    let log = std::fs::read_to_string(node.dir.path().join("run/apimain.log")).expect("runtime log");
    assert_eq!(log.matches("SIGTERM received").count(), 2, "one restart and one stop");
    assert_exactly_once(&scored, &record_ids(&node.audit_lines("queries.log")));
}

#[tokio::test]
async fn reopenlogs_starts_a_new_file_after_an_external_rotation() {
    let node = DssNode::new(None);
    node.start();
    let client = reqwest::Client::new();
    let url = format!("{}/public/api/v1/kinds/linear/predict", node.base());
    let send =
        |id: &'static str| client.post(&url).header("X-Request-Id", id).json(&json!({"features": {"x": 1}})).send();
    send("before").await.expect("predict");
    // Wait until the writer has flushed the record, as logrotate would find it.
    let queries = node.audit_file("queries.log");
    for _ in 0..100 {
        if std::fs::read_to_string(&queries).is_ok_and(|t| t.contains("before")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    std::fs::rename(&queries, node.audit_file("rotated-queries")).expect("rotate");
    let out = node.dss("reopenlogs");
    assert!(out.status.success(), "{}", text(&out));
    tokio::time::sleep(Duration::from_millis(200)).await;
    send("after").await.expect("predict");
    node.stop();
    let rotated = record_ids(&node.audit_lines("rotated-queries"));
    let fresh = record_ids(&node.audit_lines("queries.log"));
    assert_eq!(rotated.keys().collect::<Vec<_>>(), ["before"]);
    assert_eq!(fresh.keys().collect::<Vec<_>>(), ["after"]);
}

#[test]
fn invalid_properties_refuse_to_start_naming_every_problem() {
    let node = DssNode::new(Some(
        "log4j.logger.dku.apinode.audit.queries=LOUD, NOWHERE\nlog4j.appender.X=org.apache.log4j.SocketAppender\n",
    ));
    let out = node.dss("start");
    assert!(!out.status.success(), "{}", text(&out));
    let output = text(&out);
    let f = "resources/logging/dku-log4j.properties";
    assert!(output.contains(&format!("{f}:1: log4j.logger.dku.apinode.audit.queries: bad level \"LOUD\"")), "{output}");
    assert!(output.contains(&format!("{f}:2: log4j.appender.X: unknown appender class")), "{output}");
    assert_eq!(node.dss("status").status.code(), Some(3));
}

#[tokio::test]
async fn auth_failures_failures_and_calls_are_recorded_without_secrets() {
    let node = DssNode::new(Some(readme::ALL_CALLS));
    node.start();
    let client = reqwest::Client::new();
    let url = format!("{}/public/api/v1/secured/score/predict", node.base());
    let body = json!({"features": {"x": 1}});
    client.post(&url).bearer_auth("not-the-key-SECRET").json(&body).send().await.expect("wrong key");
    client.post(&url).bearer_auth("secret-key-1").json(&body).send().await.expect("right key");
    client.post(&url).bearer_auth("secret-key-1").body("{oops").send().await.expect("bad body");
    node.stop();
    let auth: Vec<Value> =
        node.audit_lines("auth.log").iter().map(|l| serde_json::from_str(l).expect("JSON")).collect();
    assert_eq!(auth.len(), 1, "{auth:?}");
    let record = &auth[0]["message"];
    assert_eq!((record["msgType"].as_str(), record["reason"].as_str()), (Some("authfail"), Some("UNKNOWN_KEY")));
    assert_eq!(record["path"], "/public/api/v1/secured/score/predict");
    let calls: Vec<Value> = node
        .audit_lines("allcalls.log")
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON"))
        .filter(|c| c["message"]["path"] != "/isAlive/") // bin/dss's start probe
        .collect();
    let statuses: Vec<u64> = calls.iter().map(|c| c["message"]["status"].as_u64().expect("status")).collect();
    assert_eq!(statuses, [401, 200, 400]);
    assert_eq!(calls[1]["message"]["keyId"], "k1");
    let failures = node.audit_lines("failures.log");
    assert_eq!(failures.len(), 1, "{failures:?}");
    let failure: Value = serde_json::from_str(&failures[0]).expect("JSON");
    assert_eq!(failure["message"]["body"], "{oops");
    assert_eq!(failure["message"]["auth"]["label"], "partner-a");
    let queries = node.audit_lines("queries.log");
    assert_eq!(queries.len(), 1);
    assert!(queries[0].contains("\"auth\":{\"keyId\":\"k1\",\"label\":\"partner-a\"}"), "{}", queries[0]);
    for file in ["auth.log", "allcalls.log", "failures.log", "queries.log"] {
        for line in node.audit_lines(file) {
            assert!(!line.contains("SECRET") && !line.contains("secret-key-1"), "a secret leaked into {file}: {line}");
        }
    }
    let main = std::fs::read_to_string(node.dir.path().join("run/apimain.log")).expect("runtime log");
    assert!(!main.contains("secret-key-1") && !main.contains("SECRET"));
}

#[tokio::test]
async fn a_log4rs_yaml_file_replaces_the_properties() {
    let node = DssNode::new(None);
    let yaml = r#"
appenders:
  main:
    kind: log4j_file
    path: "${DIP_HOME}/run/apimain.log"
  queries:
    kind: log4j_daily_rolling_file
    path: "${DIP_HOME}/run/yaml-queries.log"
    date_pattern: "'.'yyyy-MM-dd"
    encoder:
      kind: json_audit
root:
  level: info
  appenders: [main]
loggers:
  dku.apinode.audit.queries:
    appenders: [queries]
    additive: false
"#;
    std::fs::create_dir_all(node.dir.path().join("resources/logging")).expect("mkdir");
    std::fs::write(node.dir.path().join("resources/logging/dku-log4rs.yaml"), yaml).expect("write");
    node.start();
    let url = format!("{}/public/api/v1/kinds/linear/predict", node.base());
    let r = reqwest::Client::new().post(url).json(&json!({"features": {"x": 1}})).send().await.expect("predict");
    let id = r.headers()["x-request-id"].to_str().expect("ascii").to_owned();
    node.stop();
    let text = std::fs::read_to_string(node.dir.path().join("run/yaml-queries.log")).expect("YAML's file");
    let v: Value = serde_json::from_str(text.trim()).expect("json_audit layout");
    assert_eq!(v["message"]["requestId"], id.as_str());
    assert!(!node.audit_file("queries.log").exists(), "the properties are not used");
}

/// The README's recipes, as printed there.
mod readme {
    use super::*;

    pub const OTHER_FILE: &str =
        "log4j.appender.QUERIES_AUDIT_FILE.File=${DIP_HOME}/run/queries-elsewhere/queries.log\n";
    pub const DAILY: &str = "\
log4j.appender.QUERIES_AUDIT_FILE=org.apache.log4j.DailyRollingFileAppender
log4j.appender.QUERIES_AUDIT_FILE.DatePattern='.'yyyy-MM-dd
";
    pub const ALL_CALLS: &str = "log4j.logger.dku.apinode.audit.allcalls=INFO, ALLCALLS_AUDIT_FILE\n";
    pub const JSON_LAYOUT: &str = "log4j.appender.QUERIES_AUDIT_FILE.layout=com.dataiku.dip.logging.JSONAuditLayout\n";

    async fn one_query(node: &DssNode) -> String {
        node.start();
        let url = format!("{}/public/api/v1/kinds/linear/predict", node.base());
        let r = reqwest::Client::new().post(url).json(&json!({"features": {"x": 1}})).send().await.expect("predict");
        let id = r.headers()["x-request-id"].to_str().expect("ascii").to_owned();
        node.stop();
        id
    }

    #[tokio::test]
    async fn queries_to_another_file() {
        let node = DssNode::new(Some(OTHER_FILE));
        let id = one_query(&node).await;
        let text =
            std::fs::read_to_string(node.dir.path().join("run/queries-elsewhere/queries.log")).expect("moved file");
        assert!(text.contains(&id));
        assert!(!node.audit_file("queries.log").exists());
    }

    #[tokio::test]
    async fn queries_daily_rolling_with_json_layout() {
        let node = DssNode::new(Some(&format!("{DAILY}{JSON_LAYOUT}")));
        let id = one_query(&node).await;
        let lines = node.audit_lines("queries.log");
        assert_eq!(record_ids(&lines).keys().collect::<Vec<_>>(), [&id]);
        let v: Value = serde_json::from_str(&lines[0]).expect("JSON layout");
        assert!(v["timestamp"].as_str().is_some_and(|t| t.contains('T')), "{v}");
        let main = std::fs::read_to_string(node.dir.path().join("run/apimain.log")).expect("runtime log");
        assert!(main.contains("ignored: MaxFileSize does not apply to DailyRollingFileAppender"), "{main}");
    }
}
