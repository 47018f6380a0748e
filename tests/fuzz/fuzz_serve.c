/* fuzz_serve.c — libFuzzer target for the local API's request path (serve_handle,
 * no sockets): JSON-RPC bodies, /sql text, and the other routes, against a small
 * cache.db made once at start-up (replay_open's schema plus two tables with
 * rows and their _agent_tables rows).
 *
 * Input: byte 0 picks the route (bits 0-2: /api/jsonsql/, /sql, /api/jsonrpc/,
 * /status, /metrics, /health, POST /sync/<rest>, GET /api/jsonsql/), bit 3 the
 * server ([serve] auth = "none" without a token, or auth = "portal" with token
 * "tok", account admin/pw, and `Authorization: Bearer tok`; bodies may be batches),
 * bit 4 whether the fetch and write hooks succeed; the rest is the body. The
 * hooks answer at once, so parked requests complete inside serve_handle.
 * Oracles: the reply comes exactly once, before serve_handle returns; its status
 * is one the server documents; every JSON reply parses (json_parse). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/config/config.h"
#include "agent/base/json.h"
#include "agent/base/log.h"
#include "agent/serve/serve.h"
#include "replay/replay.h"

/* libFuzzer's entry points take no context: the fixture made once at start-up
 * is the process state here. */
static char dir[256], db_path[300];
static struct config cfg, portal_cfg;
static serve *open_srv, *token_srv;
static int hooks_ok;

static const char fixture_sql[] =
    "CREATE TABLE \"subscriber\" (\"id\" INTEGER PRIMARY KEY, \"username\" TEXT, \"disabled\" BOOLEAN,"
    " \"balance\" REAL, \"tags\" JSON, \"updated_at\" TEXT);"
    "CREATE TABLE \"terminal\" (\"id\" INTEGER PRIMARY KEY, \"subscriber_id\" INTEGER, \"mac_addr\" TEXT,"
    " \"active\" BOOLEAN, \"settings\" JSON);"
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60)"
    " INSERT INTO subscriber SELECT 1099511627776 + i, 'user' || i || ' Иван', i % 2, i * 10.5,"
    " CASE WHEN i % 3 THEN '[\"a\",' || i || ']' END, '2026-01-01 00:00:' || printf('%02d', i % 60) FROM n;"
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40)"
    " INSERT INTO terminal SELECT 9223372036854775000 + i, 1099511627776 + i, '00:1A:79:00:00:' || i, i % 2,"
    " '{\"lang\":\"ru\"}' FROM n;"
    "INSERT INTO _agent_tables (name, live, rows, last_success_ms, last_attempt_ms, strategy)"
    " VALUES ('subscriber', 1, 60, 1767225600000, 1767225600000, 'full'),"
    " ('terminal', 1, 40, 1767225600000, 1767225600000, 'on_demand');";

static const char config_text[] =
    "[storage]\ndir = \"/nonexistent\"\n[serve]\nlisten = \"127.0.0.1:0\"\ntokenless_writes = \"loopback\"\n"
    "[[table]]\nname = \"subscriber\"\nstrategy = \"full\"\n"
    "[[table]]\nname = \"terminal\"\nstrategy = \"on_demand\"\n";

static void cleanup(void)
{
    serve_free(open_srv);
    serve_free(token_srv);
    config_free(&cfg);
    char path[400];
    const char *sfx[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s%s", db_path, sfx[i]);
        unlink(path);
    }
    rmdir(dir);
}

static int fetch(void *ctx, const char *table, const char *column, const char *value_json, serve_done_fn done,
                 void *arg)
{
    done(arg, hooks_ok ? 0 : -1, hooks_ok ? NULL : "portal unreachable\n(fuzz)");
    return 0;
}

static int write_hook(void *ctx, const char *method, const char *params_json, serve_write_done_fn done, void *arg)
{
    if (!params_json || params_json[0] != '{') abort();   /* always the params object */
    done(arg, hooks_ok ? 0 : -1, hooks_ok ? "[[1]]" : NULL, hooks_ok ? NULL : "refused");
    return 0;
}

static int sync_hook(void *ctx, const char *table, char *err, size_t errlen)
{
    if (strcmp(table, "subscriber") == 0) return 0;
    snprintf(err, errlen, "unknown table %s", table);
    return -1;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    log_init(LOG_OFF, LOG_TEXT);
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/fuzz_serve.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(dir)) abort();
    snprintf(db_path, sizeof db_path, "%s/cache.db", dir);
    atexit(cleanup);
    char err[1024];
    struct replay_opts ro = {.db_path = db_path};
    struct replay *r;
    if (replay_open(&ro, &r, err, sizeof err) != 0 ||
        sqlite3_exec(replay_db(r), fixture_sql, NULL, NULL, NULL) != SQLITE_OK) {
        fprintf(stderr, "fuzz_serve: fixture: %s\n", err);
        abort();
    }
    replay_close(r);
    if (config_parse("fuzz.toml", config_text, strlen(config_text), &cfg, err, sizeof err) != 0) abort();
    static const struct serve_hooks hooks = {.fetch = fetch, .write = write_hook, .sync = sync_hook};
    struct serve_opts o = {.cfg = &cfg, .db_path = db_path, .max_body = 64 << 10, .max_rows = 500,
                           .time_limit_ms = 50};
    cfg.serve.auth = AUTH_NONE;
    open_srv = serve_new(NULL, &o, &hooks, err, sizeof err);
    portal_cfg = cfg;
    portal_cfg.serve.auth = AUTH_PORTAL;
    o.cfg = &portal_cfg;
    o.token = "tok";
    o.username = "admin";
    o.password = "pw";
    token_srv = serve_new(NULL, &o, &hooks, err, sizeof err);
    if (!open_srv || !token_srv) {
        fprintf(stderr, "fuzz_serve: %s\n", err);
        abort();
    }
    return 0;
}

struct seen {
    int calls;
    int json;                    /* the reply must be JSON */
};

static void on_reply(void *arg, const struct serve_reply *rep)
{
    struct seen *s = arg;
    s->calls++;
    static const int statuses[] = {200, 202, 400, 401, 404, 405, 413, 500, 503};
    int known = 0;
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) known |= rep->status == statuses[i];
    if (!known || !rep->body.p || !rep->content_type) abort();
    if (strchr(rep->cache_error, '\n') || strchr(rep->cache_error, '\r')) abort();
    if (s->json) {
        cJSON *doc = NULL;
        char err[256];
        if (json_parse(rep->body.p, rep->body.len, 1000, &doc, err, sizeof err) != 0) {
            fprintf(stderr, "reply is not JSON (%s): %.300s\n", err, rep->body.p);
            abort();
        }
        cJSON_Delete(doc);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static const char *const paths[] = {"/api/jsonsql/", "/sql", "/api/jsonrpc/", "/status",
                                        "/metrics", "/health", "/sync/", "/api/jsonsql/"};
    int route = data[0] & 7;
    hooks_ok = (data[0] >> 4) & 1;
    serve *s = (data[0] >> 3) & 1 ? token_srv : open_srv;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    char path[300];
    if (route == 6) snprintf(path, sizeof path, "/sync/%.*s", (int)(len < 200 ? len : 200), body);
    else snprintf(path, sizeof path, "%s", paths[route]);
    struct serve_request rq = {
        .method = route >= 3 && route <= 5 ? "GET" : route == 7 ? "GET" : "POST",
        .path = path,
        .authorization = s == token_srv ? "Bearer tok" : NULL,
        .body = body,
        .len = len,
    };
    struct seen seen = {.json = route != 4};
    if (serve_handle(s, &rq, on_reply, &seen) != 0 || seen.calls != 1) abort();
    return 0;
}
