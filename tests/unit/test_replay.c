/* test_replay.c — replay/: cache.db schema, metadata and migrations, and
 * applying journal records: typed values read back exactly, exactly-once,
 * crash mid-way (partial apply and a process killed inside a batch), the
 * position committing with the rows, interrupted and superseded snapshots, a
 * concurrent reader that never sees half a snapshot, incremental upserts and
 * marks, deletions, schema changes, every error path with its message, damage
 * with segment:offset, rebuild, the compacted-start rule, and migrations.
 * Journals are real files written with the journal library in temp dirs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <float.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/base/buf.h"
#include "journal/journal.h"
#include "journal/rows.h"
#include "replay/replay.h"
#include "tests/testutil.h"

/* ---- fixture ------------------------------------------------------------------------ */

struct fx {
    char *root;
    char jdir[512];            /* root/journal */
    char db[512];              /* root/cache.db */
    struct journal_writer *w;
    uint64_t segment_size;     /* for the writer; 0 default */
    struct journal_payload pl;
    char warn[4096];           /* warnings from replay, newline-separated */
    int nwarn;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    f->root = tu_tmpdir("test_replay");
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

static void on_warn(void *ctx, const char *msg)
{
    struct fx *f = ctx;
    size_t n = strlen(f->warn);
    snprintf(f->warn + n, sizeof f->warn - n, "%s\n", msg);
    f->nwarn++;
}

static struct replay_opts opts_for(struct fx *f, const char *db)
{
    struct replay_opts o = {.db_path = db ? db : f->db, .journal_dir = f->jdir, .warn = on_warn, .warn_ctx = f};
    return o;
}

static struct replay *ropen_at(struct fx *f, const char *db)
{
    struct replay_opts o = opts_for(f, db);
    struct replay *r;
    char err[1024];
    if (replay_open(&o, &r, err, sizeof err) != 0) fail_msg("replay_open: %s", err);
    return r;
}

static struct replay *ropen(struct fx *f) { return ropen_at(f, NULL); }

static struct replay_stats apply_ok(struct replay *r, uint64_t max)
{
    struct replay_stats st;
    char err[1024];
    if (replay_apply(r, max, &st, err, sizeof err) != 0) fail_msg("replay_apply: %s", err);
    return st;
}

/* Apply expecting failure; every `expect` (NULL-terminated) must be in the error. */
static void apply_fails(struct replay *r, uint64_t max, ...)
{
    char err[1024];
    struct replay_stats st;
    if (replay_apply(r, max, &st, err, sizeof err) == 0) fail_msg("replay_apply succeeded, expected an error");
    va_list ap;
    va_start(ap, max);
    const char *e;
    while ((e = va_arg(ap, const char *)))
        if (!strstr(err, e)) fail_msg("error \"%s\" lacks \"%s\"", err, e);
    va_end(ap);
}

/* ---- journal building ---------------------------------------------------------------- */

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

static struct journal_writer *writer(struct fx *f)
{
    if (!f->w) {
        struct journal_opts o = {.dir = f->jdir, .segment_size = f->segment_size, .level = 1};
        char err[512];
        if (journal_writer_open(&o, &f->w, err, sizeof err) != 0) fail_msg("journal open: %s", err);
        /* One fsync per test is enough: readers see written bytes either way. */
        journal_batch_begin(f->w);
    }
    return f->w;
}

static uint64_t append(struct fx *f, int type, const char *table)
{
    char err[512];
    uint64_t seq;
    if (journal_payload_finish(&f->pl, err, sizeof err) != 0) fail_msg("payload: %s", err);
    if (journal_append(writer(f), type, table, f->pl.p, f->pl.len, &seq, err, sizeof err) != 0)
        fail_msg("append: %s", err);
    return seq;
}

static uint64_t put_schema(struct fx *f, const char *table, uint32_t n, const char *const *names,
                           const enum journal_coltype *types, int key, int cursor)
{
    char err[512];
    if (journal_payload_schema(&f->pl, n, names, types, key, cursor, err, sizeof err) != 0)
        fail_msg("schema: %s", err);
    return append(f, JOURNAL_SCHEMA, table);
}

static uint64_t put_begin(struct fx *f, const char *table)
{
    journal_payload_snapshot_begin(&f->pl, 0);
    return append(f, JOURNAL_SNAPSHOT_BEGIN, table);
}

static const struct journal_value vnull = {.type = JOURNAL_NULL};

static struct journal_value vint(int64_t i)
{
    struct journal_value v = {.type = JOURNAL_INT, .i = i};
    return v;
}

static struct journal_value vtext(const char *s)
{
    struct journal_value v = {.type = JOURNAL_TEXT, .s = s, .n = strlen(s)};
    return v;
}

static uint64_t put_end(struct fx *f, const char *table, uint64_t id, uint64_t count, struct journal_value mc,
                        struct journal_value mk)
{
    journal_payload_snapshot_end(&f->pl, id, count, &mc, &mk);
    return append(f, JOURNAL_SNAPSHOT_END, table);
}

/* The standard table "t": 7 columns, key id (0), cursor updated (6). */
static const char *const std_names[] = {"id", "name", "score", "flag", "doc", "extra", "updated"};
static const enum journal_coltype std_types[] = {JOURNAL_COL_INT, JOURNAL_COL_TEXT, JOURNAL_COL_REAL,
                                                 JOURNAL_COL_BOOL, JOURNAL_COL_JSON, JOURNAL_COL_ANY,
                                                 JOURNAL_COL_INT};
#define STD_NCOLS 7

static uint64_t put_std_schema(struct fx *f, const char *table)
{
    return put_schema(f, table, STD_NCOLS, std_names, std_types, 0, 6);
}

/* The text column of "t" for id k, version v. */
static void put_std_text(struct fx *f, int64_t k, int v)
{
    char s[64];
    int n = snprintf(s, sizeof s, "имя-%" PRId64 "-v%d", k, v);
    if (k % 7 == 0) s[3] = '\0';                 /* an embedded NUL now and then */
    journal_put_text(&f->pl, s, (size_t)n);
}

/* One deterministic row of "t" for id k, version v (v changes every value but the key). */
static void put_std_values(struct fx *f, int64_t k, int v)
{
    char j[64];
    journal_put_int(&f->pl, k);
    put_std_text(f, k, v);
    journal_put_double(&f->pl, (double)k * 0.5 + v);
    journal_put_bool(&f->pl, (int)((k + v) % 2));
    int n = snprintf(j, sizeof j, "{\"k\":%" PRId64 ",\"v\":[%d]}", k, v);
    journal_put_json(&f->pl, j, (size_t)n);
    switch ((k + v) % 3) {
    case 0: journal_put_int(&f->pl, k * 1000003); break;
    case 1: journal_put_text(&f->pl, "ёж", strlen("ёж")); break;
    default: journal_put_null(&f->pl); break;
    }
    journal_put_int(&f->pl, 1000 + k + v);
}

/* A snapshot page of ids [from, from + n), version v. */
static uint64_t put_std_page(struct fx *f, const char *table, uint64_t id, int64_t from, int n, int v)
{
    journal_payload_snapshot_page(&f->pl, id, STD_NCOLS);
    for (int i = 0; i < n; i++) put_std_values(f, from + i, v);
    return append(f, JOURNAL_SNAPSHOT_PAGE, table);
}

/* An incremental page of ids [from, from + n), version v; mark = last row. */
static uint64_t put_std_incr(struct fx *f, const char *table, int64_t from, int n, int v)
{
    int64_t last = from + n - 1;
    struct journal_value mc = vint(1000 + last + v), mk = vint(last);
    journal_payload_incremental_page(&f->pl, &mc, &mk, STD_NCOLS);
    for (int i = 0; i < n; i++) put_std_values(f, from + i, v);
    return append(f, JOURNAL_INCREMENTAL_PAGE, table);
}

static uint64_t put_deletions(struct fx *f, const char *table, const int64_t *keys, int n)
{
    journal_payload_deletions(&f->pl, 1);
    for (int i = 0; i < n; i++) journal_put_int(&f->pl, keys[i]);
    return append(f, JOURNAL_DELETIONS, table);
}

/* A whole snapshot of ids [from, from + n) in pages of `per`; returns END's seq. */
static uint64_t put_std_snapshot(struct fx *f, const char *table, int64_t from, int n, int per, int v)
{
    uint64_t id = put_begin(f, table);
    for (int i = 0; i < n; i += per) put_std_page(f, table, id, from + i, n - i < per ? n - i : per, v);
    int64_t last = from + n - 1;
    return put_end(f, table, id, (uint64_t)n, vint(1000 + last + v), vint(last));
}

/* ---- reading cache.db back ------------------------------------------------------------ */

static sqlite3 *ro_open(const char *path)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    return db;
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

static int q_fails(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) h = (h ^ c[i]) * 1099511628211ULL;
    return h;
}

/* FNV-1a over every value (storage class and exact bytes) of the table's rows in key order. */
static uint64_t table_sum(sqlite3 *db, const char *table)
{
    char sql[600];
    snprintf(sql, sizeof sql, "SELECT * FROM \"%s\" ORDER BY 1", table);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    uint64_t h = 1469598103934665603ULL;
    int rows = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        rows++;
        for (int c = 0; c < sqlite3_column_count(st); c++) {
            int t = sqlite3_column_type(st, c);
            h = fnv(h, &t, sizeof t);
            if (t == SQLITE_INTEGER) {
                int64_t i = sqlite3_column_int64(st, c);
                h = fnv(h, &i, sizeof i);
            } else if (t == SQLITE_FLOAT) {
                double d = sqlite3_column_double(st, c);
                h = fnv(h, &d, sizeof d);
            } else if (t != SQLITE_NULL) {
                const void *p = sqlite3_column_blob(st, c);
                int n = sqlite3_column_bytes(st, c);
                h = fnv(h, &n, sizeof n);
                h = fnv(h, p, (size_t)n);
            }
        }
    }
    sqlite3_finalize(st);
    return fnv(h, &rows, sizeof rows);
}

static int64_t count_rows(sqlite3 *db, const char *table)
{
    char sql[600];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\"", table);
    return q_int(db, sql);
}

static struct replay_table tget(struct replay *r, const char *table)
{
    struct replay_table t;
    char err[512];
    int rc = replay_table_get(r, table, &t, err, sizeof err);
    if (rc != 0) fail_msg("replay_table_get %s: rc %d %s", table, rc, rc < 0 ? err : "");
    return t;
}

/* The replay-owned metadata of a table, as text, for comparing two caches. */
static void meta_text(struct replay *r, const char *table, char *out, size_t n)
{
    struct replay_table t = tget(r, table);
    snprintf(out, n, "live=%d rows=%" PRIu64 " hash=%s ncols=%d key=%d cursor=%d mc=%d/%" PRId64 "/%s mk=%d/%" PRId64
             " snap=%" PRIu64 " pend=%" PRIu64 "/%" PRIu64 " behind=%d",
             t.live, t.rows, t.schema_hash, t.ncols, t.key_col, t.cursor_col, t.mark_cursor.type, t.mark_cursor.i,
             t.mark_cursor.s ? t.mark_cursor.s : "", t.mark_key.type, t.mark_key.i, t.snapshot_id, t.pending_id,
             t.pending_rows, t.schema_behind);
    replay_table_free(&t);
}

/* ---- typed values end to end ---------------------------------------------------------------- */

static void test_typed_values_roundtrip(void **state)
{
    struct fx *f = *state;
    put_std_schema(f, "t");
    uint64_t id = put_begin(f, "t");
    static const char nul_text[] = "a\0b\0";
    static const char cyr[] = "Привет, мир — «ёлка» 😀";
    static const char js[] = "{\"ключ\":[1,2,{\"x\":null}],\"big\":9223372036854775807}";
    journal_payload_snapshot_page(&f->pl, id, STD_NCOLS);
    /* row INT64_MIN: empty text, DBL_MAX, false, [], NULL extra */
    journal_put_int(&f->pl, INT64_MIN);
    journal_put_text(&f->pl, "", 0);
    journal_put_double(&f->pl, DBL_MAX);
    journal_put_bool(&f->pl, 0);
    journal_put_json(&f->pl, "[]", 2);
    journal_put_null(&f->pl);
    journal_put_int(&f->pl, 0);
    /* row -1: NUL text, DBL_MIN, true, JSON, int 2^53+1 in the untyped column */
    journal_put_int(&f->pl, -1);
    journal_put_text(&f->pl, nul_text, sizeof nul_text - 1);
    journal_put_double(&f->pl, DBL_MIN);
    journal_put_bool(&f->pl, 1);
    journal_put_json(&f->pl, js, sizeof js - 1);
    journal_put_int(&f->pl, 9007199254740993LL);
    journal_put_int(&f->pl, 5);
    /* row 0: Cyrillic, 0.1, NULL bool, NULL json, text in the untyped column */
    journal_put_int(&f->pl, 0);
    journal_put_text(&f->pl, cyr, sizeof cyr - 1);
    journal_put_double(&f->pl, 0.1);
    journal_put_null(&f->pl);
    journal_put_null(&f->pl);
    journal_put_text(&f->pl, "007", 3);
    journal_put_int(&f->pl, 5);
    /* row INT64_MAX: NULL text, subnormal, true, {}, real in the untyped column */
    journal_put_int(&f->pl, INT64_MAX);
    journal_put_null(&f->pl);
    journal_put_double(&f->pl, 4.9406564584124654e-324);
    journal_put_bool(&f->pl, 1);
    journal_put_json(&f->pl, "{}", 2);
    journal_put_double(&f->pl, 1.5);
    journal_put_int(&f->pl, INT64_MIN);
    append(f, JOURNAL_SNAPSHOT_PAGE, "t");
    put_end(f, "t", id, 4, vint(5), vint(INT64_MAX));

    struct replay *r = ropen(f);
    struct replay_stats st = apply_ok(r, JOURNAL_SEQ_MAX);
    assert_int_equal(st.records, 4);
    assert_int_equal(st.rows_written, 4);
    assert_int_equal(st.snapshots, 1);
    replay_close(r);

    sqlite3 *db = ro_open(f->db);
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT * FROM t ORDER BY id", -1, &q, NULL), SQLITE_OK);
    /* INT64_MIN */
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_int_equal(sqlite3_column_type(q, 0), SQLITE_INTEGER);
    assert_true(sqlite3_column_int64(q, 0) == INT64_MIN);
    assert_int_equal(sqlite3_column_type(q, 1), SQLITE_TEXT);
    assert_int_equal(sqlite3_column_bytes(q, 1), 0);
    assert_true(sqlite3_column_double(q, 2) == DBL_MAX);
    assert_int_equal(sqlite3_column_type(q, 3), SQLITE_INTEGER);
    assert_int_equal(sqlite3_column_int(q, 3), 0);
    assert_string_equal((const char *)sqlite3_column_text(q, 4), "[]");
    assert_int_equal(sqlite3_column_type(q, 5), SQLITE_NULL);
    /* -1 */
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_true(sqlite3_column_int64(q, 0) == -1);
    assert_int_equal(sqlite3_column_bytes(q, 1), 4);
    assert_memory_equal(sqlite3_column_blob(q, 1), nul_text, 4);
    assert_true(sqlite3_column_double(q, 2) == DBL_MIN);
    assert_int_equal(sqlite3_column_int(q, 3), 1);
    assert_int_equal(sqlite3_column_type(q, 4), SQLITE_TEXT);
    assert_string_equal((const char *)sqlite3_column_text(q, 4), js);
    assert_int_equal(sqlite3_column_type(q, 5), SQLITE_INTEGER);
    assert_true(sqlite3_column_int64(q, 5) == 9007199254740993LL);
    /* 0 */
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_true(sqlite3_column_int64(q, 0) == 0);
    assert_string_equal((const char *)sqlite3_column_text(q, 1), cyr);
    assert_true(sqlite3_column_double(q, 2) == 0.1);
    assert_int_equal(sqlite3_column_type(q, 3), SQLITE_NULL);
    assert_int_equal(sqlite3_column_type(q, 4), SQLITE_NULL);
    assert_int_equal(sqlite3_column_type(q, 5), SQLITE_TEXT);   /* "any": no affinity, stays text */
    assert_string_equal((const char *)sqlite3_column_text(q, 5), "007");
    /* INT64_MAX */
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_true(sqlite3_column_int64(q, 0) == INT64_MAX);
    assert_int_equal(sqlite3_column_type(q, 1), SQLITE_NULL);
    assert_true(sqlite3_column_double(q, 2) == 4.9406564584124654e-324);
    assert_string_equal((const char *)sqlite3_column_text(q, 4), "{}");
    assert_int_equal(sqlite3_column_type(q, 5), SQLITE_FLOAT);
    assert_true(sqlite3_column_double(q, 5) == 1.5);
    assert_true(sqlite3_column_int64(q, 6) == INT64_MIN);
    assert_int_equal(sqlite3_step(q), SQLITE_DONE);
    sqlite3_finalize(q);

    /* Declared types as documented; the key is the PRIMARY KEY. */
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT name, type, pk FROM pragma_table_info('t') ORDER BY cid", -1, &q,
                                        NULL), SQLITE_OK);
    static const char *const want[] = {"INTEGER", "TEXT", "REAL", "BOOLEAN", "JSON", "", "INTEGER"};
    for (int i = 0; i < STD_NCOLS; i++) {
        assert_int_equal(sqlite3_step(q), SQLITE_ROW);
        assert_string_equal((const char *)sqlite3_column_text(q, 0), std_names[i]);
        assert_string_equal((const char *)sqlite3_column_text(q, 1), want[i]);
        assert_int_equal(sqlite3_column_int(q, 2), i == 0);
    }
    sqlite3_finalize(q);
    /* The index built after the load; no shadow left behind. */
    assert_int_equal(q_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 't' "
                               "AND sql LIKE '%\"updated\", \"id\"%'"), 1);
    assert_int_equal(q_int(db, "SELECT count(*) FROM sqlite_master WHERE name LIKE '_agent_shadow%'"), 0);
    assert_int_equal(q_int(db, "PRAGMA user_version"), REPLAY_SCHEMA_VERSION);
    sqlite3_close(db);

    r = ropen(f);
    struct replay_table t = tget(r, "t");
    assert_int_equal(t.live, 1);
    assert_int_equal(t.rows, 4);
    assert_int_equal(t.ncols, STD_NCOLS);
    assert_int_equal(t.key_col, 0);
    assert_int_equal(t.cursor_col, 6);
    char hash[17];
    replay_schema_hash(STD_NCOLS, std_names, std_types, hash);
    assert_string_equal(t.schema_hash, hash);
    assert_string_equal(t.live_hash, hash);
    assert_int_equal(t.schema_behind, 0);
    assert_int_equal(t.schema_changed_ms, 0);          /* a first SCHEMA is no change */
    assert_int_equal(t.mark_cursor.type, JOURNAL_INT);
    assert_true(t.mark_cursor.i == 5);
    assert_int_equal(t.mark_key.type, JOURNAL_INT);
    assert_true(t.mark_key.i == INT64_MAX);   /* int64 mark stays exact */
    assert_int_equal(t.snapshot_id, id);
    assert_true(t.snapshot_at_ms > 0);
    assert_int_equal(t.pending_id, 0);
    assert_int_equal(t.pending_key.type, JOURNAL_NULL);
    assert_null(t.last_error);
    assert_null(t.strategy);
    replay_table_free(&t);
    struct replay_column *cols;
    size_t nc;
    char err[512];
    assert_int_equal(replay_table_columns(r, "t", &cols, &nc, err, sizeof err), 0);
    assert_int_equal(nc, STD_NCOLS);
    for (size_t i = 0; i < nc; i++) {
        assert_string_equal(cols[i].name, std_names[i]);
        assert_int_equal(cols[i].type, std_types[i]);
    }
    replay_columns_free(cols, nc);
    assert_int_equal(replay_table_columns(r, "nope", &cols, &nc, err, sizeof err), 1);
    assert_int_equal(replay_table_get(r, "nope", &t, err, sizeof err), 1);
    replay_table_free(&t);
    replay_close(r);
}

static void test_schema_hash(void **state)
{
    (void)state;
    char a[17], b[17], c[17], d[17];
    replay_schema_hash(STD_NCOLS, std_names, std_types, a);
    replay_schema_hash(STD_NCOLS, std_names, std_types, b);
    assert_string_equal(a, b);
    assert_int_equal(strlen(a), 16);
    enum journal_coltype t2[STD_NCOLS];
    memcpy(t2, std_types, sizeof t2);
    t2[5] = JOURNAL_COL_TEXT;
    replay_schema_hash(STD_NCOLS, std_names, t2, c);
    assert_string_not_equal(a, c);
    replay_schema_hash(STD_NCOLS - 1, std_names, std_types, d);
    assert_string_not_equal(a, d);
    /* "ab"+"c" must differ from "a"+"bc": names are delimited. */
    const char *n1[] = {"ab", "c"}, *n2[] = {"a", "bc"};
    enum journal_coltype tt[] = {JOURNAL_COL_INT, JOURNAL_COL_INT};
    replay_schema_hash(2, n1, tt, c);
    replay_schema_hash(2, n2, tt, d);
    assert_string_not_equal(c, d);
}

/* ---- exactly once, crash, position -------------------------------------------------------- */

/* A mixed journal of ~150 records over two tables: more than two batches. */
static uint64_t build_mixed(struct fx *f)
{
    put_std_schema(f, "t");
    put_std_schema(f, "u");
    put_std_snapshot(f, "t", 1, 300, 7, 0);
    put_std_snapshot(f, "u", 1, 50, 10, 0);
    uint64_t last = 0;
    for (int i = 0; i < 60; i++) {
        put_std_incr(f, "t", 250 + i * 3, 5, 1 + i);        /* overlaps: updates and inserts */
        int64_t del[] = {10 + i, 1000 + i};                  /* 1000+ never exist */
        last = put_deletions(f, i % 2 ? "t" : "u", del, 2);
    }
    return last;
}

static void test_apply_twice_no_change(void **state)
{
    struct fx *f = *state;
    uint64_t last = build_mixed(f);
    struct replay *r = ropen(f);
    struct replay_stats st = apply_ok(r, JOURNAL_SEQ_MAX);
    assert_int_equal(st.records, last);
    assert_int_equal(replay_applied_seq(r), last);
    uint64_t ht = table_sum(replay_db(r), "t"), hu = table_sum(replay_db(r), "u");
    char mt[512], mu[512];
    meta_text(r, "t", mt, sizeof mt);
    meta_text(r, "u", mu, sizeof mu);
    st = apply_ok(r, JOURNAL_SEQ_MAX);
    assert_int_equal(st.records, 0);
    assert_int_equal(st.rows_written, 0);
    replay_close(r);
    r = ropen(f);   /* and again after reopening */
    assert_int_equal(replay_applied_seq(r), last);
    st = apply_ok(r, JOURNAL_SEQ_MAX);
    assert_int_equal(st.records, 0);
    assert_true(table_sum(replay_db(r), "t") == ht);
    assert_true(table_sum(replay_db(r), "u") == hu);
    char mt2[512], mu2[512];
    meta_text(r, "t", mt2, sizeof mt2);
    meta_text(r, "u", mu2, sizeof mu2);
    assert_string_equal(mt, mt2);
    assert_string_equal(mu, mu2);
    /* rows metadata equals the table */
    struct replay_table t = tget(r, "t");
    assert_int_equal(t.rows, count_rows(replay_db(r), "t"));
    replay_table_free(&t);
    t = tget(r, "u");
    assert_int_equal(t.rows, count_rows(replay_db(r), "u"));
    replay_table_free(&t);
    replay_close(r);
}

static void test_crash_half_then_rest(void **state)
{
    struct fx *f = *state;
    uint64_t last = build_mixed(f);
    char db1[600];
    snprintf(db1, sizeof db1, "%s/one-pass.db", f->root);
    struct replay *one = ropen_at(f, db1);
    apply_ok(one, JOURNAL_SEQ_MAX);
    for (uint64_t cut = 1; cut < last; cut += 37) {
        char db2[600];
        snprintf(db2, sizeof db2, "%s/cut-%" PRIu64 ".db", f->root, cut);
        struct replay *two = ropen_at(f, db2);
        struct replay_stats st = apply_ok(two, cut);
        assert_int_equal(st.records, cut);
        assert_int_equal(replay_applied_seq(two), cut);
        replay_close(two);   /* "crash": the process goes, cache.db stays */
        two = ropen_at(f, db2);
        assert_int_equal(replay_applied_seq(two), cut);
        st = apply_ok(two, JOURNAL_SEQ_MAX);
        assert_int_equal(st.records, last - cut);
        assert_true(table_sum(replay_db(two), "t") == table_sum(replay_db(one), "t"));
        assert_true(table_sum(replay_db(two), "u") == table_sum(replay_db(one), "u"));
        char m1[512], m2[512];
        meta_text(one, "t", m1, sizeof m1);
        meta_text(two, "t", m2, sizeof m2);
        assert_string_equal(m1, m2);
        replay_close(two);
    }
    replay_close(one);
}

/* A process killed inside a batch (after some records, before COMMIT): nothing of
 * the batch is visible, and a later run reaches the one-pass result. */
static void kill_in_warn(void *ctx, const char *msg)
{
    (void)ctx;
    (void)msg;
    _exit(42);
}

static void test_crash_mid_batch(void **state)
{
    struct fx *f = *state;
    /* Records of table "x" before its SCHEMA only get skipped (and warned about,
     * which is where the child dies) in a compacted-start cache: build one by
     * compacting away the journal's start. */
    f->segment_size = 1;   /* one record per segment */
    put_std_schema(f, "x");              /* 1 */
    uint64_t id = put_begin(f, "x");     /* 2 */
    put_std_page(f, "x", id, 1, 3, 0);   /* 3 */
    put_std_schema(f, "keep");           /* 4: no later SCHEMA, so compaction stops here */
    put_std_snapshot(f, "keep", 1, 20, 5, 0);   /* 5..10 */
    put_std_page(f, "x", id, 4, 3, 0);   /* 11: skipped, warns -> child dies mid-batch */
    put_std_schema(f, "x");
    put_std_snapshot(f, "x", 100, 10, 4, 0);
    char err[512];
    assert_int_equal(journal_batch_commit(f->w, err, sizeof err), 0);
    struct journal_compact_result cr;
    if (journal_compact(f->jdir, 1000, 0, &cr, err, sizeof err) != 0) fail_msg("compact: %s", err);
    assert_int_equal(cr.deleted, 3);

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct replay_opts o = opts_for(f, NULL);
        o.warn = kill_in_warn;
        struct replay *r;
        if (replay_open(&o, &r, err, sizeof err) != 0) _exit(1);
        replay_apply(r, JOURNAL_SEQ_MAX, NULL, err, sizeof err);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 42);

    struct replay *r = ropen(f);
    assert_int_equal(replay_applied_seq(r), 0);             /* the batch never committed */
    assert_int_equal(q_int(replay_db(r), "SELECT count(*) FROM _agent_tables"), 0);
    assert_true(q_fails(replay_db(r), "SELECT * FROM keep"));
    apply_ok(r, JOURNAL_SEQ_MAX);
    assert_int_equal(count_rows(replay_db(r), "keep"), 20);
    assert_int_equal(count_rows(replay_db(r), "x"), 10);
    assert_int_equal(f->nwarn, 1);
    replay_close(r);
}

/* After a partial apply the position and the rows are one state, seen from
 * another connection; and an error mid-batch keeps the records before it. */
static void test_position_commits_with_rows(void **state)
{
    struct fx *f = *state;
    put_std_schema(f, "t");                       /* 1 */
    put_std_snapshot(f, "t", 1, 10, 10, 0);       /* 2, 3, 4 */
    for (int i = 0; i < 100; i++) put_std_incr(f, "t", 100 + i, 1, 0);   /* 5..104: one new row each */
    struct replay *r = ropen(f);
    sqlite3 *rd = ro_open(f->db);
    for (uint64_t cut = 4; cut <= 104; cut += 25) {
        apply_ok(r, cut);
        int64_t applied = q_int(rd, "SELECT applied_seq FROM _agent_state");
        assert_int_equal(applied, cut);
        assert_int_equal(count_rows(rd, "t"), 10 + (int64_t)(cut - 4));
        assert_int_equal(q_int(rd, "SELECT rows FROM _agent_tables WHERE name = 't'"), 10 + (int64_t)(cut - 4));
        assert_int_equal(q_int(rd, "SELECT mark_key FROM _agent_tables WHERE name = 't'"),
                         cut == 4 ? 10 : 100 + (int64_t)(cut - 5));
    }
    replay_close(r);
    sqlite3_close(rd);

    /* 105..169 fine, 170 has a NULL key: the 65 before it (beyond one batch of
     * 64) are applied and committed, 170 is named, nothing after it. */
    for (int i = 0; i < 65; i++) put_std_incr(f, "t", 200 + i, 1, 0);
    struct journal_value mc = vint(1), mk = vint(1);
    journal_payload_incremental_page(&f->pl, &mc, &mk, STD_NCOLS);
    put_std_values(f, 300, 0);
    journal_put_null(&f->pl);
    for (int c = 1; c < STD_NCOLS; c++) journal_put_null(&f->pl);
    uint64_t bad = append(f, JOURNAL_INCREMENTAL_PAGE, "t");
    assert_int_equal(bad, 170);
    put_std_incr(f, "t", 400, 1, 0);
    r = ropen(f);
    apply_fails(r, JOURNAL_SEQ_MAX, "journal seq 170 (segment 1 offset ", "table \"t\"", "row 1: key column \"id\" is NULL",
                NULL);
    assert_int_equal(replay_applied_seq(r), 169);
    rd = ro_open(f->db);
    assert_int_equal(q_int(rd, "SELECT applied_seq FROM _agent_state"), 169);
    assert_int_equal(count_rows(rd, "t"), 10 + 100 + 65);
    assert_int_equal(q_int(rd, "SELECT count(*) FROM t WHERE id = 300"), 0);
    assert_int_equal(q_int(rd, "SELECT rows FROM _agent_tables WHERE name = 't'"), 175);
    sqlite3_close(rd);
    /* The error repeats; nothing moves. */
    apply_fails(r, JOURNAL_SEQ_MAX, "journal seq 170", NULL);
    assert_int_equal(replay_applied_seq(r), 169);
    replay_close(r);
}

/* ---- snapshots ------------------------------------------------------------------------------ */

static void test_interrupted_snapshot(void **state)
{
    struct fx *f = *state;
    put_std_schema(f, "t");
    put_std_snapshot(f, "t", 1, 5, 5, 0);          /* old live: 5 rows */
    uint64_t id = put_begin(f, "t");
    put_std_page(f, "t", id, 10, 4, 1);
    put_std_page(f, "t", id, 14, 4, 1);
    struct replay *r = ropen(f);
    apply_ok(r, JOURNAL_SEQ_MAX);
    struct replay_table t = tget(r, "t");
    assert_int_equal(t.rows, 5);
    assert_int_equal(t.pending_id, id);
    assert_int_equal(t.pending_rows, 8);
    assert_int_equal(t.pending_key.type, JOURNAL_INT);
    assert_int_equal(t.pending_key.i, 17);
    assert_int_equal(t.mark_key.i, 5);              /* marks are the old snapshot's */
    replay_table_free(&t);
    assert_int_equal(count_rows(replay_db(r), "t"), 5);
    assert_int_equal(count_rows(replay_db(r), "_agent_shadow_t"), 8);
    replay_close(r);

    /* Restart; the puller resumes from pending_key with the same snapshot id. */
    r = ropen(f);
    t = tget(r, "t");
    assert_int_equal(t.pending_id, id);
    replay_table_free(&t);
    put_std_page(f, "t", id, 18, 2, 1);
    put_end(f, "t", id, 10, vint(2000), vint(19));
    struct replay_stats st = apply_ok(r, JOURNAL_SEQ_MAX);
    assert_int_equal(st.snapshots, 1);
    t = tget(r, "t");
    assert_int_equal(t.rows, 10);
    assert_int_equal(t.pending_id, 0);
    assert_int_equal(t.pending_rows, 0);
    assert_int_equal(t.pending_key.type, JOURNAL_NULL);
    assert_int_equal(t.snapshot_id, id);
    assert_int_equal(t.mark_key.i, 19);
    assert_int_equal(t.mark_cursor.i, 2000);
    replay_table_free(&t);
    assert_int_equal(count_rows(replay_db(r), "t"), 10);
    assert_int_equal(q_int(replay_db(r), "SELECT min(id) FROM t"), 10);
    assert_true(q_fails(replay_db(r), "SELECT * FROM _agent_shadow_t"));
    replay_close(r);
}

/* A user's view over a cache table survives the swap and sees the new rows. */
static void test_swap_with_user_view(void **state)
{
    struct fx *f = *state;
    put_std_schema(f, "t");
    put_std_snapshot(f, "t", 1, 3, 3, 0);
    struct replay *r = ropen(f);
    apply_ok(r, JOURNAL_SEQ_MAX);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE VIEW tv AS SELECT id, name FROM t WHERE id > 1", NULL, NULL, NULL),
                     SQLITE_OK);
    put_std_snapshot(f, "t", 10, 4, 2, 1);
    apply_ok(r, JOURNAL_SEQ_MAX);
    assert_int_equal(q_int(db, "SELECT count(*) FROM tv"), 4);
    assert_int_equal(q_int(db, "SELECT min(id) FROM tv"), 10);
    sqlite3_close(db);
    replay_close(r);
}

static void test_concurrent_reader(void **state)
{
    struct fx *f = *state;
    put_std_schema(f, "t");
    put_std_snapshot(f, "t", 1, 6, 3, 0);
    uint64_t first = put_begin(f, "t");
    for (int p = 0; p < 4; p++) put_std_page(f, "t", first, 100 + p * 5, 5, 1);
    uint64_t end = put_end(f, "t", first, 20, vint(1), vint(119));
    struct replay *r = ropen(f);
    apply_ok(r, first - 1);
    sqlite3 *rd = ro_open(f->db);
    assert_int_equal(count_rows(rd, "t"), 6);
    for (uint64_t s = first; s <= end; s++) {
        if (s == end) {
            /* A read transaction open across the swap keeps its view. */
            assert_int_equal(sqlite3_exec(rd, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
            assert_int_equal(count_rows(rd, "t"), 6);
        }
        apply_ok(r, s);
        int64_t n = count_rows(rd, "t");
        assert_int_equal(n, 6);                 /* old until END, even inside its txn */
        assert_int_equal(q_int(rd, "SELECT sum(id) FROM t"), 21);
    }
    assert_int_equal(sqlite3_exec(rd, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(count_rows(rd, "t"), 20);   /* then the new one, whole */
    assert_int_equal(q_int(rd, "SELECT sum(id) FROM t"), 20 * 100 + 190);
    sqlite3_close(rd);
    replay_close(r);
}

static void test_superseding_begin(void **state)
{
    struct fx *f = *state;
    put_std_schema(f, "t");
    uint64_t a = put_begin(f, "t");
    put_std_page(f, "t", a, 1, 5, 0);
    uint64_t b = put_begin(f, "t");
    put_std_page(f, "t", b, 50, 3, 0);
    put_end(f, "t", b, 3, vint(0), vint(52));
    struct replay *r = ropen(f);
    apply_ok(r, JOURNAL_SEQ_MAX);
    assert_int_equal(count_rows(replay_db(r), "t"), 3);
    assert_int_equal(q_int(replay_db(r), "SELECT min(id) FROM t"), 50);
    struct replay_table t = tget(r, "t");
    assert_int_equal(t.snapshot_id, b);
    replay_table_free(&t);
    /* A page of the superseded snapshot afterwards is refused. */
    uint64_t stale = put_std_page(f, "t", a, 6, 1, 0);
    char want[64];
    snprintf(want, sizeof want, "journal seq %" PRIu64 " ", stale);
    apply_fails(r, JOURNAL_SEQ_MAX, want, "snapshot id 2, but no snapshot of the table is pending", NULL);
    replay_close(r);
}

/* The portal repeated a row across pages: END counts journaled rows, the
 * table (and its rows metadata) has each key once. */
static void test_snapshot_duplicate_keys(void **state)
{
    struct fx *f = *state;
    put_std_schema(f, "t");
    uint64_t id = put_begin(f, "t");
    put_std_page(f, "t", id, 1, 5, 0);
    put_std_page(f, "t", id, 5, 5, 1);        /* 5 again, newer version */
    put_end(f, "t", id, 10, vnull, vint(9));
    struct replay *r = ropen(f);
    struct replay_stats st = apply_ok(r, JOURNAL_SEQ_MAX);
    assert_int_equal(st.rows_written, 10);
    assert_int_equal(count_rows(replay_db(r), "t"), 9);
    assert_int_equal(q_int(replay_db(r), "SELECT updated FROM t WHERE id = 5"), 1000 + 5 + 1);
    struct replay_table t = tget(r, "t");
    assert_int_equal(t.rows, 9);
    replay_table_free(&t);
    replay_close(r);
}

static void test_bad_page_snapshot_id(void **state)
{
    struct fx *f = *state;
    put_std_schema(f, "t");
    uint64_t id = put_begin(f, "t");
    put_std_page(f, "t", id, 1, 2, 0);
    uint64_t bad = put_std_page(f, "t", id + 77, 3, 2, 0);
    struct replay *r = ropen(f);
    char want[64];
    snprintf(want, sizeof want, "journal seq %" PRIu64 " (segment 1 offset", bad);
    apply_fails(r, JOURNAL_SEQ_MAX, want, "snapshot_page record, table \"t\"",
                "snapshot id 79 does not match the pending snapshot 2", NULL);
    assert_int_equal(replay_applied_seq(r), bad - 1);
    struct replay_table t = tget(r, "t");
    assert_int_equal(t.pending_rows, 2);
    replay_table_free(&t);
    replay_close(r);
}

static void test_row_count_mismatch(void **state)
{
    struct fx *f = *state;
    put_std_schema(f, "t");
    put_std_snapshot(f, "t", 1, 4, 4, 0);
    uint64_t id = put_begin(f, "t");
    put_std_page(f, "t", id, 10, 3, 0);
    uint64_t bad = put_end(f, "t", id, 4, vnull, vnull);
    struct replay *r = ropen(f);
    char want[64];
    snprintf(want, sizeof want, "journal seq %" PRIu64 " ", bad);
    apply_fails(r, JOURNAL_SEQ_MAX, want, "END says 4 rows, 3 were journaled", NULL);
    assert_int_equal(replay_applied_seq(r), bad - 1);
    assert_int_equal(count_rows(replay_db(r), "t"), 4);     /* old live table untouched */
    assert_int_equal(q_int(replay_db(r), "SELECT max(id) FROM t"), 4);
    replay_close(r);
}

/* ---- incremental and deletions --------------------------------------------------------------- */

static void test_incremental_upsert_and_mark(void **state)
{
    struct fx *f = *state;
    /* A table with a text cursor: the mark must stay text. */
    const char *names[] = {"id", "updated_at", "title"};
    enum journal_coltype types[] = {JOURNAL_COL_INT, JOURNAL_COL_TEXT, JOURNAL_COL_TEXT};
    put_schema(f, "s", 3, names, types, 0, 1);
    uint64_t id = put_begin(f, "s");
    journal_payload_snapshot_page(&f->pl, id, 3);
    for (int i = 1; i <= 3; i++) {
        journal_put_int(&f->pl, i);
        journal_put_text(&f->pl, "2024-06-01 00:00:00", 19);
        journal_put_text(&f->pl, "old", 3);
    }
    append(f, JOURNAL_SNAPSHOT_PAGE, "s");
    put_end(f, "s", id, 3, vtext("2024-06-01 00:00:00"), vint(3));
    /* Page: update 2, insert 4 and 5; mark ("2024-06-02 ...", 5). */
    struct journal_value mc = vtext("2024-06-02 10:00:00"), mk = vint(5);
    journal_payload_incremental_page(&f->pl, &mc, &mk, 3);
    int ids[] = {2, 4, 5};
    for (int i = 0; i < 3; i++) {
        journal_put_int(&f->pl, ids[i]);
        journal_put_text(&f->pl, "2024-06-02 10:00:00", 19);
        journal_put_text(&f->pl, "new", 3);
    }
    append(f, JOURNAL_INCREMENTAL_PAGE, "s");
    struct replay *r = ropen(f);
    struct replay_stats st = apply_ok(r, JOURNAL_SEQ_MAX);
    assert_int_equal(st.rows_written, 6);
    sqlite3 *db = replay_db(r);
    assert_int_equal(count_rows(db, "s"), 5);
    assert_int_equal(q_int(db, "SELECT count(*) FROM s WHERE title = 'new'"), 3);
    assert_int_equal(q_int(db, "SELECT count(*) FROM s WHERE id = 2 AND title = 'new'"), 1);
    struct replay_table t = tget(r, "s");
    assert_int_equal(t.rows, 5);
    assert_int_equal(t.mark_cursor.type, JOURNAL_TEXT);
    assert_string_equal(t.mark_cursor.s, "2024-06-02 10:00:00");
    assert_int_equal(t.mark_cursor.n, 19);
    assert_int_equal(t.mark_key.type, JOURNAL_INT);
    assert_int_equal(t.mark_key.i, 5);
    replay_table_free(&t);
    /* The same page again (a lookback re-read) changes nothing; an empty page
     * with no mark leaves the mark where it is. */
    journal_payload_incremental_page(&f->pl, &mc, &mk, 3);
    for (int i = 0; i < 3; i++) {
        journal_put_int(&f->pl, ids[i]);
        journal_put_text(&f->pl, "2024-06-02 10:00:00", 19);
        journal_put_text(&f->pl, "new", 3);
    }
    append(f, JOURNAL_INCREMENTAL_PAGE, "s");
    uint64_t h = table_sum(db, "s");
    journal_payload_incremental_page(&f->pl, NULL, NULL, 3);
    append(f, JOURNAL_INCREMENTAL_PAGE, "s");
    apply_ok(r, JOURNAL_SEQ_MAX);
    assert_true(table_sum(db, "s") == h);
    t = tget(r, "s");
    assert_int_equal(t.rows, 5);
    assert_string_equal(t.mark_cursor.s, "2024-06-02 10:00:00");
    replay_table_free(&t);
    replay_close(r);
}

/* A snapshot swap that leaves rows out counts them as deleted (the sync
 * summary's `deleted` column): ids 1..10, then 4..12 -> 1, 2, 3 are gone. */
static void test_snapshot_counts_deleted(void **state)
{
    struct fx *f = *state;
    put_std_schema(f, "t");
    put_std_snapshot(f, "t", 1, 10, 4, 0);
    struct replay *r = ropen(f);
    struct replay_stats st = apply_ok(r, JOURNAL_SEQ_MAX);
    assert_int_equal(st.rows_deleted, 0);   /* nothing was live before */
    put_std_snapshot(f, "t", 4, 9, 4, 1);
    st = apply_ok(r, JOURNAL_SEQ_MAX);
    assert_int_equal(st.snapshots, 1);
    assert_int_equal(st.rows_deleted, 3);
    assert_int_equal(count_rows(replay_db(r), "t"), 9);
    replay_close(r);
}

static void test_deletions(void **state)
{
    struct fx *f = *state;
    put_std_schema(f, "t");
    put_std_snapshot(f, "t", 1, 10, 10, 0);
    int64_t del[] = {2, 4, 999, 4};
    put_deletions(f, "t", del, 4);
    struct replay *r = ropen(f);
    struct replay_stats st = apply_ok(r, JOURNAL_SEQ_MAX);
    assert_int_equal(st.rows_deleted, 2);
    assert_int_equal(count_rows(replay_db(r), "t"), 8);
    assert_int_equal(q_int(replay_db(r), "SELECT count(*) FROM t WHERE id IN (2, 4)"), 0);
    struct replay_table t = tget(r, "t");
    assert_int_equal(t.rows, 8);
    replay_table_free(&t);
    /* Deletions need one key column, and a key. */
    journal_payload_deletions(&f->pl, 2);
    journal_put_int(&f->pl, 1);
    journal_put_int(&f->pl, 1);
    uint64_t bad = append(f, JOURNAL_DELETIONS, "t");
    char want[64];
    snprintf(want, sizeof want, "journal seq %" PRIu64 " ", bad);
    apply_fails(r, JOURNAL_SEQ_MAX, want, "deletion rows of 2 columns", NULL);
    replay_close(r);
}

static void test_deletions_need_key(void **state)
{
    struct fx *f = *state;
    const char *names[] = {"a", "b"};
    enum journal_coltype types[] = {JOURNAL_COL_INT, JOURNAL_COL_TEXT};
    put_schema(f, "nokey", 2, names, types, -1, -1);
    uint64_t id = put_begin(f, "nokey");
    journal_payload_snapshot_page(&f->pl, id, 2);
    for (int i = 0; i < 2; i++) {       /* no key: duplicates are just rows */
        journal_put_int(&f->pl, 1);
        journal_put_text(&f->pl, "x", 1);
    }
    append(f, JOURNAL_SNAPSHOT_PAGE, "nokey");
    put_end(f, "nokey", id, 2, vnull, vnull);
    int64_t del[] = {1};
    put_deletions(f, "nokey", del, 1);
    struct replay *r = ropen(f);
    apply_fails(r, JOURNAL_SEQ_MAX, "table \"nokey\"", "deletions for a table without a key column", NULL);
    assert_int_equal(count_rows(replay_db(r), "nokey"), 2);
    struct replay_table t = tget(r, "nokey");
    assert_int_equal(t.rows, 2);
    assert_int_equal(t.key_col, -1);
    assert_int_equal(t.pending_key.type, JOURNAL_NULL);
    replay_table_free(&t);
    replay_close(r);
}

/* ---- schema changes ------------------------------------------------------------------------------ */

static void test_schema_change(void **state)
{
    struct fx *f = *state;
    put_std_schema(f, "t");
    put_std_snapshot(f, "t", 1, 5, 5, 0);
    const char *names2[] = {"id", "name", "added"};
    enum journal_coltype types2[] = {JOURNAL_COL_INT, JOURNAL_COL_TEXT, JOURNAL_COL_INT};
    put_schema(f, "t", 3, names2, types2, 0, -1);
    struct replay *r = ropen(f);
    apply_ok(r, JOURNAL_SEQ_MAX);
    /* The live table keeps serving the old layout, reported as behind. */
    struct replay_table t = tget(r, "t");
    char h2[17], h1[17];
    replay_schema_hash(3, names2, types2, h2);
    replay_schema_hash(STD_NCOLS, std_names, std_types, h1);
    assert_string_equal(t.schema_hash, h2);
    assert_string_equal(t.live_hash, h1);
    assert_int_equal(t.schema_behind, 1);
    assert_true(t.schema_changed_ms > 0);              /* reported by status */
    assert_int_equal(t.ncols, 3);
    assert_int_equal(t.rows, 5);
    replay_table_free(&t);
    assert_int_equal(count_rows(replay_db(r), "t"), 5);
    /* A snapshot brings the new layout. */
    uint64_t id = put_begin(f, "t");
    journal_payload_snapshot_page(&f->pl, id, 3);
    journal_put_int(&f->pl, 7);
    journal_put_text(&f->pl, "seven", 5);
    journal_put_int(&f->pl, 77);
    append(f, JOURNAL_SNAPSHOT_PAGE, "t");
    put_end(f, "t", id, 1, vnull, vint(7));
    apply_ok(r, JOURNAL_SEQ_MAX);
    t = tget(r, "t");
    assert_int_equal(t.schema_behind, 0);
    assert_string_equal(t.live_hash, h2);
    assert_int_equal(t.rows, 1);
    replay_table_free(&t);
    assert_int_equal(q_int(replay_db(r), "SELECT added FROM t WHERE id = 7"), 77);
    assert_int_equal(q_int(replay_db(r), "SELECT count(*) FROM pragma_table_info('t')"), 3);
    /* Back to the old layout: incremental pages are refused until a snapshot. */
    put_std_schema(f, "t");
    uint64_t bad = put_std_incr(f, "t", 1, 1, 0);
    char want[64];
    snprintf(want, sizeof want, "journal seq %" PRIu64 " ", bad);
    apply_fails(r, JOURNAL_SEQ_MAX, want, "only a snapshot can bring it up to date", NULL);
    assert_int_equal(replay_applied_seq(r), bad - 1);
    replay_close(r);
}

static void test_schema_change_on_demand_and_pending(void **state)
{
    struct fx *f = *state;
    /* on_demand: SCHEMA + incremental pages only, no snapshot */
    put_std_schema(f, "od");
    put_std_incr(f, "od", 1, 3, 0);
    /* a pending snapshot of another table, whose SCHEMA then changes */
    put_std_schema(f, "p");
    uint64_t id = put_begin(f, "p");
    put_std_page(f, "p", id, 1, 3, 0);
    struct replay *r = ropen(f);
    apply_ok(r, JOURNAL_SEQ_MAX);
    assert_int_equal(count_rows(replay_db(r), "od"), 3);
    struct replay_table t = tget(r, "od");
    assert_int_equal(t.snapshot_id, 0);
    assert_int_equal(t.mark_key.i, 3);
    replay_table_free(&t);
    const char *names2[] = {"id", "v"};
    enum journal_coltype types2[] = {JOURNAL_COL_INT, JOURNAL_COL_TEXT};
    put_schema(f, "od", 2, names2, types2, 0, -1);
    put_schema(f, "p", 2, names2, types2, 0, -1);
    /* the same SCHEMA again changes nothing */
    put_schema(f, "od", 2, names2, types2, 0, -1);
    apply_ok(r, JOURNAL_SEQ_MAX);
    /* on_demand had no snapshot to keep: recreated empty with the new layout */
    t = tget(r, "od");
    assert_int_equal(t.schema_behind, 0);
    assert_int_equal(t.rows, 0);
    assert_int_equal(t.mark_key.type, JOURNAL_NULL);
    replay_table_free(&t);
    assert_int_equal(count_rows(replay_db(r), "od"), 0);
    assert_int_equal(q_int(replay_db(r), "SELECT count(*) FROM pragma_table_info('od')"), 2);
    /* the pending snapshot's shadow was built for the old layout: dropped */
    t = tget(r, "p");
    assert_int_equal(t.pending_id, 0);
    assert_int_equal(t.pending_rows, 0);
    replay_table_free(&t);
    assert_true(q_fails(replay_db(r), "SELECT * FROM _agent_shadow_p"));
    uint64_t bad = put_std_page(f, "p", id, 4, 1, 0);
    char want[64];
    snprintf(want, sizeof want, "journal seq %" PRIu64 " ", bad);
    apply_fails(r, JOURNAL_SEQ_MAX, want, "no snapshot of the table is pending", NULL);
    replay_close(r);
}

/* ---- bad records ------------------------------------------------------------------------------- */

static void test_unknown_record_type(void **state)
{
    struct fx *f = *state;
    put_std_schema(f, "t");
    put_std_snapshot(f, "t", 1, 3, 3, 0);
    char err[512];
    uint64_t bad;
    assert_int_equal(journal_append(writer(f), 10, "t", "xyz", 3, &bad, err, sizeof err), 0);
    put_std_incr(f, "t", 10, 1, 0);
    struct replay *r = ropen(f);
    char want[64];
    snprintf(want, sizeof want, "journal seq %" PRIu64 " (segment 1 offset ", bad);
    apply_fails(r, JOURNAL_SEQ_MAX, want, "unknown record type 10", NULL);
    assert_int_equal(replay_applied_seq(r), bad - 1);
    assert_int_equal(count_rows(replay_db(r), "t"), 3);
    replay_close(r);
}

static void test_bad_records(void **state)
{
    struct fx *f = *state;
    struct replay *r;
    char want[128];
    /* a page before any SCHEMA of its table, in a journal that starts at 1 */
    uint64_t s = put_std_incr(f, "t", 1, 1, 0);
    r = ropen(f);
    snprintf(want, sizeof want, "journal seq %" PRIu64 " ", s);
    apply_fails(r, JOURNAL_SEQ_MAX, want, "no SCHEMA record for the table precedes it", NULL);
    assert_int_equal(replay_applied_seq(r), 0);
    replay_close(r);
    reset(f);

    /* reserved table names */
    s = put_std_schema(f, "_agent_tables");
    r = ropen(f);
    apply_fails(r, JOURNAL_SEQ_MAX, "journal seq 1 ", "names starting with \"sqlite_\" or \"_agent_\" are reserved",
                NULL);
    replay_close(r);
    reset(f);
    put_std_schema(f, "SQLite_x");
    r = ropen(f);
    apply_fails(r, JOURNAL_SEQ_MAX, "table name \"SQLite_x\"", NULL);
    replay_close(r);
    reset(f);

    /* a decode error (payload not a schema), wrong width, undecodable rows */
    put_std_schema(f, "t");
    journal_payload_snapshot_begin(&f->pl, 0);
    s = append(f, JOURNAL_SCHEMA, "u");               /* a varint is not a schema */
    r = ropen(f);
    snprintf(want, sizeof want, "journal seq %" PRIu64 " ", s);
    apply_fails(r, JOURNAL_SEQ_MAX, want, "schema record, table \"u\": payload offset", NULL);
    replay_close(r);
    reset(f);

    put_std_schema(f, "t");
    struct journal_value mk = vint(1);
    journal_payload_incremental_page(&f->pl, NULL, &mk, 2);
    journal_put_int(&f->pl, 1);
    journal_put_int(&f->pl, 1);
    s = append(f, JOURNAL_INCREMENTAL_PAGE, "t");
    r = ropen(f);
    apply_fails(r, JOURNAL_SEQ_MAX, "journal seq 2 ", "rows of 2 columns, but the table's SCHEMA has 7", NULL);
    replay_close(r);
    reset(f);

    /* a value the declared type cannot hold: INTEGER PRIMARY KEY and text */
    put_std_schema(f, "t");
    uint64_t id = put_begin(f, "t");
    journal_payload_snapshot_page(&f->pl, id, STD_NCOLS);
    journal_put_text(&f->pl, "abc", 3);
    for (int c = 1; c < STD_NCOLS; c++) journal_put_null(&f->pl);
    s = append(f, JOURNAL_SNAPSHOT_PAGE, "t");
    r = ropen(f);
    apply_fails(r, JOURNAL_SEQ_MAX, "journal seq 3 ", "row 0: datatype mismatch", NULL);
    assert_int_equal(replay_applied_seq(r), 2);
    replay_close(r);
    (void)s;
}

/* Issue 11: a record replay refuses (a reserved table name) wedged the agent
 * for good. The error names the record and the way out; replay_skip passes
 * exactly it (and the records of that table that need its SCHEMA), records it
 * in cache.db, and a rebuild skips it too; nothing else is lost. */
static void test_refused_record_skip(void **state)
{
    struct fx *f = *state;
    put_std_schema(f, "t");
    put_std_snapshot(f, "t", 1, 5, 2, 0);
    uint64_t bad = put_std_schema(f, "_agent_state");
    put_std_snapshot(f, "_agent_state", 1, 3, 3, 0);
    uint64_t last = put_std_incr(f, "t", 6, 3, 0);
    assert_int_equal(journal_batch_commit(writer(f), (char[256]){0}, 256), 0);

    char want[160], err[2048], why[2048];
    snprintf(want, sizeof want, "journal seq %" PRIu64 " (segment 1 offset ", bad);
    struct replay *r = ropen(f);
    snprintf(err, sizeof err, "`iptv-agent replay --skip %" PRIu64 "`", bad);
    for (int i = 0; i < 2; i++)   /* wedged: the same refusal every time */
        apply_fails(r, JOURNAL_SEQ_MAX, want, "schema record, table \"_agent_state\"",
                    "names starting with \"sqlite_\" or \"_agent_\" are reserved", err, NULL);
    assert_int_equal(replay_applied_seq(r), bad - 1);
    assert_int_equal(count_rows(replay_db(r), "t"), 5);

    /* only the record replay stops at */
    assert_int_equal(replay_skip(r, bad + 1, why, sizeof why, err, sizeof err), -1);
    assert_non_null(strstr(err, want));          /* replay stops at `bad` first */
    assert_int_equal(replay_skip(r, bad - 1, why, sizeof why, err, sizeof err), -1);
    assert_non_null(strstr(err, "only the next record"));
    assert_int_equal(replay_applied_seq(r), bad - 1);

    assert_int_equal(replay_skip(r, bad, why, sizeof why, err, sizeof err), 0);
    assert_non_null(strstr(why, "are reserved"));
    assert_null(strstr(why, "--skip"));
    assert_int_equal(replay_applied_seq(r), bad);
    apply_ok(r, JOURNAL_SEQ_MAX);
    assert_int_equal(replay_applied_seq(r), last);
    assert_non_null(strstr(f->warn, "table \"_agent_state\": skipping its records: its SCHEMA was skipped"));
    assert_int_equal(count_rows(replay_db(r), "t"), 8);
    uint64_t ht = table_sum(replay_db(r), "t");
    assert_int_equal(q_int(replay_db(r), "SELECT count(*) FROM _agent_skipped"), 1);
    replay_close(r);

    uint64_t *seqs;
    size_t n;
    assert_int_equal(replay_skipped_read(f->db, &seqs, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(seqs[0], bad);
    free(seqs);

    /* a rebuild passes it by too, and comes out the same */
    struct replay_opts o = opts_for(f, NULL);
    struct replay_stats st;
    if (replay_rebuild(&o, &st, err, sizeof err) != 0) fail_msg("rebuild: %s", err);
    assert_non_null(strstr(f->warn, "not applied: skipped by `iptv-agent replay --skip"));
    r = ropen(f);
    assert_int_equal(replay_applied_seq(r), last);
    assert_true(table_sum(replay_db(r), "t") == ht);
    assert_int_equal(q_int(replay_db(r), "SELECT count(*) FROM _agent_skipped"), 1);

    /* a record that applies is never skipped */
    uint64_t more = put_std_incr(f, "t", 9, 1, 0);
    assert_int_equal(journal_batch_commit(writer(f), (char[256]){0}, 256), 0);
    assert_int_equal(replay_skip(r, more, why, sizeof why, err, sizeof err), 1);
    assert_non_null(strstr(why, "applied without error"));
    assert_int_equal(count_rows(replay_db(r), "t"), 9);
    assert_int_equal(q_int(replay_db(r), "SELECT count(*) FROM _agent_skipped"), 1);
    replay_close(r);
}

static void flip(const char *path, long off)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    unsigned char c;
    assert_int_equal(pread(fd, &c, 1, off), 1);
    c ^= 0x40;
    assert_int_equal(pwrite(fd, &c, 1, off), 1);
    close(fd);
}

static void test_damaged_journal(void **state)
{
    struct fx *f = *state;
    put_std_schema(f, "t");
    put_std_snapshot(f, "t", 1, 20, 5, 0);     /* 2..7 */
    for (int i = 0; i < 10; i++) put_std_incr(f, "t", 100 + i, 1, 0);   /* 8..17 */
    char err[512];
    assert_int_equal(journal_batch_commit(f->w, err, sizeof err), 0);
    /* where is seq 12? */
    struct journal_reader *rd;
    struct journal_record rec;
    assert_int_equal(journal_reader_open(f->jdir, 12, &rd, err, sizeof err), 0);
    assert_int_equal(journal_reader_next(rd, JOURNAL_SEQ_MAX, &rec, err, sizeof err), 1);
    assert_int_equal(rec.seq, 12);
    uint64_t seg = rec.segment, off = rec.offset, stored = rec.stored;
    journal_reader_close(rd);
    char path[700];
    snprintf(path, sizeof path, "%s/%020" PRIu64 ".seg", f->jdir, seg);
    flip(path, (long)(off + stored - 2));       /* inside the compressed payload */

    struct replay *r = ropen(f);
    char want[96];
    snprintf(want, sizeof want, "segment %" PRIu64 " offset %" PRIu64, seg, off);
    apply_fails(r, JOURNAL_SEQ_MAX, want, NULL);
    assert_int_equal(replay_applied_seq(r), 11);   /* everything before the damage stays */
    assert_int_equal(count_rows(replay_db(r), "t"), 24);
    struct replay_table t = tget(r, "t");
    assert_int_equal(t.rows, 24);
    assert_int_equal(t.mark_key.i, 103);
    replay_table_free(&t);
    /* and it is never skipped */
    apply_fails(r, JOURNAL_SEQ_MAX, want, NULL);
    assert_int_equal(replay_applied_seq(r), 11);
    replay_close(r);
}

/* ---- rebuild ------------------------------------------------------------------------------------- */

static void test_rebuild_identical(void **state)
{
    struct fx *f = *state;
    uint64_t last = build_mixed(f);
    struct replay *r = ropen(f);
    for (uint64_t s = 10; s < last; s += 33) apply_ok(r, s);   /* in pieces, as a daemon would */
    apply_ok(r, JOURNAL_SEQ_MAX);
    char err[512];
    assert_int_equal(replay_note_pull(r, "t", "incremental", 1234, NULL, 0, err, sizeof err), 0);
    uint64_t ht = table_sum(replay_db(r), "t"), hu = table_sum(replay_db(r), "u");
    char mt[512], mu[512];
    meta_text(r, "t", mt, sizeof mt);
    meta_text(r, "u", mu, sizeof mu);
    replay_close(r);

    struct replay_opts o = opts_for(f, NULL);
    struct replay_stats st;
    if (replay_rebuild(&o, &st, err, sizeof err) != 0) fail_msg("rebuild: %s", err);
    assert_int_equal(st.records, last);
    r = ropen(f);
    assert_int_equal(replay_applied_seq(r), last);
    assert_true(table_sum(replay_db(r), "t") == ht);
    assert_true(table_sum(replay_db(r), "u") == hu);
    char mt2[512], mu2[512];
    meta_text(r, "t", mt2, sizeof mt2);
    meta_text(r, "u", mu2, sizeof mu2);
    assert_string_equal(mt, mt2);
    assert_string_equal(mu, mu2);
    struct replay_table t = tget(r, "t");
    assert_int_equal(t.last_success_ms, 0);      /* operational metadata is gone: documented */
    replay_table_free(&t);
    replay_close(r);
}

static void check_current(struct fx *f);

/* A rebuild refused by a damaged journal leaves cache.db as it was: it is built
 * beside cache.db and swapped in only when complete (invariant 7). */
static void test_rebuild_refused_keeps_cache(void **state)
{
    struct fx *f = *state;
    put_std_schema(f, "t");
    put_std_snapshot(f, "t", 1, 40, 5, 0);     /* 2..11 */
    for (int i = 0; i < 8; i++) put_std_incr(f, "t", 100 + i * 3, 3, 0);   /* 12..19 */
    char err[1024];
    assert_int_equal(journal_batch_commit(f->w, err, sizeof err), 0);
    struct replay *r = ropen(f);
    apply_ok(r, JOURNAL_SEQ_MAX);
    uint64_t sum = table_sum(replay_db(r), "t");
    replay_close(r);

    struct journal_reader *rd;
    struct journal_record rec;
    assert_int_equal(journal_reader_open(f->jdir, 9, &rd, err, sizeof err), 0);
    assert_int_equal(journal_reader_next(rd, JOURNAL_SEQ_MAX, &rec, err, sizeof err), 1);
    uint64_t seg = rec.segment, off = rec.offset, stored = rec.stored;
    journal_reader_close(rd);
    char path[700], want[96];
    snprintf(path, sizeof path, "%s/%020" PRIu64 ".seg", f->jdir, seg);
    flip(path, (long)(off + stored - 2));
    snprintf(want, sizeof want, "segment %" PRIu64 " offset %" PRIu64, seg, off);

    struct replay_opts o = opts_for(f, NULL);
    struct replay_stats st;
    assert_int_equal(replay_rebuild(&o, &st, err, sizeof err), -1);
    if (!strstr(err, want) || !strstr(err, "left as it was")) fail_msg("rebuild error: %s", err);
    r = ropen(f);
    assert_int_equal(replay_applied_seq(r), 19);          /* nothing lost */
    assert_true(table_sum(replay_db(r), "t") == sum);
    replay_close(r);
    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s.rebuild", f->db);
    assert_int_equal(access(tmp, F_OK), -1);               /* the half-built copy is gone */
}

/* A cache.db page overwritten: the error says cache.db is damaged and how to
 * recreate it; the rebuild brings every row back. */
static void test_damaged_cache_says_rebuild(void **state)
{
    struct fx *f = *state;
    put_std_schema(f, "t");
    put_std_snapshot(f, "t", 1, 400, 50, 0);
    char err[1024];
    assert_int_equal(journal_batch_commit(f->w, err, sizeof err), 0);
    struct replay *r = ropen(f);
    apply_ok(r, JOURNAL_SEQ_MAX);
    uint64_t sum = table_sum(replay_db(r), "t");
    int64_t root = q_int(replay_db(r), "SELECT rootpage FROM sqlite_master WHERE name = 't'");
    int64_t psize = q_int(replay_db(r), "PRAGMA page_size");
    replay_close(r);
    /* the table's root page: every lookup in it goes through there */
    int fd = open(f->db, O_RDWR);
    assert_true(fd >= 0);
    char junk[512];
    memset(junk, 0x5a, sizeof junk);
    assert_int_equal(pwrite(fd, junk, sizeof junk, (off_t)((root - 1) * psize)), (ssize_t)sizeof junk);
    close(fd);

    put_std_incr(f, "t", 10, 5, 1);            /* upserts into the damaged table */
    assert_int_equal(journal_batch_commit(f->w, err, sizeof err), 0);
    r = ropen(f);
    apply_fails(r, JOURNAL_SEQ_MAX, "cache.db is damaged", "iptv-agent replay --rebuild", NULL);
    replay_close(r);

    struct replay_opts o = opts_for(f, NULL);
    struct replay_stats st;
    if (replay_rebuild(&o, &st, err, sizeof err) != 0) fail_msg("rebuild: %s", err);
    r = ropen(f);
    assert_int_equal(count_rows(replay_db(r), "t"), 400);
    replay_close(r);
    /* the same as applying the journal to a fresh cache */
    char fresh[700];
    snprintf(fresh, sizeof fresh, "%s/fresh.db", f->root);
    struct replay *r2 = ropen_at(f, fresh);
    apply_ok(r2, JOURNAL_SEQ_MAX);
    uint64_t want = table_sum(replay_db(r2), "t");
    replay_close(r2);
    r = ropen(f);
    assert_true(table_sum(replay_db(r), "t") == want);
    assert_true(want != sum);                  /* the upsert changed rows 10..14 */
    replay_close(r);
}

/* replay_db_errmsg, for the agent's other connections to cache.db. */
static void test_db_errmsg(void **state)
{
    struct fx *f = *state;
    char junk[4096];
    memset(junk, 'x', sizeof junk);
    assert_int_equal(tu_write_file(f->db, junk, sizeof junk), 0);
    sqlite3 *db = ro_open(f->db);
    char msg[1024];
    assert_int_not_equal(sqlite3_exec(db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL), SQLITE_OK);
    replay_db_errmsg(db, msg, sizeof msg);
    if (!strstr(msg, "not a database") || !strstr(msg, "cache.db is damaged") ||
        !strstr(msg, "run `iptv-agent replay --rebuild`"))
        fail_msg("replay_db_errmsg: %s", msg);
    sqlite3_close(db);
    /* a plain SQL error stays as SQLite says it */
    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    assert_int_not_equal(sqlite3_exec(db, "SELECT nosuchcolumn", NULL, NULL, NULL), SQLITE_OK);
    replay_db_errmsg(db, msg, sizeof msg);
    assert_string_equal(msg, "no such column: nosuchcolumn");
    replay_db_errmsg(db, msg, 8);                 /* truncated, terminated */
    assert_string_equal(msg, "no such");
    sqlite3_close(db);
}

/* A file size limit (a full disk) while applying: the error names the system's
 * reason, and what was committed before stays. The child process takes the limit. */
static void test_apply_file_too_large(void **state)
{
    struct fx *f = *state;
    put_std_schema(f, "t");
    put_std_snapshot(f, "t", 1, 20, 20, 0);
    char err[1024];
    assert_int_equal(journal_batch_commit(f->w, err, sizeof err), 0);
    struct replay *r = ropen(f);
    apply_ok(r, JOURNAL_SEQ_MAX);
    replay_close(r);
    for (int i = 0; i < 40; i++) put_std_incr(f, "t", 1000 + i * 100, 100, 0);
    assert_int_equal(journal_batch_commit(f->w, err, sizeof err), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {.rlim_cur = 96 * 1024, .rlim_max = 96 * 1024};
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(3);
        struct replay_opts o = opts_for(f, NULL);
        struct replay *rc;
        char e[1024];
        if (replay_open(&o, &rc, e, sizeof e) != 0) _exit(4);
        struct replay_stats st;
        int ok = replay_apply(rc, JOURNAL_SEQ_MAX, &st, e, sizeof e) == -1 && strstr(e, "File too large");
        if (!ok) fprintf(stderr, "apply under RLIMIT_FSIZE: %s\n", e);
        replay_close(rc);
        _exit(ok ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    r = ropen(f);
    assert_true(replay_applied_seq(r) >= 4);                  /* the snapshot stays applied */
    assert_true(count_rows(replay_db(r), "t") >= 20);
    apply_ok(r, JOURNAL_SEQ_MAX);              /* without the limit, the rest applies */
    assert_int_equal(count_rows(replay_db(r), "t"), 20 + 40 * 100);
    replay_close(r);
}

/* The process dies while creating cache.db (here: as SQLite deletes a rollback
 * journal, the moment a new file switches to WAL). A read-only reader must
 * still be able to open what is there: nothing, or a whole empty cache.db, never
 * one with a hot journal that only a writer could roll back. */
static int crash_delete(sqlite3_vfs *v, const char *name, int syncdir)
{
    size_t n = strlen(name);
    if (n > 8 && strcmp(name + n - 8, "-journal") == 0) _exit(9);
    sqlite3_vfs *real = sqlite3_vfs_find("unix");
    return real->xDelete(real, name, syncdir);
}

static void test_create_crash_leaves_nothing(void **state)
{
    struct fx *f = *state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        sqlite3_vfs v = *sqlite3_vfs_find("unix");
        v.zName = "crash-on-journal-delete";
        v.xDelete = crash_delete;
        if (sqlite3_vfs_register(&v, 1) != SQLITE_OK) _exit(3);
        struct replay_opts o = opts_for(f, NULL);
        struct replay *r;
        char e[1024];
        _exit(replay_open(&o, &r, e, sizeof e) == 0 ? 0 : 4);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 9);      /* it did die mid-way */
    if (access(f->db, F_OK) == 0) {
        sqlite3 *db = ro_open(f->db);
        char *msg = NULL;
        if (sqlite3_exec(db, "SELECT count(*) FROM sqlite_master", NULL, NULL, &msg) != SQLITE_OK)
            fail_msg("a reader cannot open the cache.db a crash left: %s", msg);
        sqlite3_close(db);
    }
    /* and the next writer makes a whole one */
    struct replay *r = ropen(f);
    assert_int_equal(replay_applied_seq(r), 0);
    replay_close(r);
    check_current(f);
}

/* ---- compacted start --------------------------------------------------------------------------- */

/* 1 SCHEMA a, 2 BEGIN a, 3 PAGE a(2), 4 SCHEMA b, 5 PAGE a(2), 6 SCHEMA a
 * (the same again, as a restarted puller writes it), 7 PAGE a(2), 8 END a(2),
 * 9.. snapshot a, snapshot b, incr a.
 * Compaction (one record per segment) deletes 1..3: a has a later SCHEMA and
 * complete snapshot, b (seq 4) does not. */
static void build_compactable(struct fx *f)
{
    f->segment_size = 1;
    put_std_schema(f, "a");
    uint64_t id = put_begin(f, "a");
    put_std_page(f, "a", id, 1, 3, 0);
    put_std_schema(f, "b");
    put_std_page(f, "a", id, 4, 2, 0);
    put_std_schema(f, "a");
    put_std_page(f, "a", id, 6, 1, 0);
    put_end(f, "a", id, 6, vnull, vint(6));
    put_std_snapshot(f, "a", 100, 7, 3, 1);
    put_std_snapshot(f, "b", 1, 4, 4, 0);
    put_std_incr(f, "a", 200, 2, 0);
    char err[512];
    assert_int_equal(journal_batch_commit(f->w, err, sizeof err), 0);
}

static void test_compacted_start_skips(void **state)
{
    struct fx *f = *state;
    build_compactable(f);
    char intact[600];
    snprintf(intact, sizeof intact, "%s/intact.db", f->root);
    struct replay *ri = ropen_at(f, intact);
    apply_ok(ri, JOURNAL_SEQ_MAX);
    assert_int_equal(f->nwarn, 0);
    char err[512];
    struct journal_compact_result cr;
    if (journal_compact(f->jdir, 1000, 0, &cr, err, sizeof err) != 0) fail_msg("compact: %s", err);
    assert_int_equal(cr.deleted, 3);
    uint64_t *segs;
    size_t n;
    assert_int_equal(journal_segments(f->jdir, &segs, &n, err, sizeof err), 0);
    assert_int_equal(segs[0], 4);
    free(segs);

    struct replay *r = ropen(f);
    struct replay_stats st = apply_ok(r, JOURNAL_SEQ_MAX);
    assert_int_equal(st.records, replay_applied_seq(ri) - 3);
    assert_int_equal(replay_applied_seq(r), replay_applied_seq(ri));
    /* one warning for table a (records before its SCHEMA, and the pages of a
     * snapshot whose BEGIN was compacted away); none for b */
    assert_int_equal(f->nwarn, 1);
    assert_non_null(strstr(f->warn, "table \"a\": skipping its records before its SCHEMA"));
    assert_true(table_sum(replay_db(r), "a") == table_sum(replay_db(ri), "a"));
    assert_true(table_sum(replay_db(r), "b") == table_sum(replay_db(ri), "b"));
    assert_int_equal(count_rows(replay_db(r), "a"), 9);
    assert_int_equal(q_int(replay_db(r), "SELECT base_seq FROM _agent_state"), 4);
    char m1[512], m2[512];
    meta_text(ri, "a", m1, sizeof m1);
    meta_text(r, "a", m2, sizeof m2);
    assert_string_equal(m1, m2);
    replay_close(r);
    replay_close(ri);
    /* A rebuild from the compacted journal gives the same again. */
    struct replay_opts o = opts_for(f, NULL);
    if (replay_rebuild(&o, &st, err, sizeof err) != 0) fail_msg("rebuild: %s", err);
    r = ropen(f);
    ri = ropen_at(f, intact);
    assert_true(table_sum(replay_db(r), "a") == table_sum(replay_db(ri), "a"));
    replay_close(r);
    replay_close(ri);
}

static void test_compacted_past_applied(void **state)
{
    struct fx *f = *state;
    build_compactable(f);
    struct replay *r = ropen(f);
    apply_ok(r, 2);
    char err[512];
    struct journal_compact_result cr;
    /* Compaction told a larger applied position than this cache has. */
    if (journal_compact(f->jdir, 1000, 0, &cr, err, sizeof err) != 0) fail_msg("compact: %s", err);
    apply_fails(r, JOURNAL_SEQ_MAX, "compacted past the applied position", "applied up to seq 2",
                "oldest segment starts at seq 4", "records 3..3 are gone", NULL);
    assert_int_equal(replay_applied_seq(r), 2);
    replay_close(r);
}

static void test_compacted_contiguous_ok(void **state)
{
    struct fx *f = *state;
    build_compactable(f);
    struct replay *r = ropen(f);
    apply_ok(r, 3);
    char err[512];
    struct journal_compact_result cr;
    if (journal_compact(f->jdir, 3, 0, &cr, err, sizeof err) != 0) fail_msg("compact: %s", err);
    assert_int_equal(cr.deleted, 3);
    apply_ok(r, JOURNAL_SEQ_MAX);
    assert_int_equal(count_rows(replay_db(r), "a"), 9);
    assert_int_equal(f->nwarn, 0);
    assert_int_equal(q_int(replay_db(r), "SELECT base_seq FROM _agent_state"), 1);
    /* This cache started at seq 1: a table without SCHEMA is still an error,
     * whatever retention did to the journal since. */
    uint64_t s = put_std_incr(f, "zz", 1, 1, 0);
    char want[64];
    snprintf(want, sizeof want, "journal seq %" PRIu64 " ", s);
    apply_fails(r, JOURNAL_SEQ_MAX, want, "table \"zz\": no SCHEMA record for the table precedes it", NULL);
    assert_int_equal(f->nwarn, 0);
    replay_close(r);
}

/* ---- cache.db: migrations, versions, metadata ---------------------------------------------------- */

static void test_newer_version_refused(void **state)
{
    struct fx *f = *state;
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE keep(x); PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    struct replay_opts o = opts_for(f, NULL);
    struct replay *r;
    char err[1024];
    assert_int_equal(replay_open(&o, &r, err, sizeof err), -1);
    assert_null(r);
    assert_non_null(strstr(err, f->db));
    char want[80];
    snprintf(want, sizeof want, "schema version 99 is newer than this build knows (%d)", REPLAY_SCHEMA_VERSION);
    assert_non_null(strstr(err, want));
    db = ro_open(f->db);
    assert_int_equal(q_int(db, "PRAGMA user_version"), 99);     /* untouched */
    sqlite3_close(db);
}

static void test_not_a_database(void **state)
{
    struct fx *f = *state;
    const char junk[] = "this is not an SQLite database, just some text that is long enough......";
    assert_int_equal(tu_write_file(f->db, junk, sizeof junk), 0);
    struct replay_opts o = opts_for(f, NULL);
    struct replay *r;
    char err[1024];
    assert_int_equal(replay_open(&o, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, f->db));
    assert_non_null(strstr(err, "not a database"));
    /* a directory that does not exist */
    char missing[700];
    snprintf(missing, sizeof missing, "%s/no/such/dir/cache.db", f->root);
    o.db_path = missing;
    assert_int_equal(replay_open(&o, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, missing));
    assert_non_null(strstr(err, "unable to open"));
}

static void check_current(struct fx *f)
{
    sqlite3 *db = ro_open(f->db);
    assert_int_equal(q_int(db, "PRAGMA user_version"), REPLAY_SCHEMA_VERSION);
    assert_int_equal(q_int(db, "SELECT count(*) FROM _agent_state"), 1);
    sqlite3_close(db);
}

static void test_migrate_from_v0(void **state)
{
    struct fx *f = *state;
    /* an empty file */
    assert_int_equal(tu_write_file(f->db, "", 0), 0);
    struct replay *r = ropen(f);
    assert_int_equal(replay_applied_seq(r), 0);
    replay_close(r);
    check_current(f);
    /* a version-0 db that already holds something of its own */
    reset(f);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE notes(x); INSERT INTO notes VALUES ('kept')", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    r = ropen(f);
    put_std_schema(f, "t");
    put_std_snapshot(f, "t", 1, 3, 3, 0);
    apply_ok(r, JOURNAL_SEQ_MAX);
    assert_int_equal(count_rows(replay_db(r), "notes"), 1);
    assert_int_equal(count_rows(replay_db(r), "t"), 3);
    replay_close(r);
    check_current(f);
    /* WAL mode persisted in the file */
    db = ro_open(f->db);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void test_migrate_from_v1(void **state)
{
    struct fx *f = *state;
    /* The cache.db a version-1 build leaves: migration 1 only, with some state. */
    sqlite3 *db;
    char err[1024];
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    if (replay_migrate(db, f->db, 1, err, sizeof err) != 0) fail_msg("migrate: %s", err);
    assert_int_equal(q_int(db, "PRAGMA user_version"), 1);
    sqlite3_close(db);
    put_std_schema(f, "t");
    put_std_snapshot(f, "t", 1, 3, 3, 0);
    struct replay *r = ropen(f);
    apply_ok(r, 2);
    replay_close(r);
    /* ... reopened by this build: reaches the current version, keeps its state. */
    r = ropen(f);
    assert_int_equal(replay_applied_seq(r), 2);
    apply_ok(r, JOURNAL_SEQ_MAX);
    assert_int_equal(count_rows(replay_db(r), "t"), 3);
    /* migration 2 added last_sweep_ms to the existing row */
    struct replay_table t = tget(r, "t");
    assert_int_equal(t.last_sweep_ms, 0);
    assert_int_equal(t.rows, 3);
    replay_table_free(&t);
    assert_int_equal(replay_note_sweep(r, "t", 77, err, sizeof err), 0);
    replay_close(r);
    check_current(f);
    /* Migrating to a version this build does not know is refused. */
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    assert_int_equal(replay_migrate(db, f->db, REPLAY_SCHEMA_VERSION + 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot migrate to schema version"));
    sqlite3_close(db);
}

/* on_demand fetch times (_agent_fetched, migration 5) and the one query that reads them. */
static void test_note_fetched(void **state)
{
    struct fx *f = *state;
    put_std_schema(f, "t");
    put_std_incr(f, "t", 1, 3, 0);
    struct replay *r = ropen(f);
    apply_ok(r, JOURNAL_SEQ_MAX);
    char err[512];
    struct journal_value keys[] = {vint(1), vint(2)};
    assert_int_equal(replay_note_fetched(r, "t", keys, 2, 5000, err, sizeof err), 0);
    assert_int_equal(replay_note_fetched(r, "t", keys, 1, 6000, err, sizeof err), 0);   /* read again */
    assert_int_equal(replay_note_fetched(r, "_agent_tables", keys, 1, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "reserved"));
    struct buf sql = {0};
    replay_fetched_sql(&sql, "t", "id", "id");
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(replay_db(r), sql.p, -1, &st, NULL), SQLITE_OK);
    static const struct { int64_t id, n, at; const char *keys; } want[] = {
        {1, 1, 6000, "[1]"}, {2, 1, 5000, "[2]"}, {3, 1, 0, "[3]"}, {9, 0, 0, "[]"}};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, want[i].id);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int64(st, 0), want[i].n);
        assert_int_equal(sqlite3_column_int64(st, 1), want[i].at);    /* 0: a row with no time */
        assert_string_equal((const char *)sqlite3_column_text(st, 2), want[i].keys);
    }
    sqlite3_finalize(st);
    buf_free(&sql);
    replay_close(r);
}

static void test_note_pull_and_list(void **state)
{
    struct fx *f = *state;
    put_std_schema(f, "t");
    struct replay *r = ropen(f);
    apply_ok(r, JOURNAL_SEQ_MAX);
    char err[512];
    assert_int_equal(replay_note_pull(r, "t", "full", 1000, NULL, 0, err, sizeof err), 0);
    assert_int_equal(replay_note_pull(r, "t", "full", 2000, "HTTP 500 from portal", 0, err, sizeof err), 0);
    struct replay_table t = tget(r, "t");
    assert_int_equal(t.last_attempt_ms, 2000);
    assert_int_equal(t.last_success_ms, 1000);
    assert_string_equal(t.last_error, "HTTP 500 from portal");
    assert_string_equal(t.strategy, "full");
    assert_int_equal(t.forbidden, 0);
    assert_int_equal(t.live, 1);
    replay_table_free(&t);
    assert_int_equal(replay_note_pull(r, "t", NULL, 3000, NULL, 0, err, sizeof err), 0);
    t = tget(r, "t");
    assert_int_equal(t.last_success_ms, 3000);
    assert_null(t.last_error);
    assert_string_equal(t.strategy, "full");   /* NULL keeps the last one */
    assert_int_equal(t.last_sweep_ms, 0);
    replay_table_free(&t);
    assert_int_equal(replay_note_sweep(r, "t", 3500, err, sizeof err), 0);
    t = tget(r, "t");
    assert_int_equal(t.last_sweep_ms, 3500);
    assert_int_equal(t.last_success_ms, 3000);
    replay_table_free(&t);
    /* A table the portal forbids: known to status, not live, no schema. */
    assert_int_equal(replay_note_pull(r, "secret", "full", 4000, "403 forbidden", 1, err, sizeof err), 0);
    t = tget(r, "secret");
    assert_int_equal(t.forbidden, 1);
    assert_int_equal(t.live, 0);
    assert_string_equal(t.schema_hash, "");
    assert_int_equal(t.last_success_ms, 0);
    replay_table_free(&t);
    assert_int_equal(replay_note_pull(r, "_agent_state", "full", 1, NULL, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "reserved"));
    char **names;
    size_t n;
    assert_int_equal(replay_table_list(r, &names, &n, err, sizeof err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "secret");
    assert_string_equal(names[1], "t");
    replay_names_free(names, n);
    /* the operational fields survive applying more records */
    put_std_snapshot(f, "t", 1, 2, 2, 0);
    apply_ok(r, JOURNAL_SEQ_MAX);
    t = tget(r, "t");
    assert_int_equal(t.last_success_ms, 3000);
    assert_int_equal(t.rows, 2);
    replay_table_free(&t);
    /* a table named by a pull first, then by a SCHEMA */
    put_std_schema(f, "secret");
    apply_ok(r, JOURNAL_SEQ_MAX);
    t = tget(r, "secret");
    assert_int_equal(t.live, 1);
    assert_int_equal(t.forbidden, 1);
    replay_table_free(&t);
    replay_close(r);
}

static void test_quoted_identifiers(void **state)
{
    struct fx *f = *state;
    const char *names[] = {"id", "a \"quoted\" col", "select", "Колонка"};
    enum journal_coltype types[] = {JOURNAL_COL_TEXT, JOURNAL_COL_INT, JOURNAL_COL_TEXT, JOURNAL_COL_ANY};
    const char *table = "my \"table\"; DROP TABLE x --";
    put_schema(f, table, 4, names, types, 0, 1);
    uint64_t id = put_begin(f, table);
    journal_payload_snapshot_page(&f->pl, id, 4);
    journal_put_text(&f->pl, "k1", 2);
    journal_put_int(&f->pl, 5);
    journal_put_text(&f->pl, "s", 1);
    journal_put_null(&f->pl);
    append(f, JOURNAL_SNAPSHOT_PAGE, table);
    put_end(f, table, id, 1, vint(5), vtext("k1"));
    journal_payload_incremental_page(&f->pl, NULL, NULL, 4);
    journal_put_text(&f->pl, "k2", 2);
    journal_put_int(&f->pl, 6);
    journal_put_text(&f->pl, "t", 1);
    journal_put_int(&f->pl, 1);
    append(f, JOURNAL_INCREMENTAL_PAGE, table);
    journal_payload_deletions(&f->pl, 1);
    journal_put_text(&f->pl, "k1", 2);
    append(f, JOURNAL_DELETIONS, table);
    struct replay *r = ropen(f);
    apply_ok(r, JOURNAL_SEQ_MAX);
    assert_int_equal(q_int(replay_db(r), "SELECT count(*) FROM \"my \"\"table\"\"; DROP TABLE x --\""), 1);
    assert_int_equal(q_int(replay_db(r), "SELECT \"a \"\"quoted\"\" col\" FROM \"my \"\"table\"\"; DROP TABLE x --\""),
                     6);
    struct replay_table t = tget(r, table);
    assert_int_equal(t.rows, 1);
    assert_int_equal(t.mark_key.type, JOURNAL_TEXT);
    assert_string_equal(t.mark_key.s, "k1");
    replay_table_free(&t);
    replay_close(r);
}

static void test_no_journal(void **state)
{
    struct fx *f = *state;
    /* no journal directory yet: nothing to apply */
    struct replay *r = ropen(f);
    struct replay_stats st = apply_ok(r, JOURNAL_SEQ_MAX);
    assert_int_equal(st.records, 0);
    replay_close(r);
    /* opened without a journal: apply refuses */
    struct replay_opts o = {.db_path = f->db};
    char err[512];
    assert_int_equal(replay_open(&o, &r, err, sizeof err), 0);
    assert_int_equal(replay_apply(r, JOURNAL_SEQ_MAX, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "without a journal directory"));
    replay_close(r);
    assert_int_equal(replay_check_name("ok_name", err, sizeof err), 0);
    assert_int_equal(replay_check_name("", err, sizeof err), -1);
    assert_non_null(strstr(err, "must be 1..255 bytes"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_typed_values_roundtrip, setup, teardown),
        cmocka_unit_test(test_schema_hash),
        cmocka_unit_test_setup_teardown(test_apply_twice_no_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_half_then_rest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_mid_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_position_commits_with_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interrupted_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_swap_with_user_view, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_reader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_superseding_begin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_duplicate_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_page_snapshot_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_row_count_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_incremental_upsert_and_mark, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deletions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_counts_deleted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deletions_need_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_change_on_demand_and_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_record_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_record_skip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_journal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rebuild_identical, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rebuild_refused_keeps_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_cache_says_rebuild, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db_errmsg, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_file_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_crash_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compacted_start_skips, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compacted_past_applied, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compacted_contiguous_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_version_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_from_v0, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_from_v1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_note_pull_and_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_note_fetched, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quoted_identifiers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_journal, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
