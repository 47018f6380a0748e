/* test_remote.c — the portal client against the real fake portal on loopback:
 * login, re-login after expiry in each refusal style, retries through each
 * transient fault, final errors per class, caps, and int64 exactness. Writes:
 * both result shapes (rows, a row count), and never a second copy on the
 * portal when the answer is lost after the statement ran (each such fault),
 * counted on the portal's table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/portal/remote.h"
#include "tests/testutil.h"

#define PASSWORD "s3cr3t-Pa55"

struct rows {
    struct buf text;     /* rows as JSON lines */
    size_t n;
    int begins;
};

static int r_begin(void *ctx)
{
    struct rows *r = ctx;
    buf_reset(&r->text);
    r->n = 0;
    r->begins++;
    return 0;
}
static int r_row_begin(void *ctx, size_t row) { buf_putc(&((struct rows *)ctx)->text, '['); return 0; }
static int r_value(void *ctx, size_t col, const struct json_val *v)
{
    struct rows *r = ctx;
    if (col) buf_putc(&r->text, ',');
    json_write_val(&r->text, v);
    return 0;
}
static int r_row_end(void *ctx, size_t row, size_t ncols)
{
    struct rows *r = ctx;
    buf_puts(&r->text, "]\n");
    r->n++;
    return 0;
}
static const struct json_rows_cb rows_cb = {r_begin, r_row_begin, r_value, r_row_end};

struct fixture {
    struct tu_portal portal;
    remote *r;
    struct rows rows;
    char err[4096];
};

static remote *open_remote(const char *url, const char *password, int retries, int64_t timeout_ms,
                           int64_t max_response)
{
    struct remote_opts o = {
        .url = url, .username = "admin", .password = password, .timeout_ms = timeout_ms,
        .retries = retries, .verify_tls = true, .max_response = max_response,
        .backoff_base_ms = 1, .backoff_max_ms = 5, .seed = 42,
    };
    char err[512];
    remote *r = remote_new(&o, err, sizeof err);
    if (!r) fail_msg("remote_new: %s", err);
    return r;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    const char *args[] = {"--rows", "3000", "--password", PASSWORD, "--seed", "7", NULL};
    if (tu_portal_start(&f->portal, args) != 0) return -1;
    f->r = open_remote(f->portal.url, PASSWORD, 5, 5000, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    remote_free(f->r);
    tu_portal_stop(&f->portal);
    buf_free(&f->rows.text);
    free(f);
    return 0;
}

static enum remote_status sel(struct fixture *f, const char *params)
{
    f->err[0] = '\0';
    return remote_query(f->r, "select", params, &rows_cb, &f->rows, f->err, sizeof f->err);
}

static const char *const PAGE = "{\"data\":[\"id\",\"name\",\"is_tv\"],\"from\":\"tv_channel\",\"order_by\":\"id\",\"limit\":5}";

static void test_login_and_select(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(sel(f, PAGE), REMOTE_OK);
    assert_int_equal(f->rows.n, 5);
    /* booleans arrive as true/false, as on the portal */
    assert_true(strstr(f->rows.text.p, "true") || strstr(f->rows.text.p, "false"));
    assert_int_equal(remote_get_stats(f->r)->logins, 1);
    assert_int_equal(sel(f, PAGE), REMOTE_OK);
    assert_int_equal(remote_get_stats(f->r)->logins, 1);   /* session reused */
}

static void test_bad_password(void **state)
{
    struct fixture *f = *state;
    remote *r = open_remote(f->portal.url, "wrong-password", 2, 5000, 0);
    char err[1024];
    assert_int_equal(remote_query(r, "select", PAGE, &rows_cb, &f->rows, err, sizeof err), REMOTE_EAUTH);
    assert_non_null(strstr(err, "refused"));
    assert_null(strstr(err, "wrong-password"));
    remote_free(r);
}

static void relogin_in_style(struct fixture *f, const char *style)
{
    char body[128];
    snprintf(body, sizeof body, "{\"session_error\":\"%s\"}", style);
    assert_int_equal(tu_admin(&f->portal, "/_fake/faults", body), 200);
    assert_int_equal(sel(f, PAGE), REMOTE_OK);
    uint64_t before = remote_get_stats(f->r)->logins;
    assert_int_equal(tu_admin(&f->portal, "/_fake/expire", NULL), 200);
    assert_int_equal(sel(f, PAGE), REMOTE_OK);
    assert_int_equal(f->rows.n, 5);
    assert_int_equal(remote_get_stats(f->r)->logins, before + 1);
}

static void test_relogin_jsonrpc(void **state) { relogin_in_style(*state, "jsonrpc"); }
static void test_relogin_http401(void **state) { relogin_in_style(*state, "http401"); }
static void test_relogin_http403(void **state) { relogin_in_style(*state, "http403"); }

static void test_second_refusal_is_auth(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(sel(f, PAGE), REMOTE_OK);
    /* query refused, re-login succeeds, the resent query is refused again */
    assert_int_equal(tu_admin(&f->portal, "/_fake/faults", "{\"queue\":[\"expire\",\"ok\",\"expire\"]}"), 200);
    assert_int_equal(sel(f, PAGE), REMOTE_EAUTH);
    assert_non_null(strstr(f->err, "again after logging in anew"));
}

static void test_retries_each_transient_fault(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(sel(f, PAGE), REMOTE_OK);
    uint64_t before = remote_get_stats(f->r)->retries;
    assert_int_equal(tu_admin(&f->portal, "/_fake/faults",
                              "{\"queue\":[\"500\",\"reset\",\"truncate\",\"garbage\"]}"), 200);
    f->rows.begins = 0;
    assert_int_equal(sel(f, PAGE), REMOTE_OK);
    assert_int_equal(f->rows.n, 5);
    assert_int_equal(remote_get_stats(f->r)->retries, before + 4);
    /* the garbage body delivered part of a page before failing: begin voided it */
    assert_int_equal(f->rows.begins, 2);
}

static void gives_up_with(struct fixture *f, const char *queue, const char *expect)
{
    remote *r = open_remote(f->portal.url, PASSWORD, 2, 5000, 0);
    char body[256], err[4096];
    assert_int_equal(remote_query(r, "select", PAGE, NULL, NULL, err, sizeof err), REMOTE_OK);
    snprintf(body, sizeof body, "{\"queue\":[%s]}", queue);
    assert_int_equal(tu_admin(&f->portal, "/_fake/faults", body), 200);
    assert_int_equal(remote_query(r, "select", PAGE, NULL, NULL, err, sizeof err), REMOTE_ETRANSPORT);
    if (!strstr(err, "gave up after 3 tries") || !strstr(err, expect))
        fail_msg("unexpected error text: %s", err);
    remote_free(r);
}

/* One error repeated on every try is said once (the count is in "after N tries"). */
static void test_gives_up_500(void **state)
{
    gives_up_with(*state, "\"500\",\"500\",\"500\"", "gave up after 3 tries: HTTP 500");
    gives_up_with(*state, "\"500\",\"500\",\"garbage\"", "gave up after 3 tries: tries 1-2: HTTP 500; try 3: bad response body");
    gives_up_with(*state, "\"garbage\",\"500\",\"500\"", ": try 1: bad response body");
    gives_up_with(*state, "\"garbage\",\"500\",\"500\"", "; tries 2-3: HTTP 500");
}
static void test_gives_up_reset(void **state) { gives_up_with(*state, "\"reset\",\"reset\",\"reset\"", "gave up after 3 tries: "); }
static void test_gives_up_truncate(void **state)
{
    gives_up_with(*state, "\"truncate\",\"truncate\",\"truncate\"", "bytes remaining");
}
static void test_gives_up_garbage(void **state)
{
    gives_up_with(*state, "\"garbage\",\"garbage\",\"garbage\"", "gave up after 3 tries: bad response body");
}

static void test_cancel_stops_retrying(void **state)
{
    struct fixture *f = *state;
    remote *r = open_remote(f->portal.url, PASSWORD, 5, 5000, 0);
    char err[2048];
    assert_int_equal(remote_login(r, err, sizeof err), REMOTE_OK);
    atomic_int stop = 1;
    remote_set_cancel(r, &stop);
    assert_int_equal(tu_admin(&f->portal, "/_fake/faults", "{\"queue\":[\"500\",\"500\",\"500\"]}"), 200);
    assert_int_equal(remote_query(r, "select", PAGE, NULL, NULL, err, sizeof err), REMOTE_ETRANSPORT);
    if (!strstr(err, "gave up after 1 try")) fail_msg("unexpected: %s", err);
    remote_free(r);
}

static int refuse_row(void *ctx, size_t row, size_t ncols) { return 1; }

/* A consumer that refuses a row ends the query: no retry, a protocol error. */
static void test_consumer_stop_is_final(void **state)
{
    struct fixture *f = *state;
    const struct json_rows_cb refuse = {NULL, NULL, NULL, refuse_row};
    uint64_t retries = remote_get_stats(f->r)->retries, requests = remote_get_stats(f->r)->requests;
    assert_int_equal(remote_query(f->r, "select", PAGE, &refuse, NULL, f->err, sizeof f->err), REMOTE_EPROTOCOL);
    assert_non_null(strstr(f->err, "stopped by caller"));
    assert_int_equal(remote_get_stats(f->r)->retries, retries);
    assert_true(remote_get_stats(f->r)->requests <= requests + 2);   /* the query (and a first login) */
}

static void test_forbidden_table(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(tu_admin(&f->portal, "/_fake/faults", "{\"forbid\":[\"subscriber\"]}"), 200);
    assert_int_equal(sel(f, "{\"data\":[\"id\"],\"from\":\"subscriber\",\"limit\":1}"), REMOTE_EFORBIDDEN);
    assert_non_null(strstr(f->err, "403"));
    assert_int_equal(sel(f, PAGE), REMOTE_OK);     /* other tables go on */
}

static void test_rpc_error(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(sel(f, "{\"data\":[\"usrname\"],\"from\":\"subscriber\"}"), REMOTE_ERPC);
    assert_non_null(strstr(f->err, "usrname"));
}

/* remote_select: the portal's result or error member as it sent it. */
static void test_select_raw(void **state)
{
    struct fixture *f = *state;
    struct buf res = {0}, rerr = {0};
    assert_int_equal(remote_select(f->r, "{\"data\":[\"id\",\"is_tv\"],\"from\":\"tv_channel\",\"order_by\":\"id\","
                                          "\"limit\":2}", &res, &rerr, f->err, sizeof f->err), REMOTE_OK);
    assert_int_equal(sel(f, "{\"data\":[\"id\",\"is_tv\"],\"from\":\"tv_channel\",\"order_by\":\"id\",\"limit\":2}"),
                     REMOTE_OK);
    assert_int_equal(res.p[0], '[');
    assert_int_equal(f->rows.n, 2);
    assert_int_equal(rerr.len, 0);
    buf_putc(&res, 0);
    assert_true(strstr(res.p, "true") || strstr(res.p, "false"));   /* typed as the portal sent them */
    assert_int_equal(remote_select(f->r, "{\"data\":[\"usrname\"],\"from\":\"subscriber\"}", &res, &rerr, f->err,
                                   sizeof f->err), REMOTE_ERPC);
    buf_putc(&rerr, 0);
    assert_non_null(strstr(rerr.p, "usrname"));
    assert_non_null(strstr(f->err, "usrname"));
    /* a refusal that is not a JSON-RPC error leaves it empty */
    assert_int_equal(tu_admin(&f->portal, "/_fake/faults", "{\"queue\":[\"500\",\"500\",\"500\",\"500\",\"500\",\"500\"]}"), 200);
    assert_int_equal(remote_select(f->r, PAGE, &res, &rerr, f->err, sizeof f->err), REMOTE_ETRANSPORT);
    assert_int_equal(rerr.len, 0);
    buf_free(&res);
    buf_free(&rerr);
}

static void test_response_cap(void **state)
{
    struct fixture *f = *state;
    remote *r = open_remote(f->portal.url, PASSWORD, 3, 5000, 4096);
    char err[1024];
    assert_int_equal(remote_query(r, "select", "{\"data\":[\"*\"],\"from\":\"tv_program\",\"limit\":1000}",
                                  NULL, NULL, err, sizeof err), REMOTE_EPROTOCOL);
    assert_non_null(strstr(err, "max_response"));
    assert_int_equal(remote_get_stats(r)->retries, 0);   /* not transient */
    remote_free(r);
}

static void test_page_cap(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(tu_admin(&f->portal, "/_fake/faults", "{\"page_cap\":7}"), 200);
    assert_int_equal(sel(f, "{\"data\":[\"id\"],\"from\":\"tv_program\",\"order_by\":\"id\",\"limit\":100}"), REMOTE_OK);
    assert_int_equal(f->rows.n, 7);
}

static void test_timeout(void **state)
{
    struct fixture *f = *state;
    remote *r = open_remote(f->portal.url, PASSWORD, 1, 300, 0);
    char err[2048];
    assert_int_equal(remote_login(r, err, sizeof err), REMOTE_OK);
    assert_int_equal(tu_admin(&f->portal, "/_fake/faults", "{\"latency_ms\":3000}"), 200);
    assert_int_equal(remote_query(r, "select", PAGE, NULL, NULL, err, sizeof err), REMOTE_ETRANSPORT);
    assert_non_null(strstr(err, "timed out"));
    /* both tries timed out (curl counts the ms differently each time): said once */
    if (strstr(err, "try ") || !strstr(err, "gave up after 2 tries")) fail_msg("timeouts: %s", err);
    assert_int_equal(tu_admin(&f->portal, "/_fake/faults", "{\"latency_ms\":0}"), 200);
    remote_free(r);
}

static void test_connection_refused(void **state)
{
    struct fixture *f = *state;
    struct tu_portal gone;
    const char *args[] = {"--rows", "10", NULL};
    assert_int_equal(tu_portal_start(&gone, args), 0);
    char url[sizeof gone.url];
    memcpy(url, gone.url, sizeof url);
    tu_portal_stop(&gone);       /* nothing listens there now */
    remote *r = open_remote(url, PASSWORD, 2, 2000, 0);
    char err[2048];
    assert_int_equal(remote_query(r, "select", PAGE, NULL, NULL, err, sizeof err), REMOTE_ETRANSPORT);
    assert_non_null(strstr(err, "gave up after 3 tries"));
    assert_non_null(strstr(err, "onnect"));
    /* said once, without curl's varying " after N ms" */
    if (strstr(err, "try ") || strstr(err, " ms")) fail_msg("repeated or timed: %s", err);
    (void)f;
    remote_free(r);
}

static void test_int64_exact(void **state)
{
    struct fixture *f = *state;
    /* media ids lie above 2^53: a double would round them */
    assert_int_equal(sel(f, "{\"data\":[\"id\"],\"from\":\"media\",\"order_by\":\"id\",\"limit\":1}"), REMOTE_OK);
    assert_int_equal(f->rows.n, 1);
    long long id = strtoll(f->rows.text.p + 1, NULL, 10);
    assert_true(id > (1LL << 53));
    char q[256];
    snprintf(q, sizeof q, "{\"data\":[\"id\"],\"from\":\"media\",\"where\":{\"eq\":[\"id\",%lld]}}", id);
    assert_int_equal(sel(f, q), REMOTE_OK);
    assert_int_equal(f->rows.n, 1);
    char expect[64];
    snprintf(expect, sizeof expect, "[%lld]\n", id);
    assert_string_equal(f->rows.text.p, expect);
    /* id+1 is not a media id (gaps), so an inexact literal would be caught */
    snprintf(q, sizeof q, "{\"data\":[\"id\"],\"from\":\"media\",\"where\":{\"eq\":[\"id\",%lld]}}", id + 1);
    assert_int_equal(sel(f, q), REMOTE_OK);
    assert_int_equal(f->rows.n, 0);
}

static void test_bad_options(void **state)
{
    char err[512];
    struct remote_opts o = {.url = "ftp://x", .username = "a", .password = "b"};
    assert_null(remote_new(&o, err, sizeof err));
    assert_non_null(strstr(err, "http://"));
    o.url = NULL;
    assert_null(remote_new(&o, err, sizeof err));
    assert_non_null(strstr(err, "no portal configured"));
    o.url = "http://127.0.0.1:1";
    o.username = NULL;
    assert_null(remote_new(&o, err, sizeof err));
    assert_non_null(strstr(err, "username"));
}

/* ---- writes ------------------------------------------------------------------------ */

#define INSERT_PKG "{\"into\":\"package\",\"columns\":[\"name\",\"paid\"],\"values\":[[\"w-test\",true]]}"
#define DELETE_PKG "{\"from\":\"package\",\"where\":{\"eq\":[\"name\",\"w-test\"]}}"

/* Rows named w-test on the portal, read through a remote of its own. */
static long pkg_rows(struct fixture *f)
{
    remote *r = open_remote(f->portal.url, PASSWORD, 2, 5000, 0);
    struct rows rows = {0};
    char err[2048];
    enum remote_status st = remote_query(r, "select", "{\"data\":[{\"function\":\"count\",\"args\":[\"*\"]}],"
                                         "\"from\":\"package\",\"where\":{\"eq\":[\"name\",\"w-test\"]}}",
                                         &rows_cb, &rows, err, sizeof err);
    if (st != REMOTE_OK) fail_msg("count: %s", err);
    long n = strtol(rows.text.p + 1, NULL, 10);
    buf_free(&rows.text);
    remote_free(r);
    return n;
}

static enum remote_status wr(struct fixture *f, const char *method, const char *params, struct buf *res)
{
    f->err[0] = '\0';
    return remote_write(f->r, method, params, res, f->err, sizeof f->err);
}

static void test_write_count_result(void **state)
{
    struct fixture *f = *state;
    struct buf res = {0};
    assert_int_equal(tu_admin(&f->portal, "/_fake/faults", "{\"write_result\":\"count\"}"), 200);
    assert_int_equal(sel(f, PAGE), REMOTE_OK);
    uint64_t tries = remote_get_stats(f->r)->retries;
    assert_int_equal(wr(f, "insert", INSERT_PKG, &res), REMOTE_OK);
    assert_string_equal(res.p, "1");                 /* the count, as the portal sent it */
    assert_int_equal(pkg_rows(f), 1);
    assert_int_equal(wr(f, "insert", INSERT_PKG, &res), REMOTE_OK);
    assert_int_equal(pkg_rows(f), 2);
    assert_int_equal(wr(f, "update", "{\"table\":\"package\",\"set\":{\"paid\":false},"
                                     "\"where\":{\"eq\":[\"name\",\"w-test\"]}}", &res), REMOTE_OK);
    assert_string_equal(res.p, "2");
    /* remote_query accepts the count too (it used to retry it as a bad body) */
    assert_int_equal(remote_query(f->r, "delete", DELETE_PKG, &rows_cb, &f->rows, f->err, sizeof f->err), REMOTE_OK);
    assert_int_equal(pkg_rows(f), 0);
    assert_int_equal(remote_get_stats(f->r)->retries, tries);
    /* with returning, rows; the other shape answers [] */
    assert_int_equal(wr(f, "insert", "{\"into\":\"package\",\"columns\":[\"name\",\"paid\"],"
                                     "\"values\":[[\"w-test\",true]],\"returning\":\"name\"}", &res), REMOTE_OK);
    assert_string_equal(res.p, "[[\"w-test\"]]");
    assert_int_equal(tu_admin(&f->portal, "/_fake/faults", "{\"write_result\":\"rows\"}"), 200);
    assert_int_equal(wr(f, "delete", DELETE_PKG, &res), REMOTE_OK);
    assert_string_equal(res.p, "[]");
    assert_int_equal(pkg_rows(f), 0);
    assert_int_equal(wr(f, "select", PAGE, &res), REMOTE_ECONFIG);
    buf_free(&res);
}

/* The portal runs the insert, then the answer is lost in `fault`'s way: the
 * write is reported as of unknown outcome and exactly one row exists. */
static void lost_answer(struct fixture *f, const char *fault, const char *expect)
{
    struct buf res = {0};
    char body[128];
    long before = pkg_rows(f);
    assert_int_equal(sel(f, PAGE), REMOTE_OK);       /* logged in, a keep-alive connection open */
    uint64_t requests = remote_get_stats(f->r)->requests;
    snprintf(body, sizeof body, "{\"queue\":[\"%s\"],\"write_result\":\"count\"}", fault);
    assert_int_equal(tu_admin(&f->portal, "/_fake/faults", body), 200);
    assert_int_equal(wr(f, "insert", INSERT_PKG, &res), REMOTE_EUNKNOWN);
    if (!strstr(f->err, "write outcome unknown: insert at ") || !strstr(f->err, "check before retrying") ||
        !strstr(f->err, expect))
        fail_msg("%s: unexpected error text: %s", fault, f->err);
    assert_int_equal(pkg_rows(f), before + 1);
    assert_int_equal(remote_get_stats(f->r)->requests, requests + 1);   /* sent once */
    assert_string_equal(remote_status_name(REMOTE_EUNKNOWN), "write outcome unknown");
    buf_free(&res);
}

/* drop: not one byte back, on what would be a reused connection (libcurl
 * resends such a request by itself unless the write has a fresh one) */
static void test_write_lost_drop(void **state) { lost_answer(*state, "drop", "after the request was sent"); }
static void test_write_lost_reset(void **state) { lost_answer(*state, "reset", "after the request was sent"); }
static void test_write_lost_truncate(void **state) { lost_answer(*state, "truncate", "after the request was sent"); }
static void test_write_lost_garbage(void **state) { lost_answer(*state, "garbage", "HTTP 200 with an unreadable answer"); }
static void test_write_lost_500(void **state) { lost_answer(*state, "500after", "the portal answered HTTP 500"); }

static void test_write_timeout_not_resent(void **state)
{
    struct fixture *f = *state;
    remote *r = open_remote(f->portal.url, PASSWORD, 3, 300, 0);
    char err[2048];
    struct buf res = {0};
    assert_int_equal(remote_login(r, err, sizeof err), REMOTE_OK);
    assert_int_equal(tu_admin(&f->portal, "/_fake/faults", "{\"latency_ms\":1500}"), 200);
    assert_int_equal(remote_write(r, "insert", INSERT_PKG, &res, err, sizeof err), REMOTE_EUNKNOWN);
    assert_non_null(strstr(err, "timed out"));
    assert_int_equal(tu_admin(&f->portal, "/_fake/faults", "{\"latency_ms\":0}"), 200);
    assert_int_equal(pkg_rows(f), 1);                /* ran once, though 3 retries were allowed */
    assert_int_equal(remote_get_stats(r)->retries, 0);
    buf_free(&res);
    remote_free(r);
}

static void test_write_refused_not_applied(void **state)
{
    struct fixture *f = *state;
    struct buf res = {0};
    /* a JSON-RPC error: the portal did not run it; final, not retried */
    assert_int_equal(wr(f, "insert", "{\"into\":\"package\",\"columns\":[\"nosuch\"],\"values\":[[1]]}", &res),
                     REMOTE_ERPC);
    assert_non_null(strstr(f->err, "nosuch"));
    /* a refused session: checked before the statement runs, so one resend
     * after logging in again is safe, and the row exists once */
    assert_int_equal(tu_admin(&f->portal, "/_fake/expire", NULL), 200);
    uint64_t logins = remote_get_stats(f->r)->logins;
    assert_int_equal(wr(f, "insert", INSERT_PKG, &res), REMOTE_OK);
    assert_int_equal(remote_get_stats(f->r)->logins, logins + 1);
    assert_int_equal(pkg_rows(f), 1);
    buf_free(&res);
}

static void test_write_not_sent_is_retried(void **state)
{
    struct fixture *f = *state;
    struct tu_portal gone;
    const char *args[] = {"--rows", "10", "--password", PASSWORD, NULL};
    assert_int_equal(tu_portal_start(&gone, args), 0);
    char url[sizeof gone.url];
    memcpy(url, gone.url, sizeof url);
    remote *r = open_remote(url, PASSWORD, 2, 2000, 0);
    char err[2048];
    struct buf res = {0};
    enum remote_status login = remote_login(r, err, sizeof err);
    tu_portal_stop(&gone);
    assert_int_equal(login, REMOTE_OK);       /* connect refused: provably never sent, so tried again */
    assert_int_equal(remote_write(r, "insert", INSERT_PKG, &res, err, sizeof err), REMOTE_ETRANSPORT);
    assert_non_null(strstr(err, "gave up after 3 tries"));
    assert_non_null(strstr(err, "onnect"));
    (void)f;
    buf_free(&res);
    remote_free(r);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        T(test_login_and_select), T(test_bad_password), T(test_relogin_jsonrpc),
        T(test_relogin_http401), T(test_relogin_http403), T(test_second_refusal_is_auth),
        T(test_retries_each_transient_fault), T(test_gives_up_500), T(test_gives_up_reset),
        T(test_gives_up_truncate), T(test_gives_up_garbage), T(test_cancel_stops_retrying),
        T(test_consumer_stop_is_final), T(test_forbidden_table),
        T(test_rpc_error), T(test_response_cap), T(test_page_cap), T(test_timeout),
        T(test_connection_refused), T(test_select_raw), T(test_int64_exact), cmocka_unit_test(test_bad_options),
        T(test_write_count_result), T(test_write_lost_drop), T(test_write_lost_reset),
        T(test_write_lost_truncate), T(test_write_lost_garbage), T(test_write_lost_500),
        T(test_write_timeout_not_resent), T(test_write_refused_not_applied), T(test_write_not_sent_is_retried),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
