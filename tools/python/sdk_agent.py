#!/usr/bin/env python3
"""An agent loop on the Anthropic SDK's tool runner with dreamlog as its memory.

The model gets the Claude memory tool (`memory_20250818`); every call goes through
`dreamlog.memory_tool.DreamlogMemoryTool` to a dreamlog server, which records each change
with this session and agent. Prints one JSON line: the model's last text, the turns, and
the memory event of the last change.

    python3 tools/python/sdk_agent.py --url http://127.0.0.1:7700 --store support \\
        --session ticket-42 "Remember that refunds need an identity check."

ANTHROPIC_API_KEY (and, for a compatible endpoint or a test stand-in, ANTHROPIC_BASE_URL
or --api-base) are the SDK's own settings.
"""

import argparse
import json
import os
import sys

import anthropic

from dreamlog import Client
from dreamlog.memory_tool import DreamlogMemoryTool


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("prompt")
    p.add_argument("--url", default="http://127.0.0.1:7700", help="the dreamlog server")
    p.add_argument("--token", default=os.environ.get("DREAMLOG_TOKEN"))
    p.add_argument("--store", default="support")
    p.add_argument("--session", default=None)
    p.add_argument("--agent", default="sdk-agent")
    p.add_argument("--model", default="claude-sonnet-4-5")
    p.add_argument("--api-base", default=None, help="the Messages API base URL (default: the SDK's)")
    a = p.parse_args()

    memory = DreamlogMemoryTool(Client(a.url, token=a.token), a.store, session=a.session, actor=f"agent:{a.agent}")
    llm = anthropic.Anthropic(base_url=a.api_base) if a.api_base else anthropic.Anthropic()
    runner = llm.beta.messages.tool_runner(
        model=a.model,
        max_tokens=1024,
        tools=[memory],
        messages=[{"role": "user", "content": a.prompt}],
    )
    turns = 0
    last_text = ""
    for message in runner:
        turns += 1
        texts = [b.text for b in message.content if b.type == "text"]
        if texts:
            last_text = texts[-1]
    last = memory.last
    print(json.dumps({"text": last_text, "turns": turns,
                      "last_event": None if last is None else {"id": last.id, "position": last.position}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
