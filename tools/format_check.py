#!/usr/bin/env python3
"""Independent implementation of dreamlog format v1 (docs/reference/FORMAT.md) in Python.

Re-encodes every golden vector in tests/vectors/ from its JSON form and checks the body
bytes, header bytes and event id against the ones recorded there. Shares no code with
the Rust implementation. Needs the PyPI package `blake3`.

Usage: python3 tools/format_check.py [VECTOR_DIR]   (exit 0: all match)
"""
import glob
import json
import math
import os
import struct
import sys

import blake3

# ---- primitives (FORMAT.md §1) ------------------------------------------------------


def varint(n):
    if n < 0:
        raise ValueError("negative varint")
    if n < 251:
        return bytes([n])
    if n < 1 << 16:
        return b"\xfb" + struct.pack("<H", n)
    if n < 1 << 32:
        return b"\xfc" + struct.pack("<I", n)
    return b"\xfd" + struct.pack("<Q", n)


def u8(n):
    return bytes([n])


def string(s):
    b = s.encode("utf-8")
    return varint(len(b)) + b


def f64(x):
    x = float(x)
    if x == 0.0:
        x = 0.0
    return struct.pack("<d", x)


def boolean(b):
    return b"\x01" if b else b"\x00"


def bytes32(hexstr):
    b = bytes.fromhex(hexstr)
    assert len(b) == 32
    return b


def option(value, enc):
    return b"\x00" if value is None else b"\x01" + enc(value)


def vec(items, enc):
    return varint(len(items)) + b"".join(enc(i) for i in items)


# ---- canonical JSON (FORMAT.md §2) --------------------------------------------------


def es_number(x):
    if x == 0:
        return "0"
    r = repr(abs(x))  # shortest round-trip digits
    if "e" in r:
        mant, exp = r.split("e")
        exp = int(exp)
    else:
        mant, exp = r, 0
    if "." in mant:
        ip, fp = mant.split(".")
    else:
        ip, fp = mant, ""
    if fp == "0":
        fp = ""
    digits = (ip + fp).lstrip("0")
    lead_zeros = len(ip + fp) - len((ip + fp).lstrip("0"))
    n = exp + len(ip) - lead_zeros  # value = 0.digits × 10^n
    digits = digits.rstrip("0")
    k = len(digits)
    sign = "-" if x < 0 else ""
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    e = n - 1
    m = digits[0] + ("." + digits[1:] if k > 1 else "")
    return sign + m + "e" + ("+" if e >= 0 else "-") + str(abs(e))


def canon_string(s):
    out = ['"']
    for ch in s:
        c = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\b":
            out.append("\\b")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\f":
            out.append("\\f")
        elif ch == "\r":
            out.append("\\r")
        elif c < 0x20:
            out.append("\\u%04x" % c)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def canon(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        if -(1 << 63) <= v < (1 << 64):
            return str(v)
        return es_number(float(v))
    if isinstance(v, float):
        return es_number(v)
    if isinstance(v, str):
        return canon_string(v)
    if isinstance(v, list):
        return "[" + ",".join(canon(i) for i in v) + "]"
    if isinstance(v, dict):
        keys = sorted(v.keys(), key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(canon_string(k) + ":" + canon(v[k]) for k in keys) + "}"
    raise TypeError(type(v))


def js(v):
    return string(canon(v))


# ---- bodies (FORMAT.md §5) ----------------------------------------------------------

ACTION_STATUS = {"ok": 0, "error": 1, "unknown": 2}
GRADE_RESULT = {"satisfied": 0, "needs_revision": 1, "failed": 2, "error": 3}
MEMORY_COMMANDS = {"create": 0, "str_replace": 1, "insert": 2, "delete": 3, "rename": 4, "mkdir": 5, "write": 6}
KINDS = ["session.start", "action", "grade", "session.end", "memory", "dream", "llm.exchange",
         "revert", "tag", "store.fork", "redact", "note", "message", "session.link"]


def opt_str(b, k):
    return option(b.get(k), string)


def opt_json(b, k):
    return b"\x00" if k not in b else b"\x01" + js(b[k])


def grade_result(r):
    if r in GRADE_RESULT:
        return varint(GRADE_RESULT[r])
    return varint(4) + string(r)


def criterion(c):
    return (string(c["name"]) + option(c.get("passed"), boolean) + option(c.get("score"), f64)
            + option(c.get("note"), string))


def memory_command(c):
    t = MEMORY_COMMANDS[c["command"]]
    if c["command"] in ("create", "write"):
        f = string(c["path"]) + string(c["file_text"])
    elif c["command"] == "str_replace":
        f = string(c["path"]) + string(c["old_str"]) + string(c["new_str"])
    elif c["command"] == "insert":
        f = string(c["path"]) + varint(c["insert_line"]) + string(c["insert_text"])
    elif c["command"] in ("delete", "mkdir"):
        f = string(c["path"])
    else:
        f = string(c["old_path"]) + string(c["new_path"])
    return varint(t) + f


def revert_target(t):
    (name, value), = t.items()
    if name == "event":
        return varint(0) + bytes32(value)
    if name == "dream":
        return varint(1) + bytes32(value)
    if name == "session":
        return varint(3) + string(value)
    return varint(2) + varint(value)


def body_bytes(kind, b):
    if kind == "session.start":
        return (string(b["session"]) + string(b["agent"]) + opt_str(b, "model") + opt_str(b, "task_id")
                + opt_str(b, "task") + opt_str(b, "store") + option(b.get("memory_state"), bytes32)
                + opt_str(b, "source") + opt_json(b, "meta"))
    if kind == "action":
        return (string(b["session"]) + string(b["name"]) + opt_str(b, "call_id") + js(b["input"])
                + opt_json(b, "output") + varint(ACTION_STATUS[b["status"]]) + opt_json(b, "meta"))
    if kind == "grade":
        return (string(b["session"]) + option(b.get("target"), bytes32) + string(b["rubric"])
                + string(b["evaluator"]) + f64(b["score"]) + grade_result(b["result"])
                + vec(b.get("criteria", []), criterion) + opt_json(b, "meta"))
    if kind == "session.end":
        return string(b["session"]) + string(b["status"]) + opt_json(b, "meta")
    if kind == "memory":
        return (string(b["store"]) + memory_command(b["command"]) + option(b.get("precondition"), bytes32)
                + opt_str(b, "session"))
    if kind == "dream":
        return (string(b["dreamer"]) + string(b["version"]) + js(b["config"]) + string(b["store"])
                + bytes32(b["base_state"]) + varint(b["from_position"]) + varint(b["to_position"])
                + string(b["output_store"]) + bytes32(b["result_state"]) + opt_json(b, "meta"))
    if kind == "llm.exchange":
        return (string(b["api"]) + string(b["model"]) + js(b["request"]) + js(b["response"])
                + opt_json(b, "meta"))
    if kind == "revert":
        return string(b["store"]) + revert_target(b["target"]) + string(b["reason"])
    if kind == "tag":
        return string(b["name"]) + varint(b["position"])
    if kind == "store.fork":
        return string(b["store"]) + string(b["source"]) + varint(b["position"])
    if kind == "redact":
        return bytes32(b["target"]) + string(b["reason"])
    if kind == "note":
        return string(b["type"]) + js(b["json"])
    if kind == "message":
        return string(b["session"]) + string(b["role"]) + js(b["content"]) + opt_json(b, "meta")
    if kind == "session.link":
        return (string(b["session"]) + opt_str(b, "store") + option(b.get("memory_state"), bytes32)
                + opt_str(b, "source") + opt_json(b, "meta"))
    raise ValueError("unknown kind " + kind)


# ---- header (FORMAT.md §3) ----------------------------------------------------------


def actor(a):
    role, name = a.split(":", 1)
    if role == "dreamer":
        n, v = name.split("@", 1)
        return varint(2) + string(n) + string(v)
    return varint({"agent": 0, "evaluator": 1, "human": 3, "system": 4}[role]) + string(name)


def header_bytes(e, body):
    return (u8(1) + varint(KINDS.index(e["kind"])) + string(e["stream"]) + actor(e["actor"])
            + varint(e["time"]) + vec(e.get("parents", []), bytes32) + vec(e.get("causes", []), bytes32)
            + varint(len(body)) + blake3.blake3(body).digest())


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    vector_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "tests", "vectors")
    files = sorted(glob.glob(os.path.join(vector_dir, "*.json")))
    if not files:
        print("no vectors found in " + vector_dir)
        return 1
    failures = 0
    kinds = set()
    for path in files:
        v = json.load(open(path, encoding="utf-8"))
        e = v["event"]
        body = body_bytes(e["kind"], e["body"])
        header = header_bytes(e, body)
        eid = blake3.blake3(header).hexdigest()
        problems = []
        if body.hex() != v["body_hex"]:
            problems.append("body bytes differ:\n    python %s\n    vector %s" % (body.hex(), v["body_hex"]))
        if header.hex() != v["header_hex"]:
            problems.append("header bytes differ:\n    python %s\n    vector %s" % (header.hex(), v["header_hex"]))
        if eid != v["id"]:
            problems.append("id differs: python %s, vector %s" % (eid, v["id"]))
        kinds.add(e["kind"])
        if problems:
            failures += 1
            print("FAIL %s\n  %s" % (os.path.basename(path), "\n  ".join(problems)))
    # Receipts (FORMAT.md §13): a struct of format, principal (name, role), received_at,
    # count and the BLAKE3 of the batch's ids concatenated.
    receipts = sorted(glob.glob(os.path.join(vector_dir, "receipts", "*.json")))
    for path in receipts:
        v = json.load(open(path, encoding="utf-8"))
        r = v["receipt"]
        digest = blake3.blake3(b"".join(bytes.fromhex(i) for i in r["batch_ids"])).hexdigest()
        encoded = (u8(r["format"]) + string(r["principal"]["name"]) + string(r["principal"]["role"])
                   + varint(r["received_at"]) + varint(len(r["batch_ids"])) + bytes32(digest))
        problems = []
        if digest != v["ids_digest"]:
            problems.append("ids digest differs: python %s, vector %s" % (digest, v["ids_digest"]))
        if encoded.hex() != v["bytes_hex"]:
            problems.append("receipt bytes differ:\n    python %s\n    vector %s" % (encoded.hex(), v["bytes_hex"]))
        if problems:
            failures += 1
            print("FAIL receipts/%s\n  %s" % (os.path.basename(path), "\n  ".join(problems)))
    missing = [k for k in KINDS if k not in kinds]
    if missing:
        print("no vector for kinds: " + ", ".join(missing))
        failures += 1
    print("%d vectors checked, %d kinds, %d receipts, %d failed" % (len(files), len(kinds), len(receipts), failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
