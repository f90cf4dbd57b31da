//! Benchmarks of the numeric kernels and of the built-in sample, on seeded data, with the
//! setup outside the timed part. Run: `cargo bench --bench numeric`.

use dagrun::numeric::{pca, rng::Rng};

fn main() {
    divan::main();
}

fn data(n: usize, d: usize) -> Vec<f32> {
    let mut r = Rng::new(3, 0);
    (0..n * d).map(|i| (r.normal() * (1.0 + (i % d) as f64 / 8.0)) as f32).collect()
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
