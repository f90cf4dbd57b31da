//! Random-projection trees: the leaves NN-descent starts from.

use crate::numeric::distance::{dot, prefetch_row};
use crate::numeric::rng::Rng;

/// Split `ids` recursively by random hyperplanes into leaves of at most `leaf` points.
pub(super) fn rp_leaves(
    x: &[f32],
    dim: usize,
    ids: Vec<u32>,
    leaf: usize,
    seed: u64,
    node: u64,
    out: &mut Vec<Vec<u32>>,
) {
    if ids.len() <= leaf {
        out.push(ids);
        return;
    }
    let mut r = Rng::new(seed, node);
    let a = ids[r.below(ids.len() as u64) as usize] as usize;
    let mut b = ids[r.below(ids.len() as u64) as usize] as usize;
    if a == b {
        b = ids[(ids.iter().position(|&v| v as usize == a).unwrap_or(0) + 1) % ids.len()] as usize;
    }
    let (pa, pb) = (&x[a * dim..(a + 1) * dim], &x[b * dim..(b + 1) * dim]);
    let normal: Vec<f32> = pa.iter().zip(pb).map(|(u, v)| u - v).collect();
    let mid: Vec<f32> = pa.iter().zip(pb).map(|(u, v)| (u + v) * 0.5).collect();
    let offset = dot(&normal, &mid);
    let (mut left, mut right): (Vec<u32>, Vec<u32>) = (Vec::new(), Vec::new());
    for (at, &i) in ids.iter().enumerate() {
        // The rows of a tree's node are scattered through memory: load a few ahead.
        if let Some(&ahead) = ids.get(at + PREFETCH_AHEAD) {
            prefetch_row(&x[ahead as usize * dim..(ahead as usize + 1) * dim]);
        }
        let p = &x[i as usize * dim..(i as usize + 1) * dim];
        let side = dot(&normal, p) - offset;
        if side > 0.0 || (side == 0.0 && r.below(2) == 0) {
            left.push(i);
        } else {
            right.push(i);
        }
    }
    if left.is_empty() || right.is_empty() {
        // Degenerate (duplicates): split in halves.
        let mut all = if left.is_empty() { right } else { left };
        let half = all.split_off(all.len() / 2);
        left = all;
        right = half;
    }
    if left.len() + right.len() >= PARALLEL_SPLIT {
        let (mut l, r) = rayon::join(
            || {
                let mut o = Vec::new();
                rp_leaves(x, dim, left, leaf, seed, node * 2 + 1, &mut o);
                o
            },
            || {
                let mut o = Vec::new();
                rp_leaves(x, dim, right, leaf, seed, node * 2 + 2, &mut o);
                o
            },
        );
        l.extend(r);
        out.extend(l);
    } else {
        rp_leaves(x, dim, left, leaf, seed, node * 2 + 1, out);
        rp_leaves(x, dim, right, leaf, seed, node * 2 + 2, out);
    }
}

/// Rows ahead that a split starts loading.
const PREFETCH_AHEAD: usize = 4;

/// Nodes at least this big split their two halves in parallel (the leaves come out in the
/// same order either way).
pub(super) const PARALLEL_SPLIT: usize = 16_384;
