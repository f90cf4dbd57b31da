//! `similar`: the galaxies most like a few examples. Input: a table of representation
//! vectors (`columns`, default `feat_*`), and optionally a classes node (a `select-leaves` /
//! `select-eom` output) when the examples are a class (`class = N`).
//!
//! Scores are exact, over every row: the cosine similarity to the mean of the examples'
//! unit vectors; with counter-examples (`not`), the decision value of an L2-regularised
//! logistic regression fitted on the unit vectors, examples against counter-examples. The
//! examples and counter-examples (and, with `class`, every member of the class: the search
//! is then for the candidates the clustering left out) are not among the results. Ties
//! are broken by id. Where the input has `ra` and `dec` (degrees), a result within
//! `dedupe_arcsec` of an example or of a better result is dropped as a duplicate detection
//! of the same galaxy.
//!
//! Output: `k` rows: the id, `rank` (1 = most similar) and `score`.
//!
//! Validation puts a hidden node `NODE.vectors` (op `vectors`) between the input and the
//! search: it keeps the representation's columns as one raw little-endian f32 matrix beside
//! its table (the id, and `ra`/`dec` where the input has them), so a new query over a
//! cached representation reads that file by memory map instead of decoding the whole
//! catalogue.

use std::collections::HashMap;

use polars::prelude::*;
use serde::Serialize;

use super::draft::Draft;
use super::{columns, Output, RunCtx, SchemaError, SchemaResult};
use crate::error::{Error, Result};
use crate::numeric::similar;
use crate::params::Params;

pub const VERSION: u32 = 3;

/// The attachment of a `vectors` node, and its header: magic, rows, columns (u64 LE).
pub const VECTORS_FILE: &str = "vectors.f32";
const MAGIC: &[u8; 8] = b"DGRNVF32";

/// The L2 penalty of the classifier (on unit vectors).
const LAMBDA: f64 = 1e-2;

#[derive(Clone, Debug, Serialize)]
pub struct Similar {
    pub columns: Vec<String>,
    pub ids: Vec<String>,
    pub not: Vec<String>,
    pub class: Option<i64>,
    pub k: u32,
    pub dedupe_arcsec: f64,
}

/// The representation's columns a search reads unless told otherwise.
pub const DEFAULT_COLUMNS: &str = "feat_*";
/// Results this close to an example or a better result (arcseconds) are dropped unless told
/// otherwise.
pub const DEFAULT_DEDUPE_ARCSEC: f64 = 3.0;

impl Similar {
    /// A query with every default `similar` has: the same results as the op (and `dagrun
    /// similar`) given only these ids, counter-examples and `k`.
    pub fn query(ids: Vec<String>, not: Vec<String>, k: u32) -> Similar {
        Similar {
            columns: vec![DEFAULT_COLUMNS.into()],
            ids,
            not,
            class: None,
            k,
            dedupe_arcsec: DEFAULT_DEDUPE_ARCSEC,
        }
    }

    pub fn parse(p: &mut Params) -> Result<Self> {
        let columns = p
            .strings("columns")?
            .unwrap_or_else(|| vec![DEFAULT_COLUMNS.into()]);
        let ids = p.ids("ids")?.unwrap_or_default();
        let not = p.ids("not")?.unwrap_or_default();
        let class = p.int("class")?;
        if class.is_some_and(|c| c < 0) {
            return Err(p.error("class", "must be a class number (0 or more)"));
        }
        if ids.is_empty() && class.is_none() {
            return Err(p.error(
                "ids",
                "give at least one example id (or `class` with a classes input)",
            ));
        }
        let k = p.int_in("k", Some(50), 1, 1_000_000)? as u32;
        let dedupe_arcsec = p.float_in("dedupe_arcsec", DEFAULT_DEDUPE_ARCSEC, 0.0, 3600.0)?;
        Ok(Similar {
            columns,
            ids,
            not,
            class,
            k,
            dedupe_arcsec,
        })
    }

    pub fn schema(&self, inputs: &[SchemaRef], id: &str) -> SchemaResult<Schema> {
        match (self.class, inputs.len()) {
            (Some(_), 1) => return Err(SchemaError::new("class", "needs a second input: the classes node (inputs = [\"FEATURES\", \"CLASSES\"])")),
            (None, 2) => return Err(SchemaError::new("inputs", "a second input (classes) is used only with `class = N`")),
            (Some(_), _) if !inputs[1].contains("label") => {
                return Err(SchemaError::new("inputs", "the second input has no `label` column: it should be a `select-leaves` or `select-eom` node"))
            }
            _ => {}
        }
        let mut s = Schema::default();
        s.insert(
            id.into(),
            inputs[0].get(id).cloned().unwrap_or(DataType::Int64),
        );
        s.insert("rank".into(), DataType::UInt32);
        s.insert("score".into(), DataType::Float64);
        Ok(s)
    }

    pub fn run(&self, inputs: &[std::sync::Arc<DataFrame>], ctx: &RunCtx) -> Result<Output> {
        let (node, input) = (ctx.node, &inputs[0]);
        let path = ctx
            .input_files
            .first()
            .map(|d| d.join(VECTORS_FILE))
            .ok_or_else(|| {
                Error::input(node, "the representation's vectors are not in the cache")
            })?;
        let searcher = Searcher::open(input, &path, ctx.id, node)?;
        let found = searcher.search(self, inputs.get(1).map(|c| c.as_ref()), ctx.id, node)?;
        let idx = IdxCa::from_vec(
            "idx".into(),
            found.rows.iter().map(|&i| i as IdxSize).collect(),
        );
        let ids = input
            .column(ctx.id)
            .map_err(super::pl(node))?
            .take(&idx)
            .map_err(super::pl(node))?;
        let n = found.rows.len();
        let df = DataFrame::new(
            n,
            vec![
                ids,
                Column::new("rank".into(), (1..=n as u32).collect::<Vec<u32>>()),
                Column::new("score".into(), found.scores.clone()),
            ],
        )
        .map_err(super::pl(node))?;
        let mut summary = vec![format!(
            "top {n} of {} galaxies by {} over {} columns",
            found.candidates,
            found.how,
            searcher.dim()
        )];
        if found.dropped > 0 {
            summary.push(format!(
                "{} duplicate detections (within {} arcsec) dropped",
                found.dropped, self.dedupe_arcsec
            ));
        }
        Ok(Output::new(df, summary))
    }
}

/// A representation ready for many queries: its vectors by memory map, its ids as text and
/// by row, and sky positions where it has them. `similar` opens one per run; `dagrun serve`
/// keeps one for its life, so a query pays only for its scores.
pub struct Searcher {
    map: VectorsMap,
    text: Vec<String>,
    row_of: HashMap<String, usize>,
    /// The ids as numbers, where the id column is an integer (ties are broken by it).
    num: Option<Vec<i64>>,
    sky: Option<(Vec<f64>, Vec<f64>)>,
}

/// The result of a query: rows best first, their scores, and what the summary says.
pub struct Found {
    pub rows: Vec<usize>,
    pub scores: Vec<f64>,
    /// Rows that could be results (every row but the examples and excluded members).
    pub candidates: usize,
    /// Duplicate detections dropped.
    pub dropped: usize,
    /// How the scores were made, in words.
    pub how: String,
}

impl Searcher {
    /// Open the `vectors` attachment at `path` for `input`, a `vectors` node's table.
    pub fn open(
        input: &DataFrame,
        path: &std::path::Path,
        id: &str,
        node: &str,
    ) -> Result<Searcher> {
        let n = input.height();
        let map = open_vectors(path, n, node)?;
        let idcol = input
            .column(id)
            .map_err(super::pl(node))?
            .as_materialized_series()
            .clone();
        let text = columns::strings(input, id, node)?;
        let row_of: HashMap<String, usize> = text
            .iter()
            .enumerate()
            .map(|(i, s)| (s.clone(), i))
            .collect();
        let num: Option<Vec<i64>> = idcol
            .cast(&DataType::Int64)
            .ok()
            .and_then(|s| {
                s.i64()
                    .ok()
                    .map(|c| c.iter().map(|v| v.unwrap_or(i64::MAX)).collect())
            })
            .filter(|_| idcol.dtype().is_integer());
        let sky = match (input.column("ra"), input.column("dec")) {
            (Ok(ra), Ok(dec)) => {
                let f = |c: &Column| -> Result<Vec<f64>> {
                    Ok(c.cast(&DataType::Float64)
                        .map_err(super::pl(node))?
                        .f64()
                        .map_err(super::pl(node))?
                        .iter()
                        .map(|v| v.unwrap_or(f64::NAN))
                        .collect())
                };
                Some((f(ra)?, f(dec)?))
            }
            _ => None,
        };
        Ok(Searcher {
            map,
            text,
            row_of,
            num,
            sky,
        })
    }

    /// Rows (galaxies) searched.
    fn len(&self) -> usize {
        self.text.len()
    }

    /// Columns of the representation.
    pub fn dim(&self) -> usize {
        self.map.dim
    }

    /// The row of a galaxy.
    pub fn row(&self, id: &str) -> Option<usize> {
        self.row_of.get(id).copied()
    }

    /// The id of a row, as text.
    pub fn id(&self, row: usize) -> &str {
        &self.text[row]
    }

    /// The `k` galaxies most like `q`'s examples (see the module doc). `classes` is the
    /// classes table when `q.class` is set.
    pub fn search(
        &self,
        q: &Similar,
        classes: Option<&DataFrame>,
        id: &str,
        node: &str,
    ) -> Result<Found> {
        let examples = self.examples(q, classes, id, node)?;
        let w = self.direction(&examples, node)?;
        let score = similar::unit_scores(self.map.values(), self.map.dim, &w);
        let Ranked { kept, dropped } = self.rank(q, &examples, &score);
        let scores = kept.iter().map(|&i| score[i]).collect();
        Ok(Found {
            rows: kept,
            scores,
            candidates: examples.candidates(),
            dropped,
            how: examples.how(),
        })
    }

    /// The rows of `q`'s examples (with `class`, its members too) and counter-examples, and
    /// the rows they exclude from the results.
    fn examples(
        &self,
        q: &Similar,
        classes: Option<&DataFrame>,
        id: &str,
        node: &str,
    ) -> Result<Examples> {
        let n = self.len();
        let find = |list: &[String], what: &str| -> Result<Vec<usize>> {
            list.iter()
                .map(|g| {
                    self.row(g).ok_or_else(|| {
                        Error::input(
                            node,
                            format!("{what} id `{g}` is not in the input ({n} galaxies)"),
                        )
                    })
                })
                .collect()
        };
        let mut pos = find(&q.ids, "example")?;
        let neg = find(&q.not, "counter-example")?;
        if let Some(&both) = neg.iter().find(|r| pos.contains(r)) {
            return Err(Error::input(
                node,
                format!(
                    "galaxy `{}` is both an example and a counter-example",
                    self.text[both]
                ),
            ));
        }
        let mut excluded = vec![false; n];
        pos.iter().chain(&neg).for_each(|&r| excluded[r] = true);
        if let Some(c) = q.class {
            let classes =
                classes.ok_or_else(|| Error::input(node, "`class` needs the classes input"))?;
            let members = self.class_members(c, classes, id, node)?;
            members.iter().for_each(|&r| excluded[r] = true);
            pos.extend(members);
        }
        Ok(Examples { pos, neg, excluded })
    }

    /// The rows of class `c`'s members in `classes`; an error if it has none here.
    fn class_members(
        &self,
        c: i64,
        classes: &DataFrame,
        id: &str,
        node: &str,
    ) -> Result<Vec<usize>> {
        let lab = classes
            .column("label")
            .map_err(super::pl(node))?
            .cast(&DataType::Int64)
            .map_err(super::pl(node))?;
        let cid = classes
            .column(id)
            .map_err(super::pl(node))?
            .cast(&DataType::String)
            .map_err(super::pl(node))?;
        let in_class: Vec<Option<&str>> = lab
            .i64()
            .map_err(super::pl(node))?
            .iter()
            .zip(cid.str().map_err(super::pl(node))?.iter())
            .filter(|(l, _)| *l == Some(c))
            .map(|(_, id)| id)
            .collect();
        let members: Vec<usize> = in_class
            .iter()
            .filter_map(|id| id.and_then(|id| self.row(id)))
            .collect();
        if in_class.is_empty() {
            let top = lab.i64().map_err(super::pl(node))?.max().unwrap_or(-1);
            return Err(Error::input(
                node,
                format!(
                    "class {c} has no members in the classes input (its classes are 0 to {top})"
                ),
            ));
        }
        if members.is_empty() {
            return Err(Error::input(
                node,
                format!(
                    "none of class {c}'s {} members are in the searched table (the first input)",
                    in_class.len()
                ),
            ));
        }
        Ok(members)
    }

    /// The direction scores are taken along: the mean of the examples' unit vectors, or a
    /// classifier's weights against the counter-examples.
    fn direction(&self, e: &Examples, node: &str) -> Result<Vec<f64>> {
        let (x, d) = (self.map.values(), self.map.dim);
        let (pos, neg) = (&e.pos, &e.neg);
        // The examples' unit vectors (rows in `pos` then `neg` order).
        let rows: Vec<usize> = pos.iter().chain(neg).copied().collect();
        let picked: Vec<f32> = rows
            .iter()
            .flat_map(|&i| x[i * d..(i + 1) * d].iter().copied())
            .collect();
        let xn = similar::normalise(&picked, d);
        for (r, &i) in rows.iter().enumerate() {
            if xn[r * d..(r + 1) * d].iter().all(|&v| v == 0.0) {
                return Err(Error::input(
                    node,
                    format!(
                        "galaxy `{}` has an all-zero representation: no direction to compare with",
                        self.text[i]
                    ),
                ));
            }
        }
        let (p_rows, n_rows): (Vec<usize>, Vec<usize>) =
            ((0..pos.len()).collect(), (pos.len()..rows.len()).collect());
        Ok(if neg.is_empty() {
            similar::mean_direction(&xn, d, &p_rows)
        } else {
            similar::logistic(&xn, d, &p_rows, &n_rows, LAMBDA)
        })
    }

    /// The best `q.k` rows not excluded by `score`, best first (ties by id), less duplicate
    /// detections.
    fn rank(&self, q: &Similar, e: &Examples, score: &[f64]) -> Ranked {
        let (n, text, excluded) = (self.len(), &self.text, &e.excluded);
        // Best first; ties by id (numeric ids as numbers).
        let better = |a: &usize, b: &usize| {
            score[*b]
                .total_cmp(&score[*a])
                .then_with(|| match &self.num {
                    Some(v) => v[*a].cmp(&v[*b]),
                    None => text[*a].cmp(&text[*b]),
                })
        };
        let k = q.k as usize;
        let mut order: Vec<usize> = (0..n).filter(|&i| !excluded[i]).collect();
        let candidates = order.len();
        // The best few, sorted (duplicate detections may drop some: then all of them).
        let head = (4 * k + 64).min(order.len());
        if head < order.len() {
            order.select_nth_unstable_by(head, better);
            order.truncate(head);
        }
        order.sort_by(better);
        // Duplicate detections: within `dedupe_arcsec` of an example or a better result.
        let sky = self.sky.as_ref().filter(|_| q.dedupe_arcsec > 0.0);
        if order.len() < candidates
            && k > kept_capacity(&order, sky, q.dedupe_arcsec, &e.pos, &e.neg, k)
        {
            order = (0..n).filter(|&i| !excluded[i]).collect();
            order.sort_by(better);
        }
        dedupe(&order, sky, q.dedupe_arcsec, e, k)
    }
}

/// A query's examples and counter-examples as rows, and the rows no result may be.
struct Examples {
    /// Examples, then (with `class`) the class's members.
    pos: Vec<usize>,
    neg: Vec<usize>,
    /// Examples, counter-examples and class members.
    excluded: Vec<bool>,
}

impl Examples {
    /// Rows that could be results (every row but the examples and excluded members).
    fn candidates(&self) -> usize {
        self.excluded.iter().filter(|&&x| !x).count()
    }

    /// How the scores were made, in words.
    fn how(&self) -> String {
        if self.neg.is_empty() {
            format!(
                "cosine similarity to the mean of {} examples",
                self.pos.len()
            )
        } else {
            format!(
                "a linear classifier of {} examples against {} counter-examples",
                self.pos.len(),
                self.neg.len()
            )
        }
    }
}

/// The results of a query, best first, and the duplicates dropped.
struct Ranked {
    kept: Vec<usize>,
    /// Duplicate detections dropped.
    dropped: usize,
}

/// The first `k` of `order` that are not within `arcsec` of an example, a counter-example
/// or a kept result (none dropped without `sky`).
fn dedupe(
    order: &[usize],
    sky: Option<&(Vec<f64>, Vec<f64>)>,
    arcsec: f64,
    e: &Examples,
    k: usize,
) -> Ranked {
    let mut kept: Vec<usize> = Vec::with_capacity(k);
    let mut dropped = 0usize;
    let anchors: Vec<usize> = e.pos.iter().chain(&e.neg).copied().collect();
    for &i in order {
        if kept.len() == k {
            break;
        }
        if let Some((ra, dec)) = sky {
            let near = |j: usize| separation_arcsec(ra[i], dec[i], ra[j], dec[j]) <= arcsec;
            if anchors.iter().chain(&kept).any(|&j| near(j)) {
                dropped += 1;
                continue;
            }
        }
        kept.push(i);
    }
    Ranked { kept, dropped }
}

/// How many of `order` survive duplicate-detection dropping (at most `k`).
fn kept_capacity(
    order: &[usize],
    sky: Option<&(Vec<f64>, Vec<f64>)>,
    arcsec: f64,
    pos: &[usize],
    neg: &[usize],
    k: usize,
) -> usize {
    let Some((ra, dec)) = sky else {
        return order.len().min(k);
    };
    let mut kept: Vec<usize> = Vec::new();
    for &i in order {
        if kept.len() == k {
            break;
        }
        if !pos
            .iter()
            .chain(neg)
            .chain(&kept)
            .any(|&j| separation_arcsec(ra[i], dec[i], ra[j], dec[j]) <= arcsec)
        {
            kept.push(i);
        }
    }
    kept.len()
}

/// `vectors`: a table's representation columns kept as one raw f32 matrix beside its ids
/// (and `ra`/`dec`), for `similar` to memory-map.
#[derive(Clone, Debug, Serialize)]
pub struct Vectors {
    pub columns: Vec<String>,
}

impl Vectors {
    pub fn schema(&self, input: &Schema, id: &str) -> SchemaResult<Schema> {
        let cols =
            columns::resolve(input, &self.columns).map_err(|m| SchemaError::new("columns", m))?;
        columns::require_numeric(input, &cols, id).map_err(|m| SchemaError::new("columns", m))?;
        let mut s = Schema::default();
        s.insert(id.into(), input.get(id).cloned().unwrap_or(DataType::Int64));
        for c in ["ra", "dec"] {
            if input.contains(c) {
                s.insert(c.into(), DataType::Float64);
            }
        }
        Ok(s)
    }

    pub fn run(&self, input: &DataFrame, ctx: &RunCtx) -> Result<Output> {
        let node = ctx.node;
        let cols =
            columns::resolve(input.schema(), &self.columns).map_err(|m| Error::input(node, m))?;
        let x = columns::matrix_f32(input, &cols, node)?;
        let n = input.height();
        let mut bytes = Vec::with_capacity(24 + 4 * x.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&(n as u64).to_le_bytes());
        bytes.extend_from_slice(&(cols.len() as u64).to_le_bytes());
        for v in &x {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        drop(x);
        let mut keep = vec![input.column(ctx.id).map_err(super::pl(node))?.clone()];
        for c in ["ra", "dec"] {
            if let Ok(col) = input.column(c) {
                keep.push(col.cast(&DataType::Float64).map_err(super::pl(node))?);
            }
        }
        let df = DataFrame::new(n, keep).map_err(super::pl(node))?;
        let mut out = Output::new(df, vec![format!("{n} vectors of {} columns", cols.len())]);
        out.files.push((VECTORS_FILE.to_owned(), bytes));
        Ok(out)
    }
}

/// A `vectors` attachment, memory-mapped.
struct VectorsMap {
    map: memmap2::Mmap,
    dim: usize,
    #[cfg(target_endian = "big")]
    copy: Vec<f32>,
}

impl VectorsMap {
    fn values(&self) -> &[f32] {
        #[cfg(target_endian = "little")]
        {
            let (pre, body, _) = unsafe {
                // SAFETY: the map is page-aligned and the header is 24 bytes, so the values
                // start 4-byte aligned (checked below); any bit pattern is an f32.
                self.map[24..].align_to::<f32>()
            };
            assert!(pre.is_empty(), "vectors are 4-byte aligned");
            body
        }
        #[cfg(target_endian = "big")]
        {
            &self.copy
        }
    }
}

/// Map the `vectors` file at `path`, checking it holds `n` rows.
fn open_vectors(path: &std::path::Path, n: usize, node: &str) -> Result<VectorsMap> {
    let file = std::fs::File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
    // SAFETY: cache entries are immutable once published (the store renames complete
    // directories into place and never writes into them).
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io("cannot map", path, e))?;
    let bad = || {
        Error::input(
            node,
            format!(
                "`{}` is not a vectors file of {n} rows (was the cache edited?)",
                path.display()
            ),
        )
    };
    if map.len() < 24 || &map[..8] != MAGIC {
        return Err(bad());
    }
    let word =
        |at: usize| u64::from_le_bytes(map[at..at + 8].try_into().expect("8 bytes")) as usize;
    let (rows, dim) = (word(8), word(16));
    if rows != n || map.len() != 24 + 4 * rows * dim {
        return Err(bad());
    }
    #[cfg(target_endian = "big")]
    let copy = map[24..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect();
    Ok(VectorsMap {
        map,
        dim,
        #[cfg(target_endian = "big")]
        copy,
    })
}

/// Angular separation of two sky positions (degrees) in arcseconds (haversine).
fn separation_arcsec(ra1: f64, dec1: f64, ra2: f64, dec2: f64) -> f64 {
    let (r1, d1, r2, d2) = (
        ra1.to_radians(),
        dec1.to_radians(),
        ra2.to_radians(),
        dec2.to_radians(),
    );
    let a = ((d2 - d1) / 2.0).sin().powi(2) + d1.cos() * d2.cos() * ((r2 - r1) / 2.0).sin().powi(2);
    2.0 * a.sqrt().min(1.0).asin().to_degrees() * 3600.0
}

impl super::Kind for Similar {
    super::kind_basics!("similar", Between(1, 2));

    /// The representation is searched through a hidden `NODE.vectors` node (the vectors
    /// as one raw attachment), which takes the place of the first input.
    fn expand(&self, v: usize, draft: &mut Draft) -> Result<Option<super::Op>> {
        let vectors = Vectors {
            columns: self.columns.clone(),
        };
        let first = draft.nodes[v].inputs[0];
        let id = draft.add_hidden(v, "vectors", super::Op::Vectors(vectors), vec![first]);
        draft.nodes[v].inputs[0] = id;
        Ok(None)
    }

    fn output_schema(&self, inputs: &[SchemaRef], id: &str) -> Result<super::SchemaResult<Schema>> {
        Ok(self.schema(inputs, id))
    }

    fn compute(&self, inputs: &[std::sync::Arc<DataFrame>], ctx: &RunCtx) -> Result<Output> {
        self.run(inputs, ctx)
    }
}

impl super::Parse for Similar {
    const NAMES: &'static [&'static str] = &["similar"];

    fn parse(
        _name: &str,
        p: &mut crate::params::Params,
        _base_dir: &std::path::Path,
    ) -> Result<Self> {
        Self::parse(p)
    }
}

impl super::Kind for Vectors {
    super::kind_basics!("vectors", Exactly(1));

    fn output_schema(&self, inputs: &[SchemaRef], id: &str) -> Result<super::SchemaResult<Schema>> {
        Ok(self.schema(&inputs[0], id))
    }

    fn compute(&self, inputs: &[std::sync::Arc<DataFrame>], ctx: &RunCtx) -> Result<Output> {
        self.run(&inputs[0], ctx)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn separations() {
        assert!((super::separation_arcsec(10.0, 0.0, 10.0, 1.0) - 3600.0).abs() < 1e-6);
        assert!((super::separation_arcsec(0.0, 60.0, 1.0, 60.0) - 1800.0).abs() < 1.0);
        assert_eq!(super::separation_arcsec(5.0, 5.0, 5.0, 5.0), 0.0);
    }
}
