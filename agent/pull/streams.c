/* streams.c — a snapshot over an integer key, several key ranges at once.
 *
 * PLAN. The keys still to read are the gaps between what replay records as
 * covered: each SNAPSHOT_RANGE record proves every portal row with a key in
 * (from, to] journaled, and a snapshot begun by one cursor covers the keys up
 * to its pending key. The gaps are cut at the portal's min and max key into
 * about PIECES_PER_STREAM pieces per stream; the first piece has no lower
 * bound and the last no upper one, so rows inserted outside [min, max] while
 * the snapshot runs are read too.
 * STREAMS. Each stream thread owns a remote (its own keep-alive connection)
 * and takes a piece, paging `key > after AND key <= hi ORDER BY key LIMIT
 * chunk` until a page comes back empty (a short page is not the end: the
 * portal may cap pages below chunk). A stream with no piece left takes the
 * upper half of the widest piece another stream is reading: the owner's hi
 * moves down, and a page the owner had in flight is cut back to keys <= its
 * new hi, so every key is read by exactly one stream. Skewed keys thus never
 * leave one stream reading a dense range alone.
 * PIPELINE. A stream gathers up to RECORD_PAGES pages of its piece into one
 * record, compresses it and hands it to a bounded queue (it waits for room:
 * back-pressure, memory bounded by streams + QUEUE_EXTRA records); the
 * calling thread takes every queued page, journals them with one fsync (group
 * commit), applies them, and goes on. Write-ahead holds: replay sees a page
 * only after the commit. Pages of one piece enter the queue in key order.
 * BACKOFF. A page the remote had to retry (errors, resets, 5xx, cut replies) halves
 * the streams allowed to go on; a stream over the limit hands its piece back
 * and stops. Fewer streams, not a retry storm.
 * FAILURE. The first error stops every stream after its page in flight; what
 * was journaled stays, and the next pull resumes from the coverage. */
#include "agent/pull/pull_int.h"
#include "agent/base/err.h"
#include "agent/base/log.h"
#include "agent/base/mem.h"
#include "journal/rows.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PIECES_PER_STREAM 4
#define QUEUE_EXTRA 2
#define RECORD_PAGES 2               /* pages of one piece per record, at most */
#define MAX_STREAMS 256

__extension__ typedef __int128 wide;   /* key arithmetic: int64 differences need 65 bits */

struct piece {
    int64_t after, hi;               /* next page: key > after, key <= hi */
    bool from_start, to_end;         /* no lower bound (after unused) / no upper bound (hi unused) */
    bool busy, done;
};

struct qpage {                       /* a page waiting for the journal */
    struct journal_blob blob;        /* its record's payload, compressed by the stream */
    uint64_t rows;
    int64_t max_key;
    struct qpage *next;
};

struct eng {
    struct pull_ctx *c;
    const struct config_table *t;
    const struct schema *s;
    uint64_t snapshot_id;            /* a snapshot's pages: SNAPSHOT_RANGE records */
    const struct replay_value *since, *since_key;   /* a catch-up's: INCREMENTAL_PAGE records of rows
                                                       after (since, since_key), marks left as they are */
    int64_t kmin, kmax;              /* the portal's keys when the plan was made */
    bool have_keys;                  /* kmin/kmax known (the table had rows) */
    pthread_mutex_t mu;              /* everything below */
    pthread_cond_t room, ready;      /* streams wait for queue room; the journal thread for pages */
    pthread_cond_t work;             /* idle streams wait for a piece */
    struct piece *pieces;
    size_t npieces, cap;
    struct qpage *head, *tail;
    size_t queued, qcap;
    int running;                     /* stream threads not finished */
    int allowed;                     /* streams that may go on (backoff lowers it) */
    int failed;                      /* the first error is in error/status: streams stop */
    int journal_failed;              /* ... and it was the journal's: their pages are dropped */
    enum remote_status status;
    int forbidden;
    char error[IA_ERRLEN + 256];
};

struct stream {
    struct eng *e;
    int index;
    pthread_t th;
};

/* ---- the plan ----------------------------------------------------------------- */

static size_t add_piece(struct eng *e, const struct piece *p)
{
    if (e->npieces == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 32;
        e->pieces = xrealloc(e->pieces, e->cap * sizeof *e->pieces);
    }
    e->pieces[e->npieces] = *p;
    return e->npieces++;
}

/* The keys a piece can still hold by the plan's min/max: (lo, hi]. 0 when none. */
static wide piece_width(const struct eng *e, const struct piece *p, wide *lo)
{
    *lo = p->from_start ? (wide)e->kmin - 1 : (wide)p->after;
    wide hi = p->to_end ? (wide)e->kmax : (wide)p->hi;
    return e->have_keys && hi > *lo ? hi - *lo : 0;
}

/* Cut the gap g into n pieces of equal key width (by min/max); one when too narrow. */
static void split_gap(struct eng *e, const struct piece *g, int n)
{
    wide lo, w = piece_width(e, g, &lo);
    if (n < 2 || w < 2 * (wide)e->t->chunk) { add_piece(e, g); return; }
    struct piece p = *g;
    for (int k = 1; k <= n; k++) {
        if (k == n) {
            p.hi = g->hi;
            p.to_end = g->to_end;
        } else {
            p.hi = (int64_t)(lo + w * k / n);
            p.to_end = false;
        }
        add_piece(e, &p);
        p.after = p.hi;
        p.from_start = false;
    }
}

static int range_cmp(const void *a, const void *b)
{
    const struct replay_range *x = a, *y = b;
    if (x->lo_inf || y->lo_inf) return y->lo_inf - x->lo_inf;
    return (x->lo > y->lo) - (x->lo < y->lo);
}

/* The gaps between the covered ranges, each cut into pieces in proportion to
 * its width: about `want` pieces in all. */
static void plan(struct eng *e, const struct replay_table *st, int want)
{
    size_t n = st ? st->nranges : 0;
    struct replay_range *cov = xcalloc(n + 1, sizeof *cov);
    if (n) memcpy(cov, st->ranges, n * sizeof *cov);
    if (st && st->pending_key.type == JOURNAL_INT)   /* begun by one cursor: its keys so far */
        cov[n++] = (struct replay_range){.lo_inf = 1, .hi = st->pending_key.i};
    qsort(cov, n, sizeof *cov, range_cmp);
    struct piece *gaps = xcalloc(n + 1, sizeof *gaps), g = {.from_start = true};
    size_t ngaps = 0;
    bool open = true;                /* keys above g's lower bound are not covered yet */
    for (size_t i = 0; i < n && open; i++) {
        if (!cov[i].lo_inf && (g.from_start || cov[i].lo > g.after)) {
            g.hi = cov[i].lo;
            gaps[ngaps++] = g;
        }
        if (cov[i].hi_inf) open = false;
        else if (g.from_start || cov[i].hi > g.after) {
            g.after = cov[i].hi;
            g.from_start = false;
        }
    }
    if (open) {
        g.to_end = true;
        gaps[ngaps++] = g;
    }
    wide total = 0, lo;
    for (size_t i = 0; i < ngaps; i++) total += piece_width(e, &gaps[i], &lo);
    for (size_t i = 0; i < ngaps; i++) {
        wide w = piece_width(e, &gaps[i], &lo);
        int k = total > 0 ? (int)(w * want / total) : 1;
        split_gap(e, &gaps[i], k < 1 ? 1 : k);
    }
    free(gaps);
    free(cov);
}

static bool busy_pieces(const struct eng *e)
{
    for (size_t i = 0; i < e->npieces; i++)
        if (e->pieces[i].busy) return true;
    return false;
}

/* A piece for an idle stream: one nobody started, else the upper half of the
 * widest one being read. SIZE_MAX: none worth taking. Under e->mu. */
static size_t take(struct eng *e)
{
    for (size_t i = 0; i < e->npieces; i++)
        if (!e->pieces[i].busy && !e->pieces[i].done) {
            e->pieces[i].busy = true;
            return i;
        }
    size_t best = SIZE_MAX;
    wide bw = 0, blo = 0;
    for (size_t i = 0; i < e->npieces; i++) {
        if (!e->pieces[i].busy || e->pieces[i].done) continue;
        wide lo, w = piece_width(e, &e->pieces[i], &lo);
        if (w > bw) { bw = w; blo = lo; best = i; }
    }
    if (best == SIZE_MAX || bw < 2 * (wide)e->t->chunk) return SIZE_MAX;
    struct piece *o = &e->pieces[best];
    int64_t mid = (int64_t)(blo + bw / 2);
    struct piece p = {.after = mid, .hi = o->hi, .to_end = o->to_end, .busy = true};
    o->hi = mid;
    o->to_end = false;
    return add_piece(e, &p);
}

/* ---- streams ------------------------------------------------------------------- */

void pull_gate_init(struct pull_gate *g, int max_inflight)
{
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->free = max_inflight > 0 ? max_inflight : 1;
}

void pull_gate_destroy(struct pull_gate *g)
{
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
}

static void gate_enter(struct pull_gate *g)
{
    if (!g) return;
    pthread_mutex_lock(&g->mu);
    while (g->free == 0) pthread_cond_wait(&g->cv, &g->mu);
    g->free--;
    pthread_mutex_unlock(&g->mu);
}

static void gate_leave(struct pull_gate *g)
{
    if (!g) return;
    pthread_mutex_lock(&g->mu);
    g->free++;
    pthread_cond_signal(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void fail_locked(struct eng *e, const struct pull_result *r)
{
    if (!e->failed) {
        e->failed = 1;
        e->status = r->remote_status;
        e->forbidden = r->forbidden;
        snprintf(e->error, sizeof e->error, "%s", r->error);
    }
    pthread_cond_broadcast(&e->room);
    pthread_cond_broadcast(&e->ready);
    pthread_cond_broadcast(&e->work);
}

static void fail(struct eng *e, const struct pull_result *r)
{
    pthread_mutex_lock(&e->mu);
    fail_locked(e, r);
    pthread_mutex_unlock(&e->mu);
}

/* The where clause for a catch-up's changed rows (none for a snapshot), and
 * the key range of piece p (NULL: all keys). */
static void where_json(struct buf *q, const struct eng *e, const struct piece *p)
{
    struct buf w = {0};
    int n = 0;
    if (e->since && e->since->type != JOURNAL_NULL) {   /* (cursor, key) > (since, since_key), as pull.c */
        buf_printf(&w, "{\"gte\":[\"%s\",", e->t->cursor);
        pull_val_json(&w, e->since);
        buf_puts(&w, "]}");
        if (e->since_key->type != JOURNAL_NULL) {
            buf_printf(&w, ",{\"or\":[{\"gt\":[\"%s\",", e->t->cursor);
            pull_val_json(&w, e->since);
            buf_printf(&w, "]},{\"gt\":[\"%s\",", e->t->key);
            pull_val_json(&w, e->since_key);
            buf_puts(&w, "]}]}");
            n++;
        }
        n++;
    }
    if (p && !p->from_start) buf_printf(&w, "%s{\"gt\":[\"%s\",%lld]}", n++ ? "," : "", e->t->key, (long long)p->after);
    if (p && !p->to_end) buf_printf(&w, "%s{\"lte\":[\"%s\",%lld]}", n++ ? "," : "", e->t->key, (long long)p->hi);
    if (n == 1) buf_printf(q, "\"where\":%s,", w.p);
    else if (n > 1) buf_printf(q, "\"where\":{\"and\":[%s]},", w.p);
    buf_free(&w);
}

static void page_query(struct buf *q, const struct eng *e, const struct piece *p)
{
    buf_reset(q);
    buf_printf(q, "{\"data\":%s,\"from\":\"%s\",", e->s->data, e->t->name);
    where_json(q, e, p);
    buf_printf(q, "\"order_by\":\"%s\",\"limit\":%lld}", e->t->key, (long long)e->t->chunk);
}

/* A record's pages, gathered by one stream: rows of one piece from (from,
 * to], in key order, as a bare rows block. Records of RECORD_PAGES pages are
 * fewer than pages, and a longer record compresses better (each is deflated
 * alone): the journal stays no larger than one cursor's. */
struct gather {
    struct journal_payload rows;
    uint64_t n;                      /* rows in it; 0: empty */
    bool from_start;
    int64_t from, to;
};

/* g as its record's payload — SNAPSHOT_RANGE covering (from, to], or a
 * catch-up's INCREMENTAL_PAGE — compressed here, on the stream's thread. out
 * is the stream's scratch payload. */
static struct qpage *qpage_new(const struct eng *e, const struct gather *g, struct journal_payload *out,
                               struct journal_deflater *dz, struct pull_result *r)
{
    struct journal_value from = {.type = g->from_start ? JOURNAL_NULL : JOURNAL_INT, .i = g->from};
    struct journal_value to = {.type = JOURNAL_INT, .i = g->to};
    struct journal_value none = {.type = JOURNAL_NULL};
    char err[IA_ERRLEN];
    if (e->since) journal_payload_incremental_page(out, &none, &none, (uint32_t)e->s->ncols);
    else journal_payload_snapshot_range(out, e->snapshot_id, &from, &to, (uint32_t)e->s->ncols);
    struct qpage *qp = xcalloc(1, sizeof *qp);
    if (journal_payload_append_rows(out, &g->rows, err, sizeof err) != 0 ||
        journal_payload_finish(out, err, sizeof err) != 0 ||
        journal_deflate(dz, out->p, out->len, &qp->blob, err, sizeof err) != 0) {
        snprintf(r->error, sizeof r->error, "encoding a page of %s: %s", e->t->name, err);
        free(qp);
        return NULL;
    }
    qp->rows = g->n;
    qp->max_key = g->to;
    return qp;
}

static void qpage_free(struct qpage *qp)
{
    journal_blob_free(&qp->blob);
    free(qp);
}

/* Hand g's rows to the journal thread as one record (waiting for room) and
 * empty g. 0, or -1 when the journal failed (the rows are dropped) or the
 * record could not be built (r->error). */
static int flush(struct eng *e, struct gather *g, struct journal_payload *out, struct journal_deflater *dz,
                 struct pull_result *r)
{
    if (g->n == 0) return 0;
    struct qpage *qp = qpage_new(e, g, out, dz, r);
    g->n = 0;
    if (!qp) {
        fail(e, r);
        return -1;
    }
    pthread_mutex_lock(&e->mu);
    /* After another stream failed, whole pages are still journaled: the more
     * a rerun finds covered, the less it reads again. */
    while (e->queued >= e->qcap && !e->failed) pthread_cond_wait(&e->room, &e->mu);
    if (e->journal_failed) {
        pthread_mutex_unlock(&e->mu);
        qpage_free(qp);
        return -1;
    }
    if (e->tail) e->tail->next = qp;
    else e->head = qp;
    e->tail = qp;
    e->queued++;
    pthread_cond_signal(&e->ready);
    pthread_mutex_unlock(&e->mu);
    return 0;
}

static void *stream_main(void *arg)
{
    struct stream *sm = arg;
    struct eng *e = sm->e;
    struct pull_result res = {0};
    struct page p = {.type = 0, .s = e->s, .track_ends = 1};
    struct buf q = {0};
    struct journal_payload out = {0};
    struct gather g = {0};
    struct journal_deflater *dz = NULL;
    size_t cur = SIZE_MAX;
    remote *rm = remote_from_config(e->c->cfg, res.error, sizeof res.error);
    if (!rm || journal_deflater_new(e->c->cfg->storage.compression_level, &dz, res.error, sizeof res.error) != 0) {
        res.remote_status = rm ? REMOTE_OK : REMOTE_ECONFIG;
        fail(e, &res);
        goto out;
    }
    if (e->c->cancel) remote_set_cancel(rm, e->c->cancel);
    for (;;) {
        pthread_mutex_lock(&e->mu);
        if ((e->failed || sm->index >= e->allowed) && g.n) {
            /* The piece's `after` is past these rows: journal them before
             * another stream goes on from there. */
            pthread_mutex_unlock(&e->mu);
            if (flush(e, &g, &out, dz, &res) != 0) break;
            continue;
        }
        if (e->failed || sm->index >= e->allowed) {
            if (cur != SIZE_MAX) e->pieces[cur].busy = false;   /* someone else goes on with it */
            pthread_cond_broadcast(&e->work);
            pthread_mutex_unlock(&e->mu);
            break;
        }
        /* Nothing to take while others read: wait, a piece may be handed back
         * (backoff) or grow worth splitting. */
        while (cur == SIZE_MAX && (cur = take(e)) == SIZE_MAX && busy_pieces(e) && !e->failed)
            pthread_cond_wait(&e->work, &e->mu);
        if (cur == SIZE_MAX || e->failed) {
            if (cur != SIZE_MAX) e->pieces[cur].busy = false;
            pthread_mutex_unlock(&e->mu);
            break;
        }
        struct piece was = e->pieces[cur];
        page_query(&q, e, &was);
        pthread_mutex_unlock(&e->mu);

        uint64_t retries = remote_get_stats(rm)->retries;
        gate_enter(e->c->gate);
        int frc = pull_fetch(e->c, rm, q.p, &p, &res);
        gate_leave(e->c->gate);
        if (frc != 0) { fail(e, &res); break; }
        /* Keys must rise and stay inside the piece, or ranges would overlap. */
        for (uint64_t i = 0; i < p.rows; i++) {
            int64_t k = p.end_keys[i];
            if ((i > 0 && k <= p.end_keys[i - 1]) || (i == 0 && !was.from_start && k <= was.after) ||
                (!was.to_end && k > was.hi)) {
                snprintf(res.error, sizeof res.error, "the portal did not order by %s or answered outside "
                         "the range asked: key %lld", e->t->key, (long long)k);
                fail(e, &res);
                goto out;
            }
        }

        pthread_mutex_lock(&e->mu);
        if (remote_get_stats(rm)->retries > retries && e->allowed > 1) {
            e->allowed = (e->allowed + 1) / 2;
            log_info("table %s: the portal pushed back; %d streams go on", e->t->name, e->allowed);
        }
        struct piece *pc = &e->pieces[cur];
        size_t keep = (size_t)p.rows;
        if (!pc->to_end)                 /* a stream took the keys above pc->hi meanwhile */
            while (keep > 0 && p.end_keys[keep - 1] > pc->hi) keep--;
        int finished = keep == 0 || keep < p.rows;
        if (keep > 0) {
            pc->after = p.end_keys[keep - 1];
            pc->from_start = false;
        }
        if (finished) {
            pc->done = true;
            pc->busy = false;
            cur = SIZE_MAX;
        }
        pthread_cond_broadcast(&e->work);
        pthread_mutex_unlock(&e->mu);
        if (keep > 0) {
            char err[IA_ERRLEN];
            if (keep < p.rows) journal_payload_cut(&p.pl, &p.ends[keep - 1]);
            if (g.n == 0) {
                journal_payload_deletions(&g.rows, (uint32_t)e->s->ncols);   /* a bare rows block */
                g.from_start = was.from_start;
                g.from = was.after;
            }
            if (journal_payload_append_rows(&g.rows, &p.pl, err, sizeof err) != 0) {
                snprintf(res.error, sizeof res.error, "gathering pages of %s: %s", e->t->name, err);
                fail(e, &res);
                break;
            }
            g.n += keep;
            g.to = p.end_keys[keep - 1];
        }
        if ((finished || g.n >= (uint64_t)e->t->chunk * RECORD_PAGES) && flush(e, &g, &out, dz, &res) != 0) break;
    }
out:
    /* Stopped (a failure, shutting down): gathered pages are whole and still
     * journaled, unless the journal itself failed. */
    flush(e, &g, &out, dz, &res);
    pthread_mutex_lock(&e->mu);
    e->running--;
    pthread_cond_broadcast(&e->ready);
    pthread_mutex_unlock(&e->mu);
    remote_free(rm);
    journal_deflater_free(dz);
    journal_payload_free(&out);
    journal_payload_free(&g.rows);
    pull_page_free(&p);
    buf_free(&q);
    return NULL;
}

/* ---- the journal side ---------------------------------------------------------- */

/* Journal a batch of pages with one fsync and apply them. 0 or -1 (r->error). */
static int journal_batch(struct eng *e, struct qpage *batch, struct pull_result *r)
{
    struct pull_ctx *c = e->c;
    char err[IA_ERRLEN];
    int rc = 0;
    pull_lock(c);
    journal_batch_begin(c->jw);
    for (struct qpage *qp = batch; qp && rc == 0; qp = qp->next)
        if (journal_append_blob(c->jw, e->since ? JOURNAL_INCREMENTAL_PAGE : JOURNAL_SNAPSHOT_RANGE, e->t->name,
                                &qp->blob, NULL, err, sizeof err) != 0) {
            snprintf(r->error, sizeof r->error, "journal: %s", err);
            rc = -1;
        }
    /* Commit what was appended even after a failed append: those records are whole. */
    if (journal_batch_commit(c->jw, err, sizeof err) != 0 && rc == 0) {
        snprintf(r->error, sizeof r->error, "journal: %s", err);
        rc = -1;
    }
    struct replay_stats rs = {0};
    if (rc == 0 && replay_apply(c->rp, journal_writer_durable_seq(c->jw), &rs, err, sizeof err) != 0) {
        snprintf(r->error, sizeof r->error, "replay: %s", err);
        rc = -1;
    }
    pull_unlock(c);
    return rc;
}

/* Plan e's pieces (st: a snapshot being resumed), run the streams, journal
 * their pages. 0 or -1 (r->error). */
static int run(const struct eng *init, const struct replay_table *st, struct progress *pr, uint64_t *total,
               struct replay_value *max_key, struct pull_result *r)
{
    struct eng e = *init;
    struct pull_ctx *c = e.c;
    const struct config_table *t = e.t;
    struct replay_value mm[2] = {{0}, {0}};
    struct buf q = {0};
    int rc = -1;
    buf_printf(&q, "{\"data\":[{\"function\":\"min\",\"args\":\"%s\"},{\"function\":\"max\",\"args\":\"%s\"}],",
               t->key, t->key);
    where_json(&q, &e, NULL);
    buf_printf(&q, "\"from\":\"%s\"}", t->name);
    if (pull_scalars(c, q.p, mm, 2, r) != 0) goto out;
    e.have_keys = mm[0].type == JOURNAL_INT && mm[1].type == JOURNAL_INT;
    e.kmin = mm[0].i;
    e.kmax = mm[1].i;

    int streams = t->streams < c->cfg->remote.max_inflight ? t->streams : c->cfg->remote.max_inflight;
    if (pr->expected && (uint64_t)streams * (uint64_t)t->chunk > pr->expected)
        streams = (int)((pr->expected + (uint64_t)t->chunk - 1) / (uint64_t)t->chunk);
    if (streams < 1) streams = 1;
    if (streams > MAX_STREAMS) streams = MAX_STREAMS;
    /* Each piece ends with an empty page: no more pieces than pages to read. */
    uint64_t pages = pr->expected ? (pr->expected + (uint64_t)t->chunk - 1) / (uint64_t)t->chunk : 1;
    int want = streams * PIECES_PER_STREAM;
    if ((uint64_t)want > pages) want = pages > (uint64_t)streams ? (int)pages : streams;
    plan(&e, st, want);
    e.allowed = streams;
    e.qcap = (size_t)streams + QUEUE_EXTRA;
    pthread_mutex_init(&e.mu, NULL);
    pthread_cond_init(&e.room, NULL);
    pthread_cond_init(&e.ready, NULL);
    pthread_cond_init(&e.work, NULL);
    log_info("table %s: reading %zu key ranges in %d streams (%s)", t->name, e.npieces, streams,
             e.since ? "catch-up" : "snapshot");

    struct stream *sm = xcalloc((size_t)streams, sizeof *sm);
    int started = 0;
    for (; started < streams; started++) {
        sm[started] = (struct stream){.e = &e, .index = started};
        pthread_mutex_lock(&e.mu);
        e.running++;
        pthread_mutex_unlock(&e.mu);
        if (pthread_create(&sm[started].th, NULL, stream_main, &sm[started]) != 0) {
            pthread_mutex_lock(&e.mu);
            e.running--;
            pthread_mutex_unlock(&e.mu);
            break;
        }
    }
    if (started == 0) {
        snprintf(r->error, sizeof r->error, "table %s: cannot start a stream thread", t->name);
        fail(&e, r);
        goto join;
    }
    for (;;) {
        pthread_mutex_lock(&e.mu);
        while (!e.head && e.running > 0) pthread_cond_wait(&e.ready, &e.mu);
        if (!e.head) {                       /* every stream ended and every page is in */
            pthread_mutex_unlock(&e.mu);
            break;
        }
        struct qpage *batch = e.head;
        e.head = e.tail = NULL;
        e.queued = 0;
        pthread_cond_broadcast(&e.room);
        pthread_mutex_unlock(&e.mu);
        int brc = journal_batch(&e, batch, r);
        while (batch) {
            struct qpage *next = batch->next;
            if (brc == 0) {
                *total += batch->rows;
                r->rows += batch->rows;
                if (max_key->type != JOURNAL_INT || batch->max_key > max_key->i) {
                    pull_val_clear(max_key);
                    max_key->type = JOURNAL_INT;
                    max_key->i = batch->max_key;
                }
            }
            qpage_free(batch);
            batch = next;
        }
        if (brc != 0) {                      /* the streams stop; their pages are dropped */
            pthread_mutex_lock(&e.mu);
            e.journal_failed = 1;
            fail_locked(&e, r);
            pthread_mutex_unlock(&e.mu);
            break;
        }
        pull_progress_show(pr, *total, 0);
    }
join:
    for (int i = 0; i < started; i++) pthread_join(sm[i].th, NULL);
    free(sm);
    while (e.head) {                         /* pages fetched after a failure */
        struct qpage *next = e.head->next;
        qpage_free(e.head);
        e.head = next;
    }
    if (!e.failed) rc = 0;
    else {
        snprintf(r->error, sizeof r->error, "%s", e.error);
        r->remote_status = e.status;
        r->forbidden = e.forbidden;
    }
    for (size_t i = 0; rc == 0 && i < e.npieces; i++)
        if (!e.pieces[i].done) {             /* streams stopped by backoff leave pieces: not expected */
            snprintf(r->error, sizeof r->error, "table %s: key range %zu was not read to its end", t->name, i);
            rc = -1;
        }
    pthread_cond_destroy(&e.room);
    pthread_cond_destroy(&e.ready);
    pthread_cond_destroy(&e.work);
    pthread_mutex_destroy(&e.mu);
out:
    free(e.pieces);
    pull_val_clear(&mm[0]);
    pull_val_clear(&mm[1]);
    buf_free(&q);
    return rc;
}

int pull_streams_snapshot(struct pull_ctx *c, const struct config_table *t, const struct schema *s,
                          const struct replay_table *st, uint64_t snapshot_id, struct progress *pr,
                          uint64_t *total, struct replay_value *max_key, struct pull_result *r)
{
    struct eng e = {.c = c, .t = t, .s = s, .snapshot_id = snapshot_id};
    return run(&e, st, pr, total, max_key, r);
}

int pull_streams_catchup(struct pull_ctx *c, const struct config_table *t, const struct schema *s,
                         const struct replay_value *since, const struct replay_value *since_key,
                         struct progress *pr, uint64_t *total, struct pull_result *r)
{
    struct eng e = {.c = c, .t = t, .s = s, .since = since, .since_key = since_key};
    struct replay_value max_key = {0};
    int rc = run(&e, NULL, pr, total, &max_key, r);
    pull_val_clear(&max_key);
    return rc;
}
