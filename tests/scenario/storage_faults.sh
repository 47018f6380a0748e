#!/usr/bin/env bash
# Storage faults (issue 7; architecture.md invariants 5, 7): the disk fills up,
# the storage directory is read-only, cache.db is damaged, a journal segment has
# a flipped bit. Each time: a clear error (the text is asserted), a non-zero
# exit, and nothing already stored is lost (every row of the cache kept before
# the fault is there, with the same values, after it); once the fault is gone
# the agent converges to the portal again.
#   1 disk full: RLIMIT_FSIZE (`ulimit -f` in a subshell; the agent ignores
#     SIGXFSZ, so writes fail with EFBIG) at several sizes, so that the limit is
#     met while the journal appends (the newest segment is already past it) and
#     while replay writes cache.db (the journal still has room). Both must be
#     seen. Then `replay` and `replay --rebuild` under the limit: refused, and
#     the rebuild leaves cache.db as it was.
#  1b a really full disk (ENOSPC) on a 3 MiB tmpfs, only where mounting is
#     allowed (skipped with a message otherwise): --once fails naming it, then
#     with room converges; a rebuild without room for its copy is refused and
#     keeps cache.db.
#   2 a read-only storage directory (root-owned, 0755; the agent runs as nobody
#     through setpriv; skipped with a message when setpriv is missing): writers
#     refuse naming the file and "Permission denied".
#   3 cache.db damaged: a page of a table's b-tree overwritten in the middle of
#     the file, the file cut in half, the file replaced by text: the agent says
#     "cache.db is damaged" and "run `iptv-agent replay --rebuild`"; after that
#     rebuild every table is back, identical.
#   4 a flipped bit at a seeded random place in a journal segment: `journal
#     verify` and `replay --rebuild` refuse, naming the segment and the offset
#     of the record that holds the bit; a damaged newest segment stops writers
#     too. Nothing is skipped.
# SF_SEED, SF_FLIPS (flips in 4: 3 by default, 2 under ASan, 6 with SCEN_LONG=1)
# and SF_ROWS (tv_program rows, default 10000) scale it.
source "$(dirname "$0")/lib.bash"
source "$(dirname "$0")/../torture/report.bash"
RANDOM=${SF_SEED:-424242}
scen_size FLIPS 6 3 2
FLIPS=${SF_FLIPS:-$FLIPS}
TABLES=(tv_channel subscriber tv_program)
scen_setup --pw 'e2e-storage-pw' --no-config -- --rows "${SF_ROWS:-10000}" --seed 11
JDIR=$DATA/journal
write_config() {   # write_config SEGMENT_SIZE
  scen_config <<TOML
segment_size = "$1"

[[table]]
name = "tv_channel"
strategy = "full"
chunk = 200

[[table]]
name = "subscriber"
strategy = "incremental"
cursor = "updated_at"
chunk = 250
interval = "1ms"
sweep = "1ms"

[[table]]
name = "tv_program"
strategy = "incremental"
cursor = "updated_at"
chunk = 500
interval = "1ms"
sweep = "1ms"
TOML
}
write_config 64MiB
KEPT=$SCEN_DIR/kept.db
# keep: remember every row now in the cache; kept_all WHAT: none of them is gone.
keep() { tort_keep "$CDB" "$KEPT" "${TABLES[@]}"; }
kept_all() {
  tort_lost_since "$CDB" "$KEPT" "${TABLES[@]}" >"$SCEN_DIR/lost"
  [ ! -s "$SCEN_DIR/lost" ] || fail "$1: rows stored before are gone: $(cat "$SCEN_DIR/lost")"
}
converged() {   # converged WHAT: a sync ends equal to the portal, nothing missing
  agent sync
  expect_rc 0 "$1: sync"
  cmp_tables "$CDB" "$PDB" "${TABLES[@]}" || fail "$1: the cache differs from the portal"
  tort_lost_vs_portal "$CDB" "$PDB" "${TABLES[@]}" >"$SCEN_DIR/lost"
  [ ! -s "$SCEN_DIR/lost" ] || fail "$1: rows of the portal missing: $(cat "$SCEN_DIR/lost")"
  agent journal verify
  expect_rc 0 "$1: journal verify"
}
# has WHAT TEXT...: the last run's stderr holds every TEXT (fixed strings).
has() {
  local what=$1 t
  shift
  for t in "$@"; do grep -qF -- "$t" "$E" || fail "$what: the message lacks \"$t\": $(cat "$E")"; done
}

agent --once
expect_rc 0 "first --once"
converged "start"
ok "start: --once loads ${#TABLES[@]} tables, equal to the portal"

# ---- 1 disk full -------------------------------------------------------------------------
# limited KB args...: the agent with RLIMIT_FSIZE = KB KiB (bash counts -f in 1024-byte blocks).
limited() {
  local kb=$1
  shift
  set +e
  ( ulimit -f "$kb"; exec "$IA_AGENT" -c "$CFG" "$@" ) >"$O" 2>"$E" </dev/null
  rc=$?
  set -e
}
newest_seg() { find "$JDIR" -name '*.seg' | sort | tail -1; }
seg_kb=$(( $(stat -c %s "$(newest_seg)") / 1024 ))
journal_hits=0 replay_hits=0 runs=0
for kb in $((seg_kb / 2)) $((seg_kb + 1)) $((seg_kb + 600)) $((seg_kb + 1500)) $((seg_kb + 3000)); do
  keep
  before=$(sums)
  limited "$kb" sync --full
  runs=$((runs + 1)); tort_fault
  [ "$rc" = 1 ] || fail "sync --full with a ${kb} KiB file size limit: exit $rc (want 1): $(tail -3 "$E")"
  has "disk full at ${kb} KiB" "File too large"
  grep -q 'FAILED' "$O" || fail "disk full at ${kb} KiB: no table marked FAILED: $(cat "$O")"
  if grep -qE 'journal: segment [0-9]+ offset [0-9]+: writing record [0-9]+ \([0-9]+ bytes\): File too large' "$E"; then
    journal_hits=$((journal_hits + 1))
  fi
  if grep -qE 'replay: cache\.db .*: .*\(File too large\)' "$E"; then replay_hits=$((replay_hits + 1)); fi
  kept_all "disk full at ${kb} KiB"
  agent journal verify
  expect_rc 0 "journal verify after a full disk"
  if [ "$kb" -gt "$seg_kb" ] && grep -q 'replay: cache' "$E"; then
    # records journaled but not applied: replay and a rebuild, still limited
    limited "$kb" replay
    if [ "$rc" != 0 ]; then
      tort_fault
      [ "$rc" = 1 ] || fail "replay under the limit: exit $rc"
      has "replay with a full disk" "File too large"
    fi
    limited "$kb" replay --rebuild
    tort_fault
    [ "$rc" = 1 ] || fail "replay --rebuild under a ${kb} KiB limit: exit $rc (want 1): $(cat "$E")"
    has "replay --rebuild with a full disk" "File too large" "was left as it was"
    [ ! -e "$CDB.rebuild" ] || fail "a refused rebuild left its copy behind"
    kept_all "replay --rebuild with a full disk"
  fi
  converged "after the disk had room again (${kb} KiB)"
  [ "$(sums)" = "$before" ] || fail "the tables changed across a full disk and its recovery"
done
[ "$journal_hits" -gt 0 ] || fail "no limit was met by a journal append"
[ "$replay_hits" -gt 0 ] || fail "no limit was met by replay"
ok "disk full: $runs pulls under a file size limit (journal append hit $journal_hits times, replay $replay_hits times; replay and replay --rebuild refused too): exit 1 with 'File too large', nothing lost, then converged"

# ---- 1b a really full disk (ENOSPC), when this process may mount a tmpfs -------------------
SMALL=$SCEN_DIR/small
mkdir -p "$SMALL"
if mount -t tmpfs -o size=3m tmpfs "$SMALL" 2>/dev/null; then
  trap 'umount "$SMALL" 2>/dev/null || true; scen_cleanup' EXIT
  CFG2=$SCEN_DIR/small.toml
  sed "s|^dir = .*|dir = \"$SMALL/data\"|" "$CFG" >"$CFG2"
  D2=$SMALL/data/cache.db
  agent2() { run_agent "$O" "$E" -c "$CFG2" "$@"; }
  agent2 --once
  tort_fault
  [ "$rc" = 1 ] || fail "--once on a 3 MiB filesystem: exit $rc (want 1): $(tail -3 "$E")"
  grep -qE 'No space left on device|database or disk is full' "$E" || fail "a full disk is not named: $(cat "$E")"
  enospc=$(grep -m1 -oE '(journal|replay)[^:]*: .*(No space left on device|disk is full)[^)]*\)?' "$E" | head -1)
  present=()
  for t in "${TABLES[@]}"; do
    [ -n "$(sq "$D2" "SELECT name FROM sqlite_master WHERE name = '$t'" 2>/dev/null)" ] && present+=("$t")
  done
  [ ${#present[@]} -eq 0 ] || tort_keep "$D2" "$SCEN_DIR/small.kept" "${present[@]}"
  mount -o remount,size=64m "$SMALL"
  agent2 sync
  expect_rc 0 "sync once the filesystem has room"
  cmp_tables "$D2" "$PDB" "${TABLES[@]}" || fail "after a full disk and room again, the cache differs from the portal"
  if [ ${#present[@]} -gt 0 ]; then
    tort_lost_since "$D2" "$SCEN_DIR/small.kept" "${present[@]}" >"$SCEN_DIR/lost"
    [ ! -s "$SCEN_DIR/lost" ] || fail "rows stored before the disk filled are gone: $(cat "$SCEN_DIR/lost")"
  fi
  # A rebuild needs room for a second copy: with 1 MiB spare it must refuse and keep cache.db.
  b2=$(table_checksums "$D2" "${TABLES[@]}")
  used=$(df --output=used -B1 "$SMALL" | tail -1)
  mount -o remount,size=$(( used / 1024 + 1024 ))k "$SMALL"
  agent2 replay --rebuild
  tort_fault
  [ "$rc" = 1 ] || fail "replay --rebuild without room for the copy: exit $rc (want 1): $(cat "$O" "$E")"
  has "replay --rebuild on a full disk" "was left as it was"
  grep -qE 'No space left on device|database or disk is full' "$E" || fail "the refused rebuild does not name the full disk: $(cat "$E")"
  [ "$(table_checksums "$D2" "${TABLES[@]}")" = "$b2" ] || fail "a rebuild refused for lack of room changed cache.db"
  [ ! -e "$D2.rebuild" ] || fail "a refused rebuild left its copy on the full disk"
  mount -o remount,size=64m "$SMALL"
  agent2 replay --rebuild
  expect_rc 0 "replay --rebuild with room"
  [ "$(table_checksums "$D2" "${TABLES[@]}")" = "$b2" ] || fail "the rebuild with room differs"
  umount "$SMALL"
  trap scen_cleanup EXIT
  ok "a really full disk (3 MiB tmpfs): --once exit 1 ('${enospc:-no space}'), nothing stored lost; with room, sync equals the portal; replay --rebuild without room for its copy refused, cache.db kept; with room it rebuilds identical"
else
  echo "# skipped: the ENOSPC check needs to mount a tmpfs (no privilege here); RLIMIT_FSIZE above covers a full disk"
fi

# ---- 2 a read-only storage directory --------------------------------------------------------
if command -v setpriv >/dev/null 2>&1 && setpriv --reuid=65534 --regid=65534 --clear-groups true 2>/dev/null; then
  chmod 0755 "$SCEN_DIR" "$DATA" "$JDIR"
  chmod 0644 "$CFG" "$CDB" "$JDIR"/*.seg
  keep
  before=$(sums)
  nobody() { set +e; setpriv --reuid=65534 --regid=65534 --clear-groups "$IA_AGENT" -c "$CFG" "$@" >"$O" 2>"$E" </dev/null; rc=$?; set -e; }
  for cmd in "--once" "sync --full" "replay" "replay --rebuild"; do
    # shellcheck disable=SC2086
    nobody $cmd
    tort_fault
    [ "$rc" = 1 ] || fail "as nobody on a read-only storage dir, $cmd: exit $rc (want 1): $(cat "$E")"
    has "read-only storage dir ($cmd)" "Permission denied" "$DATA/"
  done
  nobody status
  tort_fault
  if [ "$rc" != 0 ]; then has "read-only storage dir (status)" "not writable by this user"; fi
  status_rc=$rc
  [ "$(sums)" = "$before" ] || fail "a refused writer changed the cache"
  kept_all "read-only storage dir"
  [ -z "$(find "$DATA" -newer "$KEPT" -user 65534)" ] || fail "nobody left files in the storage dir"
  converged "the storage dir writable again (as root)"
  ok "read-only storage dir (as nobody): --once, sync, replay and replay --rebuild exit 1 naming the file and 'Permission denied' (status exit $status_rc); nothing changed or lost"
else
  echo "# skipped: the read-only storage dir check needs setpriv (util-linux) and root: tests run as root, so chmod alone would not stop writes"
fi

# ---- 3 a damaged cache.db ------------------------------------------------------------------------
damaged() {   # damaged WHAT: the last run failed saying cache.db is damaged and what to run
  [ "$rc" = 1 ] || fail "$1: exit $rc (want 1): $(cat "$O" "$E")"
  has "$1" "cache.db is damaged" "run \`iptv-agent replay --rebuild\`"
}
rebuilt() {   # rebuilt WHAT: replay --rebuild brings every table back, identical
  agent replay --rebuild
  expect_rc 0 "$1: replay --rebuild"
  [ "$(sums)" = "$before" ] || fail "$1: the rebuilt tables differ from before the damage"
  kept_all "$1"
  converged "$1"
}
[ ! -s "$CDB-wal" ] || fail "cache.db has a WAL with the agent stopped"
keep
before=$(sums)
psize=$(sq "$CDB" "PRAGMA page_size")
page=$(sq "$CDB" "SELECT pageno FROM dbstat WHERE name = 'tv_program' AND pagetype = 'leaf' ORDER BY pageno LIMIT 1 OFFSET (SELECT count(*) / 2 FROM dbstat WHERE name = 'tv_program' AND pagetype = 'leaf')" 2>/dev/null || true)
if [ -z "$page" ]; then   # no dbstat: the middle page, whichever table holds it
  page=$(( $(sq "$CDB" "PRAGMA page_count") / 2 ))
fi
npages=$(sq "$CDB" "PRAGMA page_count")
head -c 1024 /dev/zero | tr '\0' '\377' | dd of="$CDB" bs=1 seek=$(( (page - 1) * psize )) conv=notrunc status=none
tort_bad
agent sync --full tv_program
damaged "page $page of $npages overwritten, sync --full tv_program"
msg1=$(grep -m1 -F 'cache.db is damaged' "$E")
agent --once
damaged "page $page overwritten, then --once"
agent replay
damaged "page $page overwritten, then replay"
rebuilt "page $page overwritten"
ok "a page of tv_program (page $page of $npages) overwritten: sync --full, --once and replay exit 1 with '${msg1#*error }'; replay --rebuild brings every table back identical"

size=$(stat -c %s "$CDB")
truncate -s $((size / 2)) "$CDB"
tort_bad
agent --once
damaged "cache.db cut to half its size, --once"
rebuilt "cache.db cut in half"
printf 'this is not a database, it is a note someone saved over cache.db\n%.0s' $(seq 1 40) >"$CDB"
tort_bad
agent --once
damaged "cache.db replaced by text, --once"
agent status
damaged "cache.db replaced by text, status"
rebuilt "cache.db replaced by text"
ok "cache.db cut in half or replaced by text: --once and status exit 1 saying it is damaged and to run replay --rebuild; the rebuild brings everything back"

# ---- 4 flipped bits in journal segments --------------------------------------------------------------
write_config 256KiB
agent sync --full
expect_rc 0 "sync --full into small segments"
before=$(sums)
keep
cp -a "$JDIR" "$SCEN_DIR/journal.good"
segs=("$JDIR"/*.seg)
flips=0 newest_hits=0
for ((i = 0; i < FLIPS; i++)); do
  # every other flip lands in the newest segment, where writers look too
  if [ $((i % 2)) = 1 ]; then seg=${segs[-1]}; else seg=${segs[$(( (RANDOM * 32768 + RANDOM) % ${#segs[@]} ))]}; fi
  sz=$(stat -c %s "$seg")
  off=$(( (RANDOM * 32768 + RANDOM) % sz ))
  bit=$(( RANDOM % 8 ))
  tort_flip "$seg" "$off" $((1 << bit))
  tort_bad; flips=$((flips + 1))
  first=$(basename "$seg" .seg); first=$((10#$first))
  agent journal verify
  [ "$rc" = 1 ] || fail "journal verify with bit $bit of byte $off of segment $first flipped: exit $rc"
  at=$(grep -oE "segment $first offset [0-9]+" "$E" | head -1)
  [ -n "$at" ] || fail "journal verify does not name segment $first and an offset: $(cat "$E")"
  roff=${at##* }
  [ "$roff" -le "$off" ] || fail "journal verify names offset $roff, after the flipped byte $off"
  agent replay --rebuild
  [ "$rc" = 1 ] || fail "replay --rebuild over a flipped bit: exit $rc"
  # In the newest segment the journal's writer refuses before anything starts;
  # elsewhere the rebuild itself stops and says cache.db was kept.
  if [ "$seg" = "${segs[-1]}" ]; then has "replay --rebuild over a flipped bit" "$at"
  else has "replay --rebuild over a flipped bit" "$at" "was left as it was"; fi
  [ "$(sums)" = "$before" ] || fail "a refused rebuild changed cache.db"
  kept_all "a refused rebuild"
  if [ "$seg" = "${segs[-1]}" ]; then
    agent --once
    [ "$rc" = 1 ] || fail "--once with its newest segment damaged: exit $rc"
    has "--once with a damaged newest segment" "$at"
    newest_hits=$((newest_hits + 1))
  fi
  rm -rf "$JDIR"; cp -a "$SCEN_DIR/journal.good" "$JDIR"
done
agent journal verify
expect_rc 0 "journal verify with the segments restored"
converged "the journal restored"
ok "$flips flipped bits in ${#segs[@]} segments: journal verify and replay --rebuild exit 1 naming the segment and the record's offset, cache.db left as it was; $newest_hits in the newest segment stop --once too"

echo "$pass_count passed, 0 failed"
tort_report storage_faults
