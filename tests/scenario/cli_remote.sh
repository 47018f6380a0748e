#!/usr/bin/env bash
# iptv-agent remote / introspect end to end against the fake portal, the exit
# codes of interface.md, and the password never appearing in any output.
source "$(dirname "$0")/lib.bash"
scen_setup --pw 'Zq9-very-secret-PW' --timeout 5s -- --rows 2000 --forbid subscriber </dev/null
ALL=$SCEN_DIR/all-output; : >"$ALL"
keep() { cat "$O" "$E" >>"$ALL"; }

run_agent "$O" "$E" -c "$CFG" --log-level debug remote \
  '{"data":["id","name","is_tv","languages"],"from":"tv_channel","order_by":"id","limit":10}'
keep; expect_rc 0 "remote select"
[ "$(wc -l <"$O")" -eq 10 ] || fail "expected 10 rows, got $(wc -l <"$O")"
grep -qE '^\[[0-9]+,".*",(true|false),(\[.*\]|null)\]$' "$O" || fail "row shape: $(head -1 "$O")"
ok "remote prints a page of tv_channel as JSON lines"

run_agent "$O" "$E" -c "$CFG" remote '{"data":["id"],"from":"media","order_by":"id","limit":1}'
keep; expect_rc 0 "media id"
id=$(tr -d '[]' <"$O")
run_agent "$O" "$E" -c "$CFG" remote "{\"method\":\"select\",\"params\":{\"data\":[\"id\"],\"from\":\"media\",\"where\":{\"eq\":[\"id\",$id]}}}"
keep; expect_rc 0 "media by id"
[ "$(cat "$O")" = "[$id]" ] || fail "int64 id $id came back as $(cat "$O")"
ok "int64 ids beyond 2^53 survive the command line both ways ($id)"

run_agent "$O" "$E" -c "$CFG" introspect tv_channel
keep; expect_rc 0 "introspect"
grep -q '13 columns' "$O" || fail "introspect: $(cat "$O")"
grep -q '^\[\[table\]\]$' "$O" && grep -q '^name = "tv_channel"$' "$O" || fail "no [[table]] block"
ok "introspect prints column count and a [[table]] block"

run_agent "$O" "$E" -c "$CFG" introspect subscriber
keep; expect_rc 1 "introspect forbidden"
grep -q 'forbidden' "$E" || fail "forbidden not said: $(cat "$E")"
ok "a forbidden table is a distinct error, exit 1"

run_agent "$O" "$E" -c "$CFG" remote '{"data":["nosuch"],"from":"tv_channel"}'
keep; expect_rc 1 "rpc error"
grep -q 'rpc error' "$E" && grep -q 'nosuch' "$E" || fail "rpc error text: $(cat "$E")"
ok "a portal error is reported with its message"

run_agent "$O" "$E" -c "$CFG" remote '{"data":["id"],'
keep; expect_rc 2 "bad JSON argument"
grep -q 'line 1, column' "$E" || fail "bad JSON message: $(cat "$E")"
ok "bad JSON on the command line: exit 2 with line:column"

SCEN_PW='wrong-'"$PW" run_agent "$O" "$E" -c "$CFG" --log-level debug remote '{"data":["id"],"from":"tv_channel"}'
keep; expect_rc 1 "wrong password"
grep -q 'auth error' "$E" || fail "auth error not said: $(cat "$E")"
ok "a refused login is an auth error, exit 1"

env -u SCEN_PW "$IA_AGENT" -c "$CFG" remote '{"data":["id"],"from":"tv_channel"}' >"$O" 2>"$E" && rc=0 || rc=$?
keep; expect_rc 1 "no password"
grep -q 'SCEN_PW' "$E" || fail "missing password variable not named: $(cat "$E")"
ok "a missing password names its environment variable"

printf '[remote]\nurl = "%s"\nretires = 3\n' "$P_URL" >"$SCEN_DIR/bad.toml"
run_agent "$O" "$E" -c "$SCEN_DIR/bad.toml" remote '{"data":["id"],"from":"tv_channel"}'
keep; expect_rc 2 "config error"
grep -q 'bad.toml:3:1' "$E" && grep -q 'retires' "$E" || fail "config error text: $(cat "$E")"
ok "a config error exits 2 naming file:line:column and the key"

sed 's/^retries = 1$/retries = 1\nverify_tls = false/' "$CFG" >"$SCEN_DIR/insecure.toml"
run_agent "$O" "$E" -c "$SCEN_DIR/insecure.toml" remote '{"data":["id"],"from":"tv_channel","limit":1}'
keep; expect_rc 0 "verify_tls = false"
grep -q 'TLS VERIFICATION IS OFF' "$E" || fail "no warning for verify_tls = false: $(cat "$E")"
run_agent "$O" "$E" -c "$CFG" remote '{"data":["id"],"from":"tv_channel","limit":1}'
keep; ! grep -q 'TLS VERIFICATION' "$E" || fail "TLS warning although verify_tls is on"
ok "verify_tls = false works with a loud warning; the default says nothing"

run_agent "$O" "$E" frobnicate; keep; expect_rc 2 "unknown command"
run_agent "$O" "$E" --help; keep; expect_rc 0 "--help"
grep -q 'introspect' "$O" || fail "--help lacks introspect"
run_agent "$O" "$E" -c "$CFG" remote --help; keep; expect_rc 0 "remote --help"
ok "usage errors exit 2; --help exits 0"

# Writes (issue 11): a row count is a result, and a write is never sent twice.
pkg() {  # rows named $1 in package, read on the portal
  run_agent "$O" "$E" -c "$CFG" remote \
    "{\"data\":[{\"function\":\"count\",\"args\":[\"*\"]}],\"from\":\"package\",\"where\":{\"eq\":[\"name\",\"$1\"]}}"
  expect_rc 0 "count $1"
  tr -d '[]' <"$O"
}
INS='{"into":"package","columns":["name","paid"],"values":[["cli-w",true]]}'
portal_admin "$P_URL" /_fake/faults '{"write_result":"count"}' >/dev/null
run_agent "$O" "$E" -c "$CFG" remote --method insert "$INS"
keep; expect_rc 0 "insert answered with a count"
[ "$(cat "$O")" = 1 ] || fail "insert printed: $(cat "$O") / $(cat "$E")"
[ "$(pkg cli-w)" = 1 ] || fail "portal rows after one insert: $(pkg cli-w)"
run_agent "$O" "$E" -c "$CFG" remote "{\"method\":\"update\",\"params\":{\"table\":\"package\",\"set\":{\"paid\":false},\"where\":{\"eq\":[\"name\",\"cli-w\"]}}}"
keep; expect_rc 0 "update answered with a count"
[ "$(cat "$O")" = 1 ] || fail "update printed: $(cat "$O")"
ok "remote --method insert / update answered {\"result\":1}: prints 1, exit 0, exactly one row on the portal"

# The portal runs the write, then the answer is lost (the login takes the first slot).
for fault in drop garbage 500after; do
  before=$(pkg cli-w)
  portal_admin "$P_URL" /_fake/faults "{\"queue\":[\"ok\",\"$fault\"]}" >/dev/null
  run_agent "$O" "$E" -c "$CFG" remote --method insert "$INS"
  keep; expect_rc 4 "insert whose answer was lost ($fault)"
  grep -q 'write outcome unknown: insert at' "$E" && grep -q 'check before retrying' "$E" || fail "$fault: message: $(cat "$E")"
  [ "$(pkg cli-w)" = $((before + 1)) ] || fail "$fault: portal rows $(pkg cli-w), want $((before + 1)) (resent?)"
done
before=$(pkg cli-w)
portal_admin "$P_URL" /_fake/faults '{"queue":["ok","drop"]}' >/dev/null
run_agent "$O" "$E" -c "$CFG" remote --method delete '{"from":"package","where":{"eq":["name","cli-w"]}}'
keep; expect_rc 4 "delete whose answer was lost"
[ "$(pkg cli-w)" = 0 ] || fail "portal rows after the lost delete: $(pkg cli-w) (of $before)"
ok "insert (drop, garbage, 500after) and delete (drop) whose answer was lost: exit 4 \"write outcome unknown\", applied exactly once"

stop_portal "$P_PID"
run_agent "$O" "$E" -c "$CFG" remote '{"data":["id"],"from":"tv_channel"}'
keep; expect_rc 1 "portal down"
grep -q 'gave up after 2 tries' "$E" || fail "portal down text: $(cat "$E")"
ok "portal down: transport error after the configured retries, exit 1"

if grep -qF -- "$PW" "$ALL"; then fail "the password appears in the agent's output"; fi
ok "the password appears in none of $(wc -l <"$ALL") lines of output"
echo "$pass_count passed, 0 failed"
