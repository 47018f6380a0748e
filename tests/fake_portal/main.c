/* main.c — iptv-fake-portal: a stand-in IPTVPortal for tests, benchmarks and the
 * README demo. Serves generated data (gen.h) over protocol.md (server.h) on
 * 127.0.0.1, printing its URL as the first line of stdout once it listens.
 *
 *   iptv-fake-portal [serve options]
 *   iptv-fake-portal mutate --db FILE [--table T] [--updates N] [--inserts N]
 *                           [--deletes N] [--same-ts] [--seed N] */
#include "tests/fake_portal/gen.h"
#include "tests/fake_portal/server.h"
#include "tests/fake_portal/rpc.h"
#include "agent/base/mem.h"

#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char usage[] =
    "usage: iptv-fake-portal [options]            serve the fake portal on 127.0.0.1\n"
    "       iptv-fake-portal mutate --db FILE [options]\n"
    "\n"
    "Serve options:\n"
    "  --port N             listen port (default 0: ephemeral; the URL is printed first)\n"
    "  --db FILE            keep data in FILE (generated when missing); default in memory\n"
    "  --seed N             data and session seed (default 1)\n"
    "  --rows N             tv_program rows (default 200000)\n"
    "  --scale N            multiplier for the other tables (default 1)\n"
    "  --user NAME          accepted username (default admin)\n"
    "  --password PW        accepted password (default secret)\n"
    "  --latency-ms N       delay every /api/ reply (GET /_fake/stats: max_concurrent,\n"
    "                       the most replies delayed at once)\n"
    "  --error-rate P       fraction of requests answered HTTP 500\n"
    "  --reset-rate P       fraction of connections reset without a reply\n"
    "  --truncate-rate P    fraction of replies cut short (Content-Length not met)\n"
    "  --garbage-rate P     fraction of replies whose JSON is cut in half (HTTP 200)\n"
    "  --fault-seed N       seed for fault rolls (default: --seed)\n"
    "  --session-ttl-ms N   sessions expire after N ms (default: never)\n"
    "  --session-error S    how an expired session is refused: jsonrpc|http401|http403\n"
    "  --forbid TABLE       answer HTTP 403 for TABLE (repeatable)\n"
    "  --page-cap N         never return more than N rows per select\n"
    "  --write-result R     count|rows: how a write without returning is answered\n"
    "                       (count: \"result\": N, the row count, as PostgreSQL; rows: [])\n"
    "Mutate options:\n"
    "  --table T            only this table (default: subscriber, terminal, tv_program)\n"
    "  --updates N --inserts N --deletes N   how many rows of each change\n"
    "  --same-ts            give every changed row one identical updated_at\n"
    "  --seed N             which rows change (default 1)\n"
    "Admin routes at run time: POST /_fake/faults, /_fake/mutate, /_fake/expire; GET /_fake/stats.\n"
    "Fault queue items (POST /_fake/faults {\"queue\":[...]}): ok, 500 (before running the\n"
    "statement), 500after, reset, drop (run it, then close without a byte), truncate,\n"
    "garbage, expire. {\"write_queue\":[...]} queues the same (but expire) for write\n"
    "statements only (insert, update, delete): logins and selects pass them by.\n";

static int parse_rate(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (*end || end == s || v < 0 || v > 1) return -1;
    *out = v;
    return 0;
}

static void on_signal(evutil_socket_t fd, short what, void *arg) { event_base_loopexit(arg, NULL); }

static sqlite3 *open_db(const char *path, const struct fakegen_opts *g, char *err, size_t errlen)
{
    struct stat st;
    int fresh = !path || stat(path, &st) != 0 || st.st_size == 0;
    sqlite3 *db = NULL;
    if (sqlite3_open(path ? path : ":memory:", &db) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path ? path : ":memory:", sqlite3_errmsg(db));
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 10000);
    if (fresh && fakegen_create(db, g, err, errlen) != 0) {
        sqlite3_close(db);
        return NULL;
    }
    if (path) sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
    return db;
}

int main(int argc, char **argv)
{
    struct fakegen_opts g = {.seed = 1, .tv_program_rows = 200000, .scale = 1};
    struct fake_server_opts so = {.username = "admin", .password = "secret"};
    struct fakegen_mutation m = {.seed = 1};
    const char *db_path = NULL;
    char *forbid[64];
    int64_t port = 0, fault_seed = 0, v;
    int mutate = 0, i = 1;
    if (argc > 1 && strcmp(argv[1], "mutate") == 0) { mutate = 1; i = 2; }
    for (; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { fputs(usage, stdout); return 0; }
        else if (!strcmp(a, "--same-ts")) { m.same_ts = 1; continue; }
        else if (!val) ok = 0;
        else if (!strcmp(a, "--port")) ok = !portal_parse_i64(val, &port) && port >= 0 && port < 65536;
        else if (!strcmp(a, "--db")) db_path = val;
        else if (!strcmp(a, "--seed")) { ok = !portal_parse_i64(val, &v); g.seed = m.seed = (uint64_t)v; }
        else if (!strcmp(a, "--rows")) ok = !portal_parse_i64(val, &g.tv_program_rows) && g.tv_program_rows >= 0;
        else if (!strcmp(a, "--scale")) ok = !portal_parse_i64(val, &g.scale) && g.scale >= 1;
        else if (!strcmp(a, "--user")) so.username = val;
        else if (!strcmp(a, "--password")) so.password = val;
        else if (!strcmp(a, "--latency-ms")) ok = !portal_parse_i64(val, &so.faults.latency_ms);
        else if (!strcmp(a, "--error-rate")) ok = !parse_rate(val, &so.faults.error_rate);
        else if (!strcmp(a, "--reset-rate")) ok = !parse_rate(val, &so.faults.reset_rate);
        else if (!strcmp(a, "--truncate-rate")) ok = !parse_rate(val, &so.faults.truncate_rate);
        else if (!strcmp(a, "--garbage-rate")) ok = !parse_rate(val, &so.faults.garbage_rate);
        else if (!strcmp(a, "--fault-seed")) ok = !portal_parse_i64(val, &fault_seed);
        else if (!strcmp(a, "--session-ttl-ms")) ok = !portal_parse_i64(val, &so.faults.session_ttl_ms);
        else if (!strcmp(a, "--session-error")) ok = !fake_parse_session_error(val, &so.faults.session_error);
        else if (!strcmp(a, "--forbid")) { ok = so.faults.nforbid < 64; if (ok) forbid[so.faults.nforbid++] = (char *)val; }
        else if (!strcmp(a, "--page-cap")) ok = !portal_parse_i64(val, &so.faults.page_cap);
        else if (!strcmp(a, "--write-result")) {
            ok = !strcmp(val, "count") || !strcmp(val, "rows");
            so.faults.write_count = !strcmp(val, "count");
        }
        else if (!strcmp(a, "--table")) m.table = val;
        else if (!strcmp(a, "--updates")) ok = !portal_parse_i64(val, &m.updates);
        else if (!strcmp(a, "--inserts")) ok = !portal_parse_i64(val, &m.inserts);
        else if (!strcmp(a, "--deletes")) ok = !portal_parse_i64(val, &m.deletes);
        else {
            fprintf(stderr, "iptv-fake-portal: unknown option %s\n%s", a, usage);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "iptv-fake-portal: %s needs a valid value\n", a);
            return 2;
        }
        i++;
    }
    so.faults.forbid = forbid;
    so.seed = fault_seed ? (uint64_t)fault_seed : g.seed;

    char err[512];
    if (mutate) {
        if (!db_path) { fprintf(stderr, "iptv-fake-portal mutate: --db FILE is required\n"); return 2; }
        sqlite3 *db = open_db(db_path, &g, err, sizeof err);
        struct fakegen_mutate_result r = {0};
        if (!db || fakegen_mutate(db, &m, &r, err, sizeof err) != 0) {
            fprintf(stderr, "iptv-fake-portal mutate: %s\n", err);
            sqlite3_close(db);
            return 1;
        }
        printf("{\"updated\":%lld,\"inserted\":%lld,\"deleted\":%lld,\"ts\":\"%s\"}\n",
               (long long)r.updated, (long long)r.inserted, (long long)r.deleted, r.ts);
        sqlite3_close(db);
        return 0;
    }

    signal(SIGPIPE, SIG_IGN);
    sqlite3 *db = open_db(db_path, &g, err, sizeof err);
    if (!db) { fprintf(stderr, "iptv-fake-portal: %s\n", err); return 1; }
    struct event_base *base = event_base_new();
    fake_server *srv = fake_server_new(base, db, (int)port, &so, err, sizeof err);
    if (!srv) {
        fprintf(stderr, "iptv-fake-portal: %s\n", err);
        event_base_free(base);
        sqlite3_close(db);
        return 1;
    }
    struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, base);
    struct event *sigint = evsignal_new(base, SIGINT, on_signal, base);
    event_add(sigterm, NULL);
    event_add(sigint, NULL);
    printf("http://127.0.0.1:%d\n", fake_server_port(srv));
    fflush(stdout);
    event_base_dispatch(base);
    event_free(sigterm);
    event_free(sigint);
    fake_server_free(srv);
    event_base_free(base);
    sqlite3_close(db);
    return 0;
}
