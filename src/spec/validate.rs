//! Check a [`RawPipeline`] and build the [`Pipeline`] the executor accepts. Every error is
//! a [`SpecError`](crate::error::SpecError) naming the file position, the node and the
//! parameter.

use std::path::Path;
use std::sync::Arc;

use super::raw::{RawParam, RawPipeline};
use super::{Node, Pipeline};
use crate::dag;
use crate::error::{Error, Loc, Result};
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

pub fn validate(raw: RawPipeline) -> Result<Pipeline> {
    let file = raw.file.clone();
    let base_dir = file.parent().map(Path::to_owned).unwrap_or_default();
    let base_dir = if base_dir.as_os_str().is_empty() {
        Path::new(".").to_owned()
    } else {
        base_dir
    };

    let mut name = file.file_stem().map_or_else(
        || "pipeline".to_owned(),
        |s| s.to_string_lossy().into_owned(),
    );
    let mut id = "id".to_owned();
    let mut cache = None;
    for p in &raw.header {
        match p.name.as_str() {
            "name" => {
                name = header_string(p)?;
                if !valid_name(&name) {
                    return Err(Error::spec(p.loc.clone(), None, Some("pipeline.name"), format!("use ASCII letters, digits, `_` and `-` only, at most {MAX_NAME} of them")));
                }
            }
            "id" => id = header_string(p)?,
            "cache" => cache = Some(base_dir.join(header_string(p)?)),
            other => {
                return Err(Error::spec(
                    p.key_loc.clone(),
                    None,
                    Some(&format!("pipeline.{other}")),
                    "unknown key in [pipeline] (it takes: name, id, cache)",
                ))
            }
        }
    }
    if raw.nodes.is_empty() {
        return Err(Error::spec(
            Loc::Whole(file),
            None,
            None,
            "the pipeline has no nodes: add a `[nodes.NAME]` table with an `op`",
        ));
    }
    let names: Vec<&str> = raw.nodes.iter().map(|n| n.name.as_str()).collect();
    let all_names = names.join(", ");

    // Parameters and inputs, node by node.
    let mut ops: Vec<Op> = Vec::with_capacity(raw.nodes.len());
    let mut inputs: Vec<Vec<usize>> = Vec::with_capacity(raw.nodes.len());
    let mut input_locs: Vec<Loc> = Vec::with_capacity(raw.nodes.len());
    let mut param_locs = Vec::with_capacity(raw.nodes.len());
    for node in &raw.nodes {
        if !valid_name(&node.name) {
            return Err(Error::spec(node.loc.clone(), Some(&node.name), None, format!("node names use ASCII letters, digits, `_` and `-` only, at most {MAX_NAME} of them")));
        }
        let rest: Vec<RawParam> = node
            .params
            .iter()
            .filter(|p| !matches!(p.name.as_str(), "op" | "input" | "inputs"))
            .cloned()
            .collect();
        let op_param = node.get("op").ok_or_else(|| {
            Error::spec(
                node.loc.clone(),
                Some(&node.name),
                Some("op"),
                format!("missing (one of: {})", Op::names().join(", ")),
            )
        })?;
        let kind = match &op_param.value {
            toml::Value::String(s) => s.clone(),
            _ => {
                return Err(Error::spec(
                    op_param.loc.clone(),
                    Some(&node.name),
                    Some("op"),
                    "expected a string",
                ))
            }
        };
        let mut all = vec![op_param.clone()];
        all.extend(rest);
        let mut p = Params::new(&node.name, &kind, node.loc.clone(), all);
        p.string("op")?;
        let op = Op::parse(&kind, &mut p, &base_dir)?;
        param_locs.push(p.locations());
        p.finish()?;

        let (listed, loc) = match (node.get("input"), node.get("inputs")) {
            (Some(a), Some(_)) => {
                return Err(Error::spec(
                    a.key_loc.clone(),
                    Some(&node.name),
                    Some("input"),
                    "give `input` or `inputs`, not both",
                ))
            }
            (Some(p), None) => match &p.value {
                toml::Value::String(s) => (vec![s.clone()], p.loc.clone()),
                _ => {
                    return Err(Error::spec(
                        p.loc.clone(),
                        Some(&node.name),
                        Some("input"),
                        "expected a node name (a string)",
                    ))
                }
            },
            (None, Some(p)) => match &p.value {
                toml::Value::Array(a) => {
                    let v: Option<Vec<String>> =
                        a.iter().map(|x| x.as_str().map(str::to_owned)).collect();
                    let v = v.ok_or_else(|| {
                        Error::spec(
                            p.loc.clone(),
                            Some(&node.name),
                            Some("inputs"),
                            "expected an array of node names",
                        )
                    })?;
                    (v, p.loc.clone())
                }
                _ => {
                    return Err(Error::spec(
                        p.loc.clone(),
                        Some(&node.name),
                        Some("inputs"),
                        "expected an array of node names",
                    ))
                }
            },
            (None, None) => (Vec::new(), node.loc.clone()),
        };
        let param = if node.get("inputs").is_some() {
            "inputs"
        } else {
            "input"
        };
        let mut ids = Vec::with_capacity(listed.len());
        for i in &listed {
            let idx = names.iter().position(|n| n == i).ok_or_else(|| {
                Error::spec(
                    loc.clone(),
                    Some(&node.name),
                    Some(param),
                    format!("input `{i}` names no node (nodes: {all_names})"),
                )
            })?;
            ids.push(idx);
        }
        let (lo, hi) = match op.arity() {
            Arity::Exactly(n) => (n, n),
            Arity::Between(lo, hi) => (lo, hi),
        };
        if ids.len() < lo || ids.len() > hi {
            let msg = match (lo, hi) {
                (0, 0) => format!("op `{kind}` takes no input, found {}", ids.len()),
                (1, 1) => format!("op `{kind}` takes one `input`, found {}", ids.len()),
                (n, m) if n == m => format!("op `{kind}` takes {n} `inputs`, found {}", ids.len()),
                (n, m) => format!("op `{kind}` takes {n} to {m} `inputs`, found {}", ids.len()),
            };
            return Err(Error::spec(loc.clone(), Some(&node.name), Some(param), msg));
        }
        ops.push(op);
        inputs.push(ids);
        input_locs.push(loc);
    }

    // A UMAP reduction reads a hidden kNN node, cached on its own.
    let mut names: Vec<String> = raw.nodes.iter().map(|n| n.name.clone()).collect();
    let mut locs: Vec<Loc> = raw.nodes.iter().map(|n| n.loc.clone()).collect();
    for v in 0..raw.nodes.len() {
        let knn = match &ops[v] {
            Op::Reduce(r) => r.knn(),
            _ => None,
        };
        if let Some(knn) = knn {
            let id = ops.len();
            names.push(format!("{}.knn", names[v]));
            locs.push(locs[v].clone());
            ops.push(Op::Knn(knn));
            inputs.push(inputs[v].clone());
            input_locs.push(input_locs[v].clone());
            param_locs.push(param_locs[v].clone());
            inputs[v].push(id);
        }
    }

    // An `assign` reads the search it assigns into: the chain select -> cluster -> UMAP
    // reduce above its CLASSES input, and the layout's core distances as a hidden node.
    for v in 0..raw.nodes.len() {
        if !matches!(ops[v], Op::Assign(_)) {
            continue;
        }
        let chain_error = |what: String| {
            Error::spec(
                input_locs[v].clone(),
                Some(&names[v]),
                Some("inputs"),
                format!("{what}: `assign` takes `inputs = [\"NEW\", \"CLASSES\"]`, CLASSES a select-leaves or select-eom node over a `cluster` node over a `reduce` with method \"umap\""),
            )
        };
        let classes = inputs[v][1];
        let Op::Select(select) = &ops[classes] else {
            return Err(chain_error(format!(
                "input `{}` is a `{}` node, not a select-leaves or select-eom node",
                names[classes],
                ops[classes].name()
            )));
        };
        let tree = inputs[classes][0];
        let Op::Cluster(cluster) = &ops[tree] else {
            return Err(chain_error(format!(
                "`{}` selects from `{}`, a `{}` node, not a `cluster` node",
                names[classes],
                names[tree],
                ops[tree].name()
            )));
        };
        let layout = inputs[tree][0];
        let reduce = match &ops[layout] {
            Op::Reduce(r) if r.umap.is_some() => r,
            other => {
                return Err(chain_error(format!(
                    "`{}` clusters `{}`, a `{}` node, not a UMAP reduction",
                    names[tree],
                    names[layout],
                    other.name()
                )))
            }
        };
        let (features, knn) = (inputs[layout][0], inputs[layout][1]);
        let metric = reduce
            .umap
            .as_ref()
            .map_or(crate::ops::reduce::Metric::Euclidean, |u| u.metric);
        let fit = crate::ops::assign::FitSpec {
            reduce: reduce.clone(),
            cluster: cluster.clone(),
            select: select.clone(),
            selection: ops[classes].name().to_string(),
            features: Vec::new(),
            features_node: features,
        };
        let index = crate::ops::assign::Index {
            columns: reduce.columns.clone(),
            metric,
            trees: crate::ops::assign::SEARCH_TREES,
            reverse: crate::ops::assign::SEARCH_REVERSE,
        };
        let core = crate::ops::assign::Core {
            columns: cluster.columns.clone(),
            min_samples: cluster.min_samples,
        };
        let mut hidden = Vec::new();
        for (suffix, op, ins) in [
            ("index", Op::Index(index), vec![features, knn]),
            ("core", Op::Core(core), vec![layout]),
        ] {
            hidden.push(ops.len());
            names.push(format!("{}.{suffix}", names[v]));
            locs.push(locs[v].clone());
            ops.push(op);
            inputs.push(ins);
            input_locs.push(input_locs[v].clone());
            param_locs.push(param_locs[v].clone());
        }
        if let Op::Assign(a) = &mut ops[v] {
            a.fit = Some(fit);
        }
        inputs[v].extend([tree, layout, hidden[0], hidden[1]]);
    }

    // A `similar` node searches its first input's vectors, kept by a hidden `vectors` node.
    for v in 0..raw.nodes.len() {
        let Op::Similar(s) = &ops[v] else { continue };
        let vectors = crate::ops::similar::Vectors {
            columns: s.columns.clone(),
        };
        let id = ops.len();
        names.push(format!("{}.vectors", names[v]));
        locs.push(locs[v].clone());
        ops.push(Op::Vectors(vectors));
        inputs.push(vec![inputs[v][0]]);
        input_locs.push(input_locs[v].clone());
        param_locs.push(param_locs[v].clone());
        inputs[v][0] = id;
    }

    // An `embed` with `shards = N` becomes N split nodes, N embed nodes and a merge.
    for v in 0..raw.nodes.len() {
        let Op::Embed(e) = &ops[v] else { continue };
        if e.shards <= 1 {
            continue;
        }
        let (e, count) = (e.clone(), e.shards);
        let mut shard_ids = Vec::with_capacity(count as usize);
        for i in 0..count {
            let split = ops.len();
            names.push(format!("{}.split{i}", names[v]));
            locs.push(locs[v].clone());
            ops.push(Op::Split(crate::ops::shard::Split {
                index: i,
                count,
                columns: vec![e.image_column.clone()],
            }));
            inputs.push(inputs[v].clone());
            input_locs.push(input_locs[v].clone());
            param_locs.push(param_locs[v].clone());
            let shard = ops.len();
            names.push(format!("{}.shard{i}", names[v]));
            locs.push(locs[v].clone());
            ops.push(Op::Embed(crate::ops::embed::Embed {
                shards: 1,
                ..e.clone()
            }));
            inputs.push(vec![split]);
            input_locs.push(input_locs[v].clone());
            param_locs.push(param_locs[v].clone());
            shard_ids.push(shard);
        }
        ops[v] = Op::Merge(crate::ops::shard::Merge { shards: count });
        inputs[v].extend(shard_ids);
    }

    // Relative image paths default to the folder of the catalogue file they came from.
    let source_dir = |ops: &[Op], from: usize| super::source_dir(ops, &inputs, from);
    for v in 0..ops.len() {
        let dir = match &ops[v] {
            Op::Report(r) if r.image_dir.is_none() && inputs[v].len() > 1 => {
                source_dir(&ops, inputs[v][1])
            }
            Op::Embed(e) if e.base_dir.is_none() => source_dir(&ops, inputs[v][0]),
            _ => None,
        };
        match &mut ops[v] {
            Op::Report(r) if dir.is_some() => r.image_dir = dir,
            Op::Embed(e) if dir.is_some() => e.base_dir = dir,
            _ => {}
        }
    }

    let order = dag::topo_order(&inputs).map_err(|cycle| {
        let path: Vec<&str> = cycle.iter().map(|&i| names[i].as_str()).collect();
        let first = cycle[0];
        Error::spec(
            input_locs[first].clone(),
            Some(&names[first]),
            None,
            format!("the inputs form a cycle: {}", path.join(" -> ")),
        )
    })?;

    // Output schemas in dependency order: every referenced column must exist.
    let mut schemas: Vec<Option<polars::prelude::SchemaRef>> = vec![None; ops.len()];
    for &v in &order {
        let ins: Vec<_> = inputs[v]
            .iter()
            .map(|&u| schemas[u].clone().expect("inputs come first"))
            .collect();
        let name = &names[v];
        for (k, s) in ins.iter().enumerate() {
            if !s.contains(&id) {
                return Err(Error::spec(
                    input_locs[v].clone(),
                    Some(name),
                    None,
                    format!("input `{}` has no id column `{id}`", names[inputs[v][k]]),
                ));
            }
        }
        // An `assign` checks new galaxies against the fitted features' columns, which it
        // does not read as a table (its index holds them).
        if let Op::Assign(a) = &mut ops[v] {
            if let Some(fit) = a.fit.as_mut() {
                let features = schemas[fit.features_node]
                    .clone()
                    .expect("inputs come first");
                fit.features = crate::ops::columns::resolve(&features, &fit.reduce.columns)
                    .unwrap_or_default();
            }
        }
        let schema = ops[v].output_schema(&ins, &id)?.map_err(|e| {
            let loc: Loc = param_locs[v]
                .get(e.param)
                .cloned()
                .unwrap_or_else(|| locs[v].clone());
            Error::spec(loc, Some(name), Some(e.param), e.message)
        })?;
        schemas[v] = Some(Arc::new(schema));
    }

    let nodes = names
        .into_iter()
        .zip(locs)
        .zip(ops)
        .zip(inputs)
        .zip(schemas)
        .map(|((((name, loc), op), inputs), schema)| Node {
            name,
            loc,
            op,
            inputs,
            schema: schema.expect("all derived"),
        })
        .collect();
    let written: Vec<&str> = raw.nodes.iter().map(|n| n.name.as_str()).collect();
    let slurm = super::resources::parse(&raw.slurm, &written)?;
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
