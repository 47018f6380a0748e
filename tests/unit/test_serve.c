/* test_serve.c — the local HTTP API (agent/serve/serve.h) against a real cache.db.
 *
 * Group setup: the fake portal (--db FILE) serves generated tables; the real
 * `iptv-agent --once` pulls tv_channel (full) and subscriber (incremental) into
 * cache.db, and `iptv-agent get terminal subscriber_id=X` caches the terminals
 * of three subscribers (terminal and media are on_demand). Each test starts a
 * server on 127.0.0.1:0 whose event loop runs in a thread, and talks to it with
 * libcurl from the test thread (request/response is the only synchronisation):
 * tests/harness/. Hooks run on the loop thread. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/base/buf.h"
#include "agent/config/config.h"
#include <fcntl.h>
#include <sys/stat.h>

#include "agent/serve/serve.h"
#include "tests/harness/asserts.h"
#include "tests/harness/harness.h"
#include "tests/testutil.h"

static struct th_site g_site;           /* the portal, cache.db, agent.toml */
static struct config g_cfg;
static char g_sid[64];                  /* portal session */
static long long g_sub[3];              /* subscribers whose terminals are cached */
static long long g_media_id;            /* a media id near INT64_MAX, not cached */
static CURL *g_curl;

/* ---- HTTP ---------------------------------------------------------------------- */

static long portal_select(const char *params, struct th_resp *r)
{
    char url[300], auth[128];
    struct buf b = {0};
    snprintf(url, sizeof url, "%s/api/jsonsql/", g_site.portal.url);
    snprintf(auth, sizeof auth, "Iptvportal-Authorization: sessionid=%s", g_sid);
    const char *h[] = {auth, NULL};
    buf_printf(&b, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"select\",\"params\":%s}", params);
    long st = th_http(g_curl, NULL, url, b.p, b.len, h, r);
    buf_free(&b);
    return st;
}

/* ---- the server under test -------------------------------------------------------- */

static struct serve_opts default_opts(void)
{
    struct serve_opts o = {.cfg = &g_cfg, .db_path = g_site.db};
    return o;
}

static void start_default(struct th_srv *v, const struct serve_hooks *h)
{
    struct serve_opts o = default_opts();
    char err[512];
    if (th_srv_start(v, &o, h, err, sizeof err) != 0) fail_msg("serve_new: %s", err);
}

static long srv_select(struct th_srv *v, const char *params, struct th_resp *r)
{
    struct buf b = {0};
    buf_printf(&b, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"select\",\"params\":%s}", params);
    long st = th_srv_post(g_curl, v, "/api/jsonsql/", b.p, NULL, r);
    buf_free(&b);
    return st;
}

/* ---- cache.db fingerprint: every row of every table and the schema --------------------- */

static uint64_t cache_checksum(void)
{
    uint64_t sum;
    int tables;
    char err[512];
    if (th_db_fingerprint(g_site.db, &sum, &tables, err, sizeof err) != 0) fail_msg("%s", err);
    return sum;
}

/* ---- group fixture ---------------------------------------------------------------------- */

static const char config_fmt[] =
    "[remote]\nurl = \"%s\"\nusername = \"admin\"\npassword_env = \"IA_TEST_PW\"\nretries = 0\n"
    "[storage]\ndir = \"%s/store\"\n"
    "[serve]\nlisten = \"%s\"\ntoken_env = \"IA_TEST_TOKEN\"\ntokenless_writes = \"loopback\"\nauth = \"none\"\n"
    "[[table]]\nname = \"tv_channel\"\nstrategy = \"full\"\n"
    "columns = [\"id\", \"name\", \"url\", \"epg_id\", \"logo\", \"is_tv\", \"is_radio\", \"sort_order\","
    " \"category_id\", \"languages\", \"params\", \"created_at\", \"updated_at\"]\n"
    "[[table]]\nname = \"subscriber\"\nstrategy = \"incremental\"\ncursor = \"updated_at\"\n"
    "columns = [\"id\", \"username\", \"password_hash\", \"disabled\", \"balance\", \"email\", \"created_at\","
    " \"updated_at\", \"tags\", \"comment\"]\n"
    "[[table]]\nname = \"terminal\"\nstrategy = \"on_demand\"\n"
    "columns = [\"id\", \"subscriber_id\", \"mac_addr\", \"model\", \"serial\", \"active\", \"created_at\","
    " \"updated_at\", \"settings\"]\n"
    "[[table]]\nname = \"media\"\nstrategy = \"on_demand\"\n";

static int config_text(const char *listen, struct buf *b)
{
    buf_printf(b, config_fmt, g_site.portal.url, g_site.dir, listen);
    return 0;
}

static int group_setup(void **state)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    g_curl = curl_easy_init();
    const char *args[] = {"--rows", "1000", NULL};
    if (th_site_start(&g_site, "test_serve", "IA_TEST_PW=secret", args) != 0) return -1;
    struct buf b = {0};
    config_text("127.0.0.1:0", &b);
    int rc = th_site_config(&g_site, b.p, b.len, &g_cfg);
    buf_free(&b);
    if (rc != 0) return -1;
    if (th_site_agent(&g_site, "--once", NULL, NULL) != 0) return -1;
    sqlite3 *db;
    sqlite3_stmt *st;
    if (sqlite3_open_v2(g_site.portal_db, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "SELECT subscriber_id FROM terminal WHERE subscriber_id IN (SELECT id FROM subscriber)"
                               " GROUP BY subscriber_id HAVING count(*) >= 1 ORDER BY subscriber_id LIMIT 3",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    for (int i = 0; i < 3 && sqlite3_step(st) == SQLITE_ROW; i++) g_sub[i] = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    for (int i = 0; i < 3; i++) {
        char kv[64];
        snprintf(kv, sizeof kv, "subscriber_id=%lld", g_sub[i]);
        if (th_site_agent(&g_site, "get", "terminal", kv) != 0) return -1;
    }
    g_media_id = th_db_int(g_site.portal_db, "SELECT max(id) FROM media");
    /* a portal session for the comparisons */
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

/* ---- compatibility with the portal ------------------------------------------------------ */

static void test_compat_with_portal(void **state)
{
    char ids[128];
    snprintf(ids, sizeof ids, "[%lld,%lld,%lld]", g_sub[0], g_sub[1], g_sub[2]);
    struct buf join = {0}, in = {0};
    buf_printf(&join,
               "{\"data\":[{\"s\":\"id\"},{\"s\":\"username\"},{\"t\":\"mac_addr\"},{\"t\":\"active\"},{\"t\":\"settings\"}],"
               "\"from\":[{\"table\":\"subscriber\",\"as\":\"s\"},{\"join\":\"terminal\",\"as\":\"t\","
               "\"on\":{\"eq\":[{\"s\":\"id\"},{\"t\":\"subscriber_id\"}]}}],"
               "\"where\":{\"in\":[{\"s\":\"id\"},%s]},\"order_by\":[{\"s\":\"id\"},{\"t\":\"id\"}]}", ids);
    buf_printf(&in,
               "{\"data\":[\"id\",\"username\",\"disabled\",\"balance\"],\"from\":\"subscriber\","
               "\"where\":{\"and\":[{\"in\":[\"id\",%s]},{\"or\":[{\"is\":[\"disabled\",false]},{\"gt\":[\"balance\",0]}]}]},"
               "\"order_by\":\"id\"}", ids);
    const char *queries[] = {
        "{\"data\":[\"id\",\"name\",\"url\"],\"from\":\"tv_channel\",\"order_by\":\"id\",\"limit\":20}",
        "{\"data\":[\"*\"],\"from\":\"tv_channel\",\"where\":{\"eq\":[\"id\",3]}}",
        "{\"data\":[\"*\"],\"from\":\"subscriber\",\"order_by\":\"id\",\"limit\":50}",
        "{\"data\":[{\"function\":\"count\",\"args\":[\"*\"]}],\"from\":\"subscriber\"}",
        "{\"data\":[{\"function\":\"max\",\"args\":\"balance\"},{\"function\":\"min\",\"args\":\"id\"},"
        "{\"function\":\"max\",\"args\":\"updated_at\"}],\"from\":\"subscriber\"}",
        "{\"data\":[\"id\",{\"function\":\"lower\",\"args\":\"username\"},{\"function\":\"upper\",\"args\":\"email\"}],"
        "\"from\":\"subscriber\",\"where\":{\"like\":[\"username\",\"hotel%\"]},\"order_by\":\"id\",\"limit\":10}",
        in.p,
        "{\"data\":[\"id\",\"name\"],\"from\":\"tv_channel\",\"where\":{\"ilike\":[\"name\",\"%КАНАЛ%\"]},"
        "\"order_by\":\"id\",\"limit\":40}",
        "{\"data\":[\"id\",\"updated_at\"],\"from\":\"subscriber\",\"order_by\":[\"updated_at\",\"id\"],"
        "\"limit\":25,\"offset\":100}",
        "{\"data\":[\"category_id\"],\"from\":\"tv_channel\",\"distinct\":true,\"order_by\":\"category_id\"}",
        "{\"data\":[{\"function\":\"count\",\"args\":{\"function\":\"distinct\",\"args\":\"category_id\"}}],"
        "\"from\":\"tv_channel\"}",
        "{\"data\":[\"is_tv\",{\"function\":\"count\",\"args\":[\"*\"],\"as\":\"n\"}],\"from\":\"tv_channel\","
        "\"group_by\":\"is_tv\",\"order_by\":\"is_tv\"}",
        join.p,
        "{\"data\":[\"id\",\"languages\",\"params\",\"is_tv\",\"is_radio\",\"logo\"],\"from\":\"tv_channel\","
        "\"order_by\":\"id desc\",\"limit\":30}",
        "{\"data\":[\"id\",\"email\"],\"from\":\"subscriber\",\"where\":{\"and\":[{\"is_not\":[\"email\",null]},"
        "{\"not\":[{\"like\":[\"email\",\"%example%\"]}]},{\"neq\":[\"disabled\",true]}]},\"order_by\":\"id\",\"limit\":20}",
        "{\"data\":[\"id\",\"balance\"],\"from\":\"subscriber\",\"where\":{\"gt\":[{\"mul\":[\"balance\",2]},10000]},"
        "\"order_by\":\"id\",\"limit\":5}",
        "{\"data\":[\"id\"],\"from\":\"tv_channel\",\"where\":{\"in\":[\"category_id\",{\"select\":{\"data\":"
        "[\"category_id\"],\"from\":\"tv_channel\",\"where\":{\"eq\":[\"id\",3]}}}]},\"order_by\":\"id\"}",
        "{\"data\":[{\"function\":\"regexp_replace\",\"args\":[\"url\",\"\\\\?.*$\",\"\"]},"
        "{\"function\":\"coalesce\",\"args\":[\"logo\",\"epg_id\"]}],\"from\":\"tv_channel\",\"order_by\":\"id\",\"limit\":8}",
        "{\"data\":[\"id\",\"tags\",\"comment\",\"created_at\"],\"from\":\"subscriber\",\"where\":{\"lte\":[\"id\",%ID%]},"
        "\"order_by\":\"id\",\"limit\":3}",
    };
    struct th_srv v;
    start_default(&v, NULL);
    struct th_resp a = {0}, b = {0};
    int n = (int)(sizeof queries / sizeof queries[0]);
    for (int i = 0; i < n; i++) {
        struct buf q = {0};
        const char *id = strstr(queries[i], "%ID%");
        if (id) buf_printf(&q, "%.*s%lld%s", (int)(id - queries[i]), queries[i], g_sub[2], id + 4);
        else buf_puts(&q, queries[i]);
        assert_int_equal(portal_select(q.p, &a), 200);
        assert_int_equal(srv_select(&v, q.p, &b), 200);
        if (strstr(a.body.p, "\"error\"") || strcmp(a.body.p, b.body.p) != 0)
            fail_msg("query %d: %s\nportal: %.800s\nagent:  %.800s", i, q.p, a.body.p, b.body.p);
        if (!strstr(a.body.p, "\"result\":[[")) fail_msg("query %d: %s: empty result %s", i, q.p, a.body.p);
        buf_free(&q);
    }
    /* the join really joined: every cached subscriber has a terminal */
    assert_int_equal(srv_select(&v, join.p, &b), 200);
    for (int i = 0; i < 3; i++) {
        char idt[40];
        snprintf(idt, sizeof idt, "[%lld,", g_sub[i]);
        assert_contains(b.body.p, idt);
    }
    /* id echoed exactly, beyond 2^53 */
    assert_int_equal(th_srv_post(g_curl, &v, "/api/jsonsql/", "{\"jsonrpc\":\"2.0\",\"id\":9007199254740993,\"method\":\"select\","
                                                  "\"params\":{\"data\":[\"id\"],\"from\":\"tv_channel\",\"limit\":1}}",
                              NULL, &b),
                     200);
    assert_contains(b.body.p, "{\"jsonrpc\":\"2.0\",\"id\":9007199254740993,\"result\":[[");
    assert_int_equal(th_srv_post(g_curl, &v, "/api/jsonsql", "{\"jsonrpc\":\"2.0\",\"id\":\"abc\",\"method\":\"select\","
                                                 "\"params\":{\"data\":[\"id\"],\"from\":\"tv_channel\",\"limit\":1}}",
                              NULL, &b),
                     200);
    assert_contains(b.body.p, "\"id\":\"abc\",\"result\":[[");
    printf("compat: %d selects byte-identical with the portal\n", n);
    th_resp_free(&a);
    th_resp_free(&b);
    buf_free(&join);
    buf_free(&in);
    assert_int_equal(th_srv_stop(&v), 0);
}

/* ---- answers as PostgreSQL gives them ----------------------------------------------------- */

/* The compiler's helpers pass the authorizer: a date-only literal against a
 * timestamp column (jsonsql_tscmp) answers as its midnight form does, integer
 * division (jsonsql_divisor) answers, and a zero divisor is PostgreSQL's error. */
static void test_postgresql_answers(void **state)
{
    (void)state;
    struct th_srv v;
    start_default(&v, NULL);
    struct th_resp a = {0}, b = {0};
    assert_int_equal(srv_select(&v, "{\"data\":[{\"count\":\"*\"}],\"from\":\"subscriber\",\"where\":{\"gte\":"
                                    "[\"created_at\",\"2000-01-01\"]}}", &a), 200);
    assert_int_equal(srv_select(&v, "{\"data\":[{\"count\":\"*\"}],\"from\":\"subscriber\",\"where\":{\"gte\":"
                                    "[\"created_at\",\"2000-01-01 00:00:00\"]}}", &b), 200);
    assert_contains(a.body.p, "\"result\":[[");
    assert_string_equal(a.body.p, b.body.p);
    th_resp_free(&a);
    th_resp_free(&b);
    assert_int_equal(srv_select(&v, "{\"data\":[{\"max\":{\"div\":[\"id\",1]}}],\"from\":\"subscriber\"}", &a), 200);
    assert_int_equal(srv_select(&v, "{\"data\":[{\"max\":\"id\"}],\"from\":\"subscriber\"}", &b), 200);
    assert_contains(a.body.p, "\"result\":[[");
    assert_string_equal(a.body.p, b.body.p);
    th_resp_free(&a);
    th_resp_free(&b);
    assert_int_equal(srv_select(&v, "{\"data\":[{\"max\":{\"div\":[\"id\",0]}}],\"from\":\"subscriber\"}", &a), 200);
    assert_contains(a.body.p, "division by zero");
    assert_null(strstr(a.body.p, "\"result\""));
    th_resp_free(&a);
    assert_int_equal(th_srv_stop(&v), 0);
}

/* ---- bad input ------------------------------------------------------------------------------ */

static void expect_rpc_error(struct th_srv *v, const char *body, int code, const char *msg)
{
    struct th_resp r = {0};
    char want[32];
    assert_int_equal(th_srv_post(g_curl, v, "/api/jsonsql/", body, NULL, &r), 200);
    snprintf(want, sizeof want, "\"code\":%d", code);
    assert_contains(r.body.p, want);
    assert_contains(r.body.p, msg);
    assert_null(strstr(r.body.p, "\"result\""));
    th_resp_free(&r);
}

static void expect_sql_error(struct th_srv *v, const char *body, const char *msg)
{
    struct th_resp r = {0};
    if (th_srv_post(g_curl, v, "/sql", body, NULL, &r) != 400) fail_msg("%s: HTTP %ld %s", body, r.status, r.body.p);
    assert_contains(r.body.p, "{\"error\":");
    assert_contains(r.body.p, msg);
    th_resp_free(&r);
}

static void test_bad_input_refused(void **state)
{
    uint64_t before = cache_checksum();
    struct th_srv v;
    start_default(&v, NULL);
    struct th_resp r = {0};
    /* JSON-RPC */
    expect_rpc_error(&v, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"select\",", -32700, "Parse error: line 1");
    expect_rpc_error(&v, "[1,2]", -32600, "a batch element must be a JSON-RPC object");
    expect_rpc_error(&v, "{\"id\":1}", -32600, "method missing");
    expect_rpc_error(&v, "{\"id\":1,\"method\":\"drop\"}", -32601, "Method not found");
    struct buf deep = {0};
    buf_puts(&deep, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"select\",\"params\":{\"data\":");
    for (int i = 0; i < 100; i++) buf_putc(&deep, '[');
    for (int i = 0; i < 100; i++) buf_putc(&deep, ']');
    buf_puts(&deep, "}}");
    expect_rpc_error(&v, deep.p, -32700, "nesting too deep");
    buf_free(&deep);
    expect_rpc_error(&v, "{\"id\":1,\"method\":\"select\",\"params\":{\"data\":[\"id\"],\"from\":\"nosuch\"}}", -32602,
                     "unknown table");
    expect_rpc_error(&v, "{\"id\":1,\"method\":\"select\",\"params\":{\"data\":[\"usrname\"],\"from\":\"subscriber\"}}",
                     -32602, "unknown column");
    /* injection attempts: identifiers are checked, values are bound */
    expect_rpc_error(&v, "{\"id\":1,\"method\":\"select\",\"params\":{\"data\":[\"id; DROP TABLE subscriber\"],"
                         "\"from\":\"subscriber\"}}", -32602, "unknown column");
    expect_rpc_error(&v, "{\"id\":1,\"method\":\"select\",\"params\":{\"data\":[\"id\"],"
                         "\"from\":\"subscriber\\\"; DROP TABLE subscriber; --\"}}", -32602, "unknown table");
    assert_int_equal(srv_select(&v, "{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"eq\":[\"username\","
                                    "\"x' OR '1'='1\"]}}", &r), 200);
    assert_string_equal(r.body.p, "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":[]}");
    expect_rpc_error(&v, "{\"id\":1,\"method\":\"select\",\"params\":{\"data\":[\"name\"],\"from\":\"sqlite_master\"}}",
                     -32602, "unknown table");
    expect_rpc_error(&v, "{\"id\":1,\"method\":\"select\",\"params\":{\"data\":[\"name\"],\"from\":\"_agent_tables\"}}",
                     -32602, "unknown table");
    expect_rpc_error(&v, "{\"id\":1,\"method\":\"select\",\"params\":{\"data\":[\"id\"],\"from\":\"_agent_shadow_subscriber\"}}",
                     -32602, "unknown table");
    expect_rpc_error(&v, "{\"id\":1,\"method\":\"delete\",\"params\":{\"from\":\"subscriber\"}}", -32603,
                     "portal unreachable: writes are not queued");
    /* body over max_body (1 MiB): 413 from the HTTP layer */
    size_t big = (1u << 20) + 100;
    char *huge = malloc(big + 1);
    memset(huge, ' ', big);
    huge[big] = '\0';
    char url[200];
    snprintf(url, sizeof url, "%s/api/jsonsql/", v.url);
    assert_int_equal(th_http(g_curl, NULL, url, huge, big, NULL, &r), 413);
    assert_contains(r.body.p, "\"error\":{\"code\":-32600,\"message\":\"Invalid Request: body of");
    snprintf(url, sizeof url, "%s/sql", v.url);
    assert_int_equal(th_http(g_curl, NULL, url, huge, big, NULL, &r), 413);
    assert_contains(r.body.p, "{\"error\":\"body of 1048676 bytes exceeds the limit of 1048576\"}");
    /* every error is JSON, never libevent's HTML: past the 4 MiB hard cap, other
     * routes, methods no route takes (libevent said 501), methods it does not know */
    size_t bigger = (size_t)(5u << 20);
    char *huger = malloc(bigger);
    memset(huger, ' ', bigger);
    snprintf(url, sizeof url, "%s/status", v.url);
    assert_int_equal(th_http(g_curl, NULL, url, huger, bigger, NULL, &r), 413);
    assert_contains(r.body.p, "{\"error\":\"body of");
    free(huger);
    assert_int_equal(th_http(g_curl, NULL, url, huge, big, NULL, &r), 413);
    assert_contains(r.body.p, "{\"error\":\"body of 1048676 bytes exceeds the limit of 1048576\"}");
    free(huge);
    static const char *const methods[] = {"PUT", "DELETE", "PATCH", "OPTIONS", "BREW"};
    for (size_t i = 0; i < sizeof methods / sizeof *methods; i++) {
        snprintf(url, sizeof url, "%s/sql", v.url);
        long st = th_http(g_curl, methods[i], url, "SELECT 1", 8, NULL, &r);
        if (st != 405 || strncmp(r.body.p, "{\"error\":\"/sql takes POST\"}", 30) != 0)
            fail_msg("%s /sql: HTTP %ld %s", methods[i], st, r.body.p);
    }
    /* /sql */
    expect_sql_error(&v, "SELECT * FROM sqlite_master", "table sqlite_master is not readable here");
    expect_sql_error(&v, "SELECT name FROM sqlite_schema", "is not readable here");
    expect_sql_error(&v, "SELECT * FROM _agent_tables", "table _agent_tables is not readable here");
    expect_sql_error(&v, "SELECT * FROM _agent_state", "table _agent_state is not readable here");
    expect_sql_error(&v, "SELECT * FROM pragma_table_info('subscriber')", "virtual tables (pragma_*, json_each ...) are not");
    expect_sql_error(&v, "SELECT count(*) FROM pragma_database_list", "virtual tables (pragma_*, json_each ...) are not");
    expect_sql_error(&v, "DELETE FROM subscriber", "DELETE is not allowed");
    expect_sql_error(&v, "INSERT INTO tv_channel(id) VALUES (1)", "INSERT is not allowed");
    expect_sql_error(&v, "UPDATE subscriber SET balance = 0", "UPDATE is not allowed");
    expect_sql_error(&v, "DROP TABLE subscriber", "schema changes (CREATE, DROP, ALTER) are not allowed");
    expect_sql_error(&v, "CREATE TEMP TABLE x(a)", "schema changes (CREATE, DROP, ALTER) are not allowed");
    expect_sql_error(&v, "CREATE INDEX ix ON subscriber(email)", "schema changes (CREATE, DROP, ALTER) are not allowed");
    expect_sql_error(&v, "ALTER TABLE subscriber ADD COLUMN x", "is not allowed");
    expect_sql_error(&v, "SELECT * FROM json_each('[1]')", "virtual tables (pragma_*, json_each ...) are not readable");
    expect_sql_error(&v, "SELECT count(*) FROM sqlite_master", "table sqlite_master is not readable here");
    expect_sql_error(&v, "SELECT count(*) FROM _agent_tables", "table _agent_tables is not readable here");
    expect_sql_error(&v, "WITH c AS (SELECT 1) SELECT count(*) FROM _agent_columns, c",
                     "table _agent_columns is not readable here");
    expect_sql_error(&v, "ATTACH DATABASE '/tmp/x.db' AS x", "ATTACH is not allowed");
    expect_sql_error(&v, "PRAGMA table_info(subscriber)", "PRAGMA is not allowed");
    expect_sql_error(&v, "PRAGMA writable_schema = 1", "PRAGMA is not allowed");
    expect_sql_error(&v, "BEGIN", "a transaction statement is not allowed");
    expect_sql_error(&v, "VACUUM INTO '/tmp/ia_serve_vacuum.db'", "only reads are allowed");
    expect_sql_error(&v, "SELECT 1; SELECT 2", "one statement only");
    expect_sql_error(&v, "SELECT id FROM subscriber; DROP TABLE subscriber", "one statement only");
    expect_sql_error(&v, "SELECT load_extension('/tmp/x.so')", "function load_extension() is not allowed");
    expect_sql_error(&v, "SELECT zeroblob(1000000000)", "function zeroblob() is not allowed");
    expect_sql_error(&v, "SELECT * FROM nosuch", "no such table: nosuch");
    expect_sql_error(&v, "SELEC 1", "syntax error");
    expect_sql_error(&v, "   ", "empty statement");
    expect_sql_error(&v, "{\"sql\":42}", "expected SQL text or");
    expect_sql_error(&v, "{\"sql\":\"SELECT 1\",", "body: line 1");
    expect_sql_error(&v, "{\"sql\":\"SELECT ?1\",\"params\":[]}", "the statement has 1 parameter, params has 0");
    expect_sql_error(&v, "{\"sql\":\"SELECT ?1\",\"params\":[[1]]}", "params[0]: expected a number");
    static const char nulsql[] = "SELECT 1\0; DROP TABLE x";
    assert_int_equal(th_http(g_curl, NULL, url, nulsql, sizeof nulsql - 1, NULL, &r), 400);
    assert_contains(r.body.p, "NUL byte");
    /* wrong method, unknown route */
    assert_int_equal(th_srv_get(g_curl, &v, "/api/jsonsql/", NULL, &r), 405);
    assert_int_equal(th_srv_get(g_curl, &v, "/nope", NULL, &r), 404);
    assert_contains(r.body.p, "no such route: /nope");
    /* still serving, and nothing changed */
    assert_int_equal(srv_select(&v, "{\"data\":[{\"function\":\"count\",\"args\":[\"*\"]}],\"from\":\"subscriber\"}", &r),
                     200);
    assert_string_equal(r.body.p, "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":[[5000]]}");
    th_resp_free(&r);
    assert_int_equal(th_srv_stop(&v), 0);
    assert_true(cache_checksum() == before);
    assert_int_equal(access("/tmp/ia_serve_vacuum.db", F_OK), -1);
}

/* ---- /sql --------------------------------------------------------------------------------------- */

static void test_sql_endpoint(void **state)
{
    struct th_srv v;
    start_default(&v, NULL);
    struct th_resp r = {0};
    char want[256], h[64];
    snprintf(want, sizeof want, "SELECT id, disabled, tags, balance FROM subscriber WHERE id = %lld", g_sub[0]);
    assert_int_equal(th_srv_post(g_curl, &v, "/sql", want, NULL, &r), 200);
    assert_contains(r.body.p, "{\"columns\":[\"id\",\"disabled\",\"tags\",\"balance\"],\"rows\":[[");
    snprintf(want, sizeof want, "[[%lld,", g_sub[0]);
    assert_contains(r.body.p, want);                              /* exact int64 */
    assert_true(strstr(r.body.p, ",false,[") || strstr(r.body.p, ",true,[") || strstr(r.body.p, ",null"));
    assert_contains(r.body.p, "\"truncated\":false}");
    assert_non_null(th_header(&r, "X-Cache-Age", h, sizeof h));
    assert_string_equal(th_header(&r, "X-Cache-Stale", h, sizeof h), "false");
    /* JSON form with bound params; same statement text reuses the cached statement */
    for (int i = 0; i < 3; i++) {
        snprintf(want, sizeof want, "{\"sql\":\"SELECT count(*) AS n FROM terminal WHERE subscriber_id = ?\","
                                    "\"params\":[%lld]}", g_sub[i]);
        assert_int_equal(th_srv_post(g_curl, &v, "/sql", want, NULL, &r), 200);
        assert_contains(r.body.p, "{\"columns\":[\"n\"],\"rows\":[[");
        assert_null(strstr(r.body.p, "[[0]]"));
    }
    /* a statement reading no table has no cache headers */
    assert_int_equal(th_srv_post(g_curl, &v, "/sql", "SELECT 1 AS one, 'x' AS s, NULL AS z, 2.5 AS f;  ", NULL, &r), 200);
    assert_string_equal(r.body.p, "{\"columns\":[\"one\",\"s\",\"z\",\"f\"],\"rows\":[[1,\"x\",null,2.5]],\"truncated\":false}");
    assert_null(th_header(&r, "X-Cache-Age", h, sizeof h));
    assert_null(th_header(&r, "X-Cache-Stale", h, sizeof h));
    /* a BLOB is never raw bytes in JSON: "\\x" + hex (json_write_blob) */
    assert_int_equal(th_srv_post(g_curl, &v, "/sql", "SELECT x'00ff41' AS b, x'' AS e", NULL, &r), 200);
    assert_string_equal(r.body.p, "{\"columns\":[\"b\",\"e\"],\"rows\":[[\"\\\\x00ff41\",\"\\\\x\"]],\"truncated\":false}");
    /* a recursive CTE that ends is fine; comments after the statement too */
    assert_int_equal(th_srv_post(g_curl, &v, "/sql", "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10)"
                                          " SELECT sum(x) FROM c -- the end", NULL, &r), 200);
    assert_contains(r.body.p, "\"rows\":[[55]]");
    assert_int_equal(th_srv_post(g_curl, &v, "/sql", "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5)"
                                          " SELECT count(*) FROM c", NULL, &r), 200);
    assert_contains(r.body.p, "\"rows\":[[5]]");
    th_resp_free(&r);
    assert_int_equal(th_srv_stop(&v), 0);
}

/* ---- token -------------------------------------------------------------------------------------- */

static void test_token(void **state)
{
    struct serve_opts o = default_opts();
    o.token = "s3cret-t0ken";
    struct th_srv v;
    char err[512];
    assert_int_equal(th_srv_start(&v, &o, NULL, err, sizeof err), 0);
    struct th_resp r = {0};
    const char *sel = "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"select\",\"params\":{\"data\":[\"id\"],"
                      "\"from\":\"tv_channel\",\"limit\":1}}";
    /* Refused before the body is read: the id is unknown (null). */
    assert_int_equal(th_srv_post(g_curl, &v, "/api/jsonsql/", sel, NULL, &r), 401);
    assert_contains(r.body.p, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32000,\"message\":\"Session expired or invalid");
    const char *wrong[] = {"Authorization: Bearer s3cret-t0kem", NULL};
    assert_int_equal(th_srv_post(g_curl, &v, "/api/jsonsql/", sel, wrong, &r), 401);
    const char *prefix[] = {"Authorization: Bearer s3cret-t0ke", NULL};
    assert_int_equal(th_srv_post(g_curl, &v, "/api/jsonsql/", sel, prefix, &r), 401);
    const char *right[] = {"Authorization: Bearer s3cret-t0ken", NULL};
    assert_int_equal(th_srv_post(g_curl, &v, "/api/jsonsql/", sel, right, &r), 200);
    assert_contains(r.body.p, "\"result\":[[");
    /* authorize_user with the token as password gives a session */
    assert_int_equal(th_srv_post(g_curl, &v, "/api/jsonrpc/", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"authorize_user\","
                                                   "\"params\":{\"username\":\"admin\",\"password\":\"nope\"}}",
                              NULL, &r), 200);
    assert_contains(r.body.p, "\"code\":-32001,\"message\":\"Invalid username or password\"");
    assert_int_equal(th_srv_post(g_curl, &v, "/api/jsonrpc/", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"authorize_user\","
                                                   "\"params\":{\"username\":\"admin\",\"password\":\"s3cret-t0ken\"}}",
                              NULL, &r), 200);
    const char *sid = strstr(r.body.p, "\"session_id\":\"");
    assert_non_null(sid);
    char hdr[128];
    snprintf(hdr, sizeof hdr, "Iptvportal-Authorization: sessionid=%.32s", sid + 14);
    const char *sess[] = {hdr, NULL};
    assert_int_equal(th_srv_post(g_curl, &v, "/api/jsonsql/", sel, sess, &r), 200);
    assert_contains(r.body.p, "\"result\":[[");
    const char *badsess[] = {"Iptvportal-Authorization: sessionid=00000000000000000000000000000000", NULL};
    assert_int_equal(th_srv_post(g_curl, &v, "/api/jsonsql/", sel, badsess, &r), 401);
    /* other routes */
    assert_int_equal(th_srv_post(g_curl, &v, "/sql", "SELECT 1", NULL, &r), 401);
    assert_contains(r.body.p, "{\"error\":\"unauthorized");
    assert_int_equal(th_srv_post(g_curl, &v, "/sql", "SELECT 1", right, &r), 200);
    assert_int_equal(th_srv_get(g_curl, &v, "/status", NULL, &r), 401);
    assert_int_equal(th_srv_get(g_curl, &v, "/metrics", NULL, &r), 401);
    assert_int_equal(th_srv_get(g_curl, &v, "/status", right, &r), 200);
    assert_null(strstr(r.body.p, "s3cret"));
    assert_int_equal(th_srv_get(g_curl, &v, "/metrics", sess, &r), 200);
    assert_null(strstr(r.body.p, "s3cret"));
    assert_int_equal(th_srv_post(g_curl, &v, "/sync/tv_channel", "", NULL, &r), 401);
    assert_int_equal(th_srv_get(g_curl, &v, "/health", NULL, &r), 200);
    th_resp_free(&r);
    assert_int_equal(th_srv_stop(&v), 0);
    /* without a token, no header is needed and any password logs in */
    start_default(&v, NULL);
    assert_int_equal(th_srv_post(g_curl, &v, "/api/jsonsql/", sel, NULL, &r), 200);
    assert_int_equal(th_srv_post(g_curl, &v, "/api/jsonsql/", sel, wrong, &r), 200);
    assert_int_equal(th_srv_post(g_curl, &v, "/api/jsonrpc/", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"authorize_user\","
                                                   "\"params\":{\"username\":\"a\",\"password\":\"b\"}}", NULL, &r), 200);
    assert_contains(r.body.p, "\"result\":{\"session_id\":\"");
    assert_int_equal(th_srv_post(g_curl, &v, "/api/jsonrpc/", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"logout\"}", NULL, &r), 200);
    assert_contains(r.body.p, "\"code\":-32601");
    th_resp_free(&r);
    assert_int_equal(th_srv_stop(&v), 0);
}

static void test_non_loopback_needs_token(void **state)
{
    struct buf b = {0};
    struct config c;
    char err[1024];
    config_text("0.0.0.0:0", &b);
    assert_int_equal(config_parse("nl.toml", b.p, b.len, &c, err, sizeof err), 0);
    struct serve_opts o = {.cfg = &c, .db_path = g_site.db};
    struct event_base *base = event_base_new();
    err[0] = '\0';
    assert_null(serve_new(base, &o, NULL, err, sizeof err));
    assert_contains(err, "listen address 0.0.0.0:0 is not loopback");
    assert_contains(err, "IA_TEST_TOKEN");
    o.token = "";                        /* an empty variable is no token */
    assert_null(serve_new(base, &o, NULL, err, sizeof err));
    o.token = "tok";
    serve *s = serve_new(base, &o, NULL, err, sizeof err);
    assert_non_null(s);
    assert_true(serve_port(s) > 0);
    serve_free(s);
    /* a missing cache.db is named */
    struct serve_opts m = default_opts();
    char missing[600];
    snprintf(missing, sizeof missing, "%s/none.db", g_site.dir);
    m.db_path = missing;
    assert_null(serve_new(base, &m, NULL, err, sizeof err));
    assert_contains(err, "none.db: no such file");
    event_base_free(base);
    config_free(&c);
    buf_free(&b);
}

/* ---- caps ------------------------------------------------------------------------------------------ */

static void test_time_limit(void **state)
{
    struct serve_opts o = default_opts();
    o.time_limit_ms = 200;
    struct th_srv v;
    char err[512];
    assert_int_equal(th_srv_start(&v, &o, NULL, err, sizeof err), 0);
    struct th_resp r = {0};
    expect_sql_error(&v, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
                     "query stopped: it ran longer than the time limit of 200 ms");
    expect_rpc_error(&v, "{\"id\":1,\"method\":\"select\",\"params\":{\"data\":[{\"function\":\"count\",\"args\":[\"*\"]}],"
                         "\"from\":[{\"table\":\"subscriber\",\"as\":\"a\"},{\"join\":\"subscriber\",\"as\":\"b\","
                         "\"on\":{\"gte\":[{\"a\":\"id\"},{\"b\":\"id\"}]}},{\"join\":\"tv_channel\",\"as\":\"c\","
                         "\"on\":{\"gte\":[{\"a\":\"id\"},{\"c\":\"id\"}]}}]}}",
                     -32603, "query stopped: it ran longer than the time limit of 200 ms");
    /* the next request runs normally */
    assert_int_equal(th_srv_post(g_curl, &v, "/sql", "SELECT count(*) FROM tv_channel", NULL, &r), 200);
    assert_contains(r.body.p, "[[2000]]");
    th_resp_free(&r);
    assert_int_equal(th_srv_stop(&v), 0);
}

/* /api/jsonsql/ answers a page as a portal does ([serve] max_rows: no error,
 * the rows a limit of max_rows gives); /sql cuts at its own cap and says so. */
static void test_row_cap(void **state)
{
    struct config c = g_cfg;
    c.serve.max_rows = 100;
    struct serve_opts o = default_opts();
    o.cfg = &c;
    o.max_rows = 100;
    struct th_srv v;
    char err[512];
    assert_int_equal(th_srv_start(&v, &o, NULL, err, sizeof err), 0);
    struct th_resp r = {0}, want = {0};
    static const char *const orders[] = {"", ",\"order_by\":\"name\""};
    for (int i = 0; i < 2; i++) {
        char q[256];
        snprintf(q, sizeof q, "{\"data\":[\"id\"],\"from\":\"tv_channel\"%s,\"limit\":100}", orders[i]);
        assert_int_equal(srv_select(&v, q, &want), 200);
        int rows = 0;
        for (const char *p = want.body.p; (p = strstr(p, "[")); p++) rows++;
        assert_int_equal(rows, 101);               /* the result array and 100 rows */
        /* no limit, and a larger one: the same 100 rows in the same order */
        snprintf(q, sizeof q, "{\"data\":[\"id\"],\"from\":\"tv_channel\"%s}", orders[i]);
        assert_int_equal(srv_select(&v, q, &r), 200);
        assert_string_equal(r.body.p, want.body.p);
        snprintf(q, sizeof q, "{\"data\":[\"id\"],\"from\":\"tv_channel\"%s,\"limit\":100000}", orders[i]);
        assert_int_equal(srv_select(&v, q, &r), 200);
        assert_string_equal(r.body.p, want.body.p);
    }
    /* a smaller limit is kept, and paging with offset goes on past the cap */
    assert_int_equal(srv_select(&v, "{\"data\":[\"id\"],\"from\":\"tv_channel\",\"limit\":7}", &r), 200);
    int rows = 0;
    for (const char *p = r.body.p; (p = strstr(p, "[")); p++) rows++;
    assert_int_equal(rows, 8);
    assert_int_equal(srv_select(&v, "{\"data\":[{\"function\":\"count\",\"args\":[\"*\"]}],\"from\":"
                                    "{\"select\":{\"data\":[\"id\"],\"from\":\"tv_channel\",\"offset\":100}}}", &r), 200);
    assert_null(strstr(r.body.p, "[[0]]"));
    assert_int_equal(th_srv_post(g_curl, &v, "/sql", "SELECT id FROM tv_channel ORDER BY id", NULL, &r), 200);
    assert_contains(r.body.p, "\"truncated\":true}");
    rows = 0;
    for (const char *p = strstr(r.body.p, "\"rows\""); (p = strstr(p, "[")); p++) rows++;
    assert_int_equal(rows, 101);
    th_resp_free(&r);
    th_resp_free(&want);
    assert_int_equal(th_srv_stop(&v), 0);
}

/* ---- freshness headers -------------------------------------------------------------------------- */

struct hook_state {
    int portal;                          /* portal_state's answer */
    int64_t since;
    int fetches;
    char table[64], column[64], value[64];
    int fetch_mode;                      /* 0 real agent get + done now, 1 deferred done, 2 error,
                                            3 never, 4 refuse */
    serve_done_fn saved_done;
    void *saved_arg;
    struct event_base *base;
    int writes;
    char wmethod[16];
    struct buf wparams;
    int write_mode;                      /* 0 ok now, 1 ok deferred, 2 error, 3 refuse */
    serve_write_done_fn saved_wdone;
    int syncs;
    char synced[64];
    int refreshes;
    char keys[128];
    int refresh_mode;                    /* 0 real agent get + done now, 2 error, 4 refuse */
};

static int h_portal_state(void *ctx, int64_t *since)
{
    struct hook_state *h = ctx;
    *since = h->since;
    return h->portal;
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

static void test_cache_headers(void **state)
{
    struct hook_state hs = {.portal = 1};
    struct serve_hooks hooks = {.ctx = &hs, .portal_state = h_portal_state};
    struct th_srv v;
    start_default(&v, &hooks);
    struct th_resp r = {0};
    char h[64];
    const char *q = "{\"data\":[\"id\"],\"from\":\"tv_channel\",\"where\":{\"eq\":[\"id\",3]}}";
    assert_int_equal(srv_select(&v, q, &r), 200);
    assert_non_null(th_header(&r, "X-Cache-Age", h, sizeof h));
    assert_true(atoll(h) >= 0 && atoll(h) < 600);
    assert_string_equal(th_header(&r, "X-Cache-Stale", h, sizeof h), "false");
    assert_null(th_header(&r, "X-Cache-Error", h, sizeof h));
    /* portal unreachable: the answer is the same, marked stale */
    hs.portal = 0;
    hs.since = 1700000000000;
    assert_int_equal(srv_select(&v, q, &r), 200);
    assert_contains(r.body.p, "\"result\":[[3]]");
    assert_string_equal(th_header(&r, "X-Cache-Stale", h, sizeof h), "true");
    assert_int_equal(th_srv_get(g_curl, &v, "/health", NULL, &r), 200);
    assert_string_equal(r.body.p, "{\"status\":\"ok\",\"portal\":\"unreachable\",\"since\":\"2023-11-14T22:13:20Z\"}");
    hs.portal = 1;
    /* older than its ttl (1h): stale, and the age is the oldest table's */
    exec_writer("UPDATE _agent_tables SET last_success_ms = last_success_ms - 7200000 WHERE name = 'subscriber'");
    assert_int_equal(srv_select(&v, "{\"data\":[\"id\"],\"from\":\"subscriber\",\"limit\":1}", &r), 200);
    assert_string_equal(th_header(&r, "X-Cache-Stale", h, sizeof h), "true");
    assert_true(atoll(th_header(&r, "X-Cache-Age", h, sizeof h)) >= 7200);
    assert_int_equal(th_srv_post(g_curl, &v, "/sql", "SELECT count(*) FROM tv_channel", NULL, &r), 200);
    assert_string_equal(th_header(&r, "X-Cache-Stale", h, sizeof h), "false");
    assert_int_equal(th_srv_post(g_curl, &v, "/sql", "SELECT (SELECT count(*) FROM tv_channel), (SELECT count(*) FROM subscriber)",
                              NULL, &r), 200);
    assert_string_equal(th_header(&r, "X-Cache-Stale", h, sizeof h), "true");
    assert_true(atoll(th_header(&r, "X-Cache-Age", h, sizeof h)) >= 7200);
    assert_int_equal(th_srv_get(g_curl, &v, "/status", NULL, &r), 200);
    assert_contains(r.body.p, "\"name\":\"subscriber\",\"strategy\":\"incremental\",\"cached\":true,\"rows\":5000,");
    assert_contains(r.body.p, "\"ttl_seconds\":3600,\"stale\":true,\"forbidden\":false,\"last_error\":null}");
    exec_writer("UPDATE _agent_tables SET last_success_ms = last_success_ms + 7200000 WHERE name = 'subscriber'");
    assert_int_equal(srv_select(&v, "{\"data\":[\"id\"],\"from\":\"subscriber\",\"limit\":1}", &r), 200);
    assert_string_equal(th_header(&r, "X-Cache-Stale", h, sizeof h), "false");
    th_resp_free(&r);
    assert_int_equal(th_srv_stop(&v), 0);
}

/* ---- on_demand --------------------------------------------------------------------------------- */

static void deferred_done(evutil_socket_t fd, short what, void *arg)
{
    struct hook_state *h = arg;
    h->saved_done(h->saved_arg, 0, NULL);
}

static int h_fetch(void *ctx, const char *table, const char *column, const char *value_json, serve_done_fn done,
                   void *arg)
{
    struct hook_state *h = ctx;
    h->fetches++;
    snprintf(h->table, sizeof h->table, "%s", table);
    snprintf(h->column, sizeof h->column, "%s", column);
    snprintf(h->value, sizeof h->value, "%s", value_json);
    if (h->fetch_mode == 2) {
        done(arg, -1, "portal unreachable: connection refused\r\nX-Evil: 1");
        return 0;
    }
    if (h->fetch_mode == 4) return -1;                 /* the daemon's "portal is down" */
    if (h->fetch_mode == 3) {
        h->saved_done = done;
        h->saved_arg = arg;
        return 0;
    }
    char kv[128];
    snprintf(kv, sizeof kv, "%s=%s", column, value_json);
    if (th_site_agent(&g_site, "get", table, kv) != 0) return -1;   /* journal + apply, as the daemon's hook does */
    if (h->fetch_mode == 1) {
        h->saved_done = done;
        h->saved_arg = arg;
        struct timeval now = {0, 0};
        event_base_once(h->base, -1, EV_TIMEOUT, deferred_done, h, &now);
        return 0;
    }
    done(arg, 0, NULL);
    return 0;
}

static int h_refresh(void *ctx, const char *table, const char *keys_json, serve_done_fn done, void *arg)
{
    struct hook_state *h = ctx;
    h->refreshes++;
    snprintf(h->keys, sizeof h->keys, "%s", keys_json);
    if (h->refresh_mode == 2) {
        done(arg, -1, "portal unreachable: timed out");
        return 0;
    }
    if (h->refresh_mode == 4) return -1;
    /* The CLI reads a stale row again itself (pull_keys), as the daemon's hook does. */
    char kv[128];
    snprintf(kv, sizeof kv, "id=%.*s", (int)strlen(keys_json) - 2, keys_json + 1);
    if (th_site_agent(&g_site, "get", table, kv) != 0) return -1;
    done(arg, 0, NULL);
    return 0;
}

/* ttl on an on_demand table: a row read from the portal longer ago than the
 * ttl (1 h by default) is read again before it is served; when that cannot
 * happen it is served marked stale. */
static void test_on_demand_ttl(void **state)
{
    struct hook_state hs = {.portal = 1};
    struct serve_hooks hooks = {.ctx = &hs, .fetch = h_fetch, .portal_state = h_portal_state, .refresh = h_refresh};
    struct th_srv v;
    start_default(&v, &hooks);
    hs.base = v.base;
    struct th_resp r = {0}, p = {0};
    char q[256], h[128], sql[256];
    snprintf(sql, sizeof sql, "SELECT min(id) FROM terminal WHERE subscriber_id = %lld", g_sub[1]);
    long long tid = th_db_int(g_site.portal_db, sql);
    snprintf(q, sizeof q, "{\"data\":[\"id\",\"mac_addr\"],\"from\":\"terminal\",\"where\":{\"eq\":[\"id\",%lld]}}", tid);
    assert_int_equal(portal_select(q, &p), 200);
    /* cached by the group setup's get moments ago: fresh, its own age */
    assert_int_equal(srv_select(&v, q, &r), 200);
    assert_string_equal(r.body.p, p.body.p);
    assert_int_equal(hs.refreshes, 0);
    assert_int_equal(hs.fetches, 0);
    assert_string_equal(th_header(&r, "X-Cache-Stale", h, sizeof h), "false");
    assert_true(atoll(th_header(&r, "X-Cache-Age", h, sizeof h)) < 600);
    /* two hours old: read again (by key), then served fresh */
    char age[200];
    snprintf(age, sizeof age, "UPDATE _agent_fetched SET at_ms = at_ms - 7200000 WHERE tbl = 'terminal' AND key = %lld",
             tid);
    exec_writer(age);
    assert_int_equal(srv_select(&v, q, &r), 200);
    assert_int_equal(hs.refreshes, 1);
    snprintf(h, sizeof h, "[%lld]", tid);
    assert_string_equal(hs.keys, h);
    assert_string_equal(r.body.p, p.body.p);
    assert_string_equal(th_header(&r, "X-Cache-Stale", h, sizeof h), "false");
    assert_true(atoll(th_header(&r, "X-Cache-Age", h, sizeof h)) < 600);
    assert_int_equal(srv_select(&v, q, &r), 200);
    assert_int_equal(hs.refreshes, 1);                       /* fresh again: no second refresh */
    /* stale and the refresh fails, or is refused: the cached row, marked stale */
    exec_writer(age);
    hs.refresh_mode = 2;
    assert_int_equal(srv_select(&v, q, &r), 200);
    assert_int_equal(hs.refreshes, 2);
    assert_string_equal(r.body.p, p.body.p);
    assert_string_equal(th_header(&r, "X-Cache-Stale", h, sizeof h), "true");
    assert_true(atoll(th_header(&r, "X-Cache-Age", h, sizeof h)) >= 7200);
    assert_string_equal(th_header(&r, "X-Cache-Error", h, sizeof h), "portal unreachable: timed out");
    hs.refresh_mode = 4;
    assert_int_equal(srv_select(&v, q, &r), 200);
    assert_int_equal(hs.refreshes, 3);
    assert_string_equal(r.body.p, p.body.p);
    assert_string_equal(th_header(&r, "X-Cache-Stale", h, sizeof h), "true");
    /* a fetch time cache.db does not know (e.g. after a rebuild) counts as stale */
    snprintf(age, sizeof age, "DELETE FROM _agent_fetched WHERE tbl = 'terminal' AND key = %lld", tid);
    exec_writer(age);
    hs.refresh_mode = 0;
    assert_int_equal(srv_select(&v, q, &r), 200);
    assert_int_equal(hs.refreshes, 4);
    assert_string_equal(r.body.p, p.body.p);
    assert_string_equal(th_header(&r, "X-Cache-Stale", h, sizeof h), "false");
    /* without a refresh hook (an edge) a stale row is served stale */
    exec_writer(age);
    assert_int_equal(th_srv_stop(&v), 0);
    hooks.refresh = NULL;
    start_default(&v, &hooks);
    assert_int_equal(srv_select(&v, q, &r), 200);
    assert_string_equal(r.body.p, p.body.p);
    assert_string_equal(th_header(&r, "X-Cache-Stale", h, sizeof h), "true");
    assert_null(th_header(&r, "X-Cache-Age", h, sizeof h));
    assert_int_equal(hs.refreshes, 4);
    assert_int_equal(hs.fetches, 0);
    th_resp_free(&r);
    th_resp_free(&p);
    assert_int_equal(th_srv_stop(&v), 0);
}

static void test_on_demand(void **state)
{
    struct hook_state hs = {.portal = 1};
    struct serve_hooks hooks = {.ctx = &hs, .fetch = h_fetch, .portal_state = h_portal_state};
    struct th_srv v;
    start_default(&v, &hooks);
    hs.base = v.base;
    struct th_resp r = {0}, p = {0};
    char q[256], h[128];
    /* media was never fetched: no table in cache.db yet. The hook creates it. */
    snprintf(q, sizeof q, "{\"data\":[\"*\"],\"from\":\"media\",\"where\":{\"eq\":[\"id\",%lld]}}", g_media_id);
    assert_int_equal(srv_select(&v, q, &r), 200);
    assert_int_equal(hs.fetches, 1);
    assert_string_equal(hs.table, "media");
    assert_string_equal(hs.column, "id");
    snprintf(h, sizeof h, "%lld", g_media_id);
    assert_string_equal(hs.value, h);
    assert_int_equal(portal_select(q, &p), 200);
    assert_string_equal(r.body.p, p.body.p);
    snprintf(h, sizeof h, "\"result\":[[%lld,", g_media_id);    /* exact beyond 2^53 */
    assert_contains(r.body.p, h);
    assert_string_equal(th_header(&r, "X-Cache-Stale", h, sizeof h), "false");
    /* a hit does not fetch */
    assert_int_equal(srv_select(&v, q, &r), 200);
    assert_int_equal(hs.fetches, 1);
    assert_string_equal(r.body.p, p.body.p);
    /* a terminal not cached yet, key on the right, done called later from the loop */
    char tq[200];
    snprintf(tq, sizeof tq, "SELECT max(id) FROM terminal WHERE subscriber_id NOT IN (%lld, %lld, %lld)", g_sub[0],
             g_sub[1], g_sub[2]);
    long long tid = th_db_int(g_site.portal_db, tq);
    hs.fetch_mode = 1;
    snprintf(q, sizeof q, "{\"data\":[\"id\",\"mac_addr\",\"active\",\"settings\"],\"from\":[{\"table\":\"terminal\","
                          "\"as\":\"t\"}],\"where\":{\"eq\":[%lld,{\"t\":\"id\"}]}}", tid);
    assert_int_equal(srv_select(&v, q, &r), 200);
    assert_int_equal(hs.fetches, 2);
    assert_int_equal(portal_select(q, &p), 200);
    assert_string_equal(r.body.p, p.body.p);
    assert_contains(r.body.p, "\"result\":[[");
    /* the hook fails: an error no client takes for "no such row" (not result []),
     * with the reason also in X-Cache-Error on one line */
    hs.fetch_mode = 2;
    assert_int_equal(srv_select(&v, "{\"data\":[\"id\"],\"from\":\"terminal\",\"where\":{\"eq\":[\"id\",-5]}}", &r), 200);
    assert_string_equal(r.body.p, "{\"jsonrpc\":\"2.0\",\"id\":7,\"error\":{\"code\":-32004,\"message\":\"terminal id=-5 "
                                  "is not cached and the portal could not be asked: portal unreachable: connection "
                                  "refused\\r\\nX-Evil: 1\"}}");
    assert_string_equal(th_header(&r, "X-Cache-Error", h, sizeof h), "portal unreachable: connection refused  X-Evil: 1");
    assert_null(th_header(&r, "X-Evil", h, sizeof h));
    assert_int_equal(hs.fetches, 3);
    hs.fetch_mode = 4;
    assert_int_equal(srv_select(&v, "{\"data\":[\"id\"],\"from\":\"terminal\",\"where\":{\"eq\":[\"id\",-6]}}", &r), 200);
    assert_string_equal(r.body.p, "{\"jsonrpc\":\"2.0\",\"id\":7,\"error\":{\"code\":-32004,\"message\":\"terminal id=-6 "
                                  "is not cached and the portal could not be asked: on_demand fetch not started "
                                  "(portal unreachable or agent stopping)\"}}");
    assert_string_equal(th_header(&r, "X-Cache-Error", h, sizeof h),
                        "on_demand fetch not started (portal unreachable or agent stopping)");
    assert_int_equal(hs.fetches, 4);
    /* not a key lookup: no fetch */
    assert_int_equal(srv_select(&v, "{\"data\":[\"id\"],\"from\":\"terminal\",\"where\":{\"eq\":[\"model\",\"none\"]}}", &r),
                     200);
    assert_int_equal(srv_select(&v, "{\"data\":[\"id\"],\"from\":\"terminal\",\"where\":{\"eq\":[\"id\",\"mac_addr\"]}}",
                                &r), 200);
    assert_int_equal(srv_select(&v, "{\"data\":[\"id\"],\"from\":\"tv_channel\",\"where\":{\"eq\":[\"id\",-1]}}", &r), 200);
    assert_int_equal(hs.fetches, 4);
    /* in [key, [value]] (what `get` sends through a running daemon): an `in`
     * list holds values only, so "mac_addr" is a key to fetch, not a column */
    assert_int_equal(srv_select(&v, "{\"data\":[\"id\"],\"from\":\"terminal\",\"where\":{\"in\":[\"id\",[\"mac_addr\"]]}}",
                                &r), 200);
    assert_int_equal(hs.fetches, 5);
    assert_string_equal(hs.column, "id");
    assert_string_equal(hs.value, "\"mac_addr\"");
    assert_contains(r.body.p, "\"code\":-32004");
    /* a list of two is not one key lookup */
    assert_int_equal(srv_select(&v, "{\"data\":[\"id\"],\"from\":\"terminal\",\"where\":{\"in\":[\"id\",[-7,-8]]}}",
                                &r), 200);
    assert_int_equal(hs.fetches, 5);
    th_resp_free(&r);
    th_resp_free(&p);
    assert_int_equal(th_srv_stop(&v), 0);
}

/* A fetch hook that never answers before serve_free: the late done only frees. */
struct direct_reply {
    int calls, status;
    struct buf body;
    int64_t age;
    int stale;
};

static void on_direct(void *arg, const struct serve_reply *rep)
{
    struct direct_reply *d = arg;
    d->calls++;
    d->status = rep->status;
    d->age = rep->cache_age;
    d->stale = rep->cache_stale;
    buf_reset(&d->body);
    buf_append(&d->body, rep->body.p, rep->body.len);
}

static void test_direct_and_orphaned(void **state)
{
    struct hook_state hs = {.portal = 1, .fetch_mode = 3};
    struct serve_hooks hooks = {.ctx = &hs, .fetch = h_fetch};
    struct serve_opts o = default_opts();
    o.max_body = 1000;
    o.max_depth = 8;
    char err[512];
    serve *s = serve_new(NULL, &o, &hooks, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(serve_port(s), 0);
    struct direct_reply d = {0};
    const char *sel = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"select\",\"params\":{\"data\":[\"id\"],"
                      "\"from\":\"tv_channel\",\"where\":{\"eq\":[\"id\",3]}}}";
    struct serve_request rq = {.method = "POST", .path = "/api/jsonsql/", .body = sel, .len = strlen(sel)};
    assert_int_equal(serve_handle(s, &rq, on_direct, &d), 0);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status, 200);
    assert_string_equal(d.body.p, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":[[3]]}");
    assert_true(d.age >= 0);
    assert_int_equal(d.stale, 0);
    /* caps without evhttp: 413 as JSON-RPC, nesting */
    char big[1200];
    memset(big, ' ', sizeof big);
    rq.body = big;
    rq.len = sizeof big;
    assert_int_equal(serve_handle(s, &rq, on_direct, &d), 0);
    assert_int_equal(d.status, 413);
    assert_contains(d.body.p, "\"code\":-32600,\"message\":\"Invalid Request: body of 1200 bytes exceeds the limit of 1000\"");
    rq.path = "/sql";
    assert_int_equal(serve_handle(s, &rq, on_direct, &d), 0);
    assert_int_equal(d.status, 413);
    const char *deep = "{\"sql\":[[[[[[[[[[1]]]]]]]]]]}";
    rq.body = deep;
    rq.len = strlen(deep);
    assert_int_equal(serve_handle(s, &rq, on_direct, &d), 0);
    assert_int_equal(d.status, 400);
    assert_contains(d.body.p, "nesting too deep");
    /* a body that is not NUL-terminated (regression: the message read past it) */
    static const char two[] = "SELECT 1; SELECT 2";
    char *exact = malloc(sizeof two - 1);
    memcpy(exact, two, sizeof two - 1);
    rq.body = exact;
    rq.len = sizeof two - 1;
    assert_int_equal(serve_handle(s, &rq, on_direct, &d), 0);
    assert_int_equal(d.status, 400);
    assert_string_equal(d.body.p, "{\"error\":\"one statement only (more follows: \\\"SELECT 2\\\")\"}");
    free(exact);
    /* parked on a hook, then the server goes away */
    const char *miss = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"select\",\"params\":{\"data\":[\"id\"],"
                       "\"from\":\"terminal\",\"where\":{\"eq\":[\"id\",-77]}}}";
    struct serve_request mq = {.method = "POST", .path = "/api/jsonsql/", .body = miss, .len = strlen(miss)};
    d.calls = 0;
    assert_int_equal(serve_handle(s, &mq, on_direct, &d), 1);
    assert_int_equal(hs.fetches, 1);
    assert_int_equal(d.calls, 0);
    serve_refresh(s);
    serve_free(s);
    hs.saved_done(hs.saved_arg, 0, NULL);       /* frees the orphan; no callback */
    assert_int_equal(d.calls, 0);
    buf_free(&d.body);
}

/* ---- exports ---------------------------------------------------------------------------------- */

struct export_hook {
    char path[600];              /* the file handed out */
    int mode;                    /* 0 file now, 1 file later (event_base_once), 2..: that status */
    int calls;
    char base[80];               /* last base asked for; "" snapshot */
    struct event_base *base_ev;
    serve_export_done_fn done;
    void *arg;
};

static void export_send(struct export_hook *h, serve_export_done_fn done, void *arg)
{
    int fd = open(h->path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat sb;
    assert_int_equal(fstat(fd, &sb), 0);
    struct serve_file f = {fd, (int64_t)sb.st_size, "0123456789abcdef0123456789abcdef", h->base};
    done(arg, 200, &f, NULL);
}

static void deferred_export(evutil_socket_t fd, short what, void *arg)
{
    struct export_hook *h = arg;
    export_send(h, h->done, h->arg);
}

static int h_export(void *ctx, const char *base_id, serve_export_done_fn done, void *arg)
{
    struct export_hook *h = ctx;
    h->calls++;
    snprintf(h->base, sizeof h->base, "%s", base_id ? base_id : "");
    switch (h->mode) {
    case 0: export_send(h, done, arg); return 0;
    case 1: {
        h->done = done;
        h->arg = arg;
        struct timeval now = {0, 0};
        event_base_once(h->base_ev, -1, EV_TIMEOUT, deferred_export, h, &now);
        return 0;
    }
    case 9: return -1;
    default: done(arg, h->mode, NULL, "base is not kept here"); return 0;
    }
}

static void on_direct_file(void *arg, const struct serve_reply *rep)
{
    struct direct_reply *d = arg;
    on_direct(arg, rep);
    if (rep->file_fd >= 0) {             /* the callback owns the descriptor */
        char b[4096];
        ssize_t n;
        buf_reset(&d->body);
        while ((n = read(rep->file_fd, b, sizeof b)) > 0) buf_append(&d->body, b, (size_t)n);
        close(rep->file_fd);
    }
}

/* GET /export/snapshot and /export/delta?base=ID: the hook's file is the body
 * (sent from the descriptor, any size), X-Export-Id/-Base name it; statuses
 * pass through; the token is required; bad requests never reach the hook. */
static void test_export_routes(void **state)
{
    struct export_hook eh = {0};
    snprintf(eh.path, sizeof eh.path, "%s/export.bin", g_site.dir);
    /* 3 MB of a pattern: more than one socket buffer. */
    struct buf content = {0};
    for (int i = 0; content.len < 3u << 20; i++) buf_printf(&content, "line %d of the export file\n", i);
    assert_int_equal(tu_write_file(eh.path, content.p, content.len), 0);
    struct serve_hooks hooks = {.ctx = &eh, .export_file = h_export};
    struct serve_opts o = default_opts();
    o.token = "exp-token";
    char err[512];
    struct th_srv v;
    if (th_srv_start(&v, &o, &hooks, err, sizeof err) != 0) fail_msg("serve_new: %s", err);
    eh.base_ev = v.base;
    const char *auth[] = {"Authorization: Bearer exp-token", NULL};
    struct th_resp r = {0};
    char hv[128];
    assert_int_equal(th_srv_get(g_curl, &v, "/export/snapshot", NULL, &r), 401);
    assert_int_equal(eh.calls, 0);
    for (int mode = 0; mode < 2; mode++) {
        eh.mode = mode;
        assert_int_equal(th_srv_get(g_curl, &v, "/export/snapshot", auth, &r), 200);
        assert_int_equal(r.body.len, content.len);
        assert_memory_equal(r.body.p, content.p, content.len);
        assert_string_equal(th_header(&r, "X-Export-Id", hv, sizeof hv), "0123456789abcdef0123456789abcdef");
        assert_null(th_header(&r, "X-Export-Base", hv, sizeof hv));
        assert_string_equal(th_header(&r, "Content-Type", hv, sizeof hv), "application/octet-stream");
        assert_string_equal(eh.base, "");
    }
    assert_int_equal(th_srv_get(g_curl, &v, "/export/delta?x=1&base=abc%2Fdef", auth, &r), 200);
    assert_string_equal(eh.base, "abc/def");     /* decoded; the hook validates ids */
    assert_string_equal(th_header(&r, "X-Export-Base", hv, sizeof hv), "abc/def");
    int before = eh.calls;
    assert_int_equal(th_srv_get(g_curl, &v, "/export/delta", auth, &r), 400);
    assert_contains(r.body.p, "expected GET /export/delta?base=ID");
    assert_int_equal(th_srv_get(g_curl, &v, "/export/delta?base=", auth, &r), 400);
    assert_int_equal(th_srv_get(g_curl, &v, "/export/other", auth, &r), 404);
    assert_int_equal(th_srv_post(g_curl, &v, "/export/snapshot", "{}", auth, &r), 405);
    assert_int_equal(eh.calls, before);
    eh.mode = 304;
    assert_int_equal(th_srv_get(g_curl, &v, "/export/delta?base=b1", auth, &r), 304);
    assert_int_equal(r.body.len, 0);
    eh.mode = 410;
    assert_int_equal(th_srv_get(g_curl, &v, "/export/delta?base=b1", auth, &r), 410);
    assert_contains(r.body.p, "{\"error\":\"base is not kept here\"}");
    eh.mode = 9;
    assert_int_equal(th_srv_get(g_curl, &v, "/export/snapshot", auth, &r), 503);
    assert_contains(r.body.p, "export not started");
    assert_int_equal(th_srv_stop(&v), 0);
    /* Without a listener: the reply callback gets the descriptor. */
    serve *s = serve_new(NULL, &o, &hooks, err, sizeof err);
    assert_non_null(s);
    struct direct_reply d = {0};
    struct serve_request rq = {.method = "GET", .path = "/export/snapshot", .authorization = "Bearer exp-token"};
    eh.mode = 0;
    assert_int_equal(serve_handle(s, &rq, on_direct_file, &d), 0);
    assert_int_equal(d.status, 200);
    assert_int_equal(d.body.len, content.len);
    /* A server without the hook does not export. */
    serve_free(s);
    struct serve_hooks none = {0};
    s = serve_new(NULL, &o, &none, err, sizeof err);
    assert_int_equal(serve_handle(s, &rq, on_direct_file, &d), 0);
    assert_int_equal(d.status, 404);
    serve_free(s);
    buf_free(&d.body);
    buf_free(&content);
    th_resp_free(&r);
}

/* ---- writes ---------------------------------------------------------------------------------- */

static void deferred_wdone(evutil_socket_t fd, short what, void *arg)
{
    struct hook_state *h = arg;
    h->saved_wdone(h->saved_arg, 0, "[[77]]", NULL);
}

static int h_write(void *ctx, const char *method, const char *params_json, serve_write_done_fn done, void *arg)
{
    struct hook_state *h = ctx;
    h->writes++;
    snprintf(h->wmethod, sizeof h->wmethod, "%s", method);
    buf_reset(&h->wparams);
    buf_puts(&h->wparams, params_json);
    switch (h->write_mode) {
    case 0: done(arg, 0, "[[42,\"x\"]]", NULL); return 0;
    case 1: {
        h->saved_wdone = done;
        h->saved_arg = arg;
        struct timeval now = {0, 0};
        event_base_once(h->base, -1, EV_TIMEOUT, deferred_wdone, h, &now);
        return 0;
    }
    case 2: done(arg, -1, NULL, "HTTP 403 on package"); return 0;
    case 4: done(arg, 0, "[[1", NULL); return 0;
    case 5: done(arg, SERVE_WRITE_OK, "1", NULL); return 0;
    case 6: done(arg, SERVE_WRITE_UNKNOWN, NULL, "write outcome unknown: delete at P: Empty reply from server"); return 0;
    case 7: done(arg, SERVE_WRITE_QUEUED, "[[-12000]]", "12"); return 0;
    case 8: done(arg, SERVE_WRITE_REFUSED, NULL, "delete refused: table x takes no writes"); return 0;
    default: return -1;
    }
}

static void test_writes(void **state)
{
    struct hook_state hs = {.portal = 1};
    struct serve_hooks hooks = {.ctx = &hs, .write = h_write};
    struct th_srv v;
    start_default(&v, &hooks);
    hs.base = v.base;
    struct th_resp r = {0};
    const char *ins = "{\"jsonrpc\":\"2.0\",\"id\":12345678901234567,\"method\":\"insert\",\"params\":{\"into\":\"package\","
                      "\"columns\":[\"name\",\"paid\"],\"values\":[[\"movie\",true]],\"returning\":\"id\"}}";
    assert_int_equal(th_srv_post(g_curl, &v, "/api/jsonsql/", ins, NULL, &r), 200);
    assert_string_equal(r.body.p, "{\"jsonrpc\":\"2.0\",\"id\":12345678901234567,\"result\":[[42,\"x\"]]}");
    assert_string_equal(hs.wmethod, "insert");
    assert_string_equal(hs.wparams.p, "{\"into\":\"package\",\"columns\":[\"name\",\"paid\"],\"values\":[[\"movie\",true]],"
                                      "\"returning\":\"id\"}");
    hs.write_mode = 1;
    assert_int_equal(th_srv_post(g_curl, &v, "/api/jsonsql/", "{\"id\":2,\"method\":\"update\",\"params\":{\"table\":\"subscriber\","
                                                   "\"set\":{\"disabled\":true},\"where\":{\"eq\":[\"id\",1]}}}", NULL, &r), 200);
    assert_string_equal(r.body.p, "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":[[77]]}");
    hs.write_mode = 2;
    assert_int_equal(th_srv_post(g_curl, &v, "/api/jsonsql/", "{\"id\":3,\"method\":\"delete\",\"params\":{\"from\":\"x\"}}", NULL, &r), 200);
    assert_contains(r.body.p, "\"code\":-32603,\"message\":\"portal write failed: HTTP 403 on package (writes are not queued)\"");
    hs.write_mode = 3;
    assert_int_equal(th_srv_post(g_curl, &v, "/api/jsonsql/", "{\"id\":4,\"method\":\"delete\",\"params\":{\"from\":\"x\"}}", NULL, &r), 200);
    assert_contains(r.body.p, "portal write failed: portal unreachable (writes are not queued)");
    hs.write_mode = 4;
    assert_int_equal(th_srv_post(g_curl, &v, "/api/jsonsql/", "{\"id\":5,\"method\":\"delete\",\"params\":{\"from\":\"x\"}}", NULL, &r), 200);
    assert_contains(r.body.p, "portal write returned a bad result");
    assert_int_equal(th_srv_post(g_curl, &v, "/api/jsonsql/", "{\"id\":6,\"method\":\"delete\",\"params\":[1]}", NULL, &r), 200);
    assert_contains(r.body.p, "\"code\":-32602,\"message\":\"params: expected an object\"");
    /* a row count goes back as the portal sent it */
    hs.write_mode = 5;
    assert_int_equal(th_srv_post(g_curl, &v, "/api/jsonsql/", "{\"id\":7,\"method\":\"delete\",\"params\":{\"from\":\"x\"}}", NULL, &r), 200);
    assert_string_equal(r.body.p, "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":1}");
    /* a lost answer has a code of its own: not "failed", so not simply resent */
    hs.write_mode = 6;
    assert_int_equal(th_srv_post(g_curl, &v, "/api/jsonsql/", "{\"id\":8,\"method\":\"delete\",\"params\":{\"from\":\"x\"}}", NULL, &r), 200);
    assert_string_equal(r.body.p, "{\"jsonrpc\":\"2.0\",\"id\":8,\"error\":{\"code\":-32002,\"message\":"
                                  "\"write outcome unknown: delete at P: Empty reply from server\"}}");
    /* queued in the outbox: answered as the portal would (the header: scenario daemon_queue) */
    hs.write_mode = 7;
    assert_int_equal(th_srv_post(g_curl, &v, "/api/jsonsql/", "{\"id\":9,\"method\":\"insert\",\"params\":{\"into\":\"x\"}}", NULL, &r), 200);
    assert_string_equal(r.body.p, "{\"jsonrpc\":\"2.0\",\"id\":9,\"result\":[[-12000]]}");
    /* refused before the portal was asked: -32602 with the hook's message */
    hs.write_mode = 8;
    assert_int_equal(th_srv_post(g_curl, &v, "/api/jsonsql/", "{\"id\":10,\"method\":\"delete\",\"params\":{\"from\":\"x\"}}", NULL, &r), 200);
    assert_string_equal(r.body.p, "{\"jsonrpc\":\"2.0\",\"id\":10,\"error\":{\"code\":-32602,\"message\":"
                                  "\"delete refused: table x takes no writes\"}}");
    assert_int_equal(hs.writes, 9);
    th_resp_free(&r);
    buf_free(&hs.wparams);
    assert_int_equal(th_srv_stop(&v), 0);
}

/* Writes go out with the portal admin's credentials: a server without a token
 * forwards none unless tokenless_writes = "loopback" says so. */
static void test_tokenless_writes(void **state)
{
    struct hook_state hs = {.portal = 1};
    struct serve_hooks hooks = {.ctx = &hs, .write = h_write};
    struct config closed = g_cfg;
    closed.serve.tokenless_writes = false;
    struct serve_opts o = default_opts();
    o.cfg = &closed;
    struct th_srv v;
    char err[512];
    if (th_srv_start(&v, &o, &hooks, err, sizeof err) != 0) fail_msg("serve_new: %s", err);
    hs.base = v.base;
    struct th_resp r = {0};
    const char *const methods[] = {"insert", "update", "delete"};
    for (int i = 0; i < 3; i++) {
        char body[160];
        snprintf(body, sizeof body, "{\"id\":%d,\"method\":\"%s\",\"params\":{\"from\":\"package\"}}", i, methods[i]);
        assert_int_equal(th_srv_post(g_curl, &v, "/api/jsonsql/", body, NULL, &r), 403);
        assert_contains(r.body.p, "\"code\":-32000");
        assert_contains(r.body.p, "writes through the local API need an API token");
        assert_contains(r.body.p, "tokenless_writes");
    }
    assert_int_equal(hs.writes, 0);                  /* nothing reached the portal */
    /* reads stay open */
    assert_int_equal(srv_select(&v, "{\"data\":[\"id\"],\"from\":\"tv_channel\",\"limit\":1}", &r), 200);
    assert_contains(r.body.p, "\"result\":[[");
    assert_int_equal(th_srv_stop(&v), 0);
    /* with a token, a write that carries it is forwarded */
    o.token = "w-t0ken";
    if (th_srv_start(&v, &o, &hooks, err, sizeof err) != 0) fail_msg("serve_new: %s", err);
    hs.base = v.base;
    const char *auth[] = {"Authorization: Bearer w-t0ken", NULL};
    assert_int_equal(th_srv_post(g_curl, &v, "/api/jsonsql/", "{\"id\":9,\"method\":\"delete\",\"params\":{\"from\":\"x\"}}", auth, &r),
                     200);
    assert_string_equal(r.body.p, "{\"jsonrpc\":\"2.0\",\"id\":9,\"result\":[[42,\"x\"]]}");
    assert_int_equal(hs.writes, 1);
    th_resp_free(&r);
    buf_free(&hs.wparams);
    assert_int_equal(th_srv_stop(&v), 0);
}

/* ---- status, health, metrics, sync ---------------------------------------------------------------- */

static void h_status(void *ctx, struct buf *out) { buf_puts(out, "\"scheduler\":{\"jobs\":2}"); }
static void h_metrics(void *ctx, struct buf *out) { buf_puts(out, "iptv_agent_pulls_total 9\n"); }

static int h_sync(void *ctx, const char *table, char *err, size_t errlen)
{
    struct hook_state *h = ctx;
    if (strcmp(table, "tv_channel") != 0) {
        snprintf(err, errlen, "table %s is not configured", table);
        return -1;
    }
    h->syncs++;
    snprintf(h->synced, sizeof h->synced, "%s", table);
    return 0;
}

static void test_status_health_metrics(void **state)
{
    struct hook_state hs = {.portal = -1};
    struct serve_hooks hooks = {.ctx = &hs, .portal_state = h_portal_state, .status_json = h_status,
                                .metrics = h_metrics, .sync = h_sync};
    struct th_srv v;
    start_default(&v, &hooks);
    struct th_resp r = {0};
    char h[64];
    assert_int_equal(th_srv_get(g_curl, &v, "/health", NULL, &r), 200);
    assert_string_equal(r.body.p, "{\"status\":\"ok\",\"portal\":\"unknown\",\"since\":null}");
    assert_int_equal(th_srv_get(g_curl, &v, "/status", NULL, &r), 200);
    assert_contains(r.body.p, "{\"tables\":[{\"name\":\"tv_channel\",\"strategy\":\"full\",\"cached\":true,\"rows\":2000,"
                              "\"last_success\":\"20");
    assert_contains(r.body.p, "\"ttl_seconds\":3600,\"stale\":false,\"forbidden\":false,\"last_error\":null}");
    assert_contains(r.body.p, "{\"name\":\"media\",\"strategy\":\"on_demand\",");
    assert_contains(r.body.p, "],\"serve\":{\"port\":");
    assert_null(strstr(r.body.p, "\"portal\""));        /* the status_json hook's member */
    assert_contains(r.body.p, ",\"scheduler\":{\"jobs\":2}}");
    assert_null(th_header(&r, "X-Cache-Stale", h, sizeof h));
    assert_int_equal(th_srv_post(g_curl, &v, "/sync/tv_channel", "", NULL, &r), 202);
    assert_string_equal(r.body.p, "{\"queued\":\"tv_channel\"}");
    assert_int_equal(hs.syncs, 1);
    assert_int_equal(th_srv_post(g_curl, &v, "/sync/nosuch", "", NULL, &r), 404);
    assert_string_equal(r.body.p, "{\"error\":\"table nosuch is not configured\"}");
    assert_int_equal(th_srv_get(g_curl, &v, "/sync/tv_channel", NULL, &r), 405);
    assert_int_equal(srv_select(&v, "{\"data\":[\"id\"],\"from\":\"tv_channel\",\"limit\":1}", &r), 200);
    assert_int_equal(th_srv_get(g_curl, &v, "/metrics", NULL, &r), 200);
    assert_contains(th_header(&r, "Content-Type", h, sizeof h), "text/plain");
    assert_contains(r.body.p, "# TYPE iptv_agent_table_rows gauge\n");
    assert_contains(r.body.p, "iptv_agent_table_rows{table=\"subscriber\"} 5000\n");
    assert_contains(r.body.p, "iptv_agent_table_rows{table=\"tv_channel\"} 2000\n");
    assert_contains(r.body.p, "iptv_agent_table_seconds_since_success{table=\"tv_channel\"} ");
    assert_contains(r.body.p, "iptv_agent_requests_total{route=\"/api/jsonsql/\",code=\"200\"} 1\n");
    assert_contains(r.body.p, "iptv_agent_requests_total{route=\"/sync\",code=\"202\"} 1\n");
    assert_contains(r.body.p, "iptv_agent_requests_total{route=\"/sync\",code=\"404\"} 1\n");
    assert_contains(r.body.p, "# TYPE iptv_agent_request_duration_seconds histogram\n");
    assert_contains(r.body.p, "iptv_agent_request_duration_seconds_bucket{le=\"+Inf\"} 6\n");
    assert_contains(r.body.p, "iptv_agent_request_duration_seconds_count 6\n");
    assert_contains(r.body.p, "iptv_agent_pulls_total 9\n");
    th_resp_free(&r);
    assert_int_equal(th_srv_stop(&v), 0);
    /* no sync hook */
    start_default(&v, NULL);
    assert_int_equal(th_srv_post(g_curl, &v, "/sync/tv_channel", "", NULL, &r), 503);
    th_resp_free(&r);
    assert_int_equal(th_srv_stop(&v), 0);
}

/* A table appears in cache.db while serving: the next request sees it without serve_refresh. */
static void test_catalog_follows_schema(void **state)
{
    struct th_srv v;
    start_default(&v, NULL);
    struct th_resp r = {0};
    assert_int_equal(th_srv_post(g_curl, &v, "/sql", "SELECT count(*) FROM package", NULL, &r), 400);
    assert_contains(r.body.p, "no such table: package");
    exec_writer("CREATE TABLE extra_t (id INTEGER PRIMARY KEY, ok BOOLEAN); INSERT INTO extra_t VALUES (1, 1)");
    assert_int_equal(srv_select(&v, "{\"data\":[\"id\",\"ok\"],\"from\":\"extra_t\"}", &r), 200);
    assert_string_equal(r.body.p, "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":[[1,true]]}");
    exec_writer("DROP TABLE extra_t");
    assert_int_equal(srv_select(&v, "{\"data\":[\"id\",\"ok\"],\"from\":\"extra_t\"}", &r), 200);
    assert_contains(r.body.p, "unknown table");
    th_resp_free(&r);
    assert_int_equal(th_srv_stop(&v), 0);
}

/* A snapshot swaps tv_channel in (drop live, rename shadow, one transaction) while
 * requests keep coming: every answer is whole, none fails (invariant 4 as the
 * reader sees it; re-prepare and catalog rebuild under a schema change). */
static void test_reads_during_snapshot_swap(void **state)
{
    struct th_srv v;
    start_default(&v, NULL);
    struct th_resp r = {0};
    const char *args[] = {"--log-level", "error", "sync", "--full", "tv_channel", NULL};
    pid_t pid = th_agent_spawn(g_site.cfg_path, "IA_TEST_PW=secret", -1, args);
    assert_true(pid >= 0);
    int st = 0, done = 0, n = 0, during = 0;
    while (!done || n < during + 5) {
        if (!done && waitpid(pid, &st, WNOHANG) == pid) {
            done = 1;
            during = n;
        }
        assert_int_equal(srv_select(&v, "{\"data\":[{\"function\":\"count\",\"args\":[\"*\"]}],\"from\":\"tv_channel\"}",
                                    &r), 200);
        assert_string_equal(r.body.p, "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":[[2000]]}");
        assert_int_equal(th_srv_post(g_curl, &v, "/sql", "SELECT id FROM tv_channel WHERE id = 3", NULL, &r), 200);
        assert_contains(r.body.p, "\"rows\":[[3]]");
        n++;
    }
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    printf("swap: %d request pairs answered while the snapshot ran\n", during);
    th_resp_free(&r);
    assert_int_equal(th_srv_stop(&v), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compat_with_portal),
        cmocka_unit_test(test_postgresql_answers),
        cmocka_unit_test(test_bad_input_refused),
        cmocka_unit_test(test_sql_endpoint),
        cmocka_unit_test(test_token),
        cmocka_unit_test(test_export_routes),
        cmocka_unit_test(test_non_loopback_needs_token),
        cmocka_unit_test(test_time_limit),
        cmocka_unit_test(test_row_cap),
        cmocka_unit_test(test_cache_headers),
        cmocka_unit_test(test_on_demand),
        cmocka_unit_test(test_on_demand_ttl),
        cmocka_unit_test(test_direct_and_orphaned),
        cmocka_unit_test(test_writes),
        cmocka_unit_test(test_tokenless_writes),
        cmocka_unit_test(test_status_health_metrics),
        cmocka_unit_test(test_catalog_follows_schema),
        cmocka_unit_test(test_reads_during_snapshot_swap),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
