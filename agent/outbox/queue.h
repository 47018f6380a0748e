/* queue.h — accepting a write into the outbox while the portal is unreachable
 * (docs/outbox.md, "Accepting a write"): compile it against cache.db's catalog,
 * evaluate it on cache.db (replay_op_capture), journal the `op` record, apply it.
 *
 * Provisional keys: an insert that does not give the table's key column gets
 * -(op id * 1000) - row index (0-based) for each row, so it can never collide
 * with a portal key and a client can see it is provisional; an insert of more
 * than OUTBOX_PROVISIONAL_ROWS such rows is refused (the next op's keys).
 * Types: a literal of insert `values` or update `set` must suit its column's
 * declared type (INT: an integer, REAL: a number, TEXT: a string, BOOL:
 * true/false; null always; JSON and untyped columns anything), as the portal's
 * PostgreSQL would refuse it: SQLite's affinity would silently store it.
 *
 * Ownership: the caller keeps the store, the config and the strings; the
 * result's answer is malloc'd (outbox_queued_free). */
#ifndef IA_OUTBOX_QUEUE_H
#define IA_OUTBOX_QUEUE_H
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/base/err.h"
#include "agent/config/config.h"
#include "agent/pull/store.h"

#define OUTBOX_PROVISIONAL_ROWS 1000
/* The write itself is wrong (not cached table, unknown column, wrong type, bad
 * JSONSQL, no key column): refused, nothing changed. -1 is any other failure
 * (storage); nothing changed either unless err says the op was journaled. */
#define OUTBOX_EREFUSED (-2)

struct outbox_queued {
    uint64_t op_id;                  /* seq of its op record */
    char *answer;                    /* the JSON `result` as the portal would give it: rows or a count */
};

/* Queue one write to table t. method "insert", "update" or "delete"; params_json
 * the JSON-RPC params object (kept in the op as it will be sent). st must be a
 * writer store; lock (NULL: none) guards its journal writer and cache.db writer
 * and is held from compiling to applying. 0 ok, OUTBOX_EREFUSED or -1 with err. */
int outbox_queue_write(struct store *st, pthread_mutex_t *lock, const struct config_table *t, const char *method,
                       const char *params_json, struct outbox_queued *out, char *err, size_t errlen);
void outbox_queued_free(struct outbox_queued *r);

/* Group commit for writes gathered by one thread (the daemon's outbox worker
 * takes every write waiting): each captured on top of those before it, then
 * one fsync and one replay_apply for all; w[i].rc and w[i].err as
 * outbox_queue_write's, w[i].out filled when rc is 0 (outbox_queued_free). */
struct outbox_write {
    const struct config_table *t;
    const char *method, *params_json;
    struct outbox_queued out;
    int rc;
    char err[IA_ERRLEN];
};
void outbox_queue_writes(struct store *st, pthread_mutex_t *lock, struct outbox_write *w, size_t n);

#endif
