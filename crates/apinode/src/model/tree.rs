//! CART trees as scikit-learn stores them (`tree_.feature`, `threshold`,
//! `children_left`, `children_right`, `value`), and their evaluation. A tree
//! is validated once at load so that evaluation can index without checks
//! failing and always terminates (every child index is greater than its
//! parent's). Nothing here knows about ensembles or classes.

use serde::Deserialize;

use crate::problems::Problems;

/// A tree as it is written in a model file: parallel node arrays.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TreeSpec {
    /// Split column per node (ignored on leaves; scikit-learn writes -2 there).
    pub feature: Vec<i64>,
    /// Split threshold per node: `x[feature] <= threshold` goes left.
    pub threshold: Vec<f64>,
    /// Left child per node, -1 on leaves.
    pub left: Vec<i64>,
    /// Right child per node, -1 on leaves.
    pub right: Vec<i64>,
    /// Output per node: one value (regression, boosting) or one weight per class.
    pub value: Vec<Vec<f64>>,
}

#[derive(Debug, Clone, Copy)]
struct Node {
    feature: usize,
    threshold: f64,
    left: u32,
    right: u32,
}

/// A validated tree.
#[derive(Debug, Clone)]
pub struct Tree {
    nodes: Vec<Node>,
    values: Vec<Vec<f64>>,
}

const LEAF: u32 = u32::MAX;

impl Tree {
    /// Validates `spec` for inputs of `width` columns and outputs of `outputs`
    /// values per node, recording problems under `path`.
    pub fn build(spec: &TreeSpec, width: usize, outputs: usize, path: &str, problems: &mut Problems) -> Option<Tree> {
        let n = spec.value.len();
        let before = problems.items().len();
        if n == 0 {
            problems.push(path, "a tree needs at least one node");
            return None;
        }
        for (name, len) in [
            ("feature", spec.feature.len()),
            ("threshold", spec.threshold.len()),
            ("left", spec.left.len()),
            ("right", spec.right.len()),
        ] {
            if len != n {
                problems.push(format!("{path}.{name}"), format!("has {len} entries, value has {n}"));
            }
        }
        if problems.items().len() > before {
            return None;
        }
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            if spec.value[i].len() != outputs {
                problems.push(
                    format!("{path}.value[{i}]"),
                    format!("has {} values, expected {outputs}", spec.value[i].len()),
                );
            }
            let (l, r) = (spec.left[i], spec.right[i]);
            if l == -1 && r == -1 {
                nodes.push(Node { feature: 0, threshold: 0.0, left: LEAF, right: LEAF });
                continue;
            }
            let child_ok = |c: i64| c > i as i64 && (c as usize) < n;
            if !child_ok(l) || !child_ok(r) {
                problems.push(
                    format!("{path}.left[{i}]"),
                    format!("children ({l}, {r}) must both be -1 or node indices after {i} and below {n}"),
                );
            }
            let f = spec.feature[i];
            if f < 0 || f as usize >= width {
                problems.push(format!("{path}.feature[{i}]"), format!("{f} is not a column (0..{width})"));
            }
            if !spec.threshold[i].is_finite() {
                problems.push(format!("{path}.threshold[{i}]"), "must be finite");
            }
            nodes.push(Node {
                feature: f.max(0) as usize,
                threshold: spec.threshold[i],
                left: l as u32,
                right: r as u32,
            });
        }
        (problems.items().len() == before).then(|| Tree { nodes, values: spec.value.clone() })
    }

    /// The output values of the leaf that `x` falls into.
    ///
    /// Inputs are compared as 32-bit floats, because scikit-learn casts X to
    /// float32 before walking its trees; comparing in f64 would send a value
    /// lying between the two roundings down the other branch.
    pub fn leaf(&self, x: &[f64]) -> &[f64] {
        let mut i = 0usize;
        loop {
            let node = self.nodes[i];
            if node.left == LEAF {
                return &self.values[i];
            }
            let v = f64::from(x[node.feature] as f32);
            i = if v <= node.threshold { node.left } else { node.right } as usize;
        }
    }

    /// The number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false for a built tree.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stump() -> TreeSpec {
        TreeSpec {
            feature: vec![0, -2, -2],
            threshold: vec![0.5, -2.0, -2.0],
            left: vec![1, -1, -1],
            right: vec![2, -1, -1],
            value: vec![vec![0.0], vec![1.0], vec![2.0]],
        }
    }

    #[test]
    fn walks_left_on_less_or_equal() {
        let t = Tree::build(&stump(), 1, 1, "t", &mut Problems::new()).expect("valid");
        assert_eq!(t.leaf(&[0.5]), &[1.0]);
        assert_eq!(t.leaf(&[0.50001]), &[2.0]);
    }

    #[test]
    fn compares_in_float32_like_scikit_learn() {
        let mut spec = stump();
        // 0.1f32 is 0.100000001490116...; a threshold between it and 0.1f64.
        spec.threshold[0] = 0.100_000_001;
        let t = Tree::build(&spec, 1, 1, "t", &mut Problems::new()).expect("valid");
        assert_eq!(t.leaf(&[0.1]), &[2.0], "0.1 rounds up in f32 and goes right");
    }

    #[test]
    fn refuses_cycles_bad_columns_and_ragged_arrays() {
        let mut spec = stump();
        spec.left[0] = 0;
        spec.feature[0] = 3;
        let mut p = Problems::new();
        assert!(Tree::build(&spec, 1, 1, "t", &mut p).is_none());
        assert_eq!(p.items().len(), 2, "{p}");
        let mut spec = stump();
        spec.threshold.pop();
        let mut p = Problems::new();
        assert!(Tree::build(&spec, 1, 1, "t", &mut p).is_none());
        assert!(p.to_string().contains("t.threshold: has 2 entries"), "{p}");
    }
}
