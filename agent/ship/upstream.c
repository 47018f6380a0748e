/* upstream.c — see upstream.h. One curl easy handle (keep-alive to the hub). */
#include "agent/ship/upstream.h"
#include "agent/base/clock.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/base/buf.h"
#include "agent/base/err.h"
#include "journal/fsio.h"
#include "agent/base/log.h"
#include "agent/base/mem.h"

struct upstream {
    CURL *curl;
    char *url;                        /* the hub, no trailing '/' */
    char *auth;                       /* "Authorization: Bearer ..." or NULL; never logged */
    const atomic_int *cancel;
    char curl_err[CURL_ERROR_SIZE];
};

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    const upstream *u = ud;
    return u->cancel && atomic_load(u->cancel);
}

upstream *upstream_new(const struct config *cfg, char *err, size_t errlen)
{
    if (!cfg->upstream.url) {
        snprintf(err, errlen, "%s: no [upstream] url", cfg->path);
        return NULL;
    }
    const char *tok = NULL;
    if (cfg->upstream.token_env) {
        tok = getenv(cfg->upstream.token_env);
        if (!tok || !*tok) {
            snprintf(err, errlen, "no hub token: environment variable %s ([upstream] token_env) is not set",
                     cfg->upstream.token_env);
            return NULL;
        }
    }
    upstream *u = xcalloc(1, sizeof *u);
    u->curl = curl_easy_init();
    if (!u->curl) {
        snprintf(err, errlen, "curl_easy_init failed");
        free(u);
        return NULL;
    }
    u->url = xstrdup(cfg->upstream.url);
    if (tok) {
        struct buf a = {0};
        buf_printf(&a, "Authorization: Bearer %s", tok);
        u->auth = buf_detach(&a);
    }
    CURL *c = u->curl;
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, u->curl_err);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)cfg->upstream.timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "iptv-agent/" IA_VERSION);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, u);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    if (!cfg->upstream.verify_tls) {
        log_warn("TLS VERIFICATION IS OFF for the hub ([upstream] verify_tls = false): its identity is not "
                 "checked and the token can be intercepted; use ca_file instead");
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (cfg->upstream.ca_file) curl_easy_setopt(c, CURLOPT_CAINFO, cfg->upstream.ca_file);
    return u;
}

void upstream_set_cancel(upstream *u, const atomic_int *cancel) { u->cancel = cancel; }

void upstream_free(upstream *u)
{
    if (!u) return;
    curl_easy_cleanup(u->curl);
    if (u->auth) {
        explicit_bzero(u->auth, strlen(u->auth));
        free(u->auth);
    }
    free(u->url);
    free(u);
}

static size_t on_write(char *p, size_t size, size_t n, void *ud)
{
    return fwrite(p, size, n, ud) * size;
}

/* GET path into the file `to`: the HTTP status, or -1 with err (transport). */
static long download(upstream *u, const char *path, const char *to, uint64_t *bytes, char *err, size_t errlen)
{
    FILE *f = fopen(to, "wb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", to, strerror(errno));
        return -1;
    }
    struct buf url = {0};
    buf_printf(&url, "%s%s", u->url, path);
    struct curl_slist *h = u->auth ? curl_slist_append(NULL, u->auth) : NULL;
    curl_easy_setopt(u->curl, CURLOPT_URL, url.p);
    curl_easy_setopt(u->curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(u->curl, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(u->curl, CURLOPT_WRITEDATA, f);
    u->curl_err[0] = '\0';
    CURLcode cc = curl_easy_perform(u->curl);
    curl_easy_setopt(u->curl, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(h);
    long status = -1;
    int closed = fclose(f);
    curl_off_t got = 0;
    curl_easy_getinfo(u->curl, CURLINFO_SIZE_DOWNLOAD_T, &got);
    *bytes = (uint64_t)got;
    if (cc == CURLE_WRITE_ERROR || closed != 0) {
        snprintf(err, errlen, "hub %s: writing %s: %s", url.p, to, strerror(errno ? errno : EIO));
    } else if (cc != CURLE_OK) {
        snprintf(err, errlen, "hub %s: %s", url.p,
                 cc == CURLE_ABORTED_BY_CALLBACK ? "cancelled (the agent is stopping)"
                                                 : u->curl_err[0] ? u->curl_err : curl_easy_strerror(cc));
    } else {
        curl_easy_getinfo(u->curl, CURLINFO_RESPONSE_CODE, &status);
    }
    buf_free(&url);
    return status;
}

/* The hub's {"error": "..."} from a refused answer saved in `path`, for messages. */
static void hub_message(const char *path, char *out, size_t outlen)
{
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(out, 1, outlen - 1, f) : 0;
    if (f) fclose(f);
    out[n] = '\0';
    for (char *p = out; *p; p++)
        if ((unsigned char)*p < 0x20) *p = ' ';
}

static int upstream_sync_once(upstream *u, const char *db_path, const char *tmp_dir, struct upstream_result *r,
                              char *err, size_t errlen);

int upstream_state_read(const char *dir, struct upstream_state *st)
{
    memset(st, 0, sizeof *st);
    struct buf path = {0};
    buf_printf(&path, "%s/upstream.state", dir);
    FILE *f = fopen(path.p, "r");
    buf_free(&path);
    if (!f) return 1;
    char line[1200];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        long long v;
        if (sscanf(line, "attempt_ms=%lld", &v) == 1) st->attempt_ms = v;
        else if (sscanf(line, "success_ms=%lld", &v) == 1) st->success_ms = v;
        else if (!strncmp(line, "error=", 6)) snprintf(st->error, sizeof st->error, "%.1000s", line + 6);
    }
    fclose(f);
    return 0;
}

/* Record this attempt (error NULL: it worked) in dir/upstream.state, replaced
 * whole (fsio), so a reader sees the old record or the new. */
static void note_attempt(const char *dir, int64_t when_ms, const char *error)
{
    struct upstream_state st;
    upstream_state_read(dir, &st);
    st.attempt_ms = when_ms;
    if (!error) st.success_ms = when_ms;
    snprintf(st.error, sizeof st.error, "%.1000s", error ? error : "");
    for (char *p = st.error; *p; p++)
        if ((unsigned char)*p < 0x20) *p = ' ';
    struct buf path = {0}, text = {0};
    buf_printf(&path, "%s/upstream.state", dir);
    buf_printf(&text, "attempt_ms=%lld\nsuccess_ms=%lld\nerror=%s\n", (long long)st.attempt_ms,
               (long long)st.success_ms, st.error);
    char err[IA_ERRLEN];
    if (fsio_replace(path.p, text.p, text.len, err, sizeof err) != 0)
        log_warn("cannot record the hub's last answer: %s", err);
    buf_free(&path);
    buf_free(&text);
}

int upstream_sync(upstream *u, const char *db_path, const char *dir, struct upstream_result *r, char *err,
                  size_t errlen)
{
    int64_t started = clock_wall_ms();
    int rc = upstream_sync_once(u, db_path, dir, r, err, errlen);
    note_attempt(dir, started, rc == 0 ? NULL : err);
    return rc;
}

static int upstream_sync_once(upstream *u, const char *db_path, const char *tmp_dir, struct upstream_result *r,
                              char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    double t0 = clock_mono_s();
    char at[EXPORT_ID_LEN + 1];
    if (export_cache_state(db_path, at, NULL, err, errlen) != 0) return -1;
    struct buf tmp = {0}, path = {0};
    buf_printf(&tmp, "%s/upstream.download.tmp-%ld", tmp_dir, (long)getpid());
    int rc = -1;
    for (int attempt = 0; attempt < 2; attempt++) {
        int delta = at[0] && attempt == 0;
        buf_reset(&path);
        if (delta) buf_printf(&path, "/export/delta?base=%s", at);
        else buf_puts(&path, "/export/snapshot");
        uint64_t got = 0;
        long st = download(u, path.p, tmp.p, &got, err, errlen);
        r->bytes += got;
        char msg[512];
        if (st < 0 || st >= 500) {
            if (st >= 500) {
                hub_message(tmp.p, msg, sizeof msg);
                snprintf(err, errlen, "hub %s%s: HTTP %ld: %s", u->url, path.p, st, msg);
            }
            r->unreachable = 1;
            break;
        }
        if (delta && st == 304) {
            snprintf(r->action, sizeof r->action, "current");
            snprintf(r->id, sizeof r->id, "%s", at);
            rc = 0;
            break;
        }
        if (delta && (st == 410 || st == 409)) {
            hub_message(tmp.p, msg, sizeof msg);
            log_info("hub %s: no delta from %s (%s); taking a snapshot", u->url, at, msg);
            continue;
        }
        if (st != 200) {
            hub_message(tmp.p, msg, sizeof msg);
            snprintf(err, errlen, "hub %s%s: HTTP %ld: %s%s", u->url, path.p, st, msg,
                     st == 401 ? " (check [upstream] token_env)" : st == 404 ? " (is it an iptv-agent?)" : "");
            break;
        }
        struct export_import_result res;
        if (export_import(db_path, tmp.p, &res, err, errlen) != 0) {
            char why[IA_ERRLEN];
            snprintf(why, sizeof why, "%s", err);
            snprintf(err, errlen, "hub %s%s: %s", u->url, path.p, why);
            export_manifest_free(&res.m);
            /* A delta that does not apply (this cache was changed by hand, or
             * the hub's files are damaged) is not retried forever: a snapshot
             * replaces the cache as a whole, verified the same way. */
            if (delta) {
                log_warn("%s; taking a snapshot instead", err);
                continue;
            }
            break;
        }
        snprintf(r->action, sizeof r->action, "%s", res.already ? "current" : res.m.kind);
        snprintf(r->id, sizeof r->id, "%s", res.m.id);
        r->changes = res.already ? 0 : res.m.changes;
        for (size_t i = 0; i < res.m.ntables; i++)
            if (strncmp(res.m.tables[i].name, "_agent_", 7) != 0) r->rows += res.m.tables[i].rows;
        export_manifest_free(&res.m);
        rc = 0;
        break;
    }
    unlink(tmp.p);
    buf_free(&tmp);
    buf_free(&path);
    r->seconds = clock_mono_s() - t0;
    return rc;
}
