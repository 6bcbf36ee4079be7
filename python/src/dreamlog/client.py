"""A small, typed client for `dreamlog serve` (standard library only).

    from dreamlog import Client
    c = Client("http://127.0.0.1:7700", token=None)
    c.append([{"kind": "note", "actor": "agent:me", "body": {"type": "hello", "json": {}}}], stream="notes")
    result = c.memory_tool("support", {"command": "view", "path": "/memories"})
    print(result.content, result.is_error)
    for event in c.tail(from_position=0):      # catch up, then follow live
        print(event.position, event.data["kind"])

Every method raises `DreamlogError` (with the HTTP status and the server's error type
and message) when the server refuses. `Session` records an agent session: start, tool
calls, memory tool calls (through the server's memory tool endpoint, so the agent gets
the tool's exact texts), a grade and the end, one event at a time, each appended with
the stream's expected version.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional

__all__ = ["Client", "DreamlogError", "Session", "ToolResult", "TailEvent"]


class DreamlogError(Exception):
    """A request the server refused: `status`, `type` and `message` from its JSON error."""

    def __init__(self, status: int, type_: str, message: str, body: Optional[Dict[str, Any]] = None):
        super().__init__(f"HTTP {status} {type_}: {message}")
        self.status = status
        self.type = type_
        self.message = message
        self.body = body or {}


@dataclass(frozen=True)
class ToolResult:
    """A memory tool call's answer: the text to hand back to the model as `tool_result`."""

    content: str
    is_error: bool
    id: Optional[str] = None
    position: Optional[int] = None


@dataclass(frozen=True)
class TailEvent:
    """One event of the live tail: its global position and its JSON form."""

    position: int
    data: Dict[str, Any]


class Client:
    """A client for one server (and, with a token, one tenant)."""

    def __init__(self, url: str, token: Optional[str] = None, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    # -- plumbing -------------------------------------------------------------------
    def _headers(self, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
        h = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        h.update(extra or {})
        return h

    def _request(self, method: str, path: str, body: Any = None, headers: Optional[Dict[str, str]] = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=self._headers(headers))
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                text = resp.read().decode()
        except urllib.error.HTTPError as e:
            raw = e.read().decode(errors="replace")
            try:
                err = json.loads(raw)["error"]
                raise DreamlogError(e.code, err.get("type", "error"), err.get("message", raw), err) from None
            except (ValueError, KeyError, TypeError):
                raise DreamlogError(e.code, "http", raw) from None
        return json.loads(text) if text else None

    @staticmethod
    def _q(**params: Any) -> str:
        items = {k: v for k, v in params.items() if v is not None}
        return ("?" + urllib.parse.urlencode(items)) if items else ""

    # -- the log ----------------------------------------------------------------------
    def health(self) -> Dict[str, Any]:
        """`GET /v1/health` (no token needed)."""
        return self._request("GET", "/v1/health")

    def append(self, events: List[Dict[str, Any]], stream: Optional[str] = None,
               expect: Optional[Dict[str, Any]] = None) -> List[Dict[str, Any]]:
        """Appends events atomically; `expect` maps stream → "any" | "no-stream" | "exists" | version."""
        body: Dict[str, Any] = {"events": events}
        if stream is not None:
            body["stream"] = stream
        if expect:
            body["expect"] = expect
        return self._request("POST", "/v1/events", body)["appended"]

    def events(self, from_position: int = 0, limit: int = 1000) -> List[Dict[str, Any]]:
        """Events in log order from a global position."""
        return self._request("GET", "/v1/events" + self._q(**{"from": from_position, "limit": limit}))["events"]

    def event(self, id_or_prefix: str) -> Dict[str, Any]:
        """One event by id or unique hex prefix."""
        return self._request("GET", f"/v1/events/{id_or_prefix}")

    def stream(self, name: str, from_version: int = 0, limit: int = 1000) -> List[Dict[str, Any]]:
        """A stream's events from a version."""
        path = "/v1/streams/" + urllib.parse.quote(name, safe="/")
        return self._request("GET", path + self._q(**{"from": from_version, "limit": limit}))["events"]

    def tail(self, from_position: int = 0, stream: Optional[str] = None,
             last_event_id: Optional[int] = None) -> Iterator[TailEvent]:
        """Server-Sent Events: every event from `from_position` (or after `last_event_id`), then live.

        Reconnect with `last_event_id` = the last position you saw: no gaps, no duplicates.
        A tail the server dropped (its client read too slowly while the server's tails were
        at their byte budget) raises `DreamlogError` of type `slow_subscriber`, whose
        `body["position"]` is where to resume (`from_position=`).
        """
        headers = self._headers({"Accept": "text/event-stream"})
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        path = "/v1/tail" + self._q(**{"from": None if last_event_id is not None else from_position, "stream": stream})
        req = urllib.request.Request(self.url + path, headers=headers)
        with urllib.request.urlopen(req, timeout=None) as resp:
            position: Optional[int] = None
            event: Optional[str] = None
            for raw in resp:
                line = raw.decode().rstrip("\r\n")
                if line.startswith("id:"):
                    position = int(line[3:].strip())
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event == "error":
                    err = json.loads(line[5:].strip()).get("error", {})
                    raise DreamlogError(503, err.get("type", "error"), err.get("message", ""), err)
                elif line.startswith("data:") and position is not None:
                    yield TailEvent(position, json.loads(line[5:].strip()))
                    position = None
                    event = None

    # -- memory ---------------------------------------------------------------------------
    def memory_tool(self, store: str, tool_input: Dict[str, Any], actor: Optional[str] = None,
                    session: Optional[str] = None, causes: Optional[List[str]] = None,
                    precondition: Optional[str] = None) -> ToolResult:
        """Runs one memory tool call (its `input`, verbatim) and returns the tool's answer.

        `causes`: ids (or unique prefixes) of the events the command derives from, shown
        by blame as the line's evidence. `precondition`: the file's expected BLAKE3 (hex);
        the command is refused as a conflict if the file changed.
        """
        headers = {}
        if actor:
            headers["X-Dreamlog-Actor"] = actor
        if session:
            headers["X-Dreamlog-Session"] = session
        if causes:
            headers["X-Dreamlog-Causes"] = ",".join(causes)
        if precondition:
            headers["X-Dreamlog-Precondition"] = precondition
        r = self._request("POST", f"/v1/memory/{urllib.parse.quote(store)}/tool", tool_input, headers)
        return ToolResult(r["content"], r["is_error"], r.get("id"), r.get("position"))

    def memory_view(self, store: str, path: str = "/memories", at: Optional[str] = None) -> Dict[str, Any]:
        """The tool's `view` as of a point (position, id, tag, RFC 3339 time, head)."""
        return self._request("GET", f"/v1/memory/{urllib.parse.quote(store)}/view" + self._q(path=path, at=at))

    def blame(self, store: str, path: str) -> List[Dict[str, Any]]:
        """Each line of a memory file with the event, dream and evidence behind it."""
        return self._request("GET", f"/v1/memory/{urllib.parse.quote(store)}/blame" + self._q(path=path))["lines"]

    def revert(self, store: str, reason: str, event: Optional[str] = None, dream: Optional[str] = None,
               to: Optional[str] = None) -> List[Dict[str, Any]]:
        """Reverts one event, one dream, or to a point, by appending inverse commands."""
        body = {"reason": reason, "event": event, "dream": dream, "to": to}
        return self._request("POST", f"/v1/memory/{urllib.parse.quote(store)}/revert",
                             {k: v for k, v in body.items() if v is not None})["appended"]

    # -- sessions, dreams, drift -----------------------------------------------------------
    def sessions(self) -> List[Dict[str, Any]]:
        """One summary per session."""
        return self._request("GET", "/v1/sessions")["sessions"]

    def dream(self, store: str, dreamer: str = "evidence", config: Any = None, in_place: bool = False) -> Dict[str, Any]:
        """Runs a dreamer (into a fork of `store` unless `in_place`)."""
        return self._request("POST", "/v1/dreams", {"store": store, "dreamer": dreamer, "config": config,
                                                    "in_place": in_place})

    def drift(self, store: str) -> Dict[str, Any]:
        """Grades per memory state and per dream, with flagged changes."""
        return self._request("GET", f"/v1/drift/{urllib.parse.quote(store)}")

    def session(self, session_id: str, agent: str, store: Optional[str] = None, task: Optional[str] = None,
                task_id: Optional[str] = None, model: Optional[str] = None) -> "Session":
        """Starts recording a session (stream `session/ID`)."""
        return Session(self, session_id, agent, store, task, task_id, model)


class Session:
    """One agent session: every call appends one event with the stream's expected version."""

    def __init__(self, client: Client, session_id: str, agent: str, store: Optional[str],
                 task: Optional[str], task_id: Optional[str], model: Optional[str]):
        self.client = client
        self.id = session_id
        self.agent = agent
        self.store = store
        self.stream = f"session/{session_id}"
        self.version: Optional[int] = None
        body: Dict[str, Any] = {"session": session_id, "agent": agent}
        for k, v in (("task", task), ("task_id", task_id), ("model", model), ("store", store)):
            if v is not None:
                body[k] = v
        if store is not None:
            try:
                view = client.memory_view(store)
                if view.get("state_hash"):
                    body["memory_state"] = view["state_hash"]
            except DreamlogError as e:
                # A store with no event yet (this session may be its first user): it is
                # empty, so there is no state to record; the session still names it.
                if e.status != 404:
                    raise
        self._append("session.start", f"agent:{agent}", body)

    def _append(self, kind: str, actor: str, body: Dict[str, Any], causes: Optional[List[str]] = None) -> Dict[str, Any]:
        event: Dict[str, Any] = {"kind": kind, "actor": actor, "body": body}
        if causes:
            event["causes"] = causes
        expect = "no-stream" if self.version is None else self.version
        done = self.client.append([event], stream=self.stream, expect={self.stream: expect})[0]
        self.version = done["version"]
        return done

    def action(self, name: str, input: Any, output: Any = None, status: str = "ok",
               call_id: Optional[str] = None) -> Dict[str, Any]:
        """Records one tool call and its result."""
        body: Dict[str, Any] = {"session": self.id, "name": name, "input": input, "status": status}
        if output is not None:
            body["output"] = output
        if call_id is not None:
            body["call_id"] = call_id
        return self._append("action", f"agent:{self.agent}", body)

    def memory(self, tool_input: Dict[str, Any]) -> ToolResult:
        """A memory tool call through the server: recorded in the store with this session."""
        if self.store is None:
            raise ValueError("this session has no memory store")
        return self.client.memory_tool(self.store, tool_input, actor=f"agent:{self.agent}", session=self.id)

    def grade(self, score: float, result: str, rubric: str, evaluator: str,
              criteria: Optional[List[Dict[str, Any]]] = None) -> Dict[str, Any]:
        """Records the evaluator's grade (score in 0..1; result satisfied, failed, …)."""
        body = {"session": self.id, "rubric": rubric, "evaluator": evaluator, "score": score, "result": result,
                "criteria": criteria or []}
        return self._append("grade", f"evaluator:{evaluator}", body)

    def end(self, status: str = "completed") -> Dict[str, Any]:
        """Records the end of the session."""
        return self._append("session.end", f"agent:{self.agent}", {"session": self.id, "status": status})
