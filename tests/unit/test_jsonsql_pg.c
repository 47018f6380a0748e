/* test_jsonsql_pg.c — the JSONSQL compiler answers as the PostgreSQL-backed
 * portal does: the syntax real portals accept (a call as its own key, having,
 * join types, the forms of in, not over a boolean column, "alias.*"), result
 * types that follow the column through functions (max of a boolean is a
 * boolean, avg a float, sums exact integers), timestamps compared with date
 * literals as timestamps, and a refusal naming the construct wherever SQLite
 * would answer differently. Each case asserts the SQL and the rows, or the
 * error exactly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/jsonsql_fixture.h"

/* The error sqlite3_step reports for a compiled statement (the statement
 * compiles; the refusal happens on a value). */
static void step_error(struct fx *f, const char *json, const char *want)
{
    cJSON *p = parse(json);
    struct jsonsql_stmt st;
    char err[512];
    if (jsonsql_compile(f->cat, "select", p, NULL, &st, err, sizeof err) != 0) fail_msg("compile %s: %s", json, err);
    sqlite3_stmt *ps;
    assert_int_equal(sqlite3_prepare_v2(f->db, st.sql, -1, &ps, NULL), SQLITE_OK);
    assert_int_equal(jsonsql_bind(&st, ps), SQLITE_OK);
    int rc;
    while ((rc = sqlite3_step(ps)) == SQLITE_ROW) {}
    if (rc == SQLITE_DONE) fail_msg("%s ran to the end, want error %s", json, want);
    if (strcmp(sqlite3_errmsg(f->db), want) != 0) fail_msg("%s\n  err:  %s\n  want: %s", json, sqlite3_errmsg(f->db), want);
    sqlite3_finalize(ps);
    jsonsql_stmt_free(&st);
    cJSON_Delete(p);
}

/* ---------------------------------------------------------------- syntax */

static void test_data_forms(void **state)
{
    struct fx *f = *state;
    sel(f, "{\"data\":\"id\",\"from\":\"subscriber\",\"where\":{\"eq\":[\"id\",2]}}",
        "SELECT \"id\" FROM \"subscriber\" WHERE \"id\" = ?1", "[[2]]");
    sel(f, "{\"data\":[\"t.*\",{\"s\":\"username\"}],\"from\":[{\"table\":\"terminal\",\"as\":\"t\"},"
           "{\"join\":\"subscriber\",\"as\":\"s\",\"on\":{\"eq\":[{\"s\":\"id\"},{\"t\":\"subscriber_id\"}]}}],"
           "\"where\":{\"eq\":[{\"t\":\"id\"},12]}}",
        "SELECT \"t\".\"id\", \"t\".\"subscriber_id\", \"t\".\"mac_addr\", \"t\".\"model\", \"t\".\"active\", "
        "\"s\".\"username\" FROM \"terminal\" AS \"t\" JOIN \"subscriber\" AS \"s\" ON \"s\".\"id\" = "
        "\"t\".\"subscriber_id\" WHERE \"t\".\"id\" = ?1",
        "[[12,2,\"AA:BB:CC:00:00:01\",\"tvip\",true,\"bob\"]]");
    sel(f, "{\"data\":{\"s\":\"*\"},\"from\":{\"table\":\"package\",\"as\":\"s\"},\"where\":{\"eq\":[\"id\",2]}}",
        "SELECT \"id\", \"name\", \"paid\", \"big\", \"data\", \"price\" FROM \"package\" AS \"s\" WHERE \"id\" = ?1",
        "[[2,\"sportX100\",false,-9223372036854775808,null,2]]");
    ese(f, "{\"data\":{\"x\":\"*\"},\"from\":{\"table\":\"package\",\"as\":\"s\"}}", "data: unknown table alias \"x\"");
}

static void test_join_types(void **state)
{
    struct fx *f = *state;
    const char *rows_left = "[[10,\"alice\"],[11,\"alice\"],[12,\"bob\"],[13,null]]";
    static const char *const left[] = {"\"join_type\":\"left\"", "\"type\":\"LEFT\"", "\"join_type\":\"left outer\""};
    for (size_t i = 0; i < sizeof left / sizeof left[0]; i++) {
        char json[512];
        snprintf(json, sizeof json,
                 "{\"data\":[{\"t\":\"id\"},{\"s\":\"username\"}],\"from\":[{\"table\":\"terminal\",\"as\":\"t\"},"
                 "{\"join\":\"subscriber\",\"as\":\"s\",%s,\"on\":{\"eq\":[{\"s\":\"id\"},{\"t\":\"subscriber_id\"}]}}],"
                 "\"order_by\":{\"t\":\"id\"}}", left[i]);
        sel(f, json,
            "SELECT \"t\".\"id\", \"s\".\"username\" FROM \"terminal\" AS \"t\" LEFT JOIN \"subscriber\" AS \"s\" ON "
            "\"s\".\"id\" = \"t\".\"subscriber_id\" ORDER BY \"t\".\"id\" NULLS LAST", rows_left);
    }
    /* {"table":...} after the first item is a join; inner by default. */
    sel(f, "{\"data\":[{\"t\":\"id\"}],\"from\":[{\"table\":\"terminal\",\"as\":\"t\"},{\"table\":\"subscriber\","
           "\"as\":\"s\",\"on\":{\"eq\":[{\"s\":\"id\"},{\"t\":\"subscriber_id\"}]}}],\"order_by\":{\"t\":\"id\"}}",
        "SELECT \"t\".\"id\" FROM \"terminal\" AS \"t\" JOIN \"subscriber\" AS \"s\" ON \"s\".\"id\" = "
        "\"t\".\"subscriber_id\" ORDER BY \"t\".\"id\" NULLS LAST",
        "[[10],[11],[12]]");
    sel(f, "{\"data\":[{\"function\":\"count\",\"args\":\"*\"}],\"from\":[\"terminal\",{\"join\":\"package\","
           "\"join_type\":\"cross\"}]}",
        "SELECT COUNT(*) FROM \"terminal\" CROSS JOIN \"package\"", "[[8]]");
    /* right and full (SQLite 3.39+): subscribers without terminals too. */
    sel(f, "{\"data\":[{\"t\":\"id\"},{\"s\":\"id\"}],\"from\":[{\"table\":\"terminal\",\"as\":\"t\"},{\"join\":\"subscriber\","
           "\"as\":\"s\",\"join_type\":\"right\",\"on\":{\"eq\":[{\"s\":\"id\"},{\"t\":\"subscriber_id\"}]}}],"
           "\"order_by\":[{\"s\":\"id\"},{\"t\":\"id\"}]}",
        "SELECT \"t\".\"id\", \"s\".\"id\" FROM \"terminal\" AS \"t\" RIGHT JOIN \"subscriber\" AS \"s\" ON "
        "\"s\".\"id\" = \"t\".\"subscriber_id\" ORDER BY \"s\".\"id\" NULLS LAST, \"t\".\"id\" NULLS LAST",
        "[[10,1],[11,1],[12,2],[null,3],[null,4]]");
    sel(f, "{\"data\":[{\"t\":\"id\"},{\"s\":\"id\"}],\"from\":[{\"table\":\"terminal\",\"as\":\"t\"},{\"join\":\"subscriber\","
           "\"as\":\"s\",\"type\":\"full\",\"on\":{\"eq\":[{\"s\":\"id\"},{\"t\":\"subscriber_id\"}]}}],"
           "\"order_by\":[{\"s\":\"id\"},{\"t\":\"id\"}]}",
        "SELECT \"t\".\"id\", \"s\".\"id\" FROM \"terminal\" AS \"t\" FULL JOIN \"subscriber\" AS \"s\" ON "
        "\"s\".\"id\" = \"t\".\"subscriber_id\" ORDER BY \"s\".\"id\" NULLS LAST, \"t\".\"id\" NULLS LAST",
        "[[10,1],[11,1],[12,2],[null,3],[null,4],[13,null]]");
    ese(f, "{\"data\":\"id\",\"from\":[\"terminal\",{\"join\":\"package\",\"join_type\":\"outer\",\"on\":{\"eq\":[1,1]}}]}",
        "from[1].join_type: unknown join type \"outer\" (expected inner, left, right, full or cross)");
    ese(f, "{\"data\":\"model\",\"from\":[\"terminal\",{\"join\":\"package\",\"join_type\":\"cross\",\"on\":{\"eq\":[\"model\",1]}}]}",
        "from[1]: a cross join takes no \"on\"");
    ese(f, "{\"data\":\"model\",\"from\":[\"terminal\",{\"join\":\"package\",\"type\":\"inner\"}]}",
        "from[1]: a join needs \"on\"");
    ese(f, "{\"data\":\"model\",\"from\":[\"terminal\",{\"left_join\":\"package\",\"type\":\"right\",\"on\":{\"eq\":[\"model\",1]}}]}",
        "from[1].type: conflicts with \"left_join\"");
    ese(f, "{\"data\":\"model\",\"from\":[\"terminal\",{\"join\":\"package\",\"table\":\"package\",\"on\":{\"eq\":[\"model\",1]}}]}",
        "from[1]: expected one of \"join\" or \"table\", not both");
}

static void test_in_forms(void **state)
{
    struct fx *f = *state;
    static const struct where_case c[] = {
        {"{\"in\":[\"id\",1,3,99]}", "\"id\" IN (?1, ?2, ?3)", "[[1],[3]]"},
        {"{\"in\":[\"username\",\"bob\"]}", "\"username\" IN (?1)", "[[2]]"},
        {"{\"in\":[\"id\",{\"values\":[[2],[4]]}]}", "\"id\" IN (?1, ?2)", "[[2],[4]]"},
        {"{\"in\":[\"id\",[{\"select\":{\"data\":\"subscriber_id\",\"from\":\"terminal\",\"where\":{\"eq\":[\"model\","
         "\"mag250\"]}}}]]}",
         "\"id\" IN (SELECT \"subscriber_id\" FROM \"terminal\" WHERE \"model\" = ?1)", "[[1]]"},
    };
    where_cases(f, c, sizeof c / sizeof c[0]);
    /* A subquery where a value is expected is never its JSON text. */
    ese(f, "{\"data\":\"id\",\"from\":\"subscriber\",\"where\":{\"in\":[\"id\",[1,{\"select\":{\"data\":\"id\","
           "\"from\":\"terminal\"}}]]}}",
        "where.in[1][1]: a subquery {\"select\":...} is not valid here: only in from, and as the list of in");
    ese(f, "{\"data\":\"id\",\"from\":\"subscriber\",\"where\":{\"in\":[\"id\",2,{\"select\":{\"data\":\"id\","
           "\"from\":\"terminal\"}}]}}",
        "where.in[2]: a subquery {\"select\":...} is not valid here: only in from, and as the list of in");
    ese(f, "{\"data\":\"id\",\"from\":\"subscriber\",\"where\":{\"in\":[\"id\",{\"values\":[[1,2]]}]}}",
        "where.in[1].values[0]: expected a row of one value [v]");
    ese(f, "{\"data\":\"id\",\"from\":\"subscriber\",\"where\":{\"in\":[\"id\",{\"values\":3}]}}",
        "where.in[1].values: expected a list of one-value rows [[v], ...]");
    /* Values read as PostgreSQL reads them against the column. */
    sel(f, "{\"data\":\"id\",\"from\":\"subscriber\",\"where\":{\"in\":[\"disabled\",\"yes\",\"on\"]}}",
        "SELECT \"id\" FROM \"subscriber\" WHERE \"disabled\" IN (?1, ?2)", "[[2]]");
    ese(f, "{\"data\":\"id\",\"from\":\"subscriber\",\"where\":{\"in\":[\"created_at\",[\"2024-01-01\"]]}}",
        "where.in[1][0]: in with the date or timestamp \"2024-01-01\" on a text column is not supported: write it "
        "'YYYY-MM-DD HH:MM:SS' or compare with eq");
    ese(f, "{\"data\":\"id\",\"from\":\"subscriber\",\"where\":{\"in\":[\"username\",{\"values\":[[1]]}]}}",
        "where.in[1].values[0]: comparing a text value with a number is not supported (PostgreSQL has no such operator)");
    ese(f, "{\"data\":\"id\",\"from\":\"subscriber\",\"where\":{\"in\":[\"disabled\",\"maybe\"]}}",
        "where.in[1]: invalid input syntax for type boolean: \"maybe\"");
    e(f, "insert", "{\"into\":\"subscriber\",\"columns\":[\"id\",\"username\",\"info\"],"
                   "\"values\":[[9,\"x\",{\"select\":{\"data\":\"id\",\"from\":\"terminal\"}}]]}",
      "values[0][2]: a subquery {\"select\":...} is not valid here: only in from, and as the list of in");
    assert_int_equal(count_rows(f, "SELECT count(*) FROM subscriber"), 4);
}

static void test_calls_as_keys(void **state)
{
    struct fx *f = *state;
    sel(f, "{\"data\":[{\"count\":\"*\"},{\"count\":\"model\",\"distinct\":true,\"as\":\"m\"},{\"max\":\"id\"}],"
           "\"from\":\"terminal\"}",
        "SELECT COUNT(*), COUNT(DISTINCT \"model\") AS \"m\", MAX(\"id\") FROM \"terminal\"", "[[4,3,13]]");
    sel(f, "{\"data\":[{\"lower\":\"username\"},{\"concat\":[\"username\",\"-\",\"id\"],\"as\":\"x\"}],"
           "\"from\":\"subscriber\",\"where\":{\"eq\":[{\"upper\":\"username\"},\"BOB\"]}}",
        "SELECT LOWER(\"username\"), (COALESCE(CAST(\"username\" AS TEXT), '') || COALESCE(CAST(?1 AS TEXT), '') || "
        "COALESCE(CAST(\"id\" AS TEXT), '')) AS \"x\" FROM \"subscriber\" WHERE UPPER(\"username\") = ?2",
        "[[\"bob\",\"bob-2\"]]");
    sel(f, "{\"data\":{\"distinct\":\"model\"},\"from\":\"terminal\",\"order_by\":\"model\"}",
        "SELECT DISTINCT \"model\" FROM \"terminal\" ORDER BY \"model\" NULLS LAST",
        "[[\"mag250\"],[\"tvip\"],[\"Тест\"]]");
    /* An alias that is also a function name stays a qualified column. */
    sel(f, "{\"data\":[{\"max\":\"model\"}],\"from\":{\"table\":\"terminal\",\"as\":\"max\"},\"where\":{\"eq\":[\"id\",12]}}",
        "SELECT \"model\" FROM \"terminal\" AS \"max\" WHERE \"id\" = ?1", "[[\"tvip\"]]");
    ese(f, "{\"data\":\"id\",\"from\":\"subscriber\",\"where\":{\"eq\":[{\"lower\":\"username\",\"as\":\"x\"},\"bob\"]}}",
        "where.eq[0].as: \"as\" is only valid on a data item");
    ese(f, "{\"data\":[{\"lower\":\"username\",\"distinct\":true}],\"from\":\"subscriber\"}",
        "data[0].lower: \"distinct\": true is only valid on an aggregate (count, sum, avg, min, max)");
    ese(f, "{\"data\":[{\"count\":\"*\",\"distinct\":true}],\"from\":\"subscriber\"}",
        "data[0].count: \"distinct\": true needs exactly one argument, not \"*\"");
    ese(f, "{\"data\":\"id\",\"from\":\"subscriber\",\"where\":{\"gt\":[{\"count\":\"*\"},1]}}",
        "where.gt[0].count: count is an aggregate: not allowed in where or on");
}

static void test_having_and_not(void **state)
{
    struct fx *f = *state;
    sel(f, "{\"data\":[\"subscriber_id\",{\"count\":\"*\",\"as\":\"n\"}],\"from\":\"terminal\",\"group_by\":\"subscriber_id\","
           "\"having\":{\"gt\":[{\"count\":\"*\"},1]}}",
        "SELECT \"subscriber_id\", COUNT(*) AS \"n\" FROM \"terminal\" GROUP BY \"subscriber_id\" HAVING COUNT(*) > ?1",
        "[[1,2]]");
    sel(f, "{\"data\":[{\"count\":\"*\"}],\"from\":\"terminal\",\"having\":{\"and\":[{\"gte\":[{\"max\":\"id\"},13]},"
           "{\"not\":{\"eq\":[{\"min\":\"id\"},0]}}]}}",
        "SELECT COUNT(*) FROM \"terminal\" HAVING (MAX(\"id\") >= ?1 AND NOT (MIN(\"id\") = ?2))", "[[4]]");
    ese(f, "{\"data\":[{\"count\":\"*\"}],\"from\":\"terminal\",\"having\":{\"gt\":[{\"max\":{\"count\":\"*\"}},1]}}",
        "having.gt[0].max.count: count is an aggregate: not allowed inside another aggregate");
    /* not over a bare boolean column; a boolean column as a condition. */
    sel(f, "{\"data\":\"id\",\"from\":\"subscriber\",\"where\":{\"not\":\"disabled\"},\"order_by\":\"id\"}",
        "SELECT \"id\" FROM \"subscriber\" WHERE NOT (\"disabled\") ORDER BY \"id\" NULLS LAST", "[[1],[3]]");
    sel(f, "{\"data\":\"id\",\"from\":\"terminal\",\"where\":{\"and\":[\"active\",{\"not\":[\"active\"]}]}}",
        "SELECT \"id\" FROM \"terminal\" WHERE (\"active\" AND NOT (\"active\"))", "[]");
    sel(f, "{\"data\":\"id\",\"from\":\"subscriber\",\"where\":\"disabled\"}",
        "SELECT \"id\" FROM \"subscriber\" WHERE \"disabled\"", "[[2]]");
    ese(f, "{\"data\":\"id\",\"from\":\"subscriber\",\"where\":{\"not\":\"username\"}}",
        "where.not: \"username\" is not a boolean column: a condition is an object with one operator, or a boolean "
        "column");
    ese(f, "{\"data\":\"id\",\"from\":\"subscriber\",\"where\":{\"not\":\"nope\"}}",
        "where.not: unknown column \"nope\" in subscriber");
}

/* ---------------------------------------------------------------- types */

static void test_types_through_functions(void **state)
{
    struct fx *f = *state;
    /* Booleans stay booleans, timestamps strings, integers exact (2^63-1). */
    sel(f, "{\"data\":[{\"max\":\"disabled\"},{\"min\":\"disabled\"},{\"max\":\"created_at\"},"
           "{\"max\":{\"coalesce\":[\"disabled\",true]}}],\"from\":\"subscriber\",\"where\":{\"in\":[\"id\",[1,4]]}}",
        "SELECT MAX(\"disabled\"), MIN(\"disabled\"), MAX(\"created_at\"), MAX(COALESCE(\"disabled\", ?1)) FROM "
        "\"subscriber\" WHERE \"id\" IN (?2, ?3)",
        "[[false,false,\"2024-01-04 13:00:00\",true]]");
    sel(f, "{\"data\":[{\"max\":\"big\"},{\"min\":\"big\"},{\"sum\":\"id\"},{\"count\":\"id\"},{\"avg\":\"id\"}],"
           "\"from\":\"package\"}",
        "SELECT MAX(\"big\"), MIN(\"big\"), jsonsql_sum(\"id\"), COUNT(\"id\"), jsonsql_avg(\"id\") FROM \"package\"",
        "[[9223372036854775807,-9223372036854775808,3,2,1.5]]");
    /* avg is a float even when whole (PostgreSQL's numeric 2.0000000000000000). */
    sel(f, "{\"data\":[{\"avg\":\"id\"}],\"from\":\"subscriber\",\"where\":{\"eq\":[\"id\",1]}}",
        "SELECT jsonsql_avg(\"id\") FROM \"subscriber\" WHERE \"id\" = ?1", "[[1.0]]");
    /* From about 1e16 PostgreSQL's numeric average has no decimals: an exact
     * integer (here past int64 in the sum), rounded half away from zero. */
    assert_int_equal(sqlite3_exec(f->db, "INSERT INTO package VALUES (3, 'x', 1, 9223372036854775807, NULL, 1),"
                                         " (4, 'y', 1, 10000000000000001, NULL, 1), (5, 'z', 1, 10000000000000002, NULL, 1)",
                                  NULL, NULL, NULL), SQLITE_OK);
    sel(f, "{\"data\":[{\"avg\":\"big\"},{\"avg\":\"big\",\"distinct\":true},{\"avg\":\"balance\"}],"
           "\"from\":[\"package\",{\"join\":\"subscriber\",\"on\":{\"eq\":[{\"subscriber\":\"id\"},1]}}],"
           "\"where\":{\"in\":[{\"package\":\"id\"},[1,3]]}}",
        "SELECT jsonsql_avg(\"package\".\"big\"), jsonsql_avg(DISTINCT \"package\".\"big\"), AVG(\"subscriber\".\"balance\") "
        "FROM \"package\" JOIN \"subscriber\" ON \"subscriber\".\"id\" = ?1 WHERE \"package\".\"id\" IN (?2, ?3)",
        "[[9223372036854775807,9223372036854775807,10.5]]");
    /* sum of integers is exact past 64 bits (PostgreSQL's numeric; SQLite fails "integer overflow"). */
    sel(f, "{\"data\":[{\"sum\":\"big\"},{\"sum\":\"id\"}],\"from\":\"package\",\"where\":{\"in\":[\"id\",[1,3,4]]}}",
        "SELECT jsonsql_sum(\"big\"), jsonsql_sum(\"id\") FROM \"package\" WHERE \"id\" IN (?1, ?2, ?3)",
        "[[18456744073709551615,8]]");
    sel(f, "{\"data\":[{\"sum\":\"big\"}],\"from\":\"package\",\"where\":{\"in\":[\"id\",[2,2]]}}",
        "SELECT jsonsql_sum(\"big\") FROM \"package\" WHERE \"id\" IN (?1, ?2)", "[[-9223372036854775808]]");
    sel(f, "{\"data\":[{\"sum\":\"big\"}],\"from\":\"package\",\"where\":{\"eq\":[\"id\",99]}}",
        "SELECT jsonsql_sum(\"big\") FROM \"package\" WHERE \"id\" = ?1", "[[null]]");
    sel(f, "{\"data\":[{\"avg\":\"big\"}],\"from\":\"package\",\"where\":{\"in\":[\"id\",[4,5]]}}",
        "SELECT jsonsql_avg(\"big\") FROM \"package\" WHERE \"id\" IN (?1, ?2)", "[[10000000000000002]]");
    sel(f, "{\"data\":[{\"avg\":\"big\"}],\"from\":\"package\",\"where\":{\"in\":[\"id\",[1,2]]}}",
        "SELECT jsonsql_avg(\"big\") FROM \"package\" WHERE \"id\" IN (?1, ?2)", "[[-0.5]]");
    /* round(bigint) is round(double precision) in PostgreSQL; coalesce(real, 0) a real. */
    sel(f, "{\"data\":[{\"round\":\"id\"},{\"coalesce\":[{\"nullif\":[\"balance\",10.5]},0]}],"
           "\"from\":\"subscriber\",\"where\":{\"eq\":[\"id\",1]}}",
        "SELECT ROUND(\"id\"), COALESCE(NULLIF(\"balance\", ?1), ?2) FROM \"subscriber\" WHERE \"id\" = ?3",
        "[[1.0,0.0]]");
    /* Integer arithmetic stays integer (division truncates), with a real it is real. */
    sel(f, "{\"data\":[{\"function\":\"max\",\"args\":{\"div\":[\"id\",2]},\"as\":\"h\"}],\"from\":\"subscriber\"}",
        "SELECT MAX(jsonsql_bigint(\"id\" / jsonsql_divisor(?1))) AS \"h\" FROM \"subscriber\"", "[[2]]");
    sel(f, "{\"data\":[\"id\",{\"div\":[\"id\",2],\"as\":\"d\"},{\"mod\":[\"id\",3]},{\"mul\":[\"balance\",2]}],"
           "\"from\":\"subscriber\",\"order_by\":[\"d desc\",\"id\"],\"limit\":2}",
        "SELECT \"id\", jsonsql_bigint(\"id\" / jsonsql_divisor(?1)) AS \"d\", (\"id\" % jsonsql_divisor(?2)), (\"balance\" * ?3) "
        "FROM \"subscriber\" ORDER BY \"d\" DESC NULLS FIRST, \"id\" NULLS LAST LIMIT ?4",
        "[[4,2,1,199.0],[2,1,2,0.5]]");
    /* The description carries the types. */
    cJSON *p = parse("{\"data\":[{\"sum\":\"balance\"},{\"avg\":\"id\"},{\"min\":{\"coalesce\":[\"id\",1.5]}},{\"max\":{\"lower\":\"username\"}},"
                     "{\"max\":{\"mul\":[\"id\",\"balance\"]}}],\"from\":\"subscriber\"}");
    struct jsonsql_stmt st;
    char err[256];
    assert_int_equal(jsonsql_compile(f->cat, "select", p, NULL, &st, err, sizeof err), 0);
    assert_int_equal(st.col_types[0], JSQL_REAL);
    assert_int_equal(st.col_types[1], JSQL_ANY);   /* avg of integers: an integer or a float, by value */
    assert_int_equal(st.col_types[2], JSQL_REAL);
    assert_int_equal(st.col_types[3], JSQL_TEXT);
    assert_int_equal(st.col_types[4], JSQL_REAL);
    jsonsql_stmt_free(&st);
    cJSON_Delete(p);
}

static void test_concat_nulls(void **state)
{
    struct fx *f = *state;
    /* PostgreSQL's concat skips NULLs and writes booleans as t/f. */
    sel(f, "{\"data\":[{\"concat\":[\"username\",\":\",\"disabled\"]}],\"from\":\"subscriber\",\"order_by\":\"id\"}",
        "SELECT (COALESCE(CAST(\"username\" AS TEXT), '') || COALESCE(CAST(?1 AS TEXT), '') || "
        "COALESCE(substr('ft', (\"disabled\") + 1, 1), '')) FROM \"subscriber\" ORDER BY \"id\" NULLS LAST",
        "[[\"alice:f\"],[\"bob:t\"],[\"Иван:f\"],[\"carol:\"]]");
    ese(f, "{\"data\":[{\"concat\":[\"username\",\"balance\"]}],\"from\":\"subscriber\"}",
        "data[0].concat[1]: concat of a real (double precision) value is not supported: its text differs from "
        "PostgreSQL's");
    ese(f, "{\"data\":[{\"function\":\"concat\",\"args\":[\"info\"]}],\"from\":\"subscriber\"}",
        "data[0].args[0]: concat of a JSON value is not supported: its text differs from PostgreSQL's");
}

/* ---------------------------------------------------------------- refusals */

static void test_refused_or_as_postgresql(void **state)
{
    struct fx *f = *state;
    ese(f, "{\"data\":[{\"sum\":\"disabled\"}],\"from\":\"subscriber\"}",
        "data[0].sum: sum of a boolean value is not supported (PostgreSQL has no sum for it)");
    ese(f, "{\"data\":[{\"avg\":\"username\"}],\"from\":\"subscriber\"}",
        "data[0].avg: avg of a text value is not supported (PostgreSQL has no avg for it)");
    ese(f, "{\"data\":[{\"coalesce\":[\"disabled\",\"id\"]}],\"from\":\"subscriber\"}",
        "data[0].coalesce: coalesce of a boolean and a number is not supported (PostgreSQL cannot match their types)");
    ese(f, "{\"data\":\"id\",\"from\":\"subscriber\",\"where\":{\"eq\":[{\"add\":[\"disabled\",1]},1]}}",
        "where.eq[0].add[0]: add of a boolean value is not supported (PostgreSQL has no such operator)");
    ese(f, "{\"data\":\"id\",\"from\":\"subscriber\",\"where\":{\"eq\":[{\"mod\":[\"balance\",2]},1]}}",
        "where.eq[0].mod[0]: mod of a real value is not supported (SQLite truncates it to an integer)");
    ese(f, "{\"data\":\"id\",\"from\":\"subscriber\",\"where\":{\"like\":[\"id\",\"1%\"]}}",
        "where.like[0]: like of an integer value is not supported (PostgreSQL has no like on it)");
    ese(f, "{\"data\":\"id\",\"from\":\"subscriber\",\"where\":{\"ilike\":[\"disabled\",\"t%\"]}}",
        "where.ilike[0]: ilike of a boolean value is not supported (PostgreSQL has no ilike on it)");
    /* A string compared with a boolean column is read as PostgreSQL reads a boolean. */
    sel(f, "{\"data\":\"id\",\"from\":\"subscriber\",\"where\":{\"or\":[{\"eq\":[\"disabled\",\" TRUE \"]},"
           "{\"eq\":[\"disabled\",\"y\"]},{\"neq\":[\"disabled\",\"of\"]}]},\"order_by\":\"id\"}",
        "SELECT \"id\" FROM \"subscriber\" WHERE (\"disabled\" = ?1 OR \"disabled\" = ?2 OR \"disabled\" <> ?3) "
        "ORDER BY \"id\" NULLS LAST", "[[2]]");
    ese(f, "{\"data\":\"id\",\"from\":\"subscriber\",\"where\":{\"eq\":[\"username\",5]}}",
        "where.eq[1]: comparing a text value with a number is not supported (PostgreSQL has no such operator)");
    ese(f, "{\"data\":\"id\",\"from\":\"subscriber\",\"where\":{\"eq\":[\"disabled\",\"o\"]}}",
        "where.eq[1]: invalid input syntax for type boolean: \"o\"");
    /* Division by zero fails as in PostgreSQL (SQLite alone would give NULL). */
    step_error(f, "{\"data\":[{\"function\":\"sum\",\"args\":{\"div\":[\"id\",{\"sub\":[\"id\",2]}]}}],\"from\":\"subscriber\"}",
               "division by zero");
    step_error(f, "{\"data\":\"id\",\"from\":\"subscriber\",\"where\":{\"eq\":[{\"mod\":[\"id\",0]},1]}}",
               "division by zero");
    /* Integer arithmetic beyond 64 bits fails as in PostgreSQL (SQLite would make it a float). */
    step_error(f, "{\"data\":\"id\",\"from\":\"package\",\"where\":{\"gt\":[{\"mul\":[\"big\",2]},0]}}",
               "bigint out of range");
    step_error(f, "{\"data\":[{\"max\":{\"add\":[\"big\",{\"sub\":[\"id\",0]}]}}],\"from\":\"package\"}",
               "bigint out of range");
    /* like is case-sensitive, ilike folds Cyrillic too (PostgreSQL's). */
    sel(f, "{\"data\":\"id\",\"from\":\"subscriber\",\"where\":{\"or\":[{\"like\":[\"username\",\"BOB\"]},"
           "{\"ilike\":[\"username\",\"иВАН\"]}]}}",
        "SELECT \"id\" FROM \"subscriber\" WHERE (\"username\" LIKE ?1 ESCAPE '\\' OR LOWER(\"username\") LIKE "
        "LOWER(?2) ESCAPE '\\')", "[[3]]");
}

/* A column outside group_by and outside an aggregate: PostgreSQL refuses the
 * statement, SQLite would answer with any row's value. */
static void test_grouping(void **state)
{
    struct fx *f = *state;
    const char *why = "must be in group_by or inside an aggregate (PostgreSQL refuses it; SQLite would answer "
                      "with any row's value)";
    char want[256];
    snprintf(want, sizeof want, "data: column \"model\" %s", why);
    ese(f, "{\"data\":[\"model\",{\"count\":\"*\"}],\"from\":\"terminal\"}", want);
    ese(f, "{\"data\":[\"subscriber_id\",\"model\",{\"count\":\"*\"}],\"from\":\"terminal\",\"group_by\":\"subscriber_id\"}",
        want);
    ese(f, "{\"data\":[\"model\"],\"from\":\"terminal\",\"group_by\":\"subscriber_id\"}", want);
    snprintf(want, sizeof want, "data: column \"id\" %s", why);
    ese(f, "{\"data\":[\"*\"],\"from\":\"terminal\",\"having\":{\"gt\":[{\"count\":\"*\"},1]}}", want);
    /* Also inside a call that is no aggregate, in having and in order_by. */
    snprintf(want, sizeof want, "select: column \"model\" %s", why);
    ese(f, "{\"data\":[{\"lower\":\"model\"},{\"count\":\"*\"}],\"from\":\"terminal\"}", want);
    ese(f, "{\"data\":[{\"count\":\"*\"}],\"from\":\"terminal\",\"having\":{\"eq\":[\"model\",\"tvip\"]}}", want);
    ese(f, "{\"data\":[{\"count\":\"*\"}],\"from\":\"terminal\",\"group_by\":\"active\",\"order_by\":\"model\"}", want);
    /* A subquery in where groups on its own; where may name any column. */
    sel(f, "{\"data\":[\"active\",{\"upper\":\"active\"},{\"count\":\"*\"}],\"from\":\"terminal\",\"where\":{\"and\":["
           "{\"neq\":[\"model\",\"x\"]},{\"in\":[\"subscriber_id\",{\"select\":{\"data\":[{\"max\":\"id\"}],"
           "\"from\":\"subscriber\"}}]}]},\"group_by\":\"active\",\"order_by\":\"active\"}",
        "SELECT \"active\", UPPER(\"active\"), COUNT(*) FROM \"terminal\" WHERE (\"model\" <> ?1 AND \"subscriber_id\" IN "
        "(SELECT MAX(\"id\") FROM \"subscriber\")) GROUP BY \"active\" ORDER BY \"active\" NULLS LAST", "[]");
    /* distinct sorts only by what it shows. */
    ese(f, "{\"data\":[\"model\"],\"from\":\"terminal\",\"distinct\":true,\"order_by\":[\"model\",\"id\"]}",
        "order_by: with distinct, order_by may name only columns of data: \"id\" is not one (PostgreSQL refuses it)");
    sel(f, "{\"data\":[{\"distinct\":\"model\",\"as\":\"m\"}],\"from\":\"terminal\",\"order_by\":\"m desc\"}",
        "SELECT DISTINCT \"model\" AS \"m\" FROM \"terminal\" ORDER BY \"m\" DESC NULLS FIRST",
        "[[\"Тест\"],[\"tvip\"],[\"mag250\"]]");
    /* Grouped by the primary key, the table's other columns may be named (as PostgreSQL allows). */
    sel(f, "{\"data\":[{\"s\":\"username\"},{\"count\":{\"t\":\"id\"}}],\"from\":[{\"table\":\"subscriber\",\"as\":\"s\"},"
           "{\"join\":\"terminal\",\"as\":\"t\",\"on\":{\"eq\":[{\"t\":\"subscriber_id\"},{\"s\":\"id\"}]}}],"
           "\"group_by\":{\"s\":\"id\"},\"order_by\":{\"s\":\"id\"}}",
        "SELECT \"s\".\"username\", COUNT(\"t\".\"id\") FROM \"subscriber\" AS \"s\" JOIN \"terminal\" AS \"t\" ON "
        "\"t\".\"subscriber_id\" = \"s\".\"id\" GROUP BY \"s\".\"id\" ORDER BY \"s\".\"id\" NULLS LAST",
        "[[\"alice\",2],[\"bob\",1]]");
    snprintf(want, sizeof want, "data: column \"model\" %s", why);
    ese(f, "{\"data\":[{\"t\":\"model\"},{\"count\":\"*\"}],\"from\":[{\"table\":\"subscriber\",\"as\":\"s\"},"
           "{\"join\":\"terminal\",\"as\":\"t\",\"on\":{\"eq\":[{\"t\":\"subscriber_id\"},{\"s\":\"id\"}]}}],"
           "\"group_by\":{\"s\":\"id\"}}", want);
}

static void test_timestamp_literals(void **state)
{
    struct fx *f = *state;
    static const struct where_case c[] = {
        /* A date-only literal is midnight of that day, as PostgreSQL casts it. */
        {"{\"gte\":[\"created_at\",\"2024-01-03\"]}", "jsonsql_tscmp(\"created_at\", ?1) >= 0", "[[3],[4]]"},
        {"{\"lt\":[\"created_at\",\"2024-01-02\"]}", "jsonsql_tscmp(\"created_at\", ?1) < 0", "[[1]]"},
        {"{\"eq\":[\"created_at\",\"2024-01-01\"]}", "jsonsql_tscmp(\"created_at\", ?1) = 0", "[]"},
        {"{\"eq\":[\"created_at\",\"2024-01-01T10:00\"]}", "jsonsql_tscmp(\"created_at\", ?1) = 0", "[[1]]"},
        {"{\"eq\":[\"created_at\",\"2024-01-02 11:00:00.000\"]}", "jsonsql_tscmp(\"created_at\", ?1) = 0", "[[2]]"},
        /* The stored form compares as text (and keeps the index). */
        {"{\"gt\":[\"created_at\",\"2024-01-03 12:00:00\"]}", "\"created_at\" > ?1", "[[4]]"},
        /* Not a text column, or not a timestamp literal: as before. */
        {"{\"gt\":[\"username\",\"b\"]}", "\"username\" > ?1", "[[2],[3],[4]]"},
    };
    where_cases(f, c, sizeof c / sizeof c[0]);
    static const struct { const char *sql, *want; } fn[] = {
        {"SELECT jsonsql_tscmp('2024-01-01', '2024-01-01 10:00')", "0"},           /* a date column */
        {"SELECT jsonsql_tscmp('2024-01-01 00:00:00.5', '2024-01-01')", "1"},
        {"SELECT jsonsql_tscmp('abc', '2024-01-01')", "1"},                         /* text: as text */
        {"SELECT jsonsql_tscmp(NULL, '2024-01-01') IS NULL", "1"},
    };
    for (size_t i = 0; i < sizeof fn / sizeof fn[0]; i++) {
        sqlite3_stmt *ps;
        assert_int_equal(sqlite3_prepare_v2(f->db, fn[i].sql, -1, &ps, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(ps), SQLITE_ROW);
        const char *got = (const char *)sqlite3_column_text(ps, 0);
        if (strcmp(got, fn[i].want) != 0) fail_msg("%s: got %s want %s", fn[i].sql, got, fn[i].want);
        sqlite3_finalize(ps);
    }
    /* A stored zone offset: PostgreSQL would read the literal in its session's zone. */
    assert_int_equal(sqlite3_exec(f->db, "UPDATE subscriber SET created_at = '2024-01-01 10:00:00+03' WHERE id = 1",
                                  NULL, NULL, NULL), SQLITE_OK);
    step_error(f, "{\"data\":\"id\",\"from\":\"subscriber\",\"where\":{\"lt\":[\"created_at\",\"2024-01-02\"]}}",
               "comparing a timestamp with a time zone offset with a date or timestamp literal is not supported: "
               "write the literal as 'YYYY-MM-DD HH:MM:SS' and compare with the stored text");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_data_forms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_join_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_in_forms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_calls_as_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_having_and_not, setup, teardown),
        cmocka_unit_test_setup_teardown(test_types_through_functions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concat_nulls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_or_as_postgresql, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grouping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timestamp_literals, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
