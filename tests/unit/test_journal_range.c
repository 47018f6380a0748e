/* test_journal_range.c — the journal's SNAPSHOT_RANGE record (parallel key-range
 * snapshot streams): lossless bounds (NULL, INT at the int64 extremes, past 2^53,
 * negative), the decoder's and builder's refusals, payload tell/cut, rows
 * appended to a header known last, compressing ahead (journal_append_blob),
 * and retention counting ranges as snapshot pages. (test_journal.c holds the rest of
 * the journal library's tests; this file keeps both under the size limit.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal/journal.h"
#include "journal/rows.h"
#include "tests/testutil.h"

struct fx {
    char *root;               /* temp dir, removed in teardown */
    char dir[512];            /* root/journal */
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    f->root = tu_tmpdir("test_journal_range");
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

static struct journal_writer *wopen(struct fx *f, uint64_t segsize)
{
    struct journal_opts o = {.dir = f->dir, .segment_size = segsize};
    struct journal_writer *w;
    char err[512];
    if (journal_writer_open(&o, &w, err, sizeof err) != 0) fail_msg("writer open: %s", err);
    return w;
}

static int value_equal(const struct journal_value *a, const struct journal_value *b)
{
    if (a->type != b->type) return 0;
    return a->type == JOURNAL_NULL || (a->type == JOURNAL_INT && a->i == b->i);
}

#define TEXT(lit) {.type = JOURNAL_TEXT, .s = lit, .n = sizeof lit - 1}

/* Append a record of `type` for a one-INT-column table: schema, begin, page
 * (key 1), end (one row) or a range (key `key` in (from, to]). */
static void append_rec(struct journal_writer *w, int type, const char *table, uint64_t sid,
                       const struct journal_value *from, const struct journal_value *to, int64_t key)
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
    } else if (type == JOURNAL_SNAPSHOT_RANGE) {
        journal_payload_snapshot_range(&pl, sid, from, to, 1);
        journal_put_int(&pl, key);
    } else {
        journal_payload_snapshot_page(&pl, sid, 1);
        journal_put_int(&pl, 1);
    }
    assert_int_equal(journal_payload_finish(&pl, err, sizeof err), 0);
    if (journal_append(w, type, table, pl.p, pl.len, NULL, err, sizeof err) != 0) fail_msg("%s", err);
    journal_payload_free(&pl);
}

#define INTV(x) {.type = JOURNAL_INT, .i = (x)}

/* Bounds NULL or INT at the int64 extremes, keys past 2^53 and negative: all
 * survive writer and reader exactly. */
static void test_range_roundtrip(void **state)
{
    struct fx *f = *state;
    struct journal_writer *w = wopen(f, 0);
    struct journal_payload pl = {0};
    char err[512];
    static const struct {
        struct journal_value from, to;
        int64_t key;
    } cases[] = {
        {{.type = JOURNAL_NULL}, {.type = JOURNAL_NULL}, 0},
        {{.type = JOURNAL_NULL}, INTV(-9007199254740993LL), INT64_MIN},
        {INTV(INT64_MIN), INTV(INT64_MAX), -1},
        {INTV(9007199254740992LL), INTV(9007199254740993LL), 9007199254740993LL},
        {INTV(-5), {.type = JOURNAL_NULL}, INT64_MAX},
        {INTV(INT64_MAX - 1), INTV(INT64_MAX), INT64_MAX},
    };
    size_t ncases = sizeof cases / sizeof cases[0];
    for (size_t i = 0; i < ncases; i++) {
        journal_payload_snapshot_range(&pl, 1000 + i, &cases[i].from, &cases[i].to, 2);
        journal_put_int(&pl, cases[i].key);
        journal_put_text(&pl, "v", 1);
        assert_int_equal(journal_payload_finish(&pl, err, sizeof err), 0);
        assert_int_equal(journal_append(w, JOURNAL_SNAPSHOT_RANGE, "t", pl.p, pl.len, NULL, err, sizeof err), 0);
    }
    /* NULL pointers are unbounded bounds. */
    journal_payload_snapshot_range(&pl, 7, NULL, NULL, 1);
    assert_int_equal(journal_payload_finish(&pl, err, sizeof err), 0);
    assert_int_equal(journal_append(w, JOURNAL_SNAPSHOT_RANGE, "t", pl.p, pl.len, NULL, err, sizeof err), 0);
    journal_writer_close(w);
    journal_payload_free(&pl);

    assert_string_equal(journal_type_name(JOURNAL_SNAPSHOT_RANGE), "snapshot_range");
    assert_int_equal(JOURNAL_SNAPSHOT_RANGE, 9);
    assert_null(journal_type_name(10));
    struct journal_reader *rd;
    struct journal_record rec;
    struct journal_page pg;
    struct journal_value v[2];
    assert_int_equal(journal_reader_open(f->dir, 0, &rd, err, sizeof err), 0);
    for (size_t i = 0; i < ncases; i++) {
        assert_int_equal(journal_reader_next(rd, JOURNAL_SEQ_MAX, &rec, err, sizeof err), 1);
        assert_int_equal(rec.type, JOURNAL_SNAPSHOT_RANGE);
        if (journal_decode_page(rec.type, rec.payload, rec.len, &pg, err, sizeof err) != 0) fail_msg("%s", err);
        assert_int_equal(pg.snapshot_id, 1000 + i);
        assert_true(value_equal(&pg.range_from, &cases[i].from));
        assert_true(value_equal(&pg.range_to, &cases[i].to));
        assert_int_equal(pg.mark_cursor.type, JOURNAL_NULL);
        assert_int_equal(pg.mark_key.type, JOURNAL_NULL);
        assert_int_equal(pg.rows.nrows, 1);
        assert_int_equal(journal_rows_next(&pg.rows, v, err, sizeof err), 1);
        assert_true(v[0].type == JOURNAL_INT && v[0].i == cases[i].key);
        assert_true(v[1].type == JOURNAL_TEXT && v[1].n == 1 && v[1].s[0] == 'v');
        assert_int_equal(journal_rows_next(&pg.rows, v, err, sizeof err), 0);
    }
    assert_int_equal(journal_reader_next(rd, JOURNAL_SEQ_MAX, &rec, err, sizeof err), 1);
    assert_int_equal(journal_decode_page(rec.type, rec.payload, rec.len, &pg, err, sizeof err), 0);
    assert_int_equal(pg.snapshot_id, 7);
    assert_int_equal(pg.range_from.type, JOURNAL_NULL);
    assert_int_equal(pg.range_to.type, JOURNAL_NULL);
    assert_int_equal(pg.rows.nrows, 0);
    assert_int_equal(journal_reader_next(rd, JOURNAL_SEQ_MAX, &rec, err, sizeof err), 0);
    journal_reader_close(rd);
    /* The other page types report NULL range bounds. */
    journal_payload_snapshot_page(&pl, 3, 1);
    journal_put_int(&pl, 1);
    assert_int_equal(journal_payload_finish(&pl, err, sizeof err), 0);
    memset(&pg, 0xff, sizeof pg);
    assert_int_equal(journal_decode_page(JOURNAL_SNAPSHOT_PAGE, pl.p, pl.len, &pg, err, sizeof err), 0);
    assert_int_equal(pg.range_from.type, JOURNAL_NULL);
    assert_int_equal(pg.range_to.type, JOURNAL_NULL);
    journal_payload_free(&pl);
}

/* Bounds other than INT/NULL, and FROM >= TO, are refused by builder and decoder. */
static void test_range_refused(void **state)
{
    (void)state;
    struct journal_payload pl = {0};
    char err[512];
    struct journal_page pg;
    struct journal_value text = TEXT("5"), five = INTV(5), four = INTV(4), real = {.type = JOURNAL_REAL, .d = 1};
    const struct journal_value *bad[][2] = {{&text, NULL}, {NULL, &real}, {&five, &five}, {&five, &four}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        journal_payload_snapshot_range(&pl, 1, bad[i][0], bad[i][1], 1);
        journal_put_int(&pl, 5);
        assert_int_equal(journal_payload_finish(&pl, err, sizeof err), -1);
        assert_string_equal(err, "payload: snapshot range bounds must be INT or NULL, FROM below TO");
    }
    /* Raw payloads: id 1; FROM; TO; rows block 1 x 0. */
    const unsigned char text_from[] = {1, 5, 1, '5', 0, 1, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(journal_decode_page(JOURNAL_SNAPSHOT_RANGE, text_from, sizeof text_from, &pg, err, sizeof err),
                     -1);
    assert_string_equal(err, "payload offset 5: snapshot range bounds must be INT or NULL");
    const unsigned char bool_to[] = {1, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(journal_decode_page(JOURNAL_SNAPSHOT_RANGE, bool_to, sizeof bool_to, &pg, err, sizeof err), -1);
    assert_string_equal(err, "payload offset 3: snapshot range bounds must be INT or NULL");
    const unsigned char equal[] = {1, 3, 10, 3, 10, 1, 0, 0, 0, 0, 0, 0, 0};     /* (5, 5] */
    assert_int_equal(journal_decode_page(JOURNAL_SNAPSHOT_RANGE, equal, sizeof equal, &pg, err, sizeof err), -1);
    assert_string_equal(err, "payload offset 5: snapshot range FROM is not below TO");
    const unsigned char above[] = {1, 3, 10, 3, 9, 1, 0, 0, 0, 0, 0, 0, 0};      /* (5, -5] */
    assert_int_equal(journal_decode_page(JOURNAL_SNAPSHOT_RANGE, above, sizeof above, &pg, err, sizeof err), -1);
    assert_string_equal(err, "payload offset 5: snapshot range FROM is not below TO");
    const unsigned char ok[] = {1, 3, 9, 3, 10, 1, 0, 0, 0, 0, 0, 0, 0};         /* (-5, 5] */
    assert_int_equal(journal_decode_page(JOURNAL_SNAPSHOT_RANGE, ok, sizeof ok, &pg, err, sizeof err), 0);
    assert_true(pg.range_from.i == -5 && pg.range_to.i == 5);
    const unsigned char no_to[] = {1, 3, 9};
    assert_int_equal(journal_decode_page(JOURNAL_SNAPSHOT_RANGE, no_to, sizeof no_to, &pg, err, sizeof err), -1);
    assert_string_equal(err, "payload offset 3: truncated value");
    journal_payload_free(&pl);
}

/* tell/cut: the payload after cut is byte for byte the one that stopped at tell. */
static void test_payload_tell_cut(void **state)
{
    (void)state;
    struct journal_payload pl = {0}, ref = {0};
    char err[512];
    struct journal_value from = INTV(0), to = INTV(100);
    struct journal_payload_pos pos, start;
    journal_payload_snapshot_range(&ref, 9, &from, &to, 2);
    for (int k = 1; k <= 3; k++) {
        journal_put_int(&ref, k);
        journal_put_text(&ref, "row", 3);
    }
    assert_int_equal(journal_payload_finish(&ref, err, sizeof err), 0);

    journal_payload_snapshot_range(&pl, 9, &from, &to, 2);
    journal_payload_tell(&pl, &start);
    for (int k = 1; k <= 3; k++) {
        journal_put_int(&pl, k);
        journal_put_text(&pl, "row", 3);
    }
    journal_payload_tell(&pl, &pos);
    for (int k = 4; k <= 50; k++) {          /* enough to make the buffer grow */
        journal_put_int(&pl, k);
        journal_put_text(&pl, "a longer row that takes room", 28);
    }
    journal_payload_cut(&pl, &pos);
    assert_int_equal(journal_payload_finish(&pl, err, sizeof err), 0);
    assert_int_equal(pl.len, ref.len);
    assert_memory_equal(pl.p, ref.p, ref.len);
    /* Cut to the start of the block: no rows; puts continue from there. */
    journal_payload_cut(&pl, &start);
    assert_int_equal(journal_payload_finish(&pl, err, sizeof err), 0);
    struct journal_page pg;
    assert_int_equal(journal_decode_page(JOURNAL_SNAPSHOT_RANGE, pl.p, pl.len, &pg, err, sizeof err), 0);
    assert_int_equal(pg.rows.nrows, 0);
    for (int k = 1; k <= 3; k++) {
        journal_put_int(&pl, k);
        journal_put_text(&pl, "row", 3);
    }
    assert_int_equal(journal_payload_finish(&pl, err, sizeof err), 0);
    assert_memory_equal(pl.p, ref.p, ref.len);
    /* Cut between a row's values: finish still wants whole rows. */
    journal_payload_tell(&pl, &pos);
    journal_put_int(&pl, 4);
    journal_payload_tell(&pl, &start);
    journal_put_text(&pl, "x", 1);
    journal_payload_cut(&pl, &start);
    assert_int_equal(journal_payload_finish(&pl, err, sizeof err), -1);
    assert_string_equal(err, "payload: 7 values do not make whole rows of 2 columns");
    journal_payload_cut(&pl, &pos);
    assert_int_equal(journal_payload_finish(&pl, err, sizeof err), 0);
    assert_memory_equal(pl.p, ref.p, ref.len);
    /* A position from before the block, or past what was put, is refused at finish. */
    journal_payload_snapshot_page(&pl, 1, 1);
    journal_put_int(&pl, 1);
    journal_payload_tell(&pl, &pos);
    journal_payload_snapshot_page(&pl, 1, 1);
    journal_payload_cut(&pl, &pos);
    assert_int_equal(journal_payload_finish(&pl, err, sizeof err), -1);
    assert_string_equal(err, "payload: cut to a position outside the open rows block");
    struct journal_payload_pos before = {0, 0};
    journal_payload_snapshot_page(&pl, 1, 1);
    journal_payload_cut(&pl, &before);
    assert_int_equal(journal_payload_finish(&pl, err, sizeof err), -1);
    assert_string_equal(err, "payload: cut to a position outside the open rows block");
    journal_payload_snapshot_begin(&pl, 0);
    journal_payload_tell(&pl, &pos);
    journal_payload_cut(&pl, &pos);
    assert_int_equal(journal_payload_finish(&pl, err, sizeof err), -1);
    assert_string_equal(err, "payload: cut to a position outside the open rows block");
    journal_payload_free(&pl);
    journal_payload_free(&ref);
}


/* A snapshot's RANGE records count as its pages: in the bytes of the latest
 * complete snapshot, and a segment of them goes by the same rule as pages. */
/* A page encoded as a bare rows block, then given its header: the same
 * payload as one built in order. Blocks of other widths are refused. */
static void test_payload_append_rows(void **state)
{
    (void)state;
    struct journal_payload ref = {0}, bare = {0}, out = {0};
    char err[512];
    struct journal_value from = INTV(-5), to = INTV(7);
    journal_payload_snapshot_range(&ref, 3, &from, &to, 2);
    journal_payload_deletions(&bare, 2);
    for (int k = -4; k <= 7; k++) {
        journal_put_int(&ref, k);
        journal_put_text(&ref, "v", 1);
        journal_put_int(&bare, k);
        journal_put_text(&bare, "v", 1);
    }
    assert_int_equal(journal_payload_finish(&ref, err, sizeof err), 0);
    journal_payload_snapshot_range(&out, 3, &from, &to, 2);
    assert_int_equal(journal_payload_append_rows(&out, &bare, err, sizeof err), 0);
    assert_int_equal(journal_payload_finish(&out, err, sizeof err), 0);
    assert_int_equal(out.len, ref.len);
    assert_memory_equal(out.p, ref.p, ref.len);

    journal_payload_snapshot_range(&out, 3, &from, &to, 3);
    assert_int_equal(journal_payload_append_rows(&out, &bare, err, sizeof err), -1);
    assert_non_null(strstr(err, "same width"));
    journal_payload_free(&ref);
    journal_payload_free(&bare);
    journal_payload_free(&out);
}

/* Compressed ahead by a deflater (any thread), appended by the writer: the
 * segment holds the bytes journal_append would have written, and reads back. */
static void test_append_blob(void **state)
{
    struct fx *f = *state;
    char err[512], dir2[600];
    struct journal_payload pl = {0};
    struct journal_value from = INTV(0), to = INTV(1000);
    journal_payload_snapshot_range(&pl, 1, &from, &to, 1);
    for (int k = 1; k <= 1000; k++) journal_put_int(&pl, k);
    assert_int_equal(journal_payload_finish(&pl, err, sizeof err), 0);

    struct journal_deflater *dz;
    struct journal_blob b;
    assert_int_equal(journal_deflater_new(0, &dz, err, sizeof err), 0);
    assert_int_equal(journal_deflate(dz, pl.p, pl.len, &b, err, sizeof err), 0);
    assert_true(b.len < pl.len);
    assert_int_equal(b.raw_len, pl.len);
    struct journal_writer *w = wopen(f, 0);
    uint64_t seq;
    assert_int_equal(journal_append_blob(w, JOURNAL_SNAPSHOT_RANGE, "t", &b, &seq, err, sizeof err), 0);
    assert_int_equal(seq, 1);
    assert_int_equal(journal_append_blob(w, 0, "t", &b, NULL, err, sizeof err), -1);   /* bad type */
    assert_int_equal(journal_writer_next_seq(w), 2);
    journal_writer_close(w);

    snprintf(dir2, sizeof dir2, "%s/plain", f->root);
    struct journal_opts o = {.dir = dir2};
    assert_int_equal(journal_writer_open(&o, &w, err, sizeof err), 0);
    assert_int_equal(journal_append(w, JOURNAL_SNAPSHOT_RANGE, "t", pl.p, pl.len, NULL, err, sizeof err), 0);
    journal_writer_close(w);
    char name[JOURNAL_SEGMENT_NAME_LEN], a[700], c[700];
    journal_segment_name(1, name);
    snprintf(a, sizeof a, "%s/%s", f->dir, name);
    snprintf(c, sizeof c, "%s/%s", dir2, name);
    size_t na, nc;
    char *ta = tu_read_file(a, &na), *tc = tu_read_file(c, &nc);
    assert_non_null(ta);
    assert_non_null(tc);
    assert_int_equal(na, nc);
    assert_memory_equal(ta, tc, na);
    free(ta);
    free(tc);

    struct journal_reader *rd;
    struct journal_record rec;
    assert_int_equal(journal_reader_open(f->dir, 1, &rd, err, sizeof err), 0);
    assert_int_equal(journal_reader_next(rd, JOURNAL_SEQ_MAX, &rec, err, sizeof err), 1);
    assert_int_equal(rec.len, pl.len);
    assert_memory_equal(rec.payload, pl.p, pl.len);
    journal_reader_close(rd);
    journal_blob_free(&b);
    journal_deflater_free(dz);
    journal_payload_free(&pl);
}

static void test_compact_range(void **state)
{
    struct fx *f = *state;
    char err[512];
    struct journal_compact_result res;
    struct journal_writer *w = wopen(f, 1);     /* one record per segment: seq == segment */
    struct journal_value mid = INTV(100);
    append_rec(w, JOURNAL_SCHEMA, "a", 0, NULL, NULL, 0);             /* 1 */
    append_rec(w, JOURNAL_SNAPSHOT_BEGIN, "a", 0, NULL, NULL, 0);     /* 2 */
    append_rec(w, JOURNAL_SNAPSHOT_RANGE, "a", 2, NULL, &mid, 1);     /* 3 */
    append_rec(w, JOURNAL_SNAPSHOT_RANGE, "a", 2, &mid, NULL, 101);   /* 4 */
    append_rec(w, JOURNAL_SNAPSHOT_END, "a", 2, NULL, NULL, 0);       /* 5 */
    journal_writer_close(w);
    uint64_t want = 0;
    struct journal_reader *rd;
    struct journal_record rec;
    assert_int_equal(journal_reader_open(f->dir, 2, &rd, err, sizeof err), 0);
    while (journal_reader_next(rd, JOURNAL_SEQ_MAX, &rec, err, sizeof err) == 1) want += rec.stored;
    journal_reader_close(rd);
    assert_int_equal(journal_compact(f->dir, 0, 0, &res, err, sizeof err), 0);
    assert_int_equal(res.snapshot_bytes, want);
    /* A later snapshot made of ranges supersedes the first: segments 1..5 go. */
    w = wopen(f, 1);
    append_rec(w, JOURNAL_SCHEMA, "a", 0, NULL, NULL, 0);             /* 6 */
    append_rec(w, JOURNAL_SNAPSHOT_BEGIN, "a", 0, NULL, NULL, 0);     /* 7 */
    append_rec(w, JOURNAL_SNAPSHOT_RANGE, "a", 7, NULL, NULL, 5);     /* 8 */
    append_rec(w, JOURNAL_SNAPSHOT_END, "a", 7, NULL, NULL, 0);       /* 9 */
    journal_writer_close(w);
    assert_int_equal(journal_compact(f->dir, 1000, 0, &res, err, sizeof err), 0);
    assert_int_equal(res.deleted, 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_range_roundtrip, setup, teardown),
        cmocka_unit_test(test_range_refused),
        cmocka_unit_test(test_payload_tell_cut),
        cmocka_unit_test(test_payload_append_rows),
        cmocka_unit_test_setup_teardown(test_append_blob, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compact_range, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
