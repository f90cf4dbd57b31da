//! Exact minimum spanning tree of the mutual-reachability graph, by Borůvka over a
//! [`KdTree`].
//!
//! The mutual-reachability distance is `max(core(a), core(b), d(a, b) / alpha)`. Each round
//! every point searches for its nearest point in another component, pruning tree nodes that
//! lie inside its own component, nodes whose lower bound
//! `max(core(p), min core in node, box distance / alpha)` exceeds the best edge found, and
//! nodes above the best edge its component has found so far. A point's search stops as soon
//! as it finds an edge at its own core distance, the least any of its edges can weigh.
//!
//! **Ties and determinism.** A point keeps the first edge of least weight in its fixed
//! depth-first order; a component keeps the least `(weight, point, neighbour)` over its
//! points (tree positions); the round's edges are added in `(weight, a, b)` order, skipping
//! any that would close a cycle. The shared per-component bound only prunes work that cannot
//! change the winner, so the tree is the same for any thread count.

use std::sync::atomic::{AtomicU32, Ordering};

use rayon::prelude::*;

use super::kdtree::{dist2, KdTree};

/// An MST edge between original point indices, with its mutual-reachability distance.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Edge {
    pub a: u32,
    pub b: u32,
    pub w: f32,
}

struct UnionFind {
    parent: Vec<u32>,
    rank: Vec<u8>,
}

impl UnionFind {
    fn new(n: usize) -> Self {
        UnionFind {
            parent: (0..n as u32).collect(),
            rank: vec![0; n],
        }
    }
    fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let p = self.parent[x as usize];
            self.parent[x as usize] = self.parent[p as usize];
            x = p;
        }
        x
    }
    fn union(&mut self, a: u32, b: u32) -> bool {
        let (a, b) = (self.find(a), self.find(b));
        if a == b {
            return false;
        }
        let (a, b) = if self.rank[a as usize] < self.rank[b as usize] {
            (b, a)
        } else {
            (a, b)
        };
        self.parent[b as usize] = a;
        if self.rank[a as usize] == self.rank[b as usize] {
            self.rank[a as usize] += 1;
        }
        true
    }
}

const NONE: u32 = u32::MAX;

/// The least squared core distance in a node and its component, and the least among
/// points of any other component: so a query from component `c` can bound the core
/// distances of the points it may connect to, ignoring its own component's.
#[derive(Clone, Copy, Debug)]
struct NodeCore {
    least: f32,
    comp: u32,
    least_else: f32,
}

impl NodeCore {
    const EMPTY: NodeCore = NodeCore {
        least: f32::INFINITY,
        comp: NONE,
        least_else: f32::INFINITY,
    };

    fn point(core2: f32, comp: u32) -> Self {
        NodeCore {
            least: core2,
            comp,
            least_else: f32::INFINITY,
        }
    }

    fn merge(self, o: NodeCore) -> NodeCore {
        if self.comp == o.comp {
            NodeCore {
                least: self.least.min(o.least),
                comp: self.comp,
                least_else: self.least_else.min(o.least_else),
            }
        } else if self.least <= o.least {
            // Everything in `o` below its least is of `o.comp` != `self.comp`.
            NodeCore {
                least: self.least,
                comp: self.comp,
                least_else: self.least_else.min(o.least),
            }
        } else {
            NodeCore {
                least: o.least,
                comp: o.comp,
                least_else: o.least_else.min(self.least),
            }
        }
    }

    /// Least squared core distance among the node's points outside component `c`.
    fn least_other(&self, c: u32) -> f32 {
        if self.comp != c {
            self.least
        } else {
            self.least_else
        }
    }
}

/// The MST of `tree`'s points under mutual reachability. `core` holds core distances by
/// tree position. Returns `n - 1` edges (original indices), sorted by `(w, a, b)`.
pub fn mutual_reachability_mst(tree: &KdTree, core: &[f32], alpha: f32) -> Vec<Edge> {
    let n = tree.len();
    assert_eq!(core.len(), n);
    if n < 2 {
        return Vec::new();
    }
    let inv_a2 = 1.0 / (alpha * alpha);
    let core2: Vec<f32> = core.iter().map(|c| c * c).collect();
    let mut uf = UnionFind::new(n);
    let mut comp: Vec<u32> = (0..n as u32).collect();
    let mut node_comp = vec![NONE; tree.nodes.len()];
    let mut edges: Vec<(f32, u32, u32)> = Vec::with_capacity(n - 1);
    let mut n_comp = n;
    let mut node_core = vec![NodeCore::EMPTY; tree.nodes.len()];
    while n_comp > 1 {
        for id in (0..tree.nodes.len()).rev() {
            let nd = tree.nodes[id];
            if nd.is_leaf() {
                let c = comp[nd.start as usize];
                node_comp[id] = if comp[nd.start as usize..nd.end as usize]
                    .iter()
                    .all(|&x| x == c)
                {
                    c
                } else {
                    NONE
                };
                node_core[id] = (nd.start as usize..nd.end as usize)
                    .fold(NodeCore::EMPTY, |acc, p| {
                        acc.merge(NodeCore::point(core2[p], comp[p]))
                    });
            } else {
                let (l, r) = (nd.left as usize, nd.right as usize);
                node_comp[id] = if node_comp[l] == node_comp[r] {
                    node_comp[l]
                } else {
                    NONE
                };
                node_core[id] = node_core[l].merge(node_core[r]);
            }
        }
        let bound: Vec<AtomicU32> = (0..n)
            .map(|_| AtomicU32::new(f32::INFINITY.to_bits()))
            .collect();
        let found: Vec<(f32, u32)> = (0..n)
            .into_par_iter()
            .with_min_len(256)
            .map_init(
                || Vec::with_capacity(64),
                |stack, p| {
                    nearest_other(
                        tree, &core2, &node_core, &comp, &node_comp, &bound, inv_a2, p, stack,
                    )
                },
            )
            .collect();
        // Per component, the least (w, p, q).
        let mut best: Vec<(f32, u32, u32)> = vec![(f32::INFINITY, NONE, NONE); n];
        for (p, &(w, q)) in found.iter().enumerate() {
            if q == NONE {
                continue;
            }
            let c = comp[p] as usize;
            let cand = (w, p as u32, q);
            if (cand.0, cand.1, cand.2) < (best[c].0, best[c].1, best[c].2) {
                best[c] = cand;
            }
        }
        let mut round: Vec<(f32, u32, u32)> = best
            .into_iter()
            .filter(|e| e.1 != NONE)
            .map(|(w, p, q)| (w, p.min(q), p.max(q)))
            .collect();
        round.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2)));
        round.dedup();
        assert!(!round.is_empty(), "Borůvka round found no edge");
        for (w, a, b) in round {
            if uf.union(a, b) {
                edges.push((w, a, b));
                n_comp -= 1;
            }
        }
        for (p, c) in comp.iter_mut().enumerate() {
            *c = uf.find(p as u32);
        }
    }
    let mut out: Vec<Edge> = edges
        .into_iter()
        .map(|(w2, a, b)| Edge {
            a: tree.index[a as usize],
            b: tree.index[b as usize],
            w: w2.sqrt(),
        })
        .collect();
    sort_edges(&mut out);
    out
}

/// Sort by `(w, a, b)` with `a < b`.
pub fn sort_edges(edges: &mut [Edge]) {
    for e in edges.iter_mut() {
        if e.a > e.b {
            std::mem::swap(&mut e.a, &mut e.b);
        }
    }
    edges.sort_by(|x, y| x.w.total_cmp(&y.w).then(x.a.cmp(&y.a)).then(x.b.cmp(&y.b)));
}

/// The least-weight edge from tree position `p` to another component: `(w², q)`, or
/// `(inf, NONE)` when pruned away.
#[allow(clippy::too_many_arguments)]
fn nearest_other(
    tree: &KdTree,
    core2: &[f32],
    node_core: &[NodeCore],
    comp: &[u32],
    node_comp: &[u32],
    bound: &[AtomicU32],
    inv_a2: f32,
    p: usize,
    stack: &mut Vec<(u32, f32)>,
) -> (f32, u32) {
    let c = comp[p];
    let cp = core2[p];
    let cbound = &bound[c as usize];
    let limit = || f32::from_bits(cbound.load(Ordering::Relaxed));
    if cp > limit() {
        return (f32::INFINITY, NONE);
    }
    let q = tree.point(p);
    let (mut best, mut best_q) = (f32::INFINITY, NONE);
    stack.clear();
    stack.push((0, cp));
    'search: while let Some((id, lb)) = stack.pop() {
        if lb > best || lb > limit() {
            continue;
        }
        let nd = tree.nodes[id as usize];
        if nd.is_leaf() {
            for o in nd.start as usize..nd.end as usize {
                if comp[o] == c {
                    continue;
                }
                let w = cp.max(core2[o]).max(dist2(q, tree.point(o)) * inv_a2);
                if w < best {
                    best = w;
                    best_q = o as u32;
                    if w <= cp {
                        break 'search;
                    }
                }
            }
        } else {
            let mut kids = [(nd.left, 0f32), (nd.right, 0f32)];
            for k in kids.iter_mut() {
                k.1 = if node_comp[k.0 as usize] == c {
                    f32::INFINITY
                } else {
                    cp.max(node_core[k.0 as usize].least_other(c))
                        .max(tree.min_dist2(k.0 as usize, q) * inv_a2)
                };
            }
            // Nearer child last, so it is popped first; ties keep the left child first.
            if kids[0].1 <= kids[1].1 {
                kids.swap(0, 1);
            }
            for (k, b) in kids {
                if b.is_finite() && b <= best {
                    stack.push((k, b));
                }
            }
        }
    }
    if best_q != NONE {
        cbound.fetch_min(best.to_bits(), Ordering::Relaxed);
    }
    (best, best_q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numeric::knn::core_distances;
    use crate::numeric::rng::Rng;

    /// O(n²) Prim over the dense mutual-reachability matrix: the total weight oracle.
    fn prim_total(x: &[f32], dim: usize, core: &[f32], alpha: f32) -> f64 {
        let n = x.len() / dim;
        let w = |i: usize, j: usize| -> f32 {
            let d = dist2(&x[i * dim..(i + 1) * dim], &x[j * dim..(j + 1) * dim]) / (alpha * alpha);
            (core[i] * core[i]).max(core[j] * core[j]).max(d).sqrt()
        };
        let mut in_tree = vec![false; n];
        let mut dist = vec![f32::INFINITY; n];
        dist[0] = 0.0;
        let mut total = 0f64;
        for _ in 0..n {
            let u = (0..n)
                .filter(|&i| !in_tree[i])
                .min_by(|&a, &b| dist[a].total_cmp(&dist[b]))
                .unwrap();
            in_tree[u] = true;
            total += dist[u] as f64;
            for v in 0..n {
                if !in_tree[v] {
                    dist[v] = dist[v].min(w(u, v));
                }
            }
        }
        total
    }

    fn check(x: &[f32], dim: usize, k: usize, alpha: f32) {
        let n = x.len() / dim;
        let tree = KdTree::build(x, dim);
        let core_pos = core_distances(&tree, k);
        let mut core = vec![0f32; n];
        for (pos, &c) in core_pos.iter().enumerate() {
            core[tree.index[pos] as usize] = c;
        }
        let mst = mutual_reachability_mst(&tree, &core_pos, alpha);
        assert_eq!(mst.len(), n - 1);
        // A spanning tree: n - 1 edges joining everything.
        let mut uf = UnionFind::new(n);
        for e in &mst {
            assert!(uf.union(e.a, e.b), "cycle in MST");
        }
        let total: f64 = mst.iter().map(|e| e.w as f64).sum();
        let want = prim_total(x, dim, &core, alpha);
        assert!(
            (total - want).abs() <= 1e-4 * want.max(1.0),
            "n={n} k={k}: total {total} vs Prim {want}"
        );
        // Edge weights are the mutual reachability of their endpoints.
        for e in &mst {
            let (a, b) = (e.a as usize, e.b as usize);
            let d = dist2(&x[a * dim..(a + 1) * dim], &x[b * dim..(b + 1) * dim]) / (alpha * alpha);
            let w = (core[a] * core[a]).max(core[b] * core[b]).max(d).sqrt();
            assert_eq!(w, e.w);
        }
    }

    #[test]
    fn total_weight_matches_prim() {
        for (n, dim, k, seed) in [
            (400, 2, 1, 1),
            (500, 5, 5, 2),
            (600, 3, 20, 3),
            (300, 2, 60, 4),
        ] {
            let mut r = Rng::new(seed, 0);
            // Clumps plus background, so components merge at many scales.
            let x: Vec<f32> = (0..n)
                .flat_map(|i| {
                    let c = (i % 4) as f64 * 3.0;
                    (0..dim)
                        .map(|_| (c + r.normal() * 0.7) as f32)
                        .collect::<Vec<_>>()
                })
                .collect();
            check(&x, dim, k, 1.0);
        }
    }

    #[test]
    fn ties_and_duplicates() {
        // Integer grid points with duplicates: many equal weights.
        let mut r = Rng::new(9, 0);
        let x: Vec<f32> = (0..500 * 2).map(|_| r.below(12) as f32).collect();
        check(&x, 2, 3, 1.0);
        check(&x, 2, 15, 1.0);
    }

    #[test]
    fn alpha_scales_distances() {
        let mut r = Rng::new(5, 0);
        let x: Vec<f32> = (0..300 * 3).map(|_| r.normal() as f32).collect();
        check(&x, 3, 4, 0.5);
        check(&x, 3, 4, 2.0);
    }

    #[test]
    fn independent_of_thread_count() {
        let mut r = Rng::new(8, 0);
        let x: Vec<f32> = (0..20_000 * 5).map(|_| r.normal() as f32).collect();
        let tree = KdTree::build(&x, 5);
        let core = core_distances(&tree, 10);
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let four = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap();
        let a = one.install(|| mutual_reachability_mst(&tree, &core, 1.0));
        let b = four.install(|| mutual_reachability_mst(&tree, &core, 1.0));
        assert_eq!(a, b);
    }
}
