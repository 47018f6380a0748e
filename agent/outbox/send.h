/* send.h — the outbox's sender (docs/outbox.md, "Sending"): one step at a
 * time, oldest open op first, by the one sender of a storage dir.
 *
 * A step journals every decision before acting on it: `sending` is durable
 * before the request leaves (remote_write never resends), so an op found in
 * `sent` (a crash, a lost answer) is read back from the portal, never sent
 * blindly. The caller owns the pull_ctx (its lock guards journal and cache.db;
 * a step holds it only to read the outbox and to journal, never across a
 * portal request) and the result. Not thread-safe per pull_ctx: one sender. */
#ifndef IA_OUTBOX_SEND_H
#define IA_OUTBOX_SEND_H
#include <stdint.h>

#include "agent/base/err.h"
#include "agent/pull/pull.h"

enum outbox_step {
    OUTBOX_IDLE = 0,                  /* no open op */
    OUTBOX_DONE,                      /* sent (or found applied), `done` journaled, keys re-read */
    OUTBOX_CONFLICT,                  /* `conflict` journaled, local change reverted, keys re-read */
    OUTBOX_REJECTED,                  /* the portal refused it: `rejected` with its message */
    OUTBOX_TRANSIENT,                 /* the portal could not be asked: op left pending; back off */
    OUTBOX_UNKNOWN,                   /* the answer was lost: op stays `sent`; the next step reads back */
    OUTBOX_FAILED                     /* a local failure (journal, cache.db, config): msg; back off */
};

struct outbox_result {
    enum outbox_step step;
    uint64_t op_id;                   /* 0 when IDLE */
    char table[JOURNAL_TABLE_MAX + 1];
    int sent;                         /* remote_write was called in this step */
    char repull[JOURNAL_TABLE_MAX + 1];  /* a table whose rows the step could not re-read: pull it ("" none) */
    enum remote_status rs;            /* the portal's last answer class in this step */
    char msg[IA_ERRLEN + 1024];       /* why, naming the op id and table */
};

/* What a sender keeps between steps, so that an op costs about one round
 * trip (docs/outbox.md, "Batching"): the portal's rows for the next ops of a
 * table, read in one select (checks read ahead: ops whose keys do not overlap
 * an earlier one's, valid for OUTBOX_AHEAD_S seconds and until a step ends
 * other than done/conflict/rejected), and the keys of done ops not re-read yet
 * (one pull_keys for up to OUTBOX_BATCH ops, at the latest when the outbox is
 * idle). The caller owns it: outbox_sender_new, outbox_sender_free (re-reads
 * still deferred are left to the tables' next pulls). */
#define OUTBOX_BATCH 32
#define OUTBOX_AHEAD_S 5.0
struct outbox_sender;
struct outbox_sender *outbox_sender_new(void);
void outbox_sender_free(struct outbox_sender *s);

/* One step: the oldest open op, checked, sent or read back, its outcome
 * journaled. A difference from the pre-image is settled by the op's table's
 * `conflict` (agent.toml): "portal" journals `conflict` (replay reverts, the
 * keys are re-read), "agent" sends anyway. s NULL: each op is checked and
 * re-read on its own. 0 with r->step; -1 only when the outbox itself cannot
 * be read (r->msg). */
int outbox_send_next(struct pull_ctx *c, struct outbox_sender *s, struct outbox_result *r);

const char *outbox_step_name(enum outbox_step s);

#endif
