/* pull_fixture.h — what the puller's tests share (test_pull.c, test_streams.c):
 * a fake portal keeping its data in a file (g_site: each test file starts its
 * own in its group setup), a fresh storage dir per test opened as the daemon
 * opens it (fx_open), the portal's file read directly (portal_int, portal_text),
 * the portal changed only through its API (portal_write, portal_admin), and the
 * checks: the cache's rows against the portal's (assert_same_rows), marks, and
 * the records journaled (journal_pages, assert_pages). Include after cmocka.h. */
#ifndef IA_TEST_PULL_FIXTURE_H
#define IA_TEST_PULL_FIXTURE_H
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/buf.h"
#include "agent/config/config.h"
#include "agent/portal/remote.h"
#include "agent/pull/pull.h"
#include "agent/pull/store.h"
#include "journal/journal.h"
#include "journal/rows.h"
#include "replay/replay.h"
#include "tests/harness/asserts.h"
#include "tests/harness/harness.h"
#include "tests/testutil.h"

#define CHANNEL_COLUMNS                                                                                     \
    "columns = [\"id\", \"name\", \"url\", \"epg_id\", \"logo\", \"is_tv\", \"is_radio\", \"sort_order\", " \
    "\"category_id\", \"languages\", \"params\", \"created_at\", \"updated_at\"]\n"
#define SUBSCRIBER_COLUMNS                                                                                   \
    "columns = [\"id\", \"username\", \"password_hash\", \"disabled\", \"balance\", \"email\", \"created_at\", " \
    "\"updated_at\", \"tags\", \"comment\"]\n"
#define PROGRAM_COLUMNS                                                                                      \
    "columns = [\"id\", \"created_at\", \"updated_at\", \"channel_id\", \"title\", \"description\", \"start\", " \
    "\"stop\", \"duration\", \"age_rating\", \"is_live\"]\n"
#define TERMINAL_COLUMNS                                                                                     \
    "columns = [\"id\", \"subscriber_id\", \"mac_addr\", \"model\", \"serial\", \"active\", \"created_at\", "   \
    "\"updated_at\", \"settings\"]\n"

static struct th_site g_site;           /* the fake portal and its file */
static int g_stores;                    /* storage dirs made so far: each test's is new */

struct fx {
    struct config cfg;
    struct store st;
    remote *rm;
    struct pull_ctx c;
    int open;
};

static inline int setup(void **state)
{
    *state = calloc(1, sizeof(struct fx));
    return *state ? 0 : -1;
}

static inline int teardown(void **state)
{
    struct fx *f = *state;
    if (f->open) {
        remote_free(f->rm);
        store_close(&f->st);
        config_free(&f->cfg);
    }
    /* every fault off, even when a test failed */
    tu_admin(&g_site.portal, "/_fake/faults", "{\"page_cap\":0,\"latency_ms\":0,\"error_rate\":0,\"reset_rate\":0,"
                                              "\"truncate_rate\":0,\"garbage_rate\":0,\"forbid\":[]}");
    free(f);
    return 0;
}

/* A fresh storage dir and these [[table]]s, opened as the daemon opens them;
 * remote_keys: more [remote] keys (retries: none unless they say so). */
static inline void fx_open_with(struct fx *f, const char *remote_keys, const char *tables)
{
    struct buf t = {0};
    char err[1024];
    buf_printf(&t, "[remote]\nurl = \"%s\"\nusername = \"admin\"\npassword_env = \"IA_PULL_PW\"\n%s\n"
                   "[storage]\ndir = \"%s/store-%d\"\n%s",
               g_site.portal.url, remote_keys, g_site.dir, ++g_stores, tables);
    if (config_parse("pull_fixture.toml", t.p, t.len, &f->cfg, err, sizeof err) != 0) fail_msg("config: %s", err);
    buf_free(&t);
    if (store_open(&f->cfg, 1, &f->st, err, sizeof err) != 0) fail_msg("store: %s", err);
    f->rm = remote_from_config(&f->cfg, err, sizeof err);
    if (!f->rm) fail_msg("remote: %s", err);
    f->open = 1;
    f->c = (struct pull_ctx){.cfg = &f->cfg, .remote = f->rm, .jw = f->st.jw, .rp = f->st.rp};
}

static inline void fx_open(struct fx *f, const char *tables) { fx_open_with(f, "retries = 0", tables); }

/* pull_table of table i, which must succeed. */
static inline void pull_ok(struct fx *f, int i, int full_snapshot, struct pull_result *r)
{
    if (pull_table(&f->c, &f->cfg.tables[i], full_snapshot, r) != 0)
        fail_msg("pulling %s: %s", f->cfg.tables[i].name, r->error);
}

static inline void table_state(struct fx *f, const char *name, struct replay_table *st)
{
    char err[512];
    if (replay_table_get(f->st.rp, name, st, err, sizeof err) != 0) fail_msg("%s: %s", name, err);
}

/* ---- the portal ---------------------------------------------------------------------- */

/* The first value of sql on the portal's file, as text ("" for NULL). */
static inline void portal_text(const char *sql, char *out, size_t n)
{
    sqlite3 *db;
    sqlite3_stmt *q;
    if (sqlite3_open_v2(g_site.portal_db, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
        fail_msg("%s on the portal: %s", sql, sqlite3_errmsg(db));
    if (sqlite3_step(q) != SQLITE_ROW) fail_msg("%s on the portal: no row", sql);
    const unsigned char *s = sqlite3_column_text(q, 0);
    snprintf(out, n, "%s", s ? (const char *)s : "");
    sqlite3_finalize(q);
    sqlite3_close(db);
}

static inline long long portal_int(const char *sql)
{
    char v[64];
    portal_text(sql, v, sizeof v);
    return strtoll(v, NULL, 10);
}


/* A JSONSQL write on the portal through the test's own remote. */
static inline void portal_write(struct fx *f, const char *method, const char *params)
{
    struct buf res = {0};
    char err[1024];
    if (remote_write(f->rm, method, params, &res, err, sizeof err) != REMOTE_OK)
        fail_msg("%s %s: %s", method, params, err);
    buf_free(&res);
}

static inline void portal_admin(const char *path, const char *body)
{
    if (tu_admin(&g_site.portal, path, body) != 200) fail_msg("%s %s refused", path, body);
}

/* ---- checks --------------------------------------------------------------------------- */

/* cache.db's `table` holds exactly the portal's rows where `where` holds (on
 * both sides): the same columns, the same count, and no row of one side
 * missing from the other, each value compared as quote() writes it. */
static inline void assert_same_rows(struct fx *f, const char *table, const char *where)
{
    sqlite3 *db;
    sqlite3_stmt *q;
    struct buf cols = {0}, pcols = {0}, sql = {0};
    if (sqlite3_open_v2(f->st.db_path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL) != SQLITE_OK)
        fail_msg("%s: %s", f->st.db_path, sqlite3_errmsg(db));
    sqlite3_busy_timeout(db, 10000);
    buf_printf(&sql, "ATTACH 'file:%s?mode=ro' AS p", g_site.portal_db);
    if (sqlite3_exec(db, sql.p, NULL, NULL, NULL) != SQLITE_OK) fail_msg("attach: %s", sqlite3_errmsg(db));
    const char *schemas[2] = {"main", "p"};
    struct buf *lists[2] = {&cols, &pcols};
    for (int s = 0; s < 2; s++) {
        buf_reset(&sql);
        buf_printf(&sql, "SELECT name FROM %s.pragma_table_info('%s') ORDER BY cid", schemas[s], table);
        assert_int_equal(sqlite3_prepare_v2(db, sql.p, -1, &q, NULL), SQLITE_OK);
        while (sqlite3_step(q) == SQLITE_ROW)
            buf_printf(lists[s], "%squote(\"%s\")", lists[s]->len ? ", " : "", sqlite3_column_text(q, 0));
        sqlite3_finalize(q);
    }
    if (!cols.len || strcmp(cols.p, pcols.p) != 0)
        fail_msg("%s: the cache's columns %s, the portal's %s", table, cols.len ? cols.p : "(none)", pcols.p);
    /* counts, then rows of either side missing from the other */
    long long n[4];
    for (int i = 0; i < 4; i++) {
        buf_reset(&sql);
        if (i < 2)
            buf_printf(&sql, "SELECT count(*) FROM %s.\"%s\" WHERE %s", schemas[i], table, where);
        else
            buf_printf(&sql, "SELECT count(*) FROM (SELECT %s FROM %s.\"%s\" WHERE %s EXCEPT SELECT %s FROM %s.\"%s\" "
                             "WHERE %s)", cols.p, schemas[i - 2], table, where, cols.p, schemas[3 - i], table, where);
        if (sqlite3_prepare_v2(db, sql.p, -1, &q, NULL) != SQLITE_OK || sqlite3_step(q) != SQLITE_ROW)
            fail_msg("%s: %s", sql.p, sqlite3_errmsg(db));
        n[i] = sqlite3_column_int64(q, 0);
        sqlite3_finalize(q);
    }
    if (n[0] != n[1] || n[2] || n[3]) {
        buf_reset(&sql);
        buf_printf(&sql, "SELECT %s FROM main.\"%s\" WHERE %s EXCEPT SELECT %s FROM p.\"%s\" WHERE %s LIMIT 1",
                   cols.p, table, where, cols.p, table, where);
        char first[400] = "";
        if (sqlite3_prepare_v2(db, sql.p, -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
            for (int c = 0; c < sqlite3_column_count(q); c++)
                snprintf(first + strlen(first), sizeof first - strlen(first), "%s%s", c ? "," : "",
                         (const char *)sqlite3_column_text(q, c));
        sqlite3_finalize(q);
        fail_msg("%s where %s: %lld rows cached, %lld on the portal; %lld cached rows not on the portal (first: %s), "
                 "%lld portal rows not cached", table, where, n[0], n[1], n[2], first, n[3]);
    }
    sqlite3_close(db);
    buf_free(&cols);
    buf_free(&pcols);
    buf_free(&sql);
}

/* The first value of sql on cache.db, as an integer. */
static inline long long cache_int(struct fx *f, const char *sql)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(replay_db(f->st.rp), sql, -1, &q, NULL) != SQLITE_OK || sqlite3_step(q) != SQLITE_ROW)
        fail_msg("%s on the cache: %s", sql, sqlite3_errmsg(replay_db(f->st.rp)));
    long long v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return v;
}

static inline void assert_null_value(const struct replay_value *v, const char *what)
{
    if (v->type != JOURNAL_NULL) fail_msg("%s: expected none, got a value of type %d", what, (int)v->type);
}

static inline void assert_int_value(const struct replay_value *v, long long want, const char *what)
{
    if (v->type != JOURNAL_INT || v->i != want)
        fail_msg("%s: expected %lld, got type %d value %lld", what, want, (int)v->type, (long long)v->i);
}

static inline void assert_text_value(const struct replay_value *v, const char *want, const char *what)
{
    if (v->type != JOURNAL_TEXT || v->n != strlen(want) || memcmp(v->s, want, v->n) != 0)
        fail_msg("%s: expected \"%s\", got type %d \"%.*s\"", what, want, (int)v->type, (int)v->n,
                 v->s ? v->s : "");
}

/* Rows of each record of `type` for `table` journaled from seq `from` on, into
 * rows[] (the first max of them); returns how many such records there are. */
static inline int journal_pages(struct fx *f, uint64_t from, int type, const char *table, uint32_t *rows, int max)
{
    struct journal_reader *rd;
    struct journal_record rec;
    char err[512];
    int n = 0, got;
    if (journal_reader_open(f->st.journal_dir, from, &rd, err, sizeof err) != 0) fail_msg("journal: %s", err);
    while ((got = journal_reader_next(rd, JOURNAL_SEQ_MAX, &rec, err, sizeof err)) == 1) {
        if (rec.type != type || strcmp(rec.table, table) != 0) continue;
        struct journal_page pg;
        if (journal_decode_page(type, rec.payload, rec.len, &pg, err, sizeof err) != 0) fail_msg("page: %s", err);
        if (n < max) rows[n] = pg.rows.nrows;
        n++;
    }
    journal_reader_close(rd);
    if (got < 0) fail_msg("journal: %s", err);
    return n;
}

/* The records of `type` journaled for table from `from` on hold `total` rows
 * in pages of `page` rows, the last one possibly shorter (none for 0 rows). */
static inline void assert_pages(struct fx *f, uint64_t from, int type, const char *table, uint64_t total, uint32_t page)
{
    uint32_t rows[1024];
    int n = journal_pages(f, from, type, table, rows, 1024);
    int want = (int)((total + page - 1) / page);
    if (n != want)
        fail_msg("%s: %d %s records for %llu rows, want %d (pages of %u)", table, n, journal_type_name(type),
                 (unsigned long long)total, want, page);
    for (int i = 0; i < n; i++) {
        uint32_t w = i + 1 < n ? page : (uint32_t)(total - (uint64_t)page * (uint64_t)(n - 1));
        if (rows[i] != w) fail_msg("%s: %s %d of %d has %u rows, want %u", table, journal_type_name(type), i + 1, n,
                                   rows[i], w);
    }
}

#endif
