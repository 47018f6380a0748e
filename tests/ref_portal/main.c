/* main.c — iptv-ref-portal: a reference IPTVPortal backed by a real PostgreSQL,
 * the independent oracle for the agent's JSONSQL (README.md, "The
 * reference portal").
 *
 * iptv-fake-portal answers from SQLite through agent/jsonsql, so a test comparing
 * the agent with it compares the compiler with itself. This one loads the same
 * generated data (load.h) into PostgreSQL and translates JSONSQL on its own,
 * simply (translate.h), so PostgreSQL decides the semantics: coercion of string
 * literals against typed columns, NULL ordering, integer division, regexps, value
 * types of aggregates. It serves protocol.md's login, select, insert, update and
 * delete (server.h) on 127.0.0.1 and prints its URL as the first line of stdout
 * once it listens, as iptv-fake-portal does.
 *
 * Not supported (refused with a JSON-RPC error naming it, never guessed):
 * order_by directions, distinct as a function other than as the first data item
 * or inside an aggregate, functions outside the list in translate.c, other
 * methods, the fake portal's faults and /_fake/ admin routes.
 *
 *   iptv-ref-portal --pg CONNINFO [options]   (tests/ref_portal/pg.sh starts a server) */
#include "tests/ref_portal/load.h"
#include "tests/ref_portal/server.h"
#include "tests/fake_portal/rpc.h"

#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: iptv-ref-portal --pg CONNINFO [options]   serve the reference portal on 127.0.0.1\n"
    "\n"
    "  --pg CONNINFO        libpq connection string of a scratch database (its tables\n"
    "                       named like the generated ones are dropped and recreated)\n"
    "  --port N             listen port (default 0: ephemeral; the URL is printed first)\n"
    "  --seed N             data and session seed (default 1)\n"
    "  --rows N             tv_program rows (default 200000)\n"
    "  --scale N            multiplier for the other tables (default 1)\n"
    "  --user NAME          accepted username (default admin)\n"
    "  --password PW        accepted password (default secret)\n"
    "  --page-cap N         at most N rows per select (default 5000; 0: no cap)\n"
    "  --session-ttl-ms N   sessions expire after N ms (default: never)\n";

static void on_signal(evutil_socket_t fd, short what, void *arg) { event_base_loopexit(arg, NULL); }

int main(int argc, char **argv)
{
    struct fakegen_opts g = {.seed = 1, .tv_program_rows = FAKEGEN_DEFAULT_TV_PROGRAM_ROWS, .scale = 1};
    struct ref_server_opts so = {.username = "admin", .password = "secret", .page_cap = 5000};
    const char *conninfo = NULL;
    int64_t port = 0, v;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { fputs(usage, stdout); return 0; }
        else if (!val) ok = 0;
        else if (!strcmp(a, "--pg")) conninfo = val;
        else if (!strcmp(a, "--port")) ok = !portal_parse_i64(val, &port) && port >= 0 && port < 65536;
        else if (!strcmp(a, "--seed")) { ok = !portal_parse_i64(val, &v); g.seed = so.seed = (uint64_t)v; }
        else if (!strcmp(a, "--rows")) ok = !portal_parse_i64(val, &g.tv_program_rows) && g.tv_program_rows >= 0;
        else if (!strcmp(a, "--scale")) ok = !portal_parse_i64(val, &g.scale) && g.scale >= 1;
        else if (!strcmp(a, "--user")) so.username = val;
        else if (!strcmp(a, "--password")) so.password = val;
        else if (!strcmp(a, "--page-cap")) ok = !portal_parse_i64(val, &so.page_cap) && so.page_cap >= 0;
        else if (!strcmp(a, "--session-ttl-ms")) ok = !portal_parse_i64(val, &so.session_ttl_ms) && so.session_ttl_ms >= 0;
        else {
            fprintf(stderr, "iptv-ref-portal: unknown option %s\n%s", a, usage);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "iptv-ref-portal: %s needs a valid value\n", a);
            return 2;
        }
        i++;
    }
    if (!conninfo) {
        fprintf(stderr, "iptv-ref-portal: --pg CONNINFO is required\n%s", usage);
        return 2;
    }
    if (!so.seed) so.seed = 1;

    signal(SIGPIPE, SIG_IGN);
    char err[1024];
    int rc = 1;
    struct ref_catalog cat = {0};
    struct event_base *base = NULL;
    ref_server *srv = NULL;
    PGconn *pg = PQconnectdb(conninfo);
    if (PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "iptv-ref-portal: PostgreSQL at \"%s\": %s", conninfo, PQerrorMessage(pg));
        goto out;
    }
    if (ref_load(pg, &g, &cat, err, sizeof err) != 0) {
        fprintf(stderr, "iptv-ref-portal: loading the data: %s\n", err);
        goto out;
    }
    base = event_base_new();
    srv = ref_server_new(base, pg, &cat, (int)port, &so, err, sizeof err);
    if (!srv) {
        fprintf(stderr, "iptv-ref-portal: %s\n", err);
        goto out;
    }
    struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, base);
    struct event *sigint = evsignal_new(base, SIGINT, on_signal, base);
    event_add(sigterm, NULL);
    event_add(sigint, NULL);
    printf("http://127.0.0.1:%d\n", ref_server_port(srv));
    fflush(stdout);
    event_base_dispatch(base);
    event_free(sigterm);
    event_free(sigint);
    rc = 0;
out:
    ref_server_free(srv);
    if (base) event_base_free(base);
    ref_catalog_free(&cat);
    PQfinish(pg);
    return rc;
}
