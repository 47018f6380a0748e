/* store.c — see store.h. */
#include "agent/pull/store.h"
#include "agent/base/buf.h"
#include "agent/base/clock.h"
#include "agent/base/err.h"
#include "agent/base/log.h"
#include "agent/base/mem.h"
#include "replay/outbox.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void warn_to_log(void *ctx, const char *msg) { log_warn("%s", msg); }

/* mkdir -p */
static int make_dirs(const char *path, char *err, size_t errlen)
{
    char *p = xstrdup(path);
    for (char *q = p + 1;; q++) {
        if (*q != '/' && *q != '\0') continue;
        char c = *q;
        *q = '\0';
        if (mkdir(p, 0750) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "storage directory %s: cannot create %s: %s", path, p, strerror(errno));
            free(p);
            return -1;
        }
        *q = c;
        if (!c) break;
    }
    free(p);
    return 0;
}

static char *join(const char *a, const char *b)
{
    struct buf x = {0};
    buf_printf(&x, "%s/%s", a, b);
    return buf_detach(&x);
}

void store_replay_opts(const struct store *s, struct replay_opts *o)
{
    memset(o, 0, sizeof *o);
    o->db_path = s->db_path;
    o->journal_dir = s->journal_dir;
    o->warn = warn_to_log;
}

int store_open(const struct config *cfg, int writer, struct store *s, char *err, size_t errlen)
{
    int ret = -1;
    memset(s, 0, sizeof *s);
    s->dir = xstrdup(cfg->storage.dir);
    s->journal_dir = join(s->dir, "journal");
    s->db_path = join(s->dir, "cache.db");
    if (make_dirs(s->dir, err, errlen) != 0) goto fail;
    if (writer) {
        struct journal_opts jo = {
            .dir = s->journal_dir,
            .segment_size = (uint64_t)cfg->storage.segment_size,
            .level = cfg->storage.compression_level,
            .warn = warn_to_log,
        };
        int rc = journal_writer_open(&jo, &s->jw, err, errlen);
        if (rc == JOURNAL_ELOCKED) {
            /* A running daemon advertises its API: pulls go through it. */
            char *upath = join(s->dir, "agent.url");
            FILE *f = fopen(upath, "r");
            char url[320] = "";
            if (f && fgets(url, sizeof url, f)) url[strcspn(url, "\r\n")] = '\0';
            if (f) fclose(f);
            free(upath);
            size_t n = strlen(err);
            if (url[0])
                snprintf(err + n, errlen - n, "; if that is the running daemon (it serves %s), ask it instead: "
                         "`curl -X POST %s/sync/TABLE` pulls TABLE now", url, url);
            else
                snprintf(err + n, errlen - n, "; wait for it to finish, or stop it");
            ret = STORE_ELOCKED;
        }
        if (rc != 0) goto fail;
    }
    struct replay_opts ro;
    store_replay_opts(s, &ro);
    if (replay_open(&ro, &s->rp, err, errlen) != 0) goto fail;
    if (writer) {
        struct replay_stats st = {0};
        if (replay_apply(s->rp, journal_writer_durable_seq(s->jw), &st, err, errlen) != 0) goto fail;
        if (st.records) log_info("applied %llu pending journal records", (unsigned long long)st.records);
    }
    return 0;
fail:
    store_close(s);
    return ret;
}

int store_open_readonly(const struct config *cfg, struct store *s, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    s->dir = xstrdup(cfg->storage.dir);
    s->journal_dir = join(s->dir, "journal");
    s->db_path = join(s->dir, "cache.db");
    int rc = replay_open_readonly(s->db_path, &s->rp, err, errlen);
    if (rc != 0) store_close(s);
    return rc;
}

void store_close(struct store *s)
{
    if (s->rp) replay_close(s->rp);
    if (s->jw) journal_writer_close(s->jw);
    free(s->dir);
    free(s->journal_dir);
    free(s->db_path);
    memset(s, 0, sizeof *s);
}

int store_compact(struct store *s, const struct config *cfg, uint64_t max_applied, pthread_mutex_t *lock,
                  struct journal_compact_result *res, char *err, size_t errlen)
{
    if (lock) pthread_mutex_lock(lock);
    uint64_t applied = replay_applied_seq(s->rp);
    if (lock) pthread_mutex_unlock(lock);
    /* Never past what cache.db has applied: unapplied records must stay. */
    if (max_applied < applied) applied = max_applied;
    if (journal_compact(s->journal_dir, applied, cfg->storage.retain_ms, res, err, errlen) != 0) return -1;
    struct replay_compact c = {.at_ms = clock_wall_ms(), .deleted = res->deleted, .freed = res->freed};
    snprintf(c.reason, sizeof c.reason, "%s", res->kept ? res->reason : "");
    char why[IA_ERRLEN];
    if (lock) pthread_mutex_lock(lock);
    int rc = replay_note_compact(s->rp, &c, why, sizeof why);
    /* Ended ops older than the journal's start go (docs/outbox.md, Bounds):
     * cache.db keeps what a rebuild from the journal would give. */
    uint64_t *segs = NULL;
    size_t nseg = 0;
    int64_t pruned = 0;
    char why2[IA_ERRLEN];
    int prc = journal_segments(s->journal_dir, &segs, &nseg, why2, sizeof why2);
    if (prc == 0 && nseg) prc = replay_outbox_prune(s->rp, segs[0], &pruned, why2, sizeof why2);
    free(segs);
    if (lock) pthread_mutex_unlock(lock);
    if (prc != 0) log_warn("%s", why2);
    else if (pruned) log_info("outbox: %lld ended ops older than the journal deleted", (long long)pruned);
    /* The segments are gone either way; only status would miss it. */
    if (rc != 0) log_warn("%s", why);
    return 0;
}
