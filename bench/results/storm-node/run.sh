#!/bin/sh
# The exact commands behind bench/results/storm-node/{before-2,after-rr,after-none}: one
# Node storm each, back to back, same settings. before-2 runs the code before this work
# (eb78fac, built in a worktree at /tmp/s4-bench-base); NODE_CLUSTER_SCHED_POLICY=none is
# Node's own switch (workers accept from the shared socket; the primary queues nothing).
set -x
uptime
(cd /tmp/s4-bench-base && node dist/src/main.js bench --scenario storm --engines node --workers 3 --duration 10 --rate 200 --out /tmp/s4-bench/bench/results/storm-node/before-2)
uptime
node dist/src/main.js bench --scenario storm --engines node --workers 3 --duration 10 --rate 200 --out bench/results/storm-node/after-rr
uptime
NODE_CLUSTER_SCHED_POLICY=none node dist/src/main.js bench --scenario storm --engines node --workers 3 --duration 10 --rate 200 --out bench/results/storm-node/after-none-2
uptime
