/* raw_insert.c — the raw prepared-INSERT loop (see raw_insert.h) and its
 * tv_program row source for benchmarks that have no journal of their own. */
#include "bench/raw_insert.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/base/clock.h"
#include "bench/tvprogram.h"
#include "journal/journal.h"
#include "journal/rows.h"

#define RAW_MAX_COLS 64
#define TVP_COLS 11
#define TVP_PAGE_ROWS 1000
#define TVP_PAGES 16 /* distinct rows cycled through: 16000, about 5 MB of payload */

void raw_insert_rm_db(const char *db_path)
{
    static const char *const suffix[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        char p[4300];
        snprintf(p, sizeof p, "%s%s", db_path, suffix[i]);
        unlink(p);
    }
}

static int exec_sql(sqlite3 *db, const char *path, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK) return 0;
    snprintf(err, errlen, "%s: %.80s: %s", path, sql, msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    return -1;
}

static int bind_row(sqlite3_stmt *ins, const struct journal_value *v, int ncols)
{
    int rc = SQLITE_OK;
    for (int c = 0; c < ncols && rc == SQLITE_OK; c++) {
        switch (v[c].type) {
        case JOURNAL_NULL: rc = sqlite3_bind_null(ins, c + 1); break;
        case JOURNAL_BOOL:
        case JOURNAL_INT: rc = sqlite3_bind_int64(ins, c + 1, v[c].i); break;
        case JOURNAL_REAL: rc = sqlite3_bind_double(ins, c + 1, v[c].d); break;
        default: rc = sqlite3_bind_text64(ins, c + 1, v[c].s, v[c].n, SQLITE_STATIC, SQLITE_UTF8); break;
        }
    }
    return rc;
}

int raw_insert_run(const char *db_path, const char *ddl, int ncols, raw_insert_source src, void *ctx,
                   uint64_t *rows, double *seconds, char *err, size_t errlen)
{
    if (ncols < 1 || ncols > RAW_MAX_COLS) {
        snprintf(err, errlen, "%s: %d columns (1..%d)", db_path, ncols, RAW_MAX_COLS);
        return -1;
    }
    raw_insert_rm_db(db_path);
    char sql[32 + 2 * RAW_MAX_COLS];
    int len = snprintf(sql, sizeof sql, "INSERT INTO tv_program VALUES (?");
    for (int c = 1; c < ncols; c++) len += snprintf(sql + len, sizeof sql - (size_t)len, ",?");
    snprintf(sql + len, sizeof sql - (size_t)len, ")");

    struct journal_value v[RAW_MAX_COLS];
    sqlite3 *db = NULL;
    sqlite3_stmt *ins = NULL, *cnt = NULL;
    uint64_t n = 0;
    int rc = -1, got;
    double t0 = clock_mono_s();
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", db_path, db ? sqlite3_errmsg(db) : "out of memory");
        goto out;
    }
    if (exec_sql(db, db_path, "PRAGMA journal_mode = WAL", err, errlen) != 0 ||
        exec_sql(db, db_path, "PRAGMA synchronous = NORMAL", err, errlen) != 0 ||
        exec_sql(db, db_path, ddl, err, errlen) != 0)
        goto out;
    if (sqlite3_prepare_v2(db, sql, -1, &ins, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s: %s", db_path, sql, sqlite3_errmsg(db));
        goto out;
    }
    if (exec_sql(db, db_path, "BEGIN", err, errlen) != 0) goto out;
    while ((got = src(ctx, v, err, errlen)) == 1) {
        if (bind_row(ins, v, ncols) != SQLITE_OK || sqlite3_step(ins) != SQLITE_DONE) {
            snprintf(err, errlen, "%s: insert of row %llu: %s", db_path, (unsigned long long)n + 1,
                     sqlite3_errmsg(db));
            goto out;
        }
        sqlite3_reset(ins);
        n++;
    }
    if (got < 0 || exec_sql(db, db_path, "COMMIT", err, errlen) != 0) goto out;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM tv_program", -1, &cnt, NULL) != SQLITE_OK ||
        sqlite3_step(cnt) != SQLITE_ROW || (uint64_t)sqlite3_column_int64(cnt, 0) != n) {
        snprintf(err, errlen, "%s: tv_program does not hold the %llu rows inserted", db_path,
                 (unsigned long long)n);
        goto out;
    }
    rc = 0;
out:
    sqlite3_finalize(cnt);
    sqlite3_finalize(ins);
    sqlite3_close(db);
    *rows = n;
    *seconds = clock_mono_s() - t0;
    return rc;
}

/* Generated rows, decoded once, handed out in a cycle with fresh ids. */
struct tvp_source {
    struct journal_payload pages[TVP_PAGES]; /* the decoded values point into these */
    struct journal_value *vals;              /* TVP_PAGES * TVP_PAGE_ROWS rows of TVP_COLS */
    uint64_t want, done;
};

static int tvp_next(void *ctx, struct journal_value *row, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    struct tvp_source *s = ctx;
    if (s->done == s->want) return 0;
    memcpy(row, s->vals + (s->done % (TVP_PAGES * TVP_PAGE_ROWS)) * TVP_COLS, TVP_COLS * sizeof *row);
    row[0].i = 10000000 + (int64_t)s->done++;   /* the key: unique across cycles */
    return 1;
}

static int tvp_prepare(struct tvp_source *s, char *err, size_t errlen)
{
    struct gen *g = malloc(sizeof *g);
    s->vals = malloc((size_t)TVP_PAGES * TVP_PAGE_ROWS * TVP_COLS * sizeof *s->vals);
    if (!g || !s->vals) {
        free(g);
        snprintf(err, errlen, "raw insert: out of memory for %d generated rows", TVP_PAGES * TVP_PAGE_ROWS);
        return -1;
    }
    gen_init(g, 0x1234abcdULL);
    int rc = 0;
    for (int p = 0; p < TVP_PAGES && rc == 0; p++) {
        struct journal_page pg;
        journal_payload_snapshot_page(&s->pages[p], 1, TVP_COLS);
        for (int i = 0; i < TVP_PAGE_ROWS; i++) gen_row(g, &s->pages[p]);
        rc = journal_payload_finish(&s->pages[p], err, errlen);
        if (rc == 0)
            rc = journal_decode_page(JOURNAL_SNAPSHOT_PAGE, s->pages[p].p, s->pages[p].len, &pg, err, errlen);
        for (int i = 0; i < TVP_PAGE_ROWS && rc == 0; i++) {
            struct journal_value *row = s->vals + ((size_t)p * TVP_PAGE_ROWS + (size_t)i) * TVP_COLS;
            int got = journal_rows_next(&pg.rows, row, err, errlen);
            if (got == 0) snprintf(err, errlen, "raw insert: generated page %d ends at row %d", p, i);
            if (got != 1) rc = -1;
        }
    }
    free(g);
    return rc;
}

int raw_insert_tvprogram(const char *db_path, const char *ddl, uint64_t rows, double *rows_per_s, char *err,
                         size_t errlen)
{
    struct tvp_source *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "raw insert: out of memory");
        return -1;
    }
    s->want = rows;
    uint64_t n = 0;
    double dt = 0;
    int rc = tvp_prepare(s, err, errlen);
    if (rc == 0) rc = raw_insert_run(db_path, ddl, TVP_COLS, tvp_next, s, &n, &dt, err, errlen);
    if (rc == 0) *rows_per_s = dt > 0 ? (double)n / dt : 0;
    raw_insert_rm_db(db_path);
    for (int p = 0; p < TVP_PAGES; p++) journal_payload_free(&s->pages[p]);
    free(s->vals);
    free(s);
    return rc;
}

long long raw_insert_count(const char *db_path)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    long long n = -1;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT count(*) FROM tv_program", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}
