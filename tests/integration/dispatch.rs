//! Generation dispatch over HTTP: forced generations, stable dispatch keys,
//! random draws by the mapping. Service `ab` maps v1 and v2 at 50/50 and
//! holds v3 unmapped; each generation answers its own number.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::common::{TestNode, data_dir};

fn generation(answer: &Value) -> String {
    answer["apiContext"]["serviceGeneration"].as_str().expect("generation").to_owned()
}

#[tokio::test]
async fn a_dispatch_key_always_gets_the_same_generation() {
    let node = TestNode::start().await;
    let mut seen = HashSet::new();
    for i in 0..30 {
        let body = json!({"features": {}, "dispatch": {"dispatchKey": format!("customer-{i}")}});
        let first = generation(node.predict("ab", "score", &body).await.ok());
        for _ in 0..3 {
            assert_eq!(generation(node.predict("ab", "score", &body).await.ok()), first, "key customer-{i}");
        }
        seen.insert(first);
    }
    assert_eq!(seen.len(), 2, "30 keys over a 50/50 mapping reach both generations: {seen:?}");
    node.stop().await;
}

#[tokio::test]
async fn forced_generations_answer_even_when_unmapped() {
    let node = TestNode::start().await;
    let body = json!({"features": {}, "dispatch": {"forcedGeneration": "v3", "dispatchKey": "ignored"}});
    let r = node.predict("ab", "score", &body).await;
    assert_eq!(generation(r.ok()), "v3");
    assert_eq!(r.body["result"]["prediction"], 3.0, "the answering generation's model scored");
    node.stop().await;
}

#[tokio::test]
async fn without_dispatch_both_mapped_generations_answer() {
    let node = TestNode::start().await;
    let mut seen = HashSet::new();
    for _ in 0..100 {
        let r = node.predict("ab", "score", &json!({"features": {}})).await;
        let g = generation(r.ok());
        let expected = if g == "v1" { 1.0 } else { 2.0 };
        assert_eq!(r.body["result"]["prediction"], expected);
        seen.insert(g);
    }
    assert_eq!(seen, HashSet::from(["v1".to_owned(), "v2".to_owned()]), "v3 is unmapped");
    node.stop().await;
}

#[tokio::test]
async fn an_unmapped_generation_that_fails_to_load_does_not_stop_the_service() {
    let dir = data_dir();
    let folder = dir.path().join("services/ab/generations/v4");
    std::fs::create_dir_all(&folder).expect("mkdir");
    std::fs::write(folder.join("generation.json"), r#"{"generationId": "v4", "endpoints": []}"#).expect("write");
    let node = TestNode::start_with(dir, Default::default()).await;
    assert!(node.predict("ab", "score", &json!({"features": {}})).await.status.is_success());
    let forced = json!({"features": {}, "dispatch": {"forcedGeneration": "v4"}});
    let message = node.predict("ab", "score", &forced).await.error(400, "InvalidRequest");
    assert!(message.contains("could not be loaded") && message.contains("endpoints"), "{message}");
    node.stop().await;
}
