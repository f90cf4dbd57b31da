//! Malformed pipelines and inputs: each gives one clear line naming the file position,
//! node, parameter or column, exits with 2, never panics, and leaves no entry for the
//! failing node (validation errors write nothing to the cache at all).

use crate::support::Test;

const SYN: &str = "[nodes.catalog]\nop = \"synthetic\"\nn = 200\ndim = 8\n";

struct Case {
    name: &'static str,
    pipeline: String,
    files: Vec<(&'static str, &'static str)>,
    args: Vec<&'static str>,
    /// Substrings the error line must contain.
    expect: Vec<&'static str>,
    /// Whether the error is found before anything runs.
    before_run: bool,
}

fn case(name: &'static str, pipeline: &str, expect: &[&'static str]) -> Case {
    Case {
        name,
        pipeline: pipeline.to_owned(),
        files: vec![],
        args: vec![],
        expect: expect.to_vec(),
        before_run: true,
    }
}

fn cases() -> Vec<Case> {
    let filter = |cond: &str| {
        format!("{SYN}[nodes.f]\nop = \"filter\"\ninput = \"catalog\"\ndrop_where = [\"{cond}\"]\n")
    };
    vec![
        case("bad TOML", "[nodes.a\nop = \"synthetic\"\n", &["p.toml:1:", "invalid pipeline file"]),
        case("unknown top-level table", "[nodez.a]\nop = \"synthetic\"\n", &["p.toml:1:", "unknown field `nodez`"]),
        case("no nodes", "[pipeline]\nname = \"x\"\n", &["p.toml", "no nodes"]),
        case("unknown op", "[nodes.a]\nop = \"smooth\"\n", &["p.toml:2:6", "node `a`", "parameter `op`", "unknown op `smooth`"]),
        case("embed without a model", &format!("{SYN}[nodes.t]\nop = \"embed\"\ninput = \"catalog\"\n"), &["node `t`", "parameter `model`", "missing"]),
        case(
            "embed without image paths",
            &format!("{SYN}[nodes.t]\nop = \"embed\"\ninput = \"catalog\"\nmodel = \"m.onnx\"\n"),
            &["node `t`", "parameter `image_column`", "no column `file_loc`"],
        ),
        case(
            "unknown method",
            &format!("{SYN}[nodes.u]\nop = \"reduce\"\nmethod = \"tsne\"\ninput = \"catalog\"\n"),
            &["node `u`", "parameter `method`", "`tsne` is not one of `pca`, `umap`"],
        ),
        case(
            "umap neighbours over rows",
            &format!("{SYN}[nodes.u]\nop = \"reduce\"\nmethod = \"umap\"\ninput = \"catalog\"\nn_neighbors = 1\n"),
            &["node `u`", "parameter `n_neighbors`", "between 2 and"],
        ),
        case("missing op", "[nodes.a]\nn = 3\n", &["p.toml:1:", "node `a`", "parameter `op`", "missing"]),
        case("unknown parameter", &format!("{SYN}nn = 5\n"), &["p.toml:5:1", "node `catalog`", "parameter `nn`", "unknown parameter", "it takes: "]),
        case("wrong type", "[nodes.a]\nop = \"synthetic\"\nn = \"many\"\n", &["p.toml:3:5", "parameter `n`", "expected an integer, found a string"]),
        case("out of range", "[nodes.a]\nop = \"synthetic\"\nn = -5\n", &["parameter `n`", "must be between"]),
        case(
            "input names no node",
            &format!("{SYN}[nodes.f]\nop = \"filter\"\ninput = \"catalgo\"\ndrop_where = [\"ra > 1\"]\n"),
            &["node `f`", "parameter `input`", "`catalgo` names no node"],
        ),
        case(
            "cycle",
            "[nodes.a]\nop = \"filter\"\ninput = \"b\"\ndrop_where = [\"ra > 1\"]\n[nodes.b]\nop = \"filter\"\ninput = \"a\"\ndrop_where = [\"ra > 1\"]\n",
            &["cycle", "a -> b -> a"],
        ),
        case("duplicate node", &format!("{SYN}{SYN}"), &["p.toml:5:", "invalid pipeline file", "duplicate key `catalog`"]),
        case("input and inputs", &format!("{SYN}[nodes.f]\nop = \"filter\"\ninput = \"catalog\"\ninputs = [\"catalog\"]\ndrop_where = [\"ra > 1\"]\n"), &["node `f`", "not both"]),
        case(
            "wrong number of inputs",
            &format!("{SYN}[nodes.f]\nop = \"filter\"\ninputs = [\"catalog\", \"catalog\"]\ndrop_where = [\"ra > 1\"]\n"),
            &["node `f`", "takes one `input`, found 2"],
        ),
        case("unknown column", &filter("smooth_fraction >= 0.5"), &["p.toml:8:", "node `f`", "parameter `drop_where`", "column `smooth_fraction` not found"]),
        case("unparsable condition", &filter("ra ~ 3"), &["node `f`", "parameter `drop_where`", "cannot parse `ra ~ 3`"]),
        case("type mismatch", &filter("planted_class >= 0.5"), &["column `planted_class` is str"]),
        case(
            "glob matches nothing",
            &format!("{SYN}[nodes.p]\nop = \"reduce\"\nmethod = \"pca\"\ninput = \"catalog\"\ncolumns = \"emb_*\"\nn_components = 2\n"),
            &["node `p`", "parameter `columns`", "no column matches `emb_*`"],
        ),
        case(
            "umap over no columns",
            &format!("{SYN}[nodes.u]\nop = \"reduce\"\nmethod = \"umap\"\ninput = \"catalog\"\ncolumns = []\n"),
            &["p.toml:9:11", "parameter `columns`", "selects no column"],
        ),
        case(
            "cluster over no columns",
            &format!("{SYN}[nodes.t]\nop = \"cluster\"\ninput = \"catalog\"\ncolumns = []\n"),
            &["node `t`", "parameter `columns`", "selects no column"],
        ),
        case(
            "too many components",
            &format!("{SYN}[nodes.p]\nop = \"reduce\"\nmethod = \"pca\"\ninput = \"catalog\"\nn_components = 9\n"),
            &["parameter `n_components`", "9 components asked of 8 input columns"],
        ),
        case("missing data file", "[nodes.r]\nop = \"read\"\npath = \"nowhere/cat.parquet\"\n", &["p.toml:3:8", "node `r`", "parameter `path`", "not found"]),
        case("unknown pipeline key", "[pipeline]\nnmae = \"x\"\n[nodes.a]\nop = \"synthetic\"\n", &["p.toml:2:1", "pipeline.nmae", "unknown key"]),
        Case { args: vec!["--set", "catalgo.n=5"], ..case("set names no node", SYN, &["--set catalgo.n=5", "no node named `catalgo`"]) },
        Case { args: vec!["--set", "catalog.m=5"], ..case("set names no parameter", SYN, &["--set catalog.m", "parameter `m`", "unknown parameter"]) },
        Case { args: vec!["--target", "nope"], ..case("unknown target", SYN, &["no node named `nope`"]) },
        Case { files: vec![("cat.csv", "name,x\na,1\n")], ..case("no id column", "[nodes.r]\nop = \"read\"\npath = \"cat.csv\"\n", &["node `r`", "has no id column `id`"]) },
        Case {
            files: vec![("cat.csv", "id,x\n1,2\n")],
            ..case(
                "join key missing",
                "[nodes.a]\nop = \"read\"\npath = \"cat.csv\"\n[nodes.b]\nop = \"read\"\npath = \"cat.csv\"\n[nodes.j]\nop = \"join\"\ninputs = [\"a\", \"b\"]\non = \"dr8_id\"\n",
                &["node `j`", "key column `dr8_id` not found in the left input"],
            )
        },
        Case { files: vec![("cat.csv", "id,x\n")], before_run: false, ..case("empty catalogue", "[nodes.r]\nop = \"read\"\npath = \"cat.csv\"\n", &["node `r`", "has no rows"]) },
        Case { before_run: false, ..case("filter removes every row", &filter("ra >= 0"), &["node `f`", "removed every row"]) },
        Case {
            files: vec![("cat.csv", "id,feat_0,feat_1\n1,0.5,1\n2,NaN,2\n3,inf,3\n4,1,1\n")],
            before_run: false,
            ..case(
                "NaN and inf features",
                "[nodes.r]\nop = \"read\"\npath = \"cat.csv\"\n[nodes.p]\nop = \"reduce\"\nmethod = \"pca\"\ninput = \"r\"\nn_components = 1\n",
                &["node `p`", "column `feat_0` has 2 unusable row(s): 2 NaN or infinite; the first is data row 2 (`NaN`)"],
            )
        },
        Case {
            files: vec![("cat.csv", "id,feat_0,feat_1\n1,1e38,2\n2,-1e38,3\n3,1e300,1\n4,0,0\n5,1,1\n6,2,2\n")],
            before_run: false,
            ..case(
                "features too large for f32 distances (they overflowed into a panic in the MST)",
                "[nodes.r]\nop = \"read\"\npath = \"cat.csv\"\n[nodes.t]\nop = \"cluster\"\ninput = \"r\"\ncolumns = \"feat_*\"\nmin_samples = 2\nmin_cluster_size = 2\n",
                &["node `t`", "column `feat_0` has 3 unusable row(s): 3 beyond ±1e15 (rescale the column); the first is data row 1 (`1e38`)"],
            )
        },
    ]
}

#[test]
fn malformed_pipelines_and_inputs_give_one_clear_line_and_exit_2() {
    let all = cases();
    assert!(all.len() >= 20);
    for c in all {
        let t = Test::new();
        t.pipeline(&c.pipeline);
        for (name, body) in &c.files {
            t.write(name, body);
        }
        let mut args = vec!["run", "p.toml"];
        args.extend(&c.args);
        let r = t.run(&args);
        let err = r.stderr();
        assert_eq!(
            r.code(),
            2,
            "{}: expected exit 2, got {}:\n{err}",
            c.name,
            r.code()
        );
        assert!(!err.contains("panicked"), "{}: panic:\n{err}", c.name);
        // Progress lines of nodes that ran before the failure may precede the error.
        let lines: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
        assert_eq!(
            lines.len(),
            1,
            "{}: expected one error line:\n{err}",
            c.name
        );
        assert!(lines[0].starts_with("error: "), "{}: {err}", c.name);
        assert_eq!(
            err.lines().last(),
            Some(lines[0]),
            "{}: the error is the last line",
            c.name
        );
        if c.before_run {
            assert_eq!(
                err.lines().count(),
                1,
                "{}: only the error line:\n{err}",
                c.name
            );
        }
        for e in &c.expect {
            assert!(
                lines[0].contains(e),
                "{}: `{e}` not in:\n{}",
                c.name,
                lines[0]
            );
        }
        assert!(
            !lines[0].ends_with('.'),
            "{}: error ends with a period",
            c.name
        );
        let store_exists = t.cache().join("v1").exists();
        if c.before_run {
            assert!(
                !store_exists,
                "{}: a validation error wrote to the cache",
                c.name
            );
        } else if store_exists {
            let store = dagrun::cache::Store::open(&t.cache()).unwrap();
            let nodes: Vec<String> = store.manifests().values().map(|m| m.node.clone()).collect();
            let failing = if c.name == "empty catalogue" {
                "r"
            } else if c.name == "filter removes every row" {
                "f"
            } else {
                "p"
            };
            assert!(
                !nodes.iter().any(|n| n == failing),
                "{}: the failing node left an entry",
                c.name
            );
            let tmp: Vec<_> = std::fs::read_dir(t.cache().join("v1/tmp"))
                .unwrap()
                .collect();
            assert!(tmp.is_empty(), "{}: temporary files left behind", c.name);
        }
    }
}

#[test]
fn error_format_is_stable() {
    let t = Test::new();
    t.pipeline("[nodes.a]\nop = \"synthetic\"\nn = \"many\"\n");
    let r = t.run(&["p.toml"]);
    assert_eq!(
        r.stderr().trim_end(),
        "error: p.toml:3:5: node `a`: parameter `n`: expected an integer, found a string"
    );
}

#[test]
fn missing_pipeline_file_is_a_usage_error() {
    let t = Test::new();
    let r = t.run(&["run", "absent.toml"]);
    assert_eq!(r.code(), 2);
    assert_eq!(
        r.stderr().trim_end(),
        "error: pipeline file `absent.toml` not found"
    );
}

#[test]
fn global_options_go_before_or_after_the_command() {
    let t = Test::new();
    t.pipeline("[nodes.a]\nop = \"synthetic\"\nn = 100\ndim = 4\n");
    for args in [
        &["-q", "run", "p.toml"][..],
        &["run", "p.toml", "-q"],
        &["-q", "p.toml"],
        &["p.toml", "-j", "1"],
        &["-j", "1", "plan", "p.toml"],
    ] {
        let r = t.run(args);
        assert_eq!(r.code(), 0, "{args:?}: {}", r.stderr());
    }
    assert_eq!(
        t.run(&["-q", "run", "p.toml"]).stderr(),
        "",
        "-q prints nothing"
    );
}

#[test]
fn shipped_pipelines_validate() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
    let t = Test::new();
    for name in ["featured.toml", "artifacts.toml", "quickstart.toml"] {
        // `plan` validates everything and computes nothing.
        let r = t.run(&["plan", root.join(name).to_str().unwrap()]);
        assert_eq!(r.code(), 0, "{name}: {}", r.stderr());
        assert!(
            r.stdout().contains("report") || name == "quickstart.toml",
            "{name}: {}",
            r.stdout()
        );
    }
    // The real-data pipeline names the file to download when it is absent.
    let r = t.run(&["plan", root.join("gz-desi.toml").to_str().unwrap()]);
    if !root
        .join("../data/gz-desi/representations.parquet")
        .exists()
    {
        assert_eq!(r.code(), 2);
        assert!(
            r.stderr()
                .contains("node `representations`: parameter `path`: file")
                && r.stderr().contains("not found"),
            "{}",
            r.stderr()
        );
    } else {
        assert_eq!(
            r.code(),
            0,
            "with the data there, the pipeline validates: {}",
            r.stderr()
        );
        assert!(r.stdout().contains("representations"), "{}", r.stdout());
    }
    // The real-cutout pipeline needs the exported encoder and ONNX Runtime; without them it
    // says which is missing.
    let r = t.run(&["plan", root.join("decals-rings.toml").to_str().unwrap()]);
    let model = root.join("../../shared/data/models/efficientnet-lite0.onnx");
    let catalog = root.join("../../shared/data/decals-rings/catalog.csv");
    if !catalog.exists() {
        assert!(
            r.stderr().contains("node `catalog`") && r.stderr().contains("not found"),
            "{}",
            r.stderr()
        );
    } else if !model.exists() {
        assert!(
            r.stderr().contains("node `embed`: parameter `model`")
                && r.stderr().contains("not found"),
            "{}",
            r.stderr()
        );
    } else if dagrun::onnx::find_library().is_err() {
        assert!(
            r.stderr().contains("ONNX Runtime is not installed"),
            "{}",
            r.stderr()
        );
    } else {
        assert_eq!(r.code(), 0, "{}", r.stderr());
    }
}

#[test]
fn thread_counts_are_bounded() {
    let t = Test::new();
    t.pipeline(SYN);
    for j in ["100000", "0"] {
        let r = t.run(&["-j", j, "plan", "p.toml"]);
        assert_eq!(r.code(), 2, "-j {j}: {}", r.stderr());
        assert!(r.stderr().contains("1..=1024"), "-j {j}: {}", r.stderr());
    }
    t.run(&["-j", "1024", "plan", "p.toml"]).ok();
}

#[test]
fn slurm_resources_are_checked_before_anything_runs() {
    let t = Test::new();
    let base = "[pipeline]\nname = \"s\"\n[nodes.catalog]\nop = \"synthetic\"\nn = 100\n";
    for (extra, want) in [
        (
            "[slurm]\ncpu = 4\n",
            "p.toml:7:1: parameter `slurm.cpu`: unknown key (slurm takes: cpus, mem",
        ),
        (
            "[slurm]\nmem = \"lots\"\n",
            "p.toml:7:7: parameter `slurm.mem`: `lots`: expected a size such as `8G`",
        ),
        (
            "[slurm.umap]\ncpus = 2\n",
            "parameter `slurm.umap`: no node named `umap` (nodes: catalog)",
        ),
        (
            "[slurm.catalog]\ncpus = 0\n",
            "parameter `slurm.catalog.cpus`: expected a whole number of CPUs",
        ),
        (
            "[slurm.catalog]\narray_limit = 3\n",
            "parameter `slurm.catalog.array_limit`: unknown key",
        ),
    ] {
        t.pipeline(&format!("{base}{extra}"));
        let r = t.run(&["run", "p.toml"]);
        assert_eq!(r.code(), 2, "{extra}: {}", r.stderr());
        assert!(r.stderr().contains(want), "{extra}: {}", r.stderr());
        assert!(
            !t.cache().exists(),
            "nothing written before the file is valid"
        );
    }
    t.pipeline(base);
    let r = t.run(&["run", "p.toml", "--slurm", "catalog.time=soon"]);
    assert_eq!(r.code(), 2);
    assert!(r.stderr().contains("--slurm catalog.time=soon: parameter `slurm.catalog.time`: `soon`: expected a time limit"), "{}", r.stderr());
    let r = t.run(&["run", "p.toml", "--shard", "0/2", "--executor", "slurm"]);
    assert_eq!(r.code(), 2);
    assert!(
        r.stderr().contains("give one or the other"),
        "{}",
        r.stderr()
    );
}

/// `dagrun ARGS -q` exits 2 with one line of stderr that contains `want`.
#[track_caller]
fn refused_in_one_line(t: &Test, args: &[&str], want: &str) {
    let mut args = args.to_vec();
    args.push("-q");
    let r = t.run(&args);
    assert_eq!(r.code(), 2, "{args:?}: {}", r.stderr());
    assert!(r.stderr().contains(want), "{args:?}: {}", r.stderr());
    assert_eq!(
        r.stderr().trim().lines().count(),
        1,
        "one line: {}",
        r.stderr()
    );
}

#[test]
fn hostile_inputs_found_in_review_are_refused_clearly() {
    let t = Test::new();
    let check = |args: &[&str], want: &str| refused_in_one_line(&t, args, want);
    // Pipelines that are not text, or not files.
    std::fs::write(t.path("bin.toml"), b"\xff\xfe\x00binary").unwrap();
    check(
        &["run", "bin.toml"],
        "`bin.toml` is not a text file (not UTF-8)",
    );
    std::fs::create_dir_all(t.path("dir.toml")).unwrap();
    check(
        &["run", "dir.toml"],
        "`dir.toml` is a folder: give a pipeline file",
    );
    // The sample's own column as the id.
    t.pipeline("[pipeline]\nname = \"h\"\nid = \"ra\"\n[nodes.c]\nop = \"synthetic\"\nn = 100\n");
    check(
        &["run", "p.toml"],
        "the pipeline's id column `ra` is one of the built-in sample's own columns",
    );
    // An empty keep_where is blamed by name.
    t.pipeline("[pipeline]\nname = \"h\"\n[nodes.c]\nop = \"synthetic\"\nn = 100\n[nodes.f]\nop = \"filter\"\ninput = \"c\"\nkeep_where = []\n");
    check(&["run", "p.toml"], "parameter `keep_where`: is empty");
    // A folder as a table; a ragged CSV; repeated ids.
    std::fs::create_dir_all(t.path("sub")).unwrap();
    t.pipeline("[pipeline]\nname = \"h\"\n[nodes.c]\nop = \"read\"\npath = \"sub\"\n");
    check(&["run", "p.toml"], "is a folder, not a table file");
    t.write("r.csv", "id,a,b\n1,1,2\n2,3\n3,1,2\n");
    t.pipeline("[pipeline]\nname = \"h\"\n[nodes.c]\nop = \"read\"\npath = \"r.csv\"\n");
    check(
        &["run", "p.toml"],
        "line 3 has 2 fields where the header has 3",
    );
    t.write("r.csv", "id,a,b\n1,1,2\n2,3,4,5\n");
    check(
        &["run", "p.toml"],
        "line 3 has 4 fields where the header has 3",
    );
    // Past the rows validation reads, the run finds it.
    let mut long = String::from("id,a,b\n");
    for i in 0..10_003 {
        long.push_str(&if i == 10_001 {
            format!("{i},1\n")
        } else {
            format!("{i},1,2\n")
        });
    }
    t.write("r.csv", &long);
    check(
        &["run", "p.toml"],
        "line 10003 has 2 fields where the header has 3",
    );
    t.write("r.csv", "id,a\n1,1\n2,3\n1,5\n");
    check(
        &["run", "p.toml"],
        "id `1` appears more than once (data rows 1 and 3)",
    );
    t.pipeline("[pipeline]\nname = \"h\"\n[nodes.c]\nop = \"read\"\npath = \"r.csv\"\nduplicates = \"first\"\n");
    let r = t.run(&["run", "p.toml", "--json"]).ok();
    assert_eq!(r.json()["nodes"][0]["rows"], 2, "each id's first row kept");
    assert!(
        r.stderr().contains("1 rows with a repeated id dropped"),
        "{}",
        r.stderr()
    );
    t.pipeline("[pipeline]\nname = \"h\"\n[nodes.c]\nop = \"read\"\npath = \"r.csv\"\nduplicates = \"last\"\n");
    check(
        &["run", "p.toml"],
        "parameter `duplicates`: `last` is not one of `error`",
    );
    // `nan` and `inf` in a numeric CSV column are numbers (then refused as features).
    t.write("r.csv", "id,a,b\n1,nan,2\n2,-inf,3\n3,1.5,1\n");
    t.pipeline("[pipeline]\nname = \"h\"\n[nodes.c]\nop = \"read\"\npath = \"r.csv\"\n[nodes.p]\nop = \"reduce\"\nmethod = \"pca\"\ninput = \"c\"\ncolumns = [\"a\", \"b\"]\nn_components = 1\n");
    check(
        &["run", "p.toml"],
        "column `a` has 2 unusable row(s): 2 NaN or infinite; the first is data row 1 (`NaN`)",
    );
    // Range bounds read as numbers, not three hundred digits.
    t.pipeline("[pipeline]\nname = \"h\"\n[nodes.c]\nop = \"synthetic\"\nn = 100\n[nodes.u]\nop = \"reduce\"\nmethod = \"umap\"\ninput = \"c\"\nspread = 0.0\n");
    check(
        &["run", "p.toml"],
        "parameter `spread`: must be positive, found 0",
    );
    t.pipeline("[pipeline]\nname = \"h\"\n[nodes.c]\nop = \"synthetic\"\nn = 100\n[nodes.u]\nop = \"reduce\"\nmethod = \"umap\"\ninput = \"c\"\nmin_dist = -1\n");
    check(
        &["run", "p.toml"],
        "parameter `min_dist`: must be at least 0, found -1",
    );
    t.pipeline("[pipeline]\nname = \"h\"\n[nodes.c]\nop = \"synthetic\"\nn = 100\n[nodes.u]\nop = \"reduce\"\nmethod = \"umap\"\ninput = \"c\"\nnegative_sample_rate = 0\n");
    check(
        &["run", "p.toml"],
        "parameter `negative_sample_rate`: must be between 1 and 1000, found 0",
    );
    // A run-time input error names the file position of its node.
    t.pipeline("[pipeline]\nname = \"h\"\n[nodes.c]\nop = \"synthetic\"\nn = 120\n[nodes.u]\nop = \"reduce\"\nmethod = \"umap\"\ninput = \"c\"\nn_neighbors = 200\n");
    check(
        &["run", "p.toml"],
        "p.toml:6:8: node `u.knn`: 200 neighbours asked of 120 rows",
    );
    // Something in the cache's way is named.
    let blocked = t.path("blocked");
    std::fs::create_dir_all(blocked.join("v1")).unwrap();
    std::fs::write(blocked.join("v1/locks"), b"").unwrap();
    let r = t.run(&["run", "p.toml", "-q", "--cache", blocked.to_str().unwrap()]);
    assert_eq!(r.code(), 2);
    assert!(
        r.stderr()
            .contains("v1/locks` is a file where the cache needs a folder"),
        "{}",
        r.stderr()
    );
    // A header-only CSV says so (not "is str, not numeric").
    t.write("h.csv", "id,feat_0,feat_1\n");
    t.pipeline("[pipeline]\nname = \"h\"\n[nodes.c]\nop = \"read\"\npath = \"h.csv\"\n[nodes.p]\nop = \"reduce\"\nmethod = \"pca\"\ninput = \"c\"\nn_components = 1\n");
    check(&["run", "p.toml"], "it has no rows (only a header)");
    // 300 identical rows: no invented structure (it once gave 4 classes).
    let mut same = String::from("id,feat_0,feat_1,feat_2\n");
    for i in 0..300 {
        same.push_str(&format!("{i},0.25,0.5,0.75\n"));
    }
    t.write("same.csv", &same);
    t.pipeline("[pipeline]\nname = \"h\"\n[nodes.c]\nop = \"read\"\npath = \"same.csv\"\n[nodes.u]\nop = \"reduce\"\nmethod = \"umap\"\ninput = \"c\"\nn_components = 5\n[nodes.t]\nop = \"cluster\"\ninput = \"u\"\nmin_samples = 1\nmin_cluster_size = 10\n[nodes.s]\nop = \"select-leaves\"\ninput = \"t\"\n");
    check(&["run", "p.toml"], "node `u.knn`: 300 rows have 14 or more exact duplicates in the feature columns (the first: id `0`)");
    // The id column is not a feature.
    t.write("r.csv", "id,a,b\n1,1,2\n2,3,1\n3,1.5,1\n");
    t.pipeline("[pipeline]\nname = \"h\"\n[nodes.c]\nop = \"read\"\npath = \"r.csv\"\n[nodes.p]\nop = \"reduce\"\nmethod = \"pca\"\ninput = \"c\"\ncolumns = [\"id\", \"a\"]\nn_components = 1\n");
    check(
        &["run", "p.toml"],
        "column `id` is the id column, not a feature",
    );
    // Export writes what read takes.
    t.pipeline("[pipeline]\nname = \"h\"\n[nodes.c]\nop = \"read\"\npath = \"r.csv\"\n");
    t.run(&["export", "p.toml", "c", "--out", "c.arrow"]).ok();
    t.pipeline("[pipeline]\nname = \"h\"\n[nodes.c]\nop = \"read\"\npath = \"c.arrow\"\n");
    assert!(t.run(&["run", "p.toml", "-q"]).ok().stderr().is_empty());
    // A repeated grid value; a classes node that is not one, before anything runs.
    let _ = std::fs::remove_dir_all(t.cache());
    t.pipeline(&format!(
        "[pipeline]\nname = \"g\"\n{}{}",
        crate::support::featured(500, 8),
        crate::support::pca_leaves(5)
    ));
    check(
        &["sweep", "p.toml", "--grid", "tree.min_samples=5,5.0"],
        "parameter `tree.min_samples`: the value 5.0 is given twice",
    );
    check(
        &[
            "sweep",
            "p.toml",
            "--grid",
            "tree.min_samples=5,8",
            "--classes",
            "catalog",
        ],
        "node `catalog` (synthetic op) has no `label` column",
    );
    assert!(
        !t.cache().join("v1/objects").exists()
            || std::fs::read_dir(t.cache().join("v1/objects"))
                .unwrap()
                .next()
                .is_none(),
        "nothing ran"
    );
}

/// Random small pipelines over random small tables, hostile values included: whatever the
/// input, dagrun answers 0, 1 or 2, never a panic (101).
#[test]
fn random_pipelines_never_panic() {
    let rng = std::cell::RefCell::new(dagrun::numeric::rng::Rng::new(20261202, 0));
    let pick = |n: usize| (rng.borrow_mut().uniform() * n as f64) as usize % n;
    let values = [
        "0", "1", "2", "5", "-3", "1e38", "-1e38", "1e300", "nan", "inf", "", "x", "0.5",
    ];
    // Mostly valid values, some hostile ones.
    let params: &[(&str, &[&str])] = &[
        ("n_neighbors", &["2", "3", "5", "5", "15", "0", "100000"]),
        ("min_samples", &["1", "2", "3", "5", "5", "0", "1000"]),
        (
            "min_cluster_size",
            &["2", "3", "5", "10", "10", "1", "1000000"],
        ),
        (
            "columns",
            &[
                "\"feat_*\"",
                "\"feat_*\"",
                "\"feat_0\"",
                "[\"feat_0\", \"feat_1\"]",
                "[]",
                "\"id\"",
                "\"nope*\"",
                "3",
            ],
        ),
        ("n_epochs", &["1", "10", "10", "0"]),
        (
            "metric",
            &[
                "\"euclidean\"",
                "\"euclidean\"",
                "\"cosine\"",
                "\"manhattan\"",
            ],
        ),
        ("k", &["1", "5", "5", "0"]),
    ];
    let mut codes = std::collections::BTreeMap::new();
    for case in 0..300 {
        let t = Test::new();
        let rows = pick(40);
        let hostile = pick(5) == 0;
        let dup_row = if pick(8) == 0 {
            Some(pick(rows.max(1)))
        } else {
            None
        };
        let mut csv = String::from("id,feat_0,feat_1\n");
        for r in 0..rows {
            let id = if Some(r) == dup_row && r > 0 {
                ["0", ""][pick(2)].to_owned()
            } else {
                r.to_string()
            };
            let v = || {
                if hostile {
                    values[pick(values.len())].to_owned()
                } else {
                    format!("{:.3}", 10.0 * (pick(1000) as f64 / 1000.0))
                }
            };
            csv.push_str(&format!("{id},{},{}\n", v(), v()));
        }
        t.write("t.csv", &csv);
        let mut p =
            String::from("[pipeline]\nname = \"r\"\n[nodes.c]\nop = \"read\"\npath = \"t.csv\"\n");
        // The paper's chain, each step's parameters drawn from valid and hostile values.
        let draw = |names: &[&str]| -> String {
            let mut out = String::new();
            for &name in names {
                if pick(2) == 0 {
                    let vs = params
                        .iter()
                        .find(|(n, _)| *n == name)
                        .expect("a parameter")
                        .1;
                    out.push_str(&format!("{name} = {}\n", vs[pick(vs.len())]));
                }
            }
            out
        };
        let mut prev = "c";
        if pick(3) == 0 {
            p.push_str(&format!(
                "[nodes.f]\nop = \"filter\"\ninput = \"c\"\nkeep_where = [\"feat_0 >= {}\"]\n",
                values[pick(4)]
            ));
            prev = "f";
        }
        if pick(4) == 0 {
            let fraction = ["0.5", "0.9", "1", "0", "-1", "1.5", "0.001", "\"half\""][pick(8)];
            p.push_str(&format!("[nodes.m]\nop = \"sample\"\ninput = \"{prev}\"\nfraction = {fraction}\nseed = {}\n", pick(3)));
            prev = "m";
        }
        let umap = pick(2) == 0;
        let (method, prefix) = if umap {
            ("umap", "umap_*")
        } else {
            ("pca", "pca_*")
        };
        let reduce_params: &[&str] = if umap {
            &["n_neighbors", "n_epochs", "metric", "columns"]
        } else {
            &["columns"]
        };
        let n_components = ["1", "2", "2", "2", "3", "0", "50"][pick(7)];
        p.push_str(&format!("[nodes.r]\nop = \"reduce\"\nmethod = \"{method}\"\ninput = \"{prev}\"\nn_components = {n_components}\n{}", draw(reduce_params)));
        p.push_str(&format!(
            "[nodes.t]\nop = \"cluster\"\ninput = \"r\"\ncolumns = \"{prefix}\"\n{}",
            draw(&["min_samples", "min_cluster_size"])
        ));
        p.push_str(&format!(
            "[nodes.s]\nop = \"{}\"\ninput = \"t\"\n",
            ["select-leaves", "select-eom"][pick(2)]
        ));
        if pick(2) == 0 {
            let not = if pick(3) == 0 {
                format!("not = [\"{}\"]\n", pick(rows.max(1)))
            } else {
                String::new()
            };
            p.push_str(&format!(
                "[nodes.q]\nop = \"similar\"\ninput = \"{prev}\"\nids = [\"{}\"]\n{not}{}",
                pick(rows.max(1)),
                draw(&["k", "columns"])
            ));
        }
        if pick(3) == 0 {
            // New galaxies into the fit: the same rows, or the catalogue (PCA chains are refused).
            p.push_str(&format!(
                "[nodes.a]\nop = \"assign\"\ninputs = [\"{}\", \"s\"]\nn_epochs = {}\n",
                ["c", prev][pick(2)],
                ["1", "5", "0"][pick(3)]
            ));
        }
        t.pipeline(&p);
        let args: Vec<&str> = if pick(10) == 0 {
            vec![
                "sweep",
                "p.toml",
                "-q",
                "--grid",
                [
                    "t.min_samples=2,3",
                    "t.min_samples=0,2",
                    "r.n_components=1,2",
                ][pick(3)],
            ]
        } else {
            vec!["run", "p.toml", "-q"]
        };
        let r = t.run(&args);
        assert!(
            matches!(r.code(), 0..=2) && !r.stderr().contains("panicked"),
            "case {case}: exit {}\n{p}\n{csv}\n{}",
            r.code(),
            r.stderr()
        );
        *codes.entry(r.code()).or_insert(0) += 1;
        if std::env::var_os("SHOW").is_some() {
            eprintln!("{}", r.stderr().trim());
        }
    }
    eprintln!("exit codes: {codes:?}");
    assert!(
        codes.get(&0).copied().unwrap_or(0) >= 20 && codes.get(&2).copied().unwrap_or(0) >= 20,
        "the cases reach both success and refusal: {codes:?}"
    );
}

#[test]
fn serve_labels_and_export_refuse_bad_input_in_one_line() {
    let t = Test::new();
    t.pipeline(&format!("{SYN}[nodes.pca]\nop = \"reduce\"\nmethod = \"pca\"\ninput = \"catalog\"\nn_components = 2\n"));
    let check = |args: &[&str], want: &[&str]| {
        let r = t.run(args);
        assert_eq!(r.code(), 2, "{args:?}: {}", r.stderr());
        let line = r
            .stderr()
            .lines()
            .find(|l| l.starts_with("error: "))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("{args:?}: no error line: {}", r.stderr()));
        for w in want {
            assert!(line.contains(w), "{args:?}: {line:?} lacks {w:?}");
        }
    };
    check(
        &["serve", "p.toml", "--port", "0"],
        &["no report node with a layout", "--node"],
    );
    check(
        &["serve", "p.toml", "--node", "pca", "--port", "0"],
        &["`--node pca`", "a `reduce` node"],
    );
    check(
        &["serve", "p.toml", "--node", "nope", "--port", "0"],
        &["no node named `nope`"],
    );
    check(
        &["serve", "p.toml", "--host", "far.away", "--port", "0"],
        &["`--host far.away`", "IP address"],
    );
    check(
        &["labels", "export", "p.toml", "--out", "l.csv"],
        &["no label log", "p.labels.jsonl"],
    );
    check(
        &["labels", "export", "p.toml", "--out", "l.txt"],
        &["cannot tell the format of `l.txt`"],
    );
    check(
        &["export", "p.toml", "catalog", "--out", "nodir/x.csv"],
        &["folder `nodir` does not exist"],
    );
    assert!(!t.path("p.labels.jsonl").exists(), "nothing written");
}

/// Rows of issue #36 (a hostile but realistic user): each refused at once, in one line.
#[test]
fn trust_rows_typos_and_nonsense_are_refused_not_run() {
    let t = Test::new();
    let check = |args: &[&str], want: &str| refused_in_one_line(&t, args, want);
    t.pipeline(&format!(
        "[pipeline]\nname = \"r\"\n{}{}",
        crate::support::featured(3000, 8),
        crate::support::pca_leaves(20)
    ));
    // Row 9: malformed TOML in --set is an error, not a string that fails later.
    check(
        &["run", "p.toml", "--set", "tree.min_samples=[1,"],
        "`[1,` is not valid TOML",
    );
    check(
        &[
            "run",
            "p.toml",
            "--set",
            "tree.min_samples=99999999999999999999",
        ],
        "is not valid TOML",
    );
    check(
        &["sweep", "p.toml", "--grid", "tree.min_samples=5,\"x"],
        "is not valid TOML",
    );
    // Row 4: a grid too big is refused before any point is made; a dry run runs nothing.
    let t0 = std::time::Instant::now();
    check(
        &[
            "sweep",
            "p.toml",
            "--grid",
            "tree.min_samples=1,2,3,4,5,6,7,8,9,10",
            "--grid",
            "pca.n_components=1,2,3,4,5,6,7,8,9,10",
            "--grid",
            "catalog.seed=1,2,3,4,5,6,7,8,9,10,11",
        ],
        "the grid has 1100 points (10 x 10 x 11), over the limit of 1000",
    );
    assert!(t0.elapsed() < std::time::Duration::from_secs(30));
    let dry = t
        .run(&[
            "sweep",
            "p.toml",
            "--grid",
            "tree.min_samples=10,20",
            "--dry-run",
        ])
        .ok();
    assert!(
        dry.stderr()
            .contains("dry run: 2 grid points; nothing was run"),
        "{}",
        dry.stderr()
    );
    assert!(
        !t.cache().join("v1").join("objects").exists()
            || Test::content_hashes(&t.cache()).is_empty(),
        "nothing computed"
    );
    // Row 7: names that cannot name a file.
    let long = "n".repeat(300);
    t.write(
        "long.toml",
        &format!("[nodes.{long}]\nop = \"synthetic\"\nn = 100\n"),
    );
    check(&["run", "long.toml"], "at most 100");
    // Row 6: a sample of nothing.
    t.write("s.toml", "[nodes.c]\nop = \"synthetic\"\nn = 100\n[nodes.s]\nop = \"sample\"\ninput = \"c\"\nfraction = 0\n");
    check(&["run", "s.toml"], "0 keeps no galaxy");
    // Row 5: a galaxy without an id.
    t.write("ids.csv", "id,x\n1,0.5\n,0.7\n3,0.1\n");
    t.write("r.toml", "[nodes.c]\nop = \"read\"\npath = \"ids.csv\"\n");
    check(&["run", "r.toml"], "data row 2 has no id");
    // Rows 2, 12, 13: similar's examples, sky and classes.
    t.run(&["run", "p.toml", "-q"]).ok();
    t.run(&["export", "p.toml", "featured", "--out", "f.csv", "-q"])
        .ok();
    let first = std::fs::read_to_string(t.path("f.csv"))
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_owned();
    check(
        &[
            "similar", "p.toml", "--node", "featured", "--id", &first, "--not", &first,
        ],
        "is both an example and a counter-example",
    );
    check(
        &[
            "similar",
            "p.toml",
            "--node",
            "pca",
            "--columns",
            "pca_*",
            "--id",
            &first,
            "--dedupe-arcsec",
            "10",
        ],
        "node `pca` has no `ra` and `dec` columns",
    );
    check(
        &[
            "similar",
            "p.toml",
            "--node",
            "featured",
            "--class",
            "999",
            "--classes",
            "classes",
        ],
        "class 999 has no members in the classes input (its classes are 0 to",
    );
    // Row 14: a cache that is a file, a negative k, a UMAP parameter on a PCA node.
    t.write("afile", "x");
    check(
        &["run", "p.toml", "--cache", "afile"],
        "is a file where the cache needs a folder",
    );
    let k = t.run(&[
        "similar", "p.toml", "--node", "featured", "--id", &first, "-k", "-3",
    ]);
    assert_eq!(k.code(), 2);
    assert!(
        k.stderr()
            .contains("k must be a whole number between 1 and 1000000, not `-3`"),
        "{}",
        k.stderr()
    );
    check(
        &["run", "p.toml", "--set", "pca.n_neighbors=5"],
        "parameter `n_neighbors`: applies to method `umap` only",
    );
    // Row 8: two exports to one file at once both succeed, and the file is whole.
    for _ in 0..5 {
        let a = t
            .command(&["export", "p.toml", "featured", "--out", "same.csv", "-q"])
            .spawn()
            .unwrap();
        let b = t
            .command(&["export", "p.toml", "featured", "--out", "same.csv", "-q"])
            .spawn()
            .unwrap();
        assert!(
            a.wait_with_output().unwrap().status.success()
                && b.wait_with_output().unwrap().status.success()
        );
        assert_eq!(
            std::fs::read_to_string(t.path("same.csv")).unwrap(),
            std::fs::read_to_string(t.path("f.csv")).unwrap()
        );
    }
}
