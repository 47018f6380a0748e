#!/usr/bin/env bash
# run.sh — run every libFuzzer target for a while over a copy of its corpus.
#
# usage: tests/fuzz/run.sh SECONDS [BUILD_DIR]
#   Configures BUILD_DIR (default build-fuzz in the repo) with CC=clang and
#   -DIA_FUZZ=ON if it is not already, builds every tests/fuzz/fuzz_NAME.c, and
#   runs each for SECONDS over a temp copy of tests/fuzz/corpus/NAME/ (the
#   committed seeds are never modified). Prints the executions per target; exits
#   non-zero if any target crashes, leaving the crashing input under
#   BUILD_DIR/fuzz-artifacts/. CI runs it briefly; longer runs are opt-in.
set -euo pipefail

secs=${1:?usage: run.sh SECONDS [BUILD_DIR]}
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${2:-$root/build-fuzz}

buildlog=$(mktemp)
trap 'rm -f "$buildlog"' EXIT
# An existing cache keeps its compiler whatever CC says, and libFuzzer needs clang:
# refuse such a directory rather than reconfigure someone's gcc build.
if [ -f "$build/CMakeCache.txt" ] && ! grep -qs '^CMAKE_C_COMPILER:[A-Z]*=.*clang' "$build/CMakeCache.txt"; then
    echo "run.sh: $build is configured with a compiler other than clang; use a fresh BUILD_DIR" >&2
    exit 1
fi
if ! grep -qs '^IA_FUZZ:BOOL=ON' "$build/CMakeCache.txt"; then
    CC=clang cmake -S "$root" -B "$build" -DIA_FUZZ=ON >"$buildlog" 2>&1 || { cat "$buildlog"; exit 1; }
fi

targets=()
for src in "$root"/tests/fuzz/fuzz_*.c; do
    [ -e "$src" ] || continue
    targets+=("$(basename "$src" .c)")
done
if [ ${#targets[@]} -eq 0 ]; then
    echo "run.sh: no tests/fuzz/fuzz_*.c targets"
    exit 0
fi
cmake --build "$build" -j2 --target "${targets[@]}" >"$buildlog" 2>&1 || { cat "$buildlog"; exit 1; }

mkdir -p "$build/fuzz-artifacts"
status=0
for name in "${targets[@]}"; do
    work=$(mktemp -d)
    log=$(mktemp)
    seeds="$root/tests/fuzz/corpus/${name#fuzz_}"
    [ -d "$seeds" ] && cp -R "$seeds/." "$work/"
    if "$build/$name" -max_total_time="$secs" -print_final_stats=1 \
            -artifact_prefix="$build/fuzz-artifacts/$name-" "$work" >"$log" 2>&1; then
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        echo "$name: ok, ${execs:-?} executions in ${secs}s"
    else
        echo "$name: CRASH (input saved under $build/fuzz-artifacts/)"
        tail -n 40 "$log"
        status=1
    fi
    rm -rf "$work" "$log"
done
exit $status
