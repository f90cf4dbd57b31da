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

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cache::{Lookup, Store};
use crate::dag::NodeId;
use crate::error::{Error, IoContext, Result};
use crate::exec::{self, Event, Limits, Observer, RunReport, Status};
use crate::ops::Op;
use crate::spec::resources::JobResources;
use crate::spec::Pipeline;

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
    outcome: Option<std::result::Result<(), String>>,
    /// When squeue first stopped showing it active.
    ended_at: Option<Instant>,
}

enum JobKind {
    Target(String),
    Array { count: u32, tasks: BTreeSet<u32> },
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

/// The last `n` lines of a log, on one line.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with(EXIT_MARK) && !l.trim().is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

const EXIT_MARK: &str = "dagrun-slurm-exit=";

/// The exit status the job's script wrote, if the log has it.
fn exit_status(log: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .rev()
        .find_map(|l| l.strip_prefix(EXIT_MARK))
        .and_then(|s| s.trim().parse().ok())
}

/// Pending reasons that no amount of waiting resolves.
const NEVER: &[&str] = &[
    "PartitionConfig",
    "PartitionNodeLimit",
    "PartitionTimeLimit",
    "BadConstraints",
    "InvalidAccount",
    "InvalidQOS",
];

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
    let max_cpus = run_cmd(
        Command::new("sinfo").args(["-h", "-o", "%c"]),
        "sinfo -h -o %c",
    )?
    .lines()
    .filter_map(|l| l.trim().trim_end_matches('+').parse::<u32>().ok())
    .max()
    .unwrap_or(1);
    // Absolute: jobs start in it and write their logs there.
    let root = std::fs::canonicalize(store.root()).ctx("cannot find", store.root())?;
    let run_dir = root
        .join("slurm")
        .join(format!("{}-{}", chrono_stamp(), std::process::id()));
    std::fs::create_dir_all(&run_dir).ctx("cannot create", &run_dir)?;

    // Which units are done, and the jobs for the rest.
    let n = units.len();
    let mut content: Vec<Option<String>> = vec![None; n];
    let mut keys: Vec<Option<String>> = vec![None; n];
    let mut job_of: Vec<Option<usize>> = vec![None; n];
    let mut jobs: Vec<Job> = Vec::new();
    let mut arrays: HashMap<(usize, u32), usize> = HashMap::new();
    // `--shard I/N` runs shard I of every sharded node, so one array serves a point only
    // when all its sharded nodes have the same N.
    let uniform: Vec<bool> = points
        .iter()
        .map(|p| {
            p.nodes
                .iter()
                .filter_map(|x| {
                    if let Op::Merge(m) = &x.op {
                        Some(m.shards)
                    } else {
                        None
                    }
                })
                .collect::<BTreeSet<u32>>()
                .len()
                == 1
        })
        .collect();
    for (u, unit) in units.iter().enumerate() {
        let p = &points[unit.point];
        let node = &p.nodes[unit.v];
        if unit.inputs.iter().all(|&i| content[i].is_some()) {
            let (mut hashes, mut ikeys) = (vec![None; p.nodes.len()], vec![None; p.nodes.len()]);
            for (&iv, &i) in node.inputs.iter().zip(&unit.inputs) {
                hashes[iv].clone_from(&content[i]);
                ikeys[iv].clone_from(&keys[i]);
            }
            let key = exec::cached_key_parts(p, store, unit.v, &hashes, &ikeys, obs)?
                .expect("inputs known")
                .key();
            if let Lookup::Hit(m) = store.lookup(&key) {
                content[u] = Some(m.content_hash.clone());
                keys[u] = Some(key);
                continue;
            }
        }
        let deps: BTreeSet<usize> = unit.inputs.iter().filter_map(|&i| job_of[i]).collect();
        // A shard unit (split or embed on a split) joins its point's job array.
        let shard = match &node.op {
            Op::Split(s) => Some((s.index, s.count)),
            Op::Embed(_) => match &p.nodes[node.inputs[0]].op {
                Op::Split(s) => Some((s.index, s.count)),
                _ => None,
            },
            _ => None,
        };
        let j = match shard {
            Some((index, count)) if uniform[unit.point] => {
                let j = *arrays.entry((unit.point, count)).or_insert_with(|| {
                    let parent = node
                        .name
                        .split_once('.')
                        .map_or(node.name.as_str(), |(a, _)| a)
                        .to_owned();
                    let name = format!("{}-shards", parent);
                    jobs.push(Job {
                        log: run_dir.join(format!("{name}-{{task}}.log")),
                        name,
                        node: format!("{parent}.shards"),
                        point: unit.point,
                        kind: JobKind::Array {
                            count,
                            tasks: BTreeSet::new(),
                        },
                        deps: BTreeSet::new(),
                        resources: p.slurm.for_node(&parent),
                        id: None,
                        outcome: None,
                        ended_at: None,
                    });
                    jobs.len() - 1
                });
                if let JobKind::Array { tasks, .. } = &mut jobs[j].kind {
                    tasks.insert(index);
                }
                if jobs[j].resources.cpus.is_none() {
                    jobs[j].resources.cpus = Some(default_cpus(&node.op, max_cpus));
                }
                j
            }
            _ => {
                let mut resources = p.slurm.for_node(&node.name);
                resources.cpus = resources.cpus.or(Some(default_cpus(&node.op, max_cpus)));
                let name = node.name.replace(['/', ' '], "_");
                jobs.push(Job {
                    log: run_dir.join(format!("{name}-p{}.log", unit.point)),
                    name,
                    node: node.name.clone(),
                    point: unit.point,
                    kind: JobKind::Target(node.name.clone()),
                    deps: BTreeSet::new(),
                    resources,
                    id: None,
                    outcome: None,
                    ended_at: None,
                });
                jobs.len() - 1
            }
        };
        jobs[j].deps.extend(deps.into_iter().filter(|&d| d != j));
        job_of[u] = Some(j);
    }

    if !jobs.is_empty() {
        let res = submit_and_wait(points, &mut jobs, &run_dir, obs, opt);
        if let Err(e) = res {
            let live: Vec<String> = jobs
                .iter()
                .filter(|j| j.outcome.is_none())
                .filter_map(|j| j.id.clone())
                .collect();
            let _ = cancel(&live);
            return Err(e);
        }
    }

    // Everything is in the cache now: the local pass makes the reports.
    let mut reports = exec::run_many(points, store, obs, targets, limits)?;
    for (pt, report) in reports.iter_mut().enumerate() {
        for r in &mut report.nodes {
            let Some(v) = points[pt].find(&r.name) else {
                continue;
            };
            let Some(u) = of_point[pt][v] else { continue };
            if let Some(j) = job_of[u] {
                if units[u].point == pt {
                    r.status = Status::Computed;
                }
                r.slurm_job.clone_from(&jobs[j].id);
            }
        }
    }
    Ok(reports)
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

/// The batch script of `job`: run dagrun, then write its exit status as the log's last line.
fn script(points: &[Pipeline], job: &Job, opt: &Options) -> Result<String> {
    let p = &points[job.point];
    let file = std::fs::canonicalize(&p.file).ctx("cannot find", &p.file)?;
    let cwd = std::env::current_dir().ctx("cannot read", Path::new("."))?;
    let mut args = vec![
        sh(&opt.exe.display().to_string()),
        "run".into(),
        sh(&file.display().to_string()),
        "--cache".into(),
        sh(&opt.cache.display().to_string()),
    ];
    for s in &opt.sets[job.point] {
        args.push("--set".into());
        args.push(sh(s));
    }
    if let Some(c) = job.resources.cpus {
        args.push(format!("-j {c}"));
    }
    match &job.kind {
        JobKind::Target(node) => {
            args.push("--target".into());
            args.push(sh(node));
        }
        JobKind::Array { count, .. } => {
            args.push(format!("--shard \"$SLURM_ARRAY_TASK_ID/{count}\""))
        }
    }
    Ok(format!(
        "#!/bin/bash\n# written by dagrun --executor slurm: node `{}` of `{}`\ncd {} || exit 1\n{}\nrc=$?\necho \"{EXIT_MARK}$rc\"\nexit $rc\n",
        job.node,
        p.name,
        sh(&cwd.display().to_string()),
        args.join(" ")
    ))
}

fn submit_and_wait(
    points: &[Pipeline],
    jobs: &mut [Job],
    run_dir: &Path,
    obs: &dyn Observer,
    opt: &Options,
) -> Result<()> {
    for j in 0..jobs.len() {
        let text = script(points, &jobs[j], opt)?;
        let path = run_dir.join(format!("{}-p{}.sh", jobs[j].name, jobs[j].point));
        std::fs::write(&path, text).ctx("cannot write", &path)?;
        let job = &jobs[j];
        let deps: Vec<&str> = job
            .deps
            .iter()
            .map(|&d| {
                jobs[d]
                    .id
                    .as_deref()
                    .expect("dependencies are submitted first")
            })
            .collect();
        let args = sbatch_args(
            job,
            points[job.point].slurm.array_limit,
            run_dir,
            &deps,
            &path,
        );
        let out = run_cmd(
            Command::new("sbatch").args(&args),
            &format!("sbatch (node `{}`)", job.node),
        )?;
        let id = out.trim().split(';').next().unwrap_or("").to_owned();
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
            return Err(Error::Scheduler(format!(
                "sbatch (node `{}`) printed `{}`, not a job id",
                job.node,
                out.trim()
            )));
        }
        obs.event(Event::Job {
            node: &job.node,
            job: &id,
            state: "submitted",
        });
        jobs[j].id = Some(id);
    }

    // Poll: one squeue per round for all jobs.
    let mut interval = Duration::from_secs(1);
    let grace = Duration::from_secs(60);
    loop {
        let mut states: HashMap<String, Vec<(Option<u32>, String)>> = HashMap::new();
        let mut reasons: HashMap<String, String> = HashMap::new();
        for q in queue()? {
            if NEVER.contains(&q.reason.as_str()) {
                reasons.insert(q.job.clone(), q.reason);
            }
            states.entry(q.job).or_default().push((q.task, q.state));
        }
        // A job that asks for more than its partition has would wait forever.
        if let Some(job) = jobs.iter().find(|j| {
            j.outcome.is_none() && j.id.as_ref().is_some_and(|id| reasons.contains_key(id))
        }) {
            let id = job.id.as_deref().expect("submitted");
            return Err(Error::Scheduler(never_starts(job, id, &reasons[id])));
        }
        let mut changed = false;
        for job in jobs.iter_mut().filter(|j| j.outcome.is_none()) {
            let id = job.id.clone().expect("submitted");
            let seen = states.get(&id).cloned().unwrap_or_default();
            if seen.iter().any(|(_, s)| ACTIVE.contains(&s.as_str())) {
                continue;
            }
            let ended = *job.ended_at.get_or_insert_with(Instant::now);
            let tasks: Vec<Option<u32>> = match &job.kind {
                JobKind::Target(_) => vec![None],
                JobKind::Array { tasks, .. } => tasks.iter().map(|&t| Some(t)).collect(),
            };
            let mut outcome = Some(Ok(()));
            for t in tasks {
                let log = match t {
                    None => job.log.clone(),
                    Some(t) => PathBuf::from(
                        job.log
                            .display()
                            .to_string()
                            .replace("{task}", &t.to_string()),
                    ),
                };
                let state = seen
                    .iter()
                    .find(|(task, _)| *task == t || seen.len() == 1)
                    .map(|(_, s)| s.clone());
                let label = t.map_or_else(|| format!("job {id}"), |t| format!("job {id}_{t}"));
                match task_outcome(exit_status(&log), state.as_deref(), ended.elapsed(), grace) {
                    Task::Done => {}
                    Task::Waiting => outcome = None,
                    Task::Failed(why) => {
                        let (node, at) = (&job.node, log.display());
                        let msg = format!(
                            "node `{node}`: {label} {why}; log `{at}`: {}",
                            tail(&log, 6)
                        );
                        outcome = Some(Err(msg));
                        break;
                    }
                }
            }
            if let Some(o) = outcome {
                changed = true;
                let state = if o.is_ok() { "completed" } else { "failed" };
                obs.event(Event::Job {
                    node: &job.node,
                    job: &id,
                    state,
                });
                job.outcome = Some(o.clone());
                if let Err(msg) = o {
                    return Err(Error::Scheduler(msg));
                }
            }
        }
        if jobs.iter().all(|j| j.outcome.is_some()) {
            return Ok(());
        }
        interval = if changed {
            Duration::from_secs(1)
        } else {
            (interval.mul_f64(1.5)).min(Duration::from_secs(10))
        };
        let until = Instant::now() + interval;
        while Instant::now() < until {
            if opt.interrupted.load(Ordering::SeqCst) {
                let live: Vec<String> = jobs
                    .iter()
                    .filter(|j| j.outcome.is_none())
                    .filter_map(|j| j.id.clone())
                    .collect();
                cancel(&live)?;
                for j in jobs.iter_mut() {
                    j.outcome.get_or_insert(Err("cancelled".into()));
                }
                return Err(Error::Interrupted(format!(
                    "cancelled {} SLURM jobs this run submitted: {}",
                    live.len(),
                    live.join(", ")
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The arguments of `sbatch` for `job`: its name, folder, log, array (at most
/// `array_limit` tasks at once), resources, dependencies (`deps`: the job ids it waits
/// for) and the extra arguments, then the script.
fn sbatch_args(
    job: &Job,
    array_limit: Option<u32>,
    run_dir: &Path,
    deps: &[&str],
    script: &Path,
) -> Vec<String> {
    let mut a = vec![
        "--parsable".to_owned(),
        format!("--job-name=dagrun:{}", job.node),
        format!("--chdir={}", run_dir.display()),
    ];
    match &job.kind {
        JobKind::Target(_) => a.push(format!("--output={}", job.log.display())),
        JobKind::Array { tasks, .. } => {
            let list: Vec<String> = tasks.iter().map(u32::to_string).collect();
            let limit = array_limit.map_or(String::new(), |k| format!("%{k}"));
            a.push(format!("--array={}{limit}", list.join(",")));
            a.push(format!(
                "--output={}",
                job.log.display().to_string().replace("{task}", "%a")
            ));
        }
    }
    let r = &job.resources;
    if let Some(c) = r.cpus {
        a.push(format!("--cpus-per-task={c}"));
    }
    for (flag, v) in [
        ("--mem", &r.mem),
        ("--gpus", &r.gpus),
        ("--time", &r.time),
        ("--partition", &r.partition),
    ] {
        if let Some(v) = v {
            a.push(format!("{flag}={v}"));
        }
    }
    if !deps.is_empty() {
        a.push(format!("--dependency=afterok:{}", deps.join(":")));
        a.push("--kill-on-invalid-dep=yes".to_owned());
    }
    a.extend(r.args.iter().cloned());
    a.push(script.display().to_string());
    a
}

/// Where one task of a job stands once squeue no longer shows it active.
#[derive(Debug, PartialEq)]
enum Task {
    Done,
    /// No exit status in its log yet, within the grace period (a shared filesystem's
    /// attribute cache).
    Waiting,
    /// Why it failed, as the end of a sentence about it.
    Failed(String),
}

/// A task's outcome from the exit status its log ends with (`exit`), its last squeue
/// state, and how long ago squeue stopped showing it active (`waited`).
fn task_outcome(exit: Option<i32>, state: Option<&str>, waited: Duration, grace: Duration) -> Task {
    match (exit, state) {
        (Some(0), _) => Task::Done,
        (Some(rc), _) => Task::Failed(format!("failed with exit code {rc}")),
        (None, Some(s)) if s != "COMPLETED" => Task::Failed(format!("ended {s} (no exit status)")),
        (None, _) if waited < grace => Task::Waiting,
        (None, _) => Task::Failed(format!("left no exit status after {}s", grace.as_secs())),
    }
}

/// Why `job` (SLURM id `id`) can never start: the scheduler's `reason` and what it asks for.
fn never_starts(job: &Job, id: &str, reason: &str) -> String {
    let r = &job.resources;
    format!(
        "node `{}`: job {id} can never start ({reason}): it asks for {} CPUs{}{}{}; lower them with `[slurm.{}]` or `--slurm`",
        job.node,
        r.cpus.unwrap_or(1),
        r.mem.as_ref().map_or(String::new(), |m| format!(", {m} memory")),
        r.gpus.as_ref().map_or(String::new(), |g| format!(", {g} GPUs")),
        r.partition.as_ref().map_or(String::new(), |p| format!(" on partition `{p}`")),
        job.node.split('.').next().unwrap_or(&job.node)
    )
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

    fn job(kind: JobKind, deps: &[usize], resources: JobResources) -> Job {
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
    fn sbatch_arguments_carry_the_log_array_resources_and_dependencies() {
        let r = JobResources {
            cpus: Some(8),
            mem: Some("32G".into()),
            partition: Some("cpu".into()),
            args: vec!["--qos=low".into()],
            ..Default::default()
        };
        let target = job(JobKind::Target("umap".into()), &[], r.clone());
        let a = sbatch_args(
            &target,
            Some(4),
            Path::new("/runs"),
            &[],
            Path::new("/runs/umap.sh"),
        );
        assert_eq!(
            a,
            [
                "--parsable",
                "--job-name=dagrun:umap",
                "--chdir=/runs",
                "--output=/runs/umap-{task}.log",
                "--cpus-per-task=8",
                "--mem=32G",
                "--partition=cpu",
                "--qos=low",
                "/runs/umap.sh"
            ]
        );
        let array = job(
            JobKind::Array {
                count: 8,
                tasks: [0, 3, 5].into(),
            },
            &[0, 1],
            JobResources::default(),
        );
        let a = sbatch_args(
            &array,
            Some(2),
            Path::new("/runs"),
            &["101", "102"],
            Path::new("/runs/e.sh"),
        );
        assert!(a.contains(&"--array=0,3,5%2".to_owned()), "{a:?}");
        assert!(
            a.contains(&"--output=/runs/umap-%a.log".to_owned()),
            "{a:?}"
        );
        let at = a
            .iter()
            .position(|x| x == "--dependency=afterok:101:102")
            .expect("dependencies");
        assert_eq!(a[at + 1], "--kill-on-invalid-dep=yes");
        assert_eq!(a.last().unwrap(), "/runs/e.sh", "the script comes last");
        assert!(
            !a.iter().any(|x| x.starts_with("--cpus-per-task")),
            "no CPUs asked, none given"
        );
    }

    #[test]
    fn a_task_is_judged_by_its_exit_status_then_its_state_then_the_grace_period() {
        let (s, grace) = (Duration::from_secs(5), Duration::from_secs(60));
        let long = Duration::from_secs(61);
        assert_eq!(
            task_outcome(Some(0), Some("FAILED"), s, grace),
            Task::Done,
            "the log's status wins"
        );
        assert_eq!(
            task_outcome(Some(3), Some("COMPLETED"), s, grace),
            Task::Failed("failed with exit code 3".into())
        );
        assert_eq!(
            task_outcome(None, Some("TIMEOUT"), s, grace),
            Task::Failed("ended TIMEOUT (no exit status)".into())
        );
        assert_eq!(
            task_outcome(None, Some("OUT_OF_MEMORY"), long, grace),
            Task::Failed("ended OUT_OF_MEMORY (no exit status)".into())
        );
        assert_eq!(
            task_outcome(None, Some("COMPLETED"), s, grace),
            Task::Waiting,
            "the log may still arrive"
        );
        assert_eq!(task_outcome(None, None, s, grace), Task::Waiting);
        assert_eq!(
            task_outcome(None, None, long, grace),
            Task::Failed("left no exit status after 60s".into())
        );
    }

    #[test]
    fn a_job_that_can_never_start_says_what_it_asks_for() {
        let r = JobResources {
            cpus: Some(64),
            mem: Some("2T".into()),
            partition: Some("gpu".into()),
            ..Default::default()
        };
        let j = job(JobKind::Target("umap".into()), &[], r);
        let m = never_starts(&j, "77", "PartitionConfig");
        assert_eq!(m, "node `umap`: job 77 can never start (PartitionConfig): it asks for 64 CPUs, 2T memory on partition `gpu`; lower them with `[slurm.umap]` or `--slurm`");
    }
}
