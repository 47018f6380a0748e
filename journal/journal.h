/* journal.h — the journal: compressed, checksummed, append-only segment files.
 *
 * Owns everything under one directory: segment files named by the sequence
 * number of their first record (00000000000000000042.seg), the record format
 * (docs/journal-format.md, version JOURNAL_FORMAT_VERSION; format.c opens with it),
 * the typed row encoding of payloads (journal/rows.h), appending, verified
 * reading, and retention.
 * Knows nothing of the portal or SQLite; needs only zlib and libc.
 *
 * VALID record, TORN TAIL and DAMAGE are defined in docs/journal-format.md
 * ("Validity", "Torn tail"): the writer truncates a torn tail of the newest
 * segment when it opens (warning "segment N offset M: ..."), a reader stops
 * before it, and damage is an error naming "segment N offset M", never skipped.
 *
 * DURABILITY POINT: journal_append() returns 0 only after the record is written
 * and fdatasync()ed (and the directory fsync()ed when the record started a new
 * segment). Between journal_batch_begin() and journal_batch_commit() appends are
 * written but not synced; the commit is the durability point for all of them.
 * journal_writer_durable_seq() says how far that point has reached.
 *
 * Errors: 0 ok, -1 with err filled (errlen bytes). Warnings go to the caller's
 * callback, never to stderr. Nothing here keeps global state. */
#ifndef IA_JOURNAL_H
#define IA_JOURNAL_H
#include <stddef.h>
#include <stdint.h>

#define JOURNAL_FORMAT_VERSION 1
#define JOURNAL_DEFAULT_LEVEL 3                  /* zlib level; docs/journal-format.md says why */
#define JOURNAL_DEFAULT_SEGMENT_SIZE (64u << 20)
#define JOURNAL_TABLE_MAX 255                    /* bytes in a table name */
#define JOURNAL_PAYLOAD_MAX (256u << 20)         /* bytes in one raw payload */
#define JOURNAL_SEQ_MAX UINT64_MAX               /* "no bound" for journal_reader_next */

/* Record types. 10..255 are reserved: a reader yields them, the decoders refuse. */
enum journal_type {
    JOURNAL_SCHEMA = 1,            /* columns, types, key and cursor of a table */
    JOURNAL_SNAPSHOT_BEGIN = 2,    /* a full pull starts; its seq is the snapshot id */
    JOURNAL_SNAPSHOT_PAGE = 3,     /* snapshot id + rows */
    JOURNAL_SNAPSHOT_END = 4,      /* snapshot id, row count, high-water mark */
    JOURNAL_INCREMENTAL_PAGE = 5,  /* high-water mark after these rows + rows */
    JOURNAL_DELETIONS = 6,         /* rows of key values deleted on the portal */
    JOURNAL_OP = 7,                /* a write accepted offline; its seq is the op id */
    JOURNAL_OP_STATE = 8,          /* an op's new state (docs/outbox.md) */
    JOURNAL_SNAPSHOT_RANGE = 9     /* snapshot id + key interval (FROM, TO] read + rows */
};
const char *journal_type_name(int type);         /* "schema" ..., NULL if unknown */

/* ---- writer (writer.c) ----------------------------------------------------- */

struct journal_opts {
    const char *dir;          /* created if missing (its parent must exist) */
    uint64_t segment_size;    /* roll before a record would pass it; 0 = default */
    int level;                /* zlib 1..9; 0 = JOURNAL_DEFAULT_LEVEL */
    void (*warn)(void *ctx, const char *msg);   /* torn tail truncated; may be NULL */
    void *warn_ctx;
    /* Tests only (NULL otherwise): asked before each "write", "ftruncate",
     * "fdatasync", "rename" and "fsync_dir"; a non-zero errno makes that call
     * fail with it ("write" after writing half the record). */
    int (*fault)(void *ctx, const char *op);
    void *fault_ctx;
};
struct journal_writer;        /* one per directory at a time (flock on the directory) */

/* Lock the directory, check the newest segment, truncate its torn tail.
 * JOURNAL_ELOCKED (with err naming the holder's pid, from .writer.pid) when
 * another writer holds the directory; -1 on any other failure. */
#define JOURNAL_ELOCKED (-2)
int journal_writer_open(const struct journal_opts *o, struct journal_writer **out,
                        char *err, size_t errlen);
/* Append one record, durable on return (see DURABILITY POINT); *seq gets its
 * number (may be NULL). On failure nothing of the record remains in the file and
 * the same seq is used by the next append; after a failed fsync or a failed
 * truncate the writer refuses further appends and must be reopened. */
int journal_append(struct journal_writer *w, int type, const char *table, const void *payload,
                   size_t len, uint64_t *seq, char *err, size_t errlen);
/* Compressing ahead: a payload deflated by any thread (one deflater per thread,
 * at the writer's level), then appended by the writer, which only frames,
 * writes and syncs it — the same record journal_append would write. The
 * caller owns the blob (journal_blob_free) and the deflater. 0 or -1 (err). */
struct journal_deflater;
struct journal_blob {
    unsigned char *p;          /* raw deflate (docs/journal-format.md) */
    size_t len;                /* bytes at p */
    size_t raw_len;            /* bytes of the payload it inflates to */
};
int journal_deflater_new(int level, struct journal_deflater **out, char *err, size_t errlen);
void journal_deflater_free(struct journal_deflater *d);
int journal_deflate(struct journal_deflater *d, const void *payload, size_t len, struct journal_blob *out,
                    char *err, size_t errlen);
void journal_blob_free(struct journal_blob *b);
int journal_append_blob(struct journal_writer *w, int type, const char *table, const struct journal_blob *b,
                        uint64_t *seq, char *err, size_t errlen);
void journal_batch_begin(struct journal_writer *w);     /* appends stop syncing */
int journal_batch_commit(struct journal_writer *w, char *err, size_t errlen);  /* one fsync */
uint64_t journal_writer_next_seq(const struct journal_writer *w);
uint64_t journal_writer_durable_seq(const struct journal_writer *w);   /* 0 = none yet */
void journal_writer_close(struct journal_writer *w);    /* does not commit an open batch */

/* ---- reader (reader.c) ----------------------------------------------------- */

struct journal_record {       /* valid until the next journal_reader_next() */
    uint64_t seq;
    int type;
    const char *table;        /* NUL-terminated */
    const unsigned char *payload;   /* inflated payload */
    size_t len;               /* its length (raw_len) */
    size_t stored;            /* bytes the record takes in its segment */
    uint64_t segment;         /* first seq of its segment (the file's name) */
    uint64_t offset;          /* byte offset of the record in that segment */
};
struct journal_reader;

/* Read from record from_seq (0 = the oldest present). Fails if from_seq is
 * older than the oldest segment (compacted away). */
int journal_reader_open(const char *dir, uint64_t from_seq, struct journal_reader **out,
                        char *err, size_t errlen);
/* Next verified record with seq <= max_seq: 1 record, 0 nothing more for now (call
 * again later to follow a writer), -1 damage "segment N offset M: ...". An
 * in-process follower passes journal_writer_durable_seq() as max_seq. */
int journal_reader_next(struct journal_reader *r, uint64_t max_seq, struct journal_record *rec,
                        char *err, size_t errlen);
/* Where the reader stands after returning 0: segment, offset, and bytes of an
 * incomplete record beyond it (a torn tail or a write in progress). */
void journal_reader_where(const struct journal_reader *r, uint64_t *segment, uint64_t *offset,
                          uint64_t *pending);
void journal_reader_close(struct journal_reader *r);

/* Where a reader's next record begins: seq, and its segment and offset. A
 * follower that closes its reader keeps this to open the next one there, not
 * by reading every record of the segment before it (journal_reader_open_at). */
struct journal_place {
    uint64_t seq, segment, offset;
};
void journal_reader_place(const struct journal_reader *r, struct journal_place *p);
/* journal_reader_open from p->seq, starting at p's segment and offset when the
 * record there carries p->seq (or the segment ends there): one record read,
 * not the segment's. A place that no longer holds (its segment compacted away,
 * another record there) is ignored: the reader starts as journal_reader_open. */
int journal_reader_open_at(const char *dir, const struct journal_place *p, struct journal_reader **out,
                           char *err, size_t errlen);
/* The place only: 0 opened there, 1 it does not hold (nothing opened: the
 * caller lists the journal), -1 error. */
int journal_reader_open_place(const char *dir, const struct journal_place *p, struct journal_reader **out,
                              char *err, size_t errlen);

/* Segment first sequence numbers in dir, ascending; *out is malloc'd (NULL when
 * none). A missing directory is an empty journal. */
int journal_segments(const char *dir, uint64_t **out, size_t *n, char *err, size_t errlen);
/* The file name of the segment whose first record is `first`, without the
 * directory ("00000000000000000042.seg"): the one place it is spelled. */
#define JOURNAL_SEGMENT_NAME_LEN 25   /* 20 digits, ".seg", NUL */
void journal_segment_name(uint64_t first, char out[JOURNAL_SEGMENT_NAME_LEN]);
/* Bytes on disk in dir's segment files, and how many there are. 0 or -1. */
int journal_size(const char *dir, uint64_t *bytes, size_t *segments, char *err, size_t errlen);

/* ---- retention (compact.c) ------------------------------------------------- */

struct journal_compact_result {
    size_t deleted;           /* segments removed */
    uint64_t freed;           /* bytes */
    size_t kept;              /* segments left */
    char reason[256];         /* why the oldest kept segment stays */
    char table[JOURNAL_TABLE_MAX + 1];  /* the table whose lack of a later complete
                                           snapshot keeps it, or "" for another reason */
    uint64_t kept_bytes;      /* bytes in the segments left */
    uint64_t snapshot_bytes;  /* record bytes of every table's latest complete snapshot:
                                 one copy of everything, the floor of kept_bytes */
};
/* Delete the oldest segments, in order, while a segment: is not the newest; holds
 * only records with seq <= applied_seq; was last written >= retain_ms ago; and
 * every table it names has a SCHEMA and a complete snapshot (BEGIN and matching
 * END) later than its last record; and it holds no `op` record of an op still
 * open (no done/conflict/rejected/dropped for it yet). Verifies every record
 * it reads. */
int journal_compact(const char *dir, uint64_t applied_seq, int64_t retain_ms,
                    struct journal_compact_result *res, char *err, size_t errlen);

#endif
