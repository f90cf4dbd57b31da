//! `join`: two inputs on a key, e.g. Zoobot's representation file (`feat_*` with `dr8_id`)
//! with the GZ DESI morphology catalogue. `inputs = [left, right]`; `on` names a column
//! present on both sides (or `left_on` / `right_on`); `how` is `inner` or `left`. Row order
//! follows the left input, so the output does not depend on hashing or threads. Right-hand
//! columns whose names clash with left-hand ones get `suffix` (default `_right`).

use polars::prelude::*;
use serde::Serialize;

use super::{columns, Output, RunCtx, SchemaError, SchemaResult};
use crate::error::{Error, Result};
use crate::params::Params;

pub const VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize)]
pub struct Join {
    pub left_on: String,
    pub right_on: String,
    pub how: String,
    pub suffix: String,
}

impl Join {
    pub fn parse(p: &mut Params) -> Result<Self> {
        let on = p.string("on")?;
        let left_on = p.string("left_on")?;
        let right_on = p.string("right_on")?;
        let (left_on, right_on) = match (on, left_on, right_on) {
            (Some(on), None, None) => (on.clone(), on),
            (None, Some(l), Some(r)) => (l, r),
            (Some(_), _, _) => {
                return Err(p.error(
                    "on",
                    "give either `on` or both `left_on` and `right_on`, not both",
                ))
            }
            _ => return Err(p.missing("on", "a key column: `on`, or `left_on` and `right_on`")),
        };
        let how = p.choice("how", &["inner", "left"], "inner")?;
        let suffix = p.string("suffix")?.unwrap_or_else(|| "_right".into());
        Ok(Join {
            left_on,
            right_on,
            how,
            suffix,
        })
    }

    pub fn schema(&self, left: &Schema, right: &Schema, id: &str) -> SchemaResult<Schema> {
        let miss = |side: &str, col: &str, s: &Schema| {
            SchemaError::new(
                if side == "left" {
                    "left_on"
                } else {
                    "right_on"
                },
                format!(
                    "key column `{col}` not found in the {side} input (columns: {})",
                    columns::preview(s)
                ),
            )
        };
        let lt = left
            .get(&self.left_on)
            .ok_or_else(|| miss("left", &self.left_on, left))?;
        let rt = right
            .get(&self.right_on)
            .ok_or_else(|| miss("right", &self.right_on, right))?;
        if lt != rt {
            return Err(SchemaError::new("on", format!("key `{}` is {lt} on the left but `{}` is {rt} on the right; cast one side upstream", self.left_on, self.right_on)));
        }
        let mut out = left.clone();
        for (name, dt) in right.iter() {
            if name.as_str() == self.right_on {
                continue;
            }
            let name = if out.contains(name) {
                format!("{name}{}", self.suffix)
            } else {
                name.to_string()
            };
            if out.contains(&name) {
                return Err(SchemaError::new(
                    "suffix",
                    format!("column `{name}` would appear twice; choose another `suffix`"),
                ));
            }
            out.insert(name.into(), dt.clone());
        }
        if !out.contains(id) {
            return Err(SchemaError::new("on", format!("the output has no id column `{id}`: put the input that has it first in `inputs`")));
        }
        Ok(out)
    }

    pub fn run(&self, left: &DataFrame, right: &DataFrame, ctx: &RunCtx) -> Result<Output> {
        let df = rows(
            left,
            right,
            &self.left_on,
            &self.right_on,
            self.how == "left",
            &self.suffix,
            ctx.node,
        )?;
        if df.height() == 0 {
            return Err(Error::input(
                ctx.node,
                format!(
                    "no row of the left input has a matching `{}` on the right",
                    self.right_on
                ),
            ));
        }
        let summary = vec![format!(
            "{} left rows, {} right rows -> {} rows ({} join on `{}`)",
            left.height(),
            right.height(),
            df.height(),
            self.how,
            self.left_on
        )];
        Ok(Output::new(df, summary))
    }
}

/// A join key column, compared as integers where both sides are integers, else as text.
enum Keys {
    Int(Vec<Option<i64>>),
    Text(Vec<Option<String>>),
}

impl Keys {
    fn of(c: &Column, as_int: bool, node: &str) -> Result<Keys> {
        let pl = super::pl(node);
        Ok(if as_int {
            Keys::Int(
                c.cast(&DataType::Int64)
                    .map_err(&pl)?
                    .i64()
                    .map_err(&pl)?
                    .iter()
                    .collect(),
            )
        } else {
            Keys::Text(
                c.cast(&DataType::String)
                    .map_err(&pl)?
                    .str()
                    .map_err(&pl)?
                    .iter()
                    .map(|v| v.map(str::to_owned))
                    .collect(),
            )
        })
    }
}

/// The row pairs of the join: for each left row, the right rows with its key, in right
/// order, or (with `keep_unmatched`) `None` once where it has none.
fn matches<K: std::hash::Hash + Eq>(
    left: &[Option<K>],
    right: &[Option<K>],
    keep_unmatched: bool,
) -> (Vec<IdxSize>, Vec<Option<IdxSize>>) {
    const NONE: u32 = u32::MAX;
    // First right row of each key, and each right row's next row with the same key.
    let mut first: std::collections::HashMap<&K, u32> =
        std::collections::HashMap::with_capacity(right.len());
    let mut next = vec![NONE; right.len()];
    for (r, k) in right.iter().enumerate().rev() {
        if let Some(k) = k {
            if let Some(old) = first.insert(k, r as u32) {
                next[r] = old;
            }
        }
    }
    let (mut li, mut ri) = (
        Vec::with_capacity(left.len()),
        Vec::with_capacity(left.len()),
    );
    for (l, k) in left.iter().enumerate() {
        let mut r = k
            .as_ref()
            .and_then(|k| first.get(k).copied())
            .unwrap_or(NONE);
        if r == NONE && keep_unmatched {
            li.push(l as IdxSize);
            ri.push(None);
        }
        while r != NONE {
            li.push(l as IdxSize);
            ri.push(Some(r as IdxSize));
            r = next[r as usize];
        }
    }
    (li, ri)
}

/// `left` joined to `right` on `left_on` = `right_on`: in left order, each left row once
/// per matching right row (in right order); with `keep_unmatched` (a left join), a left row
/// with no match once, with nulls. Null keys match nothing. The right key column is
/// dropped; right columns whose names clash with left ones get `suffix`. Eager and
/// single-pass, so the order never depends on hashing or threads.
pub(crate) fn rows(
    left: &DataFrame,
    right: &DataFrame,
    left_on: &str,
    right_on: &str,
    keep_unmatched: bool,
    suffix: &str,
    node: &str,
) -> Result<DataFrame> {
    let pl = super::pl(node);
    let (lc, rc) = (
        left.column(left_on).map_err(&pl)?,
        right.column(right_on).map_err(&pl)?,
    );
    let as_int = lc.dtype().is_integer() && rc.dtype().is_integer();
    let (li, ri) = match (Keys::of(lc, as_int, node)?, Keys::of(rc, as_int, node)?) {
        (Keys::Int(l), Keys::Int(r)) => matches(&l, &r, keep_unmatched),
        (Keys::Text(l), Keys::Text(r)) => matches(&l, &r, keep_unmatched),
        _ => unreachable!("both sides are keyed alike"),
    };
    let mut out = left.take(&IdxCa::from_vec("".into(), li)).map_err(&pl)?;
    let ri: IdxCa = ri.into_iter().collect();
    let other = right.drop(right_on).map_err(&pl)?.take(&ri).map_err(&pl)?;
    let mut cols = Vec::with_capacity(other.width());
    for c in other.columns() {
        let mut c = c.clone();
        if out.schema().contains(c.name()) {
            let name = format!("{}{suffix}", c.name());
            c.rename(name.into());
        }
        cols.push(c);
    }
    out.hstack_mut(&cols).map_err(&pl)?;
    Ok(out)
}

impl super::Kind for Join {
    super::kind_basics!("join", Exactly(2));

    fn output_schema(&self, inputs: &[SchemaRef], id: &str) -> Result<super::SchemaResult<Schema>> {
        Ok(self.schema(&inputs[0], &inputs[1], id))
    }

    fn compute(&self, inputs: &[std::sync::Arc<DataFrame>], ctx: &RunCtx) -> Result<Output> {
        self.run(&inputs[0], &inputs[1], ctx)
    }
}

impl super::Parse for Join {
    const NAMES: &'static [&'static str] = &["join"];

    fn parse(
        _name: &str,
        p: &mut crate::params::Params,
        _base_dir: &std::path::Path,
    ) -> Result<Self> {
        Self::parse(p)
    }
}
