/* json.h — JSON text in and out, keeping int64 exact.
 *
 * cJSON stores numbers as doubles, so integers past 2^53 lose digits. This module
 * owns the two ways JSON enters the agent:
 *   - json_parse(): a strict RFC 8259 parser that builds an ordinary cJSON tree
 *     (so callers use cJSON's accessors) but keeps each number's literal text in
 *     item->valuestring; json_int64() reads it back exactly. Depth is bounded and
 *     errors say "line L, column C: what".
 *   - json_rpc_rows(): a streaming reader of a JSON-RPC response whose `result`
 *     is an array of positional rows. It calls back once per value with a typed
 *     value (no DOM per page), which is the fast path for pulling pages.
 * And the writers that put values back out (strings escaped, doubles in their
 * shortest round-trip form). */
#ifndef IA_JSON_H
#define IA_JSON_H
#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/base/buf.h"

#define JSON_MAX_DEPTH_DEFAULT 64

/* Parse len bytes of text (need not be NUL-terminated). On success *out is a tree
 * the caller frees with cJSON_Delete(). Returns 0, or -1 with err filled. */
int json_parse(const char *text, size_t len, int max_depth, cJSON **out, char *err, size_t errlen);

/* 1 and *out set when item is a number whose literal is an integer within int64;
 * 0 otherwise (not a number, a fraction/exponent, or out of range). Works for
 * trees from json_parse (exact) and from cJSON_Parse (exact up to 2^53). */
int json_int64(const cJSON *item, int64_t *out);

/* A value handed to row callbacks. Pointers are valid only during the callback. */
enum json_vtype { JV_NULL, JV_BOOL, JV_INT, JV_REAL, JV_TEXT, JV_JSON };
struct json_val {
    enum json_vtype type;
    int64_t i;        /* JV_INT; JV_BOOL: 0 or 1 */
    double d;         /* JV_REAL (also integers beyond int64) */
    const char *s;    /* JV_TEXT: unescaped UTF-8, may hold NUL; JV_JSON: raw array/object text */
    size_t n;         /* length of s */
};

/* Callbacks (any may be NULL). `begin` marks the start of the result array:
 * rows delivered before a later `begin`, or before a return other than
 * JSON_RPC_RESULT, are void (the body was bad or is being retried). */
struct json_rows_cb {
    int (*begin)(void *ctx);
    int (*row_begin)(void *ctx, size_t row);                 /* row index from 0 */
    int (*value)(void *ctx, size_t col, const struct json_val *v);
    int (*row_end)(void *ctx, size_t row, size_t ncols);
};                                                           /* non-zero return: JSON_RPC_STOPPED */

/* Outcome of json_rpc_rows. */
enum json_rpc_kind {
    JSON_RPC_RESULT,   /* result was an array of rows: callbacks were made */
    JSON_RPC_ERROR,    /* an "error" member: message copied into errmsg */
    JSON_RPC_BAD,      /* not a well-formed JSON-RPC row response: err says where */
    JSON_RPC_STOPPED   /* a callback returned non-zero: err says where */
};

/* Read a JSON-RPC response body. Rows must be arrays; values may be any JSON.
 * Returns the kind; for JSON_RPC_ERROR errmsg holds the server's message (a
 * string `error`, or error.message, or the error object's JSON text); for
 * JSON_RPC_BAD and JSON_RPC_STOPPED err says what and where. */
enum json_rpc_kind json_rpc_rows(const char *body, size_t len, const struct json_rows_cb *cb,
                                 void *ctx, char *errmsg, size_t errmsglen, char *err, size_t errlen);

/* A json_rows_cb that collects a result as JSON text in *out: with `lines`, one
 * row array per line ("[1,2]\n[3,4]\n"); without, one array of rows, kept
 * closed after every row ("[[1,2],[3,4]]"). A retried response (begin) starts
 * over. The caller owns out. */
struct json_rows_text {
    struct buf *out;
    int lines;
    size_t rows;              /* rows collected */
};
extern const struct json_rows_cb json_rows_text_cb;   /* ctx: struct json_rows_text * */

/* Writers. */
void json_write_string(struct buf *b, const char *s, size_t n);  /* quoted, escaped; bytes as given */
void json_write_double(struct buf *b, double d);                 /* shortest round trip; NaN/Inf -> null */
/* A BLOB as JSON: the string "\\x" + lowercase hex of its bytes, PostgreSQL's
 * bytea text form (what the portal sends for a bytea column), so raw bytes
 * never reach a JSON answer. The one encoding of blobs for `query --json`,
 * `get` and the local API's /sql and /api/jsonsql/. */
void json_write_blob(struct buf *b, const void *p, size_t n);
/* The same text unquoted ("\x00ff"), for TSV/CSV output. */
void json_blob_text(struct buf *b, const void *p, size_t n);
void json_write_val(struct buf *b, const struct json_val *v);    /* any row value, JSON re-emitted raw */
/* A cJSON tree, compact; numbers from their literal when json_parse kept one. */
void json_write_tree(struct buf *b, const cJSON *item);

#endif
