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
  [ -n "${KEEP:-}" ] || rm -rf "$SCEN_DIR"   # KEEP=1 leaves it for a post-mortem
}
trap scen_cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
pass_count=0
ok() { pass_count=$((pass_count + 1)); echo "ok $pass_count - $*"; }

# nap SECONDS: a pause that starts no process (read -t on a pipe nobody writes
# to), for polling loops: a `sleep` per poll costs more CPU than the poll.
exec {SCEN_NAP_FD}<> <(:)
nap() { read -r -t "$1" -u "$SCEN_NAP_FD" _ || true; }

# python3 behind a version manager's shim (pyenv) runs a shell script per start,
# seconds on a loaded machine, and scenarios start it in polling loops: the
# interpreter is resolved once.
if SCEN_PYTHON=$(command python3 -c 'import sys; print(sys.executable)' 2>/dev/null) && [ -x "$SCEN_PYTHON" ]; then
  python3() { "$SCEN_PYTHON" "$@"; }
fi

# Size. The long scenarios take a short size by default, in which every phase
# and case still runs, a smaller one under AddressSanitizer (SCEN_ASAN=1, found
# in the binary), and their full size with SCEN_LONG=1 (opt-in: minutes each).
SCEN_LONG=${SCEN_LONG:-0}
SCEN_ASAN=0
if nm -a "$IA_AGENT" 2>/dev/null | grep -q '__asan_init' || ldd "$IA_AGENT" 2>/dev/null | grep -q libasan; then
  SCEN_ASAN=1
fi
# scen_size VAR LONG SHORT [ASAN]: VAR is LONG with SCEN_LONG=1, else ASAN
# (default SHORT) under ASan, else SHORT.
scen_size() {
  local v=$3
  if [ "$SCEN_LONG" = 1 ]; then v=$2; elif [ "$SCEN_ASAN" = 1 ]; then v=${4:-$3}; fi
  printf -v "$1" '%s' "$v"
}

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

# ---- the common start of a scenario ---------------------------------------------

# scen_setup [--pw PW] [--retries N] [--timeout T] [--no-config] [-- PORTAL-ARG...]
#   The start every scenario shares: the fake portal P (P_URL, P_PID) with its
#   data in $PDB and the password PW (exported as SCEN_PW), started with the
#   PORTAL-ARGs (--rows, --seed, faults...); then $CFG, written by scen_config
#   with the rest of the configuration from stdin (</dev/null: nothing more).
#   With --no-config the script writes $CFG itself later (stdin is expanded
#   before the call, so it cannot use the variables set here). Sets PW, PDB,
#   DATA, CDB, CFG, O and E (files for the last command's stdout and stderr), and
#   SCEN_RETRIES, SCEN_TIMEOUT (default 1 and 10s) for every later scen_config.
scen_setup() {
  local config=1 body=""
  PW=scenario-pw SCEN_RETRIES=1 SCEN_TIMEOUT=10s
  while [ $# -gt 0 ]; do
    case $1 in
      --pw) PW=$2; shift 2 ;;
      --retries) SCEN_RETRIES=$2; shift 2 ;;
      --timeout) SCEN_TIMEOUT=$2; shift 2 ;;
      --no-config) config=0; shift ;;
      --) shift; break ;;
      *) fail "scen_setup: unknown option $1" ;;
    esac
  done
  PDB=$SCEN_DIR/portal.db DATA=$SCEN_DIR/data CDB=$SCEN_DIR/data/cache.db CFG=$SCEN_DIR/agent.toml
  O=$SCEN_DIR/last.out E=$SCEN_DIR/last.err
  export SCEN_PW=$PW
  [ "$config" = 0 ] || body=$(cat)
  start_portal P --db "$PDB" --password "$PW" "$@" </dev/null
  [ "$config" = 0 ] || scen_config <<<"$body"
}

# scen_config [--url URL] [--retries N] [--timeout T] [--dir DIR] [--pw-env NAME] [FILE]
#   Writes FILE (default $CFG): [remote] for the portal at URL (default $P_URL) as
#   admin with the password in $NAME (default SCEN_PW), retries and timeout
#   (default scen_setup's), [storage] dir = DIR (default $DATA), then stdin, which
#   may go on with more [storage] keys.
scen_config() {
  local url=$P_URL retries=$SCEN_RETRIES timeout=$SCEN_TIMEOUT dir=$DATA pwenv=SCEN_PW
  while [ $# -gt 0 ]; do
    case $1 in
      --url) url=$2; shift 2 ;;
      --retries) retries=$2; shift 2 ;;
      --timeout) timeout=$2; shift 2 ;;
      --dir) dir=$2; shift 2 ;;
      --pw-env) pwenv=$2; shift 2 ;;
      --*) fail "scen_config: unknown option $1" ;;
      *) break ;;
    esac
  done
  {
    printf '[remote]\nurl = "%s"\nusername = "admin"\npassword_env = "%s"\n' "$url" "$pwenv"
    printf 'retries = %s\ntimeout = "%s"\n\n[storage]\ndir = "%s"\n' "$retries" "$timeout" "$dir"
    cat
  } >"${1:-$CFG}"
}

# Helpers for the scenarios that call scen_setup (a script may define its own instead).
agent() { run_agent "$O" "$E" -c "$CFG" "$@"; }
# col TABLE N: field N of TABLE's line in the last summary ($O).
col() { awk -v t="$1" -v n="$2" '$1 == t { print $n }' "$O"; }
# sums: the checksums of the script's TABLES in cache.db.
sums() { table_checksums "$CDB" "${TABLES[@]}"; }
# mutate ARGS...: change the portal's data (iptv-fake-portal mutate), logged.
mutate() { "$IA_FAKE_PORTAL" mutate --db "$PDB" "$@" >>"$SCEN_DIR/mutations" || fail "mutate $*"; }

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
    nap 0.01
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

# ---- additions for the daemon scenarios -----------------------------------------

# start_daemon VAR ERR args...: `iptv-agent args...` (run) in the background; its
# first stdout line is the API's URL, read through a FIFO (no sleeps). VAR_URL,
# VAR_PID and VAR_FD (the FIFO's read end, held open so later writes cannot
# SIGPIPE the daemon) are set. Fails when no URL comes within 60 s.
start_daemon() {
  local name=$1 err=$2; shift 2
  local fifo="$SCEN_DIR/$name.daemon.fifo"
  rm -f "$fifo"
  mkfifo "$fifo"
  "$IA_AGENT" "$@" >"$fifo" 2>"$err" </dev/null &
  local pid=$! fd url=""
  SCEN_PIDS+=("$pid")
  exec {fd}<"$fifo"
  read -r -t 60 -u "$fd" url || true
  case "$url" in http://*) ;; *) fail "daemon $name printed no URL (got '$url'): $(tail -5 "$err")" ;; esac
  printf -v "${name}_URL" '%s' "$url"
  printf -v "${name}_PID" '%s' "$pid"
  printf -v "${name}_FD" '%s' "$fd"
}

# proc_exited PID: true once PID is gone or a zombie (exited, not yet reaped).
proc_exited() {
  local st
  st=$(ps -o stat= -p "$1" 2>/dev/null) || return 0
  case "$st" in Z*) return 0 ;; *) return 1 ;; esac
}

# wait_exit PID SECONDS: wait for PID to exit on its own (polled, bounded); its
# exit status in $rc. Fails (and kills it) when it is still running at the deadline.
wait_exit() {
  local deadline=$((SECONDS + $2))
  until proc_exited "$1"; do
    if [ $SECONDS -ge $deadline ]; then
      kill -9 "$1" 2>/dev/null || true
      wait_agent "$1"
      fail "process $1 did not exit within $2 s"
    fi
    nap 0.05
  done
  wait_agent "$1"
}

# proc_start PID: the process's start time (field 22 of /proc/PID/stat): with the
# pid, it names one process (a pid alone may be reused).
proc_start() { awk '{ sub(/^.*\) /, ""); print $20 }' "/proc/$1/stat"; }

# http METHOD URL [BODY] [curl args...]: one request; HTTP_CODE is set, the body
# is in $HTTP_BODY, the headers in $HTTP_HDR. Fails on a transport error.
HTTP_BODY=$SCEN_DIR/http.body
HTTP_HDR=$SCEN_DIR/http.hdr
http() {
  local method=$1 url=$2 body=${3:-}
  shift 2; [ $# -gt 0 ] && shift
  local -a data=()
  [ -n "$body" ] && data=(--data-binary "$body" -H 'Content-Type: application/json')
  case $url in */api/jsonsql/ | */api/jsonsql) data+=("${SCEN_SESSION[@]}") ;; esac
  HTTP_CODE=$(curl -sS --max-time 20 -X "$method" "${data[@]}" "$@" -D "$HTTP_HDR" -o "$HTTP_BODY" \
                -w '%{http_code}' "$url") || fail "$method $url: curl failed"
}

# login_daemon NAME: log in to daemon NAME's local API as a portal client does
# (authorize_user with the [remote] account, admin / $SCEN_PW: [serve] auth =
# "portal"); SCEN_SESSION then holds the curl arguments of its session header,
# which `http` sends with every /api/jsonsql/ request (a restarted daemon has
# forgotten it: log in again).
SCEN_SESSION=()
login_daemon() {
  local url_var="${1}_URL" reply sid
  reply=$(curl -sS --max-time 20 -H 'Content-Type: application/json' --data-binary \
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"authorize_user\",\"params\":{\"username\":\"admin\",\"password\":\"$SCEN_PW\"}}" \
    "${!url_var}/api/jsonrpc/") || fail "login to daemon $1: curl failed"
  sid=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["result"]["session_id"])' <<<"$reply" 2>/dev/null) ||
    fail "login to daemon $1: $reply"
  SCEN_SESSION=(-H "Iptvportal-Authorization: sessionid=$sid")
}

# http_header NAME: that header's value in the last reply ("" when absent).
http_header() { tr -d '\r' <"$HTTP_HDR" | awk -v n="$(echo "$1" | tr 'A-Z' 'a-z')" -F': ' 'tolower($1) == n { v = $2 } END { print v }'; }

# wait_for SECONDS WHAT COMMAND...: poll COMMAND (every 50 ms for a second, then
# every 200 ms: a poll such as cmp_tables starts a dozen processes) until it
# succeeds; fails naming WHAT after SECONDS.
wait_for() {
  local secs=$1 what=$2 n=0
  local deadline=$((SECONDS + secs))
  shift 2
  until "$@"; do
    [ $SECONDS -ge $deadline ] && fail "gave up after $secs s waiting for: $what"
    n=$((n + 1))
    if [ "$n" -le 20 ]; then nap 0.05; else nap 0.2; fi
  done
}

# health_is URL WORD: /health says the portal is WORD (reachable|unreachable|unknown).
health_is() { curl -sS --max-time 5 "$1/health" 2>/dev/null | grep -q "\"portal\":\"$2\""; }

# status_ok URL TABLE...: /status shows a last_success for every TABLE.
status_ok() {
  local url=$1 s t
  shift
  s=$(curl -sS --max-time 5 "$url/status" 2>/dev/null) || return 1
  for t in "$@"; do
    python3 -c 'import json,sys; d=json.loads(sys.argv[1]); t=[x for x in d["tables"] if x["name"]==sys.argv[2]]; sys.exit(0 if t and t[0]["last_success"] else 1)' "$s" "$t" || return 1
  done
}
