/* upstream.h — an edge agent's source: a hub agent's /export routes over HTTP.
 *
 * upstream_sync() brings cache.db up to the hub's newest state:
 *   cache at no snapshot (at_id "")   GET /export/snapshot, import it;
 *   cache at snapshot S               GET /export/delta?base=S:
 *                                       304  already current, nothing changes;
 *                                       200  import the delta (it ends at a kept
 *                                            snapshot, so the next one chains);
 *                                       410/409 (S not kept, or a table changed
 *                                            layout)  the snapshot instead.
 * A download goes to a temp file in tmp_dir and is imported (export_import:
 * verified first, applied in one transaction) only once complete: a cut
 * transfer, a dead hub or a bad file changes nothing in cache.db. The caller
 * holds the cache writer (the journal lock; the daemon's writer lock).
 * The hub's token (from [upstream] token_env) goes in Authorization and is never
 * logged. Ownership: the caller frees the client with upstream_free(). */
#ifndef IA_UPSTREAM_H
#define IA_UPSTREAM_H
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/config/config.h"
#include "agent/ship/export.h"

struct upstream_result {
    char action[16];                 /* "snapshot", "delta" or "current" */
    char id[EXPORT_ID_LEN + 1];      /* what the cache is at afterwards */
    uint64_t bytes;                  /* downloaded */
    uint64_t changes;                /* delta: row changes applied */
    uint64_t rows;                   /* rows in the pulled tables afterwards (snapshot) */
    double seconds;
    int unreachable;                 /* on error: the hub did not answer (or answered 5xx) */
};

typedef struct upstream upstream;

/* NULL with err when cfg has no [upstream] url or token_env names an unset variable. */
upstream *upstream_new(const struct config *cfg, char *err, size_t errlen);
/* *cancel non-zero aborts a transfer in progress (daemon shutdown). */
void upstream_set_cancel(upstream *u, const atomic_int *cancel);
/* 0 ok, -1 with err naming the hub URL (and r->unreachable set when it is away).
 * dir is the storage directory: downloads go to a temp file there, and every
 * attempt's outcome is recorded in dir/upstream.state for `status`. */
int upstream_sync(upstream *u, const char *db_path, const char *dir, struct upstream_result *r, char *err,
                  size_t errlen);

/* The last exchange with the hub, as upstream_sync recorded it: an edge's own
 * fact (the tables' last_attempt/last_error are the hub's, copied with its
 * data). Kept in a file, not cache.db, because cache.db's metadata travels
 * from the hub. */
struct upstream_state {
    int64_t attempt_ms, success_ms;   /* 0 never */
    char error[1024];                 /* "" when the last attempt worked */
};
/* 0 read, 1 nothing recorded yet. Reads only. */
int upstream_state_read(const char *dir, struct upstream_state *st);
void upstream_free(upstream *u);

#endif
