#!/usr/bin/env python3
"""Builds src/cli/demo_session.jsonl, the session `dreamlog demo` records, from one real
tau-bench episode (tests/data/tau-bench, MIT, Copyright (c) 2024 Sierra).

Usage: python3 tools/make_demo_session.py [TAU_BENCH_FILE] > src/cli/demo_session.jsonl
"""
import json
import sys

SRC = sys.argv[1] if len(sys.argv) > 1 else "tests/data/tau-bench/gpt-4o-airline.tasks-00-24.json"
TASK, TRIAL = 12, 1
T0 = 1716000000000  # fixed times make the demo's ids the same on every run

episodes = json.load(open(SRC))
ep = next(e for e in episodes if e["task_id"] == TASK and e["trial"] == TRIAL)
session = f"tau-bench-airline-{TASK}-{TRIAL}"
agent = "agent:gpt-4o-airline"
out = []
t = T0


def emit(kind, actor, body):
    global t
    out.append({"kind": kind, "actor": actor, "time": t, "body": body})
    t += 1000


emit("session.start", agent, {
    "session": session, "agent": "tau-bench-tool-calling", "model": "gpt-4o",
    "task_id": f"airline/{TASK}", "task": ep["info"]["task"]["instruction"],
    "source": "tau-bench:gpt-4o-airline.json",
})
pending = {}
for m in ep["traj"]:
    if m["role"] == "tool":
        call = pending.pop(m["tool_call_id"])
        emit("action", agent, {
            "session": session, "name": call["function"]["name"], "call_id": call["id"],
            "input": json.loads(call["function"]["arguments"]), "output": m["content"],
            "status": "error" if m["content"].startswith("Error") else "ok",
        })
        continue
    content = m.get("content")
    if content is not None:
            emit("message", agent if m["role"] == "assistant" else f"human:{m['role']}", {
            "session": session, "role": m["role"], "content": content,
        })
    for call in m.get("tool_calls") or []:
        pending[call["id"]] = call
ri = ep["info"]["reward_info"]
emit("grade", "evaluator:tau-bench", {
    "session": session, "rubric": "tau-bench/airline", "evaluator": "tau-bench reward",
    "score": ep["reward"], "result": "satisfied" if ep["reward"] == 1.0 else "failed",
    "criteria": [{"name": "r_actions", "passed": ri["info"].get("r_actions") == 1.0}],
})
emit("session.end", agent, {"session": session, "status": "completed"})
for e in out:
    print(json.dumps(e, ensure_ascii=False, separators=(",", ":")))
