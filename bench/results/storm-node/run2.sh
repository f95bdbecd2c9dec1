#!/bin/sh
# A second pair, round-robin (the default), when the box's load had dropped: after, then before.
set -x
uptime
node dist/src/main.js bench --scenario storm --engines node --workers 3 --duration 10 --rate 200 --out bench/results/storm-node/after-rr-2
uptime
(cd /tmp/s4-bench-base && node dist/src/main.js bench --scenario storm --engines node --workers 3 --duration 10 --rate 200 --out /tmp/s4-bench/bench/results/storm-node/before-3)
uptime
