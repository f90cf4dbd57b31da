#!/usr/bin/env python3
"""Side-by-side UMAP: dagrun's `reduce method=umap` (kNN node + layout) against umap-learn on
the same table and cores, each in its own process. Reports wall time (kNN, layout, total),
peak RSS, and trustworthiness (scikit-learn's, k=10) of both layouts on the same random
sample of rows.

    ~/ref-venv/bin/python benches/compare_umap.py FEATURES.parquet --nn 50 --d 5 [--sample N]

FEATURES.parquet: an id column and feature columns (`feat_*` by default), e.g. a `dagrun
export` of the built-in sample's `featured` node.
"""
import argparse, json, os, subprocess, sys, tempfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import refstack  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("inp")
ap.add_argument("--nn", type=int, default=50)
ap.add_argument("--d", type=int, default=5)
ap.add_argument("--id", default="id")
ap.add_argument("--prefix", default="feat_")
ap.add_argument("--sample", type=int, default=0)
ap.add_argument("--tw-sample", type=int, default=5000)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--dagrun", default=None)
ap.add_argument("--out", default=None)
a = ap.parse_args()

dagrun = a.dagrun or os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "dagrun")
out = a.out or tempfile.mkdtemp(prefix="dagrun-umap-")
os.makedirs(out, exist_ok=True)
tb = pq.read_table(a.inp)
cols = [c for c in tb.column_names if c.startswith(a.prefix)]
if a.sample:
    tb = tb.slice(0, a.sample)
tb = tb.select([a.id] + cols)
data = os.path.join(out, "input.parquet")
pq.write_table(tb, data)
n = tb.num_rows
env = dict(os.environ, NUMBA_NUM_THREADS=str(a.threads), OMP_NUM_THREADS=str(a.threads))


def timed(cmd):
    return refstack.timed(cmd, env)


res = {"n": n, "dims": len(cols), "n_neighbors": a.nn, "n_components": a.d, "threads": a.threads}
pipe = os.path.join(out, "umap.toml")
with open(pipe, "w") as f:
    f.write(f'[pipeline]\nname = "cmp"\nid = "{a.id}"\n[nodes.points]\nop = "read"\npath = "input.parquet"\n'
            f'[nodes.umap]\nop = "reduce"\nmethod = "umap"\ninput = "points"\ncolumns = "{a.prefix}*"\n'
            f'n_neighbors = {a.nn}\nn_components = {a.d}\n')
cache = os.path.join(out, "cache")
wall, rss, stdout = timed([dagrun, "-q", "-j", str(a.threads), "run", pipe, "--json", "--cache", cache])
run = json.loads(stdout)["nodes"]
nodes = {x["name"]: x["seconds"] for x in run}
key = next(x["key"] for x in run if x["name"] == "umap")
# The layout's stage breakdown is in its cache entry's manifest.
manifest = json.load(open(os.path.join(cache, "v1", "objects", key[:2], key, "manifest.json")))
stages = manifest.get("details", {}).get("seconds", {})
subprocess.run([dagrun, "-q", "export", pipe, "umap", "--out", os.path.join(out, "dagrun.parquet"), "--cache", cache], check=True)
res["dagrun"] = {"knn_s": nodes["umap.knn"], "layout_s": nodes["umap"], "graph_s": stages.get("graph"), "init_s": stages.get("init"),
                 "sgd_s": stages.get("sgd"), "seconds": nodes["umap.knn"] + nodes["umap"], "peak_rss_mb": rss}

REF = r'''
import sys, time, json, numpy as np, pyarrow as pa, pyarrow.parquet as pq, umap
inp, nn, d, outp = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
tb = pq.read_table(inp); X = np.column_stack([tb[c].to_numpy() for c in tb.column_names[1:]]).astype(np.float32)
umap.UMAP(n_neighbors=min(nn, 15), n_components=d, n_epochs=5).fit(X[:2000])  # warm numba's JIT
t = time.perf_counter(); E = umap.UMAP(n_neighbors=nn, n_components=d).fit_transform(X); s = time.perf_counter() - t
pq.write_table(pa.table({f"x{j}": E[:, j] for j in range(d)}), outp)
print(json.dumps({"seconds": s}))
'''
ref_out = os.path.join(out, "umap_learn.parquet")
wall, rss, stdout = timed([sys.executable, "-c", REF, data, str(a.nn), str(a.d), ref_out])
res["umap_learn"] = {"seconds": json.loads(stdout.strip().splitlines()[-1])["seconds"], "peak_rss_mb": rss}
res["speedup"] = res["umap_learn"]["seconds"] / res["dagrun"]["seconds"]

from sklearn.manifold import trustworthiness
X = np.column_stack([tb[c].to_numpy() for c in cols]).astype(np.float32)
rng = np.random.default_rng(0)
idx = np.sort(rng.choice(n, size=min(n, a.tw_sample), replace=False))
ours = pq.read_table(os.path.join(out, "dagrun.parquet"))
E1 = np.column_stack([ours[f"umap_{j}"].to_numpy() for j in range(a.d)])
ref = pq.read_table(ref_out)
E2 = np.column_stack([ref[f"x{j}"].to_numpy() for j in range(a.d)])
res["trustworthiness"] = {"dagrun": trustworthiness(X[idx], E1[idx], n_neighbors=10), "umap_learn": trustworthiness(X[idx], E2[idx], n_neighbors=10)}
print(json.dumps(res, indent=1))
json.dump(res, open(os.path.join(out, "results.json"), "w"), indent=1)
