//! Scoring cost per model kind: parse the features of one record, encode
//! them, evaluate the model; plus batches of 100 and the two explanation
//! methods. Models are the hand-checked test fixtures and the shipped sample
//! services.
//!
//!     cargo bench --bench scoring

use std::path::Path;
use std::time::Duration;

use apinode::model::Model;
use apinode::model::explain::{ExplainSettings, explain};
use apinode::model::spec::ExplanationMethod;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Map, Value, json};

fn load(relative: &str) -> Model {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    Model::load(&path).unwrap_or_else(|p| panic!("{relative}: {p}"))
}

fn object(v: Value) -> Map<String, Value> {
    v.as_object().expect("an object").clone()
}

/// (name, model, one record's features)
fn cases() -> Vec<(&'static str, Model, Map<String, Value>)> {
    let kinds = "tests/fixtures/services/kinds/generations/v1";
    vec![
        ("linear", load(&format!("{kinds}/linear.json")), object(json!({"x": 14, "color": "blue"}))),
        ("logistic-binary", load(&format!("{kinds}/logistic-binary.json")), object(json!({"a": 4}))),
        ("logistic-multi", load(&format!("{kinds}/logistic-multi.json")), object(json!({"z": 0.5}))),
        ("decision-tree", load(&format!("{kinds}/tree.json")), object(json!({"f": 2, "g": "a"}))),
        ("random-forest", load(&format!("{kinds}/forest-clf.json")), object(json!({"h": 1}))),
        ("gradient-boosting", load(&format!("{kinds}/gb-multi.json")), object(json!({"h": 1}))),
        (
            "churn-logistic",
            load("services/churn/generations/v1/model.json"),
            object(json!({"tenure_months": 4, "monthly_charges": 95.5, "plan": "basic", "support_calls": 5})),
        ),
        ("breast-cancer-boosting", load("services/breast-cancer/generations/v1/model.json"), breast_cancer_row()),
        (
            "iris-forest",
            load("services/iris/generations/v1/model.json"),
            object(json!({"sepal_length": 6.9, "sepal_width": 3.1, "petal_length": 5.4, "petal_width": 2.1})),
        ),
    ]
}

/// The first record of scikit-learn's breast_cancer data.
fn breast_cancer_row() -> Map<String, Value> {
    let model = load("services/breast-cancer/generations/v1/model.json");
    let row = [
        17.99, 10.38, 122.8, 1001.0, 0.1184, 0.2776, 0.3001, 0.1471, 0.2419, 0.07871, 1.095, 0.9053, 8.589, 153.4,
        0.006399, 0.04904, 0.05373, 0.01587, 0.03003, 0.006193, 25.38, 17.33, 184.6, 2019.0, 0.1622, 0.6656, 0.7119,
        0.2654, 0.4601, 0.1189,
    ];
    (0..model.preprocessor().len()).map(|i| (model.preprocessor().name(i).to_owned(), json!(row[i]))).collect()
}

fn score_one(model: &Model, features: &Map<String, Value>) -> bool {
    let raw = model.preprocessor().parse(features).expect("valid features");
    let x = model.encode(&raw).expect("scorable");
    model.predict(&x).is_ok()
}

fn single_record(c: &mut Criterion) {
    let mut group = c.benchmark_group("score_one_record");
    group.throughput(Throughput::Elements(1));
    for (name, model, features) in cases() {
        group.bench_function(name, |b| b.iter(|| score_one(&model, std::hint::black_box(&features))));
    }
    group.finish();
}

fn batches(c: &mut Criterion) {
    let mut group = c.benchmark_group("score_batch_100");
    group.throughput(Throughput::Elements(100));
    for (name, model, features) in cases() {
        let batch = vec![features; 100];
        group.bench_with_input(BenchmarkId::from_parameter(name), &batch, |b, batch| {
            b.iter(|| batch.iter().filter(|f| score_one(&model, f)).count())
        });
    }
    group.finish();
}

fn explanations(c: &mut Criterion) {
    let model = load("services/churn/generations/v1/model.json");
    let features = object(json!({"tenure_months": 4, "monthly_charges": 95.5, "plan": "basic", "support_calls": 5}));
    let raw = model.preprocessor().parse(&features).expect("valid features");
    let mut group = c.benchmark_group("explain_churn");
    for (label, method, steps) in [("ice", ExplanationMethod::Ice, 0), ("shapley_100", ExplanationMethod::Shapley, 100)]
    {
        let settings = ExplainSettings { method, n_explanations: 3, n_monte_carlo_steps: steps };
        group.bench_function(label, |b| b.iter(|| explain(&model, &raw, 1, &settings)));
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = single_record, batches, explanations
}
criterion_main!(benches);
