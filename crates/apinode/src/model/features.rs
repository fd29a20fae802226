//! Input features: reading a request's `features` object into typed raw
//! values, and encoding raw values into the model's numeric columns
//! (imputation, rescaling, dummy encoding, unseen levels). Everything here is
//! pure and allocation-light; it knows nothing of HTTP or of algorithms.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::spec::{EncodingSpec, FeatureKind, FeatureSpec, MissingSpec, RescalingSpec, UnseenPolicy};
use crate::problems::Problems;

/// One feature's value as read from a request, before encoding.
#[derive(Debug, Clone, PartialEq)]
pub enum RawValue {
    /// Absent, `null`, or an empty string.
    Missing,
    /// A number.
    Num(f64),
    /// A categorical level.
    Cat(String),
}

/// Why a record is answered `ignored` instead of scored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IgnoreReason {
    /// A feature without imputation is missing.
    MissingFeature(String),
    /// A level never seen in training, on a feature whose policy is to ignore the record.
    UnseenCategory(String),
}

impl IgnoreReason {
    /// The stable code returned as `ignoreReason`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingFeature(_) => "MISSING_FEATURE",
            Self::UnseenCategory(_) => "UNSEEN_CATEGORY",
        }
    }

    /// A sentence naming the feature, returned as `ignoreDetail`.
    pub fn detail(&self) -> String {
        match self {
            Self::MissingFeature(f) => {
                format!("feature {f:?} is missing and the model has no imputation for it")
            }
            Self::UnseenCategory(f) => format!("feature {f:?} has a level the model never saw"),
        }
    }
}

/// A feature value of the wrong JSON type: the whole request is refused (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("feature {feature:?}: {message}")]
pub struct InvalidFeature {
    /// The feature's name.
    pub feature: String,
    /// What is wrong with its value.
    pub message: String,
}

#[derive(Debug, Clone)]
enum Missing {
    Impute(RawValue),
    AsCategory,
    IgnoreRecord,
}

#[derive(Debug, Clone)]
enum Rescale {
    Standard { mean: f64, scale: f64 },
    MinMax { scale: f64, min: f64 },
}

#[derive(Debug, Clone)]
struct Dummy {
    index: HashMap<String, usize>,
    unseen: UnseenPolicy,
}

/// One validated feature.
#[derive(Debug, Clone)]
struct Feature {
    name: String,
    kind: FeatureKind,
    missing: Missing,
    rescale: Option<Rescale>,
    dummy: Option<Dummy>,
    /// First encoded column of this feature.
    offset: usize,
    /// Number of encoded columns (1 for a number).
    width: usize,
    reference: Vec<RawValue>,
}

/// One input feature as a caller sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureDoc<'a> {
    /// Its key in `features`.
    pub name: &'a str,
    /// A number (else a category).
    pub numeric: bool,
    /// A category's known levels, in the model's order.
    pub levels: Vec<&'a str>,
    /// Without it (or with null) the record is not scored.
    pub required: bool,
    /// An unknown level makes the record not scored.
    pub unseen_refused: bool,
}

/// The validated preprocessing of a model: raw values in, encoded columns out.
#[derive(Debug, Clone)]
pub struct Preprocessor {
    features: Vec<Feature>,
    width: usize,
}

impl Preprocessor {
    /// Checks every feature spec, recording each problem under `features[i]`.
    /// Returns `None` when any problem was found.
    pub fn build(specs: &[FeatureSpec], problems: &mut Problems) -> Option<Self> {
        let before = problems.items().len();
        let mut seen = HashSet::new();
        let mut features = Vec::with_capacity(specs.len());
        let mut offset = 0;
        if specs.is_empty() {
            problems.push("features", "must list at least one feature");
        }
        for (i, spec) in specs.iter().enumerate() {
            let path = format!("features[{i}]");
            if spec.name.is_empty() {
                problems.push(format!("{path}.name"), "must not be empty");
            } else if !seen.insert(spec.name.as_str()) {
                problems.push(format!("{path}.name"), format!("duplicate feature {:?}", spec.name));
            }
            if let Some(f) = build_feature(spec, &path, offset, problems) {
                offset += f.width;
                features.push(f);
            }
        }
        (problems.items().len() == before).then_some(Self { features, width: offset })
    }

    /// The number of encoded columns.
    pub fn width(&self) -> usize {
        self.width
    }

    /// The number of input features.
    pub fn len(&self) -> usize {
        self.features.len()
    }

    /// Always false for a built preprocessor (it has at least one feature).
    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
    }

    /// The name of input feature `i`.
    pub fn name(&self, i: usize) -> &str {
        &self.features[i].name
    }

    /// What a caller may send, feature by feature (for the OpenAPI document).
    pub fn describe(&self) -> Vec<FeatureDoc<'_>> {
        self.features
            .iter()
            .map(|f| {
                let mut levels: Vec<(&str, usize)> =
                    f.dummy.iter().flat_map(|d| d.index.iter().map(|(l, i)| (l.as_str(), *i))).collect();
                levels.sort_by_key(|(_, i)| *i);
                FeatureDoc {
                    name: &f.name,
                    numeric: f.kind == FeatureKind::Numeric,
                    levels: levels.into_iter().map(|(l, _)| l).collect(),
                    required: matches!(f.missing, Missing::IgnoreRecord),
                    unseen_refused: f.dummy.as_ref().is_some_and(|d| d.unseen == UnseenPolicy::IgnoreRecord),
                }
            })
            .collect()
    }

    /// The reference values of input feature `i` (never empty).
    pub fn reference(&self, i: usize) -> &[RawValue] {
        &self.features[i].reference
    }

    /// Reads the model's features from a request's `features` object. Keys the
    /// model does not use are ignored, as Dataiku does.
    ///
    /// # Errors
    /// [`InvalidFeature`] for a value of the wrong JSON type.
    pub fn parse(&self, input: &Map<String, Value>) -> Result<Vec<RawValue>, InvalidFeature> {
        self.features.iter().map(|f| parse_value(&f.name, f.kind, input.get(&f.name).unwrap_or(&Value::Null))).collect()
    }

    /// Encodes raw values (one per feature, in order) into `out`, which must
    /// have `width()` columns.
    ///
    /// # Errors
    /// [`IgnoreReason`] when the record cannot be scored.
    pub fn encode(&self, raw: &[RawValue], out: &mut [f64]) -> Result<(), IgnoreReason> {
        debug_assert_eq!(raw.len(), self.features.len());
        debug_assert_eq!(out.len(), self.width);
        for (f, value) in self.features.iter().zip(raw) {
            f.encode(value, &mut out[f.offset..f.offset + f.width])?;
        }
        Ok(())
    }
}

impl Feature {
    fn encode(&self, value: &RawValue, out: &mut [f64]) -> Result<(), IgnoreReason> {
        let value = match (value, &self.missing) {
            (RawValue::Missing, Missing::Impute(v)) => v,
            (RawValue::Missing, Missing::IgnoreRecord) => {
                return Err(IgnoreReason::MissingFeature(self.name.clone()));
            }
            (v, _) => v,
        };
        match (self.kind, value) {
            (FeatureKind::Numeric, RawValue::Num(x)) => {
                out[0] = match self.rescale {
                    Some(Rescale::Standard { mean, scale }) => (x - mean) / scale,
                    Some(Rescale::MinMax { scale, min }) => x * scale + min,
                    None => *x,
                };
            }
            (FeatureKind::Category, RawValue::Cat(level)) => {
                out.fill(0.0);
                let dummy = self.dummy.as_ref().expect("validated: categories have an encoding");
                match dummy.index.get(level) {
                    Some(&i) => out[i] = 1.0,
                    None if dummy.unseen == UnseenPolicy::IgnoreRecord => {
                        return Err(IgnoreReason::UnseenCategory(self.name.clone()));
                    }
                    None => {}
                }
            }
            (FeatureKind::Category, RawValue::Missing) => {
                // Only reachable with AS_CATEGORY: the last column is "missing".
                out.fill(0.0);
                out[self.width - 1] = 1.0;
            }
            _ => unreachable!("validated: raw values match their feature's kind"),
        }
        Ok(())
    }
}

/// Reads one JSON value as the raw value of a feature of `kind`.
fn parse_value(name: &str, kind: FeatureKind, value: &Value) -> Result<RawValue, InvalidFeature> {
    let invalid = |message: String| InvalidFeature { feature: name.to_owned(), message };
    match (kind, value) {
        (_, Value::Null) => Ok(RawValue::Missing),
        (_, Value::String(s)) if s.trim().is_empty() => Ok(RawValue::Missing),
        (FeatureKind::Numeric, Value::Number(n)) => n
            .as_f64()
            .filter(|x| x.is_finite())
            .map(RawValue::Num)
            .ok_or_else(|| invalid(format!("{n} is not a finite number"))),
        (FeatureKind::Numeric, Value::String(s)) => match s.trim().parse::<f64>() {
            Ok(x) if x.is_finite() => Ok(RawValue::Num(x)),
            _ => Err(invalid(format!("expected a number, got the text {:?}", truncate(s)))),
        },
        (FeatureKind::Category, Value::String(s)) => Ok(RawValue::Cat(s.clone())),
        (FeatureKind::Category, Value::Number(n)) => Ok(RawValue::Cat(n.to_string())),
        (FeatureKind::Category, Value::Bool(b)) => Ok(RawValue::Cat(b.to_string())),
        (FeatureKind::Numeric, other) => Err(invalid(format!("expected a number, got {}", json_type(other)))),
        (FeatureKind::Category, other) => Err(invalid(format!("expected a string, got {}", json_type(other)))),
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
}

/// The JSON type of a value, in words.
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn build_feature(spec: &FeatureSpec, path: &str, offset: usize, problems: &mut Problems) -> Option<Feature> {
    let before = problems.items().len();
    let missing = match &spec.missing {
        MissingSpec::IgnoreRecord => Missing::IgnoreRecord,
        MissingSpec::AsCategory if spec.kind == FeatureKind::Numeric => {
            problems.push(format!("{path}.missing"), "AS_CATEGORY is only for CATEGORY features");
            Missing::IgnoreRecord
        }
        MissingSpec::AsCategory => Missing::AsCategory,
        MissingSpec::Impute { value, .. } => match parse_value(&spec.name, spec.kind, value) {
            Ok(RawValue::Missing) | Err(_) => {
                let want = if spec.kind == FeatureKind::Numeric { "a number" } else { "a string" };
                problems.push(format!("{path}.missing.value"), format!("must be {want}"));
                Missing::IgnoreRecord
            }
            Ok(v) => Missing::Impute(v),
        },
    };
    let rescale = build_rescale(spec, path, problems);
    let dummy = build_dummy(spec, path, problems);
    let width = match (&dummy, &missing) {
        (Some(d), Missing::AsCategory) => d.index.len() + 1,
        (Some(d), _) => d.index.len(),
        (None, _) => 1,
    };
    let reference = build_reference(spec, path, &missing, &rescale, &dummy, problems);
    (problems.items().len() == before).then(|| Feature {
        name: spec.name.clone(),
        kind: spec.kind,
        missing,
        rescale,
        dummy,
        offset,
        width,
        reference,
    })
}

fn build_rescale(spec: &FeatureSpec, path: &str, problems: &mut Problems) -> Option<Rescale> {
    let r = spec.rescaling.as_ref()?;
    if spec.kind == FeatureKind::Category {
        problems.push(format!("{path}.rescaling"), "is only for NUMERIC features");
        return None;
    }
    let (a, b) = match r {
        RescalingSpec::Standard { mean, scale } => (*mean, *scale),
        RescalingSpec::MinMax { scale, min } => (*min, *scale),
    };
    if !a.is_finite() || !b.is_finite() || b == 0.0 {
        problems.push(format!("{path}.rescaling"), "needs finite values and a non-zero scale");
    }
    Some(match r {
        RescalingSpec::Standard { mean, scale } => Rescale::Standard { mean: *mean, scale: *scale },
        RescalingSpec::MinMax { scale, min } => Rescale::MinMax { scale: *scale, min: *min },
    })
}

fn build_dummy(spec: &FeatureSpec, path: &str, problems: &mut Problems) -> Option<Dummy> {
    match (&spec.encoding, spec.kind) {
        (None, FeatureKind::Numeric) => None,
        (Some(_), FeatureKind::Numeric) => {
            problems.push(format!("{path}.encoding"), "is only for CATEGORY features");
            None
        }
        (None, FeatureKind::Category) => {
            problems.push(format!("{path}.encoding"), "is required for a CATEGORY feature");
            None
        }
        (Some(EncodingSpec::Dummy { levels, unseen }), FeatureKind::Category) => {
            let mut index = HashMap::with_capacity(levels.len());
            for (j, level) in levels.iter().enumerate() {
                if index.insert(level.clone(), j).is_some() {
                    problems.push(format!("{path}.encoding.levels[{j}]"), format!("duplicate level {level:?}"));
                }
            }
            if levels.is_empty() {
                problems.push(format!("{path}.encoding.levels"), "must list at least one level");
            }
            Some(Dummy { index, unseen: *unseen })
        }
    }
}

fn build_reference(
    spec: &FeatureSpec,
    path: &str,
    missing: &Missing,
    rescale: &Option<Rescale>,
    dummy: &Option<Dummy>,
    problems: &mut Problems,
) -> Vec<RawValue> {
    if let Some(values) = &spec.reference {
        if values.is_empty() {
            problems.push(format!("{path}.reference"), "must not be empty when given");
        }
        return values
            .iter()
            .enumerate()
            .filter_map(|(j, v)| match parse_value(&spec.name, spec.kind, v) {
                Ok(RawValue::Missing) if matches!(missing, Missing::IgnoreRecord) => {
                    problems.push(format!("{path}.reference[{j}]"), "is missing but the feature has no imputation");
                    None
                }
                Ok(raw) => Some(raw),
                Err(e) => {
                    problems.push(format!("{path}.reference[{j}]"), e.message);
                    None
                }
            })
            .collect();
    }
    match (missing, rescale, dummy) {
        (Missing::Impute(v @ RawValue::Num(_)), _, _) => vec![v.clone()],
        (_, Some(Rescale::Standard { mean, .. }), _) => vec![RawValue::Num(*mean)],
        (_, _, Some(d)) => {
            let mut levels: Vec<(&String, &usize)> = d.index.iter().collect();
            levels.sort_by_key(|(_, i)| **i);
            levels.into_iter().map(|(l, _)| RawValue::Cat(l.clone())).collect()
        }
        _ => vec![RawValue::Num(0.0)],
    }
}
