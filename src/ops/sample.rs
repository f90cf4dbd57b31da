//! `sample`: a fixed fraction of the galaxies, chosen by id, to try a search on a subset.
//!
//! A galaxy is kept when `blake3(seed, its id)`, read as a number in [0, 1), falls below
//! `fraction`. So the choice is the galaxy's own: the same galaxies are kept whatever the
//! row order, and galaxies appended to a catalogue never change which of the others are
//! kept (a sample of the bigger catalogue contains the sample of the smaller). Rows keep
//! their order; every column passes through.

use polars::prelude::*;
use serde::Serialize;

use super::{columns, Output, RunCtx, SchemaResult};
use crate::error::Result;
use crate::params::Params;

pub const VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    pub fraction: f64,
    pub seed: u64,
}

impl Sample {
    /// Whether the galaxy with this id is in the sample.
    pub fn keeps(&self, id: &str) -> bool {
        let mut h = blake3::Hasher::new();
        h.update(&self.seed.to_le_bytes());
        h.update(id.as_bytes());
        let x = u64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().expect("8 bytes"));
        // x / 2^64 < fraction, exactly: compare in 128-bit fixed point.
        u128::from(x) < (self.fraction * 2f64.powi(64)) as u128
    }

    pub fn run(&self, input: &DataFrame, ctx: &RunCtx) -> Result<Output> {
        let ids = columns::strings(input, ctx.id, ctx.node)?;
        let mask: BooleanChunked = ids.iter().map(|id| self.keeps(id)).collect();
        let df = input.filter(&mask).map_err(super::pl(ctx.node))?;
        let summary = vec![format!(
            "kept {} of {} rows ({:.1}%)",
            df.height(),
            input.height(),
            100.0 * df.height() as f64 / input.height().max(1) as f64
        )];
        Ok(Output::new(df, summary))
    }
}

impl super::Kind for Sample {
    super::kind_basics!("sample", Exactly(1));

    fn output_schema(&self, inputs: &[SchemaRef], _id: &str) -> Result<SchemaResult<Schema>> {
        Ok(Ok(inputs[0].as_ref().clone()))
    }

    fn compute(&self, inputs: &[std::sync::Arc<DataFrame>], ctx: &RunCtx) -> Result<Output> {
        self.run(&inputs[0], ctx)
    }
}

impl super::Parse for Sample {
    const NAMES: &'static [&'static str] = &["sample"];

    fn parse(_name: &str, p: &mut Params, _base_dir: &std::path::Path) -> Result<Self> {
        let fraction = p.float("fraction")?.ok_or_else(|| {
            p.missing("fraction", "the share of galaxies to keep, between 0 and 1")
        })?;
        if !(0.0..=1.0).contains(&fraction) {
            return Err(p.error(
                "fraction",
                format!("must be between 0 and 1, found {fraction}"),
            ));
        }
        if fraction == 0.0 {
            return Err(p.error(
                "fraction",
                "0 keeps no galaxy: give the share to keep, above 0 and at most 1",
            ));
        }
        let seed = p.int_in("seed", Some(0), 0, i64::MAX)? as u64;
        Ok(Sample { fraction, seed })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_galaxy_is_kept_by_its_id_alone_near_the_fraction() {
        let s = Sample {
            fraction: 0.1,
            seed: 3,
        };
        let kept: Vec<usize> = (0..100_000).filter(|i| s.keeps(&i.to_string())).collect();
        // Binomial(100k, 0.1): sd 95.
        assert!((9_600..10_400).contains(&kept.len()), "{}", kept.len());
        // The choice does not depend on which other ids exist.
        assert!(kept.iter().take(50).all(|i| s.keeps(&i.to_string())));
        // Another seed, another sample; a larger fraction, a superset.
        let other = Sample {
            fraction: 0.1,
            seed: 4,
        };
        assert!(kept.iter().filter(|i| other.keeps(&i.to_string())).count() < 1_500);
        let more = Sample {
            fraction: 0.3,
            seed: 3,
        };
        assert!(kept.iter().all(|i| more.keeps(&i.to_string())));
        assert!(!Sample {
            fraction: 0.0,
            seed: 3
        }
        .keeps("7"));
        assert!((0..1000).all(|i| Sample {
            fraction: 1.0,
            seed: 3
        }
        .keeps(&i.to_string())));
    }
}
