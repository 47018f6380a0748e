/* reader.c — iterating verified records across segments, following a writer.
 *
 * Invariant (architecture.md 5): damage anywhere but a torn tail of the newest
 * segment is an error "segment N offset M: what", never skipped; sequence
 * numbers must run on without a gap across records and segments. A torn tail
 * (format.c's rule) and a record still being written look alike from here:
 * both end the iteration for now (return 0), and the next call looks again.
 * Tests: test_journal.c test_bit_flip_each_region, test_torn_tail_every_offset,
 * test_follow_live_writer, test_follow_writer_process,
 * test_sequence_gap_and_incomplete_old_segment. */
#include "journal/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "journal/format.h"

struct journal_reader {
    char *dir;
    uint64_t from;             /* first seq to yield; 0 = the oldest present */
    int fd;                    /* current segment, -1 before the first one */
    uint64_t seg;              /* its first seq */
    uint64_t off;              /* offset of the next record in it */
    uint64_t expect;           /* seq the next record must carry */
    uint64_t pending;          /* incomplete bytes at off after a 0 return */
    int rechecked;             /* read again after seeing a newer segment */
    struct jf_buf in;          /* the stored record */
    struct jf_buf out;         /* its inflated payload */
    char table[JOURNAL_TABLE_MAX + 1];
    z_stream zs;               /* raw inflate, reset per record */
};

static int open_segment(struct journal_reader *r, uint64_t first, char *err, size_t errlen)
{
    char path[JF_PATH_MAX], why[JF_WHY_MAX];
    jf_seg_path(path, sizeof path, r->dir, first);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "segment %llu: open %s: %s", (unsigned long long)first, path,
                 strerror(errno));
        return -1;
    }
    unsigned char hdr[JF_SEG_HDR];
    ssize_t got = pread(fd, hdr, sizeof hdr, 0);
    if (jf_seg_check(hdr, got < 0 ? 0 : (size_t)got, first, why, sizeof why) != 0) {
        close(fd);
        snprintf(err, errlen, "segment %llu offset 0: %s", (unsigned long long)first, why);
        return -1;
    }
    if (r->fd >= 0) close(r->fd);
    r->fd = fd;
    r->seg = first;
    r->off = JF_SEG_HDR;
    r->rechecked = 0;
    return 0;
}

/* Open the segment holding r->from, if any segment exists yet. */
static int pick_start(struct journal_reader *r, char *err, size_t errlen)
{
    uint64_t *segs;
    size_t n;
    if (jf_list(r->dir, &segs, &n, err, errlen) != 0) return -1;
    if (n == 0) {
        free(segs);
        return 0;
    }
    if (r->from && r->from < segs[0]) {
        snprintf(err, errlen, "journal %s: seq %llu is no longer in the journal (oldest segment starts at %llu)",
                 r->dir, (unsigned long long)r->from, (unsigned long long)segs[0]);
        free(segs);
        return -1;
    }
    size_t i = 0;
    while (i + 1 < n && segs[i + 1] <= r->from) i++;
    uint64_t first = segs[i];
    free(segs);
    if (open_segment(r, first, err, errlen) != 0) return -1;
    r->expect = first;
    return 0;
}

static struct journal_reader *reader_new(const char *dir, uint64_t from_seq, char *err, size_t errlen)
{
    struct journal_reader *r = calloc(1, sizeof *r);
    if (!r || !(r->dir = strdup(dir))) {
        free(r);
        snprintf(err, errlen, "journal: out of memory");
        return NULL;
    }
    r->fd = -1;
    r->from = from_seq;
    if (inflateInit2(&r->zs, -15) != Z_OK) {
        free(r->dir);
        free(r);
        snprintf(err, errlen, "journal: inflateInit2 failed");
        return NULL;
    }
    return r;
}

int journal_reader_open(const char *dir, uint64_t from_seq, struct journal_reader **out,
                        char *err, size_t errlen)
{
    *out = NULL;
    struct journal_reader *r = reader_new(dir, from_seq, err, errlen);
    if (!r) return -1;
    if (pick_start(r, err, errlen) != 0) {
        journal_reader_close(r);
        return -1;
    }
    *out = r;
    return 0;
}

static int damage(struct journal_reader *r, char *err, size_t errlen, const char *why)
{
    snprintf(err, errlen, "segment %llu offset %llu: %s", (unsigned long long)r->seg,
             (unsigned long long)r->off, why);
    return -1;
}

/* At the end of the current segment: 1 moved to the next one, 2 read this one
 * once more, 0 this is the newest, -1 damage. */
static int next_segment(struct journal_reader *r, char *err, size_t errlen)
{
    uint64_t *segs;
    size_t n;
    if (jf_list(r->dir, &segs, &n, err, errlen) != 0) return -1;
    uint64_t next = 0;
    for (size_t i = 0; i < n && !next; i++)
        if (segs[i] > r->seg) next = segs[i];
    free(segs);
    if (!next) return 0;
    /* The writer finishes a segment before it creates the next, so once a newer
     * one exists this one is final: read it once more before judging it. */
    if (!r->rechecked) {
        r->rechecked = 1;
        return 2;
    }
    if (r->pending) {
        char why[JF_WHY_MAX];
        snprintf(why, sizeof why, "incomplete record (%llu bytes) in a segment that is not the newest",
                 (unsigned long long)r->pending);
        return damage(r, err, errlen, why);
    }
    if (next != r->expect) {
        snprintf(err, errlen, "segment %llu offset 0: sequence gap: expected %llu, segment starts at %llu",
                 (unsigned long long)next, (unsigned long long)r->expect, (unsigned long long)next);
        return -1;
    }
    if (open_segment(r, next, err, errlen) != 0) return -1;
    r->pending = 0;
    return 1;
}

int journal_reader_next(struct journal_reader *r, uint64_t max_seq, struct journal_record *rec,
                        char *err, size_t errlen)
{
    char why[JF_WHY_MAX];
    for (;;) {
        if (r->fd < 0) {
            if (pick_start(r, err, errlen) != 0) return -1;
            if (r->fd < 0) return 0;
        }
        struct jf_rec h;
        uint64_t pending;
        enum jf_read rc = jf_read_record(r->fd, r->off, &r->in, &h, &pending, why, sizeof why);
        if (rc == JF_BAD) return damage(r, err, errlen, why);
        if (rc == JF_EOF || rc == JF_SHORT) {
            r->pending = pending;
            int m = next_segment(r, err, errlen);
            if (m < 0) return -1;
            if (m == 0) return 0;
            continue;
        }
        r->rechecked = 0;
        r->pending = 0;
        if (h.seq != r->expect) {
            snprintf(why, sizeof why, "sequence gap: expected %llu, found %llu",
                     (unsigned long long)r->expect, (unsigned long long)h.seq);
            return damage(r, err, errlen, why);
        }
        if (h.seq > max_seq) return 0;
        if (h.seq < r->from) {
            r->off += h.total;
            r->expect++;
            continue;
        }
        if (jf_reserve(&r->out, (size_t)h.raw_len + 1) != 0) return damage(r, err, errlen, "out of memory");
        const unsigned char *stored = r->in.p + JF_REC_HDR;
        if (jf_inflate(&r->zs, stored + h.table_len, h.comp_len, r->out.p, h.raw_len, why,
                       sizeof why) != 0) {
            char msg[JF_WHY_MAX + 32];
            snprintf(msg, sizeof msg, "%s (seq %llu)", why, (unsigned long long)h.seq);
            return damage(r, err, errlen, msg);
        }
        memcpy(r->table, stored, h.table_len);
        r->table[h.table_len] = '\0';
        rec->seq = h.seq;
        rec->type = h.type;
        rec->table = r->table;
        rec->payload = r->out.p;
        rec->len = h.raw_len;
        rec->stored = (size_t)h.total;
        rec->segment = r->seg;
        rec->offset = r->off;
        r->off += h.total;
        r->expect++;
        return 1;
    }
}

void journal_reader_place(const struct journal_reader *r, struct journal_place *p)
{
    p->seq = r->fd >= 0 ? r->expect : 0;
    p->segment = r->seg;
    p->offset = r->off;
}

int journal_reader_open_place(const char *dir, const struct journal_place *p, struct journal_reader **out,
                              char *err, size_t errlen)
{
    *out = NULL;
    if (!p->seq || p->segment > p->seq || p->offset < JF_SEG_HDR) return 1;
    struct journal_reader *r = reader_new(dir, p->seq, err, errlen);
    if (!r) return -1;
    /* Without listing the directory: the place's segment, and at the place
     * the record p->seq (or the segment's end). Anything else (a segment
     * compacted away, a journal replaced): start as journal_reader_open. */
    char why[JF_WHY_MAX];
    struct jf_rec h;
    uint64_t pending;
    if (open_segment(r, p->segment, why, sizeof why) == 0) {
        enum jf_read rc = jf_read_record(r->fd, p->offset, &r->in, &h, &pending, why, sizeof why);
        if ((rc == JF_REC && h.seq == p->seq) || (rc == JF_EOF && pending == 0)) {
            r->off = p->offset;
            r->expect = p->seq;
            *out = r;
            return 0;
        }
    }
    journal_reader_close(r);
    return 1;
}

int journal_reader_open_at(const char *dir, const struct journal_place *p, struct journal_reader **out,
                           char *err, size_t errlen)
{
    int rc = journal_reader_open_place(dir, p, out, err, errlen);
    return rc == 1 ? journal_reader_open(dir, p->seq, out, err, errlen) : rc;
}

void journal_reader_where(const struct journal_reader *r, uint64_t *segment, uint64_t *offset,
                          uint64_t *pending)
{
    if (segment) *segment = r->seg;
    if (offset) *offset = r->off;
    if (pending) *pending = r->pending;
}

void journal_reader_close(struct journal_reader *r)
{
    if (!r) return;
    if (r->fd >= 0) close(r->fd);
    inflateEnd(&r->zs);
    free(r->in.p);
    free(r->out.p);
    free(r->dir);
    free(r);
}
