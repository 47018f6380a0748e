/* apply_op.c — replay of the offline writes' records (docs/outbox.md; the
 * record rules are in apply.c's header comment): OP applies an op's changeset
 * (a conflict refuses it) and adds its outbox row and open keys; OP_STATE moves
 * it on: done (an insert's provisional rows removed), conflict, rejected or
 * dropped (the change reverted from its pre-image); an end closes the keys, or
 * leaves them ENDED while the table's snapshot is pending. Split from apply.c,
 * whose helpers it shares through apply.h. Tests: test_outbox.c. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/clock.h"
#include "agent/base/err.h"
#include "agent/base/mem.h"
#include "journal/rows.h"
#include "replay/apply.h"
#include "replay/cachedb.h"

/* A short printable form of an SQLite value, for messages. */
static void value_text(sqlite3_value *v, char *out, size_t outlen)
{
    if (!v || sqlite3_value_type(v) == SQLITE_NULL) snprintf(out, outlen, "NULL");
    else if (sqlite3_value_type(v) == SQLITE_TEXT || sqlite3_value_type(v) == SQLITE_BLOB)
        snprintf(out, outlen, "\"%.*s\"", 64, (const char *)sqlite3_value_text(v));
    else snprintf(out, outlen, "%s", (const char *)sqlite3_value_text(v));
}

static const char *conflict_name(int c)
{
    switch (c) {
    case SQLITE_CHANGESET_DATA: return "the row's values differ from the changeset's old values";
    case SQLITE_CHANGESET_NOTFOUND: return "no row with that key";
    case SQLITE_CHANGESET_CONFLICT: return "a row with that key exists already";
    case SQLITE_CHANGESET_CONSTRAINT: return "a constraint failed";
    default: return "a foreign key failed";
    }
}

/* What a changeset application met: the first conflict, and how many changes
 * of each kind were left out (a revert leaves them; an op aborts on the first). */
struct cs_apply {
    int key_col;
    int conflict;                    /* first conflict type, 0 none */
    char key[100];                   /* its key */
    int omit;                        /* 1: leave conflicting rows (revert), 0: abort (op) */
    int64_t omitted_ins, omitted_del, omitted;
};

static int on_conflict(void *ctx, int type, sqlite3_changeset_iter *it)
{
    struct cs_apply *a = ctx;
    const char *tab;
    int ncol, op, indirect;
    sqlite3changeset_op(it, &tab, &ncol, &op, &indirect);
    if (!a->conflict) {
        sqlite3_value *k = NULL;
        if (op == SQLITE_INSERT) sqlite3changeset_new(it, a->key_col, &k);
        else sqlite3changeset_old(it, a->key_col, &k);
        value_text(k, a->key, sizeof a->key);
        a->conflict = type;
    }
    if (!a->omit) return SQLITE_CHANGESET_ABORT;
    a->omitted++;
    if (op == SQLITE_INSERT) a->omitted_ins++;
    if (op == SQLITE_DELETE) a->omitted_del++;
    return SQLITE_CHANGESET_OMIT;
}

/* Check that the changeset touches only rec's table, with its live layout and
 * key, and count its inserts and deletes. With keys (a prepared INSERT into
 * _agent_outbox_keys, ?1 id ?2 key), every key it touches is recorded there.
 * 0, or -1 (a refusal naming what is wrong). */
static int changeset_scan(struct replay *r, const struct journal_record *rec, const struct rp_table *t,
                          const void *cs, size_t n, sqlite3_stmt *keys, int64_t *ins, int64_t *del, char *err,
                          size_t errlen)
{
    *ins = *del = 0;
    if (n == 0) return 0;
    if (n > INT_MAX) return rp_rec_fail(rec, err, errlen, "changeset of %zu bytes is too large", n);
    sqlite3_changeset_iter *it;
    if (sqlite3changeset_start(&it, (int)n, (void *)cs) != SQLITE_OK)
        return rp_rec_fail(rec, err, errlen, "the changeset is malformed");
    int rc, bad = 0;
    uint32_t i = 0;
    while (!bad && (rc = sqlite3changeset_next(it)) == SQLITE_ROW) {
        const char *tab;
        int ncol, op, indirect, npk;
        unsigned char *pk;
        sqlite3_value *k = NULL;
        if (sqlite3changeset_op(it, &tab, &ncol, &op, &indirect) != SQLITE_OK ||
            sqlite3changeset_pk(it, &pk, &npk) != SQLITE_OK) {
            bad = rp_rec_fail(rec, err, errlen, "change %u of the changeset is malformed", i);
            break;
        }
        if (strcmp(tab, rec->table) != 0) {
            bad = rp_rec_fail(rec, err, errlen, "change %u of the changeset is of table \"%s\"", i, tab);
            break;
        }
        int pk_ok = ncol == (int)t->ncols;
        for (int c = 0; pk_ok && c < ncol; c++) pk_ok = (pk[c] != 0) == (c == t->key_col);
        if (!pk_ok) {
            bad = rp_rec_fail(rec, err, errlen, "change %u of the changeset has %d columns or another key than the "
                           "table (%u columns, key \"%s\")", i, ncol, t->ncols, t->cols[t->key_col]);
            break;
        }
        if (op == SQLITE_INSERT) {
            sqlite3changeset_new(it, t->key_col, &k);
            (*ins)++;
        } else {
            sqlite3changeset_old(it, t->key_col, &k);
            if (op == SQLITE_DELETE) (*del)++;
        }
        if (!k || sqlite3_value_type(k) == SQLITE_NULL) {
            bad = rp_rec_fail(rec, err, errlen, "change %u of the changeset has a NULL key", i);
            break;
        }
        if (keys) {
            sqlite3_bind_int64(keys, 1, (int64_t)rec->seq);
            sqlite3_bind_value(keys, 2, k);
            if (rp_step_reset(keys) != SQLITE_OK) {
                bad = rp_sql_fail(r, rec, err, errlen, "recording the op's keys");
                break;
            }
        }
        i++;
    }
    int frc = sqlite3changeset_finalize(it);
    if (bad) return -1;
    if (rc != SQLITE_DONE || frc != SQLITE_OK) return rp_rec_fail(rec, err, errlen, "the changeset is malformed");
    return 0;
}

/* The table an op writes: known, its live layout current, with a key column
 * (sessions record only tables with a primary key). 1 = skip the record
 * (compacted start), 0 ok, -1 refused. */
static int op_table(struct replay *r, struct batch *b, const struct journal_record *rec, struct rp_table **tp,
                    char *err, size_t errlen)
{
    char why[IA_ERRLEN];
    struct rp_table *t = rp_table(r, rec->table, why, sizeof why);
    if (!t) return rp_rec_fail(rec, err, errlen, "%s", why);
    *tp = t;
    if (!t->known) return rp_no_schema(r, b, rec, err, errlen);
    if (!rp_live_current(t)) return rp_behind(rec, t, err, errlen);
    if (t->key_col < 0) return rp_rec_fail(rec, err, errlen, "an offline write needs a table with a key column");
    return 0;
}

/* OP: the changeset applied to the table (any conflict refuses the record: it
 * was taken on this exact state), the outbox row (pending) and its open keys,
 * in the batch transaction with the applied position (exactly once). */
int rp_apply_op(struct replay *r, struct batch *b, const struct journal_record *rec, char *err, size_t errlen)
{
    char why[IA_ERRLEN];
    struct journal_op op;
    if (replay_check_name(rec->table, why, sizeof why) != 0) return rp_rec_fail(rec, err, errlen, "%s", why);
    if (journal_decode_op(rec->payload, rec->len, &op, why, sizeof why) != 0)
        return rp_rec_fail(rec, err, errlen, "%s", why);
    struct rp_table *t = NULL;
    int rc = op_table(r, b, rec, &t, err, errlen);
    if (rc) return rc > 0 ? 0 : -1;
    if (!r->op_keys &&
        sqlite3_prepare_v3(r->db, "INSERT OR IGNORE INTO _agent_outbox_keys (tbl, key, id) VALUES (?3, ?2, ?1)", -1,
                           SQLITE_PREPARE_PERSISTENT, &r->op_keys, NULL) != SQLITE_OK)
        return rp_sql_fail(r, rec, err, errlen, "preparing the outbox keys");
    sqlite3_stmt *keys = r->op_keys, *row;
    sqlite3_bind_text(keys, 3, t->name, -1, SQLITE_STATIC);
    int64_t ins, del;
    rc = changeset_scan(r, rec, t, op.changeset, op.nchangeset, keys, &ins, &del, err, errlen);
    sqlite3_clear_bindings(keys);
    if (rc != 0) return -1;
    if (op.nchangeset) {
        struct cs_apply a = {.key_col = t->key_col};
        rc = sqlite3changeset_apply(r->db, (int)op.nchangeset, (void *)op.changeset, NULL, on_conflict, &a);
        if (a.conflict)
            return rp_rec_fail(rec, err, errlen, "op %llu: its changeset does not apply to cache.db at key %s (%s): it "
                            "must be taken on the state it is applied to", (unsigned long long)rec->seq, a.key,
                            conflict_name(a.conflict));
        if (rc != SQLITE_OK) return rp_sql_fail(r, rec, err, errlen, "applying the op's changeset");
    }
    rc = r->op_row ? SQLITE_OK
                   : sqlite3_prepare_v3(r->db,
                                        "INSERT INTO _agent_outbox (id, tbl, kind, params, changeset, answer, keys,"
                                        " state, attempts, last_error, created_ms, updated_ms) VALUES (?1, ?2, ?3,"
                                        " ?4, ?5, ?6, (SELECT json_group_array(key) FROM (SELECT key FROM"
                                        " _agent_outbox_keys WHERE id = ?1 ORDER BY key)), 'pending', 0, NULL, ?7,"
                                        " ?7)",
                                        -1, SQLITE_PREPARE_PERSISTENT, &r->op_row, NULL);
    row = r->op_row;
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(row, 1, (int64_t)rec->seq);
        sqlite3_bind_text(row, 2, t->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(row, 3, journal_op_kind_name(op.kind), -1, SQLITE_STATIC);
        sqlite3_bind_text(row, 4, op.params, (int)op.nparams, SQLITE_STATIC);
        sqlite3_bind_blob(row, 5, op.nchangeset ? op.changeset : "", (int)op.nchangeset, SQLITE_STATIC);
        sqlite3_bind_text(row, 6, op.answer, (int)op.nanswer, SQLITE_STATIC);
        sqlite3_bind_int64(row, 7, clock_wall_ms());
        rc = rp_step_reset(row);
        sqlite3_clear_bindings(row);   /* the binds point into the record */
    }
    if (rc != SQLITE_OK) return rp_sql_fail(r, rec, err, errlen, "adding the op to the outbox");
    t->rows = (uint64_t)((int64_t)t->rows + ins - del);
    t->dirty = 1;
    b->rows += (uint64_t)(ins + del) + 1;
    b->st.rows_written += (uint64_t)ins;
    b->st.rows_deleted += (uint64_t)del;
    return 0;
}

/* Does the changeset (taken when the op was accepted) have t's current
 * layout: its column count and key? 1 yes, 0 no (the table was recreated or
 * swapped to another layout since: an end state must still apply, so the
 * caller warns instead of refusing), -1 malformed. key_only: only the key
 * column's position counts (removing an insert's rows by key). */
static int cs_fits(const struct rp_table *t, const void *cs, int n, int key_only)
{
    sqlite3_changeset_iter *it;
    if (sqlite3changeset_start(&it, n, (void *)cs) != SQLITE_OK) return -1;
    int fits = 1;
    while (fits && sqlite3changeset_next(it) == SQLITE_ROW) {
        const char *tab;
        int ncol, op, indirect, npk;
        unsigned char *pk;
        if (sqlite3changeset_op(it, &tab, &ncol, &op, &indirect) != SQLITE_OK ||
            sqlite3changeset_pk(it, &pk, &npk) != SQLITE_OK) {
            sqlite3changeset_finalize(it);
            return -1;
        }
        if (key_only) {
            fits = ncol > t->key_col && pk[t->key_col];
            continue;
        }
        fits = ncol == (int)t->ncols;
        for (int c = 0; fits && c < ncol; c++) fits = (pk[c] != 0) == (c == t->key_col);
    }
    if (sqlite3changeset_finalize(it) != SQLITE_OK) return -1;
    return fits;
}

/* Whether the op's changeset can be applied to t as it is now (live and of
 * the layout the op saw): 1 yes; 0 no, with a warning saying what was left
 * `undone`; -1 a malformed changeset, with err. */
static int cs_usable(struct replay *r, const struct journal_record *rec, const struct rp_table *t, const void *cs,
                     int n, int key_only, uint64_t op_id, const char *undone, char *err, size_t errlen)
{
    int fits = rp_live_current(t) && t->key_col >= 0 ? cs_fits(t, cs, n, key_only) : 0;
    if (fits < 0) return rp_rec_fail(rec, err, errlen, "op %llu: its changeset is malformed", (unsigned long long)op_id);
    if (!fits)
        rp_warn_msg(r, "journal seq %llu: op %llu (table \"%s\"): %s: the table's layout changed since",
                    (unsigned long long)rec->seq, (unsigned long long)op_id, t->name, undone);
    return fits;
}

/* done for an insert: the rows the op inserted (provisional keys) go; the
 * portal's rows come in the incremental_page journaled after the op_state. */
static int remove_inserted(struct replay *r, struct batch *b, const struct journal_record *rec, struct rp_table *t,
                           const void *cs, int n, uint64_t op_id, char *err, size_t errlen)
{
    int fits = cs_usable(r, rec, t, cs, n, 1, op_id, "its inserted rows were not removed", err, errlen);
    if (fits <= 0) return fits;
    if (rp_prepare_delete(r, rec, t, 0, &t->del_live, err, errlen) != 0) return -1;
    sqlite3_changeset_iter *it;
    if (sqlite3changeset_start(&it, n, (void *)cs) != SQLITE_OK)
        return rp_rec_fail(rec, err, errlen, "op %llu: its changeset is malformed", (unsigned long long)op_id);
    int rc = SQLITE_OK;
    while (rc == SQLITE_OK && sqlite3changeset_next(it) == SQLITE_ROW) {
        const char *tab;
        int ncol, opc, indirect;
        sqlite3_value *k = NULL;
        sqlite3changeset_op(it, &tab, &ncol, &opc, &indirect);
        if (opc != SQLITE_INSERT || ncol <= t->key_col) continue;
        sqlite3changeset_new(it, t->key_col, &k);
        rc = sqlite3_bind_value(t->del_live, 1, k);
        if (rc == SQLITE_OK) rc = rp_step_reset(t->del_live);
        if (rc == SQLITE_OK) {
            uint64_t gone = (uint64_t)sqlite3_changes(r->db);
            t->rows = t->rows >= gone ? t->rows - gone : 0;
            b->st.rows_deleted += gone;
            b->rows++;
        }
    }
    sqlite3changeset_finalize(it);
    return rc == SQLITE_OK ? 0 : rp_sql_fail(r, rec, err, errlen, "removing the op's inserted rows");
}

/* conflict, rejected, dropped: the local change is undone by applying the
 * inverted changeset. A row that changed since the op (a later open op wrote
 * it, or a swap carried another layout) is left as it is, with a warning: the
 * later change is still wanted, and an end state must always apply, or the
 * outbox would wedge on it. */
static int revert(struct replay *r, struct batch *b, const struct journal_record *rec, struct rp_table *t,
                  const void *cs, int n, uint64_t op_id, char *err, size_t errlen)
{
    if (n == 0) return 0;
    int fits = cs_usable(r, rec, t, cs, n, 0, op_id, "its change was not reverted", err, errlen);
    if (fits <= 0) return fits;
    int ninv = 0;
    void *inv = NULL;
    if (sqlite3changeset_invert(n, cs, &ninv, &inv) != SQLITE_OK)
        return rp_rec_fail(rec, err, errlen, "op %llu: its changeset cannot be inverted", (unsigned long long)op_id);
    int64_t ins, del;
    int rc = changeset_scan(r, rec, t, inv, (size_t)ninv, NULL, &ins, &del, err, errlen);
    if (rc != 0) {
        sqlite3_free(inv);
        return -1;
    }
    struct cs_apply a = {.key_col = t->key_col, .omit = 1};
    rc = sqlite3changeset_apply(r->db, ninv, inv, NULL, on_conflict, &a);
    sqlite3_free(inv);
    if (rc != SQLITE_OK) return rp_sql_fail(r, rec, err, errlen, "reverting the op's change");
    if (a.omitted)
        rp_warn_msg(r, "journal seq %llu: op %llu (table \"%s\"): %lld rows left as they are, not reverted (first at key "
                 "%s: %s)", (unsigned long long)rec->seq, (unsigned long long)op_id, t->name, (long long)a.omitted,
                 a.key, conflict_name(a.conflict));
    int64_t rows = (int64_t)t->rows + (ins - a.omitted_ins) - (del - a.omitted_del);
    t->rows = rows > 0 ? (uint64_t)rows : 0;
    t->dirty = 1;
    b->rows += (uint64_t)(ins + del);
    return 0;
}

/* OP_STATE: the op's new state. An op that does not exist, is of another
 * table, or has ended is a refusal (replay_skip is the way out) — except in a
 * cache with a compacted start, where an op older than the start was
 * compacted away with its records (skipped with a warning). */
int rp_apply_op_state(struct replay *r, struct batch *b, const struct journal_record *rec, char *err,
                          size_t errlen)
{
    char why[IA_ERRLEN];
    struct journal_op_state_rec s;
    if (replay_check_name(rec->table, why, sizeof why) != 0) return rp_rec_fail(rec, err, errlen, "%s", why);
    if (journal_decode_op_state(rec->payload, rec->len, &s, why, sizeof why) != 0)
        return rp_rec_fail(rec, err, errlen, "%s", why);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->db, "SELECT tbl, kind, state, changeset FROM _agent_outbox WHERE id = ?1", -1, &st,
                           NULL) != SQLITE_OK)
        return rp_sql_fail(r, rec, err, errlen, "reading the outbox");
    sqlite3_bind_int64(st, 1, (int64_t)s.op_id);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE) return rp_sql_fail(r, rec, err, errlen, "reading the outbox");
        if (b->base_seq > 1 && s.op_id < b->base_seq) {
            rp_warn_once(r, rec->table, "journal seq %llu: table \"%s\": skipping the states of op %llu, whose op record "
                      "was compacted away (before seq %llu)", (unsigned long long)rec->seq, rec->table,
                      (unsigned long long)s.op_id, (unsigned long long)b->base_seq);
            return 0;
        }
        return rp_rec_fail(rec, err, errlen, "op %llu: no such op in the outbox", (unsigned long long)s.op_id);
    }
    char tbl[JOURNAL_TABLE_MAX + 1], kind[16], state[16];
    snprintf(tbl, sizeof tbl, "%s", (const char *)sqlite3_column_text(st, 0));
    snprintf(kind, sizeof kind, "%s", (const char *)sqlite3_column_text(st, 1));
    snprintf(state, sizeof state, "%s", (const char *)sqlite3_column_text(st, 2));
    int ncs = sqlite3_column_bytes(st, 3);
    void *cs = xmalloc(ncs ? (size_t)ncs : 1);
    if (ncs) memcpy(cs, sqlite3_column_blob(st, 3), (size_t)ncs);
    sqlite3_finalize(st);
    rc = 0;
    if (strcmp(tbl, rec->table) != 0)
        rc = rp_rec_fail(rec, err, errlen, "op %llu is of table \"%s\"", (unsigned long long)s.op_id, tbl);
    else if (strcmp(state, "pending") != 0 && strcmp(state, "sent") != 0)
        rc = rp_rec_fail(rec, err, errlen, "op %llu has ended (%s): no state follows an end",
                      (unsigned long long)s.op_id, state);
    struct rp_table *t = NULL;
    if (rc == 0) {
        t = rp_table(r, rec->table, why, sizeof why);
        if (!t) rc = rp_rec_fail(rec, err, errlen, "%s", why);
    }
    int end = s.state != JOURNAL_OPS_SENDING && s.state != JOURNAL_OPS_PENDING;
    if (rc == 0 && s.state == JOURNAL_OPS_DONE && strcmp(kind, "insert") == 0)
        rc = remove_inserted(r, b, rec, t, cs, ncs, s.op_id, err, errlen);
    if (rc == 0 && end && s.state != JOURNAL_OPS_DONE) rc = revert(r, b, rec, t, cs, ncs, s.op_id, err, errlen);
    free(cs);
    if (rc != 0) return -1;
    const char *shown = s.state == JOURNAL_OPS_SENDING ? "sent" : journal_op_state_name(s.state);
    rc = sqlite3_prepare_v2(r->db,
                            "UPDATE _agent_outbox SET state = ?2, attempts = attempts + ?3, last_error = ?4,"
                            " updated_ms = ?5 WHERE id = ?1", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, (int64_t)s.op_id);
        sqlite3_bind_text(st, 2, shown, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 3, s.state == JOURNAL_OPS_SENDING);
        if (s.nmessage) sqlite3_bind_text(st, 4, s.message, (int)s.nmessage, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, clock_wall_ms());
        rc = rp_step_reset(st);
        sqlite3_finalize(st);
    }
    /* An end closes the keys; while the table's snapshot is pending they stay,
     * ENDED, for its swap to carry (see the file's comment). */
    if (rc == SQLITE_OK && end && !t->pending_id &&
        (rc = sqlite3_prepare_v2(r->db, "DELETE FROM _agent_outbox_keys WHERE id = ?1", -1, &st, NULL)) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, (int64_t)s.op_id);
        rc = rp_step_reset(st);
        sqlite3_finalize(st);
    }
    if (rc != SQLITE_OK) return rp_sql_fail(r, rec, err, errlen, "changing the op's state");
    if (t) t->dirty = 1;
    b->rows++;
    return 0;
}
