#!/bin/sh
# A second pinned run after the unpinned one (the first pinned run met the box at load 28-30).
set -x
uptime
node dist/src/main.js bench --engines bun --workers 3 --duration 60 --pin 0/1 --out bench/results/pin/bun-pinned-2
uptime
