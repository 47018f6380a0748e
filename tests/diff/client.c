/* client.c — iptv-diff's HTTP side: one libcurl handle per server, the
 * authorize_user login, and the sample values read from the portal before
 * statements are generated (so that predicates match rows). */
#include "tests/diff/diff.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/json.h"
#include "agent/base/mem.h"

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
    buf_append(ctx, p, size * n);
    return size * n;
}

int dclient_init(struct dclient *c, const char *base, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    size_t n = strlen(base);
    while (n && base[n - 1] == '/') n--;
    if (n == 0 || n >= sizeof c->base) {
        snprintf(err, errlen, "bad base URL \"%s\"", base);
        return -1;
    }
    memcpy(c->base, base, n);
    c->curl = curl_easy_init();
    if (!c->curl) {
        snprintf(err, errlen, "%s: curl_easy_init failed", base);
        return -1;
    }
    return 0;
}

void dclient_free(struct dclient *c)
{
    if (c->curl) curl_easy_cleanup(c->curl);
    c->curl = NULL;
}

void danswer_free(struct danswer *a) { buf_free(&a->body); }

long dclient_post(struct dclient *c, const char *path, const char *body, size_t len, struct danswer *a)
{
    char url[512], sess[200], auth[300];
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    snprintf(url, sizeof url, "%s%s", c->base, path);
    if (c->session[0]) {
        snprintf(sess, sizeof sess, "Iptvportal-Authorization: sessionid=%s", c->session);
        h = curl_slist_append(h, sess);
    }
    if (c->bearer[0]) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", c->bearer);
        h = curl_slist_append(h, auth);
    }
    buf_reset(&a->body);
    buf_puts(&a->body, "");
    curl_easy_reset(c->curl);
    curl_easy_setopt(c->curl, CURLOPT_URL, url);
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE, (long)len);
    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &a->body);
    curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, 120L);
    curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c->curl);
    curl_slist_free_all(h);
    if (rc != CURLE_OK) {
        buf_reset(&a->body);
        buf_printf(&a->body, "(no answer from %s: %s)", url, curl_easy_strerror(rc));
        a->status = -1;
        return -1;
    }
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &a->status);
    return a->status;
}

int dclient_login(struct dclient *c, const char *user, const char *password, char *err, size_t errlen)
{
    struct buf b = {0};
    buf_puts(&b, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"authorize_user\",\"params\":{\"username\":");
    json_write_string(&b, user, strlen(user));
    buf_puts(&b, ",\"password\":");
    json_write_string(&b, password, strlen(password));
    buf_puts(&b, "}}");
    struct danswer a = {0};
    long st = dclient_post(c, "/api/jsonrpc/", b.p, b.len, &a);
    buf_free(&b);
    cJSON *doc = NULL;
    char perr[128];
    int rc = -1;
    if (st == 200 && json_parse(a.body.p, a.body.len, 16, &doc, perr, sizeof perr) == 0) {
        const cJSON *sid = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "result"),
                                                            "session_id");
        if (cJSON_IsString(sid) && strlen(sid->valuestring) < sizeof c->session) {
            snprintf(c->session, sizeof c->session, "%s", sid->valuestring);
            rc = 0;
        }
    }
    if (rc) snprintf(err, errlen, "authorize_user as %s at %s: HTTP %ld: %.300s", user, c->base, st, a.body.p);
    cJSON_Delete(doc);
    danswer_free(&a);
    return rc;
}

/* ---- samples ----------------------------------------------------------------------------- */

static void sample_add(struct dsamples *s, int t, int k, const cJSON *v)
{
    if (s->n[t][k] >= DIFF_MAX_SAMPLES || cJSON_IsNull(v)) return;
    struct buf lit = {0};
    json_write_tree(&lit, v);
    for (int i = 0; i < s->n[t][k]; i++)
        if (strcmp(s->v[t][k][i].lit, lit.p) == 0) {
            buf_free(&lit);
            return;
        }
    struct dsample *d = &s->v[t][k][s->n[t][k]++];
    d->lit = buf_detach(&lit);
    d->str = cJSON_IsString(v) ? xstrdup(v->valuestring) : NULL;
}

/* Two reads per column: the first rows by id and the last rows by id (an
 * ordered read, so both servers' samples are the same), NULLs skipped. */
static int sample_column(struct dsamples *s, struct dclient *portal, int t, int k, char *err, size_t errlen)
{
    const struct dtab *tab = &diff_tables()[t];
    const char *col = tab->cols[k].name;
    static const char *const order[] = {"id", "id desc"};
    for (int pass = 0; pass < 2; pass++) {
        struct buf b = {0};
        buf_printf(&b,
                   "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"select\",\"params\":{\"data\":[\"%s\"],"
                   "\"from\":\"%s\",\"where\":{\"is_not\":[\"%s\",null]},\"order_by\":\"%s\",\"limit\":%d}}",
                   col, tab->name, col, order[pass], DIFF_MAX_SAMPLES);
        struct danswer a = {0};
        long st = dclient_post(portal, "/api/jsonsql/", b.p, b.len, &a);
        buf_free(&b);
        cJSON *doc = NULL;
        char perr[128];
        const cJSON *rows = NULL;
        if (st == 200 && json_parse(a.body.p, a.body.len, 64, &doc, perr, sizeof perr) == 0)
            rows = cJSON_GetObjectItemCaseSensitive(doc, "result");
        if (!cJSON_IsArray(rows) && pass == 1) {   /* "desc" is optional on a portal */
            cJSON_Delete(doc);
            danswer_free(&a);
            return 0;
        }
        if (!cJSON_IsArray(rows)) {
            snprintf(err, errlen, "sampling %s.%s from the portal: HTTP %ld: %.300s", tab->name, col, st, a.body.p);
            cJSON_Delete(doc);
            danswer_free(&a);
            return -1;
        }
        /* Half from each end, so that both low and high values are kept. */
        for (const cJSON *r = rows->child; r && s->n[t][k] < (pass + 1) * DIFF_MAX_SAMPLES / 2; r = r->next)
            if (cJSON_IsArray(r) && r->child) sample_add(s, t, k, r->child);
        cJSON_Delete(doc);
        danswer_free(&a);
    }
    return 0;
}

int dsamples_load(struct dsamples *s, struct dclient *portal, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    for (int t = 0; t < DIFF_NTABLES; t++) {
        const struct dtab *tab = &diff_tables()[t];
        for (int k = 0; k < tab->ncols; k++)
            if (tab->cols[k].t != DT_JSON && sample_column(s, portal, t, k, err, errlen)) return -1;
    }
    return 0;
}

void dsamples_free(struct dsamples *s)
{
    for (int t = 0; t < DIFF_NTABLES; t++)
        for (int k = 0; k < DIFF_MAX_COLS; k++)
            for (int i = 0; i < s->n[t][k]; i++) {
                free(s->v[t][k][i].lit);
                free(s->v[t][k][i].str);
            }
    memset(s->n, 0, sizeof s->n);
}
