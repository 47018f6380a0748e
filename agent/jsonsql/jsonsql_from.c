/* jsonsql_from.c — a select's from: tables, subqueries and joins (inner,
 * left, right, full, cross) resolved into the scope every later clause names
 * columns in. Contract: jsonsql.h; shared state: jsonsql_compile.h. */
#include "agent/jsonsql/jsonsql_catalog.h"
#include "agent/jsonsql/jsonsql_compile.h"
#include "agent/base/mem.h"

#include <string.h>
#include <strings.h>

int jsql_add_source(struct ctx *c, struct scope *sc, const char *alias, size_t alen)
{
    if (sc->n == MAX_SOURCES) return jsql_fail(c, "more than %d tables in from", MAX_SOURCES);
    if (alias && jsql_scope_alias(sc, alias, alen) >= 0)
        return jsql_fail(c, "duplicate alias \"%.*s\": give each table its own \"as\"", (int)alen, alias);
    if (sc->n == sc->cap) {
        sc->cap = sc->cap ? sc->cap * 2 : 4;
        sc->s = xrealloc(sc->s, (size_t)sc->cap * sizeof *sc->s);
    }
    struct source *s = &sc->s[sc->n++];
    memset(s, 0, sizeof *s);
    s->alias = alias;
    s->alias_len = alen;
    return 0;
}

/* A source: target is a table-name string or, with sel set, a subquery. The
 * frame of target/sel is pushed by the caller. */
static int from_source(struct ctx *c, struct scope *sc, const cJSON *target, const cJSON *sel,
                       const cJSON *as, struct buf *fs, const char **table)
{
    char q[QBUF];
    const char *alias = as ? as->valuestring : NULL;
    if (sel) {
        struct pcol *cols;
        int ncols;
        const char *t;
        buf_putc(fs, '(');
        if (jsql_compile_select(c, sel, fs, &cols, &ncols, &t)) return -1;
        buf_putc(fs, ')');
        /* Names a reference could not tell apart are marked, not guessed. */
        for (int i = 0; i < ncols; i++)
            for (int j = i + 1; j < ncols; j++)
                if (cols[i].name && cols[j].name && cols[i].len == cols[j].len &&
                    memcmp(cols[i].name, cols[j].name, cols[i].len) == 0)
                    cols[i].dup = cols[j].dup = 1;
        if (jsql_add_source(c, sc, alias, alias ? strlen(alias) : 0)) return -1;
        sc->s[sc->n - 1].cols = cols;
        sc->s[sc->n - 1].ncols = ncols;
        if (table && !*table) *table = t;
    } else {
        if (!cJSON_IsString(target)) return jsql_fail(c, "expected a table name");
        const struct jtable *t = jsonsql_table_find(c->cat, target->valuestring, strlen(target->valuestring));
        if (!t) return jsql_fail(c, "unknown table %s", jsql_uqs(q, sizeof q, target->valuestring));
        jsql_quote_ident(fs, t->name, t->len);
        if (jsql_add_source(c, sc, alias ? alias : t->name, alias ? strlen(alias) : t->len)) return -1;
        sc->s[sc->n - 1].t = t;
        if (table && !*table) *table = t->name;
    }
    if (alias) {
        buf_puts(fs, " AS ");
        jsql_quote_ident(fs, alias, strlen(alias));
    }
    return 0;
}

/* The join of a from item after the first: inner unless said otherwise by
 * "left_join", or "join_type"/"type" (inner, left, right, full, cross; "left
 * outer" and the like too). SQLite has RIGHT and FULL JOIN since 3.39. */
static int join_kind(struct ctx *c, const cJSON *jt, int left, const char **sql)
{
    static const struct { const char *word, *sql; } kinds[] = {
        {"inner", " JOIN "},      {"left", " LEFT JOIN "},  {"left outer", " LEFT JOIN "},
        {"right", " RIGHT JOIN "}, {"right outer", " RIGHT JOIN "}, {"full", " FULL JOIN "},
        {"full outer", " FULL JOIN "}, {"cross", " CROSS JOIN "},
    };
    char q[QBUF];
    *sql = left ? " LEFT JOIN " : " JOIN ";
    if (!jt) return 0;
    jsql_push_key(c, jt->string);
    if (!cJSON_IsString(jt)) return jsql_fail(c, "expected inner, left, right, full or cross");
    size_t i = 0, n = sizeof kinds / sizeof kinds[0];
    while (i < n && strcasecmp(kinds[i].word, jt->valuestring) != 0) i++;
    if (i == n) return jsql_fail(c, "unknown join type %s (expected inner, left, right, full or cross)",
                                 jsql_uqs(q, sizeof q, jt->valuestring));
    if (left && strcmp(kinds[i].sql, " LEFT JOIN ") != 0)
        return jsql_fail(c, "conflicts with \"left_join\"");
    if ((kinds[i].sql[1] == 'R' || kinds[i].sql[1] == 'F') && sqlite3_libversion_number() < 3039000)
        return jsql_fail(c, "%s join needs SQLite 3.39 or later (this is %s)", kinds[i].word, sqlite3_libversion());
    *sql = kinds[i].sql;
    jsql_pop(c);
    return 0;
}

/* One item of from: first (a table or subquery) or a join. */
static int from_item(struct ctx *c, struct scope *sc, const cJSON *n, int first, struct buf *fs,
                     const char **table)
{
    char q[QBUF];
    if (first && cJSON_IsString(n)) return from_source(c, sc, n, NULL, NULL, fs, table);
    if (!cJSON_IsObject(n))
        return jsql_fail(c, first ? "expected a table name, {\"table\":...} or {\"select\":...}"
                             : "expected {\"join\":...} or {\"left_join\":...}");
    const cJSON *tbl = NULL, *sel = NULL, *join = NULL, *as = NULL, *on = NULL, *jt = NULL;
    int left = 0;
    for (const cJSON *k = n->child; k; k = k->next) {
        const cJSON **slot = NULL;
        if (strcmp(k->string, "table") == 0) slot = &tbl;
        else if (first && strcmp(k->string, "select") == 0) slot = &sel;
        else if (!first && strcmp(k->string, "join") == 0) slot = &join;
        else if (!first && strcmp(k->string, "left_join") == 0) { slot = &join; left = 1; }
        else if (strcmp(k->string, "as") == 0) slot = &as;
        else if (!first && strcmp(k->string, "on") == 0) slot = &on;
        else if (!first && (strcmp(k->string, "join_type") == 0 || strcmp(k->string, "type") == 0)) slot = &jt;
        if (!slot) {
            if (first && (!strcmp(k->string, "join") || !strcmp(k->string, "left_join")))
                return jsql_fail(c, "the first item of from is a table or a subquery, not a join");
            return jsql_fail(c, "unexpected key %s", jsql_uqs(q, sizeof q, k->string));
        }
        if (*slot) return jsql_fail(c, "duplicate key %s", jsql_uqs(q, sizeof q, k->string));
        *slot = k;
    }
    if (as && jsql_check_alias(c, as)) return -1;
    if (first) {
        if (!!tbl == !!sel) return jsql_fail(c, "expected exactly one of \"table\" or \"select\"");
        jsql_push_key(c, tbl ? "table" : "select");
        if (from_source(c, sc, tbl, sel, as, fs, table)) return -1;
        jsql_pop(c);
        return 0;
    }
    /* {"table":T,"join_type":...} is a join too. */
    if (tbl && join) return jsql_fail(c, "expected one of \"join\" or \"table\", not both");
    if (tbl && left) return jsql_fail(c, "expected one of \"left_join\" or \"table\", not both");
    if (!join) join = tbl;
    if (!join) return jsql_fail(c, "expected \"join\" or \"left_join\"");
    const char *kind;
    if (join_kind(c, jt, left, &kind)) return -1;
    int cross = kind[1] == 'C';
    if (!on && !cross) return jsql_fail(c, "a join needs \"on\"");
    if (on && cross) return jsql_fail(c, "a cross join takes no \"on\"");
    buf_puts(fs, kind);
    jsql_push_key(c, join->string);
    const cJSON *jsel = NULL;
    if (cJSON_IsObject(join)) {
        jsel = cJSON_GetObjectItemCaseSensitive(join, "select");
        if (!jsel || join->child->next) return jsql_fail(c, "expected a table name or {\"select\":...}");
        jsql_push_key(c, "select");
    }
    if (from_source(c, sc, join, jsel, as, fs, table)) return -1;
    if (jsel) jsql_pop(c);
    jsql_pop(c);
    if (cross) return 0;
    buf_puts(fs, " ON ");
    jsql_push_key(c, "on");
    if (jsql_compile_where(c, on, sc, fs)) return -1;
    jsql_pop(c);
    return 0;
}

int jsql_compile_from(struct ctx *c, const cJSON *f, struct scope *sc, struct buf *fs,
                        const char **table)
{
    if (cJSON_IsString(f) || cJSON_IsObject(f)) return from_item(c, sc, f, 1, fs, table);
    if (!cJSON_IsArray(f)) return jsql_fail(c, "expected a table name, a list of tables and joins, or a subquery");
    if (!f->child) return jsql_fail(c, "expected at least one table");
    int i = 0;
    for (const cJSON *n = f->child; n; n = n->next, i++) {
        jsql_push_idx(c, i);
        if (from_item(c, sc, n, i == 0, fs, table)) return -1;
        jsql_pop(c);
    }
    return 0;
}

