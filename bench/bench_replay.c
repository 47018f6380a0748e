/* bench_replay.c — replay throughput: a journal of generated tv_program rows (a
 * snapshot in pages of 1000) applied by replay_apply() into an empty cache.db,
 * against a baseline that does the least any loader must: read and decode the
 * same journal records and INSERT the rows with one prepared statement in one
 * transaction into an identical empty table (same DDL, checked) in a fresh db
 * with the same pragmas (WAL, synchronous=NORMAL): the loop of
 * bench/raw_insert.c. Both are timed from opening the db to closing it (the
 * final checkpoint included). One JSON line per figure on stdout; progress on
 * stderr.
 *
 * usage: bench_replay [ROWS] [--rows N] [--repeat N] [--cursor] [--dir D]
 *   ROWS/--rows  rows in the snapshot (default 1000000)
 *   --repeat     runs of each side, best kept (default 1)
 *   --cursor     give the schema a cursor (updated_at), so replay also builds
 *                its (cursor, key) index after the load; the baseline does not
 *   --dir        where to make the temp dir (default $IA_BENCH_DIR, else
 *                /var/tmp: the real disk, not tmpfs)
 *
 * Rows imitate an EPG import as bench_journal.c does (fixed seed): runs of one
 * channel with back-to-back programmes, titles from a pool of 400 (Latin and
 * Cyrillic), descriptions 100-300 bytes, 15% NULL, age_rating 30% NULL. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/raw_insert.h"
#include "bench/tvprogram.h"
#include "agent/base/clock.h"
#include "journal/journal.h"
#include "journal/rows.h"
#include "replay/replay.h"
#include "tests/testutil.h"

#define ROWS_PER_PAGE 1000
#define NCOLS 11

static const char *const col_names[NCOLS] = {"id", "created_at", "updated_at", "channel_id", "title", "description",
                                             "start", "stop", "duration", "age_rating", "is_premiere"};
static const enum journal_coltype col_types[NCOLS] = {
    JOURNAL_COL_INT, JOURNAL_COL_TEXT, JOURNAL_COL_TEXT, JOURNAL_COL_INT, JOURNAL_COL_TEXT, JOURNAL_COL_TEXT,
    JOURNAL_COL_TEXT, JOURNAL_COL_TEXT, JOURNAL_COL_INT, JOURNAL_COL_INT, JOURNAL_COL_BOOL};

/* ---- helpers ------------------------------------------------------------------------- */

static void die(const char *what, const char *err)
{
    fprintf(stderr, "bench_replay: %s: %s\n", what, err);
    exit(1);
}

/* Journal: SCHEMA, BEGIN, pages, END. Returns raw payload bytes. */
static uint64_t write_journal(const char *dir, uint64_t rows, int cursor)
{
    struct journal_opts o = {.dir = dir};
    struct journal_writer *w;
    struct journal_payload pl = {0};
    char err[512];
    uint64_t raw = 0, begin;
    if (journal_writer_open(&o, &w, err, sizeof err) != 0) die("journal", err);
    journal_batch_begin(w);
    if (journal_payload_schema(&pl, NCOLS, col_names, col_types, 0, cursor ? 2 : -1, err, sizeof err) != 0 ||
        journal_append(w, JOURNAL_SCHEMA, "tv_program", pl.p, pl.len, NULL, err, sizeof err) != 0)
        die("schema", err);
    journal_payload_snapshot_begin(&pl, rows);
    if (journal_append(w, JOURNAL_SNAPSHOT_BEGIN, "tv_program", pl.p, pl.len, &begin, err, sizeof err) != 0)
        die("begin", err);
    struct gen *g = malloc(sizeof *g);
    gen_init(g, 0x1234abcdULL);
    for (uint64_t done = 0; done < rows;) {
        uint64_t n = rows - done < ROWS_PER_PAGE ? rows - done : ROWS_PER_PAGE;
        journal_payload_snapshot_page(&pl, begin, NCOLS);
        for (uint64_t i = 0; i < n; i++) gen_row(g, &pl);
        if (journal_payload_finish(&pl, err, sizeof err) != 0 ||
            journal_append(w, JOURNAL_SNAPSHOT_PAGE, "tv_program", pl.p, pl.len, NULL, err, sizeof err) != 0)
            die("page", err);
        raw += pl.len;
        done += n;
    }
    struct journal_value mk = {.type = JOURNAL_INT, .i = g->id - 1}, mc = {.type = JOURNAL_NULL};
    journal_payload_snapshot_end(&pl, begin, rows, &mc, &mk);
    if (journal_append(w, JOURNAL_SNAPSHOT_END, "tv_program", pl.p, pl.len, NULL, err, sizeof err) != 0 ||
        journal_batch_commit(w, err, sizeof err) != 0)
        die("end", err);
    journal_writer_close(w);
    journal_payload_free(&pl);
    free(g);
    return raw;
}

static char *table_sql(sqlite3 *db)
{
    sqlite3_stmt *st;
    char *s = NULL;
    if (sqlite3_prepare_v2(db, "SELECT sql FROM sqlite_master WHERE name = 'tv_program'", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        s = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return s;
}

static int64_t count(sqlite3 *db)
{
    sqlite3_stmt *st;
    int64_t n = -1;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM tv_program", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

/* replay_apply into a fresh cache.db: seconds; *ddl gets the table's SQL. */
static double run_replay(const char *jdir, const char *db, uint64_t rows, char **ddl)
{
    raw_insert_rm_db(db);
    struct replay_opts o = {.db_path = db, .journal_dir = jdir};
    struct replay *r;
    struct replay_stats st;
    char err[1024];
    double t0 = clock_mono_s();
    if (replay_open(&o, &r, err, sizeof err) != 0) die("replay_open", err);
    if (replay_apply(r, JOURNAL_SEQ_MAX, &st, err, sizeof err) != 0) die("replay_apply", err);
    int64_t n = count(replay_db(r));
    *ddl = table_sql(replay_db(r));
    replay_close(r);
    double dt = clock_mono_s() - t0;
    if (n != (int64_t)rows || st.rows_written != rows || st.snapshots != 1) {
        fprintf(stderr, "bench_replay: replay gave %" PRId64 " rows\n", n);
        exit(1);
    }
    return dt;
}

/* The baseline's rows: the snapshot pages of the journal, decoded in turn. */
struct journal_source {
    struct journal_reader *rd;
    struct journal_page pg;
    int in_page;                       /* pg.rows has rows left to hand out */
};

static int journal_next_row(void *ctx, struct journal_value *row, char *err, size_t errlen)
{
    struct journal_source *s = ctx;
    for (;;) {
        if (s->in_page) {
            int rc = journal_rows_next(&s->pg.rows, row, err, errlen);
            if (rc != 0) return rc;
            s->in_page = 0;
        }
        struct journal_record rec;
        int rc = journal_reader_next(s->rd, JOURNAL_SEQ_MAX, &rec, err, errlen);
        if (rc <= 0) return rc;
        if (rec.type != JOURNAL_SNAPSHOT_PAGE) continue;
        if (journal_decode_page(rec.type, rec.payload, rec.len, &s->pg, err, errlen) != 0) return -1;
        s->in_page = 1;
    }
}

/* The baseline: same records decoded, one INSERT statement, one transaction
 * (bench/raw_insert.c); the journal is read inside the clock. */
static double run_baseline(const char *jdir, const char *db, const char *ddl, uint64_t rows)
{
    char err[1024];
    struct journal_source src = {0};
    uint64_t n = 0;
    double dt = 0;
    if (journal_reader_open(jdir, 0, &src.rd, err, sizeof err) != 0) die("reader", err);
    if (raw_insert_run(db, ddl, NCOLS, journal_next_row, &src, &n, &dt, err, sizeof err) != 0)
        die("baseline", err);
    journal_reader_close(src.rd);
    if (n != rows) {
        fprintf(stderr, "bench_replay: baseline gave %" PRIu64 " rows\n", n);
        exit(1);
    }
    return dt;
}

int main(int argc, char **argv)
{
    uint64_t rows = 1000000;
    int repeat = 1, cursor = 0;
    const char *base = getenv("IA_BENCH_DIR");
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rows") && i + 1 < argc) rows = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--cursor")) cursor = 1;
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc) base = argv[++i];
        else if (argv[i][0] >= '0' && argv[i][0] <= '9') rows = strtoull(argv[i], NULL, 10);
        else {
            fprintf(stderr, "usage: bench_replay [ROWS] [--rows N] [--repeat N] [--cursor] [--dir D]\n");
            return 2;
        }
    }
    if (rows < 1 || repeat < 1) {
        fprintf(stderr, "bench_replay: rows and --repeat must be >= 1\n");
        return 2;
    }
    if (!base || !*base) base = "/var/tmp";
    char tmpl[4096], jdir[4200], db1[4200], db2[4200];
    snprintf(tmpl, sizeof tmpl, "%s/bench_replay.XXXXXX", base);
    if (!mkdtemp(tmpl)) {
        perror("bench_replay: mkdtemp");
        return 1;
    }
    snprintf(jdir, sizeof jdir, "%s/journal", tmpl);
    snprintf(db1, sizeof db1, "%s/cache.db", tmpl);
    snprintf(db2, sizeof db2, "%s/baseline.db", tmpl);
    fprintf(stderr, "bench_replay: journaling %" PRIu64 " rows in %s\n", rows, tmpl);
    double t0 = clock_mono_s();
    uint64_t raw = write_journal(jdir, rows, cursor);
    fprintf(stderr, "bench_replay: journal written in %.1f s (%.1f MB raw)\n", clock_mono_s() - t0, (double)raw / 1e6);
    double best_r = 1e30, best_b = 1e30;
    char *ddl = NULL;
    for (int k = 0; k < repeat; k++) {
        free(ddl);
        double dr = run_replay(jdir, db1, rows, &ddl);
        fprintf(stderr, "bench_replay: replay   %.2f s\n", dr);
        /* The baseline's table: the very DDL replay produced, minus nothing. */
        double db = run_baseline(jdir, db2, ddl, rows);
        fprintf(stderr, "bench_replay: baseline %.2f s\n", db);
        if (dr < best_r) best_r = dr;
        if (db < best_b) best_b = db;
    }
    double rr = (double)rows / best_r, rb = (double)rows / best_b;
    printf("{\"bench\":\"replay_apply\",\"unit\":\"rows/s\",\"value\":%.0f,\"params\":{\"rows\":%" PRIu64
           ",\"rows_per_page\":%d,\"columns\":%d,\"cursor_index\":%s,\"raw_bytes\":%" PRIu64 ",\"repeat\":%d}}\n",
           rr, rows, ROWS_PER_PAGE, NCOLS, cursor ? "true" : "false", raw, repeat);
    printf("{\"bench\":\"replay_baseline_insert\",\"unit\":\"rows/s\",\"value\":%.0f,\"params\":{\"rows\":%" PRIu64
           ",\"columns\":%d,\"transactions\":1,\"repeat\":%d}}\n",
           rb, rows, NCOLS, repeat);
    printf("{\"bench\":\"replay_vs_baseline\",\"unit\":\"ratio\",\"value\":%.3f,\"params\":{\"rows\":%" PRIu64
           ",\"target\":0.7,\"cursor_index\":%s}}\n",
           rr / rb, rows, cursor ? "true" : "false");
    fflush(stdout);
    free(ddl);
    raw_insert_rm_db(db1);
    raw_insert_rm_db(db2);
    char err[256];
    uint64_t *segs;
    size_t n;
    if (journal_segments(jdir, &segs, &n, err, sizeof err) == 0) {
        for (size_t i = 0; i < n; i++) {
            char p[4300];
            snprintf(p, sizeof p, "%s/%020" PRIu64 ".seg", jdir, segs[i]);
            unlink(p);
        }
        free(segs);
    }
    rmdir(jdir);
    rmdir(tmpl);
    return 0;
}
