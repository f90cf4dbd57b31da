//! HDBSCAN end to end: the built-in sample's planted classes come out as leaf clusters,
//! results are deterministic at any thread count, and bad input is refused clearly.

use std::collections::{BTreeMap, BTreeSet};

use polars::prelude::*;

use crate::support::{featured, pca_leaves, Test};

fn pipe(n: u64) -> String {
    featured(n, 128) + &pca_leaves(40) + EOM
}

const EOM: &str = r#"
[nodes.eom]
op = "select-eom"
input = "tree"
"#;

fn read(path: &std::path::Path) -> DataFrame {
    ParquetReader::new(std::fs::File::open(path).unwrap())
        .finish()
        .unwrap()
}

fn groups(ids: &[i64], keys: &[String]) -> BTreeMap<String, BTreeSet<i64>> {
    let mut g: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    for (i, k) in ids.iter().zip(keys) {
        g.entry(k.clone()).or_default().insert(*i);
    }
    g
}

#[test]
fn leaf_clusters_recover_the_planted_rare_classes() {
    let t = Test::new();
    t.pipeline(&pipe(60_000));
    t.run(&["export", "p.toml", "classes", "--out", "classes.parquet"])
        .ok();
    t.run(&["export", "p.toml", "featured", "--out", "featured.parquet"])
        .ok();
    let cl = read(&t.path("classes.parquet"));
    let fe = read(&t.path("featured.parquet"));
    assert_eq!(cl.height(), fe.height(), "one row per clustered galaxy");
    let ids: Vec<i64> = cl
        .column("id")
        .unwrap()
        .i64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    let fids: Vec<i64> = fe
        .column("id")
        .unwrap()
        .i64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    assert_eq!(ids, fids, "rows keep the input order and ids");
    let labels: Vec<String> = cl
        .column("label")
        .unwrap()
        .i32()
        .unwrap()
        .into_no_null_iter()
        .map(|l| l.to_string())
        .collect();
    let truth: Vec<String> = fe
        .column("planted_class")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .flatten()
        .map(str::to_owned)
        .collect();
    let found = groups(&ids, &labels);
    let planted = groups(&ids, &truth);
    let mut recovered = 0;
    for (name, members) in planted.iter().filter(|(k, _)| k.starts_with("rare:")) {
        let best = found
            .iter()
            .filter(|(k, _)| k.as_str() != "-1")
            .map(|(_, f)| members.intersection(f).count() as f64 / members.union(f).count() as f64)
            .fold(0.0, f64::max);
        eprintln!("{name}: {} members, best Jaccard {best:.3}", members.len());
        recovered += usize::from(best >= 0.8);
    }
    assert!(
        recovered >= 5,
        "only {recovered} of 6 planted classes recovered"
    );
    let probs: Vec<f64> = cl
        .column("probability")
        .unwrap()
        .f64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    assert!(probs
        .iter()
        .zip(&labels)
        .all(|(p, l)| (l == "-1") == (*p == 0.0)));

    // The manifest carries per-class statistics.
    let show = t.run(&["show", "p.toml", "classes"]).ok().stdout();
    assert!(
        show.contains("\"lambda_birth\"") && show.contains("\"stability\""),
        "{show}"
    );

    // EOM selects an antichain of the tree: every leaf lies wholly inside one EOM class
    // (its ancestor) or wholly outside them all, and there are no more EOM classes than leaves.
    t.run(&["export", "p.toml", "eom", "--out", "eom.parquet"])
        .ok();
    let eom = read(&t.path("eom.parquet"));
    let eom_labels: Vec<i32> = eom
        .column("label")
        .unwrap()
        .i32()
        .unwrap()
        .into_no_null_iter()
        .collect();
    let leaf_labels: Vec<i32> = cl
        .column("label")
        .unwrap()
        .i32()
        .unwrap()
        .into_no_null_iter()
        .collect();
    let k_eom = eom_labels.iter().copied().max().unwrap_or(-1) + 1;
    let k_leaf = leaf_labels.iter().copied().max().unwrap_or(-1) + 1;
    assert!(
        k_eom >= 1 && k_eom <= k_leaf,
        "{k_eom} EOM classes, {k_leaf} leaves"
    );
    assert!(eom_labels.iter().all(|&l| (-1..k_eom).contains(&l)));
    for leaf in 0..k_leaf {
        let inside: BTreeSet<i32> = leaf_labels
            .iter()
            .zip(&eom_labels)
            .filter(|(&l, _)| l == leaf)
            .map(|(_, &e)| e)
            .collect();
        assert_eq!(
            inside.len(),
            1,
            "leaf {leaf} is split across EOM labels {inside:?}"
        );
    }
}

#[test]
fn clustering_is_identical_at_one_and_two_threads() {
    let pipe = pipe(20_000);
    let a = Test::new();
    a.pipeline(&pipe);
    let b = Test::new();
    b.pipeline(&pipe);
    let ra = a.run_json(&["-j", "1"]).ok();
    let rb = b.run_json(&["-j", "2"]).ok();
    assert_eq!(ra.keys(), rb.keys());
    assert_eq!(
        Test::content_hashes(&a.cache()),
        Test::content_hashes(&b.cache())
    );
}

#[test]
fn changing_the_selection_reuses_the_tree() {
    let t = Test::new();
    t.pipeline(&pipe(20_000));
    t.run_json(&[]).ok();
    let r = t
        .run_json(&["--set", "classes.cluster_selection_epsilon=0.05"])
        .ok();
    assert_eq!(r.computed(), ["classes"]);
    let r = t.run_json(&["--set", "tree.min_samples=20"]).ok();
    assert_eq!(r.computed(), ["tree", "classes", "eom"]);
}

#[test]
fn bad_cluster_input_is_refused_clearly() {
    let t = Test::new();
    t.write("few.csv", "id,x0,x1\n1,0,0\n2,1,1\n3,2,2\n");
    t.pipeline("[nodes.r]\nop = \"read\"\npath = \"few.csv\"\n[nodes.t]\nop = \"cluster\"\ninput = \"r\"\ncolumns = \"x*\"\nmin_samples = 5\n");
    let r = t.run(&["p.toml"]);
    assert_eq!(r.code(), 2, "{}", r.stderr());
    assert!(
        r.stderr()
            .contains("HDBSCAN needs more points than min_samples: 3 rows, min_samples 5"),
        "{}",
        r.stderr()
    );

    t.write("nan.csv", "id,x0,x1\n1,0,0\n2,NaN,1\n3,2,2\n4,3,3\n");
    t.pipeline("[nodes.r]\nop = \"read\"\npath = \"nan.csv\"\n[nodes.t]\nop = \"cluster\"\ninput = \"r\"\ncolumns = \"x*\"\nmin_samples = 1\nmin_cluster_size = 2\n");
    let r = t.run(&["p.toml"]);
    assert_eq!(r.code(), 2);
    assert!(
        r.stderr().contains(
            "column `x0` has 1 unusable row(s): 1 NaN or infinite; the first is data row 2 (`NaN`)"
        ),
        "{}",
        r.stderr()
    );

    t.pipeline("[nodes.r]\nop = \"read\"\npath = \"nan.csv\"\n[nodes.s]\nop = \"select-leaves\"\ninput = \"r\"\n");
    let r = t.run(&["p.toml"]);
    assert_eq!(r.code(), 2);
    assert!(
        r.stderr().contains("not a condensed tree"),
        "{}",
        r.stderr()
    );
}
