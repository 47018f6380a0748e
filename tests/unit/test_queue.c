/* test_queue.c — outbox_queue_write (agent/outbox/queue.h) against a real
 * journal and cache.db in a temp dir: inserts with and without `returning`,
 * provisional keys, a given key, update and delete answered with rows or a
 * count, the op journaled and in _agent_outbox; every refusal (table not
 * cached, unknown column, wrong type, bad JSON, bad JSONSQL, a constraint, too
 * many provisional rows) leaves cache.db and the journal as they were;
 * concurrent writers under one lock get distinct ops; group commit
 * (outbox_queue_writes): 120 writes share one fsync, each answered only once
 * durable, a bad one among them refused alone. (A body over serve's
 * max_body never gets here: test_serve's test_bad_input_refused, HTTP 413.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/base/buf.h"
#include "agent/outbox/queue.h"
#include "journal/journal.h"
#include "journal/rows.h"
#include "replay/outbox.h"
#include "replay/replay.h"
#include "tests/testutil.h"

struct fx {
    char *root;
    char jdir[512], db[512];
    struct store st;
    struct journal_payload pl;
    struct config_table t, u;
    pthread_mutex_t lock;
};

static uint64_t append(struct fx *f, int type, const char *table)
{
    char err[512];
    uint64_t seq;
    if (journal_payload_finish(&f->pl, err, sizeof err) != 0) fail_msg("payload: %s", err);
    if (journal_append(f->st.jw, type, table, f->pl.p, f->pl.len, &seq, err, sizeof err) != 0)
        fail_msg("append: %s", err);
    return seq;
}

/* Table "t": id INT key, name TEXT, paid BOOL, v INT; rows 1..3 applied. */
static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    f->root = tu_tmpdir("test_queue");
    assert_non_null(f->root);
    snprintf(f->jdir, sizeof f->jdir, "%s/journal", f->root);
    snprintf(f->db, sizeof f->db, "%s/cache.db", f->root);
    struct journal_opts o = {.dir = f->jdir, .level = 1};
    char err[512];
    if (journal_writer_open(&o, &f->st.jw, err, sizeof err) != 0) fail_msg("journal open: %s", err);
    struct replay_opts ro = {.db_path = f->db, .journal_dir = f->jdir};
    if (replay_open(&ro, &f->st.rp, err, sizeof err) != 0) fail_msg("replay_open: %s", err);
    const char *names[] = {"id", "name", "paid", "v"};
    enum journal_coltype types[] = {JOURNAL_COL_INT, JOURNAL_COL_TEXT, JOURNAL_COL_BOOL, JOURNAL_COL_INT};
    if (journal_payload_schema(&f->pl, 4, names, types, 0, -1, err, sizeof err) != 0) fail_msg("%s", err);
    append(f, JOURNAL_SCHEMA, "t");
    journal_payload_snapshot_begin(&f->pl, 0);
    uint64_t id = append(f, JOURNAL_SNAPSHOT_BEGIN, "t");
    journal_payload_snapshot_page(&f->pl, id, 4);
    for (int i = 1; i <= 3; i++) {
        char name[16];
        int n = snprintf(name, sizeof name, "r%d", i);
        journal_put_int(&f->pl, i);
        journal_put_text(&f->pl, name, (size_t)n);
        journal_put_int(&f->pl, i % 2);
        journal_put_int(&f->pl, i * 10);
    }
    append(f, JOURNAL_SNAPSHOT_PAGE, "t");
    struct journal_value none = {.type = JOURNAL_NULL};
    journal_payload_snapshot_end(&f->pl, id, 3, &none, &none);
    append(f, JOURNAL_SNAPSHOT_END, "t");
    if (replay_apply(f->st.rp, JOURNAL_SEQ_MAX, NULL, err, sizeof err) != 0) fail_msg("replay_apply: %s", err);
    f->t.name = "t";
    f->t.key = "id";
    f->u.name = "u";                   /* configured, never pulled */
    f->u.key = "id";
    pthread_mutex_init(&f->lock, NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    replay_close(f->st.rp);
    journal_writer_close(f->st.jw);
    journal_payload_free(&f->pl);
    pthread_mutex_destroy(&f->lock);
    tu_rmrf(f->root);
    free(f->root);
    free(f);
    return 0;
}

static char *q_text(struct fx *f, const char *sql)
{
    sqlite3 *db = replay_db(f->st.rp);
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
    char *got = q_text(f, sql);
    if (strcmp(got, want) != 0) fail_msg("%s:\n got  %s\n want %s", sql, got, want);
    free(got);
}

#define ROWS                                                                                                  \
    "SELECT group_concat(id || ':' || coalesce(name, '-') || ':' || coalesce(paid, '-') || ':' || coalesce(v, '-'), " \
    "' ') FROM (SELECT * FROM t ORDER BY id)"
#define OUTBOX \
    "SELECT coalesce(group_concat(id || ',' || tbl || ',' || kind || ',' || state || ',' || keys, ' '), '') " \
    "FROM (SELECT * FROM _agent_outbox ORDER BY id)"

/* Queue and expect success: the answer, and the op id it must have. */
static uint64_t queue_ok(struct fx *f, const char *method, const char *params, const char *want_answer)
{
    struct outbox_queued r;
    char err[1024];
    uint64_t next = journal_writer_next_seq(f->st.jw);
    int rc = outbox_queue_write(&f->st, &f->lock, &f->t, method, params, &r, err, sizeof err);
    if (rc != 0) fail_msg("%s %s: %d %s", method, params, rc, err);
    if (strcmp(r.answer, want_answer) != 0) fail_msg("%s %s:\n answer %s\n want   %s", method, params, r.answer,
                                                    want_answer);
    assert_int_equal(r.op_id, next);
    assert_int_equal(journal_writer_next_seq(f->st.jw), next + 1);
    uint64_t id = r.op_id;
    outbox_queued_free(&r);
    /* the op as journaled: params as given (without provisional keys), the answer */
    struct replay_outbox_op op;
    assert_int_equal(replay_outbox_get(replay_db(f->st.rp), id, &op, err, sizeof err), 0);
    assert_string_equal(op.params, params);
    assert_string_equal(op.answer, want_answer);
    assert_string_equal(op.kind, method);
    assert_string_equal(op.state, "pending");
    replay_outbox_op_clear(&op);
    return id;
}

/* Queue and expect a refusal naming `want`, with cache.db and the journal unchanged. */
static void queue_refused(struct fx *f, const struct config_table *t, const char *method, const char *params,
                          const char *want)
{
    char *rows = q_text(f, ROWS), *outbox = q_text(f, OUTBOX);
    uint64_t next = journal_writer_next_seq(f->st.jw);
    struct outbox_queued r;
    char err[1024];
    int rc = outbox_queue_write(&f->st, &f->lock, t, method, params, &r, err, sizeof err);
    if (rc != OUTBOX_EREFUSED) fail_msg("%s %s: rc %d (%s), want refused", method, params, rc, rc ? err : r.answer);
    if (!strstr(err, want)) fail_msg("%s %s: error \"%s\" lacks \"%s\"", method, params, err, want);
    assert_null(r.answer);
    assert_int_equal(journal_writer_next_seq(f->st.jw), next);
    assert_q(f, ROWS, rows);
    assert_q(f, OUTBOX, outbox);
    free(rows);
    free(outbox);
}

static void test_insert(void **state)
{
    struct fx *f = *state;
    uint64_t n = journal_writer_next_seq(f->st.jw);
    /* without the key, without returning: provisional keys, the count */
    uint64_t a = queue_ok(f, "insert", "{\"into\":\"t\",\"columns\":[\"name\",\"paid\"],\"values\":[[\"x\",true],"
                                       "[\"y\",false]]}", "2");
    assert_int_equal(a, n);
    char want[512];
    long long k0 = -(long long)a * 1000;
    snprintf(want, sizeof want, "%lld:y:0:- %lld:x:1:- 1:r1:1:10 2:r2:0:20 3:r3:1:30", k0 - 1, k0);
    assert_q(f, ROWS, want);
    snprintf(want, sizeof want, "%llu,t,insert,pending,[%lld,%lld]", (unsigned long long)a, k0 - 1, k0);   /* SQLite's order */
    assert_q(f, OUTBOX, want);
    /* with returning: rows shaped as the portal's (booleans true/false), the provisional key shown */
    uint64_t b = a + 1;
    snprintf(want, sizeof want, "[[%lld,\"z\",true]]", -(long long)b * 1000);
    assert_int_equal(queue_ok(f, "insert", "{\"into\":\"t\",\"columns\":[\"name\",\"paid\"],\"values\":[[\"z\",true]],"
                                           "\"returning\":[\"id\",\"name\",\"paid\"]}", want), b);
    /* the key given: kept as it is */
    queue_ok(f, "insert", "{\"into\":\"t\",\"columns\":[\"id\",\"name\"],\"values\":[[7,\"seven\"]],"
                          "\"returning\":\"*\"}", "[[7,\"seven\",null,null]]");
    /* every column, no `columns` */
    queue_ok(f, "insert", "{\"into\":\"t\",\"values\":[[8,\"eight\",false,80]]}", "1");
    assert_q(f, "SELECT count(*) FROM t", "8");
    assert_q(f, "SELECT count(*) FROM _agent_outbox WHERE state = 'pending'", "4");
}

static void test_update_delete(void **state)
{
    struct fx *f = *state;
    queue_ok(f, "update", "{\"table\":\"t\",\"set\":{\"name\":\"two\",\"paid\":true},\"where\":{\"eq\":[\"id\",2]}}",
             "1");
    queue_ok(f, "update", "{\"table\":\"t\",\"set\":{\"v\":5},\"where\":{\"gt\":[\"id\",1]},"
                          "\"returning\":[\"id\",\"v\"]}", "[[2,5],[3,5]]");
    /* matching nothing: still an op (it is sent), count 0 */
    uint64_t none = queue_ok(f, "update", "{\"table\":\"t\",\"set\":{\"v\":1},\"where\":{\"eq\":[\"id\",99]}}", "0");
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT keys FROM _agent_outbox WHERE id = %llu", (unsigned long long)none);
    assert_q(f, sql, "[]");
    queue_ok(f, "delete", "{\"from\":\"t\",\"where\":{\"eq\":[\"id\",1]}}", "1");
    queue_ok(f, "delete", "{\"from\":\"t\",\"where\":{\"eq\":[\"id\",3]},\"returning\":\"name\"}", "[[\"r3\"]]");
    assert_q(f, ROWS, "2:two:1:5");
    assert_q(f, "SELECT group_concat(kind, ' ') FROM (SELECT kind FROM _agent_outbox ORDER BY id)",
             "update update update delete delete");
}

static void test_refused(void **state)
{
    struct fx *f = *state;
    queue_refused(f, &f->u, "insert", "{\"into\":\"u\",\"values\":[[1]]}", "table u is not cached yet");
    queue_refused(f, &f->t, "insert", "{\"into\":\"t\",\"columns\":[\"nope\"],\"values\":[[1]]}",
                  "unknown column \"nope\" in t");
    queue_refused(f, &f->t, "update", "{\"table\":\"t\",\"set\":{\"nope\":1},\"where\":{\"eq\":[\"id\",1]}}",
                  "unknown column");
    queue_refused(f, &f->t, "update", "{\"table\":\"t\",\"set\":{\"v\":\"ten\"},\"where\":{\"eq\":[\"id\",1]}}",
                  "set.v: column \"v\" of t takes an integer, got a string");
    queue_refused(f, &f->t, "insert", "{\"into\":\"t\",\"columns\":[\"name\",\"paid\"],\"values\":[[\"a\",1]]}",
                  "values[0][1]: column \"paid\" of t takes true or false, got a number");
    queue_refused(f, &f->t, "insert", "{\"into\":\"t\",\"columns\":[\"name\"],\"values\":[[5]]}",
                  "column \"name\" of t takes a string, got a number");
    queue_refused(f, &f->t, "insert", "{\"into\":\"t\",\"values\":[[1,", "params:");
    queue_refused(f, &f->t, "insert", "[1]", "params: expected an object");
    queue_refused(f, &f->t, "update", "{\"table\":\"t\",\"set\":5}", "update:");
    queue_refused(f, &f->t, "delete", "{\"from\":\"t\",\"where\":{\"nope_op\":[\"id\",1]}}", "delete:");
    queue_refused(f, &f->t, "select", "{\"from\":\"t\",\"data\":[\"id\"]}", "not a write");
    queue_refused(f, &f->t, "update", "{\"table\":\"u\",\"set\":{\"v\":1}}", "unknown table");
    /* the portal would refuse a duplicate key too */
    queue_refused(f, &f->t, "insert", "{\"into\":\"t\",\"columns\":[\"id\",\"name\"],\"values\":[[2,\"dup\"]]}",
                  "UNIQUE constraint failed");
    /* more provisional keys than one op may take */
    struct buf big = {0};
    buf_puts(&big, "{\"into\":\"t\",\"columns\":[\"name\"],\"values\":[");
    for (int i = 0; i <= OUTBOX_PROVISIONAL_ROWS; i++) buf_puts(&big, i ? ",[\"n\"]" : "[\"n\"]");
    buf_puts(&big, "]}");
    queue_refused(f, &f->t, "insert", big.p, "at most 1000 rows");
    buf_free(&big);
    assert_q(f, ROWS, "1:r1:1:10 2:r2:0:20 3:r3:1:30");
    assert_q(f, OUTBOX, "");
}

/* Ops survive a reopen (the journal is the durable copy) and a rebuild. */
static void test_durable(void **state)
{
    struct fx *f = *state;
    queue_ok(f, "insert", "{\"into\":\"t\",\"columns\":[\"name\"],\"values\":[[\"kept\"]]}", "1");
    queue_ok(f, "delete", "{\"from\":\"t\",\"where\":{\"eq\":[\"id\",2]}}", "1");
    char *rows = q_text(f, ROWS), *outbox = q_text(f, OUTBOX);
    replay_close(f->st.rp);
    char err[1024];
    struct replay_opts ro = {.db_path = f->db, .journal_dir = f->jdir};
    assert_int_equal(replay_rebuild(&ro, NULL, err, sizeof err), 0);
    assert_int_equal(replay_open(&ro, &f->st.rp, err, sizeof err), 0);
    assert_q(f, ROWS, rows);
    assert_q(f, OUTBOX, outbox);
    free(rows);
    free(outbox);
}

struct writer_arg {
    struct fx *f;
    int n, failed;
};

static void *writer(void *p)
{
    struct writer_arg *a = p;
    for (int i = 0; i < a->n; i++) {
        struct outbox_queued r;
        char err[1024];
        if (outbox_queue_write(&a->f->st, &a->f->lock, &a->f->t, "insert",
                               "{\"into\":\"t\",\"columns\":[\"name\"],\"values\":[[\"c\"]]}", &r, err, sizeof err) != 0)
            a->failed++;
        outbox_queued_free(&r);
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    struct fx *f = *state;
    struct writer_arg a[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (struct writer_arg){f, 10, 0};
        pthread_create(&th[i], NULL, writer, &a[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(a[i].failed, 0);
    }
    assert_q(f, "SELECT count(*) || ' ' || count(DISTINCT id) FROM t WHERE name = 'c'", "40 40");
    assert_q(f, "SELECT count(*) FROM _agent_outbox", "40");
    assert_q(f, "SELECT count(*) FROM t JOIN _agent_outbox o ON t.id = -o.id * 1000", "40");
}

/* Group commit: the journal reopened with a fault hook that counts fdatasync. */
static int count_sync(void *ctx, const char *op)
{
    int *syncs = ctx;
    if (strcmp(op, "fdatasync") == 0) (*syncs)++;
    return 0;
}

/* outbox_queue_writes: 120 writes in one call (inserts, and updates that all
 * hit row 1: each must be captured on the ones before it, or replay would
 * refuse its changeset), one bad write among them refused alone; one fsync
 * for all, every answer an op that is durable and applied, in order. */
static void test_group_commit(void **state)
{
    struct fx *f = *state;
    char err[512];
    int syncs = 0;
    journal_writer_close(f->st.jw);
    struct journal_opts o = {.dir = f->jdir, .level = 1, .fault = count_sync, .fault_ctx = &syncs};
    if (journal_writer_open(&o, &f->st.jw, err, sizeof err) != 0) fail_msg("journal reopen: %s", err);
    syncs = 0;
    enum { N = 121, BAD = 57 };
    struct outbox_write *w = calloc(N, sizeof *w);
    char (*upd)[128] = calloc(N, sizeof *upd);
    for (int i = 0; i < N; i++) {
        snprintf(upd[i], sizeof upd[i], "{\"table\":\"t\",\"set\":{\"v\":%d},\"where\":{\"eq\":[\"id\",1]}}", i);
        int update = i % 2;
        w[i] = (struct outbox_write){.t = &f->t, .method = update ? "update" : "insert",
                                     .params_json = update ? upd[i] : "{\"into\":\"t\",\"columns\":[\"name\"],\"values\":[[\"g\"]]}"};
    }
    w[BAD].method = "update";
    w[BAD].params_json = "{\"table\":\"t\",\"set\":{\"nope\":1}}";
    outbox_queue_writes(&f->st, &f->lock, w, N);
    assert_int_equal(syncs, 1);
    uint64_t last = 0;
    for (int i = 0; i < N; i++) {
        if (i == BAD) {
            assert_int_equal(w[i].rc, OUTBOX_EREFUSED);
            assert_non_null(strstr(w[i].err, "nope"));
            continue;
        }
        if (w[i].rc != 0) fail_msg("write %d: %s", i, w[i].err);
        if (w[i].out.op_id > journal_writer_durable_seq(f->st.jw) || w[i].out.op_id <= last)
            fail_msg("write %d: op %llu answered before durable, or out of order", i,
                     (unsigned long long)w[i].out.op_id);
        last = w[i].out.op_id;
        outbox_queued_free(&w[i].out);
    }
    free(w);
    free(upd);
    assert_q(f, "SELECT count(*) || ' ' || count(DISTINCT id) FROM t WHERE name = 'g'", "61 61");
    assert_q(f, "SELECT v FROM t WHERE id = 1", "119");
    assert_int_equal(replay_applied_seq(f->st.rp), journal_writer_next_seq(f->st.jw) - 1);
    assert_q(f, "SELECT count(*) || ' ' || count(DISTINCT id) FROM _agent_outbox", "120 120");
    /* And the journal alone gives the same cache (nothing applied that is not journaled). */
    char *rows = q_text(f, ROWS);
    replay_close(f->st.rp);
    struct replay_opts ro = {.db_path = f->db, .journal_dir = f->jdir};
    assert_int_equal(replay_rebuild(&ro, NULL, err, sizeof err), 0);
    assert_int_equal(replay_open(&ro, &f->st.rp, err, sizeof err), 0);
    assert_q(f, ROWS, rows);
    free(rows);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_insert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_update_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_durable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
