/* jsonsql_catalog.c — the JSONSQL catalog: which tables and columns a
 * statement may name, with their types (contract: jsonsql.h; insides:
 * jsonsql_catalog.h). */
#include "agent/jsonsql/jsonsql_catalog.h"
#include "agent/base/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static uint32_t hash_bytes(const char *s, size_t n)
{
    uint32_t h = 2166136261u;   /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

static int *slots_new(uint32_t size)
{
    int *s = xmalloc(size * sizeof *s);
    for (uint32_t i = 0; i < size; i++) s[i] = -1;
    return s;
}

static void slot_put(int *slots, uint32_t mask, uint32_t hash, int k)
{
    uint32_t i = hash & mask;
    while (slots[i] >= 0) i = (i + 1) & mask;
    slots[i] = k;
}

jsonsql_catalog *jsonsql_catalog_new(void)
{
    return xcalloc(1, sizeof(jsonsql_catalog));
}

void jsonsql_catalog_free(jsonsql_catalog *cat)
{
    if (!cat) return;
    for (int i = 0; i < cat->ntables; i++) {
        struct jtable *t = cat->tables[i];
        for (int j = 0; j < t->ncols; j++) free(t->cols[j].name);
        free(t->cols);
        free(t->slots);
        free(t->name);
        free(t);
    }
    free(cat->tables);
    free(cat->slots);
    free(cat);
}

struct jtable *jsonsql_table_find(const jsonsql_catalog *cat, const char *name, size_t len)
{
    if (!cat->ntables) return NULL;
    uint32_t h = hash_bytes(name, len);
    for (uint32_t i = h & cat->mask;; i = (i + 1) & cat->mask) {
        int k = cat->slots[i];
        if (k < 0) return NULL;
        struct jtable *t = cat->tables[k];
        if (t->hash == h && t->len == len && memcmp(t->name, name, len) == 0) return t;
    }
}

int jsonsql_column_find(const struct jtable *t, const char *name, size_t len)
{
    if (!t->ncols) return -1;
    uint32_t h = hash_bytes(name, len);
    for (uint32_t i = h & t->mask;; i = (i + 1) & t->mask) {
        int k = t->slots[i];
        if (k < 0) return -1;
        const struct jcol *c = &t->cols[k];
        if (c->hash == h && c->len == len && memcmp(c->name, name, len) == 0) return k;
    }
}

int jsonsql_catalog_add(jsonsql_catalog *cat, const char *table, const char *column,
                        enum jsonsql_type type)
{
    if (!cat || !table || !column) return -1;
    size_t tl = strlen(table), cl = strlen(column);
    struct jtable *t = jsonsql_table_find(cat, table, tl);
    if (!t) {
        t = xcalloc(1, sizeof *t);
        t->name = xstrndup(table, tl);
        t->len = tl;
        t->hash = hash_bytes(table, tl);
        if (cat->ntables == cat->cap) {
            cat->cap = cat->cap ? cat->cap * 2 : 16;
            cat->tables = xrealloc(cat->tables, (size_t)cat->cap * sizeof *cat->tables);
        }
        cat->tables[cat->ntables++] = t;
        if (!cat->slots || 2u * (uint32_t)cat->ntables > cat->mask + 1) {
            uint32_t size = 32;
            while (size < 4u * (uint32_t)cat->ntables) size *= 2;
            free(cat->slots);
            cat->slots = slots_new(size);
            cat->mask = size - 1;
            for (int i = 0; i < cat->ntables; i++)
                slot_put(cat->slots, cat->mask, cat->tables[i]->hash, i);
        } else {
            slot_put(cat->slots, cat->mask, t->hash, cat->ntables - 1);
        }
    }
    if (jsonsql_column_find(t, column, cl) >= 0) return -1;
    if (t->ncols == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->cols = xrealloc(t->cols, (size_t)t->cap * sizeof *t->cols);
    }
    struct jcol *c = &t->cols[t->ncols++];
    c->name = xstrndup(column, cl);
    c->len = cl;
    c->hash = hash_bytes(column, cl);
    c->type = type;
    c->pk = 0;
    if (!t->slots || 2u * (uint32_t)t->ncols > t->mask + 1) {
        uint32_t size = 32;
        while (size < 4u * (uint32_t)t->ncols) size *= 2;
        free(t->slots);
        t->slots = slots_new(size);
        t->mask = size - 1;
        for (int i = 0; i < t->ncols; i++) slot_put(t->slots, t->mask, t->cols[i].hash, i);
    } else {
        slot_put(t->slots, t->mask, c->hash, t->ncols - 1);
    }
    return 0;
}

int jsonsql_catalog_column(const jsonsql_catalog *cat, const char *table, const char *column,
                           enum jsonsql_type *type)
{
    if (!cat || !table || !column) return -1;
    const struct jtable *t = jsonsql_table_find(cat, table, strlen(table));
    if (!t) return -1;
    int k = jsonsql_column_find(t, column, strlen(column));
    if (k >= 0 && type) *type = t->cols[k].type;
    return k;
}

int jsonsql_catalog_ncolumns(const jsonsql_catalog *cat, const char *table)
{
    if (!cat || !table) return -1;
    const struct jtable *t = jsonsql_table_find(cat, table, strlen(table));
    return t ? t->ncols : -1;
}

const char *jsonsql_catalog_column_name(const jsonsql_catalog *cat, const char *table, int i)
{
    if (!cat || !table) return NULL;
    const struct jtable *t = jsonsql_table_find(cat, table, strlen(table));
    if (!t || i < 0 || i >= t->ncols) return NULL;
    return t->cols[i].name;
}

/* Declared type -> value type, by substring as SQLite's own affinity rules do
 * (so "BIGINT" is INT and "BOOLEAN" is BOOL, checked before INT). */
static enum jsonsql_type type_from_decl(const char *decl)
{
    if (!decl) return JSQL_ANY;
    char up[64];
    size_t n = 0;
    for (; decl[n] && n < sizeof up - 1; n++) {
        char ch = decl[n];
        up[n] = (ch >= 'a' && ch <= 'z') ? (char)(ch - 32) : ch;
    }
    up[n] = '\0';
    if (strstr(up, "BOOL")) return JSQL_BOOL;
    if (strstr(up, "JSON")) return JSQL_JSON;
    if (strstr(up, "INT")) return JSQL_INT;
    if (strstr(up, "CHAR") || strstr(up, "TEXT") || strstr(up, "CLOB") || strstr(up, "TIMESTAMP"))
        return JSQL_TEXT;
    if (strstr(up, "REAL") || strstr(up, "FLOA") || strstr(up, "DOUB")) return JSQL_REAL;
    return JSQL_ANY;
}

int jsonsql_catalog_from_db(jsonsql_catalog *cat, sqlite3 *db, const char *skip_prefix,
                            char *err, size_t errlen)
{
    sqlite3_stmt *lt = NULL, *ct = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT name FROM sqlite_master WHERE type = 'table'"
                                    " ORDER BY name", -1, &lt, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, "SELECT name, type, pk FROM pragma_table_info(?1) ORDER BY cid",
                                -1, &ct, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "catalog: reading the schema: %s", sqlite3_errmsg(db));
        goto fail;
    }
    size_t skip = skip_prefix ? strlen(skip_prefix) : 0;
    while ((rc = sqlite3_step(lt)) == SQLITE_ROW) {
        const char *tn = (const char *)sqlite3_column_text(lt, 0);
        if (!tn || strncasecmp(tn, "sqlite_", 7) == 0) continue;
        if (skip && strncmp(tn, skip_prefix, skip) == 0) continue;
        sqlite3_reset(ct);
        sqlite3_bind_text(ct, 1, tn, -1, SQLITE_TRANSIENT);
        while ((rc = sqlite3_step(ct)) == SQLITE_ROW) {
            const char *cn = (const char *)sqlite3_column_text(ct, 0);
            const char *decl = (const char *)sqlite3_column_text(ct, 1);
            if (!cn || jsonsql_catalog_add(cat, tn, cn, type_from_decl(decl)) != 0) {
                snprintf(err, errlen, "catalog: table %s: duplicate column %s", tn, cn ? cn : "?");
                goto fail;
            }
            if (sqlite3_column_int(ct, 2) > 0) {   /* part of the primary key */
                struct jtable *t = jsonsql_table_find(cat, tn, strlen(tn));
                t->cols[t->ncols - 1].pk = 1;
            }
        }
        if (rc != SQLITE_DONE) {
            snprintf(err, errlen, "catalog: table %s: %s", tn, sqlite3_errmsg(db));
            goto fail;
        }
    }
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "catalog: reading the schema: %s", sqlite3_errmsg(db));
        goto fail;
    }
    sqlite3_finalize(lt);
    sqlite3_finalize(ct);
    return 0;
fail:
    sqlite3_finalize(lt);
    sqlite3_finalize(ct);
    return -1;
}
