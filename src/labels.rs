//! Labels as data: an append-only log of what a person said about galaxies, one JSON line
//! per action (`{"time", "action": "add" | "remove", "label", "ids"}`), and the table it
//! folds to (each galaxy's label: the last action on it wins; `remove` clears it).
//!
//! The log is the record: `dagrun serve` appends a line and fsyncs it before it answers,
//! so a label the page saw accepted survives a crash; nothing ever rewrites the file. A
//! torn last line (a crash mid-write) is ignored with a warning and cut off before the next
//! append, so nothing else is lost. Any other unreadable line is an error naming the file
//! and line: a log is never silently half-read. The `labels` op and `dagrun labels export`
//! read it through [`read`].

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};

/// The longest label name, in characters.
pub const MAX_LABEL: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Add,
    Remove,
}

/// One line of the log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// UTC, RFC 3339 (informational: the order of lines decides).
    pub time: String,
    pub action: Action,
    pub label: String,
    pub ids: Vec<String>,
}

/// Why a label name is refused, if it is.
pub fn check_label(label: &str) -> std::result::Result<(), String> {
    if label.trim().is_empty() {
        return Err("a label needs a name".into());
    }
    if label.chars().count() > MAX_LABEL {
        return Err(format!("a label name has at most {MAX_LABEL} characters"));
    }
    if label.chars().any(char::is_control) {
        return Err("a label name cannot hold control characters".into());
    }
    if label != label.trim() {
        return Err("a label name cannot start or end with spaces".into());
    }
    Ok(())
}

/// What a log holds: its entries, and a warning when a torn last line was left out.
#[derive(Debug, Default)]
pub struct Log {
    pub entries: Vec<Entry>,
    pub torn: Option<String>,
    /// Bytes of the log up to the end of its last complete line.
    pub complete_len: u64,
}

impl Log {
    /// Each galaxy's label after every action, in the order galaxies were first labelled
    /// (a galaxy whose label was removed is gone).
    pub fn fold(&self) -> Labels {
        let mut l = Labels::default();
        for e in &self.entries {
            l.apply(e);
        }
        l
    }
}

/// The fold of a log: id -> label, remembering the order ids were first labelled.
#[derive(Clone, Debug, Default)]
pub struct Labels {
    order: Vec<String>,
    label: HashMap<String, String>,
}

impl Labels {
    pub fn apply(&mut self, e: &Entry) {
        for id in &e.ids {
            match e.action {
                Action::Add => {
                    if self.label.insert(id.clone(), e.label.clone()).is_none() {
                        self.order.push(id.clone());
                    }
                }
                Action::Remove => {
                    if self.label.get(id) == Some(&e.label) {
                        self.label.remove(id);
                    }
                }
            }
        }
        if e.action == Action::Remove {
            self.order.retain(|id| self.label.contains_key(id));
        }
    }

    pub fn get(&self, id: &str) -> Option<&str> {
        self.label.get(id).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.label.len()
    }

    pub fn is_empty(&self) -> bool {
        self.label.is_empty()
    }

    /// (id, label) in the order ids were first labelled.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.order
            .iter()
            .map(|id| (id.as_str(), self.label[id].as_str()))
    }

    /// Each label name and how many galaxies carry it, by name.
    pub fn counts(&self) -> Vec<(String, usize)> {
        let mut c: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
        for l in self.label.values() {
            *c.entry(l).or_default() += 1;
        }
        c.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }
}

/// Read a log. A missing file is an empty log.
pub fn read(path: &Path) -> Result<Log> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Log::default()),
        Err(e) => return Err(Error::io("cannot read the label log", path, e)),
    };
    parse(&bytes, path)
}

/// Parse a log's bytes (`path` only names it in messages).
pub fn parse(bytes: &[u8], path: &Path) -> Result<Log> {
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let mut log = Log {
        complete_len: complete as u64,
        ..Log::default()
    };
    if complete < bytes.len() {
        log.torn = Some(format!("label log `{}`: its last line ({} bytes) is incomplete, as after a crash mid-write; it is ignored", path.display(), bytes.len() - complete));
    }
    for (i, line) in bytes[..complete].split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let e: Entry = serde_json::from_slice(line).map_err(|e| {
            Error::Usage(format!(
                "label log `{}` line {}: not a label action ({e})",
                path.display(),
                i + 1
            ))
        })?;
        if let Err(why) = check_label(&e.label) {
            return Err(Error::Usage(format!(
                "label log `{}` line {}: {why}",
                path.display(),
                i + 1
            )));
        }
        log.entries.push(e);
    }
    Ok(log)
}

/// The log open for appending, with its fold kept up to date.
pub struct Writer {
    path: PathBuf,
    file: File,
    labels: Labels,
    actions: u64,
}

impl Writer {
    /// Open (or create) the log at `path`. A torn last line is cut off first (its warning
    /// is returned), so the next line starts clean.
    pub fn open(path: &Path) -> Result<(Writer, Option<String>)> {
        let log = read(path)?;
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(path)
            .ctx("cannot open the label log", path)?;
        if log.torn.is_some() {
            file.set_len(log.complete_len)
                .ctx("cannot repair the label log", path)?;
            file.sync_all().ctx("cannot repair the label log", path)?;
        }
        file.seek(SeekFrom::End(0))
            .ctx("cannot open the label log", path)?;
        if !existed {
            file.sync_all().ctx("cannot create the label log", path)?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                crate::cache::io::sync_dir(dir)?;
            }
        }
        let w = Writer {
            path: path.to_owned(),
            file,
            labels: log.fold(),
            actions: log.entries.len() as u64,
        };
        Ok((w, log.torn))
    }

    /// Append one action and fsync it; returns the action's number (1 = the log's first).
    pub fn append(&mut self, e: Entry) -> Result<u64> {
        let mut line = serde_json::to_vec(&e).expect("an entry serialises");
        line.push(b'\n');
        // One write of the whole line, then fsync: a crash leaves at most a torn last line.
        self.file
            .write_all(&line)
            .ctx("cannot write the label log", &self.path)?;
        self.file
            .sync_data()
            .ctx("cannot write the label log", &self.path)?;
        self.labels.apply(&e);
        self.actions += 1;
        Ok(self.actions)
    }

    pub fn labels(&self) -> &Labels {
        &self.labels
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Now, as RFC 3339 UTC to the second.
pub fn now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    crate::cache::store::utc(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(action: Action, label: &str, ids: &[&str]) -> Entry {
        Entry {
            time: "t".into(),
            action,
            label: label.into(),
            ids: ids.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn the_last_action_on_a_galaxy_wins() {
        let log = Log {
            entries: vec![
                entry(Action::Add, "ring", &["1", "2", "3"]),
                entry(Action::Add, "bar", &["2"]),
                entry(Action::Remove, "ring", &["3"]),
                entry(Action::Remove, "ring", &["2"]), // 2 is a bar now: untouched
            ],
            ..Log::default()
        };
        let l = log.fold();
        assert_eq!(
            l.iter().collect::<Vec<_>>(),
            vec![("1", "ring"), ("2", "bar")]
        );
        assert_eq!(
            l.counts(),
            vec![("bar".to_string(), 1), ("ring".to_string(), 1)]
        );
    }

    #[test]
    fn a_torn_last_line_is_ignored_and_cut_before_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.jsonl");
        let (mut w, torn) = Writer::open(&path).unwrap();
        assert!(torn.is_none());
        w.append(entry(Action::Add, "ring", &["1"])).unwrap();
        w.append(entry(Action::Add, "bar", &["2"])).unwrap();
        drop(w);
        let mut bytes = std::fs::read(&path).unwrap();
        let good = bytes.len();
        bytes.extend_from_slice(br#"{"time":"t","action":"add","lab"#);
        std::fs::write(&path, &bytes).unwrap();
        let log = read(&path).unwrap();
        assert_eq!(log.entries.len(), 2);
        assert!(log.torn.as_deref().unwrap().contains("incomplete"));
        let (mut w, torn) = Writer::open(&path).unwrap();
        assert!(torn.is_some());
        assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, good);
        assert_eq!(w.append(entry(Action::Add, "ring", &["3"])).unwrap(), 3);
        let log = read(&path).unwrap();
        assert!(log.torn.is_none());
        assert_eq!(log.fold().len(), 3);
    }

    #[test]
    fn a_bad_line_in_the_middle_is_an_error_naming_it() {
        let e = parse(
            b"{\"time\":\"t\",\"action\":\"add\",\"label\":\"a\",\"ids\":[\"1\"]}\nnot json\n{}\n",
            Path::new("x.jsonl"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
    }

    #[test]
    fn label_names_are_checked() {
        assert!(check_label("ring").is_ok());
        assert!(check_label("").is_err());
        assert!(check_label(" ring").is_err());
        assert!(check_label("a\nb").is_err());
        assert!(check_label(&"x".repeat(101)).is_err());
    }
}
