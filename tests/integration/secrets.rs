//! Secrets and keys (docs/security.md "Secrets", "Key management",
//! "Archives"), with real processes: planted secrets searched in every file
//! and answer; file modes; user keys through the admin API and the CLI;
//! concurrent key changes from CLI processes and the node; hostile
//! archives, refused entry by entry with bounded memory.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use apinode::admin::keys::AdminKeyStore;
use base64::Engine as _;
use serde_json::{Value, json};

use crate::common::dss::DssNode;
use crate::common::eventserver::EventServer;
use crate::common::{data_dir, files_under};

fn admin_cli(node: &DssNode) -> Command {
    crate::common::admin(node.dir.path())
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o777
}

async fn call(method: reqwest::Method, url: &str, key: &str, body: Option<Value>) -> (u16, String) {
    let mut r = reqwest::Client::new().request(method, url).basic_auth(key, Some(""));
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.expect("answer");
    (r.status().as_u16(), r.text().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_secrets_reach_no_log_spool_event_metric_or_answer_and_files_are_private() {
    let es_key = "es-secret-PLANTED-7f3a";
    let kafka_password = "kafka-pass-PLANTED-9c1e";
    let es = EventServer::new(json!({"auth": {"required": true, "keys": [es_key]}}));
    let es_config = es.dir.path().join("config/eventserver.json");
    std::fs::set_permissions(&es_config, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    es.start();
    let dir = data_dir();
    let store = AdminKeyStore::open(dir.path()).expect("store");
    let (_, admin) = store.create(Some("ops".into()), None, None, None).expect("key");
    let (_, doomed) = store.create(Some("doomed".into()), None, None, None).expect("key");
    let (_, spared) = store.create(Some("spared".into()), None, None, None).expect("key");
    let settings = json!({
        "kafkaConnections": {"k": {"bootstrap.servers": "127.0.0.1:1", "security.protocol": "sasl_plaintext",
            "sasl.mechanism": "PLAIN", "sasl.username": "u", "sasl.password": kafka_password}},
        "auditLog": {"settings": {"targets": [{"type": "LOG4J"},
            {"type": "EVENT_SERVER", "name": "central", "url": es.url(), "authKey": es_key},
            {"type": "KAFKA", "name": "kafka", "connection": "k", "topicsFiltering": "SELECTED", "topics": ["authfail"]}]}},
    });
    let overrides = "log4j.logger.dku.apinode.audit.allcalls=INFO, ALLCALLS_AUDIT_FILE\n";
    let node = DssNode::with_settings(dir, Some(overrides), settings);
    std::fs::set_permissions(node.dir.path().join("config/server.json"), std::fs::Permissions::from_mode(0o644))
        .expect("chmod");
    node.start();
    let base = node.base();
    let admin_api = format!("{base}/admin/api");
    let mut answers = Vec::new();
    // A user key through the admin API: its secret is shown once, here.
    let (status, created) = call(
        reqwest::Method::POST,
        &format!("{admin_api}/services/kinds/keys"),
        &admin,
        Some(json!({"label": "partner"})),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let user_key = serde_json::from_str::<Value>(&created).expect("json")["key"].as_str().expect("secret").to_owned();
    let predict = format!("{base}/public/api/v1/kinds/linear/predict");
    let client = reqwest::Client::new();
    for key in [user_key.as_str(), "wrong-user-PLANTED", &admin] {
        let r =
            client.post(&predict).bearer_auth(key).json(&json!({"features": {"x": 1}})).send().await.expect("answer");
        answers.push(r.text().await.expect("body"));
    }
    for (method, path, key) in [
        (reqwest::Method::GET, "services", admin.as_str()),
        (reqwest::Method::GET, "keys", admin.as_str()),
        (reqwest::Method::GET, "services", "wrong-admin-PLANTED"),
        (reqwest::Method::GET, "services", user_key.as_str()),
        (reqwest::Method::DELETE, &format!("keys/{spared}"), "wrong-admin-PLANTED"),
        (reqwest::Method::DELETE, &format!("keys/{doomed}"), admin.as_str()),
        (reqwest::Method::DELETE, "keys/no-such-secret-PLANTED", admin.as_str()),
        (reqwest::Method::GET, "metrics", admin.as_str()),
    ] {
        let (_, body) = call(method, &format!("{admin_api}/{path}"), key, None).await;
        answers.push(body);
    }
    let local =
        std::fs::read_to_string(node.dir.path().join("run/admin-local.secret")).expect("local").trim().to_owned();
    let pepper = std::fs::read_to_string(node.dir.path().join("config/key-pepper")).expect("pepper").trim().to_owned();
    node.stop();
    es.stop();
    let basic = |k: &str| base64::engine::general_purpose::STANDARD.encode(format!("{k}:"));
    let secrets: Vec<String> = vec![
        admin.clone(),
        doomed.clone(),
        spared.clone(),
        user_key.clone(),
        local,
        pepper,
        es_key.into(),
        kafka_password.into(),
        basic(&admin),
        basic(&spared),
        basic(&user_key),
    ];
    let config = node.dir.path().join("config");
    let secret_file = node.dir.path().join("run/admin-local.secret");
    let mut searched = files_under(node.dir.path(), &|p| p == config || p == secret_file);
    searched.extend(files_under(es.dir.path(), &|p| p.ends_with("config")));
    assert!(searched.len() > 10, "{searched:?}");
    let mut hits = Vec::new();
    for f in &searched {
        let text = String::from_utf8_lossy(&std::fs::read(f).expect("read")).into_owned();
        for s in &secrets {
            if text.contains(s.as_str()) {
                let line = text.lines().find(|l| l.contains(s.as_str())).unwrap_or_default();
                hits.push(format!("{} holds {s:.6}…: {line:.300}", f.display()));
            }
        }
    }
    for (i, a) in answers.iter().enumerate() {
        for s in &secrets {
            if a.contains(s.as_str()) {
                hits.push(format!("answer {i} holds {s:.6}…"));
            }
        }
    }
    assert!(hits.is_empty(), "secrets found: {hits:#?}");
    eprintln!(
        "planted secrets: {} secrets, {} files and {} answers searched, 0 hits",
        secrets.len(),
        searched.len(),
        answers.len()
    );
    let auth = node.audit_lines("auth").join("\n");
    assert!(auth.contains("/admin/api/keys/<key:"), "a deleted-by-secret path names the key: {auth}");
    // Modes.
    let d = node.dir.path();
    for f in ["config/admin-keys.json", "config/server.json", "config/key-pepper", "services/kinds/service.json"] {
        assert_eq!(mode(&d.join(f)), 0o600, "{f}");
    }
    for dir in [d.join("run/audit"), d.join("run/spool/central")] {
        assert_eq!(mode(&dir), 0o750, "{}", dir.display());
        for f in files_under(&dir, &|_| false) {
            assert_eq!(mode(&f), 0o640, "{}", f.display());
        }
    }
    assert_eq!(mode(&es_config), 0o600, "the event server's keys are its owner's only");
    let es_root = es.root();
    for f in files_under(&es_root, &|_| false) {
        assert_eq!(mode(&f), 0o640, "{}", f.display());
        assert_eq!(mode(f.parent().expect("dir")), 0o750, "{}", f.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_keys_are_managed_through_the_admin_api_and_the_cli_without_restart() {
    let node = DssNode::new(None);
    node.start();
    let predict = format!("{}/public/api/v1/kinds/linear/predict", node.base());
    let client = reqwest::Client::new();
    let ask = |key: Option<String>| {
        let mut r = client.post(&predict).json(&json!({"features": {"x": 1}}));
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        async move { r.send().await.expect("answer").status().as_u16() }
    };
    assert_eq!(ask(None).await, 200, "public at first");
    let out = admin_cli(&node)
        .args(["--output", "json", "service-key-create", "kinds", "--label", "partner-a"])
        .output()
        .expect("cli");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key: Value = serde_json::from_slice(&out.stdout).expect("json");
    let (id, secret) = (key["id"].as_str().expect("id").to_owned(), key["key"].as_str().expect("secret").to_owned());
    assert_eq!(ask(None).await, 401, "the first key makes the service require one");
    assert_eq!(ask(Some(secret.clone())).await, 200);
    let list = admin_cli(&node).args(["--output", "json", "service-keys-list", "kinds"]).output().expect("cli");
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(text.contains(&id) && text.contains("partner-a") && !text.contains(&secret), "{text}");
    let del = admin_cli(&node).args(["service-key-delete", "kinds", &id]).output().expect("cli");
    assert!(del.status.success(), "{}", String::from_utf8_lossy(&del.stderr));
    assert_eq!(ask(Some(secret)).await, 401, "a deleted key is refused at once");
    node.stop();
    let main = std::fs::read_to_string(node.dir.path().join("run/apimain.log")).expect("log");
    for t in ["service-key-create", "service-key-delete"] {
        assert!(main.contains(&format!("\"msgType\":\"{t}\"")) && main.contains(&id), "{t} is an admin record");
    }
}

/// The ids in the admin key file.
fn key_ids(dir: &Path) -> BTreeSet<String> {
    AdminKeyStore::open(dir).expect("store").list().into_iter().map(|k| k.id).collect()
}

/// Admin records of `msg_type` in apimain.log: their key ids.
fn recorded(dir: &Path, msg_type: &str) -> Vec<String> {
    std::fs::read_to_string(dir.join("run/apimain.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("[dku.apinode.audit.admin]") && l.contains(&format!("\"msgType\":\"{msg_type}\"")))
        .map(|l| serde_json::from_str::<Value>(l.split_once(" - ").expect("pattern").1).expect("JSON"))
        .map(|v| v["keyId"].as_str().expect("keyId").to_owned())
        .collect()
}

/// 25 creates and 25 deletes at once; returns the ids created.
fn concurrent_changes(node: &DssNode, doomed: &[String]) -> Vec<String> {
    let mut children = Vec::new();
    for (i, doomed) in doomed.iter().enumerate().take(25) {
        children.push(
            admin_cli(node)
                .args(["--output", "json", "admin-key-create", "--label", &format!("c{i}")])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn"),
        );
        children.push(
            admin_cli(node)
                .args(["admin-key-delete", doomed])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn"),
        );
    }
    let mut created = Vec::new();
    for c in children {
        let out = c.wait_with_output().expect("wait");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        if let Ok(v) = serde_json::from_slice::<Value>(&out.stdout) {
            created.push(v["id"].as_str().expect("id").to_owned());
        }
    }
    created
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_key_changes_end_exactly_as_the_audit_says() {
    let node = DssNode::new(None);
    let store = AdminKeyStore::open(node.dir.path()).expect("store");
    let doomed: Vec<String> = (0..50).map(|_| store.create(None, None, None, None).expect("key").0.id).collect();
    let before = key_ids(node.dir.path());
    // The node stopped: every CLI process changes the file itself.
    let created_offline = concurrent_changes(&node, &doomed[..25]);
    // The node running: the CLI goes through the admin API.
    node.start();
    let created_online = concurrent_changes(&node, &doomed[25..]);
    node.stop();
    let created: BTreeSet<String> = created_offline.iter().chain(&created_online).cloned().collect();
    assert_eq!(created.len(), 50);
    let expected: BTreeSet<String> =
        before.iter().filter(|id| !doomed.contains(id)).cloned().chain(created.iter().cloned()).collect();
    assert_eq!(key_ids(node.dir.path()), expected, "no key lost, no deleted key back");
    let rec_created: BTreeSet<String> = recorded(node.dir.path(), "admin-key-create").into_iter().collect();
    let rec_deleted: BTreeSet<String> = recorded(node.dir.path(), "admin-key-delete").into_iter().collect();
    assert_eq!(rec_created, created, "one record per key created");
    assert_eq!(rec_deleted, doomed.iter().cloned().collect::<BTreeSet<_>>(), "one record per key deleted");
}

/// Writes the archives of this test with Python's zipfile (duplicates,
/// symbolic links and lying headers are easier to make there).
fn make_archives(dir: &Path) {
    let script = r#"
import sys, zipfile, struct, os
d = sys.argv[1]
gen = b'{"generationId": "v9", "endpoints": [{"id": "score", "type": "STD_PREDICTION", "model": "model.json"}]}'
model = b'{"algorithm": "LINEAR_REGRESSION", "predictionType": "REGRESSION", "features": [{"name": "x", "type": "NUMERIC", "missing": {"method": "IMPUTE", "value": 0}}], "params": {"coefficients": [1.0], "intercept": 0.0}}'
def base(z):
    z.writestr("generation.json", gen)
    z.writestr("model.json", model)
with zipfile.ZipFile(os.path.join(d, "duplicate.zip"), "w") as z:
    base(z)
    import warnings; warnings.simplefilter("ignore")
    z.writestr("model.json", model)
with zipfile.ZipFile(os.path.join(d, "symlink.zip"), "w") as z:
    base(z)
    info = zipfile.ZipInfo("link.json"); info.external_attr = (0o120777 << 16); info.create_system = 3
    z.writestr(info, "/etc/shadow")
with zipfile.ZipFile(os.path.join(d, "clash.zip"), "w") as z:
    base(z)
    z.writestr("model.json/inner.json", b"{}")
with zipfile.ZipFile(os.path.join(d, "bomb.zip"), "w", zipfile.ZIP_DEFLATED) as z:
    base(z)
    z.writestr("padding.bin", b"\0" * (200 << 20))
# A lying header: declares 1,000 bytes, inflates to 50 MiB.
with zipfile.ZipFile(os.path.join(d, "liar.zip"), "w", zipfile.ZIP_DEFLATED) as z:
    base(z)
    z.writestr("padding.bin", b"\0" * (50 << 20))
data = bytearray(open(os.path.join(d, "liar.zip"), "rb").read())
name = b"padding.bin"
i = data.find(b"PK\x03\x04" + b"\0" * 0)
pos = 0
while True:
    pos = data.find(name, pos)
    if pos < 0: break
    for sig, off in ((b"PK\x01\x02", 46), (b"PK\x03\x04", 30)):
        start = pos - off
        if start >= 0 and data[start:start+4] == sig:
            size_at = start + (24 if sig == b"PK\x01\x02" else 22)
            data[size_at:size_at+4] = struct.pack("<I", 1000)
    pos += 1
open(os.path.join(d, "liar.zip"), "wb").write(bytes(data))
"#;
    let out = Command::new("python3").arg("-c").arg(script).arg(dir).output().expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn peak_rss_kb(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("status")
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .expect("VmHWM")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_archives_are_refused_entry_by_entry_with_bounded_memory() {
    let node = DssNode::with_settings(data_dir(), None, json!({"limits": {"maxArchiveBytes": 33554432}}));
    let archives = node.dir.path().join("uploads");
    std::fs::create_dir_all(&archives).expect("mkdir");
    make_archives(&archives);
    std::os::unix::fs::symlink("/etc/hostname", archives.join("escape.zip")).expect("symlink");
    node.start();
    let pid = std::fs::read_to_string(node.dir.path().join("run/apinode.pid")).expect("pid").trim().to_owned();
    let generations = node.dir.path().join("services/kinds/generations");
    let before: BTreeSet<String> = std::fs::read_dir(&generations)
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let admin = node.admin_secret();
    let cases = [
        ("duplicate.zip", "appears twice"),
        ("symlink.zip", "symbolic link"),
        ("clash.zip", "both a file and a folder"),
        ("bomb.zip", "maxArchiveBytes"),
        ("liar.zip", "its header says 1000 bytes"),
        ("escape.zip", "importRoots"),
    ];
    let mut peak = 0;
    for (file, why) in cases {
        let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
        let path = archives.join(file);
        let url = format!(
            "{}/admin/api/services/kinds/generations/actions/importFromArchive?filePath={}",
            node.base(),
            path.display()
        );
        let (status, body) = call(reqwest::Method::POST, &url, &admin, None).await;
        assert_eq!(status, 400, "{file}: {body}");
        let v: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["errorType"], "InvalidRequest");
        assert!(v["message"].as_str().is_some_and(|m| m.contains(why)), "{file}: {body}");
        peak = peak.max(peak_rss_kb(&pid));
    }
    let outside = format!(
        "{}/admin/api/services/kinds/generations/actions/importFromArchive?filePath=/etc/hostname",
        node.base()
    );
    let (status, body) = call(reqwest::Method::POST, &outside, &admin, None).await;
    assert!(status == 400 && body.contains("importRoots"), "{body}");
    eprintln!("hostile archives: every one refused; peak RSS of the node during the imports {} MB", peak / 1024);
    assert!(peak < 100 * 1024, "peak RSS {peak} kB");
    let after: BTreeSet<String> = std::fs::read_dir(&generations)
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(before, after, "nothing written, no staging folder left");
    node.stop();
    let refused = node
        .audit_lines("failures")
        .iter()
        .filter(|l| l.contains("admin-refused") && l.contains("importFromArchive"))
        .count();
    assert_eq!(refused, cases.len() + 1, "every refused import is an admin-refused record");
}
