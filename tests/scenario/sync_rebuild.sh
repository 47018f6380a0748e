#!/usr/bin/env bash
# cache.db is a function of the journal (invariants 1, 2): after syncs, portal
# mutations (updates, inserts, deletes found by sweeps, a same-updated_at
# batch, lookback re-reads), on-demand gets, a forced second snapshot and two
# schema changes (configured columns; a column added on the portal), over a
# journal of many small segments, `replay --rebuild` recreates tables with
# identical checksums, and so does replaying into a deleted cache.db. Marks come
# back too: a sync after the rebuild continues incrementally and ends equal to
# the portal.
source "$(dirname "$0")/lib.bash"
TABLES=(tv_channel subscriber terminal tv_program)
scen_setup --pw 'e2e-rebuild-pw' --no-config -- --rows 8000 --seed 9
# write_config TV_CHANNEL_COLUMNS_LINE
write_config() {
  scen_config <<TOML
segment_size = "64KiB"

[[table]]
name = "tv_channel"
strategy = "full"
ttl = "1ms"
$1

[[table]]
name = "subscriber"
strategy = "incremental"
cursor = "updated_at"
chunk = 200
interval = "1ms"
lookback = "5m"
sweep = "1ms"

[[table]]
name = "terminal"
strategy = "on_demand"

[[table]]
name = "tv_program"
strategy = "incremental"
cursor = "updated_at"
chunk = 500
interval = "1ms"
sweep = "1ms"
TOML
}
write_config 'columns = ["id", "name", "url"]'
# marks: rows and high-water mark per table from status --json (derived from the journal).
marks() {
  agent status --json
  expect_rc 0 "status --json"
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import json,sys
for t in json.load(open(sys.argv[1]))["tables"]:
    print(t["name"], t["rows"], t["mark_cursor"], t["mark_key"], t["schema_hash"])' "$O"
  else
    grep -oE '"name":"[^"]*","strategy":"[^"]*","rows":[0-9]+,"mark_cursor":[^,]*,"mark_key":[^,]*' "$O"
  fi
}

agent --once
expect_rc 0 "first --once"
mutate --table subscriber --updates 150 --inserts 40 --deletes 25 --seed 41
mutate --table tv_program --updates 600 --same-ts --seed 42
mutate --table tv_program --updates 200 --inserts 100 --deletes 50 --seed 43
agent sync
expect_rc 0 "sync after mutations"
for k in 100 200 300; do
  agent get terminal "id=$(sq "$PDB" "SELECT id FROM terminal ORDER BY id LIMIT 1 OFFSET $k")"
  expect_rc 0 "get terminal #$k"
done
mutate --table subscriber --updates 80 --deletes 5 --seed 44
agent sync --full subscriber
expect_rc 0 "sync --full subscriber"
write_config ''
mutate --table tv_channel --updates 30 --seed 45
mutate --table terminal --updates 400 --seed 46
agent --once
expect_rc 0 "--once with tv_channel's columns changed"
grep -qE '^tv_channel .*schema changed' "$O" || fail "tv_channel's new column list should be reported: $(cat "$O")"
mutate --table subscriber --updates 60 --inserts 10 --deletes 5 --same-ts --seed 47
# The portal's tv_program gains a column (restart: the portal reads its catalog
# at start); the introspected table must be re-snapshotted and say so.
stop_portal "$P_PID"
sqlite3 "$PDB" "ALTER TABLE tv_program ADD COLUMN rating REAL; UPDATE tv_program SET rating = (id % 50) / 10.0 + 0.25 WHERE id % 3 = 0"
start_portal P --db "$PDB" --password "$PW"
write_config ''
agent --once
expect_rc 0 "last --once"
grep -qE '^tv_program .*schema changed' "$O" || fail "tv_program's new column should be reported: $(cat "$O")"
[ "$(sq "$CDB" "SELECT count(*) FROM pragma_table_info('tv_program')")" = 12 ] || fail "tv_program should have 12 columns now"
cmp_tables "$CDB" "$PDB" tv_channel subscriber tv_program || fail "cache differs from the portal before the rebuild"
cmp_table "$CDB" "$PDB" terminal "id IN (SELECT id FROM main.terminal)" 2>/dev/null ||
  echo "# note: cached terminal rows are as fetched (terminal changed on the portal since)" >&2
nseg=$(find "$DATA/journal" -name '*.seg' | wc -l)
[ "$nseg" -ge 3 ] || fail "expected a journal of several segments, found $nseg"
ok "history built: 5 pulls (lookback re-reads), 3 gets, forced snapshot, two schema changes (config, portal); cache equals the portal; $nseg journal segments"

before=$(sums)
marks_before=$(marks)
agent replay --rebuild
expect_rc 0 "replay --rebuild"
after=$(sums)
[ "$after" = "$before" ] || fail "$(printf 'checksums differ after rebuild:\nbefore:\n%s\nafter:\n%s' "$before" "$after")"
ok "replay --rebuild: identical checksums for all ${#TABLES[@]} tables ($(echo "$before" | awk '{s += $2} END {print s}') rows)"

[ "$(marks)" = "$marks_before" ] || fail "$(printf 'rows/marks differ after rebuild:\nbefore:\n%s\nafter:\n%s' "$marks_before" "$(marks)")"
ok "rows, high-water marks and schema hashes are rebuilt as they were"

agent replay
expect_rc 0 "replay (nothing pending)"
[ "$(sums)" = "$before" ] || fail "a second replay changed the cache"
agent replay --rebuild
expect_rc 0 "replay --rebuild again"
[ "$(sums)" = "$before" ] || fail "a second rebuild differs"
rm -f "$CDB" "$CDB-wal" "$CDB-shm"
agent replay
expect_rc 0 "replay into a deleted cache.db"
[ "$(sums)" = "$before" ] || fail "replaying into a fresh cache.db differs"
ok "replay is idempotent; rebuilding twice, or replaying into a deleted cache.db, gives the same tables"

agent journal verify
expect_rc 0 "journal verify"
ok "journal verify: clean"

mutate --table subscriber --updates 70 --inserts 20 --deletes 8 --seed 48
mutate --table tv_program --updates 90 --deletes 9 --seed 49
agent sync subscriber tv_program
expect_rc 0 "sync after the rebuild"
[ "$(col subscriber 3)" != snapshot ] && [ "$(col tv_program 3)" != snapshot ] ||
  fail "after a rebuild the marks should allow increments, not snapshots: $(cat "$O")"
cmp_tables "$CDB" "$PDB" tv_channel subscriber tv_program || fail "cache differs after syncing on a rebuilt cache"
ok "after the rebuild, increments and sweeps continue from the rebuilt marks; cache equals the portal"
echo "$pass_count passed, 0 failed"
