/* format.h — internal to journal/: byte layout helpers shared by the writer,
 * the reader and compaction. Callers outside journal/ use journal.h only.
 * The layout itself is described at the top of format.c. */
#ifndef IA_JOURNAL_FORMAT_H
#define IA_JOURNAL_FORMAT_H
#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

#include "journal/journal.h"

#define JF_SEG_HDR 32                /* segment header bytes */
#define JF_REC_HDR 32                /* fixed record header bytes */
#define JF_SEG_MAGIC "IAJOURNL"      /* 8 bytes */
#define JF_REC_MAGIC "IAJR"          /* 4 bytes */
#define JF_NAME_DIGITS 20            /* 00000000000000000042.seg */
#define JF_PATH_MAX 4096
#define JF_WHY_MAX 512               /* an inner reason, before "segment N offset M: " is put before it */
#define JF_STORED_MAX (257u << 20)   /* > deflateBound(JOURNAL_PAYLOAD_MAX) */

static inline void jf_put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16); p[3] = (unsigned char)(v >> 24);
}
static inline void jf_put64(unsigned char *p, uint64_t v)
{
    jf_put32(p, (uint32_t)v);
    jf_put32(p + 4, (uint32_t)(v >> 32));
}
static inline uint32_t jf_get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t jf_get64(const unsigned char *p)
{
    return (uint64_t)jf_get32(p) | (uint64_t)jf_get32(p + 4) << 32;
}

/* A decoded record header. */
struct jf_rec {
    int type;
    unsigned table_len;
    uint64_t seq;
    uint32_t raw_len;
    uint32_t comp_len;
    uint64_t total;                  /* header + table + payload bytes */
};

/* A growable scratch buffer owned by its user (free(b->p)). */
struct jf_buf {
    unsigned char *p;
    size_t cap;
};
int jf_reserve(struct jf_buf *b, size_t n);          /* 0, -1 out of memory */

/* "dir/00000000000000000042.seg" into out. */
void jf_seg_path(char *out, size_t n, const char *dir, uint64_t first);
void jf_seg_header(unsigned char out[JF_SEG_HDR], uint64_t first_seq);
/* Check a segment header read from file `name_seq`; 0 or -1 with why. */
int jf_seg_check(const unsigned char *hdr, size_t got, uint64_t name_seq, char *why, size_t whylen);

/* Fill the header of a record laid out in buf (table and comp_len payload bytes
 * already in place after the 32 header bytes), both CRCs included. */
void jf_rec_seal(unsigned char *buf, int type, uint64_t seq, unsigned table_len, uint32_t raw_len,
                 uint32_t comp_len);

enum jf_read { JF_REC, JF_EOF, JF_SHORT, JF_BAD };
/* Read the record at off of fd into b (header, table, payload) and check it:
 *   JF_REC   valid framing and CRCs; *h filled (sequence continuity is the caller's)
 *   JF_EOF   off is exactly end of file
 *   JF_SHORT an incomplete record or all-zero bytes to EOF; *pending = bytes left
 *   JF_BAD   damage; why says what (without the segment/offset prefix) */
enum jf_read jf_read_record(int fd, uint64_t off, struct jf_buf *b, struct jf_rec *h,
                            uint64_t *pending, char *why, size_t whylen);
/* Inflate a raw-deflate payload into exactly outlen bytes; 0 or -1 with why. */
int jf_inflate(z_stream *zs, const unsigned char *in, size_t inlen, unsigned char *out,
               size_t outlen, char *why, size_t whylen);

/* Segments of dir, ascending (see journal_segments). */
int jf_list(const char *dir, uint64_t **out, size_t *n, char *err, size_t errlen);

#endif
