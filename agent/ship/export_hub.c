/* export_hub.c — see export_hub.h.
 *
 * Files in the directory:
 *   ID.snap            a snapshot (export_snapshot), ID its 32-hex id
 *   BASE-TARGET.delta  the delta from snapshot BASE to snapshot TARGET
 *   incoming.*         an export being written (export.c's temp-and-rename
 *                      lands it here, then it is renamed to its id's name)
 * In memory: the kept snapshots, oldest first, each with the fingerprint of
 * cache.db it was taken from ("applied_seq:at_id"; "" for one found on disk,
 * which therefore never counts as current). */
#include "agent/ship/export_hub.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/base/buf.h"
#include "journal/fsio.h"
#include "agent/base/log.h"
#include "agent/base/mem.h"

struct snap {
    char id[EXPORT_ID_LEN + 1];
    char fp[EXPORT_ID_LEN + 32];
    int64_t mtime;
};

struct export_hub {
    char *dir, *db;
    int level, keep;
    pthread_mutex_t mu;
    struct snap *snaps;                /* oldest first */
    size_t n;
};

static int is_id(const char *s, size_t len)
{
    if (strlen(s) < len) return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

static char *path_of(const struct export_hub *h, const char *a, const char *b, const char *ext)
{
    struct buf p = {0};
    if (b) buf_printf(&p, "%s/%s-%s.%s", h->dir, a, b, ext);
    else buf_printf(&p, "%s/%s.%s", h->dir, a, ext);
    return buf_detach(&p);
}

static int by_mtime(const void *a, const void *b)
{
    const struct snap *x = a, *y = b;
    return x->mtime < y->mtime ? -1 : x->mtime > y->mtime;
}

/* Remove every file that names snapshot `id` (its .snap and its deltas). */
static void remove_snap(struct export_hub *h, const char *id)
{
    DIR *d = opendir(h->dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!strstr(e->d_name, id)) continue;
        struct buf p = {0};
        buf_printf(&p, "%s/%s", h->dir, e->d_name);
        unlink(p.p);
        buf_free(&p);
    }
    if (d) closedir(d);
}

static void evict(struct export_hub *h)
{
    while (h->n > (size_t)h->keep) {
        log_debug("exports: removing snapshot %s and its deltas (keeping the newest %d)", h->snaps[0].id, h->keep);
        remove_snap(h, h->snaps[0].id);
        memmove(h->snaps, h->snaps + 1, (h->n - 1) * sizeof *h->snaps);
        h->n--;
    }
}

struct export_hub *export_hub_new(const char *dir, const char *db_path, int level, int keep, char *err,
                                  size_t errlen)
{
    if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "exports directory %s: %s", dir, strerror(errno));
        return NULL;
    }
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "exports directory %s: %s", dir, strerror(errno));
        return NULL;
    }
    struct export_hub *h = xcalloc(1, sizeof *h);
    h->dir = xstrdup(dir);
    h->db = xstrdup(db_path);
    h->level = level;
    h->keep = keep < 1 ? 1 : keep;
    pthread_mutex_init(&h->mu, NULL);
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *nm = e->d_name;
        struct buf p = {0};
        buf_printf(&p, "%s/%s", dir, nm);
        struct stat sb;
        if (strstr(nm, ".tmp-") || !strncmp(nm, "incoming", 8)) {
            unlink(p.p);                   /* left by a crash mid-export */
        } else if (strlen(nm) == EXPORT_ID_LEN + 5 && is_id(nm, EXPORT_ID_LEN) && !strcmp(nm + EXPORT_ID_LEN, ".snap") &&
                   stat(p.p, &sb) == 0) {
            if (h->n == cap) h->snaps = xrealloc(h->snaps, (cap = cap ? cap * 2 : 8) * sizeof *h->snaps);
            struct snap *s = &h->snaps[h->n++];
            memset(s, 0, sizeof *s);
            memcpy(s->id, nm, EXPORT_ID_LEN);
            s->mtime = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
        }
        buf_free(&p);
    }
    closedir(d);
    if (h->n) qsort(h->snaps, h->n, sizeof *h->snaps, by_mtime);
    evict(h);
    return h;
}

void export_hub_free(struct export_hub *h)
{
    if (!h) return;
    pthread_mutex_destroy(&h->mu);
    free(h->snaps);
    free(h->dir);
    free(h->db);
    free(h);
}

static int open_file(const char *path, struct export_hub_file *f, char *err, size_t errlen)
{
    struct stat sb;
    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0 || fstat(f->fd, &sb) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        if (f->fd >= 0) close(f->fd);
        f->fd = -1;
        return -1;
    }
    f->size = (int64_t)sb.st_size;
    return 0;
}

/* The newest snapshot, taken now when cache.db changed since it (index in h->snaps). */
static int current(struct export_hub *h, int *built, char *err, size_t errlen)
{
    char at[EXPORT_ID_LEN + 1], fp[EXPORT_ID_LEN + 32];
    uint64_t seq = 0;
    *built = 0;
    /* Read before the copy: a change committed during it only makes the next
     * request take another snapshot, never serve an old one as current. */
    if (export_cache_state(h->db, at, &seq, err, errlen) != 0) return -1;
    snprintf(fp, sizeof fp, "%" PRIu64 ":%s", seq, at);
    if (h->n && !strcmp(h->snaps[h->n - 1].fp, fp)) return (int)h->n - 1;
    char *tmp = path_of(h, "incoming", NULL, "snap");
    struct export_manifest m;
    if (export_snapshot(h->db, tmp, h->level, &m, err, errlen) != 0) {
        free(tmp);
        return -1;
    }
    char *final = path_of(h, m.id, NULL, "snap");
    int rc = fsio_commit(tmp, final, err, errlen);
    if (rc == FSIO_EFILE) unlink(tmp);
    free(tmp);
    free(final);
    if (rc != 0) {
        export_manifest_free(&m);
        return -1;
    }
    h->snaps = xrealloc(h->snaps, (h->n + 1) * sizeof *h->snaps);
    struct snap *s = &h->snaps[h->n++];
    memset(s, 0, sizeof *s);
    snprintf(s->id, sizeof s->id, "%s", m.id);
    snprintf(s->fp, sizeof s->fp, "%s", fp);
    log_info("exports: snapshot %s taken (%" PRIu64 " bytes, journal seq %" PRIu64 ")", m.id, m.packed_bytes,
             m.journal_seq);
    export_manifest_free(&m);
    *built = 1;
    return (int)h->n - 1;              /* the caller evicts, after it has used its base */
}

int export_hub_snapshot(struct export_hub *h, struct export_hub_file *f, char *err, size_t errlen)
{
    memset(f, 0, sizeof *f);
    f->fd = -1;
    pthread_mutex_lock(&h->mu);
    int i = current(h, &f->built, err, errlen), rc = EXPORT_HUB_ERR;
    if (i >= 0) {
        char *p = path_of(h, h->snaps[i].id, NULL, "snap");
        if (open_file(p, f, err, errlen) == 0) {
            snprintf(f->id, sizeof f->id, "%s", h->snaps[i].id);
            rc = EXPORT_HUB_OK;
        }
        free(p);
    }
    evict(h);
    pthread_mutex_unlock(&h->mu);
    return rc;
}

int export_hub_delta(struct export_hub *h, const char *base_id, struct export_hub_file *f, char *err,
                     size_t errlen)
{
    memset(f, 0, sizeof *f);
    f->fd = -1;
    /* Only ids name files here: anything else could walk out of the directory. */
    if (strlen(base_id) != EXPORT_ID_LEN || !is_id(base_id, EXPORT_ID_LEN)) {
        snprintf(err, errlen, "base \"%.64s\" is not an export id (32 lowercase hex digits)", base_id);
        return EXPORT_HUB_GONE;
    }
    pthread_mutex_lock(&h->mu);
    int rc = EXPORT_HUB_ERR;
    size_t b = 0;
    while (b < h->n && strcmp(h->snaps[b].id, base_id) != 0) b++;
    int i = b < h->n ? current(h, &f->built, err, errlen) : -1;
    if (b == h->n) {
        snprintf(err, errlen, "base %s is not kept here (this agent keeps its newest %d snapshots); take "
                 "/export/snapshot", base_id, h->keep);
        rc = EXPORT_HUB_GONE;
    } else if (i >= 0 && !strcmp(h->snaps[i].id, base_id)) {
        rc = EXPORT_HUB_CURRENT;
    } else if (i >= 0) {
        char *bp = path_of(h, base_id, NULL, "snap"), *tp = path_of(h, h->snaps[i].id, NULL, "snap"),
             *dp = path_of(h, base_id, h->snaps[i].id, "delta");
        int have = access(dp, R_OK) == 0, made = 0;
        if (!have) {
            char *tmp = path_of(h, "incoming", NULL, "delta");
            int d = export_delta_files(bp, tp, tmp, h->level, NULL, err, errlen);
            if (d == 0 && fsio_commit(tmp, dp, err, errlen) != 0) d = -1;
            if (d != 0) unlink(tmp);
            free(tmp);
            made = d == 0;
            if (d == -2) rc = EXPORT_HUB_REFUSED;
        }
        if ((have || made) && open_file(dp, f, err, errlen) == 0) {
            snprintf(f->id, sizeof f->id, "%s", h->snaps[i].id);
            snprintf(f->base_id, sizeof f->base_id, "%s", base_id);
            f->built = f->built || made;
            rc = EXPORT_HUB_OK;
        }
        free(bp);
        free(tp);
        free(dp);
    }
    evict(h);                          /* an open descriptor outlives its file */
    pthread_mutex_unlock(&h->mu);
    return rc;
}
