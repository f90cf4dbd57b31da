"""Shared by the comparison scripts in this folder: run a command under /usr/bin/time -v and
report its wall time and peak memory."""
import re, subprocess, sys, time


def timed(cmd, env):
    """Run cmd; return (wall seconds, peak RSS in MB, stdout). Exit with its stderr on failure."""
    t = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-v"] + cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{p.stderr[-3000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1)) / 1024
    return wall, rss, p.stdout
