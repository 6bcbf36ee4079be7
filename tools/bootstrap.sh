#!/usr/bin/env bash
# Installs what dreamlog's build and tests need on a fresh machine that has only the
# Rust toolchain, then runs the given command. Idempotent: checks before installing.
#
#   bash tools/bootstrap.sh cargo run --release -- demo
#   bash tools/bootstrap.sh cargo test --release
#
# - clang + libclang: bindgen needs libclang to build the rocksdb crate (RocksDB is
#   compiled from source; Debian's librocksdb is too old and is not used).
# - python3 `blake3`: the independent format check (tools/format_check.py) run by the
#   tests; without it that one test says it skipped.
set -euo pipefail

have_libclang() {
  ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib/x86_64-linux-gnu/libclang*.so* >/dev/null 2>&1
}

if ! command -v clang >/dev/null 2>&1 || ! have_libclang; then
  echo "bootstrap: installing clang and libclang-dev (needed by bindgen for RocksDB)" >&2
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq clang libclang-dev >/dev/null
fi

if command -v python3 >/dev/null 2>&1 && ! python3 -c "import blake3" >/dev/null 2>&1; then
  echo "bootstrap: installing the Python blake3 package (for tools/format_check.py)" >&2
  python3 -m pip install --quiet --disable-pip-version-check blake3 >/dev/null 2>&1 \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages blake3 >/dev/null 2>&1 \
    || echo "bootstrap: could not install blake3 for Python; the Python format check will be skipped" >&2
fi

if [ "$#" -gt 0 ]; then
  exec "$@"
fi
