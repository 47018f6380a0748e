/* server.h — the fake IPTVPortal's HTTP side: protocol.md over libevent evhttp.
 *
 * Speaks /api/jsonrpc/ (authorize_user) and /api/jsonsql/ (select, insert,
 * update, delete) against a SQLite database through the JSONSQL compiler, so rows
 * come back positional with the portal's value shapes. Faults are injected on
 * the /api/ routes from a seeded PRNG (rates) or a queue of forced outcomes, and
 * can be changed at run time through the /_fake/ admin routes:
 *   POST /_fake/faults  {"latency_ms","error_rate","reset_rate","truncate_rate",
 *                        "garbage_rate","session_ttl_ms","session_error",
 *                        "forbid":[...],"page_cap","write_result":"count"|"rows",
 *                        "queue":["500","reset",...]}
 * Queue items: ok, 500 (before running the statement), 500after (run it, then
 * HTTP 500), reset (run it, send a few bytes, then RST), drop (run it, then
 * RST with not one byte of answer), truncate, garbage (run it, cut the body),
 * expire (forget every session first).
 *   POST /_fake/mutate  {"table","updates","inserts","deletes","same_ts","seed"}
 *   POST /_fake/expire  expire every session now
 *   GET  /_fake/stats   counters as JSON
 * Test use only: admin routes have no authentication (loopback). */
#ifndef IA_FAKE_SERVER_H
#define IA_FAKE_SERVER_H
#include <event2/event.h>
#include <sqlite3.h>
#include <stdint.h>

enum fake_session_error { FAKE_SESS_JSONRPC, FAKE_SESS_HTTP401, FAKE_SESS_HTTP403 };

struct fake_faults {
    int64_t latency_ms;        /* delay before every /api/ reply */
    double error_rate;         /* HTTP 500 */
    double reset_rate;         /* connection reset, no reply */
    double truncate_rate;      /* Content-Length promises more than is sent, then close */
    double garbage_rate;       /* HTTP 200 whose body is cut mid-JSON */
    int64_t session_ttl_ms;    /* 0: sessions never expire */
    enum fake_session_error session_error;
    char **forbid;             /* tables answering HTTP 403 */
    int nforbid;
    int64_t page_cap;          /* 0: no cap; else select limit is at most this */
    int write_count;           /* insert/update/delete without `returning` answer the
                                  row count ("result": 1, as PostgreSQL does), not [] */
};

struct fake_server_opts {
    const char *username;      /* accepted login */
    const char *password;
    uint64_t seed;             /* session ids and fault rolls */
    struct fake_faults faults; /* initial faults; forbid strings are copied */
};

typedef struct fake_server fake_server;

/* Bind 127.0.0.1:port (0 = ephemeral) and register handlers on base. db stays
 * owned by the caller. Returns NULL with err. */
fake_server *fake_server_new(struct event_base *base, sqlite3 *db, int port,
                             const struct fake_server_opts *opts, char *err, size_t errlen);
int fake_server_port(const fake_server *s);
void fake_server_free(fake_server *s);

/* Parse a session-error style name: "jsonrpc" | "http401" | "http403". 0 ok, -1 unknown. */
int fake_parse_session_error(const char *s, enum fake_session_error *out);

#endif
