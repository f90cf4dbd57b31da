//! Typed access to a node's parameters, with errors that name the file position, the node
//! and the parameter. Every getter records the name it was asked for, so `finish` can say
//! which parameters the op knows when it meets one it does not.

use std::collections::BTreeMap;

use crate::error::{Error, Loc, Result};

/// One `key = value` of a node or of `[pipeline]`.
#[derive(Clone, Debug)]
pub struct RawParam {
    pub name: String,
    /// Where the key was written (for "unknown parameter").
    pub key_loc: Loc,
    /// Where the value was written (for "expected an integer").
    pub loc: Loc,
    pub value: toml::Value,
}

pub struct Params<'a> {
    node: &'a str,
    op: &'a str,
    node_loc: Loc,
    items: Vec<RawParam>,
    used: Vec<bool>,
    known: Vec<&'static str>,
}

fn type_name(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a date",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

impl<'a> Params<'a> {
    pub fn new(node: &'a str, op: &'a str, node_loc: Loc, items: Vec<RawParam>) -> Self {
        let used = vec![false; items.len()];
        Params {
            node,
            op,
            node_loc,
            items,
            used,
            known: Vec::new(),
        }
    }

    pub fn node(&self) -> &str {
        self.node
    }

    fn take(&mut self, name: &'static str) -> Option<&RawParam> {
        if !self.known.contains(&name) {
            self.known.push(name);
        }
        let i = self.items.iter().position(|p| p.name == name)?;
        self.used[i] = true;
        Some(&self.items[i])
    }

    /// Whether the node sets parameter `name` (without taking it).
    pub fn given(&self, name: &str) -> bool {
        self.items.iter().any(|p| p.name == name)
    }

    /// Where parameter `name` was written, or the node's header when it was not.
    pub fn loc_of(&self, name: &str) -> Loc {
        self.items
            .iter()
            .find(|p| p.name == name)
            .map_or_else(|| self.node_loc.clone(), |p| p.loc.clone())
    }

    /// An error about parameter `name`, located at its value.
    pub fn error(&self, name: &str, message: impl Into<String>) -> Error {
        Error::spec(self.loc_of(name), Some(self.node), Some(name), message)
    }

    fn wrong(&self, p: &RawParam, want: &str) -> Error {
        Error::spec(
            p.loc.clone(),
            Some(self.node),
            Some(&p.name),
            format!("expected {want}, found {}", type_name(&p.value)),
        )
    }

    /// An array parameter with an element of the wrong type.
    fn wrong_element(&self, p: &RawParam, want: &str, found: &toml::Value) -> Error {
        Error::spec(
            p.loc.clone(),
            Some(self.node),
            Some(&p.name),
            format!(
                "expected an array of {want}, found {} in it",
                type_name(found)
            ),
        )
    }

    pub fn missing(&self, name: &str, what: &str) -> Error {
        Error::spec(
            self.node_loc.clone(),
            Some(self.node),
            Some(name),
            format!("missing (op `{}` needs {what})", self.op),
        )
    }

    pub fn string(&mut self, name: &'static str) -> Result<Option<String>> {
        let Some(p) = self.take(name).cloned() else {
            return Ok(None);
        };
        match &p.value {
            toml::Value::String(s) => Ok(Some(s.clone())),
            _ => Err(self.wrong(&p, "a string")),
        }
    }

    pub fn req_string(&mut self, name: &'static str) -> Result<String> {
        self.string(name)?
            .ok_or_else(|| self.missing(name, "a string"))
    }

    /// One of a fixed set of strings.
    pub fn choice(
        &mut self,
        name: &'static str,
        choices: &[&str],
        default: &str,
    ) -> Result<String> {
        let v = self.string(name)?.unwrap_or_else(|| default.to_owned());
        if choices.contains(&v.as_str()) {
            Ok(v)
        } else {
            let list = choices
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ");
            Err(self.error(name, format!("`{v}` is not one of {list}")))
        }
    }

    pub fn int(&mut self, name: &'static str) -> Result<Option<i64>> {
        let Some(p) = self.take(name).cloned() else {
            return Ok(None);
        };
        match p.value {
            toml::Value::Integer(i) => Ok(Some(i)),
            toml::Value::Float(f) if f.fract() == 0.0 && f.abs() < 9e15 => Ok(Some(f as i64)),
            _ => Err(self.wrong(&p, "an integer")),
        }
    }

    /// An integer in `[min, max]`, or `default` when absent.
    pub fn int_in(
        &mut self,
        name: &'static str,
        default: Option<i64>,
        min: i64,
        max: i64,
    ) -> Result<i64> {
        let v = match self.int(name)? {
            Some(v) => v,
            None => default.ok_or_else(|| self.missing(name, "an integer"))?,
        };
        if v < min || v > max {
            let range = if max == i64::MAX {
                format!("at least {min}")
            } else {
                format!("between {min} and {max}")
            };
            return Err(self.error(name, format!("must be {range}, found {v}")));
        }
        Ok(v)
    }

    pub fn float(&mut self, name: &'static str) -> Result<Option<f64>> {
        let Some(p) = self.take(name).cloned() else {
            return Ok(None);
        };
        match p.value {
            toml::Value::Float(f) if f.is_finite() => Ok(Some(f)),
            toml::Value::Float(_) => Err(self.error(name, "must be finite")),
            toml::Value::Integer(i) => Ok(Some(i as f64)),
            _ => Err(self.wrong(&p, "a number")),
        }
    }

    /// A number in `[min, max]`, or `default` when absent.
    pub fn float_in(
        &mut self,
        name: &'static str,
        default: f64,
        min: f64,
        max: f64,
    ) -> Result<f64> {
        let v = self.float(name)?.unwrap_or(default);
        if !(min..=max).contains(&v) {
            // A bound just above zero means "positive"; others read as the numbers they are.
            let open_top = max >= 1e300;
            let msg = match (min > 0.0 && min < 1e-6, open_top) {
                (true, true) => format!("must be positive, found {}", show_float(v)),
                (true, false) => format!(
                    "must be positive and at most {}, found {}",
                    show_float(max),
                    show_float(v)
                ),
                (false, true) => {
                    format!(
                        "must be at least {}, found {}",
                        show_float(min),
                        show_float(v)
                    )
                }
                (false, false) => format!(
                    "must be between {} and {}, found {}",
                    show_float(min),
                    show_float(max),
                    show_float(v)
                ),
            };
            return Err(self.error(name, msg));
        }
        Ok(v)
    }

    pub fn bool(&mut self, name: &'static str, default: bool) -> Result<bool> {
        let Some(p) = self.take(name).cloned() else {
            return Ok(default);
        };
        match p.value {
            toml::Value::Boolean(b) => Ok(b),
            _ => Err(self.wrong(&p, "true or false")),
        }
    }

    /// A string or an array of strings.
    pub fn strings(&mut self, name: &'static str) -> Result<Option<Vec<String>>> {
        let Some(p) = self.take(name).cloned() else {
            return Ok(None);
        };
        match &p.value {
            toml::Value::String(s) => Ok(Some(vec![s.clone()])),
            toml::Value::Array(a) => a
                .iter()
                .map(|v| match v {
                    toml::Value::String(s) => Ok(s.clone()),
                    other => Err(self.wrong_element(&p, "strings", other)),
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
            _ => Err(self.wrong(&p, "a string or an array of strings")),
        }
    }

    /// Galaxy ids: a string or an integer, or an array of them, as text.
    pub fn ids(&mut self, name: &'static str) -> Result<Option<Vec<String>>> {
        let Some(p) = self.take(name).cloned() else {
            return Ok(None);
        };
        let one = |v: &toml::Value| match v {
            toml::Value::String(s) => Some(s.clone()),
            toml::Value::Integer(i) => Some(i.to_string()),
            _ => None,
        };
        match &p.value {
            toml::Value::Array(a) => a
                .iter()
                .map(|v| {
                    one(v).ok_or_else(|| self.wrong_element(&p, "ids (strings or integers)", v))
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
            v => one(v)
                .map(|s| Some(vec![s]))
                .ok_or_else(|| self.wrong(&p, "an id or an array of ids")),
        }
    }

    /// An array of numbers.
    pub fn floats(&mut self, name: &'static str) -> Result<Option<Vec<f64>>> {
        let Some(p) = self.take(name).cloned() else {
            return Ok(None);
        };
        let toml::Value::Array(a) = &p.value else {
            return Err(self.wrong(&p, "an array of numbers"));
        };
        a.iter()
            .map(|v| match v {
                toml::Value::Float(f) if f.is_finite() => Ok(*f),
                toml::Value::Integer(i) => Ok(*i as f64),
                other => Err(self.wrong_element(&p, "numbers", other)),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// Where each parameter that was given was written (for later schema errors).
    pub fn locations(&self) -> BTreeMap<String, Loc> {
        self.items
            .iter()
            .map(|p| (p.name.clone(), p.loc.clone()))
            .collect()
    }

    /// Fail on the first parameter no getter asked for.
    pub fn finish(self) -> Result<()> {
        if let Some(i) = self.used.iter().position(|u| !u) {
            let p = &self.items[i];
            let mut known: Vec<&str> = self.known.clone();
            known.sort_unstable();
            let list = if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            };
            return Err(Error::spec(
                p.key_loc.clone(),
                Some(self.node),
                Some(&p.name),
                format!("unknown parameter for op `{}` (it takes: {list})", self.op),
            ));
        }
        Ok(())
    }
}

/// A bound or value for a message: short (`1e-300`, not three hundred digits).
fn show_float(v: f64) -> String {
    if v != 0.0 && (v.abs() < 1e-4 || v.abs() >= 1e9) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}
