/* rpc.c — see rpc.h. */
#include "tests/fake_portal/rpc.h"
#include "agent/base/clock.h"
#include "agent/base/json.h"

#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

void portal_rpc_id(struct buf *b, const cJSON *id)
{
    int64_t v;
    if (id && json_int64(id, &v)) buf_printf(b, "%lld", (long long)v);
    else if (cJSON_IsString(id)) json_write_string(b, id->valuestring, strlen(id->valuestring));
    else buf_puts(b, "null");
}

void portal_rpc_error(struct buf *b, const cJSON *id, int code, const char *msg)
{
    buf_puts(b, "{\"jsonrpc\":\"2.0\",\"id\":");
    portal_rpc_id(b, id);
    buf_printf(b, ",\"error\":{\"code\":%d,\"message\":", code);
    json_write_string(b, msg, strlen(msg));
    buf_puts(b, "}}");
}

const char *portal_session_new(struct portal_sessions *ss, uint64_t a, uint64_t b, int64_t ttl_ms)
{
    if (ss->n == PORTAL_MAX_SESSIONS) {          /* forget the oldest */
        memmove(ss->s, ss->s + 1, sizeof ss->s[0] * (PORTAL_MAX_SESSIONS - 1));
        ss->n--;
    }
    int i = ss->n++;
    snprintf(ss->s[i].id, sizeof ss->s[i].id, "%016llx%016llx", (unsigned long long)a, (unsigned long long)b);
    ss->s[i].expires_ms = ttl_ms > 0 ? clock_mono_ms() + ttl_ms : 0;
    return ss->s[i].id;
}

int portal_session_valid(const struct portal_sessions *ss, struct evhttp_request *req)
{
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Iptvportal-Authorization");
    if (!h || strncmp(h, "sessionid=", 10) != 0) return 0;
    h += 10;
    int64_t now = clock_mono_ms();
    for (int i = 0; i < ss->n; i++)
        if (strcmp(ss->s[i].id, h) == 0) return ss->s[i].expires_ms == 0 || ss->s[i].expires_ms > now;
    return 0;
}

int portal_login_check(const cJSON *doc, const char *username, const char *password, struct buf *out)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(doc, "id");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(doc, "method");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(doc, "params");
    if (!cJSON_IsString(m) || strcmp(m->valuestring, "authorize_user") != 0) {
        portal_rpc_error(out, id, -32601, "Method not found");
        return 0;
    }
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(p, "username");
    const cJSON *pw = cJSON_GetObjectItemCaseSensitive(p, "password");
    if (!cJSON_IsString(u) || !cJSON_IsString(pw) || strcmp(u->valuestring, username) != 0 ||
        strcmp(pw->valuestring, password) != 0) {
        portal_rpc_error(out, id, -32001, "Invalid username or password");
        return 0;
    }
    return 1;
}

void portal_login_ok(struct buf *out, const cJSON *doc, const char *session_id)
{
    buf_puts(out, "{\"jsonrpc\":\"2.0\",\"id\":");
    portal_rpc_id(out, cJSON_GetObjectItemCaseSensitive(doc, "id"));
    buf_printf(out, ",\"result\":{\"session_id\":\"%s\"}}", session_id);
}

void portal_set_nodelay(struct evhttp_request *req)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evhttp_request_get_connection(req));
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    int one = 1;
    if (fd >= 0) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int portal_listen(struct evhttp *http, int port, int *bound, char *err, size_t errlen)
{
    struct evhttp_bound_socket *h = evhttp_bind_socket_with_handle(http, "127.0.0.1", (ev_uint16_t)port);
    if (!h) {
        snprintf(err, errlen, "cannot listen on 127.0.0.1:%d", port);
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(evhttp_bound_socket_get_fd(h), (struct sockaddr *)&ss, &sl);
    *bound = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

int portal_parse_i64(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s) return -1;
    *out = v;
    return 0;
}
