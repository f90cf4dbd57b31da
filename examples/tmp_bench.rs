//! temporary
use dagrun::numeric::{kdtree::KdTree, knn, mst, rng::Rng};
use std::time::Instant;
fn main() {
    let n: usize = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(400_000);
    let k: usize = std::env::args().nth(2).map(|s| s.parse().unwrap()).unwrap_or(300);
    let dim = 5;
    let mut r = Rng::new(1, 0);
    let centres: Vec<Vec<f64>> = (0..40).map(|_| (0..dim).map(|_| r.normal() * 5.0).collect()).collect();
    let x: Vec<f32> = (0..n).flat_map(|i| {
        let c = &centres[(r.below(40)) as usize];
        let s = if std::env::var_os("UNI").is_some() { 4.0 } else if i % 10 == 0 { 3.0 } else { 0.3 + (i % 7) as f64 * 0.1 };
        (0..dim).map(|d| (c[d] + r.normal() * s) as f32).collect::<Vec<_>>()
    }).collect();
    let t = Instant::now();
    let tree = KdTree::build(&x, dim);
    eprintln!("tree {:.2}s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let core = knn::core_distances(&tree, k);
    eprintln!("core {:.2}s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let m = mst::mutual_reachability_mst(&tree, &core, 1.0);
    eprintln!("mst {:.2}s edges {}", t.elapsed().as_secs_f64(), m.len());
}
