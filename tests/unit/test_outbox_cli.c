/* test_outbox_cli.c — the outbox made visible (docs/outbox.md, "Visibility"):
 * the built `iptv-agent` binary's `outbox`, `outbox --json`, `outbox retry`,
 * `outbox drop` (the local change reverted), unknown ids, wrong states, a
 * locked journal, `status` and `status --json` counts; GET /status and /metrics
 * through a serve instance (tests/harness/). The cache is real: a journal and
 * cache.db in a temp dir, ops captured with replay_op_capture, journaled as OP
 * records and applied, exactly as the daemon will. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/config/config.h"
#include "journal/journal.h"
#include "journal/rows.h"
#include "replay/outbox.h"
#include "replay/replay.h"
#include "tests/harness/asserts.h"
#include "tests/harness/harness.h"
#include "tests/testutil.h"

struct fx {
    char *root;
    char store[480], jdir[512], db[512], cfg[600];
    struct journal_writer *w;     /* open while building; closed before the agent runs */
    struct journal_payload pl;
    struct replay *r;
    uint64_t op_pending, op_sent, op_conflict, op_rejected;
    char *out, *err;              /* of the last run */
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    f->root = tu_tmpdir("test_outbox_cli");
    assert_non_null(f->root);
    snprintf(f->store, sizeof f->store, "%.400s/store", f->root);
    snprintf(f->jdir, sizeof f->jdir, "%s/journal", f->store);
    snprintf(f->db, sizeof f->db, "%s/cache.db", f->store);
    snprintf(f->cfg, sizeof f->cfg, "%s/agent.toml", f->root);
    char toml[800];
    /* no [remote] account and no token: the local API of test_serve_counts is open by choice */
    int n = snprintf(toml, sizeof toml, "[storage]\ndir = \"%s\"\n[serve]\nlisten = \"127.0.0.1:0\"\nauth = \"none\"\n", f->store);
    assert_int_equal(tu_write_file(f->cfg, toml, (size_t)n), 0);
    *state = f;
    return 0;
}

static void close_writer(struct fx *f)
{
    if (f->r) replay_close(f->r);
    if (f->w) journal_writer_close(f->w);
    f->r = NULL;
    f->w = NULL;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    close_writer(f);
    journal_payload_free(&f->pl);
    tu_rmrf(f->root);
    free(f->root);
    free(f->out);
    free(f->err);
    free(f);
    return 0;
}

/* Run the agent with a1.. (NULL-terminated); output in f->out / f->err. */
static int agent(struct fx *f, ...)
{
    const char *argv[16] = {IA_AGENT_BIN, "--log-level", "warn", "-c", f->cfg};
    int argc = 5;
    va_list ap;
    va_start(ap, f);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && argc < 15) argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    free(f->out);
    free(f->err);
    f->out = f->err = NULL;
    return tu_run(argv, NULL, &f->out, &f->err);
}

/* ---- building the cache --------------------------------------------------------------- */

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

/* Table "t" (id INT key, name TEXT, v INT cursor) with ids 1..5, applied. */
static void open_cache(struct fx *f)
{
    char err[1024];
    if (access(f->store, F_OK) != 0) assert_int_equal(mkdir(f->store, 0755), 0);
    struct journal_opts jo = {.dir = f->jdir, .level = 1};
    if (journal_writer_open(&jo, &f->w, err, sizeof err) != 0) fail_msg("journal open: %s", err);
    struct replay_opts ro = {.db_path = f->db, .journal_dir = f->jdir};
    if (replay_open(&ro, &f->r, err, sizeof err) != 0) fail_msg("replay_open: %s", err);
    const char *names[] = {"id", "name", "v"};
    enum journal_coltype types[] = {JOURNAL_COL_INT, JOURNAL_COL_TEXT, JOURNAL_COL_INT};
    if (journal_payload_schema(&f->pl, 3, names, types, 0, 2, err, sizeof err) != 0) fail_msg("%s", err);
    append(f, JOURNAL_SCHEMA, "t");
    journal_payload_snapshot_begin(&f->pl, 0);
    uint64_t id = append(f, JOURNAL_SNAPSHOT_BEGIN, "t");
    journal_payload_snapshot_page(&f->pl, id, 3);
    for (int i = 1; i <= 5; i++) {
        char name[32];
        int n = snprintf(name, sizeof name, "r%d", i);
        journal_put_int(&f->pl, i);
        journal_put_text(&f->pl, name, (size_t)n);
        journal_put_int(&f->pl, i * 10);
    }
    append(f, JOURNAL_SNAPSHOT_PAGE, "t");
    struct journal_value mc = {.type = JOURNAL_INT, .i = 50}, mk = {.type = JOURNAL_INT, .i = 5};
    journal_payload_snapshot_end(&f->pl, id, 5, &mc, &mk);
    append(f, JOURNAL_SNAPSHOT_END, "t");
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

/* Capture `sql` on cache.db, journal it as an op, apply: what the daemon does. */
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

static void put_state(struct fx *f, uint64_t op, int state, const char *msg)
{
    struct journal_op_state_rec s = {.op_id = op, .state = state, .message = msg, .nmessage = msg ? strlen(msg) : 0};
    char err[512];
    if (journal_payload_op_state(&f->pl, &s, err, sizeof err) != 0) fail_msg("%s", err);
    append(f, JOURNAL_OP_STATE, "t");
    apply_ok(f);
}

/* Five ops, one per state the actions tell apart: pending (update id 1), sent
 * (update id 2), conflict (delete id 3, reverted), rejected (insert 10, and
 * update id 4: every count differs from the others, reverted). Then the writer is closed: the agent takes the journal. */
static void five_ops(struct fx *f)
{
    open_cache(f);
    f->op_pending = put_op(f, JOURNAL_OP_UPDATE, "UPDATE t SET name = 'local1' WHERE id = 1");
    f->op_sent = put_op(f, JOURNAL_OP_UPDATE, "UPDATE t SET name = 'local2' WHERE id = 2");
    f->op_conflict = put_op(f, JOURNAL_OP_DELETE, "DELETE FROM t WHERE id = 3");
    f->op_rejected = put_op(f, JOURNAL_OP_INSERT, "INSERT INTO t VALUES (10, 'new', NULL)");
    uint64_t rejected2 = put_op(f, JOURNAL_OP_UPDATE, "UPDATE t SET name = 'local4' WHERE id = 4");
    put_state(f, f->op_sent, JOURNAL_OPS_SENDING, NULL);
    put_state(f, f->op_conflict, JOURNAL_OPS_CONFLICT, "the portal changed id 3");
    put_state(f, f->op_rejected, JOURNAL_OPS_REJECTED, "name: bad value");
    put_state(f, rejected2, JOURNAL_OPS_REJECTED, "forbidden");
    close_writer(f);
}

/* One text value of a query on cache.db (malloc'd; "" for NULL). */
static char *q_text(struct fx *f, const char *sql)
{
    sqlite3 *db;
    if (sqlite3_open_v2(f->db, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) fail_msg("open %s", f->db);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    char *out = strdup("");
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)) {
        free(out);
        out = strdup((const char *)sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}

static void assert_q(struct fx *f, const char *sql, const char *want)
{
    char *got = q_text(f, sql);
    if (strcmp(got, want) != 0) fail_msg("%s:\n got  %s\n want %s", sql, got, want);
    free(got);
}

#define ROWS "SELECT group_concat(id || ':' || name, ' ') FROM (SELECT * FROM t ORDER BY id)"

static void assert_state(struct fx *f, uint64_t id, const char *want)
{
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT state || ',' || attempts || ',' || coalesce(last_error, '-') FROM _agent_outbox "
             "WHERE id = %llu", (unsigned long long)id);
    assert_q(f, sql, want);
}

static void assert_counts_json(const char *json, const char *where, int pending, int conflicts, int rejected)
{
    cJSON *doc = cJSON_Parse(json);
    if (!doc) fail_msg("%s: not JSON: %.300s", where, json);
    cJSON *o = cJSON_GetObjectItemCaseSensitive(doc, "outbox");
    if (!cJSON_IsObject(o)) fail_msg("%s: no \"outbox\" object in %.500s", where, json);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(o, "pending")->valueint, pending);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(o, "conflicts")->valueint, conflicts);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(o, "rejected")->valueint, rejected);
    assert_int_equal(cJSON_GetArraySize(o), 3);
    cJSON_Delete(doc);
}

/* ---- tests ---------------------------------------------------------------------------- */

static void test_list_text(void **state)
{
    struct fx *f = *state;
    five_ops(f);
    assert_q(f, ROWS, "1:local1 2:local2 3:r3 4:r4 5:r5");
    assert_int_equal(agent(f, "outbox", NULL), 0);
    /* a header, then one aligned line per op, oldest first */
    assert_contains(f->out, "id  table  kind    state     attempts  created");
    char line[200];
    snprintf(line, sizeof line, "%llu  t      update  pending          0  ", (unsigned long long)f->op_pending);
    assert_contains(f->out, line);
    snprintf(line, sizeof line, "%llu  t      update  sent             1  ", (unsigned long long)f->op_sent);
    assert_contains(f->out, line);
    snprintf(line, sizeof line, "%llu  t      delete  conflict         0  ", (unsigned long long)f->op_conflict);
    assert_contains(f->out, line);
    snprintf(line, sizeof line, "%llu  t      insert  rejected         0  ", (unsigned long long)f->op_rejected);
    assert_contains(f->out, line);
    assert_contains(f->out, "[3]");
    assert_contains(f->out, "  the portal changed id 3\n");
    assert_contains(f->out, "  name: bad value\n");
    assert_true(strstr(f->out, "update  pending") < strstr(f->out, "insert  rejected"));
    assert_int_equal(agent(f, "outbox", "--bogus", NULL), 2);
    assert_contains(f->err, "unexpected argument --bogus");
}

static void test_list_json(void **state)
{
    struct fx *f = *state;
    five_ops(f);
    assert_int_equal(agent(f, "outbox", "--json", NULL), 0);
    cJSON *doc = cJSON_Parse(f->out);
    if (!doc) fail_msg("not JSON: %s", f->out);
    cJSON *ops = cJSON_GetObjectItemCaseSensitive(doc, "ops");
    assert_int_equal(cJSON_GetArraySize(ops), 5);
    static const char *const states[] = {"pending", "sent", "conflict", "rejected"};
    static const char *const kinds[] = {"update", "update", "delete", "insert"};
    uint64_t ids[] = {f->op_pending, f->op_sent, f->op_conflict, f->op_rejected};
    for (int i = 0; i < 4; i++) {
        cJSON *o = cJSON_GetArrayItem(ops, i);
        assert_int_equal((uint64_t)cJSON_GetObjectItemCaseSensitive(o, "id")->valuedouble, ids[i]);
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "table")->valuestring, "t");
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "kind")->valuestring, kinds[i]);
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "state")->valuestring, states[i]);
        assert_int_equal(cJSON_GetObjectItemCaseSensitive(o, "attempts")->valueint, i == 1);
        assert_true(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(o, "keys")));
        assert_int_equal(strlen(cJSON_GetObjectItemCaseSensitive(o, "created")->valuestring), 20);
    }
    cJSON *c = cJSON_GetArrayItem(ops, 2);
    assert_int_equal(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(c, "keys"), 0)->valueint, 3);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(c, "last_error")->valuestring, "the portal changed id 3");
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(ops, 0), "last_error")));
    cJSON_Delete(doc);
}

static void test_retry(void **state)
{
    struct fx *f = *state;
    five_ops(f);
    char id[32];
    snprintf(id, sizeof id, "%llu", (unsigned long long)f->op_sent);
    assert_int_equal(agent(f, "outbox", "retry", id, NULL), 0);
    assert_contains(f->out, "pending again");
    assert_contains(f->out, "read back from the portal before any resend");
    assert_state(f, f->op_sent, "pending,1,-");
    assert_q(f, ROWS, "1:local1 2:local2 3:r3 4:r4 5:r5");     /* the local change stays */
    /* durable in the journal: a rebuild from it alone gives the same state */
    assert_int_equal(agent(f, "replay", "--rebuild", NULL), 0);
    assert_state(f, f->op_sent, "pending,1,-");
    /* again: it is pending now, which retry does not apply to */
    assert_int_equal(agent(f, "outbox", "retry", id, NULL), 2);
    assert_contains(f->err, "is pending");
}

static void test_drop_reverts(void **state)
{
    struct fx *f = *state;
    five_ops(f);
    char id[32], want[64];
    snprintf(id, sizeof id, "%llu", (unsigned long long)f->op_pending);
    assert_int_equal(agent(f, "outbox", "drop", id, NULL), 0);
    assert_contains(f->out, "dropped; its local change is reverted");
    assert_state(f, f->op_pending, "dropped,0,dropped with `iptv-agent outbox drop`");
    assert_q(f, ROWS, "1:r1 2:local2 3:r3 4:r4 5:r5");         /* id 1 back to its pre-image */
    snprintf(want, sizeof want, "SELECT count(*) FROM _agent_outbox_keys WHERE id = %llu",
             (unsigned long long)f->op_pending);
    assert_q(f, want, "0");                                        /* its key no longer protected */
    /* the sent one too, with the warning that it may have reached the portal */
    snprintf(id, sizeof id, "%llu", (unsigned long long)f->op_sent);
    assert_int_equal(agent(f, "outbox", "drop", id, NULL), 0);
    assert_contains(f->out, "may have reached the portal");
    assert_q(f, ROWS, "1:r1 2:r2 3:r3 4:r4 5:r5");
    /* dropped again: ended */
    assert_int_equal(agent(f, "outbox", "drop", id, NULL), 2);
    assert_contains(f->err, "is dropped");
}

/* A sent insert cannot be read back exactly (a row equal to it may have been
 * there before): pending again would be a blind resend, so retry refuses it. */
/* An import of a snapshot would replace cache.db whole, the open ops' rows and
 * outbox with it: refused until they end (here: dropped). */
static void test_import_refused_with_open_ops(void **state)
{
    struct fx *f = *state;
    five_ops(f);
    char snap[600], id[32];
    snprintf(snap, sizeof snap, "%s/snap.iasnap", f->root);
    assert_int_equal(agent(f, "export", "--snapshot", snap, NULL), 0);
    assert_int_equal(agent(f, "import", snap, NULL), 1);
    assert_contains(f->err, "cache.db has 2 open offline writes");
    assert_contains(f->err, "drop them");
    assert_q(f, ROWS, "1:local1 2:local2 3:r3 4:r4 5:r5");
    assert_state(f, f->op_pending, "pending,0,-");
    snprintf(id, sizeof id, "%llu", (unsigned long long)f->op_pending);
    assert_int_equal(agent(f, "outbox", "drop", id, NULL), 0);
    snprintf(id, sizeof id, "%llu", (unsigned long long)f->op_sent);
    assert_int_equal(agent(f, "outbox", "drop", id, NULL), 0);
    assert_int_equal(agent(f, "import", snap, NULL), 0);
    assert_contains(f->out, "imported snapshot");
}

static void test_retry_sent_insert_refused(void **state)
{
    struct fx *f = *state;
    open_cache(f);
    uint64_t ins = put_op(f, JOURNAL_OP_INSERT, "INSERT INTO t VALUES (11, 'sent-insert', NULL)");
    put_state(f, ins, JOURNAL_OPS_SENDING, NULL);
    close_writer(f);
    char id[32];
    snprintf(id, sizeof id, "%llu", (unsigned long long)ins);
    assert_int_equal(agent(f, "outbox", "retry", id, NULL), 2);
    assert_contains(f->err, "is sent: the sender reads a sent insert back by itself");
    assert_state(f, ins, "sent,1,-");
}

static void test_wrong_state_and_unknown(void **state)
{
    struct fx *f = *state;
    five_ops(f);
    char id[32];
    /* conflict and rejected have ended in replay: nothing may follow, so no record is journaled */
    snprintf(id, sizeof id, "%llu", (unsigned long long)f->op_conflict);
    assert_int_equal(agent(f, "outbox", "retry", id, NULL), 2);
    char want[128];
    snprintf(want, sizeof want, "op %s (table \"t\", delete) is conflict", id);
    assert_contains(f->err, want);
    assert_int_equal(agent(f, "outbox", "drop", id, NULL), 2);
    assert_contains(f->err, "is conflict");
    snprintf(id, sizeof id, "%llu", (unsigned long long)f->op_rejected);
    assert_int_equal(agent(f, "outbox", "retry", id, NULL), 2);
    assert_contains(f->err, "is rejected");
    snprintf(id, sizeof id, "%llu", (unsigned long long)f->op_pending);
    assert_int_equal(agent(f, "outbox", "retry", id, NULL), 2);
    assert_contains(f->err, "is pending");
    /* nothing was journaled: replay would refuse a state after an end */
    assert_int_equal(agent(f, "journal", "verify", NULL), 0);
    assert_int_equal(agent(f, "replay", "--rebuild", NULL), 0);
    assert_state(f, f->op_conflict, "conflict,0,the portal changed id 3");
    /* unknown ids and bad ones */
    assert_int_equal(agent(f, "outbox", "retry", "999", NULL), 3);
    assert_contains(f->err, "op 999: no such op");
    assert_int_equal(agent(f, "outbox", "drop", "999", NULL), 3);
    assert_int_equal(agent(f, "outbox", "drop", "abc", NULL), 2);
    assert_int_equal(agent(f, "outbox", "drop", "0", NULL), 2);
    assert_int_equal(agent(f, "outbox", "drop", NULL), 2);
}

/* A running daemon holds the journal: said plainly, nothing changed. */
static void test_locked(void **state)
{
    struct fx *f = *state;
    five_ops(f);
    struct journal_opts jo = {.dir = f->jdir, .level = 1};
    char err[512], id[32];
    if (journal_writer_open(&jo, &f->w, err, sizeof err) != 0) fail_msg("%s", err);
    snprintf(id, sizeof id, "%llu", (unsigned long long)f->op_pending);
    assert_int_equal(agent(f, "outbox", "drop", id, NULL), 1);
    assert_contains(f->err, "(table \"t\"): not changed");
    assert_contains(f->err, "A running daemon (or a sync) holds the journal: stop the daemon");
    assert_lacks(f->err, "/sync/");
    assert_state(f, f->op_pending, "pending,0,-");
    /* the read-only checks still answer */
    assert_int_equal(agent(f, "outbox", "drop", "999", NULL), 3);
    assert_int_equal(agent(f, "outbox", NULL), 0);
}

static void test_no_cache(void **state)
{
    struct fx *f = *state;
    assert_int_equal(agent(f, "outbox", NULL), 3);
    assert_contains(f->err, "no cache yet");
    assert_int_equal(agent(f, "outbox", "retry", "1", NULL), 3);
    assert_int_equal(access(f->store, F_OK), -1);       /* created nothing */
}

static void test_status_counts(void **state)
{
    struct fx *f = *state;
    open_cache(f);
    close_writer(f);
    /* no ops: zeros */
    assert_int_equal(agent(f, "status", "--json", NULL), 0);
    assert_counts_json(f->out, "status --json", 0, 0, 0);
    assert_int_equal(agent(f, "status", NULL), 0);
    assert_contains(f->out, "outbox:  0 pending (0 of them sent, outcome unknown), 0 conflicts, 0 rejected\n");
    /* then the five: pending counts the sent one too */
    tu_rmrf(f->store);
    five_ops(f);
    assert_int_equal(agent(f, "status", "--json", NULL), 0);
    assert_counts_json(f->out, "status --json", 2, 1, 2);
    assert_int_equal(agent(f, "status", NULL), 0);
    assert_contains(f->out, "outbox:  2 pending (1 of them sent, outcome unknown), 1 conflicts, 2 rejected");
    char id[32];
    snprintf(id, sizeof id, "%llu", (unsigned long long)f->op_pending);
    assert_int_equal(agent(f, "outbox", "drop", id, NULL), 0);
    assert_int_equal(agent(f, "status", "--json", NULL), 0);
    assert_counts_json(f->out, "status --json after a drop", 1, 1, 2);
}

/* GET /status and /metrics render the same counts (serve's read-only connection). */
static void test_serve_counts(void **state)
{
    struct fx *f = *state;
    five_ops(f);
    struct config cfg;
    char err[1024];
    if (config_load(f->cfg, &cfg, err, sizeof err) != 0) fail_msg("%s", err);
    struct serve_opts so = {.cfg = &cfg, .db_path = f->db};
    struct serve_hooks h = {0};
    struct th_srv v;
    if (th_srv_start(&v, &so, &h, err, sizeof err) != 0) fail_msg("serve: %s", err);
    CURL *c = curl_easy_init();
    struct th_resp r = {0};
    assert_int_equal(th_srv_get(c, &v, "/status", NULL, &r), 200);
    assert_counts_json(r.body.p, "GET /status", 2, 1, 2);
    assert_int_equal(th_srv_get(c, &v, "/metrics", NULL, &r), 200);
    assert_contains(r.body.p, "# TYPE iptv_agent_outbox_pending gauge\niptv_agent_outbox_pending 2\n");
    assert_contains(r.body.p, "# TYPE iptv_agent_outbox_conflicts gauge\niptv_agent_outbox_conflicts 1\n");
    assert_contains(r.body.p, "# TYPE iptv_agent_outbox_rejected gauge\niptv_agent_outbox_rejected 2\n");
    assert_contains(r.body.p, "# HELP iptv_agent_outbox_pending ");
    /* a change in cache.db shows at the next request */
    char id[32];
    snprintf(id, sizeof id, "%llu", (unsigned long long)f->op_sent);
    assert_int_equal(agent(f, "outbox", "drop", id, NULL), 0);
    assert_int_equal(th_srv_get(c, &v, "/metrics", NULL, &r), 200);
    assert_contains(r.body.p, "iptv_agent_outbox_pending 1\n");
    assert_int_equal(th_srv_get(c, &v, "/status", NULL, &r), 200);
    assert_counts_json(r.body.p, "GET /status after a drop", 1, 1, 2);
    th_resp_free(&r);
    curl_easy_cleanup(c);
    assert_int_equal(th_srv_stop(&v), 0);
    config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_list_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drop_reverts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_refused_with_open_ops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_sent_insert_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_state_and_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_locked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_serve_counts, setup, teardown),
    };
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
