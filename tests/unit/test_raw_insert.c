/* test_raw_insert.c — bench/raw_insert.c, the benchmarks' raw INSERT loop: it
 * inserts every row its source gives into a fresh db made by the DDL (an old
 * db at the path is replaced), the generated tv_program source gives exactly
 * the rows asked for and leaves no db behind, and each failure (bad DDL, a
 * failing source, a duplicate key, a column count out of range) is an error
 * naming the db, never a count. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/raw_insert.h"
#include "journal/rows.h"
#include "tests/testutil.h"

#define DDL "CREATE TABLE tv_program (id INTEGER PRIMARY KEY, title TEXT)"

struct src {
    int64_t ids[8];
    int n, at;
    int fail_at;               /* row index at which to fail, or -1 */
};

static int next_row(void *ctx, struct journal_value *row, char *err, size_t errlen)
{
    struct src *s = ctx;
    if (s->at == s->fail_at) {
        snprintf(err, errlen, "source broke at %d", s->at);
        return -1;
    }
    if (s->at == s->n) return 0;
    row[0] = (struct journal_value){.type = JOURNAL_INT, .i = s->ids[s->at++]};
    row[1] = (struct journal_value){.type = JOURNAL_TEXT, .s = "news", .n = 4};
    return 1;
}

static void test_run_inserts_every_row(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("raw_insert");
    char path[4200], err[512] = "";
    snprintf(path, sizeof path, "%s/x.db", dir);
    struct src s = {.ids = {1, 2, 3}, .n = 3, .fail_at = -1};
    uint64_t n = 0;
    double dt = -1;
    assert_int_equal(raw_insert_run(path, DDL, 2, next_row, &s, &n, &dt, err, sizeof err), 0);
    assert_int_equal(n, 3);
    assert_true(dt >= 0);
    assert_int_equal(raw_insert_count(path), 3);
    /* A second run starts from a fresh db, not on top of the old rows. */
    s = (struct src){.ids = {7, 8}, .n = 2, .fail_at = -1};
    assert_int_equal(raw_insert_run(path, DDL, 2, next_row, &s, &n, &dt, err, sizeof err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(raw_insert_count(path), 2);
    tu_rmrf(dir);
    free(dir);
}

static void test_run_failures(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("raw_insert");
    char path[4200], err[512];
    snprintf(path, sizeof path, "%s/x.db", dir);
    uint64_t n;
    double dt;

    struct src s = {.ids = {1, 2}, .n = 2, .fail_at = -1};
    err[0] = '\0';
    assert_int_equal(raw_insert_run(path, "CREATE TABLE nonsense (", 2, next_row, &s, &n, &dt, err, sizeof err), -1);
    assert_non_null(strstr(err, path));

    s = (struct src){.ids = {1, 2, 3}, .n = 3, .fail_at = 2};
    err[0] = '\0';
    assert_int_equal(raw_insert_run(path, DDL, 2, next_row, &s, &n, &dt, err, sizeof err), -1);
    assert_string_equal(err, "source broke at 2");
    assert_int_equal(n, 2);

    s = (struct src){.ids = {5, 5}, .n = 2, .fail_at = -1};
    err[0] = '\0';
    assert_int_equal(raw_insert_run(path, DDL, 2, next_row, &s, &n, &dt, err, sizeof err), -1);
    assert_non_null(strstr(err, "insert of row 2"));
    assert_non_null(strstr(err, path));

    err[0] = '\0';
    assert_int_equal(raw_insert_run(path, DDL, 0, next_row, &s, &n, &dt, err, sizeof err), -1);
    assert_non_null(strstr(err, "0 columns"));
    assert_int_equal(raw_insert_run(path, DDL, 65, next_row, &s, &n, &dt, err, sizeof err), -1);
    tu_rmrf(dir);
    free(dir);
}

static void test_tvprogram(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("raw_insert");
    char path[4200], err[512] = "";
    snprintf(path, sizeof path, "%s/raw.db", dir);
    static const char ddl[] = "CREATE TABLE tv_program (id INTEGER PRIMARY KEY, created_at TEXT, updated_at TEXT, "
                              "channel_id INTEGER, title TEXT, description TEXT, start TEXT, stop TEXT, "
                              "duration INTEGER, age_rating INTEGER, is_live INTEGER)";
    double rps = 0;
    /* More rows than the generated set holds (16000): the cycle must give fresh keys. */
    assert_int_equal(raw_insert_tvprogram(path, ddl, 20000, &rps, err, sizeof err), 0);
    assert_true(rps > 0);
    assert_int_equal(access(path, F_OK), -1);   /* removed afterwards */
    /* A table of the wrong shape fails, naming the db. */
    err[0] = '\0';
    assert_int_equal(raw_insert_tvprogram(path, DDL, 10, &rps, err, sizeof err), -1);
    assert_non_null(strstr(err, path));
    tu_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_inserts_every_row),
        cmocka_unit_test(test_run_failures),
        cmocka_unit_test(test_tvprogram),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
