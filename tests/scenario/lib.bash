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
  mkfifo "$fifo"
  "$IA_FAKE_PORTAL" "$@" >"$fifo" &
  local pid=$!
  SCEN_PIDS+=("$pid")
  local url
  read -r url <"$fifo" || fail "portal $name did not start"
  printf -v "${name}_URL" '%s' "$url"
  printf -v "${name}_PID" '%s' "$pid"
}

stop_portal() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

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
