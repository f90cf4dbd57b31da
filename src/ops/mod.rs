//! Node kinds. [`Op`] is a closed enum with one file per kind; each kind parses and checks
//! its own parameters (`parse`), says what its output looks like before anything runs
//! (`output_schema`, so a missing column is caught at validation) and computes its table
//! (`run`). An op's `VERSION` is part of every cache key it makes: bump it whenever a code
//! change can change the op's output.
//!
//! Ops never touch the cache or print; they get their inputs as data frames and return one.

pub mod assign;
pub mod cluster;
pub mod columns;
pub mod embed;
pub mod filter;
pub mod join;
pub mod knn;
pub mod read;
pub mod reduce;
pub mod report;
pub mod select;
pub mod shard;
pub mod similar;
pub mod synthetic;

use std::path::PathBuf;
use std::sync::Arc;

use polars::prelude::*;

use crate::error::{Error, Result};
use crate::params::Params;
use crate::progress::ProgressFactory;

/// A validated node operation with its typed parameters.
#[derive(Clone, Debug)]
pub enum Op {
    Synthetic(synthetic::Synthetic),
    Read(read::Read),
    Join(join::Join),
    Filter(filter::Filter),
    Reduce(reduce::Reduce),
    Cluster(cluster::Cluster),
    Select(select::Select),
    /// Only created by validation, as the hidden neighbour graph of a UMAP reduction.
    Knn(knn::Knn),
    Report(report::Report),
    Embed(embed::Embed),
    Similar(similar::Similar),
    /// Only created by validation: the vectors a `similar` node searches, as a raw attachment.
    Vectors(similar::Vectors),
    Assign(assign::Assign),
    /// Only created by validation, as the core distances an `assign` node reads.
    Core(assign::Core),
    /// Only created by validation, as the search index an `assign` node reads.
    Index(assign::Index),
    /// Created by validation for `embed` with `shards`: one shard's rows, and the merge.
    Split(shard::Split),
    Merge(shard::Merge),
}

pub const OPS: &[&str] = &["synthetic", "read", "join", "filter", "embed", "reduce", "cluster", "select-leaves", "select-eom", "report", "similar", "assign"];

/// How many inputs an op takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arity {
    Exactly(usize),
    /// At least the first, at most the second.
    Between(usize, usize),
}

/// A problem found while deriving an output schema; validation turns it into a located
/// error naming the parameter.
#[derive(Debug)]
pub struct SchemaError {
    pub param: &'static str,
    pub message: String,
}

impl SchemaError {
    pub fn new(param: &'static str, message: impl Into<String>) -> Self {
        SchemaError { param, message: message.into() }
    }
}

pub type SchemaResult<T> = std::result::Result<T, SchemaError>;

/// What an op sees while it runs.
pub struct RunCtx<'a> {
    pub pipeline: &'a str,
    pub node: &'a str,
    /// The id column carried through every node.
    pub id: &'a str,
    pub progress: &'a dyn ProgressFactory,
    /// The manifest details of each input (`null` where an input has none).
    pub input_details: &'a [serde_json::Value],
    /// For an op that reads data files ([`Op::data_files`]): each file's content hash, in
    /// the same order (`None`: no usable file).
    pub data_hashes: Option<&'a [Option<[u8; 32]>]>,
    /// Where the op keeps parts of its work (see [`Parts`]).
    pub parts: &'a dyn Parts,
    /// The folder of each input's attachments (`Output::files`) in the cache, in input
    /// order: an op may read (e.g. memory-map) what its inputs stored beside their tables.
    pub input_files: &'a [PathBuf],
}

/// Parts of a node's work kept across runs, each under an id the op derives from exactly
/// what decides that part (e.g. a block of rows and its images' bytes); the executor makes
/// it a cache key together with the node's op, version and parameters. An op stays a pure
/// function of its inputs: a part it finds must be what it would compute.
pub trait Parts: Sync {
    fn get(&self, id: &str) -> Result<Option<DataFrame>>;
    fn put(&self, id: &str, df: &mut DataFrame) -> Result<()>;
}

/// Keeps nothing (tests of single ops).
pub struct NoParts;

impl Parts for NoParts {
    fn get(&self, _: &str) -> Result<Option<DataFrame>> {
        Ok(None)
    }
    fn put(&self, _: &str, _: &mut DataFrame) -> Result<()> {
        Ok(())
    }
}

/// What an op produces.
pub struct Output {
    pub df: DataFrame,
    /// Short human-readable lines (rows removed per condition, variance explained, ...),
    /// kept in the manifest and shown by the CLI.
    pub summary: Vec<String>,
    /// Machine-readable details kept in the manifest (`null` for none).
    pub details: serde_json::Value,
    /// Extra files stored with the entry (relative path, contents), e.g. a report's HTML.
    pub files: Vec<(String, Vec<u8>)>,
}

impl Output {
    pub fn new(df: DataFrame, summary: Vec<String>) -> Self {
        Output { df, summary, details: serde_json::Value::Null, files: Vec::new() }
    }
}

impl Op {
    /// Parse op `kind` from a node's parameters (`op` and `input(s)` already taken).
    pub fn parse(kind: &str, p: &mut Params, base_dir: &std::path::Path) -> Result<Op> {
        Ok(match kind {
            "synthetic" => Op::Synthetic(synthetic::Synthetic::parse(p)?),
            "read" => Op::Read(read::Read::parse(p, base_dir)?),
            "join" => Op::Join(join::Join::parse(p)?),
            "filter" => Op::Filter(filter::Filter::parse(p)?),
            "reduce" => Op::Reduce(reduce::Reduce::parse(p)?),
            "cluster" => Op::Cluster(cluster::Cluster::parse(p)?),
            "report" => Op::Report(report::Report::parse(p, base_dir)?),
            "embed" => Op::Embed(embed::Embed::parse(p, base_dir)?),
            "similar" => Op::Similar(similar::Similar::parse(p)?),
            "assign" => Op::Assign(assign::Assign::parse(p)?),
            "select-leaves" => Op::Select(select::Select::parse(p, crate::numeric::hdbscan::Method::Leaf)?),
            "select-eom" => Op::Select(select::Select::parse(p, crate::numeric::hdbscan::Method::Eom)?),
            other => return Err(p.error("op", format!("unknown op `{other}` (ops: {})", OPS.join(", ")))),
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Op::Synthetic(_) => "synthetic",
            Op::Read(_) => "read",
            Op::Join(_) => "join",
            Op::Filter(_) => "filter",
            Op::Reduce(_) => "reduce",
            Op::Cluster(_) => "cluster",
            Op::Knn(_) => "knn",
            Op::Report(_) => "report",
            Op::Embed(_) => "embed",
            Op::Similar(_) => "similar",
            Op::Vectors(_) => "vectors",
            Op::Assign(_) => "assign",
            Op::Core(_) => "core",
            Op::Index(_) => "index",
            Op::Split(_) => "split",
            Op::Merge(_) => "merge",
            Op::Select(s) if s.method == crate::numeric::hdbscan::Method::Leaf => "select-leaves",
            Op::Select(_) => "select-eom",
        }
    }

    /// The op's code version: part of the cache key.
    pub fn version(&self) -> u32 {
        match self {
            Op::Synthetic(_) => synthetic::VERSION,
            Op::Read(_) => read::VERSION,
            Op::Join(_) => join::VERSION,
            Op::Filter(_) => filter::VERSION,
            Op::Reduce(_) => reduce::VERSION,
            Op::Cluster(_) => cluster::VERSION,
            Op::Knn(_) => knn::VERSION,
            Op::Report(_) => report::VERSION,
            Op::Embed(_) => embed::VERSION,
            Op::Similar(_) | Op::Vectors(_) => similar::VERSION,
            Op::Assign(_) | Op::Core(_) | Op::Index(_) => assign::VERSION,
            Op::Split(_) | Op::Merge(_) => shard::VERSION,
            Op::Select(_) => select::VERSION,
        }
    }

    pub fn arity(&self) -> Arity {
        match self {
            Op::Synthetic(_) | Op::Read(_) => Arity::Exactly(0),
            Op::Filter(_) | Op::Reduce(_) | Op::Cluster(_) | Op::Select(_) | Op::Knn(_) | Op::Embed(_) | Op::Split(_) | Op::Core(_) | Op::Vectors(_) => Arity::Exactly(1),
            Op::Merge(_) => Arity::Between(2, usize::MAX),
            Op::Join(_) | Op::Index(_) => Arity::Exactly(2),
            Op::Report(_) => Arity::Between(2, 3),
            Op::Similar(_) => Arity::Between(1, 2),
            // Validation then adds the fit's tables (see `assign`).
            Op::Assign(_) => Arity::Exactly(2),
        }
    }

    /// Canonical parameters for the cache key: every parameter that decides the output,
    /// defaults filled in, numbers normalised, object keys sorted (serde_json's map is a
    /// BTreeMap). File paths are not here: a file enters the key by its content.
    pub fn key_params(&self) -> serde_json::Value {
        let v = match self {
            Op::Synthetic(o) => serde_json::to_value(o),
            Op::Read(o) => serde_json::to_value(o),
            Op::Join(o) => serde_json::to_value(o),
            Op::Filter(o) => serde_json::to_value(o),
            Op::Reduce(o) => serde_json::to_value(o),
            Op::Cluster(o) => serde_json::to_value(o),
            Op::Knn(o) => serde_json::to_value(o),
            Op::Report(o) => serde_json::to_value(o),
            Op::Embed(o) => serde_json::to_value(o),
            Op::Similar(o) => serde_json::to_value(o),
            Op::Vectors(o) => serde_json::to_value(o),
            Op::Assign(o) => serde_json::to_value(o),
            Op::Core(o) => serde_json::to_value(o),
            Op::Index(o) => serde_json::to_value(o),
            Op::Split(o) => serde_json::to_value(o),
            Op::Merge(o) => serde_json::to_value(o),
            Op::Select(o) => serde_json::to_value(o),
        };
        normalise(v.expect("op parameters serialise to JSON"))
    }

    /// Files the op reads, by parameter name: their content hashes enter the key.
    pub fn files(&self) -> Vec<(&'static str, PathBuf)> {
        match self {
            Op::Read(o) => vec![("path", o.path.clone())],
            Op::Embed(o) => vec![("model", o.model.clone())],
            _ => Vec::new(),
        }
    }

    /// Whether `run` reads files named by its input rows (image cutouts). Their contents
    /// enter the key through [`Op::data_files`]; the executor then needs the inputs before
    /// it can tell a hit.
    pub fn reads_data_files(&self) -> bool {
        matches!(self, Op::Embed(_) | Op::Report(_))
    }

    /// The folder that relative data-file paths resolve against: never in the key (the
    /// files enter by content), but part of what makes two nodes one unit in a sweep.
    pub fn data_dir(&self) -> Option<&std::path::Path> {
        match self {
            Op::Embed(o) => o.base_dir.as_deref(),
            Op::Report(o) => o.image_dir.as_deref(),
            _ => None,
        }
    }

    /// The files, named by its input rows, that `run` will read, in the order it reads
    /// them (`None` for a row with no path); `Ok(None)` when it reads none. A pure function
    /// of the inputs and parameters.
    pub fn data_files(&self, inputs: &[Arc<DataFrame>], id: &str, node: &str) -> Result<Option<Vec<Option<PathBuf>>>> {
        match self {
            Op::Embed(o) => o.images(&inputs[0], node).map(Some),
            Op::Report(o) => o.images(inputs, id, node),
            _ => Ok(None),
        }
    }

    /// The output schema, given the input schemas; fails on absent or ill-typed columns.
    pub fn output_schema(&self, inputs: &[SchemaRef], id: &str) -> Result<SchemaResult<Schema>> {
        Ok(match self {
            Op::Synthetic(o) => {
                // The sample makes its own id column: it cannot also be one of the others.
                let taken = o.schema("\u{0}id");
                if taken.contains(id) {
                    Err(SchemaError::new(
                        "op",
                        format!("the pipeline's id column `{id}` is one of the built-in sample's own columns: give `[pipeline] id` another name (e.g. `id`)"),
                    ))
                } else {
                    Ok(o.schema(id))
                }
            }
            Op::Read(o) => o.schema(id)?,
            Op::Join(o) => o.schema(&inputs[0], &inputs[1], id),
            Op::Filter(o) => o.schema(&inputs[0]),
            Op::Reduce(o) => o.schema(&inputs[0], id),
            Op::Cluster(o) => o.schema(&inputs[0], id),
            Op::Knn(o) => o.schema(&inputs[0], id),
            Op::Report(o) => o.schema(inputs, id),
            Op::Embed(o) => o.schema(&inputs[0], id),
            Op::Similar(o) => o.schema(inputs, id),
            Op::Vectors(o) => o.schema(&inputs[0], id),
            Op::Assign(o) => o.schema(inputs, id),
            Op::Core(o) => o.schema(&inputs[0], id),
            Op::Index(o) => o.schema(&inputs[0], id),
            Op::Split(o) => o.schema(&inputs[0], id),
            Op::Merge(o) => o.schema(inputs),
            Op::Select(o) => o.schema(&inputs[0], id),
        })
    }

    pub fn run(&self, inputs: &[Arc<DataFrame>], ctx: &RunCtx) -> Result<Output> {
        match self {
            Op::Synthetic(o) => o.run(ctx),
            Op::Read(o) => o.run(ctx),
            Op::Join(o) => o.run(&inputs[0], &inputs[1], ctx),
            Op::Filter(o) => o.run(&inputs[0], ctx),
            Op::Reduce(o) => o.run(inputs, ctx),
            Op::Cluster(o) => o.run(&inputs[0], ctx),
            Op::Knn(o) => o.run(&inputs[0], ctx),
            Op::Report(o) => o.run(inputs, ctx),
            Op::Embed(o) => o.run(&inputs[0], ctx),
            Op::Similar(o) => o.run(inputs, ctx),
            Op::Vectors(o) => o.run(&inputs[0], ctx),
            Op::Assign(o) => o.run(inputs, ctx),
            Op::Core(o) => o.run(&inputs[0], ctx),
            Op::Index(o) => o.run(inputs, ctx),
            Op::Split(o) => o.run(&inputs[0], ctx),
            Op::Merge(o) => o.run(inputs, ctx),
            Op::Select(o) => o.run(&inputs[0], ctx),
        }
    }
}

/// Normalise numbers so that `1`, `1.0` and `-0.0` hash alike where they mean the same:
/// floats with no fractional part become integers; `-0.0` becomes `0`.
fn normalise(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(_), _) => Value::Number(n),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9e15 => Value::from(f as i64),
            _ => Value::Number(n),
        },
        Value::Array(a) => Value::Array(a.into_iter().map(normalise).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, normalise(v))).collect()),
        other => other,
    }
}

/// A path from a catalogue (e.g. an image's `file_loc`), resolved against `dir` when relative.
pub(crate) fn resolve_path(dir: Option<&std::path::Path>, p: &str) -> PathBuf {
    let p = PathBuf::from(p);
    match dir {
        Some(d) if p.is_relative() => d.join(p),
        _ => p,
    }
}

/// Map a polars error raised while running `node`.
pub(crate) fn pl(node: &str) -> impl Fn(PolarsError) -> Error + '_ {
    move |e| Error::polars(node, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_makes_equal_numbers_equal() {
        let a = normalise(serde_json::json!({"x": 1.0, "y": [2.0, -0.0], "z": 0.25}));
        let b = normalise(serde_json::json!({"z": 0.25, "y": [2, 0], "x": 1}));
        assert_eq!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
    }
}
