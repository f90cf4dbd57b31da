//! The pipeline file as written: TOML parsed with byte spans, turned into line/column
//! locations, with `--set` overrides applied. Nothing here knows what an op needs; that is
//! `validate`'s job.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::error::{Error, Loc, Result};
pub use crate::params::RawParam;

type SpannedTable = BTreeMap<Spanned<String>, Spanned<toml::Value>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    pipeline: Option<Spanned<SpannedTable>>,
    nodes: Option<Spanned<BTreeMap<Spanned<String>, Spanned<SpannedTable>>>>,
    sweep: Option<Spanned<SpannedTable>>,
    slurm: Option<Spanned<SpannedTable>>,
}

#[derive(Clone, Debug)]
pub struct RawNode {
    pub name: String,
    pub loc: Loc,
    /// Every key of the node's table, `op` and `input(s)` included, in file order.
    pub params: Vec<RawParam>,
}

impl RawNode {
    pub fn get(&self, name: &str) -> Option<&RawParam> {
        self.params.iter().find(|p| p.name == name)
    }
}

#[derive(Clone, Debug)]
pub struct RawPipeline {
    pub file: PathBuf,
    pub header: Vec<RawParam>,
    /// Nodes in file order.
    pub nodes: Vec<RawNode>,
    /// The `[sweep]` table (used by `dagrun sweep` only), in file order.
    pub sweep: Vec<RawParam>,
    /// The `[slurm]` table (job resources for `--executor slurm`; `[slurm.NODE]` tables are
    /// params with table values), then `--slurm` overrides.
    pub slurm: Vec<RawParam>,
}

impl RawPipeline {
    /// The node names in file order, for messages: `a, b, c`.
    pub fn names(&self) -> String {
        let names: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
        names.join(", ")
    }
}

/// A pipeline's text with its line starts, so a position costs a binary search, not a
/// scan from the start (`plan` on 10,000 nodes was quadratic).
struct Source<'a> {
    path: &'a Path,
    text: &'a str,
    /// Byte offset of each line's start.
    lines: Vec<usize>,
}

impl<'a> Source<'a> {
    fn new(path: &'a Path, text: &'a str) -> Self {
        let lines = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Source { path, text, lines }
    }

    /// Line and column (1-based, column in characters) of a byte offset.
    fn loc(&self, offset: usize) -> Loc {
        let offset = offset.min(self.text.len());
        let line = self.lines.partition_point(|&s| s <= offset);
        let start = self.lines[line - 1];
        let col = self.text[start..offset].chars().count() + 1;
        Loc::File {
            path: self.path.to_owned(),
            line,
            col,
        }
    }
}

fn params(src: &Source, table: SpannedTable) -> Vec<RawParam> {
    let mut out: Vec<(usize, RawParam)> = table
        .into_iter()
        .map(|(k, v)| {
            let start = k.span().start;
            let p = RawParam {
                name: k.get_ref().clone(),
                key_loc: src.loc(k.span().start),
                loc: src.loc(v.span().start),
                value: v.into_inner(),
            };
            (start, p)
        })
        .collect();
    out.sort_by_key(|(s, _)| *s);
    out.into_iter().map(|(_, p)| p).collect()
}

/// Parse pipeline text; `path` is used for locations only.
pub fn parse(path: &Path, text: &str) -> Result<RawPipeline> {
    let file: File = toml::from_str(text).map_err(|e| {
        let at = e.span().map_or(Loc::Whole(path.to_owned()), |s| {
            Source::new(path, text).loc(s.start)
        });
        // Keep the error on one line.
        let msg = e
            .message()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(": ");
        let mut msg = if msg.is_empty() {
            "invalid TOML".to_owned()
        } else {
            msg
        };
        if let Some(key) = e
            .span()
            .and_then(|s| text.get(s))
            .filter(|k| msg.contains("duplicate") && !k.contains('\n'))
        {
            msg = format!("{msg} `{}`", key.trim());
        }
        Error::spec(at, None, None, format!("invalid pipeline file: {msg}"))
    })?;
    let src = Source::new(path, text);
    let header = file
        .pipeline
        .map(|t| params(&src, t.into_inner()))
        .unwrap_or_default();
    let sweep = file
        .sweep
        .map(|t| params(&src, t.into_inner()))
        .unwrap_or_default();
    let slurm = file
        .slurm
        .map(|t| params(&src, t.into_inner()))
        .unwrap_or_default();
    let mut nodes: Vec<(usize, RawNode)> = Vec::new();
    if let Some(table) = file.nodes {
        for (name, body) in table.into_inner() {
            let start = name.span().start;
            nodes.push((
                start,
                RawNode {
                    name: name.get_ref().clone(),
                    loc: src.loc(start),
                    params: params(&src, body.into_inner()),
                },
            ));
        }
    }
    nodes.sort_by_key(|(s, _)| *s);
    Ok(RawPipeline {
        file: path.to_owned(),
        header,
        nodes: nodes.into_iter().map(|(_, n)| n).collect(),
        sweep,
        slurm,
    })
}

/// Read and parse a pipeline file.
pub fn load(path: &Path) -> Result<RawPipeline> {
    if path.is_dir() {
        return Err(Error::Usage(format!(
            "`{}` is a folder: give a pipeline file, e.g. `pipelines/featured.toml`",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            Error::Usage(format!("pipeline file `{}` not found", path.display()))
        }
        std::io::ErrorKind::InvalidData => Error::Usage(format!(
            "`{}` is not a text file (not UTF-8): a pipeline is a TOML file",
            path.display()
        )),
        _ => Error::io("cannot read pipeline file", path, e),
    })?;
    parse(path, &text)
}

/// Apply `--slurm KEY=VALUE` (every job) or `--slurm NODE.KEY=VALUE` (one node's jobs) to
/// the `[slurm]` table; the value in TOML syntax, else a bare string.
pub fn apply_slurm(raw: &mut RawPipeline, arg: &str) -> Result<()> {
    let bad = |m: &str| Error::Usage(format!("`--slurm {arg}`: {m}"));
    let (target, value) = arg.split_once('=').ok_or_else(|| {
        bad("expected KEY=VALUE or NODE.KEY=VALUE, e.g. --slurm partition=gpu --slurm embed.gpus=1")
    })?;
    let value = parse_set_value(value).map_err(|m| bad(&m))?;
    let at = Loc::Slurm(arg.to_owned());
    let param = |name: &str, value: toml::Value| RawParam {
        name: name.to_owned(),
        key_loc: at.clone(),
        loc: at.clone(),
        value,
    };
    match target.rsplit_once('.') {
        None => {
            raw.slurm.retain(|p| p.name != target);
            raw.slurm.push(param(target, value));
        }
        Some((node, key)) => {
            let i = match raw
                .slurm
                .iter()
                .position(|p| p.name == node && p.value.is_table())
            {
                Some(i) => i,
                None => {
                    raw.slurm
                        .push(param(node, toml::Value::Table(Default::default())));
                    raw.slurm.len() - 1
                }
            };
            if let toml::Value::Table(t) = &mut raw.slurm[i].value {
                t.insert(key.to_owned(), value);
            }
            raw.slurm[i].loc = at.clone();
        }
    }
    Ok(())
}

/// Add a node made by a command (e.g. `dagrun similar`), its parameters located at `at`.
pub fn add_node(
    raw: &mut RawPipeline,
    name: &str,
    at: Loc,
    params: Vec<(&str, toml::Value)>,
) -> Result<()> {
    if raw.nodes.iter().any(|n| n.name == name) {
        return Err(Error::Usage(format!(
            "`{}` already has a node named `{name}`",
            raw.file.display()
        )));
    }
    let params = params
        .into_iter()
        .map(|(k, v)| RawParam {
            name: k.to_owned(),
            key_loc: at.clone(),
            loc: at.clone(),
            value: v,
        })
        .collect();
    raw.nodes.push(RawNode {
        name: name.to_owned(),
        loc: at,
        params,
    });
    Ok(())
}

/// Parse a `--set` value: TOML syntax (`50`, `0.3`, `"x"`, `[1, 2]`, `true`); anything that
/// is not valid TOML is taken as a bare string, so `--set read.path=data/x.parquet` works.
pub fn parse_set_value(text: &str) -> std::result::Result<toml::Value, String> {
    let doc = format!("v = {text}");
    match toml::from_str::<toml::Table>(&doc) {
        Ok(mut t) => Ok(t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(text.to_owned()))),
        Err(e) => {
            // A bare word (a method, a glob, a path) is a string; what starts like a TOML
            // array, table, quoted string or number must be one.
            let mut c = text.chars();
            let first = c.next().unwrap_or(' ');
            let numeric = first.is_ascii_digit()
                || (matches!(first, '+' | '-' | '.')
                    && c.next().is_some_and(|d| d.is_ascii_digit()));
            if matches!(first, '[' | '{' | '"' | '\'') || numeric {
                let why: Vec<&str> = e
                    .message()
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect();
                Err(format!("`{text}` is not valid TOML ({}); a bare word is a string, anything else is TOML: 5, 0.1, true, \"text\", [1, 2]", why.join("; ")))
            } else {
                Ok(toml::Value::String(text.to_owned()))
            }
        }
    }
}

/// Apply one `NODE.PARAM=VALUE` override. The node must exist; whether the parameter is
/// known to the node's op is checked by validation like any other parameter.
pub fn apply_set(raw: &mut RawPipeline, arg: &str) -> Result<()> {
    let bad = |msg: &str| Error::spec(Loc::Set(arg.to_owned()), None, None, msg.to_owned());
    let (target, value) = arg
        .split_once('=')
        .ok_or_else(|| bad("expected NODE.PARAM=VALUE"))?;
    let (node, param) = split_target(target).ok_or_else(|| bad("expected NODE.PARAM=VALUE"))?;
    if !raw.nodes.iter().any(|n| n.name == node) {
        let known = raw.names();
        return Err(bad(&format!("no node named `{node}` (nodes: {known})")));
    }
    let value = parse_set_value(value.trim()).map_err(|m| bad(&m))?;
    set_param(raw, node, param, value, Loc::Set(target.trim().to_owned()))
}

/// `NODE.PARAM` split at its first dot.
pub fn split_target(target: &str) -> Option<(&str, &str)> {
    let (node, param) = target.trim().split_once('.')?;
    (!node.is_empty() && !param.is_empty()).then_some((node, param))
}

/// Set `param` of `node` to `value`; `at` is where the override was written.
pub fn set_param(
    raw: &mut RawPipeline,
    node: &str,
    param: &str,
    value: toml::Value,
    at: Loc,
) -> Result<()> {
    let known = raw.names();
    let Some(n) = raw.nodes.iter_mut().find(|n| n.name == node) else {
        return Err(Error::spec(
            at,
            None,
            None,
            format!("no node named `{node}` (nodes: {known})"),
        ));
    };
    let p = RawParam {
        name: param.to_owned(),
        key_loc: at.clone(),
        loc: at,
        value,
    };
    match n.params.iter_mut().find(|q| q.name == param) {
        Some(q) => *q = p,
        None => n.params.push(p),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_line_and_column() {
        let text = "[pipeline]\nname = \"x\"\n[nodes.a]\nop = \"synthetic\"\nn = 10\n";
        let raw = parse(Path::new("p.toml"), text).unwrap();
        assert_eq!(raw.nodes.len(), 1);
        let n = raw.nodes[0].get("n").unwrap();
        assert_eq!(
            n.key_loc,
            Loc::File {
                path: "p.toml".into(),
                line: 5,
                col: 1
            }
        );
        assert_eq!(
            n.loc,
            Loc::File {
                path: "p.toml".into(),
                line: 5,
                col: 5
            }
        );
    }

    #[test]
    fn positions_agree_with_a_scan() {
        let text = "a\nbé\n\ncd\ne";
        let src = Source::new(Path::new("p"), text);
        for offset in 0..=text.len() {
            if !text.is_char_boundary(offset) {
                continue;
            }
            let before = &text[..offset];
            let line = before.matches('\n').count() + 1;
            let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            assert_eq!(
                src.loc(offset),
                Loc::File {
                    path: "p".into(),
                    line,
                    col
                },
                "offset {offset}"
            );
        }
    }

    #[test]
    fn syntax_error_is_one_line_with_position() {
        let err = parse(Path::new("p.toml"), "[nodes.a]\nop = \n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("p.toml:2:"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn set_values_are_toml_or_bare_strings() {
        assert_eq!(parse_set_value("50"), Ok(toml::Value::Integer(50)));
        assert_eq!(parse_set_value("0.5"), Ok(toml::Value::Float(0.5)));
        assert_eq!(
            parse_set_value("\"a b\""),
            Ok(toml::Value::String("a b".into()))
        );
        assert_eq!(
            parse_set_value("data/x.parquet"),
            Ok(toml::Value::String("data/x.parquet".into()))
        );
        assert_eq!(
            parse_set_value("umap_*"),
            Ok(toml::Value::String("umap_*".into()))
        );
        // Malformed TOML is an error, not a string that fails later.
        for bad in [
            "[1,",
            "99999999999999999999",
            "\"open",
            "{a = ",
            "-3x",
            ".5.5",
        ] {
            let e = parse_set_value(bad).unwrap_err();
            assert!(
                e.contains("is not valid TOML") && !e.contains('\n'),
                "{bad}: {e}"
            );
        }
    }
}
