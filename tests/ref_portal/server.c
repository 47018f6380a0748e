/* server.c — see server.h. */
#include "tests/ref_portal/server.h"
#include "tests/fake_portal/rpc.h"
#include "agent/base/json.h"
#include "agent/base/mem.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BODY (16 << 20)

struct ref_server {
    struct evhttp *http;
    int port;
    PGconn *pg;
    const struct ref_catalog *cat;
    char *username, *password;
    int64_t page_cap, session_ttl_ms;
    uint64_t rng;
    struct portal_sessions sessions;
};

static uint64_t rng_next(ref_server *s)
{
    uint64_t z = (s->rng += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* ---- values ------------------------------------------------------------------- */

void ref_write_value(struct buf *b, unsigned oid, const char *text, int len, int isnull)
{
    if (isnull) { buf_puts(b, "null"); return; }
    switch (oid) {
    case 16: buf_puts(b, text[0] == 't' ? "true" : "false"); return;
    case 20: case 21: case 23: buf_append(b, text, (size_t)len); return;   /* exact, never via double */
    case 700: case 701: {
        double d = strtod(text, NULL);
        if (isnan(d) || isinf(d)) buf_puts(b, "null");
        else json_write_double(b, d);
        return;
    }
    case 1700:
        if (!strcmp(text, "NaN") || strstr(text, "Infinity")) buf_puts(b, "null");
        else buf_append(b, text, (size_t)len);
        return;
    case 114: case 3802: buf_append(b, text, (size_t)len); return;
    default: json_write_string(b, text, (size_t)len); return;
    }
}

/* ---- JSON-RPC -------------------------------------------------------------------- */

static void handle_login(ref_server *s, const cJSON *doc, struct buf *out)
{
    if (!portal_login_check(doc, s->username, s->password, out)) return;
    uint64_t a = rng_next(s), b = rng_next(s);
    portal_login_ok(out, doc, portal_session_new(&s->sessions, a, b, s->session_ttl_ms));
}

/* Run one statement; out gets its JSON-RPC answer. */
static void handle_query(ref_server *s, const cJSON *doc, struct buf *out)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(doc, "id");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(doc, "method");
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(doc, "params");
    char err[512];
    if (!cJSON_IsString(m)) { portal_rpc_error(out, id, -32600, "Invalid Request: method missing"); return; }
    int select = !strcmp(m->valuestring, "select");
    if (!select && strcmp(m->valuestring, "insert") && strcmp(m->valuestring, "update") &&
        strcmp(m->valuestring, "delete")) {
        snprintf(err, sizeof err, "the reference portal does not support method \"%.64s\"", m->valuestring);
        portal_rpc_error(out, id, -32601, err);
        return;
    }
    struct buf sql = {0};
    if ((select ? ref_translate_select(s->cat, params, s->page_cap, &sql, err, sizeof err)
                : ref_translate_write(s->cat, m->valuestring, params, &sql, err, sizeof err)) != 0) {
        portal_rpc_error(out, id, -32602, err);
        buf_free(&sql);
        return;
    }
    /* No parameters: one statement only, text results. */
    PGresult *r = PQexecParams(s->pg, sql.p, 0, NULL, NULL, NULL, NULL, 0);
    if (PQresultStatus(r) == PGRES_COMMAND_OK) {
        /* A write without returning: the affected row count, as PostgreSQL reports it. */
        buf_puts(out, "{\"jsonrpc\":\"2.0\",\"id\":");
        portal_rpc_id(out, id);
        buf_printf(out, ",\"result\":%s}", PQcmdTuples(r)[0] ? PQcmdTuples(r) : "0");
    } else if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        const char *msg = PQresultErrorMessage(r);
        snprintf(err, sizeof err, "query failed: %.*s", (int)strcspn(msg, "\n"), msg);
        portal_rpc_error(out, id, -32603, err);
    } else {
        int rows = PQntuples(r), cols = PQnfields(r);
        buf_puts(out, "{\"jsonrpc\":\"2.0\",\"id\":");
        portal_rpc_id(out, id);
        buf_puts(out, ",\"result\":[");
        for (int i = 0; i < rows; i++) {
            buf_puts(out, i ? ",[" : "[");
            for (int c = 0; c < cols; c++) {
                if (c) buf_putc(out, ',');
                ref_write_value(out, PQftype(r, c), PQgetvalue(r, i, c), PQgetlength(r, i, c),
                                PQgetisnull(r, i, c));
            }
            buf_putc(out, ']');
        }
        buf_puts(out, "]}");
    }
    PQclear(r);
    buf_free(&sql);
}

/* ---- HTTP ------------------------------------------------------------------------ */

static void reply(struct evhttp_request *req, int status, struct buf *body)
{
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
    evhttp_add_header(oh, "Content-Type", "application/json; charset=utf-8");
    struct evbuffer *out = evbuffer_new();
    evbuffer_add(out, body->p ? body->p : "", body->len);
    evhttp_send_reply(req, status, status == 200 ? "OK" : "Error", out);
    evbuffer_free(out);
    buf_free(body);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    ref_server *s = arg;
    portal_set_nodelay(req);
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    int is_rpc = path && (!strcmp(path, "/api/jsonrpc/") || !strcmp(path, "/api/jsonrpc"));
    int is_sql = path && (!strcmp(path, "/api/jsonsql/") || !strcmp(path, "/api/jsonsql"));
    struct buf out = {0};
    if (!is_rpc && !is_sql) {
        buf_puts(&out, "{\"error\":\"not found\"}");
        reply(req, 404, &out);
        return;
    }
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        buf_puts(&out, "{\"error\":\"POST only\"}");
        reply(req, 405, &out);
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    char *body = xmalloc(n + 1);
    evbuffer_remove(in, body, n);
    body[n] = '\0';
    cJSON *doc = NULL;
    char perr[300];
    int status = 200;
    if (json_parse(body, n, 64, &doc, perr, sizeof perr) != 0) {
        char msg[400];
        snprintf(msg, sizeof msg, "Parse error: %s", perr);
        portal_rpc_error(&out, NULL, -32700, msg);
    } else if (is_sql && !portal_session_valid(&s->sessions, req)) {
        buf_puts(&out, "{\"error\":\"Unauthorized: session expired\"}");
        status = 401;
    } else if (cJSON_IsArray(doc)) {         /* a batch: one answer per call, in order */
        buf_putc(&out, '[');
        for (const cJSON *c = doc->child; c; c = c->next) {
            if (c != doc->child) buf_putc(&out, ',');
            if (is_rpc) handle_login(s, c, &out);
            else handle_query(s, c, &out);
        }
        buf_putc(&out, ']');
    } else if (is_rpc) {
        handle_login(s, doc, &out);
    } else {
        handle_query(s, doc, &out);
    }
    cJSON_Delete(doc);
    free(body);
    reply(req, status, &out);
}

ref_server *ref_server_new(struct event_base *base, PGconn *pg, const struct ref_catalog *cat, int port,
                           const struct ref_server_opts *opts, char *err, size_t errlen)
{
    ref_server *s = xcalloc(1, sizeof *s);
    s->pg = pg;
    s->cat = cat;
    s->username = xstrdup(opts->username);
    s->password = xstrdup(opts->password);
    s->rng = opts->seed ? opts->seed : 1;
    s->page_cap = opts->page_cap;
    s->session_ttl_ms = opts->session_ttl_ms;
    s->http = evhttp_new(base);
    evhttp_set_max_body_size(s->http, MAX_BODY);
    evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
    evhttp_set_gencb(s->http, on_request, s);
    if (portal_listen(s->http, port, &s->port, err, errlen) != 0) {
        ref_server_free(s);
        return NULL;
    }
    return s;
}

int ref_server_port(const ref_server *s) { return s->port; }

void ref_server_free(ref_server *s)
{
    if (!s) return;
    if (s->http) evhttp_free(s->http);
    free(s->username);
    free(s->password);
    free(s);
}
