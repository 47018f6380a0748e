/* test_journal.c — the journal library: lossless round trip of every record type
 * and edge value, the torn-tail rule at every byte offset, damage detection with
 * the exact "segment N offset M", version refusal, sequence continuity, following
 * a live writer, write failures (RLIMIT_FSIZE), durability bookkeeping, the
 * writer lock, retention, and the fuzz corpus seeds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "journal/format.h"
#include "journal/journal.h"
#include "journal/rows.h"
#include "tests/testutil.h"

/* ---- fixtures and helpers ----------------------------------------------------- */

struct fx {
    char *root;               /* temp dir, removed in teardown */
    char dir[512];            /* root/journal */
    char warn[2048];          /* warnings from the writer, newline-separated */
    int nwarn;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    f->root = tu_tmpdir("test_journal");
    assert_non_null(f->root);
    snprintf(f->dir, sizeof f->dir, "%s/journal", f->root);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
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

static struct journal_writer *wopen(struct fx *f, uint64_t segsize)
{
    struct journal_opts o = {.dir = f->dir, .segment_size = segsize, .level = 3,
                             .warn = on_warn, .warn_ctx = f};
    struct journal_writer *w;
    char err[512];
    if (journal_writer_open(&o, &w, err, sizeof err) != 0) fail_msg("writer open: %s", err);
    return w;
}

static void seg_path(const struct fx *f, uint64_t first, char *out, size_t n)
{
    jf_seg_path(out, n, f->dir, first);
}

/* Append a snapshot page of nrows rows (id, title) starting at id `base`. */
static uint64_t append_page(struct journal_writer *w, const char *table, int nrows, int64_t base)
{
    struct journal_payload pl = {0};
    char err[512], title[64];
    journal_payload_snapshot_page(&pl, 1, 2);
    for (int i = 0; i < nrows; i++) {
        journal_put_int(&pl, base + i);
        int n = snprintf(title, sizeof title, "title %lld", (long long)(base + i));
        journal_put_text(&pl, title, (size_t)n);
    }
    assert_int_equal(journal_payload_finish(&pl, err, sizeof err), 0);
    uint64_t seq;
    if (journal_append(w, JOURNAL_SNAPSHOT_PAGE, table, pl.p, pl.len, &seq, err, sizeof err) != 0)
        fail_msg("append: %s", err);
    journal_payload_free(&pl);
    return seq;
}

/* Read every record from `from`; returns how many, or -1 with err. seqs may be NULL. */
static int read_all(const char *dir, uint64_t from, uint64_t *seqs, int max, char *err, size_t errlen)
{
    struct journal_reader *r;
    if (journal_reader_open(dir, from, &r, err, errlen) != 0) return -1;
    struct journal_record rec;
    int n = 0, rc;
    while ((rc = journal_reader_next(r, JOURNAL_SEQ_MAX, &rec, err, errlen)) == 1) {
        if (seqs && n < max) seqs[n] = rec.seq;
        n++;
    }
    journal_reader_close(r);
    return rc < 0 ? -1 : n;
}

static void expect_damage(const char *dir, const char *expect)
{
    char err[512];
    int n = read_all(dir, 0, NULL, 0, err, sizeof err);
    if (n >= 0) fail_msg("read %d records, expected damage \"%s\"", n, expect);
    if (!strstr(err, expect)) fail_msg("error \"%s\" lacks \"%s\"", err, expect);
}

static off_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

static void xor_byte(const char *path, off_t off, unsigned char mask)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    unsigned char c;
    assert_int_equal(pread(fd, &c, 1, off), 1);
    c ^= mask;
    assert_int_equal(pwrite(fd, &c, 1, off), 1);
    close(fd);
}

static char *slurp(const char *path, size_t *n)
{
    char *p = tu_read_file(path, n);
    assert_non_null(p);
    return p;
}

static void spit(const char *path, const char *p, size_t n)
{
    assert_int_equal(tu_write_file(path, p, n), 0);
}

static int value_equal(const struct journal_value *a, const struct journal_value *b)
{
    if (a->type != b->type) return 0;
    switch (a->type) {
    case JOURNAL_NULL: return 1;
    case JOURNAL_BOOL:
    case JOURNAL_INT: return a->i == b->i;
    case JOURNAL_REAL: return memcmp(&a->d, &b->d, sizeof a->d) == 0;   /* bit for bit */
    case JOURNAL_TEXT:
    case JOURNAL_JSON: return a->n == b->n && (a->n == 0 || memcmp(a->s, b->s, a->n) == 0);
    }
    return 0;
}

/* ---- round trip ---------------------------------------------------------------- */

#define TEXT(lit) {.type = JOURNAL_TEXT, .s = lit, .n = sizeof lit - 1}
#define JSONV(lit) {.type = JOURNAL_JSON, .s = lit, .n = sizeof lit - 1}

static const struct journal_value edge[] = {
    {.type = JOURNAL_NULL},
    {.type = JOURNAL_BOOL, .i = 0},
    {.type = JOURNAL_BOOL, .i = 1},
    {.type = JOURNAL_INT, .i = 0},
    {.type = JOURNAL_INT, .i = -1},
    {.type = JOURNAL_INT, .i = 1},
    {.type = JOURNAL_INT, .i = INT64_MAX},
    {.type = JOURNAL_INT, .i = INT64_MIN},
    {.type = JOURNAL_INT, .i = 9007199254740993LL},        /* 2^53 + 1 */
    {.type = JOURNAL_INT, .i = -9007199254740993LL},
    {.type = JOURNAL_REAL, .d = 0.1},
    {.type = JOURNAL_REAL, .d = -0.0},
    {.type = JOURNAL_REAL, .d = DBL_MAX},
    {.type = JOURNAL_REAL, .d = -DBL_MAX},
    {.type = JOURNAL_REAL, .d = DBL_MIN},
    {.type = JOURNAL_REAL, .d = 4.9406564584124654e-324},   /* smallest subnormal */
    {.type = JOURNAL_REAL, .d = 1e21},
    {.type = JOURNAL_REAL, .d = 18446744073709551616.0},   /* 2^64: beyond int64 */
    TEXT(""),
    TEXT("plain"),
    TEXT("a\0b\0"),                                        /* embedded NULs */
    TEXT("Привет, мир — «ёлка» 😀 \xe2\x80\xa8"),
    TEXT("quote \" backslash \\ newline \n tab \t"),
    JSONV("[]"),
    JSONV("{}"),
    JSONV("[1,\"x\",{\"a\":[null,true]},9223372036854775807]"),
    JSONV("{\"ключ\":\"значение\"}"),
};
#define NEDGE (sizeof edge / sizeof edge[0])

static void test_roundtrip_values(void **state)
{
    struct fx *f = *state;
    struct journal_writer *w = wopen(f, 0);
    struct journal_payload pl = {0};
    char err[512];
    /* Every value once per row, in NEDGE rows rotated so each sits in every column. */
    journal_payload_snapshot_page(&pl, 77, NEDGE);
    for (size_t r = 0; r < NEDGE; r++)
        for (size_t c = 0; c < NEDGE; c++) journal_put_value(&pl, &edge[(r + c) % NEDGE]);
    assert_int_equal(journal_payload_finish(&pl, err, sizeof err), 0);
    uint64_t seq;
    assert_int_equal(journal_append(w, JOURNAL_SNAPSHOT_PAGE, "edge", pl.p, pl.len, &seq, err, sizeof err), 0);
    assert_int_equal(seq, 1);
    journal_writer_close(w);

    struct journal_reader *rd;
    assert_int_equal(journal_reader_open(f->dir, 0, &rd, err, sizeof err), 0);
    struct journal_record rec;
    assert_int_equal(journal_reader_next(rd, JOURNAL_SEQ_MAX, &rec, err, sizeof err), 1);
    assert_int_equal(rec.seq, 1);
    assert_int_equal(rec.type, JOURNAL_SNAPSHOT_PAGE);
    assert_string_equal(rec.table, "edge");
    assert_int_equal(rec.len, pl.len);
    assert_memory_equal(rec.payload, pl.p, pl.len);
    struct journal_page pg;
    assert_int_equal(journal_decode_page(rec.type, rec.payload, rec.len, &pg, err, sizeof err), 0);
    assert_int_equal(pg.snapshot_id, 77);
    assert_int_equal(pg.rows.ncols, NEDGE);
    assert_int_equal(pg.rows.nrows, NEDGE);
    struct journal_value vals[NEDGE];
    for (size_t r = 0; r < NEDGE; r++) {
        assert_int_equal(journal_rows_next(&pg.rows, vals, err, sizeof err), 1);
        for (size_t c = 0; c < NEDGE; c++)
            if (!value_equal(&vals[c], &edge[(r + c) % NEDGE])) fail_msg("row %zu col %zu differs", r, c);
        /* zero copy: text points into the payload the reader holds */
        for (size_t c = 0; c < NEDGE; c++)
            if (vals[c].type == JOURNAL_TEXT && vals[c].n)
                assert_true((const unsigned char *)vals[c].s >= rec.payload &&
                            (const unsigned char *)vals[c].s < rec.payload + rec.len);
    }
    assert_int_equal(journal_rows_next(&pg.rows, vals, err, sizeof err), 0);
    assert_int_equal(journal_reader_next(rd, JOURNAL_SEQ_MAX, &rec, err, sizeof err), 0);
    journal_reader_close(rd);
    journal_payload_free(&pl);
}

static void test_roundtrip_types(void **state)
{
    struct fx *f = *state;
    struct journal_writer *w = wopen(f, 0);
    struct journal_payload pl = {0};
    char err[512];
    const char *names[] = {"id", "updated_at", "price", "tags", "on", "x"};
    enum journal_coltype types[] = {JOURNAL_COL_INT, JOURNAL_COL_TEXT, JOURNAL_COL_REAL,
                                    JOURNAL_COL_JSON, JOURNAL_COL_BOOL, JOURNAL_COL_ANY};
    assert_int_equal(journal_payload_schema(&pl, 6, names, types, 0, 1, err, sizeof err), 0);
    assert_int_equal(journal_append(w, JOURNAL_SCHEMA, "t", pl.p, pl.len, NULL, err, sizeof err), 0);
    journal_payload_snapshot_begin(&pl, 1234);
    assert_int_equal(journal_payload_finish(&pl, err, sizeof err), 0);
    uint64_t sid;
    assert_int_equal(journal_append(w, JOURNAL_SNAPSHOT_BEGIN, "t", pl.p, pl.len, &sid, err, sizeof err), 0);
    journal_payload_snapshot_page(&pl, sid, 1);
    journal_put_int(&pl, 5);
    assert_int_equal(journal_payload_finish(&pl, err, sizeof err), 0);
    assert_int_equal(journal_append(w, JOURNAL_SNAPSHOT_PAGE, "t", pl.p, pl.len, NULL, err, sizeof err), 0);
    struct journal_value mc = TEXT("2024-01-02 03:04:05"), mk = {.type = JOURNAL_INT, .i = INT64_MAX};
    journal_payload_snapshot_end(&pl, sid, 1, &mc, &mk);
    assert_int_equal(journal_payload_finish(&pl, err, sizeof err), 0);
    assert_int_equal(journal_append(w, JOURNAL_SNAPSHOT_END, "t", pl.p, pl.len, NULL, err, sizeof err), 0);
    journal_payload_incremental_page(&pl, &mc, &mk, 2);
    journal_put_int(&pl, 6);
    journal_put_null(&pl);
    assert_int_equal(journal_payload_finish(&pl, err, sizeof err), 0);
    assert_int_equal(journal_append(w, JOURNAL_INCREMENTAL_PAGE, "t", pl.p, pl.len, NULL, err, sizeof err), 0);
    journal_payload_deletions(&pl, 1);
    journal_put_int(&pl, INT64_MIN);
    journal_put_text(&pl, "k\0", 2);
    assert_int_equal(journal_payload_finish(&pl, err, sizeof err), 0);
    assert_int_equal(journal_append(w, JOURNAL_DELETIONS, "t", pl.p, pl.len, NULL, err, sizeof err), 0);
    /* A type the decoders do not know still travels (room for later types). */
    assert_int_equal(journal_append(w, 200, "", "xyz", 3, NULL, err, sizeof err), 0);
    journal_writer_close(w);
    journal_payload_free(&pl);

    struct journal_reader *rd;
    struct journal_record rec;
    assert_int_equal(journal_reader_open(f->dir, 0, &rd, err, sizeof err), 0);

    assert_int_equal(journal_reader_next(rd, JOURNAL_SEQ_MAX, &rec, err, sizeof err), 1);
    assert_int_equal(rec.type, JOURNAL_SCHEMA);
    struct journal_schema s;
    assert_int_equal(journal_decode_schema(rec.payload, rec.len, &s, err, sizeof err), 0);
    assert_int_equal(s.ncols, 6);
    for (int i = 0; i < 6; i++) {
        assert_string_equal(s.cols[i].name, names[i]);
        assert_int_equal(s.cols[i].type, types[i]);
    }
    assert_int_equal(s.key_col, 0);
    assert_int_equal(s.cursor_col, 1);
    journal_schema_free(&s);

    assert_int_equal(journal_reader_next(rd, JOURNAL_SEQ_MAX, &rec, err, sizeof err), 1);
    assert_int_equal(rec.type, JOURNAL_SNAPSHOT_BEGIN);
    assert_int_equal(rec.seq, sid);
    uint64_t expected;
    assert_int_equal(journal_decode_snapshot_begin(rec.payload, rec.len, &expected, err, sizeof err), 0);
    assert_int_equal(expected, 1234);

    assert_int_equal(journal_reader_next(rd, JOURNAL_SEQ_MAX, &rec, err, sizeof err), 1);
    struct journal_page pg;
    struct journal_value v[2];
    assert_int_equal(journal_decode_page(rec.type, rec.payload, rec.len, &pg, err, sizeof err), 0);
    assert_int_equal(pg.snapshot_id, sid);
    assert_int_equal(journal_rows_next(&pg.rows, v, err, sizeof err), 1);
    assert_int_equal(v[0].i, 5);

    assert_int_equal(journal_reader_next(rd, JOURNAL_SEQ_MAX, &rec, err, sizeof err), 1);
    struct journal_snapshot_end e;
    assert_int_equal(journal_decode_snapshot_end(rec.payload, rec.len, &e, err, sizeof err), 0);
    assert_int_equal(e.snapshot_id, sid);
    assert_int_equal(e.row_count, 1);
    assert_true(value_equal(&e.mark_cursor, &mc));
    assert_true(value_equal(&e.mark_key, &mk));

    assert_int_equal(journal_reader_next(rd, JOURNAL_SEQ_MAX, &rec, err, sizeof err), 1);
    assert_int_equal(journal_decode_page(rec.type, rec.payload, rec.len, &pg, err, sizeof err), 0);
    assert_true(value_equal(&pg.mark_cursor, &mc));
    assert_true(value_equal(&pg.mark_key, &mk));
    assert_int_equal(journal_rows_next(&pg.rows, v, err, sizeof err), 1);
    assert_int_equal(v[0].i, 6);
    assert_int_equal(v[1].type, JOURNAL_NULL);
    assert_int_equal(journal_rows_next(&pg.rows, v, err, sizeof err), 0);

    assert_int_equal(journal_reader_next(rd, JOURNAL_SEQ_MAX, &rec, err, sizeof err), 1);
    assert_int_equal(rec.type, JOURNAL_DELETIONS);
    assert_int_equal(journal_decode_page(rec.type, rec.payload, rec.len, &pg, err, sizeof err), 0);
    assert_int_equal(pg.rows.nrows, 2);
    assert_int_equal(journal_rows_next(&pg.rows, v, err, sizeof err), 1);
    assert_true(v[0].type == JOURNAL_INT && v[0].i == INT64_MIN);
    assert_int_equal(journal_rows_next(&pg.rows, v, err, sizeof err), 1);
    assert_true(v[0].type == JOURNAL_TEXT && v[0].n == 2 && memcmp(v[0].s, "k\0", 2) == 0);

    assert_int_equal(journal_reader_next(rd, JOURNAL_SEQ_MAX, &rec, err, sizeof err), 1);
    assert_int_equal(rec.type, 200);
    assert_string_equal(rec.table, "");
    assert_int_equal(rec.len, 3);
    assert_memory_equal(rec.payload, "xyz", 3);
    assert_null(journal_type_name(200));
    assert_int_equal(journal_decode_page(200, rec.payload, rec.len, &pg, err, sizeof err), -1);
    assert_non_null(strstr(err, "record type 200 does not carry rows"));
    assert_int_equal(journal_reader_next(rd, JOURNAL_SEQ_MAX, &rec, err, sizeof err), 0);
    journal_reader_close(rd);
}

/* Encoder misuse and malformed payloads are refused with the payload offset. */
static void test_payload_errors(void **state)
{
    struct journal_payload pl = {0};
    char err[512];
    journal_payload_snapshot_page(&pl, 1, 3);
    journal_put_int(&pl, 1);
    assert_int_equal(journal_payload_finish(&pl, err, sizeof err), -1);
    assert_string_equal(err, "payload: 1 values do not make whole rows of 3 columns");
    journal_payload_snapshot_begin(&pl, 0);
    journal_put_int(&pl, 1);
    assert_int_equal(journal_payload_finish(&pl, err, sizeof err), -1);
    assert_string_equal(err, "payload: a value was put outside a rows block");
    journal_payload_deletions(&pl, 1);
    struct journal_value bad = {.type = (enum journal_vtype)42};
    journal_put_value(&pl, &bad);
    assert_int_equal(journal_payload_finish(&pl, err, sizeof err), -1);
    assert_string_equal(err, "payload: a value of unknown type");
    const char *names[] = {"a", ""};
    enum journal_coltype types[] = {JOURNAL_COL_INT, JOURNAL_COL_INT};
    assert_int_equal(journal_payload_schema(&pl, 2, names, types, -1, -1, err, sizeof err), -1);
    assert_string_equal(err, "schema: column 1 has an empty name or an unknown type");
    assert_int_equal(journal_payload_schema(&pl, 1, names, types, 1, -1, err, sizeof err), -1);
    assert_string_equal(err, "schema: key or cursor column index out of range");
    assert_int_equal(journal_payload_schema(&pl, 0, names, types, -1, -1, err, sizeof err), -1);
    assert_string_equal(err, "schema: 0 columns");
    journal_payload_snapshot_page(&pl, 1, JOURNAL_COLUMNS_MAX + 1);
    assert_int_equal(journal_payload_finish(&pl, err, sizeof err), -1);
    assert_string_equal(err, "payload: 32768 columns is over the limit of 32767");
    journal_payload_free(&pl);

    struct journal_page pg;
    struct journal_value v[4];
    /* rows block: ncols 1, nrows 1, then an unknown tag 9 */
    const unsigned char unknown_tag[] = {1, 1, 0, 0, 0, 1, 0, 0, 0, 9};
    assert_int_equal(journal_decode_page(JOURNAL_SNAPSHOT_PAGE, unknown_tag, sizeof unknown_tag, &pg, err, sizeof err), 0);
    assert_int_equal(journal_rows_next(&pg.rows, v, err, sizeof err), -1);
    assert_string_equal(err, "payload offset 9: unknown value tag");
    /* text length past the end */
    const unsigned char long_text[] = {1, 1, 0, 0, 0, 1, 0, 0, 0, 5, 10, 'a'};
    assert_int_equal(journal_decode_page(JOURNAL_SNAPSHOT_PAGE, long_text, sizeof long_text, &pg, err, sizeof err), 0);
    assert_int_equal(journal_rows_next(&pg.rows, v, err, sizeof err), -1);
    assert_string_equal(err, "payload offset 11: text runs past the end of the payload");
    /* a row count the bytes cannot hold */
    const unsigned char many[] = {1, 2, 0, 0, 0, 0xff, 0xff, 0, 0, 0};
    assert_int_equal(journal_decode_page(JOURNAL_SNAPSHOT_PAGE, many, sizeof many, &pg, err, sizeof err), -1);
    assert_string_equal(err, "payload offset 9: rows block claims more values than it has bytes");
    /* more columns than any table has, even with no rows */
    const unsigned char wide[] = {1, 0, 0, 1, 0, 0, 0, 0, 0};
    assert_int_equal(journal_decode_page(JOURNAL_SNAPSHOT_PAGE, wide, sizeof wide, &pg, err, sizeof err), -1);
    assert_string_equal(err, "payload offset 1: too many columns");
    /* trailing bytes after the last row */
    const unsigned char trailing[] = {1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0};
    assert_int_equal(journal_decode_page(JOURNAL_SNAPSHOT_PAGE, trailing, sizeof trailing, &pg, err, sizeof err), 0);
    assert_int_equal(journal_rows_next(&pg.rows, v, err, sizeof err), 1);
    assert_int_equal(journal_rows_next(&pg.rows, v, err, sizeof err), -1);
    assert_string_equal(err, "payload offset 10: trailing bytes");
    /* an 11-byte varint, and a 10th byte that overflows */
    const unsigned char longvar[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x81, 0x00};
    uint64_t x;
    assert_int_equal(journal_decode_snapshot_begin(longvar, sizeof longvar, &x, err, sizeof err), -1);
    assert_string_equal(err, "payload offset 10: varint overflows 64 bits");
    const unsigned char trunc[] = {0x80};
    assert_int_equal(journal_decode_snapshot_begin(trunc, sizeof trunc, &x, err, sizeof err), -1);
    assert_string_equal(err, "payload offset 1: truncated varint");
    /* snapshot end: truncated double in the mark */
    const unsigned char end[] = {1, 1, 4, 0, 0};
    struct journal_snapshot_end e;
    assert_int_equal(journal_decode_snapshot_end(end, sizeof end, &e, err, sizeof err), -1);
    assert_string_equal(err, "payload offset 3: truncated double");
    /* schema: unknown column type, NUL in a name */
    const unsigned char sch1[] = {1, 1, 'a', 9, 0, 0};
    struct journal_schema s;
    assert_int_equal(journal_decode_schema(sch1, sizeof sch1, &s, err, sizeof err), -1);
    assert_string_equal(err, "payload offset 3: unknown column type");
    const unsigned char sch2[] = {1, 2, 'a', 0, 1, 0, 0};
    assert_int_equal(journal_decode_schema(sch2, sizeof sch2, &s, err, sizeof err), -1);
    assert_string_equal(err, "payload offset 2: column name contains a NUL byte");
    const unsigned char sch3[] = {1, 1, 'a', 1, 2, 0};
    assert_int_equal(journal_decode_schema(sch3, sizeof sch3, &s, err, sizeof err), -1);
    assert_string_equal(err, "payload offset 6: key or cursor column out of range");
    assert_int_equal(journal_decode_page(JOURNAL_SCHEMA, sch3, sizeof sch3, &pg, err, sizeof err), -1);
    assert_string_equal(err, "record type 1 does not carry rows");
}

/* ---- append, segments, durability ------------------------------------------------ */

static void test_append_durable_and_batch(void **state)
{
    struct fx *f = *state;
    struct journal_writer *w = wopen(f, 1024);
    assert_int_equal(journal_writer_next_seq(w), 1);
    assert_int_equal(journal_writer_durable_seq(w), 0);
    assert_int_equal(append_page(w, "a", 5, 0), 1);
    assert_int_equal(journal_writer_durable_seq(w), 1);
    journal_batch_begin(w);
    /* Enough rows that the batch rolls over segments of 1 KiB. */
    for (int i = 0; i < 20; i++) append_page(w, "a", 50, i * 100);
    assert_int_equal(journal_writer_durable_seq(w), 1);
    assert_int_equal(journal_writer_next_seq(w), 22);
    /* An in-process follower bounded by the durable point sees only record 1. */
    struct journal_reader *r;
    struct journal_record rec;
    char err[512];
    assert_int_equal(journal_reader_open(f->dir, 0, &r, err, sizeof err), 0);
    assert_int_equal(journal_reader_next(r, journal_writer_durable_seq(w), &rec, err, sizeof err), 1);
    assert_int_equal(journal_reader_next(r, journal_writer_durable_seq(w), &rec, err, sizeof err), 0);
    assert_int_equal(journal_batch_commit(w, err, sizeof err), 0);
    assert_int_equal(journal_writer_durable_seq(w), 21);
    int n = 0;
    while (journal_reader_next(r, journal_writer_durable_seq(w), &rec, err, sizeof err) == 1) n++;
    assert_int_equal(n, 20);
    journal_reader_close(r);
    uint64_t *segs;
    size_t nsegs;
    assert_int_equal(journal_segments(f->dir, &segs, &nsegs, err, sizeof err), 0);
    assert_true(nsegs > 3);
    assert_int_equal(segs[0], 1);
    for (size_t i = 0; i + 1 < nsegs; i++) {
        char p[600];
        seg_path(f, segs[i], p, sizeof p);
        assert_true(file_size(p) <= 1024);
    }
    free(segs);
    journal_writer_close(w);
    /* Reopen continues the sequence; nothing was torn. */
    w = wopen(f, 1024);
    assert_int_equal(journal_writer_next_seq(w), 22);
    assert_int_equal(journal_writer_durable_seq(w), 21);
    assert_int_equal(f->nwarn, 0);
    journal_writer_close(w);
}

static void test_bad_append_and_lock(void **state)
{
    struct fx *f = *state;
    struct journal_writer *w = wopen(f, 0);
    char err[512], longname[300];
    memset(longname, 'x', 299);
    longname[299] = '\0';
    assert_int_equal(journal_append(w, 0, "t", "", 0, NULL, err, sizeof err), -1);
    assert_string_equal(err, "journal: bad record (type 0, table of 1 bytes, payload of 0 bytes)");
    assert_int_equal(journal_append(w, 3, longname, "", 0, NULL, err, sizeof err), -1);
    assert_string_equal(err, "journal: bad record (type 3, table of 299 bytes, payload of 0 bytes)");
    /* One writer per directory. */
    struct journal_opts o = {.dir = f->dir};
    struct journal_writer *w2;
    assert_int_equal(journal_writer_open(&o, &w2, err, sizeof err), JOURNAL_ELOCKED);
    char holder[64];
    snprintf(holder, sizeof holder, "another writer has it open (process %ld)", (long)getpid());
    assert_non_null(strstr(err, holder));      /* issue 11: name the holder */
    o.level = 10;
    assert_int_equal(journal_writer_open(&o, &w2, err, sizeof err), -1);
    assert_string_equal(err, "journal: compression level 10 is not in 1..9");
    /* An empty payload and an oversized record (own segment) are fine. */
    assert_int_equal(journal_append(w, JOURNAL_SNAPSHOT_BEGIN, "t", "", 0, NULL, err, sizeof err), 0);
    journal_writer_close(w);
    w = wopen(f, 600);
    append_page(w, "t", 1000, 0);                 /* > 600 bytes even compressed */
    append_page(w, "t", 1, 0);
    journal_writer_close(w);
    uint64_t *segs;
    size_t n;
    assert_int_equal(journal_segments(f->dir, &segs, &n, err, sizeof err), 0);
    assert_int_equal(n, 3);                        /* 1: the begin; 2: the big page; 3 */
    assert_int_equal(segs[1], 2);
    assert_int_equal(segs[2], 3);
    free(segs);
    assert_int_equal(read_all(f->dir, 0, NULL, 0, err, sizeof err), 3);
    /* Open fails cleanly on a directory that cannot be made. */
    o.dir = "/proc/no/such/journal";
    o.level = 0;
    assert_int_equal(journal_writer_open(&o, &w2, err, sizeof err), -1);
    assert_non_null(strstr(err, "journal /proc/no/such/journal: mkdir:"));
}

/* ---- torn tails -------------------------------------------------------------------- */

/* Cut the last record at every byte offset: the writer truncates exactly the
 * torn bytes with a warning, earlier records survive, and appending goes on. */
static void test_torn_tail_every_offset(void **state)
{
    struct fx *f = *state;
    struct journal_writer *w = wopen(f, 0);
    append_page(w, "t", 3, 0);
    append_page(w, "t", 3, 10);
    append_page(w, "t", 40, 20);
    journal_writer_close(w);
    char path[600], err[512];
    seg_path(f, 1, path, sizeof path);
    size_t full;
    char *orig = slurp(path, &full);
    /* offset of record 3 = end of record 2 */
    struct journal_reader *r;
    struct journal_record rec;
    assert_int_equal(journal_reader_open(f->dir, 0, &r, err, sizeof err), 0);
    for (int i = 0; i < 3; i++) assert_int_equal(journal_reader_next(r, JOURNAL_SEQ_MAX, &rec, err, sizeof err), 1);
    size_t last = (size_t)rec.offset;
    journal_reader_close(r);
    assert_true(full - last > 100);

    for (size_t cut = last; cut < full; cut++) {
        spit(path, orig, cut);
        /* A reader stops before the tail and says how much is pending. */
        assert_int_equal(journal_reader_open(f->dir, 0, &r, err, sizeof err), 0);
        int n = 0;
        while (journal_reader_next(r, JOURNAL_SEQ_MAX, &rec, err, sizeof err) == 1) n++;
        assert_int_equal(n, 2);
        uint64_t seg, off, pending;
        journal_reader_where(r, &seg, &off, &pending);
        assert_int_equal(seg, 1);
        assert_int_equal(off, last);
        assert_int_equal(pending, cut - last);
        journal_reader_close(r);

        f->warn[0] = '\0';
        f->nwarn = 0;
        w = wopen(f, 0);
        if (cut > last) {
            char expect[128];
            snprintf(expect, sizeof expect, "segment 1 offset %zu: torn tail of %zu bytes truncated\n",
                     last, cut - last);
            assert_string_equal(f->warn, expect);
        } else {
            assert_int_equal(f->nwarn, 0);
        }
        assert_int_equal(file_size(path), (off_t)last);
        assert_int_equal(append_page(w, "t", 2, 99), 3);
        journal_writer_close(w);
        uint64_t seqs[4];
        assert_int_equal(read_all(f->dir, 0, seqs, 4, err, sizeof err), 3);
        assert_int_equal(seqs[2], 3);
    }
    /* All-zero bytes after the last record (an extended, unwritten file) are a tail too. */
    spit(path, orig, full);
    char *zeros = calloc(1, 5000);
    char *grown = malloc(full + 5000);
    memcpy(grown, orig, full);
    memcpy(grown + full, zeros, 5000);
    spit(path, grown, full + 5000);
    assert_int_equal(read_all(f->dir, 0, NULL, 0, err, sizeof err), 3);
    f->warn[0] = '\0';
    w = wopen(f, 0);
    char expect[128];
    snprintf(expect, sizeof expect, "segment 1 offset %zu: torn tail of 5000 bytes truncated\n", full);
    assert_string_equal(f->warn, expect);
    assert_int_equal(journal_writer_next_seq(w), 4);
    journal_writer_close(w);
    free(zeros);
    free(grown);
    free(orig);
}

/* ---- damage ------------------------------------------------------------------------- */

/* Flip a bit in every byte of the segment header, of a middle record and of the
 * last record: each is damage at exactly that record's offset, never a tail. */
static void test_bit_flip_each_region(void **state)
{
    struct fx *f = *state;
    struct journal_writer *w = wopen(f, 0);
    append_page(w, "tv_program", 2, 0);
    append_page(w, "tv_program", 2, 10);
    append_page(w, "tv_program", 2, 20);
    journal_writer_close(w);
    char path[600], err[512];
    seg_path(f, 1, path, sizeof path);
    size_t full;
    char *orig = slurp(path, &full);
    uint64_t offs[3];
    size_t ends[3];
    struct journal_reader *r;
    struct journal_record rec;
    assert_int_equal(journal_reader_open(f->dir, 0, &r, err, sizeof err), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(journal_reader_next(r, JOURNAL_SEQ_MAX, &rec, err, sizeof err), 1);
        offs[i] = rec.offset;
        ends[i] = (size_t)(rec.offset + rec.stored);
    }
    journal_reader_close(r);
    assert_int_equal(ends[2], full);

    /* segment header */
    for (size_t b = 0; b < JF_SEG_HDR; b++) {
        spit(path, orig, full);
        xor_byte(path, (off_t)b, 0x04);
        expect_damage(f->dir, "segment 1 offset 0: ");
    }
    /* records 2 (middle) and 3 (last in the newest segment) */
    for (int k = 1; k < 3; k++) {
        char expect[64];
        snprintf(expect, sizeof expect, "segment 1 offset %llu: ", (unsigned long long)offs[k]);
        for (size_t b = (size_t)offs[k]; b < ends[k]; b++) {
            spit(path, orig, full);
            xor_byte(path, (off_t)b, 0x10);
            expect_damage(f->dir, expect);
            /* The writer refuses it too rather than truncating a complete record. */
            struct journal_opts o = {.dir = f->dir};
            struct journal_writer *w2;
            if (journal_writer_open(&o, &w2, err, sizeof err) == 0)
                fail_msg("writer opened over a flipped byte at %zu", b);
            assert_non_null(strstr(err, expect));
        }
    }
    /* The messages say what, region by region. */
    struct { size_t off; const char *what; } cases[] = {
        {0, "segment 1 offset 0: bad segment magic"},
        {28, "segment 1 offset 0: segment header checksum mismatch"},
        {(size_t)offs[1], "bad record magic"},
        {(size_t)offs[1] + 8, "record header checksum mismatch"},
        {(size_t)offs[1] + 28, "record checksum mismatch (seq 2)"},
        {(size_t)offs[1] + 32, "record checksum mismatch (seq 2)"},      /* table name */
        {ends[1] - 1, "record checksum mismatch (seq 2)"},              /* payload */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        spit(path, orig, full);
        xor_byte(path, (off_t)cases[i].off, 0x01);
        expect_damage(f->dir, cases[i].what);
    }
    free(orig);
}

/* Re-seal a record header in a file after changing its fields. */
static void reseal(const char *path, uint64_t off, void (*edit)(unsigned char *rec))
{
    size_t n;
    char *p = slurp(path, &n);
    unsigned char *rec = (unsigned char *)p + off;
    edit(rec);
    jf_rec_seal(rec, rec[5], jf_get64(rec + 8), rec[7], jf_get32(rec + 16), jf_get32(rec + 20));
    spit(path, p, n);
    free(p);
}

static void edit_seq(unsigned char *rec) { jf_put64(rec + 8, jf_get64(rec + 8) + 1); }
static void edit_raw_len(unsigned char *rec) { jf_put32(rec + 16, jf_get32(rec + 16) - 1); }
static void edit_nul_table(unsigned char *rec) { rec[JF_REC_HDR] = 0; }

static void test_unknown_version_and_resealed_damage(void **state)
{
    struct fx *f = *state;
    struct journal_writer *w = wopen(f, 0);
    append_page(w, "t", 2, 0);
    append_page(w, "t", 2, 10);
    journal_writer_close(w);
    char path[600];
    seg_path(f, 1, path, sizeof path);
    size_t full;
    char *orig = slurp(path, &full);
    /* Segment header of version 2 with a valid CRC. */
    char *v2 = malloc(full);
    memcpy(v2, orig, full);
    jf_put32((unsigned char *)v2 + 8, 2);
    jf_put32((unsigned char *)v2 + 28, (uint32_t)crc32(0, (unsigned char *)v2, 28));
    spit(path, v2, full);
    expect_damage(f->dir, "segment 1 offset 0: segment format version 2 is not supported (this reader knows version 1)");
    /* Record version 2 with a valid header CRC. */
    memcpy(v2, orig, full);
    unsigned char *r2 = (unsigned char *)v2 + JF_SEG_HDR;
    r2[4] = 2;
    jf_put32(r2 + 24, (uint32_t)crc32(0, r2, 24));
    spit(path, v2, full);
    expect_damage(f->dir, "segment 1 offset 32: record format version 2 is not supported (this reader knows version 1)");
    /* Valid CRCs but a sequence gap, a wrong raw length, a NUL in the table name. */
    spit(path, orig, full);
    reseal(path, JF_SEG_HDR, edit_seq);
    expect_damage(f->dir, "segment 1 offset 32: sequence gap: expected 1, found 2");
    spit(path, orig, full);
    reseal(path, JF_SEG_HDR, edit_raw_len);
    expect_damage(f->dir, "segment 1 offset 32: payload inflates to more than the");
    spit(path, orig, full);
    reseal(path, JF_SEG_HDR, edit_nul_table);
    expect_damage(f->dir, "segment 1 offset 32: table name contains a NUL byte (seq 1)");
    /* A segment whose header names another first seq than its file. */
    memcpy(v2, orig, full);
    jf_put64((unsigned char *)v2 + 16, 5);
    jf_put32((unsigned char *)v2 + 28, (uint32_t)crc32(0, (unsigned char *)v2, 28));
    spit(path, v2, full);
    expect_damage(f->dir, "segment 1 offset 0: segment header says first seq 5 but the file is named for 1");
    free(v2);
    free(orig);
}

static void test_sequence_gap_and_incomplete_old_segment(void **state)
{
    struct fx *f = *state;
    struct journal_writer *w = wopen(f, 1);        /* one record per segment */
    for (int i = 0; i < 6; i++) append_page(w, "t", 10, i * 10);
    journal_writer_close(w);
    char err[512];
    uint64_t *segs;
    size_t n;
    assert_int_equal(journal_segments(f->dir, &segs, &n, err, sizeof err), 0);
    assert_int_equal(n, 6);
    char p1[600], p2[600];
    seg_path(f, segs[0], p1, sizeof p1);
    seg_path(f, segs[1], p2, sizeof p2);
    /* A record cut short in a segment that is not the newest is damage. */
    size_t len;
    char *orig = slurp(p1, &len);
    spit(p1, orig, len - 3);
    char expect[200];
    snprintf(expect, sizeof expect, "segment 1 offset 32: incomplete record (%zu bytes) in a segment that is not the newest",
             len - 3 - 32);
    expect_damage(f->dir, expect);
    spit(p1, orig, len);
    /* A missing middle segment is a gap. */
    assert_int_equal(unlink(p2), 0);
    snprintf(expect, sizeof expect, "segment %llu offset 0: sequence gap: expected 2, segment starts at %llu",
             (unsigned long long)segs[2], (unsigned long long)segs[2]);
    expect_damage(f->dir, expect);
    /* Reading from before the oldest segment is refused once records are gone. */
    assert_int_equal(unlink(p1), 0);
    assert_int_equal(read_all(f->dir, 1, NULL, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "seq 1 is no longer in the journal (oldest segment starts at 3)"));
    assert_int_equal(read_all(f->dir, 4, NULL, 0, err, sizeof err), 3);
    free(orig);
    free(segs);
}

static void test_reader_from_seq(void **state)
{
    struct fx *f = *state;
    struct journal_writer *w = wopen(f, 400);
    for (int i = 0; i < 12; i++) append_page(w, "t", 8, i * 10);
    journal_writer_close(w);
    char err[512];
    uint64_t seqs[16];
    for (uint64_t from = 1; from <= 13; from++) {
        int n = read_all(f->dir, from, seqs, 16, err, sizeof err);
        assert_int_equal(n, 13 - (int)from);
        if (n) assert_int_equal(seqs[0], from);
    }
    assert_int_equal(read_all(f->dir, 0, seqs, 16, err, sizeof err), 12);
    /* An empty or missing journal has no records, and is no error. */
    assert_int_equal(read_all("/nonexistent/journal", 0, NULL, 0, err, sizeof err), 0);
}

/* A follower that keeps its place opens the next reader there; a place that no
 * longer holds (a wrong seq, a segment compacted away) falls back to a full open,
 * and either way the same records come through. */
static void test_reader_open_at(void **state)
{
    struct fx *f = *state;
    struct journal_writer *w = wopen(f, 400);
    for (int i = 0; i < 12; i++) append_page(w, "t", 8, i * 10);
    journal_writer_close(w);
    char err[512];
    struct journal_reader *r;
    struct journal_record rec;
    struct journal_place at[14];
    assert_int_equal(journal_reader_open(f->dir, 1, &r, err, sizeof err), 0);
    for (int i = 1; i <= 13; i++) {
        journal_reader_place(r, &at[i]);
        assert_int_equal(at[i].seq, (uint64_t)i);
        assert_int_equal(journal_reader_next(r, JOURNAL_SEQ_MAX, &rec, err, sizeof err), i <= 12);
        /* At a segment's end the place is that end, and the record the next segment's first. */
        if (i <= 12 && rec.segment == at[i].segment) assert_int_equal(rec.offset, at[i].offset);
    }
    journal_reader_close(r);
    for (int i = 1; i <= 13; i++) {
        /* At the place, and from a place whose offset points at another record. */
        for (int lie = 0; lie < 2; lie++) {
            struct journal_place p = at[i];
            if (lie) p.offset = at[i == 1 ? 2 : 1].offset;
            assert_int_equal(journal_reader_open_at(f->dir, &p, &r, err, sizeof err), 0);
            for (int want = i; want <= 12; want++) {
                assert_int_equal(journal_reader_next(r, JOURNAL_SEQ_MAX, &rec, err, sizeof err), 1);
                assert_int_equal(rec.seq, (uint64_t)want);
            }
            assert_int_equal(journal_reader_next(r, JOURNAL_SEQ_MAX, &rec, err, sizeof err), 0);
            journal_reader_close(r);
        }
    }
    /* The place's segment gone: the fallback names what is missing. */
    uint64_t *segs;
    size_t n;
    assert_int_equal(journal_segments(f->dir, &segs, &n, err, sizeof err), 0);
    assert_true(n >= 3);
    char path[600];
    seg_path(f, segs[0], path, sizeof path);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(journal_reader_open_place(f->dir, &at[1], &r, err, sizeof err), 1);   /* no fallback */
    assert_null(r);
    assert_int_equal(journal_reader_open_place(f->dir, &at[12], &r, err, sizeof err), 0);
    journal_reader_close(r);
    assert_int_equal(journal_reader_open_at(f->dir, &at[1], &r, err, sizeof err), -1);
    assert_null(r);
    assert_non_null(strstr(err, "seq 1 is no longer in the journal"));
    assert_int_equal(journal_reader_open_at(f->dir, &at[12], &r, err, sizeof err), 0);
    assert_int_equal(journal_reader_next(r, JOURNAL_SEQ_MAX, &rec, err, sizeof err), 1);
    assert_int_equal(rec.seq, 12);
    journal_reader_close(r);
    free(segs);
}

/* ---- following a live writer ---------------------------------------------------------- */

static void test_follow_live_writer(void **state)
{
    struct fx *f = *state;
    char err[512];
    struct journal_reader *r;
    struct journal_record rec;
    /* The reader starts before any segment exists. */
    assert_int_equal(journal_reader_open(f->dir, 0, &r, err, sizeof err), 0);
    assert_int_equal(journal_reader_next(r, JOURNAL_SEQ_MAX, &rec, err, sizeof err), 0);
    struct journal_writer *w = wopen(f, 500);
    for (int i = 0; i < 30; i++) {
        uint64_t s = append_page(w, "t", 5 + i % 7, i * 10);
        assert_int_equal(journal_reader_next(r, JOURNAL_SEQ_MAX, &rec, err, sizeof err), 1);
        assert_int_equal(rec.seq, s);
        assert_int_equal(journal_reader_next(r, JOURNAL_SEQ_MAX, &rec, err, sizeof err), 0);
    }
    /* A record written in two halves (a write in progress) is waited for. */
    journal_writer_close(w);
    uint64_t *segs;
    size_t n;
    assert_int_equal(journal_segments(f->dir, &segs, &n, err, sizeof err), 0);
    char path[600];
    seg_path(f, segs[n - 1], path, sizeof path);
    free(segs);
    size_t before;
    char *b = slurp(path, &before);
    w = wopen(f, 1 << 20);
    append_page(w, "t", 3, 1000);
    journal_writer_close(w);
    size_t after;
    char *a = slurp(path, &after);
    spit(path, a, before + (after - before) / 2);
    assert_int_equal(journal_reader_next(r, JOURNAL_SEQ_MAX, &rec, err, sizeof err), 0);
    uint64_t seg, off, pending;
    journal_reader_where(r, &seg, &off, &pending);
    assert_int_equal(pending, (after - before) / 2);
    spit(path, a, after);
    assert_int_equal(journal_reader_next(r, JOURNAL_SEQ_MAX, &rec, err, sizeof err), 1);
    assert_int_equal(rec.seq, 31);
    journal_reader_close(r);
    free(a);
    free(b);
}

/* A writer in another process appends while this one reads; every record comes
 * through once, in order, across segment rolls. */
static void test_follow_writer_process(void **state)
{
    struct fx *f = *state;
    enum { N = 400 };
    char err[512];
    mkdir(f->dir, 0755);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct journal_opts o = {.dir = f->dir, .segment_size = 2048};
        struct journal_writer *w;
        if (journal_writer_open(&o, &w, err, sizeof err) != 0) _exit(3);
        struct journal_payload pl = {0};
        for (int i = 0; i < N; i++) {
            journal_payload_snapshot_page(&pl, 1, 1);
            journal_put_int(&pl, i);
            if (journal_payload_finish(&pl, err, sizeof err) != 0) _exit(4);
            if (journal_append(w, JOURNAL_SNAPSHOT_PAGE, "t", pl.p, pl.len, NULL, err, sizeof err) != 0) _exit(5);
        }
        journal_payload_free(&pl);
        journal_writer_close(w);
        _exit(0);
    }
    struct journal_reader *r;
    struct journal_record rec;
    assert_int_equal(journal_reader_open(f->dir, 0, &r, err, sizeof err), 0);
    int got = 0, rc;
    while (got < N) {
        rc = journal_reader_next(r, JOURNAL_SEQ_MAX, &rec, err, sizeof err);
        if (rc < 0) fail_msg("follower: %s", err);
        if (rc == 0) {
            sched_yield();
            continue;
        }
        assert_int_equal(rec.seq, (uint64_t)got + 1);
        struct journal_page pg;
        struct journal_value v;
        assert_int_equal(journal_decode_page(rec.type, rec.payload, rec.len, &pg, err, sizeof err), 0);
        assert_int_equal(journal_rows_next(&pg.rows, &v, err, sizeof err), 1);
        assert_int_equal(v.i, got);
        got++;
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(journal_reader_next(r, JOURNAL_SEQ_MAX, &rec, err, sizeof err), 0);
    journal_reader_close(r);
}

/* ---- write failures -------------------------------------------------------------------- */

/* Incompressible bytes, so the record is as large as the payload. */
static void noise(unsigned char *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (unsigned char)(seed >> 16);
    }
}

static int set_fsize(rlim_t cur)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_FSIZE, &rl) != 0) return -1;
    rl.rlim_cur = cur;
    return setrlimit(RLIMIT_FSIZE, &rl);
}

static void test_write_failure_fsize(void **state)
{
    struct fx *f = *state;
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;
    sigaction(SIGXFSZ, &ign, &old);
    struct rlimit saved;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
    unsigned char big[3000];
    noise(big, sizeof big, 7);
    char err[512], path[600];
    struct journal_writer *w = wopen(f, 1 << 20);
    assert_int_equal(journal_append(w, 200, "t", big, 100, NULL, err, sizeof err), 0);
    seg_path(f, 1, path, sizeof path);
    off_t good = file_size(path);

    /* The record would cross the limit: write() stops part way, then EFBIG. */
    assert_int_equal(set_fsize((rlim_t)good + 1000), 0);
    int rc = journal_append(w, 200, "t", big, sizeof big, NULL, err, sizeof err);
    assert_int_equal(set_fsize(saved.rlim_cur), 0);
    assert_int_equal(rc, -1);
    char expect[200];
    snprintf(expect, sizeof expect, "segment 1 offset %lld: writing record 2 (", (long long)good);
    assert_non_null(strstr(err, expect));
    assert_non_null(strstr(err, strerror(EFBIG)));
    /* Nothing of it stayed behind; a reader sees only record 1. */
    assert_int_equal(file_size(path), good);
    assert_int_equal(read_all(f->dir, 0, NULL, 0, err, sizeof err), 1);
    /* After recovery the same writer goes on with seq 2. */
    uint64_t seq;
    assert_int_equal(journal_append(w, 200, "t", big, sizeof big, &seq, err, sizeof err), 0);
    assert_int_equal(seq, 2);
    assert_int_equal(journal_writer_durable_seq(w), 2);
    journal_writer_close(w);

    /* Creating the next segment fails: no segment appears, and a later append works. */
    w = wopen(f, 1);                           /* every record rolls */
    assert_int_equal(set_fsize(10), 0);
    rc = journal_append(w, 200, "t", big, 10, NULL, err, sizeof err);
    assert_int_equal(set_fsize(saved.rlim_cur), 0);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, "segment 3: creating "));
    uint64_t *segs;
    size_t n;
    assert_int_equal(journal_segments(f->dir, &segs, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    free(segs);
    assert_int_equal(journal_append(w, 200, "t", big, 10, &seq, err, sizeof err), 0);
    assert_int_equal(seq, 3);
    journal_writer_close(w);
    assert_int_equal(read_all(f->dir, 0, NULL, 0, err, sizeof err), 3);
    /* The reopened writer finds nothing to truncate. */
    w = wopen(f, 1 << 20);
    assert_int_equal(f->nwarn, 0);
    assert_int_equal(journal_writer_next_seq(w), 4);
    journal_writer_close(w);
    sigaction(SIGXFSZ, &old, NULL);
}

/* Injected I/O failures: ops listed in `fail` fail with `err`, after `skip`
 * calls of them have gone through, `times` times. */
struct faults {
    const char *fail;
    int err, skip, times;
};

static int fault_cb(void *ctx, const char *op)
{
    struct faults *fl = ctx;
    if (!fl->fail || !strstr(fl->fail, op)) return 0;
    if (fl->skip > 0) {
        fl->skip--;
        return 0;
    }
    if (fl->times <= 0) return 0;
    fl->times--;
    return fl->err;
}

static int wopen_faults(struct fx *f, uint64_t segsize, struct faults *fl, struct journal_writer **w,
                        char *err, size_t errlen)
{
    struct journal_opts o = {.dir = f->dir, .segment_size = segsize, .warn = on_warn, .warn_ctx = f,
                             .fault = fault_cb, .fault_ctx = fl};
    return journal_writer_open(&o, w, err, errlen);
}

static int count_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        n += len > 8 && strcmp(e->d_name + len - 8, ".seg.tmp") == 0;
    }
    closedir(d);
    return n;
}

static void test_writer_faults(void **state)
{
    struct fx *f = *state;
    char err[512], path[600], expect[300];
    unsigned char big[2000];
    noise(big, sizeof big, 3);
    struct journal_writer *w;
    uint64_t seq;
    seg_path(f, 1, path, sizeof path);

    /* ENOSPC half way through a record: cut back, and the next append goes on. */
    struct faults fl = {.fail = "write", .err = ENOSPC, .skip = 1, .times = 1};
    assert_int_equal(wopen_faults(f, 0, &fl, &w, err, sizeof err), 0);
    assert_int_equal(journal_append(w, 200, "t", big, 100, NULL, err, sizeof err), 0);
    off_t good = file_size(path);
    assert_int_equal(journal_append(w, 200, "t", big, sizeof big, NULL, err, sizeof err), -1);
    snprintf(expect, sizeof expect, "segment 1 offset %lld: writing record 2 (", (long long)good);
    assert_non_null(strstr(err, expect));
    assert_non_null(strstr(err, strerror(ENOSPC)));
    assert_null(strstr(err, "broken"));
    assert_int_equal(file_size(path), good);
    assert_int_equal(journal_append(w, 200, "t", big, sizeof big, &seq, err, sizeof err), 0);
    assert_int_equal(seq, 2);
    journal_writer_close(w);

    /* The write fails and so does the truncate: broken until reopened, and the
     * reopen truncates the half record as a torn tail. */
    good = file_size(path);
    fl = (struct faults){.fail = "write ftruncate", .err = EIO, .times = 2};
    assert_int_equal(wopen_faults(f, 0, &fl, &w, err, sizeof err), 0);
    assert_int_equal(journal_append(w, 200, "t", big, sizeof big, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "; the writer is broken"));
    assert_true(file_size(path) > good);
    assert_int_equal(journal_append(w, 200, "t", big, 10, NULL, err, sizeof err), -1);
    assert_string_equal(err, "journal writer is broken (ftruncate after a failed write: Input/output error): reopen it");
    assert_int_equal(journal_batch_commit(w, err, sizeof err), -1);
    assert_non_null(strstr(err, "journal writer is broken"));
    journal_writer_close(w);
    f->warn[0] = '\0';
    w = wopen(f, 0);
    snprintf(expect, sizeof expect, "segment 1 offset %lld: torn tail of ", (long long)good);
    assert_non_null(strstr(f->warn, expect));
    assert_int_equal(file_size(path), good);
    assert_int_equal(journal_writer_next_seq(w), 3);
    journal_writer_close(w);

    /* fdatasync fails: at open, then on an append (written, not durable: broken),
     * then on a batch commit. */
    fl = (struct faults){.fail = "fdatasync", .err = EIO, .times = 1};
    assert_int_equal(wopen_faults(f, 0, &fl, &w, err, sizeof err), -1);
    assert_string_equal(err, "segment 1: fdatasync: Input/output error");
    fl = (struct faults){.fail = "fdatasync", .err = EIO, .skip = 1, .times = 1};
    assert_int_equal(wopen_faults(f, 0, &fl, &w, err, sizeof err), 0);
    assert_int_equal(journal_append(w, 200, "t", big, 10, &seq, err, sizeof err), -1);
    assert_string_equal(err, "segment 1: record 3: fdatasync: Input/output error");
    assert_int_equal(journal_writer_durable_seq(w), 2);
    assert_int_equal(journal_append(w, 200, "t", big, 10, NULL, err, sizeof err), -1);
    assert_string_equal(err, "journal writer is broken (fdatasync: Input/output error): reopen it");
    journal_writer_close(w);
    fl = (struct faults){.fail = "fdatasync", .err = EIO, .skip = 1, .times = 1};
    assert_int_equal(wopen_faults(f, 0, &fl, &w, err, sizeof err), 0);
    assert_int_equal(journal_writer_next_seq(w), 4);      /* record 3 was written */
    journal_batch_begin(w);
    assert_int_equal(journal_append(w, 200, "t", big, 10, NULL, err, sizeof err), 0);
    assert_int_equal(journal_batch_commit(w, err, sizeof err), -1);
    assert_string_equal(err, "segment 1: batch commit: fdatasync: Input/output error");
    assert_int_equal(journal_writer_durable_seq(w), 3);
    journal_writer_close(w);

    /* Rolling inside a batch syncs the old segment first; its failure breaks.
     * (Syncs let through: the open's, and the new segment header's.) */
    fl = (struct faults){.fail = "fdatasync", .err = EIO, .skip = 2, .times = 1};
    assert_int_equal(wopen_faults(f, 1, &fl, &w, err, sizeof err), 0);
    journal_batch_begin(w);
    assert_int_equal(journal_append(w, 200, "t", big, 10, NULL, err, sizeof err), 0);   /* seq 5, segment 5 */
    assert_int_equal(journal_append(w, 200, "t", big, 10, NULL, err, sizeof err), -1);
    assert_string_equal(err, "segment 5: fdatasync: Input/output error");
    journal_writer_close(w);

    /* A segment that cannot be renamed into place leaves no temp file behind. */
    fl = (struct faults){.fail = "rename", .err = EACCES, .times = 1};
    assert_int_equal(wopen_faults(f, 1, &fl, &w, err, sizeof err), 0);
    assert_int_equal(journal_append(w, 200, "t", big, 10, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "segment 6: creating "));
    assert_non_null(strstr(err, strerror(EACCES)));
    assert_int_equal(count_tmp(f->dir), 0);
    assert_int_equal(journal_append(w, 200, "t", big, 10, &seq, err, sizeof err), 0);
    assert_int_equal(seq, 6);
    journal_writer_close(w);

    /* The directory fsync after a rename fails: broken. */
    fl = (struct faults){.fail = "fsync_dir", .err = EIO, .times = 1};
    assert_int_equal(wopen_faults(f, 1, &fl, &w, err, sizeof err), 0);
    assert_int_equal(journal_append(w, 200, "t", big, 10, NULL, err, sizeof err), -1);
    assert_string_equal(err, "segment 7: fsync of the journal directory: Input/output error");
    assert_int_equal(journal_append(w, 200, "t", big, 10, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "journal writer is broken (fsync of the journal directory"));
    journal_writer_close(w);

    /* Segment 7 exists with no record: the next writer reuses it. */
    w = wopen(f, 1 << 20);
    assert_int_equal(journal_append(w, 200, "t", big, 10, &seq, err, sizeof err), 0);
    assert_int_equal(seq, 7);
    journal_writer_close(w);
    assert_int_equal(read_all(f->dir, 0, NULL, 0, err, sizeof err), 7);

    /* A torn tail that cannot be truncated stops the open. */
    seg_path(f, 7, path, sizeof path);
    size_t n;
    char *p = slurp(path, &n);
    spit(path, p, n - 1);
    fl = (struct faults){.fail = "ftruncate", .err = EIO, .times = 1};
    assert_int_equal(wopen_faults(f, 0, &fl, &w, err, sizeof err), -1);
    assert_string_equal(err, "segment 7 offset 32: truncating a torn tail: Input/output error");
    free(p);

    /* A temp file left by a crash during segment creation is removed on open. */
    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s/.00000000000000000099.seg.tmp", f->dir);
    spit(tmp, "x", 1);
    assert_int_equal(count_tmp(f->dir), 1);
    w = wopen(f, 0);
    assert_int_equal(count_tmp(f->dir), 0);
    journal_writer_close(w);
}

/* ---- retention ------------------------------------------------------------------------- */

static void append_type(struct journal_writer *w, int type, const char *table, uint64_t sid)
{
    struct journal_payload pl = {0};
    char err[512];
    const char *names[] = {"id"};
    enum journal_coltype types[] = {JOURNAL_COL_INT};
    if (type == JOURNAL_SCHEMA) {
        assert_int_equal(journal_payload_schema(&pl, 1, names, types, 0, -1, err, sizeof err), 0);
    } else if (type == JOURNAL_SNAPSHOT_BEGIN) {
        journal_payload_snapshot_begin(&pl, 0);
    } else if (type == JOURNAL_SNAPSHOT_END) {
        journal_payload_snapshot_end(&pl, sid, 1, NULL, NULL);
    } else {
        journal_payload_snapshot_page(&pl, sid, 1);
        journal_put_int(&pl, 1);
    }
    assert_int_equal(journal_payload_finish(&pl, err, sizeof err), 0);
    if (journal_append(w, type, table, pl.p, pl.len, NULL, err, sizeof err) != 0) fail_msg("%s", err);
    journal_payload_free(&pl);
}

/* Schema, begin, page, end for a table; the begin's seq is the snapshot id. */
static void snapshot(struct journal_writer *w, const char *table)
{
    append_type(w, JOURNAL_SCHEMA, table, 0);
    uint64_t sid = journal_writer_next_seq(w);
    append_type(w, JOURNAL_SNAPSHOT_BEGIN, table, 0);
    append_type(w, JOURNAL_SNAPSHOT_PAGE, table, sid);
    append_type(w, JOURNAL_SNAPSHOT_END, table, sid);
}

static void test_compact_rules(void **state)
{
    struct fx *f = *state;
    char err[512];
    struct journal_compact_result res;
    /* segment_size 1: each record gets its own segment, so seq == segment. */
    struct journal_writer *w = wopen(f, 1);
    snapshot(w, "a");                           /* 1..4 */
    snapshot(w, "b");                           /* 5..8 */
    snapshot(w, "a");                           /* 9..12 */
    append_type(w, JOURNAL_SNAPSHOT_BEGIN, "b", 0);  /* 13: an unfinished snapshot of b */
    journal_writer_close(w);

    /* Nothing applied: nothing goes. */
    assert_int_equal(journal_compact(f->dir, 0, 0, &res, err, sizeof err), 0);
    assert_int_equal(res.deleted, 0);
    assert_int_equal(res.kept, 13);
    assert_string_equal(res.reason, "segment 1 holds seq 1..1, applied position is 0");
    /* Applied up to 6: a's first snapshot (1..4) is superseded; b (5..) has no later one. */
    assert_int_equal(journal_compact(f->dir, 6, 0, &res, err, sizeof err), 0);
    assert_int_equal(res.deleted, 4);
    assert_int_equal(res.kept, 9);
    assert_string_equal(res.reason, "segment 5: table b has no schema record after seq 5");
    assert_string_equal(res.table, "b");        /* what a daemon re-bases to unblock it */
    assert_true(res.freed > 4 * JF_SEG_HDR);
    uint64_t seqs[16];
    assert_int_equal(read_all(f->dir, 5, seqs, 16, err, sizeof err), 9);
    /* retain keeps young segments even when applied and superseded. */
    w = wopen(f, 1);
    snapshot(w, "b");                           /* 14..17 */
    snapshot(w, "a");                           /* 18..21 */
    journal_writer_close(w);
    assert_int_equal(journal_compact(f->dir, 100, 3600 * 1000, &res, err, sizeof err), 0);
    assert_int_equal(res.deleted, 0);
    assert_string_equal(res.reason, "segment 5 was last written 0s ago, retain is 3600s");
    assert_string_equal(res.table, "");
    /* Applied 15: 5..13 go (b's later snapshot begins at 15 > 13); 14 is b's schema,
     * whose table's latest schema is 14 itself: kept. */
    assert_int_equal(journal_compact(f->dir, 15, 0, &res, err, sizeof err), 0);
    assert_int_equal(res.deleted, 9);
    assert_string_equal(res.reason, "segment 14: table b has no schema record after seq 14");
    w = wopen(f, 1);
    snapshot(w, "a");
    snapshot(w, "b");                           /* 22..29 */
    journal_writer_close(w);
    assert_int_equal(journal_compact(f->dir, 1000, 0, &res, err, sizeof err), 0);
    assert_int_equal(res.deleted, 8);
    assert_string_equal(res.reason, "segment 22: table a has no schema record after seq 22");
    assert_int_equal(journal_compact(f->dir, 1000, 0, &res, err, sizeof err), 0);
    assert_int_equal(res.deleted, 0);
    /* Damage stops compaction before anything is deleted. */
    char path[600];
    seg_path(f, 29, path, sizeof path);
    xor_byte(path, 40, 1);
    assert_int_equal(journal_compact(f->dir, 1000, 0, &res, err, sizeof err), -1);
    assert_string_equal(err, "segment 29 offset 32: record header checksum mismatch");
    uint64_t *segs;
    size_t n;
    assert_int_equal(journal_segments(f->dir, &segs, &n, err, sizeof err), 0);
    assert_int_equal(segs[0], 22);
    free(segs);
    /* The newest segment is never deleted, however far applied goes. */
    char dir2[600];
    snprintf(dir2, sizeof dir2, "%s/j2", f->root);
    struct journal_opts o = {.dir = dir2};
    assert_int_equal(journal_writer_open(&o, &w, err, sizeof err), 0);
    snapshot(w, "a");
    journal_writer_close(w);
    assert_int_equal(journal_compact(dir2, 1000, 0, &res, err, sizeof err), 0);
    assert_int_equal(res.deleted, 0);
    assert_int_equal(res.kept, 1);
    assert_string_equal(res.reason, "segment 1 is the newest");
    /* An empty journal compacts to nothing. */
    snprintf(dir2, sizeof dir2, "%s/none", f->root);
    assert_int_equal(journal_compact(dir2, 1000, 0, &res, err, sizeof err), 0);
    assert_int_equal(res.kept, 0);
    assert_string_equal(res.reason, "the journal is empty");
}

/* An op record and an op_state of table `table`. */
static void append_op(struct journal_writer *w, const char *table)
{
    struct journal_payload pl = {0};
    char err[512];
    struct journal_op op = {.kind = JOURNAL_OP_UPDATE, .params = "{}", .nparams = 2, .answer = "1", .nanswer = 1};
    assert_int_equal(journal_payload_op(&pl, &op, err, sizeof err), 0);
    assert_int_equal(journal_payload_finish(&pl, err, sizeof err), 0);
    if (journal_append(w, JOURNAL_OP, table, pl.p, pl.len, NULL, err, sizeof err) != 0) fail_msg("%s", err);
    journal_payload_free(&pl);
}

static void append_op_state(struct journal_writer *w, const char *table, uint64_t id, int state)
{
    struct journal_payload pl = {0};
    char err[512];
    struct journal_op_state_rec s = {.op_id = id, .state = state, .message = "", .nmessage = 0};
    assert_int_equal(journal_payload_op_state(&pl, &s, err, sizeof err), 0);
    assert_int_equal(journal_payload_finish(&pl, err, sizeof err), 0);
    if (journal_append(w, JOURNAL_OP_STATE, table, pl.p, pl.len, NULL, err, sizeof err) != 0) fail_msg("%s", err);
    journal_payload_free(&pl);
}

/* docs/outbox.md, Bounds: the segment of an open op's record stays, however
 * many later snapshots supersede its table; once the op ends it may go. */
static void test_compact_open_op(void **state)
{
    struct fx *f = *state;
    char err[512];
    struct journal_compact_result res;
    struct journal_writer *w = wopen(f, 1);
    snapshot(w, "a");                           /* 1..4 */
    append_op(w, "a");                          /* 5: op 5, open */
    snapshot(w, "a");                           /* 6..9 */
    snapshot(w, "a");                           /* 10..13 */
    append_op_state(w, "a", 5, JOURNAL_OPS_SENDING);   /* 14: still open */
    append_op_state(w, "b", 5, JOURNAL_OPS_DONE);      /* 15: another table's: replay refuses it */
    journal_writer_close(w);
    assert_int_equal(journal_compact(f->dir, 1000, 0, &res, err, sizeof err), 0);
    assert_int_equal(res.deleted, 4);
    assert_string_equal(res.reason, "segment 5 holds the op record of open op 5 (table a)");
    assert_string_equal(res.table, "");
    assert_int_equal(journal_compact(f->dir, 1000, 0, &res, err, sizeof err), 0);
    assert_int_equal(res.deleted, 0);
    /* The applied position still bounds first. */
    assert_int_equal(journal_compact(f->dir, 4, 0, &res, err, sizeof err), 0);
    assert_string_equal(res.reason, "segment 5 holds seq 5..5, applied position is 4");
    /* The op ends: its segment and a's superseded snapshot go. */
    w = wopen(f, 1);
    append_op_state(w, "a", 5, JOURNAL_OPS_CONFLICT);  /* 16 */
    journal_writer_close(w);
    assert_int_equal(journal_compact(f->dir, 1000, 0, &res, err, sizeof err), 0);
    assert_int_equal(res.deleted, 5);
    assert_string_equal(res.reason, "segment 10: table a has no schema record after seq 10");
}

/* ---- fuzz corpus seeds -------------------------------------------------------------------- */

/* tests/fuzz/corpus/journal/ is made by this test: run it with IA_REGEN_CORPUS=1
 * to rewrite the seeds. Input format of fuzz_journal: first byte 'S' then a
 * whole segment file, or a type byte then a raw payload. Each seed < 4 KiB. */
static void test_fuzz_corpus_seeds(void **state)
{
    struct fx *f = *state;
    struct journal_writer *w = wopen(f, 0);
    struct journal_payload pl = {0};
    char err[512];
    struct { const char *name; int type; size_t len; unsigned char *p; } seeds[9];
    int ns = 0;
    const char *names[] = {"id", "title"};
    enum journal_coltype types[] = {JOURNAL_COL_INT, JOURNAL_COL_TEXT};
    assert_int_equal(journal_payload_schema(&pl, 2, names, types, 0, -1, err, sizeof err), 0);
    seeds[ns].name = "payload_schema"; seeds[ns].type = JOURNAL_SCHEMA;
    seeds[ns].len = pl.len; seeds[ns].p = malloc(pl.len); memcpy(seeds[ns++].p, pl.p, pl.len);
    assert_int_equal(journal_append(w, JOURNAL_SCHEMA, "t", pl.p, pl.len, NULL, err, sizeof err), 0);
    journal_payload_snapshot_page(&pl, 2, 4);
    for (size_t i = 0; i < NEDGE; i++) journal_put_value(&pl, &edge[i]);
    journal_put_null(&pl);
    assert_int_equal(journal_payload_finish(&pl, err, sizeof err), 0);
    seeds[ns].name = "payload_page"; seeds[ns].type = JOURNAL_SNAPSHOT_PAGE;
    seeds[ns].len = pl.len; seeds[ns].p = malloc(pl.len); memcpy(seeds[ns++].p, pl.p, pl.len);
    assert_int_equal(journal_append(w, JOURNAL_SNAPSHOT_PAGE, "t", pl.p, pl.len, NULL, err, sizeof err), 0);
    struct journal_value rfrom = {.type = JOURNAL_INT, .i = -7};
    journal_payload_snapshot_range(&pl, 2, &rfrom, NULL, 1);
    journal_put_int(&pl, 5);
    assert_int_equal(journal_payload_finish(&pl, err, sizeof err), 0);
    seeds[ns].name = "payload_range"; seeds[ns].type = JOURNAL_SNAPSHOT_RANGE;
    seeds[ns].len = pl.len; seeds[ns].p = malloc(pl.len); memcpy(seeds[ns++].p, pl.p, pl.len);
    assert_int_equal(journal_append(w, JOURNAL_SNAPSHOT_RANGE, "t", pl.p, pl.len, NULL, err, sizeof err), 0);
    struct journal_value mc = TEXT("2024-05-06 07:08:09"), mk = {.type = JOURNAL_INT, .i = -5};
    journal_payload_snapshot_end(&pl, 2, 4, &mc, &mk);
    assert_int_equal(journal_payload_finish(&pl, err, sizeof err), 0);
    seeds[ns].name = "payload_end"; seeds[ns].type = JOURNAL_SNAPSHOT_END;
    seeds[ns].len = pl.len; seeds[ns].p = malloc(pl.len); memcpy(seeds[ns++].p, pl.p, pl.len);
    assert_int_equal(journal_append(w, JOURNAL_SNAPSHOT_END, "t", pl.p, pl.len, NULL, err, sizeof err), 0);
    journal_payload_incremental_page(&pl, &mc, &mk, 1);
    journal_put_double(&pl, 0.5);
    assert_int_equal(journal_payload_finish(&pl, err, sizeof err), 0);
    seeds[ns].name = "payload_incremental"; seeds[ns].type = JOURNAL_INCREMENTAL_PAGE;
    seeds[ns].len = pl.len; seeds[ns].p = malloc(pl.len); memcpy(seeds[ns++].p, pl.p, pl.len);
    assert_int_equal(journal_append(w, JOURNAL_INCREMENTAL_PAGE, "t", pl.p, pl.len, NULL, err, sizeof err), 0);
    static const unsigned char cs[] = {0x54, 0x02, 0x01, 0x74, 0x00, 0x12, 0x00, 0x03, 0x02, 0x00, 0x09, 0x05};
    struct journal_op op = {.kind = JOURNAL_OP_UPDATE, .params = "{\"update\":\"t\"}", .nparams = 14,
                            .changeset = cs, .nchangeset = sizeof cs, .answer = "1", .nanswer = 1};
    assert_int_equal(journal_payload_op(&pl, &op, err, sizeof err), 0);
    seeds[ns].name = "payload_op"; seeds[ns].type = JOURNAL_OP;
    seeds[ns].len = pl.len; seeds[ns].p = malloc(pl.len); memcpy(seeds[ns++].p, pl.p, pl.len);
    uint64_t op_seq;
    assert_int_equal(journal_append(w, JOURNAL_OP, "t", pl.p, pl.len, &op_seq, err, sizeof err), 0);
    struct journal_op_state_rec ost = {.op_id = op_seq, .state = JOURNAL_OPS_REJECTED, .message = "bad value",
                                       .nmessage = 9};
    assert_int_equal(journal_payload_op_state(&pl, &ost, err, sizeof err), 0);
    seeds[ns].name = "payload_op_state"; seeds[ns].type = JOURNAL_OP_STATE;
    seeds[ns].len = pl.len; seeds[ns].p = malloc(pl.len); memcpy(seeds[ns++].p, pl.p, pl.len);
    assert_int_equal(journal_append(w, JOURNAL_OP_STATE, "t", pl.p, pl.len, NULL, err, sizeof err), 0);
    journal_writer_close(w);
    journal_payload_free(&pl);

    char path[600];
    seg_path(f, 1, path, sizeof path);
    size_t seglen;
    char *seg = slurp(path, &seglen);
    assert_true(seglen + 1 < 4096);
    const char *regen = getenv("IA_REGEN_CORPUS");
    char out[1024];
    snprintf(out, sizeof out, "%s/tests/fuzz/corpus/journal", IA_SOURCE_DIR);
    if (regen && *regen) {
        char file[1200];
        char *buf = malloc(seglen + 1);
        buf[0] = 'S';
        memcpy(buf + 1, seg, seglen);
        snprintf(file, sizeof file, "%s/segment_all_types", out);
        spit(file, buf, seglen + 1);
        snprintf(file, sizeof file, "%s/segment_torn_tail", out);
        spit(file, buf, seglen + 1 - 7);
        free(buf);
        for (int i = 0; i < ns; i++) {
            char *pb = malloc(seeds[i].len + 1);
            pb[0] = (char)seeds[i].type;
            memcpy(pb + 1, seeds[i].p, seeds[i].len);
            snprintf(file, sizeof file, "%s/%s", out, seeds[i].name);
            spit(file, pb, seeds[i].len + 1);
            free(pb);
        }
    }
    /* The committed seeds exist, are small, and the whole segment one reads clean. */
    const char *committed[] = {"segment_all_types", "segment_torn_tail", "payload_schema", "payload_page", "payload_range",
                               "payload_end", "payload_incremental", "payload_op", "payload_op_state"};
    for (size_t i = 0; i < sizeof committed / sizeof committed[0]; i++) {
        char file[1200];
        snprintf(file, sizeof file, "%s/%s", out, committed[i]);
        size_t n;
        char *p = tu_read_file(file, &n);
        if (!p) fail_msg("missing fuzz seed %s (run this test with IA_REGEN_CORPUS=1)", file);
        assert_true(n > 1 && n < 4096);
        if (i == 0) {
            assert_int_equal(p[0], 'S');
            spit(path, p + 1, n - 1);
            assert_int_equal(read_all(f->dir, 0, NULL, 0, err, sizeof err), 7);
        }
        free(p);
    }
    for (int i = 0; i < ns; i++) free(seeds[i].p);
    free(seg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roundtrip_types, setup, teardown),
        cmocka_unit_test(test_payload_errors),
        cmocka_unit_test_setup_teardown(test_append_durable_and_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_append_and_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_every_offset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bit_flip_each_region, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_version_and_resealed_damage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sequence_gap_and_incomplete_old_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reader_from_seq, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reader_open_at, setup, teardown),
        cmocka_unit_test_setup_teardown(test_follow_live_writer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_follow_writer_process, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_failure_fsize, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_faults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compact_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compact_open_op, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fuzz_corpus_seeds, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
