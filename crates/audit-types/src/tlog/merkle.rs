//! RFC 6962 / RFC 9162 Merkle trees over audit lines (docs/integrity.md
//! "Tamper evidence"): leaf and interior hashes, the [`Frontier`] an
//! appender keeps while it writes (O(log n) hashes, never the tree), proofs
//! built from whatever part of a tree is known ([`Known`]: the pieces of a
//! frontier plus the leaves after it), and the RFC 9162 §2.1.3.2 and
//! §2.1.4.2 verifiers.
//!
//! Written here rather than taken from a crate: the node must build roots
//! and consistency proofs from a frontier and leaves read back from disk,
//! because the tree of a busy node does not fit in memory; the crates
//! looked at (`ct-merkle`, `rs_merkle`) keep whole trees in memory or use a
//! different tree shape. The code follows the RFC's recursive definitions
//! line by line, and the tests check it against a naive implementation and
//! (in the integration suite) against an independent Python verifier.
//!
//! Owns no I/O: leaves come from a [`LeafSource`] the caller provides.

use std::collections::HashMap;

use sha2::{Digest as _, Sha256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// `SHA-256(0x00 || line)`.
pub fn leaf_hash(line: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(line);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two smaller than `n` (`n >= 2`).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// The right edge of a tree as it grows: one hash per perfect subtree the
/// leaves so far decompose into (one per set bit of the size, largest
/// first). Enough to add leaves and to compute the root.
///
/// A frontier may also describe a subtree `[lo, lo + size)` whose `lo` is a
/// multiple of a power of two at least as large as its final size (every
/// subtree of RFC 6962's recursion is such a range).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    nodes: Vec<Hash>,
}

/// A frontier whose node count does not match its size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a frontier of size {size} has {got} hashes, not {want}")]
pub struct BadFrontier {
    /// The size given.
    pub size: u64,
    /// Hashes given.
    pub got: usize,
    /// Hashes needed.
    pub want: u32,
}

impl Frontier {
    /// The empty tree.
    pub fn new() -> Frontier {
        Frontier::default()
    }

    /// A frontier from its size and hashes (largest subtree first).
    ///
    /// # Errors
    /// When the number of hashes is not the number of set bits of `size`.
    pub fn from_parts(size: u64, nodes: Vec<Hash>) -> Result<Frontier, BadFrontier> {
        if nodes.len() != size.count_ones() as usize {
            return Err(BadFrontier { size, got: nodes.len(), want: size.count_ones() });
        }
        Ok(Frontier { size, nodes })
    }

    /// Leaves so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The subtree hashes, largest first.
    pub fn nodes(&self) -> &[Hash] {
        &self.nodes
    }

    /// Adds one leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut h = leaf;
        let mut s = self.size;
        while s & 1 == 1 {
            let left = self.nodes.pop().expect("one node per set bit");
            h = node_hash(&left, &h);
            s >>= 1;
        }
        self.nodes.push(h);
        self.size += 1;
    }

    /// The tree's root (RFC 6962 MTH).
    pub fn root(&self) -> Hash {
        let mut it = self.nodes.iter().rev();
        let Some(last) = it.next() else { return empty_root() };
        it.fold(*last, |right, left| node_hash(left, &right))
    }

    /// The perfect subtrees, as `(start, end, hash)` ranges of a tree that
    /// starts at leaf `offset`.
    pub fn pieces(&self, offset: u64) -> Vec<(u64, u64, Hash)> {
        let mut at = offset;
        let mut out = Vec::with_capacity(self.nodes.len());
        let mut bits = self.size;
        for h in &self.nodes {
            let width = 1u64 << (63 - bits.leading_zeros());
            out.push((at, at + width, *h));
            at += width;
            bits &= !width;
        }
        out
    }
}

/// Why a hash could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    /// A leaf is neither known nor covered by a known subtree.
    #[error("leaf {0} is not known (its record is gone and no kept hash covers it)")]
    Unknown(u64),
    /// Leaves could not be read.
    #[error("cannot read leaves {lo}..{hi}: {why}")]
    Read {
        /// First leaf.
        lo: u64,
        /// End (exclusive).
        hi: u64,
        /// The reader's error.
        why: String,
    },
    /// A proof was asked for outside the tree.
    #[error("no proof for {what} in a tree of {size} leaves")]
    OutOfRange {
        /// What was asked.
        what: String,
        /// The tree size.
        size: u64,
    },
}

/// Reads leaf hashes by index.
pub trait LeafSource {
    /// Calls `f` with each leaf hash of `[lo, hi)` in order.
    ///
    /// # Errors
    /// When the leaves cannot be read.
    fn for_each(&self, lo: u64, hi: u64, f: &mut dyn FnMut(&Hash)) -> Result<(), TreeError>;
}

impl LeafSource for Vec<Hash> {
    fn for_each(&self, lo: u64, hi: u64, f: &mut dyn FnMut(&Hash)) -> Result<(), TreeError> {
        let range = usize::try_from(lo).ok().zip(usize::try_from(hi).ok());
        let slice = range.and_then(|(a, b)| self.get(a..b)).ok_or(TreeError::Unknown(hi.saturating_sub(1)))?;
        slice.iter().for_each(f);
        Ok(())
    }
}

/// What is known of a tree: the hashes of some subtrees (the pieces of a
/// frontier kept when older leaves were deleted) and the leaves from
/// `leaves_from` on. Any subtree hash is computed from these, recursing as
/// RFC 6962's MTH does until it meets a known piece or known leaves.
pub struct Known<'a> {
    pieces: HashMap<(u64, u64), Hash>,
    leaves_from: u64,
    leaves: &'a dyn LeafSource,
}

impl<'a> Known<'a> {
    /// The tree known from the frontier of its first `frontier.size()`
    /// leaves, and `leaves` (indexed from 0, read from `frontier.size()` on).
    pub fn new(frontier: &Frontier, leaves: &'a dyn LeafSource) -> Known<'a> {
        let pieces = frontier.pieces(0).into_iter().map(|(a, b, h)| ((a, b), h)).collect();
        Known { pieces, leaves_from: frontier.size(), leaves }
    }

    /// MTH of the leaves `[lo, hi)` (a subtree of RFC 6962's recursion).
    ///
    /// # Errors
    /// When a leaf the hash needs is not known.
    pub fn mth(&self, lo: u64, hi: u64) -> Result<Hash, TreeError> {
        if let Some(h) = self.pieces.get(&(lo, hi)) {
            return Ok(*h);
        }
        if lo >= self.leaves_from {
            let mut f = Frontier::new();
            self.leaves.for_each(lo, hi, &mut |h| f.push(*h))?;
            if f.size() != hi - lo {
                return Err(TreeError::Unknown(lo + f.size()));
            }
            return Ok(f.root());
        }
        if hi - lo <= 1 {
            return Err(TreeError::Unknown(lo));
        }
        let k = split(hi - lo);
        Ok(node_hash(&self.mth(lo, lo + k)?, &self.mth(lo + k, hi)?))
    }

    /// The root of the first `size` leaves.
    ///
    /// # Errors
    /// When a leaf it needs is not known.
    pub fn root(&self, size: u64) -> Result<Hash, TreeError> {
        if size == 0 { Ok(empty_root()) } else { self.mth(0, size) }
    }

    /// RFC 9162 §2.1.3.1: the audit path of leaf `index` in the tree of
    /// the first `size` leaves.
    ///
    /// # Errors
    /// Out of range, or a hash it needs is not known.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, TreeError> {
        if index >= size {
            return Err(TreeError::OutOfRange { what: format!("leaf {index}"), size });
        }
        let mut out = Vec::new();
        self.path(index, 0, size, &mut out)?;
        Ok(out)
    }

    fn path(&self, m: u64, lo: u64, hi: u64, out: &mut Vec<Hash>) -> Result<(), TreeError> {
        let n = hi - lo;
        if n <= 1 {
            return Ok(());
        }
        let k = split(n);
        if m < k {
            self.path(m, lo, lo + k, out)?;
            out.push(self.mth(lo + k, hi)?);
        } else {
            self.path(m - k, lo + k, hi, out)?;
            out.push(self.mth(lo, lo + k)?);
        }
        Ok(())
    }

    /// RFC 9162 §2.1.4.1: the proof that the tree of the first `old`
    /// leaves is a prefix of the tree of the first `new` leaves.
    ///
    /// # Errors
    /// Out of range, or a hash it needs is not known.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, TreeError> {
        if old > new {
            return Err(TreeError::OutOfRange { what: format!("a consistency proof from {old}"), size: new });
        }
        let mut out = Vec::new();
        if old > 0 && old < new {
            self.subproof(old, 0, new, true, &mut out)?;
        }
        Ok(out)
    }

    fn subproof(&self, m: u64, lo: u64, hi: u64, whole: bool, out: &mut Vec<Hash>) -> Result<(), TreeError> {
        let n = hi - lo;
        if m == n {
            if !whole {
                out.push(self.mth(lo, hi)?);
            }
            return Ok(());
        }
        let k = split(n);
        if m <= k {
            self.subproof(m, lo, lo + k, whole, out)?;
            out.push(self.mth(lo + k, hi)?);
        } else {
            self.subproof(m - k, lo + k, hi, false, out)?;
            out.push(self.mth(lo, lo + k)?);
        }
        Ok(())
    }
}

/// RFC 9162 §2.1.3.2: whether `proof` shows `leaf` at `index` in the tree
/// of `size` leaves whose root is `root`.
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == *root
}

/// RFC 9162 §2.1.4.2: whether `proof` shows the tree of `old` leaves
/// (root `old_root`) to be a prefix of the tree of `new` leaves (root
/// `new_root`).
pub fn verify_consistency(old: u64, new: u64, old_root: &Hash, new_root: &Hash, proof: &[Hash]) -> bool {
    if old > new {
        return false;
    }
    if old == new {
        return proof.is_empty() && old_root == new_root;
    }
    if old == 0 {
        return proof.is_empty();
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else { return false };
    let (mut fnode, mut snode) = (old - 1, new - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && fr == *old_root && sr == *new_root
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MTH straight from RFC 6962's definition.
    fn naive(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split(n as u64) as usize;
                node_hash(&naive(&leaves[..k]), &naive(&leaves[k..]))
            }
        }
    }

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(format!("line {i}").as_bytes())).collect()
    }

    #[test]
    fn empty_and_single_leaf_roots_are_the_rfc_values() {
        assert_eq!(hex(&empty_root()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        // RFC 6962 test vectors (transparency-dev): the leaf hash of the empty string.
        assert_eq!(hex(&leaf_hash(b"")), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
    }

    fn hex(h: &Hash) -> String {
        h.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn frontier_roots_match_the_definition_for_every_size() {
        let all = leaves(70);
        let mut f = Frontier::new();
        for n in 1..=70u64 {
            f.push(all[n as usize - 1]);
            assert_eq!(f.root(), naive(&all[..n as usize]), "size {n}");
            let back = Frontier::from_parts(n, f.nodes().to_vec()).expect("parts");
            assert_eq!(back, f);
        }
    }

    #[test]
    fn proofs_verify_for_every_pair_of_sizes_and_fail_when_altered() {
        let all = leaves(40);
        let known = Known::new(&Frontier::new(), &all);
        for n in 1..=40u64 {
            let root = naive(&all[..n as usize]);
            for i in 0..n {
                let p = known.inclusion_proof(i, n).expect("proof");
                assert!(verify_inclusion(i, n, &all[i as usize], &p, &root), "leaf {i} of {n}");
                assert!(!verify_inclusion(i, n, &leaf_hash(b"other"), &p, &root));
                assert!(p.len() as u32 <= 64 - (n - 1).leading_zeros(), "at most ceil(log2 n) hashes");
            }
            for m in 0..=n {
                let old = naive(&all[..m as usize]);
                let p = known.consistency_proof(m, n).expect("proof");
                assert!(verify_consistency(m, n, &old, &root, &p), "{m} -> {n}");
                if m > 0 && m < n {
                    assert!(!verify_consistency(m, n, &leaf_hash(b"x"), &root, &p), "{m} -> {n} wrong old root");
                    assert!(!verify_consistency(m, n, &old, &leaf_hash(b"x"), &p), "{m} -> {n} wrong new root");
                }
            }
        }
    }

    #[test]
    fn a_frontier_stands_for_deleted_leaves() {
        let all = leaves(53);
        for cut in [0u64, 1, 7, 16, 31, 32, 50] {
            let mut f = Frontier::new();
            all[..cut as usize].iter().for_each(|h| f.push(*h));
            // Only the leaves after the cut are readable.
            struct After<'a>(&'a Vec<Hash>, u64);
            impl LeafSource for After<'_> {
                fn for_each(&self, lo: u64, hi: u64, f: &mut dyn FnMut(&Hash)) -> Result<(), TreeError> {
                    if lo < self.1 {
                        return Err(TreeError::Unknown(lo));
                    }
                    self.0.for_each(lo, hi, f)
                }
            }
            let src = After(&all, cut);
            let known = Known::new(&f, &src);
            for n in cut.max(1)..=53 {
                let root = naive(&all[..n as usize]);
                assert_eq!(known.root(n).expect("root"), root, "cut {cut} size {n}");
                for i in cut..n {
                    let p = known.inclusion_proof(i, n).expect("proof");
                    assert!(verify_inclusion(i, n, &all[i as usize], &p, &root));
                }
                if cut > 0 {
                    let p = known.consistency_proof(cut, n).expect("proof");
                    assert!(verify_consistency(cut, n, &naive(&all[..cut as usize]), &root, &p));
                }
            }
        }
    }
}
