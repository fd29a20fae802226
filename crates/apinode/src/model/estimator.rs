//! The fitted parameters of each algorithm and the arithmetic that turns an
//! encoded row into raw outputs: probabilities for a classifier, a number for
//! a regressor. The formulas follow scikit-learn operation by operation
//! (`expit`, max-shifted softmax, tree averaging, boosting's `init + lr·Σ`) so
//! that the node scores within 1e-9 of it. Parsing of `params` and its
//! validation live here too; preprocessing and explanations do not.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::spec::{Algorithm, PredictionType};
use super::tree::{Tree, TreeSpec};
use crate::problems::Problems;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LinearParams {
    coefficients: Vec<f64>,
    intercept: f64,
}

/// How a multiclass logistic regression turns scores into probabilities.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MultiClass {
    /// Softmax over the class scores (scikit-learn's multinomial).
    #[default]
    Multinomial,
    /// One sigmoid per class, normalised to sum to 1 (scikit-learn's OvR).
    Ovr,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LogisticParams {
    coefficients: Vec<Vec<f64>>,
    intercepts: Vec<f64>,
    #[serde(default)]
    multi_class: MultiClass,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TreeParams {
    tree: TreeSpec,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ForestParams {
    trees: Vec<TreeSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BoostingParams {
    learning_rate: f64,
    init: Vec<f64>,
    /// One entry per boosting stage; each holds one regression tree per
    /// output (1 for regression and binary, K for K classes).
    stages: Vec<Vec<TreeSpec>>,
}

/// A fitted estimator, ready to evaluate.
#[derive(Debug, Clone)]
pub enum Estimator {
    /// `intercept + coefficients · x`.
    Linear { coefficients: Vec<f64>, intercept: f64 },
    /// One row of coefficients (binary) or one per class.
    Logistic { coefficients: Vec<Vec<f64>>, intercepts: Vec<f64>, multi_class: MultiClass },
    /// One tree; classification leaves hold class weights.
    Tree(Tree),
    /// The mean of the trees' outputs.
    Forest(Vec<Tree>),
    /// Gradient boosting.
    Boosting { learning_rate: f64, init: Vec<f64>, stages: Vec<Vec<Tree>> },
}

/// The raw output of an estimator.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// A regression value.
    Value(f64),
    /// One probability per class, in the order of `classes`.
    Probas(Vec<f64>),
}

fn parse<T: DeserializeOwned>(params: &Value, problems: &mut Problems) -> Option<T> {
    serde_json::from_value(params.clone()).map_err(|e| problems.push("params", e.to_string())).ok()
}

impl Estimator {
    /// Parses and validates `params` for `algorithm`, for inputs of `width`
    /// columns and `n_classes` classes (0 for a regression).
    pub fn build(
        algorithm: Algorithm,
        kind: PredictionType,
        params: &Value,
        width: usize,
        n_classes: usize,
        problems: &mut Problems,
    ) -> Option<Estimator> {
        let before = problems.items().len();
        let regression = kind == PredictionType::Regression;
        let est = match algorithm {
            Algorithm::LinearRegression => {
                if !regression {
                    problems.push("algorithm", "LINEAR_REGRESSION is for REGRESSION only");
                }
                let p: LinearParams = parse(params, problems)?;
                check_row(&p.coefficients, width, "params.coefficients", problems);
                check_finite(&[p.intercept], "params.intercept", problems);
                Estimator::Linear { coefficients: p.coefficients, intercept: p.intercept }
            }
            Algorithm::LogisticRegression => {
                if regression {
                    problems.push("algorithm", "LOGISTIC_REGRESSION is for classification only");
                }
                let p: LogisticParams = parse(params, problems)?;
                let rows = if n_classes == 2 { 1 } else { n_classes };
                if p.coefficients.len() != rows || p.intercepts.len() != rows {
                    problems.push(
                        "params",
                        format!(
                            "{n_classes} classes need {rows} coefficient row(s) and intercept(s), found {} and {}",
                            p.coefficients.len(),
                            p.intercepts.len()
                        ),
                    );
                }
                for (k, row) in p.coefficients.iter().enumerate() {
                    check_row(row, width, &format!("params.coefficients[{k}]"), problems);
                }
                check_finite(&p.intercepts, "params.intercepts", problems);
                Estimator::Logistic {
                    coefficients: p.coefficients,
                    intercepts: p.intercepts,
                    multi_class: p.multi_class,
                }
            }
            Algorithm::DecisionTree => {
                let p: TreeParams = parse(params, problems)?;
                Estimator::Tree(Tree::build(&p.tree, width, n_classes.max(1), "params.tree", problems)?)
            }
            Algorithm::RandomForest => {
                let p: ForestParams = parse(params, problems)?;
                if p.trees.is_empty() {
                    problems.push("params.trees", "must hold at least one tree");
                }
                let trees = p
                    .trees
                    .iter()
                    .enumerate()
                    .filter_map(|(i, t)| {
                        Tree::build(t, width, n_classes.max(1), &format!("params.trees[{i}]"), problems)
                    })
                    .collect();
                Estimator::Forest(trees)
            }
            Algorithm::GradientBoosting => Self::build_boosting(params, width, n_classes, problems)?,
        };
        (problems.items().len() == before).then_some(est)
    }

    fn build_boosting(params: &Value, width: usize, n_classes: usize, problems: &mut Problems) -> Option<Estimator> {
        let p: BoostingParams = parse(params, problems)?;
        let k = if n_classes > 2 { n_classes } else { 1 };
        if p.init.len() != k {
            problems.push("params.init", format!("has {} values, expected {k}", p.init.len()));
        }
        check_finite(&p.init, "params.init", problems);
        check_finite(&[p.learning_rate], "params.learningRate", problems);
        if p.stages.is_empty() {
            problems.push("params.stages", "must hold at least one stage");
        }
        let mut stages = Vec::with_capacity(p.stages.len());
        for (s, stage) in p.stages.iter().enumerate() {
            if stage.len() != k {
                problems.push(format!("params.stages[{s}]"), format!("has {} trees, expected {k}", stage.len()));
                continue;
            }
            let trees: Vec<Tree> = stage
                .iter()
                .enumerate()
                .filter_map(|(j, t)| Tree::build(t, width, 1, &format!("params.stages[{s}][{j}]"), problems))
                .collect();
            stages.push(trees);
        }
        Some(Estimator::Boosting { learning_rate: p.learning_rate, init: p.init, stages })
    }

    /// Evaluates an encoded row. `n_classes` is 0 for a regression.
    pub fn evaluate(&self, x: &[f64], n_classes: usize) -> Output {
        match self {
            Estimator::Linear { coefficients, intercept } => Output::Value(dot(coefficients, x) + intercept),
            Estimator::Logistic { coefficients, intercepts, multi_class } => {
                let scores: Vec<f64> = coefficients.iter().zip(intercepts).map(|(c, b)| dot(c, x) + b).collect();
                Output::Probas(match (scores.len(), multi_class) {
                    (1, _) => binary(scores[0]),
                    (_, MultiClass::Multinomial) => softmax(scores),
                    (_, MultiClass::Ovr) => normalise(scores.into_iter().map(expit).collect()),
                })
            }
            Estimator::Tree(t) => leaf_output(t.leaf(x), n_classes),
            Estimator::Forest(trees) => {
                let mut acc = vec![0.0; n_classes.max(1)];
                for t in trees {
                    match leaf_output(t.leaf(x), n_classes) {
                        Output::Value(v) => acc[0] += v,
                        Output::Probas(p) => acc.iter_mut().zip(p).for_each(|(a, p)| *a += p),
                    }
                }
                let n = trees.len() as f64;
                acc.iter_mut().for_each(|a| *a /= n);
                if n_classes == 0 { Output::Value(acc[0]) } else { Output::Probas(acc) }
            }
            Estimator::Boosting { learning_rate, init, stages } => {
                let mut raw = init.clone();
                for stage in stages {
                    for (r, t) in raw.iter_mut().zip(stage) {
                        *r += learning_rate * t.leaf(x)[0];
                    }
                }
                match n_classes {
                    0 => Output::Value(raw[0]),
                    2 => Output::Probas(binary(raw[0])),
                    _ => Output::Probas(softmax(raw)),
                }
            }
        }
    }
}

/// A tree leaf as an output: the value, or class weights normalised to sum
/// to 1 (scikit-learn's `predict_proba` divides by the sum, even when the
/// stored values already are fractions).
fn leaf_output(leaf: &[f64], n_classes: usize) -> Output {
    if n_classes == 0 {
        return Output::Value(leaf[0]);
    }
    let sum: f64 = leaf.iter().sum();
    let norm = if sum == 0.0 { 1.0 } else { sum };
    Output::Probas(leaf.iter().map(|v| v / norm).collect())
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

/// scipy's `expit`.
pub fn expit(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn binary(score: f64) -> Vec<f64> {
    let p = expit(score);
    vec![1.0 - p, p]
}

/// scikit-learn's `softmax`: subtract the max, exponentiate, divide by the sum.
fn softmax(mut v: Vec<f64>) -> Vec<f64> {
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    v.iter_mut().for_each(|x| *x = (*x - max).exp());
    normalise(v)
}

fn normalise(mut v: Vec<f64>) -> Vec<f64> {
    let sum: f64 = v.iter().sum();
    v.iter_mut().for_each(|x| *x /= sum);
    v
}

fn check_row(row: &[f64], width: usize, path: &str, problems: &mut Problems) {
    if row.len() != width {
        problems.push(path, format!("has {} values but the features encode to {width} columns", row.len()));
    }
    check_finite(row, path, problems);
}

fn check_finite(values: &[f64], path: &str, problems: &mut Problems) {
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        problems.push(format!("{path}[{i}]"), "must be a finite number");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_matches_hand_values() {
        let p = softmax(vec![0.0, 1.0_f64.ln(), 2.0_f64.ln()]);
        // exp scores 1, 1, 2 → 0.25, 0.25, 0.5
        assert!((p[0] - 0.25).abs() < 1e-15 && (p[2] - 0.5).abs() < 1e-15, "{p:?}");
    }

    #[test]
    fn ovr_normalises_sigmoids() {
        let e = Estimator::Logistic {
            coefficients: vec![vec![0.0]; 3],
            intercepts: vec![0.0, 0.0, 0.0],
            multi_class: MultiClass::Ovr,
        };
        assert_eq!(e.evaluate(&[1.0], 3), Output::Probas(vec![1.0 / 3.0; 3]));
    }
}
