//! A pipeline between parsing and the DAG the executor trusts: one list of nodes, each with
//! its op, its inputs, where its inputs and parameters were written and, once derived, its
//! output schema. Ops add the hidden nodes they read here, in their own files
//! ([`super::Kind::expand`]), so validation (`spec::validate`) knows no op by name. It lives
//! beside the ops, which write into it, so that `spec` depends on `ops` and not the reverse.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use polars::prelude::SchemaRef;

use super::Op;
use crate::dag::NodeId;
use crate::error::{Error, Loc, Result};

/// A node being validated.
#[derive(Clone, Debug)]
pub struct DraftNode {
    pub name: String,
    /// Where the node is written (a hidden node: where the node that added it is).
    pub loc: Loc,
    pub op: Op,
    pub inputs: Vec<NodeId>,
    /// Where its `input` or `inputs` is written.
    pub input_loc: Loc,
    /// Where each parameter is written.
    pub param_locs: BTreeMap<String, Loc>,
    /// The output schema, once derived (inputs first).
    pub schema: Option<SchemaRef>,
}

/// The nodes of a pipeline being validated: the written ones first, in file order, then the
/// hidden ones in the order ops add them.
#[derive(Debug)]
pub struct Draft {
    /// The id column carried through every node.
    pub id: String,
    pub nodes: Vec<DraftNode>,
}

impl Draft {
    /// Add hidden node `{of}.{suffix}` reading `inputs`, located where node `of` is;
    /// returns its index.
    pub fn add_hidden(&mut self, of: NodeId, suffix: &str, op: Op, inputs: Vec<NodeId>) -> NodeId {
        let o = &self.nodes[of];
        let node = DraftNode {
            name: format!("{}.{suffix}", o.name),
            loc: o.loc.clone(),
            op,
            inputs,
            input_loc: o.input_loc.clone(),
            param_locs: o.param_locs.clone(),
            schema: None,
        };
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// An error about node `v`'s inputs, located at its `input`/`inputs`.
    pub fn input_error(&self, v: NodeId, param: &str, message: impl Into<String>) -> Error {
        let n = &self.nodes[v];
        Error::spec(n.input_loc.clone(), Some(&n.name), Some(param), message)
    }

    /// The folder of the catalogue file node `from`'s rows come from (see [`source_dir`]).
    pub fn source_dir(&self, from: NodeId) -> Option<PathBuf> {
        let ops: Vec<&Op> = self.nodes.iter().map(|n| &n.op).collect();
        let inputs: Vec<Vec<NodeId>> = self.nodes.iter().map(|n| n.inputs.clone()).collect();
        source_dir(&ops, &inputs, from)
    }

    /// The derived output schema of node `v` (an input of the node being expanded).
    pub fn schema(&self, v: NodeId) -> SchemaRef {
        self.nodes[v]
            .schema
            .clone()
            .expect("inputs are derived first")
    }

    /// Derive node `v`'s output schema from its inputs' (derived before it): every input
    /// carries the id column, and every column the op names exists.
    pub fn derive(&mut self, v: NodeId) -> Result<()> {
        let n = &self.nodes[v];
        let ins: Vec<SchemaRef> = n.inputs.iter().map(|&u| self.schema(u)).collect();
        for (k, s) in ins.iter().enumerate() {
            if !s.contains(&self.id) {
                let input = &self.nodes[n.inputs[k]].name;
                let msg = format!("input `{input}` has no id column `{}`", self.id);
                return Err(Error::spec(n.input_loc.clone(), Some(&n.name), None, msg));
            }
        }
        let schema = n.op.output_schema(&ins, &self.id)?.map_err(|e| {
            let loc = n
                .param_locs
                .get(e.param)
                .cloned()
                .unwrap_or_else(|| n.loc.clone());
            Error::spec(loc, Some(&n.name), Some(e.param), e.message)
        })?;
        self.nodes[v].schema = Some(Arc::new(schema));
        Ok(())
    }
}

/// The folder of the catalogue file node `from`'s rows come from: first inputs followed up
/// to a `read` node. Used by validation (on the draft) and by `Pipeline::source_dir`.
pub fn source_dir<O: std::borrow::Borrow<Op>>(
    ops: &[O],
    inputs: &[Vec<NodeId>],
    from: NodeId,
) -> Option<PathBuf> {
    let mut u = from;
    for _ in 0..ops.len() {
        if let Op::Read(read) = ops[u].borrow() {
            return read.path.parent().map(std::path::Path::to_owned);
        }
        u = *inputs[u].first()?;
    }
    None
}
