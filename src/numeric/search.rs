//! Nearest fitted points of new points in high dimensions: the query side of a kNN index,
//! as pynndescent's `query` does it. A few random-projection trees over the fitted points
//! give each query a start (the points of the leaf it falls in, in each tree); a best-first
//! search then walks the fitted points' kNN graph (each point's neighbours and, up to a cap,
//! the points that have it as a neighbour), keeping the `k` nearest seen, and stops when the
//! nearest unexpanded point is further than `(1 + epsilon)` times the `k`-th.
//!
//! **Determinism.** The trees draw from a stream per tree; a query reads only the index, so
//! its answer depends on nothing but the query point (not on the batch, its order or the
//! thread count). Ties are broken by fitted index.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::distance::{dot, prefetch_row, sqdist};
use super::kdtree::Smallest;
use super::rng::Rng;
use super::{as_bytes, Plain};

/// Points per leaf at most.
const LEAF: usize = 64;

/// One random-projection tree: splits, their hyperplanes, and the points in leaf order.
struct RpTree<'a> {
    nodes: Cow<'a, [RpNode]>,
    /// Hyperplane normals, `dim` per split node (in node order of the splits).
    normals: Cow<'a, [f32]>,
    order: Cow<'a, [u32]>,
}

#[derive(Clone, Copy)]
#[repr(C)]
struct RpNode {
    /// For a split: the child nodes and where its normal starts in `normals`; for a leaf
    /// (`left == u32::MAX`): `start..end` in `order`.
    left: u32,
    right: u32,
    normal: u32,
    offset: f32,
    start: u32,
    end: u32,
}

/// A kNN graph: `k` neighbours per point, row-major, nearest first.
#[derive(Clone, Copy)]
pub struct Neighbours<'g> {
    pub indices: &'g [u32],
    pub distances: &'g [f32],
    pub k: usize,
}

/// How an index is built: random-projection trees, reverse edges kept per point, and the
/// seed of the trees' draws.
#[derive(Clone, Copy)]
pub struct Shape {
    pub trees: usize,
    pub reverse: usize,
    pub seed: u64,
}

/// A search index over fitted points (row-major, `dim` wide) and their kNN graph.
pub struct Index<'a> {
    x: Cow<'a, [f32]>,
    dim: usize,
    trees: Vec<RpTree<'a>>,
    /// The search graph, compressed rows: `adj[start[i]..start[i + 1]]`.
    start: Cow<'a, [u64]>,
    adj: Cow<'a, [u32]>,
    /// A label per point kept with the index (e.g. its row in another order).
    labels: Cow<'a, [u32]>,
}

/// Per-thread scratch of a query (visit marks over the fitted points).
pub struct Scratch {
    mark: Vec<u32>,
    stamp: u32,
    /// Distances computed so far (for the debug trace).
    pub evaluated: u64,
}

impl<'a> Index<'a> {
    /// Build over `x` with `shape.trees` trees and the kNN graph; each point also keeps at
    /// most `shape.reverse` of the points that have it as a neighbour (the nearest). The search
    /// runs fastest with `x` in a locality order (rows close in space close in memory).
    pub fn build(
        x: &'a [f32],
        dim: usize,
        graph: Neighbours,
        shape: Shape,
        labels: Vec<u32>,
    ) -> Index<'a> {
        use rayon::prelude::*;
        let Neighbours {
            indices: knn,
            distances: knn_dist,
            k,
        } = graph;
        let Shape {
            trees: n_trees,
            reverse,
            seed,
        } = shape;
        let n = x.len() / dim;
        assert_eq!(labels.len(), n, "one label per point");
        let trees: Vec<RpTree> = (0..n_trees)
            .into_par_iter()
            .map(|t| {
                RpTree::build(
                    x,
                    dim,
                    &mut Rng::new(seed, super::rng::stream::SEARCH_TREE + t as u64),
                )
            })
            .collect();
        // Reverse edges by a counting pass (sources in order), then each point keeps its
        // `reverse` nearest ones that are not already forward edges.
        let mut rstart = vec![0usize; n + 1];
        for &j in knn {
            if (j as usize) < n {
                rstart[j as usize + 1] += 1;
            }
        }
        for j in 0..n {
            rstart[j + 1] += rstart[j];
        }
        let mut fill = rstart.clone();
        let mut rev = vec![(0f32, 0u32); rstart[n]];
        for i in 0..n {
            for s in 0..k {
                let j = knn[i * k + s] as usize;
                if j < n {
                    rev[fill[j]] = (knn_dist[i * k + s], i as u32);
                    fill[j] += 1;
                }
            }
        }
        drop(fill);
        let rows: Vec<Vec<u32>> = (0..n)
            .into_par_iter()
            .map(|i| {
                let fwd = &knn[i * k..(i + 1) * k];
                let mut row: Vec<u32> = fwd
                    .iter()
                    .copied()
                    .filter(|&j| (j as usize) < n && j as usize != i)
                    .collect();
                let mut r = rev[rstart[i]..rstart[i + 1]].to_vec();
                r.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                row.extend(
                    r.iter()
                        .map(|e| e.1)
                        .filter(|j| !fwd.contains(j) && *j as usize != i)
                        .take(reverse),
                );
                row
            })
            .collect();
        drop(rev);
        let mut start: Vec<u64> = Vec::with_capacity(n + 1);
        let mut adj = Vec::with_capacity(rows.iter().map(Vec::len).sum());
        start.push(0);
        for row in rows {
            adj.extend_from_slice(&row);
            start.push(adj.len() as u64);
        }
        Index {
            x: Cow::Borrowed(x),
            dim,
            trees,
            start: Cow::Owned(start),
            adj: Cow::Owned(adj),
            labels: Cow::Owned(labels),
        }
    }

    /// Where `q` falls in the first tree's leaf order: queries close in it read the same
    /// fitted rows, so running them one after another keeps those rows in cache.
    pub fn locality(&self, q: &[f32]) -> usize {
        self.trees.first().map_or(0, |t| t.leaf(q, self.dim).0)
    }

    pub fn n(&self) -> usize {
        self.x.len() / self.dim
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Point `i` as given to [`Index::build`].
    pub fn point_of(&self, i: usize) -> &[f32] {
        self.point(i)
    }

    /// The label kept for point `i`.
    pub fn label(&self, i: u32) -> u32 {
        self.labels[i as usize]
    }

    /// The index as bytes (little-endian, sections 8-byte aligned), for [`Index::from_bytes`].
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(MAGIC);
        for v in [self.n(), self.dim, self.trees.len(), self.adj.len()] {
            b.extend_from_slice(&(v as u64).to_le_bytes());
        }
        for t in &self.trees {
            b.extend_from_slice(&(t.nodes.len() as u64).to_le_bytes());
            b.extend_from_slice(&(t.normals.len() as u64).to_le_bytes());
        }
        section(&mut b, &self.x);
        section(&mut b, &self.labels);
        section(&mut b, &self.start);
        section(&mut b, &self.adj);
        for t in &self.trees {
            section(&mut b, &t.nodes);
            section(&mut b, &t.normals);
            section(&mut b, &t.order);
        }
        b
    }

    /// An index over `bytes` from [`Index::to_bytes`], borrowing them (e.g. a memory map,
    /// which is page-aligned). Fails on anything else.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Index<'a>, String> {
        let mut r = Reader { b: bytes, at: 0 };
        if r.take(8)? != MAGIC {
            return Err("not a search index".into());
        }
        let (n, dim, n_trees, n_adj) = (r.word()?, r.word()?, r.word()?, r.word()?);
        let sizes: Vec<(usize, usize)> = (0..n_trees)
            .map(|_| Ok((r.word()?, r.word()?)))
            .collect::<Result<_, String>>()?;
        let x = r.slice::<f32>(n * dim)?;
        let labels = r.slice::<u32>(n)?;
        let start = r.slice::<u64>(n + 1)?;
        let adj = r.slice::<u32>(n_adj)?;
        let mut trees = Vec::with_capacity(n_trees);
        for (nodes, normals) in sizes {
            trees.push(RpTree {
                nodes: Cow::Borrowed(r.slice::<RpNode>(nodes)?),
                normals: Cow::Borrowed(r.slice::<f32>(normals)?),
                order: Cow::Borrowed(r.slice::<u32>(n)?),
            });
        }
        if dim == 0
            || start.last().copied() != Some(n_adj as u64)
            || adj.iter().any(|&j| j as usize >= n)
        {
            return Err("the search index is inconsistent".into());
        }
        Ok(Index {
            x: Cow::Borrowed(x),
            dim,
            trees,
            start: Cow::Borrowed(start),
            adj: Cow::Borrowed(adj),
            labels: Cow::Borrowed(labels),
        })
    }

    pub fn scratch(&self) -> Scratch {
        Scratch {
            mark: vec![0; self.n()],
            stamp: 0,
            evaluated: 0,
        }
    }

    fn point(&self, i: usize) -> &[f32] {
        &self.x[i * self.dim..(i + 1) * self.dim]
    }

    /// The `k` nearest fitted points of `q` found: `(squared distance, index)`, nearest
    /// first (ties by index).
    pub fn query(&self, q: &[f32], k: usize, epsilon: f32, s: &mut Scratch) -> Vec<(f32, u32)> {
        let k = k.min(self.n());
        s.stamp = s.stamp.wrapping_add(1);
        if s.stamp == 0 {
            s.mark.iter_mut().for_each(|m| *m = 0);
            s.stamp = 1;
        }
        let stamp = s.stamp;
        let mut best = Smallest::new(k);
        let mut todo: BinaryHeap<Reverse<(u32, u32)>> = BinaryHeap::new();
        let scale = (1.0 + epsilon) * (1.0 + epsilon);
        let offer = |i: u32,
                     best: &mut Smallest,
                     todo: &mut BinaryHeap<Reverse<(u32, u32)>>,
                     mark: &mut [u32],
                     evaluated: &mut u64| {
            if mark[i as usize] == stamp {
                return;
            }
            mark[i as usize] = stamp;
            *evaluated += 1;
            let d = sqdist(q, self.point(i as usize));
            if d <= best.bound() * scale {
                // Squared distances are non-negative: their bits order as the values do.
                todo.push(Reverse((d.to_bits(), i)));
            }
            best.offer(d, i);
        };
        for t in &self.trees {
            let (a, b) = t.leaf(q, self.dim);
            for &i in &t.order[a..b] {
                offer(i, &mut best, &mut todo, &mut s.mark, &mut s.evaluated);
            }
        }
        while let Some(Reverse((bits, i))) = todo.pop() {
            if best.len() == k && f32::from_bits(bits) > best.bound() * scale {
                break;
            }
            let i = i as usize;
            let around = &self.adj[self.start[i] as usize..self.start[i + 1] as usize];
            // Ask for every unvisited neighbour's row first: their loads then overlap.
            for &j in around {
                if s.mark[j as usize] != stamp {
                    prefetch_row(self.point(j as usize));
                }
            }
            for &j in around {
                offer(j, &mut best, &mut todo, &mut s.mark, &mut s.evaluated);
            }
        }
        best.into_sorted()
    }
}

impl RpTree<'static> {
    fn build(x: &[f32], dim: usize, rng: &mut Rng) -> RpTree<'static> {
        let n = x.len() / dim;
        let mut b = Builder {
            nodes: Vec::new(),
            normals: Vec::new(),
        };
        let mut order: Vec<u32> = (0..n as u32).collect();
        b.split(x, dim, &mut order, 0, rng);
        RpTree {
            nodes: Cow::Owned(b.nodes),
            normals: Cow::Owned(b.normals),
            order: Cow::Owned(order),
        }
    }
}

struct Builder {
    nodes: Vec<RpNode>,
    normals: Vec<f32>,
}

impl Builder {
    /// Split `ids` (at `offset` in the leaf order) into a subtree; returns its node id.
    fn split(
        &mut self,
        x: &[f32],
        dim: usize,
        ids: &mut [u32],
        offset: usize,
        rng: &mut Rng,
    ) -> u32 {
        let id = self.nodes.len() as u32;
        self.nodes.push(RpNode {
            left: u32::MAX,
            right: u32::MAX,
            normal: 0,
            offset: 0.0,
            start: offset as u32,
            end: (offset + ids.len()) as u32,
        });
        if ids.len() <= LEAF {
            return id;
        }
        let ia = rng.below(ids.len() as u64) as usize;
        let mut ib = rng.below(ids.len() as u64 - 1) as usize;
        if ib >= ia {
            ib += 1;
        }
        let (a, b) = (ids[ia] as usize, ids[ib] as usize);
        let (pa, pb) = (&x[a * dim..(a + 1) * dim], &x[b * dim..(b + 1) * dim]);
        let normal: Vec<f32> = pa.iter().zip(pb).map(|(u, v)| u - v).collect();
        let offset_v: f32 = -normal
            .iter()
            .zip(pa.iter().zip(pb))
            .map(|(w, (u, v))| w * (u + v) / 2.0)
            .sum::<f32>();
        let mut right: Vec<bool> = ids
            .iter()
            .map(|&i| {
                margin(
                    &normal,
                    offset_v,
                    &x[i as usize * dim..(i as usize + 1) * dim],
                ) > 0.0
            })
            .collect();
        let n_right = right.iter().filter(|&&r| r).count();
        if n_right == 0 || n_right == ids.len() {
            // No hyperplane through these points separates them (duplicates): halve them.
            for (i, r) in right.iter_mut().enumerate() {
                *r = i >= ids.len() / 2;
            }
        }
        let (mut l, mut r): (Vec<u32>, Vec<u32>) = (Vec::new(), Vec::new());
        for (&i, &side) in ids.iter().zip(&right) {
            if side {
                r.push(i)
            } else {
                l.push(i)
            }
        }
        let nl = l.len();
        ids[..nl].copy_from_slice(&l);
        ids[nl..].copy_from_slice(&r);
        let normal_at = self.normals.len() as u32;
        self.normals.extend_from_slice(&normal);
        let (lo, hi) = ids.split_at_mut(nl);
        let left = self.split(x, dim, lo, offset, rng);
        let right = self.split(x, dim, hi, offset + nl, rng);
        let node = &mut self.nodes[id as usize];
        node.left = left;
        node.right = right;
        node.normal = normal_at;
        node.offset = offset_v;
        id
    }
}

impl RpTree<'_> {
    /// The leaf range of `order` that `q` falls in.
    fn leaf(&self, q: &[f32], dim: usize) -> (usize, usize) {
        let mut id = 0usize;
        loop {
            let node = self.nodes[id];
            if node.left == u32::MAX {
                return (node.start as usize, node.end as usize);
            }
            let w = &self.normals[node.normal as usize..node.normal as usize + dim];
            id = if margin(w, node.offset, q) > 0.0 {
                node.right
            } else {
                node.left
            } as usize;
        }
    }
}

const MAGIC: &[u8; 8] = b"DGRNIDX1";

// SAFETY: RpNode is `repr(C)` of six 4-byte numbers: no padding, every bit pattern a value.
unsafe impl Plain for RpNode {}

fn section<T: Plain>(b: &mut Vec<u8>, v: &[T]) {
    while !b.len().is_multiple_of(8) {
        b.push(0);
    }
    b.extend_from_slice(as_bytes(v));
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(len)
            .filter(|&e| e <= self.b.len())
            .ok_or("the search index is truncated")?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn word(&mut self) -> Result<usize, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")) as usize)
    }

    fn slice<T: Plain>(&mut self, len: usize) -> Result<&'a [T], String> {
        if cfg!(target_endian = "big") {
            return Err("search indexes are little-endian".into());
        }
        self.at = self.at.next_multiple_of(8);
        let bytes = self.take(
            len.checked_mul(std::mem::size_of::<T>())
                .ok_or("the search index is truncated")?,
        )?;
        // SAFETY: `T: Plain` accepts any bits; alignment is checked.
        let (pre, body, _) = unsafe { bytes.align_to::<T>() };
        if !pre.is_empty() || body.len() != len {
            return Err("the search index is misaligned".into());
        }
        Ok(body)
    }
}

#[inline]
fn margin(w: &[f32], offset: f32, p: &[f32]) -> f32 {
    dot(w, p) + offset
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numeric::nndescent;

    /// Galaxy-like features: 20 blobs in a 4-dimensional latent space, mapped linearly into
    /// `dim` dimensions, plus a little noise.
    fn blobs(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut r = Rng::new(99, 0);
        let centres: Vec<f64> = (0..20 * 4).map(|_| r.normal() * 4.0).collect();
        let map: Vec<f64> = (0..4 * dim).map(|_| r.normal()).collect();
        let mut out = Vec::with_capacity(n * dim);
        for i in 0..n {
            let c = (i * 7) % 20;
            let mut r = Rng::new(seed, 1 + i as u64);
            let z: Vec<f64> = (0..4).map(|l| centres[c * 4 + l] + r.normal()).collect();
            out.extend((0..dim).map(|d| {
                ((0..4).map(|l| z[l] * map[l * dim + d]).sum::<f64>() + 0.05 * r.normal()) as f32
            }));
        }
        out
    }

    #[test]
    fn queries_find_the_true_neighbours() {
        let (n, dim, k) = (6000, 16, 15);
        let x = blobs(n, dim, 1);
        let g = nndescent::brute_force(&x, dim, k);
        let index = Index::build(
            &x,
            dim,
            Neighbours {
                indices: &g.indices,
                distances: &g.distances,
                k,
            },
            Shape {
                trees: 4,
                reverse: k,
                seed: 0,
            },
            (0..n as u32).collect(),
        );
        let queries = blobs(300, dim, 2);
        let mut s = index.scratch();
        let mut hits = 0;
        for q in queries.chunks(dim) {
            let got = index.query(q, k, 0.1, &mut s);
            assert_eq!(got.len(), k);
            assert!(got.windows(2).all(|w| w[0].0 <= w[1].0), "sorted");
            let mut all: Vec<(f32, u32)> = (0..n)
                .map(|i| (sqdist(q, &x[i * dim..(i + 1) * dim]), i as u32))
                .collect();
            all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let truth: Vec<u32> = all[..k].iter().map(|p| p.1).collect();
            hits += got.iter().filter(|p| truth.contains(&p.1)).count();
            // Every distance reported is the true distance of that point.
            for &(d, i) in &got {
                assert_eq!(d, sqdist(q, &x[i as usize * dim..(i as usize + 1) * dim]));
            }
        }
        let recall = hits as f64 / (300 * k) as f64;
        assert!(recall > 0.97, "recall {recall}");
    }

    #[test]
    fn a_query_does_not_depend_on_what_was_asked_before() {
        let (n, dim, k) = (3000, 8, 10);
        let x = blobs(n, dim, 3);
        let g = nndescent::brute_force(&x, dim, k);
        let index = Index::build(
            &x,
            dim,
            Neighbours {
                indices: &g.indices,
                distances: &g.distances,
                k,
            },
            Shape {
                trees: 2,
                reverse: k,
                seed: 5,
            },
            (0..n as u32).collect(),
        );
        let queries = blobs(50, dim, 4);
        let mut s1 = index.scratch();
        let forward: Vec<_> = queries
            .chunks(dim)
            .map(|q| index.query(q, k, 0.1, &mut s1))
            .collect();
        let mut s2 = index.scratch();
        let mut backward: Vec<_> = queries
            .chunks(dim)
            .rev()
            .map(|q| index.query(q, k, 0.1, &mut s2))
            .collect();
        backward.reverse();
        assert_eq!(forward, backward);
        // A fitted point finds itself first, at distance 0.
        let own = index.query(&x[17 * dim..18 * dim], k, 0.1, &mut s1);
        assert_eq!(own[0], (0.0, 17));
        // Through bytes (8-aligned, as a memory map is), the same answers.
        let bytes = index.to_bytes();
        let mut aligned = vec![0u64; bytes.len().div_ceil(8)];
        // SAFETY: u64 storage viewed as bytes.
        let view = unsafe {
            std::slice::from_raw_parts_mut(aligned.as_mut_ptr().cast::<u8>(), bytes.len())
        };
        view.copy_from_slice(&bytes);
        let back = Index::from_bytes(view).unwrap();
        let mut s3 = back.scratch();
        let again: Vec<_> = queries
            .chunks(dim)
            .map(|q| back.query(q, k, 0.1, &mut s3))
            .collect();
        assert_eq!(again, forward);
        assert_eq!(back.label(17), 17);
        assert!(Index::from_bytes(&view[..view.len() - 4]).is_err());
    }
}
