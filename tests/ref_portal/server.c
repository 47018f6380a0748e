/* server.c — see server.h. */
#include "tests/ref_portal/server.h"
#include "agent/base/clock.h"
#include "agent/base/json.h"
#include "agent/base/mem.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#define MAX_SESSIONS 256
#define MAX_BODY (16 << 20)

struct session {
    char id[33];
    int64_t expires_ms;          /* 0: never */
};

struct ref_server {
    struct evhttp *http;
    int port;
    PGconn *pg;
    const struct ref_catalog *cat;
    char *username, *password;
    int64_t page_cap, session_ttl_ms;
    uint64_t rng;
    struct session sessions[MAX_SESSIONS];
    int nsessions;
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

static void write_id(struct buf *b, const cJSON *id)
{
    int64_t v;
    if (id && json_int64(id, &v)) buf_printf(b, "%lld", (long long)v);
    else if (cJSON_IsString(id)) json_write_string(b, id->valuestring, strlen(id->valuestring));
    else buf_puts(b, "null");
}

static void rpc_error(struct buf *b, const cJSON *id, int code, const char *msg)
{
    buf_puts(b, "{\"jsonrpc\":\"2.0\",\"id\":");
    write_id(b, id);
    buf_printf(b, ",\"error\":{\"code\":%d,\"message\":", code);
    json_write_string(b, msg, strlen(msg));
    buf_puts(b, "}}");
}

static const char *new_session(ref_server *s)
{
    if (s->nsessions == MAX_SESSIONS) {          /* forget the oldest */
        memmove(s->sessions, s->sessions + 1, sizeof s->sessions[0] * (MAX_SESSIONS - 1));
        s->nsessions--;
    }
    struct session *ss = &s->sessions[s->nsessions++];
    snprintf(ss->id, sizeof ss->id, "%016llx%016llx", (unsigned long long)rng_next(s),
             (unsigned long long)rng_next(s));
    ss->expires_ms = s->session_ttl_ms > 0 ? clock_mono_ms() + s->session_ttl_ms : 0;
    return ss->id;
}

static int session_valid(ref_server *s, struct evhttp_request *req)
{
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Iptvportal-Authorization");
    if (!h || strncmp(h, "sessionid=", 10) != 0) return 0;
    h += 10;
    int64_t now = clock_mono_ms();
    for (int i = 0; i < s->nsessions; i++)
        if (strcmp(s->sessions[i].id, h) == 0)
            return s->sessions[i].expires_ms == 0 || s->sessions[i].expires_ms > now;
    return 0;
}

static void handle_login(ref_server *s, const cJSON *doc, struct buf *out)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(doc, "id");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(doc, "method");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(doc, "params");
    if (!cJSON_IsString(m) || strcmp(m->valuestring, "authorize_user") != 0) {
        rpc_error(out, id, -32601, "Method not found");
        return;
    }
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(p, "username");
    const cJSON *pw = cJSON_GetObjectItemCaseSensitive(p, "password");
    if (!cJSON_IsString(u) || !cJSON_IsString(pw) || strcmp(u->valuestring, s->username) != 0 ||
        strcmp(pw->valuestring, s->password) != 0) {
        rpc_error(out, id, -32001, "Invalid username or password");
        return;
    }
    buf_puts(out, "{\"jsonrpc\":\"2.0\",\"id\":");
    write_id(out, id);
    buf_printf(out, ",\"result\":{\"session_id\":\"%s\"}}", new_session(s));
}

/* Run one statement; out gets its JSON-RPC answer. */
static void handle_query(ref_server *s, const cJSON *doc, struct buf *out)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(doc, "id");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(doc, "method");
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(doc, "params");
    char err[512];
    if (!cJSON_IsString(m)) { rpc_error(out, id, -32600, "Invalid Request: method missing"); return; }
    if (strcmp(m->valuestring, "select") != 0) {
        snprintf(err, sizeof err, "the reference portal does not support method \"%.64s\" (select only)",
                 m->valuestring);
        rpc_error(out, id, -32601, err);
        return;
    }
    struct buf sql = {0};
    if (ref_translate_select(s->cat, params, s->page_cap, &sql, err, sizeof err) != 0) {
        rpc_error(out, id, -32602, err);
        buf_free(&sql);
        return;
    }
    /* No parameters: one statement only, text results. */
    PGresult *r = PQexecParams(s->pg, sql.p, 0, NULL, NULL, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        const char *msg = PQresultErrorMessage(r);
        snprintf(err, sizeof err, "query failed: %.*s", (int)strcspn(msg, "\n"), msg);
        rpc_error(out, id, -32603, err);
    } else {
        int rows = PQntuples(r), cols = PQnfields(r);
        buf_puts(out, "{\"jsonrpc\":\"2.0\",\"id\":");
        write_id(out, id);
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

/* evhttp writes headers and body separately; without TCP_NODELAY Nagle holds
 * the body until the client's delayed ACK, ~40 ms per keep-alive request. */
static void set_nodelay(struct evhttp_request *req)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evhttp_request_get_connection(req));
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    int one = 1;
    if (fd >= 0) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    ref_server *s = arg;
    set_nodelay(req);
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
        rpc_error(&out, NULL, -32700, msg);
    } else if (is_sql && !session_valid(s, req)) {
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
    struct evhttp_bound_socket *h = evhttp_bind_socket_with_handle(s->http, "127.0.0.1", (ev_uint16_t)port);
    if (!h) {
        snprintf(err, errlen, "cannot listen on 127.0.0.1:%d", port);
        ref_server_free(s);
        return NULL;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(evhttp_bound_socket_get_fd(h), (struct sockaddr *)&ss, &sl);
    s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
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
