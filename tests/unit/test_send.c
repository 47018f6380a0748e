/* test_send.c — agent/outbox/send.c against the fake portal.
 *
 * Group setup: one fake portal keeping its data in a file (th_site), writes
 * answered with a count. Each test has a storage dir of its own (store_open:
 * a real journal and cache.db), pulls `package` (id, name, paid) and creates
 * ops as the daemon will: replay_op_capture of plain SQL, journal_append(OP),
 * replay_apply. Then outbox_send_next steps, and the test checks the op's
 * state, the portal's file, the portal's write counter (/_fake/stats: what
 * was sent, and that nothing was sent twice) and cache.db. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/buf.h"
#include "agent/base/log.h"
#include "agent/config/config.h"
#include "agent/outbox/send.h"
#include "agent/portal/remote.h"
#include "agent/pull/pull.h"
#include "agent/pull/store.h"
#include "journal/journal.h"
#include "journal/rows.h"
#include "replay/outbox.h"
#include "replay/replay.h"
#include "tests/harness/harness.h"
#include "tests/testutil.h"

static struct th_site g_site;
static int g_stores;

struct fx {
    struct config cfg;
    struct store st;
    remote *rm;
    struct pull_ctx c;
    int open;
};

static int group_setup(void **state)
{
    log_init(LOG_ERROR, LOG_TEXT);
    setenv("IA_SEND_PW", "secret", 1);
    const char *args[] = {"--rows", "50", "--write-result", "count", NULL};
    return th_site_start(&g_site, "test_send", NULL, args);
}

static int group_teardown(void **state)
{
    th_site_stop(&g_site);
    return 0;
}

static int setup(void **state)
{
    *state = calloc(1, sizeof(struct fx));
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    if (f->open) {
        remote_free(f->rm);
        store_close(&f->st);
        config_free(&f->cfg);
    }
    tu_admin(&g_site.portal, "/_fake/faults", "{\"write_queue\":[]}");
    free(f);
    return 0;
}

/* A fresh storage dir with `package` pulled. */
static void fx_open(struct fx *f)
{
    struct buf t = {0};
    char err[1024];
    buf_printf(&t, "[remote]\nurl = \"%s\"\nusername = \"admin\"\npassword_env = \"IA_SEND_PW\"\nretries = 0\n"
                   "[storage]\ndir = \"%s/store-%d\"\n[[table]]\nname = \"package\"\nstrategy = \"full\"\n"
                   "columns = [\"id\", \"name\", \"paid\"]\n",
               g_site.portal.url, g_site.dir, ++g_stores);
    if (config_parse("test_send.toml", t.p, t.len, &f->cfg, err, sizeof err) != 0) fail_msg("config: %s", err);
    buf_free(&t);
    if (store_open(&f->cfg, 1, &f->st, err, sizeof err) != 0) fail_msg("store: %s", err);
    f->rm = remote_from_config(&f->cfg, err, sizeof err);
    if (!f->rm) fail_msg("remote: %s", err);
    f->open = 1;
    f->c = (struct pull_ctx){.cfg = &f->cfg, .remote = f->rm, .jw = f->st.jw, .rp = f->st.rp};
    struct pull_result r = {0};
    if (pull_table(&f->c, &f->cfg.tables[0], 1, &r) != 0) fail_msg("pull: %s", r.error);
}

/* ---- the portal ------------------------------------------------------------------------ */

static long long portal_int(const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    return th_db_int(g_site.portal_db, sql);
}

static char *portal_text(const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *q;
    if (sqlite3_open_v2(g_site.portal_db, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
        fail_msg("%s on the portal: %s", sql, sqlite3_errmsg(db));
    char *out = NULL;
    if (sqlite3_step(q) == SQLITE_ROW) out = strdup(sqlite3_column_text(q, 0) ? (const char *)sqlite3_column_text(q, 0) : "");
    sqlite3_finalize(q);
    sqlite3_close(db);
    return out ? out : strdup("<no row>");
}

/* One of the portal's counters (/_fake/stats): "writes", "selects". */
static long long portal_stat(const char *name)
{
    char url[512], key[64], *resp = NULL;
    snprintf(url, sizeof url, "%s/_fake/stats", g_site.portal.url);
    if (tu_http(url, NULL, &resp) != 200 || !resp) fail_msg("GET /_fake/stats");
    int n = snprintf(key, sizeof key, "\"%s\":", name);
    const char *w = strstr(resp, key);
    if (!w) fail_msg("no %s in %s", name, resp);
    long long v = atoll(w + n);
    free(resp);
    return v;
}

static long long portal_writes(void) { return portal_stat("writes"); }

/* A write on the portal by someone else (the test's own client). */
static void portal_write(struct fx *f, const char *method, const char *params)
{
    struct buf res = {0};
    char err[1024];
    if (remote_write(f->rm, method, params, &res, err, sizeof err) != REMOTE_OK) fail_msg("%s: %s", method, err);
    buf_free(&res);
}

/* Two distinct ids on the portal, from the lowest: k = 0, 1, ... */
static long long some_id(int k)
{
    return portal_int("SELECT id FROM package ORDER BY id LIMIT 1 OFFSET %d", k);
}

/* ---- the cache ------------------------------------------------------------------------- */

static char *cache_text(struct fx *f, const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(replay_db(f->st.rp), sql, -1, &q, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(replay_db(f->st.rp)));
    char *out = NULL;
    if (sqlite3_step(q) == SQLITE_ROW)
        out = strdup(sqlite3_column_text(q, 0) ? (const char *)sqlite3_column_text(q, 0) : "<null>");
    sqlite3_finalize(q);
    return out ? out : strdup("<no row>");
}

static void assert_cache(struct fx *f, const char *want, const char *sql)
{
    char *got = cache_text(f, "%s", sql);
    if (strcmp(got, want) != 0) fail_msg("cache: %s = \"%s\", want \"%s\"", sql, got, want);
    free(got);
}

static void assert_portal(const char *want, const char *sql)
{
    char *got = portal_text(sql);
    if (strcmp(got, want) != 0) fail_msg("portal: %s = \"%s\", want \"%s\"", sql, got, want);
    free(got);
}

static void assert_state(struct fx *f, uint64_t id, const char *want)
{
    char *got = cache_text(f, "SELECT state FROM _agent_outbox WHERE id = %llu", (unsigned long long)id);
    if (strcmp(got, want) != 0) fail_msg("op %llu: state %s, want %s", (unsigned long long)id, got, want);
    free(got);
}

/* The cached package rows equal the portal's, value for value. */
static void assert_same_as_portal(struct fx *f)
{
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT (SELECT count(*) FROM (SELECT id, name, paid FROM main.package EXCEPT "
             "SELECT id, name, paid FROM p.package)) + (SELECT count(*) FROM (SELECT id, name, paid FROM p.package "
             "EXCEPT SELECT id, name, paid FROM main.package))");
    sqlite3 *db = replay_db(f->st.rp);
    char att[1024];
    snprintf(att, sizeof att, "ATTACH 'file:%s?mode=ro' AS p", g_site.portal_db);
    if (sqlite3_exec(db, att, NULL, NULL, NULL) != SQLITE_OK) fail_msg("attach: %s", sqlite3_errmsg(db));
    sqlite3_stmt *q;
    long long diff = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
        diff = sqlite3_column_int64(q, 0);
    else
        fail_msg("compare: %s", sqlite3_errmsg(db));
    sqlite3_finalize(q);
    sqlite3_exec(db, "DETACH p", NULL, NULL, NULL);
    if (diff != 0) fail_msg("the cache's package differs from the portal's in %lld rows", diff);
}

/* ---- ops --------------------------------------------------------------------------------- */

static int run_sql(sqlite3 *db, void *ctx, char *err, size_t errlen)
{
    if (sqlite3_exec(db, ctx, NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(db));
        return -1;
    }
    return 0;
}

static void append_apply(struct fx *f, int type, struct journal_payload *pl, uint64_t *seq)
{
    char err[2048];
    if (journal_append(f->st.jw, type, "package", pl->p, pl->len, seq, err, sizeof err) != 0) fail_msg("%s", err);
    if (replay_apply(f->st.rp, JOURNAL_SEQ_MAX, NULL, err, sizeof err) != 0) fail_msg("replay: %s", err);
    journal_payload_free(pl);
}

/* Accept a write as the daemon will: sql evaluated on cache.db, params sent later. */
static uint64_t put_op(struct fx *f, int kind, const char *params, const char *sql)
{
    void *cs;
    int ncs;
    char err[2048];
    if (replay_op_capture(f->st.rp, "package", run_sql, (void *)sql, &cs, &ncs, err, sizeof err) != 0)
        fail_msg("capture: %s", err);
    struct journal_op op = {.kind = kind, .params = params, .nparams = strlen(params), .changeset = cs,
                            .nchangeset = (size_t)ncs, .answer = "1", .nanswer = 1};
    struct journal_payload pl = {0};
    if (journal_payload_op(&pl, &op, err, sizeof err) != 0) fail_msg("%s", err);
    sqlite3_free(cs);
    uint64_t seq;
    append_apply(f, JOURNAL_OP, &pl, &seq);
    return seq;
}

static void put_state(struct fx *f, uint64_t id, int state)
{
    struct journal_op_state_rec s = {.op_id = id, .state = state, .message = "", .nmessage = 0};
    struct journal_payload pl = {0};
    char err[512];
    if (journal_payload_op_state(&pl, &s, err, sizeof err) != 0) fail_msg("%s", err);
    append_apply(f, JOURNAL_OP_STATE, &pl, NULL);
}

/* An update of package `id`'s name, as op and as the local SQL. */
static uint64_t put_update(struct fx *f, long long id, const char *name)
{
    char params[512], sql[512];
    snprintf(params, sizeof params, "{\"table\":\"package\",\"set\":{\"name\":\"%s\"},\"where\":{\"eq\":[\"id\",%lld]}}",
             name, id);
    snprintf(sql, sizeof sql, "UPDATE package SET name = '%s' WHERE id = %lld", name, id);
    return put_op(f, JOURNAL_OP_UPDATE, params, sql);
}

/* An insert with a provisional key (-op id × 1000), returning the portal's id
 * when `returning`. */
static uint64_t put_insert(struct fx *f, const char *name, int returning)
{
    char params[512], sql[512];
    long long prov = -(long long)journal_writer_next_seq(f->st.jw) * 1000;
    snprintf(params, sizeof params, "{\"into\":\"package\",\"columns\":[\"name\",\"paid\"],\"values\":[[\"%s\",true]]%s}",
             name, returning ? ",\"returning\":\"id\"" : "");
    snprintf(sql, sizeof sql, "INSERT INTO package (id, name, paid) VALUES (%lld, '%s', 1)", prov, name);
    return put_op(f, JOURNAL_OP_INSERT, params, sql);
}

static void step_with(struct fx *f, struct outbox_sender *s, enum config_conflict policy, enum outbox_step want,
                      struct outbox_result *r)
{
    f->cfg.tables[0].conflict = policy;
    if (outbox_send_next(&f->c, s, r) != 0) fail_msg("outbox_send_next: %s", r->msg);
    if (r->step != want)
        fail_msg("step: %s (%s), want %s", outbox_step_name(r->step), r->msg, outbox_step_name(want));
}

static void step(struct fx *f, enum config_conflict policy, enum outbox_step want, struct outbox_result *r)
{
    step_with(f, NULL, policy, want, r);
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_update_done(void **state)
{
    struct fx *f = *state;
    struct outbox_result r;
    fx_open(f);
    long long id = some_id(0);
    uint64_t op = put_update(f, id, "sent-update");
    long long w0 = portal_writes();
    step(f, CONFLICT_PORTAL, OUTBOX_DONE, &r);
    assert_int_equal(r.op_id, op);
    assert_true(r.sent);
    assert_int_equal(portal_writes(), w0 + 1);
    assert_state(f, op, "done");
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT name FROM package WHERE id = %lld", id);
    assert_portal("sent-update", sql);
    assert_same_as_portal(f);
    step(f, CONFLICT_PORTAL, OUTBOX_IDLE, &r);
    assert_int_equal(portal_writes(), w0 + 1);
}

static void test_delete_done(void **state)
{
    struct fx *f = *state;
    struct outbox_result r;
    fx_open(f);
    long long id = some_id(1);
    char params[256], sql[256];
    snprintf(params, sizeof params, "{\"from\":\"package\",\"where\":{\"eq\":[\"id\",%lld]}}", id);
    snprintf(sql, sizeof sql, "DELETE FROM package WHERE id = %lld", id);
    uint64_t op = put_op(f, JOURNAL_OP_DELETE, params, sql);
    step(f, CONFLICT_PORTAL, OUTBOX_DONE, &r);
    assert_state(f, op, "done");
    snprintf(sql, sizeof sql, "SELECT count(*) FROM package WHERE id = %lld", id);
    assert_portal("0", sql);
    assert_cache(f, "0", sql);
    assert_same_as_portal(f);
}

static void test_insert_done(void **state)
{
    struct fx *f = *state;
    struct outbox_result r;
    fx_open(f);
    uint64_t op = put_insert(f, "sent-insert", 1);
    assert_cache(f, "1", "SELECT count(*) FROM package WHERE id < 0 AND name = 'sent-insert'");
    step(f, CONFLICT_PORTAL, OUTBOX_DONE, &r);
    assert_state(f, op, "done");
    assert_string_equal(r.repull, "");             /* `returning` named the new key: re-read at once */
    assert_portal("1", "SELECT count(*) FROM package WHERE name = 'sent-insert'");
    assert_cache(f, "0", "SELECT count(*) FROM package WHERE id < 0");
    char *pid = portal_text("SELECT id FROM package WHERE name = 'sent-insert'");
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT name FROM package WHERE id = %s", pid);
    assert_cache(f, "sent-insert", sql);
    free(pid);
    assert_same_as_portal(f);

    /* Without `returning` the answer is a count: the table's pull brings the row. */
    uint64_t op2 = put_insert(f, "counted-insert", 0);
    step(f, CONFLICT_PORTAL, OUTBOX_DONE, &r);
    assert_state(f, op2, "done");
    assert_string_equal(r.repull, "package");
    assert_cache(f, "0", "SELECT count(*) FROM package WHERE id < 0");
    struct pull_result pr = {0};
    if (pull_table(&f->c, &f->cfg.tables[0], 1, &pr) != 0) fail_msg("pull: %s", pr.error);
    assert_cache(f, "1", "SELECT count(*) FROM package WHERE name = 'counted-insert'");
    assert_same_as_portal(f);
}

static void test_conflict_portal(void **state)
{
    struct fx *f = *state;
    struct outbox_result r;
    fx_open(f);
    long long id = some_id(2);
    uint64_t op = put_update(f, id, "mine");
    char params[256], sql[256];
    snprintf(params, sizeof params, "{\"table\":\"package\",\"set\":{\"name\":\"theirs\"},\"where\":{\"eq\":[\"id\",%lld]}}", id);
    portal_write(f, "update", params);
    long long w0 = portal_writes();
    step(f, CONFLICT_PORTAL, OUTBOX_CONFLICT, &r);
    assert_false(r.sent);
    assert_int_equal(portal_writes(), w0);
    assert_state(f, op, "conflict");
    assert_non_null(strstr(r.msg, "name"));
    snprintf(sql, sizeof sql, "SELECT name FROM package WHERE id = %lld", id);
    assert_portal("theirs", sql);
    assert_cache(f, "theirs", sql);
    assert_same_as_portal(f);
}

static void test_conflict_agent(void **state)
{
    struct fx *f = *state;
    struct outbox_result r;
    fx_open(f);
    long long id = some_id(3);
    uint64_t op = put_update(f, id, "agent-wins");
    char params[256], sql[256];
    snprintf(params, sizeof params, "{\"table\":\"package\",\"set\":{\"name\":\"theirs-too\"},\"where\":{\"eq\":[\"id\",%lld]}}",
             id);
    portal_write(f, "update", params);
    step(f, CONFLICT_AGENT, OUTBOX_DONE, &r);
    assert_true(r.sent);
    assert_state(f, op, "done");
    snprintf(sql, sizeof sql, "SELECT name FROM package WHERE id = %lld", id);
    assert_portal("agent-wins", sql);
    assert_cache(f, "agent-wins", sql);
}

static void test_rejected_then_next(void **state)
{
    struct fx *f = *state;
    struct outbox_result r;
    fx_open(f);
    long long prov = -(long long)journal_writer_next_seq(f->st.jw) * 1000;
    char sql[256];
    snprintf(sql, sizeof sql, "INSERT INTO package (id, name, paid) VALUES (%lld, 'refused', 0)", prov);
    uint64_t bad = put_op(f, JOURNAL_OP_INSERT,
                          "{\"into\":\"package\",\"columns\":[\"no_such_column\"],\"values\":[[\"refused\"]]}", sql);
    long long id = some_id(4);
    uint64_t good = put_update(f, id, "after-rejected");
    step(f, CONFLICT_PORTAL, OUTBOX_REJECTED, &r);
    assert_int_equal(r.op_id, bad);
    assert_state(f, bad, "rejected");
    char *msg = cache_text(f, "SELECT last_error FROM _agent_outbox WHERE id = %llu", (unsigned long long)bad);
    if (!strstr(msg, "no_such_column")) fail_msg("rejected without the portal's message: %s", msg);
    free(msg);
    assert_cache(f, "0", "SELECT count(*) FROM package WHERE name = 'refused'");   /* reverted */
    step(f, CONFLICT_PORTAL, OUTBOX_DONE, &r);
    assert_int_equal(r.op_id, good);
    snprintf(sql, sizeof sql, "SELECT name FROM package WHERE id = %lld", id);
    assert_portal("after-rejected", sql);
}

/* The portal runs the write and the answer is lost: `sent`, then read back
 * and done without a second write. */
static void test_answer_lost(void **state)
{
    struct fx *f = *state;
    struct outbox_result r;
    fx_open(f);
    long long id = some_id(5);
    uint64_t op = put_update(f, id, "lost-update");
    tu_admin(&g_site.portal, "/_fake/faults", "{\"write_queue\":[\"drop\"]}");
    long long w0 = portal_writes();
    step(f, CONFLICT_PORTAL, OUTBOX_UNKNOWN, &r);
    assert_state(f, op, "sent");
    long long w1 = portal_writes();
    assert_true(w1 >= w0 + 1);
    step(f, CONFLICT_PORTAL, OUTBOX_DONE, &r);
    assert_false(r.sent);
    assert_int_equal(portal_writes(), w1);
    assert_state(f, op, "done");
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT name FROM package WHERE id = %lld", id);
    assert_portal("lost-update", sql);
    assert_same_as_portal(f);

    uint64_t ins = put_insert(f, "lost-insert", 0);
    tu_admin(&g_site.portal, "/_fake/faults", "{\"write_queue\":[\"500after\"]}");
    step(f, CONFLICT_PORTAL, OUTBOX_UNKNOWN, &r);
    assert_state(f, ins, "sent");
    w1 = portal_writes();
    step(f, CONFLICT_PORTAL, OUTBOX_DONE, &r);
    assert_false(r.sent);
    assert_int_equal(portal_writes(), w1);
    assert_state(f, ins, "done");
    assert_portal("1", "SELECT count(*) FROM package WHERE name = 'lost-insert'");
    assert_cache(f, "0", "SELECT count(*) FROM package WHERE id < 0");
    step(f, CONFLICT_PORTAL, OUTBOX_IDLE, &r);
    assert_portal("1", "SELECT count(*) FROM package WHERE name = 'lost-insert'");
}

/* A crash after `sending` was journaled, before the request left: read back
 * (the pre-image, or no such row), then sent once. */
static void test_crash_before_send(void **state)
{
    struct fx *f = *state;
    struct outbox_result r;
    fx_open(f);
    long long id = some_id(6);
    uint64_t op = put_update(f, id, "after-crash");
    put_state(f, op, JOURNAL_OPS_SENDING);
    assert_state(f, op, "sent");
    long long w0 = portal_writes();
    step(f, CONFLICT_PORTAL, OUTBOX_DONE, &r);
    assert_true(r.sent);
    assert_int_equal(portal_writes(), w0 + 1);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT name FROM package WHERE id = %lld", id);
    assert_portal("after-crash", sql);

    uint64_t ins = put_insert(f, "crash-insert", 1);
    put_state(f, ins, JOURNAL_OPS_SENDING);
    step(f, CONFLICT_PORTAL, OUTBOX_DONE, &r);
    assert_true(r.sent);
    assert_int_equal(portal_writes(), w0 + 2);
    assert_portal("1", "SELECT count(*) FROM package WHERE name = 'crash-insert'");
    assert_same_as_portal(f);
}

/* An update whose row someone else changed while it was `sent` (neither
 * its values nor the pre-image): conflict, never resent. */
static void test_sent_changed_is_conflict(void **state)
{
    struct fx *f = *state;
    struct outbox_result r;
    fx_open(f);
    long long id = some_id(7);
    uint64_t op = put_update(f, id, "never-arrived");
    put_state(f, op, JOURNAL_OPS_SENDING);
    char params[256];
    snprintf(params, sizeof params, "{\"table\":\"package\",\"set\":{\"name\":\"third\"},\"where\":{\"eq\":[\"id\",%lld]}}", id);
    portal_write(f, "update", params);
    long long w0 = portal_writes();
    step(f, CONFLICT_AGENT, OUTBOX_CONFLICT, &r);
    assert_false(r.sent);
    assert_int_equal(portal_writes(), w0);
    assert_state(f, op, "conflict");
}

/* An update back to pending after it was sent (`outbox retry`, or a send that
 * failed before the request left) whose write did reach the portal: read back
 * and found applied, so done without a second write, even when the agent
 * would win a conflict. */
static void test_retried_update_read_back(void **state)
{
    struct fx *f = *state;
    struct outbox_result r;
    fx_open(f);
    long long id = some_id(8);
    uint64_t op = put_update(f, id, "arrived-once");
    put_state(f, op, JOURNAL_OPS_SENDING);
    put_state(f, op, JOURNAL_OPS_PENDING);
    assert_state(f, op, "pending");
    char params[256];
    snprintf(params, sizeof params, "{\"table\":\"package\",\"set\":{\"name\":\"arrived-once\"},\"where\":{\"eq\":[\"id\",%lld]}}", id);
    portal_write(f, "update", params);   /* what the first send did */
    long long w0 = portal_writes();
    step(f, CONFLICT_AGENT, OUTBOX_DONE, &r);
    assert_false(r.sent);
    assert_int_equal(portal_writes(), w0);
    assert_state(f, op, "done");
}

/* The daemon's sender: an op queued before `run` starts is sent within
 * seconds, once, and SIGTERM still stops the daemon cleanly (exit 0). */
/* A sender that keeps state (send.h): the checks of the next ops read in one
 * select, the re-reads of done ops in one pull_keys when the outbox idles.
 * An op whose key an earlier one writes ends the read-ahead (the portal's row
 * will change under it): it is read again when its turn comes, so it is not
 * taken for a conflict; a row the portal changed before the read-ahead still
 * is one (an insert ends a read-ahead too: a later op may change its row).
 * Every op ends as it would alone, the cache equals the portal. */
static void test_batched(void **state)
{
    struct fx *f = *state;
    struct outbox_result r;
    fx_open(f);
    long long a1 = some_id(9), a2 = some_id(10), a3 = some_id(11), a4 = some_id(12);
    uint64_t in = put_insert(f, "b-ins", 1);   /* an insert would end a read-ahead: first */
    uint64_t u1 = put_update(f, a1, "b-1");
    uint64_t u2 = put_update(f, a2, "b-2");
    char params[256], sql[256];
    snprintf(params, sizeof params, "{\"from\":\"package\",\"where\":{\"eq\":[\"id\",%lld]}}", a4);
    snprintf(sql, sizeof sql, "DELETE FROM package WHERE id = %lld", a4);
    uint64_t d4 = put_op(f, JOURNAL_OP_DELETE, params, sql);
    uint64_t u1b = put_update(f, a1, "b-3");   /* a1 again: ends the first read-ahead */
    uint64_t u3 = put_update(f, a3, "b-4");
    snprintf(params, sizeof params, "{\"table\":\"package\",\"set\":{\"name\":\"theirs-b\"},\"where\":{\"eq\":[\"id\",%lld]}}",
             a2);
    portal_write(f, "update", params);         /* before any check: u2 is a conflict */
    long long s0 = portal_stat("selects"), w0 = portal_writes();
    struct outbox_sender *snd = outbox_sender_new();
    step_with(f, snd, CONFLICT_PORTAL, OUTBOX_DONE, &r);       /* the insert: no check */
    assert_int_equal(r.op_id, in);
    assert_int_equal(portal_stat("selects"), s0);
    step_with(f, snd, CONFLICT_PORTAL, OUTBOX_DONE, &r);       /* u1: read ahead u1 u2 d4 */
    assert_int_equal(r.op_id, u1);
    assert_int_equal(portal_stat("selects"), s0 + 1);
    step_with(f, snd, CONFLICT_PORTAL, OUTBOX_CONFLICT, &r);   /* u2: re-read at once (pull_keys: 2 selects) */
    assert_int_equal(r.op_id, u2);
    assert_int_equal(portal_stat("selects"), s0 + 3);
    step_with(f, snd, CONFLICT_PORTAL, OUTBOX_DONE, &r);       /* d4: read ahead */
    assert_int_equal(r.op_id, d4);
    assert_int_equal(portal_stat("selects"), s0 + 3);
    step_with(f, snd, CONFLICT_PORTAL, OUTBOX_DONE, &r);       /* u1b: read ahead u1b u3 */
    assert_int_equal(r.op_id, u1b);
    assert_int_equal(portal_stat("selects"), s0 + 4);
    step_with(f, snd, CONFLICT_PORTAL, OUTBOX_DONE, &r);
    assert_int_equal(r.op_id, u3);
    assert_int_equal(portal_stat("selects"), s0 + 4);
    /* until the outbox idles the done ops' rows are the cache's own */
    snprintf(sql, sizeof sql, "SELECT name FROM package WHERE id = %lld", a3);
    assert_cache(f, "b-4", sql);
    step_with(f, snd, CONFLICT_PORTAL, OUTBOX_IDLE, &r);       /* the re-reads: one pull_keys */
    assert_string_equal(r.repull, "");
    assert_int_equal(portal_stat("selects"), s0 + 6);
    assert_int_equal(portal_writes(), w0 + 5);
    outbox_sender_free(snd);
    assert_state(f, u1, "done");
    assert_state(f, u2, "conflict");
    assert_state(f, in, "done");
    assert_state(f, d4, "done");
    assert_state(f, u1b, "done");
    assert_state(f, u3, "done");
    snprintf(sql, sizeof sql, "SELECT name FROM package WHERE id = %lld", a1);
    assert_portal("b-3", sql);
    snprintf(sql, sizeof sql, "SELECT name FROM package WHERE id = %lld", a2);
    assert_portal("theirs-b", sql);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM package WHERE id = %lld OR name = 'b-ins'", a4);
    assert_portal("1", sql);
    assert_same_as_portal(f);
}

/* Re-reads deferred when the portal goes away: the step says which table to
 * pull (r.repull); the op's outcome stands. */
static void test_batched_reread_fails(void **state)
{
    struct fx *f = *state;
    struct outbox_result r;
    fx_open(f);
    long long a = some_id(13);
    uint64_t u = put_update(f, a, "deferred");
    struct outbox_sender *snd = outbox_sender_new();
    step_with(f, snd, CONFLICT_PORTAL, OUTBOX_DONE, &r);
    assert_int_equal(r.op_id, u);
    assert_string_equal(r.repull, "");
    tu_admin(&g_site.portal, "/_fake/faults", "{\"queue\":[\"500\"]}");   /* retries = 0 */
    step_with(f, snd, CONFLICT_PORTAL, OUTBOX_IDLE, &r);
    assert_string_equal(r.repull, "package");
    outbox_sender_free(snd);
    assert_state(f, u, "done");
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT name FROM package WHERE id = %lld", a);
    assert_cache(f, "deferred", sql);   /* the op's own change until the pull */
}

/* The read-ahead's select failing: the op is left pending (transient),
 * nothing is written to the portal, and the next step reads again and sends. */
static void test_batched_read_ahead_fails(void **state)
{
    struct fx *f = *state;
    struct outbox_result r;
    fx_open(f);
    long long a = some_id(14);
    uint64_t u = put_update(f, a, "after-500");
    long long w0 = portal_writes();
    struct outbox_sender *snd = outbox_sender_new();
    tu_admin(&g_site.portal, "/_fake/faults", "{\"queue\":[\"500\"]}");   /* retries = 0 */
    step_with(f, snd, CONFLICT_PORTAL, OUTBOX_TRANSIENT, &r);
    assert_int_equal(r.op_id, u);
    assert_false(r.sent);
    assert_int_equal(portal_writes(), w0);
    assert_state(f, u, "pending");
    step_with(f, snd, CONFLICT_PORTAL, OUTBOX_DONE, &r);
    assert_int_equal(portal_writes(), w0 + 1);
    outbox_sender_free(snd);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT name FROM package WHERE id = %lld", a);
    assert_portal("after-500", sql);
}

static void test_daemon_sends(void **state)
{
    struct fx *f = *state;
    fx_open(f);
    long long id = some_id(8);
    uint64_t op = put_update(f, id, "daemon-sent");
    char sql[256], cfg[1024], toml[2048];
    snprintf(sql, sizeof sql, "SELECT name FROM package WHERE id = %lld", id);
    int store = g_stores;
    remote_free(f->rm);
    store_close(&f->st);
    config_free(&f->cfg);
    f->open = 0;
    int n = snprintf(toml, sizeof toml,
                     "[remote]\nurl = \"%s\"\nusername = \"admin\"\npassword_env = \"IA_SEND_PW\"\nretries = 0\n"
                     "[storage]\ndir = \"%s/store-%d\"\n[serve]\nlisten = \"127.0.0.1:0\"\n"
                     "[[table]]\nname = \"package\"\nstrategy = \"full\"\nttl = \"1h\"\n"
                     "columns = [\"id\", \"name\", \"paid\"]\n",
                     g_site.portal.url, g_site.dir, store);
    snprintf(cfg, sizeof cfg, "%s/daemon.toml", g_site.dir);
    if (tu_write_file(cfg, toml, (size_t)n) != 0) fail_msg("writing %s", cfg);
    long long w0 = portal_writes();
    const char *args[] = {"run", NULL};
    pid_t pid = th_agent_spawn(cfg, "IA_SEND_PW=secret", -1, args);
    assert_true(pid > 0);
    int sent = 0;
    for (int k = 0; k < 150 && !sent; k++) {
        char *got = portal_text(sql);
        sent = !strcmp(got, "daemon-sent");
        free(got);
        if (!sent) usleep(100 * 1000);
    }
    usleep(500 * 1000);               /* let it journal `done` */
    kill(pid, SIGTERM);
    int st = 0;
    waitpid(pid, &st, 0);
    if (!sent) fail_msg("the daemon did not send op %llu within 15 s", (unsigned long long)op);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(portal_writes(), w0 + 1);
    char db[1024], q[256];
    snprintf(db, sizeof db, "%s/store-%d/cache.db", g_site.dir, store);
    snprintf(q, sizeof q, "SELECT count(*) FROM _agent_outbox WHERE id = %llu AND state = 'done'", (unsigned long long)op);
    assert_int_equal(th_db_int(db, q), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_update_done, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_done, setup, teardown),
        cmocka_unit_test_setup_teardown(test_insert_done, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conflict_portal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conflict_agent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejected_then_next, setup, teardown),
        cmocka_unit_test_setup_teardown(test_answer_lost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_before_send, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retried_update_read_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sent_changed_is_conflict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batched, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batched_reread_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batched_read_ahead_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_daemon_sends, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
