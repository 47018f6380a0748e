#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing, builds with
# warnings as errors, runs every test through ctest, then again under
# AddressSanitizer + UndefinedBehaviorSanitizer (the long scenarios at a smaller
# size), then a short run of each fuzz target (IA_FUZZ_SECONDS each, default 5,
# one per CPU at once). Each part says how long it took. Long runs: README.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$SECONDS
took() { echo "== $1: $((SECONDS - t0)) s"; t0=$SECONDS; }
bash scripts/deps.sh
echo "== build (-Wall -Wextra -Werror)"
bash scripts/build.sh build -DIA_WERROR=ON
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "== tests"
(cd build && ctest --output-on-failure -j2) | tee -a "$log"
took "build and tests"
echo "== build (ASan + UBSan)"
# The tests' stand-in portals come from the normal tree (CMakeLists.txt,
# IA_TEST_PORTALS_DIR): the agent runs under ASan, the portals at full speed.
bash scripts/build.sh build-asan -DIA_WERROR=ON -DIA_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug \
  -DIA_TEST_PORTALS_DIR="$PWD/build"
echo "== tests under ASan + UBSan"
# scenario_ref_portal checks the reference portal (tests/ref_portal), which this
# tree takes from the normal one: it ran there, and holds nothing else for ASan.
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
   ctest --output-on-failure -j2 -E '^scenario_ref_portal$') | tee -a "$log"
took "ASan build and tests"
fuzzed=0
if [ -f tests/fuzz/run.sh ]; then
  echo "== fuzz (short)"
  bash tests/fuzz/run.sh "${IA_FUZZ_SECONDS:-5}" build-fuzz | tee -a "$log"
  fuzzed=$(grep -c '^fuzz_.*: ok' "$log" || true)
  took "fuzz build and run"
fi
# One closing line for both ctest runs and the fuzz targets (set -e: we only
# get here when everything passed).
ran=$(grep -oE 'tests passed, 0 tests failed out of [0-9]+' "$log" | awk '{s += $NF} END {print s + 0}')
echo "all: $((ran + fuzzed)) passed, 0 failed"
