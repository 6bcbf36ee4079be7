#!/usr/bin/env python3
"""An external dreamer for `dreamlog dream run STORE --dreamer exec@1 --config CONFIG`.

dreamlog writes the dream input (schemas/dream-input.schema.json) as one JSON object on
stdin; this program prints its memory commands (schemas/dream-exec-output.schema.json) as
one JSON object on stdout. Standard library only; deterministic in its input, so
`dreamlog dream replay` reproduces its output bit for bit.

What it learns: the tasks that keep failing. Every task with at least MIN_FAILURES failed
sessions gets one line in /memories/failing-tasks.md, citing those sessions' grades:

    - task airline/12 failed 3 of 4 times (last: "Agent should not cancel ...")

Config example (dream run --config):
    {"command": ["python3", "tools/dreamers/failing_tasks.py", "--min-failures", "2"]}
"""

import argparse
import json
import sys

PATH = "/memories/failing-tasks.md"
HEADER = "# Tasks that keep failing\n\nWritten by tools/dreamers/failing_tasks.py.\n\n"


def last_grade(session):
    grades = session.get("grades") or []
    return grades[-1] if grades else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-failures", type=int, default=2)
    args = parser.parse_args()

    dream = json.load(sys.stdin)
    by_task = {}
    for s in dream["sessions"]:
        g = last_grade(s)
        task = (s.get("start") or {}).get("task_id")
        if g is None or task is None:
            continue
        t = by_task.setdefault(task, {"runs": 0, "failed": [], "note": None})
        t["runs"] += 1
        if g["result"] != "satisfied":
            t["failed"].append(g["id"])
            notes = [c.get("note") for c in g.get("criteria", []) if c.get("passed") is False and c.get("note")]
            if notes:
                t["note"] = notes[0]

    commands = []
    existing = dream["memory"].get(PATH)
    text = existing if existing is not None else HEADER
    if existing is None:
        commands.append({"input": {"command": "create", "path": PATH, "file_text": HEADER}, "causes": []})
    for task in sorted(by_task):
        t = by_task[task]
        if len(t["failed"]) < args.min_failures:
            continue
        line = f"- task {task} failed {len(t['failed'])} of {t['runs']} times"
        if t["note"]:
            note = t["note"].replace("\n", " ")
            line += f' (last: "{note[:120]}")'
        if line in text:
            continue
        n = text.count("\n")
        commands.append({
            "input": {"command": "insert", "path": PATH, "insert_line": n, "insert_text": line + "\n"},
            "causes": t["failed"][:32],
        })
        text += line + "\n"

    if existing is None and len(commands) == 1:
        commands = []  # nothing to say: do not create an empty file
    json.dump({"commands": commands, "summary": {"tasks": len(by_task), "lines": max(0, len(commands) - (existing is None))}}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
