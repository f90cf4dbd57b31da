//! Similarity search over representation vectors: exact cosine scores against the mean of
//! a few examples, or, with counter-examples, the decision value of an L2-regularised
//! logistic regression fitted on the normalised vectors. Pure: rows in, scores out; every
//! row's score is computed on its own, so scores never depend on the thread count.

use rayon::prelude::*;

/// Rows scaled to unit length (f64); an all-zero row stays zero.
pub fn normalise(x: &[f32], d: usize) -> Vec<f64> {
    let mut out: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    out.par_chunks_mut(d).for_each(|row| {
        let n = row.iter().map(|v| v * v).sum::<f64>().sqrt();
        if n > 0.0 {
            row.iter_mut().for_each(|v| *v /= n);
        }
    });
    out
}

/// The unit mean direction of rows `pos` of the normalised matrix `xn`.
pub fn mean_direction(xn: &[f64], d: usize, pos: &[usize]) -> Vec<f64> {
    let mut q = vec![0.0; d];
    for &i in pos {
        q.iter_mut()
            .zip(&xn[i * d..(i + 1) * d])
            .for_each(|(a, b)| *a += b);
    }
    let n = q.iter().map(|v| v * v).sum::<f64>().sqrt();
    if n > 0.0 {
        q.iter_mut().for_each(|v| *v /= n);
    }
    q
}

/// Weights `w` (length d + 1, the bias last) of a logistic regression of `pos` (1) against
/// `neg` (0) on the normalised rows, with an L2 penalty `lambda` on the weights (not the
/// bias), by Newton's method (a fixed, small number of steps on a d × d system).
pub fn logistic(xn: &[f64], d: usize, pos: &[usize], neg: &[usize], lambda: f64) -> Vec<f64> {
    let rows: Vec<(usize, f64)> = pos
        .iter()
        .map(|&i| (i, 1.0))
        .chain(neg.iter().map(|&i| (i, 0.0)))
        .collect();
    let m = d + 1;
    let mut w = vec![0.0; m];
    let feat = |i: usize, j: usize| if j < d { xn[i * d + j] } else { 1.0 };
    for _ in 0..50 {
        let mut grad = vec![0.0; m];
        let mut hess = vec![0.0; m * m];
        for &(i, y) in &rows {
            let z: f64 = (0..m).map(|j| w[j] * feat(i, j)).sum();
            let p = 1.0 / (1.0 + (-z).exp());
            let s = (p * (1.0 - p)).max(1e-12);
            for a in 0..m {
                let fa = feat(i, a);
                grad[a] += (p - y) * fa;
                for b in 0..=a {
                    hess[a * m + b] += s * fa * feat(i, b);
                }
            }
        }
        for a in 0..d {
            grad[a] += lambda * w[a];
            hess[a * m + a] += lambda;
        }
        hess[d * m + d] += 1e-9;
        for a in 0..m {
            for b in 0..a {
                hess[b * m + a] = hess[a * m + b];
            }
        }
        let step = solve(&mut hess, &mut grad, m);
        let mut change = 0.0f64;
        for (wj, sj) in w.iter_mut().zip(&step) {
            *wj -= sj;
            change = change.max(sj.abs());
        }
        if change < 1e-10 {
            break;
        }
    }
    w
}

/// Solve `a x = b` (a symmetric positive definite, m × m) by Cholesky; `a` and `b` are
/// overwritten. Returns x.
fn solve(a: &mut [f64], b: &mut [f64], m: usize) -> Vec<f64> {
    for j in 0..m {
        let mut s = a[j * m + j];
        for k in 0..j {
            s -= a[j * m + k] * a[j * m + k];
        }
        let l = s.max(1e-300).sqrt();
        a[j * m + j] = l;
        for i in j + 1..m {
            let mut t = a[i * m + j];
            for k in 0..j {
                t -= a[i * m + k] * a[j * m + k];
            }
            a[i * m + j] = t / l;
        }
    }
    for i in 0..m {
        let mut t = b[i];
        for k in 0..i {
            t -= a[i * m + k] * b[k];
        }
        b[i] = t / a[i * m + i];
    }
    for i in (0..m).rev() {
        let mut t = b[i];
        for k in i + 1..m {
            t -= a[k * m + i] * b[k];
        }
        b[i] = t / a[i * m + i];
    }
    b.to_vec()
}

/// Every row's score: `w · x̂ (+ w[d])` for weights of length d (cosine against a unit
/// direction) or d + 1 (a linear classifier's decision value).
pub fn scores(xn: &[f64], d: usize, w: &[f64]) -> Vec<f64> {
    let bias = w.get(d).copied().unwrap_or(0.0);
    xn.par_chunks(d)
        .map(|row| row.iter().zip(w).map(|(a, b)| a * b).sum::<f64>() + bias)
        .collect()
}

/// Lanes of the partial sums in [`unit_scores`]: independent chains the CPU overlaps and
/// the compiler vectorises; a fixed number, so the bits never depend on the machine.
const LANES: usize = 8;

/// Every row's cosine against the unit direction `w` (length d), or with a bias `w[d]` a
/// linear classifier's decision value on the unit rows, for the rows of the raw matrix `x`
/// (`d` wide): `(x · w) / |x| (+ w[d])`, an all-zero row scoring the bias alone. The dot
/// product and the squared norm are each summed in [`LANES`] partial sums (element `j` into
/// lane `j % LANES`, lanes then added in order), so a row's score is the same bits on any
/// thread count; it agrees with [`scores`] of the normalised rows to rounding.
pub fn unit_scores(x: &[f32], d: usize, w: &[f64]) -> Vec<f64> {
    let bias = w.get(d).copied().unwrap_or(0.0);
    let w = &w[..d];
    x.par_chunks(d * 1024)
        .flat_map_iter(|block| {
            block
                .chunks(d)
                .map(|r| unit_score(r, w) + bias)
                .collect::<Vec<f64>>()
        })
        .collect()
}

/// `(r · w) / |r|` (0 for an all-zero row) in [`LANES`] partial sums.
fn unit_score(r: &[f32], w: &[f64]) -> f64 {
    let (mut sq, mut dot) = ([0f64; LANES], [0f64; LANES]);
    let (rc, wc) = (r.chunks_exact(LANES), w.chunks_exact(LANES));
    let (rt, wt) = (rc.remainder(), wc.remainder());
    for (a, b) in rc.zip(wc) {
        for k in 0..LANES {
            let v = f64::from(a[k]);
            sq[k] += v * v;
            dot[k] += v * b[k];
        }
    }
    for (k, (&a, &b)) in rt.iter().zip(wt).enumerate() {
        let v = f64::from(a);
        sq[k] += v * v;
        dot[k] += v * b;
    }
    let fold = |p: [f64; LANES]| p.iter().fold(0.0, |acc, v| acc + v);
    let n = fold(sq).sqrt();
    if n > 0.0 {
        fold(dot) / n
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numeric::rng::Rng;

    #[test]
    fn cosine_scores_match_brute_force() {
        let (n, d) = (500, 19); // two full lanes of partial sums and a remainder
        let mut r = Rng::new(1, 0);
        let x: Vec<f32> = (0..n * d).map(|_| r.normal() as f32).collect();
        let xn = normalise(&x, d);
        let q = mean_direction(&xn, d, &[3, 9]);
        let s = scores(&xn, d, &q);
        let norm = |v: &[f64]| v.iter().map(|a| a * a).sum::<f64>().sqrt();
        let row = |i: usize| {
            x[i * d..(i + 1) * d]
                .iter()
                .map(|&v| f64::from(v))
                .collect::<Vec<_>>()
        };
        let (a, b) = (row(3), row(9));
        let mean: Vec<f64> = (0..d).map(|j| a[j] / norm(&a) + b[j] / norm(&b)).collect();
        for (i, got) in s.iter().enumerate() {
            let v = row(i);
            let want =
                v.iter().zip(&mean).map(|(p, q)| p * q).sum::<f64>() / (norm(&v) * norm(&mean));
            assert!((got - want).abs() < 1e-12, "row {i}: {got} vs {want}");
        }
        // On the raw rows, in partial sums: the same values to rounding.
        for (a, b) in unit_scores(&x, d, &q).iter().zip(&s) {
            assert!((a - b).abs() < 1e-14, "{a} vs {b}");
        }
        // A classifier's bias is added; an all-zero row scores the bias alone.
        let mut z = x.clone();
        z[..d].iter_mut().for_each(|v| *v = 0.0);
        let with_bias: Vec<f64> = q.iter().copied().chain([0.5]).collect();
        let u = unit_scores(&z, d, &with_bias);
        assert_eq!(u[0], 0.5);
        assert!((u[1] - s[1] - 0.5).abs() < 1e-14);
    }

    #[test]
    fn logistic_separates_two_groups() {
        let d = 4;
        let mut r = Rng::new(2, 0);
        let mut x = Vec::new();
        for i in 0..60 {
            let c = if i < 30 { 1.0 } else { -1.0 };
            x.extend([
                (c + 0.3 * r.normal()) as f32,
                (0.3 * r.normal()) as f32,
                1.0,
                (0.2 * r.normal()) as f32,
            ]);
        }
        let xn = normalise(&x, d);
        let w = logistic(&xn, d, &[0, 1, 2, 3, 4], &[30, 31, 32, 33, 34], 1e-2);
        let s = scores(&xn, d, &w);
        let pos_low = (0..30).map(|i| s[i]).fold(f64::INFINITY, f64::min);
        let neg_high = (30..60).map(|i| s[i]).fold(f64::NEG_INFINITY, f64::max);
        assert!(
            pos_low > neg_high,
            "every unseen positive above every negative: {pos_low} vs {neg_high}"
        );
    }
}
