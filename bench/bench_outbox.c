/* bench_outbox.c — queued writes/s through the daemon while the portal is down
 * (issue 13 item 10): a fake portal (--rows 300) is pulled once by a real
 * `iptv-agent run`, then stopped; clients then POST updates of package rows to
 * /api/jsonsql/ (each answered only once its op is durable and applied: group
 * commit shares the fsyncs), from 1 client and from --clients concurrent ones
 * (threads, one libcurl handle each: keep-alive). One JSON line per result,
 * with the daemon's peak RSS (VmHWM) after each run.
 * Then reconciliation: the portal comes back on its port (its data kept in a
 * file, so every op's pre-image still matches), first at 0 ms and then, after
 * going down again, at --latency-ms (default 50); each prints the sender's
 * ops/s over the next --recon N ops (default 100), timed from its first
 * finished op to its Nth (the reconnect probe's wait is not the sender's rate).
 * Flags: --writes N per client (default 300), --clients C (default 16). */
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include "agent/base/buf.h"
#include "tests/harness/harness.h"
#include "tests/testutil.h"

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

struct client {
    pthread_t th;
    const char *url;
    int id, n, failed;
};

static void *client_main(void *arg)
{
    struct client *c = arg;
    CURL *h = curl_easy_init();   /* one handle for all its requests: keep-alive */
    const char *hdr[] = {"Content-Type: application/json", NULL};
    for (int i = 0; i < c->n; i++) {
        char body[300];
        int n = snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"update\",\"params\":"
                         "{\"table\":\"package\",\"set\":{\"name\":\"c%d-%d\"},\"where\":{\"eq\":[\"id\",%d]}}}",
                         i, c->id, i, 1 + (c->id * 7 + i) % 20);
        struct th_resp r = {0};
        long st = th_http(h, NULL, c->url, body, (size_t)n, hdr, &r);
        if (st != 200 || !r.body.p || !strstr(r.body.p, "\"result\"")) {
            if (!c->failed) fprintf(stderr, "bench_outbox: write: HTTP %ld %.300s\n", st, r.body.p ? r.body.p : "");
            c->failed++;
        }
        th_resp_free(&r);
    }
    curl_easy_cleanup(h);
    return NULL;
}

static long peak_rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kb = atol(line + 6);
    if (f) fclose(f);
    return kb;
}

static long long count_rows(const char *db_path, const char *sql)
{
    sqlite3 *db = NULL;
    long long n = -1;
    sqlite3_stmt *st = NULL;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

/* Ops no longer pending (sent and done, or a conflict): the bench's progress. */
static long long ops_pending(const char *db_path)
{
    return count_rows(db_path, "SELECT count(*) FROM _agent_outbox WHERE state IN ('pending', 'sent')");
}

/* Start the portal on `port` with its data in `pdb`, time the sender over the
 * next `n` ops, stop the portal. */
static int run_recon(const char *db_path, const char *pdb, const char *port, int latency_ms, int n)
{
    char lat[32];
    snprintf(lat, sizeof lat, "%d", latency_ms);
    const char *args[] = {"--rows", "300", "--db", pdb, "--port", port, "--latency-ms", lat, NULL};
    struct tu_portal p;
    long long before = ops_pending(db_path);
    if (before < n) n = (int)before;
    if (tu_portal_start(&p, args) != 0) {
        fprintf(stderr, "bench_outbox: cannot restart the portal on port %s\n", port);
        return -1;
    }
    int64_t deadline = mono_ns() + 600000000000LL, t_first = 0, t_end = 0;
    long long at_first = 0, left = before;
    while (mono_ns() < deadline) {
        left = ops_pending(db_path);
        if (!t_first && left < before) {
            t_first = mono_ns();
            at_first = left;
        }
        if (before - left >= n) {
            t_end = mono_ns();
            break;
        }
        usleep(5000);
    }
    long long conflicts = count_rows(db_path, "SELECT count(*) FROM _agent_outbox WHERE state = 'conflict'");
    tu_portal_stop(&p);
    if (!t_end) {
        fprintf(stderr, "bench_outbox: %lld of %d ops reconciled within 600 s\n", before - left, n);
        return -1;
    }
    double secs = (double)(t_end - t_first) / 1e9;
    long long done = at_first - left;   /* ops finished after the first one */
    printf("{\"bench\":\"outbox_reconcile\",\"unit\":\"ops/s\",\"value\":%.1f,\"params\":{\"latency_ms\":%d,"
           "\"ops\":%d,\"seconds\":%.3f,\"kind\":\"update\",\"conflicts\":%lld}}\n",
           secs > 0 ? (double)done / secs : 0.0, latency_ms, n, secs, conflicts);
    fflush(stdout);
    return 0;
}

static int run_writes(const char *url, pid_t pid, int clients, int per)
{
    struct client *c = calloc((size_t)clients, sizeof *c);
    int64_t t0 = mono_ns();
    for (int i = 0; i < clients; i++) {
        c[i] = (struct client){.url = url, .id = i, .n = per};
        pthread_create(&c[i].th, NULL, client_main, &c[i]);
    }
    int failed = 0;
    for (int i = 0; i < clients; i++) {
        pthread_join(c[i].th, NULL);
        failed += c[i].failed;
    }
    double secs = (double)(mono_ns() - t0) / 1e9;
    free(c);
    int total = clients * per;
    printf("{\"bench\":\"outbox_queued_writes\",\"unit\":\"writes/s\",\"value\":%.1f,\"params\":{\"clients\":%d,"
           "\"writes\":%d,\"seconds\":%.3f,\"failed\":%d,\"daemon_peak_rss_kb\":%ld}}\n",
           secs > 0 ? total / secs : 0.0, clients, total, secs, failed, peak_rss_kb(pid));
    fflush(stdout);
    return failed ? -1 : 0;
}

int main(int argc, char **argv)
{
    int per = 300, clients = 16, latency = 50, recon = 100;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--writes") && i + 1 < argc) per = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--clients") && i + 1 < argc) clients = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--latency-ms") && i + 1 < argc) latency = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--recon") && i + 1 < argc) recon = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_outbox [--writes N per client] [--clients C] [--latency-ms L] [--recon N]\n");
            return 2;
        }
    }
    if (per < 1 || clients < 1 || latency < 0 || recon < 1) {
        fprintf(stderr, "bench_outbox: --writes, --clients and --recon must be at least 1, --latency-ms at least 0\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_ALL);
    setenv("IA_BENCH_PW", "secret", 1);
    char *dir = tu_tmpdir("bench_outbox");
    char pdb[1024];
    snprintf(pdb, sizeof pdb, "%s/portal.db", dir ? dir : ".");
    const char *pargs[] = {"--rows", "300", "--db", pdb, NULL};
    struct tu_portal portal;
    if (!dir || tu_portal_start(&portal, pargs) != 0) {
        fprintf(stderr, "bench_outbox: cannot start the fake portal (%s)\n", IA_FAKE_PORTAL);
        return 1;
    }
    struct buf ct = {0};
    buf_printf(&ct,
               "[remote]\nurl = \"%s\"\nusername = \"admin\"\npassword_env = \"IA_BENCH_PW\"\n"
               "[storage]\ndir = \"%s/st\"\n[serve]\nlisten = \"127.0.0.1:0\"\ntokenless_writes = \"loopback\"\n"
               "auth = \"none\"\n"   /* it measures queued writes: its clients send no session */
               "[[table]]\nname = \"package\"\nstrategy = \"full\"\nttl = \"1h\"\ncolumns = [\"id\", \"name\", \"paid\"]\n",
               portal.url, dir);
    char cfg_path[1024], db_path[1024];
    snprintf(cfg_path, sizeof cfg_path, "%s/agent.toml", dir);
    snprintf(db_path, sizeof db_path, "%s/st/cache.db", dir);
    int fds[2] = {-1, -1}, rc = 1;
    pid_t pid = -1;
    if (tu_write_file(cfg_path, ct.p, ct.len) != 0 || pipe(fds) != 0) {
        fprintf(stderr, "bench_outbox: setup failed\n");
        goto out;
    }
    const char *run_args[] = {"--log-level", "warn", "run", NULL};
    pid = th_agent_spawn(cfg_path, NULL, fds[1], run_args);
    close(fds[1]);
    fds[1] = -1;
    char line[200];
    size_t got = 0;
    while (got < sizeof line - 1 && read(fds[0], line + got, 1) == 1 && line[got] != '\n') got++;
    line[got] = '\0';
    if (strncmp(line, "http://", 7) != 0) {
        fprintf(stderr, "bench_outbox: the daemon printed no URL\n");
        goto out;
    }
    /* The first pull, then the portal goes away: every write is queued. */
    int64_t deadline = mono_ns() + 8000000000LL;
    while (count_rows(db_path, "SELECT count(*) FROM package") < 20 && mono_ns() < deadline) usleep(50000);
    if (count_rows(db_path, "SELECT count(*) FROM package") < 20) {
        fprintf(stderr, "bench_outbox: the daemon did not pull package within 8 s\n");
        goto out;
    }
    tu_portal_stop(&portal);
    portal.pid = 0;
    const char *port = strrchr(portal.url, ':') + 1;
    char url[256];
    snprintf(url, sizeof url, "%s/api/jsonsql/", line);
    fprintf(stderr, "bench_outbox: portal stopped; %d writes from 1 client, then from %d clients\n", per, clients);
    rc = run_writes(url, pid, 1, per) | run_writes(url, pid, clients, per) ? 1 : 0;
    long long ops = count_rows(db_path, "SELECT count(*) FROM _agent_outbox");
    if (ops != (long long)per * (clients + 1)) {
        fprintf(stderr, "bench_outbox: %lld ops in _agent_outbox, expected %d\n", ops, per * (clients + 1));
        rc = 1;
    }
    if (rc == 0) rc = run_recon(db_path, pdb, port, 0, recon) | run_recon(db_path, pdb, port, latency, recon) ? 1 : 0;
out:
    if (pid > 0) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
    }
    if (fds[0] >= 0) close(fds[0]);
    if (portal.pid > 0) tu_portal_stop(&portal);
    buf_free(&ct);
    if (rc == 0) tu_rmrf(dir);
    else fprintf(stderr, "bench_outbox: left %s\n", dir);
    free(dir);
    curl_global_cleanup();
    return rc;
}
