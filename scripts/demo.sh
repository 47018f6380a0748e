#!/usr/bin/env bash
# The main job against the embedded default: build, start the bundled fake portal
# on loopback with generated data, and run the agent against it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
work=$(mktemp -d /tmp/iptv-agent-demo.XXXXXX)
# The build's own output goes to a log; it is shown only when the build fails.
echo "== building (cmake, log: build/demo-build.log)" >&2
mkdir -p build
if ! bash scripts/build.sh build >build/demo-build.log 2>&1; then
  tail -n 40 build/demo-build.log >&2
  exit 1
fi
# The portal prints its URL on its first stdout line once it listens.
coproc PORTAL { exec ./build/iptv-fake-portal --rows 20000 --password demo-secret; }
portal=$PORTAL_PID
trap 'kill $portal 2>/dev/null; wait $portal 2>/dev/null; rm -rf "$work"' EXIT
read -r url <&"${PORTAL[0]}"
echo "fake portal at $url" >&2
cat >"$work/agent.toml" <<TOML
[remote]
url = "$url"
username = "admin"
password_env = "DEMO_PORTAL_PASSWORD"

[storage]
dir = "$work/data"

[[table]]
name = "tv_channel"
strategy = "full"
columns = ["id", "name", "url", "epg_id", "logo", "is_tv", "is_radio", "sort_order",
           "category_id", "languages", "params", "created_at", "updated_at"]

[[table]]
name = "tv_program"
strategy = "incremental"
cursor = "updated_at"
chunk = 2000
columns = ["id", "created_at", "updated_at", "channel_id", "title", "description", "start",
           "stop", "duration", "age_rating", "is_live"]

[[table]]
name = "subscriber"
strategy = "incremental"
cursor = "updated_at"

# The portal never sends column names: without columns they would read Field_2...
[[table]]
name = "terminal"
strategy = "on_demand"
columns = ["id", "subscriber_id", "mac_addr", "model", "serial", "active", "created_at",
           "updated_at", "settings"]
TOML
export DEMO_PORTAL_PASSWORD=demo-secret
agent() { ./build/iptv-agent -c "$work/agent.toml" "$@"; }
echo "== iptv-agent remote: a page of tv_channel straight from the portal" >&2
agent remote '{"data":["id","name","is_tv","languages"],"from":"tv_channel","order_by":"id","limit":5}'
echo "== iptv-agent --once: pull every table through the journal into cache.db" >&2
agent --once
echo "== iptv-agent query: programmes per channel, from the cache" >&2
agent query "SELECT c.name AS channel, count(*) AS programmes, max(p.stop) AS last_stop
             FROM tv_program p JOIN tv_channel c ON c.id = p.channel_id
             GROUP BY c.id ORDER BY programmes DESC, c.id LIMIT 5"
echo "== iptv-agent get: an on_demand lookup (a miss goes to the portal, then it is cached)" >&2
agent get terminal id="$(agent remote '{"data":["id"],"from":"terminal","order_by":"id","limit":1}' | tr -d '[]')"
echo "== the portal changes; the next --once pulls only what changed" >&2
curl -s -X POST "$url/_fake/mutate" -d '{"table":"tv_program","updates":200,"inserts":50,"deletes":10}' >/dev/null
agent sync tv_program
echo "== deletions reach an incremental table at its next sweep (sweep, default 6h); sync --full takes a snapshot now" >&2
agent sync --full tv_program
agent status
