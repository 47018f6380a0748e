/* test_pull.c — agent/pull/pull.c page by page, against the fake portal.
 *
 * Group setup: one fake portal keeping its data in a file (th_site in
 * tests/harness/; 500 tv_program rows, the other tables at their generated
 * sizes). Each test pulls into a storage dir of its own (store_open: a real
 * journal and cache.db) through a real remote without retries, and changes
 * the portal only through its API (/_fake/mutate, JSONSQL writes,
 * /_fake/faults). Tests share the portal's rows but no expectation about
 * them: every check reads the portal's file anew.
 *
 * The fixture (storage dirs, portal access, checks) is tests/unit/pull_fixture.h.
 * After each pull: the cache's table holds the portal's rows value for value
 * (every column quote()d on both sides: type and text), the table's marks are
 * what its strategy promises (architecture.md, "Sync strategies"), and the
 * journal holds the pages the chunk, or the portal's page cap, makes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/base/log.h"
#include "tests/unit/pull_fixture.h"

static int group_setup(void **state)
{
    log_init(LOG_ERROR, LOG_TEXT);
    setenv("IA_PULL_PW", "secret", 1);
    const char *args[] = {"--rows", "500", NULL};
    return th_site_start(&g_site, "test_pull", NULL, args);
}

static int group_teardown(void **state)
{
    th_site_stop(&g_site);
    return 0;
}

/* The id at position `at` (from 0) of table in id order. */
static long long portal_id_at(const char *table, long long at)
{
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT id FROM %s ORDER BY id LIMIT 1 OFFSET %lld", table, at);
    return portal_int(sql);
}

/* ---- full: snapshot pages ------------------------------------------------------------------ */

static const char channel_full[] = "[[table]]\nname = \"tv_channel\"\nstrategy = \"full\"\nchunk = 300\nstreams = 1\n" CHANNEL_COLUMNS;

/* Keyset pages of `chunk` rows until an empty one; the mark is the last key.
 * A second snapshot replaces the table: a row gone from the portal is dropped,
 * a changed one is changed. */
static void test_snapshot_pages(void **state)
{
    struct fx *f = *state;
    struct pull_result r;
    struct replay_table st;
    fx_open(f, channel_full);
    long long n = portal_int("SELECT count(*) FROM tv_channel");
    assert_true(n > 3 * 300);
    uint64_t from = journal_writer_next_seq(f->st.jw);
    pull_ok(f, 0, 0, &r);
    assert_string_equal(r.action, "snapshot");
    assert_int_equal(r.rows, n);
    assert_true(r.snapshot_done);
    assert_pages(f, from, JOURNAL_SNAPSHOT_PAGE, "tv_channel", (uint64_t)n, 300);
    assert_same_rows(f, "tv_channel", "1");
    table_state(f, "tv_channel", &st);
    assert_true(st.live);
    assert_int_equal(st.rows, n);
    assert_int_equal(st.pending_id, 0);
    assert_true(st.snapshot_id >= from);
    assert_null_value(&st.mark_cursor, "mark cursor");
    assert_int_value(&st.mark_key, portal_int("SELECT max(id) FROM tv_channel"), "mark key");
    replay_table_free(&st);

    /* the first row of page 2 goes, the last row of page 1 changes */
    char q[300];
    snprintf(q, sizeof q, "{\"from\":\"tv_channel\",\"where\":{\"eq\":[\"id\",%lld]}}", portal_id_at("tv_channel", 300));
    portal_write(f, "delete", q);
    snprintf(q, sizeof q, "{\"table\":\"tv_channel\",\"set\":{\"name\":\"renamed by test_pull\"},"
                          "\"where\":{\"eq\":[\"id\",%lld]}}", portal_id_at("tv_channel", 299));
    portal_write(f, "update", q);
    from = journal_writer_next_seq(f->st.jw);
    pull_ok(f, 0, 0, &r);
    assert_string_equal(r.action, "snapshot");
    assert_int_equal(r.rows, n - 1);
    assert_int_equal(r.deleted, 1);
    assert_pages(f, from, JOURNAL_SNAPSHOT_PAGE, "tv_channel", (uint64_t)n - 1, 300);
    assert_same_rows(f, "tv_channel", "1");
}

/* A snapshot cut after its third page keeps the live table, and the next pull
 * resumes after the last journaled key: only the rest is read, and a row
 * changed beyond that key arrives as it is now. */
static void test_snapshot_resume(void **state)
{
    struct fx *f = *state;
    struct pull_result r;
    struct replay_table st;
    char err[512];
    fx_open(f, channel_full);
    long long n = portal_int("SELECT count(*) FROM tv_channel");
    assert_true(n > 4 * 300);
    /* The requests a snapshot makes before its first page, counted on a first one. */
    assert_int_equal(remote_login(f->rm, err, sizeof err), REMOTE_OK);
    uint64_t before = remote_get_stats(f->rm)->requests;
    pull_ok(f, 0, 0, &r);
    uint64_t pages = (uint64_t)(n + 299) / 300 + 1;               /* the empty one ends it */
    uint64_t ahead = remote_get_stats(f->rm)->requests - before - pages;
    assert_same_rows(f, "tv_channel", "1");

    /* the fourth page's request fails: three pages are journaled */
    struct buf queue = {0};
    buf_puts(&queue, "{\"queue\":[");
    for (uint64_t i = 0; i < ahead + 3; i++) buf_puts(&queue, "\"ok\",");
    buf_puts(&queue, "\"500\"]}");
    portal_admin("/_fake/faults", queue.p);
    buf_free(&queue);
    assert_int_equal(pull_table(&f->c, &f->cfg.tables[0], 1, &r), -1);
    assert_int_equal(r.remote_status, REMOTE_ETRANSPORT);
    assert_false(r.snapshot_done);
    table_state(f, "tv_channel", &st);
    assert_true(st.pending_id != 0);
    assert_int_equal(st.pending_rows, 900);
    assert_int_value(&st.pending_key, portal_id_at("tv_channel", 899), "pending key");
    uint64_t pending = st.pending_id;
    replay_table_free(&st);
    assert_same_rows(f, "tv_channel", "1");                      /* the live table is untouched */

    char q[300];
    snprintf(q, sizeof q, "{\"table\":\"tv_channel\",\"set\":{\"name\":\"changed while cut\"},"
                          "\"where\":{\"eq\":[\"id\",%lld]}}", portal_id_at("tv_channel", 900));
    portal_write(f, "update", q);
    uint64_t from = journal_writer_next_seq(f->st.jw);
    pull_ok(f, 0, 0, &r);
    assert_string_equal(r.action, "resumed snapshot");
    assert_int_equal(r.rows, n - 900);
    assert_true(r.snapshot_done);
    assert_pages(f, from, JOURNAL_SNAPSHOT_PAGE, "tv_channel", (uint64_t)n - 900, 300);
    assert_same_rows(f, "tv_channel", "1");
    table_state(f, "tv_channel", &st);
    assert_int_equal(st.pending_id, 0);
    assert_int_equal(st.snapshot_id, pending);
    assert_int_equal(st.rows, n);
    replay_table_free(&st);
}

/* The portal returns fewer rows than asked: a short page is not the end, only
 * an empty one is. */
static void test_page_cap_below_chunk(void **state)
{
    struct fx *f = *state;
    struct pull_result r;
    fx_open(f, "[[table]]\nname = \"tv_category\"\nstrategy = \"full\"\nchunk = 20\nstreams = 1\n"
               "columns = [\"id\", \"name\", \"sort_order\"]\n");
    long long n = portal_int("SELECT count(*) FROM tv_category");
    assert_true(n > 20);
    portal_admin("/_fake/faults", "{\"page_cap\":7}");
    uint64_t from = journal_writer_next_seq(f->st.jw);
    pull_ok(f, 0, 0, &r);
    assert_int_equal(r.rows, n);
    assert_pages(f, from, JOURNAL_SNAPSHOT_PAGE, "tv_category", (uint64_t)n, 7);
    assert_same_rows(f, "tv_category", "1");
}

/* An empty table is a snapshot of no rows: a live, empty table and no mark.
 * Without configured columns it cannot be learned, and the error says so. */
static void test_empty_table(void **state)
{
    struct fx *f = *state;
    struct pull_result r;
    struct replay_table st;
    fx_open(f, "[[table]]\nname = \"package\"\nstrategy = \"full\"\nchunk = 10\ncolumns = [\"id\", \"name\", \"paid\"]\n");
    portal_write(f, "delete", "{\"from\":\"package\",\"where\":{\"gt\":[\"id\",0]}}");
    assert_int_equal(portal_int("SELECT count(*) FROM package"), 0);
    uint64_t from = journal_writer_next_seq(f->st.jw);
    pull_ok(f, 0, 0, &r);
    assert_string_equal(r.action, "snapshot");
    assert_int_equal(r.rows, 0);
    assert_true(r.snapshot_done);
    assert_pages(f, from, JOURNAL_SNAPSHOT_PAGE, "package", 0, 10);
    table_state(f, "package", &st);
    assert_true(st.live);
    assert_int_equal(st.rows, 0);
    assert_true(st.snapshot_id >= from);
    assert_null_value(&st.mark_key, "mark key");
    replay_table_free(&st);
    assert_same_rows(f, "package", "1");

    struct config_table learned = f->cfg.tables[0];
    learned.columns = NULL;
    learned.ncolumns = 0;
    assert_int_equal(pull_table(&f->c, &learned, 0, &r), -1);
    assert_contains(r.error, "table package is empty on the portal and agent.toml lists no columns");
    assert_same_rows(f, "package", "1");
}

/* ---- incremental ------------------------------------------------------------------------- */

/* After the snapshot (mark: the newest cursor, no key, so rows of that cursor
 * value are read once more), each pull reads exactly the rows changed after
 * the mark, in (cursor, key) pages, and moves the mark to the last of them. */
static void test_incremental_after_mark(void **state)
{
    struct fx *f = *state;
    struct pull_result r;
    struct replay_table st;
    char newest[64], sql[200];
    fx_open(f, "[[table]]\nname = \"subscriber\"\nstrategy = \"incremental\"\ncursor = \"updated_at\"\nchunk = 400\n"
               "lookback = \"0s\"\nsweep = \"0s\"\n" SUBSCRIBER_COLUMNS);
    portal_text("SELECT max(updated_at) FROM subscriber", newest, sizeof newest);
    pull_ok(f, 0, 0, &r);
    assert_string_equal(r.action, "snapshot");
    table_state(f, "subscriber", &st);
    assert_text_value(&st.mark_cursor, newest, "mark cursor after the snapshot");
    assert_null_value(&st.mark_key, "mark key after the snapshot");
    replay_table_free(&st);
    assert_same_rows(f, "subscriber", "1");

    snprintf(sql, sizeof sql, "SELECT count(*) FROM subscriber WHERE updated_at = '%s'", newest);
    long long again = portal_int(sql);
    pull_ok(f, 0, 0, &r);
    assert_string_equal(r.action, "incremental");
    assert_int_equal(r.rows, again);
    table_state(f, "subscriber", &st);
    assert_text_value(&st.mark_cursor, newest, "mark cursor");
    snprintf(sql, sizeof sql, "SELECT max(id) FROM subscriber WHERE updated_at = '%s'", newest);
    assert_int_value(&st.mark_key, portal_int(sql), "mark key");
    replay_table_free(&st);

    /* 900 rows changed, each at its own second: pages of 400, 400, 100 */
    portal_admin("/_fake/mutate", "{\"table\":\"subscriber\",\"updates\":600,\"inserts\":300,\"seed\":11}");
    uint64_t from = journal_writer_next_seq(f->st.jw);
    pull_ok(f, 0, 0, &r);
    assert_int_equal(r.rows, 900);
    assert_pages(f, from, JOURNAL_INCREMENTAL_PAGE, "subscriber", 900, 400);
    assert_same_rows(f, "subscriber", "1");
    portal_text("SELECT max(updated_at) FROM subscriber", newest, sizeof newest);
    table_state(f, "subscriber", &st);
    assert_text_value(&st.mark_cursor, newest, "mark cursor");
    snprintf(sql, sizeof sql, "SELECT max(id) FROM subscriber WHERE updated_at = '%s'", newest);
    assert_int_value(&st.mark_key, portal_int(sql), "mark key");
    replay_table_free(&st);

    pull_ok(f, 0, 0, &r);
    assert_int_equal(r.rows, 0);
}

/* Rows sharing one cursor value across page boundaries are read once each:
 * the rows that tie at the snapshot's mark, 150 rows written in one second,
 * and 35 more under a portal page cap. */
static void test_incremental_ties(void **state)
{
    struct fx *f = *state;
    struct pull_result r;
    struct replay_table st;
    char newest[64], sql[200];
    fx_open(f, "[[table]]\nname = \"tv_program\"\nstrategy = \"incremental\"\ncursor = \"updated_at\"\nchunk = 64\n"
               "lookback = \"0s\"\nsweep = \"0s\"\n" PROGRAM_COLUMNS);
    pull_ok(f, 0, 0, &r);
    assert_string_equal(r.action, "snapshot");
    portal_text("SELECT max(updated_at) FROM tv_program", newest, sizeof newest);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM tv_program WHERE updated_at = '%s'", newest);
    long long tie = portal_int(sql);
    uint64_t from = journal_writer_next_seq(f->st.jw);
    pull_ok(f, 0, 0, &r);
    assert_int_equal(r.rows, tie);
    assert_pages(f, from, JOURNAL_INCREMENTAL_PAGE, "tv_program", (uint64_t)tie, 64);
    assert_same_rows(f, "tv_program", "1");

    /* The mark after each pull: the newest cursor and the largest key that has it. */
    static const struct {
        const char *cap, *mutation;
        long long rows;
        uint32_t page;
    } rounds[] = {
        {NULL, "{\"table\":\"tv_program\",\"updates\":100,\"inserts\":50,\"same_ts\":true,\"seed\":5}", 150, 64},
        {"{\"page_cap\":10}", "{\"table\":\"tv_program\",\"updates\":25,\"inserts\":10,\"same_ts\":true,\"seed\":6}",
         35, 10},
    };
    for (size_t i = 0; i < sizeof rounds / sizeof rounds[0]; i++) {
        if (rounds[i].cap) portal_admin("/_fake/faults", rounds[i].cap);
        portal_admin("/_fake/mutate", rounds[i].mutation);
        from = journal_writer_next_seq(f->st.jw);
        pull_ok(f, 0, 0, &r);
        assert_int_equal(r.rows, rounds[i].rows);
        assert_pages(f, from, JOURNAL_INCREMENTAL_PAGE, "tv_program", (uint64_t)rounds[i].rows, rounds[i].page);
        assert_same_rows(f, "tv_program", "1");
        portal_text("SELECT max(updated_at) FROM tv_program", newest, sizeof newest);
        table_state(f, "tv_program", &st);
        assert_text_value(&st.mark_cursor, newest, "mark cursor");
        snprintf(sql, sizeof sql, "SELECT max(id) FROM tv_program WHERE updated_at = '%s'", newest);
        assert_int_value(&st.mark_key, portal_int(sql), "mark key");
        replay_table_free(&st);
        pull_ok(f, 0, 0, &r);
        assert_int_equal(r.rows, 0);
    }
}

/* Incremental pulls never see a deletion; the sweep pages through every key
 * and journals the keys gone from the portal, wherever they sit in its pages:
 * first and last key of a page, first of the next, the table's last. */
static void test_sweep_finds_deletions(void **state)
{
    struct fx *f = *state;
    struct pull_result r;
    fx_open(f, "[[table]]\nname = \"subscriber\"\nstrategy = \"incremental\"\ncursor = \"updated_at\"\nchunk = 1000\n"
               "interval = \"1ms\"\nsweep = \"1ms\"\n" SUBSCRIBER_COLUMNS);
    pull_ok(f, 0, 0, &r);
    assert_string_equal(r.action, "snapshot");
    long long n = portal_int("SELECT count(*) FROM subscriber");
    assert_true(n > 3000);
    long long at[] = {0, 999, 1000, 2500, n - 1};
    struct buf q = {0};
    buf_puts(&q, "{\"from\":\"subscriber\",\"where\":{\"in\":[\"id\",[");
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++)
        buf_printf(&q, "%s%lld", i ? "," : "", portal_id_at("subscriber", at[i]));
    buf_puts(&q, "]]}}");
    portal_write(f, "delete", q.p);
    buf_free(&q);
    assert_int_equal(portal_int("SELECT count(*) FROM subscriber"), n - 5);

    uint64_t from = journal_writer_next_seq(f->st.jw);
    pull_ok(f, 0, 0, &r);
    assert_string_equal(r.action, "incremental+sweep");
    assert_int_equal(r.deleted, 5);
    uint32_t keys[16];
    int records = journal_pages(f, from, JOURNAL_DELETIONS, "subscriber", keys, 16);
    uint32_t total = 0;
    for (int i = 0; i < records && i < 16; i++) total += keys[i];
    assert_int_equal(total, 5);
    assert_same_rows(f, "subscriber", "1");

    pull_ok(f, 0, 0, &r);
    assert_string_equal(r.action, "incremental+sweep");
    assert_int_equal(r.deleted, 0);
}

/* ---- on_demand -------------------------------------------------------------------------- */

/* Nothing is pulled ahead; a lookup fetches the rows it names (and no mark
 * moves); pull_keys reads given keys again, dropping the ones gone. */
static void test_on_demand_lookup(void **state)
{
    struct fx *f = *state;
    struct pull_result r;
    struct replay_table st;
    struct buf keys = {0};
    char err[512], where[100], value[32], q[300];
    uint64_t found;
    fx_open(f, "[[table]]\nname = \"terminal\"\nstrategy = \"on_demand\"\nchunk = 1000\n" TERMINAL_COLUMNS);
    uint64_t from = journal_writer_next_seq(f->st.jw);
    pull_ok(f, 0, 0, &r);
    assert_string_equal(r.action, "on demand");
    assert_int_equal(r.rows, 0);
    assert_int_equal(journal_writer_next_seq(f->st.jw), from);   /* not a record */

    long long sub = portal_int("SELECT subscriber_id FROM terminal GROUP BY subscriber_id HAVING count(*) >= 3 "
                               "ORDER BY subscriber_id LIMIT 1");
    snprintf(where, sizeof where, "subscriber_id = %lld", sub);
    snprintf(value, sizeof value, "%lld", sub);
    snprintf(q, sizeof q, "SELECT count(*) FROM terminal WHERE %s", where);
    long long n = portal_int(q);
    const struct config_table *t = &f->cfg.tables[0];
    assert_int_equal(pull_get(&f->c, t, "subscriber_id", value, &found, &keys, err, sizeof err), 0);
    assert_int_equal(found, n);
    assert_same_rows(f, "terminal", where);
    assert_int_equal(cache_int(f, "SELECT count(*) FROM terminal"), n);   /* and nothing else */
    snprintf(q, sizeof q, "SELECT '[' || group_concat(id, ',') || ']' FROM (SELECT id FROM terminal WHERE %s "
                          "ORDER BY id)", where);
    char want[256];
    portal_text(q, want, sizeof want);
    assert_string_equal(keys.p, want);
    table_state(f, "terminal", &st);
    assert_null_value(&st.mark_cursor, "mark cursor");
    assert_null_value(&st.mark_key, "mark key");
    replay_table_free(&st);

    /* a miss finds nothing; a value the column cannot hold is not asked about */
    assert_int_equal(pull_get(&f->c, t, "id", "1", &found, NULL, err, sizeof err), 0);
    assert_int_equal(found, 0);
    assert_int_equal(pull_get(&f->c, t, "id", "abc", &found, NULL, err, sizeof err), PULL_EUSAGE);
    assert_contains(err, "terminal.id holds integers");
    assert_int_equal(pull_get(&f->c, t, "nosuch", "1", &found, NULL, err, sizeof err), PULL_EUSAGE);
    assert_contains(err, "has no column \"nosuch\"");

    /* one of them changes, one goes: pull_keys brings both */
    snprintf(q, sizeof q, "SELECT min(id) FROM terminal WHERE %s", where);
    long long changed = portal_int(q);
    snprintf(q, sizeof q, "SELECT max(id) FROM terminal WHERE %s", where);
    long long gone = portal_int(q);
    snprintf(q, sizeof q, "{\"table\":\"terminal\",\"set\":{\"model\":\"changed by test_pull\"},"
                          "\"where\":{\"eq\":[\"id\",%lld]}}", changed);
    portal_write(f, "update", q);
    snprintf(q, sizeof q, "{\"from\":\"terminal\",\"where\":{\"eq\":[\"id\",%lld]}}", gone);
    portal_write(f, "delete", q);
    snprintf(q, sizeof q, "[%lld,%lld]", changed, gone);
    assert_int_equal(pull_keys(&f->c, t, q, NULL, err, sizeof err), 0);
    assert_same_rows(f, "terminal", where);
    assert_int_equal(cache_int(f, "SELECT count(*) FROM terminal"), n - 1);
    buf_free(&keys);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_snapshot_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_page_cap_below_chunk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_incremental_after_mark, setup, teardown),
        cmocka_unit_test_setup_teardown(test_incremental_ties, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep_finds_deletions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_on_demand_lookup, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
