#!/bin/sh
# The exact command behind bench/results/peers/ (the first attempt, 10 s ramp, lost most Node handshakes at load 20).
set -x
uptime
node dist/src/main.js bench --peers --connections 15000 --clients 2 --ramp 30 --settle 10 --fanouts 5 --out bench/results/peers
uptime
