/* harness.c — see harness.h. */
#include "tests/harness/harness.h"
#include "agent/base/log.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#ifndef IA_AGENT_BIN
#define IA_AGENT_BIN "iptv-agent"
#endif

/* ---- a serve instance -------------------------------------------------------------- */

static void on_stop(evutil_socket_t fd, short what, void *arg) { event_base_loopbreak(arg); }

static void *loop_main(void *arg)
{
    event_base_dispatch(((struct th_srv *)arg)->base);
    return NULL;
}

int th_srv_start(struct th_srv *v, const struct serve_opts *o, const struct serve_hooks *h, char *err,
                 size_t errlen)
{
    memset(v, 0, sizeof *v);
    if (pipe(v->pipefd) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return -1;
    }
    v->base = event_base_new();
    v->stop = event_new(v->base, v->pipefd[0], EV_READ, on_stop, v->base);
    event_add(v->stop, NULL);
    v->s = serve_new(v->base, o, h, err, errlen);
    if (!v->s || pthread_create(&v->th, NULL, loop_main, v) != 0) {
        if (v->s) snprintf(err, errlen, "pthread_create failed");
        serve_free(v->s);
        event_free(v->stop);
        event_base_free(v->base);
        close(v->pipefd[0]);
        close(v->pipefd[1]);
        return -1;
    }
    snprintf(v->url, sizeof v->url, "http://127.0.0.1:%d", serve_port(v->s));
    return 0;
}

int th_srv_stop(struct th_srv *v)
{
    if (write(v->pipefd[1], "x", 1) != 1) return -1;
    pthread_join(v->th, NULL);
    serve_free(v->s);
    event_free(v->stop);
    event_base_free(v->base);
    close(v->pipefd[0]);
    close(v->pipefd[1]);
    return 0;
}

/* ---- an HTTP client ------------------------------------------------------------------ */

static size_t collect(char *p, size_t sz, size_t n, void *ud)
{
    buf_append(ud, p, sz * n);
    return sz * n;
}

void th_resp_free(struct th_resp *r)
{
    buf_free(&r->body);
    buf_free(&r->hdr);
}

long th_http(CURL *c, const char *method, const char *url, const char *body, size_t len,
             const char *const *headers, struct th_resp *r)
{
    th_resp_free(r);
    memset(r, 0, sizeof *r);
    buf_puts(&r->body, "");
    buf_puts(&r->hdr, "");
    curl_easy_reset(c);
    /* no "Expect: 100-continue" round trip before a large body */
    struct curl_slist *hl = curl_slist_append(NULL, "Expect:");
    for (int i = 0; headers && headers[i]; i++) hl = curl_slist_append(hl, headers[i]);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r->hdr);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    if (method) curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    r->status = -1;
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hl);
    return r->status;
}

long th_srv_post(CURL *c, const struct th_srv *v, const char *path, const char *body, const char *const *headers,
                 struct th_resp *r)
{
    char url[300];
    snprintf(url, sizeof url, "%s%s", v->url, path);
    return th_http(c, NULL, url, body, strlen(body), headers, r);
}

long th_srv_get(CURL *c, const struct th_srv *v, const char *path, const char *const *headers, struct th_resp *r)
{
    char url[300];
    snprintf(url, sizeof url, "%s%s", v->url, path);
    return th_http(c, NULL, url, NULL, 0, headers, r);
}

const char *th_header(const struct th_resp *r, const char *name, char *out, size_t n)
{
    size_t nl = strlen(name);
    for (const char *p = r->hdr.p; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ') v++;
            size_t k = 0;
            while (v[k] && v[k] != '\r' && v[k] != '\n' && k + 1 < n) { out[k] = v[k]; k++; }
            out[k] = '\0';
            return out;
        }
    }
    return NULL;
}

/* ---- the fake portal ------------------------------------------------------------------ */

int th_portal_login(const char *portal_url, char *sid, size_t n)
{
    char url[512], *resp = NULL;
    snprintf(url, sizeof url, "%s/api/jsonrpc/", portal_url);
    tu_http(url, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"authorize_user\","
                 "\"params\":{\"username\":\"admin\",\"password\":\"secret\"}}", &resp);
    const char *p = resp ? strstr(resp, "\"session_id\":\"") : NULL;
    if (p) snprintf(sid, n, "%.32s", p + 14);
    free(resp);
    return p ? 0 : -1;
}

/* ---- a cache pulled from a fake portal by the real agent ------------------------------ */

int th_site_start(struct th_site *s, const char *prefix, const char *env, const char *const *portal_args)
{
    memset(s, 0, sizeof *s);
    s->env = env;
    s->dir = tu_tmpdir(prefix);
    if (!s->dir) return -1;
    snprintf(s->portal_db, sizeof s->portal_db, "%s/portal.db", s->dir);
    snprintf(s->db, sizeof s->db, "%s/store/cache.db", s->dir);
    snprintf(s->cfg_path, sizeof s->cfg_path, "%s/agent.toml", s->dir);
    const char *args[32] = {"--db", s->portal_db};
    int n = 2;
    for (int i = 0; portal_args && portal_args[i] && n < 31; i++) args[n++] = portal_args[i];
    args[n] = NULL;
    return tu_portal_start(&s->portal, args);
}

int th_site_config(struct th_site *s, const char *text, size_t len, struct config *cfg)
{
    char err[1024];
    if (tu_write_file(s->cfg_path, text, len) != 0) {
        fprintf(stderr, "%s: cannot write it\n", s->cfg_path);
        return -1;
    }
    if (config_load(s->cfg_path, cfg, err, sizeof err) != 0) {
        fprintf(stderr, "config: %s\n", err);
        return -1;
    }
    return 0;
}

int th_site_agent(const struct th_site *s, const char *a1, const char *a2, const char *a3)
{
    const char *argv[] = {IA_AGENT_BIN, "-c", s->cfg_path, a1, a2, a3, NULL};
    const char *env[] = {s->env, NULL};
    char *out = NULL, *err = NULL;
    int rc = tu_run(argv, env, &out, &err);
    if (rc != 0) fprintf(stderr, "iptv-agent %s %s %s: exit %d\n%s%s", a1, a2 ? a2 : "", a3 ? a3 : "", rc, out, err);
    free(out);
    free(err);
    return rc;
}

void th_site_stop(struct th_site *s)
{
    tu_portal_stop(&s->portal);
    if (s->dir) tu_rmrf(s->dir);
    free(s->dir);
    s->dir = NULL;
}

pid_t th_agent_spawn(const char *cfg_path, const char *env, int out_fd, const char *const *args)
{
    const char *argv[32] = {IA_AGENT_BIN, "-c", cfg_path};
    int n = 3;
    for (int i = 0; args && args[i] && n < 31; i++) argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid != 0) return pid;
    if (env) putenv((char *)env);
    if (out_fd < 0) {
        if (!freopen("/dev/null", "w", stdout)) _exit(126);
    } else if (dup2(out_fd, STDOUT_FILENO) < 0) {
        _exit(126);
    } else if (out_fd > STDERR_FILENO) {
        close(out_fd);
    }
    execv(argv[0], (char *const *)argv);
    _exit(127);
}

/* ---- SQLite ------------------------------------------------------------------------------ */

long long th_db_int(const char *db_path, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    long long v = 0;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return v;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    for (size_t i = 0; i < n; i++) h = (h ^ ((const unsigned char *)p)[i]) * 1099511628211ULL;
    return h;
}

/* Every row of table into the fingerprint h. SQLite's 0 or its error. */
static int table_sum(sqlite3 *db, const char *table, uint64_t *h)
{
    struct buf sql = {0};
    sqlite3_stmt *q;
    buf_printf(&sql, "SELECT * FROM \"%s\" ORDER BY rowid", table);
    if (sqlite3_prepare_v2(db, sql.p, -1, &q, NULL) != SQLITE_OK) {   /* WITHOUT ROWID */
        buf_reset(&sql);
        buf_printf(&sql, "SELECT * FROM \"%s\" ORDER BY 1, 2", table);
        if (sqlite3_prepare_v2(db, sql.p, -1, &q, NULL) != SQLITE_OK) {
            buf_free(&sql);
            return sqlite3_errcode(db);
        }
    }
    buf_free(&sql);
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW)
        for (int i = 0; i < sqlite3_column_count(q); i++) {
            int ty = sqlite3_column_type(q, i);
            const unsigned char *s = sqlite3_column_text(q, i);
            *h = fnv(*h, &ty, sizeof ty);
            *h = fnv(*h, s ? s : (const unsigned char *)"", (size_t)sqlite3_column_bytes(q, i));
        }
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int th_db_fingerprint(const char *db_path, uint64_t *sum, int *tables, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *t = NULL, *q = NULL;
    uint64_t h = 1469598103934665603ULL;
    int rc = sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL);
    *tables = 0;
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, "SELECT type, name, tbl_name, rootpage, sql FROM sqlite_master ORDER BY name", -1,
                                &t, NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(t)) == SQLITE_ROW) {
        rc = SQLITE_OK;
        for (int i = 0; i < 5; i++) {
            const unsigned char *s = sqlite3_column_text(t, i);
            h = fnv(h, s ? s : (const unsigned char *)"", (size_t)sqlite3_column_bytes(t, i) + 1);
        }
        if (strcmp((const char *)sqlite3_column_text(t, 0), "table") != 0) continue;
        rc = table_sum(db, (const char *)sqlite3_column_text(t, 1), &h);
        (*tables)++;
    }
    if (rc == SQLITE_DONE) rc = SQLITE_OK;
    /* the schema cookie and user_version move with any DDL or migration */
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, "SELECT (SELECT schema_version FROM pragma_schema_version),"
                                    " (SELECT user_version FROM pragma_user_version)", -1, &q, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        int64_t v[2] = {sqlite3_column_int64(q, 0), sqlite3_column_int64(q, 1)};
        h = fnv(h, v, sizeof v);
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_OK) snprintf(err, errlen, "fingerprint of %s: %s", db_path, db ? sqlite3_errmsg(db) : "no memory");
    sqlite3_finalize(t);
    sqlite3_finalize(q);
    sqlite3_close(db);
    *sum = h;
    return rc == SQLITE_OK ? 0 : -1;
}

/* ---- the log ------------------------------------------------------------------------- */

int th_log_capture(const char *path)
{
    fflush(stderr);
    int saved = dup(2), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (saved < 0 || fd < 0) {
        if (saved >= 0) close(saved);
        if (fd >= 0) close(fd);
        return -1;
    }
    dup2(fd, 2);
    close(fd);
    log_init(LOG_DEBUG, LOG_TEXT);
    return saved;
}

char *th_log_release(int saved, const char *path)
{
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    log_init(LOG_INFO, LOG_TEXT);
    size_t len = 0;
    return tu_read_file(path, &len);
}
