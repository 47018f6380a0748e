/* serve.c — see serve.h. The routes, authorization, the JSON-RPC and SQL
 * endpoints, status/health/metrics, and the evhttp glue. cache.db access
 * (connections, authorizer, statement cache, catalog) is serve_db.c.
 *
 * A request is a struct sreq from arrival to reply. Most are answered inside
 * dispatch(); an on_demand miss or a write parks the sreq on s->pending while
 * a hook works and resumes in the hook's done callback on the loop thread.
 * serve_free() orphans parked requests: their done callback then only frees them. */
#include "agent/serve/serve.h"
#include "agent/base/clock.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "agent/base/err.h"
#include "agent/base/json.h"
#include "agent/jsonsql/jsonsql.h"
#include "agent/base/log.h"
#include "agent/base/mem.h"
#include "agent/serve/serve_auth.h"
#include "agent/serve/serve_batch.h"
#include "agent/serve/serve_db.h"
#include "agent/serve/serve_pass.h"
#include "agent/serve/status.h"
#include "replay/replay.h"

#define DEFAULT_MAX_BODY (1 << 20)
#define DEFAULT_MAX_ROWS 100000
#define DEFAULT_MAX_REPLY ((int64_t)64 << 20)
#define DEFAULT_TIME_LIMIT_MS 5000
#define DEFAULT_MAX_DEPTH 32
#define DEFAULT_PAGE_ROWS 5000           /* /api/jsonsql/ when the config says nothing */
#define MAX_CODES 16                   /* distinct HTTP statuses counted per route */

enum route { R_JSONRPC, R_JSONSQL, R_SQL, R_STATUS, R_HEALTH, R_METRICS, R_SYNC, R_EXPORT, R_OTHER, R_N };
static const char *const route_names[R_N] = {"/api/jsonrpc/", "/api/jsonsql/", "/sql", "/status",
                                             "/health", "/metrics", "/sync", "/export", "other"};

/* Upper bounds of the latency histogram, seconds. */
static const double buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define NBUCKETS ((int)(sizeof buckets / sizeof buckets[0]))

struct code_count {
    int code;
    uint64_t n;
};

struct sreq;

struct serve {
    struct event_base *base;
    struct evhttp *http;               /* NULL without a listener */
    int port;
    const struct config *cfg;
    struct serve_hooks hooks;
    serve_auth *auth;                  /* the token, the account, sessions. Never logged. */
    int64_t max_body, max_rows, max_reply, time_limit_ms, page_rows;
    int max_depth;
    struct sdb db;
    struct sreq *pending;              /* waiting for a hook */
    struct {
        struct code_count codes[R_N][MAX_CODES];
        int ncodes[R_N];
        uint64_t hist[NBUCKETS + 1];   /* last: above every bound */
        double sum;
        uint64_t count;
    } m;
};

struct sreq {
    serve *s;                          /* NULL once orphaned by serve_free */
    struct evhttp_request *ev;         /* evhttp glue; NULL for serve_handle */
    int close_conn;                    /* evhttp left a body unread: close after the reply */
    serve_reply_fn cb;                 /* serve_handle */
    void *cb_arg;
    enum route route;
    int64_t t0_ns;
    struct serve_reply rep;
    /* parked on a hook */
    cJSON *doc;                        /* the JSON-RPC request, owned */
    const struct config_table *od;     /* on_demand table being fetched */
    const cJSON *od_lit;               /* the key literal (in doc) */
    char *od_value;                    /* the key literal, JSON; refreshing: the keys, a JSON array */
    int refreshing;                    /* the hook is refresh (stale rows), not fetch (a miss) */
    const char *pass_table;            /* passed to hooks->select for this table (in doc) */
    int64_t rows;                      /* rows in the answer answer_select made */
    int in_hook;                       /* the hook has not returned yet */
    int hook_done;                     /* done was called */
    int hook_status;
    char *hook_msg, *hook_rows;
    struct serve_batch *batch;         /* a batch's elements being answered */
    struct sreq *prev, *next;
};

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void put_time(struct buf *b, int64_t ms)
{
    if (ms <= 0) { buf_puts(b, "null"); return; }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char s[40];
    gmtime_r(&t, &tm);
    strftime(s, sizeof s, "%Y-%m-%dT%H:%M:%SZ", &tm);
    buf_printf(b, "\"%s\"", s);
}

static void put_str(struct buf *b, const char *s)
{
    if (s) json_write_string(b, s, strlen(s));
    else buf_puts(b, "null");
}

/* ---- requests and replies -------------------------------------------------------- */

static struct sreq *sreq_new(serve *s, struct evhttp_request *ev, serve_reply_fn cb, void *arg)
{
    struct sreq *r = xcalloc(1, sizeof *r);
    r->s = s;
    r->ev = ev;
    r->cb = cb;
    r->cb_arg = arg;
    r->t0_ns = mono_ns();
    r->rep.status = 200;
    r->rep.content_type = "application/json; charset=utf-8";
    r->rep.cache_age = -1;
    r->rep.cache_stale = -1;
    r->rep.file_fd = -1;
    return r;
}

static void sreq_free(struct sreq *r)
{
    if (r->rep.file_fd >= 0) close(r->rep.file_fd);
    buf_free(&r->rep.body);
    cJSON_Delete(r->doc);
    free(r->od_value);
    free(r->hook_msg);
    free(r->hook_rows);
    serve_batch_free(r->batch);
    free(r);
}

static void park(struct sreq *r)
{
    serve *s = r->s;
    r->prev = NULL;
    r->next = s->pending;
    if (s->pending) s->pending->prev = r;
    s->pending = r;
}

static void unpark(struct sreq *r)
{
    if (r->prev) r->prev->next = r->next;
    else if (r->s && r->s->pending == r) r->s->pending = r->next;
    if (r->next) r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

static void count_request(serve *s, enum route rt, int status, double secs)
{
    int i = 0, n = s->m.ncodes[rt];
    while (i < n && s->m.codes[rt][i].code != status) i++;
    if (i == n && n < MAX_CODES) s->m.codes[rt][s->m.ncodes[rt]++].code = status;
    if (i < MAX_CODES) s->m.codes[rt][i].n++;
    int b = 0;
    while (b < NBUCKETS && secs > buckets[b]) b++;
    s->m.hist[b]++;
    s->m.sum += secs;
    s->m.count++;
}

static void free_chunk(const void *data, size_t len, void *arg) { free(arg); }

/* Send the reply and release the request. */
static void finish(struct sreq *r)
{
    serve *s = r->s;
    struct serve_reply *rep = &r->rep;
    double secs = (double)(mono_ns() - r->t0_ns) / 1e9;
    count_request(s, r->route, rep->status, secs);
    if (log_enabled(LOG_DEBUG))
        log_debug("serve: %s -> %d in %.3f ms", route_names[r->route], rep->status, secs * 1000);
    if (r->ev) {
        struct evkeyvalq *oh = evhttp_request_get_output_headers(r->ev);
        char v[32];
        evhttp_add_header(oh, "Content-Type", rep->content_type);
        if (r->close_conn) evhttp_add_header(oh, "Connection", "close");
        if (rep->cache_age >= 0) {
            snprintf(v, sizeof v, "%lld", (long long)rep->cache_age);
            evhttp_add_header(oh, "X-Cache-Age", v);
        }
        if (rep->cache_stale >= 0) evhttp_add_header(oh, "X-Cache-Stale", rep->cache_stale ? "true" : "false");
        if (rep->cache_error[0]) evhttp_add_header(oh, "X-Cache-Error", rep->cache_error);
        if (rep->cache) evhttp_add_header(oh, "X-Cache", rep->cache);
        if (rep->export_id[0]) evhttp_add_header(oh, "X-Export-Id", rep->export_id);
        if (rep->export_base[0]) evhttp_add_header(oh, "X-Export-Base", rep->export_base);
        if (rep->write_queued[0]) evhttp_add_header(oh, "X-Write-Queued", rep->write_queued);
        struct evbuffer *out = evbuffer_new();
        size_t len = rep->body.len;
        char *p = buf_detach(&rep->body);
        if (rep->file_fd >= 0) {
            /* The file goes out by sendfile/mmap; evbuffer closes the descriptor. */
            free(p);
            if (evbuffer_add_file(out, rep->file_fd, 0, rep->file_size) != 0) close(rep->file_fd);
            rep->file_fd = -1;
        } else if (p && len) {
            evbuffer_add_reference(out, p, len, free_chunk, p);
        } else {
            free(p);
        }
        evhttp_send_reply(r->ev, rep->status, NULL, out);
        evbuffer_free(out);
    } else if (r->cb) {
        if (!rep->body.p) buf_puts(&rep->body, "");
        r->cb(r->cb_arg, rep);
        rep->file_fd = -1;             /* the callback owns it */
    }
    sreq_free(r);
}

static void reply_error(struct sreq *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void reply_error(struct sreq *r, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    buf_reset(&r->rep.body);
    r->rep.status = status;
    r->rep.cache_age = -1;
    r->rep.cache_stale = -1;
    r->rep.cache = NULL;
    buf_puts(&r->rep.body, "{\"error\":");
    put_str(&r->rep.body, msg);
    buf_puts(&r->rep.body, "}");
}

/* The request's id, echoed exactly (json_parse keeps a number's literal). */
static void put_id(struct buf *b, const cJSON *id)
{
    if (id && (cJSON_IsNumber(id) || cJSON_IsString(id))) json_write_tree(b, id);
    else buf_puts(b, "null");
}

static const cJSON *req_id(const struct sreq *r)
{
    return cJSON_IsObject(r->doc) ? cJSON_GetObjectItemCaseSensitive(r->doc, "id") : NULL;
}

/* A JSON-RPC error: HTTP 200 like the portal, unless status says otherwise. */
static void rpc_error(struct sreq *r, int status, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void rpc_error(struct sreq *r, int status, int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct buf *b = &r->rep.body;
    buf_reset(b);
    r->rep.status = status;
    r->rep.cache_age = -1;
    r->rep.cache_stale = -1;
    r->rep.cache = NULL;
    buf_puts(b, "{\"jsonrpc\":\"2.0\",\"id\":");
    put_id(b, req_id(r));
    buf_printf(b, ",\"error\":{\"code\":%d,\"message\":", code);
    put_str(b, msg);
    buf_puts(b, "}}");
}

/* ---- freshness ---------------------------------------------------------------------- */

static int portal_state(serve *s, int64_t *since)
{
    *since = 0;
    return s->hooks.portal_state ? s->hooks.portal_state(s->hooks.ctx, since) : -1;
}

/* X-Cache-Age/-Stale for an answer that read `tables` (see serve.h: Decisions):
 * the oldest age, and stale when any of them is (status_row's rule). */
static void cache_headers(serve *s, char *const *tables, int n, struct serve_reply *rep)
{
    if (n == 0) {
        rep->cache_age = -1;
        rep->cache_stale = -1;
        return;
    }
    int64_t since, now = clock_wall_ms(), oldest = 0;
    int down = portal_state(s, &since) == 0, stale = 0, known = 1;
    for (int i = 0; i < n; i++) {
        struct status_row row;
        status_row(s->cfg, tables[i], status_brief(s->db.tables, s->db.ntables, tables[i]), down, now, &row);
        stale |= row.stale;
        if (row.age_s < 0) known = 0;
        else if (row.age_s > oldest) oldest = row.age_s;
    }
    rep->cache_age = known ? oldest : -1;
    rep->cache_stale = stale;
}

/* A header value: one line, printable, bounded. */
static void header_text(char *dst, size_t cap, const char *msg)
{
    size_t n = 0;
    for (const char *p = msg ? msg : "error"; *p && n + 1 < cap; p++)
        dst[n++] = ((unsigned char)*p < 0x20 || *p == 0x7f) ? ' ' : *p;
    dst[n] = '\0';
}

/* ---- authorization --------------------------------------------------------------- */

static int authorized(const serve *s, const struct serve_request *rq)
{
    return serve_auth_token_ok(s->auth, rq->authorization, rq->session);
}

/* ---- JSON bodies --------------------------------------------------------------------- */

/* Parse a JSON-RPC body into r->doc. 0, 1 a batch (an array), or -1 with the error reply made. */
static int rpc_body(struct sreq *r, const struct serve_request *rq)
{
    serve *s = r->s;
    char err[IA_ERRLEN];
    if ((int64_t)rq->len > s->max_body) {
        rpc_error(r, 413, -32600, "Invalid Request: body of %zu bytes exceeds the limit of %lld", rq->len,
                  (long long)s->max_body);
        return -1;
    }
    if (json_parse(rq->body ? rq->body : "", rq->len, s->max_depth, &r->doc, err, sizeof err) != 0) {
        rpc_error(r, 200, -32700, "Parse error: %s", err);
        return -1;
    }
    int n = cJSON_IsArray(r->doc) ? cJSON_GetArraySize(r->doc) : -1;
    if (n > 0 && n <= SERVE_MAX_BATCH) return 1;
    if (n == 0) rpc_error(r, 200, -32600, "Invalid Request: empty batch");
    else if (n > 0)
        rpc_error(r, 200, -32600, "Invalid Request: a batch of %d requests exceeds the limit of %d", n, SERVE_MAX_BATCH);
    if (n >= 0) return -1;
    if (!cJSON_IsObject(r->doc)) {
        rpc_error(r, 200, -32600, "Invalid Request: expected a JSON-RPC object");
        return -1;
    }
    return 0;
}

/* ---- batches (serve_batch.h) ------------------------------------------------------- */

static void batch_done(void *arg, const struct serve_reply *rep)
{
    struct sreq *r = arg;
    buf_reset(&r->rep.body);
    buf_append(&r->rep.body, rep->body.p, rep->body.len);
    r->rep.status = rep->status;
    r->rep.cache_age = rep->cache_age;
    r->rep.cache_stale = rep->cache_stale;
    r->rep.cache = rep->cache;
    memcpy(r->rep.cache_error, rep->cache_error, sizeof r->rep.cache_error);
    r->hook_done = 1;
    if (!r->in_hook) { unpark(r); finish(r); }
}

/* r->doc is a batch. 0 answered, 1 waiting for its elements (serve_free drops it). */
static int run_batch(struct sreq *r, const struct serve_request *rq)
{
    park(r);
    r->in_hook = 1;
    serve_batch_start(r->s, rq, r->doc, batch_done, r, &r->batch);
    r->in_hook = 0;
    if (!r->hook_done) return 1;
    unpark(r);
    finish(r);
    return 0;
}

/* ---- POST /api/jsonrpc/ ------------------------------------------------------------ */

/* Answered as the portal does: a session id, or -32001 with HTTP 200 (serve_auth.h says who gets in). */
static void login(struct sreq *r)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(r->doc, "method");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(r->doc, "params");
    if (!cJSON_IsString(m) || strcmp(m->valuestring, "authorize_user") != 0) {
        rpc_error(r, 200, -32601, "Method not found: this endpoint knows authorize_user");
        return;
    }
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(p, "username");
    const cJSON *pw = cJSON_GetObjectItemCaseSensitive(p, "password");
    char sid[SERVE_AUTH_SID_LEN + 1], err[IA_ERRLEN];
    int ok = serve_auth_login(r->s->auth, cJSON_IsString(u) ? u->valuestring : NULL,
                              cJSON_IsString(pw) ? pw->valuestring : NULL, sid, err, sizeof err);
    if (ok < 0) {
        rpc_error(r, 500, -32603, "%s", err);
    } else if (ok == 0) {
        log_info("serve: authorize_user refused (wrong username or password)");
        rpc_error(r, 200, -32001, "Invalid username or password");
    } else {
        struct buf *b = &r->rep.body;
        buf_puts(b, "{\"jsonrpc\":\"2.0\",\"id\":");
        put_id(b, req_id(r));
        buf_printf(b, ",\"result\":{\"session_id\":\"%s\"}}", sid);
        explicit_bzero(sid, sizeof sid);
    }
}

/* 0 answered, 1 a batch waiting. */
static int handle_login(struct sreq *r, const struct serve_request *rq)
{
    int rc = rpc_body(r, rq);
    if (rc == 1) return run_batch(r, rq);
    if (rc == 0) login(r);
    finish(r);
    return 0;
}

/* ---- POST /api/jsonsql/: select ------------------------------------------------------ */

/* Is k the key column of table `name` (aliased `alias`): "key" or {"name|alias":"key"}? */
static int names_key(const cJSON *k, const char *key, const char *name, const char *alias)
{
    if (cJSON_IsString(k)) return strcmp(k->valuestring, key) == 0;
    return cJSON_IsObject(k) && k->child && !k->child->next && cJSON_IsString(k->child) &&
           strcmp(k->child->valuestring, key) == 0 &&
           (strcmp(k->child->string, name) == 0 || (alias && strcmp(k->child->string, alias) == 0));
}

/* Does a select look one key up in an on_demand table? `from` names one
 * configured on_demand table (a string, or a list of one {"table":..}), and
 * `where` is {"eq":[key, literal]} in either order, or {"in":[key, [literal]]}
 * (an `in` list holds only values: what `get` sends, so a text key that reads
 * like a column name is still a value); the key may be qualified by the
 * table's name or alias. Returns the table and sets *lit, else NULL. */
static const struct config_table *on_demand_lookup(serve *s, const cJSON *params, const cJSON **lit)
{
    const cJSON *from = cJSON_GetObjectItemCaseSensitive(params, "from");
    const char *name = NULL, *alias = NULL;
    if (cJSON_IsString(from)) {
        name = from->valuestring;
    } else if (cJSON_IsArray(from) && cJSON_GetArraySize(from) == 1 && cJSON_IsObject(from->child)) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(from->child, "table");
        const cJSON *as = cJSON_GetObjectItemCaseSensitive(from->child, "as");
        if (cJSON_IsString(t)) name = t->valuestring;
        if (cJSON_IsString(as)) alias = as->valuestring;
    }
    const struct config_table *t = name ? config_table_find(s->cfg, name) : NULL;
    if (!t || t->strategy != STRATEGY_ON_DEMAND) return NULL;
    const cJSON *where = cJSON_GetObjectItemCaseSensitive(params, "where");
    if (!cJSON_IsObject(where) || !where->child || where->child->next) return NULL;
    const cJSON *cond = where->child;
    const char *key = t->key ? t->key : "id";
    if (!cJSON_IsArray(cond) || cJSON_GetArraySize(cond) != 2) return NULL;
    if (strcmp(cond->string, "in") == 0) {
        const cJSON *list = cond->child->next, *v = list->child;
        if (!names_key(cond->child, key, name, alias) || !cJSON_IsArray(list) || cJSON_GetArraySize(list) != 1 ||
            !(cJSON_IsNumber(v) || cJSON_IsBool(v) || cJSON_IsString(v)))
            return NULL;
        *lit = v;
        return t;
    }
    if (strcmp(cond->string, "eq") != 0) return NULL;
    for (int order = 0; order < 2; order++) {
        const cJSON *k = order ? cond->child->next : cond->child, *v = order ? cond->child : cond->child->next;
        if (!names_key(k, key, name, alias)) continue;
        /* A string naming a column is a column (jsonsql.h name rules), not a value. */
        int literal = cJSON_IsNumber(v) || cJSON_IsBool(v) ||
                      (cJSON_IsString(v) && jsonsql_catalog_column(s->db.cat, name, v->valuestring, NULL) < 0);
        for (int i = 0; literal && cJSON_IsString(v) && i < t->ncolumns; i++)
            if (strcmp(t->columns[i], v->valuestring) == 0) literal = 0;
        if (literal) {
            *lit = v;
            return t;
        }
    }
    return NULL;
}

static int bind_json(sqlite3_stmt *ps, const cJSON *params, char *err, size_t errlen);

/* A portal answers at most a page: a select without limit, or with a larger
 * one, is answered with the first `cap` rows that limit would give. */
static void cap_page(cJSON *params, int64_t cap)
{
    if (!cJSON_IsObject(params)) return;               /* jsonsql_compile says what is wrong */
    const cJSON *lim = cJSON_GetObjectItemCaseSensitive(params, "limit");
    int64_t n;
    if (lim && (!json_int64(lim, &n) || n <= cap)) return;
    cJSON *c = cJSON_CreateNumber((double)cap);
    if (lim) cJSON_ReplaceItemInObjectCaseSensitive(params, "limit", c);
    else cJSON_AddItemToObject(params, "limit", c);
}

/* How fresh the cached rows of an on_demand key lookup are (replay_fetched_sql):
 * *at_ms the oldest fetch time (0: not known); *keys (when not NULL) their keys
 * as a JSON array, malloc'd. Returns the row count, -1 when it cannot tell. */
static int64_t od_fetched(serve *s, const struct config_table *t, const cJSON *lit, int64_t *at_ms, char **keys)
{
    const char *key = t->key ? t->key : "id";
    struct buf sql = {0};
    sqlite3_stmt *ps = NULL;
    int64_t n = -1;
    char err[IA_ERRLEN];
    *at_ms = 0;
    replay_fetched_sql(&sql, t->name, key, key);
    if (lit && sqlite3_prepare_v2(s->db.meta, sql.p, -1, &ps, NULL) == SQLITE_OK) {
        cJSON *one = cJSON_CreateArray();
        cJSON_AddItemReferenceToArray(one, (cJSON *)lit);
        if (bind_json(ps, one, err, sizeof err) == 0 && sqlite3_step(ps) == SQLITE_ROW) {
            n = sqlite3_column_int64(ps, 0);
            *at_ms = sqlite3_column_int64(ps, 1);
            if (keys) *keys = xstrdup(sqlite3_column_text(ps, 2) ? (const char *)sqlite3_column_text(ps, 2) : "[]");
        }
        cJSON_Delete(one);
    }
    sqlite3_finalize(ps);
    buf_free(&sql);
    return n;
}

/* Answer a select from the cache into r->rep. With may_fetch, an on_demand
 * lookup (r->od) returns 1 instead when the cache has nothing (hooks->fetch),
 * 2 when its rows are older than the table's ttl (hooks->refresh; r->od_value
 * then holds their keys). */
static int answer_select(struct sreq *r, int may_fetch)
{
    serve *s = r->s;
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(r->doc, "params");
    char err[IA_ERRLEN];
    r->rows = 0;
    if (r->od && jsonsql_catalog_ncolumns(s->db.cat, r->od->name) < 0) {
        /* The on_demand table was never fetched into cache.db: nothing cached. */
        if (may_fetch && s->hooks.fetch) return 1;
        struct buf *b = &r->rep.body;
        buf_reset(b);
        buf_puts(b, "{\"jsonrpc\":\"2.0\",\"id\":");
        put_id(b, req_id(r));
        buf_puts(b, ",\"result\":[]}");
        char *names[1] = {r->od->name};
        cache_headers(s, names, 1, &r->rep);
        r->rep.cache = "hit";
        return 0;
    }
    struct jsonsql_limits lim = {.max_depth = s->max_depth};
    struct jsonsql_stmt st = {0};
    cap_page((cJSON *)params, s->page_rows);
    if (jsonsql_compile(s->db.cat, "select", params, &lim, &st, err, sizeof err) != 0) {
        rpc_error(r, 200, -32602, "%s", err);
        return 0;
    }
    struct sdb_stmt *e = sdb_prepare(&s->db, st.sql, strlen(st.sql), err, sizeof err);
    if (!e) {
        rpc_error(r, 200, -32603, "query failed: %s", err);
        jsonsql_stmt_free(&st);
        return 0;
    }
    int rc = jsonsql_bind(&st, e->ps);
    if (rc != SQLITE_OK) {
        rpc_error(r, 200, -32603, "query failed: binding values: %s", sqlite3_errstr(rc));
        sqlite3_reset(e->ps);
        jsonsql_stmt_free(&st);
        return 0;
    }
    struct buf *b = &r->rep.body;
    buf_reset(b);
    buf_puts(b, "{\"jsonrpc\":\"2.0\",\"id\":");
    put_id(b, req_id(r));
    buf_puts(b, ",\"result\":[");
    int64_t rows = 0;
    int over = 0;
    sdb_deadline(&s->db, s->time_limit_ms);
    while ((rc = sqlite3_step(e->ps)) == SQLITE_ROW) {
        if (rows == s->page_rows) break;  /* cap_page's limit already stops it there */
        if ((int64_t)b->len > s->max_reply) { over = 2; break; }
        if (rows++) buf_putc(b, ',');
        jsonsql_write_row(b, &st, e->ps);
    }
    sdb_deadline(&s->db, 0);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        snprintf(err, sizeof err, "%s", s->db.timed_out ? "" : sqlite3_errmsg(s->db.rd));
    sqlite3_reset(e->ps);                 /* ends the read transaction */
    jsonsql_stmt_free(&st);
    if (over) {
        rpc_error(r, 200, -32603, "result exceeds %lld bytes: narrow it with where, limit or fewer columns",
                  (long long)s->max_reply);
        return 0;
    }
    if (rc != SQLITE_DONE) {
        if (s->db.timed_out)
            rpc_error(r, 200, -32603, "query stopped: it ran longer than the time limit of %lld ms",
                      (long long)s->time_limit_ms);
        else
            rpc_error(r, 200, -32603, "query failed: %s", err);
        return 0;
    }
    if (rows == 0 && may_fetch && r->od && s->hooks.fetch) return 1;
    buf_puts(b, "]}");
    cache_headers(s, e->tables, e->ntables, &r->rep);
    r->rep.cache = "hit";
    r->rows = rows;
    if (r->od && rows > 0) {
        /* A key lookup's freshness is its row's, not the table's. */
        int64_t at, since, now = clock_wall_ms();
        char *keys = NULL;
        int64_t n = od_fetched(s, r->od, r->od_lit, &at, may_fetch && s->hooks.refresh ? &keys : NULL);
        int stale = n <= 0 || config_stale(r->od->ttl_ms, at, now);
        if (stale && keys) {
            free(r->od_value);
            r->od_value = keys;
            return 2;
        }
        free(keys);
        r->rep.cache_age = n > 0 && at > 0 ? (now > at ? now - at : 0) / 1000 : -1;
        r->rep.cache_stale = stale || portal_state(s, &since) == 0;
    }
    return 0;
}

static void fetch_finish(struct sreq *r)
{
    unpark(r);
    sdb_check(&r->s->db, 0);              /* the hook changed cache.db */
    answer_select(r, 0);
    if (r->hook_status != 0 && r->rep.cache_stale >= 0) {
        if (!r->refreshing && r->rows == 0)
            /* An empty result would read as "no such row": say what happened. */
            rpc_error(r, 200, SERVE_ERR_NOT_CACHED, "%s %s=%s is not cached and the portal could not be asked: %s",
                      r->od->name, r->od->key ? r->od->key : "id", r->od_value, r->hook_msg);
        else
            r->rep.cache_stale = 1;
        header_text(r->rep.cache_error, sizeof r->rep.cache_error, r->hook_msg);
    }
    finish(r);
}

static void fetch_done(void *arg, int status, const char *msg)
{
    struct sreq *r = arg;
    if (!r->s) { sreq_free(r); return; }          /* orphaned by serve_free */
    r->hook_status = status;
    r->hook_msg = xstrdup(status != 0 ? (msg && *msg ? msg : r->refreshing ? "on_demand refresh failed"
                                                                           : "on_demand fetch failed") : "");
    r->hook_done = 1;
    if (!r->in_hook) fetch_finish(r);
}

static void pass_finish(struct sreq *r)
{
    unpark(r);
    int st = r->hook_status;
    if (st == SERVE_PASS_OK || st == SERVE_PASS_RPC) {
        pass_reply(&r->rep.body, req_id(r), st == SERVE_PASS_OK ? "result" : "error", r->hook_rows);
        r->rep.cache = "pass";
    } else {
        rpc_error(r, 200, st == SERVE_PASS_BUSY ? SERVE_ERR_BUSY : SERVE_ERR_NOT_CACHED,
                  "table %s is not cached and the portal%s: %s", r->pass_table, st == SERVE_PASS_BUSY ? " is busy"
                  : st == SERVE_PASS_BAD ? "'s answer is unusable" : " is unreachable", r->hook_msg);
        header_text(r->rep.cache_error, sizeof r->rep.cache_error, r->hook_msg);
    }
    finish(r);
}

static void pass_done(void *arg, int status, const char *json, const char *msg)
{
    struct sreq *r = arg;
    if (!r->s) { sreq_free(r); return; }
    r->hook_status = status;
    r->hook_msg = xstrdup(msg && *msg ? msg : "no answer");
    r->hook_rows = json ? xstrdup(json) : NULL;
    r->hook_done = 1;
    if (!r->in_hook) pass_finish(r);
}

/* A select the cache cannot answer (serve.h: Pass-through): 0 answered, 1 parked. */
static int run_pass(struct sreq *r, const cJSON *params, const char *table)
{
    serve *s = r->s;
    struct buf pj = {0};
    json_write_tree(&pj, params);
    r->pass_table = table;
    park(r);
    r->in_hook = 1;
    int rc = s->hooks.select(s->hooks.ctx, table, pj.p, pass_done, r);
    r->in_hook = 0;
    buf_free(&pj);
    if (rc != 0 && !r->hook_done) {
        r->hook_status = SERVE_PASS_FAILED;
        r->hook_msg = xstrdup("the agent cannot ask it now");
        r->hook_done = 1;
    }
    if (!r->hook_done) return 1;
    pass_finish(r);
    return 0;
}

/* 0 answered, 1 parked on the fetch or select hook. */
static int run_select(struct sreq *r)
{
    serve *s = r->s;
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(r->doc, "params");
    sdb_check(&s->db, 0);
    r->od = on_demand_lookup(s, params, &r->od_lit);
    if (!r->od && s->hooks.select && s->cfg->serve.unknown_tables != UNKNOWN_REFUSE) {
        const char *t = pass_uncached(s->cfg, &s->db, params, s->max_depth);
        if (t) return run_pass(r, params, t);
    }
    int want = answer_select(r, r->od != NULL);
    if (want == 0) {
        finish(r);
        return 0;
    }
    r->refreshing = want == 2;
    if (!r->refreshing) {
        struct buf v = {0};
        json_write_tree(&v, r->od_lit);
        r->od_value = buf_detach(&v);
    }
    park(r);
    r->in_hook = 1;
    int rc = r->refreshing
                 ? s->hooks.refresh(s->hooks.ctx, r->od->name, r->od_value, fetch_done, r)
                 : s->hooks.fetch(s->hooks.ctx, r->od->name, r->od->key ? r->od->key : "id", r->od_value, fetch_done, r);
    r->in_hook = 0;
    if (rc != 0 && !r->hook_done) {
        r->hook_status = -1;
        r->hook_msg = xstrdup(r->refreshing ? "on_demand refresh not started (portal unreachable or agent stopping)"
                                            : "on_demand fetch not started (portal unreachable or agent stopping)");
        r->hook_done = 1;
    }
    if (!r->hook_done) return 1;
    fetch_finish(r);
    return 0;
}

/* ---- POST /api/jsonsql/: insert, update, delete --------------------------------------- */

static void write_finish(struct sreq *r)
{
    unpark(r);
    cJSON *rows = NULL;
    char err[IA_ERRLEN];
    if (r->hook_status == SERVE_WRITE_UNKNOWN) {
        /* its own code: the client must not treat it as "not done" and resend */
        rpc_error(r, 200, -32002, "%s", r->hook_msg && *r->hook_msg ? r->hook_msg
                  : "write outcome unknown: the answer was lost; the portal may have applied it");
    } else if (r->hook_status == SERVE_WRITE_REFUSED) {
        rpc_error(r, 200, -32602, "%s", r->hook_msg && *r->hook_msg ? r->hook_msg : "write refused");
    } else if (r->hook_status != SERVE_WRITE_OK && r->hook_status != SERVE_WRITE_QUEUED) {
        rpc_error(r, 200, -32603, "portal write failed: %s (writes are not queued)",
                  r->hook_msg && *r->hook_msg ? r->hook_msg : "unknown error");
    } else if (r->hook_rows && json_parse(r->hook_rows, strlen(r->hook_rows), JSON_MAX_DEPTH_DEFAULT, &rows,
                                          err, sizeof err) != 0) {
        rpc_error(r, 200, -32603, "portal write returned a bad result: %s", err);
    } else {
        struct buf *b = &r->rep.body;
        buf_reset(b);
        buf_puts(b, "{\"jsonrpc\":\"2.0\",\"id\":");
        put_id(b, req_id(r));
        buf_puts(b, ",\"result\":");
        buf_puts(b, r->hook_rows ? r->hook_rows : "[]");
        buf_puts(b, "}");
        if (r->hook_status == SERVE_WRITE_QUEUED && r->hook_msg)
            snprintf(r->rep.write_queued, sizeof r->rep.write_queued, "%s", r->hook_msg);
    }
    cJSON_Delete(rows);
    finish(r);
}

static void write_done(void *arg, int status, const char *rows_json, const char *msg)
{
    struct sreq *r = arg;
    if (!r->s) { sreq_free(r); return; }
    r->hook_status = status;
    r->hook_msg = msg ? xstrdup(msg) : NULL;
    r->hook_rows = (status == SERVE_WRITE_OK || status == SERVE_WRITE_QUEUED) && rows_json ? xstrdup(rows_json) : NULL;
    r->hook_done = 1;
    if (!r->in_hook) write_finish(r);
}

static int run_write(struct sreq *r, const char *method)
{
    serve *s = r->s;
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(r->doc, "params");
    /* Writes go out with the portal admin's credentials: without a token or a
     * portal login anyone who can reach the port could use them, so that takes an explicit yes. */
    if (!serve_auth_has_token(s->auth) && serve_auth_mode(s->auth) == AUTH_NONE && !s->cfg->serve.tokenless_writes) {
        rpc_error(r, 403, -32000, "%s refused: writes through the local API need an API token, and this agent has "
                                  "none ([serve] token_env unset) and auth = \"none\"; set token_env, or auth = "
                                  "\"portal\" (clients log in with the portal's account), or tokenless_writes = "
                                  "\"loopback\" in [serve] to let local clients write without either", method);
        finish(r);
        return 0;
    }
    if (!s->hooks.write) {
        rpc_error(r, 200, -32603, "portal unreachable: writes are not queued (this server forwards no %s)", method);
        finish(r);
        return 0;
    }
    if (!cJSON_IsObject(params)) {
        rpc_error(r, 200, -32602, "params: expected an object");
        finish(r);
        return 0;
    }
    struct buf pj = {0};
    json_write_tree(&pj, params);
    park(r);
    r->in_hook = 1;
    int rc = s->hooks.write(s->hooks.ctx, method, pj.p, write_done, r);
    r->in_hook = 0;
    buf_free(&pj);
    if (rc != 0 && !r->hook_done) {
        r->hook_status = -1;
        r->hook_msg = xstrdup("portal unreachable");
        r->hook_done = 1;
    }
    if (!r->hook_done) return 1;
    write_finish(r);
    return 0;
}

static int handle_jsonsql(struct sreq *r, const struct serve_request *rq)
{
    /* Before the body: an unauthorized client gets no work done. The portal's
     * words, with HTTP 401: a client that re-authorizes on either sees it. */
    if (!serve_auth_portal_ok(r->s->auth, rq->authorization, rq->session)) {
        rpc_error(r, 401, -32000, "Session expired or invalid, please authorize: send Iptvportal-Authorization: "
                                  "sessionid=<authorize_user's session_id> or Authorization: Bearer <token>");
        finish(r);
        return 0;
    }
    int body = rpc_body(r, rq);
    if (body == 1) return run_batch(r, rq);
    if (body != 0) { finish(r); return 0; }
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(r->doc, "method");
    if (!cJSON_IsString(m)) {
        rpc_error(r, 200, -32600, "Invalid Request: method missing");
        finish(r);
        return 0;
    }
    if (strcmp(m->valuestring, "select") == 0) return run_select(r);
    if (!strcmp(m->valuestring, "insert") || !strcmp(m->valuestring, "update") || !strcmp(m->valuestring, "delete"))
        return run_write(r, m->valuestring);
    rpc_error(r, 200, -32601, "Method not found");
    finish(r);
    return 0;
}

/* ---- POST /sql ---------------------------------------------------------------------------- */

/* Declared type -> how a value is shaped, as the catalog does it (jsonsql.h). */
static enum jsonsql_type decl_type(const char *decl)
{
    if (!decl) return JSQL_ANY;
    char up[64];
    size_t n = 0;
    for (; decl[n] && n < sizeof up - 1; n++) up[n] = (char)(decl[n] >= 'a' && decl[n] <= 'z' ? decl[n] - 32 : decl[n]);
    up[n] = '\0';
    if (strstr(up, "BOOL")) return JSQL_BOOL;
    if (strstr(up, "JSON")) return JSQL_JSON;
    if (strstr(up, "INT")) return JSQL_INT;
    if (strstr(up, "CHAR") || strstr(up, "TEXT") || strstr(up, "CLOB") || strstr(up, "TIMESTAMP")) return JSQL_TEXT;
    if (strstr(up, "REAL") || strstr(up, "FLOA") || strstr(up, "DOUB")) return JSQL_REAL;
    return JSQL_ANY;
}

/* Bind a JSON array of scalars to ?1..?N. 0, or -1 with err. */
static int bind_json(sqlite3_stmt *ps, const cJSON *params, char *err, size_t errlen)
{
    int want = sqlite3_bind_parameter_count(ps), have = params ? cJSON_GetArraySize(params) : 0;
    if (params && !cJSON_IsArray(params)) {
        snprintf(err, errlen, "params: expected an array of values");
        return -1;
    }
    if (want != have) {
        snprintf(err, errlen, "the statement has %d parameter%s, params has %d", want, want == 1 ? "" : "s", have);
        return -1;
    }
    int i = 1, rc = SQLITE_OK;
    for (const cJSON *v = params ? params->child : NULL; v && rc == SQLITE_OK; v = v->next, i++) {
        int64_t iv;
        if (cJSON_IsNull(v)) rc = sqlite3_bind_null(ps, i);
        else if (cJSON_IsBool(v)) rc = sqlite3_bind_int(ps, i, cJSON_IsTrue(v));
        else if (json_int64(v, &iv)) rc = sqlite3_bind_int64(ps, i, iv);
        else if (cJSON_IsNumber(v)) rc = sqlite3_bind_double(ps, i, v->valuedouble);
        else if (cJSON_IsString(v)) rc = sqlite3_bind_text(ps, i, v->valuestring, -1, SQLITE_TRANSIENT);
        else {
            snprintf(err, errlen, "params[%d]: expected a number, string, boolean or null", i - 1);
            return -1;
        }
    }
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "binding params: %s", sqlite3_errstr(rc));
        return -1;
    }
    return 0;
}

static void handle_sql(struct sreq *r, const struct serve_request *rq)
{
    serve *s = r->s;
    char err[IA_ERRLEN];
    if (!authorized(s, rq)) {
        reply_error(r, 401, "unauthorized: send Authorization: Bearer <token>");
        return;
    }
    const char *body = rq->body ? rq->body : "";
    if (memchr(body, '\0', rq->len)) {
        reply_error(r, 400, "the SQL text contains a NUL byte");
        return;
    }
    const char *sql = body;
    size_t len = rq->len;
    const cJSON *params = NULL;
    size_t lead = 0;
    while (lead < len && (body[lead] == ' ' || body[lead] == '\t' || body[lead] == '\n' || body[lead] == '\r')) lead++;
    if (lead < len && body[lead] == '{') {
        if (json_parse(body, len, s->max_depth, &r->doc, err, sizeof err) != 0) {
            reply_error(r, 400, "body: %s", err);
            return;
        }
        const cJSON *q = cJSON_GetObjectItemCaseSensitive(r->doc, "sql");
        if (!cJSON_IsString(q)) {
            reply_error(r, 400, "body: expected SQL text or {\"sql\":\"...\",\"params\":[...]}");
            return;
        }
        sql = q->valuestring;
        len = strlen(sql);
        params = cJSON_GetObjectItemCaseSensitive(r->doc, "params");
    }
    sdb_check(&s->db, 0);
    struct sdb_stmt *e = sdb_prepare(&s->db, sql, len, err, sizeof err);
    if (!e) {
        reply_error(r, 400, "%s", err);
        return;
    }
    if (bind_json(e->ps, params, err, sizeof err) != 0) {
        reply_error(r, 400, "%s", err);
        return;
    }
    int n = sqlite3_column_count(e->ps);
    enum jsonsql_type *types = xcalloc((size_t)n + 1, sizeof *types);
    struct buf *b = &r->rep.body;
    buf_puts(b, "{\"columns\":[");
    for (int i = 0; i < n; i++) {
        if (i) buf_putc(b, ',');
        put_str(b, sqlite3_column_name(e->ps, i));
        types[i] = decl_type(sqlite3_column_decltype(e->ps, i));
    }
    buf_puts(b, "],\"rows\":[");
    struct jsonsql_stmt shape = {.ncols = n, .col_types = types};
    int64_t rows = 0;
    int rc, truncated = 0;
    sdb_deadline(&s->db, s->time_limit_ms);
    while ((rc = sqlite3_step(e->ps)) == SQLITE_ROW) {
        if (rows == s->max_rows || (int64_t)b->len > s->max_reply) { truncated = 1; break; }
        if (rows++) buf_putc(b, ',');
        jsonsql_write_row(b, &shape, e->ps);
    }
    sdb_deadline(&s->db, 0);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) snprintf(err, sizeof err, "%s", sqlite3_errmsg(s->db.rd));
    sqlite3_reset(e->ps);
    sqlite3_clear_bindings(e->ps);
    free(types);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        if (s->db.timed_out)
            reply_error(r, 400, "query stopped: it ran longer than the time limit of %lld ms",
                        (long long)s->time_limit_ms);
        else
            reply_error(r, 400, "%s", err);
        return;
    }
    buf_printf(b, "],\"truncated\":%s}", truncated ? "true" : "false");
    cache_headers(s, e->tables, e->ntables, &r->rep);
}

/* ---- GET /status /health /metrics, POST /sync/TABLE ------------------------------------------ */

static const char *portal_word(int st) { return st == 1 ? "reachable" : st == 0 ? "unreachable" : "unknown"; }

/* The outbox's counts in the form `render` gives them (status.h), read on the
 * meta connection (cache.db's _agent_outbox, without the authorizer). */
static void put_outbox(serve *s, struct buf *b, void (*render)(const struct replay_outbox_counts *, struct buf *))
{
    struct replay_outbox_counts c;
    char err[IA_ERRLEN];
    int ok = replay_outbox_counts(s->db.meta, &c, err, sizeof err) == 0;
    if (!ok) log_warn("serve: %s", err);
    render(ok ? &c : NULL, b);
}

static void handle_status(struct sreq *r)
{
    serve *s = r->s;
    struct buf *b = &r->rep.body;
    int64_t since, now = clock_wall_ms();
    int ps = portal_state(s, &since);
    sdb_check(&s->db, 0);
    buf_puts(b, "{\"tables\":[");
    struct status_row *rows;
    size_t n = status_rows(s->cfg, s->db.tables, s->db.ntables, ps == 0, now, &rows);
    for (size_t i = 0; i < n; i++) {
        const struct status_row *w = &rows[i];
        const struct replay_brief *t = w->b;
        if (i) buf_putc(b, ',');
        buf_puts(b, "{\"name\":");
        put_str(b, w->name);
        buf_printf(b, ",\"strategy\":\"%s\",\"cached\":%s,\"rows\":%lld,\"last_success\":", w->strategy,
                   jsonsql_catalog_ncolumns(s->db.cat, w->name) >= 0 ? "true" : "false", (long long)(t ? t->rows : 0));
        put_time(b, t ? t->last_success_ms : 0);
        buf_puts(b, ",\"last_attempt\":");
        put_time(b, t ? t->last_attempt_ms : 0);
        if (w->age_s >= 0) buf_printf(b, ",\"age_seconds\":%lld", (long long)w->age_s);
        else buf_puts(b, ",\"age_seconds\":null");
        buf_printf(b, ",\"ttl_seconds\":%lld,\"stale\":%s,\"forbidden\":%s,\"last_error\":",
                   (long long)(w->ttl_ms / 1000), w->stale ? "true" : "false", t && t->forbidden ? "true" : "false");
        put_str(b, t ? t->last_error : NULL);
        buf_putc(b, '}');
    }
    free(rows);
    /* The portal's state (and its detail) is the status_json hook's "portal" member. */
    buf_printf(b, "],\"serve\":{\"port\":%d,\"pending\":", s->port);
    int np = 0;
    for (struct sreq *p = s->pending; p; p = p->next) np++;
    buf_printf(b, "%d,\"requests\":%llu},", np, (unsigned long long)s->m.count);
    put_outbox(s, b, status_outbox_json);
    if (s->hooks.status_json) {
        struct buf extra = {0};
        s->hooks.status_json(s->hooks.ctx, &extra);
        if (extra.len) {
            buf_putc(b, ',');
            buf_append(b, extra.p, extra.len);
        }
        buf_free(&extra);
    }
    buf_putc(b, '}');
}

static void handle_health(struct sreq *r)
{
    int64_t since;
    int ps = portal_state(r->s, &since);
    struct buf *b = &r->rep.body;
    buf_printf(b, "{\"status\":\"ok\",\"portal\":\"%s\",\"since\":", portal_word(ps));
    put_time(b, ps == 0 ? since : 0);
    buf_putc(b, '}');
}

/* A Prometheus label value: backslash, quote and newline escaped. */
static void put_label(struct buf *b, const char *v)
{
    buf_putc(b, '"');
    for (const char *p = v; *p; p++) {
        if (*p == '\\' || *p == '"') { buf_putc(b, '\\'); buf_putc(b, *p); }
        else if (*p == '\n') buf_puts(b, "\\n");
        else buf_putc(b, *p);
    }
    buf_putc(b, '"');
}

static void handle_metrics(struct sreq *r)
{
    serve *s = r->s;
    struct buf *b = &r->rep.body;
    int64_t now = clock_wall_ms();
    r->rep.content_type = "text/plain; version=0.0.4; charset=utf-8";
    sdb_check(&s->db, 0);
    buf_puts(b, "# HELP iptv_agent_table_rows Rows in the cached table.\n# TYPE iptv_agent_table_rows gauge\n");
    for (size_t i = 0; i < s->db.ntables; i++) {
        buf_puts(b, "iptv_agent_table_rows{table=");
        put_label(b, s->db.tables[i].name);
        buf_printf(b, "} %lld\n", (long long)s->db.tables[i].rows);
    }
    buf_puts(b, "# HELP iptv_agent_table_seconds_since_success Seconds since the table's last successful pull.\n"
                "# TYPE iptv_agent_table_seconds_since_success gauge\n");
    for (size_t i = 0; i < s->db.ntables; i++) {
        const struct replay_brief *t = &s->db.tables[i];
        if (t->last_success_ms <= 0) continue;     /* never: no sample rather than a made-up one */
        buf_puts(b, "iptv_agent_table_seconds_since_success{table=");
        put_label(b, t->name);
        buf_printf(b, "} %.3f\n", (double)(now - t->last_success_ms) / 1000.0);
    }
    /* The stale rule of every report (status.h); the portal's state is the daemon's metric. */
    struct status_row *rows;
    size_t n = status_rows(s->cfg, s->db.tables, s->db.ntables, 0, now, &rows);
    buf_puts(b, "# HELP iptv_agent_table_stale 1 when the table was never pulled or is older than its ttl.\n"
                "# TYPE iptv_agent_table_stale gauge\n");
    for (size_t i = 0; i < n; i++) {
        buf_puts(b, "iptv_agent_table_stale{table=");
        put_label(b, rows[i].name);
        buf_printf(b, "} %d\n", rows[i].stale);
    }
    free(rows);
    put_outbox(s, b, status_outbox_metrics);
    buf_puts(b, "# HELP iptv_agent_requests_total Requests answered, by route and HTTP status.\n"
                "# TYPE iptv_agent_requests_total counter\n");
    for (int rt = 0; rt < R_N; rt++)
        for (int i = 0; i < s->m.ncodes[rt]; i++)
            buf_printf(b, "iptv_agent_requests_total{route=\"%s\",code=\"%d\"} %llu\n", route_names[rt],
                       s->m.codes[rt][i].code, (unsigned long long)s->m.codes[rt][i].n);
    buf_puts(b, "# HELP iptv_agent_request_duration_seconds Time from request to reply.\n"
                "# TYPE iptv_agent_request_duration_seconds histogram\n");
    uint64_t cum = 0;
    for (int i = 0; i < NBUCKETS; i++) {
        cum += s->m.hist[i];
        buf_printf(b, "iptv_agent_request_duration_seconds_bucket{le=\"%g\"} %llu\n", buckets[i],
                   (unsigned long long)cum);
    }
    buf_printf(b, "iptv_agent_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)s->m.count);
    buf_printf(b, "iptv_agent_request_duration_seconds_sum %.6f\n", s->m.sum);
    buf_printf(b, "iptv_agent_request_duration_seconds_count %llu\n", (unsigned long long)s->m.count);
    if (s->hooks.metrics) s->hooks.metrics(s->hooks.ctx, b);
}

static void handle_sync(struct sreq *r, const struct serve_request *rq)
{
    serve *s = r->s;
    if (!authorized(s, rq)) {
        reply_error(r, 401, "unauthorized: send Authorization: Bearer <token>");
        return;
    }
    if (!s->hooks.sync) {
        reply_error(r, 503, "this server cannot start pulls (no scheduler)");
        return;
    }
    char *table = evhttp_uridecode(rq->path + strlen("/sync/"), 0, NULL);
    char err[IA_ERRLEN] = "";
    if (!table || !*table || strchr(table, '/')) {
        reply_error(r, 404, "expected POST /sync/TABLE");
    } else if (s->hooks.sync(s->hooks.ctx, table, err, sizeof err) != 0) {
        reply_error(r, 404, "%s", err[0] ? err : "unknown table");
    } else {
        r->rep.status = 202;
        buf_puts(&r->rep.body, "{\"queued\":");
        put_str(&r->rep.body, table);
        buf_putc(&r->rep.body, '}');
    }
    free(table);
}

/* ---- GET /export/snapshot, /export/delta?base=ID ------------------------------------------- */

static void export_finish(struct sreq *r)
{
    unpark(r);
    int status = r->hook_status;
    if (status == 200 && r->rep.file_fd >= 0) {
        r->rep.status = 200;
        r->rep.content_type = "application/octet-stream";
    } else if (status == 304) {
        r->rep.status = 304;
    } else {
        reply_error(r, status >= 400 ? status : 500, "%s", r->hook_msg && *r->hook_msg ? r->hook_msg : "export failed");
    }
    finish(r);
}

static void export_done(void *arg, int status, const struct serve_file *f, const char *msg)
{
    struct sreq *r = arg;
    if (!r->s) {                                   /* orphaned by serve_free */
        if (f && f->fd >= 0) close(f->fd);
        sreq_free(r);
        return;
    }
    r->hook_status = status;
    r->hook_msg = msg ? xstrdup(msg) : NULL;
    if (f && f->fd >= 0) {
        if (status == 200) {
            r->rep.file_fd = f->fd;
            r->rep.file_size = f->size;
            snprintf(r->rep.export_id, sizeof r->rep.export_id, "%s", f->id ? f->id : "");
            snprintf(r->rep.export_base, sizeof r->rep.export_base, "%s", f->base_id ? f->base_id : "");
        } else {
            close(f->fd);
        }
    }
    r->hook_done = 1;
    if (!r->in_hook) export_finish(r);
}

/* The value of `name` in a query string, decoded; malloc'd, NULL when absent. */
static char *query_param(const char *query, const char *name)
{
    struct evkeyvalq kv;
    TAILQ_INIT(&kv);
    char *v = NULL;
    if (query && evhttp_parse_query_str(query, &kv) == 0) {
        const char *x = evhttp_find_header(&kv, name);
        if (x) v = xstrdup(x);
    }
    evhttp_clear_headers(&kv);
    return v;
}

/* 0 answered, 1 parked on the export hook. */
static int handle_export(struct sreq *r, const struct serve_request *rq)
{
    serve *s = r->s;
    int delta = !strcmp(rq->path, "/export/delta");
    if (!delta && strcmp(rq->path, "/export/snapshot") != 0) {
        reply_error(r, 404, "no such route: %.200s (GET /export/snapshot or /export/delta?base=ID)", rq->path);
    } else if (!authorized(s, rq)) {
        reply_error(r, 401, "unauthorized: send Authorization: Bearer <token>");
    } else if (!s->hooks.export_file) {
        reply_error(r, 404, "this server does not export");
    } else {
        char *base = delta ? query_param(rq->query, "base") : NULL;
        if (delta && (!base || !*base)) {
            reply_error(r, 400, "expected GET /export/delta?base=ID (the id of the snapshot the cache is at)");
        } else {
            park(r);
            r->in_hook = 1;
            int rc = s->hooks.export_file(s->hooks.ctx, base, export_done, r);
            r->in_hook = 0;
            free(base);
            if (rc != 0 && !r->hook_done) {
                r->hook_status = 503;
                r->hook_msg = xstrdup("export not started (the agent is stopping)");
                r->hook_done = 1;
            }
            if (!r->hook_done) return 1;
            export_finish(r);
            return 0;
        }
        free(base);
    }
    finish(r);
    return 0;
}

/* ---- routing -------------------------------------------------------------------------------- */

static enum route route_of(const char *path)
{
    if (!strcmp(path, "/api/jsonrpc/") || !strcmp(path, "/api/jsonrpc")) return R_JSONRPC;
    if (!strcmp(path, "/api/jsonsql/") || !strcmp(path, "/api/jsonsql")) return R_JSONSQL;
    if (!strcmp(path, "/sql")) return R_SQL;
    if (!strcmp(path, "/status")) return R_STATUS;
    if (!strcmp(path, "/health")) return R_HEALTH;
    if (!strcmp(path, "/metrics")) return R_METRICS;
    if (!strncmp(path, "/sync/", 6)) return R_SYNC;
    if (!strncmp(path, "/export/", 8)) return R_EXPORT;
    return R_OTHER;
}

/* 0 answered, 1 parked on a hook. */
static int dispatch(struct sreq *r, const struct serve_request *rq)
{
    const char *path = rq->path ? rq->path : "/";
    const char *method = rq->method ? rq->method : "GET";
    int post = strcmp(method, "POST") == 0, get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    r->route = route_of(path);
    /* The JSON-RPC routes answer an oversized body with a JSON-RPC error themselves. */
    if ((int64_t)rq->len > r->s->max_body && r->route != R_JSONRPC && r->route != R_JSONSQL) {
        reply_error(r, 413, "body of %zu bytes exceeds the limit of %lld", rq->len, (long long)r->s->max_body);
        finish(r);
        return 0;
    }
    switch (r->route) {
    case R_JSONRPC:
    case R_JSONSQL:
    case R_SQL:
    case R_SYNC:
        if (!post) {
            reply_error(r, 405, "%s takes POST", route_names[r->route]);
            break;
        }
        if (r->route == R_JSONSQL) return handle_jsonsql(r, rq);
        if (r->route == R_JSONRPC) return handle_login(r, rq);
        if (r->route == R_SQL) handle_sql(r, rq);
        else handle_sync(r, rq);
        break;
    case R_EXPORT:
        if (!get) {
            reply_error(r, 405, "%s takes GET", path);
            break;
        }
        return handle_export(r, rq);
    case R_STATUS:
    case R_HEALTH:
    case R_METRICS:
        if (!get) {
            reply_error(r, 405, "%s takes GET", route_names[r->route]);
            break;
        }
        if (r->route == R_HEALTH) handle_health(r);
        else if (!authorized(r->s, rq)) reply_error(r, 401, "unauthorized: send Authorization: Bearer <token>");
        else if (r->route == R_STATUS) handle_status(r);
        else handle_metrics(r);
        break;
    default:
        reply_error(r, 404, "no such route: %.200s", path);
    }
    finish(r);
    return 0;
}

int serve_handle(serve *s, const struct serve_request *rq, serve_reply_fn cb, void *arg)
{
    return dispatch(sreq_new(s, NULL, cb, arg), rq);
}

/* ---- evhttp glue ------------------------------------------------------------------------------ */

/* evhttp writes headers and body separately; without TCP_NODELAY Nagle holds
 * the body until the client's delayed ACK, ~40 ms per keep-alive request. */
static void set_nodelay(struct evhttp_request *req)
{
    struct evhttp_connection *c = evhttp_request_get_connection(req);
    struct bufferevent *bev = c ? evhttp_connection_get_bufferevent(c) : NULL;
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    int one = 1;
    if (fd >= 0) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static const char *method_name(enum evhttp_cmd_type cmd)
{
    switch (cmd) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    case EVHTTP_REQ_TRACE: return "TRACE";
    case EVHTTP_REQ_CONNECT: return "CONNECT";
    case EVHTTP_REQ_PATCH: return "PATCH";
    default: return "OTHER";
    }
}

static void on_request(struct evhttp_request *req, void *arg)
{
    serve *s = arg;
    set_nodelay(req);
    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
    const char *path = u ? evhttp_uri_get_path(u) : NULL;
    struct evkeyvalq *ih = evhttp_request_get_input_headers(req);
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    struct serve_request rq = {
        .method = method_name(evhttp_request_get_command(req)),
        .path = path && *path ? path : "/",
        .query = u ? evhttp_uri_get_query(u) : NULL,
        .authorization = evhttp_find_header(ih, "Authorization"),
        .session = evhttp_find_header(ih, "Iptvportal-Authorization"),
        .body = len ? (const char *)evbuffer_pullup(in, -1) : "",
        .len = len,
    };
    struct sreq *r = sreq_new(s, req, NULL, NULL);
    /* libevent reads a body only for POST, PUT and PATCH: another method's body
     * would be parsed as the next request on the connection. */
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    if (cmd != EVHTTP_REQ_POST && cmd != EVHTTP_REQ_PUT && cmd != EVHTTP_REQ_PATCH &&
        (evhttp_find_header(ih, "Content-Length") || evhttp_find_header(ih, "Transfer-Encoding")))
        r->close_conn = 1;
    dispatch(r, &rq);
}

/* ---- lifecycle ------------------------------------------------------------------------------- */

/* Bodies up to this size are read and refused by dispatch as JSON (see bind_listener). */
static int64_t body_hard_cap(int64_t max_body)
{
    int64_t cap = max_body * 4;
    return cap < max_body + (4 << 20) ? max_body + (4 << 20) : cap;
}

static int bind_listener(serve *s, const char *listen, char *err, size_t errlen)
{
    char host[256];
    int port;
    if (config_listen_split(listen, host, sizeof host, &port) != 0) {
        snprintf(err, errlen, "serve: listen address \"%s\": expected host:port or [v6addr]:port", listen);
        return -1;
    }
    s->http = evhttp_new(s->base);
    if (!s->http) {
        snprintf(err, errlen, "serve: cannot create the HTTP server");
        return -1;
    }
    /* libevent 2.1 answers its own limits with HTML pages it lets no one replace.
     * So every method reaches dispatch (JSON 405; 0xffff includes the bit libevent
     * gives a method it does not know), and libevent's body cap sits well above
     * max_body: dispatch answers a body over max_body with a JSON 413, and only a
     * body past the hard cap (memory per connection stays bounded) meets
     * libevent's page. */
    evhttp_set_max_body_size(s->http, (ev_ssize_t)body_hard_cap(s->max_body));
    evhttp_set_max_headers_size(s->http, 16 << 10);
    evhttp_set_allowed_methods(s->http, 0xffff);
    /* Read an oversized body to its end before answering 413: closing with unread
     * bytes would reset the connection and the client would never see the 413. */
    evhttp_set_flags(s->http, EVHTTP_SERVER_LINGERING_CLOSE);
    evhttp_set_gencb(s->http, on_request, s);
    struct evhttp_bound_socket *h = evhttp_bind_socket_with_handle(s->http, host, (ev_uint16_t)port);
    if (!h) {
        snprintf(err, errlen, "serve: cannot listen on %s: %s", listen,
                 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(evhttp_bound_socket_get_fd(h), (struct sockaddr *)&ss, &sl) == 0)
        s->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                           : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

serve *serve_new(struct event_base *base, const struct serve_opts *opts, const struct serve_hooks *hooks,
                 char *err, size_t errlen)
{
    if (!opts || !opts->cfg || !opts->db_path) {
        snprintf(err, errlen, "serve: configuration and cache.db path are required");
        return NULL;
    }
    const char *listen = opts->cfg->serve.listen ? opts->cfg->serve.listen : "127.0.0.1:8642";
    int has_token = opts->token && *opts->token;
    if (base && !has_token && !config_listen_is_loopback(listen)) {
        const char *env = opts->cfg->serve.token_env;
        if (env)
            snprintf(err, errlen, "serve: listen address %s is not loopback, which needs an API token: "
                                  "the environment variable %s (serve.token_env) is unset or empty", listen, env);
        else
            snprintf(err, errlen, "serve: listen address %s is not loopback, which needs an API token: "
                                  "set serve.token_env to the name of an environment variable holding it", listen);
        return NULL;
    }
    serve *s = xcalloc(1, sizeof *s);
    s->base = base;
    s->cfg = opts->cfg;
    if (hooks) s->hooks = *hooks;
    struct serve_auth_opts ao = {.mode = opts->cfg->serve.auth, .token = opts->token, .username = opts->username,
                                 .password = opts->password, .ttl_ms = opts->cfg->serve.session_ttl_ms,
                                 .clock_ms = opts->clock_ms, .clock_arg = opts->clock_arg};
    if (!(s->auth = serve_auth_new(&ao, err, errlen))) {
        free(s);
        return NULL;
    }
    s->page_rows = opts->cfg->serve.max_rows > 0 ? opts->cfg->serve.max_rows : DEFAULT_PAGE_ROWS;
    s->max_body = opts->max_body > 0 ? opts->max_body : DEFAULT_MAX_BODY;
    s->max_rows = opts->max_rows > 0 ? opts->max_rows : DEFAULT_MAX_ROWS;
    s->max_reply = opts->max_reply > 0 ? opts->max_reply : DEFAULT_MAX_REPLY;
    s->time_limit_ms = opts->time_limit_ms > 0 ? opts->time_limit_ms : DEFAULT_TIME_LIMIT_MS;
    s->max_depth = opts->max_depth > 0 ? opts->max_depth : DEFAULT_MAX_DEPTH;
    int max_sql = s->max_body < (1 << 30) ? (int)s->max_body : 1 << 30;
    if (sdb_open(&s->db, opts->db_path, max_sql, err, errlen) != 0) {
        serve_auth_free(s->auth);
        free(s);
        return NULL;
    }
    if (base && bind_listener(s, listen, err, errlen) != 0) {
        serve_free(s);
        return NULL;
    }
    if (base) log_info("serve: listening on %s (port %d)%s", listen, s->port, serve_auth_has_token(s->auth) ? ", token required" : "");
    return s;
}

int serve_port(const serve *s) { return s ? s->port : 0; }

void serve_refresh(serve *s) { sdb_check(&s->db, 1); }

void serve_free(serve *s)
{
    if (!s) return;
    /* Parked requests: evhttp_free releases their evhttp side; their hook's done
     * still arrives and then only frees the sreq. */
    while (s->pending) {
        struct sreq *r = s->pending;
        unpark(r);
        r->s = NULL;
        r->ev = NULL;
        r->cb = NULL;
        if (r->batch) sreq_free(r);            /* no hook answers a batch: its elements are orphaned too */
    }
    if (s->http) evhttp_free(s->http);
    sdb_close(&s->db);
    serve_auth_free(s->auth);
    free(s);
}
