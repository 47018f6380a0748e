/* send.c — one step of the outbox's sender (send.h, docs/outbox.md "Sending").
 *
 * The portal's rows are compared with the op's changeset by position: the
 * select names the configured columns (or "*" when agent.toml lists none), the
 * order the cache's table was built in, so column i of a portal row is column
 * i of the changeset. Values compare by kind (numbers as numbers, text as
 * bytes, a number against text by its decimal text: a TEXT column keeps
 * numbers as text), as the cache stored what the portal sent. */
#include "agent/outbox/send.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/buf.h"
#include "agent/base/clock.h"
#include "agent/base/json.h"
#include "agent/base/log.h"
#include "agent/base/mem.h"
#include "journal/rows.h"
#include "replay/outbox.h"

static void lock(struct pull_ctx *c) { if (c->lock) pthread_mutex_lock(c->lock); }
static void unlock(struct pull_ctx *c) { if (c->lock) pthread_mutex_unlock(c->lock); }

const char *outbox_step_name(enum outbox_step s)
{
    static const char *const names[] = {"idle", "done", "conflict", "rejected", "transient", "unknown", "failed"};
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "?";
}

/* ---- values ------------------------------------------------------------------------- */

struct pval {                         /* a portal value, owned */
    enum json_vtype type;
    int64_t i;
    double d;
    char *s;
    size_t n;
};

struct prows {                        /* the rows of one select, row-major */
    struct pval *v;
    size_t nrows, ncols, cap;
    size_t width;                     /* values in the row being read */
    int ragged;
};

static void prows_clear(struct prows *p)
{
    for (size_t k = 0; k < p->nrows * p->ncols + p->width; k++) free(p->v[k].s);
    free(p->v);
    memset(p, 0, sizeof *p);
}

static int prows_begin(void *ctx)
{
    prows_clear(ctx);                 /* a retried response starts over */
    return 0;
}

static int prows_row_begin(void *ctx, size_t row)
{
    ((struct prows *)ctx)->width = 0;
    return 0;
}

static int prows_value(void *ctx, size_t col, const struct json_val *v)
{
    struct prows *p = ctx;
    size_t at = p->nrows * p->ncols + p->width;
    if (p->nrows > 0 && p->width >= p->ncols) { p->ragged = 1; return 1; }
    if (at >= p->cap) {
        p->cap = p->cap ? p->cap * 2 : 64;
        p->v = xrealloc(p->v, p->cap * sizeof *p->v);
    }
    struct pval *d = &p->v[at];
    memset(d, 0, sizeof *d);
    d->type = v->type;
    d->i = v->i;
    d->d = v->d;
    if (v->type == JV_TEXT || v->type == JV_JSON) {
        d->s = xmalloc(v->n + 1);
        if (v->n) memcpy(d->s, v->s, v->n);
        d->s[v->n] = '\0';
        d->n = v->n;
    }
    p->width++;
    return 0;
}

static int prows_row_end(void *ctx, size_t row, size_t ncols)
{
    struct prows *p = ctx;
    if (p->nrows == 0) p->ncols = ncols;
    else if (ncols != p->ncols) { p->ragged = 1; return 1; }
    p->nrows++;
    p->width = 0;
    return 0;
}

static const struct json_rows_cb prows_cb = {prows_begin, prows_row_begin, prows_value, prows_row_end};

/* A number's decimal text, for comparing with a TEXT column's value. */
static void num_text(char *out, size_t n, int is_int, int64_t i, double d)
{
    if (is_int) snprintf(out, n, "%lld", (long long)i);
    else snprintf(out, n, "%.17g", d);
}

/* Does the portal's value equal the cache's? v NULL (no value in the
 * changeset) never equals. */
static int same(const struct pval *p, sqlite3_value *v)
{
    if (!v) return 0;
    int t = sqlite3_value_type(v);
    int pnum = p->type == JV_INT || p->type == JV_BOOL || p->type == JV_REAL;
    if (p->type == JV_NULL || t == SQLITE_NULL) return p->type == JV_NULL && t == SQLITE_NULL;
    if (pnum && (t == SQLITE_INTEGER || t == SQLITE_FLOAT)) {
        if (p->type != JV_REAL && t == SQLITE_INTEGER) return p->i == sqlite3_value_int64(v);
        double a = p->type == JV_REAL ? p->d : (double)p->i;
        return a == sqlite3_value_double(v);
    }
    char num[64];
    const char *s;
    size_t n;
    if (pnum) {                       /* a number the cache keeps as text */
        num_text(num, sizeof num, p->type != JV_REAL, p->i, p->d);
        s = num;
        n = strlen(num);
    } else {
        s = p->s;
        n = p->n;
    }
    if (t == SQLITE_INTEGER || t == SQLITE_FLOAT) {
        if (pnum) return 0;
        num_text(num, sizeof num, t == SQLITE_INTEGER, sqlite3_value_int64(v), sqlite3_value_double(v));
        return strlen(num) == n && memcmp(num, s, n) == 0;
    }
    const void *b = t == SQLITE_BLOB ? sqlite3_value_blob(v) : (const void *)sqlite3_value_text(v);
    size_t bn = (size_t)sqlite3_value_bytes(v);
    return bn == n && (n == 0 || memcmp(b, s, n) == 0);
}

/* A cache value as a JSON literal (a lookup's value). */
static void put_literal(struct buf *b, sqlite3_value *v)
{
    switch (sqlite3_value_type(v)) {
    case SQLITE_INTEGER: buf_printf(b, "%lld", (long long)sqlite3_value_int64(v)); break;
    case SQLITE_FLOAT: json_write_double(b, sqlite3_value_double(v)); break;
    case SQLITE_NULL: buf_puts(b, "null"); break;
    default: json_write_string(b, (const char *)sqlite3_value_text(v), (size_t)sqlite3_value_bytes(v)); break;
    }
}

/* ---- the op -------------------------------------------------------------------------- */

struct change {
    int type;                         /* SQLITE_INSERT, SQLITE_UPDATE, SQLITE_DELETE */
    sqlite3_value **old, **new_;      /* ncols each; NULL where the changeset has no value */
};

struct op {
    struct replay_outbox_op o;
    const struct config_table *t;
    int kind;                         /* enum journal_op_kind */
    int ncols, key_col, cursor_col;   /* of the cache's table */
    char **names;                     /* its column names */
    struct change *ch;
    size_t nch;
    char *cursor_sql;                 /* reads the cached cursor of a key (?1) */
};

static void op_free(struct op *p)
{
    for (size_t k = 0; k < p->nch; k++) {
        for (int i = 0; i < p->ncols; i++) {
            sqlite3_value_free(p->ch[k].old[i]);
            sqlite3_value_free(p->ch[k].new_[i]);
        }
        free(p->ch[k].old);
        free(p->ch[k].new_);
    }
    free(p->ch);
    for (int i = 0; i < p->ncols && p->names; i++) free(p->names[i]);
    free(p->names);
    free(p->cursor_sql);
    replay_outbox_op_clear(&p->o);
}

static void quote_ident(struct buf *b, const char *s)
{
    buf_putc(b, '"');
    for (; *s; s++) {
        if (*s == '"') buf_putc(b, '"');
        buf_putc(b, *s);
    }
    buf_putc(b, '"');
}

/* The changes of the op's changeset, values copied. 0 or -1 (err). */
static int read_changes(struct op *p, char *err, size_t errlen)
{
    if (p->o.nchangeset == 0) return 0;
    sqlite3_changeset_iter *it;
    if (sqlite3changeset_start(&it, (int)p->o.nchangeset, p->o.changeset) != SQLITE_OK) {
        snprintf(err, errlen, "its changeset is malformed");
        return -1;
    }
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3changeset_next(it)) == SQLITE_ROW) {
        const char *tab;
        int ncols, type, indirect;
        sqlite3changeset_op(it, &tab, &ncols, &type, &indirect);
        if (ncols != p->ncols) {
            snprintf(err, errlen, "its changeset has %d columns, the cached table %d: the table's columns "
                     "changed since the op", ncols, p->ncols);
            sqlite3changeset_finalize(it);
            return -1;
        }
        if (p->nch == cap) {
            cap = cap ? cap * 2 : 8;
            p->ch = xrealloc(p->ch, cap * sizeof *p->ch);
        }
        struct change *c = &p->ch[p->nch++];
        c->type = type;
        c->old = xcalloc((size_t)ncols, sizeof *c->old);
        c->new_ = xcalloc((size_t)ncols, sizeof *c->new_);
        for (int i = 0; i < ncols; i++) {
            sqlite3_value *v = NULL;
            if (type != SQLITE_INSERT && sqlite3changeset_old(it, i, &v) == SQLITE_OK && v)
                c->old[i] = sqlite3_value_dup(v);
            v = NULL;
            if (type != SQLITE_DELETE && sqlite3changeset_new(it, i, &v) == SQLITE_OK && v)
                c->new_[i] = sqlite3_value_dup(v);
        }
    }
    if (sqlite3changeset_finalize(it) != SQLITE_OK || rc != SQLITE_DONE) {
        snprintf(err, errlen, "its changeset is malformed");
        return -1;
    }
    return 0;
}

/* The oldest open op, in full, and the next open ones (*list, *n: the
 * caller frees; OUTBOX_BATCH * 2 at most, for the read-ahead). 1 none, 0
 * found, -1 error (r->msg). */
static int load_oldest(struct pull_ctx *c, struct op *p, struct replay_outbox_op **listp, size_t *np,
                       struct outbox_result *r)
{
    char err[IA_ERRLEN];
    struct replay_outbox_op *list = NULL;
    size_t n = 0;
    int rc = -1;
    lock(c);
    sqlite3 *db = replay_db(c->rp);
    if (replay_outbox_list(db, 1, OUTBOX_BATCH * 2, &list, &n, err, sizeof err) != 0) {
        snprintf(r->msg, sizeof r->msg, "reading the outbox: %s", err);
        goto out;
    }
    if (n == 0) { rc = 1; goto out; }
    r->op_id = list[0].id;
    snprintf(r->table, sizeof r->table, "%s", list[0].table);
    int got = replay_outbox_get(db, list[0].id, &p->o, err, sizeof err);
    if (got != 0) {
        snprintf(r->msg, sizeof r->msg, "op %llu (table %s): %s", (unsigned long long)r->op_id, r->table,
                 got == 1 ? "gone from the outbox" : err);
        goto out;
    }
    struct replay_table st = {0};
    struct replay_column *cols = NULL;
    size_t ncols = 0;
    if (replay_table_get(c->rp, p->o.table, &st, err, sizeof err) != 0 ||
        replay_table_columns(c->rp, p->o.table, &cols, &ncols, err, sizeof err) != 0) {
        snprintf(r->msg, sizeof r->msg, "op %llu (table %s): reading the cached table: %s",
                 (unsigned long long)r->op_id, r->table, err);
        replay_table_free(&st);
        goto out;
    }
    p->ncols = (int)ncols;
    p->key_col = st.key_col;
    p->cursor_col = st.cursor_col;
    p->names = xcalloc(ncols + 1, sizeof *p->names);
    for (size_t i = 0; i < ncols; i++) p->names[i] = xstrdup(cols[i].name);
    replay_columns_free(cols, ncols);
    replay_table_free(&st);
    if (p->cursor_col >= 0 && p->key_col >= 0 && p->cursor_col < p->ncols && p->key_col < p->ncols) {
        struct buf q = {0};
        buf_puts(&q, "SELECT ");
        quote_ident(&q, p->names[p->cursor_col]);
        buf_puts(&q, " FROM ");
        quote_ident(&q, p->o.table);
        buf_puts(&q, " WHERE ");
        quote_ident(&q, p->names[p->key_col]);
        buf_puts(&q, " = ?1");
        p->cursor_sql = buf_detach(&q);
    }
    if (read_changes(p, err, sizeof err) != 0) {
        snprintf(r->msg, sizeof r->msg, "op %llu (table %s): %s", (unsigned long long)r->op_id, r->table, err);
        goto out;
    }
    rc = 0;
out:
    unlock(c);
    *listp = list;
    *np = n;
    return rc;
}

/* The cached cursor of the row with this key (an update's changeset has the
 * cursor's old value only when it changed; the row is protected while the op
 * is open, so the cache still holds the value the op was taken on). NULL when
 * unknown; the caller frees with sqlite3_value_free. */
static sqlite3_value *cached_cursor(struct pull_ctx *c, const struct op *p, sqlite3_value *key)
{
    sqlite3_value *out = NULL;
    sqlite3_stmt *st;
    if (!p->cursor_sql || !key) return NULL;
    lock(c);
    if (sqlite3_prepare_v2(replay_db(c->rp), p->cursor_sql, -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_value(st, 1, key);
        if (sqlite3_step(st) == SQLITE_ROW) out = sqlite3_value_dup(sqlite3_column_value(st, 0));
        sqlite3_finalize(st);
    }
    unlock(c);
    return out;
}

/* ---- the portal ------------------------------------------------------------------------ */

static void put_data(struct buf *q, const struct config_table *t)
{
    if (t->ncolumns == 0) {
        buf_puts(q, "[\"*\"]");
        return;
    }
    buf_putc(q, '[');
    for (int i = 0; i < t->ncolumns; i++) {
        if (i) buf_putc(q, ',');
        json_write_string(q, t->columns[i], strlen(t->columns[i]));
    }
    buf_putc(q, ']');
}

/* Select the rows whose `column` is in values_json (a JSON array). */
static enum remote_status select_in(struct pull_ctx *c, const struct op *p, const char *column,
                                    const char *values_json, struct prows *rows, char *err, size_t errlen)
{
    struct buf q = {0};
    buf_puts(&q, "{\"data\":");
    put_data(&q, p->t);
    buf_puts(&q, ",\"from\":");
    json_write_string(&q, p->t->name, strlen(p->t->name));
    /* `in` and a list: its values are literals (a string in `eq` naming a
     * column would be read as that column). */
    buf_puts(&q, ",\"where\":{\"in\":[");
    json_write_string(&q, column, strlen(column));
    buf_printf(&q, ",%s]},\"limit\":10000}", values_json);
    enum remote_status rs = remote_query(c->remote, "select", q.p, &prows_cb, rows, err, errlen);
    buf_free(&q);
    if (rs == REMOTE_OK && (rows->ragged || (rows->nrows > 0 && rows->ncols != (size_t)p->ncols))) {
        snprintf(err, errlen, "the portal sent %zu columns for the %d cached ones: pull the table again",
                 rows->ncols, p->ncols);
        return REMOTE_EPROTOCOL;
    }
    return rs;
}

/* The portal's name of cached column i: the configured name (the cache calls
 * an unconfigured column Field_N, but key and cursor by their own names). */
static const char *portal_name(const struct op *p, int i)
{
    if (i == p->key_col) return p->t->key;
    if (i == p->cursor_col && p->t->cursor) return p->t->cursor;
    return p->t->ncolumns > 0 && i < p->t->ncolumns ? p->t->columns[i] : p->names[i];
}

/* The portal row whose key equals the change's key, or NULL. */
static const struct pval *find_row(const struct op *p, const struct prows *rows, const struct change *ch)
{
    sqlite3_value *k = ch->old[p->key_col] ? ch->old[p->key_col] : ch->new_[p->key_col];
    for (size_t r = 0; r < rows->nrows; r++)
        if (same(&rows->v[r * rows->ncols + (size_t)p->key_col], k)) return &rows->v[r * rows->ncols];
    return NULL;
}

/* Does the portal's row hold the pre-image of the change: every column the
 * change has an old value of (a delete: all), and the cursor (the cached one
 * when the changeset lacks it)? *what names the first difference. */
static int shows_pre_image(struct pull_ctx *c, const struct op *p, const struct change *ch, const struct pval *row,
                           char *what, size_t n)
{
    for (int i = 0; i < p->ncols; i++) {
        if (!ch->old[i]) continue;
        if (!same(&row[i], ch->old[i])) {
            snprintf(what, n, "column %s changed on the portal", portal_name(p, i));
            return 0;
        }
    }
    if (p->cursor_col >= 0 && !ch->old[p->cursor_col]) {
        sqlite3_value *cur = cached_cursor(c, p, ch->old[p->key_col]);
        int ok = !cur || same(&row[p->cursor_col], cur);
        sqlite3_value_free(cur);
        if (!ok) {
            snprintf(what, n, "its %s changed on the portal", portal_name(p, p->cursor_col));
            return 0;
        }
    }
    return 1;
}

/* Does the portal's row show the update's new values? */
static int shows_update(const struct op *p, const struct change *ch, const struct pval *row)
{
    for (int i = 0; i < p->ncols; i++)
        if (ch->new_[i] && !same(&row[i], ch->new_[i])) return 0;
    return 1;
}

enum verdict { V_PRE, V_APPLIED, V_OTHER, V_ERROR };

/* Update/delete: read the target rows and say what they show. V_PRE: every
 * row is the pre-image (nothing happened to them: send); V_APPLIED: every row
 * shows the op (readback only); V_OTHER: anything else (why in what). */
static enum verdict check_rows(struct pull_ctx *c, const struct op *p, int readback, const struct prows *ahead,
                               enum remote_status *rs, char *what, size_t n)
{
    struct prows own = {0};
    const struct prows *rowsp = ahead;
    if (!ahead) {
        *rs = select_in(c, p, p->t->key, p->o.keys, &own, what, n);
        if (*rs != REMOTE_OK) { prows_clear(&own); return V_ERROR; }
        rowsp = &own;
    }
    const struct prows rows = *rowsp;
    int pre = 1, applied = readback;
    char why[512] = "";
    for (size_t k = 0; k < p->nch; k++) {
        const struct change *ch = &p->ch[k];
        const struct pval *row = find_row(p, &rows, ch);
        char w[400];
        if (ch->type == SQLITE_DELETE) {
            if (row) { applied = 0; if (!shows_pre_image(c, p, ch, row, w, sizeof w)) { pre = 0; snprintf(why, sizeof why, "%s", w); } }
            else { pre = 0; snprintf(why, sizeof why, "the row is gone from the portal"); }
        } else if (ch->type == SQLITE_UPDATE) {
            if (!row) { pre = applied = 0; snprintf(why, sizeof why, "the row is gone from the portal"); continue; }
            if (!shows_pre_image(c, p, ch, row, w, sizeof w)) { pre = 0; snprintf(why, sizeof why, "%s", w); }
            if (!shows_update(p, ch, row)) applied = 0;
        } else {
            /* An update of a key is a delete plus an insert: no pre-image to
             * read back for its new key. */
            pre = applied = 0;
            snprintf(why, sizeof why, "it changes a key, which cannot be checked");
        }
    }
    prows_clear(&own);
    if (readback && applied && p->nch > 0) return V_APPLIED;
    if (pre) return V_PRE;
    snprintf(what, n, "%s", why[0] ? why : "the portal's rows are neither the op's nor the pre-image");
    return V_OTHER;
}

/* The given columns of an insert (params.columns), as cache column indexes;
 * -1 when one is not a cached column. */
static int given_columns(const struct op *p, int **idx, int *n)
{
    cJSON *params = NULL;
    char err[256];
    *idx = NULL;
    *n = 0;
    if (json_parse(p->o.params, strlen(p->o.params), 64, &params, err, sizeof err) != 0) return -1;
    const cJSON *cols = cJSON_GetObjectItemCaseSensitive(params, "columns");
    int rc = cJSON_IsArray(cols) && cJSON_GetArraySize(cols) > 0 ? 0 : -1;
    if (rc == 0) {
        *idx = xcalloc((size_t)cJSON_GetArraySize(cols), sizeof **idx);
        for (const cJSON *c = cols->child; c && rc == 0; c = c->next) {
            int at = -1;
            for (int i = 0; i < p->ncols && cJSON_IsString(c); i++)
                if (!strcmp(portal_name(p, i), c->valuestring)) at = i;
            if (at < 0) rc = -1;
            else (*idx)[(*n)++] = at;
        }
    }
    cJSON_Delete(params);
    return rc;
}

/* Insert, found `sent`: is every inserted row on the portal, equal on every
 * given column? LIMIT: a row equal on those columns that existed before the
 * send also counts, so an insert of a row identical to an existing one is taken
 * as done (a duplicate row is worse than a missed one). */
static enum verdict check_insert(struct pull_ctx *c, const struct op *p, enum remote_status *rs, char *what,
                                 size_t n)
{
    int *idx, nidx, found = 0;
    *rs = REMOTE_OK;
    if (given_columns(p, &idx, &nidx) != 0 || p->nch == 0) {
        free(idx);
        snprintf(what, n, "its columns cannot be compared with the portal's rows");
        return V_OTHER;
    }
    for (size_t k = 0; k < p->nch; k++) {
        const struct change *ch = &p->ch[k];
        int by = -1;
        for (int j = 0; j < nidx && by < 0; j++)
            if (ch->new_[idx[j]] && sqlite3_value_type(ch->new_[idx[j]]) != SQLITE_NULL) by = idx[j];
        if (by < 0) {
            free(idx);
            snprintf(what, n, "it gives no value to look its rows up by");
            return V_OTHER;
        }
        struct buf lit = {0};
        buf_putc(&lit, '[');
        put_literal(&lit, ch->new_[by]);
        buf_putc(&lit, ']');
        struct prows rows = {0};
        *rs = select_in(c, p, portal_name(p, by), lit.p, &rows, what, n);
        buf_free(&lit);
        if (*rs != REMOTE_OK) { prows_clear(&rows); free(idx); return V_ERROR; }
        int hit = 0;
        for (size_t r = 0; r < rows.nrows && !hit; r++) {
            hit = 1;
            for (int j = 0; j < nidx && hit; j++) hit = same(&rows.v[r * rows.ncols + (size_t)idx[j]], ch->new_[idx[j]]);
        }
        found += hit;
        prows_clear(&rows);
    }
    free(idx);
    if ((size_t)found == p->nch) return V_APPLIED;
    if (found == 0) return V_PRE;
    snprintf(what, n, "%d of its %zu rows are on the portal", found, p->nch);
    return V_OTHER;
}

/* ---- the sender's state between steps (send.h) ------------------------------------------- */

struct outbox_sender {
    /* checks read ahead: the portal's rows for the keys of ops ahead[] of table */
    char table[JOURNAL_TABLE_MAX + 1];
    uint64_t ahead[OUTBOX_BATCH];
    size_t nahead;
    struct prows rows;
    double read_at;                   /* clock_mono_s of that select */
    /* re-reads deferred: keys (JSON values, comma-separated) of rtable */
    char rtable[JOURNAL_TABLE_MAX + 1];
    struct buf rkeys;
    size_t nre;                       /* done ops whose keys are in rkeys */
};

struct outbox_sender *outbox_sender_new(void) { return xcalloc(1, sizeof(struct outbox_sender)); }

void outbox_sender_free(struct outbox_sender *s)
{
    if (!s) return;
    prows_clear(&s->rows);
    buf_free(&s->rkeys);
    free(s);
}

static void ahead_forget(struct outbox_sender *s)
{
    if (!s) return;
    s->nahead = 0;
    prows_clear(&s->rows);
}

/* The elements of a JSON array of keys, each as compact JSON text, appended
 * to *keys (n, cap). -1 when it is not an array. */
static int key_texts(const char *json, char ***keys, size_t *n, size_t *cap)
{
    cJSON *a = NULL;
    char err[128];
    if (json_parse(json, strlen(json), 8, &a, err, sizeof err) != 0 || !cJSON_IsArray(a)) {
        cJSON_Delete(a);
        return -1;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, a) {
        if (*n == *cap) {
            *cap = *cap ? *cap * 2 : 16;
            *keys = xrealloc(*keys, *cap * sizeof **keys);
        }
        struct buf b = {0};
        json_write_tree(&b, e);
        (*keys)[(*n)++] = buf_detach(&b);
    }
    cJSON_Delete(a);
    return 0;
}

#define AHEAD_KEYS_MAX 1000           /* keys in one read-ahead select */

/* The rows to check op p (an update or delete to send, list[0]) against: the
 * read-ahead's, when p is in it and it is fresh; else read now for p and the
 * next ops of its table (list) that the portal's rows can be read for in
 * advance: updates and deletes not sent before, keys overlapping no earlier
 * op's (a write of ours would change them), OUTBOX_BATCH at most; the first op
 * that does not qualify ends it. NULL when the select failed (*rs, what). */
static const struct prows *ahead_rows(struct pull_ctx *c, struct outbox_sender *s, const struct op *p,
                                      const struct replay_outbox_op *list, size_t n, enum remote_status *rs,
                                      char *what, size_t wn)
{
    *rs = REMOTE_OK;
    if (!strcmp(s->table, p->o.table) && clock_mono_s() - s->read_at < OUTBOX_AHEAD_S)
        for (size_t i = 0; i < s->nahead; i++)
            if (s->ahead[i] == p->o.id) return &s->rows;
    ahead_forget(s);
    char **keys = NULL;
    size_t nkeys = 0, cap = 0;
    int ok = key_texts(p->o.keys, &keys, &nkeys, &cap) == 0;   /* else p alone, by its own keys */
    s->ahead[s->nahead++] = p->o.id;
    for (size_t i = 1; ok && i < n && s->nahead < OUTBOX_BATCH; i++) {
        const struct replay_outbox_op *o = &list[i];
        if (strcmp(o->table, p->o.table) != 0) continue;   /* another table's rows */
        /* An insert (its row may be what a later op changes) or an op to be
         * read back ends it. */
        if (!strcmp(o->kind, "insert") || strcmp(o->state, "pending") != 0 || o->attempts > 0) break;
        size_t before = nkeys;
        if (key_texts(o->keys, &keys, &nkeys, &cap) != 0) break;
        int stop = nkeys > AHEAD_KEYS_MAX;
        for (size_t a = before; a < nkeys && !stop; a++)
            for (size_t b = 0; b < before && !stop; b++) stop = !strcmp(keys[a], keys[b]);
        if (stop) {   /* o is not read ahead: neither are its keys */
            while (nkeys > before) free(keys[--nkeys]);
            break;
        }
        s->ahead[s->nahead++] = o->id;
    }
    struct buf all = {0};
    buf_putc(&all, '[');
    for (size_t k = 0; k < nkeys; k++) {
        if (k) buf_putc(&all, ',');
        buf_puts(&all, keys[k]);
        free(keys[k]);
    }
    buf_putc(&all, ']');
    free(keys);
    snprintf(s->table, sizeof s->table, "%s", p->o.table);
    s->read_at = clock_mono_s();
    *rs = select_in(c, p, p->t->key, ok ? all.p : p->o.keys, &s->rows, what, wn);
    buf_free(&all);
    if (*rs != REMOTE_OK) {
        ahead_forget(s);
        return NULL;
    }
    return &s->rows;
}

/* ---- journaling ----------------------------------------------------------------------- */

/* Journal the op's new state (durable on return) and apply it. 0 or -1 (r->msg). */
static int put_state(struct pull_ctx *c, const struct op *p, int state, const char *msg, struct outbox_result *r)
{
    char err[IA_ERRLEN];
    struct journal_payload pl = {0};
    size_t n = msg ? strlen(msg) : 0;
    if (n > JOURNAL_OP_MESSAGE_MAX) n = JOURNAL_OP_MESSAGE_MAX;
    struct journal_op_state_rec s = {.op_id = p->o.id, .state = state, .message = msg ? msg : "", .nmessage = n};
    int rc = -1;
    if (journal_payload_op_state(&pl, &s, err, sizeof err) != 0) goto fail;
    lock(c);
    if (journal_append(c->jw, JOURNAL_OP_STATE, p->o.table, pl.p, pl.len, NULL, err, sizeof err) == 0 &&
        replay_apply(c->rp, journal_writer_durable_seq(c->jw), NULL, err, sizeof err) == 0)
        rc = 0;
    unlock(c);
    if (rc == 0) goto out;
fail:
    snprintf(r->msg, sizeof r->msg, "op %llu (table %s): journaling %s: %s", (unsigned long long)p->o.id,
             p->o.table, journal_op_state_name(state), err);
    r->step = OUTBOX_FAILED;
out:
    journal_payload_free(&pl);
    return rc;
}

/* Re-read keys (a JSON array) from the portal; a failure leaves them to the
 * table's next pull (r->repull), the op's outcome stands. */
static void reread(struct pull_ctx *c, const struct op *p, const char *keys, struct outbox_result *r)
{
    char err[IA_ERRLEN];
    if (!keys || !strcmp(keys, "[]")) return;
    if (pull_keys(c, p->t, keys, NULL, err, sizeof err) != 0) {
        log_warn("op %llu (table %s): re-reading its rows: %s; the next pull catches up",
                 (unsigned long long)p->o.id, p->o.table, err);
        snprintf(r->repull, sizeof r->repull, "%s", p->o.table);
    }
}

/* The deferred re-reads, in one pull_keys; a failure leaves them to the
 * table's next pull (r->repull). */
static void flush_rereads(struct pull_ctx *c, struct outbox_sender *s, struct outbox_result *r)
{
    if (!s || !s->nre) return;
    const struct config_table *t = config_table_find(c->cfg, s->rtable);
    char err[IA_ERRLEN];
    struct buf keys = {0};
    buf_putc(&keys, '[');
    buf_append(&keys, s->rkeys.p, s->rkeys.len);
    buf_putc(&keys, ']');
    if (!t || pull_keys(c, t, keys.p, NULL, err, sizeof err) != 0) {
        log_warn("table %s: re-reading the rows of %zu done ops: %s; the next pull catches up", s->rtable, s->nre,
                 t ? err : "the table is not in agent.toml any more");
        snprintf(r->repull, sizeof r->repull, "%s", s->rtable);
    }
    buf_free(&keys);
    buf_reset(&s->rkeys);
    s->nre = 0;
}

/* Re-read keys (a JSON array) now, or with the next ops' (s). */
static void reread_later(struct pull_ctx *c, struct outbox_sender *s, const struct op *p, const char *keys,
                         struct outbox_result *r)
{
    if (!s) { reread(c, p, keys, r); return; }
    size_t n = keys ? strlen(keys) : 0;
    if (n <= 2 || keys[0] != '[' || keys[n - 1] != ']') return;   /* none */
    if (s->nre && strcmp(s->rtable, p->o.table) != 0) flush_rereads(c, s, r);
    if (s->rkeys.len) buf_putc(&s->rkeys, ',');
    buf_append(&s->rkeys, keys + 1, n - 2);
    snprintf(s->rtable, sizeof s->rtable, "%s", p->o.table);
    s->nre++;
}

/* The keys an insert's answer names: rows returned with `returning` the key
 * (a name, or a list holding it). NULL when it names none. */
static char *answer_keys(const struct op *p, const char *result)
{
    cJSON *params = NULL, *res = NULL;
    char err[256];
    char *out = NULL;
    int at = -1;
    if (json_parse(p->o.params, strlen(p->o.params), 64, &params, err, sizeof err) != 0) goto out;
    const cJSON *ret = cJSON_GetObjectItemCaseSensitive(params, "returning");
    if (cJSON_IsString(ret) && !strcmp(ret->valuestring, p->t->key)) at = 0;
    int k = 0;
    if (cJSON_IsArray(ret))
        for (const cJSON *x = ret->child; x; x = x->next, k++)
            if (cJSON_IsString(x) && !strcmp(x->valuestring, p->t->key)) at = k;
    if (at < 0 || json_parse(result, strlen(result), 64, &res, err, sizeof err) != 0 || !cJSON_IsArray(res)) goto out;
    struct buf b = {0};
    buf_putc(&b, '[');
    int n = 0;
    for (const cJSON *row = res->child; row; row = row->next) {
        const cJSON *v = cJSON_IsArray(row) ? cJSON_GetArrayItem(row, at) : NULL;
        if (!v) continue;
        if (n++) buf_putc(&b, ',');
        json_write_tree(&b, v);
    }
    buf_putc(&b, ']');
    if (n) out = buf_detach(&b);
    buf_free(&b);
out:
    cJSON_Delete(params);
    cJSON_Delete(res);
    return out;
}

/* ---- the step ---------------------------------------------------------------------------- */

/* Ended as done: journal it, then re-read what it touched (the keys are no
 * longer protected once `done` is applied, so the portal's rows land). */
static int finish_done(struct pull_ctx *c, struct outbox_sender *s, struct op *p, const char *result,
                       const char *msg, struct outbox_result *r)
{
    if (put_state(c, p, JOURNAL_OPS_DONE, msg, r) != 0) return -1;
    r->step = OUTBOX_DONE;
    if (p->kind != JOURNAL_OP_INSERT) {
        reread_later(c, s, p, p->o.keys, r);
    } else {
        /* The provisional rows went with `done` (replay); the portal's come
         * from the answer when it names their keys, else from the next pull. */
        char *keys = result ? answer_keys(p, result) : NULL;
        if (keys) reread_later(c, s, p, keys, r);
        else snprintf(r->repull, sizeof r->repull, "%s", p->o.table);
        free(keys);
    }
    return 0;
}

static int finish_conflict(struct pull_ctx *c, struct op *p, const char *why, struct outbox_result *r)
{
    char msg[IA_ERRLEN + 64];
    snprintf(msg, sizeof msg, "conflict: %s", why);
    if (put_state(c, p, JOURNAL_OPS_CONFLICT, msg, r) != 0) return -1;
    r->step = OUTBOX_CONFLICT;
    snprintf(r->msg, sizeof r->msg, "op %llu (table %s): %s; the local change was reverted",
             (unsigned long long)p->o.id, p->o.table, msg);
    reread(c, p, p->o.keys, r);
    return 0;
}

/* The portal could not be asked (before anything was sent). */
static void transient(struct op *p, enum remote_status rs, const char *doing, const char *err,
                      struct outbox_result *r)
{
    r->step = OUTBOX_TRANSIENT;
    r->rs = rs;
    snprintf(r->msg, sizeof r->msg, "op %llu (table %s): %s: %s", (unsigned long long)p->o.id, p->o.table, doing,
             err);
}

/* `sending`, durable, then the one request; its answer decides. */
static void send_op(struct pull_ctx *c, struct outbox_sender *s, struct op *p, struct outbox_result *r)
{
    char err[IA_ERRLEN];
    struct buf result = {0};
    if (put_state(c, p, JOURNAL_OPS_SENDING, NULL, r) != 0) return;
    r->sent = 1;
    enum remote_status rs = remote_write(c->remote, p->o.kind, p->o.params, &result, err, sizeof err);
    r->rs = rs;
    switch (rs) {
    case REMOTE_OK:
        finish_done(c, s, p, result.p ? result.p : "null", NULL, r);
        break;
    case REMOTE_ERPC:
    case REMOTE_EFORBIDDEN:
        if (put_state(c, p, JOURNAL_OPS_REJECTED, err, r) != 0) break;
        r->step = OUTBOX_REJECTED;
        snprintf(r->msg, sizeof r->msg, "op %llu (table %s): the portal refused it: %s", (unsigned long long)p->o.id,
                 p->o.table, err);
        break;
    case REMOTE_ETRANSPORT:
    case REMOTE_EAUTH:
    case REMOTE_ECONFIG:
        /* Failed before the statement could run (remote.h: only failures
         * before sending are retried; a session refused again means the
         * portal never ran it): `pending`, so the op is not read as unknown. */
        if (put_state(c, p, JOURNAL_OPS_PENDING, err, r) != 0) break;
        transient(p, rs, "sending", err, r);
        break;
    default:
        /* REMOTE_EUNKNOWN, or an answer that cannot be read: the portal may
         * have run it. It stays `sent`; the next step reads back. */
        r->step = OUTBOX_UNKNOWN;
        snprintf(r->msg, sizeof r->msg, "op %llu (table %s): write outcome unknown (%s); it will be read back, "
                 "not resent", (unsigned long long)p->o.id, p->o.table, err);
        break;
    }
    buf_free(&result);
}

int outbox_send_next(struct pull_ctx *c, struct outbox_sender *s, struct outbox_result *r)
{
    struct op p = {0};
    struct replay_outbox_op *list = NULL;
    size_t nlist = 0;
    memset(r, 0, sizeof *r);
    int got = load_oldest(c, &p, &list, &nlist, r);
    /* Deferred re-reads go out before the sender idles or turns to another
     * table, and every OUTBOX_BATCH ops. */
    if (s && s->nre && (got != 0 || strcmp(p.o.table, s->rtable) != 0 || s->nre >= OUTBOX_BATCH))
        flush_rereads(c, s, r);
    if (got == 1) { r->step = OUTBOX_IDLE; goto out; }
    if (got < 0) {
        r->step = OUTBOX_FAILED;
        int rc = r->op_id ? 0 : -1;   /* an op that cannot be read: back off, its id named */
        ahead_forget(s);
        op_free(&p);
        replay_outbox_free(list, nlist);
        return rc;
    }
    p.t = config_table_find(c->cfg, p.o.table);
    p.kind = !strcmp(p.o.kind, "insert") ? JOURNAL_OP_INSERT : !strcmp(p.o.kind, "update") ? JOURNAL_OP_UPDATE
           : JOURNAL_OP_DELETE;
    if (!p.t || p.key_col < 0 || p.key_col >= p.ncols) {
        /* Left open (never dropped silently): `outbox drop` or the config decides. */
        r->step = OUTBOX_FAILED;
        snprintf(r->msg, sizeof r->msg, "op %llu (table %s): %s", (unsigned long long)p.o.id, p.o.table,
                 !p.t ? "the table is not in agent.toml any more: it cannot be sent" : "the cached table has no key");
        goto out;
    }
    char what[IA_ERRLEN];
    enum remote_status rs = REMOTE_OK;
    /* Sent, or an update/delete sent before (`outbox retry`, a send that failed
     * before the request left): read back first. A pending insert is sent: it
     * cannot be read back exactly, and `outbox retry` refuses a sent insert. */
    int is_sent = !strcmp(p.o.state, "sent") || (p.o.attempts > 0 && p.kind != JOURNAL_OP_INSERT);
    if (is_sent && p.nch == 0) {
        /* Nothing cached to compare with: its outcome cannot be read back,
         * and a write is never resent blindly. */
        finish_conflict(c, &p, "its outcome was lost and it touched no cached row to read back; check the "
                        "portal, then `outbox retry` or `outbox drop`", r);
    } else if (is_sent) {
        enum verdict v = p.kind == JOURNAL_OP_INSERT ? check_insert(c, &p, &rs, what, sizeof what)
                                                     : check_rows(c, &p, 1, NULL, &rs, what, sizeof what);
        r->rs = rs;
        if (v == V_ERROR) transient(&p, rs, "reading back an op whose outcome was lost", what, r);
        else if (v == V_APPLIED) finish_done(c, s, &p, NULL, "found applied on the portal when read back", r);
        else if (v == V_OTHER) finish_conflict(c, &p, what, r);
        else send_op(c, s, &p, r);
    } else if (p.kind != JOURNAL_OP_INSERT && p.nch > 0) {
        const struct prows *ahead = s ? ahead_rows(c, s, &p, list, nlist, &rs, what, sizeof what) : NULL;
        enum verdict v = s && !ahead ? V_ERROR : check_rows(c, &p, 0, ahead, &rs, what, sizeof what);
        r->rs = rs;
        if (v == V_ERROR) transient(&p, rs, "reading its rows from the portal", what, r);
        else if (v == V_OTHER && p.t->conflict == CONFLICT_PORTAL) finish_conflict(c, &p, what, r);
        else send_op(c, s, &p, r);
    } else {
        send_op(c, s, &p, r);
    }
    /* The rows read ahead hold while ops end as expected; anything else (the
     * portal gone, an answer lost) and they are read again. */
    if (r->step != OUTBOX_DONE && r->step != OUTBOX_CONFLICT && r->step != OUTBOX_REJECTED) ahead_forget(s);
out:
    op_free(&p);
    replay_outbox_free(list, nlist);
    return 0;
}
