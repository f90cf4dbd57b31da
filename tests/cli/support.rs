//! The test builder: a temporary folder with a pipeline file and a cache, and helpers to
//! run `dagrun` in it and read its JSON report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Test {
    pub dir: tempfile::TempDir,
}

/// A small pipeline with a branch: catalog -> featured -> pca -> pca2, catalog -> artifacts.
pub const SMALL: &str = r#"
[pipeline]
name = "t"

[nodes.catalog]
op = "synthetic"
n = 3000
dim = 16

[nodes.featured]
op = "filter"
input = "catalog"
drop_where = [
    "smooth-or-featured_smooth_fraction >= 0.5",
    "disk-edge-on_yes_fraction >= 0.3",
    "smooth-or-featured_artifact_fraction >= 0.3",
]

[nodes.pca]
op = "reduce"
method = "pca"
input = "featured"
n_components = 4

[nodes.pca2]
op = "reduce"
method = "pca"
input = "pca"
columns = "pca_*"
n_components = 2
prefix = "p2_"

[nodes.artifacts]
op = "filter"
input = "catalog"
keep_where = ["smooth-or-featured_artifact_fraction >= 0.3"]
"#;

/// The paper's cut, as a TOML array body.
pub const CUT: &str = r#""smooth-or-featured_smooth_fraction >= 0.5", "disk-edge-on_yes_fraction >= 0.3", "smooth-or-featured_artifact_fraction >= 0.3""#;

/// `catalog` (the built-in sample) and `featured` (the paper's cut): how most test
/// pipelines start.
pub fn featured(n: u64, dim: u32) -> String {
    format!("[nodes.catalog]\nop = \"synthetic\"\nn = {n}\ndim = {dim}\n[nodes.featured]\nop = \"filter\"\ninput = \"catalog\"\ndrop_where = [{CUT}]\n")
}

/// `pca` (5 components of `featured`), `tree` (HDBSCAN on it) and `classes` (its leaves).
pub fn pca_leaves(min_samples: u32) -> String {
    format!(
        "[nodes.pca]\nop = \"reduce\"\nmethod = \"pca\"\ninput = \"featured\"\nn_components = 5\n\
         [nodes.tree]\nop = \"cluster\"\ninput = \"pca\"\ncolumns = \"pca_*\"\nmin_samples = {min_samples}\nmin_cluster_size = 10\n\
         [nodes.classes]\nop = \"select-leaves\"\ninput = \"tree\"\n"
    )
}

/// Like SMALL but big enough to take a few seconds on two cores.
pub fn big(n: u64) -> String {
    SMALL.replace("n = 3000\ndim = 16", &format!("n = {n}\ndim = 64"))
}

pub struct Run {
    pub out: Output,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
    pub fn code(&self) -> i32 {
        self.out.status.code().unwrap_or(-1)
    }
    #[track_caller]
    pub fn ok(self) -> Self {
        assert!(
            self.out.status.success(),
            "dagrun failed ({}):\n{}",
            self.code(),
            self.stderr()
        );
        self
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.out.stdout)
            .unwrap_or_else(|e| panic!("bad JSON ({e}):\n{}\n{}", self.stdout(), self.stderr()))
    }
    /// Names of the nodes the run computed, in run order.
    pub fn computed(&self) -> Vec<String> {
        self.nodes_with("computed")
    }
    pub fn nodes_with(&self, status: &str) -> Vec<String> {
        self.json()["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .filter(|n| n["status"] == status)
            .map(|n| n["name"].as_str().expect("name").to_owned())
            .collect()
    }
    /// node name -> key
    pub fn keys(&self) -> BTreeMap<String, String> {
        self.json()["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .map(|n| {
                (
                    n["name"].as_str().unwrap().to_owned(),
                    n["key"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }
}

impl Test {
    pub fn new() -> Self {
        Test {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, contents: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, contents).unwrap();
        p
    }

    pub fn pipeline(&self, toml: &str) -> &Self {
        self.write("p.toml", toml);
        self
    }

    pub fn cache(&self) -> PathBuf {
        self.path("cache")
    }

    /// A `dagrun` command in the test folder, with the test's cache.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_dagrun"));
        c.current_dir(self.dir.path())
            .env("DAGRUN_CACHE", self.cache())
            .env_remove("DAGRUN_THREADS")
            .args(args);
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run {
            out: self.command(args).output().expect("spawn dagrun"),
        }
    }

    /// `dagrun run p.toml --json EXTRA...`
    pub fn run_json(&self, extra: &[&str]) -> Run {
        let mut args = vec!["run", "p.toml", "--json"];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// key -> content hash of every complete entry in a cache.
    pub fn content_hashes(cache: &Path) -> BTreeMap<String, String> {
        let store = dagrun::cache::Store::open(cache).unwrap();
        store
            .manifests()
            .into_iter()
            .map(|(k, m)| (k, m.content_hash))
            .collect()
    }

    /// Every entry in the cache verifies (complete manifest, matching data).
    pub fn assert_all_entries_intact(cache: &Path) {
        let store = dagrun::cache::Store::open(cache).unwrap();
        for key in store.keys() {
            match store.lookup(&key) {
                dagrun::cache::Lookup::Hit(_) => {}
                dagrun::cache::Lookup::Missing => panic!("entry {key} listed but missing"),
                dagrun::cache::Lookup::Corrupt(r) => {
                    panic!("entry {key} is half-written or corrupt: {r}")
                }
            }
        }
    }
}
