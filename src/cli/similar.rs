//! `dagrun similar`: the pipeline with one more node, `_similar`, run to it; its results
//! printed, and (`--html`) drawn as a gallery page.

use std::collections::HashMap;
use std::path::Path;

use polars::prelude::{DataFrame, DataType};

use super::print::Printer;
use super::{cache_dir, targets, Global, SimilarArgs};
use crate::cache::Store;
use crate::error::{Error, Result};
use crate::exec;
use crate::render::similar::Card;
use crate::spec::{self, Pipeline};

/// The search's node.
const NODE: &str = "_similar";

pub(super) fn run(q: &SimilarArgs, global: &Global, out: &Printer) -> Result<()> {
    if q.ids.is_empty() && q.class.is_none() {
        return Err(Error::Usage(
            "give at least one `--id` (or `--class N --classes NODE`)".into(),
        ));
    }
    let p = with_search(q, global)?;
    let store = Store::open(&cache_dir(global, Some(&p)))?;
    let t = targets(&p, &[NODE.to_owned()])?;
    let report = exec::run(&p, &store, out, &t)?;
    let df = store.read(&report.node(NODE).expect("target ran").key, NODE)?;
    let (ids, scores) = results(&df, &p.id)?;
    if let Some(dir) = &q.html {
        // Cutouts and columns from the nearest node at or above NODE that has image paths
        // (an `embed` node's catalogue), else from NODE itself.
        let v = p.image_source(p.find(&q.node).expect("validated"));
        let name = &p.nodes[v].name;
        let table = store.read(&report.node(name).expect("NODE's inputs ran").key, name)?;
        let images = p.source_dir(v);
        let shown = Shown::new(&table, &p.id, q);
        page(dir, q, &shown, images.as_deref(), &ids, &scores)?;
        out.line(&format!("gallery: {}", dir.join("index.html").display()));
    }
    print_results(q, &p.id, &ids, &scores);
    Ok(())
}

/// The pipeline with the search added as node [`NODE`], validated.
fn with_search(q: &SimilarArgs, global: &Global) -> Result<Pipeline> {
    let path = &q.pipeline;
    let mut raw = spec::load_raw(path, &global.sets, &[])?;
    if !raw.nodes.iter().any(|n| n.name == q.node) {
        let known = raw.names();
        return Err(Error::Usage(format!(
            "`--node {}`: no node named `{}` in `{}` (nodes: {known})",
            q.node,
            q.node,
            path.display()
        )));
    }
    let loc = crate::error::Loc::Whole(path.to_owned());
    spec::raw::add_node(&mut raw, NODE, loc, search_params(q))?;
    let p = spec::validate::validate(raw)?;
    let searched = &p.nodes[p.find(&q.node).expect("checked above")];
    if q.dedupe_arcsec.is_some_and(|a| a > 0.0)
        && !(searched.schema.contains("ra") && searched.schema.contains("dec"))
    {
        return Err(Error::Usage(format!("`--dedupe-arcsec`: node `{}` has no `ra` and `dec` columns, so no sky positions to find duplicate detections by", q.node)));
    }
    Ok(p)
}

/// The `similar` node's parameters, as a pipeline file would give them.
fn search_params(q: &SimilarArgs) -> Vec<(&str, toml::Value)> {
    let strings = |v: &[String]| {
        toml::Value::Array(v.iter().map(|s| toml::Value::String(s.clone())).collect())
    };
    let mut params: Vec<(&str, toml::Value)> =
        vec![("op", "similar".into()), ("k", i64::from(q.k).into())];
    match &q.classes {
        Some(c) => params.push((
            "inputs",
            toml::Value::Array(vec![q.node.as_str().into(), c.as_str().into()]),
        )),
        None => params.push(("input", q.node.as_str().into())),
    }
    if !q.ids.is_empty() {
        params.push(("ids", strings(&q.ids)));
    }
    if !q.not.is_empty() {
        params.push(("not", strings(&q.not)));
    }
    if let Some(c) = q.class {
        params.push(("class", c.into()));
    }
    if !q.columns.is_empty() {
        params.push(("columns", strings(&q.columns)));
    }
    if let Some(a) = q.dedupe_arcsec {
        params.push(("dedupe_arcsec", a.into()));
    }
    params
}

/// The results' ids (as text) and scores, best first.
fn results(df: &DataFrame, id: &str) -> Result<(Vec<String>, Vec<f64>)> {
    let ids: Vec<String> = df
        .column(id)
        .and_then(|c| c.cast(&DataType::String))
        .map_err(|e| Error::polars(NODE, e))?
        .str()
        .map_err(|e| Error::polars(NODE, e))?
        .iter()
        .map(|v| v.unwrap_or("").to_owned())
        .collect();
    let scores: Vec<f64> = df
        .column("score")
        .and_then(|c| c.f64().cloned())
        .map_err(|e| Error::polars(NODE, e))?
        .into_no_null_iter()
        .collect();
    Ok((ids, scores))
}

/// The results on stdout: JSON (`--json`) or a ranked table.
fn print_results(q: &SimilarArgs, id: &str, ids: &[String], scores: &[f64]) {
    if q.json {
        let results: Vec<serde_json::Value> = ids
            .iter()
            .zip(scores)
            .map(|(id, s)| serde_json::json!({ "id": id, "score": s }))
            .collect();
        let doc = serde_json::json!({
            "node": q.node,
            "query": {
                "ids": q.ids, "not": q.not, "class": q.class, "classes": q.classes, "k": q.k
            },
            "results": results,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("results serialise")
        );
    } else {
        println!("{:>5}  {:<20} {:>9}", "rank", id, "score");
        for (r, (id, s)) in ids.iter().zip(scores).enumerate() {
            println!("{:>5}  {id:<20} {s:>9.6}", r + 1);
        }
    }
}

/// What a gallery card shows of a galaxy, read from the table it comes from.
struct Shown {
    row_of: HashMap<String, usize>,
    /// Cutout paths (`file_loc`), where the table has them.
    images: Option<Vec<Option<String>>>,
    ra: Option<Vec<Option<f64>>>,
    dec: Option<Vec<Option<f64>>>,
    /// A few columns that describe a galaxy, each as text per row.
    columns: Vec<(String, Vec<Option<String>>)>,
}

impl Shown {
    fn new(table: &DataFrame, id: &str, q: &SimilarArgs) -> Shown {
        let all_ids = text(table, id).unwrap_or_default();
        let row_of = all_ids
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (s.clone(), i)))
            .collect();
        let columns = described(table, id, q)
            .iter()
            .filter_map(|n| {
                let float = table.column(n).ok()?.dtype().is_float();
                let values = if float {
                    number(table, n)?
                        .into_iter()
                        .map(|v| v.map(|v| format!("{v:.4}")))
                        .collect()
                } else {
                    text(table, n)?
                };
                Some((n.clone(), values))
            })
            .collect();
        Shown {
            row_of,
            images: text(table, "file_loc"),
            ra: number(table, "ra"),
            dec: number(table, "dec"),
            columns,
        }
    }
}

/// A column as text, where the table has it.
fn text(table: &DataFrame, name: &str) -> Option<Vec<Option<String>>> {
    let c = table.column(name).ok()?.cast(&DataType::String).ok()?;
    Some(c.str().ok()?.iter().map(|v| v.map(str::to_owned)).collect())
}

/// A column as numbers, where the table has it.
fn number(table: &DataFrame, name: &str) -> Option<Vec<Option<f64>>> {
    let c = table.column(name).ok()?.cast(&DataType::Float64).ok()?;
    Some(c.f64().ok()?.iter().collect())
}

/// Up to six columns that describe a galaxy: text columns (e.g. a class), then numbers that
/// are not the representation.
fn described(table: &DataFrame, id: &str, q: &SimilarArgs) -> Vec<String> {
    let skip = |n: &str| {
        n == id
            || n == "file_loc"
            || n == "ra"
            || n == "dec"
            || n.starts_with("feat_")
            || q.columns
                .iter()
                .any(|g| crate::ops::columns::glob_match(g, n))
    };
    let kept = || table.columns().iter().filter(|c| !skip(c.name()));
    kept()
        .filter(|c| c.dtype() == &DataType::String)
        .chain(kept().filter(|c| c.dtype().is_primitive_numeric()))
        .map(|c| c.name().to_string())
        .take(6)
        .collect()
}

/// `--html DIR`: the examples and results as a gallery page, `DIR/index.html`, with its
/// thumbnails in `DIR/thumbs/`.
fn page(
    dir: &Path,
    q: &SimilarArgs,
    shown: &Shown,
    image_dir: Option<&Path>,
    ids: &[String],
    scores: &[f64],
) -> Result<()> {
    std::fs::create_dir_all(dir.join("thumbs"))
        .map_err(|e| Error::io("create the gallery folder", dir, e))?;
    let mut thumbs = Thumbs {
        dir,
        image_dir,
        made: 0,
    };
    let mut cards = |gids: &[String], scores: Option<&[f64]>| -> Result<Vec<Card>> {
        gids.iter()
            .enumerate()
            .map(|(i, g)| card(shown, &mut thumbs, g, scores.map(|s| s[i])))
            .collect()
    };
    let examples = cards(&q.ids, None)?;
    let counter = cards(&q.not, None)?;
    let results = cards(ids, Some(scores))?;
    let html = crate::render::similar::page(
        &format!("Galaxies like these: `{}`", q.node),
        &format!("{}; top {} by score.", headline(q), results.len()),
        &examples,
        &counter,
        &results,
    );
    crate::cache::io::write_atomic(&dir.join("index.html"), html.as_bytes())
}

/// How the results were ranked.
fn headline(q: &SimilarArgs) -> String {
    match (q.class, q.not.is_empty()) {
        (Some(c), _) => format!(
            "Galaxies outside class {c} of `{}` most like its members",
            q.classes.as_deref().unwrap_or_default()
        ),
        (None, true) => format!(
            "Cosine similarity to the mean of {} example(s)",
            q.ids.len()
        ),
        (None, false) => format!(
            "A linear classifier of {} example(s) against {} counter-example(s)",
            q.ids.len(),
            q.not.len()
        ),
    }
}

/// The thumbnails a page has written so far, numbered in order.
struct Thumbs<'a> {
    dir: &'a Path,
    image_dir: Option<&'a Path>,
    made: usize,
}

impl Thumbs<'_> {
    /// A cutout's thumbnail, written as the next `thumbs/N.png`: its path in the page, or
    /// why there is none.
    fn write(&mut self, path: &str) -> Result<std::result::Result<String, String>> {
        let cutout = crate::ops::resolve_path(self.image_dir, path);
        match crate::render::gallery::thumbnail(&cutout, 164) {
            Ok(img) => {
                self.made += 1;
                let file = format!("thumbs/{}.png", self.made);
                let png = crate::render::canvas::png(&img);
                crate::cache::io::write_atomic(&self.dir.join(&file), &png)?;
                Ok(Ok(file))
            }
            Err(e) => Ok(Err(format!("cutout unreadable: {e}"))),
        }
    }
}

/// Galaxy `gid`'s card: its thumbnail (where the table has cutouts), a few columns and its
/// sky position.
fn card(shown: &Shown, thumbs: &mut Thumbs, gid: &str, score: Option<f64>) -> Result<Card> {
    let row = shown.row_of.get(gid).copied();
    let image = match (&shown.images, row) {
        (Some(paths), Some(r)) => Some(match &paths[r] {
            Some(p) => thumbs.write(p)?,
            None => Err("no cutout".to_owned()),
        }),
        _ => None,
    };
    let fields = match row {
        Some(r) => shown
            .columns
            .iter()
            .map(|(n, v)| (n.clone(), v[r].clone().unwrap_or_default()))
            .collect(),
        None => Vec::new(),
    };
    let sky = match (row, &shown.ra, &shown.dec) {
        (Some(r), Some(ra), Some(dec)) => ra[r].zip(dec[r]),
        _ => None,
    };
    Ok(Card {
        id: gid.to_owned(),
        score,
        image,
        fields,
        sky,
    })
}
