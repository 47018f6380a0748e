/* jsonsql_rows.c — rows out: jsonsql_write_row() writes one result row as the
 * portal's positional JSON array, each cell by the type the compiler gave its
 * column (contract: jsonsql.h). */
#include "agent/jsonsql/jsonsql.h"
#include "agent/base/buf.h"
#include "agent/base/json.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Validating JSON scanner (no allocation) so that a JSON column is emitted raw
 * only when it really is JSON; anything else is written as a string, which
 * keeps the response well-formed whatever the cache holds. */
static const char *jv_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

static const char *jv_value(const char *p, const char *e, int depth);

static const char *jv_string(const char *p, const char *e)
{
    for (p++; p < e; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '"') return p + 1;
        if (ch < 0x20) return NULL;
        if (ch == '\\') {
            if (++p >= e) return NULL;
            if (*p == 'u') {
                for (int i = 0; i < 4; i++)
                    if (++p >= e || !strchr("0123456789abcdefABCDEF", *p)) return NULL;
            } else if (!strchr("\"\\/bfnrt", *p)) {
                return NULL;
            }
        }
    }
    return NULL;
}

static const char *jv_digits(const char *p, const char *e)
{
    const char *s = p;
    while (p < e && *p >= '0' && *p <= '9') p++;
    return p > s ? p : NULL;
}

static const char *jv_number(const char *p, const char *e)
{
    if (p < e && *p == '-') p++;
    if (p < e && *p == '0') p++;
    else if (!(p = jv_digits(p, e))) return NULL;
    if (p < e && *p == '.' && !(p = jv_digits(p + 1, e))) return NULL;
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < e && (*p == '+' || *p == '-')) p++;
        if (!(p = jv_digits(p, e))) return NULL;
    }
    return p;
}

static const char *jv_container(const char *p, const char *e, int depth, char close)
{
    p = jv_ws(p + 1, e);
    if (p < e && *p == close) return p + 1;
    for (;;) {
        if (close == '}') {
            if (p >= e || *p != '"' || !(p = jv_string(p, e))) return NULL;
            p = jv_ws(p, e);
            if (p >= e || *p != ':') return NULL;
            p = jv_ws(p + 1, e);
        }
        if (!(p = jv_value(p, e, depth + 1))) return NULL;
        p = jv_ws(p, e);
        if (p < e && *p == ',') p = jv_ws(p + 1, e);
        else if (p < e && *p == close) return p + 1;
        else return NULL;
    }
}

static const char *jv_value(const char *p, const char *e, int depth)
{
    if (p >= e || depth > JSON_MAX_DEPTH_DEFAULT) return NULL;
    switch (*p) {
    case '{': return jv_container(p, e, depth, '}');
    case '[': return jv_container(p, e, depth, ']');
    case '"': return jv_string(p, e);
    case 't': return (e - p >= 4 && memcmp(p, "true", 4) == 0) ? p + 4 : NULL;
    case 'f': return (e - p >= 5 && memcmp(p, "false", 5) == 0) ? p + 5 : NULL;
    case 'n': return (e - p >= 4 && memcmp(p, "null", 4) == 0) ? p + 4 : NULL;
    default: return jv_number(p, e);
    }
}

static int json_valid(const char *s, size_t n)
{
    const char *e = s + n, *p = jv_value(jv_ws(s, e), e, 1);
    return p && jv_ws(p, e) == e;
}

/* s is an integer as JSON writes one: -?(0|[1-9][0-9]*). */
static int int_digits(const char *s, size_t n)
{
    size_t i = n && s[0] == '-';
    if (i == n || (s[i] == '0' && n - i > 1)) return 0;
    for (; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return 1;
}

static void write_cell(struct buf *b, enum jsonsql_type type, sqlite3_stmt *ps, int i)
{
    switch (sqlite3_column_type(ps, i)) {
    case SQLITE_NULL:
        buf_puts(b, "null");
        return;
    case SQLITE_INTEGER: {
        long long v = sqlite3_column_int64(ps, i);
        if (type == JSQL_BOOL) {
            buf_puts(b, v ? "true" : "false");
        } else if (type == JSQL_TEXT) {
            buf_putc(b, '"');
            buf_put_int(b, v);
            buf_putc(b, '"');
        } else if (type == JSQL_REAL) {   /* coalesce(real, 0): still a float */
            json_write_double(b, (double)v);
        } else {
            buf_put_int(b, v);
        }
        return;
    }
    case SQLITE_FLOAT: {
        double d = sqlite3_column_double(ps, i);
        if (type == JSQL_BOOL) {
            buf_puts(b, d != 0 ? "true" : "false");
        } else if (type == JSQL_TEXT) {
            const char *s = (const char *)sqlite3_column_text(ps, i);
            json_write_string(b, s, (size_t)sqlite3_column_bytes(ps, i));
        } else if (type == JSQL_INT && d >= -9007199254740992.0 && d <= 9007199254740992.0 &&
                   d == (double)(long long)d) {
            buf_put_int(b, (long long)d);   /* a whole float where the type says integer */
        } else {
            json_write_double(b, d);
        }
        return;
    }
    case SQLITE_BLOB:   /* never raw bytes in JSON: json.h's one blob form */
        json_write_blob(b, sqlite3_column_blob(ps, i), (size_t)sqlite3_column_bytes(ps, i));
        return;
    default: {   /* TEXT */
        const char *s = (const char *)sqlite3_column_text(ps, i);
        size_t n = (size_t)sqlite3_column_bytes(ps, i);
        if (!s) s = "";
        if (type == JSQL_JSON && sqlite3_column_type(ps, i) == SQLITE_TEXT && json_valid(s, n))
            buf_append(b, s, n);
        else if (type == JSQL_INT && int_digits(s, n))
            buf_append(b, s, n);   /* an exact integer past 64 bits (jsonsql_sum) */
        else
            json_write_string(b, s, n);
        return;
    }
    }
}

void jsonsql_write_row(struct buf *b, const struct jsonsql_stmt *st, sqlite3_stmt *ps)
{
    int n = sqlite3_column_count(ps);
    buf_putc(b, '[');
    for (int i = 0; i < n; i++) {
        if (i) buf_putc(b, ',');
        write_cell(b, i < st->ncols ? st->col_types[i] : JSQL_ANY, ps, i);
    }
    buf_putc(b, ']');
}
