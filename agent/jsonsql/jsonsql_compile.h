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
};

enum { AGG_IN_COND = 1, AGG_IN_AGG = 2 };

/* A named column of a subquery or of a select list. */
struct pcol {
    const char *name;           /* NULL: unnamed expression; points into catalog or JSON */
    size_t len;
    enum jsonsql_type type;
    int alias;                  /* name came from "as" (valid in order_by) */
    int dup;                    /* another column of the same list has this name */
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
    enum jsonsql_type type;
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
/* Sort a statement's keys into vals (NULL: absent); an unknown or duplicate key fails. */
int jsql_take_keys(struct ctx *c, const cJSON *p, const char *const *keys, const cJSON **vals, int nkeys);
/* insert / update / delete (jsonsql_write.c): 0 or -1 with jsql_fail. */
int jsql_compile_insert(struct ctx *c, const cJSON *p, struct buf *out, struct outlist *o, const char **table);
int jsql_compile_update(struct ctx *c, const cJSON *p, struct buf *out, struct outlist *o, const char **table);
int jsql_compile_delete(struct ctx *c, const cJSON *p, struct buf *out, struct outlist *o, const char **table);

#endif
