//! Node kinds. Each kind lives in one file and implements [`Kind`] there: its name and
//! code `VERSION`, how many inputs it takes, what its output looks like before anything
//! runs (`output_schema`, so a missing column is caught at validation), how it computes its
//! table (`compute`) and, where it matters, the files it reads and the memory it needs. A
//! kind a pipeline file can name also implements [`Parse`] (its `op = "…"` names and typed,
//! checked parameters). The one list of kinds is the [`ops!`] table below: adding an op is
//! its file plus one line there. An op's `VERSION` is part of every cache key it makes:
//! bump it whenever a code change can change the op's output.
//!
//! Ops never touch the cache or print; they get their inputs as data frames and return one.

pub mod assign;
pub mod cluster;
pub mod columns;
pub mod draft;
pub mod embed;
pub mod filter;
pub mod join;
pub mod knn;
pub mod labels;
pub mod read;
pub mod reduce;
pub mod report;
pub mod sample;
pub mod select;
pub mod shard;
pub mod similar;
pub mod synthetic;

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use polars::prelude::*;

use crate::error::{Error, Result};
use crate::params::Params;
use crate::progress::ProgressFactory;
use draft::Draft;

/// What every node kind provides (implemented in the kind's own file).
pub trait Kind: Send + Sync {
    /// The name shown in node lines and manifests and hashed into the key.
    fn name(&self) -> &'static str;
    /// The op's code version: part of the cache key.
    fn version(&self) -> u32;
    /// How many inputs it takes.
    fn arity(&self) -> Arity;
    /// The output schema, given the input schemas; fails on absent or ill-typed columns.
    fn output_schema(&self, inputs: &[SchemaRef], id: &str) -> Result<SchemaResult<Schema>>;
    /// The output table from the input tables.
    fn compute(&self, inputs: &[Arc<DataFrame>], ctx: &RunCtx) -> Result<Output>;
    /// Files the op reads, by parameter name: their content hashes enter the key.
    fn files(&self) -> Vec<(&'static str, PathBuf)> {
        Vec::new()
    }
    /// Whether `compute` reads files named by its input rows (image cutouts). Their
    /// contents enter the key through [`Kind::data_files`]; the executor then needs the
    /// inputs before it can tell a hit.
    fn reads_data_files(&self) -> bool {
        false
    }
    /// The folder that relative data-file paths resolve against: never in the key (the
    /// files enter by content), but part of what makes two nodes one unit in a sweep.
    fn data_dir(&self) -> Option<&Path> {
        None
    }
    /// The files, named by its input rows, that `compute` will read, in the order it reads
    /// them (`None` for a row with no path); `Ok(None)` when it reads none. A pure function
    /// of the inputs and parameters.
    fn data_files(
        &self,
        _inputs: &[Arc<DataFrame>],
        _id: &str,
        _node: &str,
    ) -> Result<Option<Vec<Option<PathBuf>>>> {
        Ok(None)
    }
    /// Bytes the op holds while it runs beyond its inputs and output, for `rows` input rows
    /// (a rough estimate the executor schedules by).
    fn working_memory(&self, _rows: u64) -> u64 {
        0
    }
    /// Whether the op uses several cores (a SLURM job for it asks for several CPUs).
    fn multithreaded(&self) -> bool {
        false
    }
    /// Nodes whose ops give the same joint key and read the same inputs may be computed
    /// together: the first to run gets the others' ops in [`RunCtx::joint`] and may leave
    /// their outputs for them in memory (`reduce`: layouts of one graph share one SGD).
    /// Each output must be bit for bit what the node computes alone. `None`: never.
    fn joint_key(&self) -> Option<String> {
        None
    }
    /// At validation, after the nodes this one reads (node `v` of `draft`, whose schemas
    /// are derived): add the hidden nodes the op reads ([`Draft::add_hidden`]), rewire
    /// `v`'s inputs to them, and return the op `v` keeps if it is not this one (completed
    /// from what it reads, or another op). Adding an op with hidden nodes touches its own
    /// file only.
    fn expand(&self, _v: usize, _draft: &mut Draft) -> Result<Option<Op>> {
        Ok(None)
    }
}

/// The `name`, `version` (the kind file's `VERSION`) and `arity` of a [`Kind`] impl:
/// `kind_basics!("filter", Exactly(1));`.
macro_rules! kind_basics {
    ($name:literal, $($arity:tt)+) => {
        fn name(&self) -> &'static str {
            $name
        }
        fn version(&self) -> u32 {
            VERSION
        }
        fn arity(&self) -> super::Arity {
            super::Arity::$($arity)+
        }
    };
}
pub(crate) use kind_basics;

/// A kind a pipeline file can name: its `op = "…"` names and its parameters, parsed and
/// checked into the typed struct.
pub trait Parse: Sized {
    const NAMES: &'static [&'static str];
    /// Parse op `name` (one of [`Parse::NAMES`]) from a node's parameters (`op` and
    /// `input(s)` already taken).
    fn parse(name: &str, p: &mut Params, base_dir: &Path) -> Result<Self>;
}

/// The one list of node kinds: `Variant(Type)` for kinds a pipeline names (`Type:
/// Kind + Parse`), then after `;` those only validation creates (`Type: Kind`).
macro_rules! ops {
    ($($(#[$m:meta])* $v:ident($t:ty)),* ; $($(#[$hm:meta])* $hv:ident($ht:ty)),* $(,)?) => {
        /// A validated node operation with its typed parameters.
        #[derive(Clone, Debug)]
        pub enum Op {
            $($(#[$m])* $v($t),)*
            $($(#[$hm])* $hv($ht),)*
        }

        impl Op {
            fn kind(&self) -> &dyn Kind {
                match self {
                    $(Op::$v(o) => o,)*
                    $(Op::$hv(o) => o,)*
                }
            }

            /// Every name a pipeline file may give in `op = "…"`.
            pub fn names() -> Vec<&'static str> {
                [$(<$t as Parse>::NAMES),*].concat()
            }

            /// Parse op `name` from a node's parameters (`op` and `input(s)` already taken).
            pub fn parse(name: &str, p: &mut Params, base_dir: &Path) -> Result<Op> {
                $(if <$t as Parse>::NAMES.contains(&name) {
                    return Ok(Op::$v(<$t as Parse>::parse(name, p, base_dir)?));
                })*
                Err(p.error("op", format!("unknown op `{name}` (ops: {})", Op::names().join(", "))))
            }

            /// Canonical parameters for the cache key: every parameter that decides the
            /// output, defaults filled in, numbers normalised, object keys sorted
            /// (serde_json's map is a BTreeMap). File paths are not here: a file enters the
            /// key by its content.
            pub fn key_params(&self) -> serde_json::Value {
                let v = match self {
                    $(Op::$v(o) => serde_json::to_value(o),)*
                    $(Op::$hv(o) => serde_json::to_value(o),)*
                };
                normalise(v.expect("op parameters serialise to JSON"))
            }
        }
    };
}

ops! {
    Synthetic(synthetic::Synthetic),
    Read(read::Read),
    Join(join::Join),
    Filter(filter::Filter),
    Sample(sample::Sample),
    Embed(embed::Embed),
    Reduce(reduce::Reduce),
    Cluster(cluster::Cluster),
    Select(select::Select),
    Report(report::Report),
    Similar(similar::Similar),
    AssignDraft(assign::AssignDraft),
    Labels(labels::Labels);
    /// The hidden neighbour graph of a UMAP reduction.
    Knn(knn::Knn),
    /// The vectors a `similar` node searches, as a raw attachment.
    Vectors(similar::Vectors),
    /// An `assign` node once validation has found the search it assigns into.
    Assign(assign::Assign),
    /// The core distances an `assign` node reads.
    Core(assign::Core),
    /// The search index an `assign` node reads.
    Index(assign::Index),
    /// For `embed` with `shards`: one shard's rows, and the merge.
    Split(shard::Split),
    Merge(shard::Merge),
}

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
        SchemaError {
            param,
            message: message.into(),
        }
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
    /// Nodes (name, op) that will run after this one in this process, on the same inputs and
    /// with the same [`Kind::joint_key`], not in the cache: the op may compute their
    /// outputs alongside its own.
    pub joint: &'a [(&'a str, &'a Op)],
    /// What the run's nodes keep for each other (see [`Scratch`]).
    pub scratch: &'a Scratch,
}

/// Working state the nodes of one run share, one value per type, made on first use and
/// dropped with the run (`exec::run_many` makes one per call): an op keeps there what a
/// later node of the same run may reuse (`reduce`: its fuzzy graphs, spectral solves and
/// the layouts it computed for nodes joined to it). What an op keeps must be a pure
/// function of what it is keyed by, so finding it changes only the time.
#[derive(Default)]
pub struct Scratch(Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>);

impl Scratch {
    /// The run's `T`, made with `T::default()` by the first node that asks.
    pub fn get_or_default<T: Any + Send + Sync + Default>(&self) -> Arc<T> {
        let mut kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let any = kept
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Arc::new(T::default()))
            .clone();
        drop(kept);
        any.downcast::<T>()
            .expect("each value is kept under its own type")
    }
}

/// Parts of a node's work kept across runs, each under an id the op derives from exactly
/// what decides that part (e.g. a block of rows and its images' bytes); the executor makes
/// it a cache key together with the node's op, version and parameters. An op stays a pure
/// function of its inputs: a part it finds must be what it would compute.
pub trait Parts: Sync {
    fn get(&self, id: &str) -> Result<Option<DataFrame>>;
    /// Keep `df` as the part `id` (unless another process just kept it).
    fn put(&self, id: &str, df: DataFrame) -> Result<()>;
}

/// Keeps nothing (tests of single ops).
pub struct NoParts;

impl Parts for NoParts {
    fn get(&self, _: &str) -> Result<Option<DataFrame>> {
        Ok(None)
    }
    fn put(&self, _: &str, _: DataFrame) -> Result<()> {
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
        Output {
            df,
            summary,
            details: serde_json::Value::Null,
            files: Vec::new(),
        }
    }
}

impl Op {
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    /// The op's code version: part of the cache key.
    pub fn version(&self) -> u32 {
        self.kind().version()
    }

    pub fn arity(&self) -> Arity {
        self.kind().arity()
    }

    /// See [`Kind::files`].
    pub fn files(&self) -> Vec<(&'static str, PathBuf)> {
        self.kind().files()
    }

    /// See [`Kind::reads_data_files`].
    pub fn reads_data_files(&self) -> bool {
        self.kind().reads_data_files()
    }

    /// See [`Kind::data_dir`].
    pub fn data_dir(&self) -> Option<&Path> {
        self.kind().data_dir()
    }

    /// See [`Kind::data_files`].
    pub fn data_files(
        &self,
        inputs: &[Arc<DataFrame>],
        id: &str,
        node: &str,
    ) -> Result<Option<Vec<Option<PathBuf>>>> {
        self.kind().data_files(inputs, id, node)
    }

    /// See [`Kind::output_schema`].
    pub fn output_schema(&self, inputs: &[SchemaRef], id: &str) -> Result<SchemaResult<Schema>> {
        self.kind().output_schema(inputs, id)
    }

    /// See [`Kind::expand`].
    pub fn expand(&self, v: usize, draft: &mut Draft) -> Result<Option<Op>> {
        self.kind().expand(v, draft)
    }

    /// See [`Kind::working_memory`].
    pub fn working_memory(&self, rows: u64) -> u64 {
        self.kind().working_memory(rows)
    }

    /// See [`Kind::multithreaded`].
    pub fn multithreaded(&self) -> bool {
        self.kind().multithreaded()
    }

    pub fn run(&self, inputs: &[Arc<DataFrame>], ctx: &RunCtx) -> Result<Output> {
        self.kind().compute(inputs, ctx)
    }

    /// See [`Kind::joint_key`]; never for an op that reads data files (its key needs them).
    pub fn joint_key(&self) -> Option<String> {
        let k = self.kind();
        if k.reads_data_files() {
            return None;
        }
        k.joint_key()
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
    fn scratch_keeps_one_value_per_type() {
        let s = Scratch::default();
        let a = s.get_or_default::<Mutex<Vec<u32>>>();
        a.lock().unwrap().push(7);
        assert_eq!(*s.get_or_default::<Mutex<Vec<u32>>>().lock().unwrap(), [7]);
        assert!(s
            .get_or_default::<Mutex<Vec<u64>>>()
            .lock()
            .unwrap()
            .is_empty());
        assert!(Scratch::default()
            .get_or_default::<Mutex<Vec<u32>>>()
            .lock()
            .unwrap()
            .is_empty());
    }

    #[test]
    fn normalise_makes_equal_numbers_equal() {
        let a = normalise(serde_json::json!({"x": 1.0, "y": [2.0, -0.0], "z": 0.25}));
        let b = normalise(serde_json::json!({"z": 0.25, "y": [2, 0], "x": 1}));
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
    }
}
