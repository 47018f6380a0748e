/* format.c — the journal's on-disk format: segment and record headers, CRCs,
 * reading one record and checking it, payload inflation, segment listing.
 *
 * FORMAT VERSION 1 (docs/journal-format.md is the long form). All integers are
 * little-endian. CRC-32 is zlib's crc32() (ISO-HDLC polynomial, as in gzip).
 *
 * A journal is a directory of segment files named by the sequence number of
 * their first record, 20 decimal digits: 00000000000000000001.seg. Other names
 * are ignored (".NAME.tmp" is a segment being created; the writer removes it).
 *
 * Segment header, 32 bytes at offset 0:
 *    0   8  magic "IAJOURNL"
 *    8   4  format version (1)
 *   12   4  header size (32)
 *   16   8  first sequence number (equals the file name)
 *   24   4  reserved, 0
 *   28   4  CRC-32 of bytes 0..27
 * Records follow back to back from offset 32; a record never spans segments.
 *
 * Record, 32-byte header then table name then payload:
 *    0   4  magic "IAJR"
 *    4   1  format version (1)
 *    5   1  type (journal_type; 0 is invalid)
 *    6   1  reserved, 0
 *    7   1  table name length T (0..255; no NUL bytes in the name)
 *    8   8  sequence number
 *   16   4  raw payload length R (<= JOURNAL_PAYLOAD_MAX)
 *   20   4  stored payload length C
 *   24   4  header CRC: CRC-32 of bytes 0..23
 *   28   4  record CRC: CRC-32 of bytes 0..27, then the T table bytes, then the
 *           C payload bytes
 *   32   T  table name
 * 32+T   C  payload: raw deflate (RFC 1951, no zlib/gzip wrapper: the record CRC
 *           already covers it) of the R raw payload bytes (rows.c encodes those)
 *
 * VALIDITY: a record at offset O of a segment is valid if and only if all 32
 * header bytes are present, the magic matches, the version is known, the header
 * CRC matches, the reserved byte is 0, the type is not 0, R <= JOURNAL_PAYLOAD_MAX,
 * C <= 257 MiB, R <= 1032*C + 64 (deflate cannot expand more), all 32+T+C bytes
 * are present, the record CRC matches, the table name has no NUL, the sequence
 * number is one more than the previous record's (or the segment's first sequence
 * number for the first record), and the payload inflates to exactly R bytes.
 * The header CRC exists so that a length field is trusted before it is used: a
 * flipped bit in a length is damage, never mistaken for a short (torn) record.
 *
 * TORN TAIL: in the newest segment, the bytes from the end of the last valid
 * record to end of file form a torn tail if and only if (a) they are fewer than
 * 32, or (b) their first 32 bytes pass the magic, version and header CRC checks
 * but fewer than 32+T+C bytes are present, or (c) they are all zero (a file
 * extended but not written before a crash). Anything else there is damage, as
 * is any incomplete record in a segment that is not the newest.
 *
 * READING: list the segments, open the one holding the start sequence, read
 * record after record with jf_read_record(); at end of file, if a newer segment
 * exists re-read once more (the writer finishes a segment before it creates the
 * next), then move on and check the next segment's first sequence number
 * continues the sequence. Sequence continuity is checked by the callers. */
#include "journal/format.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int jf_reserve(struct jf_buf *b, size_t n)
{
    if (n <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < n) cap *= 2;
    unsigned char *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

void journal_segment_name(uint64_t first, char out[JOURNAL_SEGMENT_NAME_LEN])
{
    snprintf(out, JOURNAL_SEGMENT_NAME_LEN, "%020llu.seg", (unsigned long long)first);
}

void jf_seg_path(char *out, size_t n, const char *dir, uint64_t first)
{
    char name[JOURNAL_SEGMENT_NAME_LEN];
    journal_segment_name(first, name);
    snprintf(out, n, "%s/%s", dir, name);
}

void jf_seg_header(unsigned char out[JF_SEG_HDR], uint64_t first_seq)
{
    memcpy(out, JF_SEG_MAGIC, 8);
    jf_put32(out + 8, 1);
    jf_put32(out + 12, JF_SEG_HDR);
    jf_put64(out + 16, first_seq);
    jf_put32(out + 24, 0);
    jf_put32(out + 28, (uint32_t)crc32(0L, out, 28));
}

int jf_seg_check(const unsigned char *hdr, size_t got, uint64_t name_seq, char *why, size_t whylen)
{
    if (got < JF_SEG_HDR) {
        snprintf(why, whylen, "segment header is %zu bytes, expected %d", got, JF_SEG_HDR);
        return -1;
    }
    if (memcmp(hdr, JF_SEG_MAGIC, 8) != 0) {
        snprintf(why, whylen, "bad segment magic");
        return -1;
    }
    uint32_t v = jf_get32(hdr + 8);
    if (v != 1) {
        snprintf(why, whylen, "segment format version %u is not supported (this reader knows version %d)",
                 v, 1);
        return -1;
    }
    if ((uint32_t)crc32(0L, hdr, 28) != jf_get32(hdr + 28)) {
        snprintf(why, whylen, "segment header checksum mismatch");
        return -1;
    }
    if (jf_get32(hdr + 12) != JF_SEG_HDR || jf_get32(hdr + 24) != 0) {
        snprintf(why, whylen, "bad segment header size or reserved field");
        return -1;
    }
    if (jf_get64(hdr + 16) != name_seq) {
        snprintf(why, whylen, "segment header says first seq %llu but the file is named for %llu",
                 (unsigned long long)jf_get64(hdr + 16), (unsigned long long)name_seq);
        return -1;
    }
    return 0;
}

void jf_rec_seal(unsigned char *buf, int type, uint64_t seq, unsigned table_len, uint32_t raw_len,
                 uint32_t comp_len)
{
    memcpy(buf, JF_REC_MAGIC, 4);
    buf[4] = 1;
    buf[5] = (unsigned char)type;
    buf[6] = 0;
    buf[7] = (unsigned char)table_len;
    jf_put64(buf + 8, seq);
    jf_put32(buf + 16, raw_len);
    jf_put32(buf + 20, comp_len);
    jf_put32(buf + 24, (uint32_t)crc32(0L, buf, 24));
    uLong c = crc32(0L, buf, 28);
    c = crc32(c, buf + JF_REC_HDR, (uInt)(table_len + comp_len));
    jf_put32(buf + 28, (uint32_t)c);
}

/* pread until n bytes or end of file; returns bytes read or -1. */
static ssize_t read_full(int fd, void *p, size_t n, uint64_t off)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, (char *)p + got, n - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (r == 0) break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* 1 when every byte from off to size is zero, 0 when not, -1 on read error. */
static int all_zero(int fd, uint64_t off, uint64_t size)
{
    unsigned char chunk[8192];
    while (off < size) {
        size_t want = size - off < sizeof chunk ? (size_t)(size - off) : sizeof chunk;
        ssize_t r = read_full(fd, chunk, want, off);
        if (r <= 0) return r < 0 ? -1 : 1;  /* shrank under us: nothing left to judge */
        for (ssize_t i = 0; i < r; i++)
            if (chunk[i]) return 0;
        off += (uint64_t)r;
    }
    return 1;
}

enum jf_read jf_read_record(int fd, uint64_t off, struct jf_buf *b, struct jf_rec *h,
                            uint64_t *pending, char *why, size_t whylen)
{
    struct stat st;
    *pending = 0;
    if (fstat(fd, &st) != 0) {
        snprintf(why, whylen, "fstat: %s", strerror(errno));
        return JF_BAD;
    }
    uint64_t size = (uint64_t)st.st_size;
    if (off >= size) return JF_EOF;
    if (size - off < JF_REC_HDR) {
        *pending = size - off;
        return JF_SHORT;
    }
    if (jf_reserve(b, JF_REC_HDR) != 0) {
        snprintf(why, whylen, "out of memory");
        return JF_BAD;
    }
    ssize_t got = read_full(fd, b->p, JF_REC_HDR, off);
    if (got < 0) {
        snprintf(why, whylen, "read: %s", strerror(errno));
        return JF_BAD;
    }
    if (got < JF_REC_HDR) {          /* truncated while we looked */
        *pending = (uint64_t)got;
        return got == 0 ? JF_EOF : JF_SHORT;
    }
    const unsigned char *p = b->p;
    if (memcmp(p, JF_REC_MAGIC, 4) != 0) {
        int z = all_zero(fd, off, size);
        if (z == 1) {
            *pending = size - off;
            return JF_SHORT;
        }
        snprintf(why, whylen, "%s", z < 0 ? "read error" : "bad record magic");
        return JF_BAD;
    }
    if (p[4] != 1) {
        snprintf(why, whylen, "record format version %u is not supported (this reader knows version %d)",
                 p[4], 1);
        return JF_BAD;
    }
    if ((uint32_t)crc32(0L, p, 24) != jf_get32(p + 24)) {
        snprintf(why, whylen, "record header checksum mismatch");
        return JF_BAD;
    }
    h->type = p[5];
    h->table_len = p[7];
    h->seq = jf_get64(p + 8);
    h->raw_len = jf_get32(p + 16);
    h->comp_len = jf_get32(p + 20);
    if (p[6] != 0 || h->type == 0) {
        snprintf(why, whylen, "bad record header (type %d, reserved %u)", h->type, p[6]);
        return JF_BAD;
    }
    if (h->raw_len > JOURNAL_PAYLOAD_MAX || h->comp_len > JF_STORED_MAX ||
        (uint64_t)h->raw_len > (uint64_t)h->comp_len * 1032 + 64) {
        snprintf(why, whylen, "impossible payload lengths (raw %u, stored %u)", h->raw_len,
                 h->comp_len);
        return JF_BAD;
    }
    h->total = JF_REC_HDR + (uint64_t)h->table_len + h->comp_len;
    if (size - off < h->total) {
        *pending = size - off;
        return JF_SHORT;
    }
    if (jf_reserve(b, (size_t)h->total) != 0) {
        snprintf(why, whylen, "out of memory");
        return JF_BAD;
    }
    size_t rest = (size_t)h->total - JF_REC_HDR;
    got = read_full(fd, b->p + JF_REC_HDR, rest, off + JF_REC_HDR);
    if (got < 0) {
        snprintf(why, whylen, "read: %s", strerror(errno));
        return JF_BAD;
    }
    if ((size_t)got < rest) {
        *pending = JF_REC_HDR + (uint64_t)got;
        return JF_SHORT;
    }
    p = b->p;
    uLong c = crc32(0L, p, 28);
    c = crc32(c, p + JF_REC_HDR, (uInt)rest);
    if ((uint32_t)c != jf_get32(p + 28)) {
        snprintf(why, whylen, "record checksum mismatch (seq %llu)", (unsigned long long)h->seq);
        return JF_BAD;
    }
    if (memchr(p + JF_REC_HDR, 0, h->table_len)) {
        snprintf(why, whylen, "table name contains a NUL byte (seq %llu)", (unsigned long long)h->seq);
        return JF_BAD;
    }
    return JF_REC;
}

int jf_inflate(z_stream *zs, const unsigned char *in, size_t inlen, unsigned char *out,
               size_t outlen, char *why, size_t whylen)
{
    unsigned char dummy;
    if (inflateReset(zs) != Z_OK) {
        snprintf(why, whylen, "inflateReset failed");
        return -1;
    }
    zs->next_in = (Bytef *)(uintptr_t)in;
    zs->avail_in = (uInt)inlen;
    zs->next_out = outlen ? out : &dummy;
    zs->avail_out = (uInt)outlen;
    int rc = inflate(zs, Z_FINISH);
    if (rc == Z_STREAM_END && zs->avail_out == 0 && zs->avail_in == 0) return 0;
    if (rc == Z_STREAM_END && zs->avail_out != 0) {
        snprintf(why, whylen, "payload inflates to %zu bytes, header says %zu",
                 outlen - zs->avail_out, outlen);
    } else if (rc == Z_STREAM_END) {
        snprintf(why, whylen, "%u bytes after the end of the compressed payload", zs->avail_in);
    } else if (rc == Z_BUF_ERROR && zs->avail_out == 0) {
        snprintf(why, whylen, "payload inflates to more than the %zu bytes the header says", outlen);
    } else {
        snprintf(why, whylen, "payload does not inflate: %s",
                 zs->msg ? zs->msg : "truncated deflate stream");
    }
    return -1;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* 1 and *seq when name is exactly 20 digits + ".seg". */
static int parse_name(const char *name, uint64_t *seq)
{
    uint64_t v = 0;
    for (int i = 0; i < JF_NAME_DIGITS; i++) {
        if (name[i] < '0' || name[i] > '9') return 0;
        unsigned d = (unsigned)(name[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return 0;
        v = v * 10 + d;
    }
    if (strcmp(name + JF_NAME_DIGITS, ".seg") != 0) return 0;
    *seq = v;
    return 1;
}

int jf_list(const char *dir, uint64_t **out, size_t *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return 0;
        snprintf(err, errlen, "journal %s: %s", dir, strerror(errno));
        return -1;
    }
    uint64_t *v = NULL;
    size_t len = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        uint64_t seq;
        if (!parse_name(e->d_name, &seq)) continue;
        if (len == cap) {
            cap = cap ? cap * 2 : 16;
            uint64_t *nv = realloc(v, cap * sizeof *v);
            if (!nv) {
                free(v);
                closedir(d);
                snprintf(err, errlen, "journal %s: out of memory", dir);
                return -1;
            }
            v = nv;
        }
        v[len++] = seq;
    }
    closedir(d);
    if (len) qsort(v, len, sizeof *v, cmp_u64);
    *out = v;
    *n = len;
    return 0;
}

int journal_segments(const char *dir, uint64_t **out, size_t *n, char *err, size_t errlen)
{
    return jf_list(dir, out, n, err, errlen);
}

int journal_size(const char *dir, uint64_t *bytes, size_t *segments, char *err, size_t errlen)
{
    uint64_t *segs;
    *bytes = 0;
    *segments = 0;
    if (jf_list(dir, &segs, segments, err, errlen) != 0) return -1;
    for (size_t i = 0; i < *segments; i++) {
        char path[JF_PATH_MAX];
        struct stat st;
        jf_seg_path(path, sizeof path, dir, segs[i]);
        if (stat(path, &st) == 0) *bytes += (uint64_t)st.st_size;   /* one compacted meanwhile: 0 */
    }
    free(segs);
    return 0;
}

const char *journal_type_name(int type)
{
    switch (type) {
    case JOURNAL_SCHEMA: return "schema";
    case JOURNAL_SNAPSHOT_BEGIN: return "snapshot_begin";
    case JOURNAL_SNAPSHOT_PAGE: return "snapshot_page";
    case JOURNAL_SNAPSHOT_END: return "snapshot_end";
    case JOURNAL_INCREMENTAL_PAGE: return "incremental_page";
    case JOURNAL_DELETIONS: return "deletions";
    case JOURNAL_OP: return "op";
    case JOURNAL_OP_STATE: return "op_state";
    case JOURNAL_SNAPSHOT_RANGE: return "snapshot_range";
    default: return NULL;
    }
}
