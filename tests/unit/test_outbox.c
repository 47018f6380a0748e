/* test_outbox.c — offline writes in the journal and cache.db (docs/outbox.md):
 * the op and op_state codecs and their refusals; an op applied exactly once
 * (visible, outbox row and open keys, twice = once, rebuild = same); protected
 * keys against incremental pages, deletions and a snapshot swap; ops that end
 * while a snapshot is pending (ended keys carried); done, and the
 * reverts of conflict/rejected/dropped; refused states and replay_skip; the
 * capture that leaves cache.db as it was. Real journal and cache.db files in a
 * temp dir; changesets come from replay_op_capture on the cache itself. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "journal/journal.h"
#include "journal/rows.h"
#include "replay/outbox.h"
#include "replay/replay.h"
#include "tests/testutil.h"

/* ---- fixture ------------------------------------------------------------------------ */

struct fx {
    char *root;
    char jdir[512], db[512];
    struct journal_writer *w;
    struct journal_payload pl;
    struct replay *r;
    char warn[4096];
};

static void on_warn(void *ctx, const char *msg)
{
    struct fx *f = ctx;
    size_t n = strlen(f->warn);
    snprintf(f->warn + n, sizeof f->warn - n, "%s\n", msg);
}

static struct replay_opts opts(struct fx *f)
{
    struct replay_opts o = {.db_path = f->db, .journal_dir = f->jdir, .warn = on_warn, .warn_ctx = f};
    return o;
}

static void ropen(struct fx *f)
{
    struct replay_opts o = opts(f);
    char err[1024];
    if (replay_open(&o, &f->r, err, sizeof err) != 0) fail_msg("replay_open: %s", err);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    f->root = tu_tmpdir("test_outbox");
    assert_non_null(f->root);
    snprintf(f->jdir, sizeof f->jdir, "%s/journal", f->root);
    snprintf(f->db, sizeof f->db, "%s/cache.db", f->root);
    struct journal_opts o = {.dir = f->jdir, .level = 1};
    char err[512];
    if (journal_writer_open(&o, &f->w, err, sizeof err) != 0) fail_msg("journal open: %s", err);
    journal_batch_begin(f->w);   /* one fsync per test: readers see written bytes anyway */
    ropen(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    replay_close(f->r);
    journal_writer_close(f->w);
    journal_payload_free(&f->pl);
    tu_rmrf(f->root);
    free(f->root);
    free(f);
    return 0;
}

static uint64_t append(struct fx *f, int type, const char *table)
{
    char err[512];
    uint64_t seq;
    if (journal_payload_finish(&f->pl, err, sizeof err) != 0) fail_msg("payload: %s", err);
    if (journal_append(f->w, type, table, f->pl.p, f->pl.len, &seq, err, sizeof err) != 0) fail_msg("append: %s", err);
    return seq;
}

static void apply_ok(struct fx *f)
{
    char err[2048];
    if (replay_apply(f->r, JOURNAL_SEQ_MAX, NULL, err, sizeof err) != 0) fail_msg("replay_apply: %s", err);
}

static void apply_fails(struct fx *f, const char *want1, const char *want2)
{
    char err[2048];
    if (replay_apply(f->r, JOURNAL_SEQ_MAX, NULL, err, sizeof err) == 0) fail_msg("replay_apply succeeded");
    if (!strstr(err, want1) || (want2 && !strstr(err, want2)))
        fail_msg("error \"%s\" lacks \"%s\" / \"%s\"", err, want1, want2 ? want2 : "");
}

/* Table "t": id INT key, name TEXT, v INT cursor. */
static void put_schema(struct fx *f)
{
    const char *names[] = {"id", "name", "v"};
    enum journal_coltype types[] = {JOURNAL_COL_INT, JOURNAL_COL_TEXT, JOURNAL_COL_INT};
    char err[512];
    if (journal_payload_schema(&f->pl, 3, names, types, 0, 2, err, sizeof err) != 0) fail_msg("%s", err);
    append(f, JOURNAL_SCHEMA, "t");
}

static void put_row(struct fx *f, int64_t id, int version)
{
    char name[32];
    int n = snprintf(name, sizeof name, "r%lld-v%d", (long long)id, version);
    journal_put_int(&f->pl, id);
    journal_put_text(&f->pl, name, (size_t)n);
    journal_put_int(&f->pl, id * 10 + version);
}

/* A whole snapshot of ids 1..n, version v. */
static void put_snapshot(struct fx *f, int n, int version)
{
    journal_payload_snapshot_begin(&f->pl, 0);
    uint64_t id = append(f, JOURNAL_SNAPSHOT_BEGIN, "t");
    journal_payload_snapshot_page(&f->pl, id, 3);
    for (int i = 1; i <= n; i++) put_row(f, i, version);
    append(f, JOURNAL_SNAPSHOT_PAGE, "t");
    struct journal_value mc = {.type = JOURNAL_INT, .i = n * 10 + version}, mk = {.type = JOURNAL_INT, .i = n};
    journal_payload_snapshot_end(&f->pl, id, (uint64_t)n, &mc, &mk);
    append(f, JOURNAL_SNAPSHOT_END, "t");
}

static void put_incremental(struct fx *f, const int64_t *ids, int n, int version)
{
    struct journal_value mc = {.type = JOURNAL_INT, .i = 1000 + version}, mk = {.type = JOURNAL_INT, .i = ids[n - 1]};
    journal_payload_incremental_page(&f->pl, &mc, &mk, 3);
    for (int i = 0; i < n; i++) put_row(f, ids[i], version);
    append(f, JOURNAL_INCREMENTAL_PAGE, "t");
}

static void put_deletions(struct fx *f, const int64_t *ids, int n)
{
    journal_payload_deletions(&f->pl, 1);
    for (int i = 0; i < n; i++) journal_put_int(&f->pl, ids[i]);
    append(f, JOURNAL_DELETIONS, "t");
}

/* The standard start: t with ids 1..5, version 1, applied. */
static void start(struct fx *f)
{
    put_schema(f);
    put_snapshot(f, 5, 1);
    apply_ok(f);
}

static int run_sql(sqlite3 *db, void *ctx, char *err, size_t errlen)
{
    if (sqlite3_exec(db, ctx, NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(db));
        return -1;
    }
    return 0;
}

/* Capture `sql` on cache.db as the daemon will, journal it as an op, apply. */
static uint64_t put_op(struct fx *f, int kind, const char *sql)
{
    void *cs;
    int ncs;
    char err[2048];
    if (replay_op_capture(f->r, "t", run_sql, (void *)sql, &cs, &ncs, err, sizeof err) != 0)
        fail_msg("capture: %s", err);
    struct journal_op op = {.kind = kind, .params = "{\"table\":\"t\"}", .nparams = 13, .changeset = cs,
                            .nchangeset = (size_t)ncs, .answer = "1", .nanswer = 1};
    if (journal_payload_op(&f->pl, &op, err, sizeof err) != 0) fail_msg("%s", err);
    sqlite3_free(cs);
    uint64_t seq = append(f, JOURNAL_OP, "t");
    apply_ok(f);
    return seq;
}

static uint64_t put_state(struct fx *f, uint64_t op, int state, const char *msg)
{
    struct journal_op_state_rec s = {.op_id = op, .state = state, .message = msg, .nmessage = msg ? strlen(msg) : 0};
    char err[512];
    if (journal_payload_op_state(&f->pl, &s, err, sizeof err) != 0) fail_msg("%s", err);
    return append(f, JOURNAL_OP_STATE, "t");
}

/* One text value of a query (malloc'd; "" for NULL). */
static char *q_text(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    if (sqlite3_step(st) != SQLITE_ROW) fail_msg("%s: no row", sql);
    const unsigned char *s = sqlite3_column_text(st, 0);
    char *out = strdup(s ? (const char *)s : "");
    sqlite3_finalize(st);
    return out;
}

static void assert_q(struct fx *f, const char *sql, const char *want)
{
    char *got = q_text(replay_db(f->r), sql);
    if (strcmp(got, want) != 0) fail_msg("%s:\n got  %s\n want %s", sql, got, want);
    free(got);
}

#define ROWS "SELECT group_concat(id || ':' || name || ':' || coalesce(v, ''), ' ') FROM (SELECT * FROM t ORDER BY id)"
#define OUTBOX                                                                                                      \
    "SELECT group_concat(id || ',' || tbl || ',' || kind || ',' || state || ',' || keys || ',' || attempts || ','" \
    " || coalesce(last_error, '-'), ' ') FROM (SELECT * FROM _agent_outbox ORDER BY id)"
#define KEYS "SELECT group_concat(key || '@' || id, ' ') FROM (SELECT * FROM _agent_outbox_keys ORDER BY id, key)"

static uint64_t table_rows(struct fx *f)
{
    struct replay_table t;
    char err[512];
    assert_int_equal(replay_table_get(f->r, "t", &t, err, sizeof err), 0);
    uint64_t n = t.rows;
    replay_table_free(&t);
    return n;
}

/* ---- codecs ----------------------------------------------------------------------------- */

static void test_codec(void **state)
{
    (void)state;
    struct journal_payload pl = {0};
    char err[512];
    const unsigned char cs[] = {1, 2, 0, 3};
    struct journal_op op = {.kind = JOURNAL_OP_DELETE, .params = "{\"a\":1}", .nparams = 7, .changeset = cs,
                            .nchangeset = sizeof cs, .answer = "[]", .nanswer = 2}, got;
    assert_int_equal(journal_payload_op(&pl, &op, err, sizeof err), 0);
    assert_int_equal(journal_decode_op(pl.p, pl.len, &got, err, sizeof err), 0);
    assert_int_equal(got.kind, JOURNAL_OP_DELETE);
    assert_int_equal(got.nparams, 7);
    assert_memory_equal(got.params, "{\"a\":1}", 7);
    assert_int_equal(got.nchangeset, 4);
    assert_memory_equal(got.changeset, cs, 4);
    assert_int_equal(got.nanswer, 2);
    assert_memory_equal(got.answer, "[]", 2);
    /* every proper prefix is truncated; one more byte is trailing */
    for (size_t n = 0; n < pl.len; n++)
        if (journal_decode_op(pl.p, n, &got, err, sizeof err) == 0) fail_msg("prefix of %zu bytes decoded", n);
    unsigned char *more = malloc(pl.len + 1);
    memcpy(more, pl.p, pl.len);
    more[pl.len] = 0;
    assert_int_equal(journal_decode_op(more, pl.len + 1, &got, err, sizeof err), -1);
    assert_non_null(strstr(err, "trailing bytes"));
    /* kinds 1 and 5 are none; params must be an object; answer not empty */
    more[0] = 1;
    assert_int_equal(journal_decode_op(more, pl.len, &got, err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown op kind"));
    more[0] = 5;
    assert_int_equal(journal_decode_op(more, pl.len, &got, err, sizeof err), -1);
    more[0] = JOURNAL_OP_DELETE;
    more[2] = '[';
    assert_int_equal(journal_decode_op(more, pl.len, &got, err, sizeof err), -1);
    assert_non_null(strstr(err, "JSON object"));
    free(more);
    op.kind = 9;
    assert_int_equal(journal_payload_op(&pl, &op, err, sizeof err), -1);
    op.kind = JOURNAL_OP_INSERT;
    op.nanswer = 0;
    assert_int_equal(journal_payload_op(&pl, &op, err, sizeof err), -1);
    assert_non_null(strstr(err, "answer is empty"));
    const unsigned char empty_answer[] = {2, 2, '{', '}', 0, 0};
    assert_int_equal(journal_decode_op(empty_answer, sizeof empty_answer, &got, err, sizeof err), -1);
    /* a length past the end */
    const unsigned char long_params[] = {2, 9, '{', '}'};
    assert_int_equal(journal_decode_op(long_params, sizeof long_params, &got, err, sizeof err), -1);
    assert_non_null(strstr(err, "past the end"));

    struct journal_op_state_rec s = {.op_id = 300, .state = JOURNAL_OPS_PENDING, .message = "timeout", .nmessage = 7},
                                sg;
    assert_int_equal(journal_payload_op_state(&pl, &s, err, sizeof err), 0);
    assert_int_equal(journal_decode_op_state(pl.p, pl.len, &sg, err, sizeof err), 0);
    assert_int_equal(sg.op_id, 300);
    assert_int_equal(sg.state, JOURNAL_OPS_PENDING);
    assert_int_equal(sg.nmessage, 7);
    assert_memory_equal(sg.message, "timeout", 7);
    for (size_t n = 0; n < pl.len; n++)
        if (journal_decode_op_state(pl.p, n, &sg, err, sizeof err) == 0) fail_msg("prefix of %zu bytes decoded", n);
    const unsigned char st0[] = {5, 0, 0}, st7[] = {5, 7, 0}, id0[] = {0, 2, 0}, trail[] = {5, 2, 0, 0};
    assert_int_equal(journal_decode_op_state(st0, 3, &sg, err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown op state"));
    assert_int_equal(journal_decode_op_state(st7, 3, &sg, err, sizeof err), -1);
    assert_int_equal(journal_decode_op_state(id0, 3, &sg, err, sizeof err), -1);
    assert_non_null(strstr(err, "op id 0"));
    assert_int_equal(journal_decode_op_state(trail, 4, &sg, err, sizeof err), -1);
    assert_non_null(strstr(err, "trailing bytes"));
    s.state = 7;
    assert_int_equal(journal_payload_op_state(&pl, &s, err, sizeof err), -1);
    s.state = JOURNAL_OPS_DONE;
    char *big = calloc(1, JOURNAL_OP_MESSAGE_MAX + 1);
    s.message = big;
    s.nmessage = JOURNAL_OP_MESSAGE_MAX + 1;
    assert_int_equal(journal_payload_op_state(&pl, &s, err, sizeof err), -1);
    assert_non_null(strstr(err, "over the limit"));
    s.nmessage = JOURNAL_OP_MESSAGE_MAX;
    assert_int_equal(journal_payload_op_state(&pl, &s, err, sizeof err), 0);
    assert_int_equal(journal_decode_op_state(pl.p, pl.len, &sg, err, sizeof err), 0);
    /* the decoder's own bound, on a payload no builder would make: length 65537 */
    unsigned char over[8 + JOURNAL_OP_MESSAGE_MAX + 1] = {5, 2, 0x81, 0x80, 0x04};
    assert_int_equal(journal_decode_op_state(over, 5 + JOURNAL_OP_MESSAGE_MAX + 1, &sg, err, sizeof err), -1);
    assert_non_null(strstr(err, "over the limit"));
    free(big);
    journal_payload_free(&pl);
}

/* ---- applying ops ----------------------------------------------------------------------- */

static void test_op_applied_once(void **state)
{
    struct fx *f = *state;
    start(f);
    uint64_t u = put_op(f, JOURNAL_OP_UPDATE, "UPDATE t SET name = 'local' WHERE id = 2");
    uint64_t i = put_op(f, JOURNAL_OP_INSERT, "INSERT INTO t VALUES (-1000, 'new', NULL)");
    uint64_t d = put_op(f, JOURNAL_OP_DELETE, "DELETE FROM t WHERE id IN (4, 5)");
    assert_q(f, ROWS, "-1000:new: 1:r1-v1:11 2:local:21 3:r3-v1:31");
    char want[512];
    snprintf(want, sizeof want, "%llu,t,update,pending,[2],0,- %llu,t,insert,pending,[-1000],0,- "
             "%llu,t,delete,pending,[4,5],0,-", (unsigned long long)u, (unsigned long long)i, (unsigned long long)d);
    assert_q(f, OUTBOX, want);
    snprintf(want, sizeof want, "2@%llu -1000@%llu 4@%llu 5@%llu", (unsigned long long)u, (unsigned long long)i,
             (unsigned long long)d, (unsigned long long)d);
    assert_q(f, KEYS, want);
    assert_int_equal(table_rows(f), 4);
    assert_int_equal(replay_applied_seq(f->r), d);

    /* the read API, on a read-only connection as serve has */
    sqlite3 *ro;
    char err[1024];
    assert_int_equal(replay_db_open_readonly(f->db, 0, 1000, &ro, err, sizeof err), 0);
    struct replay_outbox_op *ops;
    size_t n;
    assert_int_equal(replay_outbox_list(ro, 1, 0, &ops, &n, err, sizeof err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(ops[1].id, i);
    assert_string_equal(ops[1].kind, "insert");
    assert_string_equal(ops[1].state, "pending");
    assert_string_equal(ops[2].keys, "[4,5]");
    assert_null(ops[0].last_error);
    assert_true(ops[0].created_ms > 0);
    replay_outbox_free(ops, n);
    struct replay_outbox_op one;
    assert_int_equal(replay_outbox_get(ro, u, &one, err, sizeof err), 0);
    assert_string_equal(one.params, "{\"table\":\"t\"}");
    assert_true(one.nchangeset > 0);
    replay_outbox_op_clear(&one);
    assert_int_equal(replay_outbox_get(ro, 9999, &one, err, sizeof err), 1);
    struct replay_outbox_counts c;
    assert_int_equal(replay_outbox_counts(ro, &c, err, sizeof err), 0);
    assert_int_equal(c.pending, 3);
    assert_int_equal(c.conflicts + c.rejected + c.sent, 0);
    sqlite3_close(ro);

    /* twice = once: reopen and apply again, nothing changes */
    char *rows = q_text(replay_db(f->r), ROWS), *outbox = q_text(replay_db(f->r), OUTBOX);
    replay_close(f->r);
    ropen(f);
    struct replay_stats st;
    assert_int_equal(replay_apply(f->r, JOURNAL_SEQ_MAX, &st, err, sizeof err), 0);
    assert_int_equal(st.records, 0);
    assert_q(f, ROWS, rows);
    assert_q(f, OUTBOX, outbox);

    /* a rebuild from the journal alone gives the same rows and outbox */
    replay_close(f->r);
    f->r = NULL;
    struct replay_opts o = opts(f);
    if (replay_rebuild(&o, NULL, err, sizeof err) != 0) fail_msg("rebuild: %s", err);
    ropen(f);
    assert_q(f, ROWS, rows);
    assert_q(f, OUTBOX, outbox);
    assert_q(f, KEYS, want);
    free(rows);
    free(outbox);
}

/* Pulled rows of open keys are left alone; the rest of the page applies. */
static void test_protect_incremental_and_deletions(void **state)
{
    struct fx *f = *state;
    start(f);
    put_op(f, JOURNAL_OP_UPDATE, "UPDATE t SET name = 'local' WHERE id = 2");
    put_op(f, JOURNAL_OP_DELETE, "DELETE FROM t WHERE id = 3");
    const int64_t page[] = {2, 3, 4, 6};
    put_incremental(f, page, 4, 2);
    apply_ok(f);
    assert_q(f, ROWS, "1:r1-v1:11 2:local:21 4:r4-v2:42 5:r5-v1:51 6:r6-v2:62");
    assert_int_equal(table_rows(f), 5);
    const int64_t gone[] = {1, 2, 6};
    put_deletions(f, gone, 3);
    apply_ok(f);
    assert_q(f, ROWS, "2:local:21 4:r4-v2:42 5:r5-v1:51");
    assert_int_equal(table_rows(f), 3);
    /* the marks still moved with the page */
    struct replay_table t;
    char err[512];
    assert_int_equal(replay_table_get(f->r, "t", &t, err, sizeof err), 0);
    assert_int_equal(t.mark_key.i, 6);
    replay_table_free(&t);
}

/* A text key: a pulled number meets the stored text the table made of it. */
static void test_protect_text_key(void **state)
{
    struct fx *f = *state;
    const char *names[] = {"code", "name"};
    enum journal_coltype types[] = {JOURNAL_COL_TEXT, JOURNAL_COL_TEXT};
    char err[512];
    assert_int_equal(journal_payload_schema(&f->pl, 2, names, types, 0, -1, err, sizeof err), 0);
    append(f, JOURNAL_SCHEMA, "t");
    journal_payload_incremental_page(&f->pl, NULL, NULL, 2);
    journal_put_text(&f->pl, "7", 1);
    journal_put_text(&f->pl, "seven", 5);
    append(f, JOURNAL_INCREMENTAL_PAGE, "t");
    apply_ok(f);
    put_op(f, JOURNAL_OP_UPDATE, "UPDATE t SET name = 'local' WHERE code = '7'");
    journal_payload_incremental_page(&f->pl, NULL, NULL, 2);
    journal_put_int(&f->pl, 7);
    journal_put_text(&f->pl, "portal", 6);
    append(f, JOURNAL_INCREMENTAL_PAGE, "t");
    apply_ok(f);
    assert_q(f, "SELECT group_concat(code || ':' || name) FROM t", "7:local");
}

static void test_protect_snapshot(void **state)
{
    struct fx *f = *state;
    start(f);
    uint64_t u = put_op(f, JOURNAL_OP_UPDATE, "UPDATE t SET name = 'local' WHERE id = 2");
    put_op(f, JOURNAL_OP_DELETE, "DELETE FROM t WHERE id = 3");
    put_op(f, JOURNAL_OP_INSERT, "INSERT INTO t VALUES (-1000, 'new', NULL)");
    put_snapshot(f, 6, 2);
    apply_ok(f);
    assert_q(f, ROWS, "-1000:new: 1:r1-v2:12 2:local:21 4:r4-v2:42 5:r5-v2:52 6:r6-v2:62");
    assert_int_equal(table_rows(f), 6);
    /* a table with no open keys swaps in as pulled */
    put_state(f, u, JOURNAL_OPS_DONE, NULL);   /* the update on id 2 ends */
    put_snapshot(f, 6, 3);
    apply_ok(f);
    assert_q(f, ROWS, "-1000:new: 1:r1-v3:13 2:r2-v3:23 4:r4-v3:43 5:r5-v3:53 6:r6-v3:63");
}

/* Ops that end while a snapshot of their table is pending (the daemon killed
 * between a done and its re-read, then the snapshot resumed; or a long pull
 * under way while the sender works): the snapshot's pages read before the
 * write reached the portal must not undo it at the swap. The ended keys are
 * carried and then forgotten; rows read again after a page (an incremental
 * page, deletions) win over it in the shadow too. */
static void test_end_during_snapshot(void **state)
{
    struct fx *f = *state;
    start(f);
    uint64_t u = put_op(f, JOURNAL_OP_UPDATE, "UPDATE t SET name = 'local' WHERE id = 2");
    uint64_t d = put_op(f, JOURNAL_OP_DELETE, "DELETE FROM t WHERE id = 3");
    /* a snapshot begins; its first page is read before the writes reach the portal */
    journal_payload_snapshot_begin(&f->pl, 0);
    uint64_t sid = append(f, JOURNAL_SNAPSHOT_BEGIN, "t");
    journal_payload_snapshot_page(&f->pl, sid, 3);
    for (int i = 1; i <= 4; i++) put_row(f, i, 2);
    append(f, JOURNAL_SNAPSHOT_PAGE, "t");
    apply_ok(f);
    /* both ops done; no re-read of id 2 (a kill), an insert's row 7 read again */
    put_state(f, u, JOURNAL_OPS_DONE, NULL);
    put_state(f, d, JOURNAL_OPS_DONE, NULL);
    const int64_t seven[] = {7}, one[] = {1};
    put_incremental(f, seven, 1, 3);
    put_deletions(f, one, 1);   /* gone from the portal after the page was read */
    apply_ok(f);
    char want[64];
    snprintf(want, sizeof want, "2@%llu 3@%llu", (unsigned long long)u, (unsigned long long)d);
    assert_q(f, KEYS, want);   /* ended, not protected: the incremental row landed */
    /* the rest of the snapshot (read after the writes) and its end */
    journal_payload_snapshot_page(&f->pl, sid, 3);
    for (int i = 5; i <= 6; i++) put_row(f, i, 2);
    append(f, JOURNAL_SNAPSHOT_PAGE, "t");
    struct journal_value mc = {.type = JOURNAL_INT, .i = 62}, mk = {.type = JOURNAL_INT, .i = 6};
    journal_payload_snapshot_end(&f->pl, sid, 6, &mc, &mk);
    append(f, JOURNAL_SNAPSHOT_END, "t");
    apply_ok(f);
    assert_q(f, ROWS, "2:local:21 4:r4-v2:42 5:r5-v2:52 6:r6-v2:62 7:r7-v3:73");
    assert_int_equal(table_rows(f), 5);
    assert_q(f, KEYS, "");
    /* with no snapshot pending, an end closes its keys at once */
    uint64_t u2 = put_op(f, JOURNAL_OP_UPDATE, "UPDATE t SET name = 'again' WHERE id = 4");
    put_state(f, u2, JOURNAL_OPS_DONE, NULL);
    apply_ok(f);
    assert_q(f, KEYS, "");
    /* ended keys are forgotten at a new BEGIN too (its pages are read after the end) */
    uint64_t u3 = put_op(f, JOURNAL_OP_UPDATE, "UPDATE t SET name = 'third' WHERE id = 5");
    journal_payload_snapshot_begin(&f->pl, 0);
    append(f, JOURNAL_SNAPSHOT_BEGIN, "t");
    put_state(f, u3, JOURNAL_OPS_DONE, NULL);
    apply_ok(f);
    snprintf(want, sizeof want, "5@%llu", (unsigned long long)u3);
    assert_q(f, KEYS, want);
    put_snapshot(f, 6, 4);
    apply_ok(f);
    assert_q(f, KEYS, "");
    assert_q(f, ROWS, "1:r1-v4:14 2:r2-v4:24 3:r3-v4:34 4:r4-v4:44 5:r5-v4:54 6:r6-v4:64");
}

static void test_states_and_done(void **state)
{
    struct fx *f = *state;
    start(f);
    uint64_t u = put_op(f, JOURNAL_OP_UPDATE, "UPDATE t SET name = 'local' WHERE id = 2");
    uint64_t i = put_op(f, JOURNAL_OP_INSERT, "INSERT INTO t VALUES (-1000, 'new', NULL), (-1001, 'new2', NULL)");
    put_state(f, i, JOURNAL_OPS_SENDING, NULL);
    put_state(f, i, JOURNAL_OPS_PENDING, "connection refused");
    put_state(f, i, JOURNAL_OPS_SENDING, NULL);
    apply_ok(f);
    char want[512];
    snprintf(want, sizeof want, "%llu,t,update,pending,[2],0,- %llu,t,insert,sent,[-1001,-1000],2,-",
             (unsigned long long)u, (unsigned long long)i);
    assert_q(f, OUTBOX, want);
    struct replay_outbox_counts c;
    char err[512];
    assert_int_equal(replay_outbox_counts(replay_db(f->r), &c, err, sizeof err), 0);
    assert_int_equal(c.pending, 2);
    assert_int_equal(c.sent, 1);
    /* done for the insert: its provisional rows go, then the portal's row comes */
    put_state(f, i, JOURNAL_OPS_DONE, NULL);
    const int64_t portal[] = {6};
    put_incremental(f, portal, 1, 1);
    /* done for the update: the row stays until the portal's copy replaces it */
    put_state(f, u, JOURNAL_OPS_DONE, NULL);
    apply_ok(f);
    assert_q(f, ROWS, "1:r1-v1:11 2:local:21 3:r3-v1:31 4:r4-v1:41 5:r5-v1:51 6:r6-v1:61");
    assert_int_equal(table_rows(f), 6);
    assert_q(f, KEYS, "");
    const int64_t two[] = {2};
    put_incremental(f, two, 1, 2);
    apply_ok(f);
    assert_q(f, "SELECT name FROM t WHERE id = 2", "r2-v2");
    snprintf(want, sizeof want, "%llu,t,update,done,[2],0,- %llu,t,insert,done,[-1001,-1000],2,-",
             (unsigned long long)u, (unsigned long long)i);
    assert_q(f, OUTBOX, want);
}

static void test_reverts(void **state)
{
    struct fx *f = *state;
    start(f);
    uint64_t u = put_op(f, JOURNAL_OP_UPDATE, "UPDATE t SET name = 'local' WHERE id = 2");
    uint64_t d = put_op(f, JOURNAL_OP_DELETE, "DELETE FROM t WHERE id = 3");
    uint64_t i = put_op(f, JOURNAL_OP_INSERT, "INSERT INTO t VALUES (-1000, 'new', NULL)");
    assert_q(f, ROWS, "-1000:new: 1:r1-v1:11 2:local:21 4:r4-v1:41 5:r5-v1:51");
    put_state(f, u, JOURNAL_OPS_REJECTED, "name: bad value");
    put_state(f, d, JOURNAL_OPS_DROPPED, NULL);
    put_state(f, i, JOURNAL_OPS_CONFLICT, "portal changed");
    apply_ok(f);
    assert_q(f, ROWS, "1:r1-v1:11 2:r2-v1:21 3:r3-v1:31 4:r4-v1:41 5:r5-v1:51");
    assert_int_equal(table_rows(f), 5);
    assert_q(f, KEYS, "");
    char want[512];
    snprintf(want, sizeof want, "%llu,t,update,rejected,[2],0,name: bad value %llu,t,delete,dropped,[3],0,- "
             "%llu,t,insert,conflict,[-1000],0,portal changed", (unsigned long long)u, (unsigned long long)d,
             (unsigned long long)i);
    assert_q(f, OUTBOX, want);
    struct replay_outbox_counts c;
    char err[512];
    assert_int_equal(replay_outbox_counts(replay_db(f->r), &c, err, sizeof err), 0);
    assert_int_equal(c.pending, 0);
    assert_int_equal(c.conflicts, 1);
    assert_int_equal(c.rejected, 1);
    assert_string_equal(f->warn, "");
}

/* A revert meets a row a later open op changed: that row is left, and said. */
static void test_revert_leaves_later_change(void **state)
{
    struct fx *f = *state;
    start(f);
    uint64_t a = put_op(f, JOURNAL_OP_UPDATE, "UPDATE t SET name = 'first' WHERE id IN (1, 2)");
    put_op(f, JOURNAL_OP_UPDATE, "UPDATE t SET name = 'second' WHERE id = 2");
    put_state(f, a, JOURNAL_OPS_REJECTED, NULL);
    apply_ok(f);
    assert_q(f, "SELECT group_concat(name, ' ') FROM (SELECT name FROM t WHERE id IN (1, 2) ORDER BY id)",
             "r1-v1 second");
    assert_non_null(strstr(f->warn, "1 rows left as they are, not reverted (first at key 2"));
}

/* A changeset taken on another state does not apply: the op is refused. */
static void test_op_conflict_refused(void **state)
{
    struct fx *f = *state;
    start(f);
    void *cs;
    int ncs;
    char err[2048];
    assert_int_equal(replay_op_capture(f->r, "t", run_sql, "UPDATE t SET name = 'x' WHERE id = 2", &cs, &ncs, err,
                                       sizeof err), 0);
    const int64_t two[] = {2};
    put_incremental(f, two, 1, 5);   /* the row changes before the op is journaled */
    struct journal_op op = {.kind = JOURNAL_OP_UPDATE, .params = "{}", .nparams = 2, .changeset = cs,
                            .nchangeset = (size_t)ncs, .answer = "1", .nanswer = 1};
    assert_int_equal(journal_payload_op(&f->pl, &op, err, sizeof err), 0);
    sqlite3_free(cs);
    uint64_t seq = append(f, JOURNAL_OP, "t");
    apply_fails(f, "does not apply to cache.db at key 2", "replay --skip");
    assert_int_equal(replay_applied_seq(f->r), seq - 1);
    assert_q(f, "SELECT name FROM t WHERE id = 2", "r2-v5");
    assert_q(f, "SELECT count(*) FROM _agent_outbox", "0");
}

/* A state for an op that does not exist, or has ended, is refused; replay_skip passes it. */
static void test_refused_states(void **state)
{
    struct fx *f = *state;
    start(f);
    uint64_t bad = put_state(f, 9999, JOURNAL_OPS_DONE, NULL);
    apply_fails(f, "op 9999: no such op in the outbox", "replay --skip");
    char why[2048], err[2048];
    assert_int_equal(replay_skip(f->r, bad, why, sizeof why, err, sizeof err), 0);
    assert_int_equal(replay_applied_seq(f->r), bad);
    uint64_t u = put_op(f, JOURNAL_OP_UPDATE, "UPDATE t SET name = 'local' WHERE id = 2");
    put_state(f, u, JOURNAL_OPS_DONE, NULL);
    apply_ok(f);
    bad = put_state(f, u, JOURNAL_OPS_PENDING, NULL);
    apply_fails(f, "has ended (done): no state follows an end", NULL);
    assert_int_equal(replay_skip(f->r, bad, why, sizeof why, err, sizeof err), 0);
    assert_non_null(strstr(why, "has ended"));
    /* an op_state naming another table's op */
    uint64_t v = put_op(f, JOURNAL_OP_UPDATE, "UPDATE t SET name = 'again' WHERE id = 3");
    struct journal_op_state_rec s = {.op_id = v, .state = JOURNAL_OPS_DONE};
    assert_int_equal(journal_payload_op_state(&f->pl, &s, err, sizeof err), 0);
    append(f, JOURNAL_OP_STATE, "other");
    apply_fails(f, "is of table \"t\"", NULL);
    assert_q(f, "SELECT state FROM _agent_outbox WHERE id = (SELECT max(id) FROM _agent_outbox)", "pending");
}

/* The capture changes nothing in cache.db, even when the write fails, and its
 * changeset carries the old values. */
static void test_capture(void **state)
{
    struct fx *f = *state;
    start(f);
    sqlite3 *db = replay_db(f->r);
    char *before = q_text(db, ROWS);
    void *cs;
    int ncs;
    char err[2048];
    assert_int_equal(replay_op_capture(f->r, "t", run_sql, "UPDATE t SET name = 'x' WHERE id = 2; "
                                       "DELETE FROM t WHERE id = 4", &cs, &ncs, err, sizeof err), 0);
    assert_q(f, ROWS, before);
    assert_true(ncs > 0);
    sqlite3_changeset_iter *it;
    assert_int_equal(sqlite3changeset_start(&it, ncs, cs), SQLITE_OK);
    int seen = 0;
    while (sqlite3changeset_next(it) == SQLITE_ROW) {
        const char *tab;
        int nc, op, ind;
        sqlite3_value *old = NULL, *key = NULL;
        sqlite3changeset_op(it, &tab, &nc, &op, &ind);
        assert_string_equal(tab, "t");
        assert_int_equal(sqlite3changeset_old(it, 0, &key), SQLITE_OK);
        assert_int_equal(sqlite3changeset_old(it, 1, &old), SQLITE_OK);
        if (op == SQLITE_UPDATE) {
            assert_int_equal(sqlite3_value_int64(key), 2);
            assert_string_equal((const char *)sqlite3_value_text(old), "r2-v1");
        } else {
            assert_int_equal(op, SQLITE_DELETE);
            assert_int_equal(sqlite3_value_int64(key), 4);
            assert_string_equal((const char *)sqlite3_value_text(old), "r4-v1");
        }
        seen++;
    }
    sqlite3changeset_finalize(it);
    sqlite3_free(cs);
    assert_int_equal(seen, 2);
    /* a write that fails half-way: its first statement is rolled back too */
    assert_int_equal(replay_op_capture(f->r, "t", run_sql, "DELETE FROM t WHERE id = 1; INSERT INTO t VALUES (2, 'dup', 0)",
                                       &cs, &ncs, err, sizeof err), -1);
    assert_non_null(strstr(err, "UNIQUE"));
    assert_null(cs);
    assert_q(f, ROWS, before);
    assert_true(sqlite3_get_autocommit(db));
    /* nothing changed: no changeset */
    assert_int_equal(replay_op_capture(f->r, "t", run_sql, "UPDATE t SET name = 'x' WHERE id = 99", &cs, &ncs, err,
                                       sizeof err), 0);
    assert_int_equal(ncs, 0);
    assert_null(cs);
    /* refused: an unknown table, a reserved name */
    assert_int_equal(replay_op_capture(f->r, "nope", run_sql, "SELECT 1", &cs, &ncs, err, sizeof err), -1);
    assert_non_null(strstr(err, "table nope: not cached"));
    assert_int_equal(replay_op_capture(f->r, "_agent_outbox", run_sql, "SELECT 1", &cs, &ncs, err, sizeof err), -1);
    free(before);
}

/* Table "t" with a fourth column w: another layout, the key and cursor where they were. */
static void put_schema_w(struct fx *f)
{
    const char *names[] = {"id", "name", "v", "w"};
    enum journal_coltype types[] = {JOURNAL_COL_INT, JOURNAL_COL_TEXT, JOURNAL_COL_INT, JOURNAL_COL_TEXT};
    char err[512];
    if (journal_payload_schema(&f->pl, 4, names, types, 0, 2, err, sizeof err) != 0) fail_msg("%s", err);
    append(f, JOURNAL_SCHEMA, "t");
}

#define ROWS_W                                                                                                   \
    "SELECT group_concat(id || ':' || name || ':' || coalesce(v, '') || ':' || coalesce(w, '-'), ' ') FROM"     \
    " (SELECT * FROM t ORDER BY id)"

/* A SCHEMA that recreates a table never snapshotted (on_demand) carries the
 * rows of its open ops into the new layout: the ops stay open, their rows
 * visible; their end states still apply (a revert that cannot use the old
 * layout's changeset is said, not refused), and a rebuild gives the same. */
static void test_on_demand_schema_keeps_open_ops(void **state)
{
    struct fx *f = *state;
    put_schema(f);
    const int64_t ids[] = {1, 2, 3};
    put_incremental(f, ids, 3, 1);
    apply_ok(f);
    uint64_t u = put_op(f, JOURNAL_OP_UPDATE, "UPDATE t SET name = 'local' WHERE id = 2");
    uint64_t i = put_op(f, JOURNAL_OP_INSERT, "INSERT INTO t VALUES (-1000, 'new', NULL)");
    uint64_t d = put_op(f, JOURNAL_OP_DELETE, "DELETE FROM t WHERE id = 3");
    put_schema_w(f);
    apply_ok(f);
    assert_q(f, ROWS_W, "-1000:new::- 2:local:21:-");
    assert_int_equal(table_rows(f), 2);
    char want[512];
    snprintf(want, sizeof want, "2@%llu -1000@%llu 3@%llu", (unsigned long long)u, (unsigned long long)i,
             (unsigned long long)d);
    assert_q(f, KEYS, want);
    assert_q(f, "SELECT group_concat(state, ' ') FROM (SELECT state FROM _agent_outbox ORDER BY id)",
             "pending pending pending");
    /* still protected: a pulled copy of 2 is skipped, 3 (deleted locally) too */
    const int64_t again[] = {2, 3};
    struct journal_value mc = {.type = JOURNAL_INT, .i = 2000}, mk = {.type = JOURNAL_INT, .i = 3};
    journal_payload_incremental_page(&f->pl, &mc, &mk, 4);
    for (int k = 0; k < 2; k++) {
        put_row(f, again[k], 2);
        journal_put_text(&f->pl, "w", 1);
    }
    append(f, JOURNAL_INCREMENTAL_PAGE, "t");
    apply_ok(f);
    assert_q(f, ROWS_W, "-1000:new::- 2:local:21:-");
    /* the ends apply: the insert's provisional row goes by key; the update's
     * revert cannot use the old layout's changeset: left, with a warning */
    put_state(f, i, JOURNAL_OPS_DONE, NULL);
    put_state(f, u, JOURNAL_OPS_CONFLICT, "portal changed");
    apply_ok(f);
    assert_q(f, ROWS_W, "2:local:21:-");
    assert_non_null(strstr(f->warn, "its change was not reverted: the table's layout changed since"));
    assert_null(strstr(f->warn, "its inserted rows were not removed"));
    snprintf(want, sizeof want, "3@%llu", (unsigned long long)d);
    assert_q(f, KEYS, want);
    char *rows = q_text(replay_db(f->r), ROWS_W), *outbox = q_text(replay_db(f->r), OUTBOX);
    replay_close(f->r);
    f->r = NULL;
    struct replay_opts o = opts(f);
    char err[2048];
    if (replay_rebuild(&o, NULL, err, sizeof err) != 0) fail_msg("rebuild: %s", err);
    ropen(f);
    assert_q(f, ROWS_W, rows);
    assert_q(f, OUTBOX, outbox);
    assert_q(f, KEYS, want);
    free(rows);
    free(outbox);
}

/* A table whose live layout is behind its last SCHEMA (a snapshot of the new
 * layout has not landed) refuses a capture: replay would refuse the op. */
static void test_capture_schema_behind(void **state)
{
    struct fx *f = *state;
    start(f);
    put_schema_w(f);
    apply_ok(f);
    sqlite3 *db = replay_db(f->r);
    char *before = q_text(db, ROWS);
    void *cs = NULL;
    int ncs = 0;
    char err[2048];
    assert_int_equal(replay_op_capture(f->r, "t", run_sql, "UPDATE t SET name = 'x' WHERE id = 2", &cs, &ncs, err,
                                       sizeof err), -1);
    assert_non_null(strstr(err, "table t: its cached copy still has the layout before the portal's last schema change"));
    assert_null(cs);
    assert_q(f, ROWS, before);
    free(before);
    /* the snapshot of the new layout lands: writes are accepted again */
    journal_payload_snapshot_begin(&f->pl, 0);
    uint64_t sid = append(f, JOURNAL_SNAPSHOT_BEGIN, "t");
    journal_payload_snapshot_page(&f->pl, sid, 4);
    put_row(f, 1, 2);
    journal_put_text(&f->pl, "w", 1);
    append(f, JOURNAL_SNAPSHOT_PAGE, "t");
    journal_payload_snapshot_end(&f->pl, sid, 1, NULL, NULL);
    append(f, JOURNAL_SNAPSHOT_END, "t");
    apply_ok(f);
    assert_int_equal(replay_op_capture(f->r, "t", run_sql, "UPDATE t SET name = 'x' WHERE id = 1", &cs, &ncs, err,
                                       sizeof err), 0);
    assert_true(ncs > 0);
    sqlite3_free(cs);
}

/* Bounds: ended ops older than the journal's start go; open ops stay. */
static void test_prune_ended(void **state)
{
    struct fx *f = *state;
    start(f);
    uint64_t u = put_op(f, JOURNAL_OP_UPDATE, "UPDATE t SET name = 'local' WHERE id = 2");
    uint64_t i = put_op(f, JOURNAL_OP_INSERT, "INSERT INTO t VALUES (-1000, 'new', NULL)");
    uint64_t d = put_op(f, JOURNAL_OP_DELETE, "DELETE FROM t WHERE id = 3");
    put_state(f, u, JOURNAL_OPS_DONE, NULL);
    put_state(f, i, JOURNAL_OPS_CONFLICT, "portal changed");
    apply_ok(f);
    char err[512];
    int64_t n = -1;
    assert_int_equal(replay_outbox_prune(f->r, u, &n, err, sizeof err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(replay_outbox_prune(f->r, i, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    char want[64];
    snprintf(want, sizeof want, "%llu %llu", (unsigned long long)i, (unsigned long long)d);
    assert_q(f, "SELECT group_concat(id, ' ') FROM (SELECT id FROM _agent_outbox ORDER BY id)", want);
    assert_int_equal(replay_outbox_prune(f->r, d + 100, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    snprintf(want, sizeof want, "%llu", (unsigned long long)d);
    assert_q(f, "SELECT group_concat(id, ' ') FROM (SELECT id FROM _agent_outbox ORDER BY id)", want);
    snprintf(want, sizeof want, "3@%llu", (unsigned long long)d);
    assert_q(f, KEYS, want);
    /* the open op still ends normally */
    put_state(f, d, JOURNAL_OPS_DROPPED, NULL);
    apply_ok(f);
    assert_q(f, "SELECT state FROM _agent_outbox", "dropped");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codec),
        cmocka_unit_test_setup_teardown(test_op_applied_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_protect_incremental_and_deletions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_protect_text_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_protect_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_end_during_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_states_and_done, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reverts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revert_leaves_later_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_op_conflict_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_states, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capture, setup, teardown),
        cmocka_unit_test_setup_teardown(test_on_demand_schema_keeps_open_ops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capture_schema_behind, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune_ended, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
