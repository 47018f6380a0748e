/* serve.h — the local HTTP API (libevent evhttp): reads answered from cache.db.
 *
 * The routes and their answers: docs/interface.md, "Local HTTP API" (the
 * /export/ routes: docs/export-format.md, "Over HTTP"); the hook each one calls
 * is named at struct serve_hooks.
 *
 * Decisions (tests in tests/unit/test_serve.c):
 * - Caps. A select on /api/jsonsql/ is answered with at most cfg->serve.max_rows
 *   rows (default 5000), as a portal caps a page: one without limit, or with a
 *   larger one, runs with limit = that cap (the rows that limit gives; clients
 *   page on). /sql cuts at opts->max_rows and says "truncated":true. A reply
 *   growing past max_reply bytes is an error on /api/jsonsql/ (-32603), never
 *   a silent cut; /sql says "truncated":true. A body over max_body is HTTP 413 (JSON, as
 *   every error: a method a route does not take is 405, never libevent's HTML
 *   501); JSON nested deeper than max_depth, SQL
 *   running past time_limit_ms, and anything the authorizer refuses are errors.
 * - Cache headers. X-Cache-Stale (true|false) is on every answer read from the
 *   cache; X-Cache-Age is the age of the oldest table the statement read (its
 *   tables come from the authorizer), absent while one of them has never been
 *   pulled (then it is stale). A statement that reads no table has neither.
 * - on_demand. A key lookup that misses goes to hooks->fetch. When that fails
 *   (done with an error, or the hook refusing with -1) the answer is the
 *   JSON-RPC error SERVE_ERR_NOT_CACHED (-32004, "not cached and the portal
 *   could not be asked: ...") with X-Cache-Error: the hook's message (one line),
 *   never a `[]` a client would take for "no such row". A hit whose row was
 *   read from the portal longer ago than the table's ttl (or at a time cache.db
 *   does not know: _agent_fetched, replay_note_fetched) goes to hooks->refresh
 *   first; when that fails the cached row is served with X-Cache-Stale: true and
 *   X-Cache-Error. For a key lookup X-Cache-Age is the row's age. Without a fetch
 *   hook a miss is an ordinary answer from the cache. Misses run concurrently:
 *   each waits for its own hook only.
 * - Pass-through. A select that names a table the cache cannot answer for
 *   (serve_pass.h: not configured, not in cache.db, or configured and never
 *   pulled to the end; one such table among cached ones is enough: the
 *   statement goes whole) goes to hooks->select unless [serve] unknown_tables
 *   = "refuse" ("cache": the daemon also starts caching an unconfigured one).
 *   The portal's answer goes back as it sent it (its `result`, or its JSON-RPC
 *   `error`) with X-Cache: pass and no X-Cache-Age/-Stale; answers from the
 *   cache say X-Cache: hit. When the hook fails (the daemon's fails at once
 *   while it knows the portal is down: reads never wait on a dead portal), the
 *   answer is SERVE_ERR_NOT_CACHED "table T is not cached and the portal is
 *   unreachable: ..." with X-Cache-Error, never `[]` (an answer it cannot
 *   pass on, e.g. over max_response: "... the portal's answer is unusable:
 *   ..."); too many passed selects waiting is SERVE_ERR_BUSY "table T is not
 *   cached and the portal is busy". Without a select hook
 *   (an edge, tests) such a select is answered from the cache as before.
 * - Writes: serve only passes them to hooks->write, which decides by the
 *   table's `writes` policy (docs/outbox.md). Without a write hook, or when it
 *   fails, the answer is a JSON-RPC error -32603 "portal write failed: ...
 *   (writes are not queued)". The portal's result goes back exactly as it sent
 *   it (rows, or a count). A write whose answer was lost is error -32002 "write
 *   outcome unknown: ...": a client must check before sending it again. A write
 *   the hook queued in the outbox (SERVE_WRITE_QUEUED) is answered as the portal
 *   would, with the header X-Write-Queued: <op id>; one it refused without
 *   asking the portal (SERVE_WRITE_REFUSED: the policy, or a write the cache
 *   shows is wrong) is error -32602 with its message.
 * - Writes need the token or a portal login: a server with auth = "none" and no
 *   token refuses insert/update/delete (HTTP 403, -32000) unless [serve]
 *   tokenless_writes = "loopback" opens them to its (loopback-only) clients.
 * - Logging in (serve_auth.h; cfg->serve.auth, session_ttl_ms): with auth =
 *   "portal" authorize_user accepts opts->username/password or the token as
 *   password (else -32001, HTTP 200, as the portal), and /api/jsonsql/ needs a
 *   live session or the Bearer token (else HTTP 401, -32000 "Session expired or
 *   invalid, please authorize ..."); serve_new refuses a server nobody could log
 *   in to. With a token set, every other route but /health needs
 *   `Authorization: Bearer TOKEN` or a session; otherwise HTTP 401
 *   ({"error":..}). auth = "none": today's open rules (test_serve_login.c).
 * - Batches (serve_batch.h): an array body on /api/jsonsql/ or /api/jsonrpc/ is
 *   answered by an array, each element as alone; empty or over SERVE_MAX_BATCH
 *   (100): one -32600 error.
 *
 * READS NEVER WAIT FOR THE REMOTE (invariant 6): reads use read-only connections
 * of their own with an authorizer that allows only reads of catalog tables, a
 * progress-handler time limit, a row cap, a request-size cap and a nesting cap.
 * Only on_demand misses and writes involve the portal, through the hooks, which
 * complete asynchronously on the event loop thread; a portal outage only marks
 * answers stale (test_cache_headers, test_on_demand).
 * BAD INPUT IS REFUSED (invariant 7): errors name what was wrong, the server keeps
 * serving and cache.db is unchanged (test_bad_input_refused, test_time_limit,
 * test_row_cap; tests/fuzz/fuzz_serve.c).
 * SECRETS (invariant 8): the token, the account's password and session ids are
 * compared in constant time and never logged or echoed; off loopback serve_new
 * refuses to start without a token (test_token, test_non_loopback_needs_token,
 * test_serve_login.c test_login_portal).
 *
 * Threading: everything here runs on the event loop thread of `base`. Hooks may
 * run work elsewhere but must call `done` on the loop thread (e.g. via
 * event_base_once from a thread after evthread_use_pthreads()). Every hook call
 * that returned 0 must call its done exactly once, even after serve_free (the
 * request is then only released); done may also be called before the hook returns.
 * The caller owns the event_base and frees the server with serve_free(). */
#ifndef IA_SERVE_H
#define IA_SERVE_H
#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/base/buf.h"
#include "agent/config/config.h"

/* The JSON-RPC error code of an on_demand miss the portal could not be asked about. */
#define SERVE_ERR_NOT_CACHED (-32004)
/* ... of a passed select refused because too many wait for the portal. */
#define SERVE_ERR_BUSY (-32005)

/* Completion of an asynchronous hook. status: 0 ok, else an error with msg. */
typedef void (*serve_done_fn)(void *arg, int status, const char *msg);
/* Completion of a write. status: SERVE_WRITE_OK with rows_json the
 * portal's `result` JSON text as it sent it (rows, or a row count such as 1);
 * SERVE_WRITE_FAILED: the portal refused it or was not reached (nothing
 * changed); SERVE_WRITE_UNKNOWN: the request may have reached the portal but
 * its answer was lost, so it may have run (never resent); SERVE_WRITE_QUEUED:
 * queued in the outbox, rows_json the answer as the portal would give it and
 * msg the op id in decimal (X-Write-Queued); SERVE_WRITE_REFUSED: refused
 * before the portal was asked (nothing changed). msg says why. */
enum { SERVE_WRITE_OK = 0, SERVE_WRITE_FAILED = -1, SERVE_WRITE_UNKNOWN = -2, SERVE_WRITE_QUEUED = 1,
       SERVE_WRITE_REFUSED = -3 };
typedef void (*serve_write_done_fn)(void *arg, int status, const char *rows_json, const char *msg);
/* Completion of a passed select. SERVE_PASS_OK: json is the portal's `result`
 * as it sent it; SERVE_PASS_RPC: the portal refused it, json its `error`
 * member; SERVE_PASS_FAILED: the portal was not reached (msg);
 * SERVE_PASS_BUSY: too many selects wait for it (msg); SERVE_PASS_BAD: it
 * answered, but not with a usable answer (too large, HTTP 403, msg). */
enum { SERVE_PASS_OK = 0, SERVE_PASS_RPC = 1, SERVE_PASS_FAILED = -1, SERVE_PASS_BUSY = -2, SERVE_PASS_BAD = -3 };
typedef void (*serve_select_done_fn)(void *arg, int status, const char *json, const char *msg);

/* An export file to send as a reply body. */
struct serve_file {
    int fd;                        /* read from offset 0; ownership passes to serve */
    int64_t size;
    const char *id, *base_id;      /* X-Export-Id, X-Export-Base ("" none) */
};
/* Completion of an export: status is the HTTP status (200 with file, else
 * 304/409/410/500/503 with msg); file is NULL unless status is 200. */
typedef void (*serve_export_done_fn)(void *arg, int status, const struct serve_file *file, const char *msg);

struct serve_hooks {
    void *ctx;
    /* on_demand miss: fetch `table` where `column` = value (JSON literal text),
     * journal and apply it, then call done. NULL: misses are answered as empty. */
    int (*fetch)(void *ctx, const char *table, const char *column, const char *value_json,
                 serve_done_fn done, void *arg);
    /* insert/update/delete: forward to the portal and pull affected rows back, or
     * queue it in the outbox (table policy), or refuse it; call done.
     * NULL: writes are refused with a JSON-RPC error. */
    int (*write)(void *ctx, const char *method, const char *params_json, serve_write_done_fn done, void *arg);
    /* POST /sync/TABLE: schedule a pull now. 0 queued, -1 with err (unknown table). */
    int (*sync)(void *ctx, const char *table, char *err, size_t errlen);
    /* 1 when the portal answered the last attempt, 0 unreachable (since_ms set), -1 unknown.
     * Asked on every answer from the cache (X-Cache-Stale): keep it cheap. */
    int (*portal_state)(void *ctx, int64_t *since_ms);
    /* Extra JSON members for /status (without braces) and lines for /metrics. */
    void (*status_json)(void *ctx, struct buf *out);
    void (*metrics)(void *ctx, struct buf *out);
    /* GET /export/...: base_id NULL for a snapshot. Produce the file (on a
     * worker: it takes long), then call done. NULL: the routes answer 404. */
    int (*export_file)(void *ctx, const char *base_id, serve_export_done_fn done, void *arg);
    /* on_demand rows older than their table's ttl: read the rows with these keys
     * (a JSON array of key literals) again, replace those the portal has and
     * delete the others, then call done. NULL: stale rows are served marked stale. */
    int (*refresh)(void *ctx, const char *table, const char *keys_json, serve_done_fn done, void *arg);
    /* A select the cache cannot answer (Pass-through): send params (a JSON
     * object text) to the portal as a select, then call done. table: the
     * first table it names that the cache cannot answer for (unknown_tables =
     * "cache" caches it). -1: not started (answered as unreachable). NULL:
     * answered from the cache. */
    int (*select)(void *ctx, const char *table, const char *params_json, serve_select_done_fn done, void *arg);
};

struct serve_opts {
    const struct config *cfg;      /* tables (ttl, strategy, key), serve.listen */
    const char *db_path;           /* cache.db (must exist: the writer creates it) */
    const char *token;             /* NULL: none (then only loopback listen is allowed) */
    const char *username, *password;   /* the [remote] account authorize_user accepts; NULL: none */
    int64_t (*clock_ms)(void *arg);    /* monotonic ms for session expiry; NULL: the real clock */
    void *clock_arg;
    int64_t max_body;              /* request bytes, default 1 MiB */
    int64_t max_rows;              /* rows per /sql answer, default 100000 (/api/jsonsql/:
                                      cfg->serve.max_rows, default 5000) */
    int64_t max_reply;             /* bytes per answer (checked between rows), default 64 MiB */
    int64_t time_limit_ms;         /* per read, default 5000 */
    int max_depth;                 /* JSON nesting, default 32 */
};

typedef struct serve serve;

/* Bind opts->cfg->serve.listen (a non-loopback address without a token is refused
 * with an error) and register the routes on base. base NULL: no listener, only
 * serve_handle() (tests, fuzzing). NULL with err. */
serve *serve_new(struct event_base *base, const struct serve_opts *opts, const struct serve_hooks *hooks,
                 char *err, size_t errlen);
int serve_port(const serve *s);          /* the bound port (listen may say :0); 0 without one */
/* cache.db's tables or columns changed (a snapshot swapped in): rebuild the catalog.
 * (Requests also notice it themselves through PRAGMA schema_version.) */
void serve_refresh(serve *s);
void serve_free(serve *s);               /* stops accepting; in-flight requests are dropped */

/* ---- the request path without sockets (the evhttp glue, tests, fuzzing) ---------- */

struct serve_request {
    const char *method;            /* "GET", "POST", ... */
    const char *path;              /* without the query string, e.g. "/api/jsonsql/" */
    const char *query;             /* the query string without '?', NULL when absent */
    const char *authorization;     /* the Authorization header, NULL when absent */
    const char *session;           /* the Iptvportal-Authorization header, NULL when absent */
    const char *body;              /* len bytes, need not be NUL-terminated */
    size_t len;
};

struct serve_reply {
    int status;                    /* HTTP status */
    const char *content_type;      /* a static string */
    struct buf body;
    int64_t cache_age;             /* X-Cache-Age in seconds; -1: no header */
    int cache_stale;               /* X-Cache-Stale: 1 true, 0 false, -1 no header */
    char cache_error[256];         /* X-Cache-Error when not empty (a failed on_demand fetch) */
    int file_fd;                   /* >= 0: the body is file_size bytes of this file, not `body`;
                                      the reply callback then owns (closes) it */
    int64_t file_size;
    char export_id[40], export_base[40];   /* X-Export-Id / X-Export-Base when not empty */
    char write_queued[24];         /* X-Write-Queued (the op id) when not empty */
    const char *cache;             /* X-Cache: "hit" (from cache.db), "pass" (the portal's); NULL none */
};

/* Called once with the reply, which is valid during the call only. */
typedef void (*serve_reply_fn)(void *arg, const struct serve_reply *rep);

/* Handle one request. Returns 0 when cb was called before returning, 1 when the
 * request waits for a hook (cb follows from its done; not after serve_free). */
int serve_handle(serve *s, const struct serve_request *rq, serve_reply_fn cb, void *arg);

#endif
