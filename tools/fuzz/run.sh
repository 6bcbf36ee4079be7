#!/usr/bin/env bash
# Coverage-guided fuzzing of dreamlog's decoders, JSON event parsing, importers and memory
# command parsing with AFL++ (afl.rs: stable toolchain; cargo-fuzz needs nightly). Each
# target runs SECONDS (default 60) from the seeds in tools/fuzz/in/TARGET; any crash is
# copied into tools/fuzz/regressions/TARGET/ (commit it: tests/fuzz.rs replays it in every
# CI run) and the script fails. Prints each target's executions and paths found.
#
#   bash tools/fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH="${1:-60}"
shift || true
TARGETS=("$@")
if [ "${#TARGETS[@]}" -eq 0 ]; then TARGETS=(event_record event_json import memory_commands); fi

if ! command -v cargo-afl >/dev/null 2>&1; then
  echo "fuzz: installing cargo-afl (afl.rs 0.18, with AFL++)" >&2
  cargo install cargo-afl --version 0.18.2 --locked
fi
cargo afl config --build >/dev/null 2>&1 || true   # builds AFL++'s runtime once per toolchain
cargo afl build --release --locked 2>&1 | tail -1

export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1
export AFL_SKIP_CRASHES=1 AFL_FAST_CAL=1
status=0
for t in "${TARGETS[@]}"; do
  out="target/afl/$t"
  rm -rf "$out"
  mkdir -p "$out"
  echo "fuzz: $t for ${SECONDS_EACH}s" >&2
  cargo afl fuzz -V "$SECONDS_EACH" -i "in/$t" -o "$out" -- "target/release/$t" >"$out.log" 2>&1 || {
    echo "fuzz: afl-fuzz failed for $t:" >&2; tail -20 "$out.log" >&2; exit 1; }
  stats="$out/default/fuzzer_stats"
  execs=$(awk -F': ' '/^execs_done/ {print $2}' "$stats")
  paths=$(awk -F': ' '/^corpus_count/ {print $2}' "$stats")
  crashes=$(find "$out/default/crashes" -type f -name 'id:*' | wc -l)
  hangs=$(find "$out/default/hangs" -type f -name 'id:*' | wc -l)
  echo "fuzz: $t: ${execs} executions, ${paths} inputs in the corpus, ${crashes} crashes, ${hangs} hangs" >&2
  if [ "$crashes" -gt 0 ]; then
    mkdir -p "regressions/$t"
    for f in "$out"/default/crashes/id:*; do
      cp "$f" "regressions/$t/$(sha256sum "$f" | cut -c1-16)"
    done
    echo "fuzz: $t crashed; the inputs are in tools/fuzz/regressions/$t (commit them)" >&2
    status=1
  fi
done
exit $status
