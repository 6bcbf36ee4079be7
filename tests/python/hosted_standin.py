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
created_by?, redacted_at?, redacted_by?}], "expired_before": TIME?}. Times are RFC 3339.
Versions older than `expired_before` are past the retention period: not listed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, get_type_hints
from urllib.parse import parse_qs, urlparse

import anthropic
from anthropic.types.beta import BetaManagedAgentsMemoryStore
from anthropic.types.beta import memory_store_list_params
from anthropic.types.beta.memory_stores import (
    BetaManagedAgentsMemory,
    BetaManagedAgentsMemoryVersion,
    memory_list_params,
    memory_version_list_params,
)

MEMORY_BETAS = {"agent-memory-2026-07-22", "managed-agents-2026-04-01"}
HEADER_PARAMS = {"betas", "workspace_id"}


def params_of(typed_dict: type) -> set[str]:
    """The query parameters an SDK parameter type names (its headers aside)."""
    return set(get_type_hints(typed_dict)) - HEADER_PARAMS


STORE_LIST_PARAMS = params_of(memory_store_list_params.MemoryStoreListParams)
VERSION_LIST_PARAMS = params_of(memory_version_list_params.MemoryVersionListParams)
MEMORY_LIST_PARAMS = params_of(memory_list_params.MemoryListParams)


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


def page(items: list[Any], query: dict[str, str], max_limit: int, default: int = 20) -> dict[str, Any]:
    """One page of `items` from the cursor in `page`, as `SyncPageCursor` reads it."""
    try:
        limit = int(query.get("limit", default))
    except ValueError:
        raise ApiError(400, "invalid_request_error", f"limit: not an integer: {query['limit']!r}")
    if not 1 <= limit <= 100:
        raise ApiError(400, "invalid_request_error", f"limit: must be between 1 and 100, got {limit}")
    limit = min(limit, max_limit)
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
    world: World
    key: str
    log: Any
    fail_every: int
    delay = 0.0
    count = 0
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

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        url = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        with Handler.lock:
            Handler.count += 1
            n = Handler.count
        record = {"n": n, "path": url.path, "query": query, "beta": self.headers.get("anthropic-beta")}
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
            body = self.route(url.path, query)
            record["status"] = 200
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
            items = self.world.versions[store.id]
            if "created_at_gte" in query:
                items = [v for v in items if v.created_at >= when(query["created_at_gte"])]
            if "created_at_lte" in query:
                items = [v for v in items if v.created_at <= when(query["created_at_lte"])]
            for field in ("memory_id", "operation"):
                if field in query:
                    items = [v for v in items if getattr(v, field) == query[field]]
            if "session_id" in query:
                items = [v for v in items if getattr(v.created_by, "session_id", None) == query["session_id"]]
            if view == "basic":
                items = [v.model_copy(update={"content": None}) for v in items]
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


def serve(args: argparse.Namespace) -> None:
    with open(args.scenario) as f:
        world = World(json.load(f))
    Handler.world, Handler.key, Handler.fail_every = world, args.key, args.fail_every
    Handler.delay = args.delay_ms / 1000
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
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario")
    ap.add_argument("--key", default="sk-ant-standin")
    ap.add_argument("--log")
    ap.add_argument("--fail-every", type=int, default=0)
    ap.add_argument("--port", type=int, default=0, help="0: any free port")
    ap.add_argument("--delay-ms", type=int, default=0, help="latency added to every answer")
    ap.add_argument("--check", metavar="URL")
    args = ap.parse_args()
    if args.check:
        check(args)
    elif args.scenario:
        serve(args)
    else:
        sys.exit("--scenario FILE or --check URL")


if __name__ == "__main__":
    main()
