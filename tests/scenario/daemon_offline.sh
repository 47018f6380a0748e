#!/usr/bin/env bash
# The daemon through a portal outage, end to end: `iptv-agent run` against the
# fake portal (data in a file), tv_channel full (ttl 1h), subscriber incremental
# (interval and sweep 300 ms), terminal on_demand. Once both pulled tables equal
# the portal, the portal is killed (-9): /health turns unreachable and every
# read (JSON-RPC select, /sql, /status, CLI query) still answers from the
# cache, marked X-Cache-Stale: true; an on_demand miss is JSON-RPC error -32004
# (not cached, portal unreachable) and an uncached `get` exits 1.
# The portal's data changes while it is down; it comes back on the same port and
# the same daemon process (never restarted) catches up until the cache equals
# the portal again and /health says reachable. Every wait polls a condition
# against a deadline.
source "$(dirname "$0")/lib.bash"
scen_setup --pw 'e2e-offline-pw' --timeout 2s -- --rows 5000 --seed 31 <<TOML

[serve]
listen = "127.0.0.1:0"
tokenless_writes = "loopback"   # the write-through below runs without an API token
max_rows = 1000                 # the page a select without limit gets (below: a batch)

[[table]]
name = "tv_channel"
strategy = "full"
ttl = "1h"

[[table]]
name = "subscriber"
strategy = "incremental"
cursor = "updated_at"
interval = "300ms"
sweep = "300ms"
writes = "forward"                # refused while the portal is down (daemon_queue.sh: queued)

[[table]]
name = "terminal"
strategy = "on_demand"
TOML
DLOG=$SCEN_DIR/daemon.log

# 1 ------------------------------------------------------------------------------
start_daemon D "$DLOG" -c "$CFG" --log-level debug run
login_daemon D
DPID=$D_PID
DSTART=$(proc_start "$DPID")
daemon_alive() {
  proc_exited "$DPID" && fail "the daemon exited: $(tail -20 "$DLOG")"
  [ "$(proc_start "$DPID")" = "$DSTART" ] || fail "pid $DPID is no longer the daemon started at $DSTART"
}
wait_for 30 "/status: last_success for tv_channel and subscriber" status_ok "$D_URL" tv_channel subscriber
cmp_tables "$CDB" "$PDB" tv_channel subscriber || fail "cache differs from the portal after the daemon's first pulls"
ok "run: the daemon listens on $D_URL, pulls tv_channel ($(sq "$CDB" 'SELECT count(*) FROM tv_channel') rows) and subscriber ($(sq "$CDB" 'SELECT count(*) FROM subscriber') rows) equal to the portal"

health_is "$D_URL" reachable || fail "/health after successful pulls: $(curl -sS "$D_URL/health")"
ok "/health says reachable while the portal answers"

# The daemon holds the journal: the CLI's on_demand get goes through its API.
gid=$(sq "$PDB" "SELECT id FROM terminal ORDER BY id LIMIT 1 OFFSET 33")
agent get terminal "id=$gid"
expect_rc 0 "get an uncached terminal through the running daemon"
grep -q "\"id\":$gid" "$O" || fail "get through the daemon printed: $(cat "$O")"
[ "$(sq "$CDB" "SELECT count(*) FROM terminal WHERE id = $gid")" = 1 ] || fail "the daemon did not cache terminal $gid"
ok "CLI get terminal id=$gid (uncached) while the daemon runs: fetched through the daemon's API, cached, exit 0"

# Writes through the local API go to the portal; the touched rows come back at once.
sid=$(sq "$PDB" "SELECT id FROM subscriber ORDER BY id LIMIT 1 OFFSET 10")
did=$(sq "$PDB" "SELECT id FROM subscriber ORDER BY id LIMIT 1 OFFSET 11")
same_row() {  # the cache's row for id $1 equals the portal's, positionally
  [ "$(sqlite3 "$CDB" "ATTACH '$PDB' AS p; SELECT count(*) FROM (SELECT * FROM main.subscriber WHERE id = $1
        EXCEPT SELECT * FROM p.subscriber WHERE id = $1)")" = 0 ]
}
http POST "$D_URL/api/jsonsql/" "{\"jsonrpc\":\"2.0\",\"id\":41,\"method\":\"update\",\"params\":{\"table\":\"subscriber\",
  \"set\":{\"email\":\"moved@example.org\",\"disabled\":true},\"where\":{\"eq\":[\"id\",$sid]},\"returning\":\"id\"}}"
[ "$HTTP_CODE" = 200 ] && grep -q "\"result\":\[\[$sid\]\]" "$HTTP_BODY" || fail "update through the API: $HTTP_CODE $(cat "$HTTP_BODY")"
[ "$(sq "$PDB" "SELECT email FROM subscriber WHERE id = $sid")" = "moved@example.org" ] || fail "the portal did not get the update"
same_row "$sid" || fail "the cache's row $sid differs from the portal's right after the update"
http POST "$D_URL/api/jsonsql/" "{\"jsonrpc\":\"2.0\",\"id\":42,\"method\":\"delete\",\"params\":{\"from\":\"subscriber\",
  \"where\":{\"eq\":[\"id\",$did]},\"returning\":\"id\"}}"
[ "$HTTP_CODE" = 200 ] && grep -q "\"result\":\[\[$did\]\]" "$HTTP_BODY" || fail "delete through the API: $HTTP_CODE $(cat "$HTTP_BODY")"
[ "$(sq "$CDB" "SELECT count(*) FROM subscriber WHERE id = $did")" = 0 ] || fail "the deleted row $did is still cached"
ok "update and delete through /api/jsonsql/ reach the portal and the touched rows are in the cache when the answer comes"

# 2 ------------------------------------------------------------------------------
PORT=${P_URL##*:}
PORT=${PORT%%/*}
kill_portal "$P_PID"
wait_for 20 "/health: portal unreachable after kill -9" health_is "$D_URL" unreachable
http GET "$D_URL/health"
json_check "$HTTP_BODY" "d['status'] == 'ok' and d['portal'] == 'unreachable' and d['since']" ||
  fail "/health while down: $(cat "$HTTP_BODY")"
daemon_alive
ok "portal killed (-9): /health says unreachable with a since time, the daemon keeps running"

# 3 ------------------------------------------------------------------------------
# A JSON-RPC select answered from the cache equals a CLI query of the same rows.
c2=$(sq "$CDB" "SELECT name FROM pragma_table_info('subscriber') WHERE cid = 1")
http POST "$D_URL/api/jsonsql/" "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"select\",\"params\":{\"data\":[\"id\",\"$c2\"],\"from\":\"subscriber\",\"order_by\":\"id\",\"limit\":50}}"
[ "$HTTP_CODE" = 200 ] || fail "jsonsql select while down: HTTP $HTTP_CODE: $(cat "$HTTP_BODY")"
[ "$(http_header X-Cache-Stale)" = true ] || fail "jsonsql select while down: X-Cache-Stale '$(http_header X-Cache-Stale)': $(cat "$HTTP_HDR")"
[ -n "$(http_header X-Cache-Age)" ] || fail "jsonsql select while down: no X-Cache-Age: $(cat "$HTTP_HDR")"
cp "$HTTP_BODY" "$SCEN_DIR/rpc.json"
agent query --json "SELECT id, \"$c2\" FROM subscriber ORDER BY id LIMIT 50"
expect_rc 0 "query --json while the portal is down"
python3 - "$SCEN_DIR/rpc.json" "$O" "$c2" <<'PY' || fail "jsonsql rows differ from the CLI query's: $(head -c 600 "$SCEN_DIR/rpc.json")"
import json, sys
rpc = json.load(open(sys.argv[1]))
cli = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
want = [[r["id"], r[sys.argv[3]]] for r in cli]
sys.exit(0 if rpc.get("id") == 7 and rpc.get("result") == want and len(want) == 50 else 1)
PY
ok "POST /api/jsonsql/ select while down: 50 rows equal to \`iptv-agent query\`, X-Cache-Stale: true, X-Cache-Age $(http_header X-Cache-Age)"

# A batch over HTTP: an array of answers in order; a select without limit gets a
# page of [serve] max_rows (1000 here) rows, the first 1000 in its order.
http POST "$D_URL/api/jsonsql/" "[{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"select\",\"params\":{\"data\":[\"id\",\"$c2\"],\"from\":\"subscriber\",\"order_by\":\"id\",\"limit\":50}},
  {\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"select\",\"params\":{\"data\":[\"id\"],\"from\":\"subscriber\",\"order_by\":\"id\"}}]"
[ "$HTTP_CODE" = 200 ] || fail "jsonsql batch while down: HTTP $HTTP_CODE: $(head -c 600 "$HTTP_BODY")"
agent query --json "SELECT id FROM subscriber ORDER BY id LIMIT 1000"
expect_rc 0 "query --json of the first page"
python3 - "$HTTP_BODY" "$SCEN_DIR/rpc.json" "$O" <<'PY' || fail "jsonsql batch: $(head -c 600 "$HTTP_BODY")"
import json, sys
batch = json.load(open(sys.argv[1]))
alone = json.load(open(sys.argv[2]))
page = [[json.loads(l)["id"]] for l in open(sys.argv[3]) if l.strip()]
sys.exit(0 if isinstance(batch, list) and len(batch) == 2 and batch[0] == alone and batch[1]["id"] == 8
         and batch[1]["result"] == page and len(page) == 1000 else 1)
PY
ok "a batch of two selects over HTTP: an array in order, the first as alone, the second (no limit) the first 1000 rows (max_rows) of $(sq "$CDB" "SELECT count(*) FROM subscriber")"

nsub=$(sq "$CDB" "SELECT count(*) FROM subscriber")
http POST "$D_URL/sql" "SELECT count(*) AS n FROM subscriber"
[ "$HTTP_CODE" = 200 ] || fail "/sql while down: HTTP $HTTP_CODE: $(cat "$HTTP_BODY")"
[ "$(http_header X-Cache-Stale)" = true ] || fail "/sql while down: X-Cache-Stale '$(http_header X-Cache-Stale)'"
grep -q "$nsub" "$HTTP_BODY" || fail "/sql count: $(cat "$HTTP_BODY"), cache has $nsub"
ok "POST /sql while down: the count ($nsub) with X-Cache-Stale: true"

http GET "$D_URL/status"
[ "$HTTP_CODE" = 200 ] || fail "/status while down: HTTP $HTTP_CODE"
json_check "$HTTP_BODY" "d['portal']['state'] == 'unreachable'
  and all(t['stale'] for t in d['tables'] if t['name'] in ('tv_channel', 'subscriber'))
  and {t['name']: t for t in d['tables']}['subscriber']['rows'] == $nsub
  and {t['name']: t for t in d['tables']}['tv_channel']['last_success']" ||
  fail "/status while down: $(cat "$HTTP_BODY")"
ok "GET /status while down: 200, portal.state unreachable, tables marked stale, rows and last_success kept"

agent query "SELECT count(*) FROM subscriber"
expect_rc 0 "query while the portal is down"
[ "$(tail -1 "$O")" = "$nsub" ] || fail "CLI query while down: $(cat "$O")"
ok "CLI query while down: exit 0, $nsub rows"

tid=$(sq "$PDB" "SELECT id FROM terminal ORDER BY id LIMIT 1 OFFSET 77")
agent get terminal "id=$tid"
expect_rc 1 "get an uncached terminal with the portal down"
[ -s "$E" ] || fail "get while down exits 1 without saying why"
grep -qiE "unreachable|not started|transport" "$E" || fail "get while down does not say the portal is unreachable: $(cat "$E")"
[ "$(sq "$CDB" "SELECT count(*) FROM terminal WHERE id = $tid" 2>/dev/null || echo 0)" = 0 ] || fail "a failed get cached a row"
ok "CLI get terminal id=$tid (uncached) while down: exit 1 ($(head -1 "$E" | cut -c1-110))"

http POST "$D_URL/api/jsonsql/" "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"select\",\"params\":{\"data\":[\"id\"],\"from\":\"terminal\",\"where\":{\"eq\":[\"id\",$tid]}}}"
[ "$HTTP_CODE" = 200 ] || fail "on_demand miss while down: HTTP $HTTP_CODE: $(cat "$HTTP_BODY")"
json_check "$HTTP_BODY" "d['id'] == 8 and d['error']['code'] == -32004 and 'result' not in d" \
  || fail "on_demand miss while down: $(cat "$HTTP_BODY")"
[ -n "$(http_header X-Cache-Error)" ] || fail "on_demand miss while down: no X-Cache-Error"
ok "on_demand miss (eq on the key) while down: JSON-RPC error -32004, never result [] (X-Cache-Error: $(http_header X-Cache-Error | cut -c1-60))"

http POST "$D_URL/api/jsonsql/" '{"jsonrpc":"2.0","id":43,"method":"update","params":{"table":"subscriber","set":{"email":"x"},"where":{"eq":["id",1]}}}'
grep -q '"error"' "$HTTP_BODY" && grep -qi 'not queued' "$HTTP_BODY" || fail "write while down: $HTTP_CODE $(cat "$HTTP_BODY")"
ok "a write while the portal is down is refused with a JSON-RPC error (writes are not queued)"
daemon_alive

# 4 ------------------------------------------------------------------------------
"$IA_FAKE_PORTAL" mutate --db "$PDB" --table subscriber --updates 50 --inserts 10 --deletes 5 --seed 32 \
  >"$SCEN_DIR/mutations" || fail "mutate"
if cmp_table "$CDB" "$PDB" subscriber 2>/dev/null; then fail "the mutations did not change the portal"; fi
start_portal P --port "$PORT" --db "$PDB" --password "$PW"
[ "$P_URL" = "http://127.0.0.1:$PORT" ] || [ "${P_URL%/}" = "http://127.0.0.1:$PORT" ] || fail "portal restarted at $P_URL, not on port $PORT"
t0=$SECONDS
sub_equal() { cmp_table "$CDB" "$PDB" subscriber 2>/dev/null; }
wait_for 30 "the cache to catch up with the portal's subscriber changes" sub_equal
wait_for 10 "/health: reachable after the portal returned" health_is "$D_URL" reachable
cmp_tables "$CDB" "$PDB" tv_channel subscriber || fail "cache differs after catching up"
ok "portal back on port $PORT with 50 updates, 10 inserts, 5 deletes: the running daemon caught up in $((SECONDS - t0)) s (cache equals the portal) and /health says reachable"

http POST "$D_URL/sql" "SELECT count(*) FROM subscriber"
[ "$HTTP_CODE" = 200 ] && [ "$(http_header X-Cache-Stale)" = false ] ||
  fail "/sql after catching up: HTTP $HTTP_CODE, X-Cache-Stale '$(http_header X-Cache-Stale)'"
ok "after catching up, answers are fresh again (X-Cache-Stale: false)"

daemon_alive
grep -q 'portal reachable again' "$DLOG" || fail "no recovery line in the daemon's log: $(grep -i portal "$DLOG" | tail -5)"
kill -TERM "$DPID"
wait_exit "$DPID" 15
[ "$rc" = 0 ] || fail "daemon exit status after SIGTERM: $rc: $(tail -5 "$DLOG")"
if grep -qE 'ERROR: AddressSanitizer|runtime error:' "$DLOG"; then fail "sanitizer report: $(grep -A5 -E 'AddressSanitizer|runtime error' "$DLOG" | head -20)"; fi
ok "the same daemon process (pid $DPID) served throughout, logged the recovery, and exits 0 on SIGTERM"
echo "$pass_count passed, 0 failed"
