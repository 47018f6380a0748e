/* fuzz_jsonsql.c — libFuzzer target for the JSONSQL compiler (agent/jsonsql/jsonsql.h).
 *
 * Input: byte 0 picks the method (bits 0-1: select, insert, update, delete; so
 * the seeds start with '0'..'3') and, with bit 2 set, tight limits (depth 6,
 * 512 bytes of SQL, 8 parameters) instead of the defaults; the rest is the
 * params object as JSON text (json_parse, depth 64, so the compiler's own depth
 * check is what refuses deep statements).
 * The catalog is built from an in-memory database the way tests/unit/
 * test_jsonsql.c builds it (the same tables, "_ia_" tables left out), once.
 * Oracles, for every statement the compiler accepts:
 *   - the SQL prepares on that database as exactly one statement (a prepare
 *     error on compiler output is a compiler bug), binds, and has as many
 *     parameters as the compiler made and as many result columns as it says;
 *   - a select is read-only, a write is not;
 *   - an authorizer sees only catalog tables read or written (never _ia_* or
 *     sqlite_*), no pragma, attach, transaction or other statement, and only
 *     functions the compiler's whitelist maps to (plus those SQLite uses
 *     inside LIKE);
 *   - a select steps (at most 64 rows, a bounded number of VM steps) and every
 *     row jsonsql_write_row renders is a JSON array of ncols values; a write
 *     steps inside a savepoint that is rolled back, so the fixture never
 *     changes.
 * For a refused statement: err says something and the statement is empty.
 * Seeds: tests/fuzz/corpus/jsonsql/ (statements from test_jsonsql.c and
 * docs/protocol.md; crash-* are findings kept as regressions).
 * Run: tests/fuzz/run.sh. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agent/base/buf.h"
#include "agent/base/json.h"
#include "agent/jsonsql/jsonsql.h"
#include "tests/jsonsql_schema.h"

/* libFuzzer's entry points take no context: the fixture made once at start-up
 * is the process state here. */
static sqlite3 *db;
static jsonsql_catalog *cat;

/* The unit tests' tables (tests/jsonsql_schema.h), and a secret in the hidden one. */
static const char schema[] = JSONSQL_TEST_SCHEMA "INSERT INTO _ia_meta VALUES ('secret');";

static const char *const catalog_tables[] = {"subscriber", "terminal", "package", "odd \"name"};

/* SQL functions compiled statements may call: the whitelist's targets
 * (jsonsql_call.c FNS; concat of a boolean uses substr), the helpers of
 * comparisons and divisions (jsonsql_fn.c) and what SQLite runs for LIKE ... ESCAPE. */
static const char *const sql_functions[] = {"count", "max", "min", "sum", "avg", "regexp_replace", "lower",
                                            "upper", "coalesce", "nullif", "length", "abs", "round", "substr",
                                            "jsonsql_tscmp", "jsonsql_divisor", "jsonsql_avg", "jsonsql_bigint", "jsonsql_sum", "like"};

static int is_catalog_table(const char *t)
{
    for (size_t i = 0; i < sizeof catalog_tables / sizeof *catalog_tables; i++)
        if (t && !strcmp(t, catalog_tables[i])) return 1;
    return 0;
}

static int authorize(void *ctx, int op, const char *a, const char *b, const char *dbname, const char *trigger)
{
    const char *why = NULL;
    switch (op) {
    case SQLITE_SELECT:
    case SQLITE_RECURSIVE:
        break;
    case SQLITE_READ:
    case SQLITE_INSERT:
    case SQLITE_UPDATE:
    case SQLITE_DELETE:
        if (!is_catalog_table(a)) why = "a table outside the catalog";
        break;
    case SQLITE_FUNCTION: {
        int ok = 0;
        for (size_t i = 0; i < sizeof sql_functions / sizeof *sql_functions; i++)
            ok |= b && !strcasecmp(b, sql_functions[i]);
        if (!ok) why = "a function outside the whitelist";
        break;
    }
    default:
        why = "an action a JSONSQL statement never needs";
        break;
    }
    if (why) {
        fprintf(stderr, "authorizer: %s: op %d (%s, %s)\n", why, op, a ? a : "-", b ? b : "-");
        abort();
    }
    return SQLITE_OK;
}

/* Stop runaway statements (cross joins of subqueries): a step budget. */
static int progress(void *ctx)
{
    return ++*(int *)ctx > 2000;
}

static void cleanup(void)
{
    jsonsql_catalog_free(cat);
    sqlite3_close(db);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[512];
    atexit(cleanup);
    cat = jsonsql_catalog_new();
    if (sqlite3_open(":memory:", &db) != SQLITE_OK || jsonsql_register_functions(db) != SQLITE_OK ||
        sqlite3_exec(db, schema, NULL, NULL, NULL) != SQLITE_OK ||
        jsonsql_catalog_from_db(cat, db, "_ia_", err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_jsonsql: fixture: %s\n", sqlite3_errmsg(db));
        abort();
    }
    return 0;
}

static void run(const struct jsonsql_stmt *st)
{
    sqlite3_stmt *ps = NULL;
    const char *tail = NULL;
    int budget = 0;
    sqlite3_set_authorizer(db, authorize, NULL);
    int rc = sqlite3_prepare_v2(db, st->sql, -1, &ps, &tail);
    sqlite3_set_authorizer(db, NULL, NULL);
    if (rc != SQLITE_OK || !ps) {
        fprintf(stderr, "compiled SQL does not prepare: %s\n  sql: %s\n", sqlite3_errmsg(db), st->sql);
        abort();
    }
    if (tail && *tail) {
        fprintf(stderr, "compiled SQL is more than one statement: %s\n", st->sql);
        abort();
    }
    if (sqlite3_bind_parameter_count(ps) != st->nparams || jsonsql_bind(st, ps) != SQLITE_OK) {
        fprintf(stderr, "%d parameters in the SQL, %d made: %s\n", sqlite3_bind_parameter_count(ps), st->nparams,
                st->sql);
        abort();
    }
    if (sqlite3_column_count(ps) != st->ncols) {
        fprintf(stderr, "%d result columns, compiler says %d: %s\n", sqlite3_column_count(ps), st->ncols, st->sql);
        abort();
    }
    if (!sqlite3_stmt_readonly(ps) != (st->kind != JSQL_SELECT)) {
        fprintf(stderr, "kind %d but read-only %d: %s\n", st->kind, sqlite3_stmt_readonly(ps), st->sql);
        abort();
    }
    int write = st->kind != JSQL_SELECT;
    if (write && sqlite3_exec(db, "SAVEPOINT fuzz", NULL, NULL, NULL) != SQLITE_OK) abort();
    sqlite3_progress_handler(db, 100, progress, &budget);
    struct buf row = {0};
    for (int n = 0; n < 64 && (rc = sqlite3_step(ps)) == SQLITE_ROW; n++) {
        buf_reset(&row);
        jsonsql_write_row(&row, st, ps);
        /* cJSON, not json_parse: a TEXT or BLOB value may hold NUL, written \u0000. */
        cJSON *j = cJSON_ParseWithLength(row.p, row.len);
        if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) != st->ncols) {
            fprintf(stderr, "row is not a JSON array of %d values: %.300s\n", st->ncols, row.p);
            abort();
        }
        cJSON_Delete(j);
    }
    sqlite3_progress_handler(db, 0, NULL, NULL);
    buf_free(&row);
    sqlite3_finalize(ps);
    if (write && sqlite3_exec(db, "ROLLBACK TO fuzz; RELEASE fuzz", NULL, NULL, NULL) != SQLITE_OK) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static const char *const methods[] = {"select", "insert", "update", "delete"};
    static const struct jsonsql_limits tight = {.max_depth = 6, .max_sql = 512, .max_params = 8};
    const char *method = methods[data[0] & 3];
    const struct jsonsql_limits *lim = data[0] & 4 ? &tight : NULL;
    cJSON *params = NULL;
    char err[512];
    if (json_parse((const char *)data + 1, size - 1, 64, &params, err, sizeof err) != 0) return 0;
    struct jsonsql_stmt st;
    err[0] = '\0';
    if (jsonsql_compile(cat, method, params, lim, &st, err, sizeof err) == 0) {
        static const enum jsonsql_kind kinds[] = {JSQL_SELECT, JSQL_INSERT, JSQL_UPDATE, JSQL_DELETE};
        if (!st.sql || st.kind != kinds[data[0] & 3] || st.nparams < 0 || st.ncols < 0 ||
            (st.ncols && !st.col_types) || (st.kind != JSQL_SELECT && !st.table))
            abort();
        if (lim && (strlen(st.sql) > lim->max_sql || st.nparams > lim->max_params)) {
            fprintf(stderr, "limits exceeded: %zu bytes, %d params\n", strlen(st.sql), st.nparams);
            abort();
        }
        run(&st);
        jsonsql_stmt_free(&st);
    } else if (!err[0] || st.sql || st.params) {
        fprintf(stderr, "refused without a message or with a statement: \"%s\"\n", err);
        abort();
    }
    cJSON_Delete(params);
    return 0;
}
