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

/// The services shipped in the repository's `services/` load and answer
/// sensibly (read in place, never written).
#[tokio::test]
async fn the_shipped_sample_services_answer() {
    use std::sync::Arc;

    use apinode::node::{Node, RunningNode};
    use serde_json::json;

    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let registry = Registry::load(repo);
    let kinds: Vec<_> = registry.snapshot().keys().map(ToString::to_string).collect();
    assert_eq!(kinds, ["churn", "house-prices", "iris"]);
    for (id, service) in registry.snapshot().iter() {
        assert_eq!(service.start_aborted_reason, None, "{id}");
        assert!(service.enabled && service.mapping.is_active(), "{id} is enabled and mapped");
    }
    let node = Arc::new(Node::load(repo, Default::default()).expect("node"));
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
    assert_eq!(risky["result"]["prediction"], "churn", "{risky}");
    assert_eq!(loyal["result"]["prediction"], "stay", "{loyal}");
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
    let small =
        ask("house-prices/estimate", json!({"features": {"surface_m2": 30, "rooms": 1, "city": "marseille"}})).await;
    let large =
        ask("house-prices/estimate", json!({"features": {"surface_m2": 120, "rooms": 5, "city": "paris"}})).await;
    let (s, l) = (
        small["result"]["prediction"].as_f64().expect("number"),
        large["result"]["prediction"].as_f64().expect("number"),
    );
    assert!(0.0 < s && s < l, "{s} < {l}");
    running.stop().await.expect("stop");
}
