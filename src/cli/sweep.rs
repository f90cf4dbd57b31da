//! `dagrun sweep`: a pipeline over a grid of parameter values, and the table of what each
//! point found.

use std::time::Instant;

use super::print::Printer;
use super::{cache_dir, default_memory, slurm_options, with_paths, Executor, Global, SweepArgs};
use crate::cache::Store;
use crate::error::Result;
use crate::exec::{self, PlanStatus, RunReport, Status};
use crate::spec::Pipeline;
use crate::sweep::{self, show_value, Summary, Sweep};

/// A sweep's grid: its settings, each point's value indices and each point's pipeline.
struct Grid {
    sw: Sweep,
    points: Vec<Vec<usize>>,
    pipelines: Vec<Pipeline>,
}

pub(super) fn run(a: &SweepArgs, global: &Global, out: &Printer) -> Result<()> {
    let t0 = Instant::now();
    let (sw, points, pipelines) = sweep::load_points(
        &a.pipeline,
        &global.sets,
        &a.executor.slurm,
        &a.grid,
        a.classes.as_deref(),
        a.max_points,
    )?;
    sweep::classes_node(&sw, &pipelines[0])?;
    let g = Grid {
        sw,
        points,
        pipelines,
    };
    let store = Store::open(&cache_dir(global, Some(&g.pipelines[0])))?;
    out.line(&format!(
        "sweep of {}: {} grid points over {}",
        g.pipelines[0].name,
        g.points.len(),
        axes_line(&g.sw)
    ));
    if a.dry_run {
        return dry_run(&g, &store, out);
    }
    let reports = execute(a, &g, &store, global, out)?;
    let summary = sweep::summarise(&store, &g.sw, &g.points, &g.pipelines, &reports)?;
    let computed: usize = reports
        .iter()
        .map(|r| {
            r.nodes
                .iter()
                .filter(|n| n.status == Status::Computed)
                .count()
        })
        .sum();
    let total: usize = reports.iter().map(|r| r.nodes.len()).sum();
    out.line(&format!(
        "{} grid points, {total} nodes: {computed} computed, {} cached or shared, in {:.2}s",
        g.points.len(),
        total - computed,
        t0.elapsed().as_secs_f64()
    ));
    if !global.quiet {
        print_table(&g.sw, &summary, out);
    }
    if a.json {
        println!("{}", json_report(&g, &summary, &reports, &store));
    }
    Ok(())
}

/// The axes and their values: `umap.n_neighbors (15, 50) x tree.min_samples (50, 100)`.
fn axes_line(sw: &Sweep) -> String {
    sw.axes
        .iter()
        .map(|a| {
            let values: Vec<String> = a.values.iter().map(show_value).collect();
            format!("{} ({})", a.name(), values.join(", "))
        })
        .collect::<Vec<_>>()
        .join(" x ")
}

/// `--dry-run`: each point's plan (a node the points share is counted at each of them).
fn dry_run(g: &Grid, store: &Store, out: &Printer) -> Result<()> {
    let mut keys = std::collections::BTreeSet::new();
    for (i, (p, pt)) in g.pipelines.iter().zip(&g.points).enumerate() {
        let rows = exec::plan(p, store, &Printer::new(true, 0), &[])?;
        let run = rows
            .iter()
            .filter(|r| r.status != PlanStatus::Cached)
            .count();
        keys.extend(
            rows.iter()
                .filter(|r| r.status == PlanStatus::Run)
                .filter_map(|r| r.key.clone()),
        );
        let at: Vec<String> =
            g.sw.axes
                .iter()
                .zip(pt)
                .map(|(a, &v)| format!("{}={}", a.name(), show_value(&a.values[v])))
                .collect();
        out.line(&format!(
            "{:>5}  {}  {run} of {} nodes to compute",
            i,
            at.join("  "),
            rows.len()
        ));
    }
    out.line(&format!(
        "dry run: {} grid points; nothing was run (nodes whose inputs are not cached yet count as to compute; {} distinct keys known to be missing)",
        g.points.len(),
        keys.len()
    ));
    Ok(())
}

/// Run every point, here or on SLURM: one report per point.
fn execute(
    a: &SweepArgs,
    g: &Grid,
    store: &Store,
    global: &Global,
    out: &Printer,
) -> Result<Vec<RunReport>> {
    let limits = exec::Limits {
        max_nodes: a.parallel.max(1),
        memory_bytes: a.memory.unwrap_or_else(default_memory),
    };
    let targets = vec![Vec::new(); g.pipelines.len()];
    match a.executor.executor {
        Executor::Local => exec::run_many(&g.pipelines, store, out, &targets, limits),
        Executor::Slurm => {
            let axes: Vec<(String, Vec<toml::Value>)> =
                g.sw.axes
                    .iter()
                    .map(|a| (a.name(), a.values.clone()))
                    .collect();
            let sets = crate::slurm::point_sets(&global.sets, &axes, &g.points);
            let opt = slurm_options(store, sets)?;
            crate::slurm::run_many(&g.pipelines, store, out, &targets, limits, &opt)
        }
    }
}

/// The table of points: the axes' values, then what each point found.
fn print_table(sw: &Sweep, summary: &Summary, out: &Printer) {
    let mut t = String::from("point");
    for a in &sw.axes {
        t.push_str(&format!("  {}", a.name()));
    }
    t.push_str("  classes  in-class  size min/med/max  stable  median-stab");
    let truth = summary.points.iter().all(|p| p.recovered.is_some());
    if truth {
        t.push_str("  recovered");
    }
    let radii = summary
        .points
        .iter()
        .any(|p| p.radius_correlation.is_some());
    if radii {
        t.push_str("  radius-corr");
    }
    t.push_str("  seconds");
    out.line(&t);
    for p in &summary.points {
        let mut row = format!("{:>5}", p.point);
        for ((name, v), _) in p.params.iter().zip(&sw.axes) {
            row.push_str(&format!("  {:>w$}", show_value(v), w = name.len()));
        }
        row.push_str(&format!(
            "  {:>7}  {:>7.2}%  {:>16}  {:>6}  {:>11}",
            p.classes,
            100.0 * p.clustered_fraction,
            format!("{}/{}/{}", p.size_min, p.size_median, p.size_max),
            p.stable_classes,
            sweep::show_stability(p.median_stability)
        ));
        if let Some((r, n)) = p.recovered {
            row.push_str(&format!("  {:>9}", format!("{r}/{n}")));
        }
        if radii {
            let r = p
                .radius_correlation
                .map_or_else(|| "-".to_owned(), |r| format!("{r:.3}"));
            row.push_str(&format!("  {r:>11}"));
        }
        row.push_str(&format!("  {:>7.1}", p.seconds));
        out.line(&row);
    }
    out.line(&format!(
        "summary: {} (summary.parquet and classes.parquet beside it)",
        summary.dir.join("index.html").display()
    ));
}

/// `--json`: each point's parameters, nodes and summary, and the classes.
fn json_report(g: &Grid, summary: &Summary, reports: &[RunReport], store: &Store) -> String {
    let pts: Vec<serde_json::Value> = summary
        .points
        .iter()
        .zip(reports)
        .map(|(p, r)| {
            let params: serde_json::Map<String, serde_json::Value> = p
                .params
                .iter()
                .map(|(k, v)| {
                    let v = serde_json::to_value(v).expect("TOML values are JSON");
                    (k.clone(), v)
                })
                .collect();
            let nodes = with_paths(r, store)["nodes"].clone();
            serde_json::json!({ "params": params, "nodes": nodes, "summary": p })
        })
        .collect();
    let doc = serde_json::json!({
        "pipeline": g.pipelines[0].name,
        "points": pts,
        "summary_dir": summary.dir,
        "classes": summary.classes,
    });
    serde_json::to_string_pretty(&doc).expect("sweep report serialises")
}
