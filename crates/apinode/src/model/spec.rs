//! The model file as it is on disk (`model.json` in a generation folder):
//! plain serde structs, no behaviour. `Model::from_spec` (in `mod.rs`) checks
//! a spec completely and turns it into a scoring model; nothing here reads
//! files or validates values beyond their JSON types.
//!
//! The format is documented field by field in `docs/model-format.md`.

use serde::Deserialize;
use serde_json::Value;

/// The algorithm of a model file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Algorithm {
    /// Ordinary least squares or ridge: `intercept + coefficients · x`.
    LinearRegression,
    /// Binary (sigmoid) or multiclass (softmax or one-vs-rest) logistic regression.
    LogisticRegression,
    /// One CART tree (scikit-learn's node arrays).
    DecisionTree,
    /// The mean of CART trees.
    RandomForest,
    /// scikit-learn's gradient boosting: `init + learningRate · Σ trees`.
    GradientBoosting,
}

/// What a model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PredictionType {
    /// A number.
    Regression,
    /// One of two classes; `classes[1]` is the positive class.
    BinaryClassification,
    /// One of three or more classes.
    Multiclass,
}

/// A whole model file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelSpec {
    /// The algorithm, which decides the shape of `params`.
    pub algorithm: Algorithm,
    /// Regression, binary or multiclass.
    pub prediction_type: PredictionType,
    /// The target column's name (informational).
    #[serde(default)]
    pub target: Option<String>,
    /// Class labels, in the order of the model's outputs (classification only).
    #[serde(default)]
    pub classes: Vec<String>,
    /// Binary only: `classes[1]` is predicted when its probability is above this
    /// (strictly, as scikit-learn's `predict` does at 0.5). Default 0.5.
    #[serde(default)]
    pub threshold: Option<f64>,
    /// The input features in the order their encoded columns are laid out.
    pub features: Vec<FeatureSpec>,
    /// Binary only: ascending cut points of the positive-class probability on
    /// the training data, usually 99 of them (the 1st..99th percentiles).
    #[serde(default)]
    pub proba_percentiles: Vec<f64>,
    /// The fitted parameters; their shape depends on `algorithm`.
    pub params: Value,
    /// The training data's profile for drift (docs/model-format.md): read
    /// by the monitor only, so the node skips it unparsed.
    #[serde(default)]
    pub reference_profile: Option<serde::de::IgnoredAny>,
}

/// The kind of an input feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FeatureKind {
    /// A number (a JSON number, or a string that parses as one).
    Numeric,
    /// A level (a JSON string; numbers and booleans are taken as their text).
    Category,
}

/// One input feature and its preprocessing.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FeatureSpec {
    /// The key of the feature in a request's `features` object.
    pub name: String,
    /// Numeric or categorical.
    #[serde(rename = "type")]
    pub kind: FeatureKind,
    /// What a missing (absent or null) value does. Default: the record is ignored.
    #[serde(default)]
    pub missing: MissingSpec,
    /// Numeric only: the rescaling applied after imputation.
    #[serde(default)]
    pub rescaling: Option<RescalingSpec>,
    /// Categorical only (required there): the dummy encoding.
    #[serde(default)]
    pub encoding: Option<EncodingSpec>,
    /// Raw values that stand for "a typical record" when explaining a
    /// prediction (ICE averages over them, SHAPLEY samples them). Default: the
    /// imputed value or the rescaling's mean for a number, every level for a
    /// category.
    #[serde(default)]
    pub reference: Option<Vec<Value>>,
}

/// What a missing value does.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(tag = "method", rename_all = "SCREAMING_SNAKE_CASE", deny_unknown_fields)]
pub enum MissingSpec {
    /// Replace it with `value` (the training mean, median, mode or a constant;
    /// `strategy` records which, for people reading the file).
    Impute {
        /// The replacement: a number for NUMERIC, a string for CATEGORY.
        value: Value,
        /// `MEAN`, `MEDIAN`, `MOST_FREQUENT` or `CONSTANT` (informational).
        #[serde(default)]
        strategy: Option<String>,
    },
    /// Categorical only: a missing value has its own dummy column, placed
    /// after the known levels.
    AsCategory,
    /// The record is not scored: `{"ignored": true, "ignoreReason": "MISSING_FEATURE"}`.
    #[default]
    IgnoreRecord,
}

/// Numeric rescaling, with scikit-learn's exact arithmetic.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "method", rename_all = "SCREAMING_SNAKE_CASE", deny_unknown_fields)]
pub enum RescalingSpec {
    /// `(x - mean) / scale` (StandardScaler's `mean_`, `scale_`).
    Standard {
        /// Subtracted first.
        mean: f64,
        /// Divided by next; must not be 0.
        scale: f64,
    },
    /// `x * scale + min` (MinMaxScaler's `scale_`, `min_`).
    MinMax {
        /// Multiplied first.
        scale: f64,
        /// Added next.
        min: f64,
    },
}

/// The encoding of a categorical feature.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "method", rename_all = "SCREAMING_SNAKE_CASE", deny_unknown_fields)]
pub enum EncodingSpec {
    /// One 0/1 column per known level, in this order.
    Dummy {
        /// The known levels.
        levels: Vec<String>,
        /// What a level seen neither in training nor as missing does.
        #[serde(default)]
        unseen: UnseenPolicy,
    },
}

/// What an unseen level does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UnseenPolicy {
    /// Every dummy column is 0 (scikit-learn's `handle_unknown="ignore"`).
    #[default]
    Ignore,
    /// The record is not scored: `ignoreReason` `UNSEEN_CATEGORY`.
    IgnoreRecord,
}

/// Per-endpoint defaults for explanations (`generation.json`), each one
/// overridable per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExplanationDefaults {
    /// Whether explanations are computed when a request does not say.
    #[serde(default)]
    pub enabled: bool,
    /// ICE or SHAPLEY.
    #[serde(default)]
    pub method: ExplanationMethod,
    /// How many features are returned (the largest absolute contributions).
    #[serde(default = "default_n_explanations")]
    pub n_explanations: usize,
    /// SHAPLEY: the number of Monte Carlo permutations.
    #[serde(default = "default_n_monte_carlo_steps")]
    pub n_monte_carlo_steps: usize,
}

fn default_n_explanations() -> usize {
    3
}

fn default_n_monte_carlo_steps() -> usize {
    100
}

impl Default for ExplanationDefaults {
    fn default() -> Self {
        Self {
            enabled: false,
            method: ExplanationMethod::Ice,
            n_explanations: default_n_explanations(),
            n_monte_carlo_steps: default_n_monte_carlo_steps(),
        }
    }
}

/// How contributions are computed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExplanationMethod {
    /// Individual conditional expectation: the score minus its mean when the
    /// feature takes its reference values.
    #[default]
    Ice,
    /// Shapley values estimated by Monte Carlo sampling of permutations.
    Shapley,
}
