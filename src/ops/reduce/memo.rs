//! The fuzzy graphs and spectral solves last built in this run, for the next UMAP on the
//! same kNN table (a pipeline's 2-D display beside its 5-D search, a sweep's `n_components`
//! axis), and the layouts a node computed beside its own for nodes joined to it (see
//! `joint_key`), until they run. All are pure functions of what keys them, so a hit
//! changes only the time (at 632k rows: 5.5 s for the graph, 17 s for the solve). The last
//! [`KEEP`] graphs are kept (about 12 bytes an edge each), each with its last [`KEEP`]
//! solves, until pushed out or the end of the run. A layout that needs a graph or solve
//! another node is building meanwhile (a sweep runs two nodes at a time) waits for it
//! instead of building its own. One [`Memo`] lives in each run's scratch store
//! ([`crate::ops::RunCtx::scratch`]).

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use crate::numeric::as_bytes;
use crate::numeric::umap::{
    spectral::{Solve, SpectralReport},
    Graph,
};

/// Graphs kept: as many as a sweep's nodes running at once (`--parallel`, 2) need; and
/// solves kept per graph.
const KEEP: usize = 2;

/// Layouts kept waiting for their nodes.
const KEEP_LAYOUTS: usize = 2 * crate::numeric::umap::sgd::MAX_JOINT;

struct Entry {
    key: [u8; 32],
    graph: OnceLock<Arc<Graph>>,
    /// The graph's last solves (a sweep's 10-D layout needs another than its 2-D and
    /// 5-D ones, which share one), most recent last. Held while a solve runs, so a
    /// second layout on the graph waits for it.
    solves: Mutex<Vec<Arc<Solve>>>,
}

/// One run's graphs, solves and handed-over layouts.
#[derive(Default)]
pub struct Memo {
    /// Most recently used last.
    kept: Mutex<Vec<Arc<Entry>>>,
    /// Layouts waiting for their nodes; a few at most (a sweep's layouts of one graph).
    layouts: Mutex<Vec<([u8; 32], Layout)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What decides the graph: the kNN table's neighbours, distances and locality order,
/// `local_connectivity` and the epochs (the weak-edge cut).
pub fn graph_key(
    nbr: &[u32],
    dist: &[f32],
    rank: &[u32],
    local_connectivity: f64,
    n_epochs: usize,
) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(b"dagrun umap graph v1");
    for part in [as_bytes(nbr), as_bytes(dist), as_bytes(rank)] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update_rayon(part);
    }
    h.update(&local_connectivity.to_le_bytes());
    h.update(&(n_epochs as u64).to_le_bytes());
    *h.finalize().as_bytes()
}

/// What decides a layout beyond its graph: the node's parameters and the epochs.
pub fn layout_key(graph: [u8; 32], r: &super::Reduce, n_epochs: usize) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(b"dagrun umap layout v1");
    h.update(&graph);
    h.update(
        serde_json::to_string(r)
            .expect("parameters serialise")
            .as_bytes(),
    );
    h.update(&(n_epochs as u64).to_le_bytes());
    *h.finalize().as_bytes()
}

/// How a layout started.
pub struct Init {
    pub spectral: Option<SpectralReport>,
    /// Whether the spectral solve was kept from an earlier node.
    pub shared: bool,
    pub secs: f64,
}

/// A layout a node computed beside its own for a node that runs after it (in the
/// graph's row order), with how it was made.
pub struct Layout {
    pub emb: Vec<f32>,
    pub init: Init,
    /// Edges of its graph.
    pub edges: usize,
    pub sgd_secs: f64,
    /// The node that computed it.
    pub by: String,
    /// The node whose layout this is a copy of, where their numbers are the same
    /// ([`super::Reduce::same_layout`]): laid out once.
    pub copy_of: Option<String>,
}

impl Memo {
    /// The entry for `key`, made most recent; a new one (pushing out the least recent
    /// beyond [`KEEP`]) if there is none.
    fn entry(&self, key: [u8; 32]) -> Arc<Entry> {
        let mut kept = lock(&self.kept);
        let e = match kept.iter().position(|e| e.key == key) {
            Some(at) => kept.remove(at),
            None => Arc::new(Entry {
                key,
                graph: OnceLock::new(),
                solves: Mutex::new(Vec::new()),
            }),
        };
        kept.push(e.clone());
        if kept.len() > KEEP {
            kept.remove(0);
        }
        e
    }

    /// The graph under `key`: the one kept or being built by another node (and `true`),
    /// or `build`'s, then kept.
    pub fn graph(&self, key: [u8; 32], build: impl FnOnce() -> Graph) -> (Arc<Graph>, bool) {
        let e = self.entry(key);
        let mut built = false;
        let g = e
            .graph
            .get_or_init(|| {
                built = true;
                Arc::new(build())
            })
            .clone();
        (g, !built)
    }

    /// Leave a layout for the node it belongs to.
    pub fn put_layout(&self, key: [u8; 32], l: Layout) {
        let mut kept = lock(&self.layouts);
        kept.retain(|(k, _)| *k != key);
        kept.push((key, l));
        if kept.len() > KEEP_LAYOUTS {
            kept.remove(0);
        }
    }

    /// The layout left under `key`, taken.
    pub fn take_layout(&self, key: [u8; 32]) -> Option<Layout> {
        let mut kept = lock(&self.layouts);
        let at = kept.iter().position(|(k, _)| *k == key)?;
        Some(kept.remove(at).1)
    }

    /// The spectral solve of the graph under `key` for a `dim`-D layout with `seed`: the
    /// one kept (and `true`), or `solve`'s, then kept beside its graph.
    pub fn solve(
        &self,
        key: [u8; 32],
        dim: usize,
        seed: u64,
        solve: impl FnOnce() -> Solve,
    ) -> (Arc<Solve>, bool) {
        let e = self.entry(key);
        let mut kept = lock(&e.solves);
        if let Some(s) = kept.iter().find(|s| s.serves(dim, seed)) {
            return (s.clone(), true);
        }
        let s = Arc::new(solve());
        kept.push(s.clone());
        if kept.len() > KEEP {
            kept.remove(0);
        }
        (s, false)
    }
}
