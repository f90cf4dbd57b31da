#!/usr/bin/env python3
"""Benchmark `dagrun serve` (issue #33): start-up, `/api/points`, new `/api/similar`
queries, re-ranking, the page's first full draw in headless Chromium (WebGL on SwiftShader),
50 concurrent clients, clients that drop mid-response, and server memory.

    python3 benches/serve_bench.py [--dagrun PATH] [--cache DIR] [--set catalog.n=1264000]
        [--pipeline pipelines/featured.toml] [--load-seconds 30] [--screenshot OUT.png] [--json OUT.json]

The pipeline's nodes should be in the cache already (run the pipeline first): start-up then
only reads them. Everything runs on the loopback. Standard library only; Chromium through
Debian's chromedriver (W3C WebDriver over HTTP). Prints a table and, with --json, writes the
figures. Timings are wall-clock medians; the machine's other load shows in them.
"""

import argparse
import base64
import http.client
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_kb(pid, field):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


class Api:
    def __init__(self, host, port):
        self.host, self.port = host, port

    def get(self, path):
        c = http.client.HTTPConnection(self.host, self.port, timeout=120)
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, body

    def post(self, path, obj):
        c = http.client.HTTPConnection(self.host, self.port, timeout=120)
        c.request("POST", path, body=json.dumps(obj), headers={"Content-Type": "application/json"})
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, body


def timed(f):
    t0 = time.perf_counter()
    out = f()
    return time.perf_counter() - t0, out


class WebDriver:
    """Just enough W3C WebDriver for a page load, scripts and a screenshot."""

    def __init__(self):
        driver = shutil.which("chromedriver") or "/usr/lib/chromium/chromedriver"
        chromium = "/usr/lib/chromium/chromium" if os.path.exists("/usr/lib/chromium/chromium") else shutil.which("chromium")
        if not (os.path.exists(driver) and chromium):
            raise SystemExit("chromium and chromium-driver are needed: scripts/browser-up.sh")
        self.port = free_port()
        self.proc = subprocess.Popen([driver, f"--port={self.port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.profile = tempfile.mkdtemp()
        for _ in range(100):
            try:
                if self._call("GET", "/status")["value"]["ready"]:
                    break
            except OSError:
                time.sleep(0.1)
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {"binary": chromium, "args": [
            "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
            "--window-size=1400,1043", "--hide-scrollbars", f"--user-data-dir={self.profile}"]}}}}
        self.session = self._call("POST", "/session", caps)["value"]["sessionId"]

    def _call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=600) as r:
            return json.loads(r.read())

    def cmd(self, method, path, body=None):
        return self._call(method, f"/session/{self.session}{path}", body)["value"]

    def eval(self, js):
        return self.cmd("POST", "/execute/sync", {"script": js, "args": []})

    def close(self):
        try:
            self._call("DELETE", f"/session/{self.session}")
        finally:
            self.proc.kill()
            shutil.rmtree(self.profile, ignore_errors=True)


def first_draw(url, runs, screenshot):
    wd = WebDriver()
    out = []
    try:
        for i in range(runs):
            wd.cmd("POST", "/url", {"url": "about:blank"})
            t0 = time.perf_counter()
            wd.cmd("POST", "/url", {"url": url})
            while not wd.eval("return !!(window.dagrun && window.dagrun.ready)"):
                time.sleep(0.05)
            wall = time.perf_counter() - t0
            marks = wd.eval("return {drawn: window.dagrun.drawnMs, points: window.dagrun.pointsMs, n: window.dagrun.n}")
            out.append({"wall_s": wall, "drawn_ms": marks["drawn"], "points_ms": marks["points"], "n": marks["n"]})
            print(f"  page run {i + 1}: ready after {wall:.2f} s (points parsed at {marks['points']:.0f} ms, drawn at {marks['drawn']:.0f} ms, {marks['n']} points)", flush=True)
        if screenshot:
            # Click a member of the largest class, as a person would, then wait for its
            # similar galaxies before the picture.
            x, y = wd.eval("""
                const d = window.dagrun, ids = d.ids;
                return fetch('/api/classes').then(r => r.json()).then(c => {
                    const top = c.classes.slice().sort((a, b) => b.size - a.size)[0].label;
                    return fetch('/api/points').then(r => r.arrayBuffer()).then(b => {
                        const n = Number(new DataView(b).getBigUint64(8, true));
                        const cls = new Int32Array(b, 16 + 8 * n, n);
                        const row = cls.findIndex(k => k === top);
                        return d.screenPosition(row);
                    });
                });""")
            el = wd.cmd("POST", "/element", {"using": "css selector", "value": "#plot"})
            el = next(iter(el.values()))
            rect = wd.cmd("GET", f"/element/{el}/rect")
            ox, oy = int(round(x - rect["width"] // 2)), int(round(y - rect["height"] // 2))
            wd.cmd("POST", "/actions", {"actions": [{"type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"}, "actions": [
                {"type": "pointerMove", "origin": {"element-6066-11e4-a52e-4f735466cecf": el}, "x": ox, "y": oy, "duration": 0},
                {"type": "pointerDown", "button": 0}, {"type": "pause", "duration": 50}, {"type": "pointerUp", "button": 0},
                {"type": "pause", "duration": 300},
                {"type": "pointerMove", "origin": "viewport", "x": 5, "y": int(rect["height"]) - 5, "duration": 0}]}]})
            t0 = time.time()
            while time.time() - t0 < 60 and not wd.eval("return !!(window.dagrun.similar && window.dagrun.busy === 0)"):
                time.sleep(0.1)
            time.sleep(1.5)
            Path(screenshot).write_bytes(base64.b64decode(wd.cmd("GET", "/screenshot")))
    finally:
        wd.close()
    return out


def load(api, ids, seconds, clients, log_path):
    """`clients` threads for `seconds`: each alternates a new similar query and a label."""
    until = time.monotonic() + seconds
    lat = {"similar": [], "labels": []}
    errors = []
    posted = []
    lock = threading.Lock()

    def client(c):
        rng = random.Random(c)
        i = 0
        while time.monotonic() < until:
            gid = ids[rng.randrange(len(ids))]
            try:
                if i % 2 == 0:
                    dt, (st, _) = timed(lambda: api.get(f"/api/similar?id={gid}&k=50"))
                    kind = "similar"
                else:
                    label = f"load-{c}-{i}"
                    dt, (st, _) = timed(lambda: api.post("/api/labels", {"action": "add", "label": label, "ids": [gid]}))
                    kind = "labels"
                with lock:
                    if st == 200:
                        lat[kind].append(dt)
                        if kind == "labels":
                            posted.append(label)
                    else:
                        errors.append(f"{kind} {st}")
            except OSError as e:
                with lock:
                    errors.append(repr(e))
            i += 1

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    logged = [json.loads(line)["label"] for line in Path(log_path).read_text().splitlines() if line.strip()]
    counts = {}
    for label in logged:
        counts[label] = counts.get(label, 0) + 1
    once = all(counts.get(label) == 1 for label in posted)
    return lat, errors, posted, once


def drops(host, port, n):
    """Clients that ask for the points and hang up after the first bytes."""
    for _ in range(n):
        s = socket.create_connection((host, port))
        s.sendall(b"GET /api/points HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (host.encode(), port))
        s.recv(1000)
        s.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dagrun", default=str(Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "release" / "dagrun"))
    ap.add_argument("--pipeline", default=str(REPO / "pipelines" / "featured.toml"))
    ap.add_argument("--cache", default=None)
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--page-runs", type=int, default=3)
    ap.add_argument("--load-seconds", type=float, default=30)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--screenshot", default=None)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()

    work = Path(tempfile.mkdtemp())
    log = work / "labels.jsonl"
    port = free_port()
    cmd = [a.dagrun, "serve", a.pipeline, "--port", str(port), "--labels", str(log), "-q"]
    for s in a.set:
        cmd += ["--set", s]
    env = dict(os.environ)
    if a.cache:
        env["DAGRUN_CACHE"] = a.cache
    t0 = time.perf_counter()
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    url = server.stdout.readline().strip()
    startup = time.perf_counter() - t0
    if not url.startswith("http://"):
        print(server.stderr.read(), file=sys.stderr)
        raise SystemExit("dagrun serve printed no URL")
    api = Api("127.0.0.1", port)
    res = {"startup_s": startup, "rss_after_start_mb": rss_kb(server.pid, "VmRSS") / 1024}
    try:
        print(f"serving at {url} after {startup:.2f} s, {res['rss_after_start_mb']:.0f} MB resident", flush=True)
        times, body = [], b""
        for _ in range(5):
            dt, (st, body) = timed(lambda: api.get("/api/points"))
            assert st == 200
            times.append(dt)
        n = int.from_bytes(body[8:16], "little")
        ids = json.loads(body[16 + 12 * n:])
        res.update(n=n, points_bytes=len(body), points_bytes_per_galaxy=len(body) / n, points_s_median=statistics.median(times))
        print(f"/api/points: {len(body)} bytes for {n} galaxies ({len(body) / n:.1f} B each), median {statistics.median(times) * 1000:.0f} ms of 5", flush=True)

        rng = random.Random(0)
        qs = rng.sample(ids, a.queries)
        lat = []
        for q in qs:
            dt, (st, _) = timed(lambda: api.get(f"/api/similar?id={q}&k=50"))
            assert st == 200
            lat.append(dt)
        res.update(similar_p50_ms=1000 * pct(lat, 50), similar_p99_ms=1000 * pct(lat, 99))
        print(f"/api/similar, {a.queries} new queries, k=50: p50 {res['similar_p50_ms']:.1f} ms, p99 {res['similar_p99_ms']:.1f} ms", flush=True)

        rr = []
        for i in range(10):
            picks = rng.sample(ids, 10)
            qstr = "&".join([f"id={g}" for g in picks[:5]] + [f"not={g}" for g in picks[5:]])
            dt, (st, _) = timed(lambda: api.get(f"/api/similar?{qstr}&k=50"))
            assert st == 200
            rr.append(dt)
        res.update(rerank_5_5_median_ms=1000 * statistics.median(rr), rerank_5_5_max_ms=1000 * max(rr))
        print(f"re-rank, 5 positives + 5 negatives over every galaxy: median {res['rerank_5_5_median_ms']:.0f} ms, max {res['rerank_5_5_max_ms']:.0f} ms (10 runs)", flush=True)

        page = first_draw(url, a.page_runs, a.screenshot)
        res["page"] = page
        res["page_ready_median_s"] = statistics.median(p["wall_s"] for p in page)
        res["page_drawn_median_ms"] = statistics.median(p["drawn_ms"] for p in page)
        print(f"first full draw in headless Chromium (SwiftShader): median {res['page_ready_median_s']:.2f} s to ready, drawn at {res['page_drawn_median_ms']:.0f} ms", flush=True)

        lat, errors, posted, once = load(api, ids, a.load_seconds, a.clients, log)
        res["load"] = {
            "clients": a.clients, "seconds": a.load_seconds, "errors": len(errors), "error_examples": errors[:5],
            "similar": len(lat["similar"]), "labels": len(lat["labels"]), "every_label_logged_once": once,
            "similar_p50_ms": 1000 * pct(lat["similar"], 50) if lat["similar"] else None, "similar_p99_ms": 1000 * pct(lat["similar"], 99) if lat["similar"] else None,
            "labels_p50_ms": 1000 * pct(lat["labels"], 50) if lat["labels"] else None, "labels_p99_ms": 1000 * pct(lat["labels"], 99) if lat["labels"] else None,
        }
        L = res["load"]
        print(f"{a.clients} clients for {a.load_seconds:.0f} s: {L['similar']} searches (p50 {L['similar_p50_ms']:.0f} ms, p99 {L['similar_p99_ms']:.0f} ms), "
              f"{L['labels']} labels (p50 {L['labels_p50_ms']:.0f} ms, p99 {L['labels_p99_ms']:.0f} ms), {L['errors']} errors, every label logged once: {once}", flush=True)
        drops("127.0.0.1", port, 50)
        st, _ = api.get("/api/info")
        res["alive_after_drops"] = st == 200
        res["rss_peak_mb"] = rss_kb(server.pid, "VmHWM") / 1024
        print(f"50 clients hung up mid-response; server answers: {st == 200}; peak resident memory {res['rss_peak_mb']:.0f} MB", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
