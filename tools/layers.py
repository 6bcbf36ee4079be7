#!/usr/bin/env python3
"""The module dependency graph of dreamlog's crates, from their `crate::` paths, held to
the layering of ARCHITECTURE.md (issue 32).

Crates keep their own order: a lower crate cannot name a higher one (cargo refuses).
Inside a crate the compiler does not, so this check does: each top-level module of a
crate's `src/` has a layer; an arrow from a lower layer to a higher one fails, and so
does any cycle between modules. Layers are numbered across the workspace (a crate's
modules sit above the crates it builds on), so one table reads top to bottom.

    python3 tools/layers.py          # check (exit 1 naming each problem)
    python3 tools/layers.py --graph  # print the arrows, module by module
    python3 tools/layers.py --src DIR  # another source tree (the check's own test)
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The crates whose modules this check reads (dreamlog-core and dreamlog-store have few
# modules and no layering of their own beyond their crate: the core names no I/O, which
# its clippy.toml refuses).
CRATES = (
    [Path(sys.argv[sys.argv.index("--src") + 1]).resolve()]
    if "--src" in sys.argv
    else [ROOT / "crates/dreamlog-service/src", ROOT / "crates/dreamlog-server/src", ROOT / "src"]
)

# Lower number = lower layer.
LAYERS = {
    # crates/dreamlog-core, crates/dreamlog-store (re-exported as `core`, `store`, `error`)
    "core": 0,
    "store": 1,
    "error": 1,
    # crates/dreamlog-service: the domain over the store …
    "keys": 2,
    "embedded": 2,
    "exchange": 3,
    "timeline": 3,
    "sessions": 3,
    "ledger": 3,
    "memory": 3,
    "import": 3,
    "dream": 3,
    "sim": 3,
    "fuzzing": 3,
    # … every operation, typed, in process or over HTTP …
    "service": 4,
    # … and the adapters that speak other vocabularies through it
    "managed": 5,
    "otlp": 5,
    "watch": 5,
    "hooks": 5,
    # crates/dreamlog-server: its config, the state requests share, what every HTTP
    # surface shares and what runs beside the service, the surfaces, their router
    "config": 6,
    "state": 7,
    "sync": 7,
    "http": 8,
    "metrics": 8,
    "mcp": 8,
    "workers": 8,
    "api": 9,
    "anthropic": 9,
    "ui": 9,
    "routes": 10,
    # the binary (src/): the server crate as a whole, and the command line over everything
    "server": 10,
    "cli": 11,
}

# Modules that use what their crate root defines (debt recorded when the check learned to
# see it; it only shrinks, and is empty now: dreamlog-server's config, state and workers
# left its lib.rs for modules of their own).
KNOWN_ROOT_USES = set()

USE = re.compile(r"\b(?:crate|super)::(\{[^{}]*(?:\{[^{}]*\}[^{}]*)*\}|[A-Za-z_][A-Za-z0-9_]*)")


def reexports(src: Path) -> dict:
    """Names the crate root re-exports (`pub use crate::server::{serve, …}` in lib.rs):
    `crate::serve` is an arrow to `server`."""
    out = {}
    lib = src / "lib.rs"
    if not lib.exists():
        return out
    text = lib.read_text(encoding="utf-8")
    for m in re.finditer(r"pub use (?:crate::)?([a-z_][a-z0-9_]*)::(\{[^}]*\}|[A-Za-z_][A-Za-z0-9_]*)(?: as ([A-Za-z_][A-Za-z0-9_]*))?", text):
        module, names, alias = m.group(1), m.group(2), m.group(3)
        for n in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", names.strip("{}")):
            out[n] = module
        if alias:
            out[alias] = module
    return out


CRATE_ROOT = "the crate root"


def root_items(src: Path) -> set:
    """Names the crate root (lib.rs) defines itself. A module naming one (`crate::AppState`,
    `super::Role` at the top) points at the root, which declares every module: an arrow to
    the top of the crate, so a cycle — what a root defines that its modules use belongs in
    a module of its own."""
    lib = src / "lib.rs"
    if not lib.exists():
        return set()
    text = lib.read_text(encoding="utf-8")
    item = r"^(?:pub(?:\([a-z]+\))? )?(?:async )?(?:struct|enum|fn|type|const|static|trait) ([A-Za-z_][A-Za-z0-9_]*)"
    return set(re.findall(item, text, flags=re.M))


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


def module_of(path: Path, src: Path) -> str:
    rel = path.relative_to(src)
    first = rel.parts[0]
    return first[:-3] if first.endswith(".rs") else first


def graph(src: Path) -> dict:
    """The arrows between one crate's top-level modules (and to the names it re-exports
    from the crates below)."""
    arrows: dict = {}
    names = reexports(src)
    for n in root_items(src):
        names.setdefault(n, CRATE_ROOT)
    for f in sorted(src.rglob("*.rs")):
        if f.name in ("lib.rs", "main.rs") and f.parent == src:
            continue
        me = module_of(f, src)
        # `super::` in a top-level file (src/x.rs, src/x/mod.rs) is the crate root.
        top = f.parent == src or (f.name == "mod.rs" and f.parent.parent == src)
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


def label(src: Path) -> str:
    try:
        return str(src.relative_to(ROOT))
    except ValueError:
        return "src"


def main() -> int:
    problems = []
    for src in CRATES:
        arrows = graph(src)
        if "--graph" in sys.argv:
            print(f"# {label(src)}")
            for m in sorted(arrows, key=lambda m: (LAYERS.get(m, 99), m)):
                print(f"{m} ({LAYERS.get(m, '?')}) -> {', '.join(sorted(arrows[m]))}")
            continue
        for f in sorted(src.rglob("*.rs")):
            m = module_of(f, src)
            if m not in LAYERS and m not in ("lib", "main"):
                problems.append(
                    f"{label(src)}/{m}: a module with no layer: give it one in tools/layers.py (and ARCHITECTURE.md)"
                )
        for a, bs in sorted(arrows.items()):
            if a not in LAYERS:
                continue  # named above
            for b in sorted(bs):
                if b == CRATE_ROOT:
                    if (label(src), a) not in KNOWN_ROOT_USES:
                        problems.append(
                            f"{label(src)}/{a} uses what the crate root (lib.rs) defines: move it into a module"
                        )
                    continue
                if LAYERS[b] > LAYERS[a]:
                    problems.append(
                        f"{a} (layer {LAYERS[a]}) uses {b} (layer {LAYERS[b]}): a lower layer names a higher one"
                    )
        for crate, a in sorted(KNOWN_ROOT_USES):
            if crate == label(src) and CRATE_ROOT not in arrows.get(a, set()):
                problems.append(f"{crate}/{a} no longer uses the crate root: remove it from KNOWN_ROOT_USES")
        for c in strongly_connected({a: bs - {CRATE_ROOT} for a, bs in arrows.items()}):
            problems.append(f"an import cycle: {', '.join(sorted(c))}")
    if "--graph" in sys.argv:
        return 0
    for p in sorted(set(problems)):
        print(f"layers: {p}", file=sys.stderr)
    if not problems:
        print(
            f"layers: {len(CRATES)} crate(s), no upward arrow and no cycle "
            f"({len(KNOWN_ROOT_USES)} recorded module(s) still use their crate root's items)"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
