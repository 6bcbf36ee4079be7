#!/usr/bin/env python3
"""Blame of one file with 1,000 revisions: dreamlog against git, on the same history.

Builds a deterministic history of a memory file (inserts and line replacements, like
benches/memory.rs), records it in a fresh dreamlog database (`dreamlog append`) and in a
fresh git repository (`git fast-import`, one commit per revision), then times
`dreamlog memory blame` and `git blame` as processes (median of 7 runs each, startup
included for both) and prints the figures and their ratio.

Usage: python3 tools/blame_vs_git.py [--dreamlog target/release/dreamlog] [--revisions 1000]
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time


def history(revisions):
    seed = 0x9E3779B97F4A7C15
    mask = (1 << 64) - 1

    def rnd():
        nonlocal seed
        seed ^= (seed << 13) & mask
        seed ^= seed >> 7
        seed ^= (seed << 17) & mask
        return seed

    lines = [f"line {i} original" for i in range(20)]
    cmds = [{"command": "create", "path": "/memories/doc.md", "file_text": "\n".join(lines) + "\n"}]
    texts = ["\n".join(lines) + "\n"]
    for rev in range(1, revisions):
        at = rnd() % len(lines)
        if rev % 3 == 0:
            new = f"line {at} revised in {rev}"
            old, lines[at] = lines[at], new
            cmds.append({"command": "str_replace", "path": "/memories/doc.md", "old_str": old + "\n", "new_str": new + "\n"})
        else:
            new = f"inserted in {rev}"
            lines.insert(at, new)
            cmds.append({"command": "insert", "path": "/memories/doc.md", "insert_line": at, "insert_text": new})
        texts.append("\n".join(lines) + "\n")
    return cmds, texts


def timed(cmd, cwd=None, runs=7):
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dreamlog", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "dreamlog"))
    ap.add_argument("--revisions", type=int, default=1000)
    args = ap.parse_args()
    cmds, texts = history(args.revisions)
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "db")
        events = "".join(
            json.dumps({"kind": "memory", "actor": "agent:bench", "time": 1716000000000 + i,
                        "body": {"store": "doc", "command": c}}) + "\n"
            for i, c in enumerate(cmds))
        subprocess.run([args.dreamlog, "--db", db, "--sync", "none", "append", "--stream", "memory/doc"],
                       input=events.encode(), check=True, stdout=subprocess.DEVNULL)
        repo = os.path.join(tmp, "repo")
        subprocess.run(["git", "init", "-q", repo], check=True)
        stream = []
        for i, text in enumerate(texts):
            data = text.encode()
            msg = f"revision {i}".encode()
            stream.append(b"commit refs/heads/main\n")
            stream.append(b"committer bench <bench@example.invalid> %d +0000\n" % (1716000000 + i))
            stream.append(b"data %d\n%s\n" % (len(msg), msg))
            stream.append(b"M 100644 inline doc.md\ndata %d\n%s\n" % (len(data), data))
        subprocess.run(["git", "fast-import", "--quiet"], cwd=repo, input=b"".join(stream), check=True)
        subprocess.run(["git", "checkout", "-q", "main"], cwd=repo, check=True)
        ours = subprocess.run([args.dreamlog, "--db", db, "memory", "blame", "doc", "/memories/doc.md"],
                              check=True, capture_output=True, text=True).stdout.count("\n")
        theirs = subprocess.run(["git", "blame", "doc.md"], cwd=repo, check=True, capture_output=True,
                                text=True).stdout.count("\n")
        assert ours == theirs == len(texts[-1].splitlines()), (ours, theirs)
        d = timed([args.dreamlog, "--db", db, "memory", "blame", "doc", "/memories/doc.md"])
        g = timed(["git", "blame", "doc.md"], cwd=repo)
        print(f"revisions: {len(cmds)}, lines blamed: {ours}")
        print(f"dreamlog memory blame: {d * 1000:.1f} ms (process, median of 7)")
        print(f"git blame:             {g * 1000:.1f} ms (process, median of 7)")
        print(f"ratio dreamlog / git:  {d / g:.2f} ({'faster' if d < g else 'slower'} than git)")


if __name__ == "__main__":
    main()
