//! Model-file validation and preprocessing, on small hand-written models.

use serde_json::json;

use super::features::{IgnoreReason, RawValue};
use super::*;

fn linear(features: serde_json::Value, coefficients: serde_json::Value) -> String {
    json!({
        "algorithm": "LINEAR_REGRESSION", "predictionType": "REGRESSION",
        "features": features, "params": {"coefficients": coefficients, "intercept": 1.0}
    })
    .to_string()
}

#[test]
fn preprocessing_imputes_rescales_and_encodes() {
    let text = linear(
        json!([
            {"name": "x", "type": "NUMERIC", "missing": {"method": "IMPUTE", "value": 4.0},
             "rescaling": {"method": "STANDARD", "mean": 2.0, "scale": 4.0}},
            {"name": "m", "type": "NUMERIC", "rescaling": {"method": "MIN_MAX", "scale": 0.5, "min": -1.0},
             "missing": {"method": "IMPUTE", "value": 0}},
            {"name": "c", "type": "CATEGORY", "missing": {"method": "AS_CATEGORY"},
             "encoding": {"method": "DUMMY", "levels": ["a", "b"]}}
        ]),
        json!([1, 1, 1, 1, 1]),
    );
    let model = Model::from_json(&text).expect("valid model");
    assert_eq!(model.preprocessor().width(), 5);
    let enc = |raw: Vec<RawValue>| model.encode(&raw).expect("scorable");
    assert_eq!(enc(vec![RawValue::Num(6.0), RawValue::Num(4.0), RawValue::Cat("b".into())]), [1.0, 1.0, 0.0, 1.0, 0.0]);
    // Missing x imputed with 4 → (4-2)/4; missing c has its own column; unseen level → zeros.
    assert_eq!(enc(vec![RawValue::Missing, RawValue::Num(0.0), RawValue::Missing]), [0.5, -1.0, 0.0, 0.0, 1.0]);
    assert_eq!(
        enc(vec![RawValue::Num(2.0), RawValue::Num(2.0), RawValue::Cat("zzz".into())]),
        [0.0, 0.0, 0.0, 0.0, 0.0]
    );
}

#[test]
fn records_without_imputation_or_with_unseen_levels_are_ignored() {
    let text = linear(
        json!([
            {"name": "x", "type": "NUMERIC"},
            {"name": "c", "type": "CATEGORY", "missing": {"method": "IMPUTE", "value": "a"},
             "encoding": {"method": "DUMMY", "levels": ["a"], "unseen": "IGNORE_RECORD"}}
        ]),
        json!([1, 1]),
    );
    let model = Model::from_json(&text).expect("valid model");
    let missing = model.encode(&[RawValue::Missing, RawValue::Cat("a".into())]).unwrap_err();
    assert_eq!(missing, IgnoreReason::MissingFeature("x".into()));
    let unseen = model.encode(&[RawValue::Num(1.0), RawValue::Cat("b".into())]).unwrap_err();
    assert_eq!(unseen.code(), "UNSEEN_CATEGORY");
    assert!(model.encode(&[RawValue::Num(1.0), RawValue::Missing]).is_ok(), "c is imputed with a known level");
}

#[test]
fn parsing_accepts_numeric_text_and_refuses_wrong_types() {
    let text = linear(
        json!([{"name": "x", "type": "NUMERIC"}, {"name": "c", "type": "CATEGORY",
                "encoding": {"method": "DUMMY", "levels": ["1", "true"]}}]),
        json!([1, 1, 1]),
    );
    let model = Model::from_json(&text).expect("valid model");
    let parse = |v: serde_json::Value| model.preprocessor().parse(v.as_object().expect("object"));
    assert_eq!(parse(json!({"x": "2.5", "c": 1})).expect("ok"), [RawValue::Num(2.5), RawValue::Cat("1".into())]);
    assert_eq!(parse(json!({"x": null, "c": ""})).expect("ok"), [RawValue::Missing, RawValue::Missing]);
    assert_eq!(parse(json!({"c": true, "other": [1]})).expect("ok")[1], RawValue::Cat("true".into()));
    let e = parse(json!({"x": "abc"})).unwrap_err();
    assert_eq!(e.feature, "x");
    assert!(parse(json!({"x": [1]})).is_err());
    assert!(parse(json!({"c": {"a": 1}})).is_err());
}

#[test]
fn every_problem_of_a_model_file_is_reported() {
    let text = json!({
        "algorithm": "LOGISTIC_REGRESSION", "predictionType": "BINARY_CLASSIFICATION",
        "classes": ["a", "a", "b"], "threshold": 2.0, "probaPercentiles": [0.5, 0.1],
        "features": [
            {"name": "x", "type": "NUMERIC", "missing": {"method": "AS_CATEGORY"},
             "rescaling": {"method": "STANDARD", "mean": 0, "scale": 0}},
            {"name": "x", "type": "CATEGORY"}
        ],
        "params": {"coefficients": [[1, 2, 3]], "intercepts": [0]}
    })
    .to_string();
    let problems = Model::from_json(&text).unwrap_err();
    let all = problems.to_string();
    for needle in [
        "classes: BINARY_CLASSIFICATION needs exactly 2 classes",
        "classes[1]: duplicate class",
        "threshold: must be between 0 and 1",
        "probaPercentiles: must be ascending",
        "features[0].missing: AS_CATEGORY is only for CATEGORY",
        "features[0].rescaling: needs finite values and a non-zero scale",
        "features[1].name: duplicate feature",
        "features[1].encoding: is required",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in {all}");
    }
}

#[test]
fn parameters_must_fit_the_features() {
    let text = linear(json!([{"name": "x", "type": "NUMERIC"}]), json!([1, 2]));
    let problems = Model::from_json(&text).unwrap_err();
    assert!(
        problems.to_string().contains("params.coefficients: has 2 values but the features encode to 1"),
        "{problems}"
    );
    let bad_json = Model::from_json("{\"algorithm\": \"SVM\"}").unwrap_err();
    assert!(bad_json.to_string().contains("unknown variant `SVM`"), "{bad_json}");
}

#[test]
fn percentiles_count_cut_points_below() {
    let text = json!({
        "algorithm": "LOGISTIC_REGRESSION", "predictionType": "BINARY_CLASSIFICATION", "classes": ["n", "y"],
        "probaPercentiles": [0.2, 0.4, 0.6, 0.8],
        "features": [{"name": "x", "type": "NUMERIC"}],
        "params": {"coefficients": [[1.0]], "intercepts": [0.0]}
    })
    .to_string();
    let model = Model::from_json(&text).expect("valid");
    let pct = |x: f64| match model.predict(&[x]).expect("finite") {
        Prediction::Class { percentile, .. } => percentile,
        Prediction::Value(_) => None,
    };
    assert_eq!(pct(-10.0), Some(1)); // p ≈ 0: no cut point below
    assert_eq!(pct(0.0), Some(3)); // p = 0.5: 0.2 and 0.4 below
    assert_eq!(pct(10.0), Some(5)); // p ≈ 1: all four below
}
