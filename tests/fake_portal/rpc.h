/* rpc.h — what the two test portals share (iptv-fake-portal and iptv-ref-portal):
 * the JSON-RPC answer writers, the login and the session table, and the evhttp
 * socket setup. Each portal keeps its own queries; only this is common.
 *
 * Sessions: the caller supplies the random bits (the fake portal draws them from
 * its one seeded sequence, which also rolls its faults), so ids are deterministic
 * per seed. Ownership: a portal_sessions is plain data inside its owner; nothing
 * here allocates. */
#ifndef IA_PORTAL_RPC_H
#define IA_PORTAL_RPC_H
#include <cjson/cJSON.h>
#include <event2/http.h>
#include <stdint.h>

#include "agent/base/buf.h"

#define PORTAL_MAX_SESSIONS 256

struct portal_sessions {
    struct {
        char id[33];
        int64_t expires_ms;          /* 0: never */
    } s[PORTAL_MAX_SESSIONS];
    int n;                           /* 0 forgets them all (expiry) */
};

/* The request's id as JSON (an integer, a string or null). */
void portal_rpc_id(struct buf *b, const cJSON *id);
/* {"jsonrpc":"2.0","id":ID,"error":{"code":CODE,"message":MSG}} */
void portal_rpc_error(struct buf *b, const cJSON *id, int code, const char *msg);

/* A new session from the two random words a and b, expiring after ttl_ms (0:
 * never); the oldest is forgotten when the table is full. Returns its id. */
const char *portal_session_new(struct portal_sessions *ss, uint64_t a, uint64_t b, int64_t ttl_ms);
/* 1 when the request's `Iptvportal-Authorization: sessionid=SID` names a live session. */
int portal_session_valid(const struct portal_sessions *ss, struct evhttp_request *req);

/* authorize_user against username/password: 1 when doc asks for it with them
 * (the caller then answers with portal_login_ok), else 0 with out holding the
 * JSON-RPC error ("Method not found", "Invalid username or password"). */
int portal_login_check(const cJSON *doc, const char *username, const char *password, struct buf *out);
void portal_login_ok(struct buf *out, const cJSON *doc, const char *session_id);

/* TCP_NODELAY on the request's connection: evhttp writes headers and body
 * separately, and Nagle would hold the body for the client's delayed ACK. */
void portal_set_nodelay(struct evhttp_request *req);
/* Bind 127.0.0.1:port (0: ephemeral); *bound gets the port. 0, or -1 with err. */
int portal_listen(struct evhttp *http, int port, int *bound, char *err, size_t errlen);
/* A whole decimal int64 (command-line values). 0, or -1. */
int portal_parse_i64(const char *s, int64_t *out);

#endif
