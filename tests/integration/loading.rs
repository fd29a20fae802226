//! Loading the registry: a bad service reports every problem at once, each
//! naming its file and field, and does not keep the good services from
//! serving.

use apinode::registry::Registry;

use crate::common::data_dir;

#[test]
fn a_bad_service_reports_every_problem_with_file_and_field() {
    let dir = data_dir();
    let registry = Registry::load(dir.path());
    let broken = registry.get("broken").expect("the broken service is listed");
    let reason = broken.start_aborted_reason.clone().expect("it did not start");
    for needle in [
        "services/broken/service.json: routingKey: \"../up\" must be",
        "mapping.entries[1].generation: no generation v9 under services/broken/generations",
        "mapping.entries: probabilities sum to 0.7, not 1",
        "mapping.entries[0].generation: generation v1 is mapped but could not be loaded",
        "services/broken/generations/v1/generation.json: endpoints[1].model: \"../../../etc/passwd\" must be a file name",
        "services/broken/generations/v1/model.json: params.coefficients: has 2 values but the features encode to 1 columns",
    ] {
        assert!(reason.contains(needle), "missing {needle:?} in\n{reason}");
    }
    for good in ["kinds", "ab", "secured"] {
        let s = registry.get(good).expect("listed");
        assert_eq!(s.start_aborted_reason, None, "{good}");
    }
    assert_eq!(registry.get("kinds").expect("kinds").generations.len(), 1);
}

#[test]
fn folders_that_are_not_service_ids_are_skipped_and_missing_files_reported() {
    let dir = data_dir();
    std::fs::create_dir_all(dir.path().join("services/has space")).expect("mkdir");
    std::fs::create_dir_all(dir.path().join("services/empty")).expect("mkdir");
    let registry = Registry::load(dir.path());
    assert!(registry.snapshot().keys().all(|k| k.as_str() != "has space"));
    let empty = registry.get("empty").expect("listed");
    let reason = empty.start_aborted_reason.clone().expect("no service.json");
    assert!(reason.contains("services/empty/service.json: cannot read"), "{reason}");
}

/// The services shipped in the repository's `services/` (trained by
/// tools/train_sample_services.py) load and answer sensibly (read in place,
/// never written).
#[tokio::test]
async fn the_shipped_sample_services_answer() {
    use std::sync::Arc;

    use apinode::server::RunningNode;
    use apinode::state::Node;
    use serde_json::json;

    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let registry = Registry::load(repo);
    let kinds: Vec<_> = registry.snapshot().keys().map(ToString::to_string).collect();
    assert_eq!(kinds, ["breast-cancer", "churn", "diabetes", "iris"]);
    for (id, service) in registry.snapshot().iter() {
        assert_eq!(service.start_aborted_reason, None, "{id}");
        assert!(service.enabled && service.mapping.is_active(), "{id} is enabled and mapped");
    }
    let (audit, _memory) = audit::AuditRuntime::in_memory("test-node");
    let node = Arc::new(Node::load(repo, Default::default(), audit).expect("node"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let running = RunningNode::spawn(listener, node).expect("spawn");
    let client = reqwest::Client::new();
    let ask = |path: &str, body: serde_json::Value| {
        let url = format!("http://{}/public/api/v1/{path}/predict", running.addr);
        let request = client.post(url).json(&body);
        async move { request.send().await.expect("send").json::<serde_json::Value>().await.expect("json") }
    };
    let risky =
        ask("churn/score", json!({"features": {"tenure_months": 2, "monthly_charges": 110, "support_calls": 6}})).await;
    let loyal =
        ask("churn/score", json!({"features": {"tenure_months": 70, "monthly_charges": 30, "plan": "enterprise"}}))
            .await;
    assert_eq!(risky["result"]["prediction"], "yes", "{risky}");
    assert_eq!(loyal["result"]["prediction"], "no", "{loyal}");
    assert!(risky["result"]["probaPercentile"].as_u64() > loyal["result"]["probaPercentile"].as_u64());
    let setosa = ask(
        "iris/species",
        json!({"features": {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}}),
    )
    .await;
    let virginica = ask(
        "iris/species",
        json!({"features": {"sepal_length": 6.9, "sepal_width": 3.1, "petal_length": 5.4, "petal_width": 2.1}}),
    )
    .await;
    assert_eq!(setosa["result"]["prediction"], "setosa");
    assert_eq!(virginica["result"]["prediction"], "virginica");
    // The first record of scikit-learn's breast_cancer data is malignant.
    let names = [
        "mean radius",
        "mean texture",
        "mean perimeter",
        "mean area",
        "mean smoothness",
        "mean compactness",
        "mean concavity",
        "mean concave points",
        "mean symmetry",
        "mean fractal dimension",
        "radius error",
        "texture error",
        "perimeter error",
        "area error",
        "smoothness error",
        "compactness error",
        "concavity error",
        "concave points error",
        "symmetry error",
        "fractal dimension error",
        "worst radius",
        "worst texture",
        "worst perimeter",
        "worst area",
        "worst smoothness",
        "worst compactness",
        "worst concavity",
        "worst concave points",
        "worst symmetry",
        "worst fractal dimension",
    ];
    let row = [
        17.99, 10.38, 122.8, 1001.0, 0.1184, 0.2776, 0.3001, 0.1471, 0.2419, 0.07871, 1.095, 0.9053, 8.589, 153.4,
        0.006399, 0.04904, 0.05373, 0.01587, 0.03003, 0.006193, 25.38, 17.33, 184.6, 2019.0, 0.1622, 0.6656, 0.7119,
        0.2654, 0.4601, 0.1189,
    ];
    let features: serde_json::Map<String, serde_json::Value> =
        names.iter().zip(row).map(|(n, v)| ((*n).to_owned(), json!(v))).collect();
    let malignant = ask("breast-cancer/diagnosis", json!({"features": features})).await;
    assert_eq!(malignant["result"]["prediction"], "malignant", "{malignant}");
    let low = ask("diabetes/progression", json!({"features": {"age": 0, "sex": 0, "bmi": -0.05, "bp": -0.03, "s1": 0, "s2": 0, "s3": 0.03, "s4": -0.03, "s5": -0.04, "s6": 0}})).await;
    let high = ask("diabetes/progression", json!({"features": {"age": 0, "sex": 0, "bmi": 0.09, "bp": 0.06, "s1": 0, "s2": 0, "s3": -0.05, "s4": 0.07, "s5": 0.08, "s6": 0}})).await;
    let (l, h) =
        (low["result"]["prediction"].as_f64().expect("number"), high["result"]["prediction"].as_f64().expect("number"));
    assert!(0.0 < l && l < h, "{l} < {h}");
    running.stop().await.expect("stop");
}

#[test]
fn an_invalid_audit_policy_stops_its_service_naming_every_problem() {
    let dir = data_dir();
    let path = dir.path().join("services/kinds/service.json");
    let mut file: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
    file["auditPolicy"] = serde_json::json!({"fields": {"features.ssn": "HASH", "result.explanations": "MASK"},
        "sampling": {"rate": 1.5}});
    std::fs::write(&path, file.to_string()).expect("write");
    let registry = Registry::load(dir.path());
    let reason = registry.get("kinds").expect("listed").start_aborted_reason.clone().expect("it did not start");
    for needle in [
        "services/kinds/service.json: auditPolicy.fields.features.ssn: \"HASH\" is not an action",
        "auditPolicy.fields.result.explanations: result.explanations can only be KEEP or DROP",
        "auditPolicy.sampling.rate: must be a number in (0, 1]",
    ] {
        assert!(reason.contains(needle), "missing {needle:?} in\n{reason}");
    }
    assert_eq!(registry.get("ab").expect("ab").start_aborted_reason, None, "the other services serve");
}
