#!/usr/bin/env bash
# Writes through the daemon's POST /api/jsonsql/ (issue 11, items 1 and 9), against
# a fake portal that answers a write without `returning` with its row count, as
# PostgreSQL does. Every row count below is read from the portal's own database.
#  (a) [serve] token_env names an unset variable: `run` exits 2 naming it and the
#      config line; a tokenless daemon without tokenless_writes refuses writes
#      (HTTP 403, -32000) and the portal is unchanged.
#  (b) with tokenless_writes = "loopback": update, delete and insert answered
#      `"result": 1` exactly as the portal sent it; the portal changed by exactly
#      one row; the cache shows the change (update, delete: when the answer comes;
#      insert: after the pull it queues).
#  (c) the portal runs the write, then drops the connection without a byte of
#      answer (fault "drop"): for update, delete and insert the answer is error
#      -32002 "write outcome unknown", the portal holds exactly one copy of the
#      change (never resent, though retries are allowed), and the cache follows.
source "$(dirname "$0")/lib.bash"
scen_setup --pw 'writes-pw-41' --retries 3 --timeout 3s --no-config -- --rows 500 --seed 41 --write-result count
write_cfg() {  # write_cfg EXTRA-SERVE-LINE
  scen_config <<TOML

[serve]
listen = "127.0.0.1:0"
$1

[[table]]
name = "package"
strategy = "full"
ttl = "1h"
columns = ["id", "name", "paid"]

[[table]]
name = "subscriber"
strategy = "incremental"
cursor = "updated_at"
interval = "1h"
columns = ["id", "username", "password_hash", "disabled", "balance", "email", "created_at", "updated_at",
           "tags", "comment"]
TOML
}
pcount() { sq "$PDB" "SELECT count(*) FROM $1 ${2:-}"; }
ccount() { sq "$CDB" "SELECT count(*) FROM $1 ${2:-}"; }
rpc() {  # rpc ID METHOD PARAMS: POST /api/jsonsql/
  http POST "$D_URL/api/jsonsql/" "{\"jsonrpc\":\"2.0\",\"id\":$1,\"method\":\"$2\",\"params\":$3}"
}
same_row() {  # the cache's subscriber $1 equals the portal's
  [ "$(sqlite3 "$CDB" "ATTACH '$PDB' AS p; SELECT count(*) FROM (SELECT * FROM main.subscriber WHERE id = $1
        EXCEPT SELECT * FROM p.subscriber WHERE id = $1)")" = 0 ] &&
  [ "$(ccount subscriber "WHERE id = $1")" = "$(pcount subscriber "WHERE id = $1")" ]
}
package_synced() { [ "$(ccount package)" = "$(pcount package)" ]; }

# (a) ------------------------------------------------------------------------------
unset IA_SCEN_UNSET_TOKEN
write_cfg 'token_env = "IA_SCEN_UNSET_TOKEN"'
set +e
timeout 20 "$IA_AGENT" -c "$CFG" run >"$O" 2>"$E" </dev/null
rc=$?
set -e
[ "$rc" = 2 ] || fail "token_env unset: exit $rc (want 2): $(cat "$E")"
line=$(grep -n '^token_env' "$CFG" | cut -d: -f1)
grep -q 'IA_SCEN_UNSET_TOKEN' "$E" && grep -qF "$CFG:$line:" "$E" ||
  fail "the refusal names neither the variable nor $CFG:$line: $(cat "$E")"
[ ! -s "$O" ] || fail "a refused daemon printed a URL: $(cat "$O")"
export IA_SCEN_EMPTY_TOKEN=""
write_cfg 'token_env = "IA_SCEN_EMPTY_TOKEN"'
set +e
timeout 20 "$IA_AGENT" -c "$CFG" run >"$O" 2>"$E" </dev/null
rc=$?
set -e
[ "$rc" = 2 ] && grep -q 'IA_SCEN_EMPTY_TOKEN.*is empty' "$E" || fail "empty token: exit $rc: $(cat "$E")"
ok "token_env names an unset or empty variable: run exits 2 naming it and $(basename "$CFG"):$line"

# auth = "none": the open API of old, where a write needs the token or tokenless_writes
# (with the default auth = "portal" a client that logged in with the portal's
# password may write: test_serve_login.c test_modes)
write_cfg 'auth = "none"'
start_daemon D "$SCEN_DIR/daemon1.log" -c "$CFG" run
wait_for 30 "first pulls" status_ok "$D_URL" package subscriber
before=$(pcount package)
writes0=$(portal_stat "$P_URL" writes)
rpc 1 insert '{"into":"package","columns":["name","paid"],"values":[["tokenless",true]]}'
[ "$HTTP_CODE" = 403 ] && json_check "$HTTP_BODY" "d['error']['code'] == -32000 and 'tokenless_writes' in d['error']['message']" ||
  fail "tokenless write: HTTP $HTTP_CODE $(cat "$HTTP_BODY")"
rpc 2 delete '{"from":"package","where":{"eq":["id",1]}}'
[ "$HTTP_CODE" = 403 ] || fail "tokenless delete: HTTP $HTTP_CODE $(cat "$HTTP_BODY")"
[ "$(pcount package)" = "$before" ] && [ "$(portal_stat "$P_URL" writes)" = "$writes0" ] || fail "a refused write reached the portal"
rpc 3 select '{"data":["id"],"from":"package","order_by":"id","limit":1}'
[ "$HTTP_CODE" = 200 ] && json_check "$HTTP_BODY" "len(d['result']) == 1" || fail "reads stay open: $(cat "$HTTP_BODY")"
kill -TERM "$D_PID"
wait_exit "$D_PID" 15
ok "auth = none, no token and no tokenless_writes: insert and delete refused (HTTP 403, -32000), portal unchanged, reads answered"

# (b) ------------------------------------------------------------------------------
write_cfg 'tokenless_writes = "loopback"'
DLOG=$SCEN_DIR/daemon2.log
start_daemon D "$DLOG" -c "$CFG" --log-level debug run
login_daemon D
wait_for 30 "pulls after restart" status_ok "$D_URL" package subscriber
ids=($(sq "$PDB" "SELECT id FROM subscriber ORDER BY id LIMIT 4 OFFSET 20"))
[ "${#ids[@]}" = 4 ] || fail "subscriber ids: ${ids[*]}"
sub_before=$(pcount subscriber)

rpc 11 update "{\"table\":\"subscriber\",\"set\":{\"email\":\"count@example.org\"},\"where\":{\"eq\":[\"id\",${ids[0]}]}}"
[ "$(cat "$HTTP_BODY")" = '{"jsonrpc":"2.0","id":11,"result":1}' ] || fail "update (count): $HTTP_CODE $(cat "$HTTP_BODY")"
[ "$(sq "$PDB" "SELECT email FROM subscriber WHERE id = ${ids[0]}")" = count@example.org ] || fail "portal lacks the update"
same_row "${ids[0]}" || fail "cache row ${ids[0]} differs from the portal's after the update"
rpc 12 delete "{\"from\":\"subscriber\",\"where\":{\"eq\":[\"id\",${ids[1]}]}}"
[ "$(cat "$HTTP_BODY")" = '{"jsonrpc":"2.0","id":12,"result":1}' ] || fail "delete (count): $HTTP_CODE $(cat "$HTTP_BODY")"
[ "$(pcount subscriber)" = $((sub_before - 1)) ] || fail "portal subscriber rows: $(pcount subscriber), want $((sub_before - 1))"
[ "$(ccount subscriber "WHERE id = ${ids[1]}")" = 0 ] || fail "the deleted row ${ids[1]} is still cached"
ok "update and delete answered {\"result\":1} as the portal sent it; portal -1 row for the delete; the cache shows both at once"

# (c) ------------------------------------------------------------------------------
# write_queue: only the write itself loses its answer (logins and reads pass).
portal_admin "$P_URL" /_fake/faults '{"write_queue":["drop"]}' >/dev/null
rpc 21 update "{\"table\":\"subscriber\",\"set\":{\"email\":\"lost@example.org\"},\"where\":{\"eq\":[\"id\",${ids[2]}]}}"
[ "$HTTP_CODE" = 200 ] && json_check "$HTTP_BODY" "d['error']['code'] == -32002 and d['error']['message'].startswith('write outcome unknown') and 'check before retrying' in d['error']['message']" ||
  fail "update with the answer lost: $HTTP_CODE $(cat "$HTTP_BODY")"
[ "$(sq "$PDB" "SELECT email FROM subscriber WHERE id = ${ids[2]}")" = lost@example.org ] || fail "portal lacks the update"
same_row "${ids[2]}" || fail "cache row ${ids[2]} differs from the portal's after the lost update"
portal_admin "$P_URL" /_fake/faults '{"write_queue":["drop"]}' >/dev/null
rpc 22 delete "{\"from\":\"subscriber\",\"where\":{\"eq\":[\"id\",${ids[3]}]}}"
[ "$HTTP_CODE" = 200 ] && json_check "$HTTP_BODY" "d['error']['code'] == -32002" || fail "delete with the answer lost: $(cat "$HTTP_BODY")"
[ "$(pcount subscriber)" = $((sub_before - 2)) ] || fail "portal subscriber rows: $(pcount subscriber), want $((sub_before - 2))"
[ "$(ccount subscriber "WHERE id = ${ids[3]}")" = 0 ] || fail "the row ${ids[3]} deleted on the portal is still cached"
ok "update and delete whose answer was dropped: -32002 write outcome unknown, applied once on the portal, cache follows"

pk_before=$(pcount package)
portal_admin "$P_URL" /_fake/faults '{"write_queue":["drop"]}' >/dev/null
rpc 31 insert '{"into":"package","columns":["name","paid"],"values":[["lost-insert",true]]}'
[ "$HTTP_CODE" = 200 ] && json_check "$HTTP_BODY" "d['error']['code'] == -32002" || fail "insert with the answer lost: $(cat "$HTTP_BODY")"
[ "$(pcount package "WHERE name = 'lost-insert'")" = 1 ] && [ "$(pcount package)" = $((pk_before + 1)) ] ||
  fail "portal package rows after a lost insert: $(pcount package) ($(pcount package "WHERE name = 'lost-insert'") lost-insert), want $((pk_before + 1))"
wait_for 20 "the cache to pull the lost insert" package_synced
grep -q 'write outcome unknown: insert' "$DLOG" || fail "the daemon did not log the unknown outcome"
ok "insert whose answer was dropped: -32002, exactly one row on the portal (+1), the cache pulls it"

rpc 32 insert '{"into":"package","columns":["name","paid"],"values":[["count-insert",false]]}'
[ "$(cat "$HTTP_BODY")" = '{"jsonrpc":"2.0","id":32,"result":1}' ] || fail "insert (count): $HTTP_CODE $(cat "$HTTP_BODY")"
[ "$(pcount package "WHERE name = 'count-insert'")" = 1 ] && [ "$(pcount package)" = $((pk_before + 2)) ] ||
  fail "portal package rows after the insert: $(pcount package), want $((pk_before + 2))"
wait_for 20 "the cache to pull the insert" package_synced
[ "$(ccount package "WHERE name = 'count-insert'")" = 1 ] || fail "the inserted row is not cached"
ok "insert answered {\"result\":1}; portal +1 row; the cache pulls it"

kill -TERM "$D_PID"
wait_exit "$D_PID" 15
[ "$rc" = 0 ] || fail "daemon exit status: $rc"
echo "$pass_count passed, 0 failed"
