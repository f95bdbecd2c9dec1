#!/bin/sh
# The exact commands behind bench/results/toward-1m/ (run from the repository root, as root).
# 500,000 sockets: 32 Bun workers (each under its 20,000-file limit: ceiling 18,000, ~15,600
# held), 40 client processes from 127.0.0.2-41 (12,500 each), pings every 120 s, 20 req/s,
# held 300 s; opened over 400 s. /proc/slabinfo is copied before the run and at the largest TCP socket count (sample.sh).
set -x
sysctl net.ipv4.ip_local_port_range net.core.somaxconn net.ipv4.tcp_mem fs.file-max
uptime; free -m
cp /proc/slabinfo bench/results/toward-1m/slabinfo-before.txt
node dist/src/main.js bench --engines bun --workers 32 --clients 40 --connections 500000 --ramp 400 \
  --ping-interval 120 --rate 20 --duration 300 --out bench/results/toward-1m/bun-500k &
bench=$!
bench/results/toward-1m/sample.sh $bench > bench/results/toward-1m/samples.tsv &
# Other engineers' tests must survive: stop the bench (SIGINT: it stops what it started)
# if the box's available memory falls under 3 GiB.
( while kill -0 $bench 2>/dev/null; do
    avail=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
    if [ "$avail" -lt 3145728 ]; then echo "watchdog: MemAvailable ${avail} kB, stopping the bench"; kill -INT $bench; break; fi
    sleep 5
  done ) &
wait $bench
uptime; free -m
