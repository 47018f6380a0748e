/* bench_journal.c — journal figures on generated tv_program pages of 1000 rows:
 * row encoding rate, append throughput (MB/s of raw encoded rows) with one
 * fsync per batch and with one fsync per record, read+decode rows/s, and the
 * compression ratio, at zlib levels 1, 3, 6 and 9. One JSON line per figure on
 * stdout; progress on stderr.
 *
 * usage: bench_journal [--pages N] [--fsync-pages N] [--levels 1,3,6,9] [--dir D]
 *   --pages        pages per level for append/read/ratio (default 200 = 200,000 rows)
 *   --fsync-pages  pages per level for the fsync-per-record run (default 30)
 *   --dir          where to make the temp journal (default $IA_BENCH_DIR, else
 *                  /var/tmp: the real disk, not tmpfs)
 *
 * The rows (deterministic, fixed seed) imitate an EPG import: runs of 20-50
 * programmes of one channel with back-to-back start/stop times and one import
 * timestamp; titles from a pool of 400 (Latin and Cyrillic, some with an
 * episode number); descriptions 100-300 bytes, 15% NULL, half of the rest from
 * a pool of 500 (repeats, as series and news do), the rest fresh word sequences
 * from a 300-word vocabulary; age_rating 30% NULL. "raw" bytes are the encoded
 * uncompressed payloads (rows.c), i.e. what the ratio divides by.
 *
 * JOURNAL_DEFAULT_LEVEL (journal.h) is chosen from these figures: see the
 * report in docs/journal-format.md ("Compression level"). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/tvprogram.h"
#include "agent/base/clock.h"
#include "journal/journal.h"
#include "journal/rows.h"

#define ROWS_PER_PAGE 1000
#define NCOLS 11

struct pages {
    unsigned char **p;
    size_t *len;
    int n;
    uint64_t raw;
};

static void make_pages(struct pages *pg, int n, double *encode_rows_s)
{
    struct gen *g = malloc(sizeof *g);
    gen_init(g, 0x1234abcdULL);
    struct journal_payload pl = {0};
    char err[256];
    pg->p = calloc((size_t)n, sizeof *pg->p);
    pg->len = calloc((size_t)n, sizeof *pg->len);
    pg->n = n;
    pg->raw = 0;
    double t0 = clock_mono_s();
    for (int i = 0; i < n; i++) {
        journal_payload_snapshot_page(&pl, 1, NCOLS);
        for (int r = 0; r < ROWS_PER_PAGE; r++) gen_row(g, &pl);
        if (journal_payload_finish(&pl, err, sizeof err) != 0) {
            fprintf(stderr, "bench_journal: %s\n", err);
            exit(1);
        }
        pg->p[i] = malloc(pl.len);
        memcpy(pg->p[i], pl.p, pl.len);
        pg->len[i] = pl.len;
        pg->raw += pl.len;
    }
    /* Includes generating the values; an upper bound on the encoder's cost. */
    *encode_rows_s = (double)n * ROWS_PER_PAGE / (clock_mono_s() - t0);
    journal_payload_free(&pl);
    free(g);
}

static void rmrf_journal(const char *dir)
{
    uint64_t *segs;
    size_t n;
    char err[256], path[4200];
    if (journal_segments(dir, &segs, &n, err, sizeof err) == 0) {
        for (size_t i = 0; i < n; i++) {
            snprintf(path, sizeof path, "%s/%020" PRIu64 ".seg", dir, segs[i]);
            unlink(path);
        }
        free(segs);
    }
    rmdir(dir);
}

static void die(const char *what, const char *err)
{
    fprintf(stderr, "bench_journal: %s: %s\n", what, err);
    exit(1);
}

/* Append pages [0, n) at level; batch = one fsync at the end. Returns seconds. */
static double run_append(const char *dir, const struct pages *pg, int n, int level, int batch)
{
    rmrf_journal(dir);
    struct journal_opts o = {.dir = dir, .level = level};
    struct journal_writer *w;
    char err[512];
    if (journal_writer_open(&o, &w, err, sizeof err) != 0) die("open", err);
    double t0 = clock_mono_s();
    if (batch) journal_batch_begin(w);
    for (int i = 0; i < n; i++)
        if (journal_append(w, JOURNAL_SNAPSHOT_PAGE, "tv_program", pg->p[i], pg->len[i], NULL, err,
                           sizeof err) != 0)
            die("append", err);
    if (batch && journal_batch_commit(w, err, sizeof err) != 0) die("commit", err);
    double dt = clock_mono_s() - t0;
    journal_writer_close(w);
    return dt;
}

/* Read and decode every row; returns seconds, fills rows and stored bytes. */
static double run_read(const char *dir, uint64_t *rows, uint64_t *stored, uint64_t *checksum)
{
    struct journal_reader *r;
    struct journal_record rec;
    struct journal_page page;
    struct journal_value v[NCOLS];
    char err[512];
    uint64_t sum = 0;
    *rows = *stored = 0;
    double t0 = clock_mono_s();
    if (journal_reader_open(dir, 0, &r, err, sizeof err) != 0) die("reader", err);
    int rc;
    while ((rc = journal_reader_next(r, JOURNAL_SEQ_MAX, &rec, err, sizeof err)) == 1) {
        if (journal_decode_page(rec.type, rec.payload, rec.len, &page, err, sizeof err) != 0) die("decode", err);
        while ((rc = journal_rows_next(&page.rows, v, err, sizeof err)) == 1) {
            /* Touch every value as a binder would. */
            for (int c = 0; c < NCOLS; c++)
                sum += v[c].type == JOURNAL_INT ? (uint64_t)v[c].i : v[c].type == JOURNAL_TEXT ? v[c].n : 1;
            (*rows)++;
        }
        if (rc < 0) die("rows", err);
        *stored += rec.stored;
    }
    if (rc < 0) die("read", err);
    journal_reader_close(r);
    *checksum = sum;
    return clock_mono_s() - t0;
}

int main(int argc, char **argv)
{
    int pages = 200, fsync_pages = 30;
    const char *levels = "1,3,6,9", *base = getenv("IA_BENCH_DIR");
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--pages") && i + 1 < argc) pages = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--fsync-pages") && i + 1 < argc) fsync_pages = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--levels") && i + 1 < argc) levels = argv[++i];
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc) base = argv[++i];
        else {
            fprintf(stderr, "usage: bench_journal [--pages N] [--fsync-pages N] [--levels 1,3,6,9] [--dir D]\n");
            return 2;
        }
    }
    if (pages < 1 || fsync_pages < 0) {
        fprintf(stderr, "bench_journal: --pages must be >= 1 and --fsync-pages >= 0\n");
        return 2;
    }
    if (!base || !*base) base = "/var/tmp";
    char tmpl[4096], dir[4200];
    snprintf(tmpl, sizeof tmpl, "%s/bench_journal.XXXXXX", base);
    if (!mkdtemp(tmpl)) {
        perror("bench_journal: mkdtemp");
        return 1;
    }
    snprintf(dir, sizeof dir, "%s/journal", tmpl);
    int maxp = pages > fsync_pages ? pages : fsync_pages;
    struct pages pg;
    double enc;
    fprintf(stderr, "bench_journal: generating %d pages of %d rows in %s\n", maxp, ROWS_PER_PAGE, tmpl);
    make_pages(&pg, maxp, &enc);
    uint64_t raw = 0, fraw = 0;
    for (int i = 0; i < pages; i++) raw += pg.len[i];
    for (int i = 0; i < fsync_pages; i++) fraw += pg.len[i];
    printf("{\"bench\":\"journal_encode\",\"unit\":\"rows/s\",\"value\":%.0f,\"params\":{\"rows\":%d,"
           "\"raw_bytes_per_row\":%.1f}}\n", enc, maxp * ROWS_PER_PAGE,
           (double)pg.raw / ((double)maxp * ROWS_PER_PAGE));
    for (const char *l = levels; *l;) {
        int level = atoi(l);
        fprintf(stderr, "bench_journal: level %d\n", level);
        double dt = run_append(dir, &pg, pages, level, 1);
        printf("{\"bench\":\"journal_append\",\"unit\":\"MB/s\",\"value\":%.1f,\"params\":{\"level\":%d,"
               "\"fsync\":\"once_per_batch\",\"pages\":%d,\"rows_per_page\":%d,\"raw_bytes\":%" PRIu64 "}}\n",
               (double)raw / dt / 1e6, level, pages, ROWS_PER_PAGE, raw);
        uint64_t rows, stored, sum, best_rows = 0;
        double best = 1e30;
        for (int k = 0; k < 3; k++) {
            double rt = run_read(dir, &rows, &stored, &sum);
            if (rt < best) best = rt;
            best_rows = rows;
        }
        printf("{\"bench\":\"journal_read_decode\",\"unit\":\"rows/s\",\"value\":%.0f,\"params\":{\"level\":%d,"
               "\"rows\":%" PRIu64 ",\"checksum\":%" PRIu64 "}}\n", (double)best_rows / best, level, best_rows, sum);
        printf("{\"bench\":\"journal_ratio\",\"unit\":\"x\",\"value\":%.2f,\"params\":{\"level\":%d,"
               "\"raw_bytes\":%" PRIu64 ",\"stored_bytes\":%" PRIu64 "}}\n",
               (double)raw / (double)stored, level, raw, stored);
        if (fsync_pages > 0) {
            dt = run_append(dir, &pg, fsync_pages, level, 0);
            printf("{\"bench\":\"journal_append\",\"unit\":\"MB/s\",\"value\":%.1f,\"params\":{\"level\":%d,"
                   "\"fsync\":\"per_record\",\"pages\":%d,\"rows_per_page\":%d,\"records_per_s\":%.1f}}\n",
                   (double)fraw / dt / 1e6, level, fsync_pages, ROWS_PER_PAGE, fsync_pages / dt);
        }
        fflush(stdout);
        while (*l && *l != ',') l++;
        if (*l == ',') l++;
    }
    rmrf_journal(dir);
    rmdir(tmpl);
    for (int i = 0; i < maxp; i++) free(pg.p[i]);
    free(pg.p);
    free(pg.len);
    return 0;
}
