//! `--executor slurm` against a real one-node SLURM cluster (`scripts/slurm-up.sh`, which
//! `.ci/run` starts): the same keys and bytes as the local executor, one job array for a
//! sharded embed, nothing submitted twice, and failures, `scancel` and Ctrl-C that leave
//! no job behind and no partial entry. Skips with a message where no cluster answers;
//! fails instead when `CI` is set.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{featured, pca_leaves, Run, Test};

fn cluster() -> bool {
    let ok = Command::new("sinfo")
        .arg("-h")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(std::env::var_os("CI").is_none(), "CI is set but no SLURM cluster answers `sinfo`: `.ci/run` starts one with scripts/slurm-up.sh");
        eprintln!("skipping the SLURM test: no cluster answers `sinfo` (start one with scripts/slurm-up.sh)");
    }
    ok
}

/// The job ids a run's stderr says it submitted, by node.
fn submitted(stderr: &str) -> Vec<(String, String)> {
    stderr
        .lines()
        .filter(|l| l.trim_start().starts_with("slurm") && l.trim_end().ends_with("submitted"))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w[1].to_owned(), w[4].to_owned())
        })
        .collect()
}

/// The jobs among `ids` that squeue shows pending or running.
fn active(ids: &[String]) -> Vec<String> {
    let out = Command::new("squeue")
        .args([
            "--me",
            "-h",
            "-t",
            "PENDING,RUNNING,CONFIGURING,COMPLETING",
            "-o",
            "%i",
        ])
        .output()
        .unwrap();
    let live: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().split('_').next().unwrap().to_owned())
        .collect();
    ids.iter().filter(|i| live.contains(*i)).cloned().collect()
}

fn job_state(id: &str) -> String {
    let out = Command::new("squeue")
        .args(["--me", "-h", "--states=all", "-j", id, "-o", "%T"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn sweep_through_slurm_gives_the_local_keys_and_submits_nothing_twice() {
    if !cluster() {
        return;
    }
    let t = Test::new();
    t.pipeline(&format!(
        "[pipeline]\nname = \"sl\"\n{}{}",
        featured(3000, 16),
        pca_leaves(10)
    ));
    let grid = [
        "sweep",
        "p.toml",
        "--grid",
        "tree.min_samples=10,20",
        "--json",
    ];
    let mut args = grid.to_vec();
    args.extend(["--executor", "slurm", "--slurm", "cpus=1"]);
    let r = t.run(&args).ok();
    let jobs = submitted(&r.stderr());
    // catalog, featured, pca, and a tree and its leaves per point: one job each.
    assert_eq!(jobs.len(), 7, "{}", r.stderr());
    // Each node computed by a job names it, in the report and in its entry's manifest.
    let store = dagrun::cache::Store::open(&t.cache()).unwrap();
    let mut by_job = BTreeSet::new();
    for p in r.json()["points"].as_array().unwrap() {
        for n in p["nodes"].as_array().unwrap() {
            let job = n["slurm_job"]
                .as_str()
                .unwrap_or_else(|| panic!("no job for {n}"));
            let m = store.manifest(n["key"].as_str().unwrap()).unwrap();
            assert_eq!(m.slurm["slurm_job_id"].as_str(), Some(job), "{}", n["name"]);
            assert!(m.slurm["node"].is_string());
            by_job.insert(job.to_owned());
        }
    }
    assert_eq!(by_job, jobs.iter().map(|(_, id)| id.clone()).collect());

    // The local executor gives the same keys and bytes.
    let local = t
        .command(&grid)
        .env("DAGRUN_CACHE", t.path("local"))
        .output()
        .unwrap();
    assert!(local.status.success());
    assert_eq!(
        Test::content_hashes(&t.cache()),
        Test::content_hashes(&t.path("local"))
    );

    // A rerun submits nothing.
    let again = t.run(&args).ok();
    assert!(submitted(&again.stderr()).is_empty(), "{}", again.stderr());
    let statuses: BTreeSet<String> = again.json()["points"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| {
            p["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["status"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(statuses, BTreeSet::from(["cached".to_owned()]));
}

#[test]
fn a_failed_job_stops_the_run_naming_node_job_and_log() {
    if !cluster() {
        return;
    }
    let t = Test::new();
    // 120 galaxies, 50 after the cut: too few for 80 neighbours, found only at run time.
    t.pipeline(&format!(
        "[pipeline]\nname = \"bad\"\n{}[nodes.u]\nop = \"reduce\"\nmethod = \"umap\"\ninput = \"featured\"\nn_neighbors = 80\n[nodes.tree]\nop = \"cluster\"\ninput = \"u\"\ncolumns = \"umap_*\"\nmin_samples = 5\n",
        featured(120, 8)
    ));
    let r = t.run(&["run", "p.toml", "--executor", "slurm", "--slurm", "cpus=1"]);
    assert_eq!(r.code(), 1, "{}", r.stderr());
    let err = r.stderr();
    let jobs = submitted(&err);
    let (_, knn_job) = jobs
        .iter()
        .find(|(n, _)| n == "u.knn")
        .expect("u.knn submitted");
    assert!(
        err.contains(&format!(
            "node `u.knn`: job {knn_job} failed with exit code 2"
        )),
        "{err}"
    );
    assert!(
        err.contains("n_neighbors"),
        "the log's tail says why: {err}"
    );
    // Nothing of this run is left queued: the dependents were cancelled.
    let ids: Vec<String> = jobs.iter().map(|(_, id)| id.clone()).collect();
    assert!(active(&ids).is_empty(), "jobs left: {:?}", active(&ids));
    Test::assert_all_entries_intact(&t.cache());

    // A job asking for more CPUs than any node has would pend forever: an error instead.
    let out = t
        .command(&[
            "run",
            "p.toml",
            "--executor",
            "slurm",
            "--slurm",
            "cpus=1",
            "--slurm",
            "catalog.cpus=4096",
            "--target",
            "catalog",
        ])
        .env("DAGRUN_CACHE", t.path("other"))
        .output()
        .unwrap();
    let r = Run { out };
    assert_eq!(r.code(), 1, "{}", r.stderr());
    assert!(
        r.stderr().contains("node `catalog`: job")
            && r.stderr()
                .contains("can never start (PartitionConfig): it asks for 4096 CPUs"),
        "{}",
        r.stderr()
    );
    let ids: Vec<String> = submitted(&r.stderr())
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    assert!(active(&ids).is_empty());
}

/// A pipeline whose `u` node runs for a few seconds.
fn slow(t: &Test) {
    t.pipeline(&format!(
        "[pipeline]\nname = \"slow\"\n{}[nodes.u]\nop = \"reduce\"\nmethod = \"umap\"\ninput = \"featured\"\nn_neighbors = 15\nn_components = 2\nn_epochs = 400\n",
        featured(60_000, 16)
    ));
}

/// Start a slurm run of `p.toml`; return it once the job of node `node` is running.
fn start_until_running(t: &Test, node: &str) -> (std::process::Child, Vec<String>, String) {
    let mut child = t
        .command(&["run", "p.toml", "--executor", "slurm", "--slurm", "cpus=1"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut ids = Vec::new();
    let mut target = None;
    while target.is_none() {
        let line = lines.next().expect("the run printed its jobs").unwrap();
        if let Some((n, id)) = submitted(&line).pop() {
            ids.push(id.clone());
            if n == node {
                target = Some(id);
            }
        }
    }
    let target = target.unwrap();
    let t0 = Instant::now();
    while job_state(&target) != "RUNNING" {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "job {target} never ran: {}",
            job_state(&target)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Keep draining stderr so the run never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, ids, target)
}

#[test]
fn scancel_of_a_running_job_fails_the_run_and_a_rerun_completes() {
    if !cluster() {
        return;
    }
    let t = Test::new();
    slow(&t);
    let (child, ids, job) = start_until_running(&t, "u");
    assert!(Command::new("scancel")
        .arg(&job)
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(active(&ids).is_empty());
    Test::assert_all_entries_intact(&t.cache());
    let r = t
        .run(&[
            "run",
            "p.toml",
            "--executor",
            "slurm",
            "--slurm",
            "cpus=1",
            "--json",
        ])
        .ok();
    // What finished before the cancel is not submitted again.
    let again: Vec<String> = submitted(&r.stderr()).into_iter().map(|(n, _)| n).collect();
    assert_eq!(again, ["u"], "{}", r.stderr());
}

#[test]
fn ctrl_c_cancels_exactly_the_jobs_it_submitted() {
    if !cluster() {
        return;
    }
    let t = Test::new();
    slow(&t);
    let (child, ids, _) = start_until_running(&t, "u");
    assert!(Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert!(active(&ids).is_empty(), "left: {:?}", active(&ids));
    Test::assert_all_entries_intact(&t.cache());
}

#[test]
fn a_sharded_embed_is_one_job_array_with_the_local_output() {
    if !cluster() || !crate::embed::runtime() {
        return;
    }
    let t = Test::new();
    crate::embed::setup(&t);
    t.pipeline(&crate::embed::PIPELINE.replace("batch_size = 7", "batch_size = 7\nshards = 3"));
    let r: Run = t
        .run(&[
            "run",
            "p.toml",
            "--executor",
            "slurm",
            "--slurm",
            "cpus=1",
            "--slurm",
            "array_limit=2",
        ])
        .ok();
    let jobs = submitted(&r.stderr());
    let arrays: Vec<&(String, String)> = jobs.iter().filter(|(n, _)| n == "embed.shards").collect();
    assert_eq!(
        arrays.len(),
        1,
        "one array for the three shards: {}",
        r.stderr()
    );
    let store = dagrun::cache::Store::open(&t.cache()).unwrap();
    let tasks: BTreeSet<String> = store
        .manifests()
        .into_iter()
        .filter(|(_, m)| m.node.starts_with("embed.s"))
        .map(|(_, m)| {
            assert_eq!(m.slurm["slurm_job_id"].as_str(), Some(arrays[0].1.as_str()));
            m.slurm["array_task_id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        tasks,
        BTreeSet::from(["0".to_owned(), "1".to_owned(), "2".to_owned()])
    );
    // The local executor gives the same table, byte for byte.
    t.run(&["export", "p.toml", "embed", "--out", "slurm.parquet"])
        .ok();
    t.command(&["export", "p.toml", "embed", "--out", "local.parquet"])
        .env("DAGRUN_CACHE", t.path("local"))
        .output()
        .unwrap();
    let read = |f: &str| std::fs::read(t.path(f)).unwrap();
    assert_eq!(read("slurm.parquet"), read("local.parquet"));
}
