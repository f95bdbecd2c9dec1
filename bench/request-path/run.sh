#!/usr/bin/env bash
# The request path on one core: the server pinned to CPU ${SERVER_CPU:-1}, wrk (-t1 -c64) to
# CPU ${WRK_CPU:-0}, a 3 s warm-up then ${SECS:-10} s measured. Per run: req/s, mean latency,
# the server's CPU per request (utime+stime from /proc over the measured window / requests),
# its RSS, and the load average (the box is shared: compare rows taken back to back).
# Rows: a bare Bun.serve on /healthz, onebox on /healthz, onebox on the bench's
# authenticated JSON GET (GET /v1/devices, JWT, 8 web-push devices, Accept-Encoding br,gzip:
# a 1.9 KB answer, brotli). Usage: bench/request-path/run.sh [bun|node ...]; ONEBOX_ENV adds
# environment settings to the onebox runs (e.g. ONEBOX_ENV='NODE_OPTIONS=--max-semi-space-size=64').
# FLOOR=1 adds Hono alone (bench/request-path/hono-floor.js) with no middleware and with one.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bun="$root/node_modules/bun/bin/bun.exe"
secs=${SECS:-10}
port=${PORT:-18190}
engines=${*:-bun}
dir=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$dir"' EXIT

# measure <label> <path> [wrk args...]: runs against $pid on $port
measure() {
  local label=$1 path=$2; shift 2
  taskset -c "${WRK_CPU:-0}" wrk -t1 -c64 -d3s "$@" "http://127.0.0.1:$port$path" > /dev/null
  local c0 c1 out
  c0=$(awk '{print $14+$15}' /proc/$pid/stat)
  out=$(taskset -c "${WRK_CPU:-0}" wrk -t1 -c64 -d"${secs}s" "$@" "http://127.0.0.1:$port$path")
  c1=$(awk '{print $14+$15}' /proc/$pid/stat)
  echo "$out" | awk -v label="$label" -v path="$path" -v c=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" \
    -v rss="$(awk '/VmRSS/{print int($2/1024)}' /proc/$pid/status)" -v load="$(cut -d' ' -f1-3 /proc/loadavg)" '
    /Latency/ {lat=$2} /requests in/ {n=$1} /Requests\/sec/ {rps=$2} /Non-2xx/ {bad=$NF}
    END {printf "| %s | %s | %.0f | %s | %.1f | %d | %s | %s |\n", label, path, rps, lat, c/hz*1e6/n, rss, bad+0, load}'
}
wait_up() { for _ in $(seq 1 100); do curl -sf -o /dev/null "127.0.0.1:$port/healthz" && return; sleep 0.1; done; echo "server did not start" >&2; exit 1; }
stop() { kill $pid; wait $pid 2>/dev/null || true; pid=; }

echo "| server | path | req/s | mean latency | server CPU µs/req | RSS MiB | non-2xx | load average |"
echo "|---|---|---|---|---|---|---|---|"
PORT=$port taskset -c "${SERVER_CPU:-1}" "$bun" "$root/bench/request-path/bare-bun.js" & pid=$!
wait_up; measure "bare Bun.serve" /healthz; stop
if [ -n "${FLOOR:-}" ]; then # Hono alone: no middleware, then one that only awaits next()
  for n in 0 1; do
    MIDDLEWARE=$n PORT=$port taskset -c "${SERVER_CPU:-1}" "$bun" "$root/bench/request-path/hono-floor.js" & pid=$!
    wait_up; measure "Hono, $n middleware" /healthz; stop
  done
fi
for engine in $engines; do
  rm -rf "$dir/data"; mkdir "$dir/data"
  env ENGINE=$engine PORT=$port HOST=127.0.0.1 DATA_DIR="$dir/data" LOG_LEVEL=warn ${ONEBOX_ENV:-} \
    taskset -c "${SERVER_CPU:-1}" "$root/bin/onebox" serve > "$dir/log" 2>&1 & pid=$!
  wait_up
  measure "onebox $engine" /healthz
  tok=$(curl -s -XPOST "127.0.0.1:$port/v1/auth/signup" -H 'content-type: application/json' \
    -d "{\"email\":\"rp-$engine@example.com\",\"password\":\"correct horse battery\"}" | sed 's/.*"token":"\([^"]*\)".*/\1/')
  for i in 1 2 3 4 5 6 7 8; do
    curl -sf -o /dev/null -XPOST "127.0.0.1:$port/v1/devices" -H 'content-type: application/json' -H "authorization: Bearer $tok" \
      -d "{\"platform\":\"web\",\"token\":{\"endpoint\":\"https://push.example.com/send/device-$i-$(printf '%0.s0123456789' {1..9})\",\"keys\":{\"p256dh\":\"BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM\",\"auth\":\"tBHItJI5svbpez7KI4CCXg\"}}}"
  done
  measure "onebox $engine" /v1/devices -H "authorization: Bearer $tok" -H 'accept-encoding: br, gzip'
  stop
done
