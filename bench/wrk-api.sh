#!/usr/bin/env bash
# HTTP figures with wrk on loopback, one server process per engine (WORKERS=1):
# GET /v1/me, POST /v1/events (batches of 100), GET /v1/users/:id/dashboard.
# Usage: bench/wrk-api.sh [bun|node] [seconds]   Writes bench/results/api-wrk-<engine>.md
set -euo pipefail
engine=${1:-bun}
secs=${2:-15}
root=$(cd "$(dirname "$0")/.." && pwd)
port=${PORT:-18183}
dir=$(mktemp -d)
trap 'kill -TERM $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
ENGINE=$engine PORT=$port HOST=127.0.0.1 DATA_DIR=$dir JWT_SECRET=bench-secret-bench-secret-bench-secret-0123 \
  LOG_LEVEL=info "$root/bin/onebox" serve > "$dir/log" 2>&1 &
pid=$!
until curl -sf "127.0.0.1:$port/readyz" > /dev/null; do sleep 0.1; done
rss() { awk '/VmRSS/ {print int($2/1024) " MiB"}' /proc/$pid/status; }
idle=$(rss)
signup=$(curl -s -XPOST "127.0.0.1:$port/v1/auth/signup" -H 'content-type: application/json' \
  -d '{"email":"bench@example.com","password":"correct horse battery"}')
tok=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["token"])' "$signup")
id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["user"]["id"])' "$signup")
python3 - "$(date +%s%3N)" > "$dir/body.json" <<'PY'
import json, sys
now = int(sys.argv[1])
print(json.dumps({"events": [{"type": ["app.open", "tap", "view", "purchase"][i % 4], "ts": now - i * 60000,
                              "props": {"screen": "home", "i": i}} for i in range(100)]}))
PY
cat > "$dir/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $tok"
local f = io.open("$dir/body.json"); wrk.body = f:read("*a"); f:close()
LUA
run() { wrk -t2 -c50 -d"${secs}s" --latency "$@"; }
wrk -t2 -c50 -d3s -H "Authorization: Bearer $tok" "http://127.0.0.1:$port/v1/me" > /dev/null # warm-up
me=$(run -H "Authorization: Bearer $tok" "http://127.0.0.1:$port/v1/me")
ev=$(wrk -t2 -c32 -d"${secs}s" --latency -s "$dir/post.lua" "http://127.0.0.1:$port/v1/events")
dash=$(run -H "Authorization: Bearer $tok" "http://127.0.0.1:$port/v1/users/$id/dashboard")
loaded=$(rss)
field() { echo "$1" | awk -v k="$2" '$1 == k {print $2}'; }
rps() { echo "$1" | awk '/Requests\/sec/ {print $2}'; }
errs() { echo "$1" | awk '/Non-2xx|Socket errors/ {print}' | tr '\n' ' '; }
ev_rps=$(rps "$ev")
cat > "$root/bench/results/api-wrk-$engine.md" <<MD
# HTTP API with wrk, $engine

$(date -u +%FT%TZ), $(nproc) cores, one server process (WORKERS=1), SQLite in a temp dir,
wrk on the same box (2 threads). Idle RSS $idle, after the runs $loaded.

| route | connections | req/s | p50 | p99 | errors |
|---|---|---|---|---|---|
| GET /v1/me (JWT + one row) | 50 | $(rps "$me") | $(field "$me" 50%) | $(field "$me" 99%) | $(errs "$me") |
| POST /v1/events, 100 events each | 32 | $ev_rps (= $(python3 -c "print(round(float('$ev_rps')*100))") events/s) | $(field "$ev" 50%) | $(field "$ev" 99%) | $(errs "$ev") |
| GET /v1/users/:id/dashboard (user holding the events above) | 50 | $(rps "$dash") | $(field "$dash" 50%) | $(field "$dash" 99%) | $(errs "$dash") |

Reproduce: \`bench/wrk-api.sh $engine $secs\`
MD
cat "$root/bench/results/api-wrk-$engine.md"
