/* outbox.h — offline writes in cache.db (docs/outbox.md): evaluating a write
 * without keeping it, and reading the outbox. Replay applies the op and
 * op_state records themselves (apply_op.c); this is what the agent calls around
 * them. Errors: 0 ok, -1 with err naming the table or op. */
#ifndef IA_REPLAY_OUTBOX_H
#define IA_REPLAY_OUTBOX_H
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "replay/replay.h"

/* Run `run` (which executes the compiled write on db and collects the answer)
 * inside a SAVEPOINT with a session attached to `table`, take the changeset
 * (old values included), then roll the savepoint back: cache.db is unchanged
 * afterwards, on error too. Outside replay_apply only (no transaction open).
 * The table must be cached, with a key column. *changeset is sqlite3_malloc'd
 * (sqlite3_free; NULL when nothing changed, *nchangeset 0). */
typedef int (*replay_capture_fn)(sqlite3 *db, void *ctx, char *err, size_t errlen);
int replay_op_capture(struct replay *r, const char *table, replay_capture_fn run, void *ctx, void **changeset,
                      int *nchangeset, char *err, size_t errlen);

/* Group capture, for group commit (agent/outbox/queue.c): the writes of a
 * group are captured one after the other, each on top of the ones before, so
 * that replay_apply, applying their changesets in the same order, meets the
 * very state each was captured on (a changeset taken on the state without its
 * predecessors could conflict and be refused).
 *   replay_op_group_begin   SAVEPOINT; no transaction may be open.
 *   replay_op_capture_keep  as replay_op_capture, but on success the write's
 *                           effect stays, pending replay_op_capture_settle:
 *                           keep 1 (it was journaled) or 0 (undo it: its
 *                           journal append failed). On failure nothing stays.
 *   replay_op_group_end     rolls the whole group back: cache.db is as it was
 *                           and out of any transaction, ready for replay_apply.
 * All 0 or -1 with err. */
int replay_op_group_begin(struct replay *r, char *err, size_t errlen);
int replay_op_capture_keep(struct replay *r, const char *table, replay_capture_fn run, void *ctx,
                           void **changeset, int *nchangeset, char *err, size_t errlen);
int replay_op_capture_settle(struct replay *r, int keep, char *err, size_t errlen);
int replay_op_group_end(struct replay *r, char *err, size_t errlen);

/* One op of _agent_outbox. Strings malloc'd; params, answer and changeset
 * only from replay_outbox_get (NULL in a list). */
struct replay_outbox_op {
    uint64_t id;                      /* seq of its op record */
    char *table, *kind, *state;       /* kind insert|update|delete; state pending|sent|done|conflict|
                                         rejected|dropped */
    char *keys;                       /* JSON array of the key values it touches */
    int64_t attempts;
    char *last_error;                 /* the last op_state's message, NULL none */
    int64_t created_ms, updated_ms;
    char *params, *answer;
    void *changeset;
    size_t nchangeset;
};
/* Ops by id, on any connection to cache.db (serve's read-only one too);
 * open_only: pending and sent only; at most limit (0: all). replay_outbox_free() releases. */
int replay_outbox_list(sqlite3 *db, int open_only, size_t limit, struct replay_outbox_op **out, size_t *n,
                       char *err, size_t errlen);
void replay_outbox_free(struct replay_outbox_op *ops, size_t n);
/* One op in full: 0 found, 1 no such op, -1 error. Release with replay_outbox_op_clear(). */
int replay_outbox_get(sqlite3 *db, uint64_t id, struct replay_outbox_op *op, char *err, size_t errlen);
void replay_outbox_op_clear(struct replay_outbox_op *op);

struct replay_outbox_counts {
    int64_t pending;                  /* pending and sent: not ended */
    int64_t sent;                     /* of those, sent (sending) */
    int64_t conflicts, rejected;
};
int replay_outbox_counts(sqlite3 *db, struct replay_outbox_counts *out, char *err, size_t errlen);

/* Bounds (docs/outbox.md): delete the ended ops (done, conflict, rejected,
 * dropped) whose op record is older than `start`, the journal's first seq
 * after a compaction: a rebuild from that journal would not have them either
 * (their states are skipped), so cache.db stays what a rebuild gives. Open
 * ops are never deleted (compaction keeps their records). Writer connection,
 * outside replay_apply. *deleted: how many went. */
int replay_outbox_prune(struct replay *r, uint64_t start, int64_t *deleted, char *err, size_t errlen);

#endif
