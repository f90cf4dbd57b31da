//! The `[slurm]` table: what each node's job asks the scheduler for under
//! `--executor slurm`. Checked at validation like every other part of the file, whatever
//! the executor, so a typo is caught before anything runs.
//!
//! ```toml
//! [slurm]                # every job
//! partition = "cpu"
//! time = "02:00:00"
//! args = ["--account=galaxies"]
//! array_limit = 16       # at most this many tasks of a job array at once (`--array=…%16`)
//! [slurm.embed]          # one node's jobs (its shards, or a UMAP node's hidden `.knn`, too)
//! partition = "gpu"
//! gpus = 1
//! cpus = 8
//! mem = "32G"
//! ```

use std::collections::BTreeMap;

use super::raw::RawParam;
use crate::error::{Error, Result};

/// What one job asks for; `None`: the op's default (cpus) or the cluster's (the rest).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobResources {
    pub cpus: Option<u32>,
    /// `--mem`, e.g. `8G` or `500M`.
    pub mem: Option<String>,
    /// `--gpus`, e.g. `1` or `a100:2`.
    pub gpus: Option<String>,
    /// `--time`, e.g. `30`, `02:00:00`, `1-00:00:00`.
    pub time: Option<String>,
    pub partition: Option<String>,
    /// Extra `sbatch` arguments, passed as they are.
    pub args: Vec<String>,
}

impl JobResources {
    /// `self`, with `over`'s settings where it has them (its `args` appended).
    pub fn with(&self, over: &JobResources) -> JobResources {
        JobResources {
            cpus: over.cpus.or(self.cpus),
            mem: over.mem.clone().or_else(|| self.mem.clone()),
            gpus: over.gpus.clone().or_else(|| self.gpus.clone()),
            time: over.time.clone().or_else(|| self.time.clone()),
            partition: over.partition.clone().or_else(|| self.partition.clone()),
            args: self.args.iter().chain(&over.args).cloned().collect(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SlurmSpec {
    pub all: JobResources,
    /// By node name as written in the file.
    pub nodes: BTreeMap<String, JobResources>,
    pub array_limit: Option<u32>,
}

impl SlurmSpec {
    /// The resources of node `name`'s job: `[slurm]`, then `[slurm.NAME]`, where a node made
    /// by validation (`embed.shard3`, `u.knn`) takes its parent's table.
    pub fn for_node(&self, name: &str) -> JobResources {
        let own = self.nodes.get(name).or_else(|| {
            name.split_once('.')
                .and_then(|(parent, _)| self.nodes.get(parent))
        });
        own.map_or_else(|| self.all.clone(), |o| self.all.with(o))
    }
}

fn err(p: &RawParam, name: &str, msg: &str) -> Error {
    Error::spec(p.loc.clone(), None, Some(&format!("slurm.{name}")), msg)
}

/// A duration or size as SLURM writes it: digits, `:` and `-` for time; digits and a unit
/// for memory. Anything else would be refused by sbatch only when the job is submitted.
fn text(
    p: &RawParam,
    name: &str,
    v: &toml::Value,
    ok: fn(&str) -> bool,
    what: &str,
) -> Result<String> {
    let s = match v {
        toml::Value::Integer(i) if *i > 0 => i.to_string(),
        toml::Value::String(s) => s.trim().to_owned(),
        _ => return Err(err(p, name, &format!("expected {what}"))),
    };
    if s.is_empty() || !ok(&s) {
        return Err(err(p, name, &format!("`{s}`: expected {what}")));
    }
    Ok(s)
}

fn resources(
    p: &RawParam,
    prefix: &str,
    table: &toml::Table,
    top: bool,
    array_limit: &mut Option<u32>,
) -> Result<JobResources> {
    let mut r = JobResources::default();
    for (k, v) in table {
        let name = format!("{prefix}{k}");
        match k.as_str() {
            "cpus" => match v.as_integer() {
                Some(n) if (1..=4096).contains(&n) => r.cpus = Some(n as u32),
                _ => return Err(err(p, &name, "expected a whole number of CPUs, 1 to 4096")),
            },
            "mem" => {
                r.mem = Some(text(
                    p,
                    &name,
                    v,
                    |s| {
                        s.trim_end_matches(['K', 'M', 'G', 'T'])
                            .chars()
                            .all(|c| c.is_ascii_digit())
                            && s.starts_with(|c: char| c.is_ascii_digit())
                    },
                    "a size such as `8G` or `500M`",
                )?)
            }
            "gpus" => {
                r.gpus = Some(text(
                    p,
                    &name,
                    v,
                    |s| !s.contains(char::is_whitespace),
                    "a GPU count or `type:count`",
                )?)
            }
            "time" => {
                r.time = Some(text(
                    p,
                    &name,
                    v,
                    |s| {
                        s.chars()
                            .all(|c| c.is_ascii_digit() || c == ':' || c == '-')
                    },
                    "a time limit such as `90`, `02:00:00` or `1-00:00:00`",
                )?)
            }
            "partition" => match v.as_str() {
                Some(s) if !s.trim().is_empty() && !s.contains(char::is_whitespace) => {
                    r.partition = Some(s.to_owned())
                }
                _ => return Err(err(p, &name, "expected a partition name")),
            },
            "args" => match v.as_array().map(|a| {
                a.iter()
                    .map(|x| x.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
            }) {
                Some(Some(a)) => r.args = a,
                _ => {
                    return Err(err(
                        p,
                        &name,
                        "expected a list of sbatch arguments, e.g. [\"--account=abc\"]",
                    ))
                }
            },
            "array_limit" if top => match v.as_integer() {
                Some(n) if (1..=100_000).contains(&n) => *array_limit = Some(n as u32),
                _ => {
                    return Err(err(
                        p,
                        &name,
                        "expected a whole number of tasks, at least 1",
                    ))
                }
            },
            _ => {
                let keys = if top {
                    "cpus, mem, gpus, time, partition, args, array_limit, or a [slurm.NODE] table"
                } else {
                    "cpus, mem, gpus, time, partition, args"
                };
                return Err(Error::spec(
                    p.key_loc.clone(),
                    None,
                    Some(&format!("slurm.{name}")),
                    format!("unknown key (slurm takes: {keys})"),
                ));
            }
        }
    }
    Ok(r)
}

/// Check the `[slurm]` table; `nodes` are the pipeline's node names.
pub fn parse(params: &[RawParam], nodes: &[&str]) -> Result<SlurmSpec> {
    let mut spec = SlurmSpec::default();
    for p in params {
        match &p.value {
            toml::Value::Table(t) if p.name != "args" => {
                if !nodes.contains(&p.name.as_str()) {
                    return Err(Error::spec(
                        p.key_loc.clone(),
                        None,
                        Some(&format!("slurm.{}", p.name)),
                        format!("no node named `{}` (nodes: {})", p.name, nodes.join(", ")),
                    ));
                }
                let mut unused = None;
                spec.nodes.insert(
                    p.name.clone(),
                    resources(p, &format!("{}.", p.name), t, false, &mut unused)?,
                );
            }
            v => {
                let one: toml::Table = [(p.name.clone(), v.clone())].into_iter().collect();
                let r = resources(p, "", &one, true, &mut spec.array_limit)?;
                spec.all = spec.all.with(&r);
            }
        }
    }
    Ok(spec)
}
