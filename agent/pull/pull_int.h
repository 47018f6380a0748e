/* pull_int.h — what the puller's files share (pull.c, streams.c); not an API.
 *
 * A schema is the select's columns as learned from the portal; a page is one
 * portal answer being encoded into a journal payload while it streams in (no
 * DOM). The helpers here keep one owner per fact: typed key values, fetching
 * a page, appending and applying a record, progress on a terminal. */
#ifndef IA_PULL_INT_H
#define IA_PULL_INT_H
#include "agent/pull/pull.h"
#include "agent/base/buf.h"
#include "agent/base/json.h"

struct schema {
    int ncols;
    char **names;
    enum journal_coltype *types;
    int key_col, cursor_col;
    char hash[17];
    char *data;                      /* the select's data list as JSON */
};
void pull_schema_free(struct schema *s);

struct page {
    struct journal_payload pl;
    int type;                        /* JOURNAL_SNAPSHOT_PAGE or a plain rows container */
    uint64_t snapshot_id;
    const struct schema *s;
    uint64_t rows;
    size_t width;                    /* values in the current row */
    struct replay_value row_key, row_cursor;    /* of the current row */
    struct replay_value last_key, last_cursor;  /* of the last complete row */
    struct replay_value max_key, max_cursor;    /* largest (cursor, key) seen */
    /* track_ends (streams.c): each row's integer key and where it ends in pl,
     * so a page can be cut back to the keys its range still owns. */
    int track_ends;
    int64_t *end_keys;
    struct journal_payload_pos *ends;
    size_t ends_cap;
    char error[256];
};
extern const struct json_rows_cb pull_page_cb;   /* a struct page as ctx */
void pull_page_free(struct page *p);

struct progress {                    /* rows, rows/s and ETA on stderr, when on */
    int on;
    const char *table;
    uint64_t expected;
    double start, last;
};
void pull_progress_show(struct progress *pr, uint64_t rows, int done);

/* c->lock around every use of c->jw and c->rp (no-ops without one). */
void pull_lock(struct pull_ctx *c);
void pull_unlock(struct pull_ctx *c);

/* Typed values (the owner frees with pull_val_clear). */
void pull_val_clear(struct replay_value *v);
void pull_val_from_json(struct replay_value *v, const struct json_val *j);
void pull_val_copy(struct replay_value *dst, const struct replay_value *src);
struct journal_value pull_val_view(const struct replay_value *v);   /* borrows v */
int pull_val_cmp(const struct replay_value *a, const struct replay_value *b);
void pull_val_json(struct buf *b, const struct replay_value *v);   /* as a JSONSQL literal */

/* r->error from a portal failure; -1. */
int pull_fail_remote(struct pull_result *r, enum remote_status st, const char *what, const char *msg);
/* One page of query through rm into p (finished on success). 0 or -1 (r->error). */
int pull_fetch(struct pull_ctx *c, remote *rm, const char *query, struct page *p, struct pull_result *r);
/* Append one record (durable on return) and apply everything durable. 0 or -1. */
int pull_append_apply(struct pull_ctx *c, int type, const char *table, const struct journal_payload *pl,
                      uint64_t *seq, struct pull_result *r);
/* The first row of a select (count, max...) as n typed values; NULLs when it
 * has no rows. 0 or -1 (r->error). */
int pull_scalars(struct pull_ctx *c, const char *query, struct replay_value *out, int n, struct pull_result *r);

/* streams.c: the pages of snapshot snapshot_id of table t (its key an integer
 * column) over the keys not yet covered — all of them, or when resuming (st
 * not NULL) all but st's ranges and, for a snapshot begun by one cursor, the
 * keys up to st->pending_key — in up to t->streams key ranges at once,
 * pipelined: streams fetch while this thread journals (one fsync per batch)
 * and applies. *total counts the snapshot's rows journaled (in: so far);
 * *max_key gets the largest key journaled. 0, or -1 with r->error (what is
 * journaled stays, and a rerun resumes from it). */
int pull_streams_snapshot(struct pull_ctx *c, const struct config_table *t, const struct schema *s,
                          const struct replay_table *st, uint64_t snapshot_id, struct progress *pr,
                          uint64_t *total, struct replay_value *max_key, struct pull_result *r);
/* streams.c: the rows after (since, since_key) in (cursor, key) order (since
 * NULL: all; since_key NULL: cursor >= since), in up to
 * t->streams key ranges at once, as INCREMENTAL_PAGE records that leave the
 * mark where it is (the caller moves it when all are in). For a long
 * catch-up. *total counts rows journaled. 0 or -1 (r->error). */
int pull_streams_catchup(struct pull_ctx *c, const struct config_table *t, const struct schema *s,
                         const struct replay_value *since, const struct replay_value *since_key,
                         struct progress *pr, uint64_t *total, struct pull_result *r);
#endif
