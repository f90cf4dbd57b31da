//! `embed`: an ONNX encoder over image cutouts, checked against the same network computed
//! directly; unreadable images are listed, not fatal; errors name the parameter.
//! Needs ONNX Runtime (`scripts/install-ort.sh`); skips with a message without it.

use polars::prelude::*;

use crate::onnx_model::{Tiny, C_OUT};
use crate::support::Test;

pub(crate) fn runtime() -> bool {
    match dagrun::onnx::find_library() {
        Ok(_) => true,
        Err(e) => {
            assert!(std::env::var_os("CI").is_none(), "CI is set but ONNX Runtime is missing ({e}): `.ci/run` installs it with scripts/install-ort.sh");
            eprintln!("skipping the embed test: {e}");
            false
        }
    }
}

const S: usize = 8;
const N: usize = 30;

/// Pixels of image `i` (RGB, row-major), a fixed pattern.
fn pixels(i: usize) -> Vec<u8> {
    (0..S * S * 3)
        .map(|k| ((k * 31 + i * 97 + (k * k) % 13) % 256) as u8)
        .collect()
}

pub(crate) fn setup(t: &Test) {
    std::fs::write(t.path("tiny.onnx"), Tiny::new(S).onnx()).unwrap();
    std::fs::create_dir_all(t.path("data/img")).unwrap();
    let mut csv = String::from("id_str,file_loc,ring\n");
    for i in 0..N {
        let img = image::RgbImage::from_raw(S as u32, S as u32, pixels(i)).unwrap();
        img.save(t.path(&format!("data/img/g{i}.png"))).unwrap();
        csv.push_str(&format!("g{i},img/g{i}.png,{}\n", i % 2));
    }
    // A larger JPEG (cropped and resized), a missing file and a corrupt one.
    image::RgbImage::from_fn(40, 30, |x, y| {
        image::Rgb([(x * 6) as u8, (y * 8) as u8, 90])
    })
    .save(t.path("data/img/big.jpg"))
    .unwrap();
    std::fs::write(t.path("data/img/corrupt.jpg"), b"\xff\xd8\xff garbage").unwrap();
    csv.push_str("big,img/big.jpg,0\nmissing,img/missing.png,1\ncorrupt,img/corrupt.jpg,0\n");
    t.write("data/catalog.csv", &csv);
}

pub(crate) const PIPELINE: &str = r#"
[pipeline]
name = "emb"
id = "id_str"
[nodes.catalog]
op = "read"
path = "data/catalog.csv"
[nodes.embed]
op = "embed"
input = "catalog"
model = "tiny.onnx"
mean = [0.5]
std = [0.25]
batch_size = 7
[nodes.logits]
op = "embed"
input = "catalog"
model = "tiny.onnx"
output = "logits"
prefix = "logit_"
"#;

fn read(path: &std::path::Path) -> DataFrame {
    ParquetReader::new(std::fs::File::open(path).unwrap())
        .finish()
        .unwrap()
}

#[test]
fn embed_equals_the_network_computed_directly_and_lists_bad_images() {
    if !runtime() {
        return;
    }
    let t = Test::new();
    setup(&t);
    t.pipeline(PIPELINE);
    let r = t.run_json(&[]).ok();
    assert!(
        r.stderr().contains("2 images could not be used"),
        "{}",
        r.stderr()
    );
    t.run(&["export", "p.toml", "embed", "--out", "emb.parquet"])
        .ok();
    t.run(&["export", "p.toml", "logits", "--out", "logits.parquet"])
        .ok();
    let (emb, lg) = (
        read(&t.path("emb.parquet")),
        read(&t.path("logits.parquet")),
    );
    assert_eq!(
        emb.height(),
        N + 1,
        "30 PNGs and the JPEG; the missing and corrupt images are left out"
    );
    assert_eq!(emb.width(), 1 + C_OUT);
    assert_eq!(lg.width(), 1 + 2);
    let tiny = Tiny::new(S);
    let col = |df: &DataFrame, name: &str, row: usize| {
        df.column(name).unwrap().f32().unwrap().get(row).unwrap()
    };
    let mut worst = 0f32;
    for i in 0..N {
        let px = pixels(i);
        let chw = |mean: f32, std: f32| -> Vec<f32> {
            let mut x = vec![0f32; 3 * S * S];
            for p in 0..S * S {
                for c in 0..3 {
                    x[c * S * S + p] = (px[p * 3 + c] as f32 / 255.0 - mean) / std;
                }
            }
            x
        };
        let (feat, _) = tiny.forward(&chw(0.5, 0.25));
        let (_, logits) = tiny.forward(&chw(0.0, 1.0));
        assert_eq!(
            emb.column("id_str").unwrap().str().unwrap().get(i),
            Some(format!("g{i}").as_str()),
            "catalogue order"
        );
        for (o, want) in feat.iter().enumerate() {
            let got = col(&emb, &format!("feat_{o}"), i);
            worst = worst.max((got - want).abs() / want.abs().max(1e-3));
        }
        for (j, want) in logits.iter().enumerate() {
            let got = col(&lg, &format!("logit_{j}"), i);
            worst = worst.max((got - want).abs() / want.abs().max(1e-3));
        }
    }
    assert!(
        worst < 1e-4,
        "largest relative difference from the direct computation: {worst}"
    );
    assert!(
        (0..C_OUT).all(|o| col(&emb, &format!("feat_{o}"), N).is_finite()),
        "the resized JPEG embeds too"
    );

    // The failures table sits beside the output, one row per bad image, with the reason.
    let key = r.keys()["embed"].clone();
    let f = read(
        &t.cache()
            .join("v1/objects")
            .join(&key[..2])
            .join(&key)
            .join("files/failures.parquet"),
    );
    let ids: Vec<&str> = f
        .column("id_str")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|s| s.unwrap())
        .collect();
    assert_eq!(ids, ["missing", "corrupt"]);
    let errors: Vec<&str> = f
        .column("error")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|s| s.unwrap())
        .collect();
    assert!(
        errors[0].contains("cannot open") && errors[1].contains("cannot decode"),
        "{errors:?}"
    );

    // The same bytes with one thread and with two.
    let one = t
        .command(&["run", "p.toml", "-j", "1", "--json"])
        .env("DAGRUN_CACHE", t.path("c1"))
        .output()
        .unwrap();
    let two = t
        .command(&["run", "p.toml", "-j", "2", "--json"])
        .env("DAGRUN_CACHE", t.path("c2"))
        .output()
        .unwrap();
    assert!(one.status.success() && two.status.success());
    assert_eq!(
        Test::content_hashes(&t.path("c1")),
        Test::content_hashes(&t.path("c2"))
    );
}

#[test]
fn embed_errors_name_the_parameter() {
    if !runtime() {
        return;
    }
    let t = Test::new();
    setup(&t);
    let check = |toml: &str, want: &[&str]| {
        t.pipeline(toml);
        let r = t.run(&["run", "p.toml"]);
        assert_eq!(r.code(), 2, "{}", r.stderr());
        for w in want {
            assert!(r.stderr().contains(w), "`{w}` not in:\n{}", r.stderr());
        }
    };
    check(
        &PIPELINE.replace("model = \"tiny.onnx\"\nmean", "model = \"nope.onnx\"\nmean"),
        &["node `embed`", "model", "nope.onnx", "not found"],
    );
    check(
        &PIPELINE.replace("output = \"logits\"", "output = \"pooled\""),
        &["node `logits`", "no output `pooled`", "features, logits"],
    );
    check(
        &PIPELINE.replace("mean = [0.5]", "mean = [0.5, 0.5]"),
        &["node `embed`", "mean"],
    );
    check(
        &PIPELINE.replace("batch_size = 7", "image_column = \"path\""),
        &["node `embed`", "image_column", "no column `path`"],
    );
    check(
        &PIPELINE.replace("mean = [0.5]", "size = 16"),
        &["node `embed`", "size = 16", "8 x 8"],
    );
    // No runtime: a clear error, not a panic.
    t.pipeline(PIPELINE);
    let r = t
        .command(&["run", "p.toml"])
        .env("ORT_DYLIB_PATH", t.path("no-such-lib.so"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "{err}");
    assert!(
        err.contains("ORT_DYLIB_PATH") && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn sharded_embed_runs_shard_by_shard_and_merges_in_catalogue_order() {
    if !runtime() {
        return;
    }
    let t = Test::new();
    setup(&t);
    t.pipeline(PIPELINE);
    t.run(&["export", "p.toml", "embed", "--out", "whole.parquet"])
        .ok();
    t.pipeline(&PIPELINE.replace("batch_size = 7", "batch_size = 7\nshards = 3"));
    // One task of a job array: only its split and shard (and the catalogue) run.
    for i in 0..3 {
        let r = t.run_json(&["--shard", &format!("{i}/3")]).ok();
        let mut done = r.computed();
        done.retain(|n| n != "catalog");
        assert_eq!(done, [format!("embed.split{i}"), format!("embed.shard{i}")]);
    }
    // The plain run only merges (and runs the other node).
    let r = t.run_json(&[]).ok();
    assert_eq!(r.computed(), ["logits", "embed"]);
    assert!(
        r.stderr().contains("2 images could not be used"),
        "{}",
        r.stderr()
    );
    t.run(&["export", "p.toml", "embed", "--out", "sharded.parquet"])
        .ok();
    let (a, b) = (
        read(&t.path("whole.parquet")),
        read(&t.path("sharded.parquet")),
    );
    assert_eq!(
        a.column("id_str").unwrap(),
        b.column("id_str").unwrap(),
        "same rows, catalogue order"
    );
    for o in 0..C_OUT {
        let (x, y) = (
            a.column(&format!("feat_{o}")).unwrap().f32().unwrap(),
            b.column(&format!("feat_{o}")).unwrap().f32().unwrap(),
        );
        for (u, v) in x.into_no_null_iter().zip(y.into_no_null_iter()) {
            assert!((u - v).abs() <= 1e-5 * u.abs().max(1.0), "{u} vs {v}");
        }
    }
    let bad = t.run(&["run", "p.toml", "--shard", "3/3"]);
    assert_eq!(bad.code(), 2);
    assert!(
        bad.stderr()
            .contains("invalid value '3/3' for '--shard <I/N>'")
            && bad.stderr().contains("expected I/N with 0 <= I < N"),
        "{}",
        bad.stderr()
    );
    let bad = t.run(&["run", "p.toml", "--shard", "0/4"]);
    assert!(
        bad.stderr().contains("node `embed` has 3 shards, not 4"),
        "{}",
        bad.stderr()
    );
    t.pipeline(PIPELINE);
    let bad = t.run(&["run", "p.toml", "--shard", "0/2"]);
    assert!(bad.stderr().contains("no sharded node"), "{}", bad.stderr());
}

#[test]
fn images_enter_the_key_by_content_not_by_path() {
    if !runtime() {
        return;
    }
    let t = Test::new();
    setup(&t);
    t.pipeline(&PIPELINE.replace("batch_size = 7", "batch_size = 7\nshards = 3"));
    t.run_json(&[]).ok();
    // An unchanged rerun only stats the images.
    assert!(t.run_json(&[]).ok().computed().is_empty());

    // One cutout re-made in place: its shard, the merge and the unsharded node recompute.
    let shard = dagrun::ops::shard::shard_of("g4", 3);
    image::RgbImage::from_raw(S as u32, S as u32, pixels(99))
        .unwrap()
        .save(t.path("data/img/g4.png"))
        .unwrap();
    let r = t.run_json(&[]).ok();
    assert_eq!(
        r.computed(),
        [
            "logits".into(),
            format!("embed.shard{shard}"),
            "embed".into()
        ]
    );
    let statuses = |t: &Test| -> Vec<String> {
        let out = t.run(&["plan", "p.toml"]).ok().stdout();
        out.lines()
            .map(|l| l.split_whitespace().next().unwrap_or("").to_owned())
            .collect()
    };
    assert!(
        statuses(&t).iter().all(|s| s == "cached"),
        "{:?}",
        statuses(&t)
    );

    // The same bytes in another folder, `base_dir` pointed there: nothing recomputes.
    let copy = t.path("elsewhere/img");
    std::fs::create_dir_all(&copy).unwrap();
    for e in std::fs::read_dir(t.path("data/img")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), copy.join(e.file_name())).unwrap();
    }
    let moved = PIPELINE
        .replace(
            "batch_size = 7",
            "batch_size = 7\nshards = 3\nbase_dir = \"elsewhere\"",
        )
        .replace(
            "prefix = \"logit_\"",
            "prefix = \"logit_\"\nbase_dir = \"elsewhere\"",
        );
    t.pipeline(&moved);
    assert!(
        t.run_json(&[]).ok().computed().is_empty(),
        "the same bytes under another folder"
    );

    // A missing image that appears, and a different image under the same name: recomputed.
    image::RgbImage::from_raw(S as u32, S as u32, pixels(7))
        .unwrap()
        .save(copy.join("missing.png"))
        .unwrap();
    let r = t.run_json(&[]).ok();
    let shard = dagrun::ops::shard::shard_of("missing", 3);
    assert_eq!(
        r.computed(),
        [
            "logits".into(),
            format!("embed.shard{shard}"),
            "embed".into()
        ]
    );
    assert!(
        r.stderr().contains("1 images could not be used"),
        "{}",
        r.stderr()
    );
    assert!(
        statuses(&t).iter().all(|s| s == "cached"),
        "{:?}",
        statuses(&t)
    );
    std::fs::copy(t.path("data/img/g1.png"), copy.join("g0.png")).unwrap();
    let explained = t.run(&["plan", "p.toml", "--explain"]).ok();
    assert!(
        explained.stdout().contains("file `images` content changed"),
        "{}",
        explained.stdout()
    );
}

#[test]
fn appending_galaxies_recomputes_only_the_blocks_they_touch() {
    if !runtime() {
        return;
    }
    let t = Test::new();
    std::fs::write(t.path("tiny.onnx"), Tiny::new(S).onnx()).unwrap();
    std::fs::create_dir_all(t.path("data/img")).unwrap();
    let n = 3000;
    let row = |i: usize| format!("g{i},img/g{i}.png,0\n");
    for i in 0..n + 31 {
        image::RgbImage::from_raw(S as u32, S as u32, pixels(i))
            .unwrap()
            .save(t.path(&format!("data/img/g{i}.png")))
            .unwrap();
    }
    let catalogue = |rows: &mut dyn Iterator<Item = usize>| {
        t.write(
            "data/catalog.csv",
            &format!(
                "id_str,file_loc,ring\n{}",
                rows.map(row).collect::<String>()
            ),
        )
    };
    catalogue(&mut (0..n));
    t.pipeline(&PIPELINE[..PIPELINE.find("[nodes.logits]").unwrap()]);
    t.run_json(&[]).ok();
    let details = |t: &Test, cache: &std::path::Path| {
        let key = t
            .command(&["plan", "p.toml", "--json"])
            .env("DAGRUN_CACHE", cache)
            .output()
            .unwrap();
        let plan: serde_json::Value = serde_json::from_slice(&key.stdout).unwrap();
        let key = plan
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "embed")
            .unwrap()["key"]
            .as_str()
            .unwrap()
            .to_owned();
        let store = dagrun::cache::Store::open(cache).unwrap();
        let m = store.manifest(&key).unwrap();
        (
            m.details["rows_reused"].as_u64().unwrap() as usize,
            m.details["blocks_computed"].as_u64().unwrap() as usize,
            m.content_hash,
        )
    };
    let ids = |rows: &[usize]| rows.iter().map(|i| format!("g{i}")).collect::<Vec<_>>();
    let before = dagrun::ops::embed::blocks(&ids(&(0..n).collect::<Vec<_>>()));
    assert!(
        before.len() >= 2,
        "the test needs several blocks: {before:?}"
    );

    // 1% more galaxies at the end: only the last block is computed again, plus the new rows.
    catalogue(&mut (0..n + 30));
    let r = t.run_json(&[]).ok();
    assert_eq!(r.computed(), ["catalog", "embed"]);
    let (reused, computed, hash) = details(&t, &t.cache());
    let last = before.last().unwrap();
    assert_eq!(reused, last.start, "every block but the last is reused");
    assert_eq!(
        computed,
        dagrun::ops::embed::blocks(&ids(&(0..n + 30).collect::<Vec<_>>())).len()
            - (before.len() - 1)
    );
    // The same bytes as a run from nothing.
    let fresh = t
        .command(&["run", "p.toml"])
        .env("DAGRUN_CACHE", t.path("fresh"))
        .output()
        .unwrap();
    assert!(fresh.status.success());
    assert_eq!(
        details(&t, &t.path("fresh")).2,
        hash,
        "reused blocks give the bytes a fresh run gives"
    );

    // One galaxy inserted in the middle: only its block.
    let mut order: Vec<usize> = (0..n + 30).collect();
    let mid = before[before.len() / 2].start + 1;
    order.insert(mid, n + 30);
    catalogue(&mut order.clone().into_iter());
    t.run_json(&[]).ok();
    let (reused, computed, _) = details(&t, &t.cache());
    assert_eq!(computed, 1, "one block holds the inserted galaxy");
    let block = dagrun::ops::embed::blocks(&ids(&order))
        .into_iter()
        .find(|b| b.contains(&mid))
        .unwrap();
    assert_eq!(reused, order.len() - block.len());
}

/// The real cutouts through the shipped pipeline, when `../shared` has them and the
/// exported EfficientNet-Lite0 (`scripts/export-efficientnet-lite0.sh`) is there.
#[test]
fn decals_rings_embeddings_carry_the_ring_label() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = root.join("../shared/data/decals-rings/catalog.csv");
    let model = root.join("../shared/data/models/efficientnet-lite0.onnx");
    if !data.exists() || !model.exists() {
        // Without `../shared` at all the test skips; with it, under CI, a missing file fails.
        let shared = root.join("../shared");
        assert!(
            std::env::var_os("CI").is_none() || !shared.exists(),
            "CI is set and `{}` exists, but {} or {} is missing",
            shared.display(),
            data.display(),
            model.display()
        );
        eprintln!(
            "skipping: needs {} and {} (scripts/export-efficientnet-lite0.sh)",
            data.display(),
            model.display()
        );
        return;
    }
    if !runtime() {
        return;
    }
    let t = Test::new();
    let pipeline = root.join("pipelines/decals-rings.toml");
    let r = t.run(&["run", pipeline.to_str().unwrap(), "--json"]).ok();
    assert!(r.json()["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["name"] == "report"));
    t.run(&[
        "export",
        pipeline.to_str().unwrap(),
        "embed",
        "--out",
        "emb.parquet",
    ])
    .ok();
    let emb = read(&t.path("emb.parquet"));
    assert_eq!(emb.height(), 470);
    let d = emb.width() - 1;
    assert_eq!(d, 1280);
    let x: Vec<Vec<f32>> = (0..d)
        .map(|j| {
            emb.column(&format!("feat_{j}"))
                .unwrap()
                .f32()
                .unwrap()
                .into_no_null_iter()
                .collect()
        })
        .collect();
    assert!(x.iter().flatten().all(|v| v.is_finite()));
    // 10-nearest-neighbour vote of the `ring` label, each galaxy left out of its own vote.
    let cat = CsvReadOptions::default()
        .try_into_reader_with_file_path(Some(data))
        .unwrap()
        .finish()
        .unwrap();
    let ring: std::collections::HashMap<String, i64> = cat
        .column("id_str")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .zip(cat.column("ring").unwrap().i64().unwrap().iter())
        .map(|(i, r)| (i.unwrap().to_owned(), r.unwrap()))
        .collect();
    let ids: Vec<&str> = emb
        .column("id_str")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|s| s.unwrap())
        .collect();
    let y: Vec<i64> = ids.iter().map(|i| ring[*i]).collect();
    let n = ids.len();
    let mut right = 0;
    for a in 0..n {
        let mut dist: Vec<(f64, usize)> = (0..n)
            .filter(|&b| b != a)
            .map(|b| {
                (
                    (0..d)
                        .map(|j| (x[j][a] as f64 - x[j][b] as f64).powi(2))
                        .sum::<f64>(),
                    b,
                )
            })
            .collect();
        dist.sort_by(|p, q| p.0.total_cmp(&q.0).then(p.1.cmp(&q.1)));
        let votes: i64 = dist[..10].iter().map(|&(_, b)| y[b]).sum();
        right += usize::from((votes > 5) as i64 == y[a]);
    }
    let acc = right as f64 / n as f64;
    eprintln!("decals-rings: 10-NN ring vote accuracy {acc:.3}");
    assert!(acc > 0.6, "10-NN vote of `ring`: {acc:.3}");
}
