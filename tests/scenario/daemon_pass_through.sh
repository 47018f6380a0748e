#!/usr/bin/env bash
# Pass-through (docs/interface.md, "Pass-through"): a select the cache cannot
# answer goes to the portal. The fake portal answers every /api/ request after
# 80 ms; tv_program (1500 rows, chunk 100: ~15 pages) is the configured table,
# so its first pull takes seconds; tv_channel is not configured.
#  - the client logs in with authorize_user (password = the API token) and
#    sends the session with every request;
#  - before tv_program's first pull ends, a select on it answers the portal's
#    rows with X-Cache: pass (checked: /status still showed it unpulled after
#    the answer, so it was unpulled when the agent decided); after the pull,
#    X-Cache: hit with the same rows;
#  - tv_channel (not configured) is forwarded, also joined with tv_program;
#    the portal's JSON-RPC error comes back as it sent it;
#  - unknown_tables = "cache" (max_auto_tables = 1, a second daemon): the first
#    select on tv_channel passes, then tv_channel appears in /status, is
#    pulled and answers hit ("*": the portal names no columns, so one naming
#    columns other than the key still passes); package, over the cap, is only
#    ever forwarded; after a restart tv_channel is passed again;
#  - portal killed: tv_channel is JSON-RPC error -32004 naming the table, never
#    [], while tv_program still answers from the cache;
#  - unknown_tables = "refuse": tv_channel is the local "unknown table" error.
# Every wait polls a condition against a deadline.
source "$(dirname "$0")/lib.bash"
scen_setup --pw 'pass-pw' --retries 0 --timeout 5s --no-config -- --rows 1500 --seed 3 --latency-ms 80
export PASS_TOKEN=pass-token-0123456789
write_cfg() {
  scen_config <<TOML

[serve]
listen = "127.0.0.1:0"
token_env = "PASS_TOKEN"
unknown_tables = "$1"

[[table]]
name = "tv_program"
strategy = "full"
chunk = 100
columns = ["id", "channel_id", "title"]
TOML
}
write_cfg forward
DLOG=$SCEN_DIR/daemon.log
SID=""
# login: authorize_user at the agent (password = the API token); SID is its session.
login() {
  http POST "$D_URL/api/jsonrpc/" '{"jsonrpc":"2.0","id":1,"method":"authorize_user","params":{"username":"admin","password":"'"$PASS_TOKEN"'"}}'
  SID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["result"]["session_id"])' "$HTTP_BODY") \
    || fail "authorize_user: $(cat "$HTTP_BODY")"
}
# q PARAMS: a select through the agent with the session; the answer in $HTTP_BODY.
q() { http POST "$D_URL/api/jsonsql/" "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"select\",\"params\":$1}" \
        -H "Iptvportal-Authorization: sessionid=$SID"; }
# portal_q PARAMS: the same select straight to the portal; its answer on stdout.
portal_q() {
  local sid
  sid=$(curl -sS --max-time 10 -d '{"jsonrpc":"2.0","id":1,"method":"authorize_user","params":{"username":"admin","password":"pass-pw"}}' \
          "$P_URL/api/jsonrpc/" | python3 -c 'import json,sys; print(json.load(sys.stdin)["result"]["session_id"])')
  curl -sS --max-time 10 -H "Iptvportal-Authorization: sessionid=$sid" \
    -d "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"select\",\"params\":$1}" "$P_URL/api/jsonsql/"
}
# pulled: /status shows a last_success for tv_program (it needs the token).
pulled() {
  local s
  s=$(curl -sS --max-time 5 -H "Authorization: Bearer $PASS_TOKEN" "$D_URL/status") || fail "/status: curl failed"
  python3 -c 'import json,sys; d=json.loads(sys.argv[1]); t=[x for x in d["tables"] if x["name"]=="tv_program"]; sys.exit(0 if t and t[0]["last_success"] else 1)' "$s"
}
PROG='{"data":["id","title"],"from":"tv_program","order_by":"id","limit":5}'
CHAN='{"data":["id","name"],"from":"tv_channel","order_by":"id","limit":3}'
JOIN='{"data":["p.id","c.name"],"from":[{"table":"tv_program","as":"p"},{"join":"tv_channel","as":"c","on":{"eq":[{"p":"channel_id"},{"c":"id"}]}}],"order_by":"p.id","limit":3}'

# 1 ------------------------------------------------------------------------------
start_daemon D "$DLOG" -c "$CFG" run
login
pulled && fail "tv_program was pulled before the first select (the portal's latency should make it take seconds)"
q "$PROG"
pulled && fail "tv_program's first pull ended before the select was answered: cannot tell pass from hit (slow the portal)"
[ "$HTTP_CODE" = 200 ] && [ "$(http_header X-Cache)" = pass ] || fail "before the first pull: HTTP $HTTP_CODE X-Cache '$(http_header X-Cache)': $(cat "$HTTP_BODY")"
[ -z "$(http_header X-Cache-Stale)" ] || fail "a passed answer has X-Cache-Stale"
[ "$(cat "$HTTP_BODY")" = "$(portal_q "$PROG")" ] || fail "passed answer differs from the portal's: $(cat "$HTTP_BODY")"
grep -q '"result":\[\[' "$HTTP_BODY" || fail "passed answer has no rows: $(cat "$HTTP_BODY")"
cp "$HTTP_BODY" "$SCEN_DIR/prog.pass"
ok "before tv_program's first pull ended: its select answered the portal's rows with X-Cache: pass"

# 2 ------------------------------------------------------------------------------
wait_for 60 "tv_program's first pull" pulled
q "$PROG"
[ "$(http_header X-Cache)" = hit ] || fail "after the pull: X-Cache '$(http_header X-Cache)': $(cat "$HTTP_BODY")"
[ "$(http_header X-Cache-Stale)" = false ] || fail "after the pull: X-Cache-Stale '$(http_header X-Cache-Stale)'"
cmp -s "$HTTP_BODY" "$SCEN_DIR/prog.pass" || fail "cached answer differs from the passed one: $(cat "$HTTP_BODY")"
ok "after the pull: the same answer from the cache, X-Cache: hit"

# 3 ------------------------------------------------------------------------------
for s in "$CHAN" "$JOIN"; do
  q "$s"
  [ "$(http_header X-Cache)" = pass ] || fail "not configured: X-Cache '$(http_header X-Cache)': $(cat "$HTTP_BODY")"
  [ "$(cat "$HTTP_BODY")" = "$(portal_q "$s")" ] || fail "passed answer differs from the portal's: $(cat "$HTTP_BODY")"
  grep -q '"result":\[\[' "$HTTP_BODY" || fail "passed answer has no rows: $(cat "$HTTP_BODY")"
done
BAD='{"data":["nope"],"from":"tv_channel"}'
q "$BAD"
[ "$(http_header X-Cache)" = pass ] && grep -q '"error"' "$HTTP_BODY" || fail "the portal's error: $(cat "$HTTP_BODY")"
[ "$(cat "$HTTP_BODY")" = "$(portal_q "$BAD")" ] || fail "the portal's error was not passed as it sent it: $(cat "$HTTP_BODY")"
http GET "$D_URL/metrics" "" -H "Authorization: Bearer $PASS_TOKEN"
grep -q '^iptv_agent_pass_selects_total{outcome="sent"} 4$' "$HTTP_BODY" || fail "/metrics: $(grep pass_selects "$HTTP_BODY")"
ok "not configured (alone, joined with a cached table): the portal's rows, X-Cache: pass; its error as it sent it"

# 4 ------------------------------------------------------------------------------
# unknown_tables = "cache", at most one table: a second daemon on its own storage
scen_config --dir "$SCEN_DIR/cdata" "$SCEN_DIR/cache.toml" <<TOML

[serve]
listen = "127.0.0.1:0"
token_env = "PASS_TOKEN"
unknown_tables = "cache"
max_auto_tables = 1

[defaults]
chunk = 100

[[table]]
name = "tv_program"
strategy = "on_demand"
TOML
start_daemon C "$SCEN_DIR/cache.log" -c "$SCEN_DIR/cache.toml" run
D_URL_SAVED=$D_URL; D_URL=$C_URL
login
CHANALL='{"data":["*"],"from":"tv_channel","order_by":"id","limit":3}'
q "$CHANALL"
[ "$(http_header X-Cache)" = pass ] || fail "cache mode, first access: X-Cache '$(http_header X-Cache)': $(cat "$HTTP_BODY")"
cp "$HTTP_BODY" "$SCEN_DIR/chan.pass"
chan_pulled() {
  local s
  s=$(curl -sS --max-time 5 -H "Authorization: Bearer $PASS_TOKEN" "$D_URL/status") || return 1
  python3 -c 'import json,sys; d=json.loads(sys.argv[1]); t=[x for x in d["tables"] if x["name"]=="tv_channel"]; sys.exit(0 if t and t[0]["last_success"] and t[0]["strategy"]=="full" else 1)' "$s"
}
wait_for 60 "tv_channel cached after its first access" chan_pulled
q "$CHANALL"
[ "$(http_header X-Cache)" = hit ] || fail "cache mode, after the pull: X-Cache '$(http_header X-Cache)': $(cat "$HTTP_BODY")"
cmp -s "$HTTP_BODY" "$SCEN_DIR/chan.pass" || fail "cache mode: the cached answer differs from the passed one: $(cat "$HTTP_BODY")"
# the portal names no columns: a cached table knows its own as Field_N but
# the key, so a statement naming others still goes to the portal
q "$CHAN"
[ "$(http_header X-Cache)" = pass ] && grep -q '"result":\[\[' "$HTTP_BODY" || fail "cache mode, named columns: $(cat "$HTTP_BODY")"
PKG='{"data":["id","name"],"from":"package","order_by":"id"}'
q "$PKG"
[ "$(http_header X-Cache)" = pass ] || fail "cache mode over the cap: $(cat "$HTTP_BODY")"
wait_for 20 "the cap logged" grep -q 'max_auto_tables' "$SCEN_DIR/cache.log"
q "$PKG"
[ "$(http_header X-Cache)" = pass ] || fail "cache mode over the cap, again: $(cat "$HTTP_BODY")"
http GET "$D_URL/status" "" -H "Authorization: Bearer $PASS_TOKEN"
json_check "$HTTP_BODY" 'not [t for t in d["tables"] if t["name"] == "package"]' || fail "over the cap, package is in /status"
kill "$C_PID"; wait_exit "$C_PID" 30
# added for the daemon's lifetime: after a restart tv_channel is passed again
start_daemon C "$SCEN_DIR/cache.log" -c "$SCEN_DIR/cache.toml" run
D_URL=$C_URL
login
q "$CHANALL"
[ "$(http_header X-Cache)" = pass ] || fail "cache mode after a restart: X-Cache '$(http_header X-Cache)'"
cmp -s "$HTTP_BODY" "$SCEN_DIR/chan.pass" || fail "cache mode after a restart: $(cat "$HTTP_BODY")"
kill "$C_PID"; wait_exit "$C_PID" 30
D_URL=$D_URL_SAVED
login
ok "unknown_tables = \"cache\": first access passes, then the table is in /status and answers hit; over max_auto_tables: forwarded only; after a restart passed again"

# 5 ------------------------------------------------------------------------------
kill_portal "$P_PID"
q "$CHAN"
grep -q '"code":-32004,"message":"table tv_channel is not cached and the portal is unreachable: ' "$HTTP_BODY" \
  || fail "portal down, uncached table: $(cat "$HTTP_BODY")"
grep -q '"result"' "$HTTP_BODY" && fail "portal down: an uncached table answered a result"
[ -n "$(http_header X-Cache-Error)" ] || fail "portal down: no X-Cache-Error"
wait_for 20 "the agent noticing the portal is down" health_is "$D_URL" unreachable
q "$CHAN"
grep -q '"code":-32004,"message":"table tv_channel is not cached and the portal is unreachable: no answer from ' "$HTTP_BODY" \
  || fail "portal known down, uncached table: $(cat "$HTTP_BODY")"
q "$PROG"
cmp -s "$HTTP_BODY" "$SCEN_DIR/prog.pass" || fail "portal down: the cached table's answer: $(cat "$HTTP_BODY")"
[ "$(http_header X-Cache)" = hit ] && [ "$(http_header X-Cache-Stale)" = true ] || fail "portal down: cached headers"
ok "portal down: -32004 naming the uncached table (never []); the cached table still answers, stale"

# 6 ------------------------------------------------------------------------------
kill "$D_PID"; wait_exit "$D_PID" 30
write_cfg refuse
start_daemon D "$DLOG" -c "$CFG" run
login
q "$CHAN"
grep -q '"code":-32602,"message":"from: unknown table \\"tv_channel\\""' "$HTTP_BODY" || fail "refuse: $(cat "$HTTP_BODY")"
q "$PROG"
[ "$(http_header X-Cache)" = hit ] || fail "refuse: the cached table"
ok "unknown_tables = \"refuse\": an unconfigured table is the local unknown-table error"
kill "$D_PID"; wait_exit "$D_PID" 30
