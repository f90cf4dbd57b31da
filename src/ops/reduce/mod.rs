//! `reduce`: dimensionality reduction of numeric columns (names or globs, default
//! `feat_*`) to `n_components` columns named `{prefix}{i}` (Float32), with the id column.
//!
//! `method = "pca"`: the paper's 1280/1024 → 128 compression of Zoobot features.
//!
//! `method = "umap"`: umap-learn's algorithm with its parameters and defaults —
//! `n_neighbors` (15, the point itself included), `n_components` (2), `min_dist` (0.1),
//! `spread` (1.0), `n_epochs` (200 above 10,000 rows, 500 below), `learning_rate` (1.0),
//! `negative_sample_rate` (5), `local_connectivity` (1.0), `metric` (`euclidean`, `cosine`),
//! `init` (`spectral`, `random`), `seed` (0). Its kNN graph is a hidden node `NODE.knn`
//! (validation adds it), cached on its own. Same input, parameters and seed give the same
//! layout bit for bit at any thread count.
//!
//! `densmap = true` adds densMAP's density term (umap-learn's `dens_lambda` 2.0,
//! `dens_frac` 0.3, `dens_var_shift` 0.1; 200 more epochs by default, as umap-learn):
//! see [`crate::numeric::umap::densmap`]. Such a layout runs its SGD alone, never beside
//! another layout of its graph. `radii = true` (the default with densMAP) is umap-learn's
//! `output_dens`: the input's and the layout's log local radii as columns `rad_orig` and
//! `rad_emb`, and their correlation in the summary (what the density term bought). It costs
//! a kNN search and a fuzzy graph of the layout: 2.4 s beside a plain 5-D layout's 18 s at
//! 108k rows, so plain layouts leave it off unless asked.

use polars::prelude::*;
use serde::Serialize;

use super::draft::Draft;
pub use super::knn::Metric;
use super::{columns, knn::Knn, Kind as _, Output, RunCtx, SchemaError, SchemaResult};
use crate::error::{Error, Result};
use crate::numeric::umap::densmap;
use crate::numeric::{pca, umap};
use crate::params::Params;

pub const VERSION: u32 = 9;

/// Columns of the layouts one SGD optimises together at most (their rows side by side).
const MAX_JOINT_WIDTH: usize = 64;

#[derive(Clone, Debug, Serialize)]
pub struct Reduce {
    pub method: Method,
    pub columns: Vec<String>,
    pub n_components: u32,
    pub prefix: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub umap: Option<Umap>,
}

/// How a `reduce` node reduces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Pca,
    Umap,
}

/// How a UMAP layout starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Init {
    Spectral,
    Random,
}

#[derive(Clone, Debug, Serialize)]
pub struct Umap {
    pub n_neighbors: u32,
    pub min_dist: f64,
    pub spread: f64,
    /// `None`: umap-learn's default by size (fixed when the node runs).
    pub n_epochs: Option<u32>,
    pub learning_rate: f64,
    pub negative_sample_rate: u32,
    pub local_connectivity: f64,
    pub metric: Metric,
    pub init: Init,
    pub seed: u64,
    /// densMAP's density term (`densmap = true`); absent for plain UMAP, so plain layouts
    /// keep their keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub densmap: Option<Densmap>,
    /// Output the input's and the layout's log local radii as `rad_orig` and `rad_emb`, and
    /// their correlation in the summary (umap-learn's `output_dens`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub radii: bool,
}

/// densMAP's parameters, with umap-learn's names less the `dens_` prefix.
#[derive(Clone, Debug, Serialize)]
pub struct Densmap {
    pub lambda: f64,
    pub frac: f64,
    pub var_shift: f64,
}

/// The radius columns of `radii = true`.
const RADII: [&str; 2] = ["rad_orig", "rad_emb"];

impl Reduce {
    pub fn parse(p: &mut Params) -> Result<Self> {
        let method = if p.choice("method", &["pca", "umap"], "")? == "umap" {
            Method::Umap
        } else {
            Method::Pca
        };
        let columns = p
            .strings("columns")?
            .unwrap_or_else(|| vec!["feat_*".into()]);
        let default_components = if method == Method::Umap {
            Some(2)
        } else {
            None
        };
        let n_components = p.int_in("n_components", default_components, 1, 100_000)? as u32;
        let prefix = p.string("prefix")?.unwrap_or_else(|| {
            if method == Method::Umap {
                "umap_".into()
            } else {
                "pca_".into()
            }
        });
        let umap = if method == Method::Umap {
            let n_neighbors = p.int_in("n_neighbors", Some(15), 2, 10_000)? as u32;
            let min_dist = p.float_in("min_dist", 0.1, 0.0, f64::MAX)?;
            let spread = p.float_in("spread", 1.0, f64::MIN_POSITIVE, f64::MAX)?;
            if min_dist > spread {
                return Err(p.error("min_dist", format!("must not exceed `spread` ({spread})")));
            }
            let n_epochs = p
                .int("n_epochs")?
                .map(|e| {
                    if e < 1 {
                        Err(p.error("n_epochs", "must be at least 1"))
                    } else {
                        Ok(e as u32)
                    }
                })
                .transpose()?;
            let learning_rate = p.float_in("learning_rate", 1.0, f64::MIN_POSITIVE, f64::MAX)?;
            // Without negative samples nothing keeps points apart: at least one per edge sample.
            let negative_sample_rate = p.int_in("negative_sample_rate", Some(5), 1, 1000)? as u32;
            let local_connectivity = p.float_in("local_connectivity", 1.0, 0.0, f64::MAX)?;
            let metric = if p.choice("metric", &["euclidean", "cosine"], "euclidean")? == "cosine" {
                Metric::Cosine
            } else {
                Metric::Euclidean
            };
            let init = if p.choice("init", &["spectral", "random"], "spectral")? == "random" {
                Init::Random
            } else {
                Init::Spectral
            };
            let seed = p.int_in("seed", Some(0), 0, i64::MAX)? as u64;
            const DENS: [&str; 3] = ["dens_lambda", "dens_frac", "dens_var_shift"];
            let densmap = if p.bool("densmap", false)? {
                Some(Densmap {
                    lambda: p.float_in("dens_lambda", 2.0, 0.0, f64::MAX)?,
                    frac: p.float_in("dens_frac", 0.3, 0.0, 1.0)?,
                    var_shift: p.float_in("dens_var_shift", 0.1, 0.0, f64::MAX)?,
                })
            } else if let Some(name) = DENS.iter().find(|n| p.given(n)) {
                return Err(p.error(name, "applies with `densmap = true` only"));
            } else {
                None
            };
            // umap-learn's `output_dens`: on by default with densMAP, whose point it is.
            let radii = p.bool("radii", densmap.is_some())?;
            Some(Umap {
                n_neighbors,
                min_dist,
                spread,
                n_epochs,
                learning_rate,
                negative_sample_rate,
                local_connectivity,
                metric,
                init,
                seed,
                densmap,
                radii,
            })
        } else {
            const UMAP_ONLY: [&str; 15] = [
                "n_neighbors",
                "min_dist",
                "spread",
                "n_epochs",
                "learning_rate",
                "negative_sample_rate",
                "local_connectivity",
                "metric",
                "init",
                "seed",
                "densmap",
                "dens_lambda",
                "dens_frac",
                "dens_var_shift",
                "radii",
            ];
            if let Some(name) = UMAP_ONLY.iter().find(|n| p.given(n)) {
                return Err(p.error(
                    name,
                    "applies to method `umap` only (this node's method is `pca`)",
                ));
            }
            None
        };
        Ok(Reduce {
            method,
            columns,
            n_components,
            prefix,
            umap,
        })
    }

    /// Whether this node's layout and `other`'s are the same numbers, given the same joint
    /// key ([`super::Kind::joint_key`]): the same width and init (`prefix` only names the
    /// columns).
    fn same_layout(&self, other: &Reduce) -> bool {
        self.n_components == other.n_components
            && self.umap.as_ref().map(|u| u.init) == other.umap.as_ref().map(|u| u.init)
    }

    /// The hidden kNN node a UMAP reduction reads. Its random-projection trees use a fixed
    /// seed, not the layout's: changing `seed` re-runs only the layout, like `n_components`.
    pub fn knn(&self) -> Option<Knn> {
        self.umap.as_ref().map(|u| Knn {
            columns: self.columns.clone(),
            k: u.n_neighbors - 1,
            metric: u.metric,
            seed: 0,
        })
    }

    pub fn schema(&self, input: &Schema, id: &str) -> SchemaResult<Schema> {
        let cols =
            columns::resolve(input, &self.columns).map_err(|m| SchemaError::new("columns", m))?;
        columns::require_numeric(input, &cols, id).map_err(|m| SchemaError::new("columns", m))?;
        if self.umap.is_none() && self.n_components as usize > cols.len() {
            return Err(SchemaError::new(
                "n_components",
                format!(
                    "{} components asked of {} input columns",
                    self.n_components,
                    cols.len()
                ),
            ));
        }
        let mut s = Schema::default();
        s.insert(id.into(), input.get(id).cloned().unwrap_or(DataType::Int64));
        for i in 0..self.n_components {
            s.insert(format!("{}{i}", self.prefix).into(), DataType::Float32);
        }
        if self.umap.as_ref().is_some_and(|u| u.radii) {
            for c in RADII {
                if s.contains(c) {
                    return Err(SchemaError::new(
                        "radii",
                        format!("column `{c}` would clash with a layout column (change `prefix`)"),
                    ));
                }
                s.insert(c.into(), DataType::Float32);
            }
        }
        Ok(s)
    }

    pub fn run(&self, inputs: &[std::sync::Arc<DataFrame>], ctx: &RunCtx) -> Result<Output> {
        match &self.umap {
            Some(u) => self.run_umap(u, &inputs[0], &inputs[1], ctx),
            None => self.run_pca(&inputs[0], ctx),
        }
    }

    fn output(&self, input: &DataFrame, y: &[f32], ctx: &RunCtx) -> Result<DataFrame> {
        let (n, k) = (input.height(), self.n_components as usize);
        let mut out: Vec<Column> = Vec::with_capacity(k + 1);
        out.push(input.column(ctx.id).map_err(super::pl(ctx.node))?.clone());
        for j in 0..k {
            out.push(Column::new(
                format!("{}{j}", self.prefix).into(),
                (0..n).map(|i| y[i * k + j]).collect::<Vec<f32>>(),
            ));
        }
        DataFrame::new(n, out).map_err(super::pl(ctx.node))
    }

    fn run_umap(
        &self,
        u: &Umap,
        input: &DataFrame,
        knn: &DataFrame,
        ctx: &RunCtx,
    ) -> Result<Output> {
        let n = input.height();
        if knn.height() != n {
            return Err(Error::input(
                ctx.node,
                format!(
                    "the neighbour table has {} rows for {n} input rows",
                    knn.height()
                ),
            ));
        }
        let t_read = std::time::Instant::now();
        let (nbr, dist, k) = super::knn::from_table(knn, ctx.node)?;
        // The layout works on the rows in the kNN node's locality order: the neighbours'
        // rows it gathers at random then mostly sit close by in memory.
        let rank = super::knn::locality_from_table(knn, ctx.node)?;
        // umap-learn's default by size, and 200 more for densMAP.
        let n_epochs = u.n_epochs.unwrap_or(
            if n > 10_000 { 200 } else { 500 } + if u.densmap.is_some() { 200 } else { 0 },
        ) as usize;
        tracing::debug!(
            secs = t_read.elapsed().as_secs_f64(),
            "umap: neighbour table read"
        );
        let t0 = std::time::Instant::now();
        let key = memo::graph_key(&nbr, &dist, &rank, u.local_connectivity, n_epochs);
        let dim = self.n_components as usize;
        let (a, b) = umap::find_ab(u.spread, u.min_dist);
        let sgd = umap::Sgd {
            a,
            b,
            n_epochs,
            learning_rate: u.learning_rate,
            negative_sample_rate: u.negative_sample_rate as f64,
            seed: u.seed,
        };
        let mut summary =
            vec![format!("UMAP {} -> {dim} columns, n_neighbors {}, min_dist {}, {n_epochs} epochs, a={a:.4} b={b:.4}", self.columns.join(","), u.n_neighbors, u.min_dist)];
        if let Some(d) = &u.densmap {
            summary.push(format!(
                "densMAP: dens_lambda {}, dens_frac {}, dens_var_shift {}",
                d.lambda, d.frac, d.var_shift
            ));
        }
        let build_graph = |nbr: &[u32], dist: &[f32]| {
            let lap = |what: &str, t: &mut std::time::Instant| {
                tracing::debug!(secs = t.elapsed().as_secs_f64(), "umap graph: {what}");
                *t = std::time::Instant::now();
            };
            let mut t = std::time::Instant::now();
            let (nbr, dist) = umap::permute_knn(nbr, dist, k, &rank);
            // umap-learn's rows start with the point itself at distance 0.
            let (idx, d, kk) = umap::with_self(&nbr, &dist, k);
            lap("locality order", &mut t);
            let mut g = umap::fuzzy_simplicial_set(&idx, &d, kk, u.local_connectivity);
            lap("fuzzy union", &mut t);
            g.drop_weak(n_epochs);
            lap("weak edges", &mut t);
            g.order_tails_by(&umap::scrambled_keys(&rank));
            lap("edge order", &mut t);
            g
        };
        // The input's log local radii (graph order), for densMAP and the summary.
        let input_radii = |g: &umap::Graph, nbr: &[u32], dist: &[f32]| {
            let (nbr, dist) = umap::permute_knn(nbr, dist, k, &rank);
            densmap::input_log_radii(g, &nbr, &dist, k)
        };
        // The neighbour table, kept past the graph only for the radii.
        let mut table = Some((nbr, dist));
        let mut radii_in: Option<Vec<f64>> = None;
        let (emb, init, t_graph, t_sgd, sgd_with, graph_shared) = match memo::take_layout(
            memo::layout_key(key, self, n_epochs),
        ) {
            // Laid out by a node that ran before this one, beside its own layout.
            Some(l) => {
                let t_graph = t0.elapsed().as_secs_f64();
                summary.push(format!(
                    "graph ({} edges), init {:.2}s, SGD {:.2}s in `{}`'s run",
                    l.edges, l.init.secs, l.sgd_secs, l.by
                ));
                let same = if l.init.shared {
                    "graph, sampling and spectral eigenvectors"
                } else {
                    "graph and sampling"
                };
                summary.push(format!(
                    "laid out beside `{}` in one SGD (the same {same}): the bits it gets alone",
                    l.by
                ));
                if let Some(of) = &l.copy_of {
                    summary.push(format!("the layout of `{of}`, copied: the same numbers, laid out once (only the column names differ)"));
                }
                (l.emb, l.init, t_graph, l.sgd_secs, vec![l.by], true)
            }
            None => {
                let (nbr, dist) = table.as_ref().expect("the neighbour table");
                let (g, graph_shared) = memo::graph(key, || build_graph(nbr, dist));
                let dens = u.densmap.as_ref().map(|d| {
                    let r = input_radii(&g, nbr, dist);
                    let dens = umap::densmap::Density::new(&g, &r, d.lambda, d.frac, d.var_shift);
                    radii_in = Some(r);
                    dens
                });
                if !u.radii {
                    table = None;
                }
                let t_graph = t0.elapsed().as_secs_f64();
                // Nodes joined to this one (see `Kind::joint_key`): their layouts go through
                // the same SGD, each with its own init. A joined node whose layout is one
                // already in it (the same width and init: everything else that decides the
                // numbers is in the joint key; `prefix` only names the columns) gets a copy.
                let mine = self.joint_key();
                let mut lays: Vec<&Reduce> = vec![self];
                // (node, its op, its layout in `lays`)
                let mut with: Vec<(&str, &Reduce, usize)> = Vec::new();
                let mut width = dim;
                // A densMAP layout has no joint key: it runs alone.
                for &(name, op) in ctx.joint.iter().filter(|_| mine.is_some()) {
                    if let crate::ops::Op::Reduce(r) = op {
                        if r.joint_key() != mine {
                            continue;
                        }
                        let w = r.n_components as usize;
                        if let Some(i) = lays.iter().position(|l| l.same_layout(r)) {
                            with.push((name, r, i));
                        } else if lays.len() < umap::sgd::MAX_JOINT && width + w <= MAX_JOINT_WIDTH
                        {
                            with.push((name, r, lays.len()));
                            lays.push(r);
                            width += w;
                        }
                    }
                }
                let mut inits = vec![Some(self.init_layout(&g, key, &rank, input, ctx.node)?)];
                // A joined layout whose init fails is left to its own nodes, which report it.
                for (i, r) in lays.iter().enumerate().skip(1) {
                    let name = with.iter().find(|w| w.2 == i).map_or(ctx.node, |w| w.0);
                    inits.push(r.init_layout(&g, key, &rank, input, name).ok());
                }
                with.retain(|w| inits[w.2].is_some());
                let dims: Vec<usize> = lays
                    .iter()
                    .zip(&inits)
                    .filter(|(_, i)| i.is_some())
                    .map(|(r, _)| r.n_components as usize)
                    .collect();
                let bar = ctx.progress.bar(ctx.node, "umap epochs", n_epochs as u64);
                let t = std::time::Instant::now();
                let mut embs: Vec<&mut [f32]> = inits
                    .iter_mut()
                    .flatten()
                    .map(|(e, _)| &mut e[..])
                    .collect();
                match &dens {
                    Some(d) => umap::optimize_dens(embs[0], dims[0], &g, &sgd, d, |_| bar.inc(1)),
                    None => umap::optimize_joint(&mut embs, &dims, &g, &sgd, |_| bar.inc(1)),
                }
                bar.finish();
                let t_sgd = t.elapsed().as_secs_f64();
                summary.push(format!(
                    "graph {t_graph:.2}s ({} edges), init {:.2}s, SGD {t_sgd:.2}s",
                    g.head.len(),
                    inits[0].as_ref().expect("this node's layout").1.secs
                ));
                // The node whose layout the joined node `with[at]` copies: the first with it.
                let copy_of = |at: usize| -> Option<&str> {
                    let i = with[at].2;
                    if i == 0 {
                        Some(ctx.node)
                    } else {
                        with[..at].iter().find(|w| w.2 == i).map(|w| w.0)
                    }
                };
                for (at, &(_, r, i)) in with.iter().enumerate() {
                    let (emb, init) = inits[i].as_ref().expect("an initialised layout");
                    let copy_of = copy_of(at).map(str::to_owned);
                    // A copy shares its original's eigenvectors, whoever solved for them.
                    let shared = init.shared || (copy_of.is_some() && init.spectral.is_some());
                    let init = memo::Init {
                        spectral: init.spectral.clone(),
                        shared,
                        secs: init.secs,
                    };
                    memo::put_layout(
                        memo::layout_key(key, r, n_epochs),
                        memo::Layout {
                            emb: emb.clone(),
                            init,
                            edges: g.head.len(),
                            sgd_secs: t_sgd,
                            by: ctx.node.to_owned(),
                            copy_of,
                        },
                    );
                }
                if !with.is_empty() {
                    let names: Vec<String> = with
                        .iter()
                        .enumerate()
                        .map(|(at, &(name, r, _))| match copy_of(at) {
                            Some(of) => format!(
                                "`{name}`'s ({} columns, a copy of `{of}`'s)",
                                r.n_components
                            ),
                            None => format!("`{name}`'s ({} columns)", r.n_components),
                        })
                        .collect();
                    summary.push(format!("one SGD for this layout and {}: the same graph and sampling, each layout the bits it gets alone", names.join(", ")));
                }
                let (emb, init) = inits.swap_remove(0).expect("this node's layout");
                if graph_shared || init.shared {
                    let what = if init.shared {
                        "graph and spectral eigenvectors"
                    } else {
                        "graph"
                    };
                    summary.push(format!("{what} as built for an earlier node in this run (the same kNN table and parameters)"));
                }
                (
                    emb,
                    init,
                    t_graph,
                    t_sgd,
                    with.iter().map(|w| w.0.to_string()).collect(),
                    graph_shared,
                )
            }
        };
        let mut df = self.output(input, &umap::unpermute_rows(&emb, dim, &rank), ctx)?;
        // umap-learn's `output_dens`: how well the layout's local radii follow the input's.
        let (mut correlation, mut t_radii) = (None, None);
        if u.radii {
            let t = std::time::Instant::now();
            let radii_in = match (radii_in, table) {
                (Some(r), _) => r,
                (None, Some((nbr, dist))) => input_radii(
                    &memo::graph(key, || build_graph(&nbr, &dist)).0,
                    &nbr,
                    &dist,
                ),
                (None, None) => {
                    unreachable!("the neighbour table is kept where radii are asked for")
                }
            };
            let radii_out = densmap::layout_log_radii(&emb, dim, u.n_neighbors as usize);
            let r = densmap::pearson(&radii_in, &radii_out);
            for (name, r) in RADII.iter().zip([&radii_in, &radii_out]) {
                let r: Vec<f32> = r.iter().map(|&v| v as f32).collect();
                df.with_column(Column::new(
                    (*name).into(),
                    umap::unpermute_rows(&r, 1, &rank),
                ))
                .map_err(super::pl(ctx.node))?;
            }
            let secs = t.elapsed().as_secs_f64();
            summary.push(format!("local radii (log, umap-learn's output_dens): correlation {r:.3} between the input's and the layout's ({secs:.2}s)"));
            (correlation, t_radii) = (Some(r), Some(secs));
        }
        if let Some(r) = &init.spectral {
            summary.push(format!(
                "spectral init: {} component(s), {} products, residual {:.1e}{}",
                r.components,
                r.matvecs,
                r.residual,
                if r.converged {
                    ""
                } else {
                    " (not converged: the layout starts from the best vectors found)"
                }
            ));
        }
        let mut out = Output::new(df, summary);
        out.details = serde_json::json!({ "seconds": { "graph": t_graph, "init": init.secs, "sgd": t_sgd, "radii": t_radii }, "shared": { "graph": graph_shared, "eigenvectors": init.shared, "sgd": sgd_with }, "a": a, "b": b, "n_epochs": n_epochs,
            "radius_correlation": correlation, "densmap": u.densmap.is_some(),
            "spectral": init.spectral.map(|r| serde_json::json!({ "components": r.components, "products": r.matvecs, "residual": r.residual, "converged": r.converged, "eigenvalues": r.eigenvalues })) });
        Ok(out)
    }

    /// The layout of UMAP node `node` (this op) before the SGD, in the graph's row order:
    /// spectral or random.
    fn init_layout(
        &self,
        g: &umap::Graph,
        key: [u8; 32],
        rank: &[u32],
        input: &DataFrame,
        node: &str,
    ) -> Result<(Vec<f32>, memo::Init)> {
        let t = std::time::Instant::now();
        let u = self.umap.as_ref().expect("a UMAP node");
        let dim = self.n_components as usize;
        if u.init == Init::Random {
            let mut r = crate::numeric::rng::Rng::new(
                u.seed,
                crate::numeric::rng::stream::UMAP_RANDOM_INIT,
            );
            let emb = (0..g.n * dim).map(|_| r.range(0.0, 10.0) as f32).collect();
            return Ok((
                emb,
                memo::Init {
                    spectral: None,
                    shared: false,
                    secs: t.elapsed().as_secs_f64(),
                },
            ));
        }
        // Components of a disconnected graph are placed by their centroids in the input
        // columns (graph rows are in locality order: row `rank[i]` is input row `i`).
        let mut failed = None;
        let meta = |label: &[u32], count: usize| -> Vec<f64> {
            let cols =
                columns::resolve(input.schema(), &self.columns).map_err(|m| Error::input(node, m));
            match cols.and_then(|cols| Ok((columns::matrix_f32(input, &cols, node)?, cols.len()))) {
                Ok((x, d)) => umap::spectral::centroid_layout(&x, d, rank, label, count, dim),
                Err(e) => {
                    failed = Some(e);
                    Vec::new()
                }
            }
        };
        let (solved, shared) =
            memo::solve(key, dim, u.seed, || umap::spectral::solve(g, dim, u.seed));
        let (emb, report) = umap::spectral::spectral_layout(g, &solved, dim, meta);
        if let Some(e) = failed {
            return Err(e);
        }
        Ok((
            emb,
            memo::Init {
                spectral: Some(report),
                shared,
                secs: t.elapsed().as_secs_f64(),
            },
        ))
    }

    fn run_pca(&self, input: &DataFrame, ctx: &RunCtx) -> Result<Output> {
        let cols = columns::resolve(input.schema(), &self.columns)
            .map_err(|m| Error::input(ctx.node, m))?;
        let (n, d, k) = (input.height(), cols.len(), self.n_components as usize);
        if n < 2 {
            return Err(Error::input(
                ctx.node,
                format!("PCA needs at least 2 rows, the input has {n}"),
            ));
        }
        let x = columns::matrix_f32(input, &cols, ctx.node)?;
        let bar = ctx.progress.bar(ctx.node, "pca", 2);
        let fit = pca::fit(&x, d, k);
        bar.inc(1);
        let y = fit.transform(&x);
        bar.inc(1);
        bar.finish();
        let df = self.output(input, &y, ctx)?;
        let explained: f64 =
            fit.explained_variance.iter().sum::<f64>() / fit.total_variance.max(f64::MIN_POSITIVE);
        let summary = vec![format!(
            "PCA {d} -> {k} columns, {:.1}% of the variance kept",
            100.0 * explained
        )];
        Ok(Output::new(df, summary))
    }
}

impl super::Kind for Reduce {
    super::kind_basics!("reduce", Exactly(1));

    fn output_schema(&self, inputs: &[SchemaRef], id: &str) -> Result<super::SchemaResult<Schema>> {
        Ok(self.schema(&inputs[0], id))
    }

    fn compute(&self, inputs: &[std::sync::Arc<DataFrame>], ctx: &RunCtx) -> Result<Output> {
        self.run(inputs, ctx)
    }

    /// The fuzzy graph and its SGD state: about 32 bytes per neighbour.
    fn working_memory(&self, rows: u64) -> u64 {
        rows * self.umap.as_ref().map_or(0, |u| u64::from(u.n_neighbors)) * 32
    }

    fn multithreaded(&self) -> bool {
        true
    }

    /// A UMAP reduction reads a hidden kNN node `NODE.knn` (on the same input), cached on
    /// its own: changing `n_components` or `seed` reuses it.
    fn expand(&self, v: usize, draft: &mut Draft) -> Result<Option<super::Op>> {
        if let Some(knn) = self.knn() {
            let inputs = draft.nodes[v].inputs.clone();
            let id = draft.add_hidden(v, "knn", super::Op::Knn(knn), inputs);
            draft.nodes[v].inputs.push(id);
        }
        Ok(None)
    }

    /// UMAP layouts on the same input and kNN table whose SGD samples alike (everything
    /// but `n_components`, `prefix` and `init`) share one SGD.
    fn joint_key(&self) -> Option<String> {
        let u = self.umap.as_ref().filter(|u| u.densmap.is_none())?;
        let key = serde_json::json!({
            "columns": self.columns, "n_neighbors": u.n_neighbors, "min_dist": u.min_dist, "spread": u.spread,
            "n_epochs": u.n_epochs, "learning_rate": u.learning_rate, "negative_sample_rate": u.negative_sample_rate,
            "local_connectivity": u.local_connectivity, "metric": u.metric, "seed": u.seed,
        });
        Some(key.to_string())
    }
}

impl super::Parse for Reduce {
    const NAMES: &'static [&'static str] = &["reduce"];

    fn parse(
        _name: &str,
        p: &mut crate::params::Params,
        _base_dir: &std::path::Path,
    ) -> Result<Self> {
        Self::parse(p)
    }
}

/// The fuzzy graphs and spectral solves last built in this process, for the next UMAP on
/// the same kNN table (a pipeline's 2-D display beside its 5-D search, a sweep's
/// `n_components` axis), and the layouts a node computed beside its own for nodes joined
/// to it (see `joint_key`), until they run. All are pure functions of what keys them, so a
/// hit changes only the time (at 632k rows: 5.5 s for the graph, 17 s for the solve). The last [`KEEP`]
/// graphs are kept (about 12 bytes an edge each), each with its last [`KEEP`] solves,
/// until pushed out or the end of the process. A layout that needs a graph or solve
/// another node is building meanwhile (a sweep runs two nodes at a time) waits for it
/// instead of building its own.
mod memo {
    use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

    use crate::numeric::as_bytes;
    use crate::numeric::umap::{
        spectral::{Solve, SpectralReport},
        Graph,
    };

    /// Graphs kept: as many as a sweep's nodes running at once (`--parallel`, 2) need; and
    /// solves kept per graph.
    const KEEP: usize = 2;

    struct Entry {
        key: [u8; 32],
        graph: OnceLock<Arc<Graph>>,
        /// The graph's last solves (a sweep's 10-D layout needs another than its 2-D and
        /// 5-D ones, which share one), most recent last. Held while a solve runs, so a
        /// second layout on the graph waits for it.
        solves: Mutex<Vec<Arc<Solve>>>,
    }

    /// Most recently used last.
    static KEPT: Mutex<Vec<Arc<Entry>>> = Mutex::new(Vec::new());

    fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The entry for `key`, made most recent; a new one (pushing out the least recent
    /// beyond [`KEEP`]) if there is none.
    fn entry(key: [u8; 32]) -> Arc<Entry> {
        let mut kept = lock(&KEPT);
        let e = match kept.iter().position(|e| e.key == key) {
            Some(at) => kept.remove(at),
            None => Arc::new(Entry {
                key,
                graph: OnceLock::new(),
                solves: Mutex::new(Vec::new()),
            }),
        };
        kept.push(e.clone());
        if kept.len() > KEEP {
            kept.remove(0);
        }
        e
    }

    /// What decides the graph: the kNN table's neighbours, distances and locality order,
    /// `local_connectivity` and the epochs (the weak-edge cut).
    pub fn graph_key(
        nbr: &[u32],
        dist: &[f32],
        rank: &[u32],
        local_connectivity: f64,
        n_epochs: usize,
    ) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(b"dagrun umap graph v1");
        for part in [as_bytes(nbr), as_bytes(dist), as_bytes(rank)] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update_rayon(part);
        }
        h.update(&local_connectivity.to_le_bytes());
        h.update(&(n_epochs as u64).to_le_bytes());
        *h.finalize().as_bytes()
    }

    /// The graph under `key`: the one kept or being built by another node (and `true`),
    /// or `build`'s, then kept.
    pub fn graph(key: [u8; 32], build: impl FnOnce() -> Graph) -> (Arc<Graph>, bool) {
        let e = entry(key);
        let mut built = false;
        let g = e
            .graph
            .get_or_init(|| {
                built = true;
                Arc::new(build())
            })
            .clone();
        (g, !built)
    }

    /// How a layout started.
    pub struct Init {
        pub spectral: Option<SpectralReport>,
        /// Whether the spectral solve was kept from an earlier node.
        pub shared: bool,
        pub secs: f64,
    }

    /// A layout a node computed beside its own for a node that runs after it (in the
    /// graph's row order), with how it was made.
    pub struct Layout {
        pub emb: Vec<f32>,
        pub init: Init,
        /// Edges of its graph.
        pub edges: usize,
        pub sgd_secs: f64,
        /// The node that computed it.
        pub by: String,
        /// The node whose layout this is a copy of, where their numbers are the same
        /// ([`super::Reduce::same_layout`]): laid out once.
        pub copy_of: Option<String>,
    }

    /// Layouts waiting for their nodes; a few at most (a sweep's layouts of one graph).
    static LAYOUTS: Mutex<Vec<([u8; 32], Layout)>> = Mutex::new(Vec::new());
    const KEEP_LAYOUTS: usize = 2 * crate::numeric::umap::sgd::MAX_JOINT;

    /// What decides a layout beyond its graph: the node's parameters and the epochs.
    pub fn layout_key(graph: [u8; 32], r: &super::Reduce, n_epochs: usize) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(b"dagrun umap layout v1");
        h.update(&graph);
        h.update(
            serde_json::to_string(r)
                .expect("parameters serialise")
                .as_bytes(),
        );
        h.update(&(n_epochs as u64).to_le_bytes());
        *h.finalize().as_bytes()
    }

    /// Leave a layout for the node it belongs to.
    pub fn put_layout(key: [u8; 32], l: Layout) {
        let mut kept = lock(&LAYOUTS);
        kept.retain(|(k, _)| *k != key);
        kept.push((key, l));
        if kept.len() > KEEP_LAYOUTS {
            kept.remove(0);
        }
    }

    /// The layout left under `key`, taken.
    pub fn take_layout(key: [u8; 32]) -> Option<Layout> {
        let mut kept = lock(&LAYOUTS);
        let at = kept.iter().position(|(k, _)| *k == key)?;
        Some(kept.remove(at).1)
    }

    /// The spectral solve of the graph under `key` for a `dim`-D layout with `seed`: the
    /// one kept (and `true`), or `solve`'s, then kept beside its graph.
    pub fn solve(
        key: [u8; 32],
        dim: usize,
        seed: u64,
        solve: impl FnOnce() -> Solve,
    ) -> (Arc<Solve>, bool) {
        let e = entry(key);
        let mut kept = lock(&e.solves);
        if let Some(s) = kept.iter().find(|s| s.serves(dim, seed)) {
            return (s.clone(), true);
        }
        let s = Arc::new(solve());
        kept.push(s.clone());
        if kept.len() > KEEP {
            kept.remove(0);
        }
        (s, false)
    }
}
