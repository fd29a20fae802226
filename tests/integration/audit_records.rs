//! The audit records a request produces, asserted in process: the node runs
//! in this process with an in-memory audit target (`AuditRuntime::in_memory`),
//! so each test reads exactly the records its requests made, with no files
//! and no subprocess. A prediction, a predict-multi, an authentication
//! failure, a refused body, and an admin change with its entity messages.

use apinode::admin::keys::AdminKeyStore;
use audit::Topic;
use base64::Engine;
use serde_json::{Value, json};

use crate::common::TestNode;

fn basic(key: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{key}:")))
}

#[tokio::test]
async fn a_prediction_is_one_query_record_with_what_was_sent_and_answered() {
    let node = TestNode::start().await;
    let body = json!({"features": {"x": 12, "color": "red"}, "context": {"customer": "c-1"}});
    let r = node
        .send(
            node.client
                .post(format!("{}/public/api/v1/kinds/linear/predict", node.base))
                .header("x-request-id", "join-me-1")
                .json(&body),
        )
        .await;
    let answer = r.ok().clone();
    let queries = node.audit.bodies(Topic::ApinodeQuery);
    assert_eq!(queries.len(), 1, "{queries:#?}");
    let q = &queries[0];
    assert_eq!((q["msgType"].as_str(), q["requestId"].as_str()), (Some("prediction-query"), Some("join-me-1")));
    assert_eq!(
        (q["serviceId"].as_str(), q["endpointId"].as_str(), q["generation"].as_str()),
        (Some("kinds"), Some("linear"), Some("v1"))
    );
    assert_eq!(q["features"], body["features"], "the features as sent");
    assert_eq!(q["context"], body["context"]);
    assert_eq!(q["result"], answer["result"], "the result as answered");
    assert!(q["eventId"].as_str().is_some_and(|id| id.len() == 32) && q["nodeId"].is_string());
    let failures = node.audit.bodies(Topic::GenericFailure);
    assert!(failures.is_empty(), "{failures:#?}");
    node.stop().await;
}

#[tokio::test]
async fn predict_multi_is_one_record_per_item_in_order() {
    let node = TestNode::start().await;
    let items: Vec<Value> = (0..40).map(|i| json!({"features": {"x": i}})).collect();
    let r = node
        .send(
            node.client
                .post(format!("{}/public/api/v1/kinds/linear/predict-multi", node.base))
                .header("x-request-id", "batch-7")
                .json(&json!({"items": items})),
        )
        .await;
    let results = r.ok()["results"].as_array().expect("results").clone();
    let queries = node.audit.bodies(Topic::ApinodeQuery);
    let ids: Vec<&str> = queries.iter().map(|q| q["requestId"].as_str().expect("id")).collect();
    let want: Vec<String> = (0..40).map(|i| format!("batch-7-{i}")).collect();
    assert_eq!(ids, want);
    for (q, result) in queries.iter().zip(&results) {
        assert_eq!(q["result"]["prediction"], result["prediction"]);
    }
    node.stop().await;
}

#[tokio::test]
async fn an_auth_failure_is_one_authfail_record_without_the_key() {
    let node = TestNode::start().await;
    let url = format!("{}/public/api/v1/secured/score/predict", node.base);
    let r = node
        .send(node.client.post(&url).header("authorization", basic("guess-this-key")).json(&json!({"features": {}})))
        .await;
    r.error(401, "Unauthorized");
    let fails = node.audit.bodies(Topic::AuthFail);
    assert_eq!(fails.len(), 1, "{fails:#?}");
    assert_eq!(
        (fails[0]["reason"].as_str(), fails[0]["path"].as_str()),
        (Some("UNKNOWN_KEY"), Some("/public/api/v1/secured/score/predict"))
    );
    let everything: String = node.audit.messages().iter().map(|m| m.text.to_string()).collect();
    assert!(!everything.contains("guess-this-key"), "a presented key never reaches a record");
    assert!(node.audit.bodies(Topic::ApinodeQuery).is_empty());
    // The right key: one query record naming the key by id and label.
    let ok = node.send(node.client.post(&url).bearer_auth("secret-key-1").json(&json!({"features": {"x": 1}}))).await;
    ok.ok();
    let q = &node.audit.bodies(Topic::ApinodeQuery)[0];
    assert_eq!((q["auth"]["keyId"].as_str(), q["authUser"].as_str()), (Some("k1"), Some("partner-a")));
    node.stop().await;
}

#[tokio::test]
async fn a_refused_body_is_one_failure_record_and_no_query() {
    let node = TestNode::start().await;
    let r = node.predict("kinds", "linear", &json!({"features": {"x": "not a number"}})).await;
    let message = r.error(400, "InvalidRequest");
    let failures = node.audit.bodies(Topic::GenericFailure);
    assert_eq!(failures.len(), 1, "{failures:#?}");
    let f = &failures[0];
    assert_eq!(
        (f["msgType"].as_str(), f["status"].as_u64(), f["reason"].as_str()),
        (Some("prediction-failure"), Some(400), Some(message.as_str()))
    );
    assert!(f["body"].as_str().is_some_and(|b| b.contains("not a number")));
    assert!(node.audit.bodies(Topic::ApinodeQuery).is_empty());
    node.stop().await;
}

#[tokio::test]
async fn an_admin_change_is_one_admin_record_then_its_entity_messages() {
    let dir = crate::common::data_dir();
    let store = AdminKeyStore::open(dir.path()).expect("store");
    let (key, secret) = store.create(Some("ops-ana".into()), None, None, None).expect("key");
    let node = TestNode::start_with(dir, Default::default()).await;
    let url = format!("{}/admin/api/services", node.base);
    let created =
        node.send(node.client.post(&url).basic_auth(&secret, Some("")).body(r#"{"serviceId": "fresh"}"#)).await;
    created.ok();
    let admin = node.audit.bodies(Topic::Generic);
    assert_eq!(admin.len(), 1, "{admin:#?}");
    let a = &admin[0];
    assert_eq!(
        (a["msgType"].as_str(), a["serviceId"].as_str(), a["authUser"].as_str()),
        (Some("service-create"), Some("fresh"), Some("ops-ana"))
    );
    assert_eq!(a["auth"]["keyId"].as_str(), Some(key.id.as_str()));
    let entities = node.audit.entities();
    let kinds: Vec<(&str, &str)> = entities
        .iter()
        .map(|e| (e["type"].as_str().expect("type"), e["entityId"]["entity"].as_str().expect("entity")))
        .collect();
    assert_eq!(kinds, [("CREATE", "APPLICATION"), ("CREATE", "DATASET")]);
    assert!(entities.iter().all(|e| e["user"] == "ops-ana"));
    // A refused admin call: one authfail, no admin record, no entity message.
    let refused = node.send(node.client.delete(format!("{url}/fresh")).basic_auth("wrong", Some(""))).await;
    refused.error(401, "Unauthorized");
    assert_eq!(node.audit.bodies(Topic::AuthFail).len(), 1);
    assert_eq!(node.audit.bodies(Topic::Generic).len(), 1);
    assert_eq!(node.audit.entities().len(), 2);
    let everything: String = node.audit.messages().iter().map(|m| m.text.to_string()).collect();
    assert!(!everything.contains(&secret), "the admin secret never reaches a record");
    node.stop().await;
}
