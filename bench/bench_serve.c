/* bench_serve.c — the local API (agent/serve.h) under keep-alive load, against
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
 * usage: bench_serve [--clients N] [--seconds S] [--scale S]
 *   defaults: 4 clients, 3 seconds per run, scale 4. */
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include <arpa/inet.h>

#include "agent/buf.h"
#include "agent/config.h"
#include "agent/log.h"
#include "agent/pull.h"
#include "agent/remote.h"
#include "agent/serve.h"
#include "agent/store.h"
#include "tests/testutil.h"

#define RESP_CAP (4 << 20)
#define WARMUP_NS 300000000LL

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
    const char *session;        /* portal session id, NULL for the agent */
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
        long long id = (long long)L->ids[rnd(&w->seed) % L->nids];
        buf_reset(&body);
        buf_reset(&req);
        if (L->kind == K_POINT)
            buf_printf(&body, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"select\",\"params\":{\"data\":[\"*\"],"
                              "\"from\":\"subscriber\",\"where\":{\"eq\":[\"id\",%lld]}}}", id);
        else if (L->kind == K_PAGE)
            buf_printf(&body, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"select\",\"params\":{\"data\":[\"*\"],"
                              "\"from\":\"subscriber\",\"where\":{\"gt\":[\"id\",%lld]},\"order_by\":\"id\",\"limit\":100}}",
                       id);
        else
            buf_printf(&body, "{\"sql\":\"SELECT * FROM subscriber WHERE id = ?\",\"params\":[%lld]}", id);
        buf_printf(&req, "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n",
                   L->kind == K_SQL ? "/sql" : "/api/jsonsql/", body.len);
        if (L->session) buf_printf(&req, "Iptvportal-Authorization: sessionid=%s\r\n", L->session);
        buf_puts(&req, "\r\n");
        buf_append(&req, body.p, body.len);
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
        int ok = st == 200 && (L->kind == K_SQL ? strstr(rb, "\"rows\":[[") != NULL : strstr(rb, "\"result\":[[") != NULL);
        if (!ok) w->errors++;
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

/* ---- the server thread ------------------------------------------------------------------ */

struct srv {
    struct event_base *base;
    serve *s;
    pthread_t th;
    int pipefd[2];
    struct event *stop;
};

static void on_stop(evutil_socket_t fd, short what, void *arg) { event_base_loopbreak(arg); }

static void *loop_main(void *arg)
{
    event_base_dispatch(((struct srv *)arg)->base);
    return NULL;
}

int main(int argc, char **argv)
{
    int clients = 4;
    double seconds = 3;
    const char *scale = "4";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--clients")) clients = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--scale")) scale = argv[i + 1];
        else {
            fprintf(stderr, "usage: bench_serve [--clients N] [--seconds S] [--scale S]\n");
            return 2;
        }
    }
    if (clients < 1 || seconds <= 0) {
        fprintf(stderr, "bench_serve: --clients and --seconds must be positive\n");
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

    /* a portal session */
    char url[512], *resp = NULL;
    snprintf(url, sizeof url, "%s/api/jsonrpc/", portal.url);
    tu_http(url, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"authorize_user\","
                 "\"params\":{\"username\":\"admin\",\"password\":\"secret\"}}", &resp);
    char sid[64] = "";
    const char *p = resp ? strstr(resp, "\"session_id\":\"") : NULL;
    if (p) snprintf(sid, sizeof sid, "%.32s", p + 14);
    free(resp);
    int portal_port = atoi(strrchr(portal.url, ':') + 1);

    struct srv v = {0};
    v.base = event_base_new();
    if (pipe(v.pipefd) != 0) return 1;
    v.stop = event_new(v.base, v.pipefd[0], EV_READ, on_stop, v.base);
    event_add(v.stop, NULL);
    struct serve_opts so = {.cfg = &cfg, .db_path = db_path};
    v.s = serve_new(v.base, &so, NULL, err, sizeof err);
    if (!v.s || !sid[0]) {
        fprintf(stderr, "bench_serve: %s\n", v.s ? "no portal session" : err);
        return 1;
    }
    pthread_create(&v.th, NULL, loop_main, &v);
    int port = serve_port(v.s);

    static const struct {
        const char *name;
        enum kind kind;
    } workloads[] = {{"serve_point_lookup", K_POINT}, {"serve_page_100", K_PAGE}, {"serve_sql_point_lookup", K_SQL}};
    for (size_t i = 0; i < sizeof workloads / sizeof workloads[0]; i++) {
        fprintf(stderr, "bench_serve: %s against the agent, %d clients, %.1f s\n", workloads[i].name, clients, seconds);
        struct result a = run_load(port, workloads[i].kind, NULL, ids, nids, clients, seconds);
        emit(workloads[i].name, "agent", &a, clients, seconds, nids);
        if (workloads[i].kind == K_SQL) continue;
        fprintf(stderr, "bench_serve: %s against the fake portal\n", workloads[i].name);
        struct result b = run_load(portal_port, workloads[i].kind, sid, ids, nids, clients, seconds);
        emit(workloads[i].name, "portal", &b, clients, seconds, nids);
        printf("{\"bench\":\"%s_vs_portal\",\"unit\":\"x\",\"value\":%.2f,\"params\":{\"clients\":%d,"
               "\"what\":\"agent req/s divided by fake portal req/s\"}}\n",
               workloads[i].name, b.rps > 0 ? a.rps / b.rps : 0.0, clients);
        fflush(stdout);
    }

    if (write(v.pipefd[1], "x", 1) != 1) return 1;
    pthread_join(v.th, NULL);
    serve_free(v.s);
    event_free(v.stop);
    event_base_free(v.base);
    close(v.pipefd[0]);
    close(v.pipefd[1]);
    tu_portal_stop(&portal);
    config_free(&cfg);
    buf_free(&ct);
    free(ids);
    tu_rmrf(dir);
    free(dir);
    curl_global_cleanup();
    return 0;
}
