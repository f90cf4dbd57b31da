//! HDBSCAN's approximate prediction for new points (the `hdbscan` library's
//! `approximate_predict` and `approximate_predict_scores`): a new point joins the tree
//! through its nearest fitted point in mutual reachability, at λ = 1 / that distance; it
//! leaves with that neighbour if the neighbour leaves its cluster first, otherwise it goes
//! up from the neighbour's cluster to the last one born at or after its λ. Its label is
//! that cluster's selected ancestor (as for a fitted point), its probability `λ / λ_max` of
//! the class, its GLOSH score from the neighbour's cluster.
//!
//! **Core distances: the fit's convention, not the library's.** `hdbscan` computes the
//! fitted points' core distances for prediction one neighbour closer than its fit does
//! (the point itself counts as a neighbour) and a new point's one neighbour further (the
//! `min_samples + 1`-th fitted point). Here both are `cluster`'s: the distance to the
//! `min_samples`-th nearest other point, for a new point its `min_samples`-th nearest
//! fitted point, as if it had been in the fit. The nearest point in mutual reachability is
//! exact (the library looks among the `2 × min_samples` nearest only; here the
//! `min_samples` nearest, then every point within the best reachability found if any can
//! be nearer); ties go to the
//! nearer point, then the lower index. A prediction reads only the fit, so it does not
//! depend on the other points predicted.

use super::hdbscan::{ClusterStats, CondensedTree, Labelling};
use super::kdtree::KdTree;

/// What a prediction needs of the fit.
pub struct Fit<'a> {
    /// The fitted layout's KD-tree.
    pub tree: &'a KdTree,
    /// Core distances by fitted index.
    pub core: &'a [f32],
    pub min_samples: usize,
    pub condensed: &'a CondensedTree,
    pub stats: &'a ClusterStats,
    pub labelling: &'a Labelling,
    /// The condensed-tree row of each fitted point.
    pub row_of: &'a [u32],
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prediction {
    pub label: Option<u32>,
    pub probability: f64,
    pub outlier_score: f64,
    /// The nearest fitted point in mutual reachability, and that distance.
    pub neighbour: u32,
    pub reachability: f32,
}

/// The condensed-tree row of each point (the row whose child it is).
pub fn rows_of_points(t: &CondensedTree) -> Vec<u32> {
    let mut row_of = vec![u32::MAX; t.n_points];
    for (i, &c) in t.child.iter().enumerate() {
        if (c as usize) < t.n_points {
            row_of[c as usize] = i as u32;
        }
    }
    row_of
}

impl Fit<'_> {
    /// A new point's core distance and nearest fitted point in mutual reachability.
    pub fn reachability(&self, q: &[f32]) -> (f32, u32, f32) {
        let m = self.min_samples;
        let n = self.tree.len();
        let k = m.min(n);
        let near = self.tree.nearest(q, k);
        let core_q = near[k - 1].0.sqrt();
        // Minimise (reachability, distance, index).
        let pick = |cands: &mut dyn Iterator<Item = (f32, u32)>| {
            let mut best: Option<(f32, f32, u32)> = None;
            for (d2, j) in cands {
                let d = d2.sqrt();
                let mr = core_q.max(self.core[j as usize]).max(d);
                let c = (mr, d, j);
                if best.is_none_or(|b| (c.0, c.1, c.2) < (b.0, b.1, b.2)) {
                    best = Some(c);
                }
            }
            best.expect("at least one fitted point")
        };
        let mut best = pick(&mut near.iter().copied());
        // A point beyond the k nearest is at least the k-th distance away (the core
        // distance); only if that is below the best reachability can it do better. In a
        // dense region a near point's core distance is at most the new point's, and the
        // best is the core distance itself.
        if k < n && near[k - 1].0.sqrt() < best.0 {
            best = pick(&mut self.tree.within(q, best.0 * best.0).into_iter());
        }
        (core_q, best.2, best.0)
    }

    pub fn predict(&self, q: &[f32]) -> Prediction {
        let (_, j, mr) = self.reachability(q);
        let lambda = if mr > 0.0 {
            1.0 / mr as f64
        } else {
            f64::INFINITY
        };
        let row = self.row_of[j as usize] as usize;
        let (p0, lp) = (self.condensed.parent[row], self.condensed.lambda[row]);
        let root = self.condensed.root();
        let (mut p, mut lam) = (p0, lambda);
        if lp <= lambda {
            // It leaves with its neighbour.
            lam = lp;
        } else {
            while p != root && self.stats.birth[p as usize] >= lambda {
                p = self.stats.parent[p as usize];
            }
        }
        let label = self.labelling.label(p, lam);
        let probability = label.map_or(0.0, |l| self.labelling.probability(l, lam));
        let outlier_score = self.labelling.outlier_score(p0, lambda.min(lp));
        Prediction {
            label,
            probability,
            outlier_score,
            neighbour: j,
            reachability: mr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numeric::hdbscan::{self, Method, Selection};
    use crate::numeric::kdtree::dist2;
    use crate::numeric::rng::Rng;
    use crate::numeric::{knn, mst};

    fn blobs(seed: u64, n: usize) -> Vec<f32> {
        let mut r = Rng::new(seed, 0);
        let centres = [
            (0.0, 0.0, 1.0),
            (8.0, 0.0, 0.5),
            (0.0, 9.0, 0.4),
            (9.0, 9.0, 2.5),
        ];
        (0..n)
            .flat_map(|i| {
                let (cx, cy, s) = centres[i % 4];
                [cx + (r.normal() * s) as f32, cy + (r.normal() * s) as f32]
            })
            .collect()
    }

    #[test]
    fn predictions_match_a_linear_scan_and_the_fit() {
        let (n, ms) = (1200, 10);
        let x = blobs(1, n);
        let tree = KdTree::build(&x, 2);
        let core_pos = knn::core_distances(&tree, ms);
        let mut core = vec![0f32; n];
        for (pos, &c) in core_pos.iter().enumerate() {
            core[tree.index[pos] as usize] = c;
        }
        let edges = mst::mutual_reachability_mst(&tree, &core_pos, 1.0);
        let ct = hdbscan::condense(n, &hdbscan::single_linkage(n, &edges), 15);
        let stats = hdbscan::cluster_stats(&ct);
        let sel = Selection {
            method: Method::Leaf,
            allow_single_cluster: false,
            epsilon: 0.0,
            max_cluster_size: 0,
        };
        let chosen = hdbscan::select(&ct, &stats, &sel);
        let fitted = hdbscan::label_points(&ct, &stats, &chosen, &sel);
        let labelling = Labelling::new(&ct, &stats, &chosen, &sel);
        let row_of = rows_of_points(&ct);
        let fit = Fit {
            tree: &tree,
            core: &core,
            min_samples: ms,
            condensed: &ct,
            stats: &stats,
            labelling: &labelling,
            row_of: &row_of,
        };
        let new = blobs(2, 400);
        let mut agree = 0;
        for q in new.chunks(2) {
            // Brute force: the core distance and the nearest point in mutual reachability.
            let mut d: Vec<(f32, u32)> = (0..n)
                .map(|j| (dist2(q, &x[j * 2..j * 2 + 2]).sqrt(), j as u32))
                .collect();
            d.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let core_q = d[ms - 1].0;
            let want = d
                .iter()
                .map(|&(dj, j)| (core_q.max(core[j as usize]).max(dj), dj, j))
                .min_by(|a, b| a.partial_cmp(b).expect("finite"))
                .expect("points");
            let (cq, j, mr) = fit.reachability(q);
            assert_eq!((cq, j, mr), (core_q, want.2, want.0));
            let p = fit.predict(q);
            assert!(
                p.label.is_none_or(|l| (l as usize) < chosen.len()),
                "a label that exists"
            );
            assert!((0.0..=1.0).contains(&p.probability) && (0.0..=1.0).contains(&p.outlier_score));
            assert_eq!(p.label.is_some(), p.probability > 0.0);
            // A point that leaves with the neighbour it joins through has its class.
            let lp = ct.lambda[row_of[j as usize] as usize];
            if (lp as f32) <= 1.0 / mr {
                assert_eq!(p.label, fitted.label[j as usize]);
            }
            agree += usize::from(p.label == fitted.label[j as usize]);
        }
        // Points further out than their neighbour may fall out of its class, not most.
        assert!(
            agree >= 340,
            "{agree} of 400 agree with their neighbour's label"
        );
    }
}
