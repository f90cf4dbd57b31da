//! Check a [`RawPipeline`] and build the [`Pipeline`] the executor accepts. Every error is
//! a [`SpecError`](crate::error::SpecError) naming the file position, the node and the
//! parameter.
//!
//! The written nodes are parsed into a [`Draft`]; then, inputs first, each op adds the
//! hidden nodes it reads ([`crate::ops::Kind::expand`]) and every node's output schema is
//! derived, so a missing column is caught here. Nothing in this file knows an op by name.

use std::path::{Path, PathBuf};

use super::raw::{RawNode, RawParam, RawPipeline};
use super::{Node, Pipeline};
use crate::dag;
use crate::error::{Error, Loc, Result};
use crate::ops::draft::{Draft, DraftNode};
use crate::ops::{Arity, Op};
use crate::params::Params;

/// The longest node or pipeline name (they name files and folders in the cache).
pub const MAX_NAME: usize = 100;

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn header_string(p: &RawParam) -> Result<String> {
    match &p.value {
        toml::Value::String(s) if !s.is_empty() => Ok(s.clone()),
        _ => Err(Error::spec(
            p.loc.clone(),
            None,
            Some(&format!("pipeline.{}", p.name)),
            "expected a non-empty string",
        )),
    }
}

/// `[pipeline]`: the name (default: the file's stem), the id column and the cache folder.
struct Header {
    name: String,
    id: String,
    cache: Option<PathBuf>,
}

fn header(raw: &RawPipeline, base_dir: &Path) -> Result<Header> {
    let stem = raw
        .file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned());
    let mut h = Header {
        name: stem.unwrap_or_else(|| "pipeline".into()),
        id: "id".into(),
        cache: None,
    };
    for p in &raw.header {
        match p.name.as_str() {
            "name" => {
                h.name = header_string(p)?;
                if !valid_name(&h.name) {
                    let msg = format!(
                        "use ASCII letters, digits, `_` and `-` only, at most {MAX_NAME} of them"
                    );
                    return Err(Error::spec(p.loc.clone(), None, Some("pipeline.name"), msg));
                }
            }
            "id" => h.id = header_string(p)?,
            "cache" => h.cache = Some(base_dir.join(header_string(p)?)),
            other => {
                let msg = "unknown key in [pipeline] (it takes: name, id, cache)";
                return Err(Error::spec(
                    p.key_loc.clone(),
                    None,
                    Some(&format!("pipeline.{other}")),
                    msg,
                ));
            }
        }
    }
    Ok(h)
}

pub fn validate(raw: RawPipeline) -> Result<Pipeline> {
    let file = raw.file.clone();
    let base_dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => Path::new(".").to_owned(),
    };
    let Header { name, id, cache } = header(&raw, &base_dir)?;
    if raw.nodes.is_empty() {
        let msg = "the pipeline has no nodes: add a `[nodes.NAME]` table with an `op`";
        return Err(Error::spec(Loc::Whole(file), None, None, msg));
    }
    let names: Vec<&str> = raw.nodes.iter().map(|n| n.name.as_str()).collect();
    let mut draft = Draft {
        id: id.clone(),
        nodes: Vec::with_capacity(raw.nodes.len()),
    };
    for node in &raw.nodes {
        draft.nodes.push(parse_node(node, &names, &base_dir)?);
    }

    // Inputs first: each op adds its hidden nodes (reading nodes already expanded), then
    // every new node's schema and its own are derived.
    let written: Vec<Vec<usize>> = draft.nodes.iter().map(|n| n.inputs.clone()).collect();
    for v in dag::topo_order(&written).map_err(|c| cycle(&draft, &c))? {
        let before = draft.nodes.len();
        let op = draft.nodes[v].op.clone();
        if let Some(op) = op.expand(v, &mut draft)? {
            draft.nodes[v].op = op;
        }
        for u in (before..draft.nodes.len()).chain([v]) {
            draft.derive(u)?;
        }
    }
    let inputs: Vec<Vec<usize>> = draft.nodes.iter().map(|n| n.inputs.clone()).collect();
    let order = dag::topo_order(&inputs).map_err(|c| cycle(&draft, &c))?;
    let nodes = draft
        .nodes
        .into_iter()
        .map(|n| Node {
            name: n.name,
            loc: n.loc,
            op: n.op,
            inputs: n.inputs,
            schema: n.schema.expect("all derived"),
        })
        .collect();
    let slurm = super::resources::parse(&raw.slurm, &names)?;
    Ok(Pipeline {
        name,
        id,
        file,
        cache,
        nodes,
        order,
        slurm,
    })
}

/// The error for a cycle of inputs, at the first node's `input(s)`.
fn cycle(draft: &Draft, cycle: &[usize]) -> Error {
    let path: Vec<&str> = cycle
        .iter()
        .map(|&i| draft.nodes[i].name.as_str())
        .collect();
    let first = &draft.nodes[cycle[0]];
    let msg = format!("the inputs form a cycle: {}", path.join(" -> "));
    Error::spec(first.input_loc.clone(), Some(&first.name), None, msg)
}

/// One written node: its op and parameters parsed and checked, its inputs found by name.
fn parse_node(node: &RawNode, names: &[&str], base_dir: &Path) -> Result<DraftNode> {
    let at = |loc: &Loc, param: &str, msg: String| {
        Error::spec(loc.clone(), Some(&node.name), Some(param), msg)
    };
    if !valid_name(&node.name) {
        let msg = format!(
            "node names use ASCII letters, digits, `_` and `-` only, at most {MAX_NAME} of them"
        );
        return Err(Error::spec(node.loc.clone(), Some(&node.name), None, msg));
    }
    let op_param = node.get("op").ok_or_else(|| {
        at(
            &node.loc,
            "op",
            format!("missing (one of: {})", Op::names().join(", ")),
        )
    })?;
    let kind = match &op_param.value {
        toml::Value::String(s) => s.clone(),
        _ => return Err(at(&op_param.loc, "op", "expected a string".into())),
    };
    let rest = node
        .params
        .iter()
        .filter(|p| !matches!(p.name.as_str(), "op" | "input" | "inputs"));
    let all: Vec<RawParam> = std::iter::once(op_param).chain(rest).cloned().collect();
    let mut p = Params::new(&node.name, &kind, node.loc.clone(), all);
    p.string("op")?;
    let op = Op::parse(&kind, &mut p, base_dir)?;
    let param_locs = p.locations();
    p.finish()?;
    let (inputs, input_loc, param) = inputs_of(node, names)?;
    check_arity(&op, &kind, inputs.len()).map_err(|msg| at(&input_loc, param, msg))?;
    Ok(DraftNode {
        name: node.name.clone(),
        loc: node.loc.clone(),
        op,
        inputs,
        input_loc,
        param_locs,
        schema: None,
    })
}

/// The nodes a written node names in `input` (one) or `inputs` (a list), where, and which
/// of the two it wrote.
fn inputs_of(node: &RawNode, names: &[&str]) -> Result<(Vec<usize>, Loc, &'static str)> {
    let at = |p: &RawParam, param: &str, msg: &str| {
        Error::spec(p.loc.clone(), Some(&node.name), Some(param), msg)
    };
    let (listed, loc, param) = match (node.get("input"), node.get("inputs")) {
        (Some(a), Some(_)) => {
            let msg = "give `input` or `inputs`, not both";
            return Err(Error::spec(
                a.key_loc.clone(),
                Some(&node.name),
                Some("input"),
                msg,
            ));
        }
        (Some(p), None) => match &p.value {
            toml::Value::String(s) => (vec![s.clone()], p.loc.clone(), "input"),
            _ => return Err(at(p, "input", "expected a node name (a string)")),
        },
        (None, Some(p)) => {
            let list = p
                .value
                .as_array()
                .and_then(|a| a.iter().map(|x| x.as_str().map(str::to_owned)).collect());
            let list: Vec<String> =
                list.ok_or_else(|| at(p, "inputs", "expected an array of node names"))?;
            (list, p.loc.clone(), "inputs")
        }
        (None, None) => (Vec::new(), node.loc.clone(), "input"),
    };
    let ids = listed
        .iter()
        .map(|i| {
            names.iter().position(|n| n == i).ok_or_else(|| {
                let msg = format!("input `{i}` names no node (nodes: {})", names.join(", "));
                Error::spec(loc.clone(), Some(&node.name), Some(param), msg)
            })
        })
        .collect::<Result<_>>()?;
    Ok((ids, loc, param))
}

/// Whether op `kind` takes `n` inputs; if not, why.
fn check_arity(op: &Op, kind: &str, n: usize) -> std::result::Result<(), String> {
    let (lo, hi) = match op.arity() {
        Arity::Exactly(n) => (n, n),
        Arity::Between(lo, hi) => (lo, hi),
    };
    if (lo..=hi).contains(&n) {
        return Ok(());
    }
    Err(match (lo, hi) {
        (0, 0) => format!("op `{kind}` takes no input, found {n}"),
        (1, 1) => format!("op `{kind}` takes one `input`, found {n}"),
        (a, b) if a == b => format!("op `{kind}` takes {a} `inputs`, found {n}"),
        (a, b) => format!("op `{kind}` takes {a} to {b} `inputs`, found {n}"),
    })
}
