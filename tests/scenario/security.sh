#!/usr/bin/env bash
# Secrets and the local API's guards, end to end with the real binaries.
#  (a) The portal password, a wrong password and the API token are distinctive
#      strings. The agent is driven through failures with --log-level debug: a
#      bad config, an unset password variable, a wrong password, the portal
#      down, 401s, hostile SQL, the portal restarting with another password
#      under a running daemon. Every byte of stdout, stderr, every reply body
#      and header, the journal (decoded) and cache.db are collected; none of
#      the three strings may appear anywhere.
#  (b) A non-loopback listen without a token is refused (config: exit 2 and the
#      reason; token_env unset or empty: exit 2 naming the variable); with a
#      token the daemon listens on 0.0.0.0 and requires it.
#  (c) A body over max_body (1 MiB) is 413 and the daemon still answers;
#      hostile SQL is refused and cache.db (every table, the schema) is
#      unchanged.
# Every wait polls a condition against a deadline.
source "$(dirname "$0")/lib.bash"
PW='pw-Xq7-NEVER-LOGGED-91c2'
BADPW='badpw-Zk2-NEVER-LOGGED-77e0'
TOK='tok-Hv3-NEVER-ECHOED-5d8e'
export SEC_PW="$PW" SEC_BADPW="$BADPW" SEC_TOKEN="$TOK"
ALL=$SCEN_DIR/collected          # every byte the agent produced, one file each
mkdir -p "$ALL"
scen_setup --pw "$PW" --timeout 2s --no-config -- --rows 2000 --seed 17
P_PORT=${P_URL##*:}

# write_cfg LISTEN URL [TOKEN_ENV] [PASSWORD_ENV]
write_cfg() {
  scen_config --url "$2" --pw-env "${4:-SEC_PW}" <<TOML

[serve]
listen = "$1"
${3:+token_env = \"$3\"}

[[table]]
name = "tv_channel"
strategy = "full"
interval = "1h"

[[table]]
name = "subscriber"
strategy = "incremental"
cursor = "updated_at"
interval = "1h"
sweep = "1h"

[[table]]
name = "terminal"
strategy = "on_demand"
TOML
}
n_runs=0
n_hostile=0                       # refused inputs: bad configs, wrong secrets, hostile requests
# agent NAME EXPECTED_RC args...: run the CLI, keep its output under $ALL.
agent() {
  local name=$1 want=$2
  shift 2
  n_runs=$((n_runs + 1))
  [ "$want" = 0 ] || n_hostile=$((n_hostile + 1))
  run_agent "$ALL/$name.out" "$ALL/$name.err" "$@"
  [ "$rc" = "$want" ] || fail "$name: exit $rc, expected $want: $(tail -5 "$ALL/$name.err")"
}
n_replies=0
# req NAME METHOD PATH [BODY] [curl args...]: one request to the daemon; the
# reply's headers and body are kept under $ALL.
req() {
  local name=$1 method=$2 path=$3 body=${4:-}
  shift 3; [ $# -gt 0 ] && shift
  http "$method" "$D_URL$path" "$body" "$@"
  n_replies=$((n_replies + 1))
  case "$HTTP_CODE" in 4*) n_hostile=$((n_hostile + 1)) ;; esac
  cp "$HTTP_HDR" "$ALL/reply-$n_replies-$name.hdr"
  cp "$HTTP_BODY" "$ALL/reply-$n_replies-$name.body"
}
AUTH=(-H "Authorization: Bearer $TOK")

# (b) and the config failures -------------------------------------------------------
write_cfg "0.0.0.0:0" "$P_URL"
agent cfg-nonloopback 2 -c "$CFG" --log-level debug run
grep -q 'is not a loopback address; set token_env' "$ALL/cfg-nonloopback.err" ||
  fail "non-loopback listen without token_env: $(cat "$ALL/cfg-nonloopback.err")"
[ ! -s "$ALL/cfg-nonloopback.out" ] || fail "a refused daemon printed: $(cat "$ALL/cfg-nonloopback.out")"
ok "listen 0.0.0.0:0 without token_env: exit 2, \"$(grep -o 'is not a loopback address[^;]*' "$ALL/cfg-nonloopback.err")\""

write_cfg "0.0.0.0:0" "$P_URL" SEC_NO_SUCH_TOKEN
unset SEC_NO_SUCH_TOKEN
agent run-token-unset 2 -c "$CFG" --log-level debug run
grep -q 'SEC_NO_SUCH_TOKEN' "$ALL/run-token-unset.err" || fail "the refusal does not name the variable: $(cat "$ALL/run-token-unset.err")"
[ ! -s "$ALL/run-token-unset.out" ] || fail "a refused daemon printed: $(cat "$ALL/run-token-unset.out")"
export SEC_EMPTY_TOKEN=""
write_cfg "[::]:0" "$P_URL" SEC_EMPTY_TOKEN
agent run-token-empty 2 -c "$CFG" --log-level debug run
grep -q 'SEC_EMPTY_TOKEN' "$ALL/run-token-empty.err" || fail "empty token: $(cat "$ALL/run-token-empty.err")"
ok "listen 0.0.0.0:0 / [::]:0 with token_env unset or empty: exit 2, the variable named"

printf '[remote]\nurl = "%s"\npassword_env = "SEC_PW"\n[serve]\nlisten = 127.0.0.1:0\n' "$P_URL" >"$SCEN_DIR/bad.toml"
agent cfg-syntax 2 -c "$SCEN_DIR/bad.toml" --log-level debug --once
grep -q 'bad.toml:5:' "$ALL/cfg-syntax.err" || fail "a syntax error without line: $(cat "$ALL/cfg-syntax.err")"
write_cfg "127.0.0.1:0" "$P_URL" SEC_TOKEN SEC_NO_SUCH_PW
unset SEC_NO_SUCH_PW
agent pw-unset 2 -c "$CFG" --log-level debug --once
grep -q 'SEC_NO_SUCH_PW' "$ALL/pw-unset.err" || fail "unset password variable: $(cat "$ALL/pw-unset.err")"
ok "bad config (line named) and an unset password variable (named): exit 2"

# (a) wrong password, portal down, then a good pull --------------------------------
write_cfg "127.0.0.1:0" "$P_URL" SEC_TOKEN SEC_BADPW
agent once-badpw 1 -c "$CFG" --log-level debug --once
grep -qi 'password\|login\|auth' "$ALL/once-badpw.err" "$ALL/once-badpw.out" ||
  fail "a wrong password is not reported: $(tail -3 "$ALL/once-badpw.err")"
agent query-badpw 0 -c "$CFG" --log-level debug status --json
write_cfg "127.0.0.1:0" "http://127.0.0.1:9" SEC_TOKEN
agent once-down 1 -c "$CFG" --log-level debug --once
write_cfg "127.0.0.1:0" "$P_URL" SEC_TOKEN
agent once-good 0 -c "$CFG" --log-level debug --once
ok "--once with a wrong password: exit 1 ($(grep -o 'Invalid username or password' "$ALL/once-badpw.err" | head -1)); portal down: exit 1; right password: exit 0"

# (b) and (c): the daemon on 0.0.0.0 with a token -----------------------------------
write_cfg "0.0.0.0:0" "$P_URL" SEC_TOKEN
DLOG=$ALL/daemon.log
start_daemon D "$DLOG" -c "$CFG" --log-level debug run
case "$D_URL" in http://127.0.0.1:*) ;; *) fail "daemon URL $D_URL" ;; esac
status_pulled() {
  curl -sS --max-time 5 "${AUTH[@]}" "$D_URL/status" 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
t = {x["name"]: x for x in d["tables"]}
sys.exit(0 if t["tv_channel"]["last_success"] and t["subscriber"]["last_success"] else 1)'
}
wait_for 60 "the daemon's first pulls" status_pulled
ok "with token_env set, the daemon listens on 0.0.0.0 ($D_URL) and pulls"

req health GET /health
[ "$HTTP_CODE" = 200 ] || fail "/health without a token: $HTTP_CODE"
SEL='{"jsonrpc":"2.0","id":3,"method":"select","params":{"data":["id"],"from":"tv_channel","order_by":"id","limit":2}}'
for path in /sql /api/jsonsql/ /sync/tv_channel; do
  body='SELECT 1'; [ "$path" = /api/jsonsql/ ] && body=$SEL
  req none POST "$path" "$body"
  [ "$HTTP_CODE" = 401 ] || fail "POST $path without a token: HTTP $HTTP_CODE $(cat "$HTTP_BODY")"
  req wrong POST "$path" "$body" -H "Authorization: Bearer ${TOK%?}x"
  [ "$HTTP_CODE" = 401 ] || fail "POST $path with a wrong token: HTTP $HTTP_CODE"
  req prefix POST "$path" "$body" -H "Authorization: Bearer ${TOK%?}"
  [ "$HTTP_CODE" = 401 ] || fail "POST $path with a prefix of the token: HTTP $HTTP_CODE"
  req empty POST "$path" "$body" -H "Authorization: Bearer "
  [ "$HTTP_CODE" = 401 ] || fail "POST $path with an empty Bearer: HTTP $HTTP_CODE"
done
for path in /status /metrics /export/snapshot; do
  req none GET "$path"
  [ "$HTTP_CODE" = 401 ] || fail "GET $path without a token: HTTP $HTTP_CODE"
done
req lower POST /sql 'SELECT 1 AS one' -H "Authorization: bearer $TOK"
[ "$HTTP_CODE" = 200 ] || fail "lowercase bearer (the scheme is case-insensitive): HTTP $HTTP_CODE"
req login-bad POST /api/jsonrpc/ '{"jsonrpc":"2.0","id":1,"method":"authorize_user","params":{"username":"admin","password":"'"$BADPW"'"}}'
grep -q 'Invalid username or password' "$HTTP_BODY" || fail "authorize_user with a wrong password: $(cat "$HTTP_BODY")"
req login POST /api/jsonrpc/ '{"jsonrpc":"2.0","id":1,"method":"authorize_user","params":{"username":"admin","password":"'"$TOK"'"}}'
sid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["result"]["session_id"])' "$HTTP_BODY")
req session POST /api/jsonsql/ "$SEL" -H "Iptvportal-Authorization: sessionid=$sid"
[ "$HTTP_CODE" = 200 ] && grep -q '"result":\[\[' "$HTTP_BODY" || fail "select with the session: $HTTP_CODE $(cat "$HTTP_BODY")"
# the portal's own account logs in too ([serve] auth = "portal"), a wrong username does not
req login-user POST /api/jsonrpc/ '{"jsonrpc":"2.0","id":2,"method":"authorize_user","params":{"username":"root","password":"'"$PW"'"}}'
grep -q 'Invalid username or password' "$HTTP_BODY" || fail "authorize_user with a wrong username: $(cat "$HTTP_BODY")"
req login-account POST /api/jsonrpc/ '{"jsonrpc":"2.0","id":2,"method":"authorize_user","params":{"username":"admin","password":"'"$PW"'"}}'
sid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["result"]["session_id"])' "$HTTP_BODY")
req session-account POST /api/jsonsql/ "$SEL" -H "Iptvportal-Authorization: sessionid=$sid"
[ "$HTTP_CODE" = 200 ] && grep -q '"result":\[\[' "$HTTP_BODY" || fail "select with the account's session: $HTTP_CODE $(cat "$HTTP_BODY")"
req session-unknown POST /api/jsonsql/ "$SEL" -H "Iptvportal-Authorization: sessionid=0123456789abcdef0123456789abcdef"
[ "$HTTP_CODE" = 401 ] && grep -q 'Session expired or invalid' "$HTTP_BODY" || fail "unknown session: $HTTP_CODE $(cat "$HTTP_BODY")"
req status GET /status "" "${AUTH[@]}"
[ "$HTTP_CODE" = 200 ] || fail "/status with the token: $HTTP_CODE"
req metrics GET /metrics "" "${AUTH[@]}"
[ "$HTTP_CODE" = 200 ] || fail "/metrics with the token: $HTTP_CODE"
ok "token: 401 without it, with a wrong one, a prefix, an empty Bearer (/sql /api/jsonsql/ /sync /status /metrics /export); 200 with it, lowercase bearer or a session from authorize_user (token or the [remote] account); unknown session 401; /health open"

# (c) hostile SQL against the running daemon: refused, cache.db unchanged
fingerprint() {
  local t
  sq "$CDB" "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name" | sha256sum
  for t in $(sq "$CDB" "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"); do
    sq "$CDB" "SELECT * FROM \"$t\" ORDER BY 1" | sha256sum
  done
}
before=$(fingerprint | sha256sum)
hostile=(
  'DELETE FROM subscriber'
  'SELECT 1; DELETE FROM subscriber'
  'DROP TABLE tv_channel'
  'PRAGMA writable_schema = 1'
  "ATTACH '$SCEN_DIR/x.db' AS x"
  "VACUUM INTO '$SCEN_DIR/copy.db'"
  'SELECT * FROM _agent_tables'
  'SELECT sql FROM (SELECT NULL AS sql WHERE 0) NATURAL FULL JOIN sqlite_master'
  "SELECT regexp_replace('aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', '(a*)*\\1\\1b', 'x')"
  'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c'
)
for s in "${hostile[@]}"; do
  req hostile POST /sql "$s" "${AUTH[@]}"
  [ "$HTTP_CODE" = 400 ] || fail "hostile SQL answered HTTP $HTTP_CODE: $s -> $(head -c 300 "$HTTP_BODY")"
done
[ ! -e "$SCEN_DIR/x.db" ] && [ ! -e "$SCEN_DIR/copy.db" ] || fail "ATTACH or VACUUM INTO created a file"
req hostile-rpc POST /api/jsonsql/ '{"jsonrpc":"2.0","id":1,"method":"select","params":{"data":["name"],"from":"sqlite_master"}}' "${AUTH[@]}"
grep -q '"code":-32602' "$HTTP_BODY" || fail "JSONSQL from sqlite_master: $(cat "$HTTP_BODY")"

# a body over max_body: 413, and the daemon still answers
head -c $((2 * 1024 * 1024)) /dev/zero | tr '\0' ' ' >"$SCEN_DIR/big.sql"
code=$(curl -sS --max-time 30 -o "$ALL/reply-big.body" -D "$ALL/reply-big.hdr" -w '%{http_code}' "${AUTH[@]}" \
         --data-binary @"$SCEN_DIR/big.sql" "$D_URL/sql") || fail "2 MiB POST: curl failed"
[ "$code" = 413 ] || fail "a 2 MiB body: HTTP $code"
n_hostile=$((n_hostile + 1))
req after-big POST /sql 'SELECT count(*) FROM tv_channel' "${AUTH[@]}"
[ "$HTTP_CODE" = 200 ] || fail "/sql after the 413: HTTP $HTTP_CODE"
after=$(fingerprint | sha256sum)
[ "$before" = "$after" ] || fail "cache.db changed under hostile requests"
ok "${#hostile[@]} hostile /sql bodies and a JSONSQL select of sqlite_master refused; a 2 MiB body: 413; the daemon answers after; cache.db unchanged"

# the CLI beside the daemon, then the portal down, then back with another password
agent status-json 0 -c "$CFG" --log-level debug status --json
agent query 0 -c "$CFG" --log-level debug query 'SELECT count(*) FROM subscriber'
agent query-meta 0 -c "$CFG" --log-level debug query 'SELECT * FROM _agent_tables'   # local: the file's owner may
agent query-write 1 -c "$CFG" --log-level debug query 'DELETE FROM subscriber'
tid=$(sq "$PDB" "SELECT id FROM terminal ORDER BY id LIMIT 1")
agent get 0 -c "$CFG" --log-level debug get terminal "id=$tid"
kill_portal "$P_PID"
req sync-down POST /sync/subscriber "" "${AUTH[@]}"
wait_for 30 "/health: portal unreachable" health_is "$D_URL" unreachable
start_portal P --db "$PDB" --port "$P_PORT" --password "other-password"
req sync-badpw POST /sync/subscriber "" "${AUTH[@]}"
[ "$HTTP_CODE" = 202 ] || fail "POST /sync/subscriber: HTTP $HTTP_CODE"
login_refused() { grep -q 'Invalid username or password' "$DLOG"; }
wait_for 30 "the daemon's login refused by the restarted portal" login_refused
req status-badpw GET /status "" "${AUTH[@]}"
ok "CLI status/query/get beside the daemon; portal down (unreachable), back with another password (login refused in the log)"

kill -TERM "$D_PID"
wait_exit "$D_PID" 15
[ "$rc" = 0 ] || fail "daemon exit status after SIGTERM: $rc"
agent journal-verify 0 -c "$CFG" journal verify
agent journal-cat 0 -c "$CFG" journal cat

# every byte: the three secrets appear nowhere ---------------------------------------
cp "$CDB" "$ALL/cache.db"
for f in "$DATA"/journal/* "$DATA"/agent.url; do [ -f "$f" ] && cp "$f" "$ALL/"; done
grep -q 'DEBUG\|debug' "$DLOG" || fail "no debug lines in the daemon's log"
grep -q 'unauthorized' "$ALL"/reply-*.body || fail "no 401 reply was collected"
if grep -lE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$ALL"/*.err "$DLOG" >"$SCEN_DIR/hits"; then
  fail "sanitizer report in: $(cat "$SCEN_DIR/hits")"
fi
for secret in "$PW" "$BADPW" "$TOK"; do
  printf 'x\0%sy' "$secret" >"$SCEN_DIR/canary"       # the search sees a secret amid binary bytes
  grep -qaF -- "$secret" "$SCEN_DIR/canary" || fail "grep cannot find $secret in binary data"
  if grep -rlaF -- "$secret" "$ALL" >"$SCEN_DIR/hits"; then
    fail "a secret appears in: $(cat "$SCEN_DIR/hits") — $(grep -raF -- "$secret" "$ALL" | head -3)"
  fi
done
bytes=$(cat "$ALL"/* | wc -c)
ok "password, wrong password and token in none of $(ls "$ALL" | wc -l) files ($bytes bytes: $n_runs CLI runs, $n_replies replies, the daemon's debug log of $(wc -l <"$DLOG") lines, journal, cache.db)"
echo "hostile inputs tried: $n_hostile"
echo "$pass_count passed, 0 failed"
