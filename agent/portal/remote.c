/* remote.c — see remote.h.
 *
 * Every HTTP exchange goes through http_post(), which reports one of three
 * outcomes: a response (status + body), a transport failure (curl's message),
 * or a body over the cap. remote_query() and remote_login() turn outcomes into
 * decisions with one rule each:
 *   - transient (transport, 5xx, unparsable body)  -> back off, try again, at most
 *                                                     1 + retries tries in all;
 *   - session refused (401, 403 naming the session,
 *     or a JSON-RPC error naming it)               -> log in again once, resend;
 *   - 403 otherwise                                -> REMOTE_EFORBIDDEN, final;
 *   - JSON-RPC error                               -> REMOTE_ERPC, final.
 * A re-login does not use up a try; a second refusal after it is REMOTE_EAUTH.
 * Writes (any method but select) change the first rule: once the request may
 * have reached the portal nothing is resent (remote.h), so a transport failure
 * after connecting, a 5xx, an unreadable or oversized answer are REMOTE_EUNKNOWN. */
#include "agent/portal/remote.h"
#include "agent/config/config.h"
#include "agent/base/log.h"
#include "agent/base/mem.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct remote {
    CURL *curl;
    char *url_rpc;            /* base + /api/jsonrpc/ */
    char *url_sql;            /* base + /api/jsonsql/ */
    char *username;
    char *password;           /* secret: only ever written into the login body */
    char *session;            /* current session id, NULL when logged out */
    int64_t timeout_ms;
    int retries;
    int64_t max_response;
    int64_t backoff_base_ms, backoff_max_ms;
    uint64_t rng;             /* xorshift64* state for jitter */
    uint64_t next_id;         /* JSON-RPC request id */
    struct buf body;          /* last response body, reused */
    int too_big;              /* set by on_write when the cap is hit */
    CURLcode last_cc;         /* curl's result of the last exchange */
    char curl_err[CURL_ERROR_SIZE];
    const atomic_int *cancel;     /* shutdown flag of the owner, may be NULL */
    struct remote_stats stats;
};

static int cancelled(const remote *r) { return r->cancel && atomic_load(r->cancel); }

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    return cancelled(ud);   /* non-zero aborts the transfer */
}

void remote_set_cancel(remote *r, const atomic_int *cancel)
{
    r->cancel = cancel;
    curl_easy_setopt(r->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(r->curl, CURLOPT_XFERINFODATA, r);
    curl_easy_setopt(r->curl, CURLOPT_NOPROGRESS, cancel ? 0L : 1L);
}

enum outcome { OUT_RESPONSE, OUT_TRANSPORT, OUT_TOO_BIG };

static uint64_t rng_next(remote *r)
{
    uint64_t x = r->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static size_t on_write(char *p, size_t size, size_t n, void *ud)
{
    remote *r = ud;
    size_t len = size * n;
    if ((int64_t)(r->body.len + len) > r->max_response) {
        r->too_big = 1;
        return 0;    /* makes curl stop with CURLE_WRITE_ERROR */
    }
    buf_append(&r->body, p, len);
    return len;
}

static char *join_url(const char *base, const char *path)
{
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/') n--;
    struct buf b = {0};
    buf_append(&b, base, n);
    buf_puts(&b, path);
    return buf_detach(&b);
}

remote *remote_new(const struct remote_opts *o, char *err, size_t errlen)
{
    if (!o->url || !*o->url) {
        snprintf(err, errlen, "no portal configured: set [remote] url or domain in agent.toml, "
                              "or IPTVPORTAL_DOMAIN");
        return NULL;
    }
    if (strncmp(o->url, "http://", 7) != 0 && strncmp(o->url, "https://", 8) != 0) {
        snprintf(err, errlen, "remote url \"%s\": must start with http:// or https://", o->url);
        return NULL;
    }
    if (!o->username || !*o->username) {
        snprintf(err, errlen, "no portal username: set [remote] username or IPTVPORTAL_USERNAME");
        return NULL;
    }
    if (!o->password) {
        snprintf(err, errlen, "no portal password: set the variable named by [remote] password_env");
        return NULL;
    }
    CURL *c = curl_easy_init();
    if (!c) {
        snprintf(err, errlen, "curl_easy_init failed");
        return NULL;
    }
    remote *r = xcalloc(1, sizeof *r);
    r->curl = c;
    r->url_rpc = join_url(o->url, "/api/jsonrpc/");
    r->url_sql = join_url(o->url, "/api/jsonsql/");
    r->username = xstrdup(o->username);
    r->password = xstrdup(o->password);
    r->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 30000;
    r->retries = o->retries < 0 ? 0 : o->retries;
    r->max_response = o->max_response > 0 ? o->max_response : (int64_t)256 << 20;
    r->backoff_base_ms = o->backoff_base_ms > 0 ? o->backoff_base_ms : 200;
    r->backoff_max_ms = o->backoff_max_ms > 0 ? o->backoff_max_ms : 30000;
    r->rng = o->seed ? o->seed : ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid() ^ 0x9E3779B97F4A7C15ULL;
    r->next_id = 1;

    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->curl_err);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");   /* every encoding curl was built with */
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)r->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)(r->timeout_ms < 10000 ? r->timeout_ms : 10000));
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->max_response);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "iptv-agent/" IA_VERSION);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    if (!o->verify_tls) {
        log_warn("TLS VERIFICATION IS OFF (verify_tls = false): the portal's identity is not checked "
                 "and the password can be intercepted; use ca_file instead");
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (o->ca_file) curl_easy_setopt(c, CURLOPT_CAINFO, o->ca_file);
    return r;
}

remote *remote_from_config(const struct config *cfg, char *err, size_t errlen)
{
    const char *pw_env = cfg->remote.password_env ? cfg->remote.password_env : "IPTVPORTAL_PASSWORD";
    const char *pw = getenv(pw_env);
    if (cfg->remote.url && (!pw || !*pw)) {
        snprintf(err, errlen, "no portal password: environment variable %s is not set "
                              "([remote] password_env)", pw_env);
        return NULL;
    }
    struct remote_opts o = {
        .url = cfg->remote.url,
        .username = cfg->remote.username,
        .password = pw ? pw : "",
        .timeout_ms = cfg->remote.timeout_ms,
        .retries = cfg->remote.retries,
        .verify_tls = cfg->remote.verify_tls,
        .ca_file = cfg->remote.ca_file,
        .max_response = cfg->remote.max_response,
    };
    return remote_new(&o, err, errlen);
}

void remote_free(remote *r)
{
    if (!r) return;
    if (r->password) {
        explicit_bzero(r->password, strlen(r->password));
        free(r->password);
    }
    curl_easy_cleanup(r->curl);
    free(r->url_rpc);
    free(r->url_sql);
    free(r->username);
    free(r->session);
    buf_free(&r->body);
    free(r);
}

const struct remote_stats *remote_get_stats(const remote *r) { return &r->stats; }

const char *remote_status_name(enum remote_status s)
{
    switch (s) {
    case REMOTE_OK: return "ok";
    case REMOTE_ETRANSPORT: return "transport";
    case REMOTE_EAUTH: return "auth";
    case REMOTE_EFORBIDDEN: return "forbidden";
    case REMOTE_ERPC: return "rpc";
    case REMOTE_EPROTOCOL: return "protocol";
    case REMOTE_ECONFIG: return "config";
    case REMOTE_EUNKNOWN: return "write outcome unknown";
    }
    return "unknown";
}

/* fresh: a new connection for this request. A write needs one: on a reused
 * connection that dies before any byte of the answer, libcurl silently sends
 * the request again, and the portal may have run the first copy. */
static enum outcome http_post(remote *r, const char *url, const char *body, size_t len, int fresh,
                              long *status, char *what, size_t whatlen)
{
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Accept: application/json");
    if (r->session && url == r->url_sql) {
        char line[512];
        snprintf(line, sizeof line, "Iptvportal-Authorization: sessionid=%s", r->session);
        h = curl_slist_append(h, line);
    }
    buf_reset(&r->body);
    r->too_big = 0;
    r->curl_err[0] = '\0';
    curl_easy_setopt(r->curl, CURLOPT_URL, url);
    curl_easy_setopt(r->curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(r->curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(r->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(r->curl, CURLOPT_FRESH_CONNECT, fresh ? 1L : 0L);
    CURLcode cc = curl_easy_perform(r->curl);
    r->last_cc = cc;
    curl_easy_setopt(r->curl, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(h);
    r->stats.requests++;
    r->stats.bytes_in += r->body.len;
    if (r->too_big || cc == CURLE_FILESIZE_EXCEEDED) {
        snprintf(what, whatlen, "response larger than max_response (%lld bytes)", (long long)r->max_response);
        return OUT_TOO_BIG;
    }
    if (cc != CURLE_OK) {
        snprintf(what, whatlen, "%s", r->curl_err[0] ? r->curl_err : curl_easy_strerror(cc));
        return OUT_TRANSPORT;
    }
    curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, status);
    return OUT_RESPONSE;
}

/* Printable excerpt of a body for messages. */
static void excerpt(const char *s, size_t n, char *out, size_t outlen)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 4 < outlen && i < 160; i++)
        out[k++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '.';
    if (n > 160 && k + 4 < outlen) { memcpy(out + k, "...", 3); k += 3; }
    out[k] = '\0';
}

static int contains_ci(const char *s, size_t n, const char *word)
{
    size_t w = strlen(word);
    for (size_t i = 0; i + w <= n; i++) {
        size_t j = 0;
        while (j < w && tolower((unsigned char)s[i + j]) == word[j]) j++;
        if (j == w) return 1;
    }
    return 0;
}

/* Does a refusal talk about the session (as opposed to the table)? */
static int about_session(const char *s, size_t n)
{
    return contains_ci(s, n, "session") || contains_ci(s, n, "unauthori") ||
           contains_ci(s, n, "not authori") || contains_ci(s, n, "expired") ||
           contains_ci(s, n, "login");
}

static int about_permission(const char *s, size_t n)
{
    return contains_ci(s, n, "forbidden") || contains_ci(s, n, "permission denied") ||
           contains_ci(s, n, "access denied");
}

static void backoff(remote *r, int attempt)
{
    int64_t ceiling = r->backoff_base_ms;
    for (int i = 1; i < attempt && ceiling < r->backoff_max_ms; i++) ceiling *= 2;
    if (ceiling > r->backoff_max_ms) ceiling = r->backoff_max_ms;
    int64_t ms = (int64_t)(rng_next(r) % (uint64_t)(ceiling + 1));   /* full jitter */
    /* In slices, so a shutdown does not wait out a long backoff. */
    while (ms > 0 && !cancelled(r)) {
        int64_t step = ms < 50 ? ms : 50;
        struct timespec ts = {0, (long)step * 1000000L};
        while (nanosleep(&ts, &ts) != 0) {}
        ms -= step;
    }
    r->stats.retries++;
}

/* Record one failed try; returns non-zero when no tries remain. hist keeps one
 * line per try (fail_transient groups them). */
static int note_try(remote *r, struct buf *hist, int *attempt, const char *what)
{
    (*attempt)++;
    size_t at = hist->len;
    buf_printf(hist, "%s\n", what);
    for (size_t i = at; i + 1 < hist->len; i++)
        if (hist->p[i] == '\n') hist->p[i] = ' ';
    if (*attempt > r->retries || cancelled(r)) return 1;
    backoff(r, *attempt);
    return 0;
}

/* One try's error without what varies between tries of the same failure:
 * curl's " after N ms" (connect) and " after N milliseconds" (timeout). */
static void try_error(const char *p, size_t n, struct buf *out)
{
    static const char *const units[] = {" milliseconds", " ms"};
    buf_reset(out);
    for (size_t i = 0; i < n;) {
        if (n - i > 7 && !memcmp(p + i, " after ", 7)) {
            size_t k = i + 7, skip = 0;
            while (k < n && p[k] >= '0' && p[k] <= '9') k++;
            for (size_t u = 0; u < 2 && !skip && k > i + 7; u++) {
                size_t ul = strlen(units[u]);
                if (n - k >= ul && !memcmp(p + k, units[u], ul)) skip = k + ul - i;
            }
            if (skip) {
                i += skip;
                continue;
            }
        }
        buf_putc(out, p[i++]);
    }
    buf_putc(out, '\0');
    out->len--;
}

/* The tries' errors, each run of the same one said once: "E" when every try
 * failed alike, else "try 1: E1; tries 2-6: E2". */
static void tries_text(const struct buf *hist, struct buf *out)
{
    const char *p = hist->p ? hist->p : "", *end = p + hist->len;
    struct buf e = {0}, f = {0};
    int tryno = 1;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        try_error(p, (size_t)((nl ? nl : end) - p), &e);
        const char *q = nl ? nl + 1 : end;
        int runs = 1;
        while (q < end) {
            const char *qn = memchr(q, '\n', (size_t)(end - q));
            try_error(q, (size_t)((qn ? qn : end) - q), &f);
            if (f.len != e.len || memcmp(e.p, f.p, e.len) != 0) break;
            runs++;
            q = qn ? qn + 1 : end;
        }
        if (tryno == 1 && q >= end) {       /* the same error every time */
            buf_append(out, e.p, e.len);
            break;
        }
        if (runs == 1) buf_printf(out, "%stry %d: ", out->len ? "; " : "", tryno);
        else buf_printf(out, "%stries %d-%d: ", out->len ? "; " : "", tryno, tryno + runs - 1);
        buf_append(out, e.p, e.len);
        tryno += runs;
        p = q;
    }
    buf_free(&e);
    buf_free(&f);
}

static enum remote_status fail_transient(char *err, size_t errlen, const char *op, const char *url,
                                         int tries, struct buf *hist)
{
    struct buf t = {0};
    tries_text(hist, &t);
    snprintf(err, errlen, "%s %s: gave up after %d tr%s: %s", op, url, tries, tries == 1 ? "y" : "ies",
             t.p ? t.p : "");
    buf_free(&t);
    buf_free(hist);
    return REMOTE_ETRANSPORT;
}

enum remote_status remote_login(remote *r, char *err, size_t errlen)
{
    struct buf req = {0}, hist = {0};
    buf_printf(&req, "{\"jsonrpc\":\"2.0\",\"id\":%llu,\"method\":\"authorize_user\",\"params\":{\"username\":",
               (unsigned long long)r->next_id++);
    json_write_string(&req, r->username, strlen(r->username));
    buf_puts(&req, ",\"password\":");
    json_write_string(&req, r->password, strlen(r->password));
    buf_puts(&req, "}}");
    free(r->session);
    r->session = NULL;

    enum remote_status st = REMOTE_OK;
    int attempt = 0;
    for (;;) {
        char what[512];
        long status = 0;
        enum outcome out = http_post(r, r->url_rpc, req.p, req.len, 0, &status, what, sizeof what);
        if (out == OUT_TOO_BIG) {
            snprintf(err, errlen, "login at %s: %s", r->url_rpc, what);
            st = REMOTE_EPROTOCOL;
            break;
        }
        if (out == OUT_RESPONSE && status >= 500) snprintf(what, sizeof what, "HTTP %ld", status);
        if (out == OUT_TRANSPORT || status >= 500) {
            if (note_try(r, &hist, &attempt, what)) {
                st = fail_transient(err, errlen, "login at", r->url_rpc, attempt, &hist);
                break;
            }
            continue;
        }
        char ex[200];
        excerpt(r->body.p, r->body.len, ex, sizeof ex);
        if (status != 200) {
            snprintf(err, errlen, "login at %s: HTTP %ld: %s", r->url_rpc, status, ex);
            st = (status == 401 || status == 403) ? REMOTE_EAUTH : REMOTE_EPROTOCOL;
            break;
        }
        cJSON *doc = NULL;
        char perr[200];
        if (json_parse(r->body.p, r->body.len, 16, &doc, perr, sizeof perr) != 0) {
            snprintf(what, sizeof what, "bad login response: %s", perr);
            if (note_try(r, &hist, &attempt, what)) {
                st = fail_transient(err, errlen, "login at", r->url_rpc, attempt, &hist);
                break;
            }
            continue;
        }
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(doc, "error");
        const cJSON *res = cJSON_GetObjectItemCaseSensitive(doc, "result");
        const cJSON *sid = cJSON_IsObject(res) ? cJSON_GetObjectItemCaseSensitive(res, "session_id") : NULL;
        if (e && !cJSON_IsNull(e)) {
            const cJSON *m = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "message") : e;
            snprintf(err, errlen, "login at %s refused for user \"%s\": %s", r->url_rpc, r->username,
                     cJSON_IsString(m) ? m->valuestring : "(no message)");
            st = REMOTE_EAUTH;
        } else if (!cJSON_IsString(sid) || !*sid->valuestring || strlen(sid->valuestring) > 256) {
            snprintf(err, errlen, "login at %s: response has no result.session_id: %s", r->url_rpc, ex);
            st = REMOTE_EPROTOCOL;
        } else {
            for (const char *q = sid->valuestring; *q; q++)
                if (*q < 0x21 || *q > 0x7e) { st = REMOTE_EPROTOCOL; break; }
            if (st == REMOTE_OK) {
                r->session = xstrdup(sid->valuestring);
                r->stats.logins++;
            } else {
                snprintf(err, errlen, "login at %s: session_id has unprintable characters", r->url_rpc);
            }
        }
        cJSON_Delete(doc);
        break;
    }
    buf_free(&req);
    buf_free(&hist);
    return st;
}

/* Did the last exchange fail before the request could leave? Only then may a
 * write be tried again. A write always goes on a fresh connection, so these
 * mean no connection ever carried it; a timeout counts only while not even
 * TCP was connected. Anything else (reset, timeout or cancel while waiting
 * for the answer) may have come after the portal read and ran it. */
static int before_sending(remote *r)
{
    switch (r->last_cc) {
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
        return 1;
    case CURLE_OPERATION_TIMEDOUT: {
        curl_off_t t = -1;
        return curl_easy_getinfo(r->curl, CURLINFO_CONNECT_TIME_T, &t) == CURLE_OK && t == 0;
    }
    default:
        return 0;
    }
}

/* The message of a JSON-RPC `error` member: a string, error.message, or its JSON. */
static void rpc_message(const cJSON *e, char *out, size_t outlen)
{
    const cJSON *m = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "message") : e;
    if (cJSON_IsString(m)) {
        snprintf(out, outlen, "%s", m->valuestring);
        return;
    }
    struct buf b = {0};
    json_write_tree(&b, e);
    snprintf(out, outlen, "%s", b.p ? b.p : "(error)");
    buf_free(&b);
}

/* A write's HTTP 200 answer: 0 done (result set, rows handed to cb when it is
 * an array of rows), 1 a JSON-RPC error (rpcmsg), -1 not a JSON-RPC answer (what).
 * Any result shape means the portal ran the statement: rows, a count, [] or null. */
static int write_answer(remote *r, const struct json_rows_cb *cb, void *ctx, struct buf *result, char *rpcmsg,
                        size_t rpclen, char *what, size_t whatlen)
{
    cJSON *doc = NULL;
    char perr[300];
    if (json_parse(r->body.p, r->body.len, JSON_MAX_DEPTH_DEFAULT, &doc, perr, sizeof perr) != 0 ||
        !cJSON_IsObject(doc)) {
        snprintf(what, whatlen, "an unreadable answer (%zu bytes): %s", r->body.len,
                 doc ? "not a JSON object" : perr);
        cJSON_Delete(doc);
        return -1;
    }
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(doc, "error");
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(doc, "result");
    int rc = 0;
    if (e && !cJSON_IsNull(e)) {
        rpc_message(e, rpcmsg, rpclen);
        rc = 1;
    } else {
        if (result) {
            buf_reset(result);
            if (res) json_write_tree(result, res);
            else buf_puts(result, "null");
        }
        if (cb->begin || cb->row_begin || cb->value || cb->row_end) {
            char ignore[300], perr2[300];
            /* rows for a caller that reads them; a count has none */
            if (cJSON_IsArray(res))
                json_rpc_rows(r->body.p, r->body.len, cb, ctx, ignore, sizeof ignore, perr2, sizeof perr2);
        }
    }
    cJSON_Delete(doc);
    return rc;
}

/* Member `name` of the last answer, as JSON text, into out (emptied first). */
static void body_member(const remote *r, const char *name, struct buf *out)
{
    cJSON *doc = NULL;
    char perr[300];
    buf_reset(out);
    if (json_parse(r->body.p, r->body.len, JSON_MAX_DEPTH_DEFAULT, &doc, perr, sizeof perr) == 0) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(doc, name);
        if (m) json_write_tree(out, m);
    }
    cJSON_Delete(doc);
}

#define UNKNOWN_ADVICE "; the portal may have applied it: check before retrying (it was not resent)"

static enum remote_status query(remote *r, const char *method, const char *params_json,
                                const struct json_rows_cb *cb, void *ctx, struct buf *result,
                                struct buf *rpc_error, char *err, size_t errlen)
{
    static const struct json_rows_cb none = {0};
    if (!cb) cb = &none;
    int write = strcmp(method, "select") != 0;
    if (!r->session) {
        enum remote_status st = remote_login(r, err, errlen);
        if (st != REMOTE_OK) return st;
    }
    struct buf req = {0}, hist = {0};
    buf_printf(&req, "{\"jsonrpc\":\"2.0\",\"id\":%llu,\"method\":", (unsigned long long)r->next_id++);
    json_write_string(&req, method, strlen(method));
    buf_puts(&req, ",\"params\":");
    buf_puts(&req, params_json);
    buf_putc(&req, '}');

    enum remote_status st = REMOTE_OK;
    int attempt = 0, relogged = 0;
    for (;;) {
        char what[768], ex[200], rpcmsg[512] = "";
        long status = 0;
        enum outcome out = http_post(r, r->url_sql, req.p, req.len, write, &status, what, sizeof what);
        if (out == OUT_TOO_BIG) {
            if (write) {
                snprintf(err, errlen, "write outcome unknown: %s at %s: the answer is %s" UNKNOWN_ADVICE, method,
                         r->url_sql, what);
                st = REMOTE_EUNKNOWN;
            } else {
                snprintf(err, errlen, "%s at %s: %s", method, r->url_sql, what);
                st = REMOTE_EPROTOCOL;
            }
            break;
        }
        if (out == OUT_TRANSPORT && write && !before_sending(r)) {
            snprintf(err, errlen, "write outcome unknown: %s at %s: %s after the request was sent" UNKNOWN_ADVICE,
                     method, r->url_sql, what);
            st = REMOTE_EUNKNOWN;
            break;
        }
        if (out == OUT_RESPONSE && status >= 500) {
            excerpt(r->body.p, r->body.len, ex, sizeof ex);
            if (write) {
                snprintf(err, errlen, "write outcome unknown: %s at %s: the portal answered HTTP %ld: %s" UNKNOWN_ADVICE,
                         method, r->url_sql, status, ex);
                st = REMOTE_EUNKNOWN;
                break;
            }
            snprintf(what, sizeof what, "HTTP %ld", status);
        }
        if (out == OUT_TRANSPORT || status >= 500) goto transient;

        excerpt(r->body.p, r->body.len, ex, sizeof ex);
        /* A refused session is checked before any statement runs: resending a
         * write after logging in again cannot run it twice. */
        if (status == 401 || status == 403) {
            if (status == 401 || about_session(r->body.p, r->body.len)) {
                snprintf(rpcmsg, sizeof rpcmsg, "HTTP %ld: %s", status, ex);
                goto session_refused;
            }
            snprintf(err, errlen, "%s at %s: HTTP 403 Forbidden: %s", method, r->url_sql, ex);
            st = REMOTE_EFORBIDDEN;
            break;
        }
        if (status != 200) {
            snprintf(err, errlen, "%s at %s: unexpected HTTP %ld: %s", method, r->url_sql, status, ex);
            st = REMOTE_EPROTOCOL;
            break;
        }
        if (write) {
            int k = write_answer(r, cb, ctx, result, rpcmsg, sizeof rpcmsg, what, sizeof what);
            if (k == 0) break;
            if (k < 0) {
                snprintf(err, errlen, "write outcome unknown: %s at %s: HTTP 200 with %s" UNKNOWN_ADVICE, method,
                         r->url_sql, what);
                st = REMOTE_EUNKNOWN;
                break;
            }
        } else {
            char perr[300];
            enum json_rpc_kind kind = json_rpc_rows(r->body.p, r->body.len, cb, ctx, rpcmsg, sizeof rpcmsg,
                                                    perr, sizeof perr);
            if (kind == JSON_RPC_RESULT) {
                if (result) body_member(r, "result", result);
                break;
            }
            if (kind == JSON_RPC_STOPPED) {   /* the consumer refused a row: final */
                snprintf(err, errlen, "%s at %s: response %s", method, r->url_sql, perr);
                st = REMOTE_EPROTOCOL;
                break;
            }
            if (kind == JSON_RPC_BAD) {
                snprintf(what, sizeof what, "bad response body (%zu bytes): %s", r->body.len, perr);
                goto transient;
            }
        }
        /* A JSON-RPC error: the portal refused the statement, so a write did not run. */
        if (about_session(rpcmsg, strlen(rpcmsg))) goto session_refused;
        if (rpc_error) body_member(r, "error", rpc_error);
        snprintf(err, errlen, "%s at %s: portal error: %s", method, r->url_sql, rpcmsg);
        st = about_permission(rpcmsg, strlen(rpcmsg)) ? REMOTE_EFORBIDDEN : REMOTE_ERPC;
        break;

    session_refused:
        if (relogged) {
            snprintf(err, errlen, "%s at %s: session refused again after logging in anew: %s", method,
                     r->url_sql, rpcmsg);
            st = REMOTE_EAUTH;
            break;
        }
        relogged = 1;
        log_info("portal session refused (%s); logging in again", rpcmsg);
        st = remote_login(r, err, errlen);
        if (st != REMOTE_OK) break;
        continue;

    transient:
        if (note_try(r, &hist, &attempt, what)) {
            st = fail_transient(err, errlen, method, r->url_sql, attempt, &hist);
            break;
        }
        log_debug("%s at %s: %s; retrying", method, r->url_sql, what);
    }
    buf_free(&req);
    buf_free(&hist);
    return st;
}

enum remote_status remote_query(remote *r, const char *method, const char *params_json,
                                const struct json_rows_cb *cb, void *ctx, char *err, size_t errlen)
{
    return query(r, method, params_json, cb, ctx, NULL, NULL, err, errlen);
}

enum remote_status remote_select(remote *r, const char *params_json, struct buf *result, struct buf *rpc_error,
                                 char *err, size_t errlen)
{
    if (rpc_error) buf_reset(rpc_error);
    return query(r, "select", params_json, NULL, NULL, result, rpc_error, err, errlen);
}

enum remote_status remote_write(remote *r, const char *method, const char *params_json,
                                struct buf *result, char *err, size_t errlen)
{
    if (strcmp(method, "insert") != 0 && strcmp(method, "update") != 0 && strcmp(method, "delete") != 0) {
        snprintf(err, errlen, "method \"%s\": expected insert, update or delete", method);
        return REMOTE_ECONFIG;
    }
    return query(r, method, params_json, NULL, NULL, result, NULL, err, errlen);
}
