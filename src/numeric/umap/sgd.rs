//! The layout's stochastic gradient descent with umap-learn's semantics
//! (`optimize_layout_euclidean`, `move_other=True`): each edge fires every `max_w / w`
//! epochs and pulls its two ends together; then each of its negative samples (one per
//! `1 / negative_sample_rate` of its period) pushes the head away, each update from where
//! the last one left the head; every coordinate step is clipped at 4; the learning rate
//! decays linearly.
//!
//! **Determinism.** Each epoch, fixed chunks of [`CHUNK`] heads (in the graph's row order)
//! run in parallel. A chunk moves only its own points: it reads them live and every other
//! point as it was at the start of the epoch; negative samples come from a random stream
//! per (epoch, edge). So the layout is bit-identical for any number of threads (umap-learn
//! is reproducible only single-threaded).
//!
//! **Where this differs from umap-learn, and why it gives the same answer.** An edge whose
//! tail another chunk owns cannot move the tail; the graph holds both directions of every
//! edge with the same weight, so the tail's chunk fires the other direction at the same
//! epochs and pulls the tail, and this firing pulls the head twice as far: the pull each
//! end gets per period is umap-learn's. The order of updates inside a firing is
//! umap-learn's, and it matters: applying a firing's attraction and repulsions together
//! (as dagrun did before) put 3.5× as many galaxies in HDBSCAN leaf classes at 108k, and
//! applying the repulsions together after the attraction cost 0.02 of trustworthiness.
//!
//! **Speed.** A firing's updates form one chain (each `ln`, `exp` and division waits for
//! the last update), so a chunk walks its heads as two lanes, its first and second half,
//! in lockstep, firing by firing and sample by sample: the CPU overlaps the two chains.
//! The rows a firing reads (its tail, its negative samples, drawn from the edge's own
//! stream) are prefetched a few firings ahead. The kernel is compiled for each common
//! output dimension (1–10, 16, 32) and once for any other width, with the same arithmetic.

use rayon::prelude::*;

use super::{row_starts, Graph};
use crate::numeric::distance::{dist2, prefetch};
use crate::numeric::rng::splitmix64;

/// Epochs between samples of each edge: `max_weight / weight` (edges at zero weight never).
pub fn epochs_per_sample(weight: &[f32]) -> Vec<f64> {
    let wmax = weight.iter().copied().fold(0f32, f32::max) as f64;
    weight.iter().map(|&w| if w > 0.0 { wmax / w as f64 } else { f64::INFINITY }).collect()
}

#[derive(Clone, Copy, Debug)]
pub struct Sgd {
    pub a: f64,
    pub b: f64,
    pub n_epochs: usize,
    pub learning_rate: f64,
    pub negative_sample_rate: f64,
    pub seed: u64,
}

/// Heads per chunk: part of the numeric definition (which tails a firing can move).
pub const CHUNK: usize = 1024;
/// How many firings ahead the SGD prefetches a firing's rows.
const AHEAD: usize = 4;

/// Optimise `emb` (row-major, `dim` wide) in place; `on_epoch` is called after each epoch.
pub fn optimize(emb: &mut [f32], dim: usize, g: &Graph, s: &Sgd, on_epoch: impl FnMut(usize)) {
    match dim {
        1 => drive(emb, Fixed::<1>, g, s, on_epoch),
        2 => drive(emb, Fixed::<2>, g, s, on_epoch),
        3 => drive(emb, Fixed::<3>, g, s, on_epoch),
        4 => drive(emb, Fixed::<4>, g, s, on_epoch),
        5 => drive(emb, Fixed::<5>, g, s, on_epoch),
        6 => drive(emb, Fixed::<6>, g, s, on_epoch),
        7 => drive(emb, Fixed::<7>, g, s, on_epoch),
        8 => drive(emb, Fixed::<8>, g, s, on_epoch),
        9 => drive(emb, Fixed::<9>, g, s, on_epoch),
        10 => drive(emb, Fixed::<10>, g, s, on_epoch),
        16 => drive(emb, Fixed::<16>, g, s, on_epoch),
        32 => drive(emb, Fixed::<32>, g, s, on_epoch),
        _ => optimize_any(emb, dim, g, s, on_epoch),
    }
}

/// The kernel for any width, without a compiled-in dimension (the same arithmetic).
pub(crate) fn optimize_any(emb: &mut [f32], dim: usize, g: &Graph, s: &Sgd, on_epoch: impl FnMut(usize)) {
    drive(emb, Dynamic(dim), g, s, on_epoch)
}

/// A row width: compiled in ([`Fixed`], rows live in registers) or known at run time.
trait Width: Copy + Send + Sync {
    type Row: AsRef<[f32]> + AsMut<[f32]> + Clone;
    fn dim(self) -> usize;
    fn zero(self) -> Self::Row;
}

#[derive(Clone, Copy)]
struct Fixed<const D: usize>;

impl<const D: usize> Width for Fixed<D> {
    type Row = [f32; D];
    #[inline(always)]
    fn dim(self) -> usize {
        D
    }
    #[inline(always)]
    fn zero(self) -> [f32; D] {
        [0.0; D]
    }
}

#[derive(Clone, Copy)]
struct Dynamic(usize);

impl Width for Dynamic {
    type Row = Vec<f32>;
    fn dim(self) -> usize {
        self.0
    }
    fn zero(self) -> Vec<f32> {
        vec![0.0; self.0]
    }
}

#[inline(always)]
fn load<W: Width>(w: W, to: &mut W::Row, x: &[f32], i: usize) {
    let d = w.dim();
    to.as_mut().copy_from_slice(&x[i * d..(i + 1) * d]);
}

/// The coefficient of an edge's pull at squared distance `d2` (umap-learn's attractive
/// gradient), or `None` where the ends coincide.
#[inline(always)]
pub(super) fn attraction(a: f32, b: f32, d2: f32) -> Option<f32> {
    (d2 > 0.0).then(|| {
        let pb = (b * d2.ln()).exp();
        -2.0 * a * b * (pb / d2) / (a * pb + 1.0)
    })
}

/// The coefficient of a negative sample's push at squared distance `d2`.
#[inline(always)]
pub(super) fn repulsion(a: f32, b: f32, d2: f32) -> Option<f32> {
    (d2 > 0.0).then(|| {
        let pb = (b * d2.ln()).exp();
        2.0 * b / ((0.001 + d2) * (a * pb + 1.0))
    })
}

/// The next negative sample (a point index below `n`) from a firing's stream.
#[inline(always)]
fn negative_sample(st: &mut u64, n: usize) -> usize {
    ((u128::from(splitmix64(st)) * n as u128) >> 64) as usize
}

/// How many negative samples an edge takes at epoch `ep`: as many as are due since its
/// last ones (`next_neg`), one per `eps_neg` epochs.
#[inline(always)]
fn negatives_due(ep: f32, next_neg: f32, eps_neg: f32) -> usize {
    ((ep - next_neg) / eps_neg).max(0.0) as usize
}

/// Negative samples of one edge firing: a stream keyed by (seed, epoch, edge).
#[inline(always)]
fn negative_stream(seed: u64, epoch: usize, e: usize) -> u64 {
    seed ^ (epoch as u64 + 1).wrapping_mul(0xC2B2_AE3D_27D4_EB4F) ^ (e as u64).wrapping_mul(0x1656_67B1_9E37_79F9)
}

/// Edge ranges (by head) of each chunk of `CHUNK` points; edges are sorted by head.
fn chunk_ranges(g: &Graph, start: &[usize]) -> Vec<(usize, usize)> {
    let n = g.n;
    (0..n.div_ceil(CHUNK)).map(|c| (start[c * CHUNK], start[((c + 1) * CHUNK).min(n)])).collect()
}

/// Split `v` into the per-chunk pieces of `ranges`.
fn split_by<'a, T>(mut v: &'a mut [T], ranges: &[(usize, usize)]) -> Vec<&'a mut [T]> {
    let mut parts = Vec::with_capacity(ranges.len());
    for &(e0, e1) in ranges {
        let (x, y) = v.split_at_mut(e1 - e0);
        parts.push(x);
        v = y;
    }
    parts
}

/// What every chunk shares during the layout SGD.
struct Shared<'a> {
    /// Epochs between samples of each edge (f32: half the bytes to stream every epoch).
    eps: &'a [f32],
    rate: f32,
    /// Row offsets of the head-sorted edges.
    starts: &'a [usize],
    a: f32,
    b: f32,
    n: usize,
    seed: u64,
}

/// One chunk's work in one epoch: its points (`block`, from point `base`), its edges'
/// next sample times (from edge `e0`), and every point as it was at the epoch's start.
struct Chunk<'a> {
    base: usize,
    len: usize,
    e0: usize,
    block: &'a mut [f32],
    next: &'a mut [f32],
    next_neg: &'a mut [f32],
    snap: &'a [f32],
    ep: f32,
    epoch: usize,
    alpha: f32,
}

impl Chunk<'_> {
    #[inline(always)]
    fn owned(&self, p: usize) -> bool {
        p >= self.base && p < self.base + self.len
    }
}

/// The layout SGD: each epoch, chunks of `CHUNK` heads run in parallel (see the module).
fn drive<W: Width>(emb: &mut [f32], w: W, g: &Graph, s: &Sgd, mut on_epoch: impl FnMut(usize)) {
    let dim = w.dim();
    let eps: Vec<f32> = epochs_per_sample(&g.weight).iter().map(|&e| e as f32).collect();
    let rate = s.negative_sample_rate as f32;
    let mut next = eps.clone();
    let mut next_neg: Vec<f32> = eps.iter().map(|e| e / rate).collect();
    let starts = row_starts(g);
    let ranges = chunk_ranges(g, &starts);
    let sh = Shared { eps: &eps, rate, starts: &starts, a: s.a as f32, b: s.b as f32, n: g.n, seed: s.seed };
    let mut snapshot = emb.to_vec();
    // Every epoch streams the edge arrays and reads rows of the layout at random.
    crate::numeric::pages::advise(&snapshot);
    crate::numeric::pages::advise(emb);
    crate::numeric::pages::advise(&eps);
    crate::numeric::pages::advise(&next);
    crate::numeric::pages::advise(&next_neg);
    crate::numeric::pages::advise(&g.tail);
    crate::numeric::pages::advise(&starts);
    for epoch in 0..s.n_epochs {
        let alpha = (s.learning_rate * (1.0 - epoch as f64 / s.n_epochs as f64)) as f32;
        snapshot.copy_from_slice(emb);
        let snap = &snapshot[..];
        let parts = split_by(&mut next, &ranges).into_par_iter().zip(split_by(&mut next_neg, &ranges));
        emb.par_chunks_mut(CHUNK * dim).zip(parts).enumerate().for_each(|(c, (block, (nx, nn)))| {
            let len = block.len() / dim;
            let chunk = Chunk { base: c * CHUNK, len, e0: ranges[c].0, block, next: nx, next_neg: nn, snap, ep: epoch as f32, epoch, alpha };
            run_chunk(w, g, &sh, chunk);
        });
        on_epoch(epoch);
    }
}

/// One chunk: its firing edges, walked as two lanes in lockstep (see the module).
fn run_chunk<W: Width>(w: W, g: &Graph, sh: &Shared, mut c: Chunk) {
    // This epoch's firing edges. The rows a firing reads (its tail, its negative samples)
    // are known before it runs, so they are prefetched `AHEAD` firings early: past 8 MB of
    // layout the SGD otherwise waits on memory (425k points: 77 s -> 58 s). The firing
    // draws its samples again from the same stream: cheaper than keeping them.
    let fired: Vec<u32> = c.next.iter().enumerate().filter(|(_, &x)| x <= c.ep).map(|(le, _)| le as u32).collect();
    let half = c.len / 2;
    let split = fired.partition_point(|&le| (le as usize) < sh.starts[c.base + half] - c.e0);
    let (fa, fb) = fired.split_at(split);
    let (mut la, mut lb) = (Lane::new(w, fa, c.base), Lane::new(w, fb, c.base + half));
    while la.more() && lb.more() {
        la.prefetch_ahead(g, sh, &c);
        lb.prefetch_ahead(g, sh, &c);
        la.begin(g, sh, &mut c);
        lb.begin(g, sh, &mut c);
        while la.left > 0 && lb.left > 0 {
            la.negative(sh, &c);
            lb.negative(sh, &c);
        }
        while la.left > 0 {
            la.negative(sh, &c);
        }
        while lb.left > 0 {
            lb.negative(sh, &c);
        }
        la.end(&mut c);
        lb.end(&mut c);
    }
    for lane in [&mut la, &mut lb] {
        while lane.more() {
            lane.prefetch_ahead(g, sh, &c);
            lane.begin(g, sh, &mut c);
            while lane.left > 0 {
                lane.negative(sh, &c);
            }
            lane.end(&mut c);
        }
    }
}

/// A run of a chunk's heads and their firing edges, taken one firing at a time:
/// [`Lane::begin`] (the attraction), [`Lane::negative`] per sample, [`Lane::end`]. The
/// head's row is held in `cur` from `begin` to `end`, and `end` adds what the firing moved
/// it to the row in the chunk, so a pull on it by the other lane in between (the head is
/// that lane's tail) is kept.
struct Lane<'f, W: Width> {
    w: W,
    fired: &'f [u32],
    f: usize,
    j: usize,
    cur: W::Row,
    /// The head's row when the firing began.
    start: W::Row,
    st: u64,
    left: usize,
}

impl<'f, W: Width> Lane<'f, W> {
    fn new(w: W, fired: &'f [u32], j: usize) -> Self {
        Lane { w, fired, f: 0, j, cur: w.zero(), start: w.zero(), st: 0, left: 0 }
    }

    fn more(&self) -> bool {
        self.f < self.fired.len()
    }

    /// Prefetch the rows of the firing `AHEAD` of the next one.
    #[inline(always)]
    fn prefetch_ahead(&self, g: &Graph, sh: &Shared, c: &Chunk) {
        let d = self.w.dim();
        if let Some(&la) = self.fired.get(self.f + AHEAD) {
            let ea = c.e0 + la as usize;
            let t = g.tail[ea] as usize;
            if !c.owned(t) {
                prefetch(&c.snap[t * d..]);
            }
            let n_neg = negatives_due(c.ep, c.next_neg[la as usize], sh.eps[ea] / sh.rate);
            let mut st = negative_stream(sh.seed, c.epoch, ea);
            for _ in 0..n_neg.min(8) {
                let q = negative_sample(&mut st, sh.n);
                if !c.owned(q) {
                    prefetch(&c.snap[q * d..]);
                }
            }
        }
    }

    /// The next firing edge's attraction: both ends move, as umap-learn's `move_other`,
    /// when this chunk owns the tail; else the head moves twice as far.
    #[inline(always)]
    fn begin(&mut self, g: &Graph, sh: &Shared, c: &mut Chunk) {
        let le = self.fired[self.f] as usize;
        let e = c.e0 + le;
        while sh.starts[self.j + 1] <= e {
            self.j += 1;
        }
        let (base, alpha) = (c.base, c.alpha);
        let k = g.tail[e] as usize;
        let mut cur_row = self.w.zero();
        let mut other_row = self.w.zero();
        load(self.w, &mut cur_row, c.block, self.j - base);
        self.start = cur_row.clone();
        let owned = c.owned(k);
        if owned {
            load(self.w, &mut other_row, c.block, k - base);
        } else {
            load(self.w, &mut other_row, c.snap, k);
        }
        let (cur, other) = (cur_row.as_mut(), other_row.as_ref());
        if let Some(co) = attraction(sh.a, sh.b, dist2(cur, other)) {
            let d = self.w.dim();
            if owned {
                let tail = &mut c.block[(k - base) * d..(k - base + 1) * d];
                for t in 0..d {
                    let gd = (co * (cur[t] - other[t])).clamp(-4.0, 4.0) * alpha;
                    cur[t] += gd;
                    tail[t] -= gd;
                }
            } else {
                for t in 0..d {
                    cur[t] += 2.0 * ((co * (cur[t] - other[t])).clamp(-4.0, 4.0) * alpha);
                }
            }
        }
        self.cur = cur_row;
        let eps_neg = sh.eps[e] / sh.rate;
        c.next[le] += sh.eps[e];
        self.left = negatives_due(c.ep, c.next_neg[le], eps_neg);
        c.next_neg[le] += self.left as f32 * eps_neg;
        self.st = negative_stream(sh.seed, c.epoch, e);
    }

    /// The next negative sample pushes the head from where the last update left it.
    #[inline(always)]
    fn negative(&mut self, sh: &Shared, c: &Chunk) {
        self.left -= 1;
        let q = negative_sample(&mut self.st, sh.n);
        if q == self.j {
            return;
        }
        let mut o_row = self.w.zero();
        if c.owned(q) {
            load(self.w, &mut o_row, c.block, q - c.base);
        } else {
            load(self.w, &mut o_row, c.snap, q);
        }
        let (cur, o) = (self.cur.as_mut(), o_row.as_ref());
        if let Some(co) = repulsion(sh.a, sh.b, dist2(cur, o)) {
            for (x, &y) in cur.iter_mut().zip(o) {
                *x += (co * (*x - y)).clamp(-4.0, 4.0) * c.alpha;
            }
        }
    }

    #[inline(always)]
    fn end(&mut self, c: &mut Chunk) {
        let (d, r) = (self.w.dim(), self.j - c.base);
        let row = &mut c.block[r * d..(r + 1) * d];
        for ((x, &now), &was) in row.iter_mut().zip(self.cur.as_ref()).zip(self.start.as_ref()) {
            // Unchanged by the other lane (the usual case): exactly `now`.
            *x = if *x == was { now } else { *x + (now - was) };
        }
        self.f += 1;
    }
}
