"""dagrun from Python: run a pipeline, and read any node's output into a data frame.

    import dagrun
    result = dagrun.run("pipelines/featured.toml")          # each node's status, key, path
    classes = dagrun.read("pipelines/featured.toml", "classes")   # a polars DataFrame
    lazy = dagrun.scan("pipelines/featured.toml", "featured")    # a polars LazyFrame
    dagrun.similar("pipelines/featured.toml", "featured", ["710"], k=20)
    dagrun.report("pipelines/featured.toml")                # shows the classes inline in a notebook

Everything goes through the `dagrun` executable this wheel carries (found by
`find_dagrun_bin`) and its `--json` outputs; nothing parses its human text. A failure
raises `DagrunError` with the command's one-line message and exit code (2: bad input, such
as a pipeline error; 1: a failed run). polars, pandas and astropy are optional: each
function that needs one says so when it is missing.
"""

import base64
import html
import json
import os
import subprocess
from pathlib import Path

from ._find import find_dagrun_bin

__all__ = [
    "DagrunError", "RunResult", "Report", "find_dagrun_bin", "run", "plan", "scan", "read", "read_pandas",
    "read_astropy", "similar", "sweep", "report", "version",
]


class DagrunError(Exception):
    """A dagrun command failed: `str(e)` is its one-line message, `e.exit_code` its status."""

    def __init__(self, message, exit_code, stderr=""):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.stderr = stderr


def _sets(set):
    out = []
    for k, v in (set or {}).items():
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, str):
            v = json.dumps(v)
        elif isinstance(v, (list, tuple)):
            v = json.dumps(list(v))
        out += ["--set", f"{k}={v}"]
    return out


def _call(args, cache=None, jobs=None):
    cmd = [find_dagrun_bin()] + [str(a) for a in args]
    if cache is not None:
        cmd += ["--cache", str(cache)]
    if jobs is not None:
        cmd += ["-j", str(jobs)]
    env = dict(os.environ)
    env.pop("DAGRUN_LOG", None)
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        lines = [l for l in p.stderr.splitlines() if l.startswith("error: ")]
        msg = lines[-1][len("error: "):] if lines else (p.stderr.strip().splitlines() or [f"dagrun exited with {p.returncode}"])[-1]
        raise DagrunError(msg, p.returncode, p.stderr)
    return p.stdout


def _json(args, **kw):
    out = _call(args, **kw)
    try:
        return json.loads(out)
    except json.JSONDecodeError as e:  # pragma: no cover - a bug in dagrun
        raise DagrunError(f"dagrun printed no JSON ({e})", 1, out) from None


def _need(module, extra):
    try:
        return __import__(module)
    except ImportError:
        raise ImportError(f"this needs {module}: pip install 'dagrun[{extra}]' (or pip install {module})") from None


def version():
    """The dagrun executable's version (`dagrun --version`)."""
    return _call(["--version"]).strip()


class RunResult:
    """What `run` did: `nodes` (name, op, key, status, seconds, rows, path), by name via
    `result["classes"]`. Shows as a table in a notebook."""

    def __init__(self, doc):
        self.pipeline = doc["pipeline"]
        self.nodes = doc["nodes"]

    def __getitem__(self, name):
        for n in self.nodes:
            if n["name"] == name:
                return n
        raise KeyError(f"no node named {name!r} in this run (nodes: {', '.join(n['name'] for n in self.nodes)})")

    def path(self, name):
        """The Parquet file of a node's output."""
        return Path(self[name]["path"])

    def __repr__(self):
        done = sum(n["status"] == "computed" for n in self.nodes)
        return f"<dagrun run of {self.pipeline}: {len(self.nodes)} nodes, {done} computed>"

    def _repr_html_(self):
        rows = "".join(
            f"<tr><td>{html.escape(n['name'])}</td><td>{html.escape(n['op'])}</td><td>{n['status']}</td>"
            f"<td style='text-align:right'>{n['rows']:,}</td><td style='text-align:right'>{n['seconds']:.2f}</td><td><code>{n['key'][:12]}</code></td></tr>"
            for n in self.nodes
        )
        return (f"<b>{html.escape(self.pipeline)}</b>: {len(self.nodes)} nodes"
                f"<table><tr><th>node</th><th>op</th><th>status</th><th>rows</th><th>seconds</th><th>key</th></tr>{rows}</table>")


def run(pipeline, set=None, target=None, jobs=None, cache=None):
    """Run a pipeline (or only what `target`, a node name or list of them, needs) and return
    a RunResult. `set` overrides parameters: {"umap.n_neighbors": 30}."""
    args = ["run", pipeline, "--json"] + _sets(set)
    for t in [target] if isinstance(target, str) else (target or []):
        args += ["--target", t]
    return RunResult(_json(args, cache=cache, jobs=jobs))


def plan(pipeline, set=None, target=None, cache=None):
    """Which nodes would run and why, without running anything: a list of
    {"name", "op", "status": "cached" | "run" | "pending", "key", "why"}."""
    args = ["plan", pipeline, "--json", "--explain"] + _sets(set)
    for t in [target] if isinstance(target, str) else (target or []):
        args += ["--target", t]
    return _json(args, cache=cache)


def _path(pipeline, node, set, cache):
    return run(pipeline, set=set, target=node, cache=cache).path(node)


def scan(pipeline, node, set=None, cache=None):
    """A polars LazyFrame over a node's output (computed first where it is not cached)."""
    pl = _need("polars", "polars")
    return pl.scan_parquet(_path(pipeline, node, set, cache))


def read(pipeline, node, set=None, cache=None):
    """A node's output as a polars DataFrame."""
    pl = _need("polars", "polars")
    return pl.read_parquet(_path(pipeline, node, set, cache))


def read_pandas(pipeline, node, set=None, cache=None):
    """A node's output as a pandas DataFrame (needs pandas and pyarrow)."""
    pd = _need("pandas", "pandas")
    _need("pyarrow", "pandas")
    return pd.read_parquet(_path(pipeline, node, set, cache))


def read_astropy(pipeline, node, set=None, cache=None):
    """A node's output as an astropy Table (needs astropy and pyarrow)."""
    _need("astropy", "astropy")
    _need("pyarrow", "astropy")
    from astropy.table import Table

    return Table.read(str(_path(pipeline, node, set, cache)), format="parquet")


def similar(pipeline, node, ids, not_ids=(), k=50, set=None, cache=None):
    """The k galaxies most like `ids` (against `not_ids`) by the representation of `node`:
    a polars DataFrame (id, score) best first, or the raw JSON where polars is missing."""
    args = ["similar", pipeline, "--node", node, "-k", str(k), "--json"] + _sets(set)
    for i in [ids] if isinstance(ids, (str, int)) else ids:
        args += ["--id", str(i)]
    for i in [not_ids] if isinstance(not_ids, (str, int)) else not_ids:
        args += ["--not", str(i)]
    doc = _json(args, cache=cache)
    try:
        import polars as pl
    except ImportError:
        return doc
    return pl.DataFrame(doc["results"], schema={"id": pl.String, "score": pl.Float64})


def sweep(pipeline, grid=None, set=None, parallel=2, cache=None):
    """Run the pipeline over a grid ({"umap.n_neighbors": [15, 50]}, else the file's
    [sweep]) and return one row per point: its parameters and summary (classes, clustered
    fraction, sizes, stability, planted classes recovered). A polars DataFrame, or the raw
    JSON where polars is missing."""
    args = ["sweep", pipeline, "--json", "--parallel", str(parallel)] + _sets(set)
    for k, vs in (grid or {}).items():
        args += ["--grid", f"{k}=" + ",".join(json.dumps(v) if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else str(v) for v in vs)]
    doc = _json(args, cache=cache)
    try:
        import polars as pl
    except ImportError:
        return doc
    rows = []
    for p in doc["points"]:
        row = dict(p["params"])
        row.update({k: v for k, v in p["summary"].items() if not isinstance(v, (dict, list))})
        rows.append(row)
    return pl.DataFrame(rows)


class Report:
    """A report node's output: the class table (`classes`, from its classes node) and the
    layout plot, shown inline in a notebook."""

    def __init__(self, node, files, classes):
        self.node = node
        self.files = Path(files) if files else None
        self.classes = classes

    def _repr_html_(self):
        parts = [f"<b>report <code>{html.escape(self.node)}</code></b>"]
        png = self.files / "scatter.png" if self.files else None
        if png and png.is_file():
            data = base64.b64encode(png.read_bytes()).decode()
            parts.append(f"<div><img src='data:image/png;base64,{data}' style='max-width:700px'></div>")
        if self.classes:
            keys = [k for k in ("label", "size", "persistence", "stability") if k in self.classes[0]]
            head = "".join(f"<th>{k}</th>" for k in keys)
            body = "".join("<tr>" + "".join(f"<td>{'' if c.get(k) is None else (f'{c[k]:.4g}' if isinstance(c[k], float) else c[k])}</td>" for k in keys) + "</tr>" for c in self.classes)
            parts.append(f"<table><tr>{head}</tr>{body}</table>")
        if self.files:
            parts.append(f"<p>The whole report: <code>{html.escape(str(self.files / 'index.html'))}</code></p>")
        return "".join(parts)

    def __repr__(self):
        return f"<dagrun report {self.node}: {len(self.classes)} classes>"


def report(pipeline, node="report", set=None, cache=None):
    """A report node (run first where needed): its class table and layout plot, for a notebook."""
    shown = _json(["show", pipeline, node, "--json"] + _sets(set), cache=cache)
    classes = []
    inputs = shown["manifest"].get("input_nodes", [])
    if inputs:
        first = _json(["show", pipeline, inputs[0], "--json"] + _sets(set), cache=cache)
        classes = (first["manifest"].get("details") or {}).get("classes", [])
    return Report(node, shown.get("files"), classes)
