//! Tidy checks on the source tree, as ordinary tests.

#[test]
fn every_source_file_starts_with_a_module_doc() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut stack = vec![root.join("src"), root.join("tests"), root.join("benches")];
    let mut missing = Vec::new();
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                if !text.starts_with("//!") {
                    missing.push(p.display().to_string());
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "files without a leading `//!` doc: {missing:?}"
    );
}

/// The module of each file under `src/` (`cache/store.rs` is `cache::store`, `ops/mod.rs`
/// is `ops`, `lib.rs` and `main.rs` the root ``).
fn modules() -> Vec<(String, String)> {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p.strip_prefix(&src).unwrap().with_extension("");
                let mut parts: Vec<String> = rel
                    .iter()
                    .map(|c| c.to_string_lossy().into_owned())
                    .collect();
                if matches!(
                    parts.last().map(String::as_str),
                    Some("mod" | "lib" | "main")
                ) {
                    parts.pop();
                }
                out.push((parts.join("::"), std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    out
}

/// The module a path like `cache::store::Store` names: its longest prefix that is a module.
fn resolve(path: &str, known: &std::collections::BTreeSet<String>) -> Option<String> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len())
        .rev()
        .map(|k| parts[..k].join("::"))
        .find(|m| known.contains(m))
}

/// Import edges between modules: every `crate::…` and `super::…` path in code (comments
/// skipped). A module and its own ancestors or descendants are one unit (a parent
/// re-exports its children; a child uses its parent's types), so those edges are left out.
fn import_edges() -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let mods = modules();
    let known: std::collections::BTreeSet<String> = mods.iter().map(|(m, _)| m.clone()).collect();
    let related = |a: &str, b: &str| {
        a == b
            || a.is_empty()
            || b.is_empty()
            || a.starts_with(&format!("{b}::"))
            || b.starts_with(&format!("{a}::"))
    };
    let mut edges: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        std::collections::BTreeMap::new();
    for (m, text) in &mods {
        let parent = m
            .rsplit_once("::")
            .map_or(String::new(), |(p, _)| p.to_owned());
        for line in text.lines().map(str::trim).filter(|l| !l.starts_with("//")) {
            for (prefix, base) in [("crate::", String::new()), ("super::", parent.clone())] {
                for (at, _) in line.match_indices(prefix) {
                    if at > 0
                        && line[..at]
                            .ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':')
                    {
                        continue;
                    }
                    let rest: String = line[at + prefix.len()..]
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                        .collect();
                    let full = if base.is_empty() {
                        rest.clone()
                    } else {
                        format!("{base}::{rest}")
                    };
                    if let Some(target) = resolve(full.trim_end_matches(':'), &known) {
                        if !related(m, &target) {
                            edges.entry(m.clone()).or_default().insert(target);
                        }
                    }
                }
            }
        }
    }
    edges
}

#[test]
fn no_import_cycles_between_modules() {
    let edges = import_edges();
    assert!(
        edges
            .get("ops::cluster")
            .is_some_and(|t| t.contains("numeric"))
            && edges.get("exec").is_some_and(|t| t.contains("ops")),
        "the scan sees real edges: {edges:?}"
    );
    // Depth-first search for a back edge; report the cycle.
    fn visit(
        m: &str,
        edges: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
        state: &mut std::collections::BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(m.to_owned(), 1);
        path.push(m.to_owned());
        for t in edges.get(m).into_iter().flatten() {
            match state.get(t.as_str()).copied().unwrap_or(0) {
                1 => {
                    let start = path.iter().position(|p| p == t).unwrap();
                    let mut cycle = path[start..].to_vec();
                    cycle.push(t.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(t, edges, state, path) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        state.insert(m.to_owned(), 2);
        None
    }
    let mut state = std::collections::BTreeMap::new();
    for m in edges.keys() {
        if state.get(m.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(cycle) = visit(m, &edges, &mut state, &mut Vec::new()) {
                panic!("import cycle: {}", cycle.join(" -> "));
            }
        }
    }
}
