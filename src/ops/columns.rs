//! Column selection shared by ops: names or globs (`feat_*`, `x?`) resolved against a
//! schema, and dense row-major matrices gathered from numeric columns for numeric kernels.

use polars::prelude::*;

use crate::error::{Error, Result};

/// `*` matches any run of characters, `?` any one character; everything else is literal.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

fn is_glob(s: &str) -> bool {
    s.contains('*') || s.contains('?')
}

/// A short list of a schema's column names for error messages.
pub fn preview(schema: &Schema) -> String {
    let names: Vec<&str> = schema.iter_names().map(|s| s.as_str()).collect();
    if names.len() <= 8 {
        names.join(", ")
    } else {
        format!("{}, ... ({} columns)", names[..6].join(", "), names.len())
    }
}

/// Resolve names and globs against `schema`, in pattern order, then schema order within a
/// glob; duplicates are dropped. A name that is absent or a glob that matches nothing is an
/// error.
pub fn resolve(schema: &Schema, patterns: &[String]) -> std::result::Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for pat in patterns {
        let matched: Vec<String> = if is_glob(pat) {
            schema
                .iter_names()
                .filter(|n| glob_match(pat, n))
                .map(|n| n.to_string())
                .collect()
        } else if schema.contains(pat) {
            vec![pat.clone()]
        } else {
            return Err(format!(
                "column `{pat}` not found in the input (columns: {})",
                preview(schema)
            ));
        };
        if matched.is_empty() {
            return Err(format!(
                "no column matches `{pat}` (columns: {})",
                preview(schema)
            ));
        }
        for m in matched {
            if !out.contains(&m) {
                out.push(m);
            }
        }
    }
    Ok(out)
}

pub fn is_numeric(dt: &DataType) -> bool {
    dt.is_primitive_numeric()
}

/// Check that every column is numeric and none is the id column.
pub fn require_numeric(
    schema: &Schema,
    cols: &[String],
    id: &str,
) -> std::result::Result<(), String> {
    if cols.is_empty() {
        return Err("selects no column: a numeric kernel needs at least one".into());
    }
    if cols.iter().any(|c| c == id) {
        return Err(format!(
            "column `{id}` is the id column, not a feature: leave it out of `columns`"
        ));
    }
    for c in cols {
        let dt = schema.get(c).expect("resolved column");
        if !is_numeric(dt) {
            return Err(format!("column `{c}` is {dt}, not numeric"));
        }
    }
    Ok(())
}

/// The largest magnitude a value may have in a matrix the numeric kernels work on: squared
/// distances over thousands of such columns stay finite in f32, with room to spare.
pub const MAX_ABS: f64 = 1e15;

/// Gather numeric columns into a row-major f32 matrix (`rows × cols.len()`), refusing
/// null, non-finite and out-of-range values with an error naming the column, counting the
/// rows and giving the first one. Columns are taken sixteen at a time and written row by
/// row, so each row's write is one cache line rather than sixteen scattered ones (column
/// by column, the transpose was most of a `similar` query at 632k rows).
pub fn matrix_f32(df: &DataFrame, cols: &[String], node: &str) -> Result<Vec<f32>> {
    const GROUP: usize = 16;
    let (n, d) = (df.height(), cols.len());
    let mut x = vec![0f32; n * d];
    for (g, names) in cols.chunks(GROUP).enumerate() {
        let mut group: Vec<Vec<f32>> = Vec::with_capacity(names.len());
        for name in names {
            group.push(checked_column(df, name, node)?);
        }
        let j0 = g * GROUP;
        for (i, row) in x.chunks_exact_mut(d).enumerate() {
            for (jj, c) in group.iter().enumerate() {
                row[j0 + jj] = c[i];
            }
        }
    }
    Ok(x)
}

/// One numeric column as f32, every value checked (see [`matrix_f32`]).
fn checked_column(df: &DataFrame, name: &str, node: &str) -> Result<Vec<f32>> {
    let col = df.column(name).map_err(|e| Error::polars(node, e))?;
    let s = col
        .as_materialized_series()
        .cast(&DataType::Float64)
        .map_err(|e| Error::polars(node, e))?;
    let ca = s.f64().map_err(|e| Error::polars(node, e))?;
    let mut out = Vec::with_capacity(ca.len());
    let (mut nulls, mut bad, mut huge) = (0usize, 0usize, 0usize);
    let mut first: Option<(usize, String)> = None;
    for (i, v) in ca.iter().enumerate() {
        let why = match v {
            Some(v) if v.is_finite() && v.abs() <= MAX_ABS => {
                out.push(v as f32);
                continue;
            }
            Some(v) if v.is_finite() => {
                huge += 1;
                format!("{v:e}")
            }
            Some(v) => {
                bad += 1;
                format!("{v}")
            }
            None => {
                nulls += 1;
                "null".to_owned()
            }
        };
        out.push(0.0);
        first.get_or_insert((i, why));
    }
    if let Some((row, v)) = first {
        let mut parts = Vec::new();
        for (c, what) in [
            (nulls, "null"),
            (bad, "NaN or infinite"),
            (huge, "beyond ±1e15 (rescale the column)"),
        ] {
            if c > 0 {
                parts.push(format!("{c} {what}"));
            }
        }
        return Err(Error::input(
            node,
            format!(
                "column `{name}` has {} unusable row(s): {}; the first is data row {} (`{v}`); drop, fill or rescale them upstream",
                nulls + bad + huge,
                parts.join(", "),
                row + 1
            ),
        ));
    }
    Ok(out)
}

/// Scale each row to unit length; `zero(row)` decides what an all-zero row is.
pub fn normalise_rows(x: &mut [f32], d: usize, zero: impl Fn(usize) -> Result<()>) -> Result<()> {
    for (r, row) in x.chunks_exact_mut(d).enumerate() {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm == 0.0 {
            zero(r)?;
            continue;
        }
        row.iter_mut().for_each(|v| *v /= norm);
    }
    Ok(())
}

/// Column `name` (the id column, or any other) as text, one string per row (null as empty).
pub fn strings(df: &DataFrame, name: &str, node: &str) -> Result<Vec<String>> {
    let c = df
        .column(name)
        .map_err(super::pl(node))?
        .cast(&DataType::String)
        .map_err(super::pl(node))?;
    Ok(c.str()
        .map_err(super::pl(node))?
        .iter()
        .map(|v| v.unwrap_or("").to_owned())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("feat_*", "feat_12"));
        assert!(glob_match("feat_*", "feat_"));
        assert!(!glob_match("feat_*", "xfeat_1"));
        assert!(glob_match("*_fraction", "disk-edge-on_yes_fraction"));
        assert!(glob_match("x?", "x1"));
        assert!(!glob_match("x?", "x12"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
    }

    #[test]
    fn resolve_keeps_order_and_reports_misses() {
        let schema = Schema::from_iter([
            Field::new("id".into(), DataType::Int64),
            Field::new("feat_0".into(), DataType::Float32),
            Field::new("feat_1".into(), DataType::Float32),
            Field::new("ra".into(), DataType::Float64),
        ]);
        assert_eq!(
            resolve(&schema, &["ra".into(), "feat_*".into()]).unwrap(),
            ["ra", "feat_0", "feat_1"]
        );
        assert!(resolve(&schema, &["dec".into()])
            .unwrap_err()
            .contains("`dec` not found"));
        assert!(resolve(&schema, &["pca_*".into()])
            .unwrap_err()
            .contains("no column matches `pca_*`"));
    }
}
