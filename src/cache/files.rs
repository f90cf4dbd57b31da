//! Content hashes of input files, with a stat cache so unchanged files are not rehashed.
//!
//! A record (`v1/files/<hash of the canonical path>.json`) holds the path, size,
//! modification time, inode, device and the blake3 of the content. The stat fields only
//! decide whether to trust the stored hash; they never enter a cache key. A file modified
//! less than two seconds ago is not recorded, so an edit within the filesystem's timestamp
//! granularity cannot be missed.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use serde::{Deserialize, Serialize};

use super::io::write_atomic;
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
    let age = meta
        .modified()
        .ok()
        .and_then(|m| m.elapsed().ok())
        .map_or(0.0, |d| d.as_secs_f64());
    if age > 2.0 {
        let bytes = serde_json::to_vec_pretty(&stat(hash.clone())).expect("record serialises");
        super::io::unless_denied(
            std::fs::create_dir_all(dir)
                .ctx("cannot create", dir)
                .and_then(|()| write_atomic(&record_path, &bytes)),
        )?;
    }
    Ok(hash)
}

/// What a digest of data files (e.g. the image cutouts a catalogue names) found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DataDigest {
    /// blake3 over every row's state, in row order (see [`data_digest`]).
    pub digest: String,
    /// Rows whose file was read and hashed anew (not found in the stat cache).
    pub hashed: usize,
    /// Rows with no usable file (a null path, missing, not a file, unreadable).
    pub missing: usize,
    /// Each row's content hash (`None`: no usable file), for ops that key parts of their
    /// work by the rows they cover.
    pub rows: Vec<Option<[u8; 32]>>,
}

/// One file's record in a folder's stat table.
#[derive(Serialize, Deserialize, Clone, PartialEq)]
struct DirRecord {
    size: u64,
    mtime_ns: i128,
    ino: u64,
    dev: u64,
    blake3: String,
}

/// The state of one row's file, as it enters the digest.
enum RowState {
    Null,
    Missing(std::io::ErrorKind),
    NotAFile,
    Hash([u8; 32]),
}

/// A content digest of the files named by `paths` (one per row; `None`: no path), for a
/// cache key: blake3 over each row's state in row order — its content hash, or why there is
/// no content (null, missing, not a file, unreadable). Paths never enter it, so the same
/// bytes found under another folder give the same digest.
///
/// Hashes are remembered per folder in `dir/dirs/<hash of the canonical folder>.json`
/// (file name → size, mtime, inode, device, blake3); a file whose stat fields all match is
/// not read again, so a warm check of a million files costs a million `stat` calls. As
/// with input files, a file modified less than two seconds ago is hashed but not recorded.
/// Two processes updating one folder's table at once can only lose records (each write is
/// atomic), never keep a wrong hash: a record is trusted only when the stat fields match.
pub fn data_digest(
    dir: &Path,
    paths: &[Option<PathBuf>],
    progress: &dyn crate::progress::Progress,
) -> Result<DataDigest> {
    let ByFolder {
        folders,
        mut states,
    } = by_folder(paths);
    let tables = dir.join("dirs");
    let mut hashed = 0usize;
    for (folder, rows) in &folders {
        hashed += check_folder(&tables, folder, rows, &mut states, progress)?;
    }
    let states: Vec<RowState> = states
        .into_iter()
        .map(|s| s.expect("every row has a state"))
        .collect();
    Ok(digest(&states, hashed))
}

/// The rows of a data digest grouped by their file's folder.
struct ByFolder {
    /// Each canonical folder's rows: the row and its file's name, in row order.
    folders: BTreeMap<PathBuf, Vec<(usize, OsString)>>,
    /// Each row's state where it is known without its file (a null, no file name, a folder
    /// that cannot be found); `None` for the rest.
    states: Vec<Option<RowState>>,
}

/// Group `paths` by folder, each folder canonicalised once (not once per file).
fn by_folder(paths: &[Option<PathBuf>]) -> ByFolder {
    let mut folders: BTreeMap<PathBuf, Vec<(usize, OsString)>> = BTreeMap::new();
    let mut canonical_of: HashMap<PathBuf, Option<PathBuf>> = HashMap::new();
    let mut states: Vec<Option<RowState>> = (0..paths.len()).map(|_| None).collect();
    for (i, p) in paths.iter().enumerate() {
        let Some(p) = p else {
            states[i] = Some(RowState::Null);
            continue;
        };
        let (parent, name) = match (p.parent(), p.file_name()) {
            (Some(parent), Some(name)) => (
                if parent.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    parent
                },
                name,
            ),
            _ => {
                states[i] = Some(RowState::NotAFile);
                continue;
            }
        };
        let canonical = canonical_of
            .entry(parent.to_owned())
            .or_insert_with(|| std::fs::canonicalize(parent).ok());
        match canonical {
            Some(c) => folders
                .entry(c.clone())
                .or_default()
                .push((i, name.to_owned())),
            None => states[i] = Some(RowState::Missing(std::io::ErrorKind::NotFound)),
        }
    }
    ByFolder { folders, states }
}

/// The files of `rows` in `folder`, against the folder's stat table under `tables`: each
/// row's state goes into `states`, and the table is rewritten when a record was added or
/// changed. How many files were read and hashed.
fn check_folder(
    tables: &Path,
    folder: &Path,
    rows: &[(usize, OsString)],
    states: &mut [Option<RowState>],
    progress: &dyn crate::progress::Progress,
) -> Result<usize> {
    let name = blake3::hash(folder.as_os_str().as_encoded_bytes()).to_hex();
    let table_path = tables.join(format!("{}.json", &name[..32]));
    let mut table: BTreeMap<String, DirRecord> = std::fs::read(&table_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let found: Vec<Found> = rows
        .par_iter()
        .map(|(_, file)| {
            let res = look_at(folder, file, &table);
            progress.inc(1);
            res
        })
        .collect();
    let mut hashed = 0usize;
    let mut changed = false;
    for ((i, _), found) in rows.iter().zip(found) {
        hashed += usize::from(found.read);
        states[*i] = Some(found.state);
        if let Some((k, r)) = found.record {
            changed |= table.insert(k, r.clone()).as_ref() != Some(&r);
        }
    }
    if changed {
        let bytes = serde_json::to_vec(&table).expect("records serialise");
        super::io::unless_denied(
            std::fs::create_dir_all(tables)
                .ctx("cannot create", tables)
                .and_then(|()| write_atomic(&table_path, &bytes)),
        )?;
    }
    Ok(hashed)
}

/// What looking at one row's file found.
struct Found {
    state: RowState,
    /// A record for the folder's table (file name, record), for a file hashed anew.
    record: Option<(String, DirRecord)>,
    /// Whether the file was read.
    read: bool,
}

/// Stat `folder/file`: its hash from `table` when the record's stat fields all match,
/// else read and hashed (and a record made unless modified in the last two seconds).
fn look_at(folder: &Path, file: &OsStr, table: &BTreeMap<String, DirRecord>) -> Found {
    let path = folder.join(file);
    let key = file.to_string_lossy().into_owned();
    let (state, record, read) = match std::fs::metadata(&path) {
        Err(e) => (RowState::Missing(e.kind()), None, false),
        Ok(m) if !m.is_file() => (RowState::NotAFile, None, false),
        Ok(m) => {
            let stat = |blake3: String| DirRecord {
                size: m.size(),
                mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
                ino: m.ino(),
                dev: m.dev(),
                blake3,
            };
            match table
                .get(&key)
                .filter(|r| **r == stat(r.blake3.clone()))
                .and_then(|r| parse_hex(&r.blake3))
            {
                Some(h) => (RowState::Hash(h), None, false),
                None => match std::fs::read(&path) {
                    Err(e) => (RowState::Missing(e.kind()), None, true),
                    Ok(bytes) => {
                        let h = blake3::hash(&bytes);
                        let age = m
                            .modified()
                            .ok()
                            .and_then(|t| t.elapsed().ok())
                            .map_or(0.0, |d| d.as_secs_f64());
                        let rec = (age > 2.0).then(|| (key, stat(h.to_hex().to_string())));
                        (RowState::Hash(*h.as_bytes()), rec, true)
                    }
                },
            }
        }
    };
    Found {
        state,
        record,
        read,
    }
}

/// The digest of every row's state in row order, each row's hash, and the count of rows
/// with no usable file (`hashed`: the files read, passed through).
fn digest(states: &[RowState], hashed: usize) -> DataDigest {
    let mut h = blake3::Hasher::new();
    h.update(b"dagrun-data-files-v1\n");
    let mut missing = 0usize;
    let mut rows = Vec::with_capacity(states.len());
    for s in states {
        rows.push(if let RowState::Hash(x) = s {
            Some(*x)
        } else {
            None
        });
        match s {
            RowState::Hash(x) => {
                h.update(b"h");
                h.update(x);
            }
            other => {
                missing += 1;
                let why = match other {
                    RowState::Null => "null".to_owned(),
                    RowState::NotAFile => "not a file".to_owned(),
                    RowState::Missing(k) => format!("{k:?}"),
                    RowState::Hash(_) => unreachable!(),
                };
                h.update(b"x");
                h.update(why.as_bytes());
                h.update(b"\n");
            }
        }
    }
    DataDigest {
        digest: h.finalize().to_hex().to_string(),
        hashed,
        missing,
        rows,
    }
}

fn parse_hex(s: &str) -> Option<[u8; 32]> {
    blake3::Hash::from_hex(s).ok().map(|h| *h.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;
    use std::path::PathBuf;
    use std::time::{Duration, SystemTime};

    fn write_old(path: &Path, bytes: &[u8]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
        let f = std::fs::File::options().write(true).open(path).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(60))
            .unwrap();
    }

    #[test]
    fn the_digest_hashes_each_row_state_in_order_and_counts_rows_without_a_file() {
        let x = [7u8; 32];
        let states = [
            RowState::Hash(x),
            RowState::Null,
            RowState::NotAFile,
            RowState::Missing(std::io::ErrorKind::PermissionDenied),
        ];
        let d = digest(&states, 3);
        let mut h = blake3::Hasher::new();
        h.update(b"dagrun-data-files-v1\nh");
        h.update(&x);
        h.update(b"xnull\nxnot a file\nxPermissionDenied\n");
        assert_eq!(d.digest, h.finalize().to_hex().to_string());
        assert_eq!((d.hashed, d.missing), (3, 3));
        assert_eq!(d.rows, [Some(x), None, None, None]);
        let swapped = [RowState::Null, RowState::Hash(x)];
        let in_order = [RowState::Hash(x), RowState::Null];
        assert_ne!(digest(&swapped, 0).digest, digest(&in_order, 0).digest);
    }

    #[test]
    fn data_digest_follows_bytes_not_paths() {
        let t = tempfile::tempdir().unwrap();
        let cache = t.path().join("cache");
        for (dir, tag) in [("a", b'x'), ("b", b'x'), ("c", b'y')] {
            for i in 0..5u8 {
                write_old(
                    &t.path().join(dir).join(format!("sub/{i}.png")),
                    &[tag, i, 7],
                );
            }
        }
        let rows = |dir: &str| -> Vec<Option<PathBuf>> {
            (0..5)
                .map(|i| Some(t.path().join(dir).join(format!("sub/{i}.png"))))
                .collect()
        };
        let a = data_digest(&cache, &rows("a"), &Silent).unwrap();
        assert_eq!((a.hashed, a.missing), (5, 0));
        // Warm: every stat matches, nothing is read.
        let again = data_digest(&cache, &rows("a"), &Silent).unwrap();
        assert_eq!(
            (again.digest.as_str(), again.hashed),
            (a.digest.as_str(), 0)
        );
        // The same bytes elsewhere: the same digest. Other bytes: another.
        assert_eq!(
            data_digest(&cache, &rows("b"), &Silent).unwrap().digest,
            a.digest
        );
        assert_ne!(
            data_digest(&cache, &rows("c"), &Silent).unwrap().digest,
            a.digest
        );
        // Row order, a null, a missing file and a folder each give their own digest.
        let mut swapped = rows("a");
        swapped.swap(0, 1);
        let mut null = rows("a");
        null[2] = None;
        let mut missing = rows("a");
        missing[2] = Some(t.path().join("a/sub/none.png"));
        let mut folder = rows("a");
        folder[2] = Some(t.path().join("a/sub"));
        let digests: std::collections::BTreeSet<String> =
            [rows("a"), swapped, null.clone(), missing.clone(), folder]
                .iter()
                .map(|r| data_digest(&cache, r, &Silent).unwrap().digest)
                .collect();
        assert_eq!(digests.len(), 5);
        assert_eq!(data_digest(&cache, &missing, &Silent).unwrap().missing, 1);
        // An edit in place that keeps the size is seen (mtime), and the file is hashed again.
        write_old(&t.path().join("a/sub/3.png"), b"z\x03\x07");
        let edited = data_digest(&cache, &rows("a"), &Silent).unwrap();
        assert_ne!(edited.digest, a.digest);
        assert_eq!(edited.hashed, 1);
    }
}
