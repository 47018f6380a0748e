/* test_replay_range.c — replay of SNAPSHOT_RANGE records (parallel key-range
 * snapshot streams) and the COVERAGE it keeps in _agent_snapshot_ranges: pages
 * of interleaved ranges land in the shadow, intervals merge, persist, survive a
 * rebuild, are cleared by END, a new BEGIN and a layout change; overlaps, keys
 * outside their range and bad counts are refused with nothing applied; a
 * version-7 cache.db migrates keeping its data. (test_replay.c holds the rest
 * of replay's tests; this file keeps both from growing past the size limit.)
 * Journals are real files written with the journal library in temp dirs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "journal/journal.h"
#include "journal/rows.h"
#include "replay/copy.h"
#include "replay/replay.h"
#include "tests/testutil.h"

/* ---- fixture ------------------------------------------------------------------------ */

struct fx {
    char *root;
    char jdir[512];            /* root/journal */
    char db[512];              /* root/cache.db */
    struct journal_writer *w;
    struct journal_payload pl;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    f->root = tu_tmpdir("test_replay_range");
    assert_non_null(f->root);
    snprintf(f->jdir, sizeof f->jdir, "%s/journal", f->root);
    snprintf(f->db, sizeof f->db, "%s/cache.db", f->root);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    if (f->w) journal_writer_close(f->w);
    journal_payload_free(&f->pl);
    tu_rmrf(f->root);
    free(f->root);
    free(f);
    return 0;
}

static struct replay *ropen(struct fx *f)
{
    struct replay_opts o = {.db_path = f->db, .journal_dir = f->jdir};
    struct replay *r;
    char err[1024];
    if (replay_open(&o, &r, err, sizeof err) != 0) fail_msg("replay_open: %s", err);
    return r;
}

static void apply_ok(struct replay *r)
{
    struct replay_stats st;
    char err[1024];
    if (replay_apply(r, JOURNAL_SEQ_MAX, &st, err, sizeof err) != 0) fail_msg("replay_apply: %s", err);
}

/* Apply expecting failure; every `expect` (NULL-terminated) must be in the error. */
static void apply_fails(struct replay *r, ...)
{
    char err[1024];
    struct replay_stats st;
    if (replay_apply(r, JOURNAL_SEQ_MAX, &st, err, sizeof err) == 0) fail_msg("replay_apply succeeded");
    va_list ap;
    va_start(ap, r);
    const char *e;
    while ((e = va_arg(ap, const char *)))
        if (!strstr(err, e)) fail_msg("error \"%s\" lacks \"%s\"", err, e);
    va_end(ap);
}

static uint64_t append(struct fx *f, int type, const char *table)
{
    char err[512];
    uint64_t seq;
    if (!f->w) {
        struct journal_opts o = {.dir = f->jdir, .level = 1};
        if (journal_writer_open(&o, &f->w, err, sizeof err) != 0) fail_msg("journal open: %s", err);
        journal_batch_begin(f->w);     /* readers see written bytes; one fsync is enough */
    }
    if (journal_payload_finish(&f->pl, err, sizeof err) != 0) fail_msg("payload: %s", err);
    if (journal_append(f->w, type, table, f->pl.p, f->pl.len, &seq, err, sizeof err) != 0)
        fail_msg("append: %s", err);
    return seq;
}

/* Table "t": id INT key, name TEXT; `keyless` has no key column. */
static uint64_t put_schema(struct fx *f, const char *table, int key)
{
    const char *names[] = {"id", "name"};
    enum journal_coltype types[] = {JOURNAL_COL_INT, JOURNAL_COL_TEXT};
    char err[512];
    if (journal_payload_schema(&f->pl, 2, names, types, key, -1, err, sizeof err) != 0) fail_msg("%s", err);
    return append(f, JOURNAL_SCHEMA, table);
}

static uint64_t put_begin(struct fx *f, const char *table)
{
    journal_payload_snapshot_begin(&f->pl, 0);
    return append(f, JOURNAL_SNAPSHOT_BEGIN, table);
}

static uint64_t put_end(struct fx *f, const char *table, uint64_t id, uint64_t count)
{
    journal_payload_snapshot_end(&f->pl, id, count, NULL, NULL);
    return append(f, JOURNAL_SNAPSHOT_END, table);
}

static void put_row(struct fx *f, int64_t k)
{
    char s[32];
    int n = snprintf(s, sizeof s, "n%" PRId64, k);
    journal_put_int(&f->pl, k);
    journal_put_text(&f->pl, s, (size_t)n);
}

#define INF INT64_MIN          /* as a bound of range(): unbounded */

/* A SNAPSHOT_RANGE of snapshot id over (from, to] holding the n keys. */
static uint64_t put_range(struct fx *f, const char *table, uint64_t id, int64_t from, int64_t to, const int64_t *keys,
                          int n)
{
    struct journal_value lo = {.type = from == INF ? JOURNAL_NULL : JOURNAL_INT, .i = from};
    struct journal_value hi = {.type = to == INF ? JOURNAL_NULL : JOURNAL_INT, .i = to};
    journal_payload_snapshot_range(&f->pl, id, &lo, &hi, 2);
    for (int i = 0; i < n; i++) put_row(f, keys[i]);
    return append(f, JOURNAL_SNAPSHOT_RANGE, table);
}

static uint64_t put_page(struct fx *f, const char *table, uint64_t id, const int64_t *keys, int n)
{
    journal_payload_snapshot_page(&f->pl, id, 2);
    for (int i = 0; i < n; i++) put_row(f, keys[i]);
    return append(f, JOURNAL_SNAPSHOT_PAGE, table);
}

static int64_t q_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    if (sqlite3_step(st) != SQLITE_ROW) fail_msg("%s: no row: %s", sql, sqlite3_errmsg(db));
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static struct replay_table tget(struct replay *r, const char *table)
{
    struct replay_table t;
    char err[512];
    int rc = replay_table_get(r, table, &t, err, sizeof err);
    if (rc != 0) fail_msg("replay_table_get %s: rc %d %s", table, rc, rc < 0 ? err : "");
    return t;
}

/* The table's coverage as text: "(-inf,0] (1000,+inf]"; "" none. */
static void coverage(struct replay *r, const char *table, char *out, size_t n)
{
    struct replay_table t = tget(r, table);
    out[0] = '\0';
    for (size_t i = 0; i < t.nranges; i++) {
        const struct replay_range *g = &t.ranges[i];
        char lo[24], hi[24];
        if (g->lo_inf) snprintf(lo, sizeof lo, "-inf");
        else snprintf(lo, sizeof lo, "%" PRId64, g->lo);
        if (g->hi_inf) snprintf(hi, sizeof hi, "+inf");
        else snprintf(hi, sizeof hi, "%" PRId64, g->hi);
        size_t used = strlen(out);
        snprintf(out + used, n - used, "%s(%s,%s]", i ? " " : "", lo, hi);
    }
    replay_table_free(&t);
}

static void assert_coverage(struct replay *r, const char *table, const char *want)
{
    char got[512];
    coverage(r, table, got, sizeof got);
    if (strcmp(got, want) != 0) fail_msg("coverage of %s: \"%s\", want \"%s\"", table, got, want);
}

/* ---- tests ----------------------------------------------------------------------------- */

/* Two streams interleaved: rows land in the shadow, coverage merges to two
 * intervals then one, persists across reopen and a rebuild; a PAGE of the same
 * snapshot is fine; END counts RANGE rows, swaps, and clears the coverage. */
static void test_range_pages_and_coverage(void **state)
{
    struct fx *f = *state;
    put_schema(f, "t", 0);
    uint64_t id = put_begin(f, "t");
    const int64_t a1[] = {INT64_MIN, -2, 0}, b1[] = {1001, 2000}, a2[] = {1, 50};
    const int64_t b2[] = {2001, 9007199254740993LL, INT64_MAX}, mid[] = {51, 1000};
    put_range(f, "t", id, INF, 0, a1, 3);            /* stream A */
    put_range(f, "t", id, 1000, 2000, b1, 2);        /* stream B */
    struct replay *r = ropen(f);
    apply_ok(r);
    assert_coverage(r, "t", "(-inf,0] (1000,2000]");
    put_range(f, "t", id, 0, 50, a2, 2);
    put_range(f, "t", id, 2000, INF, b2, 3);
    apply_ok(r);
    assert_coverage(r, "t", "(-inf,50] (1000,+inf]");
    assert_int_equal(q_int(replay_db(r), "SELECT count(*) FROM _agent_snapshot_ranges"), 2);
    struct replay_table t = tget(r, "t");
    assert_int_equal(t.pending_id, id);
    assert_int_equal(t.pending_rows, 10);
    assert_int_equal(t.pending_key.type, JOURNAL_NULL);      /* a range does not set it */
    assert_int_equal(t.rows, 0);
    replay_table_free(&t);
    assert_int_equal(q_int(replay_db(r), "SELECT count(*) FROM _agent_shadow_t"), 10);
    assert_int_equal(q_int(replay_db(r), "SELECT count(*) FROM _agent_shadow_t WHERE id = 9007199254740993"), 1);
    assert_int_equal(q_int(replay_db(r), "SELECT count(*) FROM _agent_shadow_t WHERE id = -9223372036854775808"), 1);
    uint64_t applied = replay_applied_seq(r);
    replay_close(r);

    /* Persists across close/reopen, and a rebuild from the journal reproduces it. */
    r = ropen(f);
    assert_coverage(r, "t", "(-inf,50] (1000,+inf]");
    replay_close(r);
    struct replay_opts o = {.db_path = f->db, .journal_dir = f->jdir};
    struct replay_stats st;
    char err[1024];
    if (replay_rebuild(&o, &st, err, sizeof err) != 0) fail_msg("rebuild: %s", err);
    r = ropen(f);
    assert_int_equal(replay_applied_seq(r), applied);
    assert_coverage(r, "t", "(-inf,50] (1000,+inf]");
    t = tget(r, "t");
    assert_int_equal(t.pending_rows, 10);
    replay_table_free(&t);

    /* The gap is filled: one interval. A serial PAGE of the same snapshot too. */
    put_range(f, "t", id, 50, 1000, mid, 2);
    const int64_t serial[] = {1, 3000};               /* 1 again: replaces, counted as journaled */
    put_page(f, "t", id, serial, 2);
    apply_ok(r);
    assert_coverage(r, "t", "(-inf,+inf]");
    t = tget(r, "t");
    assert_int_equal(t.pending_rows, 14);
    assert_int_equal(t.pending_key.i, 3000);
    assert_int_equal(t.nranges, 1);
    assert_true(t.ranges[0].lo_inf && t.ranges[0].hi_inf);
    replay_table_free(&t);

    /* END counts RANGE and PAGE rows alike; the swap clears the coverage. */
    put_end(f, "t", id, 14);
    apply_ok(r);
    t = tget(r, "t");
    assert_int_equal(t.pending_id, 0);
    assert_int_equal(t.snapshot_id, id);
    assert_int_equal(t.rows, 13);                     /* key 1 twice */
    assert_int_equal(t.nranges, 0);
    assert_null(t.ranges);
    replay_table_free(&t);
    assert_int_equal(q_int(replay_db(r), "SELECT count(*) FROM t"), 13);
    assert_int_equal(q_int(replay_db(r), "SELECT count(*) FROM _agent_snapshot_ranges"), 0);

    /* A new BEGIN clears the coverage of the snapshot it supersedes. */
    uint64_t id2 = put_begin(f, "t");
    const int64_t k[] = {5};
    put_range(f, "t", id2, 0, 10, k, 1);
    put_range(f, "t", id2, 20, 30, NULL, 0);          /* a range with no rows proves its keys absent */
    apply_ok(r);
    assert_coverage(r, "t", "(0,10] (20,30]");
    uint64_t id3 = put_begin(f, "t");
    apply_ok(r);
    assert_coverage(r, "t", "");
    /* So does a layout change that drops the pending shadow. */
    put_range(f, "t", id3, 0, 10, k, 1);
    apply_ok(r);
    assert_coverage(r, "t", "(0,10]");
    const char *names[] = {"id", "name", "more"};
    enum journal_coltype types[] = {JOURNAL_COL_INT, JOURNAL_COL_TEXT, JOURNAL_COL_TEXT};
    if (journal_payload_schema(&f->pl, 3, names, types, 0, -1, err, sizeof err) != 0) fail_msg("%s", err);
    append(f, JOURNAL_SCHEMA, "t");
    apply_ok(r);
    assert_coverage(r, "t", "");
    t = tget(r, "t");
    assert_int_equal(t.pending_id, 0);
    replay_table_free(&t);
    replay_close(r);
}

/* Start over: no journal, no cache.db. */
static void reset(struct fx *f)
{
    if (f->w) journal_writer_close(f->w);
    f->w = NULL;
    tu_rmrf(f->jdir);
    static const char *const suffix[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s%s", f->db, suffix[i]);
        unlink(p);
    }
}

/* Pending snapshots of "t" (coverage (0,10] (100,+inf], 3 rows) and of
 * "keyless"; *tid and *kid get their ids. */
static void build_base(struct fx *f, uint64_t *tid, uint64_t *kid)
{
    reset(f);
    put_schema(f, "t", 0);
    put_schema(f, "keyless", -1);
    *tid = put_begin(f, "t");
    *kid = put_begin(f, "keyless");
    const int64_t k[] = {1, 2, 10};
    put_range(f, "t", *tid, 0, 10, k, 3);
    put_range(f, "t", *tid, 100, INF, NULL, 0);
}

/* Apply the base and one bad record after it: refused naming the record, and
 * the base applied, nothing of the bad one (position, shadow, count, coverage). */
static void expect_refused(struct fx *f, uint64_t bad, const char *table, const char *want)
{
    struct replay *r = ropen(f);
    char at[96], rec[96];
    snprintf(at, sizeof at, "journal seq %" PRIu64 " (segment", bad);
    snprintf(rec, sizeof rec, "snapshot_range record, table \"%s\"", table);
    apply_fails(r, at, rec, want, NULL);
    assert_int_equal(replay_applied_seq(r), bad - 1);
    assert_coverage(r, "t", "(0,10] (100,+inf]");
    assert_coverage(r, "keyless", "");
    struct replay_table t = tget(r, "t");
    assert_int_equal(t.pending_rows, 3);
    replay_table_free(&t);
    assert_int_equal(q_int(replay_db(r), "SELECT count(*) FROM _agent_shadow_t"), 3);
    assert_int_equal(q_int(replay_db(r), "SELECT count(*) FROM _agent_shadow_keyless"), 0);
    replay_close(r);
}

static void test_range_refused(void **state)
{
    struct fx *f = *state;
    uint64_t tid, kid;
    static const struct {
        int64_t from, to;
        int64_t keys[2];
        int n;
        const char *want;
    } bad[] = {
        {5, 20, {15}, 1, "snapshot range (5, 20] overlaps (0, 10] journaled before"},
        {INF, 1, {1}, 1, "snapshot range (-inf, 1] overlaps (0, 10] journaled before"},
        {0, 10, {5}, 1, "snapshot range (0, 10] overlaps (0, 10] journaled before"},
        {150, 160, {155}, 1, "snapshot range (150, 160] overlaps (100, +inf] journaled before"},
        {INF, INF, {0}, 0, "snapshot range (-inf, +inf] overlaps (0, 10] journaled before"},
        {20, 30, {21, 31}, 2, "row 1: key 31 is not an INT inside the snapshot range (20, 30]"},
        {20, 30, {21, 20}, 2, "row 1: key 20 is not an INT inside the snapshot range (20, 30]"},
        {INF, 0, {-5, INT64_MAX}, 2, "row 1: key 9223372036854775807 is not an INT inside the snapshot range "
                                     "(-inf, 0]"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        build_base(f, &tid, &kid);
        uint64_t seq = put_range(f, "t", tid, bad[i].from, bad[i].to, bad[i].keys, bad[i].n);
        expect_refused(f, seq, "t", bad[i].want);
    }
    /* A key that is not an INT; a NULL key; no key column; a foreign snapshot id. */
    static const struct {
        const char *table;
        int key;              /* 0 text, 1 NULL, 2 INT */
        const char *want;
    } more[] = {
        {"t", 0, "row 0: key text \"abc\" is not an INT inside the snapshot range (20, 30]"},
        {"t", 1, "row 0: key column \"id\" is NULL"},
        {"keyless", 2, "snapshot range for a table without a key column"},
        {"t", 2, "snapshot id 77 does not match the pending snapshot 3"},
    };
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++) {
        build_base(f, &tid, &kid);
        struct journal_value from = {.type = JOURNAL_INT, .i = 20}, to = {.type = JOURNAL_INT, .i = 30};
        uint64_t id = strcmp(more[i].table, "keyless") == 0 ? kid : i == 3 ? 77 : tid;
        journal_payload_snapshot_range(&f->pl, id, &from, &to, 2);
        if (more[i].key == 0) journal_put_text(&f->pl, "abc", 3);
        else if (more[i].key == 1) journal_put_null(&f->pl);
        else journal_put_int(&f->pl, 25);
        journal_put_text(&f->pl, "x", 1);
        uint64_t seq = append(f, JOURNAL_SNAPSHOT_RANGE, more[i].table);
        expect_refused(f, seq, more[i].table, more[i].want);
    }
}

/* END's row count counts RANGE rows: one short is refused, the old live table kept. */
static void test_range_end_count(void **state)
{
    struct fx *f = *state;
    put_schema(f, "t", 0);
    uint64_t id = put_begin(f, "t");
    const int64_t a[] = {1, 2}, b[] = {11};
    put_range(f, "t", id, 10, 20, b, 1);
    put_range(f, "t", id, INF, 10, a, 2);
    uint64_t bad = put_end(f, "t", id, 4);
    struct replay *r = ropen(f);
    apply_fails(r, "END says 4 rows, 3 were journaled", NULL);
    assert_int_equal(replay_applied_seq(r), bad - 1);
    assert_coverage(r, "t", "(-inf,20]");
    struct replay_table t = tget(r, "t");
    assert_int_equal(t.pending_id, id);
    replay_table_free(&t);
    replay_close(r);
}

/* A cache.db left by a version-7 build (no _agent_snapshot_ranges) keeps its
 * rows, pending snapshot and position, gains the table, and takes ranges. */
static void test_migrate_from_v7(void **state)
{
    struct fx *f = *state;
    sqlite3 *db;
    char err[1024];
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    if (replay_migrate(db, f->db, 7, err, sizeof err) != 0) fail_msg("migrate: %s", err);
    assert_int_equal(q_int(db, "PRAGMA user_version"), 7);
    /* What a version-7 build's replay leaves: a live table, a pending snapshot. */
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT);"
                                  "INSERT INTO t VALUES (1, 'a'), (2, 'b');"
                                  "CREATE TABLE _agent_shadow_t (id INTEGER PRIMARY KEY, name TEXT);"
                                  "INSERT INTO _agent_shadow_t VALUES (5, 'e');"
                                  "INSERT INTO _agent_tables (name, live, rows, pending_id, pending_rows,"
                                  " pending_key_type, pending_key) VALUES ('t', 1, 2, 3, 1, 'int', 5);"
                                  "UPDATE _agent_state SET applied_seq = 4, base_seq = 1;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    struct replay *r = ropen(f);
    assert_int_equal(replay_applied_seq(r), 4);
    assert_int_equal(q_int(replay_db(r), "PRAGMA user_version"), REPLAY_SCHEMA_VERSION);
    assert_int_equal(REPLAY_SCHEMA_VERSION, 8);
    assert_int_equal(q_int(replay_db(r), "SELECT count(*) FROM t"), 2);
    assert_int_equal(q_int(replay_db(r), "SELECT count(*) FROM _agent_shadow_t"), 1);
    struct replay_table t = tget(r, "t");
    assert_int_equal(t.rows, 2);
    assert_int_equal(t.pending_id, 3);
    assert_int_equal(t.pending_key.i, 5);
    assert_int_equal(t.nranges, 0);
    replay_table_free(&t);
    assert_int_equal(q_int(replay_db(r), "SELECT count(*) FROM _agent_snapshot_ranges"), 0);
    replay_close(r);
}

/* An export copy names nothing of this agent's journal: its coverage is
 * emptied with the pending state, and the table never travels in a delta. */
static void test_copy_empties_coverage(void **state)
{
    struct fx *f = *state;
    put_schema(f, "t", 0);
    uint64_t id = put_begin(f, "t");
    const int64_t k[] = {3};
    put_range(f, "t", id, 0, 10, k, 1);
    struct replay *r = ropen(f);
    apply_ok(r);
    assert_coverage(r, "t", "(0,10]");
    replay_close(r);
    char copy[600], err[1024];
    snprintf(copy, sizeof copy, "%s/copy.db", f->root);
    if (replay_copy_take(f->db, copy, err, sizeof err) != 0) fail_msg("copy: %s", err);
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(copy, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(q_int(db, "SELECT count(*) FROM _agent_snapshot_ranges"), 0);
    assert_int_equal(q_int(db, "SELECT pending_id FROM _agent_tables WHERE name = 't'"), 0);
    sqlite3_close(db);
    assert_int_equal(replay_copy_travels("_agent_snapshot_ranges"), 0);
    r = ropen(f);
    assert_coverage(r, "t", "(0,10]");         /* the source keeps its own */
    replay_close(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_range_pages_and_coverage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_range_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_range_end_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_from_v7, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy_empties_coverage, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
