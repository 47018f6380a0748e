/* jsonsql_fixture.h — the JSONSQL compiler's test fixture, shared by
 * test_jsonsql.c and test_jsonsql_pg.c: an in-memory SQLite with the portal's
 * tables, a catalog read from it, and helpers that compile a statement, assert
 * its SQL, run it and assert the rows as the row writer renders them, or
 * assert a compile error exactly. Include after cmocka.h. */
#ifndef IA_TEST_JSONSQL_FIXTURE_H
#define IA_TEST_JSONSQL_FIXTURE_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/buf.h"
#include "agent/base/json.h"
#include "agent/jsonsql/jsonsql.h"
#include "tests/jsonsql_schema.h"

struct fx {
    sqlite3 *db;
    jsonsql_catalog *cat;
};

static inline int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    char err[256];
    assert_int_equal(sqlite3_open(":memory:", &f->db), SQLITE_OK);
    assert_int_equal(jsonsql_register_functions(f->db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(f->db, JSONSQL_TEST_SCHEMA, NULL, NULL, NULL), SQLITE_OK);
    f->cat = jsonsql_catalog_new();
    if (jsonsql_catalog_from_db(f->cat, f->db, "_ia_", err, sizeof err) != 0) fail_msg("%s", err);
    *state = f;
    return 0;
}

static inline int teardown(void **state)
{
    struct fx *f = *state;
    jsonsql_catalog_free(f->cat);
    sqlite3_close(f->db);
    free(f);
    return 0;
}

static inline cJSON *parse(const char *json)
{
    cJSON *j = NULL;
    char err[256];
    if (json_parse(json, strlen(json), 0, &j, err, sizeof err) != 0) fail_msg("bad test JSON %s: %s", json, err);
    return j;
}

/* Run a compiled statement; rows as a JSON array of row arrays (caller frees). */
static inline char *run(struct fx *f, const struct jsonsql_stmt *st)
{
    sqlite3_stmt *ps;
    if (sqlite3_prepare_v2(f->db, st->sql, -1, &ps, NULL) != SQLITE_OK)
        fail_msg("prepare %s: %s", st->sql, sqlite3_errmsg(f->db));
    assert_int_equal(jsonsql_bind(st, ps), SQLITE_OK);
    struct buf b = {0};
    buf_putc(&b, '[');
    int rc, n = 0;
    while ((rc = sqlite3_step(ps)) == SQLITE_ROW) {
        if (n++) buf_putc(&b, ',');
        jsonsql_write_row(&b, st, ps);
    }
    if (rc != SQLITE_DONE) fail_msg("step %s: %s", st->sql, sqlite3_errmsg(f->db));
    sqlite3_finalize(ps);
    buf_putc(&b, ']');
    return buf_detach(&b);
}

/* Compile method/json, expect sql exactly, run it, expect rows exactly. */
static inline void q(struct fx *f, const char *method, const char *json, const char *sql, const char *rows)
{
    cJSON *p = parse(json);
    struct jsonsql_stmt st;
    char err[512];
    if (jsonsql_compile(f->cat, method, p, NULL, &st, err, sizeof err) != 0)
        fail_msg("compile %s: %s", json, err);
    if (strcmp(st.sql, sql) != 0) fail_msg("%s\n  sql:  %s\n  want: %s", json, st.sql, sql);
    char *got = run(f, &st);
    if (strcmp(got, rows) != 0) fail_msg("%s\n  rows: %s\n  want: %s", json, got, rows);
    free(got);
    jsonsql_stmt_free(&st);
    cJSON_Delete(p);
}

static inline void sel(struct fx *f, const char *json, const char *sql, const char *rows)
{
    q(f, "select", json, sql, rows);
}

/* Compile fails with exactly this message. */
static inline void el(struct fx *f, const char *method, const cJSON *p, const struct jsonsql_limits *lim,
               const char *want, const char *what)
{
    struct jsonsql_stmt st;
    char err[512];
    if (jsonsql_compile(f ? f->cat : NULL, method, p, lim, &st, err, sizeof err) == 0)
        fail_msg("%s compiled to %s, want error %s", what, st.sql, want);
    if (strcmp(err, want) != 0) fail_msg("%s\n  err:  %s\n  want: %s", what, err, want);
    assert_null(st.sql);
    assert_null(st.params);
}

static inline void e(struct fx *f, const char *method, const char *json, const char *want)
{
    cJSON *p = parse(json);
    el(f, method, p, NULL, want, json);
    cJSON_Delete(p);
}

static inline void ese(struct fx *f, const char *json, const char *want) { e(f, "select", json, want); }

static inline int64_t count_rows(struct fx *f, const char *sql)
{
    sqlite3_stmt *ps;
    assert_int_equal(sqlite3_prepare_v2(f->db, sql, -1, &ps, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(ps), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(ps, 0);
    sqlite3_finalize(ps);
    return n;
}

/* A where over subscriber: its SQL, and the ids it selects (ordered by id). */
struct where_case {
    const char *where, *sql, *rows;
};

static inline void where_cases(struct fx *f, const struct where_case *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char json[512], sql[512];
        snprintf(json, sizeof json, "{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":%s,\"order_by\":\"id\"}",
                 c[i].where);
        snprintf(sql, sizeof sql, "SELECT \"id\" FROM \"subscriber\" WHERE %s ORDER BY \"id\" NULLS LAST", c[i].sql);
        sel(f, json, sql, c[i].rows);
    }
}

#endif
