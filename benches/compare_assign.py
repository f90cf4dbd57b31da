#!/usr/bin/env python3
"""Assigning new galaxies into a fitted search, side by side: dagrun's `assign` against
umap-learn's `transform` + hdbscan's `approximate_predict`, on the same fitted galaxies,
the same new galaxies and the same cores.

PIPELINE is a held-out pipeline (pipelines/held-out.toml, scaled with --set) whose `fit`
and `new` nodes are the fitted and the new galaxies. Steps:
  1. dagrun runs the pipeline (the fit is then cached); `fit` and `new` are exported.
  2. The reference fit, once: umap-learn (same n_neighbors, n_components) on `fit`, hdbscan
     (same min_samples, min_cluster_size, leaf selection, prediction data) on its layout;
     both pickled beside the cache (--work). Not timed: only the assignment is compared.
  3. Timed, --repeat times each, each in its own process: dagrun computing only `assigned`
     (a new `seed` each run, so the fit is a cache hit and the assignment is not), under
     /usr/bin/time -v; the reference loading its pickles, then transform +
     approximate_predict, its peak memory measured from after the load's own peak
     (VmHWM reset), so the fit's memory is not counted against it.

    ~/ref-venv/bin/python benches/compare_assign.py pipelines/held-out.toml --work ../bench/as \
        --set catalog.n=1464000 --set fit.keep_where='["id < 1264000"]' --set new.keep_where='["id >= 1264000"]'
"""
import argparse, json, os, pickle, statistics, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import refstack  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("pipeline")
ap.add_argument("--work", required=True, help="folder for the exports, the pickles and the cache")
ap.add_argument("--set", action="append", default=[])
ap.add_argument("--n-neighbors", type=int, default=50)
ap.add_argument("--n-components", type=int, default=5)
ap.add_argument("--min-samples", type=int, default=300)
ap.add_argument("--repeat", type=int, default=3)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--dagrun", default=None)
ap.add_argument("--ref-step", default=None, help=argparse.SUPPRESS)
a = ap.parse_args()

work = os.path.abspath(a.work)
os.makedirs(work, exist_ok=True)
paths = {k: os.path.join(work, v) for k, v in [("fit", "fit.parquet"), ("new", "new.parquet"), ("umap", "umap.pkl"), ("hdb", "hdbscan.pkl")]}


def features(path):
    import numpy as np
    import pyarrow.parquet as pq

    t = pq.read_table(path)
    cols = [c for c in t.column_names if c.startswith("feat_")]
    return np.column_stack([t.column(c).to_numpy() for c in cols]).astype(np.float32)


if a.ref_step == "fit":
    import hdbscan
    import umap

    x = features(paths["fit"])
    t = time.perf_counter()
    u = umap.UMAP(n_neighbors=a.n_neighbors, n_components=a.n_components).fit(x)
    cl = hdbscan.HDBSCAN(min_samples=a.min_samples, min_cluster_size=10, cluster_selection_method="leaf", prediction_data=True, core_dist_n_jobs=a.threads).fit(u.embedding_)
    with open(paths["umap"], "wb") as f:
        pickle.dump(u, f, protocol=4)
    with open(paths["hdb"], "wb") as f:
        pickle.dump(cl, f, protocol=4)
    print(json.dumps({"fit_seconds": time.perf_counter() - t}))
    sys.exit(0)

if a.ref_step == "assign":
    import hdbscan  # noqa: F401

    x = features(paths["new"])
    with open(paths["umap"], "rb") as f:
        u = pickle.load(f)
    with open(paths["hdb"], "rb") as f:
        cl = pickle.load(f)
    import hdbscan.prediction

    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak resident set size to the current one
    t = time.perf_counter()
    emb = u.transform(x)
    t_umap = time.perf_counter() - t
    labels, _ = hdbscan.prediction.approximate_predict(cl, emb)
    wall = time.perf_counter() - t
    hwm = int([l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]) / 1024
    print(json.dumps({"seconds": wall, "transform": t_umap, "predict": wall - t_umap, "peak_mb": hwm, "in_a_class": int((labels >= 0).sum())}))
    sys.exit(0)

target = os.environ.get("CARGO_TARGET_DIR", "target")
dagrun = os.path.abspath(a.dagrun or os.path.join(target, "release", "dagrun"))
sets = sum((["--set", s] for s in a.set), [])
env = dict(os.environ, DAGRUN_THREADS=str(a.threads), NUMBA_NUM_THREADS=str(a.threads), OMP_NUM_THREADS=str(a.threads))
cache = ["--cache", os.path.join(work, "cache")]

subprocess.run([dagrun, a.pipeline, "-q"] + sets + cache, check=True, env=env)
for node in ["fit", "new"]:
    if not os.path.exists(paths[node]):
        subprocess.run([dagrun, "export", a.pipeline, node, "--out", paths[node], "-q"] + sets + cache, check=True, env=env)
if not os.path.exists(paths["hdb"]):
    print("fitting the reference (umap-learn, hdbscan) once ...", file=sys.stderr)
    subprocess.run([sys.executable, __file__, a.pipeline, "--work", work, "--ref-step", "fit", "--n-neighbors", str(a.n_neighbors), "--n-components", str(a.n_components), "--min-samples", str(a.min_samples), "--threads", str(a.threads)], check=True, env=env)

rows = {"dagrun": [], "reference": []}
for r in range(a.repeat):
    wall, rss, _ = refstack.timed([dagrun, "run", a.pipeline, "--target", "assigned", "-q", "--set", f"assigned.seed={1000 + r}"] + sets + cache, env)
    rows["dagrun"].append({"seconds": wall, "peak_mb": rss})
    p = subprocess.run([sys.executable, __file__, a.pipeline, "--work", work, "--ref-step", "assign"], capture_output=True, text=True, env=env, check=True)
    rows["reference"].append(json.loads(p.stdout.strip().splitlines()[-1]))
out = {side: {k: statistics.median(x[k] for x in v) for k in v[0]} for side, v in rows.items()}
out["speedup"] = out["reference"]["seconds"] / out["dagrun"]["seconds"]
out["runs"] = rows
print(json.dumps(out, indent=1))
