//! `report`: what the classes are, for a person to look at. Inputs: `[classes, catalogue]`
//! or `[classes, catalogue, layout]` — a `select-leaves` / `select-eom` output, any table
//! with the id column (e.g. the filtered catalogue), and optionally a 2-D layout to plot
//! (e.g. a `reduce` node with `n_components = 2`; a layout with more dimensions is an error
//! that says to add one).
//!
//! Output table: the class members (label ≥ 0) with their catalogue rows (every column but
//! the representation `feat_*`), ordered by class. Beside it, a self-contained folder:
//! `index.html`; `scatter.png`, the layout coloured by class (noise grey); and, when the
//! catalogue has an image-path column (`image_column`, default `file_loc`), one gallery PNG
//! per class (`gallery/class_N.png`: `members` randomly chosen members, `thumb` pixels each;
//! relative paths resolved against `image_dir`, by default the folder of the catalogue file
//! the pipeline reads). Without images, each class shows its members' catalogue rows
//! instead. The class table gives size, persistence and stability (from the classes
//! node), mean membership probability, the mean of each numeric catalogue column (vote
//! fractions) and, for text columns such as `planted_class`, the most common value and its
//! share. Members are drawn with a seeded generator, so the same inputs give the same
//! report, byte for byte. The key holds the bytes of the gallery images ([`Report::images`]),
//! never their paths or `image_dir`: a cutout re-made in place redraws the report.

use std::fmt::Write;
use std::path::PathBuf;

use polars::prelude::*;
use serde::Serialize;

use super::draft::Draft;
use super::{columns, Output, RunCtx, SchemaError, SchemaResult};
use crate::error::{Error, Result};
use crate::numeric::rng::Rng;
use crate::params::Params;
use crate::render::{self, canvas, esc, gallery, scatter};

pub const VERSION: u32 = 8;

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub members: u32,
    pub seed: u64,
    /// Catalogue columns left out of the report (globs).
    pub exclude: Vec<String>,
    /// The catalogue column with image paths; `None`: `file_loc` if the catalogue has it.
    pub image_column: Option<String>,
    /// Folder that relative image paths are resolved against (set at validation). Not in
    /// the key: the images enter it by content.
    #[serde(skip)]
    pub image_dir: Option<PathBuf>,
    /// Thumbnail size in pixels.
    pub thumb: u32,
    /// Scatter plot size in pixels.
    pub width: u32,
    pub height: u32,
}

/// A validated view of the inputs' columns.
struct Columns {
    shown: Vec<String>,
    image: Option<String>,
    layout: Option<[String; 2]>,
}

impl Report {
    pub fn parse(p: &mut Params, base_dir: &std::path::Path) -> Result<Self> {
        let members = p.int_in("members", Some(12), 0, 10_000)? as u32;
        let seed = p.int_in("seed", Some(0), 0, i64::MAX)? as u64;
        let exclude = p
            .strings("exclude")?
            .unwrap_or_else(|| vec!["feat_*".into()]);
        let image_column = p.string("image_column")?;
        let image_dir = p.string("image_dir")?.map(|d| base_dir.join(d));
        let thumb = p.int_in("thumb", Some(96), 16, 512)? as u32;
        let width = p.int_in("width", Some(900), 200, 4000)? as u32;
        let height = p.int_in("height", Some(700), 200, 4000)? as u32;
        Ok(Report {
            members,
            seed,
            exclude,
            image_column,
            image_dir,
            thumb,
            width,
            height,
        })
    }

    fn columns(
        &self,
        classes: &Schema,
        catalogue: &Schema,
        layout: Option<&Schema>,
        id: &str,
    ) -> SchemaResult<Columns> {
        for c in ["label", "probability"] {
            if !classes.contains(c) {
                return Err(SchemaError::new("inputs", format!("the first input has no `{c}` column: it should be a `select-leaves` or `select-eom` node")));
            }
        }
        let image = match &self.image_column {
            Some(c) if !catalogue.contains(c) => {
                return Err(SchemaError::new(
                    "image_column",
                    format!("the catalogue (second input) has no column `{c}`"),
                ))
            }
            Some(c) => Some(c.clone()),
            None => catalogue
                .contains("file_loc")
                .then(|| "file_loc".to_owned()),
        };
        let shown = catalogue
            .iter_names()
            .map(|n| n.to_string())
            .filter(|n| {
                n != id
                    && n != "label"
                    && n != "probability"
                    && !self.exclude.iter().any(|g| columns::glob_match(g, n))
            })
            .collect();
        let layout = match layout {
            None => None,
            Some(s) => {
                let dims: Vec<String> = s
                    .iter()
                    .filter(|(n, dt)| n.as_str() != id && columns::is_numeric(dt))
                    .map(|(n, _)| n.to_string())
                    .collect();
                if dims.len() != 2 {
                    return Err(SchemaError::new(
                        "inputs",
                        format!(
                            "the layout (third input) has {} numeric columns ({}); the scatter needs 2: add a reduce node with n_components = 2 for display",
                            dims.len(),
                            dims.join(", ")
                        ),
                    ));
                }
                Some([dims[0].clone(), dims[1].clone()])
            }
        };
        Ok(Columns {
            shown,
            image,
            layout,
        })
    }

    pub fn schema(&self, inputs: &[SchemaRef], id: &str) -> SchemaResult<Schema> {
        let cols = self.columns(
            &inputs[0],
            &inputs[1],
            inputs.get(2).map(|s| s.as_ref()),
            id,
        )?;
        let mut s = Schema::default();
        s.insert(
            id.into(),
            inputs[0].get(id).cloned().unwrap_or(DataType::Int64),
        );
        s.insert("label".into(), DataType::Int32);
        s.insert("probability".into(), DataType::Float64);
        for c in cols.shown {
            s.insert(
                c.as_str().into(),
                inputs[1].get(&c).expect("from the schema").clone(),
            );
        }
        Ok(s)
    }

    /// The images the galleries will show, in the order they are read; `None` when the
    /// catalogue has no image column. Their bytes enter the key (not `image_dir`).
    pub fn images(
        &self,
        inputs: &[std::sync::Arc<DataFrame>],
        id: &str,
        node: &str,
    ) -> Result<Option<Vec<Option<PathBuf>>>> {
        let (m, cols) = self.members(inputs, id, node)?;
        let Some(image) = &cols.image else {
            return Ok(None);
        };
        let s = m
            .column(image)
            .map_err(super::pl(node))?
            .as_materialized_series()
            .cast(&DataType::String)
            .map_err(super::pl(node))?;
        let paths: Vec<Option<&str>> = s.str().map_err(super::pl(node))?.iter().collect();
        let picks = self.picks(&labels(&m, node)?);
        Ok(Some(
            picks
                .iter()
                .flatten()
                .map(|&i| {
                    Some(super::resolve_path(
                        self.image_dir.as_deref(),
                        paths[i].unwrap_or(""),
                    ))
                })
                .collect(),
        ))
    }

    /// Each class's gallery: `members` of its rows (indices into the members table, which is
    /// ordered by class), drawn with the report's seed, in row order.
    fn picks(&self, lab: &[i32]) -> Vec<Vec<usize>> {
        let k = lab.iter().copied().max().map_or(0, |v| v + 1) as usize;
        let mut rows_of: Vec<Vec<usize>> = vec![Vec::new(); k];
        for (i, &l) in lab.iter().enumerate() {
            rows_of[l as usize].push(i);
        }
        rows_of
            .into_iter()
            .enumerate()
            .map(|(l, mut pick)| {
                Rng::new(self.seed, l as u64).shuffle(&mut pick);
                pick.truncate(self.members as usize);
                pick.sort_unstable();
                pick
            })
            .collect()
    }

    /// The class members (label ≥ 0) with their catalogue columns, ordered by class.
    fn members(
        &self,
        inputs: &[std::sync::Arc<DataFrame>],
        id: &str,
        node: &str,
    ) -> Result<(DataFrame, Columns)> {
        let (classes, catalogue) = (&inputs[0], &inputs[1]);
        let cols = self
            .columns(
                classes.schema(),
                catalogue.schema(),
                inputs.get(2).map(|d| d.schema().as_ref()),
                id,
            )
            .map_err(|e| Error::input(node, e.message))?;
        let mut cat_cols: Vec<PlSmallStr> = vec![id.into()];
        cat_cols.extend(cols.shown.iter().map(|c| PlSmallStr::from(c.as_str())));
        if let Some(c) = cols.image.as_ref().filter(|c| !cols.shown.contains(c)) {
            cat_cols.push(c.as_str().into());
        }
        let cat = catalogue.select(cat_cols).map_err(super::pl(node))?;
        // Members (label >= 0) with their catalogue columns, by class, then in input order.
        let pl = super::pl(node);
        let members = classes.select([id, "label", "probability"]).map_err(&pl)?;
        let labels: Vec<i64> = members
            .column("label")
            .map_err(&pl)?
            .cast(&DataType::Int64)
            .map_err(&pl)?
            .i64()
            .map_err(&pl)?
            .iter()
            .map(|v| v.unwrap_or(-1))
            .collect();
        let mut order: Vec<IdxSize> = (0..labels.len() as IdxSize)
            .filter(|&r| labels[r as usize] >= 0)
            .collect();
        order.sort_by_key(|&r| labels[r as usize]);
        let members = members
            .take(&IdxCa::from_vec("".into(), order))
            .map_err(&pl)?;
        let with_cat = super::join::rows(&members, &cat, id, id, true, "_right", node)?;
        Ok((with_cat, cols))
    }

    pub fn run(&self, inputs: &[std::sync::Arc<DataFrame>], ctx: &RunCtx) -> Result<Output> {
        let classes = &inputs[0];
        let (with_cat, cols) = self.members(inputs, ctx.id, ctx.node)?;
        let n_all = classes.height();
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();

        // The scatter: every row of the layout, coloured by its class.
        let scatter_note = match (&cols.layout, inputs.get(2)) {
            (Some([cx, cy]), Some(layout)) => {
                let pl = super::pl(ctx.node);
                let xy = layout
                    .select([ctx.id, cx.as_str(), cy.as_str()])
                    .map_err(&pl)?;
                let labels = classes.select([ctx.id, "label"]).map_err(&pl)?;
                let joined =
                    super::join::rows(&xy, &labels, ctx.id, ctx.id, true, "_right", ctx.node)?;
                let f = |name: &str| -> Result<Vec<f32>> {
                    Ok(joined
                        .column(name)
                        .map_err(&pl)?
                        .cast(&DataType::Float32)
                        .map_err(&pl)?
                        .f32()
                        .map_err(&pl)?
                        .iter()
                        .map(|v| v.unwrap_or(f32::NAN))
                        .collect())
                };
                let lab: Vec<i32> = joined
                    .column("label")
                    .map_err(super::pl(ctx.node))?
                    .i32()
                    .map_err(super::pl(ctx.node))?
                    .iter()
                    .map(|v| v.unwrap_or(-1))
                    .collect();
                let img = scatter::scatter(
                    &f(cx)?,
                    &f(cy)?,
                    &lab,
                    (self.width, self.height),
                    2,
                    true,
                    (cx.as_str(), cy.as_str()),
                )
                .img;
                files.push(("scatter.png".into(), canvas::png(&img)));
                Some(format!("{cx} against {cy}, {} galaxies: all of them as a density in grey, classes in colour; the central 98% on each axis at one scale, galaxies far beyond it in compressed bands past the dashed lines, the furthest 0.05% as ticks on the edge", joined.height()))
            }
            _ => None,
        };
        // Each numeric column's mean and spread over every galaxy: a class's profile is how
        // far its mean lies from it.
        let baseline: Vec<Option<(f64, f64)>> = cols
            .shown
            .iter()
            .map(|c| {
                let v = inputs[1].column(c).ok()?.cast(&DataType::Float64).ok()?;
                let xs: Vec<f64> = v
                    .f64()
                    .ok()?
                    .iter()
                    .flatten()
                    .filter(|x| x.is_finite())
                    .collect();
                let n = xs.len() as f64;
                let mu = xs.iter().sum::<f64>() / n.max(1.0);
                let sd = (xs.iter().map(|x| (x - mu) * (x - mu)).sum::<f64>() / n.max(1.0)).sqrt();
                (n > 1.0 && sd > 0.0).then_some((mu, sd))
            })
            .collect();
        let (html, failed) = self.html(
            &with_cat,
            n_all,
            &cols,
            &baseline,
            scatter_note.as_deref(),
            ctx,
            &mut files,
        )?;
        files.push(("index.html".into(), html.into_bytes()));
        let k = labels(&with_cat, ctx.node)?
            .iter()
            .copied()
            .max()
            .map_or(0, |m| m + 1);
        let mut summary = vec![format!(
            "{k} classes, {} of {n_all} galaxies ({:.2}%); report: index.html in this node's cache entry",
            with_cat.height(),
            100.0 * with_cat.height() as f64 / n_all.max(1) as f64
        )];
        if failed > 0 {
            summary.push(format!("{failed} gallery images could not be read (drawn as crossed squares; see index.html)"));
        }
        let mut out = Output::new(with_cat, summary);
        out.files = files;
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn html(
        &self,
        m: &DataFrame,
        n_all: usize,
        cols: &Columns,
        baseline: &[Option<(f64, f64)>],
        scatter_note: Option<&str>,
        ctx: &RunCtx,
        files: &mut Vec<(String, Vec<u8>)>,
    ) -> Result<(String, usize)> {
        let node = ctx.node;
        let lab = labels(m, node)?;
        let k = lab.iter().copied().max().map_or(0, |v| v + 1) as usize;
        let mut rows_of: Vec<Vec<usize>> = vec![Vec::new(); k];
        for (i, &l) in lab.iter().enumerate() {
            rows_of[l as usize].push(i);
        }
        let text = |name: &str| -> Result<Vec<String>> {
            let s = m
                .column(name)
                .map_err(super::pl(node))?
                .as_materialized_series()
                .cast(&DataType::String)
                .map_err(super::pl(node))?;
            Ok(s.str()
                .map_err(super::pl(node))?
                .iter()
                .map(|v| v.unwrap_or("").to_owned())
                .collect())
        };
        let numeric = |name: &str| -> Result<Vec<Option<f64>>> {
            let s = m
                .column(name)
                .map_err(super::pl(node))?
                .as_materialized_series()
                .cast(&DataType::Float64)
                .map_err(super::pl(node))?;
            Ok(s.f64()
                .map_err(super::pl(node))?
                .iter()
                .map(|v| v.filter(|x| x.is_finite()))
                .collect())
        };
        let prob = numeric("probability")?;
        let ids = text(ctx.id)?;
        let schema = m.schema();
        // Per-class statistics from the classes node (select-leaves / select-eom).
        let class_stat = |l: usize, what: &str| -> Option<f64> {
            ctx.input_details
                .first()?
                .get("classes")?
                .get(l)?
                .get(what)?
                .as_f64()
        };

        let mut h = String::new();
        let _ = write!(
            h,
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>dagrun report: {0}</title><style>{1}</style></head><body>\
             <h1>Classes found by <code>{0}</code></h1><p>{k} classes; {2} of {n_all} galaxies ({3:.2}%) are in a class. \
             Node <code>{4}</code>.</p>",
            esc(ctx.pipeline),
            render::html::STYLE,
            m.height(),
            100.0 * m.height() as f64 / n_all.max(1) as f64,
            esc(node)
        );
        if let Some(note) = scatter_note {
            let _ = write!(
                h,
                "<h2>Layout</h2><img src=\"scatter.png\" alt=\"layout coloured by class\" width=\"{}\"><p class=\"note\">{}. Numbers mark each class's median position.</p>",
                self.width,
                esc(note)
            );
        }
        // Class table: what matters first (size, persistence, stability, probability, the
        // catalogue's text columns such as a truth, and a profile: the columns whose class
        // mean lies furthest from all galaxies'), every column's class mean folded below.
        // Both sort by a click on a heading.
        let in_table: Vec<bool> = cols
            .shown
            .iter()
            .map(|c| Some(c) != cols.image.as_ref())
            .collect();
        let mut per_col: Vec<(bool, Vec<String>, Vec<Option<f64>>)> = Vec::new();
        for c in &cols.shown {
            let is_num = columns::is_numeric(schema.get(c).expect("shown column"));
            per_col.push(if is_num {
                (true, Vec::new(), numeric(c)?)
            } else {
                (false, text(c)?, Vec::new())
            });
        }
        let texts: Vec<usize> = (0..cols.shown.len())
            .filter(|&j| in_table[j] && !per_col[j].0)
            .collect();
        let nums: Vec<usize> = (0..cols.shown.len())
            .filter(|&j| in_table[j] && per_col[j].0)
            .collect();
        h.push_str("<h2>Classes</h2><table class=\"sort\"><tr><th>class</th><th>size</th><th>persistence</th><th>stability</th><th>mean probability</th>");
        for &j in &texts {
            let _ = write!(h, "<th>{}</th>", esc(&cols.shown[j]));
        }
        if nums.iter().any(|&j| baseline[j].is_some()) {
            h.push_str(
                "<th>profile (class mean − all galaxies', in their standard deviations)</th>",
            );
        }
        h.push_str("</tr>");
        // A class's profile: each numeric column's class mean minus all galaxies' mean, in
        // their standard deviations (ra/dec left out), largest first.
        let profile = |rows: &[usize]| -> Vec<(f64, &str)> {
            let mut z: Vec<(f64, &str)> = nums
                .iter()
                .filter(|&&j| !matches!(cols.shown[j].as_str(), "ra" | "dec"))
                .filter_map(|&j| {
                    let (mu, sd) = baseline[j]?;
                    let cm = mean(rows.iter().map(|&i| per_col[j].2[i]))?;
                    Some(((cm - mu) / sd, cols.shown[j].as_str()))
                })
                .collect();
            z.sort_by(|a, b| b.0.abs().total_cmp(&a.0.abs()).then(a.1.cmp(b.1)));
            z
        };
        let profiles: Vec<Vec<(f64, &str)>> = rows_of.iter().map(|rows| profile(rows)).collect();
        let swatch = |l: usize| {
            format!(
                "<a href=\"#c{l}\"><span class=\"sw\" style=\"background:{}\"></span>{l}</a>",
                render::hex(render::class_colour(l as i32))
            )
        };
        for (l, rows) in rows_of.iter().enumerate() {
            let mp = mean(rows.iter().map(|&i| prob[i]));
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
                swatch(l),
                rows.len(),
                fmt(class_stat(l, "persistence")),
                fmt(class_stat(l, "stability")),
                fmt(mp)
            );
            for &j in &texts {
                let t = &per_col[j].1;
                let mut counts: std::collections::BTreeMap<&str, usize> =
                    std::collections::BTreeMap::new();
                for &i in rows {
                    *counts.entry(t[i].as_str()).or_default() += 1;
                }
                let (top, c) = counts
                    .iter()
                    .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                    .map_or(("", 0), |(k, v)| (*k, *v));
                let _ = write!(
                    h,
                    "<td class=\"t\">{} ({:.0}%)</td>",
                    esc(top),
                    100.0 * c as f64 / rows.len().max(1) as f64
                );
            }
            if nums.iter().any(|&j| baseline[j].is_some()) {
                let shown: Vec<String> = profiles[l]
                    .iter()
                    .take(3)
                    .map(|(v, c)| format!("{} {:+.1}", esc(c), v))
                    .collect();
                let _ = write!(h, "<td class=\"t\">{}</td>", shown.join("<br>"));
            }
            h.push_str("</tr>");
        }
        h.push_str("</table>");
        if !nums.is_empty() {
            let _ = write!(h, "<details><summary>Class means of every column ({})</summary><table class=\"sort\"><tr><th>class</th>", nums.len());
            for &j in &nums {
                let _ = write!(h, "<th>{}</th>", esc(&cols.shown[j]));
            }
            h.push_str("</tr>");
            for (l, rows) in rows_of.iter().enumerate() {
                let _ = write!(h, "<tr><td>{}</td>", swatch(l));
                for &j in &nums {
                    let _ = write!(
                        h,
                        "<td>{}</td>",
                        fmt(mean(rows.iter().map(|&i| per_col[j].2[i])))
                    );
                }
                h.push_str("</tr>");
            }
            h.push_str("</table></details>");
        }
        h.push_str(SORT_SCRIPT);
        // Each class: a gallery of members when there are images, their rows otherwise.
        let paths = cols.image.as_deref().map(text).transpose()?;
        let mut failed = 0usize;
        let mut failures: Vec<(String, String, String)> = Vec::new();
        // A page per class with every member: id, probability, position (a Legacy Surveys
        // viewer link where `ra`/`dec` exist) and the text columns.
        let sky = match (
            cols.shown.iter().position(|c| c == "ra"),
            cols.shown.iter().position(|c| c == "dec"),
        ) {
            (Some(a), Some(b)) if per_col[a].0 && per_col[b].0 => Some((a, b)),
            _ => None,
        };
        for (l, rows) in rows_of.iter().enumerate() {
            let mut p = format!(
                "<!doctype html><html><head><meta charset=\"utf-8\"><title>Class {l}</title><style>{}</style></head><body><p><a href=\"../index.html#c{l}\">report</a></p>\
                 <h1><span class=\"sw\" style=\"background:{}\"></span>Class {l}: all {} members</h1><table class=\"sort\"><tr><th>{}</th><th>probability</th>",
                render::html::STYLE,
                render::hex(render::class_colour(l as i32)),
                rows.len(),
                esc(ctx.id)
            );
            if sky.is_some() {
                p.push_str("<th>ra</th><th>dec</th><th>viewer</th>");
            }
            for &j in &texts {
                let _ = write!(p, "<th>{}</th>", esc(&cols.shown[j]));
            }
            p.push_str("</tr>");
            for &i in rows {
                let _ = write!(
                    p,
                    "<tr><td class=\"t\">{}</td><td>{}</td>",
                    esc(&ids[i]),
                    fmt(prob[i])
                );
                if let Some((a, b)) = sky {
                    match (per_col[a].2[i], per_col[b].2[i]) {
                        (Some(ra), Some(dec)) => {
                            let _ = write!(
                                p,
                                "<td>{ra:.5}</td><td>{dec:.5}</td><td><a href=\"https://www.legacysurvey.org/viewer?ra={ra:.5}&amp;dec={dec:.5}&amp;layer=ls-dr10&amp;zoom=16\">view</a></td>"
                            );
                        }
                        _ => p.push_str("<td>–</td><td>–</td><td></td>"),
                    }
                }
                for &j in &texts {
                    let _ = write!(p, "<td class=\"t\">{}</td>", esc(&per_col[j].1[i]));
                }
                p.push_str("</tr>");
            }
            p.push_str("</table>");
            p.push_str(SORT_SCRIPT);
            p.push_str("</body></html>\n");
            files.push((format!("classes/class_{l}.html"), p.into_bytes()));
        }
        let mut fig: Vec<gallery::FigureRow> = Vec::new();
        let fig_at = h.len();
        for ((l, rows), pick) in rows_of.iter().enumerate().zip(self.picks(&lab)) {
            let _ = write!(
                h,
                "<h2 id=\"c{l}\"><span class=\"sw\" style=\"background:{}\"></span>Class {l} — {} galaxies <a class=\"note\" href=\"classes/class_{l}.html\">every member</a></h2>",
                render::hex(render::class_colour(l as i32)),
                rows.len()
            );
            if let Some(paths) = &paths {
                let tiles: Vec<std::result::Result<image::RgbImage, String>> = {
                    use rayon::prelude::*;
                    pick.par_iter()
                        .map(|&i| {
                            gallery::thumbnail(
                                &super::resolve_path(self.image_dir.as_deref(), &paths[i]),
                                self.thumb,
                            )
                        })
                        .collect()
                };
                for (t, &i) in tiles.iter().zip(&pick) {
                    if let Err(e) = t {
                        failed += 1;
                        failures.push((ids[i].clone(), paths[i].clone(), e.clone()));
                    }
                }
                fig.push(gallery::FigureRow {
                    title: format!("class {l}"),
                    lines: vec![
                        format!("{} galaxies", rows.len()),
                        class_stat(l, "persistence")
                            .map_or(String::new(), |p| format!("persistence {p:.3}")),
                    ],
                    colour: render::class_colour(l as i32),
                    // Cut again at twice the size: the figure is drawn at 2x.
                    tiles: {
                        use rayon::prelude::*;
                        pick.par_iter()
                            .take(FIGURE_TILES)
                            .map(|&i| {
                                gallery::thumbnail(
                                    &super::resolve_path(self.image_dir.as_deref(), &paths[i]),
                                    2 * self.thumb,
                                )
                            })
                            .collect()
                    },
                });
                let img = gallery::montage(&tiles, self.thumb, 12, 3);
                let name = format!("gallery/class_{l}.png");
                let _ = write!(
                    h,
                    "<img src=\"{name}\" alt=\"class {l}: {} random members\"><p class=\"note\">{} of {} members, chosen at random (seed {}); ids: {}</p>",
                    pick.len(),
                    pick.len(),
                    rows.len(),
                    self.seed,
                    pick.iter().map(|&i| esc(&ids[i])).collect::<Vec<_>>().join(", ")
                );
                files.push((name, canvas::png(&img)));
                continue;
            }
            if !profiles[l].is_empty() {
                let top: Vec<(String, f64)> = profiles[l]
                    .iter()
                    .take(8)
                    .map(|(v, c)| (c.to_string(), *v))
                    .collect();
                h.push_str(&render::html::profile(&top));
            }
            let _ = write!(h, "<details><summary>{} of its members, chosen at random</summary><table><tr><th>{}</th><th>probability</th>", pick.len(), esc(ctx.id));
            for c in &cols.shown {
                let _ = write!(h, "<th>{}</th>", esc(c));
            }
            h.push_str("</tr>");
            for &i in &pick {
                let _ = write!(
                    h,
                    "<tr><td class=\"t\">{}</td><td>{}</td>",
                    esc(&ids[i]),
                    fmt(prob[i])
                );
                for (is_num, t, v) in &per_col {
                    if *is_num {
                        let _ = write!(h, "<td>{}</td>", fmt(v[i]));
                    } else {
                        let _ = write!(h, "<td class=\"t\">{}</td>", esc(&t[i]));
                    }
                }
                h.push_str("</tr>");
            }
            h.push_str("</table></details>");
        }
        if !fig.is_empty() {
            let img = gallery::figure(&fig, self.thumb, 2);
            let html = format!(
                "<h2>Class figure</h2><img src=\"classes.png\" alt=\"a row of members per class\" width=\"{}\"><p class=\"note\">A row per class: its size, persistence and {FIGURE_TILES} members chosen at random (the first of each class's gallery below); for a paper or a talk.</p>",
                img.width() / 2
            );
            files.push(("classes.png".into(), canvas::png(&img)));
            h.insert_str(fig_at, &html);
        }
        if !failures.is_empty() {
            let _ = write!(h, "<h2>Images that could not be read ({})</h2><table><tr><th>{}</th><th>path</th><th>error</th></tr>", failures.len(), esc(ctx.id));
            for (id, p, e) in &failures {
                let _ = write!(h, "<tr><td class=\"t\">{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td></tr>", esc(id), esc(p), esc(e));
            }
            h.push_str("</table>");
        }
        let _ = writeln!(
            h,
            "<p class=\"note\">dagrun {}</p></body></html>",
            env!("CARGO_PKG_VERSION")
        );
        Ok((h, failed))
    }
}

/// Members per class in the class figure (`classes.png`).
const FIGURE_TILES: usize = 8;

/// Sorts a `table.sort` by the column whose heading is clicked (numbers as numbers, a
/// second click reverses); inline, so the report opens offline.
const SORT_SCRIPT: &str = "<script>document.querySelectorAll('table.sort th').forEach(function(th){th.style.cursor='pointer';th.title='sort';\
th.onclick=function(){var tb=th.closest('table'),i=Array.prototype.indexOf.call(th.parentNode.children,th),rows=Array.prototype.slice.call(tb.rows,1),\
d=th.dataset.d==='1'?-1:1;th.dataset.d=d===1?'1':'0';var v=function(r){var t=r.cells[i].textContent,n=parseFloat(t.replace(/[^0-9eE+.-]/g,''));return isNaN(n)?t:n};\
rows.sort(function(a,b){var x=v(a),y=v(b);return (x<y?-1:x>y?1:0)*d});rows.forEach(function(r){tb.appendChild(r)})}})</script>";

fn labels(m: &DataFrame, node: &str) -> Result<Vec<i32>> {
    let c = m.column("label").map_err(super::pl(node))?;
    c.i32()
        .map_err(super::pl(node))?
        .iter()
        .map(|v| v.ok_or_else(|| Error::input(node, "null label")))
        .collect()
}

fn mean(v: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let (mut s, mut n) = (0.0, 0usize);
    for x in v.flatten() {
        s += x;
        n += 1;
    }
    (n > 0).then(|| s / n as f64)
}

fn fmt(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |x| format!("{x:.3}"))
}

impl super::Kind for Report {
    super::kind_basics!("report", Between(2, 3));

    /// Relative image paths resolve against `image_dir`, by default the folder of the
    /// catalogue file its catalogue input's rows come from.
    fn expand(&self, v: usize, draft: &mut Draft) -> Result<Option<super::Op>> {
        let inputs = &draft.nodes[v].inputs;
        if self.image_dir.is_some() || inputs.len() < 2 {
            return Ok(None);
        }
        let image_dir = draft.source_dir(inputs[1]);
        Ok(Some(super::Op::Report(Report {
            image_dir,
            ..self.clone()
        })))
    }

    fn output_schema(&self, inputs: &[SchemaRef], id: &str) -> Result<super::SchemaResult<Schema>> {
        Ok(self.schema(inputs, id))
    }

    fn compute(&self, inputs: &[std::sync::Arc<DataFrame>], ctx: &RunCtx) -> Result<Output> {
        self.run(inputs, ctx)
    }

    fn reads_data_files(&self) -> bool {
        true
    }

    fn data_dir(&self) -> Option<&std::path::Path> {
        self.image_dir.as_deref()
    }

    fn data_files(
        &self,
        inputs: &[std::sync::Arc<DataFrame>],
        id: &str,
        node: &str,
    ) -> Result<Option<Vec<Option<std::path::PathBuf>>>> {
        self.images(inputs, id, node)
    }
}

impl super::Parse for Report {
    const NAMES: &'static [&'static str] = &["report"];

    fn parse(
        _name: &str,
        p: &mut crate::params::Params,
        base_dir: &std::path::Path,
    ) -> Result<Self> {
        Self::parse(p, base_dir)
    }
}
