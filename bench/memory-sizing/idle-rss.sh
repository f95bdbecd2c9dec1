#!/usr/bin/env bash
# Idle RSS and PSS of one server process (WORKERS=1, SQLite), 3 s after /readyz answers, for
# each onebox tree given (a built checkout: bin/onebox, dist/) and engine, REPS times
# interleaved; plus a bare Bun.serve and a bare node:http server answering the same JSON.
# Usage: bench/memory-sizing/idle-rss.sh TREE... (e.g. a worktree of main, then this tree)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
port=${PORT:-18195}
reps=${REPS:-3}
engines=${ENGINES:-bun node}
bun="$here/../../node_modules/bun/bin/bun.exe"
measure() { # measure <label> <cmd...>
  local label=$1; shift
  local dir; dir=$(mktemp -d)
  env PORT=$port HOST=127.0.0.1 DATA_DIR="$dir" "$@" > "$dir/log" 2>&1 & local pid=$!
  for _ in $(seq 1 150); do curl -sf -o /dev/null "127.0.0.1:$port/healthz" && break; sleep 0.1; done
  sleep 3
  # bin/onebox execs the runtime, so $pid is the server itself.
  echo "| $label | $(awk '/VmRSS/{printf "%.1f", $2/1024}' /proc/$pid/status) | $(awk '/^Pss:/{printf "%.1f", $2/1024}' /proc/$pid/smaps_rollup) | $(cut -d' ' -f1-3 /proc/loadavg) |"
  kill $pid; wait $pid 2>/dev/null || true; rm -rf "$dir"
}
echo "| server | RSS MiB | PSS MiB | load average |"
echo "|---|---|---|---|"
for _ in $(seq 1 "$reps"); do
  measure "bare Bun.serve" "$bun" "$here/../request-path/bare-bun.js"
  measure "bare node:http" node -e "require('node:http').createServer((q, s) => { s.setHeader('content-type', 'application/json'); s.end('{\"status\":\"ok\"}'); }).listen(process.env.PORT, '127.0.0.1')"
  for tree in "$@"; do
    for engine in $engines; do
      measure "$(cd "$tree" && git rev-parse --short HEAD) $engine" env ENGINE=$engine "$tree/bin/onebox" serve
    done
  done
done
