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
#   One summary line per target: "fuzz_NAME: ok, N executions in Ss" or
#   "fuzz_NAME: CRASH, input saved as FILE" followed by the end of its log.
#   UBSan reports stop the target like ASan's (halt_on_error), and one input
#   running longer than 30 s is a finding too (-timeout). Each target gets a
#   fresh TMPDIR for its scratch files, removed afterwards even when it crashed;
#   it is made under $TMPDIR, or /dev/shm when that is unset and writable,
#   because SQLite's fsyncs on a disk-backed /tmp make the import target 10 to
#   20 times slower. IA_FUZZ_JOBS targets run at once (default: the number of
#   CPUs); the summary lines come in the targets' order all the same.
set -euo pipefail

secs=${1:?usage: run.sh SECONDS [BUILD_DIR]}
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${2:-$root/build-fuzz}

buildlog=$(mktemp)
tmp=
trap 'rm -rf "$buildlog" "$tmp"' EXIT
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

if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
    export TMPDIR=/dev/shm
fi
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

mkdir -p "$build/fuzz-artifacts"
tmp=$(mktemp -d)

# fuzz_one NAME: runs target NAME over a copy of its seeds; writes its summary
# to $tmp/NAME.out ("NAME: ok, ..." or "NAME: CRASH, ..." and the log's end).
fuzz_one() {
    local name=$1 dir="$tmp/$1" execs art
    local work="$dir/corpus" log="$dir/log" scratch="$dir/tmp"
    local seeds="$root/tests/fuzz/corpus/${name#fuzz_}"
    mkdir -p "$work" "$scratch"
    [ -d "$seeds" ] && cp -R "$seeds/." "$work/"
    if TMPDIR="$scratch" "$build/$name" -max_total_time="$secs" -timeout=30 -print_final_stats=1 \
            -artifact_prefix="$build/fuzz-artifacts/$name-" "$work" >"$log" 2>&1; then
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
        echo "$name: ok, ${execs:-?} executions in ${secs}s" >"$tmp/$name.out"
        rm -rf "$dir"
    else
        art=$(sed -n 's/.*Test unit written to //p' "$log" | tail -n 1)
        { echo "$name: CRASH, input saved as ${art:-(none: see the log below)}"
          tail -n 40 "$log"; } >"$tmp/$name.out"
        rm -rf "$dir"
    fi
}

jobs=${IA_FUZZ_JOBS:-$(nproc)}
for name in "${targets[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
    fuzz_one "$name" &
done
wait || true
status=0
for name in "${targets[@]}"; do
    if [ -f "$tmp/$name.out" ]; then cat "$tmp/$name.out"; else echo "$name: FAILED to run"; fi
    grep -q "^$name: ok, " "$tmp/$name.out" 2>/dev/null || status=1
done
exit $status
