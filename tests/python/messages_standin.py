"""A stand-in for the Anthropic Messages API that streams scripted turns, built from the
official SDK's types.

The model API cannot be reached from here, so the real Claude Code CLI is run against
this server instead (`ANTHROPIC_BASE_URL`). Every answer is made of the `anthropic`
SDK's own models (`BetaMessage`, `BetaRawMessageStartEvent`, `BetaRawContentBlockDeltaEvent`,
…), dumped as the API sends them; a streamed request gets server-sent events exactly as
the API streams them (message_start, content_block_start, deltas, content_block_stop,
message_delta, message_stop), a plain one the message.

    python3 tests/python/messages_standin.py --scenario FILE [--log FILE] [--port PORT]
        [--delay-ms MS]

prints `listening http://127.0.0.1:PORT` on its first line, then serves until killed.

    python3 tests/python/messages_standin.py --check URL

streams one scripted turn through the SDK client (`client.beta.messages.stream`) and
prints the final message: the proof that the stand-in speaks the SDK's format.

The scenario (JSON): {"agents": [{"match": TEXT, "turns": [[BLOCK, …], …]}]}. A request
belongs to the first agent whose `match` occurs in the text of its first user message
(the main conversation's prompt, or the prompt a sub-agent was given); its turn is the
number of assistant messages the request already holds. A BLOCK is {"type": "text",
"text"} or {"type": "tool_use", "id", "name", "input"}; a turn with a tool_use stops with
`tool_use`, else `end_turn`. Requests no agent matches (titles, summaries) and turns past
the script get a short text answer. `--log` gets one JSON line per request: its path,
the agent and turn it was given, and the body. `--delay-ms` holds each answer back that
long (a run slow enough for a test to act in its middle).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pydantic
from anthropic.types.beta import (
    BetaMessage,
    BetaMessageDeltaUsage,
    BetaMessageParam,
    BetaRawContentBlockDeltaEvent,
    BetaRawContentBlockStartEvent,
    BetaRawContentBlockStopEvent,
    BetaRawMessageDeltaEvent,
    BetaRawMessageStartEvent,
    BetaRawMessageStopEvent,
    BetaTextBlock,
    BetaToolUseBlock,
    BetaUsage,
)
from anthropic.types.beta.beta_raw_message_delta_event import Delta

MESSAGES = pydantic.TypeAdapter(list[BetaMessageParam])
LOCK = threading.Lock()
COUNTER = [0]


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return ""


def choose(scenario: dict, body: dict) -> tuple[str | None, int, list[dict]]:
    """The agent a request belongs to, its turn, and the blocks to answer with."""
    messages = body.get("messages") or []
    first = next((m for m in messages if m.get("role") == "user"), None)
    prompt = text_of(first.get("content")) if first else ""
    turn = sum(1 for m in messages if m.get("role") == "assistant")
    for agent in scenario.get("agents", []):
        if agent["match"] in prompt:
            turns = agent["turns"]
            if turn < len(turns):
                return agent["match"], turn, turns[turn]
            return agent["match"], turn, [{"type": "text", "text": "Done."}]
    return None, turn, [{"type": "text", "text": "dreamlog test"}]


def blocks_of(spec: list[dict]) -> list[BetaTextBlock | BetaToolUseBlock]:
    out: list[BetaTextBlock | BetaToolUseBlock] = []
    for b in spec:
        if b["type"] == "text":
            out.append(BetaTextBlock(type="text", text=b["text"], citations=None))
        elif b["type"] == "tool_use":
            out.append(BetaToolUseBlock(type="tool_use", id=b["id"], name=b["name"], input=b["input"]))
        else:
            raise ValueError(f"unknown block type {b['type']!r} in the scenario")
    return out


def message_of(model: str, spec: list[dict]) -> BetaMessage:
    with LOCK:
        COUNTER[0] += 1
        n = COUNTER[0]
    blocks = blocks_of(spec)
    stop = "tool_use" if any(b.type == "tool_use" for b in blocks) else "end_turn"
    return BetaMessage(
        id=f"msg_standin_{n:04d}",
        type="message",
        role="assistant",
        model=model,
        content=blocks,
        stop_reason=stop,
        stop_sequence=None,
        usage=BetaUsage(input_tokens=120, output_tokens=30, cache_creation_input_tokens=0, cache_read_input_tokens=0),
    )


def sse(event: pydantic.BaseModel) -> bytes:
    data = event.model_dump(mode="json", exclude_none=False)
    return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode()


def stream_of(msg: BetaMessage) -> list[bytes]:
    """The events the API streams for `msg`, each an SDK model."""
    start = msg.model_copy(update={"content": [], "stop_reason": None, "usage": msg.usage.model_copy(update={"output_tokens": 1})})
    out = [sse(BetaRawMessageStartEvent(type="message_start", message=start))]
    for i, block in enumerate(msg.content):
        if block.type == "text":
            empty = BetaTextBlock(type="text", text="", citations=None)
            out.append(sse(BetaRawContentBlockStartEvent(type="content_block_start", index=i, content_block=empty)))
            text = block.text
            for k in range(0, len(text), 16):
                delta = {"type": "text_delta", "text": text[k : k + 16]}
                out.append(sse(BetaRawContentBlockDeltaEvent(type="content_block_delta", index=i, delta=delta)))
        else:
            empty_call = BetaToolUseBlock(type="tool_use", id=block.id, name=block.name, input={})
            out.append(sse(BetaRawContentBlockStartEvent(type="content_block_start", index=i, content_block=empty_call)))
            raw = json.dumps(block.input)
            for k in range(0, len(raw), 24):
                delta = {"type": "input_json_delta", "partial_json": raw[k : k + 24]}
                out.append(sse(BetaRawContentBlockDeltaEvent(type="content_block_delta", index=i, delta=delta)))
        out.append(sse(BetaRawContentBlockStopEvent(type="content_block_stop", index=i)))
    usage = BetaMessageDeltaUsage(output_tokens=msg.usage.output_tokens, input_tokens=None, cache_creation_input_tokens=None, cache_read_input_tokens=None, server_tool_use=None)
    out.append(sse(BetaRawMessageDeltaEvent(type="message_delta", delta=Delta(stop_reason=msg.stop_reason, stop_sequence=None), usage=usage)))
    out.append(sse(BetaRawMessageStopEvent(type="message_stop")))
    return out


class Handler(BaseHTTPRequestHandler):
    scenario: dict = {}
    log: str | None = None
    delay_ms: int = 0

    def log_message(self, *_: Any) -> None:  # quiet
        pass

    def reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.reply(404, {"type": "error", "error": {"type": "not_found_error", "message": f"no route {self.path}"}})

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.end_headers()

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError as e:
            return self.reply(400, {"type": "error", "error": {"type": "invalid_request_error", "message": str(e)}})
        path = self.path.split("?")[0]
        if path == "/v1/messages/count_tokens":
            return self.reply(200, {"input_tokens": 200})
        if path != "/v1/messages":
            return self.reply(404, {"type": "error", "error": {"type": "not_found_error", "message": f"no route {path}"}})
        try:
            MESSAGES.validate_python(body.get("messages"))
            if not isinstance(body.get("model"), str) or not isinstance(body.get("max_tokens"), int):
                raise ValueError("model and max_tokens are required")
        except (pydantic.ValidationError, ValueError) as e:
            return self.reply(400, {"type": "error", "error": {"type": "invalid_request_error", "message": str(e)[:2000]}})
        if self.delay_ms:
            time.sleep(self.delay_ms / 1000)
        agent, turn, spec = choose(self.scenario, body)
        msg = message_of(body["model"], spec)
        if self.log:
            with LOCK, open(self.log, "a") as f:
                f.write(json.dumps({"path": self.path, "agent": agent, "turn": turn, "answer": msg.id, "body": body}) + "\n")
        if not body.get("stream"):
            return self.reply(200, msg.model_dump(mode="json"))
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("request-id", f"req_{msg.id}")
        self.end_headers()
        for chunk in stream_of(msg):
            self.wfile.write(chunk)
            self.wfile.flush()


def check(url: str) -> None:
    import anthropic

    client = anthropic.Anthropic(base_url=url, api_key="standin", max_retries=0)
    with client.beta.messages.stream(
        model="claude-standin",
        max_tokens=100,
        messages=[{"role": "user", "content": "check: list the folder"}],
    ) as s:
        final = s.get_final_message()
    plain = client.beta.messages.create(
        model="claude-standin", max_tokens=100, messages=[{"role": "user", "content": "check: list the folder"}]
    )
    print(json.dumps({"streamed": final.model_dump(mode="json"), "plain": plain.model_dump(mode="json")}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario")
    ap.add_argument("--log")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--check")
    ap.add_argument("--delay-ms", type=int, default=0)
    args = ap.parse_args()
    if args.check:
        return check(args.check)
    with open(args.scenario) as f:
        Handler.scenario = json.load(f)
    for agent in Handler.scenario.get("agents", []):
        for turn in agent["turns"]:
            blocks_of(turn)  # refused now, not mid-run
    Handler.log = args.log
    Handler.delay_ms = args.delay_ms
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"listening http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
