/* bench_serve.c — the local API (agent/serve/serve.h) under keep-alive load, against
 * the fake portal answering the same requests from its own SQLite database.
 *
 * Setup: the fake portal (in memory, --scale S: 5000*S subscribers) is pulled
 * into a fresh cache.db with the real puller (store + remote + pull_table, a
 * full snapshot of subscriber); the server runs on its own event-loop thread in
 * this process. Clients are threads with one keep-alive HTTP/1.1 connection
 * each, written on raw sockets (a request is written, the whole response read by
 * its Content-Length, the latency recorded) so that the client side costs as
 * little CPU as possible on a 2-core machine: libcurl's per-request overhead
 * would be measured as much as the server.
 *
 * Workloads, each run for --seconds after a 0.3 s warm-up, per target:
 *   point  JSON-RPC select * from subscriber where id = <random cached id>
 *   page   JSON-RPC select * from subscriber where id > <random id> order by id limit 100
 *   sql    POST /sql {"sql":"SELECT * FROM subscriber WHERE id = ?","params":[id]} (agent only)
 * Every response is checked (HTTP 200 and a JSON-RPC result / a rows array).
 * Output: per workload and target one JSON line each for req/s, p50 and p99
 * latency (ms), and the agent/portal throughput ratio; progress on stderr.
 *
 * Then the same point and page load on the agent WHILE the real agent (IA_AGENT_BIN,
 * `sync --full tv_program`, a child process) takes a snapshot of --snapshot-rows
 * tv_program rows from a second fake portal into the same cache.db: the load
 * alternates point and page slices of 0.5 s for as long as the snapshot runs (at
 * least 2 * --seconds), and a thread on its own read-only connection keeps counting
 * tv_program, which must only ever hold 0, its count before, or all rows (the swap
 * is one transaction). Output: req/s, p50, p99 (point) and req/s, p99 (page) with
 * "during":"snapshot_1M", their p99 during/idle ratios, and
 * serve_snapshot_whole_table_checks (counts observed; partial_seen must be 0).
 * Exit status 1 when the agent failed or a partial table was seen.
 *
 * Last, on_demand misses through the real daemon (`iptv-agent run`, a child
 * process): --misses distinct uncached terminal ids looked up by key from
 * --miss-clients threads at once (libcurl, one request each), the fake portal
 * answering every /api/ request after --miss-latency-ms. Output:
 * serve_on_demand_misses (misses/s, with the wall time and the most portal
 * requests the fake portal saw in flight at once). Every answer must hold its row.
 *
 * Then pass-through (serve.h): point selects of subscriber, which the daemon
 * (`iptv-agent run`, only an on_demand table configured) does not cache, so
 * every one goes to the fake portal, and the same statements straight to the
 * fake portal, from --clients keep-alive connections each, with the portal
 * delaying every reply by 0 and then 50 ms. Output: serve_pass_point_lookup
 * rps/p50/p99 per target, serve_pass_overhead_p50/_p99 (agent minus portal, ms)
 * and serve_pass_vs_portal (the rps ratio), with portal_latency_ms.
 *
 * usage: bench_serve [--clients N] [--seconds S] [--scale S] [--snapshot-rows N]
 *                    [--misses N] [--miss-clients N] [--miss-latency-ms N] [--pass 0|1]
 *   defaults: 4 clients, 3 seconds per run, scale 4, 1000000 rows (0: no snapshot),
 *   200 misses (0: none) from 20 clients, 36 ms portal latency. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include <arpa/inet.h>

#include "agent/base/buf.h"
#include "agent/config/config.h"
#include "agent/base/log.h"
#include "agent/pull/pull.h"
#include "agent/portal/remote.h"
#include "agent/serve/serve.h"
#include "agent/pull/store.h"
#include "tests/harness/harness.h"
#include "tests/testutil.h"

#define RESP_CAP (4 << 20)
#define WARMUP_NS 300000000LL
#define SNAPSHOT_CHUNK 10000     /* tv_program rows per portal page */
#define SNAPSHOT_TIMEOUT_S 120   /* the agent is killed after this */

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- a minimal keep-alive HTTP/1.1 client ------------------------------------------ */

static int conn_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Send req, read one response into buf. Returns the HTTP status (body at
 * *body, *blen bytes) or -1 when the connection failed. */
static int roundtrip(int fd, const char *req, size_t len, char *buf, size_t cap, const char **body, size_t *blen)
{
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, req + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        off += (size_t)w;
    }
    size_t got = 0;
    char *end = NULL;
    while (!end) {
        if (got + 1 >= cap) return -1;
        ssize_t r = read(fd, buf + got, cap - 1 - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        got += (size_t)r;
        buf[got] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    int status = atoi(buf + 9);
    size_t clen = 0;
    for (char *p = buf; p && p < end; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncasecmp(p, "Content-Length:", 15) == 0) clen = (size_t)strtoull(p + 15, NULL, 10);
    size_t hdr = (size_t)(end + 4 - buf);
    if (hdr + clen >= cap) return -1;
    while (got < hdr + clen) {
        ssize_t r = read(fd, buf + got, hdr + clen - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        got += (size_t)r;
    }
    buf[hdr + clen] = '\0';
    *body = buf + hdr;
    *blen = clen;
    return status;
}

/* ---- load ---------------------------------------------------------------------------- */

enum kind { K_POINT, K_PAGE, K_SQL };

struct load {
    int port;
    enum kind kind;
    const char *session;        /* session id (the portal's, or the agent's) */
    const int64_t *ids;
    size_t nids;
    int64_t start_ns, measure_ns, stop_ns;
};

struct worker {
    const struct load *L;
    pthread_t th;
    uint64_t seed;
    int64_t *lat;               /* ns per measured request */
    size_t n, cap;
    uint64_t errors;
};

static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* A random cached id (ids sorted ascending); a page never starts at the largest,
 * after which there is no row and the empty answer would count as an error. */
static long long pick_id(enum kind kind, const int64_t *ids, size_t nids, uint64_t *seed)
{
    size_t n = kind == K_PAGE && nids > 1 ? nids - 1 : nids;
    return (long long)ids[rnd(seed) % n];
}

/* One request of `kind` for key id into req (body is scratch). */
static void build_request(struct buf *req, struct buf *body, enum kind kind, const char *session, long long id)
{
    buf_reset(body);
    buf_reset(req);
    if (kind == K_POINT)
        buf_printf(body, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"select\",\"params\":{\"data\":[\"*\"],"
                         "\"from\":\"subscriber\",\"where\":{\"eq\":[\"id\",%lld]}}}", id);
    else if (kind == K_PAGE)
        buf_printf(body, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"select\",\"params\":{\"data\":[\"*\"],"
                         "\"from\":\"subscriber\",\"where\":{\"gt\":[\"id\",%lld]},\"order_by\":\"id\",\"limit\":100}}",
                   id);
    else
        buf_printf(body, "{\"sql\":\"SELECT * FROM subscriber WHERE id = ?\",\"params\":[%lld]}", id);
    buf_printf(req, "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n",
               kind == K_SQL ? "/sql" : "/api/jsonsql/", body->len);
    if (session) buf_printf(req, "Iptvportal-Authorization: sessionid=%s\r\n", session);
    buf_puts(req, "\r\n");
    buf_append(req, body->p, body->len);
}

/* HTTP 200 with at least one row (every key asked for is cached). */
static int response_ok(enum kind kind, int status, const char *body)
{
    return status == 200 && strstr(body, kind == K_SQL ? "\"rows\":[[" : "\"result\":[[") != NULL;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    const struct load *L = w->L;
    char *resp = malloc(RESP_CAP);
    struct buf body = {0}, req = {0};
    int fd = conn_open(L->port);
    while (fd >= 0) {
        int64_t t0 = mono_ns();
        if (t0 >= L->stop_ns) break;
        long long id = pick_id(L->kind, L->ids, L->nids, &w->seed);
        build_request(&req, &body, L->kind, L->session, id);
        const char *rb;
        size_t rl;
        int st = roundtrip(fd, req.p, req.len, resp, RESP_CAP, &rb, &rl);
        int64_t t1 = mono_ns();
        if (st < 0) {                         /* reconnect, count it */
            w->errors++;
            close(fd);
            fd = conn_open(L->port);
            continue;
        }
        if (!response_ok(L->kind, st, rb)) w->errors++;
        if (t0 >= L->measure_ns) {
            if (w->n == w->cap) {
                w->cap = w->cap ? w->cap * 2 : 65536;
                w->lat = realloc(w->lat, sizeof *w->lat * w->cap);
            }
            w->lat[w->n++] = t1 - t0;
        }
    }
    if (fd >= 0) close(fd);
    buf_free(&body);
    buf_free(&req);
    free(resp);
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

struct result {
    double rps, p50_ms, p99_ms;
    uint64_t requests, errors;
};

static struct result run_load(int port, enum kind kind, const char *session, const int64_t *ids, size_t nids,
                              int clients, double seconds)
{
    struct load L = {.port = port, .kind = kind, .session = session, .ids = ids, .nids = nids};
    L.start_ns = mono_ns();
    L.measure_ns = L.start_ns + WARMUP_NS;
    L.stop_ns = L.measure_ns + (int64_t)(seconds * 1e9);
    struct worker *w = calloc((size_t)clients, sizeof *w);
    for (int i = 0; i < clients; i++) {
        w[i].L = &L;
        w[i].seed = 1000 + (uint64_t)i;
        pthread_create(&w[i].th, NULL, worker_main, &w[i]);
    }
    size_t total = 0;
    struct result r = {0};
    for (int i = 0; i < clients; i++) {
        pthread_join(w[i].th, NULL);
        total += w[i].n;
        r.errors += w[i].errors;
    }
    int64_t *all = malloc(sizeof *all * (total ? total : 1));
    size_t k = 0;
    for (int i = 0; i < clients; i++) {
        memcpy(all + k, w[i].lat, sizeof *all * w[i].n);
        k += w[i].n;
        free(w[i].lat);
    }
    free(w);
    qsort(all, total, sizeof *all, cmp_i64);
    r.requests = total;
    r.rps = (double)total / seconds;
    r.p50_ms = total ? (double)all[total / 2] / 1e6 : 0;
    r.p99_ms = total ? (double)all[(size_t)((double)total * 0.99)] / 1e6 : 0;
    free(all);
    return r;
}

static void emit(const char *name, const char *target, const struct result *r, int clients, double seconds,
                 size_t rows)
{
    const char *what[3] = {"rps", "p50", "p99"};
    double val[3] = {r->rps, r->p50_ms, r->p99_ms};
    for (int i = 0; i < 3; i++)
        printf("{\"bench\":\"%s_%s\",\"unit\":\"%s\",\"value\":%.3f,\"params\":{\"target\":\"%s\",\"clients\":%d,"
               "\"seconds\":%.1f,\"requests\":%llu,\"errors\":%llu,\"table_rows\":%zu}}\n",
               name, what[i], i ? "ms" : "req/s", val[i], target, clients, seconds,
               (unsigned long long)r->requests, (unsigned long long)r->errors, rows);
    fflush(stdout);
}

/* ---- the same load while a snapshot runs into the same cache.db ------------------------- */

/* The agent replaces tv_program by a shadow table in one transaction, so a reader
 * must only ever see the old table (or none) or the whole new one. Point and page
 * load alternate in SLICE_NS slices on the same keep-alive connections for as long
 * as the agent runs (at least 2 * seconds); only requests that started before the
 * agent exited count as "during". */
#define SLICE_NS 500000000LL

struct snap_load {
    int port;
    const char *session;         /* the agent's, from authorize_user */
    const int64_t *ids;
    size_t nids;
    int64_t measure_ns;          /* warm-up ends; slice 0 (point) starts */
    _Atomic int64_t snap_end_ns; /* INT64_MAX until the agent exits */
    _Atomic int64_t stop_ns;     /* INT64_MAX until decided */
};

struct snap_worker {
    struct snap_load *L;
    pthread_t th;
    uint64_t seed;
    int64_t *lat[2];             /* per kind (K_POINT, K_PAGE): ns of requests during the snapshot */
    size_t n[2], cap[2];
    uint64_t errors[2];          /* over the whole run, snapshot or not */
};

static enum kind slice_kind(const struct snap_load *L, int64_t t)
{
    return t < L->measure_ns || ((t - L->measure_ns) / SLICE_NS) % 2 == 0 ? K_POINT : K_PAGE;
}

static void *snap_worker_main(void *arg)
{
    struct snap_worker *w = arg;
    struct snap_load *L = w->L;
    char *resp = malloc(RESP_CAP);
    struct buf body = {0}, req = {0};
    int fd = conn_open(L->port);
    while (fd >= 0) {
        int64_t t0 = mono_ns();
        if (t0 >= atomic_load(&L->stop_ns)) break;
        enum kind k = slice_kind(L, t0);
        long long id = pick_id(k, L->ids, L->nids, &w->seed);
        build_request(&req, &body, k, L->session, id);
        const char *rb;
        size_t rl;
        int st = roundtrip(fd, req.p, req.len, resp, RESP_CAP, &rb, &rl);
        int64_t t1 = mono_ns();
        if (st < 0) {
            w->errors[k]++;
            close(fd);
            fd = conn_open(L->port);
            continue;
        }
        if (!response_ok(k, st, rb) && w->errors[k]++ == 0)      /* the first one per worker and kind, why */
            fprintf(stderr, "bench_serve: %s error for id %lld (largest cached %lld) %.3f s into the load%s: "
                    "HTTP %d %.300s\n", k == K_POINT ? "point" : "page", id, (long long)L->ids[L->nids - 1],
                    (double)(t0 - L->measure_ns) / 1e9,
                    t0 < atomic_load(&L->snap_end_ns) ? "" : " (after the snapshot)", st, rb);
        if (t0 >= L->measure_ns && t0 < atomic_load(&L->snap_end_ns)) {
            if (w->n[k] == w->cap[k]) {
                w->cap[k] = w->cap[k] ? w->cap[k] * 2 : 65536;
                w->lat[k] = realloc(w->lat[k], sizeof *w->lat[k] * w->cap[k]);
            }
            w->lat[k][w->n[k]++] = t1 - t0;
        }
    }
    if (fd >= 0) close(fd);
    buf_free(&body);
    buf_free(&req);
    free(resp);
    return NULL;
}

/* Seconds of kind k's slices inside [measure_ns, end_ns). */
static double slice_seconds(const struct snap_load *L, enum kind k, int64_t end_ns)
{
    int64_t total = 0;
    for (int64_t a = L->measure_ns, i = 0; a < end_ns; a += SLICE_NS, i++)
        if ((i % 2 == 0) == (k == K_POINT)) total += (a + SLICE_NS < end_ns ? a + SLICE_NS : end_ns) - a;
    return (double)total / 1e9;
}

/* The whole-table checker: count(*) of tv_program on its own read-only connection. */
struct counter {
    const char *db_path;
    int64_t allowed[3];          /* 0, the count before, the snapshot's rows */
    _Atomic int stop;
    pthread_t th;
    uint64_t checks, partial, errors;
    uint64_t seen[3];            /* checks that saw allowed[i] (0 and "before" coincide when absent) */
    int64_t last, first_partial;
};

static void *counter_main(void *arg)
{
    struct counter *c = arg;
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(c->db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        fprintf(stderr, "bench_serve: counter: %s: %s\n", c->db_path, db ? sqlite3_errmsg(db) : "out of memory");
        c->errors++;
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 5000);
    /* One more check after stop is raised: the final state is checked too. */
    for (int last_round = 0; !last_round;) {
        last_round = atomic_load(&c->stop);
        sqlite3_stmt *q = NULL;
        int64_t n = -1;
        int rc = sqlite3_prepare_v2(db, "SELECT count(*) FROM tv_program", -1, &q, NULL);
        if (rc != SQLITE_OK && strstr(sqlite3_errmsg(db), "no such table"))
            n = 0;                              /* absent: before the first swap */
        else if (rc == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
            n = sqlite3_column_int64(q, 0);
        if (n < 0) {
            if (c->errors++ == 0) fprintf(stderr, "bench_serve: counter: %s\n", sqlite3_errmsg(db));
        } else {
            c->checks++;
            c->last = n;
            for (int i = 0; i < 3; i++)
                if (n == c->allowed[i]) {
                    c->seen[i]++;
                    break;
                }
            if (n != c->allowed[0] && n != c->allowed[1] && n != c->allowed[2] && c->partial++ == 0)
                c->first_partial = n;
        }
        sqlite3_finalize(q);
    }
    sqlite3_close(db);
    return NULL;
}

/* Rows in tv_program now (0 when absent). */
static int64_t table_count(const char *db_path)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    int64_t n = 0;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT count(*) FROM tv_program", -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW)
        n = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(db);
    return n;
}

static struct result collect(struct snap_worker *w, int clients, enum kind k, double seconds)
{
    size_t total = 0;
    for (int i = 0; i < clients; i++) total += w[i].n[k];
    int64_t *all = malloc(sizeof *all * (total ? total : 1));
    struct result r = {0};
    size_t at = 0;
    for (int i = 0; i < clients; i++) {
        if (w[i].n[k]) memcpy(all + at, w[i].lat[k], sizeof *all * w[i].n[k]);
        at += w[i].n[k];
        r.errors += w[i].errors[k];
    }
    qsort(all, total, sizeof *all, cmp_i64);
    r.requests = total;
    r.rps = seconds > 0 ? (double)total / seconds : 0;
    r.p50_ms = total ? (double)all[total / 2] / 1e6 : 0;
    r.p99_ms = total ? (double)all[(size_t)((double)total * 0.99)] / 1e6 : 0;
    free(all);
    return r;
}

/* Exit status of the agent: its code, -signal, or -1000 after a timeout (then killed). */
static int wait_agent(pid_t pid, int64_t deadline_ns)
{
    int status;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
        if (r < 0 && errno != EINTR) return -1;
        if (mono_ns() >= deadline_ns) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1000;
        }
        nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);  /* 10 ms: the exit time's resolution */
    }
}

struct idle {
    struct result point, page;
};

/* Start a portal with snapshot_rows tv_program rows, run the agent's snapshot of it
 * into db_path's directory while the load and the counter run; print the results. */
static int run_snapshot_phase(const char *dir, const char *db_path, int port, const char *session,
                              const int64_t *ids, size_t nids,
                              int clients, double seconds, long long snapshot_rows, const struct idle *idle)
{
    char rows_arg[32];
    snprintf(rows_arg, sizeof rows_arg, "%lld", snapshot_rows);
    const char *pargs[] = {"--rows", rows_arg, NULL};
    struct tu_portal portal;
    fprintf(stderr, "bench_serve: starting a fake portal with %s tv_program rows\n", rows_arg);
    if (tu_portal_start(&portal, pargs) != 0) {
        fprintf(stderr, "bench_serve: cannot start the fake portal (%s)\n", IA_FAKE_PORTAL);
        return -1;
    }
    /* The store dir is the one whose cache.db the server reads; subscriber stays
     * configured as the server's own config has it. */
    struct buf ct = {0};
    buf_printf(&ct,
               "[remote]\nurl = \"%s\"\nusername = \"admin\"\npassword_env = \"IA_BENCH_PW\"\n"
               "[storage]\ndir = \"%s/store\"\n[serve]\nlisten = \"127.0.0.1:0\"\n"
               "[[table]]\nname = \"subscriber\"\nstrategy = \"full\"\nchunk = 5000\n"
               "columns = [\"id\", \"username\", \"password_hash\", \"disabled\", \"balance\", \"email\","
               " \"created_at\", \"updated_at\", \"tags\", \"comment\"]\n"
               "[[table]]\nname = \"tv_program\"\nstrategy = \"full\"\nkey = \"id\"\nchunk = %d\n",
               portal.url, dir, SNAPSHOT_CHUNK);
    char cfg_path[1024];
    snprintf(cfg_path, sizeof cfg_path, "%s/agent.toml", dir);
    if (tu_write_file(cfg_path, ct.p, ct.len) != 0) {
        fprintf(stderr, "bench_serve: cannot write %s\n", cfg_path);
        buf_free(&ct);
        tu_portal_stop(&portal);
        return -1;
    }
    buf_free(&ct);

    struct counter c = {.db_path = db_path};
    c.allowed[0] = 0;
    c.allowed[1] = table_count(db_path);
    c.allowed[2] = snapshot_rows;
    pthread_create(&c.th, NULL, counter_main, &c);

    struct snap_load L = {.port = port, .session = session, .ids = ids, .nids = nids};
    L.measure_ns = mono_ns() + WARMUP_NS;
    atomic_init(&L.snap_end_ns, INT64_MAX);
    atomic_init(&L.stop_ns, INT64_MAX);
    struct snap_worker *w = calloc((size_t)clients, sizeof *w);
    for (int i = 0; i < clients; i++) {
        w[i].L = &L;
        w[i].seed = 2000 + (uint64_t)i;
        pthread_create(&w[i].th, NULL, snap_worker_main, &w[i]);
    }
    fprintf(stderr, "bench_serve: snapshot of tv_program by %s, %d clients of point/page load meanwhile\n",
            IA_AGENT_BIN, clients);
    int64_t spawned = mono_ns();
    /* its stdout to our stderr: stdout is for JSON lines only */
    const char *sync_args[] = {"--log-level", "warn", "sync", "--full", "tv_program", NULL};
    pid_t pid = th_agent_spawn(cfg_path, NULL, STDERR_FILENO, sync_args);
    int agent_exit = pid > 0 ? wait_agent(pid, spawned + (int64_t)SNAPSHOT_TIMEOUT_S * 1000000000) : -1;
    int64_t snap_end = mono_ns();
    atomic_store(&L.snap_end_ns, snap_end);
    int64_t min_stop = L.measure_ns + (int64_t)(2 * seconds * 1e9);
    atomic_store(&L.stop_ns, snap_end > min_stop ? snap_end : min_stop);
    for (int i = 0; i < clients; i++) pthread_join(w[i].th, NULL);
    atomic_store(&c.stop, 1);
    pthread_join(c.th, NULL);
    double snap_s = (double)(snap_end - spawned) / 1e9;
    fprintf(stderr, "bench_serve: agent exited with %d after %.2f s; tv_program has %lld rows\n", agent_exit,
            snap_s, (long long)c.last);

    static const struct {
        const char *name;
        enum kind kind;
    } wl[] = {{"serve_point_lookup", K_POINT}, {"serve_page_100", K_PAGE}};
    for (size_t i = 0; i < 2; i++) {
        double secs = slice_seconds(&L, wl[i].kind, snap_end);
        struct result r = collect(w, clients, wl[i].kind, secs);
        const struct result *base = wl[i].kind == K_POINT ? &idle->point : &idle->page;
        const char *what[3] = {"rps", "p50", "p99"};
        double val[3] = {r.rps, r.p50_ms, r.p99_ms};
        for (int j = 0; j < 3; j++) {
            if (wl[i].kind == K_PAGE && j == 1) continue;      /* page: req/s and p99 */
            printf("{\"bench\":\"%s_%s\",\"unit\":\"%s\",\"value\":%.3f,\"params\":{\"during\":\"snapshot_%s\","
                   "\"target\":\"agent\",\"clients\":%d,\"seconds\":%.2f,\"requests\":%llu,\"errors\":%llu,"
                   "\"table_rows\":%zu,\"snapshot_rows\":%lld,\"snapshot_chunk\":%d}}\n",
                   wl[i].name, what[j], j ? "ms" : "req/s", val[j], snapshot_rows == 1000000 ? "1M" : rows_arg,
                   clients, secs, (unsigned long long)r.requests, (unsigned long long)r.errors, nids, snapshot_rows,
                   SNAPSHOT_CHUNK);
        }
        printf("{\"bench\":\"%s_p99_during_vs_idle\",\"unit\":\"x\",\"value\":%.2f,\"params\":{\"p99_during_ms\":%.3f,"
               "\"p99_idle_ms\":%.3f,\"what\":\"p99 during the snapshot divided by p99 idle\"}}\n",
               wl[i].name, base->p99_ms > 0 ? r.p99_ms / base->p99_ms : 0.0, r.p99_ms, base->p99_ms);
    }
    printf("{\"bench\":\"serve_snapshot_whole_table_checks\",\"unit\":\"checks\",\"value\":%llu,\"params\":{"
           "\"partial_seen\":%llu,\"first_partial_count\":%lld,\"snapshot_seconds\":%.2f,\"agent_exit\":%d,"
           "\"final_count\":%lld,\"count_before\":%lld,\"snapshot_rows\":%lld,\"zero_seen\":%llu,"
           "\"before_seen\":%llu,\"all_rows_seen\":%llu,\"read_errors\":%llu}}\n",
           (unsigned long long)c.checks, (unsigned long long)c.partial, c.partial ? (long long)c.first_partial : -1LL,
           snap_s, agent_exit, (long long)c.last, (long long)c.allowed[1], snapshot_rows,
           (unsigned long long)c.seen[0], (unsigned long long)c.seen[1], (unsigned long long)c.seen[2],
           (unsigned long long)c.errors);
    fflush(stdout);
    for (int i = 0; i < clients; i++) {
        free(w[i].lat[0]);
        free(w[i].lat[1]);
    }
    free(w);
    tu_portal_stop(&portal);
    return agent_exit == 0 && c.partial == 0 ? 0 : -1;
}

/* ---- on_demand misses through the daemon ------------------------------------------ */

struct miss_worker {
    pthread_t th;
    const char *url;                  /* the daemon's /api/jsonsql/ */
    const long long *ids;
    size_t from, to;
    int failed;
};

static void *miss_main(void *arg)
{
    struct miss_worker *w = arg;
    for (size_t i = w->from; i < w->to; i++) {
        char body[256], want[64], *resp = NULL;
        snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"select\",\"params\":{\"data\":"
                 "[\"id\"],\"from\":\"terminal\",\"where\":{\"eq\":[\"id\",%lld]}}}", w->ids[i]);
        snprintf(want, sizeof want, "\"result\":[[%lld]]", w->ids[i]);
        if (tu_http(w->url, body, &resp) != 200 || !strstr(resp, want)) {
            if (!w->failed) fprintf(stderr, "bench_serve: miss of terminal %lld: %.300s\n", w->ids[i], resp ? resp : "");
            w->failed++;
        }
        free(resp);
    }
    return NULL;
}

/* The first `n` ids of `table` on the portal, by key, through its API. Count found. */
static size_t portal_ids(const char *portal_url, const char *table, long long *ids, size_t n)
{
    char url[512], body[256], sid[64] = "", auth[160];
    if (th_portal_login(portal_url, sid, sizeof sid) != 0) return 0;
    snprintf(url, sizeof url, "%s/api/jsonsql/", portal_url);
    snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"select\",\"params\":{\"data\":[\"id\"],"
             "\"from\":\"%s\",\"order_by\":\"id\",\"limit\":%zu}}", table, n);
    snprintf(auth, sizeof auth, "Iptvportal-Authorization: sessionid=%s", sid);
    const char *h[] = {auth, NULL};
    CURL *c = curl_easy_init();
    struct th_resp r = {0};
    size_t got = 0;
    const char *p;
    if (th_http(c, NULL, url, body, strlen(body), h, &r) == 200 && (p = strstr(r.body.p, "\"result\":["))) {
        p += 10;
        while (got < n && (p = strstr(p, "[")) != NULL) {
            char *end;
            long long v = strtoll(p + 1, &end, 10);
            if (end == p + 1) break;
            ids[got++] = v;
            p = end;
        }
    }
    curl_easy_cleanup(c);
    th_resp_free(&r);
    return got;
}

/* `iptv-agent run` on a config of one on_demand table (terminal: no pulls)
 * against portal_url, storage under dir/NAME: its pid, the read end of its stdout
 * in *fd (the caller closes it), its base URL in url. 0 or -1. */
static int spawn_daemon(const char *dir, const char *name, const char *portal_url, pid_t *pid, int *fd, char *url,
                        size_t urllen)
{
    struct buf ct = {0};
    buf_printf(&ct,
               "[remote]\nurl = \"%s\"\nusername = \"admin\"\npassword_env = \"IA_BENCH_PW\"\n"
               "[storage]\ndir = \"%s/%s\"\n[serve]\nlisten = \"127.0.0.1:0\"\n"
               "auth = \"none\"\n"                 /* its clients send no session */
               "[[table]]\nname = \"terminal\"\nstrategy = \"on_demand\"\n"
               "columns = [\"id\", \"subscriber_id\", \"mac_addr\"]\n", portal_url, dir, name);
    char cfg_path[1024];
    snprintf(cfg_path, sizeof cfg_path, "%s/%s.toml", dir, name);
    int fds[2] = {-1, -1};
    *pid = -1;
    *fd = -1;
    if (tu_write_file(cfg_path, ct.p, ct.len) != 0 || pipe(fds) != 0) {
        buf_free(&ct);
        return -1;
    }
    buf_free(&ct);
    const char *run_args[] = {"--log-level", "warn", "run", NULL};
    *pid = th_agent_spawn(cfg_path, NULL, fds[1], run_args);
    close(fds[1]);
    *fd = fds[0];
    /* Its first stdout line is the URL it listens on. */
    size_t got = 0;
    while (got < urllen - 1 && read(fds[0], url + got, 1) == 1 && url[got] != '\n') got++;
    url[got] = '\0';
    if (strncmp(url, "http://", 7) != 0) {
        fprintf(stderr, "bench_serve: the daemon printed no URL\n");
        return -1;
    }
    return 0;
}

static int run_miss_phase(const char *dir, int misses, int clients, int latency_ms)
{
    char lat[32];
    snprintf(lat, sizeof lat, "%d", latency_ms);
    const char *pargs[] = {"--rows", "100", "--latency-ms", lat, NULL};
    struct tu_portal portal;
    if (tu_portal_start(&portal, pargs) != 0) {
        fprintf(stderr, "bench_serve: cannot start the fake portal (%s)\n", IA_FAKE_PORTAL);
        return -1;
    }
    long long *ids = calloc((size_t)misses, sizeof *ids);
    size_t nids = portal_ids(portal.url, "terminal", ids, (size_t)misses);
    int fd = -1, rc = -1;
    pid_t pid = -1;
    char line[200];
    if (nids != (size_t)misses || spawn_daemon(dir, "od", portal.url, &pid, &fd, line, sizeof line) != 0) {
        fprintf(stderr, "bench_serve: on_demand setup failed (%zu of %d terminal ids)\n", nids, misses);
        goto out;
    }
    char url[256];
    snprintf(url, sizeof url, "%s/api/jsonsql/", line);
    fprintf(stderr, "bench_serve: %d on_demand misses from %d clients, portal latency %d ms\n", misses, clients,
            latency_ms);
    struct miss_worker *w = calloc((size_t)clients, sizeof *w);
    int64_t t0 = mono_ns();
    for (int i = 0; i < clients; i++) {
        w[i] = (struct miss_worker){.url = url, .ids = ids, .from = nids * (size_t)i / (size_t)clients,
                                    .to = nids * (size_t)(i + 1) / (size_t)clients};
        pthread_create(&w[i].th, NULL, miss_main, &w[i]);
    }
    int failed = 0;
    for (int i = 0; i < clients; i++) {
        pthread_join(w[i].th, NULL);
        failed += w[i].failed;
    }
    double secs = (double)(mono_ns() - t0) / 1e9;
    free(w);
    char surl[300], *stats = NULL;
    snprintf(surl, sizeof surl, "%s/_fake/stats", portal.url);
    tu_http(surl, NULL, &stats);
    const char *mc = stats ? strstr(stats, "\"max_concurrent\":") : NULL;
    printf("{\"bench\":\"serve_on_demand_misses\",\"unit\":\"misses/s\",\"value\":%.1f,\"params\":{\"misses\":%d,"
           "\"clients\":%d,\"portal_latency_ms\":%d,\"seconds\":%.3f,\"portal_max_concurrent\":%lld,\"failed\":%d}}\n",
           secs > 0 ? misses / secs : 0.0, misses, clients, latency_ms, secs, mc ? atoll(mc + 17) : -1LL, failed);
    fflush(stdout);
    free(stats);
    rc = failed ? -1 : 0;
out:
    if (pid > 0) {
        kill(pid, SIGTERM);
        if (wait_agent(pid, mono_ns() + 30000000000LL) != 0) rc = -1;
    }
    if (fd >= 0) close(fd);
    free(ids);
    tu_portal_stop(&portal);
    return rc;
}

/* ---- pass-through: selects the cache cannot answer, through the daemon ----------------- */

/* Point selects of subscriber (not configured: every one goes to the portal)
 * through the daemon, and the same statements straight to the fake portal,
 * each from `clients` keep-alive connections; the portal delays every /api/
 * reply by latency_ms. Output: serve_pass_point_lookup rps/p50/p99 per target
 * and the agent's overhead (p50 and p99 differences, the rps ratio). */
static int run_pass_phase(const char *dir, int clients, double seconds, int latency_ms)
{
    char lat[32], name[32];
    snprintf(lat, sizeof lat, "%d", latency_ms);
    snprintf(name, sizeof name, "pass%d", latency_ms);
    const char *pargs[] = {"--rows", "100", "--latency-ms", lat, NULL};
    struct tu_portal portal;
    if (tu_portal_start(&portal, pargs) != 0) {
        fprintf(stderr, "bench_serve: cannot start the fake portal (%s)\n", IA_FAKE_PORTAL);
        return -1;
    }
    long long lids[1000];
    int64_t ids[1000];
    size_t nids = portal_ids(portal.url, "subscriber", lids, 1000);
    for (size_t i = 0; i < nids; i++) ids[i] = lids[i];
    char sid[64] = "", line[200];
    int fd = -1, rc = -1;
    pid_t pid = -1;
    if (nids == 0 || th_portal_login(portal.url, sid, sizeof sid) != 0 ||
        spawn_daemon(dir, name, portal.url, &pid, &fd, line, sizeof line) != 0) {
        fprintf(stderr, "bench_serve: pass-through setup failed (%zu subscriber ids)\n", nids);
        goto out;
    }
    fprintf(stderr, "bench_serve: pass-through point selects, %d clients, portal latency %d ms\n", clients, latency_ms);
    struct result a = run_load(atoi(strrchr(line, ':') + 1), K_POINT, NULL, ids, nids, clients, seconds);
    struct result b = run_load(atoi(strrchr(portal.url, ':') + 1), K_POINT, sid, ids, nids, clients, seconds);
    const char *what[3] = {"rps", "p50", "p99"};
    for (int t = 0; t < 2; t++) {
        const struct result *r = t ? &b : &a;
        double val[3] = {r->rps, r->p50_ms, r->p99_ms};
        for (int i = 0; i < 3; i++)
            printf("{\"bench\":\"serve_pass_point_lookup_%s\",\"unit\":\"%s\",\"value\":%.3f,\"params\":{"
                   "\"target\":\"%s\",\"portal_latency_ms\":%d,\"clients\":%d,\"seconds\":%.1f,\"requests\":%llu,"
                   "\"errors\":%llu}}\n", what[i], i ? "ms" : "req/s", val[i], t ? "portal" : "agent", latency_ms,
                   clients, seconds, (unsigned long long)r->requests, (unsigned long long)r->errors);
    }
    printf("{\"bench\":\"serve_pass_overhead_p50\",\"unit\":\"ms\",\"value\":%.3f,\"params\":{"
           "\"portal_latency_ms\":%d,\"clients\":%d,\"what\":\"p50 through the agent minus p50 straight to the portal\"}}\n"
           "{\"bench\":\"serve_pass_overhead_p99\",\"unit\":\"ms\",\"value\":%.3f,\"params\":{"
           "\"portal_latency_ms\":%d,\"clients\":%d,\"what\":\"p99 through the agent minus p99 straight to the portal\"}}\n"
           "{\"bench\":\"serve_pass_vs_portal\",\"unit\":\"x\",\"value\":%.2f,\"params\":{"
           "\"portal_latency_ms\":%d,\"clients\":%d,\"what\":\"agent req/s divided by fake portal req/s\"}}\n",
           a.p50_ms - b.p50_ms, latency_ms, clients, a.p99_ms - b.p99_ms, latency_ms, clients,
           b.rps > 0 ? a.rps / b.rps : 0.0, latency_ms, clients);
    fflush(stdout);
    rc = a.errors || b.errors ? -1 : 0;
    if (rc) fprintf(stderr, "bench_serve: pass-through errors: agent %llu, portal %llu\n",
                    (unsigned long long)a.errors, (unsigned long long)b.errors);
out:
    if (pid > 0) {
        kill(pid, SIGTERM);
        if (wait_agent(pid, mono_ns() + 30000000000LL) != 0) rc = -1;
    }
    if (fd >= 0) close(fd);
    tu_portal_stop(&portal);
    return rc;
}

static int no_pass(void *ctx, const char *table, const char *params_json, serve_select_done_fn done, void *arg)
{
    fprintf(stderr, "bench_serve: a cached read was passed to the portal: %s\n", params_json);
    return -1;
}

int main(int argc, char **argv)
{
    int clients = 4;
    double seconds = 3;
    const char *scale = "4";
    long long snapshot_rows = 1000000;
    int misses = 200, miss_clients = 20, miss_latency_ms = 36, pass = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--clients")) clients = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--scale")) scale = argv[i + 1];
        else if (!strcmp(argv[i], "--snapshot-rows")) snapshot_rows = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--misses")) misses = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--miss-clients")) miss_clients = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--miss-latency-ms")) miss_latency_ms = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--pass")) pass = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "usage: bench_serve [--clients N] [--seconds S] [--scale S] [--snapshot-rows N]\n"
                            "                   [--misses N] [--miss-clients N] [--miss-latency-ms N] [--pass 0|1]\n");
            return 2;
        }
    }
    if (clients < 1 || seconds <= 0 || snapshot_rows < 0 || misses < 0 || miss_clients < 1 || miss_latency_ms < 0) {
        fprintf(stderr, "bench_serve: --clients and --seconds must be positive, --snapshot-rows not negative\n");
        return 2;
    }
    log_init(LOG_WARN, LOG_TEXT);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char *dir = tu_tmpdir("bench_serve");
    struct tu_portal portal;
    const char *pargs[] = {"--rows", "1000", "--scale", scale, NULL};
    if (!dir || tu_portal_start(&portal, pargs) != 0) {
        fprintf(stderr, "bench_serve: cannot start the fake portal (%s)\n", IA_FAKE_PORTAL);
        return 1;
    }
    struct buf ct = {0};
    buf_printf(&ct,
               "[remote]\nurl = \"%s\"\nusername = \"admin\"\npassword_env = \"IA_BENCH_PW\"\n"
               "[storage]\ndir = \"%s/store\"\n[serve]\nlisten = \"127.0.0.1:0\"\n"
               "[[table]]\nname = \"subscriber\"\nstrategy = \"full\"\nchunk = 5000\n"
               "columns = [\"id\", \"username\", \"password_hash\", \"disabled\", \"balance\", \"email\","
               " \"created_at\", \"updated_at\", \"tags\", \"comment\"]\n",
               portal.url, dir);
    setenv("IA_BENCH_PW", "secret", 1);
    struct config cfg;
    char err[2048];
    struct store st;
    if (config_parse("bench.toml", ct.p, ct.len, &cfg, err, sizeof err) != 0 ||
        store_open(&cfg, 1, &st, err, sizeof err) != 0) {
        fprintf(stderr, "bench_serve: %s\n", err);
        return 1;
    }
    remote *rm = remote_from_config(&cfg, err, sizeof err);
    struct pull_ctx pc = {.cfg = &cfg, .remote = rm, .jw = st.jw, .rp = st.rp};
    struct pull_result pr = {0};
    if (!rm || pull_table(&pc, &cfg.tables[0], 1, &pr) != 0) {
        fprintf(stderr, "bench_serve: pulling subscriber: %s\n", rm ? pr.error : err);
        return 1;
    }
    fprintf(stderr, "bench_serve: cache.db has %llu subscriber rows (%.2f s to pull)\n",
            (unsigned long long)pr.rows, pr.seconds);
    remote_free(rm);
    char db_path[1024];
    snprintf(db_path, sizeof db_path, "%s", st.db_path);
    store_close(&st);

    /* every cached id, for random keys */
    sqlite3 *db;
    sqlite3_stmt *q;
    int64_t *ids = malloc(sizeof *ids * (size_t)(pr.rows + 1));
    size_t nids = 0;
    sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL);
    sqlite3_prepare_v2(db, "SELECT id FROM subscriber ORDER BY id", -1, &q, NULL);
    while (sqlite3_step(q) == SQLITE_ROW && nids <= pr.rows) ids[nids++] = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(db);

    char sid[64] = "";
    if (th_portal_login(portal.url, sid, sizeof sid) != 0) {
        fprintf(stderr, "bench_serve: no portal session\n");
        return 1;
    }
    int portal_port = atoi(strrchr(portal.url, ':') + 1);

    struct th_srv v;
    /* Clients log in as a portal client does ([serve] auth = "portal"). A
     * select hook as the daemon has: cached reads then pay for the check that
     * they need not pass (it is never called: subscriber is cached). */
    struct serve_opts so = {.cfg = &cfg, .db_path = db_path, .username = "admin", .password = "secret"};
    struct serve_hooks hooks = {.select = no_pass};
    if (th_srv_start(&v, &so, &hooks, err, sizeof err) != 0) {
        fprintf(stderr, "bench_serve: %s\n", err);
        return 1;
    }
    int port = serve_port(v.s);
    char asid[64] = "";
    if (th_portal_login(v.url, asid, sizeof asid) != 0) {
        fprintf(stderr, "bench_serve: authorize_user on the agent failed\n");
        return 1;
    }

    static const struct {
        const char *name;
        enum kind kind;
    } workloads[] = {{"serve_point_lookup", K_POINT}, {"serve_page_100", K_PAGE}, {"serve_sql_point_lookup", K_SQL}};
    struct idle idle = {0};
    for (size_t i = 0; i < sizeof workloads / sizeof workloads[0]; i++) {
        fprintf(stderr, "bench_serve: %s against the agent, %d clients, %.1f s\n", workloads[i].name, clients, seconds);
        struct result a = run_load(port, workloads[i].kind, asid, ids, nids, clients, seconds);
        emit(workloads[i].name, "agent", &a, clients, seconds, nids);
        if (workloads[i].kind == K_POINT) idle.point = a;
        if (workloads[i].kind == K_PAGE) idle.page = a;
        if (workloads[i].kind == K_SQL) continue;
        fprintf(stderr, "bench_serve: %s against the fake portal\n", workloads[i].name);
        struct result b = run_load(portal_port, workloads[i].kind, sid, ids, nids, clients, seconds);
        emit(workloads[i].name, "portal", &b, clients, seconds, nids);
        printf("{\"bench\":\"%s_vs_portal\",\"unit\":\"x\",\"value\":%.2f,\"params\":{\"clients\":%d,"
               "\"what\":\"agent req/s divided by fake portal req/s\"}}\n",
               workloads[i].name, b.rps > 0 ? a.rps / b.rps : 0.0, clients);
        fflush(stdout);
    }

    int rc = 0;
    if (snapshot_rows > 0 &&
        run_snapshot_phase(dir, db_path, port, asid, ids, nids, clients, seconds, snapshot_rows, &idle) != 0)
        rc = 1;
    if (misses > 0 && run_miss_phase(dir, misses, miss_clients, miss_latency_ms) != 0) rc = 1;
    for (int i = 0; pass && i < 2; i++)
        if (run_pass_phase(dir, clients, seconds, i ? 50 : 0) != 0) rc = 1;

    if (th_srv_stop(&v) != 0) return 1;
    tu_portal_stop(&portal);
    config_free(&cfg);
    buf_free(&ct);
    free(ids);
    tu_rmrf(dir);
    free(dir);
    curl_global_cleanup();
    return rc;
}
