/* rows.h — the journal's payloads: the typed values that carry rows, keys and
 * marks, a builder for the payload of each record type, and zero-copy decoders.
 * The byte layout is at the top of rows.c (docs/journal-format.md).
 *
 * Errors: 0 ok, -1 with err filled (errlen bytes). Decoded values point into
 * the payload they came from; the caller owns both. */
#ifndef IA_JOURNAL_ROWS_H
#define IA_JOURNAL_ROWS_H
#include <stddef.h>
#include <stdint.h>

#include "journal/journal.h"

#define JOURNAL_COLUMNS_MAX 32767                /* values per row (SQLite's own bound) */

enum journal_vtype { JOURNAL_NULL, JOURNAL_BOOL, JOURNAL_INT, JOURNAL_REAL, JOURNAL_TEXT,
                     JOURNAL_JSON };
struct journal_value {
    enum journal_vtype type;
    int64_t i;         /* INT; BOOL 0 or 1 */
    double d;          /* REAL */
    const char *s;     /* TEXT (any bytes, NULs too) or JSON (array/object text); not
                          NUL-terminated; decoded values point into the payload */
    size_t n;          /* length of s */
};

/* Declared column types in a schema record. */
enum journal_coltype { JOURNAL_COL_ANY, JOURNAL_COL_INT, JOURNAL_COL_REAL, JOURNAL_COL_TEXT,
                       JOURNAL_COL_JSON, JOURNAL_COL_BOOL };
const char *journal_coltype_name(enum journal_coltype t);   /* "any" "int" ..., NULL */

/* Builds one payload; reused across records. Zero-initialise; the owner calls
 * journal_payload_free(). Each journal_payload_<type>() starts a new payload;
 * page and deletion payloads then take values row by row (journal_put_*), and
 * journal_payload_finish() closes them. Then append p/len. */
struct journal_payload {
    unsigned char *p;  /* payload bytes */
    size_t len;        /* bytes in use */
    size_t cap;        /* bytes allocated */
    size_t rows_at;    /* offset of the open rows block + 1; 0 when none */
    uint32_t ncols;    /* values per row in the open rows block */
    uint64_t nvals;    /* values put into it so far */
    int bad;           /* 1 no memory, 2 value outside rows, 3 bad type, 4 bad range
                          bounds, 5 cut outside the open rows block: finish reports */
};
void journal_payload_free(struct journal_payload *pl);
int journal_payload_schema(struct journal_payload *pl, uint32_t ncols, const char *const *names,
                           const enum journal_coltype *types, int key_col, int cursor_col,
                           char *err, size_t errlen);         /* *_col: index or -1 */
void journal_payload_snapshot_begin(struct journal_payload *pl, uint64_t expected_rows);
void journal_payload_snapshot_page(struct journal_payload *pl, uint64_t snapshot_id, uint32_t ncols);
/* SNAPSHOT_RANGE: rows of the pending snapshot whose keys lie in (from, to], and
 * the promise that every portal row with such a key is among the snapshot's rows.
 * from/to: INT, or NULL (or a NULL pointer) for unbounded below/above; the
 * decoder refuses other types and from >= to, so finish checks the same. */
void journal_payload_snapshot_range(struct journal_payload *pl, uint64_t snapshot_id,
                                    const struct journal_value *from, const struct journal_value *to,
                                    uint32_t ncols);
void journal_payload_incremental_page(struct journal_payload *pl, const struct journal_value *mark_cursor,
                                      const struct journal_value *mark_key, uint32_t ncols);
void journal_payload_snapshot_end(struct journal_payload *pl, uint64_t snapshot_id, uint64_t row_count,
                                  const struct journal_value *mark_cursor,
                                  const struct journal_value *mark_key);
void journal_payload_deletions(struct journal_payload *pl, uint32_t nkeycols);
void journal_put_null(struct journal_payload *pl);
void journal_put_bool(struct journal_payload *pl, int b);
void journal_put_int(struct journal_payload *pl, int64_t v);
void journal_put_double(struct journal_payload *pl, double v);
void journal_put_text(struct journal_payload *pl, const char *s, size_t n);
void journal_put_json(struct journal_payload *pl, const char *s, size_t n);
void journal_put_value(struct journal_payload *pl, const struct journal_value *v);
/* Close the payload: checks whole rows, size and allocation. 0 or -1. */
int journal_payload_finish(struct journal_payload *pl, char *err, size_t errlen);

/* A point inside the open rows block, to cut the rows put after it (the puller
 * drops the tail of a page whose keys a neighbouring stream took over). cut
 * restores the payload as it was at tell; it is for the same open rows block
 * only (a tell from before the block was opened, or from another payload,
 * makes finish fail). Cutting to a point between a row's values is allowed:
 * finish still checks whole rows. */
struct journal_payload_pos {
    size_t len;
    uint64_t nvals;
};
void journal_payload_tell(const struct journal_payload *pl, struct journal_payload_pos *pos);
void journal_payload_cut(struct journal_payload *pl, const struct journal_payload_pos *pos);

/* Put src's open rows (same ncols) after dst's: a page encoded while it came
 * in, given the header only known at its end. 0 or -1 (err). */
int journal_payload_append_rows(struct journal_payload *dst, const struct journal_payload *src, char *err,
                                size_t errlen);

/* Zero-copy cursor over the rows of a page or deletions payload. */
struct journal_rows {
    const unsigned char *p, *end, *base;  /* next value, end of payload, payload start */
    uint32_t ncols;                      /* values per row */
    uint32_t nrows;                      /* rows in the block */
    uint32_t row;                        /* rows returned so far */
};
/* Fill vals[0..ncols) with the next row: 1 row, 0 no more rows, -1 malformed. */
int journal_rows_next(struct journal_rows *r, struct journal_value *vals, char *err, size_t errlen);

struct journal_column {
    const char *name;                    /* NUL-terminated copy */
    enum journal_coltype type;
};
struct journal_schema {                  /* release with journal_schema_free() */
    uint32_t ncols;
    struct journal_column *cols;         /* ncols entries (names in the same block) */
    int key_col;                         /* index or -1 */
    int cursor_col;                      /* index or -1 */
};
struct journal_page {                    /* SNAPSHOT_PAGE, SNAPSHOT_RANGE, INCREMENTAL_PAGE, DELETIONS */
    uint64_t snapshot_id;                /* SNAPSHOT_PAGE, SNAPSHOT_RANGE; else 0 */
    struct journal_value mark_cursor;    /* INCREMENTAL_PAGE; else NULL values */
    struct journal_value mark_key;
    struct journal_value range_from;     /* SNAPSHOT_RANGE: (from, to], INT or NULL */
    struct journal_value range_to;       /* (unbounded); else NULL values */
    struct journal_rows rows;            /* DELETIONS: one row per deleted key */
};
struct journal_snapshot_end {
    uint64_t snapshot_id;                /* seq of its SNAPSHOT_BEGIN */
    uint64_t row_count;
    struct journal_value mark_cursor;    /* high-water mark after the snapshot */
    struct journal_value mark_key;
};
/* Decoders: payload p/n of the named type -> out, pointing into p. 0 or -1. */
int journal_decode_schema(const void *p, size_t n, struct journal_schema *out, char *err, size_t errlen);
void journal_schema_free(struct journal_schema *s);
int journal_decode_snapshot_begin(const void *p, size_t n, uint64_t *expected_rows,
                                  char *err, size_t errlen);
int journal_decode_page(int type, const void *p, size_t n, struct journal_page *out,
                        char *err, size_t errlen);
int journal_decode_snapshot_end(const void *p, size_t n, struct journal_snapshot_end *out,
                                char *err, size_t errlen);

/* ---- offline writes (docs/outbox.md) ---------------------------------------- */

enum journal_op_kind { JOURNAL_OP_INSERT = 2, JOURNAL_OP_UPDATE = 3, JOURNAL_OP_DELETE = 4 };
enum journal_op_state { JOURNAL_OPS_SENDING = 1, JOURNAL_OPS_DONE = 2, JOURNAL_OPS_CONFLICT = 3,
                        JOURNAL_OPS_REJECTED = 4, JOURNAL_OPS_DROPPED = 5, JOURNAL_OPS_PENDING = 6 };
const char *journal_op_kind_name(int kind);      /* "insert" "update" "delete", NULL */
const char *journal_op_state_name(int state);    /* "sending" "done" ..., NULL */
#define JOURNAL_OP_MESSAGE_MAX 65536             /* bytes in an op_state message */

struct journal_op {                   /* OP; decoded fields point into the payload */
    int kind;                         /* enum journal_op_kind */
    const char *params;               /* JSON-RPC params object (starts with '{'), not empty */
    size_t nparams;
    const void *changeset;            /* SQLite session changeset with old values; may be empty */
    size_t nchangeset;
    const char *answer;               /* the JSON result the client was given, not empty */
    size_t nanswer;
};
struct journal_op_state_rec {         /* OP_STATE */
    uint64_t op_id;                   /* seq of the op record, >= 1 */
    int state;                        /* enum journal_op_state */
    const char *message;              /* may be empty; at most JOURNAL_OP_MESSAGE_MAX bytes */
    size_t nmessage;
};
/* Builders check what the decoders check, so a payload they accept decodes. */
int journal_payload_op(struct journal_payload *pl, const struct journal_op *op, char *err, size_t errlen);
int journal_payload_op_state(struct journal_payload *pl, const struct journal_op_state_rec *s, char *err,
                             size_t errlen);
int journal_decode_op(const void *p, size_t n, struct journal_op *out, char *err, size_t errlen);
int journal_decode_op_state(const void *p, size_t n, struct journal_op_state_rec *out, char *err,
                            size_t errlen);

#endif
