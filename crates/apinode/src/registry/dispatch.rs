//! Choosing the generation that answers a request: a forced generation, a
//! dispatch key (a stable hash of the key placed on the mapping's cumulative
//! probabilities, so one key keeps its generation while the mapping is
//! unchanged), or a random draw by the mapping's probabilities. Pure apart
//! from the random draw; it does not know about HTTP.

use sha2::{Digest, Sha256};

use crate::ids::GenerationId;

/// A validated mapping: generations with probabilities summing to 1.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mapping {
    entries: Vec<(GenerationId, f64)>,
}

/// How a request asks to be dispatched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dispatch<'a> {
    /// This generation, mapped or not.
    Forced(&'a str),
    /// Deterministic by key.
    Key(&'a str),
    /// Random by the mapping.
    Random,
}

/// Tolerance on the sum of a mapping's probabilities.
pub const PROBA_SUM_TOLERANCE: f64 = 1e-6;

impl Mapping {
    /// Wraps entries that were already checked (see [`Mapping::check`]).
    pub fn new(entries: Vec<(GenerationId, f64)>) -> Self {
        Self { entries }
    }

    /// The problems of a candidate mapping: probabilities outside 0..=1, a sum
    /// other than 1, a generation listed twice. An empty mapping is valid (the
    /// service then has no active generation).
    pub fn check(entries: &[(GenerationId, f64)]) -> Vec<String> {
        let mut problems = Vec::new();
        for (i, (g, p)) in entries.iter().enumerate() {
            if !(0.0..=1.0).contains(p) {
                problems.push(format!("entries[{i}].proba: {p} is not between 0 and 1"));
            }
            if entries[..i].iter().any(|(h, _)| h == g) {
                problems.push(format!("entries[{i}].generation: {g} is listed twice"));
            }
        }
        let sum: f64 = entries.iter().map(|(_, p)| p).sum();
        if !entries.is_empty() && (sum - 1.0).abs() > PROBA_SUM_TOLERANCE {
            let shown = (sum * 1e9).round() / 1e9;
            problems.push(format!("entries: probabilities sum to {shown}, not 1"));
        }
        problems
    }

    /// The entries.
    pub fn entries(&self) -> &[(GenerationId, f64)] {
        &self.entries
    }

    /// The share of traffic of `generation` (0 when unmapped).
    pub fn share(&self, generation: &GenerationId) -> f64 {
        // fold from +0.0: an empty f64 `sum()` is -0.0, which prints as "-0".
        self.entries.iter().filter(|(g, _)| g == generation).fold(0.0, |acc, (_, p)| acc + p)
    }

    /// True when some generation receives traffic.
    pub fn is_active(&self) -> bool {
        self.entries.iter().any(|(_, p)| *p > 0.0)
    }

    /// The generation at position `u` (0..1) of the cumulative probabilities.
    pub fn at(&self, u: f64) -> Option<&GenerationId> {
        let mut cumulative = 0.0;
        let mut last = None;
        for (g, p) in self.entries.iter().filter(|(_, p)| *p > 0.0) {
            cumulative += p;
            last = Some(g);
            if u < cumulative {
                return Some(g);
            }
        }
        last
    }

    /// The generation for a dispatch key.
    pub fn for_key(&self, key: &str) -> Option<&GenerationId> {
        self.at(unit_hash(key))
    }

    /// A generation drawn at random by the probabilities.
    pub fn random(&self) -> Option<&GenerationId> {
        self.at(rand::random::<f64>())
    }
}

/// A stable hash of `key` into 0..1: the first 53 bits of its SHA-256.
pub fn unit_hash(key: &str) -> f64 {
    let digest = Sha256::digest(key.as_bytes());
    let v = u64::from_be_bytes(digest[..8].try_into().expect("a SHA-256 digest has 32 bytes"));
    (v >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gid(s: &str) -> GenerationId {
        GenerationId::new(s).expect("valid id")
    }

    #[test]
    fn check_reports_every_problem() {
        let bad = [(gid("v1"), 0.7), (gid("v1"), 0.7), (gid("v2"), -0.5)];
        let problems = Mapping::check(&bad);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(Mapping::check(&[(gid("v1"), 0.3), (gid("v2"), 0.7)]).is_empty());
        assert!(Mapping::check(&[]).is_empty());
    }

    #[test]
    fn an_unmapped_generation_has_a_positive_zero_share() {
        let m = Mapping::new(vec![(gid("v1"), 1.0)]);
        assert_eq!(m.share(&gid("v2")).to_string(), "0");
        assert_eq!(m.share(&gid("v1")), 1.0);
    }

    #[test]
    fn positions_follow_cumulative_probabilities() {
        let m = Mapping::new(vec![(gid("v1"), 0.25), (gid("v0"), 0.0), (gid("v2"), 0.75)]);
        assert_eq!(m.at(0.0), Some(&gid("v1")));
        assert_eq!(m.at(0.2499), Some(&gid("v1")));
        assert_eq!(m.at(0.25), Some(&gid("v2")));
        assert_eq!(m.at(0.999_999_9), Some(&gid("v2")));
        assert_eq!(Mapping::default().at(0.5), None);
    }

    #[test]
    fn keys_are_stable_and_spread() {
        let m = Mapping::new(vec![(gid("a"), 0.5), (gid("b"), 0.5)]);
        let first: Vec<_> = (0..200).map(|i| m.for_key(&format!("customer-{i}")).cloned()).collect();
        let again: Vec<_> = (0..200).map(|i| m.for_key(&format!("customer-{i}")).cloned()).collect();
        assert_eq!(first, again);
        let a = first.iter().filter(|g| g.as_ref() == Some(&gid("a"))).count();
        assert!((60..140).contains(&a), "200 keys should split roughly evenly, got {a} on a");
        // The hash is SHA-256, fixed across processes and versions: a key keeps
        // its generation across restarts. Value computed independently in Python.
        assert_eq!(format!("{:.6}", unit_hash("customer-42")), "0.626067");
    }
}
