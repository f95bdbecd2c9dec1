#!/bin/sh
# Every 10 s: time, load average, kernel socket counters and memory, and the RSS summed over
# the bench's processes (its tree: server supervisor and workers, Redis, client processes).
# /proc/slabinfo is kept at the largest TCP socket count seen (slabinfo-peak.txt beside this script).
# Usage: sample.sh BENCH_PID > samples.tsv
bench=$1
dir=$(dirname "$0")
peak=0
tree() { echo "$1"; for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do tree "$c"; done; }
echo "time	load1	tcp_inuse	tcp_mem_pages	slab_kB	sunreclaim_kB	memavailable_kB	rss_tree_kB	procs"
while kill -0 "$bench" 2>/dev/null; do
  rss=0; n=0
  for p in $(tree "$bench"); do r=$(awk '/VmRSS/ {print $2}' /proc/"$p"/status 2>/dev/null); rss=$((rss + ${r:-0})); n=$((n + 1)); done
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%H:%M:%S)" "$(cut -d' ' -f1 /proc/loadavg)" \
    "$(awk '/^TCP:/ {print $3}' /proc/net/sockstat)" "$(awk '/^TCP:/ {print $11}' /proc/net/sockstat)" \
    "$(awk '/^Slab:/ {print $2}' /proc/meminfo)" "$(awk '/^SUnreclaim:/ {print $2}' /proc/meminfo)" \
    "$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)" "$rss" "$n"
  inuse=$(awk '/^TCP:/ {print $3}' /proc/net/sockstat)
  if [ "$inuse" -gt "$peak" ]; then peak=$inuse; cp /proc/slabinfo "$dir/slabinfo-peak.txt"; fi
  sleep 10
done
