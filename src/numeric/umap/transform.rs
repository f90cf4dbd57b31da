//! Placing a new point into a fitted layout, with umap-learn's `transform` semantics: its
//! membership strengths to its nearest fitted points (`smooth_knn_dist` with
//! `local_connectivity - 1`, so ρ = 0), a start at the strength-weighted mean of their
//! positions (exactly a fitted point's position where a strength is 1), then the layout
//! SGD with the fitted points fixed: each edge pulls only the new point, negative samples
//! (fitted points drawn uniformly) push it, the learning rate starts at a quarter of the
//! fit's and decays linearly; edges weaker than `1 / n_epochs` are dropped.
//!
//! **Where this differs from umap-learn, on purpose.** umap-learn's answer for a point
//! depends on the rest of its batch (umap #158, #386, #950): the epoch count (100 up to
//! 10,000 rows, else 30), the weakest edge kept and each edge's sampling period (both
//! relative to the batch's strongest edge) and σ's floor (the batch's mean distance). Here
//! each is the point's own: `n_epochs` is a parameter, strengths are taken relative to 1
//! (the strongest an edge can be, and what a large batch's strongest edge is), σ's floor
//! is the point's own mean distance, and the negative samples come from a stream of the
//! point's own. So a point's position depends only on itself and the fitted layout.

use super::sigma_rho;
use crate::numeric::rng::Rng;

/// The coefficient of an edge's pull at squared distance `d2` (umap-learn's attractive
/// gradient), or `None` where the ends coincide. The fit's SGD computes the same gradients
/// lane-wise, with its own `d2^b` (`sgd::pow_lanes`).
#[inline(always)]
fn attraction(a: f32, b: f32, d2: f32) -> Option<f32> {
    (d2 > 0.0).then(|| {
        let pb = (b * d2.ln()).exp();
        -2.0 * a * b * (pb / d2) / (a * pb + 1.0)
    })
}

/// The coefficient of a negative sample's push at squared distance `d2`.
#[inline(always)]
fn repulsion(a: f32, b: f32, d2: f32) -> Option<f32> {
    (d2 > 0.0).then(|| {
        let pb = (b * d2.ln()).exp();
        2.0 * b / ((0.001 + d2) * (a * pb + 1.0))
    })
}

/// What places new points.
#[derive(Clone, Copy, Debug)]
pub struct Transform {
    pub a: f32,
    pub b: f32,
    pub n_epochs: usize,
    /// The fit's learning rate (the transform starts at a quarter of it).
    pub learning_rate: f64,
    pub negative_sample_rate: f64,
    /// The fit's `local_connectivity` (the transform uses one less, at least 0).
    pub local_connectivity: f64,
}

/// Membership strengths of a new point's edges to its fitted neighbours (`dist`, ascending,
/// in the metric's units).
pub fn strengths(dist: &[f32], local_connectivity: f64) -> Vec<f32> {
    let row: Vec<f64> = dist.iter().map(|&d| d as f64).collect();
    let mean = row.iter().sum::<f64>() / row.len().max(1) as f64;
    let (sigma, rho) = sigma_rho(
        &row,
        (row.len() as f64).log2(),
        (local_connectivity - 1.0).max(0.0),
        mean,
    );
    row.iter()
        .map(|&d| {
            let x = d - rho;
            if x <= 0.0 || sigma == 0.0 {
                1.0
            } else {
                (-(x / sigma)).exp() as f32
            }
        })
        .collect()
}

/// The start of a new point: the strength-weighted mean of its neighbours' positions, or a
/// neighbour's position exactly where its strength is 1 (the first such).
pub fn initial(nbr: &[u32], w: &[f32], fitted: &[f32], dim: usize) -> Vec<f32> {
    let mut out = vec![0f32; dim];
    let total: f32 = w.iter().sum();
    for (&j, &wj) in nbr.iter().zip(w) {
        let p = &fitted[j as usize * dim..(j as usize + 1) * dim];
        if wj == 1.0 {
            out.copy_from_slice(p);
            return out;
        }
        for (o, &v) in out.iter_mut().zip(p) {
            *o += wj / total * v;
        }
    }
    out
}

/// Optimise one new point `pos` against the fixed `fitted` layout (`n_fitted` rows, `dim`
/// wide) along its edges `nbr`/`w` (by fitted index), negative samples from `rng`.
pub fn optimise_point(
    pos: &mut [f32],
    nbr: &[u32],
    w: &[f32],
    fitted: &[f32],
    dim: usize,
    t: &Transform,
    rng: &mut Rng,
) {
    let n_fitted = (fitted.len() / dim) as u64;
    let min = 1.0 / t.n_epochs as f32;
    let edges: Vec<(u32, f64)> = nbr
        .iter()
        .zip(w)
        .filter(|(_, &w)| w >= min && w > 0.0)
        .map(|(&j, &w)| (j, 1.0 / w as f64))
        .collect();
    let eps_neg: Vec<f64> = edges.iter().map(|e| e.1 / t.negative_sample_rate).collect();
    let mut next: Vec<f64> = edges.iter().map(|e| e.1).collect();
    let mut next_neg = eps_neg.clone();
    let alpha0 = t.learning_rate / 4.0;
    for epoch in 0..t.n_epochs {
        let ep = epoch as f64;
        let alpha = (alpha0 * (1.0 - ep / t.n_epochs as f64)) as f32;
        for (e, &(j, eps)) in edges.iter().enumerate() {
            if next[e] > ep {
                continue;
            }
            let other = &fitted[j as usize * dim..(j as usize + 1) * dim];
            if let Some(co) = attraction(t.a, t.b, crate::numeric::distance::dist2(pos, other)) {
                for (x, &y) in pos.iter_mut().zip(other) {
                    *x += (co * (*x - y)).clamp(-4.0, 4.0) * alpha;
                }
            }
            next[e] += eps;
            let due = if t.negative_sample_rate > 0.0 {
                ((ep - next_neg[e]) / eps_neg[e]).max(0.0) as usize
            } else {
                0
            };
            for _ in 0..due {
                let q = rng.below(n_fitted) as usize;
                let o = &fitted[q * dim..(q + 1) * dim];
                if let Some(co) = repulsion(t.a, t.b, crate::numeric::distance::dist2(pos, o)) {
                    for (x, &y) in pos.iter_mut().zip(o) {
                        *x += (co * (*x - y)).clamp(-4.0, 4.0) * alpha;
                    }
                }
            }
            next_neg[e] += due as f64 * eps_neg[e];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strengths_are_one_at_the_nearest_duplicate_and_decay() {
        let w = strengths(&[0.0, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0], 1.0);
        assert_eq!(w[0], 1.0);
        assert!(w.windows(2).all(|p| p[0] >= p[1]), "{w:?}");
        // σ is calibrated on the neighbours after the first, as umap-learn does.
        let sum: f32 = w[1..].iter().sum();
        assert!((sum - 3.0).abs() < 1e-3, "{sum}");
    }

    #[test]
    fn a_point_starts_on_its_duplicate_and_stays_with_its_neighbours() {
        // Two groups of fitted points, around (0, 0) and (10, 0).
        let mut r = Rng::new(7, 0);
        let fitted: Vec<f32> = (0..200)
            .flat_map(|i| {
                [
                    if i < 100 { 0.0 } else { 10.0 } + 0.5 * r.normal() as f32,
                    0.5 * r.normal() as f32,
                ]
            })
            .collect();
        // A duplicate of fitted point 55 starts exactly there.
        let nbr = [55u32, 54, 56, 35, 75];
        let w = strengths(&[0.0, 0.1, 0.1, 0.1, 0.1], 1.0);
        assert_eq!(initial(&nbr, &w, &fitted, 2), fitted[110..112].to_vec());
        // A point among the first group starts at its neighbours' weighted mean, and the
        // SGD keeps it with them.
        let nbr: Vec<u32> = (10..25).collect();
        let dist: Vec<f32> = (0..15).map(|i| 0.2 + 0.05 * i as f32).collect();
        let w = strengths(&dist, 1.0);
        let mut p = initial(&nbr, &w, &fitted, 2);
        let t = Transform {
            a: 1.577,
            b: 0.895,
            n_epochs: 30,
            learning_rate: 1.0,
            negative_sample_rate: 5.0,
            local_connectivity: 1.0,
        };
        optimise_point(&mut p, &nbr, &w, &fitted, 2, &t, &mut Rng::new(0, 1));
        assert!(p[0].hypot(p[1]) < 2.0, "{p:?}");
        // The same stream gives the same bits.
        let mut q = initial(&nbr, &w, &fitted, 2);
        optimise_point(&mut q, &nbr, &w, &fitted, 2, &t, &mut Rng::new(0, 1));
        assert_eq!(p, q);
    }
}
