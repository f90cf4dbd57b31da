#!/usr/bin/env python3
"""dagrun's `embed` against PyTorch and onnxruntime's Python API, same model, same images,
same cores, decode included, in one run.

    python benches/compare_embed.py [--catalog ../shared/data/decals-rings/catalog.csv]
        [--model ../shared/data/models/efficientnet-lite0.onnx] [--runs 3] [--threads 2]

Run it with a Python that has torch, efficientnet-lite-pytorch, onnxruntime, pillow
(`scripts/export-efficientnet-lite0.sh` makes such a venv). dagrun: `dagrun run
pipelines/decals-rings.toml --target embed` on a fresh cache each run, timed as a whole
process (ONNX Runtime start-up, catalogue read and Parquet write included), and the embed
node's own seconds from its JSON report. The references: scripts/bench_embed_torch.py (the
first batch is a warm-up, not timed). Medians of --runs.
"""
import argparse, json, os, shutil, statistics, subprocess, sys, tempfile, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from refstack import timed  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--catalog", default=str(ROOT.parent / "shared/data/decals-rings/catalog.csv"))
    ap.add_argument("--model", default=str(ROOT.parent / "shared/data/models/efficientnet-lite0.onnx"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dagrun", default=os.environ.get("DAGRUN", str(Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release/dagrun")))
    a = ap.parse_args()
    n = sum(1 for _ in open(a.catalog)) - 1  # rows (no quoted newlines in these catalogues)
    env = dict(os.environ, DAGRUN_THREADS=str(a.threads))
    rows = []
    walls, nodes, rss = [], [], []
    for _ in range(a.runs):
        with tempfile.TemporaryDirectory() as cache:
            cmd = [a.dagrun, "run", str(ROOT / "pipelines/decals-rings.toml"), "--target", "embed", "--json", "-q",
                   "--cache", cache, "--set", f"catalog.path={a.catalog}", "--set", f"embed.model={a.model}"]
            wall, mb, out = timed(cmd, env)
            node = next(x for x in json.loads(out)["nodes"] if x["name"] == "embed")
            walls.append(wall); nodes.append(node["seconds"]); rss.append(mb)
    rows.append(("dagrun embed (process)", n / statistics.median(walls), statistics.median(walls), max(rss)))
    rows.append(("dagrun embed (node)", n / statistics.median(nodes), statistics.median(nodes), max(rss)))
    for label, extra in [("PyTorch", []), ("onnxruntime Python", ["--onnx", a.model])]:
        ips, secs = [], []
        for _ in range(a.runs):
            cmd = [sys.executable, str(ROOT / "scripts/bench_embed_torch.py"), a.catalog, "--threads", str(a.threads)] + extra
            wall, mb, out = timed(cmd, env)
            r = json.loads(out.strip().splitlines()[-1])
            ips.append(r["images_per_s"]); secs.append(r["total_s"])
        rows.append((label, statistics.median(ips), statistics.median(secs), mb))
    print(f"{n} images, {a.threads} threads, medians of {a.runs} runs")
    print(f"{'':26} {'images/s':>9} {'seconds':>8} {'peak MB':>8}")
    for label, ips, s, mb in rows:
        print(f"{label:26} {ips:9.1f} {s:8.2f} {mb:8.0f}")
    base = rows[0][1]
    for label, ips, _, _ in rows[2:]:
        print(f"dagrun (whole process) vs {label}: {base / ips:.2f}x")


if __name__ == "__main__":
    main()
