//! `apinode-admin` as an operator uses it: an admin key created with the node
//! stopped (and audited), then every command against the running node
//! through the local secret, tables and `--output json`, `-h` everywhere,
//! and clear errors.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::common::dss::DssNode;
use crate::common::{constant_generation, write_zip};

fn cli(data: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_apinode-admin"))
        .args(args)
        .env("DKU_APINODE_DATA_DIR", data)
        .env_remove("APINODE_ADMIN_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("apinode-admin runs");
    if let Some(text) = stdin {
        child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("output")
}

#[track_caller]
fn ok(o: &Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "failed: {out}{}", String::from_utf8_lossy(&o.stderr));
    out
}

#[test]
fn every_command_with_a_key_created_while_the_node_is_stopped() {
    let node = DssNode::new(None);
    let data = node.dir.path();
    // Offline: no node, the key file is written directly, and the change is audited.
    let created = ok(&cli(data, &["admin-key-create", "--label", "ops", "--output", "json"], None));
    let key: Value = serde_json::from_str(&created).expect("JSON");
    let secret = key["key"].as_str().expect("secret").to_owned();
    let listed = ok(&cli(data, &["admin-keys-list"], None));
    assert!(listed.starts_with("Id") && listed.contains("ops") && !listed.contains(&secret), "{listed}");
    let log = std::fs::read_to_string(data.join("run/apimain.log")).expect("the offline change is in the runtime log");
    assert!(log.contains("\"msgType\":\"admin-key-create\"") && !log.contains(&secret), "{log}");
    assert!(!cli(data, &["services-list"], None).status.success(), "service commands need a running node");

    node.start();
    let services = ok(&cli(data, &["services-list"], None));
    assert!(services.lines().next().is_some_and(|h| h.starts_with("Service") && h.contains("Enabled")), "{services}");
    assert!(
        services.lines().any(|l| l.starts_with("broken") && l.contains("could not") || l.starts_with("broken")),
        "{services}"
    );
    let no_header = ok(&cli(data, &["services-list", "--no-header"], None));
    assert!(!no_header.contains("Service"));
    let json: Value =
        serde_json::from_str(&ok(&cli(data, &["services-list", "--output", "json"], None))).expect("JSON");
    assert!(json.as_array().is_some_and(|a| a.iter().any(|s| s["serviceId"] == "kinds")));

    let dir = tempfile::tempdir().expect("tempdir");
    let archive = dir.path().join("g1.zip");
    write_zip(&archive, &constant_generation("g1", 4.0));
    assert!(ok(&cli(data, &["service-create", "cli"], None)).contains("OK"));
    assert!(
        ok(&cli(data, &["service-import-generation", "cli", archive.to_str().expect("utf8")], None)).contains("OK")
    );
    assert!(ok(&cli(data, &["service-switch-to-newest", "cli"], None)).contains("Switched to generation=g1"));
    let gens = ok(&cli(data, &["service-list-generations", "cli"], None));
    assert!(
        gens.starts_with("Gen. Tag") && gens.lines().any(|l| l.starts_with("g1") && l.trim_end().ends_with("100")),
        "{gens}"
    );
    ok(&cli(data, &["service-set-mapping", "cli"], Some(r#"{"entries": [{"generation": "g1", "proba": 1}]}"#)));
    ok(&cli(data, &["service-preload-generation", "cli", "g1"], None));
    ok(&cli(data, &["service-switch-to-generation", "cli", "g1"], None));
    ok(&cli(data, &["service-disable", "cli"], None));
    ok(&cli(data, &["service-enable", "cli"], None));
    let answer: Value =
        serde_json::from_str(&ok(&cli(data, &["predict", "cli", "score", "x=3", "--forced-generation", "g1"], None)))
            .expect("JSON");
    assert_eq!(answer["result"]["prediction"], 4.0);
    let metrics: Value = serde_json::from_str(&ok(&cli(data, &["metrics-get"], None))).expect("JSON");
    assert_eq!(metrics["services"]["cli"]["endpoints"]["score"]["requests"], 1);
    // Online key management, by id.
    let second: Value =
        serde_json::from_str(&ok(&cli(data, &["admin-key-create", "--output", "json"], None))).expect("JSON");
    ok(&cli(data, &["admin-key-delete", second["id"].as_str().expect("id")], None));
    // Errors name what is wrong.
    let missing = cli(data, &["service-delete", "nope"], None);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("NotFound: unknown service \"nope\""));
    let bad_mapping = cli(data, &["service-set-mapping", "cli"], Some("not json"));
    assert!(String::from_utf8_lossy(&bad_mapping.stderr).contains("not JSON"));
    ok(&cli(data, &["service-delete", "cli"], None));
    // The offline key works on the running node.
    let with_key = Command::new(env!("CARGO_BIN_EXE_apinode-admin"))
        .args(["services-list", "--key", &secret, "--url", &node.base(), "--data-dir", "/nonexistent"])
        .output()
        .expect("runs");
    ok(&with_key);
    node.stop();
}

#[test]
fn help_on_the_tool_and_on_each_command() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let wrapper = Command::new(repo.join("bin/apinode-admin"))
        .arg("-h")
        .env("APINODE_ADMIN_BIN", env!("CARGO_BIN_EXE_apinode-admin"))
        .output()
        .expect("bin/apinode-admin runs");
    let help = ok(&wrapper);
    let commands = [
        "services-list",
        "service-create",
        "service-delete",
        "service-import-generation",
        "service-list-generations",
        "service-preload-generation",
        "service-switch-to-newest",
        "service-switch-to-generation",
        "service-set-mapping",
        "service-enable",
        "service-disable",
        "service-get-audit-policy",
        "service-set-audit-policy",
        "audit-hash",
        "audit-hmac-keys",
        "audit-hmac-rotate",
        "admin-keys-list",
        "admin-key-create",
        "admin-key-delete",
        "metrics-get",
        "predict",
    ];
    for c in commands {
        assert!(help.contains(c), "{c} missing from -h");
        let one = ok(&Command::new(env!("CARGO_BIN_EXE_apinode-admin")).args([c, "-h"]).output().expect("runs"));
        assert!(one.contains("Usage: apinode-admin"), "{c} -h: {one}");
    }
}
