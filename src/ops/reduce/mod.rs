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

mod layout;
mod memo;

use polars::prelude::*;
use serde::Serialize;

use super::draft::Draft;
pub use super::knn::Metric;
use super::{columns, knn::Knn, Output, RunCtx, SchemaError, SchemaResult};
use crate::error::{Error, Result};
use crate::numeric::pca;
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

impl Umap {
    /// A UMAP node's parameters, umap-learn's defaults where not given.
    fn parse(p: &mut Params) -> Result<Self> {
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
        let densmap = Densmap::parse(p)?;
        // umap-learn's `output_dens`: on by default with densMAP, whose point it is.
        let radii = p.bool("radii", densmap.is_some())?;
        Ok(Umap {
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
    }
}

impl Densmap {
    /// densMAP's parameters with `densmap = true` (`None` without; giving one of them then
    /// is an error).
    fn parse(p: &mut Params) -> Result<Option<Self>> {
        const DENS: [&str; 3] = ["dens_lambda", "dens_frac", "dens_var_shift"];
        if p.bool("densmap", false)? {
            Ok(Some(Densmap {
                lambda: p.float_in("dens_lambda", 2.0, 0.0, f64::MAX)?,
                frac: p.float_in("dens_frac", 0.3, 0.0, 1.0)?,
                var_shift: p.float_in("dens_var_shift", 0.1, 0.0, f64::MAX)?,
            }))
        } else if let Some(name) = DENS.iter().find(|n| p.given(n)) {
            Err(p.error(name, "applies with `densmap = true` only"))
        } else {
            Ok(None)
        }
    }
}

/// A PCA node's parameters: an error naming the first UMAP-only one given.
fn reject_umap_only(p: &Params) -> Result<()> {
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
    match UMAP_ONLY.iter().find(|n| p.given(n)) {
        Some(name) => Err(p.error(
            name,
            "applies to method `umap` only (this node's method is `pca`)",
        )),
        None => Ok(()),
    }
}

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
            Some(Umap::parse(p)?)
        } else {
            reject_umap_only(p)?;
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
