//! Submitting a run's jobs and waiting for them: each job's script and `sbatch` arguments,
//! then rounds of one `squeue` for all jobs, each job's outcome from its tasks' logs and
//! states, and Ctrl-C.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{cancel, live_ids, queue, run_cmd, sh, Job, JobKind, Options, Outcome, Queued, ACTIVE};
use crate::error::{Error, IoContext, Result};
use crate::exec::{Event, Observer};
use crate::spec::Pipeline;

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

/// Submit `jobs` in order (a job's dependencies come before it), then wait until all have
/// finished; the first failure, a job that can never start, or Ctrl-C ends it with an error.
pub(super) fn submit_and_wait(
    points: &[Pipeline],
    jobs: &mut [Job],
    run_dir: &Path,
    obs: &dyn Observer,
    opt: &Options,
) -> Result<()> {
    for j in 0..jobs.len() {
        let id = submit(points, jobs, j, run_dir, opt)?;
        obs.event(Event::Job {
            node: &jobs[j].node,
            job: &id,
            state: "submitted",
        });
        jobs[j].id = Some(id);
    }
    wait(jobs, obs, opt)
}

// Submission.

/// Write job `j`'s script beside its log and submit it after its dependencies; its id.
fn submit(
    points: &[Pipeline],
    jobs: &[Job],
    j: usize,
    run_dir: &Path,
    opt: &Options,
) -> Result<String> {
    let job = &jobs[j];
    let text = script(points, job, opt)?;
    let path = run_dir.join(format!("{}-p{}.sh", job.name, job.point));
    std::fs::write(&path, text).ctx("cannot write", &path)?;
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
    job_id(&out).ok_or_else(|| {
        Error::Scheduler(format!(
            "sbatch (node `{}`) printed `{}`, not a job id",
            job.node,
            out.trim()
        ))
    })
}

/// The job id `sbatch --parsable` printed (`ID` or `ID;CLUSTER`), if it printed one.
fn job_id(out: &str) -> Option<String> {
    let id = out.trim().split(';').next().unwrap_or("").to_owned();
    (!id.is_empty() && id.chars().all(|c| c.is_ascii_digit())).then_some(id)
}

/// The batch script of `job`: run dagrun, then write its exit status as the log's last line.
fn script(points: &[Pipeline], job: &Job, opt: &Options) -> Result<String> {
    let p = &points[job.point];
    let file = std::fs::canonicalize(&p.file).ctx("cannot find", &p.file)?;
    let cwd = std::env::current_dir().ctx("cannot read", Path::new("."))?;
    Ok(script_text(
        job,
        &Invocation {
            exe: &opt.exe,
            file: &file,
            pipeline: &p.name,
            sets: &opt.sets[job.point],
            cache: &opt.cache,
            cwd: &cwd,
        },
    ))
}

/// What a job's script runs besides the job itself.
struct Invocation<'a> {
    /// The dagrun executable.
    exe: &'a Path,
    /// The pipeline file (absolute), its name, and its point's `--set` arguments.
    file: &'a Path,
    pipeline: &'a str,
    sets: &'a [String],
    /// The cache (absolute) and the folder the job starts in.
    cache: &'a Path,
    cwd: &'a Path,
}

/// The text of `job`'s batch script: `dagrun run` for its node (or `--shard` of its array
/// task), then its exit status as the log's last line.
fn script_text(job: &Job, inv: &Invocation) -> String {
    let mut args = vec![
        sh(&inv.exe.display().to_string()),
        "run".into(),
        sh(&inv.file.display().to_string()),
        "--cache".into(),
        sh(&inv.cache.display().to_string()),
    ];
    for s in inv.sets {
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
    format!(
        "#!/bin/bash\n# written by dagrun --executor slurm: node `{}` of `{}`\ncd {} || exit 1\n{}\nrc=$?\necho \"{EXIT_MARK}$rc\"\nexit $rc\n",
        job.node,
        inv.pipeline,
        sh(&inv.cwd.display().to_string()),
        args.join(" ")
    )
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

// Polling.

/// Poll, one `squeue` per round for all jobs, with the pause growing while nothing
/// changes, until every job is decided; a failed job, one that can never start, or Ctrl-C
/// ends it with an error.
fn wait(jobs: &mut [Job], obs: &dyn Observer, opt: &Options) -> Result<()> {
    let mut interval = Duration::from_secs(1);
    let grace = Duration::from_secs(60);
    loop {
        let round = Round::new(queue()?);
        // A job that asks for more than its partition has would wait forever.
        if let Some(msg) = never_starting(jobs, &round) {
            return Err(Error::Scheduler(msg));
        }
        let changed = settle(jobs, &round, grace, obs)?;
        if jobs.iter().all(|j| j.outcome.is_some()) {
            return Ok(());
        }
        interval = next_interval(interval, changed);
        pause(jobs, interval, opt)?;
    }
}

/// What one `squeue` call says of the jobs.
struct Round {
    /// Each job id's lines: the task (arrays) and its state.
    states: HashMap<String, Vec<(Option<u32>, String)>>,
    /// The jobs pending for a reason no amount of waiting resolves, and that reason.
    never: HashMap<String, String>,
}

impl Round {
    /// The round of `queued`, grouped by job id in squeue's order.
    fn new(queued: Vec<Queued>) -> Round {
        let mut states: HashMap<String, Vec<(Option<u32>, String)>> = HashMap::new();
        let mut never: HashMap<String, String> = HashMap::new();
        for q in queued {
            if NEVER.contains(&q.reason.as_str()) {
                never.insert(q.job.clone(), q.reason);
            }
            states.entry(q.job).or_default().push((q.task, q.state));
        }
        Round { states, never }
    }
}

/// Why the first undecided job that squeue says can never start never will, if one does.
fn never_starting(jobs: &[Job], round: &Round) -> Option<String> {
    let job = jobs.iter().find(|j| {
        j.outcome.is_none() && j.id.as_ref().is_some_and(|id| round.never.contains_key(id))
    })?;
    let id = job.id.as_deref().expect("submitted");
    Some(never_starts(job, id, &round.never[id]))
}

/// Decide, in order, each undecided job that `round` no longer shows active: send its
/// event and record its outcome; the first failure ends it as the error. Whether any job
/// was decided.
fn settle(jobs: &mut [Job], round: &Round, grace: Duration, obs: &dyn Observer) -> Result<bool> {
    let mut changed = false;
    for job in jobs.iter_mut().filter(|j| j.outcome.is_none()) {
        let id = job.id.clone().expect("submitted");
        let seen = round.states.get(&id).map_or(&[][..], Vec::as_slice);
        if seen.iter().any(|(_, s)| ACTIVE.contains(&s.as_str())) {
            continue;
        }
        let ended = *job.ended_at.get_or_insert_with(Instant::now);
        let Some(o) = job_outcome(job, &id, seen, ended, grace) else {
            continue;
        };
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
    Ok(changed)
}

/// The pause before the next round: 1 s after a change, else half as long again as the
/// last, up to 10 s.
fn next_interval(last: Duration, changed: bool) -> Duration {
    if changed {
        Duration::from_secs(1)
    } else {
        (last.mul_f64(1.5)).min(Duration::from_secs(10))
    }
}

/// Sleep for `interval`, watching for Ctrl-C (which cancels the run's jobs).
fn pause(jobs: &mut [Job], interval: Duration, opt: &Options) -> Result<()> {
    let until = Instant::now() + interval;
    while Instant::now() < until {
        if opt.interrupted.load(Ordering::SeqCst) {
            return Err(cancel_on_interrupt(jobs));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Cancel the jobs still live and mark every job cancelled; the error the run ends with.
fn cancel_on_interrupt(jobs: &mut [Job]) -> Error {
    let live = live_ids(jobs);
    if let Err(e) = cancel(&live) {
        return e;
    }
    for j in jobs.iter_mut() {
        j.outcome.get_or_insert(Err("cancelled".into()));
    }
    Error::Interrupted(format!(
        "cancelled {} SLURM jobs this run submitted: {}",
        live.len(),
        live.join(", ")
    ))
}

// Outcomes.

/// The outcome of `job` (SLURM id `id`), which squeue stopped showing active at `ended`,
/// from its tasks' logs and `seen` (its squeue lines): `None` while a task waits for its
/// exit status; the first failed task's message names the node, the task, why, and the
/// tail of its log.
fn job_outcome(
    job: &Job,
    id: &str,
    seen: &[(Option<u32>, String)],
    ended: Instant,
    grace: Duration,
) -> Option<Outcome> {
    let mut outcome = Some(Ok(()));
    for t in job.tasks() {
        let log = task_log(&job.log, t);
        let state = task_state(seen, t);
        match task_outcome(exit_status(&log), state, ended.elapsed(), grace) {
            Task::Done => {}
            Task::Waiting => outcome = None,
            Task::Failed(why) => {
                let label = t.map_or_else(|| format!("job {id}"), |t| format!("job {id}_{t}"));
                let (node, at) = (&job.node, log.display());
                let msg = format!(
                    "node `{node}`: {label} {why}; log `{at}`: {}",
                    tail(&log, 6)
                );
                return Some(Err(msg));
            }
        }
    }
    outcome
}

/// The log of task `t` (`None`: a single job's) from the job's log path.
fn task_log(log: &Path, t: Option<u32>) -> PathBuf {
    match t {
        None => log.to_owned(),
        Some(t) => PathBuf::from(log.display().to_string().replace("{task}", &t.to_string())),
    }
}

/// Task `t`'s last squeue state among the job's lines `seen`; a lone line stands for
/// every task (squeue folds an array's finished tasks into one).
fn task_state(seen: &[(Option<u32>, String)], t: Option<u32>) -> Option<&str> {
    seen.iter()
        .find(|(task, _)| *task == t || seen.len() == 1)
        .map(|(_, s)| s.as_str())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slurm::tests::job;
    use crate::spec::resources::JobResources;

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

    #[test]
    fn sbatch_prints_a_job_id_or_the_run_stops() {
        assert_eq!(job_id("4711\n").as_deref(), Some("4711"));
        assert_eq!(job_id("4711;cluster2\n").as_deref(), Some("4711"));
        assert_eq!(job_id("Submitted batch job 4711"), None);
        assert_eq!(job_id("  \n"), None);
        assert_eq!(job_id("47a1"), None);
    }

    #[test]
    fn a_script_runs_the_node_or_the_array_task_then_writes_its_status() {
        let sets = ["umap.seed=3".to_owned(), "name='x'".to_owned()];
        let inv = Invocation {
            exe: Path::new("/bin/dagrun"),
            file: Path::new("/p/quick start.toml"),
            pipeline: "quick",
            sets: &sets,
            cache: Path::new("/c"),
            cwd: Path::new("/home/me"),
        };
        let r = JobResources {
            cpus: Some(4),
            ..Default::default()
        };
        let target = job(JobKind::Target("umap".into()), &[], r);
        assert_eq!(
            script_text(&target, &inv),
            "#!/bin/bash\n# written by dagrun --executor slurm: node `umap` of `quick`\n\
             cd '/home/me' || exit 1\n\
             '/bin/dagrun' run '/p/quick start.toml' --cache '/c' --set 'umap.seed=3' \
             --set 'name='\\''x'\\''' -j 4 --target 'umap'\n\
             rc=$?\necho \"dagrun-slurm-exit=$rc\"\nexit $rc\n"
        );
        let array = JobKind::Array {
            count: 8,
            tasks: [1].into(),
        };
        let text = script_text(&job(array, &[], JobResources::default()), &inv);
        assert!(
            text.contains("--set 'name='\\''x'\\''' --shard \"$SLURM_ARRAY_TASK_ID/8\"\n"),
            "{text}"
        );
        assert!(!text.contains(" -j "), "no CPUs asked, no -j: {text}");
    }

    fn queued(job: &str, task: Option<u32>, state: &str, reason: &str) -> Queued {
        Queued {
            job: job.into(),
            task,
            state: state.into(),
            reason: reason.into(),
        }
    }

    #[test]
    fn a_round_groups_tasks_by_job_and_finds_jobs_that_can_never_start() {
        let round = Round::new(vec![
            queued("7", Some(0), "COMPLETED", "None"),
            queued("8", None, "PENDING", "Resources"),
            queued("7", Some(2), "RUNNING", "None"),
            queued("9", None, "PENDING", "PartitionConfig"),
        ]);
        assert_eq!(
            round.states["7"],
            [(Some(0), "COMPLETED".into()), (Some(2), "RUNNING".into())]
        );
        assert_eq!(round.never.keys().collect::<Vec<_>>(), ["9"]);
        let with = |id: &str, outcome: Option<Outcome>| Job {
            id: Some(id.into()),
            outcome,
            ..job(JobKind::Target("umap".into()), &[], JobResources::default())
        };
        let waiting = [with("7", None), with("8", None)];
        assert_eq!(never_starting(&waiting, &round), None, "Resources passes");
        let never = [with("8", None), with("9", None)];
        let msg = never_starting(&never, &round).expect("job 9 never starts");
        assert!(msg.starts_with("node `umap`: job 9 can never start (PartitionConfig)"));
        let decided = [with("9", Some(Err("cancelled".into())))];
        assert_eq!(never_starting(&decided, &round), None, "already decided");
    }

    #[test]
    fn a_task_has_its_own_log_and_state_or_the_lone_line() {
        let log = Path::new("/runs/e-shards-{task}.log");
        assert_eq!(task_log(log, Some(3)), Path::new("/runs/e-shards-3.log"));
        assert_eq!(task_log(log, None), log);
        let seen = vec![
            (Some(0), "COMPLETED".to_owned()),
            (Some(3), "TIMEOUT".to_owned()),
        ];
        assert_eq!(task_state(&seen, Some(3)), Some("TIMEOUT"));
        assert_eq!(task_state(&seen, Some(5)), None);
        let folded = vec![(None, "CANCELLED".to_owned())];
        assert_eq!(task_state(&folded, Some(5)), Some("CANCELLED"));
        assert_eq!(task_state(&[], None), None);
    }

    #[test]
    fn a_job_ends_with_its_first_failed_task_and_waits_for_missing_statuses() {
        let t = tempfile::tempdir().unwrap();
        let write = |task: u32, text: &str| {
            std::fs::write(t.path().join(format!("e-{task}.log")), text).unwrap();
        };
        let mut array = job(
            JobKind::Array {
                count: 4,
                tasks: [0, 1, 2].into(),
            },
            &[],
            JobResources::default(),
        );
        array.node = "embed.shards".into();
        array.log = t.path().join("e-{task}.log");
        let (now, grace) = (Instant::now(), Duration::from_secs(60));
        let seen = [
            (Some(0), "COMPLETED".to_owned()),
            (Some(1), "COMPLETED".to_owned()),
            (Some(2), "COMPLETED".to_owned()),
        ];
        write(0, "embedded\ndagrun-slurm-exit=0\n");
        write(1, "dagrun-slurm-exit=0\n");
        assert_eq!(
            job_outcome(&array, "77", &seen, now, grace),
            None,
            "task 2's status may still arrive"
        );
        write(2, "loading\n\nout of luck\ndagrun-slurm-exit=3\n");
        write(1, "");
        let failed = job_outcome(&array, "77", &seen, now, grace).expect("decided");
        let log = t.path().join("e-2.log");
        assert_eq!(
            failed,
            Err(format!(
                "node `embed.shards`: job 77_2 failed with exit code 3; log `{}`: loading | out of luck",
                log.display()
            )),
            "task 2 fails though task 1 still waits"
        );
        write(1, "dagrun-slurm-exit=0\n");
        write(2, "dagrun-slurm-exit=0\n");
        assert_eq!(job_outcome(&array, "77", &seen, now, grace), Some(Ok(())));
        let single = job(JobKind::Target("umap".into()), &[], JobResources::default());
        let gone = [(None, "OUT_OF_MEMORY".to_owned())];
        let Some(Err(msg)) = job_outcome(&single, "5", &gone, now, grace) else {
            panic!("the scheduler's state decides without a status");
        };
        assert!(
            msg.starts_with("node `umap`: job 5 ended OUT_OF_MEMORY (no exit status); log `/runs/umap-{task}.log`"),
            "{msg}"
        );
    }

    #[test]
    fn the_pause_grows_by_half_while_nothing_changes_up_to_ten_seconds() {
        let s = Duration::from_secs;
        assert_eq!(next_interval(s(8), true), s(1));
        assert_eq!(next_interval(s(1), false), Duration::from_millis(1500));
        assert_eq!(next_interval(s(4), false), s(6));
        assert_eq!(next_interval(s(8), false), s(10));
        assert_eq!(next_interval(s(10), false), s(10));
    }
}
