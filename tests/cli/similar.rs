//! `similar` (the op and the command): the exact cosine top-k, planted classes found from
//! one member, counter-examples, a class's left-out candidates, duplicate detections.

use std::collections::BTreeSet;

use polars::prelude::*;

use crate::support::{featured, pca_leaves, Test};

fn read(path: &std::path::Path) -> DataFrame {
    ParquetReader::new(std::fs::File::open(path).unwrap())
        .finish()
        .unwrap()
}

fn strings(df: &DataFrame, name: &str) -> Vec<String> {
    df.column(name)
        .unwrap()
        .cast(&DataType::String)
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|v| v.unwrap().to_owned())
        .collect()
}

fn setup(t: &Test) -> DataFrame {
    t.pipeline(&format!(
        "[pipeline]\nname = \"s\"\n{}",
        featured(40_000, 32)
    ));
    t.run(&["export", "p.toml", "featured", "--out", "f.parquet"])
        .ok();
    read(&t.path("f.parquet"))
}

fn results(t: &Test, args: &[&str]) -> Vec<(String, f64)> {
    let mut all = vec!["similar", "p.toml", "--node", "featured", "--json"];
    all.extend_from_slice(args);
    let r = t.run(&all).ok();
    r.json()["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["id"].as_str().unwrap().to_owned(),
                x["score"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn top_k_is_the_exact_cosine_top_k_and_finds_a_planted_class() {
    let t = Test::new();
    let f = setup(&t);
    let ids = strings(&f, "id");
    let truth = strings(&f, "planted_class");
    let cols: Vec<String> = f
        .get_column_names()
        .iter()
        .filter(|c| c.starts_with("feat_"))
        .map(|c| c.to_string())
        .collect();
    let x: Vec<Vec<f64>> = {
        let c: Vec<Vec<f64>> = cols
            .iter()
            .map(|n| {
                f.column(n)
                    .unwrap()
                    .cast(&DataType::Float64)
                    .unwrap()
                    .f64()
                    .unwrap()
                    .into_no_null_iter()
                    .collect()
            })
            .collect();
        (0..f.height())
            .map(|i| c.iter().map(|col| col[i]).collect())
            .collect()
    };
    let q = truth
        .iter()
        .position(|c| c == "rare:one-armed-spiral")
        .unwrap();
    let unit = |v: &[f64]| {
        let n = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        v.iter().map(|a| a / n).collect::<Vec<f64>>()
    };
    let qv = unit(&x[q]);
    let mut brute: Vec<(f64, i64, usize)> = (0..x.len())
        .filter(|&i| i != q)
        .map(|i| {
            (
                unit(&x[i]).iter().zip(&qv).map(|(a, b)| a * b).sum::<f64>(),
                ids[i].parse::<i64>().unwrap(),
                i,
            )
        })
        .collect();
    brute.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let got = results(&t, &["--id", &ids[q], "-k", "50"]);
    assert_eq!(got.len(), 50);
    for (g, b) in got.iter().zip(&brute) {
        assert_eq!(g.0, ids[b.2], "the same galaxies in the same order");
        assert!((g.1 - b.0).abs() < 1e-9, "{} vs {}", g.1, b.0);
    }
    // From one member, the class: precision at 50.
    let hits = got
        .iter()
        .filter(|(id, _)| {
            truth[ids.iter().position(|i| i == id).unwrap()] == "rare:one-armed-spiral"
        })
        .count();
    assert!(hits >= 45, "precision@50 = {hits}/50");

    // Counter-examples: ranked by a classifier; examples and counter-examples are never results.
    let others: Vec<&String> = ids
        .iter()
        .zip(&truth)
        .filter(|(_, c)| c.as_str() == "rare:one-armed-spiral")
        .map(|(i, _)| i)
        .take(3)
        .collect();
    let bulk: Vec<&String> = ids
        .iter()
        .zip(&truth)
        .filter(|(_, c)| c.starts_with("bulk"))
        .map(|(i, _)| i)
        .take(3)
        .collect();
    let mut args: Vec<&str> = Vec::new();
    for o in &others {
        args.extend(["--id", o.as_str()]);
    }
    for b in &bulk {
        args.extend(["--not", b.as_str()]);
    }
    args.extend(["-k", "40"]);
    let got = results(&t, &args);
    assert!(got
        .iter()
        .all(|(id, _)| !others.contains(&id) && !bulk.contains(&id)));
    let hits = got
        .iter()
        .filter(|(id, _)| {
            truth[ids.iter().position(|i| i == id).unwrap()] == "rare:one-armed-spiral"
        })
        .count();
    assert!(hits >= 36, "classifier precision@40 = {hits}/40");
    assert!(got.windows(2).all(|w| w[0].1 >= w[1].1), "best first");

    // The same bytes with one thread and two.
    let one = t
        .command(&[
            "similar", "p.toml", "--node", "featured", "--id", &ids[q], "-j", "1",
        ])
        .env("DAGRUN_CACHE", t.path("c1"))
        .output()
        .unwrap();
    let two = t
        .command(&[
            "similar", "p.toml", "--node", "featured", "--id", &ids[q], "-j", "2",
        ])
        .env("DAGRUN_CACHE", t.path("c2"))
        .output()
        .unwrap();
    assert!(one.status.success() && two.status.success());
    assert_eq!(
        Test::content_hashes(&t.path("c1")),
        Test::content_hashes(&t.path("c2"))
    );
    assert_eq!(one.stdout, two.stdout);

    let bad = t.run(&[
        "similar",
        "p.toml",
        "--node",
        "featured",
        "--id",
        "no-such-galaxy",
    ]);
    assert_eq!(bad.code(), 2);
    assert!(
        bad.stderr()
            .contains("example id `no-such-galaxy` is not in the input"),
        "{}",
        bad.stderr()
    );
    let bad = t.run(&["similar", "p.toml", "--node", "nothing", "--id", "1"]);
    assert!(
        bad.stderr().contains("no node named `nothing`"),
        "{}",
        bad.stderr()
    );
}

#[test]
fn a_class_search_leaves_out_its_members_and_duplicates_are_dropped() {
    let t = Test::new();
    t.pipeline(&format!(
        "[pipeline]\nname = \"s\"\n{}{}",
        featured(8000, 16),
        pca_leaves(20)
    ));
    t.run(&["export", "p.toml", "classes", "--out", "c.parquet"])
        .ok();
    let c = read(&t.path("c.parquet"));
    let labels: Vec<i32> = c
        .column("label")
        .unwrap()
        .i32()
        .unwrap()
        .into_no_null_iter()
        .collect();
    let ids = strings(&c, "id");
    let members: BTreeSet<&String> = ids
        .iter()
        .zip(&labels)
        .filter(|(_, &l)| l == 0)
        .map(|(i, _)| i)
        .collect();
    assert!(!members.is_empty());
    let got = results(
        &t,
        &[
            "--class",
            "0",
            "--classes",
            "classes",
            "--columns",
            "feat_*",
            "-k",
            "30",
        ],
    );
    assert_eq!(got.len(), 30);
    assert!(
        got.iter().all(|(id, _)| !members.contains(id)),
        "the class's own members are not candidates"
    );

    // Two detections of one galaxy 1 arcsec apart: the second is a duplicate.
    let mut csv = String::from("id,ra,dec,feat_0,feat_1,feat_2\n");
    csv.push_str("q,10.0,5.0,1.0,0.0,0.0\n");
    csv.push_str("a,20.0,5.0,0.99,0.1,0.0\n");
    csv.push_str(&format!(
        "a-dup,20.0,{},0.99,0.1,0.001\n",
        5.0 + 1.0 / 3600.0
    ));
    csv.push_str("b,30.0,5.0,0.9,0.3,0.0\n");
    csv.push_str("c,40.0,5.0,0.0,1.0,0.0\n");
    t.write("d.csv", &csv);
    t.pipeline("[pipeline]\nname = \"d\"\n[nodes.cat]\nop = \"read\"\npath = \"d.csv\"\n");
    let run = |extra: &[&str]| -> Vec<String> {
        let mut a = vec![
            "similar", "p.toml", "--node", "cat", "--id", "q", "-k", "3", "--json",
        ];
        a.extend_from_slice(extra);
        t.run(&a).ok().json()["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(run(&[]), ["a", "b", "c"]);
    assert_eq!(run(&["--dedupe-arcsec", "0"]), ["a", "a-dup", "b"]);
}

#[test]
fn html_writes_a_gallery_of_cutouts_or_columns() {
    let t = Test::new();
    // A catalogue with image paths (one missing) and a 4-d representation.
    std::fs::create_dir_all(t.path("data/img")).unwrap();
    let mut csv = String::from("id,feat_0,feat_1,feat_2,feat_3,kind,file_loc\n");
    for i in 0..30 {
        let a = i as f64 * 0.2;
        csv.push_str(&format!(
            "g{i},{:.4},{:.4},{:.4},1.0,{},img/g{i}.png\n",
            a.cos(),
            a.sin(),
            (i % 3) as f64,
            if i < 15 { "near" } else { "far" }
        ));
        if i != 2 {
            image::RgbImage::from_fn(20, 20, |x, y| {
                image::Rgb([(x * 12) as u8, (y * 12) as u8, (i * 8) as u8])
            })
            .save(t.path(&format!("data/img/g{i}.png")))
            .unwrap();
        }
    }
    t.write("data/cat.csv", &csv);
    t.pipeline("[pipeline]\nname = \"h\"\nid = \"id\"\n[nodes.catalog]\nop = \"read\"\npath = \"data/cat.csv\"\n");
    t.run(&[
        "similar", "p.toml", "--node", "catalog", "--id", "g0", "-k", "5", "--html", "gallery",
    ])
    .ok();
    let html = std::fs::read_to_string(t.path("gallery/index.html")).unwrap();
    let r = t
        .run(&[
            "similar", "p.toml", "--node", "catalog", "--id", "g0", "-k", "5", "--json",
        ])
        .ok();
    for (rank, x) in r.json()["results"].as_array().unwrap().iter().enumerate() {
        let id = x["id"].as_str().unwrap();
        assert!(
            html.contains(&format!("<b>#{} {id}</b>", rank + 1)),
            "{id} at rank {} on the page",
            rank + 1
        );
    }
    // One cutout per example and result, each a PNG beside the page; a missing file says so.
    let imgs = html.matches("<img src=\"thumbs/").count();
    let missing = html.matches("cutout unreadable").count();
    assert_eq!(imgs + missing, 6, "{html}");
    for f in std::fs::read_dir(t.path("gallery/thumbs")).unwrap() {
        assert!(image::open(f.unwrap().path()).is_ok());
    }
    assert!(
        html.contains("<td>kind</td>"),
        "the catalogue's columns are shown"
    );
    // Without image paths: the rows' columns, no images.
    let t = Test::new();
    setup(&t);
    t.run(&[
        "similar", "p.toml", "--node", "featured", "--id", "5", "-k", "3", "--html", "g2",
    ])
    .ok();
    let html = std::fs::read_to_string(t.path("g2/index.html")).unwrap();
    assert!(
        !html.contains("<img")
            && html.contains("planted_class")
            && html.contains("legacysurvey.org/viewer?ra="),
        "{html}"
    );
}
