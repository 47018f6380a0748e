/* translate.c — JSONSQL select -> PostgreSQL SQL text; see translate.h. */
#include "tests/ref_portal/translate.h"
#include "agent/base/mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_DEPTH 48

struct tx {
    const struct ref_catalog *cat;
    struct buf *out;
    const char **as_names;     /* every `as` of the statement: names an operand may use */
    int nas;
    const char **tables;       /* every table the statement names: their columns too */
    int ntables;
    char *err;
    size_t errlen;
    int depth;
};

void ref_catalog_add(struct ref_catalog *cat, const char *table, const char *const *cols, int ncols)
{
    cat->t = xrealloc(cat->t, sizeof *cat->t * (size_t)(cat->n + 1));
    struct ref_table *t = &cat->t[cat->n++];
    t->name = xstrdup(table);
    t->ncols = ncols;
    t->cols = xcalloc((size_t)ncols + 1, sizeof *t->cols);
    for (int i = 0; i < ncols; i++) t->cols[i] = xstrdup(cols[i]);
}

void ref_catalog_free(struct ref_catalog *cat)
{
    for (int i = 0; i < cat->n; i++) {
        for (int c = 0; c < cat->t[i].ncols; c++) free(cat->t[i].cols[c]);
        free(cat->t[i].cols);
        free(cat->t[i].name);
    }
    free(cat->t);
    memset(cat, 0, sizeof *cat);
}

static int fail(struct tx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct tx *x, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->err, x->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- names ------------------------------------------------------------------ */

static int is_ident(const char *s, size_t n)
{
    if (n == 0 || !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_')) return 0;
    for (size_t i = 1; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
              s[i] == '_'))
            return 0;
    return 1;
}

static int known_name(const struct tx *x, const char *s, size_t n)
{
    for (int i = 0; i < x->cat->n; i++) {
        int named = 0;
        for (int k = 0; k < x->ntables && !named; k++) named = !strcmp(x->tables[k], x->cat->t[i].name);
        for (int c = 0; named && c < x->cat->t[i].ncols; c++)
            if (strlen(x->cat->t[i].cols[c]) == n && !memcmp(x->cat->t[i].cols[c], s, n)) return 1;
    }
    for (int i = 0; i < x->nas; i++)
        if (strlen(x->as_names[i]) == n && !memcmp(x->as_names[i], s, n)) return 1;
    return 0;
}

/* "col" or "alias.col" (or "alias.*" when star) naming a column: 1, else 0. */
static int names_column(const struct tx *x, const char *s, int star)
{
    const char *dot = strchr(s, '.');
    if (!dot) return is_ident(s, strlen(s)) && known_name(x, s, strlen(s));
    if (!is_ident(s, (size_t)(dot - s))) return 0;
    if (star && !strcmp(dot + 1, "*")) return 1;
    return is_ident(dot + 1, strlen(dot + 1)) && known_name(x, dot + 1, strlen(dot + 1));
}

static int put_ident(struct tx *x, const char *s, const char *what)
{
    if (!is_ident(s, strlen(s))) return fail(x, "%s: \"%s\" is not a plain name ([A-Za-z_][A-Za-z0-9_]*)", what, s);
    buf_printf(x->out, "\"%s\"", s);
    return 0;
}

/* A column reference "col", "alias.col" or "alias.*" (star allowed). */
static int put_column(struct tx *x, const char *s, const char *what)
{
    const char *dot = strchr(s, '.');
    if (!dot) return put_ident(x, s, what);
    char *alias = xstrndup(s, (size_t)(dot - s));
    int rc = put_ident(x, alias, what);
    free(alias);
    if (rc) return rc;
    buf_putc(x->out, '.');
    if (!strcmp(dot + 1, "*")) { buf_putc(x->out, '*'); return 0; }
    return put_ident(x, dot + 1, what);
}

/* The names an operand string may mean a column by: every `as`, and the columns
 * of every table named (from, join, table, into) anywhere in the statement. */
static void collect_names(struct tx *x, const cJSON *node)
{
    for (const cJSON *c = node ? node->child : NULL; c; c = c->next) {
        if (c->string && !strcmp(c->string, "as") && cJSON_IsString(c)) {
            x->as_names = xrealloc(x->as_names, sizeof *x->as_names * (size_t)(x->nas + 1));
            x->as_names[x->nas++] = c->valuestring;
        }
        if (c->string && cJSON_IsString(c) && (!strcmp(c->string, "from") || !strcmp(c->string, "join") ||
                                               !strcmp(c->string, "table") || !strcmp(c->string, "into"))) {
            x->tables = xrealloc(x->tables, sizeof *x->tables * (size_t)(x->ntables + 1));
            x->tables[x->ntables++] = c->valuestring;
        }
        if (!c->string && cJSON_IsString(c) && node->string && !strcmp(node->string, "from")) {
            x->tables = xrealloc(x->tables, sizeof *x->tables * (size_t)(x->ntables + 1));
            x->tables[x->ntables++] = c->valuestring;   /* "from": ["a", "b"] */
        }
        collect_names(x, c);
    }
}

/* ---- values ----------------------------------------------------------------- */

static int put_string_literal(struct tx *x, const char *s)
{
    buf_putc(x->out, '\'');
    for (; *s; s++) {
        if (*s == '\'') buf_putc(x->out, '\'');
        buf_putc(x->out, *s);
    }
    buf_putc(x->out, '\'');
    return 0;
}

static int put_number(struct tx *x, const cJSON *v)
{
    /* json_parse keeps the literal (exact past 2^53); otherwise the double. */
    char tmp[64];
    const char *lit = v->valuestring;
    if (!lit) {
        snprintf(tmp, sizeof tmp, "%.17g", v->valuedouble);
        lit = tmp;
    }
    for (const char *p = lit; *p; p++)
        if (!strchr("0123456789+-.eE", *p)) return fail(x, "number literal \"%s\" is not a JSON number", lit);
    if (lit[0] == '-') buf_printf(x->out, "(%s)", lit);  /* `a - -1` must not read as a comment */
    else buf_puts(x->out, lit);
    return 0;
}

static int put_scalar(struct tx *x, const cJSON *v, const char *what)
{
    if (cJSON_IsNull(v)) buf_puts(x->out, "NULL");
    else if (cJSON_IsTrue(v)) buf_puts(x->out, "TRUE");
    else if (cJSON_IsFalse(v)) buf_puts(x->out, "FALSE");
    else if (cJSON_IsNumber(v)) return put_number(x, v);
    else if (cJSON_IsString(v)) return put_string_literal(x, v->valuestring);
    else return fail(x, "%s: expected a value", what);
    return 0;
}

/* ---- expressions ---------------------------------------------------------------- */

static int put_expr(struct tx *x, const cJSON *e, const char *what);
static int put_select(struct tx *x, const cJSON *sel, int64_t cap);

static const struct { const char *json, *sql; } CMP[] = {
    {"eq", "="}, {"neq", "<>"}, {"lt", "<"}, {"gt", ">"}, {"lte", "<="}, {"gte", ">="},
    {"like", "LIKE"}, {"ilike", "ILIKE"}};
static const struct { const char *json, *sql; } ARITH[] = {
    {"add", "+"}, {"sub", "-"}, {"mul", "*"}, {"div", "/"}, {"mod", "%"}};
/* Functions passed to PostgreSQL by name; distinct is handled apart. */
static const char *const FUNCS[] = {"count", "max", "min", "sum", "avg", "lower", "upper", "coalesce",
                                    "regexp_replace", "concat", "length", "abs", "round", "nullif"};

static int is_func(const char *s)
{
    for (size_t i = 0; i < sizeof FUNCS / sizeof FUNCS[0]; i++)
        if (!strcmp(FUNCS[i], s)) return 1;
    return !strcmp(s, "distinct");
}

static int is_operator(const char *s)
{
    static const char *const OPS[] = {"and", "or", "not", "in", "is", "is_not"};
    for (size_t i = 0; i < sizeof OPS / sizeof OPS[0]; i++)
        if (!strcmp(OPS[i], s)) return 1;
    for (size_t i = 0; i < sizeof CMP / sizeof CMP[0]; i++)
        if (!strcmp(CMP[i].json, s)) return 1;
    for (size_t i = 0; i < sizeof ARITH / sizeof ARITH[0]; i++)
        if (!strcmp(ARITH[i].json, s)) return 1;
    return is_func(s);
}

static int is_aggregate(const char *s)
{
    return !strcmp(s, "count") || !strcmp(s, "max") || !strcmp(s, "min") || !strcmp(s, "sum") ||
           !strcmp(s, "avg");
}

/* An operand: a string names a column when it names one, else it is a literal. */
static int put_operand(struct tx *x, const cJSON *v, const char *what)
{
    if (cJSON_IsString(v) && names_column(x, v->valuestring, 0)) return put_column(x, v->valuestring, what);
    if (cJSON_IsObject(v)) return put_expr(x, v, what);
    if (cJSON_IsArray(v)) return fail(x, "%s: a list is not a value here", what);
    return put_scalar(x, v, what);
}

static int put_function(struct tx *x, const char *name, const cJSON *args, const char *what)
{
    if (!strcmp(name, "distinct"))
        return fail(x, "%s: distinct as a function only as the first data item or inside an aggregate", what);
    if (!is_func(name)) return fail(x, "%s: unsupported function \"%s\"", what, name);
    buf_printf(x->out, "%s(", name);
    const cJSON *one = args;
    if (cJSON_IsArray(args) && cJSON_GetArraySize(args) == 1) one = args->child;
    if (cJSON_IsString(one) && !strcmp(one->valuestring, "*")) {
        if (strcmp(name, "count")) return fail(x, "%s: \"*\" only in count", what);
        buf_puts(x->out, "*)");
        return 0;
    }
    const cJSON *fn = cJSON_IsObject(one) ? cJSON_GetObjectItemCaseSensitive(one, "function") : NULL;
    const cJSON *own = cJSON_IsObject(one) ? cJSON_GetObjectItemCaseSensitive(one, "distinct") : NULL;
    if ((cJSON_IsString(fn) && !strcmp(fn->valuestring, "distinct")) || own) {
        if (!is_aggregate(name)) return fail(x, "%s: distinct inside %s (aggregates only)", what, name);
        buf_puts(x->out, "DISTINCT ");
        one = own ? own : cJSON_GetObjectItemCaseSensitive(one, "args");
        args = one;
        if (cJSON_IsArray(one) && cJSON_GetArraySize(one) == 1) one = one->child;
    }
    if (!args) return fail(x, "%s: %s without args", what, name);
    if (cJSON_IsArray(args) && one == args) {
        int i = 0;
        for (const cJSON *a = args->child; a; a = a->next, i++) {
            if (i) buf_puts(x->out, ", ");
            if (put_operand(x, a, what) != 0) return -1;
        }
    } else if (put_operand(x, one, what) != 0) {
        return -1;
    }
    buf_putc(x->out, ')');
    return 0;
}

/* A list of operands for an operator: [a, b, ...]. */
static int two_args(struct tx *x, const cJSON *v, const char *op, const cJSON **a, const cJSON **b)
{
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2) return fail(x, "%s: needs [a, b]", op);
    *a = v->child;
    *b = v->child->next;
    return 0;
}

static int put_in(struct tx *x, const cJSON *v)
{
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) < 2) return fail(x, "in: needs [column, values]");
    buf_putc(x->out, '(');
    if (put_operand(x, v->child, "in") != 0) return -1;
    buf_puts(x->out, " IN (");
    const cJSON *rest = v->child->next;
    if (!rest->next && cJSON_IsObject(rest) && cJSON_GetObjectItemCaseSensitive(rest, "select")) {
        if (put_select(x, cJSON_GetObjectItemCaseSensitive(rest, "select"), 0) != 0) return -1;
    } else if (!rest->next && cJSON_IsObject(rest) && cJSON_GetObjectItemCaseSensitive(rest, "values")) {
        const cJSON *vals = cJSON_GetObjectItemCaseSensitive(rest, "values");
        if (!cJSON_IsArray(vals) || !vals->child) return fail(x, "in: values must be a non-empty list of rows");
        buf_puts(x->out, "VALUES ");
        for (const cJSON *r = vals->child; r; r = r->next) {
            if (!cJSON_IsArray(r) || !r->child) return fail(x, "in: each of values is a row [v, ...]");
            buf_puts(x->out, r == vals->child ? "(" : ", (");
            for (const cJSON *c = r->child; c; c = c->next) {
                if (c != r->child) buf_puts(x->out, ", ");
                if (put_operand(x, c, "in") != 0) return -1;
            }
            buf_putc(x->out, ')');
        }
    } else {
        const cJSON *list = rest->next ? rest : cJSON_IsArray(rest) ? rest->child : rest;
        if (!list) return fail(x, "in: an empty list of values");
        for (const cJSON *c = list; c; c = c->next) {
            if (c != list) buf_puts(x->out, ", ");
            if (put_operand(x, c, "in") != 0) return -1;
        }
    }
    buf_puts(x->out, "))");
    return 0;
}

static int put_logic(struct tx *x, const char *op, const cJSON *v)
{
    const char *sql = !strcmp(op, "and") ? " AND " : " OR ";
    if (cJSON_IsObject(v) || cJSON_IsString(v)) return put_operand(x, v, op);
    if (!cJSON_IsArray(v) || !v->child) return fail(x, "%s: needs a non-empty list", op);
    buf_putc(x->out, '(');
    for (const cJSON *c = v->child; c; c = c->next) {
        if (c != v->child) buf_puts(x->out, sql);
        if (put_operand(x, c, op) != 0) return -1;
    }
    buf_putc(x->out, ')');
    return 0;
}

static int put_op(struct tx *x, const char *op, const cJSON *v)
{
    const cJSON *a = NULL, *b = NULL;
    if (!strcmp(op, "and") || !strcmp(op, "or")) return put_logic(x, op, v);
    if (!strcmp(op, "not")) {
        if (cJSON_IsArray(v)) {
            if (cJSON_GetArraySize(v) != 1) return fail(x, "not: needs one expression");
            v = v->child;
        }
        buf_puts(x->out, "(NOT ");
        if (put_operand(x, v, "not") != 0) return -1;
        buf_putc(x->out, ')');
        return 0;
    }
    if (!strcmp(op, "in")) return put_in(x, v);
    if (!strcmp(op, "is") || !strcmp(op, "is_not")) {
        if (two_args(x, v, op, &a, &b) != 0) return -1;
        if (!cJSON_IsNull(b) && !cJSON_IsBool(b)) return fail(x, "%s: the right side must be null, true or false", op);
        buf_putc(x->out, '(');
        if (put_operand(x, a, op) != 0) return -1;
        buf_printf(x->out, " IS %s", !strcmp(op, "is") ? "" : "NOT ");
        put_scalar(x, b, op);
        buf_putc(x->out, ')');
        return 0;
    }
    for (size_t i = 0; i < sizeof CMP / sizeof CMP[0]; i++) {
        if (strcmp(op, CMP[i].json)) continue;
        if (two_args(x, v, op, &a, &b) != 0) return -1;
        buf_putc(x->out, '(');
        if (put_operand(x, a, op) != 0) return -1;
        buf_printf(x->out, " %s ", CMP[i].sql);
        if (put_operand(x, b, op) != 0) return -1;
        buf_putc(x->out, ')');
        return 0;
    }
    for (size_t i = 0; i < sizeof ARITH / sizeof ARITH[0]; i++) {
        if (strcmp(op, ARITH[i].json)) continue;
        if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) < 2) return fail(x, "%s: needs [a, b, ...]", op);
        buf_putc(x->out, '(');
        for (const cJSON *c = v->child; c; c = c->next) {
            if (c != v->child) buf_printf(x->out, " %s ", ARITH[i].sql);
            if (put_operand(x, c, op) != 0) return -1;
        }
        buf_putc(x->out, ')');
        return 0;
    }
    if (is_func(op)) return put_function(x, op, v, op);
    return fail(x, "unsupported operator \"%s\"", op);
}

/* An object: a function, a subquery, an operator or {"alias":"column"}. */
static int put_expr(struct tx *x, const cJSON *e, const char *what)
{
    if (++x->depth > MAX_DEPTH) return fail(x, "%s: nested deeper than %d", what, MAX_DEPTH);
    int rc;
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(e, "function");
    const cJSON *sel = cJSON_GetObjectItemCaseSensitive(e, "select");
    const cJSON *key = NULL, *distinct = NULL;
    int nkeys = 0;
    for (const cJSON *c = e->child; c; c = c->next) {
        if (!strcmp(c->string, "as")) continue;
        /* {"count": "x", "distinct": true}: count(DISTINCT x), as the agent reads it */
        if (!strcmp(c->string, "distinct") && cJSON_IsTrue(c) && !fn) { distinct = c; continue; }
        key = c;
        nkeys++;
    }
    if (distinct && nkeys == 1 && is_aggregate(key->string)) {
        cJSON *wrap = cJSON_CreateObject();
        cJSON_AddItemReferenceToObject(wrap, "distinct", (cJSON *)key);
        rc = put_function(x, key->string, wrap, what);
        cJSON_Delete(wrap);
    } else if (distinct) {
        rc = fail(x, "%s: \"distinct\": true goes with one aggregate key", what);
    } else if (fn) {
        if (!cJSON_IsString(fn)) rc = fail(x, "%s: function must be a name", what);
        else rc = put_function(x, fn->valuestring, cJSON_GetObjectItemCaseSensitive(e, "args"), what);
    } else if (sel && nkeys == 1) {
        buf_putc(x->out, '(');
        rc = put_select(x, sel, 0);
        buf_putc(x->out, ')');
    } else if (nkeys != 1) {
        rc = fail(x, "%s: an expression object has one key (besides \"as\"), not %d", what, nkeys);
    } else if (cJSON_IsString(key) && !is_operator(key->string) && is_ident(key->string, strlen(key->string))) {
        /* {"alias":"column"} */
        rc = put_ident(x, key->string, what);
        if (!rc) {
            buf_putc(x->out, '.');
            rc = !strcmp(key->valuestring, "*") ? (buf_putc(x->out, '*'), 0) : put_ident(x, key->valuestring, what);
        }
    } else {
        rc = put_op(x, key->string, key);
    }
    x->depth--;
    return rc;
}

/* ---- select ------------------------------------------------------------------- */

static int put_data(struct tx *x, const cJSON *data)
{
    const cJSON *first = cJSON_IsArray(data) ? data->child : data;
    if (!first) return fail(x, "data: empty");
    for (const cJSON *d = first; d; d = cJSON_IsArray(data) ? d->next : NULL) {
        if (d != first) buf_puts(x->out, ", ");
        if (cJSON_IsString(d)) {
            if (!strcmp(d->valuestring, "*")) buf_putc(x->out, '*');
            else if (put_column(x, d->valuestring, "data") != 0) return -1;
            continue;
        }
        if (!cJSON_IsObject(d)) {
            if (put_scalar(x, d, "data") != 0) return -1;
            continue;
        }
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(d, "function");
        const cJSON *own = cJSON_GetObjectItemCaseSensitive(d, "distinct");
        if (d == first && ((cJSON_IsString(fn) && !strcmp(fn->valuestring, "distinct")) || (own && !cJSON_IsBool(own)))) {
            /* SELECT DISTINCT a, b: distinct written as the first item's function */
            const cJSON *args = own ? own : cJSON_GetObjectItemCaseSensitive(d, "args");
            buf_puts(x->out, "DISTINCT ");
            if (cJSON_IsArray(args)) {
                for (const cJSON *a = args->child; a; a = a->next) {
                    if (a != args->child) buf_puts(x->out, ", ");
                    if (put_operand(x, a, "data distinct") != 0) return -1;
                }
            } else if (put_operand(x, args, "data distinct") != 0) {
                return -1;
            }
        } else if (put_expr(x, d, "data") != 0) {
            return -1;
        }
        const cJSON *as = cJSON_GetObjectItemCaseSensitive(d, "as");
        if (as) {
            if (!cJSON_IsString(as)) return fail(x, "data: as must be a name");
            buf_puts(x->out, " AS ");
            if (put_ident(x, as->valuestring, "data as") != 0) return -1;
        }
    }
    return 0;
}

/* One from item without a join: "t", {"table","as"}, {"select",...,"as"}. */
static int put_source(struct tx *x, const cJSON *f, const char *what)
{
    if (cJSON_IsString(f)) return put_ident(x, f->valuestring, what);
    if (!cJSON_IsObject(f)) return fail(x, "%s: a table name or object", what);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(f, "table");
    const cJSON *sel = cJSON_GetObjectItemCaseSensitive(f, "select");
    const cJSON *join = cJSON_GetObjectItemCaseSensitive(f, "join");
    const cJSON *as = cJSON_GetObjectItemCaseSensitive(f, "as");
    if (join && !t && !sel) t = join;
    if (cJSON_IsString(t)) {
        if (put_ident(x, t->valuestring, what) != 0) return -1;
    } else if (cJSON_IsObject(t) && cJSON_GetObjectItemCaseSensitive(t, "select")) {
        sel = cJSON_GetObjectItemCaseSensitive(t, "select");
    } else if (!sel) {
        return fail(x, "%s: needs \"table\" or \"select\"", what);
    }
    if (sel && !cJSON_IsString(t)) {
        buf_putc(x->out, '(');
        if (put_select(x, sel, 0) != 0) return -1;
        buf_putc(x->out, ')');
        /* PostgreSQL 15 wants an alias on a subquery in FROM; 16 does not. */
        if (!as) buf_puts(x->out, " AS \"subquery\"");
    }
    if (as) {
        if (!cJSON_IsString(as)) return fail(x, "%s: as must be a name", what);
        buf_puts(x->out, " AS ");
        return put_ident(x, as->valuestring, what);
    }
    return 0;
}

static int put_from(struct tx *x, const cJSON *from)
{
    if (!cJSON_IsArray(from)) return put_source(x, from, "from");
    if (!from->child) return fail(x, "from: empty list");
    for (const cJSON *f = from->child; f; f = f->next) {
        const cJSON *join = cJSON_IsObject(f) ? cJSON_GetObjectItemCaseSensitive(f, "join") : NULL;
        if (f == from->child || !join) {
            if (f != from->child) buf_puts(x->out, ", ");
            if (put_source(x, f, "from") != 0) return -1;
            continue;
        }
        const cJSON *jt = cJSON_GetObjectItemCaseSensitive(f, "join_type");
        if (!jt) jt = cJSON_GetObjectItemCaseSensitive(f, "type");
        const char *type = cJSON_IsString(jt) ? jt->valuestring : "inner";
        if (jt && !cJSON_IsString(jt)) return fail(x, "from: join_type must be a word");
        static const struct { const char *json, *sql; } JT[] = {
            {"inner", "INNER JOIN"}, {"left", "LEFT JOIN"}, {"right", "RIGHT JOIN"},
            {"full", "FULL JOIN"}, {"cross", "CROSS JOIN"}};
        const char *sql = NULL;
        for (size_t i = 0; i < sizeof JT / sizeof JT[0]; i++)
            if (!strcmp(JT[i].json, type)) sql = JT[i].sql;
        if (!sql) return fail(x, "from: unsupported join_type \"%s\"", type);
        buf_printf(x->out, " %s ", sql);
        if (put_source(x, f, "join") != 0) return -1;
        const cJSON *on = cJSON_GetObjectItemCaseSensitive(f, "on");
        if (!strcmp(type, "cross")) {
            if (on) return fail(x, "from: a cross join takes no \"on\"");
            continue;
        }
        if (!on) return fail(x, "from: %s join without \"on\"", type);
        buf_puts(x->out, " ON ");
        if (put_operand(x, on, "on") != 0) return -1;
    }
    return 0;
}

static int get_count(struct tx *x, const cJSON *v, const char *what, int64_t *out)
{
    /* The literal, not the double: a limit is an integer or refused. */
    const char *lit = cJSON_IsNumber(v) ? v->valuestring : NULL;
    char *end = NULL;
    long long n = lit ? strtoll(lit, &end, 10) : (cJSON_IsNumber(v) ? (long long)v->valuedouble : -1);
    if (!cJSON_IsNumber(v) || (lit && *end) || (!lit && (double)n != v->valuedouble) || n < 0)
        return fail(x, "%s must be a non-negative integer", what);
    *out = n;
    return 0;
}

static int put_list(struct tx *x, const cJSON *v, const char *what, int names_only)
{
    const cJSON *first = cJSON_IsArray(v) ? v->child : v;
    if (!first) return fail(x, "%s: empty", what);
    for (const cJSON *c = first; c; c = cJSON_IsArray(v) ? c->next : NULL) {
        if (c != first) buf_puts(x->out, ", ");
        if (cJSON_IsString(c) && strcmp(what, "order_by") == 0) {
            /* "col desc" / "col asc": the agent takes these, so the oracle must
             * answer them too (PostgreSQL's NULL placement comes with them). */
            const char *s = c->valuestring, *sp = strrchr(s, ' ');
            const char *dir = !sp ? NULL : strcasecmp(sp + 1, "desc") == 0 ? " DESC"
                                         : strcasecmp(sp + 1, "asc") == 0  ? " ASC" : NULL;
            char name[256];
            size_t n = dir ? (size_t)(sp - s) : strlen(s);
            if (n >= sizeof name) return fail(x, "%s: name too long", what);
            memcpy(name, s, n);
            name[n] = '\0';
            if (put_column(x, name, what) != 0) return -1;
            if (dir) buf_puts(x->out, dir);
        } else if (cJSON_IsString(c)) {
            if (put_column(x, c->valuestring, what) != 0) return -1;
        } else if (names_only) {
            return fail(x, "%s: only column names", what);
        } else if (put_operand(x, c, what) != 0) {
            return -1;
        }
    }
    return 0;
}

static int put_select(struct tx *x, const cJSON *p, int64_t cap)
{
    static const char *const KEYS[] = {"data", "from", "where", "group_by", "having", "order_by",
                                       "limit", "offset", "distinct"};
    if (!cJSON_IsObject(p)) return fail(x, "select: params must be an object");
    if (++x->depth > MAX_DEPTH) return fail(x, "select: nested deeper than %d", MAX_DEPTH);
    for (const cJSON *c = p->child; c; c = c->next) {
        size_t i = 0;
        while (i < sizeof KEYS / sizeof KEYS[0] && strcmp(KEYS[i], c->string)) i++;
        if (i == sizeof KEYS / sizeof KEYS[0]) return fail(x, "select: unsupported key \"%s\"", c->string);
    }
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(p, "data");
    const cJSON *from = cJSON_GetObjectItemCaseSensitive(p, "from");
    const cJSON *v;
    if (!data) return fail(x, "select: data is missing");
    buf_puts(x->out, "SELECT ");
    v = cJSON_GetObjectItemCaseSensitive(p, "distinct");
    if (v && !cJSON_IsBool(v)) return fail(x, "distinct must be true or false");
    if (cJSON_IsTrue(v)) buf_puts(x->out, "DISTINCT ");
    if (put_data(x, data) != 0) return -1;
    if (from) {
        buf_puts(x->out, " FROM ");
        if (put_from(x, from) != 0) return -1;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(p, "where"))) {
        buf_puts(x->out, " WHERE ");
        if (put_operand(x, v, "where") != 0) return -1;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(p, "group_by"))) {
        buf_puts(x->out, " GROUP BY ");
        if (put_list(x, v, "group_by", 0) != 0) return -1;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(p, "having"))) {
        buf_puts(x->out, " HAVING ");
        if (put_operand(x, v, "having") != 0) return -1;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(p, "order_by"))) {
        buf_puts(x->out, " ORDER BY ");
        if (put_list(x, v, "order_by", 1) != 0) return -1;
    }
    int64_t limit = -1, offset = 0;
    if ((v = cJSON_GetObjectItemCaseSensitive(p, "limit")) && get_count(x, v, "limit", &limit) != 0) return -1;
    if ((v = cJSON_GetObjectItemCaseSensitive(p, "offset")) && get_count(x, v, "offset", &offset) != 0) return -1;
    if (cap > 0 && (limit < 0 || limit > cap)) limit = cap;   /* the server's page cap */
    if (limit >= 0) buf_printf(x->out, " LIMIT %lld", (long long)limit);
    if (offset > 0) buf_printf(x->out, " OFFSET %lld", (long long)offset);
    x->depth--;
    return 0;
}

/* ---- insert / update / delete ---------------------------------------------------- */

static int check_keys(struct tx *x, const cJSON *p, const char *method, const char *const *keys, size_t n)
{
    if (!cJSON_IsObject(p)) return fail(x, "%s: params must be an object", method);
    for (const cJSON *c = p->child; c; c = c->next) {
        size_t i = 0;
        while (i < n && strcmp(keys[i], c->string)) i++;
        if (i == n) return fail(x, "%s: unsupported key \"%s\"", method, c->string);
    }
    return 0;
}

static int put_table(struct tx *x, const cJSON *t, const char *what)
{
    if (!cJSON_IsString(t)) return fail(x, "%s: needs a table name", what);
    return put_ident(x, t->valuestring, what);
}

/* A value written into a column: a literal (a string is never a column here),
 * or an expression object ({"add":["balance",1]}). */
static int put_value(struct tx *x, const cJSON *v, const char *what)
{
    if (cJSON_IsObject(v)) return put_expr(x, v, what);
    return put_scalar(x, v, what);
}

static int put_returning(struct tx *x, const cJSON *p)
{
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(p, "returning");
    if (!r) return 0;
    buf_puts(x->out, " RETURNING ");
    if (cJSON_IsString(r) && !strcmp(r->valuestring, "*")) { buf_putc(x->out, '*'); return 0; }
    return put_list(x, r, "returning", 1);
}

static int put_insert(struct tx *x, const cJSON *p)
{
    static const char *const KEYS[] = {"into", "columns", "values", "returning"};
    if (check_keys(x, p, "insert", KEYS, 4) != 0) return -1;
    const cJSON *cols = cJSON_GetObjectItemCaseSensitive(p, "columns");
    const cJSON *vals = cJSON_GetObjectItemCaseSensitive(p, "values");
    buf_puts(x->out, "INSERT INTO ");
    if (put_table(x, cJSON_GetObjectItemCaseSensitive(p, "into"), "insert into") != 0) return -1;
    if (!cJSON_IsArray(cols) || !cols->child) return fail(x, "insert: columns must be a non-empty list");
    if (!cJSON_IsArray(vals) || !vals->child) return fail(x, "insert: values must be a non-empty list of rows");
    buf_puts(x->out, " (");
    if (put_list(x, cols, "insert columns", 1) != 0) return -1;
    buf_puts(x->out, ") VALUES ");
    for (const cJSON *r = vals->child; r; r = r->next) {
        if (!cJSON_IsArray(r) || cJSON_GetArraySize(r) != cJSON_GetArraySize(cols))
            return fail(x, "insert: each row of values has one value per column");
        buf_puts(x->out, r == vals->child ? "(" : ", (");
        for (const cJSON *v = r->child; v; v = v->next) {
            if (v != r->child) buf_puts(x->out, ", ");
            if (put_value(x, v, "insert values") != 0) return -1;
        }
        buf_putc(x->out, ')');
    }
    return put_returning(x, p);
}

static int put_update(struct tx *x, const cJSON *p)
{
    static const char *const KEYS[] = {"table", "set", "where", "returning"};
    if (check_keys(x, p, "update", KEYS, 4) != 0) return -1;
    const cJSON *set = cJSON_GetObjectItemCaseSensitive(p, "set");
    const cJSON *where = cJSON_GetObjectItemCaseSensitive(p, "where");
    buf_puts(x->out, "UPDATE ");
    if (put_table(x, cJSON_GetObjectItemCaseSensitive(p, "table"), "update table") != 0) return -1;
    if (!cJSON_IsObject(set) || !set->child) return fail(x, "update: set must be a non-empty object");
    buf_puts(x->out, " SET ");
    for (const cJSON *c = set->child; c; c = c->next) {
        if (c != set->child) buf_puts(x->out, ", ");
        if (put_ident(x, c->string, "update set") != 0) return -1;
        buf_puts(x->out, " = ");
        if (put_value(x, c, "update set") != 0) return -1;
    }
    if (where) {
        buf_puts(x->out, " WHERE ");
        if (put_operand(x, where, "where") != 0) return -1;
    }
    return put_returning(x, p);
}

static int put_delete(struct tx *x, const cJSON *p)
{
    static const char *const KEYS[] = {"from", "where", "returning"};
    if (check_keys(x, p, "delete", KEYS, 3) != 0) return -1;
    const cJSON *where = cJSON_GetObjectItemCaseSensitive(p, "where");
    buf_puts(x->out, "DELETE FROM ");
    if (put_table(x, cJSON_GetObjectItemCaseSensitive(p, "from"), "delete from") != 0) return -1;
    if (where) {
        buf_puts(x->out, " WHERE ");
        if (put_operand(x, where, "where") != 0) return -1;
    }
    return put_returning(x, p);
}

int ref_translate_write(const struct ref_catalog *cat, const char *method, const cJSON *params,
                        struct buf *out, char *err, size_t errlen)
{
    struct tx x = {.cat = cat, .out = out, .err = err, .errlen = errlen};
    int rc;
    collect_names(&x, params);
    if (!strcmp(method, "insert")) rc = put_insert(&x, params);
    else if (!strcmp(method, "update")) rc = put_update(&x, params);
    else if (!strcmp(method, "delete")) rc = put_delete(&x, params);
    else rc = fail(&x, "unsupported method \"%s\"", method);
    free(x.as_names);
    free(x.tables);
    return rc;
}

int ref_translate_select(const struct ref_catalog *cat, const cJSON *params, int64_t page_cap,
                         struct buf *out, char *err, size_t errlen)
{
    struct tx x = {.cat = cat, .out = out, .err = err, .errlen = errlen};
    collect_names(&x, params);
    int rc = put_select(&x, params, page_cap);
    free(x.as_names);
    free(x.tables);
    return rc;
}
