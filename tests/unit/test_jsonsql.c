/* test_jsonsql.c — the JSONSQL compiler: every case asserts the generated SQL
 * text and runs it on an in-memory SQLite fixture, comparing the rows as the
 * row writer renders them. Then the catalog, the SQL functions, every error
 * path with its JSON path, injection attempts and the limits. */
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
#include "agent/jsonsql/jsonsql.h"
#include "tests/unit/jsonsql_fixture.h"
#include "tests/testutil.h"


/* ---------------------------------------------------------------- select */

static void test_point_lookup(void **state)
{
    struct fx *f = *state;
    sel(f, "{\"data\":[\"id\",\"username\"],\"from\":\"subscriber\",\"where\":{\"eq\":[\"id\",1]},\"limit\":1}",
        "SELECT \"id\", \"username\" FROM \"subscriber\" WHERE \"id\" = ?1 LIMIT ?2",
        "[[1,\"alice\"]]");
    /* The statement's description. */
    cJSON *p = parse("{\"data\":[\"id\",\"disabled\",\"info\",{\"function\":\"count\",\"args\":[\"*\"]},"
                     "{\"function\":\"max\",\"args\":\"balance\"}],\"from\":\"subscriber\",\"group_by\":\"id\"}");
    struct jsonsql_stmt st;
    char err[256];
    if (jsonsql_compile(f->cat, "select", p, NULL, &st, err, sizeof err) != 0) fail_msg("%s", err);
    assert_int_equal(st.kind, JSQL_SELECT);
    assert_string_equal(st.table, "subscriber");
    assert_int_equal(st.ncols, 5);
    assert_int_equal(st.col_types[0], JSQL_INT);
    assert_int_equal(st.col_types[1], JSQL_BOOL);
    assert_int_equal(st.col_types[2], JSQL_JSON);
    assert_int_equal(st.col_types[3], JSQL_INT);
    assert_int_equal(st.col_types[4], JSQL_REAL);   /* max keeps its argument's type */
    assert_int_equal(st.nparams, 0);
    jsonsql_stmt_free(&st);
    cJSON_Delete(p);
}

static void test_star_and_row_shapes(void **state)
{
    struct fx *f = *state;
    const char *all = "[[1,\"alice\",false,10.5,\"2024-01-01 10:00:00\",{\"tv\":true}],"
                      "[2,\"bob\",true,0.25,\"2024-01-02 11:00:00\",[1,2]],"
                      "[3,\"Иван\",false,-3.75,\"2024-01-03 12:00:00\",null],"
                      "[4,\"carol\",null,99.5,\"2024-01-04 13:00:00\",\"not json\"]]";
    const char *sql = "SELECT \"id\", \"username\", \"disabled\", \"balance\", \"created_at\", \"info\""
                      " FROM \"subscriber\" ORDER BY \"id\" NULLS LAST";
    sel(f, "{\"data\":\"*\",\"from\":\"subscriber\",\"order_by\":\"id\"}", sql, all);
    sel(f, "{\"data\":[\"*\"],\"from\":\"subscriber\",\"order_by\":\"id\"}", sql, all);
    /* BLOB as "\\x" + hex (json_write_blob: never raw bytes); NUMERIC (ANY) by storage class. */
    sel(f, "{\"data\":[\"data\",\"price\"],\"from\":\"package\",\"order_by\":\"id\"}",
        "SELECT \"data\", \"price\" FROM \"package\" ORDER BY \"id\" NULLS LAST",
        "[[\"\\\\x00ff41\",1.5],[null,2]]");
    /* A catalog name that needs its quote doubled. */
    sel(f, "{\"data\":[\"v\"],\"from\":\"odd \\\"name\"}", "SELECT \"v\" FROM \"odd \"\"name\"",
        "[[\"v1\"]]");
}

/* Cells are shaped by catalog type and storage class: a TEXT column holding a
 * number is still a string, BOOL is true/false whatever the number, and a JSON
 * column is raw only when its text really is JSON. */
static void test_row_storage_classes(void **state)
{
    struct fx *f = *state;
    assert_int_equal(sqlite3_exec(f->db,
        "UPDATE subscriber SET created_at = 1700000000, disabled = 0.5,"
        " info = ' {\"a\" : [1, -2.5e3, \"x\\\"y\\u00e9\", true, false, null, {}]} ' WHERE id = 1;"
        "UPDATE subscriber SET created_at = 1.5, disabled = 'yes', info = '[1,]' WHERE id = 2;"
        "UPDATE subscriber SET info = '[01]' WHERE id = 3;"
        "UPDATE subscriber SET info = '\"a\\q\"' WHERE id = 4;", NULL, NULL, NULL), SQLITE_OK);
    sel(f, "{\"data\":[\"created_at\",\"disabled\",\"info\"],\"from\":\"subscriber\",\"order_by\":\"id\"}",
        "SELECT \"created_at\", \"disabled\", \"info\" FROM \"subscriber\" ORDER BY \"id\" NULLS LAST",
        "[[\"1700000000\",true, {\"a\" : [1, -2.5e3, \"x\\\"y\\u00e9\", true, false, null, {}]} ],"
        "[\"1.5\",\"yes\",\"[1,]\"],[\"2024-01-03 12:00:00\",false,\"[01]\"],"
        "[\"2024-01-04 13:00:00\",null,\"\\\"a\\\\q\\\"\"]]");
    assert_int_equal(sqlite3_exec(f->db, "UPDATE subscriber SET info = '5' WHERE id = 1;"
                                         "UPDATE subscriber SET info = '{\"a\":[1,2}' WHERE id = 2;"
                                         "UPDATE subscriber SET info = '[-0.5E+2]' WHERE id = 3;"
                                         "UPDATE subscriber SET info = '\"ok\"' WHERE id = 4;",
                                  NULL, NULL, NULL), SQLITE_OK);
    sel(f, "{\"data\":[\"info\"],\"from\":\"subscriber\",\"order_by\":\"id\"}",
        "SELECT \"info\" FROM \"subscriber\" ORDER BY \"id\" NULLS LAST",
        "[[5],[\"{\\\"a\\\":[1,2}\"],[[-0.5E+2]],[\"ok\"]]");
    /* Binding refuses a statement that does not match. */
    cJSON *p = parse("{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"in\":[\"id\",[1,2]]}}");
    struct jsonsql_stmt st;
    char err[256];
    assert_int_equal(jsonsql_compile(f->cat, "select", p, NULL, &st, err, sizeof err), 0);
    sqlite3_stmt *ps;
    assert_int_equal(sqlite3_prepare_v2(f->db, "SELECT ?1", -1, &ps, NULL), SQLITE_OK);
    assert_int_equal(jsonsql_bind(&st, ps), SQLITE_RANGE);
    sqlite3_finalize(ps);
    jsonsql_stmt_free(&st);
    cJSON_Delete(p);
}

static void test_comparisons(void **state)
{
    struct fx *f = *state;
    static const struct where_case c[] = {
        {"{\"eq\":[\"username\",\"bob\"]}", "\"username\" = ?1", "[[2]]"},
        {"{\"neq\":[\"username\",\"bob\"]}", "\"username\" <> ?1", "[[1],[3],[4]]"},
        {"{\"lt\":[\"balance\",0.25]}", "\"balance\" < ?1", "[[3]]"},
        {"{\"gt\":[\"balance\",10.5]}", "\"balance\" > ?1", "[[4]]"},
        {"{\"lte\":[\"balance\",0.25]}", "\"balance\" <= ?1", "[[2],[3]]"},
        {"{\"gte\":[\"id\",3]}", "\"id\" >= ?1", "[[3],[4]]"},
        {"{\"eq\":[\"disabled\",true]}", "\"disabled\" = ?1", "[[2]]"},
        {"{\"eq\":[\"disabled\",false]}", "\"disabled\" = ?1", "[[1],[3]]"},
        {"{\"eq\":[\"disabled\",null]}", "\"disabled\" = NULL", "[]"},
        {"{\"eq\":[\"username\",\"Иван\"]}", "\"username\" = ?1", "[[3]]"},
        /* A right-hand string naming a column is that column. */
        {"{\"eq\":[\"username\",\"username\"]}", "\"username\" = \"username\"", "[[1],[2],[3],[4]]"},
        {"{\"lt\":[\"id\",\"balance\"]}", "\"id\" < \"balance\"", "[[1],[4]]"},
        /* A literal may stand on the left. */
        {"{\"lt\":[3,\"id\"]}", "?1 < \"id\"", "[[4]]"},
        /* Arrays and objects compare as their JSON text. */
        {"{\"eq\":[\"info\",[1,2]]}", "\"info\" = ?1", "[[2]]"},
        {"{\"eq\":[\"info\",{\"tv\":true}]}", "\"info\" = ?1", "[[1]]"},
        /* LIKE is case-sensitive and escapes with a backslash, as in PostgreSQL. */
        {"{\"like\":[\"username\",\"%o%\"]}", "\"username\" LIKE ?1 ESCAPE '\\'", "[[2],[4]]"},
        {"{\"like\":[\"username\",\"A%\"]}", "\"username\" LIKE ?1 ESCAPE '\\'", "[]"},
        {"{\"like\":[\"username\",\"a%\"]}", "\"username\" LIKE ?1 ESCAPE '\\'", "[[1]]"},
        {"{\"ilike\":[\"username\",\"%O%\"]}", "LOWER(\"username\") LIKE LOWER(?1) ESCAPE '\\'",
         "[[2],[4]]"},
        {"{\"ilike\":[\"username\",\"ИВ%\"]}", "LOWER(\"username\") LIKE LOWER(?1) ESCAPE '\\'", "[[3]]"},
        {"{\"is\":[\"disabled\",true]}", "\"disabled\" IS TRUE", "[[2]]"},
        {"{\"is\":[\"disabled\",false]}", "\"disabled\" IS FALSE", "[[1],[3]]"},
        {"{\"is\":[\"disabled\",null]}", "\"disabled\" IS NULL", "[[4]]"},
        {"{\"is_not\":[\"disabled\",true]}", "\"disabled\" IS NOT TRUE", "[[1],[3],[4]]"},
        {"{\"is_not\":[\"disabled\",false]}", "\"disabled\" IS NOT FALSE", "[[2],[4]]"},
        {"{\"is_not\":[\"disabled\",null]}", "\"disabled\" IS NOT NULL", "[[1],[2],[3]]"},
        {"{\"is\":[\"info\",null]}", "\"info\" IS NULL", "[[3]]"},
    };
    where_cases(f, c, sizeof c / sizeof c[0]);
    /* LIKE escapes on package names "sport_100%" and "sportX100". */
    sel(f, "{\"data\":[\"id\"],\"from\":\"package\",\"where\":{\"like\":[\"name\",\"sport_100%\"]},\"order_by\":\"id\"}",
        "SELECT \"id\" FROM \"package\" WHERE \"name\" LIKE ?1 ESCAPE '\\' ORDER BY \"id\" NULLS LAST", "[[1],[2]]");
    sel(f, "{\"data\":[\"id\"],\"from\":\"package\",\"where\":{\"like\":[\"name\",\"sport\\\\_100\\\\%\"]}}",
        "SELECT \"id\" FROM \"package\" WHERE \"name\" LIKE ?1 ESCAPE '\\'", "[[1]]");
}

static void test_logic_in_arith(void **state)
{
    struct fx *f = *state;
    static const struct where_case c[] = {
        {"{\"and\":[{\"gt\":[\"id\",1]},{\"or\":[{\"eq\":[\"username\",\"bob\"]},{\"eq\":[\"username\",\"carol\"]}]}]}",
         "(\"id\" > ?1 AND (\"username\" = ?2 OR \"username\" = ?3))", "[[2],[4]]"},
        {"{\"and\":[{\"gt\":[\"id\",1]}]}", "(\"id\" > ?1)", "[[2],[3],[4]]"},
        {"{\"not\":{\"eq\":[\"id\",1]}}", "NOT (\"id\" = ?1)", "[[2],[3],[4]]"},
        {"{\"not\":[{\"lt\":[\"id\",3]}]}", "NOT (\"id\" < ?1)", "[[3],[4]]"},
        {"{\"in\":[\"id\",[1,3,99]]}", "\"id\" IN (?1, ?2, ?3)", "[[1],[3]]"},
        /* In-list strings are values even when they name a column. */
        {"{\"in\":[\"username\",[\"bob\",\"id\",null]]}", "\"username\" IN (?1, ?2, NULL)", "[[2]]"},
        {"{\"in\":[\"id\",[]]}", "\"id\" IN ()", "[]"},
        {"{\"not\":{\"in\":[\"id\",[]]}}", "NOT (\"id\" IN ())", "[[1],[2],[3],[4]]"},
        {"{\"in\":[\"id\",{\"select\":{\"data\":[\"subscriber_id\"],\"from\":\"terminal\","
         "\"where\":{\"eq\":[\"model\",\"tvip\"]}}}]}",
         "\"id\" IN (SELECT \"subscriber_id\" FROM \"terminal\" WHERE \"model\" = ?1)", "[[2]]"},
        {"{\"eq\":[{\"mod\":[\"id\",2]},0]}", "(\"id\" % jsonsql_divisor(?1)) = ?2", "[[2],[4]]"},
        {"{\"gt\":[{\"mul\":[\"balance\",2]},{\"add\":[\"id\",10]}]}", "(\"balance\" * ?1) > jsonsql_bigint(\"id\" + ?2)",
         "[[1],[4]]"},
        {"{\"eq\":[{\"sub\":[\"id\",1]},{\"div\":[4,2]}]}", "jsonsql_bigint(\"id\" - ?1) = jsonsql_bigint(?2 / jsonsql_divisor(?3))", "[[3]]"},
        {"{\"eq\":[{\"function\":\"lower\",\"args\":\"username\"},\"иван\"]}", "LOWER(\"username\") = ?1",
         "[[3]]"},
        {"{\"gt\":[{\"function\":\"length\",\"args\":[{\"function\":\"upper\",\"args\":\"username\"}]},4]}",
         "LENGTH(UPPER(\"username\")) > ?1", "[[1],[4]]"},
    };
    where_cases(f, c, sizeof c / sizeof c[0]);
}

static void test_functions(void **state)
{
    struct fx *f = *state;
    sel(f, "{\"data\":[{\"function\":\"count\",\"args\":[\"*\"]}],\"from\":\"subscriber\"}",
        "SELECT COUNT(*) FROM \"subscriber\"", "[[4]]");
    sel(f, "{\"data\":[{\"function\":\"COUNT\",\"args\":\"*\",\"as\":\"n\"}],\"from\":\"subscriber\"}",
        "SELECT COUNT(*) AS \"n\" FROM \"subscriber\"", "[[4]]");
    sel(f, "{\"data\":[{\"function\":\"count\",\"args\":\"disabled\"}],\"from\":\"subscriber\"}",
        "SELECT COUNT(\"disabled\") FROM \"subscriber\"", "[[3]]");
    sel(f, "{\"data\":[{\"function\":\"count\",\"args\":[1]}],\"from\":\"subscriber\"}",
        "SELECT COUNT(?1) FROM \"subscriber\"", "[[4]]");
    sel(f, "{\"data\":[{\"function\":\"count\",\"args\":{\"function\":\"distinct\",\"args\":\"mac_addr\"}}],"
           "\"from\":\"terminal\"}",
        "SELECT COUNT(DISTINCT \"mac_addr\") FROM \"terminal\"", "[[3]]");
    sel(f, "{\"data\":[{\"function\":\"count\",\"args\":[{\"function\":\"distinct\",\"args\":[\"model\"]}]}],"
           "\"from\":\"terminal\"}",
        "SELECT COUNT(DISTINCT \"model\") FROM \"terminal\"", "[[3]]");
    sel(f, "{\"data\":[{\"function\":\"sum\",\"args\":{\"function\":\"distinct\",\"args\":\"subscriber_id\"}}],"
           "\"from\":\"terminal\"}",
        "SELECT jsonsql_sum(DISTINCT \"subscriber_id\") FROM \"terminal\"", "[[3]]");
    sel(f, "{\"data\":[{\"function\":\"max\",\"args\":\"balance\"},{\"function\":\"min\",\"args\":[\"balance\"]},"
           "{\"function\":\"sum\",\"args\":\"id\"},{\"function\":\"avg\",\"args\":\"id\"}],\"from\":\"subscriber\"}",
        "SELECT MAX(\"balance\"), MIN(\"balance\"), jsonsql_sum(\"id\"), jsonsql_avg(\"id\") FROM \"subscriber\"",
        "[[99.5,-3.75,10,2.5]]");
    sel(f, "{\"data\":[{\"function\":\"upper\",\"args\":\"username\",\"as\":\"u\"},"
           "{\"function\":\"lower\",\"args\":\"username\"}],\"from\":\"subscriber\",\"where\":{\"eq\":[\"id\",3]}}",
        "SELECT UPPER(\"username\") AS \"u\", LOWER(\"username\") FROM \"subscriber\" WHERE \"id\" = ?1",
        "[[\"ИВАН\",\"иван\"]]");
    sel(f, "{\"data\":[{\"function\":\"upper\",\"args\":\"model\"},{\"function\":\"lower\",\"args\":\"model\"}],"
           "\"from\":\"terminal\",\"where\":{\"eq\":[\"id\",13]}}",
        "SELECT UPPER(\"model\"), LOWER(\"model\") FROM \"terminal\" WHERE \"id\" = ?1",
        "[[\"ТЕСТ\",\"тест\"]]");
    sel(f, "{\"data\":[{\"function\":\"coalesce\",\"args\":[\"info\",\"none\"]}],\"from\":\"subscriber\","
           "\"order_by\":\"id\"}",
        "SELECT COALESCE(\"info\", ?1) FROM \"subscriber\" ORDER BY \"id\" NULLS LAST",
        "[[\"{\\\"tv\\\":true}\"],[\"[1,2]\"],[\"none\"],[\"not json\"]]");
    /* A boolean stays a boolean through coalesce (PostgreSQL's type). */
    sel(f, "{\"data\":[{\"function\":\"coalesce\",\"args\":\"disabled\"},"
           "{\"function\":\"coalesce\",\"args\":[\"disabled\",false]}],\"from\":\"subscriber\",\"order_by\":\"id\"}",
        "SELECT COALESCE(\"disabled\", NULL), COALESCE(\"disabled\", ?1) FROM \"subscriber\" ORDER BY \"id\" NULLS LAST",
        "[[false,false],[true,true],[false,false],[null,false]]");
    sel(f, "{\"data\":[{\"function\":\"length\",\"args\":\"username\"},{\"function\":\"abs\",\"args\":\"balance\"},"
           "{\"function\":\"round\",\"args\":[\"balance\",1]},{\"function\":\"round\",\"args\":\"balance\"}],"
           "\"from\":\"subscriber\",\"where\":{\"eq\":[\"id\",3]}}",
        "SELECT LENGTH(\"username\"), ABS(\"balance\"), ROUND(\"balance\", ?1), ROUND(\"balance\")"
        " FROM \"subscriber\" WHERE \"id\" = ?2",
        "[[4,3.75,-3.8,-4.0]]");
    const char *rx_sql = "SELECT regexp_replace(\"mac_addr\", ?1, ?2) FROM \"terminal\" WHERE \"id\" = ?3";
    sel(f, "{\"data\":[{\"function\":\"regexp_replace\",\"args\":[\"mac_addr\",\":\",\"-\"]}],"
           "\"from\":\"terminal\",\"where\":{\"eq\":[\"id\",10]}}",
        rx_sql, "[[\"AA-BB:CC:00:00:01\"]]");
    sel(f, "{\"data\":[{\"function\":\"regexp_replace\",\"args\":[\"mac_addr\",\":\",\"-\",\"g\"]}],"
           "\"from\":\"terminal\",\"where\":{\"eq\":[\"id\",10]}}",
        "SELECT regexp_replace(\"mac_addr\", ?1, ?2, ?3) FROM \"terminal\" WHERE \"id\" = ?4",
        "[[\"AA-BB-CC-00-00-01\"]]");
    sel(f, "{\"data\":[{\"function\":\"regexp_replace\",\"args\":[\"username\",\"^(.)(.*)$\",\"\\\\2\\\\1\"],"
           "\"as\":\"r\"}],\"from\":\"subscriber\",\"order_by\":\"id\",\"limit\":2}",
        "SELECT regexp_replace(\"username\", ?1, ?2) AS \"r\" FROM \"subscriber\" ORDER BY \"id\" NULLS LAST LIMIT ?3",
        "[[\"licea\"],[\"obb\"]]");
    sel(f, "{\"data\":[{\"function\":\"regexp_replace\",\"args\":[\"username\",\"в|И\",\"_\",\"g\"]}],"
           "\"from\":\"subscriber\",\"where\":{\"eq\":[\"id\",3]}}",
        "SELECT regexp_replace(\"username\", ?1, ?2, ?3) FROM \"subscriber\" WHERE \"id\" = ?4",
        "[[\"__ан\"]]");
    sel(f, "{\"data\":[{\"function\":\"regexp_replace\",\"args\":[\"username\",\"ALICE\",\"x\",\"i\"]}],"
           "\"from\":\"subscriber\",\"where\":{\"eq\":[\"id\",1]}}",
        "SELECT regexp_replace(\"username\", ?1, ?2, ?3) FROM \"subscriber\" WHERE \"id\" = ?4", "[[\"x\"]]");
}

/* regexp_replace, lower and upper as SQL functions, apart from the compiler. */
static void test_sql_functions(void **state)
{
    struct fx *f = *state;
    static const struct { const char *sql, *want; } c[] = {
        {"SELECT regexp_replace('abc', 'x*', '-', 'g')", "-a-b-c-"},
        {"SELECT regexp_replace('xxa', 'x*', '-', 'g')", "--a-"},
        {"SELECT regexp_replace('abc', 'x*', '-')", "-abc"},
        {"SELECT regexp_replace('aaa', '^a', 'b', 'g')", "baa"},
        {"SELECT regexp_replace('a.b.c', '\\.', '/', 'g')", "a/b/c"},
        {"SELECT regexp_replace('john smith', '([a-z]+) ([a-z]+)', '\\2, \\1 (\\&) \\\\ \\q')",
         "smith, john (john smith) \\ \\q"},
        {"SELECT regexp_replace('abc', 'b', '[\\3]')", "a[]c"},
        {"SELECT regexp_replace('Привет мир', 'и', 'I', 'g')", "ПрIвет мIр"},
        {"SELECT regexp_replace('Жук', '', '.', 'g')", ".Ж.у.к."},
        {"SELECT regexp_replace('ABC', 'b', 'x', 'gi')", "AxC"},
        {"SELECT regexp_replace('no match', 'zzz', 'x', 'g')", "no match"},
        {"SELECT lower('ÀÉÎ ŁŚŹ Ÿ ΑΒΓΣ ЁЖЯ Ѣ')", "àéî łśź ÿ αβγσ ёжя ѣ"},
        {"SELECT upper('àéî łśź ÿ αβγς ёжя ѣ ß')", "ÀÉÎ ŁŚŹ Ÿ ΑΒΓΣ ЁЖЯ Ѣ ß"},
        {"SELECT upper('日本 abc')", "日本 ABC"},
        {"SELECT 'abc' LIKE 'ABC'", "0"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        sqlite3_stmt *ps;
        if (sqlite3_prepare_v2(f->db, c[i].sql, -1, &ps, NULL) != SQLITE_OK)
            fail_msg("%s: %s", c[i].sql, sqlite3_errmsg(f->db));
        for (int k = 0; k < 2; k++) {   /* twice: the second run uses the cached regex */
            assert_int_equal(sqlite3_step(ps), SQLITE_ROW);
            const char *got = (const char *)sqlite3_column_text(ps, 0);
            if (strcmp(got, c[i].want) != 0) fail_msg("%s: got %s want %s", c[i].sql, got, c[i].want);
            sqlite3_reset(ps);
        }
        sqlite3_finalize(ps);
    }
    /* Per-row patterns: the cache follows a changing pattern argument. */
    sqlite3_stmt *ps;
    assert_int_equal(sqlite3_prepare_v2(f->db,
        "SELECT group_concat(regexp_replace('abcabc', p, 'X', fl), ',') FROM "
        "(SELECT 'a' AS p, 'g' AS fl UNION ALL SELECT 'B', 'i' UNION ALL SELECT 'B', 'gi' UNION ALL SELECT 'c', '')",
        -1, &ps, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(ps), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(ps, 0), "XbcXbc,aXcabc,aXcaXc,abXabc");
    sqlite3_finalize(ps);
    /* NULL in, NULL out; errors for a bad pattern or flag. */
    assert_int_equal(sqlite3_prepare_v2(f->db, "SELECT regexp_replace(NULL, 'a', 'b'), "
                                               "regexp_replace('a', 'a', NULL), lower(NULL)", -1, &ps, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(ps), SQLITE_ROW);
    for (int i = 0; i < 3; i++) assert_int_equal(sqlite3_column_type(ps, i), SQLITE_NULL);
    sqlite3_finalize(ps);
    char *msg = NULL;
    assert_int_not_equal(sqlite3_exec(f->db, "SELECT regexp_replace('a', '[[:nope:]]', 'b')", NULL, NULL, &msg),
                         SQLITE_OK);
    assert_non_null(strstr(msg, "regexp_replace: invalid pattern: "));
    sqlite3_free(msg);
    assert_int_not_equal(sqlite3_exec(f->db, "SELECT regexp_replace('a', 'a', 'b', 'gx')", NULL, NULL, &msg), SQLITE_OK);
    assert_string_equal(msg, "regexp_replace: unsupported flag 'x' (supported: g, i, c)");
    sqlite3_free(msg);
}

/* regexp_replace answers as PostgreSQL's does (the portal's answers, from
 * PostgreSQL's documented regular expressions: AREs, flags g i c, the first
 * match only without g), or refuses; never a different answer. */
static void test_regexp_postgresql(void **state)
{
    struct fx *f = *state;
    static const struct { const char *sql, *want; } c[] = {
        /* class-shorthand escapes, outside and inside brackets */
        {"SELECT regexp_replace('a1b22', '\\d+', '#')", "a#b22"},
        {"SELECT regexp_replace('a1b22', '\\d+', '#', 'g')", "a#b#"},
        {"SELECT regexp_replace('a1b22', '\\D', '-', 'g')", "-1-22"},
        {"SELECT regexp_replace('foo bar  baz', '\\s+', '_', 'g')", "foo_bar_baz"},
        {"SELECT regexp_replace('a b', '\\S', 'x', 'g')", "x x"},
        {"SELECT regexp_replace('ab_c9-d', '\\w+', 'W', 'g')", "W-W"},
        {"SELECT regexp_replace('ab_c-d!', '\\W', '.', 'g')", "ab_c.d."},
        {"SELECT regexp_replace('x1y2', '[\\d]', '#', 'g')", "x#y#"},
        {"SELECT regexp_replace('a-b_c d', '[\\w-]+', '.', 'g')", ". ."},
        {"SELECT regexp_replace('a b,c', '[\\s,]+', '|', 'g')", "a|b|c"},
        {"SELECT regexp_replace('x9y', '[^\\d]', '', 'g')", "9"},
        /* characters, not bytes: UTF-8 text as PostgreSQL sees it */
        {"SELECT regexp_replace('Привет, мир!', '\\w+', 'X', 'g')", "X, X!"},
        {"SELECT regexp_replace('Жук', '.', 'x')", "xук"},
        {"SELECT regexp_replace('ПРИВЕТ мир', 'привет', 'hi', 'i')", "hi мир"},
        {"SELECT regexp_replace('Жук', '[а-я]+', 'X')", "ЖX"},
        {"SELECT regexp_replace('abcЖук', '[а-яё]+', 'X', 'gi')", "abcX"},
        {"SELECT regexp_replace('ёлка!', '[а-ё]', '_', 'g')", "____!"},
        /* an escaped punctuation character is itself (GNU would read \\< as a word start) */
        {"SELECT regexp_replace('<a>', '\\<a\\>', 'X')", "X"},
        {"SELECT regexp_replace('1+1=2', '\\+', ' plus ')", "1 plus 1=2"},
        {"SELECT regexp_replace('[x]{y}', '\\[x\\]\\{y\\}', 'Z')", "Z"},
        {"SELECT regexp_replace('a.b', 'a\\.b', 'X')", "X"},
        {"SELECT regexp_replace('a]b', '[\\]]', '-')", "a-b"},
        {"SELECT regexp_replace('a]b', '[]]', '-')", "a-b"},
        {"SELECT regexp_replace('a\\b', '[\\\\]', '/')", "a/b"},
        {"SELECT regexp_replace('a\\b', '\\\\', '/')", "a/b"},
        {"SELECT regexp_replace('a^b', '[\\^]', '-')", "a-b"},
        {"SELECT regexp_replace('a^b-c', '[\\^-]', '_', 'g')", "a_b_c"},
        {"SELECT regexp_replace('a^b-c[d', '[[^-]', '_', 'g')", "a_b_c_d"},
        {"SELECT regexp_replace('a{b', 'a{b', 'X')", "X"},
        {"SELECT regexp_replace('aaaa', 'a{2}', 'X', 'g')", "XX"},
        {"SELECT regexp_replace('aaaaa', 'a{2,}', 'X')", "X"},
        /* character-entry escapes; \\b is a backspace, not a word boundary */
        {"SELECT regexp_replace('a' || char(9) || 'b', '\\t', ' ')", "a b"},
        {"SELECT regexp_replace('ab', '\\b', 'x', 'g')", "ab"},
        {"SELECT regexp_replace('a' || char(10) || 'b', '[\\n]', '|')", "a|b"},
        /* \\A and \\Z: the start and end of the text */
        {"SELECT regexp_replace('abcabc', '\\Aabc', 'X', 'g')", "Xabc"},
        {"SELECT regexp_replace('abcabc', 'abc\\Z', 'X', 'g')", "abcX"},
        /* flags: first match only without g; the last of i and c wins */
        {"SELECT regexp_replace('aaa', 'a', 'b')", "baa"},
        {"SELECT regexp_replace('ABC', 'b', 'x', 'ic')", "ABC"},
        {"SELECT regexp_replace('ABCb', 'b', 'x', 'cig')", "AxCx"},
        /* replacement: \\1..\\9 and \\& */
        {"SELECT regexp_replace('john smith', '(\\w+) (\\w+)', '\\2 \\1')", "smith john"},
        {"SELECT regexp_replace('abc', '\\w', '<\\&>', 'g')", "<a><b><c>"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        sqlite3_stmt *ps;
        if (sqlite3_prepare_v2(f->db, c[i].sql, -1, &ps, NULL) != SQLITE_OK)
            fail_msg("%s: %s", c[i].sql, sqlite3_errmsg(f->db));
        if (sqlite3_step(ps) != SQLITE_ROW) fail_msg("%s: %s", c[i].sql, sqlite3_errmsg(f->db));
        const char *got = (const char *)sqlite3_column_text(ps, 0);
        if (strcmp(got, c[i].want) != 0) fail_msg("%s: got %s want %s", c[i].sql, got, c[i].want);
        sqlite3_finalize(ps);
    }
    /* What a POSIX ERE would read differently is refused, saying what. */
    static const struct { const char *pat, *flags, *err; } r[] = {
        {"\\mfoo", "", "word constraints (\\m \\M \\y \\Y) are not supported"},
        {"foo\\y", "", "word constraints"},
        {"a(?=b)", "", "(?...) groups (lookahead, lookbehind, non-capturing, options) are not supported"},
        {"(?:ab)+", "", "(?...) groups"},
        {"(?i)ab", "", "(?...) groups"},
        {"a*?", "", "'?' has nothing to repeat"},
        {"a+?", "", "nothing to repeat"},
        {"a{1,2}?", "", "nothing to repeat"},
        {"a**", "", "nothing to repeat"},
        {"*a", "", "'*' has nothing to repeat"},
        {"(a)\\1", "", "back-references (\\1..\\9) in the pattern are not supported"},
        {"\\x41", "", "the escape \\x is not supported"},
        {"\\u0041", "", "the escape \\u is not supported"},
        {"\\0", "", "the escape \\0 is not supported"},
        {"[\\D]", "", "\\D inside brackets is not supported"},
        {"[\\x]", "", "the escape \\x is not supported"},
        {"[[.a.]]", "", "collating elements"},
        {"[\\d-z]", "", "a range cannot start with a character class"},
        {"[a-\\d]", "", "a range must end with a character"},
        {"[z-a]", "", "invalid range"},
        {"[一-龥]", "", "a range of more than 1024 characters"},
        {"***:abc", "", "*** directors are not supported"},
        {"a{256}", "", "invalid repetition count"},
        {"a{3,2}", "", "invalid repetition count"},
        {"ab\\", "", "the pattern ends with a backslash"},
        {"(ab", "", "unbalanced parenthesis"},
        {"ab)", "", "unbalanced parenthesis"},
        {"[ab", "", "unterminated bracket expression"},
        {"a", "x", "unsupported flag 'x'"},
        {"a", "n", "unsupported flag 'n'"},
        {"a", "gq", "unsupported flag 'q'"},
    };
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) {
        sqlite3_stmt *ps;
        assert_int_equal(sqlite3_prepare_v2(f->db, "SELECT regexp_replace('ab', ?1, 'x', ?2)", -1, &ps, NULL),
                         SQLITE_OK);
        sqlite3_bind_text(ps, 1, r[i].pat, -1, SQLITE_STATIC);
        sqlite3_bind_text(ps, 2, r[i].flags, -1, SQLITE_STATIC);
        if (sqlite3_step(ps) != SQLITE_ERROR)
            fail_msg("pattern %s flags '%s' was not refused: %s", r[i].pat, r[i].flags,
                     sqlite3_column_text(ps, 0) ? (const char *)sqlite3_column_text(ps, 0) : "NULL");
        const char *m = sqlite3_errmsg(f->db);
        if (strncmp(m, "regexp_replace: ", 16) != 0 || !strstr(m, r[i].err))
            fail_msg("pattern %s flags '%s': %s, want %s", r[i].pat, r[i].flags, m, r[i].err);
        sqlite3_finalize(ps);
    }
}

static void test_distinct(void **state)
{
    struct fx *f = *state;
    const char *rows = "[[\"mag250\"],[\"tvip\"],[\"Тест\"]]";
    const char *sql = "SELECT DISTINCT \"model\" FROM \"terminal\" ORDER BY \"model\" NULLS LAST";
    sel(f, "{\"data\":[\"model\"],\"from\":\"terminal\",\"distinct\":true,\"order_by\":\"model\"}", sql, rows);
    sel(f, "{\"data\":[{\"function\":\"distinct\",\"args\":\"model\"}],\"from\":\"terminal\",\"order_by\":\"model\"}",
        sql, rows);
    sel(f, "{\"data\":{\"function\":\"distinct\",\"args\":[\"model\"]},\"from\":\"terminal\",\"order_by\":\"model\"}",
        sql, rows);
    sel(f, "{\"data\":[\"model\"],\"from\":\"terminal\",\"distinct\":false,\"order_by\":\"model\"}",
        "SELECT \"model\" FROM \"terminal\" ORDER BY \"model\" NULLS LAST",
        "[[\"mag250\"],[\"mag250\"],[\"tvip\"],[\"Тест\"]]");
    sel(f, "{\"data\":[{\"function\":\"distinct\",\"args\":[\"model\",\"active\"]}],\"from\":\"terminal\","
           "\"order_by\":[\"model\",\"active\"]}",
        "SELECT DISTINCT \"model\", \"active\" FROM \"terminal\" ORDER BY \"model\" NULLS LAST, \"active\" NULLS LAST",
        "[[\"mag250\",false],[\"mag250\",true],[\"tvip\",true],[\"Тест\",true]]");
    sel(f, "{\"data\":[{\"function\":\"distinct\",\"args\":\"model\",\"as\":\"m\"}],\"from\":\"terminal\","
           "\"order_by\":\"m desc\"}",
        "SELECT DISTINCT \"model\" AS \"m\" FROM \"terminal\" ORDER BY \"m\" DESC NULLS FIRST",
        "[[\"Тест\"],[\"tvip\"],[\"mag250\"]]");
}

static void test_joins(void **state)
{
    struct fx *f = *state;
    sel(f, "{\"data\":[\"s.username\",{\"t\":\"mac_addr\"},\"model\"],\"from\":[{\"table\":\"subscriber\",\"as\":\"s\"},"
           "{\"join\":\"terminal\",\"as\":\"t\",\"on\":{\"eq\":[{\"s\":\"id\"},{\"t\":\"subscriber_id\"}]}}],"
           "\"where\":{\"eq\":[\"t.active\",true]},\"order_by\":[\"t.id\"]}",
        "SELECT \"s\".\"username\", \"t\".\"mac_addr\", \"t\".\"model\" FROM \"subscriber\" AS \"s\""
        " JOIN \"terminal\" AS \"t\" ON \"s\".\"id\" = \"t\".\"subscriber_id\""
        " WHERE \"t\".\"active\" = ?1 ORDER BY \"t\".\"id\" NULLS LAST",
        "[[\"alice\",\"AA:BB:CC:00:00:01\",\"mag250\"],[\"bob\",\"AA:BB:CC:00:00:01\",\"tvip\"]]");
    sel(f, "{\"data\":[\"s.id\",{\"function\":\"count\",\"args\":\"t.id\",\"as\":\"n\"}],"
           "\"from\":[{\"table\":\"subscriber\",\"as\":\"s\"},"
           "{\"left_join\":\"terminal\",\"as\":\"t\",\"on\":{\"eq\":[\"s.id\",\"t.subscriber_id\"]}}],"
           "\"group_by\":\"s.id\",\"order_by\":{\"s\":\"id\"}}",
        "SELECT \"s\".\"id\", COUNT(\"t\".\"id\") AS \"n\" FROM \"subscriber\" AS \"s\""
        " LEFT JOIN \"terminal\" AS \"t\" ON \"s\".\"id\" = \"t\".\"subscriber_id\""
        " GROUP BY \"s\".\"id\" ORDER BY \"s\".\"id\" NULLS LAST",
        "[[1,2],[2,1],[3,0],[4,0]]");
    sel(f, "{\"data\":[\"username\",\"model\"],\"from\":[\"subscriber\",{\"join\":\"terminal\","
           "\"on\":{\"eq\":[\"subscriber.id\",\"terminal.subscriber_id\"]}}],\"where\":{\"eq\":[\"terminal.id\",12]}}",
        "SELECT \"subscriber\".\"username\", \"terminal\".\"model\" FROM \"subscriber\""
        " JOIN \"terminal\" ON \"subscriber\".\"id\" = \"terminal\".\"subscriber_id\""
        " WHERE \"terminal\".\"id\" = ?1",
        "[[\"bob\",\"tvip\"]]");
    sel(f, "{\"data\":[\"t.*\"],\"from\":[{\"table\":\"subscriber\",\"as\":\"s\"},{\"join\":\"terminal\",\"as\":\"t\","
           "\"on\":{\"and\":[{\"eq\":[\"s.id\",\"t.subscriber_id\"]},{\"eq\":[\"s.username\",\"bob\"]}]}}]}",
        "SELECT \"t\".\"id\", \"t\".\"subscriber_id\", \"t\".\"mac_addr\", \"t\".\"model\", \"t\".\"active\""
        " FROM \"subscriber\" AS \"s\" JOIN \"terminal\" AS \"t\""
        " ON (\"s\".\"id\" = \"t\".\"subscriber_id\" AND \"s\".\"username\" = ?1)",
        "[[12,2,\"AA:BB:CC:00:00:01\",\"tvip\",true]]");
    sel(f, "{\"data\":\"*\",\"from\":[{\"table\":\"package\",\"as\":\"p\"},{\"join\":\"terminal\",\"as\":\"t\","
           "\"on\":{\"eq\":[\"t.id\",{\"add\":[\"p.id\",9]}]}}],\"where\":{\"eq\":[\"p.id\",1]}}",
        "SELECT \"p\".\"id\", \"p\".\"name\", \"p\".\"paid\", \"p\".\"big\", \"p\".\"data\", \"p\".\"price\","
        " \"t\".\"id\", \"t\".\"subscriber_id\", \"t\".\"mac_addr\", \"t\".\"model\", \"t\".\"active\""
        " FROM \"package\" AS \"p\" JOIN \"terminal\" AS \"t\" ON \"t\".\"id\" = jsonsql_bigint(\"p\".\"id\" + ?1)"
        " WHERE \"p\".\"id\" = ?2",
        "[[1,\"sport_100%\",true,9223372036854775807,\"\\\\x00ff41\",1.5,"
        "10,1,\"AA:BB:CC:00:00:01\",\"mag250\",true]]");
}

/* An output alias wins in order_by, as in SQL: "id" here is the count, not an
 * ambiguous column of the two tables. */
static void test_order_by_alias_first(void **state)
{
    struct fx *f = *state;
    sel(f, "{\"data\":[\"s.username\",{\"function\":\"count\",\"args\":\"t.id\",\"as\":\"id\"}],"
           "\"from\":[{\"table\":\"subscriber\",\"as\":\"s\"},{\"left_join\":\"terminal\",\"as\":\"t\","
           "\"on\":{\"eq\":[\"s.id\",\"t.subscriber_id\"]}}],\"group_by\":[\"s.id\"],\"order_by\":[\"id desc\",\"s.username\"]}",
        "SELECT \"s\".\"username\", COUNT(\"t\".\"id\") AS \"id\" FROM \"subscriber\" AS \"s\""
        " LEFT JOIN \"terminal\" AS \"t\" ON \"s\".\"id\" = \"t\".\"subscriber_id\""
        " GROUP BY \"s\".\"id\" ORDER BY \"id\" DESC NULLS FIRST, \"s\".\"username\" NULLS LAST",
        "[[\"alice\",2],[\"bob\",1],[\"carol\",0],[\"Иван\",0]]");
}

static void test_subqueries(void **state)
{
    struct fx *f = *state;
    sel(f, "{\"data\":[\"x.uname\",\"n\"],\"from\":{\"select\":{\"data\":[{\"function\":\"upper\",\"args\":\"username\","
           "\"as\":\"uname\"},{\"function\":\"length\",\"args\":\"username\",\"as\":\"n\"}],\"from\":\"subscriber\","
           "\"where\":{\"lt\":[\"id\",3]}},\"as\":\"x\"},\"order_by\":\"n desc\"}",
        "SELECT \"uname\", \"n\" FROM (SELECT UPPER(\"username\") AS \"uname\", LENGTH(\"username\") AS \"n\""
        " FROM \"subscriber\" WHERE \"id\" < ?1) AS \"x\" ORDER BY \"n\" DESC NULLS FIRST",
        "[[\"ALICE\",5],[\"BOB\",3]]");
    sel(f, "{\"data\":[\"s.username\",\"tc.cnt\"],\"from\":[{\"select\":{\"data\":[\"subscriber_id\","
           "{\"function\":\"count\",\"args\":[\"*\"],\"as\":\"cnt\"}],\"from\":\"terminal\",\"group_by\":\"subscriber_id\"},"
           "\"as\":\"tc\"},{\"join\":\"subscriber\",\"as\":\"s\",\"on\":{\"eq\":[\"tc.subscriber_id\",\"s.id\"]}}],"
           "\"order_by\":\"s.username\"}",
        "SELECT \"s\".\"username\", \"tc\".\"cnt\" FROM (SELECT \"subscriber_id\", COUNT(*) AS \"cnt\""
        " FROM \"terminal\" GROUP BY \"subscriber_id\") AS \"tc\" JOIN \"subscriber\" AS \"s\""
        " ON \"tc\".\"subscriber_id\" = \"s\".\"id\" ORDER BY \"s\".\"username\" NULLS LAST",
        "[[\"alice\",2],[\"bob\",1]]");
    /* "*" over a subquery keeps the inner column types (BOOL stays true/false). */
    sel(f, "{\"data\":\"*\",\"from\":{\"select\":{\"data\":[\"id\",\"disabled\"],\"from\":\"subscriber\","
           "\"where\":{\"eq\":[\"id\",2]}},\"as\":\"x\"}}",
        "SELECT \"id\", \"disabled\" FROM (SELECT \"id\", \"disabled\" FROM \"subscriber\" WHERE \"id\" = ?1) AS \"x\"",
        "[[2,true]]");
    /* A subquery joined as a join target; parameters numbered across both. */
    sel(f, "{\"data\":[\"s.username\",\"m.model\"],\"from\":[{\"table\":\"subscriber\",\"as\":\"s\"},"
           "{\"join\":{\"select\":{\"data\":[\"subscriber_id\",\"model\"],\"from\":\"terminal\","
           "\"where\":{\"eq\":[\"active\",false]}}},\"as\":\"m\",\"on\":{\"eq\":[\"m.subscriber_id\",\"s.id\"]}}],"
           "\"where\":{\"gt\":[\"s.balance\",1]}}",
        "SELECT \"s\".\"username\", \"m\".\"model\" FROM \"subscriber\" AS \"s\" JOIN (SELECT \"subscriber_id\","
        " \"model\" FROM \"terminal\" WHERE \"active\" = ?1) AS \"m\" ON \"m\".\"subscriber_id\" = \"s\".\"id\""
        " WHERE \"s\".\"balance\" > ?2",
        "[[\"alice\",\"mag250\"]]");
    /* A subquery without an alias. */
    sel(f, "{\"data\":[{\"function\":\"count\",\"args\":[\"*\"]}],\"from\":{\"select\":{\"data\":[\"model\"],"
           "\"from\":\"terminal\",\"distinct\":true}}}",
        "SELECT COUNT(*) FROM (SELECT DISTINCT \"model\" FROM \"terminal\")", "[[3]]");
    /* The statement's table is the innermost first table. */
    cJSON *p = parse("{\"data\":\"*\",\"from\":{\"select\":{\"data\":[\"id\"],\"from\":\"terminal\"},\"as\":\"x\"}}");
    struct jsonsql_stmt st;
    char err[256];
    assert_int_equal(jsonsql_compile(f->cat, "select", p, NULL, &st, err, sizeof err), 0);
    assert_string_equal(st.table, "terminal");
    jsonsql_stmt_free(&st);
    cJSON_Delete(p);
}

static void test_group_order_limit(void **state)
{
    struct fx *f = *state;
    sel(f, "{\"data\":[\"model\",{\"function\":\"count\",\"args\":[\"*\"],\"as\":\"n\"}],\"from\":\"terminal\","
           "\"group_by\":\"model\",\"order_by\":[\"n DESC\",\"model  asc\"]}",
        "SELECT \"model\", COUNT(*) AS \"n\" FROM \"terminal\" GROUP BY \"model\" ORDER BY \"n\" DESC NULLS FIRST, \"model\" ASC NULLS LAST",
        "[[\"mag250\",2],[\"tvip\",1],[\"Тест\",1]]");
    sel(f, "{\"data\":[\"model\",\"active\",{\"function\":\"count\",\"args\":\"id\"}],\"from\":\"terminal\","
           "\"group_by\":[\"model\",\"active\"],\"order_by\":[\"model Desc\",\"active\"]}",
        "SELECT \"model\", \"active\", COUNT(\"id\") FROM \"terminal\" GROUP BY \"model\", \"active\""
        " ORDER BY \"model\" DESC NULLS FIRST, \"active\" NULLS LAST",
        "[[\"Тест\",true,1],[\"tvip\",true,1],[\"mag250\",false,1],[\"mag250\",true,1]]");
    sel(f, "{\"data\":[\"id\"],\"from\":\"subscriber\",\"order_by\":\"id\",\"limit\":2,\"offset\":1}",
        "SELECT \"id\" FROM \"subscriber\" ORDER BY \"id\" NULLS LAST LIMIT ?1 OFFSET ?2", "[[2],[3]]");
    sel(f, "{\"data\":[\"id\"],\"from\":\"subscriber\",\"order_by\":\"id desc\",\"offset\":3}",
        "SELECT \"id\" FROM \"subscriber\" ORDER BY \"id\" DESC NULLS FIRST LIMIT -1 OFFSET ?1", "[[1]]");
    sel(f, "{\"data\":[\"id\"],\"from\":\"subscriber\",\"limit\":0}",
        "SELECT \"id\" FROM \"subscriber\" LIMIT ?1", "[]");
    sel(f, "{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"gt\":[\"id\",1]},\"order_by\":\"id\","
           "\"limit\":9223372036854775807}",
        "SELECT \"id\" FROM \"subscriber\" WHERE \"id\" > ?1 ORDER BY \"id\" NULLS LAST LIMIT ?2", "[[2],[3],[4]]");
}

/* NULLs sort as PostgreSQL (the portal) sorts them: last ascending, first
 * descending, whatever the spelling of the direction, for columns, qualified
 * columns and output aliases. SQLite alone does the opposite. */
static void test_order_by_nulls(void **state)
{
    struct fx *f = *state;
    /* terminal 13 has no subscriber, subscriber 3 no info, 4 no disabled */
    sel(f, "{\"data\":[\"id\"],\"from\":\"terminal\",\"order_by\":[\"subscriber_id\",\"id\"]}",
        "SELECT \"id\" FROM \"terminal\" ORDER BY \"subscriber_id\" NULLS LAST, \"id\" NULLS LAST",
        "[[10],[11],[12],[13]]");
    sel(f, "{\"data\":[\"id\"],\"from\":\"terminal\",\"order_by\":[\"subscriber_id DESC\",\"id\"]}",
        "SELECT \"id\" FROM \"terminal\" ORDER BY \"subscriber_id\" DESC NULLS FIRST, \"id\" NULLS LAST",
        "[[13],[12],[10],[11]]");
    sel(f, "{\"data\":[\"id\"],\"from\":\"subscriber\",\"order_by\":\"info asc\"}",
        "SELECT \"id\" FROM \"subscriber\" ORDER BY \"info\" ASC NULLS LAST", "[[2],[4],[1],[3]]");
    sel(f, "{\"data\":[\"id\",{\"function\":\"coalesce\",\"args\":[\"disabled\"],\"as\":\"d\"}],"
           "\"from\":\"subscriber\",\"order_by\":[\"d desc\",\"id desc\"]}",
        "SELECT \"id\", COALESCE(\"disabled\", NULL) AS \"d\" FROM \"subscriber\""
        " ORDER BY \"d\" DESC NULLS FIRST, \"id\" DESC NULLS FIRST",
        "[[4,null],[2,true],[3,false],[1,false]]");
    sel(f, "{\"data\":[{\"t\":\"id\"}],\"from\":[{\"table\":\"terminal\",\"as\":\"t\"}],"
           "\"order_by\":[{\"t\":\"subscriber_id\"},{\"t\":\"id\"}],\"limit\":1}",
        "SELECT \"id\" FROM \"terminal\" AS \"t\" ORDER BY \"subscriber_id\" NULLS LAST, \"id\" NULLS LAST"
        " LIMIT ?1",
        "[[10]]");
}

/* ------------------------------------------------------- insert/update/delete */

static void test_insert(void **state)
{
    struct fx *f = *state;
    q(f, "insert", "{\"into\":\"package\",\"columns\":[\"name\",\"paid\",\"big\"],\"values\":[[\"movie\",true,"
                   "9223372036854775807],[\"Кино \\\"'\",false,-9223372036854775808]],"
                   "\"returning\":[\"id\",\"name\",\"paid\",\"big\"]}",
      "INSERT INTO \"package\" (\"name\", \"paid\", \"big\") VALUES (?1, ?2, ?3), (?4, ?5, ?6)"
      " RETURNING \"id\", \"name\", \"paid\", \"big\"",
      "[[3,\"movie\",true,9223372036854775807],[4,\"Кино \\\"'\",false,-9223372036854775808]]");
    /* Exact int64 both ways: bound as integers, found again by value. */
    sel(f, "{\"data\":[\"id\",\"big\"],\"from\":\"package\",\"where\":{\"eq\":[\"big\",-9223372036854775808]},"
           "\"order_by\":\"id\"}",
        "SELECT \"id\", \"big\" FROM \"package\" WHERE \"big\" = ?1 ORDER BY \"id\" NULLS LAST",
        "[[2,-9223372036854775808],[4,-9223372036854775808]]");
    sel(f, "{\"data\":[\"id\"],\"from\":\"package\",\"where\":{\"in\":[\"big\",[9223372036854775807]]},"
           "\"order_by\":\"id\"}",
        "SELECT \"id\" FROM \"package\" WHERE \"big\" IN (?1) ORDER BY \"id\" NULLS LAST", "[[1],[3]]");
    cJSON *p = parse("{\"into\":\"package\",\"columns\":[\"big\",\"price\"],\"values\":[[9223372036854775807,"
                     "-9223372036854775808],[1.5,2.5]]}");
    struct jsonsql_stmt st;
    char err[256];
    assert_int_equal(jsonsql_compile(f->cat, "insert", p, NULL, &st, err, sizeof err), 0);
    assert_int_equal(st.kind, JSQL_INSERT);
    assert_string_equal(st.table, "package");
    assert_int_equal(st.ncols, 0);
    assert_int_equal(st.nparams, 4);
    assert_int_equal(st.params[0].type, SQLITE_INTEGER);
    assert_true(st.params[0].i == INT64_MAX);
    assert_int_equal(st.params[1].type, SQLITE_INTEGER);
    assert_true(st.params[1].i == INT64_MIN);
    assert_int_equal(st.params[2].type, SQLITE_FLOAT);
    assert_true(st.params[2].d == 1.5);
    jsonsql_stmt_free(&st);
    cJSON_Delete(p);
    /* Without columns: every catalog column, in order; "*" returns them all. */
    q(f, "insert", "{\"into\":\"terminal\",\"values\":[[20,3,\"id\",\"Модель\",false]],\"returning\":\"*\"}",
      "INSERT INTO \"terminal\" (\"id\", \"subscriber_id\", \"mac_addr\", \"model\", \"active\")"
      " VALUES (?1, ?2, ?3, ?4, ?5) RETURNING \"id\", \"subscriber_id\", \"mac_addr\", \"model\", \"active\"",
      "[[20,3,\"id\",\"Модель\",false]]");
    /* JSON values go in as JSON text and come back raw; quotes are just data. */
    q(f, "insert", "{\"into\":\"subscriber\",\"columns\":[\"id\",\"username\",\"info\"],\"values\":[[5,"
                   "\"d'Artagnan \\\"x\\\" -- ; DROP TABLE subscriber\",{\"a\":[1,2.5,\"я\",9223372036854775807]}]],"
                   "\"returning\":[\"username\",\"info\"]}",
      "INSERT INTO \"subscriber\" (\"id\", \"username\", \"info\") VALUES (?1, ?2, ?3) RETURNING \"username\", \"info\"",
      "[[\"d'Artagnan \\\"x\\\" -- ; DROP TABLE subscriber\",{\"a\":[1,2.5,\"я\",9223372036854775807]}]]");
    assert_int_equal(count_rows(f, "SELECT count(*) FROM subscriber"), 5);
}

static void test_update_delete(void **state)
{
    struct fx *f = *state;
    q(f, "update", "{\"table\":\"subscriber\",\"set\":{\"disabled\":true,\"balance\":1.25,\"username\":\"id\"},"
                   "\"where\":{\"eq\":[\"id\",3]},\"returning\":[\"id\",\"username\",\"disabled\",\"balance\"]}",
      "UPDATE \"subscriber\" SET \"disabled\" = ?1, \"balance\" = ?2, \"username\" = ?3 WHERE \"id\" = ?4"
      " RETURNING \"id\", \"username\", \"disabled\", \"balance\"",
      "[[3,\"id\",true,1.25]]");
    q(f, "update", "{\"table\":\"subscriber\",\"set\":{\"info\":[\"x\",{\"y\":null}]},\"where\":{\"and\":["
                   "{\"is\":[\"disabled\",true]},{\"gt\":[\"id\",2]}]},\"returning\":\"info\"}",
      "UPDATE \"subscriber\" SET \"info\" = ?1 WHERE (\"disabled\" IS TRUE AND \"id\" > ?2) RETURNING \"info\"",
      "[[[\"x\",{\"y\":null}]]]");
    /* No where: every row, as on the portal. */
    q(f, "update", "{\"table\":\"terminal\",\"set\":{\"active\":false}}",
      "UPDATE \"terminal\" SET \"active\" = ?1", "[]");
    assert_int_equal(count_rows(f, "SELECT count(*) FROM terminal WHERE active"), 0);
    q(f, "delete", "{\"from\":\"terminal\",\"where\":{\"eq\":[\"model\",\"mag250\"]},\"returning\":[\"id\",\"mac_addr\"]}",
      "DELETE FROM \"terminal\" WHERE \"model\" = ?1 RETURNING \"id\", \"mac_addr\"",
      "[[10,\"AA:BB:CC:00:00:01\"],[11,\"AA:BB:CC:00:00:02\"]]");
    q(f, "delete", "{\"from\":\"terminal\",\"returning\":\"id\"}", "DELETE FROM \"terminal\" RETURNING \"id\"",
      "[[12],[13]]");
    assert_int_equal(count_rows(f, "SELECT count(*) FROM terminal"), 0);
    q(f, "delete", "{\"from\":\"package\"}", "DELETE FROM \"package\"", "[]");
    assert_int_equal(count_rows(f, "SELECT count(*) FROM package"), 0);
}

/* ------------------------------------------------------------------ catalog */

static void test_catalog(void **state)
{
    struct fx *f = *state;
    static const struct { const char *t, *c; enum jsonsql_type ty; int idx; } c[] = {
        {"subscriber", "id", JSQL_INT, 0},      {"subscriber", "username", JSQL_TEXT, 1},
        {"subscriber", "disabled", JSQL_BOOL, 2}, {"subscriber", "balance", JSQL_REAL, 3},
        {"subscriber", "created_at", JSQL_TEXT, 4}, {"subscriber", "info", JSQL_JSON, 5},
        {"terminal", "subscriber_id", JSQL_INT, 1}, {"terminal", "mac_addr", JSQL_TEXT, 2},
        {"terminal", "active", JSQL_BOOL, 4},   {"package", "data", JSQL_ANY, 4},
        {"package", "price", JSQL_ANY, 5},      {"odd \"name", "v", JSQL_TEXT, 0},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        enum jsonsql_type ty = JSQL_ANY;
        assert_int_equal(jsonsql_catalog_column(f->cat, c[i].t, c[i].c, &ty), c[i].idx);
        assert_int_equal(ty, c[i].ty);
    }
    assert_int_equal(jsonsql_catalog_column(f->cat, "subscriber", "nope", NULL), -1);
    assert_int_equal(jsonsql_catalog_column(f->cat, "nope", "id", NULL), -1);
    assert_int_equal(jsonsql_catalog_column(f->cat, "Subscriber", "id", NULL), -1);   /* exact names */
    assert_int_equal(jsonsql_catalog_ncolumns(f->cat, "subscriber"), 6);
    assert_int_equal(jsonsql_catalog_ncolumns(f->cat, "_ia_meta"), -1);               /* skipped prefix */
    assert_int_equal(jsonsql_catalog_ncolumns(f->cat, "sqlite_master"), -1);
    assert_string_equal(jsonsql_catalog_column_name(f->cat, "terminal", 3), "model");
    assert_null(jsonsql_catalog_column_name(f->cat, "terminal", 5));
    assert_null(jsonsql_catalog_column_name(f->cat, "terminal", -1));
    assert_null(jsonsql_catalog_column_name(f->cat, "nope", 0));

    /* Built by hand: duplicates refused; many tables and wide tables still
     * resolve every name (the hash indexes grow). */
    jsonsql_catalog *cat = jsonsql_catalog_new();
    assert_int_equal(jsonsql_catalog_add(cat, "t", "a", JSQL_INT), 0);
    assert_int_equal(jsonsql_catalog_add(cat, "t", "a", JSQL_TEXT), -1);
    assert_int_equal(jsonsql_catalog_add(cat, NULL, "a", JSQL_TEXT), -1);
    char tn[32], cn[32];
    for (int t = 0; t < 300; t++)
        for (int k = 0; k < (t == 7 ? 200 : 20); k++) {
            snprintf(tn, sizeof tn, "table_%d", t);
            snprintf(cn, sizeof cn, "col_%d", k);
            assert_int_equal(jsonsql_catalog_add(cat, tn, cn, (enum jsonsql_type)(k % 6)), 0);
        }
    for (int t = 0; t < 300; t++) {
        snprintf(tn, sizeof tn, "table_%d", t);
        int n = t == 7 ? 200 : 20;
        assert_int_equal(jsonsql_catalog_ncolumns(cat, tn), n);
        for (int k = 0; k < n; k++) {
            snprintf(cn, sizeof cn, "col_%d", k);
            enum jsonsql_type ty;
            assert_int_equal(jsonsql_catalog_column(cat, tn, cn, &ty), k);
            assert_int_equal(ty, k % 6);
            assert_string_equal(jsonsql_catalog_column_name(cat, tn, k), cn);
        }
    }
    jsonsql_catalog_free(cat);
}

static void test_catalog_from_bad_db(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("jsonsql");
    assert_non_null(dir);
    char path[512];
    snprintf(path, sizeof path, "%s/not.db", dir);
    const char junk[] = "this is not an SQLite database, not even close.........................."
                        "........................................................................";
    assert_int_equal(tu_write_file(path, junk, sizeof junk), 0);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    jsonsql_catalog *cat = jsonsql_catalog_new();
    char err[256];
    assert_int_equal(jsonsql_catalog_from_db(cat, db, NULL, err, sizeof err), -1);
    assert_string_equal(err, "catalog: reading the schema: file is not a database");
    jsonsql_catalog_free(cat);
    sqlite3_close(db);
    tu_rmrf(dir);
    free(dir);
}

/* ------------------------------------------------------------------- errors */

static void test_errors_select(void **state)
{
    struct fx *f = *state;
    static const struct { const char *json, *err; } c[] = {
        {"{\"data\":[\"usrname\"],\"from\":\"subscriber\"}", "data[0]: unknown column \"usrname\" in subscriber"},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"and\":[{\"eq\":[\"id\",1]},{\"eq\":[\"usrname\",\"x\"]}]}}",
         "where.and[1].eq[0]: unknown column \"usrname\" in subscriber"},
        {"{\"data\":[\"id\",{\"function\":\"count\",\"args\":[\"*\"]},{\"function\":\"sleep\",\"args\":[5]}],"
         "\"from\":\"subscriber\"}", "data[2].function: unknown function \"sleep\""},
        {"{\"data\":[\"id\"],\"from\":\"x\"}", "from: unknown table \"x\""},
        /* aggregates where SQLite refuses them (found by fuzz_jsonsql's prepare check) */
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"eq\":[{\"function\":\"count\",\"args\":[\"*\"]},1]}}",
         "where.eq[0]: count is an aggregate: not allowed in where or on"},
        {"{\"data\":[{\"function\":\"count\",\"args\":[{\"function\":\"count\",\"args\":[\"*\"]}]}],\"from\":\"subscriber\"}",
         "data[0].args[0]: count is an aggregate: not allowed inside another aggregate"},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"limit\":-1}", "limit: expected a non-negative integer"},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"limit\":1.5}", "limit: expected a non-negative integer"},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"limit\":\"10\"}", "limit: expected a non-negative integer"},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"limit\":9223372036854775808}",
         "limit: expected a non-negative integer"},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"offset\":-3}", "offset: expected a non-negative integer"},
        {"{\"data\":[\"id\"]}", "select: \"from\" is required"},
        {"{\"from\":\"subscriber\"}", "select: \"data\" is required"},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"having\":{}}",
         "having: expected a condition: an object with exactly one operator"},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"distinct\":1}", "distinct: expected true or false"},
        {"{\"data\":[],\"from\":\"subscriber\"}", "data: expected at least one column"},
        {"{\"data\":[5],\"from\":\"subscriber\"}",
         "data[0]: expected a column name, {\"alias\":\"column\"} or a function"},
        {"{\"data\":[{\"q\":\"id\"}],\"from\":\"subscriber\"}", "data[0]: unknown table alias \"q\""},
        {"{\"data\":[\"q.*\"],\"from\":\"subscriber\"}", "data[0]: unknown table alias \"q\""},
        /* where */
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"sleep\":[1]}}", "where: unknown operator \"sleep\""},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"EQ\":[\"id\",1]}}", "where: unknown operator \"EQ\""},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"eq\":[\"id\",1],\"gt\":[\"id\",0]}}",
         "where: expected a condition: an object with exactly one operator"},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":[]}",
         "where: expected a condition: an object with exactly one operator"},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"eq\":[\"id\",1,2]}}",
         "where.eq: eq expects a list of two operands [a, b]"},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"like\":\"id\"}}",
         "where.like: like expects a list of two operands [a, b]"},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"is\":[\"id\",5]}}",
         "where.is[1]: expected true, false or null"},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"is_not\":[\"id\",\"id\"]}}",
         "where.is_not[1]: expected true, false or null"},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"in\":[\"id\",{\"x\":5}]}}",
         "where.in[1]: expected a list of values, {\"values\":[[v], ...]} or {\"select\":...}"},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"in\":[\"id\"]}}",
         "where.in: in expects [column, [values]], [column, v1, v2, ...], [column, {\"values\":[[v], ...]}] "
         "or [column, {\"select\":...}]"},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"in\":[\"nope\",[1]]}}",
         "where.in[0]: unknown column \"nope\" in subscriber"},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"in\":[\"id\",{\"select\":{\"data\":[\"id\","
         "\"model\"],\"from\":\"terminal\"}}]}}",
         "where.in[1].select: subquery must return exactly one column, got 2"},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"in\":[\"id\",{\"select\":{\"data\":[\"username\"],"
         "\"from\":\"terminal\"}}]}}",
         "where.in[1].select.data[0]: unknown column \"username\" in terminal"},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"not\":[{\"eq\":[\"id\",1]},{\"eq\":[\"id\",2]}]}}",
         "where.not: not expects a condition or a list of one condition"},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"not\":[{\"eq\":[\"idd\",1]}]}}",
         "where.not[0].eq[0]: unknown column \"idd\" in subscriber"},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"and\":[]}}",
         "where.and: and expects a non-empty list of conditions"},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"or\":{\"eq\":[\"id\",1]}}}",
         "where.or: or expects a non-empty list of conditions"},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"add\":[1,2]}}",
         "where.add: add is a value, not a condition"},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"eq\":[{\"eq\":[\"id\",1]},true]}}",
         "where.eq[0]: eq is a condition, not a value"},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"eq\":[{\"q\":\"id\"},1]}}",
         "where.eq[0]: unknown table alias \"q\""},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"eq\":[[1],1]}}",
         "where.eq[0]: expected a column, a function or arithmetic, got a list"},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"eq\":[{\"a\":1,\"b\":2},1]}}",
         "where.eq[0]: expected a column, a function or arithmetic, got an object with key \"a\""},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"eq\":[\"id\",{\"select\":{\"data\":[\"id\"],"
         "\"from\":\"terminal\"}}]}}",
         "where.eq[1]: a subquery is only valid in from and as the list of in"},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"gt\":[{\"add\":[\"id\"]},1]}}",
         "where.gt[0].add: add expects a list of two operands [a, b]"},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"gt\":[{\"add\":[\"nope\",1]},1]}}",
         "where.gt[0].add[0]: unknown column \"nope\" in subscriber"},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"eq\":[{\"function\":\"lower\",\"args\":\"username\","
         "\"as\":\"x\"},\"bob\"]}}",
         "where.eq[0].as: \"as\" is only valid on a data item"},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"eq\":[{\"function\":\"distinct\",\"args\":\"id\"},1]}}",
         "where.eq[0].function: distinct is only valid as a data item or as the only argument of an aggregate "
         "(count, sum, avg, min, max)"},
        /* functions */
        {"{\"data\":[{\"function\":\"lower\",\"args\":[\"username\",\"x\"]}],\"from\":\"subscriber\"}",
         "data[0].args: lower takes 1 argument, got 2"},
        {"{\"data\":[{\"function\":\"regexp_replace\",\"args\":[\"username\",\"x\"]}],\"from\":\"subscriber\"}",
         "data[0].args: regexp_replace takes 3 to 4 arguments, got 2"},
        {"{\"data\":[{\"function\":\"coalesce\",\"args\":[]}],\"from\":\"subscriber\"}",
         "data[0].args: coalesce takes at least 1 argument, got 0"},
        {"{\"data\":[{\"function\":\"max\",\"args\":[\"*\"]}],\"from\":\"subscriber\"}",
         "data[0].args: \"*\" is only valid as the argument of count"},
        {"{\"data\":[{\"function\":\"count\",\"args\":[\"*\",\"id\"]}],\"from\":\"subscriber\"}",
         "data[0].args[0]: \"*\" is only valid as the only argument of count"},
        {"{\"data\":[{\"function\":\"count\"}],\"from\":\"subscriber\"}", "data[0]: count needs \"args\""},
        {"{\"data\":[{\"function\":5,\"args\":\"id\"}],\"from\":\"subscriber\"}",
         "data[0].function: expected a function name"},
        {"{\"data\":[{\"function\":\"count\",\"args\":\"id\",\"sql\":\"x\"}],\"from\":\"subscriber\"}",
         "data[0]: unexpected key \"sql\" in a function"},
        {"{\"data\":[{\"function\":\"lower\",\"args\":{\"function\":\"distinct\",\"args\":\"username\"}}],"
         "\"from\":\"subscriber\"}",
         "data[0].args: distinct is only valid as a data item or as the only argument of an aggregate "
         "(count, sum, avg, min, max)"},
        {"{\"data\":[{\"function\":\"count\",\"args\":{\"function\":\"distinct\",\"args\":[\"id\",\"username\"]}}],"
         "\"from\":\"subscriber\"}",
         "data[0].args.args: distinct inside count takes exactly 1 argument"},
        {"{\"data\":[{\"function\":\"count\",\"args\":{\"function\":\"distinct\",\"args\":\"id\",\"as\":\"x\"}}],"
         "\"from\":\"subscriber\"}",
         "data[0].args: unexpected key \"as\" in distinct"},
        {"{\"data\":[{\"function\":\"count\",\"args\":[{\"function\":\"distinct\",\"args\":\"id\"},\"id\"]}],"
         "\"from\":\"subscriber\"}",
         "data[0].args[0]: distinct is only valid as a data item or as the only argument of an aggregate "
         "(count, sum, avg, min, max)"},
        {"{\"data\":[{\"function\":\"abs\",\"args\":5}],\"from\":\"subscriber\"}",
         "data[0].args: expected a column, a list of arguments or a function"},
        {"{\"data\":[{\"function\":\"lower\",\"args\":\"nope\"}],\"from\":\"subscriber\"}",
         "data[0].args: unknown column \"nope\" in subscriber"},
        {"{\"data\":[{\"function\":\"regexp_replace\",\"args\":[\"nope\",\"a\",\"b\"]}],\"from\":\"subscriber\"}",
         "data[0].args[0]: unknown column \"nope\" in subscriber"},
        {"{\"data\":[{\"function\":\"distinct\",\"args\":[\"id\",\"username\"],\"as\":\"x\"}],\"from\":\"subscriber\"}",
         "data[0].as: \"as\" needs distinct of exactly one argument"},
        {"{\"data\":[{\"function\":\"distinct\",\"args\":[]}],\"from\":\"subscriber\"}",
         "data[0].args: distinct expects at least 1 argument"},
        {"{\"data\":[{\"function\":\"distinct\"}],\"from\":\"subscriber\"}", "data[0]: distinct needs \"args\""},
        /* from */
        {"{\"data\":[\"id\"],\"from\":5}", "from: expected a table name, a list of tables and joins, or a subquery"},
        {"{\"data\":[\"id\"],\"from\":[]}", "from: expected at least one table"},
        {"{\"data\":[\"id\"],\"from\":[{\"join\":\"terminal\"}]}",
         "from[0]: the first item of from is a table or a subquery, not a join"},
        {"{\"data\":[\"id\"],\"from\":[\"subscriber\",{\"join\":\"terminal\"}]}", "from[1]: a join needs \"on\""},
        {"{\"data\":[\"id\"],\"from\":[\"subscriber\",{\"on\":{\"eq\":[\"id\",1]}}]}",
         "from[1]: expected \"join\" or \"left_join\""},
        {"{\"data\":[\"id\"],\"from\":[\"subscriber\",\"terminal\"]}",
         "from[1]: expected {\"join\":...} or {\"left_join\":...}"},
        {"{\"data\":[\"id\"],\"from\":{\"table\":\"subscriber\",\"select\":{}}}",
         "from: expected exactly one of \"table\" or \"select\""},
        {"{\"data\":[\"id\"],\"from\":{\"table\":\"subscriber\",\"where\":{}}}", "from: unexpected key \"where\""},
        {"{\"data\":[\"id\"],\"from\":{\"table\":5}}", "from.table: expected a table name"},
        {"{\"data\":[\"id\"],\"from\":[\"subscriber\",{\"join\":\"nope\",\"on\":{\"eq\":[\"id\",1]}}]}",
         "from[1].join: unknown table \"nope\""},
        {"{\"data\":[\"id\"],\"from\":[\"subscriber\",{\"join\":{\"table\":\"terminal\"},\"on\":{\"eq\":[\"id\",1]}}]}",
         "from[1].join: expected a table name or {\"select\":...}"},
        {"{\"data\":[\"s.id\"],\"from\":[{\"table\":\"subscriber\",\"as\":\"s\"},{\"join\":\"terminal\",\"as\":\"s\","
         "\"on\":{\"eq\":[\"s.id\",1]}}]}",
         "from[1].join: duplicate alias \"s\": give each table its own \"as\""},
        {"{\"data\":[\"id\"],\"from\":[\"subscriber\",{\"join\":\"subscriber\",\"on\":{\"eq\":[\"id\",1]}}]}",
         "from[1].join: duplicate alias \"subscriber\": give each table its own \"as\""},
        {"{\"data\":[\"id\"],\"from\":[{\"table\":\"subscriber\",\"as\":\"s\"},{\"join\":\"terminal\",\"as\":\"t\","
         "\"on\":{\"eq\":[\"t.nope\",\"s.id\"]}}]}",
         "from[1].on.eq[0]: unknown column \"t.nope\" in subscriber, terminal"},
        {"{\"data\":[\"id\"],\"from\":[{\"table\":\"subscriber\",\"as\":\"s\"},{\"join\":\"terminal\",\"as\":\"t\","
         "\"on\":{\"eq\":[\"s.id\",\"t.subscriber_id\"]}}]}",
         "data[0]: ambiguous column \"id\" in subscriber, terminal"},
        {"{\"data\":[{\"s\":\"nope\"}],\"from\":[{\"table\":\"subscriber\",\"as\":\"s\"},{\"join\":\"terminal\",\"as\":\"t\","
         "\"on\":{\"eq\":[\"s.id\",\"t.subscriber_id\"]}}]}",
         "data[0]: unknown column \"nope\" in subscriber"},
        {"{\"data\":[\"username\"],\"from\":[{\"table\":\"subscriber\",\"as\":\"s\"},{\"join\":\"terminal\",\"as\":\"t\","
         "\"on\":{\"eq\":[\"s.id\",\"t.subscriber_id\"]}}],\"where\":{\"eq\":[\"model\",\"id\"]}}",
         "where.eq[1]: ambiguous column \"id\" in subscriber, terminal"},
        {"{\"data\":[\"id\"],\"from\":{\"table\":\"subscriber\",\"as\":\"s t\"}}",
         "from.as: invalid alias \"s t\" (expected ^[A-Za-z_][A-Za-z0-9_]{0,63}$)"},
        {"{\"data\":[\"nope\"],\"from\":{\"select\":{\"data\":[\"id\"],\"from\":\"subscriber\"},\"as\":\"x\"}}",
         "data[0]: unknown column \"nope\" in subquery x"},
        {"{\"data\":[\"id\"],\"from\":{\"select\":{\"data\":[\"nope\"],\"from\":\"subscriber\"},\"as\":\"x\"}}",
         "from.select.data[0]: unknown column \"nope\" in subscriber"},
        {"{\"data\":[\"id\"],\"from\":{\"select\":[],\"as\":\"x\"}}", "from.select: expected an object"},
        {"{\"data\":\"*\",\"from\":{\"select\":{\"data\":[{\"function\":\"count\",\"args\":[\"*\"]}],"
         "\"from\":\"subscriber\"},\"as\":\"x\"}}",
         "data: \"*\" cannot name column 1 of subquery x: give it an \"as\""},
        {"{\"data\":[\"x.id\"],\"from\":{\"select\":{\"data\":[\"s.id\",\"t.id\"],\"from\":[{\"table\":\"subscriber\","
         "\"as\":\"s\"},{\"join\":\"terminal\",\"as\":\"t\",\"on\":{\"eq\":[\"s.id\",\"t.subscriber_id\"]}}]},\"as\":\"x\"}}",
         "data[0]: ambiguous column \"x.id\" in subquery x"},
        {"{\"data\":\"*\",\"from\":{\"select\":{\"data\":[\"s.id\",\"t.id\"],\"from\":[{\"table\":\"subscriber\","
         "\"as\":\"s\"},{\"join\":\"terminal\",\"as\":\"t\",\"on\":{\"eq\":[\"s.id\",\"t.subscriber_id\"]}}]},\"as\":\"x\"}}",
         "data: \"*\" over subquery x: column \"id\" appears twice"},
        /* group_by / order_by */
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"order_by\":\"nope desc\"}",
         "order_by: unknown column \"nope\" in subscriber"},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"order_by\":[\"id\",5]}",
         "order_by[1]: expected a column name or {\"alias\":\"column\"}"},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"order_by\":[]}", "order_by: expected at least one column"},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"order_by\":\"id sideways\"}",
         "order_by: unknown column \"id sideways\" in subscriber"},
        {"{\"data\":[{\"function\":\"count\",\"args\":[\"*\"],\"as\":\"n\"}],\"from\":\"subscriber\",\"group_by\":\"n\"}",
         "group_by: unknown column \"n\" in subscriber"},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"group_by\":\"id desc\"}",
         "group_by: unknown column \"id desc\" in subscriber"},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"group_by\":{\"q\":\"id\"}}",
         "group_by: unknown table alias \"q\""},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) ese(f, c[i].json, c[i].err);

    /* Top level. */
    cJSON *p = parse("{\"data\":[\"id\"],\"from\":\"subscriber\"}");
    el(f, "drop", p, NULL, "method: unknown method \"drop\" (expected select, insert, update or delete)", "drop");
    el(f, NULL, p, NULL, "method: unknown method null (expected select, insert, update or delete)", "null method");
    cJSON_Delete(p);
    p = parse("[1]");
    el(f, "select", p, NULL, "select: params must be an object", "[1]");
    cJSON_Delete(p);
    el(f, "delete", NULL, NULL, "delete: params must be an object", "NULL params");
    /* Duplicate keys can only come from a parser that keeps them. */
    p = cJSON_Parse("{\"data\":[\"id\"],\"from\":\"subscriber\",\"from\":\"terminal\"}");
    el(f, "select", p, NULL, "select: duplicate key \"from\"", "dup from");
    cJSON_Delete(p);
    p = cJSON_Parse("{\"table\":\"subscriber\",\"set\":{\"username\":\"a\",\"username\":\"b\"}}");
    el(f, "update", p, NULL, "set: duplicate column \"username\"", "dup set");
    cJSON_Delete(p);
    p = cJSON_Parse("{\"data\":[{\"function\":\"count\",\"args\":\"id\",\"args\":\"id\"}],\"from\":\"subscriber\"}");
    el(f, "select", p, NULL, "data[0]: duplicate key \"args\"", "dup args");
    cJSON_Delete(p);
    /* A raw node (only a program can build one) is never pasted into SQL. */
    p = cJSON_Parse("{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"eq\":[\"id\",1]}}");
    cJSON_ReplaceItemInArray(cJSON_GetObjectItem(cJSON_GetObjectItem(p, "where"), "eq"), 1,
                             cJSON_CreateRaw("1 OR 1=1"));
    el(f, "select", p, NULL, "where.eq[1]: unsupported value", "raw");
    cJSON_Delete(p);
    p = parse("{\"data\":[\"id\"],\"from\":[5]}");
    el(f, "select", p, NULL, "from[0]: expected a table name, {\"table\":...} or {\"select\":...}", "from [5]");
    el(NULL, "select", p, NULL, "select: no catalog", "no catalog");
    cJSON_Delete(p);
    /* At most 64 sources in one from. */
    struct buf b = {0};
    buf_puts(&b, "{\"data\":[\"s.id\"],\"from\":[{\"table\":\"subscriber\",\"as\":\"s\"}");
    for (int i = 0; i < 64; i++)
        buf_printf(&b, ",{\"join\":\"terminal\",\"as\":\"t%d\",\"on\":{\"eq\":[\"s.id\",\"t%d.subscriber_id\"]}}", i, i);
    buf_puts(&b, "]}");
    p = parse(b.p);
    el(f, "select", p, NULL, "from[64].join: more than 64 tables in from", "65 sources");
    cJSON_Delete(p);
    buf_free(&b);
    /* A NULL err buffer is allowed. */
    struct jsonsql_stmt st;
    p = parse("{\"data\":[\"nope\"],\"from\":\"subscriber\"}");
    assert_int_equal(jsonsql_compile(f->cat, "select", p, NULL, &st, NULL, 0), -1);
    cJSON_Delete(p);
}

static void test_errors_write(void **state)
{
    struct fx *f = *state;
    static const struct { const char *method, *json, *err; } c[] = {
        {"insert", "{\"columns\":[\"name\"],\"values\":[[\"a\"]]}", "insert: \"into\" is required"},
        {"insert", "{\"into\":\"package\"}", "insert: \"values\" is required"},
        {"insert", "{\"into\":\"nope\",\"values\":[[1]]}", "into: unknown table \"nope\""},
        {"insert", "{\"into\":[\"package\"],\"values\":[[1]]}", "into: expected a table name"},
        {"insert", "{\"into\":\"package\",\"columns\":\"name\",\"values\":[[1]]}",
         "columns: expected a list of column names"},
        {"insert", "{\"into\":\"package\",\"columns\":[\"name\",\"nope\"],\"values\":[[1,2]]}",
         "columns[1]: unknown column \"nope\" in package"},
        {"insert", "{\"into\":\"package\",\"columns\":[\"name\",\"name\"],\"values\":[[1,2]]}",
         "columns[1]: duplicate column \"name\""},
        {"insert", "{\"into\":\"package\",\"columns\":[\"name\",\"paid\"],\"values\":[[\"a\",true],[\"b\"]]}",
         "values[1]: expected a row of 2 values"},
        {"insert", "{\"into\":\"package\",\"columns\":[\"name\"],\"values\":[]}", "values: expected a list of rows"},
        {"insert", "{\"into\":\"package\",\"columns\":[\"name\"],\"values\":[\"a\"]}",
         "values[0]: expected a row of 1 values"},
        {"insert", "{\"into\":\"package\",\"columns\":[\"name\"],\"values\":[[\"a\"]],\"returning\":\"nope\"}",
         "returning: unknown column \"nope\" in package"},
        {"insert", "{\"into\":\"package\",\"columns\":[\"name\"],\"values\":[[\"a\"]],\"returning\":[\"id\",5]}",
         "returning[1]: expected a column name"},
        {"insert", "{\"into\":\"package\",\"columns\":[\"name\"],\"values\":[[\"a\"]],\"returning\":[]}",
         "returning: expected at least one column"},
        {"insert", "{\"into\":\"package\",\"values\":[[1]],\"on_conflict\":\"ignore\"}",
         "insert: unknown key \"on_conflict\""},
        {"update", "{\"set\":{\"name\":1}}", "update: \"table\" is required"},
        {"update", "{\"table\":\"package\"}", "update: \"set\" is required"},
        {"update", "{\"table\":\"package\",\"set\":{}}", "set: expected an object {column: value}"},
        {"update", "{\"table\":\"package\",\"set\":[1]}", "set: expected an object {column: value}"},
        {"update", "{\"table\":\"package\",\"set\":{\"nope\":1}}", "set: unknown column \"nope\" in package"},
        {"update", "{\"table\":\"package\",\"set\":{\"name\":1},\"where\":{\"eq\":[\"nope\",1]}}",
         "where.eq[0]: unknown column \"nope\" in package"},
        {"update", "{\"table\":\"package\",\"set\":{\"name\":1},\"where\":{\"eq\":[\"package.nope\",1]}}",
         "where.eq[0]: unknown column \"package.nope\" in package"},
        {"update", "{\"table\":\"package\",\"set\":{\"name\":1},\"returning\":\"nope\"}",
         "returning: unknown column \"nope\" in package"},
        {"delete", "{\"where\":{\"eq\":[\"id\",1]}}", "delete: \"from\" is required"},
        {"delete", "{\"from\":{\"table\":\"package\"}}", "from: expected a table name"},
        {"delete", "{\"table\":\"package\"}", "delete: unknown key \"table\""},
        {"delete", "{\"from\":\"package\",\"where\":{\"eq\":[\"idd\",1]}}",
         "where.eq[0]: unknown column \"idd\" in package"},
        {"delete", "{\"from\":\"package\",\"returning\":[\"id\",\"nope\"]}",
         "returning[1]: unknown column \"nope\" in package"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) e(f, c[i].method, c[i].json, c[i].err);
}

/* ---------------------------------------------------------------- injection */

static void test_injection_refused(void **state)
{
    struct fx *f = *state;
    static const struct { const char *json, *err; } c[] = {
        {"{\"data\":[\"id; DROP TABLE subscriber\"],\"from\":\"subscriber\"}",
         "data[0]: unknown column \"id; DROP TABLE subscriber\" in subscriber"},
        {"{\"data\":[\"id\\\"--\"],\"from\":\"subscriber\"}", "data[0]: unknown column \"id?--\" in subscriber"},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"eq\":[\"name) OR 1=1 --\",1]}}",
         "where.eq[0]: unknown column \"name) OR 1=1 --\" in subscriber"},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"eq\":[{\"subscriber\\\" OR 1=1 --\":\"id\"},1]}}",
         "where.eq[0]: unknown table alias \"subscriber? OR 1=1 --\""},
        {"{\"data\":[\"id\"],\"from\":\"subscriber; DROP TABLE terminal\"}",
         "from: unknown table \"subscriber; DROP TABLE terminal\""},
        {"{\"data\":[\"id\"],\"from\":\"main.subscriber\"}", "from: unknown table \"main.subscriber\""},
        {"{\"data\":[\"id\"],\"from\":\"sub scriber\"}", "from: unknown table \"sub scriber\""},
        {"{\"data\":[\"id\"],\"from\":\"\\\"subscriber\\\"\"}", "from: unknown table \"?subscriber?\""},
        {"{\"data\":[{\"function\":\"count\",\"args\":[\"*\"],\"as\":\"n\\\" FROM terminal --\"}],\"from\":\"subscriber\"}",
         "data[0].as: invalid alias \"n? FROM terminal --\" (expected ^[A-Za-z_][A-Za-z0-9_]{0,63}$)"},
        {"{\"data\":[{\"function\":\"count\",\"args\":[\"*\"],\"as\":\"n/*x*/\"}],\"from\":\"subscriber\"}",
         "data[0].as: invalid alias \"n/*x*/\" (expected ^[A-Za-z_][A-Za-z0-9_]{0,63}$)"},
        {"{\"data\":[{\"function\":\"count\",\"args\":[\"*\"],\"as\":\"n; DROP TABLE x\"}],\"from\":\"subscriber\"}",
         "data[0].as: invalid alias \"n; DROP TABLE x\" (expected ^[A-Za-z_][A-Za-z0-9_]{0,63}$)"},
        {"{\"data\":[{\"function\":\"count\",\"args\":[\"*\"],\"as\":\"1n\"}],\"from\":\"subscriber\"}",
         "data[0].as: invalid alias \"1n\" (expected ^[A-Za-z_][A-Za-z0-9_]{0,63}$)"},
        {"{\"data\":[{\"function\":\"count\",\"args\":[\"*\"],\"as\":\"\"}],\"from\":\"subscriber\"}",
         "data[0].as: invalid alias \"\" (expected ^[A-Za-z_][A-Za-z0-9_]{0,63}$)"},
        {"{\"data\":[{\"function\":\"count\",\"args\":[\"*\"],\"as\":5}],\"from\":\"subscriber\"}",
         "data[0].as: expected an alias string"},
        {"{\"data\":[{\"function\":\"count()\",\"args\":[\"*\"]}],\"from\":\"subscriber\"}",
         "data[0].function: unknown function \"count()\""},
        {"{\"data\":[{\"function\":\"count(*); DROP TABLE subscriber; --\",\"args\":[\"*\"]}],\"from\":\"subscriber\"}",
         "data[0].function: unknown function \"count(*); DROP TABLE subscriber; --\""},
        {"{\"data\":[{\"function\":\"load_extension\",\"args\":[\"id\",\"x\"]}],\"from\":\"subscriber\"}",
         "data[0].function: unknown function \"load_extension\""},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"order_by\":\"id; DROP TABLE subscriber\"}",
         "order_by: unknown column \"id; DROP TABLE subscriber\" in subscriber"},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"order_by\":\"id desc, (SELECT 1)\"}",
         "order_by: unknown column \"id desc, (SELECT 1)\" in subscriber"},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"order_by\":\"id desc --\"}",
         "order_by: unknown column \"id desc --\" in subscriber"},
        {"{\"data\":[\"id\"],\"from\":\"subscriber\",\"group_by\":\"id) UNION SELECT sql FROM sqlite_master --\"}",
         "group_by: unknown column \"id) UNION SELECT sql FROM sqlite_master --\" in subscriber"},
        {"{\"data\":[\"*\"],\"from\":\"sqlite_master\"}", "from: unknown table \"sqlite_master\""},
        {"{\"data\":[\"*\"],\"from\":\"_ia_meta\"}", "from: unknown table \"_ia_meta\""},
        /* Control characters and long text are cut and masked in messages. */
        {"{\"data\":[\"a\\nb\\u0001c\"],\"from\":\"subscriber\"}", "data[0]: unknown column \"a?b?c\" in subscriber"},
        {"{\"data\":[\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxЖЖЖЖ\"],\"from\":\"subscriber\"}",
         "data[0]: unknown column \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...\" in subscriber"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        cJSON *p = cJSON_Parse(c[i].json);
        if (!p) fail_msg("bad test JSON %s", c[i].json);
        el(f, "select", p, NULL, c[i].err, c[i].json);
        cJSON_Delete(p);
    }
    e(f, "update", "{\"table\":\"subscriber\",\"set\":{\"username; DROP TABLE x\":1}}",
      "set: unknown column \"username; DROP TABLE x\" in subscriber");
    e(f, "insert", "{\"into\":\"package\\\" (id) VALUES (1); --\",\"values\":[[1]]}",
      "into: unknown table \"package? (id) VALUES (1); --\"");
    /* Values with quotes and comments are only ever data. */
    q(f, "update", "{\"table\":\"subscriber\",\"set\":{\"username\":\"'); DROP TABLE subscriber; --\"},"
                   "\"where\":{\"eq\":[\"username\",\"x' OR '1'='1\"]}}",
      "UPDATE \"subscriber\" SET \"username\" = ?1 WHERE \"username\" = ?2", "[]");
    sel(f, "{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"or\":[{\"eq\":[\"username\",\"' OR 1=1 --\"]},"
           "{\"like\":[\"username\",\"%\\\" OR \\\"1\\\"=\\\"1\"]}]}}",
        "SELECT \"id\" FROM \"subscriber\" WHERE (\"username\" = ?1 OR \"username\" LIKE ?2 ESCAPE '\\')", "[]");
    assert_int_equal(count_rows(f, "SELECT count(*) FROM sqlite_master WHERE type = 'table'"), 5);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM subscriber"), 4);
    /* The longest alias allowed: 64 characters. */
    sel(f, "{\"data\":[{\"function\":\"count\",\"args\":[\"*\"],"
           "\"as\":\"a123456789012345678901234567890123456789012345678901234567890123\"}],\"from\":\"subscriber\"}",
        "SELECT COUNT(*) AS \"a123456789012345678901234567890123456789012345678901234567890123\" FROM \"subscriber\"",
        "[[4]]");
    ese(f, "{\"data\":[{\"function\":\"count\",\"args\":[\"*\"],"
           "\"as\":\"a1234567890123456789012345678901234567890123456789012345678901234\"}],\"from\":\"subscriber\"}",
        "data[0].as: invalid alias \"a123456789012345678901234567890123456789012345678901234567890123...\" "
        "(expected ^[A-Za-z_][A-Za-z0-9_]{0,63}$)");
}

/* ------------------------------------------------------------------- limits */

static void test_limits(void **state)
{
    struct fx *f = *state;
    cJSON *p = parse("{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"not\":{\"not\":{\"not\":{\"eq\":[\"id\",1]}}}}}");
    struct jsonsql_limits lim = {.max_depth = 4};
    el(f, "select", p, &lim, "where.not.not.not: nested deeper than 4 levels (limits.max_depth)", "depth 4");
    lim.max_depth = 5;
    el(f, "select", p, &lim, "where.not.not.not.eq: nested deeper than 5 levels (limits.max_depth)", "depth 5");
    lim.max_depth = 6;
    struct jsonsql_stmt st;
    char err[512];
    assert_int_equal(jsonsql_compile(f->cat, "select", p, &lim, &st, err, sizeof err), 0);
    jsonsql_stmt_free(&st);
    cJSON_Delete(p);

    /* The default depth is 32: 29 nested nots fit, 30 do not. */
    for (int n = 29; n <= 30; n++) {
        struct buf b = {0};
        buf_puts(&b, "{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":");
        for (int i = 0; i < n; i++) buf_puts(&b, "{\"not\":");
        buf_puts(&b, "{\"eq\":[\"id\",1]}");
        for (int i = 0; i < n; i++) buf_putc(&b, '}');
        buf_putc(&b, '}');
        p = parse(b.p);
        int rc = jsonsql_compile(f->cat, "select", p, NULL, &st, err, sizeof err);
        if (n == 29) {
            if (rc) fail_msg("29 nots: %s", err);
            char *rows = run(f, &st);
            assert_string_equal(rows, "[[2],[3],[4]]");
            free(rows);
            jsonsql_stmt_free(&st);
        } else {
            assert_int_equal(rc, -1);
            assert_non_null(strstr(err, ": nested deeper than 32 levels (limits.max_depth)"));
            assert_true(strncmp(err, "where.not.not.not.", 18) == 0);
        }
        cJSON_Delete(p);
        buf_free(&b);
    }

    /* Bound values. */
    p = parse("{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"in\":[\"id\",[1,2,3,4,5]]}}");
    lim = (struct jsonsql_limits){.max_params = 3};
    el(f, "select", p, &lim, "where.in[1][3]: more than 3 bound values (limits.max_params)", "params 3");
    lim.max_params = 5;
    assert_int_equal(jsonsql_compile(f->cat, "select", p, &lim, &st, err, sizeof err), 0);
    assert_int_equal(st.nparams, 5);
    jsonsql_stmt_free(&st);
    /* Generated SQL. */
    lim = (struct jsonsql_limits){.max_sql = 60};
    el(f, "select", p, &lim, "select: generated SQL exceeds 60 bytes (limits.max_sql)", "sql 60");
    lim.max_sql = 80;
    assert_int_equal(jsonsql_compile(f->cat, "select", p, &lim, &st, err, sizeof err), 0);
    assert_true(strlen(st.sql) <= 80);
    jsonsql_stmt_free(&st);
    cJSON_Delete(p);
    p = parse("{\"into\":\"package\",\"columns\":[\"name\"],\"values\":[[\"a\"],[\"b\"],[\"c\"],[\"d\"]]}");
    lim.max_sql = 50;
    el(f, "insert", p, &lim, "values[2]: generated SQL exceeds 50 bytes (limits.max_sql)", "insert sql 50");
    cJSON_Delete(p);

    /* Defaults: 10000 bound values, 64 KiB of SQL. */
    struct buf b = {0};
    buf_puts(&b, "{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"in\":[\"id\",[");
    for (int i = 0; i < 10001; i++) buf_printf(&b, "%s%d", i ? "," : "", i);
    buf_puts(&b, "]]}}");
    p = parse(b.p);
    el(f, "select", p, NULL, "where.in[1][10000]: more than 10000 bound values (limits.max_params)", "params default");
    cJSON_Delete(p);
    buf_reset(&b);
    buf_puts(&b, "{\"data\":[\"id\"],\"from\":\"subscriber\",\"where\":{\"in\":[\"id\",[");
    for (int i = 0; i < 10000; i++) buf_printf(&b, "%s%d", i ? "," : "", i);
    buf_puts(&b, "]]}}");
    p = parse(b.p);
    el(f, "select", p, NULL, "select: generated SQL exceeds 65536 bytes (limits.max_sql)", "sql default");
    cJSON_Delete(p);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_point_lookup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_star_and_row_shapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_row_storage_classes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_comparisons, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logic_in_arith, setup, teardown),
        cmocka_unit_test_setup_teardown(test_functions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sql_functions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_regexp_postgresql, setup, teardown),
        cmocka_unit_test_setup_teardown(test_distinct, setup, teardown),
        cmocka_unit_test_setup_teardown(test_joins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_order_by_alias_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subqueries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_order_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_order_by_nulls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_insert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_update_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catalog, setup, teardown),
        cmocka_unit_test(test_catalog_from_bad_db),
        cmocka_unit_test_setup_teardown(test_errors_select, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_injection_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
