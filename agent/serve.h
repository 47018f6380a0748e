/* serve.h — the local HTTP API (libevent evhttp): reads answered from cache.db.
 *
 * Routes (docs/interface.md, Local HTTP API):
 *   POST /api/jsonrpc/   authorize_user, as on the portal (password = the token when
 *                        one is set; any password when none is)
 *   POST /api/jsonsql/   JSON-RPC select answered from cache.db through the JSONSQL
 *                        compiler with the cache's catalog: same envelope, positional
 *                        rows, value types and error shape as the portal. insert/
 *                        update/delete go to hooks->write. A select on an on_demand
 *                        table whose where is `eq` on its key and that finds nothing
 *                        goes to hooks->fetch, then is answered from the cache.
 *   POST /sql            one read-only SQL statement, JSON result, row and time caps
 *   GET  /status /health /metrics    JSON, liveness, Prometheus text
 *   POST /sync/TABLE     hooks->sync (token required when one is set)
 * Answers from the cache carry X-Cache-Age (seconds since the table's last
 * successful pull) and X-Cache-Stale: true when older than its ttl or when the
 * portal is unreachable.
 *
 * READS NEVER WAIT FOR THE REMOTE (invariant 6): reads use read-only connections
 * of their own with an authorizer that allows only reads of catalog tables, a
 * progress-handler time limit, a row cap, a request-size cap and a nesting cap.
 * Only on_demand misses and writes involve the portal, through the hooks, which
 * complete asynchronously on the event loop thread.
 * SECRETS (invariant 8): the token is compared in constant time and never logged.
 *
 * Threading: everything here runs on the event loop thread of `base`. Hooks may
 * run work elsewhere but must call `done` on the loop thread (e.g. via
 * event_base_once from a thread after evthread_use_pthreads()).
 * The caller owns the event_base and frees the server with serve_free(). */
#ifndef IA_SERVE_H
#define IA_SERVE_H
#include <event2/event.h>
#include <stdint.h>

#include "agent/buf.h"
#include "agent/config.h"

/* Completion of an asynchronous hook. status: 0 ok, else an error with msg. */
typedef void (*serve_done_fn)(void *arg, int status, const char *msg);
/* Completion of a forwarded write: rows is the portal's `result` JSON text. */
typedef void (*serve_write_done_fn)(void *arg, int status, const char *rows_json, const char *msg);

struct serve_hooks {
    void *ctx;
    /* on_demand miss: fetch `table` where `column` = value (JSON literal text),
     * journal and apply it, then call done. NULL: misses are answered as empty. */
    int (*fetch)(void *ctx, const char *table, const char *column, const char *value_json,
                 serve_done_fn done, void *arg);
    /* insert/update/delete: forward to the portal, pull affected rows back, call done.
     * NULL: writes are refused with a JSON-RPC error. */
    int (*write)(void *ctx, const char *method, const char *params_json, serve_write_done_fn done, void *arg);
    /* POST /sync/TABLE: schedule a pull now. 0 queued, -1 with err (unknown table). */
    int (*sync)(void *ctx, const char *table, char *err, size_t errlen);
    /* 1 when the portal answered the last attempt, 0 unreachable (since_ms set), -1 unknown. */
    int (*portal_state)(void *ctx, int64_t *since_ms);
    /* Extra JSON members for /status (without braces) and lines for /metrics. */
    void (*status_json)(void *ctx, struct buf *out);
    void (*metrics)(void *ctx, struct buf *out);
};

struct serve_opts {
    const struct config *cfg;      /* tables (ttl, strategy, key), serve.listen */
    const char *db_path;           /* cache.db */
    const char *token;             /* NULL: none (then only loopback listen is allowed) */
    int64_t max_body;              /* request bytes, default 1 MiB */
    int64_t max_rows;              /* rows per answer, default 100000 */
    int64_t time_limit_ms;         /* per read, default 5000 */
    int max_depth;                 /* JSON nesting, default 32 */
};

typedef struct serve serve;

/* Bind opts->cfg->serve.listen (a non-loopback address without a token is refused
 * with an error) and register the routes on base. NULL with err. */
serve *serve_new(struct event_base *base, const struct serve_opts *opts, const struct serve_hooks *hooks,
                 char *err, size_t errlen);
int serve_port(const serve *s);          /* the bound port (listen may say :0) */
/* cache.db's tables or columns changed (a snapshot swapped in): rebuild the catalog. */
void serve_refresh(serve *s);
void serve_free(serve *s);               /* stops accepting; in-flight requests are dropped */

#endif
