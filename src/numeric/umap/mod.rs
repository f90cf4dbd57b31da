//! UMAP (McInnes, Healy & Melville 2018) with umap-learn's semantics, written anew: the
//! fuzzy simplicial set of a kNN graph (`smooth_knn_dist`, membership strengths, fuzzy
//! union), the `a`, `b` curve from `min_dist` and `spread`, a spectral initialisation and
//! stochastic gradient descent with per-edge epoch sampling, negative sampling, gradient
//! clipping at 4 and a linearly decaying learning rate.
//!
//! The parts, one file each: this one builds the graph (`smooth_knn_dist`, the fuzzy
//! union, the `a`, `b` fit, the locality relabelling) and measures layouts
//! (trustworthiness); [`spectral`] is the initialisation (the normalised Laplacian's
//! eigenvectors to a residual tolerance, components laid out apart); [`sgd`] is the
//! optimisation. Each says where it differs from umap-learn on purpose (determinism,
//! speed) and why the answer is the same: the same density structure, measured by
//! HDBSCAN's leaf classes on both layouts (`benches/compare_umap.py`).
//!
//! **Determinism.** Bit-identical layouts for any number of threads: the eigensolver sums
//! fixed blocks in order; the SGD runs fixed chunks that move only their own points, with
//! a random stream per (epoch, edge). (umap-learn is reproducible only single-threaded.)
//!
//! **Locality.** The caller can run the whole layout on rows in a locality order
//! ([`permute_knn`], [`unpermute_rows`]) so that the neighbours' rows the eigensolver and
//! the attraction gather sit close by in memory; the big arrays ask for huge pages
//! ([`crate::numeric::pages`]).

use std::sync::atomic::{AtomicU32, Ordering};

use rayon::prelude::*;

use super::rng::splitmix64;
#[cfg(test)]
use super::rng::Rng;

pub mod densmap;
mod pow;
pub mod sgd;
pub mod spectral;
pub mod transform;

pub use sgd::{epochs_per_sample, optimize, optimize_dens, optimize_joint, Sgd};
pub use spectral::spectral_init;

const SMOOTH_K_TOLERANCE: f64 = 1e-5;
const MIN_K_DIST_SCALE: f64 = 1e-3;

/// σ and ρ per point from its neighbour distances (`k` per point, the point itself first at
/// distance 0), so that `Σ_j exp(-(d_j - ρ)/σ) = log2(k)` over the other neighbours.
pub fn smooth_knn_dist(
    distances: &[f32],
    k: usize,
    local_connectivity: f64,
) -> (Vec<f64>, Vec<f64>) {
    let target = (k as f64).log2();
    let mean_all: f64 =
        distances.iter().map(|&d| d as f64).sum::<f64>() / distances.len().max(1) as f64;
    let rows: Vec<(f64, f64)> = distances
        .par_chunks(k)
        .map(|row| {
            let row: Vec<f64> = row.iter().map(|&d| d as f64).collect();
            sigma_rho(&row, target, local_connectivity, mean_all)
        })
        .collect();
    rows.into_iter().unzip()
}

/// σ and ρ of one row of neighbour distances (ascending; the first is skipped in the sum,
/// as umap-learn does, where it is the point itself). `mean_all` sets σ's floor where ρ
/// is 0.
pub(crate) fn sigma_rho(
    row: &[f64],
    target: f64,
    local_connectivity: f64,
    mean_all: f64,
) -> (f64, f64) {
    let non_zero: Vec<f64> = row.iter().copied().filter(|&d| d > 0.0).collect();
    let mut rho = 0.0;
    if non_zero.len() as f64 >= local_connectivity {
        let index = local_connectivity.floor() as usize;
        let interp = local_connectivity - index as f64;
        if index > 0 {
            rho = non_zero[index - 1];
            if interp > SMOOTH_K_TOLERANCE {
                rho += interp * (non_zero[index] - non_zero[index - 1]);
            }
        } else if let Some(&first) = non_zero.first() {
            rho = interp * first;
        }
    } else if !non_zero.is_empty() {
        rho = non_zero.iter().copied().fold(0.0, f64::max);
    }
    let (mut lo, mut hi, mut mid) = (0.0f64, f64::INFINITY, 1.0f64);
    for _ in 0..64 {
        let mut psum = 0.0;
        for &d in &row[1..] {
            let x = d - rho;
            psum += if x > 0.0 { (-(x / mid)).exp() } else { 1.0 };
        }
        if (psum - target).abs() < SMOOTH_K_TOLERANCE {
            break;
        }
        if psum > target {
            hi = mid;
            mid = (lo + hi) / 2.0;
        } else {
            lo = mid;
            mid = if hi == f64::INFINITY {
                mid * 2.0
            } else {
                (lo + hi) / 2.0
            };
        }
    }
    let mean_row = row.iter().sum::<f64>() / row.len() as f64;
    let floor = MIN_K_DIST_SCALE * if rho > 0.0 { mean_row } else { mean_all };
    (mid.max(floor), rho)
}

/// A symmetric weighted graph as edge lists (both directions of each edge present),
/// sorted by head, and within a head by tail (or by [`Graph::order_tails_by`]'s keys).
#[derive(Clone, Debug, PartialEq)]
pub struct Graph {
    pub n: usize,
    pub head: Vec<u32>,
    pub tail: Vec<u32>,
    pub weight: Vec<f32>,
}

impl Graph {
    /// Reorder each head's edges by `key[tail]` (ties by tail). The layout moves a point
    /// along its edges one after another, so that order must not follow the neighbours'
    /// positions: in a locality order, by-tail order sweeps each neighbourhood the same way
    /// every epoch and costs 0.005–0.01 of trustworthiness (measured at 100k and 425k).
    pub fn order_tails_by(&mut self, key: &[u32]) {
        let start = row_starts(self);
        let tails = split_at_starts(&mut self.tail, &start);
        let weights = split_at_starts(&mut self.weight, &start);
        tails
            .into_par_iter()
            .zip(weights)
            .for_each_init(Vec::new, |es, (ts, ws)| {
                es.clear();
                es.extend(
                    ts.iter()
                        .zip(ws.iter())
                        .map(|(&t, &w)| (key[t as usize], t, w)),
                );
                es.sort_unstable_by_key(|x: &(u32, u32, f32)| (x.0, x.1));
                for (e, x) in es.iter().enumerate() {
                    ts[e] = x.1;
                    ws[e] = x.2;
                }
            });
    }

    /// Drop edges too weak to be sampled once in `n_epochs` (below `max weight / n_epochs`),
    /// as umap-learn does before optimising.
    pub fn drop_weak(&mut self, n_epochs: usize) {
        let min = self.weight.iter().copied().fold(0f32, f32::max) / n_epochs as f32;
        let keep: Vec<bool> = self.weight.iter().map(|&w| w >= min).collect();
        let mut k = keep.iter();
        self.head.retain(|_| *k.next().expect("one flag per edge"));
        let mut k = keep.iter();
        self.tail.retain(|_| *k.next().expect("one flag per edge"));
        self.weight.retain(|&w| w >= min);
    }
}

/// The fuzzy union `A + Aᵀ − A∘Aᵀ` of the membership strengths of a kNN graph whose rows
/// start with the point itself.
///
/// Each point's out-edges (its row, by tail) are merged with its in-edges (the transpose,
/// built by a counting pass and sorted per point): no sort of all edges, and every step
/// runs in parallel.
pub fn fuzzy_simplicial_set(
    indices: &[u32],
    distances: &[f32],
    k: usize,
    local_connectivity: f64,
) -> Graph {
    let n = indices.len() / k;
    let t = std::time::Instant::now();
    let (sigma, rho) = smooth_knn_dist(distances, k, local_connectivity);
    tracing::debug!(
        secs = t.elapsed().as_secs_f64(),
        "umap graph: sigma and rho"
    );
    // Directed strengths w(i → j) > 0, j != i: each row sorted by tail.
    let rows: Vec<Vec<(u32, f64)>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut row: Vec<(u32, f64)> = (0..k)
                .filter_map(|s| {
                    let j = indices[i * k + s];
                    if j as usize == i {
                        return None;
                    }
                    let d = distances[i * k + s] as f64 - rho[i];
                    let w = if d <= 0.0 || sigma[i] == 0.0 {
                        1.0
                    } else {
                        (-(d / sigma[i])).exp()
                    };
                    (w > 0.0).then_some((j, w))
                })
                .collect();
            row.sort_unstable_by_key(|e| e.0);
            row
        })
        .collect();
    // The transpose: each j's in-edges (i, w(i → j)), counted and placed in parallel, then
    // each j's sorted by i, so their order does not depend on the threads.
    let counts: Vec<AtomicU32> = (0..n).map(|_| AtomicU32::new(0)).collect();
    rows.par_iter().for_each(|row| {
        for &(j, _) in row {
            counts[j as usize].fetch_add(1, Ordering::Relaxed);
        }
    });
    // Offsets from the counts, which are reset to serve as each j's fill cursor.
    let mut in_start = vec![0usize; n + 1];
    for j in 0..n {
        in_start[j + 1] = in_start[j] + counts[j].swap(0, Ordering::Relaxed) as usize;
    }
    let mut incoming = vec![(0u32, 0f64); in_start[n]];
    crate::numeric::pages::hint_huge(&incoming);
    let out = Disjoint(incoming.as_mut_ptr());
    rows.par_iter().enumerate().for_each(|(i, row)| {
        for &(j, w) in row {
            let at =
                in_start[j as usize] + counts[j as usize].fetch_add(1, Ordering::Relaxed) as usize;
            // SAFETY: `at` is below `in_start[j + 1] <= incoming.len()` (j has that many
            // in-edges), and the counter hands each slot to exactly one writer.
            unsafe { out.write(at, (i as u32, w)) };
        }
    });
    drop(counts);
    tracing::debug!(
        secs = t.elapsed().as_secs_f64(),
        "umap graph: strengths and transpose"
    );
    split_at_starts(&mut incoming, &in_start)
        .into_par_iter()
        .for_each(|inc| inc.sort_unstable_by_key(|e| e.0));
    // Merge each head's out- and in-edges by tail; a missing direction has strength 0.
    let merged: Vec<Vec<(u32, f32)>> = (0..n)
        .into_par_iter()
        .map(|h| {
            let (out, inc) = (&rows[h], &incoming[in_start[h]..in_start[h + 1]]);
            let mut m = Vec::with_capacity(out.len() + inc.len());
            let (mut a, mut b) = (0, 0);
            while a < out.len() || b < inc.len() {
                let ta = out.get(a).map_or(u32::MAX, |e| e.0);
                let tb = inc.get(b).map_or(u32::MAX, |e| e.0);
                let t = ta.min(tb);
                let fwd = if ta == t {
                    a += 1;
                    out[a - 1].1
                } else {
                    0.0
                };
                let back = if tb == t {
                    b += 1;
                    inc[b - 1].1
                } else {
                    0.0
                };
                // Symmetric in (fwd, back) to the bit, so w(h, t) == w(t, h).
                let w = fwd + back - fwd * back;
                if w > 0.0 {
                    m.push((t, w as f32));
                }
            }
            m
        })
        .collect();
    tracing::debug!(secs = t.elapsed().as_secs_f64(), "umap graph: merged");
    let mut start = vec![0usize; n + 1];
    for (h, m) in merged.iter().enumerate() {
        start[h + 1] = start[h] + m.len();
    }
    let total = start[n];
    // Huge pages (the layout streams these every epoch), asked for before they are filled.
    let mut g = Graph {
        n,
        head: crate::numeric::pages::zeroed(total),
        tail: crate::numeric::pages::zeroed(total),
        weight: crate::numeric::pages::zeroed(total),
    };
    let heads = split_at_starts(&mut g.head, &start);
    let tails = split_at_starts(&mut g.tail, &start);
    let weights = split_at_starts(&mut g.weight, &start);
    heads
        .into_par_iter()
        .zip(tails)
        .zip(weights)
        .zip(&merged)
        .enumerate()
        .for_each(|(h, (((hs, ts), ws), m))| {
            for (e, &(t, w)) in m.iter().enumerate() {
                hs[e] = h as u32;
                ts[e] = t;
                ws[e] = w;
            }
        });
    g
}

/// A pointer that threads write through at slots no other thread writes.
struct Disjoint<T>(*mut T);
// SAFETY: writers use distinct slots (the caller's contract in `write`).
unsafe impl<T: Send> Sync for Disjoint<T> {}

impl<T> Disjoint<T> {
    /// # Safety
    /// `at` is in bounds of the allocation, and no other thread reads or writes slot `at`
    /// meanwhile.
    unsafe fn write(&self, at: usize, v: T) {
        unsafe { self.0.add(at).write(v) };
    }
}

/// `v` cut at `start` (ascending offsets from 0 to `v.len()`): piece `i` is
/// `v[start[i]..start[i + 1]]`.
pub(crate) fn split_at_starts<'a, T>(mut v: &'a mut [T], start: &[usize]) -> Vec<&'a mut [T]> {
    let mut parts = Vec::with_capacity(start.len().saturating_sub(1));
    for w in start.windows(2) {
        let (x, y) = v.split_at_mut(w[1] - w[0]);
        parts.push(x);
        v = y;
    }
    parts
}

/// Fit `1 / (1 + a x^(2b))` to the target curve of `min_dist` and `spread` by
/// Levenberg–Marquardt on 300 points of `[0, 3·spread]`, as umap-learn does with scipy.
pub fn find_ab(spread: f64, min_dist: f64) -> (f64, f64) {
    let xs: Vec<f64> = (0..300).map(|i| 3.0 * spread * i as f64 / 299.0).collect();
    let ys: Vec<f64> = xs
        .iter()
        .map(|&x| {
            if x < min_dist {
                1.0
            } else {
                (-(x - min_dist) / spread).exp()
            }
        })
        .collect();
    let f = |a: f64, b: f64, x: f64| 1.0 / (1.0 + a * x.powf(2.0 * b));
    let cost = |a: f64, b: f64| {
        xs.iter()
            .zip(&ys)
            .map(|(&x, &y)| (f(a, b, x) - y).powi(2))
            .sum::<f64>()
    };
    let (mut a, mut b, mut lambda) = (1.0f64, 1.0f64, 1e-3f64);
    let mut c = cost(a, b);
    for _ in 0..500 {
        // Jacobian of the residuals.
        let (mut jtj, mut jtr) = ([[0.0f64; 2]; 2], [0.0f64; 2]);
        for (&x, &y) in xs.iter().zip(&ys) {
            let xp = if x > 0.0 { x.powf(2.0 * b) } else { 0.0 };
            let den = 1.0 + a * xp;
            let r = 1.0 / den - y;
            let da = -xp / (den * den);
            let db = if x > 0.0 {
                -a * xp * 2.0 * x.ln() / (den * den)
            } else {
                0.0
            };
            let g = [da, db];
            for p in 0..2 {
                jtr[p] += g[p] * r;
                for q in 0..2 {
                    jtj[p][q] += g[p] * g[q];
                }
            }
        }
        let m = [
            [jtj[0][0] * (1.0 + lambda), jtj[0][1]],
            [jtj[1][0], jtj[1][1] * (1.0 + lambda)],
        ];
        let det = m[0][0] * m[1][1] - m[0][1] * m[1][0];
        if det.abs() < 1e-300 {
            break;
        }
        let step = [
            (m[1][1] * jtr[0] - m[0][1] * jtr[1]) / det,
            (m[0][0] * jtr[1] - m[1][0] * jtr[0]) / det,
        ];
        let (na, nb) = (a - step[0], b - step[1]);
        let nc = if na > 0.0 && nb > 0.0 {
            cost(na, nb)
        } else {
            f64::INFINITY
        };
        if nc < c {
            let done = (c - nc) < 1e-15 * c.max(1e-300);
            a = na;
            b = nb;
            c = nc;
            lambda *= 0.3;
            if done {
                break;
            }
        } else {
            lambda *= 10.0;
            if lambda > 1e12 {
                break;
            }
        }
    }
    (a, b)
}

/// Row offsets of the head-sorted edges: point i's edges are `start[i]..start[i + 1]`.
pub(crate) fn row_starts(g: &Graph) -> Vec<usize> {
    let n = g.n;
    let mut start = vec![0usize; n + 1];
    for &h in &g.head {
        start[h as usize + 1] += 1;
    }
    for i in 0..n {
        start[i + 1] += start[i];
    }
    start
}

/// Trustworthiness (Venna & Kaski; scikit-learn's definition) of `low` for `high` with
/// `k` neighbours, by brute force: for small samples.
pub fn trustworthiness(high: &[f32], hd: usize, low: &[f32], ld: usize, k: usize) -> f64 {
    let n = high.len() / hd;
    let ranks_high: Vec<Vec<u32>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut o: Vec<(f32, u32)> = (0..n)
                .filter(|&j| j != i)
                .map(|j| {
                    (
                        crate::numeric::distance::sqdist(
                            &high[i * hd..(i + 1) * hd],
                            &high[j * hd..(j + 1) * hd],
                        ),
                        j as u32,
                    )
                })
                .collect();
            o.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let mut rank = vec![0u32; n];
            for (r, &(_, j)) in o.iter().enumerate() {
                rank[j as usize] = r as u32 + 1;
            }
            rank
        })
        .collect();
    let penalty: f64 = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut o: Vec<(f32, u32)> = (0..n)
                .filter(|&j| j != i)
                .map(|j| {
                    (
                        crate::numeric::distance::sqdist(
                            &low[i * ld..(i + 1) * ld],
                            &low[j * ld..(j + 1) * ld],
                        ),
                        j as u32,
                    )
                })
                .collect();
            o.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            o[..k]
                .iter()
                .map(|&(_, j)| (ranks_high[i][j as usize] as f64 - k as f64).max(0.0))
                .sum::<f64>()
        })
        .sum();
    1.0 - 2.0 / (n as f64 * k as f64 * (2.0 * n as f64 - 3.0 * k as f64 - 1.0)) * penalty
}

/// Relabel a kNN table (`k` per row): row `i` moves to row `rank[i]` and every neighbour
/// `j` becomes `rank[j]`. The layout runs on rows in a locality order (neighbours close in
/// memory) and is moved back with [`unpermute_rows`].
pub fn permute_knn(
    indices: &[u32],
    distances: &[f32],
    k: usize,
    rank: &[u32],
) -> (Vec<u32>, Vec<f32>) {
    // Row `r` of the result is input row `order[r]`, written in parallel by rows.
    let mut order = vec![0u32; rank.len()];
    for (i, &r) in rank.iter().enumerate() {
        order[r as usize] = i as u32;
    }
    let mut idx = vec![0u32; indices.len()];
    let mut dist = vec![0f32; distances.len()];
    idx.par_chunks_mut(k.max(1))
        .zip(dist.par_chunks_mut(k.max(1)))
        .zip(&order)
        .for_each(|((ir, dr), &i)| {
            let i = i as usize;
            for (s, (x, d)) in ir.iter_mut().zip(dr.iter_mut()).enumerate() {
                *x = rank[indices[i * k + s] as usize];
                *d = distances[i * k + s];
            }
        });
    (idx, dist)
}

/// Sort keys for [`Graph::order_tails_by`] after [`permute_knn`] with `rank`: a hash of
/// each row's original index, so a point's edges come in an order unrelated to where its
/// neighbours are (neither the locality order nor the input's order, which may be sorted
/// by some property of the galaxies).
pub fn scrambled_keys(rank: &[u32]) -> Vec<u32> {
    let mut key = vec![0u32; rank.len()];
    for (i, &r) in rank.iter().enumerate() {
        let mut st = i as u64 ^ 0x5851_F42D_4C95_7F2D;
        key[r as usize] = (splitmix64(&mut st) >> 32) as u32;
    }
    key
}

/// Rows of `dim` values back from the order of [`permute_knn`]: row `i` of the result is
/// row `rank[i]` of `x`.
pub fn unpermute_rows(x: &[f32], dim: usize, rank: &[u32]) -> Vec<f32> {
    rank.iter()
        .flat_map(|&r| &x[r as usize * dim..(r as usize + 1) * dim])
        .copied()
        .collect()
}

/// Add the point itself as each row's first neighbour (umap-learn's kNN convention): from
/// rows of `k` other neighbours to rows of `k + 1`.
pub fn with_self(indices: &[u32], distances: &[f32], k: usize) -> (Vec<u32>, Vec<f32>, usize) {
    let n = indices.len() / k;
    let mut idx = vec![0u32; n * (k + 1)];
    let mut dist = vec![0f32; n * (k + 1)];
    idx.par_chunks_mut(k + 1)
        .zip(dist.par_chunks_mut(k + 1))
        .enumerate()
        .for_each(|(i, (ir, dr))| {
            ir[0] = i as u32;
            dr[0] = 0.0;
            ir[1..].copy_from_slice(&indices[i * k..(i + 1) * k]);
            dr[1..].copy_from_slice(&distances[i * k..(i + 1) * k]);
        });
    (idx, dist, k + 1)
}

#[cfg(test)]
mod tests {
    use super::sgd::optimize_any;
    use super::spectral::{cross, orthonormalise};
    use super::*;
    use crate::numeric::nndescent;

    #[test]
    fn ab_matches_umap_learn_defaults() {
        // umap-learn: find_ab_params(1.0, 0.1) = (1.5769..., 0.8950...).
        let (a, b) = find_ab(1.0, 0.1);
        assert!(
            (a - 1.577).abs() < 0.01 && (b - 0.895).abs() < 0.005,
            "a={a} b={b}"
        );
        let (a, b) = find_ab(1.0, 0.5);
        assert!(a > 0.0 && b > 0.0 && a < 1.577);
    }

    #[test]
    fn sigmas_hit_the_target_sum() {
        let mut r = Rng::new(1, 0);
        let k = 10;
        let mut d: Vec<f32> = Vec::new();
        for _ in 0..50 {
            let mut row: Vec<f32> = (0..k - 1).map(|_| (0.1 + r.uniform()) as f32).collect();
            row.sort_by(f32::total_cmp);
            d.push(0.0);
            d.extend(row);
        }
        let (sigma, rho) = smooth_knn_dist(&d, k, 1.0);
        for i in 0..50 {
            let row = &d[i * k..(i + 1) * k];
            assert_eq!(
                rho[i], row[1] as f64,
                "rho is the nearest non-zero distance"
            );
            let s: f64 = row[1..]
                .iter()
                .map(|&x| {
                    let y = x as f64 - rho[i];
                    if y > 0.0 {
                        (-y / sigma[i]).exp()
                    } else {
                        1.0
                    }
                })
                .sum();
            assert!((s - (k as f64).log2()).abs() < 1e-3, "row {i}: {s}");
        }
    }

    fn blobs(n: usize, dim: usize) -> Vec<f32> {
        let mut r = Rng::new(4, 0);
        let centres: Vec<Vec<f64>> = (0..6)
            .map(|_| (0..dim).map(|_| r.normal() * 4.0).collect())
            .collect();
        (0..n)
            .flat_map(|i| {
                let c = &centres[i % 6];
                (0..dim)
                    .map(|d| (c[d] + r.normal()) as f32)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Seeded blobs, their exact kNN graph and its fuzzy union.
    fn blob_graph(n: usize, dim: usize, k: usize) -> (nndescent::KnnGraph, Graph) {
        let knn = nndescent::brute_force(&blobs(n, dim), dim, k);
        let (idx, dist, kk) = with_self(&knn.indices, &knn.distances, knn.k);
        let g = fuzzy_simplicial_set(&idx, &dist, kk, 1.0);
        (knn, g)
    }

    fn no_meta(_: &[u32], count: usize) -> Vec<f64> {
        vec![0.0; count * 2]
    }

    fn layout(x: &[f32], dim: usize, nn: usize, seed: u64) -> Vec<f32> {
        let knn = nndescent::brute_force(x, dim, nn - 1);
        let (idx, dist, k) = with_self(&knn.indices, &knn.distances, knn.k);
        let g = fuzzy_simplicial_set(&idx, &dist, k, 1.0);
        let (mut emb, _) = spectral_init(&g, 2, seed, no_meta);
        let (a, b) = find_ab(1.0, 0.1);
        optimize(
            &mut emb,
            2,
            &g,
            &Sgd {
                a,
                b,
                n_epochs: 200,
                learning_rate: 1.0,
                negative_sample_rate: 5.0,
                seed,
            },
            |_| {},
        );
        emb
    }

    #[test]
    fn specialised_and_generic_kernels_agree() {
        let (_, g) = blob_graph(1500, 8, 9);
        let (init, _) = spectral_init(&g, 5, 1, no_meta);
        let (a, b) = find_ab(1.0, 0.1);
        let sgd = Sgd {
            a,
            b,
            n_epochs: 50,
            learning_rate: 1.0,
            negative_sample_rate: 5.0,
            seed: 4,
        };
        let (mut d, mut any) = (init.clone(), init);
        optimize(&mut d, 5, &g, &sgd, |_| {});
        optimize_any(&mut any, 5, &g, &sgd, |_| {});
        assert_eq!(
            d, any,
            "the kernel compiled for 5 dimensions is the generic one, faster"
        );
    }

    /// Layouts of one graph optimised together get the bits each gets alone, for every
    /// build of the joint kernel (compiled pair, compiled total width, any width) and both
    /// instruction sets; and joint runs are not all the same run (the layouts move apart).
    #[test]
    fn layouts_optimised_together_get_the_bits_each_gets_alone() {
        let (_, g) = blob_graph(1500, 8, 9);
        let (a, b) = find_ab(1.0, 0.1);
        let sgd = Sgd {
            a,
            b,
            n_epochs: 30,
            learning_rate: 1.0,
            negative_sample_rate: 5.0,
            seed: 4,
        };
        let sets: [&[usize]; 6] = [
            &[5, 2],
            &[10, 2],
            &[2, 5, 10],
            &[2, 5, 10, 2],
            &[2, 3],
            &[1, 2, 1, 3, 2, 1, 4, 2],
        ];
        let builds: &[bool] = if crate::numeric::distance::avx2() {
            &[true, false]
        } else {
            &[false]
        };
        for dims in sets {
            // Random starts of each width (a joint layout's init is its own).
            let inits: Vec<Vec<f32>> = dims
                .iter()
                .enumerate()
                .map(|(i, &d)| {
                    let mut r = crate::numeric::rng::Rng::new(i as u64, 7);
                    (0..g.n * d).map(|_| r.range(0.0, 10.0) as f32).collect()
                })
                .collect();
            for &wide in builds {
                let alone: Vec<Vec<f32>> = inits
                    .iter()
                    .zip(dims.iter())
                    .map(|(init, &d)| {
                        let mut e = init.clone();
                        sgd::optimize_on(&mut e, d, &g, &sgd, None, wide, |_| {});
                        e
                    })
                    .collect();
                let mut joint = inits.clone();
                let mut epochs = 0;
                let mut embs: Vec<&mut [f32]> = joint.iter_mut().map(|e| &mut e[..]).collect();
                sgd::optimize_joint_on(&mut embs, dims, &g, &sgd, wide, |_| epochs += 1);
                assert_eq!(epochs, 30);
                for (i, ((j, a), init)) in joint.iter().zip(&alone).zip(&inits).enumerate() {
                    assert_ne!(a, init, "{dims:?}: layout {i} moved");
                    assert!(
                        j == a,
                        "{dims:?} (AVX2 {wide}): layout {i} ({}-D) differs from its run alone",
                        dims[i]
                    );
                }
            }
        }
    }

    #[test]
    fn avx2_and_baseline_kernels_give_the_same_bits() {
        if !crate::numeric::distance::tests::both_builds(
            "avx2_and_baseline_kernels_give_the_same_bits",
        ) {
            return;
        }
        let (_, g) = blob_graph(1500, 8, 9);
        let (a, b) = find_ab(1.0, 0.1);
        let sgd = Sgd {
            a,
            b,
            n_epochs: 50,
            learning_rate: 1.0,
            negative_sample_rate: 5.0,
            seed: 4,
        };
        for dim in [2, 5, 11] {
            let (init, _) = spectral_init(&g, dim, 1, no_meta);
            let (mut wide, mut base) = (init.clone(), init.clone());
            sgd::optimize_on(&mut wide, dim, &g, &sgd, None, true, |_| {});
            sgd::optimize_on(&mut base, dim, &g, &sgd, None, false, |_| {});
            assert_ne!(wide, init, "the layout moved");
            assert_eq!(wide, base, "{dim}-D: AVX2 and baseline differ");
        }
    }

    /// The fuzzy union by brute force: a map from each ordered pair to its two directed
    /// strengths.
    fn fuzzy_union_brute(indices: &[u32], distances: &[f32], k: usize) -> Graph {
        let n = indices.len() / k;
        let (sigma, rho) = smooth_knn_dist(distances, k, 1.0);
        let mut dir = std::collections::BTreeMap::new();
        for i in 0..n {
            for s in 0..k {
                let j = indices[i * k + s] as usize;
                let d = distances[i * k + s] as f64 - rho[i];
                let w = if d <= 0.0 || sigma[i] == 0.0 {
                    1.0
                } else {
                    (-(d / sigma[i])).exp()
                };
                if j != i && w > 0.0 {
                    dir.insert((i, j), w);
                }
            }
        }
        let mut pairs = std::collections::BTreeMap::new();
        for &(i, j) in dir.keys() {
            let (a, b) = (
                dir.get(&(i, j)).copied().unwrap_or(0.0),
                dir.get(&(j, i)).copied().unwrap_or(0.0),
            );
            // The same expression for both orders: the union is symmetric.
            let (lo, hi) = if i < j { (a, b) } else { (b, a) };
            let w = lo + hi - lo * hi;
            pairs.insert((i, j), w as f32);
            pairs.insert((j, i), w as f32);
        }
        let mut g = Graph {
            n,
            head: vec![],
            tail: vec![],
            weight: vec![],
        };
        for ((h, t), w) in pairs {
            g.head.push(h as u32);
            g.tail.push(t as u32);
            g.weight.push(w);
        }
        g
    }

    #[test]
    fn fuzzy_union_matches_brute_force() {
        for (n, dim, k) in [(300, 8, 10), (1000, 4, 16)] {
            let mut x = blobs(n, dim);
            // Duplicated rows: zero distances and ties.
            for i in 0..40 {
                let (a, b) = x.split_at_mut(dim * 100);
                b[i * dim..(i + 1) * dim].copy_from_slice(&a[..dim]);
            }
            let knn = nndescent::brute_force(&x, dim, k - 1);
            let (idx, dist, kk) = with_self(&knn.indices, &knn.distances, knn.k);
            assert_eq!(
                fuzzy_simplicial_set(&idx, &dist, kk, 1.0),
                fuzzy_union_brute(&idx, &dist, kk),
                "n={n} k={k}"
            );
        }
    }

    #[test]
    fn orthonormalise_gives_orthonormal_columns_and_survives_rank_deficiency() {
        let mut r = Rng::new(2, 0);
        for (n, m) in [(20_000, 6), (3, 6)] {
            // Correlated columns: each is the previous one plus a little noise.
            let mut v = vec![0f32; n * m];
            for i in 0..n {
                let mut x = r.normal();
                for c in 0..m {
                    x += 0.1 * r.normal();
                    v[i * m + c] = x as f32;
                }
            }
            orthonormalise(&mut v, m);
            let g = cross(&v, &v, m);
            let rank = m.min(n);
            let nonzero = (0..m).filter(|&c| g[c * m + c] > 0.5).count();
            assert_eq!(nonzero, rank, "n={n}: {rank} unit columns");
            for p in 0..m {
                for q in 0..m {
                    let want = if p == q && g[p * m + p] > 0.5 {
                        1.0
                    } else {
                        0.0
                    };
                    assert!(
                        (g[p * m + q] - want).abs() < 1e-4,
                        "n={n} ({p},{q}): {}",
                        g[p * m + q]
                    );
                }
            }
        }
    }

    #[test]
    fn permuted_knn_gives_the_relabelled_graph() {
        let (knn, g) = blob_graph(500, 6, 9);
        // A scrambled order.
        let mut rank: Vec<u32> = (0..500u32).collect();
        let mut r = Rng::new(3, 0);
        for i in (1..500).rev() {
            rank.swap(i, (r.uniform() * (i + 1) as f64) as usize % (i + 1));
        }
        let (pi, pd) = permute_knn(&knn.indices, &knn.distances, knn.k, &rank);
        let (idx2, dist2, k2) = with_self(&pi, &pd, knn.k);
        let gp = fuzzy_simplicial_set(&idx2, &dist2, k2, 1.0);
        let a: std::collections::BTreeMap<(u32, u32), f32> = (0..g.head.len())
            .map(|e| {
                (
                    (rank[g.head[e] as usize], rank[g.tail[e] as usize]),
                    g.weight[e],
                )
            })
            .collect();
        let b: std::collections::BTreeMap<(u32, u32), f32> = (0..gp.head.len())
            .map(|e| ((gp.head[e], gp.tail[e]), gp.weight[e]))
            .collect();
        assert_eq!(a, b, "the same weighted graph under the relabelling");
        let rows: Vec<f32> = (0..500).flat_map(|i| [i as f32, -(i as f32)]).collect();
        let mut moved = vec![0f32; 1000];
        for i in 0..500 {
            moved[rank[i] as usize * 2..rank[i] as usize * 2 + 2]
                .copy_from_slice(&rows[i * 2..i * 2 + 2]);
        }
        assert_eq!(unpermute_rows(&moved, 2, &rank), rows);
    }

    #[test]
    fn ordering_tails_keeps_the_edges_and_sorts_each_head_by_key() {
        let (_, g) = blob_graph(400, 6, 9);
        let rank: Vec<u32> = (0..400u32).rev().collect();
        let key = scrambled_keys(&rank);
        let mut o = g.clone();
        o.order_tails_by(&key);
        assert_eq!(o.head, g.head);
        let set = |g: &Graph| -> std::collections::BTreeSet<(u32, u32, u32)> {
            (0..g.head.len())
                .map(|e| (g.head[e], g.tail[e], g.weight[e].to_bits()))
                .collect()
        };
        assert_eq!(set(&o), set(&g), "the same weighted edges");
        for e in 1..o.head.len() {
            if o.head[e] == o.head[e - 1] {
                assert!(
                    (key[o.tail[e - 1] as usize], o.tail[e - 1])
                        < (key[o.tail[e] as usize], o.tail[e])
                );
            }
        }
        // Not the by-tail order any more (it would be a poor scramble).
        assert_ne!(o.tail, g.tail);
    }

    #[test]
    fn graph_is_symmetric_with_weights_in_unit_interval() {
        let (_, g) = blob_graph(300, 8, 9);
        let mut set = std::collections::BTreeMap::new();
        for e in 0..g.head.len() {
            assert!(g.weight[e] > 0.0 && g.weight[e] <= 1.0);
            set.insert((g.head[e], g.tail[e]), g.weight[e]);
        }
        for (&(h, t), &w) in &set {
            assert_eq!(set.get(&(t, h)), Some(&w));
        }
    }

    #[test]
    fn layout_is_trustworthy_and_thread_independent() {
        let x = blobs(1200, 16);
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let three = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let e1 = one.install(|| layout(&x, 16, 15, 3));
        let e3 = three.install(|| layout(&x, 16, 15, 3));
        assert_eq!(e1, e3, "bit-identical at 1 and 3 threads");
        let t = trustworthiness(&x, 16, &e1, 2, 10);
        assert!(t > 0.9, "trustworthiness {t}");
    }

    /// Blobs of three spreads (0.25, 1, 4): densMAP's layout keeps more of the input's
    /// local radii than plain UMAP's (umap-learn's `output_dens` correlation), with the
    /// same bits at 1 and 3 threads and on the AVX2 and baseline kernels.
    #[test]
    fn densmap_keeps_local_radii_with_the_same_bits_anywhere() {
        let (n, dim, nn) = (1800, 8, 15);
        let mut r = Rng::new(21, 0);
        let centres: Vec<Vec<f64>> = (0..3)
            .map(|_| (0..dim).map(|_| r.normal() * 30.0).collect())
            .collect();
        let x: Vec<f32> = (0..n)
            .flat_map(|i| {
                (0..dim)
                    .map(|d| (centres[i % 3][d] + [0.25, 1.0, 4.0][i % 3] * r.normal()) as f32)
                    .collect::<Vec<_>>()
            })
            .collect();
        let knn = nndescent::brute_force(&x, dim, nn - 1);
        let (idx, dist, k) = with_self(&knn.indices, &knn.distances, knn.k);
        let mut g = fuzzy_simplicial_set(&idx, &dist, k, 1.0);
        let n_epochs = 300;
        g.drop_weak(n_epochs);
        let ro = densmap::input_log_radii(&g, &knn.indices, &knn.distances, knn.k);
        let dens = densmap::Density::new(&g, &ro, 2.0, 0.3, 0.1);
        let (a, b) = find_ab(1.0, 0.1);
        let sgd = Sgd {
            a,
            b,
            n_epochs,
            learning_rate: 1.0,
            negative_sample_rate: 5.0,
            seed: 2,
        };
        let (init, _) = spectral_init(&g, 2, 2, no_meta);
        let run = |threads: usize, dens: Option<&densmap::Density>, wide: bool| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut e = init.clone();
            pool.install(|| sgd::optimize_on(&mut e, 2, &g, &sgd, dens, wide, |_| {}));
            e
        };
        let wide = crate::numeric::distance::avx2();
        let (plain, dm) = (run(2, None, wide), run(1, Some(&dens), wide));
        assert!(
            dm == run(3, Some(&dens), wide),
            "densMAP: bit-identical at 1 and 3 threads"
        );
        if wide {
            assert!(
                dm == run(2, Some(&dens), false),
                "densMAP: the AVX2 and baseline kernels agree"
            );
        }
        let corr = |e: &[f32]| densmap::pearson(&ro, &densmap::layout_log_radii(e, 2, nn));
        let (cp, cd) = (corr(&plain), corr(&dm));
        assert!(
            cd > cp + 0.3 && cd > 0.6,
            "radius correlation: plain {cp:.3}, densMAP {cd:.3}"
        );
        let t = trustworthiness(&x, dim, &dm, 2, 10);
        assert!(t > 0.85, "densMAP trustworthiness {t}");
    }

    #[test]
    fn disconnected_graphs_and_duplicates_give_finite_separated_layouts() {
        // Two blobs far apart (no kNN edge between them) and 60 identical rows in the first.
        let dim = 8;
        let mut r = Rng::new(9, 0);
        let mut x: Vec<f32> = Vec::new();
        for i in 0..400 {
            let off = if i < 200 { 0.0 } else { 1000.0 };
            x.extend((0..dim).map(|_| (off + r.normal()) as f32));
        }
        for _ in 0..60 {
            x.extend(std::iter::repeat_n(0.5f32, dim));
        }
        let emb = layout(&x, dim, 15, 1);
        assert!(emb.iter().all(|v| v.is_finite()));
        let centre = |rows: std::ops::Range<usize>| -> [f64; 2] {
            let n = rows.len() as f64;
            let mut c = [0.0; 2];
            for i in rows {
                c[0] += emb[i * 2] as f64 / n;
                c[1] += emb[i * 2 + 1] as f64 / n;
            }
            c
        };
        let (a, b) = (centre(0..200), centre(200..400));
        let spread = |rows: std::ops::Range<usize>, c: [f64; 2]| -> f64 {
            let n = rows.len() as f64;
            rows.map(|i| {
                ((emb[i * 2] as f64 - c[0]).powi(2) + (emb[i * 2 + 1] as f64 - c[1]).powi(2)).sqrt()
            })
            .sum::<f64>()
                / n
        };
        let gap = ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt();
        assert!(
            gap > 2.0 * spread(0..200, a).max(spread(200..400, b)),
            "blobs not separated: gap {gap}"
        );
    }
}
