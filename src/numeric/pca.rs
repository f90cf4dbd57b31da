//! Principal component analysis of a dense row-major matrix.
//!
//! The covariance is accumulated in f64 over fixed blocks of rows that are summed in block
//! order, so the result does not depend on how rayon schedules the blocks. The symmetric
//! eigenproblem is solved with cyclic Jacobi rotations (exact to rounding, simple to check);
//! each component's sign is fixed so that its largest-magnitude loading is positive.

use rayon::prelude::*;

/// Rows per block of the covariance reduction: part of the numeric definition (changing it
/// changes low-order bits), not a tuning knob.
const BLOCK_ROWS: usize = 4096;

/// A fitted PCA.
#[derive(Clone, Debug)]
pub struct Pca {
    pub n_features: usize,
    pub mean: Vec<f64>,
    /// `k` components, each of length `n_features`, row-major.
    pub components: Vec<f64>,
    /// Variance along each component (eigenvalues of the covariance, descending).
    pub explained_variance: Vec<f64>,
    /// Total variance (trace of the covariance).
    pub total_variance: f64,
}

/// Fit `k` components to `x` (`n` rows of `d` values, row-major). Requires `n >= 2`,
/// `1 <= k <= d` and finite values (checked by the caller).
pub fn fit(x: &[f32], d: usize, k: usize) -> Pca {
    assert!(d > 0 && x.len().is_multiple_of(d), "matrix shape");
    let n = x.len() / d;
    assert!(n >= 2 && k >= 1 && k <= d, "pca: n={n} d={d} k={k}");
    let (mean, cov) = covariance(x, d);
    let (vals, vecs) = symmetric_eigen(&cov, d);
    let mut components = Vec::with_capacity(k * d);
    for j in 0..k {
        let mut v: Vec<f64> = (0..d).map(|i| vecs[i * d + j]).collect();
        let (mut best, mut arg) = (0.0f64, 0);
        for (i, &c) in v.iter().enumerate() {
            if c.abs() > best {
                best = c.abs();
                arg = i;
            }
        }
        if v[arg] < 0.0 {
            v.iter_mut().for_each(|c| *c = -*c);
        }
        components.extend(v);
    }
    let total_variance = (0..d).map(|i| cov[i * d + i]).sum();
    Pca {
        n_features: d,
        mean,
        components,
        explained_variance: vals[..k].to_vec(),
        total_variance,
    }
}

impl Pca {
    pub fn n_components(&self) -> usize {
        self.explained_variance.len()
    }

    /// Project `x` (row-major, `n_features` wide) onto the components: row-major `n × k`.
    pub fn transform(&self, x: &[f32]) -> Vec<f32> {
        let (d, k) = (self.n_features, self.n_components());
        let mut out = vec![0f32; x.len() / d * k];
        out.par_chunks_mut(k)
            .zip(x.par_chunks(d))
            .for_each(|(o, row)| {
                let centred: Vec<f64> = row
                    .iter()
                    .zip(&self.mean)
                    .map(|(&v, m)| v as f64 - m)
                    .collect();
                for (j, oj) in o.iter_mut().enumerate() {
                    let c = &self.components[j * d..(j + 1) * d];
                    *oj = centred.iter().zip(c).map(|(a, b)| a * b).sum::<f64>() as f32;
                }
            });
        out
    }
}

/// Column means and the (n-1)-normalised covariance matrix (d × d, row-major).
pub fn covariance(x: &[f32], d: usize) -> (Vec<f64>, Vec<f64>) {
    let n = x.len() / d;
    let sums: Vec<Vec<f64>> = x
        .par_chunks(BLOCK_ROWS * d)
        .map(|block| {
            let mut s = vec![0f64; d];
            for row in block.chunks_exact(d) {
                for (a, &v) in s.iter_mut().zip(row) {
                    *a += v as f64;
                }
            }
            s
        })
        .collect();
    let mut mean = vec![0f64; d];
    for s in &sums {
        for (m, v) in mean.iter_mut().zip(s) {
            *m += v;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);

    let partial: Vec<Vec<f64>> = x
        .par_chunks(BLOCK_ROWS * d)
        .map(|block| {
            let mut c = vec![0f64; d * d];
            let mut centred = vec![0f64; d];
            for row in block.chunks_exact(d) {
                for ((z, &v), m) in centred.iter_mut().zip(row).zip(&mean) {
                    *z = v as f64 - m;
                }
                for i in 0..d {
                    let zi = centred[i];
                    let ci = &mut c[i * d..i * d + i + 1];
                    for (cij, zj) in ci.iter_mut().zip(&centred[..=i]) {
                        *cij += zi * zj;
                    }
                }
            }
            c
        })
        .collect();
    let mut cov = vec![0f64; d * d];
    for p in &partial {
        for (a, b) in cov.iter_mut().zip(p) {
            *a += b;
        }
    }
    let denom = (n - 1) as f64;
    for i in 0..d {
        for j in 0..=i {
            let v = cov[i * d + j] / denom;
            cov[i * d + j] = v;
            cov[j * d + i] = v;
        }
    }
    (mean, cov)
}

/// Eigen-decomposition of a symmetric matrix by cyclic Jacobi rotations.
/// Returns eigenvalues in descending order and the matching eigenvectors as the columns of
/// a row-major d × d matrix.
pub fn symmetric_eigen(a: &[f64], d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = a.to_vec();
    let mut v = vec![0f64; d * d];
    for i in 0..d {
        v[i * d + i] = 1.0;
    }
    let scale: f64 = a
        .iter()
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt()
        .max(f64::MIN_POSITIVE);
    for _sweep in 0..100 {
        let off: f64 = (0..d)
            .flat_map(|i| (0..d).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * d + j] * a[i * d + j])
            .sum::<f64>()
            .sqrt();
        if off <= 1e-15 * scale {
            break;
        }
        for p in 0..d {
            for q in p + 1..d {
                let apq = a[p * d + q];
                if apq == 0.0 {
                    continue;
                }
                let (app, aqq) = (a[p * d + p], a[q * d + q]);
                let theta = (aqq - app) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                // A <- J^T A J, touching rows and columns p and q.
                for k in 0..d {
                    let (akp, akq) = (a[k * d + p], a[k * d + q]);
                    a[k * d + p] = c * akp - s * akq;
                    a[k * d + q] = s * akp + c * akq;
                }
                for k in 0..d {
                    let (apk, aqk) = (a[p * d + k], a[q * d + k]);
                    a[p * d + k] = c * apk - s * aqk;
                    a[q * d + k] = s * apk + c * aqk;
                }
                for k in 0..d {
                    let (vkp, vkq) = (v[k * d + p], v[k * d + q]);
                    v[k * d + p] = c * vkp - s * vkq;
                    v[k * d + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..d).collect();
    // Descending eigenvalue; ties by index so the order is total and stable.
    order.sort_by(|&i, &j| a[j * d + j].total_cmp(&a[i * d + i]).then(i.cmp(&j)));
    let vals = order.iter().map(|&i| a[i * d + i]).collect();
    let mut vecs = vec![0f64; d * d];
    for (new, &old) in order.iter().enumerate() {
        for k in 0..d {
            vecs[k * d + new] = v[k * d + old];
        }
    }
    (vals, vecs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numeric::rng::Rng;

    fn random_data(n: usize, d: usize, seed: u64) -> Vec<f32> {
        // Correlated data: x = z * L with a random mixing matrix and decaying scales.
        let mut r = Rng::new(seed, 0);
        let mix: Vec<f64> = (0..d * d).map(|_| r.normal()).collect();
        let mut x = Vec::with_capacity(n * d);
        for _ in 0..n {
            let z: Vec<f64> = (0..d).map(|j| r.normal() / (1.0 + j as f64)).collect();
            for c in 0..d {
                x.push((0..d).map(|j| z[j] * mix[j * d + c]).sum::<f64>() as f32 + 3.0);
            }
        }
        x
    }

    #[test]
    fn covariance_matches_two_pass_brute_force() {
        let (n, d) = (5000, 6);
        let x = random_data(n, d, 3);
        let (mean, cov) = covariance(&x, d);
        for i in 0..d {
            let m: f64 = (0..n).map(|r| x[r * d + i] as f64).sum::<f64>() / n as f64;
            assert!((m - mean[i]).abs() < 1e-9);
            for j in 0..d {
                let mj: f64 = (0..n).map(|r| x[r * d + j] as f64).sum::<f64>() / n as f64;
                let c: f64 = (0..n)
                    .map(|r| (x[r * d + i] as f64 - m) * (x[r * d + j] as f64 - mj))
                    .sum::<f64>()
                    / (n - 1) as f64;
                assert!(
                    (c - cov[i * d + j]).abs() < 1e-9 * (1.0 + c.abs()),
                    "{i},{j}: {c} vs {}",
                    cov[i * d + j]
                );
            }
        }
    }

    #[test]
    fn eigenpairs_satisfy_av_eq_lambda_v_and_are_orthonormal() {
        let d = 9;
        let x = random_data(2000, d, 5);
        let (_, cov) = covariance(&x, d);
        let (vals, vecs) = symmetric_eigen(&cov, d);
        for w in vals.windows(2) {
            assert!(w[0] >= w[1]);
        }
        for j in 0..d {
            for i in 0..d {
                let av: f64 = (0..d).map(|k| cov[i * d + k] * vecs[k * d + j]).sum();
                assert!(
                    (av - vals[j] * vecs[i * d + j]).abs() < 1e-9,
                    "A v != l v at {i},{j}"
                );
            }
            for j2 in 0..d {
                let dot: f64 = (0..d).map(|k| vecs[k * d + j] * vecs[k * d + j2]).sum();
                let want = if j == j2 { 1.0 } else { 0.0 };
                assert!((dot - want).abs() < 1e-10);
            }
        }
        let trace: f64 = (0..d).map(|i| cov[i * d + i]).sum();
        assert!((trace - vals.iter().sum::<f64>()).abs() < 1e-9 * trace);
    }

    #[test]
    fn leading_component_matches_power_iteration() {
        let d = 12;
        let x = random_data(3000, d, 11);
        let (_, cov) = covariance(&x, d);
        let mut v = vec![1.0f64; d];
        for _ in 0..2000 {
            let w: Vec<f64> = (0..d)
                .map(|i| (0..d).map(|k| cov[i * d + k] * v[k]).sum())
                .collect();
            let norm = w.iter().map(|a| a * a).sum::<f64>().sqrt();
            v = w.iter().map(|a| a / norm).collect();
        }
        let p = fit(&x, d, 3);
        let dot: f64 = (0..d).map(|k| p.components[k] * v[k]).sum();
        assert!(
            dot.abs() > 1.0 - 1e-8,
            "leading component differs: |dot| = {}",
            dot.abs()
        );
    }

    #[test]
    fn transform_variance_equals_eigenvalues_and_is_thread_independent() {
        let d = 8;
        let x = random_data(10_000, d, 2);
        let p = fit(&x, d, 4);
        let y = p.transform(&x);
        let n = x.len() / d;
        for j in 0..4 {
            let m: f64 = (0..n).map(|r| y[r * 4 + j] as f64).sum::<f64>() / n as f64;
            let var: f64 = (0..n)
                .map(|r| (y[r * 4 + j] as f64 - m).powi(2))
                .sum::<f64>()
                / (n - 1) as f64;
            assert!(m.abs() < 1e-4, "projected mean {m}");
            assert!((var - p.explained_variance[j]).abs() < 1e-4 * p.explained_variance[j]);
        }
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let p1 = one.install(|| fit(&x, d, 4));
        assert_eq!(
            p1.components, p.components,
            "PCA must not depend on the thread count"
        );
        assert_eq!(one.install(|| p1.transform(&x)), y);
    }
}
