/* jsonsql.c — JSONSQL -> SQLite compiler: select, expressions and the entry
 * points. Beside it: the catalog (jsonsql_catalog.c), from and joins
 * (jsonsql_from.c), function calls (jsonsql_call.c), insert/update/delete
 * (jsonsql_write.c), rows out (jsonsql_rows.c), the SQL functions compiled
 * statements rely on (jsonsql_fn.c). Contract: jsonsql.h.
 *
 * How a statement is compiled (one pass over the JSON, no intermediate tree):
 *   1. The nesting of the whole params object is measured first against
 *      limits.max_depth. Every recursive step below descends at least one JSON
 *      level, so that check also bounds the C recursion.
 *   2. A select resolves `from` first into a scope: its sources (catalog tables
 *      or subquery pseudo-tables), each under an alias. Everything after that
 *      resolves names against the scope; a subquery has a scope of its own (no
 *      correlation with the outer query).
 *   3. SQL is appended to a buffer. A value never enters it: each literal is a
 *      parameter with an explicit number ?N, so clauses compiled out of textual
 *      order (the from before the select list) still bind correctly.
 *      Invariant: every parameter created is referenced by the SQL exactly once
 *      (sqlite3_bind of an unreferenced trailing ?N would fail).
 *   4. Identifiers are emitted only as catalog strings or as aliases that passed
 *      alias_ok(), always double-quoted (embedded '"' doubled): user text never
 *      reaches the SQL as anything but a bound value.
 * The JSON path of the node being compiled is a stack of frames (key or index)
 * rendered into text only when an error is reported, which keeps the success
 * path cheap. */
#include "agent/jsonsql/jsonsql.h"
#include "agent/jsonsql/jsonsql_catalog.h"
#include "agent/jsonsql/jsonsql_compile.h"
#include "agent/base/json.h"
#include "agent/base/mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEF_MAX_DEPTH 32
#define DEF_MAX_SQL (64 * 1024)
#define DEF_MAX_PARAMS 10000

/* ------------------------------------------------------------------------ */
/* Compiler state (its structs: jsonsql_compile.h).                          */


void jsql_push_key(struct ctx *c, const char *k)
{
    if (c->nframes < MAX_FRAMES) c->frames[c->nframes] = (struct frame){k, 0};
    c->nframes++;
}

void jsql_push_idx(struct ctx *c, int i)
{
    if (c->nframes < MAX_FRAMES) c->frames[c->nframes] = (struct frame){NULL, i};
    c->nframes++;
}

void jsql_pop(struct ctx *c) { c->nframes--; }

/* Printable excerpt of user text for a message: at most ~64 bytes, cut on a
 * character boundary; control characters, quotes and backslashes become '?'. */
static void put_clean(struct buf *b, const char *s, size_t n)
{
    size_t lim = n > 64 ? 64 : n;
    if (lim < n)   /* do not split a UTF-8 sequence */
        while (lim > 0 && ((unsigned char)s[lim] & 0xC0) == 0x80) lim--;
    for (size_t i = 0; i < lim; i++) {
        unsigned char ch = (unsigned char)s[i];
        buf_putc(b, (ch < 0x20 || ch == 0x7f || ch == '"' || ch == '\\') ? '?' : (char)ch);
    }
    if (lim < n) buf_puts(b, "...");
}

/* The excerpt in double quotes, in dst. */
static const char *uq(char *dst, size_t cap, const char *s, size_t n)
{
    struct buf b = {0};
    buf_putc(&b, '"');
    put_clean(&b, s, n);
    buf_putc(&b, '"');
    snprintf(dst, cap, "%s", b.p);
    buf_free(&b);
    return dst;
}

const char *jsql_uqs(char *dst, size_t cap, const char *s) { return uq(dst, cap, s, strlen(s)); }

int jsql_fail(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int jsql_fail(struct ctx *c, const char *fmt, ...)
{
    if (!c->err || !c->errlen) return -1;
    struct buf b = {0};
    int n = c->nframes < MAX_FRAMES ? c->nframes : MAX_FRAMES;
    for (int i = 0; i < n; i++) {
        const struct frame *f = &c->frames[i];
        if (f->key) {
            if (b.len) buf_putc(&b, '.');
            put_clean(&b, f->key, strlen(f->key));
        } else {
            buf_printf(&b, "[%d]", f->idx);
        }
    }
    if (c->nframes > MAX_FRAMES) buf_puts(&b, "...");
    if (!b.len) buf_puts(&b, c->method);
    buf_puts(&b, ": ");
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    snprintf(c->err, c->errlen, "%s", b.p);
    buf_free(&b);
    return -1;
}

static void *arena_keep(struct ctx *c, void *p)
{
    if (c->narena == c->caparena) {
        c->caparena = c->caparena ? c->caparena * 2 : 8;
        c->arena = xrealloc(c->arena, (size_t)c->caparena * sizeof *c->arena);
    }
    c->arena[c->narena++] = p;
    return p;
}

/* ------------------------------------------------------------------------ */
/* Emitting SQL text.                                                        */

void jsql_quote_ident(struct buf *b, const char *s, size_t n)
{
    buf_reserve(b, n + 2);
    buf_putc(b, '"');
    if (!memchr(s, '"', n)) {
        buf_append(b, s, n);
    } else {
        for (size_t i = 0; i < n; i++) {
            if (s[i] == '"') buf_putc(b, '"');
            buf_putc(b, s[i]);
        }
    }
    buf_putc(b, '"');
}

int jsql_add_param(struct ctx *c, struct buf *out, struct jsonsql_value v)
{
    if (c->nparams >= c->lim.max_params) {
        free(v.s);
        return jsql_fail(c, "more than %d bound values (limits.max_params)", c->lim.max_params);
    }
    if (c->nparams == c->capparams) {
        c->capparams = c->capparams ? c->capparams * 2 : 8;
        c->params = xrealloc(c->params, (size_t)c->capparams * sizeof *c->params);
    }
    c->params[c->nparams++] = v;
    buf_putc(out, '?');
    buf_put_int(out, c->nparams);
    return 0;
}

/* A JSON value as a bound literal: numbers exact, true/false 1/0, null inline,
 * strings as given, arrays/objects as their JSON text. */
int jsql_emit_literal(struct ctx *c, const cJSON *n, struct buf *out)
{
    struct jsonsql_value v = {0};
    if (jsql_is_subquery(n))   /* never its JSON text: that would answer wrongly */
        return jsql_fail(c, "a subquery {\"select\":...} is not valid here: only in from, and as the "
                            "list of in");
    if (cJSON_IsNull(n)) {
        buf_puts(out, "NULL");
        return 0;
    } else if (cJSON_IsBool(n)) {
        v.type = SQLITE_INTEGER;
        v.i = cJSON_IsTrue(n) ? 1 : 0;
    } else if (cJSON_IsNumber(n)) {
        int64_t i;
        if (json_int64(n, &i)) {
            v.type = SQLITE_INTEGER;
            v.i = i;
        } else {
            v.type = SQLITE_FLOAT;
            v.d = n->valuedouble;
        }
    } else if (cJSON_IsString(n)) {
        v.type = SQLITE_TEXT;
        v.n = strlen(n->valuestring);
        v.s = xstrndup(n->valuestring, v.n);
    } else if (cJSON_IsArray(n) || cJSON_IsObject(n)) {
        struct buf j = {0};
        json_write_tree(&j, n);   /* numbers as their literal: exact int64 */
        v.type = SQLITE_TEXT;
        v.n = j.len;
        v.s = buf_detach(&j);
    } else {
        return jsql_fail(c, "unsupported value");
    }
    return jsql_add_param(c, out, v);
}

static int alias_ok(const char *s)
{
    if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_')) return 0;
    size_t i = 1;
    for (; s[i]; i++) {
        char ch = s[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '_'))
            return 0;
    }
    return i <= ALIAS_MAX;
}

int jsql_check_alias(struct ctx *c, const cJSON *as)
{
    char q[QBUF];
    jsql_push_key(c, "as");
    if (!cJSON_IsString(as)) return jsql_fail(c, "expected an alias string");
    if (!alias_ok(as->valuestring))
        return jsql_fail(c, "invalid alias %s (expected ^[A-Za-z_][A-Za-z0-9_]{0,63}$)",
                    jsql_uqs(q, sizeof q, as->valuestring));
    jsql_pop(c);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Name resolution.                                                          */

static int src_find(const struct source *s, const char *name, size_t len, struct colref *r,
                    int *dup)
{
    if (s->t) {
        int k = jsonsql_column_find(s->t, name, len);
        if (k < 0) return 0;
        r->name = s->t->cols[k].name;
        r->len = s->t->cols[k].len;
        r->type = s->t->cols[k].type;
        return 1;
    }
    for (int i = 0; i < s->ncols; i++) {
        const struct pcol *p = &s->cols[i];
        if (p->name && p->len == len && memcmp(p->name, name, len) == 0) {
            r->name = p->name;
            r->len = p->len;
            r->type = p->type;
            *dup = p->dup;
            return 1;
        }
    }
    return 0;
}

enum { R_OK = 0, R_UNKNOWN = -1, R_AMBIGUOUS = -2, R_NOALIAS = -3 };

static int scope_find(const struct scope *sc, const char *name, size_t len, struct colref *r)
{
    int found = 0, dup = 0;
    for (int i = 0; i < sc->n; i++) {
        struct colref t = {0};
        if (src_find(&sc->s[i], name, len, &t, &dup)) {
            if (found++) return R_AMBIGUOUS;
            *r = t;
            r->src = i;
        }
    }
    if (!found) return R_UNKNOWN;
    return dup ? R_AMBIGUOUS : R_OK;
}

int jsql_scope_alias(const struct scope *sc, const char *a, size_t alen)
{
    for (int i = 0; i < sc->n; i++)
        if (sc->s[i].alias && sc->s[i].alias_len == alen && memcmp(sc->s[i].alias, a, alen) == 0)
            return i;
    return -1;
}

static int scope_find_q(const struct scope *sc, const char *a, size_t alen, const char *name,
                        size_t len, struct colref *r)
{
    int i = jsql_scope_alias(sc, a, alen), dup = 0;
    if (i < 0) return R_NOALIAS;
    if (!src_find(&sc->s[i], name, len, r, &dup)) return R_UNKNOWN;
    r->src = i;
    return dup ? R_AMBIGUOUS : R_OK;
}

/* "name" or "alias.name". */
static int resolve_str(const struct scope *sc, const char *s, size_t n, struct colref *r)
{
    int rc = scope_find(sc, s, n, r);
    if (rc != R_UNKNOWN) return rc;
    const char *dot = memchr(s, '.', n);
    if (!dot) return R_UNKNOWN;
    size_t al = (size_t)(dot - s);
    rc = scope_find_q(sc, s, al, dot + 1, n - al - 1, r);
    return rc == R_NOALIAS ? R_UNKNOWN : rc;
}

/* "subscriber", "subscriber, terminal", "subquery x". */
static void scope_desc(const struct scope *sc, int only, struct buf *b)
{
    for (int i = 0; i < sc->n; i++) {
        if (only >= 0 && i != only) continue;
        const struct source *s = &sc->s[i];
        if (b->len) buf_puts(b, ", ");
        if (s->t) {
            put_clean(b, s->t->name, s->t->len);
        } else {
            buf_puts(b, "subquery");
            if (s->alias) {
                buf_putc(b, ' ');
                buf_append(b, s->alias, s->alias_len);
            }
        }
    }
}

/* Error for a failed resolution of name (alias: the qualifier, or NULL). */
static int col_error(struct ctx *c, const struct scope *sc, int rc, const char *alias,
                     size_t alen, const char *name, size_t len)
{
    char q[QBUF];
    if (rc == R_NOALIAS) return jsql_fail(c, "unknown table alias %s", uq(q, sizeof q, alias, alen));
    struct buf d = {0};
    scope_desc(sc, alias ? jsql_scope_alias(sc, alias, alen) : -1, &d);
    if (rc == R_AMBIGUOUS)
        jsql_fail(c, "ambiguous column %s in %s", uq(q, sizeof q, name, len), d.p ? d.p : "");
    else
        jsql_fail(c, "unknown column %s in %s", uq(q, sizeof q, name, len), d.p ? d.p : "");
    buf_free(&d);
    return -1;
}

static void emit_col(const struct scope *sc, const struct colref *r, struct buf *out)
{
    const struct source *s = &sc->s[r->src];
    if (sc->n > 1 && s->alias) {
        jsql_quote_ident(out, s->alias, s->alias_len);
        buf_putc(out, '.');
    }
    jsql_quote_ident(out, r->name, r->len);
}

/* A column used in a value position: emitted, and noted while the select's
 * list, having or order_by is compiled outside an aggregate (check_grouping). */
static void use_col(struct ctx *c, const struct scope *sc, const struct colref *r, struct buf *out)
{
    emit_col(sc, r, out);
    if (!c->collect || c->agg_ban == AGG_IN_AGG) return;
    if (c->nbare == c->capbare) {
        c->capbare = c->capbare ? c->capbare * 2 : 8;
        c->bare = xrealloc(c->bare, (size_t)c->capbare * sizeof *c->bare);
    }
    c->bare[c->nbare++] = *r;
}

/* A column named by a string: it must exist. */
int jsql_column_str(struct ctx *c, const struct scope *sc, const char *s, struct buf *out,
                      struct colref *ref)
{
    size_t n = strlen(s);
    struct colref r = {0};
    int rc = resolve_str(sc, s, n, &r);
    if (rc != R_OK) return col_error(c, sc, rc, NULL, 0, s, n);
    use_col(c, sc, &r, out);
    if (ref) *ref = r;
    return 0;
}

/* {"alias":"name"}: one member with a string value. */
static int is_qualified(const cJSON *n)
{
    return cJSON_IsObject(n) && n->child && !n->child->next && cJSON_IsString(n->child);
}

static int column_obj(struct ctx *c, const struct scope *sc, const cJSON *n, struct buf *out,
                      struct colref *ref)
{
    const cJSON *k = n->child;
    size_t al = strlen(k->string), nl = strlen(k->valuestring);
    struct colref r = {0};
    int rc = scope_find_q(sc, k->string, al, k->valuestring, nl, &r);
    if (rc != R_OK) return col_error(c, sc, rc, k->string, al, k->valuestring, nl);
    use_col(c, sc, &r, out);
    if (ref) *ref = r;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Operators (function calls: jsonsql_call.c).                             */

enum opkind { OP_AND, OP_OR, OP_NOT, OP_CMP, OP_LIKE, OP_ILIKE, OP_IS, OP_IN, OP_ARITH };

struct opdef {
    const char *name;
    enum opkind kind;
    const char *sql;
};

static const struct opdef OPS[] = {
    {"and", OP_AND, " AND "},   {"or", OP_OR, " OR "},      {"not", OP_NOT, NULL},
    {"eq", OP_CMP, " = "},      {"neq", OP_CMP, " <> "},    {"lt", OP_CMP, " < "},
    {"gt", OP_CMP, " > "},      {"lte", OP_CMP, " <= "},    {"gte", OP_CMP, " >= "},
    {"like", OP_LIKE, " LIKE "}, {"ilike", OP_ILIKE, NULL},  {"is", OP_IS, " IS "},
    {"is_not", OP_IS, " IS NOT "}, {"in", OP_IN, NULL},      {"add", OP_ARITH, " + "},
    {"sub", OP_ARITH, " - "},   {"mul", OP_ARITH, " * "},   {"div", OP_ARITH, " / "},
    {"mod", OP_ARITH, " % "},
};

static const struct opdef *op_lookup(const char *name)
{
    for (size_t i = 0; i < sizeof OPS / sizeof OPS[0]; i++)
        if (strcmp(OPS[i].name, name) == 0) return &OPS[i];
    return NULL;
}


/* [a, b] of an operator whose key frame is pushed. */
static int two_args(struct ctx *c, const cJSON *a, const char *op)
{
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 2)
        return jsql_fail(c, "%s expects a list of two operands [a, b]", op);
    return 0;
}

/* Arithmetic as PostgreSQL does it: integer with integer stays an integer
 * (division truncates toward zero in both), with a real it is a real. What
 * SQLite would answer differently is refused or made to fail as PostgreSQL
 * does: a boolean operand (no such operator there), mod of a real (SQLite
 * truncates it to an integer first), a zero divisor (SQLite gives NULL,
 * PostgreSQL "division by zero": jsonsql_divisor() raises it), an integer
 * result beyond 64 bits (SQLite makes it a float, PostgreSQL fails "bigint out
 * of range": jsonsql_bigint() does). */
static int compile_arith(struct ctx *c, const cJSON *k, const struct opdef *op,
                         const struct scope *sc, struct buf *out, struct colref *ref)
{
    struct colref r[2];
    int div = op->sql[1] == '/' || op->sql[1] == '%';
    jsql_push_key(c, op->name);
    if (two_args(c, k, op->name)) return -1;
    size_t at = out->len;
    buf_putc(out, '(');
    for (int i = 0; i < 2; i++) {
        jsql_push_idx(c, i);
        if (i) buf_puts(out, op->sql);
        if (i && div) buf_puts(out, "jsonsql_divisor(");
        if (jsql_operand(c, i ? k->child->next : k->child, sc, out, i ? RIGHT : LEFT, &r[i])) return -1;
        if (i && div) buf_putc(out, ')');
        if (r[i].type == JSQL_BOOL || r[i].type == JSQL_JSON)
            return jsql_fail(c, "%s of a %s value is not supported (PostgreSQL has no such operator)", op->name,
                             r[i].type == JSQL_BOOL ? "boolean" : "JSON");
        if (op->sql[1] == '%' && r[i].type == JSQL_REAL)
            return jsql_fail(c, "mod of a real value is not supported (SQLite truncates it to an integer)");
        jsql_pop(c);
    }
    buf_putc(out, ')');
    jsql_pop(c);
    if (r[0].type == JSQL_INT && r[1].type == JSQL_INT && op->sql[1] != '%') {
        /* SQLite turns an overflowing integer into a float; PostgreSQL fails. */
        struct buf e = {0};
        buf_append(&e, out->p + at, out->len - at);
        out->len = at;
        buf_puts(out, "jsonsql_bigint");
        buf_append(out, e.p, e.len);
        buf_free(&e);
    }
    if (ref) {
        enum jsonsql_type a = r[0].type, b = r[1].type;
        ref->type = (a == JSQL_INT && b == JSQL_INT) ? JSQL_INT
                  : ((a == JSQL_INT || a == JSQL_REAL) && (b == JSQL_INT || b == JSQL_REAL)) ? JSQL_REAL
                                                                                           : JSQL_ANY;
    }
    return 0;
}

int jsql_is_subquery(const cJSON *n)
{
    return cJSON_IsObject(n) && n->child && !n->child->next && strcmp(n->child->string, "select") == 0;
}

/* The type of a literal. */
static void literal_ref(const cJSON *n, struct colref *ref)
{
    int64_t i;
    ref->null_lit = cJSON_IsNull(n);
    ref->type = cJSON_IsString(n) ? JSQL_TEXT
              : cJSON_IsBool(n)   ? JSQL_BOOL
              : cJSON_IsNumber(n) ? (json_int64(n, &i) ? JSQL_INT : JSQL_REAL)
                                  : JSQL_ANY;
}

int jsql_operand(struct ctx *c, const cJSON *n, const struct scope *sc, struct buf *out, enum side side,
                 struct colref *ref)
{
    struct colref tmp;
    if (!ref) ref = &tmp;
    memset(ref, 0, sizeof *ref);
    ref->src = -1;
    ref->type = JSQL_ANY;
    if (cJSON_IsString(n)) {
        size_t len = strlen(n->valuestring);
        struct colref r = {0};
        int rc = resolve_str(sc, n->valuestring, len, &r);
        if (rc == R_OK) {
            use_col(c, sc, &r, out);
            *ref = r;
            ref->null_lit = 0;
            return 0;
        }
        if (rc == R_AMBIGUOUS || side == LEFT)
            return col_error(c, sc, rc, NULL, 0, n->valuestring, len);
        literal_ref(n, ref);
        return jsql_emit_literal(c, n, out);
    }
    if (cJSON_IsObject(n)) {
        char q[QBUF];
        struct fncall fc;
        int call = jsql_fncall(c, n, sc, &fc);
        if (call < 0) return -1;
        if (call) return jsql_compile_call(c, &fc, sc, out, NULL, &ref->type);
        const cJSON *k = n->child;
        if (k && !k->next) {
            const struct opdef *op = op_lookup(k->string);
            if (op && op->kind == OP_ARITH) return compile_arith(c, k, op, sc, out, ref);
            if (op) return jsql_fail(c, "%s is a condition, not a value", op->name);
            if (strcmp(k->string, "select") == 0)
                return jsql_fail(c, "a subquery is only valid in from and as the list of in");
            if (cJSON_IsString(k) && (side == LEFT || jsql_scope_alias(sc, k->string, strlen(k->string)) >= 0)) {
                if (column_obj(c, sc, n, out, ref)) return -1;
                ref->null_lit = 0;
                return 0;
            }
        }
        if (side == LEFT)
            return jsql_fail(c, "expected a column, a function or arithmetic, got an object%s%s",
                        k ? " with key " : "", k ? jsql_uqs(q, sizeof q, k->string) : "");
        return jsql_emit_literal(c, n, out);
    }
    if (cJSON_IsArray(n) && side == LEFT)
        return jsql_fail(c, "expected a column, a function or arithmetic, got a list");
    literal_ref(n, ref);
    return jsql_emit_literal(c, n, out);
}

/* A literal PostgreSQL reads as a date or timestamp but that does not compare
 * as text with the portal's 'YYYY-MM-DD HH:MM:SS[.ffffff]' the way it would
 * as a timestamp: 'YYYY-MM-DD', no seconds, a 'T', a fraction. The canonical
 * form itself compares right as text, and keeps the column's index usable. */
static int ts_literal(const char *s)
{
    static const char shape[] = "dddd-dd-dd";
    size_t n = strlen(s);
    if (n < 10) return 0;
    for (int i = 0; i < 10; i++)
        if (shape[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9') : s[i] != shape[i]) return 0;
    if (n == 10) return 1;
    if (n < 16 || (s[10] != ' ' && s[10] != 'T')) return 0;
    for (size_t i = 11; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || s[i] == ':' || s[i] == '.')) return 0;   /* no zone */
    return !(n == 19 && s[10] == ' ');
}

/* A bare column as a condition ({"not":"is_enabled"}): it must be boolean. */
static int bool_column(struct ctx *c, const cJSON *e, const struct scope *sc, struct buf *out)
{
    char q[QBUF];
    struct colref r = {0};
    struct buf tmp = {0};
    int rc = jsql_column_str(c, sc, e->valuestring, &tmp, &r);
    if (!rc && r.type != JSQL_BOOL)
        rc = jsql_fail(c, "%s is not a boolean column: a condition is an object with one operator, or a "
                          "boolean column", jsql_uqs(q, sizeof q, e->valuestring));
    if (!rc) buf_append(out, tmp.p, tmp.len);
    buf_free(&tmp);
    return rc;
}

static int in_subquery(struct ctx *c, const cJSON *n, struct buf *out)
{
    struct pcol *cols;
    int ncols;
    const char *t;
    jsql_push_key(c, "select");
    if (jsql_compile_select(c, n->child, out, &cols, &ncols, &t)) return -1;
    if (ncols != 1) return jsql_fail(c, "subquery must return exactly one column, got %d", ncols);
    jsql_pop(c);
    return 0;
}

static int pg_bool(const char *s);

/* A value of in's list against a column of type lt, read as PostgreSQL would
 * read it there: a string for a boolean as a boolean; a date or timestamp
 * literal not in the stored form, or a number, against text refused (the
 * list compares as text in SQLite). */
static int in_value(struct ctx *c, const cJSON *v, enum jsonsql_type lt, struct buf *out)
{
    char q[QBUF];
    if (lt == JSQL_BOOL && cJSON_IsString(v)) {
        int b = pg_bool(v->valuestring);
        if (b < 0) return jsql_fail(c, "invalid input syntax for type boolean: %s", jsql_uqs(q, sizeof q, v->valuestring));
        return jsql_add_param(c, out, (struct jsonsql_value){.type = SQLITE_INTEGER, .i = b});
    }
    if (lt == JSQL_TEXT && cJSON_IsString(v) && ts_literal(v->valuestring))
        return jsql_fail(c, "in with the date or timestamp %s on a text column is not supported: write it "
                            "'YYYY-MM-DD HH:MM:SS' or compare with eq", jsql_uqs(q, sizeof q, v->valuestring));
    if (lt == JSQL_TEXT && (cJSON_IsNumber(v) || cJSON_IsBool(v)))
        return jsql_fail(c, "comparing a text value with a %s is not supported (PostgreSQL has no such operator)",
                         cJSON_IsBool(v) ? "boolean" : "number");
    return jsql_emit_literal(c, v, out);
}

/* Values v and its siblings, at indexes i0.. of the list being compiled. */
static int value_items(struct ctx *c, const cJSON *v, int i0, enum jsonsql_type lt, struct buf *out)
{
    for (int i = i0; v; v = v->next, i++) {
        if (i > i0) buf_puts(out, ", ");
        jsql_push_idx(c, i);
        if (in_value(c, v, lt, out)) return -1;
        jsql_pop(c);
    }
    return 0;
}

/* The list of in after the column: [col, [values]], [col, v1, v2, ...],
 * [col, v], [col, {"values":[[v], ...]}], [col, {"select":...}] or
 * [col, [{"select":...}]]. A string here is always a value. An empty list is
 * SQLite's "x IN ()", false even for NULL x. */
static int in_list(struct ctx *c, const cJSON *b, int direct, enum jsonsql_type lt, struct buf *out)
{
    if (direct) return value_items(c, b, 1, lt, out);
    jsql_push_idx(c, 1);
    if (cJSON_IsArray(b) && b->child && !b->child->next && jsql_is_subquery(b->child)) {
        jsql_push_idx(c, 0);
        if (in_subquery(c, b->child, out)) return -1;
        jsql_pop(c);
    } else if (jsql_is_subquery(b)) {
        if (in_subquery(c, b, out)) return -1;
    } else if (cJSON_IsArray(b)) {
        if (value_items(c, b->child, 0, lt, out)) return -1;
    } else if (cJSON_IsObject(b) && b->child && !b->child->next && strcmp(b->child->string, "values") == 0) {
        const cJSON *vs = b->child;
        jsql_push_key(c, "values");
        if (!cJSON_IsArray(vs)) return jsql_fail(c, "expected a list of one-value rows [[v], ...]");
        int i = 0;
        for (const cJSON *row = vs->child; row; row = row->next, i++) {
            jsql_push_idx(c, i);
            if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != 1)
                return jsql_fail(c, "expected a row of one value [v]");
            if (i) buf_puts(out, ", ");
            if (in_value(c, row->child, lt, out)) return -1;
            jsql_pop(c);
        }
        jsql_pop(c);
    } else if (cJSON_IsObject(b)) {
        return jsql_fail(c, "expected a list of values, {\"values\":[[v], ...]} or {\"select\":...}");
    } else if (in_value(c, b, lt, out)) {
        return -1;
    }
    jsql_pop(c);
    return 0;
}

/* A string as PostgreSQL's boolean input reads it: 1, 0, or -1 when it is
 * none (any case, spaces around; a prefix of true/false/yes/no, on, of(f), 1, 0). */
static int pg_bool(const char *s)
{
    static const struct { const char *word; size_t min; int v; } W[] = {
        {"true", 1, 1}, {"false", 1, 0}, {"yes", 1, 1}, {"no", 1, 0}, {"on", 2, 1}, {"off", 2, 0},
        {"1", 1, 1}, {"0", 1, 0}};
    while (*s == ' ' || (*s >= '\t' && *s <= '\r')) s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || (s[n - 1] >= '\t' && s[n - 1] <= '\r'))) n--;
    for (size_t i = 0; i < sizeof W / sizeof W[0]; i++)
        if (n >= W[i].min && n <= strlen(W[i].word) && strncasecmp(s, W[i].word, n) == 0) return W[i].v;
    return -1;
}

/* A comparison, like or ilike. A text column compared with a date or
 * timestamp literal PostgreSQL would compare as timestamps goes through
 * jsonsql_tscmp() (jsonsql_fn.c). like needs text, as in PostgreSQL. */
static int compile_compare(struct ctx *c, const cJSON *k, const struct opdef *op, const struct scope *sc,
                           struct buf *out)
{
    if (two_args(c, k, op->name)) return -1;
    int il = op->kind == OP_ILIKE;
    struct buf l = {0};
    struct colref lr, rr;
    jsql_push_idx(c, 0);
    int rc = jsql_operand(c, k->child, sc, &l, LEFT, &lr);
    if (!rc && op->kind != OP_CMP && (lr.type == JSQL_INT || lr.type == JSQL_REAL || lr.type == JSQL_BOOL))
        rc = jsql_fail(c, "%s of %s value is not supported (PostgreSQL has no %s on it)", op->name,
                       lr.type == JSQL_INT ? "an integer" : lr.type == JSQL_REAL ? "a real" : "a boolean", op->name);
    if (rc) {
        buf_free(&l);
        return -1;
    }
    jsql_pop(c);
    const cJSON *b = k->child->next;
    int ts = op->kind == OP_CMP && lr.type == JSQL_TEXT && cJSON_IsString(b) && ts_literal(b->valuestring) &&
             resolve_str(sc, b->valuestring, strlen(b->valuestring), &rr) != R_OK;
    buf_puts(out, ts ? "jsonsql_tscmp(" : il ? "LOWER(" : "");
    buf_append(out, l.p ? l.p : "", l.len);
    buf_free(&l);
    buf_puts(out, ts ? ", " : il ? ") LIKE LOWER(" : op->sql);
    jsql_push_idx(c, 1);
    if (op->kind == OP_CMP && lr.type == JSQL_BOOL && cJSON_IsString(b) &&
        resolve_str(sc, b->valuestring, strlen(b->valuestring), &rr) != R_OK) {
        /* PostgreSQL reads the string as a boolean; SQLite would compare 0/1 with text. */
        int v = pg_bool(b->valuestring);
        char q[QBUF];
        if (v < 0)
            return jsql_fail(c, "invalid input syntax for type boolean: %s", jsql_uqs(q, sizeof q, b->valuestring));
        if (jsql_add_param(c, out, (struct jsonsql_value){.type = SQLITE_INTEGER, .i = v})) return -1;
    } else if (op->kind == OP_CMP && lr.type == JSQL_TEXT && (cJSON_IsNumber(b) || cJSON_IsBool(b))) {
        return jsql_fail(c, "comparing a text value with a %s is not supported (PostgreSQL has no such operator)",
                         cJSON_IsBool(b) ? "boolean" : "number");
    } else if (jsql_operand(c, b, sc, out, RIGHT, &rr)) {
        return -1;
    }
    jsql_pop(c);
    if (ts) {
        buf_putc(out, ')');
        buf_puts(out, op->sql);
        buf_putc(out, '0');
    }
    if (il) buf_putc(out, ')');
    /* PostgreSQL's LIKE escapes with a backslash by default; SQLite has none. */
    if (op->kind != OP_CMP) buf_puts(out, " ESCAPE '\\'");
    return 0;
}

/* A condition: an object with exactly one operator, or a boolean column. */
static int compile_cond(struct ctx *c, const cJSON *e, const struct scope *sc, struct buf *out)
{
    char q[QBUF];
    if (cJSON_IsString(e)) return bool_column(c, e, sc, out);
    if (!cJSON_IsObject(e) || !e->child || e->child->next)
        return jsql_fail(c, "expected a condition: an object with exactly one operator");
    const cJSON *k = e->child;
    const struct opdef *op = op_lookup(k->string);
    if (!op) return jsql_fail(c, "unknown operator %s", jsql_uqs(q, sizeof q, k->string));
    jsql_push_key(c, op->name);
    switch (op->kind) {
    case OP_AND:
    case OP_OR: {
        if (!cJSON_IsArray(k) || !k->child)
            return jsql_fail(c, "%s expects a non-empty list of conditions", op->name);
        buf_putc(out, '(');
        int i = 0;
        for (const cJSON *a = k->child; a; a = a->next, i++) {
            if (i) buf_puts(out, op->sql);
            jsql_push_idx(c, i);
            if (compile_cond(c, a, sc, out)) return -1;
            jsql_pop(c);
        }
        buf_putc(out, ')');
        break;
    }
    case OP_NOT: {
        const cJSON *a = k;
        if (cJSON_IsArray(k)) {
            if (cJSON_GetArraySize(k) != 1)
                return jsql_fail(c, "not expects a condition or a list of one condition");
            a = k->child;
            jsql_push_idx(c, 0);
        }
        buf_puts(out, "NOT (");
        if (compile_cond(c, a, sc, out)) return -1;
        buf_putc(out, ')');
        if (a != k) jsql_pop(c);
        break;
    }
    case OP_CMP:
    case OP_LIKE:
    case OP_ILIKE:
        if (compile_compare(c, k, op, sc, out)) return -1;
        break;
    case OP_IS: {
        if (two_args(c, k, op->name)) return -1;
        jsql_push_idx(c, 0);
        if (jsql_operand(c, k->child, sc, out, LEFT, NULL)) return -1;
        jsql_pop(c);
        const cJSON *b = k->child->next;
        jsql_push_idx(c, 1);
        if (!cJSON_IsBool(b) && !cJSON_IsNull(b)) return jsql_fail(c, "expected true, false or null");
        jsql_pop(c);
        buf_puts(out, op->sql);
        buf_puts(out, cJSON_IsTrue(b) ? "TRUE" : cJSON_IsFalse(b) ? "FALSE" : "NULL");
        break;
    }
    case OP_IN: {
        int nk = cJSON_IsArray(k) ? cJSON_GetArraySize(k) : 0;
        if (nk < 2)
            return jsql_fail(c, "in expects [column, [values]], [column, v1, v2, ...], "
                                "[column, {\"values\":[[v], ...]}] or [column, {\"select\":...}]");
        struct colref lr;
        jsql_push_idx(c, 0);
        if (jsql_operand(c, k->child, sc, out, LEFT, &lr)) return -1;
        jsql_pop(c);
        buf_puts(out, " IN (");
        if (in_list(c, k->child->next, nk > 2, lr.type, out)) return -1;
        buf_putc(out, ')');
        break;
    }
    case OP_ARITH:
        return jsql_fail(c, "%s is a value, not a condition", op->name);
    }
    jsql_pop(c);
    return 0;
}

/* A where or on condition: no aggregate in it, except inside a subquery. */
int jsql_compile_where(struct ctx *c, const cJSON *e, const struct scope *sc, struct buf *out)
{
    int ban = c->agg_ban;
    c->agg_ban = AGG_IN_COND;
    int rc = compile_cond(c, e, sc, out);
    c->agg_ban = ban;
    return rc;
}

/* ------------------------------------------------------------------------ */
/* select                                                                    */


struct pcol *jsql_out_add(struct outlist *o)
{
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 8;
        o->v = xrealloc(o->v, (size_t)o->cap * sizeof *o->v);
    }
    struct pcol *p = &o->v[o->n++];
    memset(p, 0, sizeof *p);
    return p;
}

void jsql_sep(struct buf *out, const struct outlist *o)
{
    if (o->n) buf_puts(out, ", ");
}

/* A plain column as an item of the list. */
static void out_col(struct outlist *o, const struct colref *r)
{
    struct pcol *p = jsql_out_add(o);
    p->name = p->col = r->name;
    p->len = p->col_len = r->len;
    p->type = r->type;
    p->plain = 1;
    p->src = r->src;
}

/* Every column of source i, or of all sources (i < 0). */
static int expand_star(struct ctx *c, const struct scope *sc, int only, struct buf *out,
                       struct outlist *o)
{
    for (int i = 0; i < sc->n; i++) {
        if (only >= 0 && i != only) continue;
        const struct source *s = &sc->s[i];
        int n = s->t ? s->t->ncols : s->ncols;
        for (int j = 0; j < n; j++) {
            struct colref r = {.src = i};
            if (s->t) {
                r.name = s->t->cols[j].name;
                r.len = s->t->cols[j].len;
                r.type = s->t->cols[j].type;
            } else {
                if (!s->cols[j].name)
                    return jsql_fail(c, "\"*\" cannot name column %d of subquery%s%.*s: give it an \"as\"",
                                j + 1, s->alias ? " " : "", (int)s->alias_len,
                                s->alias ? s->alias : "");
                if (s->cols[j].dup)
                    return jsql_fail(c, "\"*\" over subquery%s%.*s: column \"%.*s\" appears twice",
                                s->alias ? " " : "", (int)s->alias_len, s->alias ? s->alias : "",
                                (int)s->cols[j].len, s->cols[j].name);
                r.name = s->cols[j].name;
                r.len = s->cols[j].len;
                r.type = s->cols[j].type;
            }
            jsql_sep(out, o);
            emit_col(sc, &r, out);
            out_col(o, &r);
        }
    }
    return 0;
}

/* A top-level distinct item ({"function":"distinct","args":X} or
 * {"distinct":X}): its args become columns. */
static int data_distinct(struct ctx *c, const struct fncall *fc, const struct scope *sc, struct buf *out,
                         struct outlist *o)
{
    const cJSON *args = fc->args, *as = fc->as;
    if (fc->distinct) return jsql_fail(c, "unexpected key \"distinct\" in distinct");
    if (!args) return jsql_fail(c, "distinct needs \"args\"");
    if (as && cJSON_IsArray(args) && cJSON_GetArraySize(args) != 1) {
        jsql_push_key(c, "as");
        return jsql_fail(c, "\"as\" needs distinct of exactly one argument");
    }
    jsql_push_key(c, fc->own ? "distinct" : "args");
    int list = cJSON_IsArray(args);
    if (list && !args->child) return jsql_fail(c, "distinct expects at least 1 argument");
    int i = 0;
    for (const cJSON *a = list ? args->child : args; a; a = list ? a->next : NULL, i++) {
        if (list) jsql_push_idx(c, i);
        jsql_sep(out, o);
        struct colref r = {0};
        if (jsql_operand(c, a, sc, out, LEFT, &r)) return -1;
        if (r.src >= 0) {
            out_col(o, &r);
        } else {
            jsql_out_add(o)->type = r.type;
        }
        if (list) jsql_pop(c);
    }
    jsql_pop(c);
    if (as) {
        if (jsql_check_alias(c, as)) return -1;
        buf_puts(out, " AS ");
        jsql_quote_ident(out, as->valuestring, strlen(as->valuestring));
        struct pcol *p = &o->v[o->n - 1];
        p->name = as->valuestring;
        p->len = strlen(as->valuestring);
        p->alias = 1;
    }
    return 0;
}


/* Arithmetic as a data item, {"div":["duration",7],"as":"d"}: *done 1 when
 * n was one. */
static int data_arith(struct ctx *c, const cJSON *n, const struct scope *sc, struct buf *out,
                      struct outlist *o, int *done)
{
    const cJSON *opk = NULL, *as = NULL;
    *done = 0;
    for (const cJSON *k = n->child; k; k = k->next) {
        const struct opdef *op = op_lookup(k->string);
        if (strcmp(k->string, "as") == 0 && !as) as = k;
        else if (op && op->kind == OP_ARITH && !opk) opk = k;
        else return 0;
    }
    if (!opk) return 0;
    *done = 1;
    jsql_sep(out, o);
    struct colref r;
    if (compile_arith(c, opk, op_lookup(opk->string), sc, out, &r)) return -1;
    struct pcol *p = jsql_out_add(o);
    p->type = r.type;
    if (as) {
        if (jsql_check_alias(c, as)) return -1;
        buf_puts(out, " AS ");
        jsql_quote_ident(out, as->valuestring, strlen(as->valuestring));
        p->name = as->valuestring;
        p->len = strlen(as->valuestring);
        p->alias = 1;
    }
    return 0;
}

static int data_item(struct ctx *c, const cJSON *n, const struct scope *sc, struct buf *out,
                     struct outlist *o)
{
    if (cJSON_IsString(n)) {
        const char *s = n->valuestring;
        size_t len = strlen(s);
        if (strcmp(s, "*") == 0) return expand_star(c, sc, -1, out, o);
        if (len > 2 && strcmp(s + len - 2, ".*") == 0) {
            int i = jsql_scope_alias(sc, s, len - 2);
            if (i < 0) return col_error(c, sc, R_NOALIAS, s, len - 2, s, len);
            return expand_star(c, sc, i, out, o);
        }
        jsql_sep(out, o);
        struct colref r = {0};
        if (jsql_column_str(c, sc, s, out, &r)) return -1;
        out_col(o, &r);
        return 0;
    }
    struct fncall fc;
    int call = jsql_fncall(c, n, sc, &fc);
    if (call < 0) return -1;
    if (call) {
        if (jsql_fncall_is(&fc, "distinct")) return data_distinct(c, &fc, sc, out, o);
        jsql_sep(out, o);
        struct pcol oc;
        if (jsql_compile_call(c, &fc, sc, out, &oc, NULL)) return -1;
        *jsql_out_add(o) = oc;
        return 0;
    }
    if (data_arith(c, n, sc, out, o, &call)) return -1;
    if (call) return 0;
    if (is_qualified(n)) {
        const cJSON *k = n->child;
        if (strcmp(k->valuestring, "*") == 0) {   /* {"t":"*"} */
            int i = jsql_scope_alias(sc, k->string, strlen(k->string));
            if (i < 0) return col_error(c, sc, R_NOALIAS, k->string, strlen(k->string), "*", 1);
            return expand_star(c, sc, i, out, o);
        }
        jsql_sep(out, o);
        struct colref r = {0};
        if (column_obj(c, sc, n, out, &r)) return -1;
        out_col(o, &r);
        return 0;
    }
    return jsql_fail(c, "expected a column name, {\"alias\":\"column\"} or a function");
}

static int compile_data(struct ctx *c, const cJSON *d, const struct scope *sc, struct buf *out,
                        struct outlist *o)
{
    if (!cJSON_IsArray(d)) return data_item(c, d, sc, out, o);
    if (!d->child) return jsql_fail(c, "expected at least one column");
    int i = 0;
    for (const cJSON *n = d->child; n; n = n->next, i++) {
        jsql_push_idx(c, i);
        if (data_item(c, n, sc, out, o)) return -1;
        jsql_pop(c);
    }
    return 0;
}

/* A distinct data item in either form (whose compile reports its errors). */
static int is_distinct_item(const cJSON *n)
{
    if (!cJSON_IsObject(n)) return 0;
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(n, "function");
    if (f) return cJSON_IsString(f) && strcasecmp(f->valuestring, "distinct") == 0;
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(n, "distinct");
    return d && !cJSON_IsBool(d);
}

static int has_distinct_item(const cJSON *d)
{
    if (!cJSON_IsArray(d)) return is_distinct_item(d);
    for (const cJSON *n = d->child; n; n = n->next)
        if (is_distinct_item(n)) return 1;
    return 0;
}

/* Split a trailing " asc"/" desc" (any case) off s[0..*len): 0 none, 1 asc, 2 desc. */
static int split_dir(const char *s, size_t *len)
{
    size_t n = *len, i = n;
    while (i > 0 && s[i - 1] != ' ') i--;
    if (i == 0) return 0;
    const char *w = s + i;
    size_t wl = n - i;
    int d = (wl == 4 && strncasecmp(w, "desc", 4) == 0) ? 2
          : (wl == 3 && strncasecmp(w, "asc", 3) == 0)  ? 1
                                                         : 0;
    if (!d) return 0;
    size_t m = i - 1;
    while (m > 0 && s[m - 1] == ' ') m--;
    *len = m;
    return d;
}

/* group_by (order 0) or order_by (order 1) item. */
static int name_item(struct ctx *c, const cJSON *n, const struct scope *sc, struct buf *out,
                     int order, struct colref *got)
{
    const char *alias = NULL, *s;
    size_t alen = 0, len;
    if (cJSON_IsString(n)) {
        s = n->valuestring;
    } else if (is_qualified(n)) {
        alias = n->child->string;
        alen = strlen(alias);
        s = n->child->valuestring;
    } else {
        return jsql_fail(c, "expected a column name or {\"alias\":\"column\"}");
    }
    len = strlen(s);
    int dir = order ? split_dir(s, &len) : 0;
    struct colref r = {0};
    int rc;
    if (alias) {
        rc = scope_find_q(sc, alias, alen, s, len, &r);
    } else {
        if (order)   /* output aliases first, as SQL resolves ORDER BY */
            for (int i = 0; i < sc->nout; i++) {
                const struct pcol *p = &sc->out[i];
                if (p->alias && p->len == len && memcmp(p->name, s, len) == 0) {
                    jsql_quote_ident(out, p->name, p->len);
                    goto direction;
                }
            }
        rc = resolve_str(sc, s, len, &r);
    }
    if (rc != R_OK) return col_error(c, sc, rc, alias, alen, s, len);
    if (order) use_col(c, sc, &r, out);
    else emit_col(sc, &r, out);
    if (got) *got = r;
direction:
    /* PostgreSQL (the portal) sorts NULLs as larger than any value: last
     * ascending, first descending; SQLite's default is the opposite. */
    if (order) buf_puts(out, dir == 2 ? " DESC NULLS FIRST" : dir == 1 ? " ASC NULLS LAST" : " NULLS LAST");
    return 0;
}

/* The columns of group_by, resolved. */
struct grouping {
    struct colref *v;
    int n;
};

static int grouped(const struct grouping *g, int src, const char *name, size_t len)
{
    for (int i = 0; i < g->n; i++)
        if (g->v[i].src == src && g->v[i].len == len && memcmp(g->v[i].name, name, len) == 0) return 1;
    return 0;
}

/* With distinct, PostgreSQL sorts only by what the list shows ("for SELECT
 * DISTINCT, ORDER BY expressions must appear in select list"); SQLite would
 * sort by a hidden column. ord: the order_by columns (src -1: a list alias). */
static int check_distinct_order(struct ctx *c, const struct outlist *o, const struct grouping *ord)
{
    for (int i = 0; i < ord->n; i++) {
        const struct colref *r = &ord->v[i];
        int shown = r->src < 0;
        for (int k = 0; k < o->n && !shown; k++)
            shown = o->v[k].plain && o->v[k].src == r->src && o->v[k].col_len == r->len &&
                    memcmp(o->v[k].col, r->name, r->len) == 0;
        if (!shown) {   /* the caller's frame is order_by */
            return jsql_fail(c, "with distinct, order_by may name only columns of data: \"%.*s\" is not one "
                                "(PostgreSQL refuses it)", (int)r->len, r->name);
        }
    }
    return 0;
}

/* Source src is a table whose whole primary key is grouped. */
static int pk_grouped(const struct scope *sc, const struct grouping *g, int src)
{
    const struct jtable *t = sc->s[src].t;
    int pk = 0;
    for (int k = 0; t && k < t->ncols; k++)
        if (t->cols[k].pk) {
            if (!grouped(g, src, t->cols[k].name, t->cols[k].len)) return 0;
            pk = 1;
        }
    return pk;
}

static int grouping_error(struct ctx *c, const char *name, size_t len)
{
    return jsql_fail(c, "column \"%.*s\" must be in group_by or inside an aggregate (PostgreSQL refuses it; "
                        "SQLite would answer with any row's value)", (int)len, name);
}

/* In a select that aggregates, a column of the list, having or order_by
 * outside an aggregate must be grouped (or its table's primary key must be,
 * as PostgreSQL allows): SQLite would answer with any row's value where
 * PostgreSQL refuses the statement. The columns used in values are
 * c->bare[base..]; plain items (and "*") come from the list. */
static int check_grouping(struct ctx *c, const struct scope *sc, const struct outlist *o, const struct grouping *g,
                          int base)
{
    for (int i = 0; i < o->n; i++) {
        const struct pcol *p = &o->v[i];
        if (!p->plain || grouped(g, p->src, p->col, p->col_len) || pk_grouped(sc, g, p->src)) continue;
        jsql_push_key(c, "data");
        return grouping_error(c, p->col, p->col_len);
    }
    for (int i = base; i < c->nbare; i++) {
        const struct colref *r = &c->bare[i];
        if (!grouped(g, r->src, r->name, r->len) && !pk_grouped(sc, g, r->src)) return grouping_error(c, r->name, r->len);
    }
    return 0;
}

/* group_by (order 0, its columns into g: g->v sized by the caller) or order_by. */
static int compile_names(struct ctx *c, const cJSON *n, const struct scope *sc, struct buf *out,
                         int order, struct grouping *g)
{
    if (!cJSON_IsArray(n)) return name_item(c, n, sc, out, order, g ? &g->v[g->n++] : NULL);
    if (!n->child) return jsql_fail(c, "expected at least one column");
    int i = 0;
    for (const cJSON *k = n->child; k; k = k->next, i++) {
        if (i) buf_puts(out, ", ");
        jsql_push_idx(c, i);
        if (name_item(c, k, sc, out, order, g ? &g->v[g->n++] : NULL)) return -1;
        jsql_pop(c);
    }
    return 0;
}

static int count_param(struct ctx *c, const cJSON *n, struct buf *out)
{
    int64_t v;
    if (!json_int64(n, &v) || v < 0) return jsql_fail(c, "expected a non-negative integer");
    return jsql_add_param(c, out, (struct jsonsql_value){.type = SQLITE_INTEGER, .i = v});
}

int jsql_size_ok(struct ctx *c, const struct buf *b)
{
    if (b->len > c->lim.max_sql)
        return jsql_fail(c, "generated SQL exceeds %zu bytes (limits.max_sql)", c->lim.max_sql);
    return 0;
}

/* Match each member of object p to the known keys (in order) into vals.
 * Unknown or repeated keys are errors. */
int jsql_take_keys(struct ctx *c, const cJSON *p, const char *const *keys, const cJSON **vals,
                     int nkeys)
{
    char q[QBUF];
    for (int i = 0; i < nkeys; i++) vals[i] = NULL;
    for (const cJSON *k = p->child; k; k = k->next) {
        int i = 0;
        while (i < nkeys && strcmp(keys[i], k->string) != 0) i++;
        if (i == nkeys) return jsql_fail(c, "unknown key %s", jsql_uqs(q, sizeof q, k->string));
        if (vals[i]) return jsql_fail(c, "duplicate key %s", jsql_uqs(q, sizeof q, k->string));
        vals[i] = k;
    }
    return 0;
}

/* A select (contract: jsonsql_compile.h). Its output columns (arena memory) into cols/ncols and its
 * first table into table. */
int jsql_compile_select(struct ctx *c, const cJSON *p, struct buf *out, struct pcol **cols,
                          int *ncols, const char **table)
{
    static const char *const keys[] = {"data",     "from",  "where",  "group_by", "having",
                                       "order_by", "limit", "offset", "distinct"};
    enum { K_DATA, K_FROM, K_WHERE, K_GROUP, K_HAVING, K_ORDER, K_LIMIT, K_OFFSET, K_DISTINCT, K_N };
    const cJSON *v[K_N];
    if (!cJSON_IsObject(p)) return jsql_fail(c, "expected an object");
    if (jsql_take_keys(c, p, keys, v, K_N)) return -1;
    if (!v[K_FROM]) return jsql_fail(c, "\"from\" is required");
    if (!v[K_DATA]) return jsql_fail(c, "\"data\" is required");
    if (v[K_DISTINCT] && !cJSON_IsBool(v[K_DISTINCT])) {
        jsql_push_key(c, "distinct");
        return jsql_fail(c, "expected true or false");
    }
    struct scope sc = {0};
    struct buf fs = {0};
    struct outlist o = {0};
    int rc = -1, ban = c->agg_ban;
    *table = NULL;
    c->agg_ban = 0;   /* a subquery aggregates on its own */
    int nagg = c->nagg, collect = c->collect, base = c->nbare;
    c->nagg = 0;
    c->collect = 0;   /* from and where may name any column */
    struct grouping g = {0};

    jsql_push_key(c, "from");
    if (jsql_compile_from(c, v[K_FROM], &sc, &fs, table)) goto done;
    jsql_pop(c);

    int distinct = cJSON_IsTrue(v[K_DISTINCT]) || has_distinct_item(v[K_DATA]);
    buf_puts(out, distinct ? "SELECT DISTINCT " : "SELECT ");
    jsql_push_key(c, "data");
    c->collect = 1;
    if (compile_data(c, v[K_DATA], &sc, out, &o)) goto done;
    c->collect = 0;
    jsql_pop(c);
    sc.out = o.v;
    sc.nout = o.n;
    buf_puts(out, " FROM ");
    buf_append(out, fs.p, fs.len);

    if (v[K_WHERE]) {
        buf_puts(out, " WHERE ");
        jsql_push_key(c, "where");
        if (jsql_compile_where(c, v[K_WHERE], &sc, out)) goto done;
        jsql_pop(c);
    }
    if (v[K_GROUP]) {
        buf_puts(out, " GROUP BY ");
        jsql_push_key(c, "group_by");
        g.v = xmalloc((size_t)(cJSON_IsArray(v[K_GROUP]) ? cJSON_GetArraySize(v[K_GROUP]) + 1 : 1) * sizeof *g.v);
        if (compile_names(c, v[K_GROUP], &sc, out, 0, &g)) goto done;
        jsql_pop(c);
    }
    if (v[K_HAVING]) {   /* where's grammar; aggregates allowed, not nested */
        buf_puts(out, " HAVING ");
        jsql_push_key(c, "having");
        c->collect = 1;
        if (compile_cond(c, v[K_HAVING], &sc, out)) goto done;
        c->collect = 0;
        jsql_pop(c);
    }
    if (v[K_ORDER]) {
        buf_puts(out, " ORDER BY ");
        jsql_push_key(c, "order_by");
        struct grouping ord = {0};
        int nord = cJSON_IsArray(v[K_ORDER]) ? cJSON_GetArraySize(v[K_ORDER]) : 1;
        ord.v = xcalloc((size_t)nord, sizeof *ord.v);
        for (int i = 0; i < nord; i++) ord.v[i].src = -1;
        c->collect = 1;
        int orc = compile_names(c, v[K_ORDER], &sc, out, 1, &ord);
        c->collect = 0;
        if (!orc && distinct) orc = check_distinct_order(c, &o, &ord);
        free(ord.v);
        if (orc) goto done;
        jsql_pop(c);
    }
    if (v[K_LIMIT] || v[K_OFFSET]) {
        buf_puts(out, " LIMIT ");
        if (v[K_LIMIT]) {
            jsql_push_key(c, "limit");
            if (count_param(c, v[K_LIMIT], out)) goto done;
            jsql_pop(c);
        } else {
            buf_puts(out, "-1");   /* SQLite needs LIMIT before OFFSET */
        }
        if (v[K_OFFSET]) {
            buf_puts(out, " OFFSET ");
            jsql_push_key(c, "offset");
            if (count_param(c, v[K_OFFSET], out)) goto done;
            jsql_pop(c);
        }
    }
    if ((c->nagg || v[K_GROUP] || v[K_HAVING]) && check_grouping(c, &sc, &o, &g, base)) goto done;
    if (jsql_size_ok(c, out)) goto done;
    *cols = arena_keep(c, o.v ? o.v : xmalloc(1));
    o.v = NULL;
    *ncols = o.n;
    rc = 0;
done:
    c->agg_ban = ban;
    c->nagg = nagg;
    c->collect = collect;
    c->nbare = base;
    free(g.v);
    free(o.v);
    free(sc.s);
    buf_free(&fs);
    return rc;
}

/* Nesting of containers, params itself at depth 1. */
static int check_depth(struct ctx *c, const cJSON *n, int depth)
{
    if (!cJSON_IsArray(n) && !cJSON_IsObject(n)) return 0;
    if (depth > c->lim.max_depth)
        return jsql_fail(c, "nested deeper than %d levels (limits.max_depth)", c->lim.max_depth);
    int arr = cJSON_IsArray(n), i = 0;
    for (const cJSON *k = n->child; k; k = k->next, i++) {
        if (arr) jsql_push_idx(c, i);
        else jsql_push_key(c, k->string);
        if (check_depth(c, k, depth + 1)) return -1;
        jsql_pop(c);
    }
    return 0;
}

static void free_params(struct jsonsql_value *p, int n)
{
    for (int i = 0; i < n; i++) free(p[i].s);
    free(p);
}

int jsonsql_compile(const jsonsql_catalog *cat, const char *method, const cJSON *params,
                    const struct jsonsql_limits *limits, struct jsonsql_stmt *out,
                    char *err, size_t errlen)
{
    static const char *const methods[] = {"select", "insert", "update", "delete"};
    memset(out, 0, sizeof *out);
    if (err && errlen) err[0] = '\0';
    struct ctx c;
    c.cat = cat;
    c.lim.max_depth = limits && limits->max_depth > 0 ? limits->max_depth : DEF_MAX_DEPTH;
    c.lim.max_sql = limits && limits->max_sql > 0 ? limits->max_sql : DEF_MAX_SQL;
    c.lim.max_params = limits && limits->max_params > 0 ? limits->max_params : DEF_MAX_PARAMS;
    c.nframes = 0;
    c.params = NULL;
    c.nparams = c.capparams = 0;
    c.arena = NULL;
    c.narena = c.caparena = 0;
    c.err = err;
    c.errlen = errlen;
    c.agg_ban = 0;
    c.nagg = 0;
    c.collect = 0;
    c.bare = NULL;
    c.nbare = c.capbare = 0;
    c.method = "method";

    int kind = 0;
    while (kind < 4 && !(method && strcmp(method, methods[kind]) == 0)) kind++;
    if (kind == 4) {
        char q[QBUF];
        return jsql_fail(&c, "unknown method %s (expected select, insert, update or delete)",
                    method ? jsql_uqs(q, sizeof q, method) : "null");
    }
    c.method = methods[kind];
    if (!cat) return jsql_fail(&c, "no catalog");
    if (!cJSON_IsObject(params)) return jsql_fail(&c, "params must be an object");

    struct buf sql = {0};
    struct outlist o = {0};
    const char *table = NULL;
    struct pcol *cols = NULL;
    int ncols = 0, rc = check_depth(&c, params, 1);
    if (!rc) {
        switch (kind) {
        case JSQL_SELECT:
            rc = jsql_compile_select(&c, params, &sql, &cols, &ncols, &table);
            break;
        case JSQL_INSERT:
            rc = jsql_compile_insert(&c, params, &sql, &o, &table);
            break;
        case JSQL_UPDATE:
            rc = jsql_compile_update(&c, params, &sql, &o, &table);
            break;
        default:
            rc = jsql_compile_delete(&c, params, &sql, &o, &table);
            break;
        }
    }
    if (!rc && kind != JSQL_SELECT) {
        cols = o.v;
        ncols = o.n;
    }
    if (!rc) rc = jsql_size_ok(&c, &sql);
    if (!rc) {
        out->kind = (enum jsonsql_kind)kind;
        out->sql = buf_detach(&sql);
        out->params = c.params;
        out->nparams = c.nparams;
        c.params = NULL;   /* ownership moved to out */
        c.nparams = 0;
        out->ncols = ncols;
        out->col_types = xmalloc(((size_t)ncols + 1) * sizeof *out->col_types);
        for (int i = 0; i < ncols; i++) out->col_types[i] = cols[i].type;
        out->table = xstrdup(table ? table : "");
    }
    free(o.v);
    buf_free(&sql);
    free_params(c.params, c.nparams);
    for (int i = 0; i < c.narena; i++) free(c.arena[i]);
    free(c.arena);
    free(c.bare);
    return rc ? -1 : 0;
}

int jsonsql_bind(const struct jsonsql_stmt *st, sqlite3_stmt *ps)
{
    for (int i = 0; i < st->nparams; i++) {
        const struct jsonsql_value *v = &st->params[i];
        int rc;
        switch (v->type) {
        case SQLITE_INTEGER: rc = sqlite3_bind_int64(ps, i + 1, v->i); break;
        case SQLITE_FLOAT: rc = sqlite3_bind_double(ps, i + 1, v->d); break;
        case SQLITE_TEXT:
            rc = sqlite3_bind_text64(ps, i + 1, v->s, v->n, SQLITE_TRANSIENT, SQLITE_UTF8);
            break;
        default: rc = sqlite3_bind_null(ps, i + 1); break;
        }
        if (rc != SQLITE_OK) return rc;
    }
    return SQLITE_OK;
}

void jsonsql_stmt_free(struct jsonsql_stmt *st)
{
    if (!st) return;
    free(st->sql);
    free_params(st->params, st->nparams);
    free(st->col_types);
    free(st->table);
    memset(st, 0, sizeof *st);
}
