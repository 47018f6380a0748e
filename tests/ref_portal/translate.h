/* translate.h — the reference portal's JSONSQL -> PostgreSQL SQL, written apart
 * from agent/jsonsql on purpose (it is the oracle the agent's compiler is tested
 * against, so it shares none of its code).
 *
 * Deliberately plain: identifiers are checked to be [A-Za-z_][A-Za-z0-9_]* and
 * written double-quoted; values are written as SQL literals: strings single-quoted
 * (standard_conforming_strings: only ' is doubled), so PostgreSQL types them from
 * their context as the real portal's literals are (a string compared with a
 * timestamp, boolean or bigint column is coerced by PostgreSQL, or refused by
 * it); numbers as their JSON literal text; true/false/null as TRUE/FALSE/NULL.
 * An operand string is a column when it names a column of a table the statement
 * names (in any from, join, table or into) or an `as` name used anywhere in it
 * (protocol.md: "a column when it names one"), else a literal.
 * Anything not understood is an error naming it, never a guess.
 *
 * Select (docs/protocol.md "SELECT" and "Also accepted by real portals"):
 * data (list or one string; *, alias.*, columns, functions, own-key functions,
 * operators), from (name, {table,as}, {select,as}, list with joins), where,
 * group_by, having, order_by (names or a list of names), limit, offset,
 * distinct. The outermost select's limit is capped at page_cap (0: no cap).
 *
 * Ownership: the caller owns cat (ref_catalog_free) and out; nothing is kept. */
#ifndef IA_REF_TRANSLATE_H
#define IA_REF_TRANSLATE_H
#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/base/buf.h"

struct ref_table {
    char *name;
    char **cols;      /* in the table's order */
    int ncols;
};

struct ref_catalog {
    struct ref_table *t;
    int n;
};

/* Append a table (column names copied). */
void ref_catalog_add(struct ref_catalog *cat, const char *table, const char *const *cols, int ncols);
void ref_catalog_free(struct ref_catalog *cat);

/* Translate select params into one PostgreSQL statement appended to out.
 * Returns 0, or -1 with err naming the part that was refused. */
int ref_translate_select(const struct ref_catalog *cat, const cJSON *params, int64_t page_cap,
                         struct buf *out, char *err, size_t errlen);

/* insert {"into","columns","values":[[..],..],"returning"}, update {"table","set",
 * "where","returning"}, delete {"from","where","returning"} (protocol.md) into one
 * PostgreSQL statement appended to out. Values written are literals (a string
 * is never a column there) or expression objects; where is as in select;
 * returning is "*", a name or a list of names. Returns 0, or -1 with err. */
int ref_translate_write(const struct ref_catalog *cat, const char *method, const cJSON *params,
                        struct buf *out, char *err, size_t errlen);

#endif
