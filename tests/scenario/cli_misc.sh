#!/usr/bin/env bash
# The command line's smaller promises (issue 11): global options after the
# command; `status` only reads (no cache yet: exit 3, nothing created) and lists
# imported tables a host does not configure; query output that stays valid
# (BLOBs as "\x..", CR escaped in TSV, --json with --csv refused); the sync
# summary counts rows a snapshot dropped and `sync --full` says it snapshots;
# one repeated connect error said once; import refusing a delta without a cache
# (creating nothing) and saying "already applied" for a delta applied before.
source "$(dirname "$0")/lib.bash"
scen_setup --pw 'cli-misc-pw' --retries 2 -- --rows 300 --seed 5 <<TOML
[[table]]
name = "tv_channel"
[[table]]
name = "subscriber"
strategy = "incremental"
cursor = "updated_at"
interval = "1h"
sweep = "0s"
TOML

# 1 -- status before anything: reads only ----------------------------------------
run_agent "$O" "$E" status -c "$CFG"
expect_rc 3 "status with no cache"
grep -q 'no cache yet' "$E" && grep -qF "$DATA" "$E" || fail "no-cache message: $(cat "$E")"
[ ! -e "$DATA" ] || fail "status created $DATA: $(ls -la "$DATA")"
sed "s#^dir = .*#dir = \"$SCEN_DIR/typo/data\"#" "$CFG" >"$SCEN_DIR/typo.toml"
run_agent "$O" "$E" -c "$SCEN_DIR/typo.toml" status --json
expect_rc 3 "status --json with a mistyped dir"
[ ! -e "$SCEN_DIR/typo" ] && [ ! -s "$O" ] || fail "status with a mistyped dir created it or printed a status"
ok "status without a cache: exit 3 naming the directory, creates nothing (not even the directory)"

# 2 -- global options after the command --------------------------------------------
run_agent "$O" "$E" --once -c "$CFG" --log-format json
expect_rc 0 "--once -c CFG --log-format json"
grep -q '^{.*"msg"' "$E" || head -c 300 "$E" | grep -q '^{' || fail "--log-format after --once not applied: $(head -3 "$E")"
run_agent "$O" "$E" status -c "$CFG"
expect_rc 0 "status -c CFG"
grep -qE '^tv_channel +full' "$O" || fail "status -c: $(cat "$O")"
run_agent "$O" "$E" query "SELECT count(*) AS n FROM tv_channel" --config "$CFG" --log-level warn
expect_rc 0 "query SQL --config CFG"
run_agent "$O" "$E" query -c "$CFG" -- "SELECT '-c' AS flag"
expect_rc 0 "query after --"
[ "$(sed -n 2p "$O")" = "-c" ] || fail "an argument after -- was taken as an option: $(cat "$O")"
run_agent "$O" "$E" status -c
expect_rc 2 "status -c without a path"
run_agent "$O" "$E" status -c "$CFG" --log-level loud
expect_rc 2 "status --log-level loud"
ok "global options work after the command (-c, --config, --log-level, --log-format), up to --; bad ones exit 2"

# 3 -- query output ------------------------------------------------------------------
run_agent "$O" "$E" -c "$CFG" query --json "SELECT x'00ff' AS b, 'a' || char(13) || 'b' AS t"
expect_rc 0 "query --json blob"
json_check "$O" 'd == {"b": "\\x00ff", "t": "a\rb"}' || fail "query --json blob: $(od -c "$O" | head)"
run_agent "$O" "$E" -c "$CFG" query "SELECT x'00ff' AS b, 'a' || char(13) || 'b' AS t"
expect_rc 0 "query TSV"
[ "$(sed -n 2p "$O")" = "$(printf '\\x00ff\ta\\rb')" ] || fail "TSV row: $(od -c "$O")"
! tr -d '\n' <"$O" | grep -q $'\r' || fail "TSV passed a raw CR through"
run_agent "$O" "$E" -c "$CFG" query --csv "SELECT x'41ff' AS b"
[ "$(sed -n 2p "$O")" = '\x41ff' ] || fail "CSV blob: $(od -c "$O")"
run_agent "$O" "$E" -c "$CFG" query --json --csv "SELECT 1"
expect_rc 2 "query --json --csv"
grep -q 'exclude each other' "$E" || fail "--json --csv message: $(cat "$E")"
ok "query: BLOBs as \"\\x..\" (valid JSON), CR escaped in TSV, --json with --csv is a usage error (exit 2)"

# 4 -- sync: a snapshot's deletions, and what --full logs ----------------------------
before=$(sq "$DATA/cache.db" "SELECT count(*) FROM subscriber")
"$IA_FAKE_PORTAL" mutate --db "$PDB" --table subscriber --deletes 7 --seed 3 >/dev/null || fail "mutate"
run_agent "$O" "$E" -c "$CFG" sync --full subscriber
expect_rc 0 "sync --full subscriber"
[ "$(col subscriber 3)" = snapshot ] && [ "$(col subscriber 5)" = 7 ] || fail "sync --full summary: $(cat "$O")"
[ "$(sq "$DATA/cache.db" "SELECT count(*) FROM subscriber")" = $((before - 7)) ] || fail "7 rows should be gone"
grep -q 'table subscriber: pulling (incremental, --full: snapshot)' "$E" || fail "--full log: $(cat "$E")"
ok "sync --full: the summary counts the 7 rows the snapshot dropped; the log says it snapshots"

# 5 -- import: refused without a cache (creating nothing); "already applied" ----------
run_agent "$O" "$E" -c "$CFG" export --snapshot "$SCEN_DIR/base.snap"
expect_rc 0 "export snapshot"
"$IA_FAKE_PORTAL" mutate --db "$PDB" --table subscriber --updates 5 --seed 4 >/dev/null || fail "mutate 2"
run_agent "$O" "$E" -c "$CFG" sync
expect_rc 0 "sync"
run_agent "$O" "$E" -c "$CFG" export --delta --base "$SCEN_DIR/base.snap" "$SCEN_DIR/d1.delta"
expect_rc 0 "export delta"
B=$SCEN_DIR/b
printf '[storage]\ndir = "%s/data"\n' "$B" >"$SCEN_DIR/b.toml"
mkdir -p "$B"
run_agent "$O" "$E" -c "$SCEN_DIR/b.toml" import "$SCEN_DIR/d1.delta"
expect_rc 1 "a delta into an empty directory"
grep -q 'import a snapshot first' "$E" || fail "delta without a cache: $(cat "$E")"
[ -z "$(ls -A "$B")" ] || fail "a refused import created: $(ls -R "$B")"
ok "a delta into an empty directory is refused and creates nothing (no data dir, cache.db or journal/)"

run_agent "$O" "$E" -c "$SCEN_DIR/b.toml" import "$SCEN_DIR/base.snap"
expect_rc 0 "import base"
run_agent "$O" "$E" -c "$SCEN_DIR/b.toml" import "$SCEN_DIR/d1.delta"
expect_rc 0 "import delta"
sum1=$(sq "$B/data/cache.db" "SELECT count(*), total(id) FROM subscriber")
run_agent "$O" "$E" -c "$SCEN_DIR/b.toml" import "$SCEN_DIR/d1.delta"
expect_rc 0 "the same delta again"
grep -q 'already applied' "$O" || fail "re-applied delta: $(cat "$O" "$E")"
[ "$(sq "$B/data/cache.db" "SELECT count(*), total(id) FROM subscriber")" = "$sum1" ] || fail "re-apply changed rows"
ok "the same delta again: \"already applied\", exit 0, nothing changed"

# 6 -- status of a host without [[table]]: the imported tables ------------------------
run_agent "$O" "$E" -c "$SCEN_DIR/b.toml" status
expect_rc 0 "status on the import-only host"
subs=$(sq "$B/data/cache.db" "SELECT count(*) FROM subscriber")
grep -qE "^subscriber +incremental +$subs " "$O" && grep -qE '^tv_channel +full' "$O" || fail "import-only status: $(cat "$O")"
grep -q 'imported; not in' "$O" || fail "imported tables not marked: $(cat "$O")"
run_agent "$O" "$E" -c "$SCEN_DIR/b.toml" status --json
json_check "$O" 'sorted(t["name"] for t in d["tables"]) == ["subscriber", "tv_channel"] and not any(t["configured"] for t in d["tables"])' ||
  fail "import-only status --json: $(cat "$O")"
run_agent "$O" "$E" -c "$SCEN_DIR/b.toml" get subscriber id="$(sq "$B/data/cache.db" "SELECT min(id) FROM subscriber")"
expect_rc 0 "get on an imported table"
run_agent "$O" "$E" -c "$SCEN_DIR/b.toml" get subscriber id=-5
expect_rc 3 "get miss on an imported table"
ok "a host without [[table]] lists the tables its cache holds ($subs subscribers) and get reads them"

# 7 -- a repeated connect error is said once ------------------------------------------
stop_portal "$P_PID"
run_agent "$O" "$E" -c "$CFG" sync --full tv_channel
expect_rc 1 "sync with the portal down"
grep -q 'gave up after 3 tries' "$E" || fail "portal down: $(cat "$E")"
! grep -q 'try 1:' "$E" || fail "one error repeated per try: $(cat "$E")"
run_agent "$O" "$E" -c "$CFG" status
err_line=$(grep -E '^tv_channel ' "$O")
[ "$(grep -o 'Connection refused\|Couldn.t connect' <<<"$err_line" | wc -l)" = 1 ] || fail "status error column: $err_line"
ok "a connect error repeated on every try is said once with the count"
echo "$pass_count passed, 0 failed"
