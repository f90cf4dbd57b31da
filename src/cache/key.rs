//! Cache keys. A key is the blake3 hash of a [`KeyParts`]: exactly what decides a node's
//! output — the op, its code version, its canonical parameters, the id column, the content
//! hashes of its inputs' outputs, and the content hashes of the files it reads. Never a
//! path, a modification time or a node name.
//!
//! Inputs enter by the content hash of their output rather than by their key: when a
//! recomputed node gives the same bytes as before, its dependents keep their keys and are
//! reused (early cut-off).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Bumped when the key's definition changes; also the cache layout version (`cache/v1`).
pub const KEY_FORMAT: &str = "dagrun-key-v1";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct KeyParts {
    pub op: String,
    pub op_version: u32,
    pub id: String,
    /// Canonical parameters: sorted keys, defaults filled in, numbers normalised.
    pub params: serde_json::Value,
    /// Content hashes of the inputs' outputs, in the node's input order.
    pub inputs: Vec<String>,
    /// Content hashes of files read, by parameter name.
    pub files: BTreeMap<String, String>,
}

impl KeyParts {
    pub fn key(&self) -> String {
        let mut h = blake3::Hasher::new();
        h.update(KEY_FORMAT.as_bytes());
        h.update(b"\n");
        h.update(&serde_json::to_vec(self).expect("key parts serialise"));
        h.finalize().to_hex().to_string()
    }
}

fn show(v: &serde_json::Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Why `new` differs from `old`, one short line per difference. `old_inputs` and
/// `new_inputs` name the input nodes in order.
pub fn explain(
    old: &KeyParts,
    old_inputs: &[String],
    new: &KeyParts,
    new_inputs: &[String],
) -> Vec<String> {
    let mut why = Vec::new();
    if old.op != new.op {
        why.push(format!("op changed: `{}` -> `{}`", old.op, new.op));
        return why;
    }
    if old.op_version != new.op_version {
        why.push(format!(
            "op `{}` code version changed: {} -> {}",
            new.op, old.op_version, new.op_version
        ));
    }
    if old.id != new.id {
        why.push(format!("id column changed: `{}` -> `{}`", old.id, new.id));
    }
    let empty = serde_json::Map::new();
    let (po, pn) = (
        old.params.as_object().unwrap_or(&empty),
        new.params.as_object().unwrap_or(&empty),
    );
    for (k, v) in pn {
        match po.get(k) {
            Some(o) if o == v => {}
            Some(o) => why.push(format!("parameter `{k}`: {} -> {}", show(o), show(v))),
            None => why.push(format!("parameter `{k}` added: {}", show(v))),
        }
    }
    for k in po.keys().filter(|k| !pn.contains_key(*k)) {
        why.push(format!("parameter `{k}` removed"));
    }
    if old_inputs != new_inputs {
        why.push(format!(
            "inputs changed: [{}] -> [{}]",
            old_inputs.join(", "),
            new_inputs.join(", ")
        ));
    } else {
        for (i, name) in new_inputs.iter().enumerate() {
            if old.inputs.get(i) != new.inputs.get(i) {
                why.push(format!("input `{name}` changed"));
            }
        }
    }
    for (k, v) in &new.files {
        if old.files.get(k) != Some(v) {
            why.push(format!("file `{k}` content changed"));
        }
    }
    why
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(n: i64) -> KeyParts {
        KeyParts {
            op: "filter".into(),
            op_version: 1,
            id: "id".into(),
            params: serde_json::json!({"a": n, "b": "x"}),
            inputs: vec!["h1".into()],
            files: BTreeMap::new(),
        }
    }

    #[test]
    fn key_is_stable_and_sensitive() {
        // The same parameters written in another order, and the same files listed in
        // another order, are the same key.
        let mut reordered = parts(1);
        reordered.params = serde_json::from_str(r#"{"b": "x", "a": 1}"#).unwrap();
        assert_eq!(reordered.key(), parts(1).key());
        let with_files = |names: &[&str]| {
            let mut p = parts(1);
            for n in names {
                p.files.insert((*n).to_owned(), format!("hash of {n}"));
            }
            p.key()
        };
        assert_eq!(
            with_files(&["a.csv", "b.csv"]),
            with_files(&["b.csv", "a.csv"])
        );
        assert_ne!(
            with_files(&["a.csv"]),
            parts(1).key(),
            "a file enters the key"
        );
        assert_ne!(parts(1).key(), parts(2).key());
        let mut p = parts(1);
        p.op_version = 2;
        assert_ne!(p.key(), parts(1).key());
        let mut p = parts(1);
        p.inputs[0] = "h2".into();
        assert_ne!(p.key(), parts(1).key());
        assert_eq!(parts(1).key().len(), 64);
    }

    #[test]
    fn explain_names_the_difference() {
        let names = vec!["catalog".to_owned()];
        assert_eq!(
            explain(&parts(1), &names, &parts(2), &names),
            ["parameter `a`: 1 -> 2"]
        );
        let mut p = parts(1);
        p.inputs[0] = "h9".into();
        assert_eq!(
            explain(&parts(1), &names, &p, &names),
            ["input `catalog` changed"]
        );
        assert!(explain(&parts(1), &names, &parts(1), &names).is_empty());
    }
}
