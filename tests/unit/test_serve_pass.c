/* test_serve_pass.c — pass-through in the local HTTP API (agent/serve/serve.h,
 * "Pass-through"; serve_pass.h): a select the cache cannot answer goes to
 * hooks->select, here a test hook standing in for the daemon's (it asks the
 * fake portal itself, or answers a canned failure).
 *
 * Group setup: the fake portal (--db FILE) serves generated tables; the real
 * `iptv-agent --once` pulls tv_channel (full) into cache.db; media is
 * on_demand, package not configured. Each server runs on 127.0.0.1:0 on its
 * own loop thread (tests/harness/); hooks run on that thread. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/buf.h"
#include "agent/config/config.h"
#include "agent/serve/serve.h"
#include "tests/harness/asserts.h"
#include "tests/harness/harness.h"
#include "tests/testutil.h"

static struct th_site g_site;           /* the portal, cache.db, agent.toml */
static struct config g_cfg;
static char g_sid[64];                  /* portal session */
static long long g_media_id;            /* a media id, not cached */
static CURL *g_curl;

/* A select of params to the portal (curl c, session g_sid) or to server v. */
static long select_at(CURL *c, const char *url, const struct th_srv *v, const char *params, struct th_resp *r)
{
    char auth[128];
    struct buf b = {0};
    snprintf(auth, sizeof auth, "Iptvportal-Authorization: sessionid=%s", g_sid);
    const char *h[] = {auth, NULL};
    buf_printf(&b, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"select\",\"params\":%s}", params);
    long st = v ? th_srv_post(c, v, "/api/jsonsql/", b.p, NULL, r) : th_http(c, NULL, url, b.p, b.len, h, r);
    buf_free(&b);
    return st;
}

static char g_portal_sql[300];          /* the portal's /api/jsonsql/ */
static long portal_select(const char *params, struct th_resp *r) { return select_at(g_curl, g_portal_sql, NULL, params, r); }
static long srv_select(struct th_srv *v, const char *params, struct th_resp *r) { return select_at(g_curl, NULL, v, params, r); }

static void start_with(struct th_srv *v, const struct config *cfg, const struct serve_hooks *h)
{
    struct serve_opts o = {.cfg = cfg, .db_path = g_site.db};
    char err[512];
    if (th_srv_start(v, &o, h, err, sizeof err) != 0) fail_msg("serve_new: %s", err);
}

static void exec_writer(const char *sql)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(g_site.db, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) fail_msg("%s: %s", sql, msg);
    sqlite3_close(db);
}

static uint64_t cache_checksum(void)
{
    uint64_t sum;
    int tables;
    char err[512];
    if (th_db_fingerprint(g_site.db, &sum, &tables, err, sizeof err) != 0) fail_msg("%s", err);
    return sum;
}

static int group_setup(void **state)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    g_curl = curl_easy_init();
    const char *args[] = {"--rows", "100", NULL};
    if (th_site_start(&g_site, "test_serve_pass", "IA_TEST_PW=secret", args) != 0) return -1;
    struct buf b = {0};
    buf_printf(&b, "[remote]\nurl = \"%s\"\nusername = \"admin\"\npassword_env = \"IA_TEST_PW\"\nretries = 0\n"
                   "[storage]\ndir = \"%s/store\"\n[serve]\nlisten = \"127.0.0.1:0\"\nauth = \"none\"\n"
                   "[[table]]\nname = \"tv_channel\"\nstrategy = \"full\"\n"
                   "columns = [\"id\", \"name\", \"url\", \"epg_id\", \"is_tv\"]\n"
                   "[[table]]\nname = \"subscriber\"\nstrategy = \"full\"\ncolumns = [\"id\", \"username\"]\n"
                   "[[table]]\nname = \"media\"\nstrategy = \"on_demand\"\n", g_site.portal.url, g_site.dir);
    int rc = th_site_config(&g_site, b.p, b.len, &g_cfg);
    buf_free(&b);
    if (rc != 0 || th_site_agent(&g_site, "--once", NULL, NULL) != 0) return -1;
    snprintf(g_portal_sql, sizeof g_portal_sql, "%s/api/jsonsql/", g_site.portal.url);
    g_media_id = th_db_int(g_site.portal_db, "SELECT max(id) FROM media");
    return th_portal_login(g_site.portal.url, g_sid, sizeof g_sid);
}

static int group_teardown(void **state)
{
    th_site_stop(&g_site);
    config_free(&g_cfg);
    curl_easy_cleanup(g_curl);
    curl_global_cleanup();
    return 0;
}

/* ---- pass-through ------------------------------------------------------------------------------ */

struct pass_hook {
    int mode;                            /* 0 the fake portal, 1 its JSON-RPC error, 2 failed, 3 busy, 4 refuse, 5 bad */
    int calls;
    char params[512], table[64];
    CURL *curl;                          /* the loop thread's own (the test thread's waits in srv_select) */
};

/* As the daemon's hook: send the select to the portal, hand back its result. */
static int h_select(void *ctx, const char *table, const char *params_json, serve_select_done_fn done, void *arg)
{
    struct pass_hook *h = ctx;
    h->calls++;
    snprintf(h->table, sizeof h->table, "%s", table);
    snprintf(h->params, sizeof h->params, "%s", params_json);
    if (h->mode == 1) done(arg, SERVE_PASS_RPC, "{\"code\":-32602,\"message\":\"relation \\\"x\\\" does not exist\"}", "x");
    if (h->mode == 2) done(arg, SERVE_PASS_FAILED, NULL, "select at P: connection refused\r\nX-Evil: 1");
    if (h->mode == 3) done(arg, SERVE_PASS_BUSY, NULL, "64 selects already wait for it; try again");
    if (h->mode == 5) done(arg, SERVE_PASS_BAD, NULL, "select at P: response larger than 1024 bytes");
    if (h->mode != 0) return h->mode == 4 ? -1 : 0;
    struct buf b = {0};
    struct th_resp r = {0};
    select_at(h->curl, g_portal_sql, NULL, params_json, &r);
    const char *res = strstr(r.body.p, "\"result\":");   /* the fake portal ends with the result */
    if (!res) return done(arg, SERVE_PASS_FAILED, NULL, r.body.p), 0;    /* (no assert off the test thread) */
    buf_append(&b, res + 9, strlen(res + 9) - 1);
    done(arg, SERVE_PASS_OK, b.p, NULL);
    buf_free(&b);
    th_resp_free(&r);
    return 0;
}

/* A select naming a table the cache cannot answer for goes to the portal
 * whole (X-Cache: pass); cached ones are answered here (X-Cache: hit); a
 * failure is an error naming the table, never []. */
static void test_pass_through(void **state)
{
    struct pass_hook ph = {.curl = curl_easy_init()};
    struct serve_hooks hooks = {.ctx = &ph, .select = h_select};
    struct th_srv v;
    start_with(&v, &g_cfg, &hooks);
    struct th_resp r = {0}, p = {0};
    char h[128];
    uint64_t before = cache_checksum();
    const char *cached = "{\"data\":[\"id\",\"name\"],\"from\":\"tv_channel\",\"order_by\":\"id\",\"limit\":3}";
    assert_int_equal(srv_select(&v, cached, &r), 200);
    assert_string_equal(th_header(&r, "X-Cache", h, sizeof h), "hit");
    assert_int_equal(ph.calls, 0);
    /* not configured, a join of a cached and an uncached table, a subquery */
    const char *passed[] = {
        "{\"data\":[\"id\",\"name\",\"paid\"],\"from\":\"package\",\"order_by\":\"id\"}",
        "{\"data\":[\"s.id\",\"p.name\"],\"from\":[{\"table\":\"subscriber\",\"as\":\"s\"},{\"join\":\"package\","
        "\"as\":\"p\",\"on\":{\"eq\":[{\"s\":\"id\"},{\"p\":\"id\"}]}}],\"order_by\":\"s.id\"}",
        "{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"in\":[\"id\",{\"select\":{\"data\":[\"id\"],"
        "\"from\":\"package\"}}]},\"order_by\":\"id\"}",
    };
    for (int i = 0; i < 3; i++) {
        assert_int_equal(srv_select(&v, passed[i], &r), 200);
        assert_int_equal(portal_select(passed[i], &p), 200);
        assert_string_equal(r.body.p, p.body.p);
        assert_string_equal(th_header(&r, "X-Cache", h, sizeof h), "pass");
        assert_null(th_header(&r, "X-Cache-Stale", h, sizeof h));
        assert_string_equal(ph.params, passed[i]);
        assert_string_equal(ph.table, "package");
        assert_int_equal(ph.calls, i + 1);
    }
    /* a batch: each element as alone; X-Cache says one went to the portal */
    struct buf bb = {0};
    buf_printf(&bb, "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"select\",\"params\":%s},"
                    "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"select\",\"params\":%s}]", cached, passed[0]);
    assert_int_equal(th_srv_post(g_curl, &v, "/api/jsonsql/", bb.p, NULL, &r), 200);
    assert_int_equal(portal_select(passed[0], &p), 200);
    assert_non_null(strstr(r.body.p, p.body.p + strlen("{\"jsonrpc\":\"2.0\",\"id\":7")));
    assert_string_equal(th_header(&r, "X-Cache", h, sizeof h), "pass");
    assert_int_equal(ph.calls, 4);
    buf_free(&bb);
    /* configured but never pulled to the end: passed; then cached again */
    exec_writer("UPDATE _agent_tables SET last_success_ms = -last_success_ms WHERE name = 'tv_channel'");
    assert_int_equal(srv_select(&v, cached, &r), 200);
    assert_string_equal(th_header(&r, "X-Cache", h, sizeof h), "pass");
    assert_string_equal(ph.table, "tv_channel");
    assert_int_equal(ph.calls, 5);
    exec_writer("UPDATE _agent_tables SET last_success_ms = -last_success_ms WHERE name = 'tv_channel'");
    assert_int_equal(srv_select(&v, cached, &r), 200);
    assert_string_equal(th_header(&r, "X-Cache", h, sizeof h), "hit");
    /* an on_demand key lookup keeps its own path */
    char q[200];
    snprintf(q, sizeof q, "{\"data\":[\"id\"],\"from\":\"media\",\"where\":{\"eq\":[\"id\",%lld]}}", g_media_id);
    assert_int_equal(srv_select(&v, q, &r), 200);
    assert_int_equal(ph.calls, 5);
    /* the portal's refusal as it sent it; failures name the table */
    ph.mode = 1;
    assert_int_equal(srv_select(&v, passed[0], &r), 200);
    assert_string_equal(r.body.p, "{\"jsonrpc\":\"2.0\",\"id\":7,\"error\":{\"code\":-32602,\"message\":"
                                  "\"relation \\\"x\\\" does not exist\"}}");
    assert_string_equal(th_header(&r, "X-Cache", h, sizeof h), "pass");
    ph.mode = 2;
    assert_int_equal(srv_select(&v, passed[1], &r), 200);
    assert_string_equal(r.body.p, "{\"jsonrpc\":\"2.0\",\"id\":7,\"error\":{\"code\":-32004,\"message\":\"table package "
                                  "is not cached and the portal is unreachable: select at P: connection refused\\r\\n"
                                  "X-Evil: 1\"}}");
    assert_string_equal(th_header(&r, "X-Cache-Error", h, sizeof h), "select at P: connection refused  X-Evil: 1");
    assert_null(th_header(&r, "X-Evil", h, sizeof h));
    assert_null(th_header(&r, "X-Cache", h, sizeof h));
    ph.mode = 3;
    assert_int_equal(srv_select(&v, passed[0], &r), 200);
    assert_contains(r.body.p, "\"code\":-32005,\"message\":\"table package is not cached and the portal is busy: 64 "
                              "selects already wait for it; try again\"");
    ph.mode = 4;
    assert_int_equal(srv_select(&v, passed[0], &r), 200);
    assert_contains(r.body.p, "\"code\":-32004,\"message\":\"table package is not cached and the portal is "
                              "unreachable: the agent cannot ask it now\"");
    ph.mode = 5;
    assert_int_equal(srv_select(&v, passed[0], &r), 200);
    assert_contains(r.body.p, "\"code\":-32004,\"message\":\"table package is not cached and the portal's answer "
                              "is unusable: select at P: response larger than 1024 bytes\"");
    assert_int_equal(ph.calls, 10);
    assert_true(cache_checksum() == before);
    assert_int_equal(th_srv_stop(&v), 0);
    /* a table unknown_tables = "cache" added answers what compiles against its
     * columns; a statement naming others is the portal's */
    struct config added = g_cfg;
    added.tables = calloc((size_t)g_cfg.ntables, sizeof *added.tables);
    memcpy(added.tables, g_cfg.tables, (size_t)g_cfg.ntables * sizeof *added.tables);
    for (int i = 0; i < added.ntables; i++) added.tables[i].auto_added = !strcmp(added.tables[i].name, "tv_channel");
    start_with(&v, &added, &hooks);
    ph.mode = 1;                         /* the portal's refusal, canned (not a row from the hook's thread) */
    assert_int_equal(srv_select(&v, cached, &r), 200);
    assert_string_equal(th_header(&r, "X-Cache", h, sizeof h), "hit");
    assert_int_equal(srv_select(&v, "{\"data\":[\"nope\"],\"from\":\"tv_channel\"}", &r), 200);
    assert_string_equal(th_header(&r, "X-Cache", h, sizeof h), "pass");
    assert_string_equal(ph.table, "tv_channel");
    assert_int_equal(ph.calls, 11);
    assert_int_equal(th_srv_stop(&v), 0);
    free(added.tables);
    /* a configured table's bad statement is a local error */
    start_with(&v, &g_cfg, &hooks);
    assert_int_equal(srv_select(&v, "{\"data\":[\"nope\"],\"from\":\"tv_channel\"}", &r), 200);
    assert_contains(r.body.p, "\"code\":-32602");
    assert_int_equal(ph.calls, 11);
    assert_int_equal(th_srv_stop(&v), 0);
    /* unknown_tables = "refuse": today's answer, the hook is not asked */
    struct config refuse = g_cfg;
    refuse.serve.unknown_tables = UNKNOWN_REFUSE;
    start_with(&v, &refuse, &hooks);
    assert_int_equal(srv_select(&v, passed[1], &r), 200);
    assert_contains(r.body.p, "\"code\":-32602,\"message\":\"from[1].join: unknown table \\\"package\\\"\"");
    assert_int_equal(ph.calls, 11);
    assert_int_equal(th_srv_stop(&v), 0);
    th_resp_free(&r);
    th_resp_free(&p);
    curl_easy_cleanup(ph.curl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pass_through),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
