//! Performance metrics of joined records, weighted, computed as
//! scikit-learn computes them (docs/monitoring.md "The monitor"; the test
//! suite checks each against scikit-learn within 1e-9). Written by hand:
//! no Rust crate implements scikit-learn's exact definitions (ties in ROC
//! AUC, zero-division rules, the averaged inverted CDF of a weighted
//! median, log-loss clipping), and matching them is the point. Pure
//! functions over slices; no I/O.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// One labelled, scored record of a classifier (borrowed from the join:
/// half a million of these per generation must stay small).
#[derive(Debug, Clone)]
pub struct Labelled<'a> {
    /// The outcome's class.
    pub truth: std::borrow::Cow<'a, str>,
    /// The predicted class.
    pub predicted: &'a str,
    /// The predicted probability of each of the model's classes, in the
    /// order of `classification`'s `classes` (NaN when absent).
    pub probas: &'a [f64],
    /// The outcome's weight.
    pub weight: f64,
}

fn sum(w: impl Iterator<Item = f64>) -> f64 {
    w.fold(0.0, |a, b| a + b)
}

/// Weighted average (`np.average`).
fn average(values: &[f64], weights: &[f64]) -> f64 {
    let total = sum(weights.iter().copied());
    sum(values.iter().zip(weights).map(|(v, w)| v * w)) / total
}

/// ROC AUC of scores against 0/1 truths, as `roc_auc_score` (binary):
/// thresholds at distinct scores, trapezoids between the points.
pub fn roc_auc(truth: &[bool], score: &[f64], weight: &[f64]) -> Option<f64> {
    let mut order: Vec<usize> = (0..score.len()).collect();
    // A stable ascending sort, reversed, as scikit-learn orders them.
    order.sort_by(|a, b| score[*a].total_cmp(&score[*b]));
    order.reverse();
    let (mut tps, mut fps) = (vec![0.0], vec![0.0]);
    let (mut tp, mut fp) = (0.0, 0.0);
    for (k, &i) in order.iter().enumerate() {
        if truth[i] {
            tp += weight[i];
        } else {
            fp += weight[i];
        }
        let last = k + 1 == order.len();
        if last || score[order[k + 1]] != score[i] {
            tps.push(tp);
            fps.push(fp);
        }
    }
    if tp <= 0.0 || fp <= 0.0 {
        return None;
    }
    let mut area = 0.0;
    for k in 1..tps.len() {
        let (x0, x1) = (fps[k - 1] / fp, fps[k] / fp);
        let (y0, y1) = (tps[k - 1] / tp, tps[k] / tp);
        area += (x1 - x0) * (y1 + y0) / 2.0;
    }
    Some(area)
}

/// Classification metrics of `rows` whose classes are `classes` (the
/// model's order; the binary positive class is the second).
pub fn classification(rows: &[Labelled<'_>], classes: &[String]) -> Value {
    if rows.is_empty() {
        return Value::Null;
    }
    let w: Vec<f64> = rows.iter().map(|r| r.weight).collect();
    let total = sum(w.iter().copied());
    let correct: Vec<f64> = rows.iter().map(|r| f64::from(u8::from(r.truth == r.predicted))).collect();
    let accuracy = average(&correct, &w);
    // Labels: every class seen in truths or predictions, sorted (as
    // scikit-learn's unique_labels).
    let labels: Vec<&str> = rows
        .iter()
        .flat_map(|r| [&*r.truth, r.predicted])
        .collect::<std::collections::BTreeSet<&str>>()
        .into_iter()
        .collect();
    let index: BTreeMap<&str, usize> = labels.iter().enumerate().map(|(i, l)| (*l, i)).collect();
    let n = labels.len();
    let mut confusion = vec![vec![0.0; n]; n];
    for r in rows {
        confusion[index[&*r.truth]][index[r.predicted]] += r.weight;
    }
    let true_sum: Vec<f64> = (0..n).map(|i| sum(confusion[i].iter().copied())).collect();
    let pred_sum: Vec<f64> = (0..n).map(|j| sum((0..n).map(|i| confusion[i][j]))).collect();
    let tp: Vec<f64> = (0..n).map(|i| confusion[i][i]).collect();
    let div = |a: f64, b: f64| if b == 0.0 { 0.0 } else { a / b };
    let recalls: Vec<f64> = (0..n).filter(|i| true_sum[*i] > 0.0).map(|i| tp[i] / true_sum[i]).collect();
    let balanced = sum(recalls.iter().copied()) / recalls.len() as f64;
    let mut per_class = Map::new();
    let (mut mp, mut mr, mut mf) = (0.0, 0.0, 0.0);
    for (i, l) in labels.iter().enumerate() {
        let (p, r, f) = (div(tp[i], pred_sum[i]), div(tp[i], true_sum[i]), div(2.0 * tp[i], true_sum[i] + pred_sum[i]));
        mp += p;
        mr += r;
        mf += f;
        per_class.insert((*l).to_owned(), json!({"precision": p, "recall": r, "f1": f, "support": true_sum[i]}));
    }
    let nf = n as f64;
    let mut out = json!({
        "labelled": rows.len(), "weight": total,
        "accuracy": accuracy, "balancedAccuracy": balanced,
        "perClass": per_class,
        "macro": {"precision": mp / nf, "recall": mr / nf, "f1": mf / nf},
        "confusion": {"labels": labels, "matrix": confusion},
    });
    // Probabilities: log loss over the model's classes, AUC, Brier, calibration.
    let have_probas = rows.iter().all(|r| r.probas.len() == classes.len() && r.probas.iter().all(|p| !p.is_nan()));
    let class_of = |t: &str| classes.iter().position(|c| c == t);
    if have_probas && classes.len() >= 2 && rows.iter().all(|r| class_of(&r.truth).is_some()) {
        let eps = f64::EPSILON;
        let losses: Vec<f64> =
            rows.iter().map(|r| -r.probas[class_of(&r.truth).unwrap_or_default()].clamp(eps, 1.0 - eps).ln()).collect();
        out["logLoss"] = json!(average(&losses, &w));
        if classes.len() == 2 {
            let pos = &classes[1];
            let truth: Vec<bool> = rows.iter().map(|r| r.truth == pos.as_str()).collect();
            let score: Vec<f64> = rows.iter().map(|r| r.probas[1]).collect();
            out["positiveClass"] = json!(pos);
            out["rocAuc"] = json!(roc_auc(&truth, &score, &w));
            let sq: Vec<f64> = truth.iter().zip(&score).map(|(t, s)| (f64::from(u8::from(*t)) - s).powi(2)).collect();
            out["brier"] = json!(average(&sq, &w));
            out["calibration"] = calibration(&truth, &score, &w);
        } else {
            let aucs: Option<Vec<f64>> = classes
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let truth: Vec<bool> = rows.iter().map(|r| r.truth == c.as_str()).collect();
                    let score: Vec<f64> = rows.iter().map(|r| r.probas[i]).collect();
                    roc_auc(&truth, &score, &w)
                })
                .collect();
            out["rocAuc"] = json!(aucs.map(|a| sum(a.iter().copied()) / a.len() as f64));
        }
    }
    out
}

/// Ten bins of predicted probability: mean prediction, observed positive
/// share and weight per bin (empty bins left out).
fn calibration(truth: &[bool], score: &[f64], weight: &[f64]) -> Value {
    let mut bins = [(0.0, 0.0, 0.0); 10];
    for ((t, s), w) in truth.iter().zip(score).zip(weight) {
        let b = ((s * 10.0).floor() as usize).min(9);
        bins[b].0 += s * w;
        bins[b].1 += f64::from(u8::from(*t)) * w;
        bins[b].2 += w;
    }
    Value::Array(
        bins.iter()
            .enumerate()
            .filter(|(_, b)| b.2 > 0.0)
            .map(|(i, b)| {
                json!({"bin": format!("{:.1}-{:.1}", i as f64 / 10.0, (i + 1) as f64 / 10.0),
                       "meanPredicted": b.0 / b.2, "fractionPositive": b.1 / b.2, "weight": b.2})
            })
            .collect(),
    )
}

/// The weighted median as NumPy's `averaged_inverted_cdf` (scikit-learn's
/// weighted `median_absolute_error`); the plain median without weights.
fn median(values: &[f64], weights: &[f64]) -> f64 {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|a, b| values[*a].total_cmp(&values[*b]));
    if weights.iter().all(|w| *w == 1.0) {
        let n = order.len();
        return if n % 2 == 1 { values[order[n / 2]] } else { (values[order[n / 2 - 1]] + values[order[n / 2]]) / 2.0 };
    }
    let total = sum(weights.iter().copied());
    let target = total / 2.0;
    let mut cdf = 0.0;
    for (k, &i) in order.iter().enumerate() {
        cdf += weights[i];
        if cdf >= target {
            if cdf == target && k + 1 < order.len() {
                return (values[i] + values[order[k + 1]]) / 2.0;
            }
            return values[i];
        }
    }
    values[*order.last().expect("not empty")]
}

/// Regression metrics of (truth, prediction, weight) triples.
pub fn regression(rows: &[(f64, f64, f64)]) -> Value {
    if rows.is_empty() {
        return Value::Null;
    }
    let w: Vec<f64> = rows.iter().map(|r| r.2).collect();
    let abs: Vec<f64> = rows.iter().map(|r| (r.0 - r.1).abs()).collect();
    let sq: Vec<f64> = rows.iter().map(|r| (r.0 - r.1).powi(2)).collect();
    let pct: Vec<f64> = rows.iter().map(|r| (r.0 - r.1).abs() / r.0.abs().max(f64::EPSILON)).collect();
    let truths: Vec<f64> = rows.iter().map(|r| r.0).collect();
    let mean = average(&truths, &w);
    let num = sum(sq.iter().zip(&w).map(|(s, w)| s * w));
    let den = sum(truths.iter().zip(&w).map(|(t, w)| w * (t - mean).powi(2)));
    let r2 = if den != 0.0 {
        1.0 - num / den
    } else if num == 0.0 {
        1.0
    } else {
        0.0
    };
    json!({
        "labelled": rows.len(), "weight": sum(w.iter().copied()),
        "mae": average(&abs, &w), "rmse": average(&sq, &w).sqrt(), "r2": r2,
        "mape": average(&pct, &w), "medianAbsoluteError": median(&abs, &w),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_handles_ties_and_weights() {
        // Figures from scikit-learn's roc_auc_score on the same input.
        let truth = [false, false, true, true];
        assert_eq!(roc_auc(&truth, &[0.1, 0.4, 0.35, 0.8], &[1.0; 4]), Some(0.75));
        assert_eq!(roc_auc(&truth, &[0.5, 0.5, 0.5, 0.5], &[1.0; 4]), Some(0.5));
        assert_eq!(roc_auc(&[true, true], &[0.1, 0.2], &[1.0; 2]), None, "one class only");
    }

    #[test]
    fn medians_follow_numpy() {
        assert_eq!(median(&[1.0, 3.0, 2.0, 10.0], &[1.0; 4]), 2.5);
        assert_eq!(median(&[1.0, 2.0, 3.0], &[1.0, 1.0, 2.0]), 2.5, "averaged inverted CDF at an exact half");
        assert_eq!(median(&[1.0, 2.0, 3.0], &[1.0, 1.0, 3.0]), 3.0);
    }
}
