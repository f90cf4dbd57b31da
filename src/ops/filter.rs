//! `filter`: drop rows where any `drop_where` condition holds and/or keep rows where every
//! `keep_where` condition holds.
//!
//! A condition is `COLUMN OP VALUE` with OP one of `>=`, `>`, `<=`, `<`, `==`, `!=`
//! (VALUE a number, a quoted string or `true`/`false`), or `COLUMN is null` /
//! `COLUMN is not null`. Column names may contain `-` (GZ DESI's do); wrap names with
//! spaces in backticks.
//!
//! **Missing values never match a comparison.** GZ DESI writes NaN where a question was
//! likely not asked; a null or NaN value makes every comparison false, so with
//! `drop_where` the row is kept and with `keep_where` it is dropped. `is null` matches
//! both null and NaN, for when you want to act on missing values explicitly.
//!
//! Each condition is a row mask; the summary reports how many rows each condition matched.

use polars::prelude::*;
use serde::Serialize;

use super::{columns, Output, RunCtx, SchemaError, SchemaResult};
use crate::error::{Error, Result};
use crate::params::Params;

pub const VERSION: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CmpOp {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
    Ne,
    IsNull,
    IsNotNull,
}

impl CmpOp {
    fn symbol(self) -> &'static str {
        match self {
            CmpOp::Ge => ">=",
            CmpOp::Gt => ">",
            CmpOp::Le => "<=",
            CmpOp::Lt => "<",
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::IsNull => "is null",
            CmpOp::IsNotNull => "is not null",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Lit {
    Num(f64),
    Str(String),
    Bool(bool),
    None,
}

/// One parsed condition; its serialised form (not its text) enters the cache key, so
/// `x>=0.5` and `x >= 0.50` share a key.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Cond {
    pub column: String,
    pub op: CmpOp,
    pub value: Lit,
}

impl std::fmt::Display for Cond {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.value {
            Lit::None => write!(f, "{} {}", self.column, self.op.symbol()),
            Lit::Num(v) => write!(f, "{} {} {v}", self.column, self.op.symbol()),
            Lit::Str(s) => write!(f, "{} {} \"{s}\"", self.column, self.op.symbol()),
            Lit::Bool(b) => write!(f, "{} {} {b}", self.column, self.op.symbol()),
        }
    }
}

const SYNTAX: &str =
    "expected `COLUMN OP VALUE` (OP one of >=, >, <=, <, ==, !=) or `COLUMN is [not] null`";

/// Parse one condition.
pub fn parse_cond(text: &str) -> std::result::Result<Cond, String> {
    let t = text.trim();
    let (column, rest) = if let Some(stripped) = t.strip_prefix('`') {
        let end = stripped
            .find('`')
            .ok_or_else(|| format!("unclosed backtick in `{t}`"))?;
        (stripped[..end].to_owned(), stripped[end + 1..].trim_start())
    } else {
        let end = t
            .find(|c: char| c.is_whitespace() || "<>=!".contains(c))
            .unwrap_or(t.len());
        (t[..end].to_owned(), t[end..].trim_start())
    };
    if column.is_empty() {
        return Err(format!("no column in `{t}`: {SYNTAX}"));
    }
    let lower = rest.to_ascii_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    match words.as_slice() {
        ["is", "null"] => {
            return Ok(Cond {
                column,
                op: CmpOp::IsNull,
                value: Lit::None,
            })
        }
        ["is", "not", "null"] => {
            return Ok(Cond {
                column,
                op: CmpOp::IsNotNull,
                value: Lit::None,
            })
        }
        _ => {}
    }
    let ops = [
        (">=", CmpOp::Ge),
        ("<=", CmpOp::Le),
        ("==", CmpOp::Eq),
        ("!=", CmpOp::Ne),
        (">", CmpOp::Gt),
        ("<", CmpOp::Lt),
        ("=", CmpOp::Eq),
    ];
    let (op, value) = ops
        .iter()
        .find_map(|(sym, op)| rest.strip_prefix(sym).map(|v| (*op, v.trim())))
        .ok_or_else(|| format!("cannot parse `{t}`: {SYNTAX}"))?;
    let value = if value.is_empty() {
        return Err(format!("no value in `{t}`: {SYNTAX}"));
    } else if let Ok(v) = value.parse::<f64>() {
        if !v.is_finite() {
            return Err(format!("the value in `{t}` must be a finite number"));
        }
        Lit::Num(if v == 0.0 { 0.0 } else { v })
    } else if value == "true" || value == "false" {
        Lit::Bool(value == "true")
    } else if value.len() >= 2
        && ((value.starts_with('"') && value.ends_with('"'))
            || (value.starts_with('\'') && value.ends_with('\'')))
    {
        Lit::Str(value[1..value.len() - 1].to_owned())
    } else {
        return Err(format!("cannot read the value `{value}` in `{t}`: use a number, a quoted string, true or false"));
    };
    if matches!(value, Lit::Bool(_)) && !matches!(op, CmpOp::Eq | CmpOp::Ne) {
        return Err(format!("`{t}`: booleans compare only with == or !="));
    }
    Ok(Cond { column, op, value })
}

#[derive(Clone, Debug, Serialize)]
pub struct Filter {
    pub drop_where: Vec<Cond>,
    pub keep_where: Vec<Cond>,
}

impl Filter {
    pub fn parse(p: &mut Params) -> Result<Self> {
        // An empty list given is blamed by name; neither given, `drop_where`.
        let mut given: Option<&'static str> = None;
        let mut parse_list = |name: &'static str| -> Result<Vec<Cond>> {
            let texts = p.strings(name)?;
            if texts.is_some() && given.is_none() {
                given = Some(name);
            }
            texts
                .unwrap_or_default()
                .iter()
                .map(|t| parse_cond(t).map_err(|m| p.error(name, m)))
                .collect()
        };
        let drop_where = parse_list("drop_where")?;
        let keep_where = parse_list("keep_where")?;
        if drop_where.is_empty() && keep_where.is_empty() {
            return Err(match given {
                Some(name) => p.error(name, "is empty: give at least one condition, e.g. [\"smooth-or-featured_smooth_fraction >= 0.5\"]"),
                None => p.missing("drop_where", "at least one condition in `drop_where` or `keep_where`"),
            });
        }
        Ok(Filter {
            drop_where,
            keep_where,
        })
    }

    pub fn schema(&self, input: &Schema) -> SchemaResult<Schema> {
        for (param, conds) in [
            ("drop_where", &self.drop_where),
            ("keep_where", &self.keep_where),
        ] {
            for c in conds {
                let dt = input.get(&c.column).ok_or_else(|| {
                    SchemaError::new(
                        param,
                        format!(
                            "`{c}`: column `{}` not found in the input (columns: {})",
                            c.column,
                            columns::preview(input)
                        ),
                    )
                })?;
                let ok = match &c.value {
                    Lit::None => true,
                    Lit::Num(_) => columns::is_numeric(dt),
                    Lit::Str(_) => matches!(dt, DataType::String),
                    Lit::Bool(_) => matches!(dt, DataType::Boolean),
                };
                if !ok {
                    return Err(SchemaError::new(
                        param,
                        format!(
                            "`{c}`: column `{}` is {dt}, which cannot be compared with that value",
                            c.column
                        ),
                    ));
                }
            }
        }
        Ok(input.clone())
    }

    /// Where the condition holds, row by row, never null: a missing value (null, or NaN in
    /// a float column) makes a comparison false.
    fn mask(c: &Cond, col: &Column, node: &str) -> Result<Vec<bool>> {
        use std::cmp::Ordering;
        let pl = super::pl(node);
        let holds = |o: Ordering| match c.op {
            CmpOp::Ge => o != Ordering::Less,
            CmpOp::Gt => o == Ordering::Greater,
            CmpOp::Le => o != Ordering::Greater,
            CmpOp::Lt => o == Ordering::Less,
            CmpOp::Eq => o == Ordering::Equal,
            CmpOp::Ne => o != Ordering::Equal,
            CmpOp::IsNull | CmpOp::IsNotNull => unreachable!("not a comparison"),
        };
        if matches!(c.op, CmpOp::IsNull | CmpOp::IsNotNull) {
            let missing: Vec<bool> = if col.dtype().is_float() {
                col.cast(&DataType::Float64)
                    .map_err(&pl)?
                    .f64()
                    .map_err(&pl)?
                    .iter()
                    .map(|v| v.is_none_or(f64::is_nan))
                    .collect()
            } else {
                col.is_null().iter().map(|v| v.unwrap_or(true)).collect()
            };
            let want = c.op == CmpOp::IsNull;
            return Ok(missing.into_iter().map(|m| m == want).collect());
        }
        Ok(match &c.value {
            // A Float32 column compares in f32, as polars does (the literal is cast to it).
            Lit::Num(v) if col.dtype() == &DataType::Float32 => {
                let v = *v as f32;
                col.f32()
                    .map_err(&pl)?
                    .iter()
                    .map(|x| x.and_then(|x| x.partial_cmp(&v)).is_some_and(holds))
                    .collect()
            }
            Lit::Num(v) => col
                .cast(&DataType::Float64)
                .map_err(&pl)?
                .f64()
                .map_err(&pl)?
                .iter()
                .map(|x| x.and_then(|x| x.partial_cmp(v)).is_some_and(holds))
                .collect(),
            Lit::Str(v) => col
                .str()
                .map_err(&pl)?
                .iter()
                .map(|x| x.is_some_and(|x| holds(x.cmp(v.as_str()))))
                .collect(),
            Lit::Bool(v) => col
                .bool()
                .map_err(&pl)?
                .iter()
                .map(|x| x.is_some_and(|x| holds(x.cmp(v))))
                .collect(),
            Lit::None => unreachable!("only `is null` / `is not null` take no value"),
        })
    }

    pub fn run(&self, input: &DataFrame, ctx: &RunCtx) -> Result<Output> {
        let conds: Vec<(bool, &Cond)> = self
            .drop_where
            .iter()
            .map(|c| (true, c))
            .chain(self.keep_where.iter().map(|c| (false, c)))
            .collect();
        let mut keep = vec![true; input.height()];
        // Rows matched by each drop condition / failed by each keep condition.
        let mut counts = Vec::with_capacity(conds.len());
        for (drop, c) in &conds {
            let m = Self::mask(
                c,
                input.column(&c.column).map_err(super::pl(ctx.node))?,
                ctx.node,
            )?;
            let mut hits = 0u64;
            for (k, held) in keep.iter_mut().zip(m) {
                let hit = held == *drop;
                hits += u64::from(hit);
                *k &= !hit;
            }
            counts.push(hits);
        }
        let df = input
            .filter(&BooleanChunked::from_slice("keep".into(), &keep))
            .map_err(super::pl(ctx.node))?;
        let mut summary = vec![format!("kept {} of {} rows", df.height(), input.height())];
        for ((drop, c), n) in conds.iter().zip(counts) {
            let verb = if *drop { "dropped by" } else { "failed" };
            summary.push(format!("{n} rows {verb} `{c}`"));
        }
        if df.height() == 0 {
            return Err(Error::input(
                ctx.node,
                format!(
                    "the filter removed every row ({} in; {})",
                    input.height(),
                    summary[1..].join("; ")
                ),
            ));
        }
        Ok(Output::new(df, summary))
    }
}

impl super::Kind for Filter {
    super::kind_basics!("filter", Exactly(1));

    fn output_schema(
        &self,
        inputs: &[SchemaRef],
        _id: &str,
    ) -> Result<super::SchemaResult<Schema>> {
        Ok(self.schema(&inputs[0]))
    }

    fn compute(&self, inputs: &[std::sync::Arc<DataFrame>], ctx: &RunCtx) -> Result<Output> {
        self.run(&inputs[0], ctx)
    }
}

impl super::Parse for Filter {
    const NAMES: &'static [&'static str] = &["filter"];

    fn parse(
        _name: &str,
        p: &mut crate::params::Params,
        _base_dir: &std::path::Path,
    ) -> Result<Self> {
        Self::parse(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_conditions() {
        let c = parse_cond("smooth-or-featured_smooth_fraction >= 0.5").unwrap();
        assert_eq!(
            c,
            Cond {
                column: "smooth-or-featured_smooth_fraction".into(),
                op: CmpOp::Ge,
                value: Lit::Num(0.5)
            }
        );
        assert_eq!(
            parse_cond("a>=0.50").unwrap(),
            parse_cond("a >= 0.5").unwrap()
        );
        assert_eq!(parse_cond("`odd name` < 3").unwrap().column, "odd name");
        assert_eq!(parse_cond("x is null").unwrap().op, CmpOp::IsNull);
        assert_eq!(parse_cond("x IS NOT NULL").unwrap().op, CmpOp::IsNotNull);
        assert_eq!(
            parse_cond("kind == 'ring'").unwrap().value,
            Lit::Str("ring".into())
        );
        assert_eq!(parse_cond("ok != true").unwrap().value, Lit::Bool(true));
        for bad in [
            "", ">= 3", "x", "x >=", "x ~ 3", "x >= abc", "x > true", "x >= nan", "`x >= 1",
        ] {
            assert!(parse_cond(bad).is_err(), "{bad:?} should not parse");
        }
    }

    fn run(f: &Filter, df: &DataFrame) -> Result<Output> {
        f.run(
            df,
            &RunCtx {
                pipeline: "p",
                node: "t",
                id: "id",
                progress: &crate::progress::Silent,
                input_details: &[],
                data_hashes: None,
                parts: &crate::ops::NoParts,
                input_files: &[],
                joint: &[],
                scratch: &crate::ops::Scratch::default(),
            },
        )
    }

    #[test]
    fn missing_values_never_match() {
        let df = df!(
            "id" => [1i64, 2, 3, 4, 5],
            "f" => [Some(0.9f64), Some(f64::NAN), None, Some(0.1), Some(0.5)],
        )
        .unwrap();
        let drop = Filter {
            drop_where: vec![parse_cond("f >= 0.5").unwrap()],
            keep_where: vec![],
        };
        let out = run(&drop, &df).unwrap();
        let ids: Vec<i64> = out
            .df
            .column("id")
            .unwrap()
            .i64()
            .unwrap()
            .into_no_null_iter()
            .collect();
        assert_eq!(
            ids,
            [2, 3, 4],
            "NaN and null rows are kept by drop_where; 0.5 >= 0.5 is dropped"
        );
        assert!(
            out.summary
                .iter()
                .any(|s| s.starts_with("2 rows dropped by")),
            "{:?}",
            out.summary
        );

        let keep = Filter {
            drop_where: vec![],
            keep_where: vec![parse_cond("f < 0.5").unwrap()],
        };
        let ids: Vec<i64> = run(&keep, &df)
            .unwrap()
            .df
            .column("id")
            .unwrap()
            .i64()
            .unwrap()
            .into_no_null_iter()
            .collect();
        assert_eq!(ids, [4], "missing values fail keep_where");

        let nulls = Filter {
            drop_where: vec![],
            keep_where: vec![parse_cond("f is null").unwrap()],
        };
        let ids: Vec<i64> = run(&nulls, &df)
            .unwrap()
            .df
            .column("id")
            .unwrap()
            .i64()
            .unwrap()
            .into_no_null_iter()
            .collect();
        assert_eq!(ids, [2, 3], "`is null` matches null and NaN");
    }

    #[test]
    fn removing_every_row_is_an_input_error() {
        let df = df!("id" => [1i64, 2], "f" => [0.7f64, 0.8]).unwrap();
        let f = Filter {
            drop_where: vec![parse_cond("f > 0.6").unwrap()],
            keep_where: vec![],
        };
        let err = run(&f, &df).err().expect("must fail");
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("removed every row"), "{err}");
    }
}
