#!/usr/bin/env bash
# on_demand tables through the daemon and the CLI (issue 11): the fake portal
# answers every /api/ request after 200 ms; terminal is on_demand, ttl 1h.
#  - before any contact /status says next_in_ms null for the on_demand table
#    (it has no timer) and /metrics has no iptv_agent_portal_up sample (unknown
#    is not "down"); after the first answer it is 1;
#  - 12 concurrent misses are fetched in parallel: the portal sees more than
#    one request in flight at once (GET /_fake/stats max_concurrent);
#  - a cached row read from the portal longer ago than the ttl (its fetch time
#    in cache.db's _agent_fetched is set back) is read again on access, by the
#    API and by `get` (through the daemon and without one); a row the portal
#    no longer has is dropped;
#  - with the portal down a stale row is served with X-Cache-Stale: true (and
#    `get` prints it with a warning, exit 0), and a miss is JSON-RPC error
#    -32004, never `result: []`; the failed refresh, and the failed fetch
#    that probes past the backoff, each leave /health unreachable;
#  - error replies of the HTTP layer are JSON (405 for PUT, 413).
# Every wait polls a condition against a deadline.
source "$(dirname "$0")/lib.bash"
scen_setup --pw 'od-pw' --retries 0 --timeout 5s --no-config -- --rows 100 --seed 5 --latency-ms 200
write_cfg() {
  scen_config --url "$1" <<TOML

[serve]
listen = "127.0.0.1:0"

[[table]]
name = "terminal"
strategy = "on_demand"
ttl = "1h"
columns = ["id", "subscriber_id", "mac_addr"]
TOML
}
write_cfg "$P_URL"
# age ID: the row's fetch time two hours back (older than the ttl)
age() { sqlite3 -cmd '.timeout 10000' "$CDB" "UPDATE _agent_fetched SET at_ms = at_ms - 7200000 WHERE tbl = 'terminal' AND key = $1"; }
portal_sql() { sqlite3 -cmd '.timeout 10000' "$PDB" "$1"; }
select_body() { printf '{"jsonrpc":"2.0","id":1,"method":"select","params":{"data":["id","mac_addr"],"from":"terminal","where":{"eq":["id",%s]}}}' "$1"; }
DLOG=$SCEN_DIR/daemon.log

# 1 ------------------------------------------------------------------------------
start_daemon D "$DLOG" -c "$CFG" --log-level debug run
login_daemon D
http GET "$D_URL/status"
json_check "$HTTP_BODY" 'd["portal"]["state"] == "unknown" and [s["next_in_ms"] for s in d["schedule"] if s["table"] == "terminal"] == [None]' \
  || fail "/status before any contact: $(cat "$HTTP_BODY")"
http GET "$D_URL/metrics"
grep -q '^# TYPE iptv_agent_portal_up gauge' "$HTTP_BODY" || fail "/metrics: no portal_up TYPE line"
if grep -q '^iptv_agent_portal_up ' "$HTTP_BODY"; then fail "/metrics claims portal_up before any contact: $(grep '^iptv_agent_portal_up' "$HTTP_BODY")"; fi
ok "before any contact: /status next_in_ms null for the on_demand table, portal unknown; /metrics has no portal_up sample"

# 2 ------------------------------------------------------------------------------
mapfile -t IDS < <(portal_sql "SELECT id FROM terminal ORDER BY id LIMIT 12")
[ "${#IDS[@]}" -eq 12 ] || fail "the portal has fewer than 12 terminals"
t0=$(date +%s%N)
pids=()
for id in "${IDS[@]}"; do
  curl -sS --max-time 30 "${SCEN_SESSION[@]}" -d "$(select_body "$id")" "$D_URL/api/jsonsql/" -o "$SCEN_DIR/miss.$id" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a concurrent miss: curl failed"; done
ms=$((($(date +%s%N) - t0) / 1000000))
for id in "${IDS[@]}"; do
  grep -q "\"result\":\[\[$id," "$SCEN_DIR/miss.$id" || fail "miss of terminal $id answered: $(cat "$SCEN_DIR/miss.$id")"
done
maxc=$(portal_stat "$P_URL" max_concurrent)
[ "${maxc:-0}" -ge 2 ] || fail "12 concurrent misses never had two portal requests in flight (max_concurrent=$maxc, $ms ms)"
ok "12 concurrent misses answered from the portal in $ms ms, up to $maxc portal requests in flight at once"
http GET "$D_URL/metrics"
grep -q '^iptv_agent_portal_up 1$' "$HTTP_BODY" || fail "/metrics after answers: $(grep portal_up "$HTTP_BODY")"
ok "/metrics: iptv_agent_portal_up 1 once the portal answered"

# 3 ------------------------------------------------------------------------------
X=${IDS[0]}
http POST "$D_URL/api/jsonsql/" "$(select_body "$X")"
[ "$(http_header X-Cache-Stale)" = false ] || fail "a fresh row: X-Cache-Stale $(http_header X-Cache-Stale)"
portal_sql "UPDATE terminal SET mac_addr = 'aa:aa:aa:aa:aa:01' WHERE id = $X"
http POST "$D_URL/api/jsonsql/" "$(select_body "$X")"
grep -q 'aa:aa:aa:aa:aa:01' "$HTTP_BODY" && fail "a fresh row was read again from the portal"
age "$X"
http POST "$D_URL/api/jsonsql/" "$(select_body "$X")"
grep -q "\"result\":\[\[$X,\"aa:aa:aa:aa:aa:01\"\]\]" "$HTTP_BODY" || fail "a stale row was not read again: $(cat "$HTTP_BODY")"
[ "$(http_header X-Cache-Stale)" = false ] || fail "a refreshed row: X-Cache-Stale $(http_header X-Cache-Stale)"
ok "API: a row within its ttl is served from the cache; one older than the ttl is read again and served fresh"

portal_sql "UPDATE terminal SET mac_addr = 'aa:aa:aa:aa:aa:02' WHERE id = $X"
age "$X"
agent get terminal "id=$X"
expect_rc 0 "get of a stale row through the daemon"
grep -q 'aa:aa:aa:aa:aa:02' "$O" || fail "get through the daemon printed the stale row: $(cat "$O")"
ok "CLI get through the daemon: a stale row is read again first"

# 4 ------------------------------------------------------------------------------
http PUT "$D_URL/status"
[ "$HTTP_CODE" = 405 ] && json_check "$HTTP_BODY" '"error" in d' || fail "PUT /status: HTTP $HTTP_CODE $(cat "$HTTP_BODY")"
head -c $((2 << 20)) /dev/zero | tr '\0' ' ' >"$SCEN_DIR/big"
code=$(curl -sS --max-time 20 -o "$HTTP_BODY" -w '%{http_code}' --data-binary @"$SCEN_DIR/big" "$D_URL/sql")
[ "$code" = 413 ] && json_check "$HTTP_BODY" '"error" in d' || fail "a 2 MiB body: HTTP $code $(cat "$HTTP_BODY")"
ok "PUT is 405 and a 2 MiB body 413, both as JSON"

# 5 ------------------------------------------------------------------------------
kill_portal "$P_PID"
age "$X"
http POST "$D_URL/api/jsonsql/" "$(select_body "$X")"
grep -q "\"result\":\[\[$X,\"aa:aa:aa:aa:aa:02\"\]\]" "$HTTP_BODY" || fail "a stale row, portal down: $(cat "$HTTP_BODY")"
[ "$(http_header X-Cache-Stale)" = true ] || fail "a stale row, portal down: X-Cache-Stale $(http_header X-Cache-Stale)"
ok "portal down: a stale row is served from the cache with X-Cache-Stale: true ($(http_header X-Cache-Error))"
# The refresh's transport error (a code, not its text) marked the portal down
# before the answer; the miss below, past the first backoff (1 s + 10%), is the
# next probe: a fetch failing the same way keeps it down.
health_is "$D_URL" unreachable || fail "/health after a refresh failed to connect: $(curl -sS "$D_URL/health")"
sleep 1.5
Y=$(portal_sql "SELECT id FROM terminal ORDER BY id LIMIT 1 OFFSET 40")
http POST "$D_URL/api/jsonsql/" "$(select_body "$Y")"
json_check "$HTTP_BODY" 'd["error"]["code"] == -32004 and "not cached" in d["error"]["message"] and "result" not in d' \
  || fail "a miss with the portal down: $(cat "$HTTP_BODY")"
grep -q 'transport error' "$HTTP_BODY" || fail "the miss past the backoff did not ask the portal: $(cat "$HTTP_BODY")"
health_is "$D_URL" unreachable || fail "/health after a fetch failed to connect: $(curl -sS "$D_URL/health")"
ok "portal down: a miss is JSON-RPC error -32004 ($(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["error"]["message"])' "$HTTP_BODY"))"
agent get terminal "id=$X"
expect_rc 0 "get of a stale row with the portal down"
grep -q 'aa:aa:aa:aa:aa:02' "$O" || fail "get printed: $(cat "$O")"
grep -q 'stale' "$E" || fail "get of a stale row with the portal down said nothing: $(cat "$E")"
ok "portal down: get prints the stale row with a warning, exit 0"

kill -TERM "$D_PID"
wait_exit "$D_PID" 30
[ "$rc" -eq 0 ] || fail "daemon exit $rc"

# 6 ------------------------------------------------------------------------------
start_portal P --db "$PDB" --rows 100 --seed 5 --password "$PW"
write_cfg "$P_URL"
portal_sql "UPDATE terminal SET mac_addr = 'aa:aa:aa:aa:aa:03' WHERE id = $X"
agent get terminal "id=$X"
expect_rc 0 "get of a stale row (no daemon)"
grep -q 'aa:aa:aa:aa:aa:03' "$O" || fail "get without a daemon printed the stale row: $(cat "$O")"
agent get terminal "id=$X"
grep -q 'aa:aa:aa:aa:aa:03' "$O" || fail "get of a refreshed row printed: $(cat "$O")"
portal_sql "UPDATE terminal SET mac_addr = 'aa:aa:aa:aa:aa:04' WHERE id = $X"
agent get terminal "id=$X"
grep -q 'aa:aa:aa:aa:aa:03' "$O" || fail "get of a fresh row went to the portal: $(cat "$O")"
ok "CLI get (no daemon): the row was stale, so it was read again; within its ttl it is served from the cache"
portal_sql "DELETE FROM terminal WHERE id = $X"
age "$X"
agent get terminal "id=$X"
expect_rc 3 "get of a stale row the portal no longer has"
[ "$(sq "$CDB" "SELECT count(*) FROM terminal WHERE id = $X")" = 0 ] || fail "the cache kept terminal $X"
ok "CLI get: a stale row the portal no longer has is dropped from the cache, exit 3"

echo "PASS daemon_on_demand: $pass_count checks"
