//! Ops end to end: the built-in sample's properties and determinism, reading each file
//! format, joining, exporting and showing.

use polars::prelude::*;

use crate::support::{Test, SMALL};

fn read_parquet(path: &std::path::Path) -> DataFrame {
    ParquetReader::new(std::fs::File::open(path).unwrap())
        .finish()
        .unwrap()
}

#[test]
fn synthetic_sample_is_deterministic_and_gz_desi_like() {
    let a = Test::new();
    a.pipeline(SMALL);
    let b = Test::new();
    b.pipeline(SMALL);
    let ka = a.run_json(&["--target", "catalog"]).ok().keys();
    b.run_json(&["--target", "catalog"]).ok();
    assert_eq!(
        Test::content_hashes(&a.cache()),
        Test::content_hashes(&b.cache()),
        "same parameters, same bytes"
    );
    let other = b
        .run_json(&["--target", "catalog", "--set", "catalog.seed=1"])
        .ok()
        .keys();
    assert_eq!(
        Test::content_hashes(&b.cache()).len(),
        2,
        "another seed is another entry"
    );
    assert_ne!(ka["catalog"], other["catalog"]);

    let t = Test::new();
    t.pipeline(&SMALL.replace("n = 3000", "n = 40000"));
    t.run(&["export", "p.toml", "catalog", "--out", "catalog.parquet"])
        .ok();
    t.run(&["export", "p.toml", "featured", "--out", "featured.parquet"])
        .ok();
    let cat = read_parquet(&t.path("catalog.parquet"));
    let feat = read_parquet(&t.path("featured.parquet"));
    assert_eq!(cat.height(), 40_000);
    for c in [
        "id",
        "ra",
        "dec",
        "smooth-or-featured_smooth_fraction",
        "smooth-or-featured_featured-or-disk_fraction",
        "smooth-or-featured_artifact_fraction",
        "disk-edge-on_yes_fraction",
        "disk-edge-on_no_fraction",
        "planted_class",
        "feat_0",
        "feat_15",
    ] {
        assert!(cat.schema().contains(c), "missing column {c}");
    }
    let classes = |df: &DataFrame, prefix: &str| -> usize {
        df.column("planted_class")
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .flatten()
            .filter(|s| s.starts_with(prefix))
            .count()
    };
    // Every planted rare class passes the paper's cut; no artifact or smooth galaxy does.
    assert_eq!(classes(&cat, "rare:"), classes(&feat, "rare:"));
    assert_eq!(classes(&feat, "artifact:"), 0);
    assert_eq!(classes(&feat, "bulk:smooth"), 0);
    assert_eq!(classes(&feat, "bulk:edge-on"), 0);
    let rare = classes(&feat, "rare:") as f64 / feat.height() as f64;
    assert!(
        (0.015..0.025).contains(&rare),
        "rare classes are about 2% of featured galaxies: {rare}"
    );
    let artifact_kinds: std::collections::BTreeSet<String> = cat
        .column("planted_class")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .flatten()
        .filter(|s| s.starts_with("artifact:"))
        .map(str::to_owned)
        .collect();
    assert_eq!(artifact_kinds.len(), 4, "{artifact_kinds:?}");
    // Some featured galaxies were never asked the edge-on question (NaN) and are kept.
    let nan_kept = feat
        .column("disk-edge-on_yes_fraction")
        .unwrap()
        .f64()
        .unwrap()
        .into_no_null_iter()
        .filter(|v| v.is_nan())
        .count();
    assert!(nan_kept > 0);
}

#[test]
fn rare_classes_are_dense_in_the_representation() {
    // A planted class is tighter than the bulk: its members' mean distance to their class
    // centroid is well below the bulk's spread.
    let t = Test::new();
    t.pipeline(&SMALL.replace("n = 3000", "n = 30000"));
    t.run(&["export", "p.toml", "featured", "--out", "f.parquet"])
        .ok();
    let df = read_parquet(&t.path("f.parquet"));
    let cls: Vec<String> = df
        .column("planted_class")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .flatten()
        .map(str::to_owned)
        .collect();
    let feats: Vec<Vec<f32>> = (0..16)
        .map(|j| {
            df.column(&format!("feat_{j}"))
                .unwrap()
                .f32()
                .unwrap()
                .into_no_null_iter()
                .collect()
        })
        .collect();
    let spread = |pick: &dyn Fn(usize) -> bool| -> f64 {
        let rows: Vec<usize> = (0..df.height()).filter(|&i| pick(i)).collect();
        let mean: Vec<f64> = (0..16)
            .map(|j| rows.iter().map(|&i| feats[j][i] as f64).sum::<f64>() / rows.len() as f64)
            .collect();
        rows.iter()
            .map(|&i| {
                (0..16)
                    .map(|j| (feats[j][i] as f64 - mean[j]).powi(2))
                    .sum::<f64>()
                    .sqrt()
            })
            .sum::<f64>()
            / rows.len() as f64
    };
    let bulk = spread(&|i| cls[i] == "bulk:featured");
    let ring = spread(&|i| cls[i] == "rare:ring");
    assert!(
        ring < 0.35 * bulk,
        "rare class spread {ring} vs bulk {bulk}"
    );
}

#[test]
fn read_parquet_csv_and_ipc_with_column_globs() {
    let t = Test::new();
    let mut df = df!("id" => [1i64, 2, 3], "feat_0" => [0.1f32, 0.2, 0.3], "feat_1" => [1.0f32, 2.0, 3.0], "other" => ["a", "b", "c"]).unwrap();
    ParquetWriter::new(std::fs::File::create(t.path("x.parquet")).unwrap())
        .finish(&mut df)
        .unwrap();
    IpcWriter::new(std::fs::File::create(t.path("x.arrow")).unwrap())
        .finish(&mut df)
        .unwrap();
    CsvWriter::new(std::fs::File::create(t.path("x.csv")).unwrap())
        .finish(&mut df)
        .unwrap();
    for file in ["x.parquet", "x.arrow", "x.csv"] {
        t.pipeline(&format!(
            "[nodes.r]\nop = \"read\"\npath = \"{file}\"\ncolumns = \"feat_*\"\n"
        ));
        t.run(&["export", "p.toml", "r", "--out", "out.parquet"])
            .ok();
        let got = read_parquet(&t.path("out.parquet"));
        let names: Vec<&str> = got
            .get_column_names()
            .into_iter()
            .map(|s| s.as_str())
            .collect();
        assert_eq!(names, ["id", "feat_0", "feat_1"], "{file}");
        assert_eq!(got.height(), 3);
    }
}

#[test]
fn join_inner_and_left_keep_left_order() {
    let t = Test::new();
    t.write(
        "reps.csv",
        "dr8_id,feat_0\n30,0.3\n10,0.1\n20,0.2\n40,0.4\n",
    );
    t.write("votes.csv", "dr8_id,smooth\n20,0.9\n10,0.1\n30,0.4\n");
    let p = "[pipeline]\nid = \"dr8_id\"\n[nodes.reps]\nop = \"read\"\npath = \"reps.csv\"\n[nodes.votes]\nop = \"read\"\npath = \"votes.csv\"\n[nodes.j]\nop = \"join\"\ninputs = [\"reps\", \"votes\"]\non = \"dr8_id\"\n";
    t.pipeline(p);
    t.run(&["export", "p.toml", "j", "--out", "j.csv"]).ok();
    assert_eq!(
        std::fs::read_to_string(t.path("j.csv")).unwrap(),
        "dr8_id,feat_0,smooth\n30,0.3,0.4\n10,0.1,0.1\n20,0.2,0.9\n"
    );
    t.run(&[
        "export",
        "p.toml",
        "j",
        "--out",
        "l.csv",
        "--set",
        "j.how=\"left\"",
    ])
    .ok();
    assert_eq!(
        std::fs::read_to_string(t.path("l.csv")).unwrap(),
        "dr8_id,feat_0,smooth\n30,0.3,0.4\n10,0.1,0.1\n20,0.2,0.9\n40,0.4,\n"
    );
}

#[test]
fn sample_keeps_the_same_galaxies_whatever_the_order_and_the_rest() {
    let t = Test::new();
    let rows: String = (0..2000)
        .map(|i| format!("{i},{}\n", i as f64 * 0.5))
        .collect();
    t.write("a.csv", &format!("id,x\n{rows}"));
    // The same galaxies reversed, then 1000 more appended.
    let rev: String = (0..2000)
        .rev()
        .chain(2000..3000)
        .map(|i| format!("{i},{}\n", i as f64 * 0.5))
        .collect();
    t.write("b.csv", &format!("id,x\n{rev}"));
    let p = |path: &str| {
        format!("[nodes.r]\nop = \"read\"\npath = \"{path}\"\n[nodes.s]\nop = \"sample\"\ninput = \"r\"\nfraction = 0.25\nseed = 7\n")
    };
    t.pipeline(&p("a.csv"));
    t.run(&["export", "p.toml", "s", "--out", "a.csv.out.parquet"])
        .ok();
    t.pipeline(&p("b.csv"));
    t.run(&["export", "p.toml", "s", "--out", "b.csv.out.parquet"])
        .ok();
    let ids = |f: &str| -> Vec<i64> {
        read_parquet(&t.path(f))
            .column("id")
            .unwrap()
            .i64()
            .unwrap()
            .into_no_null_iter()
            .collect()
    };
    let (a, b) = (ids("a.csv.out.parquet"), ids("b.csv.out.parquet"));
    assert!(
        (400..600).contains(&a.len()),
        "about a quarter of 2000: {}",
        a.len()
    );
    assert!(a.windows(2).all(|w| w[0] < w[1]), "rows keep their order");
    let mut old: Vec<i64> = b.iter().copied().filter(|&i| i < 2000).collect();
    old.sort_unstable();
    assert_eq!(
        old, a,
        "the same galaxies, whatever the order and the appended rows"
    );
    assert!(b.iter().any(|&i| i >= 2000));

    t.pipeline(&p("a.csv").replace("0.25", "1.5"));
    let bad = t.run(&["plan", "p.toml"]);
    assert_eq!(bad.code(), 2);
    assert!(
        bad.stderr().contains("fraction") && bad.stderr().contains("between 0 and 1"),
        "{}",
        bad.stderr()
    );
}

#[test]
fn export_and_show() {
    let t = Test::new();
    t.pipeline(SMALL);
    let r = t
        .run(&["export", "p.toml", "pca", "--out", "pca.parquet"])
        .ok();
    assert!(r.stderr().contains("wrote"), "{}", r.stderr());
    let df = read_parquet(&t.path("pca.parquet"));
    let names: Vec<&str> = df
        .get_column_names()
        .into_iter()
        .map(|s| s.as_str())
        .collect();
    assert_eq!(names, ["id", "pca_0", "pca_1", "pca_2", "pca_3"]);
    // Exported Parquet is byte-identical to the cached entry.
    let key = t.run_json(&["--target", "pca"]).ok().keys()["pca"].clone();
    let cached = t
        .cache()
        .join("v1/objects")
        .join(&key[..2])
        .join(&key)
        .join("data.parquet");
    assert_eq!(
        std::fs::read(cached).unwrap(),
        std::fs::read(t.path("pca.parquet")).unwrap()
    );

    let show = t.run(&["show", "p.toml", "featured"]).ok().stdout();
    assert!(show.contains("node `featured` (filter op)"), "{show}");
    assert!(
        show.contains("smooth-or-featured_smooth_fraction: f64"),
        "{show}"
    );
    assert!(show.contains("\"content_hash\""), "{show}");
    assert!(
        show.contains("rows dropped by `smooth-or-featured_smooth_fraction >= 0.5`"),
        "{show}"
    );
    let bad = t.run(&["export", "p.toml", "pca", "--out", "pca.xlsx"]);
    assert_eq!(bad.code(), 2);
}
