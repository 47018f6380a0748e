#!/usr/bin/env bash
# Crash anywhere, same result (invariants 4, 5): the agent pulls four tables
# (tv_program ROWS rows in pages of 500, media with ids beyond 2^53) and is
# killed -9 at pseudo-random moments (seeded: RANDOM=seed) KILLS times,
# restarted each time, alternating `sync --full` and `--once --force`. Meanwhile
# a reader polls count(*) of every table on cache.db read-only: since the portal
# does not change, every count it sees must be 0/absent or exactly the portal's
# (a snapshot is never seen half-loaded), and once complete a table stays so
# (a swap never shows it missing). Every restart must succeed or be
# killed (exit 0 or 137, never a refusal to start). Then one clean run: the
# cache equals the portal and `journal verify` is clean. The reader runs until
# it has seen that final state.
# KILLS and ROWS: 10 and 20000 by default, 6 and 10000 under ASan, 32 and 100000
# with SCEN_LONG=1; CRASH_KILLS, CRASH_ROWS and CRASH_SEED set them.
source "$(dirname "$0")/lib.bash"
SEED=${CRASH_SEED:-20240611}
scen_size KILLS 32 10 6
scen_size ROWS 100000 20000 10000
KILLS=${CRASH_KILLS:-$KILLS} ROWS=${CRASH_ROWS:-$ROWS}
TABLES=(tv_channel media subscriber tv_program)
scen_setup --pw 'e2e-crash-pw' --no-config -- --rows "$ROWS" --seed 3
# write_config FILE DIR
write_config() {
  scen_config --dir "$2" "$1" <<TOML
segment_size = "1MiB"

[[table]]
name = "tv_channel"
strategy = "full"
chunk = 200

[[table]]
name = "media"
strategy = "full"
chunk = 200

[[table]]
name = "subscriber"
strategy = "incremental"
cursor = "updated_at"
chunk = 250
interval = "1ms"
sweep = "1ms"

[[table]]
name = "tv_program"
strategy = "incremental"
cursor = "updated_at"
chunk = 500
interval = "1ms"
sweep = "1ms"
TOML
}
write_config "$CFG" "$DATA"
declare -A want
for t in "${TABLES[@]}"; do want[$t]=$(sq "$PDB" "SELECT count(*) FROM $t"); done
now_ms() { local t; t=$(date +%s%N); echo $((t / 1000000)); }

# How long does each command take here? Kill moments are drawn from [0, span):
# for `sync --full` the longer of a first and a second pull, for `--once
# --force` (snapshots of the full tables, increments of the others) its own time.
write_config "$SCEN_DIR/calib.toml" "$SCEN_DIR/calib"
span_full=50 span_once=50
for cmd in "sync --full" "sync --full" "--once --force"; do
  t0=$(now_ms)
  # shellcheck disable=SC2086
  run_agent "$O" "$E" -c "$SCEN_DIR/calib.toml" $cmd
  expect_rc 0 "calibration run ($cmd)"
  t1=$(( $(now_ms) - t0 ))
  if [ "$cmd" = "sync --full" ]; then [ "$t1" -le "$span_full" ] || span_full=$t1
  else [ "$t1" -le "$span_once" ] || span_once=$t1; fi
done
rm -rf "$SCEN_DIR/calib"
ok "calibration: kill moments drawn from 0..${span_full} ms (sync --full: ${want[tv_program]}+${want[subscriber]}+${want[media]}+${want[tv_channel]} rows) and 0..${span_once} ms (--once --force)"

# The reader: one read-only connection per poll, a count per table per line.
OBS=$SCEN_DIR/observations
# An error (no such table, no cache.db yet) is one line "- ERR message".
reader() {
  local sql="" t res line err
  for t in "${TABLES[@]}"; do sql+="SELECT '$t', count(*) FROM $t;"$'\n'; done
  while [ ! -e "$SCEN_DIR/stop" ]; do
    res=$(sqlite3 -batch -noheader -separator ' ' -cmd '.timeout 5000' "file:$CDB?mode=ro" 2>&1 <<<"$sql" || true)
    err=""
    while IFS= read -r line; do
      case $line in
        [A-Z]*) [ -z "$err" ] || echo "- ERR$err"; err=" $line" ;;   # "Error: ...", "Parse error ..."
        *[!a-z_0-9\ ]*) err+=" $line" ;;                              # the error's context lines
        ?*) echo "$line" ;;                                           # "TABLE COUNT"
      esac
    done <<<"$res"
    [ -z "$err" ] || echo "- ERR$err"
    nap 0.005
  done >"$OBS"
}
reader &
READER_PID=$!
SCEN_PIDS+=("$READER_PID")

RANDOM=$SEED
kills=0 finished=0 runs=0 torn=0 resumed=0
while [ "$kills" -lt "$KILLS" ]; do
  runs=$((runs + 1))
  [ "$runs" -le $((KILLS * 4)) ] || fail "only $kills of $runs runs were killed before finishing"
  if [ $((runs % 3)) -eq 0 ]; then cmd=(--once --force) span=$span_once; else cmd=(sync --full) span=$span_full; fi
  d=$((RANDOM % span))
  start_agent "$O" "$E" -c "$CFG" "${cmd[@]}"
  sleep "$((d / 1000)).$(printf '%03d' $((d % 1000)))"
  kill -9 "$AGENT_PID" 2>/dev/null || true
  wait_agent "$AGENT_PID"
  n=$(grep -ci 'torn' "$E" || true)
  torn=$((torn + n))
  n=$(grep -ci 'resuming snapshot' "$E" || true)
  resumed=$((resumed + n))
  case $rc in
    137) kills=$((kills + 1)) ;;
    0) finished=$((finished + 1)) ;;
    *) cat "$E" >&2; fail "run $runs (${cmd[*]}, after $kills kills) exited $rc instead of running" ;;
  esac
done
ok "survived $kills kill -9s in $runs runs ($finished finished before their kill; $resumed snapshots resumed; $torn torn-tail warnings)"

run_agent "$O" "$E" -c "$CFG" --once --force
expect_rc 0 "the clean run after the kills"
cmp_tables "$CDB" "$PDB" "${TABLES[@]}" || fail "cache differs from the portal after the crashes"
ok "one clean run: every table equals the portal (no lost rows, no duplicates)"

# Let the reader see the final state at least once, then stop it.
deadline=$((SECONDS + 30))
until grep -qx "tv_program ${want[tv_program]}" "$OBS"; do
  [ $SECONDS -lt $deadline ] || fail "the reader never saw the loaded tv_program"
  nap 0.01
done
touch "$SCEN_DIR/stop"
wait "$READER_PID" || true
forget_pid "$READER_PID"

# Allowed: absent or 0 until a table was first seen complete; complete from then on.
bad=$(awk -v w="tv_channel=${want[tv_channel]} media=${want[media]} subscriber=${want[subscriber]} tv_program=${want[tv_program]}" '
  BEGIN { n = split(w, kv, " "); for (i = 1; i <= n; i++) { split(kv[i], p, "="); want[p[1]] = p[2] } }
  $2 == want[$1] { seen[$1] = 1; next }
  seen[$1] { print "after being complete:", $0; next }
  $2 == "ERR" && /no such table|unable to open/ { next }
  $2 == "ERR" { print; next }
  $2 != 0 { print "partial:", $0 }' "$OBS")
[ -z "$bad" ] || fail "$(printf 'the reader saw tables neither absent, empty nor complete:\n%s' "$(echo "$bad" | sort | uniq -c | head -20)")"
full=$(awk -v t=tv_program -v w="${want[tv_program]}" '$1 == t && $2 == w' "$OBS" | wc -l)
polls=$(awk '$1 == "tv_program"' "$OBS" | wc -l)
ok "the reader's $polls polls per table saw each table absent or empty until complete, then always complete ($full saw all ${want[tv_program]} tv_program rows)"

run_agent "$O" "$E" -c "$CFG" journal verify
expect_rc 0 "journal verify"
ok "journal verify: clean ($(find "$DATA/journal" -name '*.seg' | wc -l) segments)"
echo "$pass_count passed, 0 failed"
