#!/usr/bin/env bash
# layers.sh — the direction of dependencies, checked in the sources.
#
# The build fails to link a call upward (CMakeLists.txt, layer_check_*); this
# fails on what a link cannot see:
#   1. an #include of a header in a layer that is not below (LAYERS, written by
#      CMake from its one table of layers: "name folder deps...");
#   2. SQL over replay's _agent_* tables outside replay/ (replay.h owns them);
#   3. journal segment file names built outside journal/ (journal.h owns them).
# Usage: layers.sh LAYERS_TXT [SOURCE_DIR]
set -u
layers=${1:?usage: layers.sh build/layers.txt [source dir]}
cd "${2:-$(dirname "$0")/../..}" || exit 2
declare -A dir_of deps_of
order=()
while read -r name dir deps; do
  [ -n "$name" ] || continue
  dir_of[$name]=$dir; deps_of[$name]=" $name $deps "; order+=("$name")
done < "$layers"
[ ${#order[@]} -gt 0 ] || { echo "layers.sh: $layers: no layers" >&2; exit 2; }

layer_of() {   # the layer whose folder holds path $1 (longest folder wins)
  local best="" len=0 n
  for n in "${order[@]}"; do
    case "$1" in "${dir_of[$n]}"/*) [ ${#dir_of[$n]} -gt $len ] && best=$n len=${#dir_of[$n]} ;; esac
  done
  echo "$best"
}

bad=0
for n in "${order[@]}"; do
  for f in "${dir_of[$n]}"/*.[ch]; do
    [ -e "$f" ] || continue
    while IFS=: read -r line inc; do
      to=$(layer_of "$inc")
      [ -n "$to" ] || continue
      case "${deps_of[$n]}" in *" $to "*) ;; *)
        echo "$f:$line: includes $inc: layer $n may not use layer $to (it is not below; CMakeLists.txt IA_LAYER_$n)"
        bad=1 ;;
      esac
    done < <(grep -nE '^#include "' "$f" | sed -E 's/^([0-9]+):#include "([^"]+)".*/\1:\2/')
  done
done

# 2. SQL on replay's tables: a string literal naming _agent_<word> (not
# iptv_agent_..., a metric name), outside replay/.
while IFS= read -r hit; do
  echo "$hit: SQL over replay's _agent_* tables outside replay/ (use replay.h)"; bad=1
done < <(grep -nP '"[^"]*(?<![A-Za-z0-9_])_agent_[a-z]' -- $(for n in "${order[@]}"; do [ "$n" = replay ] || echo "${dir_of[$n]}"/*.c; done) 2>/dev/null)

# 3. Segment names: the %020 number or the .seg suffix, outside journal/.
while IFS= read -r hit; do
  echo "$hit: builds a journal segment name outside journal/ (use journal.h)"; bad=1
done < <(grep -nE '%0?20(ll[ud]|" *PRI)|\.seg"' -- $(for n in "${order[@]}"; do [ "$n" = journal ] || echo "${dir_of[$n]}"/*.[ch]; done) 2>/dev/null)

[ $bad = 0 ] && echo "layers: ok (${#order[@]} layers)"
exit $bad
