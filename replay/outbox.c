/* outbox.c — see outbox.h: the capture of an offline write and the outbox's
 * read side. Applying op and op_state records is in apply_op.c. */
#include "replay/outbox.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/err.h"
#include "agent/base/mem.h"
#include "replay/cachedb.h"

/* keep: leave the write's effect in place inside the still-open savepoint
 * ia_op_capture (replay_op_capture_keep); else roll it back and release. */
static int capture(struct replay *r, const char *table, replay_capture_fn run, void *ctx, void **changeset,
                   int *nchangeset, int keep, char *err, size_t errlen)
{
    *changeset = NULL;
    *nchangeset = 0;
    char why[IA_ERRLEN];
    if (replay_check_name(table, err, errlen) != 0) return -1;
    if (!keep && !sqlite3_get_autocommit(r->db)) {
        snprintf(err, errlen, "table %s: capturing a write inside an open transaction", table);
        return -1;
    }
    if (keep && !r->op_group) {
        snprintf(err, errlen, "table %s: a kept capture outside replay_op_group_begin/end", table);
        return -1;
    }
    struct rp_table *t = rp_table(r, table, why, sizeof why);
    if (!t) {
        snprintf(err, errlen, "%s", why);
        return -1;
    }
    if (!t->known || !t->live) {
        snprintf(err, errlen, "table %s: not cached", table);
        return -1;
    }
    /* The live table still serves the layout before its last SCHEMA (a
     * snapshot of the new one has not landed): replay refuses an op on it, so
     * the write is refused here, before anything is journaled. */
    if (strcmp(t->live_hash, t->hash) != 0 || t->live_key_col != t->key_col ||
        t->live_cursor_col != t->cursor_col) {
        snprintf(err, errlen, "table %s: its cached copy still has the layout before the portal's last schema "
                 "change (schema %s, now %s): a write cannot be queued until a snapshot of the new layout lands",
                 table, t->live_hash[0] ? t->live_hash : "none", t->hash);
        return -1;
    }
    /* A session records only tables with a primary key: without one the
     * changeset would be silently empty. */
    if (t->key_col < 0) {
        snprintf(err, errlen, "table %s: an offline write needs a table with a key column", table);
        return -1;
    }
    char what[300 + JOURNAL_TABLE_MAX];
    snprintf(what, sizeof what, "table %s: capturing a write", table);
    if (rp_exec(r->db, "SAVEPOINT ia_op_capture", what, err, errlen) != 0) return -1;
    sqlite3_session *s = NULL;
    int rc = sqlite3session_create(r->db, "main", &s);
    if (rc == SQLITE_OK) rc = sqlite3session_attach(s, table);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "%s: starting the session: %s", what, rp_errmsg(r->db).s);
    } else if (run(r->db, ctx, err, errlen) != 0) {
        rc = SQLITE_ERROR;
    } else if ((rc = sqlite3session_changeset(s, nchangeset, changeset)) != SQLITE_OK) {
        snprintf(err, errlen, "%s: taking the changeset: %s", what, sqlite3_errstr(rc));
        *changeset = NULL;
        *nchangeset = 0;
    }
    /* Deleted before the rollback, which it must not record. */
    sqlite3session_delete(s);
    if (keep && rc == SQLITE_OK) {
        r->op_kept = 1;
    } else {
        char e2[IA_ERRLEN];
        if (rp_exec(r->db, "ROLLBACK TO ia_op_capture", what, e2, sizeof e2) != 0 ||
            rp_exec(r->db, "RELEASE ia_op_capture", what, e2, sizeof e2) != 0) {
            /* Whatever happened, nothing of the write may stay (in a group:
             * nothing of the group either; replay_op_group_end reports it). */
            sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
            if (keep) r->op_group_lost = 1;
            if (rc == SQLITE_OK) snprintf(err, errlen, "%s", e2);
            rc = SQLITE_ERROR;
        }
    }
    if (rc != SQLITE_OK) {
        sqlite3_free(*changeset);
        *changeset = NULL;
        *nchangeset = 0;
        return -1;
    }
    if (*nchangeset == 0) {
        sqlite3_free(*changeset);
        *changeset = NULL;
    }
    return 0;
}

int replay_op_capture(struct replay *r, const char *table, replay_capture_fn run, void *ctx, void **changeset,
                      int *nchangeset, char *err, size_t errlen)
{
    return capture(r, table, run, ctx, changeset, nchangeset, 0, err, errlen);
}

int replay_op_group_begin(struct replay *r, char *err, size_t errlen)
{
    if (r->op_group || !sqlite3_get_autocommit(r->db)) {
        snprintf(err, errlen, "capturing a group of writes inside an open transaction");
        return -1;
    }
    if (rp_exec(r->db, "SAVEPOINT ia_op_group", "capturing a group of writes", err, errlen) != 0) return -1;
    r->op_group = 1;
    r->op_group_lost = 0;
    r->op_kept = 0;
    return 0;
}

int replay_op_capture_keep(struct replay *r, const char *table, replay_capture_fn run, void *ctx,
                           void **changeset, int *nchangeset, char *err, size_t errlen)
{
    if (r->op_kept) {
        snprintf(err, errlen, "table %s: the previous kept capture was not settled", table);
        return -1;
    }
    return capture(r, table, run, ctx, changeset, nchangeset, 1, err, errlen);
}

int replay_op_capture_settle(struct replay *r, int keep, char *err, size_t errlen)
{
    if (!r->op_kept) {
        snprintf(err, errlen, "no kept capture to settle");
        return -1;
    }
    r->op_kept = 0;
    if (r->op_group_lost) return 0;
    if ((keep || rp_exec(r->db, "ROLLBACK TO ia_op_capture", "settling a captured write", err, errlen) == 0) &&
        rp_exec(r->db, "RELEASE ia_op_capture", "settling a captured write", err, errlen) == 0)
        return 0;
    sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
    r->op_group_lost = 1;
    return -1;
}

int replay_op_group_end(struct replay *r, char *err, size_t errlen)
{
    int rc = 0;
    if (r->op_kept) {   /* a caller that forgot to settle: its write goes with the rest */
        r->op_kept = 0;
    }
    if (r->op_group_lost) {
        snprintf(err, errlen, "a savepoint of the group could not be rolled back; the whole transaction was");
        rc = -1;
    } else if (rp_exec(r->db, "ROLLBACK TO ia_op_group", "ending a group of writes", err, errlen) != 0 ||
               rp_exec(r->db, "RELEASE ia_op_group", "ending a group of writes", err, errlen) != 0) {
        rc = -1;
    }
    /* Whatever happened, cache.db must be back where it was, out of any transaction. */
    if (!sqlite3_get_autocommit(r->db)) sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
    r->op_group = 0;
    r->op_group_lost = 0;
    return rc;
}

static char *col_dup(sqlite3_stmt *st, int i)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    return s ? xstrdup((const char *)s) : NULL;
}

#define OP_COLS "id, tbl, kind, state, keys, attempts, last_error, created_ms, updated_ms"

static void op_row(sqlite3_stmt *st, struct replay_outbox_op *op)
{
    memset(op, 0, sizeof *op);
    op->id = (uint64_t)sqlite3_column_int64(st, 0);
    op->table = col_dup(st, 1);
    op->kind = col_dup(st, 2);
    op->state = col_dup(st, 3);
    op->keys = col_dup(st, 4);
    op->attempts = sqlite3_column_int64(st, 5);
    op->last_error = col_dup(st, 6);
    op->created_ms = sqlite3_column_int64(st, 7);
    op->updated_ms = sqlite3_column_int64(st, 8);
}

int replay_outbox_list(sqlite3 *db, int open_only, size_t limit, struct replay_outbox_op **out, size_t *n,
                       char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, open_only ? "SELECT " OP_COLS " FROM _agent_outbox WHERE state IN ('pending',"
                                                " 'sent') ORDER BY id LIMIT ?1"
                                              : "SELECT " OP_COLS " FROM _agent_outbox ORDER BY id LIMIT ?1",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) sqlite3_bind_int64(st, 1, limit && limit < INT64_MAX ? (int64_t)limit : -1);
    size_t cap = 0;
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            *out = xrealloc(*out, cap * sizeof **out);
        }
        op_row(st, &(*out)[(*n)++]);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "reading _agent_outbox: %s", rp_errmsg(db).s);
        replay_outbox_free(*out, *n);
        *out = NULL;
        *n = 0;
        return -1;
    }
    return 0;
}

int replay_outbox_get(sqlite3 *db, uint64_t id, struct replay_outbox_op *op, char *err, size_t errlen)
{
    memset(op, 0, sizeof *op);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT " OP_COLS ", params, answer, changeset FROM _agent_outbox WHERE id = ?1",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, (int64_t)id);
        rc = sqlite3_step(st);
    }
    if (rc == SQLITE_ROW) {
        op_row(st, op);
        op->params = col_dup(st, 9);
        op->answer = col_dup(st, 10);
        op->nchangeset = (size_t)sqlite3_column_bytes(st, 11);
        op->changeset = xmalloc(op->nchangeset ? op->nchangeset : 1);
        if (op->nchangeset) memcpy(op->changeset, sqlite3_column_blob(st, 11), op->nchangeset);
    } else if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "op %llu: reading _agent_outbox: %s", (unsigned long long)id, rp_errmsg(db).s);
    } else {
        snprintf(err, errlen, "op %llu: no such op in the outbox", (unsigned long long)id);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? 1 : -1;
}

void replay_outbox_op_clear(struct replay_outbox_op *op)
{
    free(op->table);
    free(op->kind);
    free(op->state);
    free(op->keys);
    free(op->last_error);
    free(op->params);
    free(op->answer);
    free(op->changeset);
    memset(op, 0, sizeof *op);
}

void replay_outbox_free(struct replay_outbox_op *ops, size_t n)
{
    for (size_t i = 0; ops && i < n; i++) replay_outbox_op_clear(&ops[i]);
    free(ops);
}

int replay_outbox_counts(sqlite3 *db, struct replay_outbox_counts *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT count(*) FILTER (WHERE state IN ('pending', 'sent')),"
                                " count(*) FILTER (WHERE state = 'sent'),"
                                " count(*) FILTER (WHERE state = 'conflict'),"
                                " count(*) FILTER (WHERE state = 'rejected') FROM _agent_outbox",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        out->pending = sqlite3_column_int64(st, 0);
        out->sent = sqlite3_column_int64(st, 1);
        out->conflicts = sqlite3_column_int64(st, 2);
        out->rejected = sqlite3_column_int64(st, 3);
    } else {
        snprintf(err, errlen, "reading _agent_outbox: %s", rp_errmsg(db).s);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : -1;
}

int replay_outbox_prune(struct replay *r, uint64_t start, int64_t *deleted, char *err, size_t errlen)
{
    *deleted = 0;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(r->db,
                                "DELETE FROM _agent_outbox WHERE id < ?1 AND state NOT IN ('pending', 'sent')", -1,
                                &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, start > INT64_MAX ? INT64_MAX : (int64_t)start);
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE) *deleted = sqlite3_changes64(r->db);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "outbox: deleting the ended ops before seq %llu: %s", (unsigned long long)start,
                 rp_errmsg(r->db).s);
        return -1;
    }
    return 0;
}
