/* writer.c — appending records: compress, frame, write, sync; rolling segments;
 * truncating a torn tail on open.
 *
 * Invariant (architecture.md 1, write-ahead): journal_append() returns 0 only
 * after write() and fdatasync() of the whole record (plus fsync of the directory
 * when the record opened a new segment), or, in a batch, journal_batch_commit()
 * does the one fdatasync for all of them; journal_writer_durable_seq() is the
 * highest record past that point, which in-process followers use as their bound.
 * Tests: test_journal.c test_append_durable_and_batch, test_write_failure_fsize.
 *
 * Invariant (architecture.md 5, no half records): a failed write is truncated
 * back to the last record boundary before the error returns, so no prefix of a
 * record stays in the file and the next append reuses its sequence number. If
 * that truncate (or an fsync, whose failure leaves the page cache in an unknown
 * state) fails, the writer is broken: it refuses appends, and reopening applies
 * the torn-tail rule of format.c to whatever the file holds.
 * Tests: test_write_failure_fsize, test_writer_faults, test_torn_tail_every_offset.
 *
 * A new segment is written as ".NAME.tmp" (header only) and put in place by
 * fsio_commit_fd (synced, renamed, directory synced), so a segment file always
 * has a whole header. */
#include "journal/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include "journal/fsio.h"
#include "journal/format.h"

/* Holds the pid of the process that has the lock (best effort: read only to
 * name the holder in the error of the one refused). */
#define WRITER_PID_FILE ".writer.pid"

struct journal_writer {
    char *dir;
    int dirfd;                 /* flock'ed for the writer's lifetime */
    int fd;                    /* newest segment, -1 until an append creates one */
    uint64_t seg_first;        /* its first sequence number (its name) */
    uint64_t seg_size;         /* its length: where the next record goes */
    uint64_t seg_records;      /* records in it */
    uint64_t next_seq;
    uint64_t durable_seq;      /* highest synced record, 0 = none */
    uint64_t segment_size;     /* roll threshold */
    int batch;                 /* between batch_begin and batch_commit */
    int dirty;                 /* fd has writes not yet synced */
    char broken[200];          /* non-empty: why appends are refused */
    z_stream zs;               /* raw deflate, reset per record */
    struct jf_buf out;         /* the record being framed */
    void (*warn)(void *, const char *);
    void *warn_ctx;
    int (*fault)(void *, const char *);   /* test hook, see journal_opts */
    void *fault_ctx;
};

static void warnf(struct journal_writer *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warnf(struct journal_writer *w, const char *fmt, ...)
{
    if (!w->warn) return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    w->warn(w->warn_ctx, msg);
}

static int write_full(int fd, const unsigned char *p, size_t n, uint64_t off)
{
    while (n) {
        ssize_t r = pwrite(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (r == 0) {
            errno = EIO;
            return -1;
        }
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

/* The test hook: -1 with errno set when the test wants `op` to fail. */
static int fault(struct journal_writer *w, const char *op)
{
    int e = w->fault ? w->fault(w->fault_ctx, op) : 0;
    if (!e) return 0;
    errno = e;
    return -1;
}

static int sync_data(struct journal_writer *w, int fd)
{
    return fault(w, "fdatasync") != 0 ? -1 : fdatasync(fd);
}

/* The record's bytes at off; a faulted write stops half way, like a full disk. */
static int write_record(struct journal_writer *w, const unsigned char *p, size_t n, uint64_t off)
{
    int e = w->fault ? w->fault(w->fault_ctx, "write") : 0;
    if (e) {
        write_full(w->fd, p, n / 2, off);
        errno = e;
        return -1;
    }
    return write_full(w->fd, p, n, off);
}

static void break_writer(struct journal_writer *w, const char *what, int e)
{
    snprintf(w->broken, sizeof w->broken, "%s: %s", what, strerror(e));
}

/* Remove ".NAME.tmp" left by a crash during segment creation. */
static void remove_tmp(struct journal_writer *w)
{
    DIR *d = fdopendir(dup(w->dirfd));
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (e->d_name[0] == '.' && n > 9 && strcmp(e->d_name + n - 8, ".seg.tmp") == 0)
            unlinkat(w->dirfd, e->d_name, 0);
    }
    closedir(d);
}

/* Scan the newest segment: find the end of its last valid record, truncate a
 * torn tail, learn the next sequence number. */
static int scan_newest(struct journal_writer *w, uint64_t first, char *err, size_t errlen)
{
    char path[JF_PATH_MAX], why[JF_WHY_MAX];
    jf_seg_path(path, sizeof path, w->dir, first);
    w->fd = open(path, O_RDWR | O_CLOEXEC);
    if (w->fd < 0) {
        snprintf(err, errlen, "segment %llu: open %s: %s", (unsigned long long)first, path,
                 strerror(errno));
        return -1;
    }
    unsigned char hdr[JF_SEG_HDR];
    ssize_t got = pread(w->fd, hdr, sizeof hdr, 0);
    if (jf_seg_check(hdr, got < 0 ? 0 : (size_t)got, first, why, sizeof why) != 0) {
        snprintf(err, errlen, "segment %llu offset 0: %s", (unsigned long long)first, why);
        return -1;
    }
    w->seg_first = first;
    w->next_seq = first;
    uint64_t off = JF_SEG_HDR, pending;
    struct jf_rec h;
    for (;;) {
        enum jf_read rc = jf_read_record(w->fd, off, &w->out, &h, &pending, why, sizeof why);
        if (rc == JF_EOF) break;
        if (rc == JF_SHORT) {
            if (fault(w, "ftruncate") != 0 || ftruncate(w->fd, (off_t)off) != 0 ||
                sync_data(w, w->fd) != 0) {
                snprintf(err, errlen, "segment %llu offset %llu: truncating a torn tail: %s",
                         (unsigned long long)first, (unsigned long long)off, strerror(errno));
                return -1;
            }
            warnf(w, "segment %llu offset %llu: torn tail of %llu bytes truncated",
                  (unsigned long long)first, (unsigned long long)off, (unsigned long long)pending);
            break;
        }
        if (rc == JF_BAD) {
            snprintf(err, errlen, "segment %llu offset %llu: %s", (unsigned long long)first,
                     (unsigned long long)off, why);
            return -1;
        }
        if (h.seq != w->next_seq) {
            snprintf(err, errlen, "segment %llu offset %llu: sequence gap: expected %llu, found %llu",
                     (unsigned long long)first, (unsigned long long)off,
                     (unsigned long long)w->next_seq, (unsigned long long)h.seq);
            return -1;
        }
        w->next_seq++;
        w->seg_records++;
        off += h.total;
    }
    w->seg_size = off;
    /* What a crashed predecessor left in the page cache becomes durable now. */
    if (sync_data(w, w->fd) != 0) {
        snprintf(err, errlen, "segment %llu: fdatasync: %s", (unsigned long long)first, strerror(errno));
        return -1;
    }
    w->durable_seq = w->next_seq - 1;
    return 0;
}

int journal_writer_open(const struct journal_opts *o, struct journal_writer **out,
                        char *err, size_t errlen)
{
    *out = NULL;
    int level = o->level ? o->level : JOURNAL_DEFAULT_LEVEL;
    if (level < 1 || level > 9) {
        snprintf(err, errlen, "journal: compression level %d is not in 1..9", o->level);
        return -1;
    }
    struct journal_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->dir = strdup(o->dir))) {
        free(w);
        snprintf(err, errlen, "journal: out of memory");
        return -1;
    }
    w->fd = -1;
    w->segment_size = o->segment_size ? o->segment_size : JOURNAL_DEFAULT_SEGMENT_SIZE;
    w->warn = o->warn;
    w->warn_ctx = o->warn_ctx;
    w->fault = o->fault;
    w->fault_ctx = o->fault_ctx;
    w->next_seq = 1;
    if (deflateInit2(&w->zs, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        free(w->dir);
        free(w);
        snprintf(err, errlen, "journal: deflateInit2 failed");
        return -1;
    }
    w->dirfd = -1;
    if (mkdir(o->dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "journal %s: mkdir: %s", o->dir, strerror(errno));
        goto fail;
    }
    w->dirfd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (w->dirfd < 0) {
        snprintf(err, errlen, "journal %s: %s", o->dir, strerror(errno));
        goto fail;
    }
    if (flock(w->dirfd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK) {
            snprintf(err, errlen, "journal %s: %s", o->dir, strerror(errno));
            goto fail;
        }
        /* Name the holder: it recorded its pid after taking the lock. */
        char pid[32] = "";
        int pfd = openat(w->dirfd, WRITER_PID_FILE, O_RDONLY | O_CLOEXEC);
        ssize_t n = pfd >= 0 ? read(pfd, pid, sizeof pid - 1) : -1;
        if (pfd >= 0) close(pfd);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        if (pid[0]) snprintf(err, errlen, "journal %s: another writer has it open (process %s)", o->dir, pid);
        else snprintf(err, errlen, "journal %s: another writer has it open", o->dir);
        journal_writer_close(w);
        return JOURNAL_ELOCKED;
    }
    {
        /* For the message above, in whoever comes next while this one holds
         * it. Best effort: a directory that refuses it fails at the first
         * append anyway, with the reason. */
        char pid[32];
        int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
        int pfd = openat(w->dirfd, WRITER_PID_FILE, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (pfd >= 0) {
            if (write(pfd, pid, (size_t)len) != len) { /* the name is only a courtesy */ }
            close(pfd);
        }
    }
    remove_tmp(w);
    uint64_t *segs;
    size_t nsegs;
    if (jf_list(o->dir, &segs, &nsegs, err, errlen) != 0) goto fail;
    int rc = nsegs ? scan_newest(w, segs[nsegs - 1], err, errlen) : 0;
    free(segs);
    if (rc != 0) goto fail;
    *out = w;
    return 0;
fail:
    journal_writer_close(w);
    return -1;
}

/* Create segment next_seq: tmp file, header, then fsio (sync, rename, sync
 * directory), keeping the file open. err is only fsio's scratch here: the
 * messages below are the journal's own. */
static int new_segment(struct journal_writer *w, char *err, size_t errlen)
{
    char tmp[JF_PATH_MAX], path[JF_PATH_MAX];
    unsigned long long first = (unsigned long long)w->next_seq;
    snprintf(tmp, sizeof tmp, "%s/.%020llu.seg.tmp", w->dir, first);
    jf_seg_path(path, sizeof path, w->dir, w->next_seq);
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "segment %llu: creating %s: %s", first, tmp, strerror(errno));
        return -1;
    }
    unsigned char hdr[JF_SEG_HDR];
    jf_seg_header(hdr, w->next_seq);
    struct fsio_fault hook = {w->fault, w->fault_ctx};
    int rc = write_full(fd, hdr, sizeof hdr, 0) != 0 ? FSIO_EFILE : fsio_commit_fd(fd, tmp, path, &hook, err, errlen);
    if (rc == FSIO_EFILE) {
        int e = errno;
        close(fd);
        unlink(tmp);
        snprintf(err, errlen, "segment %llu: creating %s: %s", first, path, strerror(e));
        return -1;
    }
    if (rc == FSIO_EDIR) {
        break_writer(w, "fsync of the journal directory", errno);
        close(fd);
        snprintf(err, errlen, "segment %llu: %s", first, w->broken);
        return -1;
    }
    w->fd = fd;
    w->seg_first = w->next_seq;
    w->seg_size = JF_SEG_HDR;
    w->seg_records = 0;
    w->dirty = 0;
    return 0;
}

/* Close the current segment before starting the next; its records must be
 * durable first, since a batch commit only syncs the newest file. */
static int finish_segment(struct journal_writer *w, char *err, size_t errlen)
{
    if (w->dirty && sync_data(w, w->fd) != 0) {
        break_writer(w, "fdatasync", errno);
        snprintf(err, errlen, "segment %llu: %s", (unsigned long long)w->seg_first, w->broken);
        return -1;
    }
    close(w->fd);
    w->fd = -1;
    w->dirty = 0;
    return 0;
}

/* The record in w->out (header space, table, comp payload bytes): seal,
 * write (rolling the segment first when it would pass segment_size), sync
 * unless in a batch. */
static int append_framed(struct journal_writer *w, int type, size_t tl, size_t len, uint32_t comp,
                         uint64_t *seq, char *err, size_t errlen)
{
    unsigned char *rec = w->out.p;
    uint64_t total = JF_REC_HDR + tl + comp;
    if (w->fd >= 0 && w->seg_records > 0 && w->seg_size + total > w->segment_size &&
        finish_segment(w, err, errlen) != 0)
        return -1;
    if (w->fd < 0 && new_segment(w, err, errlen) != 0) return -1;

    jf_rec_seal(rec, type, w->next_seq, (unsigned)tl, (uint32_t)len, comp);
    if (write_record(w, rec, (size_t)total, w->seg_size) != 0) {
        int e = errno;
        /* No prefix of the record may stay: cut back to the last boundary. */
        if (fault(w, "ftruncate") != 0 || ftruncate(w->fd, (off_t)w->seg_size) != 0)
            break_writer(w, "ftruncate after a failed write", errno);
        snprintf(err, errlen, "segment %llu offset %llu: writing record %llu (%llu bytes): %s%s",
                 (unsigned long long)w->seg_first, (unsigned long long)w->seg_size,
                 (unsigned long long)w->next_seq, (unsigned long long)total, strerror(e),
                 w->broken[0] ? "; the writer is broken" : "");
        return -1;
    }
    uint64_t s = w->next_seq;
    w->seg_size += total;
    w->seg_records++;
    w->next_seq++;
    if (seq) *seq = s;
    if (w->batch) {
        w->dirty = 1;
        return 0;
    }
    if (sync_data(w, w->fd) != 0) {
        break_writer(w, "fdatasync", errno);
        snprintf(err, errlen, "segment %llu: record %llu: %s", (unsigned long long)w->seg_first,
                 (unsigned long long)s, w->broken);
        return -1;
    }
    w->durable_seq = s;
    return 0;
}

/* Checks shared by both appends; reserves w->out and copies the table name. */
static int append_begin(struct journal_writer *w, int type, const char *table, size_t len, size_t comp_max,
                        size_t *tl_out, char *err, size_t errlen)
{
    if (w->broken[0]) {
        snprintf(err, errlen, "journal writer is broken (%s): reopen it", w->broken);
        return -1;
    }
    size_t tl = strlen(table);
    if (type < 1 || type > 255 || tl > JOURNAL_TABLE_MAX || len > JOURNAL_PAYLOAD_MAX) {
        snprintf(err, errlen, "journal: bad record (type %d, table of %zu bytes, payload of %zu bytes)",
                 type, tl, len);
        return -1;
    }
    if (jf_reserve(&w->out, JF_REC_HDR + tl + comp_max) != 0) {
        snprintf(err, errlen, "journal: out of memory");
        return -1;
    }
    memcpy(w->out.p + JF_REC_HDR, table, tl);
    *tl_out = tl;
    return 0;
}

int journal_append(struct journal_writer *w, int type, const char *table, const void *payload,
                   size_t len, uint64_t *seq, char *err, size_t errlen)
{
    size_t tl;
    if (append_begin(w, type, table, len, deflateBound(&w->zs, (uLong)len), &tl, err, errlen) != 0) return -1;
    unsigned char dummy = 0;
    deflateReset(&w->zs);
    w->zs.next_in = len ? (Bytef *)(uintptr_t)payload : &dummy;
    w->zs.avail_in = (uInt)len;
    w->zs.next_out = w->out.p + JF_REC_HDR + tl;
    w->zs.avail_out = (uInt)deflateBound(&w->zs, (uLong)len);
    if (deflate(&w->zs, Z_FINISH) != Z_STREAM_END) {
        snprintf(err, errlen, "journal: deflate failed");
        return -1;
    }
    return append_framed(w, type, tl, len, (uint32_t)w->zs.total_out, seq, err, errlen);
}

/* ---- compressed ahead -------------------------------------------------------- */

struct journal_deflater {
    z_stream zs;
};

int journal_deflater_new(int level, struct journal_deflater **out, char *err, size_t errlen)
{
    *out = NULL;
    if (level == 0) level = JOURNAL_DEFAULT_LEVEL;
    struct journal_deflater *d = calloc(1, sizeof *d);
    if (!d || deflateInit2(&d->zs, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        free(d);
        snprintf(err, errlen, "journal: cannot start a deflater (level %d)", level);
        return -1;
    }
    *out = d;
    return 0;
}

void journal_deflater_free(struct journal_deflater *d)
{
    if (!d) return;
    deflateEnd(&d->zs);
    free(d);
}

int journal_deflate(struct journal_deflater *d, const void *payload, size_t len, struct journal_blob *out,
                    char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (len > JOURNAL_PAYLOAD_MAX) {
        snprintf(err, errlen, "journal: a payload of %zu bytes is over the limit", len);
        return -1;
    }
    size_t bound = deflateBound(&d->zs, (uLong)len);
    out->p = malloc(bound ? bound : 1);
    if (!out->p) {
        snprintf(err, errlen, "journal: out of memory");
        return -1;
    }
    unsigned char dummy = 0;
    deflateReset(&d->zs);
    d->zs.next_in = len ? (Bytef *)(uintptr_t)payload : &dummy;
    d->zs.avail_in = (uInt)len;
    d->zs.next_out = out->p;
    d->zs.avail_out = (uInt)bound;
    if (deflate(&d->zs, Z_FINISH) != Z_STREAM_END) {
        journal_blob_free(out);
        snprintf(err, errlen, "journal: deflate failed");
        return -1;
    }
    out->len = d->zs.total_out;
    out->raw_len = len;
    return 0;
}

void journal_blob_free(struct journal_blob *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

int journal_append_blob(struct journal_writer *w, int type, const char *table, const struct journal_blob *b,
                        uint64_t *seq, char *err, size_t errlen)
{
    size_t tl;
    if (append_begin(w, type, table, b->raw_len, b->len, &tl, err, errlen) != 0) return -1;
    memcpy(w->out.p + JF_REC_HDR + tl, b->p, b->len);
    return append_framed(w, type, tl, b->raw_len, (uint32_t)b->len, seq, err, errlen);
}

void journal_batch_begin(struct journal_writer *w) { w->batch = 1; }

int journal_batch_commit(struct journal_writer *w, char *err, size_t errlen)
{
    if (w->broken[0]) {
        snprintf(err, errlen, "journal writer is broken (%s): reopen it", w->broken);
        return -1;
    }
    if (w->dirty && sync_data(w, w->fd) != 0) {
        break_writer(w, "fdatasync", errno);
        snprintf(err, errlen, "segment %llu: batch commit: %s", (unsigned long long)w->seg_first,
                 w->broken);
        return -1;
    }
    w->dirty = 0;
    w->batch = 0;
    w->durable_seq = w->next_seq - 1;
    return 0;
}

uint64_t journal_writer_next_seq(const struct journal_writer *w) { return w->next_seq; }
uint64_t journal_writer_durable_seq(const struct journal_writer *w) { return w->durable_seq; }

void journal_writer_close(struct journal_writer *w)
{
    if (!w) return;
    if (w->fd >= 0) close(w->fd);
    if (w->dirfd >= 0) close(w->dirfd);
    deflateEnd(&w->zs);
    free(w->out.p);
    free(w->dir);
    free(w);
}
