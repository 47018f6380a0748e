/* test_status.c — the one status rule (agent/serve/status.h) that `status`,
 * GET /status, X-Cache-Stale and /metrics render: which tables are listed and
 * in what order, the strategy shown, the ttl of an unlisted table, age, stale;
 * and the outbox's counts in JSON and Prometheus form (known and unknown). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "agent/base/buf.h"
#include "agent/config/config.h"
#include "agent/serve/status.h"

#define SEC INT64_C(1000)
#define NOW (INT64_C(1800000000) * SEC)

static const char toml[] =
    "[remote]\nurl = \"http://127.0.0.1:1\"\nusername = \"u\"\npassword_env = \"P\"\n"
    "[storage]\ndir = \"/tmp/x\"\n"
    "[[table]]\nname = \"b_conf\"\nttl = \"10s\"\n"
    "[[table]]\nname = \"a_conf\"\nstrategy = \"on_demand\"\n";

static void load(struct config *c, const char *text)
{
    char err[512] = "";
    int rc = config_parse("s.toml", text, strlen(text), c, err, sizeof err);
    if (rc) fail_msg("%s", err);
}

static void test_rows_and_rule(void **state)
{
    (void)state;
    struct config c;
    load(&c, toml);
    /* Briefs come sorted by name, as replay_briefs_read gives them. */
    struct replay_brief b[] = {
        {.name = "a_conf", .rows = 3, .last_success_ms = NOW - 2 * SEC},
        {.name = "b_conf", .rows = 5, .last_success_ms = NOW - 11 * SEC},
        {.name = "imported", .rows = 7, .last_success_ms = NOW - 59 * 60 * SEC, .strategy = "incremental"},
        {.name = "old_import", .rows = 1, .last_success_ms = NOW - 61 * 60 * SEC},
    };
    struct status_row *r;
    size_t n = status_rows(&c, b, 4, 0, NOW, &r);
    assert_int_equal(n, 4);
    /* configured ones in file order, then the others by name */
    assert_string_equal(r[0].name, "b_conf");
    assert_string_equal(r[1].name, "a_conf");
    assert_string_equal(r[2].name, "imported");
    assert_string_equal(r[3].name, "old_import");
    assert_ptr_equal(r[0].b, &b[1]);
    assert_non_null(r[0].ct);
    assert_null(r[2].ct);
    /* strategy: configured, else the cache's record, else "-" */
    assert_string_equal(r[1].strategy, "on_demand");
    assert_string_equal(r[2].strategy, "incremental");
    assert_string_equal(r[3].strategy, "-");
    /* ttl: own (10 s) or the default hour; stale past it */
    assert_int_equal(r[0].ttl_ms, 10 * SEC);
    assert_int_equal(r[2].ttl_ms, CONFIG_DEFAULT_TTL_MS);
    assert_int_equal(r[0].age_s, 11);
    assert_true(r[0].stale);
    assert_false(r[1].stale);
    assert_false(r[2].stale);
    assert_true(r[3].stale);
    free(r);

    /* the portal unreachable: everything is stale */
    n = status_rows(&c, b, 4, 1, NOW, &r);
    for (size_t i = 0; i < n; i++) assert_true(r[i].stale);
    free(r);

    /* a configured table not pulled yet: listed, no age, stale */
    n = status_rows(&c, b + 2, 2, 0, NOW, &r);
    assert_int_equal(n, 4);
    assert_null(r[0].b);
    assert_int_equal(r[0].age_s, -1);
    assert_true(r[0].stale);
    free(r);
    config_free(&c);
}

static void test_edge_strategy(void **state)
{
    (void)state;
    struct config c;
    load(&c, "[upstream]\nurl = \"http://127.0.0.1:2\"\n[storage]\ndir = \"/tmp/x\"\n");
    struct replay_brief b = {.name = "t", .rows = 1, .last_success_ms = NOW, .strategy = "full"};
    struct status_row row;
    status_row(&c, "t", &b, 0, NOW, &row);
    assert_string_equal(row.strategy, "upstream");   /* an edge's tables come from its hub */
    assert_int_equal(row.age_s, 0);
    assert_false(row.stale);
    assert_ptr_equal(status_brief(&b, 1, "t"), &b);
    assert_null(status_brief(&b, 1, "u"));
    config_free(&c);
}

static void test_outbox_forms(void **state)
{
    (void)state;
    struct replay_outbox_counts c = {.pending = 4, .sent = 1, .conflicts = 2, .rejected = 3};
    struct buf b = {0};
    status_outbox_json(&c, &b);
    assert_string_equal(b.p, "\"outbox\":{\"pending\":4,\"conflicts\":2,\"rejected\":3}");
    buf_reset(&b);
    status_outbox_metrics(&c, &b);
    assert_non_null(strstr(b.p, "# TYPE iptv_agent_outbox_pending gauge\niptv_agent_outbox_pending 4\n"));
    assert_non_null(strstr(b.p, "# TYPE iptv_agent_outbox_conflicts gauge\niptv_agent_outbox_conflicts 2\n"));
    assert_non_null(strstr(b.p, "# TYPE iptv_agent_outbox_rejected gauge\niptv_agent_outbox_rejected 3\n"));
    /* unknown (cache.db's outbox unreadable): null, and no samples rather than zeros */
    buf_reset(&b);
    status_outbox_json(NULL, &b);
    assert_string_equal(b.p, "\"outbox\":null");
    buf_reset(&b);
    status_outbox_metrics(NULL, &b);
    assert_non_null(strstr(b.p, "# HELP iptv_agent_outbox_pending "));
    assert_null(strstr(b.p, "iptv_agent_outbox_pending 0"));
    assert_null(strstr(b.p, "\niptv_agent_outbox_rejected "));
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outbox_forms),
        cmocka_unit_test(test_rows_and_rule),
        cmocka_unit_test(test_edge_strategy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
