#!/usr/bin/env bash
# The differential test: the agent's local JSONSQL API against a portal, over
# the same data. The portal is iptv-ref-portal (PostgreSQL underneath, its own
# JSONSQL translation) when it is built and PostgreSQL is installed; else
# iptv-fake-portal stands in (loudly: it shares the agent's compiler, so it only
# checks the serve layer). Every table is synced into the agent's cache, the
# agent serves, and iptv-diff sends the hand-written cases plus IA_DIFF_COUNT
# (default 300; a long run: IA_DIFF_COUNT=10000) generated selects to both.
# Exit 0 of iptv-diff (no differences; agent refusals are allowed) passes.
source "$(dirname "$0")/lib.bash"
: "${IA_DIFF:?IA_DIFF must name the iptv-diff binary}"
COUNT=${IA_DIFF_COUNT:-300}
SEED=${IA_DIFF_SEED:-20261206}
# 6,000 programmes: more than the page cap (5,000), so a select without a limit
# is cut by the portal and the agent must answer the same page.
PORTAL_ARGS=(--seed 7 --rows 6000 --scale 1)
PW=diff-pw SCEN_RETRIES=3 SCEN_TIMEOUT=30s
export SCEN_PW=$PW
PG_SH=${IA_SOURCE_DIR:-$(dirname "$0")/../..}/tests/ref_portal/pg.sh

if [ -n "${IA_REF_PORTAL:-}" ] && [ -x "$IA_REF_PORTAL" ] && [ -f "$PG_SH" ] && bash "$PG_SH" bindir >/dev/null 2>&1; then
  PGDIR=$SCEN_DIR/pg
  conninfo=$(bash "$PG_SH" start "$PGDIR") || fail "pg.sh start failed"
  # The portal goes first, then PostgreSQL, then the temp dir holding its data.
  diff_cleanup() {
    [ -z "${P_PID:-}" ] || stop_portal "$P_PID"
    bash "$PG_SH" stop "$PGDIR" >/dev/null 2>&1 || true
    scen_cleanup
  }
  trap diff_cleanup EXIT
  IA_FAKE_PORTAL=$IA_REF_PORTAL start_portal P --pg "$conninfo" --password "$PW" "${PORTAL_ARGS[@]}"
  ok "reference portal (PostgreSQL) at $P_URL"
else
  echo "NOTE: ************************************************************************" >&2
  echo "NOTE: iptv-ref-portal is not built, or PostgreSQL is not installed:" >&2
  echo "NOTE: comparing against iptv-fake-portal, which shares the agent's JSONSQL" >&2
  echo "NOTE: compiler. This checks the local API's serve layer, not PostgreSQL parity." >&2
  echo "NOTE: ************************************************************************" >&2
  start_portal P --password "$PW" --page-cap 5000 "${PORTAL_ARGS[@]}"
  ok "FALLBACK: iptv-fake-portal at $P_URL (page cap 5000)"
fi

DATA=$SCEN_DIR/data CFG=$SCEN_DIR/agent.toml O=$SCEN_DIR/last.out E=$SCEN_DIR/last.err
# Every column by name (as tests/fake_portal/gen.c makes them): an introspected
# table would name its columns Field_N, which no portal client asks for.
COLS_tv_category="id name sort_order"
COLS_package="id name paid"
COLS_tv_channel="id name url epg_id logo is_tv is_radio sort_order category_id languages params created_at updated_at"
COLS_subscriber="id username password_hash disabled balance email created_at updated_at tags comment"
COLS_terminal="id subscriber_id mac_addr model serial active created_at updated_at settings"
COLS_media="id name title orig_title description short_description slogan year duration rating rating_imdb
  rating_kinopoisk votes_imdb votes_kinopoisk age_rating genres countries actors directors producers studios keywords
  languages audio_tracks subtitles poster poster_wide backdrop trailer_url url stream_url is_series season episode
  parent_id kinopoisk_id imdb_id tmdb_id price currency is_free is_hd is_4k is_3d quality release_date premiere_date
  available_from available_to views_count likes dislikes sort_order provider_id provider_name package_id category_id
  budget box_office file_size bitrate width height aspect_ratio fps codec drm enabled archived extra comment
  external_id created_at updated_at"
COLS_tv_program="id created_at updated_at channel_id title description start stop duration age_rating is_live"
COLS_tv_program_category="id program_id category_id"
TABLES=(tv_category package tv_channel subscriber terminal media tv_program tv_program_category)
{
  printf '[serve]\nlisten = "127.0.0.1:0"\n'
  for t in "${TABLES[@]}"; do
    v=COLS_$t
    cols=$(printf '"%s", ' ${!v})
    printf '\n[[table]]\nname = "%s"\nstrategy = "full"\nkey = "id"\nchunk = 2000\ninterval = "1h"\n' "$t"
    printf 'columns = [%s]\n' "${cols%, }"
  done
} | scen_config
agent sync --full
expect_rc 0 "sync --full"
ok "every table synced into the cache"

start_daemon D "$SCEN_DIR/daemon.log" -c "$CFG" run
ok "agent serving at $D_URL"

# iptv-diff's own failure paths and its self-check, before the real comparison.
diff_run() { set +e; "$IA_DIFF" "$@" >"$O" 2>"$E"; rc=$?; set -e; }
diff_run --portal "$P_URL" --agent "$D_URL" --user admin --password "$PW" --count 5
[ "$rc" -eq 2 ] && grep -q -- "--seed" "$E" || fail "no --seed: exit $rc, $(cat "$E")"
diff_run --portal "$P_URL" --agent "$D_URL" --user admin --password wrong --seed 1 --count 5
[ "$rc" -eq 2 ] && grep -q "portal login" "$E" || fail "wrong password: exit $rc, $(cat "$E")"
diff_run --portal "$P_URL" --agent http://127.0.0.1:1 --user admin --password "$PW" --seed 1 --count 5
[ "$rc" -eq 2 ] && grep -q "agent login" "$E" || fail "no agent: exit $rc, $(cat "$E")"
ok "iptv-diff refuses a missing --seed, a wrong password and an unreachable agent (exit 2, named)"
diff_run --portal "$P_URL" --agent "$P_URL" --user admin --password "$PW" --seed "$SEED" --count 100 --report "$SCEN_DIR/self.jsonl"
[ "$rc" -eq 0 ] && grep -q "different 0$" "$O" || fail "the portal against itself: exit $rc: $(tail -5 "$O")"
ok "the portal against itself: $(tail -1 "$O")"

REPORT=$SCEN_DIR/diff.jsonl
set +e
"$IA_DIFF" --portal "$P_URL" --agent "$D_URL" --user admin --password "$PW" --seed "$SEED" --count "$COUNT" \
  --report "$REPORT" >"$SCEN_DIR/diff.out" 2>"$SCEN_DIR/diff.err"
rc=$?
set -e
# One line per difference (iptv-diff prints the request and both answers under
# each; KEEP=1 keeps them and the report), then the summary.
grep -E '^(different|portal_refused) ' "$SCEN_DIR/diff.out" | cut -c1-300 || true
tail -1 "$SCEN_DIR/diff.out"
cat "$SCEN_DIR/diff.err" >&2
[ "$rc" -eq 0 ] || { [ -n "${KEEP:-}" ] && echo "report: $REPORT" >&2; fail "iptv-diff exit $rc (differences above; KEEP=1 keeps the full report)"; }
ok "$(tail -1 "$SCEN_DIR/diff.out")"
echo "$pass_count passed, 0 failed"
