//! A UMAP node's run, phase by phase: its kNN table read back; its layout either handed
//! over by a node joined to it that ran first, or laid out here (the fuzzy graph, kept in
//! the run's memo or built; each layout's init, spectral or random; one SGD for this
//! layout and those joined to it, or densMAP's alone; the joined layouts left in the memo);
//! the local radii; the output table, summary and details.

use std::sync::Arc;
use std::time::Instant;

use polars::prelude::*;

use super::memo::{self, Memo};
use super::{Init, Reduce, Umap, MAX_JOINT_WIDTH, RADII};
use crate::error::{Error, Result};
use crate::numeric::umap::{self, densmap};
use crate::ops::{columns, Kind as _, Op, Output, RunCtx};

/// A kNN table read back row-major: each row's neighbours and their distances.
struct Neighbours {
    nbr: Vec<u32>,
    dist: Vec<f32>,
}

/// One UMAP node's run: what its parameters and kNN table fix, which every phase reads.
struct UmapRun<'a> {
    op: &'a Reduce,
    u: &'a Umap,
    ctx: &'a RunCtx<'a>,
    /// The run's graphs, spectral solves and handed-over layouts.
    memo: Arc<Memo>,
    /// Neighbours per row (the row itself not counted).
    k: usize,
    /// Columns of the layout.
    dim: usize,
    n_epochs: usize,
    /// Each input row's rank in the kNN node's locality order, the layout's row order.
    rank: Vec<u32>,
    /// What decides the graph ([`memo::graph_key`]).
    key: [u8; 32],
    sgd: umap::Sgd,
    /// When the graph phase began.
    t0: Instant,
}

/// A node's layout, laid out here or handed over by the node it was joined to, and how.
struct Laid {
    /// In the graph's row order.
    emb: Vec<f32>,
    init: memo::Init,
    t_graph: f64,
    t_sgd: f64,
    /// The other nodes in its SGD: those joined to this one, or the one that ran it.
    sgd_with: Vec<String>,
    /// Whether the graph was built for an earlier node.
    graph_shared: bool,
    /// The input's log local radii (graph order), where densMAP computed them.
    radii_in: Option<Vec<f64>>,
}

/// A layout's init: its rows (graph order) and how it started.
type Started = (Vec<f32>, memo::Init);

/// The layouts one SGD optimises: this node's first, then those of nodes joined to it.
struct Joint<'a> {
    lays: Vec<&'a Reduce>,
    /// Each layout's init, in `lays` order; `None` where it failed (left to its own node).
    inits: Vec<Option<Started>>,
    /// The nodes joined to this one, each with its layout in `lays`.
    with: Vec<Beside<'a>>,
}

/// A node joined to this one's SGD.
struct Beside<'a> {
    node: &'a str,
    op: &'a Reduce,
    /// Its layout's index in [`Joint::lays`].
    layout: usize,
}

/// What the radii phase measured.
struct Radii {
    correlation: f64,
    secs: f64,
}

impl Reduce {
    /// The UMAP layout of `input` on its kNN table `knn`.
    pub(super) fn run_umap(
        &self,
        u: &Umap,
        input: &DataFrame,
        knn: &DataFrame,
        ctx: &RunCtx,
    ) -> Result<Output> {
        let (run, table) = UmapRun::start(self, u, input.height(), knn, ctx)?;
        let mut summary = run.summary_head();
        // The neighbour table, kept past the graph only for the radii.
        let mut table = Some(table);
        let mut laid = match run
            .memo
            .take_layout(memo::layout_key(run.key, self, run.n_epochs))
        {
            Some(l) => run.handed_over(l, &mut summary),
            None => run.lay_out(&mut table, input, &mut summary)?,
        };
        let rows = umap::unpermute_rows(&laid.emb, run.dim, &run.rank);
        let mut df = self.output(input, &rows, ctx)?;
        let radii = if u.radii {
            let radii_in = laid.radii_in.take();
            Some(run.radii(&mut df, &laid.emb, radii_in, table, &mut summary)?)
        } else {
            None
        };
        Ok(run.finish(df, summary, laid, radii))
    }

    /// The layout of UMAP node `node` (this op) before the SGD, in the graph's row order:
    /// spectral or random. `run` is the run that lays it out: its graph key, locality order
    /// and memo.
    fn init_layout(
        &self,
        run: &UmapRun,
        g: &umap::Graph,
        input: &DataFrame,
        node: &str,
    ) -> Result<Started> {
        let t = Instant::now();
        let u = self.umap.as_ref().expect("a UMAP node");
        let dim = self.n_components as usize;
        if u.init == Init::Random {
            let mut r = crate::numeric::rng::Rng::new(
                u.seed,
                crate::numeric::rng::stream::UMAP_RANDOM_INIT,
            );
            let emb = (0..g.n * dim).map(|_| r.range(0.0, 10.0) as f32).collect();
            return Ok((
                emb,
                memo::Init {
                    spectral: None,
                    shared: false,
                    secs: t.elapsed().as_secs_f64(),
                },
            ));
        }
        // Components of a disconnected graph are placed by their centroids in the input
        // columns (graph rows are in locality order: row `rank[i]` is input row `i`).
        let mut failed = None;
        let meta = |label: &[u32], count: usize| -> Vec<f64> {
            let cols =
                columns::resolve(input.schema(), &self.columns).map_err(|m| Error::input(node, m));
            match cols.and_then(|cols| Ok((columns::matrix_f32(input, &cols, node)?, cols.len()))) {
                Ok((x, d)) => umap::spectral::centroid_layout(&x, d, &run.rank, label, count, dim),
                Err(e) => {
                    failed = Some(e);
                    Vec::new()
                }
            }
        };
        let (solved, shared) = run.memo.solve(run.key, dim, u.seed, || {
            umap::spectral::solve(g, dim, u.seed)
        });
        let (emb, report) = umap::spectral::spectral_layout(g, &solved, dim, meta);
        if let Some(e) = failed {
            return Err(e);
        }
        Ok((
            emb,
            memo::Init {
                spectral: Some(report),
                shared,
                secs: t.elapsed().as_secs_f64(),
            },
        ))
    }
}

impl<'a> UmapRun<'a> {
    /// Read node `op`'s kNN table (checked against the input's `n` rows), fix the epochs
    /// and the SGD's parameters, and key the graph.
    fn start(
        op: &'a Reduce,
        u: &'a Umap,
        n: usize,
        knn: &DataFrame,
        ctx: &'a RunCtx<'a>,
    ) -> Result<(Self, Neighbours)> {
        if knn.height() != n {
            return Err(Error::input(
                ctx.node,
                format!(
                    "the neighbour table has {} rows for {n} input rows",
                    knn.height()
                ),
            ));
        }
        let t_read = Instant::now();
        let (nbr, dist, k) = crate::ops::knn::from_table(knn, ctx.node)?;
        // The layout works on the rows in the kNN node's locality order: the neighbours'
        // rows it gathers at random then mostly sit close by in memory.
        let rank = crate::ops::knn::locality_from_table(knn, ctx.node)?;
        // umap-learn's default by size, and 200 more for densMAP.
        let n_epochs = u.n_epochs.unwrap_or(
            if n > 10_000 { 200 } else { 500 } + if u.densmap.is_some() { 200 } else { 0 },
        ) as usize;
        tracing::debug!(
            secs = t_read.elapsed().as_secs_f64(),
            "umap: neighbour table read"
        );
        let t0 = Instant::now();
        let key = memo::graph_key(&nbr, &dist, &rank, u.local_connectivity, n_epochs);
        let (a, b) = umap::find_ab(u.spread, u.min_dist);
        let sgd = umap::Sgd {
            a,
            b,
            n_epochs,
            learning_rate: u.learning_rate,
            negative_sample_rate: u.negative_sample_rate as f64,
            seed: u.seed,
        };
        let run = UmapRun {
            op,
            u,
            ctx,
            memo: ctx.scratch.get_or_default::<Memo>(),
            k,
            dim: op.n_components as usize,
            n_epochs,
            rank,
            key,
            sgd,
            t0,
        };
        Ok((run, Neighbours { nbr, dist }))
    }

    /// The summary's first lines: the layout's parameters.
    fn summary_head(&self) -> Vec<String> {
        let (u, dim, n_epochs) = (self.u, self.dim, self.n_epochs);
        let (a, b) = (self.sgd.a, self.sgd.b);
        let mut summary =
            vec![format!("UMAP {} -> {dim} columns, n_neighbors {}, min_dist {}, {n_epochs} epochs, a={a:.4} b={b:.4}", self.op.columns.join(","), u.n_neighbors, u.min_dist)];
        if let Some(d) = &u.densmap {
            summary.push(format!(
                "densMAP: dens_lambda {}, dens_frac {}, dens_var_shift {}",
                d.lambda, d.frac, d.var_shift
            ));
        }
        summary
    }

    /// The fuzzy graph of the neighbour table `nbr`, `dist`, both in locality order.
    fn build_graph(&self, nbr: &[u32], dist: &[f32]) -> umap::Graph {
        let lap = |what: &str, t: &mut Instant| {
            tracing::debug!(secs = t.elapsed().as_secs_f64(), "umap graph: {what}");
            *t = Instant::now();
        };
        let (k, rank) = (self.k, &self.rank);
        let mut t = Instant::now();
        // umap-learn's rows start with the point itself at distance 0.
        let (idx, d, kk) = umap::with_self(nbr, dist, k);
        lap("rows with self", &mut t);
        let mut g = umap::fuzzy_simplicial_set(&idx, &d, kk, self.u.local_connectivity);
        lap("fuzzy union", &mut t);
        g.drop_weak(self.n_epochs);
        lap("weak edges", &mut t);
        g.order_tails_by(&umap::scrambled_keys(rank));
        lap("edge order", &mut t);
        g
    }

    /// The layout a node that ran before this one computed beside its own, as it left it.
    fn handed_over(&self, l: memo::Layout, summary: &mut Vec<String>) -> Laid {
        let t_graph = self.t0.elapsed().as_secs_f64();
        summary.push(format!(
            "graph ({} edges), init {:.2}s, SGD {:.2}s in `{}`'s run",
            l.edges, l.init.secs, l.sgd_secs, l.by
        ));
        let same = if l.init.shared {
            "graph, sampling and spectral eigenvectors"
        } else {
            "graph and sampling"
        };
        summary.push(format!(
            "laid out beside `{}` in one SGD (the same {same}): the bits it gets alone",
            l.by
        ));
        if let Some(of) = &l.copy_of {
            summary.push(format!("the layout of `{of}`, copied: the same numbers, laid out once (only the column names differ)"));
        }
        Laid {
            emb: l.emb,
            init: l.init,
            t_graph,
            t_sgd: l.sgd_secs,
            sgd_with: vec![l.by],
            graph_shared: true,
            radii_in: None,
        }
    }

    /// Lay this node out, and the nodes joined to it, whose layouts it leaves in the memo:
    /// the graph (and densMAP's density term), the inits, one SGD. The neighbour table is
    /// dropped after the graph unless the radii need it.
    fn lay_out(
        &self,
        table: &mut Option<Neighbours>,
        input: &DataFrame,
        summary: &mut Vec<String>,
    ) -> Result<Laid> {
        let t = table.as_ref().expect("the neighbour table");
        // The table in locality order, made once for the graph and densMAP's input radii
        // (each where it needs it: a graph kept in the memo needs none), dropped before the
        // inits and the SGD.
        let permuted = std::cell::OnceCell::new();
        let locality = || {
            let (nbr, dist) =
                permuted.get_or_init(|| umap::permute_knn(&t.nbr, &t.dist, self.k, &self.rank));
            (nbr.as_slice(), dist.as_slice())
        };
        let (g, graph_shared) = self.memo.graph(self.key, || {
            let (nbr, dist) = locality();
            self.build_graph(nbr, dist)
        });
        let mut radii_in: Option<Vec<f64>> = None;
        let dens = self.u.densmap.as_ref().map(|d| {
            let (nbr, dist) = locality();
            // The input's log local radii (graph order), for densMAP and the summary.
            let r = densmap::input_log_radii(&g, nbr, dist, self.k);
            let dens = densmap::Density::new(&g, &r, d.lambda, d.frac, d.var_shift);
            radii_in = Some(r);
            dens
        });
        drop(permuted);
        if !self.u.radii {
            *table = None;
        }
        let t_graph = self.t0.elapsed().as_secs_f64();
        let mut joint = self.joined();
        self.init_all(&g, input, &mut joint)?;
        let t_sgd = self.optimize(&g, dens.as_ref(), &mut joint);
        summary.push(format!(
            "graph {t_graph:.2}s ({} edges), init {:.2}s, SGD {t_sgd:.2}s",
            g.head.len(),
            joint.inits[0].as_ref().expect("this node's layout").1.secs
        ));
        self.hand_over(&joint, g.head.len(), t_sgd, summary);
        let (emb, init) = joint.inits.swap_remove(0).expect("this node's layout");
        if graph_shared || init.shared {
            let what = if init.shared {
                "graph and spectral eigenvectors"
            } else {
                "graph"
            };
            summary.push(format!("{what} as built for an earlier node in this run (the same kNN table and parameters)"));
        }
        Ok(Laid {
            emb,
            init,
            t_graph,
            t_sgd,
            sgd_with: joint.with.iter().map(|w| w.node.to_string()).collect(),
            graph_shared,
            radii_in,
        })
    }

    /// The nodes joined to this one (see `Kind::joint_key`) whose layouts go through the
    /// same SGD, each with its own init, as many as fit. A joined node whose layout is one
    /// already in it (the same width and init: everything else that decides the numbers is
    /// in the joint key; `prefix` only names the columns) gets a copy. No inits yet.
    fn joined(&self) -> Joint<'a> {
        let mine = self.op.joint_key();
        let mut lays: Vec<&Reduce> = vec![self.op];
        let mut with: Vec<Beside> = Vec::new();
        let mut width = self.dim;
        // A densMAP layout has no joint key: it runs alone.
        for &(name, op) in self.ctx.joint.iter().filter(|_| mine.is_some()) {
            if let Op::Reduce(r) = op {
                if r.joint_key() != mine {
                    continue;
                }
                let w = r.n_components as usize;
                let node = name;
                if let Some(i) = lays.iter().position(|l| l.same_layout(r)) {
                    with.push(Beside {
                        node,
                        op: r,
                        layout: i,
                    });
                } else if lays.len() < umap::sgd::MAX_JOINT && width + w <= MAX_JOINT_WIDTH {
                    with.push(Beside {
                        node,
                        op: r,
                        layout: lays.len(),
                    });
                    lays.push(r);
                    width += w;
                }
            }
        }
        Joint {
            lays,
            inits: Vec::new(),
            with,
        }
    }

    /// Every layout's init on graph `g`, this node's first (its failure is this node's
    /// error). A joined layout whose init fails is left to its own nodes, which report it.
    fn init_all(&self, g: &umap::Graph, input: &DataFrame, joint: &mut Joint) -> Result<()> {
        let node = self.ctx.node;
        let mut inits = vec![Some(self.op.init_layout(self, g, input, node)?)];
        for (i, r) in joint.lays.iter().enumerate().skip(1) {
            let name = joint
                .with
                .iter()
                .find(|w| w.layout == i)
                .map_or(node, |w| w.node);
            inits.push(r.init_layout(self, g, input, name).ok());
        }
        joint.with.retain(|w| inits[w.layout].is_some());
        joint.inits = inits;
        Ok(())
    }

    /// One SGD over the layouts that started (densMAP's alone, with its density term `dens`);
    /// its seconds.
    fn optimize(&self, g: &umap::Graph, dens: Option<&densmap::Density>, joint: &mut Joint) -> f64 {
        let dims: Vec<usize> = joint
            .lays
            .iter()
            .zip(&joint.inits)
            .filter(|(_, i)| i.is_some())
            .map(|(r, _)| r.n_components as usize)
            .collect();
        let ctx = self.ctx;
        let bar = ctx
            .progress
            .bar(ctx.node, "umap epochs", self.n_epochs as u64);
        let t = Instant::now();
        let mut embs: Vec<&mut [f32]> = joint
            .inits
            .iter_mut()
            .flatten()
            .map(|(e, _)| &mut e[..])
            .collect();
        match dens {
            Some(d) => umap::optimize_dens(embs[0], dims[0], g, &self.sgd, d, |_| bar.inc(1)),
            None => umap::optimize_joint(&mut embs, &dims, g, &self.sgd, |_| bar.inc(1)),
        }
        bar.finish();
        t.elapsed().as_secs_f64()
    }

    /// Leave each joined node's layout in the memo (on a graph of `edges` edges, after an
    /// SGD of `t_sgd` seconds), and name them in the summary.
    fn hand_over(&self, joint: &Joint, edges: usize, t_sgd: f64, summary: &mut Vec<String>) {
        let (node, with) = (self.ctx.node, &joint.with);
        // The node whose layout the joined node `with[at]` copies: the first with it.
        let copy_of = |at: usize| -> Option<&str> {
            let i = with[at].layout;
            if i == 0 {
                Some(node)
            } else {
                with[..at].iter().find(|w| w.layout == i).map(|w| w.node)
            }
        };
        for (at, w) in with.iter().enumerate() {
            let (emb, init) = joint.inits[w.layout]
                .as_ref()
                .expect("an initialised layout");
            let copy_of = copy_of(at).map(str::to_owned);
            // A copy shares its original's eigenvectors, whoever solved for them.
            let shared = init.shared || (copy_of.is_some() && init.spectral.is_some());
            let init = memo::Init {
                spectral: init.spectral.clone(),
                shared,
                secs: init.secs,
            };
            self.memo.put_layout(
                memo::layout_key(self.key, w.op, self.n_epochs),
                memo::Layout {
                    emb: emb.clone(),
                    init,
                    edges,
                    sgd_secs: t_sgd,
                    by: node.to_owned(),
                    copy_of,
                },
            );
        }
        if !with.is_empty() {
            let names: Vec<String> = with
                .iter()
                .enumerate()
                .map(|(at, w)| match copy_of(at) {
                    Some(of) => format!(
                        "`{}`'s ({} columns, a copy of `{of}`'s)",
                        w.node, w.op.n_components
                    ),
                    None => format!("`{}`'s ({} columns)", w.node, w.op.n_components),
                })
                .collect();
            summary.push(format!("one SGD for this layout and {}: the same graph and sampling, each layout the bits it gets alone", names.join(", ")));
        }
    }

    /// umap-learn's `output_dens`: the input's log local radii (`radii_in` where densMAP
    /// computed them) and those of the layout `emb` as columns of `df`, and how well the
    /// layout's follow the input's.
    fn radii(
        &self,
        df: &mut DataFrame,
        emb: &[f32],
        radii_in: Option<Vec<f64>>,
        table: Option<Neighbours>,
        summary: &mut Vec<String>,
    ) -> Result<Radii> {
        let t = Instant::now();
        let radii_in = match (radii_in, table) {
            (Some(r), _) => r,
            (None, Some(Neighbours { nbr, dist })) => {
                let (nbr, dist) = umap::permute_knn(&nbr, &dist, self.k, &self.rank);
                let g = self
                    .memo
                    .graph(self.key, || self.build_graph(&nbr, &dist))
                    .0;
                densmap::input_log_radii(&g, &nbr, &dist, self.k)
            }
            (None, None) => {
                unreachable!("the neighbour table is kept where radii are asked for")
            }
        };
        let radii_out = densmap::layout_log_radii(emb, self.dim, self.u.n_neighbors as usize);
        let r = densmap::pearson(&radii_in, &radii_out);
        for (name, r) in RADII.iter().zip([&radii_in, &radii_out]) {
            let r: Vec<f32> = r.iter().map(|&v| v as f32).collect();
            df.with_column(Column::new(
                (*name).into(),
                umap::unpermute_rows(&r, 1, &self.rank),
            ))
            .map_err(crate::ops::pl(self.ctx.node))?;
        }
        let secs = t.elapsed().as_secs_f64();
        summary.push(format!("local radii (log, umap-learn's output_dens): correlation {r:.3} between the input's and the layout's ({secs:.2}s)"));
        Ok(Radii {
            correlation: r,
            secs,
        })
    }

    /// The output: the table, the summary with the spectral solve's line, and the
    /// manifest's details.
    fn finish(
        &self,
        df: DataFrame,
        mut summary: Vec<String>,
        laid: Laid,
        radii: Option<Radii>,
    ) -> Output {
        let (correlation, t_radii) = (
            radii.as_ref().map(|r| r.correlation),
            radii.as_ref().map(|r| r.secs),
        );
        let Laid {
            init,
            t_graph,
            t_sgd,
            sgd_with,
            graph_shared,
            ..
        } = laid;
        if let Some(r) = &init.spectral {
            summary.push(format!(
                "spectral init: {} component(s), {} products, residual {:.1e}{}",
                r.components,
                r.matvecs,
                r.residual,
                if r.converged {
                    ""
                } else {
                    " (not converged: the layout starts from the best vectors found)"
                }
            ));
        }
        let (a, b, n_epochs, u) = (self.sgd.a, self.sgd.b, self.n_epochs, self.u);
        let mut out = Output::new(df, summary);
        out.details = serde_json::json!({ "seconds": { "graph": t_graph, "init": init.secs, "sgd": t_sgd, "radii": t_radii }, "shared": { "graph": graph_shared, "eigenvectors": init.shared, "sgd": sgd_with }, "a": a, "b": b, "n_epochs": n_epochs,
            "radius_correlation": correlation, "densmap": u.densmap.is_some(),
            "spectral": init.spectral.map(|r| serde_json::json!({ "components": r.components, "products": r.matvecs, "residual": r.residual, "converged": r.converged, "eigenvalues": r.eigenvalues })) });
        out
    }
}
