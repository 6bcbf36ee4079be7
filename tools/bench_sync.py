#!/usr/bin/env python3
"""Benchmark of `dreamlog sync anthropic` against the stand-in of the hosted API.

Generates a hosted memory store with VERSIONS memory versions over MEMORIES memories
(sessions as authors) and SESSIONS graded sessions of EVENTS events each (tool calls with
results, messages, an outcome and its evaluations), serves it with
tests/python/hosted_standin.py, then times a full sync into a fresh database (fsync on)
and an incremental sync with nothing new — whole processes, the stand-in's own time
included (it serves 20 versions a page, as the hosted API does with `view=full`, and 100
session events a page).

    bash tools/bootstrap.sh python3 tools/bench_sync.py [--versions 100000] [--memories 1000]
        [--sessions 10000] [--events 50] [--dreamlog target/release/dreamlog]

Needs the release binary (`cargo build --release`) and the checkout's virtualenv (the
stand-in imports the `anthropic` SDK). Prints a table, or `--json`.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def scenario(versions: int, memories: int) -> dict:
    out = []
    for i in range(versions):
        m = i % memories
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1790000000 + i)) + "Z"
        out.append({
            "id": f"memver_{i:08d}", "memory_store_id": "memstore_bench", "memory_id": f"mem_{m}",
            "operation": "created" if i < memories else "modified",
            "path": f"/area{m % 10}/file{m}.md", "content": f"lesson {i} of memory {m}\n" * 3,
            "created_at": stamp, "created_by": {"type": "session_actor", "session_id": f"sesn_{i % 997}"},
        })
    return {"stores": [{"id": "memstore_bench", "name": "Bench", "created_at": "2026-09-01T00:00:00Z"}], "versions": out}


def sessions(count: int, per: int) -> list:
    """`count` graded sessions of `per` hosted events: a prompt, an outcome, tool calls
    with their results and messages, then an evaluation and the idle status."""
    out = []
    for i in range(count):
        events = [
            {"type": "user.message", "content": [{"type": "text", "text": f"task {i % 50}: do the thing {i}"}]},
            {"type": "user.define_outcome", "outcome_id": f"outc_{i}", "description": f"task {i % 50} done",
             "rubric": {"type": "text", "content": "- done right\n"}},
        ]
        k = 0
        while len(events) < per - 2:
            if len(events) % 3 == 2:
                events.append({"type": "agent.tool_use", "id": f"sevt_{i}_{k}", "name": "bash",
                               "input": {"command": f"step {k}"}})
            elif len(events) % 3 == 0 and events[-1]["type"] == "agent.tool_use":
                events.append({"type": "agent.tool_result", "tool_use_id": f"sevt_{i}_{k}",
                               "content": [{"type": "text", "text": f"output {k} " * 5}]})
                k += 1
            else:
                events.append({"type": "agent.message", "content": [{"type": "text", "text": f"thinking about {k}"}]})
        if events[-1]["type"] == "agent.tool_use":
            events[-1] = {"type": "agent.message", "content": [{"type": "text", "text": "done"}]}
        events.append({"type": "span.outcome_evaluation_end", "outcome_id": f"outc_{i}",
                       "result": "satisfied" if i % 3 else "failed", "iteration": 0, "explanation": "checked"})
        events.append({"type": "session.status_idle", "stop_reason": {"type": "end_turn"}})
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1790000000 + i * 10)) + "Z"
        out.append({"id": f"sesn_{i:06d}", "agent": {"id": "agent_bench", "name": "bench"},
                    "created_at": stamp, "memory_store_ids": ["memstore_bench"], "events": events,
                    "metadata": {"task_id": f"task-{i % 50}"}})
    return out


def timed(cmd: list, env: dict) -> tuple:
    t = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{p.stderr}")
    return time.perf_counter() - t, json.loads(p.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--versions", type=int, default=100_000)
    ap.add_argument("--memories", type=int, default=1_000)
    ap.add_argument("--sessions", type=int, default=10_000)
    ap.add_argument("--events", type=int, default=50, help="hosted events per session")
    ap.add_argument("--dreamlog", default=os.path.join(ROOT, "target", "release", "dreamlog"))
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "scenario.json")
        with open(path, "w") as f:
            world = scenario(a.versions, a.memories)
            world["sessions"] = sessions(a.sessions, a.events)
            json.dump(world, f)
        standin = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "tests", "python", "hosted_standin.py"), "--scenario", path, "--key", "k"],
            stdout=subprocess.PIPE, text=True)
        try:
            url = standin.stdout.readline().split()[-1]
            env = dict(os.environ, ANTHROPIC_BASE_URL=url, ANTHROPIC_API_KEY="k")
            db = os.path.join(tmp, "db")
            sync = [a.dreamlog, "--db", db, "--sync", "fsync", "sync", "anthropic", "--json"]
            full, report = timed(sync, env)
            again, second = timed(sync, env)
            log = subprocess.run([a.dreamlog, "--db", db, "log", "--json"], capture_output=True, text=True, check=True)
            events = log.stdout.count("\n")
        finally:
            standin.kill()
    rows = {
        "versions": a.versions,
        "events": events,
        "full_sync_s": round(full, 2),
        "events_per_s": round(events / full),
        "requests": report["requests"],
        "incremental_nothing_new_s": round(again, 2),
        "incremental_events": second["stores"][0]["events"],
        "sessions": a.sessions,
        "session_events": a.events,
        "sessions_report": report.get("sessions"),
    }
    if a.json:
        print(json.dumps(rows))
    else:
        print(f"full sync: {a.versions} versions and {a.sessions} sessions of {a.events} events → {events} events "
              f"in {full:.2f} s = {events / full:,.0f} events/s ({report['requests']} requests)")
        print(f"incremental sync, nothing new: {again:.2f} s ({second['stores'][0]['events']} events)")


if __name__ == "__main__":
    main()
