//! The command line: parse arguments, run the command, print what happened. The only
//! module that prints; the only place that turns an error into an exit code.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cache::io::TableFormat;
use crate::cache::Store;
use crate::error::{Error, IoContext, Result};
use crate::exec::{self, Event, Observer, PlanStatus, Status};
use crate::progress::{Progress, ProgressFactory};
use crate::spec::{self, Pipeline};

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
    /// Worker threads of each running node (a sweep runs `--parallel` nodes at a time, each with its own), 1 to 1024 [default: all cores]; results do not depend on it
    #[arg(short = 'j', long, global = true, env = "DAGRUN_THREADS", value_name = "N",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=MAX_THREADS as u64))]
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
    Plan {
        pipeline: PathBuf,
        /// Say which part of each key changed since the node's last run
        #[arg(long)]
        explain: bool,
        #[arg(long, value_name = "NODE")]
        target: Vec<String>,
        /// Print the plan as JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// Run a pipeline over a grid of parameter values (nodes the grid points share run once)
    /// and summarise the classes each point finds
    Sweep {
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
    },
    /// The galaxies most like a few examples, by exact cosine similarity over NODE's
    /// representation (or a linear classifier, given counter-examples); cached like a node
    Similar {
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
        #[arg(short = 'k', long, default_value_t = 50, allow_negative_numbers = true, value_parser = parse_k)]
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
    },
    /// Write a node's output to a Parquet or CSV file (computing it if needed)
    Export {
        pipeline: PathBuf,
        node: String,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Print {"node", "key", "rows", "out"} on stdout
        #[arg(long)]
        json: bool,
    },
    /// Show a node's schema, rows, first rows and manifest (computing it if needed)
    Show {
        pipeline: PathBuf,
        node: String,
        /// Rows to show
        #[arg(long, default_value_t = 5)]
        rows: usize,
        /// Print {"node", "op", "key", "rows", "schema", "path", "files", "manifest"} on stdout
        #[arg(long)]
        json: bool,
    },
    /// Explore the classes in the browser: the layout coloured by class, galleries, similar
    /// galaxies, re-ranking and labels (kept in an append-only log beside the pipeline)
    Serve {
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
    },
    /// Labels given in `dagrun serve`
    Labels {
        #[command(subcommand)]
        cmd: LabelsCmd,
    },
    /// Remove cache entries not used for a while (never those a running dagrun uses, nor,
    /// without --force, those used in the last hour)
    Gc {
        /// Age of last use, with a unit: 30d, 12h, 15m, 45s, 2w
        #[arg(long, default_value = "30d", value_name = "DUR", value_parser = parse_duration_arg)]
        older_than: Duration,
        /// Also remove entries used in the last hour
        #[arg(long)]
        force: bool,
        /// Say what would be removed and how much it holds; remove nothing
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum LabelsCmd {
    /// Write the labelled galaxies (id, label and the catalogue columns asked for) to a
    /// Parquet, CSV or Arrow file
    Export {
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
    },
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

/// Prints node lines and draws progress bars on stderr.
struct Printer {
    bars: MultiProgress,
    quiet: bool,
    verbose: u8,
}

impl Printer {
    fn new(quiet: bool, verbose: u8) -> Self {
        let target = if quiet || !std::io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        Printer {
            bars: MultiProgress::with_draw_target(target),
            quiet,
            verbose,
        }
    }

    fn line(&self, s: &str) {
        if !self.quiet {
            self.bars.suspend(|| eprintln!("{s}"));
        }
    }
}

struct Bar(ProgressBar);

impl Progress for Bar {
    fn inc(&self, n: u64) {
        self.0.inc(n);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

impl ProgressFactory for Printer {
    fn bar(&self, node: &str, what: &str, total: u64) -> Box<dyn Progress> {
        let pb = self.bars.add(ProgressBar::new(total));
        pb.set_style(
            ProgressStyle::with_template(
                "{prefix:>12} {msg} [{bar:30}] {pos}/{len} ({per_sec}, {eta} left)",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        pb.set_prefix(node.to_owned());
        pb.set_message(what.to_owned());
        Box::new(Bar(pb))
    }
}

impl Observer for Printer {
    fn event(&self, e: Event) {
        match e {
            Event::Start { .. } => {}
            Event::Corrupt { node, key, reason } => self.line(&format!(
                "warning: node `{node}`: cache entry {} is corrupt ({reason}); recomputing",
                &key[..12]
            )),
            Event::Waiting { node } => self.line(&format!(
                "{:>9}  {node}: another dagrun process is computing it",
                "waiting"
            )),
            Event::Job { node, job, state } => self.line(&format!(
                "{:>9}  {node:<14} slurm job {job} {state}",
                "slurm"
            )),
            Event::Done(r) => {
                let status = match r.status {
                    Status::Computed => "computed",
                    Status::Cached => "cached",
                };
                self.line(&format!(
                    "{status:>9}  {:<14} {:<10} {:>10} rows {:>8.2}s  {}",
                    r.name,
                    r.op,
                    r.rows,
                    r.seconds,
                    &r.key[..12]
                ));
                if r.status == Status::Computed || self.verbose > 0 {
                    for s in &r.summary {
                        self.line(&format!("{:>9}  {:<14} {s}", "", ""));
                    }
                }
            }
        }
    }
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

fn cmd_run(args: &RunArgs, global: &Global, out: &Printer) -> Result<()> {
    let Some(path) = &args.pipeline else {
        return Err(Error::Usage(
            "no pipeline given: try `dagrun pipelines/featured.toml` or `dagrun --help`".into(),
        ));
    };
    let t0 = Instant::now();
    let (p, mut t, store) = load_with(path, global, &args.target, &args.executor.slurm)?;
    if let Some(s) = &args.shard {
        if args.executor.executor == Executor::Slurm {
            return Err(Error::Usage("`--shard` runs one task of a job array; `--executor slurm` submits the whole array itself: give one or the other".into()));
        }
        t.extend(shard_targets(&p, *s)?);
    }
    let report = match args.executor.executor {
        Executor::Local => exec::run(&p, &store, out, &t)?,
        Executor::Slurm => {
            let opt = slurm_options(&store, vec![global.sets.clone()])?;
            crate::slurm::run_many(
                std::slice::from_ref(&p),
                &store,
                out,
                &[t],
                exec::Limits::SERIAL,
                &opt,
            )?
            .pop()
            .expect("one pipeline")
        }
    };
    let computed = report
        .nodes
        .iter()
        .filter(|n| n.status == Status::Computed)
        .count();
    out.line(&format!(
        "{}: {} nodes, {computed} computed, {} cached in {:.2}s",
        p.name,
        report.nodes.len(),
        report.nodes.len() - computed,
        t0.elapsed().as_secs_f64()
    ));
    for n in report
        .nodes
        .iter()
        .filter(|n| n.attachments.iter().any(|a| a == "index.html"))
    {
        out.line(&format!(
            "report `{}`: {}",
            n.name,
            store.attachment_path(&n.key, "index.html").display()
        ));
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&with_paths(&report, &store)).expect("report serialises")
        );
    }
    Ok(())
}

/// How big a sweep may be, and whether to only say what it would do.
struct SweepLimits {
    max_points: usize,
    dry_run: bool,
}

#[allow(clippy::too_many_arguments)]
fn cmd_sweep(
    path: &Path,
    grid: &[String],
    classes: Option<&str>,
    parallel: usize,
    memory: Option<u64>,
    json: bool,
    limits_asked: SweepLimits,
    executor: &ExecutorArgs,
    global: &Global,
    out: &Printer,
) -> Result<()> {
    use crate::sweep::{self, show_value};
    let t0 = Instant::now();
    let memory_bytes = memory.unwrap_or_else(default_memory);
    let (sw, points, pipelines) = sweep::load_points(
        path,
        &global.sets,
        &executor.slurm,
        grid,
        classes,
        limits_asked.max_points,
    )?;
    sweep::classes_node(&sw, &pipelines[0])?;
    let store = Store::open(&cache_dir(global, Some(&pipelines[0])))?;
    out.line(&format!(
        "sweep of {}: {} grid points over {}",
        pipelines[0].name,
        points.len(),
        sw.axes
            .iter()
            .map(|a| format!(
                "{} ({})",
                a.name(),
                a.values
                    .iter()
                    .map(show_value)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .collect::<Vec<_>>()
            .join(" x ")
    ));
    let targets = vec![Vec::new(); pipelines.len()];
    if limits_asked.dry_run {
        // Each point's plan; a node the points share is counted at each of them.
        let mut keys = std::collections::BTreeSet::new();
        for (i, (p, pt)) in pipelines.iter().zip(&points).enumerate() {
            let rows = exec::plan(p, &store, &Printer::new(true, 0), &[])?;
            let run = rows
                .iter()
                .filter(|r| r.status != PlanStatus::Cached)
                .count();
            keys.extend(
                rows.iter()
                    .filter(|r| r.status == PlanStatus::Run)
                    .filter_map(|r| r.key.clone()),
            );
            let at: Vec<String> = sw
                .axes
                .iter()
                .zip(pt)
                .map(|(a, &v)| format!("{}={}", a.name(), show_value(&a.values[v])))
                .collect();
            out.line(&format!(
                "{:>5}  {}  {run} of {} nodes to compute",
                i,
                at.join("  "),
                rows.len()
            ));
        }
        out.line(&format!(
            "dry run: {} grid points; nothing was run (nodes whose inputs are not cached yet count as to compute; {} distinct keys known to be missing)",
            points.len(),
            keys.len()
        ));
        return Ok(());
    }
    let limits = exec::Limits {
        max_nodes: parallel.max(1),
        memory_bytes,
    };
    let reports = match executor.executor {
        Executor::Local => exec::run_many(&pipelines, &store, out, &targets, limits)?,
        Executor::Slurm => {
            let axes: Vec<(String, Vec<toml::Value>)> = sw
                .axes
                .iter()
                .map(|a| (a.name(), a.values.clone()))
                .collect();
            let opt = slurm_options(
                &store,
                crate::slurm::point_sets(&global.sets, &axes, &points),
            )?;
            crate::slurm::run_many(&pipelines, &store, out, &targets, limits, &opt)?
        }
    };
    let summary = sweep::summarise(&store, &sw, &points, &pipelines, &reports)?;
    let computed: usize = reports
        .iter()
        .map(|r| {
            r.nodes
                .iter()
                .filter(|n| n.status == Status::Computed)
                .count()
        })
        .sum();
    let total: usize = reports.iter().map(|r| r.nodes.len()).sum();
    out.line(&format!(
        "{} grid points, {total} nodes: {computed} computed, {} cached or shared, in {:.2}s",
        points.len(),
        total - computed,
        t0.elapsed().as_secs_f64()
    ));
    if !global.quiet {
        let mut t = String::from("point");
        for a in &sw.axes {
            t.push_str(&format!("  {}", a.name()));
        }
        t.push_str("  classes  in-class  size min/med/max  stable  median-stab");
        let truth = summary.points.iter().all(|p| p.recovered.is_some());
        if truth {
            t.push_str("  recovered");
        }
        let radii = summary
            .points
            .iter()
            .any(|p| p.radius_correlation.is_some());
        if radii {
            t.push_str("  radius-corr");
        }
        t.push_str("  seconds");
        out.line(&t);
        for p in &summary.points {
            let mut row = format!("{:>5}", p.point);
            for ((name, v), _) in p.params.iter().zip(&sw.axes) {
                row.push_str(&format!("  {:>w$}", show_value(v), w = name.len()));
            }
            row.push_str(&format!(
                "  {:>7}  {:>7.2}%  {:>16}  {:>6}  {:>11}",
                p.classes,
                100.0 * p.clustered_fraction,
                format!("{}/{}/{}", p.size_min, p.size_median, p.size_max),
                p.stable_classes,
                sweep::show_stability(p.median_stability)
            ));
            if let Some((r, n)) = p.recovered {
                row.push_str(&format!("  {:>9}", format!("{r}/{n}")));
            }
            if radii {
                let r = p
                    .radius_correlation
                    .map_or_else(|| "-".to_owned(), |r| format!("{r:.3}"));
                row.push_str(&format!("  {r:>11}"));
            }
            row.push_str(&format!("  {:>7.1}", p.seconds));
            out.line(&row);
        }
        out.line(&format!(
            "summary: {} (summary.parquet and classes.parquet beside it)",
            summary.dir.join("index.html").display()
        ));
    }
    if json {
        let pts: Vec<serde_json::Value> = summary
            .points
            .iter()
            .zip(&reports)
            .map(|(p, r)| {
                let params: serde_json::Map<String, serde_json::Value> =
                    p.params.iter().map(|(k, v)| (k.clone(), serde_json::to_value(v).expect("TOML values are JSON"))).collect();
                serde_json::json!({ "params": params, "nodes": with_paths(r, &store)["nodes"], "summary": p })
            })
            .collect();
        let doc = serde_json::json!({ "pipeline": pipelines[0].name, "points": pts, "summary_dir": summary.dir, "classes": summary.classes });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("sweep report serialises")
        );
    }
    Ok(())
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

/// The nodes `--shard I/N` runs: shard I of every sharded `embed` node, which must all have
/// N shards.
fn shard_targets(p: &Pipeline, shard: Shard) -> Result<Vec<usize>> {
    let (i, n) = (shard.index, shard.count);
    let arg = format!("{i}/{n}");
    let mut t = Vec::new();
    for node in &p.nodes {
        if let crate::ops::Op::Merge(m) = &node.op {
            if m.shards != n {
                return Err(Error::Usage(format!(
                    "`--shard {arg}`: node `{}` has {} shards, not {n}",
                    node.name, m.shards
                )));
            }
            let name = format!("{}.shard{i}", node.name);
            t.push(p.find(&name).expect("validation made the shard nodes"));
        }
    }
    if t.is_empty() {
        return Err(Error::Usage(format!(
            "`--shard {arg}`: `{}` has no sharded node (set `shards = N` on an embed node)",
            p.file.display()
        )));
    }
    Ok(t)
}

fn cmd_plan(
    path: &Path,
    explain: bool,
    target: &[String],
    json: bool,
    global: &Global,
) -> Result<()> {
    let (p, t, store) = load(path, global, target)?;
    let rows = exec::plan(&p, &store, &Printer::new(json, 0), &t)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("plan serialises")
        );
        return Ok(());
    }
    for r in &rows {
        let status = match r.status {
            PlanStatus::Cached => "cached",
            PlanStatus::Run => "run",
            PlanStatus::Pending => "pending",
        };
        let key = r.key.as_deref().map_or("-", |k| &k[..12]);
        println!("{status:>8}  {:<14} {:<10} {key}", r.name, r.op);
        if explain {
            for w in &r.why {
                println!("{:>8}  {:<14} {w}", "", "");
            }
        }
    }
    Ok(())
}

/// The format `export` writes, by the file's extension.
fn table_format(dest: &Path) -> Result<TableFormat> {
    match dest
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("parquet" | "pq") => Ok(TableFormat::Parquet),
        Some("csv") => Ok(TableFormat::Csv),
        Some("arrow" | "ipc" | "feather") => Ok(TableFormat::Ipc),
        _ => Err(Error::Usage(format!(
            "cannot tell the format of `{}`: use a .parquet, .csv or .arrow file name",
            dest.display()
        ))),
    }
}

/// Write `dest` through a temporary file of this process beside it, renamed into place.
fn write_via_temp(dest: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let dir = dest
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(Error::Usage(format!(
            "cannot write `{}`: folder `{}` does not exist",
            dest.display(),
            dir.display()
        )));
    }
    let tmp = dir.join(format!(
        ".{}.{}.dagrun-tmp",
        dest.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    if let Err(e) = write(&tmp).and_then(|()| std::fs::rename(&tmp, dest).ctx("cannot write", dest))
    {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}

/// Write a table as `fmt` to the file `path`.
fn write_table(
    df: &mut polars::prelude::DataFrame,
    fmt: TableFormat,
    path: &Path,
    what: &str,
) -> Result<()> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).ctx("cannot create", path)?);
    crate::cache::io::write_table(&mut w, df, fmt, what)?;
    std::io::Write::flush(&mut w).ctx("cannot write", path)
}

fn cmd_export(
    path: &Path,
    node: &str,
    dest: &Path,
    json: bool,
    global: &Global,
    out: &Printer,
) -> Result<()> {
    let fmt = table_format(dest)?;
    let (p, t, store) = load(path, global, &[node.to_owned()])?;
    let report = exec::run(&p, &store, out, &t)?;
    let done = report.node(node).expect("target ran");
    write_via_temp(dest, |tmp| match fmt {
        TableFormat::Parquet => std::fs::copy(store.data_path(&done.key), tmp)
            .ctx("cannot write", tmp)
            .map(drop),
        _ => write_table(&mut store.read(&done.key, node)?, fmt, tmp, node),
    })?;
    out.line(&format!(
        "wrote {} rows of `{node}` to `{}`",
        done.rows,
        dest.display()
    ));
    if json {
        println!(
            "{}",
            serde_json::json!({ "node": node, "key": done.key, "rows": done.rows, "out": dest })
        );
    }
    Ok(())
}

/// A path made absolute against the working directory (as it is where that fails).
fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_owned())
}

/// The folder of an entry's attachments (a report's `index.html`), where it has any.
fn entry_files(store: &Store, key: &str, m: &crate::cache::Manifest) -> Option<PathBuf> {
    (!m.attachments.is_empty()).then(|| store.attachment_path(key, ""))
}

/// `dagrun serve`: run what the page needs, then serve it until Ctrl-C.
fn cmd_serve(
    pipeline: &Path,
    opt: crate::serve::Options,
    global: &Global,
    out: &Printer,
) -> Result<()> {
    let ip = crate::serve::host(&opt.host)?;
    let opt = crate::serve::Options {
        token: crate::serve::token_for(ip, opt.token.clone())?,
        ..opt
    };
    let (p, nodes) = crate::serve::state::prepare(pipeline, &global.sets, &opt)?;
    let store = Store::open(&cache_dir(global, Some(&p)))?;
    let (app, torn) = crate::serve::state::App::load(&p, nodes, &store, &opt, out)?;
    if let Some(w) = torn {
        out.line(&format!("warning: {w}"));
    }
    let labels = app
        .labels
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .path()
        .display()
        .to_string();
    let n = app.ids.len();
    crate::serve::run(app, std::net::SocketAddr::new(ip, opt.port), |url| {
        out.line(&format!(
            "serving {n} galaxies; labels go to `{labels}`; Ctrl-C stops"
        ));
        // The URL alone on stdout, for scripts and tests.
        println!("{url}");
        let _ = std::io::Write::flush(&mut std::io::stdout());
    })
}

/// `dagrun labels export`.
fn cmd_labels_export(
    pipeline: &Path,
    dest: &Path,
    log: Option<&Path>,
    globs: &[String],
    node: Option<&str>,
    global: &Global,
    out: &Printer,
) -> Result<()> {
    let fmt = table_format(dest)?;
    let log_path = log
        .map(Path::to_owned)
        .unwrap_or_else(|| crate::serve::state::default_log(pipeline));
    if !log_path.is_file() {
        return Err(Error::Usage(format!("no label log `{}`: label galaxies with `dagrun serve` first (or name the log with `--labels`)", log_path.display())));
    }
    let p = spec::load(pipeline, &global.sets)?;
    let nodes = crate::serve::state::choose_nodes(
        &p,
        &crate::serve::Options {
            node: node.map(str::to_owned),
            ..Default::default()
        },
    )?;
    let log = crate::labels::read(&log_path)?;
    if let Some(w) = &log.torn {
        out.line(&format!("warning: {w}"));
    }
    let t = targets(&p, std::slice::from_ref(&nodes.catalogue))?;
    let store = Store::open(&cache_dir(global, Some(&p)))?;
    let report = exec::run(&p, &store, out, &t)?;
    let catalogue = store.read(
        &report.node(&nodes.catalogue).expect("ran").key,
        &nodes.catalogue,
    )?;
    let fold = log.fold();
    let mut df =
        crate::serve::state::export_table(&catalogue, &p.id, &fold, globs, &nodes.catalogue)?;
    write_via_temp(dest, |tmp| {
        write_table(&mut df, fmt, tmp, "the label export")
    })?;
    out.line(&format!(
        "wrote {} labelled galaxies ({} labels) from `{}` to `{}`",
        df.height(),
        fold.counts().len(),
        log_path.display(),
        dest.display()
    ));
    Ok(())
}

struct SimilarQuery<'a> {
    node: &'a str,
    ids: &'a [String],
    not: &'a [String],
    class: Option<i64>,
    classes: Option<&'a str>,
    k: u32,
    columns: &'a [String],
    dedupe_arcsec: Option<f64>,
    html: Option<&'a Path>,
}

/// `dagrun similar`: the pipeline with one more node, `_similar`, run to it.
fn cmd_similar(
    path: &Path,
    q: &SimilarQuery,
    json: bool,
    global: &Global,
    out: &Printer,
) -> Result<()> {
    const NODE: &str = "_similar";
    if q.ids.is_empty() && q.class.is_none() {
        return Err(Error::Usage(
            "give at least one `--id` (or `--class N --classes NODE`)".into(),
        ));
    }
    let mut raw = spec::load_raw(path, &global.sets, &[])?;
    if !raw.nodes.iter().any(|n| n.name == q.node) {
        let known = raw
            .nodes
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(Error::Usage(format!(
            "`--node {}`: no node named `{}` in `{}` (nodes: {known})",
            q.node,
            q.node,
            path.display()
        )));
    }
    let strings = |v: &[String]| {
        toml::Value::Array(v.iter().map(|s| toml::Value::String(s.clone())).collect())
    };
    let mut params: Vec<(&str, toml::Value)> =
        vec![("op", "similar".into()), ("k", i64::from(q.k).into())];
    match q.classes {
        Some(c) => params.push(("inputs", toml::Value::Array(vec![q.node.into(), c.into()]))),
        None => params.push(("input", q.node.into())),
    }
    if !q.ids.is_empty() {
        params.push(("ids", strings(q.ids)));
    }
    if !q.not.is_empty() {
        params.push(("not", strings(q.not)));
    }
    if let Some(c) = q.class {
        params.push(("class", c.into()));
    }
    if !q.columns.is_empty() {
        params.push(("columns", strings(q.columns)));
    }
    if let Some(a) = q.dedupe_arcsec {
        params.push(("dedupe_arcsec", a.into()));
    }
    spec::raw::add_node(
        &mut raw,
        NODE,
        crate::error::Loc::Whole(path.to_owned()),
        params,
    )?;
    let p = spec::validate::validate(raw)?;
    let searched = &p.nodes[p.find(q.node).expect("checked above")];
    if q.dedupe_arcsec.is_some_and(|a| a > 0.0)
        && !(searched.schema.contains("ra") && searched.schema.contains("dec"))
    {
        return Err(Error::Usage(format!("`--dedupe-arcsec`: node `{}` has no `ra` and `dec` columns, so no sky positions to find duplicate detections by", q.node)));
    }
    let store = Store::open(&cache_dir(global, Some(&p)))?;
    let t = targets(&p, &[NODE.to_owned()])?;
    let report = exec::run(&p, &store, out, &t)?;
    let df = store.read(&report.node(NODE).expect("target ran").key, NODE)?;
    let ids: Vec<String> = df
        .column(&p.id)
        .and_then(|c| c.cast(&polars::prelude::DataType::String))
        .map_err(|e| Error::polars(NODE, e))?
        .str()
        .map_err(|e| Error::polars(NODE, e))?
        .iter()
        .map(|v| v.unwrap_or("").to_owned())
        .collect();
    let scores: Vec<f64> = df
        .column("score")
        .and_then(|c| c.f64().cloned())
        .map_err(|e| Error::polars(NODE, e))?
        .into_no_null_iter()
        .collect();
    if let Some(dir) = q.html {
        // Cutouts and columns from the nearest node at or above NODE that has image paths
        // (an `embed` node's catalogue), else from NODE itself.
        let searched = p.find(q.node).expect("validated");
        let mut v = searched;
        while !p.nodes[v].schema.contains("file_loc") {
            match p.nodes[v].inputs.first() {
                Some(&u) => v = u,
                None => {
                    v = searched;
                    break;
                }
            }
        }
        let name = &p.nodes[v].name;
        let table = store.read(&report.node(name).expect("NODE's inputs ran").key, name)?;
        similar_page(
            dir,
            q,
            &table,
            &p.id,
            p.source_dir(v).as_deref(),
            &ids,
            &scores,
        )?;
        out.line(&format!("gallery: {}", dir.join("index.html").display()));
    }
    if json {
        let results: Vec<serde_json::Value> = ids
            .iter()
            .zip(&scores)
            .map(|(id, s)| serde_json::json!({ "id": id, "score": s }))
            .collect();
        let doc = serde_json::json!({
            "node": q.node,
            "query": { "ids": q.ids, "not": q.not, "class": q.class, "classes": q.classes, "k": q.k },
            "results": results,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("results serialise")
        );
    } else {
        println!("{:>5}  {:<20} {:>9}", "rank", p.id, "score");
        for (r, (id, s)) in ids.iter().zip(&scores).enumerate() {
            println!("{:>5}  {id:<20} {s:>9.6}", r + 1);
        }
    }
    Ok(())
}

/// `dagrun similar --html DIR`: the examples and results as a gallery page.
fn similar_page(
    dir: &Path,
    q: &SimilarQuery,
    table: &polars::prelude::DataFrame,
    id: &str,
    image_dir: Option<&Path>,
    ids: &[String],
    scores: &[f64],
) -> Result<()> {
    use crate::render::similar::Card;
    use polars::prelude::DataType;
    std::fs::create_dir_all(dir.join("thumbs"))
        .map_err(|e| Error::io("create the gallery folder", dir, e))?;
    let text = |name: &str| -> Option<Vec<Option<String>>> {
        let c = table.column(name).ok()?.cast(&DataType::String).ok()?;
        Some(c.str().ok()?.iter().map(|v| v.map(str::to_owned)).collect())
    };
    let number = |name: &str| -> Option<Vec<Option<f64>>> {
        Some(
            table
                .column(name)
                .ok()?
                .cast(&DataType::Float64)
                .ok()?
                .f64()
                .ok()?
                .iter()
                .collect(),
        )
    };
    let all_ids = text(id).unwrap_or_default();
    let row_of: std::collections::HashMap<&str, usize> = all_ids
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.as_deref().map(|s| (s, i)))
        .collect();
    let images = text("file_loc");
    let (ra, dec) = (number("ra"), number("dec"));
    // A few columns that describe a galaxy: text columns (e.g. a class), then numbers that
    // are not the representation.
    let skip = |n: &str| {
        n == id
            || n == "file_loc"
            || n == "ra"
            || n == "dec"
            || n.starts_with("feat_")
            || q.columns
                .iter()
                .any(|g| crate::ops::columns::glob_match(g, n))
    };
    let shown: Vec<String> = table
        .columns()
        .iter()
        .filter(|c| !skip(c.name()))
        .map(|c| (c.dtype() == &DataType::String, c.name().to_string()))
        .filter(|(is_text, _)| *is_text)
        .chain(
            table
                .columns()
                .iter()
                .filter(|c| !skip(c.name()) && c.dtype().is_primitive_numeric())
                .map(|c| (false, c.name().to_string())),
        )
        .map(|(_, n)| n)
        .take(6)
        .collect();
    let columns: Vec<(String, Vec<Option<String>>)> = shown
        .iter()
        .filter_map(|n| {
            let float = table.column(n).ok()?.dtype().is_float();
            let values = if float {
                number(n)?
                    .into_iter()
                    .map(|v| v.map(|v| format!("{v:.4}")))
                    .collect()
            } else {
                text(n)?
            };
            Some((n.clone(), values))
        })
        .collect();
    let mut made = 0usize;
    let mut card = |gid: &str, score: Option<f64>| -> Result<Card> {
        let row = row_of.get(gid).copied();
        let image = match (&images, row) {
            (Some(paths), Some(r)) => Some(match &paths[r] {
                Some(p) => match crate::render::gallery::thumbnail(
                    &crate::ops::resolve_path(image_dir, p),
                    164,
                ) {
                    Ok(img) => {
                        made += 1;
                        let file = format!("thumbs/{made}.png");
                        crate::cache::io::write_atomic(
                            &dir.join(&file),
                            &crate::render::canvas::png(&img),
                        )?;
                        Ok(file)
                    }
                    Err(e) => Err(format!("cutout unreadable: {e}")),
                },
                None => Err("no cutout".to_owned()),
            }),
            _ => None,
        };
        let fields = match row {
            Some(r) => columns
                .iter()
                .map(|(n, v)| (n.clone(), v[r].clone().unwrap_or_default()))
                .collect(),
            None => Vec::new(),
        };
        let sky = match (row, &ra, &dec) {
            (Some(r), Some(ra), Some(dec)) => ra[r].zip(dec[r]),
            _ => None,
        };
        Ok(Card {
            id: gid.to_owned(),
            score,
            image,
            fields,
            sky,
        })
    };
    let examples = q
        .ids
        .iter()
        .map(|g| card(g, None))
        .collect::<Result<Vec<_>>>()?;
    let counter = q
        .not
        .iter()
        .map(|g| card(g, None))
        .collect::<Result<Vec<_>>>()?;
    let results = ids
        .iter()
        .zip(scores)
        .map(|(g, &s)| card(g, Some(s)))
        .collect::<Result<Vec<_>>>()?;
    let how = match (q.class, q.not.is_empty()) {
        (Some(c), _) => format!(
            "Galaxies outside class {c} of `{}` most like its members",
            q.classes.unwrap_or_default()
        ),
        (None, true) => format!(
            "Cosine similarity to the mean of {} example(s)",
            q.ids.len()
        ),
        (None, false) => format!(
            "A linear classifier of {} example(s) against {} counter-example(s)",
            q.ids.len(),
            q.not.len()
        ),
    };
    let html = crate::render::similar::page(
        &format!("Galaxies like these: `{}`", q.node),
        &format!("{how}; top {} by score.", results.len()),
        &examples,
        &counter,
        &results,
    );
    crate::cache::io::write_atomic(&dir.join("index.html"), html.as_bytes())
}

fn cmd_show(
    path: &Path,
    node: &str,
    rows: usize,
    json: bool,
    global: &Global,
    out: &Printer,
) -> Result<()> {
    let (p, t, store) = load(path, global, &[node.to_owned()])?;
    let report = exec::run(&p, &store, out, &t)?;
    let key = &report.node(node).expect("target ran").key;
    let m = store
        .manifest(key)
        .ok_or_else(|| Error::Cache(format!("entry {key} vanished")))?;
    if json {
        let doc = serde_json::json!({
            "node": node, "op": m.parts.op, "key": key, "rows": m.rows, "schema": m.schema,
            "path": absolute(&store.data_path(key)), "files": entry_files(&store, key, &m).map(|f| absolute(&f)), "manifest": m,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("show serialises")
        );
        return Ok(());
    }
    let df = store.read(key, node)?;
    println!(
        "node `{node}` ({} op), {} rows x {} columns, key {key}",
        m.parts.op,
        df.height(),
        df.width()
    );
    println!("schema:");
    for (name, dt) in df.schema().iter() {
        println!("  {name}: {dt}");
    }
    println!("{}", df.head(Some(rows)));
    println!(
        "manifest:\n{}",
        serde_json::to_string_pretty(&m).expect("manifest serialises")
    );
    Ok(())
}

/// What gc never removes without `--force`: entries used this recently.
const GC_RECENT: Duration = Duration::from_secs(3600);

fn cmd_gc(
    older_than: Duration,
    force: bool,
    dry_run: bool,
    global: &Global,
    out: &Printer,
) -> Result<()> {
    let dir = cache_dir(global, None);
    // A file in the cache's place is named by `Store::open` below.
    if !dir.exists() || (dir.is_dir() && !dir.join("v1").exists()) {
        out.line(&format!("no cache at `{}`", dir.display()));
        return Ok(());
    }
    let age = if force {
        older_than
    } else {
        older_than.max(GC_RECENT)
    };
    if age > older_than {
        out.line("entries used in the last hour are kept (--force removes them too)");
    }
    let store = Store::open(&dir)?;
    let r = store.gc(age, dry_run)?;
    let verb = if dry_run { "would remove" } else { "removed" };
    out.line(&format!(
        "{verb} {} entries ({:.1} MB), {} sweep summaries or SLURM run folders and {} temporary files; kept {} in use, {} used within {} and {} that kept sweep summaries or label logs name",
        r.removed,
        r.bytes as f64 / 1e6,
        r.folders_removed,
        r.temp_removed,
        r.kept_in_use,
        r.kept_recent,
        show_duration(age),
        r.kept_roots
    ));
    Ok(())
}

/// A duration in the largest unit that divides it: `30d`, `1h`, `90s`.
fn show_duration(d: Duration) -> String {
    let s = d.as_secs();
    for (unit, n) in [("w", 7 * 86_400), ("d", 86_400), ("h", 3600), ("m", 60)] {
        if s > 0 && s.is_multiple_of(n) {
            return format!("{}{unit}", s / n);
        }
    }
    format!("{s}s")
}

/// The most worker threads `-j` takes: far above any machine's cores, and far below the
/// count at which starting the threads alone takes minutes.
const MAX_THREADS: usize = 1024;

/// Parse the command line, run it, print the error if any, and return the exit code.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let g = &cli.global;
    // Environment variables are set here only, before any thread exists (set_var is unsound
    // once other threads may read the environment).
    if matches!(cli.cmd, Some(Cmd::Show { .. })) {
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
    let out = Printer::new(g.quiet, g.verbose);
    let res = match &cli.cmd {
        None => cmd_run(&cli.run, g, &out),
        Some(Cmd::Run(a)) => cmd_run(a, g, &out),
        Some(Cmd::Plan {
            pipeline,
            explain,
            target,
            json,
        }) => cmd_plan(pipeline, *explain, target, *json, g),
        Some(Cmd::Sweep {
            pipeline,
            grid,
            classes,
            parallel,
            memory,
            json,
            max_points,
            dry_run,
            executor,
        }) => {
            let limits = SweepLimits {
                max_points: *max_points,
                dry_run: *dry_run,
            };
            cmd_sweep(
                pipeline,
                grid,
                classes.as_deref(),
                *parallel,
                *memory,
                *json,
                limits,
                executor,
                g,
                &out,
            )
        }
        Some(Cmd::Export {
            pipeline,
            node,
            out: dest,
            json,
        }) => cmd_export(pipeline, node, dest, *json, g, &out),
        Some(Cmd::Similar {
            pipeline,
            node,
            ids,
            not,
            class,
            classes,
            k,
            columns,
            dedupe_arcsec,
            json,
            html,
        }) => {
            let q = SimilarQuery {
                node,
                ids,
                not,
                class: *class,
                classes: classes.as_deref(),
                k: *k,
                columns,
                dedupe_arcsec: *dedupe_arcsec,
                html: html.as_deref(),
            };
            cmd_similar(pipeline, &q, *json, g, &out)
        }
        Some(Cmd::Show {
            pipeline,
            node,
            rows,
            json,
        }) => cmd_show(pipeline, node, *rows, *json, g, &out),
        Some(Cmd::Serve {
            pipeline,
            node,
            layout,
            features,
            port,
            host,
            token,
            labels,
        }) => {
            let opt = crate::serve::Options {
                node: node.clone(),
                layout: layout.clone(),
                features: features.clone(),
                labels: labels.clone(),
                host: host.clone(),
                port: *port,
                token: token.clone(),
            };
            cmd_serve(pipeline, opt, g, &out)
        }
        Some(Cmd::Labels {
            cmd:
                LabelsCmd::Export {
                    pipeline,
                    out: dest,
                    labels,
                    columns,
                    node,
                },
        }) => cmd_labels_export(
            pipeline,
            dest,
            labels.as_deref(),
            columns,
            node.as_deref(),
            g,
            &out,
        ),
        Some(Cmd::Gc {
            older_than,
            force,
            dry_run,
        }) => cmd_gc(*older_than, *force, *dry_run, g, &out),
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
