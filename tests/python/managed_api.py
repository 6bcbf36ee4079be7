"""Drives dreamlog's Managed-Agents memory API with the official `anthropic` SDK.

Run by tests/anthropic_api.rs against a real `dreamlog serve`:

    python3 tests/python/managed_api.py --url URL --part memory|dream|cancel [--sessions a,b]

Every SDK method is called as a user of the provider's API would call it; each check
raises with what it saw. The last line printed is a JSON summary the Rust test reads.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from typing import Any

import anthropic


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def check(cond: bool, what: str, seen: Any = None) -> None:
    if not cond:
        raise AssertionError(f"{what}: saw {seen!r}")


def expect_error(kind: type, api_type: str | None, fn: Any) -> anthropic.APIStatusError:
    try:
        fn()
    except kind as e:  # type: ignore[misc]
        if api_type is not None:
            check(e.type == api_type, f"error type {api_type}", (e.type, e.api_message))
        return e
    raise AssertionError(f"expected {kind.__name__}")


def memory_part(client: anthropic.Anthropic) -> dict[str, Any]:
    ms = client.beta.memory_stores
    out: dict[str, Any] = {}

    # Stores: create, retrieve, update, list (past one page), archive, delete.
    store = ms.create(name="Support memory", description="What support learned.", metadata={"team": "support"})
    check(store.type == "memory_store" and store.id.startswith("memstore_"), "a memory store", store)
    check(store.archived_at is None and store.metadata == {"team": "support"}, "its fields", store)
    got = ms.retrieve(store.id)
    check(got.name == "Support memory" and got.created_at == store.created_at, "retrieve", got)
    upd = ms.update(store.id, name="Support", metadata={"team": None, "tier": "gold"})
    check(upd.name == "Support" and upd.metadata == {"tier": "gold"}, "update: null removes a key", upd)
    check(upd.description == "What support learned.", "update keeps what it was not given", upd)
    others = [ms.create(name=f"scratch {i}") for i in range(3)]
    listed = [s.id for s in ms.list(limit=2)]  # the SDK follows next_page
    check(set(listed) >= {store.id} | {o.id for o in others}, "list past one page", listed)
    check(len(listed) == len(set(listed)), "no store twice across pages", listed)
    first_page = ms.list(limit=2)
    check(len(first_page.data) == 2 and first_page.next_page, "a page and a cursor", first_page)

    # Memories.
    mem = ms.memories
    m = mem.create(store.id, path="/refunds/policy.md", content="Verify identity first.\n")
    check(m.type == "memory" and m.id.startswith("mem_"), "a memory", m)
    check(m.content is None, "create answers view=basic (content null)", m)
    check(m.content_sha256 == sha("Verify identity first.\n") and m.content_size_bytes == 23, "hash and size", m)
    full = mem.retrieve(m.id, memory_store_id=store.id)
    check(full.content == "Verify identity first.\n", "retrieve answers view=full", full)
    basic = mem.retrieve(m.id, memory_store_id=store.id, view="basic")
    check(basic.content is None, "view=basic", basic)

    e = expect_error(
        anthropic.ConflictError,
        "memory_path_conflict_error",
        lambda: mem.create(store.id, path="/refunds/policy.md", content="x"),
    )
    out["path_conflict"] = e.api_message

    v2 = mem.update(
        m.id,
        memory_store_id=store.id,
        content="Verify identity first.\nRefund within 30 days.\n",
        precondition={"type": "content_sha256", "content_sha256": m.content_sha256},
    )
    check(v2.id == m.id and v2.memory_version_id != m.memory_version_id, "an update is a new version", v2)
    stale = expect_error(
        anthropic.ConflictError,
        "memory_precondition_failed_error",
        lambda: mem.update(
            m.id,
            memory_store_id=store.id,
            content="lost update",
            precondition={"type": "content_sha256", "content_sha256": m.content_sha256},
        ),
    )
    check(stale.status_code == 409, "409 on a stale precondition", stale.status_code)
    out["precondition_failed"] = stale.api_message
    after = mem.retrieve(m.id, memory_store_id=store.id)
    check(after.content == "Verify identity first.\nRefund within 30 days.\n", "the stale update wrote nothing", after)

    moved = mem.update(m.id, memory_store_id=store.id, path="/policies/refunds.md")
    check(moved.id == m.id and moved.path == "/policies/refunds.md", "a rename keeps the id", moved)
    both = mem.update(m.id, memory_store_id=store.id, path="/policies/refund.md", content="Refund within 30 days.\n")
    check(both.path == "/policies/refund.md" and both.content_sha256 == sha("Refund within 30 days.\n"), "both", both)
    out["memory_id"] = m.id

    for i in range(25):
        mem.create(store.id, path=f"/notes/day-{i:02}.md", content=f"note {i}\n")
    mem.create(store.id, path="/notes/deep/a.md", content="deep\n")
    all_items = list(mem.list(store.id, limit=10))
    check(len(all_items) == 27, "27 memories over three pages", len(all_items))
    paths = [i.path for i in all_items]
    check(paths == sorted(paths), "in path order", paths)
    page1 = mem.list(store.id, limit=10)
    check(len(page1.data) == 10 and page1.next_page, "page of 10", page1)
    top = mem.list(store.id, path_prefix="/notes/", depth=1, limit=100)
    kinds = {(i.type, i.path) for i in top.data}
    check(("memory_prefix", "/notes/deep/") in kinds, "depth 1 rolls deeper memories up", kinds)
    check(all(i.path.startswith("/notes/") for i in top.data), "the prefix holds", kinds)
    fulls = mem.list(store.id, view="full", limit=100)
    check(len(fulls.data) == 20 and all(i.content is not None for i in fulls.data), "view=full: 20 a page", fulls)
    e = expect_error(anthropic.BadRequestError, "invalid_request_error", lambda: mem.list(store.id, path_prefix="/notes"))
    out["bad_prefix"] = e.api_message

    gone = mem.create(store.id, path="/tmp/x.md", content="temporary\n")
    expect_error(
        anthropic.ConflictError,
        "memory_precondition_failed_error",
        lambda: mem.delete(gone.id, memory_store_id=store.id, expected_content_sha256=sha("other")),
    )
    deleted = mem.delete(gone.id, memory_store_id=store.id, expected_content_sha256=sha("temporary\n"))
    check(deleted.type == "memory_deleted" and deleted.id == gone.id, "delete", deleted)
    expect_error(anthropic.NotFoundError, "not_found_error", lambda: mem.retrieve(gone.id, memory_store_id=store.id))
    bad = expect_error(
        anthropic.BadRequestError, "invalid_request_error", lambda: mem.create(store.id, path="no-slash.md", content="")
    )
    out["bad_path"] = bad.api_message

    # Memory versions: newest first, filters, retrieve.
    mv = ms.memory_versions
    versions = list(mv.list(store.id, memory_id=m.id))
    ops = [(v.operation, v.path) for v in versions]
    check(
        ops
        == [
            ("modified", "/policies/refund.md"),
            ("modified", "/policies/refund.md"),
            ("modified", "/policies/refunds.md"),
            ("modified", "/refunds/policy.md"),
            ("created", "/refunds/policy.md"),
        ],
        "one version per change, newest first (a rename and a rewrite in one call are two)",
        ops,
    )
    check(versions[-1].content is None and versions[-1].content_sha256 == m.content_sha256, "basic view", versions[-1])
    first = mv.retrieve(versions[-1].id, memory_store_id=store.id)
    check(first.content == "Verify identity first.\n" and first.memory_id == m.id, "retrieve a version", first)
    check(first.created_by is not None and first.created_by.type == "api_actor", "who wrote it", first.created_by)
    created = list(mv.list(store.id, operation="created"))
    check(len(created) == 28 and all(v.operation == "created" for v in created), "filter by operation", len(created))
    dels = list(mv.list(store.id, operation="deleted"))
    check([v.memory_id for v in dels] == [gone.id] and dels[0].content is None, "a delete is a version", dels)
    future = list(mv.list(store.id, created_at_gte="2999-01-01T00:00:00Z"))
    check(future == [], "created_at range", future)
    paged = list(mv.list(store.id, limit=7))
    check(len(paged) == len({v.id for v in paged}) == 33, "versions past one page", len(paged))
    out["first_version"] = first.id
    out["versions"] = len(paged)

    # Redaction: the version's content and path go; the memory's current content stays.
    red = mv.redact(first.id, memory_store_id=store.id)
    check(red.redacted_at is not None and red.redacted_by is not None, "redacted_at and redacted_by set", red)
    check(red.content is None and red.path is None and red.content_sha256 is None, "content gone", red)
    again = mv.retrieve(first.id, memory_store_id=store.id)
    check(again.content is None and again.redacted_at == red.redacted_at, "retrieving it still works", again)
    now = mem.retrieve(m.id, memory_store_id=store.id)
    check(now.content == "Refund within 30 days.\n", "the current content is intact", now)
    expect_error(
        anthropic.BadRequestError,
        "invalid_request_error",
        lambda: mv.redact(now.memory_version_id, memory_store_id=store.id),
    )

    # Archive: read-only from then on; left out of the default list.
    arch = ms.archive(others[0].id)
    check(arch.archived_at is not None, "archived_at set", arch)
    expect_error(anthropic.BadRequestError, "invalid_request_error", lambda: ms.update(others[0].id, name="x"))
    expect_error(
        anthropic.BadRequestError,
        "invalid_request_error",
        lambda: mem.create(others[0].id, path="/a.md", content=""),
    )
    default_ids = [s.id for s in ms.list()]
    check(others[0].id not in default_ids, "archived stores are left out by default", default_ids)
    check(others[0].id in [s.id for s in ms.list(include_archived=True)], "include_archived", None)

    # Delete: gone from the API (the log keeps it).
    d = ms.delete(others[1].id)
    check(d.type == "memory_store_deleted" and d.id == others[1].id, "deleted", d)
    expect_error(anthropic.NotFoundError, "not_found_error", lambda: ms.retrieve(others[1].id))
    expect_error(anthropic.NotFoundError, "not_found_error", lambda: ms.retrieve("memstore_nope"))
    out["store"] = store.id
    out["deleted_store"] = others[1].id
    return out


def wait(client: anthropic.Anthropic, dream_id: str, until: set[str]) -> Any:
    deadline = time.time() + 60
    while time.time() < deadline:
        d = client.beta.dreams.retrieve(dream_id)
        if d.status in until:
            return d
        time.sleep(0.1)
    raise AssertionError(f"dream {dream_id} never reached {until}")


def dream_part(client: anthropic.Anthropic, sessions: list[str]) -> dict[str, Any]:
    ms = client.beta.memory_stores
    store = ms.create(name="Dreamed")
    ms.memories.create(store.id, path="/lessons.md", content="- Be kind.\n")
    d = client.beta.dreams.create(
        inputs=[{"type": "memory_store", "memory_store_id": store.id}, {"type": "sessions", "session_ids": sessions}],
        model="claude-opus-dreamer",
        instructions="Keep lessons short.",
    )
    check(d.type == "dream" and d.id.startswith("drm_"), "a dream", d)
    check(d.status in ("pending", "running", "completed"), "asynchronous", d.status)
    check(d.model.id == "claude-opus-dreamer" and d.output_behavior.type == "create_new", "its request", d)
    done = wait(client, d.id, {"completed", "failed", "canceled"})
    check(done.status == "completed", "completed", done)
    check(done.ended_at is not None and len(done.outputs) == 1, "ended, one output", done)
    check(done.usage.input_tokens > 0 and done.usage.output_tokens > 0, "usage where a model ran", done.usage)
    out_store = done.outputs[0].memory_store_id
    check(out_store != store.id, "create_new writes a new store", out_store)
    new = ms.retrieve(out_store)
    check(new.name.startswith("Dreamed"), "the new store is a memory store of the API", new)
    paths = sorted(m.path for m in ms.memories.list(out_store))
    check(paths == ["/dreamed.md", "/lessons.md"], "the input's copy plus the dream's writes", paths)
    unchanged = [m.path for m in ms.memories.list(store.id)]
    check(unchanged == ["/lessons.md"], "the input store is unchanged", unchanged)
    listed = [x.id for x in client.beta.dreams.list()]
    check(d.id in listed, "list", listed)
    completed = [x.id for x in client.beta.dreams.list(statuses=["completed"])]
    check(d.id in completed, "filter by status", completed)
    expect_error(anthropic.BadRequestError, "invalid_request_error", lambda: client.beta.dreams.cancel(d.id))
    arch = client.beta.dreams.archive(d.id)
    check(arch.archived_at is not None, "archive", arch)
    check(d.id not in [x.id for x in client.beta.dreams.list()], "archived dreams are left out", None)
    bad = expect_error(
        anthropic.BadRequestError,
        "invalid_request_error",
        lambda: client.beta.dreams.create(
            inputs=[{"type": "memory_store", "memory_store_id": store.id}, {"type": "sessions", "session_ids": []}],
            model="m",
        ),
    )
    return {
        "dream": d.id,
        "output_store": out_store,
        "input_store": store.id,
        "usage": done.usage.model_dump(),
        "empty_sessions": bad.api_message,
    }


def cancel_part(client: anthropic.Anthropic, sessions: list[str]) -> dict[str, Any]:
    ms = client.beta.memory_stores
    store = ms.create(name="Slow")
    ms.memories.create(store.id, path="/lessons.md", content="- Be kind.\n")
    d = client.beta.dreams.create(
        inputs=[{"type": "memory_store", "memory_store_id": store.id}, {"type": "sessions", "session_ids": sessions}],
        model={"id": "claude-opus-dreamer", "speed": "standard"},
        output_behavior={"type": "update_existing", "memory_store_id": store.id},
    )
    running = wait(client, d.id, {"running"})
    check(running.outputs[0].memory_store_id == store.id, "update_existing writes into the input", running)
    expect_error(anthropic.BadRequestError, "invalid_request_error", lambda: client.beta.dreams.archive(d.id))
    c = client.beta.dreams.cancel(d.id)
    check(c.status == "canceled" and c.ended_at is not None, "canceled", c)
    again = client.beta.dreams.cancel(d.id)
    check(again.status == "canceled", "canceling again changes nothing", again)
    return {"dream": d.id, "store": store.id}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--part", required=True, choices=["memory", "dream", "cancel"])
    p.add_argument("--sessions", default="")
    p.add_argument("--token", default="no-auth")
    a = p.parse_args()
    client = anthropic.Anthropic(base_url=f"{a.url}/anthropic", api_key=a.token, max_retries=0)
    sessions = [s for s in a.sessions.split(",") if s]
    if a.part == "memory":
        out = memory_part(client)
    elif a.part == "dream":
        out = dream_part(client, sessions)
    else:
        out = cancel_part(client, sessions)
    print(json.dumps(out))


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"check failed: {e}", file=sys.stderr)
        sys.exit(1)
