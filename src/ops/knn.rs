//! `knn`: each row's nearest neighbours among the input's rows, over numeric columns
//! (names or globs), Euclidean or cosine. A `reduce` node with `method = "umap"` gets one of
//! these as a hidden node named `NODE.knn`, cached on its own, so changing only UMAP's
//! `n_components`, `min_dist`, `n_epochs` or `seed` reuses the graph.
//!
//! Exact (brute force) up to 4096 rows, NN-descent with random-projection trees above.
//! Output: the id, `nn_0..nn_{k-1}` (UInt32 row numbers of the neighbours in the input's
//! order, nearest first, the row itself excluded) and `nd_0..nd_{k-1}` (Float32 distances;
//! for cosine, `1 - cos`), and `locality` (UInt32): each row's rank in an order where rows
//! close in the input space come close together (the first random-projection tree's leaf
//! order; the input order when exact), which the UMAP layout works in for cache locality.

use polars::prelude::*;
use rayon::prelude::{IndexedParallelIterator, ParallelIterator, ParallelSliceMut};
use serde::Serialize;

use super::{columns, Output, RunCtx, SchemaError, SchemaResult};
use crate::error::{Error, Result};
use crate::numeric::nndescent;

pub const VERSION: u32 = 5;

/// The column with each row's rank in a locality order (rows close in it are close in the
/// input space).
pub const LOCALITY: &str = "locality";

/// Largest input solved exactly.
const EXACT_UP_TO: usize = 4096;

/// A distance between representation vectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    Euclidean,
    Cosine,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::Euclidean => "euclidean",
            Metric::Cosine => "cosine",
        }
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Knn {
    pub columns: Vec<String>,
    /// Neighbours per row, not counting the row itself.
    pub k: u32,
    pub metric: Metric,
    pub seed: u64,
}

impl Knn {
    pub fn schema(&self, input: &Schema, id: &str) -> SchemaResult<Schema> {
        let cols =
            columns::resolve(input, &self.columns).map_err(|m| SchemaError::new("columns", m))?;
        columns::require_numeric(input, &cols, id).map_err(|m| SchemaError::new("columns", m))?;
        let mut s = Schema::default();
        s.insert(id.into(), input.get(id).cloned().unwrap_or(DataType::Int64));
        for i in 0..self.k {
            s.insert(format!("nn_{i}").into(), DataType::UInt32);
        }
        for i in 0..self.k {
            s.insert(format!("nd_{i}").into(), DataType::Float32);
        }
        s.insert(LOCALITY.into(), DataType::UInt32);
        Ok(s)
    }

    pub fn run(&self, input: &DataFrame, ctx: &RunCtx) -> Result<Output> {
        let cols = columns::resolve(input.schema(), &self.columns)
            .map_err(|m| Error::input(ctx.node, m))?;
        let (n, d, k) = (input.height(), cols.len(), self.k as usize);
        if n <= k {
            return Err(Error::input(
                ctx.node,
                format!(
                    "{} neighbours asked of {n} rows: n_neighbors must be below the number of rows",
                    k + 1
                ),
            ));
        }
        let x = self.matrix(input, &cols, ctx)?;
        let bar = ctx.progress.bar(ctx.node, "neighbours", 1);
        let exact = n <= EXACT_UP_TO;
        let (g, rank) = if exact {
            (nndescent::brute_force(&x, d, k), (0..n as u32).collect())
        } else {
            nndescent::nn_descent_with_order(&x, d, &nndescent::Params::for_size(n, k, self.seed))
        };
        bar.inc(1);
        bar.finish();
        refuse_duplicates(&g, n, k, input, ctx)?;
        let df = self.frame(input, &g, rank, ctx)?;
        let how = if exact { "exact" } else { "NN-descent" };
        Ok(Output::new(
            df,
            vec![format!(
                "{k} neighbours of {n} rows in {d} dimensions ({how}, {})",
                self.metric
            )],
        ))
    }

    /// The input's columns `cols` as a row-major matrix; for cosine, each row made a unit
    /// vector (an all-zero row is an error).
    fn matrix(&self, input: &DataFrame, cols: &[String], ctx: &RunCtx) -> Result<Vec<f32>> {
        let mut x = columns::matrix_f32(input, cols, ctx.node)?;
        if self.metric == Metric::Cosine {
            columns::normalise_rows(&mut x, cols.len(), |r| {
                Err(Error::input(
                    ctx.node,
                    format!("row {r} is all zeros: the cosine metric is undefined for it"),
                ))
            })?;
        }
        Ok(x)
    }

    /// The output table: the id, the neighbours `nn_*`, their distances `nd_*` (for cosine,
    /// `1 - cos`) and each row's `locality` rank.
    fn frame(
        &self,
        input: &DataFrame,
        g: &nndescent::KnnGraph,
        rank: Vec<u32>,
        ctx: &RunCtx,
    ) -> Result<DataFrame> {
        let (n, k) = (input.height(), self.k as usize);
        let cosine = self.metric == Metric::Cosine;
        let mut out: Vec<Column> = Vec::with_capacity(2 * k + 2);
        out.push(input.column(ctx.id).map_err(super::pl(ctx.node))?.clone());
        for s in 0..k {
            out.push(Column::new(
                format!("nn_{s}").into(),
                (0..n).map(|i| g.indices[i * k + s]).collect::<Vec<u32>>(),
            ));
        }
        for s in 0..k {
            let col: Vec<f32> = (0..n)
                .map(|i| {
                    let e = g.distances[i * k + s];
                    if cosine {
                        e * e / 2.0
                    } else {
                        e
                    }
                })
                .collect();
            out.push(Column::new(format!("nd_{s}").into(), col));
        }
        out.push(Column::new(LOCALITY.into(), rank));
        DataFrame::new(n, out).map_err(super::pl(ctx.node))
    }
}

/// An error if a row's every neighbour in `g` is at distance zero: it has k or more exact
/// duplicates, so its neighbourhood, and so its place in a layout, is undefined (UMAP would
/// invent structure there, and HDBSCAN find classes in it).
fn refuse_duplicates(
    g: &nndescent::KnnGraph,
    n: usize,
    k: usize,
    input: &DataFrame,
    ctx: &RunCtx,
) -> Result<()> {
    let degenerate: Vec<usize> = (0..n)
        .filter(|&i| g.distances[i * k + k - 1] == 0.0)
        .collect();
    let Some(&first) = degenerate.first() else {
        return Ok(());
    };
    let id = input
        .column(ctx.id)
        .map_err(super::pl(ctx.node))?
        .get(first)
        .map(|v| v.str_value().into_owned())
        .unwrap_or_default();
    Err(Error::input(
        ctx.node,
        format!(
            "{} rows have {k} or more exact duplicates in the feature columns (the first: id `{id}`): their neighbourhoods are undefined; drop repeated rows upstream",
            degenerate.len()
        ),
    ))
}

/// Read a `knn` table back: (indices, distances, k), row-major.
pub fn from_table(df: &DataFrame, node: &str) -> Result<(Vec<u32>, Vec<f32>, usize)> {
    let k = df
        .get_column_names()
        .iter()
        .filter(|c| c.starts_with("nn_"))
        .count();
    let n = df.height();
    let nulls = || Error::input(node, "neighbour table has nulls");
    // Each column made contiguous, then rows written in parallel, each from every column
    // at its index.
    let mut idx_cols = Vec::with_capacity(k);
    let mut dist_cols = Vec::with_capacity(k);
    for s in 0..k {
        idx_cols.push(
            df.column(&format!("nn_{s}"))
                .map_err(super::pl(node))?
                .u32()
                .map_err(super::pl(node))?
                .rechunk()
                .into_owned(),
        );
        dist_cols.push(
            df.column(&format!("nd_{s}"))
                .map_err(super::pl(node))?
                .f32()
                .map_err(super::pl(node))?
                .rechunk()
                .into_owned(),
        );
    }
    let idx_cols: Vec<&[u32]> = idx_cols
        .iter()
        .map(|c| c.cont_slice().map_err(|_| nulls()))
        .collect::<Result<_>>()?;
    let dist_cols: Vec<&[f32]> = dist_cols
        .iter()
        .map(|c| c.cont_slice().map_err(|_| nulls()))
        .collect::<Result<_>>()?;
    let mut idx = vec![0u32; n * k];
    let mut dist = vec![0f32; n * k];
    idx.par_chunks_mut(k.max(1))
        .zip(dist.par_chunks_mut(k.max(1)))
        .enumerate()
        .for_each(|(i, (ir, dr))| {
            for s in 0..k {
                ir[s] = idx_cols[s][i];
                dr[s] = dist_cols[s][i];
            }
        });
    Ok((idx, dist, k))
}

/// The `locality` ranks of a `knn` table, checked to be a permutation of its rows.
pub fn locality_from_table(df: &DataFrame, node: &str) -> Result<Vec<u32>> {
    let n = df.height();
    let c = df.column(LOCALITY).map_err(super::pl(node))?;
    let rank: Vec<u32> = c
        .u32()
        .map_err(super::pl(node))?
        .iter()
        .map(|v| v.ok_or_else(|| Error::input(node, "neighbour table has nulls")))
        .collect::<Result<_>>()?;
    let mut seen = vec![false; n];
    for &r in &rank {
        if r as usize >= n || std::mem::replace(&mut seen[r as usize], true) {
            return Err(Error::input(node, format!("the neighbour table's `{LOCALITY}` column is not a permutation of its {n} rows")));
        }
    }
    Ok(rank)
}

impl super::Kind for Knn {
    super::kind_basics!("knn", Exactly(1));

    fn output_schema(&self, inputs: &[SchemaRef], id: &str) -> Result<super::SchemaResult<Schema>> {
        Ok(self.schema(&inputs[0], id))
    }

    fn compute(&self, inputs: &[std::sync::Arc<DataFrame>], ctx: &RunCtx) -> Result<Output> {
        self.run(&inputs[0], ctx)
    }

    /// Neighbour lists while the graph is built: about 16 bytes per neighbour.
    fn working_memory(&self, rows: u64) -> u64 {
        rows * self.k as u64 * 16
    }

    fn multithreaded(&self) -> bool {
        true
    }
}
