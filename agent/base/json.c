/* json.c — see json.h.
 *
 * One scanner serves both the DOM parser and the streaming row reader: a cursor
 * over the input with its start (for line:column in messages) and a depth bound.
 * Numbers keep their literal: json_parse stores it in cJSON's valuestring (which
 * cJSON_Delete frees for any item type), and the row reader turns integer
 * literals into int64 by exact accumulation, never through a double. */
#include "agent/base/json.h"
#include "agent/base/mem.h"
#include "agent/base/utf8.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct scan {
    const char *start, *p, *end;
    int max_depth;
    char *err;
    size_t errlen;
    struct buf tmp;          /* unescaped string scratch, reused */
    int stopped;             /* a row callback returned non-zero */
};

static int fail(struct scan *s, const char *at, const char *msg)
{
    int line = 1, col = 1;
    for (const char *q = s->start; q < at && q < s->end; q++) {
        if (*q == '\n') { line++; col = 1; } else col++;
    }
    if (at >= s->end)
        snprintf(s->err, s->errlen, "line %d, column %d: %s (at end of input)", line, col, msg);
    else
        snprintf(s->err, s->errlen, "line %d, column %d: %s", line, col, msg);
    return -1;
}

static void skip_ws(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int expect_word(struct scan *s, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n) != 0)
        return fail(s, s->p, "invalid literal");
    s->p += n;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int read_hex4(struct scan *s, const char *q, unsigned *out)
{
    if (s->end - q < 4) return fail(s, q, "truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(q[i]);
        if (h < 0) return fail(s, q + i, "invalid hex digit in \\u escape");
        v = v * 16 + (unsigned)h;
    }
    *out = v;
    return 0;
}

/* Scan a string at s->p (on the opening quote). Without escapes *out points into
 * the input (zero copy); with escapes it points into s->tmp. */
static int scan_string(struct scan *s, const char **out, size_t *outlen)
{
    const char *q = s->p + 1, *run = q;
    int escaped = 0;
    buf_reset(&s->tmp);
    for (;;) {
        if (q >= s->end) return fail(s, q, "unterminated string");
        unsigned char c = (unsigned char)*q;
        if (c == '"') break;
        if (c < 0x20) return fail(s, q, "control character in string");
        if (c != '\\') { q++; continue; }
        if (!escaped) { escaped = 1; }
        buf_append(&s->tmp, run, (size_t)(q - run));
        if (q + 1 >= s->end) return fail(s, q, "unterminated string");
        char e = q[1];
        q += 2;
        switch (e) {
        case '"': buf_putc(&s->tmp, '"'); break;
        case '\\': buf_putc(&s->tmp, '\\'); break;
        case '/': buf_putc(&s->tmp, '/'); break;
        case 'b': buf_putc(&s->tmp, '\b'); break;
        case 'f': buf_putc(&s->tmp, '\f'); break;
        case 'n': buf_putc(&s->tmp, '\n'); break;
        case 'r': buf_putc(&s->tmp, '\r'); break;
        case 't': buf_putc(&s->tmp, '\t'); break;
        case 'u': {
            unsigned cp;
            if (read_hex4(s, q, &cp)) return -1;
            q += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (s->end - q < 6 || q[0] != '\\' || q[1] != 'u')
                    return fail(s, q, "unpaired surrogate in \\u escape");
                if (read_hex4(s, q + 2, &lo)) return -1;
                if (lo < 0xDC00 || lo > 0xDFFF) return fail(s, q, "unpaired surrogate in \\u escape");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                q += 6;
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return fail(s, q - 6, "unpaired surrogate in \\u escape");
            }
            utf8_put(&s->tmp, cp);
            break;
        }
        default:
            return fail(s, q - 2, "invalid escape in string");
        }
        run = q;
    }
    if (escaped) {
        buf_append(&s->tmp, run, (size_t)(q - run));
        *out = s->tmp.p;
        *outlen = s->tmp.len;
    } else {
        *out = s->p + 1;
        *outlen = (size_t)(q - (s->p + 1));
    }
    s->p = q + 1;
    return 0;
}

/* Scan a number literal; *is_int when it has no fraction or exponent. */
static int scan_number(struct scan *s, const char **lit, size_t *litlen, int *is_int)
{
    const char *q = s->p;
    *is_int = 1;
    if (q < s->end && *q == '-') q++;
    if (q >= s->end) return fail(s, q, "invalid number");
    if (*q == '0') q++;
    else if (*q >= '1' && *q <= '9') { while (q < s->end && *q >= '0' && *q <= '9') q++; }
    else return fail(s, q, "invalid number");
    if (q < s->end && *q == '.') {
        *is_int = 0;
        q++;
        if (q >= s->end || *q < '0' || *q > '9') return fail(s, q, "invalid number: digit expected after '.'");
        while (q < s->end && *q >= '0' && *q <= '9') q++;
    }
    if (q < s->end && (*q == 'e' || *q == 'E')) {
        *is_int = 0;
        q++;
        if (q < s->end && (*q == '+' || *q == '-')) q++;
        if (q >= s->end || *q < '0' || *q > '9') return fail(s, q, "invalid number: digit expected in exponent");
        while (q < s->end && *q >= '0' && *q <= '9') q++;
    }
    *lit = s->p;
    *litlen = (size_t)(q - s->p);
    s->p = q;
    return 0;
}

/* Exact int64 from an integer literal; 0 when out of range. */
static int lit_int64(const char *lit, size_t n, int64_t *out)
{
    int neg = n > 0 && lit[0] == '-';
    size_t i = neg ? 1 : 0;
    if (i >= n) return 0;
    uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < n; i++) {
        if (lit[i] < '0' || lit[i] > '9') return 0;
        unsigned d = (unsigned)(lit[i] - '0');
        if (v > (limit - d) / 10) return 0;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 1;
}

static double lit_double(const char *lit, size_t n)
{
    char small[64];
    if (n < sizeof small) {
        memcpy(small, lit, n);
        small[n] = '\0';
        return strtod(small, NULL);
    }
    char *big = xstrndup(lit, n);
    double d = strtod(big, NULL);
    free(big);
    return d;
}

/* ---- DOM parser ------------------------------------------------------------ */

static int parse_value(struct scan *s, int depth, cJSON **out);

static int parse_container(struct scan *s, int depth, cJSON **out)
{
    int is_obj = *s->p == '{';
    if (depth >= s->max_depth) return fail(s, s->p, "nesting too deep");
    cJSON *c = is_obj ? cJSON_CreateObject() : cJSON_CreateArray();
    if (!c) return fail(s, s->p, "out of memory");
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == (is_obj ? '}' : ']')) { s->p++; *out = c; return 0; }
    for (;;) {
        skip_ws(s);
        char *key = NULL;
        if (is_obj) {
            if (s->p >= s->end || *s->p != '"') { cJSON_Delete(c); return fail(s, s->p, "object key (string) expected"); }
            const char *k; size_t kn;
            const char *kat = s->p;
            if (scan_string(s, &k, &kn)) { cJSON_Delete(c); return -1; }
            key = xstrndup(k, kn);
            if (strlen(key) != kn || cJSON_GetObjectItemCaseSensitive(c, key)) {
                int r = fail(s, kat, strlen(key) != kn ? "NUL in object key" : "duplicate object key");
                free(key);
                cJSON_Delete(c);
                return r;
            }
            skip_ws(s);
            if (s->p >= s->end || *s->p != ':') { free(key); cJSON_Delete(c); return fail(s, s->p, "':' expected"); }
            s->p++;
            skip_ws(s);
        }
        cJSON *item = NULL;
        if (parse_value(s, depth + 1, &item)) { free(key); cJSON_Delete(c); return -1; }
        if (is_obj) { cJSON_AddItemToObject(c, key, item); free(key); }
        else cJSON_AddItemToArray(c, item);
        skip_ws(s);
        if (s->p < s->end && *s->p == ',') { s->p++; continue; }
        if (s->p < s->end && *s->p == (is_obj ? '}' : ']')) { s->p++; break; }
        cJSON_Delete(c);
        return fail(s, s->p, is_obj ? "',' or '}' expected" : "',' or ']' expected");
    }
    *out = c;
    return 0;
}

static int parse_value(struct scan *s, int depth, cJSON **out)
{
    skip_ws(s);
    if (s->p >= s->end) return fail(s, s->p, "value expected");
    switch (*s->p) {
    case '{': case '[':
        return parse_container(s, depth, out);
    case '"': {
        const char *v; size_t n;
        const char *at = s->p;
        if (scan_string(s, &v, &n)) return -1;
        char *z = xstrndup(v, n);
        if (strlen(z) != n) { free(z); return fail(s, at, "NUL (\\u0000) in string is not supported here"); }
        *out = cJSON_CreateString(z);
        free(z);
        return *out ? 0 : fail(s, at, "out of memory");
    }
    case 't': if (expect_word(s, "true")) return -1; *out = cJSON_CreateTrue(); return 0;
    case 'f': if (expect_word(s, "false")) return -1; *out = cJSON_CreateFalse(); return 0;
    case 'n': if (expect_word(s, "null")) return -1; *out = cJSON_CreateNull(); return 0;
    default: {
        const char *lit; size_t n; int is_int;
        if (*s->p != '-' && (*s->p < '0' || *s->p > '9')) return fail(s, s->p, "unexpected character, value expected");
        if (scan_number(s, &lit, &n, &is_int)) return -1;
        cJSON *num = cJSON_CreateNumber(lit_double(lit, n));
        num->valuestring = xstrndup(lit, n);
        *out = num;
        return 0;
    }
    }
}

int json_parse(const char *text, size_t len, int max_depth, cJSON **out, char *err, size_t errlen)
{
    struct scan s = {text, text, text + len, max_depth > 0 ? max_depth : JSON_MAX_DEPTH_DEFAULT,
                     err, errlen, {0}, 0};
    cJSON *root = NULL;
    *out = NULL;
    int rc = parse_value(&s, 0, &root);
    if (rc == 0) {
        skip_ws(&s);
        if (s.p != s.end) { cJSON_Delete(root); rc = fail(&s, s.p, "trailing characters after JSON value"); }
    }
    buf_free(&s.tmp);
    if (rc == 0) *out = root;
    return rc;
}

int json_int64(const cJSON *item, int64_t *out)
{
    if (!cJSON_IsNumber(item)) return 0;
    if (item->valuestring)
        return lit_int64(item->valuestring, strlen(item->valuestring), out);
    double d = item->valuedouble;   /* a tree from cJSON_Parse: exact up to 2^53 */
    if (d != floor(d) || fabs(d) > 9007199254740992.0) return 0;
    *out = (int64_t)d;
    return 1;
}

/* ---- streaming row reader -------------------------------------------------- */

/* Skip one value of any kind (validating it), leaving s->p after it. */
static int skip_value(struct scan *s, int depth)
{
    skip_ws(s);
    if (s->p >= s->end) return fail(s, s->p, "value expected");
    char c = *s->p;
    if (c == '"') { const char *v; size_t n; return scan_string(s, &v, &n); }
    if (c == 't') return expect_word(s, "true");
    if (c == 'f') return expect_word(s, "false");
    if (c == 'n') return expect_word(s, "null");
    if (c != '{' && c != '[') { const char *l; size_t n; int i; return scan_number(s, &l, &n, &i); }
    if (depth >= s->max_depth) return fail(s, s->p, "nesting too deep");
    char close = c == '{' ? '}' : ']';
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == close) { s->p++; return 0; }
    for (;;) {
        skip_ws(s);
        if (c == '{') {
            if (s->p >= s->end || *s->p != '"') return fail(s, s->p, "object key (string) expected");
            const char *k; size_t kn;
            if (scan_string(s, &k, &kn)) return -1;
            skip_ws(s);
            if (s->p >= s->end || *s->p != ':') return fail(s, s->p, "':' expected");
            s->p++;
        }
        if (skip_value(s, depth + 1)) return -1;
        skip_ws(s);
        if (s->p < s->end && *s->p == ',') { s->p++; continue; }
        if (s->p < s->end && *s->p == close) { s->p++; return 0; }
        return fail(s, s->p, c == '{' ? "',' or '}' expected" : "',' or ']' expected");
    }
}

static int row_value(struct scan *s, struct json_val *v)
{
    skip_ws(s);
    if (s->p >= s->end) return fail(s, s->p, "value expected");
    switch (*s->p) {
    case '"':
        v->type = JV_TEXT;
        return scan_string(s, &v->s, &v->n);
    case 't': v->type = JV_BOOL; v->i = 1; return expect_word(s, "true");
    case 'f': v->type = JV_BOOL; v->i = 0; return expect_word(s, "false");
    case 'n': v->type = JV_NULL; return expect_word(s, "null");
    case '[': case '{': {
        const char *from = s->p;
        if (skip_value(s, 1)) return -1;
        v->type = JV_JSON;
        v->s = from;
        v->n = (size_t)(s->p - from);
        return 0;
    }
    default: {
        const char *lit; size_t n; int is_int;
        if (scan_number(s, &lit, &n, &is_int)) return -1;
        if (is_int && lit_int64(lit, n, &v->i)) { v->type = JV_INT; return 0; }
        v->type = JV_REAL;
        v->d = lit_double(lit, n);
        return 0;
    }
    }
}

static int stop(struct scan *s, const char *at)
{
    s->stopped = 1;
    return fail(s, at, "stopped by caller");
}

static int read_rows(struct scan *s, const struct json_rows_cb *cb, void *ctx)
{
    if (s->p >= s->end || *s->p != '[') return fail(s, s->p, "result is not an array of rows");
    if (cb->begin && cb->begin(ctx)) return stop(s, s->p);
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == ']') { s->p++; return 0; }
    for (size_t row = 0;; row++) {
        skip_ws(s);
        if (s->p >= s->end || *s->p != '[') return fail(s, s->p, "row is not an array");
        if (cb->row_begin && cb->row_begin(ctx, row)) return stop(s, s->p);
        s->p++;
        skip_ws(s);
        size_t col = 0;
        if (s->p < s->end && *s->p == ']') {
            s->p++;
        } else {
            for (;; col++) {
                struct json_val v = {0};
                const char *at = s->p;
                if (row_value(s, &v)) return -1;
                if (cb->value && cb->value(ctx, col, &v)) return stop(s, at);
                skip_ws(s);
                if (s->p < s->end && *s->p == ',') { s->p++; continue; }
                if (s->p < s->end && *s->p == ']') { s->p++; col++; break; }
                return fail(s, s->p, "',' or ']' expected in row");
            }
        }
        if (cb->row_end && cb->row_end(ctx, row, col)) return stop(s, s->p);
        skip_ws(s);
        if (s->p < s->end && *s->p == ',') { s->p++; continue; }
        if (s->p < s->end && *s->p == ']') { s->p++; return 0; }
        return fail(s, s->p, "',' or ']' expected after row");
    }
}

static void error_message(struct scan *s, const char *from, char *errmsg, size_t errmsglen)
{
    cJSON *e = NULL;
    char ignore[64];
    if (json_parse(from, (size_t)(s->p - from), s->max_depth, &e, ignore, sizeof ignore) != 0) {
        snprintf(errmsg, errmsglen, "%.*s", (int)(s->p - from), from);
        return;
    }
    const cJSON *m = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "message") : e;
    if (cJSON_IsString(m)) {
        snprintf(errmsg, errmsglen, "%s", m->valuestring);
    } else {
        char *txt = cJSON_PrintUnformatted(e);
        snprintf(errmsg, errmsglen, "%s", txt ? txt : "(error)");
        free(txt);
    }
    cJSON_Delete(e);
}

enum json_rpc_kind json_rpc_rows(const char *body, size_t len, const struct json_rows_cb *cb,
                                 void *ctx, char *errmsg, size_t errmsglen, char *err, size_t errlen)
{
    struct scan s = {body, body, body + len, JSON_MAX_DEPTH_DEFAULT, err, errlen, {0}, 0};
    enum json_rpc_kind kind = JSON_RPC_BAD;
    int have_result = 0, have_error = 0;
    skip_ws(&s);
    if (s.p >= s.end || *s.p != '{') { fail(&s, s.p, "response is not a JSON object"); goto out; }
    s.p++;
    skip_ws(&s);
    if (s.p < s.end && *s.p == '}') { s.p++; goto done; }
    for (;;) {
        skip_ws(&s);
        if (s.p >= s.end || *s.p != '"') { fail(&s, s.p, "object key (string) expected"); goto out; }
        const char *k; size_t kn;
        if (scan_string(&s, &k, &kn)) goto out;
        int is_result = kn == 6 && memcmp(k, "result", 6) == 0;
        int is_error = kn == 5 && memcmp(k, "error", 5) == 0;
        skip_ws(&s);
        if (s.p >= s.end || *s.p != ':') { fail(&s, s.p, "':' expected"); goto out; }
        s.p++;
        skip_ws(&s);
        if (is_result && s.p < s.end && *s.p != 'n') {
            if (have_result) { fail(&s, s.p, "duplicate result"); goto out; }
            if (read_rows(&s, cb, ctx)) {
                if (s.stopped) kind = JSON_RPC_STOPPED;
                goto out;
            }
            have_result = 1;
        } else if (is_error && s.p < s.end && *s.p != 'n') {
            const char *from = s.p;
            if (skip_value(&s, 0)) goto out;
            error_message(&s, from, errmsg, errmsglen);
            have_error = 1;
        } else if (skip_value(&s, 0)) {
            goto out;
        }
        skip_ws(&s);
        if (s.p < s.end && *s.p == ',') { s.p++; continue; }
        if (s.p < s.end && *s.p == '}') { s.p++; break; }
        fail(&s, s.p, "',' or '}' expected");
        goto out;
    }
done:
    skip_ws(&s);
    if (s.p != s.end) { fail(&s, s.p, "trailing characters after JSON value"); goto out; }
    if (have_error) kind = JSON_RPC_ERROR;
    else if (have_result) kind = JSON_RPC_RESULT;
    else fail(&s, s.p, "response has neither result nor error");
out:
    buf_free(&s.tmp);
    return kind;
}

/* ---- writers ----------------------------------------------------------------- */

void json_write_string(struct buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    buf_reserve(b, n + 2);
    buf_putc(b, '"');
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        buf_append(b, s + run, i - run);
        run = i + 1;
        switch (c) {
        case '"': buf_puts(b, "\\\""); break;
        case '\\': buf_puts(b, "\\\\"); break;
        case '\n': buf_puts(b, "\\n"); break;
        case '\r': buf_puts(b, "\\r"); break;
        case '\t': buf_puts(b, "\\t"); break;
        case '\b': buf_puts(b, "\\b"); break;
        case '\f': buf_puts(b, "\\f"); break;
        default: {
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            buf_append(b, u, 6);
        }
        }
    }
    buf_append(b, s + run, n - run);
    buf_putc(b, '"');
}

void json_blob_text(struct buf *b, const void *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = p;
    buf_reserve(b, 2 + 2 * n);
    buf_puts(b, "\\x");
    for (size_t i = 0; i < n; i++) {
        char h[2] = {hex[u[i] >> 4], hex[u[i] & 15]};
        buf_append(b, h, 2);
    }
}

void json_write_blob(struct buf *b, const void *p, size_t n)
{
    /* In JSON the backslash itself is escaped: "\\x00ff". */
    buf_puts(b, "\"\\");
    json_blob_text(b, p, n);
    buf_putc(b, '"');
}

void json_write_double(struct buf *b, double d)
{
    if (!isfinite(d)) { buf_puts(b, "null"); return; }
    char tmp[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, d);
        if (strtod(tmp, NULL) == d) break;
    }
    buf_puts(b, tmp);
    /* Keep it a float on re-read: 3.0 stays "3.0", not the integer 3. */
    if (!strpbrk(tmp, ".eE")) buf_puts(b, ".0");
}

void json_write_val(struct buf *b, const struct json_val *v)
{
    switch (v->type) {
    case JV_NULL: buf_puts(b, "null"); break;
    case JV_BOOL: buf_puts(b, v->i ? "true" : "false"); break;
    case JV_INT: buf_printf(b, "%lld", (long long)v->i); break;
    case JV_REAL: json_write_double(b, v->d); break;
    case JV_TEXT: json_write_string(b, v->s, v->n); break;
    case JV_JSON: buf_append(b, v->s, v->n); break;
    }
}

void json_write_tree(struct buf *b, const cJSON *item)
{
    if (cJSON_IsNull(item) || !item) { buf_puts(b, "null"); return; }
    if (cJSON_IsTrue(item)) { buf_puts(b, "true"); return; }
    if (cJSON_IsFalse(item)) { buf_puts(b, "false"); return; }
    if (cJSON_IsString(item)) { json_write_string(b, item->valuestring, strlen(item->valuestring)); return; }
    if (cJSON_IsNumber(item)) {
        int64_t v;
        if (item->valuestring) buf_puts(b, item->valuestring);
        else if (json_int64(item, &v)) buf_printf(b, "%lld", (long long)v);
        else json_write_double(b, item->valuedouble);
        return;
    }
    int obj = cJSON_IsObject(item);
    buf_putc(b, obj ? '{' : '[');
    for (const cJSON *c = item->child; c; c = c->next) {
        if (c != item->child) buf_putc(b, ',');
        if (obj) {
            json_write_string(b, c->string, strlen(c->string));
            buf_putc(b, ':');
        }
        json_write_tree(b, c);
    }
    buf_putc(b, obj ? '}' : ']');
}

/* ---- rows as JSON text ------------------------------------------------------- */

static int rt_begin(void *ctx)
{
    struct json_rows_text *t = ctx;
    buf_reset(t->out);
    if (!t->lines) buf_puts(t->out, "[]");
    t->rows = 0;
    return 0;
}

static int rt_row_begin(void *ctx, size_t row)
{
    struct json_rows_text *t = ctx;
    if (!t->lines) t->out->len--;              /* reopen the outer array */
    buf_puts(t->out, !t->lines && row ? ",[" : "[");
    return 0;
}

static int rt_value(void *ctx, size_t col, const struct json_val *v)
{
    struct json_rows_text *t = ctx;
    if (col) buf_putc(t->out, ',');
    json_write_val(t->out, v);
    return 0;
}

static int rt_row_end(void *ctx, size_t row, size_t ncols)
{
    struct json_rows_text *t = ctx;
    buf_puts(t->out, t->lines ? "]\n" : "]]");
    t->rows++;
    return 0;
}

const struct json_rows_cb json_rows_text_cb = {rt_begin, rt_row_begin, rt_value, rt_row_end};
