//! The admin API end to end, with the real binary: every route refuses a
//! missing, wrong or user key (each refusal one auth record); the whole
//! lifecycle of a service with its admin and entity records; bad archives
//! refused with nothing written; a change refused when its audit record
//! cannot be written; switches that never fail a request in flight.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use apinode::admin::keys::AdminKeyStore;
use base64::Engine;
use serde_json::{Value, json};

use crate::common::dss::DssNode;
use crate::common::{Answer, Entries, constant_generation, send, write_zip};

/// An admin client of a node, with a key created offline (node stopped).
struct Admin {
    base: String,
    key: String,
    client: reqwest::Client,
}

impl Admin {
    fn create(node: &DssNode, label: &str) -> Admin {
        let store = AdminKeyStore::open(node.dir.path()).expect("key store");
        let (_, key) = store.create(Some(label.into()), None, Some("tests".into()), None).expect("offline key");
        let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("client");
        Admin { base: format!("{}/admin/api", node.base()), key, client }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.client.request(method, format!("{}{path}", self.base)).basic_auth(&self.key, Some(""));
        if let Some(b) = body {
            // Dataiku's client sends JSON without a Content-Type.
            request = request.body(b.to_string());
        }
        send(request).await
    }
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect()
}

/// Admin records (they go to apimain.log, as in Dataiku): the JSON after " - ".
/// The admin change records (the `generic` topic also carries node start and stop).
fn admin_records(node: &DssNode) -> Vec<Value> {
    std::fs::read_to_string(node.dir.path().join("run/apimain.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("[dku.apinode.audit.admin]"))
        .map(|l| serde_json::from_str::<Value>(l.split_once(" - ").expect("pattern").1).expect("JSON record"))
        .filter(|r| !matches!(r["msgType"].as_str(), Some("node-start" | "node-stop")))
        .collect()
}

const ROUTES: [(&str, &str); 19] = [
    ("GET", "/services"),
    ("POST", "/services/"),
    ("DELETE", "/services/kinds"),
    ("GET", "/services/kinds/generations"),
    ("GET", "/service/kinds/generations"),
    ("POST", "/services/kinds/generations/actions/importFromArchive?filePath=/tmp/x.zip"),
    ("POST", "/services/kinds/generations/v1/preload"),
    ("POST", "/services/kinds/actions/enable"),
    ("POST", "/services/kinds/actions/disable"),
    ("POST", "/services/kinds/actions/switchToNewest"),
    ("POST", "/services/kinds/actions/switchTo/v1"),
    ("POST", "/services/kinds/actions/setMapping"),
    ("GET", "/services/kinds/metadata"),
    ("PUT", "/services/kinds/metadata"),
    ("GET", "/services/kinds/queries"),
    ("DELETE", "/services/kinds/queries"),
    ("GET", "/keys"),
    ("DELETE", "/keys/k1/key"),
    ("GET", "/metrics"),
];

#[tokio::test]
async fn every_admin_route_refuses_missing_wrong_and_user_keys() {
    let node = DssNode::new(None);
    node.start();
    let client = reqwest::Client::new();
    let basic = |k: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{k}:")));
    for (method, path) in ROUTES {
        let url = format!("{}/admin/api{path}", node.base());
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        send(client.request(m.clone(), &url)).await.error(401, "Unauthorized");
        send(client.request(m.clone(), &url).header("authorization", basic("wrong-key-XYZ")))
            .await
            .error(401, "Unauthorized");
        let user = send(client.request(m, &url).header("authorization", basic("secret-key-1"))).await;
        assert!(user.error(403, "Forbidden").contains("cannot call the admin API"), "{method} {path}");
    }
    node.stop();
    let auth = lines(&node.audit_file("auth.log"));
    assert_eq!(auth.len(), 3 * ROUTES.len(), "one record per refusal");
    let reasons: Vec<&str> = auth.iter().map(|a| a["message"]["reason"].as_str().expect("reason")).collect();
    assert_eq!(reasons.iter().filter(|r| **r == "MISSING_KEY").count(), ROUTES.len());
    assert_eq!(reasons.iter().filter(|r| **r == "UNKNOWN_KEY").count(), ROUTES.len());
    let forbidden: Vec<&Value> = auth.iter().filter(|a| a["message"]["reason"] == "NOT_ADMIN").collect();
    assert_eq!(forbidden.len(), ROUTES.len());
    assert!(forbidden.iter().all(|a| a["message"]["keyId"] == "k1"), "the matched key's id is recorded");
    let text = std::fs::read_to_string(node.audit_file("auth.log")).expect("auth.log");
    assert!(!text.contains("wrong-key-XYZ") && !text.contains("secret-key-1"), "no secret in the auth log");
}

#[tokio::test]
async fn a_service_lifecycle_through_the_admin_api_with_its_audit() {
    let node = DssNode::new(None);
    let admin = Admin::create(&node, "release-bot");
    node.start();
    let archives = tempfile::tempdir().expect("tempdir");
    let v1 = archives.path().join("v1.zip");
    let v2 = archives.path().join("v2.zip");
    write_zip(&v1, &constant_generation("v1", 1.0));
    let nested: Vec<(String, Vec<u8>)> =
        constant_generation("v2", 2.0).into_iter().map(|(n, b)| (format!("v2/{n}"), b)).collect();
    write_zip(&v2, &nested);
    let predict = |base: String| async move {
        send(
            reqwest::Client::new()
                .post(format!("{base}/public/api/v1/fraud/score/predict"))
                .json(&json!({"features": {"x": 1}})),
        )
        .await
    };

    admin.call("POST", "/services/", Some(json!({"serviceId": "fraud"}))).await.ok();
    admin.call("POST", "/services/", Some(json!({"serviceId": "fraud"}))).await.error(400, "InvalidRequest");
    admin.call("POST", "/services/", Some(json!({"serviceId": "bad id"}))).await.error(400, "InvalidRequest");
    predict(node.base()).await.error(503, "ServiceUnavailable");
    for archive in [&v1, &v2] {
        let path = format!("/services/fraud/generations/actions/importFromArchive?filePath={}", archive.display());
        admin.call("POST", &path, None).await.ok();
    }
    let gens = admin.call("GET", "/services/fraud/generations", None).await;
    let ids: Vec<&str> = gens.ok()["generations"]
        .as_array()
        .expect("list")
        .iter()
        .map(|g| g["generationId"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["v1", "v2"]);
    let switched = admin.call("POST", "/services/fraud/actions/switchToNewest", None).await;
    assert_eq!(switched.ok()["switchedToGeneration"], "v2");
    assert_eq!(predict(node.base()).await.ok()["result"]["prediction"], 2.0);
    let bad = admin
        .call(
            "POST",
            "/services/fraud/actions/setMapping",
            Some(json!({"entries": [{"generation": "v1", "proba": 0.7}, {"generation": "v3", "proba": 0.2}]})),
        )
        .await;
    let message = bad.error(400, "InvalidRequest");
    assert!(message.contains("no generation v3") && message.contains("sum to 0.9, not 1"), "{message}");
    admin
        .call(
            "POST",
            "/services/fraud/actions/setMapping",
            Some(json!({"entries": [{"generation": "v1", "proba": 1.0}]})),
        )
        .await
        .ok();
    assert_eq!(predict(node.base()).await.ok()["result"]["prediction"], 1.0);
    admin.call("POST", "/services/fraud/actions/disable", None).await.ok();
    predict(node.base()).await.error(503, "ServiceUnavailable");
    admin.call("POST", "/services/fraud/actions/enable", None).await.ok();
    admin.call("POST", "/services/fraud/actions/switchTo/v9", None).await.error(404, "NotFound");
    admin.call("POST", "/services/fraud/generations/v2/preload", None).await.ok();
    let metadata = json!({"properties": {"owner": "risk-team"}, "tags": ["prod"]});
    admin.call("PUT", "/services/fraud/metadata", Some(metadata.clone())).await.ok();
    assert_eq!(admin.call("GET", "/services/fraud/metadata", None).await.ok(), &metadata);
    let queries = admin.call("GET", "/services/fraud/queries?limit=5", None).await;
    let queries = queries.ok().as_array().expect("records").clone();
    assert_eq!(queries.len(), 2, "the two scored predictions");
    assert_eq!(queries[1]["generation"], "v1");
    admin.call("DELETE", "/services/fraud/queries", None).await.ok();
    assert_eq!(admin.call("GET", "/services/fraud/queries", None).await.ok(), &json!([]));
    let metrics = admin.call("GET", "/metrics", None).await;
    assert_eq!(metrics.ok()["services"]["fraud"]["endpoints"]["score"]["requests"], 2);

    let created =
        admin.call("POST", "/keys", Some(json!({"label": "second", "description": "d", "createdBy": "t"}))).await;
    let secret = created.ok()["key"].as_str().expect("the secret, shown once").to_owned();
    let id = created.body["id"].as_str().expect("id").to_owned();
    let listed = admin.call("GET", "/keys", None).await;
    assert!(!listed.ok().to_string().contains(&secret), "a listing never shows a secret");
    let second = Admin {
        key: secret.clone(),
        ..Admin { base: admin.base.clone(), key: String::new(), client: reqwest::Client::new() }
    };
    second.call("GET", "/services", None).await.ok();
    admin.call("DELETE", &format!("/keys/{id}/key"), None).await.ok();
    second.call("GET", "/services", None).await.error(401, "Unauthorized");

    // State survives a restart.
    node.dss("restart");
    let list = admin.call("GET", "/services", None).await;
    assert!(list.ok().as_array().expect("list").iter().any(|s| s["serviceId"] == "fraud" && s["enabled"] == true));
    assert_eq!(predict(node.base()).await.ok()["result"]["prediction"], 1.0);
    admin.call("DELETE", "/services/fraud", None).await.ok();
    predict(node.base()).await.error(404, "NotFound");
    node.stop();

    let records = admin_records(&node);
    let types: Vec<&str> = records.iter().map(|r| r["msgType"].as_str().expect("msgType")).collect();
    assert_eq!(
        types,
        [
            "service-create",
            "generation-import",
            "generation-import",
            "service-switch",
            "service-set-mapping",
            "service-disable",
            "service-enable",
            "generation-preload",
            "service-metadata",
            "queries-purge",
            "admin-key-create",
            "admin-key-delete",
            "service-delete"
        ]
    );
    assert!(records.iter().all(|r| r["auth"]["label"] == "release-bot" && r["auth"]["keyId"].is_string()));
    let log = std::fs::read_to_string(node.dir.path().join("run/apimain.log")).expect("log");
    assert!(!log.contains(&secret) && !log.contains(&admin.key), "no admin secret in the runtime log");

    let entity: Vec<Value> = lines(&node.audit_file("entity.log")).into_iter().map(|l| l["message"].clone()).collect();
    let kinds: Vec<(String, String)> = entity
        .iter()
        .map(|m| {
            (m["entityId"]["entity"].as_str().expect("entity").to_owned(), m["type"].as_str().expect("type").to_owned())
        })
        .collect();
    let has = |e: &str, t: &str| kinds.iter().any(|(a, b)| a == e && b == t);
    for (e, t) in [
        ("APPLICATION", "CREATE"),
        ("DATASET", "CREATE"),
        ("ARTIFACT", "CREATE"),
        ("PROGRAM", "CREATE"),
        ("APPLICATION", "METADATA_CHANGE"),
        ("ARTIFACT", "METADATA_CHANGE"),
        ("DATASET", "UPDATE"),
        ("DATASET", "ACCESS"),
        ("DATASET", "TRUNCATE"),
        ("ARTIFACT", "DELETE"),
        ("PROGRAM", "DELETE"),
        ("APPLICATION", "DELETE"),
    ] {
        assert!(has(e, t), "no {e} {t} in {kinds:?}");
    }
    assert!(entity.iter().all(|m| m["version"] == 1 && m["time"].is_u64()));
    let meta = entity
        .iter()
        .find(|m| {
            m["type"] == "METADATA_CHANGE" && m["payload"]["additions"]["USER"]["properties"]["owner"] == "risk-team"
        })
        .expect("the USER metadata change");
    assert_eq!(meta["user"], "release-bot");
    assert_eq!(meta["payload"]["previous"]["USER"], json!({"properties": {}, "tags": []}));
    assert_eq!(meta["payload"]["additions"]["USER"]["tags"], json!(["prod"]));
    let switch = entity
        .iter()
        .find(|m| {
            m["type"] == "METADATA_CHANGE"
                && m["entityId"]["version"] == "v2"
                && m["payload"]["additions"]["SYSTEM"]["properties"]["mapped"] == "1"
        })
        .expect("v2 mapped at 100%");
    assert_eq!(switch["payload"]["previous"]["SYSTEM"]["properties"]["mapped"], "0");
}

#[tokio::test]
async fn bad_archives_are_refused_and_nothing_is_written() {
    let node = DssNode::new(None);
    let admin = Admin::create(&node, "ops");
    node.start();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cases: Vec<(&str, Entries, &str)> = Vec::new();
    let mut escaping = constant_generation("v7", 7.0);
    escaping.push(("../../evil.json".into(), b"{}".to_vec()));
    cases.push(("escaping", escaping, "escapes the generation folder"));
    let mut absolute = constant_generation("v7", 7.0);
    absolute.push(("/etc/evil.json".into(), b"{}".to_vec()));
    cases.push(("absolute", absolute, "escapes the generation folder"));
    let mut bad_model = constant_generation("v7", 7.0);
    bad_model[1].1 = br#"{"algorithm": "SVM"}"#.to_vec();
    cases.push(("bad-model", bad_model, "unknown variant `SVM`"));
    cases.push(("no-model", vec![constant_generation("v7", 7.0)[0].clone()], "\"model.json\" is not in the archive"));
    cases.push(("bad-json", vec![("generation.json".into(), b"{nope".to_vec())], "generation.json: not valid"));
    cases.push(("duplicate", constant_generation("v1", 7.0), "already has a generation v1"));
    let generations = node.dir.path().join("services/ab/generations");
    let before: Vec<_> = std::fs::read_dir(&generations).expect("list").map(|e| e.expect("e").file_name()).collect();
    for (name, entries, expected) in cases {
        let path = dir.path().join(format!("{name}.zip"));
        write_zip(&path, &entries);
        let r = admin
            .call(
                "POST",
                &format!("/services/ab/generations/actions/importFromArchive?filePath={}", path.display()),
                None,
            )
            .await;
        let message = r.error(400, "InvalidRequest");
        assert!(message.contains(expected), "{name}: {message}");
    }
    admin
        .call("POST", "/services/ab/generations/actions/importFromArchive?filePath=relative.zip", None)
        .await
        .error(400, "InvalidRequest");
    let after: Vec<_> = std::fs::read_dir(&generations).expect("list").map(|e| e.expect("e").file_name()).collect();
    assert_eq!(before, after, "nothing written, no staged leftovers");
    assert!(!node.dir.path().join("evil.json").exists() && !Path::new("/etc/evil.json").exists());
    node.stop();
    assert!(admin_records(&node).is_empty(), "no change, no admin record");
}

#[tokio::test]
async fn a_change_whose_audit_record_cannot_be_written_is_refused() {
    // The admin audit goes to a file on a full disk (/dev/full fails every write).
    let overrides = "\
log4j.logger.dku.apinode.audit.admin=INFO, ADMIN_FILE
log4j.additivity.dku.apinode.audit.admin=false
log4j.appender.ADMIN_FILE=org.apache.log4j.FileAppender
log4j.appender.ADMIN_FILE.File=/dev/full
log4j.appender.ADMIN_FILE.layout=com.dataiku.dip.logging.JSONAuditLayout
";
    let node = DssNode::new(Some(overrides));
    let admin = Admin::create(&node, "ops");
    node.start();
    let r = admin.call("POST", "/services/", Some(json!({"serviceId": "ghost"}))).await;
    assert!(r.error(503, "AuditUnavailable").contains("the change was not made"));
    let r = admin.call("POST", "/services/ab/actions/disable", None).await;
    r.error(503, "AuditUnavailable");
    let list = admin.call("GET", "/services", None).await;
    let services = list.ok().as_array().expect("list").clone();
    assert!(!services.iter().any(|s| s["serviceId"] == "ghost"), "the service was not created");
    assert!(services.iter().any(|s| s["serviceId"] == "ab" && s["enabled"] == true), "ab was not disabled");
    assert!(!node.dir.path().join("services/ghost").exists());
    let ab = std::fs::read_to_string(node.dir.path().join("services/ab/service.json")).expect("service.json");
    assert!(!ab.contains("\"enabled\": false"));
    node.stop();
}

#[tokio::test]
async fn a_switch_never_fails_a_request_in_flight() {
    let node = Arc::new(DssNode::new(None));
    let admin = Admin::create(&node, "ops");
    node.start();
    let url = format!("{}/public/api/v1/ab/score/predict", node.base());
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..300 {
                let r = client.post(&url).json(&json!({"features": {}})).send().await.expect("send");
                assert!(r.status().is_success(), "status {}", r.status());
                let v: Value = r.json().await.expect("json");
                seen.insert(v["apiContext"]["serviceGeneration"].as_str().expect("gen").to_owned());
            }
            seen
        }));
    }
    for i in 0..20 {
        let g = ["v1", "v2", "v3"][i % 3];
        admin.call("POST", &format!("/services/ab/actions/switchTo/{g}"), None).await.ok();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut all = std::collections::BTreeSet::new();
    for t in tasks {
        all.extend(t.await.expect("load task"));
    }
    assert!(all.len() >= 2, "requests saw the switches: {all:?}");
    node.stop();
}
