#!/usr/bin/env bash
# "Pull now" means a pull that starts after the ask (POST /sync/TABLE): when a
# pull of that table is already running, it may have read the portal before the
# change the caller waits for, so one more pull follows it. The portal answers
# after 400 ms (latency fault; the answer is computed on arrival), the table's
# interval is 1 h, so only that follow-up pull can bring a change made while
# the first pull's answer is in flight.
source "$(dirname "$0")/lib.bash"
scen_setup --pw 'e2e-again-pw' -- --rows 1000 --seed 5 <<TOML

[serve]
listen = "127.0.0.1:0"

[[table]]
name = "subscriber"
strategy = "incremental"
cursor = "updated_at"
interval = "1h"
sweep = "0s"
TOML
start_daemon D "$SCEN_DIR/daemon.log" -c "$CFG" run
converged() { cmp_table "$CDB" "$PDB" subscriber 2>/dev/null; }
wait_for 60 "first pull" converged
ok "first pull done"

pulls() { curl -sS "$D_URL/status" | python3 -c 'import json,sys; d=json.load(sys.stdin); t=[t for t in d["schedule"] if t["table"]=="subscriber"][0]; print(t["pulls"], "running" if t["running"] else "idle")'; }
running() { [ "$(pulls | cut -d' ' -f2)" = running ]; }
idle_at() { [ "$(pulls)" = "$1 idle" ]; }
portal_admin "$P_URL" /_fake/faults '{"latency_ms":400}' >/dev/null
p0=$(pulls | cut -d' ' -f1)
http POST "$D_URL/sync/subscriber" "{}"
[ "$HTTP_CODE" = 202 ] || fail "sync: HTTP $HTTP_CODE"
wait_for 30 "the pull running" running
portal_admin "$P_URL" /_fake/mutate '{"table":"subscriber","updates":20,"inserts":5,"seed":3}' >/dev/null
http POST "$D_URL/sync/subscriber" "{}"
[ "$HTTP_CODE" = 202 ] || fail "second sync: HTTP $HTTP_CODE"
running || fail "the first pull ended before the second ask (make the latency longer)"
wait_for 60 "two pulls after two asks" idle_at $((p0 + 2))
portal_admin "$P_URL" /_fake/faults '{"latency_ms":0}' >/dev/null
converged || fail "the change made during the running pull did not arrive"
ok "a sync asked for during a running pull is followed by one more pull; the change arrived"
echo "daemon_sync_again: $pass_count checks passed"
