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

use std::path::PathBuf;

use polars::prelude::*;
use serde::Serialize;

use super::draft::Draft;
use super::{columns, Output, RunCtx, SchemaError, SchemaResult};
use crate::error::{Error, Result};
use crate::numeric::rng::Rng;
use crate::params::Params;
use crate::render::gallery;
use crate::render::report::{
    self, ClassCard, Column, Galleries, Layout, LayoutPoints, ReportData, Unreadable, Values,
};

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

    /// The members table, and beside it the report's files in order: the layout plot, a page
    /// per class, the galleries and the class figure, then `index.html`.
    pub fn run(&self, inputs: &[std::sync::Arc<DataFrame>], ctx: &RunCtx) -> Result<Output> {
        let (with_cat, cols) = self.members(inputs, ctx.id, ctx.node)?;
        let n_all = inputs[0].height();
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        let layout = match self.layout_points(inputs, &cols, ctx)? {
            Some(points) => {
                let png = report::scatter_png(&points, (self.width, self.height));
                files.push(("scatter.png".into(), png));
                Some(Layout {
                    galaxies: points.x.len(),
                    axes: points.axes,
                    width: self.width,
                })
            }
            None => None,
        };
        let data = self.gather(&with_cat, inputs, &cols, layout, ctx)?;
        let paths = cols
            .image
            .as_deref()
            .map(|c| super::columns::strings(&with_cat, c, ctx.node))
            .transpose()?;
        for card in &data.classes {
            let page = report::class_page(&data, card);
            files.push((
                format!("classes/class_{}.html", card.label),
                page.into_bytes(),
            ));
        }
        let galleries = match &paths {
            Some(paths) => self.galleries(&data, paths, &mut files),
            None => Galleries::default(),
        };
        files.push((
            "index.html".into(),
            report::page(&data, &galleries).into_bytes(),
        ));
        let (k, failed) = (data.classes.len(), galleries.unreadable.len());
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

    /// The scatter's points: every row of the layout with its class; `None` without a layout.
    fn layout_points(
        &self,
        inputs: &[std::sync::Arc<DataFrame>],
        cols: &Columns,
        ctx: &RunCtx,
    ) -> Result<Option<LayoutPoints>> {
        let (Some([cx, cy]), Some(layout)) = (&cols.layout, inputs.get(2)) else {
            return Ok(None);
        };
        let pl = super::pl(ctx.node);
        let xy = layout
            .select([ctx.id, cx.as_str(), cy.as_str()])
            .map_err(&pl)?;
        let labels = inputs[0].select([ctx.id, "label"]).map_err(&pl)?;
        let joined = super::join::rows(&xy, &labels, ctx.id, ctx.id, true, "_right", ctx.node)?;
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
        let label: Vec<i32> = joined
            .column("label")
            .map_err(super::pl(ctx.node))?
            .i32()
            .map_err(super::pl(ctx.node))?
            .iter()
            .map(|v| v.unwrap_or(-1))
            .collect();
        Ok(Some(LayoutPoints {
            x: f(cx)?,
            y: f(cy)?,
            label,
            axes: [cx.clone(), cy.clone()],
        }))
    }

    /// What the page shows, from the members table `m` (ordered by class), the inputs (the
    /// classes' size, each catalogue column's spread over all galaxies) and the classes
    /// node's statistics.
    fn gather(
        &self,
        m: &DataFrame,
        inputs: &[std::sync::Arc<DataFrame>],
        cols: &Columns,
        layout: Option<Layout>,
        ctx: &RunCtx,
    ) -> Result<ReportData> {
        let node = ctx.node;
        let lab = labels(m, node)?;
        let probability = numeric(m, "probability", node)?;
        let ids = super::columns::strings(m, ctx.id, node)?;
        let columns = member_columns(m, cols, node)?;
        let baseline = baseline(&inputs[1], &cols.shown);
        let mut data = ReportData {
            pipeline: ctx.pipeline.to_owned(),
            node: node.to_owned(),
            id_column: ctx.id.to_owned(),
            galaxies: inputs[0].height(),
            members: m.height(),
            layout,
            ids,
            probability,
            sky: None,
            profiled: false,
            images: cols.image.is_some(),
            seed: self.seed,
            classes: Vec::new(),
            columns,
        };
        let nums = data.nums();
        data.profiled = nums.iter().any(|&j| baseline[j].is_some());
        data.sky = match (
            cols.shown.iter().position(|c| c == "ra"),
            cols.shown.iter().position(|c| c == "dec"),
        ) {
            (Some(a), Some(b)) if data.columns[a].is_numeric() && data.columns[b].is_numeric() => {
                Some((a, b))
            }
            _ => None,
        };
        data.classes = rows_of(&lab)
            .into_iter()
            .zip(self.picks(&lab))
            .enumerate()
            .map(|(l, (rows, pick))| class_card(&data, &baseline, ctx, l, rows, pick))
            .collect();
        Ok(data)
    }

    /// Each class's gallery PNG (into `files`, as `gallery/class_N.png`), then the class
    /// figure (`classes.png`), from the images at `paths` (one per member).
    fn galleries(
        &self,
        data: &ReportData,
        paths: &[String],
        files: &mut Vec<(String, Vec<u8>)>,
    ) -> Galleries {
        use rayon::prelude::*;
        let thumbnails = |pick: &[usize], size: u32| -> Vec<Tile> {
            pick.par_iter()
                .map(|&i| {
                    gallery::thumbnail(
                        &super::resolve_path(self.image_dir.as_deref(), &paths[i]),
                        size,
                    )
                })
                .collect()
        };
        let mut out = Galleries::default();
        let mut fig: Vec<gallery::FigureRow> = Vec::new();
        for card in &data.classes {
            let tiles = thumbnails(&card.pick, self.thumb);
            for (t, &i) in tiles.iter().zip(&card.pick) {
                if let Err(e) = t {
                    out.unreadable.push(Unreadable {
                        id: data.ids[i].clone(),
                        path: paths[i].clone(),
                        error: e.clone(),
                    });
                }
            }
            // Cut again at twice the size: the figure is drawn at 2x.
            let first = &card.pick[..card.pick.len().min(report::FIGURE_TILES)];
            let big = thumbnails(first, 2 * self.thumb);
            fig.push(report::figure_row(card, big));
            let png = report::gallery_png(&tiles, self.thumb);
            files.push((format!("gallery/class_{}.png", card.label), png));
        }
        if !fig.is_empty() {
            let figure = report::figure_png(&fig, self.thumb);
            files.push(("classes.png".into(), figure.png));
            out.figure_width = Some(figure.width);
        }
        out
    }
}

/// A gallery tile: a thumbnail, or why the image could not be read.
type Tile = std::result::Result<image::RgbImage, String>;

/// Class `l` of the page: its members `rows` and drawn `pick`, the classes node's
/// persistence and stability, and its statistics over `data`'s columns.
fn class_card(
    data: &ReportData,
    baseline: &[Option<(f64, f64)>],
    ctx: &RunCtx,
    l: usize,
    rows: Vec<usize>,
    pick: Vec<usize>,
) -> ClassCard {
    let column_mean = |j: usize| mean(rows.iter().map(|&i| data.columns[j].number(i)));
    let commonest = data
        .texts()
        .into_iter()
        .map(|j| commonest(&data.columns[j], &rows))
        .collect();
    let nums = data.nums();
    // The profile: each numeric column's class mean minus all galaxies' mean, in their
    // standard deviations (ra/dec left out), largest first.
    let mut profile: Vec<(f64, String)> = nums
        .iter()
        .filter(|&&j| !matches!(data.columns[j].name.as_str(), "ra" | "dec"))
        .filter_map(|&j| {
            let (mu, sd) = baseline[j]?;
            let cm = column_mean(j)?;
            Some(((cm - mu) / sd, data.columns[j].name.clone()))
        })
        .collect();
    profile.sort_by(|a, b| b.0.abs().total_cmp(&a.0.abs()).then(a.1.cmp(&b.1)));
    ClassCard {
        label: l,
        persistence: class_stat(ctx, l, "persistence"),
        stability: class_stat(ctx, l, "stability"),
        mean_probability: mean(rows.iter().map(|&i| data.probability[i])),
        commonest,
        means: nums.iter().map(|&j| column_mean(j)).collect(),
        profile,
        rows,
        pick,
    }
}

/// A per-class statistic from the classes node (select-leaves / select-eom).
fn class_stat(ctx: &RunCtx, l: usize, what: &str) -> Option<f64> {
    ctx.input_details
        .first()?
        .get("classes")?
        .get(l)?
        .get(what)?
        .as_f64()
}

/// A text column's most common value among `rows` (the first in order on a tie) and its
/// share of them in percent.
fn commonest(column: &Column, rows: &[usize]) -> (String, f64) {
    let Values::Text(t) = &column.values else {
        unreachable!("a text column");
    };
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for &i in rows {
        *counts.entry(t[i].as_str()).or_default() += 1;
    }
    let (top, c) = counts
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map_or(("", 0), |(k, v)| (*k, *v));
    (top.to_owned(), 100.0 * c as f64 / rows.len().max(1) as f64)
}

/// Each shown column's values for every member: numbers for numeric columns, text otherwise.
fn member_columns(m: &DataFrame, cols: &Columns, node: &str) -> Result<Vec<Column>> {
    let schema = m.schema();
    cols.shown
        .iter()
        .map(|c| {
            let values = if columns::is_numeric(schema.get(c).expect("shown column")) {
                Values::Number(numeric(m, c, node)?)
            } else {
                Values::Text(super::columns::strings(m, c, node)?)
            };
            Ok(Column {
                name: c.clone(),
                in_table: Some(c) != cols.image.as_ref(),
                values,
            })
        })
        .collect()
}

/// Each numeric column's mean and spread over every galaxy of the catalogue (`None` for
/// text or constant columns): a class's profile is how far its mean lies from it.
fn baseline(catalogue: &DataFrame, shown: &[String]) -> Vec<Option<(f64, f64)>> {
    shown
        .iter()
        .map(|c| {
            let v = catalogue.column(c).ok()?.cast(&DataType::Float64).ok()?;
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
        .collect()
}

/// Each class's members (indices into `lab`), in order.
fn rows_of(lab: &[i32]) -> Vec<Vec<usize>> {
    let k = lab.iter().copied().max().map_or(0, |v| v + 1) as usize;
    let mut rows_of: Vec<Vec<usize>> = vec![Vec::new(); k];
    for (i, &l) in lab.iter().enumerate() {
        rows_of[l as usize].push(i);
    }
    rows_of
}

/// Column `name` of `m` as numbers (nulls and non-finite values `None`).
fn numeric(m: &DataFrame, name: &str, node: &str) -> Result<Vec<Option<f64>>> {
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
}

/// The members' labels (a null is an error).
fn labels(m: &DataFrame, node: &str) -> Result<Vec<i32>> {
    let c = m.column("label").map_err(super::pl(node))?;
    c.i32()
        .map_err(super::pl(node))?
        .iter()
        .map(|v| v.ok_or_else(|| Error::input(node, "null label")))
        .collect()
}

/// The mean of the values present; `None` without any.
fn mean(v: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let (mut s, mut n) = (0.0, 0usize);
    for x in v.flatten() {
        s += x;
        n += 1;
    }
    (n > 0).then(|| s / n as f64)
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
