#!/usr/bin/env bash
# Memory check under valgrind (opt-in, not part of scripts/test.sh): builds a plain
# -O1 -g tree (no sanitizers) in build-valgrind, runs every cmocka unit test under
# memcheck, then every scenario test with the agent under memcheck
# (tests/valgrind/agent-wrapper.sh as IA_AGENT), judges every log
# (tests/valgrind/judge.awk) and prints a summary.
#
#   scripts/valgrind.sh [NAME...]   NAME: test_json, crash_torture, ... (default: all)
#
# Exit status: 0 clean; 1 a memory error or a definite/indirect leak in any log;
# 2 no memory problem, but a test or scenario failed (its output is kept).
# Logs: $IA_VG_OUT (default build-valgrind/vg), one directory per test,
# vg.PID.log per process. Environment: IA_VG_OPTS (extra valgrind options, e.g.
# --track-origins=yes), IA_VG_SCENARIO_TIMEOUT (seconds per scenario, default 3600:
# torture.sh alone takes ~22 min under memcheck),
# and whatever the scenarios honour themselves (CRASH_SEED, CRASH_KILLS).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
t_start=$SECONDS

bash scripts/deps.sh
if ! command -v valgrind >/dev/null 2>&1; then
  echo "installing: valgrind" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends valgrind >&2
fi

B=$root/build-valgrind
OUT=${IA_VG_OUT:-$B/vg}
units=() scens=()
for f in tests/unit/test_*.c; do units+=("$(basename "$f" .c)"); done
for f in tests/scenario/*.sh; do
  n=$(basename "$f" .sh)
  [ "$n" = lib ] || scens+=("$n")   # lib.bash is sourced, not run; keep the glob honest
done
if (($#)); then
  want=" $* " u=() s=()
  for n in "${units[@]}"; do [[ $want == *" $n "* ]] && u+=("$n"); done
  for n in "${scens[@]}"; do [[ $want == *" $n "* ]] && s+=("$n"); done
  ((${#u[@]} + ${#s[@]} == $#)) || { echo "valgrind.sh: unknown test among: $*" >&2; exit 2; }
  units=("${u[@]+"${u[@]}"}") scens=("${s[@]+"${s[@]}"}")
fi

echo "== build (-O1 -g, no sanitizers) in $B"
# Debug with its flags replaced: -O1 keeps valgrind's stacks readable and the run
# bearable; the sanitizer and fuzz options are forced off (valgrind cannot run them).
cmake -S "$root" -B "$B" -DIA_WERROR=ON -DIA_SANITIZE=OFF -DIA_FUZZ=OFF \
  -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-O1 -g" >/dev/null
cmake --build "$B" -j2 --target iptv-agent iptv-fake-portal "${units[@]+"${units[@]}"}" >/dev/null

rm -rf "$OUT"
mkdir -p "$OUT"
# The same memcheck options as the wrapper; units also get --error-exitcode.
# shellcheck disable=SC2054  # the commas belong to the option values
vg=(valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite,indirect
    --show-leak-kinds=definite,indirect --num-callers=40 --trace-children=no)
# shellcheck disable=SC2206
extra=(${IA_VG_OPTS:-})

rows=() failed=()
tot_j=0 tot_k=0 tot_x=0 tot_e=0 tot_d=0 tot_i=0 tot_p=0 problems=()
# judge NAME KIND RC SECONDS DIR: judges DIR's logs, adds to the totals, keeps a row.
judge() {
  local name=$1 kind=$2 rc=$3 secs=$4 dir=$5 line j k x e d i p
  local -a logs=("$dir"/vg.*.log)
  [ -e "${logs[0]}" ] || logs=()
  local -a man=()
  [ -f "$dir/started" ] && man=("$dir/started")
  while IFS= read -r line; do
    case $line in
      counts\ *) read -r _ j k x e d i p <<<"$line" ;;
      problem\ *) problems+=("${line#problem }") ;;
    esac
  done < <(awk -f tests/valgrind/judge.awk "${man[@]+"${man[@]}"}" "${logs[@]+"${logs[@]}"}" </dev/null)
  tot_j=$((tot_j + j)) tot_k=$((tot_k + k)) tot_x=$((tot_x + x)) tot_e=$((tot_e + e))
  tot_d=$((tot_d + d)) tot_i=$((tot_i + i)) tot_p=$((tot_p + p))
  # A unit test's exit 99 is memcheck's (the problem is listed from its log); a
  # failed cmocka test is looked for in its output too, as 99 hides cmocka's count.
  local status=ok
  if [ "$kind" = unit ] && grep -q '^\[  FAILED  \]' "$OUT/$name.out"; then
    status="FAILED (cmocka)"; failed+=("$name: a cmocka test failed, see $OUT/$name.out")
  elif [ "$kind" = unit ] && [ "$rc" = 99 ]; then status="memcheck errors (exit 99)"
  elif [ "$rc" != 0 ]; then status="FAILED (exit $rc)"; failed+=("$name: exit $rc, see $OUT/$name.out"); fi
  rows+=("$(printf '%-8s %-24s %5ss  judged %3d  killed %3d  exec %3d  errors %d  lost %d+%d B  %s' \
    "$kind" "$name" "$secs" "$j" "$k" "$x" "$e" "$d" "$i" "$status")")
  echo "${rows[-1]}"
}

echo "== unit tests under memcheck"
for n in "${units[@]+"${units[@]}"}"; do
  mkdir -p "$OUT/$n"
  t0=$SECONDS
  set +e
  # From the build directory, as ctest runs them.
  (cd "$B" && "${vg[@]}" --error-exitcode=99 --log-file="$OUT/$n/vg.%p.log" \
     "${extra[@]+"${extra[@]}"}" "./$n") >"$OUT/$n.out" 2>&1 </dev/null
  rc=$?
  set -e
  judge "$n" unit "$rc" $((SECONDS - t0)) "$OUT/$n"
done

echo "== scenario tests with the agent under memcheck"
for n in "${scens[@]+"${scens[@]}"}"; do
  # Writable by anyone: a scenario may run the agent as another user (storage_faults
  # runs it as nobody through setpriv), and the wrapper and valgrind write here.
  mkdir -p "$OUT/$n"
  chmod 1777 "$OUT/$n"
  : >"$OUT/$n/started"
  chmod 0666 "$OUT/$n/started"
  t0=$SECONDS
  set +e
  IA_AGENT=$root/tests/valgrind/agent-wrapper.sh IA_VG_AGENT=$B/iptv-agent IA_VG_LOGDIR=$OUT/$n \
    IA_FAKE_PORTAL=$B/iptv-fake-portal IA_SOURCE_DIR=$root \
    timeout "${IA_VG_SCENARIO_TIMEOUT:-3600}" bash "tests/scenario/$n.sh" >"$OUT/$n.out" 2>&1 </dev/null
  rc=$?
  set -e
  judge "$n" scenario "$rc" $((SECONDS - t0)) "$OUT/$n"
done

echo "== valgrind summary"
printf '%s\n' "${rows[@]+"${rows[@]}"}"
echo "processes checked: $tot_j (killed, not judged: $tot_k; forked children that exec'd another program, not traced: $tot_x)"
echo "errors: $tot_e; definitely lost: $tot_d bytes; indirectly lost: $tot_i bytes"
if ((tot_p)); then
  echo "logs with problems ($tot_p):"
  printf '  %s\n' "${problems[@]}"
else
  echo "logs with problems: none"
fi
if ((${#failed[@]})); then
  echo "tests that failed (${#failed[@]}):"
  printf '  %s\n' "${failed[@]}"
fi
echo "wall time: $((SECONDS - t_start)) s; logs in $OUT"
if ((tot_p)); then exit 1; fi
if ((${#failed[@]})); then exit 2; fi
exit 0
