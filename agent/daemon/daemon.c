/* daemon.c — `iptv-agent run`: the scheduler, the workers, and the local API.
 *
 * Threads. The event loop thread owns the timers, the HTTP server (serve.h) and
 * all scheduling state. Workers do everything that talks to the portal:
 *   pulls        one table at a time (snapshots can take minutes);
 *   interactive  INTERACTIVE_WORKERS threads for on_demand misses and refreshes,
 *                writes, and selects the cache cannot answer (pass-through, at
 *                most PASS_WAITING_MAX waiting) from the local API, so they
 *                never queue behind a snapshot, and several clients' misses are in flight at once
 *                (each waits for the portal, not for the others);
 *   outbox       one thread for writes queued while the portal is known down:
 *                it never asks it, and takes every write waiting at once into
 *                one group commit (outbox_queue_writes: one journal fsync), its
 *                jobs handed back to the loop together.
 * All share the journal writer and cache.db's writer connection under `wlock`
 * (pull_ctx.lock), held only to journal and apply, never across a portal
 * request; each thread has its own portal client. A worker hands a finished
 * job back to the loop with event_base_once() (libevent is set up for
 * threads), so job results are only ever read on the loop thread.
 *
 * Scheduling. Each table has a timer: full tables every `ttl`, incremental ones
 * every `interval` (the sweep rides on the pull whose turn it is, pull.c),
 * with up to 10% jitter so tables do not fire together. When a pull fails with
 * a transport error the portal counts as unreachable: timers then wait for one
 * probe at a time, backing off exponentially (1 s doubling to 5 min, jittered);
 * the first success after that catches up every table that fell behind at once.
 *
 * Compaction. The daemon compacts the journal itself (store_compact: the rules
 * of `journal compact`, bounded by cache.db's applied position and [storage]
 * retain) after every completed snapshot and every compact_interval, on the
 * pull worker, one at a time. When the oldest kept segment stays only because
 * an incremental table has no complete snapshot after it (it is older than
 * retain) and the journal holds more than twice the bytes of every table's
 * latest complete snapshot, that table gets a full pull: its old pages then
 * stop holding the journal. So the journal stays under the retain window plus
 * three copies of every table and two segments (scenario daemon_compact); an on_demand
 * table's fetched rows are the exception (logged once): nothing supersedes
 * them. /status shows size and the last compaction; cache.db keeps the latter
 * for `iptv-agent status`.
 *
 * Exports. GET /export/snapshot and /export/delta (serve.h) run on a third
 * worker, `export`, against the files export_hub.h keeps under
 * <storage.dir>/exports/: a snapshot of a large cache takes seconds and must
 * neither stall the loop nor queue behind a pull. They only read cache.db.
 *
 * Edge mode ([upstream] url). No portal and no tables of its own: one timer
 * asks the hub for a delta every upstream.interval (upstream.h) and imports it
 * on the pull worker under `wlock`; the hub's reachability takes the portal's
 * place (same backoff, /health, X-Cache-Stale), so reads go on from the cache
 * while the hub is away. Lookup misses are answered from the cache; writes are
 * refused (the edge has no portal credentials); POST /sync/ANY asks the hub now.
 *
 * Outbox (docs/outbox.md, "Sending"). One sender thread sends the writes
 * queued in the outbox, oldest first, one outbox_send_next step at a time
 * (agent/outbox/send.h), with its own portal client; it shares `wlock` like
 * the workers. While ops are open and the portal cannot be reached it probes
 * (one cheap select) every OUTBOX_PROBE_MS, so sending starts within 5 s of
 * the portal's return, and an op is never dropped for a failure: it waits.
 * Idle, it looks at the outbox every OUTBOX_IDLE_MS; daemon_outbox_kick()
 * (a write queued) wakes it at once. A step that could not re-read what it
 * touched asks the loop for the table's pull.
 *
 * Shutdown (SIGTERM/SIGINT): the loop stops; workers finish or abandon the page
 * in flight (pull_ctx.cancel: the journal stays consistent and an unfinished
 * snapshot resumes at the next start), queued jobs fail, their completions run,
 * the server closes, exit 0. */
#include "agent/daemon/daemon.h"
#include "agent/base/clock.h"
#include "agent/ship/export_hub.h"
#include "agent/base/err.h"
#include "agent/base/log.h"
#include "agent/base/mem.h"
#include "agent/outbox/queue.h"
#include "agent/outbox/send.h"
#include "agent/pull/pull.h"
#include "agent/serve/serve.h"
#include "agent/pull/store.h"
#include "replay/outbox.h"
#include "replay/replay.h"
#include "agent/ship/upstream.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BACKOFF_FIRST_MS 1000
#define BACKOFF_MAX_MS (5 * 60 * 1000)
#define INTERACTIVE_TIMEOUT_MS 5000
#define INTERACTIVE_WORKERS 8         /* portal requests for the local API in flight at once */
#define OUTBOX_BATCH_MAX 256          /* writes queued while the portal is known down: the one
                                         outbox worker takes up to this many waiting, one group
                                         commit for all (outbox_queue_writes) */
#define PASS_WAITING_MAX 64           /* passed selects queued or running; more are "busy" */
#define QUEUE_WORKERS_MAX 16
#define NQUEUES 4
#define OUTBOX_PROBE_MS 2000          /* at most one probe this often while ops wait for the portal */
#define OUTBOX_IDLE_MS 2000           /* an idle sender looks at the outbox this often */
#define OUTBOX_FAIL_MAX_MS (5 * 60 * 1000)   /* backoff cap after a local failure */

enum job_kind { JOB_PULL, JOB_FETCH, JOB_REFRESH, JOB_WRITE, JOB_UPSTREAM, JOB_EXPORT, JOB_COMPACT, JOB_SELECT };

struct daemon;

struct job {
    enum job_kind kind;
    struct daemon *d;
    int table;                        /* index in cfg->tables; -1 none */
    int full;                         /* PULL: snapshot */
    char *column, *value;             /* FETCH: column and JSON literal; REFRESH: value = keys;
                                         SELECT: column = the table the cache could not answer for */
    char *method, *params;            /* WRITE; SELECT: params */
    serve_done_fn done;               /* FETCH, REFRESH */
    serve_write_done_fn wdone;        /* WRITE */
    serve_export_done_fn edone;       /* EXPORT */
    serve_select_done_fn sdone;       /* SELECT */
    char *base_id;                    /* EXPORT: delta base; NULL snapshot */
    void *arg;
    /* results, read on the loop thread */
    int ok;
    enum remote_status rs;            /* the portal's answer class */
    struct pull_result pr;            /* PULL */
    char msg[IA_ERRLEN];              /* FETCH/WRITE error */
    struct buf rows;                  /* WRITE: the portal's result (rows or a count); SELECT: its
                                         result, or its JSON-RPC error (rs REMOTE_ERPC/EFORBIDDEN) */
    int repull;                       /* WRITE: the touched rows were not re-read */
    int may_queue;                    /* WRITE: the table's policy is `queue` */
    uint64_t op_id;                   /* WRITE: queued in the outbox as this op (0: not queued) */
    int refused;                      /* WRITE: the queue refused it (a wrong write, not the portal) */
    struct upstream_result ur;        /* UPSTREAM */
    int http_status;                  /* EXPORT */
    struct export_hub_file file;      /* EXPORT: fd -1 when none */
    struct journal_compact_result cres;  /* COMPACT */
    struct job *next;
};

struct queue;

struct worker {                       /* one thread taking jobs from a queue */
    struct queue *q;
    pthread_t thread;
    remote *remote;                   /* its own portal client (NULL: export, edge) */
};

struct queue {                        /* jobs for its workers */
    struct job *head, *tail;
    pthread_cond_t cv;
    struct worker w[QUEUE_WORKERS_MAX];
    int nw;
    const char *name;
    struct daemon *d;
};

struct table_sched {
    struct daemon *d;
    int index;                        /* in cfg->tables */
    struct event *timer;
    int queued;                       /* a PULL job is queued or running */
    int again;                        /* a pull was asked for while one ran: queue one more */
    int64_t next_ms;                  /* when the timer fires */
    uint64_t pulls, errors, rows;
    int64_t last_ok_ms;
};

struct daemon {
    const struct config *cfg;         /* &cfgv */
    struct config cfgv;               /* the caller's, with a tables array of its own: room for the
                                         tables unknown_tables = "cache" adds (the array never moves) */
    int base_tables, tables_cap;      /* the caller's ntables; the room */
    int auto_full;                    /* the cap was reached (logged once) */
    struct event_base *base;
    serve *srv;
    struct store st;
    struct table_sched *ts;
    pthread_mutex_t mu;               /* guards the queues; `stop` is set under it (waiting workers wake) */
    pthread_mutex_t wlock;            /* journal writer + cache.db writer */
    struct pull_gate gate;            /* [remote] max_inflight over every pull's streams */
    struct queue pullq, interq, exportq, outq;
    atomic_int stop;                  /* shutdown: workers drain, pulls stop between pages; atomic:
                                       * worker threads and curl callbacks read it without mu */
    int portal;                       /* 1 answered, 0 unreachable, -1 not tried yet */
    int64_t unreachable_since_ms;
    int64_t next_probe_ms;
    int backoff;                      /* failed probes in a row */
    uint64_t rng;
    uint64_t pull_errors;
    struct export_hub *hub;           /* /export files */
    uint64_t exports;
    int passing;                      /* passed selects queued or running (loop thread) */
    uint64_t passes, pass_errors, pass_busy;
    /* edge mode */
    upstream *up;                     /* NULL: not an edge */
    struct event *up_timer;
    int up_queued, up_again;          /* as table_sched's queued and again */
    int64_t up_next_ms, up_last_ok_ms;
    uint64_t up_syncs, up_errors;
    struct upstream_result up_last;
    int64_t up_last_attempt_ms;
    char up_last_error[512];          /* "" when the last exchange with the hub worked */
    /* journal compaction (loop thread) */
    struct event *compact_timer;
    int compact_queued, compact_again;
    uint64_t compactions, compact_errors, compact_freed_total;
    int64_t compact_last_ms;          /* last success, 0 none */
    struct journal_compact_result compact_last;
    char compact_error[IA_ERRLEN];    /* last failure, "" none */
    char compact_held_by[JOURNAL_TABLE_MAX + 1];   /* the table last logged as holding it */
    /* the outbox's sender (its thread; kick and cv under mu) */
    pthread_t sender;
    int sender_started;
    pthread_cond_t sender_cv;
    int sender_kicked;                /* a write was queued: look now */
    remote *sender_remote;
};

static uint64_t rnd(struct daemon *d)
{
    uint64_t z = (d->rng += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static int64_t jittered(struct daemon *d, int64_t ms)
{
    int64_t spread = ms / 10;
    return ms + (spread > 0 ? (int64_t)(rnd(d) % (uint64_t)(spread + 1)) : 0);
}

static int64_t period_ms(const struct config_table *t)
{
    return t->strategy == STRATEGY_FULL ? t->ttl_ms : t->interval_ms;
}

static void free_job(struct job *j)
{
    free(j->column);
    free(j->value);
    free(j->method);
    free(j->params);
    free(j->base_id);
    if (j->kind == JOB_EXPORT && j->file.fd >= 0) close(j->file.fd);
    buf_free(&j->rows);
    free(j);
}

/* ---- workers ----------------------------------------------------------------------- */

/* The table a write statement names, or NULL. */
static const char *write_table(const cJSON *params)
{
    static const char *const keys[] = {"into", "table", "from"};
    for (int i = 0; i < 3; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, keys[i]);
        if (cJSON_IsString(v)) return v->valuestring;
    }
    return NULL;
}

static void daemon_outbox_kick(struct daemon *d);

/* Queue j's write in the outbox (docs/outbox.md): the answer is in j->rows,
 * the op id in j->op_id; a refusal says so in j->refused. */
static void queued(struct daemon *d, struct job *j, int rc, struct outbox_queued res, const char *err)
{
    if (rc != 0) {
        j->refused = rc == OUTBOX_EREFUSED;
        snprintf(j->msg, sizeof j->msg, "the portal is unreachable and the write was not queued: %.1900s", err);
        if (!j->refused) log_error("%s", j->msg);
        return;
    }
    j->op_id = res.op_id;
    daemon_outbox_kick(d);   /* the sender starts probing for the portal's return now */
    buf_reset(&j->rows);
    buf_puts(&j->rows, res.answer);
    outbox_queued_free(&res);
    log_info("table %s: %s queued as op %llu (the portal is unreachable)", d->cfg->tables[j->table].name, j->method,
             (unsigned long long)j->op_id);
}

static void queue_write(struct daemon *d, struct job *j)
{
    struct outbox_queued res;
    char err[IA_ERRLEN];
    int rc = outbox_queue_write(&d->st, &d->wlock, &d->cfg->tables[j->table], j->method, j->params, &res, err,
                                sizeof err);
    queued(d, j, rc, res, err);
}

/* The outbox worker's batch: every write that waited, one group commit. */
static void queue_writes(struct daemon *d, struct job *head, size_t n)
{
    struct outbox_write *w = xcalloc(n, sizeof *w);
    size_t i = 0;
    for (struct job *j = head; j; j = j->next, i++) {
        j->rs = REMOTE_OK;             /* the portal was not asked: its state stays as it is */
        w[i] = (struct outbox_write){.t = &d->cfg->tables[j->table], .method = j->method, .params_json = j->params};
    }
    outbox_queue_writes(&d->st, &d->wlock, w, n);
    i = 0;
    for (struct job *j = head; j; j = j->next, i++) queued(d, j, w[i].rc, w[i].out, w[i].err);
    free(w);
}

/* A forwarded write: note which keys it touches, send it (once: remote_write),
 * re-read those keys. Keys come from a select with the write's `where` before
 * it is sent, because the portal's answer need not name them: without
 * `returning` it may be a bare row count. A delete's keys then come back as
 * deletions, an update's as the rows now on the portal. An insert's new keys
 * cannot be known from a count, so inserts are followed by a pull of the table
 * (queued by the loop). When the answer was lost (REMOTE_EUNKNOWN) the keys
 * are re-read all the same: whatever the portal did, the cache then shows it.
 * A write the portal ran is reported done even when the re-read fails (a
 * "failed" answer would invite the client to send it again); the table's next
 * pull then catches up (j->repull). */
static void run_write(struct daemon *d, struct pull_ctx *c, struct job *j)
{
    cJSON *params = NULL;
    struct buf keys = {0}, q = {0};
    if (json_parse(j->params, strlen(j->params), 64, &params, j->msg, sizeof j->msg) != 0) return;
    const char *tname = write_table(params);
    const struct config_table *t = tname ? config_table_find(d->cfg, tname) : NULL;
    j->table = t ? (int)(t - d->cfg->tables) : -1;
    const cJSON *where = cJSON_GetObjectItemCaseSensitive(params, "where");
    if (t && strcmp(j->method, "insert") != 0) {
        struct json_rows_text kt = {&keys, 0, 0};
        buf_printf(&q, "{\"data\":[\"%s\"],\"from\":\"%s\"", t->key, t->name);
        if (where) {
            buf_puts(&q, ",\"where\":");
            json_write_tree(&q, where);
        }
        buf_putc(&q, '}');
        j->rs = remote_query(c->remote, "select", q.p, &json_rows_text_cb, &kt, j->msg, sizeof j->msg);
        if (j->rs != REMOTE_OK) goto out;
    }
    j->rs = remote_write(c->remote, j->method, j->params, &j->rows, j->msg, sizeof j->msg);
    if (j->rs != REMOTE_OK && j->rs != REMOTE_EUNKNOWN) goto out;   /* refused: nothing changed */
    j->ok = j->rs == REMOTE_OK;
    if (t && keys.len > 2) {
        /* [[k1],[k2]] -> [k1,k2] */
        struct buf flat = {0};
        buf_putc(&flat, '[');
        for (size_t i = 1; i + 1 < keys.len; i++)
            if (keys.p[i] != '[' && keys.p[i] != ']') buf_putc(&flat, keys.p[i]);
        buf_putc(&flat, ']');
        char kerr[IA_ERRLEN];
        if (pull_keys(c, t, flat.p, NULL, kerr, sizeof kerr) != 0) {
            log_warn("table %s: re-reading the rows a %s touched: %s; the next pull catches up", t->name,
                     j->method, kerr);
            j->repull = 1;
        }
        buf_free(&flat);
    }
out:
    /* A transport failure of a write (or of the select before it) came before
     * the write could reach the portal (remote.h: a write that may have gone out
     * is REMOTE_EUNKNOWN, never queued): a `queue` table takes it into the outbox. */
    if (j->rs == REMOTE_ETRANSPORT && j->may_queue && j->table >= 0 && !atomic_load(&d->stop)) queue_write(d, j);
    cJSON_Delete(params);
    buf_free(&keys);
    buf_free(&q);
}

static void job_done(evutil_socket_t fd, short what, void *arg);

/* A fetch or refresh as the portal's state sees it: unreachable only when its
 * transport failed; any other failure still counts as an answer. */
static enum remote_status lookup_status(int ok, enum remote_status rs)
{
    return ok ? REMOTE_OK : rs == REMOTE_ETRANSPORT ? REMOTE_ETRANSPORT : REMOTE_EPROTOCOL;
}

static void run_job(struct daemon *d, struct worker *w, struct job *j)
{
    struct pull_ctx c = {.cfg = d->cfg, .remote = w->remote, .jw = d->st.jw, .rp = d->st.rp,
                         .cancel = &d->stop, .lock = &d->wlock, .gate = &d->gate};
    if (atomic_load(&d->stop)) {
        snprintf(j->msg, sizeof j->msg, "the agent is shutting down");
        snprintf(j->pr.error, sizeof j->pr.error, "the agent is shutting down");
        j->http_status = 503;
        return;
    }
    switch (j->kind) {
    case JOB_PULL:
        j->ok = pull_table(&c, &d->cfg->tables[j->table], j->full, &j->pr) == 0;
        j->rs = j->pr.remote_status;
        break;
    case JOB_FETCH: {
        uint64_t found = 0;
        enum remote_status rs;
        j->ok = pull_get_json(&c, &d->cfg->tables[j->table], j->column, j->value, &found, NULL, &rs, j->msg,
                              sizeof j->msg) == 0;
        j->rs = lookup_status(j->ok, rs);
        break;
    }
    case JOB_REFRESH: {
        enum remote_status rs;
        j->ok = pull_keys(&c, &d->cfg->tables[j->table], j->value, &rs, j->msg, sizeof j->msg) == 0;
        j->rs = lookup_status(j->ok, rs);
        break;
    }
    case JOB_WRITE:
        run_write(d, &c, j);   /* writes while the portal is known down: queue_writes */
        break;
    case JOB_SELECT: {
        struct buf e = {0};
        j->rs = remote_select(w->remote, j->params, &j->rows, &e, j->msg, sizeof j->msg);
        j->ok = j->rs == REMOTE_OK;
        if (!j->ok && e.len) {         /* the portal's own refusal: passed on as it sent it */
            buf_reset(&j->rows);
            buf_append(&j->rows, e.p, e.len);
        } else if (!j->ok) {
            buf_reset(&j->rows);
        }
        buf_free(&e);
        break;
    }
    case JOB_UPSTREAM:
        pthread_mutex_lock(&d->wlock);
        j->ok = upstream_sync(d->up, d->st.db_path, d->st.dir, &j->ur, j->msg, sizeof j->msg) == 0;
        pthread_mutex_unlock(&d->wlock);
        j->rs = j->ok ? REMOTE_OK : j->ur.unreachable ? REMOTE_ETRANSPORT : REMOTE_EPROTOCOL;
        break;
    case JOB_COMPACT:
        j->ok = store_compact(&d->st, d->cfg, UINT64_MAX, &d->wlock, &j->cres, j->msg, sizeof j->msg) == 0;
        j->rs = REMOTE_OK;             /* says nothing about the portal */
        break;
    case JOB_EXPORT: {
        int rc = j->base_id ? export_hub_delta(d->hub, j->base_id, &j->file, j->msg, sizeof j->msg)
                            : export_hub_snapshot(d->hub, &j->file, j->msg, sizeof j->msg);
        j->http_status = rc == EXPORT_HUB_OK ? 200 : rc == EXPORT_HUB_CURRENT ? 304 : rc == EXPORT_HUB_GONE ? 410
                       : rc == EXPORT_HUB_REFUSED ? 409 : 500;
        j->rs = REMOTE_OK;             /* says nothing about the portal */
        break;
    }
    }
}

/* A chain of finished jobs back on the loop thread: one wakeup for all. */
static void jobs_done(evutil_socket_t fd, short what, void *arg)
{
    for (struct job *j = arg, *next; j; j = next) {
        next = j->next;              /* job_done frees j */
        j->next = NULL;
        job_done(fd, what, j);
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct queue *q = w->q;
    struct daemon *d = q->d;
    for (;;) {
        pthread_mutex_lock(&d->mu);
        while (!q->head && !atomic_load(&d->stop)) pthread_cond_wait(&q->cv, &d->mu);
        struct job *j = q->head;
        size_t n = j ? 1 : 0;
        if (j && q == &d->outq) {
            /* The outbox worker takes every write waiting (OUTBOX_BATCH_MAX at
             * most): one group commit for all of them. */
            struct job *last = j;
            while (last->next && n < OUTBOX_BATCH_MAX) { last = last->next; n++; }
            q->head = last->next;
            last->next = NULL;
        } else if (j) {
            q->head = j->next;
            j->next = NULL;
        }
        if (!q->head) q->tail = NULL;
        pthread_mutex_unlock(&d->mu);
        if (!j) break;                       /* stopping and drained */
        if (q == &d->outq && !atomic_load(&d->stop)) {
            queue_writes(d, j, n);
        } else {
            for (struct job *k = j; k; k = k->next) run_job(d, w, k);
        }
        event_base_once(d->base, -1, EV_TIMEOUT, jobs_done, j, NULL);
    }
    return NULL;
}

static void enqueue(struct daemon *d, struct queue *q, struct job *j)
{
    j->d = d;
    pthread_mutex_lock(&d->mu);
    if (q->tail) q->tail->next = j; else q->head = j;
    q->tail = j;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&d->mu);
}

/* ---- scheduling (loop thread) ------------------------------------------------------------ */

static void arm(struct daemon *d, int i, int64_t delay_ms)
{
    if (delay_ms < 0) delay_ms = 0;
    struct timeval tv = {delay_ms / 1000, (delay_ms % 1000) * 1000};
    d->ts[i].next_ms = clock_wall_ms() + delay_ms;
    evtimer_add(d->ts[i].timer, &tv);
}

/* A new job of one kind for table (-1: none), with no file yet; the caller
 * fills in the rest and enqueues it. */
static struct job *job_new(enum job_kind kind, int table)
{
    struct job *j = xcalloc(1, sizeof *j);
    j->kind = kind;
    j->table = table;
    j->file.fd = -1;
    return j;
}

static void queue_pull(struct daemon *d, int i, int full)
{
    if (d->ts[i].queued) return;
    struct job *j = job_new(JOB_PULL, i);
    j->full = full;
    d->ts[i].queued = 1;
    enqueue(d, &d->pullq, j);
}

/* A pull asked for now (POST /sync, an insert): one that starts after the ask.
 * A pull already running may have read the table before the change being
 * waited for, so it is followed by one more. */
static void request_pull(struct daemon *d, int i)
{
    if (d->ts[i].queued) d->ts[i].again = 1;
    else queue_pull(d, i, 0);
}

static void on_timer(evutil_socket_t fd, short what, void *arg);

/* A compaction after whatever runs now (after a snapshot: one more). */
static void request_compact(struct daemon *d)
{
    if (d->up || atomic_load(&d->stop)) return;   /* an edge journals nothing */
    if (d->compact_queued) {
        d->compact_again = 1;
        return;
    }
    struct job *j = job_new(JOB_COMPACT, -1);
    d->compact_queued = 1;
    enqueue(d, &d->pullq, j);
}

static void on_compact_timer(evutil_socket_t fd, short what, void *arg)
{
    struct daemon *d = arg;
    request_compact(d);               /* its completion re-arms the timer */
}

static void compact_arm(struct daemon *d)
{
    int64_t ms = d->cfg->storage.compact_interval_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(d->compact_timer, &tv);
}

/* A compaction's outcome (loop thread): note it, and unblock what holds it. */
static void compact_done(struct daemon *d, struct job *j)
{
    d->compact_queued = 0;
    if (!j->ok) {
        d->compact_errors++;
        snprintf(d->compact_error, sizeof d->compact_error, "%s", j->msg);
        if (!atomic_load(&d->stop)) log_error("journal compaction: %s", j->msg);
    } else {
        d->compactions++;
        d->compact_error[0] = '\0';
        d->compact_last_ms = clock_wall_ms();
        d->compact_last = j->cres;
        d->compact_freed_total += j->cres.freed;
        if (j->cres.deleted)
            log_info("journal compacted: %zu segments (%llu bytes) deleted, %zu kept", j->cres.deleted,
                     (unsigned long long)j->cres.freed, j->cres.kept);
        /* Held by a table with no complete snapshot since (and past retain): a
         * full pull of an incremental table supersedes its old records. */
        const struct config_table *t = j->cres.table[0] ? config_table_find(d->cfg, j->cres.table) : NULL;
        int i = t ? (int)(t - d->cfg->tables) : -1;
        /* Only when that is worth a portal snapshot: the journal holds more
         * than two copies of every table (with a short retain, the table's
         * own newest snapshot holds it again at once: no churn then). */
        if (t && t->strategy == STRATEGY_INCREMENTAL && !atomic_load(&d->stop) && !d->ts[i].queued &&
            d->portal != 0 && j->cres.kept_bytes > 2 * j->cres.snapshot_bytes) {
            log_info("journal: %s; taking a full snapshot of %s so its older records can go", j->cres.reason,
                     t->name);
            queue_pull(d, i, 1);
        } else if (t && t->strategy == STRATEGY_ON_DEMAND && strcmp(d->compact_held_by, j->cres.table) != 0) {
            /* The journal's limit: fetched rows are the only copy of what was fetched. */
            log_warn("journal: %s; that segment and all after it stay: the rows on_demand table %s fetched are "
                     "never superseded by a snapshot", j->cres.reason, j->cres.table);
        }
        snprintf(d->compact_held_by, sizeof d->compact_held_by, "%s", j->cres.table);
    }
    if (atomic_load(&d->stop)) return;
    if (d->compact_again) {
        d->compact_again = 0;
        request_compact(d);
    } else {
        compact_arm(d);
    }
}

static void up_arm(struct daemon *d, int64_t delay_ms)
{
    if (delay_ms < 0) delay_ms = 0;
    struct timeval tv = {delay_ms / 1000, (delay_ms % 1000) * 1000};
    d->up_next_ms = clock_wall_ms() + delay_ms;
    evtimer_add(d->up_timer, &tv);
}

static void queue_upstream(struct daemon *d)
{
    if (d->up_queued) return;
    struct job *j = job_new(JOB_UPSTREAM, -1);
    d->up_queued = 1;
    enqueue(d, &d->pullq, j);
}

static void on_up_timer(evutil_socket_t fd, short what, void *arg)
{
    struct daemon *d = arg;
    if (!atomic_load(&d->stop)) queue_upstream(d);   /* while the hub is away, job_done arms at the backoff */
}

static void portal_answered(struct daemon *d)
{
    if (d->portal == 0) {
        log_info("%s reachable again after %lld s; catching up every table that fell behind",
                 d->up ? "hub" : "portal", (long long)((clock_wall_ms() - d->unreachable_since_ms) / 1000));
        for (int i = 0; i < d->cfg->ntables; i++)
            if (d->cfg->tables[i].strategy != STRATEGY_ON_DEMAND && !d->ts[i].queued &&
                d->ts[i].next_ms <= clock_wall_ms() + 1000)
                queue_pull(d, i, 0);
    }
    d->portal = 1;
    d->backoff = 0;
}

static void portal_failed(struct daemon *d, const char *why)
{
    if (d->portal != 0) {
        d->unreachable_since_ms = clock_wall_ms();
        log_warn("%s unreachable (%s); serving from the cache, retrying with backoff", d->up ? "hub" : "portal", why);
    }
    d->portal = 0;
    int64_t wait = BACKOFF_FIRST_MS;
    for (int k = 0; k < d->backoff && wait < BACKOFF_MAX_MS; k++) wait *= 2;
    if (wait > BACKOFF_MAX_MS) wait = BACKOFF_MAX_MS;
    d->backoff++;
    d->next_probe_ms = clock_wall_ms() + jittered(d, wait);
}

/* unknown_tables = "cache": a table the portal just answered a select on, not
 * configured, is added as [defaults] says (config_table_auto) and pulled now,
 * then on its schedule, for the daemon's lifetime (not written to the config:
 * after a restart it is forwarded, and added again on its first access). At
 * most [serve] max_auto_tables; past that, forwarded only. The tables array
 * has room for them (daemon_run), so the entries workers use never move. */
static void cache_table(struct daemon *d, const char *name)
{
    char err[IA_ERRLEN];
    if (d->cfg->serve.unknown_tables != UNKNOWN_CACHE || d->up || config_table_find(d->cfg, name) ||
        replay_check_name(name, err, sizeof err) != 0)
        return;
    if (d->cfgv.ntables >= d->tables_cap) {
        if (!d->auto_full)
            log_warn("table %s: not cached: unknown_tables = \"cache\" added %d tables already ([serve] "
                     "max_auto_tables); selects on it and on later ones are forwarded only", name,
                     d->cfg->serve.max_auto_tables);
        d->auto_full = 1;
        return;
    }
    int i = d->cfgv.ntables;
    config_table_auto(d->cfg, name, &d->cfgv.tables[i]);
    d->ts[i] = (struct table_sched){.d = d, .index = i};
    d->ts[i].timer = evtimer_new(d->base, on_timer, &d->ts[i]);
    /* Workers and the sender look tables up by name without a lock: the entry
     * is whole before the (atomic) count that shows it grows. */
    atomic_fetch_add(&d->cfgv.ntables, 1);
    const struct config_table *t = &d->cfg->tables[i];
    log_info("table %s: cached from now on (unknown_tables = \"cache\", %s, %d of %d)", name,
             config_strategy_name(t->strategy), i - d->base_tables + 1, d->cfg->serve.max_auto_tables);
    if (t->strategy != STRATEGY_ON_DEMAND) queue_pull(d, i, 1);
}

static void job_done(evutil_socket_t fd, short what, void *arg)
{
    struct job *j = arg;
    struct daemon *d = j->d;
    if (j->kind == JOB_EXPORT) {
        if (j->http_status == 200) d->exports++;
        else if (j->http_status == 500) log_error("export: %s", j->msg);
        struct serve_file f = {j->file.fd, j->file.size, j->file.id, j->file.base_id};
        j->file.fd = -1;               /* passes to serve */
        j->edone(j->arg, j->http_status, f.fd >= 0 ? &f : NULL, j->msg);
        free_job(j);
        return;
    }
    if (j->rs == REMOTE_ETRANSPORT) portal_failed(d, j->kind == JOB_PULL ? j->pr.error : j->msg);
    else if (j->rs != REMOTE_EUNKNOWN && (j->ok || j->rs != REMOTE_OK)) portal_answered(d);
    switch (j->kind) {
    case JOB_PULL: {
        const struct config_table *t = &d->cfg->tables[j->table];
        struct table_sched *ts = &d->ts[j->table];
        ts->queued = 0;
        ts->pulls++;
        ts->rows += j->pr.rows;
        if (j->ok) {
            ts->last_ok_ms = clock_wall_ms();
            log_info("table %s: %s, %llu rows, %llu deleted, %.2f s", t->name, j->pr.action,
                     (unsigned long long)j->pr.rows, (unsigned long long)j->pr.deleted, j->pr.seconds);
            /* A completed snapshot supersedes the table's older records. */
            if (j->pr.snapshot_done) request_compact(d);
        } else {
            ts->errors++;
            d->pull_errors++;
            if (!atomic_load(&d->stop)) log_error("table %s: %s", t->name, j->pr.error);
        }
        if (atomic_load(&d->stop)) break;
        if (ts->again && j->rs != REMOTE_ETRANSPORT) {
            ts->again = 0;
            queue_pull(d, j->table, 0);    /* its completion arms the timer */
        } else if (j->rs == REMOTE_ETRANSPORT) {
            arm(d, j->table, d->next_probe_ms - clock_wall_ms());
        } else {
            arm(d, j->table, jittered(d, period_ms(t)));
        }
        break;
    }
    case JOB_FETCH:
    case JOB_REFRESH:
        /* (serve notices cache.db changes itself: data_version) */
        j->done(j->arg, j->ok ? 0 : -1, j->ok ? NULL : j->msg);
        break;
    case JOB_WRITE: {
        if (j->op_id || j->refused) {
            char id[24];
            snprintf(id, sizeof id, "%llu", (unsigned long long)j->op_id);
            j->wdone(j->arg, j->op_id ? SERVE_WRITE_QUEUED : SERVE_WRITE_REFUSED, j->op_id ? j->rows.p : NULL,
                     j->op_id ? id : j->msg);
            break;
        }
        int unknown = j->rs == REMOTE_EUNKNOWN;
        j->wdone(j->arg, j->ok ? SERVE_WRITE_OK : unknown ? SERVE_WRITE_UNKNOWN : SERVE_WRITE_FAILED,
                 j->ok ? j->rows.p : NULL, j->ok ? NULL : j->msg);
        if (unknown) log_warn("%s", j->msg);
        /* Inserted rows (whose keys a count does not name) come back with the
         * table's next pull, queued now; so do rows a re-read missed. */
        if ((j->ok || unknown) && j->table >= 0 && !atomic_load(&d->stop) &&
            (j->repull || !strcmp(j->method, "insert")) && d->cfg->tables[j->table].strategy != STRATEGY_ON_DEMAND)
            request_pull(d, j->table);
        break;
    }
    case JOB_UPSTREAM:
        d->up_queued = 0;
        d->up_syncs++;
        d->up_last_attempt_ms = clock_wall_ms();
        snprintf(d->up_last_error, sizeof d->up_last_error, "%.500s", j->ok ? "" : j->msg);
        if (j->ok) {
            d->up_last_ok_ms = clock_wall_ms();
            d->up_last = j->ur;
            if (strcmp(j->ur.action, "current") != 0)
                log_info("upstream: %s %s, %llu changes, %llu bytes, %.2f s", j->ur.action, j->ur.id,
                         (unsigned long long)j->ur.changes, (unsigned long long)j->ur.bytes, j->ur.seconds);
        } else {
            d->up_errors++;
            if (!atomic_load(&d->stop)) log_error("upstream: %s", j->msg);
        }
        if (atomic_load(&d->stop)) break;
        if (d->up_again && j->rs != REMOTE_ETRANSPORT) {
            d->up_again = 0;
            queue_upstream(d);             /* its completion arms the timer */
        } else {
            up_arm(d, j->rs == REMOTE_ETRANSPORT ? d->next_probe_ms - clock_wall_ms()
                                                 : jittered(d, d->cfg->upstream.interval_ms));
        }
        break;
    case JOB_COMPACT:
        compact_done(d, j);
        break;
    case JOB_SELECT: {
        d->passing--;
        if (j->ok && !atomic_load(&d->stop)) cache_table(d, j->column);
        /* Not reached (transport, or shutting down) is "unreachable"; any other
         * answer without a result or a JSON-RPC error is one it cannot pass on. */
        int st = j->ok ? SERVE_PASS_OK : j->rows.len ? SERVE_PASS_RPC
               : j->rs == REMOTE_ETRANSPORT || j->rs == REMOTE_OK ? SERVE_PASS_FAILED : SERVE_PASS_BAD;
        if (st < 0) d->pass_errors++;
        j->sdone(j->arg, st, st < 0 ? NULL : j->rows.p, j->ok ? NULL : j->msg);
        break;
    }
    case JOB_EXPORT:
        break;
    }
    free_job(j);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct table_sched *ts = arg;
    struct daemon *d = ts->d;
    if (atomic_load(&d->stop) || ts->queued) return;   /* re-armed when the running pull finishes */
    if (d->portal == 0 && clock_wall_ms() < d->next_probe_ms) {
        arm(d, ts->index, d->next_probe_ms - clock_wall_ms());   /* one probe at a time while down */
        return;
    }
    queue_pull(d, ts->index, 0);
}

/* ---- the outbox's sender (its own thread) ----------------------------------------------- */

struct sender_note {                  /* from the sender to the loop thread */
    struct daemon *d;
    int answered;                     /* the portal answered the sender */
    int table;                        /* pull this table (-1: none) */
};

static void sender_noted(evutil_socket_t fd, short what, void *arg)
{
    struct sender_note *n = arg;
    struct daemon *d = n->d;
    if (!atomic_load(&d->stop)) {
        if (n->answered && d->portal == 0) portal_answered(d);
        if (n->table >= 0 && d->cfg->tables[n->table].strategy != STRATEGY_ON_DEMAND) request_pull(d, n->table);
    }
    free(n);
}

static void sender_note(struct daemon *d, int answered, const char *table)
{
    const struct config_table *t = table ? config_table_find(d->cfg, table) : NULL;
    struct sender_note *n = xcalloc(1, sizeof *n);
    n->d = d;
    n->answered = answered;
    n->table = t ? (int)(t - d->cfg->tables) : -1;
    event_base_once(d->base, -1, EV_TIMEOUT, sender_noted, n, NULL);
}

/* A write was queued (any thread): the sender looks at once. */
static void daemon_outbox_kick(struct daemon *d)
{
    pthread_mutex_lock(&d->mu);
    d->sender_kicked = 1;
    pthread_cond_signal(&d->sender_cv);
    pthread_mutex_unlock(&d->mu);
}

/* Sleep up to ms, or until kicked or stopping. */
static void sender_wait(struct daemon *d, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
    pthread_mutex_lock(&d->mu);
    while (!d->sender_kicked && !atomic_load(&d->stop))
        if (pthread_cond_timedwait(&d->sender_cv, &d->mu, &ts) != 0) break;
    d->sender_kicked = 0;
    pthread_mutex_unlock(&d->mu);
}

/* One cheap select: does the portal answer? */
static int sender_probe(struct daemon *d)
{
    char err[IA_ERRLEN];
    struct buf q = {0}, out = {0};
    struct json_rows_text rt = {&out, 0, 0};
    const struct config_table *t = &d->cfg->tables[0];
    buf_printf(&q, "{\"data\":[\"%s\"],\"from\":\"%s\",\"limit\":1}", t->key, t->name);
    enum remote_status rs = remote_query(d->sender_remote, "select", q.p, &json_rows_text_cb, &rt, err, sizeof err);
    buf_free(&q);
    buf_free(&out);
    return rs != REMOTE_ETRANSPORT;
}

/* Are there ops to send (pending or sent)? An unreadable outbox says yes: the
 * step then names the problem. */
static int sender_has_open(struct daemon *d)
{
    struct replay_outbox_counts n;
    char err[IA_ERRLEN];
    pthread_mutex_lock(&d->wlock);
    int rc = replay_outbox_counts(replay_db(d->st.rp), &n, err, sizeof err);
    pthread_mutex_unlock(&d->wlock);
    return rc != 0 || n.pending > 0;
}

static void *sender_main(void *arg)
{
    struct daemon *d = arg;
    struct pull_ctx c = {.cfg = d->cfg, .remote = d->sender_remote, .jw = d->st.jw, .rp = d->st.rp,
                         .cancel = &d->stop, .lock = &d->wlock, .gate = &d->gate};
    int64_t fail_wait = BACKOFF_FIRST_MS;
    /* Probe before a step when the portal was not heard from just before: at
     * start, after an idle spell (a write is queued mostly because the portal
     * is down) and after a step that could not reach it. Else each step would
     * journal `sending` and `pending` again for a portal that is not there. */
    int waiting = 1;
    char last[256] = "";
    struct outbox_sender *sender = outbox_sender_new();
    while (!atomic_load(&d->stop)) {
        if (waiting && !sender_has_open(d)) {
            sender_wait(d, OUTBOX_IDLE_MS);
            continue;
        }
        if (waiting) {
            /* Probe before the next step: a step's select or write would
             * also reach the portal, but a probe cannot change anything. */
            if (!sender_probe(d)) {
                sender_wait(d, OUTBOX_PROBE_MS);
                continue;
            }
            waiting = 0;
            sender_note(d, 1, NULL);
        }
        struct outbox_result r;
        if (outbox_send_next(&c, sender, &r) != 0) {
            log_error("outbox: %s", r.msg);
            sender_wait(d, fail_wait);
            if (fail_wait < OUTBOX_FAIL_MAX_MS) fail_wait *= 2;
            continue;
        }
        if (atomic_load(&d->stop)) break;
        /* Deferred re-reads that failed in a step that ended otherwise: pull. */
        if (r.repull[0] && r.step != OUTBOX_DONE && r.step != OUTBOX_CONFLICT && r.step != OUTBOX_REJECTED)
            sender_note(d, 0, r.repull);
        switch (r.step) {
        case OUTBOX_IDLE:
            waiting = 1;
            sender_wait(d, OUTBOX_IDLE_MS);
            continue;
        case OUTBOX_DONE:
        case OUTBOX_CONFLICT:
        case OUTBOX_REJECTED:
            fail_wait = BACKOFF_FIRST_MS;
            last[0] = '\0';
            if (r.step == OUTBOX_DONE)
                log_info("outbox: op %llu (table %s) done", (unsigned long long)r.op_id, r.table);
            else
                log_warn("outbox: %s", r.msg);
            if (r.sent || r.step != OUTBOX_REJECTED || r.repull[0]) sender_note(d, 1, r.repull[0] ? r.repull : NULL);
            continue;
        case OUTBOX_TRANSIENT:
        case OUTBOX_UNKNOWN:
            /* Never dropped: wait for the portal, then try (or read back) again. */
            if (strcmp(last, r.msg) != 0) log_warn("outbox: %s", r.msg);
            snprintf(last, sizeof last, "%.255s", r.msg);
            waiting = 1;
            sender_wait(d, OUTBOX_PROBE_MS);
            continue;
        case OUTBOX_FAILED:
            if (strcmp(last, r.msg) != 0) log_error("outbox: %s", r.msg);
            snprintf(last, sizeof last, "%.255s", r.msg);
            sender_wait(d, fail_wait);
            if (fail_wait < OUTBOX_FAIL_MAX_MS) fail_wait *= 2;
            continue;
        }
    }
    outbox_sender_free(sender);   /* re-reads still deferred: the tables' next pulls */
    return NULL;
}

static void start_sender(struct daemon *d)
{
    pthread_cond_init(&d->sender_cv, NULL);
    if (d->up || !d->sender_remote || d->cfg->ntables == 0) return;   /* an edge sends nothing */
    if (pthread_create(&d->sender, NULL, sender_main, d) == 0) d->sender_started = 1;
    else log_error("outbox: cannot start the sender thread; queued writes wait for a restart");
}

/* ---- hooks for the local API (loop thread) -------------------------------------------- */

static int hook_fetch(void *ctx, const char *table, const char *column, const char *value_json,
                      serve_done_fn done, void *arg)
{
    struct daemon *d = ctx;
    const struct config_table *t = config_table_find(d->cfg, table);
    if (!t || atomic_load(&d->stop)) return -1;
    if (d->portal == 0 && clock_wall_ms() < d->next_probe_ms) return -1;   /* reads never wait on a dead portal */
    struct job *j = job_new(JOB_FETCH, (int)(t - d->cfg->tables));
    j->column = xstrdup(column);
    j->value = xstrdup(value_json);
    j->done = done;
    j->arg = arg;
    enqueue(d, &d->interq, j);
    return 0;
}

/* Stale on_demand rows: read their keys again (pull_keys: absent ones are deleted). */
static int hook_refresh(void *ctx, const char *table, const char *keys_json, serve_done_fn done, void *arg)
{
    struct daemon *d = ctx;
    const struct config_table *t = config_table_find(d->cfg, table);
    if (!t || atomic_load(&d->stop)) return -1;
    if (d->portal == 0 && clock_wall_ms() < d->next_probe_ms) return -1;   /* serve them stale instead */
    struct job *j = job_new(JOB_REFRESH, (int)(t - d->cfg->tables));
    j->value = xstrdup(keys_json);
    j->done = done;
    j->arg = arg;
    enqueue(d, &d->interq, j);
    return 0;
}

/* By the table's `writes` policy (docs/outbox.md): refuse; forward (refused
 * while the portal is known unreachable); queue: forwarded while the portal
 * may answer, into the outbox while it is known unreachable or when the
 * forward fails before sending (run_write). A table the config does not list
 * is forwarded: the portal judges it. */
static int hook_write(void *ctx, const char *method, const char *params_json, serve_write_done_fn done, void *arg)
{
    struct daemon *d = ctx;
    if (atomic_load(&d->stop)) return -1;
    cJSON *params = NULL;
    char perr[IA_ERRLEN];
    const struct config_table *t = NULL;
    if (json_parse(params_json, strlen(params_json), 64, &params, perr, sizeof perr) == 0) {
        const char *tname = write_table(params);
        t = tname ? config_table_find(d->cfg, tname) : NULL;
    }
    cJSON_Delete(params);
    if (t && t->writes == WRITES_REFUSE) {
        char msg[IA_ERRLEN];
        snprintf(msg, sizeof msg, "%s refused: table %s takes no writes through this agent (writes = \"refuse\" "
                 "in %s)", method, t->name, d->cfg->path ? d->cfg->path : "agent.toml");
        done(arg, SERVE_WRITE_REFUSED, NULL, msg);
        return 0;
    }
    int may_queue = t && t->writes == WRITES_QUEUE;
    int down = d->portal == 0 && clock_wall_ms() < d->next_probe_ms;
    if (down && !may_queue) return -1;
    struct job *j = job_new(JOB_WRITE, t ? (int)(t - d->cfg->tables) : -1);
    j->may_queue = may_queue;
    j->method = xstrdup(method);
    j->params = xstrdup(params_json);
    j->wdone = done;
    j->arg = arg;
    enqueue(d, down ? &d->outq : &d->interq, j);   /* outq: queued without asking the portal */
    return 0;
}

/* A select the cache cannot answer (serve.h: Pass-through) goes to the portal
 * on an interactive worker; at most PASS_WAITING_MAX wait at once (the rest
 * are answered "busy": a client storm must not grow the queue without bound).
 * While the portal is known down it is not asked: reads never wait on it. */
static int hook_select(void *ctx, const char *table, const char *params_json, serve_select_done_fn done, void *arg)
{
    struct daemon *d = ctx;
    char msg[IA_ERRLEN];
    if (atomic_load(&d->stop)) return -1;
    if (d->portal == 0 && clock_wall_ms() < d->next_probe_ms) {
        time_t t = (time_t)(d->unreachable_since_ms / 1000);
        struct tm tm;
        char when[40];
        gmtime_r(&t, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        snprintf(msg, sizeof msg, "no answer from %s since %s", d->cfg->remote.url ? d->cfg->remote.url : "it", when);
        d->pass_errors++;
        done(arg, SERVE_PASS_FAILED, NULL, msg);
        return 0;
    }
    if (d->passing >= PASS_WAITING_MAX) {
        snprintf(msg, sizeof msg, "%d selects already wait for it; try again", d->passing);
        d->pass_busy++;
        done(arg, SERVE_PASS_BUSY, NULL, msg);
        return 0;
    }
    struct job *j = job_new(JOB_SELECT, -1);
    j->params = xstrdup(params_json);
    j->column = xstrdup(table);
    j->sdone = done;
    j->arg = arg;
    d->passing++;
    d->passes++;
    enqueue(d, &d->interq, j);
    return 0;
}

static int hook_sync(void *ctx, const char *table, char *err, size_t errlen)
{
    struct daemon *d = ctx;
    const struct config_table *t = config_table_find(d->cfg, table);
    if (!t) {
        snprintf(err, errlen, "table \"%s\" is not configured", table);
        return -1;
    }
    if (t->strategy == STRATEGY_ON_DEMAND) {
        snprintf(err, errlen, "table \"%s\" is on_demand: rows are fetched when a lookup misses", table);
        return -1;
    }
    request_pull(d, (int)(t - d->cfg->tables));
    return 0;
}

static int hook_export(void *ctx, const char *base_id, serve_export_done_fn done, void *arg)
{
    struct daemon *d = ctx;
    if (atomic_load(&d->stop)) return -1;
    struct job *j = job_new(JOB_EXPORT, -1);
    j->base_id = base_id ? xstrdup(base_id) : NULL;
    j->edone = done;
    j->arg = arg;
    enqueue(d, &d->exportq, j);
    return 0;
}

/* Edge mode: no portal to write to. */
static int edge_write(void *ctx, const char *method, const char *params_json, serve_write_done_fn done, void *arg)
{
    struct daemon *d = ctx;
    char msg[512];
    snprintf(msg, sizeof msg, "this agent is an edge of %s ([upstream]) and has no portal: send %s to the portal",
             d->cfg->upstream.url, method);
    done(arg, -1, NULL, msg);
    return 0;
}

/* Edge mode: POST /sync/ANYTHING asks the hub now (after a running ask: again). */
static int edge_sync(void *ctx, const char *table, char *err, size_t errlen)
{
    struct daemon *d = ctx;
    if (d->up_queued) d->up_again = 1;
    else queue_upstream(d);
    return 0;
}

static int hook_portal_state(void *ctx, int64_t *since_ms)
{
    struct daemon *d = ctx;
    if (d->portal == 0 && since_ms) *since_ms = d->unreachable_since_ms;
    return d->portal;
}

static void hook_status_json(void *ctx, struct buf *out)
{
    struct daemon *d = ctx;
    buf_printf(out, "\"portal\":{\"state\":\"%s\"", d->portal == 1 ? "reachable" : d->portal == 0 ? "unreachable"
                                                                                            : "unknown");
    if (d->portal == 0) {
        char when[40];
        time_t secs = (time_t)(d->unreachable_since_ms / 1000);
        struct tm tm;
        gmtime_r(&secs, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        buf_printf(out, ",\"unreachable_since\":\"%s\",\"next_attempt_in_ms\":%lld", when,
                   (long long)(d->next_probe_ms - clock_wall_ms()));
    }
    buf_putc(out, '}');
    if (d->up) {
        buf_puts(out, ",\"upstream\":{\"url\":");
        json_write_string(out, d->cfg->upstream.url, strlen(d->cfg->upstream.url));
        buf_printf(out, ",\"at\":\"%s\",\"last_action\":\"%s\",\"last_success_ms\":%lld,\"syncs\":%llu,"
                        "\"errors\":%llu,\"running\":%s,\"next_in_ms\":%lld,\"last_attempt_ms\":%lld,\"last_error\":",
                   d->up_last.id, d->up_last.action, (long long)d->up_last_ok_ms, (unsigned long long)d->up_syncs,
                   (unsigned long long)d->up_errors, d->up_queued ? "true" : "false",
                   (long long)(d->up_next_ms - clock_wall_ms()), (long long)d->up_last_attempt_ms);
        if (d->up_last_error[0]) json_write_string(out, d->up_last_error, strlen(d->up_last_error));
        else buf_puts(out, "null");
        buf_putc(out, '}');
    }
    uint64_t jbytes = 0;
    size_t jsegs = 0;
    char jerr[IA_ERRLEN];
    journal_size(d->st.journal_dir, &jbytes, &jsegs, jerr, sizeof jerr);
    buf_printf(out, ",\"journal\":{\"bytes\":%llu,\"segments\":%zu,\"compactions\":%llu,\"compact_errors\":%llu,"
                    "\"freed_total\":%llu,\"running\":%s,\"interval_ms\":%lld,\"last_compaction\":",
               (unsigned long long)jbytes, jsegs, (unsigned long long)d->compactions,
               (unsigned long long)d->compact_errors, (unsigned long long)d->compact_freed_total,
               d->compact_queued ? "true" : "false", (long long)d->cfg->storage.compact_interval_ms);
    if (d->compact_last_ms) {
        char when[40];
        time_t secs = (time_t)(d->compact_last_ms / 1000);
        struct tm tm;
        gmtime_r(&secs, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        buf_printf(out, "{\"at\":\"%s\",\"at_ms\":%lld,\"deleted\":%zu,\"freed\":%llu,\"kept\":%zu,"
                        "\"kept_bytes\":%llu,\"snapshot_bytes\":%llu,\"kept_because\":",
                   when, (long long)d->compact_last_ms, d->compact_last.deleted,
                   (unsigned long long)d->compact_last.freed, d->compact_last.kept,
                   (unsigned long long)d->compact_last.kept_bytes, (unsigned long long)d->compact_last.snapshot_bytes);
        json_write_string(out, d->compact_last.reason, strlen(d->compact_last.reason));
        buf_putc(out, '}');
    } else {
        buf_puts(out, "null");
    }
    buf_puts(out, ",\"last_error\":");
    if (d->compact_error[0]) json_write_string(out, d->compact_error, strlen(d->compact_error));
    else buf_puts(out, "null");
    buf_putc(out, '}');
    buf_printf(out, ",\"exports\":%llu,\"schedule\":[", (unsigned long long)d->exports);
    for (int i = 0; i < d->cfg->ntables; i++) {
        if (i) buf_putc(out, ',');
        buf_puts(out, "{\"table\":");
        json_write_string(out, d->cfg->tables[i].name, strlen(d->cfg->tables[i].name));
        buf_printf(out, ",\"running\":%s,\"next_in_ms\":", d->ts[i].queued ? "true" : "false");
        /* on_demand tables have no timer: rows are fetched when a lookup needs them. */
        if (d->cfg->tables[i].strategy == STRATEGY_ON_DEMAND) buf_puts(out, "null");
        else buf_printf(out, "%lld", (long long)(d->ts[i].next_ms - clock_wall_ms()));
        buf_printf(out, ",\"pulls\":%llu,\"errors\":%llu}", (unsigned long long)d->ts[i].pulls,
                   (unsigned long long)d->ts[i].errors);
    }
    buf_putc(out, ']');
}

/* A Prometheus label value: backslash, quote and newline escaped. */
static void label(struct buf *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"') buf_putc(out, '\\');
        if (*s == '\n') { buf_puts(out, "\\n"); continue; }
        buf_putc(out, *s);
    }
}

static void hook_metrics(void *ctx, struct buf *out)
{
    struct daemon *d = ctx;
    buf_puts(out, "# HELP iptv_agent_pulls_total Pulls attempted per table.\n# TYPE iptv_agent_pulls_total counter\n");
    for (int i = 0; i < d->cfg->ntables; i++) {
        buf_puts(out, "iptv_agent_pulls_total{table=\"");
        label(out, d->cfg->tables[i].name);
        buf_printf(out, "\"} %llu\n", (unsigned long long)d->ts[i].pulls);
    }
    buf_puts(out, "# HELP iptv_agent_pull_errors_total Failed pulls per table.\n# TYPE iptv_agent_pull_errors_total counter\n");
    for (int i = 0; i < d->cfg->ntables; i++) {
        buf_puts(out, "iptv_agent_pull_errors_total{table=\"");
        label(out, d->cfg->tables[i].name);
        buf_printf(out, "\"} %llu\n", (unsigned long long)d->ts[i].errors);
    }
    /* No sample before the first contact: a fresh agent does not know, and a 0
     * there would fire "portal down" alerts (absent() tells "not yet known"). */
    buf_puts(out, "# HELP iptv_agent_portal_up 1 when the portal answered the last attempt, 0 when it did not; "
                  "absent before the first attempt.\n# TYPE iptv_agent_portal_up gauge\n");
    if (d->portal >= 0) buf_printf(out, "iptv_agent_portal_up %d\n", d->portal == 1);
    uint64_t bytes = 0;
    size_t n = 0;
    char err[IA_ERRLEN];
    journal_size(d->st.journal_dir, &bytes, &n, err, sizeof err);
    buf_printf(out, "# HELP iptv_agent_journal_bytes Bytes in journal segments.\n# TYPE iptv_agent_journal_bytes gauge\n"
                    "iptv_agent_journal_bytes %llu\n# HELP iptv_agent_journal_segments Journal segment files.\n"
                    "# TYPE iptv_agent_journal_segments gauge\niptv_agent_journal_segments %zu\n",
               (unsigned long long)bytes, n);
    buf_printf(out, "# HELP iptv_agent_pass_selects_total Selects the cache could not answer, by outcome: sent to "
                    "the portal, failed (not reached), busy (refused, too many waiting).\n"
                    "# TYPE iptv_agent_pass_selects_total counter\n"
                    "iptv_agent_pass_selects_total{outcome=\"sent\"} %llu\n"
                    "iptv_agent_pass_selects_total{outcome=\"failed\"} %llu\n"
                    "iptv_agent_pass_selects_total{outcome=\"busy\"} %llu\n",
               (unsigned long long)d->passes, (unsigned long long)d->pass_errors, (unsigned long long)d->pass_busy);
}

/* ---- run ----------------------------------------------------------------------------------- */

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct daemon *d = arg;
    log_info("signal %d: stopping (the page in flight is finished or abandoned; the journal stays consistent)",
             (int)sig);
    event_base_loopbreak(d->base);
}

static remote *worker_remote(const struct config *cfg, int interactive, char *err, size_t errlen)
{
    struct config c = *cfg;
    if (interactive) {
        /* Lookups and writes wait for a person: fail fast rather than retry long. */
        if (c.remote.timeout_ms > INTERACTIVE_TIMEOUT_MS) c.remote.timeout_ms = INTERACTIVE_TIMEOUT_MS;
        if (c.remote.retries > 1) c.remote.retries = 1;
    } else if (c.remote.retries > 2) {
        /* The scheduler backs off between pulls itself; long retries inside one
         * pull would only delay noticing an outage. */
        c.remote.retries = 2;
    }
    return remote_from_config(&c, err, errlen);
}

/* The store, the portal clients (or the edge's upstream) and the hub's
 * exports directory. 0, or the exit status (1, 2 for a config problem). */
static int open_parts(struct daemon *d, char *err, size_t errlen)
{
    const struct config *cfg = d->cfg;
    if (store_open(cfg, 1, &d->st, err, errlen) != 0) return 1;
    if (cfg->upstream.url) {
        if (!(d->up = upstream_new(cfg, err, errlen))) return 2;
        upstream_set_cancel(d->up, &d->stop);
    } else {
        d->pullq.w[0].remote = worker_remote(cfg, 0, err, errlen);
        for (int k = 0; k < INTERACTIVE_WORKERS && d->pullq.w[0].remote; k++)
            if (!(d->interq.w[k].remote = worker_remote(cfg, 1, err, errlen))) break;
        if (!d->interq.w[INTERACTIVE_WORKERS - 1].remote) return 2;
        if (!(d->sender_remote = worker_remote(cfg, 0, err, errlen))) return 2;
        remote_set_cancel(d->sender_remote, &d->stop);
        remote_set_cancel(d->pullq.w[0].remote, &d->stop);
        for (int k = 0; k < INTERACTIVE_WORKERS; k++) remote_set_cancel(d->interq.w[k].remote, &d->stop);
    }
    char xdir[4200];
    snprintf(xdir, sizeof xdir, "%s/exports", d->st.dir);
    d->hub = export_hub_new(xdir, d->st.db_path, cfg->storage.compression_level, cfg->serve.export_keep, err, errlen);
    return d->hub ? 0 : 1;
}

/* The event loop and the HTTP server; then the first stdout line says where
 * the API listens (the port may be ephemeral), and so does <dir>/agent.url,
 * so CLI commands can reach the running daemon. 0 or -1. */
static int start_serving(struct daemon *d, const char *token, const char *password, char *err, size_t errlen)
{
    const struct config *cfg = d->cfg;
    d->base = event_base_new();
    struct serve_hooks hooks = {d, hook_fetch, hook_write, hook_sync, hook_portal_state, hook_status_json,
                                hook_metrics, hook_export, hook_refresh, hook_select};
    if (d->up) {
        hooks.fetch = NULL;            /* misses are answered from the cache */
        hooks.refresh = NULL;
        hooks.select = NULL;           /* the hub's tables only */
        hooks.write = edge_write;
        hooks.sync = edge_sync;
    }
    struct serve_opts so = {.cfg = cfg, .db_path = d->st.db_path, .token = token,
                            .username = cfg->remote.username, .password = password};
    if (!(d->srv = serve_new(d->base, &so, &hooks, err, errlen))) return -1;
    log_info("serving on %s (port %d); %d tables", cfg->serve.listen, serve_port(d->srv), cfg->ntables);
    char host[256], url[320], path[4200];
    int port;
    if (config_listen_split(cfg->serve.listen, host, sizeof host, &port) == 0) {
        snprintf(url, sizeof url, strchr(host, ':') ? "http://[%s]:%d" : "http://%s:%d",
                 strcmp(host, "0.0.0.0") ? host : "127.0.0.1", serve_port(d->srv));
        printf("%s\n", url);
        snprintf(path, sizeof path, "%s/agent.url", d->st.dir);
        FILE *f = fopen(path, "w");
        if (f) { fprintf(f, "%s\n", url); fclose(f); }
    }
    fflush(stdout);
    return 0;
}

/* A timer per table, armed for when its next pull is due (the first pulls
 * spread over a second); the compaction timer, or an edge's upstream timer. */
static void schedule(struct daemon *d)
{
    const struct config *cfg = d->cfg;
    char err[IA_ERRLEN];
    d->ts = xcalloc((size_t)d->tables_cap + 1, sizeof *d->ts);
    for (int i = 0; i < cfg->ntables; i++) {
        const struct config_table *t = &cfg->tables[i];
        d->ts[i].d = d;
        d->ts[i].index = i;
        d->ts[i].timer = evtimer_new(d->base, on_timer, &d->ts[i]);
        if (t->strategy == STRATEGY_ON_DEMAND) continue;
        struct replay_table st = {0};
        int64_t delay = 0;
        if (replay_table_get(d->st.rp, t->name, &st, err, sizeof err) == 0 && !pull_due(t, &st, clock_wall_ms()))
            delay = st.last_success_ms + period_ms(t) - clock_wall_ms();
        replay_table_free(&st);
        arm(d, i, delay + (int64_t)(rnd(d) % 1000));
    }
    if (d->up) {
        log_info("edge of %s: asking for its changes every %lld s", cfg->upstream.url,
                 (long long)(cfg->upstream.interval_ms / 1000));
        d->up_timer = evtimer_new(d->base, on_up_timer, d);
        up_arm(d, 0);
    } else {
        d->compact_timer = evtimer_new(d->base, on_compact_timer, d);
        compact_arm(d);
    }
}

static void start_workers(struct daemon *d, struct queue *qs[NQUEUES])
{
    qs[0] = &d->pullq;
    qs[1] = &d->interq;
    qs[2] = &d->exportq;
    qs[3] = &d->outq;
    d->pullq.name = "pull";
    d->interq.name = "interactive";
    d->exportq.name = "export";
    d->outq.name = "outbox";
    d->pullq.nw = d->exportq.nw = 1;
    d->interq.nw = INTERACTIVE_WORKERS;
    d->outq.nw = 1;
    for (int k = 0; k < NQUEUES; k++) {
        qs[k]->d = d;
        pthread_cond_init(&qs[k]->cv, NULL);
        for (int i = 0; i < qs[k]->nw; i++) {
            qs[k]->w[i].q = qs[k];
            pthread_create(&qs[k]->w[i].thread, NULL, worker_main, &qs[k]->w[i]);
        }
    }
}

/* Shutdown: workers stop between pages and fail what is queued; their
 * completions (replies to waiting HTTP clients) run before the server goes. */
static void stop_workers(struct daemon *d, struct queue *qs[NQUEUES])
{
    pthread_mutex_lock(&d->mu);
    atomic_store(&d->stop, 1);
    for (int k = 0; k < NQUEUES; k++) pthread_cond_broadcast(&qs[k]->cv);
    pthread_cond_broadcast(&d->sender_cv);
    pthread_mutex_unlock(&d->mu);
    if (d->sender_started) pthread_join(d->sender, NULL);
    pthread_cond_destroy(&d->sender_cv);
    for (int k = 0; k < NQUEUES; k++) {
        for (int i = 0; i < qs[k]->nw; i++) pthread_join(qs[k]->w[i].thread, NULL);
        pthread_cond_destroy(&qs[k]->cv);
    }
    event_base_loop(d->base, EVLOOP_NONBLOCK);
    char path[4200];
    snprintf(path, sizeof path, "%s/agent.url", d->st.dir);
    unlink(path);
}

static void daemon_free(struct daemon *d)
{
    if (d->ts)
        for (int i = 0; i < d->cfg->ntables; i++) event_free(d->ts[i].timer);
    if (d->up_timer) event_free(d->up_timer);
    if (d->compact_timer) event_free(d->compact_timer);
    if (d->srv) serve_free(d->srv);
    if (d->base) event_base_free(d->base);
    remote_free(d->pullq.w[0].remote);
    remote_free(d->sender_remote);
    for (int k = 0; k < INTERACTIVE_WORKERS; k++) remote_free(d->interq.w[k].remote);
    upstream_free(d->up);
    export_hub_free(d->hub);
    store_close(&d->st);
    pthread_mutex_destroy(&d->mu);
    pthread_mutex_destroy(&d->wlock);
    pull_gate_destroy(&d->gate);
    free(d->ts);
    for (int i = d->base_tables; i < d->cfgv.ntables; i++) config_table_free(&d->cfgv.tables[i]);
    free(d->cfgv.tables);
    free(d);
}

int daemon_run(const struct config *cfg, const char *token, const char *password)
{
    char err[IA_ERRLEN];
    evthread_use_pthreads();
    struct daemon *d = xcalloc(1, sizeof *d);
    atomic_init(&d->stop, 0);
    d->cfgv = *cfg;                    /* strings shared with the caller's, read only */
    d->base_tables = cfg->ntables;
    d->tables_cap = cfg->ntables + (cfg->serve.unknown_tables == UNKNOWN_CACHE && !cfg->upstream.url
                                        ? cfg->serve.max_auto_tables : 0);
    d->cfgv.tables = xcalloc((size_t)d->tables_cap + 1, sizeof *d->cfgv.tables);
    if (cfg->ntables) memcpy(d->cfgv.tables, cfg->tables, (size_t)cfg->ntables * sizeof *cfg->tables);
    d->cfg = &d->cfgv;
    d->portal = -1;
    d->rng = (uint64_t)clock_wall_ms() ^ ((uint64_t)getpid() << 32);
    pthread_mutex_init(&d->mu, NULL);
    pthread_mutex_init(&d->wlock, NULL);
    pull_gate_init(&d->gate, d->cfg->remote.max_inflight);
    int rc = open_parts(d, err, sizeof err);
    if (rc == 0 && start_serving(d, token, password, err, sizeof err) != 0) rc = 1;
    if (rc != 0) {
        fprintf(stderr, "iptv-agent run: %s\n", err);
        daemon_free(d);
        return rc;
    }
    schedule(d);
    struct queue *qs[NQUEUES];
    start_workers(d, qs);
    start_sender(d);
    struct event *sigterm = evsignal_new(d->base, SIGTERM, on_signal, d);
    struct event *sigint = evsignal_new(d->base, SIGINT, on_signal, d);
    event_add(sigterm, NULL);
    event_add(sigint, NULL);

    event_base_dispatch(d->base);

    stop_workers(d, qs);
    event_free(sigterm);
    event_free(sigint);
    log_info("stopped");
    daemon_free(d);
    return 0;
}
