#!/usr/bin/env python3
"""Kernel memory of the socket-related slab caches: active objects x object size, before the
run and at the largest TCP socket count, and the difference per TCP socket added (from
/proc/net/sockstat's inuse, given as arguments: before peak)."""
import sys
CACHES = ['TCP', 'sock_inode_cache', 'filp', 'dentry', 'eventpoll_epi', 'eventpoll_pwq', 'skbuff_head_cache', 'kmalloc-512', 'kmalloc-256', 'kmalloc-192', 'kmalloc-128', 'kmalloc-64']
def read(path):
    out = {}
    for line in open(path):
        f = line.split()
        if f and f[0] in CACHES:
            out[f[0]] = (int(f[1]), int(f[3]))  # active objects, object size
    return out
before, peak = read(sys.argv[1]), read(sys.argv[2])
sockets = int(sys.argv[4]) - int(sys.argv[3])
total = 0
print(f'| cache | object size | active before | active at peak | added bytes per TCP socket |')
print('|---|---|---|---|---|')
for c in CACHES:
    if c not in before or c not in peak: continue
    (a0, size), (a1, _) = before[c], peak[c]
    per = (a1 - a0) * size / sockets
    total += per
    print(f'| {c} | {size} | {a0} | {a1} | {per:.0f} |')
print(f'| all of these | | | | **{total:.0f}** ({sockets} TCP sockets added) |')
