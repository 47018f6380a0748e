#!/usr/bin/env bash
# The documented systemd install works as written: the install lines in the
# unit's header comment are run (under a temporary root instead of /), the unit
# passes `systemd-analyze verify`, and the daemon starts as an unprivileged user
# (as DynamicUser= runs it) with the installed agent.toml and secrets.env.
# The old step (agent.toml root:root 0640) is shown to fail the same way the
# service did, so this test catches a regression of the install text.
source "$(dirname "$0")/lib.bash"
: "${IA_SOURCE_DIR:?IA_SOURCE_DIR must name the source tree}"
unit_src=$IA_SOURCE_DIR/agent/systemd/iptv-agent.service
root=$SCEN_DIR/root
chmod 0755 "$SCEN_DIR"   # an unprivileged user must reach the files below

# The header's commands, with absolute paths moved under $root; systemctl is
# what a real machine runs afterwards and has no meaning here.
grep '^#   ' "$unit_src" | sed 's/^#   //' | grep -v '^systemctl' >"$SCEN_DIR/steps"
[ "$(wc -l <"$SCEN_DIR/steps")" -ge 5 ] || fail "the unit's header lists no install steps"
sed -i -e "s# /usr/# $root/usr/#g" -e "s# /etc/# $root/etc/#g" -e "s#>/etc/#>$root/etc/#g" \
       -e "s#build/iptv-agent#$IA_AGENT#g" "$SCEN_DIR/steps"
(cd "$IA_SOURCE_DIR" && umask 022 && bash -euo pipefail "$SCEN_DIR/steps") || fail "an install step failed"
ok "the install steps in the unit's header run as written"

[ "$(stat -c %a "$root/etc/iptv-agent/agent.toml")" = 644 ] || fail "agent.toml mode $(stat -c %a "$root/etc/iptv-agent/agent.toml")"
[ "$(stat -c %a "$root/etc/iptv-agent/secrets.env")" = 600 ] || fail "secrets.env is not 0600"
grep -q '^IPTVPORTAL_PASSWORD=the-password$' "$root/etc/iptv-agent/secrets.env" || fail "secrets.env lacks the password"
grep -qE '^IPTV_AGENT_TOKEN=[0-9a-f]{32}$' "$root/etc/iptv-agent/secrets.env" || fail "secrets.env lacks the API token"
ok "agent.toml is world-readable (no secret in it), secrets.env is root-only and sets the token"

# systemd-analyze checks the unit's syntax and that ExecStart's binary exists.
sed "s#/usr/local/bin/iptv-agent#$root/usr/local/bin/iptv-agent#" \
    "$root/etc/systemd/system/iptv-agent.service" >"$SCEN_DIR/iptv-agent.service"
command -v systemd-analyze >/dev/null || fail "systemd-analyze is missing (scripts/deps.sh installs systemd)"
systemd-analyze verify "$SCEN_DIR/iptv-agent.service" >"$SCEN_DIR/verify.out" 2>&1 ||
  { cat "$SCEN_DIR/verify.out" >&2; fail "systemd-analyze verify"; }
[ ! -s "$SCEN_DIR/verify.out" ] || { cat "$SCEN_DIR/verify.out" >&2; fail "systemd-analyze verify warned"; }
ok "systemd-analyze verify: no complaint"

if [ "$(id -u)" -ne 0 ] || ! command -v setpriv >/dev/null; then
  echo "# not root (or no setpriv): the unprivileged run is skipped"
  echo "systemd_unit: $pass_count checks passed"
  exit 0
fi

# What the admin edits: the portal, the state directory (systemd's StateDirectory=
# makes it and hands it to the service user), a free port for this test.
start_portal P --rows 200 --password the-password
state=$SCEN_DIR/state
install -d -o nobody -g nogroup -m 0750 "$state"
conf=$root/etc/iptv-agent/agent.toml
sed -i -e "s#^url = .*#url = \"$P_URL\"#" -e "s#^dir = .*#dir = \"$state\"#" \
       -e "s#^listen = .*#listen = \"127.0.0.1:0\"#" "$conf"
[ "$(stat -c %a "$conf")" = 644 ] || fail "editing changed the mode"

# As systemd runs the service: as nobody, with secrets.env's variables.
as_service=(env $(cat "$root/etc/iptv-agent/secrets.env")
            setpriv --reuid=nobody --regid=nogroup --clear-groups --)
token=$(sed -n 's/^IPTV_AGENT_TOKEN=//p' "$root/etc/iptv-agent/secrets.env")
fifo=$SCEN_DIR/svc.fifo
mkfifo "$fifo"
"${as_service[@]}" "$root/usr/local/bin/iptv-agent" -c "$conf" --log-format json run >"$fifo" 2>"$SCEN_DIR/svc.err" </dev/null &
svc=$!
SCEN_PIDS+=("$svc")
exec {svc_fd}<"$fifo"
url=""
read -r -t 60 -u "$svc_fd" url || true
case "$url" in http://*) ;; *) cat "$SCEN_DIR/svc.err" >&2; fail "the service printed no URL (got '$url')" ;; esac
http GET "$url/status"
[ "$HTTP_CODE" = 401 ] || fail "/status without the token: HTTP $HTTP_CODE"
http POST "$url/sync/tv_channel" "" -H "Authorization: Bearer $token"
case "$HTTP_CODE" in 2*) ;; *) fail "POST /sync/tv_channel: HTTP $HTTP_CODE $(cat "$HTTP_BODY")" ;; esac
has_channels() { [ "$(sq "$state/cache.db" 'select count(*) > 0 from tv_channel' 2>/dev/null)" = 1 ]; }
wait_for 60 "tv_channel synced by the service user" has_channels
[ "$(stat -c %U "$state/cache.db")" = nobody ] || fail "cache.db is not the service user's"
kill -TERM "$svc"
wait_exit "$svc" 60
[ "$rc" -eq 0 ] || { cat "$SCEN_DIR/svc.err" >&2; fail "SIGTERM: exit $rc"; }
ok "the daemon runs as an unprivileged user from the installed files, syncs, answers with the token, exits 0 on SIGTERM"

# The step this replaces: root:root 0640 is unreadable to the service user.
chmod 0640 "$conf"
set +e
"${as_service[@]}" "$root/usr/local/bin/iptv-agent" -c "$conf" status >/dev/null 2>"$SCEN_DIR/old.err"
rc=$?
set -e
chmod 0644 "$conf"
[ "$rc" -eq 2 ] && grep -q 'Permission denied' "$SCEN_DIR/old.err" ||
  fail "a 0640 root-owned agent.toml should be unreadable to the service user (exit $rc: $(cat "$SCEN_DIR/old.err"))"
ok "the old 0640 install fails as the field report says (so this test guards the text)"
echo "systemd_unit: $pass_count checks passed"
