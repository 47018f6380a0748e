#!/usr/bin/env bash
# Issue 11: the daemon never compacted the journal, so every snapshot cycle
# added a whole copy of the table until the disk filled. Here the daemon runs
# with 64 KiB segments and retain = 0s; each cycle asks for a snapshot of a
# full table (POST /sync/TABLE) and waits, by polling /status, for that pull
# and the compaction it triggers. Every few cycles an incremental table gets
# new rows too: its pages would hold the journal back for good, so compaction
# re-bases it with a full pull. Asserted: after the first cycles the journal
# never grows past a fixed bound, while what was written in total (kept +
# freed) grows with every cycle; status (daemon and CLI) reports the
# compactions; and `replay --rebuild` from the compacted journal gives the
# same tables, equal to the portal.
source "$(dirname "$0")/lib.bash"
scen_setup --pw 'e2e-compact-pw' -- --rows 3000 --seed 11 <<TOML
segment_size = "64KiB"
retain = "0s"
compact_interval = "1h"

[serve]
listen = "127.0.0.1:0"

[[table]]
name = "tv_program"
strategy = "full"
ttl = "1h"

[[table]]
name = "tv_channel"
strategy = "incremental"
cursor = "updated_at"
interval = "1h"
sweep = "0s"
TOML
start_daemon D "$SCEN_DIR/daemon.log" -c "$CFG" run
ST=$SCEN_DIR/status.json
# Polled often: plain grep/sed on the status JSON (a python start per poll is
# seconds on a loaded machine).
status() { curl -sS --max-time 10 -o "$ST" "$D_URL/status"; }
# sched TABLE KEY: a member of TABLE's /status schedule entry (from the last status).
sched() { grep -o "{\"table\":\"$1\"[^}]*}" "$ST" | grep -o "\"$2\":[a-z0-9]*" | cut -d: -f2; }
# jfield KEY: a scalar member of /status "journal" (from the last status).
jfield() { grep -o '"journal":{[^{}]*' "$ST" | grep -o "\"$1\":[a-z0-9]*" | cut -d: -f2; }
# lfield KEY: a member of /status journal.last_compaction (from the last status).
lfield() { grep -o '"last_compaction":{[^}]*' "$ST" | grep -o "\"$1\":[0-9]*" | cut -d: -f2; }
# settled TABLE PULLS COMPACTIONS: the table has at least PULLS pulls (a
# compaction may add a full pull of its own), none running, and at least
# COMPACTIONS compactions finished with none running.
settled() {
  status || return 1
  [ "$(sched "$1" pulls)" -ge "$2" ] && [ "$(sched "$1" running)" = false ] &&
    [ "$(jfield compactions)" -ge "$3" ] && [ "$(jfield running)" = false ]
}
quiet() {
  status || return 1
  ! grep -q '"running":true' "$ST"
}
wait_for 60 "first pulls" settled tv_program 1 1
wait_for 60 "first pull of tv_channel" settled tv_channel 1 0
ok "first pulls done; the daemon compacted after the snapshot"

CYCLES=${CYCLES:-9}
max_segs=0 max_bytes=0 sub_pulls=1
for c in $(seq 1 $CYCLES); do
  status
  p=$(sched tv_program pulls)
  n=$(jfield compactions)
  if [ $((c % 3)) = 0 ]; then
    # new tv_channel rows: incremental pages that only a later snapshot of
    # tv_channel supersedes (the daemon takes one when they hold the journal)
    portal_admin "$P_URL" /_fake/mutate "{\"table\":\"tv_channel\",\"updates\":30,\"inserts\":10,\"seed\":$c}" >/dev/null
    sp=$(sched tv_channel pulls)
    http POST "$D_URL/sync/tv_channel" "{}"
    [ "$HTTP_CODE" = 202 ] || fail "sync tv_channel: HTTP $HTTP_CODE"
    wait_for 60 "cycle $c: tv_channel pull" settled tv_channel $((sp + 1)) 0
  fi
  portal_admin "$P_URL" /_fake/mutate "{\"table\":\"tv_program\",\"updates\":50,\"seed\":$c}" >/dev/null
  http POST "$D_URL/sync/tv_program" "{}"
  [ "$HTTP_CODE" = 202 ] || fail "sync tv_program: HTTP $HTTP_CODE"
  wait_for 60 "cycle $c: snapshot and compaction" settled tv_program $((p + 1)) $((n + 1))
  # a re-base of tv_channel may be running or queued: let it and its compaction finish
  wait_for 60 "cycle $c: quiet" quiet
  segs=$(jfield segments)
  bytes=$(jfield bytes)
  echo "# cycle $c: $segs segments, $bytes bytes, freed so far $(jfield freed_total)"
  [ "$segs" -gt "$max_segs" ] && max_segs=$segs
  [ "$bytes" -gt "$max_bytes" ] && max_bytes=$bytes
  # The bound (README "Journal compaction", retain 0): two copies of every
  # table, plus the snapshot just taken, plus two segments of slack (the one
  # being written, and a segment's share of a neighbour's records).
  snap=$(lfield snapshot_bytes)
  bound=$((3 * snap + 2 * 65536))
  [ "$bytes" -le "$bound" ] || fail "cycle $c: $bytes bytes kept, above the bound $bound (one copy of every table: $snap)"
done
ok "the journal stayed within $max_segs segments / $max_bytes bytes (bound: 3 copies of every table + 2 segments) over $CYCLES snapshot cycles"

status
written=$(($(jfield bytes) + $(jfield freed_total)))
[ "$written" -gt $((max_bytes * 2)) ] ||
  fail "only $written bytes were written in all: the cycles did not test growth (max kept $max_bytes)"
ok "without compaction the journal would hold $written bytes (more than twice the most it held)"
grep -q "taking a full snapshot of tv_channel" "$SCEN_DIR/daemon.log" ||
  fail "tv_channel's incremental pages were never re-based: $(grep -i journal "$SCEN_DIR/daemon.log" | tail -3)"
ok "an incremental table holding the journal was re-based with a full pull"
json_check "$ST" "d['journal']['last_compaction']['deleted'] >= 0 and d['journal']['last_error'] is None and d['journal']['last_compaction']['kept_bytes'] <= 2 * d['journal']['last_compaction']['snapshot_bytes'] + 65536 * 3" '"last_error":null' ||
  fail "status: $(cat "$ST")"
ok "GET /status shows the journal's size and the last compaction"

# While the daemon holds the journal, a CLI pull names it and the way through it.
run_agent "$SCEN_DIR/busy.out" "$SCEN_DIR/busy.err" -c "$CFG" sync tv_program
expect_rc 1 "sync while the daemon runs"
grep -q "another writer has it open (process $D_PID)" "$SCEN_DIR/busy.err" ||
  fail "the lock's holder is not named: $(cat "$SCEN_DIR/busy.err")"
grep -qF "curl -X POST $D_URL/sync/TABLE" "$SCEN_DIR/busy.err" ||
  fail "no hint to ask the daemon: $(cat "$SCEN_DIR/busy.err")"
ok "a CLI pull while the daemon runs names the daemon's pid and suggests POST /sync/TABLE"

sums_before=$(table_checksums "$CDB" tv_program tv_channel)
kill -TERM "$D_PID"
wait_exit "$D_PID" 30
[ "$rc" = 0 ] || fail "daemon exit $rc"
run_agent "$SCEN_DIR/st.out" "$SCEN_DIR/st.err" -c "$CFG" status
grep -q "last compacted .*: [0-9]* segments ([0-9]* bytes) freed" "$SCEN_DIR/st.out" ||
  fail "status does not say when it last compacted: $(cat "$SCEN_DIR/st.out")"
run_agent "$SCEN_DIR/sj.out" "$SCEN_DIR/sj.err" -c "$CFG" status --json
json_check "$SCEN_DIR/sj.out" "d['journal']['last_compaction']['at'] != '' and d['journal']['segments'] > 0"
ok "iptv-agent status shows the journal's size and the last compaction"

run_agent "$SCEN_DIR/rb.out" "$SCEN_DIR/rb.err" -c "$CFG" replay --rebuild
expect_rc 0 "replay --rebuild"
[ "$(table_checksums "$CDB" tv_program tv_channel)" = "$sums_before" ] || fail "rebuild changed the tables"
cmp_table "$CDB" "$PDB" tv_program || fail "tv_program differs from the portal after the rebuild"
cmp_table "$CDB" "$PDB" tv_channel || fail "tv_channel differs from the portal after the rebuild"
ok "replay --rebuild from the compacted journal gives the same tables, equal to the portal"

# --once compacts too (a cron job has no daemon to do it).
run_agent "$SCEN_DIR/o.out" "$SCEN_DIR/o.err" --log-level info -c "$CFG" --once --force
expect_rc 0 "--once --force"
grep -q "journal compacted: " "$SCEN_DIR/o.err" || fail "--once did not compact: $(cat "$SCEN_DIR/o.err")"
ok "--once compacts the journal when it finishes"
echo "daemon_compact: $pass_count checks passed"
