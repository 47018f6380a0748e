/* server.h — the reference portal's HTTP side: protocol.md over libevent evhttp,
 * answering from PostgreSQL.
 *
 *   POST /api/jsonrpc/  authorize_user with the configured user and password ->
 *                       {"result":{"session_id":...}}; else the JSON-RPC error
 *                       "Invalid username or password" (as iptv-fake-portal)
 *   POST /api/jsonsql/  needs `Iptvportal-Authorization: sessionid=SID`; an unknown
 *                       or expired one is HTTP 401 {"error":"Unauthorized: session
 *                       expired"}. select, insert, update and delete are
 *                       translated (translate.h) and run (each its own
 *                       transaction); rows (a select's, a write's `returning`)
 *                       come back positional, valued by PostgreSQL's result type
 *                       (ref_write_value); a write without returning answers the
 *                       affected row count ("result": 1). Other methods are
 *                       refused with a JSON-RPC error naming them.
 *                       A JSON array body is a batch: an array of answers.
 * One request at a time on the caller's event loop (queries are synchronous).
 * Test use only: loopback. */
#ifndef IA_REF_SERVER_H
#define IA_REF_SERVER_H
#include <event2/event.h>
#include <libpq-fe.h>
#include <stdint.h>

#include "agent/base/buf.h"
#include "tests/ref_portal/translate.h"

struct ref_server_opts {
    const char *username;
    const char *password;
    uint64_t seed;             /* session ids */
    int64_t page_cap;          /* select limit at most this (0: none) */
    int64_t session_ttl_ms;    /* 0: sessions never expire */
};

typedef struct ref_server ref_server;

/* Bind 127.0.0.1:port (0 = ephemeral). pg and cat stay owned by the caller and
 * must outlive the server. Returns NULL with err. */
ref_server *ref_server_new(struct event_base *base, PGconn *pg, const struct ref_catalog *cat, int port,
                           const struct ref_server_opts *opts, char *err, size_t errlen);
int ref_server_port(const ref_server *s);
void ref_server_free(ref_server *s);

/* One result value as the portal sends it, from its PostgreSQL type oid and text:
 * integers and numeric as JSON numbers (exact text), floats as numbers (NaN and
 * infinities null), bool true/false, json/jsonb embedded, everything else
 * (timestamps, text) a JSON string as PostgreSQL printed it. */
void ref_write_value(struct buf *b, unsigned oid, const char *text, int len, int isnull);

#endif
