//! Dataiku's own Python client (`dataiku-api-client`, installed by
//! `tools/setup-test-env`) drives a real node: services, archives, switches,
//! mappings, predictions with and without keys, admin keys, metrics.

use std::process::Command;

use apinode::admin::keys::AdminKeyStore;

use crate::common::dss::DssNode;
use crate::common::python;
use crate::common::{constant_generation, write_zip};

#[test]
fn dataikus_python_client_drives_the_node() {
    let node = DssNode::new(None);
    let (_, key) = AdminKeyStore::open(node.dir.path())
        .expect("keys")
        .create(Some("compat".into()), None, None, None)
        .expect("key");
    let archives = tempfile::tempdir().expect("tempdir");
    let v1 = archives.path().join("v1.zip");
    let v2 = archives.path().join("v2.zip");
    write_zip(&v1, &constant_generation("v1", 1.0));
    write_zip(&v2, &constant_generation("v2", 2.0));
    node.start();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat/dataiku_client.py");
    let out = Command::new(python())
        .arg(script)
        .args([node.base(), key, v1.display().to_string(), v2.display().to_string(), "secret-key-1".into()])
        .output()
        .expect("python runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    node.stop();
    assert!(out.status.success(), "the compatibility script failed:\n{text}");
    assert!(text.contains("checks passed"), "{text}");
    println!("{text}");
}
