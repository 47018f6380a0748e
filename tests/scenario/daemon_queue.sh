#!/usr/bin/env bash
# Offline writes queued in the outbox (issue 13 items 1, 2 and the queued half of
# 3; docs/outbox.md). The daemon pulls package (writes = "queue", the default),
# tv_channel (writes = "refuse") and subscriber (writes = "forward"); then the
# fake portal is killed (-9):
#  (a) an insert through POST /api/jsonsql/ is answered as the portal would
#      (returning rows, a provisional negative key) with X-Write-Queued: <op id>,
#      and is visible at once through /api/jsonsql/, /sql and `iptv-agent query`;
#      an update without returning is answered with its count, queued too;
#  (b) `iptv-agent journal cat` shows both ops;
#  (c) writes = "refuse" is error -32602 naming the policy; writes = "forward" is
#      refused while the portal is down (-32603, not queued); a write the cache
#      shows is wrong (unknown column) is refused, nothing queued; a 10 MB body is 413;
#  (d) kill -9 of the daemon and a restart: cache.db's rows and the outbox are the same;
#  (e) the portal returns on its port: both ops reach it once, and after a pull
#      cache.db's package equals the portal's (the provisional row is gone).
source "$(dirname "$0")/lib.bash"
scen_setup --pw 'queue-pw-53' --timeout 2s -- --rows 300 --seed 53 <<TOML

[serve]
listen = "127.0.0.1:0"
tokenless_writes = "loopback"

[[table]]
name = "package"
strategy = "full"
ttl = "1h"
columns = ["id", "name", "paid"]

[[table]]
name = "tv_channel"
strategy = "full"
ttl = "1h"
writes = "refuse"

[[table]]
name = "subscriber"
strategy = "incremental"
cursor = "updated_at"
interval = "1h"
writes = "forward"
TOML
DLOG=$SCEN_DIR/daemon.log
rpc() {  # rpc ID METHOD PARAMS: POST /api/jsonsql/
  http POST "$D_URL/api/jsonsql/" "{\"jsonrpc\":\"2.0\",\"id\":$1,\"method\":\"$2\",\"params\":$3}"
}
outbox() { sq "$CDB" "SELECT id || ',' || tbl || ',' || kind || ',' || state || ',' || keys FROM _agent_outbox ORDER BY id"; }
cache_sum() { sq "$CDB" "SELECT count(*) || ':' || total(id) || ':' || group_concat(name || paid, '|') FROM (SELECT * FROM package ORDER BY id)"; }

start_daemon D "$DLOG" -c "$CFG" --log-level debug run
login_daemon D
wait_for 30 "first pulls" status_ok "$D_URL" package tv_channel subscriber
kill_portal "$P_PID"
ok "the daemon pulled package, tv_channel and subscriber; the portal is killed (-9)"

# (a) ------------------------------------------------------------------------------
rpc 1 insert '{"into":"package","columns":["name","paid"],"values":[["offline-1",true]],"returning":["id","name","paid"]}'
op1=$(http_header X-Write-Queued)
[ "$HTTP_CODE" = 200 ] && [ -n "$op1" ] || fail "insert while down: HTTP $HTTP_CODE X-Write-Queued '$op1': $(cat "$HTTP_BODY")"
[ "$(cat "$HTTP_BODY")" = "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":[[$((-op1 * 1000)),\"offline-1\",true]]}" ] ||
  fail "insert while down answered: $(cat "$HTTP_BODY") (op $op1)"
ok "insert while the portal is down: X-Write-Queued: $op1, result [[$((-op1 * 1000)),\"offline-1\",true]] (provisional key)"

rpc 2 select '{"data":["id","paid"],"from":"package","where":{"eq":["name","offline-1"]}}'
[ "$(cat "$HTTP_BODY")" = "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":[[$((-op1 * 1000)),true]]}" ] ||
  fail "select of the queued row: $(cat "$HTTP_BODY")"
http POST "$D_URL/sql" "{\"sql\":\"SELECT id FROM package WHERE name = 'offline-1'\"}"
grep -q -- "$((-op1 * 1000))" "$HTTP_BODY" || fail "/sql does not show the queued row: $(cat "$HTTP_BODY")"
agent query "SELECT id FROM package WHERE name = 'offline-1'"
expect_rc 0 "query the queued row"
grep -q -- "$((-op1 * 1000))" "$O" || fail "iptv-agent query does not show the queued row: $(cat "$O")"
ok "the queued row is visible at once through /api/jsonsql/, /sql and iptv-agent query"

uid=$(sq "$CDB" "SELECT id FROM package WHERE id > 0 ORDER BY id LIMIT 1 OFFSET 3")
rpc 3 update "{\"table\":\"package\",\"set\":{\"name\":\"renamed-offline\"},\"where\":{\"eq\":[\"id\",$uid]}}"
op2=$(http_header X-Write-Queued)
[ "$(cat "$HTTP_BODY")" = '{"jsonrpc":"2.0","id":3,"result":1}' ] && [ -n "$op2" ] && [ "$op2" -gt "$op1" ] ||
  fail "update while down: $(cat "$HTTP_BODY") X-Write-Queued '$op2'"
[ "$(sq "$CDB" "SELECT name FROM package WHERE id = $uid")" = renamed-offline ] || fail "the queued update is not in the cache"
[ "$(outbox)" = "$op1,package,insert,pending,[$((-op1 * 1000))]
$op2,package,update,pending,[$uid]" ] || fail "outbox: $(outbox)"
ok "update while down: result 1, X-Write-Queued: $op2; the outbox holds both ops, pending"

# (b) ------------------------------------------------------------------------------
agent journal cat --table package
expect_rc 0 "journal cat"
grep -q "\"op\":$op1,\"kind\":\"insert\"" "$O" && grep -q "\"op\":$op2,\"kind\":\"update\"" "$O" ||
  fail "journal cat lacks the ops: $(grep '"op"' "$O" | head -5)"
ok "iptv-agent journal cat shows op $op1 (insert) and op $op2 (update)"

# (c) ------------------------------------------------------------------------------
before=$(outbox)
rpc 4 update '{"table":"tv_channel","set":{"name":"x"},"where":{"eq":["id",1]}}'
json_check "$HTTP_BODY" "d['error']['code'] == -32602 and 'writes = \"refuse\"' in d['error']['message']" ||
  fail "write to a refuse table: $(cat "$HTTP_BODY")"
[ -z "$(http_header X-Write-Queued)" ] || fail "a refused write carries X-Write-Queued"
rpc 5 update '{"table":"subscriber","set":{"email":"x"},"where":{"eq":["id",1]}}'
json_check "$HTTP_BODY" "d['error']['code'] == -32603 and 'not queued' in d['error']['message']" ||
  fail "write to a forward table while down: $(cat "$HTTP_BODY")"
rpc 6 update '{"table":"package","set":{"nope":1},"where":{"eq":["id",1]}}'
json_check "$HTTP_BODY" "d['error']['code'] == -32602 and 'unknown column' in d['error']['message']" ||
  fail "a bad write while down: $(cat "$HTTP_BODY")"
head -c 10485760 /dev/zero | tr '\0' ' ' >"$SCEN_DIR/big.json"
HTTP_CODE=$(curl -sS --max-time 20 -X POST "${SCEN_SESSION[@]}" --data-binary @"$SCEN_DIR/big.json" -o /dev/null -w '%{http_code}' "$D_URL/api/jsonsql/")
[ "$HTTP_CODE" = 413 ] || fail "a 10 MB write: HTTP $HTTP_CODE"
[ "$(outbox)" = "$before" ] || fail "a refused write changed the outbox: $(outbox)"
ok "writes = refuse: -32602 naming it; writes = forward while down: -32603 not queued; unknown column: -32602; 10 MB: 413; outbox unchanged"

# (d) ------------------------------------------------------------------------------
sum=$(cache_sum)
kill -9 "$D_PID"
wait_agent "$D_PID" || true
start_daemon D "$DLOG.2" -c "$CFG" --log-level debug run
login_daemon D
[ "$(cache_sum)" = "$sum" ] || fail "package after kill -9 and restart: $(cache_sum), was $sum"
[ "$(outbox)" = "$before" ] || fail "outbox after kill -9 and restart: $(outbox), was $before"
ok "kill -9 and restart: package and the outbox are the same"

# (e) ------------------------------------------------------------------------------
PORT=${P_URL##*:}; PORT=${PORT%/}
start_portal P --port "$PORT" --db "$PDB" --password "$PW"
t0=$SECONDS
all_done() { [ "$(sq "$CDB" "SELECT group_concat(state) FROM _agent_outbox")" = "done,done" ]; }
wait_for 30 "both ops done after the portal returned" all_done
took=$((SECONDS - t0))
[ "$(sq "$PDB" "SELECT count(*) FROM package WHERE name = 'offline-1' AND paid")" = 1 ] ||
  fail "the queued insert is not on the portal exactly once: $(sq "$PDB" "SELECT id, name FROM package WHERE name = 'offline-1'")"
[ "$(sq "$PDB" "SELECT name FROM package WHERE id = $uid")" = renamed-offline ] || fail "the queued update is not on the portal"
http POST "$D_URL/sync/package" ""
no_provisional() { [ "$(sq "$CDB" "SELECT count(*) FROM package WHERE id < 0")" = 0 ] && cmp_table "$CDB" "$PDB" package 2>/dev/null; }
wait_for 30 "the cache to equal the portal's package (no provisional rows)" no_provisional
ok "portal back: both ops done in ${took} s, each on the portal once; after a pull cache.db's package equals the portal's, no provisional row left"

kill -TERM "$D_PID"
wait_exit "$D_PID" 15
echo "$pass_count passed, 0 failed"
