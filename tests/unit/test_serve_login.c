/* test_serve_login.c — the local API logs in as the portal does (serve_auth.h)
 * and takes JSON-RPC batches (serve_batch.h).
 *
 * Group setup: a fake portal (--rows 100) and a cache pulled from it once by
 * the real agent; every test then drives a serve instance without sockets
 * (serve_handle), with an injected clock for session expiry (no sleeps). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/base/buf.h"
#include "agent/base/log.h"
#include "agent/config/config.h"
#include "agent/serve/serve.h"
#include "agent/serve/serve_auth.h"
#include "agent/serve/serve_batch.h"
#include "tests/harness/asserts.h"
#include "tests/harness/harness.h"
#include "tests/testutil.h"

#define PASSWORD "PW-nEver-In-Log-9d2f"
#define TOKEN "TK-nEver-In-Log-41c7"

static struct th_site g_site;
static struct config g_cfg;

static const char config_fmt[] =
    "[remote]\nurl = \"%s\"\nusername = \"admin\"\npassword_env = \"IA_LOGIN_PW\"\nretries = 0\n"
    "[storage]\ndir = \"%s/store\"\n"
    "[serve]\nlisten = \"127.0.0.1:0\"\n"
    "[[table]]\nname = \"tv_channel\"\nstrategy = \"full\"\n"
    "columns = [\"id\", \"name\", \"url\", \"epg_id\", \"logo\", \"is_tv\", \"is_radio\", \"sort_order\","
    " \"category_id\", \"languages\", \"params\", \"created_at\", \"updated_at\"]\n";

static int group_setup(void **state)
{
    (void)state;
    const char *args[] = {"--rows", "100", NULL};
    if (th_site_start(&g_site, "test_serve_login", "IA_LOGIN_PW=secret", args) != 0) return -1;
    struct buf b = {0};
    buf_printf(&b, config_fmt, g_site.portal.url, g_site.dir);
    int rc = th_site_config(&g_site, b.p, b.len, &g_cfg);
    buf_free(&b);
    if (rc != 0) return -1;
    return th_site_agent(&g_site, "--once", NULL, NULL) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    th_site_stop(&g_site);
    config_free(&g_cfg);
    return 0;
}

/* ---- direct requests --------------------------------------------------------------------- */

struct got {
    int calls, status;
    struct buf body;
};

static void on_reply(void *arg, const struct serve_reply *rep)
{
    struct got *g = arg;
    g->calls++;
    g->status = rep->status;
    buf_reset(&g->body);
    buf_append(&g->body, rep->body.p, rep->body.len);
    buf_puts(&g->body, "");
}

/* POST body to path; returns serve_handle's answer (0 answered, 1 waiting). */
static int post(serve *s, const char *path, const char *authz, const char *sess, const char *body, struct got *g)
{
    g->calls = 0;
    g->status = 0;
    buf_reset(&g->body);
    struct serve_request rq = {.method = "POST", .path = path, .authorization = authz, .session = sess,
                               .body = body, .len = strlen(body)};
    return serve_handle(s, &rq, on_reply, g);
}

static const char sel1[] = "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"select\",\"params\":{\"data\":[\"id\"],"
                           "\"from\":\"tv_channel\",\"where\":{\"eq\":[\"id\",1]}}}";

static void login_body(char *out, size_t n, const char *user, const char *pw)
{
    snprintf(out, n, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"authorize_user\",\"params\":"
                     "{\"username\":\"%s\",\"password\":\"%s\"}}", user, pw);
}

/* sel1 on /api/jsonsql/, answered at once: its HTTP status. */
static int select_status(serve *s, const char *authz, const char *sess, struct got *g)
{
    assert_int_equal(post(s, "/api/jsonsql/", authz, sess, sel1, g), 0);
    assert_int_equal(g->calls, 1);
    return g->status;
}

/* authorize_user; the session header ("sessionid=SID") into hdr, or "" when refused. */
static void login(serve *s, const char *user, const char *pw, char *hdr, size_t n, struct got *g)
{
    char body[256];
    login_body(body, sizeof body, user, pw);
    assert_int_equal(post(s, "/api/jsonrpc/", NULL, NULL, body, g), 0);
    assert_int_equal(g->calls, 1);
    const char *sid = strstr(g->body.p, "\"session_id\":\"");
    if (sid) snprintf(hdr, n, "sessionid=%.32s", sid + 14);
    else hdr[0] = '\0';
}

struct fake_clock {
    int64_t now_ms;
};

static int64_t clock_now(void *arg) { return ((struct fake_clock *)arg)->now_ms; }

static serve *start(const struct config *c, const char *token, const char *user, const char *pw,
                    struct fake_clock *clk, const struct serve_hooks *hooks)
{
    struct serve_opts o = {.cfg = c, .db_path = g_site.db, .token = token, .username = user, .password = pw,
                           .clock_ms = clk ? clock_now : NULL, .clock_arg = clk};
    char err[512];
    serve *s = serve_new(NULL, &o, hooks, err, sizeof err);
    if (!s) fail_msg("serve_new: %s", err);
    return s;
}

/* ---- logging in --------------------------------------------------------------------------- */

/* The [remote] account and the token log in; anything else is the portal's
 * -32001; /api/jsonsql/ needs a session or the token; no secret reaches a
 * reply or the log (debug level), after failed and successful logins alike. */
static void test_login_portal(void **state)
{
    (void)state;
    char logpath[600];
    snprintf(logpath, sizeof logpath, "%s/login-debug.log", g_site.dir);
    int saved = th_log_capture(logpath);
    assert_true(saved >= 0);

    struct config c = g_cfg;
    c.serve.auth = AUTH_PORTAL;
    serve *s = start(&c, TOKEN, "admin", PASSWORD, NULL, NULL);
    struct got g = {0};
    struct buf all = {0};
    char sess[64], other[64];
    /* wrong password, wrong username, no params, empty password: refused as the portal refuses */
    static const char *const bad[][2] = {{"admin", "PW-nEver-In-Log-9d2e"}, {"admin", ""}, {"root", PASSWORD},
                                         {"", PASSWORD}, {"admin", PASSWORD "x"}, {"admin", "PW-nEver"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        login(s, bad[i][0], bad[i][1], sess, sizeof sess, &g);
        if (sess[0] || g.status != 200 || !strstr(g.body.p, "\"code\":-32001,\"message\":\"Invalid username or password\""))
            fail_msg("login %s/%s: HTTP %d %s", bad[i][0], bad[i][1], g.status, g.body.p);
        buf_append(&all, g.body.p, g.body.len);
    }
    assert_int_equal(post(s, "/api/jsonrpc/", NULL, NULL, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"authorize_user\"}", &g), 0);
    assert_contains(g.body.p, "\"code\":-32001");
    /* the right account */
    login(s, "admin", PASSWORD, sess, sizeof sess, &g);
    assert_true(sess[0]);
    assert_contains(g.body.p, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"session_id\":\"");
    buf_append(&all, g.body.p, g.body.len);
    assert_int_equal(select_status(s, NULL, sess, &g), 200);
    assert_string_equal(g.body.p, "{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":[[1]]}");
    /* the token as password, with any username */
    login(s, "whoever", TOKEN, other, sizeof other, &g);
    assert_true(other[0]);
    assert_string_not_equal(other, sess);
    assert_int_equal(select_status(s, NULL, other, &g), 200);
    /* Bearer token */
    assert_int_equal(select_status(s, "Bearer " TOKEN, NULL, &g), 200);
    assert_int_equal(select_status(s, "Bearer " PASSWORD, NULL, &g), 401);                     /* the password is no token */
    /* no header, an unknown session, a malformed one: the portal's refusal, HTTP 401 */
    static const char *const refused[] = {NULL, "sessionid=00000000000000000000000000000000", "sessionid=",
                                          "sessionid=" TOKEN, "sessionid=" PASSWORD, "garbage"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        assert_int_equal(post(s, "/api/jsonsql/", NULL, refused[i], sel1, &g), 0);
        assert_int_equal(g.status, 401);
        assert_contains(g.body.p, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32000,"
                                  "\"message\":\"Session expired or invalid, please authorize");
        buf_append(&all, g.body.p, g.body.len);
    }
    /* a session opens the token's routes too; /status says nothing secret */
    struct serve_request st = {.method = "GET", .path = "/status", .session = sess};
    g.calls = 0;
    assert_int_equal(serve_handle(s, &st, on_reply, &g), 0);
    assert_int_equal(g.status, 200);
    buf_append(&all, g.body.p, g.body.len);
    serve_free(s);
    char *log = th_log_release(saved, logpath);
    buf_puts(&all, "");
    assert_lacks(all.p, PASSWORD);
    assert_lacks(all.p, TOKEN);
    assert_lacks(all.p, "PW-nEver");
    assert_non_null(log);
    assert_contains(log, "authorize_user refused");      /* the log was captured */
    assert_contains(log, "serve: /api/jsonrpc/ -> 200");
    assert_lacks(log, PASSWORD);
    assert_lacks(log, "PW-nEver");
    assert_lacks(log, TOKEN);
    free(log);
    buf_free(&all);
    buf_free(&g.body);
}

/* Sessions slide: each use keeps one alive for ttl more; an idle one expires
 * and is refused as unknown. The clock is injected: no time passes. */
static void test_session_expiry(void **state)
{
    (void)state;
    struct config c = g_cfg;
    c.serve.auth = AUTH_PORTAL;
    c.serve.session_ttl_ms = 1000;
    struct fake_clock clk = {.now_ms = 50000};
    serve *s = start(&c, NULL, "admin", PASSWORD, &clk, NULL);
    struct got g = {0};
    char sess[64], idle[64];
    login(s, "admin", PASSWORD, sess, sizeof sess, &g);
    login(s, "admin", PASSWORD, idle, sizeof idle, &g);
    assert_true(sess[0] && idle[0]);
    clk.now_ms += 999;
    assert_int_equal(select_status(s, NULL, sess, &g), 200);
    clk.now_ms += 999;                                   /* 1998 after login, 999 after its last use */
    assert_int_equal(select_status(s, NULL, sess, &g), 200);
    assert_int_equal(select_status(s, NULL, idle, &g), 401);                     /* idle for 1998 ms */
    assert_contains(g.body.p, "Session expired or invalid");
    clk.now_ms += 1000;                                  /* exactly ttl after the last use: expired */
    assert_int_equal(select_status(s, NULL, sess, &g), 401);
    /* a new login works at once */
    login(s, "admin", PASSWORD, sess, sizeof sess, &g);
    assert_int_equal(select_status(s, NULL, sess, &g), 200);
    serve_free(s);
    buf_free(&g.body);
}

/* The session table is bounded: the oldest issued goes first. */
static void test_session_cap(void **state)
{
    (void)state;
    struct fake_clock clk = {.now_ms = 7};
    struct serve_auth_opts o = {.mode = AUTH_PORTAL, .username = "admin", .password = PASSWORD, .max_sessions = 3,
                                .clock_ms = clock_now, .clock_arg = &clk};
    char err[256], sid[5][SERVE_AUTH_SID_LEN + 1], hdr[64];
    serve_auth *a = serve_auth_new(&o, err, sizeof err);
    assert_non_null(a);
    for (int i = 0; i < 5; i++) assert_int_equal(serve_auth_login(a, "admin", PASSWORD, sid[i], err, sizeof err), 1);
    assert_int_equal(serve_auth_sessions(a), 3);
    for (int i = 0; i < 5; i++) {
        snprintf(hdr, sizeof hdr, "sessionid=%s", sid[i]);
        assert_int_equal(serve_auth_portal_ok(a, NULL, hdr), i >= 2);
    }
    assert_int_equal(serve_auth_login(a, "admin", "nope", sid[0], err, sizeof err), 0);
    assert_int_equal(serve_auth_login(a, NULL, NULL, sid[0], err, sizeof err), 0);
    serve_auth_free(a);
    /* the default cap is the documented one */
    o.max_sessions = 0;
    a = serve_auth_new(&o, err, sizeof err);
    for (int i = 0; i < SERVE_AUTH_MAX_SESSIONS + 1; i++) serve_auth_login(a, "admin", PASSWORD, sid[0], err, sizeof err);
    assert_int_equal(serve_auth_sessions(a), SERVE_AUTH_MAX_SESSIONS);
    serve_auth_free(a);
}

struct write_hook {
    int calls;
    char method[8][16];
    serve_write_done_fn done[8];
    void *arg[8];
};

static int hook_write(void *ctx, const char *method, const char *params_json, serve_write_done_fn done, void *arg)
{
    (void)params_json;
    struct write_hook *w = ctx;
    assert_true(w->calls < 8);
    snprintf(w->method[w->calls], sizeof w->method[0], "%s", method);
    w->done[w->calls] = done;
    w->arg[w->calls] = arg;
    w->calls++;
    return 0;
}

/* Who can log in without a token or without an account; auth = "none". */
static void test_modes(void **state)
{
    (void)state;
    struct config c = g_cfg;
    c.serve.auth = AUTH_PORTAL;
    char err[512];
    /* nobody could log in: refused, saying what to set */
    struct serve_opts o = {.cfg = &c, .db_path = g_site.db, .username = "admin"};
    assert_null(serve_new(NULL, &o, NULL, err, sizeof err));
    assert_contains(err, "token_env");
    assert_contains(err, "auth = \"none\"");
    o.password = "";
    assert_null(serve_new(NULL, &o, NULL, err, sizeof err));
    /* an edge (no account) with a token: only the token logs in */
    serve *s = start(&c, TOKEN, NULL, NULL, NULL, NULL);
    struct got g = {0};
    char sess[64];
    login(s, "admin", "", sess, sizeof sess, &g);
    assert_false(sess[0]);
    login(s, "", TOKEN, sess, sizeof sess, &g);
    assert_true(sess[0]);
    serve_free(s);
    /* the account without a token: logins write (they proved the portal's
     * password); /sql stays open on loopback as before; Bearer means nothing */
    struct write_hook w = {0};
    struct serve_hooks hooks = {.ctx = &w, .write = hook_write};
    c.serve.tokenless_writes = false;
    s = start(&c, NULL, "admin", PASSWORD, NULL, &hooks);
    assert_int_equal(select_status(s, "Bearer x", NULL, &g), 401);
    login(s, "admin", PASSWORD, sess, sizeof sess, &g);
    assert_int_equal(post(s, "/api/jsonsql/", NULL, sess,
                          "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"delete\",\"params\":{\"from\":\"tv_channel\","
                          "\"where\":{\"eq\":[\"id\",1]}}}", &g), 1);
    assert_int_equal(w.calls, 1);
    w.done[0](w.arg[0], SERVE_WRITE_OK, "1", NULL);
    assert_string_equal(g.body.p, "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":1}");
    assert_int_equal(post(s, "/sql", NULL, NULL, "SELECT 1", &g), 0);
    assert_int_equal(g.status, 200);
    serve_free(s);
    /* auth = "none": open as before, any password logs in, writes need the explicit yes */
    c.serve.auth = AUTH_NONE;
    s = start(&c, NULL, NULL, NULL, NULL, &hooks);
    assert_int_equal(select_status(s, NULL, NULL, &g), 200);
    login(s, "a", "b", sess, sizeof sess, &g);
    assert_true(sess[0]);
    assert_int_equal(post(s, "/api/jsonsql/", NULL, NULL,
                          "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"delete\",\"params\":{\"from\":\"tv_channel\"}}", &g), 0);
    assert_int_equal(g.status, 403);
    serve_free(s);
    /* auth = "none" with a token: the token's rules, as before */
    s = start(&c, TOKEN, NULL, NULL, NULL, NULL);
    assert_int_equal(select_status(s, NULL, NULL, &g), 401);
    login(s, "a", "b", sess, sizeof sess, &g);
    assert_false(sess[0]);
    login(s, "a", TOKEN, sess, sizeof sess, &g);
    assert_int_equal(select_status(s, NULL, sess, &g), 200);
    serve_free(s);
    buf_free(&g.body);
}

/* ---- batches ------------------------------------------------------------------------------ */

static void test_batch(void **state)
{
    (void)state;
    struct config c = g_cfg;
    c.serve.auth = AUTH_PORTAL;
    struct write_hook w = {0};
    struct serve_hooks hooks = {.ctx = &w, .write = hook_write};
    serve *s = start(&c, TOKEN, "admin", PASSWORD, NULL, &hooks);
    const char *bearer = "Bearer " TOKEN;
    struct got g = {0}, one = {0};
    /* answers in order, ids kept, each as it would be alone */
    const char *e1 = "{\"jsonrpc\":\"2.0\",\"id\":\"b\",\"method\":\"select\",\"params\":{\"data\":[\"id\"],"
                     "\"from\":\"tv_channel\",\"where\":{\"eq\":[\"id\",3]}}}";
    const char *e2 = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"select\",\"params\":{\"data\":[\"nosuch\"],"
                     "\"from\":\"tv_channel\"}}";
    struct buf want = {0}, body = {0};
    buf_printf(&body, "[%s,%s,%s, 7 ,[],{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"nosuch\"}]", e1, e2, sel1);
    buf_putc(&want, '[');
    const char *alone[] = {e1, e2, sel1};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(post(s, "/api/jsonsql/", bearer, NULL, alone[i], &one), 0);
        buf_append(&want, one.body.p, one.body.len);
        buf_putc(&want, ',');
    }
    buf_puts(&want, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32600,\"message\":\"Invalid Request: a batch "
                    "element must be a JSON-RPC object\"}},{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32600,"
                    "\"message\":\"Invalid Request: a batch element must be a JSON-RPC object\"}},");
    assert_int_equal(post(s, "/api/jsonsql/", bearer, NULL, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"nosuch\"}", &one), 0);
    buf_append(&want, one.body.p, one.body.len);
    buf_putc(&want, ']');
    assert_int_equal(post(s, "/api/jsonsql/", bearer, NULL, body.p, &g), 0);
    assert_int_equal(g.status, 200);
    assert_string_equal(g.body.p, want.p);
    assert_contains(g.body.p, "\"id\":\"b\",\"result\":[[3]]");
    /* empty, and over the limit: one error object */
    assert_int_equal(post(s, "/api/jsonsql/", bearer, NULL, " [ ] ", &g), 0);
    assert_int_equal(g.status, 200);
    assert_string_equal(g.body.p, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32600,"
                                  "\"message\":\"Invalid Request: empty batch\"}}");
    for (int n = SERVE_MAX_BATCH; n <= SERVE_MAX_BATCH + 1; n++) {
        buf_reset(&body);
        buf_putc(&body, '[');
        for (int i = 0; i < n; i++) buf_printf(&body, "%s%s", i ? "," : "", sel1);
        buf_putc(&body, ']');
        assert_int_equal(post(s, "/api/jsonsql/", bearer, NULL, body.p, &g), 0);
        assert_int_equal(g.status, 200);
        if (n > SERVE_MAX_BATCH) {
            assert_string_equal(g.body.p, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32600,\"message\":"
                                          "\"Invalid Request: a batch of 101 requests exceeds the limit of 100\"}}");
        } else {
            int k = 0;
            for (const char *p = g.body.p; (p = strstr(p, "\"result\":[[1]]")); p++) k++;
            assert_int_equal(k, SERVE_MAX_BATCH);
            assert_true(g.body.p[0] == '[');
        }
    }
    /* unauthorized: one refusal, no element runs */
    assert_int_equal(post(s, "/api/jsonsql/", NULL, NULL, "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"delete\","
                                                        "\"params\":{\"from\":\"tv_channel\"}}]", &g), 0);
    assert_int_equal(g.status, 401);
    assert_int_equal(w.calls, 0);
    /* writes go through the write hook and finish in any order; the batch
     * answers once, when the last is done, in request order */
    buf_reset(&body);
    buf_puts(&body, "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"update\",\"params\":{\"table\":\"tv_channel\","
                    "\"set\":{\"name\":\"x\"},\"where\":{\"eq\":[\"id\",1]}}},");
    buf_puts(&body, sel1);
    buf_puts(&body, ",{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"delete\",\"params\":{\"from\":\"tv_channel\","
                    "\"where\":{\"eq\":[\"id\",2]}}}]");
    assert_int_equal(post(s, "/api/jsonsql/", bearer, NULL, body.p, &g), 1);
    assert_int_equal(w.calls, 2);
    assert_string_equal(w.method[0], "update");
    assert_string_equal(w.method[1], "delete");
    w.done[1](w.arg[1], SERVE_WRITE_OK, "1", NULL);
    assert_int_equal(g.calls, 0);
    w.done[0](w.arg[0], SERVE_WRITE_FAILED, NULL, "portal said no");
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.status, 200);
    assert_string_equal(g.body.p, "[{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32603,\"message\":\"portal write "
                                  "failed: portal said no (writes are not queued)\"}},"
                                  "{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":[[1]]},"
                                  "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":1}]");
    /* logins in a batch on /api/jsonrpc/ */
    char b1[256], b2[256];
    login_body(b1, sizeof b1, "admin", PASSWORD);
    login_body(b2, sizeof b2, "admin", "wrong");
    buf_reset(&body);
    buf_printf(&body, "[%s,%s]", b1, b2);
    assert_int_equal(post(s, "/api/jsonrpc/", NULL, NULL, body.p, &g), 0);
    assert_int_equal(g.status, 200);
    const char *ok1 = "[{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"session_id\":\"";
    assert_true(strncmp(g.body.p, ok1, strlen(ok1)) == 0);
    assert_contains(g.body.p, "},{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32001,");
    /* serve_free with a batch still waiting for a write: the late done only frees */
    int before = w.calls;
    assert_int_equal(post(s, "/api/jsonsql/", bearer, NULL, "[{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"delete\","
                                                          "\"params\":{\"from\":\"tv_channel\"}}]", &g), 1);
    assert_int_equal(w.calls, before + 1);
    serve_free(s);
    w.done[before](w.arg[before], SERVE_WRITE_OK, "1", NULL);
    assert_int_equal(g.calls, 0);
    buf_free(&want);
    buf_free(&body);
    buf_free(&g.body);
    buf_free(&one.body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_login_portal),
        cmocka_unit_test(test_session_expiry),
        cmocka_unit_test(test_session_cap),
        cmocka_unit_test(test_modes),
        cmocka_unit_test(test_batch),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
