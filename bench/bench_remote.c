/* bench_remote.c — portal client select throughput on loopback.
 *
 * Pages through the fake portal's tv_program with keyset selects of 1000 rows
 * (where id > last order by id) and reports, in one run:
 *   remote_select      rows/s and MB/s through remote_query + the streaming row reader
 *   raw_http           the same requests with bare libcurl, body discarded (baseline:
 *                      what the portal and loopback cost without any client work)
 *   parse_stream       json_rpc_rows over the captured page bodies
 *   parse_cjson        cJSON_Parse over the same bodies (baseline for the reader)
 * Usage: bench_remote [ROWS] (default 200000). */
#include "agent/base/json.h"
#include "agent/base/clock.h"
#include "agent/portal/remote.h"
#include "tests/testutil.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct page {
    long long last_id;
    size_t rows;
};

static int pg_begin(void *ctx) { ((struct page *)ctx)->rows = 0; return 0; }
static int pg_value(void *ctx, size_t col, const struct json_val *v)
{
    if (col == 0 && v->type == JV_INT) ((struct page *)ctx)->last_id = v->i;
    return 0;
}
static int pg_row_end(void *ctx, size_t row, size_t n) { ((struct page *)ctx)->rows++; return 0; }
static const struct json_rows_cb page_cb = {pg_begin, NULL, pg_value, pg_row_end};

static void page_params(char *out, size_t n, long long after)
{
    snprintf(out, n, "{\"data\":[\"*\"],\"from\":\"tv_program\",\"where\":{\"gt\":[\"id\",%lld]},"
                     "\"order_by\":\"id\",\"limit\":1000}", after);
}

struct sink { struct buf *keep; size_t bytes; };
static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct sink *s = ud;
    s->bytes += size * n;
    if (s->keep) buf_append(s->keep, p, size * n);
    return size * n;
}

static void emit(const char *name, const char *unit, double value, long long rows, const char *extra)
{
    printf("{\"bench\":\"%s\",\"unit\":\"%s\",\"value\":%.6g,\"params\":{\"table\":\"tv_program\","
           "\"page_rows\":1000,\"rows\":%lld%s}}\n", name, unit, value, rows, extra ? extra : "");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    const char *rows_arg = argc > 1 ? argv[1] : "200000";
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct tu_portal portal;
    const char *args[] = {"--rows", rows_arg, "--password", "bench", NULL};
    fprintf(stderr, "starting fake portal with %s tv_program rows...\n", rows_arg);
    if (tu_portal_start(&portal, args) != 0) { fprintf(stderr, "cannot start fake portal\n"); return 1; }

    struct remote_opts o = {.url = portal.url, .username = "admin", .password = "bench",
                            .timeout_ms = 30000, .retries = 0, .verify_tls = true};
    char err[1024], params[256];
    remote *r = remote_new(&o, err, sizeof err);
    if (!r || remote_login(r, err, sizeof err) != REMOTE_OK) { fprintf(stderr, "%s\n", err); return 1; }

    /* 1. remote_query with the streaming reader */
    struct page pg = {0};
    long long total = 0;
    size_t nkeys = 0, capkeys = 1024;
    long long *keys = malloc(capkeys * sizeof *keys);   /* each page's "after" key, for pass 2 */
    double t0 = clock_mono_s();
    for (;;) {
        if (nkeys == capkeys) keys = realloc(keys, (capkeys *= 2) * sizeof *keys);
        keys[nkeys++] = total ? pg.last_id : -1;
        page_params(params, sizeof params, keys[nkeys - 1]);
        if (remote_query(r, "select", params, &page_cb, &pg, err, sizeof err) != REMOTE_OK) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        if (pg.rows == 0) break;
        total += (long long)pg.rows;
    }
    double dt = clock_mono_s() - t0;
    double mb = (double)remote_get_stats(r)->bytes_in / 1e6;
    emit("remote_select", "rows/s", (double)total / dt, total, NULL);
    emit("remote_select_bytes", "MB/s", mb / dt, total, NULL);

    /* 2. raw libcurl baseline over the same pages, capturing bodies for 3 and 4 */
    CURL *c = curl_easy_init();
    char url[300], hdr[256];
    snprintf(url, sizeof url, "%s/api/jsonrpc/", portal.url);
    struct buf login = {0};
    struct sink ls = {&login, 0};
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &ls);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS,
                     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"authorize_user\",\"params\":{\"username\":\"admin\",\"password\":\"bench\"}}");
    curl_easy_perform(c);
    const char *sid = strstr(login.p, "session_id\":\"");
    snprintf(hdr, sizeof hdr, "Iptvportal-Authorization: sessionid=%.32s", sid ? sid + 13 : "");
    struct curl_slist *h = curl_slist_append(NULL, hdr);
    h = curl_slist_append(h, "Content-Type: application/json");
    snprintf(url, sizeof url, "%s/api/jsonsql/", portal.url);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    int npages = (int)nkeys;
    struct buf *bodies = calloc((size_t)npages, sizeof *bodies);
    long long raw_rows = total;
    size_t raw_bytes = 0;
    int k = 0;
    char req[512];
    t0 = clock_mono_s();
    for (; k < npages; k++) {
        page_params(params, sizeof params, keys[k]);
        snprintf(req, sizeof req, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"select\",\"params\":%s}", params);
        struct sink s = {&bodies[k], 0};
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, req);
        if (curl_easy_perform(c) != CURLE_OK) break;
        raw_bytes += s.bytes;
    }
    double raw_dt = clock_mono_s() - t0;
    emit("raw_http", "rows/s", (double)raw_rows / raw_dt, raw_rows, NULL);
    char extra[64];
    emit("remote_select_vs_raw_http", "ratio", ((double)total / dt) / ((double)raw_rows / raw_dt), total, NULL);

    /* 3 and 4: parsing alone, streaming reader vs a cJSON DOM */
    char msg[256];
    long long parsed = 0;
    t0 = clock_mono_s();
    for (int i = 0; i < k; i++) {
        json_rpc_rows(bodies[i].p, bodies[i].len, &page_cb, &pg, msg, sizeof msg, err, sizeof err);
        parsed += (long long)pg.rows;
    }
    double st_dt = clock_mono_s() - t0;
    t0 = clock_mono_s();
    long long parsed2 = 0;
    for (int i = 0; i < k; i++) {
        cJSON *d = cJSON_ParseWithLength(bodies[i].p, bodies[i].len);
        parsed2 += cJSON_GetArraySize(cJSON_GetObjectItem(d, "result"));
        cJSON_Delete(d);
    }
    double cj_dt = clock_mono_s() - t0;
    snprintf(extra, sizeof extra, ",\"MB\":%.1f", (double)raw_bytes / 1e6);
    emit("parse_stream", "rows/s", (double)parsed / st_dt, parsed, extra);
    emit("parse_cjson", "rows/s", (double)parsed2 / cj_dt, parsed2, extra);
    emit("parse_stream_vs_cjson", "ratio", ((double)parsed / st_dt) / ((double)parsed2 / cj_dt), parsed, NULL);

    for (int i = 0; i < npages; i++) buf_free(&bodies[i]);
    free(bodies);
    free(keys);
    buf_free(&login);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    remote_free(r);
    tu_portal_stop(&portal);
    curl_global_cleanup();
    return 0;
}
