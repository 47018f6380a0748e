#!/usr/bin/env bash
# Pulls that fail, and what they must leave behind (invariants 4, 5, 6, 7):
#   the portal killed -9 in the middle of a snapshot (while query and status
#   answer and a second writer is refused) and of an increment; malformed
#   replies (every reply, and one page in the middle of a snapshot); a session
#   expiring mid-snapshot; a flaky portal absorbed by retries; a forbidden
#   table; configuration and usage errors (exit 2); the portal changing while
#   a snapshot is interrupted.
# The cache stays queryable with what was synced before, an interrupted
# snapshot never shows, and the next run (portal back on the same data) ends
# equal to the portal. Kills are placed by the portal's own request counter
# (GET /_fake/stats) while a per-request latency holds the pull open.
source "$(dirname "$0")/lib.bash"
TABLES=(tv_channel subscriber tv_program)
scen_setup --pw 'e2e-failures-pw' --no-config -- --rows 20000 --seed 5
# write_config URL RETRIES: the agent's configuration for this portal.
write_config() {
  scen_config --url "$1" --retries "$2" <<TOML

[[table]]
name = "tv_channel"
strategy = "full"

[[table]]
name = "subscriber"
strategy = "incremental"
cursor = "updated_at"
chunk = 50
interval = "1ms"
sweep = "1ms"

[[table]]
name = "tv_program"
strategy = "incremental"
cursor = "updated_at"
chunk = 500
interval = "1ms"
TOML
}
write_config "$P_URL" 1
# covered: some of a tv_program snapshot is journaled and applied (its coverage),
# so a portal killed now leaves a snapshot to resume.
covered() { [ "$(sq "$CDB" "SELECT count(*) FROM _agent_snapshot_ranges WHERE tbl = 'tv_program'" 2>/dev/null ||
                 echo 0)" -gt 0 ]; }
# status_check PYTHON-EXPR [ERE]: on `status --json`; t = tables by name.
status_check() {
  agent status --json
  expect_rc 0 "status --json"
  cp "$O" "$SCEN_DIR/status.json"
  json_check "$SCEN_DIR/status.json" "[t for t in [{x['name']: x for x in d['tables']}] if $1]" "${2:-}" ||
    fail "status --json: $1: $(cat "$SCEN_DIR/status.json")"
}

agent --once
expect_rc 0 "first --once"
cmp_tables "$CDB" "$PDB" "${TABLES[@]}" || fail "cache differs after the first --once"
ok "first --once: cache equals the portal"

# 1 portal killed mid-snapshot ---------------------------------------------------------
before=$(sums)
portal_admin "$P_URL" /_fake/faults '{"latency_ms":150}' >/dev/null
base=$(portal_stat "$P_URL" requests)
BO=$SCEN_DIR/bg.out BE=$SCEN_DIR/bg.err
start_agent "$BO" "$BE" -c "$CFG" sync --full tv_program
wait_stat "$P_URL" requests $((base + 12))     # login, learning columns, count, max, then pages
# While it pulls: reads answer at once, a second writer is refused.
SYNC_PID=$AGENT_PID
agent query "SELECT count(*) FROM tv_program"
expect_rc 0 "query during a sync"
agent status --json
expect_rc 0 "status during a sync"
agent sync tv_channel
expect_rc 1 "a second writer during a sync"
grep -qi 'writer' "$E" || fail "the second writer's refusal does not say why: $(cat "$E")"
refusal=$(grep -m1 -i 'writer' "$E")
kill -0 "$SYNC_PID" 2>/dev/null || fail "the sync ended before the concurrent commands ran; raise the latency"
wait_for 30 "part of the tv_program snapshot journaled" covered
kill_portal "$P_PID"
wait_agent "$SYNC_PID"
[ "$rc" -eq 1 ] || fail "sync --full with the portal killed: exit $rc, expected 1: $(cat "$BE")"
grep -q 'tv_program' "$BE" || fail "the failure does not name the table: $(cat "$BE")"
grep -qE '^tv_program .*FAILED' "$BO" || fail "summary should mark tv_program FAILED: $(cat "$BO")"
[ "$(sums)" = "$before" ] || fail "an interrupted snapshot changed what readers see"
ok "during a sync, query and status answer and a second writer is refused (exit 1: '$refusal')"
ok "portal killed -9 mid-snapshot: exit 1, the half-loaded snapshot is invisible (checksums unchanged)"

agent query "SELECT count(*) FROM tv_program"
expect_rc 0 "query after the failure"
[ "$(tail -1 "$O")" = "$(sq "$PDB" "SELECT count(*) FROM tv_program")" ] || fail "query after the failure: $(cat "$O")"
status_check "t['tv_program']['last_error'] and t['tv_program']['snapshot_pending'] and not t['tv_channel']['last_error'] and d['remote']['reachable'] is False" \
  '"name":"tv_program".*"snapshot_pending":true'
ok "the cache stays queryable; status shows the error, the pending snapshot, the portal unreachable"

start_portal P --db "$PDB" --password "$PW"
write_config "$P_URL" 1
agent --once
expect_rc 0 "--once with the portal back"
[ "$(col tv_program 3)" = resumed ] || fail "the interrupted snapshot should resume: $(cat "$O")"
cmp_tables "$CDB" "$PDB" "${TABLES[@]}" || fail "cache differs after resuming"
status_check "not t['tv_program']['last_error'] and not t['tv_program']['snapshot_pending']"
ok "portal back on the same data: the snapshot resumes from its last page, cache equals the portal"

# 2 portal killed mid-increment --------------------------------------------------------
mutate --table subscriber --updates 400 --deletes 10 --seed 31
portal_admin "$P_URL" /_fake/faults '{"latency_ms":40}' >/dev/null
base=$(portal_stat "$P_URL" requests)
start_agent "$O" "$E" -c "$CFG" sync subscriber
wait_stat "$P_URL" requests $((base + 6))
kill_portal "$P_PID"
wait_agent "$AGENT_PID"
expect_rc 1 "sync with the portal killed mid-increment"
n=$(sq "$CDB" "SELECT count(*) FROM subscriber")
[ "$n" -ge 4990 ] || fail "subscriber lost rows in a failed increment: $n"
start_portal P --db "$PDB" --password "$PW"
write_config "$P_URL" 1
agent sync subscriber
expect_rc 0 "sync subscriber with the portal back"
cmp_tables "$CDB" "$PDB" "${TABLES[@]}" || fail "cache differs after the increment was retried"
ok "portal killed -9 mid-increment: exit 1; the next sync completes it and the cache equals the portal"

# 3 malformed replies --------------------------------------------------------------------
write_config "$P_URL" 0
mutate --table subscriber --updates 120 --inserts 30 --seed 32
before=$(sums)
# The login passes (one "ok" queued); every reply after it is cut mid-JSON.
portal_admin "$P_URL" /_fake/faults '{"latency_ms":0,"garbage_rate":1,"queue":["ok"]}' >/dev/null
agent sync subscriber
expect_rc 1 "sync with every reply malformed"
portal_admin "$P_URL" /_fake/faults '{"garbage_rate":0}' >/dev/null
why=$(grep -m1 -E 'error .*subscriber' "$E" || true)
grep -qE 'bad response' <<<"$why" && grep -qE 'line [0-9]+, column [0-9]+' <<<"$why" ||
  fail "the error does not name the problem: $(cat "$E")"
[ "$(sums)" = "$before" ] || fail "a malformed reply changed the cache"
ok "every reply malformed (retries 0): exit 1, error '${why#*error }', cache unchanged"

# How many requests does a full subscriber snapshot take? Then break the one in
# the middle. The count is deterministic: same data, same chunk, same sequence.
base=$(portal_stat "$P_URL" requests)
agent sync --full subscriber
expect_rc 0 "sync --full subscriber (counting requests)"
total=$(( $(portal_stat "$P_URL" requests) - base ))
[ "$total" -gt 20 ] || fail "a 100-page snapshot took only $total requests"
mutate --table subscriber --updates 50 --seed 33
before=$(sums)
okq=$(printf '"ok",%.0s' $(seq 1 $((total / 2))))
portal_admin "$P_URL" /_fake/faults "{\"queue\":[${okq}\"garbage\"]}" >/dev/null
agent sync --full subscriber
expect_rc 1 "sync --full with one malformed page"
grep -q 'subscriber' "$E" || fail "the malformed page's error does not name the table: $(cat "$E")"
[ "$(sums)" = "$before" ] || fail "a snapshot broken by a malformed page became visible"
status_check "t['subscriber']['snapshot_pending'] and t['subscriber']['last_error']"
agent sync subscriber
expect_rc 0 "sync after the malformed page"
cmp_tables "$CDB" "$PDB" "${TABLES[@]}" || fail "cache differs after recovering from a malformed page"
ok "one malformed page (request $((total / 2 + 1)) of $total) mid-snapshot: exit 1, nothing of it visible; next sync completes"

# 3b sessions that expire, a flaky portal ------------------------------------------------
write_config "$P_URL" 1
mutate --table tv_program --updates 500 --inserts 50 --deletes 20 --seed 34
okq=$(printf '"ok",%.0s' $(seq 1 12))
portal_admin "$P_URL" /_fake/faults "{\"queue\":[${okq}\"expire\"]}" >/dev/null
logins=$(portal_stat "$P_URL" logins)
agent sync --full tv_program
expect_rc 0 "sync --full with the session expired mid-snapshot"
[ $(( $(portal_stat "$P_URL" logins) - logins )) -ge 2 ] || fail "the agent did not log in again after the session expired"
cmp_tables "$CDB" "$PDB" "${TABLES[@]}" || fail "cache differs after a session expired mid-snapshot"
ok "the session expires mid-snapshot: the agent logs in again and completes (exit 0)"

write_config "$P_URL" 8
mutate --table subscriber --updates 300 --inserts 30 --deletes 15 --seed 35
mutate --table tv_program --updates 300 --inserts 15 --seed 36   # no sweep for tv_program here (6h)
portal_admin "$P_URL" /_fake/faults '{"error_rate":0.08,"reset_rate":0.04,"truncate_rate":0.04,"garbage_rate":0.04}' >/dev/null
faults=$(portal_stat "$P_URL" faults)
agent sync
expect_rc 0 "sync against a flaky portal (retries 8)"
portal_admin "$P_URL" /_fake/faults '{"error_rate":0,"reset_rate":0,"truncate_rate":0,"garbage_rate":0}' >/dev/null
nf=$(( $(portal_stat "$P_URL" faults) - faults ))
[ "$nf" -gt 0 ] || fail "no fault was injected"
cmp_tables "$CDB" "$PDB" "${TABLES[@]}" || fail "cache differs after a sync through transient faults"
ok "a flaky portal (500s, resets, truncated and malformed replies; $nf faults): retries absorb them, cache equals the portal"

# 4 forbidden table ----------------------------------------------------------------------
write_config "$P_URL" 1
before=$(sums)
portal_admin "$P_URL" /_fake/faults '{"forbid":["subscriber"]}' >/dev/null
agent sync
expect_rc 1 "sync with subscriber forbidden"
grep -qE '^subscriber .*forbidden' "$O" || fail "subscriber not reported forbidden: $(cat "$O")"
grep -qE '^tv_channel .* ok$' "$O" && grep -qE '^tv_program .* ok$' "$O" || fail "the other tables should be ok: $(cat "$O")"
[ "$(table_checksum "$CDB" subscriber)" = "$(grep '^subscriber ' <<<"$before")" ] || fail "a forbidden table's rows changed"
status_check "t['subscriber']['forbidden'] and not t['tv_channel']['forbidden'] and not t['tv_program']['forbidden']" \
  '"name":"subscriber"[^}]*"forbidden":true'
agent status
grep -E '^subscriber ' "$O" | grep -q forbidden || fail "status (text) does not say forbidden: $(cat "$O")"
ok "forbidden table: reported forbidden, the others ok, exit 1; status shows it"

agent --once
grep -qE '^subscriber .*(skipped|forbidden)' "$O" || fail "--once should skip the forbidden table: $(cat "$O")"
portal_admin "$P_URL" /_fake/faults '{"forbid":[]}' >/dev/null
agent sync subscriber
expect_rc 0 "sync subscriber once allowed again"
status_check "not t['subscriber']['forbidden']"
cmp_tables "$CDB" "$PDB" "${TABLES[@]}" || fail "cache differs after the table was allowed again"
ok "--once skips a forbidden table; sync retries it and clears the mark when the portal allows it"

# 5 configuration and usage errors ---------------------------------------------------------
before=$(sums)
BAD=$SCEN_DIR/bad.toml
sed 's/^chunk = 50$/chunky = 50/' "$CFG" >"$BAD"
line=$(grep -n '^chunky' "$BAD" | cut -d: -f1)
run_agent "$O" "$E" -c "$BAD" --once
expect_rc 2 "unknown key"
grep -q "bad.toml:$line:1" "$E" && grep -q chunky "$E" || fail "unknown key message: $(cat "$E")"
sed '/^cursor = "updated_at"$/d' "$CFG" >"$BAD"
run_agent "$O" "$E" -c "$BAD" --once
expect_rc 2 "incremental without cursor"
grep -q 'bad.toml:' "$E" && grep -q cursor "$E" || fail "missing cursor message: $(cat "$E")"
sed 's/^interval = "1ms"$/interval = "5 minutes"/' "$CFG" >"$BAD"
run_agent "$O" "$E" -c "$BAD" sync
expect_rc 2 "bad duration"
grep -q interval "$E" || fail "bad duration message: $(cat "$E")"
{ cat "$CFG"; printf '\n[[table]]\nname = "subscriber"\n'; } >"$BAD"
run_agent "$O" "$E" -c "$BAD" sync
expect_rc 2 "a [[table]] defined twice"
grep -q 'bad.toml:' "$E" && grep -q subscriber "$E" || fail "table defined twice message: $(cat "$E")"
ok "config errors exit 2 naming file:line:column and the key (unknown key, no cursor, bad duration, table defined twice)"

agent sync nosuch
expect_rc 2 "an unconfigured table"
grep -q nosuch "$E" || fail "unknown table not named: $(cat "$E")"
agent sync --bogus
expect_rc 2 "sync --bogus"
agent --once --bogus
expect_rc 2 "--once --bogus"
[ "$(sums)" = "$before" ] || fail "a refused command changed the cache"
ok "usage errors exit 2 (unknown table, unknown option); nothing changed"

# 6 the portal changes while a snapshot is interrupted ---------------------------------
# Rows already journaled by the interrupted snapshot change on the portal before
# it resumes. Resuming must not lose them: after the resumed snapshot and one
# increment, the cache equals the portal, as after an uninterrupted run.
write_config "$P_URL" 1
portal_admin "$P_URL" /_fake/faults '{"latency_ms":40}' >/dev/null
start_agent "$O" "$E" -c "$CFG" sync --full tv_program
wait_for 30 "part of the tv_program snapshot journaled" covered   # then the portal dies
kill_portal "$P_PID"
wait_agent "$AGENT_PID"
expect_rc 1 "sync --full with the portal killed (second time)"
mutate --table tv_program --updates 400 --seed 38
start_portal P --db "$PDB" --password "$PW"
write_config "$P_URL" 1
agent sync tv_program
expect_rc 0 "resuming the snapshot"
[ "$(col tv_program 3)" = resumed ] || fail "the interrupted snapshot should resume: $(cat "$O")"
agent sync tv_program
expect_rc 0 "the increment after the resumed snapshot"
cmp_tables "$CDB" "$PDB" "${TABLES[@]}" ||
  fail "rows changed on the portal while the snapshot was interrupted were lost (resumed snapshot + increment)"
ok "changes made while a snapshot was interrupted are caught after it resumes (no lost updates)"

agent sync subscriber subscriber
expect_rc 2 "a table named twice on the command line"
grep -q subscriber "$E" || fail "the repeated table is not named: $(cat "$E")"
ok "a table named twice on the command line: exit 2, naming it"
echo "$pass_count passed, 0 failed"
