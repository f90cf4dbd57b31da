//! `dagrun sweep`: a pipeline run over a Cartesian grid of parameter values.
//!
//! The grid comes from the pipeline's `[sweep]` table (`"umap.n_neighbors" = [15, 50]`)
//! and from `--grid umap.n_neighbors=15,50` (which replaces an axis of the same name). Every
//! grid point is the pipeline with those parameters set; all points are validated first,
//! then run as one set of nodes by [`exec::run_many`], so a node the points share (same op,
//! parameters and inputs) runs once. An interrupted sweep resumes by running it again:
//! finished nodes are cache hits.
//!
//! After the run, the summary: per point the number of classes of the `classes` node, the
//! clustered fraction, class sizes, seconds and cache hits; per class its *stability*, the
//! mean over the neighbouring grid points (one step along one axis) of its best-match
//! Jaccard there; and, where the catalogue has a truth column (the built-in sample's
//! `planted_class`), how many planted classes each point recovers (best-match Jaccard ≥
//! 0.9). The summary is a folder in the cache (`v1/sweeps/KEY/`: `summary.parquet`,
//! `classes.parquet`, `index.html`), keyed by the points' class tables.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::cache::io::parquet_bytes;
use crate::cache::Store;
use crate::error::{Error, Loc, Result};
use crate::exec::{RunReport, Status};
use crate::ops::Op;
use crate::spec::raw::{self, RawParam, RawPipeline};
use crate::spec::{self, Pipeline};

pub mod summary;

pub use summary::{most_stable, show_stability, show_value, Axis, ClassSummary, PointSummary};

/// Best-match Jaccard at or above which a class counts as the same (recovery, matching).
pub const MATCH: f64 = 0.9;

/// The sweep's settings: its axes and which nodes to summarise.
#[derive(Clone, Debug, Default)]
pub struct Sweep {
    pub axes: Vec<Axis>,
    /// The node whose labels are the classes (a `select-leaves` / `select-eom` node).
    pub classes: Option<String>,
    /// A catalogue column with true classes, if any.
    pub truth: String,
    /// Truth values that are not classes to recover (glob).
    pub background: String,
}

/// Parse `NODE.PARAM=V1,V2,...` (values in TOML syntax, or bare strings).
pub fn parse_grid(arg: &str) -> Result<Axis> {
    let loc = Loc::Grid(arg.to_owned());
    let bad = |m: &str| Error::spec(loc.clone(), None, None, m.to_owned());
    let (target, values) = arg
        .split_once('=')
        .ok_or_else(|| bad("expected NODE.PARAM=V1,V2,..."))?;
    let (node, param) =
        raw::split_target(target).ok_or_else(|| bad("expected NODE.PARAM=V1,V2,..."))?;
    let values: Vec<toml::Value> = values
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(raw::parse_set_value)
        .collect::<std::result::Result<_, _>>()
        .map_err(|m| bad(&m))?;
    if values.is_empty() {
        return Err(bad(
            "no values: give at least one, e.g. umap.n_neighbors=15,50",
        ));
    }
    Ok(Axis {
        node: node.to_owned(),
        param: param.to_owned(),
        values,
        loc,
    })
}

fn sweep_string(p: &RawParam) -> Result<String> {
    match &p.value {
        toml::Value::String(s) if !s.is_empty() => Ok(s.clone()),
        _ => Err(Error::spec(
            p.loc.clone(),
            None,
            Some(&format!("sweep.{}", p.name)),
            "expected a non-empty string",
        )),
    }
}

/// The `[sweep]` table of a pipeline file, then the command line's axes on top.
pub fn settings(raw: &RawPipeline, grid: &[String], classes: Option<&str>) -> Result<Sweep> {
    let mut s = Sweep {
        truth: "planted_class".into(),
        background: "bulk:*".into(),
        ..Sweep::default()
    };
    for p in &raw.sweep {
        match p.name.as_str() {
            "classes" => s.classes = Some(sweep_string(p)?),
            "truth" => s.truth = sweep_string(p)?,
            "background" => s.background = sweep_string(p)?,
            name => {
                let Some((node, param)) = raw::split_target(name) else {
                    return Err(Error::spec(
                        p.key_loc.clone(),
                        None,
                        Some(&format!("sweep.{name}")),
                        "unknown key in [sweep]: use \"NODE.PARAM\" = [values...] for an axis, or classes, truth, background",
                    ));
                };
                let values = match &p.value {
                    toml::Value::Array(a) if !a.is_empty() => a.clone(),
                    _ => {
                        return Err(Error::spec(
                            p.loc.clone(),
                            None,
                            Some(&format!("sweep.{name}")),
                            "expected a non-empty array of values",
                        ))
                    }
                };
                s.axes.push(Axis {
                    node: node.into(),
                    param: param.into(),
                    values,
                    loc: p.loc.clone(),
                });
            }
        }
    }
    for g in grid {
        let a = parse_grid(g)?;
        match s.axes.iter_mut().find(|b| b.name() == a.name()) {
            Some(b) => *b = a,
            None => s.axes.push(a),
        }
    }
    if let Some(c) = classes {
        s.classes = Some(c.to_owned());
    }
    if s.axes.is_empty() {
        return Err(Error::Usage(format!(
            "no grid to sweep: give `--grid NODE.PARAM=V1,V2,...` or add a [sweep] table to `{}`",
            raw.file.display()
        )));
    }
    // A repeated value makes two identical points, each the other's perfect match: the
    // stability between them would be a lie.
    for a in &s.axes {
        for (i, v) in a.values.iter().enumerate() {
            if a.values[..i].iter().any(|w| same_value(v, w)) {
                return Err(Error::spec(
                    a.loc.clone(),
                    None,
                    Some(&a.name()),
                    format!(
                        "the value {} is given twice: each grid value must differ",
                        show_value(v)
                    ),
                ));
            }
        }
    }
    Ok(s)
}

/// Two grid values that set a parameter alike (`50` and `50.0` too).
fn same_value(a: &toml::Value, b: &toml::Value) -> bool {
    match (a, b) {
        (toml::Value::Integer(x), toml::Value::Float(y))
        | (toml::Value::Float(y), toml::Value::Integer(x)) => (*x as f64) == *y,
        _ => a == b,
    }
}

/// Every combination of axis values, the last axis varying fastest: `points[i][a]` is the
/// index into axis `a`'s values.
pub fn expand(axes: &[Axis]) -> Vec<Vec<usize>> {
    let mut points = vec![Vec::new()];
    for a in axes {
        points = points
            .into_iter()
            .flat_map(|p| (0..a.values.len()).map(move |i| [p.clone(), vec![i]].concat()))
            .collect();
    }
    points
}

/// For each point, the points one step away along one axis.
pub fn neighbours(points: &[Vec<usize>]) -> Vec<Vec<usize>> {
    points
        .iter()
        .map(|p| {
            (0..points.len())
                .filter(|&j| {
                    let q = &points[j];
                    let diff: Vec<usize> = (0..p.len()).filter(|&a| p[a] != q[a]).collect();
                    diff.len() == 1 && p[diff[0]].abs_diff(q[diff[0]]) == 1
                })
                .collect()
        })
        .collect()
}

/// The pipeline at each grid point, all validated before anything runs.
/// `max_points` bounds the grid: a larger one is refused before any point is made.
pub fn load_points(
    path: &Path,
    sets: &[String],
    slurm: &[String],
    grid: &[String],
    classes: Option<&str>,
    max_points: usize,
) -> Result<(Sweep, Vec<Vec<usize>>, Vec<Pipeline>)> {
    let raw = spec::load_raw(path, sets, slurm)?;
    let sweep = settings(&raw, grid, classes)?;
    let count = sweep
        .axes
        .iter()
        .fold(1u128, |n, a| n.saturating_mul(a.values.len() as u128));
    if count > max_points as u128 {
        let shape = sweep
            .axes
            .iter()
            .map(|a| a.values.len().to_string())
            .collect::<Vec<_>>()
            .join(" x ");
        return Err(Error::Usage(format!("the grid has {count} points ({shape}), over the limit of {max_points}: narrow an axis, or allow it with `--max-points {count}`")));
    }
    let points = expand(&sweep.axes);
    let mut pipelines = Vec::with_capacity(points.len());
    for p in &points {
        let mut r = raw.clone();
        for (a, &i) in sweep.axes.iter().zip(p) {
            raw::set_param(
                &mut r,
                &a.node,
                &a.param,
                a.values[i].clone(),
                a.loc.clone(),
            )?;
        }
        pipelines.push(spec::validate::validate(r)?);
    }
    Ok((sweep, points, pipelines))
}

/// The node whose labels are the classes: `[sweep] classes`, else the first input of the
/// pipeline's report node, else its last `select-*` node.
pub fn classes_node(sweep: &Sweep, p: &Pipeline) -> Result<usize> {
    if let Some(c) = &sweep.classes {
        let v = p.find(c).ok_or_else(|| {
            Error::Usage(format!(
                "no node named `{c}` in `{}` (nodes: {})",
                p.file.display(),
                p.names()
            ))
        })?;
        // Checked before the sweep runs, not after.
        if !p.nodes[v].schema.contains("label") {
            return Err(Error::Usage(format!("`--classes {c}`: node `{c}` ({} op) has no `label` column; name a select-leaves or select-eom node", p.nodes[v].op.name())));
        }
        return Ok(v);
    }
    let report = p
        .order
        .iter()
        .rev()
        .find(|&&v| matches!(p.nodes[v].op, Op::Report(_)));
    if let Some(&r) = report {
        return Ok(p.nodes[r].inputs[0]);
    }
    p.order
        .iter()
        .rev()
        .copied()
        .find(|&v| matches!(p.nodes[v].op, Op::Select(_)))
        .ok_or_else(|| Error::Usage(format!("`{}` has no select-leaves or select-eom node to summarise; name one with --classes", p.file.display())))
}

/// For each class of `a` (labels ≥ 0), the best Jaccard index with any class of `b`;
/// `a` and `b` label the same rows, −1 is noise.
pub fn best_match(a: &[i32], b: &[i32]) -> Vec<f64> {
    assert_eq!(a.len(), b.len(), "labels of the same rows");
    let ka = a
        .iter()
        .copied()
        .max()
        .map_or(0, |m| (m + 1).max(0) as usize);
    let kb = b
        .iter()
        .copied()
        .max()
        .map_or(0, |m| (m + 1).max(0) as usize);
    let (mut size_a, mut size_b) = (vec![0u64; ka], vec![0u64; kb]);
    let mut both: HashMap<(i32, i32), u64> = HashMap::new();
    for (&x, &y) in a.iter().zip(b) {
        if x >= 0 {
            size_a[x as usize] += 1;
        }
        if y >= 0 {
            size_b[y as usize] += 1;
        }
        if x >= 0 && y >= 0 {
            *both.entry((x, y)).or_default() += 1;
        }
    }
    let mut best = vec![0.0f64; ka];
    for (&(x, y), &n) in &both {
        let j = n as f64 / (size_a[x as usize] + size_b[y as usize] - n) as f64;
        if j > best[x as usize] {
            best[x as usize] = j;
        }
    }
    best
}

/// The class of `b` with the best Jaccard index with class `c` of `a`, and that index
/// (`(-1, 0)` when no class of `b` shares a row with it).
pub fn best_match_of(a: &[i32], c: i32, b: &[i32]) -> (i32, f64) {
    assert_eq!(a.len(), b.len(), "labels of the same rows");
    let kb = b
        .iter()
        .copied()
        .max()
        .map_or(0, |m| (m + 1).max(0) as usize);
    let (mut size_a, mut size_b, mut both) = (0u64, vec![0u64; kb], vec![0u64; kb]);
    for (&x, &y) in a.iter().zip(b) {
        size_a += u64::from(x == c);
        if y >= 0 {
            size_b[y as usize] += 1;
            both[y as usize] += u64::from(x == c);
        }
    }
    let mut best = (-1, 0.0);
    for y in 0..kb {
        if both[y] > 0 {
            let j = both[y] as f64 / (size_a + size_b[y] - both[y]) as f64;
            if j > best.1 {
                best = (y as i32, j);
            }
        }
    }
    best
}

pub struct Summary {
    pub points: Vec<PointSummary>,
    pub classes: Vec<ClassSummary>,
    pub dir: PathBuf,
}

/// The radius correlation (`radii = true`) of the layout that classes node `cv` of `p`
/// clusters (select -> cluster -> layout), from its manifest.
fn layout_radius_correlation(store: &Store, p: &Pipeline, r: &RunReport, cv: usize) -> Option<f64> {
    let tree = *p.nodes[cv].inputs.first()?;
    let layout = *p.nodes[tree].inputs.first()?;
    let key = &r.node(&p.nodes[layout].name)?.key;
    store
        .manifest(key)?
        .details
        .get("radius_correlation")?
        .as_f64()
}

fn median(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    if v.is_empty() {
        0
    } else {
        v[v.len() / 2]
    }
}

/// Labels of every point's classes, aligned on the first point's rows.
fn aligned_labels(
    store: &Store,
    node: &str,
    keys: &[String],
    id: &str,
) -> Result<(Vec<String>, Vec<Vec<i32>>)> {
    let read = |key: &str| -> Result<(Vec<String>, Vec<i32>)> {
        let df = store.read(key, node)?;
        let pl = |e| Error::polars(node, e);
        let ids = df
            .column(id)
            .map_err(pl)?
            .cast(&DataType::String)
            .map_err(pl)?;
        let ids: Vec<String> = ids
            .str()
            .map_err(pl)?
            .iter()
            .map(|s| s.unwrap_or("").to_owned())
            .collect();
        let labels: Vec<i32> = df
            .column("label")
            .map_err(pl)?
            .i32()
            .map_err(pl)?
            .iter()
            .map(|l| l.unwrap_or(-1))
            .collect();
        Ok((ids, labels))
    };
    let (ids, first) = read(&keys[0])?;
    let index: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    let mut all = vec![first];
    for key in &keys[1..] {
        let (other_ids, other) = read(key)?;
        if other_ids == ids {
            all.push(other);
            continue;
        }
        // Different rows (e.g. a swept filter): rows absent from a point are unclustered there.
        let mut l = vec![-1; ids.len()];
        for (s, &x) in other_ids.iter().zip(&other) {
            if let Some(&i) = index.get(s.as_str()) {
                l[i] = x;
            }
        }
        all.push(l);
    }
    Ok((ids, all))
}

/// True classes of the rows `ids` from `truth` in the catalogue node, as codes (−1 for
/// background or unknown rows), with the class names; `None` if there is no such column.
fn truth_codes(
    store: &Store,
    p: &Pipeline,
    report: &RunReport,
    sweep: &Sweep,
    ids: &[String],
) -> Result<Option<(Vec<i32>, Vec<String>)>> {
    // The first node (in order) that has the truth column: the catalogue.
    let Some(v) = p
        .order
        .iter()
        .copied()
        .find(|&v| p.nodes[v].schema.contains(&sweep.truth))
    else {
        return Ok(None);
    };
    let Some(done) = report.node(&p.nodes[v].name) else {
        return Ok(None);
    };
    let node = &p.nodes[v].name;
    let pl = |e| Error::polars(node, e);
    let df = store.read(&done.key, node)?;
    let cid = df
        .column(&p.id)
        .map_err(pl)?
        .cast(&DataType::String)
        .map_err(pl)?;
    let ct = df
        .column(&sweep.truth)
        .map_err(pl)?
        .cast(&DataType::String)
        .map_err(pl)?;
    let mut of: HashMap<&str, &str> = HashMap::new();
    for (i, t) in cid
        .str()
        .map_err(pl)?
        .iter()
        .zip(ct.str().map_err(pl)?.iter())
    {
        if let (Some(i), Some(t)) = (i, t) {
            of.insert(i, t);
        }
    }
    let mut names: Vec<String> = Vec::new();
    let mut code: HashMap<&str, i32> = HashMap::new();
    let mut codes = Vec::with_capacity(ids.len());
    for id in ids {
        let c = match of.get(id.as_str()) {
            Some(t) if !crate::ops::columns::glob_match(&sweep.background, t) => {
                *code.entry(t).or_insert_with(|| {
                    names.push((*t).to_owned());
                    names.len() as i32 - 1
                })
            }
            _ => -1,
        };
        codes.push(c);
    }
    Ok(Some((codes, names)))
}

/// Summarise a finished sweep and write its folder in the cache.
pub fn summarise(
    store: &Store,
    sweep: &Sweep,
    points: &[Vec<usize>],
    pipelines: &[Pipeline],
    reports: &[RunReport],
) -> Result<Summary> {
    let run = Finished {
        store,
        sweep,
        points,
        pipelines,
        reports,
    };
    let g = run.labels()?;
    let near = neighbours(points);
    let mut classes = Vec::new();
    let mut out = Vec::new();
    // Each point that has a pipeline and a report (all of them).
    let count = pipelines.len().min(reports.len());
    for (i, near) in near.iter().enumerate().take(count) {
        let first = classes.len();
        classes.extend(point_classes(i, &g.labels, near));
        out.push(run.point_summary(&g, i, &classes[first..]));
    }
    follow_stable(&mut classes, &g.labels);
    let dir = run.write_folder(&g, &out, &classes)?;
    Ok(Summary {
        points: out,
        classes,
        dir,
    })
}

/// A finished sweep: what every phase of its summary reads.
struct Finished<'a> {
    store: &'a Store,
    sweep: &'a Sweep,
    points: &'a [Vec<usize>],
    pipelines: &'a [Pipeline],
    reports: &'a [RunReport],
}

/// Every point's classes, read from the cache, aligned on the first point's rows.
struct GridLabels {
    /// The classes node (of the first pipeline) and its name.
    cv: usize,
    cname: String,
    /// The classes node's key at each point.
    keys: Vec<String>,
    /// The first point's row ids.
    ids: Vec<String>,
    /// Each point's labels of `ids`.
    labels: Vec<Vec<i32>>,
    /// The true classes of `ids` as codes, with their names, where there is a truth column.
    truth: Option<(Vec<i32>, Vec<String>)>,
}

impl Finished<'_> {
    /// Read the classes node's labels at every point, and the truth column if any.
    fn labels(&self) -> Result<GridLabels> {
        let p0 = &self.pipelines[0];
        let cv = classes_node(self.sweep, p0)?;
        let cname = p0.nodes[cv].name.clone();
        let keys: Vec<String> = self
            .reports
            .iter()
            .map(|r| {
                r.node(&cname)
                    .map(|n| n.key.clone())
                    .ok_or_else(|| Error::Usage(format!("node `{cname}` did not run")))
            })
            .collect::<Result<_>>()?;
        let (ids, labels) = aligned_labels(self.store, &cname, &keys, &p0.id)?;
        let truth = truth_codes(self.store, p0, &self.reports[0], self.sweep, &ids)?;
        Ok(GridLabels {
            cv,
            cname,
            keys,
            ids,
            labels,
            truth,
        })
    }

    /// Point `i`'s row of the summary, its classes `cs`: sizes, stability, recovery, the
    /// layout's radius correlation, time and cache hits, its report.
    fn point_summary(&self, g: &GridLabels, i: usize, cs: &[ClassSummary]) -> PointSummary {
        let (p, r) = (&self.pipelines[i], &self.reports[i]);
        let n = g.ids.len().max(1) as f64;
        let sizes: Vec<u64> = cs.iter().map(|c| c.size).collect();
        let stab: Vec<f64> = cs.iter().map(|c| c.stability).collect();
        let recovered = g.truth.as_ref().map(|(t, names)| {
            (
                best_match(t, &g.labels[i])
                    .iter()
                    .filter(|&&j| j >= MATCH)
                    .count(),
                names.len(),
            )
        });
        let mut sorted_stab = stab.clone();
        sorted_stab.sort_by(f64::total_cmp);
        let radius_correlation = layout_radius_correlation(self.store, p, r, g.cv);
        let (report, thumb) = report_of(self.store, p, r);
        PointSummary {
            point: i,
            params: self
                .sweep
                .axes
                .iter()
                .zip(&self.points[i])
                .map(|(a, &j)| (a.name(), a.values[j].clone()))
                .collect(),
            classes: cs.len(),
            clustered_fraction: sizes.iter().sum::<u64>() as f64 / n,
            size_min: sizes.iter().copied().min().unwrap_or(0),
            size_median: median(&mut sizes.clone()),
            size_max: sizes.iter().copied().max().unwrap_or(0),
            stable_classes: stab.iter().filter(|&&s| s >= 0.5).count(),
            median_stability: if sorted_stab.is_empty() {
                f64::NAN
            } else {
                sorted_stab[sorted_stab.len() / 2]
            },
            recovered,
            radius_correlation,
            seconds: r
                .nodes
                .iter()
                .filter(|n| n.status == Status::Computed)
                .map(|n| n.seconds)
                .sum::<f64>()
                + 0.0,
            computed: r
                .nodes
                .iter()
                .filter(|n| n.status == Status::Computed)
                .count(),
            cached: r
                .nodes
                .iter()
                .filter(|n| n.status == Status::Cached)
                .count(),
            classes_key: g.keys[i].clone(),
            report,
            thumb,
        }
    }

    /// Write the summary's folder, keyed by the grid and the points' class tables,
    /// atomically: the two tables, the page and the keys of every node the points used.
    fn write_folder(
        &self,
        g: &GridLabels,
        out: &[PointSummary],
        classes: &[ClassSummary],
    ) -> Result<PathBuf> {
        let mut h = blake3::Hasher::new();
        for (ps, k) in out.iter().zip(&g.keys) {
            h.update(
                serde_json::to_string(&ps.params)
                    .expect("params serialise")
                    .as_bytes(),
            );
            h.update(k.as_bytes());
        }
        let key = h.finalize().to_hex().to_string();
        let dir = self.store.root().join("sweeps").join(&key);
        let mut files: Vec<(&str, Vec<u8>)> = vec![
            (
                "summary.parquet",
                parquet_bytes(&mut summary_frame(self.sweep, out)?, "sweep summary")?,
            ),
            (
                "classes.parquet",
                parquet_bytes(&mut classes_frame(classes)?, "sweep classes")?,
            ),
        ];
        let name = &self.pipelines[0].name;
        let axes = &self.sweep.axes;
        files.push((
            "index.html",
            crate::render::sweep::page(name, axes, self.points, out, classes, &g.cname, &dir)
                .into_bytes(),
        ));
        // Every node of every point: gc keeps them while it keeps this summary.
        let used: std::collections::BTreeSet<&str> = self
            .reports
            .iter()
            .flat_map(|r| r.nodes.iter().map(|n| n.key.as_str()))
            .collect();
        files.push((
            crate::cache::SWEEP_KEYS,
            serde_json::to_vec(&used).expect("keys serialise"),
        ));
        self.store.publish_folder(&dir, &files)?;
        Ok(dir)
    }
}

/// Point `i`'s classes: each one's size and stability, the mean over the neighbouring
/// points `near` of its best-match Jaccard there.
fn point_classes(i: usize, labels: &[Vec<i32>], near: &[usize]) -> Vec<ClassSummary> {
    let l = &labels[i];
    let k = l
        .iter()
        .copied()
        .max()
        .map_or(0, |m| (m + 1).max(0) as usize);
    let mut sizes = vec![0u64; k];
    for &x in l.iter().filter(|&&x| x >= 0) {
        sizes[x as usize] += 1;
    }
    let per_neighbour: Vec<Vec<f64>> = near.iter().map(|&j| best_match(l, &labels[j])).collect();
    (0..k)
        .map(|c| {
            let nj: Vec<f64> = per_neighbour.iter().map(|b| b[c]).collect();
            // No neighbouring point (a one-value grid): stability is not defined, not zero.
            let s = if nj.is_empty() {
                f64::NAN
            } else {
                nj.iter().sum::<f64>() / nj.len() as f64
            };
            ClassSummary {
                point: i,
                class: c as i32,
                size: sizes[c],
                stability: s,
                across: Vec::new(),
                neighbour_jaccard: nj,
            }
        })
        .collect()
}

/// The last report node of point `p` (run as `r`): its page, and its thumbnail size where
/// its classes have galleries.
fn report_of(store: &Store, p: &Pipeline, r: &RunReport) -> (Option<PathBuf>, Option<u32>) {
    let report_node = p
        .order
        .iter()
        .rev()
        .copied()
        .find(|&v| matches!(p.nodes[v].op, Op::Report(_)));
    let report = report_node.and_then(|v| r.node(&p.nodes[v].name));
    let thumb = match report_node.map(|v| &p.nodes[v].op) {
        Some(Op::Report(o))
            if report.is_some_and(|n| store.attachment_path(&n.key, "gallery").is_dir()) =>
        {
            Some(o.thumb)
        }
        _ => None,
    };
    (
        report.map(|n| store.attachment_path(&n.key, "index.html")),
        thumb,
    )
}

/// Follow the most stable classes across the whole grid (their `across`); a class already
/// followed (the best match, J >= 0.5, of one shown) is not shown again from another point.
fn follow_stable(classes: &mut [ClassSummary], labels: &[Vec<i32>]) {
    let mut covered: std::collections::HashSet<(usize, i32)> = std::collections::HashSet::new();
    let mut shown = 0;
    for t in most_stable(classes) {
        let (pt, c) = (classes[t].point, classes[t].class);
        if shown == STABLE_SHOWN || covered.contains(&(pt, c)) {
            continue;
        }
        let across: Vec<(i32, f64)> = (0..labels.len())
            .map(|q| {
                if q == pt {
                    (c, 1.0)
                } else {
                    best_match_of(&labels[pt], c, &labels[q])
                }
            })
            .collect();
        covered.extend(
            across
                .iter()
                .enumerate()
                .filter(|(_, m)| m.1 >= 0.5)
                .map(|(q, m)| (q, m.0)),
        );
        classes[t].across = across;
        shown += 1;
    }
}

/// How many of the most stable classes (each a different one) the sweep page follows
/// across the grid.
const STABLE_SHOWN: usize = 8;

fn summary_frame(sweep: &Sweep, s: &[PointSummary]) -> Result<DataFrame> {
    let mut cols: Vec<Column> = vec![Column::new(
        "point".into(),
        s.iter().map(|p| p.point as u32).collect::<Vec<_>>(),
    )];
    for (a, axis) in sweep.axes.iter().enumerate() {
        let name = PlSmallStr::from(axis.name());
        let vals: Vec<&toml::Value> = s.iter().map(|p| &p.params[a].1).collect();
        cols.push(if vals.iter().all(|v| v.is_integer()) {
            Column::new(
                name,
                vals.iter().map(|v| v.as_integer()).collect::<Vec<_>>(),
            )
        } else if vals.iter().all(|v| v.is_integer() || v.is_float()) {
            Column::new(
                name,
                vals.iter()
                    .map(|v| v.as_float().or(v.as_integer().map(|i| i as f64)))
                    .collect::<Vec<_>>(),
            )
        } else {
            Column::new(name, vals.iter().map(|v| show_value(v)).collect::<Vec<_>>())
        });
    }
    cols.push(Column::new(
        "classes".into(),
        s.iter().map(|p| p.classes as u32).collect::<Vec<_>>(),
    ));
    cols.push(Column::new(
        "clustered_fraction".into(),
        s.iter().map(|p| p.clustered_fraction).collect::<Vec<_>>(),
    ));
    cols.push(Column::new(
        "size_min".into(),
        s.iter().map(|p| p.size_min).collect::<Vec<_>>(),
    ));
    cols.push(Column::new(
        "size_median".into(),
        s.iter().map(|p| p.size_median).collect::<Vec<_>>(),
    ));
    cols.push(Column::new(
        "size_max".into(),
        s.iter().map(|p| p.size_max).collect::<Vec<_>>(),
    ));
    cols.push(Column::new(
        "stable_classes".into(),
        s.iter()
            .map(|p| p.stable_classes as u32)
            .collect::<Vec<_>>(),
    ));
    cols.push(Column::new(
        "median_stability".into(),
        s.iter().map(|p| p.median_stability).collect::<Vec<_>>(),
    ));
    if s.iter().any(|p| p.radius_correlation.is_some()) {
        let r: Vec<Option<f64>> = s.iter().map(|p| p.radius_correlation).collect();
        cols.push(Column::new("radius_correlation".into(), r));
    }
    if s.iter().all(|p| p.recovered.is_some()) {
        cols.push(Column::new(
            "recovered".into(),
            s.iter()
                .map(|p| p.recovered.map(|r| r.0 as u32))
                .collect::<Vec<_>>(),
        ));
        cols.push(Column::new(
            "planted".into(),
            s.iter()
                .map(|p| p.recovered.map(|r| r.1 as u32))
                .collect::<Vec<_>>(),
        ));
    }
    cols.push(Column::new(
        "seconds".into(),
        s.iter().map(|p| p.seconds).collect::<Vec<_>>(),
    ));
    cols.push(Column::new(
        "computed".into(),
        s.iter().map(|p| p.computed as u32).collect::<Vec<_>>(),
    ));
    cols.push(Column::new(
        "cached".into(),
        s.iter().map(|p| p.cached as u32).collect::<Vec<_>>(),
    ));
    cols.push(Column::new(
        "classes_key".into(),
        s.iter().map(|p| p.classes_key.clone()).collect::<Vec<_>>(),
    ));
    DataFrame::new(s.len(), cols).map_err(|e| Error::polars("sweep summary", e))
}

fn classes_frame(c: &[ClassSummary]) -> Result<DataFrame> {
    DataFrame::new(
        c.len(),
        vec![
            Column::new(
                "point".into(),
                c.iter().map(|x| x.point as u32).collect::<Vec<_>>(),
            ),
            Column::new(
                "class".into(),
                c.iter().map(|x| x.class).collect::<Vec<_>>(),
            ),
            Column::new("size".into(), c.iter().map(|x| x.size).collect::<Vec<_>>()),
            Column::new(
                "stability".into(),
                c.iter().map(|x| x.stability).collect::<Vec<_>>(),
            ),
        ],
    )
    .map_err(|e| Error::polars("sweep classes", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_points_and_neighbours() {
        let a = parse_grid("umap.n_neighbors=15,50").unwrap();
        let b = parse_grid("tree.min_samples=100, 300 ,1000").unwrap();
        assert_eq!(
            a.values,
            vec![toml::Value::Integer(15), toml::Value::Integer(50)]
        );
        let pts = expand(&[a, b]);
        assert_eq!(
            pts,
            vec![
                vec![0, 0],
                vec![0, 1],
                vec![0, 2],
                vec![1, 0],
                vec![1, 1],
                vec![1, 2]
            ]
        );
        let near = neighbours(&pts);
        assert_eq!(near[0], vec![1, 3]);
        assert_eq!(near[1], vec![0, 2, 4]);
        assert_eq!(near[5], vec![2, 4]);
        assert!(parse_grid("umap.n_neighbors=").is_err());
        assert!(parse_grid("n_neighbors=15").is_err());
    }

    #[test]
    fn best_match_equals_brute_force() {
        let mut rng = crate::numeric::rng::Rng::new(7, 0);
        let a: Vec<i32> = (0..500).map(|_| rng.below(6) as i32 - 1).collect();
        let b: Vec<i32> = (0..500).map(|_| rng.below(9) as i32 - 1).collect();
        let got = best_match(&a, &b);
        for (c, &g) in got.iter().enumerate() {
            let ca: Vec<usize> = (0..500).filter(|&i| a[i] == c as i32).collect();
            let mut best = 0.0f64;
            for d in 0..8 {
                let inter = ca.iter().filter(|&&i| b[i] == d).count();
                let union = ca.len() + (0..500).filter(|&i| b[i] == d).count() - inter;
                best = best.max(inter as f64 / union as f64);
            }
            assert!((g - best).abs() < 1e-12, "class {c}: {g} vs {best}");
            // The one-class version finds the same index, and names a class that has it.
            let (m, j) = best_match_of(&a, c as i32, &b);
            assert!((j - best).abs() < 1e-12, "class {c}: {j} vs {best}");
            let inter = ca.iter().filter(|&&i| b[i] == m).count();
            let union = ca.len() + (0..500).filter(|&i| b[i] == m).count() - inter;
            assert!((inter as f64 / union as f64 - best).abs() < 1e-12);
        }
        // A labelling matches itself perfectly; noise never matches.
        assert!(best_match(&a, &a).iter().all(|&j| j == 1.0));
        assert_eq!(best_match(&[0, 0, -1], &[-1, -1, 0]), vec![0.0]);
    }
}
