/* pull.c — see pull.h.
 *
 * A page travels: remote_query() streams values → page_value() encodes each into
 * a journal payload → journal_append() makes it durable → replay_apply() puts it
 * in cache.db. Only after the append returns does replay see the record
 * (invariant 1); the position and the table's mark move in replay's transaction
 * (invariants 2, 3). */
#include "agent/pull/pull.h"
#include "agent/pull/pull_int.h"
#include "agent/base/clock.h"
#include "agent/base/buf.h"
#include "agent/base/err.h"
#include "agent/base/json.h"
#include "agent/base/log.h"
#include "agent/base/mem.h"
#include "journal/rows.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SAMPLE_ROWS 100
#define CATCHUP_PAGES 4              /* a backlog of more pages than this is read in key ranges at once */

/* The journal writer and cache.db's writer connection are shared by the
 * daemon's two workers: every use of c->jw and c->rp holds c->lock. */
void pull_lock(struct pull_ctx *c) { if (c->lock) pthread_mutex_lock(c->lock); }
void pull_unlock(struct pull_ctx *c) { if (c->lock) pthread_mutex_unlock(c->lock); }

/* ---- typed values ------------------------------------------------------------ */

void pull_val_clear(struct replay_value *v)
{
    free(v->s);
    memset(v, 0, sizeof *v);
}

void pull_val_from_json(struct replay_value *v, const struct json_val *j)
{
    pull_val_clear(v);
    switch (j->type) {
    case JV_NULL: v->type = JOURNAL_NULL; break;
    case JV_BOOL: v->type = JOURNAL_BOOL; v->i = j->i; break;
    case JV_INT: v->type = JOURNAL_INT; v->i = j->i; break;
    case JV_REAL: v->type = JOURNAL_REAL; v->d = j->d; break;
    case JV_TEXT: case JV_JSON:
        v->type = j->type == JV_TEXT ? JOURNAL_TEXT : JOURNAL_JSON;
        v->s = xstrndup(j->s, j->n);
        v->n = j->n;
        break;
    }
}

void pull_val_copy(struct replay_value *dst, const struct replay_value *src)
{
    pull_val_clear(dst);
    *dst = *src;
    if (src->s) dst->s = xstrndup(src->s, src->n);
}

struct journal_value pull_val_view(const struct replay_value *v)
{
    struct journal_value j = {.type = v->type, .i = v->i, .d = v->d, .s = v->s, .n = v->n};
    return j;
}

/* Order of typed values as the portal and SQLite order keys: NULL first, numbers
 * numerically, text and JSON bytewise. */
int pull_val_cmp(const struct replay_value *a, const struct replay_value *b)
{
    int an = a->type == JOURNAL_INT || a->type == JOURNAL_BOOL || a->type == JOURNAL_REAL;
    int bn = b->type == JOURNAL_INT || b->type == JOURNAL_BOOL || b->type == JOURNAL_REAL;
    if (a->type == JOURNAL_NULL || b->type == JOURNAL_NULL)
        return (a->type != JOURNAL_NULL) - (b->type != JOURNAL_NULL);
    if (an && bn) {
        if (a->type != JOURNAL_REAL && b->type != JOURNAL_REAL) return (a->i > b->i) - (a->i < b->i);
        double x = a->type == JOURNAL_REAL ? a->d : (double)a->i;
        double y = b->type == JOURNAL_REAL ? b->d : (double)b->i;
        return (x > y) - (x < y);
    }
    if (an != bn) return an ? -1 : 1;
    size_t n = a->n < b->n ? a->n : b->n;
    int c = memcmp(a->s, b->s, n);
    return c ? c : (a->n > b->n) - (a->n < b->n);
}

/* A value as a JSONSQL literal. */
void pull_val_json(struct buf *b, const struct replay_value *v)
{
    switch (v->type) {
    case JOURNAL_NULL: buf_puts(b, "null"); break;
    case JOURNAL_BOOL: buf_puts(b, v->i ? "true" : "false"); break;
    case JOURNAL_INT: buf_printf(b, "%lld", (long long)v->i); break;
    case JOURNAL_REAL: json_write_double(b, v->d); break;
    case JOURNAL_TEXT: json_write_string(b, v->s, v->n); break;
    case JOURNAL_JSON: buf_append(b, v->s, v->n); break;
    }
}

/* ---- schema ---------------------------------------------------------------------- */

void pull_schema_free(struct schema *s)
{
    for (int i = 0; i < s->ncols; i++) free(s->names[i]);
    free(s->names);
    free(s->types);
    free(s->data);
    memset(s, 0, sizeof *s);
}

/* Rows of a sample query, kept whole (small by construction). */
struct sample {
    struct replay_value *v;          /* rows * ncols values */
    size_t rows, ncols, cap, col;
    int ragged;                      /* rows of different widths */
};

static int sample_begin(void *ctx)
{
    struct sample *s = ctx;
    /* every slot: a body cut mid-row leaves values past the last whole row */
    for (size_t i = 0; i < s->cap; i++) pull_val_clear(&s->v[i]);
    s->rows = s->ncols = s->col = 0;
    s->ragged = 0;
    return 0;
}

static int sample_value(void *ctx, size_t col, const struct json_val *j)
{
    struct sample *s = ctx;
    if (s->rows == 0 && col >= s->ncols) s->ncols = col + 1;
    if (col >= s->ncols || col >= JOURNAL_COLUMNS_MAX) { s->ragged = 1; return 1; }
    size_t need = (s->rows + 1) * s->ncols;
    if (need > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        while (cap < need) cap *= 2;
        s->v = xrealloc(s->v, cap * sizeof *s->v);
        memset(s->v + s->cap, 0, (cap - s->cap) * sizeof *s->v);
        s->cap = cap;
    }
    pull_val_from_json(&s->v[s->rows * s->ncols + col], j);
    return 0;
}

static int sample_row_end(void *ctx, size_t row, size_t ncols)
{
    struct sample *s = ctx;
    if (ncols != s->ncols) { s->ragged = 1; return 1; }
    s->rows++;
    return 0;
}

static const struct json_rows_cb sample_cb = {sample_begin, NULL, sample_value, sample_row_end};

static void sample_free(struct sample *s)
{
    sample_begin(s);
    free(s->v);
    memset(s, 0, sizeof *s);
}

int pull_fail_remote(struct pull_result *r, enum remote_status st, const char *what, const char *msg)
{
    snprintf(r->error, sizeof r->error, "%s: %s error: %s", what, remote_status_name(st), msg);
    r->remote_status = st;
    if (st == REMOTE_EFORBIDDEN) r->forbidden = 1;
    return -1;
}

static enum journal_coltype merge_type(enum journal_coltype cur, enum journal_vtype v)
{
    enum journal_coltype t = v == JOURNAL_BOOL ? JOURNAL_COL_BOOL : v == JOURNAL_INT ? JOURNAL_COL_INT
                           : v == JOURNAL_REAL ? JOURNAL_COL_REAL : v == JOURNAL_TEXT ? JOURNAL_COL_TEXT
                           : v == JOURNAL_JSON ? JOURNAL_COL_JSON : JOURNAL_COL_ANY;
    if (t == JOURNAL_COL_ANY) return cur;          /* NULL says nothing */
    if (cur == JOURNAL_COL_ANY || cur == t) return t;
    if ((cur == JOURNAL_COL_INT && t == JOURNAL_COL_REAL) || (cur == JOURNAL_COL_REAL && t == JOURNAL_COL_INT))
        return JOURNAL_COL_REAL;
    return JOURNAL_COL_TEXT;                       /* mixed: keep values as they come */
}

/* Which column of the sample holds exactly the values of `probe`? -1 none, -2 several. */
static int find_column(const struct sample *s, const struct sample *probe)
{
    int found = -1;
    if (probe->rows != s->rows || probe->ncols != 1) return -1;
    for (size_t c = 0; c < s->ncols; c++) {
        size_t r = 0;
        for (; r < s->rows; r++)
            if (pull_val_cmp(&s->v[r * s->ncols + c], &probe->v[r]) != 0 ||
                s->v[r * s->ncols + c].type != probe->v[r].type)
                break;
        if (r == s->rows) {
            if (found >= 0) return -2;
            found = (int)c;
        }
    }
    return found;
}

/* Learn the columns: configured names, or introspection of `*`. Types come from
 * a sample of the first rows by key (stable from run to run). */
static int learn_schema(struct pull_ctx *c, const struct config_table *t, struct schema *s,
                        struct pull_result *r)
{
    struct buf q = {0}, data = {0};
    char err[IA_ERRLEN];
    struct sample smp = {0}, probe = {0};
    int rc = -1;
    memset(s, 0, sizeof *s);
    if (t->ncolumns > 0) {
        buf_putc(&data, '[');
        for (int i = 0; i < t->ncolumns; i++) {
            if (i) buf_putc(&data, ',');
            json_write_string(&data, t->columns[i], strlen(t->columns[i]));
        }
        buf_putc(&data, ']');
    } else {
        buf_puts(&data, "[\"*\"]");
    }
    buf_printf(&q, "{\"data\":%s,\"from\":\"%s\",\"order_by\":\"%s\",\"limit\":%d}", data.p, t->name, t->key,
               SAMPLE_ROWS);
    enum remote_status st = remote_query(c->remote, "select", q.p, &sample_cb, &smp, err, sizeof err);
    if (st != REMOTE_OK) { pull_fail_remote(r, st, "learning columns", err); goto out; }
    if (smp.ragged) {
        snprintf(r->error, sizeof r->error, "learning columns: rows of different widths from the portal");
        goto out;
    }
    int ncols = t->ncolumns > 0 ? t->ncolumns : (int)smp.ncols;
    if (ncols == 0) {
        snprintf(r->error, sizeof r->error, "table %s is empty on the portal and agent.toml lists no columns: "
                 "its columns cannot be learned; list them in `columns`", t->name);
        goto out;
    }
    if (smp.rows > 0 && (int)smp.ncols != ncols) {
        snprintf(r->error, sizeof r->error, "the portal sent %zu values per row for %d configured columns",
                 smp.ncols, ncols);
        goto out;
    }
    s->ncols = ncols;
    s->names = xcalloc((size_t)ncols, sizeof *s->names);
    s->types = xcalloc((size_t)ncols, sizeof *s->types);
    s->key_col = s->cursor_col = -1;
    for (int i = 0; i < ncols; i++) {
        if (t->ncolumns > 0) {
            s->names[i] = xstrdup(t->columns[i]);
        } else {
            char nm[32];
            snprintf(nm, sizeof nm, "Field_%d", i + 1);
            s->names[i] = xstrdup(nm);
        }
        for (size_t row = 0; row < smp.rows; row++)
            s->types[i] = merge_type(s->types[i], smp.v[row * smp.ncols + (size_t)i].type);
    }
    /* Positions of key and cursor: by name, or by matching values of the sample. */
    const char *want[2] = {t->key, t->cursor};
    int *pos[2] = {&s->key_col, &s->cursor_col};
    for (int w = 0; w < 2; w++) {
        if (!want[w]) continue;
        for (int i = 0; i < t->ncolumns; i++)
            if (!strcmp(t->columns[i], want[w])) *pos[w] = i;
        if (t->ncolumns > 0) continue;
        if (smp.rows == 0) { *pos[w] = w == 0 ? 0 : -1; continue; }
        buf_reset(&q);
        buf_printf(&q, "{\"data\":[\"%s\"],\"from\":\"%s\",\"order_by\":\"%s\",\"limit\":%d}", want[w], t->name,
                   t->key, SAMPLE_ROWS);
        st = remote_query(c->remote, "select", q.p, &sample_cb, &probe, err, sizeof err);
        if (st != REMOTE_OK) { pull_fail_remote(r, st, "learning columns", err); goto out; }
        int at = find_column(&smp, &probe);
        if (at < 0) {
            snprintf(r->error, sizeof r->error, "cannot tell which of the %d columns is `%s`%s; list the "
                     "columns in agent.toml", ncols, want[w], at == -2 ? " (several hold the same values)" : "");
            goto out;
        }
        *pos[w] = at;
        free(s->names[at]);
        s->names[at] = xstrdup(want[w]);
    }
    if (s->key_col < 0) {
        snprintf(r->error, sizeof r->error, "key column `%s` is not among the columns", t->key);
        goto out;
    }
    /* A column that is NULL in every sampled row (or a table that is empty now)
     * says nothing about its type: keep the one the cache already has, so data
     * alone never looks like a schema change. */
    struct replay_column *prev = NULL;
    size_t nprev = 0;
    pull_lock(c);
    int have_prev = replay_table_columns(c->rp, t->name, &prev, &nprev, err, sizeof err) == 0;
    pull_unlock(c);
    if (have_prev && (int)nprev == ncols)
        for (int i = 0; i < ncols; i++)
            if (s->types[i] == JOURNAL_COL_ANY && !strcmp(prev[i].name, s->names[i])) s->types[i] = prev[i].type;
    if (have_prev) replay_columns_free(prev, nprev);
    replay_schema_hash((uint32_t)ncols, (const char *const *)s->names, s->types, s->hash);
    s->data = buf_detach(&data);
    rc = 0;
out:
    if (rc != 0) pull_schema_free(s);
    buf_free(&q);
    buf_free(&data);
    sample_free(&smp);
    sample_free(&probe);
    return rc;
}

/* ---- pages ------------------------------------------------------------------------ */

static void page_reset(struct page *p)
{
    if (p->type == JOURNAL_SNAPSHOT_PAGE)
        journal_payload_snapshot_page(&p->pl, p->snapshot_id, (uint32_t)p->s->ncols);
    else
        journal_payload_deletions(&p->pl, (uint32_t)p->s->ncols);   /* a bare rows block */
    p->rows = 0;
    p->width = 0;
    pull_val_clear(&p->last_key);
    pull_val_clear(&p->last_cursor);
}

static int page_begin(void *ctx) { page_reset(ctx); return 0; }

static int page_row_begin(void *ctx, size_t row)
{
    ((struct page *)ctx)->width = 0;
    return 0;
}

static int page_value(void *ctx, size_t col, const struct json_val *v)
{
    struct page *p = ctx;
    if ((int)col >= p->s->ncols) {
        snprintf(p->error, sizeof p->error, "row %llu has more than %d values", (unsigned long long)p->rows + 1,
                 p->s->ncols);
        return 1;
    }
    switch (v->type) {
    case JV_NULL: journal_put_null(&p->pl); break;
    case JV_BOOL: journal_put_bool(&p->pl, (int)v->i); break;
    case JV_INT: journal_put_int(&p->pl, v->i); break;
    case JV_REAL: journal_put_double(&p->pl, v->d); break;
    case JV_TEXT: journal_put_text(&p->pl, v->s, v->n); break;
    case JV_JSON: journal_put_json(&p->pl, v->s, v->n); break;
    }
    if ((int)col == p->s->key_col) pull_val_from_json(&p->row_key, v);
    if ((int)col == p->s->cursor_col) pull_val_from_json(&p->row_cursor, v);
    p->width++;
    return 0;
}

static int page_row_end(void *ctx, size_t row, size_t ncols)
{
    struct page *p = ctx;
    if ((int)ncols != p->s->ncols) {
        snprintf(p->error, sizeof p->error, "row %llu has %zu values, expected %d", (unsigned long long)p->rows + 1,
                 ncols, p->s->ncols);
        return 1;
    }
    if (p->row_key.type == JOURNAL_NULL) {
        snprintf(p->error, sizeof p->error, "row %llu has a NULL key", (unsigned long long)p->rows + 1);
        return 1;
    }
    if (p->track_ends) {
        if (p->row_key.type != JOURNAL_INT) {
            snprintf(p->error, sizeof p->error, "row %llu: the key is not an integer", (unsigned long long)p->rows + 1);
            return 1;
        }
        if (p->rows == p->ends_cap) {
            p->ends_cap = p->ends_cap ? p->ends_cap * 2 : 256;
            p->ends = xrealloc(p->ends, p->ends_cap * sizeof *p->ends);
            p->end_keys = xrealloc(p->end_keys, p->ends_cap * sizeof *p->end_keys);
        }
        journal_payload_tell(&p->pl, &p->ends[p->rows]);
        p->end_keys[p->rows] = p->row_key.i;
    }
    pull_val_copy(&p->last_key, &p->row_key);
    pull_val_copy(&p->last_cursor, &p->row_cursor);
    p->rows++;
    return 0;
}

const struct json_rows_cb pull_page_cb = {page_begin, page_row_begin, page_value, page_row_end};

void pull_page_free(struct page *p)
{
    journal_payload_free(&p->pl);
    pull_val_clear(&p->row_key);
    pull_val_clear(&p->row_cursor);
    pull_val_clear(&p->last_key);
    pull_val_clear(&p->last_cursor);
    pull_val_clear(&p->max_key);
    pull_val_clear(&p->max_cursor);
    free(p->ends);
    free(p->end_keys);
}

/* Fetch one page: the page's payload is complete and finished on success. */
int pull_fetch(struct pull_ctx *c, remote *rm, const char *query, struct page *p, struct pull_result *r)
{
    char err[IA_ERRLEN];
    p->error[0] = '\0';
    if (c->cancel && atomic_load(c->cancel)) {
        /* Between pages: what is journaled stays consistent and resumes later. */
        snprintf(r->error, sizeof r->error, "stopped (shutting down)");
        return -1;
    }
    enum remote_status st = remote_query(rm, "select", query, &pull_page_cb, p, err, sizeof err);
    if (st != REMOTE_OK) {
        if (p->error[0]) snprintf(r->error, sizeof r->error, "bad page from the portal: %s", p->error);
        else pull_fail_remote(r, st, "pulling a page", err);
        return -1;
    }
    if (journal_payload_finish(&p->pl, err, sizeof err) != 0) {
        snprintf(r->error, sizeof r->error, "encoding a page: %s", err);
        return -1;
    }
    return 0;
}

/* A page parsed as a bare rows block, re-encoded as an INCREMENTAL_PAGE that
 * leads with its mark. Calls each_key (if set) with every row's key. 0 or -1. */
static int page_to_incremental(const struct page *p, const struct replay_value *mark_cursor,
                               const struct replay_value *mark_key, struct journal_payload *out,
                               void (*each_key)(void *ctx, const struct journal_value *k), void *ctx,
                               char *err, size_t errlen)
{
    struct journal_value mc = pull_val_view(mark_cursor), mk = pull_val_view(mark_key);
    journal_payload_incremental_page(out, &mc, &mk, (uint32_t)p->s->ncols);
    struct journal_page jp;
    if (journal_decode_page(JOURNAL_DELETIONS, p->pl.p, p->pl.len, &jp, err, errlen) != 0) return -1;
    struct journal_value *vals = xcalloc((size_t)p->s->ncols, sizeof *vals);
    int got;
    while ((got = journal_rows_next(&jp.rows, vals, err, errlen)) == 1) {
        for (int i = 0; i < p->s->ncols; i++) journal_put_value(out, &vals[i]);
        if (each_key) each_key(ctx, &vals[p->s->key_col]);
    }
    free(vals);
    return got < 0 ? -1 : journal_payload_finish(out, err, errlen);
}

/* Append one record and apply everything durable. */
int pull_append_apply(struct pull_ctx *c, int type, const char *table, const struct journal_payload *pl,
                        uint64_t *seq, struct pull_result *r)
{
    char err[IA_ERRLEN];
    uint64_t s;
    int rc = -1;
    pull_lock(c);
    if (journal_append(c->jw, type, table, pl->p, pl->len, &s, err, sizeof err) != 0) {
        snprintf(r->error, sizeof r->error, "journal: %s", err);
        goto out;
    }
    if (seq) *seq = s;
    struct replay_stats rs = {0};
    if (replay_apply(c->rp, journal_writer_durable_seq(c->jw), &rs, err, sizeof err) != 0) {
        snprintf(r->error, sizeof r->error, "replay: %s", err);
        goto out;
    }
    /* A snapshot's swap deletes the rows the portal no longer has (a sweep
     * counts its own DELETIONS where it journals them). */
    if (type == JOURNAL_SNAPSHOT_END) r->deleted += rs.rows_deleted;
    rc = 0;
out:
    pull_unlock(c);
    return rc;
}

/* ---- progress ------------------------------------------------------------------------ */

void pull_progress_show(struct progress *pr, uint64_t rows, int done)
{
    if (!pr->on) return;
    double now = clock_mono_s();
    if (!done && now - pr->last < 0.2) return;
    pr->last = now;
    double rate = now > pr->start ? (double)rows / (now - pr->start) : 0;
    char eta[32] = "";
    if (!done && pr->expected > rows && rate > 0)
        snprintf(eta, sizeof eta, "  ETA %.0fs", (double)(pr->expected - rows) / rate);
    if (pr->expected)
        fprintf(stderr, "\r%s: %llu/%llu rows  %.0f rows/s%s\033[K", pr->table, (unsigned long long)rows,
                (unsigned long long)pr->expected, rate, eta);
    else
        fprintf(stderr, "\r%s: %llu rows  %.0f rows/s\033[K", pr->table, (unsigned long long)rows, rate);
    if (done) fputc('\n', stderr);
}

/* The first row of a query (count, max...) as n typed values; NULLs when it
 * has no rows or fewer values. */
int pull_scalars(struct pull_ctx *c, const char *query, struct replay_value *out, int n, struct pull_result *r)
{
    struct sample s = {0};
    char err[IA_ERRLEN];
    enum remote_status st = remote_query(c->remote, "select", query, &sample_cb, &s, err, sizeof err);
    if (st != REMOTE_OK) { sample_free(&s); return pull_fail_remote(r, st, "asking the portal", err); }
    for (int i = 0; i < n; i++) {
        pull_val_clear(&out[i]);
        if (s.rows >= 1 && s.ncols > (size_t)i) pull_val_copy(&out[i], &s.v[i]);
    }
    sample_free(&s);
    return 0;
}

/* ---- snapshot --------------------------------------------------------------------------- */

static int write_schema(struct pull_ctx *c, const struct config_table *t, const struct schema *s,
                        struct pull_result *r)
{
    struct journal_payload pl = {0};
    char err[IA_ERRLEN];
    int rc = journal_payload_schema(&pl, (uint32_t)s->ncols, (const char *const *)s->names, s->types, s->key_col,
                                    s->cursor_col, err, sizeof err);
    if (rc == 0) rc = journal_payload_finish(&pl, err, sizeof err);
    if (rc != 0) snprintf(r->error, sizeof r->error, "schema record: %s", err);
    else rc = pull_append_apply(c, JOURNAL_SCHEMA, t->name, &pl, NULL, r);
    journal_payload_free(&pl);
    return rc;
}

static int snapshot(struct pull_ctx *c, const struct config_table *t, const struct schema *s,
                    const struct replay_table *st, struct pull_result *r)
{
    struct page p = {.type = JOURNAL_SNAPSHOT_PAGE, .s = s};
    struct replay_value after = {0}, count = {0}, mark_cursor = {0};
    struct buf q = {0};
    struct progress pr = {.on = c->progress, .table = t->name, .start = clock_mono_s()};
    int rc = -1;
    /* An integer key splits into ranges that streams pull at once (streams.c),
     * and so does resuming a snapshot begun that way; otherwise one keyset
     * cursor reads it, below (streams = 1: fetch, journal, apply in turn). */
    int ranged = s->types[s->key_col] == JOURNAL_COL_INT &&
                 ((t->streams > 1 && c->cfg->remote.max_inflight > 1) || st->nranges > 0);

    buf_printf(&q, "{\"data\":[{\"function\":\"count\",\"args\":[\"*\"]}],\"from\":\"%s\"}", t->name);
    if (pull_scalars(c, q.p, &count, 1, r) != 0) goto out;
    if (count.type == JOURNAL_INT && count.i > 0) pr.expected = (uint64_t)count.i;
    int resume = st->pending_id != 0 && !strcmp(st->schema_hash, s->hash) &&
                 (st->pending_key.type != JOURNAL_NULL || (ranged && st->nranges > 0));
    if (t->cursor && resume && st->mark_cursor.type != JOURNAL_NULL) {
        /* Resuming: rows journaled before the interruption may have changed since,
         * so the mark must not pass the snapshot's start. The table's previous mark
         * is older than that. */
        pull_val_copy(&mark_cursor, &st->mark_cursor);
    } else if (t->cursor) {
        /* The mark after the snapshot: the newest cursor before it began (rows
         * changed while it runs are newer, so the next increment reads them again);
         * when resuming with no earlier mark, the oldest cursor (everything again). */
        buf_reset(&q);
        buf_printf(&q, "{\"data\":[{\"function\":\"%s\",\"args\":\"%s\"}],\"from\":\"%s\"}",
                   resume ? "min" : "max", t->cursor, t->name);
        if (pull_scalars(c, q.p, &mark_cursor, 1, r) != 0) goto out;
    }
    if (resume) {
        p.snapshot_id = st->pending_id;
        p.rows = 0;
        pull_val_copy(&after, &st->pending_key);
        r->action = "resumed snapshot";
        log_info("table %s: resuming snapshot %llu after %llu rows", t->name,
                 (unsigned long long)st->pending_id, (unsigned long long)st->pending_rows);
    } else {
        if (write_schema(c, t, s, r) != 0) goto out;
        struct journal_payload pl = {0};
        char err[IA_ERRLEN];
        journal_payload_snapshot_begin(&pl, pr.expected);
        if (journal_payload_finish(&pl, err, sizeof err) != 0 ||
            pull_append_apply(c, JOURNAL_SNAPSHOT_BEGIN, t->name, &pl, &p.snapshot_id, r) != 0) {
            if (!r->error[0]) snprintf(r->error, sizeof r->error, "snapshot begin: %s", err);
            journal_payload_free(&pl);
            goto out;
        }
        journal_payload_free(&pl);
        r->action = "snapshot";
    }
    uint64_t total = resume ? st->pending_rows : 0;
    if (ranged) {
        if (pull_streams_snapshot(c, t, s, resume ? st : NULL, p.snapshot_id, &pr, &total, &after, r) != 0)
            goto out;
    }
    while (!ranged) {
        buf_reset(&q);
        buf_printf(&q, "{\"data\":%s,\"from\":\"%s\",", s->data, t->name);
        if (after.type != JOURNAL_NULL) {
            buf_printf(&q, "\"where\":{\"gt\":[\"%s\",", t->key);
            pull_val_json(&q, &after);
            buf_puts(&q, "]},");
        }
        buf_printf(&q, "\"order_by\":\"%s\",\"limit\":%lld}", t->key, (long long)t->chunk);
        if (pull_fetch(c, c->remote, q.p, &p, r) != 0) goto out;
        if (p.rows == 0) break;          /* a short page is not the end; an empty one is */
        if (after.type != JOURNAL_NULL && pull_val_cmp(&p.last_key, &after) <= 0) {
            snprintf(r->error, sizeof r->error, "the portal did not order by %s: a page ended at or before "
                     "the previous one", t->key);
            goto out;
        }
        if (pull_append_apply(c, JOURNAL_SNAPSHOT_PAGE, t->name, &p.pl, NULL, r) != 0) goto out;
        total += p.rows;
        r->rows += p.rows;
        pull_val_copy(&after, &p.last_key);
        pull_progress_show(&pr, total, 0);
    }
    struct journal_payload pl = {0};
    char err[IA_ERRLEN];
    struct journal_value mc = pull_val_view(&mark_cursor), mk = pull_val_view(&after);
    if (t->cursor) mk.type = JOURNAL_NULL;   /* re-read every row of the mark's cursor value */
    journal_payload_snapshot_end(&pl, p.snapshot_id, total, &mc, &mk);
    if (journal_payload_finish(&pl, err, sizeof err) != 0) {
        snprintf(r->error, sizeof r->error, "snapshot end: %s", err);
        journal_payload_free(&pl);
        goto out;
    }
    rc = pull_append_apply(c, JOURNAL_SNAPSHOT_END, t->name, &pl, NULL, r);
    r->snapshot_done = rc == 0;
    journal_payload_free(&pl);
    pull_progress_show(&pr, total, 1);
out:
    pull_page_free(&p);
    pull_val_clear(&after);
    pull_val_clear(&count);
    pull_val_clear(&mark_cursor);
    buf_free(&q);
    return rc;
}

/* ---- incremental ------------------------------------------------------------------------ */

/* "YYYY-MM-DD HH:MM:SS[...]" minus ms, same format; 0 ok, -1 not a timestamp. */
static int ts_minus(const struct replay_value *v, int64_t ms, struct replay_value *out)
{
    struct tm tm = {0};
    if (v->type != JOURNAL_TEXT || v->n < 19) return -1;
    char head[20];
    memcpy(head, v->s, 19);
    head[19] = '\0';
    char *end = strptime(head, "%Y-%m-%d %H:%M:%S", &tm);
    if (!end || *end) return -1;
    time_t secs = timegm(&tm) - (time_t)((ms + 999) / 1000);
    struct tm o;
    gmtime_r(&secs, &o);
    char buf[32];
    strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &o);
    pull_val_clear(out);
    out->type = JOURNAL_TEXT;
    out->s = xstrdup(buf);
    out->n = strlen(buf);
    return 0;
}

/* A backlog of more than CATCHUP_PAGES pages after (since, since_key) (an outage,
 * say) is read in key ranges at once (streams.c); then the mark moves to the
 * newest (cursor, key) the portal had before that began — rows changed meanwhile are
 * newer, and the caller reads them next. Until then the mark stays, so an
 * interrupted catch-up starts over from it. 1 done (*mark_* moved), 0 not
 * worth it, -1 error (r->error). */
static int catch_up(struct pull_ctx *c, const struct config_table *t, const struct schema *s,
                    const struct replay_value *since, const struct replay_value *since_key,
                    struct replay_value *mark_cursor,
                    struct replay_value *mark_key, struct pull_result *r)
{
    struct replay_value v[2] = {{0}, {0}}, mk_new = {0};   /* count, newest cursor; its largest key */
    struct buf q = {0};
    struct journal_payload pl = {0};
    char err[IA_ERRLEN];
    int rc = -1;
    buf_printf(&q, "{\"data\":[{\"function\":\"count\",\"args\":[\"*\"]},{\"function\":\"max\",\"args\":\"%s\"}],"
                   "\"from\":\"%s\"", t->cursor, t->name);
    if (since->type != JOURNAL_NULL) {
        buf_printf(&q, ",\"where\":{\"gte\":[\"%s\",", t->cursor);
        pull_val_json(&q, since);
        buf_puts(&q, "]}");
    }
    buf_putc(&q, '}');
    if (pull_scalars(c, q.p, v, 2, r) != 0) goto out;
    if (v[0].type != JOURNAL_INT || v[0].i <= CATCHUP_PAGES * t->chunk || v[1].type == JOURNAL_NULL) {
        rc = 0;
        goto out;
    }
    /* The mark goes to (newest cursor, its largest key): every row at or below
     * it exists now and is read below, or changes and comes back newer. */
    buf_reset(&q);
    buf_printf(&q, "{\"data\":[{\"function\":\"max\",\"args\":\"%s\"}],\"from\":\"%s\",\"where\":{\"eq\":[\"%s\",",
               t->key, t->name, t->cursor);
    pull_val_json(&q, &v[1]);
    buf_puts(&q, "]}}");
    if (pull_scalars(c, q.p, &mk_new, 1, r) != 0) goto out;
    struct progress pr = {.on = c->progress, .table = t->name, .start = clock_mono_s(), .expected = (uint64_t)v[0].i};
    uint64_t total = 0;
    if (pull_streams_catchup(c, t, s, since, since_key, &pr, &total, r) != 0) goto out;
    pull_progress_show(&pr, total, 1);
    int c1 = mark_cursor->type == JOURNAL_NULL ? 1 : pull_val_cmp(&v[1], mark_cursor);
    if (c1 > 0 || (c1 == 0 && mk_new.type != JOURNAL_NULL &&
                   (mark_key->type == JOURNAL_NULL || pull_val_cmp(&mk_new, mark_key) > 0))) {
        struct journal_value mc = pull_val_view(&v[1]), mk = pull_val_view(&mk_new);
        journal_payload_incremental_page(&pl, &mc, &mk, (uint32_t)s->ncols);
        if (journal_payload_finish(&pl, err, sizeof err) != 0) {
            snprintf(r->error, sizeof r->error, "catch-up mark: %s", err);
            goto out;
        }
        if (pull_append_apply(c, JOURNAL_INCREMENTAL_PAGE, t->name, &pl, NULL, r) != 0) goto out;
        pull_val_copy(mark_cursor, &v[1]);
        pull_val_copy(mark_key, &mk_new);
    }
    rc = 1;
out:
    pull_val_clear(&mk_new);
    pull_val_clear(&v[0]);
    pull_val_clear(&v[1]);
    journal_payload_free(&pl);
    buf_free(&q);
    return rc;
}

static int incremental(struct pull_ctx *c, const struct config_table *t, const struct schema *s,
                       const struct replay_table *st, struct pull_result *r)
{
    struct page p = {.type = 0, .s = s};
    struct replay_value pos_cursor = {0}, pos_key = {0}, mark_cursor = {0}, mark_key = {0};
    struct journal_payload out = {0};
    struct buf q = {0};
    int rc = -1;
    char err[IA_ERRLEN];
    pull_val_copy(&mark_cursor, &st->mark_cursor);
    pull_val_copy(&mark_key, &st->mark_key);
    pull_val_copy(&pos_cursor, &st->mark_cursor);
    pull_val_copy(&pos_key, &st->mark_key);
    if (t->lookback_ms > 0 && ts_minus(&st->mark_cursor, t->lookback_ms, &pos_cursor) == 0)
        pull_val_clear(&pos_key);             /* from the start of that second */
    r->action = "incremental";
    int tried_streams = 0;
    for (;;) {
        buf_reset(&q);
        buf_printf(&q, "{\"data\":%s,\"from\":\"%s\",", s->data, t->name);
        if (pos_cursor.type != JOURNAL_NULL && pos_key.type == JOURNAL_NULL) {
            buf_printf(&q, "\"where\":{\"gte\":[\"%s\",", t->cursor);
            pull_val_json(&q, &pos_cursor);
            buf_puts(&q, "]},");
        } else if (pos_cursor.type != JOURNAL_NULL) {
            /* (cursor, key) > (c, k) written as cursor >= c AND (cursor > c OR key > k):
             * the same rows, but a plain range on cursor that an index serves. */
            buf_printf(&q, "\"where\":{\"and\":[{\"gte\":[\"%s\",", t->cursor);
            pull_val_json(&q, &pos_cursor);
            buf_printf(&q, "]},{\"or\":[{\"gt\":[\"%s\",", t->cursor);
            pull_val_json(&q, &pos_cursor);
            buf_printf(&q, "]},{\"gt\":[\"%s\",", t->key);
            pull_val_json(&q, &pos_key);
            buf_puts(&q, "]}]}]},");
        }
        buf_printf(&q, "\"order_by\":[\"%s\",\"%s\"],\"limit\":%lld}", t->cursor, t->key, (long long)t->chunk);
        if (pull_fetch(c, c->remote, q.p, &p, r) != 0) goto out;
        if (p.rows == 0) break;
        if (!tried_streams && (int64_t)p.rows >= t->chunk && s->types[s->key_col] == JOURNAL_COL_INT &&
            t->streams > 1) {
            tried_streams = 1;
            int caught = catch_up(c, t, s, &pos_cursor, &pos_key, &mark_cursor, &mark_key, r);
            if (caught < 0) goto out;
            if (caught > 0) {            /* on from the new mark: rows changed meanwhile */
                pull_val_copy(&pos_cursor, &mark_cursor);
                pull_val_copy(&pos_key, &mark_key);
                continue;
            }
        }
        if (p.last_cursor.type == JOURNAL_NULL) {
            snprintf(r->error, sizeof r->error, "a row with a NULL %s came back from a %s range query", t->cursor,
                     t->cursor);
            goto out;
        }
        struct replay_value lc = p.last_cursor, lk = p.last_key;
        int behind = pull_val_cmp(&lc, &pos_cursor) < 0 ||
                     (pull_val_cmp(&lc, &pos_cursor) == 0 && pos_key.type != JOURNAL_NULL && pull_val_cmp(&lk, &pos_key) <= 0);
        if (behind) {
            snprintf(r->error, sizeof r->error, "the portal did not order by (%s, %s)", t->cursor, t->key);
            goto out;
        }
        /* The mark never moves back (lookback re-reads are behind it). */
        int c1 = pull_val_cmp(&lc, &mark_cursor);
        if (mark_cursor.type == JOURNAL_NULL || c1 > 0 || (c1 == 0 && (mark_key.type == JOURNAL_NULL ||
                                                                       pull_val_cmp(&lk, &mark_key) > 0))) {
            pull_val_copy(&mark_cursor, &lc);
            pull_val_copy(&mark_key, &lk);
        }
        if (page_to_incremental(&p, &mark_cursor, &mark_key, &out, NULL, NULL, err, sizeof err) != 0) {
            snprintf(r->error, sizeof r->error, "re-encoding a page: %s", err);
            goto out;
        }
        if (pull_append_apply(c, JOURNAL_INCREMENTAL_PAGE, t->name, &out, NULL, r) != 0) goto out;
        r->rows += p.rows;
        pull_val_copy(&pos_cursor, &lc);
        pull_val_copy(&pos_key, &lk);
    }
    rc = 0;
out:
    pull_page_free(&p);
    journal_payload_free(&out);
    pull_val_clear(&pos_cursor);
    pull_val_clear(&pos_key);
    pull_val_clear(&mark_cursor);
    pull_val_clear(&mark_key);
    buf_free(&q);
    return rc;
}

/* ---- sweep --------------------------------------------------------------------------------- */

/* Cache keys in (after, upto] (upto NULL: no upper bound), in key order. */
static int cache_keys(struct pull_ctx *c, const struct config_table *t, const struct replay_value *after,
                      const struct replay_value *upto, struct sample *out, struct pull_result *r)
{
    pull_lock(c);
    sqlite3 *db = replay_db(c->rp);
    struct buf sql = {0};
    buf_printf(&sql, "SELECT \"%s\" FROM \"%s\" WHERE 1", t->key, t->name);
    if (after->type != JOURNAL_NULL) buf_printf(&sql, " AND \"%s\" > ?1", t->key);
    if (upto) buf_printf(&sql, " AND \"%s\" <= ?2", t->key);
    buf_printf(&sql, " ORDER BY \"%s\"", t->key);
    sqlite3_stmt *ps = NULL;
    int rc = sqlite3_prepare_v2(db, sql.p, -1, &ps, NULL);
    buf_free(&sql);
    const struct replay_value *bind[2] = {after, upto};
    for (int i = 0; rc == SQLITE_OK && i < 2; i++) {
        const struct replay_value *v = bind[i];
        if (!v || v->type == JOURNAL_NULL) continue;
        if (v->type == JOURNAL_INT || v->type == JOURNAL_BOOL) rc = sqlite3_bind_int64(ps, i + 1, v->i);
        else if (v->type == JOURNAL_REAL) rc = sqlite3_bind_double(ps, i + 1, v->d);
        else rc = sqlite3_bind_text64(ps, i + 1, v->s, v->n, SQLITE_TRANSIENT, SQLITE_UTF8);
    }
    sample_begin(out);
    out->ncols = 1;
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        if ((rc = sqlite3_step(ps)) != SQLITE_ROW) break;
        struct json_val j = {0};
        switch (sqlite3_column_type(ps, 0)) {
        case SQLITE_INTEGER: j.type = JV_INT; j.i = sqlite3_column_int64(ps, 0); break;
        case SQLITE_FLOAT: j.type = JV_REAL; j.d = sqlite3_column_double(ps, 0); break;
        case SQLITE_NULL: j.type = JV_NULL; break;
        default:
            j.type = JV_TEXT;
            j.s = (const char *)sqlite3_column_text(ps, 0);
            j.n = (size_t)sqlite3_column_bytes(ps, 0);
        }
        sample_value(out, 0, &j);
        sample_row_end(out, 0, 1);
    }
    if (rc == SQLITE_DONE) rc = SQLITE_OK;
    if (rc != SQLITE_OK) snprintf(r->error, sizeof r->error, "sweep: reading keys of %s from the cache: %s",
                                  t->name, sqlite3_errmsg(db));
    sqlite3_finalize(ps);
    pull_unlock(c);
    return rc == SQLITE_OK ? 0 : -1;
}

static int sweep(struct pull_ctx *c, const struct config_table *t, struct pull_result *r)
{
    struct sample portal = {0}, local = {0}, confirm = {0};
    struct replay_value after = {0};
    struct journal_payload pl = {0};
    struct buf q = {0};
    char err[IA_ERRLEN];
    int rc = -1;
    for (;;) {
        buf_reset(&q);
        buf_printf(&q, "{\"data\":[\"%s\"],\"from\":\"%s\",", t->key, t->name);
        if (after.type != JOURNAL_NULL) {
            buf_printf(&q, "\"where\":{\"gt\":[\"%s\",", t->key);
            pull_val_json(&q, &after);
            buf_puts(&q, "]},");
        }
        buf_printf(&q, "\"order_by\":\"%s\",\"limit\":%lld}", t->key, (long long)t->chunk);
        enum remote_status st = remote_query(c->remote, "select", q.p, &sample_cb, &portal, err, sizeof err);
        if (st != REMOTE_OK) { pull_fail_remote(r, st, "sweep", err); goto out; }
        const struct replay_value *upto = portal.rows ? &portal.v[portal.rows - 1] : NULL;
        if (cache_keys(c, t, &after, upto, &local, r) != 0) goto out;
        /* Keys in the cache but not in this stretch of the portal's keys. */
        buf_reset(&q);
        size_t gone = 0, pi = 0;
        for (size_t li = 0; li < local.rows; li++) {
            while (pi < portal.rows && pull_val_cmp(&portal.v[pi], &local.v[li]) < 0) pi++;
            if (pi < portal.rows && pull_val_cmp(&portal.v[pi], &local.v[li]) == 0) continue;
            buf_puts(&q, gone++ ? "," : "[");
            pull_val_json(&q, &local.v[li]);
        }
        if (gone) {
            /* Confirm before deleting: whatever the portal still has stays. */
            struct buf cq = {0};
            buf_printf(&cq, "{\"data\":[\"%s\"],\"from\":\"%s\",\"where\":{\"in\":[\"%s\",%s]]}}", t->key, t->name,
                       t->key, q.p);
            st = remote_query(c->remote, "select", cq.p, &sample_cb, &confirm, err, sizeof err);
            buf_free(&cq);
            if (st != REMOTE_OK) { pull_fail_remote(r, st, "sweep", err); goto out; }
            journal_payload_deletions(&pl, 1);
            uint64_t n = 0;
            for (size_t li = 0, ci; li < local.rows; li++) {
                int in_portal = 0;
                for (ci = 0; ci < portal.rows && !in_portal; ci++) in_portal = !pull_val_cmp(&portal.v[ci], &local.v[li]);
                for (ci = 0; ci < confirm.rows && !in_portal; ci++) in_portal = !pull_val_cmp(&confirm.v[ci], &local.v[li]);
                if (in_portal) continue;
                struct journal_value v = pull_val_view(&local.v[li]);
                journal_put_value(&pl, &v);
                n++;
            }
            if (n) {
                if (journal_payload_finish(&pl, err, sizeof err) != 0) {
                    snprintf(r->error, sizeof r->error, "sweep: %s", err);
                    goto out;
                }
                if (pull_append_apply(c, JOURNAL_DELETIONS, t->name, &pl, NULL, r) != 0) goto out;
                r->deleted += n;
            }
        }
        if (!portal.rows) break;
        pull_val_copy(&after, &portal.v[portal.rows - 1]);
    }
    rc = 0;
out:
    sample_free(&portal);
    sample_free(&local);
    sample_free(&confirm);
    pull_val_clear(&after);
    journal_payload_free(&pl);
    buf_free(&q);
    return rc;
}

/* ---- the table ------------------------------------------------------------------------------ */

static int locked_table_get(struct pull_ctx *c, const char *name, struct replay_table *st, char *err, size_t errlen)
{
    pull_lock(c);
    int rc = replay_table_get(c->rp, name, st, err, errlen);
    pull_unlock(c);
    return rc;
}

static int locked_note_sweep(struct pull_ctx *c, const char *name, int64_t when, char *err, size_t errlen)
{
    pull_lock(c);
    int rc = replay_note_sweep(c->rp, name, when, err, errlen);
    pull_unlock(c);
    return rc;
}

static int locked_note_pull(struct pull_ctx *c, const char *name, const char *strategy, int64_t when,
                            const char *error, int forbidden, char *err, size_t errlen)
{
    pull_lock(c);
    int rc = replay_note_pull(c->rp, name, strategy, when, error, forbidden, err, errlen);
    pull_unlock(c);
    return rc;
}

int pull_due(const struct config_table *t, const struct replay_table *st, int64_t now_ms)
{
    if (t->strategy == STRATEGY_ON_DEMAND) return 0;
    if (!st || !st->live || st->snapshot_id == 0 || st->last_success_ms == 0) return 1;
    int64_t age = now_ms - st->last_success_ms;
    if (t->strategy == STRATEGY_FULL) return age >= t->ttl_ms;
    if (age >= t->interval_ms) return 1;
    return t->sweep_ms > 0 && now_ms - st->last_sweep_ms >= t->sweep_ms;
}

int pull_table(struct pull_ctx *c, const struct config_table *t, int full_snapshot, struct pull_result *r)
{
    memset(r, 0, sizeof *r);
    r->action = "skipped";
    double t0 = clock_mono_s();
    int64_t started = clock_wall_ms();
    struct replay_table st = {0};
    struct schema s = {0};
    char err[IA_ERRLEN];
    int rc = -1;
    if (locked_table_get(c, t->name, &st, err, sizeof err) < 0) {
        snprintf(r->error, sizeof r->error, "cache: %s", err);
        goto done;
    }
    if (t->strategy == STRATEGY_ON_DEMAND) {
        r->action = "on demand";
        rc = 0;
        goto done;
    }
    if (learn_schema(c, t, &s, r) != 0) goto done;
    int have_snapshot = st.live && st.snapshot_id != 0;
    if (have_snapshot && strcmp(st.schema_hash, s.hash) != 0) {
        r->schema_changed = 1;
        log_warn("table %s: columns or types changed (schema %s -> %s): taking a new snapshot", t->name,
                 st.schema_hash, s.hash);
    }
    if (t->strategy == STRATEGY_FULL || full_snapshot || !have_snapshot || r->schema_changed ||
        st.pending_id != 0) {
        rc = snapshot(c, t, &s, &st, r);
        /* A snapshot has every key the portal had: as good as a sweep. */
        if (rc == 0 && t->strategy == STRATEGY_INCREMENTAL &&
            locked_note_sweep(c, t->name, started, err, sizeof err) != 0) {
            snprintf(r->error, sizeof r->error, "cache: %s", err);
            rc = -1;
        }
    } else {
        rc = incremental(c, t, &s, &st, r);
        if (rc == 0 && t->sweep_ms > 0 && started - st.last_sweep_ms >= t->sweep_ms) {
            rc = sweep(c, t, r);
            if (rc == 0 && locked_note_sweep(c, t->name, started, err, sizeof err) != 0) {
                snprintf(r->error, sizeof r->error, "cache: %s", err);
                rc = -1;
            }
            if (rc == 0) r->action = "incremental+sweep";
        }
    }
done:
    r->ok = rc == 0;
    r->seconds = clock_mono_s() - t0;
    if (locked_note_pull(c, t->name, config_strategy_name(t->strategy), started, rc == 0 ? NULL : r->error,
                         r->forbidden, err, sizeof err) != 0)
        log_warn("table %s: recording the pull's outcome: %s", t->name, err);
    replay_table_free(&st);
    pull_schema_free(&s);
    return rc;
}

int pull_int_text(const char *s, int64_t *out)
{
    const char *d = s + (*s == '-' || *s == '+');
    if (*d < '0' || *d > '9' || d[strspn(d, "0123456789")]) return 0;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end) return 0;
    *out = v;
    return 1;
}

/* VALUE (command-line text) as the literal to ask COLUMN about, typed by the
 * column as the schema has it: an integer column takes an integer and nothing
 * else (no row can hold another value, and PostgreSQL refuses to compare one);
 * a text or JSON column a string; a column of unknown type, or one only the
 * portal names (the cache calls it Field_N), an integer when VALUE is one
 * written plainly ("42", not "042"). 0, or PULL_EUSAGE with err. */
static int text_literal(const struct config_table *t, const struct schema *s, const char *column, const char *value,
                        struct buf *lit, char *err, size_t errlen)
{
    int k = -1;
    for (int i = 0; i < s->ncols && k < 0; i++)
        if (!strcmp(s->names[i], column)) k = i;
    if (k < 0 && t->ncolumns > 0) {
        snprintf(err, errlen, "table %s has no column \"%s\" (configured columns only)", t->name, column);
        return PULL_EUSAGE;
    }
    enum journal_coltype ty = k >= 0 ? s->types[k] : JOURNAL_COL_ANY;
    int64_t iv = 0;
    int is_int = pull_int_text(value, &iv);
    if (ty == JOURNAL_COL_INT && !is_int) {
        snprintf(err, errlen, "%s.%s holds integers: \"%s\" is not one", t->name, column, value);
        return PULL_EUSAGE;
    }
    char canon[32];
    snprintf(canon, sizeof canon, "%lld", (long long)iv);
    if (ty == JOURNAL_COL_INT ||
        (is_int && (ty == JOURNAL_COL_ANY || ty == JOURNAL_COL_REAL) && !strcmp(canon, value)))
        buf_puts(lit, canon);
    else
        json_write_string(lit, value, strlen(value));
    return 0;
}

static void key_literal(void *ctx, const struct journal_value *k)
{
    struct buf *b = ctx;
    struct replay_value v = {.type = k->type, .i = k->i, .d = k->d, .s = (char *)k->s, .n = k->n};
    buf_putc(b, b->len ? ',' : '[');
    pull_val_json(b, &v);
}

/* Keys of rows just read from the portal, for replay_note_fetched. */
struct fetched {
    struct journal_value *v;         /* views: text points into `text` copies */
    char **text;
    size_t n, cap;
    struct buf *lits;                /* also as JSON literals (key_literal), or NULL */
};

static void fetched_add(void *ctx, const struct journal_value *k)
{
    struct fetched *f = ctx;
    if (f->lits) key_literal(f->lits, k);
    if (f->n == f->cap) {
        f->cap = f->cap ? 2 * f->cap : 16;
        f->v = xrealloc(f->v, f->cap * sizeof *f->v);
        f->text = xrealloc(f->text, f->cap * sizeof *f->text);
    }
    f->v[f->n] = *k;
    f->text[f->n] = NULL;
    if (k->s) {
        f->text[f->n] = xmalloc(k->n + 1);
        memcpy(f->text[f->n], k->s, k->n);
        f->text[f->n][k->n] = '\0';
        f->v[f->n].s = f->text[f->n];
    }
    f->n++;
}

static void fetched_free(struct fetched *f)
{
    for (size_t i = 0; i < f->n; i++) free(f->text[i]);
    free(f->text);
    free(f->v);
}

/* An on_demand table's rows were read now: their ttl starts over. A failure
 * only makes them look stale (read again on the next access). */
static void note_fetched(struct pull_ctx *c, const struct config_table *t, const struct fetched *f)
{
    char err[IA_ERRLEN];
    if (t->strategy != STRATEGY_ON_DEMAND || f->n == 0) return;
    pull_lock(c);
    int rc = replay_note_fetched(c->rp, t->name, f->v, f->n, clock_wall_ms(), err, sizeof err);
    pull_unlock(c);
    if (rc != 0) log_warn("table %s: %s", t->name, err);
}

/* pull_get with the value as text or as a JSON literal (exactly one of them). */
static int get_rows(struct pull_ctx *c, const struct config_table *t, const char *column, const char *text,
                    const char *value_json, uint64_t *found, struct buf *keys, enum remote_status *rs, char *err,
                    size_t errlen)
{
    struct replay_table st = {0};
    struct schema s = {0};
    struct pull_result r = {0};
    struct page p = {.type = 0};
    struct journal_payload out = {0};
    struct buf q = {0}, lit = {0};
    struct fetched fk = {.lits = keys};
    int rc = -1;
    int64_t started = clock_wall_ms();
    *found = 0;
    if (locked_table_get(c, t->name, &st, err, errlen) < 0) goto out;
    if (learn_schema(c, t, &s, &r) != 0) goto fail;
    if (text) {
        rc = text_literal(t, &s, column, text, &lit, err, errlen);
        if (rc != 0) goto out;
        rc = -1;
        value_json = lit.p;
    }
    if (!st.live || strcmp(st.schema_hash, s.hash) != 0)
        if (write_schema(c, t, &s, &r) != 0) goto fail;
    p.s = &s;
    /* `in` and a list: its values are always literals, where a string in `eq`
     * that names a column is read as that column (and matches every row). */
    buf_printf(&q, "{\"data\":%s,\"from\":\"%s\",\"where\":{\"in\":[", s.data, t->name);
    json_write_string(&q, column, strlen(column));
    buf_puts(&q, ",[");
    buf_puts(&q, value_json);
    buf_printf(&q, "]]},\"order_by\":\"%s\",\"limit\":%lld}", t->key, (long long)t->chunk);
    if (pull_fetch(c, c->remote, q.p, &p, &r) != 0) {
        int named = 0;
        for (int i = 0; i < s.ncols && !named; i++) named = !strcmp(s.names[i], column);
        if (text && !named && r.remote_status == REMOTE_ERPC) {
            /* It read the table a moment ago: the name is what it refuses. */
            snprintf(err, errlen, "the portal refused a lookup of %s by \"%s\" (not one of its columns?): %s",
                     t->name, column, r.error);
            rc = PULL_EUSAGE;
            goto out;
        }
        goto fail;
    }
    if (p.rows > 0) {
        /* An on-demand page leaves the mark as it was. */
        if (keys) buf_reset(keys);
        if (page_to_incremental(&p, &st.mark_cursor, &st.mark_key, &out, fetched_add, &fk, err, errlen) != 0)
            goto out;
        if (keys) buf_putc(keys, ']');
        if (pull_append_apply(c, JOURNAL_INCREMENTAL_PAGE, t->name, &out, NULL, &r) != 0) goto fail;
        note_fetched(c, t, &fk);
    }
    *found = p.rows;
    rc = 0;
    if (locked_note_pull(c, t->name, config_strategy_name(t->strategy), started, NULL, 0, err, errlen) != 0)
        rc = -1;
    goto out;
fail:
    snprintf(err, errlen, "%s", r.error);
out:
    if (rs) *rs = r.remote_status;
    fetched_free(&fk);
    replay_table_free(&st);
    pull_schema_free(&s);
    pull_page_free(&p);
    journal_payload_free(&out);
    buf_free(&q);
    buf_free(&lit);
    return rc;
}

int pull_get(struct pull_ctx *c, const struct config_table *t, const char *column, const char *value,
             uint64_t *found, struct buf *keys, char *err, size_t errlen)
{
    return get_rows(c, t, column, value, NULL, found, keys, NULL, err, errlen);
}

int pull_get_json(struct pull_ctx *c, const struct config_table *t, const char *column, const char *value_json,
                  uint64_t *found, struct buf *keys, enum remote_status *rs, char *err, size_t errlen)
{
    return get_rows(c, t, column, NULL, value_json, found, keys, rs, err, errlen);
}

/* ---- write-through ------------------------------------------------------------------ */

struct keyset {
    struct replay_value *v;
    size_t n;
    char *seen;                      /* per requested key: came back from the portal */
};

static void mark_seen(void *ctx, const struct journal_value *k)
{
    struct keyset *ks = ctx;
    struct replay_value kv = {.type = k->type, .i = k->i, .d = k->d, .s = (char *)k->s, .n = k->n};
    for (size_t i = 0; i < ks->n; i++)
        if (!ks->seen[i] && pull_val_cmp(&ks->v[i], &kv) == 0) ks->seen[i] = 1;
}

int pull_keys(struct pull_ctx *c, const struct config_table *t, const char *keys_json, enum remote_status *rs,
              char *err, size_t errlen)
{
    struct replay_table st = {0};
    struct schema s = {0};
    struct pull_result r = {0};
    struct page p = {.type = 0};
    struct journal_payload out = {0};
    struct keyset ks = {0};
    struct buf q = {0};
    cJSON *keys = NULL;
    int rc = -1;
    if (json_parse(keys_json, strlen(keys_json), 4, &keys, err, errlen) != 0) goto out;
    if (!cJSON_IsArray(keys) || cJSON_GetArraySize(keys) == 0) { rc = 0; goto out; }
    ks.n = (size_t)cJSON_GetArraySize(keys);
    ks.v = xcalloc(ks.n, sizeof *ks.v);
    ks.seen = xcalloc(ks.n, 1);
    size_t i = 0;
    for (const cJSON *k = keys->child; k; k = k->next, i++) {
        int64_t iv;
        if (json_int64(k, &iv)) { ks.v[i].type = JOURNAL_INT; ks.v[i].i = iv; }
        else if (cJSON_IsNumber(k)) { ks.v[i].type = JOURNAL_REAL; ks.v[i].d = k->valuedouble; }
        else if (cJSON_IsString(k)) {
            ks.v[i].type = JOURNAL_TEXT;
            ks.v[i].s = xstrdup(k->valuestring);
            ks.v[i].n = strlen(k->valuestring);
        } else {
            snprintf(err, errlen, "keys: item %zu is not a number or a string", i);
            goto out;
        }
    }
    if (locked_table_get(c, t->name, &st, err, errlen) < 0) goto out;
    if (learn_schema(c, t, &s, &r) != 0) goto fail;
    if (!st.live || strcmp(st.schema_hash, s.hash) != 0)
        if (write_schema(c, t, &s, &r) != 0) goto fail;
    p.s = &s;
    buf_printf(&q, "{\"data\":%s,\"from\":\"%s\",\"where\":{\"in\":[\"%s\",%s]},\"order_by\":\"%s\"}", s.data,
               t->name, t->key, keys_json, t->key);
    if (pull_fetch(c, c->remote, q.p, &p, &r) != 0) goto fail;
    if (p.rows > 0) {
        if (page_to_incremental(&p, &st.mark_cursor, &st.mark_key, &out, mark_seen, &ks, err, errlen) != 0) goto out;
        if (pull_append_apply(c, JOURNAL_INCREMENTAL_PAGE, t->name, &out, NULL, &r) != 0) goto fail;
        struct fetched fk = {0};
        for (i = 0; i < ks.n; i++)
            if (ks.seen[i]) {
                struct journal_value v = pull_val_view(&ks.v[i]);
                fetched_add(&fk, &v);
            }
        note_fetched(c, t, &fk);
        fetched_free(&fk);
    }
    journal_payload_deletions(&out, 1);
    size_t gone = 0;
    for (i = 0; i < ks.n; i++) {
        if (ks.seen[i]) continue;
        struct journal_value v = pull_val_view(&ks.v[i]);
        journal_put_value(&out, &v);
        gone++;
    }
    if (gone) {
        if (journal_payload_finish(&out, err, errlen) != 0) goto out;
        if (pull_append_apply(c, JOURNAL_DELETIONS, t->name, &out, NULL, &r) != 0) goto fail;
    }
    rc = 0;
    goto out;
fail:
    snprintf(err, errlen, "%s", r.error);
out:
    if (rs) *rs = r.remote_status;
    for (i = 0; i < ks.n; i++) pull_val_clear(&ks.v[i]);
    free(ks.v);
    free(ks.seen);
    cJSON_Delete(keys);
    replay_table_free(&st);
    pull_schema_free(&s);
    pull_page_free(&p);
    journal_payload_free(&out);
    buf_free(&q);
    return rc;
}
