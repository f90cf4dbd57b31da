//! UMAP end to end: the kNN graph is its own cached node, layouts are bit-identical at any
//! thread count, and the layout preserves neighbourhoods.

use polars::prelude::*;

use crate::support::{featured, Test};

fn pipe(n: u64) -> String {
    featured(n, 32) + &layout("umap", 2, "")
}

/// A UMAP node on `featured` (15 neighbours, 100 epochs), `extra` lines added.
fn layout(name: &str, n_components: u32, extra: &str) -> String {
    format!("\n[nodes.{name}]\nop = \"reduce\"\nmethod = \"umap\"\ninput = \"featured\"\nn_neighbors = 15\nn_components = {n_components}\nn_epochs = 100\n{extra}")
}

#[test]
fn the_knn_graph_is_cached_on_its_own() {
    let t = Test::new();
    t.pipeline(&pipe(4000));
    assert_eq!(
        t.run_json(&[]).ok().computed(),
        ["catalog", "featured", "umap.knn", "umap"]
    );
    for set in [
        "umap.n_components=3",
        "umap.min_dist=0.3",
        "umap.n_epochs=50",
        "umap.init=\"random\"",
        "umap.seed=7",
    ] {
        assert_eq!(
            t.run_json(&["--set", set]).ok().computed(),
            ["umap"],
            "{set}"
        );
    }
    assert_eq!(
        t.run_json(&["--set", "umap.n_neighbors=10"])
            .ok()
            .computed(),
        ["umap.knn", "umap"]
    );
    let plan = t
        .run(&["plan", "p.toml", "--set", "umap.n_components=4"])
        .ok()
        .stdout();
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
    assert_eq!(
        Test::content_hashes(&a.cache()),
        Test::content_hashes(&b.cache())
    );
}

#[test]
fn the_layout_preserves_neighbourhoods() {
    let t = Test::new();
    t.pipeline(&pipe(4000));
    t.run(&["export", "p.toml", "umap", "--out", "u.parquet"])
        .ok();
    t.run(&["export", "p.toml", "featured", "--out", "f.parquet"])
        .ok();
    let read = |p: &str| {
        ParquetReader::new(std::fs::File::open(t.path(p)).unwrap())
            .finish()
            .unwrap()
    };
    let (u, f) = (read("u.parquet"), read("f.parquet"));
    let n = u.height().min(1500);
    let cols = |df: &DataFrame, prefix: &str, d: usize| -> Vec<f32> {
        let c: Vec<Vec<f32>> = (0..d)
            .map(|j| {
                df.column(&format!("{prefix}{j}"))
                    .unwrap()
                    .f32()
                    .unwrap()
                    .into_no_null_iter()
                    .collect()
            })
            .collect();
        (0..n)
            .flat_map(|i| c.iter().map(move |col| col[i]))
            .collect()
    };
    let (high, low) = (cols(&f, "feat_", 32), cols(&u, "umap_", 2));
    let tw = dagrun::numeric::umap::trustworthiness(&high, 32, &low, 2, 10);
    // On this input umap-learn 0.5.12 (same n_neighbors and epochs) scores 0.849–0.860 over
    // five runs, median 0.854 (sklearn's trustworthiness, first 1500 rows, k = 10); dagrun
    // 0.850. Within 0.01 of umap-learn's median.
    assert!(tw > 0.844, "trustworthiness {tw}");
}

#[test]
fn the_layout_has_umap_learns_density_structure() {
    // HDBSCAN's leaves are the layout's density structure: the paper's classes. On this
    // input (20,000 featured galaxies, 32-d, n_neighbors 30, 5-D; leaves with min_samples
    // 50) umap-learn 0.5.12's layouts put 5.34%, 5.88% and 5.94% of the galaxies in leaf
    // classes (three runs; 27–29 classes). dagrun must stay within ±25% of its median.
    let t = Test::new();
    t.pipeline(
        &(featured(40_000, 32)
            + r#"
[nodes.umap]
op = "reduce"
method = "umap"
input = "featured"
n_neighbors = 30
n_components = 5
[nodes.tree]
op = "cluster"
input = "umap"
columns = "umap_*"
min_samples = 50
min_cluster_size = 10
[nodes.classes]
op = "select-leaves"
input = "tree"
"#),
    );
    t.run(&["export", "p.toml", "classes", "--out", "c.parquet"])
        .ok();
    let c = ParquetReader::new(std::fs::File::open(t.path("c.parquet")).unwrap())
        .finish()
        .unwrap();
    let labels: Vec<i64> = c
        .column("label")
        .unwrap()
        .cast(&DataType::Int64)
        .unwrap()
        .i64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    assert_eq!(labels.len(), 20_000);
    let share = labels.iter().filter(|&&l| l >= 0).count() as f64 / labels.len() as f64;
    assert!(
        (0.75 * 0.0588..=1.25 * 0.0588).contains(&share),
        "{:.2}% of galaxies in leaf classes",
        100.0 * share
    );
}

#[test]
fn many_separate_groups_are_laid_out_apart() {
    // 12 tight groups of 40 galaxies, far apart in 4-d: the kNN graph has 12 components,
    // more than 2 × n_components, so the spectral init places them by their centroids.
    let mut csv = String::from("id,f0,f1,f2,f3\n");
    let mut state = 7u64;
    let mut noise = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 40) as f64 / (1u64 << 24) as f64 - 0.5
    };
    for i in 0..480 {
        let g = i / 40;
        let centre = [
            (g % 3) as f64 * 100.0,
            (g / 3) as f64 * 100.0,
            (g % 2) as f64 * 50.0,
            0.0,
        ];
        let row: Vec<String> = centre
            .iter()
            .map(|c| format!("{:.4}", c + noise()))
            .collect();
        csv += &format!("{i},{}\n", row.join(","));
    }
    let t = Test::new();
    t.write("groups.csv", &csv);
    t.pipeline(
        "[nodes.g]\nop = \"read\"\npath = \"groups.csv\"\n[nodes.umap]\nop = \"reduce\"\nmethod = \"umap\"\ninput = \"g\"\ncolumns = \"f*\"\nn_neighbors = 10\nn_components = 2\n",
    );
    let out = t.run(&["run", "p.toml"]).ok().stderr();
    assert!(out.contains("spectral init: 12 component(s)"), "{out}");
    t.run(&["export", "p.toml", "umap", "--out", "u.parquet"])
        .ok();
    let u = ParquetReader::new(std::fs::File::open(t.path("u.parquet")).unwrap())
        .finish()
        .unwrap();
    let col = |c: &str| -> Vec<f32> {
        u.column(c)
            .unwrap()
            .f32()
            .unwrap()
            .into_no_null_iter()
            .collect()
    };
    let (x, y) = (col("umap_0"), col("umap_1"));
    assert!(x.iter().chain(&y).all(|v| v.is_finite()));
    // Each group's members sit nearer their own group's centre than any other group's.
    let centre = |g: usize| -> (f32, f32) {
        (
            (g * 40..g * 40 + 40).map(|i| x[i]).sum::<f32>() / 40.0,
            (g * 40..g * 40 + 40).map(|i| y[i]).sum::<f32>() / 40.0,
        )
    };
    let centres: Vec<(f32, f32)> = (0..12).map(centre).collect();
    for i in 0..480 {
        let d = |c: (f32, f32)| (x[i] - c.0).powi(2) + (y[i] - c.1).powi(2);
        let own = d(centres[i / 40]);
        assert!(
            centres
                .iter()
                .enumerate()
                .all(|(g, &c)| g == i / 40 || d(c) > own),
            "galaxy {i} is closer to another group"
        );
    }
}

#[test]
fn layouts_of_other_widths_keep_their_own_solves_beside_the_graph() {
    // A 6-D layout needs a wider solve than a 2-D one; a 3-D layout after both still finds
    // the 2-D layout's solve (layouts of up to 5 dimensions share one).
    let t = Test::new();
    t.pipeline(
        &(featured(3000, 16)
            + &layout("a", 2, "prefix = \"a_\"\n")
            + &layout("b", 6, "prefix = \"b_\"\n")
            + &layout("c", 3, "prefix = \"c_\"\n")),
    );
    let out = t.run(&["run", "p.toml"]).ok().stderr();
    // (node, what it reused), from each node's summary lines under its `computed` line.
    let mut node = "";
    let mut shared = Vec::new();
    for l in out.lines() {
        if let Some(rest) = l.trim_start().strip_prefix("computed") {
            node = rest.split_whitespace().next().unwrap_or("");
        } else if let Some(at) = l.find(" as built for an earlier node") {
            shared.push((node, l[..at].trim()));
        } else if let Some(rest) = l
            .trim_start()
            .strip_prefix("laid out beside `a` in one SGD (the same ")
        {
            shared.push((node, rest.split(')').next().unwrap_or("")));
        }
    }
    // `a` lays out all three in one SGD; `b` needs a wider solve of its own.
    assert_eq!(
        shared,
        [
            ("b", "graph and sampling"),
            ("c", "graph, sampling and spectral eigenvectors")
        ],
        "{out}"
    );
}

#[test]
fn two_nodes_with_one_layout_between_them_lay_it_out_once() {
    // `b` differs from `a` only in its columns' names (a sweep's 2-D point beside the
    // paper's 2-D display): the SGD lays the layout out once and `b` gets a copy, the
    // numbers it gets alone; `c` (3-D) is laid out beside them as usual.
    let nodes = layout("a", 2, "")
        + &layout("b", 2, "prefix = \"b_\"\n")
        + &layout("c", 3, "prefix = \"c_\"\n");
    let t = Test::new();
    t.pipeline(&(featured(3000, 16) + &nodes));
    let out = t.run(&["run", "p.toml"]).ok().stderr();
    assert!(
        out.contains(
            "one SGD for this layout and `b`'s (2 columns, a copy of `a`'s), `c`'s (3 columns):"
        ),
        "{out}"
    );
    assert_eq!(out.matches("the layout of `a`, copied").count(), 1, "{out}");
    let table = |t: &Test, node: &str| {
        t.run(&[
            "export",
            "p.toml",
            node,
            "--out",
            &format!("{node}.parquet"),
        ])
        .ok();
        ParquetReader::new(std::fs::File::open(t.path(&format!("{node}.parquet"))).unwrap())
            .finish()
            .unwrap()
    };
    let bits = |df: &DataFrame, c: &str| -> Vec<u32> {
        df.column(c)
            .unwrap()
            .f32()
            .unwrap()
            .into_no_null_iter()
            .map(f32::to_bits)
            .collect()
    };
    let (a, b) = (table(&t, "a"), table(&t, "b"));
    for j in 0..2 {
        assert_eq!(
            bits(&a, &format!("umap_{j}")),
            bits(&b, &format!("b_{j}")),
            "column {j}"
        );
    }
    // `b` alone, in a process and cache of its own: the same bits.
    let alone = Test::new();
    alone.pipeline(&(featured(3000, 16) + &layout("b", 2, "prefix = \"b_\"\n")));
    let out = alone.run(&["run", "p.toml"]).ok().stderr();
    assert!(!out.contains("one SGD") && !out.contains("copied"), "{out}");
    let b_alone = table(&alone, "b");
    for j in 0..2 {
        assert_eq!(
            bits(&b, &format!("b_{j}")),
            bits(&b_alone, &format!("b_{j}")),
            "column {j}"
        );
    }
}

#[test]
fn a_display_layout_shares_the_search_layouts_graph_and_solve_bit_for_bit() {
    // A 2-D layout beside a 5-D one on the same kNN table (the paper pipeline's display):
    // in one run the second reuses the first's fuzzy graph and spectral solve; computed
    // alone, in a process and cache of its own, it has the same bits.
    let display = layout("display", 2, "prefix = \"display_\"\n");
    // Both layouts go through one SGD, run by the first node.
    let both = Test::new();
    let pair = featured(12_000, 32) + &layout("umap", 5, "") + &display;
    both.pipeline(&pair);
    let out = both.run(&["run", "p.toml"]).ok().stderr();
    assert!(!out.contains("as built for an earlier node"), "{out}");
    assert!(
        out.contains("one SGD for this layout and `display`'s (2 columns)"),
        "{out}"
    );
    assert_eq!(out.matches("laid out beside `umap` in one SGD (the same graph, sampling and spectral eigenvectors)").count(), 1, "{out}");
    let alone = Test::new();
    alone.pipeline(&(featured(12_000, 32) + &display));
    let out = alone.run(&["run", "p.toml"]).ok().stderr();
    assert!(
        !out.contains("as built for an earlier node") && !out.contains("one SGD"),
        "{out}"
    );
    let key = |t: &Test| t.run_json(&[]).ok().keys()["display"].clone();
    let (k1, k2) = (key(&both), key(&alone));
    assert_eq!(k1, k2);
    assert_eq!(
        Test::content_hashes(&both.cache())[&k1],
        Test::content_hashes(&alone.cache())[&k2]
    );
    // Beside a layout already in the cache, the other runs alone (nothing is laid out twice).
    alone.pipeline(&pair);
    let out = alone.run(&["run", "p.toml"]).ok().stderr();
    assert!(
        out.contains("cached  display") && !out.contains("one SGD"),
        "{out}"
    );
    let k = both.run_json(&[]).ok().keys()["umap"].clone();
    assert_eq!(
        Test::content_hashes(&both.cache())[&k],
        Test::content_hashes(&alone.cache())[&k],
        "the search layout, computed with the display and alone"
    );
}

/// densMAP (`densmap = true`): umap-learn's parameters and checks, a layout that keeps
/// more of the input's local radii than the plain one, the same bits at 1 and 2 threads,
/// and plain layouts untouched: `densmap = false` is the plain key, and asking for the
/// radii of a plain layout adds two columns without moving a point.
#[test]
fn densmap_follows_the_input_radii_and_leaves_plain_layouts_alone() {
    let t = Test::new();
    t.pipeline(&pipe(4000));
    let plain = t.run_json(&[]).ok().keys()["umap"].clone();
    assert_eq!(
        t.run_json(&["--set", "umap.densmap=false"]).ok().computed(),
        Vec::<String>::new(),
        "densmap = false is the plain layout's key"
    );
    let store = || dagrun::cache::Store::open(&t.cache()).unwrap();
    let table = |key: &str| store().read(key, "umap").unwrap();
    let correlation = |key: &str| {
        store().manifest(key).unwrap().details["radius_correlation"]
            .as_f64()
            .unwrap()
    };

    // Radii of the plain layout: the same layout columns, two more.
    let r = t.run_json(&["--set", "umap.radii=true"]).ok();
    assert_eq!(r.computed(), ["umap"], "the kNN table is reused");
    let with_radii = r.keys()["umap"].clone();
    let (p, q) = (table(&plain), table(&with_radii));
    for c in ["umap_0", "umap_1"] {
        assert!(
            p.column(c).unwrap().equals(q.column(c).unwrap()),
            "{c} moved when radii were asked for"
        );
    }
    for c in ["rad_orig", "rad_emb"] {
        let v: Vec<f32> = q
            .column(c)
            .unwrap()
            .f32()
            .unwrap()
            .into_no_null_iter()
            .collect();
        assert!(
            v.iter().all(|x| x.is_finite()) && v.iter().any(|&x| x != v[0]),
            "{c}: finite and varying"
        );
    }
    let plain_r = correlation(&with_radii);

    // densMAP: only the layout reruns; its radii follow the input's more closely.
    let r = t.run_json(&["--set", "umap.densmap=true"]).ok();
    assert_eq!(r.computed(), ["umap"]);
    let dens = r.keys()["umap"].clone();
    let dens_r = correlation(&dens);
    assert!(
        dens_r > plain_r + 0.2,
        "radius correlation: plain {plain_r:.3}, densMAP {dens_r:.3}"
    );
    let shown = t
        .run(&["show", "p.toml", "umap", "--set", "umap.densmap=true"])
        .ok()
        .stdout();
    assert!(
        shown.contains("densMAP: dens_lambda 2, dens_frac 0.3, dens_var_shift 0.1")
            && shown.contains("local radii"),
        "{shown}"
    );

    // The same bits at one and two threads.
    let other = Test::new();
    other.pipeline(&pipe(4000));
    other
        .run_json(&["-j", "1", "--set", "umap.densmap=true"])
        .ok();
    assert_eq!(
        Test::content_hashes(&other.cache())[&dens],
        Test::content_hashes(&t.cache())[&dens]
    );

    // umap-learn's checks, each naming the parameter.
    for (set, names) in [
        (&["--set", "umap.dens_lambda=3"][..], "dens_lambda"),
        (
            &["--set", "umap.densmap=true", "--set", "umap.dens_frac=1.5"][..],
            "dens_frac",
        ),
        (
            &["--set", "umap.densmap=true", "--set", "umap.dens_lambda=-1"][..],
            "dens_lambda",
        ),
        (
            &[
                "--set",
                "umap.densmap=true",
                "--set",
                "umap.dens_var_shift=-0.1",
            ][..],
            "dens_var_shift",
        ),
        (&["--set", "umap.densmap=1"][..], "densmap"),
    ] {
        let r = t.run_json(set);
        assert_eq!(r.code(), 2, "{set:?} is refused:\n{}", r.stderr());
        assert!(
            r.stderr().contains(names) && r.stderr().contains("umap"),
            "{set:?}: {}",
            r.stderr()
        );
    }
}

/// `densmap` is a sweep axis like any parameter; the kNN table is shared by both points.
#[test]
fn densmap_is_a_sweep_axis() {
    let t = Test::new();
    t.pipeline(
        &(pipe(3000) + "[nodes.tree]\nop = \"cluster\"\ninput = \"umap\"\ncolumns = \"umap_*\"\nmin_samples = 10\n[nodes.classes]\nop = \"select-leaves\"\ninput = \"tree\"\n"),
    );
    let out = t
        .run(&[
            "sweep",
            "p.toml",
            "--grid",
            "umap.densmap=false,true",
            "--json",
        ])
        .ok()
        .json();
    let points = out["points"].as_array().expect("points");
    let axis: Vec<&serde_json::Value> = points
        .iter()
        .map(|p| &p["params"]["umap.densmap"])
        .collect();
    assert_eq!(axis, [&serde_json::json!(false), &serde_json::json!(true)]);
    let node = |p: &serde_json::Value, name: &str| {
        p["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == name)
            .cloned()
            .expect("node")
    };
    assert_eq!(
        node(&points[0], "umap.knn")["key"],
        node(&points[1], "umap.knn")["key"],
        "one kNN table for both"
    );
    assert_ne!(
        node(&points[0], "umap")["key"],
        node(&points[1], "umap")["key"]
    );
    let computed = points
        .iter()
        .filter(|p| node(p, "umap.knn")["status"] == "computed")
        .count();
    assert_eq!(computed, 1, "the kNN table is computed once");
    // Each point shows its layout's radius correlation (radii are on with densMAP only).
    let corr: Vec<&serde_json::Value> = points
        .iter()
        .map(|p| &p["summary"]["radius_correlation"])
        .collect();
    assert!(
        corr[0].is_null() && corr[1].as_f64().is_some_and(|r| r > 0.5),
        "{corr:?}"
    );
    let dir = std::path::PathBuf::from(out["summary_dir"].as_str().unwrap());
    let page = std::fs::read_to_string(dir.join("index.html")).unwrap();
    let shown = format!("{:.3}", corr[1].as_f64().unwrap());
    assert!(
        page.contains("radius corr.") && page.contains(&shown),
        "the page shows it"
    );
}
