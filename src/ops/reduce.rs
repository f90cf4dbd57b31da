//! `reduce`: dimensionality reduction of numeric columns (names or globs, default
//! `feat_*`) to `n_components` columns named `{prefix}{i}` (Float32), with the id column.
//!
//! `method = "pca"` is here (the paper's 1280/1024 → 128 compression of Zoobot features);
//! `method = "umap"` is being built in issue #4 and is refused at validation until then.

use polars::prelude::*;
use serde::Serialize;

use super::{columns, Output, RunCtx, SchemaError, SchemaResult};
use crate::error::{Error, Result};
use crate::numeric::pca;
use crate::spec::params::Params;

pub const VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize)]
pub struct Reduce {
    pub method: String,
    pub columns: Vec<String>,
    pub n_components: u32,
    pub prefix: String,
}

impl Reduce {
    pub fn parse(p: &mut Params) -> Result<Self> {
        let method = p.req_string("method")?;
        match method.as_str() {
            "pca" => {}
            "umap" => {
                return Err(p.error(
                    "method",
                    "`umap` is not available in this version of dagrun yet (it is being built in issue #4); use `pca` meanwhile",
                ))
            }
            other => return Err(p.error("method", format!("`{other}` is not one of `pca`, `umap`"))),
        }
        let columns = p.strings("columns")?.unwrap_or_else(|| vec!["feat_*".into()]);
        let n_components = p.int_in("n_components", None, 1, 100_000)? as u32;
        let prefix = p.string("prefix")?.unwrap_or_else(|| format!("{method}_"));
        Ok(Reduce { method, columns, n_components, prefix })
    }

    pub fn schema(&self, input: &Schema, id: &str) -> SchemaResult<Schema> {
        let cols = columns::resolve(input, &self.columns).map_err(|m| SchemaError::new("columns", m))?;
        columns::require_numeric(input, &cols).map_err(|m| SchemaError::new("columns", m))?;
        if self.n_components as usize > cols.len() {
            return Err(SchemaError::new(
                "n_components",
                format!("{} components asked of {} input columns", self.n_components, cols.len()),
            ));
        }
        let mut s = Schema::default();
        s.insert(id.into(), input.get(id).cloned().unwrap_or(DataType::Int64));
        for i in 0..self.n_components {
            s.insert(format!("{}{i}", self.prefix).into(), DataType::Float32);
        }
        Ok(s)
    }

    pub fn run(&self, input: &DataFrame, ctx: &RunCtx) -> Result<Output> {
        let cols = columns::resolve(input.schema(), &self.columns).map_err(|m| Error::input(ctx.node, m))?;
        let (n, d, k) = (input.height(), cols.len(), self.n_components as usize);
        if n < 2 {
            return Err(Error::input(ctx.node, format!("PCA needs at least 2 rows, the input has {n}")));
        }
        let x = columns::matrix_f32(input, &cols, ctx.node)?;
        let bar = ctx.progress.bar(ctx.node, "pca", 2);
        let fit = pca::fit(&x, d, k);
        bar.inc(1);
        let y = fit.transform(&x);
        bar.inc(1);
        bar.finish();
        let mut out: Vec<Column> = Vec::with_capacity(k + 1);
        out.push(input.column(ctx.id).map_err(super::pl(ctx.node))?.clone());
        for j in 0..k {
            out.push(Column::new(format!("{}{j}", self.prefix).into(), (0..n).map(|i| y[i * k + j]).collect::<Vec<f32>>()));
        }
        let df = DataFrame::new(n, out).map_err(super::pl(ctx.node))?;
        let explained: f64 = fit.explained_variance.iter().sum::<f64>() / fit.total_variance.max(f64::MIN_POSITIVE);
        let summary = vec![format!("PCA {d} -> {k} columns, {:.1}% of the variance kept", 100.0 * explained)];
        Ok(Output::new(df, summary))
    }
}
