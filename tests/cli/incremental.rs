//! Incrementality: after a change exactly the changed node and its descendants recompute;
//! equal outputs stop the recomputation (early cut-off); results do not depend on threads.

use crate::support::{Test, SMALL};

#[test]
fn set_recomputes_exactly_the_node_and_its_descendants() {
    let t = Test::new();
    t.pipeline(SMALL);
    let first = t.run_json(&[]).ok();
    assert_eq!(
        first.computed(),
        ["catalog", "featured", "pca", "pca2", "artifacts"]
    );
    assert!(
        t.run_json(&[]).ok().computed().is_empty(),
        "a second run computes nothing"
    );

    let changed = t.run_json(&["--set", "pca.n_components=3"]).ok();
    assert_eq!(changed.computed(), ["pca", "pca2"]);
    assert_eq!(
        changed.nodes_with("cached"),
        ["catalog", "featured", "artifacts"]
    );
    assert!(t
        .run_json(&["--set", "pca.n_components=3"])
        .ok()
        .computed()
        .is_empty());

    let changed = t
        .run_json(&[
            "--set",
            "featured.drop_where=[\"smooth-or-featured_smooth_fraction >= 0.4\"]",
        ])
        .ok();
    assert_eq!(changed.computed(), ["featured", "pca", "pca2"]);

    let changed = t.run_json(&["--set", "catalog.seed=7"]).ok();
    assert_eq!(
        changed.computed(),
        ["catalog", "featured", "pca", "pca2", "artifacts"]
    );

    // Back to the original parameters: everything is still cached.
    assert!(t.run_json(&[]).ok().computed().is_empty());
}

#[test]
fn equal_parameters_written_differently_share_a_key() {
    let t = Test::new();
    t.pipeline(SMALL);
    t.run_json(&[]).ok();
    // 4 == 4.0, and a condition's spacing does not matter.
    let same = t
        .run_json(&[
            "--set",
            "pca.n_components=4.0",
            "--set",
            "featured.drop_where=[\"smooth-or-featured_smooth_fraction>=0.50\", \"disk-edge-on_yes_fraction >= 0.3\", \"smooth-or-featured_artifact_fraction >= 0.3\"]",
        ])
        .ok();
    assert!(same.computed().is_empty(), "{:?}", same.computed());
}

#[test]
fn unchanged_output_stops_recomputation() {
    let t = Test::new();
    t.pipeline(SMALL);
    t.run_json(&[]).ok();
    // An extra condition that matches no row: `featured` reruns, its output is identical,
    // so nothing below it runs.
    let r = t
        .run_json(&[
            "--set",
            "featured.drop_where=[\"smooth-or-featured_smooth_fraction >= 0.5\", \"disk-edge-on_yes_fraction >= 0.3\", \"smooth-or-featured_artifact_fraction >= 0.3\", \"ra > 1000\"]",
        ])
        .ok();
    assert_eq!(r.computed(), ["featured"]);
}

#[test]
fn target_runs_only_what_it_needs() {
    let t = Test::new();
    t.pipeline(SMALL);
    let r = t.run_json(&["--target", "featured"]).ok();
    assert_eq!(r.computed(), ["catalog", "featured"]);
    let r = t.run_json(&["--target", "pca2"]).ok();
    assert_eq!(r.computed(), ["pca", "pca2"]);
    assert_eq!(r.nodes_with("cached"), ["catalog", "featured"]);
}

#[test]
fn plan_explains_what_will_run_and_why() {
    let t = Test::new();
    t.pipeline(SMALL);
    let fresh = t.run(&["plan", "p.toml", "--explain"]).ok().stdout();
    assert!(fresh.contains("never run"), "{fresh}");
    t.run_json(&[]).ok();
    let all_cached = t.run(&["plan", "p.toml"]).ok().stdout();
    assert_eq!(
        all_cached
            .lines()
            .filter(|l| l.trim_start().starts_with("cached"))
            .count(),
        5,
        "{all_cached}"
    );

    let out = t
        .run(&["plan", "p.toml", "--explain", "--set", "pca.n_components=3"])
        .ok()
        .stdout();
    assert!(out.contains("parameter `n_components`: 4 -> 3"), "{out}");
    let pca2 = out.lines().find(|l| l.contains("pca2")).unwrap();
    assert!(pca2.trim_start().starts_with("pending"), "{out}");
    assert!(out.contains("input `pca` will run"), "{out}");
    // plan computes nothing.
    assert!(t.run_json(&[]).ok().computed().is_empty());

    let json = t
        .run(&["plan", "p.toml", "--json", "--set", "catalog.n=2000"])
        .ok()
        .json();
    let statuses: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["run", "pending", "pending", "pending", "pending"]
    );
    assert!(
        json[0]["why"][0]
            .as_str()
            .unwrap()
            .contains("parameter `n`: 3000 -> 2000"),
        "{json}"
    );
}

#[test]
fn outputs_do_not_depend_on_the_thread_count() {
    let a = Test::new();
    a.pipeline(&crate::support::big(20_000));
    let b = Test::new();
    b.pipeline(&crate::support::big(20_000));
    let ra = a.run_json(&["-j", "1"]).ok();
    let rb = b.run_json(&["-j", "2"]).ok();
    assert_eq!(
        ra.keys(),
        rb.keys(),
        "keys derive from content hashes: equal keys mean equal inputs"
    );
    assert_eq!(
        Test::content_hashes(&a.cache()),
        Test::content_hashes(&b.cache()),
        "every output is bit-identical"
    );
}

/// A key is the bytes of its parts; any change to them (a dependency that reorders
/// serde_json's maps, a new field) must be deliberate: bump `KEY_FORMAT` and this pin.
#[test]
fn keys_are_pinned_and_do_not_depend_on_how_the_path_is_spelled() {
    let t = Test::new();
    t.write(
        "sub/p.toml",
        "[pipeline]\nname = \"pin\"\n[nodes.catalog]\nop = \"synthetic\"\nn = 200\ndim = 4\n[nodes.kept]\nop = \"filter\"\ninput = \"catalog\"\nkeep_where = [\"ra >= 0\"]\n",
    );
    let plain = t.run(&["run", "sub/p.toml", "--json"]).ok().keys();
    assert_eq!(
        plain["catalog"],
        "d0e7580853f2006a1c6679cb435216e4375d10fff716a3c2191c2bdfa330a838"
    );
    assert_eq!(
        plain["kept"],
        "9c69846567164a01d49c3f3d1e46df43ba102e5e865f03f2ea03c98bc7999ddf"
    );
    let absolute = t.path("sub/../sub/p.toml");
    let other = t.run(&["run", absolute.to_str().unwrap(), "--json"]).ok();
    assert_eq!(other.keys(), plain);
    assert!(other.computed().is_empty());
}
