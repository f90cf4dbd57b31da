#!/usr/bin/env python3
"""How stable are assigned labels when only the random stream changes? dagrun's `assign`
under several `seed`s against umap-learn's `transform` (several `transform_seed`s) +
hdbscan's `approximate_predict`, on the same fitted and new galaxies (issue #36).

PIPELINE is a held-out pipeline (pipelines/held-out.toml) whose `fit` and `new` nodes are
the fitted and the new galaxies and whose `assigned` node assigns `new`. For each side it
reports, against the first stream: the share of new galaxies whose label changes in each
other stream (mean and max), the share that changes in any, and among the galaxies placed
in a class with probability (hdbscan: strength) >= 0.9 in the first stream, how many flip.

    ~/ref-venv/bin/python benches/assign_stability.py pipelines/held-out.toml --work ../bench/st \\
        --set catalog.n=200000 --set fit.keep_where='["id < 160000"]' --set new.keep_where='["id >= 160000"]' \\
        --min-samples 100 --streams 4

The reference fit is pickled in --work and reused. Standard library plus numpy, pyarrow,
umap-learn and hdbscan for the reference side.
"""
import argparse, json, os, pickle, subprocess, sys

ap = argparse.ArgumentParser()
ap.add_argument("pipeline")
ap.add_argument("--work", required=True)
ap.add_argument("--set", action="append", default=[])
ap.add_argument("--n-neighbors", type=int, default=50)
ap.add_argument("--n-components", type=int, default=5)
ap.add_argument("--min-samples", type=int, default=300)
ap.add_argument("--streams", type=int, default=4)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--dagrun", default=None)
a = ap.parse_args()

import numpy as np
import pyarrow.parquet as pq

work = os.path.abspath(a.work)
os.makedirs(work, exist_ok=True)
target = os.environ.get("CARGO_TARGET_DIR", "target")
dagrun = os.path.abspath(a.dagrun or os.path.join(target, "release", "dagrun"))
sets = sum((["--set", s] for s in a.set), [])
env = dict(os.environ, DAGRUN_THREADS=str(a.threads), NUMBA_NUM_THREADS=str(a.threads), OMP_NUM_THREADS=str(a.threads))
cache = ["--cache", os.path.join(work, "cache")]
sets += ["--set", f"tree.min_samples={a.min_samples}", "--set", f"umap.n_neighbors={a.n_neighbors}", "--set", f"umap.n_components={a.n_components}"]


def features(path):
    t = pq.read_table(path)
    cols = [c for c in t.column_names if c.startswith("feat_")]
    return np.column_stack([t.column(c).to_numpy() for c in cols]).astype(np.float32)


def stability(labels, strong):
    """labels: streams x galaxies; strong: the first stream's confident placements."""
    base = labels[0]
    changed = [(l != base) for l in labels[1:]]
    per = [float(c.mean()) for c in changed]
    anyc = np.any(changed, axis=0)
    return {
        "in_a_class": float((base >= 0).mean()),
        "changed_per_stream_mean": float(np.mean(per)), "changed_per_stream_max": float(np.max(per)),
        "changed_in_any": float(anyc.mean()),
        "confident": int(strong.sum()), "confident_flipped": int((anyc & strong).sum()),
    }


subprocess.run([dagrun, a.pipeline, "-q"] + sets + cache, check=True, env=env)
for node in ["fit", "new"]:
    out = os.path.join(work, f"{node}.parquet")
    if not os.path.exists(out):
        subprocess.run([dagrun, "export", a.pipeline, node, "--out", out, "-q"] + sets + cache, check=True, env=env)

# dagrun: the same fit (cached), a new stream per run.
labels, prob0 = [], None
for s in range(a.streams):
    out = os.path.join(work, f"assigned-{s}.parquet")
    subprocess.run([dagrun, "export", a.pipeline, "assigned", "--out", out, "-q", "--set", f"assigned.seed={s}"] + sets + cache, check=True, env=env)
    t = pq.read_table(out)
    labels.append(t.column("label").to_numpy())
    if s == 0:
        prob0 = t.column("probability").to_numpy()
res = {"dagrun": stability(np.array(labels), (labels[0] >= 0) & (prob0 >= 0.9))}
print("dagrun", json.dumps(res["dagrun"]), flush=True)

# The reference: one fit, then transform with several transform_seeds.
import hdbscan
import hdbscan.prediction
import umap

pk = os.path.join(work, f"ref-{a.n_neighbors}-{a.n_components}-{a.min_samples}.pkl")
if os.path.exists(pk):
    with open(pk, "rb") as f:
        u, cl = pickle.load(f)
else:
    x = features(os.path.join(work, "fit.parquet"))
    u = umap.UMAP(n_neighbors=a.n_neighbors, n_components=a.n_components).fit(x)
    cl = hdbscan.HDBSCAN(min_samples=a.min_samples, min_cluster_size=10, cluster_selection_method="leaf", prediction_data=True, core_dist_n_jobs=a.threads).fit(u.embedding_)
    with open(pk, "wb") as f:
        pickle.dump((u, cl), f, protocol=4)
xn = features(os.path.join(work, "new.parquet"))
labels, strength0 = [], None
for s in range(a.streams):
    u.transform_seed = 1000 + s
    emb = u.transform(xn)
    lab, strength = hdbscan.prediction.approximate_predict(cl, emb)
    labels.append(np.asarray(lab))
    if s == 0:
        strength0 = np.asarray(strength)
res["reference"] = stability(np.array(labels), (labels[0] >= 0) & (strength0 >= 0.9))
print("reference", json.dumps(res["reference"]), flush=True)
print(json.dumps(res, indent=1))
