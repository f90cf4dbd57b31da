//! `--executor slurm`: every unit that must compute becomes a SLURM job that runs dagrun
//! itself, for that one node, on the shared cache.
//!
//! The controller merges the pipelines (the points of a sweep) into units as the local
//! executor does, then walks them in order. A unit whose inputs are all known and whose
//! key has a verified entry is done. Any other unit gets a job: `dagrun run FILE --set …
//! --target NODE` (the point's overrides, the same cache), submitted with
//! `--dependency=afterok:` on the jobs of its inputs and `--kill-on-invalid-dep=yes`. The
//! split and shard units of a sharded `embed` become one job array over the missing shard
//! indices (`dagrun run FILE --shard $SLURM_ARRAY_TASK_ID/N`, `--array=…%K` with
//! `[slurm] array_limit`). A job recomputes nothing it finds in the cache, so a unit whose
//! input came out unchanged costs its job a few seconds; a rerun submits only what is
//! missing.
//!
//! Status: one `squeue --me --states=all` per poll, whatever the number of jobs, with the
//! interval growing from 1 s to 10 s while nothing changes; no accounting (`sacct`) is
//! needed. A job's outcome is the exit status its script writes as the last line of its
//! log; a job the scheduler ended (cancelled, timed out, out of memory) has none and is
//! taken from its squeue state. A log whose status has not arrived (a shared filesystem's
//! attribute cache) is read again for up to a minute before the job counts as failed.
//! A failed job stops the run: its dependents and every other job this run submitted are
//! cancelled (`scancel` by id), and the error names the node, the job, its exit status and
//! the tail of its log. Ctrl-C (or SIGTERM) cancels exactly the jobs this run submitted.
//!
//! When every job has finished, the pipelines run locally against the cache: every node is
//! a hit, so the reports (and a sweep's summary) are made exactly as after a local run,
//! and the outputs are the same bytes. Each entry a job computed records the job in its
//! manifest (`slurm`).

mod plan;
mod submit;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cache::Store;
use crate::dag::NodeId;
use crate::error::{Error, IoContext, Result};
use crate::exec::{self, Limits, Observer, RunReport, Status, Unit};
use crate::ops::Op;
use crate::spec::resources::JobResources;
use crate::spec::Pipeline;
use plan::Plan;

/// What the controller needs besides the pipelines.
pub struct Options {
    /// The dagrun executable the jobs run (this one).
    pub exe: PathBuf,
    /// Each point's `--set` arguments (the command line's, then the grid point's).
    pub sets: Vec<Vec<String>>,
    /// The cache, as an absolute path (jobs run elsewhere).
    pub cache: PathBuf,
    /// Set by Ctrl-C / SIGTERM.
    pub interrupted: Arc<AtomicBool>,
}

/// One job: a node's unit, or the shard units of a point as one array.
struct Job {
    name: String,
    /// The node named in errors and events.
    node: String,
    point: usize,
    kind: JobKind,
    deps: BTreeSet<usize>,
    resources: JobResources,
    id: Option<String>,
    /// The log path (arrays: with `{task}` for the task index).
    log: PathBuf,
    outcome: Option<Outcome>,
    /// When squeue first stopped showing it active.
    ended_at: Option<Instant>,
}

/// How a job ended: `Err` holds the message the run fails with.
type Outcome = std::result::Result<(), String>;

enum JobKind {
    Target(String),
    Array { count: u32, tasks: BTreeSet<u32> },
}

impl Job {
    /// Its tasks: `None` for a node's job, each task index for an array.
    fn tasks(&self) -> Vec<Option<u32>> {
        match &self.kind {
            JobKind::Target(_) => vec![None],
            JobKind::Array { tasks, .. } => tasks.iter().map(|&t| Some(t)).collect(),
        }
    }
}

/// Ops that do real work get several CPUs by default; the rest one.
fn default_cpus(op: &Op, max: u32) -> u32 {
    if op.multithreaded() {
        max.clamp(1, 8)
    } else {
        1
    }
}

fn run_cmd(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd.output().map_err(|e| {
        Error::Scheduler(format!(
            "cannot run `{what}` ({e}): is SLURM installed and on PATH?"
        ))
    })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(Error::Scheduler(format!(
            "`{what}` failed ({}): {}",
            out.status,
            err.trim().lines().collect::<Vec<_>>().join(" | ")
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Quote for bash.
fn sh(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The squeue states of a job that has not ended.
const ACTIVE: &[&str] = &[
    "PENDING",
    "RUNNING",
    "CONFIGURING",
    "COMPLETING",
    "SUSPENDED",
    "REQUEUED",
    "RESIZING",
    "SIGNALING",
    "STAGE_OUT",
    "STOPPED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "RESV_DEL_HOLD",
];

/// Run `points` through SLURM (see the module docs); returns the reports of the final,
/// all-cached local pass, with the nodes the jobs computed marked as computed.
pub fn run_many(
    points: &[Pipeline],
    store: &Store,
    obs: &dyn Observer,
    targets: &[Vec<NodeId>],
    limits: Limits,
    opt: &Options,
) -> Result<Vec<RunReport>> {
    let (units, of_point) = exec::merge(points, targets);
    let max_cpus = max_cpus()?;
    let run_dir = run_dir(store)?;
    let mut plan = plan::plan(points, &units, store, obs, &run_dir, max_cpus)?;
    if !plan.jobs.is_empty() {
        // A failure cancels every job of this run still live, and only those.
        if let Err(e) = submit::submit_and_wait(points, &mut plan.jobs, &run_dir, obs, opt) {
            let _ = cancel(&live_ids(&plan.jobs));
            return Err(e);
        }
    }
    // Everything is in the cache now: the local pass makes the reports.
    let mut reports = exec::run_many(points, store, obs, targets, limits)?;
    mark_jobs(&mut reports, points, &units, &of_point, &plan);
    Ok(reports)
}

/// The most CPUs a node of the cluster has (`sinfo`).
fn max_cpus() -> Result<u32> {
    let listing = run_cmd(
        Command::new("sinfo").args(["-h", "-o", "%c"]),
        "sinfo -h -o %c",
    )?;
    Ok(max_cpus_of(&listing))
}

/// The largest CPU count in `sinfo -o %c`'s lines (`8+` counts as 8); 1 if none.
fn max_cpus_of(listing: &str) -> u32 {
    listing
        .lines()
        .filter_map(|l| l.trim().trim_end_matches('+').parse::<u32>().ok())
        .max()
        .unwrap_or(1)
}

/// The run's folder for scripts and logs, made under the cache as an absolute path (jobs
/// start in it and write their logs there).
fn run_dir(store: &Store) -> Result<PathBuf> {
    let root = std::fs::canonicalize(store.root()).ctx("cannot find", store.root())?;
    let run_dir = root
        .join("slurm")
        .join(format!("{}-{}", chrono_stamp(), std::process::id()));
    std::fs::create_dir_all(&run_dir).ctx("cannot create", &run_dir)?;
    Ok(run_dir)
}

/// The ids of the jobs submitted and not yet decided, in submission order.
fn live_ids(jobs: &[Job]) -> Vec<String> {
    jobs.iter()
        .filter(|j| j.outcome.is_none())
        .filter_map(|j| j.id.clone())
        .collect()
}

/// Mark in the local pass's `reports` each node a job computed: computed at the point its
/// unit was merged from, and the job's id at every point that shares the unit.
fn mark_jobs(
    reports: &mut [RunReport],
    points: &[Pipeline],
    units: &[Unit],
    of_point: &[Vec<Option<usize>>],
    plan: &Plan,
) {
    for (pt, report) in reports.iter_mut().enumerate() {
        for r in &mut report.nodes {
            let Some(v) = points[pt].find(&r.name) else {
                continue;
            };
            let Some(u) = of_point[pt][v] else { continue };
            if let Some(j) = plan.job_of[u] {
                if units[u].point == pt {
                    r.status = Status::Computed;
                }
                r.slurm_job.clone_from(&plan.jobs[j].id);
            }
        }
    }
}

/// A sortable local time stamp for the run's folder, without a date library.
fn chrono_stamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    secs.to_string()
}

/// One line of `squeue`: the job id (an array's tasks share it), the task, the state and
/// the pending reason.
struct Queued {
    job: String,
    task: Option<u32>,
    state: String,
    reason: String,
}

/// This user's jobs, finished ones included, from one `squeue` call.
fn queue() -> Result<Vec<Queued>> {
    let listing = run_cmd(
        Command::new("squeue").args(["--me", "--states=all", "-h", "-o", "%i|%T|%r"]),
        "squeue --me --states=all",
    )?;
    Ok(listing
        .lines()
        .filter_map(|line| {
            let mut f = line.trim().split('|');
            let (id, state) = (f.next()?, f.next()?.trim().to_owned());
            let reason = f.next().unwrap_or("").trim().to_owned();
            let (job, task) = match id.split_once('_') {
                Some((b, t)) => (b.to_owned(), t.parse::<u32>().ok()),
                None => (id.to_owned(), None),
            };
            Some(Queued {
                job,
                task,
                state,
                reason,
            })
        })
        .collect())
}

/// Cancel `ids` (one `scancel`) and wait, up to half a minute, until squeue shows none of
/// them active, so that nothing of this run is left running when it exits.
fn cancel(ids: &[String]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut cmd = Command::new("scancel");
    cmd.args(ids);
    run_cmd(&mut cmd, "scancel")?;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(30) {
        let busy = queue()?
            .iter()
            .any(|q| ids.contains(&q.job) && ACTIVE.contains(&q.state.as_str()));
        if !busy {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok(())
}

/// The `--set` arguments of each sweep point: the command line's, then its grid values.
pub fn point_sets(
    global: &[String],
    axes: &[(String, Vec<toml::Value>)],
    points: &[Vec<usize>],
) -> Vec<Vec<String>> {
    points
        .iter()
        .map(|pt| {
            let mut s = global.to_vec();
            for ((name, values), &i) in axes.iter().zip(pt) {
                s.push(format!("{name}={}", toml_value(&values[i])));
            }
            s
        })
        .collect()
}

/// A TOML value as `--set` reads it back.
fn toml_value(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => toml::Value::String(s.clone()).to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job `umap` at point 0 with a log in `/runs`.
    pub(super) fn job(kind: JobKind, deps: &[usize], resources: JobResources) -> Job {
        Job {
            name: "umap".into(),
            node: "umap".into(),
            point: 0,
            kind,
            deps: deps.iter().copied().collect(),
            resources,
            id: None,
            log: PathBuf::from("/runs/umap-{task}.log"),
            outcome: None,
            ended_at: None,
        }
    }

    #[test]
    fn the_largest_node_gives_the_cpus_and_an_empty_cluster_one() {
        assert_eq!(max_cpus_of("4\n16+\n 8 \n"), 16);
        assert_eq!(max_cpus_of("n/a\n2\n"), 2);
        assert_eq!(max_cpus_of(""), 1);
    }

    #[test]
    fn only_submitted_undecided_jobs_are_live_in_submission_order() {
        let with = |id: Option<&str>, outcome: Option<Outcome>| Job {
            id: id.map(str::to_owned),
            outcome,
            ..job(JobKind::Target("umap".into()), &[], JobResources::default())
        };
        let jobs = [
            with(Some("12"), None),
            with(Some("10"), Some(Ok(()))),
            with(None, None),
            with(Some("11"), Some(Err("failed".into()))),
            with(Some("9"), None),
        ];
        assert_eq!(live_ids(&jobs), ["12", "9"]);
    }

    #[test]
    fn an_array_has_its_tasks_and_a_node_job_one() {
        let r = JobResources::default;
        assert_eq!(job(JobKind::Target("u".into()), &[], r()).tasks(), [None]);
        let array = JobKind::Array {
            count: 8,
            tasks: [5, 0, 3].into(),
        };
        assert_eq!(job(array, &[], r()).tasks(), [Some(0), Some(3), Some(5)]);
    }
}
