//! Scores match scikit-learn: `tests/parity/build_cases.py` trains every
//! supported estimator and preprocessing combination, exports it with
//! `tools/export_sklearn.py`, and writes scikit-learn's own answers on
//! held-out records (missing values and unseen categories included); a real
//! node then scores the same records over HTTP. Probabilities and regression
//! outputs agree within 1e-9, labels exactly, and probaPercentile is 1 + the
//! exported cut points below the probability (a cut point within 1e-9 of it
//! may count either way).

use std::process::Command;

use serde_json::{Value, json};

use crate::common::dss::DssNode;
use crate::common::python;
use crate::common::send;

const TOLERANCE: f64 = 1e-9;

#[tokio::test]
async fn every_exported_pipeline_scores_like_scikit_learn() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/parity/build_cases.py");
    let built = Command::new(python()).arg(script).arg(dir.path()).output().expect("python runs");
    let text = format!("{}{}", String::from_utf8_lossy(&built.stdout), String::from_utf8_lossy(&built.stderr));
    assert!(built.status.success(), "building the cases failed:\n{text}");
    let expected_dir = dir.path().join("expected");
    let mut cases: Vec<_> =
        std::fs::read_dir(&expected_dir).expect("expected/").map(|e| e.expect("entry").path()).collect();
    cases.sort();
    assert!(cases.len() >= 17, "{text}");
    let node = DssNode::with_dir(dir, None);
    node.start();
    let client = reqwest::Client::new();
    let mut compared = 0usize;
    for path in &cases {
        let case: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("JSON");
        let name = case["case"].as_str().expect("case name");
        let records = case["records"].as_array().expect("records");
        for chunk in records.chunks(100) {
            let items: Vec<Value> = chunk.iter().map(|r| json!({"features": r["features"]})).collect();
            let url = format!("{}/public/api/v1/{name}/score/predict-multi", node.base());
            let answer = send(client.post(url).json(&json!({"items": items}))).await;
            let results = answer.ok()["results"].as_array().expect("results").clone();
            for (want, got) in chunk.iter().zip(&results) {
                compare(name, want, got);
                compared += 1;
            }
        }
    }
    node.stop();
    println!("{compared} records of {} cases agree with scikit-learn", cases.len());
    assert!(compared > 1000, "{compared}");
}

#[track_caller]
fn compare(case: &str, want: &Value, got: &Value) {
    let at = || format!("{case}: features {}", want["features"]);
    assert_eq!(got["ignored"], false, "{}: the node ignored a record scikit-learn scored: {got}", at());
    match &want["probas"] {
        Value::Object(probas) => {
            assert_eq!(got["prediction"], want["prediction"], "{}: label", at());
            for (class, p) in probas {
                let node =
                    got["probas"][class].as_f64().unwrap_or_else(|| panic!("{}: no proba for {class}: {got}", at()));
                let diff = (node - p.as_f64().expect("number")).abs();
                assert!(diff <= TOLERANCE, "{}: P({class}) differs by {diff:e} ({node} vs {p})", at());
            }
            match want.get("percentile") {
                Some(range) => {
                    let (lo, hi) = (range[0].as_u64().expect("lo"), range[1].as_u64().expect("hi"));
                    let p = got["probaPercentile"].as_u64().unwrap_or_else(|| panic!("{}: no probaPercentile", at()));
                    assert!((lo..=hi).contains(&p), "{}: probaPercentile {p} outside {lo}..={hi}", at());
                }
                None => assert!(got.get("probaPercentile").is_none(), "{}", at()),
            }
        }
        _ => {
            let (node, sk) =
                (got["prediction"].as_f64().expect("number"), want["prediction"].as_f64().expect("number"));
            assert!(
                (node - sk).abs() <= TOLERANCE,
                "{}: prediction differs by {:e} ({node} vs {sk})",
                at(),
                (node - sk).abs()
            );
        }
    }
}
