# report.bash — the torture figures, shared by tests/scenario/torture.sh and
# tests/scenario/storage_faults.sh (sourced after lib.bash, not a test itself).
#
# Each script counts what it did and ends with one line:
#   torture: kills survived K, faults injected F, bad inputs tried B, rows lost: L
# K  kill -9s after which the agent restarted and every check passed;
# F  faults from outside: portal errors, resets, latency, cut replies, expired
#    sessions, the portal killed, a full disk, a read-only directory;
# B  damaged input handed to the agent: garbage replies, corrupted files;
# L  computed, never assumed: rows the portal has that a converged cache lacks
#    (tort_lost_vs_portal) plus rows a cache held before a fault and no longer
#    holds afterwards (tort_keep / tort_lost_since). Anything but 0 fails.
# With TORTURE_TOTALS=FILE the figures are also appended there as one
# "name K F B L seconds" line per script, so a caller can sum them.

TORT_KILLS=0 TORT_FAULTS=0 TORT_BAD=0 TORT_LOST=0
TORT_T0=$SECONDS

tort_kill() { TORT_KILLS=$((TORT_KILLS + ${1:-1})); }
tort_fault() { TORT_FAULTS=$((TORT_FAULTS + ${1:-1})); }
tort_bad() { TORT_BAD=$((TORT_BAD + ${1:-1})); }

# _tort_pk DB TABLE: the quoted primary key column(s) of TABLE, comma-separated.
_tort_pk() {
  sqlite3 -batch -noheader -cmd '.timeout 10000' "file:$1?mode=ro" \
    "SELECT group_concat('\"' || name || '\"', ',') FROM (SELECT name FROM pragma_table_info('$2') WHERE pk > 0 ORDER BY pk)"
}

# tort_lost_vs_portal CACHE PORTAL TABLE...: adds to the lost rows every portal
# row whose key the cache lacks; prints "TABLE N" for each table missing rows.
tort_lost_vs_portal() {
  local cache=$1 portal=$2 t pk n
  shift 2
  for t in "$@"; do
    pk=$(_tort_pk "$portal" "$t")
    [ -n "$pk" ] || pk=$(_tort_pk "$cache" "$t")
    [ -n "$pk" ] || { echo "tort_lost_vs_portal: $t has no primary key" >&2; return 1; }
    n=$(sqlite3 -batch -noheader -cmd '.timeout 10000' "file:$cache?mode=ro" \
          "ATTACH 'file:$portal?mode=ro' AS p;" \
          "SELECT count(*) FROM (SELECT $pk FROM p.\"$t\" EXCEPT SELECT $pk FROM main.\"$t\");" 2>/dev/null) ||
      n=$(sqlite3 -batch -noheader "file:$portal?mode=ro" "SELECT count(*) FROM \"$t\"")  # no such table: all lost
    TORT_LOST=$((TORT_LOST + n))
    [ "$n" -eq 0 ] || echo "$t $n"
  done
  return 0
}

# tort_dups DB TABLE...: prints "TABLE N" for each table whose primary key
# repeats (N extra rows); silent when there are none.
tort_dups() {
  local db=$1 t pk n
  shift
  for t in "$@"; do
    pk=$(_tort_pk "$db" "$t")
    [ -n "$pk" ] || continue
    n=$(sqlite3 -batch -noheader -cmd '.timeout 10000' "file:$db?mode=ro" \
          "SELECT count(*) - (SELECT count(*) FROM (SELECT DISTINCT $pk FROM \"$t\")) FROM \"$t\"")
    [ "$n" -eq 0 ] || echo "$t $n"
  done
}

# _tort_row DB TABLE: an SQL expression of one whole row as text, each value
# quote()d (so 1, 1.0 and '1' differ); columns in declared order.
_tort_row() {
  sqlite3 -batch -noheader -cmd '.timeout 10000' "file:$1?mode=ro" \
    "SELECT group_concat('quote(\"' || name || '\")', ' || ''|'' || ') FROM (SELECT name FROM pragma_table_info('$2') ORDER BY cid)"
}

# tort_keep DB SAVED TABLE...: keeps every row of the tables (as quoted text) in
# the SQLite file SAVED (replacing it), for tort_lost_since after a fault.
tort_keep() {
  local db=$1 saved=$2 t row
  shift 2
  rm -f "$saved"
  for t in "$@"; do
    row=$(_tort_row "$db" "$t")
    [ -n "$row" ] || { echo "tort_keep: no table $t in $db" >&2; return 1; }
    sqlite3 -batch -cmd '.timeout 10000' "$saved" "ATTACH 'file:$db?mode=ro' AS c;" \
      "CREATE TABLE IF NOT EXISTS _cols (t TEXT PRIMARY KEY, cols TEXT);" \
      "INSERT INTO _cols VALUES ('$t', '${row//\'/\'\'}');" \
      "CREATE TABLE \"$t\" (r TEXT);" \
      "INSERT INTO \"$t\" SELECT $row FROM c.\"$t\";" >/dev/null
  done
}

# tort_lost_since DB SAVED TABLE...: adds to the lost rows every saved row that
# DB no longer holds with the same values; prints "TABLE N" for each table that
# lost rows (a table gone from DB, or with other columns, loses all of them).
tort_lost_since() {
  local db=$1 saved=$2 t n row
  shift 2
  for t in "$@"; do
    row=$(sqlite3 -batch -noheader "file:$saved?mode=ro" "SELECT cols FROM _cols WHERE t = '$t'")
    n=""
    [ -z "$row" ] || [ "$row" != "$(_tort_row "$db" "$t" 2>/dev/null)" ] ||
      n=$(sqlite3 -batch -noheader -cmd '.timeout 10000' "file:$saved?mode=ro" \
            "ATTACH 'file:$db?mode=ro' AS c;" \
            "SELECT count(*) FROM (SELECT r FROM main.\"$t\" EXCEPT SELECT $row FROM c.\"$t\");" 2>/dev/null) || n=""
    [ -n "$n" ] || n=$(sqlite3 -batch -noheader "file:$saved?mode=ro" "SELECT count(*) FROM \"$t\"")
    TORT_LOST=$((TORT_LOST + n))
    [ "$n" -eq 0 ] || echo "$t $n"
  done
  return 0
}

# tort_report NAME: prints the figures line (and appends to $TORTURE_TOTALS);
# fails when any row was lost.
tort_report() {
  local secs=$((SECONDS - TORT_T0))
  echo "# $1: $secs s"
  echo "torture: kills survived $TORT_KILLS, faults injected $TORT_FAULTS, bad inputs tried $TORT_BAD, rows lost: $TORT_LOST"
  [ -z "${TORTURE_TOTALS:-}" ] || echo "$1 $TORT_KILLS $TORT_FAULTS $TORT_BAD $TORT_LOST $secs" >>"$TORTURE_TOTALS"
  [ "$TORT_LOST" -eq 0 ] || { echo "FAIL: $TORT_LOST rows lost" >&2; return 1; }
}

# tort_flip FILE OFFSET MASK: xor the byte at OFFSET of FILE with MASK (1..255), in place.
tort_flip() {
  local b
  b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
  [ -n "$b" ] || { echo "tort_flip: $1 has no byte at offset $2" >&2; return 1; }
  # shellcheck disable=SC2059
  printf "\\x$(printf %02x $(( (b ^ $3) & 255 )))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
