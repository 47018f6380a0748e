/* test_ref_translate.c — the reference portal's JSONSQL -> PostgreSQL text
 * (tests/ref_portal/translate.h) and its value writer (server.h): each accepted
 * form as the exact SQL it becomes, the page cap, column-or-literal operands,
 * quoting against injection, writes, and every refusal naming what it refused. (The SQL
 * running on PostgreSQL is tests/scenario/ref_portal.sh.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/buf.h"
#include "agent/base/json.h"
#include "tests/ref_portal/server.h"
#include "tests/ref_portal/translate.h"

static struct ref_catalog cat_new(void)
{
    static const char *const sub[] = {"id", "username", "disabled", "updated_at"};
    static const char *const term[] = {"id", "subscriber_id", "mac_addr", "model", "active"};
    struct ref_catalog cat = {0};
    ref_catalog_add(&cat, "subscriber", sub, 4);
    ref_catalog_add(&cat, "terminal", term, 5);
    return cat;
}

/* Translate json as method ("select" with the page cap, or a write); returns the
 * SQL or "ERR: message" (caller frees). */
static char *run(const char *method, const char *json, int64_t cap)
{
    struct ref_catalog cat = cat_new();
    cJSON *doc = NULL;
    char err[512];
    assert_int_equal(json_parse(json, strlen(json), 64, &doc, err, sizeof err), 0);
    struct buf out = {0};
    char *r;
    int rc = !strcmp(method, "select") ? ref_translate_select(&cat, doc, cap, &out, err, sizeof err)
                                       : ref_translate_write(&cat, method, doc, &out, err, sizeof err);
    if (rc == 0) {
        r = buf_detach(&out);
    } else {
        r = malloc(strlen(err) + 6);
        sprintf(r, "ERR: %s", err);
    }
    buf_free(&out);
    cJSON_Delete(doc);
    ref_catalog_free(&cat);
    return r;
}

static char *tr(const char *json, int64_t cap) { return run("select", json, cap); }
static char *trw(const char *method, const char *json) { return run(method, json, 0); }

#define SQL(json, cap, want)                                  \
    do {                                                      \
        char *got_ = tr(json, cap);                           \
        if (strcmp(got_, want)) print_error("%s\n", json);    \
        assert_string_equal(got_, want);                      \
        free(got_);                                           \
    } while (0)

static void test_select_forms(void **state)
{
    SQL("{\"data\":[\"*\"],\"from\":\"subscriber\",\"order_by\":\"id\",\"limit\":10}", 0,
        "SELECT * FROM \"subscriber\" ORDER BY \"id\" LIMIT 10");
    SQL("{\"data\":\"id\",\"from\":{\"table\":\"subscriber\",\"as\":\"s\"}}", 0,
        "SELECT \"id\" FROM \"subscriber\" AS \"s\"");
    SQL("{\"data\":[\"s.*\",{\"t\":\"model\"},\"t.mac_addr\"],\"from\":[{\"table\":\"subscriber\",\"as\":\"s\"},"
        "{\"join\":\"terminal\",\"as\":\"t\",\"join_type\":\"left\",\"on\":{\"eq\":[{\"s\":\"id\"},{\"t\":\"subscriber_id\"}]}}]}",
        0,
        "SELECT \"s\".*, \"t\".\"model\", \"t\".\"mac_addr\" FROM \"subscriber\" AS \"s\" LEFT JOIN \"terminal\" AS \"t\" "
        "ON (\"s\".\"id\" = \"t\".\"subscriber_id\")");
    SQL("{\"data\":[\"id\"],\"from\":[\"subscriber\",{\"join\":\"terminal\",\"type\":\"cross\"}]}", 0,
        "SELECT \"id\" FROM \"subscriber\" CROSS JOIN \"terminal\"");
    SQL("{\"data\":[\"id\"],\"from\":{\"select\":{\"data\":[\"id\"],\"from\":\"terminal\"},\"as\":\"q\"}}", 0,
        "SELECT \"id\" FROM (SELECT \"id\" FROM \"terminal\") AS \"q\"");
    SQL("{\"data\":[\"model\",{\"function\":\"count\",\"args\":[\"*\"],\"as\":\"n\"}],\"from\":\"terminal\","
        "\"group_by\":\"model\",\"having\":{\"gt\":[{\"function\":\"count\",\"args\":[\"*\"]},1]},"
        "\"order_by\":[\"n\",\"model\"],\"limit\":5,\"offset\":2,\"distinct\":true}", 0,
        "SELECT DISTINCT \"model\", count(*) AS \"n\" FROM \"terminal\" GROUP BY \"model\" HAVING (count(*) > 1) "
        "ORDER BY \"n\", \"model\" LIMIT 5 OFFSET 2");
}

static void test_functions(void **state)
{
    SQL("{\"data\":[{\"function\":\"count\",\"args\":{\"function\":\"distinct\",\"args\":\"model\"}}],\"from\":\"terminal\"}",
        0, "SELECT count(DISTINCT \"model\") FROM \"terminal\"");
    /* an aggregate written as its own key with "distinct": true */
    SQL("{\"data\":[{\"count\":\"model\",\"distinct\":true,\"as\":\"n\"}],\"from\":\"terminal\"}", 0,
        "SELECT count(DISTINCT \"model\") AS \"n\" FROM \"terminal\"");
    SQL("{\"data\":[{\"function\":\"nullif\",\"args\":[\"model\",\"x\"]}],\"from\":\"terminal\"}", 0,
        "SELECT nullif(\"model\", 'x') FROM \"terminal\"");
    SQL("{\"data\":[{\"function\":\"distinct\",\"args\":[\"model\",\"active\"]}],\"from\":\"terminal\"}", 0,
        "SELECT DISTINCT \"model\", \"active\" FROM \"terminal\"");
    SQL("{\"data\":[{\"concat\":[\"model\",\"-\",1],\"as\":\"x\"},{\"lower\":\"model\"}],\"from\":\"terminal\"}", 0,
        "SELECT concat(\"model\", '-', 1) AS \"x\", lower(\"model\") FROM \"terminal\"");
    SQL("{\"data\":[{\"function\":\"regexp_replace\",\"args\":[\"model\",\"\\\\d+\",\"\",\"g\"]}],\"from\":\"terminal\"}", 0,
        "SELECT regexp_replace(\"model\", '\\d+', '', 'g') FROM \"terminal\"");
    SQL("{\"data\":[{\"function\":\"coalesce\",\"args\":[\"active\",false]},{\"add\":[\"id\",-1,2.5]}],\"from\":\"terminal\"}",
        0, "SELECT coalesce(\"active\", FALSE), (\"id\" + (-1) + 2.5) FROM \"terminal\"");
}

static void test_where(void **state)
{
    /* Strings: a column when they name one (of a table named, or an `as`), else literals. */
    SQL("{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"and\":[{\"gte\":[\"updated_at\",\"2025-01-01\"]},"
        "{\"or\":[{\"eq\":[\"username\",\"id\"]},{\"neq\":[\"username\",\"it's\"]}]},{\"not\":\"disabled\"},"
        "{\"is\":[\"disabled\",true]},{\"is_not\":[\"updated_at\",null]},{\"ilike\":[\"username\",\"%a%\"]}]}}", 0,
        "SELECT \"id\" FROM \"subscriber\" WHERE ((\"updated_at\" >= '2025-01-01') AND ((\"username\" = \"id\") OR "
        "(\"username\" <> 'it''s')) AND (NOT \"disabled\") AND (\"disabled\" IS TRUE) AND (\"updated_at\" IS NOT NULL) "
        "AND (\"username\" ILIKE '%a%'))");
    /* model is terminal's column, not subscriber's: a literal here. */
    SQL("{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"eq\":[\"username\",\"model\"]}}", 0,
        "SELECT \"id\" FROM \"subscriber\" WHERE (\"username\" = 'model')");
    SQL("{\"data\":[\"id\"],\"from\":[\"subscriber\",\"terminal\"],\"where\":{\"eq\":[\"username\",\"model\"]}}", 0,
        "SELECT \"id\" FROM \"subscriber\", \"terminal\" WHERE (\"username\" = \"model\")");
    SQL("{\"data\":[{\"function\":\"count\",\"args\":[\"*\"],\"as\":\"n\"}],\"from\":\"subscriber\",\"having\":{\"gt\":[\"n\",\"n\"]}}", 0,
        "SELECT count(*) AS \"n\" FROM \"subscriber\" HAVING (\"n\" > \"n\")");
    SQL("{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"in\":[\"id\",[1,9223372036854775807]]}}", 0,
        "SELECT \"id\" FROM \"subscriber\" WHERE (\"id\" IN (1, 9223372036854775807))");
    SQL("{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"in\":[\"id\",1,2,3]}}", 0,
        "SELECT \"id\" FROM \"subscriber\" WHERE (\"id\" IN (1, 2, 3))");
    SQL("{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"in\":[\"id\",{\"values\":[[1],[2]]}]}}", 0,
        "SELECT \"id\" FROM \"subscriber\" WHERE (\"id\" IN (VALUES (1), (2)))");
    SQL("{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"in\":[\"id\",{\"select\":{\"data\":\"subscriber_id\","
        "\"from\":\"terminal\"}}]}}", 0,
        "SELECT \"id\" FROM \"subscriber\" WHERE (\"id\" IN (SELECT \"subscriber_id\" FROM \"terminal\"))");
    SQL("{\"data\":[{\"mod\":[{\"div\":[\"id\",2]},3]}],\"from\":\"subscriber\",\"where\":{\"lt\":[{\"sub\":[\"id\",1]},"
        "{\"mul\":[2,3]}]}}", 0,
        "SELECT ((\"id\" / 2) % 3) FROM \"subscriber\" WHERE ((\"id\" - 1) < (2 * 3))");
}

static void test_page_cap(void **state)
{
    SQL("{\"data\":\"id\",\"from\":\"subscriber\"}", 700, "SELECT \"id\" FROM \"subscriber\" LIMIT 700");
    SQL("{\"data\":\"id\",\"from\":\"subscriber\",\"limit\":701}", 700, "SELECT \"id\" FROM \"subscriber\" LIMIT 700");
    SQL("{\"data\":\"id\",\"from\":\"subscriber\",\"limit\":3}", 700, "SELECT \"id\" FROM \"subscriber\" LIMIT 3");
    /* Only the outermost select: a subquery's rows are not a page. */
    SQL("{\"data\":\"id\",\"from\":\"subscriber\",\"where\":{\"in\":[\"id\",{\"select\":{\"data\":\"id\",\"from\":\"terminal\"}}]}}",
        5, "SELECT \"id\" FROM \"subscriber\" WHERE (\"id\" IN (SELECT \"id\" FROM \"terminal\")) LIMIT 5");
}

static void test_refusals(void **state)
{
    SQL("{\"data\":\"id\",\"from\":\"subscriber\",\"order_by\":{\"desc\":\"id\"}}", 0,
        "ERR: order_by: only column names");
    /* "col desc"/"col asc", as the agent takes them. */
    SQL("{\"data\":\"id\",\"from\":\"subscriber\",\"order_by\":[\"balance desc\",\"id ASC\"]}", 0,
        "SELECT \"id\" FROM \"subscriber\" ORDER BY \"balance\" DESC, \"id\" ASC");
    SQL("{\"data\":\"id\",\"from\":\"subscriber\",\"order_by\":\"-id\"}", 0,
        "ERR: order_by: \"-id\" is not a plain name ([A-Za-z_][A-Za-z0-9_]*)");
    SQL("{\"data\":\"id\",\"from\":\"subscriber\",\"sort\":\"id\"}", 0, "ERR: select: unsupported key \"sort\"");
    SQL("{\"from\":\"subscriber\"}", 0, "ERR: select: data is missing");
    SQL("{\"data\":[{\"function\":\"pg_sleep\",\"args\":1}]}", 0, "ERR: data: unsupported function \"pg_sleep\"");
    SQL("{\"data\":\"id\",\"from\":\"subscriber\",\"where\":{\"similar\":[\"id\",1]}}", 0,
        "ERR: unsupported operator \"similar\"");
    SQL("{\"data\":\"id\",\"from\":\"subscriber\",\"where\":{\"eq\":[\"id\"]}}", 0, "ERR: eq: needs [a, b]");
    SQL("{\"data\":\"id\",\"from\":\"subscriber\",\"where\":{\"is\":[\"id\",1]}}", 0,
        "ERR: is: the right side must be null, true or false");
    SQL("{\"data\":\"id\",\"from\":\"subscriber\",\"where\":{\"in\":[\"id\",[]]}}", 0, "ERR: in: an empty list of values");
    SQL("{\"data\":\"id\",\"from\":\"subscriber\",\"where\":{\"eq\":[\"id\",1],\"gt\":[\"id\",2]}}", 0,
        "ERR: where: an expression object has one key (besides \"as\"), not 2");
    SQL("{\"data\":\"id\",\"from\":\"subscriber\",\"limit\":-1}", 0, "ERR: limit must be a non-negative integer");
    SQL("{\"data\":\"id\",\"from\":\"subscriber\",\"limit\":1.5}", 0, "ERR: limit must be a non-negative integer");
    SQL("{\"data\":\"id\",\"from\":\"subscriber\",\"offset\":\"1\"}", 0, "ERR: offset must be a non-negative integer");
    SQL("{\"data\":\"id\",\"from\":[\"subscriber\",{\"join\":\"terminal\"}]}", 0, "ERR: from: inner join without \"on\"");
    SQL("{\"data\":\"id\",\"from\":[\"subscriber\",{\"join\":\"terminal\",\"type\":\"outer\",\"on\":true}]}", 0,
        "ERR: from: unsupported join_type \"outer\"");
    SQL("{\"data\":[{\"lower\":{\"distinct\":\"model\"}}],\"from\":\"terminal\"}", 0,
        "ERR: lower: distinct inside lower (aggregates only)");
    SQL("{\"data\":[\"id\",{\"function\":\"distinct\",\"args\":\"model\"}],\"from\":\"terminal\"}", 0,
        "ERR: data: distinct as a function only as the first data item or inside an aggregate");
    SQL("{\"data\":[{\"function\":\"max\",\"args\":\"*\"}],\"from\":\"terminal\"}", 0, "ERR: data: \"*\" only in count");
}

/* Names never reach SQL unchecked; strings are quoted, so none can end the literal. */
static void test_injection(void **state)
{
    SQL("{\"data\":\"id\",\"from\":\"subscriber; DROP TABLE x\"}", 0,
        "ERR: from: \"subscriber; DROP TABLE x\" is not a plain name ([A-Za-z_][A-Za-z0-9_]*)");
    SQL("{\"data\":\"id\\\"--\",\"from\":\"subscriber\"}", 0,
        "ERR: data: \"id\"--\" is not a plain name ([A-Za-z_][A-Za-z0-9_]*)");
    SQL("{\"data\":[{\"function\":\"count\",\"args\":[\"*\"],\"as\":\"n\\\" FROM x --\"}],\"from\":\"subscriber\"}", 0,
        "ERR: data as: \"n\" FROM x --\" is not a plain name ([A-Za-z_][A-Za-z0-9_]*)");
    SQL("{\"data\":\"id\",\"from\":\"subscriber\",\"where\":{\"eq\":[\"username\",\"x'; DROP TABLE x; --\\\\\"]}}", 0,
        "SELECT \"id\" FROM \"subscriber\" WHERE (\"username\" = 'x''; DROP TABLE x; --\\')");
    SQL("{\"data\":\"id\",\"from\":\"subscriber\",\"where\":{\"eq\":[{\"s\":\"id; x\"},1]}}", 0,
        "ERR: eq: \"id; x\" is not a plain name ([A-Za-z_][A-Za-z0-9_]*)");
}

#define WSQL(method, json, want)                              \
    do {                                                      \
        char *got_ = trw(method, json);                       \
        if (strcmp(got_, want)) print_error("%s\n", json);    \
        assert_string_equal(got_, want);                      \
        free(got_);                                           \
    } while (0)

static void test_writes(void **state)
{
    /* A string written is a value even when it names a column. */
    WSQL("insert", "{\"into\":\"terminal\",\"columns\":[\"model\",\"active\"],\"values\":[[\"model\",true],[\"x'y\",null]],"
         "\"returning\":\"id\"}",
         "INSERT INTO \"terminal\" (\"model\", \"active\") VALUES ('model', TRUE), ('x''y', NULL) RETURNING \"id\"");
    WSQL("update", "{\"table\":\"subscriber\",\"set\":{\"disabled\":true,\"id\":{\"add\":[\"id\",1]}},"
         "\"where\":{\"eq\":[\"id\",5]},\"returning\":[\"id\",\"disabled\"]}",
         "UPDATE \"subscriber\" SET \"disabled\" = TRUE, \"id\" = (\"id\" + 1) WHERE (\"id\" = 5) RETURNING \"id\", \"disabled\"");
    WSQL("delete", "{\"from\":\"terminal\",\"where\":{\"in\":[\"id\",[1,2]]},\"returning\":\"*\"}",
         "DELETE FROM \"terminal\" WHERE (\"id\" IN (1, 2)) RETURNING *");
    WSQL("delete", "{\"from\":\"terminal\"}", "DELETE FROM \"terminal\"");
    WSQL("insert", "{\"into\":\"terminal\",\"columns\":[\"model\"],\"values\":[[1,2]]}",
         "ERR: insert: each row of values has one value per column");
    WSQL("insert", "{\"into\":\"terminal\",\"columns\":[],\"values\":[[1]]}", "ERR: insert: columns must be a non-empty list");
    WSQL("insert", "{\"into\":\"terminal\",\"columns\":[\"model\"],\"values\":[[[1]]]}",
         "ERR: insert values: expected a value");
    WSQL("update", "{\"table\":\"subscriber\",\"set\":{}}", "ERR: update: set must be a non-empty object");
    WSQL("update", "{\"table\":\"subscriber\",\"set\":{\"a b\":1}}",
         "ERR: update set: \"a b\" is not a plain name ([A-Za-z_][A-Za-z0-9_]*)");
    WSQL("delete", "{\"table\":\"terminal\"}", "ERR: delete: unsupported key \"table\"");
    WSQL("delete", "{\"from\":\"terminal\",\"returning\":[{\"max\":\"id\"}]}", "ERR: returning: only column names");
    WSQL("upsert", "{}", "ERR: unsupported method \"upsert\"");
}

static void test_depth(void **state)
{
    struct buf j = {0};
    buf_puts(&j, "{\"data\":\"id\",\"from\":\"subscriber\",\"where\":");
    for (int i = 0; i < 60; i++) buf_puts(&j, "{\"not\":");
    buf_puts(&j, "true");
    for (int i = 0; i < 60; i++) buf_putc(&j, '}');
    buf_putc(&j, '}');
    char *got = tr(j.p, 0);
    assert_non_null(strstr(got, "nested deeper than"));
    free(got);
    buf_free(&j);
}

static void test_values(void **state)
{
    static const struct { unsigned oid; const char *text; int isnull; const char *want; } V[] = {
        {20, "9223372036854775807", 0, "9223372036854775807"},
        {20, "-9223372036854775808", 0, "-9223372036854775808"},
        {16, "t", 0, "true"}, {16, "f", 0, "false"},
        {701, "0.1", 0, "0.1"}, {701, "NaN", 0, "null"}, {701, "-Infinity", 0, "null"},
        {1700, "3.5000000000000000", 0, "3.5000000000000000"}, {1700, "NaN", 0, "null"},
        {1114, "2026-01-01 00:00:00.12", 0, "\"2026-01-01 00:00:00.12\""},
        {25, "Иван \"q\"\n", 0, "\"Иван \\\"q\\\"\\n\""},
        {3802, "{\"a\": [1, 2]}", 0, "{\"a\": [1, 2]}"},
        {25, "", 1, "null"},
    };
    for (size_t i = 0; i < sizeof V / sizeof V[0]; i++) {
        struct buf b = {0};
        ref_write_value(&b, V[i].oid, V[i].text, (int)strlen(V[i].text), V[i].isnull);
        assert_string_equal(b.p, V[i].want);
        buf_free(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_select_forms), cmocka_unit_test(test_functions), cmocka_unit_test(test_where),
        cmocka_unit_test(test_page_cap),     cmocka_unit_test(test_refusals),  cmocka_unit_test(test_injection),
        cmocka_unit_test(test_writes),       cmocka_unit_test(test_depth),     cmocka_unit_test(test_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
