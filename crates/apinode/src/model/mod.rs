//! Models: a model file (`spec`) becomes a validated, immutable [`Model`] that
//! scores one record synchronously in microseconds. Preprocessing
//! (`features`), algorithms (`estimator`, `tree`) and explanations (`explain`)
//! each live in their own file; this one checks the file as a whole (classes,
//! threshold, percentiles) and turns raw outputs into a prediction. No I/O
//! besides [`Model::load`], no HTTP.

pub mod estimator;
pub mod explain;
pub mod features;
pub mod spec;
pub mod tree;

use std::path::Path;

use estimator::{Estimator, Output};
use features::{IgnoreReason, Preprocessor, RawValue};
use spec::{Algorithm, EncodingSpec, FeatureKind, MissingSpec, ModelSpec, PredictionType};

use crate::problems::Problems;

/// A model that produced a non-finite output (an overflow in its arithmetic).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the model produced a non-finite output")]
pub struct ScoringError;

/// The prediction for one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Prediction {
    /// A regression value.
    Value(f64),
    /// A class, with every class's probability.
    Class {
        /// Index of the predicted class in `classes`.
        index: usize,
        /// One probability per class.
        probas: Vec<f64>,
        /// Binary only, when the model has cut points: 1..=100.
        percentile: Option<u8>,
    },
}

/// A loaded, validated model.
#[derive(Debug, Clone)]
pub struct Model {
    algorithm: Algorithm,
    prediction_type: PredictionType,
    classes: Vec<String>,
    threshold: f64,
    percentiles: Vec<f64>,
    preprocessor: Preprocessor,
    estimator: Estimator,
}

impl Model {
    /// Reads and validates a model file.
    ///
    /// # Errors
    /// Every problem found, with field paths (the caller adds the file name).
    pub fn load(path: &Path) -> Result<Model, Problems> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            let mut p = Problems::new();
            p.push("", format!("cannot read: {e}"));
            p
        })?;
        Self::from_json(&text)
    }

    /// Parses and validates a model file's text.
    ///
    /// # Errors
    /// Every problem found, with field paths.
    pub fn from_json(text: &str) -> Result<Model, Problems> {
        let spec: ModelSpec = serde_json::from_str(text).map_err(|e| {
            let mut p = Problems::new();
            p.push("", format!("not a valid model file: {e}"));
            p
        })?;
        Self::from_spec(&spec)
    }

    /// Validates a parsed model file completely.
    ///
    /// # Errors
    /// Every problem found, with field paths.
    pub fn from_spec(spec: &ModelSpec) -> Result<Model, Problems> {
        let mut problems = Problems::new();
        let n_classes = check_classes(spec, &mut problems);
        let threshold = spec.threshold.unwrap_or(0.5);
        if spec.threshold.is_some() && spec.prediction_type != PredictionType::BinaryClassification {
            problems.push("threshold", "is only for BINARY_CLASSIFICATION");
        }
        if !(0.0..=1.0).contains(&threshold) {
            problems.push("threshold", "must be between 0 and 1");
        }
        check_percentiles(spec, &mut problems);
        let preprocessor = Preprocessor::build(&spec.features, &mut problems);
        let width = preprocessor.as_ref().map_or_else(|| lenient_width(spec), Preprocessor::width);
        let estimator =
            Estimator::build(spec.algorithm, spec.prediction_type, &spec.params, width, n_classes, &mut problems);
        match (preprocessor, estimator) {
            (Some(preprocessor), Some(estimator)) if problems.is_empty() => Ok(Model {
                algorithm: spec.algorithm,
                prediction_type: spec.prediction_type,
                classes: spec.classes.clone(),
                threshold,
                percentiles: spec.proba_percentiles.clone(),
                preprocessor,
                estimator,
            }),
            _ => Err(problems),
        }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Regression, binary or multiclass.
    pub fn prediction_type(&self) -> PredictionType {
        self.prediction_type
    }

    /// Class labels (empty for a regression).
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// The input features and their encoding.
    pub fn preprocessor(&self) -> &Preprocessor {
        &self.preprocessor
    }

    /// Encodes raw values into the model's columns.
    ///
    /// # Errors
    /// [`IgnoreReason`] when the record cannot be scored.
    pub fn encode(&self, raw: &[RawValue]) -> Result<Vec<f64>, IgnoreReason> {
        let mut x = vec![0.0; self.preprocessor.width()];
        self.preprocessor.encode(raw, &mut x)?;
        Ok(x)
    }

    /// Scores an encoded row.
    ///
    /// # Errors
    /// [`ScoringError`] when the output is not finite.
    pub fn predict(&self, x: &[f64]) -> Result<Prediction, ScoringError> {
        match self.estimator.evaluate(x, self.classes.len()) {
            Output::Value(v) if v.is_finite() => Ok(Prediction::Value(v)),
            Output::Probas(p) if p.iter().all(|v| v.is_finite()) => {
                let index = if p.len() == 2 {
                    usize::from(p[1] > self.threshold)
                } else {
                    // The first of equal maxima, as numpy's argmax.
                    p.iter().enumerate().fold(0, |best, (i, v)| if *v > p[best] { i } else { best })
                };
                let percentile = (p.len() == 2 && !self.percentiles.is_empty()).then(|| self.percentile(p[1]));
                Ok(Prediction::Class { index, probas: p, percentile })
            }
            _ => Err(ScoringError),
        }
    }

    /// 1 + the number of cut points strictly below `p`, within 1..=100.
    fn percentile(&self, p: f64) -> u8 {
        let below = self.percentiles.partition_point(|c| *c < p);
        (below + 1).clamp(1, 100) as u8
    }

    /// The score that explanations decompose: the value of a regression, the
    /// log-odds of class `class` otherwise. `None` when the record cannot be
    /// scored.
    pub(crate) fn explained_score(&self, raw: &[RawValue], class: usize) -> Option<f64> {
        let x = self.encode(raw).ok()?;
        match self.estimator.evaluate(&x, self.classes.len()) {
            Output::Value(v) => v.is_finite().then_some(v),
            Output::Probas(p) => {
                let q = p.get(class)?.clamp(1e-15, 1.0 - 1e-15);
                let logit = (q / (1.0 - q)).ln();
                logit.is_finite().then_some(logit)
            }
        }
    }
}

fn check_classes(spec: &ModelSpec, problems: &mut Problems) -> usize {
    let n = spec.classes.len();
    match spec.prediction_type {
        PredictionType::Regression if n > 0 => problems.push("classes", "must be empty for a REGRESSION"),
        PredictionType::BinaryClassification if n != 2 => {
            problems.push("classes", format!("BINARY_CLASSIFICATION needs exactly 2 classes, found {n}"));
        }
        PredictionType::Multiclass if n < 3 => {
            problems.push("classes", format!("MULTICLASS needs at least 3 classes, found {n}"));
        }
        _ => {}
    }
    for (i, c) in spec.classes.iter().enumerate() {
        if spec.classes[..i].contains(c) {
            problems.push(format!("classes[{i}]"), format!("duplicate class {c:?}"));
        }
    }
    if spec.prediction_type == PredictionType::Regression { 0 } else { n }
}

fn check_percentiles(spec: &ModelSpec, problems: &mut Problems) {
    let cuts = &spec.proba_percentiles;
    if cuts.is_empty() {
        return;
    }
    if spec.prediction_type != PredictionType::BinaryClassification {
        problems.push("probaPercentiles", "are only for BINARY_CLASSIFICATION");
    }
    if cuts.len() > 100 {
        problems.push("probaPercentiles", format!("at most 100 cut points, found {}", cuts.len()));
    }
    if !cuts.iter().all(|c| (0.0..=1.0).contains(c)) || !cuts.windows(2).all(|w| w[0] <= w[1]) {
        problems.push("probaPercentiles", "must be ascending probabilities between 0 and 1");
    }
}

/// The encoded width as far as it can be told from specs that did not
/// validate, so that the parameters can still be checked against it.
fn lenient_width(spec: &ModelSpec) -> usize {
    spec.features
        .iter()
        .map(|f| match (&f.kind, &f.encoding) {
            (FeatureKind::Category, Some(EncodingSpec::Dummy { levels, .. })) => {
                levels.len() + usize::from(matches!(f.missing, MissingSpec::AsCategory))
            }
            _ => 1,
        })
        .sum()
}

#[cfg(test)]
mod tests;
