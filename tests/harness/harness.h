/* harness.h — what the HTTP server tests and benchmarks share (test_serve,
 * test_security, bench_serve): a serve instance with its event loop on a thread
 * of its own, a libcurl client that keeps status, body and headers, a login on
 * the fake portal, a cache.db pulled from a fake portal by the real agent, and
 * a fingerprint of a whole SQLite database.
 *
 * No cmocka here (the benchmarks use it too): every fallible function returns
 * a code. The caller owns every struct; th_srv_stop, th_resp_free and
 * th_site_stop release what the matching call took. */
#ifndef IA_HARNESS_H
#define IA_HARNESS_H
#include <curl/curl.h>
#include <event2/event.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent/base/buf.h"
#include "agent/config/config.h"
#include "agent/serve/serve.h"
#include "tests/testutil.h"

/* ---- a serve instance -------------------------------------------------------------- */

struct th_srv {
    struct event_base *base;         /* its own; hooks run on the loop thread */
    serve *s;
    pthread_t th;                    /* runs the loop */
    int pipefd[2];                   /* a byte written to [1] breaks the loop */
    struct event *stop;
    char url[64];                    /* http://127.0.0.1:PORT */
};

/* serve_new(o, h) on 127.0.0.1 per o, its loop started on a thread. 0, or -1 with err. */
int th_srv_start(struct th_srv *v, const struct serve_opts *o, const struct serve_hooks *h, char *err,
                 size_t errlen);
/* Break the loop, join the thread, free. 0, or -1 when the loop cannot be told
 * (then nothing is freed). */
int th_srv_stop(struct th_srv *v);

/* ---- an HTTP client ------------------------------------------------------------------ */

struct th_resp {
    long status;                     /* the HTTP status, -1 when there was no answer */
    struct buf body, hdr;            /* NUL-terminated, "" when empty; hdr: every header line */
};

void th_resp_free(struct th_resp *r);
/* method NULL: POST when body is non-NULL, else GET. headers: NULL-terminated
 * extra header lines (may be NULL). Reuses c (reset first); waits up to 120 s.
 * Returns r->status. */
long th_http(CURL *c, const char *method, const char *url, const char *body, size_t len,
             const char *const *headers, struct th_resp *r);
/* POST body (a string) to v's path / GET v's path. */
long th_srv_post(CURL *c, const struct th_srv *v, const char *path, const char *body, const char *const *headers,
                 struct th_resp *r);
long th_srv_get(CURL *c, const struct th_srv *v, const char *path, const char *const *headers, struct th_resp *r);
/* The value of response header `name` (case-insensitive, trimmed) in out, or NULL. */
const char *th_header(const struct th_resp *r, const char *name, char *out, size_t n);

/* ---- the log ------------------------------------------------------------------------- */

/* Send stderr (where the log goes) to a new file at path, with debug logging
 * on. The saved stderr for th_log_release, or -1. */
int th_log_capture(const char *path);
/* Put stderr back (logging at info) and return the captured text (malloc'd,
 * NUL-terminated; NULL when unreadable). */
char *th_log_release(int saved, const char *path);

/* ---- the fake portal ------------------------------------------------------------------ */

/* authorize_user as admin/secret at portal_url; the session id into sid. 0 or -1. */
int th_portal_login(const char *portal_url, char *sid, size_t n);

/* ---- a cache pulled from a fake portal by the real agent ------------------------------ */

struct th_site {
    char *dir;                       /* a fresh temp dir, removed by th_site_stop */
    char portal_db[512];             /* DIR/portal.db: the portal's data, readable by the test */
    char db[512];                    /* DIR/store/cache.db (config: [storage] dir = DIR/store) */
    char cfg_path[512];              /* DIR/agent.toml */
    struct tu_portal portal;
    const char *env;                 /* "NAME=VALUE" for every agent run (its password), or NULL */
};

/* A temp dir named after prefix and a fake portal keeping its data in
 * portal_db, started with portal_args (NULL-terminated, may be NULL). 0 or -1. */
int th_site_start(struct th_site *s, const char *prefix, const char *env, const char *const *portal_args);
/* Write text as agent.toml and load it into cfg. 0, or -1 with the reason on stderr. */
int th_site_config(struct th_site *s, const char *text, size_t len, struct config *cfg);
/* Run `IA_AGENT_BIN -c cfg_path a1 a2 a3` (a NULL ends the list) to its end; its
 * output goes to stderr when it fails. The exit status (tu_run's). */
int th_site_agent(const struct th_site *s, const char *a1, const char *a2, const char *a3);
/* Stop the portal, remove the dir. */
void th_site_stop(struct th_site *s);

/* Start `IA_AGENT_BIN -c cfg_path args...` in the background, env ("NAME=VALUE",
 * may be NULL) added, its stdout on out_fd (-1: /dev/null). The pid, or -1. */
pid_t th_agent_spawn(const char *cfg_path, const char *env, int out_fd, const char *const *args);

/* ---- SQLite ------------------------------------------------------------------------------ */

/* The first value of sql's first row on db_path (opened read-only); 0 when none. */
long long th_db_int(const char *db_path, const char *sql);
/* A fingerprint of db_path (read-only): the rows of sqlite_master, every row of
 * every table in rowid order (by its first two columns WITHOUT ROWID), each
 * value's type and text, the schema cookie and user_version. *tables gets the
 * number of tables. 0, or -1 with err. */
int th_db_fingerprint(const char *db_path, uint64_t *sum, int *tables, char *err, size_t errlen);

#endif
