#!/bin/sh
# The exact commands behind bench/results/pin/ (run from the repository root).
set -x
uptime
node dist/src/main.js bench --engines bun --workers 3 --duration 60 --pin 0/1 --out bench/results/pin/bun-pinned
uptime
node dist/src/main.js bench --engines bun --workers 3 --duration 60 --pin off --out bench/results/pin/bun-unpinned
uptime
