/* test_journal_cli.c — `iptv-agent journal ls|verify|cat|compact` through
 * cmd_journal() in a child process: exact JSON lines from cat, ls columns,
 * verify's exit status and messages on damage, compact, usage errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/cli/cmd_journal.h"
#include "agent/config/config.h"
#include "journal/journal.h"
#include "journal/rows.h"
#include "replay/replay.h"
#include "tests/testutil.h"

struct fx {
    char *root;              /* storage.dir */
    char dir[512];           /* root/journal */
    struct config cfg;
    char *out, *err;         /* of the last run */
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    f->root = tu_tmpdir("test_journal_cli");
    assert_non_null(f->root);
    snprintf(f->dir, sizeof f->dir, "%s/journal", f->root);
    f->cfg.storage.dir = f->root;
    f->cfg.storage.retain_ms = 0;
    f->cfg.storage.segment_size = 64 << 20;
    f->cfg.storage.compression_level = 3;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    tu_rmrf(f->root);
    free(f->root);
    free(f->out);
    free(f->err);
    free(f);
    return 0;
}

/* Run `journal ARGS...` (NULL-terminated); stdout/stderr land in f->out/f->err. */
static int run(struct fx *f, ...)
{
    char *argv[16];
    int argc = 0;
    argv[argc++] = "journal";
    va_list ap;
    va_start(ap, f);
    char *a;
    while ((a = va_arg(ap, char *)) != NULL && argc < 15) argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    char po[600], pe[600];
    snprintf(po, sizeof po, "%s/stdout", f->root);
    snprintf(pe, sizeof pe, "%s/stderr", f->root);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (!freopen(po, "w", stdout) || !freopen(pe, "w", stderr)) _exit(99);
        int rc = cmd_journal(&f->cfg, argc, argv);
        fflush(stdout);
        fflush(stderr);
        _exit(rc);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    free(f->out);
    free(f->err);
    f->out = tu_read_file(po, NULL);
    f->err = tu_read_file(pe, NULL);
    return WEXITSTATUS(st);
}

static struct journal_writer *wopen(struct fx *f, uint64_t segsize)
{
    struct journal_opts o = {.dir = f->dir, .segment_size = segsize};
    struct journal_writer *w;
    char err[512];
    if (journal_writer_open(&o, &w, err, sizeof err) != 0) fail_msg("%s", err);
    return w;
}

static void append(struct journal_writer *w, int type, const char *table, struct journal_payload *pl)
{
    char err[512];
    if (journal_payload_finish(pl, err, sizeof err) != 0) fail_msg("%s", err);
    if (journal_append(w, type, table, pl->p, pl->len, NULL, err, sizeof err) != 0) fail_msg("%s", err);
}

/* One record of each type for table "tv" and one page for "other". */
static void write_sample(struct fx *f)
{
    struct journal_writer *w = wopen(f, 0);
    struct journal_payload pl = {0};
    char err[256];
    const char *names[] = {"id", "title", "rating", "tags", "live"};
    enum journal_coltype types[] = {JOURNAL_COL_INT, JOURNAL_COL_TEXT, JOURNAL_COL_REAL,
                                    JOURNAL_COL_JSON, JOURNAL_COL_BOOL};
    assert_int_equal(journal_payload_schema(&pl, 5, names, types, 0, -1, err, sizeof err), 0);
    append(w, JOURNAL_SCHEMA, "tv", &pl);                                   /* 1 */
    journal_payload_snapshot_begin(&pl, 2);
    append(w, JOURNAL_SNAPSHOT_BEGIN, "tv", &pl);                           /* 2 */
    journal_payload_snapshot_page(&pl, 2, 5);
    journal_put_int(&pl, INT64_MAX);
    static const char title[] = "Новости \"A\"\n\0z";
    journal_put_text(&pl, title, sizeof title - 1);
    journal_put_double(&pl, 0.1);
    journal_put_json(&pl, "[1,{\"a\":null}]", 14);
    journal_put_bool(&pl, 1);
    journal_put_int(&pl, INT64_MIN);
    journal_put_text(&pl, "", 0);
    journal_put_double(&pl, -0.0);
    journal_put_null(&pl);
    journal_put_bool(&pl, 0);
    append(w, JOURNAL_SNAPSHOT_PAGE, "tv", &pl);                            /* 3 */
    struct journal_value mc = {.type = JOURNAL_TEXT, .s = "2024-06-01 00:00:00", .n = 19};
    struct journal_value mk = {.type = JOURNAL_INT, .i = 42};
    journal_payload_snapshot_end(&pl, 2, 2, &mc, &mk);
    append(w, JOURNAL_SNAPSHOT_END, "tv", &pl);                             /* 4 */
    journal_payload_snapshot_page(&pl, 9, 1);
    journal_put_double(&pl, 1e21);
    append(w, JOURNAL_SNAPSHOT_PAGE, "other", &pl);                         /* 5 */
    journal_payload_incremental_page(&pl, &mc, &mk, 1);
    journal_put_double(&pl, DBL_MAX);
    append(w, JOURNAL_INCREMENTAL_PAGE, "tv", &pl);                         /* 6 */
    journal_payload_deletions(&pl, 1);
    journal_put_int(&pl, 7);
    journal_put_int(&pl, -8);
    append(w, JOURNAL_DELETIONS, "tv", &pl);                                /* 7 */
    journal_payload_free(&pl);
    journal_writer_close(w);
}

static void test_help_and_usage(void **state)
{
    struct fx *f = *state;
    assert_int_equal(run(f, "--help", NULL), 0);
    assert_non_null(strstr(f->out, "usage: iptv-agent journal ls"));
    assert_int_equal(run(f, NULL), 2);
    assert_non_null(strstr(f->err, "usage: iptv-agent journal ls"));
    assert_int_equal(run(f, "frob", NULL), 2);
    assert_non_null(strstr(f->err, "iptv-agent journal: unknown subcommand \"frob\""));
    /* Issue 11: a bad value is blamed, not the flag. */
    assert_int_equal(run(f, "cat", "--from", "abc", NULL), 2);
    assert_non_null(strstr(f->err, "iptv-agent journal cat: --from: invalid value \"abc\": expected a journal "
                                   "sequence number"));
    assert_null(strstr(f->err, "unexpected argument"));
    assert_int_equal(run(f, "cat", "--from", NULL), 2);
    assert_non_null(strstr(f->err, "iptv-agent journal cat: --from needs a value"));
    assert_int_equal(run(f, "ls", "--table", "t", NULL), 2);
    assert_non_null(strstr(f->err, "iptv-agent journal ls: unexpected argument --table"));
    assert_int_equal(run(f, "compact", "--applied", "-1", NULL), 2);
    assert_non_null(strstr(f->err, "iptv-agent journal compact: --applied: invalid value \"-1\""));
    assert_null(strstr(f->err, "unexpected argument"));
    assert_int_equal(run(f, "compact", "--applied", "99999999999999999999999", NULL), 2);
    assert_non_null(strstr(f->err, "--applied: invalid value \"99999999999999999999999\""));
}

static void test_empty_journal(void **state)
{
    struct fx *f = *state;
    assert_int_equal(run(f, "verify", NULL), 0);
    assert_string_equal(f->out, "journal ok: no records\n");
    assert_int_equal(run(f, "cat", NULL), 0);
    assert_string_equal(f->out, "");
    assert_int_equal(run(f, "ls", NULL), 0);
    assert_non_null(strstr(f->out, "segment"));
    assert_non_null(strstr(f->out, "\ntotal "));
}

static const char *const sample_lines[] = {
    "{\"seq\":1,\"type\":\"schema\",\"table\":\"tv\",\"columns\":[{\"name\":\"id\",\"type\":\"int\"},"
    "{\"name\":\"title\",\"type\":\"text\"},{\"name\":\"rating\",\"type\":\"real\"},"
    "{\"name\":\"tags\",\"type\":\"json\"},{\"name\":\"live\",\"type\":\"bool\"}],\"key\":\"id\",\"cursor\":null}\n",
    "{\"seq\":2,\"type\":\"snapshot_begin\",\"table\":\"tv\",\"snapshot\":2,\"expected_rows\":2}\n",
    "{\"seq\":3,\"type\":\"snapshot_page\",\"table\":\"tv\",\"snapshot\":2,\"rows\":["
    "[9223372036854775807,\"Новости \\\"A\\\"\\n\\u0000z\",0.1,[1,{\"a\":null}],true],"
    "[-9223372036854775808,\"\",-0.0,null,false]]}\n",
    "{\"seq\":4,\"type\":\"snapshot_end\",\"table\":\"tv\",\"snapshot\":2,\"rows\":2,"
    "\"mark\":[\"2024-06-01 00:00:00\",42]}\n",
    "{\"seq\":5,\"type\":\"snapshot_page\",\"table\":\"other\",\"snapshot\":9,\"rows\":[[1e+21]]}\n",
    "{\"seq\":6,\"type\":\"incremental_page\",\"table\":\"tv\",\"mark\":[\"2024-06-01 00:00:00\",42],"
    "\"rows\":[[1.7976931348623157e+308]]}\n",
    "{\"seq\":7,\"type\":\"deletions\",\"table\":\"tv\",\"keys\":[[7],[-8]]}\n",
};

static void test_cat(void **state)
{
    struct fx *f = *state;
    write_sample(f);
    char all[4096] = "";
    for (size_t i = 0; i < 7; i++) strcat(all, sample_lines[i]);
    assert_int_equal(run(f, "cat", NULL), 0);
    assert_string_equal(f->out, all);
    assert_string_equal(f->err, "");
    /* --from and --table */
    char tail[4096] = "";
    for (size_t i = 3; i < 7; i++)
        if (i != 4) strcat(tail, sample_lines[i]);
    assert_int_equal(run(f, "cat", "--from", "4", "--table", "tv", NULL), 0);
    assert_string_equal(f->out, tail);
    assert_int_equal(run(f, "cat", "--table", "other", NULL), 0);
    assert_string_equal(f->out, sample_lines[4]);
}

static void test_ls(void **state)
{
    struct fx *f = *state;
    struct journal_writer *w = wopen(f, 1);        /* one record per segment */
    struct journal_payload pl = {0};
    for (int i = 0; i < 3; i++) {
        journal_payload_snapshot_page(&pl, 1, 1);
        for (int k = 0; k < 100; k++) journal_put_text(&pl, "repeated text repeated text", 27);
        append(w, JOURNAL_SNAPSHOT_PAGE, "t", &pl);
    }
    journal_payload_free(&pl);
    journal_writer_close(w);
    assert_int_equal(run(f, "ls", NULL), 0);
    /* header, three segments, total */
    char *line = f->out;
    int n = 0;
    for (char *p = line; *p; p++) n += *p == '\n';
    assert_int_equal(n, 5);
    assert_int_equal(strncmp(f->out, "segment ", 8), 0);
    assert_non_null(strstr(f->out, " records "));
    assert_non_null(strstr(f->out, " raw_bytes "));
    assert_non_null(strstr(f->out, " stored_bytes "));
    assert_non_null(strstr(f->out, " ratio\n"));
    char seg[64], range[64], name[64];
    unsigned long long recs, raw, stored;
    double ratio;
    const char *p = strchr(f->out, '\n') + 1;
    assert_int_equal(sscanf(p, "%63s %63s %llu %llu %llu %lf", seg, range, &recs, &raw, &stored, &ratio), 6);
    assert_string_equal(seg, "00000000000000000001.seg");
    assert_string_equal(range, "1..1");
    assert_int_equal(recs, 1);
    assert_int_equal(raw, 1 + 8 + 100 * 29);    /* snapshot id, rows block header, values */
    assert_true(ratio > 10.0);
    p = strstr(f->out, "\ntotal") + 1;
    assert_int_equal(sscanf(p, "%63s %63s %llu", name, range, &recs), 3);
    assert_string_equal(range, "1..3");
    assert_int_equal(recs, 3);
}

static void test_verify(void **state)
{
    struct fx *f = *state;
    write_sample(f);
    assert_int_equal(run(f, "verify", NULL), 0);
    assert_non_null(strstr(f->out, "journal ok: 7 records (seq 1..7) in 1 segments"));
    char path[600];
    snprintf(path, sizeof path, "%s/00000000000000000001.seg", f->dir);
    size_t n;
    char *orig = tu_read_file(path, &n);
    /* A torn tail is noted, not damage. */
    assert_int_equal(tu_write_file(path, orig, n - 5), 0);
    assert_int_equal(run(f, "verify", NULL), 0);
    assert_non_null(strstr(f->out, "journal ok: 6 records (seq 1..6)"));
    assert_non_null(strstr(f->err, "note: segment 1 offset "));
    assert_non_null(strstr(f->err, "incomplete record of "));
    /* A flipped byte in the last record's payload is damage: exit 1 with the place. */
    char *bad = malloc(n);
    memcpy(bad, orig, n);
    bad[n - 2] ^= 0x20;
    assert_int_equal(tu_write_file(path, bad, n), 0);
    assert_int_equal(run(f, "verify", NULL), 1);
    assert_non_null(strstr(f->err, "iptv-agent journal verify: segment 1 offset "));
    assert_non_null(strstr(f->err, ": record checksum mismatch (seq 7)"));
    assert_int_equal(run(f, "cat", NULL), 1);
    assert_non_null(strstr(f->err, "record checksum mismatch (seq 7)"));
    assert_int_equal(run(f, "ls", NULL), 1);
    assert_non_null(strstr(f->err, "record checksum mismatch (seq 7)"));
    free(bad);
    free(orig);
}

/* CRC-valid records whose payloads are wrong: verify decodes and refuses them. */
static void test_verify_bad_payload(void **state)
{
    struct fx *f = *state;
    struct journal_writer *w = wopen(f, 0);
    char err[256];
    const unsigned char junk[] = {1, 1, 0, 0, 0, 1, 0, 0, 0, 9};
    assert_int_equal(journal_append(w, JOURNAL_SNAPSHOT_PAGE, "t", junk, sizeof junk, NULL, err, sizeof err), 0);
    journal_writer_close(w);
    assert_int_equal(run(f, "verify", NULL), 1);
    assert_string_equal(f->err, "iptv-agent journal: segment 1 offset 32: seq 1 (snapshot_page, table t): "
                                "payload offset 9: unknown value tag\n");
    tu_rmrf(f->dir);
    w = wopen(f, 0);
    assert_int_equal(journal_append(w, 200, "t", "x", 1, NULL, err, sizeof err), 0);
    journal_writer_close(w);
    assert_int_equal(run(f, "verify", NULL), 1);
    assert_string_equal(f->err, "iptv-agent journal: segment 1 offset 32: seq 1 (unknown type, table t): "
                                "unknown record type 200\n");
    assert_int_equal(run(f, "cat", NULL), 1);
    assert_string_equal(f->out, "");
}

/* Offline writes: op and op_state records are shown by cat and pass verify;
 * a bad op kind is refused by both, naming the record. */
static void test_op_records(void **state)
{
    struct fx *f = *state;
    struct journal_writer *w = wopen(f, 0);
    struct journal_payload pl = {0};
    char err[256];
    const unsigned char cs[] = {0x54, 0x01, 0xff};
    struct journal_op op = {.kind = JOURNAL_OP_INSERT, .params = "{\"insert\":\"t\"}", .nparams = 14,
                            .changeset = cs, .nchangeset = sizeof cs, .answer = "[[-1000]]", .nanswer = 9};
    assert_int_equal(journal_payload_op(&pl, &op, err, sizeof err), 0);
    append(w, JOURNAL_OP, "t", &pl);
    struct journal_op_state_rec st = {.op_id = 1, .state = JOURNAL_OPS_CONFLICT, .message = "id 5 \"changed\"",
                                      .nmessage = 14};
    assert_int_equal(journal_payload_op_state(&pl, &st, err, sizeof err), 0);
    append(w, JOURNAL_OP_STATE, "t", &pl);
    journal_writer_close(w);
    assert_int_equal(run(f, "cat", NULL), 0);
    assert_string_equal(f->out,
                        "{\"seq\":1,\"type\":\"op\",\"table\":\"t\",\"op\":1,\"kind\":\"insert\","
                        "\"params\":{\"insert\":\"t\"},\"changeset_bytes\":3,\"changeset\":\"5401ff\","
                        "\"answer\":[[-1000]]}\n"
                        "{\"seq\":2,\"type\":\"op_state\",\"table\":\"t\",\"op\":1,\"state\":\"conflict\","
                        "\"message\":\"id 5 \\\"changed\\\"\"}\n");
    assert_int_equal(run(f, "verify", NULL), 0);
    assert_non_null(strstr(f->out, "journal ok: 2 records"));
    /* kind 9 is no op kind */
    w = wopen(f, 0);
    const unsigned char bad[] = {9, 1, '{', 0, 1, '1'};
    assert_int_equal(journal_append(w, JOURNAL_OP, "t", bad, sizeof bad, NULL, err, sizeof err), 0);
    journal_writer_close(w);
    assert_int_equal(run(f, "verify", NULL), 1);
    assert_string_equal(f->err, "iptv-agent journal: segment 1 offset 149: seq 3 (op, table t): "
                                "payload offset 0: unknown op kind\n");
    journal_payload_free(&pl);
}

/* Parallel snapshot pages: cat shows the snapshot id and "from"/"to" (null =
 * unbounded); verify passes them and refuses a range with FROM >= TO. */
static void test_range_records(void **state)
{
    struct fx *f = *state;
    struct journal_writer *w = wopen(f, 0);
    struct journal_payload pl = {0};
    char err[256];
    struct journal_value lo = {.type = JOURNAL_INT, .i = INT64_MIN};
    struct journal_value hi = {.type = JOURNAL_INT, .i = 9007199254740993LL};
    journal_payload_snapshot_range(&pl, 4, &lo, &hi, 1);
    journal_put_int(&pl, -1);
    append(w, JOURNAL_SNAPSHOT_RANGE, "t", &pl);
    journal_payload_snapshot_range(&pl, 4, &hi, NULL, 1);
    append(w, JOURNAL_SNAPSHOT_RANGE, "t", &pl);
    journal_writer_close(w);
    assert_int_equal(run(f, "cat", NULL), 0);
    assert_string_equal(f->out,
                        "{\"seq\":1,\"type\":\"snapshot_range\",\"table\":\"t\",\"snapshot\":4,"
                        "\"from\":-9223372036854775808,\"to\":9007199254740993,\"rows\":[[-1]]}\n"
                        "{\"seq\":2,\"type\":\"snapshot_range\",\"table\":\"t\",\"snapshot\":4,"
                        "\"from\":9007199254740993,\"to\":null,\"rows\":[]}\n");
    assert_int_equal(run(f, "verify", NULL), 0);
    assert_non_null(strstr(f->out, "journal ok: 2 records"));
    /* (5, 5]: written raw, as a builder would refuse it */
    w = wopen(f, 0);
    const unsigned char bad[] = {4, 3, 10, 3, 10, 1, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(journal_append(w, JOURNAL_SNAPSHOT_RANGE, "t", bad, sizeof bad, NULL, err, sizeof err), 0);
    journal_writer_close(w);
    assert_int_equal(run(f, "verify", NULL), 1);
    assert_non_null(strstr(f->err, "seq 3 (snapshot_range, table t): payload offset 5: snapshot range FROM is not "
                                   "below TO"));
    journal_payload_free(&pl);
}

static void test_compact(void **state)
{
    struct fx *f = *state;
    struct journal_writer *w = wopen(f, 1);
    struct journal_payload pl = {0};
    char err[256];
    const char *names[] = {"id"};
    enum journal_coltype types[] = {JOURNAL_COL_INT};
    for (int round = 0; round < 2; round++) {
        assert_int_equal(journal_payload_schema(&pl, 1, names, types, 0, -1, err, sizeof err), 0);
        append(w, JOURNAL_SCHEMA, "t", &pl);
        uint64_t sid = journal_writer_next_seq(w);
        journal_payload_snapshot_begin(&pl, 0);
        append(w, JOURNAL_SNAPSHOT_BEGIN, "t", &pl);
        journal_payload_snapshot_end(&pl, sid, 0, NULL, NULL);
        append(w, JOURNAL_SNAPSHOT_END, "t", &pl);
    }
    journal_payload_free(&pl);
    journal_writer_close(w);
    /* Nothing is applied to cache.db yet: nothing may go, whatever --applied says. */
    assert_int_equal(run(f, "compact", "--applied", "6", NULL), 0);
    assert_null(strstr(f->out, "deleted 3 segments ("));
    assert_int_equal(run(f, "cat", NULL), 0);
    assert_int_equal(strncmp(f->out, "{\"seq\":1,", 9), 0);
    /* Applied: cache.db's position is the default bound. */
    char db[600];
    snprintf(db, sizeof db, "%s/cache.db", f->root);
    struct replay_opts ro = {.db_path = db, .journal_dir = f->dir};
    struct replay *rp;
    struct replay_stats rs = {0};
    assert_int_equal(replay_open(&ro, &rp, err, sizeof err), 0);
    assert_int_equal(replay_apply(rp, JOURNAL_SEQ_MAX, &rs, err, sizeof err), 0);
    replay_close(rp);
    assert_int_equal(run(f, "compact", NULL), 0);
    assert_non_null(strstr(f->out, "deleted 3 segments ("));
    assert_non_null(strstr(f->out, "kept 3: segment 4: table t has no schema record after seq 4\n"));
    assert_int_equal(run(f, "cat", NULL), 0);
    assert_int_equal(strncmp(f->out, "{\"seq\":4,", 9), 0);
    /* Damage makes compact fail with the place. */
    char path[600];
    snprintf(path, sizeof path, "%s/00000000000000000006.seg", f->dir);
    assert_int_equal(tu_write_file(path, "garbage", 7), 0);
    assert_int_equal(run(f, "compact", "--applied", "6", NULL), 1);
    assert_string_equal(f->err, "iptv-agent journal compact: segment 6 offset 0: segment header is 7 bytes, expected 32\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_help_and_usage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_journal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cat, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_bad_payload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_op_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_range_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compact, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
