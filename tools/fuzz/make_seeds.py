#!/usr/bin/env python3
"""Writes the fuzz targets' seed inputs (tools/fuzz/in/TARGET/) from the repository's own
golden vectors and importer fixtures: small, valid examples for AFL++ to mutate. Run from
the repository root; the seeds are committed, so this only runs when they should change."""
import json, os, struct, sys

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
out = os.path.join(root, "tools", "fuzz", "in")


def put(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


vectors = sorted(os.listdir(os.path.join(root, "tests", "vectors")))
for v in vectors:
    if not v.endswith(".json"):
        continue
    j = json.load(open(os.path.join(root, "tests", "vectors", v)))
    h, b = bytes.fromhex(j["header_hex"]), bytes.fromhex(j["body_hex"])
    put("event_record", v.replace(".json", ".bin"), struct.pack("<H", len(h)) + h + b)
    put("event_json", v, json.dumps(j["event"], sort_keys=True))
    if j["event"]["kind"] == "memory" and isinstance(j["event"]["body"].get("command"), dict):
        put("memory_commands", v, json.dumps([j["event"]["body"]["command"]]))

# A redacted event's JSON form: its stand-in, and the header's length and hash of the
# body it no longer has.
put("event_json", "redacted-note.json", json.dumps({
    "stream": "notes", "kind": "note", "actor": "human:ops", "time": 1716000000000, "parents": [], "causes": [],
    "body": {"type": "n", "json": "[redacted]"},
    "redacted": {"body_len": 20, "body_hash": "ab" * 32}}, sort_keys=True))

put("memory_commands", "sequence.json", json.dumps([
    {"command": "create", "path": "/memories/a/b.md", "file_text": "one\ntwo\n"},
    {"command": "str_replace", "path": "/memories/a/b.md", "old_str": "one", "new_str": "1"},
    {"command": "insert", "path": "/memories/a/b.md", "insert_line": 1, "insert_text": "x"},
    {"command": "view", "path": "/memories", "view_range": [1, -1]},
    {"command": "rename", "old_path": "/memories/a", "new_path": "/memories/c"},
    {"command": "delete", "path": "/memories/c/b.md"},
]))

fixtures = os.path.join(root, "tests", "fixtures")
put("import", "atif.json", open(os.path.join(fixtures, "atif", "trial-7", "agent", "trajectory.json"), "rb").read())
for d in ("-work-demo", "-work-inline"):
    p = os.path.join(fixtures, "claude-code", d)
    for f in sorted(os.listdir(p)):
        put("import", "claude-code-" + f, open(os.path.join(p, f), "rb").read())
tau = json.load(open(os.path.join(root, "tests", "data", "tau-bench", "gpt-4o-airline.tasks-00-24.json")))
put("import", "tau-bench.json", json.dumps(tau[:1]))
put("import", "swe-agent.traj", open(os.path.join(root, "tests", "data", "swe-agent", "swe-agent__test-repo-i1.traj"), "rb").read())
tau2 = json.load(open(os.path.join(root, "tests", "data", "tau2-bench", "gpt-4.1_airline_default_gpt-4.1_1trials.json")))
sims = tau2["simulations"][:1]
tasks = [t for t in tau2["tasks"] if t["id"] == sims[0]["task_id"]]
tau2 = dict(tau2, simulations=sims, tasks=tasks)
put("import", "tau2.json", json.dumps(tau2))
print("seeds:", {t: len(os.listdir(os.path.join(out, t))) for t in sorted(os.listdir(out))}, file=sys.stderr)
