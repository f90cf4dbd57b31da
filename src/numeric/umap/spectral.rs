//! Spectral initialisation with umap-learn's semantics (`spectral_layout`): the eigenvectors
//! of the 2nd to (dim+1)-th smallest eigenvalues of the normalised Laplacian
//! `L = I − D^-1/2 W D^-1/2`, solved to a residual tolerance; a disconnected graph is laid
//! out component by component around a meta-layout of the components
//! (`multi_component_layout`); then, as umap-learn's `noisy_scale_coords` and the start of
//! its optimisation, scaled so the largest coordinate is 10, given N(0, 10⁻⁴) noise, and
//! moved to `[0, 10]` per dimension.
//!
//! **Solver.** The wanted vectors are the leading ones of `N = D^-1/2 W D^-1/2` after the
//! trivial one, `√deg` (eigenvalue 1, known exactly, so it is projected out rather than
//! solved for). On a clustered graph many eigenvalues of `N` sit just below 1, where plain
//! subspace iteration converges at the rate `λ_{k+1}/λ_k ≈ 1` and stops at a mixture that
//! depends on its random start. This is Chebyshev-filtered subspace iteration (Zhou & Saad
//! 2007): each round applies a Chebyshev polynomial of `N` that damps `[-1, cut]` (the
//! eigenvalues below the block) and grows those above it like `cosh(deg·acosh(x))`, which
//! gives the square-root speed-up of Krylov methods over the power method; a block of
//! `dim + guard` vectors, Cholesky-QR orthonormalisation, Rayleigh–Ritz, and a stop when
//! every wanted Ritz pair has `‖N v − θ v‖ ≤ tol` (umap-learn asks ARPACK for 10⁻⁴).
//! At least 5 vectors are wanted ([`solved_vectors`]): a layout of fewer dimensions takes
//! the leading ones, so one [`Solve`] serves a 2-D display and a 5-D search alike.
//! Components of up to [`DENSE_MAX`] points are solved densely (Jacobi).
//!
//! **Determinism.** Matrix–block products are per row; Gram sums add fixed blocks of rows
//! in order; the start block comes from the seed: the same bits at any thread count.

use rayon::prelude::*;

use super::{row_starts, Graph};
use crate::numeric::distance::prefetch_row;
use crate::numeric::pca::symmetric_eigen;
use crate::numeric::rng::Rng;

/// The residual tolerance of each wanted eigenpair (umap-learn's `eigsh(tol=1e-4)`).
pub const TOL: f64 = 1e-4;
/// Matrix–block products at most before giving up on the tolerance (the layout then
/// starts from the best vectors found; the report says so).
const MAX_MATVECS: usize = 1000;
/// Components of at most this many points are solved by a dense eigendecomposition.
const DENSE_MAX: usize = 200;
/// Rows per block of the Gram sums: blocks are summed in order, so the result does not
/// depend on the number of threads.
const GRAM_BLOCK: usize = 4096;
// Random streams of the start block, the noise and the layout of tiny components.
use crate::numeric::rng::stream::{
    SPECTRAL_NOISE as STREAM_NOISE, SPECTRAL_START as STREAM_START, SPECTRAL_TINY as STREAM_TINY,
};

/// How the eigensolver went, for the node's summary and the debug trace.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpectralReport {
    /// Connected components of the graph.
    pub components: usize,
    /// Matrix–block products of the largest component's solve.
    pub matvecs: usize,
    /// Largest residual `‖N v − θ v‖` of a wanted vector of the largest component.
    pub residual: f64,
    /// Whether every solved component met [`TOL`].
    pub converged: bool,
    /// The wanted eigenvalues of `L` of the largest component (ascending).
    pub eigenvalues: Vec<f64>,
}

/// Connected components: a label per point (numbered by their smallest point) and how
/// many there are.
pub fn components(g: &Graph) -> (Vec<u32>, usize) {
    let mut parent: Vec<u32> = (0..g.n as u32).collect();
    fn find(p: &mut [u32], mut x: u32) -> u32 {
        while p[x as usize] != x {
            p[x as usize] = p[p[x as usize] as usize];
            x = p[x as usize];
        }
        x
    }
    for (&h, &t) in g.head.iter().zip(&g.tail) {
        let (a, b) = (find(&mut parent, h), find(&mut parent, t));
        if a != b {
            let (lo, hi) = (a.min(b), a.max(b));
            parent[hi as usize] = lo;
        }
    }
    let mut label = vec![u32::MAX; g.n];
    let mut count = 0u32;
    for i in 0..g.n {
        let r = find(&mut parent, i as u32) as usize;
        if label[r] == u32::MAX {
            label[r] = count;
            count += 1;
        }
        label[i] = label[r];
    }
    (label, count as usize)
}

/// A symmetric graph's rows: point `i`'s neighbours are `tail[start[i]..start[i + 1]]`.
struct Csr<'a> {
    start: std::borrow::Cow<'a, [usize]>,
    tail: std::borrow::Cow<'a, [u32]>,
    weight: std::borrow::Cow<'a, [f32]>,
}

impl Csr<'_> {
    fn n(&self) -> usize {
        self.start.len() - 1
    }
}

/// Eigenvectors solved for a layout of `dim` dimensions: `dim`, and at least 5, so that
/// layouts of up to 5 dimensions on one graph with one seed (a pipeline's 2-D display
/// beside its 5-D search) share one [`Solve`]. A layout takes the leading `dim` of them;
/// asking more of the solve only makes those more accurate.
pub fn solved_vectors(dim: usize) -> usize {
    dim.max(5)
}

/// What the spectral initialisation solves on a graph before it lays anything out: the
/// components, and for a connected graph its leading [`solved_vectors`] eigenvectors. A
/// pure function of the graph, the seed and `solved_vectors(dim)`.
pub struct Solve {
    label: Vec<u32>,
    count: usize,
    seed: u64,
    cols: usize,
    /// A connected graph's eigenvectors (row-major, `cols` wide) and how the solve went.
    vectors: Option<(Vec<f64>, SpectralReport)>,
}

impl Solve {
    /// Whether this solve is the one a `dim`-D layout with `seed` needs.
    pub fn serves(&self, dim: usize, seed: u64) -> bool {
        self.seed == seed && self.cols == solved_vectors(dim)
    }
}

/// Solve `g` for spectral layouts of `dim` dimensions (see [`Solve`]).
pub fn solve(g: &Graph, dim: usize, seed: u64) -> Solve {
    let (label, count) = components(g);
    let cols = solved_vectors(dim);
    let vectors = (count == 1).then(|| {
        let start = row_starts(g);
        let csr = Csr {
            start: start.into(),
            tail: (&g.tail[..]).into(),
            weight: (&g.weight[..]).into(),
        };
        eigenvectors(&csr, cols, seed)
    });
    Solve {
        label,
        count,
        seed,
        cols,
        vectors,
    }
}

/// The spectral initialisation of `g` in `dim` dimensions (row-major, in `[0, 10]` per
/// dimension). `meta` places the components of a disconnected graph when there are more
/// than `2·dim` of them: given each point's component label and their count, it returns
/// `count × dim` positions (umap-learn embeds the components' centroids in the data).
pub fn spectral_init(
    g: &Graph,
    dim: usize,
    seed: u64,
    meta: impl FnOnce(&[u32], usize) -> Vec<f64>,
) -> (Vec<f32>, SpectralReport) {
    spectral_layout(g, &solve(g, dim, seed), dim, meta)
}

/// [`spectral_init`] from a [`Solve`] of `g` that [`serves`](Solve::serves) this layout.
pub fn spectral_layout(
    g: &Graph,
    solved: &Solve,
    dim: usize,
    meta: impl FnOnce(&[u32], usize) -> Vec<f64>,
) -> (Vec<f32>, SpectralReport) {
    let seed = solved.seed;
    assert_eq!(
        solved.cols,
        solved_vectors(dim),
        "a solve for {} vectors serves no {dim}-D layout",
        solved.cols
    );
    let (out, report) = match &solved.vectors {
        Some((v, rep)) => leading(v, rep.clone(), solved.cols, dim),
        None => by_component(g, solved, dim, meta),
    };
    (scale_with_noise(&out, dim, seed), report)
}

/// The layout of a graph of several components, before scaling: each component's own
/// spectral layout (random within its range where it is too small for one), scaled into
/// half the distance to the nearest other component's centre around its own centre.
fn by_component(
    g: &Graph,
    solved: &Solve,
    dim: usize,
    meta: impl FnOnce(&[u32], usize) -> Vec<f64>,
) -> (Vec<f64>, SpectralReport) {
    let (n, seed) = (g.n, solved.seed);
    let (label, count) = (&solved.label, solved.count);
    let mut report = SpectralReport {
        components: count,
        converged: true,
        ..Default::default()
    };
    let mut out = vec![0f64; n * dim];
    let centres = component_centres(label, count, dim, meta);
    // Points of each component, in order.
    let mut members: Vec<Vec<u32>> = vec![Vec::new(); count];
    for (i, &l) in label.iter().enumerate() {
        members[l as usize].push(i as u32);
    }
    let largest = (0..count)
        .max_by_key(|&c| (members[c].len(), std::cmp::Reverse(c)))
        .unwrap_or(0);
    let starts = row_starts(g);
    let mut local = vec![0u32; n];
    let nearest = nearest_distinct(&centres, dim);
    for (c, pts) in members.iter().enumerate() {
        let centre = &centres[c * dim..(c + 1) * dim];
        // Half the distance to the nearest other component's centre.
        let range = if nearest[c].is_finite() {
            nearest[c] / 2.0
        } else {
            1.0
        };
        let s = pts.len();
        if s < 2 * dim || s <= dim + 1 {
            let mut r = Rng::new(seed, STREAM_TINY + c as u64);
            for &p in pts {
                for k in 0..dim {
                    out[p as usize * dim + k] = r.range(-range, range) + centre[k];
                }
            }
            continue;
        }
        let csr = component_graph(g, &starts, pts, &mut local);
        let cols = solved_vectors(dim);
        let (v, rep) = eigenvectors(&csr, cols, seed.wrapping_add(c as u64));
        let (v, rep) = leading(&v, rep, cols, dim);
        report.converged &= rep.converged;
        if c == largest {
            report = SpectralReport {
                components: count,
                converged: report.converged,
                ..rep
            };
        }
        let top = v.iter().fold(0f64, |a, &x| a.max(x.abs()));
        let scale = if top > 0.0 { range / top } else { 0.0 };
        for (li, &p) in pts.iter().enumerate() {
            for k in 0..dim {
                out[p as usize * dim + k] = v[li * dim + k] * scale + centre[k];
            }
        }
    }
    (out, report)
}

/// Where each of `count` components is centred: `meta`'s layout of the components (scaled
/// into the unit cube) where there are more than `2 dim`, else ±unit vectors, as
/// umap-learn places few components.
fn component_centres(
    label: &[u32],
    count: usize,
    dim: usize,
    meta: impl FnOnce(&[u32], usize) -> Vec<f64>,
) -> Vec<f64> {
    if count > 2 * dim {
        let mut m = meta(label, count);
        if m.len() != count * dim {
            m = vec![0.0; count * dim];
        }
        let top = m.iter().fold(0f64, |a, &x| a.max(x.abs()));
        if top > 0.0 {
            m.iter_mut().for_each(|x| *x /= top);
        }
        return m;
    }
    let k = count.div_ceil(2);
    (0..count)
        .flat_map(|c| {
            (0..dim).map(move |d| match (d == c % k, c < k) {
                (true, true) => 1.0,
                (true, false) => -1.0,
                (false, _) => 0.0,
            })
        })
        .collect()
}

/// The subgraph of one component's points `pts`, numbered `0..pts.len()` in their order
/// (`local` is scratch: each point's number within its component).
fn component_graph(g: &Graph, starts: &[usize], pts: &[u32], local: &mut [u32]) -> Csr<'static> {
    for (li, &p) in pts.iter().enumerate() {
        local[p as usize] = li as u32;
    }
    let mut start = Vec::with_capacity(pts.len() + 1);
    let (mut tail, mut weight) = (Vec::new(), Vec::new());
    start.push(0);
    for &p in pts {
        let p = p as usize;
        for e in starts[p]..starts[p + 1] {
            tail.push(local[g.tail[e] as usize]);
            weight.push(g.weight[e]);
        }
        start.push(tail.len());
    }
    Csr {
        start: start.into(),
        tail: tail.into(),
        weight: weight.into(),
    }
}

/// The leading `dim` of `cols` eigenvectors (row-major), and their eigenvalues.
fn leading(v: &[f64], rep: SpectralReport, cols: usize, dim: usize) -> (Vec<f64>, SpectralReport) {
    let k = dim.min(rep.eigenvalues.len());
    let out = v
        .par_chunks(cols)
        .flat_map_iter(|row| row[..dim].iter().copied())
        .collect();
    (
        out,
        SpectralReport {
            eigenvalues: rep.eigenvalues[..k].to_vec(),
            ..rep
        },
    )
}

/// For each of the points (rows of `dim`), the distance to the nearest point at a
/// positive distance (infinite where there is none): a sweep along the first coordinate
/// that stops once that coordinate alone is farther than the best so far, so many
/// components cost about `n log n`, not `n²`.
fn nearest_distinct(x: &[f64], dim: usize) -> Vec<f64> {
    let n = x.len() / dim.max(1);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| x[a * dim].total_cmp(&x[b * dim]).then(a.cmp(&b)));
    let dist = |a: usize, b: usize| {
        (0..dim)
            .map(|k| (x[a * dim + k] - x[b * dim + k]).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    let mut best = vec![f64::INFINITY; n];
    for (r, &a) in order.iter().enumerate() {
        for &b in &order[r + 1..] {
            if x[b * dim] - x[a * dim] > best[a] {
                break;
            }
            let d = dist(a, b);
            if d > 0.0 {
                best[a] = best[a].min(d);
            }
        }
        for &b in order[..r].iter().rev() {
            if x[a * dim] - x[b * dim] > best[a] {
                break;
            }
            let d = dist(a, b);
            if d > 0.0 {
                best[a] = best[a].min(d);
            }
        }
    }
    best
}

/// umap-learn's `noisy_scale_coords` (largest |coordinate| 10, N(0, 10⁻⁴) noise) followed
/// by the min–max scaling to `[0, 10]` per dimension its optimisation starts with.
fn scale_with_noise(x: &[f64], dim: usize, seed: u64) -> Vec<f32> {
    let top = x.iter().fold(0f64, |a, &v| a.max(v.abs()));
    let expand = if top > 0.0 { 10.0 / top } else { 1.0 };
    let mut r = Rng::new(seed, STREAM_NOISE);
    let y: Vec<f32> = x
        .iter()
        .map(|&v| (v * expand) as f32 + (1e-4 * r.normal()) as f32)
        .collect();
    let mut out = vec![0f32; y.len()];
    for d in 0..dim {
        let (lo, hi) = y
            .iter()
            .skip(d)
            .step_by(dim)
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| {
                (l.min(v), h.max(v))
            });
        let span = if hi > lo { hi - lo } else { 1.0 };
        for (o, &v) in out
            .iter_mut()
            .skip(d)
            .step_by(dim)
            .zip(y.iter().skip(d).step_by(dim))
        {
            *o = 10.0 * (v - lo) / span;
        }
    }
    out
}

/// The `dim` leading non-trivial eigenvectors of a connected graph's normalised adjacency
/// (row-major `n × dim`, by descending eigenvalue of `N`).
fn eigenvectors(g: &Csr, dim: usize, seed: u64) -> (Vec<f64>, SpectralReport) {
    let n = g.n();
    let mut degree = vec![0f64; n];
    for (i, d) in degree.iter_mut().enumerate() {
        *d = g.weight[g.start[i]..g.start[i + 1]]
            .iter()
            .map(|&w| w as f64)
            .sum();
    }
    let inv_sqrt: Vec<f64> = degree
        .iter()
        .map(|&d| if d > 0.0 { 1.0 / d.sqrt() } else { 0.0 })
        .collect();
    let norm = degree.iter().sum::<f64>().sqrt();
    let trivial: Vec<f64> = degree.iter().map(|&d| d.sqrt() / norm).collect();
    if n <= DENSE_MAX.max(dim + 2) {
        return dense(g, &inv_sqrt, dim);
    }
    // The normalised weight of each edge, once: w(i, j) / √(deg i · deg j).
    let nw: Vec<f32> = (0..n)
        .into_par_iter()
        .flat_map_iter(|i| (g.start[i]..g.start[i + 1]).map(move |e| (e, i)))
        .map(|(e, i)| (g.weight[e] as f64 * inv_sqrt[i] * inv_sqrt[g.tail[e] as usize]) as f32)
        .collect();
    let op = Op { g, nw: &nw };
    let m = block_width(dim).min(n - 2);
    let mut r = Rng::new(seed, STREAM_START);
    // The block in f32 (the gathers of neighbours' rows are what a product waits on), all
    // sums in f64.
    let mut v: Vec<f32> = (0..n * m).map(|_| r.normal() as f32).collect();
    let mut w = vec![0f32; n * m];
    let mut prev = vec![0f32; n * m];
    for a in [&v, &w, &prev] {
        crate::numeric::pages::advise(a);
    }
    deflate(&mut v, &trivial, m);
    orthonormalise(&mut v, m);
    let mut theta = rayleigh_ritz(&op, &mut v, &mut w, m);
    let mut matvecs = 1;
    let mut residual;
    loop {
        residual = residuals(&v, &w, &theta, m, dim);
        tracing::debug!(
            matvecs,
            residual,
            cut = theta[m - 1],
            "spectral init: round"
        );
        if residual <= TOL || matvecs >= MAX_MATVECS {
            break;
        }
        // Damp [-1, cut], grow what lies above. No eigenvalue of `N` exceeds 1, so the
        // degree bounds every growth by 1e6: the f32 block stays well conditioned for
        // Cholesky QR (and finite).
        let cut = theta[m - 1].min(theta[0] - 1e-9);
        let (centre, half) = ((cut - 1.0) / 2.0, ((cut + 1.0) / 2.0).max(1e-6));
        let x_max = ((1.0 - centre) / half).max(1.0 + 1e-12);
        let degree = ((1e6f64.acosh() / x_max.acosh()).floor() as usize)
            .clamp(2, 60)
            .min(MAX_MATVECS - matvecs);
        filter(&op, &mut v, &mut w, &mut prev, m, degree, centre, half);
        matvecs += degree;
        deflate(&mut v, &trivial, m);
        orthonormalise(&mut v, m);
        theta = rayleigh_ritz(&op, &mut v, &mut w, m);
        matvecs += 1;
    }
    let out: Vec<f64> = v
        .par_chunks(m)
        .flat_map_iter(|row| row[..dim].iter().map(|&x| x as f64))
        .collect();
    let eigenvalues = theta[..dim].iter().map(|t| 1.0 - t).collect();
    (
        out,
        SpectralReport {
            components: 1,
            matvecs,
            residual,
            converged: residual <= TOL,
            eigenvalues,
        },
    )
}

/// Vectors in the block: twice the wanted ones, and at least 10. The guard vectors keep
/// the filter's cut below the wanted eigenvalues; with fewer than about 10, a layout of 2
/// or 3 dimensions needs twice the products, as two of its eigenvalues sit close to the
/// cut (632k galaxies, 2-D: 143 products with 6 vectors, 124 with 8, 68 with 10, 65 with
/// 12; 28.7, 27.0, 18.4, 17.8 s).
fn block_width(dim: usize) -> usize {
    (2 * dim).max(10)
}

/// `N = D^-1/2 W D^-1/2` as an operator on row-major blocks.
struct Op<'a> {
    g: &'a Csr<'a>,
    nw: &'a [f32],
}

impl Op<'_> {
    /// `out = α·N·x + β·x + γ·z` (rows of `m`), one pass over the edges, in parallel over
    /// blocks of [`PRODUCT_ROWS`] rows. The common block widths are compiled in (a row's
    /// sums then live in registers) and built for AVX2 where the CPU has it: the same
    /// operations in the same order, so the same bits. 10 columns at 632k, 2 cores:
    /// 0.24 s per product against 0.72 s with the width known only at run time and no AVX2
    /// (the 5-D init 52 s -> 18 s).
    fn apply(
        &self,
        x: &[f32],
        out: &mut [f32],
        m: usize,
        alpha: f64,
        beta: f64,
        z: Option<(&[f32], f64)>,
    ) {
        let p = Product {
            x,
            m,
            alpha,
            beta,
            z,
        };
        let wide = crate::numeric::distance::avx2();
        out.par_chunks_mut(m * PRODUCT_ROWS)
            .enumerate()
            .for_each(|(b, block)| {
                #[cfg(target_arch = "x86_64")]
                if wide {
                    // SAFETY: `wide` only where the CPU has AVX2.
                    unsafe { self.rows_avx2(&p, b * PRODUCT_ROWS, block) };
                    return;
                }
                self.rows(&p, b * PRODUCT_ROWS, block)
            });
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn rows_avx2(&self, p: &Product, first: usize, block: &mut [f32]) {
        self.rows(p, first, block)
    }

    /// Rows `first..` of the product into `block`.
    #[inline(always)]
    fn rows(&self, p: &Product, first: usize, block: &mut [f32]) {
        match p.m {
            10 => self.rows_fixed::<10>(p, first, block),
            12 => self.rows_fixed::<12>(p, first, block),
            20 => self.rows_fixed::<20>(p, first, block),
            m => {
                let mut acc = vec![0f64; m];
                for (r, o) in block.chunks_mut(m).enumerate() {
                    let i = first + r;
                    acc.iter_mut().for_each(|a| *a = 0.0);
                    for (&t, &wv) in self.edges(i) {
                        let j = t as usize;
                        for (a, &y) in acc.iter_mut().zip(&p.x[j * m..(j + 1) * m]) {
                            *a += wv as f64 * y as f64;
                        }
                    }
                    p.finish(i, &acc, o);
                }
            }
        }
    }

    #[inline(always)]
    fn rows_fixed<const M: usize>(&self, p: &Product, first: usize, block: &mut [f32]) {
        let tails = &self.g.tail[..];
        for (r, o) in block.chunks_mut(M).enumerate() {
            let i = first + r;
            let mut acc = [0f64; M];
            let e0 = self.g.start[i];
            for (e, (&t, &wv)) in self.edges(i).enumerate() {
                // The rows an edge reads are scattered: start loading the one
                // `PRODUCT_AHEAD` edges on.
                if let Some(&ahead) = tails.get(e0 + e + PRODUCT_AHEAD) {
                    prefetch_row(&p.x[ahead as usize * M..][..M]);
                }
                let y: &[f32; M] = p.x[t as usize * M..][..M].try_into().expect("a row of M");
                for c in 0..M {
                    acc[c] += wv as f64 * y[c] as f64;
                }
            }
            p.finish(i, &acc, o);
        }
    }

    /// Row `i`'s edges: (tail, normalised weight).
    #[inline(always)]
    fn edges(&self, i: usize) -> impl Iterator<Item = (&u32, &f32)> {
        let r = self.g.start[i]..self.g.start[i + 1];
        self.g.tail[r.clone()].iter().zip(&self.nw[r])
    }
}

/// Edges ahead whose row a product starts loading.
const PRODUCT_AHEAD: usize = 16;

/// Rows per parallel task of [`Op::apply`].
const PRODUCT_ROWS: usize = 512;

/// The terms of one [`Op::apply`].
struct Product<'a> {
    x: &'a [f32],
    m: usize,
    alpha: f64,
    beta: f64,
    z: Option<(&'a [f32], f64)>,
}

impl Product<'_> {
    /// Output row `i`: `α·acc + β·x_i + γ·z_i`.
    #[inline(always)]
    fn finish(&self, i: usize, acc: &[f64], o: &mut [f32]) {
        let m = self.m;
        let xi = &self.x[i * m..(i + 1) * m];
        match self.z {
            Some((z, gamma)) => {
                let zi = &z[i * m..(i + 1) * m];
                for c in 0..m {
                    o[c] = (self.alpha * acc[c] + self.beta * xi[c] as f64 + gamma * zi[c] as f64)
                        as f32;
                }
            }
            None => {
                for c in 0..m {
                    o[c] = (self.alpha * acc[c] + self.beta * xi[c] as f64) as f32;
                }
            }
        }
    }
}

/// `v ← p(N) v` for the Chebyshev polynomial of `degree` on `[centre − half, centre + half]`
/// (three-term recurrence; `w` and `prev` are work blocks).
#[allow(clippy::too_many_arguments)]
fn filter(
    op: &Op,
    v: &mut Vec<f32>,
    w: &mut Vec<f32>,
    prev: &mut Vec<f32>,
    m: usize,
    degree: usize,
    centre: f64,
    half: f64,
) {
    // T1: (N − c)/e · v.
    op.apply(v, w, m, 1.0 / half, -centre / half, None);
    std::mem::swap(prev, v); // prev = T0 v
    std::mem::swap(v, w); // v = T1 v
    for _ in 1..degree {
        // T_{k+1} = 2 (N − c)/e T_k − T_{k−1}.
        op.apply(
            v,
            w,
            m,
            2.0 / half,
            -2.0 * centre / half,
            Some((prev, -1.0)),
        );
        std::mem::swap(prev, v);
        std::mem::swap(v, w);
    }
}

/// Remove the trivial direction `u` (unit norm) from each of the `m` columns of `v`.
fn deflate(v: &mut [f32], u: &[f64], m: usize) {
    let dots = cross_vec(v, u, m);
    v.par_chunks_mut(m)
        .zip(u.par_iter())
        .for_each(|(row, &ui)| {
            for (x, d) in row.iter_mut().zip(&dots) {
                *x = (*x as f64 - d * ui) as f32;
            }
        });
}

/// Rayleigh–Ritz on the orthonormal block `v`: on return `v` holds the Ritz vectors and `w`
/// their images `N v`, by descending Ritz value (returned).
fn rayleigh_ritz(op: &Op, v: &mut [f32], w: &mut [f32], m: usize) -> Vec<f64> {
    op.apply(v, w, m, 1.0, 0.0, None);
    let mut h = cross(v, w, m);
    for a in 0..m {
        for b in 0..a {
            let s = 0.5 * (h[a * m + b] + h[b * m + a]);
            h[a * m + b] = s;
            h[b * m + a] = s;
        }
    }
    let (vals, s) = symmetric_eigen(&h, m);
    rotate(v, &s, m);
    rotate(w, &s, m);
    vals
}

/// `x ← x S` for an `m × m` matrix `S`.
fn rotate(x: &mut [f32], s: &[f64], m: usize) {
    x.par_chunks_mut(m).for_each_init(
        || vec![0f64; m],
        |y, row| {
            for (c, yc) in y.iter_mut().enumerate() {
                *yc = (0..m).map(|a| row[a] as f64 * s[a * m + c]).sum();
            }
            for (x, &yc) in row.iter_mut().zip(y.iter()) {
                *x = yc as f32;
            }
        },
    );
}

/// The largest `‖w_i − θ_i v_i‖` over the first `wanted` columns.
fn residuals(v: &[f32], w: &[f32], theta: &[f64], m: usize, wanted: usize) -> f64 {
    let s = block_sum(v.len() / m, wanted, |rows, s| {
        for i in rows {
            for c in 0..wanted {
                let d = w[i * m + c] as f64 - theta[c] * v[i * m + c] as f64;
                s[c] += d * d;
            }
        }
    });
    s.iter().fold(0f64, |a, &x| a.max(x.sqrt()))
}

/// A small component, densely: all eigenpairs of `N` by Jacobi rotations.
fn dense(g: &Csr, inv_sqrt: &[f64], dim: usize) -> (Vec<f64>, SpectralReport) {
    let n = g.n();
    let mut a = vec![0f64; n * n];
    for i in 0..n {
        for e in g.start[i]..g.start[i + 1] {
            let j = g.tail[e] as usize;
            a[i * n + j] = g.weight[e] as f64 * inv_sqrt[i] * inv_sqrt[j];
        }
    }
    let (vals, vecs) = symmetric_eigen(&a, n);
    // Column 0 is the trivial vector (eigenvalue 1); the next `dim` are wanted (a component
    // of `dim + 1` points or fewer has fewer: the rest stay 0).
    let k = dim.min(n - 1);
    let mut out = vec![0f64; n * dim];
    for i in 0..n {
        for d in 0..k {
            out[i * dim + d] = vecs[i * n + d + 1];
        }
    }
    let eigenvalues = vals[1..=k].iter().map(|t| 1.0 - t).collect();
    (
        out,
        SpectralReport {
            components: 1,
            matvecs: 0,
            residual: 0.0,
            converged: true,
            eigenvalues,
        },
    )
}

/// Sums of `k` values over rows `0..rows`, by fixed blocks of [`GRAM_BLOCK`] rows: `add`
/// adds a block's rows (in order) into its own sums, and the blocks' sums are added in
/// order, so the result does not depend on the number of threads.
fn block_sum(
    rows: usize,
    k: usize,
    add: impl Fn(std::ops::Range<usize>, &mut [f64]) + Sync,
) -> Vec<f64> {
    let parts: Vec<Vec<f64>> = (0..rows.div_ceil(GRAM_BLOCK))
        .into_par_iter()
        .map(|b| {
            let mut s = vec![0f64; k];
            add(b * GRAM_BLOCK..((b + 1) * GRAM_BLOCK).min(rows), &mut s);
            s
        })
        .collect();
    let mut s = vec![0f64; k];
    for p in &parts {
        for (x, y) in s.iter_mut().zip(p) {
            *x += y;
        }
    }
    s
}

/// `AᵀB` (f64) of the `m` columns of row-major `a` and `b`.
pub(crate) fn cross(a: &[f32], b: &[f32], m: usize) -> Vec<f64> {
    block_sum(a.len() / m, m * m, |rows, g| {
        for i in rows {
            let (ra, rb) = (&a[i * m..(i + 1) * m], &b[i * m..(i + 1) * m]);
            for p in 0..m {
                for q in 0..m {
                    g[p * m + q] += ra[p] as f64 * rb[q] as f64;
                }
            }
        }
    })
}

/// `Aᵀu` for the `m` columns of row-major `a` and one vector `u`.
fn cross_vec(a: &[f32], u: &[f64], m: usize) -> Vec<f64> {
    block_sum(u.len(), m, |rows, g| {
        for i in rows {
            for p in 0..m {
                g[p] += a[i * m + p] as f64 * u[i];
            }
        }
    })
}

/// The upper-triangular `R` with `RᵀR = g`, or `None` where `g` is not positive definite.
fn cholesky_upper(g: &[f64], m: usize) -> Option<Vec<f64>> {
    let mut r = vec![0f64; m * m];
    for c in 0..m {
        for p in c..m {
            let s = g[c * m + p] - (0..c).map(|q| r[q * m + c] * r[q * m + p]).sum::<f64>();
            if p == c {
                if s <= 1e-12 * g[c * m + c].max(f64::MIN_POSITIVE) || !s.is_finite() {
                    return None;
                }
                r[c * m + c] = s.sqrt();
            } else {
                r[c * m + p] = s / r[c * m + c];
            }
        }
    }
    Some(r)
}

/// Orthonormalise the `m` columns of row-major `v` (`n × m`) in place: Cholesky QR twice
/// (one parallel pass for the Gram matrix, one for `V R⁻¹`, each time), with modified
/// Gram–Schmidt as the fallback for a rank-deficient block.
pub(crate) fn orthonormalise(v: &mut [f32], m: usize) {
    for _ in 0..2 {
        let Some(r) = cholesky_upper(&cross(v, v, m), m) else {
            return gram_schmidt(v, m);
        };
        v.par_chunks_mut(m).for_each_init(
            || vec![0f64; m],
            |y, row| {
                // Solve y R = x by forward substitution.
                for c in 0..m {
                    let s = row[c] as f64 - (0..c).map(|p| y[p] * r[p * m + c]).sum::<f64>();
                    y[c] = s / r[c * m + c];
                }
                for (x, &yc) in row.iter_mut().zip(y.iter()) {
                    *x = yc as f32;
                }
            },
        );
    }
}

/// Modified Gram–Schmidt over the columns of row-major `v`; a column in the span of the
/// earlier ones becomes 0.
fn gram_schmidt(v: &mut [f32], m: usize) {
    let n = v.len() / m;
    for c in 0..m {
        let before = (0..n)
            .map(|i| v[i * m + c] as f64 * v[i * m + c] as f64)
            .sum::<f64>()
            .sqrt();
        for p in 0..c {
            let dot: f64 = (0..n)
                .map(|i| v[i * m + c] as f64 * v[i * m + p] as f64)
                .sum();
            for i in 0..n {
                v[i * m + c] = (v[i * m + c] as f64 - dot * v[i * m + p] as f64) as f32;
            }
        }
        let norm = (0..n)
            .map(|i| v[i * m + c] as f64 * v[i * m + c] as f64)
            .sum::<f64>()
            .sqrt();
        // What is left of a column in the span of the earlier ones is rounding: drop it.
        let inv = if norm > 1e-4 * before && norm > 1e-300 {
            1.0 / norm
        } else {
            0.0
        };
        for i in 0..n {
            v[i * m + c] = (v[i * m + c] as f64 * inv) as f32;
        }
    }
}

/// Positions of `count` components for [`spectral_init`]'s `meta`: the first `dim`
/// principal components of their centroids in the data (`x`, `d` columns, input rows;
/// input row `i` is graph row `rank[i]`). umap-learn embeds the centroids spectrally with
/// the affinity `exp(−distance²)`, which underflows to the identity for
/// representations whose centroids are more than a few units apart; PCA keeps their
/// large-scale arrangement.
pub fn centroid_layout(
    x: &[f32],
    d: usize,
    rank: &[u32],
    label: &[u32],
    count: usize,
    dim: usize,
) -> Vec<f64> {
    let mut out = vec![0f64; count * dim];
    if d == 0 || count < 2 {
        return out;
    }
    let mut sum = vec![0f64; count * d];
    let mut size = vec![0usize; count];
    for (i, row) in x.chunks_exact(d).enumerate() {
        let c = label[rank[i] as usize] as usize;
        size[c] += 1;
        for (s, &v) in sum[c * d..(c + 1) * d].iter_mut().zip(row) {
            *s += v as f64;
        }
    }
    let centroids: Vec<f32> = sum
        .chunks_exact(d)
        .zip(&size)
        .flat_map(|(s, &k)| s.iter().map(move |&v| (v / k.max(1) as f64) as f32))
        .collect();
    let k = dim.min(d);
    let fit = crate::numeric::pca::fit(&centroids, d, k);
    let y = fit.transform(&centroids);
    for c in 0..count {
        for j in 0..k {
            out[c * dim + j] = y[c * k + j] as f64;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numeric::{nndescent, umap};

    /// A clustered graph: blobs of different sizes, their exact kNN graph's fuzzy union.
    fn clustered(n: usize, k: usize) -> Graph {
        let dim = 6;
        let mut r = Rng::new(8, 0);
        let centres: Vec<Vec<f64>> = (0..7)
            .map(|_| (0..dim).map(|_| r.normal() * 1.5).collect())
            .collect();
        let x: Vec<f32> = (0..n)
            .flat_map(|i| {
                let c = &centres[(i * i) % 7];
                (0..dim)
                    .map(|d| (c[d] + r.normal()) as f32)
                    .collect::<Vec<_>>()
            })
            .collect();
        let knn = nndescent::brute_force(&x, dim, k - 1);
        let (idx, dist, kk) = umap::with_self(&knn.indices, &knn.distances, knn.k);
        umap::fuzzy_simplicial_set(&idx, &dist, kk, 1.0)
    }

    #[test]
    fn chebyshev_solver_finds_the_dense_eigenpairs() {
        let g = clustered(600, 10);
        assert_eq!(components(&g).1, 1, "the test graph is connected");
        let start = row_starts(&g);
        let csr = Csr {
            start: start.clone().into(),
            tail: (&g.tail[..]).into(),
            weight: (&g.weight[..]).into(),
        };
        let dim = 4;
        let (v, report) = eigenvectors(&csr, dim, 5);
        assert!(report.converged && report.residual <= TOL, "{report:?}");
        // Brute force: the dense normalised adjacency and all its eigenpairs.
        let n = g.n;
        let mut deg = vec![0f64; n];
        for (h, w) in g.head.iter().zip(&g.weight) {
            deg[*h as usize] += *w as f64;
        }
        let mut a = vec![0f64; n * n];
        for e in 0..g.head.len() {
            let (h, t) = (g.head[e] as usize, g.tail[e] as usize);
            a[h * n + t] = g.weight[e] as f64 / (deg[h] * deg[t]).sqrt();
        }
        let (vals, _) = symmetric_eigen(&a, n);
        assert!((vals[0] - 1.0).abs() < 1e-9, "the trivial eigenvalue is 1");
        for d in 0..dim {
            // An eigenvalue error is at most residual² / gap: far below the tolerance.
            assert!(
                (report.eigenvalues[d] - (1.0 - vals[d + 1])).abs() < 1e-6,
                "eigenvalue {d}: {} against {}",
                report.eigenvalues[d],
                1.0 - vals[d + 1]
            );
            // Each vector: unit norm, orthogonal to √deg (to f32 precision: the block is
            // stored in f32), and a true eigenvector of the dense matrix.
            let col: Vec<f64> = (0..n).map(|i| v[i * dim + d]).collect();
            let norm: f64 = col.iter().map(|x| x * x).sum::<f64>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
            let along: f64 = col.iter().zip(&deg).map(|(x, d)| x * d.sqrt()).sum::<f64>()
                / deg.iter().sum::<f64>().sqrt();
            assert!(
                along.abs() < 1e-5,
                "orthogonal to the trivial vector: {along}"
            );
            let theta = 1.0 - report.eigenvalues[d];
            let res: f64 = (0..n)
                .map(|i| {
                    ((0..n).map(|j| a[i * n + j] * col[j]).sum::<f64>() - theta * col[i]).powi(2)
                })
                .sum::<f64>()
                .sqrt();
            assert!(res <= TOL * 1.01, "residual {res}");
        }
    }

    #[test]
    fn init_is_thread_independent_and_seed_independent_in_its_subspace() {
        let g = clustered(2000, 12);
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let three = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let no_meta = |_: &[u32], _: usize| Vec::new();
        let (e1, r1) = one.install(|| spectral_init(&g, 3, 4, no_meta));
        let (e3, _) = three.install(|| spectral_init(&g, 3, 4, no_meta));
        assert_eq!(e1, e3, "bit-identical at 1 and 3 threads");
        assert!(e1.iter().all(|x| (0.0..=10.0).contains(x)));
        // Another seed converges to the same eigenvalues.
        let (_, r2) = spectral_init(&g, 3, 9, no_meta);
        assert!(r1.converged && r2.converged);
        for (x, y) in r1.eigenvalues.iter().zip(&r2.eigenvalues) {
            assert!(
                (x - y).abs() < 1e-6,
                "{:?} against {:?}",
                r1.eigenvalues,
                r2.eigenvalues
            );
        }
    }

    #[test]
    fn nearest_distinct_matches_brute_force() {
        let mut r = Rng::new(6, 0);
        let dim = 3;
        let mut x: Vec<f64> = (0..300 * dim).map(|_| r.normal()).collect();
        // Duplicates (distance 0 does not count) and a lone point.
        x.copy_within(0..dim, 3 * dim);
        let lone = nearest_distinct(&[1.0, 2.0], 2);
        assert_eq!(lone, vec![f64::INFINITY]);
        let got = nearest_distinct(&x, dim);
        for a in 0..300 {
            let want = (0..300)
                .map(|b| {
                    (0..dim)
                        .map(|k| (x[a * dim + k] - x[b * dim + k]).powi(2))
                        .sum::<f64>()
                        .sqrt()
                })
                .filter(|&d| d > 0.0)
                .fold(f64::INFINITY, f64::min);
            assert_eq!(got[a], want, "point {a}");
        }
    }

    #[test]
    fn components_are_found_and_numbered_by_their_first_point() {
        let g = Graph {
            n: 6,
            head: vec![0, 3, 1, 5, 4, 2],
            tail: vec![3, 0, 5, 1, 2, 4],
            weight: vec![1.0; 6],
        };
        assert_eq!(components(&g), (vec![0, 1, 2, 0, 2, 1], 3));
    }

    #[test]
    fn many_components_are_placed_apart_by_the_meta_layout() {
        // 14 separate rings of 30 points: more than 2·dim components for dim 2.
        let (per, rings) = (30u32, 14u32);
        let mut g = Graph {
            n: (per * rings) as usize,
            head: vec![],
            tail: vec![],
            weight: vec![],
        };
        for c in 0..rings {
            for i in 0..per {
                let (a, b) = (c * per + i, c * per + (i + 1) % per);
                for (h, t) in [(a, b), (b, a)] {
                    g.head.push(h);
                    g.tail.push(t);
                    g.weight.push(1.0);
                }
            }
        }
        // Edges sorted by head, as the fuzzy union gives them.
        let mut es: Vec<(u32, u32)> = g.head.iter().copied().zip(g.tail.iter().copied()).collect();
        es.sort_unstable();
        g.head = es.iter().map(|e| e.0).collect();
        g.tail = es.iter().map(|e| e.1).collect();
        let meta = |label: &[u32], count: usize| -> Vec<f64> {
            assert_eq!(count, rings as usize);
            assert_eq!(label.len(), g.n);
            (0..count)
                .flat_map(|c| [(c % 4) as f64, (c / 4) as f64])
                .collect()
        };
        let (e, report) = spectral_init(&g, 2, 0, meta);
        assert_eq!(report.components, rings as usize);
        let centre = |c: u32| -> [f64; 2] {
            let mut s = [0.0; 2];
            for i in c * per..(c + 1) * per {
                s[0] += e[i as usize * 2] as f64 / per as f64;
                s[1] += e[i as usize * 2 + 1] as f64 / per as f64;
            }
            s
        };
        for c in 0..rings {
            for o in 0..c {
                let (a, b) = (centre(c), centre(o));
                assert!(
                    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt() > 1.0,
                    "rings {c} and {o} overlap"
                );
            }
        }
    }
}
