/* bench_jsonsql.c — statements per second through the JSONSQL compiler.
 *
 * Two statement shapes the local API serves:
 *   point: a primary-key lookup of five subscriber columns;
 *   join:  subscriber JOIN terminal with a where tree (and/or/not/is/in/like),
 *          order_by and limit.
 * Each is measured compile-only (from a parsed tree) and compiled + prepared +
 * bound + stepped to the end + rows written as JSON + finalized, on an
 * in-memory SQLite with 10,000 subscribers and 20,000 terminals. 1,024
 * different ids are cycled so the lookups are not one cached row.
 * Usage: bench_jsonsql [SECONDS per measurement, default 2]. One JSON line
 * per result on stdout; progress on stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/base/buf.h"
#include "agent/base/json.h"
#include "agent/jsonsql/jsonsql.h"

#define NVARIANTS 1024
#define SUBSCRIBERS 10000

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "bench_jsonsql: %s: %s\n", what, msg);
    exit(1);
}

static sqlite3 *make_db(void)
{
    sqlite3 *db;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK) die("open", sqlite3_errmsg(db));
    if (jsonsql_register_functions(db) != SQLITE_OK) die("functions", sqlite3_errmsg(db));
    struct buf b = {0};
    buf_puts(&b, "CREATE TABLE subscriber (id INTEGER PRIMARY KEY, username TEXT, disabled BOOLEAN,"
                 " balance REAL, created_at TIMESTAMP, updated_at TIMESTAMP, info JSON);"
                 "CREATE TABLE terminal (id INTEGER PRIMARY KEY, subscriber_id BIGINT, mac_addr TEXT,"
                 " model TEXT, active BOOLEAN);"
                 "CREATE INDEX terminal_sub ON terminal(subscriber_id);");
    /* Wide tables as in real deployments, so the catalog is not a toy. */
    const struct { const char *name; int ncols; } wide[] = {{"media", 74}, {"domain", 167},
                                                             {"tv_channel", 13}, {"tv_program", 11}};
    for (size_t t = 0; t < sizeof wide / sizeof wide[0]; t++) {
        buf_printf(&b, "CREATE TABLE %s (id INTEGER PRIMARY KEY", wide[t].name);
        for (int i = 1; i < wide[t].ncols; i++) buf_printf(&b, ", c%d TEXT", i);
        buf_puts(&b, ");");
    }
    buf_puts(&b, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)"
                 " INSERT INTO subscriber SELECT i, 'user' || i, i % 7 = 0, i * 0.25,"
                 " '2024-01-01 00:00:00', '2024-06-01 00:00:00', '{\"tv\":true}' FROM n;"
                 "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)"
                 " INSERT INTO terminal SELECT i, (i + 1) / 2, printf('AA:BB:%06X', i),"
                 " CASE i % 3 WHEN 0 THEN 'mag250' WHEN 1 THEN 'tvip' ELSE 'Тест' END, i % 2 FROM n;");
    char *msg = NULL;
    if (sqlite3_exec(db, b.p, NULL, NULL, &msg) != SQLITE_OK) die("schema", msg);
    buf_free(&b);
    return db;
}

/* NVARIANTS parsed copies of tmpl with "@ID@" replaced by spread-out ids. */
static void make_trees(cJSON **trees, const char *tmpl)
{
    const char *at = strstr(tmpl, "@ID@");
    for (int i = 0; i < NVARIANTS; i++) {
        char err[256];
        int id = 1 + (int)(((unsigned)i * 2654435761u) % SUBSCRIBERS);
        struct buf b = {0};
        buf_append(&b, tmpl, (size_t)(at - tmpl));
        buf_printf(&b, "%d", id);
        buf_puts(&b, at + 4);
        if (json_parse(b.p, b.len, 0, &trees[i], err, sizeof err) != 0) die("parse", err);
        buf_free(&b);
    }
}

/* One measurement: run for `seconds`, print a JSON line. exec adds SQLite. */
static void measure(const char *name, const jsonsql_catalog *cat, sqlite3 *db, cJSON **trees,
                    int exec, double seconds)
{
    struct buf out = {0};
    char err[256];
    long long n = 0, rows = 0;
    size_t sqlbytes = 0;
    fprintf(stderr, "bench_jsonsql: %s ...\n", name);
    double t0 = now(), t = t0;
    while (t - t0 < seconds) {
        for (int k = 0; k < 256; k++, n++) {
            struct jsonsql_stmt st;
            if (jsonsql_compile(cat, "select", trees[n % NVARIANTS], NULL, &st, err, sizeof err) != 0)
                die("compile", err);
            sqlbytes = strlen(st.sql);
            if (exec) {
                sqlite3_stmt *ps;
                if (sqlite3_prepare_v2(db, st.sql, -1, &ps, NULL) != SQLITE_OK)
                    die("prepare", sqlite3_errmsg(db));
                if (jsonsql_bind(&st, ps) != SQLITE_OK) die("bind", sqlite3_errmsg(db));
                buf_reset(&out);
                int rc;
                while ((rc = sqlite3_step(ps)) == SQLITE_ROW) {
                    jsonsql_write_row(&out, &st, ps);
                    rows++;
                }
                if (rc != SQLITE_DONE) die("step", sqlite3_errmsg(db));
                sqlite3_finalize(ps);
            }
            jsonsql_stmt_free(&st);
        }
        t = now();
    }
    double rate = (double)n / (t - t0);
    printf("{\"bench\":\"%s\",\"unit\":\"stmts/s\",\"value\":%.1f,\"params\":{\"statements\":%lld,"
           "\"seconds\":%.3f,\"sql_bytes\":%zu,\"rows_per_stmt\":%.2f,\"threads\":1}}\n",
           name, rate, n, t - t0, sqlbytes, exec ? (double)rows / (double)n : 0.0);
    fflush(stdout);
    buf_free(&out);
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 2.0;
    if (seconds <= 0) seconds = 2.0;
    sqlite3 *db = make_db();
    jsonsql_catalog *cat = jsonsql_catalog_new();
    char err[256];
    if (jsonsql_catalog_from_db(cat, db, NULL, err, sizeof err) != 0) die("catalog", err);

    cJSON **point = calloc(NVARIANTS, sizeof *point), **join = calloc(NVARIANTS, sizeof *join);
    if (!point || !join) die("memory", "out of memory");
    make_trees(point, "{\"data\":[\"id\",\"username\",\"disabled\",\"balance\",\"updated_at\"],"
                      "\"from\":\"subscriber\",\"where\":{\"eq\":[\"id\",@ID@]},\"limit\":1}");
    make_trees(join, "{\"data\":[\"s.id\",\"s.username\",\"t.mac_addr\",\"t.model\",\"t.active\"],"
                     "\"from\":[{\"table\":\"subscriber\",\"as\":\"s\"},{\"join\":\"terminal\",\"as\":\"t\","
                     "\"on\":{\"eq\":[\"s.id\",\"t.subscriber_id\"]}}],"
                     "\"where\":{\"and\":[{\"eq\":[\"s.id\",@ID@]},{\"or\":[{\"eq\":[\"t.active\",true]},"
                     "{\"like\":[\"t.model\",\"mag%\"]}]},{\"not\":{\"is\":[\"s.disabled\",true]}},"
                     "{\"in\":[\"t.model\",[\"mag250\",\"tvip\",\"Тест\"]]}]},"
                     "\"order_by\":[\"t.id\"],\"limit\":100}");

    measure("jsonsql_compile_point", cat, db, point, 0, seconds);
    measure("jsonsql_compile_join", cat, db, join, 0, seconds);
    measure("jsonsql_exec_point", cat, db, point, 1, seconds);
    measure("jsonsql_exec_join", cat, db, join, 1, seconds);

    for (int i = 0; i < NVARIANTS; i++) {
        cJSON_Delete(point[i]);
        cJSON_Delete(join[i]);
    }
    free(point);
    free(join);
    jsonsql_catalog_free(cat);
    sqlite3_close(db);
    return 0;
}
