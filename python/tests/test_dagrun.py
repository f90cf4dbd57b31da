"""The dagrun wheel from Python: the binary it carries is found (also after
`pip install --target`), a run and a scan give what `dagrun export` gives, errors carry the
CLI's line and exit code. Run by scripts/python-test.sh in a fresh venv with the wheel
installed (DAGRUN_WHEEL names it) and no Rust toolchain on PATH."""

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

import dagrun

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "pipelines" / "quickstart.toml"
SMALL = {"catalog.n": 12000}


@pytest.fixture(scope="session")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def test_the_binary_is_the_wheels_and_answers():
    exe = Path(dagrun.find_dagrun_bin())
    assert exe.parent == Path(sys.executable).parent, f"{exe} is not the venv's"
    assert dagrun.version().startswith("dagrun ")
    out = subprocess.run(["dagrun", "--version"], capture_output=True, text=True, check=True).stdout
    assert out.strip() == dagrun.version()


def test_run_then_scan_gives_what_export_gives(cache, tmp_path):
    r = dagrun.run(QUICKSTART, set=SMALL, cache=cache)
    assert {n["name"] for n in r.nodes} >= {"catalog", "featured", "umap", "tree", "classes", "report"}
    assert all(n["status"] in ("computed", "cached") and Path(n["path"]).is_file() for n in r.nodes)
    assert "<table>" in r._repr_html_()
    again = dagrun.run(QUICKSTART, set=SMALL, cache=cache)
    assert all(n["status"] == "cached" for n in again.nodes)
    assert [n["key"] for n in again.nodes] == [n["key"] for n in r.nodes]

    classes = dagrun.scan(QUICKSTART, "classes", set=SMALL, cache=cache).collect()
    out = tmp_path / "classes.parquet"
    subprocess.run(["dagrun", "export", QUICKSTART, "classes", "--out", out, "--cache", cache, "--set", "catalog.n=12000"], check=True, capture_output=True)
    exported = pl.read_parquet(out)
    assert classes.shape == exported.shape and classes.shape[0] > 1000
    assert classes.equals(exported)
    assert dagrun.read(QUICKSTART, "classes", set=SMALL, cache=cache).equals(exported)


def test_plan_similar_and_report(cache):
    dagrun.run(QUICKSTART, set=SMALL, cache=cache)
    rows = dagrun.plan(QUICKSTART, set={"catalog.n": 12000, "tree.min_samples": 50}, cache=cache)
    status = {r["name"]: r["status"] for r in rows}
    assert status["umap"] == "cached" and status["tree"] == "run", status
    featured = dagrun.read(QUICKSTART, "featured", set=SMALL, cache=cache)
    some = str(featured["id"][10])
    top = dagrun.similar(QUICKSTART, "featured", [some], k=7, set=SMALL, cache=cache)
    assert top.columns == ["id", "score"] and top.height == 7
    assert some not in top["id"].to_list()
    assert top["score"].is_sorted(descending=True)
    rep = dagrun.report(QUICKSTART, set=SMALL, cache=cache)
    page = rep._repr_html_()
    assert "<img src='data:image/png;base64," in page and "<table>" in page
    assert len(rep.classes) >= 3


def test_an_error_raises_with_the_clis_line_and_exit_code(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[nodes.a]\nop = "synthetic"\nn = 100\n[nodes.b]\nop = "nope"\ninput = "a"\n')
    cli = subprocess.run(["dagrun", "run", bad], capture_output=True, text=True)
    assert cli.returncode == 2
    line = [l for l in cli.stderr.splitlines() if l.startswith("error: ")][-1][len("error: "):]
    with pytest.raises(dagrun.DagrunError) as e:
        dagrun.run(bad)
    assert str(e.value) == line and "unknown op `nope`" in line
    assert e.value.exit_code == 2


def test_the_binary_is_found_after_pip_install_target(tmp_path):
    wheel = os.environ.get("DAGRUN_WHEEL")
    if not wheel:
        assert not os.environ.get("CI"), "CI is set but DAGRUN_WHEEL is not: scripts/python-test.sh sets it"
        pytest.skip("DAGRUN_WHEEL is not set (scripts/python-test.sh sets it)")
    target = tmp_path / "t"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", target, wheel], check=True)
    probe = "import dagrun; print(dagrun.find_dagrun_bin()); print(dagrun.version())"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(target), "HOME": os.environ.get("HOME", "/tmp")}
    out = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r}); {probe}"], capture_output=True, text=True, env=env, check=True)
    found, ver = out.stdout.splitlines()
    assert Path(found) == target / "bin" / "dagrun"
    assert ver.startswith("dagrun ")
