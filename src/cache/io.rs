//! File and Parquet helpers the store, the stat cache, ops and sweeps share: atomic writes,
//! directory fsync, unique temporary names, and the one deterministic Parquet writer. A
//! leaf: it knows nothing of entries, keys or locks.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use polars::prelude::*;

use crate::error::{Error, IoContext, Result};

/// Rows per Parquet row group: fixed, so equal tables give equal bytes.
const ROW_GROUP: usize = 65_536;

/// Write `bytes` to `path` atomically: a temporary file beside it, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().expect("a file in a directory");
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy(),
        unique()
    ));
    let res = (|| {
        let mut f = File::create(&tmp).ctx("cannot create", &tmp)?;
        f.write_all(bytes).ctx("cannot write", &tmp)?;
        f.sync_all().ctx("cannot sync", &tmp)?;
        fs::rename(&tmp, path).ctx("cannot rename into place", path)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

/// Whether an I/O error says we may not write there (a cache shared read-only).
pub fn denied(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
    )
}

/// `result`, with a refused write (see [`denied`]) turned into success: for what only
/// speeds later runs up (stat caches, run records), which a read-only cache goes without.
pub fn unless_denied(result: Result<()>) -> Result<()> {
    match result {
        Err(Error::Io { source, .. }) if denied(&source) => Ok(()),
        other => other,
    }
}

pub(crate) fn unique() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}.{nanos}", std::process::id())
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx("cannot sync", dir)
}

/// Write `df` as Parquet: one chunk, fixed row groups and compression, so equal tables give
/// equal bytes. `what` names the node (or table) in errors.
pub fn write_parquet(w: &mut impl Write, df: &mut DataFrame, what: &str) -> Result<()> {
    df.rechunk_mut_par();
    ParquetWriter::new(w)
        .with_compression(ParquetCompression::Zstd(None))
        .with_statistics(StatisticsOptions::default())
        .with_row_group_size(Some(ROW_GROUP))
        .finish(df)
        .map_err(|e| Error::polars(what, e))?;
    Ok(())
}

/// The file formats a table is exported as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableFormat {
    Parquet,
    Csv,
    Ipc,
}

/// Write `df` as `fmt` (Parquet through [`write_parquet`]). `what` names it in errors.
pub fn write_table(
    w: &mut impl Write,
    df: &mut DataFrame,
    fmt: TableFormat,
    what: &str,
) -> Result<()> {
    match fmt {
        TableFormat::Parquet => write_parquet(w, df, what),
        TableFormat::Csv => CsvWriter::new(w)
            .finish(df)
            .map_err(|e| Error::polars(what, e)),
        TableFormat::Ipc => IpcWriter::new(w)
            .finish(df)
            .map_err(|e| Error::polars(what, e)),
    }
}

/// [`write_parquet`] into memory, for tables kept beside an entry's data (attachments).
pub fn parquet_bytes(df: &mut DataFrame, what: &str) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    write_parquet(&mut buf, df, what)?;
    Ok(buf)
}
