//! Content hashes of input files, with a stat cache so unchanged files are not rehashed.
//!
//! A record (`v1/files/<hash of the canonical path>.json`) holds the path, size,
//! modification time, inode, device and the blake3 of the content. The stat fields only
//! decide whether to trust the stored hash; they never enter a cache key. A file modified
//! less than two seconds ago is not recorded, so an edit within the filesystem's timestamp
//! granularity cannot be missed.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::store::write_atomic;
use crate::error::{IoContext, Result};

#[derive(Serialize, Deserialize, PartialEq)]
struct StatRecord {
    path: String,
    size: u64,
    mtime_ns: i128,
    ino: u64,
    dev: u64,
    blake3: String,
}

/// blake3 of a file's bytes (memory-mapped, multi-threaded for large files).
pub fn hash_file(path: &Path) -> Result<String> {
    let mut h = blake3::Hasher::new();
    h.update_mmap_rayon(path).ctx("cannot read", path)?;
    Ok(h.finalize().to_hex().to_string())
}

/// The content hash of `path`, from the stat cache under `dir` when the file is unchanged.
pub fn content_hash(dir: &Path, path: &Path) -> Result<String> {
    let canonical = std::fs::canonicalize(path).ctx("cannot find", path)?;
    let meta = std::fs::metadata(&canonical).ctx("cannot stat", &canonical)?;
    let name = blake3::hash(canonical.as_os_str().as_encoded_bytes()).to_hex();
    let record_path = dir.join(format!("{}.json", &name[..32]));
    let stat = |hash: String| StatRecord {
        path: canonical.to_string_lossy().into_owned(),
        size: meta.size(),
        mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
        ino: meta.ino(),
        dev: meta.dev(),
        blake3: hash,
    };
    if let Ok(bytes) = std::fs::read(&record_path) {
        if let Ok(rec) = serde_json::from_slice::<StatRecord>(&bytes) {
            if rec == stat(rec.blake3.clone()) {
                return Ok(rec.blake3);
            }
        }
    }
    let hash = hash_file(&canonical)?;
    let age = meta.modified().ok().and_then(|m| m.elapsed().ok()).map_or(0.0, |d| d.as_secs_f64());
    if age > 2.0 {
        std::fs::create_dir_all(dir).ctx("cannot create", dir)?;
        let bytes = serde_json::to_vec_pretty(&stat(hash.clone())).expect("record serialises");
        write_atomic(&record_path, &bytes)?;
    }
    Ok(hash)
}
