//! Drift of one column, reference against current, as Evidently decides
//! it by default (docs/monitoring.md "Data drift"): the choice of test by
//! reference size, type and distinct values; the statistic as scipy
//! computes it (`ks_2samp`, `chisquare`, the two-proportion Z-test,
//! `wasserstein_distance` over the reference's standard deviation,
//! `jensenshannon` in base 2); PSI over Evidently's bins. Columns are
//! distinct values with counts, so a reference profile and a million
//! current values are compared without expanding either.
//!
//! Owns only arithmetic; reading profiles and records is `reference` and
//! `drift`. Missing values are not here: Evidently drops them before its
//! tests, and so does the caller.

use std::collections::BTreeMap;

use super::ks;

/// A numeric column: sorted distinct values (no NaN, no -0.0) and counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Numbers {
    /// Sorted, distinct.
    pub values: Vec<f64>,
    /// Occurrences of each value.
    pub counts: Vec<u64>,
}

impl Numbers {
    /// From values in any order.
    pub fn from_values(mut values: Vec<f64>) -> Numbers {
        values.sort_unstable_by(f64::total_cmp);
        Numbers::from_sorted_pairs(values.into_iter().map(|v| (v, 1)))
    }

    /// From `(value, count)` pairs sorted by value (repeats are merged).
    pub fn from_sorted_pairs(pairs: impl Iterator<Item = (f64, u64)>) -> Numbers {
        let mut out = Numbers::default();
        for (v, c) in pairs {
            if out.values.last() == Some(&v) {
                *out.counts.last_mut().unwrap_or(&mut 0) += c;
            } else {
                out.values.push(v);
                out.counts.push(c);
            }
        }
        out
    }

    /// Values counted.
    pub fn n(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Values below `x` (`side="left"`), or at most `x` when `inclusive`.
    fn below(&self, prefix: &[u64], x: f64, inclusive: bool) -> u64 {
        let i =
            if inclusive { self.values.partition_point(|v| *v <= x) } else { self.values.partition_point(|v| *v < x) };
        prefix[i]
    }

    fn prefix(&self) -> Vec<u64> {
        let mut p = Vec::with_capacity(self.counts.len() + 1);
        p.push(0);
        for c in &self.counts {
            p.push(p.last().copied().unwrap_or(0) + c);
        }
        p
    }
}

/// A categorical column: counts by category.
pub type Categories = BTreeMap<String, u64>;

/// One column's non-missing values.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// Numbers.
    Numbers(Numbers),
    /// Categories.
    Categories(Categories),
}

impl Column {
    /// Values counted.
    pub fn n(&self) -> u64 {
        match self {
            Column::Numbers(x) => x.n(),
            Column::Categories(c) => c.values().sum(),
        }
    }
}

/// The test Evidently picks, its score and decision, and PSI beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct Drift {
    /// `ks`, `chisquare`, `z`, `wasserstein` or `jensenshannon`.
    pub method: &'static str,
    /// The p-value (ks, chisquare, z) or the distance.
    pub score: f64,
    /// The KS statistic, for `ks`.
    pub statistic: Option<f64>,
    /// p-value tests drift below it (ks: at or below), distances at or above it.
    pub threshold: f64,
    /// Whether the column drifted.
    pub drifted: bool,
    /// The population stability index (Evidently's bins, zeros filled).
    pub psi: f64,
}

/// Reference and current counts over the union of their distinct values,
/// in sorted order.
fn aligned(reference: &Column, current: &Column) -> Vec<(u64, u64)> {
    match (reference, current) {
        (Column::Numbers(r), Column::Numbers(c)) => {
            let (mut i, mut j, mut out) = (0, 0, Vec::new());
            while i < r.values.len() || j < c.values.len() {
                let (rv, cv) = (r.values.get(i), c.values.get(j));
                match (rv, cv) {
                    (Some(a), Some(b)) if a == b => {
                        out.push((r.counts[i], c.counts[j]));
                        i += 1;
                        j += 1;
                    }
                    (Some(a), Some(b)) if a < b => {
                        out.push((r.counts[i], 0));
                        i += 1;
                    }
                    (Some(_), None) => {
                        out.push((r.counts[i], 0));
                        i += 1;
                    }
                    _ => {
                        out.push((0, c.counts[j]));
                        j += 1;
                    }
                }
            }
            out
        }
        (Column::Categories(r), Column::Categories(c)) => {
            let mut keys: Vec<&String> = r.keys().chain(c.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.iter().map(|k| (r.get(*k).copied().unwrap_or(0), c.get(*k).copied().unwrap_or(0))).collect()
        }
        _ => Vec::new(),
    }
}

/// Drift of `current` against `reference` with Evidently's default test,
/// or None when either side is empty or their types differ.
pub fn drift(reference: &Column, current: &Column) -> Option<Drift> {
    let (nr, nc) = (reference.n(), current.n());
    if nr == 0 || nc == 0 {
        return None;
    }
    let counts = aligned(reference, current);
    if counts.is_empty() {
        return None;
    }
    let n_values = counts.len();
    let numeric = matches!(reference, Column::Numbers(_));
    let (method, score, statistic, threshold, drifted) = if nr <= 1000 {
        if numeric && n_values > 5 {
            let (Column::Numbers(r), Column::Numbers(c)) = (reference, current) else { return None };
            let (d, p) = ks::two_sample_pvalue(nr, nc, ks_statistic(r, c));
            ("ks", p, Some(d), 0.05, p <= 0.05)
        } else if n_values > 2 {
            let p = chi_square(&counts, nr, nc);
            ("chisquare", p, None, 0.05, p < 0.05)
        } else {
            let p = z_test(&counts, nr, nc);
            ("z", p, None, 0.05, p < 0.05)
        }
    } else if numeric && n_values > 5 {
        let (Column::Numbers(r), Column::Numbers(c)) = (reference, current) else { return None };
        let w = wasserstein(r, c) / std_dev(r).max(0.001);
        ("wasserstein", w, None, 0.1, w >= 0.1)
    } else {
        let (p, q) = binned(reference, current, &counts, false);
        let js = jensen_shannon(&p, &q);
        ("jensenshannon", js, None, 0.1, js >= 0.1)
    };
    let (p, q) = binned(reference, current, &counts, true);
    Some(Drift { method, score, statistic, threshold, drifted, psi: psi(&p, &q) })
}

/// `ks_2samp`'s D: the largest gap between the two empirical CDFs.
fn ks_statistic(r: &Numbers, c: &Numbers) -> f64 {
    let column = |x: &Numbers| Column::Numbers(x.clone());
    let (nr, nc) = (r.n() as f64, c.n() as f64);
    let (mut cr, mut cc) = (0u64, 0u64);
    let (mut max, mut min) = (f64::NEG_INFINITY, f64::INFINITY);
    for (a, b) in aligned(&column(r), &column(c)) {
        cr += a;
        cc += b;
        let diff = cr as f64 / nr - cc as f64 / nc;
        max = max.max(diff);
        min = min.min(diff);
    }
    let min_s = (-min).clamp(0.0, 1.0);
    if min_s > max { min_s } else { max }
}

/// Evidently's chi-square: expected = reference counts scaled to the
/// current size; `scipy.stats.chisquare`'s p-value.
fn chi_square(counts: &[(u64, u64)], nr: u64, nc: u64) -> f64 {
    let k_norm = nc as f64 / nr as f64;
    let stat = neumaier(counts.iter().map(|(r, c)| {
        let e = *r as f64 * k_norm;
        (*c as f64 - e).powi(2) / e
    }));
    if stat.is_nan() {
        return f64::NAN;
    }
    if stat.is_infinite() {
        return 0.0;
    }
    let dof = (counts.len() - 1) as f64;
    statrs::function::gamma::gamma_ur(dof / 2.0, stat / 2.0)
}

/// Evidently's two-proportion Z-test: the share of values other than the
/// smallest key, two-sided normal p-value.
fn z_test(counts: &[(u64, u64)], nr: u64, nc: u64) -> f64 {
    if counts.len() == 1 {
        return 1.0;
    }
    let (first_r, first_c) = counts[0];
    let (n1, n2) = (nr as f64, nc as f64);
    let p1 = (nr - first_r) as f64 / n1;
    let p2 = (nc - first_c) as f64 / n2;
    let p = (p1 * n1 + p2 * n2) / (n1 + n2);
    let z = (p1 - p2) / (p * (1.0 - p) * (1.0 / n1 + 1.0 / n2)).sqrt();
    let cdf = 0.5 * statrs::function::erf::erfc(-z.abs() / std::f64::consts::SQRT_2);
    2.0 * (1.0 - cdf)
}

/// `scipy.stats.wasserstein_distance`: the area between the two CDFs.
fn wasserstein(r: &Numbers, c: &Numbers) -> f64 {
    let (nr, nc) = (r.n() as f64, c.n() as f64);
    let (mut i, mut j, mut cr, mut cc) = (0, 0, 0u64, 0u64);
    let mut terms = Vec::new();
    let mut last: Option<(f64, f64)> = None;
    while i < r.values.len() || j < c.values.len() {
        let v = match (r.values.get(i), c.values.get(j)) {
            (Some(a), Some(b)) => a.min(*b),
            (Some(a), None) => *a,
            (None, Some(b)) => *b,
            (None, None) => break,
        };
        if let Some((prev, gap)) = last {
            terms.push(gap * (v - prev));
        }
        while r.values.get(i) == Some(&v) {
            cr += r.counts[i];
            i += 1;
        }
        while c.values.get(j) == Some(&v) {
            cc += c.counts[j];
            j += 1;
        }
        last = Some((v, (cr as f64 / nr - cc as f64 / nc).abs()));
    }
    neumaier(terms.into_iter())
}

/// `np.std` (population).
fn std_dev(x: &Numbers) -> f64 {
    let n = x.n() as f64;
    let mean = neumaier(x.values.iter().zip(&x.counts).map(|(v, c)| v * *c as f64)) / n;
    let var = neumaier(x.values.iter().zip(&x.counts).map(|(v, c)| (v - mean).powi(2) * *c as f64)) / n;
    var.sqrt()
}

/// Evidently's `get_binned_data`: shares per Sturges bin over both
/// samples when the reference is numeric with more than 20 distinct
/// values, else shares per distinct value; zeros filled for PSI.
fn binned(reference: &Column, current: &Column, counts: &[(u64, u64)], fill_zeroes: bool) -> (Vec<f64>, Vec<f64>) {
    let (nr, nc) = (reference.n() as f64, current.n() as f64);
    let (mut p, mut q): (Vec<f64>, Vec<f64>) = match (reference, current) {
        (Column::Numbers(r), Column::Numbers(c)) if r.values.len() > 20 => {
            let edges = sturges_edges(r, c);
            (histogram(r, &edges).iter().map(|x| *x as f64 / nr).collect(), {
                histogram(c, &edges).iter().map(|x| *x as f64 / nc).collect()
            })
        }
        _ => counts.iter().map(|(a, b)| (*a as f64 / nr, *b as f64 / nc)).unzip(),
    };
    if fill_zeroes {
        fill(&mut p);
        fill(&mut q);
    }
    (p, q)
}

fn fill(x: &mut [f64]) {
    let min = x.iter().copied().filter(|v| *v != 0.0).fold(f64::INFINITY, f64::min);
    let with = if min <= 0.0001 { min / 1e6 } else { 0.0001 };
    x.iter_mut().filter(|v| **v == 0.0).for_each(|v| *v = with);
}

/// `np.histogram_bin_edges(concat, bins="sturges")`.
pub fn sturges_edges(r: &Numbers, c: &Numbers) -> Vec<f64> {
    let first = r.values.first().copied().unwrap_or(0.0).min(c.values.first().copied().unwrap_or(f64::INFINITY));
    let last = r.values.last().copied().unwrap_or(0.0).max(c.values.last().copied().unwrap_or(f64::NEG_INFINITY));
    let (first, last) = if first == last { (first - 0.5, last + 0.5) } else { (first, last) };
    let size = (r.n() + c.n()) as f64;
    let width = (last - first) / (size.log2() + 1.0);
    let bins = if width != 0.0 { ((last - first) / width).ceil() as usize } else { 1 };
    linspace(first, last, bins + 1)
}

/// `np.linspace(start, stop, num)`.
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    let div = (num - 1) as f64;
    let step = (stop - start) / div;
    let mut out: Vec<f64> =
        (0..num).map(|i| if step == 0.0 { i as f64 / div * (stop - start) } else { i as f64 * step } + start).collect();
    if let Some(l) = out.last_mut() {
        *l = stop;
    }
    out
}

/// `np.histogram(x, edges)[0]`: the last bin includes its right edge.
pub fn histogram(x: &Numbers, edges: &[f64]) -> Vec<u64> {
    let prefix = x.prefix();
    let mut cum: Vec<u64> = edges.iter().map(|e| x.below(&prefix, *e, false)).collect();
    if let (Some(l), Some(e)) = (cum.last_mut(), edges.last()) {
        *l = x.below(&prefix, *e, true);
    }
    cum.windows(2).map(|w| w[1] - w[0]).collect()
}

/// `scipy.spatial.distance.jensenshannon(p, q, base=2)`.
fn jensen_shannon(p: &[f64], q: &[f64]) -> f64 {
    let (sp, sq) = (neumaier(p.iter().copied()), neumaier(q.iter().copied()));
    let rel_entr = |x: f64, y: f64| if x > 0.0 && y > 0.0 { x * (x / y).ln() } else { 0.0 };
    let mut left = Vec::with_capacity(p.len());
    let mut right = Vec::with_capacity(p.len());
    for (a, b) in p.iter().zip(q) {
        let (a, b) = (a / sp, b / sq);
        let m = (a + b) / 2.0;
        left.push(rel_entr(a, m));
        right.push(rel_entr(b, m));
    }
    let js = (neumaier(left.into_iter()) + neumaier(right.into_iter())) / 2f64.ln();
    (js / 2.0).sqrt()
}

/// Evidently's PSI: Σ (r - c)·ln(r / c) over zero-filled shares.
fn psi(p: &[f64], q: &[f64]) -> f64 {
    p.iter().zip(q).fold(0.0, |acc, (r, c)| acc + (r - c) * (r / c).ln())
}

/// A compensated sum (Neumaier): numpy's pairwise sums and this agree to
/// about 1e-15, where a plain running sum over a million terms need not.
pub fn neumaier(xs: impl Iterator<Item = f64>) -> f64 {
    let (mut sum, mut comp) = (0.0f64, 0.0f64);
    for x in xs {
        let t = sum + x;
        comp += if sum.abs() >= x.abs() { (sum - t) + x } else { (x - t) + sum };
        sum = t;
    }
    sum + comp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(v: &[f64]) -> Column {
        Column::Numbers(Numbers::from_values(v.to_vec()))
    }

    #[test]
    fn picks_evidently_s_test() {
        let small: Vec<f64> = (0..100).map(f64::from).collect();
        let shifted: Vec<f64> = (50..150).map(f64::from).collect();
        let d = drift(&numbers(&small), &numbers(&shifted)).unwrap();
        assert_eq!((d.method, d.drifted), ("ks", true));
        let two = numbers(&[0.0, 1.0, 1.0, 0.0]);
        assert_eq!(drift(&two, &two).unwrap().method, "z");
        let large: Vec<f64> = (0..2000).map(|i| f64::from(i % 7)).collect();
        assert_eq!(drift(&numbers(&large), &numbers(&large)).unwrap().method, "wasserstein");
        let same = drift(&numbers(&large), &numbers(&large)).unwrap();
        assert!(same.score.abs() < 1e-15 && !same.drifted && same.psi.abs() < 1e-15);
    }

    #[test]
    fn histogram_counts_the_last_edge() {
        let x = Numbers::from_values(vec![0.0, 0.5, 1.0, 1.0]);
        assert_eq!(histogram(&x, &[0.0, 0.5, 1.0]), vec![1, 3]);
    }
}
