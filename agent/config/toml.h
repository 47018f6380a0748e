/* toml.h — a strict reader for the TOML subset agent.toml uses.
 *
 * Knows nothing about the agent's keys: it turns text into a small tree and
 * refuses anything outside the subset with "NAME:LINE:COL: message". The subset:
 *   - comments (#), blank lines, LF or CRLF line ends, an optional UTF-8 BOM;
 *   - `[name]` tables and `[[name]]` arrays of tables, single-segment bare names;
 *   - `key = value` with bare keys [A-Za-z0-9_-]+;
 *   - values: basic strings "..." (escapes \" \\ \b \t \n \f \r \uHHHH
 *     \UHHHHHHHH), literal strings '...', decimal integers (sign, `_` between
 *     digits, no leading zeros, int64 range), true/false, and arrays of values
 *     (may span lines, comments inside, trailing comma allowed).
 * Floats, dates/times, inline tables, dotted or quoted keys, multi-line strings,
 * hex/octal/binary integers and U+0000 in strings are refused as "not supported
 * by this reader". A key set twice in one table and a table header repeated
 * (other than [[name]]) are errors. Columns count characters, from 1.
 * Every node is owned by its struct toml_doc; toml_free() releases it all. */
#ifndef IA_TOML_H
#define IA_TOML_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum toml_type { TOML_STRING, TOML_INT, TOML_BOOL, TOML_ARRAY };

struct toml_value {
    enum toml_type type;
    int line, col;                 /* where the value starts */
    char *s;                       /* TOML_STRING: UTF-8, NUL-terminated, no inner NUL */
    int64_t i;                     /* TOML_INT */
    bool b;                        /* TOML_BOOL */
    struct toml_value *items;      /* TOML_ARRAY: elements in order (types may mix) */
    int nitems;
};

struct toml_kv {
    char *key;                     /* bare key */
    int line, col;                 /* where the key starts */
    struct toml_value val;
};

struct toml_table {
    char *name;                    /* NULL for the root (keys before any header) */
    bool is_array;                 /* written [[name]]: one entry per header */
    int line, col;                 /* the header's `[`; 1:1 for the root */
    struct toml_kv *kvs;           /* key/value pairs in file order */
    int nkvs;
};

struct toml_doc {
    struct toml_table *tables;     /* tables[0] is the root, then headers in file order */
    int ntables;
};

/* Parse len bytes of text; `name` stands for the file in messages. On success
 * *out holds the tree (free with toml_free). Returns 0, or -1 with err filled
 * and *out empty. */
int toml_parse(const char *name, const char *text, size_t len, struct toml_doc *out,
               char *err, size_t errlen);
void toml_free(struct toml_doc *d);

/* The pair named key in t, or NULL. */
const struct toml_kv *toml_table_get(const struct toml_table *t, const char *key);
/* "string", "integer", "boolean", "array". */
const char *toml_type_name(enum toml_type t);

#endif
