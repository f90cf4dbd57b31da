//! `dagrun sweep`: grid points share nodes (each key computed once), a rerun computes
//! nothing, a partial sweep resumes, and the summary says what each point found.

use std::collections::{BTreeMap, BTreeSet};

use polars::prelude::*;

use crate::support::{featured, Run, Test};

fn pipeline() -> String {
    format!(
        "[pipeline]\nname = \"sw\"\n{}\
         [nodes.umap]\nop = \"reduce\"\nmethod = \"umap\"\ninput = \"featured\"\nn_neighbors = 10\nn_components = 2\nn_epochs = 60\n\
         [nodes.tree]\nop = \"cluster\"\ninput = \"umap\"\ncolumns = \"umap_*\"\nmin_samples = 10\nmin_cluster_size = 15\n\
         [nodes.classes]\nop = \"select-leaves\"\ninput = \"tree\"\n\
         [nodes.report]\nop = \"report\"\ninputs = [\"classes\", \"featured\"]\nmembers = 3\n",
        featured(6000, 16)
    )
}

/// (node, key) -> how many times a sweep's JSON report says it was computed.
fn computed(r: &Run) -> BTreeMap<(String, String), usize> {
    let mut m = BTreeMap::new();
    for p in r.json()["points"].as_array().expect("points") {
        for n in p["nodes"].as_array().expect("nodes") {
            if n["status"] == "computed" {
                *m.entry((
                    n["name"].as_str().unwrap().to_owned(),
                    n["key"].as_str().unwrap().to_owned(),
                ))
                .or_default() += 1;
            }
        }
    }
    m
}

fn keys_of(r: &Run, node: &str) -> BTreeSet<String> {
    r.json()["points"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["nodes"].as_array().unwrap().iter())
        .filter(|n| n["name"] == node)
        .map(|n| n["key"].as_str().unwrap().to_owned())
        .collect()
}

const NN: &str = "--grid=umap.n_neighbors=10,15";
const D: &str = "--grid=umap.n_components=2,3";
const MS: &str = "--grid=tree.min_samples=10,20";

#[test]
fn sweep_computes_each_key_once_and_resumes() {
    let t = Test::new();
    t.pipeline(&pipeline());
    // Half the grid first, as if the full sweep had been killed after it.
    let half = t
        .run(&[
            "sweep",
            "p.toml",
            "--grid=umap.n_neighbors=10",
            D,
            MS,
            "--json",
        ])
        .ok();
    let full = t.run(&["sweep", "p.toml", NN, D, MS, "--json"]).ok();
    let n_points = full.json()["points"].as_array().unwrap().len();
    assert_eq!(n_points, 8);
    // Each key of the full grid is computed exactly once over both runs.
    let mut all = computed(&half);
    for (k, c) in computed(&full) {
        *all.entry(k).or_default() += c;
    }
    assert!(
        all.values().all(|&c| c == 1),
        "a key computed twice: {all:?}"
    );
    let count = |node: &str| all.keys().filter(|(n, _)| n == node).count();
    assert_eq!(
        (
            count("umap.knn"),
            count("umap"),
            count("tree"),
            count("classes")
        ),
        (2, 4, 8, 8)
    );
    assert_eq!(
        (keys_of(&full, "umap").len(), keys_of(&full, "tree").len()),
        (4, 8)
    );
    // The second run only computed what the first did not have (n_neighbors 15).
    assert_eq!(
        computed(&full).keys().filter(|(n, _)| n == "umap").count(),
        2
    );
    assert_eq!(
        count("catalog") + count("featured"),
        2,
        "shared by every point, computed once"
    );

    // Running the same sweep again computes nothing.
    let again = t
        .run(&["sweep", "p.toml", NN, D, MS, "--json", "--parallel", "1"])
        .ok();
    assert!(computed(&again).is_empty(), "{:?}", computed(&again));

    // The summary: one row per point with its parameters and what it found.
    let dir = again.json()["summary_dir"].as_str().unwrap().to_owned();
    let s = ParquetReader::new(
        std::fs::File::open(std::path::Path::new(&dir).join("summary.parquet")).unwrap(),
    )
    .finish()
    .unwrap();
    assert_eq!(s.height(), 8);
    for c in [
        "umap.n_neighbors",
        "umap.n_components",
        "tree.min_samples",
        "classes",
        "clustered_fraction",
        "stable_classes",
        "recovered",
        "seconds",
    ] {
        assert!(
            s.schema().contains(c),
            "summary has no `{c}`: {:?}",
            s.schema()
        );
    }
    let nn: Vec<i64> = s
        .column("umap.n_neighbors")
        .unwrap()
        .i64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    assert_eq!(nn, [10, 10, 10, 10, 15, 15, 15, 15]);
    // Class counts agree with each point's classes node.
    for (i, p) in again.json()["points"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let k = p["summary"]["classes"].as_u64().unwrap();
        assert_eq!(
            s.column("classes").unwrap().u32().unwrap().get(i),
            Some(k as u32)
        );
    }
    let html = std::fs::read_to_string(std::path::Path::new(&dir).join("index.html")).unwrap();
    assert!(
        html.contains("Classes per grid point") && html.contains("<svg"),
        "sweep page has its plots"
    );
    // A group of heatmaps per pair of the three axes, under a heading that names the pair;
    // in each, one for each of classes, clustered share, recovery.
    assert_eq!(
        html.matches("(each cell: the mean over the other axes)</small></h3>")
            .count(),
        3,
        "a heading per pair of axes"
    );
    assert!(html.contains("<h3>umap.n_neighbors &times; tree.min_samples <small>"));
    for m in [
        "classes",
        "galaxies in a class (%)",
        "planted classes recovered",
    ] {
        assert_eq!(
            html.matches(&format!("font-weight=\"bold\">{m}</text>"))
                .count(),
            3,
            "a `{m}` heatmap per pair"
        );
    }
    let mean_classes = |nn: i64, ms: i64| {
        let rows: Vec<u32> = (0..8)
            .filter(|&i| {
                s.column("umap.n_neighbors").unwrap().i64().unwrap().get(i) == Some(nn)
                    && s.column("tree.min_samples").unwrap().i64().unwrap().get(i) == Some(ms)
            })
            .map(|i| s.column("classes").unwrap().u32().unwrap().get(i).unwrap())
            .collect();
        rows.iter().sum::<u32>() as f64 / rows.len() as f64
    };
    let first_ms = s
        .column("tree.min_samples")
        .unwrap()
        .i64()
        .unwrap()
        .get(0)
        .unwrap();
    let cell = format!("{:.0}</text>", mean_classes(10, first_ms));
    assert!(
        html.contains(&format!("fill=\"#222\">{cell}"))
            || html.contains(&format!("fill=\"#fff\">{cell}")),
        "a cell holds the mean over the other axis"
    );
    assert!(
        html.matches("href=\"../../objects/").count() == 8,
        "each point links to its report"
    );
    let classes = ParquetReader::new(
        std::fs::File::open(std::path::Path::new(&dir).join("classes.parquet")).unwrap(),
    )
    .finish()
    .unwrap();
    let stab = classes.column("stability").unwrap().f64().unwrap();
    assert!(stab.into_no_null_iter().all(|x| (0.0..=1.0).contains(&x)));
    assert!(
        stab.into_no_null_iter().any(|x| x > 0.5),
        "some class survives a neighbouring setting"
    );
}

#[test]
fn layouts_on_one_knn_table_share_its_graph_and_solve_when_run_side_by_side() {
    // A grid's 2-D and 3-D layouts on the same kNN table are ready together: the first
    // lays out both in one SGD, on one fuzzy graph and one spectral solve, for either table.
    let t = Test::new();
    t.pipeline(&pipeline());
    let out = t
        .run(&["sweep", "p.toml", NN, D, "--grid=tree.min_samples=10"])
        .ok()
        .stderr();
    let shared = out
        .lines()
        .filter(|l| l.contains("in one SGD (the same graph, sampling and spectral eigenvectors)"))
        .count();
    assert_eq!(shared, 2, "{out}");
    // The same keys as computing every layout alone, one node at a time.
    let serial = Test::new();
    serial.pipeline(&pipeline());
    let a = t
        .run(&[
            "sweep",
            "p.toml",
            NN,
            D,
            "--grid=tree.min_samples=10",
            "--json",
        ])
        .ok();
    let b = serial
        .run(&[
            "sweep",
            "p.toml",
            NN,
            D,
            "--grid=tree.min_samples=10",
            "--json",
            "--parallel",
            "1",
        ])
        .ok();
    assert_eq!(keys_of(&a, "umap"), keys_of(&b, "umap"));
    let hashes = |t: &Test, keys: &BTreeSet<String>| -> Vec<String> {
        let all = Test::content_hashes(&t.cache());
        keys.iter().map(|k| all[k].clone()).collect()
    };
    assert_eq!(
        hashes(&t, &keys_of(&a, "umap")),
        hashes(&serial, &keys_of(&b, "umap"))
    );
}

#[test]
fn trees_of_one_layout_share_one_core_distance_search_and_get_their_own_bits() {
    // The trees of a min_samples axis on one layout: the first to run finds every one's core
    // distances in one search at the largest min_samples; the others take theirs.
    let t = Test::new();
    t.pipeline(&pipeline());
    let r = t
        .run(&[
            "sweep",
            "p.toml",
            "--grid=tree.min_samples=10,40,20",
            "--json",
        ])
        .ok();
    let out = r.stderr();
    assert_eq!(out.matches("one core-distance search for min_samples 10, 20, 40 (this node's and 2 joined tree(s)')").count(), 1, "{out}");
    assert_eq!(
        out.matches("core distances from `tree`'s run (one search for min_samples 10, 20, 40)")
            .count(),
        2,
        "{out}"
    );
    let joint = Test::content_hashes(&t.cache());
    // Each tree computed alone, in a process and cache of its own, has the same key and bits.
    let keys = keys_of(&r, "tree");
    assert_eq!(keys.len(), 3);
    for ms in [10, 20, 40] {
        let alone = Test::new();
        alone.pipeline(&pipeline());
        let set = format!("tree.min_samples={ms}");
        let run = alone.run_json(&["--set", &set]).ok();
        assert!(
            !run.stderr().contains("core-distance search")
                && !run.stderr().contains("core distances from"),
            "{}",
            run.stderr()
        );
        let k = run.keys()["tree"].clone();
        assert!(
            keys.contains(&k),
            "min_samples {ms}: key {k} not among the sweep's {keys:?}"
        );
        assert_eq!(
            Test::content_hashes(&alone.cache())[&k],
            joint[&k],
            "min_samples {ms}: joint and alone differ"
        );
    }
}

#[test]
fn sweep_table_in_the_file_and_bad_grids() {
    let t = Test::new();
    t.pipeline(&(pipeline() + "[sweep]\n\"tree.min_samples\" = [10, 20]\n"));
    let r = t.run(&["sweep", "p.toml", "--json"]).ok();
    assert_eq!(r.json()["points"].as_array().unwrap().len(), 2);

    let bad = t.run(&["sweep", "p.toml", "--grid", "tree.min_samples"]);
    assert_eq!(bad.code(), 2);
    assert!(
        bad.stderr().contains("--grid tree.min_samples")
            && bad.stderr().contains("NODE.PARAM=V1,V2"),
        "{}",
        bad.stderr()
    );
    let bad = t.run(&["sweep", "p.toml", "--grid", "trees.min_samples=1,2"]);
    assert!(
        bad.stderr().contains("no node named `trees`"),
        "{}",
        bad.stderr()
    );
    let bad = t.run(&["sweep", "p.toml", "--grid", "tree.min_samples=10,0"]);
    assert_eq!(bad.code(), 2);
    assert!(bad.stderr().contains("min_samples"), "{}", bad.stderr());
    t.pipeline(&pipeline());
    let none = t.run(&["sweep", "p.toml"]);
    assert_eq!(none.code(), 2);
    assert!(
        none.stderr().contains("no grid to sweep"),
        "{}",
        none.stderr()
    );
}

#[test]
fn sweep_summaries_are_published_whole_and_collected_by_gc() {
    let t = Test::new();
    t.pipeline(&format!(
        "[pipeline]\nname = \"g\"\n{}{}",
        featured(2000, 8),
        crate::support::pca_leaves(5)
    ));
    let r = t
        .run(&[
            "sweep",
            "p.toml",
            "--grid",
            "tree.min_samples=5,8",
            "--json",
        ])
        .ok();
    let dir = std::path::PathBuf::from(r.json()["summary_dir"].as_str().unwrap());
    let names: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "classes.parquet".into(),
            "index.html".into(),
            "keys.json".into(),
            "summary.parquet".into()
        ])
    );
    // Published again over itself: the same folder, nothing left in tmp.
    t.run(&["sweep", "p.toml", "--grid", "tree.min_samples=5,8"])
        .ok();
    assert!(dir.join("index.html").exists());
    let tmp: Vec<_> = std::fs::read_dir(t.cache().join("v1/tmp"))
        .unwrap()
        .collect();
    assert!(tmp.is_empty(), "{tmp:?}");
    // gc collects summaries older than its age.
    let gc = t.run(&["gc", "--older-than", "0s", "--force"]).ok();
    assert!(
        gc.stderr()
            .contains("1 sweep summaries or SLURM run folders"),
        "{}",
        gc.stderr()
    );
    assert!(!dir.exists());
}

#[test]
fn a_one_value_grid_has_no_stability_rather_than_zero() {
    let t = Test::new();
    t.pipeline(&format!(
        "[pipeline]\nname = \"one\"\n{}{}",
        featured(2000, 8),
        crate::support::pca_leaves(5)
    ));
    let r = t
        .run(&["sweep", "p.toml", "--grid", "tree.min_samples=5", "--json"])
        .ok();
    let p = &r.json()["points"][0]["summary"];
    assert!(p["classes"].as_u64().unwrap() > 0, "{p}");
    assert!(
        p["median_stability"].is_null(),
        "not defined without a neighbouring point: {p}"
    );
    assert!(
        r.stderr()
            .lines()
            .any(|l| l.trim_end().ends_with("n/a") || l.contains(" n/a ")),
        "{}",
        r.stderr()
    );
}

/// Every pipeline the project ships validates (one reads data that is not shipped and says
/// which file), and the densMAP experiment's sweep has its two arms.
#[test]
fn every_shipped_pipeline_validates() {
    let t = Test::new();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
    let mut seen = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        seen += 1;
        let p = path.to_str().unwrap();
        let r = t.run(&["plan", p]);
        if r.code() != 0 {
            assert!(
                r.stderr().contains("not found") && r.stderr().contains("data/"),
                "{p}:\n{}",
                r.stderr()
            );
        }
    }
    assert!(seen >= 7, "{seen} pipelines");
    let p = dir.join("densmap.toml");
    let r = t.run(&["sweep", p.to_str().unwrap(), "--dry-run"]).ok();
    let out = r.stdout() + &r.stderr();
    assert!(
        out.contains("2 grid points over umap.densmap (false, true)"),
        "{out}"
    );
}

/// Set the modification time of a file or folder to two hours ago (as if last used then).
fn age(p: &std::path::Path) {
    let then = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 3600);
    std::fs::File::open(p).unwrap().set_modified(then).unwrap();
}

/// [`age`] every cache entry and use lock.
fn age_entries(cache: &std::path::Path) {
    for shard in std::fs::read_dir(cache.join("v1/objects")).unwrap() {
        for e in std::fs::read_dir(shard.unwrap().path()).unwrap() {
            age(&e.unwrap().path());
        }
    }
    for e in std::fs::read_dir(cache.join("v1/locks")).unwrap() {
        age(&e.unwrap().path());
    }
}

/// gc never removes what a kept sweep summary was made from; once the summary itself is
/// old enough to go, its entries go with it.
#[test]
fn gc_keeps_the_entries_a_kept_sweep_summary_names() {
    let t = Test::new();
    t.pipeline(&format!(
        "[pipeline]\nname = \"g\"\n{}{}",
        featured(2000, 8),
        crate::support::pca_leaves(5)
    ));
    let r = t
        .run(&[
            "sweep",
            "p.toml",
            "--grid",
            "tree.min_samples=5,8",
            "--json",
        ])
        .ok();
    let dir = std::path::PathBuf::from(r.json()["summary_dir"].as_str().unwrap());
    let named: BTreeSet<String> =
        serde_json::from_slice(&std::fs::read(dir.join("keys.json")).unwrap()).unwrap();
    let other = t.run_json(&["--set", "tree.min_samples=7"]).ok().keys();
    let alone: BTreeSet<String> = other
        .values()
        .filter(|k| !named.contains(*k))
        .cloned()
        .collect();
    assert_eq!(
        alone.len(),
        2,
        "the tree and classes at min_samples 7 are in no sweep"
    );
    age_entries(&t.cache());
    let gc = t.run(&["gc", "--older-than", "1h"]).ok().stderr();
    let left: BTreeSet<String> = Test::content_hashes(&t.cache()).into_keys().collect();
    assert_eq!(left, named, "{gc}");
    assert!(
        gc.contains(&format!(
            "{} that kept sweep summaries or label logs name",
            named.len()
        )),
        "{gc}"
    );
    // The summary aged too: gc takes it and, with it, its entries.
    age(&dir);
    t.run(&["gc", "--older-than", "1h"]).ok();
    assert!(!dir.exists());
    assert!(Test::content_hashes(&t.cache()).is_empty());
}
