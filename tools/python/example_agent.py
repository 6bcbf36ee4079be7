#!/usr/bin/env python3
"""An example agent harness on the dreamlog Python package's client (standard library only).

It follows the log live on a second thread, records one session of a toy refund task
(start with the memory state it runs with, tool calls, memory tool calls through the
server, a grade, the end), and prints a JSON summary: what it recorded and what the live
tail saw. Run it against `dreamlog serve`:

    python3 tools/python/example_agent.py --url http://127.0.0.1:7700 [--token T]
"""

import argparse
import json
import os
import sys
import threading

from dreamlog import Client, DreamlogError


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://127.0.0.1:7700")
    p.add_argument("--token", default=os.environ.get("DREAMLOG_TOKEN"))
    p.add_argument("--store", default="support")
    p.add_argument("--session", default="py-agent-1")
    args = p.parse_args()

    client = Client(args.url, token=args.token)
    start = len(client.events(0, 10000))
    seen = []
    done = threading.Event()

    def follow() -> None:
        for ev in client.tail(from_position=start):
            seen.append({"position": ev.position, "kind": ev.data["kind"], "stream": ev.data["stream"]})
            if ev.data["kind"] == "session.end":
                done.set()
                return

    threading.Thread(target=follow, daemon=True).start()

    s = client.session(args.session, agent="py-agent", store=args.store, task="Refund order #1234", task_id="refunds/1")
    # The agent reads its memory first, as Claude's memory tool loop does.
    listing = s.memory({"command": "view", "path": "/memories"})
    advice = s.memory({"command": "view", "path": "/memories/refunds.md"})
    s.action("lookup_order", {"order": 1234}, {"status": "delivered"}, call_id="call_1")
    s.action("verify_identity", {"order": 1234}, {"verified": True}, call_id="call_2")
    s.action("issue_refund", {"order": 1234}, {"refunded": True}, call_id="call_3")
    if advice.is_error:
        created = s.memory({"command": "create", "path": "/memories/refunds.md",
                            "file_text": "- Verify the customer's identity before issuing a refund.\n"})
    else:
        created = s.memory({"command": "str_replace", "path": "/memories/refunds.md",
                            "old_str": "before issuing a refund.", "new_str": "before issuing any refund."})
    s.grade(1.0, "satisfied", rubric="refunds", evaluator="py-judge",
            criteria=[{"name": "action:verify_identity", "passed": True}])
    s.end("completed")
    if not done.wait(timeout=20):
        print("the live tail did not see the session end", file=sys.stderr)
        return 1
    try:
        client.append([{"kind": "note", "actor": "agent:x", "body": {"type": "t", "json": {}}}],
                      stream=s.stream, expect={s.stream: "no-stream"})
        conflict = None
    except DreamlogError as e:
        conflict = {"status": e.status, "type": e.type}
    print(json.dumps({
        "session": s.id,
        "stream_version": s.version,
        "memory_listing": listing.content,
        "memory_first_view_error": advice.is_error,
        "memory_write": created.content,
        "tail": seen,
        "conflict": conflict,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
