//! The commands that run a pipeline, or part of it, and show or write what it made:
//! `run`, `plan`, `export`, `show`, `serve`, `labels export` and `gc`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::print::Printer;
use super::{
    absolute, cache_dir, load, load_with, slurm_options, targets, with_paths, Executor, ExportArgs,
    GcArgs, Global, LabelsExportArgs, PlanArgs, RunArgs, ServeArgs, ShowArgs,
};
use crate::cache::io::TableFormat;
use crate::cache::Store;
use crate::error::{Error, IoContext, Result};
use crate::exec::{self, PlanStatus, Status};
use crate::spec;

/// `dagrun [run] PIPELINE`: run it (or what `--target` and `--shard` name), here or on SLURM.
pub(super) fn run(args: &RunArgs, global: &Global, out: &Printer) -> Result<()> {
    let Some(path) = &args.pipeline else {
        return Err(Error::Usage(
            "no pipeline given: try `dagrun pipelines/featured.toml` or `dagrun --help`".into(),
        ));
    };
    let t0 = Instant::now();
    let (p, mut t, store) = load_with(path, global, &args.target, &args.executor.slurm)?;
    if let Some(s) = &args.shard {
        if args.executor.executor == Executor::Slurm {
            return Err(Error::Usage("`--shard` runs one task of a job array; `--executor slurm` submits the whole array itself: give one or the other".into()));
        }
        t.extend(p.shard_nodes(s.index, s.count)?);
    }
    let report = match args.executor.executor {
        Executor::Local => exec::run(&p, &store, out, &t)?,
        Executor::Slurm => {
            let opt = slurm_options(&store, vec![global.sets.clone()])?;
            crate::slurm::run_many(
                std::slice::from_ref(&p),
                &store,
                out,
                &[t],
                exec::Limits::SERIAL,
                &opt,
            )?
            .pop()
            .expect("one pipeline")
        }
    };
    let computed = report
        .nodes
        .iter()
        .filter(|n| n.status == Status::Computed)
        .count();
    out.line(&format!(
        "{}: {} nodes, {computed} computed, {} cached in {:.2}s",
        p.name,
        report.nodes.len(),
        report.nodes.len() - computed,
        t0.elapsed().as_secs_f64()
    ));
    for n in report
        .nodes
        .iter()
        .filter(|n| n.attachments.iter().any(|a| a == "index.html"))
    {
        out.line(&format!(
            "report `{}`: {}",
            n.name,
            store.attachment_path(&n.key, "index.html").display()
        ));
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&with_paths(&report, &store)).expect("report serialises")
        );
    }
    Ok(())
}

/// `dagrun plan`: what a run would compute, and (`--explain`) why.
pub(super) fn plan(a: &PlanArgs, global: &Global) -> Result<()> {
    let (path, explain, target, json) = (&a.pipeline, a.explain, &a.target, a.json);
    let (p, t, store) = load(path, global, target)?;
    let rows = exec::plan(&p, &store, &Printer::new(json, 0), &t)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("plan serialises")
        );
        return Ok(());
    }
    for r in &rows {
        let status = match r.status {
            PlanStatus::Cached => "cached",
            PlanStatus::Run => "run",
            PlanStatus::Pending => "pending",
        };
        let key = r.key.as_deref().map_or("-", |k| &k[..12]);
        println!("{status:>8}  {:<14} {:<10} {key}", r.name, r.op);
        if explain {
            for w in &r.why {
                println!("{:>8}  {:<14} {w}", "", "");
            }
        }
    }
    Ok(())
}

/// The format `export` writes, by the file's extension.
fn table_format(dest: &Path) -> Result<TableFormat> {
    match dest
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("parquet" | "pq") => Ok(TableFormat::Parquet),
        Some("csv") => Ok(TableFormat::Csv),
        Some("arrow" | "ipc" | "feather") => Ok(TableFormat::Ipc),
        _ => Err(Error::Usage(format!(
            "cannot tell the format of `{}`: use a .parquet, .csv or .arrow file name",
            dest.display()
        ))),
    }
}

/// Write `dest` through a temporary file of this process beside it, renamed into place.
fn write_via_temp(dest: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let dir = dest
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(Error::Usage(format!(
            "cannot write `{}`: folder `{}` does not exist",
            dest.display(),
            dir.display()
        )));
    }
    let tmp = dir.join(format!(
        ".{}.{}.dagrun-tmp",
        dest.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    if let Err(e) = write(&tmp).and_then(|()| std::fs::rename(&tmp, dest).ctx("cannot write", dest))
    {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}

/// Write a table as `fmt` to the file `path`.
fn write_table(
    df: &mut polars::prelude::DataFrame,
    fmt: TableFormat,
    path: &Path,
    what: &str,
) -> Result<()> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).ctx("cannot create", path)?);
    crate::cache::io::write_table(&mut w, df, fmt, what)?;
    std::io::Write::flush(&mut w).ctx("cannot write", path)
}

/// `dagrun export`: a node's table to a Parquet, CSV or Arrow file.
pub(super) fn export(a: &ExportArgs, global: &Global, out: &Printer) -> Result<()> {
    let (path, node, dest, json) = (&a.pipeline, a.node.as_str(), &a.out, a.json);
    let fmt = table_format(dest)?;
    let (p, t, store) = load(path, global, &[node.to_owned()])?;
    let report = exec::run(&p, &store, out, &t)?;
    let done = report.node(node).expect("target ran");
    write_via_temp(dest, |tmp| match fmt {
        TableFormat::Parquet => std::fs::copy(store.data_path(&done.key), tmp)
            .ctx("cannot write", tmp)
            .map(drop),
        _ => write_table(&mut store.read(&done.key, node)?, fmt, tmp, node),
    })?;
    out.line(&format!(
        "wrote {} rows of `{node}` to `{}`",
        done.rows,
        dest.display()
    ));
    if json {
        println!(
            "{}",
            serde_json::json!({ "node": node, "key": done.key, "rows": done.rows, "out": dest })
        );
    }
    Ok(())
}

/// The folder of an entry's attachments (a report's `index.html`), where it has any.
fn entry_files(store: &Store, key: &str, m: &crate::cache::Manifest) -> Option<PathBuf> {
    (!m.attachments.is_empty()).then(|| store.attachment_path(key, ""))
}

/// `dagrun serve`: run what the page needs, then serve it until Ctrl-C.
pub(super) fn serve(a: &ServeArgs, global: &Global, out: &Printer) -> Result<()> {
    let pipeline = &a.pipeline;
    let opt = crate::serve::Options {
        node: a.node.clone(),
        layout: a.layout.clone(),
        features: a.features.clone(),
        labels: a.labels.clone(),
        host: a.host.clone(),
        port: a.port,
        token: a.token.clone(),
    };
    let ip = crate::serve::host(&opt.host)?;
    let opt = crate::serve::Options {
        token: crate::serve::token_for(ip, opt.token.clone())?,
        ..opt
    };
    let (p, nodes) = crate::serve::state::prepare(pipeline, &global.sets, &opt)?;
    let store = Store::open(&cache_dir(global, Some(&p)))?;
    let (app, torn) = crate::serve::state::App::load(&p, nodes, &store, &opt, out)?;
    if let Some(w) = torn {
        out.line(&format!("warning: {w}"));
    }
    let labels = app.label_log();
    let n = app.ids.len();
    crate::serve::run(app, std::net::SocketAddr::new(ip, opt.port), |url| {
        out.line(&format!(
            "serving {n} galaxies; labels go to `{labels}`; Ctrl-C stops"
        ));
        // The URL alone on stdout, for scripts and tests.
        println!("{url}");
        let _ = std::io::Write::flush(&mut std::io::stdout());
    })
}

/// `dagrun labels export`.
pub(super) fn labels_export(a: &LabelsExportArgs, global: &Global, out: &Printer) -> Result<()> {
    let (pipeline, dest, log) = (&a.pipeline, &a.out, a.labels.as_deref());
    let (globs, node) = (&a.columns, a.node.as_deref());
    let fmt = table_format(dest)?;
    let log_path = log
        .map(Path::to_owned)
        .unwrap_or_else(|| crate::serve::state::default_log(pipeline));
    if !log_path.is_file() {
        return Err(Error::Usage(format!("no label log `{}`: label galaxies with `dagrun serve` first (or name the log with `--labels`)", log_path.display())));
    }
    let p = spec::load(pipeline, &global.sets)?;
    let nodes = crate::serve::state::choose_nodes(
        &p,
        &crate::serve::Options {
            node: node.map(str::to_owned),
            ..Default::default()
        },
    )?;
    let log = crate::labels::read(&log_path)?;
    if let Some(w) = &log.torn {
        out.line(&format!("warning: {w}"));
    }
    let t = targets(&p, std::slice::from_ref(&nodes.catalogue))?;
    let store = Store::open(&cache_dir(global, Some(&p)))?;
    let report = exec::run(&p, &store, out, &t)?;
    let catalogue = store.read(
        &report.node(&nodes.catalogue).expect("ran").key,
        &nodes.catalogue,
    )?;
    let fold = log.fold();
    let mut df =
        crate::serve::state::export_table(&catalogue, &p.id, &fold, globs, &nodes.catalogue)?;
    write_via_temp(dest, |tmp| {
        write_table(&mut df, fmt, tmp, "the label export")
    })?;
    out.line(&format!(
        "wrote {} labelled galaxies ({} labels) from `{}` to `{}`",
        df.height(),
        fold.counts().len(),
        log_path.display(),
        dest.display()
    ));
    Ok(())
}

/// `dagrun show`: a node's schema, first rows and manifest.
pub(super) fn show(a: &ShowArgs, global: &Global, out: &Printer) -> Result<()> {
    let (path, node, rows, json) = (&a.pipeline, a.node.as_str(), a.rows, a.json);
    let (p, t, store) = load(path, global, &[node.to_owned()])?;
    let report = exec::run(&p, &store, out, &t)?;
    let key = &report.node(node).expect("target ran").key;
    let m = store
        .manifest(key)
        .ok_or_else(|| Error::Cache(format!("entry {key} vanished")))?;
    if json {
        let doc = serde_json::json!({
            "node": node, "op": m.parts.op, "key": key, "rows": m.rows, "schema": m.schema,
            "path": absolute(&store.data_path(key)), "files": entry_files(&store, key, &m).map(|f| absolute(&f)), "manifest": m,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("show serialises")
        );
        return Ok(());
    }
    let df = store.read(key, node)?;
    println!(
        "node `{node}` ({} op), {} rows x {} columns, key {key}",
        m.parts.op,
        df.height(),
        df.width()
    );
    println!("schema:");
    for (name, dt) in df.schema().iter() {
        println!("  {name}: {dt}");
    }
    println!("{}", df.head(Some(rows)));
    println!(
        "manifest:\n{}",
        serde_json::to_string_pretty(&m).expect("manifest serialises")
    );
    Ok(())
}

/// What gc never removes without `--force`: entries used this recently.
const GC_RECENT: Duration = Duration::from_secs(3600);

/// `dagrun gc`: remove entries not used for a while.
pub(super) fn gc(a: &GcArgs, global: &Global, out: &Printer) -> Result<()> {
    let (older_than, force, dry_run) = (a.older_than, a.force, a.dry_run);
    let dir = cache_dir(global, None);
    // A file in the cache's place is named by `Store::open` below.
    if !dir.exists() || (dir.is_dir() && !dir.join("v1").exists()) {
        out.line(&format!("no cache at `{}`", dir.display()));
        return Ok(());
    }
    let age = if force {
        older_than
    } else {
        older_than.max(GC_RECENT)
    };
    if age > older_than {
        out.line("entries used in the last hour are kept (--force removes them too)");
    }
    let store = Store::open(&dir)?;
    let r = store.gc(age, dry_run)?;
    let verb = if dry_run { "would remove" } else { "removed" };
    out.line(&format!(
        "{verb} {} entries ({:.1} MB), {} sweep summaries or SLURM run folders and {} temporary files; kept {} in use, {} used within {} and {} that kept sweep summaries or label logs name",
        r.removed,
        r.bytes as f64 / 1e6,
        r.folders_removed,
        r.temp_removed,
        r.kept_in_use,
        r.kept_recent,
        show_duration(age),
        r.kept_roots
    ));
    Ok(())
}

/// A duration in the largest unit that divides it: `30d`, `1h`, `90s`.
fn show_duration(d: Duration) -> String {
    let s = d.as_secs();
    for (unit, n) in [("w", 7 * 86_400), ("d", 86_400), ("h", 3600), ("m", 60)] {
        if s > 0 && s.is_multiple_of(n) {
            return format!("{}{unit}", s / n);
        }
    }
    format!("{s}s")
}
