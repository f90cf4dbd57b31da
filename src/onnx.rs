//! ONNX Runtime, loaded at run time (`ort` with `load-dynamic`): finding the library, one
//! process-wide environment, and a session that runs float batches.
//!
//! The library is looked for, in order, at `ORT_DYLIB_PATH`; under
//! `DAGRUN_ORT_DIR` (default `~/.cache/dagrun/ort`, where `scripts/install-ort.sh` unpacks
//! the PyPI wheel) as `onnxruntime/capi/libonnxruntime.so.*`; and in the active Python
//! environment (`VIRTUAL_ENV`). A miss is an error that says how to install it — never a
//! download, never a panic.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::session::Session;
use ort::value::TensorRef;

/// Where the runtime library is, or why it was not found.
pub fn find_library() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!(
                "ORT_DYLIB_PATH is `{}`, which is not a file",
                p.display()
            ))
        };
    }
    let mut dirs = Vec::new();
    match std::env::var_os("DAGRUN_ORT_DIR").filter(|p| !p.is_empty()) {
        Some(d) => dirs.push(PathBuf::from(d).join("onnxruntime/capi")),
        None => {
            if let Some(home) = std::env::var_os("HOME") {
                dirs.push(PathBuf::from(home).join(".cache/dagrun/ort/onnxruntime/capi"));
            }
        }
    }
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV") {
        if let Ok(rd) = std::fs::read_dir(Path::new(&venv).join("lib")) {
            let mut py: Vec<PathBuf> = rd
                .flatten()
                .map(|e| e.path().join("site-packages/onnxruntime/capi"))
                .collect();
            py.sort();
            dirs.extend(py);
        }
    }
    for d in &dirs {
        if let Ok(rd) = std::fs::read_dir(d) {
            let mut libs: Vec<PathBuf> = rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("libonnxruntime.so"))
                })
                .collect();
            libs.sort();
            if let Some(l) = libs.pop() {
                return Ok(l);
            }
        }
    }
    Err(format!(
        "ONNX Runtime is not installed: run `scripts/install-ort.sh` (unpacks the onnxruntime wheel from PyPI into ~/.cache/dagrun/ort) \
         or set ORT_DYLIB_PATH to a libonnxruntime.so (looked in: {})",
        dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
    ))
}

/// The process-wide environment (the library can be loaded once per process).
fn environment() -> Result<&'static ort::environment::Environment, String> {
    static ENV: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let lib = find_library()?;
        let builder = ort::init_from(&lib)
            .map_err(|e| format!("cannot load ONNX Runtime from `{}`: {e}", lib.display()))?;
        builder
            .with_name("dagrun")
            .build()
            .map_err(|e| format!("cannot start ONNX Runtime: {e}"))
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// A tensor's name, element type and shape (−1 for a dynamic axis).
#[derive(Clone, Debug)]
pub struct Port {
    pub name: String,
    pub is_f32: bool,
    pub shape: Vec<i64>,
}

/// A loaded model.
pub struct Model {
    session: Session,
    pub inputs: Vec<Port>,
    pub outputs: Vec<Port>,
}

fn port(o: &ort::value::Outlet) -> Port {
    let dtype = o.dtype();
    Port {
        name: o.name().to_owned(),
        is_f32: dtype.tensor_type() == Some(ort::value::TensorElementType::Float32),
        shape: dtype.tensor_shape().map(|s| s.to_vec()).unwrap_or_default(),
    }
}

/// The inputs and outputs of the model at `path`, loaded once per process and file content
/// (validation asks for every node that uses the model, e.g. each shard of an `embed`).
pub fn ports(path: &Path) -> Result<(Vec<Port>, Vec<Port>), String> {
    use std::collections::HashMap;
    use std::sync::Mutex;
    type Ports = Result<(Vec<Port>, Vec<Port>), String>;
    type FileId = (PathBuf, u64, Option<std::time::SystemTime>);
    static SEEN: OnceLock<Mutex<HashMap<FileId, Ports>>> = OnceLock::new();
    let md = std::fs::metadata(path)
        .map_err(|e| format!("cannot read model `{}`: {e}", path.display()))?;
    let id = (path.to_owned(), md.len(), md.modified().ok());
    let mut seen = SEEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    seen.entry(id)
        .or_insert_with(|| Model::load(path, 1).map(|m| (m.inputs, m.outputs)))
        .clone()
}

impl Model {
    /// Load the model at `path`, running with `threads` intra-op threads.
    pub fn load(path: &Path, threads: usize) -> Result<Model, String> {
        let env = environment()?;
        let session = Session::builder(env)
            .and_then(|b| b.with_intra_threads(threads.max(1)).map_err(Into::into))
            .and_then(|mut b| b.commit_from_file(path))
            .map_err(|e| format!("cannot load model `{}`: {e}", path.display()))?;
        let inputs = session.inputs().iter().map(port).collect();
        let outputs = session.outputs().iter().map(port).collect();
        Ok(Model {
            session,
            inputs,
            outputs,
        })
    }

    /// Run one batch: `data` in the layout `shape` describes, fed to `input`; returns output
    /// `output` as (shape, values).
    pub fn run(
        &mut self,
        input: &str,
        shape: &[i64],
        data: &[f32],
        output: &str,
    ) -> Result<(Vec<i64>, Vec<f32>), String> {
        let t = TensorRef::from_array_view((shape.to_vec(), data))
            .map_err(|e| format!("cannot make the input tensor: {e}"))?;
        let out = self
            .session
            .run(ort::inputs![input => t])
            .map_err(|e| format!("inference failed: {e}"))?;
        let v = out
            .get(output)
            .ok_or_else(|| format!("the model gave no output `{output}`"))?;
        let (s, x) = v
            .try_extract_tensor::<f32>()
            .map_err(|e| format!("output `{output}` is not a float tensor: {e}"))?;
        Ok((s.to_vec(), x.to_vec()))
    }
}
