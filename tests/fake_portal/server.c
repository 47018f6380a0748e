/* server.c — see server.h. */
#include "tests/fake_portal/server.h"
#include "agent/base/clock.h"
#include "tests/fake_portal/gen.h"
#include "tests/fake_portal/rpc.h"
#include "agent/base/buf.h"
#include "agent/base/json.h"
#include "agent/jsonsql/jsonsql.h"
#include "agent/base/mem.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>

#define MAX_QUEUE 4096
#define MAX_BODY (16 << 20)

enum fault { F_NONE, F_500, F_RESET, F_TRUNCATE, F_GARBAGE, F_EXPIRE, F_DROP, F_500_AFTER };

struct fake_server {
    struct event_base *base;
    struct evhttp *http;
    int port;
    sqlite3 *db;
    jsonsql_catalog *cat;
    char *username, *password;
    struct fake_faults f;
    enum fault queue[MAX_QUEUE]; /* forced outcomes, consumed first */
    int qhead, qlen;
    /* Forced outcomes for write statements only (insert/update/delete), so a
     * test can lose a write's answer whatever logins and reads come first. */
    enum fault wqueue[MAX_QUEUE];
    int wqhead, wqlen;
    uint64_t rng;
    struct portal_sessions sessions;
    struct {
        uint64_t requests, logins, selects, writes, rows_sent, faults, session_errors, forbidden;
        int64_t delayed, max_delayed;  /* replies waiting out --latency-ms now, and at most */
    } stats;
};

static uint64_t rng_next(fake_server *s)
{
    uint64_t z = (s->rng += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static double rng_unit(fake_server *s) { return (double)(rng_next(s) >> 11) / 9007199254740992.0; }

int fake_parse_session_error(const char *s, enum fake_session_error *out)
{
    if (strcmp(s, "jsonrpc") == 0) *out = FAKE_SESS_JSONRPC;
    else if (strcmp(s, "http401") == 0) *out = FAKE_SESS_HTTP401;
    else if (strcmp(s, "http403") == 0) *out = FAKE_SESS_HTTP403;
    else return -1;
    return 0;
}

static int parse_fault(const char *s, enum fault *out)
{
    static const struct { const char *name; enum fault f; } names[] = {
        {"ok", F_NONE}, {"500", F_500}, {"reset", F_RESET}, {"truncate", F_TRUNCATE},
        {"garbage", F_GARBAGE}, {"expire", F_EXPIRE}, {"drop", F_DROP}, {"500after", F_500_AFTER}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i].name) == 0) { *out = names[i].f; return 0; }
    return -1;
}

/* ---- replies ---------------------------------------------------------------- */

struct pending {                  /* a reply waiting for its latency to pass */
    fake_server *s;
    struct evhttp_request *req;
    int status;
    enum fault fault;
    struct buf body;
};

/* A reset waiting for the loop. If the client goes first, evhttp frees the
 * connection (and calls on_reset_gone), so the reset must not touch it. */
struct reset_pending {
    struct event *ev;
    struct evhttp_connection *conn;
};

static void on_reset_gone(struct evhttp_connection *conn, void *arg)
{
    struct reset_pending *rp = arg;
    event_free(rp->ev);
    free(rp);
}

static void reset_connection(evutil_socket_t fd, short what, void *arg)
{
    struct reset_pending *rp = arg;
    struct evhttp_connection *conn = rp->conn;
    evhttp_connection_set_closecb(conn, NULL, NULL);
    event_free(rp->ev);
    free(rp);
    struct bufferevent *bev = evhttp_connection_get_bufferevent(conn);
    evutil_socket_t sock = bev ? bufferevent_getfd(bev) : -1;
    if (sock >= 0) {
        struct linger lg = {1, 0};   /* close() now sends RST, not FIN */
        setsockopt(sock, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    evhttp_connection_free(conn);
}

/* Written: now drop the connection, outside evhttp's own callback. */
static void reset_after_flush(struct evhttp_connection *conn, void *arg)
{
    struct reset_pending *rp = xcalloc(1, sizeof *rp);
    rp->conn = conn;
    rp->ev = evtimer_new(arg, reset_connection, rp);
    evhttp_connection_set_closecb(conn, on_reset_gone, rp);
    struct timeval now = {0, 0};
    evtimer_add(rp->ev, &now);
}

static void send_now(struct pending *p)
{
    struct evhttp_request *req = p->req;
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
    evhttp_add_header(oh, "Content-Type", "application/json; charset=utf-8");
    struct evbuffer *out = evbuffer_new();
    switch (p->fault) {
    case F_DROP:
        /* The statement ran; now the answer is lost without a byte: what a
         * client must never take as "not done" (libcurl itself would resend
         * it on a reused connection). */
        reset_after_flush(evhttp_request_get_connection(req), p->s->base);
        evbuffer_free(out);
        buf_free(&p->body);
        free(p);
        return;
    case F_RESET:
        /* Headers and the first bytes, then RST. (A connection dropped before any
         * byte of the response would be retried by libcurl itself.) */
        evhttp_send_reply_start(req, 200, "OK");
        evbuffer_add(out, p->body.p, p->body.len < 16 ? p->body.len : 16);
        evhttp_send_reply_chunk_with_cb(req, out, reset_after_flush, p->s->base);
        evbuffer_free(out);
        buf_free(&p->body);
        free(p);
        return;
    case F_TRUNCATE: {
        char len[32];
        snprintf(len, sizeof len, "%zu", p->body.len);
        evhttp_add_header(oh, "Content-Length", len);
        evhttp_add_header(oh, "Connection", "close");
        evbuffer_add(out, p->body.p, p->body.len / 2);
        break;
    }
    case F_GARBAGE:
        evbuffer_add(out, p->body.p, p->body.len / 2);
        break;
    default:
        evbuffer_add(out, p->body.p, p->body.len);
    }
    evhttp_send_reply(req, p->status, p->status == 200 ? "OK" : "Error", out);
    evbuffer_free(out);
    buf_free(&p->body);
    free(p);
}

static void send_later(evutil_socket_t fd, short what, void *arg)
{
    struct pending *p = arg;
    p->s->stats.delayed--;
    send_now(p);
}

static void reply(fake_server *s, struct evhttp_request *req, int status, struct buf *body, enum fault f)
{
    struct pending *p = xcalloc(1, sizeof *p);
    p->s = s;
    p->req = req;
    p->status = status;
    p->fault = f;
    p->body = *body;
    *body = (struct buf){0};
    if (s->f.latency_ms > 0 && strncmp(evhttp_request_get_uri(req), "/_fake/", 7) != 0) {
        struct timeval tv = {s->f.latency_ms / 1000, (s->f.latency_ms % 1000) * 1000};
        /* Requests waiting here at once = the client's requests in flight at once. */
        if (++s->stats.delayed > s->stats.max_delayed) s->stats.max_delayed = s->stats.delayed;
        event_base_once(s->base, -1, EV_TIMEOUT, send_later, p, &tv);
    } else {
        send_now(p);
    }
}

/* ---- faults and sessions ------------------------------------------------------ */

static enum fault roll_fault(fake_server *s)
{
    if (s->qlen > 0) {
        enum fault f = s->queue[s->qhead];
        s->qhead = (s->qhead + 1) % MAX_QUEUE;
        s->qlen--;
        return f;
    }
    if (s->f.error_rate > 0 && rng_unit(s) < s->f.error_rate) return F_500;
    if (s->f.reset_rate > 0 && rng_unit(s) < s->f.reset_rate) return F_RESET;
    if (s->f.truncate_rate > 0 && rng_unit(s) < s->f.truncate_rate) return F_TRUNCATE;
    if (s->f.garbage_rate > 0 && rng_unit(s) < s->f.garbage_rate) return F_GARBAGE;
    return F_NONE;
}

/* The next forced outcome for a write statement (F_NONE: none queued). */
static enum fault roll_write_fault(fake_server *s, const cJSON *doc)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(doc, "method");
    if (s->wqlen == 0 || !cJSON_IsString(m) ||
        (strcmp(m->valuestring, "insert") && strcmp(m->valuestring, "update") && strcmp(m->valuestring, "delete")))
        return F_NONE;
    enum fault f = s->wqueue[s->wqhead];
    s->wqhead = (s->wqhead + 1) % MAX_QUEUE;
    s->wqlen--;
    return f;
}

static const char *new_session(fake_server *s)
{
    uint64_t a = rng_next(s), b = rng_next(s);
    return portal_session_new(&s->sessions, a, b, s->f.session_ttl_ms);
}

/* Does a statement name a forbidden table anywhere (from, join, into, table)? */
static const char *names_forbidden(fake_server *s, const cJSON *node)
{
    if (!node) return NULL;
    if (node->string && cJSON_IsString(node) &&
        (!strcmp(node->string, "from") || !strcmp(node->string, "table") ||
         !strcmp(node->string, "join") || !strcmp(node->string, "into")))
        for (int i = 0; i < s->f.nforbid; i++)
            if (strcmp(node->valuestring, s->f.forbid[i]) == 0) return s->f.forbid[i];
    for (const cJSON *c = node->child; c; c = c->next) {
        const char *t = names_forbidden(s, c);
        if (t) return t;
    }
    return NULL;
}

/* ---- /api/ ---------------------------------------------------------------------- */

static int read_body(struct evhttp_request *req, struct buf *b)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    if (n > MAX_BODY) return -1;
    buf_reserve(b, n);
    evbuffer_remove(in, b->p, n);
    b->len = n;
    b->p[n] = '\0';
    return 0;
}

static void handle_login(fake_server *s, const cJSON *doc, struct buf *out)
{
    if (!portal_login_check(doc, s->username, s->password, out)) return;
    s->stats.logins++;
    portal_login_ok(out, doc, new_session(s));
}

static int cap_limit(fake_server *s, cJSON *params)
{
    if (s->f.page_cap <= 0 || !cJSON_IsObject(params)) return 0;
    cJSON *lim = cJSON_GetObjectItemCaseSensitive(params, "limit");
    int64_t v;
    if (lim && json_int64(lim, &v) && v <= s->f.page_cap) return 0;
    cJSON *n = cJSON_CreateNumber((double)s->f.page_cap);
    char lit[32];
    snprintf(lit, sizeof lit, "%lld", (long long)s->f.page_cap);
    n->valuestring = xstrdup(lit);
    if (lim) cJSON_ReplaceItemInObjectCaseSensitive(params, "limit", n);
    else cJSON_AddItemToObject(params, "limit", n);
    return 1;
}

/* Run one JSONSQL statement; fills out with a JSON-RPC result or error. */
static int handle_query(fake_server *s, const cJSON *doc, struct buf *out)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(doc, "id");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(doc, "method");
    cJSON *params = cJSON_GetObjectItemCaseSensitive(doc, "params");
    if (!cJSON_IsString(m)) { portal_rpc_error(out, id, -32600, "Invalid Request: method missing"); return 200; }
    const char *method = m->valuestring;
    if (strcmp(method, "select") && strcmp(method, "insert") && strcmp(method, "update") &&
        strcmp(method, "delete")) {
        portal_rpc_error(out, id, -32601, "Method not found");
        return 200;
    }
    const char *forbidden = names_forbidden(s, params);
    if (forbidden) {
        s->stats.forbidden++;
        buf_printf(out, "{\"error\":\"permission denied for table %s\"}", forbidden);
        return 403;
    }
    if (strcmp(method, "select") == 0) cap_limit(s, params);

    char err[512];
    struct jsonsql_stmt st = {0};
    if (jsonsql_compile(s->cat, method, params, NULL, &st, err, sizeof err) != 0) {
        portal_rpc_error(out, id, -32602, err);
        return 200;
    }
    sqlite3_stmt *ps = NULL;
    int rc = sqlite3_prepare_v2(s->db, st.sql, -1, &ps, NULL);
    if (rc == SQLITE_OK) rc = jsonsql_bind(&st, ps);
    if (rc != SQLITE_OK) {
        snprintf(err, sizeof err, "query failed: %s", sqlite3_errmsg(s->db));
        portal_rpc_error(out, id, -32603, err);
        sqlite3_finalize(ps);
        jsonsql_stmt_free(&st);
        return 200;
    }
    buf_puts(out, "{\"jsonrpc\":\"2.0\",\"id\":");
    portal_rpc_id(out, id);
    buf_puts(out, ",\"result\":[");
    uint64_t rows = 0;
    while ((rc = sqlite3_step(ps)) == SQLITE_ROW) {
        if (rows++) buf_putc(out, ',');
        jsonsql_write_row(out, &st, ps);
    }
    int count = s->f.write_count && st.kind != JSQL_SELECT && !cJSON_GetObjectItemCaseSensitive(params, "returning");
    if (rc == SQLITE_DONE && count) {
        out->len = 0;
        buf_puts(out, "{\"jsonrpc\":\"2.0\",\"id\":");
        portal_rpc_id(out, id);
        buf_printf(out, ",\"result\":%d", sqlite3_changes(s->db));
    }
    if (rc != SQLITE_DONE) {
        snprintf(err, sizeof err, "query failed: %s", sqlite3_errmsg(s->db));
        out->len = 0;
        portal_rpc_error(out, id, -32603, err);
    } else {
        buf_puts(out, count ? "}" : "]}");
        s->stats.rows_sent += rows;
        if (st.kind == JSQL_SELECT) s->stats.selects++; else s->stats.writes++;
    }
    sqlite3_finalize(ps);
    jsonsql_stmt_free(&st);
    return 200;
}

static void session_refusal(fake_server *s, const cJSON *id, struct buf *out, int *status)
{
    s->stats.session_errors++;
    switch (s->f.session_error) {
    case FAKE_SESS_JSONRPC:
        portal_rpc_error(out, id, -32000, "Session expired or invalid, please authorize");
        *status = 200;
        break;
    case FAKE_SESS_HTTP401:
        buf_puts(out, "{\"error\":\"Unauthorized: session expired\"}");
        *status = 401;
        break;
    case FAKE_SESS_HTTP403:
        buf_puts(out, "{\"error\":\"Forbidden: invalid session\"}");
        *status = 403;
        break;
    }
}

static void on_api(struct evhttp_request *req, void *arg)
{
    fake_server *s = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    int is_rpc = strcmp(path, "/api/jsonrpc/") == 0 || strcmp(path, "/api/jsonrpc") == 0;
    int is_sql = strcmp(path, "/api/jsonsql/") == 0 || strcmp(path, "/api/jsonsql") == 0;
    struct buf out = {0}, body = {0};
    s->stats.requests++;
    if (!is_rpc && !is_sql) {
        buf_puts(&out, "{\"error\":\"not found\"}");
        reply(s, req, 404, &out, F_NONE);
        return;
    }
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        buf_puts(&out, "{\"error\":\"POST only\"}");
        reply(s, req, 405, &out, F_NONE);
        return;
    }
    enum fault f = roll_fault(s);
    if (f != F_NONE) s->stats.faults++;
    if (f == F_EXPIRE) { s->sessions.n = 0; f = F_NONE; }
    if (f == F_500) {
        buf_puts(&out, "<html><body>500 Internal Server Error</body></html>");
        reply(s, req, 500, &out, F_NONE);
        return;
    }
    int status = 200;
    cJSON *doc = NULL;
    char perr[300];
    if (read_body(req, &body) != 0) {
        portal_rpc_error(&out, NULL, -32700, "Parse error: request body too large");
    } else if (json_parse(body.p, body.len, 64, &doc, perr, sizeof perr) != 0) {
        char msg[400];
        snprintf(msg, sizeof msg, "Parse error: %s", perr);
        portal_rpc_error(&out, NULL, -32700, msg);
    } else if (is_rpc) {
        handle_login(s, doc, &out);
    } else if (!portal_session_valid(&s->sessions, req)) {
        session_refusal(s, cJSON_GetObjectItemCaseSensitive(doc, "id"), &out, &status);
    } else {
        enum fault wf = roll_write_fault(s, doc);
        if (wf != F_NONE) {
            s->stats.faults++;
            f = wf;
        }
        if (f == F_500) {            /* refused before it ran */
            buf_puts(&out, "<html><body>500 Internal Server Error</body></html>");
            status = 500;
            f = F_NONE;
        } else {
            status = handle_query(s, doc, &out);
        }
    }
    cJSON_Delete(doc);
    buf_free(&body);
    if (f == F_500_AFTER) {          /* the statement ran, the answer says 500 */
        out.len = 0;
        buf_puts(&out, "<html><body>500 Internal Server Error</body></html>");
        status = 500;
        f = F_NONE;
    }
    reply(s, req, status, &out, f);
}

/* ---- /_fake/ admin ------------------------------------------------------------- */

static double num_or(const cJSON *o, const char *k, double dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static void set_forbid(struct fake_faults *f, char *const *names, int n)
{
    for (int i = 0; i < f->nforbid; i++) free(f->forbid[i]);
    free(f->forbid);
    f->forbid = n ? xcalloc((size_t)n, sizeof *f->forbid) : NULL;
    for (int i = 0; i < n; i++) f->forbid[i] = xstrdup(names[i]);
    f->nforbid = n;
}

static int admin_faults(fake_server *s, const cJSON *o, struct buf *out)
{
    struct fake_faults *f = &s->f;
    f->latency_ms = (int64_t)num_or(o, "latency_ms", (double)f->latency_ms);
    f->error_rate = num_or(o, "error_rate", f->error_rate);
    f->reset_rate = num_or(o, "reset_rate", f->reset_rate);
    f->truncate_rate = num_or(o, "truncate_rate", f->truncate_rate);
    f->garbage_rate = num_or(o, "garbage_rate", f->garbage_rate);
    f->session_ttl_ms = (int64_t)num_or(o, "session_ttl_ms", (double)f->session_ttl_ms);
    f->page_cap = (int64_t)num_or(o, "page_cap", (double)f->page_cap);
    const cJSON *wr = cJSON_GetObjectItemCaseSensitive(o, "write_result");
    if (wr && (!cJSON_IsString(wr) || (strcmp(wr->valuestring, "count") && strcmp(wr->valuestring, "rows")))) {
        buf_puts(out, "{\"error\":\"write_result: count|rows\"}");
        return 400;
    }
    if (wr) f->write_count = strcmp(wr->valuestring, "count") == 0;
    const cJSON *se = cJSON_GetObjectItemCaseSensitive(o, "session_error");
    if (cJSON_IsString(se) && fake_parse_session_error(se->valuestring, &f->session_error) != 0) {
        buf_puts(out, "{\"error\":\"session_error: jsonrpc|http401|http403\"}");
        return 400;
    }
    const cJSON *fb = cJSON_GetObjectItemCaseSensitive(o, "forbid");
    if (cJSON_IsArray(fb)) {
        int n = cJSON_GetArraySize(fb);
        char **names = xcalloc((size_t)n + 1, sizeof *names);
        int k = 0;
        for (const cJSON *c = fb->child; c; c = c->next)
            if (cJSON_IsString(c)) names[k++] = c->valuestring;
        set_forbid(f, names, k);
        free(names);
    }
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(o, "queue");
    for (const cJSON *c = q ? q->child : NULL; c; c = c->next) {
        enum fault ft;
        if (!cJSON_IsString(c) || parse_fault(c->valuestring, &ft) != 0) {
            buf_puts(out, "{\"error\":\"queue items: ok|500|500after|reset|drop|truncate|garbage|expire\"}");
            return 400;
        }
        if (s->qlen == MAX_QUEUE) {      /* never drop an outcome a test counts on */
            buf_printf(out, "{\"error\":\"queue holds at most %d outcomes\"}", MAX_QUEUE);
            return 400;
        }
        s->queue[(s->qhead + s->qlen++) % MAX_QUEUE] = ft;
    }
    const cJSON *wq = cJSON_GetObjectItemCaseSensitive(o, "write_queue");
    for (const cJSON *c = wq ? wq->child : NULL; c; c = c->next) {
        enum fault ft;
        if (!cJSON_IsString(c) || parse_fault(c->valuestring, &ft) != 0 || ft == F_EXPIRE) {
            buf_puts(out, "{\"error\":\"write_queue items: ok|500|500after|reset|drop|truncate|garbage\"}");
            return 400;
        }
        if (s->wqlen == MAX_QUEUE) {
            buf_printf(out, "{\"error\":\"write_queue holds at most %d outcomes\"}", MAX_QUEUE);
            return 400;
        }
        s->wqueue[(s->wqhead + s->wqlen++) % MAX_QUEUE] = ft;
    }
    buf_puts(out, "{\"ok\":true}");
    return 200;
}

static int admin_mutate(fake_server *s, const cJSON *o, struct buf *out)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "table");
    struct fakegen_mutation m = {
        .table = cJSON_IsString(t) ? t->valuestring : NULL,
        .updates = (int64_t)num_or(o, "updates", 0),
        .inserts = (int64_t)num_or(o, "inserts", 0),
        .deletes = (int64_t)num_or(o, "deletes", 0),
        .same_ts = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "same_ts")),
        .seed = (uint64_t)num_or(o, "seed", 1),
    };
    struct fakegen_mutate_result r = {0};
    char err[512];
    if (fakegen_mutate(s->db, &m, &r, err, sizeof err) != 0) {
        buf_puts(out, "{\"error\":");
        json_write_string(out, err, strlen(err));
        buf_putc(out, '}');
        return 400;
    }
    buf_printf(out, "{\"updated\":%lld,\"inserted\":%lld,\"deleted\":%lld,\"ts\":",
               (long long)r.updated, (long long)r.inserted, (long long)r.deleted);
    json_write_string(out, r.ts, strlen(r.ts));
    buf_putc(out, '}');
    return 200;
}

static void on_admin(struct evhttp_request *req, void *arg)
{
    fake_server *s = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    struct buf out = {0}, body = {0};
    int status = 200;
    cJSON *doc = NULL;
    char perr[300];
    if (strcmp(path, "/_fake/stats") == 0) {
        buf_printf(&out, "{\"requests\":%llu,\"logins\":%llu,\"selects\":%llu,\"writes\":%llu,"
                         "\"rows_sent\":%llu,\"faults\":%llu,\"session_errors\":%llu,\"forbidden\":%llu,"
                         "\"sessions\":%d,\"max_concurrent\":%lld}",
                   (unsigned long long)s->stats.requests, (unsigned long long)s->stats.logins,
                   (unsigned long long)s->stats.selects, (unsigned long long)s->stats.writes,
                   (unsigned long long)s->stats.rows_sent, (unsigned long long)s->stats.faults,
                   (unsigned long long)s->stats.session_errors, (unsigned long long)s->stats.forbidden,
                   s->sessions.n, (long long)s->stats.max_delayed);
    } else if (strcmp(path, "/_fake/expire") == 0) {
        s->sessions.n = 0;
        buf_puts(&out, "{\"ok\":true}");
    } else if (read_body(req, &body) != 0 ||
               json_parse(body.p ? body.p : "{}", body.p ? body.len : 2, 16, &doc, perr, sizeof perr) != 0 ||
               !cJSON_IsObject(doc)) {
        buf_puts(&out, "{\"error\":\"body must be a JSON object\"}");
        status = 400;
    } else if (strcmp(path, "/_fake/faults") == 0) {
        status = admin_faults(s, doc, &out);
    } else if (strcmp(path, "/_fake/mutate") == 0) {
        status = admin_mutate(s, doc, &out);
    } else {
        buf_puts(&out, "{\"error\":\"not found\"}");
        status = 404;
    }
    cJSON_Delete(doc);
    buf_free(&body);
    reply(s, req, status, &out, F_NONE);
}

static void on_any(struct evhttp_request *req, void *arg)
{
    portal_set_nodelay(req);
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    if (path && strncmp(path, "/_fake/", 7) == 0) on_admin(req, arg);
    else on_api(req, arg);
}

fake_server *fake_server_new(struct event_base *base, sqlite3 *db, int port,
                             const struct fake_server_opts *opts, char *err, size_t errlen)
{
    fake_server *s = xcalloc(1, sizeof *s);
    s->base = base;
    s->db = db;
    s->username = xstrdup(opts->username);
    s->password = xstrdup(opts->password);
    s->rng = opts->seed ? opts->seed : 1;
    s->f = opts->faults;
    s->f.forbid = NULL;
    s->f.nforbid = 0;
    set_forbid(&s->f, opts->faults.forbid, opts->faults.nforbid);
    s->cat = jsonsql_catalog_new();
    if (jsonsql_catalog_from_db(s->cat, db, "_fake_", err, errlen) != 0 ||
        jsonsql_register_functions(db) != SQLITE_OK) {
        fake_server_free(s);
        return NULL;
    }
    s->http = evhttp_new(base);
    evhttp_set_max_body_size(s->http, MAX_BODY + 1);
    evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
    evhttp_set_gencb(s->http, on_any, s);
    if (portal_listen(s->http, port, &s->port, err, errlen) != 0) {
        fake_server_free(s);
        return NULL;
    }
    return s;
}

int fake_server_port(const fake_server *s) { return s->port; }

void fake_server_free(fake_server *s)
{
    if (!s) return;
    if (s->http) evhttp_free(s->http);
    jsonsql_catalog_free(s->cat);
    set_forbid(&s->f, NULL, 0);
    free(s->username);
    free(s->password);
    free(s);
}
