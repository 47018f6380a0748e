/* jsonsql_catalog.h — the catalog's insides, for the compiler (jsonsql*.c) only:
 * tables and columns in open-addressing hash indexes, because the compiler
 * looks names up on every request. The public catalog API is in jsonsql.h. */
#ifndef IA_JSONSQL_CATALOG_H
#define IA_JSONSQL_CATALOG_H
#include <stddef.h>
#include <stdint.h>

#include "agent/jsonsql/jsonsql.h"

struct jcol {
    char *name;
    size_t len;
    uint32_t hash;
    enum jsonsql_type type;
    int pk;                     /* part of the primary key (from_db; group_by may name the key alone) */
};

struct jtable {
    char *name;
    size_t len;
    uint32_t hash;
    struct jcol *cols;          /* insertion order = "*" order */
    int ncols, cap;
    int *slots;                 /* index into cols or -1; size mask+1 >= 2 * ncols */
    uint32_t mask;
};

struct jsonsql_catalog {
    struct jtable **tables;     /* pointers stay valid while the catalog lives */
    int ntables, cap;
    int *slots;                 /* index into tables or -1; size mask+1 >= 2 * ntables */
    uint32_t mask;
};

/* The table named by name[0..len), or NULL. */
struct jtable *jsonsql_table_find(const jsonsql_catalog *cat, const char *name, size_t len);
/* The index of column name[0..len) in t, or -1. */
int jsonsql_column_find(const struct jtable *t, const char *name, size_t len);

#endif
