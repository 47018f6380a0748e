#!/usr/bin/env bash
# The main job against the embedded default: build, start the bundled fake portal
# on loopback with generated data, and run the agent against it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh build
work=$(mktemp -d /tmp/iptv-agent-demo.XXXXXX)
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
verify_tls = true

[storage]
dir = "$work/data"

[[table]]
name = "tv_channel"
strategy = "full"
key = "id"
TOML
export DEMO_PORTAL_PASSWORD=demo-secret
echo "== iptv-agent introspect tv_channel" >&2
./build/iptv-agent -c "$work/agent.toml" introspect tv_channel
echo "== iptv-agent remote: a page of tv_channel" >&2
./build/iptv-agent -c "$work/agent.toml" remote \
  '{"data":["id","name","is_tv","languages"],"from":"tv_channel","order_by":"id","limit":10}'
