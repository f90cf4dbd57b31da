//! Benchmarks of the numeric kernels and of the built-in sample, on seeded data, with the
//! setup outside the timed part. Run: `cargo bench --bench numeric`.

use dagrun::numeric::{pca, rng::Rng};

fn main() {
    divan::main();
}

fn data(n: usize, d: usize) -> Vec<f32> {
    let mut r = Rng::new(3, 0);
    (0..n * d)
        .map(|i| (r.normal() * (1.0 + (i % d) as f64 / 8.0)) as f32)
        .collect()
}

/// PCA 128 -> 16 over n rows (the paper's representation width).
#[divan::bench(args = [10_000, 100_000])]
fn pca_fit_128(bencher: divan::Bencher, n: usize) {
    let x = data(n, 128);
    bencher.bench(|| {
        let p = pca::fit(divan::black_box(&x), 128, 16);
        assert_eq!(p.n_components(), 16);
        p
    });
}

/// The Jacobi eigensolver on a 128 x 128 covariance.
#[divan::bench]
fn symmetric_eigen_128(bencher: divan::Bencher) {
    let (_, cov) = pca::covariance(&data(5_000, 128), 128);
    bencher.bench(|| {
        let (vals, _) = pca::symmetric_eigen(divan::black_box(&cov), 128);
        assert!(vals[0] >= vals[127]);
        vals
    });
}

/// Clumpy 5-D points like a UMAP layout: dense blobs over a sparse background.
fn layout(n: usize) -> Vec<f32> {
    let mut r = Rng::new(11, 0);
    let centres: Vec<[f64; 5]> = (0..30)
        .map(|_| std::array::from_fn(|_| r.normal() * 5.0))
        .collect();
    (0..n)
        .flat_map(|i| {
            let c = centres[r.below(30) as usize];
            let s = if i % 10 == 0 {
                3.0
            } else {
                0.3 + (i % 7) as f64 * 0.1
            };
            (0..5)
                .map(|d| (c[d] + r.normal() * s) as f32)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// HDBSCAN core distances (min_samples 300) over a 5-D layout.
#[divan::bench(args = [10_000, 100_000], sample_count = 3)]
fn hdbscan_core_distances_ms300(bencher: divan::Bencher, n: usize) {
    let tree = dagrun::numeric::kdtree::KdTree::build(&layout(n), 5);
    bencher.bench(|| {
        let c = dagrun::numeric::knn::core_distances(&tree, 300);
        assert_eq!(c.len(), n);
        c
    });
}

/// Exact mutual-reachability MST (min_samples 300) over a 5-D layout.
#[divan::bench(args = [10_000, 100_000], sample_count = 3)]
fn hdbscan_mst_ms300(bencher: divan::Bencher, n: usize) {
    let tree = dagrun::numeric::kdtree::KdTree::build(&layout(n), 5);
    let core = dagrun::numeric::knn::core_distances(&tree, 300);
    bencher.bench(|| {
        let e = dagrun::numeric::mst::mutual_reachability_mst(&tree, &core, 1.0);
        assert_eq!(e.len(), n - 1);
        e
    });
}

/// Single linkage + condensed tree + leaf selection from a fixed MST.
#[divan::bench(args = [100_000], sample_count = 3)]
fn hdbscan_condense_and_select(bencher: divan::Bencher, n: usize) {
    use dagrun::numeric::hdbscan::*;
    let tree = dagrun::numeric::kdtree::KdTree::build(&layout(n), 5);
    let core = dagrun::numeric::knn::core_distances(&tree, 300);
    let edges = dagrun::numeric::mst::mutual_reachability_mst(&tree, &core, 1.0);
    bencher.bench(|| {
        let ct = condense(n, &single_linkage(n, &edges), 10);
        let st = cluster_stats(&ct);
        let sel = Selection {
            method: Method::Leaf,
            allow_single_cluster: false,
            epsilon: 0.0,
            max_cluster_size: 0,
        };
        let chosen = select(&ct, &st, &sel);
        label_points(&ct, &st, &chosen, &sel)
    });
}
