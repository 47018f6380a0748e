/* jsonsql_write.c — compiling insert, update and delete (with `returning`)
 * into SQLite SQL, on the compiler state of jsonsql_compile.h. */
#include "agent/jsonsql/jsonsql_compile.h"
#include "agent/base/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct jtable *target_table(struct ctx *c, const cJSON *n, const char *key)
{
    char q[QBUF];
    jsql_push_key(c, key);
    if (!cJSON_IsString(n)) return jsql_fail(c, "expected a table name"), NULL;
    const struct jtable *t = jsonsql_table_find(c->cat, n->valuestring, strlen(n->valuestring));
    if (!t) return jsql_fail(c, "unknown table %s", jsql_uqs(q, sizeof q, n->valuestring)), NULL;
    jsql_pop(c);
    return t;
}

static int table_col(struct ctx *c, const struct jtable *t, const cJSON *n)
{
    char q[QBUF];
    if (!cJSON_IsString(n)) return jsql_fail(c, "expected a column name"), -1;
    int k = jsonsql_column_find(t, n->valuestring, strlen(n->valuestring));
    if (k < 0)
        return jsql_fail(c, "unknown column %s in %s", jsql_uqs(q, sizeof q, n->valuestring), t->name), -1;
    return k;
}

static void ret_col(const struct jtable *t, int k, struct buf *out, struct outlist *o)
{
    jsql_sep(out, o);
    jsql_quote_ident(out, t->cols[k].name, t->cols[k].len);
    struct pcol *p = jsql_out_add(o);
    p->name = t->cols[k].name;
    p->len = t->cols[k].len;
    p->type = t->cols[k].type;
}

static int ret_item(struct ctx *c, const struct jtable *t, const cJSON *n, struct buf *out,
                    struct outlist *o)
{
    if (jsql_is_star(n)) {
        for (int k = 0; k < t->ncols; k++) ret_col(t, k, out, o);
        return 0;
    }
    int k = table_col(c, t, n);
    if (k < 0) return -1;
    ret_col(t, k, out, o);
    return 0;
}

static int compile_returning(struct ctx *c, const cJSON *r, const struct jtable *t,
                             struct buf *out, struct outlist *o)
{
    if (!r) return 0;
    buf_puts(out, " RETURNING ");
    jsql_push_key(c, "returning");
    if (cJSON_IsArray(r)) {
        if (!r->child) return jsql_fail(c, "expected at least one column");
        int i = 0;
        for (const cJSON *n = r->child; n; n = n->next, i++) {
            jsql_push_idx(c, i);
            if (ret_item(c, t, n, out, o)) return -1;
            jsql_pop(c);
        }
    } else if (ret_item(c, t, r, out, o)) {
        return -1;
    }
    jsql_pop(c);
    return 0;
}

static int one_table_scope(struct ctx *c, struct scope *sc, const struct jtable *t)
{
    if (jsql_add_source(c, sc, t->name, t->len)) return -1;
    sc->s[0].t = t;
    return 0;
}

int jsql_compile_insert(struct ctx *c, const cJSON *p, struct buf *out, struct outlist *o,
                          const char **table)
{
    static const char *const keys[] = {"into", "columns", "values", "returning"};
    const cJSON *v[4];
    if (jsql_take_keys(c, p, keys, v, 4)) return -1;
    if (!v[0]) return jsql_fail(c, "\"into\" is required");
    if (!v[2]) return jsql_fail(c, "\"values\" is required");
    const struct jtable *t = target_table(c, v[0], "into");
    if (!t) return -1;
    *table = t->name;
    buf_puts(out, "INSERT INTO ");
    jsql_quote_ident(out, t->name, t->len);
    buf_puts(out, " (");
    int ncols = 0;
    if (v[1]) {
        jsql_push_key(c, "columns");
        if (!cJSON_IsArray(v[1]) || !v[1]->child) return jsql_fail(c, "expected a list of column names");
        char *seen = xcalloc((size_t)t->ncols + 1, 1);
        int i = 0;
        for (const cJSON *n = v[1]->child; n; n = n->next, i++) {
            jsql_push_idx(c, i);
            int k = table_col(c, t, n);
            if (k >= 0 && seen[k]) k = jsql_fail(c, "duplicate column \"%s\"", t->cols[k].name);
            if (k < 0) {
                free(seen);
                return -1;
            }
            seen[k] = 1;
            if (i) buf_puts(out, ", ");
            jsql_quote_ident(out, t->cols[k].name, t->cols[k].len);
            jsql_pop(c);
        }
        free(seen);
        ncols = i;
        jsql_pop(c);
    } else {
        for (int k = 0; k < t->ncols; k++) {
            if (k) buf_puts(out, ", ");
            jsql_quote_ident(out, t->cols[k].name, t->cols[k].len);
        }
        ncols = t->ncols;
    }
    buf_puts(out, ") VALUES ");
    jsql_push_key(c, "values");
    if (!cJSON_IsArray(v[2]) || !v[2]->child) return jsql_fail(c, "expected a list of rows");
    int i = 0;
    for (const cJSON *row = v[2]->child; row; row = row->next, i++) {
        jsql_push_idx(c, i);
        if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != ncols)
            return jsql_fail(c, "expected a row of %d values", ncols);
        buf_puts(out, i ? ", (" : "(");
        int j = 0;
        for (const cJSON *val = row->child; val; val = val->next, j++) {
            if (j) buf_puts(out, ", ");
            jsql_push_idx(c, j);
            if (jsql_emit_literal(c, val, out)) return -1;
            jsql_pop(c);
        }
        buf_putc(out, ')');
        if (jsql_size_ok(c, out)) return -1;   /* early: rows can be many */
        jsql_pop(c);
    }
    jsql_pop(c);
    return compile_returning(c, v[3], t, out, o);
}

int jsql_compile_update(struct ctx *c, const cJSON *p, struct buf *out, struct outlist *o,
                          const char **table)
{
    static const char *const keys[] = {"table", "set", "where", "returning"};
    const cJSON *v[4];
    if (jsql_take_keys(c, p, keys, v, 4)) return -1;
    if (!v[0]) return jsql_fail(c, "\"table\" is required");
    if (!v[1]) return jsql_fail(c, "\"set\" is required");
    const struct jtable *t = target_table(c, v[0], "table");
    if (!t) return -1;
    *table = t->name;
    buf_puts(out, "UPDATE ");
    jsql_quote_ident(out, t->name, t->len);
    buf_puts(out, " SET ");
    jsql_push_key(c, "set");
    if (!cJSON_IsObject(v[1]) || !v[1]->child) return jsql_fail(c, "expected an object {column: value}");
    char *seen = xcalloc((size_t)t->ncols + 1, 1);
    int i = 0;
    for (const cJSON *n = v[1]->child; n; n = n->next, i++) {
        char q[QBUF];
        int k = jsonsql_column_find(t, n->string, strlen(n->string));
        int rc = 0;
        if (k < 0) rc = jsql_fail(c, "unknown column %s in %s", jsql_uqs(q, sizeof q, n->string), t->name);
        else if (seen[k]) rc = jsql_fail(c, "duplicate column \"%s\"", t->cols[k].name);
        if (!rc) {
            seen[k] = 1;
            if (i) buf_puts(out, ", ");
            jsql_quote_ident(out, t->cols[k].name, t->cols[k].len);
            buf_puts(out, " = ");
            jsql_push_key(c, t->cols[k].name);
            rc = jsql_emit_literal(c, n, out);   /* a value, never a column */
            jsql_pop(c);
        }
        if (rc) {
            free(seen);
            return -1;
        }
    }
    free(seen);
    jsql_pop(c);
    if (v[2]) {
        struct scope sc = {0};
        int rc = one_table_scope(c, &sc, t);
        buf_puts(out, " WHERE ");
        jsql_push_key(c, "where");
        if (!rc) rc = jsql_compile_where(c, v[2], &sc, out);
        free(sc.s);
        if (rc) return -1;
        jsql_pop(c);
    }
    return compile_returning(c, v[3], t, out, o);
}

int jsql_compile_delete(struct ctx *c, const cJSON *p, struct buf *out, struct outlist *o,
                          const char **table)
{
    static const char *const keys[] = {"from", "where", "returning"};
    const cJSON *v[3];
    if (jsql_take_keys(c, p, keys, v, 3)) return -1;
    if (!v[0]) return jsql_fail(c, "\"from\" is required");
    const struct jtable *t = target_table(c, v[0], "from");
    if (!t) return -1;
    *table = t->name;
    buf_puts(out, "DELETE FROM ");
    jsql_quote_ident(out, t->name, t->len);
    if (v[1]) {
        struct scope sc = {0};
        int rc = one_table_scope(c, &sc, t);
        buf_puts(out, " WHERE ");
        jsql_push_key(c, "where");
        if (!rc) rc = jsql_compile_where(c, v[1], &sc, out);
        free(sc.s);
        if (rc) return -1;
        jsql_pop(c);
    }
    return compile_returning(c, v[2], t, out, o);
}
