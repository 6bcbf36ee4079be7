#!/usr/bin/env python3
"""Drives `dreamlog mcp` with the official MCP Python SDK (`mcp`) as the client, over
stdio, and prints one JSON object with what it saw: the negotiated protocol version, the
tools, and the answers of a sequence of memory and audit tool calls.

    python3 tools/python/mcp_check.py DREAMLOG_BINARY DB [STORE]
"""

import asyncio
import json
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


async def main(binary: str, db: str, store: str) -> dict:
    params = StdioServerParameters(
        command=binary, args=["--db", db, "mcp", "--store", store, "--actor", "agent:claude-code", "--session", "mcp-1"]
    )
    out: dict = {"calls": []}
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            out["protocol_version"] = init.protocol_version
            out["server"] = init.server_info.name
            tools = await session.list_tools()
            out["tools"] = {t.name: {"read_only": bool(t.annotations and t.annotations.read_only_hint)} for t in tools.tools}
            calls = [
                ("memory", {"command": "view", "path": "/memories"}),
                ("memory", {"command": "create", "path": "/memories/notes.md", "file_text": "- refunds need an identity check\n"}),
                ("memory", {"command": "str_replace", "path": "/memories/notes.md", "old_str": "identity check", "new_str": "identity check first"}),
                ("memory", {"command": "view", "path": "/memories/missing.md"}),
                ("memory_history", {}),
                ("memory_blame", {"path": "/memories/notes.md"}),
                ("memory_diff", {"from": "0", "to": "head"}),
                ("memory_view_at", {"path": "/memories/notes.md", "at": "0"}),
                ("memory_lessons", {}),
                ("drift", {}),
                ("memory_blame", {}),
            ]
            for name, args in calls:
                r = await session.call_tool(name, args)
                text = "".join(c.text for c in r.content if c.type == "text")
                out["calls"].append({"tool": name, "args": args, "is_error": r.is_error, "text": text})
    return out


if __name__ == "__main__":
    binary, db = sys.argv[1], sys.argv[2]
    store = sys.argv[3] if len(sys.argv) > 3 else "memories"
    print(json.dumps(asyncio.run(main(binary, db, store))))
