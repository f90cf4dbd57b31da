//! HDBSCAN's hierarchy from a minimum spanning tree: the single-linkage tree, the condensed
//! tree, cluster selection (leaf, as in the paper, or excess of mass), labels, membership
//! probabilities and GLOSH outlier scores.
//!
//! Semantics follow the `hdbscan` library (McInnes, Healy & Astels), in our own code:
//! - single linkage merges MST edges in `(weight, a, b)` order; the left child is the
//!   component of the edge's first endpoint;
//! - the condensed tree is built breadth-first from the root (id `n`); `λ = 1/distance`,
//!   `∞` at distance 0; a split makes two new clusters only when both sides have at least
//!   `min_cluster_size` points, otherwise the small side's points fall out of the parent;
//!   new cluster ids count up from `n + 1` in the order they are created (left first);
//! - leaf selection takes the clusters with no child clusters (none at all → every point is
//!   noise); EOM keeps a cluster when its stability is at least the sum of its children's;
//! - `cluster_selection_epsilon` merges selected clusters born below ε upwards as the
//!   library's `epsilon_search` does; labels number the selected clusters by increasing id.
//!
//! Stabilities are summed in f64 (the library sums children's stabilities in f32).

use super::mst::Edge;

/// One merge of the single-linkage tree; node `n + i` is merge `i`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Merge {
    pub left: u32,
    pub right: u32,
    pub distance: f32,
    pub size: u32,
}

/// Single-linkage tree of `n` points from MST edges sorted by `(w, a, b)`.
pub fn single_linkage(n: usize, mst: &[Edge]) -> Vec<Merge> {
    assert_eq!(
        mst.len() + 1,
        n.max(1),
        "an MST of n points has n - 1 edges"
    );
    let total = 2 * n - 1;
    let mut parent: Vec<u32> = (0..total as u32).collect();
    let mut size = vec![1u32; total];
    let find = |parent: &mut Vec<u32>, mut x: u32| {
        let mut root = x;
        while parent[root as usize] != root {
            root = parent[root as usize];
        }
        while parent[x as usize] != root {
            let next = parent[x as usize];
            parent[x as usize] = root;
            x = next;
        }
        root
    };
    let mut out = Vec::with_capacity(n.saturating_sub(1));
    for (i, e) in mst.iter().enumerate() {
        let (l, r) = (find(&mut parent, e.a), find(&mut parent, e.b));
        let node = (n + i) as u32;
        let s = size[l as usize] + size[r as usize];
        out.push(Merge {
            left: l,
            right: r,
            distance: e.w,
            size: s,
        });
        parent[l as usize] = node;
        parent[r as usize] = node;
        size[node as usize] = s;
    }
    out
}

/// The condensed tree as rows `(parent, child, λ, child_size)`: a child below `n_points`
/// is a point falling out of its parent cluster, otherwise a cluster born from it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CondensedTree {
    pub n_points: usize,
    pub parent: Vec<u32>,
    pub child: Vec<u32>,
    pub lambda: Vec<f64>,
    pub child_size: Vec<u32>,
}

impl CondensedTree {
    pub fn len(&self) -> usize {
        self.parent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parent.is_empty()
    }

    pub fn root(&self) -> u32 {
        self.n_points as u32
    }

    /// One past the largest cluster id.
    pub fn n_ids(&self) -> usize {
        self.child
            .iter()
            .copied()
            .max()
            .map_or(self.n_points + 1, |m| {
                (m as usize + 1).max(self.n_points + 1)
            })
    }

    fn is_cluster(&self, id: u32) -> bool {
        id as usize >= self.n_points
    }
}

/// Condense a single-linkage tree of `n` points.
pub fn condense(n: usize, merges: &[Merge], min_cluster_size: usize) -> CondensedTree {
    let mut t = CondensedTree {
        n_points: n,
        ..Default::default()
    };
    if n < 2 {
        return t;
    }
    let root = 2 * n - 2;
    let size = |x: u32| {
        if (x as usize) < n {
            1
        } else {
            merges[x as usize - n].size as usize
        }
    };
    // Breadth-first order of the whole tree.
    let bfs = |start: u32| {
        let mut order = vec![start];
        let mut i = 0;
        while i < order.len() {
            let x = order[i] as usize;
            if x >= n {
                order.push(merges[x - n].left);
                order.push(merges[x - n].right);
            }
            i += 1;
        }
        order
    };
    let mut relabel = vec![0u32; 2 * n - 1];
    relabel[root] = n as u32;
    let mut next = n as u32 + 1;
    let mut ignore = vec![false; 2 * n - 1];
    let push = |t: &mut CondensedTree, p: u32, c: u32, lam: f64, s: usize| {
        t.parent.push(p);
        t.child.push(c);
        t.lambda.push(lam);
        t.child_size.push(s as u32);
    };
    for node in bfs(root as u32) {
        let node = node as usize;
        if node < n || ignore[node] {
            continue;
        }
        let m = merges[node - n];
        let lam = if m.distance > 0.0 {
            1.0 / m.distance as f64
        } else {
            f64::INFINITY
        };
        let (cl, cr) = (size(m.left), size(m.right));
        let p = relabel[node];
        let big = |c: usize| c >= min_cluster_size;
        let mut fall_out = |t: &mut CondensedTree, sub: u32| {
            for x in bfs(sub) {
                if (x as usize) < n {
                    push(t, p, x, lam, 1);
                }
                ignore[x as usize] = true;
            }
        };
        match (big(cl), big(cr)) {
            (true, true) => {
                relabel[m.left as usize] = next;
                push(&mut t, p, next, lam, cl);
                next += 1;
                relabel[m.right as usize] = next;
                push(&mut t, p, next, lam, cr);
                next += 1;
            }
            (false, false) => {
                fall_out(&mut t, m.left);
                fall_out(&mut t, m.right);
            }
            (false, true) => {
                relabel[m.right as usize] = p;
                fall_out(&mut t, m.left);
            }
            (true, false) => {
                relabel[m.left as usize] = p;
                fall_out(&mut t, m.right);
            }
        }
    }
    t
}

/// Per-cluster facts, indexed by cluster id (entries below `n_points` unused).
#[derive(Clone, Debug)]
pub struct ClusterStats {
    /// λ at which the cluster appears (0 for the root).
    pub birth: Vec<f64>,
    /// Largest λ among the cluster's rows.
    pub death: Vec<f64>,
    pub stability: Vec<f64>,
    /// Points in the cluster at birth.
    pub size: Vec<u32>,
    /// Parent cluster (the root is its own parent).
    pub parent: Vec<u32>,
    /// Child clusters.
    pub children: Vec<Vec<u32>>,
}

pub fn cluster_stats(t: &CondensedTree) -> ClusterStats {
    let m = t.n_ids();
    let root = t.root() as usize;
    let mut s = ClusterStats {
        birth: vec![0.0; m],
        death: vec![0.0; m],
        stability: vec![0.0; m],
        size: vec![0; m],
        parent: (0..m as u32).collect(),
        children: vec![Vec::new(); m],
    };
    s.size[root] = t.n_points as u32;
    for i in 0..t.len() {
        let (p, c) = (t.parent[i], t.child[i]);
        if t.is_cluster(c) {
            s.birth[c as usize] = t.lambda[i];
            s.size[c as usize] = t.child_size[i];
            s.parent[c as usize] = p;
            s.children[p as usize].push(c);
        }
        s.death[p as usize] = s.death[p as usize].max(t.lambda[i]);
    }
    for i in 0..t.len() {
        let p = t.parent[i] as usize;
        s.stability[p] += (t.lambda[i] - s.birth[p]) * t.child_size[i] as f64;
    }
    s
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Leaf,
    Eom,
}

#[derive(Clone, Copy, Debug)]
pub struct Selection {
    pub method: Method,
    pub allow_single_cluster: bool,
    pub epsilon: f64,
    /// EOM only; 0 means no limit.
    pub max_cluster_size: usize,
}

/// Cluster ids selected, ascending.
pub fn select(t: &CondensedTree, s: &ClusterStats, sel: &Selection) -> Vec<u32> {
    let root = t.root();
    let clusters: Vec<u32> = (root + 1..s.birth.len() as u32).collect();
    let chosen: Vec<u32> = match sel.method {
        Method::Leaf => {
            let leaves: Vec<u32> = clusters
                .iter()
                .copied()
                .filter(|&c| s.children[c as usize].is_empty())
                .collect();
            if leaves.is_empty() || sel.epsilon == 0.0 {
                leaves
            } else {
                epsilon_search(&leaves, t, s, sel)
            }
        }
        Method::Eom => {
            let mut stab = s.stability.clone();
            let mut is_sel = vec![false; s.birth.len()];
            let mut nodes: Vec<u32> = clusters.clone();
            if sel.allow_single_cluster {
                nodes.push(root);
            }
            // Size of the root counts only points in clusters below it.
            let size = |c: u32| {
                if c == root {
                    s.children[root as usize]
                        .iter()
                        .map(|&k| s.size[k as usize] as usize)
                        .sum()
                } else {
                    s.size[c as usize] as usize
                }
            };
            for &c in &nodes {
                is_sel[c as usize] = true;
            }
            // Children before parents: ids descend.
            nodes.sort_unstable_by(|a, b| b.cmp(a));
            for &c in &nodes {
                let sub: f64 = s.children[c as usize]
                    .iter()
                    .map(|&k| stab[k as usize])
                    .sum();
                let too_big = sel.max_cluster_size > 0 && size(c) > sel.max_cluster_size;
                if sub > stab[c as usize] || too_big {
                    is_sel[c as usize] = false;
                    stab[c as usize] = sub;
                } else {
                    let mut stack = s.children[c as usize].clone();
                    while let Some(d) = stack.pop() {
                        is_sel[d as usize] = false;
                        stack.extend(&s.children[d as usize]);
                    }
                }
            }
            let chosen: Vec<u32> = (root..s.birth.len() as u32)
                .filter(|&c| is_sel[c as usize])
                .collect();
            if sel.epsilon != 0.0 && !s.children[root as usize].is_empty() {
                if chosen == [root] {
                    if sel.allow_single_cluster {
                        chosen
                    } else {
                        Vec::new()
                    }
                } else {
                    epsilon_search(&chosen, t, s, sel)
                }
            } else {
                chosen
            }
        }
    };
    let mut chosen = chosen;
    chosen.sort_unstable();
    chosen.dedup();
    chosen
}

fn eps_of(lambda: f64) -> f64 {
    if lambda == 0.0 {
        f64::INFINITY
    } else {
        1.0 / lambda
    }
}

/// Replace clusters born below ε by their first ancestor born above it.
fn epsilon_search(
    selected: &[u32],
    t: &CondensedTree,
    s: &ClusterStats,
    sel: &Selection,
) -> Vec<u32> {
    let root = t.root();
    let mut out = Vec::new();
    let mut processed = vec![false; s.birth.len()];
    for &leaf in selected {
        if eps_of(s.birth[leaf as usize]) < sel.epsilon {
            if processed[leaf as usize] {
                continue;
            }
            // Walk up to the first ancestor born above ε.
            let mut x = leaf;
            let anc = loop {
                let p = s.parent[x as usize];
                if p == root {
                    break if sel.allow_single_cluster { root } else { x };
                }
                if eps_of(s.birth[p as usize]) > sel.epsilon {
                    break p;
                }
                x = p;
            };
            out.push(anc);
            let mut stack = s.children[anc as usize].clone();
            while let Some(d) = stack.pop() {
                processed[d as usize] = true;
                stack.extend(&s.children[d as usize]);
            }
        } else {
            out.push(leaf);
        }
    }
    out
}

/// Per-point results.
#[derive(Clone, Debug, PartialEq)]
pub struct Labels {
    /// Cluster number per point, `None` for noise.
    pub label: Vec<Option<u32>>,
    pub probability: Vec<f64>,
    pub outlier_score: Vec<f64>,
}

/// How points are labelled from the selected clusters: shared by the fit
/// ([`label_points`]) and the prediction for new points (`numeric::predict`).
#[derive(Clone, Debug)]
pub struct Labelling {
    root: u32,
    /// Class number of each selected cluster (`u32::MAX` otherwise).
    number: Vec<u32>,
    /// Nearest selected ancestor-or-self of each cluster (the root where none).
    rep: Vec<u32>,
    /// The selected cluster of each class number.
    selected: Vec<u32>,
    /// Each cluster's own largest λ (membership probability's scale).
    death: Vec<f64>,
    /// The largest λ in each cluster's subtree (GLOSH's scale).
    subtree_death: Vec<f64>,
    single_root: bool,
    root_max_lambda: f64,
    epsilon: f64,
}

impl Labelling {
    pub fn new(
        t: &CondensedTree,
        s: &ClusterStats,
        selected: &[u32],
        sel: &Selection,
    ) -> Labelling {
        let n = t.n_points;
        let root = t.root();
        let m = s.birth.len();
        let mut number = vec![u32::MAX; m];
        for (i, &c) in selected.iter().enumerate() {
            number[c as usize] = i as u32;
        }
        // Nearest selected ancestor (or the root), by increasing id: parents come first.
        let mut rep = vec![root; m];
        for c in root as usize..m {
            rep[c] = if number[c] != u32::MAX {
                c as u32
            } else if c as u32 == root {
                root
            } else {
                rep[s.parent[c] as usize]
            };
        }
        let root_max_lambda = (0..t.len())
            .filter(|&i| t.parent[i] == root)
            .map(|i| t.lambda[i])
            .fold(0.0, f64::max);
        // GLOSH: deaths propagated up the tree (rows are breadth-first: children after parents).
        let mut subtree_death = s.death.clone();
        for i in (0..t.len()).rev() {
            let c = t.child[i] as usize;
            if c >= n {
                let p = t.parent[i] as usize;
                subtree_death[p] = subtree_death[p].max(subtree_death[c]);
            }
        }
        Labelling {
            root,
            number,
            rep,
            selected: selected.to_vec(),
            death: s.death.clone(),
            subtree_death,
            single_root: selected == [root] && sel.allow_single_cluster,
            root_max_lambda,
            epsilon: sel.epsilon,
        }
    }

    /// The class of a point that leaves cluster `p` at `lam`.
    pub fn label(&self, p: u32, lam: f64) -> Option<u32> {
        let r = self.rep[p as usize];
        if r == self.root {
            let keep = self.single_root
                && if self.epsilon != 0.0 {
                    lam >= 1.0 / self.epsilon
                } else {
                    lam >= self.root_max_lambda
                };
            keep.then_some(self.number[self.root as usize])
        } else {
            Some(self.number[r as usize])
        }
    }

    /// Membership strength in class `label` of a point leaving at `lam`.
    pub fn probability(&self, label: u32, lam: f64) -> f64 {
        let max_lambda = self.death[self.selected[label as usize] as usize];
        if max_lambda == 0.0 || !lam.is_finite() {
            1.0
        } else {
            lam.min(max_lambda) / max_lambda
        }
    }

    /// GLOSH score of a point leaving cluster `p` at `lam`.
    pub fn outlier_score(&self, p: u32, lam: f64) -> f64 {
        let dm = self.subtree_death[p as usize];
        if dm == 0.0 || !lam.is_finite() {
            0.0
        } else {
            (dm - lam) / dm
        }
    }
}

/// Labels, membership probabilities and GLOSH outlier scores for the `selected` clusters.
pub fn label_points(
    t: &CondensedTree,
    s: &ClusterStats,
    selected: &[u32],
    sel: &Selection,
) -> Labels {
    let n = t.n_points;
    let how = Labelling::new(t, s, selected, sel);
    let mut out = Labels {
        label: vec![None; n],
        probability: vec![0.0; n],
        outlier_score: vec![0.0; n],
    };
    for i in 0..t.len() {
        let x = t.child[i] as usize;
        if x >= n {
            continue;
        }
        let (p, lam) = (t.parent[i], t.lambda[i]);
        let label = how.label(p, lam);
        out.label[x] = label;
        if let Some(l) = label {
            out.probability[x] = how.probability(l, lam);
        }
        out.outlier_score[x] = how.outlier_score(p, lam);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numeric::kdtree::KdTree;
    use crate::numeric::{knn, mst, rng::Rng};

    /// A straightforward leaf-cluster extraction from the same MST, independent of the
    /// union-find / breadth-first code above: top-down set splitting.
    fn naive_leaf_clusters(n: usize, mst: &[mst::Edge], mcs: usize) -> Vec<Vec<usize>> {
        let mut edges: Vec<(f32, usize, usize)> = mst
            .iter()
            .map(|e| (e.w, e.a as usize, e.b as usize))
            .collect();
        // Top-down: repeatedly cut the set's last MST edge in (w, a, b) order; a cut into two
        // big sides makes two child clusters, otherwise the small side falls out. A cluster
        // that ends without children is a leaf.
        edges.sort_by(|x, y| {
            x.0.total_cmp(&y.0)
                .then((x.1.min(x.2), x.1.max(x.2)).cmp(&(y.1.min(y.2), y.1.max(y.2))))
        });
        fn component(start: usize, members: &[usize], edges: &[(f32, usize, usize)]) -> Vec<usize> {
            let mut g = vec![start];
            let mut i = 0;
            while i < g.len() {
                let a = g[i];
                for e in edges {
                    let o = if e.1 == a {
                        e.2
                    } else if e.2 == a {
                        e.1
                    } else {
                        continue;
                    };
                    if members.contains(&o) && !g.contains(&o) {
                        g.push(o);
                    }
                }
                i += 1;
            }
            g
        }
        fn split(
            set: Vec<usize>,
            edges: &[(f32, usize, usize)],
            mcs: usize,
            leaves: &mut Vec<Vec<usize>>,
            is_root: bool,
        ) {
            let mut current = set.clone();
            loop {
                let Some(cut) = edges
                    .iter()
                    .rposition(|e| current.contains(&e.1) && current.contains(&e.2))
                else {
                    if !is_root {
                        leaves.push(set);
                    }
                    return;
                };
                let before = &edges[..cut];
                let g1 = component(edges[cut].1, &current, before);
                let g2 = component(edges[cut].2, &current, before);
                match (g1.len() >= mcs, g2.len() >= mcs) {
                    (true, true) => {
                        split(g1, edges, mcs, leaves, false);
                        split(g2, edges, mcs, leaves, false);
                        return;
                    }
                    (true, false) => current = g1,
                    (false, true) => current = g2,
                    (false, false) => current = Vec::new(),
                }
            }
        }
        let mut leaves = Vec::new();
        split((0..n).collect(), &edges, mcs, &mut leaves, true);
        leaves.iter_mut().for_each(|l| l.sort_unstable());
        leaves.sort();
        leaves
    }

    fn ours(x: &[f32], dim: usize, ms: usize, mcs: usize) -> (CondensedTree, Labels, Vec<u32>) {
        let tree = KdTree::build(x, dim);
        let core = knn::core_distances(&tree, ms);
        let edges = mst::mutual_reachability_mst(&tree, &core, 1.0);
        let n = x.len() / dim;
        let ct = condense(n, &single_linkage(n, &edges), mcs);
        let st = cluster_stats(&ct);
        let sel = Selection {
            method: Method::Leaf,
            allow_single_cluster: false,
            epsilon: 0.0,
            max_cluster_size: 0,
        };
        let chosen = select(&ct, &st, &sel);
        let labels = label_points(&ct, &st, &chosen, &sel);
        (ct, labels, chosen)
    }

    fn blobs(n: usize, seed: u64) -> Vec<f32> {
        let mut r = Rng::new(seed, 0);
        (0..n)
            .flat_map(|i| {
                let c = [(0.0, 0.0), (6.0, 0.0), (0.0, 6.0), (6.5, 6.5), (3.0, 3.0)][i % 5];
                let s = if i % 5 == 4 {
                    2.0
                } else {
                    0.6 + 0.2 * (i % 3) as f64
                };
                [(c.0 + r.normal() * s) as f32, (c.1 + r.normal() * s) as f32]
            })
            .collect()
    }

    #[test]
    fn leaf_clusters_match_a_naive_implementation() {
        for (n, ms, mcs, seed) in [(250, 5, 10, 1), (300, 3, 5, 2), (200, 10, 15, 3)] {
            let x = blobs(n, seed);
            let (_, labels, chosen) = ours(&x, 2, ms, mcs);
            let tree = KdTree::build(&x, 2);
            let edges = mst::mutual_reachability_mst(&tree, &knn::core_distances(&tree, ms), 1.0);
            let mut got: Vec<Vec<usize>> = vec![Vec::new(); chosen.len()];
            // Leaf clusters as the set of points that fell out of them or their descendants:
            // with leaf selection a leaf has no descendants, so its label set is the leaf.
            for (i, l) in labels.label.iter().enumerate() {
                if let Some(l) = l {
                    got[*l as usize].push(i);
                }
            }
            got.sort();
            let want = naive_leaf_clusters(n, &edges, mcs);
            assert_eq!(got, want, "n={n} ms={ms} mcs={mcs}");
        }
    }

    #[test]
    fn condensed_tree_invariants() {
        let x = blobs(400, 7);
        let (ct, labels, chosen) = ours(&x, 2, 5, 10);
        let n = 400;
        // Every point appears exactly once as a child.
        let mut seen = vec![0; n];
        for &c in &ct.child {
            if (c as usize) < n {
                seen[c as usize] += 1;
            }
        }
        assert!(seen.iter().all(|&s| s == 1));
        // A cluster's size is the number of points below it.
        let st = cluster_stats(&ct);
        for c in n + 1..st.size.len() {
            let mut count = 0;
            let mut stack = vec![c as u32];
            while let Some(k) = stack.pop() {
                for i in 0..ct.len() {
                    if ct.parent[i] == k {
                        if (ct.child[i] as usize) < n {
                            count += 1
                        } else {
                            stack.push(ct.child[i])
                        }
                    }
                }
            }
            assert_eq!(count, st.size[c] as usize);
            assert!(st.size[c] >= 10);
            assert!(st.birth[c] > 0.0 && st.death[c] >= st.birth[c]);
        }
        assert!(chosen.len() >= 4, "the blobs are found: {chosen:?}");
        for (i, l) in labels.label.iter().enumerate() {
            let p = labels.probability[i];
            assert!((0.0..=1.0).contains(&p));
            assert_eq!(l.is_none(), p == 0.0);
            assert!((0.0..=1.0).contains(&labels.outlier_score[i]));
        }
    }

    #[test]
    fn eom_and_epsilon() {
        let x = blobs(500, 4);
        let tree = KdTree::build(&x, 2);
        let core = knn::core_distances(&tree, 5);
        let ct = condense(
            500,
            &single_linkage(500, &mst::mutual_reachability_mst(&tree, &core, 1.0)),
            10,
        );
        let st = cluster_stats(&ct);
        let eom = Selection {
            method: Method::Eom,
            allow_single_cluster: false,
            epsilon: 0.0,
            max_cluster_size: 0,
        };
        let chosen = select(&ct, &st, &eom);
        assert!(chosen.len() >= 2, "the blobs are selected: {chosen:?}");
        // EOM picks an antichain: no selected cluster is an ancestor of another.
        for &a in &chosen {
            let mut p = st.parent[a as usize];
            while p != ct.root() {
                assert!(!chosen.contains(&p));
                p = st.parent[p as usize];
            }
        }
        // Stability of a selected cluster is at least the sum over its children.
        for &c in &chosen {
            let sub: f64 = st.children[c as usize]
                .iter()
                .map(|&k| st.stability[k as usize])
                .sum();
            assert!(st.stability[c as usize] >= sub || st.children[c as usize].is_empty());
        }
        // A huge epsilon merges everything up to the root's children.
        let big = Selection {
            epsilon: 1e9,
            ..eom
        };
        let merged = select(&ct, &st, &big);
        assert!(!merged.is_empty());
        for c in merged {
            assert_eq!(st.parent[c as usize], ct.root());
        }
        // max_cluster_size forbids big clusters.
        let small = Selection {
            max_cluster_size: 120,
            ..eom
        };
        let bounded = select(&ct, &st, &small);
        assert!(
            !bounded.is_empty(),
            "clusters of at most 120 exist in 4 blobs of 125"
        );
        for c in bounded {
            assert!(st.size[c as usize] <= 120);
        }
    }

    #[test]
    fn duplicates_give_infinite_lambda_and_no_nan() {
        let mut x = vec![0f32; 30 * 2];
        x.extend(std::iter::repeat_n(10.0f32, 30 * 2));
        let (ct, labels, chosen) = ours(&x, 2, 5, 5);
        assert!(ct.lambda.iter().any(|l| l.is_infinite()));
        assert_eq!(chosen.len(), 2);
        assert!(labels.label.iter().all(Option::is_some));
        assert!(labels.probability.iter().all(|p| *p == 1.0));
        assert!(labels.outlier_score.iter().all(|s| !s.is_nan()));
    }
}
