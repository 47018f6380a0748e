# compare_cache.bash — does cache.db hold exactly what the fake portal holds?
# Sourced by the scenario tests; also runnable:
#   bash tests/compare_cache.bash equal CACHE_DB PORTAL_DB TABLE...   exit 0 equal, 1 not
#   bash tests/compare_cache.bash sums DB TABLE...                   one checksum line per table
#
# cmp_table CACHE PORTAL TABLE [WHERE]
#   Equal means: the same row count, and no row of one side missing from the
#   other (EXCEPT both ways), over every column of the cache's table. Columns are
#   matched by name when the portal has that name, else by position (introspected
#   tables name unknown columns Field_N). Values are compared after one
#   normalisation per the portal's declared type, applied to both sides alike:
#   BOOLEAN to 0/1, JSON to SQLite's minified json() text, TIMESTAMP to text.
#   Integers and reals compare numerically (SQLite: 3 = 3.0); text bytewise.
#   Prints what differs (counts, up to 5 rows each way) on stderr; returns 1.
# table_checksum DB TABLE
#   "TABLE ROWS SHA256": the column names and declared types, then every row in
#   primary-key order with each value quote()d (so 1, 1.0 and '1' differ). For
#   "identical after rebuild" checks, stricter than cmp_table.
# Both open the databases read-only (URI mode=ro), so they may run while the
# agent or the portal is writing (waiting up to 10 s on a lock).

# _cmp_cols DB TABLE: "name<TAB>type" per column in order (empty: no such table).
_cmp_cols() {
  sqlite3 -batch -noheader -cmd ".timeout 10000" -separator $'\t' "file:$1?mode=ro" \
    "SELECT name, upper(type) FROM pragma_table_info('$2') ORDER BY cid"
}

# _cmp_norm EXPR TYPE: the normalised expression for a value of that declared type.
_cmp_norm() {
  case "$2" in
    BOOLEAN|BOOL) echo "(CASE WHEN $1 IS NULL THEN NULL WHEN $1 IN (1,'1','true','t') THEN 1 WHEN $1 IN (0,'0','false','f') THEN 0 ELSE $1 END)" ;;
    JSON) echo "(CASE WHEN json_valid($1) THEN json($1) ELSE $1 END)" ;;
    TIMESTAMP*|DATETIME|DATE) echo "CAST($1 AS TEXT)" ;;
    *) echo "$1" ;;
  esac
}

cmp_table() {
  local cache=$1 portal=$2 table=$3 where=${4:-1}
  local -a cn=() ct=() pn=() pt=()
  local name type
  while IFS=$'\t' read -r name type; do cn+=("$name"); ct+=("$type"); done < <(_cmp_cols "$cache" "$table")
  while IFS=$'\t' read -r name type; do pn+=("$name"); pt+=("$type"); done < <(_cmp_cols "$portal" "$table")
  if [ ${#cn[@]} -eq 0 ]; then echo "cmp_table $table: no such table in $cache" >&2; return 1; fi
  if [ ${#pn[@]} -eq 0 ]; then echo "cmp_table $table: no such table in $portal" >&2; return 1; fi
  local i j pcol ptype cexpr="" pexpr=""
  for i in "${!cn[@]}"; do
    pcol="" ptype=""
    for j in "${!pn[@]}"; do
      if [ "${pn[$j]}" = "${cn[$i]}" ]; then pcol=${pn[$j]}; ptype=${pt[$j]}; break; fi
    done
    if [ -z "$pcol" ]; then
      if [ "$i" -ge ${#pn[@]} ]; then
        echo "cmp_table $table: cache column ${cn[$i]} (position $((i + 1))) has no portal counterpart" >&2
        return 1
      fi
      pcol=${pn[$i]} ptype=${pt[$i]}
    fi
    [ -n "$cexpr" ] && { cexpr+=", "; pexpr+=", "; }
    cexpr+="$(_cmp_norm "c.\"${cn[$i]}\"" "$ptype")"
    pexpr+="$(_cmp_norm "p.\"$pcol\"" "$ptype")"
  done
  local only_c="SELECT $cexpr FROM main.\"$table\" AS c WHERE $where EXCEPT SELECT $pexpr FROM p.\"$table\" AS p WHERE $where"
  local only_p="SELECT $pexpr FROM p.\"$table\" AS p WHERE $where EXCEPT SELECT $cexpr FROM main.\"$table\" AS c WHERE $where"
  local res
  res=$(sqlite3 -batch -noheader -cmd ".timeout 10000" -separator ' ' "file:$cache?mode=ro" \
    "ATTACH 'file:$portal?mode=ro' AS p;" \
    "SELECT (SELECT count(*) FROM main.\"$table\" AS c WHERE $where), (SELECT count(*) FROM p.\"$table\" AS p WHERE $where), (SELECT count(*) FROM ($only_c)), (SELECT count(*) FROM ($only_p));") ||
    { echo "cmp_table $table: sqlite3 failed" >&2; return 1; }
  local ccount pcount nc np
  read -r ccount pcount nc np <<<"$res"
  if [ "$ccount" = "$pcount" ] && [ "$nc" = 0 ] && [ "$np" = 0 ]; then return 0; fi
  {
    echo "cmp_table $table${4:+ where $4}: cache $ccount rows, portal $pcount rows; $nc cache rows not in the portal, $np portal rows not in the cache"
    sqlite3 -batch -noheader -cmd ".timeout 10000" -separator '|' "file:$cache?mode=ro" "ATTACH 'file:$portal?mode=ro' AS p;" \
      "SELECT 'cache only:', * FROM ($only_c) LIMIT 5;" "SELECT 'portal only:', * FROM ($only_p) LIMIT 5;"
  } >&2
  return 1
}

# cmp_tables CACHE PORTAL TABLE...: every table equal (reports each difference).
cmp_tables() {
  local cache=$1 portal=$2 t bad=0
  shift 2
  for t in "$@"; do cmp_table "$cache" "$portal" "$t" || bad=1; done
  return $bad
}

table_checksum() {
  local db=$1 table=$2
  local -a cols=() pk=()
  local name type p
  while IFS=$'\t' read -r name type p; do
    cols+=("$name")
    [ "$p" -gt 0 ] && pk[$p]="\"$name\""
  done < <(sqlite3 -batch -noheader -cmd ".timeout 10000" -separator $'\t' "file:$db?mode=ro" \
             "SELECT name, upper(type), pk FROM pragma_table_info('$table') ORDER BY cid")
  if [ ${#cols[@]} -eq 0 ]; then echo "$table absent -"; return 0; fi
  local sel="" order c
  for c in "${cols[@]}"; do sel+="${sel:+ || '|' || }quote(\"$c\")"; done
  if [ ${#pk[@]} -gt 0 ]; then order=$(IFS=,; echo "${pk[*]}"); else order=$(IFS=,; printf '"%s",' "${cols[@]}"); order=${order%,}; fi
  local rows sum
  rows=$(sqlite3 -batch -noheader -cmd ".timeout 10000" "file:$db?mode=ro" "SELECT count(*) FROM \"$table\"")
  sum=$( { sqlite3 -batch -noheader -cmd ".timeout 10000" -separator $'\t' "file:$db?mode=ro" \
             "SELECT name, upper(type), pk FROM pragma_table_info('$table') ORDER BY cid"
           sqlite3 -batch -noheader -cmd ".timeout 10000" "file:$db?mode=ro" "SELECT $sel FROM \"$table\" ORDER BY $order"; } |
         sha256sum | cut -c1-64)
  echo "$table $rows $sum"
}

# table_checksums DB TABLE...: one line per table.
table_checksums() {
  local db=$1 t
  shift
  for t in "$@"; do table_checksum "$db" "$t"; done
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  case "${1:-}" in
    equal) shift; [ $# -ge 3 ] || { echo "usage: $0 equal CACHE PORTAL TABLE..." >&2; exit 2; }; cmp_tables "$@" ;;
    sums) shift; [ $# -ge 2 ] || { echo "usage: $0 sums DB TABLE..." >&2; exit 2; }; table_checksums "$@" ;;
    *) echo "usage: $0 equal CACHE PORTAL TABLE... | sums DB TABLE..." >&2; exit 2 ;;
  esac
fi
