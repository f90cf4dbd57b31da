//! Approximate k-nearest-neighbour graphs in high dimensions (the 128-d representations
//! UMAP starts from): random-projection-tree initialisation, then NN-descent (Dong, Charikar
//! & Li 2011; the method pynndescent implements), plus an exact brute-force graph for small
//! inputs and for tests.
//!
//! **Determinism.** Every random choice draws from a stream keyed by `(seed, purpose, unit)`.
//! Each point keeps the `k` smallest `(distance, index)` pairs it is offered — a set that does
//! not depend on the order of the offers — and each round's offers are computed from a
//! snapshot of the lists taken before the round. Threads only change who makes an offer
//! when, so the graph is the same for any thread count. The convergence test counts entries
//! that are new at the end of a round, which is order-free too.

use rayon::prelude::*;

mod heap;
mod trees;

use heap::Lists;
use trees::rp_leaves;

use super::distance::{prefetch_row, sqdist};
use super::rng::stream::{NNDESCENT_SAMPLE as STREAM_SAMPLE, NNDESCENT_TREE as STREAM_TREE};
use super::rng::Rng;

/// Each point's `k` nearest other points, nearest first (distances are Euclidean, not
/// squared; ties by index).
#[derive(Clone, Debug, PartialEq)]
pub struct KnnGraph {
    pub k: usize,
    pub indices: Vec<u32>,
    pub distances: Vec<f32>,
}

impl KnnGraph {
    pub fn n(&self) -> usize {
        self.indices.len() / self.k.max(1)
    }
    pub fn neighbours(&self, i: usize) -> &[u32] {
        &self.indices[i * self.k..(i + 1) * self.k]
    }
}

/// Partners a join compares with a candidate's largest distance at once.
const OFFER_SCAN: usize = 16;

/// One local join (Dong et al.'s): `cands[..fresh]` (new candidates) meet each other and
/// every later entry of `cands` (old ones). All the distances are computed first, into a
/// matrix, and then each candidate is offered, under one lock, the partners closer than
/// its list's largest distance: a join of `m` candidates takes at most `m` locks instead of
/// two per distance that passes. The lists end the same as with the offers made one at a
/// time (a list keeps the `k` smallest distinct offers, whatever their order).
#[derive(Default)]
struct Join {
    /// `d[x * m + y]`: squared distance of `cands[x]` and `cands[y]` where the join compares them.
    d: Vec<f32>,
    /// The candidates' offers, `offers[ends[x - 1]..ends[x]]` for `cands[x]`.
    offers: Vec<(f32, u32)>,
    ends: Vec<usize>,
}

impl Join {
    fn run<'x>(
        &mut self,
        cands: &[u32],
        fresh: usize,
        point: &impl Fn(usize) -> &'x [f32],
        lists: &Lists,
    ) {
        let m = cands.len();
        debug_assert!(fresh <= m);
        // Every row and list head the join reads: start loading them all at once.
        for &c in cands {
            prefetch_row(point(c as usize));
            lists.prefetch_head(c as usize);
        }
        self.d.resize(m * m, 0.0);
        for a in 0..fresh {
            let pa = point(cands[a] as usize);
            for (b, &cb) in cands.iter().enumerate().skip(a + 1) {
                let d = sqdist(pa, point(cb as usize));
                self.d[a * m + b] = d;
                self.d[b * m + a] = d;
            }
        }
        // Each candidate's offers (the partners closer than its largest distance), and
        // the whole lists of those that get any loaded meanwhile: an offer that passes is
        // checked against the list's members.
        self.offers.clear();
        self.ends.clear();
        for (x, &cx) in cands.iter().enumerate() {
            let worst = lists.worst(cx as usize);
            let row = &self.d[x * m..(x + 1) * m];
            // A new candidate met every other; an old one, the new ones.
            let partners = if x < fresh { m } else { fresh };
            let at = self.offers.len();
            // A candidate listed twice (new and old) is never paired with itself. The
            // partners are compared `OFFER_SCAN` at a time without a branch (about half
            // pass, in no pattern a branch predictor follows), then taken in order.
            let (row, cs) = (&row[..partners], &cands[..partners]);
            let take = |mask: u32, base: usize, offers: &mut Vec<(f32, u32)>| {
                let mut mask = mask;
                while mask != 0 {
                    let y = base + mask.trailing_zeros() as usize;
                    offers.push((row[y], cs[y]));
                    mask &= mask - 1;
                }
            };
            let whole = partners - partners % OFFER_SCAN;
            for base in (0..whole).step_by(OFFER_SCAN) {
                let (r, c) = (&row[base..base + OFFER_SCAN], &cs[base..base + OFFER_SCAN]);
                let mut mask = 0u32;
                for i in 0..OFFER_SCAN {
                    mask |= u32::from((c[i] != cx) & (r[i] <= worst)) << i;
                }
                take(mask, base, &mut self.offers);
            }
            let mut mask = 0u32;
            for (i, (&r, &c)) in row[whole..].iter().zip(&cs[whole..]).enumerate() {
                mask |= u32::from((c != cx) & (r <= worst)) << i;
            }
            take(mask, whole, &mut self.offers);
            if self.offers.len() > at {
                lists.prefetch(cx as usize);
            }
            self.ends.push(self.offers.len());
        }
        let mut at = 0;
        for (&cx, &end) in cands.iter().zip(&self.ends) {
            lists.offer_all(cx as usize, &self.offers[at..end]);
            at = end;
        }
    }
}

/// Reverse lists: for each point, the points whose list names it, in ascending order, all
/// in one array (`at[j]..at[j + 1]` for point `j`). Built in parallel by ranges of points,
/// each range filled in source order, so the lists are the same for any thread count.
struct Reverse {
    at: Vec<usize>,
    src: Vec<u32>,
}

impl Reverse {
    fn of(lists: &[Vec<u32>]) -> Reverse {
        let n = lists.len();
        let mut at = vec![0usize; n + 1];
        for l in lists {
            for &j in l {
                at[j as usize + 1] += 1;
            }
        }
        for j in 0..n {
            at[j + 1] += at[j];
        }
        let mut src = vec![0u32; at[n]];
        // Ranges of points, each filled by one task scanning every list in order.
        let parts = rayon::current_num_threads().clamp(1, 64);
        let bounds: Vec<usize> = (0..=parts).map(|c| c * n / parts).collect();
        let mut rest = &mut src[..];
        let mut pieces = Vec::with_capacity(parts);
        for c in 0..parts {
            let (piece, tail) =
                std::mem::take(&mut rest).split_at_mut(at[bounds[c + 1]] - at[bounds[c]]);
            pieces.push((bounds[c], bounds[c + 1], piece));
            rest = tail;
        }
        pieces.into_par_iter().for_each(|(lo, hi, piece)| {
            let base = at[lo];
            let mut next: Vec<usize> = at[lo..hi].iter().map(|&a| a - base).collect();
            for (i, l) in lists.iter().enumerate() {
                for &j in l {
                    let j = j as usize;
                    if (lo..hi).contains(&j) {
                        piece[next[j - lo]] = i as u32;
                        next[j - lo] += 1;
                    }
                }
            }
        });
        Reverse { at, src }
    }

    fn of_point(&self, j: usize) -> &[u32] {
        &self.src[self.at[j]..self.at[j + 1]]
    }
}

/// The exact graph by comparing every pair (O(n²·d)): for small inputs and tests.
pub fn brute_force(x: &[f32], dim: usize, k: usize) -> KnnGraph {
    let n = x.len() / dim;
    assert!(k >= 1 && k < n, "k = {k} for {n} points");
    let rows: Vec<(Vec<u32>, Vec<f32>)> = (0..n)
        .into_par_iter()
        .map(|i| {
            let p = &x[i * dim..(i + 1) * dim];
            let mut all: Vec<(f32, u32)> = (0..n)
                .filter(|&j| j != i)
                .map(|j| (sqdist(p, &x[j * dim..(j + 1) * dim]), j as u32))
                .collect();
            all.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            all.truncate(k);
            all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            (
                all.iter().map(|e| e.1).collect(),
                all.iter().map(|e| e.0.sqrt()).collect(),
            )
        })
        .collect();
    let mut g = KnnGraph {
        k,
        indices: Vec::with_capacity(n * k),
        distances: Vec::with_capacity(n * k),
    };
    for (i, d) in rows {
        g.indices.extend(i);
        g.distances.extend(d);
    }
    g
}

#[derive(Clone, Copy, Debug)]
pub struct Params {
    pub k: usize,
    pub seed: u64,
    pub n_trees: usize,
    pub leaf_size: usize,
    pub max_iters: usize,
    /// Stop when fewer than `delta · n · k` entries changed in a round.
    pub delta: f64,
    /// Candidates sampled per point per round.
    pub max_candidates: usize,
}

impl Params {
    /// pynndescent-like defaults for `n` points.
    pub fn for_size(n: usize, k: usize, seed: u64) -> Self {
        let n_trees = (5 + ((n as f64).powf(0.25) / 2.0).round() as usize).min(32);
        let max_iters = (5 + (n.max(2) as f64).log2().round() as usize).max(5);
        Params {
            k,
            seed,
            n_trees,
            leaf_size: k.max(30),
            max_iters,
            delta: 0.001,
            max_candidates: k.min(60),
        }
    }
}

/// The approximate k-nearest-neighbour graph of `x` (row-major, `dim` wide).
pub fn nn_descent(x: &[f32], dim: usize, p: &Params) -> KnnGraph {
    nn_descent_with_order(x, dim, p).0
}

/// [`nn_descent`], and the locality order it worked in: `rank[i]` is input row `i`'s
/// position in the leaf order of its first random-projection tree, in which most of a
/// row's neighbours sit close by. Consumers that read neighbours' rows at random (the
/// UMAP layout) can use it too.
pub fn nn_descent_with_order(x: &[f32], dim: usize, p: &Params) -> (KnnGraph, Vec<u32>) {
    let n = x.len() / dim;
    let k = p.k;
    assert!(k >= 1 && k < n, "k = {k} for {n} points");
    let t0 = std::time::Instant::now();
    let tree = |x: &[f32], t: usize| {
        let tree_seed = p.seed ^ STREAM_TREE.wrapping_mul(t as u64 + 1);
        let mut leaves = Vec::new();
        rp_leaves(
            x,
            dim,
            (0..n as u32).collect(),
            p.leaf_size,
            tree_seed,
            0,
            &mut leaves,
        );
        leaves
    };
    // The first random-projection tree, on the input. The rest of the work is done on the
    // rows in its leaf order: rows close in space are then close in memory, so the other
    // trees' small nodes and NN-descent's candidates (neighbours of neighbours) are read
    // from a few nearby places instead of all over the input.
    let first = tree(x, 0);
    let order: Vec<u32> = first.iter().flatten().copied().collect();
    let mut pos = vec![0u32; n];
    for (new, &old) in order.iter().enumerate() {
        pos[old as usize] = new as u32;
    }
    // Candidates' rows are read at random all through the descent: huge pages.
    let mut xp: Vec<f32> = super::pages::zeroed(n * dim);
    xp.par_chunks_mut(dim)
        .zip(order.par_iter())
        .for_each(|(row, &o)| row.copy_from_slice(&x[o as usize * dim..(o as usize + 1) * dim]));
    let first: Vec<Vec<u32>> = first
        .into_iter()
        .map(|l| l.into_iter().map(|i| pos[i as usize]).collect())
        .collect();
    // The other trees, in parallel, on the reordered rows (their leaves hold new indices).
    let mut trees = vec![first];
    trees.extend(
        (1..p.n_trees)
            .into_par_iter()
            .map(|t| tree(&xp, t))
            .collect::<Vec<_>>(),
    );
    tracing::debug!(
        trees = p.n_trees,
        secs = t0.elapsed().as_secs_f64(),
        "nn-descent: random-projection trees"
    );
    let g = descend(&xp, dim, p, &trees);
    // Back to input order, each row sorted by (distance, input index).
    let mut out = KnnGraph {
        k,
        indices: vec![0; n * k],
        distances: vec![0.0; n * k],
    };
    out.indices
        .par_chunks_mut(k)
        .zip(out.distances.par_chunks_mut(k))
        .enumerate()
        .for_each(|(o, (gi, gd))| {
            let r = pos[o] as usize;
            let mut e: Vec<(f32, u32)> = g.distances[r * k..(r + 1) * k]
                .iter()
                .copied()
                .zip(
                    g.indices[r * k..(r + 1) * k]
                        .iter()
                        .map(|&j| order[j as usize]),
                )
                .collect();
            e.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            for (s, (d, j)) in e.into_iter().enumerate() {
                gi[s] = j;
                gd[s] = d;
            }
        });
    (out, pos)
}

/// NN-descent from the leaves of `trees` over `x` (already in locality order).
fn descend(x: &[f32], dim: usize, p: &Params, trees: &[Vec<Vec<u32>>]) -> KnnGraph {
    let n = x.len() / dim;
    let lists = Lists::new(n, p.k);
    let t0 = std::time::Instant::now();
    from_leaves(x, dim, p, trees, &lists);
    tracing::debug!(secs = t0.elapsed().as_secs_f64(), "nn-descent: leaf pairs");
    for iter in 0..p.max_iters {
        let t0 = std::time::Instant::now();
        let changed = round(x, dim, p, iter, &lists);
        tracing::debug!(
            iter,
            changed,
            secs = t0.elapsed().as_secs_f64(),
            "nn-descent: round"
        );
        if (changed as f64) < p.delta * (n * p.k) as f64 {
            break;
        }
    }
    sorted_graph(&lists, n, p.k)
}

/// The first lists: all pairs within a leaf, tree by tree; then, for points of tiny inputs
/// that still lack `k` neighbours, seeded random offers.
fn from_leaves(x: &[f32], dim: usize, p: &Params, trees: &[Vec<Vec<u32>>], lists: &Lists) {
    let n = x.len() / dim;
    let point = |i: usize| &x[i * dim..(i + 1) * dim];
    for leaves in trees {
        leaves
            .par_iter()
            .for_each_init(Join::default, |join, leaf| {
                join.run(leaf, leaf.len(), &point, lists)
            });
    }
    // Offers go to the short point only, so no other thread touches its list meanwhile.
    (0..n).into_par_iter().for_each(|i| {
        let mut r = Rng::new(p.seed, STREAM_SAMPLE + i as u64);
        let mut h = lists.lock(i);
        let mut tries = 0;
        while h.len() < p.k && tries < 4 * n {
            let j = r.below(n as u64) as usize;
            if j != i {
                h.push(sqdist(point(i), point(j)), j as u32);
            }
            tries += 1;
        }
    });
}

/// One round: sample each point's candidates, then join them; the number of entries the
/// round added.
fn round(x: &[f32], dim: usize, p: &Params, iter: usize, lists: &Lists) -> usize {
    let n = x.len() / dim;
    let point = |i: usize| &x[i * dim..(i + 1) * dim];
    let (new_c, old_c) = candidates(n, p, iter, lists);
    // Local joins: every new candidate meets every other new one and every old one.
    (0..n).into_par_iter().for_each_init(
        || (Join::default(), Vec::new()),
        |(join, cands), v| {
            let (nc, oc) = (&new_c[v], &old_c[v]);
            cands.clear();
            cands.extend_from_slice(nc);
            cands.extend_from_slice(oc);
            join.run(cands, nc.len(), &point, lists);
        },
    );
    (0..n)
        .into_par_iter()
        .map(|i| {
            let h = lists.lock(i);
            (0..h.len()).filter(|&s| h.is_new(s)).count()
        })
        .sum()
}

/// Each point's new and old candidates for round `iter`: its sampled new and old
/// neighbours (sampled new ones become old), then its reverse neighbours, each list
/// sampled down to `max_candidates`.
fn candidates(n: usize, p: &Params, iter: usize, lists: &Lists) -> (Vec<Vec<u32>>, Vec<Vec<u32>>) {
    let mc = p.max_candidates;
    let (mut new_c, mut old_c): (Vec<Vec<u32>>, Vec<Vec<u32>>) = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut h = lists.lock(i);
            let mut r = Rng::new(
                p.seed ^ (iter as u64 + 1).wrapping_mul(0x9E37_79B9),
                STREAM_SAMPLE + i as u64,
            );
            // Sample by a seeded shuffle of the entries in index order (the heap's own
            // order depends on the order of offers), keep `mc`, sort by index.
            let mut fresh: Vec<usize> = (0..h.len()).filter(|&s| h.is_new(s)).collect();
            fresh.sort_unstable_by_key(|&s| h.idx(s));
            r.shuffle(&mut fresh);
            fresh.truncate(mc);
            fresh.sort_unstable_by_key(|&s| h.idx(s));
            let news: Vec<u32> = fresh.iter().map(|&s| h.idx(s)).collect();
            for &s in &fresh {
                h.set_new(s, false);
            }
            let mut olds: Vec<u32> = (0..h.len())
                .filter(|&s| !h.is_new(s) && !news.contains(&h.idx(s)))
                .map(|s| h.idx(s))
                .collect();
            olds.sort_unstable();
            (news, olds)
        })
        .unzip();
    // Reverse neighbours, sampled to `mc`.
    let (rev_new, rev_old) = (Reverse::of(&new_c), Reverse::of(&old_c));
    new_c
        .par_iter_mut()
        .zip(old_c.par_iter_mut())
        .enumerate()
        .for_each(|(i, (nc, oc))| {
            let mut r = Rng::new(
                p.seed ^ (iter as u64 + 1).wrapping_mul(0x85EB_CA6B),
                STREAM_SAMPLE + i as u64,
            );
            // Forward and reverse candidates together, sampled down to `mc`.
            for (list, rev) in [
                (&mut *nc, rev_new.of_point(i)),
                (&mut *oc, rev_old.of_point(i)),
            ] {
                for &v in rev {
                    if !list.contains(&v) {
                        list.push(v);
                    }
                }
                if list.len() > mc {
                    r.shuffle(list);
                    list.truncate(mc);
                    list.sort_unstable();
                }
            }
        });
    (new_c, old_c)
}

/// The lists as a kNN graph: each point's neighbours by distance (ties by index).
fn sorted_graph(lists: &Lists, n: usize, k: usize) -> KnnGraph {
    let mut g = KnnGraph {
        k,
        indices: vec![0; n * k],
        distances: vec![0.0; n * k],
    };
    g.indices
        .par_chunks_mut(k)
        .zip(g.distances.par_chunks_mut(k))
        .enumerate()
        .for_each(|(i, (gi, gd))| {
            let h = lists.lock(i);
            let mut e: Vec<(f32, u32)> = (0..h.len()).map(|s| (h.d(s), h.idx(s))).collect();
            e.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            for (s, (d, j)) in e.into_iter().enumerate() {
                gi[s] = j;
                gd[s] = d.sqrt();
            }
        });
    g
}

/// Share of the exact neighbours found, averaged over points.
pub fn recall(approx: &KnnGraph, exact: &KnnGraph) -> f64 {
    let n = exact.n();
    let k = exact.k.min(approx.k);
    let hits: usize = (0..n)
        .map(|i| {
            let a = &approx.neighbours(i)[..k];
            exact.neighbours(i)[..k]
                .iter()
                .filter(|j| a.contains(j))
                .count()
        })
        .sum();
    hits as f64 / (n * k) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mixture(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut r = Rng::new(seed, 0);
        let centres: Vec<Vec<f64>> = (0..20)
            .map(|_| (0..dim).map(|_| r.normal() * 3.0).collect())
            .collect();
        (0..n)
            .flat_map(|_| {
                let c = &centres[r.below(20) as usize];
                (0..dim)
                    .map(|d| (c[d] + r.normal()) as f32)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn brute_force_is_sorted_and_excludes_self() {
        let x = mixture(300, 16, 1);
        let g = brute_force(&x, 16, 10);
        for i in 0..300 {
            assert!(!g.neighbours(i).contains(&(i as u32)));
            let d = &g.distances[i * 10..(i + 1) * 10];
            assert!(d.windows(2).all(|w| w[0] <= w[1]));
        }
    }

    #[test]
    fn recall_against_brute_force() {
        let (n, dim, k) = (6000, 32, 15);
        let x = mixture(n, dim, 2);
        let exact = brute_force(&x, dim, k);
        let approx = nn_descent(&x, dim, &Params::for_size(n, k, 7));
        let r = recall(&approx, &exact);
        assert!(r >= 0.95, "recall {r}");
        // Distances reported are the true distances of the neighbours reported.
        for i in 0..n {
            for (s, &j) in approx.neighbours(i).iter().enumerate() {
                let d = sqdist(
                    &x[i * dim..(i + 1) * dim],
                    &x[j as usize * dim..(j as usize + 1) * dim],
                )
                .sqrt();
                assert_eq!(d, approx.distances[i * k + s]);
            }
        }
    }

    #[test]
    fn locality_rank_is_a_permutation_that_keeps_neighbours_close() {
        let (n, dim, k) = (6000, 32, 15);
        let x = mixture(n, dim, 2);
        let (g, rank) = nn_descent_with_order(&x, dim, &Params::for_size(n, k, 7));
        assert_eq!(g, nn_descent(&x, dim, &Params::for_size(n, k, 7)));
        let mut seen = vec![false; n];
        for &r in &rank {
            assert!(
                !std::mem::replace(&mut seen[r as usize], true),
                "rank {r} twice"
            );
        }
        // Neighbours are much closer in rank than random pairs (n / 3 apart on average;
        // measured: about n / 11).
        let gap: f64 = (0..n)
            .flat_map(|i| g.neighbours(i).iter().map(move |&j| (i, j as usize)))
            .map(|(i, j)| (rank[i] as f64 - rank[j] as f64).abs())
            .sum::<f64>()
            / (n * k) as f64;
        assert!(gap < n as f64 / 9.0, "mean rank gap {gap}");
    }

    #[test]
    fn reverse_lists_name_their_sources_in_order_at_any_thread_count() {
        let n = 5000;
        let mut r = Rng::new(9, 0);
        let lists: Vec<Vec<u32>> = (0..n)
            .map(|_| (0..r.below(12)).map(|_| r.below(n as u64) as u32).collect())
            .collect();
        let mut want: Vec<Vec<u32>> = vec![Vec::new(); n];
        for (i, l) in lists.iter().enumerate() {
            for &j in l {
                want[j as usize].push(i as u32);
            }
        }
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let rev = pool.install(|| Reverse::of(&lists));
            for (j, w) in want.iter().enumerate() {
                assert_eq!(rev.of_point(j), &w[..], "point {j}, {threads} threads");
            }
        }
    }

    #[test]
    fn same_graph_at_any_thread_count() {
        let (n, dim, k) = (3000, 24, 10);
        let x = mixture(n, dim, 3);
        let p = Params::for_size(n, k, 11);
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let four = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap();
        assert_eq!(
            one.install(|| nn_descent(&x, dim, &p)),
            four.install(|| nn_descent(&x, dim, &p))
        );
    }
}
