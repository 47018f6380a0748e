# lib.bash — the reference portal for scenario tests (sourced after
# tests/scenario/lib.bash, which owns SCEN_DIR, SCEN_PIDS and the EXIT trap).
#
#   ref_pg_available          0 when PostgreSQL is installed (else a scenario
#                             exits 77: skipped)
#   ref_start NAME [args...]  a throw-away PostgreSQL in $SCEN_DIR/pg (started on
#                             the first call, stopped at exit), then
#                             iptv-ref-portal --pg ... args; sets NAME_URL,
#                             NAME_PID and REF_CONN (libpq conninfo)
#   ref_pq SQL                one psql query on it, unaligned, tuples only
# IA_REF_PORTAL names the binary (CMake sets it; default: next to IA_AGENT).
REF_PGSH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/pg.sh
IA_REF_PORTAL=${IA_REF_PORTAL:-$(dirname "$IA_AGENT")/iptv-ref-portal}
REF_CONN=""

ref_pg_available() { bash "$REF_PGSH" bindir >/dev/null 2>&1; }

ref_start() {
  local name=$1; shift
  if [ -z "$REF_CONN" ]; then
    trap 'bash "$REF_PGSH" stop "$SCEN_DIR/pg" || true; scen_cleanup' EXIT
    REF_CONN=$(bash "$REF_PGSH" start "$SCEN_DIR/pg") || fail "pg.sh start"
  fi
  local fifo="$SCEN_DIR/$name.fifo"
  rm -f "$fifo"
  mkfifo "$fifo"
  "$IA_REF_PORTAL" --pg "$REF_CONN" "$@" >"$fifo" 2>"$SCEN_DIR/$name.err" &
  local pid=$!
  SCEN_PIDS+=("$pid")
  local url
  read -r url <"$fifo" || fail "iptv-ref-portal $name did not start: $(cat "$SCEN_DIR/$name.err")"
  printf -v "${name}_URL" '%s' "$url"
  printf -v "${name}_PID" '%s' "$pid"
}

ref_pq() { psql "$REF_CONN" -X -A -t -q -v ON_ERROR_STOP=1 -c "$1"; }
