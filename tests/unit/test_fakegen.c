/* test_fakegen.c — the fake portal's data: determinism, shapes, row counts, the
 * awkward values it promises (Cyrillic, quotes, backslashes, control bytes,
 * NULLs, ids past 2^53, fractional timestamps, shared updated_at seconds, valid
 * JSON), and mutate (counts, clock, same_ts, deleted/inserted ids, clamping,
 * both row-picking paths, rollback on every error).
 * gen.c belongs to the iptv-fake-portal executable, not the library, so it is
 * compiled into this test directly. */
#include "tests/fake_portal/gen.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- helpers */

static sqlite3 *make_db(uint64_t seed, int64_t prog_rows, int64_t scale)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    struct fakegen_opts o = { .seed = seed, .tv_program_rows = prog_rows, .scale = scale };
    char err[512] = "";
    int rc = fakegen_create(db, &o, err, sizeof err);
    if (rc)
        fail_msg("fakegen_create: %s", err);
    return db;
}

static int64_t q_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* Caller frees. NULL for SQL NULL. */
static char *q_text(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    const char *s = (const char *)sqlite3_column_text(st, 0);
    char *out = s ? strdup(s) : NULL;
    sqlite3_finalize(st);
    return out;
}

static void q_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg);
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

/* FNV-1a over one table, rows by id, each value with its storage class. */
static uint64_t table_sum(sqlite3 *db, const char *table, uint64_t h)
{
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT * FROM \"%s\" ORDER BY rowid", table);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    h = fnv(h, table, strlen(table) + 1);
    while (sqlite3_step(st) == SQLITE_ROW) {
        for (int i = 0; i < sqlite3_column_count(st); i++) {
            unsigned char type = (unsigned char)sqlite3_column_type(st, i);
            h = fnv(h, &type, 1);
            if (type == SQLITE_INTEGER) {
                int64_t v = sqlite3_column_int64(st, i);
                h = fnv(h, &v, sizeof v);
            } else if (type == SQLITE_FLOAT) {
                double v = sqlite3_column_double(st, i);
                h = fnv(h, &v, sizeof v);
            } else if (type == SQLITE_TEXT) {
                const unsigned char *s = sqlite3_column_text(st, i);
                int n = sqlite3_column_bytes(st, i);
                h = fnv(h, &n, sizeof n);
                h = fnv(h, s, (size_t)n);
            }
        }
    }
    sqlite3_finalize(st);
    return h;
}

/* Every table, bookkeeping included, in name order. */
static uint64_t db_sum(sqlite3 *db)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT name FROM sqlite_master WHERE type='table' "
                                        "ORDER BY name",
                                        -1, &st, NULL),
                     SQLITE_OK);
    uint64_t h = 0xcbf29ce484222325ULL;
    int tables = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        h = table_sum(db, (const char *)sqlite3_column_text(st, 0), h);
        tables++;
    }
    sqlite3_finalize(st);
    assert_int_equal(tables, 10); /* 8 served + _fake_clock + _fake_seq */
    return h;
}

static int64_t count(sqlite3 *db, const char *table)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\"", table);
    return q_int(db, sql);
}

static char *clock_now(sqlite3 *db) { return q_text(db, "SELECT now FROM _fake_clock"); }

static int mutate(sqlite3 *db, const char *table, int64_t u, int64_t i, int64_t d, int same_ts,
                  uint64_t seed, struct fakegen_mutate_result *r, char *err, size_t errlen)
{
    struct fakegen_mutation m = { .table = table, .updates = u, .inserts = i, .deletes = d,
                                  .same_ts = same_ts, .seed = seed };
    return fakegen_mutate(db, &m, r, err, errlen);
}

static void mutate_ok(sqlite3 *db, const char *table, int64_t u, int64_t i, int64_t d,
                      int same_ts, uint64_t seed, struct fakegen_mutate_result *r)
{
    char err[512] = "";
    if (mutate(db, table, u, i, d, same_ts, seed, r, err, sizeof err))
        fail_msg("fakegen_mutate: %s", err);
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("\"%s\" does not contain \"%s\"", hay, needle);
}

/* ------------------------------------------------------------- create */

static void test_same_seed_same_content(void **state)
{
    (void)state;
    sqlite3 *a = make_db(1, 20000, 1), *b = make_db(1, 20000, 1), *c = make_db(2, 20000, 1);
    assert_true(db_sum(a) == db_sum(b));
    assert_true(db_sum(a) != db_sum(c));
    /* Each table has its own stream: more programmes leave subscribers alone. */
    sqlite3 *d = make_db(1, 30000, 1);
    assert_true(table_sum(a, "subscriber", 0) == table_sum(d, "subscriber", 0));
    assert_true(table_sum(a, "tv_program", 0) != table_sum(d, "tv_program", 0));
    sqlite3_close(a);
    sqlite3_close(b);
    sqlite3_close(c);
    sqlite3_close(d);
}

static void test_shapes(void **state)
{
    (void)state;
    sqlite3 *db = make_db(1, 1000, 1);
    static const struct {
        const char *table;
        int ncols;
    } want[] = {
        { "tv_program", 11 }, { "tv_channel", 13 }, { "subscriber", 10 }, { "terminal", 9 },
        { "media", 74 },      { "tv_category", 3 }, { "tv_program_category", 3 },
        { "package", 3 },
    };
    for (size_t t = 0; t < sizeof want / sizeof want[0]; t++) {
        char sql[160];
        snprintf(sql, sizeof sql, "SELECT name, type, pk FROM pragma_table_info('%s') ORDER BY cid",
                 want[t].table);
        sqlite3_stmt *st;
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
        int n = 0;
        while (sqlite3_step(st) == SQLITE_ROW) {
            const char *name = (const char *)sqlite3_column_text(st, 0);
            const char *type = (const char *)sqlite3_column_text(st, 1);
            if (n == 0) {
                assert_string_equal(name, "id");
                assert_string_equal(type, "INTEGER");
                assert_int_equal(sqlite3_column_int(st, 2), 1);
            }
            /* Only the types the catalog maps. */
            if (strcmp(type, "INTEGER") && strcmp(type, "REAL") && strcmp(type, "TEXT") &&
                strcmp(type, "TIMESTAMP") && strcmp(type, "BOOLEAN") && strcmp(type, "JSON"))
                fail_msg("%s.%s has type %s", want[t].table, name, type);
            n++;
        }
        sqlite3_finalize(st);
        if (n != want[t].ncols)
            fail_msg("%s has %d columns, want %d", want[t].table, n, want[t].ncols);
    }
    /* A few declared types the catalog depends on. */
    assert_int_equal(q_int(db, "SELECT count(*) FROM pragma_table_info('tv_program') WHERE "
                               "(name='is_live' AND type='BOOLEAN') OR (name='start' AND "
                               "type='TIMESTAMP') OR (name='duration' AND type='INTEGER')"),
                     3);
    assert_int_equal(q_int(db, "SELECT count(*) FROM pragma_table_info('tv_channel') WHERE "
                               "(name='languages' OR name='params') AND type='JSON'"),
                     2);
    assert_int_equal(q_int(db, "SELECT count(*) FROM pragma_table_info('subscriber') WHERE "
                               "name='balance' AND type='REAL'"),
                     1);
    char *now = clock_now(db);
    assert_string_equal(now, FAKEGEN_CLOCK_START);
    free(now);
    assert_int_equal(count(db, "_fake_clock"), 1);
    sqlite3_close(db);
}

static void test_row_counts(void **state)
{
    (void)state;
    sqlite3 *db;
    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    char err[256];
    assert_int_equal(fakegen_create(db, NULL, err, sizeof err), 0); /* all defaults */
    assert_int_equal(count(db, "tv_program"), 200000);
    assert_int_equal(count(db, "tv_channel"), 2000);
    assert_int_equal(count(db, "subscriber"), 5000);
    assert_int_equal(count(db, "terminal"), 8000);
    assert_int_equal(count(db, "media"), 3000);
    assert_int_equal(count(db, "tv_category"), 40);
    assert_int_equal(count(db, "package"), 25);
    int64_t links = count(db, "tv_program_category"); /* ~1% of programmes, 1.3 each */
    assert_in_range(links, 1500, 4000);
    /* Channels are filled in blocks: every channel has programmes. */
    assert_int_equal(q_int(db, "SELECT count(DISTINCT channel_id) FROM tv_program"), 2000);
    sqlite3_close(db);

    db = make_db(1, 1000, 3);
    assert_int_equal(count(db, "tv_program"), 1000);
    assert_int_equal(count(db, "tv_channel"), 6000);
    assert_int_equal(count(db, "subscriber"), 15000);
    assert_int_equal(count(db, "terminal"), 24000);
    assert_int_equal(count(db, "media"), 9000);
    assert_int_equal(count(db, "tv_category"), 40);
    sqlite3_close(db);
}

/* Fraction of NULLs in table.col, in percent. */
static double null_pct(sqlite3 *db, const char *table, const char *col)
{
    char sql[200];
    sqlite3_stmt *st;
    snprintf(sql, sizeof sql, "SELECT 100.0 * (count(*) - count(\"%s\")) / count(*) FROM \"%s\"",
             col, table);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    double v = sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void test_awkward_text(void **state)
{
    (void)state;
    sqlite3 *db = make_db(7, 20000, 1);
    /* Cyrillic, in names and titles. */
    assert_true(q_int(db, "SELECT count(*) FROM tv_channel WHERE name LIKE 'Первый канал%'") > 0);
    assert_true(q_int(db, "SELECT count(*) FROM tv_program WHERE instr(title, 'Новости')") > 0);
    assert_true(q_int(db, "SELECT count(*) FROM tv_program WHERE instr(title, 'ё')") > 0);
    /* Quotes, backslash, newline, tab, empty strings. */
    assert_true(q_int(db, "SELECT count(*) FROM tv_program WHERE instr(title, '''')") > 0);
    assert_true(q_int(db, "SELECT count(*) FROM tv_program WHERE instr(title, '\"')") > 0);
    assert_true(q_int(db, "SELECT count(*) FROM tv_program WHERE instr(title, '\\')") > 0);
    assert_true(q_int(db, "SELECT count(*) FROM tv_program WHERE instr(description, char(10))") > 0);
    assert_true(q_int(db, "SELECT count(*) FROM tv_program WHERE instr(description, char(9))") > 0);
    assert_true(q_int(db, "SELECT count(*) FROM tv_program WHERE title = ''") > 0);
    assert_true(q_int(db, "SELECT count(*) FROM subscriber WHERE comment = ''") > 0);
    assert_true(q_int(db, "SELECT count(*) FROM subscriber WHERE email = ''") > 0);
    assert_true(q_int(db, "SELECT count(*) FROM subscriber WHERE instr(comment, char(10))") > 0);
    assert_true(q_int(db, "SELECT count(*) FROM terminal WHERE instr(model, '\"')") > 0);
    /* NULLs in the nullable columns at their designed rates (5-10%)... */
    static const struct {
        const char *table, *col;
    } nullable[] = {
        { "tv_program", "description" }, { "tv_program", "age_rating" },
        { "tv_channel", "epg_id" },      { "tv_channel", "logo" },
        { "tv_channel", "params" },      { "subscriber", "email" },
        { "subscriber", "tags" },        { "subscriber", "comment" },
        { "terminal", "serial" },        { "media", "rating" },
    };
    for (size_t i = 0; i < sizeof nullable / sizeof nullable[0]; i++) {
        double p = null_pct(db, nullable[i].table, nullable[i].col);
        if (p < 3.5 || p > 12.0)
            fail_msg("%s.%s is %.2f%% NULL", nullable[i].table, nullable[i].col, p);
    }
    /* ...and none in the others. */
    assert_true(null_pct(db, "tv_program", "title") == 0.0);
    assert_true(null_pct(db, "tv_program", "updated_at") == 0.0);
    assert_true(null_pct(db, "terminal", "subscriber_id") == 0.0);
    assert_true(null_pct(db, "media", "updated_at") == 0.0);
    sqlite3_close(db);
}

static void test_ids(void **state)
{
    (void)state;
    sqlite3 *db = make_db(7, 20000, 1);
    const int64_t p53 = INT64_C(1) << 53;
    /* media: from 2^53+1 (not a double) to near INT64_MAX, exact both ways. */
    assert_true(q_int(db, "SELECT min(id) FROM media") == p53 + 1);
    char *s = q_text(db, "SELECT CAST(min(id) AS TEXT) FROM media");
    assert_string_equal(s, "9007199254740993");
    free(s);
    assert_true(q_int(db, "SELECT max(id) FROM media") > INT64_C(8000000000000000000));
    assert_int_equal(q_int(db, "SELECT count(*) FROM media WHERE id <= 9007199254740992"), 0);
    sqlite3_stmt *all, *one;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT id, CAST(id AS TEXT) FROM media", -1, &all,
                                        NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM media WHERE id = ?", -1, &one,
                                        NULL),
                     SQLITE_OK);
    while (sqlite3_step(all) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(all, 0);
        char buf[32];
        snprintf(buf, sizeof buf, "%" PRId64, id);
        assert_string_equal(buf, (const char *)sqlite3_column_text(all, 1));
        sqlite3_bind_int64(one, 1, id);
        assert_int_equal(sqlite3_step(one), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int(one, 0), 1);
        sqlite3_reset(one);
    }
    sqlite3_finalize(all);
    sqlite3_finalize(one);
    /* subscriber near 2^40, with random gaps; tv_program rising with gaps. */
    assert_true(q_int(db, "SELECT min(id) FROM subscriber") >= (INT64_C(1) << 40));
    assert_true(q_int(db, "SELECT count(*) FROM (SELECT id - lag(id) OVER (ORDER BY id) AS g "
                          "FROM subscriber) WHERE g > 100") > 100);
    assert_true(q_int(db, "SELECT count(*) FROM (SELECT id - lag(id) OVER (ORDER BY id) AS g "
                          "FROM tv_program) WHERE g > 1") > 1000);
    /* References point at rows that exist. */
    assert_int_equal(q_int(db, "SELECT count(*) FROM terminal WHERE subscriber_id NOT IN "
                               "(SELECT id FROM subscriber)"),
                     0);
    assert_int_equal(q_int(db, "SELECT count(*) FROM tv_program WHERE channel_id NOT IN "
                               "(SELECT id FROM tv_channel)"),
                     0);
    assert_int_equal(q_int(db, "SELECT count(*) FROM tv_program_category WHERE program_id NOT IN "
                               "(SELECT id FROM tv_program) OR category_id NOT IN "
                               "(SELECT id FROM tv_category)"),
                     0);
    assert_int_equal(q_int(db, "SELECT count(*) FROM media WHERE package_id NOT IN "
                               "(SELECT id FROM package)"),
                     0);
    sqlite3_close(db);
}

#define TS_GLOB "'[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-5][0-9]'"
#define TS_FRAC_GLOB                                                                        \
    "'[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-5][0-9]."         \
    "[0-9][0-9][0-9][0-9][0-9][0-9]'"

static void test_values(void **state)
{
    (void)state;
    sqlite3 *db = make_db(7, 20000, 1);
    char sql[512];
    /* Every BOOLEAN is an integer 0/1; every TIMESTAMP has the portal's form, some
     * with microseconds; nothing is at or after the clock's start. */
    sqlite3_stmt *cols;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT m.name, p.name, p.type FROM sqlite_master m, "
                                        "pragma_table_info(m.name) p WHERE m.type='table' AND "
                                        "p.type IN ('BOOLEAN','TIMESTAMP')",
                                        -1, &cols, NULL),
                     SQLITE_OK);
    int nbool = 0, nts = 0;
    while (sqlite3_step(cols) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(cols, 0);
        const char *c = (const char *)sqlite3_column_text(cols, 1);
        if (strcmp((const char *)sqlite3_column_text(cols, 2), "BOOLEAN") == 0) {
            snprintf(sql, sizeof sql,
                     "SELECT count(*) FROM \"%s\" WHERE typeof(\"%s\") <> 'integer' OR \"%s\" "
                     "NOT IN (0, 1)",
                     t, c, c);
            nbool++;
        } else {
            snprintf(sql, sizeof sql,
                     "SELECT count(*) FROM \"%s\" WHERE \"%s\" IS NOT NULL AND NOT (\"%s\" GLOB "
                     TS_GLOB " OR \"%s\" GLOB " TS_FRAC_GLOB ")",
                     t, c, c, c);
            nts++;
        }
        if (q_int(db, sql) != 0)
            fail_msg("%s.%s has values outside its type", t, c);
    }
    sqlite3_finalize(cols);
    assert_int_equal(nbool, 14);
    assert_int_equal(nts, 14);
    static const char *const stamped[] = { "tv_program", "tv_channel", "subscriber", "terminal",
                                           "media" };
    for (size_t i = 0; i < sizeof stamped / sizeof stamped[0]; i++) {
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM \"%s\" WHERE updated_at >= '" FAKEGEN_CLOCK_START
                 "' OR created_at > updated_at",
                 stamped[i]);
        assert_int_equal(q_int(db, sql), 0);
        snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\" WHERE updated_at GLOB " TS_FRAC_GLOB,
                 stamped[i]);
        if (q_int(db, sql) == 0)
            fail_msg("%s has no fractional updated_at", stamped[i]);
    }
    /* Doubles with fractions, stored as REAL. */
    assert_true(q_int(db, "SELECT count(*) FROM subscriber WHERE balance <> round(balance)") > 1000);
    assert_int_equal(q_int(db, "SELECT count(*) FROM subscriber WHERE typeof(balance) <> 'real'"), 0);
    assert_true(q_int(db, "SELECT count(*) FROM media WHERE fps = 23.976") > 0);
    /* Programmes: stop = start + duration. */
    assert_int_equal(q_int(db, "SELECT count(*) FROM tv_program WHERE "
                               "strftime('%s', stop) - strftime('%s', start) <> duration"),
                     0);
    sqlite3_close(db);
}

static void test_json_columns(void **state)
{
    (void)state;
    sqlite3 *db = make_db(7, 20000, 1);
    sqlite3_stmt *cols;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT m.name, p.name FROM sqlite_master m, "
                                        "pragma_table_info(m.name) p WHERE m.type='table' AND "
                                        "p.type='JSON'",
                                        -1, &cols, NULL),
                     SQLITE_OK);
    static const char *const objects[] = { "params", "settings", "extra" };
    int ncols = 0;
    while (sqlite3_step(cols) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(cols, 0);
        const char *c = (const char *)sqlite3_column_text(cols, 1);
        int want_object = 0;
        for (size_t i = 0; i < sizeof objects / sizeof objects[0]; i++)
            want_object |= strcmp(c, objects[i]) == 0;
        char sql[160];
        snprintf(sql, sizeof sql, "SELECT \"%s\", typeof(\"%s\") FROM \"%s\"", c, c, t);
        sqlite3_stmt *st;
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
        int64_t seen = 0;
        while (sqlite3_step(st) == SQLITE_ROW) {
            const char *type = (const char *)sqlite3_column_text(st, 1);
            if (strcmp(type, "null") == 0)
                continue;
            assert_string_equal(type, "text");
            const char *v = (const char *)sqlite3_column_text(st, 0);
            cJSON *j = cJSON_Parse(v);
            if (!j)
                fail_msg("%s.%s: invalid JSON: %s", t, c, v);
            if (want_object ? !cJSON_IsObject(j) : !cJSON_IsArray(j))
                fail_msg("%s.%s: want %s: %s", t, c, want_object ? "object" : "array", v);
            cJSON_Delete(j);
            seen++;
        }
        sqlite3_finalize(st);
        assert_true(seen > 0);
        ncols++;
    }
    sqlite3_finalize(cols);
    assert_int_equal(ncols, 15); /* 2 tv_channel, 1 subscriber, 1 terminal, 11 media */
    /* Arrays of strings hold strings; JSON text escapes what needs escaping. */
    char *v = q_text(db, "SELECT languages FROM tv_channel ORDER BY id LIMIT 1");
    cJSON *j = cJSON_Parse(v);
    assert_non_null(j);
    cJSON *item;
    cJSON_ArrayForEach(item, j) assert_true(cJSON_IsString(item));
    cJSON_Delete(j);
    free(v);
    assert_true(q_int(db, "SELECT count(*) FROM subscriber WHERE instr(tags, '\\n') AND NOT "
                          "instr(tags, char(10))") > 0);
    assert_true(q_int(db, "SELECT count(*) FROM subscriber WHERE instr(tags, '\\\"')") > 0);
    assert_true(q_int(db, "SELECT count(*) FROM tv_channel WHERE params = '{}'") > 0);
    assert_true(q_int(db, "SELECT count(*) FROM subscriber WHERE tags = '[]'") > 0);
    /* An integer past 2^53 inside JSON text, as the portal's bigint columns send. */
    assert_true(q_int(db, "SELECT count(*) FROM media WHERE instr(extra, '\"big\":900719925')") > 0);
    sqlite3_close(db);
}

static void test_shared_updated_at(void **state)
{
    (void)state;
    sqlite3 *db = make_db(7, 20000, 1);
    /* EPG import batches: many groups of >= 200 programmes with one updated_at. */
    int64_t groups = q_int(db, "SELECT count(*) FROM (SELECT updated_at FROM tv_program GROUP BY "
                               "updated_at HAVING count(*) >= 200)");
    assert_true(groups >= 15);
    /* Bulk runs in the other tables too, for paging across equal cursors. */
    assert_true(q_int(db, "SELECT max(c) FROM (SELECT count(*) c FROM subscriber GROUP BY "
                          "updated_at)") >= 100);
    sqlite3_close(db);
}

static void test_create_errors(void **state)
{
    (void)state;
    sqlite3 *db = make_db(1, 1000, 1);
    uint64_t before = db_sum(db);
    char err[256];
    /* A second create on the same db: refused, named, and nothing changed. */
    struct fakegen_opts o = { .seed = 2, .tv_program_rows = 1000 };
    assert_int_equal(fakegen_create(db, &o, err, sizeof err), -1);
    assert_string_equal(err, "fakegen: table tv_category: table \"tv_category\" already exists");
    assert_true(db_sum(db) == before);
    sqlite3_close(db);

    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    o.tv_program_rows = -1;
    assert_int_equal(fakegen_create(db, &o, err, sizeof err), -1);
    assert_string_equal(err, "fakegen: tv_program_rows -1 is negative");
    o.tv_program_rows = 10;
    o.scale = -2;
    assert_int_equal(fakegen_create(db, &o, err, sizeof err), -1);
    assert_string_equal(err, "fakegen: scale -2 is outside 1..1000000");
    assert_int_equal(q_int(db, "SELECT count(*) FROM sqlite_master"), 0);
    /* A failure halfway (a table that exists in the middle of the list) rolls back
     * the tables created before it. */
    q_exec(db, "CREATE TABLE media(x)");
    o.scale = 1;
    assert_int_equal(fakegen_create(db, &o, err, sizeof err), -1);
    assert_string_equal(err, "fakegen: table media: table \"media\" already exists");
    assert_int_equal(q_int(db, "SELECT count(*) FROM sqlite_master"), 1);
    /* The caller's synchronous setting survives both outcomes. */
    q_exec(db, "DROP TABLE media; PRAGMA synchronous=1");
    assert_int_equal(fakegen_create(db, &o, err, sizeof err), 0);
    assert_int_equal(q_int(db, "PRAGMA synchronous"), 1);
    assert_int_equal(fakegen_create(db, &o, err, sizeof err), -1);
    assert_int_equal(q_int(db, "PRAGMA synchronous"), 1);
    sqlite3_close(db);
}

/* ------------------------------------------------------------- mutate */

static void test_mutate_same_ts(void **state)
{
    (void)state;
    sqlite3 *db = make_db(3, 5000, 1);
    q_exec(db, "CREATE TEMP TABLE before AS SELECT id, updated_at FROM subscriber");
    int64_t max_before = q_int(db, "SELECT max(id) FROM before");
    struct fakegen_mutate_result r;
    mutate_ok(db, "subscriber", 50, 20, 10, 1, 9, &r);
    assert_int_equal(r.updated, 50);
    assert_int_equal(r.inserted, 20);
    assert_int_equal(r.deleted, 10);
    assert_string_equal(r.ts, "2026-01-01 00:00:01");
    char *now = clock_now(db);
    assert_string_equal(now, r.ts);
    free(now);
    assert_int_equal(count(db, "subscriber"), 5000 - 10 + 20);
    /* Every written row carries exactly r.ts; nothing else moved. */
    assert_int_equal(q_int(db, "SELECT count(*) FROM subscriber WHERE updated_at = "
                               "'2026-01-01 00:00:01'"),
                     70);
    assert_int_equal(q_int(db, "SELECT count(*) FROM subscriber WHERE updated_at > "
                               "'" FAKEGEN_CLOCK_START "'"),
                     70);
    /* Deleted ids are gone; updated rows are old ids; inserted ids are new and above
     * every old id, with created_at = updated_at = r.ts. */
    assert_int_equal(q_int(db, "SELECT count(*) FROM before WHERE id NOT IN "
                               "(SELECT id FROM subscriber)"),
                     10);
    assert_int_equal(q_int(db, "SELECT count(*) FROM subscriber s JOIN before b USING (id) "
                               "WHERE s.updated_at <> b.updated_at"),
                     50);
    assert_int_equal(q_int(db, "SELECT count(*) FROM subscriber WHERE id NOT IN "
                               "(SELECT id FROM before)"),
                     20);
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM subscriber WHERE id > %" PRId64
             " AND created_at = updated_at AND updated_at = '2026-01-01 00:00:01'",
             max_before);
    assert_int_equal(q_int(db, sql), 20);
    /* A second round: the clock moves on, every new stamp is later. */
    mutate_ok(db, "subscriber", 5, 5, 5, 1, 10, &r);
    assert_string_equal(r.ts, "2026-01-01 00:00:02");
    assert_int_equal(q_int(db, "SELECT count(*) FROM subscriber WHERE updated_at = "
                               "'2026-01-01 00:00:02'"),
                     10);
    sqlite3_close(db);
}

static void test_mutate_distinct_ts(void **state)
{
    (void)state;
    sqlite3 *db = make_db(3, 5000, 1);
    struct fakegen_mutate_result r;
    mutate_ok(db, "tv_program", 30, 10, 5, 0, 1, &r);
    assert_int_equal(r.updated + r.inserted + r.deleted, 45);
    /* One second per written row: 40 rows, the clock moves 40 s. */
    assert_string_equal(r.ts, "2026-01-01 00:00:40");
    assert_int_equal(q_int(db, "SELECT count(DISTINCT updated_at) FROM tv_program WHERE "
                               "updated_at > '" FAKEGEN_CLOCK_START "'"),
                     40);
    char *max = q_text(db, "SELECT max(updated_at) FROM tv_program");
    assert_string_equal(max, r.ts);
    free(max);
    /* Monotonic: the next mutation stamps strictly after the previous clock. */
    mutate_ok(db, "tv_program", 3, 0, 0, 0, 2, &r);
    assert_string_equal(r.ts, "2026-01-01 00:00:43");
    assert_int_equal(q_int(db, "SELECT count(*) FROM tv_program WHERE updated_at > "
                               "'2026-01-01 00:00:40'"),
                     3);
    /* Nothing written still moves the clock one second. */
    mutate_ok(db, "tv_program", 0, 0, 2, 0, 3, &r);
    assert_string_equal(r.ts, "2026-01-01 00:00:44");
    assert_int_equal(r.deleted, 2);
    /* Inserted programmes reference channels that exist. */
    assert_int_equal(q_int(db, "SELECT count(*) FROM tv_program WHERE channel_id NOT IN "
                               "(SELECT id FROM tv_channel)"),
                     0);
    sqlite3_close(db);
}

static void test_mutate_default_and_all_tables(void **state)
{
    (void)state;
    sqlite3 *db = make_db(3, 5000, 1);
    struct fakegen_mutate_result r;
    mutate_ok(db, NULL, 5, 3, 2, 1, 4, &r);
    assert_int_equal(r.updated, 15);
    assert_int_equal(r.inserted, 9);
    assert_int_equal(r.deleted, 6);
    static const char *const touched[] = { "subscriber", "terminal", "tv_program" };
    char sql[200];
    for (size_t i = 0; i < 3; i++) {
        snprintf(sql, sizeof sql, "SELECT count(*) FROM %s WHERE updated_at = '%s'", touched[i],
                 r.ts);
        assert_int_equal(q_int(db, sql), 8);
    }
    assert_int_equal(q_int(db, "SELECT count(*) FROM tv_channel WHERE updated_at >= "
                               "'" FAKEGEN_CLOCK_START "'"),
                     0);
    /* tv_channel and media mutate too, and their JSON stays valid. */
    mutate_ok(db, "tv_channel", 3, 2, 1, 0, 5, &r);
    mutate_ok(db, "media", 3, 2, 1, 0, 6, &r);
    assert_string_equal(r.ts, "2026-01-01 00:00:11");
    assert_int_equal(count(db, "tv_channel"), 2001);
    assert_int_equal(count(db, "media"), 3001);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT params FROM tv_channel WHERE updated_at > '"
                                        FAKEGEN_CLOCK_START "' AND params IS NOT NULL UNION ALL "
                                        "SELECT extra FROM media WHERE updated_at > '"
                                        FAKEGEN_CLOCK_START "' AND extra IS NOT NULL",
                                        -1, &st, NULL),
                     SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
        cJSON *j = cJSON_Parse((const char *)sqlite3_column_text(st, 0));
        assert_true(cJSON_IsObject(j));
        cJSON_Delete(j);
    }
    sqlite3_finalize(st);
    /* New media ids stay exact above 2^53. */
    assert_true(q_int(db, "SELECT min(id) FROM media WHERE created_at > '" FAKEGEN_CLOCK_START
                          "'") > (INT64_C(1) << 53));
    sqlite3_close(db);
}

static void test_mutate_deterministic(void **state)
{
    (void)state;
    sqlite3 *a = make_db(5, 3000, 1), *b = make_db(5, 3000, 1), *c = make_db(5, 3000, 1);
    struct fakegen_mutate_result r;
    mutate_ok(a, NULL, 40, 30, 20, 0, 77, &r);
    mutate_ok(b, NULL, 40, 30, 20, 0, 77, &r);
    mutate_ok(c, NULL, 40, 30, 20, 0, 78, &r);
    assert_true(db_sum(a) == db_sum(b));
    assert_true(db_sum(a) != db_sum(c));
    sqlite3_close(a);
    sqlite3_close(b);
    sqlite3_close(c);
}

/* Fewer rows than asked: deletes first, then updates, both clamped; ids stay unique
 * and never come back after the table empties. */
static void test_mutate_clamps_and_never_reuses_ids(void **state)
{
    (void)state;
    sqlite3 *db = make_db(3, 30, 1);
    int64_t max_before = q_int(db, "SELECT max(id) FROM tv_program");
    struct fakegen_mutate_result r;
    mutate_ok(db, "tv_program", 25, 0, 10, 1, 1, &r);
    assert_int_equal(r.deleted, 10);
    assert_int_equal(r.updated, 20);
    assert_int_equal(count(db, "tv_program"), 20);
    mutate_ok(db, "tv_program", 0, 0, 100, 1, 2, &r);
    assert_int_equal(r.deleted, 20);
    assert_int_equal(count(db, "tv_program"), 0);
    mutate_ok(db, "tv_program", 10, 5, 10, 1, 3, &r); /* empty table: only inserts */
    assert_int_equal(r.updated, 0);
    assert_int_equal(r.deleted, 0);
    assert_int_equal(r.inserted, 5);
    assert_true(q_int(db, "SELECT min(id) FROM tv_program") > max_before);
    sqlite3_close(db);
}

/* Both row pickers: probing (few picks), and reading every id (many picks, or a
 * table nearly all picked). Either way every pick is a distinct row. */
static void test_mutate_pickers(void **state)
{
    (void)state;
    sqlite3 *db = make_db(3, 100000, 1);
    struct fakegen_mutate_result r;
    mutate_ok(db, "tv_program", 70000, 0, 0, 1, 1, &r); /* > PICK_PROBE_MAX */
    assert_int_equal(r.updated, 70000);
    assert_int_equal(q_int(db, "SELECT count(*) FROM tv_program WHERE updated_at = "
                               "'2026-01-01 00:00:01'"),
                     70000);
    mutate_ok(db, "subscriber", 4990, 0, 0, 1, 2, &r); /* probes get stuck near the end */
    assert_int_equal(r.updated, 4990);
    assert_int_equal(q_int(db, "SELECT count(*) FROM subscriber WHERE updated_at = "
                               "'2026-01-01 00:00:02'"),
                     4990);
    mutate_ok(db, "terminal", 300, 0, 0, 1, 3, &r); /* probing */
    assert_int_equal(q_int(db, "SELECT count(*) FROM terminal WHERE updated_at = "
                               "'2026-01-01 00:00:03'"),
                     300);
    sqlite3_close(db);
}

static void expect_mutate_err(sqlite3 *db, const char *table, int64_t u, int64_t i, int64_t d,
                              const char *want)
{
    char err[512] = "";
    struct fakegen_mutate_result r = { .updated = -7 };
    assert_int_equal(mutate(db, table, u, i, d, 0, 1, &r, err, sizeof err), -1);
    assert_contains(err, want);
    assert_int_equal(r.updated, -7); /* untouched on failure */
}

static void test_mutate_errors(void **state)
{
    (void)state;
    sqlite3 *db = make_db(3, 1000, 1);
    uint64_t before = db_sum(db);
    expect_mutate_err(db, "nosuch", 1, 1, 1,
                      "fakegen: unknown table 'nosuch'; mutate handles subscriber, terminal, "
                      "tv_program, tv_channel, media");
    expect_mutate_err(db, "tv_category", 1, 0, 0,
                      "fakegen: table tv_category has no updated_at");
    expect_mutate_err(db, "subscriber", 1, -1, 0,
                      "fakegen: mutate subscriber: negative count (updates 1, inserts -1, "
                      "deletes 0)");
    expect_mutate_err(db, NULL, 0, 0, -3, "mutate (default tables): negative count");
    char err[256];
    assert_int_equal(fakegen_mutate(db, NULL, NULL, err, sizeof err), -1);
    assert_string_equal(err, "fakegen: mutate: no mutation given");
    assert_true(db_sum(db) == before);

    /* Failing after rows were written rolls them back: no room for new media ids. */
    q_exec(db, "UPDATE _fake_seq SET last_id = 9223372036854775000 WHERE name = 'media'");
    before = db_sum(db);
    expect_mutate_err(db, "media", 5, 10, 5,
                      "fakegen: table media: no id left above 9223372036854775");
    assert_true(db_sum(db) == before);

    /* A broken clock is named with its value. */
    q_exec(db, "UPDATE _fake_clock SET now = 'yesterday'");
    expect_mutate_err(db, "subscriber", 1, 0, 0,
                      "fakegen: table _fake_clock: want one row \"YYYY-MM-DD HH:MM:SS\", got "
                      "\"yesterday\"");
    q_exec(db, "UPDATE _fake_clock SET now = '2026-01-01 00:00:60'");
    expect_mutate_err(db, "subscriber", 1, 0, 0, "got \"2026-01-01 00:00:60\"");
    q_exec(db, "DELETE FROM _fake_clock");
    expect_mutate_err(db, "subscriber", 1, 0, 0, "got no row");
    /* A fractional clock is accepted and moves in whole seconds. */
    q_exec(db, "INSERT INTO _fake_clock VALUES('2026-02-03 04:05:06.789')");
    struct fakegen_mutate_result r;
    mutate_ok(db, "subscriber", 1, 0, 0, 1, 1, &r);
    assert_string_equal(r.ts, "2026-02-03 04:05:07");
    sqlite3_close(db);

    /* A database fakegen did not create. */
    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    expect_mutate_err(db, "subscriber", 1, 0, 0, "no such table");
    q_exec(db, "CREATE TABLE _fake_clock(now TEXT); INSERT INTO _fake_clock "
               "VALUES('2026-01-01 00:00:00')");
    expect_mutate_err(db, "subscriber", 1, 0, 0, "fakegen: table subscriber");
    sqlite3_close(db);
}

/* The time helpers across a leap day and a year boundary. */
static void test_time_helpers(void **state)
{
    (void)state;
    char buf[32];
    int64_t t;
    assert_int_equal(parse_ts(FAKEGEN_CLOCK_START, &t), 0);
    assert_true(t == T_CLOCK_START);
    assert_int_equal(parse_ts("2024-02-29 23:59:59", &t), 0);
    buf[fmt_ts(buf, t + 1, 0, 0)] = '\0';
    assert_string_equal(buf, "2024-03-01 00:00:00");
    buf[fmt_ts(buf, T_CLOCK_START - 1, 42, 0)] = '\0';
    assert_string_equal(buf, "2025-12-31 23:59:59.000042");
    buf[fmt_ts(buf, -1420070400, 0, 1)] = '\0';
    assert_string_equal(buf, "1925-01-01");
    assert_int_equal(parse_ts("2026-01-01T00:00:00", &t), -1);
    assert_int_equal(parse_ts("2026-01-01 00:00:00.", &t), -1);
    assert_int_equal(parse_ts("2026-01-01 00:00:00Z", &t), -1);
    assert_int_equal(parse_ts("2026-13-01 00:00:00", &t), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_seed_same_content),
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_row_counts),
        cmocka_unit_test(test_awkward_text),
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_json_columns),
        cmocka_unit_test(test_shared_updated_at),
        cmocka_unit_test(test_create_errors),
        cmocka_unit_test(test_mutate_same_ts),
        cmocka_unit_test(test_mutate_distinct_ts),
        cmocka_unit_test(test_mutate_default_and_all_tables),
        cmocka_unit_test(test_mutate_deterministic),
        cmocka_unit_test(test_mutate_clamps_and_never_reuses_ids),
        cmocka_unit_test(test_mutate_pickers),
        cmocka_unit_test(test_mutate_errors),
        cmocka_unit_test(test_time_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
