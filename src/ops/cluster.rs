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
//!
//! Trees of one layout with different `min_samples` (a sweep's axis) are joined (see
//! [`super::Kind::joint_key`]): the first to run finds every one's core distances in one
//! search at the largest `min_samples` and leaves the others' in memory for their nodes,
//! which then build their own spanning trees. Each gets the bits it gets alone.

use std::sync::Arc;
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
        let columns = p
            .strings("columns")?
            .unwrap_or_else(|| vec!["umap_*".into()]);
        let min_cluster_size = p.int_in("min_cluster_size", Some(5), 2, u32::MAX as i64)? as u32;
        let min_samples = p.int_in(
            "min_samples",
            Some(i64::from(min_cluster_size)),
            1,
            u32::MAX as i64,
        )? as u32;
        let alpha = p.float_in("alpha", 1.0, f64::MIN_POSITIVE, f64::MAX)?;
        p.choice("metric", &["euclidean"], "euclidean")?;
        let metric = super::reduce::Metric::Euclidean;
        Ok(Cluster {
            columns,
            min_samples,
            min_cluster_size,
            alpha,
            metric,
        })
    }

    pub fn schema(&self, input: &Schema, id: &str) -> SchemaResult<Schema> {
        let cols =
            columns::resolve(input, &self.columns).map_err(|m| SchemaError::new("columns", m))?;
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
        let cols = columns::resolve(input.schema(), &self.columns)
            .map_err(|m| Error::input(ctx.node, m))?;
        let (n, d, ms) = (input.height(), cols.len(), self.min_samples as usize);
        if n <= ms {
            return Err(Error::input(
                ctx.node,
                format!("HDBSCAN needs more points than min_samples: {n} rows, min_samples {ms}"),
            ));
        }
        let x = columns::matrix_f32(input, &cols, ctx.node)?;
        let bar = ctx.progress.bar(ctx.node, "hdbscan", 4);
        let t0 = Instant::now();
        let Cores { tree, core, note } = self.core_distances(&x, d, n, ctx);
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
        let df = tree_table(&ct, input, n, ctx)?;
        let seconds = Seconds {
            core: t_core,
            mst: t_mst,
            tree: t_tree,
        };
        Ok(self.output(df, &ct, n, d, seconds, note))
    }

    /// The core distances of the `n` points `x` (`d` wide) and their KD-tree: left by a
    /// joined tree's run, or searched for, with those of the trees joined to this one.
    fn core_distances(&self, x: &[f32], d: usize, n: usize, ctx: &RunCtx) -> Cores {
        let ms = self.min_samples as usize;
        let points = memo::points_key(x, d);
        let memo = ctx.scratch.get_or_default::<memo::Memo>();
        if let Some(c) = memo.take(points, ms) {
            let note = format!("core distances from `{}`'s run (one search for min_samples {}): the bits this node gets alone", c.by, c.ks);
            return Cores {
                tree: c.tree,
                core: c.core,
                note: Some(note),
            };
        }
        let tree = Arc::new(KdTree::build(x, d));
        let others = self.joined(n, ctx);
        let ks: Vec<usize> = std::iter::once(ms)
            .chain(others.iter().map(|o| o.1))
            .collect();
        let mut cores = knn::core_distances_multi(&tree, &ks).into_iter();
        let core = cores.next().expect("this node's core distances");
        let mut note = None;
        if !others.is_empty() {
            let mut all: Vec<usize> = ks.clone();
            all.sort_unstable();
            all.dedup();
            let ks_text = all
                .iter()
                .map(|k| k.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            for (core, &(_, k)) in cores.zip(&others) {
                memo.put(
                    points,
                    k,
                    memo::Core {
                        tree: tree.clone(),
                        core,
                        by: ctx.node.to_owned(),
                        ks: ks_text.clone(),
                    },
                );
            }
            note = Some(format!("one core-distance search for min_samples {ks_text} (this node's and {} joined tree(s)')", others.len()));
        }
        Cores { tree, core, note }
    }

    /// Trees joined to this one (see `Kind::joint_key`) whose core distances one search at
    /// the largest min_samples also gives: their nodes and `min_samples`.
    fn joined<'c>(&self, n: usize, ctx: &RunCtx<'c>) -> Vec<(&'c str, usize)> {
        let mine = super::Kind::joint_key(self);
        ctx.joint
            .iter()
            .filter_map(|&(name, op)| match op {
                super::Op::Cluster(c)
                    if super::Kind::joint_key(c) == mine && (c.min_samples as usize) < n =>
                {
                    Some((name, c.min_samples as usize))
                }
                _ => None,
            })
            .take(memo::KEEP)
            .collect()
    }

    /// The summary lines and manifest details of a tree `ct` of `n` points in `d`
    /// dimensions.
    fn output(
        &self,
        df: DataFrame,
        ct: &hdbscan::CondensedTree,
        n: usize,
        d: usize,
        seconds: Seconds,
        core_note: Option<String>,
    ) -> Output {
        let ms = self.min_samples;
        let Seconds {
            core: t_core,
            mst: t_mst,
            tree: t_tree,
        } = seconds;
        let stats = hdbscan::cluster_stats(ct);
        let n_clusters = stats.birth.len() - n - 1;
        let leaves = (n + 1..stats.birth.len())
            .filter(|&c| stats.children[c].is_empty())
            .count();
        let mut summary = vec![
            format!("{n} points in {d} dimensions, min_samples {ms}, min_cluster_size {}", self.min_cluster_size),
            format!("{n_clusters} clusters below the root, {leaves} leaves"),
            format!("core distances {t_core:.2}s, minimum spanning tree {t_mst:.2}s, condensed tree {t_tree:.2}s"),
        ];
        summary.extend(core_note.clone());
        let mut out = Output::new(df, summary);
        out.details = serde_json::json!({ "seconds": { "core_distances": t_core, "mst": t_mst, "condense": t_tree }, "core_distances": core_note });
        out
    }
}

/// The core distances of a run's points, the KD-tree they are indexed by, and where they
/// came from (a line for the summary, when joined).
struct Cores {
    tree: Arc<KdTree>,
    core: Vec<f32>,
    note: Option<String>,
}

/// How long a run's three phases took, in seconds.
struct Seconds {
    core: f64,
    mst: f64,
    tree: f64,
}

/// The condensed tree as a table: one row per edge, the id on rows whose child is one of
/// the `n` points.
fn tree_table(
    ct: &hdbscan::CondensedTree,
    input: &DataFrame,
    n: usize,
    ctx: &RunCtx,
) -> Result<DataFrame> {
    let rows = ct.len();
    let point_rows: Vec<Option<IdxSize>> = ct
        .child
        .iter()
        .map(|&c| ((c as usize) < n).then_some(c as IdxSize))
        .collect();
    let take = IdxCa::from_iter_options(PlSmallStr::EMPTY, point_rows.into_iter());
    let ids = input
        .column(ctx.id)
        .map_err(super::pl(ctx.node))?
        .as_materialized_series()
        .take(&take)
        .map_err(super::pl(ctx.node))?;
    DataFrame::new(
        rows,
        vec![
            ids.with_name(ctx.id.into()).into_column(),
            Column::new(
                "parent".into(),
                ct.parent.iter().map(|&v| v as i64).collect::<Vec<_>>(),
            ),
            Column::new(
                "child".into(),
                ct.child.iter().map(|&v| v as i64).collect::<Vec<_>>(),
            ),
            Column::new("lambda_val".into(), ct.lambda.clone()),
            Column::new(
                "child_size".into(),
                ct.child_size.iter().map(|&v| v as i64).collect::<Vec<_>>(),
            ),
        ],
    )
    .map_err(super::pl(ctx.node))
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

    /// Trees on the same columns of the same input share one core-distance search.
    fn joint_key(&self) -> Option<String> {
        Some(serde_json::json!({ "columns": self.columns, "metric": self.metric }).to_string())
    }
}

/// Core distances a tree found for the trees joined to it (see `joint_key`), until their
/// nodes run, kept in the run's [`super::Scratch`]: keyed by the points' bytes and
/// `min_samples`, so a hit is exactly what the node would compute (only the time differs).
/// A few at most (a sweep's `min_samples` axis); the oldest are pushed out.
mod memo {
    use std::sync::{Arc, Mutex};

    use crate::numeric::kdtree::KdTree;

    pub const KEEP: usize = 16;

    pub struct Core {
        /// The tree the core distances are indexed by (positions).
        pub tree: Arc<KdTree>,
        pub core: Vec<f32>,
        /// The node whose run found them, and every `min_samples` of that search.
        pub by: String,
        pub ks: String,
    }

    /// The core distances left, oldest first.
    #[derive(Default)]
    pub struct Memo(Mutex<Vec<([u8; 32], usize, Core)>>);

    /// What decides the tree: the points (row-major, `dim` wide).
    pub fn points_key(x: &[f32], dim: usize) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(b"dagrun cluster points v1");
        h.update(&(dim as u64).to_le_bytes());
        h.update_rayon(crate::numeric::as_bytes(x));
        *h.finalize().as_bytes()
    }

    impl Memo {
        /// Leave the core distances for `min_samples` of these points for a node to take.
        pub fn put(&self, points: [u8; 32], min_samples: usize, c: Core) {
            let mut kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
            kept.push((points, min_samples, c));
            if kept.len() > KEEP {
                kept.remove(0);
            }
        }

        /// The core distances left for `min_samples` of these points, taken.
        pub fn take(&self, points: [u8; 32], min_samples: usize) -> Option<Core> {
            let mut kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
            let at = kept
                .iter()
                .position(|(p, k, _)| *p == points && *k == min_samples)?;
            Some(kept.remove(at).2)
        }
    }
}

impl super::Parse for Cluster {
    const NAMES: &'static [&'static str] = &["cluster"];

    fn parse(
        _name: &str,
        p: &mut crate::params::Params,
        _base_dir: &std::path::Path,
    ) -> Result<Self> {
        Self::parse(p)
    }
}
