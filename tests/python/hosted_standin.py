"""A stand-in for the hosted Claude Managed Agents API, built from the official SDK's types.

The hosted API cannot be reached from here, so `dreamlog sync anthropic` is tested
against this server instead. It holds its objects as the `anthropic` SDK's own models
(each answer is a model validated by pydantic, then dumped as the SDK reads it), checks
every request against the SDK's parameter types (an unknown query parameter, a missing
key, a missing beta header or a limit out of range is refused as the API refuses it),
pages with `next_page` cursors, and answers 429 and 503 now and then.

    python3 tests/python/hosted_standin.py --scenario FILE [--key KEY] [--log FILE]
        [--fail-every N] [--port PORT] [--delay-ms MS]

prints `listening http://127.0.0.1:PORT` on its first line, then serves until killed.

    python3 tests/python/hosted_standin.py --check URL --key KEY

reads everything back through the SDK client with strict response validation (the proof
that the stand-in speaks the SDK's format) and prints a JSON summary.

The scenario (JSON): {"stores": [{id, name, description?, metadata?, created_at}],
"versions": [{id, memory_store_id, memory_id, operation, path?, content?, created_at,
created_by?, redacted_at?, redacted_by?}], "expired_before": TIME?, "sessions": [{id,
agent: {id, name, model}, created_at, updated_at?, status?, title?, metadata?,
memory_store_ids?, usage?, events: [EVENT], threads?: [{id, agent_name, created_at,
parent_thread_id?, events: [EVENT]}]}], "files": [{id, filename, content, created_at?}],
"dreams": [{id, created_at, status, inputs, output_behavior?, outputs?, instructions?, model?,
session_id?, ended_at?, usage?, error?}], "dreams_forbidden": BOOL?, "races": [{after_writes, version}]?} (true: `/v1/dreams` answers
403, as for a key the research preview is not open to; a race is someone else's version
landing after the Nth write this stand-in accepted).

Memories are created, updated and deleted as the SDK sends those calls (the body and
query checked against `memory_create_params`, `memory_update_params` and
`memory_delete_params`; a failed `content_sha256` precondition answers 409); each write is
a new version by `apikey_standin`, written into the scenario file.
Times are RFC 3339. Versions older than `expired_before` are past the retention period:
not listed. An EVENT is the SDK's session event without `id` and `processed_at` when they
are left out (`sevt_<session>_<n>`, a second after the one before; `"processed_at": null`
keeps it unprocessed). The scenario file is
read again whenever it changes, so a test can grow the hosted world between syncs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import threading
import time
import unicodedata
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, get_type_hints
from urllib.parse import parse_qs, urlparse

import anthropic
import pydantic
from anthropic.types.beta import (
    BetaDream,
    BetaFileMetadata,
    BetaManagedAgentsMemoryStore,
    BetaManagedAgentsSession,
    dream_list_params,
    memory_store_list_params,
    session_list_params,
)
from anthropic.types.beta.sessions import (
    BetaManagedAgentsSessionEvent,
    BetaManagedAgentsSessionThread,
    event_list_params,
    thread_list_params,
)
from anthropic.types.beta.sessions.threads import event_list_params as thread_event_list_params
from anthropic.types.beta.memory_stores import (
    BetaManagedAgentsDeletedMemory,
    BetaManagedAgentsMemory,
    BetaManagedAgentsMemoryVersion,
    memory_create_params,
    memory_delete_params,
    memory_list_params,
    memory_update_params,
    memory_version_list_params,
)

MEMORY_BETAS = {"agent-memory-2026-07-22", "managed-agents-2026-04-01"}
SESSION_BETAS = {"managed-agents-2026-04-01"}
DREAM_BETAS = {"dreaming-2026-04-21"}
HEADER_PARAMS = {"betas", "workspace_id"}


def params_of(typed_dict: type) -> set[str]:
    """The query parameters an SDK parameter type names (its headers aside), as the SDK's
    resources send them: time bounds as `created_at[gte]`."""
    names = set(get_type_hints(typed_dict)) - HEADER_PARAMS
    return {re.sub(r"^created_at_(gte|gt|lte|lt)$", r"created_at[\1]", n) for n in names}


STORE_LIST_PARAMS = params_of(memory_store_list_params.MemoryStoreListParams)
VERSION_LIST_PARAMS = params_of(memory_version_list_params.MemoryVersionListParams)
MEMORY_LIST_PARAMS = params_of(memory_list_params.MemoryListParams)
SESSION_LIST_PARAMS = params_of(session_list_params.SessionListParams)
EVENT_LIST_PARAMS = params_of(event_list_params.EventListParams)
THREAD_LIST_PARAMS = params_of(thread_list_params.ThreadListParams)
THREAD_EVENT_LIST_PARAMS = params_of(thread_event_list_params.EventListParams) - {"session_id"}
DREAM_LIST_PARAMS = params_of(dream_list_params.DreamListParams)
# The writes: where the SDK puts each parameter (the path's ids aside).
CREATE_BODY = params_of(memory_create_params.MemoryCreateParams) - {"view"}
UPDATE_BODY = params_of(memory_update_params.MemoryUpdateParams) - {"view", "memory_store_id"}
DELETE_QUERY = params_of(memory_delete_params.MemoryDeleteParams) - {"memory_store_id"}
CREATE = pydantic.TypeAdapter(memory_create_params.MemoryCreateParams)
UPDATE = pydantic.TypeAdapter(memory_update_params.MemoryUpdateParams)
MAX_CONTENT = 102_400
EVENT = pydantic.TypeAdapter(BetaManagedAgentsSessionEvent)


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class ApiError(Exception):
    def __init__(self, status: int, kind: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.kind, self.message, self.headers = status, kind, message, headers or {}


class World:
    """The hosted objects, as SDK models."""

    def __init__(self, scenario: dict[str, Any]):
        self.stores: dict[str, BetaManagedAgentsMemoryStore] = {}
        for s in scenario.get("stores", []):
            self.stores[s["id"]] = BetaManagedAgentsMemoryStore.model_validate(
                {
                    "type": "memory_store",
                    "id": s["id"],
                    "name": s["name"],
                    "description": s.get("description", ""),
                    "metadata": s.get("metadata", {}),
                    "created_at": s["created_at"],
                    "updated_at": s.get("updated_at", s["created_at"]),
                    "archived_at": s.get("archived_at"),
                }
            )
        expired = scenario.get("expired_before")
        self.versions: dict[str, list[BetaManagedAgentsMemoryVersion]] = {k: [] for k in self.stores}
        # The memories now, from every version (expired ones included: they made them).
        self.memories: dict[str, dict[str, BetaManagedAgentsMemory]] = {k: {} for k in self.stores}
        for v in sorted(scenario.get("versions", []), key=lambda v: when(v["created_at"])):
            mems = self.memories[v["memory_store_id"]]
            if v["operation"] == "deleted":
                mems.pop(v["memory_id"], None)
                continue
            before = mems.get(v["memory_id"])
            content = v.get("content") if not v.get("redacted_at") else (before.content if before else "")
            mems[v["memory_id"]] = BetaManagedAgentsMemory.model_validate(
                {
                    "type": "memory",
                    "id": v["memory_id"],
                    "memory_store_id": v["memory_store_id"],
                    "memory_version_id": v["id"],
                    "path": v.get("path") or (before.path if before else "/unknown.md"),
                    "content": content,
                    "content_size_bytes": len((content or "").encode()),
                    "content_sha256": hashlib.sha256((content or "").encode()).hexdigest(),
                    "created_at": before.created_at if before else v["created_at"],
                    "updated_at": v["created_at"],
                }
            )
        for v in scenario.get("versions", []):
            if expired and when(v["created_at"]) < when(expired):
                continue
            content = None if v.get("redacted_at") or v["operation"] == "deleted" else v.get("content")
            self.versions[v["memory_store_id"]].append(
                BetaManagedAgentsMemoryVersion.model_validate(
                    {
                        "type": "memory_version",
                        "id": v["id"],
                        "memory_store_id": v["memory_store_id"],
                        "memory_id": v["memory_id"],
                        "operation": v["operation"],
                        "created_at": v["created_at"],
                        "created_by": v.get("created_by"),
                        "path": None if v.get("redacted_at") else v.get("path"),
                        "content": content,
                        # (A scenario may give a wrong hash: content damaged on the way.)
                        "content_sha256": v.get("content_sha256")
                        or (hashlib.sha256(content.encode()).hexdigest() if content is not None else None),
                        "content_size_bytes": len(content.encode()) if content is not None else None,
                        "redacted_at": v.get("redacted_at"),
                        "redacted_by": v.get("redacted_by"),
                    }
                )
            )
        # The hosted API lists newest first.
        for vs in self.versions.values():
            vs.sort(key=lambda x: (x.created_at, x.id), reverse=True)
        # Sessions, their events (the primary thread's) and their threads.
        self.sessions: dict[str, BetaManagedAgentsSession] = {}
        self.events: dict[str, list[Any]] = {}
        self.threads: dict[str, list[BetaManagedAgentsSessionThread]] = {}
        self.thread_events: dict[tuple[str, str], list[Any]] = {}
        for sc in scenario.get("sessions", []):
            sid = sc["id"]
            events = fill_events(sid, sc["created_at"], sc.get("events", []))
            self.events[sid] = events
            threads = [thread_of(sid, {"id": f"sthr_{sid[5:]}_primary", "agent_name": sc["agent"]["name"],
                                       "created_at": sc["created_at"]}, sc["agent"], None, sc)]
            for th in sc.get("threads", []):
                parent = th.get("parent_thread_id", threads[0].id)
                threads.append(thread_of(sid, th, sc["agent"], parent, sc))
                self.thread_events[(sid, th["id"])] = fill_events(th["id"], th["created_at"], th.get("events", []))
            self.threads[sid] = threads
            last = max([e.processed_at for e in events if e.processed_at] + [when(sc["created_at"])])
            self.sessions[sid] = BetaManagedAgentsSession.model_validate(
                {
                    "type": "session",
                    "id": sid,
                    "agent": agent_of(sc["agent"]),
                    "created_at": sc["created_at"],
                    "updated_at": sc.get("updated_at") or last.isoformat(),
                    "environment_id": "env_standin",
                    "metadata": sc.get("metadata", {}),
                    "outcome_evaluations": outcomes_of(events),
                    "resources": [{"type": "memory_store", "memory_store_id": m, "access": "read_write"}
                                  for m in sc.get("memory_store_ids", [])],
                    "stats": {"active_seconds": 1.0, "duration_seconds": 2.0},
                    "status": sc.get("status", "idle"),
                    "title": sc.get("title"),
                    "usage": sc.get("usage", {"input_tokens": 100, "output_tokens": 20}),
                    "vault_ids": [],
                    "archived_at": sc.get("archived_at"),
                }
            )
        # Filtered lists by their filters (`memo_key`).
        self.memo: dict[tuple, list[Any]] = {}
        self.dreams: dict[str, BetaDream] = {}
        self.dreams_forbidden = bool(scenario.get("dreams_forbidden"))
        for d in scenario.get("dreams", []):
            self.dreams[d["id"]] = BetaDream.model_validate(
                {
                    "type": "dream",
                    "id": d["id"],
                    "created_at": d["created_at"],
                    "ended_at": d.get("ended_at"),
                    "status": d["status"],
                    "inputs": d["inputs"],
                    "output_behavior": d.get("output_behavior", {"type": "create_new"}),
                    "outputs": [{"type": "memory_store", "memory_store_id": o} for o in d.get("outputs", [])],
                    "instructions": d.get("instructions"),
                    "model": {"id": d.get("model", "claude-opus-5-5")},
                    "session_id": d.get("session_id"),
                    "error": d.get("error"),
                    "usage": d.get("usage", {"input_tokens": 5000, "output_tokens": 800, "cache_creation_input_tokens": 0,
                                             "cache_read_input_tokens": 0}),
                    "archived_at": d.get("archived_at"),
                }
            )
        self.files: dict[str, tuple[BetaFileMetadata, bytes]] = {}
        for f in scenario.get("files", []):
            data = f["content"].encode()
            meta = BetaFileMetadata.model_validate(
                {"type": "file", "id": f["id"], "filename": f["filename"], "mime_type": f.get("mime_type", "text/markdown"),
                 "size_bytes": len(data), "created_at": f.get("created_at", "2026-11-01T00:00:00Z"), "downloadable": True}
            )
            self.files[f["id"]] = (meta, data)


def memo_key(what: str, query: dict[str, str]) -> tuple:
    """A list's filters (its cursor and page size aside): its pages share one filtering."""
    return (what, tuple(sorted((k, v) for k, v in query.items() if k not in ("page", "limit"))))


def agent_of(a: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    """A resolved agent snapshot (what sessions and threads carry) from {id, name, model}."""
    return {
        "type": "agent",
        "id": a["id"],
        "name": name or a["name"],
        "version": a.get("version", 1),
        "model": {"id": a.get("model", "claude-sonnet-5-5")},
        "execution_identity": {"type": "service_account"},
        "mcp_servers": [],
        "skills": [],
        "tools": [],
        "system": a.get("system"),
    }


def fill_events(owner: str, created_at: str, events: list[dict[str, Any]]) -> list[Any]:
    """The scenario's events as SDK models, ids and times filled in where left out."""
    out = []
    t = when(created_at)
    for i, e in enumerate(events):
        e = dict(e)
        e.setdefault("id", f"sevt_{owner[5:]}_{i:04d}")
        if "processed_at" in e and e["processed_at"] is None:
            pass  # not processed yet (a user event the agent has not reached)
        elif "processed_at" in e:
            t = when(e["processed_at"])
        else:
            t = t.fromtimestamp(t.timestamp() + 1, t.tzinfo)
            e["processed_at"] = t.isoformat()
        if e["type"] == "span.outcome_evaluation_end":
            e.setdefault("usage", {"input_tokens": 50, "output_tokens": 10, "cache_creation_input_tokens": 0,
                                   "cache_read_input_tokens": 0})
            e.setdefault("outcome_evaluation_start_id", f"sevt_{owner[5:]}_start{i:04d}")
        out.append(EVENT.validate_python(e))
    return out


def outcomes_of(events: list[Any]) -> list[dict[str, Any]]:
    """`outcome_evaluations` as the session resource shows them: each defined outcome
    with its latest evaluation."""
    out: dict[str, dict[str, Any]] = {}
    for e in events:
        if e.type == "user.define_outcome":
            out[e.outcome_id] = {"type": "outcome_evaluation", "outcome_id": e.outcome_id, "description": e.description,
                                 "result": "pending", "iteration": 0, "explanation": None, "completed_at": None}
        elif e.type == "span.outcome_evaluation_end" and e.outcome_id in out:
            out[e.outcome_id].update(result=e.result, iteration=e.iteration, explanation=e.explanation,
                                     completed_at=e.processed_at.isoformat())
    return list(out.values())


def thread_of(sid: str, th: dict[str, Any], agent: dict[str, Any], parent: str | None, sc: dict[str, Any]) -> Any:
    return BetaManagedAgentsSessionThread.model_validate(
        {
            "type": "session_thread",
            "id": th["id"],
            "session_id": sid,
            "agent": agent_of(agent, th.get("agent_name")),
            "created_at": th["created_at"],
            "updated_at": th.get("updated_at", th["created_at"]),
            "parent_thread_id": parent,
            "status": th.get("status", "idle"),
        }
    )


def page(items: list[Any], query: dict[str, str], max_limit: int, default: int = 20) -> dict[str, Any]:
    """One page of `items` from the cursor in `page`, as `SyncPageCursor` reads it."""
    try:
        limit = int(query.get("limit", default))
    except ValueError:
        raise ApiError(400, "invalid_request_error", f"limit: not an integer: {query['limit']!r}")
    top = max(100, max_limit)
    if not 1 <= limit <= top:
        raise ApiError(400, "invalid_request_error", f"limit: must be between 1 and {top}, got {limit}")
    limit = min(limit, max_limit, Handler.max_page or limit)
    start = 0
    if "page" in query:
        cursor = query["page"]
        if not cursor.startswith("page_") or not cursor[5:].isdigit():
            raise ApiError(400, "invalid_request_error", f"page: not a cursor of this list: {cursor!r}")
        start = int(cursor[5:])
    chunk = items[start : start + limit]
    more = start + limit < len(items)
    return {"data": [x.model_dump(mode="json") for x in chunk], "next_page": f"page_{start + limit}" if more else None}


class Handler(BaseHTTPRequestHandler):
    server_version = "hosted-standin"
    scenario = ""
    loaded: tuple[int, World] | None = None
    key: str
    log: Any
    fail_every: int
    max_page = 0
    delay = 0.0
    count = 0
    writes = 0
    lock = threading.Lock()

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def answer(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("request-id", f"req_{Handler.count}")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away (the tests kill it mid-sync)

    @property
    def world(self) -> World:
        """The scenario's world, read again when its file changed."""
        with Handler.lock:
            mtime = os.stat(Handler.scenario).st_mtime_ns
            if Handler.loaded is None or Handler.loaded[0] != mtime:
                with open(Handler.scenario) as f:
                    Handler.loaded = (mtime, World(json.load(f)))
            return Handler.loaded[1]

    def answer_raw(self, body: "RawBody") -> None:
        self.send_response(200)
        self.send_header("content-type", body.mime)
        self.send_header("content-length", str(len(body.data)))
        self.end_headers()
        try:
            self.wfile.write(body.data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.serve_request("GET")

    def do_POST(self) -> None:  # noqa: N802
        self.serve_request("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self.serve_request("DELETE")

    def serve_request(self, method: str) -> None:
        url = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        with Handler.lock:
            Handler.count += 1
            n = Handler.count
        record = {"n": n, "path": url.path, "query": query, "beta": self.headers.get("anthropic-beta")}
        if method != "GET":
            record["method"] = method
            try:
                record["body"] = json.loads(raw) if raw else None
            except ValueError:
                record["body"] = raw.decode(errors="replace")
        if self.delay:
            time.sleep(self.delay)
        try:
            bearer = (self.headers.get("authorization") or "").removeprefix("Bearer ")
            if self.key not in (self.headers.get("x-api-key"), bearer):
                raise ApiError(401, "authentication_error", "invalid x-api-key")
            if not self.headers.get("anthropic-version"):
                raise ApiError(400, "invalid_request_error", "anthropic-version: header is required")
            if self.fail_every and n % self.fail_every == 0:
                # Overloaded or rate limited: the client must wait as told and retry.
                status, kind = (429, "rate_limit_error") if (n // self.fail_every) % 2 else (503, "overloaded_error")
                raise ApiError(status, kind, "try again", {"retry-after": "0"})
            if method == "GET":
                body = self.route(url.path, query)
            else:
                if not isinstance(record["body"], (dict, type(None))):
                    raise ApiError(400, "invalid_request_error", "the body is not a JSON object")
                body = self.write(method, url.path, query, record["body"] or {})
            record["status"] = 200
            if isinstance(body, RawBody):
                self.answer_raw(body)
            else:
                self.answer(200, body)
        except ApiError as e:
            record["status"] = e.status
            self.answer(e.status, {"type": "error", "error": {"type": e.kind, "message": e.message}}, e.headers)
        if self.log:
            with Handler.lock:
                self.log.write(json.dumps(record) + "\n")
                self.log.flush()

    def need_beta(self, accepted: set[str]) -> None:
        sent = {b.strip() for b in (self.headers.get("anthropic-beta") or "").split(",") if b.strip()}
        if not sent & accepted:
            raise ApiError(400, "invalid_request_error", f"anthropic-beta: this route needs one of {sorted(accepted)}")

    @staticmethod
    def only(query: dict[str, str], allowed: set[str]) -> None:
        unknown = sorted(set(query) - allowed)
        if unknown:
            raise ApiError(400, "invalid_request_error", f"{unknown[0]}: Extra inputs are not permitted")

    def store(self, store_id: str) -> BetaManagedAgentsMemoryStore:
        s = self.world.stores.get(store_id)
        if s is None:
            raise ApiError(404, "not_found_error", f"memory store {store_id} not found")
        return s

    def route(self, path: str, query: dict[str, str]) -> Any:
        parts = [p for p in path.split("/") if p]
        if parts[:2] == ["v1", "sessions"]:
            return self.session_route(parts, query)
        if parts[:2] == ["v1", "files"]:
            return self.file_route(parts, query)
        if parts[:2] == ["v1", "dreams"]:
            return self.dream_route(parts, query)
        if parts[:2] != ["v1", "memory_stores"]:
            raise ApiError(404, "not_found_error", f"no route {path}")
        self.need_beta(MEMORY_BETAS)
        if len(parts) == 2:
            self.only(query, STORE_LIST_PARAMS)
            stores = sorted(self.world.stores.values(), key=lambda s: (s.created_at, s.id), reverse=True)
            if query.get("include_archived") != "true":
                stores = [s for s in stores if s.archived_at is None]
            return page(stores, query, 100)
        store = self.store(parts[2])
        if len(parts) == 3:
            self.only(query, set())
            return store.model_dump(mode="json")
        if parts[3] == "memory_versions" and len(parts) == 4:
            self.only(query, VERSION_LIST_PARAMS)
            view = query.get("view", "basic")
            if view not in ("basic", "full"):
                raise ApiError(400, "invalid_request_error", f"view: must be basic or full, got {view!r}")
            w = self.world
            key = memo_key(store.id, query)
            if key in w.memo:
                return page(w.memo[key], query, 20 if view == "full" else 100)
            items = w.versions[store.id]
            if "created_at[gte]" in query:
                items = [v for v in items if v.created_at >= when(query["created_at[gte]"])]
            if "created_at[lte]" in query:
                items = [v for v in items if v.created_at <= when(query["created_at[lte]"])]
            for field in ("memory_id", "operation"):
                if field in query:
                    items = [v for v in items if getattr(v, field) == query[field]]
            if "session_id" in query:
                items = [v for v in items if getattr(v.created_by, "session_id", None) == query["session_id"]]
            if view == "basic":
                items = [v.model_copy(update={"content": None}) for v in items]
            w.memo[key] = items  # the next pages of this list (the world does not change under it)
            return page(items, query, 20 if view == "full" else 100)
        if parts[3] == "memories" and len(parts) == 4:
            self.only(query, MEMORY_LIST_PARAMS)
            if query.get("depth", "0") != "0":
                raise ApiError(400, "invalid_request_error", "depth: this stand-in lists every memory (depth 0) only")
            view = query.get("view", "basic")
            prefix = query.get("path_prefix", "/")
            items = sorted((m for m in self.world.memories[store.id].values() if m.path.startswith(prefix)), key=lambda m: m.path)
            if view == "basic":
                items = [m.model_copy(update={"content": None}) for m in items]
            return page(items, query, 20 if view == "full" else 100)
        raise ApiError(404, "not_found_error", f"no route {path}")


    def write(self, method: str, path: str, query: dict[str, str], body: dict[str, Any]) -> Any:
        """A memory created, updated or deleted, as the SDK sends it: recorded as a new
        version in the scenario file (the world is read again from it)."""
        parts = [p for p in path.split("/") if p]
        if parts[:2] != ["v1", "memory_stores"] or len(parts) not in (4, 5) or parts[3] != "memories":
            raise ApiError(404, "not_found_error", f"no route {method} {path}")
        self.need_beta(MEMORY_BETAS)
        store = self.store(parts[2])
        with Handler.lock:
            self.race()
            w = self.world_unlocked()
            mems = w.memories[store.id]
            by = {"type": "api_actor", "api_key_id": "apikey_standin"}
            if method == "POST" and len(parts) == 4:
                self.only(query, {"view"})
                self.body_only(body, CREATE_BODY)
                try:
                    CREATE.validate_python(body, strict=True)
                except pydantic.ValidationError as e:
                    raise ApiError(400, "invalid_request_error", f"body: {e.errors()[0]['msg']}")
                if "content" not in body or "path" not in body:
                    raise ApiError(400, "invalid_request_error", "content and path are required")
                content, p = body["content"] or "", body["path"]
                check_write(content, p)
                taken = next((m for m in mems.values() if m.path == p), None)
                if taken:
                    raise ApiError(409, "conflict_error", f"memory {taken.id} is at path {p}")
                mid = f"mem_standin{Handler.count:06d}"
                self.record_version(store.id, mid, "created", p, content, by)
                return self.world_unlocked().memories[store.id][mid].model_dump(mode="json")
            memory = mems.get(parts[4]) if len(parts) == 5 else None
            if memory is None:
                raise ApiError(404, "not_found_error", f"memory {parts[-1]} not found")
            if method == "POST":
                self.only(query, {"view"})
                self.body_only(body, UPDATE_BODY)
                try:
                    UPDATE.validate_python({**body, "memory_store_id": store.id}, strict=True)
                except pydantic.ValidationError as e:
                    raise ApiError(400, "invalid_request_error", f"body: {e.errors()[0]['msg']}")
                pre = body.get("precondition")
                if pre is not None:
                    self.body_only(pre, {"type", "content_sha256"})
                    check_precondition(memory, pre.get("content_sha256"))
                content = body.get("content")
                p = body.get("path") or memory.path
                check_write(content if content is not None else "", p)
                taken = next((m for m in mems.values() if m.path == p and m.id != memory.id), None)
                if taken:
                    raise ApiError(409, "conflict_error", f"memory {taken.id} is at path {p}")
                new = content if content is not None else memory.content
                if p != memory.path or new != memory.content:
                    self.record_version(store.id, memory.id, "modified", p, new, by)
                return self.world_unlocked().memories[store.id][memory.id].model_dump(mode="json")
            self.only(query, DELETE_QUERY)
            if body:
                raise ApiError(400, "invalid_request_error", "a delete has no body")
            check_precondition(memory, query.get("expected_content_sha256"))
            self.record_version(store.id, memory.id, "deleted", memory.path, None, by)
            return BetaManagedAgentsDeletedMemory.model_validate({"id": memory.id, "type": "memory_deleted"}).model_dump(mode="json")

    def race(self) -> None:
        """Someone else's change landing between two writes: the scenario's `races`, each
        `{"after_writes": N, "version": VERSION}`, applied before the write that follows
        the Nth accepted one (the caller holds the lock)."""
        with open(Handler.scenario) as f:
            sc = json.load(f)
        due = [r for r in sc.get("races", []) if r["after_writes"] <= Handler.writes]
        if not due:
            return
        now = datetime.now(tz=timezone.utc)
        for r in due:
            last = max([when(v["created_at"]) for v in sc.get("versions", [])], default=now)
            v = dict(r["version"])
            v["created_at"] = max(now, last + timedelta(milliseconds=1)).isoformat().replace("+00:00", "Z")
            sc["versions"].append(v)
        sc["races"] = [r for r in sc["races"] if r not in due]
        self.save(sc)

    def save(self, sc: dict[str, Any]) -> None:
        tmp = Handler.scenario + ".tmp"
        with open(tmp, "w") as f:
            json.dump(sc, f, indent=1)
        os.replace(tmp, Handler.scenario)
        # Read again now: two writes within the file system's time step share an mtime.
        Handler.loaded = (os.stat(Handler.scenario).st_mtime_ns, World(sc))

    @staticmethod
    def body_only(body: dict[str, Any], allowed: set[str]) -> None:
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise ApiError(400, "invalid_request_error", f"{unknown[0]}: Extra inputs are not permitted")

    def record_version(self, store: str, memory: str, op: str, path: str, content: str | None, by: dict[str, Any]) -> None:
        """A new version, written into the scenario file (the caller holds the lock)."""
        with open(Handler.scenario) as f:
            sc = json.load(f)
        now = datetime.now(tz=timezone.utc)
        last = max([when(v["created_at"]) for v in sc.get("versions", [])], default=now)
        at = max(now, last + timedelta(milliseconds=1))  # after every version already there
        v = {"id": f"memver_standin{Handler.count:06d}", "memory_store_id": store, "memory_id": memory,
             "operation": op, "path": path, "created_at": at.isoformat().replace("+00:00", "Z"), "created_by": by}
        if content is not None:
            v["content"] = content
        sc.setdefault("versions", []).append(v)
        Handler.writes += 1
        self.save(sc)

    def world_unlocked(self) -> World:
        mtime = os.stat(Handler.scenario).st_mtime_ns
        if Handler.loaded is None or Handler.loaded[0] != mtime:
            with open(Handler.scenario) as f:
                Handler.loaded = (mtime, World(json.load(f)))
        return Handler.loaded[1]

    def session_route(self, parts: list[str], query: dict[str, str]) -> Any:
        self.need_beta(SESSION_BETAS)
        w = self.world
        if len(parts) == 2:
            self.only(query, SESSION_LIST_PARAMS)
            key = memo_key("sessions", query)
            if key in w.memo:
                return page(w.memo[key], query, 100)
            items = sorted(w.sessions.values(), key=lambda x: (x.created_at, x.id), reverse=query.get("order", "desc") == "desc")
            if query.get("include_archived") != "true":
                items = [x for x in items if x.archived_at is None]
            for op, key in (("gte", "created_at[gte]"), ("gt", "created_at[gt]"), ("lte", "created_at[lte]"), ("lt", "created_at[lt]")):
                if key in query:
                    t = when(query[key])
                    items = [x for x in items if {"gte": x.created_at >= t, "gt": x.created_at > t,
                                                  "lte": x.created_at <= t, "lt": x.created_at < t}[op]]
            if "memory_store_id" in query:
                items = [x for x in items if any(getattr(r, "memory_store_id", None) == query["memory_store_id"] for r in x.resources)]
            w.memo[key] = items
            return page(items, query, 100)
        session = w.sessions.get(parts[2])
        if session is None:
            raise ApiError(404, "not_found_error", f"session {parts[2]} not found")
        if len(parts) == 3:
            self.only(query, set())
            return session.model_dump(mode="json")
        if parts[3] == "events" and len(parts) == 4:
            self.only(query, EVENT_LIST_PARAMS)
            items = w.events[session.id]
            if query.get("order", "asc") == "desc":
                items = list(reversed(items))
            return page(items, query, 100, default=100)
        if parts[3] == "threads" and len(parts) == 4:
            self.only(query, THREAD_LIST_PARAMS)
            return page(w.threads[session.id], query, 1000, default=1000)
        if parts[3] == "threads" and len(parts) == 6 and parts[5] == "events":
            self.only(query, THREAD_EVENT_LIST_PARAMS)
            key = (session.id, parts[4])
            if key not in w.thread_events:
                if any(t.id == parts[4] for t in w.threads[session.id]):
                    return page(w.events[session.id], query, 100, default=100)  # the primary thread
                raise ApiError(404, "not_found_error", f"thread {parts[4]} not found")
            return page(w.thread_events[key], query, 100, default=100)
        raise ApiError(404, "not_found_error", f"no route /{'/'.join(parts)}")

    def dream_route(self, parts: list[str], query: dict[str, str]) -> Any:
        self.need_beta(DREAM_BETAS)
        if self.world.dreams_forbidden:
            raise ApiError(403, "permission_error", "this key cannot use the dreams research preview")
        if len(parts) == 2:
            self.only(query, DREAM_LIST_PARAMS)
            items = sorted(self.world.dreams.values(), key=lambda d: (d.created_at, d.id), reverse=True)
            if query.get("include_archived") != "true":
                items = [d for d in items if d.archived_at is None]
            return page(items, query, 100)
        d = self.world.dreams.get(parts[2])
        if d is None or len(parts) != 3:
            raise ApiError(404, "not_found_error", f"dream {parts[2]} not found")
        self.only(query, set())
        return d.model_dump(mode="json")

    def file_route(self, parts: list[str], query: dict[str, str]) -> Any:
        f = self.world.files.get(parts[2]) if len(parts) >= 3 else None
        if f is None:
            raise ApiError(404, "not_found_error", f"file {parts[2] if len(parts) > 2 else ''} not found")
        self.only(query, set())
        if len(parts) == 3:
            return f[0].model_dump(mode="json")
        if len(parts) == 4 and parts[3] == "content":
            return RawBody(f[1], f[0].mime_type)
        raise ApiError(404, "not_found_error", f"no route /{'/'.join(parts)}")


def check_write(content: str, path: str) -> None:
    """What the API refuses in a memory's content and path."""
    if len(content.encode()) > MAX_CONTENT:
        raise ApiError(400, "invalid_request_error", f"content: {len(content.encode())} bytes, over {MAX_CONTENT}")
    segments = path.split("/")[1:]
    if not path.startswith("/") or len(path.encode()) > 1024 or not 1 <= len(segments) <= 20 \
            or any(s in ("", ".", "..") for s in segments) or unicodedata.normalize("NFC", path) != path:
        raise ApiError(400, "invalid_request_error", f"path: not a memory path: {path!r}")


def check_precondition(memory: BetaManagedAgentsMemory, expected: str | None) -> None:
    if expected is None:
        return
    if not re.fullmatch(r"[0-9a-f]{64}", expected):
        raise ApiError(400, "invalid_request_error", "content_sha256: 64 lowercase hexadecimal characters")
    if memory.content_sha256 != expected:
        # (Final: the SDK retries a 409 unless told not to.)
        raise ApiError(409, "conflict_error",
                       f"precondition failed: memory {memory.id} has content_sha256 {memory.content_sha256}",
                       {"x-should-retry": "false"})


class RawBody:
    """An answer that is not JSON (a file's content)."""

    def __init__(self, data: bytes, mime: str):
        self.data, self.mime = data, mime


def serve(args: argparse.Namespace) -> None:
    Handler.scenario, Handler.key, Handler.fail_every = args.scenario, args.key, args.fail_every
    with open(args.scenario) as f:
        # A bad scenario fails here, not at the first request.
        Handler.loaded = (os.stat(args.scenario).st_mtime_ns, World(json.load(f)))
    Handler.delay = args.delay_ms / 1000
    Handler.max_page = args.max_page
    Handler.log = open(args.log, "a") if args.log else None
    class Server(ThreadingHTTPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
                super().handle_error(request, client_address)

    httpd = Server(("127.0.0.1", args.port), Handler)
    print(f"listening http://127.0.0.1:{httpd.server_address[1]}", flush=True)
    httpd.serve_forever()


def check(args: argparse.Namespace) -> None:
    """Every store and version through the SDK, strictly validated."""
    client = anthropic.Anthropic(base_url=args.check, api_key=args.key, _strict_response_validation=True, max_retries=5)
    out: dict[str, Any] = {"stores": {}}
    for s in client.beta.memory_stores.list(limit=2, include_archived=True):
        versions = list(client.beta.memory_stores.memory_versions.list(s.id, view="full", limit=20))
        assert all(isinstance(v, BetaManagedAgentsMemoryVersion) for v in versions)
        out["stores"][s.id] = {"name": s.name, "versions": [v.id for v in versions]}
    since = client.beta.memory_stores.memory_versions.list(
        next(iter(out["stores"])), created_at_gte="2000-01-01T00:00:00Z", limit=100) if out["stores"] else []
    out["versions_since_2000"] = len(list(since))
    out["sessions"] = {}
    for s in client.beta.sessions.list(limit=3, include_archived=True):
        events = list(client.beta.sessions.events.list(s.id, limit=7))
        threads = list(client.beta.sessions.threads.list(s.id))
        per_thread = {t.id: len(list(client.beta.sessions.threads.events.list(t.id, session_id=s.id, limit=5)))
                      for t in threads if t.parent_thread_id}
        rubrics = [e.rubric.file_id for e in events if e.type == "user.define_outcome" and e.rubric.type == "file"]
        files = {f: client.beta.files.download(f).text() for f in rubrics}
        out["sessions"][s.id] = {"events": len(events), "threads": per_thread, "files": files,
                                 "outcomes": [o.result for o in s.outcome_evaluations]}
    out["dreams"] = {d.id: {"status": d.status, "outputs": [o.memory_store_id for o in d.outputs]}
                     for d in client.beta.dreams.list(limit=2, include_archived=True)}
    if args.check_writes:
        # The writes as the SDK sends them: a create, a conditioned update, one refused (409),
        # a conditioned delete.
        mems = client.beta.memory_stores.memories
        store = args.check_writes
        m = mems.create(store, path="/sdk/check.md", content="one\n")
        assert isinstance(m, BetaManagedAgentsMemory)
        m2 = mems.update(m.id, memory_store_id=store, content="two\n", path="/sdk/moved.md",
                         precondition={"type": "content_sha256", "content_sha256": m.content_sha256})
        try:
            mems.update(m.id, memory_store_id=store, content="three\n",
                        precondition={"type": "content_sha256", "content_sha256": m.content_sha256})
            refused = None
        except anthropic.ConflictError as e:
            refused = e.status_code
        d = mems.delete(m.id, memory_store_id=store, expected_content_sha256=m2.content_sha256)
        assert isinstance(d, BetaManagedAgentsDeletedMemory)
        out["writes"] = {"created": m.id, "moved_to": m2.path, "refused": refused, "deleted": d.id}
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario")
    ap.add_argument("--key", default="sk-ant-standin")
    ap.add_argument("--log")
    ap.add_argument("--fail-every", type=int, default=0)
    ap.add_argument("--port", type=int, default=0, help="0: any free port")
    ap.add_argument("--delay-ms", type=int, default=0, help="latency added to every answer")
    ap.add_argument("--max-page", type=int, default=0, help="at most this many items a page (0: the API's own limits)")
    ap.add_argument("--check", metavar="URL")
    ap.add_argument("--check-writes", metavar="STORE", help="with --check: create, update and delete a memory in STORE through the SDK")
    args = ap.parse_args()
    if args.check:
        check(args)
    elif args.scenario:
        serve(args)
    else:
        sys.exit("--scenario FILE or --check URL")


if __name__ == "__main__":
    main()
