#!/usr/bin/env python3
"""Drives dreamlog's MCP server with the official MCP Python SDK (`mcp`) as the client —
`dreamlog mcp` over stdio, or `dreamlog serve`'s `/v1/mcp` over streamable HTTP — and
prints one JSON object with what it saw: the negotiated protocol version, the tools, and
the answers of a sequence of memory and audit tool calls.

    python3 tools/python/mcp_check.py DREAMLOG_BINARY DB [STORE]
    python3 tools/python/mcp_check.py --http http://127.0.0.1:7700 [STORE]
"""

import asyncio
import json
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def transport(target: list, store: str):
    if target[0] == "--http":
        base = target[1].rstrip("/")
        client = create_mcp_http_client(headers={"X-Dreamlog-Actor": "agent:claude-code"})
        return streamable_http_client(f"{base}/v1/mcp?store={store}&session=mcp-1", http_client=client)
    binary, db = target
    params = StdioServerParameters(
        command=binary, args=["--db", db, "mcp", "--store", store, "--actor", "agent:claude-code", "--session", "mcp-1"]
    )
    return stdio_client(params)


async def main(target: list, store: str) -> dict:
    out: dict = {"calls": []}
    async with transport(target, store) as streams:
        read, write = streams[0], streams[1]
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
                ("memory_view_at", {"path": "/memories/notes.md", "at": "1"}),
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
    target = sys.argv[1:3]
    store = sys.argv[3] if len(sys.argv) > 3 else "memories"
    print(json.dumps(asyncio.run(main(target, store))))
