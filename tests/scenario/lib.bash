# lib.bash — shared by the scenario tests (sourced, not a test itself).
# Real processes on loopback: the fake portal prints its URL on its first line,
# so starting it is synchronised by reading that line (no sleeps).
set -euo pipefail
: "${IA_AGENT:?IA_AGENT must name the iptv-agent binary}"
: "${IA_FAKE_PORTAL:?IA_FAKE_PORTAL must name the iptv-fake-portal binary}"

SCEN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/ia-scenario.XXXXXX")
SCEN_PIDS=()
scen_cleanup() {
  local p
  for p in "${SCEN_PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$SCEN_DIR"
}
trap scen_cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
pass_count=0
ok() { pass_count=$((pass_count + 1)); echo "ok $pass_count - $*"; }

# start_portal VAR [args...]: starts the fake portal; VAR_URL and VAR_PID are set.
start_portal() {
  local name=$1; shift
  local fifo="$SCEN_DIR/$name.fifo"
  rm -f "$fifo"   # a portal restarted under the same name
  mkfifo "$fifo"
  "$IA_FAKE_PORTAL" "$@" >"$fifo" &
  local pid=$!
  SCEN_PIDS+=("$pid")
  local url
  read -r url <"$fifo" || fail "portal $name did not start"
  printf -v "${name}_URL" '%s' "$url"
  printf -v "${name}_PID" '%s' "$pid"
}

stop_portal() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; forget_pid "$1"; }

# forget_pid PID: a child already reaped is not killed again at exit (its pid may
# belong to another process by then).
forget_pid() {
  local p keep=()
  for p in "${SCEN_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  SCEN_PIDS=("${keep[@]}")
}

# run_agent OUTFILE ERRFILE args...: runs the agent, returns its exit status in $rc.
run_agent() {
  local out=$1 err=$2; shift 2
  set +e
  "$IA_AGENT" "$@" >"$out" 2>"$err" </dev/null
  rc=$?
  set -e
}

# expect_rc WANT WHAT
expect_rc() { [ "$rc" -eq "$1" ] || { cat "$SCEN_DIR"/last.err >&2 2>/dev/null; fail "$2: exit $rc, expected $1"; }; }

# ---- additions for the sync scenarios -----------------------------------------

# The comparison helpers (cmp_table, cmp_tables, table_checksum, table_checksums).
source "$(dirname "${BASH_SOURCE[0]}")/../compare_cache.bash"

# portal_admin URL PATH [JSON]: GET (no JSON) or POST to a /_fake/ route; prints the body.
portal_admin() {
  if [ $# -ge 3 ]; then curl -sS --max-time 10 -X POST -H 'Content-Type: application/json' -d "$3" "$1$2"
  else curl -sS --max-time 10 "$1$2"; fi
}

# portal_stat URL FIELD: one counter of GET /_fake/stats.
portal_stat() {
  portal_admin "$1" /_fake/stats | grep -o "\"$2\":[0-9]*" | cut -d: -f2
}

# wait_stat URL FIELD MIN [SECONDS]: poll the portal's counter until it reaches MIN
# (a condition, not a guess at timing); fails after SECONDS (default 30).
wait_stat() {
  local deadline=$((SECONDS + ${4:-30})) v
  while :; do
    v=$(portal_stat "$1" "$2" 2>/dev/null || true)
    [ -n "$v" ] && [ "$v" -ge "$3" ] && return 0
    [ $SECONDS -ge $deadline ] && fail "portal stat $2 stayed at ${v:-?} (< $3)"
    sleep 0.01
  done
}

# start_agent OUT ERR args...: the agent in the background; AGENT_PID is set.
start_agent() {
  local out=$1 err=$2; shift 2
  "$IA_AGENT" "$@" >"$out" 2>"$err" </dev/null &
  AGENT_PID=$!
  SCEN_PIDS+=("$AGENT_PID")
}

# wait_agent PID: its exit status in $rc (137 when killed -9; bash's "Killed"
# notice is silenced).
wait_agent() {
  set +e
  wait "$1" 2>/dev/null
  rc=$?
  set -e
  forget_pid "$1"
}

# kill_portal PID: kill -9 a portal started by start_portal, and reap it.
kill_portal() { kill -9 "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; forget_pid "$1"; }

# json_check FILE PYTHON-EXPR [ERE]: evaluate EXPR with `d` the parsed JSON of
# FILE; true when truthy. Without python3, true when FILE matches the extended
# regular expression ERE (or, with none given, is not empty).
json_check() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if eval("(" + sys.argv[2] + ")") else 1)' "$1" "$2"
  elif [ -n "${3:-}" ]; then
    grep -qE -- "$3" "$1"
  else
    [ -s "$1" ]
  fi
}

# sq DB SQL: one read-only sqlite3 query (DB may be mid-write by another process).
sq() { sqlite3 -batch -noheader -cmd '.timeout 10000' "file:$1?mode=ro" "$2"; }
