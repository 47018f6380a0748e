/* apply.h — internal to replay/: what apply.c (every record type but the
 * offline writes') and apply_op.c (op, op_state) share. Not a public API:
 * replay.h is. */
#ifndef IA_REPLAY_APPLY_H
#define IA_REPLAY_APPLY_H
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "journal/journal.h"
#include "replay/cachedb.h"
#include "replay/replay.h"

/* One open transaction's bookkeeping; st is added to the caller's on COMMIT. */
struct batch {
    int open;
    uint64_t last_seq;         /* last record applied in it */
    uint64_t base_seq;         /* _agent_state.base_seq to commit */
    uint64_t rows, records;
    struct replay_stats st;
};

/* A refusal naming the record (seq, segment:offset, type, table): -1. */
int rp_rec_fail(const struct journal_record *rec, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* An SQLite failure while applying rec (the environment's, not the record's): -1. */
int rp_sql_fail(struct replay *r, const struct journal_record *rec, char *err, size_t errlen, const char *what);
/* Through replay_opts.warn, or the log; once per table for rp_warn_once. */
void rp_warn_msg(struct replay *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rp_warn_once(struct replay *r, const char *table, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A record of a table with no SCHEMA yet: 1 skipped (compacted start), -1 refused. */
int rp_no_schema(struct replay *r, const struct batch *b, const struct journal_record *rec, char *err,
                 size_t errlen);
/* The live table's layout is the last SCHEMA's; rp_behind refuses a record
 * that needs it to be. */
int rp_live_current(const struct rp_table *t);
int rp_behind(const struct journal_record *rec, const struct rp_table *t, char *err, size_t errlen);
/* sqlite3_step then reset: SQLITE_OK when done. */
int rp_step_reset(sqlite3_stmt *st);
/* DELETE FROM the live table (or the shadow) by key, prepared once into *st. */
int rp_prepare_delete(struct replay *r, const struct journal_record *rec, const struct rp_table *t, int shadow,
                      sqlite3_stmt **st, char *err, size_t errlen);

/* A pending snapshot's coverage (ranges.c, _agent_snapshot_ranges). check:
 * key is an INT inside (from, to], else -1 naming row and key. add: merge
 * (from, to] into table's intervals, -1 when it overlaps one. clear: forget
 * them all (the pending snapshot ended or was replaced). 0 or -1 with err. */
int rp_range_check(const struct journal_record *rec, const struct journal_value *from,
                   const struct journal_value *to, const struct journal_value *key, uint32_t row, char *err,
                   size_t errlen);
int rp_range_add(struct replay *r, const struct journal_record *rec, const char *table,
                 const struct journal_value *from, const struct journal_value *to, char *err, size_t errlen);
int rp_ranges_clear(struct replay *r, const struct journal_record *rec, const char *table, char *err, size_t errlen);

/* The offline writes' records (apply_op.c): 0, or -1 with err. */
int rp_apply_op(struct replay *r, struct batch *b, const struct journal_record *rec, char *err, size_t errlen);
int rp_apply_op_state(struct replay *r, struct batch *b, const struct journal_record *rec, char *err,
                      size_t errlen);

#endif
