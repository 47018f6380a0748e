/* test_export.c — agent/ship/export.c: snapshot and delta files between two caches
 * built by replay from real journals (host A) into a second cache (host B):
 * snapshot into an empty cache gives identical tables and metadata, marks
 * travel, local identity and journal position stay; a delta brings updates,
 * inserts and deletions; a wrong base, a locally changed row (conflicts), a
 * changed layout and damage in every region of the file are refused with the
 * message and leave B untouched. */
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
#include <zlib.h>

#include "agent/ship/export.h"
#include "agent/ship/export_hub.h"
#include "journal/journal.h"
#include "journal/rows.h"
#include "replay/outbox.h"
#include "replay/replay.h"
#include "tests/testutil.h"

struct host {
    char jdir[512], db[512];
    struct journal_writer *w;
    struct journal_payload pl;
};

struct fx {
    char *root;
    struct host a, b;
    char file[512], file2[512], delta[512];
    struct tu_portal portal;   /* pid 0: none; stopped by teardown even when a test fails */
};

static void host_init(struct host *h, const char *root, const char *name)
{
    snprintf(h->jdir, sizeof h->jdir, "%s/%s-journal", root, name);
    snprintf(h->db, sizeof h->db, "%s/%s-cache.db", root, name);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    f->root = tu_tmpdir("test_export");
    assert_non_null(f->root);
    host_init(&f->a, f->root, "a");
    host_init(&f->b, f->root, "b");
    snprintf(f->file, sizeof f->file, "%s/snap.iax", f->root);
    snprintf(f->file2, sizeof f->file2, "%s/snap2.iax", f->root);
    snprintf(f->delta, sizeof f->delta, "%s/delta.iax", f->root);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    if (f->portal.pid) tu_portal_stop(&f->portal);
    struct host *hs[] = {&f->a, &f->b};
    for (int i = 0; i < 2; i++) {
        if (hs[i]->w) journal_writer_close(hs[i]->w);
        journal_payload_free(&hs[i]->pl);
    }
    tu_rmrf(f->root);
    free(f->root);
    free(f);
    return 0;
}

/* ---- building a cache from a journal ------------------------------------------------ */

static uint64_t append(struct host *h, int type, const char *table)
{
    char err[512];
    uint64_t seq;
    if (!h->w) {
        struct journal_opts o = {.dir = h->jdir, .level = 1};
        if (journal_writer_open(&o, &h->w, err, sizeof err) != 0) fail_msg("journal open: %s", err);
        journal_batch_begin(h->w);
    }
    if (journal_payload_finish(&h->pl, err, sizeof err) != 0) fail_msg("payload: %s", err);
    if (journal_append(h->w, type, table, h->pl.p, h->pl.len, &seq, err, sizeof err) != 0)
        fail_msg("append: %s", err);
    return seq;
}

static const char *const names3[] = {"id", "name", "updated"};
static const enum journal_coltype types3[] = {JOURNAL_COL_INT, JOURNAL_COL_TEXT, JOURNAL_COL_INT};

static void put_schema(struct host *h, const char *table)
{
    char err[256];
    if (journal_payload_schema(&h->pl, 3, names3, types3, 0, 2, err, sizeof err) != 0) fail_msg("%s", err);
    append(h, JOURNAL_SCHEMA, table);
}

static void put_row(struct host *h, int64_t k, int v)
{
    char s[64];
    int n = snprintf(s, sizeof s, "row-%" PRId64 "-v%d", k, v);
    journal_put_int(&h->pl, k);
    journal_put_text(&h->pl, s, (size_t)n);
    journal_put_int(&h->pl, 1000 + k + v);
}

/* A full snapshot of ids [1, n], version v. */
static void put_snapshot(struct host *h, const char *table, int n, int v)
{
    journal_payload_snapshot_begin(&h->pl, 0);
    uint64_t id = append(h, JOURNAL_SNAPSHOT_BEGIN, table);
    journal_payload_snapshot_page(&h->pl, id, 3);
    for (int k = 1; k <= n; k++) put_row(h, k, v);
    append(h, JOURNAL_SNAPSHOT_PAGE, table);
    struct journal_value mc = {.type = JOURNAL_INT, .i = 1000 + n + v}, mk = {.type = JOURNAL_INT, .i = n};
    journal_payload_snapshot_end(&h->pl, id, (uint64_t)n, &mc, &mk);
    append(h, JOURNAL_SNAPSHOT_END, table);
}

/* An incremental page of ids [from, to], version v. */
static void put_incr(struct host *h, const char *table, int64_t from, int64_t to, int v)
{
    struct journal_value mc = {.type = JOURNAL_INT, .i = 1000 + to + v}, mk = {.type = JOURNAL_INT, .i = to};
    journal_payload_incremental_page(&h->pl, &mc, &mk, 3);
    for (int64_t k = from; k <= to; k++) put_row(h, k, v);
    append(h, JOURNAL_INCREMENTAL_PAGE, table);
}

static void put_deletions(struct host *h, const char *table, const int64_t *keys, int n)
{
    journal_payload_deletions(&h->pl, 1);
    for (int i = 0; i < n; i++) journal_put_int(&h->pl, keys[i]);
    append(h, JOURNAL_DELETIONS, table);
}

/* Open h's cache, apply its journal, close. */
static void apply(struct host *h)
{
    char err[1024];
    struct replay_opts o = {.db_path = h->db, .journal_dir = h->jdir};
    struct replay *r;
    if (replay_open(&o, &r, err, sizeof err) != 0) fail_msg("replay_open: %s", err);
    if (h->w) {
        struct replay_stats st;
        if (replay_apply(r, JOURNAL_SEQ_MAX, &st, err, sizeof err) != 0) fail_msg("replay_apply: %s", err);
    }
    replay_close(r);
}

/* A: tables "t" (20 rows) and "u" (5 rows), then an increment of t. */
static void build_a(struct fx *f)
{
    put_schema(&f->a, "t");
    put_snapshot(&f->a, "t", 20, 0);
    put_schema(&f->a, "u");
    put_snapshot(&f->a, "u", 5, 0);
    put_incr(&f->a, "t", 18, 22, 1);
    apply(&f->a);
}

/* ---- reading caches back ----------------------------------------------------------- */

static sqlite3 *dbopen(const char *path)
{
    sqlite3 *db;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) fail_msg("open %s", path);
    return db;
}

static sqlite3 *dbopen_create(const char *path)
{
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK) fail_msg("open %s", path);
    return db;
}

/* A checksum of a whole table (every row in key order, every value with its type). */
static uint32_t table_sum(const char *path, const char *table, int *rows)
{
    sqlite3 *db = dbopen(path);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT * FROM \"%s\" ORDER BY 1, 2", table);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    uint32_t c = (uint32_t)crc32(0, NULL, 0);
    int n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        n++;
        for (int i = 0; i < sqlite3_column_count(st); i++) {
            unsigned char t = (unsigned char)sqlite3_column_type(st, i);
            c = (uint32_t)crc32(c, &t, 1);
            const unsigned char *v = sqlite3_column_text(st, i);
            if (v) c = (uint32_t)crc32(c, v, (uInt)sqlite3_column_bytes(st, i) + 1);
        }
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    if (rows) *rows = n;
    return c;
}

static const char *const compared[] = {"t", "u", "_agent_tables", "_agent_columns"};

static void assert_same(const char *x, const char *y)
{
    for (size_t i = 0; i < sizeof compared / sizeof *compared; i++) {
        int nx, ny;
        uint32_t cx = table_sum(x, compared[i], &nx), cy = table_sum(y, compared[i], &ny);
        if (cx != cy || nx != ny) fail_msg("table %s differs: %d rows %08x vs %d rows %08x", compared[i], nx, cx, ny, cy);
    }
}

static char *q_text(const char *path, const char *sql)
{
    sqlite3 *db = dbopen(path);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    char *s = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return s;
}

static void q_exec(const char *path, const char *sql)
{
    sqlite3 *db = dbopen(path);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) fail_msg("%s: %s", sql, msg);
    sqlite3_close(db);
}

static void snapshot_ok(const char *db, const char *out, struct export_manifest *m)
{
    char err[2048];
    if (export_snapshot(db, out, 6, m, err, sizeof err) != 0) fail_msg("export_snapshot: %s", err);
}

static void import_ok(const char *db, const char *file, struct export_import_result *res)
{
    char err[2048];
    if (export_import(db, file, res, err, sizeof err) != 0) fail_msg("export_import: %s", err);
}

/* Import expecting refusal; every `expect` (NULL-terminated) must be in the error. */
static void import_fails(const char *db, const char *file, ...)
{
    char err[2048];
    struct export_import_result res;
    if (export_import(db, file, &res, err, sizeof err) == 0) fail_msg("import of %s succeeded", file);
    export_manifest_free(&res.m);
    va_list ap;
    va_start(ap, file);
    const char *e;
    while ((e = va_arg(ap, const char *)))
        if (!strstr(err, e)) fail_msg("error \"%s\" lacks \"%s\"", err, e);
    va_end(ap);
}

/* ---- tests ---------------------------------------------------------------------------- */

static int run_sql(sqlite3 *db, void *ctx, char *err, size_t errlen)
{
    if (sqlite3_exec(db, ctx, NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(db));
        return -1;
    }
    return 0;
}

/* Queue a write on h's table t as the daemon does: capture, journal the op, apply. */
static void put_op(struct host *h, int kind, const char *sql)
{
    char err[2048];
    struct replay_opts o = {.db_path = h->db, .journal_dir = h->jdir};
    struct replay *r;
    if (replay_open(&o, &r, err, sizeof err) != 0) fail_msg("replay_open: %s", err);
    void *cs;
    int ncs;
    if (replay_op_capture(r, "t", run_sql, (void *)sql, &cs, &ncs, err, sizeof err) != 0) fail_msg("capture: %s", err);
    struct journal_op op = {.kind = kind, .params = "{\"table\":\"t\"}", .nparams = 13, .changeset = cs,
                            .nchangeset = (size_t)ncs, .answer = "1", .nanswer = 1};
    if (journal_payload_op(&h->pl, &op, err, sizeof err) != 0) fail_msg("%s", err);
    sqlite3_free(cs);
    append(h, JOURNAL_OP, "t");
    if (replay_apply(r, JOURNAL_SEQ_MAX, NULL, err, sizeof err) != 0) fail_msg("replay_apply: %s", err);
    replay_close(r);
}

/* The outbox stays home: an export taken with open ops carries their rows (it
 * reads cache.db: read-your-writes) but not _agent_outbox/_agent_outbox_keys,
 * so an importer never sends another agent's writes; a cache with open ops
 * refuses an import (it would lose them). */
static void test_outbox_stays_home(void **state)
{
    struct fx *f = *state;
    build_a(f);
    put_op(&f->a, JOURNAL_OP_UPDATE, "UPDATE t SET name = 'local' WHERE id = 3");
    put_op(&f->a, JOURNAL_OP_INSERT, "INSERT INTO t VALUES (-1000, 'queued', NULL)");
    char *n = q_text(f->a.db, "SELECT count(*) || '/' || (SELECT count(*) FROM _agent_outbox_keys) FROM _agent_outbox");
    assert_string_equal(n, "2/2");
    free(n);
    apply(&f->b);
    struct export_manifest m;
    snapshot_ok(f->a.db, f->file, &m);
    for (size_t i = 0; i < m.ntables; i++)
        if (!strncmp(m.tables[i].name, "_agent_outbox", 13)) fail_msg("the manifest lists %s", m.tables[i].name);
    struct export_import_result res;
    import_ok(f->b.db, f->file, &res);
    n = q_text(f->b.db, "SELECT count(*) || '/' || (SELECT count(*) FROM _agent_outbox_keys) FROM _agent_outbox");
    assert_string_equal(n, "0/0");
    free(n);
    n = q_text(f->b.db, "SELECT group_concat(id || ':' || name, ' ') FROM (SELECT * FROM t WHERE id IN (-1000, 3) ORDER BY id)");
    assert_string_equal(n, "-1000:queued 3:local");
    free(n);
    /* the source still has its outbox; it refuses an import while ops are open */
    n = q_text(f->a.db, "SELECT count(*) FROM _agent_outbox WHERE state = 'pending'");
    assert_string_equal(n, "2");
    free(n);
    import_fails(f->a.db, f->file, "cache.db has 2 open offline writes", "drop them", NULL);
    n = q_text(f->a.db, "SELECT count(*) FROM _agent_outbox WHERE state = 'pending'");
    assert_string_equal(n, "2");
    free(n);
    export_manifest_free(&res.m);
    export_manifest_free(&m);
}

static void test_snapshot_into_empty(void **state)
{
    struct fx *f = *state;
    build_a(f);
    apply(&f->b);                                  /* an empty cache.db */
    char *b_agent = q_text(f->b.db, "SELECT agent_id FROM _agent_export");
    char *a_agent = q_text(f->a.db, "SELECT agent_id FROM _agent_export");
    char *a_seq = q_text(f->a.db, "SELECT applied_seq FROM _agent_state");
    struct export_manifest m;
    snapshot_ok(f->a.db, f->file, &m);
    assert_string_equal(m.kind, "snapshot");
    assert_string_equal(m.source_agent, a_agent);
    assert_int_equal(m.journal_seq, strtoull(a_seq, NULL, 10));
    assert_int_equal(strlen(m.id), EXPORT_ID_LEN);
    int found = 0;
    for (size_t i = 0; i < m.ntables; i++)
        if (!strcmp(m.tables[i].name, "t")) {
            found = 1;
            assert_int_equal(m.tables[i].rows, 22);
            assert_string_equal(m.tables[i].mark_key, "int:22");
            assert_string_equal(m.tables[i].mark_cursor, "int:1023");
            assert_int_equal(strlen(m.tables[i].schema_hash), 16);
        }
    assert_true(found);
    /* No temp file is left beside the output. */
    char *ls = NULL;
    const char *const argv[] = {"/bin/sh", "-c", "ls \"$0\" | grep -c tmp-", f->root, NULL};
    tu_run(argv, NULL, &ls, NULL);
    assert_string_equal(ls, "0\n");
    free(ls);

    struct export_import_result res;
    import_ok(f->b.db, f->file, &res);
    assert_string_equal(res.m.id, m.id);
    assert_same(f->a.db, f->b.db);
    /* Local identity and journal position stay; the cache is now "at" the snapshot. */
    char *b_agent2 = q_text(f->b.db, "SELECT agent_id FROM _agent_export");
    char *at = q_text(f->b.db, "SELECT at_id FROM _agent_export");
    char *b_seq = q_text(f->b.db, "SELECT applied_seq FROM _agent_state");
    assert_string_equal(b_agent2, b_agent);
    assert_string_not_equal(b_agent2, a_agent);
    assert_string_equal(at, m.id);
    assert_string_equal(b_seq, "0");
    /* Marks are the imported ones, read through replay's own API. */
    struct replay_opts o = {.db_path = f->b.db, .journal_dir = f->b.jdir};
    struct replay *r;
    char err[1024];
    if (replay_open(&o, &r, err, sizeof err) != 0) fail_msg("%s", err);
    struct replay_table rt;
    assert_int_equal(replay_table_get(r, "t", &rt, err, sizeof err), 0);
    assert_int_equal(rt.mark_key.type, JOURNAL_INT);
    assert_int_equal(rt.mark_key.i, 22);
    assert_int_equal(rt.mark_cursor.i, 1023);
    assert_int_equal(rt.rows, 22);
    assert_true(rt.live);
    replay_table_free(&rt);
    replay_close(r);
    free(b_agent);
    free(a_agent);
    free(a_seq);
    free(b_agent2);
    free(at);
    free(b_seq);
    export_manifest_free(&res.m);
    export_manifest_free(&m);
}

static void test_delta_brings_changes_and_deletions(void **state)
{
    struct fx *f = *state;
    build_a(f);
    apply(&f->b);
    struct export_manifest s, d;
    struct export_import_result res;
    snapshot_ok(f->a.db, f->file, &s);
    import_ok(f->b.db, f->file, &res);
    export_manifest_free(&res.m);
    /* A moves on: updates, inserts, deletions, a new mark. */
    put_incr(&f->a, "t", 5, 25, 2);
    const int64_t gone[] = {1, 2, 19};
    put_deletions(&f->a, "t", gone, 3);
    put_deletions(&f->a, "u", gone, 1);
    apply(&f->a);
    char err[2048];
    if (export_delta(f->a.db, f->file, f->delta, 6, &d, err, sizeof err) != 0) fail_msg("export_delta: %s", err);
    assert_string_equal(d.kind, "delta");
    assert_string_equal(d.base_id, s.id);
    assert_true(d.changes >= 21 + 4);
    import_ok(f->b.db, f->delta, &res);
    assert_int_equal(res.conflicts[0], 0);
    assert_same(f->a.db, f->b.db);
    char *gone_rows = q_text(f->b.db, "SELECT count(*) FROM t WHERE id IN (1, 2, 19)");
    char *mark = q_text(f->b.db, "SELECT mark_key FROM _agent_tables WHERE name = 't'");
    char *at = q_text(f->b.db, "SELECT at_id FROM _agent_export");
    assert_string_equal(gone_rows, "0");
    assert_string_equal(mark, "25");
    assert_string_equal(at, d.id);
    /* The same delta again: already applied (the cache is at its id), nothing changes. */
    export_manifest_free(&res.m);
    import_ok(f->b.db, f->delta, &res);
    assert_int_equal(res.already, 1);
    assert_same(f->a.db, f->b.db);
    char *at2 = q_text(f->b.db, "SELECT at_id FROM _agent_export");
    assert_string_equal(at2, d.id);
    free(at2);
    free(gone_rows);
    free(mark);
    free(at);
    export_manifest_free(&res.m);
    export_manifest_free(&s);
    export_manifest_free(&d);
}

static void test_delta_wrong_base_refused(void **state)
{
    struct fx *f = *state;
    build_a(f);
    apply(&f->b);
    struct export_manifest s1, s2, d;
    struct export_import_result res;
    snapshot_ok(f->a.db, f->file, &s1);
    import_ok(f->b.db, f->file, &res);
    export_manifest_free(&res.m);
    put_incr(&f->a, "t", 1, 3, 5);
    apply(&f->a);
    snapshot_ok(f->a.db, f->file2, &s2);
    put_incr(&f->a, "t", 4, 6, 5);
    apply(&f->a);
    char err[2048];
    if (export_delta(f->a.db, f->file2, f->delta, 6, &d, err, sizeof err) != 0) fail_msg("export_delta: %s", err);
    uint32_t before = table_sum(f->b.db, "t", NULL), meta = table_sum(f->b.db, "_agent_tables", NULL);
    import_fails(f->b.db, f->delta, d.id, s2.id, s1.id, "nothing changed", NULL);
    assert_int_equal(table_sum(f->b.db, "t", NULL), before);
    assert_int_equal(table_sum(f->b.db, "_agent_tables", NULL), meta);
    /* A cache that never imported anything says so. */
    char fresh[400];
    snprintf(fresh, sizeof fresh, "%s/fresh.db", f->root);
    struct host h;
    memset(&h, 0, sizeof h);
    snprintf(h.db, sizeof h.db, "%s", fresh);
    snprintf(h.jdir, sizeof h.jdir, "%s-journal", fresh);
    apply(&h);
    import_fails(fresh, f->delta, "(no imported snapshot)", NULL);
    export_manifest_free(&s1);
    export_manifest_free(&s2);
    export_manifest_free(&d);
}

static void test_delta_conflicts_counted_and_undone(void **state)
{
    struct fx *f = *state;
    build_a(f);
    apply(&f->b);
    struct export_manifest s, d;
    struct export_import_result res;
    snapshot_ok(f->a.db, f->file, &s);
    import_ok(f->b.db, f->file, &res);
    export_manifest_free(&res.m);
    put_incr(&f->a, "t", 3, 4, 7);
    const int64_t gone[] = {5};
    put_deletions(&f->a, "t", gone, 1);
    apply(&f->a);
    char err[2048];
    if (export_delta(f->a.db, f->file, f->delta, 6, &d, err, sizeof err) != 0) fail_msg("export_delta: %s", err);
    /* B changed behind the delta's back: rows 3 and 5 are not what the base had. */
    q_exec(f->b.db, "UPDATE t SET name = 'local' WHERE id IN (3, 5)");
    uint32_t before = table_sum(f->b.db, "t", NULL);
    import_fails(f->b.db, f->delta, "2 conflicts", "data 2", "nothing changed", NULL);
    assert_int_equal(table_sum(f->b.db, "t", NULL), before);
    char *at = q_text(f->b.db, "SELECT at_id FROM _agent_export");
    assert_string_equal(at, s.id);
    free(at);
    /* A missing table is refused too, not skipped. */
    q_exec(f->b.db, "UPDATE t SET name = 'row-3-v0' WHERE id = 3; DROP TABLE u");
    import_fails(f->b.db, f->delta, "table u: missing in this cache", NULL);
    export_manifest_free(&s);
    export_manifest_free(&d);
}

static void test_delta_refused_on_layout_change(void **state)
{
    struct fx *f = *state;
    build_a(f);
    struct export_manifest s, d;
    snapshot_ok(f->a.db, f->file, &s);
    put_schema(&f->a, "v");
    put_snapshot(&f->a, "v", 2, 0);
    apply(&f->a);
    char err[2048];
    assert_int_equal(export_delta(f->a.db, f->file, f->delta, 6, &d, err, sizeof err), -2);
    assert_non_null(strstr(err, "table v: added since the base"));
    assert_int_equal(access(f->delta, F_OK), -1);
    /* A delta is not a base. */
    put_incr(&f->a, "t", 1, 1, 9);
    apply(&f->a);
    export_manifest_free(&s);
    snapshot_ok(f->a.db, f->file, &s);
    if (export_delta(f->a.db, f->file, f->delta, 6, &d, err, sizeof err) != 0) fail_msg("%s", err);
    export_manifest_free(&d);
    assert_int_equal(export_delta(f->a.db, f->delta, f->file2, 6, &d, err, sizeof err), -1);
    assert_non_null(strstr(err, "a delta starts and ends at snapshots"));
    export_manifest_free(&s);
    /* An unwritable destination: an error naming it, and no file under any name. */
    assert_int_equal(export_snapshot(f->a.db, "/nonexistent-dir/s.iax", 6, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent-dir/s.iax"));
    assert_int_equal(access("/nonexistent-dir", F_OK), -1);
}

static void write_bytes(const char *path, const unsigned char *p, size_t n)
{
    assert_int_equal(tu_write_file(path, (const char *)p, n), 0);
}

/* Rewrite the trailer so damage inside reaches the deeper checks. */
static void fix_trailer(unsigned char *p, size_t n)
{
    uint32_t c = (uint32_t)crc32(0, p, (uInt)(n - 4));
    for (int i = 0; i < 4; i++) p[n - 4 + i] = (unsigned char)(c >> (8 * i));
}

/* Deltas between snapshot files chain: S1 -> S2 applies on a cache at S1 and
 * leaves it at S2, so S2 -> S3 applies next (what the hub serves edges). */
static void test_delta_files_chain(void **state)
{
    struct fx *f = *state;
    build_a(f);
    apply(&f->b);
    char s3[600], d2[600], err[2048];
    snprintf(s3, sizeof s3, "%s/snap3.iax", f->root);
    snprintf(d2, sizeof d2, "%s/delta2.iax", f->root);
    struct export_manifest m1, m2, m3, d, e;
    struct export_import_result res;
    snapshot_ok(f->a.db, f->file, &m1);
    import_ok(f->b.db, f->file, &res);
    export_manifest_free(&res.m);
    put_incr(&f->a, "t", 3, 12, 7);
    const int64_t gone[] = {1};
    put_deletions(&f->a, "t", gone, 1);
    apply(&f->a);
    snapshot_ok(f->a.db, f->file2, &m2);
    put_incr(&f->a, "t", 20, 30, 8);
    apply(&f->a);
    snapshot_ok(f->a.db, s3, &m3);
    if (export_delta_files(f->file, f->file2, f->delta, 6, &d, err, sizeof err) != 0) fail_msg("%s", err);
    assert_string_equal(d.id, m2.id);            /* the delta ends at S2 and is named so */
    assert_string_equal(d.base_id, m1.id);
    if (export_delta_files(f->file2, s3, d2, 6, &e, err, sizeof err) != 0) fail_msg("%s", err);
    assert_string_equal(e.base_id, m2.id);
    /* S2 -> S3 before S1 -> S2 is refused (the cache is at S1). */
    import_fails(f->b.db, d2, m2.id, m1.id, "nothing changed", NULL);
    import_ok(f->b.db, f->delta, &res);
    export_manifest_free(&res.m);
    char at[EXPORT_ID_LEN + 1];
    uint64_t seq = 99;
    if (export_cache_state(f->b.db, at, &seq, err, sizeof err) != 0) fail_msg("%s", err);
    assert_string_equal(at, m2.id);
    import_ok(f->b.db, d2, &res);
    export_manifest_free(&res.m);
    assert_same(f->a.db, f->b.db);
    /* A delta is not a snapshot: it cannot end or start a delta. */
    assert_int_equal(export_delta_files(f->delta, s3, d2, 6, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "a delta starts and ends at snapshots"));
    export_manifest_free(&m1);
    export_manifest_free(&m2);
    export_manifest_free(&m3);
    export_manifest_free(&d);
    export_manifest_free(&e);
}

static void hub_file_close(struct export_hub_file *x)
{
    if (x->fd >= 0) close(x->fd);
    x->fd = -1;
}

static int count_files(const char *dir, const char *suffix)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "ls %s | grep -c '%s$'", dir, suffix);
    FILE *p = popen(cmd, "r");
    int n = 0;
    if (p && fscanf(p, "%d", &n) != 1) n = -1;
    if (p) pclose(p);
    return n;
}

/* The hub: a snapshot is reused while cache.db is unchanged; a delta from the
 * newest is CURRENT; deltas chain and are built once; old bases are evicted
 * (GONE); non-ids are refused; a layout change is REFUSED. */
static void test_hub(void **state)
{
    struct fx *f = *state;
    build_a(f);
    apply(&f->b);
    char dir[600], err[2048];
    snprintf(dir, sizeof dir, "%s/exports", f->root);
    struct export_hub *h = export_hub_new(dir, f->a.db, 3, 2, err, sizeof err);
    assert_non_null(h);
    struct export_hub_file s1, s1b, d, x;
    assert_int_equal(export_hub_snapshot(h, &s1, err, sizeof err), EXPORT_HUB_OK);
    assert_int_equal(s1.built, 1);
    assert_true(s1.size > 0);
    assert_int_equal(export_hub_snapshot(h, &s1b, err, sizeof err), EXPORT_HUB_OK);
    assert_int_equal(s1b.built, 0);              /* unchanged cache: the same file */
    assert_string_equal(s1b.id, s1.id);
    hub_file_close(&s1b);
    assert_int_equal(export_hub_delta(h, s1.id, &x, err, sizeof err), EXPORT_HUB_CURRENT);
    assert_int_equal(export_hub_delta(h, "../../etc/passwd", &x, err, sizeof err), EXPORT_HUB_GONE);
    assert_non_null(strstr(err, "not an export id"));
    assert_int_equal(export_hub_delta(h, "0123456789abcdef0123456789abcdef", &x, err, sizeof err), EXPORT_HUB_GONE);
    assert_non_null(strstr(err, "not kept here"));
    /* B imports S1 from the descriptor the hub handed out. */
    char got[600];
    snprintf(got, sizeof got, "%s/got.iax", f->root);
    FILE *o = fopen(got, "wb");
    char b[65536];
    ssize_t n;
    while ((n = read(s1.fd, b, sizeof b)) > 0) fwrite(b, 1, (size_t)n, o);
    fclose(o);
    hub_file_close(&s1);
    struct export_import_result res;
    import_ok(f->b.db, got, &res);
    export_manifest_free(&res.m);
    /* A changes: the delta from S1 ends at a new snapshot; asked again, it is kept. */
    put_incr(&f->a, "t", 2, 9, 3);
    apply(&f->a);
    assert_int_equal(export_hub_delta(h, s1.id, &d, err, sizeof err), EXPORT_HUB_OK);
    assert_int_equal(d.built, 1);
    assert_string_equal(d.base_id, s1.id);
    assert_string_not_equal(d.id, s1.id);
    o = fopen(got, "wb");
    while ((n = read(d.fd, b, sizeof b)) > 0) fwrite(b, 1, (size_t)n, o);
    fclose(o);
    hub_file_close(&d);
    import_ok(f->b.db, got, &res);
    export_manifest_free(&res.m);
    assert_same(f->a.db, f->b.db);
    char at[EXPORT_ID_LEN + 1];
    assert_int_equal(export_cache_state(f->b.db, at, NULL, err, sizeof err), 0);
    assert_string_equal(at, d.id);
    assert_int_equal(export_hub_delta(h, s1.id, &x, err, sizeof err), EXPORT_HUB_OK);
    assert_int_equal(x.built, 0);
    hub_file_close(&x);
    assert_int_equal(export_hub_delta(h, d.id, &x, err, sizeof err), EXPORT_HUB_CURRENT);
    /* Two more changes: with keep = 2, S1 and its delta are removed. */
    for (int k = 0; k < 2; k++) {
        put_incr(&f->a, "t", 10 + k, 10 + k, 4 + k);
        apply(&f->a);
        assert_int_equal(export_hub_snapshot(h, &x, err, sizeof err), EXPORT_HUB_OK);
        hub_file_close(&x);
    }
    assert_int_equal(export_hub_delta(h, s1.id, &x, err, sizeof err), EXPORT_HUB_GONE);
    assert_int_equal(count_files(dir, ".snap"), 2);
    assert_int_equal(count_files(dir, ".delta"), 0);
    export_hub_free(h);
    /* A new hub over the same directory keeps the files as bases. */
    h = export_hub_new(dir, f->a.db, 3, 2, err, sizeof err);
    assert_non_null(h);
    assert_int_equal(export_hub_snapshot(h, &x, err, sizeof err), EXPORT_HUB_OK);
    assert_int_equal(x.built, 1);                /* fingerprints are not kept across runs */
    hub_file_close(&x);
    /* A changed layout: the delta is refused, the caller takes a snapshot. */
    char last[EXPORT_ID_LEN + 1];
    assert_int_equal(export_hub_snapshot(h, &x, err, sizeof err), EXPORT_HUB_OK);
    snprintf(last, sizeof last, "%s", x.id);
    hub_file_close(&x);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->a.db, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE extra (id INTEGER PRIMARY KEY)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    put_incr(&f->a, "t", 1, 1, 9);
    apply(&f->a);
    assert_int_equal(export_hub_delta(h, last, &x, err, sizeof err), EXPORT_HUB_REFUSED);
    assert_non_null(strstr(err, "extra"));
    export_hub_free(h);
}

static void test_damage_refused(void **state)
{
    struct fx *f = *state;
    build_a(f);
    apply(&f->b);
    struct export_manifest m;
    snapshot_ok(f->a.db, f->file, &m);
    size_t n;
    unsigned char *orig = (unsigned char *)tu_read_file(f->file, &n);
    assert_non_null(orig);
    uint32_t mlen = (uint32_t)orig[12] | (uint32_t)orig[13] << 8 | (uint32_t)orig[14] << 16 | (uint32_t)orig[15] << 24;
    uint32_t before = table_sum(f->b.db, "_agent_tables", NULL);
    unsigned char *p = malloc(n);
    struct {
        size_t off;
        int fix;
        const char *expect;
    } cases[] = {
        {0, 0, "offset 0: not an iptv-agent export file"},
        {8, 0, "offset 8: format version"},
        {13, 0, "checksum mismatch"},
        {16 + mlen / 2, 0, "checksum mismatch"},
        {16 + mlen + (n - 20 - mlen) / 2, 0, "checksum mismatch"},
        {n - 2, 0, "checksum mismatch"},
        {13, 1, "offset 12: manifest length"},
        {16, 1, "manifest: not a JSON object"},
        {16 + mlen + 30, 1, "payload"},
        {n - 6, 1, "payload"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        memcpy(p, orig, n);
        p[cases[i].off] ^= 0x5a;
        if (cases[i].fix) fix_trailer(p, n);
        write_bytes(f->delta, p, n);
        import_fails(f->b.db, f->delta, cases[i].expect, NULL);
        struct export_manifest vm;
        char verr[2048];
        assert_int_equal(export_verify(f->delta, &vm, verr, sizeof verr), -1);
        assert_non_null(strstr(verr, cases[i].expect));
    }
    struct export_manifest vm;
    char verr[2048];
    if (export_verify(f->file, &vm, verr, sizeof verr) != 0) fail_msg("export_verify: %s", verr);
    assert_string_equal(vm.id, m.id);
    assert_int_equal(vm.raw_crc, m.raw_crc);
    assert_int_equal(vm.ntables, m.ntables);
    export_manifest_free(&vm);
    /* Truncated anywhere. */
    size_t cuts[] = {0, 10, 16 + mlen / 2, 16 + mlen + 10, n - 5, n - 1};
    const char *cut_msg[] = {"truncated", "truncated", "checksum mismatch", "checksum mismatch",
                             "checksum mismatch", "checksum mismatch"};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        write_bytes(f->delta, orig, cuts[i]);
        import_fails(f->b.db, f->delta, cut_msg[i], NULL);
    }
    /* Cut inside the payload with a forged trailer: the payload check catches it. */
    memcpy(p, orig, n);
    size_t short_n = n - 40;
    memcpy(p + short_n - 4, orig + n - 4, 4);
    fix_trailer(p, short_n);
    write_bytes(f->delta, p, short_n);
    import_fails(f->b.db, f->delta, "payload bytes", NULL);
    /* Nothing reached B; the intact file still imports. */
    assert_int_equal(table_sum(f->b.db, "_agent_tables", NULL), before);
    char *cnt = q_text(f->b.db, "SELECT count(*) FROM sqlite_master WHERE name = 't'");
    assert_string_equal(cnt, "0");
    free(cnt);
    struct export_import_result res;
    import_ok(f->b.db, f->file, &res);
    export_manifest_free(&res.m);
    assert_same(f->a.db, f->b.db);
    /* Missing file. */
    import_fails(f->b.db, "/nonexistent/x.iax", "/nonexistent/x.iax", NULL);
    free(p);
    free(orig);
    export_manifest_free(&m);
}

/* A reader holding a read transaction on B keeps the old content during the import. */
static void test_snapshot_import_atomic_for_readers(void **state)
{
    struct fx *f = *state;
    build_a(f);
    /* B's cache.db has another page size than A's: the import adapts the copy. */
    sqlite3 *pb = dbopen_create(f->b.db);
    assert_int_equal(sqlite3_exec(pb, "PRAGMA page_size = 8192; CREATE TABLE x(y); DROP TABLE x", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(pb);
    put_schema(&f->b, "t");
    put_snapshot(&f->b, "t", 3, 0);
    apply(&f->b);
    struct export_manifest m;
    struct export_import_result res;
    snapshot_ok(f->a.db, f->file, &m);
    sqlite3 *rd;
    assert_int_equal(sqlite3_open_v2(f->b.db, &rd, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_exec(rd, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(rd, "SELECT count(*) FROM t", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 3);
    sqlite3_reset(st);
    import_ok(f->b.db, f->file, &res);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 3);   /* still its snapshot */
    sqlite3_reset(st);
    assert_int_equal(sqlite3_exec(rd, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 22);  /* the new cache */
    sqlite3_finalize(st);
    sqlite3_close(rd);
    assert_same(f->a.db, f->b.db);
    char *ps = q_text(f->b.db, "PRAGMA page_size"), *jm = q_text(f->b.db, "PRAGMA journal_mode");
    assert_string_equal(ps, "8192");
    assert_string_equal(jm, "wal");
    free(ps);
    free(jm);
    export_manifest_free(&res.m);
    export_manifest_free(&m);
}

/* A manifest claiming another cache schema is refused (the trailer re-forged). */
static void test_schema_version_refused(void **state)
{
    struct fx *f = *state;
    build_a(f);
    apply(&f->b);
    struct export_manifest m;
    snapshot_ok(f->a.db, f->file, &m);
    size_t n;
    char *p = tu_read_file(f->file, &n);
    char *at = strstr(p + 16, "\"cache_schema\":");
    assert_non_null(at);
    at[strlen("\"cache_schema\":")] = '3';
    fix_trailer((unsigned char *)p, n);
    write_bytes(f->delta, (unsigned char *)p, n);
    import_fails(f->b.db, f->delta, "made from a cache.db of schema version 3, this build has", NULL);
    free(p);
    export_manifest_free(&m);
}

/* The commands end to end: two agents against the fake portal. */
static void write_config(const char *path, const char *url, const char *dir)
{
    char t[2048];
    int k = snprintf(t, sizeof t,
                     "[remote]\nurl = \"%s\"\nusername = \"admin\"\npassword_env = \"TEST_PW\"\n"
                     "[storage]\ndir = \"%s\"\n"
                     "[[table]]\nname = \"tv_program\"\nstrategy = \"incremental\"\ncursor = \"updated_at\"\n"
                     "[[table]]\nname = \"tv_channel\"\nstrategy = \"full\"\n",
                     url, dir);
    assert_int_equal(tu_write_file(path, t, (size_t)k), 0);
}

static int agent(const char *cfg, const char *a1, const char *a2, const char *a3, const char *a4, char **out,
                 char **errout)
{
    const char *argv[] = {IA_AGENT_BIN, "--log-level", "warn", "-c", cfg, a1, a2, a3, a4, NULL};
    const char *env[] = {"TEST_PW=pw", NULL};
    return tu_run(argv, env, out, errout);
}

static void test_cli_end_to_end(void **state)
{
    struct fx *f = *state;
    const char *const pargs[] = {"--rows", "500", "--password", "pw", NULL};
    assert_int_equal(tu_portal_start(&f->portal, pargs), 0);
    struct tu_portal *p = &f->portal;
    char ca[600], cb[600], cc[600], da[600], db[600], dc[600];
    snprintf(ca, sizeof ca, "%s/a.toml", f->root);
    snprintf(cb, sizeof cb, "%s/b.toml", f->root);
    snprintf(cc, sizeof cc, "%s/c.toml", f->root);
    snprintf(da, sizeof da, "%s/a", f->root);
    snprintf(db, sizeof db, "%s/b", f->root);
    snprintf(dc, sizeof dc, "%s/c", f->root);
    write_config(ca, p->url, da);
    write_config(cb, p->url, db);
    write_config(cc, p->url, dc);
    char *out = NULL, *err = NULL;
    assert_int_equal(agent(ca, "--once", NULL, NULL, NULL, NULL, NULL), 0);
    assert_int_equal(agent(ca, "export", "--snapshot", f->file, NULL, &out, NULL), 0);
    assert_non_null(strstr(out, "2 tables, "));
    free(out);
    assert_int_equal(agent(cb, "import", f->file, NULL, NULL, &out, NULL), 0);
    assert_non_null(strstr(out, "imported snapshot"));
    free(out);
    /* Marks came along: the first pull on B is incremental, not a snapshot. */
    assert_int_equal(agent(cb, "sync", "tv_program", NULL, NULL, &out, NULL), 0);
    assert_non_null(strstr(out, "tv_program               incremental  incremental"));
    free(out);
    assert_int_equal(tu_admin(p, "/_fake/mutate", "{\"table\":\"tv_program\",\"updates\":20,\"inserts\":5,\"deletes\":3}"),
                     200);
    assert_int_equal(agent(ca, "sync", "tv_program", NULL, NULL, NULL, NULL), 0);
    assert_int_equal(agent(ca, "export", "--delta", "--base", f->file, &out, NULL), 2);
    free(out);
    const char *argv[] = {IA_AGENT_BIN, "--log-level", "warn", "-c", ca, "export", "--delta", "--base", f->file,
                          f->delta, NULL};
    const char *env[] = {"TEST_PW=pw", NULL};
    assert_int_equal(tu_run(argv, env, &out, &err), 0);
    assert_non_null(strstr(out, "delta "));
    free(out);
    free(err);
    /* B pulled on its own since the snapshot: the delta conflicts and is refused. */
    assert_int_equal(agent(cb, "import", f->delta, NULL, NULL, NULL, &err), 1);
    assert_non_null(strstr(err, "conflicts"));
    free(err);
    /* A fresh C: snapshot then delta equals A. */
    assert_int_equal(agent(cc, "import", f->file, NULL, NULL, NULL, NULL), 0);
    assert_int_equal(agent(cc, "import", f->delta, NULL, NULL, &out, NULL), 0);
    assert_non_null(strstr(out, "0 conflicts"));
    free(out);
    char *qa = NULL, *qc = NULL;
    assert_int_equal(agent(ca, "query", "--csv", "SELECT * FROM tv_program ORDER BY id", NULL, &qa, NULL), 0);
    assert_int_equal(agent(cc, "query", "--csv", "SELECT * FROM tv_program ORDER BY id", NULL, &qc, NULL), 0);
    assert_string_equal(qa, qc);
    free(qa);
    free(qc);
    /* Usage errors. */
    assert_int_equal(agent(ca, "export", NULL, NULL, NULL, NULL, &err), 2);
    assert_non_null(strstr(err, "give either --snapshot FILE or --delta --base BASE OUT"));
    free(err);
    assert_int_equal(agent(ca, "import", NULL, NULL, NULL, NULL, &err), 2);
    assert_non_null(strstr(err, "expected one FILE"));
    free(err);
    assert_int_equal(agent(ca, "import", "/nonexistent.iax", NULL, NULL, NULL, &err), 1);
    assert_non_null(strstr(err, "/nonexistent.iax"));
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_snapshot_into_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delta_brings_changes_and_deletions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delta_wrong_base_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delta_conflicts_counted_and_undone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delta_refused_on_layout_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delta_files_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hub, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damage_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_import_atomic_for_readers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_version_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_end_to_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox_stays_home, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
