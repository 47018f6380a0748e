#!/usr/bin/env bash
# Two tiers on loopback: fake portal -> hub agent -> edge agent over HTTP
# (issue 6). The hub pulls the portal and serves /export/snapshot and
# /export/delta behind a token; the edge has no [remote] and no portal
# password at all, only [upstream]. The edge bootstraps from the hub's snapshot
# and keeps current with deltas: after portal mutations (updates, inserts,
# deletions) it converges to the hub, table checksums equal. With the hub
# killed the edge keeps answering (stale); the hub comes back on the same port
# with its kept exports and the edge goes on with deltas, not a new snapshot.
# Also: the export routes' refusals (401 without the token, 410 for an unknown
# base, 304 for the current one), a wrong hub token (exit 1, named, never
# printed), writes on an edge refused, [upstream] with [[table]] refused.
source "$(dirname "$0")/lib.bash"
HUB=$SCEN_DIR/hub EDGE=$SCEN_DIR/edge
TABLES=(tv_channel subscriber tv_program)
scen_setup --pw 'e2e-tier-pw' --timeout 5s --no-config -- --rows 20000 --seed 41
export HUB_TOKEN='hub-token-7c1e9a' EDGE_TOKEN_FOR_HUB='hub-token-7c1e9a'

hub_config() {  # hub_config LISTEN
  scen_config --dir "$HUB" "$SCEN_DIR/hub.toml" <<TOML

[serve]
listen = "$1"
token_env = "HUB_TOKEN"
export_keep = 3

[[table]]
name = "tv_channel"
strategy = "full"

[[table]]
name = "subscriber"
strategy = "incremental"
cursor = "updated_at"
interval = "300ms"
sweep = "300ms"

[[table]]
name = "tv_program"
strategy = "incremental"
cursor = "updated_at"
interval = "300ms"
sweep = "300ms"
chunk = 5000
TOML
}
edge_config() {  # edge_config FILE TOKEN_ENV
  cat >"$1" <<TOML
[upstream]
url = "$H_URL"
token_env = "$2"
interval = "300ms"

[storage]
dir = "$EDGE"

[serve]
listen = "127.0.0.1:0"
tokenless_writes = "loopback"   # so the write below meets the edge refusal
auth = "none"                   # an edge has no portal account to log in with
TOML
}
db_sums() { local db=$1 t; for t in "${TABLES[@]}"; do table_checksum "$db" "$t"; done; }
edge_equals_hub() { [ "$(db_sums "$EDGE/cache.db" 2>/dev/null)" = "$(db_sums "$HUB/cache.db")" ]; }
hub_equals_portal() { cmp_tables "$HUB/cache.db" "$PDB" "${TABLES[@]}" 2>/dev/null; }
bearer=(-H "Authorization: Bearer $HUB_TOKEN")

# 1 the hub pulls the portal -------------------------------------------------------
hub_config "127.0.0.1:0"
start_daemon H "$SCEN_DIR/hub.log" -c "$SCEN_DIR/hub.toml" run
HPORT=${H_URL##*:}
wait_for 60 "hub equals the portal" hub_equals_portal
ok "hub pulled ${TABLES[*]} from the portal"

# 2 the export routes --------------------------------------------------------------
http GET "$H_URL/export/snapshot"
[ "$HTTP_CODE" = 401 ] || fail "/export/snapshot without the token: HTTP $HTTP_CODE"
http GET "$H_URL/export/snapshot" "" "${bearer[@]}"
[ "$HTTP_CODE" = 200 ] || fail "/export/snapshot: HTTP $HTTP_CODE $(cat "$HTTP_BODY")"
SNAP_ID=$(http_header X-Export-Id)
[ ${#SNAP_ID} = 32 ] || fail "no X-Export-Id (got '$SNAP_ID')"
cp "$HTTP_BODY" "$SCEN_DIR/hub.snap"
[ -f "$HUB/exports/$SNAP_ID.snap" ] || fail "the hub does not keep $SNAP_ID under exports/"
http GET "$H_URL/export/delta?base=0123456789abcdef0123456789abcdef" "" "${bearer[@]}"
[ "$HTTP_CODE" = 410 ] && grep -q "not kept here" "$HTTP_BODY" || fail "unknown base: HTTP $HTTP_CODE $(cat "$HTTP_BODY")"
http GET "$H_URL/export/delta?base=../../cache.db" "" "${bearer[@]}"
[ "$HTTP_CODE" = 410 ] && grep -q "not an export id" "$HTTP_BODY" || fail "path as base: HTTP $HTTP_CODE"
http GET "$H_URL/export/delta" "" "${bearer[@]}"
[ "$HTTP_CODE" = 400 ] || fail "delta without base: HTTP $HTTP_CODE"
http POST "$H_URL/export/snapshot" "{}" "${bearer[@]}"
[ "$HTTP_CODE" = 405 ] || fail "POST /export/snapshot: HTTP $HTTP_CODE"
ok "export routes: 401 without token, 200 with X-Export-Id, 410 unknown or non-id base, 400, 405"

# The served file is a valid export: it imports into a fresh cache with the CLI.
cat >"$SCEN_DIR/file.toml" <<TOML
[storage]
dir = "$SCEN_DIR/fileimport"
TOML
run_agent "$O" "$E" -c "$SCEN_DIR/file.toml" import "$SCEN_DIR/hub.snap"
expect_rc 0 "import of the served snapshot"
grep -q "imported snapshot $SNAP_ID" "$O" || fail "import said: $(cat "$O")"
ok "the snapshot served over HTTP imports with the CLI"

# 3 an edge with a wrong token: refused, named, token never printed ------------------
export WRONG_TOKEN='wrong-token-55aa'
edge_config "$SCEN_DIR/wrong.toml" WRONG_TOKEN
run_agent "$O" "$E" -c "$SCEN_DIR/wrong.toml" --once
expect_rc 1 "edge --once with a wrong token"
grep -q "HTTP 401" "$E" && grep -q "token_env" "$E" || fail "wrong token message: $(cat "$E")"
! grep -q "$WRONG_TOKEN\|$HUB_TOKEN" "$O" "$E" || fail "a token was printed"
[ "$(sq "$EDGE/cache.db" "SELECT count(*) FROM sqlite_master WHERE name = 'subscriber'")" = 0 ] ||
  fail "the refused edge has data"
ok "wrong hub token: exit 1, HTTP 401 named with the token_env hint, no token printed"

# 4 the edge bootstraps from the snapshot, then follows deltas -----------------------
edge_config "$SCEN_DIR/edge.toml" EDGE_TOKEN_FOR_HUB
EDGE_ENV=(env -u SCEN_PW -u IPTVPORTAL_PASSWORD -u HUB_TOKEN)
start_edge() {
  local fifo="$SCEN_DIR/edge.fifo"
  rm -f "$fifo"; mkfifo "$fifo"
  "${EDGE_ENV[@]}" "$IA_AGENT" -c "$SCEN_DIR/edge.toml" --log-level debug run >"$fifo" 2>>"$SCEN_DIR/edge.log" </dev/null &
  X_PID=$!
  SCEN_PIDS+=("$X_PID")
  exec {X_FD}<"$fifo"
  read -r -t 60 -u "$X_FD" X_URL || fail "edge printed no URL: $(tail -5 "$SCEN_DIR/edge.log")"
}
start_edge
wait_for 60 "edge equals hub" edge_equals_hub
grep -q "upstream: snapshot" "$SCEN_DIR/edge.log" || fail "edge did not start from a snapshot"
ok "edge bootstrapped from the hub's snapshot (no portal credentials): checksums equal"

SELECT='{"jsonrpc":"2.0","id":1,"method":"select","params":{"data":["id","updated_at"],"from":"subscriber","order_by":"id","limit":50}}'
http POST "$X_URL/api/jsonsql/" "$SELECT"
[ "$HTTP_CODE" = 200 ] && grep -q '"result":\[\[' "$HTTP_BODY" || fail "edge select: HTTP $HTTP_CODE $(cat "$HTTP_BODY")"
cp "$HTTP_BODY" "$SCEN_DIR/edge.sel"
http POST "$H_URL/api/jsonsql/" "$SELECT" "${bearer[@]}"
cmp -s "$HTTP_BODY" "$SCEN_DIR/edge.sel" || fail "edge and hub answer the same select differently"
http GET "$X_URL/status"
json_check "$HTTP_BODY" 'd["upstream"]["at"] and len(d["tables"]) >= 3 and all(t["strategy"]=="upstream" for t in d["tables"])' ||
  fail "edge /status: $(cat "$HTTP_BODY")"
run_agent "$O" "$E" -c "$SCEN_DIR/edge.toml" status
expect_rc 0 "status on the edge"
grep -q "^upstream: $H_URL; at [0-9a-f]\{32\}" "$O" && grep -q "^tv_program  *upstream  *[1-9]" "$O" || fail "edge status: $(cat "$O")"
# get reads the hub's tables from the edge's cache; a miss is plain not-found
# (an edge has no portal to fetch it from).
CID=$(sq "$EDGE/cache.db" "SELECT min(id) FROM tv_channel")
run_agent "$O" "$E" -c "$SCEN_DIR/edge.toml" get tv_channel id="$CID"
expect_rc 0 "get on the edge"
json_check "$O" "d['id'] == $CID" || fail "edge get: $(cat "$O")"
run_agent "$O" "$E" -c "$SCEN_DIR/edge.toml" get tv_channel id=-42
expect_rc 3 "get miss on the edge"
grep -q "no portal" "$E" || fail "edge get miss: $(cat "$E")"
run_agent "$O" "$E" -c "$SCEN_DIR/edge.toml" get no_such_table id=1
expect_rc 2 "get of a table the edge does not hold"
ok "get on an edge reads the hub's tables from the cache (found: exit 0; a miss: exit 3; unknown table: exit 2)"
run_agent "$O" "$E" -c "$SCEN_DIR/edge.toml" sync
expect_rc 2 "sync on the edge"
grep -q "is an edge of" "$E" || fail "edge sync: $(cat "$E")"
ok "edge serves the same JSON-RPC answer as the hub; /status and \`status\` list the hub's tables and its upstream; \`sync\` is refused"

for round in 1 2; do
  portal_admin "$P_URL" /_fake/mutate '{"table":"subscriber","updates":40,"inserts":15,"deletes":10,"seed":'$round'}' >/dev/null
  portal_admin "$P_URL" /_fake/mutate '{"table":"tv_program","updates":200,"inserts":50,"deletes":25,"seed":'$round'}' >/dev/null
  wait_for 60 "hub converges after mutation $round" hub_equals_portal
  wait_for 60 "edge converges after mutation $round" edge_equals_hub
done
grep -q "upstream: delta" "$SCEN_DIR/edge.log" || fail "edge never applied a delta"
[ "$(grep -c "upstream: snapshot" "$SCEN_DIR/edge.log")" = 1 ] || fail "edge took more than one snapshot"
ok "two rounds of portal mutations (updates, inserts, deletions): edge equals hub through deltas only"

AT=$(sq "$EDGE/cache.db" "SELECT at_id FROM _agent_export")
http GET "$H_URL/export/delta?base=$AT" "" "${bearer[@]}"
case "$HTTP_CODE" in
  304|200) ;;   # 200: the hub pulled again since (its marks moved)
  *) fail "delta from the edge's own base: HTTP $HTTP_CODE $(cat "$HTTP_BODY")" ;;
esac
[ "$(ls "$HUB"/exports/*.snap | wc -l)" -le 3 ] || fail "hub keeps more than export_keep snapshots"
ok "delta from the edge's base answers $HTTP_CODE; the hub keeps at most 3 snapshots"

# 5 writes on an edge are refused; [upstream] with [[table]] is refused ---------------
http POST "$X_URL/api/jsonsql/" '{"jsonrpc":"2.0","id":2,"method":"update","params":{"table":"subscriber","set":{"username":"x"},"where":{"eq":["id",1]}}}'
grep -q "is an edge of" "$HTTP_BODY" || fail "edge write: $(cat "$HTTP_BODY")"
{ cat "$SCEN_DIR/edge.toml"; printf '\n[[table]]\nname = "tv_channel"\n'; } >"$SCEN_DIR/bad.toml"
run_agent "$O" "$E" -c "$SCEN_DIR/bad.toml" run
expect_rc 2 "[upstream] with [[table]]"
grep -q "exclude each other" "$E" || fail "message: $(cat "$E")"
ok "edge refuses writes naming its hub; [upstream] with [[table]] is a config error"

# 6 the hub goes away: the edge keeps answering, stale ------------------------------
BEFORE=$(db_sums "$EDGE/cache.db")
http POST "$X_URL/api/jsonsql/" "$SELECT"
cp "$HTTP_BODY" "$SCEN_DIR/edge.sel"
kill -9 "$H_PID"; wait "$H_PID" 2>/dev/null || true; forget_pid "$H_PID"
wait_for 30 "edge sees the hub unreachable" health_is "$X_URL" unreachable
http POST "$X_URL/api/jsonsql/" "$SELECT"
[ "$HTTP_CODE" = 200 ] && cmp -s "$HTTP_BODY" "$SCEN_DIR/edge.sel" || fail "edge select with the hub down changed"
[ "$(http_header X-Cache-Stale)" = true ] || fail "edge answer with the hub down not marked stale"
http POST "$X_URL/sql" '{"sql":"SELECT count(*) FROM tv_program"}'
[ "$HTTP_CODE" = 200 ] || fail "edge /sql with the hub down: HTTP $HTTP_CODE"
[ "$(db_sums "$EDGE/cache.db")" = "$BEFORE" ] || fail "the edge's data changed while the hub was down"
ok "hub killed: edge answers JSON-RPC and /sql from its cache, X-Cache-Stale: true, data intact"
run_agent "$O" "$E" -c "$SCEN_DIR/edge.toml" status
expect_rc 0 "edge status with the hub down"
grep -q "^upstream: $H_URL; at [0-9a-f]\{32\}; last attempt .* (failed), last success 20" "$O" &&
  grep -q "^upstream error: hub $H_URL" "$O" || fail "edge status with the hub down: $(cat "$O")"
run_agent "$O" "$E" -c "$SCEN_DIR/edge.toml" status --json
json_check "$O" 'd["upstream"]["reachable"] is False and d["upstream"]["last_error"].startswith("hub ")' ||
  fail "edge status --json with the hub down: $(cat "$O")"
http GET "$X_URL/status"
json_check "$HTTP_BODY" 'd["upstream"]["last_error"] and d["upstream"]["last_attempt_ms"] > 0' || fail "edge /status: $(cat "$HTTP_BODY")"
ok "edge status with the hub down shows the failed attempt and its error (status, status --json, /status)"

# 7 the hub returns on the same port: deltas resume from its kept exports ------------
hub_config "127.0.0.1:$HPORT"
start_daemon H "$SCEN_DIR/hub2.log" -c "$SCEN_DIR/hub.toml" run
portal_admin "$P_URL" /_fake/mutate '{"table":"subscriber","updates":30,"inserts":5,"deletes":5,"seed":9}' >/dev/null
wait_for 60 "hub converges after its restart" hub_equals_portal
wait_for 60 "edge converges after the hub's restart" edge_equals_hub
wait_for 30 "edge sees the hub reachable" health_is "$X_URL" reachable
[ "$(grep -c "upstream: snapshot" "$SCEN_DIR/edge.log")" = 1 ] || fail "edge took a new snapshot after the hub restarted"
ok "hub restarted on port $HPORT: edge caught up by delta from a base the hub kept on disk"

# 8 the edge restarts: it resumes at its id ---------------------------------------------
kill -TERM "$X_PID"; wait_exit "$X_PID" 30
[ "$rc" = 0 ] || fail "edge exit $rc on SIGTERM"
portal_admin "$P_URL" /_fake/mutate '{"table":"tv_program","updates":100,"deletes":10,"seed":11}' >/dev/null
wait_for 60 "hub converges" hub_equals_portal
start_edge
wait_for 60 "restarted edge converges" edge_equals_hub
[ "$(grep -c "upstream: snapshot" "$SCEN_DIR/edge.log")" = 1 ] || fail "restarted edge took a new snapshot"
ok "edge restarted: resumed with a delta from the snapshot it was at"
grep -q "$HUB_TOKEN" "$SCEN_DIR"/*.log "$SCEN_DIR/last.out" "$SCEN_DIR/last.err" && fail "the hub token was logged"
ok "the hub token appears in no log"
echo "two_tier: $pass_count checks passed"
