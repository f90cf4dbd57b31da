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
//! is reproducible only single-threaded), and on any x86-64 CPU: the arithmetic is IEEE
//! additions, multiplications and divisions in a fixed order (no fused multiply-add, no
//! libm), so the AVX2 build of the kernel and the baseline one give the same bits.
//!
//! **Where this differs from umap-learn, and why it gives the same answer.** An edge whose
//! tail another chunk owns cannot move the tail; the graph holds both directions of every
//! edge with the same weight, so the tail's chunk fires the other direction at the same
//! epochs and pulls the tail, and this firing pulls the head twice as far: the pull each
//! end gets per period is umap-learn's. The order of updates inside a firing is
//! umap-learn's, and it matters: applying a firing's attraction and repulsions together
//! (as dagrun did before) put 3.5× as many galaxies in HDBSCAN leaf classes at 108k, and
//! applying the repulsions together after the attraction cost 0.02 of trustworthiness.
//! `d2^b` is computed as `2^(b·log2 d2)` with short series of our own (relative error
//! within 2e-6 of `powf` at a layout's distances, tested), not libm's `ln` and `exp`.
//!
//! **Speed.** A firing's updates form one chain (each `pow` and division waits for the
//! last update), so a chunk walks its heads as [`LANES`] lanes in lockstep, each a run of
//! heads holding about as many firings as the others: each step gathers one update's two
//! rows per lane, then computes the lanes' powers, coefficients and clipped steps
//! together (two independent 8-wide SIMD chains under AVX2, where the CPU has it). Before
//! the lanes start, one pass over the chunk's edges picks this epoch's firings (one
//! comparison for [`SCAN`] edges, no branch per edge) and does their sampling bookkeeping,
//! so the edge arrays stream from memory once. The rows a firing reads (its tail, its
//! negative samples, drawn from the edge's own stream) are prefetched a few firings ahead,
//! every cache line of them (a packed 5-D row straddles two lines one time in three;
//! fetching only the first made the 5-D SGD at 632k 12% slower). Measured and dropped: the
//! negative samples drawn once in that pass into a list (slower), padding the rows to whole
//! cache lines (no faster than prefetching both lines), prefetching into L2 only or further
//! ahead (the same), an AVX-512 build (slower). The kernel is compiled for each common
//! output dimension (1–10, 16, 32) and once for any other width, with the same arithmetic.
//! (425k galaxies, 5-D, 2 cores: 91 s with the previous two-lane scalar kernel, 47 s.)
//!
//! **Layouts together.** Nothing in the sampling depends on the layout: which edges fire
//! in an epoch, their negative samples, the step size. So layouts of one graph with the
//! same SGD parameters ([`optimize_joint`]: a pipeline's 5-D search and 2-D display, a
//! sweep's `n_components` axis) run as one layout whose row holds theirs side by side;
//! each update computes each layout's distance, power, coefficient and clipped step on its
//! own columns, so each layout gets the bits it gets alone (tested), while the firing
//! pass, the lanes' bookkeeping, the draws and the prefetches are done once. Compiled for
//! 5 + 2 columns and for 7, 12, 15, 17 and 19 in all (the sums of 2, 5 and 10, with a 2-D
//! display); any other width runs the generic build. (632k galaxies, 5-D + 2-D: 184 s
//! together where they took 132 + 117 s apart, in the same slow state of the machine.)
//!
//! **densMAP** ([`optimize_dens`], one layout alone). In the epochs the density term
//! covers, each epoch first computes every point's statistics from the layout as it was at
//! the epoch's start ([`densmap::epoch_stats`]: one pass over every edge, per point in row
//! order); then each attraction's step gains the term's own clipped step, from the two
//! ends' statistics and the edge's weight ([`densmap::coefficient`]), exactly where
//! umap-learn adds it. The term is symmetric in the edge's ends, so the tail's chunk, firing
//! the other direction, gives the tail its share, as for the attraction. Sampling, lanes and
//! the order of updates are the plain layout's; plain layouts' bits are unchanged.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use rayon::prelude::*;

use super::densmap::{self, Density, Stats};
use super::pow::pow_lanes;
use super::{row_starts, split_at_starts, Graph};
use crate::numeric::distance::{avx2, prefetch_row};
use crate::numeric::pages::zeroed;
use crate::numeric::rng::splitmix64;

/// Epochs between samples of each edge: `max_weight / weight` (edges at zero weight never).
pub fn epochs_per_sample(weight: &[f32]) -> Vec<f64> {
    let wmax = max_weight(weight);
    weight.iter().map(|&w| period(wmax, w)).collect()
}

/// The largest weight (0 for none).
fn max_weight(weight: &[f32]) -> f64 {
    weight.par_iter().copied().reduce(|| 0f32, f32::max) as f64
}

/// Epochs between samples of an edge of weight `w`, the largest being `wmax`.
#[inline]
fn period(wmax: f64, w: f32) -> f64 {
    if w > 0.0 {
        wmax / w as f64
    } else {
        f64::INFINITY
    }
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
/// Lanes a chunk walks in lockstep: part of the numeric definition (the order in which a
/// chunk's firings read and move its points); two AVX2 registers of f32 (8 lanes: 13%
/// slower at 108k points, the same at 632k).
pub(super) const LANES: usize = super::pow::WIDTH;
/// How many firings ahead a lane prefetches a firing's rows.
const AHEAD: usize = 3;
/// Firings whose negative samples a lane keeps, drawn when their rows were prefetched
/// (the firing now running and the [`AHEAD`] after it).
const RING: usize = AHEAD + 1;
/// Negative samples a prefetch draws (and fetches) of one firing; any more are drawn when
/// they are due.
const DRAWN: usize = 8;
/// Edges whose due times the firing pass compares at once. About one edge in seven is due
/// each epoch, in no pattern a branch predictor follows; with a branch per edge the pass
/// alone took 3.6 s of a 40-epoch 5-D SGD at 632k, with one comparison per 16 edges 2.7–3.3 s.
const SCAN: usize = 16;

/// Optimise `emb` (row-major, `dim` wide) in place; `on_epoch` is called after each epoch.
pub fn optimize(emb: &mut [f32], dim: usize, g: &Graph, s: &Sgd, on_epoch: impl FnMut(usize)) {
    optimize_on(emb, dim, g, s, None, avx2(), on_epoch)
}

/// [`optimize`] with densMAP's density term in the epochs it covers (see [`densmap`]).
/// Alone, never beside other layouts: the term needs each layout's own radii every epoch.
pub fn optimize_dens(
    emb: &mut [f32],
    dim: usize,
    g: &Graph,
    s: &Sgd,
    dens: &Density,
    on_epoch: impl FnMut(usize),
) {
    optimize_on(emb, dim, g, s, Some(dens), avx2(), on_epoch)
}

/// [`optimize`] with the AVX2 build of the kernel (`wide`, where the CPU has it) or the
/// baseline one.
pub(crate) fn optimize_on(
    emb: &mut [f32],
    dim: usize,
    g: &Graph,
    s: &Sgd,
    dens: Option<&Density>,
    wide: bool,
    on_epoch: impl FnMut(usize),
) {
    match dim {
        1 => drive(emb, Fixed::<1>, g, s, dens, wide, on_epoch),
        2 => drive(emb, Fixed::<2>, g, s, dens, wide, on_epoch),
        3 => drive(emb, Fixed::<3>, g, s, dens, wide, on_epoch),
        4 => drive(emb, Fixed::<4>, g, s, dens, wide, on_epoch),
        5 => drive(emb, Fixed::<5>, g, s, dens, wide, on_epoch),
        6 => drive(emb, Fixed::<6>, g, s, dens, wide, on_epoch),
        7 => drive(emb, Fixed::<7>, g, s, dens, wide, on_epoch),
        8 => drive(emb, Fixed::<8>, g, s, dens, wide, on_epoch),
        9 => drive(emb, Fixed::<9>, g, s, dens, wide, on_epoch),
        10 => drive(emb, Fixed::<10>, g, s, dens, wide, on_epoch),
        16 => drive(emb, Fixed::<16>, g, s, dens, wide, on_epoch),
        32 => drive(emb, Fixed::<32>, g, s, dens, wide, on_epoch),
        _ => drive(emb, Dynamic::one(dim), g, s, dens, wide, on_epoch),
    }
}

/// Layouts optimised together: at most this many.
pub const MAX_JOINT: usize = 8;

/// Optimise several layouts of one graph with one SGD (`embs[i]` row-major, `dims[i]`
/// wide): each gets exactly the bits [`optimize`] gives it alone, since every firing,
/// negative sample and step size depends only on the graph and `s`, never on the layout;
/// what the layouts share (the firing pass, the lanes' bookkeeping, the negative samples'
/// draws) is done once: two layouts take about 1.4 times as long as one. At most
/// [`MAX_JOINT`] layouts.
pub fn optimize_joint(
    embs: &mut [&mut [f32]],
    dims: &[usize],
    g: &Graph,
    s: &Sgd,
    on_epoch: impl FnMut(usize),
) {
    optimize_joint_on(embs, dims, g, s, avx2(), on_epoch)
}

pub(crate) fn optimize_joint_on(
    embs: &mut [&mut [f32]],
    dims: &[usize],
    g: &Graph,
    s: &Sgd,
    wide: bool,
    on_epoch: impl FnMut(usize),
) {
    assert!(
        embs.len() == dims.len() && (1..=MAX_JOINT).contains(&dims.len()),
        "1 to {MAX_JOINT} layouts, each with its width"
    );
    if let [emb] = embs {
        return optimize_on(emb, dims[0], g, s, None, wide, on_epoch);
    }
    let total: usize = dims.iter().sum();
    // The layouts side by side in one row per point.
    let mut joint = vec![0f32; g.n * total];
    let mut at = 0;
    for (e, &d) in embs.iter().zip(dims) {
        assert_eq!(
            e.len(),
            g.n * d,
            "a layout's length is its rows times its width"
        );
        joint
            .par_chunks_mut(total)
            .zip(e.par_chunks(d))
            .for_each(|(row, x)| row[at..at + d].copy_from_slice(x));
        at += d;
    }
    let mut ends = [0u16; MAX_JOINT];
    let mut end = 0;
    for (k, &d) in dims.iter().enumerate() {
        end += d;
        ends[k] = end as u16;
    }
    let ends = Ends {
        ends,
        parts: dims.len() as u8,
    };
    match (dims, total) {
        ([5, 2], _) => drive(&mut joint, Pair::<7, 5>, g, s, None, wide, on_epoch),
        (_, 7) => drive(&mut joint, Joint::<7>(ends), g, s, None, wide, on_epoch),
        (_, 12) => drive(&mut joint, Joint::<12>(ends), g, s, None, wide, on_epoch),
        (_, 15) => drive(&mut joint, Joint::<15>(ends), g, s, None, wide, on_epoch),
        (_, 17) => drive(&mut joint, Joint::<17>(ends), g, s, None, wide, on_epoch),
        (_, 19) => drive(&mut joint, Joint::<19>(ends), g, s, None, wide, on_epoch),
        (_, _) => drive(
            &mut joint,
            Dynamic { dim: total, ends },
            g,
            s,
            None,
            wide,
            on_epoch,
        ),
    }
    let mut at = 0;
    for (e, &d) in embs.iter_mut().zip(dims) {
        e.par_chunks_mut(d)
            .zip(joint.par_chunks(total))
            .for_each(|(x, row)| x.copy_from_slice(&row[at..at + d]));
        at += d;
    }
}

/// The kernel for any width, without a compiled-in dimension (the same arithmetic).
#[cfg(test)]
pub(crate) fn optimize_any(
    emb: &mut [f32],
    dim: usize,
    g: &Graph,
    s: &Sgd,
    on_epoch: impl FnMut(usize),
) {
    drive(emb, Dynamic::one(dim), g, s, None, avx2(), on_epoch)
}

/// A row width: compiled in ([`Fixed`], [`Joint`]: the lanes' columns live in registers)
/// or known at run time. `Cols` holds one value per (column, lane). A row holds one
/// layout or several side by side ([`Width::part`]), each with its own distances and steps.
trait Width: Copy + Send + Sync {
    type Cols: AsRef<[[f32; LANES]]> + AsMut<[[f32; LANES]]>;
    fn dim(self) -> usize;
    fn cols(self) -> Self::Cols;
    /// How many layouts a row holds.
    #[inline(always)]
    fn parts(self) -> usize {
        1
    }
    /// The columns of layout `k`.
    #[inline(always)]
    fn part(self, _k: usize) -> std::ops::Range<usize> {
        0..self.dim()
    }
}

/// The columns of a width compiled in: `D` columns, in registers.
macro_rules! compiled_width {
    () => {
        type Cols = [[f32; LANES]; D];
        #[inline(always)]
        fn dim(self) -> usize {
            D
        }
        #[inline(always)]
        fn cols(self) -> Self::Cols {
            [[0.0; LANES]; D]
        }
    };
}

#[derive(Clone, Copy)]
struct Fixed<const D: usize>;

impl<const D: usize> Width for Fixed<D> {
    compiled_width!();
}

/// Where each of a row's layouts ends: layout `k` ends at column `ends[k]`.
#[derive(Clone, Copy)]
struct Ends {
    ends: [u16; MAX_JOINT],
    parts: u8,
}

impl Ends {
    #[inline(always)]
    fn part(self, k: usize) -> std::ops::Range<usize> {
        (if k == 0 { 0 } else { self.ends[k - 1] as usize })..self.ends[k] as usize
    }
}

/// Several layouts, `D` columns in all.
#[derive(Clone, Copy)]
struct Joint<const D: usize>(Ends);

impl<const D: usize> Width for Joint<D> {
    compiled_width!();
    #[inline(always)]
    fn parts(self) -> usize {
        self.0.parts as usize
    }
    #[inline(always)]
    fn part(self, k: usize) -> std::ops::Range<usize> {
        self.0.part(k)
    }
}

/// Two layouts, `D` columns in all, the first `A` wide.
#[derive(Clone, Copy)]
struct Pair<const D: usize, const A: usize>;

impl<const D: usize, const A: usize> Width for Pair<D, A> {
    compiled_width!();
    #[inline(always)]
    fn parts(self) -> usize {
        2
    }
    #[inline(always)]
    fn part(self, k: usize) -> std::ops::Range<usize> {
        if k == 0 {
            0..A
        } else {
            A..D
        }
    }
}

/// Any width, one layout or several (as [`Joint`]).
#[derive(Clone, Copy)]
struct Dynamic {
    dim: usize,
    ends: Ends,
}

impl Dynamic {
    fn one(dim: usize) -> Self {
        let mut ends = [0; MAX_JOINT];
        ends[0] = dim as u16;
        Dynamic {
            dim,
            ends: Ends { ends, parts: 1 },
        }
    }
}

impl Width for Dynamic {
    type Cols = Vec<[f32; LANES]>;
    fn dim(self) -> usize {
        self.dim
    }
    fn cols(self) -> Self::Cols {
        vec![[0.0; LANES]; self.dim]
    }
    fn parts(self) -> usize {
        self.ends.parts as usize
    }
    fn part(self, k: usize) -> std::ops::Range<usize> {
        self.ends.part(k)
    }
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
    seed ^ (epoch as u64 + 1).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ (e as u64).wrapping_mul(0x1656_67B1_9E37_79F9)
}

/// The first edge of each chunk of `CHUNK` points, and the end of the edges (edges are
/// sorted by head; `start` holds each point's first edge).
fn chunk_starts(g: &Graph, start: &[usize]) -> Vec<usize> {
    (0..=g.n.div_ceil(CHUNK))
        .map(|c| start[(c * CHUNK).min(g.n)])
        .collect()
}

/// What every chunk shares during the layout SGD.
struct Shared<'a> {
    /// Epochs between samples of each edge (f32: half the bytes to stream every epoch).
    eps: &'a [f32],
    rate: f32,
    a: f32,
    b: f32,
    n: usize,
    seed: u64,
    wide: bool,
    /// Each edge's membership strength (the density term divides by it).
    weight: &'a [f32],
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
    /// This epoch's density term, where it has one: each point's [`Stats`] and the
    /// epoch's factor (see [`densmap::epoch_stats`]).
    dens: Option<(&'a [Stats], f32)>,
}

impl Chunk<'_> {
    #[inline(always)]
    fn owned(&self, p: usize) -> bool {
        p.wrapping_sub(self.base) < self.len
    }
}

/// The layout SGD: each epoch, chunks of `CHUNK` heads run in parallel (see the module).
fn drive<W: Width>(
    emb: &mut [f32],
    w: W,
    g: &Graph,
    s: &Sgd,
    dens: Option<&Density>,
    wide: bool,
    mut on_epoch: impl FnMut(usize),
) {
    assert!(
        dens.is_none() || w.parts() == 1,
        "the density term runs one layout at a time"
    );
    let dim = w.dim();
    let rate = s.negative_sample_rate as f32;
    // Each edge's period and next sample times, streamed every epoch: huge pages, filled
    // in parallel (43.7M edges at 632k galaxies).
    let m = g.weight.len();
    let (mut eps, mut next, mut next_neg): (Vec<f32>, Vec<f32>, Vec<f32>) =
        (zeroed(m), zeroed(m), zeroed(m));
    let wmax = max_weight(&g.weight);
    eps.par_iter_mut()
        .zip(next.par_iter_mut())
        .zip(next_neg.par_iter_mut())
        .zip(g.weight.par_iter())
        .for_each(|(((e, x), q), &w)| {
            *e = period(wmax, w) as f32;
            *x = *e;
            *q = *e / rate;
        });
    let starts = row_starts(g);
    let chunks = chunk_starts(g, &starts);
    let sh = Shared {
        eps: &eps,
        rate,
        a: s.a as f32,
        b: s.b as f32,
        n: g.n,
        seed: s.seed,
        wide,
        weight: &g.weight,
    };
    let mut stats: Vec<Stats> = Vec::new();
    let mut snapshot = emb.to_vec();
    // Every epoch streams the edge arrays and reads rows of the layout at random.
    crate::numeric::pages::advise(&snapshot);
    crate::numeric::pages::advise(emb);
    crate::numeric::pages::advise(&g.tail);
    crate::numeric::pages::advise(&starts);
    let (fired, negatives) = (AtomicU64::new(0), AtomicU64::new(0));
    let t = std::time::Instant::now();
    for epoch in 0..s.n_epochs {
        let alpha = (s.learning_rate * (1.0 - epoch as f64 / s.n_epochs as f64)) as f32;
        snapshot.copy_from_slice(emb);
        let snap = &snapshot[..];
        let dens = match dens {
            Some(d) if d.active(epoch, s.n_epochs) => {
                let scale =
                    densmap::epoch_stats(snap, dim, g, &starts, (sh.a, sh.b), d, &mut stats);
                Some((&stats[..], scale))
            }
            _ => None,
        };
        let parts = split_at_starts(&mut next, &chunks)
            .into_par_iter()
            .zip(split_at_starts(&mut next_neg, &chunks));
        emb.par_chunks_mut(CHUNK * dim)
            .zip(parts)
            .enumerate()
            .for_each(|(c, (block, (nx, nn)))| {
                let len = block.len() / dim;
                let chunk = Chunk {
                    base: c * CHUNK,
                    len,
                    e0: chunks[c],
                    block,
                    next: nx,
                    next_neg: nn,
                    snap,
                    ep: epoch as f32,
                    epoch,
                    alpha,
                    dens,
                };
                let (f, q) = run_chunk(w, g, &sh, chunk);
                fired.fetch_add(f, Relaxed);
                negatives.fetch_add(q, Relaxed);
            });
        on_epoch(epoch);
    }
    let (f, q) = (fired.into_inner(), negatives.into_inner());
    let secs = t.elapsed().as_secs_f64();
    tracing::debug!(
        secs,
        firings = f,
        negative_samples = q,
        ns_per_update = secs * 1e9 / (f + q).max(1) as f64,
        "umap sgd"
    );
}

/// Run one chunk's epoch; returns how many edges fired and how many negative samples they took.
fn run_chunk<W: Width>(w: W, g: &Graph, sh: &Shared, c: Chunk) -> (u64, u64) {
    #[cfg(target_arch = "x86_64")]
    if sh.wide {
        // SAFETY: `wide` is set only where the CPU has AVX2 (`avx2()`, or a test that checks).
        return unsafe { run_chunk_avx2(w, g, sh, c) };
    }
    run_chunk_body(w, g, sh, c)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn run_chunk_avx2<W: Width>(w: W, g: &Graph, sh: &Shared, c: Chunk) -> (u64, u64) {
    run_chunk_body(w, g, sh, c)
}

/// No lane's tail this step (see [`Lanes::tail`]).
const NO_TAIL: usize = usize::MAX;

/// A chunk's lanes: each walks its own run of heads' firing edges, one update per step.
struct Lanes<'f, W: Width> {
    w: W,
    fired: &'f [Fire],
    /// Each lane's next firing (an index into `fired`) and the end of its run.
    pos: [usize; LANES],
    end: [usize; LANES],
    /// Each lane's current head (a point index) and the negative samples its firing has left.
    j: [usize; LANES],
    left: [usize; LANES],
    st: [u64; LANES],
    busy: [bool; LANES],
    /// The current firing's negative samples drawn ahead (`have` of them, `used` so far)
    /// and the firings' slots in the ring of samples drawn ahead: the firing each slot
    /// holds, its samples, and its stream after them.
    have: [usize; LANES],
    used: [usize; LANES],
    ring_at: [[usize; RING]; LANES],
    ring_q: [[[u32; DRAWN]; RING]; LANES],
    ring_st: [[u64; RING]; LANES],
    /// Each lane's head row, held from its firing's start to its end, and that row when
    /// the firing began.
    x: W::Cols,
    start: W::Cols,
    /// The other end of this step's update, and the clipped step computed for it.
    y: W::Cols,
    gd: W::Cols,
    /// 1 for an attraction, 0 for a repulsion.
    attract: [f32; LANES],
    /// How many times its step moves the head: 0 (no update), 1, or 2 (an attraction
    /// whose tail another chunk owns).
    mult: [f32; LANES],
    /// The row in the chunk of an attraction's tail that moves too, or [`NO_TAIL`].
    tail: [usize; LANES],
    /// The density term's factor for this step (0 for a repulsion or without the term) and
    /// the attraction's tail (a point index).
    dens_scale: [f32; LANES],
    /// The [`Stats`] of the attraction's head and tail, read when the firing begins.
    sj: [Stats; LANES],
    sk: [Stats; LANES],
}

thread_local! {
    /// Each worker thread's list of firings, kept from chunk to chunk (see [`run_chunk_body`]).
    static FIRED: std::cell::RefCell<Vec<Fire>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A firing edge of this epoch: its index in the chunk's edges, its head and tail, and
/// how many negative samples it takes.
#[derive(Clone, Copy)]
struct Fire {
    le: u32,
    head: u32,
    tail: u32,
    n_neg: u32,
}

/// One chunk: its firing edges, walked as [`LANES`] lanes in lockstep (see the module).
#[inline(always)]
fn run_chunk_body<W: Width>(w: W, g: &Graph, sh: &Shared, mut c: Chunk) -> (u64, u64) {
    // This epoch's firings and their sampling bookkeeping, in one pass over the chunk's
    // edges in order (the edge arrays stream from memory once; the lanes then read only
    // this list).
    // The list lives on in its thread for the next chunk: made afresh for each chunk and
    // epoch (about 0.5 MB), it came as new pages from the kernel every time, and zeroing
    // them took a tenth of the SGD's time.
    let mut fired: Vec<Fire> = FIRED.with(|f| std::mem::take(&mut *f.borrow_mut()));
    fired.clear();
    fired.reserve(c.next.len() / 2);
    let ep = c.ep;
    let mut fire = |le: usize, c: &mut Chunk| {
        let e = c.e0 + le;
        let eps = sh.eps[e];
        let eps_neg = eps / sh.rate;
        let n_neg = negatives_due(ep, c.next_neg[le], eps_neg);
        c.next[le] += eps;
        c.next_neg[le] += n_neg as f32 * eps_neg;
        fired.push(Fire {
            le: le as u32,
            head: g.head[e],
            tail: g.tail[e],
            n_neg: n_neg as u32,
        });
    };
    // Due edges found `SCAN` at a time by a branch-free comparison, then taken in order.
    let m = c.next.len();
    let mut at = 0;
    while at + SCAN <= m {
        let mut due = 0u32;
        for (i, &t) in c.next[at..at + SCAN].iter().enumerate() {
            due |= u32::from(t <= ep) << i;
        }
        while due != 0 {
            fire(at + due.trailing_zeros() as usize, &mut c);
            due &= due - 1;
        }
        at += SCAN;
    }
    for le in at..m {
        if c.next[le] <= ep {
            fire(le, &mut c);
        }
    }
    let counts = (
        fired.len() as u64,
        fired.iter().map(|f| u64::from(f.n_neg)).sum(),
    );
    let mut ln = Lanes::new(w, &fired, &c);
    let (a, b, alpha) = (sh.a, sh.b, c.alpha);
    loop {
        let mut any = false;
        for l in 0..LANES {
            ln.mult[l] = 0.0;
            ln.tail[l] = NO_TAIL;
            if ln.busy[l] && ln.left[l] == 0 {
                ln.end(l, &mut c);
            }
            if ln.busy[l] {
                ln.negative(l, sh, &c);
                any = true;
            } else if ln.pos[l] < ln.end[l] {
                ln.begin(l, sh, &mut c);
                any = true;
            }
        }
        if !any {
            break;
        }
        ln.step(a, b, alpha, c.dens.is_some());
        let d = w.dim();
        for l in 0..LANES {
            if ln.tail[l] != NO_TAIL {
                let row = &mut c.block[ln.tail[l] * d..(ln.tail[l] + 1) * d];
                for (t, x) in row.iter_mut().enumerate() {
                    *x -= ln.gd.as_ref()[t][l];
                }
            }
        }
    }
    drop(ln);
    FIRED.with(|f| *f.borrow_mut() = fired);
    counts
}

impl<'f, W: Width> Lanes<'f, W> {
    /// Lanes over a chunk's firing edges: runs of whole heads, split where a lane's share
    /// of the firings (`len / LANES`) begins.
    fn new(w: W, fired: &'f [Fire], c: &Chunk) -> Self {
        let f = fired.len();
        let mut cut = [f; LANES + 1];
        cut[0] = 0;
        for (i, x) in cut.iter_mut().enumerate().take(LANES).skip(1) {
            let at = i * f / LANES;
            if at < f {
                let head = fired[at].head;
                *x = fired.partition_point(|x| x.head < head);
            }
        }
        Lanes {
            w,
            fired,
            pos: std::array::from_fn(|l| cut[l]),
            end: std::array::from_fn(|l| cut[l + 1]),
            j: [c.base; LANES],
            left: [0; LANES],
            st: [0; LANES],
            busy: [false; LANES],
            have: [0; LANES],
            used: [0; LANES],
            ring_at: [[usize::MAX; RING]; LANES],
            ring_q: [[[0; DRAWN]; RING]; LANES],
            ring_st: [[0; RING]; LANES],
            x: w.cols(),
            start: w.cols(),
            y: w.cols(),
            gd: w.cols(),
            attract: [0.0; LANES],
            mult: [0.0; LANES],
            tail: [NO_TAIL; LANES],
            dens_scale: [0.0; LANES],
            sj: [[0.0; 4]; LANES],
            sk: [[0.0; 4]; LANES],
        }
    }

    /// Lane `l`'s column of `cols` := row `row` of `from`.
    #[inline(always)]
    fn gather(w: W, cols: &mut W::Cols, l: usize, from: &[f32], row: usize) {
        let d = w.dim();
        for (t, &v) in from[row * d..(row + 1) * d].iter().enumerate() {
            cols.as_mut()[t][l] = v;
        }
    }

    #[inline(always)]
    fn gather_y(&mut self, l: usize, from: &[f32], row: usize) {
        Self::gather(self.w, &mut self.y, l, from, row);
    }

    /// Prefetch the rows of lane `l`'s firing `AHEAD` of its next one, keeping the
    /// negative samples drawn for it (up to [`DRAWN`]) in the lane's ring.
    #[inline(always)]
    fn prefetch_ahead(&mut self, l: usize, sh: &Shared, c: &Chunk) {
        let d = self.w.dim();
        let at = self.pos[l] + AHEAD;
        if at < self.end[l] {
            let fa = self.fired[at];
            let t = fa.tail as usize;
            if !c.owned(t) {
                prefetch_row(&c.snap[t * d..(t + 1) * d]);
            }
            let slot = at % RING;
            let mut st = negative_stream(sh.seed, c.epoch, c.e0 + fa.le as usize);
            for s in 0..(fa.n_neg as usize).min(DRAWN) {
                let q = negative_sample(&mut st, sh.n);
                self.ring_q[l][slot][s] = q as u32;
                if !c.owned(q) {
                    prefetch_row(&c.snap[q * d..(q + 1) * d]);
                }
            }
            self.ring_st[l][slot] = st;
            self.ring_at[l][slot] = at;
        }
    }

    /// Lane `l`'s next firing edge: its attraction this step. Both ends move, as
    /// umap-learn's `move_other`, when this chunk owns the tail; else the head moves twice
    /// as far.
    #[inline(always)]
    fn begin(&mut self, l: usize, sh: &Shared, c: &mut Chunk) {
        self.prefetch_ahead(l, sh, c);
        let at = self.pos[l];
        let f = self.fired[at];
        self.pos[l] += 1;
        self.j[l] = f.head as usize;
        Self::gather(self.w, &mut self.x, l, c.block, self.j[l] - c.base);
        Self::gather(self.w, &mut self.start, l, c.block, self.j[l] - c.base);
        let k = f.tail as usize;
        if c.owned(k) {
            self.gather_y(l, c.block, k - c.base);
            self.tail[l] = k - c.base;
            self.mult[l] = 1.0;
        } else {
            self.gather_y(l, c.snap, k);
            self.mult[l] = 2.0;
        }
        self.attract[l] = 1.0;
        if let Some((stats, scale)) = c.dens {
            (self.sj[l], self.sk[l]) = (stats[self.j[l]], stats[k]);
            self.dens_scale[l] = scale / sh.weight[c.e0 + f.le as usize];
        }
        self.left[l] = f.n_neg as usize;
        self.used[l] = 0;
        if self.ring_at[l][at % RING] == at {
            // Drawn when its rows were prefetched: the stream continues after them.
            self.have[l] = (f.n_neg as usize).min(DRAWN);
            self.st[l] = self.ring_st[l][at % RING];
        } else {
            self.have[l] = 0;
            self.st[l] = negative_stream(sh.seed, c.epoch, c.e0 + f.le as usize);
        }
        self.busy[l] = true;
    }

    /// Lane `l`'s next negative sample: it pushes the head from where the last update left it.
    #[inline(always)]
    fn negative(&mut self, l: usize, sh: &Shared, c: &Chunk) {
        self.left[l] -= 1;
        self.attract[l] = 0.0;
        self.dens_scale[l] = 0.0;
        let u = self.used[l];
        self.used[l] += 1;
        let q = if u < self.have[l] {
            self.ring_q[l][(self.pos[l] - 1) % RING][u] as usize
        } else {
            negative_sample(&mut self.st[l], sh.n)
        };
        if q != self.j[l] {
            if c.owned(q) {
                self.gather_y(l, c.block, q - c.base);
            } else {
                self.gather_y(l, c.snap, q);
            }
            self.mult[l] = 1.0;
        }
    }

    /// Lane `l`'s firing is done: what it moved the head by goes to the head's row, so a
    /// pull on it by another lane meanwhile (the head is that lane's tail) is kept.
    #[inline(always)]
    fn end(&mut self, l: usize, c: &mut Chunk) {
        let d = self.w.dim();
        let r = self.j[l] - c.base;
        for (t, x) in c.block[r * d..(r + 1) * d].iter_mut().enumerate() {
            let (now, was) = (self.x.as_ref()[t][l], self.start.as_ref()[t][l]);
            // Unchanged by another lane (the usual case): exactly `now`.
            *x = if *x == was { now } else { *x + (now - was) };
        }
        self.busy[l] = false;
    }

    /// Every lane's update at once, in each layout the row holds: squared distance,
    /// `d2^b`, the coefficient (an attraction's or a repulsion's, umap-learn's gradients),
    /// the clipped step, the move.
    #[inline(always)]
    fn step(&mut self, a: f32, b: f32, alpha: f32, dens: bool) {
        for k in 0..self.w.parts() {
            let cols = self.w.part(k);
            let (x, y) = (self.x.as_ref(), self.y.as_ref());
            let mut d2 = [0f32; LANES];
            for t in cols.clone() {
                for l in 0..LANES {
                    let u = x[t][l] - y[t][l];
                    d2[l] += u * u;
                }
            }
            let pb = pow_lanes(&d2, b);
            let mut co = [0f32; LANES];
            for l in 0..LANES {
                let q = a * pb[l] + 1.0;
                let att = self.attract[l] > 0.5;
                let num = if att { -2.0 * a * b * pb[l] } else { 2.0 * b };
                let den = if att { d2[l] * q } else { (0.001 + d2[l]) * q };
                let v = num / den;
                co[l] = if d2[l] > 0.0 { v } else { 0.0 };
            }
            if dens {
                // densMAP: an attraction's step gains the density term's, clipped apart
                // (umap-learn's order); the layout is alone in the row. Every lane computes
                // it (no branch per lane), a repulsion's is then dropped.
                let mut dc = [0f32; LANES];
                for l in 0..LANES {
                    let (sj, sk, scale) = (&self.sj[l], &self.sk[l], self.dens_scale[l]);
                    let v = 2.0 * densmap::coefficient(d2[l], pb[l], a, b, sj, sk, scale);
                    dc[l] = if scale != 0.0 { v } else { 0.0 };
                }
                let (x, y, gd) = (self.x.as_mut(), self.y.as_ref(), self.gd.as_mut());
                for t in cols {
                    for l in 0..LANES {
                        let u = x[t][l] - y[t][l];
                        let s =
                            ((co[l] * u).clamp(-4.0, 4.0) + (dc[l] * u).clamp(-4.0, 4.0)) * alpha;
                        gd[t][l] = s;
                        x[t][l] += self.mult[l] * s;
                    }
                }
                continue;
            }
            let (x, y, gd) = (self.x.as_mut(), self.y.as_ref(), self.gd.as_mut());
            for t in cols {
                for l in 0..LANES {
                    let s = (co[l] * (x[t][l] - y[t][l])).clamp(-4.0, 4.0) * alpha;
                    gd[t][l] = s;
                    x[t][l] += self.mult[l] * s;
                }
            }
        }
    }
}
