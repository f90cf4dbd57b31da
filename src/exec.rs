//! Running validated pipelines against the cache.
//!
//! [`run_many`] takes one or more pipelines — one for `dagrun run`, one per grid point for
//! `dagrun sweep` — and merges their nodes into *units*: nodes with the same op, code
//! version, parameters, files and input units are one unit, run once, whatever number of
//! points share it. Units run as soon as their inputs are done, up to `max_nodes` at a time
//! and within a memory budget (an estimate from the inputs' sizes; one unit always runs, so
//! a node larger than the budget still runs, alone). Ready units start in a fixed order
//! (lowest unit first), and each op is deterministic, so outputs never depend on the
//! scheduling. A unit whose op has a joint key ([`crate::ops::Kind::joint_key`]) takes the
//! ready units with the same key and input units with it: the op may compute their outputs
//! alongside its own (each bit for bit what it would be alone); they are held back until
//! it is done, then run as usual. Units side by side each run their parallel steps in a
//! rayon pool of their own (`-j` threads), so one never queues behind the other's.
//!
//! For each unit: derive its key from its op, parameters and the content hashes of its
//! inputs; on a verified hit reuse the entry; otherwise take the key's compute lock, check
//! again (another process may have just finished it), compute, and publish atomically.
//! Inputs are handed to ops from memory when this run computed them and read from the cache
//! otherwise; a frame is dropped as soon as its last consumer has run.
//!
//! The executor never prints: it reports through an [`Observer`].

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use polars::prelude::{DataFrame, DataType, Schema};
use serde::Serialize;

use crate::cache::key::{explain, KeyParts};
use crate::cache::store::{Draft, Got, RunRecord, Seen, UseLock};
use crate::cache::{files, Lookup, Manifest, Store};
use crate::dag::{self, NodeId};
use crate::error::{Error, Result};
use crate::ops::{Op, RunCtx, Scratch};
use crate::progress::ProgressFactory;
use crate::spec::Pipeline;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Computed,
    Cached,
}

#[derive(Clone, Debug, Serialize)]
pub struct NodeReport {
    pub name: String,
    pub op: String,
    pub key: String,
    pub status: Status,
    pub seconds: f64,
    pub rows: u64,
    #[serde(skip)]
    pub summary: Vec<String>,
    /// The SLURM job that computed it (`--executor slurm`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slurm_job: Option<String>,
    /// Paths of the entry's extra files (e.g. `index.html`), relative to its `files/`.
    #[serde(skip)]
    pub attachments: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub pipeline: String,
    pub nodes: Vec<NodeReport>,
}

impl RunReport {
    pub fn node(&self, name: &str) -> Option<&NodeReport> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

pub enum Event<'a> {
    Start {
        node: &'a str,
        op: &'a str,
    },
    Corrupt {
        node: &'a str,
        key: &'a str,
        reason: &'a str,
    },
    Waiting {
        node: &'a str,
    },
    Done(&'a NodeReport),
    /// A batch job changed state (`--executor slurm`): submitted, completed, failed, ...
    Job {
        node: &'a str,
        job: &'a str,
        state: &'a str,
    },
}

/// Receives what the executor does; the CLI prints it, tests record it.
pub trait Observer: ProgressFactory {
    fn event(&self, e: Event);
}

/// How many nodes may run at once, and the memory they may be expected to take together.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_nodes: usize,
    pub memory_bytes: u64,
}

impl Limits {
    /// One node at a time.
    pub const SERIAL: Limits = Limits {
        max_nodes: 1,
        memory_bytes: u64::MAX,
    };
}

/// The key parts of node `v`, given the content hashes of its inputs and, for an op that
/// reads files named by its input rows, the digest of their contents ([`data_digest`]).
fn key_parts(
    p: &Pipeline,
    store: &Store,
    v: NodeId,
    hashes: &[Option<String>],
    data: Option<String>,
) -> Result<Option<KeyParts>> {
    let node = &p.nodes[v];
    let mut inputs = Vec::with_capacity(node.inputs.len());
    for &u in &node.inputs {
        match &hashes[u] {
            Some(h) => inputs.push(h.clone()),
            None => return Ok(None),
        }
    }
    let mut file_hashes = std::collections::BTreeMap::new();
    for (param, path) in node.op.files() {
        file_hashes.insert(
            param.to_owned(),
            files::content_hash(&store.files_dir(), &path)?,
        );
    }
    if let Some(d) = data {
        file_hashes.insert(DATA_FILES.to_owned(), d);
    }
    Ok(Some(KeyParts {
        op: node.op.name().to_owned(),
        op_version: node.op.version(),
        id: p.id.clone(),
        params: node.op.key_params(),
        inputs,
        files: file_hashes,
    }))
}

/// The name under which the digest of an op's data files (image cutouts) enters the key's
/// `files`.
const DATA_FILES: &str = "images";

/// The digest of the data files node `v` reads given its inputs, or `None` for an op that
/// reads none. Files are hashed through the stat cache, with a progress bar.
fn data_digest(
    p: &Pipeline,
    store: &Store,
    v: NodeId,
    inputs: &[Arc<DataFrame>],
    obs: &dyn ProgressFactory,
) -> Result<Option<files::DataDigest>> {
    let node = &p.nodes[v];
    let Some(paths) = node.op.data_files(inputs, &p.id, &node.name)? else {
        return Ok(None);
    };
    let bar = obs.bar(&node.name, "images checked", paths.len() as u64);
    let d = files::data_digest(&store.files_dir(), &paths, bar.as_ref())?;
    bar.finish();
    tracing::debug!(node = %node.name, files = paths.len(), hashed = d.hashed, missing = d.missing, "data files");
    Ok(Some(d))
}

/// A node's [`Parts`]: cache entries keyed like the node itself but with the op marked
/// `OP#part`, the part's id as the one input, and no data-file digest (the id covers the
/// part's own files). They are ordinary entries: verified on use, held against gc while
/// this run uses them, removed by gc when unused.
struct NodeParts<'a> {
    store: &'a Store,
    base: KeyParts,
    node: &'a str,
    pipeline: &'a str,
    held: Mutex<Vec<UseLock>>,
}

impl<'a> NodeParts<'a> {
    fn new(store: &'a Store, node_parts: &KeyParts, node: &'a str, pipeline: &'a str) -> Self {
        let mut base = node_parts.clone();
        base.op = format!("{}#part", base.op);
        base.inputs.clear();
        base.files.remove(DATA_FILES);
        NodeParts {
            store,
            base,
            node,
            pipeline,
            held: Mutex::new(Vec::new()),
        }
    }

    fn parts(&self, id: &str) -> KeyParts {
        let mut k = self.base.clone();
        k.inputs = vec![id.to_owned()];
        k
    }
}

impl crate::ops::Parts for NodeParts<'_> {
    fn get(&self, id: &str) -> Result<Option<DataFrame>> {
        let key = self.parts(id).key();
        let used = self.store.use_entry(&key)?;
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(used);
        match self.store.lookup(&key) {
            Lookup::Hit(_) => Ok(Some(self.store.read(&key, self.node)?)),
            _ => Ok(None),
        }
    }

    fn put(&self, id: &str, df: DataFrame) -> Result<()> {
        let parts = self.parts(id);
        let key = parts.key();
        let draft = Draft {
            key: key.clone(),
            parts,
            node: format!("{}#part", self.node),
            pipeline: self.pipeline.to_owned(),
            input_nodes: Vec::new(),
            seconds: 0.0,
            summary: Vec::new(),
            details: serde_json::Value::Null,
            files: Vec::new(),
            slurm: crate::cache::store::this_job(),
        };
        self.store
            .get_or_compute(&key, |_| {}, || Ok((df, draft)))
            .map(drop)
    }
}

/// The key parts of node `v` from what the cache already holds: the content hashes and
/// keys of its inputs' entries (by `NodeId`; `None` where an input is not known yet, and
/// then `None`). An op that reads data files gets its inputs read from the cache for the
/// digest. What `plan` and the SLURM controller use; a run uses frames it has in memory.
pub(crate) fn cached_key_parts(
    p: &Pipeline,
    store: &Store,
    v: NodeId,
    hashes: &[Option<String>],
    keys: &[Option<String>],
    obs: &dyn ProgressFactory,
) -> Result<Option<KeyParts>> {
    let node = &p.nodes[v];
    let data = match node
        .inputs
        .iter()
        .map(|&u| keys[u].clone())
        .collect::<Option<Vec<String>>>()
    {
        Some(ks) if node.op.reads_data_files() => {
            let ins = ks
                .iter()
                .zip(&node.inputs)
                .map(|(k, &u)| store.read(k, &p.nodes[u].name).map(Arc::new))
                .collect::<Result<Vec<_>>>()?;
            data_digest(p, store, v, &ins, obs)?.map(|d| d.digest)
        }
        _ => None,
    };
    key_parts(p, store, v, hashes, data)
}

fn input_names(p: &Pipeline, v: NodeId) -> Vec<String> {
    p.nodes[v]
        .inputs
        .iter()
        .map(|&u| p.nodes[u].name.clone())
        .collect()
}

/// Which nodes a run of `targets` needs (all when empty).
pub fn needed(p: &Pipeline, targets: &[NodeId]) -> Vec<bool> {
    if targets.is_empty() {
        vec![true; p.nodes.len()]
    } else {
        dag::ancestors(&p.inputs(), targets)
    }
}

/// Run the pipeline (or only what `targets` need), one node at a time.
pub fn run(
    p: &Pipeline,
    store: &Store,
    obs: &dyn Observer,
    targets: &[NodeId],
) -> Result<RunReport> {
    let mut reports = run_many(
        std::slice::from_ref(p),
        store,
        obs,
        &[targets.to_vec()],
        Limits::SERIAL,
    )?;
    Ok(reports.pop().expect("one pipeline, one report"))
}

/// A node of one or more pipelines, merged by what decides its output.
pub(crate) struct Unit {
    /// The first pipeline (point) that has it, and its node there.
    pub point: usize,
    pub v: NodeId,
    pub inputs: Vec<usize>,
    pub consumers: Vec<usize>,
}

/// Merge the needed nodes of all pipelines into units.
pub(crate) fn merge(
    points: &[Pipeline],
    targets: &[Vec<NodeId>],
) -> (Vec<Unit>, Vec<Vec<Option<usize>>>) {
    let mut units: Vec<Unit> = Vec::new();
    let mut by_identity: HashMap<String, usize> = HashMap::new();
    let mut of_point = Vec::with_capacity(points.len());
    for (pt, p) in points.iter().enumerate() {
        let need = needed(p, targets.get(pt).map_or(&[][..], Vec::as_slice));
        let mut unit_of: Vec<Option<usize>> = vec![None; p.nodes.len()];
        for &v in p.order.iter().filter(|&&v| need[v]) {
            let node = &p.nodes[v];
            let inputs: Vec<usize> = node
                .inputs
                .iter()
                .map(|&u| unit_of[u].expect("inputs come first"))
                .collect();
            let files: Vec<(&str, String)> = node
                .op
                .files()
                .into_iter()
                .map(|(k, f)| (k, f.display().to_string()))
                .collect();
            let data_dir = node.op.data_dir().map(|d| d.display().to_string());
            let identity = serde_json::json!([
                node.op.name(),
                node.op.version(),
                p.id,
                node.op.key_params(),
                files,
                data_dir,
                inputs
            ])
            .to_string();
            let next = units.len();
            let u = *by_identity.entry(identity).or_insert(next);
            if u == next {
                for &i in &inputs {
                    units[i].consumers.push(next);
                }
                units.push(Unit {
                    point: pt,
                    v,
                    inputs,
                    consumers: Vec::new(),
                });
            }
            unit_of[v] = Some(u);
        }
        of_point.push(unit_of);
    }
    (units, of_point)
}

/// What a finished unit left behind: its report (as for the first point that has it) and
/// the content hash its consumers' keys are made of.
struct Finished {
    report: NodeReport,
    content_hash: String,
}

struct State {
    ready: BTreeSet<usize>,
    inputs_left: Vec<usize>,
    uses_left: Vec<usize>,
    finished: Vec<Option<Finished>>,
    frames: Vec<Option<Arc<DataFrame>>>,
    running: usize,
    memory: u64,
    not_started: usize,
    error: Option<(usize, Error)>,
    held: Vec<UseLock>,
}

impl State {
    /// Nothing started: the units without inputs are ready.
    fn new(units: &[Unit]) -> State {
        let n = units.len();
        State {
            ready: (0..n).filter(|&u| units[u].inputs.is_empty()).collect(),
            inputs_left: units.iter().map(|u| u.inputs.len()).collect(),
            uses_left: units.iter().map(|u| u.consumers.len()).collect(),
            finished: (0..n).map(|_| None).collect(),
            frames: vec![None; n],
            running: 0,
            memory: 0,
            not_started: n,
            error: None,
            held: Vec::new(),
        }
    }

    /// Unit `i`, which has finished.
    fn done(&self, i: usize) -> &Finished {
        self.finished[i].as_ref().expect("input done")
    }
}

/// Bytes per row of a table with this schema, as held in memory.
fn row_bytes(s: &Schema) -> u64 {
    s.iter_values()
        .map(|dt| match dt {
            DataType::Boolean | DataType::Int8 | DataType::UInt8 => 1,
            DataType::Int16 | DataType::UInt16 => 2,
            DataType::Int32 | DataType::UInt32 | DataType::Float32 => 4,
            DataType::String => 24,
            _ => 8,
        })
        .sum()
}

/// A rough estimate of the memory a node takes while it runs: its inputs, its output and
/// the op's own working set ([`Op::working_memory`]).
fn memory_estimate(op: &Op, inputs: &[(u64, &Schema)], out: &Schema) -> u64 {
    let rows = inputs.iter().map(|(r, _)| *r).max().unwrap_or(0);
    let held: u64 = inputs.iter().map(|(r, s)| r * row_bytes(s)).sum();
    held + rows * row_bytes(out) + op.working_memory(rows)
}

/// Run several pipelines as one: nodes they share run once (see the module docs). Returns
/// one report per pipeline, its nodes in its topological order; a node shared with an
/// earlier pipeline shows as `cached` in the later ones.
pub fn run_many(
    points: &[Pipeline],
    store: &Store,
    obs: &dyn Observer,
    targets: &[Vec<NodeId>],
    limits: Limits,
) -> Result<Vec<RunReport>> {
    let (units, of_point) = merge(points, targets);
    let run = Run {
        points,
        units: &units,
        store,
        obs,
        limits,
        state: Mutex::new(State::new(&units)),
        wake: Condvar::new(),
        scratch: Scratch::default(),
    };
    let pools = node_pools(limits.max_nodes.clamp(1, units.len().max(1)));
    std::thread::scope(|scope| {
        for pool in &pools {
            let run = &run;
            scope.spawn(move || run.worker(pool.as_ref()));
        }
    });
    let mut st = run.state.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Some((_, e)) = st.error.take() {
        return Err(e);
    }
    let reports = points
        .iter()
        .enumerate()
        .map(|(pt, p)| point_report(pt, p, &units, &of_point[pt], &st))
        .collect();
    drop(st.held);
    Ok(reports)
}

/// One rayon pool per worker when there are several. Units side by side run their parallel
/// steps in pools of their own, each as large as the global one, and share the cores
/// through the OS: in one pool, every parallel step of one unit (a spanning tree's Borůvka
/// rounds) queued behind the other's (a layout's SGD epoch), and a tree that takes 1.5 s
/// alone took 105 s beside an SGD.
fn node_pools(workers: usize) -> Vec<Option<rayon::ThreadPool>> {
    (0..workers)
        .map(|w| {
            (workers > 1)
                .then(|| {
                    rayon::ThreadPoolBuilder::new()
                        .num_threads(rayon::current_num_threads())
                        .thread_name(move |i| format!("dagrun-node{w}-{i}"))
                        .build()
                        .ok()
                })
                .flatten()
        })
        .collect()
}

/// Point `pt`'s report, from its units' (`unit_of` by node): a node computed (or found)
/// for an earlier point shows as cached.
fn point_report(
    pt: usize,
    p: &Pipeline,
    units: &[Unit],
    unit_of: &[Option<usize>],
    st: &State,
) -> RunReport {
    let nodes = p
        .order
        .iter()
        .filter_map(|&v| unit_of[v].map(|u| (v, u)))
        .map(|(v, u)| {
            let mut r = st.done(u).report.clone();
            r.name.clone_from(&p.nodes[v].name);
            if units[u].point != pt {
                r.status = Status::Cached;
                r.seconds = 0.0;
            }
            r
        })
        .collect();
    RunReport {
        pipeline: p.name.clone(),
        nodes,
    }
}

/// What the workers of one [`run_many`] share.
struct Run<'a> {
    points: &'a [Pipeline],
    units: &'a [Unit],
    store: &'a Store,
    obs: &'a dyn Observer,
    limits: Limits,
    state: Mutex<State>,
    /// Notified when a unit finishes (units become ready, memory is freed).
    wake: Condvar,
    /// What ops share between the nodes of this run (e.g. `reduce`'s fuzzy graphs).
    scratch: Scratch,
}

/// A unit a worker took, with what it needs of its inputs.
struct Taken {
    u: usize,
    /// Its memory estimate, given back to the budget when it is done.
    estimate: u64,
    /// The content hashes and the keys of its inputs' entries, in input order.
    hashes: Vec<String>,
    keys: Vec<String>,
    /// Its inputs' frames, where this run holds them.
    frames: Vec<Option<Arc<DataFrame>>>,
    /// Ready units it may compute alongside (see `Kind::joint_key`): held back until it is
    /// done, then run as usual (finding their outputs in memory).
    joined: Vec<usize>,
}

/// What running a unit gives: its outcome, and its table where this run computed it.
type Outcome = Result<(Finished, Option<DataFrame>)>;

impl Run<'_> {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Take ready units and run them (in `pool`, if given) until none are left or one failed.
    fn worker(&self, pool: Option<&rayon::ThreadPool>) {
        while let Some(mut t) = self.take() {
            let frames = std::mem::take(&mut t.frames);
            let run = || self.run_unit(&t, frames);
            let res = match pool {
                Some(p) => p.install(run),
                None => run(),
            };
            self.finish(t, res);
        }
    }

    /// Wait for the lowest ready unit that fits the memory budget (any unit when none
    /// runs) and take it, with the ready units joined to it; `None` once every unit has
    /// started or one failed.
    fn take(&self) -> Option<Taken> {
        let mut st = self.lock();
        let (u, estimate) = loop {
            if st.error.is_some() || st.not_started == 0 {
                return None;
            }
            match self.fitting(&st) {
                Some(x) => break x,
                None => st = self.wake.wait(st).unwrap_or_else(|e| e.into_inner()),
            }
        };
        st.ready.remove(&u);
        let joined = self.joinable(&st, u);
        for w in &joined {
            st.ready.remove(w);
        }
        st.running += 1;
        st.memory = st.memory.saturating_add(estimate);
        st.not_started -= 1;
        let ins = &self.units[u].inputs;
        Some(Taken {
            u,
            estimate,
            hashes: ins
                .iter()
                .map(|&i| st.done(i).content_hash.clone())
                .collect(),
            keys: ins.iter().map(|&i| st.done(i).report.key.clone()).collect(),
            frames: ins.iter().map(|&i| st.frames[i].clone()).collect(),
            joined,
        })
    }

    /// The lowest ready unit that fits the budget beside those running, with its estimate.
    fn fitting(&self, st: &State) -> Option<(usize, u64)> {
        st.ready.iter().copied().find_map(|u| {
            let unit = &self.units[u];
            let p = &self.points[unit.point];
            let ins: Vec<(u64, &Schema)> = unit
                .inputs
                .iter()
                .zip(&p.nodes[unit.v].inputs)
                .map(|(&i, &iv)| {
                    let rows = st.finished[i].as_ref().map_or(0, |f| f.report.rows);
                    (rows, p.nodes[iv].schema.as_ref())
                })
                .collect();
            let est = memory_estimate(&p.nodes[unit.v].op, &ins, &p.nodes[unit.v].schema);
            (st.running == 0 || st.memory.saturating_add(est) <= self.limits.memory_bytes)
                .then_some((u, est))
        })
    }

    /// The ready units unit `u` may compute alongside: the same joint key and input units.
    fn joinable(&self, st: &State, u: usize) -> Vec<usize> {
        let Some(k) = op_of(self.points, self.units, u).joint_key() else {
            return Vec::new();
        };
        st.ready
            .iter()
            .copied()
            .filter(|&w| {
                self.units[w].inputs == self.units[u].inputs
                    && op_of(self.points, self.units, w).joint_key().as_ref() == Some(&k)
            })
            .collect()
    }

    /// Give a unit's budget back and keep what it left: its frame (while consumers need
    /// it) and its report, or its error; make ready the units that waited for it.
    fn finish(&self, t: Taken, res: Outcome) {
        let u = t.u;
        let mut st = self.lock();
        st.ready.extend(t.joined);
        st.running -= 1;
        st.memory = st.memory.saturating_sub(t.estimate);
        match res {
            Ok((f, frame)) => {
                if !self.units[u].consumers.is_empty() {
                    st.frames[u] = frame.map(Arc::new);
                }
                st.finished[u] = Some(f);
                for &i in &self.units[u].inputs {
                    st.uses_left[i] -= 1;
                    if st.uses_left[i] == 0 {
                        st.frames[i] = None;
                    }
                }
                for &c in &self.units[u].consumers {
                    st.inputs_left[c] -= 1;
                    if st.inputs_left[c] == 0 {
                        st.ready.insert(c);
                    }
                }
            }
            // Keep the error of the lowest unit: the same failure whatever the scheduling.
            Err(e) => {
                if st.error.as_ref().is_none_or(|(v, _)| u < *v) {
                    st.error = Some((u, e));
                }
            }
        }
        self.wake.notify_all();
    }

    /// Run (or find in the cache) a taken unit, whose inputs are done.
    fn run_unit(&self, t: &Taken, frames: Vec<Option<Arc<DataFrame>>>) -> Outcome {
        let unit = &self.units[t.u];
        let p = &self.points[unit.point];
        let node = &p.nodes[unit.v];
        self.obs.event(Event::Start {
            node: &node.name,
            op: node.op.name(),
        });
        let t0 = Instant::now();
        let mut inputs = Inputs::Handed(frames);
        let (parts, data) = self.unit_key(t, &mut inputs)?;
        let key = parts.key();
        tracing::debug!(node = %node.name, %key, "key");
        // Held until the run ends: gc leaves entries this run uses alone.
        let used = self.store.use_entry(&key)?;
        self.lock().held.push(used);
        let seen = |s: Seen| match s {
            Seen::Corrupt(reason) => self.obs.event(Event::Corrupt {
                node: &node.name,
                key: &key,
                reason,
            }),
            Seen::Waiting => self.obs.event(Event::Waiting { node: &node.name }),
        };
        let got = self.store.get_or_compute(&key, seen, || {
            let ins = inputs.load(self, t)?;
            self.compute(t, ins, &parts, data.as_ref(), t0)
        })?;
        let (status, manifest, computed) = match got {
            Got::Hit(m) => (Status::Cached, m, None),
            Got::Computed(m, df) => (Status::Computed, m, Some(df)),
        };
        self.store.save_run(
            &p.name,
            &node.name,
            &RunRecord {
                key: key.clone(),
                parts,
                input_nodes: input_names(p, unit.v),
                content_hash: manifest.content_hash.clone(),
            },
        )?;
        let seconds = match status {
            Status::Computed => manifest.seconds,
            Status::Cached => t0.elapsed().as_secs_f64(),
        };
        let report = node_report(node, key, status, seconds, &manifest);
        self.obs.event(Event::Done(&report));
        let content_hash = manifest.content_hash.clone();
        Ok((
            Finished {
                report,
                content_hash,
            },
            computed,
        ))
    }

    /// A taken unit's key parts and, for an op that reads files its input rows name, the
    /// digest of their contents (for which its inputs are loaded now).
    fn unit_key(
        &self,
        t: &Taken,
        inputs: &mut Inputs,
    ) -> Result<(KeyParts, Option<files::DataDigest>)> {
        let unit = &self.units[t.u];
        let p = &self.points[unit.point];
        let data = if p.nodes[unit.v].op.reads_data_files() {
            let ins = std::mem::replace(inputs, Inputs::Taken).load(self, t)?;
            let d = data_digest(p, self.store, unit.v, &ins, self.obs)?;
            *inputs = Inputs::Loaded(ins);
            d
        } else {
            None
        };
        let hashes = by_node(p, unit.v, &t.hashes);
        let digest = data.as_ref().map(|d| d.digest.clone());
        let parts = key_parts(p, self.store, unit.v, &hashes, digest)?.expect("inputs ran first");
        Ok((parts, data))
    }

    /// Compute a taken unit from its inputs: the op's output and the entry's draft.
    fn compute(
        &self,
        t: &Taken,
        ins: Vec<Arc<DataFrame>>,
        parts: &KeyParts,
        data: Option<&files::DataDigest>,
        t0: Instant,
    ) -> Result<(DataFrame, Draft)> {
        let unit = &self.units[t.u];
        let p = &self.points[unit.point];
        let node = &p.nodes[unit.v];
        let store = self.store;
        let details: Vec<serde_json::Value> = t
            .keys
            .iter()
            .map(|k| {
                store
                    .manifest(k)
                    .map_or(serde_json::Value::Null, |m| m.details)
            })
            .collect();
        let node_parts = NodeParts::new(store, parts, &node.name, &p.name);
        let input_files: Vec<std::path::PathBuf> = t
            .keys
            .iter()
            .map(|k| store.attachment_path(k, ""))
            .collect();
        let joint = joint_ops(self.points, self.units, &t.joined, store, &t.hashes)?;
        let ctx = RunCtx {
            pipeline: &p.name,
            node: &node.name,
            id: &p.id,
            progress: self.obs,
            input_details: &details,
            data_hashes: data.map(|d| d.rows.as_slice()),
            parts: &node_parts,
            input_files: &input_files,
            joint: &joint,
            scratch: &self.scratch,
        };
        let out = node.op.run(&ins, &ctx).map_err(|e| e.at(&node.loc))?;
        drop(ins);
        if !out.df.schema().contains(&p.id) {
            return Err(Error::input(
                &node.name,
                format!("the output lost the id column `{}`", p.id),
            ));
        }
        let draft = Draft {
            key: parts.key(),
            parts: parts.clone(),
            node: node.name.clone(),
            pipeline: p.name.clone(),
            input_nodes: input_names(p, unit.v),
            seconds: t0.elapsed().as_secs_f64(),
            summary: out.summary,
            details: out.details,
            files: out.files,
            slurm: crate::cache::store::this_job(),
        };
        Ok((out.df, draft))
    }
}

/// A node's report from its entry's manifest.
fn node_report(
    node: &crate::spec::Node,
    key: String,
    status: Status,
    seconds: f64,
    m: &Manifest,
) -> NodeReport {
    NodeReport {
        name: node.name.clone(),
        op: node.op.name().to_owned(),
        key,
        status,
        seconds,
        rows: m.rows,
        summary: m.summary.clone(),
        slurm_job: None,
        attachments: m.attachments.iter().map(|a| a.path.clone()).collect(),
    }
}

/// A unit's input tables: as handed over by the worker (a frame where this run holds it),
/// or loaded.
enum Inputs {
    Handed(Vec<Option<Arc<DataFrame>>>),
    Loaded(Vec<Arc<DataFrame>>),
    /// Taken by [`Inputs::load`].
    Taken,
}

impl Inputs {
    /// The tables: the frames this run holds, the others read from the cache (and kept for
    /// the unit's other consumers).
    fn load(self, run: &Run, t: &Taken) -> Result<Vec<Arc<DataFrame>>> {
        let frames = match self {
            Inputs::Loaded(ins) => return Ok(ins),
            Inputs::Handed(frames) => frames,
            Inputs::Taken => unreachable!("inputs loaded twice"),
        };
        let unit = &run.units[t.u];
        let p = &run.points[unit.point];
        let node = &p.nodes[unit.v];
        let mut ins = Vec::with_capacity(node.inputs.len());
        for ((&i, &iv), frame) in unit.inputs.iter().zip(&node.inputs).zip(frames) {
            let frame = match frame {
                Some(f) => f,
                None => {
                    let f = Arc::new(run.store.read(&t.keys[ins.len()], &p.nodes[iv].name)?);
                    let mut st = run.lock();
                    if st.uses_left[i] > 1 {
                        st.frames[i] = Some(f.clone());
                    }
                    f
                }
            };
            ins.push(frame);
        }
        Ok(ins)
    }
}

/// Node `v`'s input content `hashes` (in input order) placed at their nodes, as
/// [`key_parts`] reads them.
fn by_node(p: &Pipeline, v: NodeId, hashes: &[String]) -> Vec<Option<String>> {
    let mut all = vec![None; p.nodes.len()];
    for (&iv, h) in p.nodes[v].inputs.iter().zip(hashes) {
        all[iv] = Some(h.clone());
    }
    all
}

/// A unit's op (as in the first point that has it).
fn op_of<'p>(points: &'p [Pipeline], units: &[Unit], u: usize) -> &'p Op {
    &points[units[u].point].nodes[units[u].v].op
}

/// The ops of the units joined to one that runs (the same input units, so the same input
/// `hashes`) whose outputs are not in the cache.
fn joint_ops<'p>(
    points: &'p [Pipeline],
    units: &[Unit],
    joined: &[usize],
    store: &Store,
    hashes: &[String],
) -> Result<Vec<(&'p str, &'p Op)>> {
    let mut ops = Vec::new();
    for &w in joined {
        let p = &points[units[w].point];
        let v = units[w].v;
        if let Some(parts) = key_parts(p, store, v, &by_node(p, v, hashes), None)? {
            if !matches!(store.lookup(&parts.key()), Lookup::Hit(_)) {
                ops.push((p.nodes[v].name.as_str(), &p.nodes[v].op));
            }
        }
    }
    Ok(ops)
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PlanStatus {
    /// A verified entry exists.
    Cached,
    /// Will be computed.
    Run,
    /// Depends on a node that will run: reused if that node's output comes out unchanged.
    Pending,
}

#[derive(Clone, Debug, Serialize)]
pub struct PlanRow {
    pub name: String,
    pub op: String,
    pub key: Option<String>,
    pub status: PlanStatus,
    pub rows: Option<u64>,
    /// Why the node will run (empty when cached).
    pub why: Vec<String>,
}

/// What a run of `targets` would do, and why, without computing anything.
pub fn plan(
    p: &Pipeline,
    store: &Store,
    obs: &dyn ProgressFactory,
    targets: &[NodeId],
) -> Result<Vec<PlanRow>> {
    let need = needed(p, targets);
    let mut hashes: Vec<Option<String>> = vec![None; p.nodes.len()];
    let mut keys: Vec<Option<String>> = vec![None; p.nodes.len()];
    let mut rows = Vec::new();
    for &v in p.order.iter().filter(|&&v| need[v]) {
        let node = &p.nodes[v];
        let names = input_names(p, v);
        let last = store.last_run(&p.name, &node.name);
        let row = match cached_key_parts(p, store, v, &hashes, &keys, obs)? {
            Some(parts) => {
                let key = parts.key();
                match store.lookup(&key) {
                    Lookup::Hit(m) => {
                        hashes[v] = Some(m.content_hash.clone());
                        keys[v] = Some(key.clone());
                        PlanRow {
                            name: node.name.clone(),
                            op: node.op.name().into(),
                            key: Some(key),
                            status: PlanStatus::Cached,
                            rows: Some(m.rows),
                            why: vec![],
                        }
                    }
                    other => {
                        let why = match (other, &last) {
                            (Lookup::Corrupt(reason), _) => {
                                vec![format!("the cached entry is corrupt ({reason})")]
                            }
                            (_, None) => vec!["never run in this pipeline".to_owned()],
                            (_, Some(r)) if r.key == key => {
                                vec!["its entry is no longer in the cache (removed by gc?)"
                                    .to_owned()]
                            }
                            (_, Some(r)) => {
                                let w = explain(&r.parts, &r.input_nodes, &parts, &names);
                                if w.is_empty() {
                                    vec!["key changed".to_owned()]
                                } else {
                                    w
                                }
                            }
                        };
                        PlanRow {
                            name: node.name.clone(),
                            op: node.op.name().into(),
                            key: Some(key),
                            status: PlanStatus::Run,
                            rows: None,
                            why,
                        }
                    }
                }
            }
            None => {
                let upstream: Vec<&str> = node
                    .inputs
                    .iter()
                    .filter(|&&u| hashes[u].is_none())
                    .map(|&u| p.nodes[u].name.as_str())
                    .collect();
                let mut why: Vec<String> = upstream.iter().map(|u| format!("input `{u}` will run; this node is reused if `{u}` comes out unchanged")).collect();
                if let Some(r) = &last {
                    // Own changes, ignoring the inputs that are not known yet.
                    let mut now = r.parts.clone();
                    now.op = node.op.name().into();
                    now.op_version = node.op.version();
                    now.id = p.id.clone();
                    now.params = node.op.key_params();
                    why.extend(
                        explain(&r.parts, &r.input_nodes, &now, &names)
                            .into_iter()
                            .filter(|w| !w.starts_with("input `")),
                    );
                }
                PlanRow {
                    name: node.name.clone(),
                    op: node.op.name().into(),
                    key: None,
                    status: PlanStatus::Pending,
                    rows: None,
                    why,
                }
            }
        };
        rows.push(row);
    }
    Ok(rows)
}
