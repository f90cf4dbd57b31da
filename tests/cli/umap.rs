//! UMAP end to end: the kNN graph is its own cached node, layouts are bit-identical at any
//! thread count, and the layout preserves neighbourhoods.

use polars::prelude::*;

use crate::support::{featured, Test};

fn pipe(n: u64) -> String {
    featured(n, 32)
        + r#"
[nodes.umap]
op = "reduce"
method = "umap"
input = "featured"
n_neighbors = 15
n_components = 2
n_epochs = 100
"#
}

#[test]
fn the_knn_graph_is_cached_on_its_own() {
    let t = Test::new();
    t.pipeline(&pipe(4000));
    assert_eq!(t.run_json(&[]).ok().computed(), ["catalog", "featured", "umap.knn", "umap"]);
    for set in ["umap.n_components=3", "umap.min_dist=0.3", "umap.n_epochs=50", "umap.init=\"random\"", "umap.seed=7"] {
        assert_eq!(t.run_json(&["--set", set]).ok().computed(), ["umap"], "{set}");
    }
    assert_eq!(t.run_json(&["--set", "umap.n_neighbors=10"]).ok().computed(), ["umap.knn", "umap"]);
    let plan = t.run(&["plan", "p.toml", "--set", "umap.n_components=4"]).ok().stdout();
    let knn = plan.lines().find(|l| l.contains("umap.knn")).unwrap();
    assert!(knn.trim_start().starts_with("cached"), "{plan}");
}

#[test]
fn layouts_are_identical_at_one_and_two_threads() {
    // 12000 galaxies -> 6000 featured: above the exact-kNN limit, so NN-descent runs.
    let a = Test::new();
    a.pipeline(&pipe(12_000));
    let b = Test::new();
    b.pipeline(&pipe(12_000));
    a.run_json(&["-j", "1"]).ok();
    b.run_json(&["-j", "2"]).ok();
    assert_eq!(Test::content_hashes(&a.cache()), Test::content_hashes(&b.cache()));
}

#[test]
fn the_layout_preserves_neighbourhoods() {
    let t = Test::new();
    t.pipeline(&pipe(4000));
    t.run(&["export", "p.toml", "umap", "--out", "u.parquet"]).ok();
    t.run(&["export", "p.toml", "featured", "--out", "f.parquet"]).ok();
    let read = |p: &str| ParquetReader::new(std::fs::File::open(t.path(p)).unwrap()).finish().unwrap();
    let (u, f) = (read("u.parquet"), read("f.parquet"));
    let n = u.height().min(1500);
    let cols = |df: &DataFrame, prefix: &str, d: usize| -> Vec<f32> {
        let c: Vec<Vec<f32>> = (0..d).map(|j| df.column(&format!("{prefix}{j}")).unwrap().f32().unwrap().into_no_null_iter().collect()).collect();
        (0..n).flat_map(|i| c.iter().map(move |col| col[i])).collect()
    };
    let (high, low) = (cols(&f, "feat_", 32), cols(&u, "umap_", 2));
    let tw = dagrun::numeric::umap::trustworthiness(&high, 32, &low, 2, 10);
    // On this input umap-learn 0.5.12 (same n_neighbors and epochs) scores 0.856 and dagrun
    // 0.886 (sklearn's trustworthiness, first 1500 rows, k = 10).
    assert!(tw > 0.87, "trustworthiness {tw}");
}
