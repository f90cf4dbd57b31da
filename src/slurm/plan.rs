//! Which units of a run need a SLURM job, and those jobs: a unit whose inputs are all known
//! and whose key has a verified entry is done; any other unit gets a job of its own, or
//! joins its point's job array when it is a shard unit, after the jobs of its inputs.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use super::{default_cpus, Job, JobKind};
use crate::cache::{Lookup, Store};
use crate::error::Result;
use crate::exec::{self, Observer, Unit};
use crate::ops::Op;
use crate::spec::resources::JobResources;
use crate::spec::Pipeline;

/// The jobs a run submits, each after the jobs it depends on, and each unit's job.
pub(super) struct Plan {
    pub jobs: Vec<Job>,
    /// `None`: the unit has a verified entry in the cache.
    pub job_of: Vec<Option<usize>>,
}

/// The jobs for `units` (merged from `points`) that `store` does not hold, their scripts
/// and logs in `run_dir`; a job asks for `max_cpus` (at most 8) where its op is
/// multithreaded and its table names no CPUs.
pub(super) fn plan(
    points: &[Pipeline],
    units: &[Unit],
    store: &Store,
    obs: &dyn Observer,
    run_dir: &Path,
    max_cpus: u32,
) -> Result<Plan> {
    let n = units.len();
    let mut cached = Cached {
        content: vec![None; n],
        keys: vec![None; n],
    };
    let mut plan = Plan {
        jobs: Vec::new(),
        job_of: vec![None; n],
    };
    let mut arrays: HashMap<(usize, u32), usize> = HashMap::new();
    // `--shard I/N` runs shard I of every sharded node, so one array serves a point only
    // when all its sharded nodes have the same N.
    let uniform: Vec<bool> = points.iter().map(one_shard_count).collect();
    for (u, unit) in units.iter().enumerate() {
        let p = &points[unit.point];
        if cached.check(p, u, unit, store, obs)? {
            continue;
        }
        let node = &p.nodes[unit.v];
        let deps: BTreeSet<usize> = unit.inputs.iter().filter_map(|&i| plan.job_of[i]).collect();
        // A shard unit (split or embed on a split) joins its point's job array.
        let input = node.inputs.first().map(|&i| &p.nodes[i].op);
        let j = match shard_of(&node.op, input) {
            Some((index, count)) if uniform[unit.point] => {
                let j = *arrays.entry((unit.point, count)).or_insert_with(|| {
                    let parent = parent_of(&node.name);
                    let resources = p.slurm.for_node(parent);
                    plan.jobs
                        .push(array_job(parent, unit.point, count, resources, run_dir));
                    plan.jobs.len() - 1
                });
                let job = &mut plan.jobs[j];
                if let JobKind::Array { tasks, .. } = &mut job.kind {
                    tasks.insert(index);
                }
                if job.resources.cpus.is_none() {
                    job.resources.cpus = Some(default_cpus(&node.op, max_cpus));
                }
                j
            }
            _ => {
                let mut resources = p.slurm.for_node(&node.name);
                resources.cpus = resources.cpus.or(Some(default_cpus(&node.op, max_cpus)));
                plan.jobs
                    .push(target_job(&node.name, unit.point, resources, run_dir));
                plan.jobs.len() - 1
            }
        };
        plan.jobs[j]
            .deps
            .extend(deps.into_iter().filter(|&d| d != j));
        plan.job_of[u] = Some(j);
    }
    Ok(plan)
}

/// The content hash and key of each unit found in the cache so far (`None`: not found).
struct Cached {
    content: Vec<Option<String>>,
    keys: Vec<Option<String>>,
}

impl Cached {
    /// Whether unit `u` (node `unit.v` of `p`) is done: its inputs are all found and its
    /// key has a verified entry, which is then recorded for its consumers.
    fn check(
        &mut self,
        p: &Pipeline,
        u: usize,
        unit: &Unit,
        store: &Store,
        obs: &dyn Observer,
    ) -> Result<bool> {
        if !unit.inputs.iter().all(|&i| self.content[i].is_some()) {
            return Ok(false);
        }
        let node = &p.nodes[unit.v];
        let (mut hashes, mut ikeys) = (vec![None; p.nodes.len()], vec![None; p.nodes.len()]);
        for (&iv, &i) in node.inputs.iter().zip(&unit.inputs) {
            hashes[iv].clone_from(&self.content[i]);
            ikeys[iv].clone_from(&self.keys[i]);
        }
        let key = exec::cached_key_parts(p, store, unit.v, &hashes, &ikeys, obs)?
            .expect("inputs known")
            .key();
        if let Lookup::Hit(m) = store.lookup(&key) {
            self.content[u] = Some(m.content_hash.clone());
            self.keys[u] = Some(key);
            return Ok(true);
        }
        Ok(false)
    }
}

/// Whether a pipeline's sharded nodes all have one shard count (then one array per point
/// can run them all).
fn one_shard_count(p: &Pipeline) -> bool {
    shard_counts(p.nodes.iter().map(|x| &x.op)).len() == 1
}

/// The shard counts of the `merge` nodes among `ops`.
fn shard_counts<'a>(ops: impl Iterator<Item = &'a Op>) -> BTreeSet<u32> {
    ops.filter_map(|op| {
        if let Op::Merge(m) = op {
            Some(m.shards)
        } else {
            None
        }
    })
    .collect()
}

/// The shard (index, count) a node with op `op` computes, whose first input has op
/// `input`: a split's own, or an embed's on a split; `None` for any other node.
fn shard_of(op: &Op, input: Option<&Op>) -> Option<(u32, u32)> {
    match op {
        Op::Split(s) => Some((s.index, s.count)),
        Op::Embed(_) => match input {
            Some(Op::Split(s)) => Some((s.index, s.count)),
            _ => None,
        },
        _ => None,
    }
}

/// The node a node made by validation came from (`embed.shard3` → `embed`).
fn parent_of(name: &str) -> &str {
    name.split_once('.').map_or(name, |(a, _)| a)
}

/// The (empty) job array for the shards of node `parent` at `point`, `count` in all.
fn array_job(
    parent: &str,
    point: usize,
    count: u32,
    resources: JobResources,
    run_dir: &Path,
) -> Job {
    let name = format!("{}-shards", parent);
    Job {
        log: run_dir.join(format!("{name}-{{task}}.log")),
        name,
        node: format!("{parent}.shards"),
        point,
        kind: JobKind::Array {
            count,
            tasks: BTreeSet::new(),
        },
        deps: BTreeSet::new(),
        resources,
        id: None,
        outcome: None,
        ended_at: None,
    }
}

/// The job that computes node `node` at `point`.
fn target_job(node: &str, point: usize, resources: JobResources, run_dir: &Path) -> Job {
    let name = node.replace(['/', ' '], "_");
    Job {
        log: run_dir.join(format!("{name}-p{point}.log")),
        name,
        node: node.to_owned(),
        point,
        kind: JobKind::Target(node.to_owned()),
        deps: BTreeSet::new(),
        resources,
        id: None,
        outcome: None,
        ended_at: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::embed::Embed;
    use crate::ops::shard::{Merge, Split};

    fn split(index: u32, count: u32) -> Op {
        Op::Split(Split {
            index,
            count,
            columns: vec!["file_loc".into()],
        })
    }

    fn embed() -> Op {
        Op::Embed(Embed {
            model: "m.onnx".into(),
            image_column: "file_loc".into(),
            base_dir: None,
            size: None,
            crop: 1.0,
            greyscale: false,
            mean: None,
            std: None,
            output: None,
            prefix: "feat_".into(),
            batch_size: 32,
            threads: None,
            shards: 4,
        })
    }

    #[test]
    fn a_split_and_an_embed_on_a_split_are_shards_and_nothing_else() {
        assert_eq!(shard_of(&split(2, 4), None), Some((2, 4)));
        assert_eq!(shard_of(&embed(), Some(&split(3, 4))), Some((3, 4)));
        assert_eq!(
            shard_of(&embed(), Some(&embed())),
            None,
            "an unsharded embed"
        );
        let merge = Op::Merge(Merge { shards: 4 });
        assert_eq!(shard_of(&merge, Some(&split(0, 4))), None);
    }

    #[test]
    fn shard_counts_come_from_the_merge_nodes() {
        let merge = |shards| Op::Merge(Merge { shards });
        let ops = [merge(4), split(0, 4), merge(4)];
        assert_eq!(shard_counts(ops.iter()), [4].into());
        let ops = [merge(4), merge(8)];
        assert_eq!(shard_counts(ops.iter()), [4, 8].into());
        assert_eq!(shard_counts([embed()].iter()), BTreeSet::new());
    }

    #[test]
    fn a_shard_array_and_a_node_job_are_named_for_their_node_and_point() {
        let r = JobResources {
            cpus: Some(2),
            ..Default::default()
        };
        assert_eq!(parent_of("embed.shard3"), "embed");
        assert_eq!(parent_of("embed"), "embed");
        let a = array_job("embed", 2, 8, r.clone(), Path::new("/runs"));
        assert_eq!(
            (a.name.as_str(), a.node.as_str()),
            ("embed-shards", "embed.shards")
        );
        assert_eq!(a.log, Path::new("/runs/embed-shards-{task}.log"));
        assert!(matches!(&a.kind, JobKind::Array { count: 8, tasks } if tasks.is_empty()));
        assert_eq!((a.point, a.resources.cpus), (2, Some(2)));
        let t = target_job("my node/x", 1, r, Path::new("/runs"));
        assert_eq!(
            (t.name.as_str(), t.node.as_str()),
            ("my_node_x", "my node/x")
        );
        assert_eq!(t.log, Path::new("/runs/my_node_x-p1.log"));
        assert!(matches!(&t.kind, JobKind::Target(n) if n == "my node/x"));
        assert!(t.deps.is_empty() && t.id.is_none() && t.outcome.is_none());
    }
}
