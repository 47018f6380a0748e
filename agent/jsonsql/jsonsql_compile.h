/* jsonsql_compile.h — the compiler's state and the helpers its sections share,
 * for jsonsql.c (select, expressions) and jsonsql_write.c (insert, update,
 * delete) only. Not an API: the contract is jsonsql.h. */
#ifndef IA_JSONSQL_COMPILE_H
#define IA_JSONSQL_COMPILE_H
#include <cjson/cJSON.h>
#include <stddef.h>

#include "agent/base/buf.h"
#include "agent/jsonsql/jsonsql.h"
#include "agent/jsonsql/jsonsql_catalog.h"

#define MAX_FRAMES 256          /* path frames kept for messages; deeper paths end in "..." */
#define MAX_SOURCES 64          /* tables/subqueries in one from */
#define ALIAS_MAX 64
#define QBUF 96                 /* a quoted user excerpt in a message */

struct frame {
    const char *key;            /* object member, or NULL for an array index */
    int idx;
};

struct ctx {
    const jsonsql_catalog *cat;
    struct jsonsql_limits lim;
    const char *method;         /* path shown for errors at the top level */
    struct frame frames[MAX_FRAMES];
    int nframes;                /* may exceed MAX_FRAMES; the excess is not recorded */
    struct jsonsql_value *params;
    int nparams, capparams;
    void **arena;               /* allocations freed when compile returns */
    int narena, caparena;
    char *err;
    size_t errlen;
    int agg_ban;                /* where an aggregate is refused: 0 allowed, AGG_IN_COND, AGG_IN_AGG */
    int nagg;                   /* aggregates compiled in the current select */
    int collect;                /* note columns used outside aggregates (list, having, order_by) */
    struct colref *bare;        /* those columns, a stretch per select being compiled */
    int nbare, capbare;
};

enum { AGG_IN_COND = 1, AGG_IN_AGG = 2 };

/* A named column of a subquery or of a select list. */
struct pcol {
    const char *name;           /* NULL: unnamed expression; points into catalog or JSON */
    size_t len;
    enum jsonsql_type type;
    int alias;                  /* name came from "as" (valid in order_by) */
    int dup;                    /* another column of the same list has this name */
    int plain;                  /* a plain column of source src, named col (for group_by's check) */
    int src;
    const char *col;
    size_t col_len;
};

struct source {
    const char *alias;          /* qualifies columns; NULL for an unnamed subquery */
    size_t alias_len;
    const struct jtable *t;     /* catalog table, or NULL for a subquery */
    const struct pcol *cols;    /* subquery output columns */
    int ncols;
};

struct scope {
    struct source *s;
    int n, cap;
    const struct pcol *out;     /* the select list, once compiled (for order_by) */
    int nout;
};

struct colref {
    int src;                    /* index in scope; -1 when not a plain column */
    const char *name;
    size_t len;
    enum jsonsql_type type;     /* a column's; else what the operand yields (JSQL_ANY: unknown) */
    int null_lit;               /* the operand is the literal null (its type is JSQL_ANY) */
};

enum side { LEFT, RIGHT };      /* operand position: a left string must be a column */

/* A function call, written {"function":F,"args":A[,"as":N]} or with F as its
 * own key {F:A[,"as":N][,"distinct":true]}. */
struct fncall {
    const char *name;           /* the function's name as written */
    const cJSON *fn;            /* "function" member, or the own key (whose value is args) */
    const cJSON *args, *as, *distinct;
    int own;                    /* written as its own key */
};

struct outlist {
    struct pcol *v;
    int n, cap;
};

/* Error with the JSON path of the node being compiled; returns -1. */
int jsql_fail(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The JSON path: a frame per object key or array index entered. */
void jsql_pop(struct ctx *c);
void jsql_push_key(struct ctx *c, const char *k);
void jsql_push_idx(struct ctx *c, int i);
/* SQL text: a quoted identifier; a user excerpt quoted for a message. */
void jsql_quote_ident(struct buf *b, const char *s, size_t n);
const char *jsql_uqs(char *dst, size_t cap, const char *s);
/* Compiling pieces the statements share. */
int jsql_emit_literal(struct ctx *c, const cJSON *n, struct buf *out);
int jsql_compile_where(struct ctx *c, const cJSON *e, const struct scope *sc, struct buf *out);
int jsql_size_ok(struct ctx *c, const struct buf *b);
void jsql_sep(struct buf *out, const struct outlist *o);
struct pcol *jsql_out_add(struct outlist *o);
int jsql_is_star(const cJSON *n);
int jsql_add_source(struct ctx *c, struct scope *sc, const char *alias, size_t alen);
int jsql_add_param(struct ctx *c, struct buf *out, struct jsonsql_value v);
int jsql_check_alias(struct ctx *c, const cJSON *as);
/* The index of the source aliased a[0..alen) in sc, or -1. */
int jsql_scope_alias(const struct scope *sc, const char *a, size_t alen);
/* A column named by a string (it must exist); ref (optional) gets it. */
int jsql_column_str(struct ctx *c, const struct scope *sc, const char *s, struct buf *out,
                    struct colref *ref);
/* A value position: column, qualified column, call, arithmetic or literal. ref
 * (optional) gets the column (src >= 0) or src -1, and always the type: a
 * literal's (string TEXT, integer INT, float REAL, true/false BOOL, null
 * null_lit), a call's or arithmetic's result, else JSQL_ANY. */
int jsql_operand(struct ctx *c, const cJSON *n, const struct scope *sc, struct buf *out,
                 enum side side, struct colref *ref);
/* {"select":...} alone: a subquery where a value could be. */
int jsql_is_subquery(const cJSON *n);
/* Function calls (jsonsql_call.c). jsql_fncall: 1 when n is a call (fc filled),
 * 0 when it is not, -1 on a malformed {"function":...}. A one-key object whose
 * key is a table alias in sc stays a qualified column, even if the alias is
 * also a function name. */
int jsql_fncall(struct ctx *c, const cJSON *n, const struct scope *sc, struct fncall *fc);
int jsql_fncall_is(const struct fncall *fc, const char *name);
/* Compile a call; oc non-NULL for a data item (which may carry "as"); *ty gets
 * the result type as PostgreSQL gives it (max of a boolean is a boolean, avg a
 * float, count and a sum of integers an integer). */
int jsql_compile_call(struct ctx *c, const struct fncall *fc, const struct scope *sc,
                      struct buf *out, struct pcol *oc, enum jsonsql_type *ty);
/* Sort a statement's keys into vals (NULL: absent); an unknown or duplicate key fails. */
int jsql_take_keys(struct ctx *c, const cJSON *p, const char *const *keys, const cJSON **vals, int nkeys);
/* A select into out; its output columns (arena memory) into cols/ncols and its
 * first table into table (jsonsql.c). */
int jsql_compile_select(struct ctx *c, const cJSON *p, struct buf *out, struct pcol **cols, int *ncols,
                        const char **table);
/* from into the scope sc, its SQL into fs (jsonsql_from.c). */
int jsql_compile_from(struct ctx *c, const cJSON *f, struct scope *sc, struct buf *fs, const char **table);
/* insert / update / delete (jsonsql_write.c): 0 or -1 with jsql_fail. */
int jsql_compile_insert(struct ctx *c, const cJSON *p, struct buf *out, struct outlist *o, const char **table);
int jsql_compile_update(struct ctx *c, const cJSON *p, struct buf *out, struct outlist *o, const char **table);
int jsql_compile_delete(struct ctx *c, const cJSON *p, struct buf *out, struct outlist *o, const char **table);

#endif
