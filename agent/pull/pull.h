/* pull.h — the puller: portal pages → journal records → replay, per table.
 *
 * WRITE-AHEAD: every page is appended to the journal (durable on return) before
 * replay applies it to cache.db; nothing else writes table data. A page's rows
 * are encoded straight from the response stream into the journal's typed row
 * encoding (no DOM), so memory is bounded by one page whatever the table size.
 *
 * Strategies (architecture.md):
 *   full         keyset pages `key > last ORDER BY key LIMIT chunk` as one snapshot;
 *   incremental  a snapshot first (its mark: the portal's max cursor read before
 *                it started, so rows changed while it ran are read again), then
 *                `(cursor, key) > mark ORDER BY cursor, key`, starting `lookback`
 *                behind the mark; a sweep pages through all keys and journals
 *                deletions of keys gone from the portal, each confirmed absent by
 *                a second query before it is journaled;
 *   on_demand    pull_get() fetches rows that miss the cache.
 * A snapshot over an integer key, and a catch-up of more than a few pages, run
 * as t->streams key-range streams at once, pipelined into the journal
 * (streams.c); streams = 1 or any other key: one cursor, page after page.
 * An unfinished snapshot of the same schema resumes after its last journaled key
 * (one cursor) or in the gaps of its coverage (streams).
 * A changed schema hash starts a new snapshot.
 *
 * The caller owns everything in struct pull_ctx; pull functions borrow it. */
#ifndef IA_PULL_H
#define IA_PULL_H
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "agent/config/config.h"
#include "agent/base/err.h"
#include "agent/portal/remote.h"
#include "journal/journal.h"
#include "replay/replay.h"

/* Requests of parallel streams in flight at once across every pull that
 * shares it ([remote] max_inflight: the daemon's tables share one). Whoever
 * wires the pulls together owns it: pull_gate_init, pull_gate_destroy. */
struct pull_gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int free;                        /* requests that may start now */
};
void pull_gate_init(struct pull_gate *g, int max_inflight);
void pull_gate_destroy(struct pull_gate *g);

struct pull_ctx {
    const struct config *cfg;
    remote *remote;                  /* the portal client */
    struct journal_writer *jw;       /* the journal (one writer per storage dir) */
    struct replay *rp;               /* cache.db */
    int progress;                    /* draw rows, rows/s, ETA on stderr (a terminal) */
    const atomic_int *cancel;        /* non-zero: stop after the page in flight (NULL: never) */
    pthread_mutex_t *lock;           /* held around every use of jw and rp (NULL: one thread) */
    struct pull_gate *gate;          /* shared cap on streams' requests (NULL: this pull's own streams
                                        only, at most [remote] max_inflight of them) */
};

struct pull_result {
    const char *action;              /* "snapshot", "resumed snapshot", "incremental", "skipped" ... */
    uint64_t rows;                   /* rows pulled */
    uint64_t deleted;                /* deletions journaled by a sweep; rows a snapshot dropped */
    double seconds;
    int ok;                          /* 0 on failure: error says why */
    int forbidden;                   /* the portal answered 403 for this table */
    enum remote_status remote_status;   /* the portal's error class, REMOTE_OK if not the portal */
    int schema_changed;              /* the column list or types changed: new snapshot */
    int snapshot_done;               /* a snapshot's END was journaled and applied */
    char error[IA_ERRLEN + 256];     /* a callee's message and what the pull was doing */
};

/* Is the table due at now_ms (never pulled, ttl/interval/sweep elapsed)? */
int pull_due(const struct config_table *t, const struct replay_table *st, int64_t now_ms);

/* Bring one table up to date per its strategy. full_snapshot forces a snapshot.
 * Records the outcome with replay_note_pull. Returns 0 ok, -1 failed (r->error). */
int pull_table(struct pull_ctx *c, const struct config_table *t, int full_snapshot, struct pull_result *r);

/* Look COLUMN = VALUE up on the portal, VALUE always a literal (never read as
 * a column), typed by the column: an integer column takes an integer, a text
 * column a string, a column of unknown type an integer when VALUE is one
 * written plainly. Journal and apply what it finds. *found gets the row count; keys (may be
 * NULL) a JSON array of the found rows' keys — the cache names unconfigured
 * columns Field_N, so a caller reads rows back by key. 0 ok, -1 error (err),
 * PULL_EUSAGE: COLUMN or VALUE cannot be asked about (a configured table
 * without COLUMN, VALUE not an integer for an integer column: the portal is not
 * asked; or the portal refused a lookup by a column only it could know). */
#define PULL_EUSAGE (-2)
int pull_get(struct pull_ctx *c, const struct config_table *t, const char *column, const char *value,
             uint64_t *found, struct buf *keys, char *err, size_t errlen);
/* pull_get for a value that is already a JSON literal (the local API's); -1 or
 * 0. *rs (may be NULL) gets the portal's error class: REMOTE_OK when the
 * portal answered or was not asked. */
int pull_get_json(struct pull_ctx *c, const struct config_table *t, const char *column, const char *value_json,
                  uint64_t *found, struct buf *keys, enum remote_status *rs, char *err, size_t errlen);

/* Re-read the rows with these keys (a JSON array of key literals) from the
 * portal: present ones are journaled and applied as an on-demand page, absent
 * ones as deletions. Used after a write forwarded to the portal. 0 or -1 (err;
 * *rs, may be NULL, as for pull_get_json). */
int pull_keys(struct pull_ctx *c, const struct config_table *t, const char *keys_json, enum remote_status *rs,
              char *err, size_t errlen);

/* s as an integer: an optional sign and decimal digits, within int64. 1 yes, 0 no. */
int pull_int_text(const char *s, int64_t *out);

#endif
