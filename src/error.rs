//! The library's error type.
//!
//! Every error names what it is about: the pipeline file with line and column, the node,
//! the parameter, the column or the path. Messages are one line, put values in backticks and
//! end without a period. [`Error::exit_code`] is the only place that decides exit codes:
//! 2 for bad input (a malformed pipeline, a missing or unusable data file), 1 for a run that
//! failed for another reason (I/O, a bug).

use std::fmt;
use std::path::PathBuf;

/// Where in the user's input something was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Loc {
    /// A position in a pipeline file (1-based line and column).
    File {
        path: PathBuf,
        line: usize,
        col: usize,
    },
    /// A `--set NODE.PARAM=VALUE` given on the command line.
    Set(String),
    /// A `--grid NODE.PARAM=V1,V2,...` given to `dagrun sweep`.
    Grid(String),
    /// A `--slurm [NODE.]KEY=VALUE` given on the command line.
    Slurm(String),
    /// A pipeline file as a whole.
    Whole(PathBuf),
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Loc::File { path, line, col } => write!(f, "{}:{line}:{col}", path.display()),
            Loc::Set(arg) => write!(f, "--set {arg}"),
            Loc::Grid(arg) => write!(f, "--grid {arg}"),
            Loc::Slurm(arg) => write!(f, "--slurm {arg}"),
            Loc::Whole(path) => write!(f, "{}", path.display()),
        }
    }
}

/// A problem with a pipeline file (or a `--set`), found before anything runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecError {
    pub loc: Loc,
    pub node: Option<String>,
    pub param: Option<String>,
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.loc)?;
        if let Some(node) = &self.node {
            write!(f, "node `{node}`: ")?;
        }
        if let Some(param) = &self.param {
            write!(f, "parameter `{param}`: ")?;
        }
        write!(f, "{}", self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The pipeline is malformed (exit 2).
    #[error("{0}")]
    Spec(Box<SpecError>),
    /// A node's input data cannot be used: empty, non-finite values, every row filtered
    /// out, an unreadable data file (exit 2).
    #[error("node `{node}`: {message}")]
    Input { node: String, message: String },
    /// [`Error::Input`] found while running, located at the node in its pipeline file
    /// (exit 2).
    #[error("{loc}: node `{node}`: {message}")]
    InputAt {
        loc: Loc,
        node: String,
        message: String,
    },
    /// A command-line argument that is not part of a pipeline (exit 2).
    #[error("{0}")]
    Usage(String),
    /// An I/O failure on a named path (exit 1).
    #[error("{action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// polars failed while a node was computing (exit 1).
    #[error("node `{node}`: {source}")]
    Polars {
        node: String,
        source: polars::error::PolarsError,
    },
    /// The cache is inconsistent in a way dagrun cannot repair by recomputing (exit 1).
    #[error("cache: {0}")]
    Cache(String),
    /// The batch scheduler refused a command, or a job it ran failed (exit 1).
    #[error("slurm: {0}")]
    Scheduler(String),
    /// The run was interrupted (Ctrl-C, SIGTERM) after cleaning up (exit 130).
    #[error("interrupted: {0}")]
    Interrupted(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn spec(
        loc: Loc,
        node: Option<&str>,
        param: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        Error::Spec(Box::new(SpecError {
            loc,
            node: node.map(str::to_owned),
            param: param.map(str::to_owned),
            message: message.into(),
        }))
    }

    pub fn input(node: &str, message: impl Into<String>) -> Self {
        Error::Input {
            node: node.to_owned(),
            message: message.into(),
        }
    }

    /// An input error located at the node `at` (in its pipeline file); other errors unchanged.
    pub fn at(self, at: &Loc) -> Self {
        match self {
            Error::Input { node, message } => Error::InputAt {
                loc: at.clone(),
                node,
                message,
            },
            other => other,
        }
    }

    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub fn polars(node: &str, source: polars::error::PolarsError) -> Self {
        Error::Polars {
            node: node.to_owned(),
            source,
        }
    }

    /// 2 for bad input, 1 for a failed run.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Spec(_) | Error::Input { .. } | Error::InputAt { .. } | Error::Usage(_) => 2,
            Error::Io { .. } | Error::Polars { .. } | Error::Cache(_) | Error::Scheduler(_) => 1,
            Error::Interrupted(_) => 130,
        }
    }
}

/// Attach an action and a path to a `std::io::Result`.
pub trait IoContext<T> {
    fn ctx(self, action: &'static str, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, action: &'static str, path: &std::path::Path) -> Result<T> {
        self.map_err(|e| Error::io(action, path, e))
    }
}
