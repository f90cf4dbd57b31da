//! `assign`: place new galaxies into the classes a search found. `inputs = ["NEW",
//! "CLASSES"]`: NEW has the search's feature columns; CLASSES is a `select-leaves` or
//! `select-eom` node over a `cluster` node over a UMAP `reduce`. Validation finds that
//! chain and adds, as hidden inputs, the cluster's condensed tree, the layout,
//! `NODE.index` (a search index over the fitted features: their kNN graph and
//! random-projection trees, kept as a file beside its table and read by memory map) and
//! `NODE.core` (the layout's core distances), each cached on its own, so repeated
//! assignments reuse the fit.
//!
//! For each new galaxy: its `n_neighbors` nearest fitted galaxies (an index over the
//! fitted features and their kNN graph, [`crate::numeric::search`]), its position by
//! UMAP's transform ([`crate::numeric::umap::transform`]), and its class by HDBSCAN's
//! approximate prediction with `cluster`'s core-distance convention
//! ([`crate::numeric::predict`]).
//!
//! A galaxy's result depends only on its features and the fit: not on its id, the other
//! rows of NEW, their order or the thread count (its negative samples come from a stream
//! keyed by the bytes of its feature values, so renaming a galaxy never moves it). A
//! galaxy already in the fit (same id, same feature values) gets exactly its fitted
//! position, label, probability and outlier score.
//!
//! Output, in NEW's order: the id, the layout's columns, `label` (−1 = none),
//! `probability`, `outlier_score`, `nearest_{id}` and `nearest_distance` (the nearest
//! fitted galaxy in the feature space, in the metric's units).
//!
//! Parameters: `n_epochs` (100; umap-learn's transform takes 30 for a large batch, but at 30
//! a label depends on the random stream more often than umap-learn's: see
//! `benches/assign_stability.py` and pipelines/README.md), `seed` (0).

use std::collections::HashMap;

use polars::prelude::*;
use rayon::prelude::*;
use serde::Serialize;

use super::{
    cluster::Cluster, columns, reduce::Reduce, select::Select, Output, RunCtx, SchemaError,
    SchemaResult,
};
use crate::error::{Error, Result};
use crate::numeric::hdbscan::{self, ClusterStats, CondensedTree, Labelling};
use crate::numeric::kdtree::KdTree;
use crate::numeric::rng::Rng;
use crate::numeric::umap::transform::{self, Transform};
use crate::numeric::{knn, predict, search, umap};

/// Defaults of the hidden `index` node.
pub const SEARCH_TREES: u32 = 2;
pub const SEARCH_REVERSE: u32 = 16;
use super::draft::Draft;
use crate::params::Params;

pub const VERSION: u32 = 4;

/// The feature-space search's stopping slack (0: stop once the nearest unexpanded point is
/// further than the k-th found). With the index's 2 trees and 16 reverse edges, on 100k new
/// galaxies against 632k fitted ones: recall of the 50 nearest 0.9994.
const SEARCH_EPSILON: f32 = 0.0;

/// Input positions after validation.
pub const NEW: usize = 0;
pub const CLASSES: usize = 1;
pub const TREE: usize = 2;
pub const LAYOUT: usize = 3;
pub const INDEX: usize = 4;
pub const CORE: usize = 5;

/// The attachment of an `index` node.
pub const INDEX_FILE: &str = "index.bin";

/// An `assign` node once validation has found the search it assigns into (see
/// [`AssignDraft`], the form a pipeline file is parsed into).
#[derive(Clone, Debug, Serialize)]
pub struct Assign {
    pub n_epochs: u32,
    pub seed: u64,
    /// The fitted search.
    pub fit: FitSpec,
}

/// An `assign` node as its pipeline file writes it: its parameters, before validation finds
/// the search it assigns into and makes it an [`Assign`] (its [`super::Kind::expand`]).
#[derive(Clone, Debug, Serialize)]
pub struct AssignDraft {
    pub n_epochs: u32,
    pub seed: u64,
}

/// What `assign` needs to know of the search it assigns into.
#[derive(Clone, Debug, Serialize)]
pub struct FitSpec {
    pub reduce: Reduce,
    pub cluster: Cluster,
    pub select: Select,
    pub selection: String,
    /// The fitted feature columns, resolved by validation.
    pub features: Vec<String>,
}

/// The search above an `assign` node's CLASSES input: its fit, and the nodes it reads.
struct Chain {
    fit: FitSpec,
    /// The `cluster` node (its condensed tree).
    tree: usize,
    /// The UMAP `reduce` node (the layout).
    layout: usize,
    /// The reduction's kNN node.
    knn: usize,
}

/// `NODE.index`: a search index over the fitted features (rows in the kNN node's locality
/// order, their kNN graph with reverse edges, random-projection trees), as one file.
#[derive(Clone, Debug, Serialize)]
pub struct Index {
    pub columns: Vec<String>,
    pub metric: super::reduce::Metric,
    pub trees: u32,
    pub reverse: u32,
}

/// `NODE.core`: the core distance of each row of a layout (`cluster`'s convention).
#[derive(Clone, Debug, Serialize)]
pub struct Core {
    pub columns: Vec<String>,
    pub min_samples: u32,
}

impl AssignDraft {
    pub fn parse(p: &mut Params) -> Result<Self> {
        let n_epochs = p.int_in("n_epochs", Some(100), 1, 100_000)? as u32;
        let seed = p.int_in("seed", Some(0), 0, i64::MAX)? as u64;
        Ok(AssignDraft { n_epochs, seed })
    }
}

impl Chain {
    /// The search above node `v`'s CLASSES input: its fit, and the tree, layout and kNN
    /// nodes.
    fn find(v: usize, draft: &Draft) -> Result<Chain> {
        let chain_error = |what: String| {
            let usage = "`assign` takes `inputs = [\"NEW\", \"CLASSES\"]`, CLASSES a select-leaves or select-eom node over a `cluster` node over a `reduce` with method \"umap\"";
            draft.input_error(v, "inputs", format!("{what}: {usage}"))
        };
        let node = |u: usize| &draft.nodes[u];
        let classes = node(v).inputs[1];
        let super::Op::Select(select) = &node(classes).op else {
            let (name, op) = (&node(classes).name, node(classes).op.name());
            return Err(chain_error(format!(
                "input `{name}` is a `{op}` node, not a select-leaves or select-eom node"
            )));
        };
        let tree = node(classes).inputs[0];
        let super::Op::Cluster(cluster) = &node(tree).op else {
            let (name, op) = (&node(tree).name, node(tree).op.name());
            let by = &node(classes).name;
            return Err(chain_error(format!(
                "`{by}` selects from `{name}`, a `{op}` node, not a `cluster` node"
            )));
        };
        let layout = node(tree).inputs[0];
        let reduce = match &node(layout).op {
            super::Op::Reduce(r) if r.umap.is_some() => r,
            other => {
                let (by, name) = (&node(tree).name, &node(layout).name);
                return Err(chain_error(format!(
                    "`{by}` clusters `{name}`, a `{}` node, not a UMAP reduction",
                    other.name()
                )));
            }
        };
        // The reduction's inputs: its features, and the kNN node it added.
        let (features, knn) = (node(layout).inputs[0], node(layout).inputs[1]);
        let fit = FitSpec {
            reduce: reduce.clone(),
            cluster: cluster.clone(),
            select: select.clone(),
            selection: node(classes).op.name().to_string(),
            features: super::columns::resolve(&draft.schema(features), &reduce.columns)
                .map_err(|m| draft.input_error(v, "inputs", m))?,
        };
        Ok(Chain {
            fit,
            tree,
            layout,
            knn,
        })
    }
}

impl Assign {
    /// The fitted UMAP reduction's parameters.
    fn umap(&self) -> &super::reduce::Umap {
        self.fit
            .reduce
            .umap
            .as_ref()
            .expect("validation checks the reduction is UMAP")
    }

    fn layout_columns(&self) -> Vec<String> {
        let r = &self.fit.reduce;
        (0..r.n_components)
            .map(|i| format!("{}{i}", r.prefix))
            .collect()
    }

    pub fn schema(&self, inputs: &[SchemaRef], id: &str) -> SchemaResult<Schema> {
        let f = &self.fit;
        let fitted = &f.features;
        let new = columns::resolve(&inputs[NEW], &f.reduce.columns).map_err(|m| {
            SchemaError::new(
                "inputs",
                format!("the new galaxies lack the search's feature columns: {m}"),
            )
        })?;
        if new != *fitted {
            let missing: Vec<&String> = fitted.iter().filter(|c| !new.contains(c)).collect();
            let msg = if missing.is_empty() {
                format!("the new galaxies' columns matching `{}` are not the search's ({} columns, in another order or with extras)", f.reduce.columns.join(", "), fitted.len())
            } else {
                format!(
                    "the new galaxies lack {} of the search's feature columns (the first: `{}`)",
                    missing.len(),
                    missing[0]
                )
            };
            return Err(SchemaError::new("inputs", msg));
        }
        columns::require_numeric(&inputs[NEW], &new, id)
            .map_err(|m| SchemaError::new("inputs", m))?;
        let layout = self.layout_columns();
        let clustered = columns::resolve(&inputs[LAYOUT], &f.cluster.columns)
            .map_err(|m| SchemaError::new("inputs", m))?;
        if clustered != layout {
            return Err(SchemaError::new(
                "inputs",
                format!(
                    "the search's `cluster` node clusters `{}`, not the UMAP layout's columns `{}`: assign needs the clustering of the whole layout",
                    clustered.join(", "),
                    layout.join(", ")
                ),
            ));
        }
        let mut s = Schema::default();
        s.insert(
            id.into(),
            inputs[NEW].get(id).cloned().unwrap_or(DataType::Int64),
        );
        for c in &layout {
            s.insert(c.into(), DataType::Float32);
        }
        s.insert("label".into(), DataType::Int32);
        s.insert("probability".into(), DataType::Float64);
        s.insert("outlier_score".into(), DataType::Float64);
        s.insert(
            format!("nearest_{id}").into(),
            inputs[LAYOUT].get(id).cloned().unwrap_or(DataType::Int64),
        );
        s.insert("nearest_distance".into(), DataType::Float32);
        Ok(s)
    }

    pub fn run(&self, inputs: &[std::sync::Arc<DataFrame>], ctx: &RunCtx) -> Result<Output> {
        let t0 = std::time::Instant::now();
        let file = IndexFile::open(inputs, ctx)?;
        let fit = Fitted::load(self, &file, inputs, ctx)?;
        let t_fit = t0.elapsed().as_secs_f64();
        let known = Known::load(inputs, ctx, fit.n)?;
        let cosine = self.umap().metric == super::reduce::Metric::Cosine;
        let new = NewGalaxies::load(&inputs[NEW], &self.fit.features, cosine, ctx)?;
        let results = self.place(&fit, &known, &new, ctx);
        let seconds = Seconds {
            fit: t_fit,
            place: t0.elapsed().as_secs_f64() - t_fit,
        };
        let df = frame(&results, inputs, &fit.columns, ctx)?;
        Ok(self.output(df, &results, &fit, &known, seconds))
    }

    /// Each new galaxy's place in the search, in NEW's order: a galaxy already in the fit
    /// copies its fitted results; any other is placed by UMAP's transform and HDBSCAN's
    /// prediction.
    fn place(&self, fit: &Fitted, known: &Known, new: &NewGalaxies, ctx: &RunCtx) -> Vec<Placed> {
        let u = self.umap();
        let a_b = umap::find_ab(u.spread, u.min_dist);
        let placer = Placer {
            fit,
            predict: fit.predictor(),
            known,
            by_id: known.by_id(),
            new_ids: &new.ids,
            transform: Transform {
                a: a_b.0 as f32,
                b: a_b.1 as f32,
                n_epochs: self.n_epochs as usize,
                learning_rate: u.learning_rate,
                negative_sample_rate: u.negative_sample_rate as f64,
                local_connectivity: u.local_connectivity,
            },
            k: (u.n_neighbors as usize).min(fit.n),
            cosine: u.metric == super::reduce::Metric::Cosine,
            seed: self.seed,
        };
        let (d, m) = (new.d, new.ids.len());
        let q = &new.q;
        let bar = ctx.progress.bar(ctx.node, "assign", m as u64);
        // Galaxies close in the feature space read the same fitted rows: take them in the
        // index's leaf order (each result is the galaxy's own whatever the order).
        let mut order: Vec<(usize, usize)> = (0..m)
            .into_par_iter()
            .map(|r| (fit.index.locality(&q[r * d..(r + 1) * d]), r))
            .collect();
        order.sort_unstable();
        let done = std::sync::atomic::AtomicU64::new(0);
        let placed: Vec<Placed> = order
            .par_iter()
            .map_init(
                || fit.index.scratch(),
                |scratch, &(_, r)| {
                    let qr = &q[r * d..(r + 1) * d];
                    if done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 4096 == 4095 {
                        bar.inc(4096);
                    }
                    placer.place(r, qr, scratch)
                },
            )
            .collect();
        // Back to NEW's order (each row once).
        let mut by_row: Vec<(usize, Placed)> = order.iter().map(|o| o.1).zip(placed).collect();
        by_row.sort_unstable_by_key(|p| p.0);
        bar.finish();
        by_row.into_iter().map(|p| p.1).collect()
    }

    /// The summary lines and manifest details of a run that placed `results`.
    fn output(
        &self,
        df: DataFrame,
        results: &[Placed],
        fit: &Fitted,
        known: &Known,
        seconds: Seconds,
    ) -> Output {
        let (m, n) = (results.len(), fit.n);
        let classes = fit.classes.chosen.len();
        let copied = results.iter().filter(|p| p.fitted).count();
        let new_ones: Vec<&Placed> = results.iter().filter(|p| !p.fitted).collect();
        let in_class = new_ones.iter().filter(|p| p.label >= 0).count();
        let fit_in_class = known.label.iter().filter(|&&l| l >= 0).count();
        let mut per_class = vec![0usize; classes];
        for p in results.iter().filter(|p| p.label >= 0) {
            per_class[p.label as usize] += 1;
        }
        let pct = |a: usize, b: usize| 100.0 * a as f64 / b.max(1) as f64;
        let Seconds {
            fit: t_fit,
            place: t_new,
        } = seconds;
        let summary = vec![
            format!("{m} galaxies into a search of {n} ({classes} classes); {copied} already in it keep their fitted results"),
            format!(
                "{in_class} of {} new galaxies in a class ({:.2}%; the fit: {:.2}%), {} epochs each",
                new_ones.len(),
                pct(in_class, new_ones.len()),
                pct(fit_in_class, n),
                self.n_epochs
            ),
            format!("fit loaded and indexed {t_fit:.2}s, new galaxies placed {t_new:.2}s"),
        ];
        let mut o = Output::new(df, summary);
        o.details = serde_json::json!({
            "seconds": { "fit": t_fit, "place": t_new },
            "already_fitted": copied,
            "new_in_class": in_class,
            "per_class": per_class,
        });
        o
    }
}

/// How long the two phases of a run took, in seconds.
struct Seconds {
    /// Loading the fit and indexing its layout.
    fit: f64,
    /// Placing the new galaxies.
    place: f64,
}

/// The search index file (`NODE.index`'s attachment), mapped.
struct IndexFile {
    path: std::path::PathBuf,
    map: memmap2::Mmap,
}

impl IndexFile {
    /// Check that the search's tables agree on the number of galaxies, then map the index.
    fn open(inputs: &[std::sync::Arc<DataFrame>], ctx: &RunCtx) -> Result<IndexFile> {
        let node = ctx.node;
        let n = inputs[LAYOUT].height();
        if inputs[INDEX].height() != n || inputs[CORE].height() != n {
            return Err(Error::input(
                node,
                "the search's tables disagree on the number of galaxies (was the cache edited?)",
            ));
        }
        let path = ctx
            .input_files
            .get(INDEX)
            .map(|d| d.join(INDEX_FILE))
            .ok_or_else(|| Error::input(node, "the search index is not in the cache"))?;
        let file = std::fs::File::open(&path).map_err(|e| Error::io("cannot open", &path, e))?;
        // SAFETY: cache entries are immutable once published.
        let map =
            unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io("cannot map", &path, e))?;
        Ok(IndexFile { path, map })
    }
}

/// The fitted search as a run reads it: the index over its features, its layout, the
/// layout's core distances and KD-tree, and its classes.
struct Fitted<'m> {
    /// The number of fitted galaxies.
    n: usize,
    index: search::Index<'m>,
    /// The index row of each fitted row.
    rank: Vec<u32>,
    /// The layout's columns, and its rows (`n × columns.len()`).
    columns: Vec<String>,
    y: Vec<f32>,
    core: Vec<f32>,
    tree: KdTree,
    classes: Classes,
    min_samples: usize,
}

/// The condensed tree and the classes the select node chose in it.
struct Classes {
    condensed: CondensedTree,
    stats: ClusterStats,
    chosen: Vec<u32>,
    labelling: Labelling,
    /// The condensed-tree row of each fitted point.
    row_of: Vec<u32>,
}

impl<'m> Fitted<'m> {
    /// Read the index from `file` and the layout, core distances and condensed tree from
    /// the hidden inputs, checking they describe the same galaxies.
    fn load(
        a: &Assign,
        file: &'m IndexFile,
        inputs: &[std::sync::Arc<DataFrame>],
        ctx: &RunCtx,
    ) -> Result<Fitted<'m>> {
        let node = ctx.node;
        let n = inputs[LAYOUT].height();
        let cols = &a.fit.features;
        let path = &file.path;
        let index = search::Index::from_bytes(&file.map).map_err(|m| {
            Error::input(
                node,
                format!("`{}`: {m} (was the cache edited?)", path.display()),
            )
        })?;
        let d = index.dim();
        if index.n() != n || d != cols.len() {
            return Err(Error::input(
                node,
                format!(
                    "`{}` indexes {} rows of {d} columns, not the search's {n} of {}",
                    path.display(),
                    index.n(),
                    cols.len()
                ),
            ));
        }
        let mut rank = vec![0u32; n];
        for r in 0..n as u32 {
            rank[index.label(r) as usize] = r;
        }
        let columns = a.layout_columns();
        let y = columns::matrix_f32(&inputs[LAYOUT], &columns, node)?;
        let core = columns::matrix_f32(&inputs[CORE], &["core_distance".to_string()], node)?;
        let classes = Classes::load(&inputs[TREE], &a.fit.select, n, node)?;
        let tree = KdTree::build(&y, columns.len());
        Ok(Fitted {
            n,
            index,
            rank,
            columns,
            y,
            core,
            tree,
            classes,
            min_samples: a.fit.cluster.min_samples as usize,
        })
    }

    /// HDBSCAN's approximate prediction against this fit.
    fn predictor(&self) -> predict::Fit<'_> {
        let c = &self.classes;
        predict::Fit {
            tree: &self.tree,
            core: &self.core,
            min_samples: self.min_samples,
            condensed: &c.condensed,
            stats: &c.stats,
            labelling: &c.labelling,
            row_of: &c.row_of,
        }
    }
}

impl Classes {
    /// Read the condensed tree of a layout of `n` rows and select its classes as `select`
    /// does.
    fn load(tree: &DataFrame, select: &Select, n: usize, node: &str) -> Result<Classes> {
        let condensed = Select::tree(tree, node)?;
        if condensed.n_points != n {
            return Err(Error::input(
                node,
                format!(
                    "the condensed tree has {} points for a layout of {n} rows",
                    condensed.n_points
                ),
            ));
        }
        let stats = hdbscan::cluster_stats(&condensed);
        let sel = select.selection();
        let chosen = hdbscan::select(&condensed, &stats, &sel);
        let labelling = Labelling::new(&condensed, &stats, &chosen, &sel);
        let row_of = predict::rows_of_points(&condensed);
        Ok(Classes {
            condensed,
            stats,
            chosen,
            labelling,
            row_of,
        })
    }
}

/// The fitted galaxies' ids and classes (the CLASSES input), by layout row.
struct Known {
    ids: Vec<String>,
    label: Vec<i32>,
    probability: Vec<f64>,
    outlier: Vec<f64>,
}

impl Known {
    /// Read the fitted ids from the layout and their classes from CLASSES (`n` rows each).
    fn load(inputs: &[std::sync::Arc<DataFrame>], ctx: &RunCtx, n: usize) -> Result<Known> {
        let node = ctx.node;
        let ids = columns::strings(&inputs[LAYOUT], ctx.id, node)?;
        let classes = &inputs[CLASSES];
        if classes.height() != n {
            return Err(Error::input(
                node,
                format!(
                    "the classes table has {} rows for a layout of {n} rows",
                    classes.height()
                ),
            ));
        }
        let label: Vec<i32> = classes
            .column("label")
            .map_err(super::pl(node))?
            .i32()
            .map_err(super::pl(node))?
            .iter()
            .map(|v| v.unwrap_or(-1))
            .collect();
        Ok(Known {
            ids,
            label,
            probability: f64_column(classes, "probability", node)?,
            outlier: f64_column(classes, "outlier_score", node)?,
        })
    }

    /// The layout row of each fitted id.
    fn by_id(&self) -> HashMap<&str, usize> {
        self.ids
            .iter()
            .enumerate()
            .map(|(i, s)| (s.as_str(), i))
            .collect()
    }
}

/// The new galaxies (NEW): their ids and feature rows (unit rows under the cosine metric).
struct NewGalaxies {
    ids: Vec<String>,
    /// `ids.len() × d`.
    q: Vec<f32>,
    d: usize,
}

impl NewGalaxies {
    fn load(new: &DataFrame, cols: &[String], cosine: bool, ctx: &RunCtx) -> Result<Self> {
        let node = ctx.node;
        let ids = columns::strings(new, ctx.id, node)?;
        let d = cols.len();
        let mut q = columns::matrix_f32(new, cols, node)?;
        if cosine {
            columns::normalise_rows(&mut q, d, |r| {
                Err(Error::input(node, format!("galaxy `{}` has an all-zero representation: the cosine metric is undefined for it", ids[r])))
            })?;
        }
        Ok(NewGalaxies { ids, q, d })
    }
}

/// What places one new galaxy: the fit, its prediction, and the transform's parameters.
struct Placer<'a> {
    fit: &'a Fitted<'a>,
    predict: predict::Fit<'a>,
    known: &'a Known,
    by_id: HashMap<&'a str, usize>,
    new_ids: &'a [String],
    transform: Transform,
    /// Fitted neighbours per new galaxy (`n_neighbors`, at most the fit's size).
    k: usize,
    cosine: bool,
    seed: u64,
}

impl Placer<'_> {
    /// New galaxy `r` with features `qr`.
    fn place(&self, r: usize, qr: &[f32], scratch: &mut search::Scratch) -> Placed {
        self.already_fitted(r, qr)
            .unwrap_or_else(|| self.transform(qr, scratch))
    }

    /// The fitted results of galaxy `r` if it is in the fit (same id, same features).
    fn already_fitted(&self, r: usize, qr: &[f32]) -> Option<Placed> {
        let &i = self.by_id.get(self.new_ids[r].as_str())?;
        let (fit, dim) = (self.fit, self.fit.columns.len());
        if fit.index.point_of(fit.rank[i] as usize) != qr {
            return None;
        }
        Some(Placed {
            pos: fit.y[i * dim..(i + 1) * dim].to_vec(),
            label: self.known.label[i],
            probability: self.known.probability[i],
            outlier: self.known.outlier[i],
            nearest: i as u32,
            distance: 0.0,
            fitted: true,
        })
    }

    /// A galaxy not in the fit: its nearest fitted galaxies, its position by UMAP's
    /// transform from them, and its class by HDBSCAN's prediction there.
    fn transform(&self, qr: &[f32], scratch: &mut search::Scratch) -> Placed {
        let (fit, dim) = (self.fit, self.fit.columns.len());
        let y = &fit.y;
        // Fitted rows in the layout's order, for the transform and the prediction.
        let near_fitted = |p: u32| fit.index.label(p);
        let near = fit.index.query(qr, self.k, SEARCH_EPSILON, scratch);
        let dist: Vec<f32> = near
            .iter()
            .map(|&(d2, _)| if self.cosine { d2 / 2.0 } else { d2.sqrt() })
            .collect();
        let w = transform::strengths(&dist, self.transform.local_connectivity);
        // umap-learn optimises a point's edges in fitted-row order.
        let mut edges: Vec<(u32, f32)> = near
            .iter()
            .map(|p| near_fitted(p.1))
            .zip(w.iter().copied())
            .collect();
        let mut pos =
            transform::initial(&edges.iter().map(|e| e.0).collect::<Vec<_>>(), &w, y, dim);
        edges.sort_unstable_by_key(|e| e.0);
        let (en, ew): (Vec<u32>, Vec<f32>) = edges.into_iter().unzip();
        let mut rng = Rng::new(
            self.seed,
            crate::numeric::rng::stream::ASSIGN ^ feature_stream(qr),
        );
        transform::optimise_point(&mut pos, &en, &ew, y, dim, &self.transform, &mut rng);
        let p = self.predict.predict(&pos);
        Placed {
            pos,
            label: p.label.map_or(-1, |l| l as i32),
            probability: p.probability,
            outlier: p.outlier_score,
            nearest: near_fitted(near[0].1),
            distance: dist[0],
            fitted: false,
        }
    }
}

/// One new galaxy's results.
struct Placed {
    pos: Vec<f32>,
    label: i32,
    probability: f64,
    outlier: f64,
    /// Its nearest fitted galaxy (layout row) and the distance to it.
    nearest: u32,
    distance: f32,
    /// Whether it is in the fit and copies its fitted results.
    fitted: bool,
}

/// The output table, in NEW's order: id, layout columns `lcols`, class, nearest fitted
/// galaxy.
fn frame(
    results: &[Placed],
    inputs: &[std::sync::Arc<DataFrame>],
    lcols: &[String],
    ctx: &RunCtx,
) -> Result<DataFrame> {
    let node = ctx.node;
    let new = &inputs[NEW];
    let mut out: Vec<Column> = Vec::with_capacity(lcols.len() + 6);
    out.push(new.column(ctx.id).map_err(super::pl(node))?.clone());
    for (j, c) in lcols.iter().enumerate() {
        out.push(Column::new(
            c.into(),
            results.iter().map(|p| p.pos[j]).collect::<Vec<f32>>(),
        ));
    }
    out.push(Column::new(
        "label".into(),
        results.iter().map(|p| p.label).collect::<Vec<i32>>(),
    ));
    out.push(Column::new(
        "probability".into(),
        results.iter().map(|p| p.probability).collect::<Vec<f64>>(),
    ));
    out.push(Column::new(
        "outlier_score".into(),
        results.iter().map(|p| p.outlier).collect::<Vec<f64>>(),
    ));
    let take = IdxCa::from_vec(
        PlSmallStr::EMPTY,
        results.iter().map(|p| p.nearest as IdxSize).collect(),
    );
    let nearest = inputs[LAYOUT]
        .column(ctx.id)
        .map_err(super::pl(node))?
        .as_materialized_series()
        .take(&take)
        .map_err(super::pl(node))?;
    out.push(
        nearest
            .with_name(format!("nearest_{}", ctx.id).into())
            .into_column(),
    );
    out.push(Column::new(
        "nearest_distance".into(),
        results.iter().map(|p| p.distance).collect::<Vec<f32>>(),
    ));
    DataFrame::new(new.height(), out).map_err(super::pl(node))
}

impl Index {
    pub fn schema(&self, features: &Schema, id: &str) -> SchemaResult<Schema> {
        let cols = columns::resolve(features, &self.columns)
            .map_err(|m| SchemaError::new("columns", m))?;
        columns::require_numeric(features, &cols, id)
            .map_err(|m| SchemaError::new("columns", m))?;
        let mut s = Schema::default();
        s.insert(
            id.into(),
            features.get(id).cloned().unwrap_or(DataType::Int64),
        );
        Ok(s)
    }

    /// Inputs: the fitted features and their `knn` table.
    pub fn run(&self, inputs: &[std::sync::Arc<DataFrame>], ctx: &RunCtx) -> Result<Output> {
        let node = ctx.node;
        let (features, knn) = (&inputs[0], &inputs[1]);
        let cols = columns::resolve(features.schema(), &self.columns)
            .map_err(|m| Error::input(node, m))?;
        let (n, d) = (features.height(), cols.len());
        if knn.height() != n {
            return Err(Error::input(
                node,
                format!(
                    "the neighbour table has {} rows for {n} galaxies",
                    knn.height()
                ),
            ));
        }
        let t0 = std::time::Instant::now();
        // Rows in the kNN node's locality order (a query's candidates then sit close by in
        // memory): index row `rank[i]` is fitted row `i`.
        let rank = super::knn::locality_from_table(knn, node)?;
        let mut fitted_of = vec![0u32; n];
        for (i, &r) in rank.iter().enumerate() {
            fitted_of[r as usize] = i as u32;
        }
        let mut x = columns::matrix_f32(features, &cols, node)?;
        if self.metric == super::reduce::Metric::Cosine {
            columns::normalise_rows(&mut x, d, |_| Ok(()))?;
        }
        permute_rows(&mut x, d, &rank);
        let (nbr, nd, k) = {
            let (nbr, nd, k) = super::knn::from_table(knn, node)?;
            let (pn, pd) = umap::permute_knn(&nbr, &nd, k, &rank);
            (pn, pd, k)
        };
        let graph = search::Neighbours {
            indices: &nbr,
            distances: &nd,
            k,
        };
        let index = search::Index::build(
            &x,
            d,
            graph,
            search::Shape {
                trees: self.trees as usize,
                reverse: self.reverse as usize,
                seed: 0,
            },
            fitted_of,
        );
        drop((nbr, nd));
        let bytes = index.to_bytes();
        drop(index);
        let df = DataFrame::new(
            n,
            vec![features.column(ctx.id).map_err(super::pl(node))?.clone()],
        )
        .map_err(super::pl(node))?;
        let mut out = Output::new(
            df,
            vec![format!(
                "search index over {n} rows of {d} columns: {} trees, {k} neighbours and up to {} reverse ones each, built in {:.2}s",
                self.trees,
                self.reverse,
                t0.elapsed().as_secs_f64()
            )],
        );
        out.files.push((INDEX_FILE.to_owned(), bytes));
        Ok(out)
    }
}

impl Core {
    pub fn schema(&self, input: &Schema, id: &str) -> SchemaResult<Schema> {
        let cols =
            columns::resolve(input, &self.columns).map_err(|m| SchemaError::new("columns", m))?;
        columns::require_numeric(input, &cols, id).map_err(|m| SchemaError::new("columns", m))?;
        let mut s = Schema::default();
        s.insert(id.into(), input.get(id).cloned().unwrap_or(DataType::Int64));
        s.insert("core_distance".into(), DataType::Float32);
        Ok(s)
    }

    pub fn run(&self, input: &DataFrame, ctx: &RunCtx) -> Result<Output> {
        let cols = columns::resolve(input.schema(), &self.columns)
            .map_err(|m| Error::input(ctx.node, m))?;
        let (n, ms) = (input.height(), self.min_samples as usize);
        if n <= ms {
            return Err(Error::input(
                ctx.node,
                format!(
                    "core distances need more points than min_samples: {n} rows, min_samples {ms}"
                ),
            ));
        }
        let x = columns::matrix_f32(input, &cols, ctx.node)?;
        let tree = KdTree::build(&x, cols.len());
        let by_pos = knn::core_distances(&tree, ms);
        let mut core = vec![0f32; n];
        for (pos, &c) in by_pos.iter().enumerate() {
            core[tree.index[pos] as usize] = c;
        }
        let df = DataFrame::new(
            n,
            vec![
                input.column(ctx.id).map_err(super::pl(ctx.node))?.clone(),
                Column::new("core_distance".into(), core),
            ],
        )
        .map_err(super::pl(ctx.node))?;
        Ok(Output::new(
            df,
            vec![format!("core distances of {n} points, min_samples {ms}")],
        ))
    }
}

/// Move row `i` of `x` (`d` wide) to row `rank[i]`, in place (by cycles).
fn permute_rows(x: &mut [f32], d: usize, rank: &[u32]) {
    let mut done = vec![false; rank.len()];
    let mut carry = vec![0f32; d];
    let mut swap = vec![0f32; d];
    for start in 0..rank.len() {
        if done[start] {
            continue;
        }
        carry.copy_from_slice(&x[start * d..(start + 1) * d]);
        let mut i = start;
        loop {
            done[i] = true;
            let to = rank[i] as usize;
            swap.copy_from_slice(&x[to * d..(to + 1) * d]);
            x[to * d..(to + 1) * d].copy_from_slice(&carry);
            std::mem::swap(&mut carry, &mut swap);
            i = to;
            if i == start {
                break;
            }
        }
    }
}

fn f64_column(df: &DataFrame, name: &str, node: &str) -> Result<Vec<f64>> {
    let c = df
        .column(name)
        .map_err(super::pl(node))?
        .cast(&DataType::Float64)
        .map_err(super::pl(node))?;
    Ok(c.f64()
        .map_err(super::pl(node))?
        .iter()
        .map(|v| v.unwrap_or(f64::NAN))
        .collect())
}

/// A galaxy's own random stream id, from the bytes of its feature values (never its id).
fn feature_stream(x: &[f32]) -> u64 {
    let mut h = blake3::Hasher::new();
    for v in x {
        h.update(&v.to_le_bytes());
    }
    u64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().expect("8 bytes"))
}

impl super::Kind for AssignDraft {
    super::kind_basics!("assign", Exactly(2));

    /// `assign` reads the search it assigns into: the chain select -> cluster -> UMAP
    /// reduce above its CLASSES input (the fit: the [`Assign`] this node becomes), a search
    /// index over the fitted features and the layout's core distances (hidden `NODE.index`,
    /// `NODE.core`).
    fn expand(&self, v: usize, draft: &mut Draft) -> Result<Option<super::Op>> {
        let Chain {
            fit,
            tree,
            layout,
            knn,
        } = Chain::find(v, draft)?;
        let index = Index {
            columns: fit.reduce.columns.clone(),
            metric: fit
                .reduce
                .umap
                .as_ref()
                .map_or(super::reduce::Metric::Euclidean, |u| u.metric),
            trees: SEARCH_TREES,
            reverse: SEARCH_REVERSE,
        };
        let core = Core {
            columns: fit.cluster.columns.clone(),
            min_samples: fit.cluster.min_samples,
        };
        let features = draft.nodes[layout].inputs[0];
        let index = draft.add_hidden(v, "index", super::Op::Index(index), vec![features, knn]);
        let core = draft.add_hidden(v, "core", super::Op::Core(core), vec![layout]);
        draft.nodes[v].inputs.extend([tree, layout, index, core]);
        Ok(Some(super::Op::Assign(Assign {
            n_epochs: self.n_epochs,
            seed: self.seed,
            fit,
        })))
    }

    /// Never derived: `expand` makes every `assign` node an [`Assign`] first.
    fn output_schema(&self, _: &[SchemaRef], _: &str) -> Result<super::SchemaResult<Schema>> {
        unreachable!("validation expands `assign` before deriving its schema")
    }

    /// Never run: validation makes every `assign` node an [`Assign`].
    fn compute(&self, _: &[std::sync::Arc<DataFrame>], _: &RunCtx) -> Result<Output> {
        unreachable!("validation expands `assign` before it runs")
    }
}

impl super::Kind for Assign {
    super::kind_basics!("assign", Exactly(2));

    fn output_schema(&self, inputs: &[SchemaRef], id: &str) -> Result<super::SchemaResult<Schema>> {
        Ok(self.schema(inputs, id))
    }

    fn compute(&self, inputs: &[std::sync::Arc<DataFrame>], ctx: &RunCtx) -> Result<Output> {
        self.run(inputs, ctx)
    }
}

impl super::Parse for AssignDraft {
    const NAMES: &'static [&'static str] = &["assign"];

    fn parse(
        _name: &str,
        p: &mut crate::params::Params,
        _base_dir: &std::path::Path,
    ) -> Result<Self> {
        Self::parse(p)
    }
}

impl super::Kind for Core {
    super::kind_basics!("core", Exactly(1));

    fn output_schema(&self, inputs: &[SchemaRef], id: &str) -> Result<super::SchemaResult<Schema>> {
        Ok(self.schema(&inputs[0], id))
    }

    fn compute(&self, inputs: &[std::sync::Arc<DataFrame>], ctx: &RunCtx) -> Result<Output> {
        self.run(&inputs[0], ctx)
    }
}

impl super::Kind for Index {
    super::kind_basics!("index", Exactly(2));

    fn output_schema(&self, inputs: &[SchemaRef], id: &str) -> Result<super::SchemaResult<Schema>> {
        Ok(self.schema(&inputs[0], id))
    }

    fn compute(&self, inputs: &[std::sync::Arc<DataFrame>], ctx: &RunCtx) -> Result<Output> {
        self.run(inputs, ctx)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rows_move_to_their_rank() {
        let x: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let rank = [2u32, 0, 3, 5, 4, 1];
        let mut y = x.clone();
        super::permute_rows(&mut y, 2, &rank);
        for (i, &r) in rank.iter().enumerate() {
            assert_eq!(y[r as usize * 2..r as usize * 2 + 2], x[i * 2..i * 2 + 2]);
        }
    }
}
