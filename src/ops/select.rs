//! `select-leaves` (the paper's selection: the leaves of the condensed tree) and
//! `select-eom` (HDBSCAN's default, excess of mass), over a `cluster` node's condensed tree.
//!
//! Parameters: `allow_single_cluster` (false), `cluster_selection_epsilon` (0.0), and for
//! EOM `max_cluster_size` (0 = no limit), with the `hdbscan` library's semantics.
//!
//! Output, one row per point in the clustered input's order: the id, `label` (Int32, −1 for
//! noise; classes numbered by condensed-tree id), `probability` (membership strength) and
//! `outlier_score` (GLOSH). Per-class size, λ birth and death, stability and persistence go
//! to the manifest's details and the summary.

use polars::prelude::*;
use serde::Serialize;

use super::{cluster::TREE_COLUMNS, Output, RunCtx, SchemaError, SchemaResult};
use crate::error::{Error, Result};
use crate::numeric::hdbscan::{self, CondensedTree, Method, Selection};
use crate::params::Params;

pub const VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize)]
pub struct Select {
    #[serde(skip)]
    pub method: Method,
    pub allow_single_cluster: bool,
    pub cluster_selection_epsilon: f64,
    pub max_cluster_size: u64,
}

impl Select {
    pub fn parse(p: &mut Params, method: Method) -> Result<Self> {
        let allow_single_cluster = p.bool("allow_single_cluster", false)?;
        let cluster_selection_epsilon =
            p.float_in("cluster_selection_epsilon", 0.0, 0.0, f64::MAX)?;
        let max_cluster_size = if method == Method::Eom {
            p.int_in("max_cluster_size", Some(0), 0, i64::MAX)? as u64
        } else {
            0
        };
        Ok(Select {
            method,
            allow_single_cluster,
            cluster_selection_epsilon,
            max_cluster_size,
        })
    }

    /// The selection these parameters ask HDBSCAN's condensed tree for.
    pub fn selection(&self) -> Selection {
        Selection {
            method: self.method,
            allow_single_cluster: self.allow_single_cluster,
            epsilon: self.cluster_selection_epsilon,
            max_cluster_size: self.max_cluster_size as usize,
        }
    }

    pub fn schema(&self, input: &Schema, id: &str) -> SchemaResult<Schema> {
        for c in TREE_COLUMNS {
            if !input.contains(c) {
                return Err(SchemaError::new("input", format!("the input is not a condensed tree (a `cluster` node's output): no column `{c}`")));
            }
        }
        let mut s = Schema::default();
        s.insert(id.into(), input.get(id).cloned().unwrap_or(DataType::Int64));
        s.insert("label".into(), DataType::Int32);
        s.insert("probability".into(), DataType::Float64);
        s.insert("outlier_score".into(), DataType::Float64);
        Ok(s)
    }

    pub(crate) fn tree(input: &DataFrame, node: &str) -> Result<CondensedTree> {
        let int = |name: &str| -> Result<Vec<i64>> {
            let s = input
                .column(name)
                .map_err(super::pl(node))?
                .as_materialized_series()
                .cast(&DataType::Int64)
                .map_err(super::pl(node))?;
            s.i64()
                .map_err(super::pl(node))?
                .iter()
                .map(|v| v.ok_or_else(|| Error::input(node, format!("column `{name}` has nulls"))))
                .collect()
        };
        let (parent, child, size) = (int("parent")?, int("child")?, int("child_size")?);
        let lambda = input
            .column("lambda_val")
            .map_err(super::pl(node))?
            .as_materialized_series()
            .cast(&DataType::Float64)
            .map_err(super::pl(node))?;
        let lambda: Vec<f64> = lambda
            .f64()
            .map_err(super::pl(node))?
            .iter()
            .map(|v| v.unwrap_or(f64::NAN))
            .collect();
        let root = parent.iter().copied().min().unwrap_or(0);
        let n_points = child.iter().filter(|&&c| c < root).count();
        let bad = || {
            Error::input(
                node,
                "the condensed tree is inconsistent (was it made by a `cluster` node?)",
            )
        };
        if root < 0 || root as usize != n_points || lambda.iter().any(|l| l.is_nan()) {
            return Err(bad());
        }
        let to_u32 = |v: &[i64]| {
            v.iter()
                .map(|&x| u32::try_from(x).map_err(|_| bad()))
                .collect::<Result<Vec<u32>>>()
        };
        Ok(CondensedTree {
            n_points,
            parent: to_u32(&parent)?,
            child: to_u32(&child)?,
            lambda,
            child_size: to_u32(&size)?,
        })
    }

    pub fn run(&self, input: &DataFrame, ctx: &RunCtx) -> Result<Output> {
        let t = Self::tree(input, ctx.node)?;
        let n = t.n_points;
        let stats = hdbscan::cluster_stats(&t);
        let sel = self.selection();
        let chosen = hdbscan::select(&t, &stats, &sel);
        let lab = hdbscan::label_points(&t, &stats, &chosen, &sel);

        // The id of each point, in point order, from the rows whose child is a point.
        let mut row_of = vec![0 as IdxSize; n];
        for (i, &c) in t.child.iter().enumerate() {
            if (c as usize) < n {
                row_of[c as usize] = i as IdxSize;
            }
        }
        let ids = input
            .column(ctx.id)
            .map_err(super::pl(ctx.node))?
            .as_materialized_series()
            .take(&IdxCa::from_vec(PlSmallStr::EMPTY, row_of))
            .map_err(super::pl(ctx.node))?;
        let labels: Vec<i32> = lab
            .label
            .iter()
            .map(|l| l.map_or(-1, |v| v as i32))
            .collect();
        let df = DataFrame::new(
            n,
            vec![
                ids.with_name(ctx.id.into()).into_column(),
                Column::new("label".into(), labels.clone()),
                Column::new("probability".into(), lab.probability.clone()),
                Column::new("outlier_score".into(), lab.outlier_score.clone()),
            ],
        )
        .map_err(super::pl(ctx.node))?;

        let mut counts = vec![0usize; chosen.len()];
        for l in labels.iter().filter(|&&l| l >= 0) {
            counts[*l as usize] += 1;
        }
        let inv = |l: f64| if l > 0.0 { 1.0 / l } else { f64::INFINITY };
        let classes: Vec<serde_json::Value> = chosen
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                let (b, d) = (stats.birth[c as usize], stats.death[c as usize]);
                serde_json::json!({
                    "label": i, "cluster": c, "size": counts[i], "size_at_birth": stats.size[c as usize],
                    "lambda_birth": finite(b), "lambda_death": finite(d), "stability": finite(stats.stability[c as usize]),
                    "persistence": finite(inv(b) - inv(d)),
                })
            })
            .collect();
        let clustered: usize = counts.iter().sum();
        let mut sorted = counts.clone();
        sorted.sort_unstable();
        let mut summary = vec![format!(
            "{} classes; {clustered} of {n} points in a class ({:.2}%)",
            chosen.len(),
            100.0 * clustered as f64 / n.max(1) as f64
        )];
        if let (Some(min), Some(max)) = (sorted.first(), sorted.last()) {
            summary.push(format!(
                "class sizes: min {min}, median {}, max {max}",
                sorted[sorted.len() / 2]
            ));
        }
        let mut out = Output::new(df, summary);
        out.details = serde_json::json!({ "classes": classes });
        Ok(out)
    }
}

/// JSON has no infinity: report it as null.
fn finite(v: f64) -> serde_json::Value {
    if v.is_finite() {
        serde_json::json!(v)
    } else {
        serde_json::Value::Null
    }
}

impl super::Kind for Select {
    fn name(&self) -> &'static str {
        match self.method {
            Method::Leaf => "select-leaves",
            Method::Eom => "select-eom",
        }
    }

    fn version(&self) -> u32 {
        VERSION
    }

    fn arity(&self) -> super::Arity {
        super::Arity::Exactly(1)
    }

    fn output_schema(&self, inputs: &[SchemaRef], id: &str) -> Result<SchemaResult<Schema>> {
        Ok(self.schema(&inputs[0], id))
    }

    fn compute(&self, inputs: &[std::sync::Arc<DataFrame>], ctx: &RunCtx) -> Result<Output> {
        self.run(&inputs[0], ctx)
    }
}

impl super::Parse for Select {
    const NAMES: &'static [&'static str] = &["select-leaves", "select-eom"];

    fn parse(name: &str, p: &mut Params, _base_dir: &std::path::Path) -> Result<Self> {
        Self::parse(
            p,
            if name == "select-eom" {
                Method::Eom
            } else {
                Method::Leaf
            },
        )
    }
}
