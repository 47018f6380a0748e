#!/usr/bin/env bash
# The reference portal (tests/ref_portal/, PostgreSQL underneath) as the agent's
# portal: `sync --full` of every generated table through it, pages capped below
# the agent's chunk, then each table's ids in the cache equal PostgreSQL's (media's
# run up to near INT64_MAX, so int64 survives both ways). Then the protocol as
# the oracle answers it: login refused, no session -> 401, values typed by
# PostgreSQL, string literals coerced (or refused) by PostgreSQL, the page cap,
# a batch, and what it does not support refused by name.
# Skips (exit 77) only when PostgreSQL is not installed (scripts/deps.sh installs it).
source "$(dirname "$0")/lib.bash"
source "$(dirname "$0")/../ref_portal/lib.bash"
if ! ref_pg_available; then
  echo "# skipped: PostgreSQL (initdb, pg_ctl) is not installed; scripts/deps.sh installs it"
  exit 77
fi
pq() { ref_pq "$1"; }

PW=ref-portal-pw
ref_start P --rows 3000 --seed 7 --password "$PW" --page-cap 700
O=$SCEN_DIR/last.out E=$SCEN_DIR/last.err DATA=$SCEN_DIR/data CDB=$SCEN_DIR/data/cache.db CFG=$SCEN_DIR/agent.toml
export SCEN_PW=$PW SCEN_RETRIES=1 SCEN_TIMEOUT=10s
TABLES=(tv_program tv_channel subscriber terminal media tv_category package tv_program_category)
scen_config <<TOML

[[table]]
name = "tv_program"
strategy = "incremental"
cursor = "updated_at"
chunk = 1000

[[table]]
name = "tv_channel"
columns = ["id", "name", "url", "is_tv", "languages", "params", "updated_at"]

[[table]]
name = "subscriber"
strategy = "incremental"
cursor = "updated_at"
chunk = 300

[[table]]
name = "terminal"

[[table]]
name = "media"
chunk = 500

[[table]]
name = "tv_category"

[[table]]
name = "package"

[[table]]
name = "tv_program_category"
TOML

# 1 ------------------------------------------------------------------------------
[ "$(pq "SELECT count(*) FROM tv_program")" = 3000 ] || fail "tv_program in PostgreSQL: $(pq "SELECT count(*) FROM tv_program")"
[ "$(pq "SELECT count(*) FROM information_schema.columns WHERE table_name = 'media'")" = 74 ] ||
  fail "media should have fakegen's 74 columns in PostgreSQL"
[ "$(pq "SELECT data_type FROM information_schema.columns WHERE table_name = 'tv_channel' AND column_name = 'params'")" = jsonb ] ||
  fail "JSON columns should be jsonb"
ok "the generated tables are in PostgreSQL with PostgreSQL types"

agent sync --full
expect_rc 0 "sync --full against the reference portal"
for t in "${TABLES[@]}"; do
  want=$(pq "SELECT count(*) FROM $t")
  have=$(sqlite3 "$CDB" "SELECT count(*) FROM $t")
  [ "$want" = "$have" ] && [ "$want" -gt 0 ] || fail "$t: $have rows in the cache, $want in PostgreSQL"
  diff <(pq "SELECT id FROM $t ORDER BY id") <(sqlite3 "$CDB" "SELECT id FROM $t ORDER BY id") >/dev/null ||
    fail "$t: the cache's ids differ from PostgreSQL's"
done
[ "$(pq "SELECT max(id) FROM media")" = "$(sqlite3 "$CDB" "SELECT max(id) FROM media")" ] || fail "media's largest id changed"
ok "sync --full through the reference portal: every table's ids equal PostgreSQL's ($(sqlite3 "$CDB" "SELECT count(*) FROM tv_program") tv_program rows, pages capped at 700)"

agent sync
expect_rc 0 "sync (increments by updated_at, compared with timestamp string literals)"
for t in tv_program subscriber; do
  [ "$(pq "SELECT count(*) FROM $t")" = "$(sqlite3 "$CDB" "SELECT count(*) FROM $t")" ] || fail "$t after sync: counts differ"
done
ok "sync again: the incremental tables' cursor queries (gte/gt on updated_at with string literals) answer, nothing differs"

# 2 ------------------------------------------------------------------------------
rpc() { curl -sS --max-time 10 "$P_URL/api/jsonrpc/" -d "$1"; }
SID=$(rpc '{"jsonrpc":"2.0","id":1,"method":"authorize_user","params":{"username":"admin","password":"'"$PW"'"}}' |
      sed -n 's/.*"session_id":"\([0-9a-f]*\)".*/\1/p')
[ -n "$SID" ] || fail "login refused"
bad=$(rpc '{"jsonrpc":"2.0","id":1,"method":"authorize_user","params":{"username":"admin","password":"nope"}}')
[ "$bad" = '{"jsonrpc":"2.0","id":1,"error":{"code":-32001,"message":"Invalid username or password"}}' ] ||
  fail "wrong password: $bad"
code=$(curl -sS -o "$SCEN_DIR/body" -w '%{http_code}' "$P_URL/api/jsonsql/" -H 'Iptvportal-Authorization: sessionid=0123' \
       -d '{"jsonrpc":"2.0","id":1,"method":"select","params":{"data":"id","from":"package"}}')
[ "$code" = 401 ] && grep -q Unauthorized "$SCEN_DIR/body" || fail "unknown session: HTTP $code $(cat "$SCEN_DIR/body")"
ok "login, a wrong password refused as the fake portal words it, an unknown session HTTP 401"

sel() {
  curl -sS --max-time 10 "$P_URL/api/jsonsql/" -H "Iptvportal-Authorization: sessionid=$SID" \
    -d '{"jsonrpc":"2.0","id":2,"method":"select","params":'"$1"'}'
}
# pqrows SQL: the ids SQL selects as result rows, [[1],[2]] (or []).
pqrows() { echo "[$(pq "SELECT string_agg('[' || id || ']', ',' ORDER BY id) FROM ($1) s")]"; }
# expect PARAMS RESULT: the answer's result, or "ERROR message" (JSON-escaped), must be RESULT.
expect() {
  local got
  got=$(sel "$1")
  case $got in
    '{"jsonrpc":"2.0","id":2,"result":'*'}') got=${got#*\"result\":}; got=${got%\}} ;;
    *'"error":{'*'"message":"'*) got=${got#*\"message\":\"}; got="ERROR ${got%\"\}\}}" ;;
  esac
  [ "$got" = "$2" ] || fail "select $1: got $got, want $2"
}
pkg_max=$(pq "SELECT max(id) FROM package")
expect '{"data":[{"function":"count","args":["*"]}],"from":"tv_program"}' '[[3000]]'
expect '{"data":[{"function":"max","args":"id"}],"from":"media"}' "[[$(pq "SELECT max(id) FROM media")]]"
expect '{"data":["id"],"from":"package","where":{"eq":["id","'"$pkg_max"'"]}}' "[[$pkg_max]]"
expect '{"data":[{"function":"count","args":["*"]}],"from":"package","where":{"neq":["name","title"]}}' \
       "[[$(pq "SELECT count(*) FROM package WHERE name <> 'title'")]]"
expect '{"data":["id"],"from":"package","where":{"eq":["id","abc"]}}' 'ERROR query failed: ERROR:  invalid input syntax for type bigint: \"abc\"'
expect '{"data":[{"function":"count","args":["*"]}],"from":"subscriber","where":{"gte":["updated_at","2025-01-01"]}}' \
       "[[$(pq "SELECT count(*) FROM subscriber WHERE updated_at >= '2025-01-01'")]]"
expect '{"data":[{"div":[7,2]},{"mod":[-7,2]},{"div":[7.0,2]},{"function":"lower","args":"ЁЖИК"},{"is":[null,null]}]}' \
       '[[3,-1,3.5000000000000000,"ёжик",true]]'
expect '{"data":[{"function":"coalesce","args":[null,"x"]},{"concat":["a",1,null,true],"as":"c"}]}' '[["x","a1t"]]'
[ "$(pq "SELECT bool_or(is_tv) AND NOT bool_and(is_tv) FROM tv_channel")" = t ] || fail "tv_channel.is_tv should hold both"
expect '{"data":[{"function":"count","args":["*"]}],"from":"tv_channel","where":{"not":"is_tv"}}' \
       "[[$(pq "SELECT count(*) FROM tv_channel WHERE NOT is_tv")]]"
expect '{"data":[{"function":"max","args":"is_tv"},{"function":"min","args":"is_tv"}],"from":"tv_channel"}' '[[true,false]]'
expect '{"data":["id"],"from":"tv_channel","where":{"in":["id",{"select":{"data":{"function":"min","args":"id"},"from":"tv_channel"}}]}}' \
       "[[$(pq "SELECT min(id) FROM tv_channel")]]"
expect '{"data":[{"function":"regexp_replace","args":["ab12c3","\\d+","#","g"]}]}' '[["ab#c#"]]'
expect '{"data":["id"],"from":"package","where":{"in":["id",{"values":[[1],[2]]}]},"order_by":"id"}' \
       "$(pqrows "SELECT id FROM package WHERE id IN (1, 2)")"
expect '{"data":["t.id"],"from":[{"table":"tv_category","as":"t"},{"join":"package","as":"p","join_type":"left","on":{"eq":[{"t":"id"},{"p":"id"}]}}],"where":{"is":[{"p":"id"},null]},"order_by":"t.id","limit":1}' \
       "$(pqrows "SELECT t.id FROM tv_category t LEFT JOIN package p ON t.id = p.id WHERE p.id IS NULL ORDER BY t.id LIMIT 1")"
ok "values and semantics as PostgreSQL gives them (int64, coercion of string literals, integer division, numeric, Cyrillic lower, max/min of booleans, regexps, subquery, joins)"

n=$(sel '{"data":["id"],"from":"tv_program","order_by":"id"}' | grep -o '\[[0-9]*\]' | wc -l)
[ "$n" = 700 ] || fail "a select without limit: $n rows, the page cap is 700"
n=$(sel '{"data":["id"],"from":"tv_program","order_by":"id","limit":2000}' | grep -o '\[[0-9]*\]' | wc -l)
[ "$n" = 700 ] || fail "limit above the page cap: $n rows"
batch=$(curl -sS --max-time 10 "$P_URL/api/jsonsql/" -H "Iptvportal-Authorization: sessionid=$SID" \
        -d '[{"jsonrpc":"2.0","id":1,"method":"select","params":{"data":[{"function":"count","args":["*"]}],"from":"package"}},{"jsonrpc":"2.0","id":2,"method":"select","params":{"data":[1]}}]')
[ "$batch" = '[{"jsonrpc":"2.0","id":1,"result":[['"$(pq "SELECT count(*) FROM package")"']]},{"jsonrpc":"2.0","id":2,"result":[[1]]}]' ] ||
  fail "batch: $batch"
ok "the page cap (no limit, a larger limit) and a batch"

expect '{"data":["id"],"from":"package","order_by":{"desc":"id"}}' 'ERROR order_by: only column names'
expect '{"data":["id"],"from":"package","group":"id"}' 'ERROR select: unsupported key \"group\"'
expect '{"data":[{"function":"md5","args":"name"}],"from":"package"}' 'ERROR data: unsupported function \"md5\"'
expect '{"data":["id"],"from":"package","where":{"between":["id",1,2]}}' 'ERROR unsupported operator \"between\"'
expect '{"data":["id"],"from":"package; DROP TABLE package"}' 'ERROR from: \"package; DROP TABLE package\" is not a plain name ([A-Za-z_][A-Za-z0-9_]*)'
expect '{"data":["id"],"from":"package","where":{"eq":["name","x'"'"'; DROP TABLE package; --"]}}' '[]'
up=$(curl -sS --max-time 10 "$P_URL/api/jsonsql/" -H "Iptvportal-Authorization: sessionid=$SID" \
      -d '{"jsonrpc":"2.0","id":3,"method":"upsert","params":{"into":"package"}}')
[ "$up" = '{"jsonrpc":"2.0","id":3,"error":{"code":-32601,"message":"the reference portal does not support method \"upsert\""}}' ] ||
  fail "upsert: $up"
ok "what it does not support is refused by name (directions, keys, functions, operators, methods); names and strings cannot inject"

# write METHOD PARAMS RESULT: as expect, for insert/update/delete.
write() {
  local got
  got=$(curl -sS --max-time 10 "$P_URL/api/jsonsql/" -H "Iptvportal-Authorization: sessionid=$SID" \
        -d '{"jsonrpc":"2.0","id":2,"method":"'"$1"'","params":'"$2"'}')
  case $got in
    '{"jsonrpc":"2.0","id":2,"result":'*'}') got=${got#*\"result\":}; got=${got%\}} ;;
    *'"error":{'*'"message":"'*) got=${got#*\"message\":\"}; got="ERROR ${got%\"\}\}}" ;;
  esac
  [ "$got" = "$3" ] || fail "$1 $2: got $got, want $3"
}
npkg=$(pq "SELECT count(*) FROM package")
write insert '{"into":"package","columns":["id","name"],"values":[[999999,"ref-test"]],"returning":"id"}' '[[999999]]'
write update '{"table":"package","set":{"name":"ref-test-2"},"where":{"eq":["id",999999]}}' '1'
[ "$(pq "SELECT name FROM package WHERE id = 999999")" = ref-test-2 ] || fail "the update did not reach PostgreSQL"
write insert '{"into":"package","columns":["id","name"],"values":[[999999,"again"]]}' \
      'ERROR query failed: ERROR:  duplicate key value violates unique constraint \"package_pkey\"'
[ "$(pq "SELECT name FROM package WHERE id = 999999")" = ref-test-2 ] || fail "a refused insert changed the row"
write delete '{"from":"package","where":{"eq":["id",999999]},"returning":["id","name"]}' '[[999999,"ref-test-2"]]'
[ "$(pq "SELECT count(*) FROM package")" = "$npkg" ] || fail "package: $(pq "SELECT count(*) FROM package") rows, $npkg before"
ok "insert, update (the row count without returning), delete with returning; a refused insert changes nothing"

# 3 ------------------------------------------------------------------------------
# --session-ttl-ms: a session older than that is refused as an unknown one (a
# second portal on the same database; it reloads the same data).
stop_portal "$P_PID"
ref_start P --rows 3000 --seed 7 --password "$PW" --session-ttl-ms 1
SID=$(rpc '{"jsonrpc":"2.0","id":1,"method":"authorize_user","params":{"username":"admin","password":"'"$PW"'"}}' |
      sed -n 's/.*"session_id":"\([0-9a-f]*\)".*/\1/p')
[ -n "$SID" ] || fail "login refused"
code=$(curl -sS -o "$SCEN_DIR/body" -w '%{http_code}' "$P_URL/api/jsonsql/" -H "Iptvportal-Authorization: sessionid=$SID" \
       -d '{"jsonrpc":"2.0","id":1,"method":"select","params":{"data":"id","from":"package"}}')
[ "$code" = 401 ] || fail "a session past --session-ttl-ms: HTTP $code $(cat "$SCEN_DIR/body")"
[ "$(pq "SELECT count(*) FROM tv_program")" = 3000 ] || fail "the reload changed tv_program"
ok "--session-ttl-ms: an expired session is HTTP 401"
