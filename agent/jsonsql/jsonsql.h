/* jsonsql.h — compile JSONSQL (docs/protocol.md) into SQLite SQL.
 *
 * The portal's query language arrives as JSON: {"data":..,"from":..,"where":..}
 * for select, {"into":..} insert, {"table":..,"set":..} update, {"from":..} delete.
 * jsonsql_compile() turns one statement into one SQLite statement in which every
 * value is a bound parameter and every identifier was found in a catalog the
 * caller supplies (so nothing outside it can be named, let alone injected).
 * Functions are a whitelist. Errors name the JSON path of the offending node:
 *   where.and[1].eq[0]: unknown column "usrname" in subscriber
 * Depth and size are bounded by struct jsonsql_limits.
 *
 * The catalog also carries each column's value type so that whoever renders a
 * result (fake portal, local API) can shape values as the portal does: booleans
 * as true/false, JSON columns as arrays/objects. Names are matched exactly (no
 * case folding). A catalog is only read while compiling, so once built it may be
 * shared by threads compiling at the same time (adding to it is not safe then).
 * Ownership: the catalog and compiled statements are allocated here and freed
 * by their *_free. */
#ifndef IA_JSONSQL_H
#define IA_JSONSQL_H
#include <cjson/cJSON.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/base/buf.h"

enum jsonsql_type {
    JSQL_ANY,       /* unknown/computed: render by SQLite storage class */
    JSQL_INT,
    JSQL_REAL,
    JSQL_TEXT,      /* also timestamps */
    JSQL_BOOL,      /* stored 0/1, rendered true/false */
    JSQL_JSON       /* stored as JSON text, rendered raw */
};

enum jsonsql_kind { JSQL_SELECT, JSQL_INSERT, JSQL_UPDATE, JSQL_DELETE };

typedef struct jsonsql_catalog jsonsql_catalog;

jsonsql_catalog *jsonsql_catalog_new(void);
void jsonsql_catalog_free(jsonsql_catalog *cat);
/* Add a column to a table (created on first use). Columns keep insertion order,
 * which is the order "*" expands to. Returns 0, or -1 for a duplicate column. */
int jsonsql_catalog_add(jsonsql_catalog *cat, const char *table, const char *column,
                        enum jsonsql_type type);
/* Add every table of an open database except sqlite_* and names starting with
 * skip_prefix (NULL: none), typing columns from their declared type
 * (INT*->INT, REAL/FLOA/DOUB->REAL, BOOL*->BOOL, JSON->JSON, TEXT/CHAR/TIMESTAMP->TEXT,
 * else ANY). Returns 0 or -1 with err. */
int jsonsql_catalog_from_db(jsonsql_catalog *cat, sqlite3 *db, const char *skip_prefix,
                            char *err, size_t errlen);
/* Column lookup: index within the table, or -1. ntables/columns for iteration. */
int jsonsql_catalog_column(const jsonsql_catalog *cat, const char *table, const char *column,
                           enum jsonsql_type *type);
int jsonsql_catalog_ncolumns(const jsonsql_catalog *cat, const char *table); /* -1: no table */
const char *jsonsql_catalog_column_name(const jsonsql_catalog *cat, const char *table, int i);

struct jsonsql_limits {
    int max_depth;          /* JSON nesting of the statement, default 32 */
    size_t max_sql;         /* bytes of generated SQL, default 64 KiB */
    int max_params;         /* bound values, default 10000 */
};

/* A bound value. */
struct jsonsql_value {
    int type;               /* SQLITE_NULL, SQLITE_INTEGER, SQLITE_FLOAT, SQLITE_TEXT */
    int64_t i;
    double d;
    char *s;                /* SQLITE_TEXT: owned, NUL-terminated, n bytes */
    size_t n;
};

struct jsonsql_stmt {
    enum jsonsql_kind kind;
    char *sql;                      /* SQLite SQL, ?NNN placeholders */
    struct jsonsql_value *params;   /* nparams values for ?1..?N */
    int nparams;
    int ncols;                      /* result columns (select list, or returning) */
    enum jsonsql_type *col_types;   /* per result column; JSQL_ANY when computed */
    char *table;                    /* insert/update/delete: target table; select: first from table */
};

/* method is "select", "insert", "update" or "delete"; params is its JSON-RPC
 * params object (numbers exact when parsed with json_parse). limits NULL (or a
 * field <= 0) means defaults. Returns 0 and fills *out, or -1 with err "path: what".
 * Name rules: a string is a column where a column must be (data items, group_by,
 * order_by, the left operand of a comparison/in, the first argument of a
 * function); as a right operand, a later function argument or any argument of
 * concat it is a column when it names one in scope, else a bound string; values
 * of in-lists, insert `values` and update `set` are always values, and a
 * {"select":...} there is refused, never stored as text. Function names are
 * matched ignoring case, operators and keys exactly; a call may be written
 * {"function":F,"args":A} or {F:A} (docs/protocol.md lists the syntax).
 * like/ilike escape with '\' as PostgreSQL does; an empty in-list is false.
 * Answers follow PostgreSQL: col_types carry a call's result type (max of a
 * boolean BOOL, avg REAL, count INT, sum of integers INT), and what SQLite
 * would answer differently is refused here with the construct named (an
 * ungrouped column in an aggregating select, sum of a boolean, like on a
 * number, ...) or at run time by the functions below (division by zero).
 * update and delete without `where` touch every row,
 * as on the portal: callers that must not allow that check for `where` first. */
int jsonsql_compile(const jsonsql_catalog *cat, const char *method, const cJSON *params,
                    const struct jsonsql_limits *limits, struct jsonsql_stmt *out,
                    char *err, size_t errlen);
/* Bind all params to a prepared statement of out->sql (text is copied, so st may
 * be freed before ps). Returns SQLITE_OK or an sqlite code. */
int jsonsql_bind(const struct jsonsql_stmt *st, sqlite3_stmt *ps);
void jsonsql_stmt_free(struct jsonsql_stmt *st);

/* Append the current row of ps as a JSON array, shaping column i by
 * st->col_types[i] (BOOL -> true/false, JSON -> raw when the stored text is valid
 * JSON, else a string; TEXT -> always a string; INT -> an integer, also from a
 * whole float or from text that is an integer's digits (jsonsql_sum past 64 bits); REAL -> a float, also from an integer (coalesce(real, 0));
 * ANY -> by storage class; NULL -> null; BLOB -> the string "\\x" + hex,
 * json_write_blob()). */
void jsonsql_write_row(struct buf *b, const struct jsonsql_stmt *st, sqlite3_stmt *ps);

/* Make a connection run compiled SQL as PostgreSQL would; call once per
 * connection before preparing. Registers regexp_replace(str, pattern, repl
 * [, flags]) (POSIX extended regex; flags 'g' = every match, default the first
 * only; 'i' = ignore case; repl may use \1..\9 and \&; bounded because
 * glibc's matcher ignores the time limit: no back-references in the pattern, at
 * most 1000 pattern elements with repetitions expanded, text up to 8 KiB, the
 * result up to the connection's length limit — beyond them an error), overrides lower() and
 * upper() with a case mapping that also covers Latin-1, Latin Extended-A, Greek
 * and Cyrillic (so ilike works on "Иван"), and turns on PRAGMA
 * case_sensitive_like (PostgreSQL's LIKE is case-sensitive; ilike is the
 * case-insensitive one). Also the helpers compiled SQL calls:
 * jsonsql_tscmp(value, literal) compares a text column with a date/timestamp
 * literal as PostgreSQL compares timestamps (-1/0/1; an error for a stored
 * zone offset), jsonsql_divisor(x) fails "division by zero" for 0,
 * jsonsql_bigint(x) fails "bigint out of range" for integer arithmetic that
 * overflowed (SQLite made it a float),
 * jsonsql_avg(x) is avg of integers as PostgreSQL's numeric gives it (exact,
 * an integer from about 1e16 up, else a float), jsonsql_sum(x) sum of
 * integers exact past 64 bits (then its digits as text). Idempotent: a connection that has them already keeps
 * its prepared statements. Returns SQLITE_OK or an sqlite code. */
int jsonsql_register_functions(sqlite3 *db);
/* 1 when name (any case) is one of the helpers above that compiled SQL calls
 * (jsonsql_tscmp, jsonsql_divisor, jsonsql_bigint, jsonsql_avg, jsonsql_sum), for an
 * authorizer that whitelists
 * functions; else 0. The SQL functions the compiler maps JSONSQL's to are
 * SQLite's own (plus regexp_replace, lower, upper): see jsonsql_call.c. */
int jsonsql_helper_function(const char *name);

#endif
