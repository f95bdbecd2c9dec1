#!/bin/sh
# A third pair, round-robin, when the box had gone quiet (load 3.5 at 10:55): after, then before.
set -x
uptime
node dist/src/main.js bench --scenario storm --engines node --workers 3 --duration 10 --rate 200 --out bench/results/storm-node/after-rr-quiet
uptime
(cd /tmp/s4-bench-base && node dist/src/main.js bench --scenario storm --engines node --workers 3 --duration 10 --rate 200 --out /tmp/s4-bench/bench/results/storm-node/before-quiet)
uptime
