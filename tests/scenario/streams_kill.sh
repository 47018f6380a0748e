#!/usr/bin/env bash
# A snapshot read by parallel key-range streams survives kill -9 (issue 15):
# `iptv-agent sync` of ~100k tv_program rows from a portal answering after
# 10 ms is killed once cache.db's coverage (_agent_snapshot_ranges: the key
# ranges its SNAPSHOT_RANGE records proved read) is not empty; the rerun
# resumes that snapshot ("resumed snapshot" in its summary and its log),
# reads only the rows not yet journaled, and ends with cache.db equal to the
# portal and no coverage left.
source "$(dirname "$0")/lib.bash"
scen_size ROWS 300000 100000 30000
scen_setup --pw 'e2e-streams-pw' --retries 0 -- --rows "$ROWS" --seed 15 --latency-ms 10 <<TOML

[[table]]
name = "tv_program"
strategy = "full"
chunk = 250
streams = 4
TOML

start_agent "$SCEN_DIR/first.out" "$SCEN_DIR/first.err" -c "$CFG" sync
# Some ranges journaled and applied; the snapshot not over (no END yet).
covered() {
  [ "$(sq "$CDB" "SELECT count(*) FROM _agent_snapshot_ranges WHERE tbl = 'tv_program'" 2>/dev/null || echo 0)" -gt 0 ]
}
wait_for 20 "a range of the snapshot in cache.db" covered
kill -9 "$AGENT_PID" 2>/dev/null || true
wait_agent "$AGENT_PID"
[ "$rc" = 137 ] || fail "the first sync ended (exit $rc) before it was killed: make the portal slower"
ok "sync killed -9 with part of the snapshot journaled"

# What the killed sync journaled, applied: the rerun must read exactly the rest.
agent replay
expect_rc 0 "replay after kill -9"
done_rows=$(sq "$CDB" "SELECT pending_rows FROM _agent_tables WHERE name = 'tv_program'")
[ "$done_rows" -gt 0 ] && [ "$done_rows" -lt "$ROWS" ] || fail "pending rows after kill -9: $done_rows of $ROWS"
agent sync
expect_rc 0 "the sync after kill -9"
line=$(grep -E '^tv_program +full +resumed snapshot +[0-9]+' "$O") ||
  fail "the rerun should resume the snapshot: $(cat "$O")"
grep -q 'resuming snapshot' "$E" || fail "the log should say it resumes: $(cat "$E")"
rows=$(awk '{ print $5 }' <<<"$line")
[ "$rows" = $((ROWS - done_rows)) ] ||
  fail "the resumed snapshot read $rows rows; $done_rows of $ROWS were journaled before"
ok "the rerun resumed the snapshot and read the $rows rows of $ROWS not journaled before the kill"

cmp_table "$CDB" "$PDB" tv_program || fail "cache.db differs from the portal after the resumed snapshot"
[ "$(sq "$CDB" "SELECT count(*) FROM _agent_snapshot_ranges")" = 0 ] || fail "coverage left after the snapshot's END"
ok "cache.db equals the portal; the coverage is cleared"
echo "streams_kill: $pass_count checks passed"
