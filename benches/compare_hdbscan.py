#!/usr/bin/env python3
"""Side-by-side HDBSCAN (leaf selection) on one low-dimensional table: dagrun's `cluster`
+ `select-leaves` against the Python reference stack (`hdbscan` with an exact MST,
`fast_hdbscan`), on the same input and cores, each in its own process so its peak memory is
its own. Reports wall time (median of --repeat runs), peak RSS, and agreement with each
reference: ARI and the share of reference clusters matched at Jaccard >= 0.9.

Install the references once, outside the repository:
    python3 -m venv ~/ref-venv && ~/ref-venv/bin/pip install hdbscan fast_hdbscan scikit-learn pyarrow
Run (from the repository root, after `cargo build --release`):
    ~/ref-venv/bin/python benches/compare_hdbscan.py EMBEDDING.parquet --ms 300 --mcs 10 [--sample N]

EMBEDDING.parquet: an id column and the coordinates (by default every column starting with
`x` or `umap_`, e.g. shared/tools/anchor_pipeline.py's embedding.parquet).
"""
import argparse, json, os, re, statistics, subprocess, sys, tempfile, time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import refstack  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("inp")
ap.add_argument("--ms", type=int, default=300)
ap.add_argument("--mcs", type=int, default=10)
ap.add_argument("--id", default="id")
ap.add_argument("--prefix", default=None, help="coordinate column prefix (default: x or umap_)")
ap.add_argument("--sample", type=int, default=0, help="use the first N rows only")
ap.add_argument("--refs", default="hdbscan,fast", help="comma list of hdbscan, fast, sklearn, or none")
ap.add_argument("--repeat", type=int, default=1)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--dagrun", default=None)
ap.add_argument("--out", default=None)
a = ap.parse_args()

target = os.environ.get("CARGO_TARGET_DIR", "target")
dagrun = a.dagrun or os.path.join(target, "release", "dagrun")
out = a.out or tempfile.mkdtemp(prefix="dagrun-cmp-")
os.makedirs(out, exist_ok=True)

tb = pq.read_table(a.inp)
cols = [c for c in tb.column_names if (c.startswith(a.prefix) if a.prefix else re.match(r"^(x\d+|umap_\d+)$", c))]
if a.sample:
    tb = tb.slice(0, a.sample)
tb = tb.select([a.id] + cols)
data = os.path.join(out, "input.parquet")
pq.write_table(tb, data)
n = tb.num_rows
env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), NUMBA_NUM_THREADS=str(a.threads), POLARS_MAX_THREADS=str(a.threads))


def timed(cmd):
    return refstack.timed(cmd, env)


def labels_of(path):
    return pq.read_table(path)["label"].to_numpy()


results = {"n": n, "dims": len(cols), "min_samples": a.ms, "min_cluster_size": a.mcs, "threads": a.threads}

# dagrun: read -> cluster -> select-leaves, a fresh cache each run so everything computes.
pipe = os.path.join(out, "cmp.toml")
with open(pipe, "w") as f:
    f.write(f'[pipeline]\nname = "cmp"\nid = "{a.id}"\n'
            f'[nodes.points]\nop = "read"\npath = "input.parquet"\n'
            f'[nodes.tree]\nop = "cluster"\ninput = "points"\ncolumns = {json.dumps(cols)}\n'
            f'min_samples = {a.ms}\nmin_cluster_size = {a.mcs}\n'
            f'[nodes.classes]\nop = "select-leaves"\ninput = "tree"\n')
runs = []
for r in range(a.repeat):
    cache = os.path.join(out, f"cache{r}")
    wall, rss, stdout = timed([dagrun, "-q", "-j", str(a.threads), "run", pipe, "--json", "--cache", cache])
    rep = json.loads(stdout)
    node_s = {nd["name"]: nd["seconds"] for nd in rep["nodes"]}
    runs.append((node_s["tree"] + node_s["classes"], wall, rss))
    subprocess.run([dagrun, "-q", "export", pipe, "classes", "--out", os.path.join(out, "labels_dagrun.parquet"), "--cache", cache], check=True, env=env)
results["dagrun"] = {"seconds": statistics.median(x[0] for x in runs), "wall_incl_io": statistics.median(x[1] for x in runs),
                     "peak_rss_mb": max(x[2] for x in runs)}
ours = labels_of(os.path.join(out, "labels_dagrun.parquet"))

REF = r'''
import sys, time, json, numpy as np, pyarrow as pa, pyarrow.parquet as pq
which, inp, ms, mcs, outp = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
tb = pq.read_table(inp); X = np.column_stack([tb[c].to_numpy() for c in tb.column_names[1:]]).astype(np.float64)
if which == "hdbscan":
    import hdbscan
    f = lambda Z: hdbscan.HDBSCAN(min_samples=ms, min_cluster_size=mcs, cluster_selection_method="leaf", approx_min_span_tree=False, core_dist_n_jobs=-1).fit_predict(Z)
elif which == "fast":
    import fast_hdbscan
    f = lambda Z: fast_hdbscan.HDBSCAN(min_samples=ms, min_cluster_size=mcs, cluster_selection_method="leaf").fit_predict(Z)
    f(X[: min(len(X), 5000)])  # warm numba's JIT outside the timing
else:
    from sklearn.cluster import HDBSCAN
    f = lambda Z: HDBSCAN(min_samples=ms + 1, min_cluster_size=mcs, cluster_selection_method="leaf").fit_predict(Z)
t = time.perf_counter(); lab = f(X); s = time.perf_counter() - t
pq.write_table(pa.table({"label": lab.astype(np.int32)}), outp)
print(json.dumps({"seconds": s}))
'''


def agreement(ref, ours):
    from sklearn.metrics import adjusted_rand_score
    ari = adjusted_rand_score(ref, ours)
    matched, best = 0, []
    our_sets = {c: set(np.flatnonzero(ours == c)) for c in np.unique(ours) if c >= 0}
    for c in np.unique(ref):
        if c < 0:
            continue
        rs = set(np.flatnonzero(ref == c))
        j = max((len(rs & s) / len(rs | s) for s in our_sets.values()), default=0.0)
        best.append(j)
        matched += j >= 0.9
    return {"ari": ari, "ref_clusters": len(best), "our_clusters": len(our_sets), "matched_j90": matched,
            "min_best_jaccard": min(best) if best else None}


for which in [w for w in a.refs.split(",") if w and w != "none"]:
    lab_path = os.path.join(out, f"labels_{which}.parquet")
    runs = []
    for r in range(a.repeat):
        wall, rss, stdout = timed([sys.executable, "-c", REF, which, data, str(a.ms), str(a.mcs), lab_path])
        runs.append((json.loads(stdout.strip().splitlines()[-1])["seconds"], rss))
    results[which] = {"seconds": statistics.median(x[0] for x in runs), "peak_rss_mb": max(x[1] for x in runs),
                      **agreement(labels_of(lab_path), ours)}
    results[which]["dagrun_speedup"] = results[which]["seconds"] / results["dagrun"]["seconds"]

print(json.dumps(results, indent=1))
with open(os.path.join(out, "results.json"), "w") as f:
    json.dump(results, f, indent=1)
