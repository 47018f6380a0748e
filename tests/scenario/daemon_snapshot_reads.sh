#!/usr/bin/env bash
# Reads while the daemon swaps in a snapshot of ROWS rows over a table it
# already serves: continuous readers on /sql and /api/jsonsql/ get no errors and
# only whole tables (the old one until the swap, the new one after). ROWS:
# 200,000 by default, 100,000 under ASan, 1,000,000 with SCEN_LONG=1.
source "$(dirname "$0")/lib.bash"
scen_size ROWS 1000000 200000 100000
scen_setup --pw pw --retries 5 --timeout 30s -- --rows "$ROWS" <<TOML
[serve]
listen = "127.0.0.1:0"
[[table]]
name = "tv_program"
strategy = "full"
chunk = 10000
ttl = "1h"
TOML
DLOG=$SCEN_DIR/daemon.log
start_daemon D "$DLOG" -c "$CFG" --log-level info run
login_daemon D
wait_for 300 "the first snapshot" status_ok "$D_URL" tv_program
ok "first snapshot of $ROWS rows served"

# The portal changes, so the second snapshot differs: 500 fewer rows.
"$IA_FAKE_PORTAL" mutate --db "$PDB" --table tv_program --deletes 500 --seed 9 >/dev/null
NEW=$((ROWS - 500))
pulls_before=$(grep -c 'table tv_program: snapshot' "$DLOG" || true)
http POST "$D_URL/sync/tv_program"
[ "$HTTP_CODE" = 202 ] || fail "POST /sync/tv_program: $HTTP_CODE $(cat "$HTTP_BODY")"

# Readers until the daemon logs the new snapshot; every answer must be whole.
OUT=$SCEN_DIR/reads
: >"$OUT"
n=0
until [ "$(grep -c 'table tv_program: snapshot' "$DLOG" || true)" -gt "$pulls_before" ]; do
  curl -sS --max-time 10 -X POST --data-binary 'SELECT count(*) FROM tv_program' "$D_URL/sql" >>"$OUT"
  echo >>"$OUT"
  curl -sS --max-time 10 -X POST -H 'Content-Type: application/json' "${SCEN_SESSION[@]}" --data-binary \
    '{"jsonrpc":"2.0","id":1,"method":"select","params":{"data":[{"function":"count","args":["*"]}],"from":"tv_program"}}' \
    "$D_URL/api/jsonsql/" >>"$OUT"
  echo >>"$OUT"
  n=$((n + 2))
  [ "$n" -lt 20000 ] || fail "the second snapshot never finished"
done
bad=$(grep -vE "^\{\"columns\":\[\"count\(\*\)\"\],\"rows\":\[\[($ROWS|$NEW)\]\],\"truncated\":false\}$|^\{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\[\[($ROWS|$NEW)\]\]\}$" "$OUT" | head -3 || true)
[ -z "$bad" ] || fail "a reader saw an error or a partial table: $bad"
old=$(grep -cE "\[\[$ROWS\]\]" "$OUT" || true)
new=$(grep -cE "\[\[$NEW\]\]" "$OUT" || true)
[ "$((old + new))" -eq "$n" ] || fail "$n reads, $old old + $new new"
ok "$n reads during the snapshot: no errors, only whole tables ($old old, $new new)"

http POST "$D_URL/sql" 'SELECT count(*) FROM tv_program'
grep -q "\[\[$NEW\]\]" "$HTTP_BODY" || fail "after the swap: $(cat "$HTTP_BODY")"
kill -TERM "$D_PID"
wait_exit "$D_PID" 30
[ "$rc" -eq 0 ] || fail "daemon exit $rc on SIGTERM"
ok "after the swap every reader sees the new table; SIGTERM exits 0"
echo "$pass_count passed, 0 failed"
