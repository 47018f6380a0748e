/* apply.c — applying journal records to cache.db, in batches. The offline
 * writes' records (OP, OP_STATE) are applied by apply_op.c; the helpers both
 * use are in apply.h.
 *
 * EXACTLY ONCE (architecture.md invariant 2). _agent_state.applied_seq is the
 * last record whose effects are in cache.db. replay_apply() reads from
 * applied_seq + 1 and applies records in batches: one SQLite transaction holds
 * up to BATCH_RECORDS records or about BATCH_ROWS rows, and its last statements
 * write every changed table's metadata (rows, marks, pending snapshot) and the
 * new applied_seq; then COMMIT. A crash before COMMIT leaves none of the batch,
 * after it all of it, so a replay never applies a record twice or skips one.
 * Tests: test_replay.c "apply_twice_no_change", "crash_half_then_rest",
 * "position_commits_with_rows".
 * MARKS MOVE WITH DATA (invariant 3): marks live in _agent_tables and are
 * written in the same transaction as the rows of the record that carries them.
 * ERRORS stop the apply: a damaged journal commits the batch read so far (those
 * records are whole) and returns the journal's "segment N offset M" error; a
 * record that cannot be applied (unknown type, undecodable payload, a rule
 * below broken, an SQLite error) rolls the batch back, re-applies and commits
 * the records before it, and returns an error naming its seq, segment:offset
 * and table. Tests: "damaged_journal", "unknown_record_type", "bad_records".
 *
 * Records (the journal.h types):
 *   SCHEMA       stores columns, types, key, cursor, schema hash (_agent_columns,
 *                _agent_tables). Creates the live table, empty, if there is none.
 *                If the live table exists with another layout (columns, types,
 *                key or cursor): a table that never had a snapshot (on_demand)
 *                is recreated empty (but for the rows of open offline writes,
 *                carried into it: docs/outbox.md); otherwise the live table keeps serving its
 *                old layout ("schema_behind") until a snapshot swaps the new one
 *                in, and INCREMENTAL_PAGE/DELETIONS for it are errors until then.
 *                A changed layout also drops an unfinished snapshot's shadow.
 *   SNAPSHOT_BEGIN  (re)creates the shadow table "_agent_shadow_<table>" with the
 *                current layout (a new BEGIN supersedes an unfinished one);
 *                pending_id = its seq, pending_rows = 0, pending_key = NULL.
 *   SNAPSHOT_PAGE   rows into the shadow (INSERT OR REPLACE); its snapshot id must
 *                be pending_id; pending_rows += rows, pending_key = last row's key.
 *   SNAPSHOT_RANGE  as SNAPSHOT_PAGE, but pending_key stays: every row's key must
 *                be an INT inside the record's (FROM, TO], and that interval is
 *                merged into the table's COVERAGE (ranges.c), refused if it
 *                overlaps an interval journaled before. BEGIN, END and a layout
 *                change that drops the shadow clear the coverage.
 *                Tests: test_replay_range.c.
 *   SNAPSHOT_END checks snapshot id and row count (= rows journaled into it), then
 *                in the batch transaction (invariant 4): drop live, rename shadow,
 *                CREATE INDEX on (cursor, key), rows = count(*), marks from END,
 *                snapshot_id, snapshot_at_ms = now, pending cleared. Tests:
 *                "concurrent_reader", "interrupted_snapshot", "swap_with_user_view".
 *   INCREMENTAL_PAGE  upserts into the live table; mark = the record's mark unless
 *                both its parts are NULL (then the mark stays). While a snapshot
 *                is pending, into its shadow too: journal order is fetch order,
 *                so a row read again after a snapshot page (an op's re-read, an
 *                on_demand key) is not undone by that older page at the swap.
 *   DELETIONS    DELETE by key (one key column per row), from the shadow too.
 *   OP           applies the changeset (a conflict refuses it), adds the outbox row
 *                and its open keys; OP_STATE moves the op on: done (an insert's
 *                rows removed), conflict/rejected/dropped (change reverted), end
 *                states close the keys (docs/outbox.md, test_outbox.c).
 *   Open keys are PROTECTED: INCREMENTAL_PAGE and DELETIONS skip their rows,
 *                SNAPSHOT_END carries their live rows into the shadow. An op
 *                that ends while its table's snapshot is pending leaves its
 *                keys ENDED (still in _agent_outbox_keys, its state an end): not
 *                protected, but carried at that snapshot's END like open ones,
 *                since pages fetched before the write reached the portal hold
 *                the rows without it. The swap, and a new BEGIN, drop them.
 * A row with a NULL key value is an error. Types 10..255: an error.
 *
 * COMPACTED START. Pages, ENDs and DELETIONS of a table without a SCHEMA are an
 * error — except in a cache built from a journal whose start retention had
 * compacted away (_agent_state.base_seq > 1: the first record this cache ever
 * applied came after seq 1). There, records of a table are skipped until that
 * table's SCHEMA appears, and SNAPSHOT_PAGE/END of a snapshot whose BEGIN
 * precedes base_seq are skipped too (one warning per table through
 * replay_opts.warn). journal_compact() keeps a segment while any table it names
 * lacks a SCHEMA and a complete snapshot after it, so every skipped record is
 * superseded by a later complete snapshot. A cache that has applied records
 * (applied_seq > 0) must find applied_seq + 1 in the journal: otherwise records
 * it never applied were compacted away, and that is an error.
 * Tests: "compacted_start_skips", "compacted_past_applied". */
#include "replay/replay.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/base/buf.h"
#include "agent/base/clock.h"
#include "agent/base/err.h"
#include "journal/fsio.h"
#include "agent/base/log.h"
#include "agent/base/mem.h"
#include "journal/rows.h"
#include "replay/apply.h"
#include "replay/cachedb.h"

#define BATCH_ROWS 50000
#define BATCH_RECORDS 64


/* ---- errors and warnings ----------------------------------------------------------- */

int rp_rec_fail(const struct journal_record *rec, char *err, size_t errlen, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *tn = journal_type_name(rec->type);
    snprintf(err, errlen, "journal seq %llu (segment %llu offset %llu), %s record, table \"%s\": %s",
             (unsigned long long)rec->seq, (unsigned long long)rec->segment, (unsigned long long)rec->offset,
             tn ? tn : "unknown", rec->table, msg);
    return -1;
}

int rp_sql_fail(struct replay *r, const struct journal_record *rec, char *err, size_t errlen, const char *what)
{
    /* The environment's failures are not the record's: never offered to skip. */
    switch (sqlite3_extended_errcode(r->db) & 0xff) {
    case SQLITE_IOERR: case SQLITE_FULL: case SQLITE_CORRUPT: case SQLITE_NOTADB: case SQLITE_READONLY:
    case SQLITE_BUSY: case SQLITE_LOCKED: case SQLITE_NOMEM: case SQLITE_CANTOPEN: case SQLITE_PERM:
    case SQLITE_INTERRUPT: case SQLITE_PROTOCOL:
        r->env_fail = 1;
        break;
    default: break;
    }
    return rp_rec_fail(rec, err, errlen, "%s: %s", what, rp_errmsg(r->db).s);
}

static void warn_v(struct replay *r, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void warn_v(struct replay *r, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (r->warn) r->warn(r->warn_ctx, msg);
    else log_warn("%s", msg);
}

void rp_warn_msg(struct replay *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    warn_v(r, fmt, ap);
    va_end(ap);
}

void rp_warn_once(struct replay *r, const char *table, const char *fmt, ...)
{
    for (size_t i = 0; i < r->nwarned; i++)
        if (strcmp(r->warned[i], table) == 0) return;
    r->warned = xrealloc(r->warned, (r->nwarned + 1) * sizeof *r->warned);
    r->warned[r->nwarned++] = xstrdup(table);
    va_list ap;
    va_start(ap, fmt);
    warn_v(r, fmt, ap);
    va_end(ap);
}

/* A record of a table with no SCHEMA: skipped (1) in a cache with a compacted
 * start, else an error (-1). */
int rp_no_schema(struct replay *r, const struct batch *b, const struct journal_record *rec, char *err,
                     size_t errlen)
{
    if (rp_schema_skipped(r, rec->table)) {
        rp_warn_once(r, rec->table,
                  "journal seq %llu: table \"%s\": skipping its records: its SCHEMA was skipped "
                  "(`iptv-agent replay --skip`) and no later one applied",
                  (unsigned long long)rec->seq, rec->table);
        return 1;
    }
    if (b->base_seq > 1) {
        rp_warn_once(r, rec->table,
                  "journal seq %llu: table \"%s\": skipping its records before its SCHEMA (the journal's "
                  "start, before seq %llu, was compacted away; a later snapshot supersedes them)",
                  (unsigned long long)rec->seq, rec->table, (unsigned long long)b->base_seq);
        return 1;
    }
    return rp_rec_fail(rec, err, errlen, "no SCHEMA record for the table precedes it");
}

/* A page or END whose snapshot id is not the pending one: skipped (1) when its
 * BEGIN was compacted away before this cache's start, else an error (-1). */
static int wrong_snapshot(struct replay *r, const struct batch *b, const struct journal_record *rec,
                          const struct rp_table *t, uint64_t id, char *err, size_t errlen)
{
    if (b->base_seq > 1 && id < b->base_seq && t->pending_id == 0) {
        rp_warn_once(r, rec->table,
                  "journal seq %llu: table \"%s\": skipping records of snapshot %llu, whose SNAPSHOT_BEGIN "
                  "was compacted away (a later snapshot supersedes them)",
                  (unsigned long long)rec->seq, rec->table, (unsigned long long)id);
        return 1;
    }
    if (t->pending_id)
        return rp_rec_fail(rec, err, errlen, "snapshot id %llu does not match the pending snapshot %llu",
                        (unsigned long long)id, (unsigned long long)t->pending_id);
    return rp_rec_fail(rec, err, errlen, "snapshot id %llu, but no snapshot of the table is pending",
                    (unsigned long long)id);
}

/* ---- DDL --------------------------------------------------------------------------- */

static void shadow_name(struct buf *b, const char *table)
{
    char name[JOURNAL_TABLE_MAX + 32];
    snprintf(name, sizeof name, "_agent_shadow_%s", table);
    rp_quote(b, name);
}

static const char *decl_type(enum journal_coltype t)
{
    switch (t) {
    case JOURNAL_COL_INT: return " INTEGER";
    case JOURNAL_COL_REAL: return " REAL";
    case JOURNAL_COL_TEXT: return " TEXT";
    case JOURNAL_COL_BOOL: return " BOOLEAN";
    case JOURNAL_COL_JSON: return " JSON";
    case JOURNAL_COL_ANY:
    default: return "";
    }
}

/* CREATE TABLE <quoted name> with t's current layout, named `as` (NULL: the
 * table's own name, or its shadow's). An INT key becomes "INTEGER PRIMARY
 * KEY", SQLite's rowid alias: the fastest layout to load. */
static int create_table_as(struct replay *r, const struct journal_record *rec, const struct rp_table *t, int shadow,
                           const char *as, char *err, size_t errlen)
{
    struct buf b = {0};
    buf_puts(&b, "CREATE TABLE ");
    if (as) rp_quote(&b, as);
    else if (shadow) shadow_name(&b, t->name);
    else rp_quote(&b, t->name);
    buf_puts(&b, " (");
    for (uint32_t i = 0; i < t->ncols; i++) {
        if (i) buf_puts(&b, ", ");
        rp_quote(&b, t->cols[i]);
        buf_puts(&b, decl_type(t->types[i]));
        if ((int)i == t->key_col) buf_puts(&b, " PRIMARY KEY");
    }
    buf_puts(&b, ")");
    int rc = sqlite3_exec(r->db, b.p, NULL, NULL, NULL);
    buf_free(&b);
    if (rc != SQLITE_OK) return rp_sql_fail(r, rec, err, errlen, shadow || as ? "creating the shadow table" : "creating the table");
    return 0;
}

static int create_table(struct replay *r, const struct journal_record *rec, const struct rp_table *t, int shadow,
                        char *err, size_t errlen)
{
    return create_table_as(r, rec, t, shadow, NULL, err, errlen);
}

/* The secondary index built after the load: (cursor, key) for local range reads. */
static int create_indexes(struct replay *r, const struct journal_record *rec, const struct rp_table *t,
                          char *err, size_t errlen)
{
    if (t->cursor_col < 0 || t->cursor_col == t->key_col) return 0;
    char iname[JOURNAL_TABLE_MAX + 32];
    snprintf(iname, sizeof iname, "_agent_cursor_%s", t->name);
    struct buf b = {0};
    buf_puts(&b, "CREATE INDEX ");
    rp_quote(&b, iname);
    buf_puts(&b, " ON ");
    rp_quote(&b, t->name);
    buf_puts(&b, " (");
    rp_quote(&b, t->cols[t->cursor_col]);
    if (t->key_col >= 0) {
        buf_puts(&b, ", ");
        rp_quote(&b, t->cols[t->key_col]);
    }
    buf_puts(&b, ")");
    int rc = sqlite3_exec(r->db, b.p, NULL, NULL, NULL);
    buf_free(&b);
    return rc == SQLITE_OK ? 0 : rp_sql_fail(r, rec, err, errlen, "creating the cursor index");
}

static int drop_table(struct replay *r, const struct journal_record *rec, const char *table, int shadow, char *err,
                      size_t errlen)
{
    struct buf b = {0};
    buf_puts(&b, "DROP TABLE IF EXISTS ");
    if (shadow) shadow_name(&b, table);
    else rp_quote(&b, table);
    int rc = sqlite3_exec(r->db, b.p, NULL, NULL, NULL);
    buf_free(&b);
    return rc == SQLITE_OK ? 0 : rp_sql_fail(r, rec, err, errlen, shadow ? "dropping the shadow table" : "dropping the table");
}

/* Prepare "<verb> <target> VALUES (?1..?n)" or the keyed DELETE, once per table. */
static int prepare_insert(struct replay *r, const struct journal_record *rec, const struct rp_table *t,
                          const char *verb, int shadow, sqlite3_stmt **st, char *err, size_t errlen)
{
    if (*st) return 0;
    struct buf b = {0};
    buf_puts(&b, verb);
    if (shadow) shadow_name(&b, t->name);
    else rp_quote(&b, t->name);
    buf_puts(&b, " VALUES (");
    for (uint32_t i = 0; i < t->ncols; i++) buf_puts(&b, i ? ", ?" : "?");
    buf_puts(&b, ")");
    int rc = sqlite3_prepare_v3(r->db, b.p, (int)b.len, SQLITE_PREPARE_PERSISTENT, st, NULL);
    buf_free(&b);
    return rc == SQLITE_OK ? 0 : rp_sql_fail(r, rec, err, errlen, "preparing the insert");
}

/* The live table's layout is the last SCHEMA's. */
int rp_live_current(const struct rp_table *t)
{
    return t->live && strcmp(t->live_hash, t->hash) == 0 && t->live_key_col == t->key_col &&
           t->live_cursor_col == t->cursor_col;
}

static void set_live_layout(struct rp_table *t)
{
    t->live = 1;
    memcpy(t->live_hash, t->hash, sizeof t->hash);
    t->live_key_col = t->key_col;
    t->live_cursor_col = t->cursor_col;
}

/* ---- record types ---------------------------------------------------------------------- */

static int has_open_keys(struct replay *r, const struct journal_record *rec, struct rp_table *t, char *err,
                         size_t errlen);
static int carry_open_rows(struct replay *r, const struct journal_record *rec, struct rp_table *t, const char *into,
                           char *err, size_t errlen);
static int drop_ended_keys(struct replay *r, const struct journal_record *rec, const struct rp_table *t, char *err,
                           size_t errlen);

static int apply_schema(struct replay *r, const struct journal_record *rec, char *err, size_t errlen)
{
    char why[IA_ERRLEN];
    struct journal_schema s;
    if (replay_check_name(rec->table, why, sizeof why) != 0) return rp_rec_fail(rec, err, errlen, "%s", why);
    if (journal_decode_schema(rec->payload, rec->len, &s, why, sizeof why) != 0)
        return rp_rec_fail(rec, err, errlen, "%s", why);
    const char **names = xcalloc(s.ncols, sizeof *names);
    enum journal_coltype *types = xcalloc(s.ncols, sizeof *types);
    for (uint32_t i = 0; i < s.ncols; i++) {
        names[i] = s.cols[i].name;
        types[i] = s.cols[i].type;
    }
    char hash[17];
    replay_schema_hash(s.ncols, names, types, hash);
    free(names);
    free(types);
    struct rp_table *t = rp_table(r, rec->table, why, sizeof why);
    if (!t) {
        journal_schema_free(&s);
        return rp_rec_fail(rec, err, errlen, "%s", why);
    }
    int same = t->known && strcmp(t->hash, hash) == 0 && t->key_col == s.key_col && t->cursor_col == s.cursor_col;
    if (!same) {
        if (t->known) t->schema_changed_ms = clock_wall_ms();   /* reported by status */
        /* The shadow was made with the old layout: the snapshot must start over. */
        if (t->pending_id) {
            rp_table_finalize(t);
            if (drop_table(r, rec, t->name, 1, err, errlen) != 0 ||
                rp_ranges_clear(r, rec, t->name, err, errlen) != 0)
                goto fail;
            t->pending_id = t->pending_rows = 0;
            rp_value_clear(&t->pending_key);
        }
        for (uint32_t i = 0; i < t->ncols; i++) free(t->cols[i]);
        free(t->cols);
        free(t->types);
        t->ncols = s.ncols;
        t->cols = xcalloc(s.ncols, sizeof *t->cols);
        t->types = xcalloc(s.ncols, sizeof *t->types);
        for (uint32_t i = 0; i < s.ncols; i++) {
            t->cols[i] = xstrdup(s.cols[i].name);
            t->types[i] = s.cols[i].type;
        }
        memcpy(t->hash, hash, sizeof hash);
        t->key_col = s.key_col;
        t->cursor_col = s.cursor_col;
        t->known = 1;
        t->dirty = 1;
        if (rp_save_columns(r, t, why, sizeof why) != 0) {
            rp_rec_fail(rec, err, errlen, "%s", why);
            goto fail;
        }
    }
    journal_schema_free(&s);
    if (!t->live || (!rp_live_current(t) && t->snapshot_id == 0)) {
        /* No live table yet, or one that only on-demand/incremental rows filled
         * (no snapshot to keep serving): start it empty with the new layout —
         * but for the keys of open offline writes, whose live rows are carried
         * into it as a snapshot swap carries them (docs/outbox.md: their ops
         * stay open and are sent; their rows stay visible). */
        int open = t->live && t->key_col >= 0 ? has_open_keys(r, rec, t, err, errlen) : 0;
        if (open < 0) return -1;
        if (t->live && t->key_col < 0 && has_open_keys(r, rec, t, err, errlen) > 0)
            rp_warn_msg(r, "journal seq %llu: table \"%s\": the new layout has no key column: the rows of its open "
                     "offline writes are not carried into it", (unsigned long long)rec->seq, t->name);
        char carry[JOURNAL_TABLE_MAX + 32];
        snprintf(carry, sizeof carry, "_agent_carry_%s", t->name);
        if (open) {
            struct buf q = {0};
            buf_puts(&q, "DROP TABLE IF EXISTS ");
            rp_quote(&q, carry);
            int rc = sqlite3_exec(r->db, q.p, NULL, NULL, NULL);
            buf_free(&q);
            if (rc != SQLITE_OK) return rp_sql_fail(r, rec, err, errlen, "dropping the carry table");
            if (create_table_as(r, rec, t, 0, carry, err, errlen) != 0 ||
                carry_open_rows(r, rec, t, carry, err, errlen) != 0)
                return -1;
        }
        rp_table_finalize(t);
        if (t->live && drop_table(r, rec, t->name, 0, err, errlen) != 0) return -1;
        if (open) {
            struct buf q = {0};
            buf_puts(&q, "ALTER TABLE ");
            rp_quote(&q, carry);
            buf_puts(&q, " RENAME TO ");
            rp_quote(&q, t->name);
            int rc = sqlite3_exec(r->db, q.p, NULL, NULL, NULL);
            buf_free(&q);
            if (rc != SQLITE_OK) return rp_sql_fail(r, rec, err, errlen, "renaming the carry table");
        } else if (create_table(r, rec, t, 0, err, errlen) != 0) {
            return -1;
        }
        if (create_indexes(r, rec, t, err, errlen) != 0) return -1;
        set_live_layout(t);
        t->rows = 0;
        if (open) {
            struct buf q = {0};
            buf_puts(&q, "SELECT count(*) FROM ");
            rp_quote(&q, t->name);
            sqlite3_stmt *st;
            int rc = sqlite3_prepare_v2(r->db, q.p, (int)q.len, &st, NULL);
            buf_free(&q);
            if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) t->rows = (uint64_t)sqlite3_column_int64(st, 0);
            else rc = SQLITE_ERROR;
            sqlite3_finalize(st);
            if (rc != SQLITE_OK) return rp_sql_fail(r, rec, err, errlen, "counting rows");
        }
        rp_value_clear(&t->mark_cursor);
        rp_value_clear(&t->mark_key);
        t->dirty = 1;
    }
    return 0;
fail:
    journal_schema_free(&s);
    return -1;
}

static int apply_begin(struct replay *r, struct batch *b, const struct journal_record *rec, char *err, size_t errlen)
{
    char why[IA_ERRLEN];
    uint64_t expected;
    if (journal_decode_snapshot_begin(rec->payload, rec->len, &expected, why, sizeof why) != 0)
        return rp_rec_fail(rec, err, errlen, "%s", why);
    struct rp_table *t = rp_table(r, rec->table, why, sizeof why);
    if (!t) return rp_rec_fail(rec, err, errlen, "%s", why);
    if (!t->known) return rp_no_schema(r, b, rec, err, errlen) > 0 ? 0 : -1;
    sqlite3_finalize(t->ins_shadow);
    sqlite3_finalize(t->del_shadow);
    t->ins_shadow = t->del_shadow = NULL;
    if (drop_table(r, rec, t->name, 1, err, errlen) != 0 || create_table(r, rec, t, 1, err, errlen) != 0 ||
        drop_ended_keys(r, rec, t, err, errlen) != 0 || rp_ranges_clear(r, rec, t->name, err, errlen) != 0)
        return -1;
    t->pending_id = rec->seq;
    t->pending_rows = 0;
    rp_value_clear(&t->pending_key);
    t->dirty = 1;
    return 0;
}

/* Bind one row into st (ncols values). */
static int bind_row(sqlite3_stmt *st, const struct journal_value *v, uint32_t ncols)
{
    for (uint32_t c = 0; c < ncols; c++) {
        int rc = rp_bind(st, (int)c + 1, &v[c]);
        if (rc != SQLITE_OK) return rc;
    }
    return SQLITE_OK;
}

int rp_step_reset(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Common checks of a rows-carrying record; decodes it into pg. 1 = skip. */
static int page_prelude(struct replay *r, struct batch *b, const struct journal_record *rec, struct journal_page *pg,
                        struct rp_table **tp, char *err, size_t errlen)
{
    char why[IA_ERRLEN];
    if (journal_decode_page(rec->type, rec->payload, rec->len, pg, why, sizeof why) != 0)
        return rp_rec_fail(rec, err, errlen, "%s", why);
    struct rp_table *t = rp_table(r, rec->table, why, sizeof why);
    if (!t) return rp_rec_fail(rec, err, errlen, "%s", why);
    *tp = t;
    if (!t->known) return rp_no_schema(r, b, rec, err, errlen);
    return 0;
}

static int check_width(const struct journal_record *rec, const struct journal_page *pg, const struct rp_table *t,
                       char *err, size_t errlen)
{
    if (pg->rows.nrows && pg->rows.ncols != t->ncols)
        return rp_rec_fail(rec, err, errlen, "rows of %u columns, but the table's SCHEMA has %u", pg->rows.ncols,
                        t->ncols);
    return 0;
}

static int null_key(const struct journal_record *rec, const struct rp_table *t, uint32_t row, char *err, size_t errlen)
{
    return rp_rec_fail(rec, err, errlen, "row %u: key column \"%s\" is NULL", row, t->cols[t->key_col]);
}

/* ---- protected keys (docs/outbox.md) ---------------------------------------------------- */

/* Does t have open outbox keys: 1 yes, 0 no, -1 error. One indexed lookup per
 * record, so a table without open ops pays nothing more per row. */
static int has_open_keys(struct replay *r, const struct journal_record *rec, struct rp_table *t, char *err,
                         size_t errlen)
{
    if (!t->open_any &&
        sqlite3_prepare_v3(r->db, "SELECT EXISTS (SELECT 1 FROM _agent_outbox_keys AS k JOIN _agent_outbox AS o ON o.id = k.id"
                           " WHERE k.tbl = ?1 AND o.state IN ('pending', 'sent'))", -1,
                           SQLITE_PREPARE_PERSISTENT, &t->open_any, NULL) != SQLITE_OK)
        return rp_sql_fail(r, rec, err, errlen, "reading the outbox keys");
    sqlite3_bind_text(t->open_any, 1, t->name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(t->open_any);
    int yes = rc == SQLITE_ROW && sqlite3_column_int(t->open_any, 0);
    sqlite3_reset(t->open_any);
    return rc == SQLITE_ROW ? yes : rp_sql_fail(r, rec, err, errlen, "reading the outbox keys");
}

/* Is key v of t open: 1 yes, 0 no, -1 error. The stored keys come from the
 * table itself (the op's changeset), so they carry the key column's affinity; a
 * TEXT key column turns a pulled number into text the same way (CAST), and an
 * INT key is INTEGER PRIMARY KEY (non-integers are refused). Other declared
 * types compare the value as the journal carries it. */
static int key_open(struct replay *r, const struct journal_record *rec, struct rp_table *t,
                    const struct journal_value *v, char *err, size_t errlen)
{
    if (!t->open_key) {
        const char *sql = t->types[t->key_col] == JOURNAL_COL_TEXT
                              ? "SELECT EXISTS (SELECT 1 FROM _agent_outbox_keys AS k JOIN _agent_outbox AS o ON o.id ="
                                " k.id WHERE k.tbl = ?1 AND k.key = CAST(?2 AS TEXT) AND o.state IN ('pending', 'sent'))"
                              : "SELECT EXISTS (SELECT 1 FROM _agent_outbox_keys AS k JOIN _agent_outbox AS o ON o.id ="
                                " k.id WHERE k.tbl = ?1 AND k.key = ?2 AND o.state IN ('pending', 'sent'))";
        if (sqlite3_prepare_v3(r->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &t->open_key, NULL) != SQLITE_OK)
            return rp_sql_fail(r, rec, err, errlen, "reading the outbox keys");
    }
    sqlite3_bind_text(t->open_key, 1, t->name, -1, SQLITE_STATIC);
    rp_bind(t->open_key, 2, v);
    int rc = sqlite3_step(t->open_key);
    int yes = rc == SQLITE_ROW && sqlite3_column_int(t->open_key, 0);
    sqlite3_reset(t->open_key);
    return rc == SQLITE_ROW ? yes : rp_sql_fail(r, rec, err, errlen, "reading the outbox keys");
}

/* At a snapshot swap: the shadow takes the live rows of t's open keys in place
 * of the pulled ones, and loses the pulled rows of keys an open op deleted
 * (no live row to carry). Columns go by name, so a new layout keeps what it
 * shares with the old one; when the key column itself changed, the open keys
 * name another column and nothing can be carried (a warning says so). "key IN
 * (SELECT key ...)" compares with the shadow key column's affinity. */
static int carry_open_rows(struct replay *r, const struct journal_record *rec, struct rp_table *t, const char *into,
                           char *err, size_t errlen)
{
    /* Open and ended keys alike (see the file's comment). */
    sqlite3_stmt *st = NULL;
    int any = 0, rc = sqlite3_prepare_v2(r->db, "SELECT EXISTS (SELECT 1 FROM _agent_outbox_keys WHERE tbl = ?1)", -1,
                                         &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        any = rc == SQLITE_ROW && sqlite3_column_int(st, 0);
        rc = rc == SQLITE_ROW ? SQLITE_OK : rc;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (rc != SQLITE_OK) return rp_sql_fail(r, rec, err, errlen, "reading the outbox keys");
    if (!any) return 0;
    char shname[JOURNAL_TABLE_MAX + 32];
    if (into) snprintf(shname, sizeof shname, "%s", into);
    else snprintf(shname, sizeof shname, "_agent_shadow_%s", t->name);
    const char *key = t->cols[t->key_col];
    struct buf cols = {0}, q = {0};
    int live_key = 0;
    rc = sqlite3_prepare_v2(r->db, "SELECT l.name, l.pk FROM pragma_table_info(?1) AS l JOIN pragma_table_info(?2) AS s"
                                   " ON s.name = l.name ORDER BY l.cid", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, shname, -1, SQLITE_STATIC);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            const char *name = (const char *)sqlite3_column_text(st, 0);
            if (cols.len) buf_puts(&cols, ", ");
            rp_quote(&cols, name);
            if (sqlite3_column_int(st, 1) == 1 && strcmp(name, key) == 0) live_key = 1;
        }
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK) {
        buf_free(&cols);
        return rp_sql_fail(r, rec, err, errlen, "reading the live table's columns");
    }
    if (!live_key) {
        char msg[1024];
        snprintf(msg, sizeof msg, "journal seq %llu: table \"%s\": the new layout's key column \"%s\" is not the live "
                 "table's: the rows of open offline writes are not carried into it",
                 (unsigned long long)rec->seq, t->name, key);
        if (r->warn) r->warn(r->warn_ctx, msg);
        else log_warn("%s", msg);
        buf_free(&cols);
        return 0;
    }
    for (int step = 0; step < 2 && rc == SQLITE_OK; step++) {
        buf_reset(&q);
        if (step == 0) {
            buf_puts(&q, "DELETE FROM ");
            rp_quote(&q, shname);
        } else {
            buf_puts(&q, "INSERT INTO ");
            rp_quote(&q, shname);
            buf_puts(&q, " (");
            buf_append(&q, cols.p, cols.len);
            buf_puts(&q, ") SELECT ");
            buf_append(&q, cols.p, cols.len);
            buf_puts(&q, " FROM ");
            rp_quote(&q, t->name);
        }
        buf_puts(&q, " WHERE ");
        rp_quote(&q, key);
        buf_puts(&q, " IN (SELECT key FROM _agent_outbox_keys WHERE tbl = ?1)");
        rc = sqlite3_prepare_v2(r->db, q.p, (int)q.len, &st, NULL);
        if (rc == SQLITE_OK) {
            sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
            rc = rp_step_reset(st);
        }
        sqlite3_finalize(st);
    }
    buf_free(&cols);
    buf_free(&q);
    return rc == SQLITE_OK ? 0 : rp_sql_fail(r, rec, err, errlen, "carrying the rows of open offline writes");
}

/* Forget t's ENDED keys (ops that ended while its snapshot was pending): at
 * the swap that carried their rows, and at a BEGIN, whose pages are all read
 * after the ends. */
static int drop_ended_keys(struct replay *r, const struct journal_record *rec, const struct rp_table *t, char *err,
                           size_t errlen)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(r->db, "DELETE FROM _agent_outbox_keys WHERE tbl = ?1 AND id IN (SELECT id FROM"
                                       " _agent_outbox WHERE tbl = ?1 AND state NOT IN ('pending', 'sent'))",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
        rc = rp_step_reset(st);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? 0 : rp_sql_fail(r, rec, err, errlen, "dropping the keys of ended offline writes");
}

/* SNAPSHOT_PAGE and SNAPSHOT_RANGE: the same rows into the shadow; a range also
 * proves its interval read (coverage) and does not move pending_key, which
 * belongs to a single serial cursor. */
static int apply_snapshot_page(struct replay *r, struct batch *b, const struct journal_record *rec, char *err,
                               size_t errlen)
{
    struct journal_page pg;
    struct rp_table *t;
    int rc = page_prelude(r, b, rec, &pg, &t, err, errlen);
    if (rc) return rc > 0 ? 0 : -1;
    if (pg.snapshot_id != t->pending_id) return wrong_snapshot(r, b, rec, t, pg.snapshot_id, err, errlen) > 0 ? 0 : -1;
    if (check_width(rec, &pg, t, err, errlen) != 0) return -1;
    int range = rec->type == JOURNAL_SNAPSHOT_RANGE;
    if (range && t->key_col < 0)
        return rp_rec_fail(rec, err, errlen, "snapshot range for a table without a key column");
    /* The coverage first: an overlap is refused before any row is written. */
    if (range && rp_range_add(r, rec, t->name, &pg.range_from, &pg.range_to, err, errlen) != 0) return -1;
    if (prepare_insert(r, rec, t, "INSERT OR REPLACE INTO ", 1, &t->ins_shadow, err, errlen) != 0) return -1;
    struct journal_value *v = xmalloc((t->ncols ? t->ncols : 1) * sizeof *v);
    char why[IA_ERRLEN];
    uint32_t n = 0;
    int more;
    while ((more = journal_rows_next(&pg.rows, v, why, sizeof why)) == 1) {
        if (t->key_col >= 0 && v[t->key_col].type == JOURNAL_NULL) {
            free(v);
            return null_key(rec, t, n, err, errlen);
        }
        if (range && rp_range_check(rec, &pg.range_from, &pg.range_to, &v[t->key_col], n, err, errlen) != 0) {
            free(v);
            return -1;
        }
        if (bind_row(t->ins_shadow, v, t->ncols) != SQLITE_OK || rp_step_reset(t->ins_shadow) != SQLITE_OK) {
            char what[64];
            snprintf(what, sizeof what, "row %u", n);
            free(v);
            return rp_sql_fail(r, rec, err, errlen, what);
        }
        n++;
    }
    if (more < 0) {
        free(v);
        return rp_rec_fail(rec, err, errlen, "%s", why);
    }
    if (n && t->key_col >= 0 && !range) rp_value_set(&t->pending_key, &v[t->key_col]);
    free(v);
    t->pending_rows += n;
    t->dirty = 1;
    b->rows += n;
    b->st.rows_written += n;
    return 0;
}

/* Rows of the live table whose key is not in the shadow: what the swap deletes
 * (the summary's `deleted`). 0 when there is no live table or no shared key
 * column to compare by (the key itself changed). */
static uint64_t rows_gone(struct replay *r, const struct rp_table *t)
{
    if (!t->live) return 0;
    struct buf q = {0}, sh = {0};
    char key[JOURNAL_TABLE_MAX + 32] = "";
    uint64_t n = 0;
    shadow_name(&sh, t->name);
    sqlite3_stmt *st = NULL;
    /* The live table's key, by its layout (it may predate the last SCHEMA). */
    if (sqlite3_prepare_v2(r->db, "SELECT l.name FROM pragma_table_info(?1) AS l JOIN pragma_table_info(?2) AS s"
                                  " ON s.name = l.name WHERE l.pk = 1", -1, &st, NULL) == SQLITE_OK) {
        char shname[JOURNAL_TABLE_MAX + 32];
        snprintf(shname, sizeof shname, "_agent_shadow_%s", t->name);
        sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, shname, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
            snprintf(key, sizeof key, "%s", (const char *)sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    st = NULL;
    if (key[0]) {
        buf_puts(&q, "SELECT count(*) FROM ");
        rp_quote(&q, t->name);
        buf_puts(&q, " AS l WHERE NOT EXISTS (SELECT 1 FROM ");
        buf_append(&q, sh.p, sh.len);
        buf_puts(&q, " AS s WHERE s.");
        rp_quote(&q, key);
        buf_puts(&q, " = l.");
        rp_quote(&q, key);
        buf_puts(&q, ")");
        if (sqlite3_prepare_v2(r->db, q.p, (int)q.len, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
            n = (uint64_t)sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    buf_free(&q);
    buf_free(&sh);
    return n;
}

static int apply_snapshot_end(struct replay *r, struct batch *b, const struct journal_record *rec, char *err,
                              size_t errlen)
{
    char why[IA_ERRLEN];
    struct journal_snapshot_end e;
    if (journal_decode_snapshot_end(rec->payload, rec->len, &e, why, sizeof why) != 0)
        return rp_rec_fail(rec, err, errlen, "%s", why);
    struct rp_table *t = rp_table(r, rec->table, why, sizeof why);
    if (!t) return rp_rec_fail(rec, err, errlen, "%s", why);
    if (!t->known) return rp_no_schema(r, b, rec, err, errlen) > 0 ? 0 : -1;
    if (e.snapshot_id != t->pending_id) return wrong_snapshot(r, b, rec, t, e.snapshot_id, err, errlen) > 0 ? 0 : -1;
    if (e.row_count != t->pending_rows)
        return rp_rec_fail(rec, err, errlen, "snapshot %llu: END says %llu rows, %llu were journaled",
                        (unsigned long long)e.snapshot_id, (unsigned long long)e.row_count,
                        (unsigned long long)t->pending_rows);
    /* The swap (invariant 4): all of it inside the batch transaction, so another
     * connection sees the old table or the new one. Open offline writes keep
     * their rows (docs/outbox.md, protected keys). */
    if (t->live && t->key_col >= 0 && carry_open_rows(r, rec, t, NULL, err, errlen) != 0) return -1;
    if (drop_ended_keys(r, rec, t, err, errlen) != 0 || rp_ranges_clear(r, rec, t->name, err, errlen) != 0)
        return -1;
    b->st.rows_deleted += rows_gone(r, t);
    rp_table_finalize(t);
    if (drop_table(r, rec, t->name, 0, err, errlen) != 0) return -1;
    struct buf q = {0};
    buf_puts(&q, "ALTER TABLE ");
    shadow_name(&q, t->name);
    buf_puts(&q, " RENAME TO ");
    rp_quote(&q, t->name);
    int rc = sqlite3_exec(r->db, q.p, NULL, NULL, NULL);
    buf_free(&q);
    if (rc != SQLITE_OK) return rp_sql_fail(r, rec, err, errlen, "renaming the shadow table");
    set_live_layout(t);
    if (create_indexes(r, rec, t, err, errlen) != 0) return -1;
    /* count(*) rather than the journaled count: duplicate keys collapse. */
    buf_puts(&q, "SELECT count(*) FROM ");
    rp_quote(&q, t->name);
    sqlite3_stmt *st;
    rc = sqlite3_prepare_v2(r->db, q.p, (int)q.len, &st, NULL);
    buf_free(&q);
    if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) t->rows = (uint64_t)sqlite3_column_int64(st, 0);
    else rc = SQLITE_ERROR;
    sqlite3_finalize(st);
    if (rc != SQLITE_OK) return rp_sql_fail(r, rec, err, errlen, "counting rows");
    rp_value_set(&t->mark_cursor, &e.mark_cursor);
    rp_value_set(&t->mark_key, &e.mark_key);
    t->snapshot_id = e.snapshot_id;
    t->snapshot_at_ms = clock_wall_ms();
    t->pending_id = t->pending_rows = 0;
    rp_value_clear(&t->pending_key);
    t->dirty = 1;
    b->st.snapshots++;
    return 0;
}

int rp_behind(const struct journal_record *rec, const struct rp_table *t, char *err, size_t errlen)
{
    return rp_rec_fail(rec, err, errlen,
                    "the live table still has the layout before the last SCHEMA (schema %s, now %s): "
                    "only a snapshot can bring it up to date",
                    t->live_hash[0] ? t->live_hash : "none", t->hash);
}

static int apply_incremental(struct replay *r, struct batch *b, const struct journal_record *rec, char *err,
                             size_t errlen)
{
    struct journal_page pg;
    struct rp_table *t;
    int rc = page_prelude(r, b, rec, &pg, &t, err, errlen);
    if (rc) return rc > 0 ? 0 : -1;
    if (!rp_live_current(t)) return rp_behind(rec, t, err, errlen);
    if (check_width(rec, &pg, t, err, errlen) != 0) return -1;
    if (prepare_insert(r, rec, t, "INSERT OR IGNORE INTO ", 0, &t->ign_live, err, errlen) != 0 ||
        prepare_insert(r, rec, t, "INSERT OR REPLACE INTO ", 0, &t->rep_live, err, errlen) != 0 ||
        (t->pending_id && prepare_insert(r, rec, t, "INSERT OR REPLACE INTO ", 1, &t->ins_shadow, err, errlen) != 0))
        return -1;
    /* Rows of keys an open offline write holds are left alone (protected keys). */
    int prot = t->key_col >= 0 ? has_open_keys(r, rec, t, err, errlen) : 0;
    if (prot < 0) return -1;
    struct journal_value *v = xmalloc((t->ncols ? t->ncols : 1) * sizeof *v);
    char why[IA_ERRLEN];
    uint32_t n = 0, held_rows = 0;
    int more;
    while ((more = journal_rows_next(&pg.rows, v, why, sizeof why)) == 1) {
        if (t->key_col >= 0 && v[t->key_col].type == JOURNAL_NULL) {
            free(v);
            return null_key(rec, t, n, err, errlen);
        }
        if (prot) {
            int held = key_open(r, rec, t, &v[t->key_col], err, errlen);
            if (held < 0) {
                free(v);
                return -1;
            }
            if (held) {
                n++;
                held_rows++;
                continue;
            }
        }
        /* Insert, or replace when the key exists: the row count grows only on
         * a new key, which INSERT OR IGNORE's change count tells. */
        rc = bind_row(t->ign_live, v, t->ncols);
        if (rc == SQLITE_OK) rc = rp_step_reset(t->ign_live);
        if (rc == SQLITE_OK) {
            if (sqlite3_changes(r->db)) {
                t->rows++;
            } else {
                rc = bind_row(t->rep_live, v, t->ncols);
                if (rc == SQLITE_OK) rc = rp_step_reset(t->rep_live);
            }
        }
        if (rc == SQLITE_OK && t->pending_id) {   /* newer than the shadow's pages so far */
            rc = bind_row(t->ins_shadow, v, t->ncols);
            if (rc == SQLITE_OK) rc = rp_step_reset(t->ins_shadow);
        }
        if (rc != SQLITE_OK) {
            char what[64];
            snprintf(what, sizeof what, "row %u", n);
            free(v);
            return rp_sql_fail(r, rec, err, errlen, what);
        }
        n++;
    }
    free(v);
    if (more < 0) return rp_rec_fail(rec, err, errlen, "%s", why);
    if (pg.mark_cursor.type != JOURNAL_NULL || pg.mark_key.type != JOURNAL_NULL) {
        rp_value_set(&t->mark_cursor, &pg.mark_cursor);
        rp_value_set(&t->mark_key, &pg.mark_key);
    }
    t->dirty = 1;
    b->rows += n;
    b->st.rows_written += n - held_rows;
    return 0;
}

/* DELETE FROM the live table (or the shadow) by key, prepared once. */
int rp_prepare_delete(struct replay *r, const struct journal_record *rec, const struct rp_table *t, int shadow,
                          sqlite3_stmt **st, char *err, size_t errlen)
{
    if (*st) return 0;
    struct buf q = {0};
    buf_puts(&q, "DELETE FROM ");
    if (shadow) shadow_name(&q, t->name);
    else rp_quote(&q, t->name);
    buf_puts(&q, " WHERE ");
    rp_quote(&q, t->cols[t->key_col]);
    buf_puts(&q, " = ?1");
    int rc = sqlite3_prepare_v3(r->db, q.p, (int)q.len, SQLITE_PREPARE_PERSISTENT, st, NULL);
    buf_free(&q);
    return rc == SQLITE_OK ? 0 : rp_sql_fail(r, rec, err, errlen, "preparing the delete");
}

static int apply_deletions(struct replay *r, struct batch *b, const struct journal_record *rec, char *err,
                           size_t errlen)
{
    struct journal_page pg;
    struct rp_table *t;
    int rc = page_prelude(r, b, rec, &pg, &t, err, errlen);
    if (rc) return rc > 0 ? 0 : -1;
    if (!rp_live_current(t)) return rp_behind(rec, t, err, errlen);
    if (t->key_col < 0) return rp_rec_fail(rec, err, errlen, "deletions for a table without a key column");
    if (pg.rows.nrows && pg.rows.ncols != 1)
        return rp_rec_fail(rec, err, errlen, "deletion rows of %u columns; the table has one key column",
                        pg.rows.ncols);
    /* The pending snapshot's older pages lose the key too (the shadow). */
    if (rp_prepare_delete(r, rec, t, 0, &t->del_live, err, errlen) != 0 ||
        (t->pending_id && rp_prepare_delete(r, rec, t, 1, &t->del_shadow, err, errlen) != 0))
        return -1;
    int prot = has_open_keys(r, rec, t, err, errlen);
    if (prot < 0) return -1;
    struct journal_value v;
    char why[IA_ERRLEN];
    uint32_t n = 0;
    int more;
    while ((more = journal_rows_next(&pg.rows, &v, why, sizeof why)) == 1) {
        if (prot) {
            /* An open offline write holds the key: its row stays (protected keys). */
            int held = key_open(r, rec, t, &v, err, errlen);
            if (held < 0) return -1;
            if (held) {
                n++;
                continue;
            }
        }
        rc = rp_bind(t->del_live, 1, &v);
        if (rc == SQLITE_OK) rc = rp_step_reset(t->del_live);
        uint64_t gone = rc == SQLITE_OK ? (uint64_t)sqlite3_changes(r->db) : 0;
        if (rc == SQLITE_OK && t->pending_id) {
            rc = rp_bind(t->del_shadow, 1, &v);
            if (rc == SQLITE_OK) rc = rp_step_reset(t->del_shadow);
        }
        if (rc != SQLITE_OK) {
            char what[64];
            snprintf(what, sizeof what, "key %u", n);
            return rp_sql_fail(r, rec, err, errlen, what);
        }
        t->rows = t->rows >= gone ? t->rows - gone : 0;
        b->st.rows_deleted += gone;
        n++;
    }
    if (more < 0) return rp_rec_fail(rec, err, errlen, "%s", why);
    t->dirty = 1;
    b->rows += n;
    return 0;
}

static int apply_record(struct replay *r, struct batch *b, const struct journal_record *rec, char *err, size_t errlen)
{
    switch (rec->type) {
    case JOURNAL_SCHEMA: return apply_schema(r, rec, err, errlen);
    case JOURNAL_SNAPSHOT_BEGIN: return apply_begin(r, b, rec, err, errlen);
    case JOURNAL_SNAPSHOT_PAGE:
    case JOURNAL_SNAPSHOT_RANGE: return apply_snapshot_page(r, b, rec, err, errlen);
    case JOURNAL_SNAPSHOT_END: return apply_snapshot_end(r, b, rec, err, errlen);
    case JOURNAL_INCREMENTAL_PAGE: return apply_incremental(r, b, rec, err, errlen);
    case JOURNAL_DELETIONS: return apply_deletions(r, b, rec, err, errlen);
    case JOURNAL_OP: return rp_apply_op(r, b, rec, err, errlen);
    case JOURNAL_OP_STATE: return rp_apply_op_state(r, b, rec, err, errlen);
    default: return rp_rec_fail(rec, err, errlen, "unknown record type %d", rec->type);
    }
}

/* ---- batches ------------------------------------------------------------------------------ */

static void rollback(struct replay *r, struct batch *b)
{
    if (!sqlite3_get_autocommit(r->db)) sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
    rp_tables_drop(r);
    b->open = 0;
}

static int commit(struct replay *r, struct batch *b, struct replay_stats *st, char *err, size_t errlen)
{
    if (!b->open) return 0;
    char what[4200];
    snprintf(what, sizeof what, "cache.db %s: commit of records up to seq %llu", r->db_path,
             (unsigned long long)b->last_seq);
    if (rp_save(r, b->last_seq, b->base_seq, err, errlen) != 0 || rp_exec(r->db, "COMMIT", what, err, errlen) != 0) {
        rollback(r, b);
        return -1;
    }
    r->applied = b->last_seq;
    r->base_seq = b->base_seq;
    st->records += b->records;
    st->rows_written += b->st.rows_written;
    st->rows_deleted += b->st.rows_deleted;
    st->snapshots += b->st.snapshots;
    b->open = 0;
    b->rows = b->records = 0;
    memset(&b->st, 0, sizeof b->st);
    return 0;
}

static int apply_upto(struct replay *r, uint64_t max_seq, struct replay_stats *st, char *err, size_t errlen)
{
    uint64_t from = r->applied + 1;
    struct journal_reader *rd = NULL;
    /* A follower (the daemon applies after every fsync) starts where the last
     * apply stopped: neither the directory listed nor the segment read from
     * its start. The place holding (its record is applied + 1) also proves
     * that nothing from there on was compacted away. */
    if (r->next.seq == from && from <= max_seq &&
        journal_reader_open_place(r->journal_dir, &r->next, &rd, err, errlen) < 0)
        return -1;
    if (!rd) {
        uint64_t *segs;
        size_t nseg;
        if (journal_segments(r->journal_dir, &segs, &nseg, err, errlen) != 0) return -1;
        if (nseg == 0) return 0;
        uint64_t oldest = segs[0];
        free(segs);
        if (from < oldest) {
            if (r->applied != 0) {
                snprintf(err, errlen,
                         "journal %s compacted past the applied position: cache.db %s has applied up to seq %llu, "
                         "the oldest segment starts at seq %llu (records %llu..%llu are gone); rebuild with "
                         "`iptv-agent replay --rebuild`",
                         r->journal_dir, r->db_path, (unsigned long long)r->applied, (unsigned long long)oldest,
                         (unsigned long long)from, (unsigned long long)oldest - 1);
                return -1;
            }
            from = oldest;   /* a brand-new cache from a compacted journal */
        }
        if (from > max_seq) return 0;
        if (journal_reader_open(r->journal_dir, from, &rd, err, errlen) != 0) return -1;
    }
    struct batch b = {.base_seq = r->base_seq ? r->base_seq : from};
    struct journal_record rec;
    int rc;
    r->refused_seq = 0;
    r->env_fail = 0;
    while ((rc = journal_reader_next(rd, max_seq, &rec, err, errlen)) == 1) {
        if (!b.open) {
            char what[4200];
            snprintf(what, sizeof what, "cache.db %s: begin", r->db_path);
            if (rp_exec(r->db, "BEGIN IMMEDIATE", what, err, errlen) != 0) {
                journal_reader_close(rd);
                return -1;
            }
            b.open = 1;
        }
        const struct rp_skip *skip = rp_skipped(r, rec.seq);
        if (skip) {
            /* Skipped by the user (replay_skip): passed by, loudly, every time. */
            char msg[1024];
            const char *tn = journal_type_name(rec.type);
            snprintf(msg, sizeof msg,
                     "journal seq %llu (segment %llu offset %llu), %s record, table \"%s\": not applied: "
                     "skipped by `iptv-agent replay --skip %llu`",
                     (unsigned long long)rec.seq, (unsigned long long)rec.segment, (unsigned long long)rec.offset,
                     tn ? tn : "unknown", rec.table, (unsigned long long)rec.seq);
            if (r->warn) r->warn(r->warn_ctx, msg);
            else log_warn("%s", msg);
        }
        if (!skip && apply_record(r, &b, &rec, err, errlen) != 0) {
            /* Keep "what was applied before stays applied": redo this batch's
             * earlier records (deterministic) and commit them. */
            uint64_t bad = rec.seq;
            if (!r->env_fail) {
                /* A refusal: this record will never apply; name the way out. */
                size_t n = strlen(err);
                snprintf(err + n, errlen - n,
                         "; replay cannot go past this record: if it can never apply, "
                         "`iptv-agent replay --skip %llu` marks it applied without its content "
                         "(see README, \"A record replay refuses\")",
                         (unsigned long long)bad);
            }
            journal_reader_close(rd);
            rollback(r, &b);
            if (bad - 1 > r->applied) {
                char err2[IA_ERRLEN];
                int env = r->env_fail;
                if (apply_upto(r, bad - 1, st, err2, sizeof err2) != 0) {
                    size_t n = strlen(err);
                    snprintf(err + n, errlen - n, "; and re-applying the records before it failed: %s", err2);
                }
                r->env_fail = env;
            }
            r->refused_seq = r->env_fail || r->applied != bad - 1 ? 0 : bad;
            return -1;
        }
        b.last_seq = rec.seq;
        b.records++;
        if ((b.rows >= BATCH_ROWS || b.records >= BATCH_RECORDS) && commit(r, &b, st, err, errlen) != 0) {
            journal_reader_close(rd);
            return -1;
        }
    }
    journal_reader_place(rd, &r->next);
    journal_reader_close(rd);
    if (rc < 0) {
        /* Damage: the records before it are whole; keep them. */
        char err2[IA_ERRLEN];
        if (commit(r, &b, st, err2, sizeof err2) != 0) {
            size_t n = strlen(err);
            snprintf(err + n, errlen - n, "; and committing the records before it failed: %s", err2);
        }
        return -1;
    }
    return commit(r, &b, st, err, errlen);
}

int replay_apply(struct replay *r, uint64_t max_seq, struct replay_stats *st, char *err, size_t errlen)
{
    struct replay_stats local;
    if (!st) st = &local;
    memset(st, 0, sizeof *st);
    if (!r->journal_dir) {
        snprintf(err, errlen, "cache.db %s: opened without a journal directory", r->db_path);
        return -1;
    }
    return apply_upto(r, max_seq, st, err, errlen);
}

int replay_skip(struct replay *r, uint64_t seq, char *why, size_t whylen, char *err, size_t errlen)
{
    why[0] = '\0';
    if (seq == 0 || seq <= r->applied) {
        snprintf(err, errlen, "journal seq %llu: cache.db %s has applied up to seq %llu already: only the next "
                 "record (seq %llu) can be skipped", (unsigned long long)seq, r->db_path,
                 (unsigned long long)r->applied, (unsigned long long)r->applied + 1);
        return -1;
    }
    /* Everything before it first: only the record replay stops at can go. */
    if (seq > 1 && replay_apply(r, seq - 1, NULL, err, errlen) != 0) return -1;
    if (r->applied != seq - 1) {
        snprintf(err, errlen, "journal seq %llu: not in the journal (cache.db %s is at seq %llu, the journal has "
                 "nothing after it)", (unsigned long long)seq, r->db_path, (unsigned long long)r->applied);
        return -1;
    }
    char refusal[IA_ERRLEN];
    if (replay_apply(r, seq, NULL, refusal, sizeof refusal) == 0) {
        if (r->applied == seq) {
            snprintf(why, whylen, "journal seq %llu applied without error: nothing was skipped",
                     (unsigned long long)seq);
            return 1;
        }
        snprintf(err, errlen, "journal seq %llu: not in the journal (it ends at seq %llu)", (unsigned long long)seq,
                 (unsigned long long)r->applied);
        return -1;
    }
    if (r->refused_seq != seq) {
        snprintf(err, errlen, "%s; that is not a refused record, so it cannot be skipped", refusal);
        return -1;
    }
    /* The record again, for its type and table (the refusal named them). */
    struct journal_reader *rd;
    struct journal_record rec;
    if (journal_reader_open(r->journal_dir, seq, &rd, err, errlen) != 0) return -1;
    int rc = journal_reader_next(rd, seq, &rec, err, errlen);
    if (rc == 1) {
        /* Only the reason, without the hint that led here. */
        char *hint = strstr(refusal, "; replay cannot go past this record");
        if (hint) *hint = '\0';
        snprintf(why, whylen, "%s", refusal);
        rc = rp_add_skip(r, seq, rec.type, rec.table, refusal, 1, err, errlen);
    } else {
        if (rc == 0) snprintf(err, errlen, "journal seq %llu: not in the journal", (unsigned long long)seq);
        rc = -1;
    }
    journal_reader_close(rd);
    return rc;
}

/* Built beside cache.db (cache.db.rebuild) and renamed over it only when
 * complete, so a refused rebuild (a damaged journal, a full disk) leaves
 * cache.db as it was — invariant 7 — and a crash mid-way leaves it too (the
 * next rebuild starts the copy over). Test: test_replay.c
 * "rebuild_refused_keeps_cache". */
int replay_rebuild(const struct replay_opts *o, struct replay_stats *st, char *err, size_t errlen)
{
    char tmp[4200], why[IA_ERRLEN];
    snprintf(tmp, sizeof tmp, "%s.rebuild", o->db_path);
    if (rp_remove_db(tmp, err, errlen) != 0) return -1;
    struct replay_opts to = *o;
    to.db_path = tmp;
    struct replay *r;
    int rc = replay_open(&to, &r, err, errlen);
    if (rc == 0) {
        /* Records the user skipped stay skipped (replay_skip). A damaged old
         * file may not tell: then a refused record stops the rebuild, naming it. */
        if (rp_carry_skips(r, o->db_path, why, sizeof why) != 0) {
            char msg[IA_ERRLEN + 100];
            snprintf(msg, sizeof msg, "rebuild: the records the old cache.db skipped are unknown: %s", why);
            if (o->warn) o->warn(o->warn_ctx, msg);
            else log_warn("%s", msg);
        }
        rc = replay_apply(r, JOURNAL_SEQ_MAX, st, err, errlen);
        sqlite3 *db = r->db;
        r->db = NULL;                  /* closed here, whole, not by replay_close */
        sqlite3_finalize(r->save_table);
        sqlite3_finalize(r->save_state);
        sqlite3_finalize(r->op_keys);
        sqlite3_finalize(r->op_row);
        r->save_table = r->save_state = r->op_keys = r->op_row = NULL;
        rp_tables_drop(r);
        if (rp_close_whole(db, tmp, why, sizeof why) != 0 && rc == 0) {
            snprintf(err, errlen, "%s", why);
            rc = -1;
        }
        replay_close(r);
    }
    if (rc != 0) {
        size_t n = strlen(err);
        snprintf(err + n, errlen - n, "; cache.db %s was left as it was", o->db_path);
        rp_remove_db(tmp, why, sizeof why);
        return -1;
    }
    /* The old file's WAL must not outlive it: under the new file SQLite would
     * apply its frames to the wrong database. Checkpoint it away (best effort:
     * a damaged file may refuse), then remove what is left of it. */
    sqlite3 *old = NULL;
    if (sqlite3_open_v2(o->db_path, &old, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK) {
        sqlite3_exec(old, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
    }
    sqlite3_close_v2(old);
    static const char *const side[] = {"-wal", "-shm", "-journal"};
    for (size_t i = 0; i < sizeof side / sizeof *side; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s%s", o->db_path, side[i]);
        if (unlink(p) != 0 && errno != ENOENT) {
            snprintf(err, errlen, "cache.db %s: removing %s: %s; the rebuilt copy is %s", o->db_path, p,
                     strerror(errno), tmp);
            return -1;
        }
    }
    if (fsio_commit(tmp, o->db_path, why, sizeof why) != 0) {
        snprintf(err, errlen, "cache.db %s: the rebuilt copy: %s", o->db_path, why);
        return -1;
    }
    return 0;
}
