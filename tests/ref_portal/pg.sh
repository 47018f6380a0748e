#!/usr/bin/env bash
# pg.sh — a throw-away PostgreSQL cluster for the reference portal's tests.
#
#   pg.sh start DIR   initdb into DIR/data (once), start it listening only on a
#                     Unix socket in DIR, print the libpq conninfo on stdout
#   pg.sh stop DIR    stop it now (-m immediate); safe to call twice
#   pg.sh bindir      print the directory of initdb/pg_ctl, or exit 1 when
#                     PostgreSQL is not installed (scenarios skip on that)
#
# Fast on purpose: trust auth, no fsync. UTF8, byte-order collation (C, as
# SQLite compares text) and C.UTF-8 character classes, so lower(), upper() and
# regular expressions know Cyrillic as a real portal does. As root
# (tests run so) the server runs as `postgres`, which initdb insists on.
set -euo pipefail

find_bindir() {
  local d
  for d in /usr/lib/postgresql/*/bin /usr/local/pgsql/bin; do
    [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
  done
  d=$(dirname "$(command -v pg_ctl 2>/dev/null || echo /nonexistent/x)")
  [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
  return 1
}

usage() { echo "usage: pg.sh start DIR | stop DIR | bindir" >&2; exit 2; }

cmd=${1:-}
[ "$cmd" = bindir ] && { find_bindir; exit $?; }
[ $# -eq 2 ] || usage
dir=$(mkdir -p "$2" && cd "$2" && pwd)
bindir=$(find_bindir) || { echo "pg.sh: PostgreSQL (initdb, pg_ctl) is not installed" >&2; exit 1; }

# Run a server binary as the cluster's owner.
if [ "$(id -u)" -eq 0 ]; then
  owner=postgres
  as_owner() { runuser -u postgres -- "$@"; }
else
  owner=$(id -un)
  as_owner() { "$@"; }
fi

case $cmd in
  start)
    if [ "$owner" = postgres ]; then
      chown postgres "$dir"
      # The owner must reach DIR: a mktemp parent is 0700 root, so each ancestor
      # it cannot search gets o+x (search only, no listing).
      a=$dir
      while [ "$a" != / ]; do
        as_owner test -x "$a" || chmod o+x "$a"
        a=$(dirname "$a")
      done
    fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_owner "$bindir/initdb" -D "$dir/data" -U postgres -A trust --no-sync \
        --locale=C --lc-ctype=C.UTF-8 -E UTF8 >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; echo "pg.sh: initdb failed in $dir/data" >&2; exit 1; }
    fi
    conninfo="host=$dir port=5433 dbname=postgres user=postgres"
    if as_owner "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      echo "$conninfo"   # already running: the same cluster
      exit 0
    fi
    # Socket only (listen_addresses=''), so the fixed port never collides.
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-c listen_addresses='' -c unix_socket_directories='$dir' -p 5433 -c fsync=off \
          -c synchronous_commit=off -c full_page_writes=off" start >/dev/null ||
      { cat "$dir/server.log" >&2 2>/dev/null; echo "pg.sh: the server did not start in $dir" >&2; exit 1; }
    echo "$conninfo"
    ;;
  stop)
    [ -f "$dir/data/postmaster.pid" ] || exit 0
    as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    ;;
  *) usage ;;
esac
