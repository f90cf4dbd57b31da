#!/usr/bin/env python3
"""Render a dagrun report (or sweep page) in headless Chromium and check every image loads.

    python3 scripts/check_report.py PATH/TO/index.html [--screenshot out.png] [--width 1280]

Copies the report folder to a temporary place, adds a probe page that opens the report
in an iframe and counts, once everything has loaded, the <img> elements that decoded
(naturalWidth > 0) and those that did not; Chromium prints the probe's DOM, which this
script reads. Then it takes a full-length screenshot of the report itself. Exit status 1
if any image failed, 2 if Chromium is missing (Debian: `apt-get install chromium`).

Standard library only. Chromium runs with --no-sandbox (root in containers) and
--allow-file-access-from-files (so the probe may read the iframe's DOM).
"""

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PROBE = """<!doctype html><html><body><div id="result">pending</div>
<iframe id="f" src="index.html" style="width:1280px;height:800px"></iframe>
<script>
document.getElementById('f').addEventListener('load', function () {
  var doc = this.contentDocument, imgs = doc ? doc.images : [];
  var ok = 0, bad = [];
  for (var i = 0; i < imgs.length; i++) {
    if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++; else bad.push(imgs[i].getAttribute('src'));
  }
  document.getElementById('result').textContent =
    'images=' + imgs.length + ' loaded=' + ok + ' broken=' + JSON.stringify(bad) +
    ' title=' + JSON.stringify(doc ? doc.title : null);
});
</script></body></html>
"""


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def run(browser, args, timeout=120):
    base = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--hide-scrollbars", "--allow-file-access-from-files", "--virtual-time-budget=10000"]
    return subprocess.run(base + args, capture_output=True, text=True, timeout=timeout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("html", type=Path, help="a report's index.html")
    ap.add_argument("--screenshot", type=Path, help="write a PNG screenshot here")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=0, help="screenshot height (default: the page's, up to 12000)")
    a = ap.parse_args()
    browser = chromium()
    if browser is None:
        print("chromium not found: apt-get install chromium", file=sys.stderr)
        return 2
    src = a.html.resolve().parent
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        # A sweep page (cache/v1/sweeps/KEY/) shows its points' pictures through
        # ../../objects/: keep that path working from the copy.
        objects = src.parent.parent / "objects"
        if src.parent.name == "sweeps" and objects.is_dir():
            site = Path(tmp) / "sweeps" / src.name
            (Path(tmp) / "objects").symlink_to(objects)
        shutil.copytree(src, site)
        if a.html.name != "index.html":
            shutil.copy(a.html, site / "index.html")
        (site / "__probe.html").write_text(PROBE)
        r = run(browser, ["--dump-dom", (site / "__probe.html").as_uri()])
        m = re.search(r"images=(\d+) loaded=(\d+) broken=(\[.*?\]) title=(.*?)</div>", r.stdout)
        if not m:
            print("could not read the probe's result; chromium said:\n" + r.stderr[-2000:], file=sys.stderr)
            return 1
        total, loaded, broken, title = int(m[1]), int(m[2]), m[3], m[4]
        print(f"{a.html}: title {title}, {loaded} of {total} images loaded; broken: {broken}")
        if a.screenshot:
            height = a.height
            if not height:
                # Page height: ask Chromium for the DOM with a script that writes scrollHeight.
                (site / "__height.html").write_text(
                    '<!doctype html><body><div id="h">?</div><iframe id="f" src="index.html" style="width:%dpx;height:100px">'
                    "</iframe><script>document.getElementById('f').addEventListener('load',function(){"
                    "document.getElementById('h').textContent='H='+this.contentDocument.documentElement.scrollHeight;});"
                    "</script></body>" % a.width)
                hr = run(browser, ["--dump-dom", (site / "__height.html").as_uri()])
                hm = re.search(r"H=(\d+)", hr.stdout)
                height = min(int(hm[1]) + 20, 12000) if hm else 3000
            out = a.screenshot.resolve()
            s = run(browser, [f"--window-size={a.width},{height}", f"--screenshot={out}", (site / "index.html").as_uri()])
            if not out.exists():
                print("screenshot failed:\n" + s.stderr[-2000:], file=sys.stderr)
                return 1
            print(f"screenshot: {out} ({a.width}x{height})")
        return 0 if total == loaded else 1


if __name__ == "__main__":
    sys.exit(main())
