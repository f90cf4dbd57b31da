//! `read`: a table from a Parquet, CSV or Arrow IPC file, optionally only some columns
//! (names or globs like `feat_*`; the id column is always kept).
//!
//! The file enters the cache key by its content hash, not its path or modification time:
//! moving a file keeps its cache, touching it does not invalidate anything, editing it does.

use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::Serialize;

use super::{columns, Output, RunCtx, SchemaError, SchemaResult};
use crate::error::{Error, Result};
use crate::params::Params;

pub const VERSION: u32 = 1;

/// Rows read to infer CSV column types (the same at validation and at run time).
const CSV_INFER_ROWS: usize = 10_000;

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Parquet,
    Csv,
    Ipc,
}

#[derive(Clone, Debug, Serialize)]
pub struct Read {
    #[serde(skip)]
    pub path: PathBuf,
    pub format: Format,
    /// Requested columns (names or globs); `None` = all.
    pub columns: Option<Vec<String>>,
    /// `duplicates = "first"`: keep the first row of a repeated id instead of refusing the
    /// file (in the key only when set, so other keys are unchanged).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub keep_first: bool,
}

fn format_of(path: &Path) -> Option<Format> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "parquet" | "pq" => Some(Format::Parquet),
        "csv" => Some(Format::Csv),
        "arrow" | "ipc" | "feather" => Some(Format::Ipc),
        _ => None,
    }
}

impl Read {
    pub fn parse(p: &mut Params, base_dir: &Path) -> Result<Self> {
        let raw = p.req_string("path")?;
        let path = base_dir.join(&raw);
        if path.is_dir() {
            return Err(p.error(
                "path",
                format!(
                    "`{}` is a folder, not a table file (.parquet, .csv or .arrow)",
                    path.display()
                ),
            ));
        }
        let format = match p.string("format")? {
            Some(f) => match f.as_str() {
                "parquet" => Format::Parquet,
                "csv" => Format::Csv,
                "ipc" | "arrow" | "feather" => Format::Ipc,
                other => return Err(p.error("format", format!("`{other}` is not one of `parquet`, `csv`, `ipc`"))),
            },
            None => format_of(&path).ok_or_else(|| p.error("path", format!("cannot tell the format of `{raw}` from its extension; set `format` to `parquet`, `csv` or `ipc`")))?,
        };
        if !path.is_file() {
            return Err(p.error("path", format!("file `{}` not found", path.display())));
        }
        let columns = p.strings("columns")?;
        let keep_first = match p.string("duplicates")?.as_deref() {
            None | Some("error") => false,
            Some("first") => true,
            Some(other) => {
                return Err(p.error("duplicates", format!("`{other}` is not one of `error` (the default: a repeated id is an error) or `first` (keep each id's first row)")))
            }
        };
        Ok(Read {
            path,
            format,
            columns,
            keep_first,
        })
    }

    fn file_schema(&self) -> std::result::Result<Schema, String> {
        let open = || std::fs::File::open(&self.path).map_err(|e| e.to_string());
        let schema = match self.format {
            Format::Parquet => {
                let arrow = ParquetReader::new(open()?)
                    .schema()
                    .map_err(|e| e.to_string())?;
                Schema::from_arrow_schema(&arrow)
            }
            Format::Ipc => {
                let arrow = IpcReader::new(open()?)
                    .schema()
                    .map_err(|e| e.to_string())?;
                Schema::from_arrow_schema(&arrow)
            }
            Format::Csv => {
                // Validation reads the rows schema inference reads; `run` checks the rest.
                if let Some(r) =
                    ragged(&self.path, Some(CSV_INFER_ROWS)).map_err(|e| e.to_string())?
                {
                    return Err(r);
                }
                let df = CsvReadOptions::default()
                    .with_has_header(true)
                    .with_infer_schema_length(Some(CSV_INFER_ROWS))
                    .with_n_rows(Some(CSV_INFER_ROWS))
                    .try_into_reader_with_file_path(Some(self.path.clone()))
                    .and_then(|r| r.finish())
                    .map_err(|e| e.to_string())?;
                if df.height() == 0 {
                    // Every column would read as text: say what is wrong instead.
                    return Err("it has no rows (only a header)".to_owned());
                }
                numeric_text(df, "").schema().as_ref().clone()
            }
        };
        Ok(schema)
    }

    /// The columns to keep, id first when it is not already selected.
    fn selected(&self, schema: &Schema, id: &str) -> SchemaResult<Vec<String>> {
        let Some(pats) = &self.columns else {
            return Ok(schema.iter_names().map(|s| s.to_string()).collect());
        };
        let mut cols =
            columns::resolve(schema, pats).map_err(|m| SchemaError::new("columns", m))?;
        if !cols.iter().any(|c| c == id) {
            cols.insert(0, id.to_owned());
        }
        Ok(cols)
    }

    pub fn schema(&self, id: &str) -> Result<SchemaResult<Schema>> {
        let schema = match self.file_schema() {
            Ok(s) => s,
            Err(e) => {
                return Ok(Err(SchemaError::new(
                    "path",
                    format!(
                        "cannot read `{}` as {:?}: {e}",
                        self.path.display(),
                        self.format
                    ),
                )));
            }
        };
        if !schema.contains(id) {
            return Ok(Err(SchemaError::new(
                "path",
                format!("`{}` has no id column `{id}` (columns: {}); name the id column with `id = \"...\"` under [pipeline]", self.path.display(), columns::preview(&schema)),
            )));
        }
        Ok(self.selected(&schema, id).map(|cols| {
            Schema::from_iter(
                cols.iter()
                    .map(|c| Field::new(c.into(), schema.get(c).expect("resolved").clone())),
            )
        }))
    }

    pub fn run(&self, ctx: &RunCtx) -> Result<Output> {
        let bad = self.bad(ctx.node);
        let schema = self.file_schema().map_err(|e| Error::input(ctx.node, e))?;
        let cols = self
            .selected(&schema, ctx.id)
            .map_err(|e| Error::input(ctx.node, e.message))?;
        let df = self.read_columns(&cols, ctx)?;
        if df.height() == 0 {
            return Err(Error::input(
                ctx.node,
                format!("`{}` has no rows", self.path.display()),
            ));
        }
        let keep = self.first_rows(&df, ctx)?;
        let dropped = df.height() - keep.len();
        let df = if dropped > 0 {
            df.take(&IdxCa::from_vec("idx".into(), keep)).map_err(bad)?
        } else {
            df
        };
        let mut summary = vec![format!(
            "{} rows, {} columns from `{}`",
            df.height(),
            df.width(),
            self.path.display()
        )];
        if dropped > 0 {
            summary.push(format!("{dropped} rows with a repeated id dropped (`duplicates = \"first\"`: each id's first row kept)"));
        }
        Ok(Output::new(df, summary))
    }

    /// A reader's error, said as one reading this file.
    fn bad<'s>(&'s self, node: &'s str) -> impl Fn(PolarsError) -> Error + Copy + 's {
        move |e: PolarsError| {
            Error::input(
                node,
                format!(
                    "cannot read `{}` as {:?}: {e}",
                    self.path.display(),
                    self.format
                ),
            )
        }
    }

    /// The file's columns `cols`, in that order (a CSV checked for ragged lines first).
    fn read_columns(&self, cols: &[String], ctx: &RunCtx) -> Result<DataFrame> {
        let bad = self.bad(ctx.node);
        let file =
            || std::fs::File::open(&self.path).map_err(|e| Error::io("cannot open", &self.path, e));
        let df = match self.format {
            Format::Parquet => ParquetReader::new(file()?)
                .with_columns(Some(cols.to_vec()))
                .finish()
                .map_err(bad)?,
            Format::Ipc => IpcReader::new(file()?)
                .with_columns(Some(cols.to_vec()))
                .finish()
                .map_err(bad)?,
            Format::Csv => {
                if let Some(r) =
                    ragged(&self.path, None).map_err(|e| Error::io("cannot read", &self.path, e))?
                {
                    return Err(Error::input(
                        ctx.node,
                        format!(
                            "cannot read `{}` as {:?}: {r}",
                            self.path.display(),
                            self.format
                        ),
                    ));
                }
                let names: Arc<[PlSmallStr]> =
                    cols.iter().map(|c| PlSmallStr::from(c.as_str())).collect();
                let df = CsvReadOptions::default()
                    .with_has_header(true)
                    .with_infer_schema_length(Some(CSV_INFER_ROWS))
                    .with_columns(Some(names))
                    .try_into_reader_with_file_path(Some(self.path.clone()))
                    .and_then(|r| r.finish())
                    .map_err(bad)?;
                numeric_text(df, ctx.id)
            }
        };
        // Column order as selected, whatever order the reader produced.
        df.select(cols.iter().map(|c| PlSmallStr::from(c.as_str())))
            .map_err(bad)
    }

    /// The rows to keep: every row, each id once (one row per galaxy: a repeated id breaks
    /// joins, classes and searches downstream), or with `duplicates = "first"` each id's
    /// first row. An error names an empty or (without it) a repeated id.
    fn first_rows(&self, df: &DataFrame, ctx: &RunCtx) -> Result<Vec<IdxSize>> {
        let bad = self.bad(ctx.node);
        let ids = df
            .column(ctx.id)
            .map_err(bad)?
            .as_materialized_series()
            .cast(&DataType::String)
            .map_err(bad)?;
        let mut seen: std::collections::HashMap<&str, usize> =
            std::collections::HashMap::with_capacity(ids.len());
        let mut keep: Vec<IdxSize> = Vec::with_capacity(ids.len());
        for (i, v) in ids.str().map_err(bad)?.iter().enumerate() {
            let Some(v) = v.filter(|v| !v.is_empty()) else {
                return Err(Error::input(
                    ctx.node,
                    format!("`{}`: data row {} has no id (column `{}` is empty there); every galaxy needs one", self.path.display(), i + 1, ctx.id),
                ));
            };
            match seen.get(v) {
                None => {
                    seen.insert(v, i);
                    keep.push(i as IdxSize);
                }
                Some(&first) if !self.keep_first => {
                    return Err(Error::input(
                        ctx.node,
                        format!(
                            "`{}`: id `{v}` appears more than once (data rows {} and {}); the id column must name each galaxy once (or set `duplicates = \"first\"`)",
                            self.path.display(),
                            first + 1,
                            i + 1
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(keep)
    }
}

/// The first line of a CSV file (among its first `limit` data lines, or all) whose field
/// count differs from the header's, said as an error. Quoted fields may hold the separator;
/// a quoted newline is not expected in a catalogue and counts as a line break.
fn ragged(path: &Path, limit: Option<usize>) -> std::io::Result<Option<String>> {
    use std::io::BufRead;
    let count = |line: &str| {
        let mut quoted = false;
        1 + line
            .chars()
            .filter(|&c| {
                if c == '"' {
                    quoted = !quoted;
                }
                c == ',' && !quoted
            })
            .count()
    };
    let mut lines = std::io::BufReader::new(std::fs::File::open(path)?).lines();
    let Some(header) = lines.next().transpose()? else {
        return Ok(None);
    };
    let want = count(&header);
    for (i, line) in lines.enumerate().take(limit.unwrap_or(usize::MAX)) {
        let line = line?;
        if line.is_empty() {
            continue;
        }
        let got = count(&line);
        if got != want {
            return Ok(Some(format!(
                "line {} has {got} fields where the header has {want}",
                i + 2
            )));
        }
    }
    Ok(None)
}

/// Text columns that hold only numbers, some spelled `nan` or `inf` (which the CSV reader
/// leaves as text), as Float64; never the id column.
fn numeric_text(df: DataFrame, id: &str) -> DataFrame {
    let special = |v: &str| {
        matches!(
            v.trim().to_ascii_lowercase().trim_start_matches(['+', '-']),
            "nan" | "inf" | "infinity"
        )
    };
    let cols: Vec<Column> = df
        .columns()
        .iter()
        .map(|c| {
            let Ok(ca) = c.str() else { return c.clone() };
            if c.name().as_str() == id || !ca.iter().flatten().any(special) {
                return c.clone();
            }
            let parsed: Option<Vec<Option<f64>>> = ca
                .iter()
                .map(|v| v.map_or(Some(None), |v| v.trim().parse::<f64>().ok().map(Some)))
                .collect();
            match parsed {
                Some(v) => Column::new(c.name().clone(), v),
                None => c.clone(),
            }
        })
        .collect();
    let h = df.height();
    DataFrame::new(h, cols).unwrap_or(df)
}

impl super::Kind for Read {
    super::kind_basics!("read", Exactly(0));

    fn output_schema(
        &self,
        _inputs: &[SchemaRef],
        id: &str,
    ) -> Result<super::SchemaResult<Schema>> {
        self.schema(id)
    }

    fn compute(&self, _inputs: &[std::sync::Arc<DataFrame>], ctx: &RunCtx) -> Result<Output> {
        self.run(ctx)
    }

    fn files(&self) -> Vec<(&'static str, std::path::PathBuf)> {
        vec![("path", self.path.clone())]
    }
}

impl super::Parse for Read {
    const NAMES: &'static [&'static str] = &["read"];

    fn parse(
        _name: &str,
        p: &mut crate::params::Params,
        base_dir: &std::path::Path,
    ) -> Result<Self> {
        Self::parse(p, base_dir)
    }
}
