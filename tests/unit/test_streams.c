/* test_streams.c — agent/pull/streams.c: snapshots over an integer key read
 * by several streams over key ranges at once, and long catch-ups read the
 * same way, against the fake portal.
 *
 * Group setup: a fake portal keeping its data in a file (600 tv_program rows,
 * the other tables at their generated sizes), stopped once to add tables whose
 * keys are hard on a range planner (add_keyed_tables: sparse, beyond 2^53,
 * negative down to INT64_MIN, skewed, empty, one row) and started again on
 * the same file. The fixture is tests/unit/pull_fixture.h.
 *
 * What "exactly once" means here (assert_exactly_once): the SNAPSHOT_RANGE
 * records of the snapshot hold every portal key once — their rows sum to the
 * portal's count, no key twice, each key inside its own record's (FROM, TO],
 * the intervals pairwise disjoint — and the cache equals the portal. Timing
 * between a pull and the portal's changes is by the portal's request counts
 * (GET /_fake/stats), never by sleeping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "agent/base/log.h"
#include "tests/unit/pull_fixture.h"

#define KEYED_COLUMNS "columns = [\"id\", \"name\", \"n\"]\n"

/* ---- the portal's extra tables -------------------------------------------------------- */

static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void exec_sql(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "%s: %s\n", sql, err);
        sqlite3_free(err);
        abort();
    }
}

/* Keys into table (ignoring repeats): n drawn by lo + mix % span (span 0: the
 * whole range above lo), then the fixed ones. */
static void add_keys(sqlite3 *db, const char *table, uint64_t seed, int n, int64_t lo, uint64_t span,
                     const int64_t *fixed, int nfixed)
{
    sqlite3_stmt *q;
    char sql[200];
    snprintf(sql, sizeof sql, "INSERT OR IGNORE INTO %s (id, name, n) VALUES (?, 'k' || ?1, ?1 %% 1000)", table);
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK) abort();
    for (int i = 0; i < n + nfixed; i++) {
        uint64_t width = span ? span : (uint64_t)INT64_MAX - (uint64_t)lo;
        int64_t k = i < n ? (int64_t)((uint64_t)lo + mix(&seed) % width) : fixed[i - n];
        sqlite3_bind_int64(q, 1, k);
        if (sqlite3_step(q) != SQLITE_DONE) abort();
        sqlite3_reset(q);
    }
    sqlite3_finalize(q);
}

/* The tables the planner finds hard, added to the portal's file. */
static void add_keyed_tables(const char *path)
{
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK) abort();
    sqlite3_busy_timeout(db, 10000);
    static const char *const names[] = {"k_sparse", "k_huge", "k_neg", "k_skew", "k_empty", "k_one"};
    char sql[200];
    exec_sql(db, "BEGIN");
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(sql, sizeof sql, "CREATE TABLE %s (id INTEGER PRIMARY KEY, name TEXT NOT NULL, n INTEGER)", names[i]);
        exec_sql(db, sql);
    }
    const int64_t two53 = INT64_C(1) << 53;
    add_keys(db, "k_sparse", 7, 300, 1, UINT64_C(1000000000000), NULL, 0);
    const int64_t huge[] = {two53 + 1, two53 + 2, INT64_MAX - 1, INT64_MAX};
    add_keys(db, "k_huge", 8, 200, two53 + 3, 0, huge, 4);
    const int64_t neg[] = {INT64_MIN, INT64_MIN + 1, INT64_MIN + 2, -1};
    add_keys(db, "k_neg", 9, 200, INT64_MIN + 3, (UINT64_C(1) << 63) - 8, neg, 4);   /* INT64_MIN + 3 .. -6 */
    const int64_t far[] = {-INT64_C(1000000000000000), INT64_C(1000000000000000), INT64_C(4000000000000000000),
                           -INT64_C(4000000000000000000), 77777777};
    add_keys(db, "k_skew", 10, 1000, 1000, 250, far, 5);   /* 1000..1249 dense, 5 far away */
    const int64_t one[] = {42};
    add_keys(db, "k_one", 11, 0, 0, 1, one, 1);
    exec_sql(db, "COMMIT");
    sqlite3_close(db);
}

static int group_setup(void **state)
{
    log_init(LOG_ERROR, LOG_TEXT);
    setenv("IA_PULL_PW", "secret", 1);
    const char *args[] = {"--rows", "600", NULL};
    if (th_site_start(&g_site, "test_streams", NULL, args) != 0) return -1;
    /* The portal's catalog is read at its start: add the tables, start it again. */
    tu_portal_stop(&g_site.portal);
    add_keyed_tables(g_site.portal_db);
    const char *again[] = {"--db", g_site.portal_db, NULL};
    return tu_portal_start(&g_site.portal, again);
}

static int group_teardown(void **state)
{
    th_site_stop(&g_site);
    return 0;
}

/* ---- the portal's request counts, and changes made while a pull runs ------------------- */

/* A number from GET /_fake/stats ("selects", "faults", ...) into *v; 0 or -1.
 * No cmocka: the trigger thread calls it too. */
static int stat_get(const char *name, uint64_t *v)
{
    char url[512], key[64], *resp = NULL;
    snprintf(url, sizeof url, "%s/_fake/stats", g_site.portal.url);
    snprintf(key, sizeof key, "\"%s\":", name);
    const char *p = tu_http(url, NULL, &resp) == 200 ? strstr(resp, key) : NULL;
    if (p) *v = strtoull(p + strlen(key), NULL, 10);
    free(resp);
    return p ? 0 : -1;
}

static uint64_t portal_stat(const char *name)
{
    uint64_t v;
    if (stat_get(name, &v) != 0) fail_msg("GET /_fake/stats: no %s", name);
    return v;
}

/* Admin requests posted when the portal has answered so many more selects
 * than at trigger_start, on a thread of its own (the pull runs on the test's). */
struct step {
    uint64_t after;                  /* selects since the start */
    const char *path, *body;
};
struct trigger {
    const struct step *steps;
    int nsteps;
    uint64_t base;
    pthread_t th;
    atomic_int stop;                 /* the pull is over: no more waiting */
    atomic_int done;                 /* steps posted */
    atomic_int refused;              /* a step the portal refused */
};

static void *trigger_main(void *arg)
{
    struct trigger *t = arg;
    for (int i = 0; i < t->nsteps; i++) {
        /* Polling the portal's count; each poll is a request, the pause only spaces them. */
        uint64_t selects = 0;
        while (!atomic_load(&t->stop) &&
               (stat_get("selects", &selects) != 0 || selects < t->base + t->steps[i].after)) {
            struct timespec ts = {0, 2000000};
            nanosleep(&ts, NULL);
        }
        if (atomic_load(&t->stop)) break;
        if (tu_admin(&g_site.portal, t->steps[i].path, t->steps[i].body) != 200) atomic_store(&t->refused, 1);
        atomic_fetch_add(&t->done, 1);
    }
    return NULL;
}

static void trigger_start(struct trigger *t, const struct step *steps, int n)
{
    memset(t, 0, sizeof *t);
    t->steps = steps;
    t->nsteps = n;
    t->base = portal_stat("selects");
    if (pthread_create(&t->th, NULL, trigger_main, t) != 0) fail_msg("cannot start a thread");
}

/* Stop and join; the steps posted before the pull ended. */
static int trigger_stop(struct trigger *t)
{
    int done = atomic_load(&t->done);
    atomic_store(&t->stop, 1);
    pthread_join(t->th, NULL);
    assert_false(atomic_load(&t->refused));
    return done;
}

/* ---- the journal's SNAPSHOT_RANGE records ----------------------------------------------- */

struct interval {
    int lo_inf, hi_inf;
    int64_t lo, hi;                  /* (lo, hi] */
};
struct ranges {
    struct interval *iv;
    size_t niv;
    int64_t *keys;                   /* every row's key, in record order */
    size_t nkeys;
    uint64_t rows;                   /* the records' row counts summed */
};

static void ranges_free(struct ranges *g)
{
    free(g->iv);
    free(g->keys);
    memset(g, 0, sizeof *g);
}

static int key_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int iv_in(const struct interval *v, int64_t k)
{
    return (v->lo_inf || k > v->lo) && (v->hi_inf || k <= v->hi);
}

/* table's SNAPSHOT_RANGE records from seq `from` on (key: column 0), each row's
 * key checked to lie in its own record's interval. */
static void read_ranges(struct fx *f, uint64_t from, const char *table, struct ranges *g)
{
    struct journal_reader *rd;
    struct journal_record rec;
    char err[512];
    int got;
    memset(g, 0, sizeof *g);
    if (journal_reader_open(f->st.journal_dir, from, &rd, err, sizeof err) != 0) fail_msg("journal: %s", err);
    while ((got = journal_reader_next(rd, JOURNAL_SEQ_MAX, &rec, err, sizeof err)) == 1) {
        if (rec.type != JOURNAL_SNAPSHOT_RANGE || strcmp(rec.table, table) != 0) continue;
        struct journal_page pg;
        if (journal_decode_page(rec.type, rec.payload, rec.len, &pg, err, sizeof err) != 0) fail_msg("range: %s", err);
        struct interval v = {.lo_inf = pg.range_from.type == JOURNAL_NULL, .hi_inf = pg.range_to.type == JOURNAL_NULL,
                             .lo = pg.range_from.i, .hi = pg.range_to.i};
        g->iv = realloc(g->iv, (g->niv + 1) * sizeof *g->iv);
        g->iv[g->niv++] = v;
        g->rows += pg.rows.nrows;
        g->keys = realloc(g->keys, (g->nkeys + pg.rows.nrows) * sizeof *g->keys);
        struct journal_value vals[64];
        assert_true(pg.rows.ncols <= 64);
        while ((got = journal_rows_next(&pg.rows, vals, err, sizeof err)) == 1) {
            if (vals[0].type != JOURNAL_INT) fail_msg("%s: a key of type %d", table, (int)vals[0].type);
            if (!iv_in(&v, vals[0].i))
                fail_msg("%s: key %lld outside its record's (%s%lld, %s%lld]", table, (long long)vals[0].i,
                         v.lo_inf ? "-inf " : "", (long long)v.lo, v.hi_inf ? "+inf " : "", (long long)v.hi);
            g->keys[g->nkeys++] = vals[0].i;
        }
        if (got < 0) fail_msg("rows: %s", err);
    }
    journal_reader_close(rd);
    if (got < 0) fail_msg("journal: %s", err);
    assert_int_equal(g->nkeys, g->rows);
    if (g->nkeys) qsort(g->keys, g->nkeys, sizeof *g->keys, key_cmp);
}

/* No key twice among the records, and no two intervals overlap. */
static void assert_disjoint(const struct ranges *g, const char *table)
{
    for (size_t i = 1; i < g->nkeys; i++)
        if (g->keys[i] == g->keys[i - 1]) fail_msg("%s: key %lld journaled twice", table, (long long)g->keys[i]);
    for (size_t i = 0; i < g->niv; i++)
        for (size_t j = i + 1; j < g->niv; j++) {
            const struct interval *a = &g->iv[i], *b = &g->iv[j];
            /* (a.lo, a.hi] and (b.lo, b.hi] meet when each starts below the other's end */
            int a_below_b = a->lo_inf || b->hi_inf || a->lo < b->hi;
            int b_below_a = b->lo_inf || a->hi_inf || b->lo < a->hi;
            if (a_below_b && b_below_a)
                fail_msg("%s: intervals (%lld, %lld] and (%lld, %lld] overlap", table, (long long)a->lo,
                         (long long)a->hi, (long long)b->lo, (long long)b->hi);
        }
}

/* The portal's keys of table, sorted; *n gets how many. */
static int64_t *portal_keys(const char *table, size_t *n)
{
    sqlite3 *db;
    sqlite3_stmt *q;
    char sql[200];
    size_t cap = 64;
    int64_t *k = malloc(cap * sizeof *k);
    *n = 0;
    snprintf(sql, sizeof sql, "SELECT id FROM \"%s\" ORDER BY id", table);
    if (sqlite3_open_v2(g_site.portal_db, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
        fail_msg("%s on the portal: %s", sql, sqlite3_errmsg(db));
    while (sqlite3_step(q) == SQLITE_ROW) {
        if (*n == cap) k = realloc(k, (cap *= 2) * sizeof *k);
        k[(*n)++] = sqlite3_column_int64(q, 0);
    }
    sqlite3_finalize(q);
    sqlite3_close(db);
    return k;
}

/* Every portal key of table journaled once, inside exactly one interval, from
 * seq `from` on; the cache equals the portal. The number of records. */
static size_t assert_exactly_once(struct fx *f, uint64_t from, const char *table)
{
    struct ranges g;
    size_t n;
    int64_t *want = portal_keys(table, &n);
    read_ranges(f, from, table, &g);
    assert_disjoint(&g, table);
    if (g.rows != n) fail_msg("%s: %llu rows in SNAPSHOT_RANGE records, %zu on the portal", table,
                              (unsigned long long)g.rows, n);
    for (size_t i = 0; i < n; i++) {
        if (g.keys[i] != want[i])
            fail_msg("%s: the %zu-th key journaled is %lld, the portal's %lld", table, i, (long long)g.keys[i],
                     (long long)want[i]);
        int in = 0;
        for (size_t j = 0; j < g.niv; j++) in += iv_in(&g.iv[j], want[i]);
        if (in != 1) fail_msg("%s: key %lld in %d intervals", table, (long long)want[i], in);
    }
    size_t records = g.niv;
    free(want);
    ranges_free(&g);
    assert_same_rows(f, table, "1");
    return records;
}

/* The snapshot's END applied: nothing pending, no coverage left. */
static void assert_snapshot_over(struct fx *f, const char *table, long long rows)
{
    struct replay_table st;
    table_state(f, table, &st);
    assert_true(st.live);
    assert_int_equal(st.pending_id, 0);
    assert_int_equal(st.nranges, 0);
    assert_int_equal(st.rows, rows);
    replay_table_free(&st);
}

/* A full table of KEYED_COLUMNS, in chunks of `chunk`, `streams` streams. */
static void keyed_table(struct buf *b, const char *name, int chunk, int streams)
{
    buf_printf(b, "[[table]]\nname = \"%s\"\nstrategy = \"full\"\nchunk = %d\nstreams = %d\n" KEYED_COLUMNS, name,
               chunk, streams);
}

/* ---- a: exactly once, whatever the keys ---------------------------------------------------- */

/* Sparse random keys, keys beyond 2^53 up to INT64_MAX, negative keys down to
 * INT64_MIN, a dense narrow range with a few keys far away, an empty table and
 * a one-row table: each read by 4-8 streams in pages of 7, every key once. */
static void test_exactly_once(void **state)
{
    struct fx *f = *state;
    struct pull_result r;
    static const char *const names[] = {"k_sparse", "k_huge", "k_neg", "k_skew", "k_empty", "k_one"};
    const int nt = (int)(sizeof names / sizeof names[0]);
    struct buf t = {0};
    for (int i = 0; i < nt; i++) keyed_table(&t, names[i], 7, 4 + i % 5);
    fx_open(f, t.p);
    buf_free(&t);
    for (int i = 0; i < nt; i++) {
        char sql[100];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", names[i]);
        long long n = portal_int(sql);
        uint64_t from = journal_writer_next_seq(f->st.jw);
        pull_ok(f, i, 0, &r);
        assert_string_equal(r.action, "snapshot");
        assert_true(r.snapshot_done);
        if ((long long)r.rows != n) fail_msg("%s: %llu rows pulled, %lld on the portal", names[i],
                                             (unsigned long long)r.rows, n);
        size_t records = assert_exactly_once(f, from, names[i]);
        if (n > 7 && records < 2) fail_msg("%s: %zu SNAPSHOT_RANGE records for %lld rows", names[i], records, n);
        assert_snapshot_over(f, names[i], n);
    }
}

/* ---- b: rows inserted and deleted while the snapshot runs ---------------------------------- */

static const char program_incremental[] =
    "[[table]]\nname = \"tv_program\"\nstrategy = \"incremental\"\ncursor = \"updated_at\"\nchunk = 7\n"
    "streams = 4\nlookback = \"0s\"\ninterval = \"1ms\"\nsweep = \"1ms\"\n" PROGRAM_COLUMNS;

/* Three rounds of inserts, updates and deletes land while four streams read:
 * every key the portal had both before and after is cached, no key is
 * journaled twice, and the next pull (incremental and sweep) converges. */
static void test_changes_during_snapshot(void **state)
{
    struct fx *f = *state;
    struct pull_result r;
    fx_open(f, program_incremental);
    size_t nbefore, nafter;
    int64_t *before = portal_keys("tv_program", &nbefore);
    portal_admin("/_fake/faults", "{\"latency_ms\":20}");
    static const struct step steps[] = {
        {8, "/_fake/mutate", "{\"table\":\"tv_program\",\"inserts\":20,\"updates\":10,\"deletes\":20,\"seed\":31}"},
        {20, "/_fake/mutate", "{\"table\":\"tv_program\",\"inserts\":20,\"updates\":10,\"deletes\":20,\"seed\":32}"},
        {32, "/_fake/mutate", "{\"table\":\"tv_program\",\"inserts\":20,\"updates\":10,\"deletes\":20,\"seed\":33}"},
    };
    struct trigger tr;
    uint64_t from = journal_writer_next_seq(f->st.jw);
    trigger_start(&tr, steps, 3);
    int rc = pull_table(&f->c, &f->cfg.tables[0], 0, &r);
    int during = trigger_stop(&tr);
    portal_admin("/_fake/faults", "{\"latency_ms\":0}");
    if (rc != 0) fail_msg("snapshot: %s", r.error);
    assert_string_equal(r.action, "snapshot");
    assert_int_equal(during, 3);                      /* the changes came while it ran */

    struct ranges g;
    read_ranges(f, from, "tv_program", &g);
    assert_disjoint(&g, "tv_program");
    int64_t *after = portal_keys("tv_program", &nafter);
    size_t kept = 0;
    for (size_t i = 0, j = 0; i < nbefore; i++) {     /* before ∩ after, both sorted */
        while (j < nafter && after[j] < before[i]) j++;
        if (j == nafter || after[j] != before[i]) continue;
        kept++;
        if (!bsearch(&before[i], g.keys, g.nkeys, sizeof *g.keys, key_cmp))
            fail_msg("key %lld, on the portal throughout, was not journaled", (long long)before[i]);
        char sql[100];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM tv_program WHERE id = %lld", (long long)before[i]);
        if (cache_int(f, sql) != 1) fail_msg("key %lld, on the portal throughout, is not cached", (long long)before[i]);
    }
    assert_true(kept > nbefore - 70);
    ranges_free(&g);
    free(before);
    free(after);
    assert_snapshot_over(f, "tv_program", (long long)r.rows);

    pull_ok(f, 0, 0, &r);
    assert_string_equal(r.action, "incremental+sweep");
    assert_same_rows(f, "tv_program", "1");
}

/* ---- c: resume ----------------------------------------------------------------------------- */

/* The 50th request of a snapshot fails (no retries): what was journaled stays
 * in the coverage and the live table keeps the last snapshot; the next pull
 * reads only the gaps, so across both runs each key is journaled once. */
static void test_resume_reads_the_gaps(void **state)
{
    struct fx *f = *state;
    struct pull_result r;
    struct replay_table st;
    struct buf t = {0};
    keyed_table(&t, "k_sparse", 7, 4);
    fx_open(f, t.p);
    buf_free(&t);
    long long n = portal_int("SELECT count(*) FROM k_sparse");
    pull_ok(f, 0, 0, &r);
    assert_same_rows(f, "k_sparse", "1");

    long long id = portal_int("SELECT id FROM k_sparse ORDER BY id LIMIT 1 OFFSET 150");
    char q[300], sql[200];
    snprintf(q, sizeof q, "{\"table\":\"k_sparse\",\"set\":{\"name\":\"changed before the cut\"},"
                          "\"where\":{\"eq\":[\"id\",%lld]}}", id);
    portal_write(f, "update", q);
    /* Learn the columns, count, min/max, four stream logins, then 42 pages of
     * about 70 (a quarter of them the empty page ending a range), then a 500:
     * more pages than the streams and the queue can hold unjournaled. */
    struct buf queue = {0};
    buf_puts(&queue, "{\"queue\":[");
    for (int i = 0; i < 49; i++) buf_puts(&queue, "\"ok\",");
    buf_puts(&queue, "\"500\"]}");
    portal_admin("/_fake/faults", queue.p);
    buf_free(&queue);
    uint64_t from = journal_writer_next_seq(f->st.jw);
    assert_int_equal(pull_table(&f->c, &f->cfg.tables[0], 0, &r), -1);
    assert_int_equal(r.remote_status, REMOTE_ETRANSPORT);
    assert_false(r.snapshot_done);
    table_state(f, "k_sparse", &st);
    assert_true(st.pending_id != 0);
    assert_true(st.nranges > 0);
    assert_true(st.pending_rows > 0 && st.pending_rows < (uint64_t)n);
    uint64_t pending = st.pending_id, pending_rows = st.pending_rows;
    replay_table_free(&st);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM k_sparse WHERE id = %lld AND name = 'k%lld'", id, id);
    assert_int_equal(cache_int(f, sql), 1);               /* the live table is untouched */
    assert_int_equal(cache_int(f, "SELECT count(*) FROM k_sparse"), n);

    pull_ok(f, 0, 0, &r);
    assert_string_equal(r.action, "resumed snapshot");
    assert_true(r.snapshot_done);
    assert_int_equal(r.rows, (uint64_t)n - pending_rows);  /* only the gaps */
    assert_exactly_once(f, from, "k_sparse");             /* both runs' records */
    table_state(f, "k_sparse", &st);
    assert_int_equal(st.snapshot_id, pending);
    replay_table_free(&st);
    assert_snapshot_over(f, "k_sparse", n);
}

/* ---- d, e: faults and page caps ------------------------------------------------------------- */

/* Errors, resets and truncated replies, some at random and one of each
 * queued where the streams start: with retries the snapshot is exact. */
static void test_faults_retried(void **state)
{
    struct fx *f = *state;
    struct pull_result r;
    struct buf t = {0};
    keyed_table(&t, "k_sparse", 7, 4);
    keyed_table(&t, "k_skew", 7, 6);
    fx_open_with(f, "retries = 3", t.p);
    buf_free(&t);
    for (int i = 0; i < 2; i++) {
        const char *name = f->cfg.tables[i].name;
        uint64_t faults = portal_stat("faults");
        portal_admin("/_fake/faults", "{\"queue\":[\"ok\",\"ok\",\"ok\",\"ok\",\"500\",\"ok\",\"reset\",\"ok\","
                                      "\"truncate\"],\"error_rate\":0.015,\"reset_rate\":0.015,"
                                      "\"truncate_rate\":0.015}");
        uint64_t from = journal_writer_next_seq(f->st.jw);
        int rc = pull_table(&f->c, &f->cfg.tables[i], 0, &r);
        portal_admin("/_fake/faults", "{\"error_rate\":0,\"reset_rate\":0,\"truncate_rate\":0}");
        if (rc != 0) fail_msg("%s: %s", name, r.error);
        assert_true(portal_stat("faults") >= faults + 3);   /* so the remote retried */
        char sql[100];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", name);
        assert_int_equal(r.rows, portal_int(sql));
        assert_exactly_once(f, from, name);
        assert_snapshot_over(f, name, portal_int(sql));
    }
}

/* The portal caps pages at 7 rows for a chunk of 20: a short page is not a
 * range's end, only an empty one is. */
static void test_page_cap_below_chunk(void **state)
{
    struct fx *f = *state;
    struct pull_result r;
    struct buf t = {0};
    keyed_table(&t, "k_sparse", 20, 4);
    keyed_table(&t, "k_neg", 20, 4);
    fx_open(f, t.p);
    buf_free(&t);
    portal_admin("/_fake/faults", "{\"page_cap\":7}");
    for (int i = 0; i < 2; i++) {
        uint64_t from = journal_writer_next_seq(f->st.jw);
        pull_ok(f, i, 0, &r);
        assert_exactly_once(f, from, f->cfg.tables[i].name);
        uint32_t rows[512];
        int n = journal_pages(f, from, JOURNAL_SNAPSHOT_RANGE, f->cfg.tables[i].name, rows, 512);
        /* A record gathers a stream's pages until it holds 2 chunks' rows
         * (streams.c RECORD_PAGES): short pages make it no longer than that. */
        for (int k = 0; k < n && k < 512; k++) assert_true(rows[k] < 2 * 20 + 7);
    }
}

/* ---- f: catch-up ---------------------------------------------------------------------------- */

/* INCREMENTAL_PAGE records of table from `from` on: those with a NULL mark
 * (*null_rows: their rows) must all come before the first one with a mark,
 * which gets *first_mark (its mark cursor, "" when none), *first_key (its mark
 * key) and *first_rows. */
static int catchup_records(struct fx *f, uint64_t from, const char *table, uint64_t *null_rows, char *first_mark,
                           size_t n, int64_t *first_key, uint32_t *first_rows)
{
    struct journal_reader *rd;
    struct journal_record rec;
    char err[512];
    int got, nulls = 0, marked = 0;
    *null_rows = 0;
    first_mark[0] = '\0';
    *first_rows = 0;
    *first_key = 0;
    if (journal_reader_open(f->st.journal_dir, from, &rd, err, sizeof err) != 0) fail_msg("journal: %s", err);
    while ((got = journal_reader_next(rd, JOURNAL_SEQ_MAX, &rec, err, sizeof err)) == 1) {
        if (rec.type != JOURNAL_INCREMENTAL_PAGE || strcmp(rec.table, table) != 0) continue;
        struct journal_page pg;
        if (journal_decode_page(rec.type, rec.payload, rec.len, &pg, err, sizeof err) != 0) fail_msg("page: %s", err);
        if (pg.mark_cursor.type == JOURNAL_NULL) {
            if (marked) fail_msg("%s: a record with no mark after one with a mark", table);
            nulls++;
            *null_rows += pg.rows.nrows;
        } else if (!marked++) {
            snprintf(first_mark, n, "%.*s", (int)pg.mark_cursor.n, pg.mark_cursor.s);
            *first_rows = pg.rows.nrows;
            if (pg.mark_key.type != JOURNAL_INT) fail_msg("%s: the first mark has no key", table);
            *first_key = pg.mark_key.i;
        }
    }
    journal_reader_close(rd);
    if (got < 0) fail_msg("journal: %s", err);
    return nulls;
}

/* The mark is the portal's newest cursor and the largest key that has it. */
static void assert_mark_newest(struct fx *f)
{
    struct replay_table st;
    char newest[64], sql[200], mark[64];
    portal_text("SELECT max(updated_at) FROM tv_program", newest, sizeof newest);
    snprintf(sql, sizeof sql, "SELECT max(id) FROM tv_program WHERE updated_at = '%s'", newest);
    long long key = portal_int(sql);
    table_state(f, "tv_program", &st);
    if (st.mark_cursor.type != JOURNAL_TEXT) fail_msg("no mark cursor");
    snprintf(mark, sizeof mark, "%.*s", (int)st.mark_cursor.n, st.mark_cursor.s);
    assert_string_equal(mark, newest);
    assert_int_equal(st.mark_key.type, JOURNAL_INT);
    assert_int_equal(st.mark_key.i, key);
    replay_table_free(&st);
}

static const char program_catchup[] =
    "[[table]]\nname = \"tv_program\"\nstrategy = \"incremental\"\ncursor = \"updated_at\"\nchunk = 20\n"
    "streams = 4\nlookback = \"0s\"\nsweep = \"0s\"\n" PROGRAM_COLUMNS;

/* A backlog of more than 4 pages is read by streams as pages that leave the
 * mark, then one record moves it to the newest cursor; cut short, the mark
 * stays where it was and a rerun converges. */
static void test_catchup(void **state)
{
    struct fx *f = *state;
    struct pull_result r;
    struct replay_table st;
    char mark[64], sql[200], old[64];
    uint64_t null_rows;
    uint32_t first_rows;
    fx_open(f, program_catchup);
    pull_ok(f, 0, 0, &r);
    assert_string_equal(r.action, "snapshot");

    table_state(f, "tv_program", &st);
    snprintf(old, sizeof old, "%.*s", (int)st.mark_cursor.n, st.mark_cursor.s);
    replay_table_free(&st);
    portal_admin("/_fake/mutate", "{\"table\":\"tv_program\",\"updates\":150,\"inserts\":60,\"seed\":21}");
    snprintf(sql, sizeof sql, "SELECT count(*) FROM tv_program WHERE updated_at >= '%s'", old);
    long long backlog = portal_int(sql);
    assert_true(backlog > 4 * 20);
    char newest[64];
    portal_text("SELECT max(updated_at) FROM tv_program", newest, sizeof newest);
    uint64_t from = journal_writer_next_seq(f->st.jw);
    pull_ok(f, 0, 0, &r);
    assert_string_equal(r.action, "incremental");
    int64_t first_key;
    int nulls = catchup_records(f, from, "tv_program", &null_rows, mark, sizeof mark, &first_key, &first_rows);
    assert_true(nulls > 4);                               /* read in pages of 20 */
    assert_int_equal(null_rows, backlog);
    assert_string_equal(mark, newest);                    /* the record moving the mark: to the newest */
    snprintf(sql, sizeof sql, "SELECT max(id) FROM tv_program WHERE updated_at = '%s'", newest);
    assert_int_equal(first_key, portal_int(sql));         /* cursor and its largest key */
    assert_int_equal(first_rows, 0);
    assert_same_rows(f, "tv_program", "1");
    assert_mark_newest(f);

    /* Cut short: the 36th request of about 57 fails, after the streams read
     * more pages than they and the queue can hold unjournaled. */
    table_state(f, "tv_program", &st);
    snprintf(old, sizeof old, "%.*s", (int)st.mark_cursor.n, st.mark_cursor.s);
    int64_t old_key = st.mark_key.i;
    replay_table_free(&st);
    portal_admin("/_fake/mutate", "{\"table\":\"tv_program\",\"updates\":300,\"inserts\":100,\"seed\":22}");
    struct buf queue = {0};
    buf_puts(&queue, "{\"queue\":[");
    for (int i = 0; i < 35; i++) buf_puts(&queue, "\"ok\",");
    buf_puts(&queue, "\"500\"]}");
    portal_admin("/_fake/faults", queue.p);
    buf_free(&queue);
    from = journal_writer_next_seq(f->st.jw);
    assert_int_equal(pull_table(&f->c, &f->cfg.tables[0], 0, &r), -1);
    nulls = catchup_records(f, from, "tv_program", &null_rows, mark, sizeof mark, &first_key, &first_rows);
    assert_true(nulls > 0);                               /* it failed inside the catch-up */
    assert_string_equal(mark, "");                        /* and moved no mark */
    table_state(f, "tv_program", &st);
    snprintf(mark, sizeof mark, "%.*s", (int)st.mark_cursor.n, st.mark_cursor.s);
    assert_string_equal(mark, old);
    assert_int_equal(st.mark_key.i, old_key);
    replay_table_free(&st);

    pull_ok(f, 0, 0, &r);
    assert_string_equal(r.action, "incremental");
    assert_same_rows(f, "tv_program", "1");
    assert_mark_newest(f);
    pull_ok(f, 0, 0, &r);                                 /* and nothing is left behind */
    assert_same_rows(f, "tv_program", "1");
}

/* ---- g: a forbidden table ------------------------------------------------------------------- */

/* A table the portal forbids fails with r.forbidden, before its snapshot
 * starts or while its streams read; another table of the same run is pulled
 * completely. */
static void test_forbidden_table(void **state)
{
    struct fx *f = *state;
    struct pull_result r;
    struct replay_table st;
    struct buf t = {0};
    keyed_table(&t, "k_sparse", 7, 4);
    keyed_table(&t, "k_skew", 7, 4);
    fx_open(f, t.p);
    buf_free(&t);

    portal_admin("/_fake/faults", "{\"forbid\":[\"k_sparse\"]}");
    assert_int_equal(pull_table(&f->c, &f->cfg.tables[0], 0, &r), -1);
    assert_true(r.forbidden);
    uint64_t from = journal_writer_next_seq(f->st.jw);
    pull_ok(f, 1, 0, &r);
    assert_exactly_once(f, from, "k_skew");

    /* forbidden after the streams began */
    portal_admin("/_fake/faults", "{\"forbid\":[],\"latency_ms\":10}");
    static const struct step forbid[] = {{10, "/_fake/faults", "{\"forbid\":[\"k_sparse\"]}"}};
    struct trigger tr;
    trigger_start(&tr, forbid, 1);
    int rc = pull_table(&f->c, &f->cfg.tables[0], 0, &r);
    int during = trigger_stop(&tr);
    assert_int_equal(during, 1);
    assert_int_equal(rc, -1);
    assert_true(r.forbidden);
    table_state(f, "k_sparse", &st);
    assert_true(st.forbidden);
    assert_true(st.pending_id != 0);
    replay_table_free(&st);
    from = journal_writer_next_seq(f->st.jw);
    pull_ok(f, 1, 1, &r);
    assert_exactly_once(f, from, "k_skew");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_exactly_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changes_during_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_reads_the_gaps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_faults_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_page_cap_below_chunk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catchup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forbidden_table, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
