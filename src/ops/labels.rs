//! `labels`: the galaxies a person labelled, read from a label log (`path`, the JSON-lines
//! file `dagrun serve` appends to; see [`crate::labels`]) into a table: each galaxy's label
//! is the last action on it.
//!
//! With no input: the id (as text) and `label` of every labelled galaxy, in the order they
//! were first labelled. With one input (a catalogue): the catalogue's rows that carry a
//! label, in its order, every column kept and `label` added; labelled ids the catalogue
//! does not hold are counted in the summary. The log enters the key by its content, so a
//! new label recomputes this node and what follows, and an unchanged log is a hit.

use std::path::PathBuf;

use polars::prelude::*;
use serde::Serialize;

use super::{columns, Output, RunCtx, SchemaError, SchemaResult};
use crate::error::Result;
use crate::labels;
use crate::params::Params;

pub const VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize)]
pub struct Labels {
    /// The log (not in the key: its content is).
    #[serde(skip)]
    pub path: PathBuf,
}

impl Labels {
    pub fn schema(&self, inputs: &[SchemaRef], id: &str) -> SchemaResult<Schema> {
        match inputs.first() {
            None => Ok(Schema::from_iter([
                Field::new(id.into(), DataType::String),
                Field::new("label".into(), DataType::String),
            ])),
            Some(s) if s.contains("label") => Err(SchemaError::new(
                "inputs",
                "the input already has a `label` column (a classes node?): give a catalogue",
            )),
            Some(s) => {
                let mut s = s.as_ref().clone();
                s.insert("label".into(), DataType::String);
                Ok(s)
            }
        }
    }

    pub fn run(&self, inputs: &[std::sync::Arc<DataFrame>], ctx: &RunCtx) -> Result<Output> {
        let node = ctx.node;
        let log = labels::read(&self.path)?;
        let fold = log.fold();
        let mut summary = vec![format!(
            "{} labelled galaxies from {} actions in `{}`",
            fold.len(),
            log.entries.len(),
            self.path.display()
        )];
        if let Some(w) = log.torn {
            summary.push(w);
        }
        let Some(input) = inputs.first() else {
            let (ids, labs): (Vec<&str>, Vec<&str>) = fold.iter().unzip();
            let df = DataFrame::new(
                ids.len(),
                vec![
                    Column::new(ctx.id.into(), ids),
                    Column::new("label".into(), labs),
                ],
            )
            .map_err(super::pl(node))?;
            return Ok(Output::new(df, summary));
        };
        let (df, missing) = labelled(input, ctx.id, &fold, node)?;
        if missing > 0 {
            summary.push(format!("{missing} labelled ids are not in the input"));
        }
        Ok(Output::new(df, summary))
    }
}

/// The rows of `catalogue` that carry a label, in its order, with a `label` column added;
/// and how many labelled ids it does not hold.
pub fn labelled(
    catalogue: &DataFrame,
    id: &str,
    fold: &labels::Labels,
    node: &str,
) -> Result<(DataFrame, usize)> {
    let ids = columns::strings(catalogue, id, node)?;
    let labs: Vec<Option<&str>> = ids.iter().map(|i| fold.get(i)).collect();
    let found = labs.iter().filter(|l| l.is_some()).count();
    let mask: BooleanChunked = labs.iter().map(Option::is_some).collect();
    let mut df = catalogue.clone();
    df.with_column(Column::new("label".into(), labs))
        .map_err(super::pl(node))?;
    let df = df.filter(&mask).map_err(super::pl(node))?;
    Ok((df, fold.len().saturating_sub(found)))
}

impl super::Kind for Labels {
    super::kind_basics!("labels", Between(0, 1));

    fn output_schema(&self, inputs: &[SchemaRef], id: &str) -> Result<SchemaResult<Schema>> {
        Ok(self.schema(inputs, id))
    }

    fn compute(&self, inputs: &[std::sync::Arc<DataFrame>], ctx: &RunCtx) -> Result<Output> {
        self.run(inputs, ctx)
    }

    fn files(&self) -> Vec<(&'static str, PathBuf)> {
        vec![("path", self.path.clone())]
    }
}

impl super::Parse for Labels {
    const NAMES: &'static [&'static str] = &["labels"];

    fn parse(_name: &str, p: &mut Params, base_dir: &std::path::Path) -> Result<Self> {
        let raw = p.req_string("path")?;
        let path = base_dir.join(&raw);
        if !path.is_file() {
            return Err(p.error("path", format!("no label log `{}` yet: label galaxies with `dagrun serve` first (it writes one beside the pipeline)", path.display())));
        }
        // Read it now, so a damaged log is refused before anything runs.
        labels::read(&path).map_err(|e| p.error("path", e.to_string()))?;
        Ok(Labels { path })
    }
}
