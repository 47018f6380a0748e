/* test_refused_record.c — issue 11: a journal record replay refuses (a SCHEMA
 * for the reserved name "_agent_state", as an older build's config let through)
 * wedged the agent for good: --once, sync, replay, replay --rebuild and run all
 * exited 1, and `journal verify` said "journal ok". Here, end to end with the
 * real binary and the fake portal: every command exits 1 naming the record
 * (seq, segment:offset, table, reason) and `replay --skip SEQ`; verify reports
 * it; `replay --skip SEQ` gets out, later syncs proceed, a rebuild skips it
 * too, and no row of the real table is lost. The record is written with the
 * journal API, since the config check now refuses the name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal/journal.h"
#include "journal/rows.h"
#include "tests/testutil.h"

struct fx {
    char *root;
    char cfg[600], data[600], jdir[700];
    struct tu_portal portal;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    f->root = tu_tmpdir("test_refused");
    assert_non_null(f->root);
    snprintf(f->cfg, sizeof f->cfg, "%s/agent.toml", f->root);
    snprintf(f->data, sizeof f->data, "%s/data", f->root);
    snprintf(f->jdir, sizeof f->jdir, "%s/journal", f->data);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    if (f->portal.pid > 0) tu_portal_stop(&f->portal);
    tu_rmrf(f->root);
    free(f->root);
    free(f);
    return 0;
}

/* Run the agent with args (NULL-terminated); its stdout and stderr land in out and err. */
static int agent(struct fx *f, char **out, char **err, ...)
{
    const char *argv[16] = {IA_AGENT_BIN, "--log-level", "warn", "-c", f->cfg};
    int n = 5;
    va_list ap;
    va_start(ap, err);
    const char *a;
    while ((a = va_arg(ap, const char *)) && n < 15) argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    const char *env[] = {"TEST_PW=pw", NULL};
    free(*out);
    free(*err);
    *out = *err = NULL;
    return tu_run(argv, env, out, err);
}

static int64_t rows_of(struct fx *f, const char *table)
{
    char sql[200], *out = NULL, *err = NULL;
    snprintf(sql, sizeof sql, "select count(*) from %s", table);
    if (agent(f, &out, &err, "query", sql, NULL) != 0) fail_msg("query: %s", err ? err : "");
    int64_t v = -1;
    /* the TSV header, then the value */
    const char *nl = out ? strchr(out, '\n') : NULL;
    if (nl) v = strtoll(nl + 1, NULL, 10);
    free(out);
    free(err);
    return v;
}

/* A SCHEMA and a whole snapshot of "_agent_state", appended as an older build did. */
static uint64_t append_reserved(struct fx *f)
{
    struct journal_opts o = {.dir = f->jdir};
    struct journal_writer *w;
    char err[512];
    if (journal_writer_open(&o, &w, err, sizeof err) != 0) fail_msg("%s", err);
    struct journal_payload pl = {0};
    const char *names[] = {"id", "v"};
    enum journal_coltype types[] = {JOURNAL_COL_INT, JOURNAL_COL_TEXT};
    uint64_t bad, id;
    assert_int_equal(journal_payload_schema(&pl, 2, names, types, 0, -1, err, sizeof err), 0);
    assert_int_equal(journal_payload_finish(&pl, err, sizeof err), 0);
    assert_int_equal(journal_append(w, JOURNAL_SCHEMA, "_agent_state", pl.p, pl.len, &bad, err, sizeof err), 0);
    journal_payload_snapshot_begin(&pl, 1);
    assert_int_equal(journal_payload_finish(&pl, err, sizeof err), 0);
    assert_int_equal(journal_append(w, JOURNAL_SNAPSHOT_BEGIN, "_agent_state", pl.p, pl.len, &id, err, sizeof err), 0);
    journal_payload_snapshot_page(&pl, id, 2);
    journal_put_int(&pl, 1);
    journal_put_text(&pl, "x", 1);
    assert_int_equal(journal_payload_finish(&pl, err, sizeof err), 0);
    assert_int_equal(journal_append(w, JOURNAL_SNAPSHOT_PAGE, "_agent_state", pl.p, pl.len, NULL, err, sizeof err), 0);
    struct journal_value nul = {.type = JOURNAL_NULL};
    journal_payload_snapshot_end(&pl, id, 1, &nul, &nul);
    assert_int_equal(journal_payload_finish(&pl, err, sizeof err), 0);
    assert_int_equal(journal_append(w, JOURNAL_SNAPSHOT_END, "_agent_state", pl.p, pl.len, NULL, err, sizeof err), 0);
    journal_payload_free(&pl);
    journal_writer_close(w);
    return bad;
}

static void test_refused_record_way_out(void **state)
{
    struct fx *f = *state;
    const char *const pargs[] = {"--rows", "300", "--password", "pw", NULL};
    assert_int_equal(tu_portal_start(&f->portal, pargs), 0);
    char t[2048];
    int k = snprintf(t, sizeof t,
                     "[remote]\nurl = \"%s\"\nusername = \"admin\"\npassword_env = \"TEST_PW\"\nretries = 1\n"
                     "[serve]\nlisten = \"127.0.0.1:0\"\n"
                     "[storage]\ndir = \"%s\"\n"
                     "[[table]]\nname = \"tv_channel\"\nstrategy = \"full\"\n",
                     f->portal.url, f->data);
    assert_int_equal(tu_write_file(f->cfg, t, (size_t)k), 0);
    char *out = NULL, *err = NULL;
    assert_int_equal(agent(f, &out, &err, "--once", NULL), 0);
    int64_t rows = rows_of(f, "tv_channel");
    assert_true(rows > 0);

    uint64_t bad = append_reserved(f);
    char seqat[96], skip[96];
    snprintf(seqat, sizeof seqat, "journal seq %" PRIu64 " (segment 1 offset ", bad);
    snprintf(skip, sizeof skip, "`iptv-agent replay --skip %" PRIu64 "`", bad);
    /* Wedged, but every command says which record and what to do. */
    static const char *const cmds[][3] = {{"--once", NULL, NULL}, {"sync", NULL, NULL}, {"replay", NULL, NULL},
                                          {"replay", "--rebuild", NULL}, {"run", NULL, NULL}};
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
        int rc = agent(f, &out, &err, cmds[i][0], cmds[i][1], NULL);
        if (rc != 1 || !strstr(err, seqat) || !strstr(err, "table \"_agent_state\"") ||
            !strstr(err, "are reserved") || !strstr(err, skip))
            fail_msg("%s %s: exit %d, stderr: %s", cmds[i][0], cmds[i][1] ? cmds[i][1] : "", rc, err);
    }
    assert_int_equal(agent(f, &out, &err, "journal", "verify", NULL), 1);
    assert_non_null(strstr(err, "table _agent_state): replay refuses it: table name \"_agent_state\""));
    assert_non_null(strstr(out, "journal readable, but replay refuses 4 of its"));
    assert_null(strstr(out, "journal ok"));

    /* usage errors name the value */
    assert_int_equal(agent(f, &out, &err, "replay", "--skip", "abc", NULL), 2);
    assert_non_null(strstr(err, "--skip: invalid value \"abc\""));
    /* only the refused record */
    char next[32];
    snprintf(next, sizeof next, "%" PRIu64, bad + 1);
    assert_int_equal(agent(f, &out, &err, "replay", "--skip", next, NULL), 1);
    assert_non_null(strstr(err, seqat));

    /* The way out. */
    snprintf(next, sizeof next, "%" PRIu64, bad);
    assert_int_equal(agent(f, &out, &err, "replay", "--skip", next, NULL), 0);
    assert_non_null(strstr(out, "skipped journal seq"));
    assert_non_null(strstr(err, "SKIPPED by the user"));
    assert_int_equal(agent(f, &out, &err, "sync", NULL), 0);
    assert_int_equal(agent(f, &out, &err, "--once", NULL), 0);
    assert_int_equal(agent(f, &out, &err, "journal", "verify", NULL), 0);
    assert_non_null(strstr(out, "journal ok"));
    assert_non_null(strstr(err, "was skipped by `iptv-agent replay --skip`"));
    assert_int_equal(agent(f, &out, &err, "replay", "--rebuild", NULL), 0);
    assert_non_null(strstr(err, "not applied: skipped by `iptv-agent replay --skip"));
    assert_int_equal(rows_of(f, "tv_channel"), rows);
    free(out);
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_refused_record_way_out, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
