//! The on-disk store, `DIR/v1/`:
//!
//! ```text
//! objects/ab/<key>/data.parquet   the node's output table
//! objects/ab/<key>/manifest.json  what produced it, its schema, rows and content hash
//! locks/<key>.compute             held exclusively while a process computes <key>
//! locks/<key>.use                 held shared by every process using <key>; its mtime is
//!                                 the entry's last use (for gc)
//! tmp/                            entries being written
//! runs/<pipeline>/<node>.json     the key parts of each node's last run (for `plan --explain`)
//! files/                          the stat cache of input files (`dirs/`: of image folders)
//! sweeps/<key>/                   a sweep's summary (summary.parquet, classes.parquet,
//!                                 index.html, keys.json), published like an entry; gc
//!                                 removes it when not rewritten for the gc age
//! roots/labels-<hash>.json        a label log of `dagrun serve` and the entries it was
//!                                 given against
//! slurm/<run>/                    `--executor slurm`: the jobs' scripts and logs
//! ```
//!
//! **Invariants.** An entry directory appears only by an atomic rename of a complete,
//! fsynced temporary directory, so a run killed at any moment leaves nothing that reads as
//! complete. Every hit is verified against the manifest's content hash; a mismatch is
//! reported as [`Lookup::Corrupt`] and the entry is recomputed. A key is computed only by
//! the process holding its compute lock, and a process re-checks for a finished entry after
//! taking the lock, so two processes never compute the same key. gc removes only entries
//! whose use and compute locks it can take exclusively, and never one a **root** names: a
//! sweep summary gc keeps (its `keys.json`: every node of every grid point) or a label log
//! that still exists (its `roots/labels-*.json`, written by `dagrun serve`).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::io::{sync_dir, unique, write_atomic, write_parquet};
use super::key::KeyParts;
use crate::error::{Error, IoContext, Result};

const DATA: &str = "data.parquet";
const MANIFEST: &str = "manifest.json";
const FILES: &str = "files";

/// Everything recorded about an entry.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub dagrun_version: String,
    pub key: String,
    pub parts: KeyParts,
    /// The node and pipeline that first produced the entry (informational: not in the key).
    pub node: String,
    pub pipeline: String,
    pub input_nodes: Vec<String>,
    pub schema: Vec<(String, String)>,
    pub rows: u64,
    pub data_file: String,
    pub data_bytes: u64,
    /// blake3 of the data file.
    pub content_hash: String,
    pub seconds: f64,
    pub created_unix: u64,
    pub created: String,
    pub summary: Vec<String>,
    /// Op-specific details (e.g. per-cluster statistics).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub details: serde_json::Value,
    /// Extra files of the entry (a report's HTML), under `files/`, verified like the data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// The batch job that computed it (`slurm_job_id`, `array_task_id`, `node`), when one did.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub slurm: serde_json::Value,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Attachment {
    pub path: String,
    pub bytes: u64,
    pub blake3: String,
}

/// What the caller knows before writing an entry.
pub struct Draft {
    pub key: String,
    pub parts: KeyParts,
    pub node: String,
    pub pipeline: String,
    pub input_nodes: Vec<String>,
    pub seconds: f64,
    pub summary: Vec<String>,
    pub details: serde_json::Value,
    /// Extra files: relative path (no `..`) and contents.
    pub files: Vec<(String, Vec<u8>)>,
    /// The batch job computing it (`null`: none).
    pub slurm: serde_json::Value,
}

pub enum Lookup {
    Hit(Box<Manifest>),
    Missing,
    /// The entry exists but cannot be trusted; the reason says why.
    Corrupt(String),
}

/// What [`Store::get_or_compute`] found or made.
pub enum Got {
    Hit(Box<Manifest>),
    /// Computed now: the entry, and the table as computed (before it was written).
    Computed(Box<Manifest>, DataFrame),
}

/// What [`Store::get_or_compute`] noticed on the way.
pub enum Seen<'a> {
    /// The entry was there but failed verification (the reason), so it is recomputed.
    Corrupt(&'a str),
    /// Another process holds the key's compute lock.
    Waiting,
}

/// The last run of a node of a pipeline.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunRecord {
    pub key: String,
    pub parts: KeyParts,
    pub input_nodes: Vec<String>,
    pub content_hash: String,
}

/// Held while computing a key; dropping it releases the lock.
pub struct ComputeLock {
    key: String,
    _file: File,
}

/// Held while a run uses an entry; gc leaves it alone.
pub struct UseLock {
    _file: Option<File>,
}

pub struct Store {
    root: PathBuf,
}

#[derive(Debug, Default)]
pub struct GcReport {
    pub removed: usize,
    pub bytes: u64,
    pub kept_in_use: usize,
    pub kept_recent: usize,
    pub temp_removed: usize,
    /// Sweep summaries and SLURM run folders older than the gc age.
    pub folders_removed: usize,
    /// Entries kept because a sweep summary or a label log names them.
    pub kept_roots: usize,
}

/// The file in a sweep's summary folder naming the entries it was made from: a gc root
/// while the folder is kept.
pub const SWEEP_KEYS: &str = "keys.json";

/// A label log and the entries `dagrun serve` showed when labels were given: a gc root
/// while the log exists.
#[derive(Debug, Serialize, Deserialize)]
struct LabelRoot {
    log: PathBuf,
    keys: Vec<String>,
}

/// The batch job this process runs in, for the manifest of what it computes (`null`
/// outside SLURM).
pub fn this_job() -> serde_json::Value {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match var("SLURM_JOB_ID") {
        None => serde_json::Value::Null,
        Some(id) => serde_json::json!({
            "slurm_job_id": var("SLURM_ARRAY_JOB_ID").unwrap_or(id),
            "array_task_id": var("SLURM_ARRAY_TASK_ID"),
            "node": var("SLURMD_NODENAME"),
        }),
    }
}

/// A UTC timestamp like `2026-11-29T19:38:58Z`.
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Writes through to a file while hashing what it writes.
struct HashingWriter<W: Write> {
    inner: W,
    hasher: blake3::Hasher,
    bytes: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn safe_component(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Store {
    /// Open (creating if needed) the store under `dir`.
    pub fn open(dir: &Path) -> Result<Store> {
        let root = dir.join("v1");
        for sub in ["objects", "locks", "tmp", "runs", "files"] {
            let p = root.join(sub);
            // Name what is in the way rather than "File exists".
            if let Some(blocker) = p.ancestors().find(|a| a.exists() && !a.is_dir()) {
                return Err(Error::Usage(format!("`{}` is a file where the cache needs a folder: move it away, or give another cache with --cache", blocker.display())));
            }
            fs::create_dir_all(&p).ctx("cannot create cache directory", &p)?;
        }
        Ok(Store { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn files_dir(&self) -> PathBuf {
        self.root.join("files")
    }

    fn entry_dir(&self, key: &str) -> PathBuf {
        self.root.join("objects").join(&key[..2]).join(key)
    }

    pub fn data_path(&self, key: &str) -> PathBuf {
        self.entry_dir(key).join(DATA)
    }

    /// Where an entry's attachment lives.
    pub fn attachment_path(&self, key: &str, rel: &str) -> PathBuf {
        self.entry_dir(key).join(FILES).join(rel)
    }

    fn lock_path(&self, key: &str, kind: &str) -> PathBuf {
        self.root.join("locks").join(format!("{key}.{kind}"))
    }

    fn lock_file(&self, key: &str, kind: &str) -> Result<File> {
        let p = self.lock_path(key, kind);
        File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .ctx("cannot open lock", &p)
    }

    /// Is there a complete, intact entry for `key`? Reads the manifest and hashes the data.
    pub fn lookup(&self, key: &str) -> Lookup {
        let dir = self.entry_dir(key);
        if !dir.exists() {
            return Lookup::Missing;
        }
        let bytes = match fs::read(dir.join(MANIFEST)) {
            Ok(b) => b,
            Err(e) => return Lookup::Corrupt(format!("manifest unreadable: {e}")),
        };
        let m: Manifest = match serde_json::from_slice(&bytes) {
            Ok(m) => m,
            Err(e) => return Lookup::Corrupt(format!("manifest is not valid: {e}")),
        };
        if m.key != key {
            return Lookup::Corrupt(format!("manifest names key {}", m.key));
        }
        let data = dir.join(&m.data_file);
        match fs::metadata(&data) {
            Err(e) => return Lookup::Corrupt(format!("data file unreadable: {e}")),
            Ok(md) if md.len() != m.data_bytes => {
                return Lookup::Corrupt(format!(
                    "data file is {} bytes, the manifest says {}",
                    md.len(),
                    m.data_bytes
                ))
            }
            Ok(_) => {}
        }
        match super::files::hash_file(&data) {
            Ok(h) if h == m.content_hash => {}
            Ok(_) => return Lookup::Corrupt("data file does not match its content hash".into()),
            Err(e) => return Lookup::Corrupt(e.to_string()),
        }
        for a in &m.attachments {
            let p = dir.join(FILES).join(&a.path);
            match fs::metadata(&p) {
                Ok(md) if md.len() == a.bytes => {}
                Ok(_) => {
                    return Lookup::Corrupt(format!("file `{}` does not match its hash", a.path))
                }
                Err(e) => return Lookup::Corrupt(format!("file `{}` unreadable: {e}", a.path)),
            }
            match super::files::hash_file(&p) {
                Ok(h) if h == a.blake3 => {}
                Ok(_) => {
                    return Lookup::Corrupt(format!("file `{}` does not match its hash", a.path))
                }
                Err(e) => return Lookup::Corrupt(format!("file `{}` unreadable: {e}", a.path)),
            }
        }
        Lookup::Hit(Box::new(m))
    }

    /// The manifest of `key` if its entry exists, without verifying the data.
    pub fn manifest(&self, key: &str) -> Option<Manifest> {
        let bytes = fs::read(self.entry_dir(key).join(MANIFEST)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Take the compute lock of `key`, calling `on_wait` first if another process holds it.
    pub fn lock_compute(&self, key: &str, on_wait: impl FnOnce()) -> Result<ComputeLock> {
        let f = match self.lock_file(key, "compute") {
            Err(Error::Io { source, .. }) if super::io::denied(&source) => {
                let cache = self.root.parent().unwrap_or(&self.root);
                return Err(Error::Cache(format!(
                    "the cache `{}` is not writable by you, and an entry it lacks must be computed: give a cache of your own with --cache (entries it already holds are read without writing)",
                    cache.display()
                )));
            }
            other => other?,
        };
        match f.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                on_wait();
                f.lock()
                    .ctx("cannot lock", &self.root.join("locks").join(key))?;
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::io(
                    "cannot lock",
                    self.root.join("locks").join(key),
                    e,
                ))
            }
        }
        // Whatever a killed process left half-written for this key is ours to remove.
        if let Ok(rd) = fs::read_dir(self.root.join("tmp")) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with(key) {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
        Ok(ComputeLock {
            key: key.to_owned(),
            _file: f,
        })
    }

    /// Mark `key` as in use by this process until the returned lock is dropped.
    /// On a cache we may read but not write, the lock file is opened read-only where it
    /// exists (a shared lock needs no write), and skipped where it does not.
    pub fn use_entry(&self, key: &str) -> Result<UseLock> {
        let f = match self.lock_file(key, "use") {
            Ok(f) => Some(f),
            Err(Error::Io { source, .. }) if super::io::denied(&source) => {
                File::open(self.lock_path(key, "use")).ok()
            }
            Err(e) => return Err(e),
        };
        if let Some(f) = &f {
            f.lock_shared()
                .ctx("cannot lock", &self.root.join("locks").join(key))?;
            let _ = f.set_modified(SystemTime::now());
        }
        Ok(UseLock { _file: f })
    }

    /// Remove folder `dir` of this store: moved out of sight into `tmp/` in one rename (as
    /// `{tag}.{unique}`: a reader sees it whole or not at all), then deleted. A delete that
    /// fails leaves it in `tmp/`, where gc collects it.
    fn remove_folder(&self, dir: &Path, tag: &str) -> Result<()> {
        let trash = self.root.join("tmp").join(format!("{tag}.{}", unique()));
        fs::rename(dir, &trash).ctx("cannot move aside", dir)?;
        let _ = fs::remove_dir_all(&trash);
        Ok(())
    }

    /// Remove an entry that failed verification (the caller holds its compute lock).
    pub fn discard(&self, lock: &ComputeLock) -> Result<()> {
        let dir = self.entry_dir(&lock.key);
        if dir.exists() {
            self.remove_folder(&dir, &format!("{}.discard", lock.key))?;
        }
        Ok(())
    }

    /// The entry under `key`: the one in the cache (verified), or else what `compute`
    /// returns, published under it. At most one process computes a key at a time: the
    /// others wait for its lock (telling `seen`), then find its entry. An entry that fails
    /// verification is told to `seen`, and replaced.
    pub fn get_or_compute(
        &self,
        key: &str,
        mut seen: impl FnMut(Seen<'_>),
        compute: impl FnOnce() -> Result<(DataFrame, Draft)>,
    ) -> Result<Got> {
        let first = self.lookup(key);
        if let Lookup::Corrupt(reason) = &first {
            seen(Seen::Corrupt(reason));
        }
        if let Lookup::Hit(m) = first {
            return Ok(Got::Hit(m));
        }
        let lock = self.lock_compute(key, || seen(Seen::Waiting))?;
        match self.lookup(key) {
            Lookup::Hit(m) => return Ok(Got::Hit(m)),
            Lookup::Corrupt(_) => self.discard(&lock)?,
            Lookup::Missing => {}
        }
        let (mut df, draft) = compute()?;
        let m = self.publish(&lock, &mut df, draft)?;
        Ok(Got::Computed(Box::new(m), df))
    }

    /// Write `df` and its manifest as the entry of the locked key.
    pub fn publish(
        &self,
        lock: &ComputeLock,
        df: &mut DataFrame,
        draft: Draft,
    ) -> Result<Manifest> {
        assert_eq!(lock.key, draft.key, "publishing under the wrong lock");
        let tmp = self
            .root
            .join("tmp")
            .join(format!("{}.{}", draft.key, unique()));
        let node = draft.node.clone();
        let res = self.write_entry(&tmp, df, draft);
        if res.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        // A full disk, said as such (polars wraps it as "File out of specification").
        res.map_err(|e| {
            let text = e.to_string();
            if text.contains("No space left on device") || text.contains("os error 28") {
                Error::Cache(format!(
                    "no space left on the device holding `{}` while writing node `{node}`'s entry (nothing was published); free space or give another cache with --cache",
                    self.root.display()
                ))
            } else {
                e
            }
        })
    }

    fn write_entry(&self, tmp: &Path, df: &mut DataFrame, d: Draft) -> Result<Manifest> {
        fs::create_dir_all(tmp).ctx("cannot create", tmp)?;
        let data = tmp.join(DATA);
        let file = File::create(&data).ctx("cannot create", &data)?;
        let mut w = HashingWriter {
            inner: std::io::BufWriter::with_capacity(1 << 20, file),
            hasher: blake3::Hasher::new(),
            bytes: 0,
        };
        write_parquet(&mut w, df, &d.node)?;
        w.flush().ctx("cannot write", &data)?;
        let (content_hash, data_bytes) = (w.hasher.finalize().to_hex().to_string(), w.bytes);
        let file = w
            .inner
            .into_inner()
            .map_err(|e| Error::io("cannot write", &data, e.into_error()))?;
        file.sync_all().ctx("cannot sync", &data)?;
        let mut attachments = Vec::new();
        for (rel, bytes) in &d.files {
            assert!(
                !rel.split('/').any(|c| c == ".." || c.is_empty()),
                "attachment path `{rel}`"
            );
            let p = tmp.join(FILES).join(rel);
            let parent = p.parent().expect("under files/");
            fs::create_dir_all(parent).ctx("cannot create", parent)?;
            let mut f = File::create(&p).ctx("cannot create", &p)?;
            f.write_all(bytes).ctx("cannot write", &p)?;
            f.sync_all().ctx("cannot sync", &p)?;
            attachments.push(Attachment {
                path: rel.clone(),
                bytes: bytes.len() as u64,
                blake3: blake3::hash(bytes).to_hex().to_string(),
            });
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |t| t.as_secs());
        let m = Manifest {
            dagrun_version: env!("CARGO_PKG_VERSION").to_owned(),
            key: d.key,
            parts: d.parts,
            node: d.node,
            pipeline: d.pipeline,
            input_nodes: d.input_nodes,
            schema: df
                .schema()
                .iter()
                .map(|(n, t)| (n.to_string(), t.to_string()))
                .collect(),
            rows: df.height() as u64,
            data_file: DATA.to_owned(),
            data_bytes,
            content_hash,
            seconds: d.seconds,
            created_unix: now,
            created: utc(now),
            summary: d.summary,
            details: d.details,
            attachments,
            slurm: d.slurm,
        };
        let mpath = tmp.join(MANIFEST);
        let mut f = File::create(&mpath).ctx("cannot create", &mpath)?;
        f.write_all(&serde_json::to_vec_pretty(&m).expect("manifest serialises"))
            .ctx("cannot write", &mpath)?;
        f.sync_all().ctx("cannot sync", &mpath)?;
        sync_dir(tmp)?;
        let dest = self.entry_dir(&m.key);
        let parent = dest.parent().expect("entry has a parent");
        fs::create_dir_all(parent).ctx("cannot create", parent)?;
        if dest.exists() {
            // A corrupt entry left in place; we hold the lock, so it is ours to replace.
            self.remove_folder(&dest, &format!("{}.discard", m.key))?;
        }
        fs::rename(tmp, &dest).ctx("cannot publish", &dest)?;
        sync_dir(parent)?;
        Ok(m)
    }

    /// Read an entry's table.
    pub fn read(&self, key: &str, node: &str) -> Result<DataFrame> {
        self.read_columns(key, node, None)
    }

    /// Read some columns of an entry's table (`None`: all), decoding only those.
    pub fn read_columns(
        &self,
        key: &str,
        node: &str,
        columns: Option<Vec<String>>,
    ) -> Result<DataFrame> {
        let path = self.data_path(key);
        let f = File::open(&path).ctx("cannot open", &path)?;
        ParquetReader::new(f)
            .with_columns(columns)
            .finish()
            .map_err(|e| Error::polars(node, e))
    }

    fn run_path(&self, pipeline: &str, node: &str) -> PathBuf {
        self.root
            .join("runs")
            .join(safe_component(pipeline))
            .join(format!("{}.json", safe_component(node)))
    }

    /// Record a node's last run (for `plan --explain`); a cache we may not write goes without.
    pub fn save_run(&self, pipeline: &str, node: &str, rec: &RunRecord) -> Result<()> {
        let p = self.run_path(pipeline, node);
        let dir = p.parent().expect("run record has a parent");
        super::io::unless_denied(
            fs::create_dir_all(dir)
                .ctx("cannot create", dir)
                .and_then(|()| {
                    write_atomic(
                        &p,
                        &serde_json::to_vec_pretty(rec).expect("record serialises"),
                    )
                }),
        )
    }

    pub fn last_run(&self, pipeline: &str, node: &str) -> Option<RunRecord> {
        serde_json::from_slice(&fs::read(self.run_path(pipeline, node)).ok()?).ok()
    }

    /// Remove entries unused for `older_than` (never one a process holds), old sweep
    /// summaries and SLURM folders, and temporary files of killed runs. With `dry_run`,
    /// count what would go (entries and their bytes) and remove nothing.
    pub fn gc(&self, older_than: Duration, dry_run: bool) -> Result<GcReport> {
        let mut report = GcReport::default();
        let now = SystemTime::now();
        let roots = self.roots(now, older_than, dry_run);
        let objects = self.root.join("objects");
        for shard in fs::read_dir(&objects)
            .ctx("cannot list", &objects)?
            .flatten()
        {
            for entry in fs::read_dir(shard.path())
                .ctx("cannot list", &shard.path())?
                .flatten()
            {
                let key = entry.file_name().to_string_lossy().into_owned();
                let use_file = self.lock_file(&key, "use")?;
                let last_use = [
                    use_file.metadata().ok().and_then(|m| m.modified().ok()),
                    entry.metadata().ok().and_then(|m| m.modified().ok()),
                ]
                .into_iter()
                .flatten()
                .max()
                .unwrap_or(UNIX_EPOCH);
                if now.duration_since(last_use).unwrap_or_default() < older_than {
                    report.kept_recent += 1;
                    continue;
                }
                if roots.contains(&key) {
                    report.kept_roots += 1;
                    continue;
                }
                let compute = self.lock_file(&key, "compute")?;
                if use_file.try_lock().is_err() || compute.try_lock().is_err() {
                    report.kept_in_use += 1;
                    continue;
                }
                let bytes: u64 = fs::read_dir(entry.path())
                    .map(|rd| {
                        rd.flatten()
                            .filter_map(|f| f.metadata().ok())
                            .map(|m| m.len())
                            .sum()
                    })
                    .unwrap_or(0);
                if !dry_run {
                    self.remove_folder(&entry.path(), &format!("{key}.gc"))?;
                }
                report.removed += 1;
                report.bytes += bytes;
            }
        }
        // Sweep summaries (made again by any sweep that needs them) and SLURM run folders,
        // by age: a sweep publishing one now writes a new folder, never into an old one.
        for kind in ["sweeps", "slurm"] {
            let Ok(rd) = fs::read_dir(self.root.join(kind)) else {
                continue;
            };
            for e in rd.flatten() {
                let age = e
                    .metadata()
                    .ok()
                    .and_then(|m| m.modified().ok())
                    .and_then(|m| now.duration_since(m).ok())
                    .unwrap_or_default();
                let gone = || self.remove_folder(&e.path(), &format!("{kind}.gc")).is_ok();
                if age >= older_than && (dry_run || gone()) {
                    report.folders_removed += 1;
                }
            }
        }
        // Temporary entries whose key no process is computing were left by killed runs.
        let tmp = self.root.join("tmp");
        for e in fs::read_dir(&tmp).ctx("cannot list", &tmp)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let key: String = name.chars().take_while(|c| c.is_ascii_hexdigit()).collect();
            let free = key.len() != 64 || self.lock_file(&key, "compute")?.try_lock().is_ok();
            let old = e
                .metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|m| now.duration_since(m).ok())
                .unwrap_or_default()
                > Duration::from_secs(60);
            if free && (key.len() == 64 || old) {
                if !dry_run {
                    let _ = if e.path().is_dir() {
                        fs::remove_dir_all(e.path())
                    } else {
                        fs::remove_file(e.path())
                    };
                }
                report.temp_removed += 1;
            }
        }
        Ok(report)
    }

    /// The keys gc must keep: those named by the sweep summaries it keeps (younger than
    /// `older_than`) and by the label logs that still exist. A label root whose log is gone
    /// is removed (unless `dry_run`). An unreadable root keeps nothing and is left alone.
    fn roots(
        &self,
        now: SystemTime,
        older_than: Duration,
        dry_run: bool,
    ) -> std::collections::BTreeSet<String> {
        let mut keys = std::collections::BTreeSet::new();
        let age = |p: &Path| {
            p.metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|m| now.duration_since(m).ok())
                .unwrap_or_default()
        };
        for e in fs::read_dir(self.root.join("sweeps"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if age(&e.path()) < older_than {
                let named: Option<Vec<String>> = fs::read(e.path().join(SWEEP_KEYS))
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok());
                keys.extend(named.unwrap_or_default());
            }
        }
        for e in fs::read_dir(self.root.join("roots"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let Some(root) = fs::read(e.path())
                .ok()
                .and_then(|b| serde_json::from_slice::<LabelRoot>(&b).ok())
            else {
                continue;
            };
            if root.log.exists() {
                keys.extend(root.keys);
            } else if !dry_run {
                let _ = fs::remove_file(e.path());
            }
        }
        keys
    }

    /// Record that the label log `log` was written against `keys`: gc keeps them while the
    /// log exists. One root per log (the last call's keys); a cache we may not write goes
    /// without.
    pub fn add_label_root(&self, log: &Path, keys: Vec<String>) -> Result<()> {
        let log = fs::canonicalize(log).unwrap_or_else(|_| log.to_path_buf());
        let name = format!(
            "labels-{}.json",
            &blake3::hash(log.as_os_str().as_encoded_bytes()).to_hex()[..16]
        );
        let dir = self.root.join("roots");
        let bytes = serde_json::to_vec_pretty(&LabelRoot { log, keys }).expect("a root serialises");
        super::io::unless_denied(
            fs::create_dir_all(&dir)
                .ctx("cannot create", &dir)
                .and_then(|()| write_atomic(&dir.join(name), &bytes)),
        )
    }

    /// Publish a folder of files at `dest` (under this store) as entries are published:
    /// written and fsynced in a temporary folder, then renamed into place (an older folder
    /// there is moved aside first), then the parent fsynced. A reader sees the old folder or
    /// the new one, never a mix.
    pub fn publish_folder(&self, dest: &Path, files: &[(&str, Vec<u8>)]) -> Result<()> {
        let tmp = self.root.join("tmp").join(format!("folder.{}", unique()));
        let res = (|| {
            fs::create_dir_all(&tmp).ctx("cannot create", &tmp)?;
            for (name, bytes) in files {
                let p = tmp.join(name);
                let mut f = File::create(&p).ctx("cannot create", &p)?;
                f.write_all(bytes).ctx("cannot write", &p)?;
                f.sync_all().ctx("cannot sync", &p)?;
            }
            sync_dir(&tmp)?;
            let parent = dest.parent().expect("a folder in the store");
            fs::create_dir_all(parent).ctx("cannot create", parent)?;
            if dest.exists() {
                self.remove_folder(dest, "folder.old")?;
            }
            fs::rename(&tmp, dest).ctx("cannot publish", dest)?;
            sync_dir(parent)
        })();
        if res.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        res
    }

    /// Keys of all entries, for tests and tools.
    pub fn keys(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Ok(shards) = fs::read_dir(self.root.join("objects")) {
            for s in shards.flatten() {
                if let Ok(rd) = fs::read_dir(s.path()) {
                    out.extend(
                        rd.flatten()
                            .map(|e| e.file_name().to_string_lossy().into_owned()),
                    );
                }
            }
        }
        out.sort();
        out
    }

    /// Parsed manifests by key (unverified).
    pub fn manifests(&self) -> BTreeMap<String, Manifest> {
        self.keys()
            .into_iter()
            .filter_map(|k| self.manifest(&k).map(|m| (k, m)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_known_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_795_902_338), "2026-11-28T21:45:38Z");
    }

    /// A label log's root keeps its keys while the log exists; once the log is gone the
    /// root goes too (not in a dry run). A sweep summary keeps its keys while it is younger
    /// than the gc age.
    #[test]
    fn roots_are_kept_sweeps_and_existing_label_logs() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("cache")).unwrap();
        let log = dir.path().join("labels.jsonl");
        fs::write(&log, "").unwrap();
        store
            .add_label_root(&log, vec!["k1".into(), "k2".into()])
            .unwrap();
        let sweep = store.root().join("sweeps").join("s1");
        fs::create_dir_all(&sweep).unwrap();
        fs::write(sweep.join(SWEEP_KEYS), r#"["k3"]"#).unwrap();
        let now = SystemTime::now();
        let hour = Duration::from_secs(3600);
        let names = |v: std::collections::BTreeSet<String>| v.into_iter().collect::<Vec<_>>();
        assert_eq!(names(store.roots(now, hour, false)), ["k1", "k2", "k3"]);
        // The sweep summary older than the gc age is not a root (gc removes it).
        assert_eq!(
            names(store.roots(now + 2 * hour, hour, false)),
            ["k1", "k2"]
        );
        fs::remove_file(&log).unwrap();
        assert_eq!(names(store.roots(now, hour, true)), ["k3"]);
        assert_eq!(
            fs::read_dir(store.root().join("roots")).unwrap().count(),
            1,
            "a dry run removes nothing"
        );
        store.roots(now, hour, false);
        assert_eq!(
            fs::read_dir(store.root().join("roots")).unwrap().count(),
            0,
            "the root of a removed log is removed"
        );
    }

    /// A missing entry is computed once and published; then it is a hit and `compute` is
    /// not called; an entry whose data was damaged is told to `seen` and computed again.
    #[test]
    fn get_or_compute_computes_once_and_replaces_a_damaged_entry() {
        use polars::prelude::{Column, DataFrame};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("cache")).unwrap();
        let parts = KeyParts {
            op: "test".into(),
            op_version: 1,
            id: "id".into(),
            params: serde_json::json!({}),
            inputs: Vec::new(),
            files: BTreeMap::new(),
        };
        let key = parts.key();
        let table = || DataFrame::new(3, vec![Column::new("id".into(), [1i64, 2, 3])]).unwrap();
        let draft = || Draft {
            key: key.clone(),
            parts: parts.clone(),
            node: "n".into(),
            pipeline: "p".into(),
            input_nodes: Vec::new(),
            seconds: 0.0,
            summary: Vec::new(),
            details: serde_json::Value::Null,
            files: Vec::new(),
            slurm: serde_json::Value::Null,
        };
        let calls = std::cell::Cell::new(0);
        let mut corrupt = Vec::new();
        let get = |corrupt: &mut Vec<String>| {
            let seen = |s: Seen| {
                if let Seen::Corrupt(r) = s {
                    corrupt.push(r.to_owned());
                }
            };
            store
                .get_or_compute(&key, seen, || {
                    calls.set(calls.get() + 1);
                    Ok((table(), draft()))
                })
                .unwrap()
        };
        let first = get(&mut corrupt);
        assert!(matches!(first, Got::Computed(_, ref df) if df.height() == 3));
        assert!(matches!(get(&mut corrupt), Got::Hit(ref m) if m.rows == 3));
        assert_eq!(calls.get(), 1, "a hit computes nothing");
        let data = store.data_path(&key);
        let mut bytes = fs::read(&data).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        fs::write(&data, bytes).unwrap();
        assert!(matches!(get(&mut corrupt), Got::Computed(..)));
        assert_eq!(calls.get(), 2, "a damaged entry is computed again");
        assert_eq!(corrupt.len(), 1, "and reported: {corrupt:?}");
        assert!(matches!(store.lookup(&key), Lookup::Hit(_)), "and replaced");
    }
}
