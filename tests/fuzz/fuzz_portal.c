/* fuzz_portal.c — libFuzzer target for portal response parsing (agent/base/json.h):
 * json_rpc_rows, the streaming row reader every page of a pull goes through,
 * differentially against json_parse, the strict DOM parser.
 *
 * Input: the whole input is a response body.
 * It is read three times: json_parse (depth JSON_MAX_DEPTH_DEFAULT); json_rpc_rows
 * with callbacks that read every byte of every value; json_rpc_rows with
 * json_rows_text_cb (the collector the remote command and the daemon use).
 * Oracles:
 *   - callbacks come in order: begin once, then rows numbered from 0, values
 *     numbered from 0 within a row, row_end with the row's value count;
 *   - whenever json_parse accepts the body, the two readers agree: the kind
 *     follows from the tree (a non-null "error" member: JSON_RPC_ERROR; else a
 *     "result" that is an array of arrays: JSON_RPC_RESULT; else JSON_RPC_BAD);
 *     for a result, the row count is the result array's size and every value
 *     equals the tree's item (null, bool, exact int64, double, the string's
 *     bytes, raw array/object text that parses to an equal tree); for an error,
 *     the message is the tree's string `error` or `error.message`;
 *   - the collected text of a result is JSON (cJSON parses it) with that many
 *     rows, whether or not json_parse accepted the body.
 * Seeds: tests/fuzz/corpus/portal/. Run: tests/fuzz/run.sh. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/buf.h"
#include "agent/base/json.h"

struct walk {
    const cJSON *result;   /* the tree's result array when json_parse accepted, else NULL */
    const cJSON *row;      /* its current row */
    int begins;
    size_t rows;           /* rows ended */
    size_t cols;           /* values seen in the current row */
    int in_row;
    uint32_t sum;          /* every byte of every value, so ASan sees each read */
};

/* Where the value checksum goes, so the reads that feed it are not optimised away. */
static volatile uint32_t sink;

static void differ(const char *what, size_t row, size_t col)
{
    fprintf(stderr, "json_rpc_rows and json_parse differ: %s at row %zu column %zu\n", what, row, col);
    abort();
}

static int cb_begin(void *ctx)
{
    struct walk *w = ctx;
    if (w->begins++ || w->in_row) abort();
    return 0;
}

static int cb_row_begin(void *ctx, size_t row)
{
    struct walk *w = ctx;
    if (w->begins != 1 || w->in_row || row != w->rows) abort();
    w->in_row = 1;
    w->cols = 0;
    if (w->result) {
        w->row = cJSON_GetArrayItem(w->result, (int)row);
        if (!cJSON_IsArray(w->row)) differ("row is not an array in the tree", row, 0);
    }
    return 0;
}

/* cJSON_Compare with exact numbers: it compares doubles by a tolerance that
 * makes inf unequal to itself (inf - inf is NaN), and 1e999 parses as inf. */
static int same_tree(const cJSON *a, const cJSON *b)
{
    if ((a->type & 0xFF) != (b->type & 0xFF)) return 0;
    if (cJSON_IsNumber(a)) return a->valuedouble == b->valuedouble;
    if (cJSON_IsString(a)) return strcmp(a->valuestring, b->valuestring) == 0;
    if (!cJSON_IsArray(a) && !cJSON_IsObject(a)) return 1;
    const cJSON *x = a->child, *y = b->child;
    for (; x && y; x = x->next, y = y->next) {
        if (cJSON_IsObject(a) && strcmp(x->string, y->string) != 0) return 0;
        if (!same_tree(x, y)) return 0;
    }
    return !x && !y;
}

/* v equals the tree's item (both from the same accepted text). */
static void compare(const struct walk *w, const cJSON *it, const struct json_val *v, size_t col)
{
    size_t row = w->rows;
    int64_t i;
    switch (v->type) {
    case JV_NULL:
        if (!cJSON_IsNull(it)) differ("null", row, col);
        break;
    case JV_BOOL:
        if (!cJSON_IsBool(it) || (v->i != 0) != (cJSON_IsTrue(it) != 0)) differ("boolean", row, col);
        break;
    case JV_INT:
        if (!json_int64(it, &i) || i != v->i) differ("integer", row, col);
        break;
    case JV_REAL:
        if (!cJSON_IsNumber(it) || json_int64(it, &i) || it->valuedouble != v->d) differ("real", row, col);
        break;
    case JV_TEXT:
        if (!cJSON_IsString(it) || strlen(it->valuestring) != v->n || memcmp(it->valuestring, v->s, v->n) != 0)
            differ("string", row, col);
        break;
    case JV_JSON: {
        cJSON *sub = NULL;
        char err[256];
        if (!(cJSON_IsArray(it) || cJSON_IsObject(it)) ||
            json_parse(v->s, v->n, JSON_MAX_DEPTH_DEFAULT, &sub, err, sizeof err) != 0 ||
            !same_tree(sub, it))
            differ("array/object", row, col);
        cJSON_Delete(sub);
        break;
    }
    default:
        abort();
    }
}

static int cb_value(void *ctx, size_t col, const struct json_val *v)
{
    struct walk *w = ctx;
    if (!w->in_row || col != w->cols) abort();
    w->cols++;
    if (v->type == JV_TEXT || v->type == JV_JSON) {
        if (!v->s && v->n) abort();
        for (size_t k = 0; k < v->n; k++) w->sum = w->sum * 31 + (unsigned char)v->s[k];
    }
    if (v->type == JV_JSON && (v->n < 2 || (v->s[0] != '[' && v->s[0] != '{'))) abort();
    if (w->result) {
        const cJSON *it = cJSON_GetArrayItem(w->row, (int)col);
        if (!it) differ("extra value", w->rows, col);
        compare(w, it, v, col);
    }
    return 0;
}

static int cb_row_end(void *ctx, size_t row, size_t ncols)
{
    struct walk *w = ctx;
    if (!w->in_row || row != w->rows || ncols != w->cols) abort();
    if (w->result && cJSON_GetArraySize(w->row) != (int)ncols) differ("row length", row, ncols);
    w->in_row = 0;
    w->rows++;
    return 0;
}

static const struct json_rows_cb walk_cb = {cb_begin, cb_row_begin, cb_value, cb_row_end};

/* What json_rpc_rows must say about a body json_parse accepted as tree. */
static enum json_rpc_kind expected_kind(const cJSON *tree, const cJSON **result)
{
    *result = NULL;
    if (!cJSON_IsObject(tree)) return JSON_RPC_BAD;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(tree, "error");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(tree, "result");
    if (r && !cJSON_IsNull(r)) {
        if (!cJSON_IsArray(r)) return JSON_RPC_BAD;
        for (const cJSON *row = r->child; row; row = row->next)
            if (!cJSON_IsArray(row)) return JSON_RPC_BAD;
    }
    if (e && !cJSON_IsNull(e)) return JSON_RPC_ERROR;
    if (r && !cJSON_IsNull(r)) {
        *result = r;
        return JSON_RPC_RESULT;
    }
    return JSON_RPC_BAD;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    char err[512], errmsg[1024], perr[256];
    cJSON *tree = NULL;
    int parsed = json_parse(body, size, JSON_MAX_DEPTH_DEFAULT, &tree, perr, sizeof perr) == 0;

    struct walk w = {0};
    const cJSON *result = NULL;
    enum json_rpc_kind want = parsed ? expected_kind(tree, &result) : JSON_RPC_BAD;
    w.result = result;
    errmsg[0] = err[0] = '\0';
    enum json_rpc_kind got = json_rpc_rows(body, size, &walk_cb, &w, errmsg, sizeof errmsg, err, sizeof err);
    if (got != JSON_RPC_RESULT && got != JSON_RPC_ERROR && got != JSON_RPC_BAD) abort();
    if (got == JSON_RPC_BAD && !err[0]) abort();                 /* a refusal says where */
    if (got == JSON_RPC_RESULT && (w.begins != 1 || w.in_row)) abort();
    if (parsed) {
        if (got != want) {
            fprintf(stderr, "json_parse accepted the body; json_rpc_rows says %d, the tree says %d (%s)\n", got,
                    want, err);
            abort();
        }
        if (got == JSON_RPC_RESULT && (int)w.rows != cJSON_GetArraySize(result))
            differ("row count", w.rows, 0);
        if (got == JSON_RPC_ERROR) {
            const cJSON *e = cJSON_GetObjectItemCaseSensitive(tree, "error");
            const cJSON *m = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "message") : e;
            if (cJSON_IsString(m) && strncmp(errmsg, m->valuestring, sizeof errmsg - 1) != 0) {
                fprintf(stderr, "error message \"%s\", the tree says \"%s\"\n", errmsg, m->valuestring);
                abort();
            }
        }
    }
    cJSON_Delete(tree);

    /* The collector: what it keeps of a result is JSON again, one array per row. */
    struct buf out = {0};
    struct json_rows_text t = {.out = &out};
    if (json_rpc_rows(body, size, &json_rows_text_cb, &t, errmsg, sizeof errmsg, err, sizeof err) !=
        got)
        abort();   /* the same body read twice */
    if (got == JSON_RPC_RESULT) {
        cJSON *again = cJSON_ParseWithLength(out.p, out.len);
        if (!cJSON_IsArray(again) || cJSON_GetArraySize(again) != (int)w.rows || t.rows != w.rows) {
            fprintf(stderr, "collected rows are not JSON: %.300s\n", out.p ? out.p : "");
            abort();
        }
        cJSON_Delete(again);
    }
    buf_free(&out);
    sink = w.sum;
    return 0;
}
