//! From a pipeline file to a [`Pipeline`] the executor can trust.
//!
//! `raw` mirrors the file (with positions) and applies `--set`; `params` gives typed access
//! to a node's parameters; `validate` checks everything that can be checked before running:
//! names, ops, parameters, inputs, cycles, and every column an op refers to (output schemas
//! are derived node by node without computing anything).

pub mod raw;
pub mod resources;
pub mod validate;

use std::path::PathBuf;

use polars::prelude::SchemaRef;

use crate::dag::NodeId;
use crate::error::Loc;
use crate::ops::Op;

/// A validated pipeline: names are unique, inputs exist, the graph is acyclic, parameters
/// are typed and checked, and every referenced column exists in its input.
#[derive(Clone, Debug)]
pub struct Pipeline {
    pub name: String,
    /// The id column carried through every node.
    pub id: String,
    pub file: PathBuf,
    /// `[pipeline] cache`, resolved against the file's folder.
    pub cache: Option<PathBuf>,
    /// In file order; a `NodeId` indexes this.
    pub nodes: Vec<Node>,
    /// A topological order of all nodes.
    pub order: Vec<NodeId>,
    /// Job resources for `--executor slurm` (`[slurm]`).
    pub slurm: resources::SlurmSpec,
}

#[derive(Clone, Debug)]
pub struct Node {
    pub name: String,
    pub loc: Loc,
    pub op: Op,
    pub inputs: Vec<NodeId>,
    /// The output schema, derived at validation.
    pub schema: SchemaRef,
}

impl Pipeline {
    /// The folder of the catalogue file a node's rows come from: first inputs followed up to
    /// a `read` node (relative image paths resolve against it).
    pub fn source_dir(&self, from: NodeId) -> Option<PathBuf> {
        let ops: Vec<&Op> = self.nodes.iter().map(|n| &n.op).collect();
        crate::ops::draft::source_dir(&ops, &self.inputs(), from)
    }

    /// The node whose table shows node `from`'s galaxies with their cutouts: the nearest
    /// at or above it (first inputs followed) with an image column `file_loc` (an `embed`
    /// node's catalogue), else `from` itself.
    pub fn image_source(&self, from: NodeId) -> NodeId {
        let mut v = from;
        while !self.nodes[v].schema.contains("file_loc") {
            match self.nodes[v].inputs.first() {
                Some(&u) => v = u,
                None => return from,
            }
        }
        v
    }

    /// The nodes `--shard I/N` runs: shard `i` of every sharded `embed` node, which must
    /// all have `n` shards.
    pub fn shard_nodes(&self, i: u32, n: u32) -> crate::error::Result<Vec<NodeId>> {
        use crate::error::Error;
        let arg = format!("{i}/{n}");
        let mut t = Vec::new();
        for node in &self.nodes {
            if let Op::Merge(m) = &node.op {
                if m.shards != n {
                    return Err(Error::Usage(format!(
                        "`--shard {arg}`: node `{}` has {} shards, not {n}",
                        node.name, m.shards
                    )));
                }
                let name = format!("{}.shard{i}", node.name);
                t.push(self.find(&name).expect("validation made the shard nodes"));
            }
        }
        if t.is_empty() {
            return Err(Error::Usage(format!(
                "`--shard {arg}`: `{}` has no sharded node (set `shards = N` on an embed node)",
                self.file.display()
            )));
        }
        Ok(t)
    }

    pub fn find(&self, name: &str) -> Option<NodeId> {
        self.nodes.iter().position(|n| n.name == name)
    }

    pub fn inputs(&self) -> Vec<Vec<NodeId>> {
        self.nodes.iter().map(|n| n.inputs.clone()).collect()
    }

    pub fn names(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Load, override and validate a pipeline file.
pub fn load(path: &std::path::Path, sets: &[String]) -> crate::error::Result<Pipeline> {
    load_with(path, sets, &[])
}

/// [`load`], with `--slurm` job-resource overrides.
pub fn load_with(
    path: &std::path::Path,
    sets: &[String],
    slurm: &[String],
) -> crate::error::Result<Pipeline> {
    validate::validate(load_raw(path, sets, slurm)?)
}

/// A pipeline file as written, with `--set` and `--slurm` overrides applied, not yet
/// validated: for commands that add nodes or grid points before validation.
pub fn load_raw(
    path: &std::path::Path,
    sets: &[String],
    slurm: &[String],
) -> crate::error::Result<raw::RawPipeline> {
    let mut raw = raw::load(path)?;
    for s in sets {
        raw::apply_set(&mut raw, s)?;
    }
    for s in slurm {
        raw::apply_slurm(&mut raw, s)?;
    }
    Ok(raw)
}
