//! `report`: what the classes are, for a person to look at. Inputs: `[classes, catalogue]`
//! (a `select-leaves` / `select-eom` output and any table with the id column, e.g. the
//! filtered catalogue).
//!
//! Output table: the class members (label ≥ 0) with their catalogue rows (every column but
//! the representation `feat_*`), ordered by class. Beside it, a self-contained
//! `index.html`: the number of classes and the clustered fraction, a class table (size,
//! mean membership probability, the mean of each numeric catalogue column — e.g. vote
//! fractions — and, for text columns such as `planted_class`, the most common value and its
//! share), and per class `members` randomly chosen member rows (seeded, so the same inputs
//! give the same report). The 2-D scatter, image galleries and sweep plots of issue #5 are
//! not here yet.

use polars::prelude::*;
use serde::Serialize;

use super::{columns, Output, RunCtx, SchemaError, SchemaResult};
use crate::error::{Error, Result};
use crate::numeric::rng::Rng;
use crate::spec::params::Params;

pub const VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub members: u32,
    pub seed: u64,
    /// Catalogue columns left out of the report (globs).
    pub exclude: Vec<String>,
}

impl Report {
    pub fn parse(p: &mut Params) -> Result<Self> {
        let members = p.int_in("members", Some(12), 0, 10_000)? as u32;
        let seed = p.int_in("seed", Some(0), 0, i64::MAX)? as u64;
        let exclude = p.strings("exclude")?.unwrap_or_else(|| vec!["feat_*".into()]);
        Ok(Report { members, seed, exclude })
    }

    fn shown(&self, catalogue: &Schema, id: &str) -> Vec<String> {
        catalogue
            .iter_names()
            .map(|n| n.to_string())
            .filter(|n| n != id && n != "label" && n != "probability" && !self.exclude.iter().any(|g| columns::glob_match(g, n)))
            .collect()
    }

    pub fn schema(&self, classes: &Schema, catalogue: &Schema, id: &str) -> SchemaResult<Schema> {
        for c in ["label", "probability"] {
            if !classes.contains(c) {
                return Err(SchemaError::new("inputs", format!("the first input has no `{c}` column: it should be a `select-leaves` or `select-eom` node")));
            }
        }
        let mut s = Schema::default();
        s.insert(id.into(), classes.get(id).cloned().unwrap_or(DataType::Int64));
        s.insert("label".into(), DataType::Int32);
        s.insert("probability".into(), DataType::Float64);
        for c in self.shown(catalogue, id) {
            s.insert(c.as_str().into(), catalogue.get(&c).expect("from the schema").clone());
        }
        Ok(s)
    }

    pub fn run(&self, classes: &DataFrame, catalogue: &DataFrame, ctx: &RunCtx) -> Result<Output> {
        let shown = self.shown(catalogue.schema(), ctx.id);
        let mut cat_cols: Vec<PlSmallStr> = vec![ctx.id.into()];
        cat_cols.extend(shown.iter().map(|c| PlSmallStr::from(c.as_str())));
        let cat = catalogue.select(cat_cols).map_err(super::pl(ctx.node))?;
        let members = classes
            .clone()
            .lazy()
            .select([col(ctx.id), col("label"), col("probability")])
            .filter(col("label").gt_eq(lit(0)))
            .with_row_index("__order", None)
            .join(cat.lazy(), [col(ctx.id)], [col(ctx.id)], JoinArgs::new(JoinType::Left))
            .sort(["label", "__order"], SortMultipleOptions::default())
            .drop(Selector::ByName { names: ["__order".into()].into(), strict: true })
            .collect()
            .map_err(super::pl(ctx.node))?;
        let n_all = classes.height();
        let html = self.html(&members, n_all, &shown, ctx)?;
        let k = labels(&members, ctx.node)?.iter().copied().max().map_or(0, |m| m + 1);
        let summary = vec![format!(
            "{k} classes, {} of {n_all} galaxies ({:.2}%); report: index.html in this node's cache entry",
            members.height(),
            100.0 * members.height() as f64 / n_all.max(1) as f64
        )];
        let mut out = Output::new(members, summary);
        out.files.push(("index.html".into(), html.into_bytes()));
        Ok(out)
    }

    fn html(&self, m: &DataFrame, n_all: usize, shown: &[String], ctx: &RunCtx) -> Result<String> {
        let node = ctx.node;
        let lab = labels(m, node)?;
        let k = lab.iter().copied().max().map_or(0, |v| v + 1) as usize;
        let mut rows_of: Vec<Vec<usize>> = vec![Vec::new(); k];
        for (i, &l) in lab.iter().enumerate() {
            rows_of[l as usize].push(i);
        }
        let text = |name: &str| -> Result<Vec<String>> {
            let s = m.column(name).map_err(super::pl(node))?.as_materialized_series().cast(&DataType::String).map_err(super::pl(node))?;
            Ok(s.str().map_err(super::pl(node))?.iter().map(|v| v.unwrap_or("").to_owned()).collect())
        };
        let numeric = |name: &str| -> Result<Vec<Option<f64>>> {
            let s = m.column(name).map_err(super::pl(node))?.as_materialized_series().cast(&DataType::Float64).map_err(super::pl(node))?;
            Ok(s.f64().map_err(super::pl(node))?.iter().map(|v| v.filter(|x| x.is_finite())).collect())
        };
        let prob = numeric("probability")?;
        let ids = text(ctx.id)?;
        let schema = m.schema();
        let mut h = String::new();
        h.push_str("<!doctype html><html><head><meta charset=\"utf-8\"><title>dagrun report</title><style>");
        h.push_str("body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;font-size:13px;margin:1em 0}");
        h.push_str("td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#f2f2f2}td.t{text-align:left}h2{margin-top:2em}</style></head><body>");
        h.push_str(&format!(
            "<h1>Classes found by <code>{}</code></h1><p>{k} classes; {} of {n_all} galaxies ({:.2}%) are in a class.</p>",
            esc(ctx.pipeline),
            m.height(),
            100.0 * m.height() as f64 / n_all.max(1) as f64
        ));
        // Class table.
        h.push_str("<table><tr><th>class</th><th>size</th><th>mean probability</th>");
        for c in shown {
            h.push_str(&format!("<th>{}</th>", esc(c)));
        }
        h.push_str("</tr>");
        let mut per_col: Vec<(bool, Vec<String>, Vec<Option<f64>>)> = Vec::new();
        for c in shown {
            let is_num = columns::is_numeric(schema.get(c).expect("shown column"));
            per_col.push(if is_num { (true, Vec::new(), numeric(c)?) } else { (false, text(c)?, Vec::new()) });
        }
        for (l, rows) in rows_of.iter().enumerate() {
            let mp = mean(rows.iter().map(|&i| prob[i]));
            h.push_str(&format!("<tr><td>{l}</td><td>{}</td><td>{}</td>", rows.len(), fmt(mp)));
            for (is_num, t, v) in &per_col {
                if *is_num {
                    h.push_str(&format!("<td>{}</td>", fmt(mean(rows.iter().map(|&i| v[i])))));
                } else {
                    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
                    for &i in rows {
                        *counts.entry(t[i].as_str()).or_default() += 1;
                    }
                    let (top, c) = counts.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))).map_or(("", 0), |(k, v)| (*k, *v));
                    h.push_str(&format!("<td class=\"t\">{} ({:.0}%)</td>", esc(top), 100.0 * c as f64 / rows.len().max(1) as f64));
                }
            }
            h.push_str("</tr>");
        }
        h.push_str("</table>");
        // Members of each class.
        for (l, rows) in rows_of.iter().enumerate() {
            let mut pick = rows.clone();
            Rng::new(self.seed, l as u64).shuffle(&mut pick);
            pick.truncate(self.members as usize);
            pick.sort_unstable();
            h.push_str(&format!("<h2>Class {l} ({} galaxies)</h2><table><tr><th>{}</th><th>probability</th>", rows.len(), esc(ctx.id)));
            for c in shown {
                h.push_str(&format!("<th>{}</th>", esc(c)));
            }
            h.push_str("</tr>");
            for &i in &pick {
                h.push_str(&format!("<tr><td class=\"t\">{}</td><td>{}</td>", esc(&ids[i]), fmt(prob[i])));
                for (is_num, t, v) in &per_col {
                    if *is_num {
                        h.push_str(&format!("<td>{}</td>", fmt(v[i])));
                    } else {
                        h.push_str(&format!("<td class=\"t\">{}</td>", esc(&t[i])));
                    }
                }
                h.push_str("</tr>");
            }
            h.push_str("</table>");
        }
        h.push_str(&format!("<p><small>dagrun {}</small></p></body></html>\n", env!("CARGO_PKG_VERSION")));
        Ok(h)
    }
}

fn labels(m: &DataFrame, node: &str) -> Result<Vec<i32>> {
    let c = m.column("label").map_err(super::pl(node))?;
    c.i32().map_err(super::pl(node))?.iter().map(|v| v.ok_or_else(|| Error::input(node, "null label"))).collect()
}

fn mean(v: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let (mut s, mut n) = (0.0, 0usize);
    for x in v.flatten() {
        s += x;
        n += 1;
    }
    (n > 0).then(|| s / n as f64)
}

fn fmt(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |x| format!("{x:.3}"))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
