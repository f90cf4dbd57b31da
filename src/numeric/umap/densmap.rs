//! densMAP (Narayan, Berger & Cho 2021) with umap-learn's semantics: a term in the last
//! `frac` of the epochs that pulls the layout's local radii towards the input's.
//!
//! **Radii.** A point's log local radius is `ln(1e-8 + Σ μ d² / Σ μ)` over its graph
//! edges (μ the edge's membership strength, `d` the input distance of the kNN table):
//! umap-learn's `ro` ([`input_log_radii`]). In the layout, each epoch, the same over the
//! same edges with the layout's similarity `φ = 1 / (1 + a d^2b)` in place of μ
//! ([`epoch_stats`]). The term is λ times the correlation of the two, with the layout's
//! variance shifted by `var_shift`:
//!
//! `C = λ Σ_i R_i re_i / (n σ)`, `R` the standardised input radii, `σ = √(var(re) + var_shift)`.
//!
//! **Gradient.** `∂C/∂re_i = λ w_i / (n σ)` with `w_i = R_i − cov (re_i − mean) / σ²` and
//! `cov = Σ R re / n`; through `re` it reaches each edge's squared distance, and each SGD
//! firing of an edge adds its share: [`coefficient`], tested against finite differences of
//! `C` ([`objective`]). umap-learn divides `cov` by `n − 1` (a 1/n difference in one term;
//! here the gradient is exactly `C`'s), and samples the term with each edge's attraction,
//! scaled by `Σμ / μ_e` so each epoch's expected step is `C`'s full gradient: so does dagrun.
//!
//! **Output radii** ([`layout_log_radii`]): umap-learn's `output_dens` measures the
//! layout's radii on a new fuzzy graph of the layout's own `k` nearest neighbours, with
//! plain (not squared) distances; the correlation of the two radii is what the term bought.
//!
//! Every sum runs per point over its own row in a fixed order, and the epoch's moments are
//! sums in point order: the same bits at any thread count.

use rayon::prelude::*;

use super::pow::pow_lanes;
use super::{fuzzy_simplicial_set, row_starts, Graph};
use crate::numeric::distance::dist2;
use crate::numeric::kdtree::KdTree;

/// umap-learn's guard inside the logarithm of a radius.
const EPSILON: f64 = 1e-8;

/// The density term's parameters and what the input fixes for it.
#[derive(Clone, Debug)]
pub struct Density {
    /// Weight of the correlation term (umap-learn's `dens_lambda`).
    pub lambda: f64,
    /// The last `frac` of the epochs carry the term (`dens_frac`).
    pub frac: f64,
    /// Added to the layout radii's variance (`dens_var_shift`).
    pub var_shift: f64,
    /// The input's log radii, standardised (mean 0, standard deviation 1), graph order.
    pub r: Vec<f32>,
    /// Σ μ over the graph's edges (both directions).
    pub mu_tot: f64,
}

impl Density {
    /// The term for graph `g` given the input's log radii (graph order).
    pub fn new(g: &Graph, log_radii: &[f64], lambda: f64, frac: f64, var_shift: f64) -> Density {
        let n = log_radii.len().max(1) as f64;
        let mean = log_radii.iter().sum::<f64>() / n;
        let sd = (log_radii
            .iter()
            .map(|r| (r - mean) * (r - mean))
            .sum::<f64>()
            / n)
            .sqrt();
        // All radii equal: nothing to correlate with, the term vanishes.
        let r = log_radii
            .iter()
            .map(|&x| {
                if sd > 0.0 {
                    ((x - mean) / sd) as f32
                } else {
                    0.0
                }
            })
            .collect();
        let mu_tot = g.weight.iter().map(|&w| w as f64).sum();
        Density {
            lambda,
            frac,
            var_shift,
            r,
            mu_tot,
        }
    }

    /// Whether epoch `epoch` of `n_epochs` carries the term (umap-learn's test).
    pub fn active(&self, epoch: usize, n_epochs: usize) -> bool {
        self.lambda > 0.0 && (epoch + 1) as f64 / n_epochs as f64 > 1.0 - self.frac
    }
}

/// Per point, for one epoch: `[w, 1 / Σφ, 1 / (ε + Σφd²/Σφ), 0]`, Σφ over both
/// directions of each edge (umap-learn's `phi_sum`). One 16-byte row per point.
pub type Stats = [f32; 4];

/// The layout's log radius of each point (graph order) and the sums behind it: `(Σφd²,
/// Σφ)` over its row (each edge once; the graph holds both directions, so each sum is half
/// of umap-learn's and the ratio the same).
fn layout_sums(
    emb: &[f32],
    dim: usize,
    g: &Graph,
    starts: &[usize],
    a: f32,
    b: f32,
) -> Vec<(f64, f64)> {
    const L: usize = super::pow::WIDTH;
    (0..g.n)
        .into_par_iter()
        .with_min_len(256)
        .map(|j| {
            let x = &emb[j * dim..(j + 1) * dim];
            let tails = &g.tail[starts[j]..starts[j + 1]];
            let (mut s, mut p) = (0f64, 0f64);
            for block in tails.chunks(L) {
                let mut d2 = [0f32; L];
                for (l, &t) in block.iter().enumerate() {
                    let y = &emb[t as usize * dim..(t as usize + 1) * dim];
                    d2[l] = dist2(x, y);
                }
                let pb = pow_lanes(&d2, b);
                for l in 0..block.len() {
                    let phi = 1.0 / (a * pb[l] + 1.0);
                    s += f64::from(phi * d2[l]);
                    p += f64::from(phi);
                }
            }
            (s, p)
        })
        .collect()
}

fn log_radius(num: f64, den: f64) -> f64 {
    if den > 0.0 {
        (EPSILON + num / den).ln()
    } else {
        EPSILON.ln()
    }
}

/// The epoch's per-point [`Stats`] of layout `emb` (`dim` wide, graph order) into `out`,
/// and the factor `λ Σμ / (n σ)` every firing's coefficient carries.
pub fn epoch_stats(
    emb: &[f32],
    dim: usize,
    g: &Graph,
    starts: &[usize],
    (a, b): (f32, f32),
    d: &Density,
    out: &mut Vec<Stats>,
) -> f32 {
    let sums = layout_sums(emb, dim, g, starts, a, b);
    let re: Vec<f64> = sums.iter().map(|&(s, p)| log_radius(s, p)).collect();
    let (w, sigma) = weights(&re, &d.r, d.var_shift);
    out.clear();
    out.extend(sums.iter().zip(&w).map(|(&(s, p), &w)| {
        let inv_p = if p > 0.0 { (0.5 / p) as f32 } else { 0.0 };
        let inv_rad = (1.0 / (EPSILON + if p > 0.0 { s / p } else { 0.0 })) as f32;
        [w as f32, inv_p, inv_rad, 0.0]
    }));
    (d.lambda * d.mu_tot / (sigma * g.n as f64)) as f32
}

/// `w_i = R_i − cov (re_i − mean) / σ²` for each point, and `σ = √(var(re) + shift)`:
/// sums in point order.
fn weights(re: &[f64], r: &[f32], shift: f64) -> (Vec<f64>, f64) {
    let n = re.len().max(1) as f64;
    let mean = re.iter().sum::<f64>() / n;
    let var = re.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    let cov = re
        .iter()
        .zip(r)
        .map(|(x, &r)| x * f64::from(r))
        .sum::<f64>()
        / n;
    let sigma2 = var + shift;
    let w = re
        .iter()
        .zip(r)
        .map(|(x, &r)| f64::from(r) - cov * (x - mean) / sigma2)
        .collect();
    (w, sigma2.sqrt())
}

/// The density term's coefficient for a firing of edge (j, k) at squared layout distance
/// `d2` (`pb = d2^b`): its step is `2 · coefficient · (x_j − x_k)`, clipped, beside the
/// attraction's. `scale` is the epoch's factor over the edge's μ (see [`epoch_stats`]).
#[inline(always)]
pub fn coefficient(d2: f32, pb: f32, a: f32, b: f32, sj: &Stats, sk: &Stats, scale: f32) -> f32 {
    let q = a * pb + 1.0;
    let phi = 1.0 / q;
    let dphi = a * b * pb / (d2 * q);
    let t = 1.0 - b * (1.0 - phi);
    let drk = phi * sk[1] * (t * sk[2] + dphi);
    let drj = phi * sj[1] * (t * sj[2] + dphi);
    let v = scale * (sk[0] * drk + sj[0] * drj);
    // Both ends at one place: no direction to move them in (and no branch, so the SGD's
    // lanes compute this together).
    if d2 > 0.0 {
        v
    } else {
        0.0
    }
}

/// The input's log local radius of each point (graph order): `ln(ε + Σμd²/Σμ)` over its
/// graph edges, `d` the edge's distance in the kNN table (`nbr`, `dist`: `k` other
/// neighbours per row, graph order). An edge in one point's list only takes that
/// distance; in both, the larger (umap-learn's `graph_dists`).
pub fn input_log_radii(g: &Graph, nbr: &[u32], dist: &[f32], k: usize) -> Vec<f64> {
    radii(g, nbr, dist, k, true)
}

fn radii(g: &Graph, nbr: &[u32], dist: &[f32], k: usize, squared: bool) -> Vec<f64> {
    // Each row's neighbours sorted by index, for a binary search per edge.
    let mut sorted: Vec<(u32, f32)> = nbr.iter().copied().zip(dist.iter().copied()).collect();
    sorted
        .par_chunks_mut(k.max(1))
        .for_each(|row| row.sort_unstable_by_key(|e| e.0));
    let find = |i: usize, j: u32| -> Option<f32> {
        let row = &sorted[i * k..(i + 1) * k];
        row.binary_search_by_key(&j, |e| e.0)
            .ok()
            .map(|at| row[at].1)
    };
    let starts = row_starts(g);
    (0..g.n)
        .into_par_iter()
        .with_min_len(256)
        .map(|j| {
            let (mut num, mut den) = (0f64, 0f64);
            for e in starts[j]..starts[j + 1] {
                let t = g.tail[e];
                let d = match (find(j, t), find(t as usize, j as u32)) {
                    (Some(x), Some(y)) => x.max(y),
                    (Some(x), None) | (None, Some(x)) => x,
                    (None, None) => 0.0,
                } as f64;
                let mu = g.weight[e] as f64;
                num += mu * if squared { d * d } else { d };
                den += mu;
            }
            log_radius(num, den)
        })
        .collect()
}

/// The layout's log local radius of each point (umap-learn's `rad_emb`): on the fuzzy
/// graph of the layout's own `n_neighbors` nearest points (the point itself included, as
/// `n_neighbors` counts it), exact, `ln(ε + Σμd/Σμ)` with plain distances.
pub fn layout_log_radii(emb: &[f32], dim: usize, n_neighbors: usize) -> Vec<f64> {
    let n = emb.len() / dim.max(1);
    let k = n_neighbors.min(n).max(2) - 1;
    let tree = KdTree::build(emb, dim);
    let mut nbr = vec![0u32; n * k];
    let mut dist = vec![0f32; n * k];
    nbr.par_chunks_mut(k)
        .zip(dist.par_chunks_mut(k))
        .enumerate()
        .for_each(|(i, (nr, dr))| {
            let found = tree.nearest(&emb[i * dim..(i + 1) * dim], k + 1);
            let others = found.iter().filter(|e| e.1 as usize != i).take(k);
            for (s, &(d2, j)) in others.enumerate() {
                nr[s] = j;
                dr[s] = d2.sqrt();
            }
        });
    let (idx, d, kk) = super::with_self(&nbr, &dist, k);
    let g = fuzzy_simplicial_set(&idx, &d, kk, 1.0);
    radii(&g, &nbr, &dist, k, false)
}

/// Pearson's correlation of `x` and `y` (0 where either is constant).
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len().max(1) as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0f64, 0f64, 0f64);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    if sxx > 0.0 && syy > 0.0 {
        sxy / (sxx * syy).sqrt()
    } else {
        0.0
    }
}

/// `C` of layout `emb` (see the module), in f64 with `powf`: for tests of the gradient.
#[cfg(test)]
pub fn objective(emb: &[f64], dim: usize, g: &Graph, a: f64, b: f64, d: &Density) -> f64 {
    let starts = row_starts(g);
    let re: Vec<f64> = (0..g.n)
        .map(|j| {
            let (mut s, mut p) = (0f64, 0f64);
            for e in starts[j]..starts[j + 1] {
                let t = g.tail[e] as usize;
                let d2: f64 = (0..dim)
                    .map(|c| (emb[j * dim + c] - emb[t * dim + c]).powi(2))
                    .sum();
                let phi = 1.0 / (1.0 + a * d2.powf(b));
                s += phi * d2;
                p += phi;
            }
            log_radius(s, p)
        })
        .collect();
    let (_, sigma) = weights(&re, &d.r, d.var_shift);
    d.lambda
        * re.iter()
            .zip(&d.r)
            .map(|(x, &r)| x * f64::from(r))
            .sum::<f64>()
        / (g.n as f64 * sigma)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numeric::rng::Rng;

    /// A small graph: each of `n` points joined to a few others at random weights, both
    /// directions, sorted by head.
    fn small_graph(n: usize, rng: &mut Rng) -> Graph {
        let mut w = std::collections::BTreeMap::new();
        for i in 0..n {
            for _ in 0..4 {
                let j = rng.below(n as u64) as usize;
                if j != i {
                    let v = rng.range(0.2, 1.0) as f32;
                    w.insert((i.min(j), i.max(j)), v);
                }
            }
        }
        let mut edges: Vec<(u32, u32, f32)> = w
            .iter()
            .flat_map(|(&(i, j), &v)| [(i as u32, j as u32, v), (j as u32, i as u32, v)])
            .collect();
        edges.sort_by_key(|e| (e.0, e.1));
        Graph {
            n,
            head: edges.iter().map(|e| e.0).collect(),
            tail: edges.iter().map(|e| e.1).collect(),
            weight: edges.iter().map(|e| e.2).collect(),
        }
    }

    /// The gradient the SGD's density steps follow (per epoch, in expectation: each
    /// edge's coefficient times its firing rate μ/Σμ) is `C`'s, by central differences.
    #[test]
    fn density_gradient_matches_finite_differences() {
        let mut rng = Rng::new(7, 0);
        let (n, dim) = (40, 2);
        let g = small_graph(n, &mut rng);
        let (a, b) = (1.577, 0.895);
        let input: Vec<f64> = (0..n).map(|_| rng.range(-1.0, 1.0)).collect();
        let d = Density::new(&g, &input, 2.0, 0.3, 0.1);
        let emb: Vec<f32> = (0..n * dim).map(|_| rng.range(0.0, 4.0) as f32).collect();
        let starts = row_starts(&g);
        let mut stats = Vec::new();
        let scale = epoch_stats(&emb, dim, &g, &starts, (a as f32, b as f32), &d, &mut stats);
        // Σ over edges of (rate μ/Σμ) · (scale/μ) · coefficient · 2 (x_j − x_k): each
        // directed edge moves both ends.
        let mut grad = vec![0f64; n * dim];
        for e in 0..g.head.len() {
            let (j, k) = (g.head[e] as usize, g.tail[e] as usize);
            let d2: f32 = (0..dim)
                .map(|c| (emb[j * dim + c] - emb[k * dim + c]).powi(2))
                .sum();
            let pb = d2.powf(b as f32);
            let c = coefficient(
                d2,
                pb,
                a as f32,
                b as f32,
                &stats[j],
                &stats[k],
                scale / g.weight[e],
            ) as f64
                * g.weight[e] as f64
                / d.mu_tot;
            for t in 0..dim {
                let u = 2.0 * c * (emb[j * dim + t] - emb[k * dim + t]) as f64;
                grad[j * dim + t] += u;
                grad[k * dim + t] -= u;
            }
        }
        let x: Vec<f64> = emb.iter().map(|&v| v as f64).collect();
        let h = 1e-5;
        let (mut worst, mut norm) = (0f64, 0f64);
        for i in 0..n * dim {
            let (mut up, mut down) = (x.clone(), x.clone());
            up[i] += h;
            down[i] -= h;
            let fd = (objective(&up, dim, &g, a, b, &d) - objective(&down, dim, &g, a, b, &d))
                / (2.0 * h);
            worst = worst.max((fd - grad[i]).abs());
            norm = norm.max(fd.abs());
        }
        assert!(
            norm > 1e-3,
            "the objective moves with the layout ({norm:e})"
        );
        assert!(
            worst < 1e-3 * norm,
            "largest gap {worst:e} against a largest partial {norm:e}"
        );
    }

    /// The input radii against a brute-force reading of umap-learn's loop (each directed
    /// edge adds to both ends; distances the larger of the two kNN entries).
    #[test]
    fn input_radii_match_brute_force() {
        let mut rng = Rng::new(3, 0);
        let (n, k) = (30, 5);
        let g = small_graph(n, &mut rng);
        let starts = row_starts(&g);
        // Each point's kNN list holds its graph neighbours (at most k), distances at random.
        let mut nbr = vec![0u32; n * k];
        let mut dist = vec![0f32; n * k];
        let mut truth = std::collections::HashMap::new();
        for i in 0..n {
            let tails: Vec<u32> = g.tail[starts[i]..starts[i + 1]].to_vec();
            for s in 0..k {
                let (t, dd) = match tails.get(s) {
                    Some(&t) => (t, rng.range(0.5, 2.0) as f32),
                    None => ((i as u32 + 1 + s as u32) % n as u32, 9.0),
                };
                nbr[i * k + s] = t;
                dist[i * k + s] = dd;
                truth.insert((i as u32, t), dd);
            }
        }
        let got = input_log_radii(&g, &nbr, &dist, k);
        let (mut ro, mut mu) = (vec![0f64; n], vec![0f64; n]);
        for e in 0..g.head.len() {
            let (j, t) = (g.head[e], g.tail[e]);
            let dd = truth
                .get(&(j, t))
                .copied()
                .unwrap_or(0.0)
                .max(truth.get(&(t, j)).copied().unwrap_or(0.0)) as f64;
            for v in [j as usize, t as usize] {
                ro[v] += g.weight[e] as f64 * dd * dd;
                mu[v] += g.weight[e] as f64;
            }
        }
        for i in 0..n {
            let want = (EPSILON + ro[i] / mu[i]).ln();
            assert!(
                (got[i] - want).abs() < 1e-9,
                "point {i}: {} against {want}",
                got[i]
            );
        }
    }
}
