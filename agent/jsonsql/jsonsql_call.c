/* jsonsql_call.c — function calls in JSONSQL: the whitelist, both ways of
 * writing a call ({"function":F,"args":A} and {F:A}), their arguments, and the
 * type each call yields as PostgreSQL types it (so that the row writer renders
 * max of a boolean as true/false and avg as a float). A call whose answer
 * SQLite would give differently from PostgreSQL is refused here, naming it.
 * Contract: jsonsql.h; shared state: jsonsql_compile.h. */
#include "agent/jsonsql/jsonsql_compile.h"
#include "agent/base/buf.h"

#include <string.h>
#include <strings.h>

enum { F_AGG = 1, F_STAR = 2, F_CONCAT = 4, F_NUM = 8 };

/* The result type: that of the first argument, the common type of all, or fixed. */
enum rtype { RT_FIRST, RT_COMMON, RT_INT, RT_REAL, RT_TEXT };

struct fndef {
    const char *name;
    const char *sql;
    int min, max;               /* argument count; max -1: unbounded */
    int flags;
    enum rtype rt;
};

static const struct fndef FNS[] = {
    {"count", "COUNT", 1, 1, F_AGG | F_STAR, RT_INT},
    {"distinct", NULL, 1, -1, 0, RT_FIRST},
    {"max", "MAX", 1, 1, F_AGG, RT_FIRST},
    {"min", "MIN", 1, 1, F_AGG, RT_FIRST},
    {"sum", "SUM", 1, 1, F_AGG | F_NUM, RT_FIRST},
    {"avg", "AVG", 1, 1, F_AGG | F_NUM, RT_REAL},
    {"regexp_replace", "regexp_replace", 3, 4, 0, RT_TEXT},
    {"lower", "LOWER", 1, 1, 0, RT_TEXT},
    {"upper", "UPPER", 1, 1, 0, RT_TEXT},
    {"coalesce", "COALESCE", 1, -1, 0, RT_COMMON},
    {"nullif", "NULLIF", 2, 2, 0, RT_FIRST},
    {"concat", "", 1, -1, F_CONCAT, RT_TEXT},
    {"length", "LENGTH", 1, 1, 0, RT_INT},
    {"abs", "ABS", 1, 1, F_NUM, RT_FIRST},
    {"round", "ROUND", 1, 2, F_NUM, RT_REAL},   /* round(bigint) is round(double precision) there */
};

static const struct fndef *fn_lookup(const char *name)
{
    for (size_t i = 0; i < sizeof FNS / sizeof FNS[0]; i++)
        if (strcasecmp(FNS[i].name, name) == 0) return &FNS[i];
    return NULL;
}

int jsql_fncall_is(const struct fncall *fc, const char *name) { return strcasecmp(fc->name, name) == 0; }

int jsql_fncall(struct ctx *c, const cJSON *n, const struct scope *sc, struct fncall *fc)
{
    char q[QBUF];
    memset(fc, 0, sizeof *fc);
    if (!cJSON_IsObject(n)) return 0;
    if (cJSON_GetObjectItemCaseSensitive(n, "function")) {
        for (const cJSON *k = n->child; k; k = k->next) {
            const cJSON **slot = strcmp(k->string, "function") == 0 ? &fc->fn
                               : strcmp(k->string, "args") == 0   ? &fc->args
                               : strcmp(k->string, "as") == 0     ? &fc->as
                                                                  : NULL;
            if (!slot) return jsql_fail(c, "unexpected key %s in a function", jsql_uqs(q, sizeof q, k->string));
            if (*slot) return jsql_fail(c, "duplicate key %s", jsql_uqs(q, sizeof q, k->string));
            *slot = k;
        }
        fc->name = cJSON_IsString(fc->fn) ? fc->fn->valuestring : "";
        return 1;
    }
    /* {F: args[, "as": N][, "distinct": true]}: "distinct" with true/false is
     * the modifier, with anything else the function distinct. */
    const cJSON *fn = NULL, *as = NULL, *dist = NULL;
    for (const cJSON *k = n->child; k; k = k->next) {
        if (strcmp(k->string, "as") == 0 && !as) as = k;
        else if (strcmp(k->string, "distinct") == 0 && cJSON_IsBool(k) && !dist) dist = k;
        else if (!fn && fn_lookup(k->string)) fn = k;
        else return 0;
    }
    if (!fn) return 0;
    if (!as && !dist && cJSON_IsString(fn) && jsql_scope_alias(sc, fn->string, strlen(fn->string)) >= 0)
        return 0;   /* {"alias":"column"} */
    fc->fn = fn;
    fc->name = fn->string;
    fc->args = fn;
    fc->as = as;
    fc->distinct = dist;
    fc->own = 1;
    return 1;
}

/* What the arguments are, for the result type. */
struct argtypes {
    enum jsonsql_type first, common;
    int first_null, ncommon;
    int boolnum;                /* a boolean among numbers: PostgreSQL cannot match them */
};

static void arg_seen(struct argtypes *t, const struct colref *r, int i)
{
    if (i == 0) {
        t->first = r->type;
        t->first_null = r->null_lit;
    }
    if (r->null_lit) return;   /* null takes the type of the others */
    if (!t->ncommon++) {
        t->common = r->type;
    } else if (t->common != r->type) {
        int num = (t->common == JSQL_INT || t->common == JSQL_REAL) && (r->type == JSQL_INT || r->type == JSQL_REAL);
        if ((t->common == JSQL_BOOL && (r->type == JSQL_INT || r->type == JSQL_REAL)) ||
            (r->type == JSQL_BOOL && (t->common == JSQL_INT || t->common == JSQL_REAL)))
            t->boolnum = 1;
        t->common = num ? JSQL_REAL : JSQL_ANY;
    }
}

static const char *type_word(enum jsonsql_type t)
{
    switch (t) {
    case JSQL_INT: return "an integer";
    case JSQL_REAL: return "a real (double precision)";
    case JSQL_TEXT: return "a text";
    case JSQL_BOOL: return "a boolean";
    case JSQL_JSON: return "a JSON";
    default: return "an untyped";
    }
}

/* The only argument of an aggregate, {"function":"distinct","args":X} or
 * {"distinct":X}: DISTINCT X. */
static int compile_distinct_arg(struct ctx *c, const struct fndef *f, const struct fncall *d, int total,
                                const struct scope *sc, struct buf *out, struct colref *r)
{
    if (!(f->flags & F_AGG) || total != 1)
        return jsql_fail(c, "distinct is only valid as a data item or as the only argument of an "
                            "aggregate (count, sum, avg, min, max)");
    if (d->as || d->distinct) return jsql_fail(c, "unexpected key %s in distinct", d->as ? "\"as\"" : "\"distinct\"");
    if (!d->args) return jsql_fail(c, "distinct needs \"args\"");
    jsql_push_key(c, d->own ? "distinct" : "args");
    const cJSON *a = d->args;
    if (cJSON_IsArray(a)) {
        if (cJSON_GetArraySize(a) != 1) return jsql_fail(c, "distinct inside %s takes exactly 1 argument", f->name);
        a = a->child;
        jsql_push_idx(c, 0);
    }
    buf_puts(out, "DISTINCT ");
    if (jsql_operand(c, a, sc, out, LEFT, r)) return -1;
    if (a != d->args) jsql_pop(c);
    jsql_pop(c);
    return 0;
}

static int arity_error(struct ctx *c, const struct fndef *f, int n)
{
    if (f->max < 0)
        return jsql_fail(c, "%s takes at least %d argument%s, got %d", f->name, f->min, f->min == 1 ? "" : "s", n);
    if (f->min == f->max)
        return jsql_fail(c, "%s takes %d argument%s, got %d", f->name, f->min, f->min == 1 ? "" : "s", n);
    return jsql_fail(c, "%s takes %d to %d arguments, got %d", f->name, f->min, f->max, n);
}

int jsql_is_star(const cJSON *n) { return cJSON_IsString(n) && strcmp(n->valuestring, "*") == 0; }

static int star_arg(struct ctx *c, const struct fndef *f, struct buf *out)
{
    if (!(f->flags & F_STAR)) return jsql_fail(c, "\"*\" is only valid as the argument of count");
    buf_putc(out, '*');
    return 0;
}

/* One piece of concat(): PostgreSQL's concat skips NULLs and writes a value
 * by its type's text form; SQLite's || gives NULL and has no concat before
 * 3.44. Booleans are 't'/'f' there; a real's or a JSON value's text differs
 * (10.0 vs 10, key spacing), so those are refused. */
static int concat_piece(struct ctx *c, const struct colref *r, const struct buf *a, struct buf *out)
{
    if (r->type == JSQL_REAL || r->type == JSQL_JSON)
        return jsql_fail(c, "concat of %s value is not supported: its text differs from PostgreSQL's",
                         type_word(r->type));
    if (r->type == JSQL_BOOL) {
        buf_puts(out, "COALESCE(substr('ft', (");
        buf_append(out, a->p, a->len);
        buf_puts(out, ") + 1, 1), '')");
    } else {
        buf_puts(out, "COALESCE(CAST(");
        buf_append(out, a->p ? a->p : "", a->len);
        buf_puts(out, " AS TEXT), '')");
    }
    return 0;
}

/* One argument at position i of total (frames pushed by the caller). */
static int compile_arg(struct ctx *c, const struct fndef *f, const cJSON *a, int i, int total,
                       const struct scope *sc, struct buf *out, struct argtypes *t)
{
    struct colref r = {.src = -1, .type = JSQL_ANY};
    struct fncall d;
    int call = jsql_fncall(c, a, sc, &d);
    if (call < 0) return -1;
    if (call && jsql_fncall_is(&d, "distinct")) {
        if (compile_distinct_arg(c, f, &d, total, sc, out, &r)) return -1;
    } else if (f->flags & F_CONCAT) {
        /* Every argument is a column when it names one, else a value. */
        struct buf p = {0};
        int rc = jsql_operand(c, a, sc, &p, RIGHT, &r);
        if (!rc) rc = concat_piece(c, &r, &p, out);
        buf_free(&p);
        if (rc) return -1;
    } else {
        if (jsql_is_star(a)) return jsql_fail(c, "\"*\" is only valid as the only argument of count");
        if (jsql_operand(c, a, sc, out, i == 0 ? LEFT : RIGHT, &r)) return -1;
    }
    arg_seen(t, &r, i);
    return 0;
}

/* The args of f, frame of args pushed by the caller. */
static int compile_args(struct ctx *c, const struct fndef *f, const cJSON *args, const struct scope *sc,
                        struct buf *out, int *nargs, struct argtypes *t)
{
    *nargs = 1;
    if (jsql_is_star(args) || (cJSON_IsArray(args) && cJSON_GetArraySize(args) == 1 && jsql_is_star(args->child))) {
        t->first = t->common = JSQL_INT;
        return star_arg(c, f, out);
    }
    if (cJSON_IsString(args) && !(f->flags & F_CONCAT)) {
        struct colref r = {0};
        if (jsql_column_str(c, sc, args->valuestring, out, &r)) return -1;
        arg_seen(t, &r, 0);
        return 0;
    }
    if (!cJSON_IsArray(args)) {
        if (!cJSON_IsObject(args) && !(f->flags & F_CONCAT))
            return jsql_fail(c, "expected a column, a list of arguments or a function");
        return compile_arg(c, f, args, 0, 1, sc, out, t);
    }
    int total = cJSON_GetArraySize(args), i = 0;
    *nargs = total;
    for (const cJSON *a = args->child; a; a = a->next, i++) {
        jsql_push_idx(c, i);
        if (i) buf_puts(out, (f->flags & F_CONCAT) ? " || " : ", ");
        if (compile_arg(c, f, a, i, total, sc, out, t)) return -1;
        jsql_pop(c);
    }
    return 0;
}

/* The result type, or a refusal where PostgreSQL has no such function (sum
 * of a boolean). A cached real may be a numeric on the portal, so round(x, n)
 * of one is answered (PostgreSQL has round(numeric, n) only): a float. */
static int result_type(struct ctx *c, const struct fndef *f, const struct argtypes *t, enum jsonsql_type *ty)
{
    enum jsonsql_type first = t->first_null ? JSQL_ANY : t->first;
    *ty = JSQL_ANY;
    if ((f->flags & F_NUM) && (first == JSQL_BOOL || first == JSQL_TEXT || first == JSQL_JSON))
        return jsql_fail(c, "%s of %s value is not supported (PostgreSQL has no %s for it)", f->name,
                         type_word(first), f->name);
    if (f->rt == RT_COMMON && t->boolnum)
        return jsql_fail(c, "%s of a boolean and a number is not supported (PostgreSQL cannot match their "
                            "types)", f->name);
    switch (f->rt) {
    case RT_FIRST: *ty = first; break;
    case RT_COMMON: *ty = t->ncommon ? t->common : JSQL_ANY; break;
    case RT_INT: *ty = JSQL_INT; break;
    case RT_REAL: *ty = JSQL_REAL; break;
    case RT_TEXT: *ty = JSQL_TEXT; break;
    }
    return 0;
}

int jsql_compile_call(struct ctx *c, const struct fncall *fc, const struct scope *sc, struct buf *out,
                      struct pcol *oc, enum jsonsql_type *ty)
{
    char q[QBUF];
    jsql_push_key(c, fc->own ? fc->name : "function");
    if (!fc->own && !cJSON_IsString(fc->fn)) return jsql_fail(c, "expected a function name");
    const struct fndef *f = fn_lookup(fc->name);
    if (!f) return jsql_fail(c, "unknown function %s", jsql_uqs(q, sizeof q, fc->name));
    if (!f->sql)
        return jsql_fail(c, "distinct is only valid as a data item or as the only argument of an "
                            "aggregate (count, sum, avg, min, max)");
    if (!fc->own) jsql_pop(c);
    /* SQLite (like PostgreSQL) refuses these at prepare time, without a path. */
    if ((f->flags & F_AGG) && c->agg_ban)
        return jsql_fail(c, "%s is an aggregate: not allowed %s", f->name,
                         c->agg_ban == AGG_IN_COND ? "in where or on" : "inside another aggregate");
    if (fc->as && !oc) {
        if (fc->own) jsql_pop(c);
        jsql_push_key(c, "as");
        return jsql_fail(c, "\"as\" is only valid on a data item");
    }
    if (!fc->args) return jsql_fail(c, "%s needs \"args\"", f->name);
    if (cJSON_IsTrue(fc->distinct) && !(f->flags & F_AGG))
        return jsql_fail(c, "\"distinct\": true is only valid on an aggregate (count, sum, avg, min, max)");
    size_t at = out->len;   /* where the SQL name goes: avg may change it once its argument is known */
    buf_puts(out, f->sql);
    buf_putc(out, '(');
    if (cJSON_IsTrue(fc->distinct)) buf_puts(out, "DISTINCT ");
    if (!fc->own) jsql_push_key(c, "args");
    int nargs, ban = c->agg_ban;
    struct argtypes t = {.first = JSQL_ANY, .common = JSQL_ANY};
    if (f->flags & F_AGG) {
        c->agg_ban = AGG_IN_AGG;
        c->nagg++;
    }
    if (compile_args(c, f, fc->args, sc, out, &nargs, &t)) return -1;
    c->agg_ban = ban;
    if (nargs < f->min || (f->max >= 0 && nargs > f->max)) return arity_error(c, f, nargs);
    if (cJSON_IsTrue(fc->distinct) && (nargs != 1 || jsql_is_star(fc->args)))
        return jsql_fail(c, "\"distinct\": true needs exactly one argument, not \"*\"");
    enum jsonsql_type rt = JSQL_ANY;
    if (result_type(c, f, &t, &rt)) return -1;
    int numeric = (f->flags & F_AGG) && (f->flags & F_NUM) && t.first == JSQL_INT && !t.first_null;
    if (numeric) {
        /* avg and sum of integers are PostgreSQL's numeric: exact (jsonsql_fn.c) */
        struct buf tail = {0};
        buf_append(&tail, out->p + at + strlen(f->sql), out->len - at - strlen(f->sql));
        out->len = at;
        buf_puts(out, f->rt == RT_REAL ? "jsonsql_avg" : "jsonsql_sum");
        buf_append(out, tail.p, tail.len);
        buf_free(&tail);
        if (f->rt == RT_REAL) rt = JSQL_ANY;   /* by storage class: integer or float, as chosen */
    }
    jsql_pop(c);
    if (f->min == 1 && f->max < 0 && nargs == 1 && strcmp(f->name, "coalesce") == 0)
        buf_puts(out, ", NULL");   /* PostgreSQL allows coalesce(x); SQLite wants two */
    buf_putc(out, ')');
    if (ty) *ty = rt;
    if (oc) {
        memset(oc, 0, sizeof *oc);
        oc->type = rt;
        if (fc->as) {
            if (jsql_check_alias(c, fc->as)) return -1;
            buf_puts(out, " AS ");
            jsql_quote_ident(out, fc->as->valuestring, strlen(fc->as->valuestring));
            oc->name = fc->as->valuestring;
            oc->len = strlen(fc->as->valuestring);
            oc->alias = 1;
        }
    }
    return 0;
}
