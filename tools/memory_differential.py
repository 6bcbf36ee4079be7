#!/usr/bin/env python3
"""Differential test of dreamlog's memory tool against the Anthropic SDK's reference backend.

    python3 tools/memory_differential.py --url http://127.0.0.1:7700 [--sequences 2000] [--length 12] [--seed 1] [--json] [--check]

Runs seeded random sequences of memory tool commands over valid /memories paths through
the official `anthropic` package's `BetaLocalFilesystemMemoryTool` (in a temporary folder,
on /dev/shm when there is one) and through a dreamlog server's memory tool endpoint (a
fresh store per sequence, so memory rules 2), and compares:

- `outcome`: one succeeded, the other refused;
- `text`: the answers differ (success texts and the reference's `ToolError` texts,
  verbatim; a directory's own size in a listing is left out, since the reference shows
  the file system's size of the directory entry);
- `files` / `dirs`: after the sequence, the files (with their texts) or the directories
  differ.

Where the reference is looser than the tool's contract, dreamlog refuses on purpose, and
the comparison says so rather than hiding it: when the reference lets an operating
system error through (a file below a file, a directory moved into itself), dreamlog must
refuse too, in its own words; and a refused command changes nothing in dreamlog, while
the reference makes a `rename` destination's parent directories before it finds the
source missing — those directories are removed from the reference's folder after a
refusal. Paths are the canonical forms (no trailing `/`); `view_range` ends are -1 or
line numbers (the reference slices Python-style below -1, dreamlog refuses).

Prints each category with a count and one example, then the totals. With --check the
exit status is 1 when any disagreement was found (tests/memory_differential.rs runs it so
in CI; docs/guide/memory.md gives the long mode).
"""

import argparse
import json
import os
import random
import sys
import tempfile
from collections import Counter

from anthropic.lib.tools import ToolError
from anthropic.tools.memory import BetaLocalFilesystemMemoryTool

from dreamlog import Client

DIRS = ["/memories/d", "/memories/d/e", "/memories/d/e/g", "/memories/x", "/memories/.hidden"]
FILES = [
    "/memories/a.md",
    "/memories/b.md",
    "/memories/d/c.md",
    "/memories/d/e/f.md",
    "/memories/d/e/g/h.md",
    "/memories/x/y.md",
    "/memories/.hidden/z.md",
    "/memories/a.md/below-a-file.md",
]
PATHS = ["/memories"] + DIRS + FILES
TEXTS = ["", "one\n", "one\ntwo\n", "alpha beta\n", "no newline", "\n", "a\n\n", "x\r\ny\r\n", "héllo wörld\n", "one\none\n",
         "0123456789" * 120 + "\n"]
FRAGMENTS = ["one", "two", "alpha", "beta", "\n", "zzz", "", "o", "x\r", "é", "one\n"]


def random_command(rng: random.Random, existing: list) -> dict:
    """A command over the fixed paths; edits mostly aim at files that exist."""
    kind = rng.choice(["view", "view", "create", "create", "create", "str_replace", "str_replace", "insert", "insert",
                       "delete", "rename"])
    path = rng.choice(existing) if existing and rng.random() < 0.6 else rng.choice(PATHS)
    if kind == "view":
        cmd = {"command": "view", "path": path}
        if rng.random() < 0.3:
            cmd["view_range"] = [rng.randint(-1, 4), rng.randint(-1, 5)]
        return cmd
    if kind == "create":
        return {"command": "create", "path": rng.choice(FILES + FILES + DIRS), "file_text": rng.choice(TEXTS)}
    if kind == "str_replace":
        old = rng.choice(FRAGMENTS)
        if existing and rng.random() < 0.3:
            old = rng.choice(["one\ntwo", "beta\n", "no new", "héllo", "y\r\n", "0123456789\n"])
        return {"command": "str_replace", "path": path, "old_str": old, "new_str": rng.choice(FRAGMENTS)}
    if kind == "insert":
        return {"command": "insert", "path": path, "insert_line": rng.randint(0, 4),
                "insert_text": rng.choice(FRAGMENTS + ["new line\n", "two\nlines\n"])}
    if kind == "delete":
        return {"command": "delete", "path": path}
    return {"command": "rename", "old_path": path, "new_path": rng.choice(PATHS)}


def tree(root: str):
    """(files: path → text, dirs) of the reference's folder."""
    files, dirs = {}, set()
    base = os.path.join(root, "memories")
    for d, _subdirs, names in os.walk(base):
        rel = os.path.relpath(d, base)
        mem = "/memories" if rel == "." else "/memories/" + rel.replace(os.sep, "/")
        if mem != "/memories":
            dirs.add(mem)
        for n in names:
            with open(os.path.join(d, n), "rb") as f:
                files[f"{mem}/{n}"] = f.read().decode("utf-8")
    return files, dirs


def reference_call(tool: BetaLocalFilesystemMemoryTool, root: str, cmd: dict):
    """(kind, text): kind is "ok", "error" (the reference's ToolError) or "raw" (an
    exception the reference lets through). After a refusal, directories the call made
    are removed (dreamlog's refusals change nothing)."""
    before = tree(root)[1]
    try:
        return "ok", str(tool.call(cmd))
    except ToolError as e:
        kind, text = "error", str(e.content)
    except Exception as e:  # OS errors, host paths and all
        kind, text = "raw", f"{type(e).__name__}: {e}"
    made = sorted(tree(root)[1] - before, key=len, reverse=True)
    for d in made:
        os.rmdir(os.path.join(root, "memories", d[len("/memories/"):]))
    return kind, text


def comparable(cmd: dict, text: str) -> str:
    """The text with directory sizes of a listing left out."""
    if cmd["command"] != "view" or not text.startswith("Here're the files and directories"):
        return text
    lines = text.split("\n")
    out = lines[:1]
    for i, line in enumerate(lines[1:]):
        _size, _, path = line.partition("\t")
        out.append(f"<dir>\t{path}" if i == 0 or path.endswith("/") else line)
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://127.0.0.1:7700")
    p.add_argument("--token", default=os.environ.get("DREAMLOG_TOKEN"))
    p.add_argument("--sequences", type=int, default=2000)
    p.add_argument("--length", type=int, default=12)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true")
    p.add_argument("--check", action="store_true", help="exit 1 on any disagreement")
    p.add_argument("--progress", action="store_true", help="a line on stderr every 500 sequences")
    p.add_argument("--rules", type=int, choices=[1, 2], default=2,
                   help="1: start each store as stores written before memory rules 2 (raw events, no rules note), "
                        "to see that they keep their old semantics and texts")
    a = p.parse_args()
    client = Client(a.url, token=a.token)
    rng = random.Random(a.seed)
    counts: Counter = Counter()
    examples: dict = {}
    commands = 0
    outcomes: Counter = Counter()
    run = os.urandom(4).hex()
    scratch = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None

    def note(category: str, example: dict) -> None:
        counts[category] += 1
        examples.setdefault(category, example)

    for s in range(a.sequences):
        if a.progress and s and s % 500 == 0:
            print(f"{s}/{a.sequences} sequences, {sum(counts.values())} disagreement(s)", file=sys.stderr)
        store = f"differential-{run}-{s}"
        if a.rules == 1:
            keep = {"command": "create", "path": "/memories/.keep", "file_text": ""}
            events = [{"kind": "memory", "actor": "system:differential", "body": {"store": store, "command": c}}
                      for c in [keep, {"command": "delete", "path": "/memories/.keep"}]]
            client._request("POST", "/v1/events", {"stream": f"memory/{store}", "events": events})
        with tempfile.TemporaryDirectory(dir=scratch) as tmp:
            ref = BetaLocalFilesystemMemoryTool(base_path=tmp)
            steps = []
            for _ in range(a.length):
                cmd = random_command(rng, sorted(tree(tmp)[0]))
                commands += 1
                r_kind, r_text = reference_call(ref, tmp, cmd)
                d = client.memory_tool(store, cmd)
                d_ok, d_text = not d.is_error, d.content
                outcomes[(cmd["command"], r_kind)] += 1
                steps.append({"command": cmd, "reference": [r_kind, r_text], "dreamlog": [d_ok, d_text]})
                example = {"sequence": s, "steps": steps[-6:]}
                if (r_kind == "ok") != d_ok:
                    note(f"outcome {cmd['command']}", example)
                elif r_kind != "raw" and comparable(cmd, r_text) != comparable(cmd, d_text):
                    note(f"text {cmd['command']}", example)
            r_files, r_dirs = tree(tmp)
            try:
                f = client._request("GET", f"/v1/memory/{store}/files")
                d_files, d_dirs = f["files"], set(f.get("dirs", []))
            except Exception:
                d_files, d_dirs = {}, set()
            if r_files != d_files:
                note("files", {"sequence": s, "reference": r_files, "dreamlog": d_files, "steps": steps})
            elif r_dirs != d_dirs:
                note("dirs", {"sequence": s, "reference": sorted(r_dirs), "dreamlog": sorted(d_dirs), "steps": steps})

    total = sum(counts.values())
    summary = {"sequences": a.sequences, "commands": commands, "seed": a.seed, "disagreements": dict(counts),
               "reference_outcomes": {f"{c} {k}": n for (c, k), n in sorted(outcomes.items())}}
    if a.json:
        for k in sorted(counts):
            print(json.dumps({"category": k, "count": counts[k], "example": examples[k]}, ensure_ascii=False))
        print(json.dumps({"summary": summary}))
    else:
        for k in sorted(counts):
            print(f"{counts[k]:6}  {k:24} e.g. {json.dumps(examples[k], ensure_ascii=False)[:1500]}")
        print("reference outcomes: " + ", ".join(f"{k} {n}" for k, n in summary["reference_outcomes"].items()))
        print(f"\n{a.sequences} sequences, {commands} commands (seed {a.seed}): {total} disagreement(s)")
    return 1 if a.check and total else 0


if __name__ == "__main__":
    sys.exit(main())
