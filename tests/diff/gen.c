/* gen.c — the seeded generator of JSONSQL selects (diff.h: dgen_statement).
 *
 * Statement i of a seed depends on (seed, i) and the samples alone, so a failing
 * statement is reproduced by its number. Every statement with a limit orders by
 * a unique key last (then its order is compared); the few without a limit read
 * small tables. Literals are sample values read from the portal, so predicates
 * match rows. The shapes: plain selects, functions, aggregates, group by and
 * having, distinct, joins, subqueries (in a where, in a from). */
#include "tests/diff/diff.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/json.h"

#define B(t) (1u << (t))
#define NUMERIC (B(DT_INT) | B(DT_REAL))
#define ORDERABLE (B(DT_INT) | B(DT_REAL) | B(DT_TEXT) | B(DT_TS) | B(DT_DATE) | B(DT_BOOL))
#define ANY_TYPE (ORDERABLE | B(DT_JSON))

struct gen {
    struct drng r;
    const struct dsamples *s;
    struct buf *b;
};

static const struct dtab *tab(int t) { return &diff_tables()[t]; }

static void put(struct gen *g, const char *s) { buf_puts(g->b, s); }

static void put_str(struct gen *g, const char *s) { json_write_string(g->b, s, strlen(s)); }

/* A column operand: "name", or {"alias":"name"} inside a join. */
static void put_col(struct gen *g, const char *alias, const char *name)
{
    if (alias) {
        buf_printf(g->b, "{\"%s\":\"%s\"}", alias, name);
    } else {
        put_str(g, name);
    }
}

/* A random column of t whose type is in mask (id excluded unless with_id); -1 none. */
static int pick_col(struct gen *g, int t, unsigned mask, int with_id)
{
    int cand[DIFF_MAX_COLS], n = 0;
    for (int k = with_id ? 0 : 1; k < tab(t)->ncols; k++)
        if (mask & B(tab(t)->cols[k].t)) cand[n++] = k;
    return n ? cand[drng_below(&g->r, n)] : -1;
}

static int pick_lowcard(struct gen *g, int t)
{
    int cand[DIFF_MAX_COLS], n = 0;
    for (int k = 0; k < tab(t)->ncols; k++)
        if (tab(t)->cols[k].lowcard) cand[n++] = k;
    return n ? cand[drng_below(&g->r, n)] : -1;
}

static const struct dsample *sample(struct gen *g, int t, int k)
{
    int n = g->s->n[t][k];
    return n ? &g->s->v[t][k][drng_below(&g->r, n)] : NULL;
}

/* A literal of column k: a sample value, or a typed stand-in when none was read. */
static void put_lit(struct gen *g, int t, int k)
{
    const struct dsample *d = sample(g, t, k);
    if (d) {
        put(g, d->lit);
        return;
    }
    switch (tab(t)->cols[k].t) {
    case DT_INT: put(g, "1"); break;
    case DT_REAL: put(g, "1.5"); break;
    case DT_BOOL: put(g, "true"); break;
    case DT_TS: put(g, "\"2025-06-01 00:00:00\""); break;
    case DT_DATE: put(g, "\"2000-01-01\""); break;
    default: put(g, "\"x\""); break;
    }
}

/* The first n UTF-8 characters of s, as a JSON string with pre/post appended. */
static void put_prefix(struct gen *g, const char *pre, const char *s, int n, const char *post)
{
    size_t i = 0;
    for (int c = 0; s[i] && c < n; c++) {
        i++;
        while ((s[i] & 0xC0) == 0x80) i++;
    }
    struct buf t = {0};
    buf_puts(&t, pre);
    buf_append(&t, s, i);
    buf_puts(&t, post);
    json_write_string(g->b, t.p, t.len);
    buf_free(&t);
}

/* ---- where ------------------------------------------------------------------------------ */

static const char *const CMP[] = {"eq", "neq", "lt", "gt", "lte", "gte"};

static void pred(struct gen *g, int t, const char *alias, int depth);

/* {"op":[column, a sample literal]} */
static void put_cmp(struct gen *g, const char *op, int t, const char *alias, int k)
{
    buf_printf(g->b, "{\"%s\":[", op);
    put_col(g, alias, tab(t)->cols[k].name);
    put(g, ",");
    put_lit(g, t, k);
    put(g, "]}");
}

/* {"in":[column, [n sample literals]]} */
static void put_in_list(struct gen *g, int t, const char *alias, int k, int n)
{
    buf_puts(g->b, "{\"in\":[");
    put_col(g, alias, tab(t)->cols[k].name);
    put(g, ",[");
    for (int i = 0; i < n; i++) {
        if (i) put(g, ",");
        put_lit(g, t, k);
    }
    put(g, "]]}");
}

static void pred_num(struct gen *g, int t, const char *alias, int k)
{
    const char *c = tab(t)->cols[k].name;
    int roll = drng_below(&g->r, 100);
    if (roll < 15) {
        put_in_list(g, t, alias, k, 1 + drng_below(&g->r, 4));
    } else if (roll < 30 && tab(t)->cols[k].t == DT_INT) {   /* arithmetic */
        static const char *const AR[] = {"add", "sub", "mul", "mod"};
        const char *op = AR[drng_below(&g->r, 4)];
        if (strcmp(op, "mod") == 0) {
            int m = 2 + drng_below(&g->r, 8);
            buf_printf(g->b, "{\"eq\":[{\"mod\":[");
            put_col(g, alias, c);
            buf_printf(g->b, ",%d]},%d]}", m, drng_below(&g->r, m));
        } else {
            buf_printf(g->b, "{\"%s\":[{\"%s\":[", CMP[2 + drng_below(&g->r, 4)], op);
            put_col(g, alias, c);
            buf_printf(g->b, ",%d]},", strcmp(op, "mul") == 0 ? 2 : 1 + drng_below(&g->r, 100));
            put_lit(g, t, k);
            put(g, "]}");
        }
    } else if (roll < 36 && tab(t)->cols[k].t == DT_REAL) {
        buf_printf(g->b, "{\"%s\":[{\"div\":[", CMP[2 + drng_below(&g->r, 4)]);
        put_col(g, alias, c);
        put(g, ",2]},");
        put_lit(g, t, k);
        put(g, "]}");
    } else {
        put_cmp(g, CMP[drng_below(&g->r, 6)], t, alias, k);
    }
}

static void pred_text(struct gen *g, int t, const char *alias, int k)
{
    const char *c = tab(t)->cols[k].name;
    const struct dsample *d = sample(g, t, k);
    int roll = drng_below(&g->r, 100);
    if (d && d->str && roll < 25) {
        buf_puts(g->b, "{\"like\":[");
        put_col(g, alias, c);
        put(g, ",");
        put_prefix(g, "", d->str, 1 + drng_below(&g->r, 3), "%");
        put(g, "]}");
    } else if (d && d->str && roll < 45) {
        /* ilike on a middle piece, its ASCII letters upper-cased by the pattern's
         * own case flip: the server must fold case (Cyrillic too). */
        size_t len = strlen(d->str), from = len ? (size_t)drng_below(&g->r, (int)len) : 0;
        while (from && (d->str[from] & 0xC0) == 0x80) from--;
        struct buf p = {0};
        buf_putc(&p, '%');
        int chars = 0;
        for (size_t i = from; d->str[i] && chars < 3; chars++) {
            size_t j = i + 1;
            while ((d->str[j] & 0xC0) == 0x80) j++;
            if (j == i + 1 && d->str[i] >= 'a' && d->str[i] <= 'z')
                buf_putc(&p, (char)(d->str[i] - 32));
            else if (j == i + 2 && (unsigned char)d->str[i] == 0xD0 && (unsigned char)d->str[i + 1] >= 0xB0)
                /* Cyrillic а..п (D0 B0..BF) -> А..П (D0 90..9F) */
                buf_append(&p, (const char[]){d->str[i], (char)(d->str[i + 1] - 0x20)}, 2);
            else
                buf_append(&p, d->str + i, j - i);
            i = j;
        }
        buf_putc(&p, '%');
        buf_puts(g->b, "{\"ilike\":[");
        put_col(g, alias, c);
        put(g, ",");
        json_write_string(g->b, p.p, p.len);
        put(g, "]}");
        buf_free(&p);
    } else if (roll < 55) {
        put_in_list(g, t, alias, k, 2);
    } else {
        /* eq/neq mostly; lt/gt order text, which is a collation's business. */
        put_cmp(g, CMP[drng_pct(&g->r, 75) ? drng_below(&g->r, 2) : 2 + drng_below(&g->r, 4)], t, alias, k);
    }
}

static void pred_time(struct gen *g, int t, const char *alias, int k)
{
    const char *c = tab(t)->cols[k].name;
    const struct dsample *d = sample(g, t, k);
    buf_printf(g->b, "{\"%s\":[", CMP[2 + drng_below(&g->r, 4)]);
    put_col(g, alias, c);
    put(g, ",");
    if (d && d->str && strlen(d->str) >= 10 && drng_pct(&g->r, 40))
        put_prefix(g, "", d->str, 10, "");   /* a date-only literal against a timestamp */
    else
        put_lit(g, t, k);
    put(g, "]}");
}

static void pred_bool(struct gen *g, const char *alias, const char *c)
{
    switch (drng_below(&g->r, 5)) {
    case 0: buf_puts(g->b, "{\"is\":["); put_col(g, alias, c); put(g, ",true]}"); break;
    case 1: buf_puts(g->b, "{\"is\":["); put_col(g, alias, c); put(g, ",false]}"); break;
    case 2: buf_puts(g->b, "{\"eq\":["); put_col(g, alias, c); put(g, drng_pct(&g->r, 50) ? ",true]}" : ",false]}"); break;
    case 3: buf_puts(g->b, "{\"is_not\":["); put_col(g, alias, c); put(g, ",true]}"); break;
    default: buf_puts(g->b, "{\"neq\":["); put_col(g, alias, c); put(g, ",true]}"); break;
    }
}

static void pred(struct gen *g, int t, const char *alias, int depth)
{
    int roll = drng_below(&g->r, 100);
    if (depth < 2 && roll < 30) {
        const char *op = roll < 18 ? "and" : roll < 27 ? "or" : "not";
        int n = strcmp(op, "not") == 0 ? 1 : 2 + drng_pct(&g->r, 30);
        buf_printf(g->b, "{\"%s\":[", op);
        for (int i = 0; i < n; i++) {
            if (i) put(g, ",");
            pred(g, t, alias, depth + 1);
        }
        put(g, "]}");
        return;
    }
    int k = pick_col(g, t, ANY_TYPE, 1);
    const struct dcol *col = &tab(t)->cols[k];
    if ((col->nullable && drng_pct(&g->r, 20)) || col->t == DT_JSON) {
        buf_printf(g->b, "{\"%s\":[", drng_pct(&g->r, 50) ? "is" : "is_not");
        put_col(g, alias, col->name);
        put(g, ",null]}");
        return;
    }
    switch (col->t) {
    case DT_INT:
    case DT_REAL: pred_num(g, t, alias, k); break;
    case DT_TEXT: pred_text(g, t, alias, k); break;
    case DT_TS:
    case DT_DATE: pred_time(g, t, alias, k); break;
    case DT_BOOL: pred_bool(g, alias, col->name); break;
    case DT_JSON: break;
    }
}

/* ---- pieces of a select ------------------------------------------------------------------ */

static void put_limit(struct gen *g)
{
    buf_printf(g->b, ",\"limit\":%d", 1 + drng_below(&g->r, 25));
    if (drng_pct(&g->r, 20)) buf_printf(g->b, ",\"offset\":%d", drng_below(&g->r, 12));
}

/* order_by that ends in the unique id: ["id"] or [col, "id"]. */
static void put_order(struct gen *g, int t, const char *id_ref)
{
    int roll = drng_below(&g->r, 100);
    if (roll < 40) {
        buf_printf(g->b, ",\"order_by\":%s", id_ref);
        return;
    }
    /* No direction words: protocol.md says servers differ on them (the
     * hand-written cases carry a few). */
    int k = pick_col(g, t, ORDERABLE, 0);
    buf_printf(g->b, ",\"order_by\":[\"%s\",%s]", tab(t)->cols[k].name, id_ref);
}

/* A function over a column of t as a data item (with "as": every item is named). */
static void put_fn(struct gen *g, int t, int idx)
{
    int roll = drng_below(&g->r, 100);
    int k;
    if (roll < 20 && (k = pick_col(g, t, B(DT_TEXT), 0)) >= 0) {
        buf_printf(g->b, "{\"function\":\"%s\",\"args\":\"%s\",\"as\":\"f%d\"}",
                   drng_pct(&g->r, 50) ? "lower" : "upper", tab(t)->cols[k].name, idx);
    } else if (roll < 40 && (k = pick_col(g, t, B(DT_TEXT), 0)) >= 0) {
        static const char *const RX[][3] = {
            {"\\d+", "#", "g"},   {"\\s+", "_", "g"},         {"\\w+", "w", ""},   {"[аеиоуыэюя]", "+", "gi"},
            {"^(\\S+)", "<\\1>", ""}, {"о", "0", "i"},        {"\\.", "!", "g"},   {"[[:digit:]]", "D", "g"},
            {"(\\w)(\\w*)", "\\2\\1", "g"}, {"[a-z]+", "", "gi"}, {"\\W", "", ""},  {"н", "N", ""},
        };
        int p = drng_below(&g->r, (int)(sizeof RX / sizeof RX[0]));
        buf_printf(g->b, "{\"function\":\"regexp_replace\",\"args\":[\"%s\",", tab(t)->cols[k].name);
        put_str(g, RX[p][0]);
        put(g, ",");
        put_str(g, RX[p][1]);
        if (RX[p][2][0]) {
            put(g, ",");
            put_str(g, RX[p][2]);
        }
        buf_printf(g->b, "],\"as\":\"f%d\"}", idx);
    } else if (roll < 60) {
        k = pick_col(g, t, ORDERABLE, 0);
        const struct dcol *c = &tab(t)->cols[k];
        buf_printf(g->b, "{\"function\":\"coalesce\",\"args\":[\"%s\",", c->name);
        switch (c->t) {
        case DT_INT: put(g, "-1"); break;
        case DT_REAL: put(g, "-0.5"); break;
        case DT_BOOL: put(g, "false"); break;
        case DT_TS: put(g, "\"1970-01-01 00:00:00\""); break;
        default: put(g, "\"—нет—\""); break;
        }
        buf_printf(g->b, "],\"as\":\"f%d\"}", idx);
    } else if (roll < 75 && (k = pick_col(g, t, NUMERIC, 1)) >= 0) {
        static const char *const AR[] = {"add", "sub", "mul", "div", "mod"};
        const char *op = AR[drng_below(&g->r, tab(t)->cols[k].t == DT_INT ? 5 : 4)];
        /* the operator as its own key, as real portals' examples write it */
        buf_printf(g->b, "{\"%s\":[\"%s\",%d],\"as\":\"f%d\"}", op, tab(t)->cols[k].name,
                   2 + drng_below(&g->r, 9), idx);
    } else if (roll < 85 && (k = pick_col(g, t, B(DT_TEXT), 0)) >= 0) {
        buf_printf(g->b, "{\"function\":\"length\",\"args\":\"%s\",\"as\":\"f%d\"}", tab(t)->cols[k].name, idx);
    } else {
        k = pick_col(g, t, B(DT_TEXT) | B(DT_INT), 0);
        if (k < 0) k = 0;
        buf_printf(g->b, "{\"function\":\"concat\",\"args\":[\"%s\",\" · \",\"id\"],\"as\":\"f%d\"}",
                   tab(t)->cols[k].name, idx);
    }
}

/* An aggregate over t (qualified by alias when non-NULL). */
static void put_agg(struct gen *g, int t, int idx)
{
    int roll = drng_below(&g->r, 100), k;
    if (roll < 20) {
        buf_printf(g->b, "{\"function\":\"count\",\"args\":[\"*\"],\"as\":\"a%d\"}", idx);
    } else if (roll < 35) {
        k = pick_col(g, t, ANY_TYPE, 0);
        buf_printf(g->b, "{\"function\":\"count\",\"args\":\"%s\",\"as\":\"a%d\"}", tab(t)->cols[k].name, idx);
    } else if (roll < 50) {
        k = pick_col(g, t, ORDERABLE, 0);
        buf_printf(g->b, "{\"function\":\"count\",\"args\":{\"function\":\"distinct\",\"args\":\"%s\"},\"as\":\"a%d\"}",
                   tab(t)->cols[k].name, idx);
    } else if (roll < 80) {
        /* booleans included: the portal answers them (bool_or/bool_and) */
        k = pick_col(g, t, ORDERABLE, 0);
        buf_printf(g->b, "{\"function\":\"%s\",\"args\":\"%s\",\"as\":\"a%d\"}", drng_pct(&g->r, 50) ? "max" : "min",
                   tab(t)->cols[k].name, idx);
    } else if ((k = pick_col(g, t, NUMERIC, 1)) >= 0) {
        buf_printf(g->b, "{\"function\":\"%s\",\"args\":\"%s\",\"as\":\"a%d\"}", drng_pct(&g->r, 50) ? "sum" : "avg",
                   tab(t)->cols[k].name, idx);
    } else {
        buf_printf(g->b, "{\"function\":\"count\",\"args\":[\"*\"],\"as\":\"a%d\"}", idx);
    }
}

/* A table for a statement: the big ones more often than the two lookup tables. */
static int pick_table(struct gen *g)
{
    static const int W[DIFF_NTABLES] = {6, 6, 14, 14, 14, 16, 20, 10};
    int roll = drng_below(&g->r, 100);
    for (int t = 0; t < DIFF_NTABLES; t++) {
        if (roll < W[t]) return t;
        roll -= W[t];
    }
    return DIFF_NTABLES - 1;
}

/* ---- the statement kinds ----------------------------------------------------------------- */

static void data_cols(struct gen *g, int t, const char *alias, int n)
{
    put(g, "\"data\":[");
    put_col(g, alias, "id");
    for (int i = 0; i < n; i++) {
        put(g, ",");
        put_col(g, alias, tab(t)->cols[pick_col(g, t, ANY_TYPE, 0)].name);
    }
    put(g, "]");
}

static void k_plain(struct gen *g, int t)
{
    put(g, "{");
    data_cols(g, t, NULL, 1 + drng_below(&g->r, 3));
    buf_printf(g->b, ",\"from\":\"%s\"", tab(t)->name);
    if (drng_pct(&g->r, 85)) {
        put(g, ",\"where\":");
        pred(g, t, NULL, 0);
    }
    put_order(g, t, "\"id\"");
    put_limit(g);
    put(g, "}");
}

static void k_functions(struct gen *g, int t)
{
    put(g, "{\"data\":[\"id\"");
    for (int i = 0, n = 1 + drng_below(&g->r, 2); i < n; i++) {
        put(g, ",");
        put_fn(g, t, i);
    }
    buf_printf(g->b, "],\"from\":\"%s\"", tab(t)->name);
    if (drng_pct(&g->r, 50)) {
        put(g, ",\"where\":");
        pred(g, t, NULL, 0);
    }
    put(g, ",\"order_by\":\"id\"");
    put_limit(g);
    put(g, "}");
}

static void k_aggregate(struct gen *g, int t)
{
    put(g, "{\"data\":[");
    for (int i = 0, n = 1 + drng_below(&g->r, 3); i < n; i++) {
        if (i) put(g, ",");
        put_agg(g, t, i);
    }
    buf_printf(g->b, "],\"from\":\"%s\"", tab(t)->name);
    if (drng_pct(&g->r, 60)) {
        put(g, ",\"where\":");
        pred(g, t, NULL, 0);
    }
    put(g, "}");
}

/* group by a low-cardinality column; the groups' keys are unique, so ordering by
 * the key orders fully. */
static void k_group(struct gen *g, int t)
{
    int k = pick_lowcard(g, t);
    if (k < 0) {
        k_aggregate(g, t);
        return;
    }
    const char *c = tab(t)->cols[k].name;
    buf_printf(g->b, "{\"data\":[\"%s\"", c);
    for (int i = 0, n = 1 + drng_below(&g->r, 2); i < n; i++) {
        put(g, ",");
        put_agg(g, t, i);
    }
    buf_printf(g->b, "],\"from\":\"%s\"", tab(t)->name);
    if (drng_pct(&g->r, 40)) {
        put(g, ",\"where\":");
        pred(g, t, NULL, 0);
    }
    buf_printf(g->b, ",\"group_by\":\"%s\"", c);
    if (drng_pct(&g->r, 30))
        buf_printf(g->b, ",\"having\":{\"gt\":[{\"function\":\"count\",\"args\":[\"*\"]},%d]}", drng_below(&g->r, 30));
    buf_printf(g->b, ",\"order_by\":\"%s\",\"limit\":100}", c);
}

static void k_distinct(struct gen *g, int t)
{
    int k = pick_lowcard(g, t);
    if (k < 0) k = pick_col(g, t, ORDERABLE, 0);
    const char *c = tab(t)->cols[k].name;
    buf_printf(g->b, "{\"data\":[\"%s\"],\"from\":\"%s\",\"distinct\":true", c, tab(t)->name);
    if (drng_pct(&g->r, 40)) {
        put(g, ",\"where\":");
        pred(g, t, NULL, 0);
    }
    buf_printf(g->b, ",\"order_by\":\"%s\",\"limit\":100}", c);
}

/* A table with a foreign key joined to its target: one row per left row (inner
 * joins may drop some), so the left id orders fully. */
static void k_join(struct gen *g)
{
    static const int WITH_FK[] = {2, 4, 5, 6, 7};
    int t = WITH_FK[drng_below(&g->r, 5)];
    const struct dfk *fk = &tab(t)->fks[drng_below(&g->r, tab(t)->nfks)];
    int u = fk->target, left = drng_pct(&g->r, 35);
    put(g, "{\"data\":[{\"a\":\"id\"}");
    for (int i = 0, n = 1 + drng_below(&g->r, 2); i < n; i++) {
        put(g, ",");
        put_col(g, "b", tab(u)->cols[pick_col(g, u, ANY_TYPE, 1)].name);
    }
    put(g, ",");
    put_col(g, "a", tab(t)->cols[pick_col(g, t, ANY_TYPE, 0)].name);
    buf_printf(g->b, "],\"from\":[{\"table\":\"%s\",\"as\":\"a\"},{\"join\":\"%s\",\"as\":\"b\",%s"
                     "\"on\":{\"eq\":[{\"a\":\"%s\"},{\"b\":\"id\"}]}}]",
               tab(t)->name, tab(u)->name, left ? "\"join_type\":\"left\"," : "", fk->col);
    if (drng_pct(&g->r, 70)) {
        put(g, ",\"where\":");
        if (drng_pct(&g->r, 50)) {
            pred(g, t, "a", 1);
        } else {
            put(g, "{\"and\":[");
            pred(g, t, "a", 1);
            put(g, ",");
            pred(g, u, "b", 1);
            put(g, "]}");
        }
    }
    put(g, ",\"order_by\":\"a.id\"");   /* protocol.md: order_by holds names */
    put_limit(g);
    put(g, "}");
}

/* where fk in (select id from target where ...) */
static void k_in_select(struct gen *g)
{
    static const int WITH_FK[] = {2, 4, 5, 6, 7};
    int t = WITH_FK[drng_below(&g->r, 5)];
    const struct dfk *fk = &tab(t)->fks[drng_below(&g->r, tab(t)->nfks)];
    put(g, "{");
    data_cols(g, t, NULL, 1 + drng_below(&g->r, 2));
    int negate = drng_pct(&g->r, 15);
    buf_printf(g->b, ",\"from\":\"%s\",\"where\":%s{\"in\":[\"%s\",{\"select\":{\"data\":[\"id\"],\"from\":\"%s\",\"where\":",
               tab(t)->name, negate ? "{\"not\":[" : "", fk->col, tab(fk->target)->name);
    pred(g, fk->target, NULL, 1);
    put(g, negate ? "}}]}]}" : "}}]}");
    put_order(g, t, "\"id\"");
    put_limit(g);
    put(g, "}");
}

/* select ... from (select ... from t where ...) */
static void k_from_select(struct gen *g, int t)
{
    int k1 = pick_col(g, t, ORDERABLE, 0), k2 = pick_col(g, t, ANY_TYPE, 0);
    const char *c1 = tab(t)->cols[k1].name, *c2 = tab(t)->cols[k2].name;
    buf_printf(g->b, "{\"data\":[\"id\",\"%s\"],\"from\":{\"select\":{\"data\":[\"id\",\"%s\"%s%s%s],\"from\":\"%s\"",
               c1, c1, strcmp(c1, c2) ? ",\"" : "", strcmp(c1, c2) ? c2 : "", strcmp(c1, c2) ? "\"" : "",
               tab(t)->name);
    if (drng_pct(&g->r, 70)) {
        put(g, ",\"where\":");
        pred(g, t, NULL, 1);
    }
    buf_printf(g->b, "}%s}", drng_pct(&g->r, 50) ? ",\"as\":\"q\"" : "");
    buf_printf(g->b, ",\"order_by\":[\"%s\",\"id\"]", c1);
    put_limit(g);
    put(g, "}");
}

/* A small table read whole: no limit; ordered by id or compared as a multiset. */
static int k_small(struct gen *g)
{
    int t = drng_pct(&g->r, 50) ? 0 : 1, ordered = drng_pct(&g->r, 50);
    put(g, "{");
    data_cols(g, t, NULL, 1 + drng_below(&g->r, 2));
    buf_printf(g->b, ",\"from\":\"%s\"", tab(t)->name);
    if (drng_pct(&g->r, 50)) {
        put(g, ",\"where\":");
        pred(g, t, NULL, 0);
    }
    if (ordered) put(g, ",\"order_by\":\"id\"");
    put(g, "}");
    return ordered;
}

void dgen_statement(uint64_t seed, int i, const struct dsamples *s, struct dstmt *st)
{
    buf_reset(&st->params);
    st->raw = 0;
    st->ord = ORD_FULL;
    struct gen g = {.r = {seed * 0x100000001b3ULL ^ (uint64_t)i * 0x9E3779B97F4A7C15ULL}, .s = s, .b = &st->params};
    drng_next(&g.r);
    int t = pick_table(&g), roll = drng_below(&g.r, 100);
    const char *kind;
    if (roll < 28) {
        kind = "plain";
        k_plain(&g, t);
    } else if (roll < 43) {
        kind = "functions";
        k_functions(&g, t);
    } else if (roll < 53) {
        kind = "aggregate";
        k_aggregate(&g, t);
    } else if (roll < 65) {
        kind = "group";
        k_group(&g, t);
    } else if (roll < 71) {
        kind = "distinct";
        k_distinct(&g, t);
    } else if (roll < 83) {
        kind = "join";
        k_join(&g);
    } else if (roll < 90) {
        kind = "in_select";
        k_in_select(&g);
    } else if (roll < 96) {
        kind = "from_select";
        k_from_select(&g, t);
    } else {
        kind = "no_limit";
        if (!k_small(&g)) st->ord = ORD_NONE;
    }
    snprintf(st->name, sizeof st->name, "gen/%d %s", i, kind);
}
