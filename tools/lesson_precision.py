#!/usr/bin/env python3
"""Scores the lessons a dreamer writes against the graders' ground truth.

    python3 tools/lesson_precision.py FILE [--dreamer evidence] [--dreamlog target/release/dreamlog] [--json]

FILE is a τ-bench trajectories file or a τ²-bench results file: both store, for every
task, the actions the agent was expected to take. The script imports FILE into a fresh
database (the real `dreamlog` binary), runs the dreamer over every graded session into a
new store, reads the lessons back (`memory lessons --json`) and gives each a verdict:

- advice to call X (evidence@1's `tool` lesson saying "Call `X`", evidence@2's `call`
  lesson) is right when X is expected in at least half of the episodes that called it;
- advice against X ("Before calling `X`, check …": evidence@1's `tool`, evidence@2's
  `avoid`) is right when X is expected in under half of the episodes that called it;
- advice not to forget X (`expected:` — X was expected but missing or wrong; evidence@1's
  `check:` on an `action:X` check) is right when X is expected in the tasks the lesson
  applies to: every task it names in its examples, and at least one task of the file;
- advice to guide the user through a call X (evidence@3's `check:` on `user_action:X`)
  is right when the tasks expect the simulated user to make X: every task it names, and
  at least one task of the file;
- lessons about other checks (database state, natural-language requirements, a reward
  component) are not about a call: `n/a`, not scored.

Every lesson is also checked for what it cites: a lesson all of whose cited sessions
passed (`only_passing`) cites no evidence of a failure.

With --dreamer evidence@1 it scores the old dreamer (the baseline).

It prints each lesson with its verdict and the counts behind it, then `precision P`
(right / scored). Exit status 0; 2 on bad input.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import defaultdict

TAG = re.compile(r"^- \[(tool|call|avoid|expected|check):(\S+) [^\]]*\] (.*)$")
EXAMPLE = re.compile(r"task (\S+) trial \S+ \((?:passed|failed)\)")
TICK = re.compile(r"`([^`]+)`")


def episodes(path):
    """(task id, expected call names, called names, calls expected of the simulated user,
    session id as imported, passed) per episode of a τ / τ² file."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    out = []
    if isinstance(data, list):  # τ-bench: [{task_id, info.task.actions, traj}]
        for ep in data:
            expected = {a["name"] for a in ep["info"]["task"].get("actions", [])}
            called = set()
            for m in ep.get("traj", []):
                for c in m.get("tool_calls") or []:
                    called.add(c["function"]["name"])
            stem = os.path.basename(path)
            stem = stem[: -len(".json")] if stem.endswith(".json") else stem
            session = f"tau-bench/{stem}/task-{ep['task_id']}/trial-{ep['trial']}"
            out.append((str(ep["task_id"]), expected, called, set(), session, ep["reward"] >= 1.0))
    elif isinstance(data, dict) and "simulations" in data:  # τ²-bench
        tasks, user = {}, {}
        for t in data["tasks"]:
            crit = t.get("evaluation_criteria") or {}
            # The agent's expected calls (telecom also expects calls by the simulated user).
            tasks[str(t["id"])] = {
                a["name"] for a in crit.get("actions") or [] if a.get("requestor", "assistant") == "assistant"
            }
            user[str(t["id"])] = {a["name"] for a in crit.get("actions") or [] if a.get("requestor") == "user"}
        for sim in data["simulations"]:
            called = set()
            for m in sim.get("messages", []):
                for c in m.get("tool_calls") or []:
                    if c.get("requestor", "assistant") == "assistant":
                        called.add(c["name"])
            tid = str(sim["task_id"])
            passed = (sim.get("reward_info") or {}).get("reward", 0) >= 1.0
            out.append((tid, tasks.get(tid, set()), called, user.get(tid, set()), str(sim["id"]), passed))
    else:
        raise ValueError(f"{path}: not a τ-bench or τ²-bench file")
    return out


def run(binary, db, *args, stdin=None):
    r = subprocess.run([binary, "--db", db, "--sync", "none", *args], capture_output=True, text=True, input=stdin)
    if r.returncode != 0:
        raise RuntimeError(f"dreamlog {' '.join(args)} failed: {r.stderr.strip()}")
    return r.stdout


def verdict(kind, key_text, eps):
    """(verdict, explanation) of one lesson line."""
    calls = TICK.findall(key_text)
    if kind in ("call", "avoid"):
        kind = "tool"
        # evidence@2 names its family first (`tau-bench`): the call is the one trials made.
        m = re.search(r"called `([^`]+)`", key_text)
        calls = [m.group(1)] if m else calls
    elif kind == "expected":
        # evidence@2 names its family first: the call is the one the tasks expect.
        m = re.search(r"expect `([^`]+)`", key_text) or re.search(r"`([^`]+)` was expected", key_text)
        calls = [m.group(1)] if m else calls
    if kind == "check":
        m = re.search(r"user to call `([^`]+)`", key_text) or re.search(r"the user was to call `([^`]+)`", key_text)
        if m:
            return user_verdict(m.group(1), key_text, eps)
        m = re.search(r"The expected call `([^`]+)`", key_text)
        if not m:
            return "n/a", "not about a call"
        calls = [m.group(1)]
    if not calls:
        return "n/a", "names no call"
    x = calls[0]
    called = [e for e in eps if x in e[2]]
    expected_when_called = sum(1 for e in called if x in e[1])
    expected_anywhere = sum(1 for e in eps if x in e[1])
    if kind in ("expected", "check"):
        # The tasks the lesson names must expect X (evidence@2 cites task and trial).
        named = {t.split("/")[-1] for t in EXAMPLE.findall(key_text)}
        by_task = {}
        for e in eps:
            by_task.setdefault(e[0].split("/")[-1], set()).update(e[1])
        missing = sorted(t for t in named if x not in by_task.get(t, set()))
        ok = expected_anywhere > 0 and not missing
        why = f"`{x}` expected in {expected_anywhere} of {len(eps)} episodes"
        if named:
            why += f"; in {len(named) - len(missing)} of the {len(named)} tasks it names"
        return ("right" if ok else "WRONG"), why
    share = f"`{x}` expected in {expected_when_called} of {len(called)} episodes that called it"
    if not called:
        return "n/a", f"`{x}` never called"
    against = key_text.find("Before calling") >= 0
    half = expected_when_called * 2 >= len(called)
    ok = (not half) if against else half
    return ("right" if ok else "WRONG"), ("advises against; " if against else "advises calling; ") + share


def user_verdict(x, key_text, eps):
    """Advice to guide the user through call X: right when the tasks it names expect it
    of the simulated user."""
    named = {t.split("/")[-1] for t in EXAMPLE.findall(key_text)}
    by_task = {}
    for e in eps:
        by_task.setdefault(e[0].split("/")[-1], set()).update(e[3])
    missing = sorted(t for t in named if x not in by_task.get(t, set()))
    anywhere = sum(1 for e in eps if x in e[3])
    why = f"`{x}` expected of the user in {anywhere} of {len(eps)} episodes"
    if named:
        why += f"; in {len(named) - len(missing)} of the {len(named)} tasks it names"
    return ("right" if anywhere > 0 and not missing else "WRONG"), why


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file")
    p.add_argument("--dreamer", default="evidence")
    p.add_argument("--dreamlog", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "dreamlog"))
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    try:
        eps = episodes(a.file)
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "db")
        run(a.dreamlog, db, "import", a.file, "--store", "lessons")
        run(a.dreamlog, db, "dream", "run", "lessons", "--dreamer", a.dreamer, "--since", "start", "--in-place")
        rows = [json.loads(line) for line in run(a.dreamlog, db, "memory", "lessons", "lessons", "--json").splitlines()]
    passed = {e[4]: e[5] for e in eps}
    results = []
    for r in rows:
        m = TAG.match(r["text"])
        if not m:
            continue
        v, why = verdict(m.group(1), m.group(3), eps)
        cited = [passed[s] for s in r.get("evidence_sessions") or [] if s in passed]
        only_passing = bool(cited) and all(cited)
        results.append({"path": r["path"], "line": r["line"], "text": r["text"], "verdict": v, "why": why,
                        "cited": len(cited), "cited_failing": cited.count(False), "only_passing": only_passing})
    scored = [r for r in results if r["verdict"] != "n/a"]
    right = sum(1 for r in scored if r["verdict"] == "right")
    precision = right / len(scored) if scored else None
    against_expected = sum(1 for r in scored if r["verdict"] == "WRONG" and "advises against" in r["why"])
    summary = {"file": a.file, "dreamer": a.dreamer, "episodes": len(eps), "lessons": len(results),
               "scored": len(scored), "right": right, "precision": precision,
               "wrong_against_expected_calls": against_expected,
               "only_passing": sum(1 for r in results if r["only_passing"])}
    if a.json:
        for r in results:
            print(json.dumps(r, ensure_ascii=False))
        print(json.dumps({"summary": summary}, ensure_ascii=False))
    else:
        for r in results:
            print(f"{r['verdict']:>5}  {r['text'][:150]}")
            print(f"       {r['why']}; cites {r['cited']} session(s), {r['cited_failing']} failed"
                  + ("  ONLY PASSING" if r["only_passing"] else ""))
        p_text = "-" if precision is None else f"{precision:.2f}"
        print(f"\n{a.file}: {len(results)} lessons, {len(scored)} scored, {right} right: precision {p_text}; "
              f"{summary['only_passing']} citing only passing sessions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
