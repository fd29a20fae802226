//! Per-feature explanations of one prediction: ICE and Monte Carlo Shapley
//! values, then the top `nExplanations` by absolute contribution. Both explain
//! the same score: the value for a regression, the log-odds of the explained
//! class for a classifier (the positive class for binary, the predicted one
//! for multiclass). Pure computation on a loaded model; the random draws of
//! SHAPLEY are seeded from the record so that replaying a query gives the
//! same explanation.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use sha2::{Digest, Sha256};

use super::Model;
use super::features::RawValue;
use super::spec::ExplanationMethod;

/// What to compute, after request values and endpoint defaults are merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExplainSettings {
    /// ICE or SHAPLEY.
    pub method: ExplanationMethod,
    /// How many features to return.
    pub n_explanations: usize,
    /// SHAPLEY: the number of sampled permutations.
    pub n_monte_carlo_steps: usize,
}

/// Explains `raw` (a record that scored) for output class `class` (ignored
/// for a regression). Returns at most `n_explanations` (feature, contribution)
/// pairs, largest absolute contribution first.
pub fn explain(model: &Model, raw: &[RawValue], class: usize, settings: &ExplainSettings) -> Vec<(String, f64)> {
    let score = |r: &[RawValue]| model.explained_score(r, class);
    let contributions = match settings.method {
        ExplanationMethod::Ice => ice(model, raw, &score),
        ExplanationMethod::Shapley => shapley(model, raw, settings.n_monte_carlo_steps, &score),
    };
    let mut ranked: Vec<(String, f64)> =
        contributions.into_iter().enumerate().map(|(i, c)| (model.preprocessor().name(i).to_owned(), c)).collect();
    // A stable sort keeps feature order among equal contributions.
    ranked.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
    ranked.truncate(settings.n_explanations);
    ranked
}

/// ICE: the score minus its mean over the feature's reference values.
fn ice(model: &Model, raw: &[RawValue], score: &dyn Fn(&[RawValue]) -> Option<f64>) -> Vec<f64> {
    let Some(base) = score(raw) else {
        return vec![0.0; raw.len()];
    };
    let mut work = raw.to_vec();
    (0..raw.len())
        .map(|i| {
            let (mut sum, mut n) = (0.0, 0usize);
            for v in model.preprocessor().reference(i) {
                work[i] = v.clone();
                if let Some(s) = score(&work) {
                    sum += s;
                    n += 1;
                }
            }
            work[i] = raw[i].clone();
            if n == 0 { 0.0 } else { base - sum / n as f64 }
        })
        .collect()
}

/// Shapley values by sampling (Štrumbelj and Kononenko): each step draws a
/// permutation and a reference record, then switches features from the
/// reference to the record in permutation order; each feature's marginal
/// change is one sample of its contribution.
fn shapley(model: &Model, raw: &[RawValue], steps: usize, score: &dyn Fn(&[RawValue]) -> Option<f64>) -> Vec<f64> {
    let n = raw.len();
    let mut rng = StdRng::seed_from_u64(seed(raw));
    let mut phi = vec![0.0; n];
    let mut sample = vec![0.0; n];
    let mut order: Vec<usize> = (0..n).collect();
    let mut valid = 0usize;
    'steps: for _ in 0..steps {
        order.shuffle(&mut rng);
        let mut work: Vec<RawValue> = (0..n)
            .map(|i| model.preprocessor().reference(i).choose(&mut rng).cloned().unwrap_or(RawValue::Missing))
            .collect();
        let Some(mut prev) = score(&work) else {
            continue;
        };
        for &i in &order {
            work[i] = raw[i].clone();
            let Some(now) = score(&work) else {
                continue 'steps;
            };
            sample[i] = now - prev;
            prev = now;
        }
        phi.iter_mut().zip(&sample).for_each(|(p, s)| *p += s);
        valid += 1;
    }
    if valid > 0 {
        phi.iter_mut().for_each(|p| *p /= valid as f64);
    }
    phi
}

/// A seed derived from the record's values.
fn seed(raw: &[RawValue]) -> u64 {
    let mut h = Sha256::new();
    for v in raw {
        match v {
            RawValue::Missing => h.update([0u8]),
            RawValue::Num(x) => {
                h.update([1u8]);
                h.update(x.to_bits().to_le_bytes());
            }
            RawValue::Cat(s) => {
                h.update([2u8]);
                h.update((s.len() as u64).to_le_bytes());
                h.update(s.as_bytes());
            }
        }
    }
    let digest = h.finalize();
    u64::from_le_bytes(digest[..8].try_into().expect("a SHA-256 digest has 32 bytes"))
}
