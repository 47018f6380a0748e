#!/usr/bin/env bash
# Install what the build, the tests and the benchmarks need, on Debian, only when
# something is missing (so it is quick on a machine that already has them).
set -euo pipefail
pkgs=(build-essential cmake pkg-config libcurl4-openssl-dev libsqlite3-dev libcjson-dev
      libevent-dev zlib1g-dev libcmocka-dev clang libclang-rt-14-dev sqlite3 curl
      systemd postgresql libpq-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
