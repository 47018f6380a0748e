/* rows.c — the raw (uncompressed) payload of each record type, and the typed
 * value encoding that carries rows, keys and marks.
 *
 * varint = unsigned LEB128, at most 10 bytes; zigzag maps int64 n to
 * (n << 1) ^ (n >> 63) so small negatives stay short.
 *
 * Value: one tag byte, then
 *   0 NULL  -            1 FALSE  -            2 TRUE  -
 *   3 INT   zigzag varint                       4 REAL  8 bytes IEEE-754 binary64
 *   5 TEXT  varint length, bytes (any bytes: NULs and UTF-8 survive)
 *   6 JSON  varint length, bytes of a JSON array or object, kept as text
 * Rows block: u32 ncols, u32 nrows (little-endian), then nrows*ncols values,
 * row-major. ncols may be 0 only when nrows is 0.
 *
 * Payloads (every byte accounted for: trailing bytes are an error):
 *   SCHEMA            varint ncols (>= 1); per column: varint name length (>= 1),
 *                     name bytes (no NUL), 1 byte journal_coltype; then varint
 *                     key column + 1 and varint cursor column + 1 (0 = none)
 *   SNAPSHOT_BEGIN    varint expected rows (0 = unknown)
 *   SNAPSHOT_PAGE     varint snapshot id; rows block
 *   SNAPSHOT_RANGE    varint snapshot id; value FROM; value TO; rows block.
 *                     FROM and TO are INT or NULL (unbounded), FROM < TO when
 *                     both are INT: the rows' keys lie in (FROM, TO]
 *   SNAPSHOT_END      varint snapshot id; varint row count; value mark cursor;
 *                     value mark key
 *   INCREMENTAL_PAGE  value mark cursor; value mark key; rows block
 *   DELETIONS         rows block whose columns are the key columns
 *   OP                varint kind (2 insert, 3 update, 4 delete); bytes params
 *                     (a JSON object, not empty); bytes changeset (may be
 *                     empty); bytes answer (not empty)
 *   OP_STATE          varint op id (>= 1); varint state (1..6); bytes message
 *                     (at most JOURNAL_OP_MESSAGE_MAX)
 *   where bytes = varint length, then that many bytes.
 *
 * Decoding is zero-copy: TEXT/JSON values point into the payload buffer, so
 * replay binds them without copying or parsing JSON again. */
#include "journal/rows.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal/format.h"

enum { TAG_NULL, TAG_FALSE, TAG_TRUE, TAG_INT, TAG_REAL, TAG_TEXT, TAG_JSON };

/* ---- encoder ----------------------------------------------------------- */

static unsigned char *grow(struct journal_payload *pl, size_t n)
{
    if (pl->bad) return NULL;
    if (pl->cap - pl->len < n) {
        size_t cap = pl->cap ? pl->cap : 4096;
        while (cap - pl->len < n) {
            if (cap > SIZE_MAX / 2) { pl->bad = 1; return NULL; }
            cap *= 2;
        }
        unsigned char *p = realloc(pl->p, cap);
        if (!p) {
            pl->bad = 1;
            return NULL;
        }
        pl->p = p;
        pl->cap = cap;
    }
    return pl->p + pl->len;
}

static size_t varint_put(unsigned char *q, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        q[n++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    q[n++] = (unsigned char)v;
    return n;
}

static void put_varint(struct journal_payload *pl, uint64_t v)
{
    unsigned char *q = grow(pl, 10);
    if (q) pl->len += varint_put(q, v);
}

static void start(struct journal_payload *pl)
{
    pl->len = 0;
    pl->rows_at = 0;
    pl->ncols = 0;
    pl->nvals = 0;
    pl->bad = 0;
}

static void open_rows(struct journal_payload *pl, uint32_t ncols)
{
    unsigned char *q = grow(pl, 8);
    if (!q) return;
    pl->rows_at = pl->len + 1;
    pl->ncols = ncols;
    pl->nvals = 0;
    memset(q, 0, 8);
    jf_put32(q, ncols);
    pl->len += 8;
}

/* Tag + body of one value, into the buffer, outside any row accounting. */
static void put_raw_value(struct journal_payload *pl, const struct journal_value *v)
{
    unsigned char *q;
    switch (v->type) {
    case JOURNAL_NULL:
        if ((q = grow(pl, 1))) { q[0] = TAG_NULL; pl->len += 1; }
        break;
    case JOURNAL_BOOL:
        if ((q = grow(pl, 1))) { q[0] = v->i ? TAG_TRUE : TAG_FALSE; pl->len += 1; }
        break;
    case JOURNAL_INT:
        if ((q = grow(pl, 11))) {
            q[0] = TAG_INT;
            uint64_t u = (uint64_t)v->i;
            uint64_t zz = (u << 1) ^ (0 - (u >> 63));
            pl->len += 1 + varint_put(q + 1, zz);
        }
        break;
    case JOURNAL_REAL:
        if ((q = grow(pl, 9))) {
            uint64_t bits;
            memcpy(&bits, &v->d, 8);
            q[0] = TAG_REAL;
            jf_put64(q + 1, bits);
            pl->len += 9;
        }
        break;
    case JOURNAL_TEXT:
    case JOURNAL_JSON:
        if (v->n > SIZE_MAX - 11) { pl->bad = 1; break; }
        if ((q = grow(pl, 11 + v->n))) {
            q[0] = v->type == JOURNAL_TEXT ? TAG_TEXT : TAG_JSON;
            size_t h = 1 + varint_put(q + 1, v->n);
            if (v->n) memcpy(q + h, v->s, v->n);
            pl->len += h + v->n;
        }
        break;
    default:
        if (!pl->bad) pl->bad = 3;
        break;
    }
}

static void put_value(struct journal_payload *pl, const struct journal_value *v)
{
    if (!pl->rows_at) {
        if (!pl->bad) pl->bad = 2;
        return;
    }
    put_raw_value(pl, v);
    pl->nvals++;
}

void journal_put_value(struct journal_payload *pl, const struct journal_value *v) { put_value(pl, v); }

void journal_put_null(struct journal_payload *pl)
{
    struct journal_value v = {.type = JOURNAL_NULL};
    put_value(pl, &v);
}

void journal_put_bool(struct journal_payload *pl, int b)
{
    struct journal_value v = {.type = JOURNAL_BOOL, .i = b != 0};
    put_value(pl, &v);
}

void journal_put_int(struct journal_payload *pl, int64_t x)
{
    struct journal_value v = {.type = JOURNAL_INT, .i = x};
    put_value(pl, &v);
}

void journal_put_double(struct journal_payload *pl, double d)
{
    struct journal_value v = {.type = JOURNAL_REAL, .d = d};
    put_value(pl, &v);
}

void journal_put_text(struct journal_payload *pl, const char *s, size_t n)
{
    struct journal_value v = {.type = JOURNAL_TEXT, .s = s, .n = n};
    put_value(pl, &v);
}

void journal_put_json(struct journal_payload *pl, const char *s, size_t n)
{
    struct journal_value v = {.type = JOURNAL_JSON, .s = s, .n = n};
    put_value(pl, &v);
}

static const struct journal_value null_value = {.type = JOURNAL_NULL};

int journal_payload_schema(struct journal_payload *pl, uint32_t ncols, const char *const *names,
                           const enum journal_coltype *types, int key_col, int cursor_col,
                           char *err, size_t errlen)
{
    start(pl);
    if (ncols == 0 || ncols > JOURNAL_COLUMNS_MAX) {
        snprintf(err, errlen, "schema: %u columns", ncols);
        return -1;
    }
    if (key_col < -1 || key_col >= (int64_t)ncols || cursor_col < -1 || cursor_col >= (int64_t)ncols) {
        snprintf(err, errlen, "schema: key or cursor column index out of range");
        return -1;
    }
    put_varint(pl, ncols);
    for (uint32_t i = 0; i < ncols; i++) {
        size_t n = strlen(names[i]);
        if (n == 0 || (unsigned)types[i] > JOURNAL_COL_BOOL) {
            snprintf(err, errlen, "schema: column %u has an empty name or an unknown type", i);
            return -1;
        }
        put_varint(pl, n);
        unsigned char *q = grow(pl, n + 1);
        if (!q) break;
        memcpy(q, names[i], n);
        q[n] = (unsigned char)types[i];
        pl->len += n + 1;
    }
    put_varint(pl, (uint64_t)(key_col + 1));
    put_varint(pl, (uint64_t)(cursor_col + 1));
    return journal_payload_finish(pl, err, errlen);
}

void journal_payload_snapshot_begin(struct journal_payload *pl, uint64_t expected_rows)
{
    start(pl);
    put_varint(pl, expected_rows);
}

void journal_payload_snapshot_page(struct journal_payload *pl, uint64_t snapshot_id, uint32_t ncols)
{
    start(pl);
    put_varint(pl, snapshot_id);
    open_rows(pl, ncols);
}

/* The one rule for range bounds, shared by builder and decoder. */
static const char *range_invalid(const struct journal_value *from, const struct journal_value *to)
{
    if ((from->type != JOURNAL_NULL && from->type != JOURNAL_INT) ||
        (to->type != JOURNAL_NULL && to->type != JOURNAL_INT))
        return "snapshot range bounds must be INT or NULL";
    if (from->type == JOURNAL_INT && to->type == JOURNAL_INT && from->i >= to->i)
        return "snapshot range FROM is not below TO";
    return NULL;
}

void journal_payload_snapshot_range(struct journal_payload *pl, uint64_t snapshot_id,
                                    const struct journal_value *from, const struct journal_value *to,
                                    uint32_t ncols)
{
    start(pl);
    if (!from) from = &null_value;
    if (!to) to = &null_value;
    if (range_invalid(from, to)) pl->bad = 4;
    put_varint(pl, snapshot_id);
    put_raw_value(pl, from);
    put_raw_value(pl, to);
    open_rows(pl, ncols);
}

void journal_payload_tell(const struct journal_payload *pl, struct journal_payload_pos *pos)
{
    pos->len = pl->len;
    pos->nvals = pl->nvals;
}

void journal_payload_cut(struct journal_payload *pl, const struct journal_payload_pos *pos)
{
    /* Past the rows block header, not past the end, not more values than put:
     * anything else is a position from another block or payload. */
    if (!pl->rows_at || pos->len < pl->rows_at - 1 + 8 || pos->len > pl->len || pos->nvals > pl->nvals ||
        (pos->len == pl->rows_at - 1 + 8) != (pos->nvals == 0)) {
        if (!pl->bad) pl->bad = 5;
        return;
    }
    pl->len = pos->len;
    pl->nvals = pos->nvals;
}

int journal_payload_append_rows(struct journal_payload *dst, const struct journal_payload *src, char *err,
                                size_t errlen)
{
    if (!dst->rows_at || !src->rows_at || src->bad || dst->ncols != src->ncols) {
        snprintf(err, errlen, "payload: appending rows needs two open rows blocks of the same width");
        return -1;
    }
    size_t from = src->rows_at - 1 + 8, n = src->len - from;   /* past the block's u32 ncols, u32 nrows */
    unsigned char *q = grow(dst, n ? n : 1);
    if (!q) {
        snprintf(err, errlen, "payload: out of memory");
        return -1;
    }
    if (n) memcpy(q, src->p + from, n);
    dst->len += n;
    dst->nvals += src->nvals;
    return 0;
}

void journal_payload_incremental_page(struct journal_payload *pl, const struct journal_value *mark_cursor,
                                      const struct journal_value *mark_key, uint32_t ncols)
{
    start(pl);
    put_raw_value(pl, mark_cursor ? mark_cursor : &null_value);
    put_raw_value(pl, mark_key ? mark_key : &null_value);
    open_rows(pl, ncols);
}

void journal_payload_snapshot_end(struct journal_payload *pl, uint64_t snapshot_id, uint64_t row_count,
                                  const struct journal_value *mark_cursor,
                                  const struct journal_value *mark_key)
{
    start(pl);
    put_varint(pl, snapshot_id);
    put_varint(pl, row_count);
    put_raw_value(pl, mark_cursor ? mark_cursor : &null_value);
    put_raw_value(pl, mark_key ? mark_key : &null_value);
}

void journal_payload_deletions(struct journal_payload *pl, uint32_t nkeycols)
{
    start(pl);
    open_rows(pl, nkeycols);
}

int journal_payload_finish(struct journal_payload *pl, char *err, size_t errlen)
{
    if (pl->bad == 1) {
        snprintf(err, errlen, "payload: out of memory");
        return -1;
    }
    if (pl->bad == 2) {
        snprintf(err, errlen, "payload: a value was put outside a rows block");
        return -1;
    }
    if (pl->bad == 3) {
        snprintf(err, errlen, "payload: a value of unknown type");
        return -1;
    }
    if (pl->bad == 4) {
        snprintf(err, errlen, "payload: snapshot range bounds must be INT or NULL, FROM below TO");
        return -1;
    }
    if (pl->bad == 5) {
        snprintf(err, errlen, "payload: cut to a position outside the open rows block");
        return -1;
    }
    if (pl->rows_at) {
        if (pl->ncols > JOURNAL_COLUMNS_MAX) {
            snprintf(err, errlen, "payload: %u columns is over the limit of %d", pl->ncols,
                     JOURNAL_COLUMNS_MAX);
            return -1;
        }
        if (pl->ncols == 0 ? pl->nvals != 0 : pl->nvals % pl->ncols != 0) {
            snprintf(err, errlen, "payload: %llu values do not make whole rows of %u columns",
                     (unsigned long long)pl->nvals, pl->ncols);
            return -1;
        }
        uint64_t nrows = pl->ncols ? pl->nvals / pl->ncols : 0;
        if (nrows > UINT32_MAX) {
            snprintf(err, errlen, "payload: %llu rows in one page", (unsigned long long)nrows);
            return -1;
        }
        jf_put32(pl->p + pl->rows_at - 1 + 4, (uint32_t)nrows);
    }
    if (pl->len > JOURNAL_PAYLOAD_MAX) {
        snprintf(err, errlen, "payload: %zu bytes is over the %u byte limit", pl->len,
                 (unsigned)JOURNAL_PAYLOAD_MAX);
        return -1;
    }
    return 0;
}

void journal_payload_free(struct journal_payload *pl)
{
    free(pl->p);
    memset(pl, 0, sizeof *pl);
}

/* ---- decoder ----------------------------------------------------------- */

/* A read position inside one payload; errors name the payload offset. */
struct rd {
    const unsigned char *p, *end, *base;
    char *err;
    size_t errlen;
};

static int fail(struct rd *r, const char *what)
{
    snprintf(r->err, r->errlen, "payload offset %zu: %s", (size_t)(r->p - r->base), what);
    return -1;
}

static int get_varint(struct rd *r, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (r->p >= r->end) return fail(r, "truncated varint");
        unsigned b = *r->p++;
        if (shift == 63 && b > 1) return fail(r, "varint overflows 64 bits");
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return fail(r, "varint longer than 10 bytes");
}

static int get_value(struct rd *r, struct journal_value *v)
{
    if (r->p >= r->end) return fail(r, "truncated value");
    unsigned tag = *r->p++;
    uint64_t u;
    switch (tag) {
    case TAG_NULL:
        v->type = JOURNAL_NULL;
        return 0;
    case TAG_FALSE:
    case TAG_TRUE:
        v->type = JOURNAL_BOOL;
        v->i = tag == TAG_TRUE;
        return 0;
    case TAG_INT:
        if (get_varint(r, &u) != 0) return -1;
        v->type = JOURNAL_INT;
        v->i = (int64_t)((u >> 1) ^ (0 - (u & 1)));
        return 0;
    case TAG_REAL:
        if (r->end - r->p < 8) return fail(r, "truncated double");
        u = jf_get64(r->p);
        memcpy(&v->d, &u, 8);
        r->p += 8;
        v->type = JOURNAL_REAL;
        return 0;
    case TAG_TEXT:
    case TAG_JSON:
        if (get_varint(r, &u) != 0) return -1;
        if (u > (uint64_t)(r->end - r->p)) return fail(r, "text runs past the end of the payload");
        v->type = tag == TAG_TEXT ? JOURNAL_TEXT : JOURNAL_JSON;
        v->s = (const char *)r->p;
        v->n = (size_t)u;
        r->p += u;
        return 0;
    default:
        r->p--;
        return fail(r, "unknown value tag");
    }
}

static int done(struct rd *r)
{
    return r->p == r->end ? 0 : fail(r, "trailing bytes");
}

static int open_rows_rd(struct rd *r, struct journal_rows *rows)
{
    if (r->end - r->p < 8) return fail(r, "truncated rows block header");
    rows->ncols = jf_get32(r->p);
    rows->nrows = jf_get32(r->p + 4);
    if (rows->nrows && !rows->ncols) return fail(r, "rows without columns");
    if (rows->ncols > JOURNAL_COLUMNS_MAX) return fail(r, "too many columns");
    r->p += 8;
    /* Every value takes at least one byte: a cheap bound against absurd counts. */
    if ((uint64_t)rows->ncols * rows->nrows > (uint64_t)(r->end - r->p))
        return fail(r, "rows block claims more values than it has bytes");
    rows->p = r->p;
    rows->end = r->end;
    rows->base = r->base;
    rows->row = 0;
    return 0;
}

int journal_rows_next(struct journal_rows *rows, struct journal_value *vals, char *err, size_t errlen)
{
    struct rd r = {rows->p, rows->end, rows->base, err, errlen};
    if (rows->row == rows->nrows) return done(&r);
    for (uint32_t c = 0; c < rows->ncols; c++)
        if (get_value(&r, &vals[c]) != 0) return -1;
    rows->p = r.p;
    rows->row++;
    return 1;
}

int journal_decode_schema(const void *p, size_t n, struct journal_schema *out, char *err, size_t errlen)
{
    struct rd r = {p, (const unsigned char *)p + n, p, err, errlen};
    uint64_t ncols, key, cursor;
    memset(out, 0, sizeof *out);
    if (get_varint(&r, &ncols) != 0) return -1;
    if (ncols == 0 || ncols > n / 3 || ncols > JOURNAL_COLUMNS_MAX) return fail(&r, "bad column count");
    /* First pass checks and sizes; the second copies names into one block. */
    const unsigned char *cols_at = r.p;
    size_t names = 0;
    for (uint64_t i = 0; i < ncols; i++) {
        uint64_t len;
        if (get_varint(&r, &len) != 0) return -1;
        if (len == 0 || len >= (uint64_t)(r.end - r.p)) return fail(&r, "bad column name length");
        if (memchr(r.p, 0, (size_t)len)) return fail(&r, "column name contains a NUL byte");
        r.p += len;
        if (*r.p > JOURNAL_COL_BOOL) return fail(&r, "unknown column type");
        r.p++;
        names += (size_t)len + 1;
    }
    if (get_varint(&r, &key) != 0 || get_varint(&r, &cursor) != 0) return -1;
    if (key > ncols || cursor > ncols) return fail(&r, "key or cursor column out of range");
    if (done(&r) != 0) return -1;
    size_t colbytes = (size_t)ncols * sizeof(struct journal_column);
    out->cols = malloc(colbytes + names);
    if (!out->cols) {
        snprintf(err, errlen, "schema: out of memory");
        return -1;
    }
    char *name = (char *)out->cols + colbytes;
    r.p = cols_at;
    for (uint64_t i = 0; i < ncols; i++) {
        uint64_t len;
        get_varint(&r, &len);
        memcpy(name, r.p, (size_t)len);
        name[len] = '\0';
        out->cols[i].name = name;
        name += len + 1;
        r.p += len;
        out->cols[i].type = (enum journal_coltype)*r.p++;
    }
    out->ncols = (uint32_t)ncols;
    out->key_col = (int)key - 1;
    out->cursor_col = (int)cursor - 1;
    return 0;
}

void journal_schema_free(struct journal_schema *s)
{
    free(s->cols);
    memset(s, 0, sizeof *s);
}

int journal_decode_snapshot_begin(const void *p, size_t n, uint64_t *expected_rows,
                                  char *err, size_t errlen)
{
    struct rd r = {p, (const unsigned char *)p + n, p, err, errlen};
    if (get_varint(&r, expected_rows) != 0) return -1;
    return done(&r);
}

int journal_decode_page(int type, const void *p, size_t n, struct journal_page *out,
                        char *err, size_t errlen)
{
    struct rd r = {p, (const unsigned char *)p + n, p, err, errlen};
    memset(out, 0, sizeof *out);
    out->mark_cursor.type = out->mark_key.type = JOURNAL_NULL;
    out->range_from.type = out->range_to.type = JOURNAL_NULL;
    const char *bad;
    switch (type) {
    case JOURNAL_SNAPSHOT_PAGE:
        if (get_varint(&r, &out->snapshot_id) != 0) return -1;
        break;
    case JOURNAL_SNAPSHOT_RANGE:
        if (get_varint(&r, &out->snapshot_id) != 0 || get_value(&r, &out->range_from) != 0 ||
            get_value(&r, &out->range_to) != 0)
            return -1;
        if ((bad = range_invalid(&out->range_from, &out->range_to))) return fail(&r, bad);
        break;
    case JOURNAL_INCREMENTAL_PAGE:
        if (get_value(&r, &out->mark_cursor) != 0 || get_value(&r, &out->mark_key) != 0) return -1;
        break;
    case JOURNAL_DELETIONS:
        break;
    default:
        snprintf(err, errlen, "record type %d does not carry rows", type);
        return -1;
    }
    return open_rows_rd(&r, &out->rows);
}

int journal_decode_snapshot_end(const void *p, size_t n, struct journal_snapshot_end *out,
                                char *err, size_t errlen)
{
    struct rd r = {p, (const unsigned char *)p + n, p, err, errlen};
    memset(out, 0, sizeof *out);
    if (get_varint(&r, &out->snapshot_id) != 0 || get_varint(&r, &out->row_count) != 0 ||
        get_value(&r, &out->mark_cursor) != 0 || get_value(&r, &out->mark_key) != 0)
        return -1;
    return done(&r);
}

const char *journal_coltype_name(enum journal_coltype t)
{
    switch (t) {
    case JOURNAL_COL_ANY: return "any";
    case JOURNAL_COL_INT: return "int";
    case JOURNAL_COL_REAL: return "real";
    case JOURNAL_COL_TEXT: return "text";
    case JOURNAL_COL_JSON: return "json";
    case JOURNAL_COL_BOOL: return "bool";
    }
    return NULL;
}

/* ---- offline writes ------------------------------------------------------- */

const char *journal_op_kind_name(int kind)
{
    switch (kind) {
    case JOURNAL_OP_INSERT: return "insert";
    case JOURNAL_OP_UPDATE: return "update";
    case JOURNAL_OP_DELETE: return "delete";
    default: return NULL;
    }
}

const char *journal_op_state_name(int state)
{
    switch (state) {
    case JOURNAL_OPS_SENDING: return "sending";
    case JOURNAL_OPS_DONE: return "done";
    case JOURNAL_OPS_CONFLICT: return "conflict";
    case JOURNAL_OPS_REJECTED: return "rejected";
    case JOURNAL_OPS_DROPPED: return "dropped";
    case JOURNAL_OPS_PENDING: return "pending";
    default: return NULL;
    }
}

static void put_bytes(struct journal_payload *pl, const void *p, size_t n)
{
    put_varint(pl, n);
    unsigned char *q = grow(pl, n ? n : 1);
    if (!q) return;
    if (n) memcpy(q, p, n);
    pl->len += n;
}

/* The rules shared by builder and decoder: one place says what an op is. */
static const char *op_invalid(const struct journal_op *op)
{
    if (!journal_op_kind_name(op->kind)) return "unknown op kind";
    if (op->nparams == 0 || op->params[0] != '{') return "op params must be a JSON object";
    if (op->nanswer == 0) return "op answer is empty";
    return NULL;
}

static const char *op_state_invalid(const struct journal_op_state_rec *s)
{
    if (s->op_id == 0) return "op id 0 (an op id is the seq of its op record, >= 1)";
    if (!journal_op_state_name(s->state)) return "unknown op state";
    if (s->nmessage > JOURNAL_OP_MESSAGE_MAX) return "op_state message is over the limit";
    return NULL;
}

int journal_payload_op(struct journal_payload *pl, const struct journal_op *op, char *err, size_t errlen)
{
    start(pl);
    const char *bad = op_invalid(op);
    if (bad) {
        snprintf(err, errlen, "op: %s", bad);
        return -1;
    }
    put_varint(pl, (uint64_t)op->kind);
    put_bytes(pl, op->params, op->nparams);
    put_bytes(pl, op->changeset, op->nchangeset);
    put_bytes(pl, op->answer, op->nanswer);
    return journal_payload_finish(pl, err, errlen);
}

int journal_payload_op_state(struct journal_payload *pl, const struct journal_op_state_rec *s, char *err,
                             size_t errlen)
{
    start(pl);
    const char *bad = op_state_invalid(s);
    if (bad) {
        snprintf(err, errlen, "op_state: %s", bad);
        return -1;
    }
    put_varint(pl, s->op_id);
    put_varint(pl, (uint64_t)s->state);
    put_bytes(pl, s->message, s->nmessage);
    return journal_payload_finish(pl, err, errlen);
}

/* bytes: varint length and that many bytes, inside the payload. */
static int get_bytes(struct rd *r, const void **p, size_t *n)
{
    uint64_t u;
    if (get_varint(r, &u) != 0) return -1;
    if (u > (uint64_t)(r->end - r->p)) return fail(r, "bytes run past the end of the payload");
    *p = r->p;
    *n = (size_t)u;
    r->p += u;
    return 0;
}

int journal_decode_op(const void *p, size_t n, struct journal_op *out, char *err, size_t errlen)
{
    struct rd r = {p, (const unsigned char *)p + n, p, err, errlen};
    uint64_t kind;
    const void *params, *answer;
    memset(out, 0, sizeof *out);
    if (get_varint(&r, &kind) != 0) return -1;
    if (!journal_op_kind_name(kind > 255 ? 0 : (int)kind)) {
        r.p = r.base;
        return fail(&r, "unknown op kind");
    }
    out->kind = (int)kind;
    if (get_bytes(&r, &params, &out->nparams) != 0 || get_bytes(&r, &out->changeset, &out->nchangeset) != 0 ||
        get_bytes(&r, &answer, &out->nanswer) != 0)
        return -1;
    out->params = params;
    out->answer = answer;
    if (done(&r) != 0) return -1;
    const char *bad = op_invalid(out);
    return bad ? fail(&r, bad) : 0;
}

int journal_decode_op_state(const void *p, size_t n, struct journal_op_state_rec *out, char *err, size_t errlen)
{
    struct rd r = {p, (const unsigned char *)p + n, p, err, errlen};
    uint64_t state;
    const void *msg;
    memset(out, 0, sizeof *out);
    if (get_varint(&r, &out->op_id) != 0 || get_varint(&r, &state) != 0) return -1;
    out->state = state > 255 ? 0 : (int)state;
    if (get_bytes(&r, &msg, &out->nmessage) != 0) return -1;
    out->message = msg;
    if (done(&r) != 0) return -1;
    const char *bad = op_state_invalid(out);
    return bad ? fail(&r, bad) : 0;
}
