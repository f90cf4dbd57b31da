//! What the explorer serves, built once before the socket is bound: the pipeline's nodes run
//! (or found in the cache), the layout and classes joined into the points the page draws,
//! the class table, the catalogue without its representation, the representation's
//! [`Searcher`] (its vectors by memory map), and the label log open for appending. Every
//! request reads this; only the label log changes, under its lock.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use polars::prelude::*;

use super::Options;
use crate::cache::Store;
use crate::error::{Error, Result};
use crate::exec::{self, Observer};
use crate::labels;
use crate::ops::similar::{Searcher, Similar};
use crate::ops::{columns, pl, Op};
use crate::spec::{self, Pipeline};

/// The hidden node `serve` adds to the pipeline so that validation makes the vectors node
/// `_serve.vectors` over the features (the one `dagrun similar` makes too: the same key);
/// it never runs.
const PROBE: &str = "_serve";

/// The nodes the page is built from.
#[derive(Clone, Debug)]
pub struct Nodes {
    pub classes: String,
    pub catalogue: String,
    pub layout: String,
    pub features: String,
}

/// Each catalogue row's `ra` and `dec` (degrees).
type Sky = (Vec<Option<f64>>, Vec<Option<f64>>);

/// Everything a request reads.
pub struct App {
    pub pipeline: String,
    pub id: String,
    pub nodes: Nodes,
    /// The layout's rows: ids, positions and classes in the order `/api/points` sends them.
    pub ids: Vec<String>,
    pub x: Vec<f32>,
    pub y: Vec<f32>,
    pub class: Vec<i32>,
    pub probability: Vec<Option<f64>>,
    row_of: HashMap<String, usize>,
    /// The catalogue without the representation, and each layout row's row in it.
    catalogue: DataFrame,
    catalogue_row: Vec<Option<usize>>,
    image_column: Option<String>,
    image_dir: Option<PathBuf>,
    sky: Option<Sky>,
    pub truth: Option<String>,
    /// `/api/classes`, made once.
    pub classes_json: serde_json::Value,
    pub searcher: Searcher,
    /// One search at a time, first come first served: each already uses every core, so
    /// queueing them keeps the order fair and the tail short under many clients.
    pub search_slot: std::sync::Arc<tokio::sync::Semaphore>,
    pub labels: Mutex<labels::Writer>,
    pub token: Option<String>,
    pub addr: Option<SocketAddr>,
    /// Results a search returns unless asked.
    pub k: u32,
}

/// A galaxy the request named that the page does not hold.
#[derive(Debug)]
pub struct Unknown(pub String);

/// The pipeline at `path` as the page needs it, and the nodes it is built from: the same
/// pipeline with a `similar` node over the features, never run, so that validation adds the
/// `vectors` node it reads. Nothing runs and nothing is written.
pub fn prepare(path: &Path, sets: &[String], opt: &Options) -> Result<(Pipeline, Nodes)> {
    let nodes = choose_nodes(&spec::load(path, sets)?, opt)?;
    let mut raw = spec::load_raw(path, sets, &[])?;
    let probe = vec![
        ("op", "similar".into()),
        ("input", nodes.features.as_str().into()),
        ("ids", toml::Value::Array(vec!["-".into()])),
    ];
    spec::raw::add_node(
        &mut raw,
        PROBE,
        crate::error::Loc::Whole(path.to_owned()),
        probe,
    )?;
    Ok((spec::validate::validate(raw)?, nodes))
}

impl App {
    /// Run (or find) the `nodes` of `p` (from [`prepare`]) in `store` and build the state.
    /// Also returns the label log's warning, if its last line was torn.
    pub fn load(
        p: &Pipeline,
        nodes: Nodes,
        store: &Store,
        opt: &Options,
        obs: &dyn Observer,
    ) -> Result<(App, Option<String>)> {
        let vectors = format!("{PROBE}.vectors");
        let wanted = [&nodes.classes, &nodes.catalogue, &nodes.layout, &vectors];
        let targets: Vec<usize> = wanted
            .iter()
            .map(|n| p.find(n).expect("chosen from the pipeline"))
            .collect();
        let report = exec::run(p, store, obs, &targets)?;
        let key = |n: &str| report.node(n).expect("ran").key.clone();

        let layout = read_layout(store, &key(&nodes.layout), p, &nodes.layout)?;
        let classes = read_classes(store, &key(&nodes.classes), p, &nodes.classes, &layout)?;
        let cat_node = p.find(&nodes.catalogue).expect("chosen");
        let cat = read_catalogue(store, &key(&nodes.catalogue), p, cat_node, &layout.ids)?;

        // The representation, by memory map.
        let vkey = key(&vectors);
        let vtable = store.read(&vkey, &vectors)?;
        let searcher = Searcher::open(
            &vtable,
            &store.attachment_path(&vkey, crate::ops::similar::VECTORS_FILE),
            &p.id,
            &vectors,
        )?;

        let details = store
            .manifest(&key(&nodes.classes))
            .map(|m| m.details)
            .unwrap_or_default();
        let labels_path = opt.labels.clone().unwrap_or_else(|| default_log(&p.file));
        let (writer, torn) = labels::Writer::open(&labels_path)?;
        // gc keeps what these labels were given against while the log exists.
        store.add_label_root(
            &labels_path,
            report.nodes.iter().map(|n| n.key.clone()).collect(),
        )?;
        let mut app = App {
            pipeline: p.name.clone(),
            id: p.id.clone(),
            image_dir: p.source_dir(cat_node),
            nodes,
            ids: layout.ids,
            x: layout.x,
            y: layout.y,
            class: classes.class,
            probability: classes.probability,
            row_of: layout.row_of,
            catalogue: cat.table,
            catalogue_row: cat.row,
            image_column: cat.image_column,
            sky: cat.sky,
            truth: cat.truth,
            classes_json: serde_json::Value::Null,
            searcher,
            search_slot: std::sync::Arc::new(tokio::sync::Semaphore::new(1)),
            labels: Mutex::new(writer),
            token: opt.token.clone(),
            addr: None,
            k: 50,
        };
        app.classes_json = app.class_table(&details)?;
        Ok((app, torn))
    }

    /// The state, told the address it serves on (for the URL and the Host check).
    pub fn bound_to(mut self, addr: SocketAddr) -> App {
        self.addr = Some(addr);
        self
    }

    /// The URL to open (with the token where there is one).
    pub fn url(&self) -> String {
        let addr = self.addr.expect("bound");
        let host = if addr.ip().is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            addr.ip().to_string()
        };
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        match &self.token {
            Some(t) => format!("http://{host}:{}/?token={t}", addr.port()),
            None => format!("http://{host}:{}/", addr.port()),
        }
    }

    /// The layout row of a galaxy.
    pub fn row(&self, id: &str) -> std::result::Result<usize, Unknown> {
        self.row_of
            .get(id)
            .copied()
            .ok_or_else(|| Unknown(id.to_owned()))
    }

    /// The label log's path, as shown.
    pub fn label_log(&self) -> String {
        let labels = self.labels.lock().unwrap_or_else(|e| e.into_inner());
        labels.path().display().to_string()
    }

    /// `/api/info`.
    pub fn info(&self) -> serde_json::Value {
        let log = self.label_log();
        serde_json::json!({
            "pipeline": self.pipeline, "id": self.id, "n": self.ids.len(),
            "layout": self.nodes.layout, "classes": self.nodes.classes, "features": self.nodes.features, "catalogue": self.nodes.catalogue,
            "has_images": self.image_column.is_some(), "has_sky": self.sky.is_some(), "truth": self.truth,
            "labels_file": log, "k": self.k,
        })
    }

    /// `/api/points`: `DGRNPTS1`, n (u64), x, y (f32), class (i32), then the ids as JSON.
    pub fn points(&self) -> Vec<u8> {
        let n = self.ids.len();
        let mut b = Vec::with_capacity(16 + 12 * n + 12 * n);
        b.extend_from_slice(b"DGRNPTS1");
        b.extend_from_slice(&(n as u64).to_le_bytes());
        for v in self.x.iter().chain(&self.y) {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for c in &self.class {
            b.extend_from_slice(&c.to_le_bytes());
        }
        serde_json::to_writer(&mut b, &self.ids).expect("ids serialise");
        b
    }

    /// The class table: size, persistence and stability (from the classes node's details),
    /// mean probability, the truth's most common value and its share, the colour.
    fn class_table(&self, details: &serde_json::Value) -> Result<serde_json::Value> {
        let k = self
            .class
            .iter()
            .copied()
            .max()
            .map_or(0, |m| (m + 1).max(0)) as usize;
        let mut rows: Vec<Vec<usize>> = vec![Vec::new(); k];
        for (r, &c) in self.class.iter().enumerate() {
            if c >= 0 {
                rows[c as usize].push(r);
            }
        }
        let truth: Option<Vec<Option<String>>> = match &self.truth {
            Some(t) => {
                let c = self
                    .catalogue
                    .column(t)
                    .map_err(pl(&self.nodes.catalogue))?;
                let s = c.str().map_err(pl(&self.nodes.catalogue))?;
                Some(
                    self.catalogue_row
                        .iter()
                        .map(|r| r.and_then(|r| s.get(r)).map(str::to_owned))
                        .collect(),
                )
            }
            None => None,
        };
        let stat = |l: usize, what: &str| {
            details
                .get("classes")
                .and_then(|c| c.get(l))
                .and_then(|c| c.get(what))
                .cloned()
                .unwrap_or(serde_json::Value::Null)
        };
        let classes: Vec<serde_json::Value> = rows
            .iter()
            .enumerate()
            .map(|(l, members)| {
                let ps: Vec<f64> = members.iter().filter_map(|&r| self.probability[r]).collect();
                let mean_p = (!ps.is_empty()).then(|| ps.iter().sum::<f64>() / ps.len() as f64);
                let truth = truth.as_ref().and_then(|t| {
                    let (v, c) = commonest(t, members)?;
                    Some(serde_json::json!({ "value": v, "share": c as f64 / members.len() as f64 }))
                });
                serde_json::json!({
                    "label": l, "size": members.len(), "persistence": stat(l, "persistence"), "stability": stat(l, "stability"),
                    "mean_probability": mean_p, "truth": truth, "colour": crate::render::hex(crate::render::class_colour(l as i32)),
                })
            })
            .collect();
        let clustered: usize = rows.iter().map(Vec::len).sum();
        Ok(serde_json::json!({ "n": self.ids.len(), "clustered": clustered, "classes": classes }))
    }

    /// `/api/galaxy/ID`.
    pub fn galaxy(&self, id: &str) -> std::result::Result<serde_json::Value, Unknown> {
        let row = self.row(id)?;
        let mut cols = serde_json::Map::new();
        if let Some(r) = self.catalogue_row[row] {
            for c in self.catalogue.columns() {
                if c.name().as_str() == self.id {
                    continue;
                }
                let v = c.get(r).map(any_to_json).unwrap_or(serde_json::Value::Null);
                cols.insert(c.name().to_string(), v);
            }
        }
        let cutout = self
            .image_path(row)
            .map(|_| format!("/api/cutout/{}", encode_path(id)));
        let sky = self.sky.as_ref().and_then(|(ra, dec)| {
            let r = self.catalogue_row[row]?;
            let (ra, dec) = (ra[r]?, dec[r]?);
            Some(serde_json::json!({ "ra": ra, "dec": dec, "viewer": format!("https://www.legacysurvey.org/viewer?ra={ra:.6}&dec={dec:.6}&layer=ls-dr10&zoom=16") }))
        });
        let labels: Vec<String> = self
            .labels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .labels()
            .get(id)
            .map(str::to_owned)
            .into_iter()
            .collect();
        Ok(serde_json::json!({
            "id": id, "row": row, "class": self.class[row], "probability": self.probability[row],
            "columns": cols, "cutout": cutout, "sky": sky, "labels": labels,
        }))
    }

    /// The image file of a layout row, where the catalogue names one.
    pub fn image_path(&self, row: usize) -> Option<PathBuf> {
        let col = self.image_column.as_ref()?;
        let r = self.catalogue_row[row]?;
        let v = self.catalogue.column(col).ok()?.get(r).ok()?;
        let s = match v {
            AnyValue::String(s) => s.to_owned(),
            AnyValue::StringOwned(s) => s.to_string(),
            _ => return None,
        };
        (!s.is_empty()).then(|| crate::ops::resolve_path(self.image_dir.as_deref(), &s))
    }

    /// `/api/similar`: the galaxies most like `ids` (against `not`), as `dagrun similar --json`.
    pub fn similar(&self, ids: Vec<String>, not: Vec<String>, k: u32) -> Result<serde_json::Value> {
        let q = Similar::query(ids, not, k);
        let found = self
            .searcher
            .search(&q, None, &self.id, &self.nodes.features)?;
        let results: Vec<serde_json::Value> = found
            .rows
            .iter()
            .zip(&found.scores)
            .map(|(&r, s)| serde_json::json!({ "id": self.searcher.id(r), "score": s }))
            .collect();
        Ok(serde_json::json!({
            "node": self.nodes.features,
            "query": { "ids": q.ids, "not": q.not, "class": null, "classes": null, "k": k },
            "results": results,
        }))
    }

    /// `/api/labels`.
    pub fn labels_json(&self) -> serde_json::Value {
        let w = self.labels.lock().unwrap_or_else(|e| e.into_inner());
        let l = w.labels();
        let labels: Vec<serde_json::Value> = l
            .iter()
            .map(|(id, label)| serde_json::json!({ "id": id, "label": label }))
            .collect();
        let names: Vec<serde_json::Value> = l
            .counts()
            .into_iter()
            .map(|(label, count)| serde_json::json!({ "label": label, "count": count }))
            .collect();
        serde_json::json!({ "labels": labels, "names": names })
    }

    /// The labelled galaxies with the catalogue columns matching `globs`: id, label, columns.
    pub fn export(&self, globs: &[String]) -> Result<DataFrame> {
        let fold = self
            .labels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .labels()
            .clone();
        export_table(
            &self.catalogue,
            &self.id,
            &fold,
            globs,
            &self.nodes.catalogue,
        )
    }
}

/// The layout's rows, in row order.
struct Layout {
    ids: Vec<String>,
    x: Vec<f32>,
    y: Vec<f32>,
    /// Each id's row.
    row_of: HashMap<String, usize>,
}

/// The layout node `node` (entry `key`): its ids and its two numeric columns.
fn read_layout(store: &Store, key: &str, p: &Pipeline, node: &str) -> Result<Layout> {
    let layout = store.read(key, node)?;
    let dims: Vec<String> = layout
        .schema()
        .iter()
        .filter(|(n, dt)| n.as_str() != p.id && columns::is_numeric(dt))
        .map(|(n, _)| n.to_string())
        .collect();
    let f32s = |name: &str| -> Result<Vec<f32>> {
        let c = layout
            .column(name)
            .and_then(|c| c.cast(&DataType::Float32))
            .map_err(pl(node))?;
        Ok(c.f32()
            .map_err(pl(node))?
            .iter()
            .map(|v| v.unwrap_or(f32::NAN))
            .collect())
    };
    let (x, y) = (f32s(&dims[0])?, f32s(&dims[1])?);
    let ids = columns::strings(&layout, &p.id, node)?;
    let row_of: HashMap<String, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, s)| (s.clone(), i))
        .collect();
    Ok(Layout { ids, x, y, row_of })
}

/// Each layout row's class and probability.
struct Classes {
    /// -1 where the classes node has no row for the id.
    class: Vec<i32>,
    probability: Vec<Option<f64>>,
}

/// The classes node `node` (entry `key`), by id onto the `layout`'s rows.
fn read_classes(
    store: &Store,
    key: &str,
    p: &Pipeline,
    node: &str,
    layout: &Layout,
) -> Result<Classes> {
    let classes = store.read(key, node)?;
    let cid = columns::strings(&classes, &p.id, node)?;
    let lab = classes
        .column("label")
        .and_then(|c| c.cast(&DataType::Int32))
        .map_err(pl(node))?;
    let prob = classes
        .column("probability")
        .and_then(|c| c.cast(&DataType::Float64))
        .map_err(pl(node))?;
    let (lab, prob) = (lab.i32().map_err(pl(node))?, prob.f64().map_err(pl(node))?);
    let mut class = vec![-1i32; layout.ids.len()];
    let mut probability = vec![None; layout.ids.len()];
    for (i, g) in cid.iter().enumerate() {
        if let Some(&r) = layout.row_of.get(g) {
            class[r] = lab.get(i).unwrap_or(-1);
            probability[r] = prob.get(i);
        }
    }
    Ok(Classes { class, probability })
}

/// The catalogue as the page reads it.
struct Catalogue {
    /// Its columns but the representation (`feat_*`).
    table: DataFrame,
    /// Each layout row's row in it.
    row: Vec<Option<usize>>,
    /// `file_loc`, where it has the column.
    image_column: Option<String>,
    sky: Option<Sky>,
    /// `planted_class`, where it has the column as text.
    truth: Option<String>,
}

/// The catalogue node `v` of `p` (entry `key`) without the representation, its rows
/// matched to the layout's `ids`.
fn read_catalogue(
    store: &Store,
    key: &str,
    p: &Pipeline,
    v: usize,
    ids: &[String],
) -> Result<Catalogue> {
    let node = &p.nodes[v].name;
    let keep: Vec<String> = p.nodes[v]
        .schema
        .iter_names()
        .filter(|n| !columns::glob_match("feat_*", n))
        .map(|n| n.to_string())
        .collect();
    let catalogue = store.read_columns(key, node, Some(keep))?;
    let cat_ids = columns::strings(&catalogue, &p.id, node)?;
    let cat_row_of: HashMap<&str, usize> = cat_ids
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    let row = ids
        .iter()
        .map(|g| cat_row_of.get(g.as_str()).copied())
        .collect();
    let image_column = catalogue
        .schema()
        .contains("file_loc")
        .then(|| "file_loc".to_owned());
    let sky = read_sky(&catalogue, node)?;
    let truth = catalogue
        .schema()
        .get("planted_class")
        .filter(|dt| **dt == DataType::String)
        .map(|_| "planted_class".to_owned());
    Ok(Catalogue {
        table: catalogue,
        row,
        image_column,
        sky,
        truth,
    })
}

/// The catalogue's `ra` and `dec` as floats, where it has both.
fn read_sky(catalogue: &DataFrame, node: &str) -> Result<Option<Sky>> {
    Ok(match (catalogue.column("ra"), catalogue.column("dec")) {
        (Ok(ra), Ok(dec)) => {
            let f = |c: &Column| -> Result<Vec<Option<f64>>> {
                Ok(c.cast(&DataType::Float64)
                    .map_err(pl(node))?
                    .f64()
                    .map_err(pl(node))?
                    .iter()
                    .collect())
            };
            Some((f(ra)?, f(dec)?))
        }
        _ => None,
    })
}

/// The labelled rows of `catalogue` as `id, label, COLUMNS…` (columns matching `globs`, in
/// the catalogue's order).
pub fn export_table(
    catalogue: &DataFrame,
    id: &str,
    fold: &labels::Labels,
    globs: &[String],
    node: &str,
) -> Result<DataFrame> {
    let (df, _) = crate::ops::labels::labelled(catalogue, id, fold, node)?;
    let mut keep: Vec<PlSmallStr> = vec![id.into(), "label".into()];
    for name in catalogue.get_column_names() {
        if name.as_str() != id
            && name.as_str() != "label"
            && globs.iter().any(|g| columns::glob_match(g, name))
        {
            keep.push(name.clone());
        }
    }
    df.select(keep).map_err(|e| Error::polars(node, e))
}

/// The label log beside a pipeline file: `featured.toml` -> `featured.labels.jsonl`.
pub fn default_log(pipeline: &Path) -> PathBuf {
    let stem = pipeline
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pipeline".into());
    pipeline.with_file_name(format!("{stem}.labels.jsonl"))
}

/// Which nodes the page is built from (see [`Options`]).
pub fn choose_nodes(p: &Pipeline, opt: &Options) -> Result<Nodes> {
    let start = match &opt.node {
        Some(n) => find_node(p, n, "--node")?,
        None => first_report(p)?,
    };
    let from = from_start(p, start)?;
    let layout = match (&opt.layout, from.layout) {
        (Some(l), _) => find_node(p, l, "--layout")?,
        (None, Some(l)) => l,
        (None, None) => only_2d_layout(p)?,
    };
    let dims = p.nodes[layout]
        .schema
        .iter()
        .filter(|(n, dt)| n.as_str() != p.id && columns::is_numeric(dt))
        .count();
    if dims != 2 {
        return Err(Error::Usage(format!("`{}` has {dims} numeric columns, not 2: the page draws a 2-D layout (a reduce node with n_components = 2)", p.nodes[layout].name)));
    }
    // Without a report, the catalogue is what the layout was reduced from.
    let catalogue = match from.catalogue {
        Some(c) => c,
        None => p.nodes[layout].inputs[0],
    };
    let features = match &opt.features {
        Some(f) => find_node(p, f, "--features")?,
        None => default_features(p, catalogue, layout)?,
    };
    if !has_features(p, features) {
        return Err(Error::Usage(format!(
            "`--features {}`: the node has no `feat_*` columns",
            p.nodes[features].name
        )));
    }
    let name = |v: usize| p.nodes[v].name.clone();
    Ok(Nodes {
        classes: name(from.classes),
        catalogue: name(catalogue),
        layout: name(layout),
        features: name(features),
    })
}

/// The node named `n`, given with the option `what`.
fn find_node(p: &Pipeline, n: &str, what: &str) -> Result<usize> {
    p.find(n).ok_or_else(|| {
        Error::Usage(format!(
            "`{what} {n}`: no node named `{n}` in `{}` (nodes: {})",
            p.file.display(),
            p.names()
        ))
    })
}

/// The commonest value of `values` over the rows `members` and its count (ties: the first
/// in order), or `None` where none of them has one.
fn commonest<'v>(values: &'v [Option<String>], members: &[usize]) -> Option<(&'v str, usize)> {
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for &r in members {
        if let Some(v) = &values[r] {
            *counts.entry(v).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
}

/// The first report node with a layout (three inputs), the page's default.
fn first_report(p: &Pipeline) -> Result<usize> {
    let with_layout =
        |&v: &usize| matches!(p.nodes[v].op, Op::Report(_)) && p.nodes[v].inputs.len() == 3;
    p.order.iter().copied().find(with_layout).ok_or_else(|| {
        Error::Usage(format!("`{}` has no report node with a layout: give `--node` a select-leaves or select-eom node and `--layout` a 2-D reduce node", p.file.display()))
    })
}

/// What the page's start node gives.
struct Start {
    classes: usize,
    /// `None`: not given (a select node).
    catalogue: Option<usize>,
    layout: Option<usize>,
}

/// The nodes a start node gives: a report's inputs, or a select node as the classes.
fn from_start(p: &Pipeline, start: usize) -> Result<Start> {
    match &p.nodes[start].op {
        Op::Report(_) => Ok(Start {
            classes: p.nodes[start].inputs[0],
            catalogue: Some(p.nodes[start].inputs[1]),
            layout: p.nodes[start].inputs.get(2).copied(),
        }),
        Op::Select(_) => Ok(Start {
            classes: start,
            catalogue: None,
            layout: None,
        }),
        other => Err(Error::Usage(format!(
            "`--node {}`: a `{}` node; give a report node or a select-leaves / select-eom node",
            p.nodes[start].name,
            other.name()
        ))),
    }
}

/// The pipeline's one 2-D reduce node; an error where it has none or several.
fn only_2d_layout(p: &Pipeline) -> Result<usize> {
    let is_2d = |v: usize| matches!(&p.nodes[v].op, Op::Reduce(r) if r.n_components == 2);
    let twos: Vec<usize> = p.order.iter().copied().filter(|&v| is_2d(v)).collect();
    match twos.as_slice() {
        [one] => Ok(*one),
        [] => Err(Error::Usage(format!("`{}` has no 2-D layout: add a reduce node with n_components = 2 and give it as `--layout`", p.file.display()))),
        many => Err(Error::Usage(format!("several 2-D layouts ({}): choose one with `--layout`", many.iter().map(|&v| p.nodes[v].name.clone()).collect::<Vec<_>>().join(", ")))),
    }
}

/// The node `similar` searches unless told: the catalogue, else what the layout was
/// reduced from, whichever has `feat_*` columns first.
fn default_features(p: &Pipeline, catalogue: usize, layout: usize) -> Result<usize> {
    if has_features(p, catalogue) {
        Ok(catalogue)
    } else if has_features(p, p.nodes[layout].inputs[0]) {
        Ok(p.nodes[layout].inputs[0])
    } else {
        Err(Error::Usage(format!(
            "neither `{}` nor `{}` has `feat_*` columns to search: name the representation's node with `--features`",
            p.nodes[catalogue].name,
            p.nodes[p.nodes[layout].inputs[0]].name
        )))
    }
}

/// Whether node `v` has the representation's `feat_*` columns.
fn has_features(p: &Pipeline, v: usize) -> bool {
    p.nodes[v]
        .schema
        .iter_names()
        .any(|n| columns::glob_match("feat_*", n))
}

/// A polars value as JSON (non-finite floats as null).
fn any_to_json(v: AnyValue) -> serde_json::Value {
    use serde_json::Value;
    match v {
        AnyValue::Null => Value::Null,
        AnyValue::Boolean(b) => Value::Bool(b),
        AnyValue::String(s) => Value::String(s.to_owned()),
        AnyValue::StringOwned(s) => Value::String(s.to_string()),
        AnyValue::Float32(f) => {
            serde_json::Number::from_f64(f64::from(f)).map_or(Value::Null, Value::Number)
        }
        AnyValue::Float64(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        AnyValue::Int8(i) => i.into(),
        AnyValue::Int16(i) => i.into(),
        AnyValue::Int32(i) => i.into(),
        AnyValue::Int64(i) => i.into(),
        AnyValue::UInt8(i) => i.into(),
        AnyValue::UInt16(i) => i.into(),
        AnyValue::UInt32(i) => i.into(),
        AnyValue::UInt64(i) => i.into(),
        other => Value::String(other.to_string()),
    }
}

/// Percent-encode an id for a URL path segment.
pub fn encode_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quickstart(sets: &[&str]) -> Pipeline {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        spec::load(Path::new("pipelines/quickstart.toml"), &sets).expect("quickstart loads")
    }

    fn chosen(n: &Nodes) -> [&str; 4] {
        [&n.classes, &n.catalogue, &n.layout, &n.features].map(String::as_str)
    }

    fn refused(p: &Pipeline, opt: &Options) -> String {
        match choose_nodes(p, opt) {
            Err(Error::Usage(m)) => m,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn the_report_or_a_select_node_gives_the_page_its_nodes() {
        let p = quickstart(&[]);
        let n = choose_nodes(&p, &Options::default()).unwrap();
        assert_eq!(chosen(&n), ["classes", "featured", "display", "featured"]);
        // A select node: the one 2-D layout, and the catalogue it was reduced from.
        let select = Options {
            node: Some("classes".into()),
            ..Default::default()
        };
        let n = choose_nodes(&p, &select).unwrap();
        assert_eq!(chosen(&n), ["classes", "featured", "display", "featured"]);
        let elsewhere = Options {
            features: Some("catalog".into()),
            ..Default::default()
        };
        let n = choose_nodes(&p, &elsewhere).unwrap();
        assert_eq!(n.features, "catalog");
    }

    #[test]
    fn the_page_refuses_nodes_it_cannot_draw_or_search() {
        let p = quickstart(&[]);
        let with = |node: Option<&str>, layout: Option<&str>, features: Option<&str>| Options {
            node: node.map(str::to_owned),
            layout: layout.map(str::to_owned),
            features: features.map(str::to_owned),
            ..Default::default()
        };
        let m = refused(&p, &with(Some("umap"), None, None));
        assert!(m.starts_with("`--node umap`: a `reduce` node"), "{m}");
        let m = refused(&p, &with(None, Some("nope"), None));
        assert!(
            m.starts_with("`--layout nope`: no node named `nope`"),
            "{m}"
        );
        let m = refused(&p, &with(None, Some("umap"), None));
        assert!(m.starts_with("`umap` has 5 numeric columns, not 2"), "{m}");
        let m = refused(&p, &with(None, None, Some("umap")));
        assert_eq!(m, "`--features umap`: the node has no `feat_*` columns");
        let two = quickstart(&["umap.n_components=2"]);
        let m = refused(&two, &with(Some("classes"), None, None));
        assert_eq!(
            m,
            "several 2-D layouts (umap, display): choose one with `--layout`"
        );
        let n = choose_nodes(&two, &with(Some("classes"), Some("umap"), None)).unwrap();
        assert_eq!(chosen(&n), ["classes", "featured", "umap", "featured"]);
    }
}
