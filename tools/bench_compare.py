#!/usr/bin/env python3
"""Compare two builds of dreamlog's criterion benchmarks on the same machine.

This machine's noise is about ±25 % between single runs, so one run of each proves
nothing: the two builds' benchmark binaries run alternately (old, new, old, new, …),
ROUNDS times each, and each benchmark's figure is the median of its ROUNDS criterion
medians. Throughput benchmarks compare elements per second, latency ones time (both as
new ÷ old speed, so > 1 is faster).

Build the binaries first, e.g. for the previous main:

    git worktree add /tmp/old <commit>
    (cd /tmp/old && CARGO_TARGET_DIR=$PWD/target cargo bench --no-run --bench append ...)

and copy each `target/release/deps/<bench>-<hash>` executable to OLD_DIR/<bench>, the
same for the new build into NEW_DIR. Then:

    python3 tools/bench_compare.py OLD_DIR NEW_DIR [--rounds 5] [--bench append read memory]
        [--filter NAME]

Prints a table (and `--json`); exits 1 when any benchmark's ratio is below `--floor`
(default 0.95).
"""

import argparse
import json
import re
import statistics
import subprocess
import sys
import time

UNITS = {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}
RATE = {"elem/s": 1.0, "Kelem/s": 1e3, "Melem/s": 1e6, "Gelem/s": 1e9}


def parse(text):
    """criterion's report: a name line (or `name time: [...]` on one line), then
    `time: [lo mid hi]` and maybe `thrpt: [lo mid hi]`; other lines are skipped."""
    out = {}
    name = None
    skip = ("Benchmarking", "Found ", "Gnuplot", "WARNING", "Warning", "running ", "test ")
    for line in text.splitlines():
        if line and not line[0].isspace() and not line.startswith(skip):
            name = line.split("time:")[0].strip()
        t = re.search(r"time:\s+\[(\S+) (\S+) (\S+) (\S+) (\S+) (\S+)\]", line)
        if t and name:
            out.setdefault(name, {})["time"] = float(t.group(3)) * UNITS[t.group(4)]
        r = re.search(r"thrpt:\s+\[(\S+) (\S+) (\S+) (\S+) (\S+) (\S+)\]", line)
        if r and name:
            out.setdefault(name, {})["thrpt"] = float(r.group(3)) * RATE[r.group(4)]
        # The memory benchmark's own lines: `NAME: … p50=X ms …` and `NAME: … = N events/s`.
        m = re.match(r"^([^:\[]+): .*p50=([\d.]+) ms", line)
        if m:
            out[m.group(1).strip()] = {"time": float(m.group(2)) * 1e-3}
        m = re.match(r"^([^:\[]+): .*= ([\d.]+) events/s", line)
        if m:
            out[m.group(1).strip()] = {"time": 1.0 / float(m.group(2)), "thrpt": float(m.group(2))}
    return {k: v for k, v in out.items() if "time" in v}


def run(binary, filt=None):
    cmd = [binary, "--bench", "--noplot", "--discard-baseline"] + ([filt] if filt else [])
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{binary} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    return parse(p.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--bench", nargs="+", default=["append", "read", "memory"])
    ap.add_argument("--floor", type=float, default=0.95)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--filter", help="criterion's name filter (e.g. append/fsync/1000): only those "
                    "benchmarks run; not for the memory benchmark, which takes no filter")
    a = ap.parse_args()
    samples = {"old": {}, "new": {}}
    start = time.time()
    for r in range(a.rounds):
        for bench in a.bench:
            for side in ("old", "new") if r % 2 == 0 else ("new", "old"):
                for name, fig in run(f"{getattr(a, side)}/{bench}", a.filter).items():
                    samples[side].setdefault(f"{bench}: {name}", []).append(fig)
        print(f"round {r + 1}/{a.rounds} done after {time.time() - start:.0f} s", file=sys.stderr, flush=True)
    rows = []
    for name in sorted(set(samples["old"]) & set(samples["new"])):
        old, new = samples["old"][name], samples["new"][name]
        if all("thrpt" in f for f in old + new):
            o = statistics.median(f["thrpt"] for f in old)
            n = statistics.median(f["thrpt"] for f in new)
            rows.append({"benchmark": name, "unit": "elem/s", "old": o, "new": n, "ratio": n / o})
        else:
            o = statistics.median(f["time"] for f in old)
            n = statistics.median(f["time"] for f in new)
            rows.append({"benchmark": name, "unit": "s", "old": o, "new": n, "ratio": o / n})
    if a.json:
        print(json.dumps({"rounds": a.rounds, "rows": rows}, indent=1))
    else:
        print(f"| benchmark | previous main | this build | speed ratio (median of {a.rounds}) |")
        print("|---|---|---|---|")
        for row in rows:
            fmt = (lambda v: f"{v:,.0f} /s") if row["unit"] == "elem/s" else (lambda v: f"{v * 1e3:.3f} ms")
            print(f"| {row['benchmark']} | {fmt(row['old'])} | {fmt(row['new'])} | {row['ratio']:.2f}× |")
    low = [r for r in rows if r["ratio"] < a.floor]
    if low:
        print(f"below {a.floor}×: " + ", ".join(r["benchmark"] for r in low), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
