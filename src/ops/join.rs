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
            (Some(_), _, _) => return Err(p.error("on", "give either `on` or both `left_on` and `right_on`, not both")),
            _ => return Err(p.missing("on", "a key column: `on`, or `left_on` and `right_on`")),
        };
        let how = p.choice("how", &["inner", "left"], "inner")?;
        let suffix = p.string("suffix")?.unwrap_or_else(|| "_right".into());
        Ok(Join { left_on, right_on, how, suffix })
    }

    pub fn schema(&self, left: &Schema, right: &Schema, id: &str) -> SchemaResult<Schema> {
        let miss = |side: &str, col: &str, s: &Schema| {
            SchemaError::new(if side == "left" { "left_on" } else { "right_on" }, format!("key column `{col}` not found in the {side} input (columns: {})", columns::preview(s)))
        };
        let lt = left.get(&self.left_on).ok_or_else(|| miss("left", &self.left_on, left))?;
        let rt = right.get(&self.right_on).ok_or_else(|| miss("right", &self.right_on, right))?;
        if lt != rt {
            return Err(SchemaError::new("on", format!("key `{}` is {lt} on the left but `{}` is {rt} on the right; cast one side upstream", self.left_on, self.right_on)));
        }
        let mut out = left.clone();
        for (name, dt) in right.iter() {
            if name.as_str() == self.right_on {
                continue;
            }
            let name = if out.contains(name) { format!("{name}{}", self.suffix) } else { name.to_string() };
            if out.contains(&name) {
                return Err(SchemaError::new("suffix", format!("column `{name}` would appear twice; choose another `suffix`")));
            }
            out.insert(name.into(), dt.clone());
        }
        if !out.contains(id) {
            return Err(SchemaError::new("on", format!("the output has no id column `{id}`: put the input that has it first in `inputs`")));
        }
        Ok(out)
    }

    pub fn run(&self, left: &DataFrame, right: &DataFrame, ctx: &RunCtx) -> Result<Output> {
        let how = if self.how == "left" { JoinType::Left } else { JoinType::Inner };
        let mut args = JoinArgs::new(how).with_suffix(Some(self.suffix.as_str().into()));
        args.maintain_order = MaintainOrderJoin::Left;
        let df = left.clone().lazy().join(right.clone().lazy(), [col(self.left_on.as_str())], [col(self.right_on.as_str())], args).collect().map_err(super::pl(ctx.node))?;
        if df.height() == 0 {
            return Err(Error::input(ctx.node, format!("no row of the left input has a matching `{}` on the right", self.right_on)));
        }
        let summary = vec![format!("{} left rows, {} right rows -> {} rows ({} join on `{}`)", left.height(), right.height(), df.height(), self.how, self.left_on)];
        Ok(Output::new(df, summary))
    }
}

impl super::Kind for Join {
    fn name(&self) -> &'static str {
        "join"
    }

    fn version(&self) -> u32 {
        VERSION
    }

    fn arity(&self) -> super::Arity {
        super::Arity::Exactly(2)
    }

    fn output_schema(&self, inputs: &[SchemaRef], id: &str) -> Result<super::SchemaResult<Schema>> {
        Ok(self.schema(&inputs[0], &inputs[1], id))
    }

    fn compute(&self, inputs: &[std::sync::Arc<DataFrame>], ctx: &RunCtx) -> Result<Output> {
        self.run(&inputs[0], &inputs[1], ctx)
    }
}

impl super::Parse for Join {
    const NAMES: &'static [&'static str] = &["join"];

    fn parse(_name: &str, p: &mut crate::params::Params, _base_dir: &std::path::Path) -> Result<Self> {
        Self::parse(p)
    }
}
