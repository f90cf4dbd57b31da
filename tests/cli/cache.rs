//! The cache under stress: killed runs, corrupted entries, two processes at once, gc, and
//! input files that are touched or edited.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{big, Test, SMALL};

fn corrupt_byte(path: &std::path::Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xFF;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn sigkill_at_ten_moments_never_leaves_a_half_written_entry() {
    let pipeline = big(400_000);
    // A clean run gives the reference outputs and the run's length.
    let clean = Test::new();
    clean.pipeline(&pipeline);
    let t0 = Instant::now();
    clean.run_json(&[]).ok();
    let full = t0.elapsed();
    let want = Test::content_hashes(&clean.cache());

    let mut finished = Vec::new();
    for i in 0..10u32 {
        // A fresh cache each time, killed at i/10 of a run's length: the kills land in
        // different nodes, while computing or while publishing.
        let t = Test::new();
        t.pipeline(&pipeline);
        let at = full.mul_f64(f64::from(i) / 10.0);
        let mut child = t
            .command(&["run", "p.toml", "-q"])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(at);
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        Test::assert_all_entries_intact(&t.cache());
        let partial = Test::content_hashes(&t.cache());
        finished.push(partial.len());
        for (key, hash) in &partial {
            assert_eq!(
                want.get(key),
                Some(hash),
                "entry {key} after kill {i} differs from a clean run"
            );
        }
        t.run_json(&[]).ok();
        assert_eq!(
            Test::content_hashes(&t.cache()),
            want,
            "after kill {i}, a run gives exactly the clean outputs"
        );
    }
    eprintln!("entries present at each kill: {finished:?}");
    // Some kill came after an entry was published (under load the run is slower than the
    // clean one timed first, so the last kill may still land before any).
    assert!(
        finished[0] < *finished.iter().max().unwrap(),
        "entries present at each kill: {finished:?}"
    );
}

#[test]
fn corrupted_entries_are_reported_and_recomputed() {
    let t = Test::new();
    t.pipeline(SMALL);
    let first = t.run_json(&[]).ok();
    let want = Test::content_hashes(&t.cache());
    let keys = first.keys();
    let entry = |node: &str| {
        let k = &keys[node];
        t.cache().join("v1/objects").join(&k[..2]).join(k)
    };
    corrupt_byte(&entry("catalog").join("data.parquet"));
    let data = entry("pca").join("data.parquet");
    let len = std::fs::metadata(&data).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&data)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    std::fs::remove_file(entry("pca2").join("manifest.json")).unwrap();
    std::fs::write(entry("artifacts").join("manifest.json"), "{ not json").unwrap();

    let r = t.run_json(&[]).ok();
    let err = r.stderr();
    for node in ["catalog", "pca", "pca2", "artifacts"] {
        assert!(
            err.contains(&format!("node `{node}`: cache entry")),
            "no report for {node}:\n{err}"
        );
    }
    assert_eq!(r.computed(), ["catalog", "pca", "pca2", "artifacts"]);
    assert_eq!(Test::content_hashes(&t.cache()), want);
    Test::assert_all_entries_intact(&t.cache());
}

#[test]
fn two_processes_on_one_cache_compute_each_key_once() {
    let t = Test::new();
    t.pipeline(&big(120_000));
    let spawn = || {
        t.command(&["run", "p.toml", "--json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let mut computed = Vec::new();
    let mut keys = Vec::new();
    for out in [a, b] {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r = crate::support::Run { out };
        computed.extend(r.computed());
        keys.push(r.keys());
    }
    computed.sort();
    assert_eq!(
        computed,
        ["artifacts", "catalog", "featured", "pca", "pca2"],
        "each key computed exactly once across both"
    );
    assert_eq!(keys[0], keys[1]);
    Test::assert_all_entries_intact(&t.cache());
}

#[test]
fn gc_removes_unused_entries_but_never_those_a_run_is_using() {
    let t = Test::new();
    t.pipeline(SMALL);
    t.run_json(&[]).ok();
    let recent = t.run(&["gc", "--older-than", "1h"]).ok().stderr();
    assert!(recent.contains("removed 0 entries"), "{recent}");
    let n_before = Test::content_hashes(&t.cache()).len();
    assert_eq!(n_before, 5);
    // Issue #36 row 1: a bare number is refused (seconds or days?); without --force what
    // was used in the last hour stays; --dry-run says what would go and removes nothing.
    let bare = t.run(&["gc", "--older-than", "30"]);
    assert_eq!(bare.code(), 2);
    assert!(
        bare.stderr().contains("say 30d or 12h"),
        "{}",
        bare.stderr()
    );
    let kept = t.run(&["gc", "--older-than", "0s"]).ok().stderr();
    assert!(
        kept.contains("removed 0 entries")
            && kept.contains("kept 0 in use, 5 used within 1h and 0 that")
            && kept.contains("--force"),
        "{kept}"
    );
    let dry = t
        .run(&["gc", "--older-than", "0s", "--force", "--dry-run"])
        .ok()
        .stderr();
    assert!(dry.contains("would remove 5 entries"), "{dry}");
    assert_eq!(
        Test::content_hashes(&t.cache()).len(),
        5,
        "a dry run removes nothing"
    );
    let gone = t
        .run(&["gc", "--older-than", "0s", "--force"])
        .ok()
        .stderr();
    assert!(gone.contains("removed 5 entries"), "{gone}");
    assert!(Test::content_hashes(&t.cache()).is_empty());

    // While a process uses an entry (as every run does with every entry it touches), gc
    // leaves it alone: held here through the library, so the check never races a run.
    t.run_json(&[]).ok();
    let store = dagrun::cache::Store::open(&t.cache()).unwrap();
    let keys = store.keys();
    let held = store.use_entry(&keys[0]).unwrap();
    let gc = t
        .run(&["gc", "--older-than", "0s", "--force"])
        .ok()
        .stderr();
    assert!(
        gc.contains("removed 4 entries") && gc.contains("kept 1 in use"),
        "{gc}"
    );
    assert_eq!(store.keys(), [keys[0].clone()]);
    drop(held);
    let gc = t
        .run(&["gc", "--older-than", "0s", "--force"])
        .ok()
        .stderr();
    assert!(gc.contains("removed 1 entries"), "{gc}");

    // And a real run in flight: whatever gc does meanwhile, the run completes and a rerun
    // finds everything.
    let long = Test::new();
    long.pipeline(&big(200_000));
    long.run(&["run", "p.toml", "-q", "--target", "featured"])
        .ok();
    let child = long.command(&["run", "p.toml", "-q"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    long.run(&["gc", "--older-than", "0s", "--force"]).ok();
    assert!(child.wait_with_output().unwrap().status.success());
}

#[test]
fn input_files_enter_the_key_by_content() {
    let t = Test::new();
    t.write("data/cat.csv", "id,x\n1,0.5\n2,0.7\n3,0.9\n");
    t.pipeline("[nodes.cat]\nop = \"read\"\npath = \"data/cat.csv\"\n[nodes.big]\nop = \"filter\"\ninput = \"cat\"\nkeep_where = [\"x > 0.6\"]\n");
    assert_eq!(t.run_json(&[]).ok().computed(), ["cat", "big"]);
    // Touching the file (new mtime, same bytes) invalidates nothing.
    let f = std::fs::File::options()
        .write(true)
        .open(t.path("data/cat.csv"))
        .unwrap();
    f.set_modified(std::time::SystemTime::now() - Duration::from_secs(10))
        .unwrap();
    assert!(t.run_json(&[]).ok().computed().is_empty());
    // Moving the file keeps its cache too.
    std::fs::rename(t.path("data/cat.csv"), t.path("data/moved.csv")).unwrap();
    assert!(t
        .run_json(&["--set", "cat.path=data/moved.csv"])
        .ok()
        .computed()
        .is_empty());
    // Editing it does invalidate.
    t.write("data/moved.csv", "id,x\n1,0.5\n2,0.7\n3,0.95\n");
    assert_eq!(
        t.run_json(&["--set", "cat.path=data/moved.csv"])
            .ok()
            .computed(),
        ["cat", "big"]
    );
}

/// A full disk is said as such, and leaves nothing half-written. Needs a small tmpfs
/// (root); skips with a message where mounting is not allowed.
#[test]
fn a_full_disk_is_named_and_leaves_nothing_behind() {
    let t = Test::new();
    let disk = t.path("disk");
    std::fs::create_dir_all(&disk).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&disk)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must check a full disk: cannot mount a small tmpfs here (needs root)"
        );
        eprintln!("skipping: cannot mount a small tmpfs here (needs root)");
        return;
    }
    t.pipeline("[pipeline]\nname = \"full\"\n[nodes.c]\nop = \"synthetic\"\nn = 20000\n");
    let cache = disk.join("c");
    let r = t.run(&["run", "p.toml", "-q", "--cache", cache.to_str().unwrap()]);
    let tmp_left = std::fs::read_dir(cache.join("v1/tmp"))
        .map(|d| d.count())
        .unwrap_or(0);
    let entries = std::fs::read_dir(cache.join("v1/objects"))
        .map(|d| d.count())
        .unwrap_or(0);
    let _ = Command::new("umount").arg(&disk).status();
    assert_eq!(r.code(), 1, "{}", r.stderr());
    assert!(
        r.stderr().contains("no space left on the device holding")
            && r.stderr().contains("node `c`"),
        "{}",
        r.stderr()
    );
    assert_eq!(
        (tmp_left, entries),
        (0, 0),
        "nothing half-written, nothing published"
    );
}

/// Ctrl-C and SIGTERM end a local run at once (the shell's 130 and 143: death by the
/// signal), leave every entry whole, and a rerun completes.
#[test]
fn sigint_and_sigterm_end_a_run_cleanly() {
    use std::os::unix::process::ExitStatusExt;
    // A shell starts background jobs with SIGINT ignored, and dagrun keeps a disposition it
    // inherits (as `nohup` expects): there, only SIGTERM can be checked.
    let ignored = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("SigIgn:")
                    .map(|v| u64::from_str_radix(v.trim(), 16).unwrap_or(0))
            })
        })
        .unwrap_or(0);
    for (sig, name) in [(2, "-INT"), (15, "-TERM")] {
        if ignored & (1 << (sig - 1)) != 0 {
            eprintln!("skipping {name}: this test process ignores it, so dagrun would too");
            continue;
        }
        let t = Test::new();
        t.pipeline(&big(400_000));
        let mut child = t.command(&["run", "p.toml", "-q"]).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(400));
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run is still going when signalled"
        );
        assert!(Command::new("kill")
            .args([name, &child.id().to_string()])
            .status()
            .unwrap()
            .success());
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(sig), "{name}: {status:?}");
        Test::assert_all_entries_intact(&t.cache());
        t.run(&["run", "p.toml", "-q"]).ok();
        Test::assert_all_entries_intact(&t.cache());
    }
}

/// Issue #36 row 11: a cache someone else computed, readable but not writable by us (a
/// shared, group-readable cache on a cluster): a fully cached run and `show` read it
/// without writing; a node it lacks is refused, saying the cache is not writable. Runs
/// dagrun as `nobody` (setpriv), so it needs root; under `CI` it never skips.
#[test]
fn a_read_only_cache_is_read_without_writing() {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let setpriv = Command::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !(root && setpriv) {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but this test cannot run dagrun as another user (needs root and setpriv)"
        );
        eprintln!(
            "skipping the read-only cache test: it needs root and setpriv to run dagrun as nobody"
        );
        return;
    }
    let t = Test::new();
    t.pipeline(SMALL);
    let first = t.run_json(&[]).ok();
    // The binary where nobody may run it, and everything readable but not writable by others.
    let exe = t.path("dagrun");
    std::fs::copy(env!("CARGO_BIN_EXE_dagrun"), &exe).unwrap();
    assert!(Command::new("chmod")
        .args(["-R", "a+rX,go-w"])
        .arg(t.dir.path())
        .status()
        .unwrap()
        .success());
    let before = Test::content_hashes(&t.cache());
    let as_nobody = |args: &[&str]| {
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&exe)
            .args(args)
            .current_dir(t.dir.path())
            .env("DAGRUN_CACHE", t.cache())
            .env_remove("DAGRUN_THREADS")
            .output()
            .unwrap();
        crate::support::Run { out }
    };
    let hit = as_nobody(&["run", "p.toml", "--json"]).ok();
    assert_eq!(
        hit.nodes_with("cached").len(),
        first.computed().len(),
        "every node a hit: {}",
        hit.stdout()
    );
    assert_eq!(hit.keys(), first.keys());
    let shown = as_nobody(&["show", "p.toml", "pca2", "--json"]).ok();
    assert_eq!(
        shown.json()["rows"],
        first.json()["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == "pca2")
            .unwrap()["rows"]
    );
    let miss = as_nobody(&["run", "p.toml", "--set", "pca2.n_components=1"]);
    assert_eq!(miss.code(), 1);
    assert!(
        miss.stderr().contains("is not writable by you") && miss.stderr().contains("--cache"),
        "{}",
        miss.stderr()
    );
    assert_eq!(Test::content_hashes(&t.cache()), before, "nothing written");
}
