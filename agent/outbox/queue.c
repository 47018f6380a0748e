/* queue.c — see queue.h. One write: checks (nothing changed when they fail),
 * then under the lock: catalog, compile, capture, journal, apply.
 *
 * Why the whole path holds the lock: the op id (the seq its record will get)
 * is in the provisional keys, and the changeset must be taken on the cache
 * state it will be applied to (replay refuses an op whose changeset conflicts,
 * and a REFUSED record stops replay). A pull appending between capture and
 * append would break both. Group commit (outbox_queue_writes): the writes a
 * thread gathered share one fsync and one replay_apply; each write of a group
 * is captured on the effects of those before it (kept in a savepoint), so
 * replay applies every changeset to the state it was taken on. */
#include "agent/outbox/queue.h"
#include "agent/base/buf.h"
#include "agent/base/err.h"
#include "agent/base/json.h"
#include "agent/base/log.h"
#include "agent/base/mem.h"
#include "agent/jsonsql/jsonsql.h"
#include "journal/journal.h"
#include "journal/rows.h"
#include "replay/outbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int op_kind(const char *method)
{
    if (!strcmp(method, "insert")) return JOURNAL_OP_INSERT;
    if (!strcmp(method, "update")) return JOURNAL_OP_UPDATE;
    if (!strcmp(method, "delete")) return JOURNAL_OP_DELETE;
    return 0;
}

static const char *type_want(enum jsonsql_type ty)
{
    switch (ty) {
    case JSQL_INT: return "an integer";
    case JSQL_REAL: return "a number";
    case JSQL_TEXT: return "a string";
    case JSQL_BOOL: return "true or false";
    default: return NULL;
    }
}

/* A scalar literal of the wrong type for column col (queue.h, "Types"):
 * arrays and objects (expressions, JSON values) are the compiler's to judge. */
static int literal_ok(const jsonsql_catalog *cat, const char *table, const char *col, const cJSON *v,
                      const char *where, char *err, size_t errlen)
{
    enum jsonsql_type ty;
    if (jsonsql_catalog_column(cat, table, col, &ty) < 0) return 0;   /* unknown: the compiler says so */
    if (cJSON_IsNull(v) || cJSON_IsArray(v) || cJSON_IsObject(v) || !type_want(ty)) return 0;
    int64_t i;
    int ok = ty == JSQL_INT ? json_int64(v, &i) : ty == JSQL_REAL ? cJSON_IsNumber(v)
           : ty == JSQL_TEXT ? cJSON_IsString(v) : cJSON_IsBool(v);
    if (ok) return 0;
    const char *got = cJSON_IsString(v) ? "a string" : cJSON_IsBool(v) ? "a boolean" : "a number";
    snprintf(err, errlen, "%s: column \"%s\" of %s takes %s, got %s", where, col, table, type_want(ty), got);
    return -1;
}

static int check_types(const jsonsql_catalog *cat, const char *table, int kind, const cJSON *params, char *err,
                       size_t errlen)
{
    char where[64];
    if (kind == JOURNAL_OP_UPDATE) {
        const cJSON *set = cJSON_GetObjectItemCaseSensitive(params, "set");
        if (!cJSON_IsObject(set)) return 0;
        for (const cJSON *m = set->child; m; m = m->next) {
            snprintf(where, sizeof where, "set.%.40s", m->string);
            if (literal_ok(cat, table, m->string, m, where, err, errlen) != 0) return -1;
        }
        return 0;
    }
    if (kind != JOURNAL_OP_INSERT) return 0;
    const cJSON *cols = cJSON_GetObjectItemCaseSensitive(params, "columns");
    const cJSON *vals = cJSON_GetObjectItemCaseSensitive(params, "values");
    if (!cJSON_IsArray(vals)) return 0;
    int ncols = cols ? cJSON_GetArraySize(cols) : jsonsql_catalog_ncolumns(cat, table);
    int r = 0;
    for (const cJSON *row = vals->child; row; row = row->next, r++) {
        if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != ncols) continue;
        int c = 0;
        for (const cJSON *v = row->child; v; v = v->next, c++) {
            const char *name;
            if (cols) {
                const cJSON *n = cJSON_GetArrayItem(cols, c);
                if (!cJSON_IsString(n)) continue;
                name = n->valuestring;
            } else {
                name = jsonsql_catalog_column_name(cat, table, c);
            }
            snprintf(where, sizeof where, "values[%d][%d]", r, c);
            if (name && literal_ok(cat, table, name, v, where, err, errlen) != 0) return -1;
        }
    }
    return 0;
}

/* An insert naming its columns without the key: the statement evaluated gets
 * the key column with a provisional key per row (queue.h). *eval stays NULL
 * when the insert needs none (it gives the key, or every column). */
static int provisional_keys(const cJSON *params, const char *key, uint64_t op_id, cJSON **eval, char *err,
                            size_t errlen)
{
    *eval = NULL;
    const cJSON *cols = cJSON_GetObjectItemCaseSensitive(params, "columns");
    const cJSON *vals = cJSON_GetObjectItemCaseSensitive(params, "values");
    if (!cJSON_IsArray(cols) || !cJSON_IsArray(vals)) return 0;   /* the compiler judges */
    for (const cJSON *n = cols->child; n; n = n->next)
        if (cJSON_IsString(n) && !strcmp(n->valuestring, key)) return 0;
    if (cJSON_GetArraySize(vals) > OUTBOX_PROVISIONAL_ROWS) {
        snprintf(err, errlen, "values: an insert without the key column \"%s\" is queued with provisional keys, "
                              "at most %d rows at once (got %d)", key, OUTBOX_PROVISIONAL_ROWS,
                 cJSON_GetArraySize(vals));
        return -1;
    }
    cJSON *e = cJSON_Duplicate(params, 1);
    cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(e, "columns"), cJSON_CreateString(key));
    int i = 0;
    for (cJSON *row = cJSON_GetObjectItemCaseSensitive(e, "values")->child; row; row = row->next, i++) {
        if (!cJSON_IsArray(row)) continue;
        int64_t k = -(int64_t)op_id * OUTBOX_PROVISIONAL_ROWS - i;
        char lit[32];
        snprintf(lit, sizeof lit, "%lld", (long long)k);
        cJSON *num = cJSON_CreateNumber((double)k);
        num->valuestring = xstrdup(lit);   /* exact, as json_parse keeps a literal */
        cJSON_AddItemToArray(row, num);
    }
    *eval = e;
    return 0;
}

struct eval {
    const struct jsonsql_stmt *st;
    struct buf answer;
    int refused;                       /* the statement itself failed (constraint, type) */
};

/* replay_capture_fn: run the compiled write, answer as the portal does:
 * `returning` rows, else the count of changed rows. */
static int run_eval(sqlite3 *db, void *ctx, char *err, size_t errlen)
{
    struct eval *e = ctx;
    sqlite3_stmt *ps = NULL;
    int rc = sqlite3_prepare_v2(db, e->st->sql, -1, &ps, NULL);
    if (rc == SQLITE_OK) rc = jsonsql_bind(e->st, ps);
    uint64_t n = 0;
    buf_reset(&e->answer);
    if (e->st->ncols > 0) buf_putc(&e->answer, '[');
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        rc = sqlite3_step(ps);
        if (rc != SQLITE_ROW) break;
        if (e->st->ncols > 0) {
            if (n) buf_putc(&e->answer, ',');
            jsonsql_write_row(&e->answer, e->st, ps);
        }
        n++;
    }
    if (rc != SQLITE_DONE) {
        int prim = rc & 0xff;
        e->refused = prim == SQLITE_CONSTRAINT || prim == SQLITE_MISMATCH || prim == SQLITE_ERROR ||
                     prim == SQLITE_RANGE || prim == SQLITE_TOOBIG;
        snprintf(err, errlen, "%s", sqlite3_errmsg(db));
        sqlite3_finalize(ps);
        return -1;
    }
    if (e->st->ncols > 0) buf_putc(&e->answer, ']');
    else buf_printf(&e->answer, "%d", sqlite3_changes(db));
    sqlite3_finalize(ps);
    return 0;
}

/* Under the lock, inside a capture group (replay_op_group_begin): everything
 * from the catalog to the journaled (not yet synced, not yet applied) op. On
 * success the write's effect stays in the group, so the next write of the group
 * is captured on top of it; on any failure nothing of it stays. */
static int queue_one(struct store *st, const jsonsql_catalog *cat, const struct config_table *t, int kind,
                     const char *method, const cJSON *params, const char *params_json, struct outbox_queued *out,
                     char *err, size_t errlen)
{
    cJSON *eval_params = NULL;
    struct jsonsql_stmt cs = {0};
    struct eval ev = {&cs, {0}, 0};
    struct journal_payload pl = {0};
    void *changeset = NULL;
    int ncs = 0, rc = OUTBOX_EREFUSED;
    char why[IA_ERRLEN];
    if (jsonsql_catalog_ncolumns(cat, t->name) < 0) {
        snprintf(err, errlen, "table %s is not cached yet: a write is queued only to a table pulled at least once",
                 t->name);
        goto out;
    }
    if (jsonsql_catalog_column(cat, t->name, t->key, NULL) < 0) {
        snprintf(err, errlen, "table %s has no key column \"%s\" in cache.db: its writes cannot be queued",
                 t->name, t->key);
        goto out;
    }
    if (check_types(cat, t->name, kind, params, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s: %s", method, why);
        goto out;
    }
    uint64_t op_id = journal_writer_next_seq(st->jw);
    if (kind == JOURNAL_OP_INSERT && provisional_keys(params, t->key, op_id, &eval_params, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s into %s: %s", method, t->name, why);
        goto out;
    }
    if (jsonsql_compile(cat, method, eval_params ? eval_params : params, NULL, &cs, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s: %s", method, why);
        goto out;
    }
    if (strcmp(cs.table, t->name) != 0) {
        snprintf(err, errlen, "%s: names table %s, not %s", method, cs.table, t->name);
        goto out;
    }
    if (replay_op_capture_keep(st->rp, t->name, run_eval, &ev, &changeset, &ncs, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s on %s: %s", method, t->name, why);
        if (!ev.refused) rc = -1;
        goto out;
    }
    struct journal_op op = {.kind = kind, .params = params_json, .nparams = strlen(params_json),
                            .changeset = changeset, .nchangeset = (size_t)ncs, .answer = ev.answer.p,
                            .nanswer = ev.answer.len};
    uint64_t seq = 0;
    int kept = 0;   /* journaled as expected: its effect stays for the next write of the group */
    if (journal_payload_op(&pl, &op, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s on %s: %s", method, t->name, why);
    } else if ((rc = -1, journal_append(st->jw, JOURNAL_OP, t->name, pl.p, pl.len, &seq, why, sizeof why)) != 0) {
        snprintf(err, errlen, "%s on %s: journal: %s", method, t->name, why);
    } else if (seq != op_id) {   /* cannot happen under the lock; the provisional keys would name another op */
        snprintf(err, errlen, "%s on %s: journaled as op %llu, expected %llu (the journal writer is shared "
                 "without its lock)", method, t->name, (unsigned long long)seq, (unsigned long long)op_id);
    } else {
        kept = 1;
    }
    /* A later write of the group must never be captured on the effect of one
     * that is not in the journal. */
    if (replay_op_capture_settle(st->rp, kept, why, sizeof why) != 0 && kept) {
        snprintf(err, errlen, "%s on %s: journaled as op %llu, but keeping its effect for the next write "
                 "failed: %s", method, t->name, (unsigned long long)seq, why);
        kept = 0;
    }
    if (!kept) goto out;
    out->op_id = seq;
    out->answer = xstrdup(ev.answer.p);
    rc = 0;
out:
    sqlite3_free(changeset);
    journal_payload_free(&pl);
    buf_free(&ev.answer);
    jsonsql_stmt_free(&cs);
    cJSON_Delete(eval_params);
    return rc;
}

/* One waiting write. */
struct qreq {
    const struct config_table *t;
    int kind;
    const char *method;
    cJSON *params;                    /* parsed by qreq_init; its caller deletes it */
    const char *params_json;
    struct outbox_queued *out;
    char *err;
    size_t errlen;
    int rc, done;
    struct qreq *next;
};

/* Under the lock: capture and journal each write of the chain without a sync,
 * one journal_batch_commit for all, one replay_apply for all, then fill each
 * result. No write is answered 0 before its op is durable and applied. */
static void run_group(struct store *st, struct qreq *head)
{
    char why[IA_ERRLEN];
    sqlite3 *db = replay_db(st->rp);
    if (jsonsql_register_functions(db) != SQLITE_OK) {
        for (struct qreq *q = head; q; q = q->next) {
            snprintf(q->err, q->errlen, "%s on %s: registering SQL functions: %s", q->method, q->t->name,
                     sqlite3_errmsg(db));
            q->rc = -1;
        }
        return;
    }
    /* One catalog for the group: its captures change rows, never the schema. */
    jsonsql_catalog *cat = jsonsql_catalog_new();
    if (jsonsql_catalog_from_db(cat, db, "_agent_", why, sizeof why) != 0 ||
        replay_op_group_begin(st->rp, why, sizeof why) != 0) {
        for (struct qreq *q = head; q; q = q->next) {
            snprintf(q->err, q->errlen, "%s on %s: %s", q->method, q->t->name, why);
            q->rc = -1;
        }
        jsonsql_catalog_free(cat);
        return;
    }
    journal_batch_begin(st->jw);
    int any = 0;
    for (struct qreq *q = head; q; q = q->next) {
        q->rc = queue_one(st, cat, q->t, q->kind, q->method, q->params, q->params_json, q->out, q->err, q->errlen);
        if (q->rc == 0) any = 1;
    }
    jsonsql_catalog_free(cat);
    /* Rolled back whatever happens: replay_apply below applies the journaled ops. */
    if (replay_op_group_end(st->rp, why, sizeof why) != 0)
        log_warn("outbox: ending a group of queued writes: %s (cache.db was rolled back whole)", why);
    int synced = journal_batch_commit(st->jw, why, sizeof why) == 0;
    int applied = synced && (!any || replay_apply(st->rp, journal_writer_durable_seq(st->jw), NULL, why,
                                                  sizeof why) == 0);
    for (struct qreq *q = head; q; q = q->next) {
        if (q->rc != 0 || applied) continue;
        snprintf(q->err, q->errlen, "%s on %s: journaled as op %llu but %s: %s", q->method, q->t->name,
                 (unsigned long long)q->out->op_id, synced ? "not applied to cache.db" : "not durable", why);
        outbox_queued_free(q->out);
        q->out->op_id = 0;
        q->rc = -1;
    }
}

static int parse_write(const struct config_table *t, const char *method, const char *params_json, int *kind,
                       cJSON **params, char *err, size_t errlen)
{
    *kind = op_kind(method);
    *params = NULL;
    if (!*kind) {
        snprintf(err, errlen, "table %s: \"%s\" is not a write (insert, update or delete)", t->name, method);
        return OUTBOX_EREFUSED;
    }
    char why[IA_ERRLEN];
    if (json_parse(params_json, strlen(params_json), JSON_MAX_DEPTH_DEFAULT, params, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s on %s: params: %s", method, t->name, why);
        return OUTBOX_EREFUSED;
    }
    if (!cJSON_IsObject(*params)) {
        cJSON_Delete(*params);
        *params = NULL;
        snprintf(err, errlen, "%s on %s: params: expected an object", method, t->name);
        return OUTBOX_EREFUSED;
    }
    return 0;
}

/* A write as a group member: parsed (a refusal returns here), not yet run. */
static int qreq_init(struct qreq *q, const struct config_table *t, const char *method, const char *params_json,
                     struct outbox_queued *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    *q = (struct qreq){.t = t, .method = method, .params_json = params_json, .out = out, .err = err,
                       .errlen = errlen};
    cJSON *params;
    int rc = parse_write(t, method, params_json, &q->kind, &params, err, errlen);
    if (rc == 0) q->params = params;
    return rc;
}

int outbox_queue_write(struct store *st, pthread_mutex_t *lock, const struct config_table *t, const char *method,
                       const char *params_json, struct outbox_queued *out, char *err, size_t errlen)
{
    struct qreq me;
    int rc = qreq_init(&me, t, method, params_json, out, err, errlen);
    if (rc != 0) return rc;
    if (lock) pthread_mutex_lock(lock);
    run_group(st, &me);   /* a group of one */
    if (lock) pthread_mutex_unlock(lock);
    cJSON_Delete(me.params);
    return me.rc;
}

void outbox_queue_writes(struct store *st, pthread_mutex_t *lock, struct outbox_write *w, size_t n)
{
    struct qreq *q = xcalloc(n ? n : 1, sizeof *q), *head = NULL, **tail = &head;
    for (size_t i = 0; i < n; i++) {
        w[i].rc = qreq_init(&q[i], w[i].t, w[i].method, w[i].params_json, &w[i].out, w[i].err, sizeof w[i].err);
        if (w[i].rc != 0) continue;
        *tail = &q[i];
        tail = &q[i].next;
    }
    if (head) {
        if (lock) pthread_mutex_lock(lock);
        run_group(st, head);
        if (lock) pthread_mutex_unlock(lock);
    }
    for (size_t i = 0; i < n; i++) {
        if (w[i].rc == 0) w[i].rc = q[i].rc;
        cJSON_Delete(q[i].params);
    }
    free(q);
}

void outbox_queued_free(struct outbox_queued *r)
{
    free(r->answer);
    r->answer = NULL;
}
