//! Running a validated pipeline against the cache.
//!
//! For each needed node in topological order: derive its key from its op, parameters and
//! the content hashes of its inputs; on a verified hit reuse the entry; otherwise take the
//! key's compute lock, check again (another process may have just finished it), compute,
//! and publish atomically. Inputs are handed to ops from memory when this run computed
//! them and read from the cache otherwise; a frame is dropped as soon as its last consumer
//! has run. Nodes run one after another; each op parallelises inside (rayon, polars).
//!
//! The executor never prints: it reports through an [`Observer`].

use std::sync::Arc;
use std::time::Instant;

use polars::prelude::DataFrame;
use serde::Serialize;

use crate::cache::key::{explain, KeyParts};
use crate::cache::store::{Draft, RunRecord};
use crate::cache::{files, Lookup, Store};
use crate::dag::{self, NodeId};
use crate::error::{Error, Result};
use crate::ops::RunCtx;
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
    Start { node: &'a str, op: &'a str },
    Corrupt { node: &'a str, key: &'a str, reason: &'a str },
    Waiting { node: &'a str },
    Done(&'a NodeReport),
}

/// Receives what the executor does; the CLI prints it, tests record it.
pub trait Observer: ProgressFactory {
    fn event(&self, e: Event);
}

/// The key parts of node `v`, given the content hashes of its inputs.
fn key_parts(p: &Pipeline, store: &Store, v: NodeId, hashes: &[Option<String>]) -> Result<Option<KeyParts>> {
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
        file_hashes.insert(param.to_owned(), files::content_hash(&store.files_dir(), &path)?);
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

fn input_names(p: &Pipeline, v: NodeId) -> Vec<String> {
    p.nodes[v].inputs.iter().map(|&u| p.nodes[u].name.clone()).collect()
}

/// Which nodes a run of `targets` needs (all when empty).
pub fn needed(p: &Pipeline, targets: &[NodeId]) -> Vec<bool> {
    if targets.is_empty() {
        vec![true; p.nodes.len()]
    } else {
        dag::ancestors(&p.inputs(), targets)
    }
}

/// Run the pipeline (or only what `targets` need).
pub fn run(p: &Pipeline, store: &Store, obs: &dyn Observer, targets: &[NodeId]) -> Result<RunReport> {
    let n = p.nodes.len();
    let need = needed(p, targets);
    let mut uses_left = vec![0usize; n];
    for v in (0..n).filter(|&v| need[v]) {
        for &u in &p.nodes[v].inputs {
            uses_left[u] += 1;
        }
    }
    let mut hashes: Vec<Option<String>> = vec![None; n];
    let mut keys: Vec<Option<String>> = vec![None; n];
    let mut frames: Vec<Option<Arc<DataFrame>>> = vec![None; n];
    let mut held = Vec::new();
    let mut report = RunReport { pipeline: p.name.clone(), nodes: Vec::new() };

    for &v in p.order.iter().filter(|&&v| need[v]) {
        let node = &p.nodes[v];
        obs.event(Event::Start { node: &node.name, op: node.op.name() });
        let t0 = Instant::now();
        let parts = key_parts(p, store, v, &hashes)?.expect("inputs run first");
        let key = parts.key();
        tracing::debug!(node = %node.name, %key, "key");
        // Held until the run ends: gc leaves entries this run uses alone.
        held.push(store.use_entry(&key)?);
        let mut computed = None;
        let manifest = match store.lookup(&key) {
            Lookup::Hit(m) => m,
            first => {
                if let Lookup::Corrupt(reason) = &first {
                    obs.event(Event::Corrupt { node: &node.name, key: &key, reason });
                }
                let lock = store.lock_compute(&key, || obs.event(Event::Waiting { node: &node.name }))?;
                match store.lookup(&key) {
                    Lookup::Hit(m) => m,
                    again => {
                        if matches!(again, Lookup::Corrupt(_)) {
                            store.discard(&lock)?;
                        }
                        let mut ins = Vec::with_capacity(node.inputs.len());
                        for &u in &node.inputs {
                            let frame = match &frames[u] {
                                Some(f) => f.clone(),
                                None => {
                                    let f = Arc::new(store.read(keys[u].as_deref().expect("input ran"), &p.nodes[u].name)?);
                                    if uses_left[u] > 1 {
                                        frames[u] = Some(f.clone());
                                    }
                                    f
                                }
                            };
                            ins.push(frame);
                        }
                        let ctx = RunCtx { pipeline: &p.name, node: &node.name, id: &p.id, progress: obs };
                        let out = node.op.run(&ins, &ctx)?;
                        drop(ins);
                        let mut df = out.df;
                        if !df.schema().contains(&p.id) {
                            return Err(Error::input(&node.name, format!("the output lost the id column `{}`", p.id)));
                        }
                        let draft = Draft {
                            key: key.clone(),
                            parts: parts.clone(),
                            node: node.name.clone(),
                            pipeline: p.name.clone(),
                            input_nodes: input_names(p, v),
                            seconds: t0.elapsed().as_secs_f64(),
                            summary: out.summary,
                            details: out.details,
                            files: out.files,
                        };
                        let m = store.publish(&lock, &mut df, draft)?;
                        computed = Some(df);
                        Box::new(m)
                    }
                }
            }
        };
        let status = if computed.is_some() { Status::Computed } else { Status::Cached };
        if let Some(df) = computed {
            if uses_left[v] > 0 {
                frames[v] = Some(Arc::new(df));
            }
        }
        store.save_run(
            &p.name,
            &node.name,
            &RunRecord { key: key.clone(), parts, input_nodes: input_names(p, v), content_hash: manifest.content_hash.clone() },
        )?;
        for &u in &node.inputs {
            uses_left[u] -= 1;
            if uses_left[u] == 0 {
                frames[u] = None;
            }
        }
        hashes[v] = Some(manifest.content_hash.clone());
        keys[v] = Some(key.clone());
        let r = NodeReport {
            name: node.name.clone(),
            op: node.op.name().to_owned(),
            key,
            status,
            seconds: if status == Status::Computed { manifest.seconds } else { t0.elapsed().as_secs_f64() },
            rows: manifest.rows,
            summary: manifest.summary.clone(),
            attachments: manifest.attachments.iter().map(|a| a.path.clone()).collect(),
        };
        obs.event(Event::Done(&r));
        report.nodes.push(r);
    }
    drop(held);
    Ok(report)
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
pub fn plan(p: &Pipeline, store: &Store, targets: &[NodeId]) -> Result<Vec<PlanRow>> {
    let need = needed(p, targets);
    let mut hashes: Vec<Option<String>> = vec![None; p.nodes.len()];
    let mut rows = Vec::new();
    for &v in p.order.iter().filter(|&&v| need[v]) {
        let node = &p.nodes[v];
        let names = input_names(p, v);
        let last = store.last_run(&p.name, &node.name);
        let row = match key_parts(p, store, v, &hashes)? {
            Some(parts) => {
                let key = parts.key();
                match store.lookup(&key) {
                    Lookup::Hit(m) => {
                        hashes[v] = Some(m.content_hash.clone());
                        PlanRow { name: node.name.clone(), op: node.op.name().into(), key: Some(key), status: PlanStatus::Cached, rows: Some(m.rows), why: vec![] }
                    }
                    other => {
                        let why = match (other, &last) {
                            (Lookup::Corrupt(reason), _) => vec![format!("the cached entry is corrupt ({reason})")],
                            (_, None) => vec!["never run in this pipeline".to_owned()],
                            (_, Some(r)) if r.key == key => vec!["its entry is no longer in the cache (removed by gc?)".to_owned()],
                            (_, Some(r)) => {
                                let w = explain(&r.parts, &r.input_nodes, &parts, &names);
                                if w.is_empty() { vec!["key changed".to_owned()] } else { w }
                            }
                        };
                        PlanRow { name: node.name.clone(), op: node.op.name().into(), key: Some(key), status: PlanStatus::Run, rows: None, why }
                    }
                }
            }
            None => {
                let upstream: Vec<&str> = node.inputs.iter().filter(|&&u| hashes[u].is_none()).map(|&u| p.nodes[u].name.as_str()).collect();
                let mut why: Vec<String> = upstream
                    .iter()
                    .map(|u| format!("input `{u}` will run; this node is reused if `{u}` comes out unchanged"))
                    .collect();
                if let Some(r) = &last {
                    // Own changes, ignoring the inputs that are not known yet.
                    let mut now = r.parts.clone();
                    now.op = node.op.name().into();
                    now.op_version = node.op.version();
                    now.id = p.id.clone();
                    now.params = node.op.key_params();
                    why.extend(explain(&r.parts, &r.input_nodes, &now, &names).into_iter().filter(|w| !w.starts_with("input `")));
                }
                PlanRow { name: node.name.clone(), op: node.op.name().into(), key: None, status: PlanStatus::Pending, rows: None, why }
            }
        };
        rows.push(row);
    }
    Ok(rows)
}
