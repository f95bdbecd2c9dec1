#!/usr/bin/env bash
# What `npm test` needs besides node_modules, provisioned before the suites run, so the
# README's two commands work on a fresh Debian 12 machine and no case is skipped.
#
# The suites start their own redis-server, nginx, Chromium, systemd-notify/systemd-analyze
# and python3 listener on ports and paths they pick; PostgreSQL is the one server they
# expect running: a cluster on loopback with the role of test/kit/pg.ts's default URL.
#
# As root with apt-get: installs the missing Debian packages (apt-get update only then),
# starts the cluster and creates the role. Otherwise: names the missing packages on one
# line and exits 1, rather than letting the suites die on spawn ENOENT. When everything is
# there this is a few `command -v` and one PostgreSQL connection. Bash, not a Node script:
# it is apt-get, pg_ctlcluster and psql calls.
set -euo pipefail

# nginx lives in /usr/sbin, outside a Debian user's PATH; the tests look there too.
PATH="$PATH:/usr/sbin:/sbin"
root=false
[ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && root=true

# program -> Debian package
need=()
check() { command -v "$1" >/dev/null || [[ " ${need[*]} " == *" $2 "* ]] || need+=("$2"); }
check redis-server redis-server
check nginx nginx
check chromium chromium
check systemd-analyze systemd
check systemd-notify systemd
check python3 python3
# ONEBOX_TEST_PG_URL set: the caller names a server of their own; leave it to them.
[ -n "${ONEBOX_TEST_PG_URL:-}" ] || { check pg_ctlcluster postgresql; check psql postgresql; }

if [ ${#need[@]} -gt 0 ]; then
  if ! $root; then
    echo "npm test: missing Debian packages; install them as root with:" \
      "apt-get install ${need[*]} (npm test run as root does this itself)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  # No daemons left on their default ports by the install (nginx on :80 for anyone): the
  # tests start their own, and the PostgreSQL cluster is started below.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e $policy ]; then
    printf '#!/bin/sh\nexit 101\n' >$policy && chmod +x $policy && trap "rm -f $policy" EXIT
  fi
  apt-get update -q
  # No recommends: the tests run Chromium with --no-sandbox (chromium-sandbox) and need
  # no desktop or bus services.
  apt-get install -y -q --no-install-recommends "${need[@]}"
fi

[ -n "${ONEBOX_TEST_PG_URL:-}" ] && exit 0
url=postgres://onebox:onebox@127.0.0.1:5432/postgres   # test/kit/pg.ts's default
PGCONNECT_TIMEOUT=5 psql "$url" -qtAc 'select 1' >/dev/null 2>&1 && exit 0
if ! $root; then
  echo "npm test cannot reach PostgreSQL at $url (run it once as root: it starts the cluster" \
    "and creates the role; or set ONEBOX_TEST_PG_URL to a server where it may create databases)" >&2
  exit 1
fi
# Debian's cluster listens on localhost only; the role may create (and drop) the test databases.
if [ -z "$(pg_lsclusters --no-header)" ]; then
  pg_createcluster "$(ls /usr/lib/postgresql | sort -V | tail -1)" main
fi
read -r ver name port status _ < <(pg_lsclusters --no-header | head -1)
[ "$status" = online ] || pg_ctlcluster "$ver" "$name" start
runuser -u postgres -- psql -p "$port" -qtAc "select 1 from pg_roles where rolname = 'onebox'" | grep -q 1 ||
  runuser -u postgres -- psql -p "$port" -qc "create role onebox login createdb password 'onebox'"
PGCONNECT_TIMEOUT=5 psql "$url" -qtAc 'select 1' >/dev/null
