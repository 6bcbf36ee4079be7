#!/usr/bin/env python3
"""Measures how dreamlog's memory tool differs from the Anthropic SDK's reference backend.

    python3 tools/memory_differential.py --url http://127.0.0.1:7700 [--sequences 200] [--length 12] [--seed 1] [--json]

Runs seeded random sequences of memory tool commands over valid /memories paths through
the official `anthropic` package's `BetaLocalFilesystemMemoryTool` (in a temporary folder)
and through a dreamlog server's memory tool endpoint (a fresh store per sequence), and
counts every disagreement by command and kind:

- `outcome`: one succeeded, the other refused;
- `text`: both agreed on the outcome, the texts differ (the SDK's `ToolError` text or raw
  exception against dreamlog's tool text);
- `files`: after the sequence, the files or their texts differ;
- `dirs`: after the sequence, the directories differ (empty directories: dreamlog implies
  directories from files today).

It prints each category with a count and one example, then the totals. This is the
measurement for the issue that makes dreamlog's memory tool follow the reference's
semantics (directories as state, the reference's texts): today it reports
disagreements; when that work is done, a CI test asserts zero over thousands of sequences.
Exit status 0 (it measures; it does not judge).
"""

import argparse
import json
import os
import random
import sys
import tempfile
from collections import Counter, defaultdict

from anthropic.lib.tools import ToolError
from anthropic.tools.memory import BetaLocalFilesystemMemoryTool

from dreamlog import Client

PATHS = [
    "/memories",
    "/memories/a.md",
    "/memories/b.md",
    "/memories/d",
    "/memories/d/c.md",
    "/memories/d/e",
    "/memories/d/e/f.md",
    "/memories/x",
]
TEXTS = ["", "one\n", "one\ntwo\n", "alpha beta\n", "no newline"]
FRAGMENTS = ["one", "two", "alpha", "beta", "\n", "zzz"]


def random_command(rng: random.Random) -> dict:
    kind = rng.choice(["view", "create", "create", "str_replace", "insert", "delete", "rename"])
    path = rng.choice(PATHS)
    if kind == "view":
        return {"command": "view", "path": path}
    if kind == "create":
        return {"command": "create", "path": path, "file_text": rng.choice(TEXTS)}
    if kind == "str_replace":
        return {"command": "str_replace", "path": path, "old_str": rng.choice(FRAGMENTS), "new_str": rng.choice(FRAGMENTS)}
    if kind == "insert":
        return {"command": "insert", "path": path, "insert_line": rng.randint(0, 3), "insert_text": rng.choice(FRAGMENTS)}
    if kind == "delete":
        return {"command": "delete", "path": path}
    return {"command": "rename", "old_path": path, "new_path": rng.choice(PATHS)}


def reference_call(tool: BetaLocalFilesystemMemoryTool, cmd: dict):
    """(succeeded, text) from the reference; raw exceptions count as refusals."""
    try:
        return True, str(tool.call(cmd))
    except ToolError as e:
        return False, str(e.content)
    except Exception as e:  # the reference lets OS errors through (host paths included)
        return False, f"raw {type(e).__name__}"


def reference_tree(root: str):
    files, dirs = {}, set()
    base = os.path.join(root, "memories")
    for d, subdirs, names in os.walk(base):
        rel = os.path.relpath(d, base)
        mem = "/memories" if rel == "." else "/memories/" + rel.replace(os.sep, "/")
        if mem != "/memories":
            dirs.add(mem)
        for n in names:
            with open(os.path.join(d, n), encoding="utf-8") as f:
                files[f"{mem}/{n}"] = f.read()
    return files, dirs


def implied_dirs(files: dict) -> set:
    out = set()
    for p in files:
        parts = p.split("/")[2:-1]
        for i in range(1, len(parts) + 1):
            out.add("/memories/" + "/".join(parts[:i]))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://127.0.0.1:7700")
    p.add_argument("--token", default=os.environ.get("DREAMLOG_TOKEN"))
    p.add_argument("--sequences", type=int, default=200)
    p.add_argument("--length", type=int, default=12)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    client = Client(a.url, token=a.token)
    rng = random.Random(a.seed)
    counts: Counter = Counter()
    examples: dict = {}
    commands = 0
    run = os.urandom(4).hex()

    def note(category: str, example: dict) -> None:
        counts[category] += 1
        examples.setdefault(category, example)

    for s in range(a.sequences):
        store = f"differential-{run}-{s}"
        with tempfile.TemporaryDirectory() as tmp:
            ref = BetaLocalFilesystemMemoryTool(base_path=tmp)
            for _ in range(a.length):
                cmd = random_command(rng)
                commands += 1
                r_ok, r_text = reference_call(ref, cmd)
                d = client.memory_tool(store, cmd)
                d_ok, d_text = not d.is_error, d.content
                if r_ok != d_ok:
                    note(f"outcome {cmd['command']}", {"command": cmd, "reference": r_text, "dreamlog": d_text})
                elif r_text != d_text:
                    note(f"text {cmd['command']}", {"command": cmd, "reference": r_text, "dreamlog": d_text})
            r_files, r_dirs = reference_tree(tmp)
            try:
                d_files = client._request("GET", f"/v1/memory/{store}/files")["files"]
            except Exception:
                d_files = {}
            if r_files != d_files:
                note("files", {"sequence": s, "reference": r_files, "dreamlog": d_files})
            elif r_dirs != implied_dirs(d_files):
                note("dirs", {"sequence": s, "reference": sorted(r_dirs), "dreamlog": sorted(implied_dirs(d_files))})

    summary = {"sequences": a.sequences, "commands": commands, "seed": a.seed, "disagreements": dict(counts)}
    if a.json:
        for k in sorted(counts):
            print(json.dumps({"category": k, "count": counts[k], "example": examples[k]}, ensure_ascii=False))
        print(json.dumps({"summary": summary}))
    else:
        for k in sorted(counts):
            print(f"{counts[k]:6}  {k:24} e.g. {json.dumps(examples[k], ensure_ascii=False)[:240]}")
        total = sum(counts.values())
        print(f"\n{a.sequences} sequences, {commands} commands (seed {a.seed}): {total} disagreement(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
