//! `embed`: run an ONNX image encoder over the cutouts a catalogue points at.
//!
//! Input: a catalogue with an image-path column (`image_column`, default `file_loc`, as in
//! Zoobot's catalogues); relative paths are resolved against `base_dir` (default: the
//! folder of the catalogue file the pipeline reads). `model` is an ONNX file; its content
//! hash is part of the key. Preprocessing follows Zoobot's prediction path: decode (JPEG,
//! PNG), RGB (or grey with `greyscale = true`) scaled to 0–1, the central `crop` fraction of
//! the square cut out, resized (triangle filter, i.e. bilinear with antialiasing) to the
//! model's input size, optional per-channel `mean` / `std`, channel order (NCHW or NHWC)
//! from the model's input shape. Batches of `batch_size` are decoded in parallel while the
//! previous batch runs (`threads` intra-op threads, default all). `output` picks a model
//! output by name (default: the first).
//!
//! Output: the id and `{prefix}0 … {prefix}{d-1}` (Float32), one row per image that could be
//! used, in catalogue order. Images that are missing or cannot be decoded are left out and
//! listed, with the error, in `failures.parquet` beside the output (and counted in the
//! summary); the run goes on unless none could be used.
//!
//! The key holds the bytes of every image (one digest over the rows' content hashes, made
//! by the executor from [`Embed::images`] with a stat cache), never their paths or
//! `base_dir`: a cutout re-made in place recomputes the node (or its shard), and the same
//! bytes moved to another folder recompute nothing.
//!
//! Work is kept in blocks ([`blocks`]: content-defined, about 1,024 rows each, cut where
//! an id hashes to zero), each a part of its own (`RunCtx::parts`) keyed by its ids and
//! images' bytes. When the node's key changes, blocks found are read back and only the
//! others are embedded: galaxies appended to a catalogue cost their own rows plus the
//! last block (of each shard); an edited cutout costs its block. Batches start at each
//! block's first row, so a block's features never depend on its neighbours, and a run
//! that reuses blocks gives the bytes of a run from nothing. A block is kept as soon as
//! it is done, so a killed run loses at most the blocks in flight.

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use polars::prelude::*;
use rayon::prelude::*;
use serde::Serialize;

use super::draft::Draft;
use super::{Output, RunCtx, SchemaError, SchemaResult};
use crate::error::{Error, Result};
use crate::onnx::{Model, Port};
use crate::params::Params;
use crate::render::gallery;

pub const VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize)]
pub struct Embed {
    /// The ONNX file (enters the key by content).
    #[serde(skip)]
    pub model: PathBuf,
    pub image_column: String,
    /// Where relative image paths are resolved (set at validation when not given).
    #[serde(skip)]
    pub base_dir: Option<PathBuf>,
    /// Input size in pixels; `None`: the model's.
    pub size: Option<u32>,
    pub crop: f64,
    pub greyscale: bool,
    pub mean: Option<Vec<f64>>,
    pub std: Option<Vec<f64>>,
    pub output: Option<String>,
    pub prefix: String,
    /// Not in the key: they change speed only.
    #[serde(skip)]
    pub batch_size: usize,
    #[serde(skip)]
    pub threads: Option<usize>,
    /// Split into this many shards (validation turns the node into split/shard/merge nodes).
    #[serde(skip)]
    pub shards: u32,
}

/// What a model takes and gives.
struct Plan {
    input: String,
    layout: Layout,
    output: String,
    dim: usize,
}

/// How a model wants its input.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Layout {
    size: u32,
    channels: usize,
    nchw: bool,
}

impl Embed {
    pub fn parse(p: &mut Params, base_dir: &Path) -> Result<Self> {
        let model = base_dir.join(p.req_string("model")?);
        let image_column = p
            .string("image_column")?
            .unwrap_or_else(|| "file_loc".into());
        let img_dir = p.string("base_dir")?.map(|d| base_dir.join(d));
        let size = p
            .int("size")?
            .map(|s| {
                if (8..=4096).contains(&s) {
                    Ok(s as u32)
                } else {
                    Err(p.error("size", "must be between 8 and 4096"))
                }
            })
            .transpose()?;
        let crop = p.float_in("crop", 1.0, 0.05, 1.0)?;
        let greyscale = p.bool("greyscale", false)?;
        let mut triple = |name: &'static str| -> Result<Option<Vec<f64>>> {
            let v = p.floats(name)?;
            if let Some(v) = &v {
                if v.len() != 1 && v.len() != 3 {
                    return Err(p.error(name, "give one value or one per channel (three)"));
                }
            }
            Ok(v)
        };
        let mean = triple("mean")?;
        let std = triple("std")?;
        if std.as_ref().is_some_and(|s| s.iter().any(|&x| x <= 0.0)) {
            return Err(p.error("std", "must be positive"));
        }
        let output = p.string("output")?;
        let prefix = p.string("prefix")?.unwrap_or_else(|| "feat_".into());
        let batch_size = p.int_in("batch_size", Some(32), 1, 4096)? as usize;
        let threads = p
            .int("threads")?
            .map(|t| {
                if t >= 1 {
                    Ok(t as usize)
                } else {
                    Err(p.error("threads", "must be at least 1"))
                }
            })
            .transpose()?;
        let shards = p.int_in("shards", Some(1), 1, 100_000)? as u32;
        Ok(Embed {
            model,
            image_column,
            base_dir: img_dir,
            size,
            crop,
            greyscale,
            mean,
            std,
            output,
            prefix,
            batch_size,
            threads,
            shards,
        })
    }

    pub fn schema(&self, input: &Schema, id: &str) -> SchemaResult<Schema> {
        match input.get(&self.image_column) {
            None => {
                return Err(SchemaError::new(
                    "image_column",
                    format!("the input has no column `{}`", self.image_column),
                ))
            }
            Some(DataType::String) => {}
            Some(dt) => {
                return Err(SchemaError::new(
                    "image_column",
                    format!(
                        "column `{}` is {dt}, not text (image paths)",
                        self.image_column
                    ),
                ))
            }
        }
        if !self.model.is_file() {
            return Err(SchemaError::new(
                "model",
                format!("model file `{}` not found", self.model.display()),
            ));
        }
        // The feature count comes from the model itself.
        let (inputs, outputs) =
            crate::onnx::ports(&self.model).map_err(|e| SchemaError::new("model", e))?;
        let plan = self
            .inspect(&inputs, &outputs)
            .map_err(|(param, e)| SchemaError::new(param, e))?;
        let mut s = Schema::default();
        s.insert(id.into(), input.get(id).cloned().unwrap_or(DataType::Int64));
        for j in 0..plan.dim {
            s.insert(format!("{}{j}", self.prefix).into(), DataType::Float32);
        }
        Ok(s)
    }

    /// What the model takes and gives; the error names the parameter to change.
    fn inspect(
        &self,
        inputs: &[Port],
        outputs: &[Port],
    ) -> std::result::Result<Plan, (&'static str, String)> {
        let image = image_input(inputs)?;
        let size = self.input_size(&image)?;
        for (name, v) in [("mean", &self.mean), ("std", &self.std)] {
            if let Some(v) = v {
                if v.len() != 1 && v.len() != image.channels {
                    return Err((
                        name,
                        format!(
                            "{} values but the model takes {} channels",
                            v.len(),
                            image.channels
                        ),
                    ));
                }
            }
        }
        let (output, dim) = self.output_port(outputs)?;
        Ok(Plan {
            input: image.name,
            layout: Layout {
                size,
                channels: image.channels,
                nchw: image.nchw,
            },
            output,
            dim,
        })
    }

    /// The image size to feed: `size` if given (and the model's, where it fixes one), else
    /// the model's square size.
    fn input_size(&self, image: &ImageInput) -> std::result::Result<u32, (&'static str, String)> {
        match (self.size, image.h, image.w) {
            (Some(want), h, w) if (h > 0 && h != want as i64) || (w > 0 && w != want as i64) => {
                Err((
                    "size",
                    format!("`size = {want}` but the model takes {h} x {w} images"),
                ))
            }
            (Some(want), _, _) => Ok(want),
            (None, h, w) if h > 0 && h == w => Ok(h as u32),
            (None, h, w) => Err((
                "size",
                format!("the model's input size is {h} x {w}: set `size`"),
            )),
        }
    }

    /// The model output used (`output`, else the first) and its values per image.
    fn output_port(
        &self,
        outputs: &[Port],
    ) -> std::result::Result<(String, usize), (&'static str, String)> {
        let out = match &self.output {
            Some(o) => outputs.iter().find(|p| &p.name == o).ok_or_else(|| {
                let names: Vec<&str> = outputs.iter().map(|p| p.name.as_str()).collect();
                (
                    "output",
                    format!(
                        "the model has no output `{o}` (outputs: {})",
                        names.join(", ")
                    ),
                )
            })?,
            None => outputs
                .first()
                .ok_or(("model", "the model has no output".to_owned()))?,
        };
        let dims: Vec<i64> = out.shape.iter().skip(1).copied().collect();
        if !out.is_f32 || dims.is_empty() || dims.iter().any(|&d| d <= 0) {
            return Err((
                "output",
                format!(
                    "output `{}` must be a float tensor of fixed size per image, found {:?}",
                    out.name, out.shape
                ),
            ));
        }
        Ok((out.name.clone(), dims.iter().product::<i64>() as usize))
    }

    /// The image column as given (`None`: null).
    fn paths(&self, input: &DataFrame, node: &str) -> Result<Vec<Option<String>>> {
        Ok(input
            .column(&self.image_column)
            .map_err(super::pl(node))?
            .str()
            .map_err(super::pl(node))?
            .iter()
            .map(|s| s.map(str::to_owned))
            .collect())
    }

    /// The image each row is read from, resolved against `base_dir`; their bytes enter the key.
    pub fn images(&self, input: &DataFrame, node: &str) -> Result<Vec<Option<PathBuf>>> {
        Ok(self.resolve(&self.paths(input, node)?))
    }

    fn resolve(&self, paths: &[Option<String>]) -> Vec<Option<PathBuf>> {
        paths
            .iter()
            .map(|p| {
                p.as_deref()
                    .map(|p| super::resolve_path(self.base_dir.as_deref(), p))
            })
            .collect()
    }

    pub fn run(&self, input: &DataFrame, ctx: &RunCtx) -> Result<Output> {
        let node = ctx.node;
        let threads = self.threads.unwrap_or_else(rayon::current_num_threads);
        let mut model = Model::load(&self.model, threads).map_err(|e| Error::input(node, e))?;
        let plan = self
            .inspect(&model.inputs, &model.outputs)
            .map_err(|(_, e)| Error::input(node, e))?;
        let paths = self.paths(input, node)?;
        let files = self.resolve(&paths);
        if paths.is_empty() {
            return self.empty(input, &plan, ctx);
        }
        let mut work = self.find_blocks(input, &plan, ctx)?;
        self.embed_blocks(&mut model, &plan, &files, &mut work, ctx)?;
        work.failures.sort_by_key(|f| f.0);
        let keep = usable_rows(&work, &paths, node)?;
        let df = self.frame(input, &work.features, &keep, plan.dim, ctx)?;
        self.output(df, input, &plan, &paths, &work, ctx)
    }

    /// The output of an empty input: the id and feature columns, no rows.
    fn empty(&self, input: &DataFrame, plan: &Plan, ctx: &RunCtx) -> Result<Output> {
        let node = ctx.node;
        let mut cols = vec![input.column(ctx.id).map_err(super::pl(node))?.clone()];
        cols.extend(
            (0..plan.dim)
                .map(|j| Column::new(format!("{}{j}", self.prefix).into(), Vec::<f32>::new())),
        );
        let df = DataFrame::new(0, cols).map_err(super::pl(node))?;
        Ok(Output::new(df, vec!["no images (empty input)".into()]))
    }

    /// Blocks of rows, each kept as a part: found ones are read back, the others left to
    /// compute (in batches that start at the block's first row, so a block's output never
    /// depends on its neighbours).
    fn find_blocks(&self, input: &DataFrame, plan: &Plan, ctx: &RunCtx) -> Result<Work> {
        let node = ctx.node;
        let (n, d) = (input.height(), plan.dim);
        let ids = super::columns::strings(input, ctx.id, node)?;
        let hashes = ctx
            .data_hashes
            .ok_or_else(|| Error::input(node, "the executor gave no image hashes"))?;
        let blocks = blocks(&ids);
        let mut features: Vec<Option<Vec<f32>>> = vec![None; n];
        let mut failures: Vec<(usize, String)> = Vec::new();
        let mut todo: Vec<(std::ops::Range<usize>, String)> = Vec::new();
        let mut reused = 0usize;
        for r in &blocks {
            let id = self.block_id(&ids[r.clone()], &hashes[r.clone()], &plan.output, d);
            match ctx.parts.get(&id)? {
                Some(part) => {
                    self.unpack(&part, r.clone(), d, &mut features, &mut failures, node)?;
                    reused += r.len();
                }
                None => todo.push((r.clone(), id)),
            }
        }
        Ok(Work {
            ids,
            blocks: blocks.len(),
            features,
            failures,
            todo,
            reused,
        })
    }

    /// Embed the blocks left to compute, each kept as a part as soon as it is done. Decode
    /// batch b+1 (rayon) while batch b runs: a channel of depth one between them.
    fn embed_blocks(
        &self,
        model: &mut Model,
        plan: &Plan,
        files: &[Option<PathBuf>],
        work: &mut Work,
        ctx: &RunCtx,
    ) -> Result<()> {
        let node = ctx.node;
        let bar = ctx.progress.bar(
            node,
            "images",
            work.todo.iter().map(|(r, _)| r.len() as u64).sum(),
        );
        let batches = self.batches(&work.todo);
        let mut left: Vec<usize> = work.todo.iter().map(|(r, _)| r.len()).collect();
        let layout = plan.layout;
        let (tx, rx) = mpsc::sync_channel::<Decoded>(1);
        let res: Result<()> = std::thread::scope(|s| {
            let batches = &batches;
            s.spawn(move || {
                for b in batches {
                    let images = (b.start..b.end)
                        .into_par_iter()
                        .map(|i| match &files[i] {
                            None => Err("no image path (null)".to_owned()),
                            Some(f) => preprocess(f, layout, self),
                        })
                        .collect();
                    let decoded = Decoded {
                        block: b.block,
                        start: b.start,
                        images,
                    };
                    if tx.send(decoded).is_err() {
                        return;
                    }
                }
            });
            for batch in rx {
                run_batch(model, plan, &batch, work, node)?;
                let b = batch.block;
                bar.inc(batch.images.len() as u64);
                left[b] -= batch.images.len();
                if left[b] == 0 {
                    let (r, id) = &work.todo[b];
                    let (ids, d) = (&work.ids[r.clone()], plan.dim);
                    let part =
                        self.pack(ids, r.clone(), d, &work.features, &work.failures, node)?;
                    ctx.parts.put(id, part)?;
                }
            }
            Ok(())
        });
        bar.finish();
        res
    }

    /// The batches of the blocks left to compute, each within one block and starting at its
    /// first row or `batch_size` rows after the last.
    fn batches(&self, todo: &[(std::ops::Range<usize>, String)]) -> Vec<Batch> {
        todo.iter()
            .enumerate()
            .flat_map(|(block, (r, _))| {
                r.clone().step_by(self.batch_size).map(move |start| Batch {
                    block,
                    start,
                    end: (start + self.batch_size).min(r.end),
                })
            })
            .collect()
    }

    /// The output table: the id and the features of the `keep` rows.
    fn frame(
        &self,
        input: &DataFrame,
        features: &[Option<Vec<f32>>],
        keep: &[usize],
        d: usize,
        ctx: &RunCtx,
    ) -> Result<DataFrame> {
        let node = ctx.node;
        let idx = IdxCa::from_vec("idx".into(), keep.iter().map(|&i| i as IdxSize).collect());
        let ids = input
            .column(ctx.id)
            .map_err(super::pl(node))?
            .take(&idx)
            .map_err(super::pl(node))?;
        let mut cols = vec![ids];
        for j in 0..d {
            let v: Vec<f32> = keep
                .iter()
                .map(|&i| features[i].as_ref().expect("kept")[j])
                .collect();
            cols.push(Column::new(format!("{}{j}", self.prefix).into(), v));
        }
        DataFrame::new(keep.len(), cols).map_err(super::pl(node))
    }

    /// The summary lines, the manifest details and `failures.parquet` (where images failed)
    /// around the output table `df`.
    fn output(
        &self,
        df: DataFrame,
        input: &DataFrame,
        plan: &Plan,
        paths: &[Option<String>],
        work: &Work,
        ctx: &RunCtx,
    ) -> Result<Output> {
        let embedded = df.height();
        let (n, d, layout, output_name) = (paths.len(), plan.dim, plan.layout, &plan.output);
        let (failures, reused) = (&work.failures, work.reused);
        let mut summary = vec![format!(
            "{} of {n} images embedded with `{}` (output `{output_name}`, {d} values; input {}x{}, {} channels)",
            embedded,
            self.model.file_name().unwrap_or_default().to_string_lossy(),
            layout.size,
            layout.size,
            layout.channels
        )];
        let mut out_files = Vec::new();
        if reused > 0 {
            summary.push(format!("{reused} of {n} images' features reused from earlier runs ({} of {} blocks computed)", work.todo.len(), work.blocks));
        }
        if !failures.is_empty() {
            summary.push(format!(
                "{} images could not be used (left out; listed in failures.parquet): first `{}`: {}",
                failures.len(),
                paths[failures[0].0].as_deref().unwrap_or(""),
                failures[0].1
            ));
            out_files.push((
                "failures.parquet".to_owned(),
                failures_table(input, paths, failures, ctx)?,
            ));
        }
        let mut out = Output::new(df, summary);
        out.details = serde_json::json!({ "images": n, "embedded": embedded, "failed": failures.len(), "features": d, "output": output_name, "blocks": work.blocks, "blocks_computed": work.todo.len(), "rows_reused": reused });
        out.files = out_files;
        Ok(out)
    }
}

/// A run's rows as its blocks are read back or embedded.
struct Work {
    /// The ids as text (what blocks are cut by).
    ids: Vec<String>,
    /// How many blocks the rows make.
    blocks: usize,
    /// Each row's features (`None`: not yet, or failed).
    features: Vec<Option<Vec<f32>>>,
    /// The rows whose image could not be used, with the error.
    failures: Vec<(usize, String)>,
    /// The blocks not found in the parts, with their part ids.
    todo: Vec<(std::ops::Range<usize>, String)>,
    /// Rows read back from parts.
    reused: usize,
}

/// Rows `start..end` of block `block` (an index into [`Work::todo`]), embedded together.
struct Batch {
    block: usize,
    start: usize,
    end: usize,
}

/// A batch decoded: each image's model input, or why it could not be used.
struct Decoded {
    block: usize,
    start: usize,
    images: Vec<std::result::Result<Vec<f32>, String>>,
}

/// Run the model on the images of a batch that decoded, into `work.features`; record the
/// others in `work.failures`.
fn run_batch(
    model: &mut Model,
    plan: &Plan,
    batch: &Decoded,
    work: &mut Work,
    node: &str,
) -> Result<()> {
    let (start, images, layout, d) = (batch.start, &batch.images, plan.layout, plan.dim);
    let ok: Vec<usize> = (0..images.len()).filter(|&j| images[j].is_ok()).collect();
    for (j, r) in images.iter().enumerate() {
        if let Err(e) = r {
            work.failures.push((start + j, e.clone()));
        }
    }
    if ok.is_empty() {
        return Ok(());
    }
    let per_image = layout.channels * (layout.size as usize).pow(2);
    let mut data = Vec::with_capacity(ok.len() * per_image);
    for &j in &ok {
        data.extend_from_slice(images[j].as_ref().expect("ok"));
    }
    let s = layout.size as i64;
    let c = layout.channels as i64;
    let shape = if layout.nchw {
        [ok.len() as i64, c, s, s]
    } else {
        [ok.len() as i64, s, s, c]
    };
    let output_name = &plan.output;
    let (oshape, out) = model
        .run(&plan.input, &shape, &data, output_name)
        .map_err(|e| Error::input(node, e))?;
    if oshape.first() != Some(&(ok.len() as i64)) || out.len() != ok.len() * d {
        return Err(Error::input(node, format!("output `{output_name}` has shape {oshape:?} for a batch of {}, not {d} values each", ok.len())));
    }
    for (k, &j) in ok.iter().enumerate() {
        work.features[start + j] = Some(out[k * d..(k + 1) * d].to_vec());
    }
    Ok(())
}

/// The rows embedded, in order; an error if there are none, or if any has a non-finite
/// feature (never silently: a NaN feature would poison every node downstream).
fn usable_rows(work: &Work, paths: &[Option<String>], node: &str) -> Result<Vec<usize>> {
    let (features, failures, n) = (&work.features, &work.failures, paths.len());
    let keep: Vec<usize> = (0..n).filter(|&i| features[i].is_some()).collect();
    if keep.is_empty() {
        let first = failures.first().map_or_else(String::new, |(i, e)| {
            format!(": the first, `{}`: {e}", paths[*i].as_deref().unwrap_or(""))
        });
        return Err(Error::input(
            node,
            format!("none of the {n} images could be used{first}"),
        ));
    }
    let mut bad_rows = Vec::new();
    for &i in &keep {
        if features[i]
            .as_ref()
            .expect("kept")
            .iter()
            .any(|x| !x.is_finite())
        {
            bad_rows.push(i);
        }
    }
    if let Some(&i) = bad_rows.first() {
        return Err(Error::input(
            node,
            format!(
                "the model gave non-finite features for `{}` ({} images in all)",
                paths[i].as_deref().unwrap_or(""),
                bad_rows.len()
            ),
        ));
    }
    Ok(keep)
}

/// `failures.parquet`: the id, path and error of each image that could not be used.
fn failures_table(
    input: &DataFrame,
    paths: &[Option<String>],
    failures: &[(usize, String)],
    ctx: &RunCtx,
) -> Result<Vec<u8>> {
    let node = ctx.node;
    let fid = input
        .column(ctx.id)
        .map_err(super::pl(node))?
        .take(&IdxCa::from_vec(
            "idx".into(),
            failures.iter().map(|f| f.0 as IdxSize).collect(),
        ))
        .map_err(super::pl(node))?;
    let mut fdf = DataFrame::new(
        failures.len(),
        vec![
            fid,
            Column::new(
                "path".into(),
                failures
                    .iter()
                    .map(|f| paths[f.0].clone())
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "error".into(),
                failures.iter().map(|f| f.1.clone()).collect::<Vec<_>>(),
            ),
        ],
    )
    .map_err(super::pl(node))?;
    crate::cache::io::parquet_bytes(&mut fdf, node)
}

/// The model's image input: its name, channel axis and count, and height and width (≤ 0:
/// not fixed).
struct ImageInput {
    name: String,
    nchw: bool,
    channels: usize,
    h: i64,
    w: i64,
}

/// The model's one input, a 4-D float image tensor with 1 or 3 channels.
fn image_input(inputs: &[Port]) -> std::result::Result<ImageInput, (&'static str, String)> {
    let inp = inputs
        .first()
        .ok_or(("model", "the model has no input".to_owned()))?;
    if inputs.len() > 1 {
        return Err((
            "model",
            format!(
                "the model has {} inputs; embed feeds one image tensor",
                inputs.len()
            ),
        ));
    }
    if !inp.is_f32 || inp.shape.len() != 4 {
        return Err(("model", format!("model input `{}` must be a 4-D float tensor (N, C, H, W or N, H, W, C), found {:?}", inp.name, inp.shape)));
    }
    let s = &inp.shape;
    let (nchw, channels, h, w) = if s[1] == 1 || s[1] == 3 {
        (true, s[1] as usize, s[2], s[3])
    } else if s[3] == 1 || s[3] == 3 {
        (false, s[3] as usize, s[1], s[2])
    } else {
        return Err((
            "model",
            format!(
                "cannot tell the channel axis of model input `{}` {:?}: expected 1 or 3 channels",
                inp.name, s
            ),
        ));
    };
    Ok(ImageInput {
        name: inp.name.clone(),
        nchw,
        channels,
        h,
        w,
    })
}

/// Rows per block on average: a block ends after a row whose id hashes to 0 modulo this.
const BLOCK: u64 = 1024;

/// Cut rows into blocks at the rows whose id hashes to 0 modulo [`BLOCK`] (content-defined,
/// as in rsync): a block's bounds depend only on its own rows, so galaxies appended to a
/// catalogue change its last block and add new ones, and a galaxy inserted or removed
/// changes only the block it is in.
pub fn blocks(ids: &[String]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, id) in ids.iter().enumerate() {
        // Bytes 8..16: the first eight pick the shard (`shard::shard_of`), and blocks must
        // not line up with shards (with 64 shards, every boundary would fall in shard 0).
        let h = blake3::hash(id.as_bytes());
        let v = u64::from_le_bytes(h.as_bytes()[8..16].try_into().expect("8 bytes"));
        if v % BLOCK == 0 {
            out.push(start..i + 1);
            start = i + 1;
        }
    }
    if start < ids.len() {
        out.push(start..ids.len());
    }
    out
}

impl Embed {
    /// What decides a block's output: its ids and images' bytes in order, the model output
    /// used and its size (the model file and the parameters are in the part's key).
    fn block_id(
        &self,
        ids: &[String],
        hashes: &[Option<[u8; 32]>],
        output: &str,
        dim: usize,
    ) -> String {
        let mut h = blake3::Hasher::new();
        h.update(format!("embed-block-v1\n{output}\n{dim}\n").as_bytes());
        for (id, x) in ids.iter().zip(hashes) {
            h.update(&(id.len() as u64).to_le_bytes());
            h.update(id.as_bytes());
            match x {
                Some(x) => h.update(b"h").update(x),
                None => h.update(b"x"),
            };
        }
        h.finalize().to_hex().to_string()
    }

    /// A computed block as a table: `row` (within the block), `error` (null when embedded)
    /// and the features (zero where the image failed).
    fn pack(
        &self,
        ids: &[String],
        r: std::ops::Range<usize>,
        d: usize,
        features: &[Option<Vec<f32>>],
        failures: &[(usize, String)],
        node: &str,
    ) -> Result<DataFrame> {
        let errors: std::collections::HashMap<usize, &str> = failures
            .iter()
            .filter(|(i, _)| r.contains(i))
            .map(|(i, e)| (*i, e.as_str()))
            .collect();
        let mut cols = vec![
            Column::new("id_text".into(), ids.to_vec()),
            Column::new(
                "error".into(),
                r.clone()
                    .map(|i| errors.get(&i).map(|e| (*e).to_owned()))
                    .collect::<Vec<Option<String>>>(),
            ),
        ];
        for j in 0..d {
            cols.push(Column::new(
                format!("f{j}").into(),
                r.clone()
                    .map(|i| features[i].as_ref().map_or(0.0, |f| f[j]))
                    .collect::<Vec<f32>>(),
            ));
        }
        DataFrame::new(r.len(), cols).map_err(super::pl(node))
    }

    /// Read a kept block back into `features` and `failures`.
    fn unpack(
        &self,
        part: &DataFrame,
        r: std::ops::Range<usize>,
        d: usize,
        features: &mut [Option<Vec<f32>>],
        failures: &mut Vec<(usize, String)>,
        node: &str,
    ) -> Result<()> {
        if part.height() != r.len() || part.width() != d + 2 {
            return Err(Error::input(
                node,
                format!(
                    "a kept block has {} x {}, not {} x {}",
                    part.height(),
                    part.width(),
                    r.len(),
                    d + 2
                ),
            ));
        }
        let errors = part
            .column("error")
            .map_err(super::pl(node))?
            .str()
            .map_err(super::pl(node))?
            .clone();
        let cols: Vec<Vec<f32>> = (0..d)
            .map(|j| {
                Ok(part
                    .column(&format!("f{j}"))
                    .map_err(super::pl(node))?
                    .f32()
                    .map_err(super::pl(node))?
                    .into_no_null_iter()
                    .collect())
            })
            .collect::<Result<_>>()?;
        for (k, i) in r.enumerate() {
            match errors.get(k) {
                Some(e) => failures.push((i, e.to_owned())),
                None => features[i] = Some(cols.iter().map(|c| c[k]).collect()),
            }
        }
        Ok(())
    }
}

/// Decode one image and turn it into the model's input (one image's worth of floats).
fn preprocess(path: &Path, l: Layout, e: &Embed) -> std::result::Result<Vec<f32>, String> {
    let img = gallery::open(path)?;
    let grey = e.greyscale || l.channels == 1;
    let rgb = if grey {
        image::DynamicImage::ImageLuma8(img.to_luma8()).to_rgb8()
    } else {
        img.to_rgb8()
    };
    let px = gallery::centre_square(&rgb, e.crop, l.size)?;
    let s = l.size as usize;
    let c = l.channels;
    let norm = |ch: usize, v: f32| -> f32 {
        let m = e
            .mean
            .as_ref()
            .map_or(0.0, |m| m[if m.len() == 1 { 0 } else { ch }] as f32);
        let sd = e
            .std
            .as_ref()
            .map_or(1.0, |v| v[if v.len() == 1 { 0 } else { ch }] as f32);
        (v - m) / sd
    };
    let mut out = vec![0f32; c * s * s];
    for (i, p) in px.pixels().enumerate() {
        for ch in 0..c {
            let v = norm(ch, p.0[ch] as f32 / 255.0);
            if l.nchw {
                out[ch * s * s + i] = v;
            } else {
                out[i * c + ch] = v;
            }
        }
    }
    Ok(out)
}

impl super::Kind for Embed {
    super::kind_basics!("embed", Exactly(1));

    /// Relative image paths resolve against `base_dir`, by default the folder of the
    /// catalogue file the rows come from. With `shards = N` the node becomes N split
    /// nodes, N embed nodes (one per shard) and itself a merge of them.
    fn expand(&self, v: usize, draft: &mut Draft) -> Result<Option<super::Op>> {
        use super::shard::{Merge, Split};
        let mut e = self.clone();
        if e.base_dir.is_none() {
            e.base_dir = draft.source_dir(draft.nodes[v].inputs[0]);
        }
        if e.shards <= 1 {
            return Ok(Some(super::Op::Embed(e)));
        }
        let (count, inputs) = (e.shards, draft.nodes[v].inputs.clone());
        for i in 0..count {
            let split = Split {
                index: i,
                count,
                columns: vec![e.image_column.clone()],
            };
            let split = draft.add_hidden(
                v,
                &format!("split{i}"),
                super::Op::Split(split),
                inputs.clone(),
            );
            let one = super::Op::Embed(Embed {
                shards: 1,
                ..e.clone()
            });
            let shard = draft.add_hidden(v, &format!("shard{i}"), one, vec![split]);
            draft.nodes[v].inputs.push(shard);
        }
        Ok(Some(super::Op::Merge(Merge { shards: count })))
    }

    fn output_schema(&self, inputs: &[SchemaRef], id: &str) -> Result<super::SchemaResult<Schema>> {
        Ok(self.schema(&inputs[0], id))
    }

    fn compute(&self, inputs: &[std::sync::Arc<DataFrame>], ctx: &RunCtx) -> Result<Output> {
        self.run(&inputs[0], ctx)
    }

    fn files(&self) -> Vec<(&'static str, std::path::PathBuf)> {
        vec![("model", self.model.clone())]
    }

    fn reads_data_files(&self) -> bool {
        true
    }

    fn data_dir(&self) -> Option<&std::path::Path> {
        self.base_dir.as_deref()
    }

    fn data_files(
        &self,
        inputs: &[std::sync::Arc<DataFrame>],
        _id: &str,
        node: &str,
    ) -> Result<Option<Vec<Option<std::path::PathBuf>>>> {
        self.images(&inputs[0], node).map(Some)
    }

    fn multithreaded(&self) -> bool {
        true
    }
}

impl super::Parse for Embed {
    const NAMES: &'static [&'static str] = &["embed"];

    fn parse(
        _name: &str,
        p: &mut crate::params::Params,
        base_dir: &std::path::Path,
    ) -> Result<Self> {
        Self::parse(p, base_dir)
    }
}
