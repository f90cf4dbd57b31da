//! The command line: parse arguments, run the command, print what happened. The only
//! module that prints; the only place that turns an error into an exit code.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::cache::Store;
use crate::error::{Error, IoContext, Result};
use crate::exec;
use crate::spec::{self, Pipeline};

mod commands;
mod print;
mod similar;
mod sweep;

use print::Printer;

#[derive(Parser)]
#[command(
    name = "dagrun",
    version,
    about = "Find rare galaxy classes in foundation-model representations with cached, declarative pipelines",
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    run: RunArgs,
    #[command(flatten)]
    global: Global,
}

#[derive(Args, Clone)]
struct Global {
    /// Cache directory [default: `DAGRUN_CACHE`, else `[pipeline] cache`, else ./cache]
    #[arg(long, global = true, env = "DAGRUN_CACHE", value_name = "DIR")]
    cache: Option<PathBuf>,
    /// Override a parameter: NODE.PARAM=VALUE, VALUE in TOML syntax (repeatable)
    #[arg(long = "set", global = true, value_name = "NODE.PARAM=VALUE")]
    sets: Vec<String>,
    /// More output (-v: op summaries for cached nodes too, -vv: debug logs)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Print only errors
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Worker threads of each running node (a sweep runs `--parallel` nodes at a time, each
    /// with its own), 1 to 1024 [default: all cores]; results do not depend on it
    #[arg(
        short = 'j',
        long,
        global = true,
        env = "DAGRUN_THREADS",
        value_name = "N",
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new()
            .range(1..=MAX_THREADS as u64)
    )]
    threads: Option<usize>,
}

#[derive(Args, Clone, Default)]
struct RunArgs {
    /// The pipeline file (TOML)
    pipeline: Option<PathBuf>,
    /// Run only what NODE needs (repeatable)
    #[arg(long, value_name = "NODE")]
    target: Vec<String>,
    /// Print a JSON report on stdout
    #[arg(long)]
    json: bool,
    /// Compute only shard I of N of the pipeline's sharded `embed` nodes (e.g. one task of a
    /// SLURM job array over a shared cache); a later plain run merges the shards
    #[arg(long, value_name = "I/N", value_parser = parse_shard_arg)]
    shard: Option<Shard>,
    #[command(flatten)]
    executor: ExecutorArgs,
}

#[derive(Args, Clone, Default)]
struct ExecutorArgs {
    /// Where nodes run: here, or as SLURM jobs on a shared cache
    #[arg(long, value_enum, default_value_t = Executor::Local)]
    executor: Executor,
    /// A job resource for `--executor slurm`: KEY=VALUE for every job or NODE.KEY=VALUE
    /// (cpus, mem, gpus, time, partition, args, array_limit; repeatable; over `[slurm]`)
    #[arg(long = "slurm", value_name = "[NODE.]KEY=VALUE")]
    slurm: Vec<String>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Executor {
    #[default]
    Local,
    Slurm,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a pipeline (the default command)
    Run(RunArgs),
    /// Show what is cached, what would run, and why
    Plan(PlanArgs),
    /// Run a pipeline over a grid of parameter values (nodes the grid points share run once)
    /// and summarise the classes each point finds
    Sweep(SweepArgs),
    /// The galaxies most like a few examples, by exact cosine similarity over NODE's
    /// representation (or a linear classifier, given counter-examples); cached like a node
    Similar(SimilarArgs),
    /// Write a node's output to a Parquet or CSV file (computing it if needed)
    Export(ExportArgs),
    /// Show a node's schema, rows, first rows and manifest (computing it if needed)
    Show(ShowArgs),
    /// Explore the classes in the browser: the layout coloured by class, galleries, similar
    /// galaxies, re-ranking and labels (kept in an append-only log beside the pipeline)
    Serve(ServeArgs),
    /// Labels given in `dagrun serve`
    Labels {
        #[command(subcommand)]
        cmd: LabelsCmd,
    },
    /// Remove cache entries not used for a while (never those a running dagrun uses, nor,
    /// without --force, those used in the last hour)
    Gc(GcArgs),
}

#[derive(Args)]
struct PlanArgs {
    pipeline: PathBuf,
    /// Say which part of each key changed since the node's last run
    #[arg(long)]
    explain: bool,
    #[arg(long, value_name = "NODE")]
    target: Vec<String>,
    /// Print the plan as JSON on stdout
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct SweepArgs {
    pipeline: PathBuf,
    /// An axis: NODE.PARAM=V1,V2,... (repeatable; adds to or replaces the file's [sweep] axes)
    #[arg(long, value_name = "NODE.PARAM=V1,V2,...")]
    grid: Vec<String>,
    /// The node whose labels are the classes [default: the report node's first input]
    #[arg(long, value_name = "NODE")]
    classes: Option<String>,
    /// Nodes that may run at the same time
    #[arg(long, default_value_t = 2, value_name = "N")]
    parallel: usize,
    /// Memory the nodes running at the same time may take together (estimated), e.g. 8G
    /// [default: half of this machine's memory]
    #[arg(long, value_name = "SIZE", value_parser = parse_size_arg)]
    memory: Option<u64>,
    /// Print a JSON report on stdout
    #[arg(long)]
    json: bool,
    /// The most grid points a sweep may have (a larger grid is refused before any work)
    #[arg(long, default_value_t = 1000, value_name = "N")]
    max_points: usize,
    /// List the grid points and how many nodes each would compute; run nothing
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    executor: ExecutorArgs,
}

#[derive(Args)]
struct SimilarArgs {
    pipeline: PathBuf,
    /// The node whose rows are searched (e.g. the embed or the featured catalogue)
    #[arg(long, value_name = "NODE")]
    node: String,
    /// An example galaxy (repeatable: their mean)
    #[arg(long = "id", value_name = "ID")]
    ids: Vec<String>,
    /// A counter-example (repeatable): rank by a classifier of examples against these
    #[arg(long = "not", value_name = "ID")]
    not: Vec<String>,
    /// Search like the members of class N of --classes (the candidates it left out)
    #[arg(long, value_name = "N", requires = "classes")]
    class: Option<i64>,
    /// The classes node for --class (a select-leaves or select-eom node)
    #[arg(long, value_name = "NODE", requires = "class")]
    classes: Option<String>,
    /// How many results (1 to 1000000)
    #[arg(
        short = 'k',
        long,
        default_value_t = 50,
        allow_negative_numbers = true,
        value_parser = parse_k
    )]
    k: u32,
    /// The representation's columns (names or globs) [default: feat_*]
    #[arg(long, value_name = "GLOB")]
    columns: Vec<String>,
    /// Drop results within this many arcseconds of an example or a better result
    /// (where NODE has ra/dec; 0: keep all) [default: 3]
    #[arg(long, value_name = "ARCSEC")]
    dedupe_arcsec: Option<f64>,
    /// Print {"node", "query", "results": [{"id", "score"}]} on stdout
    #[arg(long)]
    json: bool,
    /// Also write a gallery page of the examples and results to DIR/index.html
    /// (cutouts where NODE has a `file_loc` image column, a few columns otherwise)
    #[arg(long, value_name = "DIR")]
    html: Option<PathBuf>,
}

#[derive(Args)]
struct ExportArgs {
    pipeline: PathBuf,
    node: String,
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Print {"node", "key", "rows", "out"} on stdout
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ShowArgs {
    pipeline: PathBuf,
    node: String,
    /// Rows to show
    #[arg(long, default_value_t = 5)]
    rows: usize,
    /// Print {"node", "op", "key", "rows", "schema", "path", "files", "manifest"} on stdout
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ServeArgs {
    pipeline: PathBuf,
    /// A report node (its inputs: classes, catalogue, layout) or a select node
    /// [default: the first report node with a layout]
    #[arg(long, value_name = "NODE")]
    node: Option<String>,
    /// The 2-D layout to draw [default: the report's, or the pipeline's only 2-D reduce node]
    #[arg(long, value_name = "NODE")]
    layout: Option<String>,
    /// The node whose `feat_*` representation similar searches [default: the catalogue]
    #[arg(long, value_name = "NODE")]
    features: Option<String>,
    /// Port to listen on (0: any free port)
    #[arg(long, default_value_t = 8765)]
    port: u16,
    /// Address to listen on; any but loopback needs a token (one is made and printed)
    #[arg(long, default_value = "127.0.0.1", value_name = "ADDR")]
    host: String,
    /// A token every request must carry (in the URL the page is opened with)
    #[arg(long, env = "DAGRUN_TOKEN", value_name = "TOKEN")]
    token: Option<String>,
    /// The label log [default: PIPELINE.labels.jsonl beside the pipeline file]
    #[arg(long, value_name = "FILE")]
    labels: Option<PathBuf>,
}

#[derive(Args)]
struct GcArgs {
    /// Age of last use, with a unit: 30d, 12h, 15m, 45s, 2w
    #[arg(long, default_value = "30d", value_name = "DUR", value_parser = parse_duration_arg)]
    older_than: Duration,
    /// Also remove entries used in the last hour
    #[arg(long)]
    force: bool,
    /// Say what would be removed and how much it holds; remove nothing
    #[arg(long)]
    dry_run: bool,
}

#[derive(Subcommand)]
enum LabelsCmd {
    /// Write the labelled galaxies (id, label and the catalogue columns asked for) to a
    /// Parquet, CSV or Arrow file
    Export(LabelsExportArgs),
}

#[derive(Args)]
struct LabelsExportArgs {
    pipeline: PathBuf,
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// The label log [default: PIPELINE.labels.jsonl beside the pipeline file]
    #[arg(long, value_name = "FILE")]
    labels: Option<PathBuf>,
    /// Catalogue columns to add (names or globs, repeatable)
    #[arg(long = "columns", value_name = "GLOB")]
    columns: Vec<String>,
    /// The catalogue: a report or select node as for `serve --node` [default: as serve]
    #[arg(long, value_name = "NODE")]
    node: Option<String>,
}

/// Parse `30d`, `12h`, `15m`, `45s`, `2w`: a whole number and a unit (a bare number is
/// refused: is `30` seconds or days?).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(n.checked_mul(secs)?))
}

/// `-k`, for clap: how many results, 1 to 1,000,000 (as the `similar` op takes).
fn parse_k(s: &str) -> std::result::Result<u32, String> {
    s.trim()
        .parse::<i64>()
        .ok()
        .filter(|k| (1..=1_000_000).contains(k))
        .map(|k| k as u32)
        .ok_or_else(|| format!("k must be a whole number between 1 and 1000000, not `{s}`"))
}

/// `--older-than`, for clap: a duration with its unit.
fn parse_duration_arg(s: &str) -> std::result::Result<Duration, String> {
    parse_duration(s).ok_or_else(|| {
        format!("`{s}` is not a duration with a unit: say 30d or 12h (units: s, m, h, d, w)")
    })
}

/// `--memory`, for clap: a size in bytes.
fn parse_size_arg(s: &str) -> std::result::Result<u64, String> {
    parse_size(s).ok_or_else(|| "use a size like 8G, 512M or a number of bytes".to_owned())
}

/// `--shard I/N`: task I (from 0) of a job array of N.
#[derive(Clone, Copy, Debug)]
struct Shard {
    index: u32,
    count: u32,
}

/// `--shard`, for clap: `I/N` with `0 <= I < N`.
fn parse_shard_arg(s: &str) -> std::result::Result<Shard, String> {
    let bad = || "expected I/N with 0 <= I < N, e.g. --shard 3/8".to_owned();
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (index, count): (u32, u32) = (
        i.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if index >= count {
        return Err(bad());
    }
    Ok(Shard { index, count })
}

/// Parse `8G`, `512M`, `2048K`, `1000000` (bytes).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult = match unit.trim().to_ascii_uppercase().trim_end_matches('B') {
        "" => 1.0,
        "K" => 1024.0,
        "M" => 1024.0 * 1024.0,
        "G" => 1024.0 * 1024.0 * 1024.0,
        "T" => 1024.0f64.powi(4),
        _ => return None,
    };
    (n >= 0.0).then_some((n * mult) as u64)
}

/// Half of the machine's memory (`/proc/meminfo`), or 4 GiB where that cannot be read.
fn default_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(4 << 30, |kb| kb * 1024 / 2)
}

fn cache_dir(global: &Global, p: Option<&Pipeline>) -> PathBuf {
    global
        .cache
        .clone()
        .or_else(|| p.and_then(|p| p.cache.clone()))
        .unwrap_or_else(|| PathBuf::from("cache"))
}

fn targets(p: &Pipeline, names: &[String]) -> Result<Vec<usize>> {
    names
        .iter()
        .map(|t| {
            p.find(t).ok_or_else(|| {
                Error::Usage(format!(
                    "no node named `{t}` in `{}` (nodes: {})",
                    p.file.display(),
                    p.names()
                ))
            })
        })
        .collect()
}

/// Validate the pipeline and the target names, then open the cache: nothing is written to
/// the cache unless the command line and the pipeline are valid.
fn load(path: &Path, global: &Global, target: &[String]) -> Result<(Pipeline, Vec<usize>, Store)> {
    load_with(path, global, target, &[])
}

/// [`load`], with `--slurm` resource overrides.
fn load_with(
    path: &Path,
    global: &Global,
    target: &[String],
    slurm: &[String],
) -> Result<(Pipeline, Vec<usize>, Store)> {
    let p = spec::load_with(path, &global.sets, slurm)?;
    let t = targets(&p, target)?;
    let store = Store::open(&cache_dir(global, Some(&p)))?;
    Ok((p, t, store))
}

/// A run report as JSON, each node with the path of its table (`path`) and, where it has
/// attachments, their folder (`files`): what scripts and the Python package read.
fn with_paths(report: &exec::RunReport, store: &Store) -> serde_json::Value {
    let mut v = serde_json::to_value(report).expect("report serialises");
    if let Some(nodes) = v.get_mut("nodes").and_then(|n| n.as_array_mut()) {
        for (n, r) in nodes.iter_mut().zip(&report.nodes) {
            n["path"] = serde_json::json!(absolute(&store.data_path(&r.key)));
            if !r.attachments.is_empty() {
                n["files"] = serde_json::json!(absolute(&store.attachment_path(&r.key, "")));
            }
        }
    }
    v
}

/// What `--executor slurm` needs: this executable, the cache as an absolute path, each
/// point's `--set` arguments, and a flag that Ctrl-C and SIGTERM raise.
fn slurm_options(store: &Store, sets: Vec<Vec<String>>) -> Result<crate::slurm::Options> {
    let interrupted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, interrupted.clone())
            .map_err(|e| Error::Scheduler(format!("cannot handle signal {sig}: {e}")))?;
    }
    let exe = std::env::current_exe()
        .map_err(|e| Error::Scheduler(format!("cannot find this executable: {e}")))?;
    let dir = store.root().parent().expect("the cache holds v1");
    let cache = std::fs::canonicalize(dir).ctx("cannot find", dir)?;
    Ok(crate::slurm::Options {
        exe,
        sets,
        cache,
        interrupted,
    })
}

/// A path made absolute against the working directory (as it is where that fails).
fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_owned())
}

/// The most worker threads `-j` takes: far above any machine's cores, and far below the
/// count at which starting the threads alone takes minutes.
const MAX_THREADS: usize = 1024;

/// Parse the command line, run it, print the error if any, and return the exit code.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let g = &cli.global;
    init(g, matches!(cli.cmd, Some(Cmd::Show(_))));
    let out = Printer::new(g.quiet, g.verbose);
    let res = match &cli.cmd {
        None => commands::run(&cli.run, g, &out),
        Some(Cmd::Run(a)) => commands::run(a, g, &out),
        Some(Cmd::Plan(a)) => commands::plan(a, g),
        Some(Cmd::Sweep(a)) => sweep::run(a, g, &out),
        Some(Cmd::Export(a)) => commands::export(a, g, &out),
        Some(Cmd::Similar(a)) => similar::run(a, g, &out),
        Some(Cmd::Show(a)) => commands::show(a, g, &out),
        Some(Cmd::Serve(a)) => commands::serve(a, g, &out),
        Some(Cmd::Labels {
            cmd: LabelsCmd::Export(a),
        }) => commands::labels_export(a, g, &out),
        Some(Cmd::Gc(a)) => commands::gc(a, g, &out),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = out.bars.clear();
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// What must be set before any thread exists: the environment (set_var is unsound once
/// other threads may read it), the thread pools (`-j`) and the log filter.
fn init(g: &Global, show: bool) {
    if show {
        std::env::set_var("POLARS_FMT_MAX_COLS", "12");
    }
    if let Some(n) = g.threads {
        // Before any thread pool exists: polars reads this when its pool first starts.
        std::env::set_var("POLARS_MAX_THREADS", n.max(1).to_string());
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build_global();
    }
    let level = match (g.quiet, g.verbose) {
        (true, _) => "error",
        (_, 0 | 1) => "warn",
        (_, 2) => "debug",
        _ => "trace",
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DAGRUN_LOG")
                .unwrap_or_else(|_| format!("dagrun={level}").into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("30d"),
            Some(Duration::from_secs(30 * 86_400))
        );
        assert_eq!(parse_duration("0s"), Some(Duration::ZERO));
        assert_eq!(parse_duration("30"), None, "a bare number has no unit");
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("3x"), None);
        assert_eq!(parse_duration("h"), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("8G"), Some(8 << 30));
        assert_eq!(parse_size("512M"), Some(512 << 20));
        assert_eq!(parse_size("1.5GB"), Some(3 << 29));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("3X"), None);
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
