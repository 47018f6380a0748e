/* toml.c — see toml.h.
 *
 * A hand-written recursive-descent reader over the whole text. Two passes:
 * first the bytes are checked to be UTF-8 without NUL (so later code can treat
 * '\0' from peek() as end of input and count columns in characters), then one
 * pass builds the tree. The first error stops the parse; everything built so
 * far is freed, so callers never see a partial tree.
 *
 * Position invariant: P->line/P->col always describe the byte at P->p. Only
 * adv() moves P->p, and it keeps that invariant (columns count characters, so a
 * multi-byte character advances the column once, on its last byte). */
#include "agent/config/toml.h"
#include "agent/base/buf.h"
#include "agent/base/mem.h"
#include "agent/base/utf8.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Nesting bound for arrays: recursion depth stays small whatever the input. */
#define TOML_MAX_DEPTH 32

struct parser {
    const char *name;              /* file name for messages */
    const char *p, *end;           /* cursor and end of input */
    int line, col;                 /* position of *p */
    char *err;
    size_t errlen;
    struct toml_doc doc;           /* being built; freed on error */
    struct buf sb;                 /* scratch for decoding strings */
};

__attribute__((format(printf, 4, 5)))
static int fail_at(struct parser *P, int line, int col, const char *fmt, ...)
{
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (P->errlen) snprintf(P->err, P->errlen, "%s:%d:%d: %s", P->name, line, col, msg);
    return -1;
}

#define fail(P, ...) fail_at((P), (P)->line, (P)->col, __VA_ARGS__)

static bool at_eof(const struct parser *P) { return P->p >= P->end; }

/* The byte k ahead of the cursor, or '\0' past the end (input holds no NUL). */
static char peek(const struct parser *P, size_t k)
{
    return (size_t)(P->end - P->p) > k ? P->p[k] : '\0';
}

static void adv(struct parser *P)
{
    char c = *P->p++;
    if (c == '\n') {
        P->line++;
        P->col = 1;
    } else if (P->p >= P->end || ((unsigned char)*P->p & 0xC0) != 0x80) {
        P->col++;   /* the character ended here */
    }
}

static bool is_bare(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
}

static bool is_control(unsigned char c) { return (c < 0x20 && c != '\t') || c == 0x7f; }

/* What the cursor is looking at, for "found X" in messages. */
static const char *describe(const struct parser *P, char *out, size_t outlen)
{
    if (at_eof(P)) return "end of file";
    unsigned char c = (unsigned char)*P->p;
    if (c == '\n' || (c == '\r' && peek(P, 1) == '\n')) return "end of line";
    if (c > 0x20 && c < 0x7f) {
        snprintf(out, outlen, "`%c`", c);
    } else {
        uint32_t cp;
        if (utf8_decode(P->p, (size_t)(P->end - P->p), &cp) < 0) cp = c;   /* checked already: not reached */
        snprintf(out, outlen, "U+%04X", (unsigned)cp);
    }
    return out;
}

/* Pass one: valid UTF-8 (shortest form, no surrogates, <= U+10FFFF) and no NUL. */
static int check_utf8(struct parser *P)
{
    const unsigned char *s = (const unsigned char *)P->p, *e = (const unsigned char *)P->end;
    int line = P->line, col = P->col;
    while (s < e) {
        unsigned c = *s;
        uint32_t cp;
        if (c == 0) return fail_at(P, line, col, "NUL byte in file");
        int n = utf8_decode(s, (size_t)(e - s), &cp);
        if (n == UTF8_EBYTE) return fail_at(P, line, col, "invalid UTF-8 byte 0x%02X", c);
        if (n == UTF8_ETRUNC) return fail_at(P, line, col, "truncated UTF-8 sequence");
        if (n < 0) return fail_at(P, line, col, "invalid UTF-8 sequence");
        if (c == '\n') { line++; col = 1; } else col++;
        s += n;
    }
    return 0;
}

/* Grow an array whose capacity is implicitly the next power of two >= n; the
 * new slot [n] is zeroed. */
static void *grow(void *arr, int n, size_t size)
{
    if (n == 0 || (n & (n - 1)) == 0) arr = xrealloc(arr, (size_t)(n ? 2 * n : 1) * size);
    memset((char *)arr + (size_t)n * size, 0, size);
    return arr;
}

static void value_free(struct toml_value *v)
{
    free(v->s);
    for (int i = 0; i < v->nitems; i++) value_free(&v->items[i]);
    free(v->items);
}

void toml_free(struct toml_doc *d)
{
    for (int t = 0; t < d->ntables; t++) {
        struct toml_table *tb = &d->tables[t];
        for (int i = 0; i < tb->nkvs; i++) {
            free(tb->kvs[i].key);
            value_free(&tb->kvs[i].val);
        }
        free(tb->kvs);
        free(tb->name);
    }
    free(d->tables);
    d->tables = NULL;
    d->ntables = 0;
}

static void skip_ws(struct parser *P)
{
    while (!at_eof(P) && (*P->p == ' ' || *P->p == '\t')) adv(P);
}

/* At '#': skip to the end of the line (not consuming it). */
static int skip_comment(struct parser *P)
{
    adv(P);
    while (!at_eof(P) && *P->p != '\n') {
        unsigned char c = (unsigned char)*P->p;
        if (c == '\r' && peek(P, 1) == '\n') break;
        if (is_control(c)) return fail(P, "control character U+%04X in comment", c);
        adv(P);
    }
    return 0;
}

/* Consume a newline (LF or CRLF) if one is at the cursor. */
static bool take_newline(struct parser *P)
{
    if (peek(P, 0) == '\n') { adv(P); return true; }
    if (peek(P, 0) == '\r' && peek(P, 1) == '\n') { adv(P); adv(P); return true; }
    return false;
}

/* After a header or a value: optional spaces and comment, then a newline or EOF. */
static int end_of_line(struct parser *P, const char *after)
{
    skip_ws(P);
    if (peek(P, 0) == '#' && skip_comment(P) < 0) return -1;
    if (at_eof(P) || take_newline(P)) return 0;
    char d[16];
    return fail(P, "expected end of line after %s, found %s", after, describe(P, d, sizeof d));
}

/* Inside arrays: spaces, newlines and comments. */
static int skip_ws_nl(struct parser *P)
{
    for (;;) {
        skip_ws(P);
        if (peek(P, 0) == '#') {
            if (skip_comment(P) < 0) return -1;
        } else if (!take_newline(P)) {
            return 0;
        }
    }
}

/* At '\\' inside a basic string: decode one escape into P->sb. */
static int parse_escape(struct parser *P)
{
    int line = P->line, col = P->col;
    adv(P);
    char e = peek(P, 0);
    const char *simple = strchr("btnfr\"\\", e);
    if (e && simple) {
        static const char out[] = "\b\t\n\f\r\"\\";
        buf_putc(&P->sb, out[simple - "btnfr\"\\"]);
        adv(P);
        return 0;
    }
    if (e == 'u' || e == 'U') {
        int digits = e == 'u' ? 4 : 8;
        unsigned cp = 0;
        adv(P);
        for (int i = 0; i < digits; i++) {
            char h = peek(P, 0);
            unsigned v;
            if (h >= '0' && h <= '9') v = (unsigned)(h - '0');
            else if (h >= 'a' && h <= 'f') v = (unsigned)(h - 'a' + 10);
            else if (h >= 'A' && h <= 'F') v = (unsigned)(h - 'A' + 10);
            else return fail_at(P, line, col, "invalid escape: \\%c needs %d hex digits", e, digits);
            cp = (cp << 4) | v;   /* 8 digits fit: at most 0xFFFFFFFF */
            adv(P);
        }
        if (cp == 0)
            return fail_at(P, line, col, "\\%c escape of U+0000 is not supported by this reader", e);
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return fail_at(P, line, col, "invalid escape: U+%04X is not a Unicode scalar value", cp);
        utf8_put(&P->sb, cp);
        return 0;
    }
    if (e == '\0' || e == '\n' || e == '\r')
        return fail_at(P, line, col, "invalid escape at end of line");
    char d[16];
    if ((unsigned char)e > 0x20 && (unsigned char)e < 0x7f) snprintf(d, sizeof d, "\\%c", e);
    else describe(P, d, sizeof d);
    return fail_at(P, line, col, "invalid escape `%s` (allowed: \\\" \\\\ \\b \\t \\n \\f \\r "
                                 "\\uHHHH \\UHHHHHHHH)", d);
}

/* At the opening quote of a basic ("...") or literal ('...') string. */
static int parse_string(struct parser *P, struct toml_value *v)
{
    char q = *P->p;
    int line = P->line, col = P->col;
    adv(P);
    buf_reset(&P->sb);
    buf_reserve(&P->sb, 0);   /* sb.p is non-NULL from here on */
    for (;;) {
        if (at_eof(P) || *P->p == '\n' || (*P->p == '\r' && peek(P, 1) == '\n'))
            return fail_at(P, line, col, "unterminated string");
        unsigned char c = (unsigned char)*P->p;
        if (c == (unsigned char)q) { adv(P); break; }
        if (q == '"' && c == '\\') {
            if (parse_escape(P) < 0) return -1;
            continue;
        }
        if (is_control(c))
            return fail(P, "control character U+%04X in string (write it as an escape)", c);
        buf_putc(&P->sb, (char)c);
        adv(P);
    }
    v->type = TOML_STRING;
    v->s = xstrndup(P->sb.p, P->sb.len);
    return 0;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* TOML dates start YYYY- and times HH: (precise enough to name the refusal). */
static bool looks_like_datetime(const char *s, size_t n)
{
    if (n >= 5 && is_digit(s[0]) && is_digit(s[1]) && is_digit(s[2]) && is_digit(s[3]) &&
        s[4] == '-')
        return true;
    return n >= 3 && is_digit(s[0]) && is_digit(s[1]) && s[2] == ':';
}

/* Digits with a fraction or exponent (sign already stripped): 1.5, 1e5, 2E-3. */
static bool looks_like_float(const char *b, size_t n)
{
    bool mark = false;
    for (size_t i = 0; i < n; i++) {
        char c = b[i];
        if (c == '.' || c == 'e' || c == 'E') mark = true;
        else if ((c == '+' || c == '-') && i > 0 && (b[i - 1] == 'e' || b[i - 1] == 'E')) continue;
        else if (!is_digit(c) && c != '_') return false;
    }
    return mark;
}

/* A bare token (integer, boolean or something refused): classify and convert. */
static int parse_scalar(struct parser *P, struct toml_value *v)
{
    const char *s = P->p;
    size_t n = 0;
    while (s + n < P->end) {
        unsigned char c = (unsigned char)s[n];
        if (c <= 0x20 || c == 0x7f || strchr(",]#[{}\"'=", c)) break;
        n++;
    }
    if (n == 0) {
        char d[16];
        return fail(P, "expected a value (string, integer, boolean or array), found %s",
                    describe(P, d, sizeof d));
    }
    /* Shown back in messages: bounded so one long token cannot fill the buffer. */
    int shown = n > 40 ? 40 : (int)n;
    const char *ell = n > 40 ? "..." : "";

    if ((n == 4 && !memcmp(s, "true", 4)) || (n == 5 && !memcmp(s, "false", 5))) {
        v->type = TOML_BOOL;
        v->b = n == 4;
        goto done;
    }
    const char *b = s;
    size_t bn = n;
    bool neg = false;
    if (*b == '+' || *b == '-') { neg = *b == '-'; b++; bn--; }
    if ((bn == 3 && (!memcmp(b, "inf", 3) || !memcmp(b, "nan", 3))))
        return fail(P, "floats are not supported by this reader (`%.*s`)", shown, s);
    if (bn == 0 || !is_digit(b[0]))
        return fail(P, "invalid value `%.*s%s` (strings need quotes)", shown, s, ell);
    if (b == s && looks_like_datetime(s, n))
        return fail(P, "dates and times are not supported by this reader (`%.*s%s`)", shown, s, ell);
    if (bn > 1 && b[0] == '0' && strchr("xob", b[1]))
        return fail(P, "hexadecimal, octal and binary integers are not supported by this reader "
                       "(`%.*s%s`)", shown, s, ell);
    if (looks_like_float(b, bn))
        return fail(P, "floats are not supported by this reader (`%.*s%s`)", shown, s, ell);

    /* Decimal integer: digits with single '_' between digits, no leading zero. */
    uint64_t mag = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    int ndigits = 0;
    for (size_t i = 0; i < bn; i++) {
        char c = b[i];
        if (c == '_') {
            if (i + 1 == bn || !is_digit(b[i + 1]) || b[i - 1] == '_')
                return fail(P, "invalid integer `%.*s%s`: `_` must sit between digits", shown, s, ell);
            continue;
        }
        if (!is_digit(c)) return fail(P, "invalid value `%.*s%s` (strings need quotes)", shown, s, ell);
        if (ndigits == 1 && mag == 0)
            return fail(P, "invalid integer `%.*s%s`: leading zeros are not allowed", shown, s, ell);
        unsigned d = (unsigned)(c - '0');
        if (mag > (limit - d) / 10)
            return fail(P, "integer `%.*s%s` is out of range (64-bit signed)", shown, s, ell);
        mag = mag * 10 + d;
        ndigits++;
    }
    v->type = TOML_INT;
    /* mag <= limit, so the negation stays in range (INT64_MIN included). */
    v->i = neg ? (mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag) : (int64_t)mag;
done:
    for (size_t i = 0; i < n; i++) adv(P);
    return 0;
}

static int parse_value(struct parser *P, struct toml_value *v, int depth);

static int parse_array(struct parser *P, struct toml_value *v, int depth)
{
    int line = P->line, col = P->col;
    if (depth >= TOML_MAX_DEPTH)
        return fail(P, "arrays nested deeper than %d are not supported by this reader", TOML_MAX_DEPTH);
    adv(P);
    v->type = TOML_ARRAY;
    for (;;) {
        if (skip_ws_nl(P) < 0) return -1;
        if (at_eof(P)) return fail_at(P, line, col, "unterminated array");
        if (*P->p == ']') { adv(P); return 0; }
        v->items = grow(v->items, v->nitems, sizeof *v->items);
        struct toml_value *item = &v->items[v->nitems++];
        if (parse_value(P, item, depth + 1) < 0) return -1;
        if (skip_ws_nl(P) < 0) return -1;
        if (at_eof(P)) return fail_at(P, line, col, "unterminated array");
        if (*P->p == ',') { adv(P); continue; }
        if (*P->p == ']') { adv(P); return 0; }
        char d[16];
        return fail(P, "expected `,` or `]` in array, found %s", describe(P, d, sizeof d));
    }
}

static int parse_value(struct parser *P, struct toml_value *v, int depth)
{
    v->line = P->line;
    v->col = P->col;
    char c = peek(P, 0);
    if (c == '"' || c == '\'') {
        if (peek(P, 1) == c && peek(P, 2) == c)
            return fail(P, "multi-line strings are not supported by this reader");
        return parse_string(P, v);
    }
    if (c == '[') return parse_array(P, v, depth);
    if (c == '{') return fail(P, "inline tables are not supported by this reader");
    return parse_scalar(P, v);
}

/* A bare key or table name at the cursor into *out (caller frees). */
static int parse_name(struct parser *P, const char *what, char **out)
{
    char c = peek(P, 0);
    if (c == '"' || c == '\'') return fail(P, "quoted %ss are not supported by this reader", what);
    if (!is_bare(c)) {
        char d[16];
        return fail(P, "expected a %s, found %s", what, describe(P, d, sizeof d));
    }
    const char *s = P->p;
    while (!at_eof(P) && is_bare(*P->p)) adv(P);
    *out = xstrndup(s, (size_t)(P->p - s));
    return 0;
}

/* At '[': a [name] or [[name]] header; appends the table. */
static int parse_header(struct parser *P)
{
    int line = P->line, col = P->col;
    adv(P);
    bool is_array = peek(P, 0) == '[';
    if (is_array) adv(P);
    skip_ws(P);
    char *name = NULL;
    if (parse_name(P, "table name", &name) < 0) return -1;
    skip_ws(P);
    if (peek(P, 0) == '.') {
        free(name);
        return fail(P, "dotted table names are not supported by this reader");
    }
    if (peek(P, 0) != ']' || (is_array && peek(P, 1) != ']')) {
        char d[16];
        fail(P, "expected `%s` to close the table header, found %s", is_array ? "]]" : "]",
             describe(P, d, sizeof d));
        free(name);
        return -1;
    }
    adv(P);
    if (is_array) adv(P);

    const struct toml_kv *clash = toml_table_get(&P->doc.tables[0], name);
    if (clash) {
        fail_at(P, line, col, "table `%s` clashes with the key set at line %d", name, clash->line);
        free(name);
        return -1;
    }
    for (int t = 1; t < P->doc.ntables; t++) {
        const struct toml_table *o = &P->doc.tables[t];
        if (strcmp(o->name, name) != 0 || (is_array && o->is_array)) continue;
        fail_at(P, line, col, "table `%s` is already defined at line %d%s", name, o->line,
                o->is_array != is_array ? (o->is_array ? " as [[...]]" : " as [...]") : "");
        free(name);
        return -1;
    }
    P->doc.tables = grow(P->doc.tables, P->doc.ntables, sizeof *P->doc.tables);
    struct toml_table *tb = &P->doc.tables[P->doc.ntables++];
    tb->name = name;
    tb->is_array = is_array;
    tb->line = line;
    tb->col = col;
    return end_of_line(P, "the table header");
}

/* At a key: key = value, appended to the current (last) table. */
static int parse_keyval(struct parser *P)
{
    struct toml_table *tb = &P->doc.tables[P->doc.ntables - 1];
    int line = P->line, col = P->col;
    char c = peek(P, 0), *key = NULL;
    if (!is_bare(c) && c != '"' && c != '\'') {
        char d[16];
        return fail(P, "expected a key, a [table] header or a comment, found %s",
                    describe(P, d, sizeof d));
    }
    if (parse_name(P, "key", &key) < 0) return -1;
    const struct toml_kv *dup = toml_table_get(tb, key);
    if (dup) {
        fail_at(P, line, col, "duplicate key `%s` (first set at line %d)", key, dup->line);
        free(key);
        return -1;
    }
    tb->kvs = grow(tb->kvs, tb->nkvs, sizeof *tb->kvs);
    struct toml_kv *kv = &tb->kvs[tb->nkvs++];
    kv->key = key;
    kv->line = line;
    kv->col = col;
    skip_ws(P);
    if (peek(P, 0) == '.') return fail(P, "dotted keys are not supported by this reader");
    if (peek(P, 0) != '=') {
        char d[16];
        return fail(P, "expected `=` after key `%s`, found %s", key, describe(P, d, sizeof d));
    }
    adv(P);
    skip_ws(P);
    if (at_eof(P) || peek(P, 0) == '\n' || peek(P, 0) == '\r' || peek(P, 0) == '#')
        return fail(P, "key `%s`: missing value", key);
    if (parse_value(P, &kv->val, 0) < 0) return -1;
    char after[96];
    snprintf(after, sizeof after, "the value of `%.64s`", key);
    return end_of_line(P, after);
}

int toml_parse(const char *name, const char *text, size_t len, struct toml_doc *out,
               char *err, size_t errlen)
{
    struct parser P = {
        .name = name ? name : "<string>", .p = text, .end = text + len,
        .line = 1, .col = 1, .err = err, .errlen = errlen,
    };
    if (errlen) err[0] = '\0';
    out->tables = NULL;
    out->ntables = 0;
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) P.p += 3;   /* BOM: not a column */
    if (check_utf8(&P) < 0) return -1;

    P.doc.tables = grow(NULL, 0, sizeof *P.doc.tables);
    P.doc.tables[0].line = P.doc.tables[0].col = 1;
    P.doc.ntables = 1;
    int rc = 0;
    while (rc == 0) {
        skip_ws(&P);
        if (at_eof(&P)) break;
        char c = *P.p;
        if (c == '#') rc = end_of_line(&P, "the comment");
        else if (take_newline(&P)) continue;
        else if (c == '[') rc = parse_header(&P);
        else rc = parse_keyval(&P);
    }
    buf_free(&P.sb);
    if (rc < 0) {
        toml_free(&P.doc);
        return -1;
    }
    *out = P.doc;
    return 0;
}

const struct toml_kv *toml_table_get(const struct toml_table *t, const char *key)
{
    for (int i = 0; i < t->nkvs; i++)
        if (strcmp(t->kvs[i].key, key) == 0) return &t->kvs[i];
    return NULL;
}

const char *toml_type_name(enum toml_type t)
{
    switch (t) {
    case TOML_STRING: return "string";
    case TOML_INT: return "integer";
    case TOML_BOOL: return "boolean";
    case TOML_ARRAY: return "array";
    }
    return "?";
}
