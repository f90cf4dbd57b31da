//! `cluster`: HDBSCAN's condensed tree of numeric columns (names or globs, default
//! `umap_*`), with `min_samples`, `min_cluster_size` and `alpha` as in the `hdbscan`
//! library; Euclidean metric.
//!
//! The core distance is the distance to the `min_samples`-th nearest neighbour **not
//! counting the point itself** (the `hdbscan` library's convention; scikit-learn's
//! `HDBSCAN(min_samples=m + 1)` is the same). The minimum spanning tree is exact.
//!
//! Output: the condensed tree, one row per edge: `parent`, `child`, `lambda_val`,
//! `child_size`, and the id column — the point's id on rows whose child is a point (`child`
//! below the number of points, in input order), null on rows whose child is a cluster.
//! `select-leaves` and `select-eom` turn it into labels.

use std::time::Instant;

use polars::prelude::*;
use serde::Serialize;

use super::{columns, Output, RunCtx, SchemaError, SchemaResult};
use crate::error::{Error, Result};
use crate::numeric::{hdbscan, kdtree::KdTree, knn, mst};
use crate::params::Params;

pub const VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize)]
pub struct Cluster {
    pub columns: Vec<String>,
    pub min_samples: u32,
    pub min_cluster_size: u32,
    pub alpha: f64,
    pub metric: super::reduce::Metric,
}

/// The condensed-tree table's columns (besides the id).
pub const TREE_COLUMNS: [&str; 4] = ["parent", "child", "lambda_val", "child_size"];

impl Cluster {
    pub fn parse(p: &mut Params) -> Result<Self> {
        let columns = p.strings("columns")?.unwrap_or_else(|| vec!["umap_*".into()]);
        let min_cluster_size = p.int_in("min_cluster_size", Some(5), 2, u32::MAX as i64)? as u32;
        let min_samples = p.int_in("min_samples", Some(i64::from(min_cluster_size)), 1, u32::MAX as i64)? as u32;
        let alpha = p.float_in("alpha", 1.0, f64::MIN_POSITIVE, f64::MAX)?;
        p.choice("metric", &["euclidean"], "euclidean")?;
        let metric = super::reduce::Metric::Euclidean;
        Ok(Cluster { columns, min_samples, min_cluster_size, alpha, metric })
    }

    pub fn schema(&self, input: &Schema, id: &str) -> SchemaResult<Schema> {
        let cols = columns::resolve(input, &self.columns).map_err(|m| SchemaError::new("columns", m))?;
        columns::require_numeric(input, &cols, id).map_err(|m| SchemaError::new("columns", m))?;
        let mut s = Schema::default();
        s.insert(id.into(), input.get(id).cloned().unwrap_or(DataType::Int64));
        s.insert("parent".into(), DataType::Int64);
        s.insert("child".into(), DataType::Int64);
        s.insert("lambda_val".into(), DataType::Float64);
        s.insert("child_size".into(), DataType::Int64);
        Ok(s)
    }

    pub fn run(&self, input: &DataFrame, ctx: &RunCtx) -> Result<Output> {
        let cols = columns::resolve(input.schema(), &self.columns).map_err(|m| Error::input(ctx.node, m))?;
        let (n, d, ms) = (input.height(), cols.len(), self.min_samples as usize);
        if n <= ms {
            return Err(Error::input(ctx.node, format!("HDBSCAN needs more points than min_samples: {n} rows, min_samples {ms}")));
        }
        let x = columns::matrix_f32(input, &cols, ctx.node)?;
        let bar = ctx.progress.bar(ctx.node, "hdbscan", 4);
        let t0 = Instant::now();
        let tree = KdTree::build(&x, d);
        let core = knn::core_distances(&tree, ms);
        bar.inc(1);
        let t_core = t0.elapsed().as_secs_f64();
        let edges = mst::mutual_reachability_mst(&tree, &core, self.alpha as f32);
        bar.inc(1);
        let t_mst = t0.elapsed().as_secs_f64() - t_core;
        drop(tree);
        let merges = hdbscan::single_linkage(n, &edges);
        let ct = hdbscan::condense(n, &merges, self.min_cluster_size as usize);
        bar.inc(2);
        bar.finish();
        let t_tree = t0.elapsed().as_secs_f64() - t_core - t_mst;

        let rows = ct.len();
        let point_rows: Vec<Option<IdxSize>> = ct.child.iter().map(|&c| ((c as usize) < n).then_some(c as IdxSize)).collect();
        let take = IdxCa::from_iter_options(PlSmallStr::EMPTY, point_rows.into_iter());
        let ids = input.column(ctx.id).map_err(super::pl(ctx.node))?.as_materialized_series().take(&take).map_err(super::pl(ctx.node))?;
        let df = DataFrame::new(
            rows,
            vec![
                ids.with_name(ctx.id.into()).into_column(),
                Column::new("parent".into(), ct.parent.iter().map(|&v| v as i64).collect::<Vec<_>>()),
                Column::new("child".into(), ct.child.iter().map(|&v| v as i64).collect::<Vec<_>>()),
                Column::new("lambda_val".into(), ct.lambda.clone()),
                Column::new("child_size".into(), ct.child_size.iter().map(|&v| v as i64).collect::<Vec<_>>()),
            ],
        )
        .map_err(super::pl(ctx.node))?;
        let stats = hdbscan::cluster_stats(&ct);
        let n_clusters = stats.birth.len() - n - 1;
        let leaves = (n + 1..stats.birth.len()).filter(|&c| stats.children[c].is_empty()).count();
        let summary = vec![
            format!("{n} points in {d} dimensions, min_samples {ms}, min_cluster_size {}", self.min_cluster_size),
            format!("{n_clusters} clusters below the root, {leaves} leaves"),
            format!("core distances {t_core:.2}s, minimum spanning tree {t_mst:.2}s, condensed tree {t_tree:.2}s"),
        ];
        let mut out = Output::new(df, summary);
        out.details = serde_json::json!({ "seconds": { "core_distances": t_core, "mst": t_mst, "condense": t_tree } });
        Ok(out)
    }
}

impl super::Kind for Cluster {
    super::kind_basics!("cluster", Exactly(1));

    fn output_schema(&self, inputs: &[SchemaRef], id: &str) -> Result<super::SchemaResult<Schema>> {
        Ok(self.schema(&inputs[0], id))
    }

    fn compute(&self, inputs: &[std::sync::Arc<DataFrame>], ctx: &RunCtx) -> Result<Output> {
        self.run(&inputs[0], ctx)
    }

    /// The tree, the MST and the core distances: about 64 bytes per row.
    fn working_memory(&self, rows: u64) -> u64 {
        rows * 64
    }

    fn multithreaded(&self) -> bool {
        true
    }
}

impl super::Parse for Cluster {
    const NAMES: &'static [&'static str] = &["cluster"];

    fn parse(_name: &str, p: &mut crate::params::Params, _base_dir: &std::path::Path) -> Result<Self> {
        Self::parse(p)
    }
}
