#!/usr/bin/env bash
# The three sync strategies end to end against the fake portal (its data in a
# file, so the cache can be compared with it row for row):
#   tv_channel  full (configured columns)     subscriber  incremental, chunk 50
#   terminal    on_demand (get)               tv_program  incremental, chunk 100
# --once, then portal mutations (updates, inserts, deletes, and a batch of
# hundreds of rows sharing one updated_at across page boundaries), sync with a
# sweep on every pull; the cache must equal the portal exactly, each changed row
# read once. Also: pages capped below the chunk, the portal changing while a
# snapshot runs, status --json, query --json/--csv/JOIN and refused writes, get
# (fetch, cache, absent, portal down, by a non-key column), and a data-only
# change in the rows introspection samples.
source "$(dirname "$0")/lib.bash"
scen_setup --pw 'e2e-strategies-pw' -- --rows 5000 --seed 11 <<TOML

[[table]]
name = "tv_channel"
strategy = "full"
columns = ["id", "name", "url", "is_tv", "languages", "params", "updated_at"]

[[table]]
name = "subscriber"
strategy = "incremental"
cursor = "updated_at"
chunk = 50
interval = "1ms"
sweep = "1ms"

[[table]]
name = "terminal"
strategy = "on_demand"

[[table]]
name = "tv_program"
strategy = "incremental"
cursor = "updated_at"
chunk = 100
interval = "1ms"
sweep = "1ms"
TOML
pcount() { sq "$PDB" "SELECT count(*) FROM $1"; }
ccount() { sq "$CDB" "SELECT count(*) FROM $1"; }

# 1 ------------------------------------------------------------------------------
agent --once
expect_rc 0 "--once (first pull)"
cmp_tables "$CDB" "$PDB" tv_channel subscriber tv_program || fail "cache differs from the portal after --once"
[ "$(col tv_channel 3)" = snapshot ] && [ "$(col subscriber 3)" = snapshot ] && [ "$(col tv_program 3)" = snapshot ] ||
  fail "first --once should snapshot every pulled table: $(cat "$O")"
[ "$(col tv_program 4)" = 5000 ] && [ "$(col subscriber 4)" = "$(pcount subscriber)" ] ||
  fail "rows pulled per table: $(cat "$O")"
ok "--once: full and incremental tables equal the portal (tv_channel $(ccount tv_channel), subscriber $(ccount subscriber), tv_program $(ccount tv_program) rows)"

tcount=$(sq "$CDB" "SELECT count(*) FROM terminal" 2>/dev/null || echo 0)
[ "$tcount" = 0 ] || fail "on_demand terminal was pulled ahead: $tcount rows"
grep -qE '^terminal +on_demand' "$O" || fail "terminal missing from the summary: $(cat "$O")"
ok "--once pulls nothing ahead for the on_demand table"

# 2 ------------------------------------------------------------------------------
agent --once
expect_rc 0 "--once (nothing changed)"
[ "$(col tv_channel 3)" != snapshot ] || fail "tv_channel (ttl 1h) re-pulled although not due: $(cat "$O")"
[ "$(col subscriber 3)" != snapshot ] && [ "$(col tv_program 3)" != snapshot ] ||
  fail "incremental tables should pull increments after their snapshot: $(cat "$O")"
cmp_tables "$CDB" "$PDB" tv_channel subscriber tv_program || fail "cache differs after a pull with no changes"
ok "a second --once: full table not due, incremental tables pull increments, cache unchanged"

# 3 ------------------------------------------------------------------------------
old_sub=$(sq "$PDB" "SELECT max(updated_at) FROM subscriber")
old_prog=$(sq "$PDB" "SELECT max(updated_at) FROM tv_program")
mutate --table subscriber --updates 200 --inserts 100 --deletes 60 --seed 21
mutate --table subscriber --updates 320 --same-ts --seed 22
mutate --table tv_program --updates 300 --inserts 150 --deletes 80 --seed 23
mutate --table tv_program --updates 450 --inserts 20 --same-ts --seed 24
same=$(sq "$PDB" "SELECT count(*) FROM subscriber WHERE updated_at = (SELECT max(updated_at) FROM subscriber)")
[ "$same" -ge 300 ] || fail "the same-ts batch should share one updated_at: $same rows"
if cmp_table "$CDB" "$PDB" subscriber 2>/dev/null; then fail "mutations did not change the portal"; fi
want_sub=$(sq "$PDB" "SELECT count(*) FROM subscriber WHERE updated_at > '$old_sub'")
want_prog=$(sq "$PDB" "SELECT count(*) FROM tv_program WHERE updated_at > '$old_prog'")
agent sync
expect_rc 0 "sync after mutations"
cmp_tables "$CDB" "$PDB" tv_channel subscriber tv_program || fail "cache differs from the portal after sync"
ok "sync after updates, inserts, deletes and a same-updated_at batch of $same rows (chunk 50): cache equals the portal"

[ "$(col subscriber 4)" = "$want_sub" ] && [ "$(col tv_program 4)" = "$want_prog" ] ||
  fail "increments should read each changed row once: subscriber $(col subscriber 4) (want $want_sub), tv_program $(col tv_program 4) (want $want_prog): $(cat "$O")"
ok "increments read each changed row exactly once across page boundaries ($want_sub + $want_prog rows)"

[ "$(col subscriber 5)" = 60 ] && [ "$(col tv_program 5)" = 80 ] ||
  fail "the sweep should delete 60 subscribers and 80 programmes: $(cat "$O")"
ok "the sweep journals the portal's deletions (60 + 80)"

# 3b -----------------------------------------------------------------------------
# A portal that caps pages below the chunk: short pages are not the end.
portal_admin "$P_URL" /_fake/faults '{"page_cap":37}' >/dev/null
old_sub=$(sq "$PDB" "SELECT max(updated_at) FROM subscriber")
mutate --table subscriber --updates 300 --inserts 20 --deletes 10 --seed 25
mutate --table subscriber --updates 90 --same-ts --seed 26
want_sub=$(sq "$PDB" "SELECT count(*) FROM subscriber WHERE updated_at > '$old_sub'")
agent sync subscriber
expect_rc 0 "sync with pages capped at 37 rows"
portal_admin "$P_URL" /_fake/faults '{"page_cap":0}' >/dev/null
cmp_tables "$CDB" "$PDB" subscriber || fail "cache differs after a sync with capped pages"
[ "$(col subscriber 4)" = "$want_sub" ] && [ "$(col subscriber 5)" = 10 ] ||
  fail "capped pages: rows $(col subscriber 4) (want $want_sub), deleted $(col subscriber 5) (want 10): $(cat "$O")"
ok "pages capped below the chunk (37 < 50): each changed row read once, deletions swept, cache equals the portal"

# The portal changes while a snapshot is being read (latency holds it open;
# admin routes answer at once): the next sync catches every change.
portal_admin "$P_URL" /_fake/faults '{"latency_ms":15}' >/dev/null
base=$(portal_stat "$P_URL" requests)
start_agent "$SCEN_DIR/snap.out" "$SCEN_DIR/snap.err" -c "$CFG" sync --full tv_program
wait_stat "$P_URL" requests $((base + 25))
portal_admin "$P_URL" /_fake/mutate '{"table":"tv_program","updates":250,"inserts":40,"deletes":30,"seed":77}' >/dev/null
kill -0 "$AGENT_PID" 2>/dev/null || fail "the snapshot ended before the portal changed; raise the latency"
wait_agent "$AGENT_PID"
portal_admin "$P_URL" /_fake/faults '{"latency_ms":0}' >/dev/null
[ "$rc" -eq 0 ] || fail "sync --full during portal changes: exit $rc: $(cat "$SCEN_DIR/snap.err")"
agent sync tv_program
expect_rc 0 "sync after a snapshot overlapped by changes"
cmp_tables "$CDB" "$PDB" tv_program || fail "changes made during a snapshot were lost"
ok "changes made on the portal while a snapshot ran (updates, inserts, deletes) are all caught by the next sync"

# 4 ------------------------------------------------------------------------------
agent status --json
expect_rc 0 "status --json"
cp "$O" "$SCEN_DIR/status.json"
sub_rows=$(pcount subscriber) prog_rows=$(pcount tv_program)
sub_max=$(sq "$PDB" "SELECT max(updated_at) FROM subscriber") prog_max=$(sq "$PDB" "SELECT max(updated_at) FROM tv_program")
json_check "$SCEN_DIR/status.json" "
{'tv_channel', 'subscriber', 'terminal', 'tv_program'} <= {x['name'] for x in d['tables']}
and {t['name']: t for t in d['tables']}['subscriber']['rows'] == $sub_rows
and {t['name']: t for t in d['tables']}['tv_program']['rows'] == $prog_rows
and {t['name']: t for t in d['tables']}['tv_channel']['rows'] == 2000
and {t['name']: t for t in d['tables']}['subscriber']['mark_cursor'] == '$sub_max'
and {t['name']: t for t in d['tables']}['tv_program']['mark_cursor'] == '$prog_max'
and {t['name']: t for t in d['tables']}['subscriber']['strategy'] == 'incremental'
and {t['name']: t for t in d['tables']}['terminal']['strategy'] == 'on_demand'
and not any(t['forbidden'] for t in d['tables'])
and d['journal']['applied_seq'] > 0" \
  "\"name\":\"subscriber\",\"strategy\":\"incremental\",\"rows\":$sub_rows,\"mark_cursor\":\"$sub_max\"" ||
  fail "status --json: $(cat "$SCEN_DIR/status.json")"
ok "status --json parses and shows rows ($sub_rows, $prog_rows) and high-water marks ($sub_max)"

agent status
expect_rc 0 "status"
for t in tv_channel subscriber terminal tv_program; do grep -q "^$t " "$O" || fail "status lacks $t: $(cat "$O")"; done
ok "status (text) lists every configured table"

# 5 ------------------------------------------------------------------------------
# cname TABLE CID: the cache's name of a column (introspected tables say Field_N).
cname() { sq "$CDB" "SELECT name FROM pragma_table_info('$1') WHERE cid = $2"; }
agent query --json "SELECT * FROM subscriber ORDER BY id LIMIT 5"
expect_rc 0 "query --json"
[ "$(wc -l <"$O")" -eq 5 ] || fail "query --json: 5 lines expected: $(cat "$O")"
want_ids=$(sq "$PDB" "SELECT id FROM subscriber ORDER BY id LIMIT 5" | tr '\n' ' ')
if command -v python3 >/dev/null 2>&1; then
  got_ids=$(python3 -c 'import json,sys; print(" ".join(str(json.loads(l)["id"]) for l in open(sys.argv[1])), end=" ")' "$O") ||
    fail "query --json lines do not parse: $(cat "$O")"
else
  got_ids=$(grep -oE '^\{"id":[0-9]+' "$O" | cut -d: -f2 | tr '\n' ' ')
fi
[ "$got_ids" = "$want_ids" ] || fail "query --json ids: got '$got_ids', portal '$want_ids'"
ok "query --json: one JSON object per row, 64-bit ids exact"

c2=$(cname subscriber 1) c10=$(cname subscriber 9)
agent query --csv "SELECT id, \"$c2\", \"$c10\" FROM subscriber ORDER BY id LIMIT 40"
expect_rc 0 "query --csv"
head -1 "$O" | grep -qx "id,$c2,$c10" || fail "query --csv header: $(head -1 "$O")"
if command -v python3 >/dev/null 2>&1; then
  python3 - "$O" "$PDB" <<'PY' || fail "query --csv rows differ from the portal's"
import csv, sqlite3, sys
rows = list(csv.reader(open(sys.argv[1], newline='')))[1:]
want = sqlite3.connect(sys.argv[2]).execute(
    "SELECT id, username, comment FROM subscriber ORDER BY id LIMIT 40").fetchall()
want = [[str(a), b or '', c or ''] for a, b, c in want]
sys.exit(0 if rows == want else 1)
PY
fi
ok "query --csv: header and rows (quotes, commas, newlines) as the portal has them"

n=$(sq "$PDB" "SELECT count(*) FROM tv_program JOIN tv_channel ON tv_program.channel_id = tv_channel.id WHERE tv_channel.is_tv")
cid=$(cname tv_program 3)
agent query "SELECT count(*) FROM tv_program JOIN tv_channel ON tv_program.\"$cid\" = tv_channel.id WHERE tv_channel.is_tv"
expect_rc 0 "query join"
[ "$(tail -1 "$O")" = "$n" ] || fail "join over cached tables: $(cat "$O"), portal says $n"
ok "query: a JOIN over two cached tables agrees with the portal ($n rows)"

before=$(table_checksums "$CDB" subscriber tv_program)
agent query "DELETE FROM subscriber"
expect_rc 1 "query DELETE"
grep -qi 'read' "$E" || fail "refused write not explained: $(cat "$E")"
agent query "SELECT 1; DELETE FROM tv_program"
expect_rc 1 "query with a second statement"
agent query "DROP TABLE subscriber"
expect_rc 1 "query DROP"
agent query "SELECT nosuch FROM subscriber"
expect_rc 1 "query SQL error"
[ "$(table_checksums "$CDB" subscriber tv_program)" = "$before" ] || fail "a refused query changed the cache"
ok "query refuses writes and second statements (exit 1), SQL errors exit 1; nothing changed"

# 6 ------------------------------------------------------------------------------
tid=$(sq "$PDB" "SELECT id FROM terminal ORDER BY id LIMIT 1 OFFSET 123")
agent get terminal "id=$tid"
expect_rc 0 "get terminal (miss, fetched)"
[ "$(wc -l <"$O")" -eq 1 ] || fail "get: one row expected: $(cat "$O")"
json_check "$O" "d['id'] == $tid" "^\\{\"id\":$tid[,}]" || fail "get printed: $(cat "$O")"
cmp_table "$CDB" "$PDB" terminal "id = $tid" || fail "the fetched terminal differs from the portal's"
[ "$(ccount terminal)" = 1 ] || fail "get should cache exactly the row asked for: $(ccount terminal) rows"
ok "get terminal id=$tid: fetched from the portal, printed as a JSON object, cached"

missing=$(( $(sq "$PDB" "SELECT max(id) FROM terminal") + 1000 ))
agent get terminal "id=$missing"
expect_rc 3 "get terminal (absent everywhere)"
sid=$(sq "$PDB" "SELECT id FROM subscriber ORDER BY id DESC LIMIT 1")
agent get subscriber "id=$sid"
expect_rc 0 "get subscriber (cached)"
json_check "$O" "d['id'] == $sid" "^\\{\"id\":$sid[,}]" || fail "get subscriber printed: $(cat "$O")"
agent get subscriber "id=$missing"
expect_rc 3 "get subscriber (absent)"
agent get nosuch "id=1"
expect_rc 2 "get unconfigured table"
agent get terminal "id"
expect_rc 2 "get without COLUMN=VALUE"
ok "get: absent row exit 3 (on_demand and incremental), usage errors exit 2"

# A value that names a column is a value: the portal reads a string naming a
# column in `eq` as that column, which matched (and cached) every row.
before=$(table_checksums "$CDB" terminal tv_channel subscriber)
agent get terminal "model=model"
expect_rc 3 "get terminal model=model (a value, not the column)"
[ ! -s "$O" ] || fail "get model=model printed rows: $(head -c 300 "$O")"
[ "$(ccount terminal)" = 1 ] || fail "get model=model cached $(ccount terminal) terminals"
agent get terminal "serial=serial"
expect_rc 3 "get terminal serial=serial"
[ "$(ccount terminal)" = 1 ] || fail "get serial=serial cached $(ccount terminal) terminals"
agent get terminal "firmware=firmware"
expect_rc 2 "get terminal firmware=firmware (a column only the portal could know, and it does not)"
grep -qF 'unknown column "firmware"' "$E" || fail "get firmware=firmware said: $(cat "$E")"
[ "$(ccount terminal)" = 1 ] || fail "get firmware=firmware cached $(ccount terminal) terminals"
agent get terminal "id=id"
expect_rc 2 "get terminal id=id (not an integer)"
grep -qF 'terminal.id holds integers: "id" is not one' "$E" || fail "get id=id said: $(cat "$E")"
agent get terminal "id=abc"
expect_rc 2 "get terminal id=abc"
grep -qF 'terminal.id holds integers: "abc" is not one' "$E" || fail "get id=abc said: $(cat "$E")"
agent get tv_channel "nosuch=1"
expect_rc 2 "get tv_channel nosuch=1 (unknown column of a configured table)"
grep -qF 'table tv_channel has no column "nosuch"; its columns: id, name, url, is_tv, languages, params, updated_at' "$E" ||
  fail "get nosuch=1 said: $(cat "$E")"
agent get subscriber "nosuch=1"
expect_rc 2 "get subscriber nosuch=1 (unknown column of an introspected table)"
grep -qE 'table subscriber has no column "nosuch"; its columns: id, .*updated_at' "$E" || fail "get subscriber nosuch=1 said: $(cat "$E")"
agent get subscriber "id=12x"
expect_rc 2 "get subscriber id=12x"
agent get tv_channel "name=name"
expect_rc 3 "get tv_channel name=name"
[ "$(table_checksums "$CDB" terminal tv_channel subscriber)" = "$before" ] || fail "a refused or empty get changed the cache"
ok "get: a value naming a column matches only that value (model=model, serial=serial: exit 3, nothing cached); unknown column or a non-integer for an integer column: exit 2 naming table, column and the valid columns"

stop_portal "$P_PID"
agent get terminal "id=$tid"
expect_rc 0 "get terminal with the portal down"
json_check "$O" "d['id'] == $tid" "^\\{\"id\":$tid[,}]" || fail "cached get printed: $(cat "$O")"
other=$(sq "$PDB" "SELECT id FROM terminal ORDER BY id LIMIT 1 OFFSET 124")
agent get terminal "id=$other"
expect_rc 1 "get an uncached terminal with the portal down"
agent query "SELECT count(*) FROM subscriber"
expect_rc 0 "query with the portal down"
[ "$(tail -1 "$O")" = "$sub_rows" ] || fail "query with the portal down: $(cat "$O")"
ok "portal down: a cached get still answers (exit 0), an uncached one exits 1, queries work"

# 7 ------------------------------------------------------------------------------
# get by a column other than the key, named as the portal names it, on a table
# whose columns were learned by introspection (the cache calls it Field_N).
start_portal P --db "$PDB" --password "$PW"
sed -i "s#^url = .*#url = \"$P_URL\"#" "$CFG"
mac=$(sq "$PDB" "SELECT mac_addr FROM terminal ORDER BY id LIMIT 1 OFFSET 200")
agent get terminal "mac_addr=$mac"
expect_rc 0 "get terminal mac_addr=$mac (a miss, fetched)"
grep -qF "$mac" "$O" || fail "get by mac_addr printed: $(cat "$O")"
agent get terminal "mac_addr=$mac"
expect_rc 0 "get terminal mac_addr=$mac again (cached)"
ok "get by a non-key column of an introspected on_demand table: fetched, printed, then served from the cache"

# 8 ------------------------------------------------------------------------------
# A data-only change: the first 100 programmes (the rows introspection samples)
# lose their age_rating (a nullable column). The portal's columns are the same,
# so this is an ordinary increment, not a "schema changed" re-snapshot.
sqlite3 "$PDB" "UPDATE tv_program SET age_rating = NULL, updated_at = (SELECT datetime(max(updated_at), '+1 second') FROM tv_program) WHERE id IN (SELECT id FROM tv_program ORDER BY id LIMIT 100)"
agent sync tv_program
expect_rc 0 "sync after a data-only change in the sampled rows"
[ "$(col tv_program 3)" != snapshot ] && ! grep -q 'schema changed' "$O" ||
  fail "NULLs in the sampled rows were taken for a schema change: $(grep -h 'schema\|^tv_program' "$O" "$E")"
cmp_tables "$CDB" "$PDB" tv_program || fail "cache differs after the data-only change"
ok "values turning NULL in the sampled rows are an increment, not a schema change"
echo "$pass_count passed, 0 failed"
