//! Every model kind against hand-computed values, through `predict`,
//! `predict-multi` and `predict-simple`, with the shape of Dataiku's answer.

use serde_json::json;

use crate::common::{TestNode, close};

/// expit(x) = 1 / (1 + e^-x)
fn expit(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

#[tokio::test]
async fn linear_regression_with_imputation_rescaling_and_dummies() {
    let node = TestNode::start().await;
    // 3 + 1.5 * (x - 10) / 2 + {red: 2, blue: -1, missing: 0.5, unseen: 0}
    for (features, expected) in [
        (json!({"x": 14, "color": "blue"}), 5.0),
        (json!({"x": 14, "color": null}), 6.5),
        (json!({"x": 14}), 6.5),
        (json!({"x": 14, "color": "green"}), 6.0),
        (json!({"color": "red"}), 5.0),
        (json!({"x": "8", "color": "red"}), 3.5),
    ] {
        let body = node.predict("kinds", "linear", &json!({"features": features})).await;
        let result = &body.ok()["result"];
        close(&result["prediction"], expected);
        assert_eq!(result["ignored"], false);
        assert!(result.get("probas").is_none());
    }
    node.stop().await;
}

#[tokio::test]
async fn logistic_regression_binary_with_threshold_and_percentile() {
    let node = TestNode::start().await;
    // a = 4 → 0.5*4 - 1 = 1 → score 2 → p(yes) = expit(2); 8 of 9 cut points below.
    let r = node.predict("kinds", "logistic-binary", &json!({"features": {"a": 4}})).await;
    let result = &r.ok()["result"];
    assert_eq!(result["prediction"], "yes");
    close(&result["probas"]["yes"], expit(2.0));
    close(&result["probas"]["no"], 1.0 - expit(2.0));
    assert_eq!(result["probaPercentile"], 9);
    // a = 2 → score 0 → p = 0.5, not above the threshold: "no"; 4 cut points below.
    let r = node.predict("kinds", "logistic-binary", &json!({"features": {"a": 2}})).await;
    let result = &r.ok()["result"];
    assert_eq!(result["prediction"], "no");
    close(&result["probas"]["yes"], 0.5);
    assert_eq!(result["probaPercentile"], 5);
    node.stop().await;
}

#[tokio::test]
async fn logistic_regression_multinomial() {
    let node = TestNode::start().await;
    // scores (ln 2, 0, -ln 2) → (2, 1, 0.5) / 3.5
    let r = node.predict("kinds", "logistic-multi", &json!({"features": {"z": std::f64::consts::LN_2}})).await;
    let result = &r.ok()["result"];
    assert_eq!(result["prediction"], "c0");
    close(&result["probas"]["c0"], 2.0 / 3.5);
    close(&result["probas"]["c1"], 1.0 / 3.5);
    close(&result["probas"]["c2"], 0.5 / 3.5);
    assert!(result.get("probaPercentile").is_none(), "multiclass has no percentile");
    node.stop().await;
}

#[tokio::test]
async fn decision_tree_and_ignored_records() {
    let node = TestNode::start().await;
    for (features, p_pos, label) in [
        (json!({"f": 1, "g": "a"}), 0.25, "neg"), // left leaf [3, 1]
        (json!({"f": 2, "g": "a"}), 1.0, "pos"),  // g=b column 0 ≤ 0.5: leaf [0, 2]
        (json!({"f": 2, "g": "b"}), 0.5, "neg"),  // leaf [1, 1]: 0.5 is not above 0.5
    ] {
        let r = node.predict("kinds", "tree", &json!({"features": features})).await;
        let result = &r.ok()["result"];
        close(&result["probas"]["pos"], p_pos);
        assert_eq!(result["prediction"], label, "{features}");
    }
    for (features, reason) in [(json!({"f": 2}), "MISSING_FEATURE"), (json!({"f": 2, "g": "c"}), "UNSEEN_CATEGORY")] {
        let r = node.predict("kinds", "tree", &json!({"features": features})).await;
        let result = &r.ok()["result"];
        assert_eq!(result["ignored"], true);
        assert_eq!(result["ignoreReason"], reason);
        assert!(result.get("prediction").is_none());
    }
    node.stop().await;
}

#[tokio::test]
async fn random_forests_average_their_trees() {
    let node = TestNode::start().await;
    // Trees: (h ≤ 0 → 1 else 3) and (h ≤ 5 → 10 else 20).
    for (h, expected) in [(1.0, 6.5), (6.0, 11.5), (-1.0, 5.5)] {
        let r = node.predict("kinds", "forest-reg", &json!({"features": {"h": h}})).await;
        close(&r.ok()["result"]["prediction"], expected);
    }
    // Trees: (h ≤ 0 → [2,0,0] else [0,1,1]) and a leaf [1,1,2], each normalised.
    let r = node.predict("kinds", "forest-clf", &json!({"features": {"h": 1}})).await;
    let result = &r.ok()["result"];
    assert_eq!(result["prediction"], "c");
    for (class, p) in [("a", 0.125), ("b", 0.375), ("c", 0.5)] {
        close(&result["probas"][class], p);
    }
    let r = node.predict("kinds", "forest-clf", &json!({"features": {"h": -1}})).await;
    assert_eq!(r.ok()["result"]["prediction"], "a");
    close(&r.body["result"]["probas"]["a"], 0.625);
    node.stop().await;
}

#[tokio::test]
async fn gradient_boosting_regression_binary_and_multiclass() {
    let node = TestNode::start().await;
    // 10 + 0.1 * (h ≤ 0 ? -5 : 5) + 0.1 * (h ≤ 2 ? -1 : 1)
    for (h, expected) in [(1.0, 10.4), (3.0, 10.6), (-1.0, 9.4)] {
        let r = node.predict("kinds", "gb-reg", &json!({"features": {"h": h}})).await;
        close(&r.ok()["result"]["prediction"], expected);
    }
    let r = node.predict("kinds", "gb-bin", &json!({"features": {"h": 1}})).await;
    assert_eq!(r.ok()["result"]["prediction"], "pos");
    close(&r.body["result"]["probas"]["pos"], expit(1.0));
    // raw (1, 0, -1) → softmax
    let r = node.predict("kinds", "gb-multi", &json!({"features": {"h": 0}})).await;
    let sum = 1f64.exp() + 1.0 + (-1f64).exp();
    assert_eq!(r.ok()["result"]["prediction"], "a");
    close(&r.body["result"]["probas"]["a"], 1f64.exp() / sum);
    close(&r.body["result"]["probas"]["b"], 1.0 / sum);
    close(&r.body["result"]["probas"]["c"], (-1f64).exp() / sum);
    node.stop().await;
}

#[tokio::test]
async fn answers_carry_timing_api_context_request_id_and_version_headers() {
    let node = TestNode::start().await;
    let r =
        node.predict("kinds", "linear", &json!({"features": {"x": 1, "color": "red"}, "context": {"who": "t"}})).await;
    let body = r.ok();
    for key in ["preProcessing", "wait", "enrich", "preparation", "prediction", "postProcessing"] {
        assert!(body["timing"][key].is_u64(), "timing.{key} in {body}");
    }
    assert_eq!(body["apiContext"], json!({"serviceId": "kinds", "endpointId": "linear", "serviceGeneration": "v1"}));
    let id = body["result"]["requestId"].as_str().expect("requestId");
    assert_eq!(r.headers["x-request-id"], id);
    assert_eq!(r.headers["dss-api-version"], "1");
    assert_eq!(r.headers["dss-version"], env!("CARGO_PKG_VERSION"));
    // A client's own id is kept when it is a valid token, refused otherwise
    // (tests/integration/hostile.rs: the REPLACE setting).
    let url = format!("{}/public/api/v1/kinds/linear/predict", node.base);
    let body = json!({"features": {"x": 1}});
    let mine = node.send(node.client.post(&url).header("X-Request-Id", "order-77:a").json(&body)).await;
    assert_eq!(mine.ok()["result"]["requestId"], "order-77:a");
    let junk = node.send(node.client.post(&url).header("X-Request-Id", "no spaces allowed").json(&body)).await;
    assert!(junk.error(400, "InvalidRequest").contains("X-Request-Id"));
    node.stop().await;
}

#[tokio::test]
async fn predict_multi_scores_each_item_and_keeps_ignored_ones() {
    let node = TestNode::start().await;
    let url = format!("{}/public/api/v1/kinds/tree/predict-multi", node.base);
    let body = json!({"items": [
        {"features": {"f": 1, "g": "a"}, "context": {"row": 0}},
        {"features": {"f": 2}},
        {"features": {"f": 2, "g": "a"}}
    ]});
    let r = node.send(node.client.post(&url).header("X-Request-Id", "batch-7").json(&body)).await;
    let results = r.ok()["results"].as_array().expect("results");
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["prediction"], "neg");
    assert_eq!(results[1]["ignoreReason"], "MISSING_FEATURE");
    assert_eq!(results[2]["prediction"], "pos");
    let ids: Vec<_> = results.iter().map(|r| r["requestId"].as_str().expect("id")).collect();
    assert_eq!(ids, ["batch-7-0", "batch-7-1", "batch-7-2"]);
    assert_eq!(r.body["apiContext"]["serviceGeneration"], "v1");
    // A batch larger than the inline limit runs on the blocking pool, same answers.
    let items: Vec<_> = (0..40).map(|i| json!({"features": {"h": f64::from(i) - 20.0}})).collect();
    let r = node.post("/public/api/v1/kinds/gb-reg/predict-multi", &json!({"items": items})).await;
    let results = r.ok()["results"].as_array().expect("results");
    assert_eq!(results.len(), 40);
    close(&results[21]["prediction"], 10.4); // h = 1
    node.stop().await;
}

#[tokio::test]
async fn predict_simple_reads_features_from_the_query_string() {
    let node = TestNode::start().await;
    let r = node.get("/public/api/v1/kinds/linear/predict-simple?x=14&color=blue").await;
    close(&r.ok()["result"]["prediction"], 5.0);
    let r = node.get("/public/api/v1/kinds/linear/predict-simple?x=fourteen").await;
    let message = r.error(400, "InvalidRequest");
    assert!(message.contains("\"x\""), "{message}");
    node.stop().await;
}

#[tokio::test]
async fn ice_explanations_rank_by_absolute_contribution() {
    let node = TestNode::start().await;
    // Linear model: x contributes 1.5 * (14 - 10) / 2 = 3 against its reference 10;
    // blue contributes -1 - mean(2, -1) = -1.5 against the levels red and blue.
    let ask = |n: Option<i64>| {
        json!({"features": {"x": 14, "color": "blue"},
        "explanations": {"enabled": true, "method": "ICE", "nExplanations": n, "nMonteCarloSteps": null}})
    };
    let r = node.predict("kinds", "linear", &ask(None)).await;
    let ex = &r.ok()["result"]["explanations"];
    close(&ex["x"], 3.0);
    close(&ex["color"], -1.5);
    let r = node.predict("kinds", "linear", &ask(Some(1))).await;
    let ex = r.ok()["result"]["explanations"].as_object().expect("object");
    assert_eq!(ex.keys().collect::<Vec<_>>(), ["x"]);
    // Dataiku's client sends every member as null: the endpoint default (off) holds.
    let nulls = json!({"features": {"x": 14}, "explanations":
        {"enabled": null, "method": null, "nExplanations": null, "nMonteCarloSteps": null}});
    assert!(node.predict("kinds", "linear", &nulls).await.ok()["result"].get("explanations").is_none());
    node.stop().await;
}

#[tokio::test]
async fn shapley_explanations_are_exact_for_additive_terms_and_reproducible() {
    let node = TestNode::start().await;
    let ask = json!({"features": {"x": 14, "color": "blue"},
        "explanations": {"enabled": true, "method": "SHAPLEY", "nExplanations": 2, "nMonteCarloSteps": 50}});
    let first = node.predict("kinds", "linear", &ask).await;
    let ex = &first.ok()["result"]["explanations"];
    // x's reference is one value, so every sample of its contribution is 3.
    close(&ex["x"], 3.0);
    // blue vs a random reference level: each sample is -3 (red) or 0 (blue).
    let c = ex["color"].as_f64().expect("number");
    assert!((-3.0..=0.0).contains(&c), "{c}");
    let again = node.predict("kinds", "linear", &ask).await;
    assert_eq!(again.ok()["result"]["explanations"], first.body["result"]["explanations"]);
    // Classification explains log-odds: gb-bin's raw score is 1 at h = 1 and -1
    // at its reference h = 0, so h contributes 2 to the log-odds of "pos".
    let ask = json!({"features": {"h": 1}, "explanations": {"enabled": true, "method": "SHAPLEY"}});
    let r = node.predict("kinds", "gb-bin", &ask).await;
    let h = r.ok()["result"]["explanations"]["h"].as_f64().expect("number");
    assert!((h - 2.0).abs() < 1e-9, "{h}");
    node.stop().await;
}
