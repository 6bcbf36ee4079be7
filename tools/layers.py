#!/usr/bin/env python3
"""The module dependency graph of dreamlog's root package, from its `crate::` paths, held
to the layering of ARCHITECTURE.md (issue 32).

Crates already keep their own order (a lower crate cannot name a higher one: cargo
refuses). Inside the root package the compiler does not, so this check does: each
top-level module of `src/` has a layer; an arrow from a lower layer to a higher one fails,
and so does any cycle between modules — except the ones listed in KNOWN_CYCLES, which are
the debt recorded when the check began and may only shrink (a listed cycle that is gone
fails too, so the list is kept true).

    python3 tools/layers.py          # check (exit 1 naming each problem)
    python3 tools/layers.py --graph  # print the arrows, module by module
    python3 tools/layers.py --src DIR  # another source tree (the check's own test)
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = Path(sys.argv[sys.argv.index("--src") + 1]).resolve() if "--src" in sys.argv else ROOT / "src"

# Lower number = lower layer. `core` and `store` are crates of their own (re-exported);
# `error` is the store crate's.
LAYERS = {
    "core": 0,
    "store": 1,
    "error": 1,
    "keys": 2,
    # the library: domain capabilities over the store
    "exchange": 3,
    "timeline": 3,
    "sessions": 3,
    "ledger": 3,
    "memory": 3,
    "import": 3,
    "dream": 3,
    "sim": 3,
    "fuzzing": 3,
    # every operation, typed, in process or over HTTP
    "service": 4,
    # over the service: adapters and surfaces
    "managed": 5,
    "otlp": 5,
    "watch": 5,
    "mcp": 5,
    "server": 5,
    "cli": 6,
}

# Arrows from a lower layer to a higher one present when the check began (issue 32: the
# library writes through `service::Local`); each
# only ever leaves.
KNOWN_UPWARD = set()

# Cycles present when the check began (issue 32 names them); each only ever leaves.
KNOWN_CYCLES: set = set()

USE = re.compile(r"\b(?:crate|super)::(\{[^{}]*(?:\{[^{}]*\}[^{}]*)*\}|[A-Za-z_][A-Za-z0-9_]*)")


def reexports() -> dict:
    """Names the crate root re-exports (`pub use crate::server::{serve, …}` in lib.rs):
    `crate::serve` is an arrow to `server`."""
    out = {}
    lib = SRC / "lib.rs"
    if not lib.exists():
        return out
    text = lib.read_text(encoding="utf-8")
    for m in re.finditer(r"pub use crate::([a-z_][a-z0-9_]*)::(\{[^}]*\}|[A-Za-z_][A-Za-z0-9_]*)(?: as ([A-Za-z_][A-Za-z0-9_]*))?", text):
        module, names, alias = m.group(1), m.group(2), m.group(3)
        for n in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", names.strip("{}")):
            out[n] = module
        if alias:
            out[alias] = module
    return out


def first_segments(group: str) -> list:
    """The first path segment of each item of `{a::b, c, d::{e, f}}` (or of a plain name)."""
    if not group.startswith("{"):
        return [group]
    inner, depth, item, items = group[1:-1], 0, "", []
    for ch in inner:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            items.append(item)
            item = ""
        else:
            item += ch
    items.append(item)
    return [re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)", i).group(1) for i in items if re.match(r"\s*[A-Za-z_]", i)]


def module_of(path: Path) -> str:
    rel = path.relative_to(SRC)
    first = rel.parts[0]
    return first[:-3] if first.endswith(".rs") else first


def graph() -> dict:
    arrows: dict = {}
    names = reexports()
    for f in sorted(SRC.rglob("*.rs")):
        if f.name in ("lib.rs", "main.rs") and f.parent == SRC:
            continue
        me = module_of(f)
        # `super::` in a top-level file (src/x.rs, src/x/mod.rs) is the crate root.
        top = f.parent == SRC or (f.name == "mod.rs" and f.parent.parent == SRC)
        text = f.read_text(encoding="utf-8")
        # Doc comments name modules too; only code counts.
        code = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("//"))
        for m in USE.finditer(code):
            if m.group(0).startswith("super") and not top:
                continue
            for seg in first_segments(m.group(1)):
                target = seg if seg in LAYERS else names.get(seg)
                if target and target != me:
                    arrows.setdefault(me, set()).add(target)
    return arrows


def strongly_connected(arrows: dict) -> list:
    """Tarjan's algorithm: the strongly connected components with more than one module."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(arrows.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in sorted(set(arrows) | {w for ws in arrows.values() for w in ws}):
        if v not in index:
            visit(v)
    return out


def main() -> int:
    arrows = graph()
    if "--graph" in sys.argv:
        for m in sorted(arrows, key=lambda m: (LAYERS.get(m, 99), m)):
            print(f"{m} ({LAYERS.get(m, '?')}) -> {', '.join(sorted(arrows[m]))}")
        return 0
    problems = []
    for f in sorted(SRC.rglob("*.rs")):
        m = module_of(f)
        if m not in LAYERS and m not in ("lib", "main"):
            problems.append(f"src/{m}: a module with no layer: give it one in tools/layers.py (and ARCHITECTURE.md)")
    for a, bs in sorted(arrows.items()):
        if a not in LAYERS:
            continue  # named above
        for b in sorted(bs):
            if LAYERS[b] > LAYERS[a] and (a, b) not in KNOWN_UPWARD:
                problems.append(f"{a} (layer {LAYERS[a]}) uses {b} (layer {LAYERS[b]}): a lower layer names a higher one")
    for a, b in sorted(KNOWN_UPWARD):
        if b not in arrows.get(a, set()):
            problems.append(f"{a} no longer uses {b}: remove the arrow from KNOWN_UPWARD")
    found = [frozenset(c) for c in strongly_connected(arrows)]
    for c in found:
        if not any(c <= k for k in KNOWN_CYCLES):
            problems.append(f"a new import cycle: {', '.join(sorted(c))}")
    for k in KNOWN_CYCLES:
        if not any(c <= k for c in found):
            problems.append(f"the known cycle {', '.join(sorted(k))} is gone: remove it from KNOWN_CYCLES")
        elif not any(c == k for c in found):
            now = [sorted(c) for c in found if c <= k]
            problems.append(f"the known cycle {', '.join(sorted(k))} shrank to {now}: write that into KNOWN_CYCLES")
    for p in problems:
        print(f"layers: {p}", file=sys.stderr)
    if not problems:
        cycles = sum(len(k) for k in KNOWN_CYCLES)
        print(
            f"layers: no new upward arrow or cycle ({len(KNOWN_UPWARD)} known upward arrows and "
            f"{len(KNOWN_CYCLES)} known cycle(s) over {cycles} modules remain)"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
