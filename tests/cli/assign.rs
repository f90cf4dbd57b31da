//! `assign`: held-out galaxies land in the classes of the search fitted without them; a
//! galaxy's result depends only on itself and the fit; fitted galaxies keep their results;
//! the fit's tables are reused; a wrong chain is a clear error.

use std::collections::HashMap;

use polars::prelude::*;

use crate::support::{featured, Test};

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

fn ints(df: &DataFrame, name: &str) -> Vec<i64> {
    df.column(name)
        .unwrap()
        .cast(&DataType::Int64)
        .unwrap()
        .i64()
        .unwrap()
        .into_no_null_iter()
        .collect()
}

fn floats(df: &DataFrame, name: &str) -> Vec<f64> {
    df.column(name)
        .unwrap()
        .cast(&DataType::Float64)
        .unwrap()
        .f64()
        .unwrap()
        .into_no_null_iter()
        .collect()
}

/// The search fitted on the first 80% of `n` galaxies by id (a random 80%: the sample's
/// ids are in a random order of its classes), `new` the others, and `extra` nodes.
fn held_out(n: u64, extra: &str) -> String {
    let cut = n * 4 / 5;
    format!(
        "[pipeline]\nname = \"a\"\n{}\
         [nodes.fit]\nop = \"filter\"\ninput = \"featured\"\nkeep_where = [\"id < {cut}\"]\n\
         [nodes.new]\nop = \"filter\"\ninput = \"featured\"\nkeep_where = [\"id >= {cut}\"]\n\
         [nodes.umap]\nop = \"reduce\"\nmethod = \"umap\"\ninput = \"fit\"\nn_neighbors = 30\nn_components = 5\n\
         [nodes.tree]\nop = \"cluster\"\ninput = \"umap\"\nmin_samples = 50\nmin_cluster_size = 10\n\
         [nodes.classes]\nop = \"select-leaves\"\ninput = \"tree\"\n\
         [nodes.assigned]\nop = \"assign\"\ninputs = [\"new\", \"classes\"]\n{extra}",
        featured(n, 32)
    )
}

#[test]
fn held_out_galaxies_land_in_the_classes_of_their_planted_kind() {
    let t = Test::new();
    t.pipeline(&held_out(
        100_000,
        "[nodes.everyone]\nop = \"assign\"\ninputs = [\"featured\", \"classes\"]\n",
    ));
    let r = t.run_json(&[]).ok();
    // The two assign nodes share one core-distance table, a cache entry of its own.
    let keys = r.keys();
    assert_eq!(keys["assigned.core"], keys["everyone.core"]);
    for node in ["featured", "classes", "umap", "assigned", "everyone"] {
        t.run(&[
            "export",
            "p.toml",
            node,
            "--out",
            &format!("{node}.parquet"),
        ])
        .ok();
    }
    let f = read(&t.path("featured.parquet"));
    let truth: HashMap<String, String> = strings(&f, "id")
        .into_iter()
        .zip(strings(&f, "planted_class"))
        .collect();
    let classes = read(&t.path("classes.parquet"));
    let fit_ids = strings(&classes, "id");
    let fit_label = ints(&classes, "label");
    let assigned = read(&t.path("assigned.parquet"));
    let new_ids = strings(&assigned, "id");
    let new_label = ints(&assigned, "label");
    assert!(new_ids.iter().all(|i| i.parse::<i64>().unwrap() >= 80_000));

    // Each planted class the fit recovers (Jaccard >= 0.9) with >= 20 held-out members:
    // >= 90% of those land in its class.
    let kinds: std::collections::BTreeSet<&String> =
        truth.values().filter(|c| c.starts_with("rare:")).collect();
    let mut checked = 0;
    let mut seen = Vec::new();
    for kind in kinds {
        let members: Vec<bool> = fit_ids.iter().map(|i| &truth[i] == kind).collect();
        let labels: std::collections::BTreeSet<i64> = fit_label
            .iter()
            .zip(&members)
            .filter(|(&l, &m)| m && l >= 0)
            .map(|(&l, _)| l)
            .collect();
        let Some((label, jaccard)) = labels
            .iter()
            .map(|&l| {
                let inter = fit_label
                    .iter()
                    .zip(&members)
                    .filter(|(&x, &m)| m && x == l)
                    .count();
                let union = fit_label
                    .iter()
                    .zip(&members)
                    .filter(|(&x, &m)| m || x == l)
                    .count();
                (l, inter as f64 / union as f64)
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
        else {
            continue;
        };
        let held: Vec<i64> = new_ids
            .iter()
            .zip(&new_label)
            .filter(|(i, _)| &truth[*i] == kind)
            .map(|(_, &l)| l)
            .collect();
        seen.push(format!(
            "{kind}: Jaccard {jaccard:.3}, {} held out",
            held.len()
        ));
        if jaccard >= 0.9 && held.len() >= 20 {
            let landed = held.iter().filter(|&&l| l == label).count() as f64 / held.len() as f64;
            assert!(
                landed >= 0.9,
                "{kind}: {landed:.3} of {} held-out members in its class",
                held.len()
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 3,
        "only {checked} planted classes recovered with enough held-out members: {seen:?}"
    );
    // Bulk galaxies land in classes at most twice as often as in the fit.
    let share = |ids: &[String], labels: &[i64]| {
        let bulk: Vec<i64> = ids
            .iter()
            .zip(labels)
            .filter(|(i, _)| truth[*i].starts_with("bulk"))
            .map(|(_, &l)| l)
            .collect();
        bulk.iter().filter(|&&l| l >= 0).count() as f64 / bulk.len() as f64
    };
    let (fit_share, new_share) = (share(&fit_ids, &fit_label), share(&new_ids, &new_label));
    assert!(
        new_share <= 2.0 * fit_share + 1e-3,
        "bulk in a class: assigned {new_share:.4}, fit {fit_share:.4}"
    );

    // Fitted galaxies keep exactly their fitted position and class; the new ones get what
    // `assigned` gave them, in a batch four times the size.
    let layout = read(&t.path("umap.parquet"));
    let everyone = read(&t.path("everyone.parquet"));
    let row: HashMap<String, usize> = strings(&everyone, "id")
        .into_iter()
        .enumerate()
        .map(|(i, s)| (s, i))
        .collect();
    for c in ["umap_0", "umap_4"] {
        let (fitted, all) = (floats(&layout, c), floats(&everyone, c));
        for (i, id) in strings(&layout, "id").iter().enumerate() {
            assert_eq!(all[row[id]], fitted[i], "{c} of fitted galaxy {id}");
        }
        let new = floats(&assigned, c);
        for (i, id) in new_ids.iter().enumerate() {
            assert_eq!(
                all[row[id]], new[i],
                "{c} of new galaxy {id} depends on its batch"
            );
        }
    }
    let (all_label, all_prob) = (ints(&everyone, "label"), floats(&everyone, "probability"));
    let fit_prob = floats(&classes, "probability");
    for (i, id) in fit_ids.iter().enumerate() {
        assert_eq!(
            (all_label[row[id]], all_prob[row[id]]),
            (fit_label[i], fit_prob[i]),
            "class of fitted galaxy {id}"
        );
    }
    let nearest = strings(&everyone, "nearest_id");
    assert!(
        fit_ids.iter().all(|id| &nearest[row[id]] == id),
        "a fitted galaxy is its own nearest fitted galaxy"
    );
    let labels_ok = new_label
        .iter()
        .all(|&l| l >= -1 && l < fit_label.iter().max().unwrap() + 1);
    assert!(labels_ok, "only labels the fit has");
}

#[test]
fn a_galaxy_depends_on_itself_and_the_fit_not_on_its_batch_order_or_threads() {
    let t = Test::new();
    t.pipeline(&held_out(30_000, ""));
    t.run(&["export", "p.toml", "new", "--out", "new.parquet"])
        .ok();
    t.run(&[
        "export",
        "p.toml",
        "assigned",
        "--out",
        "a1.parquet",
        "-j",
        "1",
    ])
    .ok();
    // The same galaxies reversed and with every third one left out, read from a file,
    // assigned with two threads.
    let new = read(&t.path("new.parquet"));
    let n = new.height() as IdxSize;
    let keep: Vec<IdxSize> = (0..n).rev().filter(|i| i % 3 != 0).collect();
    let mut shuffled = new.take(&IdxCa::from_vec("i".into(), keep)).unwrap();
    ParquetWriter::new(std::fs::File::create(t.path("shuffled.parquet")).unwrap())
        .finish(&mut shuffled)
        .unwrap();
    let p = std::fs::read_to_string(t.path("p.toml")).unwrap();
    t.pipeline(&format!("{p}[nodes.later]\nop = \"read\"\npath = \"shuffled.parquet\"\n[nodes.again]\nop = \"assign\"\ninputs = [\"later\", \"classes\"]\n"));
    t.run(&[
        "export",
        "p.toml",
        "again",
        "--out",
        "a2.parquet",
        "-j",
        "2",
    ])
    .ok();
    // Only the new assignment ran: the fit, its core distances included, were hits.
    let r = t.run_json(&["--target", "again"]).ok();
    assert!(r.computed().is_empty(), "{:?}", r.computed());
    let (a1, a2) = (read(&t.path("a1.parquet")), read(&t.path("a2.parquet")));
    let row: HashMap<String, usize> = strings(&a1, "id")
        .into_iter()
        .enumerate()
        .map(|(i, s)| (s, i))
        .collect();
    let ids2 = strings(&a2, "id");
    assert_eq!(ids2.len(), keep_len(n as usize));
    for c in [
        "umap_0",
        "umap_1",
        "umap_2",
        "umap_3",
        "umap_4",
        "probability",
        "outlier_score",
    ] {
        let (v1, v2) = (floats(&a1, c), floats(&a2, c));
        for (i, id) in ids2.iter().enumerate() {
            assert_eq!(v2[i].to_bits(), v1[row[id]].to_bits(), "{c} of {id}");
        }
    }
    let (l1, l2) = (ints(&a1, "label"), ints(&a2, "label"));
    assert!(ids2.iter().enumerate().all(|(i, id)| l2[i] == l1[row[id]]));
}

fn keep_len(n: usize) -> usize {
    (0..n).filter(|i| i % 3 != 0).count()
}

#[test]
fn assign_names_what_is_wrong_with_its_inputs() {
    let t = Test::new();
    let base = held_out(30_000, "");
    // CLASSES that are not a selection.
    t.pipeline(&base.replace(
        "inputs = [\"new\", \"classes\"]",
        "inputs = [\"new\", \"fit\"]",
    ));
    let e = t.run(&["plan", "p.toml"]).stderr();
    assert!(
        e.contains("assigned")
            && e.contains("`fit` is a `filter` node, not a select-leaves or select-eom node"),
        "{e}"
    );
    // A clustering of a PCA, not of a UMAP layout.
    t.pipeline(&base.replace(
        "method = \"umap\"\ninput = \"fit\"\nn_neighbors = 30\n",
        "method = \"pca\"\ninput = \"fit\"\nprefix = \"umap_\"\n",
    ));
    let e = t.run(&["plan", "p.toml"]).stderr();
    assert!(
        e.contains("`tree` clusters `umap`, a `reduce` node, not a UMAP reduction"),
        "{e}"
    );
    // New galaxies without the search's features.
    t.pipeline(
        &format!("{base}[nodes.bare]\nop = \"filter\"\ninput = \"tree\"\nkeep_where = [\"child_size > 1\"]\n")
            .replace("inputs = [\"new\", \"classes\"]", "inputs = [\"bare\", \"classes\"]"),
    );
    let e = t.run(&["plan", "p.toml"]).stderr();
    assert!(
        e.contains("assigned") && e.contains("the new galaxies lack the search's feature columns"),
        "{e}"
    );
    // A clustering of some of the layout's columns.
    t.pipeline(&base.replace(
        "input = \"umap\"\nmin_samples",
        "input = \"umap\"\ncolumns = [\"umap_0\", \"umap_1\"]\nmin_samples",
    ));
    let e = t.run(&["plan", "p.toml"]).stderr();
    assert!(
        e.contains("clusters `umap_0, umap_1`, not the UMAP layout's columns"),
        "{e}"
    );
}

/// Issue #36 row 3: a galaxy's placement depends on its features and the fit, never on its
/// name: the same galaxies under other ids get the same positions and labels, bit for bit.
#[test]
fn renaming_galaxies_never_moves_them() {
    let t = Test::new();
    t.pipeline(&held_out(20_000, ""));
    t.run(&["export", "p.toml", "new", "--out", "new.parquet"])
        .ok();
    let mut renamed = read(&t.path("new.parquet"));
    let ids: Vec<String> = strings(&renamed, "id")
        .into_iter()
        .map(|i| format!("g{i}"))
        .collect();
    renamed.with_column(Column::new("id".into(), ids)).unwrap();
    ParquetWriter::new(std::fs::File::create(t.path("renamed.parquet")).unwrap())
        .finish(&mut renamed)
        .unwrap();
    t.pipeline(&held_out(20_000, "[nodes.renamed]\nop = \"read\"\npath = \"renamed.parquet\"\n[nodes.again]\nop = \"assign\"\ninputs = [\"renamed\", \"classes\"]\n"));
    t.run(&["export", "p.toml", "assigned", "--out", "a.parquet"])
        .ok();
    t.run(&["export", "p.toml", "again", "--out", "b.parquet"])
        .ok();
    let (a, b) = (read(&t.path("a.parquet")), read(&t.path("b.parquet")));
    assert_eq!(a.height(), b.height());
    assert_eq!(
        strings(&b, "id"),
        strings(&a, "id")
            .iter()
            .map(|i| format!("g{i}"))
            .collect::<Vec<_>>()
    );
    for c in ["umap_0", "umap_1", "umap_4", "probability"] {
        assert_eq!(floats(&a, c), floats(&b, c), "column {c}");
    }
    assert_eq!(ints(&a, "label"), ints(&b, "label"));
}
