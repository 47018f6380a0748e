#!/usr/bin/env bash
# Stands in for iptv-agent in the scenario tests (IA_AGENT=this file) and runs
# the real binary under valgrind's memcheck, one log per process in
# $IA_VG_LOGDIR/vg.PID.log (scripts/valgrind.sh sets both variables and judges
# the logs afterwards with tests/valgrind/judge.awk).
#
# Transparent to tests/scenario/lib.bash: `exec` keeps this process's pid, so the
# $! a scenario records, signals (SIGTERM, kill -9) and the exit status all
# belong to the agent under valgrind; stdin/stdout/stderr are the agent's own
# (valgrind writes only to its log file, so the daemon's URL stays the first
# stdout line). No --error-exitcode: a scenario must see the agent's own exit
# codes; errors and leaks are judged from the logs.
set -euo pipefail
: "${IA_VG_AGENT:?IA_VG_AGENT must name the real iptv-agent binary}"
: "${IA_VG_LOGDIR:?IA_VG_LOGDIR must name the directory for the valgrind logs}"
# The directory must be writable by whoever runs the agent (scripts/valgrind.sh
# makes it so): a scenario may run it as another user.
[ -w "$IA_VG_LOGDIR" ] || { echo "agent-wrapper.sh: $IA_VG_LOGDIR is not writable by $(id -un)" >&2; exit 125; }
# The manifest lets the judge count an agent killed before valgrind opened its log.
printf '%s\t%s\n' "$$" "$*" >>"$IA_VG_LOGDIR/started"
# IA_VG_OPTS: extra valgrind options, e.g. --track-origins=yes (slower).
# shellcheck disable=SC2086
exec valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite,indirect \
  --show-leak-kinds=definite,indirect --num-callers=40 --trace-children=no \
  --log-file="$IA_VG_LOGDIR/vg.%p.log" ${IA_VG_OPTS:-} "$IA_VG_AGENT" "$@"
