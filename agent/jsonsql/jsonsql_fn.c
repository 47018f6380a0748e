/* jsonsql_fn.c — the SQL functions compiled JSONSQL relies on, registered on a
 * connection by jsonsql_register_functions() (contract: jsonsql.h):
 * regexp_replace with PostgreSQL's pattern syntax, translated to POSIX ERE and
 * bounded before it runs (or refused: never a silently different answer),
 * lower/upper over the two-byte UTF-8 alphabets, and the helpers compiled
 * comparisons, arithmetic and averages call: jsonsql_tscmp, jsonsql_divisor,
 * jsonsql_bigint, jsonsql_avg, jsonsql_sum. */
#include "agent/jsonsql/jsonsql.h"
#include "agent/base/buf.h"
#include "agent/base/mem.h"
#include "agent/base/utf8.h"

#include <locale.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct rx {
    regex_t re;
    int icase;                  /* compiled with REG_ICASE */
    locale_t loc;               /* C.UTF-8 for compiling and matching; 0: none */
};

static void rx_free(void *p)
{
    struct rx *r = p;
    regfree(&r->re);
    if (r->loc) freelocale(r->loc);
    free(r);
}

/* PostgreSQL replacement syntax: \1..\9 a group, \& the match, \\ a backslash.
 * Returns -1 as soon as o holds more than cap bytes (each \& may copy the
 * whole text: a replacement of many \& multiplies it). */
static int put_replacement(struct buf *o, const char *rep, const char *s, const regmatch_t *m,
                           size_t nsub, size_t cap)
{
    for (const char *p = rep; *p; p++) {
        if (o->len > cap) return -1;
        if (*p == '\\' && p[1]) {
            size_t g = 10;
            if (p[1] >= '1' && p[1] <= '9') g = (size_t)(p[1] - '0');
            else if (p[1] == '&') g = 0;
            if (g <= 9) {
                if (g <= nsub && m[g].rm_so >= 0)
                    buf_append(o, s + m[g].rm_so, (size_t)(m[g].rm_eo - m[g].rm_so));
                p++;
                continue;
            }
            if (p[1] == '\\') {
                buf_putc(o, '\\');
                p++;
                continue;
            }
        }
        buf_putc(o, *p);
    }
    return o->len > cap ? -1 : 0;
}

static size_t utf8_step(unsigned char ch)
{
    return ch >= 0xF0 ? 4 : ch >= 0xE0 ? 3 : ch >= 0xC0 ? 2 : 1;
}

/* Bounds on the work of one regexp_replace call. glibc's regexec never calls
 * back, so SQLite's progress handler (the local API's time limit) cannot stop
 * it; the work must be bounded before it starts. Measured with glibc 2.36:
 *  - a back-reference makes matching exponential: '(a*)*\1\1b' took 10 s
 *    on 100 characters, 45 s on 128, and did not end on 256;
 *  - nested bounded repetitions are expanded at compile time:
 *    '(((a{1,100}){1,100}){1,100})' did not compile within a minute;
 *  - an unanchored search that fails late costs the square of the text:
 *    'a*x|b' takes 10 s on 64 KiB, ~0.16 s on 8 KiB (at most ~0.3 s on 8 KiB
 *    for the patterns within RX_MAX_NODES tried).
 * The result is bounded by the connection's SQLITE_LIMIT_LENGTH while it is
 * built: an empty pattern with 'g' inserts the replacement at every character,
 * which grew to gigabytes before SQLite could refuse it. */
#define RX_MAX_TEXT 8192        /* bytes of text searched */
#define RX_MAX_NODES 1000       /* pattern size with repetitions expanded */

/* Expanded size of an ERE: atoms count 1, a group its content + 1, x{m,n}
 * multiplies x by its largest count, alternatives add. Over-estimates rather
 * than under (an unknown construct counts as an atom). Saturates at limit + 1.
 * Back-references (\1..\9 outside brackets) are reported through *backref. */
static long rx_size(const char *p, long limit, int *backref)
{
    long stack_total[64], total = 0, last = 0;
    int depth = 0;
    *backref = 0;
    for (; *p; p++) {
        if (total > limit) return limit + 1;
        switch (*p) {
        case '(':
            if (depth == (int)(sizeof stack_total / sizeof stack_total[0])) return limit + 1;
            stack_total[depth++] = total;
            total = 0;
            last = 0;
            continue;
        case ')':
            if (depth == 0) { last = 1; total += 1; continue; }   /* regcomp decides */
            last = total + 1;
            total = stack_total[--depth] + last;
            continue;
        case '|':
            last = 0;
            continue;
        case '*': case '+': case '?':
            total += last;                   /* x+ is compiled as xx* */
            last *= 2;
            continue;
        case '{': {
            const char *q = p + 1;
            long lo = 0, hi = -1, v = 0;
            int digits = 0;
            while (*q >= '0' && *q <= '9') { if (v <= limit) v = v * 10 + (*q - '0'); q++; digits++; }
            lo = v;
            if (*q == ',') {
                q++;
                v = 0;
                int d2 = 0;
                while (*q >= '0' && *q <= '9') { if (v <= limit) v = v * 10 + (*q - '0'); q++; d2++; }
                hi = d2 ? v : lo + 1;
                digits += d2;
            } else {
                hi = lo;
            }
            if (*q != '}' || digits == 0) { last = 1; total += 1; continue; }   /* a literal '{' */
            long n = hi > lo ? hi : lo;
            if (n < 1) n = 1;
            long grown = last > 0 && n > limit / last ? limit + 1 : last * n;
            total += grown - last;
            last = grown;
            p = q;
            continue;
        }
        case '[': {
            const char *q = p + 1;
            if (*q == '^') q++;
            if (*q == ']') q++;
            while (*q && *q != ']') {
                if (*q == '[' && (q[1] == ':' || q[1] == '.' || q[1] == '=')) {
                    const char *e = strchr(q + 2, q[1]);
                    while (e && e[1] != ']') e = strchr(e + 1, q[1]);
                    q = e ? e + 2 : q + strlen(q);
                } else {
                    q++;
                }
            }
            if (!*q) return total + 1;       /* unterminated: regcomp refuses it */
            p = q;
            last = 1;
            total += 1;
            continue;
        }
        case '\\':
            if (p[1] >= '1' && p[1] <= '9') *backref = 1;
            if (p[1]) p++;
            last = 1;
            total += 1;
            continue;
        default:
            last = 1;
            total += 1;
        }
    }
    while (depth > 0) total = stack_total[--depth] + total + 1;
    return total > limit ? limit + 1 : total;
}

#define RX_MAX_PATTERN 65536    /* bytes of a translated pattern */
#define RX_MAX_RANGE 1024       /* characters a range outside a-z, A-Z, 0-9 spells out */
#define RX_MAX_DUP 255          /* PostgreSQL's largest bound count */

static const char RX_BACKREF[] = "regexp_replace: back-references (\\1..\\9) in the pattern are not supported: "
                                 "their matching time grows exponentially";

static int rx_fail(char *msg, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int rx_fail(char *msg, size_t cap, const char *fmt, ...)
{
    int n = snprintf(msg, cap, "regexp_replace: ");
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < cap) vsnprintf(msg + n, cap - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

/* The character a PostgreSQL character-entry escape \\e stands for, or -1. */
static int rx_entry(char e)
{
    switch (e) {
    case 'a': return '\a';
    case 'b': return '\b';      /* backspace in PostgreSQL, a word boundary to GNU */
    case 'B': return '\\';
    case 'e': return 033;
    case 'f': return '\f';
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    case 'v': return '\v';
    default: return -1;
    }
}

/* A literal character outside brackets, in a form every ERE reads as itself. */
static void rx_lit(struct buf *o, uint32_t c)
{
    if (c == '\\' || c == '^') {
        buf_putc(o, '\\');
        buf_putc(o, (char)c);
    } else if (c < 0x80 && strchr(".[]()*+?{}|$", (int)c)) {
        buf_putc(o, '[');
        buf_putc(o, (char)c);
        buf_putc(o, ']');
    } else {
        utf8_put(o, c);
    }
}

static int rx_alnum(uint32_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* A literal member of a bracket at *pp (a character or an escaped one). 1 read
 * into *c, 0 a class escape (its class appended to cls), -1 refused. */
static int rx_member(const char **pp, uint32_t *c, struct buf *cls, char *msg, size_t cap)
{
    const char *q = *pp;
    if (*q == '\\') {
        char e = q[1];
        if (!e) return rx_fail(msg, cap, "the pattern ends with a backslash");
        const char *k = e == 'd' ? "[:digit:]" : e == 's' ? "[:space:]" : e == 'w' ? "[:alnum:]_" : NULL;
        if (k) {
            buf_puts(cls, k);
            *pp = q + 2;
            return 0;
        }
        if (e == 'D' || e == 'S' || e == 'W')
            return rx_fail(msg, cap, "\\%c inside brackets is not supported (PostgreSQL refuses it too)", e);
        int ent = rx_entry(e);
        if (ent >= 0) {
            *c = (uint32_t)ent;
            *pp = q + 2;
            return 1;
        }
        if (rx_alnum((unsigned char)e))
            return rx_fail(msg, cap, "the escape \\%c is not supported", e);
        q++;
    }
    int n = utf8_decode(q, UTF8_MAX, c);
    if (n < 0) return rx_fail(msg, cap, "the pattern is not valid UTF-8");
    *pp = q + n;
    return 1;
}

/* A bracket expression at *pp ('['), rebuilt for regcomp: inside an ARE's
 * brackets a backslash escapes, inside an ERE's it is itself; ranges outside
 * a-z, A-Z, 0-9 are spelt out (glibc refuses non-ASCII ones). */
static int rx_bracket(const char **pp, struct buf *o, char *msg, size_t cap)
{
    const char *q = *pp + 1;
    int neg = *q == '^';
    if (neg) q++;
    struct buf body = {0}, cls = {0};
    int rb = 0, caret = 0, dash = 0, lb = 0, rc = -1;
    for (int first = 1;; first = 0) {
        if (!*q) {
            rx_fail(msg, cap, "unterminated bracket expression");
            goto out;
        }
        if (*q == ']' && !first) break;
        if (*q == '[' && q[1] == ':') {
            const char *e = strstr(q + 2, ":]");
            if (!e) {
                rx_fail(msg, cap, "unterminated character class");
                goto out;
            }
            buf_append(&cls, q, (size_t)(e + 2 - q));
            q = e + 2;
            if (*q == '-' && q[1] != ']') {
                rx_fail(msg, cap, "a range cannot start with a character class");
                goto out;
            }
            continue;
        }
        if (*q == '[' && (q[1] == '.' || q[1] == '=')) {
            rx_fail(msg, cap, "collating elements and equivalence classes ([. .] [= =]) are not supported");
            goto out;
        }
        uint32_t lo, hi;
        int m = rx_member(&q, &lo, &cls, msg, cap);
        if (m < 0) goto out;
        if (m == 0) {
            if (*q == '-' && q[1] != ']') {
                rx_fail(msg, cap, "a range cannot start with a character class");
                goto out;
            }
            continue;
        }
        hi = lo;
        if (*q == '-' && q[1] && q[1] != ']') {
            q++;
            if (*q == '[' && (q[1] == ':' || q[1] == '.' || q[1] == '=')) {
                rx_fail(msg, cap, "a range must end with a character");
                goto out;
            }
            m = rx_member(&q, &hi, &cls, msg, cap);
            if (m < 0) goto out;
            if (m == 0) {
                rx_fail(msg, cap, "a range must end with a character");
                goto out;
            }
            if (hi < lo) {
                rx_fail(msg, cap, "invalid range: its end comes before its start");
                goto out;
            }
        }
        int plain = lo < hi && ((lo >= 'a' && hi <= 'z') || (lo >= 'A' && hi <= 'Z') || (lo >= '0' && hi <= '9'));
        if (plain) {
            buf_putc(&body, (char)lo);
            buf_putc(&body, '-');
            buf_putc(&body, (char)hi);
            continue;
        }
        if (hi - lo >= RX_MAX_RANGE) {
            rx_fail(msg, cap, "a range of more than %d characters outside a-z, A-Z and 0-9 is not supported",
                    RX_MAX_RANGE);
            goto out;
        }
        for (uint32_t c = lo;; c++) {
            if (c == ']') rb = 1;
            else if (c == '^') caret = 1;
            else if (c == '-') dash = 1;
            else if (c == '[') lb = 1;
            else if (!(c >= 0xD800 && c <= 0xDFFF)) utf8_put(&body, c);
            if (c == hi) break;
        }
    }
    *pp = q + 1;
    /* ']' first, '[' where no ':' '.' '=' can follow it, '^' not first, '-' last. */
    if (!neg && !rb && !body.len && !cls.len && !lb && caret && !dash) {
        buf_puts(o, "\\^");
        rc = 0;
        goto out;
    }
    buf_putc(o, '[');
    if (neg) buf_putc(o, '^');
    if (rb) buf_putc(o, ']');
    if (!neg && !rb && !body.len && !cls.len && !lb && caret) {
        buf_puts(o, "-^");      /* only '^' and '-' */
        dash = caret = 0;
    }
    if (body.len) buf_append(o, body.p, body.len);
    if (cls.len) buf_append(o, cls.p, cls.len);
    if (lb) buf_putc(o, '[');
    if (caret) buf_putc(o, '^');
    if (dash) buf_putc(o, '-');
    buf_putc(o, ']');
    rc = 0;
out:
    buf_free(&body);
    buf_free(&cls);
    return rc;
}

/* PostgreSQL's regular expression (an ARE) as a POSIX ERE regcomp reads the
 * same way: \\d \\s \\w and their negations become classes (also inside
 * brackets), character-entry escapes their character, \\A \\Z anchors, an
 * escaped punctuation character itself; brackets are rebuilt. What an ERE
 * would read differently is refused rather than answered differently:
 * back-references, word constraints (\\m \\M \\y \\Y), other escapes, (?...)
 * groups (lookarounds, non-capturing, options), lazy or stacked quantifiers,
 * *** directors. 0, or -1 with msg. */
static int rx_translate(const char *p, struct buf *o, char *msg, size_t cap)
{
    if (strncmp(p, "***", 3) == 0) return rx_fail(msg, cap, "*** directors are not supported");
    int atom = 0;               /* the last item can take a quantifier */
    int depth = 0;              /* open groups */
    while (*p) {
        if (o->len > RX_MAX_PATTERN)
            return rx_fail(msg, cap, "pattern too large (more than %d bytes once translated)", RX_MAX_PATTERN);
        char ch = *p;
        if (ch == '\\') {
            char e = p[1];
            const char *k = e == 'd' ? "[[:digit:]]" : e == 'D' ? "[^[:digit:]]" : e == 's' ? "[[:space:]]"
                          : e == 'S' ? "[^[:space:]]" : e == 'w' ? "[[:alnum:]_]" : e == 'W' ? "[^[:alnum:]_]"
                          : NULL;
            int ent = rx_entry(e);
            if (!e) return rx_fail(msg, cap, "the pattern ends with a backslash");
            if (k) {
                buf_puts(o, k);
                atom = 1;
                p += 2;
            } else if (e >= '1' && e <= '9') {
                snprintf(msg, cap, "%s", RX_BACKREF);
                return -1;
            } else if (e == 'A' || e == 'Z') {
                buf_putc(o, e == 'A' ? '^' : '$');
                atom = 0;
                p += 2;
            } else if (ent >= 0) {
                rx_lit(o, (uint32_t)ent);
                atom = 1;
                p += 2;
            } else if (strchr("mMyY", e)) {
                return rx_fail(msg, cap, "word constraints (\\m \\M \\y \\Y) are not supported");
            } else if (rx_alnum((unsigned char)e)) {
                return rx_fail(msg, cap, "the escape \\%c is not supported", e);
            } else {
                uint32_t c;
                int n = utf8_decode(p + 1, UTF8_MAX, &c);
                if (n < 0) return rx_fail(msg, cap, "the pattern is not valid UTF-8");
                rx_lit(o, c);
                atom = 1;
                p += 1 + n;
            }
            continue;
        }
        if (ch == '*' || ch == '+' || ch == '?' || (ch == '{' && p[1] >= '0' && p[1] <= '9')) {
            if (!atom)
                return rx_fail(msg, cap, "'%c' has nothing to repeat (lazy quantifiers such as *? and "
                                         "stacked ones such as a** are not supported)", ch);
            if (ch == '{') {
                const char *q = p + 1;
                long lo = 0, hi;
                while (*q >= '0' && *q <= '9' && lo <= RX_MAX_DUP) lo = lo * 10 + (*q++ - '0');
                hi = lo;
                if (*q == ',') {
                    q++;
                    hi = *q >= '0' && *q <= '9' ? 0 : -1;
                    while (*q >= '0' && *q <= '9' && hi <= RX_MAX_DUP) hi = hi * 10 + (*q++ - '0');
                }
                if (*q != '}' || lo > RX_MAX_DUP || hi > RX_MAX_DUP || (hi >= 0 && hi < lo))
                    return rx_fail(msg, cap, "invalid repetition count in {...} (counts go from 0 to %d)",
                                   RX_MAX_DUP);
                buf_append(o, p, (size_t)(q + 1 - p));
                p = q + 1;
            } else {
                buf_putc(o, ch);
                p++;
            }
            atom = 0;
            continue;
        }
        switch (ch) {
        case '[':
            if (rx_bracket(&p, o, msg, cap)) return -1;
            atom = 1;
            continue;
        case '(':
            if (p[1] == '?')
                return rx_fail(msg, cap, "(?...) groups (lookahead, lookbehind, non-capturing, options) are "
                                         "not supported");
            depth++;
            atom = 0;
            break;
        case ')':
            if (depth-- == 0) return rx_fail(msg, cap, "unbalanced parenthesis");
            atom = 1;
            break;
        case '.':
            atom = 1;
            break;
        case '|':
        case '^':
        case '$':
            atom = 0;
            break;
        default: {
            uint32_t c;
            int n = utf8_decode(p, UTF8_MAX, &c);
            if (n < 0) return rx_fail(msg, cap, "the pattern is not valid UTF-8");
            rx_lit(o, c);
            atom = 1;
            p += n;
            continue;
        }
        }
        buf_putc(o, ch);
        p++;
    }
    if (depth) return rx_fail(msg, cap, "unbalanced parenthesis");
    if (o->len > RX_MAX_PATTERN)
        return rx_fail(msg, cap, "pattern too large (more than %d bytes once translated)", RX_MAX_PATTERN);
    return 0;
}

/* The translated pattern regexp_replace refuses before compiling, with the reason. */
static const char *rx_refuse(const char *pat)
{
    int backref;
    if (rx_size(pat, RX_MAX_NODES, &backref) > RX_MAX_NODES)
        return "regexp_replace: pattern too large (more than 1000 elements once repetitions are expanded)";
    if (backref) return RX_BACKREF;
    return NULL;
}

static void fn_regexp_replace(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    for (int i = 0; i < argc; i++)
        if (sqlite3_value_type(argv[i]) == SQLITE_NULL) {
            sqlite3_result_null(ctx);   /* strict, as in PostgreSQL */
            return;
        }
    const char *s = (const char *)sqlite3_value_text(argv[0]);
    size_t n = (size_t)sqlite3_value_bytes(argv[0]);
    const char *pat = (const char *)sqlite3_value_text(argv[1]);
    const char *rep = (const char *)sqlite3_value_text(argv[2]);
    if (!s || !pat || !rep) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    /* PostgreSQL's flags: g every match (else the first only), i and c case
     * (in)sensitive, the last one winning. Its others change the syntax or
     * the meaning of newlines: refused. */
    int global = 0, icase = 0;
    if (argc == 4) {
        for (const char *f = (const char *)sqlite3_value_text(argv[3]); f && *f; f++) {
            if (*f == 'g') global = 1;
            else if (*f == 'i') icase = 1;
            else if (*f == 'c') icase = 0;
            else {
                char msg[96];
                snprintf(msg, sizeof msg, "regexp_replace: unsupported flag '%c' (supported: g, i, c)",
                         (*f > 0x20 && *f < 0x7f) ? *f : '?');
                sqlite3_result_error(ctx, msg, -1);
                return;
            }
        }
    }
    if (n > RX_MAX_TEXT) {
        char msg[128];
        snprintf(msg, sizeof msg, "regexp_replace: text of %zu bytes exceeds the limit of %d bytes "
                                  "(search time grows with its square)", n, RX_MAX_TEXT);
        sqlite3_result_error(ctx, msg, -1);
        sqlite3_result_error_code(ctx, SQLITE_TOOBIG);
        return;
    }
    /* The compiled pattern is cached on the pattern argument; it is handed to
     * SQLite only after use, since set_auxdata may free it at once. */
    struct rx *r = sqlite3_get_auxdata(ctx, 1), *fresh = NULL;
    if (!r || r->icase != icase) {
        char msg[256];
        struct buf ere = {0};
        if (rx_translate(pat, &ere, msg, sizeof msg) != 0) {
            buf_free(&ere);
            sqlite3_result_error(ctx, msg, -1);
            return;
        }
        const char *why = rx_refuse(ere.p ? ere.p : "");
        if (why) {
            buf_free(&ere);
            sqlite3_result_error(ctx, why, -1);
            return;
        }
        fresh = r = xmalloc(sizeof *r);
        r->icase = icase;
        /* The portal's text is UTF-8: '.', classes and case folding work on
         * characters only in a UTF-8 locale, set for this thread alone. */
        r->loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
        locale_t old = r->loc ? uselocale(r->loc) : (locale_t)0;
        int rc = regcomp(&r->re, ere.p ? ere.p : "", REG_EXTENDED | (icase ? REG_ICASE : 0));
        if (r->loc) uselocale(old);
        buf_free(&ere);
        if (rc) {
            char m[128];
            regerror(rc, &r->re, m, sizeof m);
            snprintf(msg, sizeof msg, "regexp_replace: invalid pattern: %s", m);
            if (r->loc) freelocale(r->loc);
            free(r);
            sqlite3_result_error(ctx, msg, -1);
            return;
        }
    }
    if (!r->loc) {
        /* Without a UTF-8 locale only ASCII matches as PostgreSQL would. */
        int ascii = 1;
        for (const char *q = pat; *q && ascii; q++) ascii = (unsigned char)*q < 0x80;
        for (size_t i = 0; i < n && ascii; i++) ascii = (unsigned char)s[i] < 0x80;
        if (!ascii) {
            if (fresh) rx_free(fresh);
            sqlite3_result_error(ctx, "regexp_replace: non-ASCII text needs the C.UTF-8 locale, which this "
                                      "system lacks", -1);
            return;
        }
    }
    locale_t old_loc = r->loc ? uselocale(r->loc) : (locale_t)0;
    regmatch_t m[10];
    size_t nsub = r->re.re_nsub < 9 ? r->re.re_nsub : 9, pos = 0;
    size_t cap = (size_t)sqlite3_limit(sqlite3_context_db_handle(ctx), SQLITE_LIMIT_LENGTH, -1);
    struct buf o = {0};
    buf_reserve(&o, n);
    int too_long = 0;
    while (pos <= n) {
        /* REG_STARTEND: search s[pos..n) while ^ and context still see s. */
        m[0].rm_so = (regoff_t)pos;
        m[0].rm_eo = (regoff_t)n;
        if (regexec(&r->re, s, 10, m, REG_STARTEND) != 0) break;
        size_t so = (size_t)m[0].rm_so, eo = (size_t)m[0].rm_eo;
        buf_append(&o, s + pos, so - pos);
        if (put_replacement(&o, rep, s, m, nsub, cap) != 0) {
            too_long = 1;
            break;
        }
        pos = eo;
        if (so == eo) {   /* empty match: keep one character and move past it */
            if (eo >= n) {
                pos = n + 1;
                break;
            }
            size_t step = utf8_step((unsigned char)s[eo]);
            if (step > n - eo) step = n - eo;
            buf_append(&o, s + eo, step);
            pos = eo + step;
        }
        if (!global) break;
    }
    if (r->loc) uselocale(old_loc);
    if (too_long) {
        char msg[128];
        buf_free(&o);
        if (fresh) rx_free(fresh);
        snprintf(msg, sizeof msg, "regexp_replace: result longer than %zu bytes", cap);
        sqlite3_result_error(ctx, msg, -1);
        sqlite3_result_error_code(ctx, SQLITE_TOOBIG);
        return;
    }
    if (pos < n) buf_append(&o, s + pos, n - pos);
    size_t len = o.len;
    char *res = buf_detach(&o);
    sqlite3_result_text64(ctx, res, len, free, SQLITE_UTF8);
    if (fresh) sqlite3_set_auxdata(ctx, 1, fresh, rx_free);
}

/* One-to-one case pairs of Latin-1, Latin Extended-A, Greek and Cyrillic (all
 * two-byte UTF-8, so mapping never changes a string's length). */
static uint32_t cp_lower(uint32_t c)
{
    if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
    if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 32;
    if ((c >= 0x100 && c <= 0x12F) || (c >= 0x132 && c <= 0x137) || (c >= 0x14A && c <= 0x177))
        return c | 1;
    if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return (c & 1) ? c + 1 : c;
    if (c == 0x178) return 0xFF;
    if (c >= 0x391 && c <= 0x3AB && c != 0x3A2) return c + 32;
    if (c >= 0x410 && c <= 0x42F) return c + 32;
    if (c >= 0x400 && c <= 0x40F) return c + 80;
    if ((c >= 0x460 && c <= 0x481) || (c >= 0x48A && c <= 0x4BF) || (c >= 0x4D0 && c <= 0x52F))
        return c | 1;
    return c;
}

static uint32_t cp_upper(uint32_t c)
{
    if (c < 0x80) return (c >= 'a' && c <= 'z') ? c - 32 : c;
    if (c >= 0xE0 && c <= 0xFE && c != 0xF7) return c - 32;
    if (c == 0xFF) return 0x178;
    if ((c >= 0x100 && c <= 0x12F) || (c >= 0x132 && c <= 0x137) || (c >= 0x14A && c <= 0x177))
        return c & ~1u;
    if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return (c & 1) ? c : c - 1;
    if (c >= 0x3B1 && c <= 0x3CB && c != 0x3C2) return c - 32;
    if (c == 0x3C2) return 0x3A3;
    if (c >= 0x430 && c <= 0x44F) return c - 32;
    if (c >= 0x450 && c <= 0x45F) return c - 80;
    if ((c >= 0x460 && c <= 0x481) || (c >= 0x48A && c <= 0x4BF) || (c >= 0x4D0 && c <= 0x52F))
        return c & ~1u;
    return c;
}

static void fn_case(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    if (sqlite3_value_type(argv[0]) == SQLITE_NULL) {
        sqlite3_result_null(ctx);
        return;
    }
    int upper = sqlite3_user_data(ctx) != NULL;   /* registered with user data for upper */
    const unsigned char *s = sqlite3_value_text(argv[0]);
    size_t n = (size_t)sqlite3_value_bytes(argv[0]);
    if (!s) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    unsigned char *o = xmalloc(n + 1);
    uint32_t cp;
    for (size_t i = 0; i < n;) {
        if (s[i] < 0x80) {
            o[i] = (unsigned char)(upper ? cp_upper(s[i]) : cp_lower(s[i]));
            i++;
        } else if (utf8_decode(s + i, n - i, &cp) == 2) {
            cp = upper ? cp_upper(cp) : cp_lower(cp);   /* stays in 0x80..0x7FF: two bytes again */
            utf8_encode(cp, (char *)o + i);
            i += 2;
        } else {
            o[i] = s[i];
            i++;
        }
    }
    o[n] = '\0';
    sqlite3_result_text64(ctx, (char *)o, n, free, SQLITE_UTF8);
}

/* ---- Comparison and arithmetic as PostgreSQL does them ---- */

/* A timestamp as the portal writes it, 'YYYY-MM-DD[( |T)HH:MM[:SS[.f]]][zone]',
 * into canon 'YYYY-MM-DD HH:MM:SS.ffffff' (which compares right as text). 0
 * when s is not one (or has more than microseconds, which PostgreSQL rounds). */
struct ts {
    char canon[27];
    int has_time, zone;
};

static int ts_digits(const char *s, size_t n, size_t at, size_t k)
{
    if (at + k > n) return 0;
    for (size_t i = at; i < at + k; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return 1;
}

static int ts_parse(const char *s, size_t n, struct ts *t)
{
    memset(t, 0, sizeof *t);
    if (!ts_digits(s, n, 0, 4) || n < 10 || s[4] != '-' || !ts_digits(s, n, 5, 2) || s[7] != '-' ||
        !ts_digits(s, n, 8, 2))
        return 0;
    memcpy(t->canon, s, 10);
    memcpy(t->canon + 10, " 00:00:00.000000", 17);
    size_t i = 10;
    if (i < n && (s[i] == ' ' || s[i] == 'T') && ts_digits(s, n, i + 1, 2) && i + 3 < n && s[i + 3] == ':' &&
        ts_digits(s, n, i + 4, 2)) {
        t->has_time = 1;
        memcpy(t->canon + 11, s + i + 1, 5);
        i += 6;
        if (i < n && s[i] == ':' && ts_digits(s, n, i + 1, 2)) {
            memcpy(t->canon + 17, s + i + 1, 2);
            i += 3;
            if (i < n && s[i] == '.') {
                size_t k = 0;
                for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++, k++) {
                    if (k == 6) return 0;
                    t->canon[20 + k] = s[i];
                }
                if (!k) return 0;
            }
        }
    }
    if (i == n) return 1;
    /* A zone: Z, +HH, -HH:MM, ... */
    if (s[i] == 'Z' && i + 1 == n) return t->zone = 1;
    if ((s[i] == '+' || s[i] == '-') && t->has_time && ts_digits(s, n, i + 1, 2)) {
        for (size_t j = i + 3; j < n; j++)
            if (!((s[j] >= '0' && s[j] <= '9') || s[j] == ':')) return 0;
        return t->zone = 1;
    }
    return 0;
}

static int sign_of(int v) { return v < 0 ? -1 : v > 0; }

/* jsonsql_tscmp(value, literal): -1/0/1 the way PostgreSQL compares a
 * date/timestamp column with a literal (the literal is cast to the column's
 * type): a timestamp value against the literal with 00:00:00 filled in, a
 * date-only value against the literal's date. A value that is no timestamp
 * compares as text (a text column). A value with a zone offset is refused:
 * PostgreSQL would read the literal in the session's time zone. NULL: NULL. */
static void fn_tscmp(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    if (sqlite3_value_type(argv[0]) == SQLITE_NULL || sqlite3_value_type(argv[1]) == SQLITE_NULL) {
        sqlite3_result_null(ctx);
        return;
    }
    const char *a = (const char *)sqlite3_value_text(argv[0]);
    size_t an = (size_t)sqlite3_value_bytes(argv[0]);
    const char *b = (const char *)sqlite3_value_text(argv[1]);
    size_t bn = (size_t)sqlite3_value_bytes(argv[1]);
    if (!a || !b) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    struct ts ta, tb;
    if (!ts_parse(a, an, &ta) || !ts_parse(b, bn, &tb) || tb.zone) {
        int c = memcmp(a, b, an < bn ? an : bn);
        sqlite3_result_int(ctx, c ? sign_of(c) : an < bn ? -1 : an > bn);
        return;
    }
    if (ta.zone) {
        sqlite3_result_error(ctx, "comparing a timestamp with a time zone offset with a date or timestamp "
                                  "literal is not supported: write the literal as 'YYYY-MM-DD HH:MM:SS' and "
                                  "compare with the stored text", -1);
        return;
    }
    sqlite3_result_int(ctx, sign_of(memcmp(ta.canon, tb.canon, ta.has_time ? 26 : 10)));
}

/* jsonsql_divisor(x): x, or PostgreSQL's "division by zero" error for 0
 * (SQLite's x / 0 is NULL). */
static void fn_divisor(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    int t = sqlite3_value_numeric_type(argv[0]);
    if ((t == SQLITE_INTEGER && sqlite3_value_int64(argv[0]) == 0) ||
        (t == SQLITE_FLOAT && sqlite3_value_double(argv[0]) == 0.0)) {
        sqlite3_result_error(ctx, "division by zero", -1);
        return;
    }
    sqlite3_result_value(ctx, argv[0]);
}

/* jsonsql_bigint(x): integer arithmetic's result: x, or PostgreSQL's "bigint
 * out of range" where SQLite's integer overflowed into a float. */
static void fn_bigint(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    if (sqlite3_value_type(argv[0]) == SQLITE_FLOAT) {
        sqlite3_result_error(ctx, "bigint out of range", -1);
        return;
    }
    sqlite3_result_value(ctx, argv[0]);
}

/* jsonsql_avg(x), avg of an integer column as PostgreSQL computes it: the sum
 * exactly (numeric), divided at the scale select_div_scale() picks: 16
 * significant digits less 4 per base-10000 digit the quotient has before the
 * point. When that leaves no decimals (averages from about 1e16 up) PostgreSQL
 * prints an integer, rounded half away from zero: so does this, exactly; else a
 * float (a double holds what a JSON client reads of PostgreSQL's 16 digits). */
struct avg_acc {
    __int128 sum;
    long double fsum;           /* values that were not integers */
    int64_t n;
    int real;
};

static void avg_step(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    int t = sqlite3_value_type(argv[0]);
    if (t == SQLITE_NULL) return;
    /* SQLite's aggregate memory is 8-byte aligned; __int128 wants 16: copied. */
    struct avg_acc acc, *a = &acc;
    void *mem = sqlite3_aggregate_context(ctx, sizeof acc);
    if (!mem) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    memcpy(&acc, mem, sizeof acc);
    if (t == SQLITE_INTEGER) {
        a->sum += sqlite3_value_int64(argv[0]);
    } else {
        a->fsum += sqlite3_value_double(argv[0]);
        a->real = 1;
    }
    a->n++;
    memcpy(mem, &acc, sizeof acc);
}

/* The accumulator, or 0 when no row was added. */
static int acc_get(sqlite3_context *ctx, struct avg_acc *a)
{
    void *mem = sqlite3_aggregate_context(ctx, 0);
    if (!mem) return 0;
    memcpy(a, mem, sizeof *a);
    return a->n > 0;
}

/* PostgreSQL's numeric weight (base-10000 digits before the point, less one)
 * and first base-10000 digit of v > 0. */
static void nbase_lead(unsigned __int128 v, int *weight, unsigned *first)
{
    *weight = 0;
    while (v >= 10000) {
        v /= 10000;
        (*weight)++;
    }
    *first = (unsigned)v;
}

static void avg_final(sqlite3_context *ctx)
{
    struct avg_acc acc, *a = &acc;
    if (!acc_get(ctx, &acc)) {
        sqlite3_result_null(ctx);
        return;
    }
    if (a->real) {
        sqlite3_result_double(ctx, (double)((a->fsum + (long double)a->sum) / (long double)a->n));
        return;
    }
    unsigned __int128 mag = a->sum < 0 ? (unsigned __int128)(-a->sum) : (unsigned __int128)a->sum;
    int w1 = 0, w2;
    unsigned f1 = 0, f2;
    if (mag) nbase_lead(mag, &w1, &f1);
    nbase_lead((unsigned __int128)a->n, &w2, &f2);
    int qweight = w1 - w2 - (f1 < f2 ? 1 : 0);
    if (mag && 16 - qweight * 4 <= 0) {
        unsigned __int128 q = mag / (unsigned __int128)a->n, r = mag % (unsigned __int128)a->n;
        if (r * 2 >= (unsigned __int128)a->n) q++;   /* half away from zero */
        sqlite3_result_int64(ctx, a->sum < 0 ? -(int64_t)q : (int64_t)q);
        return;
    }
    sqlite3_result_double(ctx, (double)((long double)a->sum / (long double)a->n));
}

/* jsonsql_sum(x), sum of an integer column as PostgreSQL's numeric gives it:
 * exact past 64 bits, where SQLite fails "integer overflow". A sum that fits
 * is an integer, a larger one its decimal digits as text (jsonsql_write_row
 * writes the digits of an integer column as a JSON number). */
static void sum_final(sqlite3_context *ctx)
{
    struct avg_acc acc, *a = &acc;
    if (!acc_get(ctx, &acc)) {
        sqlite3_result_null(ctx);
        return;
    }
    if (a->real) {
        sqlite3_result_double(ctx, (double)(a->fsum + (long double)a->sum));
        return;
    }
    if (a->sum >= INT64_MIN && a->sum <= INT64_MAX) {
        sqlite3_result_int64(ctx, (int64_t)a->sum);
        return;
    }
    char d[48], *p = d + sizeof d;
    unsigned __int128 mag = a->sum < 0 ? (unsigned __int128)(-a->sum) : (unsigned __int128)a->sum;
    *--p = '\0';
    do {
        *--p = (char)('0' + (int)(mag % 10));
        mag /= 10;
    } while (mag);
    if (a->sum < 0) *--p = '-';
    sqlite3_result_text(ctx, p, -1, SQLITE_TRANSIENT);
}

int jsonsql_helper_function(const char *name)
{
    return name && (strcasecmp(name, "jsonsql_tscmp") == 0 || strcasecmp(name, "jsonsql_divisor") == 0 ||
                    strcasecmp(name, "jsonsql_avg") == 0 || strcasecmp(name, "jsonsql_bigint") == 0 ||
                    strcasecmp(name, "jsonsql_sum") == 0);
}

int jsonsql_register_functions(sqlite3 *db)
{
    /* Registering (a function or case_sensitive_like) expires every prepared
     * statement of the connection: a connection that has them is left alone. */
    sqlite3_stmt *probe = NULL;
    int have = sqlite3_prepare_v2(db, "SELECT regexp_replace('', '', '')", -1, &probe, NULL) == SQLITE_OK;
    sqlite3_finalize(probe);
    if (have) return SQLITE_OK;
    const int fl = SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS;
    int rc = sqlite3_create_function(db, "regexp_replace", 3, fl, NULL, fn_regexp_replace, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function(db, "regexp_replace", 4, fl, NULL, fn_regexp_replace, NULL, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_create_function(db, "lower", 1, fl, NULL, fn_case, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function(db, "upper", 1, fl, (void *)"upper", fn_case, NULL, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_create_function(db, "jsonsql_tscmp", 2, fl, NULL, fn_tscmp, NULL, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_create_function(db, "jsonsql_divisor", 1, fl, NULL, fn_divisor, NULL, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_create_function(db, "jsonsql_avg", 1, fl, NULL, NULL, avg_step, avg_final);
    if (rc == SQLITE_OK) rc = sqlite3_create_function(db, "jsonsql_bigint", 1, fl, NULL, fn_bigint, NULL, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_create_function(db, "jsonsql_sum", 1, fl, NULL, NULL, avg_step, sum_final);
    if (rc == SQLITE_OK) rc = sqlite3_exec(db, "PRAGMA case_sensitive_like = ON", NULL, NULL, NULL);
    return rc;
}
