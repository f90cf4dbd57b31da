#!/usr/bin/env python3
"""Side-by-side UMAP: dagrun's `reduce method=umap` (kNN node + layout) against umap-learn on
the same table and cores, each in its own process, over several runs. For every layout it
reports wall time (dagrun: kNN, graph, init, SGD), peak RSS, trustworthiness (scikit-learn's,
k=10, on the same random sample of rows) and the layout's **density structure**: HDBSCAN
leaf clusters of that layout (dagrun's `cluster` + `select-leaves`, the same code and
settings for every layout): how many, the share of galaxies in them, and, where the input
has a truth column, how many planted classes a leaf matches with Jaccard >= 0.9.

    ~/ref-venv/bin/python benches/compare_umap.py FEATURES.parquet --nn 50 --d 5 \\
        [--sample N] [--runs 3] [--ms 75] [--mcs 10] [--truth planted_class] [--densmap] [--out DIR]

`--densmap` compares densMAP layouts (dagrun's `densmap = true` against umap-learn's
`densmap=True`), both with their radii (`output_dens`), and reports the correlation of the
input's and the layout's log local radii as each computes it (`radius_correlation`).

FEATURES.parquet: an id column and feature columns (`feat_*` by default), e.g. a `dagrun
export` of the built-in sample's `featured` node. dagrun run r uses `seed = r` (its kNN
graph, which does not depend on the seed, is computed once and cached: its time is counted
in every run); umap-learn runs unseeded (numba-parallel, as it is used), so each run is
another draw. `--skip-ref` reuses umap-learn layouts already in OUT. Writes OUT/results.json.
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
ap.add_argument("--runs", type=int, default=3)
ap.add_argument("--ref-runs", type=int, default=None, help="umap-learn runs (default: --runs)")
ap.add_argument("--init", default="spectral")
ap.add_argument("--ms", type=int, default=75, help="HDBSCAN min_samples for the density structure")
ap.add_argument("--mcs", type=int, default=10)
ap.add_argument("--truth", default="planted_class")
ap.add_argument("--background", default="bulk:")
ap.add_argument("--tw-sample", type=int, default=5000)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--dagrun", default=None)
ap.add_argument("--skip-ref", action="store_true")
ap.add_argument("--densmap", action="store_true", help="densMAP layouts on both sides, with their radius correlation")
ap.add_argument("--out", default=None)
a = ap.parse_args()

dagrun = a.dagrun or os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "dagrun")
out = a.out or tempfile.mkdtemp(prefix="dagrun-umap-")
os.makedirs(out, exist_ok=True)
full = pq.read_table(a.inp)
if a.sample:
    full = full.slice(0, a.sample)
cols = [c for c in full.column_names if c.startswith(a.prefix)]
truth = full[a.truth].to_numpy(zero_copy_only=False).astype(object) if a.truth in full.column_names else None
tb = full.select([a.id] + cols)
data = os.path.join(out, "input.parquet")
pq.write_table(tb, data)
ids = tb[a.id].to_numpy()
n = tb.num_rows
env = dict(os.environ, NUMBA_NUM_THREADS=str(a.threads), OMP_NUM_THREADS=str(a.threads))
X = np.column_stack([tb[c].to_numpy() for c in cols]).astype(np.float32)
rng = np.random.default_rng(0)
tw_idx = np.sort(rng.choice(n, size=min(n, a.tw_sample), replace=False))


def structure(E, name):
    """HDBSCAN leaves of layout E with dagrun's cluster + select-leaves."""
    from sklearn.manifold import trustworthiness
    d = os.path.join(out, f"leaves-{name}")
    os.makedirs(d, exist_ok=True)
    t = {"id": ids}
    t.update({f"l{j}": E[:, j].astype(np.float32) for j in range(E.shape[1])})
    pq.write_table(pa.table(t), os.path.join(d, "layout.parquet"))
    with open(os.path.join(d, "p.toml"), "w") as f:
        f.write(f'[pipeline]\nid = "{a.id}"\n[nodes.layout]\nop = "read"\npath = "layout.parquet"\n'
                f'[nodes.tree]\nop = "cluster"\ninput = "layout"\ncolumns = "l*"\nmin_samples = {a.ms}\nmin_cluster_size = {a.mcs}\n'
                f'[nodes.classes]\nop = "select-leaves"\ninput = "tree"\n')
    subprocess.run([dagrun, "-q", "export", os.path.join(d, "p.toml"), "classes", "--out", os.path.join(d, "classes.parquet"),
                    "--cache", os.path.join(d, "cache")], check=True)
    lab = pq.read_table(os.path.join(d, "classes.parquet"))["label"].to_numpy()
    r = {"trustworthiness": round(float(trustworthiness(X[tw_idx], E[tw_idx], n_neighbors=10)), 4),
         "leaf_classes": int(lab.max() + 1), "leaf_share": round(float((lab >= 0).mean()), 4)}
    if truth is not None:
        planted = sorted({t for t in truth if not str(t).startswith(a.background)})
        best = {}
        for p in planted:
            m = truth == p
            b = 0.0
            for c in np.unique(lab[m]):
                if c >= 0:
                    k = lab == c
                    b = max(b, (m & k).sum() / (m | k).sum())
            best[p] = round(float(b), 3)
        r["recovered"] = sum(v >= 0.9 for v in best.values())
        r["planted"] = len(planted)
        r["best_jaccard"] = best
    return r


res = {"n": n, "dims": len(cols), "n_neighbors": a.nn, "n_components": a.d, "threads": a.threads, "min_samples": a.ms,
       "min_cluster_size": a.mcs, "dagrun": [], "umap_learn": []}
pipe = os.path.join(out, "umap.toml")
cache = os.path.join(out, "cache")
knn_s = None
for r in range(a.runs):
    with open(pipe, "w") as f:
        f.write(f'[pipeline]\nname = "cmp"\nid = "{a.id}"\n[nodes.points]\nop = "read"\npath = "input.parquet"\n'
                f'[nodes.umap]\nop = "reduce"\nmethod = "umap"\ninput = "points"\ncolumns = "{a.prefix}*"\n'
                f'n_neighbors = {a.nn}\nn_components = {a.d}\ninit = "{a.init}"\nseed = {r}\n'
                + ("densmap = true\n" if a.densmap else ""))
    wall, rss, stdout = refstack.timed([dagrun, "-q", "-j", str(a.threads), "run", pipe, "--json", "--cache", cache], env)
    run = json.loads(stdout)["nodes"]
    nodes = {x["name"]: x for x in run}
    if nodes["umap.knn"]["status"] == "computed":
        knn_s = nodes["umap.knn"]["seconds"]
    key = nodes["umap"]["key"]
    manifest = json.load(open(os.path.join(cache, "v1", "objects", key[:2], key, "manifest.json")))
    det = manifest.get("details", {})
    st = det.get("seconds", {})
    lay = os.path.join(out, f"dagrun-{r}.parquet")
    subprocess.run([dagrun, "-q", "export", pipe, "umap", "--out", lay, "--cache", cache], check=True)
    ours = pq.read_table(lay)
    assert ours[a.id].to_numpy().tolist() == ids.tolist(), "dagrun's layout rows are in input order"
    E = np.column_stack([ours[f"umap_{j}"].to_numpy() for j in range(a.d)])
    one = {"seed": r, "knn_s": knn_s, "layout_s": nodes["umap"]["seconds"], "graph_s": st.get("graph"), "init_s": st.get("init"),
           "sgd_s": st.get("sgd"), "seconds": (knn_s or 0) + nodes["umap"]["seconds"], "peak_rss_mb": round(rss),
           "spectral": det.get("spectral"), "radius_correlation": det.get("radius_correlation")}
    one.update(structure(E, f"dagrun-{r}"))
    res["dagrun"].append(one)
    print(json.dumps(one), flush=True)

REF = r'''
import sys, time, json, numpy as np, pyarrow as pa, pyarrow.parquet as pq, umap
inp, nn, d, init, outp, dens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6] == "1"
tb = pq.read_table(inp); X = np.column_stack([tb[c].to_numpy() for c in tb.column_names[1:]]).astype(np.float32)
kw = dict(densmap=True, output_dens=True) if dens else {}
umap.UMAP(n_neighbors=min(nn, 15), n_components=d, n_epochs=5, **kw).fit(X[:2000])  # warm numba's JIT
t = time.perf_counter(); E = umap.UMAP(n_neighbors=nn, n_components=d, init=init, **kw).fit_transform(X); s = time.perf_counter() - t
corr = None
if dens:
    E, ro, re = E
    corr = float(np.corrcoef(ro, re)[0, 1])
pq.write_table(pa.table({f"x{j}": E[:, j] for j in range(d)}), outp)
print(json.dumps({"seconds": s, "radius_correlation": corr}))
'''
for r in range(a.ref_runs if a.ref_runs is not None else a.runs):
    ref_out = os.path.join(out, f"umap_learn-{r}.parquet")
    one = {"run": r}
    if not (a.skip_ref and os.path.exists(ref_out)):
        wall, rss, stdout = refstack.timed([sys.executable, "-c", REF, data, str(a.nn), str(a.d), a.init, ref_out, "1" if a.densmap else "0"], env)
        got = json.loads(stdout.strip().splitlines()[-1])
        one.update({"seconds": got["seconds"], "radius_correlation": got["radius_correlation"], "peak_rss_mb": round(rss)})
    ref = pq.read_table(ref_out)
    E = np.column_stack([ref[f"x{j}"].to_numpy() for j in range(a.d)])
    one.update(structure(E, f"umap_learn-{r}"))
    res["umap_learn"].append(one)
    print(json.dumps(one), flush=True)


def med(rows, k):
    v = [x[k] for x in rows if x.get(k) is not None]
    return float(np.median(v)) if v else None


res["median"] = {side: {k: med(res[side], k) for k in ("seconds", "peak_rss_mb", "trustworthiness", "leaf_share", "leaf_classes", "recovered", "radius_correlation")}
                 for side in ("dagrun", "umap_learn")}
if res["median"]["umap_learn"]["seconds"] and res["median"]["dagrun"]["seconds"]:
    res["speedup"] = res["median"]["umap_learn"]["seconds"] / res["median"]["dagrun"]["seconds"]
print(json.dumps(res["median"], indent=1), "speed-up", res.get("speedup"))
json.dump(res, open(os.path.join(out, "results.json"), "w"), indent=1)
