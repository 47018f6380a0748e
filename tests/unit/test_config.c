/* test_config.c — agent.toml against its schema: defaults, overrides, the
 * environment fallbacks, every refusal with its exact "file:line:col" and key,
 * and the repository's own agent.toml. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/config/config.h"
#include "tests/testutil.h"

#define KIB INT64_C(1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)
#define SEC INT64_C(1000)
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

/* The environment is process state: every test starts without the fallbacks. */
static int clear_env(void **state)
{
    (void)state;
    unsetenv("IPTVPORTAL_DOMAIN");
    unsetenv("IPTVPORTAL_USERNAME");
    return 0;
}

static void parse_ok(const char *text, struct config *c)
{
    char err[512] = "";
    int rc = config_parse("a.toml", text, strlen(text), c, err, sizeof err);
    if (rc != 0) print_error("unexpected error: %s\n", err);
    assert_int_equal(rc, 0);
}

/* Must fail with exactly `want` and return nothing half-filled. */
static void expect_err(const char *text, const char *want)
{
    struct config c;
    memset(&c, 0x5A, sizeof c);
    char err[512];
    int rc = config_parse("a.toml", text, strlen(text), &c, err, sizeof err);
    if (rc == 0) config_free(&c);
    assert_int_equal(rc, -1);
    assert_string_equal(err, want);
    assert_null(c.path);
    assert_null(c.remote.url);
    assert_null(c.storage.dir);
    assert_null(c.tables);
    assert_int_equal(c.ntables, 0);
}

static void test_repo_agent_toml(void **state)
{
    (void)state;
    struct config c;
    char err[512] = "";
    int rc = config_load(IA_SOURCE_DIR "/agent.toml", &c, err, sizeof err);
    if (rc != 0) print_error("%s\n", err);
    assert_int_equal(rc, 0);
    assert_string_equal(c.path, IA_SOURCE_DIR "/agent.toml");
    assert_string_equal(c.remote.url, "https://example.admin.iptvportal.ru");
    assert_string_equal(c.remote.username, "admin");
    assert_string_equal(c.remote.password_env, "IPTVPORTAL_PASSWORD");
    assert_int_equal(c.remote.timeout_ms, 30 * SEC);
    assert_int_equal(c.remote.retries, 5);
    assert_true(c.remote.verify_tls);
    assert_int_equal(c.remote.max_response, 256 * MIB);
    assert_string_equal(c.storage.dir, "/var/lib/iptv-agent");
    assert_int_equal(c.storage.segment_size, 64 * MIB);
    assert_int_equal(c.storage.compression_level, 3);
    assert_int_equal(c.storage.retain_ms, 7 * DAY);
    assert_int_equal(c.storage.compact_interval_ms, 10 * 60 * 1000);
    assert_string_equal(c.serve.listen, "127.0.0.1:8642");
    assert_string_equal(c.serve.token_env, "IPTV_AGENT_TOKEN");
    assert_int_equal(c.ntables, 4);

    const struct config_table *t = config_table_find(&c, "tv_channel");
    assert_non_null(t);
    assert_int_equal(t->strategy, STRATEGY_FULL);
    assert_int_equal(t->ncolumns, 3);
    assert_string_equal(t->columns[2], "url");
    assert_null(t->cursor);

    t = config_table_find(&c, "subscriber");
    assert_non_null(t);
    assert_int_equal(t->strategy, STRATEGY_INCREMENTAL);
    assert_string_equal(t->cursor, "updated_at");
    assert_null(t->columns);
    assert_int_equal(t->lookback_ms, 5 * MIN);

    t = config_table_find(&c, "terminal");
    assert_non_null(t);
    assert_int_equal(t->strategy, STRATEGY_ON_DEMAND);
    assert_int_equal(t->ttl_ms, 10 * MIN);

    t = config_table_find(&c, "tv_program");
    assert_non_null(t);
    assert_int_equal(t->strategy, STRATEGY_INCREMENTAL);
    assert_string_equal(t->cursor, "updated_at");
    assert_int_equal(t->chunk, 5000);
    assert_int_equal(t->ncolumns, 7);
    assert_string_equal(t->key, "id");
    assert_int_equal(t->ttl_ms, HOUR);   /* from [defaults] */
    assert_null(config_table_find(&c, "media"));
    config_free(&c);
    assert_null(c.path);
}

static void test_empty_file_defaults(void **state)
{
    (void)state;
    struct config c;
    parse_ok("# nothing\n", &c);
    assert_string_equal(c.path, "a.toml");
    assert_null(c.remote.url);   /* not an error: offline commands work */
    assert_null(c.remote.domain);
    assert_null(c.remote.username);
    assert_string_equal(c.remote.password_env, "IPTVPORTAL_PASSWORD");
    assert_int_equal(c.remote.timeout_ms, 30 * SEC);
    assert_int_equal(c.remote.retries, 5);
    assert_true(c.remote.verify_tls);
    assert_null(c.remote.ca_file);
    assert_int_equal(c.remote.max_response, 256 * MIB);
    assert_string_equal(c.storage.dir, "/var/lib/iptv-agent");
    assert_int_equal(c.storage.segment_size, 64 * MIB);
    assert_int_equal(c.storage.compression_level, 3);
    assert_int_equal(c.storage.retain_ms, 7 * DAY);
    assert_string_equal(c.serve.listen, "127.0.0.1:8642");
    assert_null(c.serve.token_env);
    assert_int_equal(c.ntables, 0);
    config_free(&c);

    char err[64];
    assert_int_equal(config_parse(NULL, "", 0, &c, err, sizeof err), 0);
    assert_string_equal(c.path, "<string>");
    config_free(&c);
}

static void test_every_key_set(void **state)
{
    (void)state;
    struct config c;
    /* ca_file must exist (checked at load): a readable file with a space in its path. */
    char *dir = tu_tmpdir("test_config");
    char ca[512], text[2048];
    snprintf(ca, sizeof ca, "%s/private ca.pem", dir);
    assert_int_equal(tu_write_file(ca, "", 0), 0);
    snprintf(text, sizeof text, "[remote]\n"
             "url = \"http://127.0.0.1:9000/portal//\"\n"
             "domain = \"ignored-when-url\"\n"
             "username = \"\\u0410\\u0434\\u043c\\u0438\\u043d\"\n"
             "password_env = \"MY_PASS\"\n"
             "timeout = \"250ms\"\n"
             "retries = 0\n"
             "verify_tls = false\n"
             "ca_file = '%s'\n"
             "max_response = 1048576\n"
             "[storage]\n"
             "dir = \"/tmp/agent\"\n"
             "segment_size = \"64KiB\"\n"
             "compression_level = 9\n"
             "retain = \"0s\"\n"
             "[serve]\n"
             "listen = \"0.0.0.0:0\"\n"
             "token_env = \"TOK\"\n",
             ca);
    parse_ok(text, &c);
    assert_string_equal(c.remote.url, "http://127.0.0.1:9000/portal");
    assert_string_equal(c.remote.domain, "ignored-when-url");
    assert_string_equal(c.remote.username, "Админ");
    assert_string_equal(c.remote.password_env, "MY_PASS");
    assert_int_equal(c.remote.timeout_ms, 250);
    assert_int_equal(c.remote.retries, 0);
    assert_false(c.remote.verify_tls);
    assert_string_equal(c.remote.ca_file, ca);
    assert_int_equal(c.remote.max_response, MIB);
    assert_string_equal(c.storage.dir, "/tmp/agent");
    assert_int_equal(c.storage.segment_size, 64 * KIB);
    assert_int_equal(c.storage.compression_level, 9);
    assert_int_equal(c.storage.retain_ms, 0);
    assert_string_equal(c.serve.listen, "0.0.0.0:0");
    assert_string_equal(c.serve.token_env, "TOK");
    config_free(&c);
    tu_rmrf(dir);
    free(dir);
}

static void test_durations(void **state)
{
    (void)state;
    int64_t v = -1;
    assert_int_equal(config_parse_duration("250ms", &v), 0);
    assert_int_equal(v, 250);
    assert_int_equal(config_parse_duration("30s", &v), 0);
    assert_int_equal(v, 30 * SEC);
    assert_int_equal(config_parse_duration("5m", &v), 0);
    assert_int_equal(v, 5 * MIN);
    assert_int_equal(config_parse_duration("1h", &v), 0);
    assert_int_equal(v, HOUR);
    assert_int_equal(config_parse_duration("7d", &v), 0);
    assert_int_equal(v, 7 * DAY);
    assert_int_equal(config_parse_duration("0s", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(config_parse_duration("9223372036854775807ms", &v), 0);
    assert_true(v == INT64_MAX);
    v = 77;
    const char *bad[] = {"", "5", "-5s", "5x", "5 s", "s", "5S", "5sec", " 5s", "5s ", "1.5h",
                         "9223372036854775807s", "9223372036854775808ms",
                         "99999999999999999999999d", "+5s"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (config_parse_duration(bad[i], &v) != -1) print_error("accepted \"%s\"\n", bad[i]);
        assert_int_equal(config_parse_duration(bad[i], &v), -1);
    }
    assert_int_equal(v, 77);   /* untouched on error */
}

static void test_sizes(void **state)
{
    (void)state;
    static const struct { const char *s; int64_t v; } good[] = {
        {"0", 0}, {"100", 100}, {"100B", 100}, {"64KiB", 64 * KIB}, {"64MiB", 64 * MIB},
        {"1GiB", GIB}, {"3KB", 3000}, {"2MB", 2000000}, {"1GB", 1000000000},
        {"8589934591GiB", INT64_C(8589934591) * GIB},
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        int64_t v = -1;
        assert_int_equal(config_parse_size(good[i].s, &v), 0);
        assert_true(v == good[i].v);
    }
    const char *bad[] = {"", "-1", "1TiB", "1kib", "1 MiB", "x", "MiB", "1.5MiB",
                         "8589934592GiB", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int64_t v = 5;
        if (config_parse_size(bad[i], &v) != -1) print_error("accepted \"%s\"\n", bad[i]);
        assert_int_equal(config_parse_size(bad[i], &v), -1);
        assert_int_equal(v, 5);
    }
    struct config c;
    parse_ok("[storage]\nsegment_size = \"1GiB\"\n[remote]\nmax_response = \"5MB\"\n", &c);
    assert_int_equal(c.storage.segment_size, GIB);
    assert_int_equal(c.remote.max_response, 5000000);
    config_free(&c);
    parse_ok("[storage]\nsegment_size = 65536\n", &c);
    assert_int_equal(c.storage.segment_size, 64 * KIB);
    config_free(&c);
}

static void test_value_errors(void **state)
{
    (void)state;
    expect_err("[remote]\nretries = \"5\"\n",
               "a.toml:2:11: key `retries`: expected integer, got string");
    expect_err("[remote]\nretries = 101\n",
               "a.toml:2:11: key `retries`: must be between 0 and 100, got 101");
    expect_err("[remote]\nretries = -1\n",
               "a.toml:2:11: key `retries`: must be between 0 and 100, got -1");
    expect_err("[remote]\nverify_tls = \"yes\"\n",
               "a.toml:2:14: key `verify_tls`: expected boolean, got string");
    expect_err("[remote]\nusername = 5\n", "a.toml:2:12: key `username`: expected string, got integer");
    expect_err("[remote]\nusername = \"\"\n", "a.toml:2:12: key `username`: must not be empty");
    expect_err("[remote]\nurl = \"ftp://x\"\n",
               "a.toml:2:7: key `url`: \"ftp://x\" must start with http:// or https://");
    expect_err("[remote]\nurl = \"https://\"\n", "a.toml:2:7: key `url`: \"https://\" has no host");
    expect_err("[remote]\nurl = \"https://a b\"\n",
               "a.toml:2:7: key `url`: \"https://a b\" contains a space or control character");
    expect_err("[remote]\ndomain = \"a/b\"\n",
               "a.toml:2:10: key `domain`: \"a/b\" is not a bare domain like \"example\"");
    expect_err("[remote]\npassword_env = \"MY-PASS\"\n",
               "a.toml:2:16: key `password_env`: \"MY-PASS\" is not an environment variable name "
               "([A-Za-z_][A-Za-z0-9_]*)");
    expect_err("[remote]\ntimeout = 30\n",
               "a.toml:2:11: key `timeout`: expected string (a duration like \"30s\"), got integer");
    expect_err("[remote]\ntimeout = \"30\"\n",
               "a.toml:2:11: key `timeout`: invalid duration \"30\": missing unit (ms, s, m, h or d)");
    expect_err("[remote]\ntimeout = \"0s\"\n", "a.toml:2:11: key `timeout`: must be greater than 0");
    expect_err("[storage]\ncompact_interval = \"0s\"\n",
               "a.toml:2:20: key `compact_interval`: must be greater than 0");
    expect_err("[storage]\nretain = \"-1d\"\n",
               "a.toml:2:10: key `retain`: invalid duration \"-1d\": must not be negative");
    expect_err("[storage]\nretain = \"1w\"\n",
               "a.toml:2:10: key `retain`: invalid duration \"1w\": unknown unit (ms, s, m, h or d)");
    expect_err("[storage]\nretain = \"soon\"\n",
               "a.toml:2:10: key `retain`: invalid duration \"soon\": expected an integer "
               "followed by a unit");
    expect_err("[storage]\nretain = \"9999999999999999d\"\n",
               "a.toml:2:10: key `retain`: invalid duration \"9999999999999999d\": too large");
    expect_err("[storage]\nsegment_size = \"1KiB\"\n",
               "a.toml:2:16: key `segment_size`: must be at least 65536 bytes");
    expect_err("[storage]\nsegment_size = \"64 MiB\"\n",
               "a.toml:2:16: key `segment_size`: invalid size \"64 MiB\": unknown unit (B, KiB, "
               "MiB, GiB, KB, MB or GB)");
    expect_err("[storage]\nsegment_size = -65536\n",
               "a.toml:2:16: key `segment_size`: must not be negative");
    expect_err("[storage]\nsegment_size = true\n",
               "a.toml:2:16: key `segment_size`: expected string (a size like \"64MiB\") or "
               "integer, got boolean");
    expect_err("[remote]\nmax_response = \"99999999999GiB\"\n",
               "a.toml:2:16: key `max_response`: invalid size \"99999999999GiB\": too large");
    expect_err("[storage]\ncompression_level = 0\n",
               "a.toml:2:21: key `compression_level`: must be between 1 and 9, got 0");
    expect_err("[storage]\ndir = [\"a\"]\n", "a.toml:2:7: key `dir`: expected string, got array");
}

static void test_key_and_section_errors(void **state)
{
    (void)state;
    expect_err("[remote]\nurl = \"https://x\"\nretrys = 5\n",
               "a.toml:3:1: key `retrys`: unknown key in [remote] (known: url, domain, username, "
               "password_env, timeout, retries, verify_tls, ca_file, max_response, max_inflight)");
    expect_err("[storage]\n  path = \"/x\"\n",
               "a.toml:2:3: key `path`: unknown key in [storage] (known: dir, segment_size, "
               "compression_level, retain, compact_interval)");
    expect_err("[serve]\nport = 1\n",
               "a.toml:2:1: key `port`: unknown key in [serve] (known: listen, token_env, export_keep, tokenless_writes, auth, session_ttl, max_rows, unknown_tables, max_auto_tables)");
    expect_err("verbose = true\n[remote]\n",
               "a.toml:1:1: key `verbose`: unknown key outside any section (keys go under "
               "[remote], [storage], [serve], ...)");
    expect_err("[remote]\nusername = \"admin\"\npassword = \"hunter2\"\n",
               "a.toml:3:1: key `password`: secrets do not go in the file; set password_env");
    expect_err("[remote]\n[cache]\nsize = 1\n",
               "a.toml:2:1: unknown section [cache] (known: [remote], [storage], [serve], "
               "[upstream], [defaults], [[table]])");
    expect_err("[[tables]]\nname = \"x\"\n",
               "a.toml:1:1: unknown section [[tables]] (known: [remote], [storage], [serve], "
               "[upstream], [defaults], [[table]])");
    expect_err("[[remote]]\n", "a.toml:1:1: section [[remote]] must be written [remote]");
    expect_err("[[defaults]]\n", "a.toml:1:1: section [[defaults]] must be written [defaults]");
    expect_err("[table]\nname = \"x\"\n",
               "a.toml:1:1: section [table] must be written [[table]] (one per table)");
    expect_err("[remote]\nretries = 1\n[storage]\n[remote]\n",
               "a.toml:4:1: table `remote` is already defined at line 1");
    expect_err("[remote]\nretries = 1\nretries = 2\n",
               "a.toml:3:1: duplicate key `retries` (first set at line 2)");
}

/* An edge: [upstream] instead of [remote] and [[table]]. */
static void test_upstream(void **state)
{
    (void)state;
    struct config c;
    parse_ok("", &c);
    assert_null(c.upstream.url);
    assert_int_equal(c.upstream.interval_ms, 30 * SEC);
    assert_int_equal(c.serve.export_keep, 4);
    config_free(&c);
    char *dir = tu_tmpdir("test_config");
    char ca[512], text[1024];
    snprintf(ca, sizeof ca, "%s/hub-ca.pem", dir);
    assert_int_equal(tu_write_file(ca, "", 0), 0);
    snprintf(text, sizeof text, "[upstream]\nurl = \"http://hub:8642/\"\ntoken_env = \"HUB_TOKEN\"\ninterval = \"5s\"\n"
             "timeout = \"1h\"\nverify_tls = false\nca_file = \"%s\"\n[serve]\nexport_keep = 9\n", ca);
    parse_ok(text, &c);
    assert_string_equal(c.upstream.url, "http://hub:8642");
    assert_string_equal(c.upstream.token_env, "HUB_TOKEN");
    assert_int_equal(c.upstream.interval_ms, 5 * SEC);
    assert_int_equal(c.upstream.timeout_ms, HOUR);
    assert_false(c.upstream.verify_tls);
    assert_string_equal(c.upstream.ca_file, ca);
    assert_int_equal(c.serve.export_keep, 9);
    assert_int_equal(c.ntables, 0);
    config_free(&c);
    tu_rmrf(dir);
    free(dir);
    expect_err("[upstream]\ntoken_env = \"T\"\n",
               "a.toml:1:1: section [upstream] needs url (the hub agent, e.g. \"http://hub:8642\")");
    expect_err("[upstream]\nurl = \"hub:8642\"\n",
               "a.toml:2:7: key `url`: \"hub:8642\" must start with http:// or https://");
    expect_err("[upstream]\nurl = \"http://h\"\nkeep = 1\n",
               "a.toml:3:1: key `keep`: unknown key in [upstream] (known: url, token_env, interval, timeout, "
               "verify_tls, ca_file)");
    expect_err("[[table]]\nname = \"a\"\n[upstream]\nurl = \"http://h\"\n",
               "a.toml:3:1: [upstream] and [[table]] exclude each other: an edge agent takes every table its "
               "hub has (remove the [[table]] sections, or [upstream])");
    expect_err("[serve]\nexport_keep = 0\n", "a.toml:2:15: key `export_keep`: must be between 1 and 1000, got 0");
}

/* Values that cannot work are refused at load time, at file:line:col. */
static void test_sane_values(void **state)
{
    (void)state;
    struct config c;
    /* ports in URLs: 1..65535 */
    expect_err("[remote]\nurl = \"http://127.0.0.1:99999\"\n",
               "a.toml:2:7: key `url`: \"http://127.0.0.1:99999\": has a port outside 1..65535");
    expect_err("[remote]\nurl = \"http://h:0/\"\n", "a.toml:2:7: key `url`: \"http://h:0/\": has a port outside 1..65535");
    expect_err("[upstream]\nurl = \"http://[::1]:65536\"\n",
               "a.toml:2:7: key `url`: \"http://[::1]:65536\": has a port outside 1..65535");
    expect_err("[remote]\nurl = \"http://h:80x\"\n", "a.toml:2:7: key `url`: \"http://h:80x\": has a port that is not a number");
    expect_err("[remote]\nurl = \"http://h:\"\n", "a.toml:2:7: key `url`: \"http://h:\": has an empty port");
    parse_ok("[remote]\nurl = \"http://u:p@h:65535/x\"\n[upstream]\nurl = \"https://[::1]:1\"\n", &c);
    assert_string_equal(c.remote.url, "http://u:p@h:65535/x");
    config_free(&c);
    /* listen port 0 still means "pick a free port" */
    parse_ok("[serve]\nlisten = \"127.0.0.1:0\"\n", &c);
    config_free(&c);
    expect_err("[serve]\nlisten = \"127.0.0.1:99999\"\n",
               "a.toml:2:10: key `listen`: \"127.0.0.1:99999\" is not host:port (e.g. \"127.0.0.1:8642\" or "
               "\"[::1]:8642\")");
    /* no query string or fragment: "/api/..." is appended */
    expect_err("[remote]\nurl = \"https://p.example/?x=1\"\n",
               "a.toml:2:7: key `url`: \"https://p.example/?x=1\" must not have a query (?) or fragment (#): "
               "\"/api/...\" is appended to it");
    expect_err("[upstream]\nurl = \"http://hub:8642#top\"\n",
               "a.toml:2:7: key `url`: \"http://hub:8642#top\" must not have a query (?) or fragment (#): "
               "\"/api/...\" is appended to it");
    /* max_response: at least 64 KiB */
    expect_err("[remote]\nmax_response = \"1B\"\n", "a.toml:2:16: key `max_response`: must be at least 65536 bytes");
    parse_ok("[remote]\nmax_response = \"64KiB\"\n", &c);
    config_free(&c);
    /* sweep: 0 (never) or at least the table's interval */
    expect_err("[[table]]\nname = \"a\"\nstrategy = \"incremental\"\ncursor = \"u\"\nsweep = \"1ms\"\n",
               "a.toml:5:9: key `sweep`: table `a`: must be \"0s\" (never) or at least its interval (60000 ms), "
               "got 1 ms");
    expect_err("[defaults]\nsweep = \"10s\"\n[[table]]\nname = \"a\"\nstrategy = \"incremental\"\ncursor = \"u\"\n",
               "a.toml:3:1: table `a`: sweep from [defaults] (10000 ms) must be \"0s\" (never) or at least its "
               "interval (60000 ms)");
    parse_ok("[[table]]\nname = \"a\"\nstrategy = \"incremental\"\ncursor = \"u\"\ninterval = \"1ms\"\n"
             "sweep = \"1ms\"\n[[table]]\nname = \"b\"\nstrategy = \"incremental\"\ncursor = \"u\"\nsweep = \"0s\"\n"
             "[[table]]\nname = \"c\"\nsweep = \"1ms\"\n", &c);
    config_free(&c);
    /* ca_file: exists and is readable, at load time */
    expect_err("[remote]\nca_file = \"/nonexistent/ca.pem\"\n",
               "a.toml:2:11: key `ca_file`: /nonexistent/ca.pem: cannot read: No such file or directory");
    expect_err("[upstream]\nurl = \"http://h\"\nca_file = \"/nonexistent/hub.pem\"\n",
               "a.toml:3:11: key `ca_file`: /nonexistent/hub.pem: cannot read: No such file or directory");
    expect_err("[remote]\nca_file = \"/\"\n", "a.toml:2:11: key `ca_file`: /: cannot read: not a regular file");
}

static void test_toml_errors_propagate(void **state)
{
    (void)state;
    expect_err("[remote]\ntimeout = 1.5\n",
               "a.toml:2:11: floats are not supported by this reader (`1.5`)");
    expect_err("[remote]\nurl = { a = 1 }\n",
               "a.toml:2:7: inline tables are not supported by this reader");
    expect_err("[remote]\nurl = \"https://x\n", "a.toml:2:7: unterminated string");
    expect_err("[remote]\nusername = \"a\\qb\"\n",
               "a.toml:2:14: invalid escape `\\q` (allowed: \\\" \\\\ \\b \\t \\n \\f \\r "
               "\\uHHHH \\UHHHHHHHH)");
    expect_err("[remote]\nretries = 18446744073709551616\n",
               "a.toml:2:11: integer `18446744073709551616` is out of range (64-bit signed)");
}

static void test_serve_listen(void **state)
{
    (void)state;
    expect_err("[serve]\nlisten = \"0.0.0.0:8642\"\n",
               "a.toml:2:1: key `listen`: 0.0.0.0:8642 is not a loopback address; set token_env "
               "so the API requires a token");
    expect_err("[serve]\n\nlisten = \"[::]:80\"\n",
               "a.toml:3:1: key `listen`: [::]:80 is not a loopback address; set token_env so "
               "the API requires a token");
    expect_err("[serve]\nlisten = \"8642\"\n",
               "a.toml:2:10: key `listen`: \"8642\" is not host:port (e.g. \"127.0.0.1:8642\" or "
               "\"[::1]:8642\")");
    expect_err("[serve]\nlisten = \"localhost:99999\"\n",
               "a.toml:2:10: key `listen`: \"localhost:99999\" is not host:port (e.g. "
               "\"127.0.0.1:8642\" or \"[::1]:8642\")");
    expect_err("[serve]\ntoken_env = \"\"\n",
               "a.toml:2:13: key `token_env`: \"\" is not an environment variable name "
               "([A-Za-z_][A-Za-z0-9_]*)");
    struct config c;
    parse_ok("[serve]\nlisten = \"[::1]:8642\"\n", &c);
    assert_string_equal(c.serve.listen, "[::1]:8642");
    config_free(&c);
    parse_ok("[serve]\nlisten = \"localhost:1\"\n", &c);
    config_free(&c);
    parse_ok("[serve]\ntoken_env = \"T\"\nlisten = \"192.168.1.5:8642\"\n", &c);
    assert_string_equal(c.serve.listen, "192.168.1.5:8642");
    assert_int_equal(c.serve.token_env_line, 2);       /* for run's message when T is unset */
    assert_false(c.serve.tokenless_writes);            /* writes need a token by default */
    config_free(&c);
    parse_ok("[serve]\ntokenless_writes = \"loopback\"\n", &c);
    assert_true(c.serve.tokenless_writes);
    assert_int_equal(c.serve.token_env_line, 0);
    config_free(&c);
    parse_ok("[serve]\ntokenless_writes = \"refuse\"\n", &c);
    assert_false(c.serve.tokenless_writes);
    config_free(&c);
    expect_err("[serve]\ntokenless_writes = \"yes\"\n",
               "a.toml:2:20: key `tokenless_writes`: \"yes\": expected \"refuse\" or \"loopback\"");
    expect_err("[serve]\ntokenless_writes = true\n",
               "a.toml:2:20: key `tokenless_writes`: expected string, got boolean");
    /* auth, session_ttl, max_rows: the portal's login, its hour, its page */
    parse_ok("[serve]\nlisten = \"127.0.0.1:1\"\n", &c);
    assert_int_equal(c.serve.auth, AUTH_PORTAL);
    assert_int_equal(c.serve.session_ttl_ms, 3600 * 1000);
    assert_int_equal(c.serve.max_rows, 5000);
    config_free(&c);
    parse_ok("[serve]\nauth = \"none\"\nsession_ttl = \"90s\"\nmax_rows = 20\n", &c);
    assert_int_equal(c.serve.auth, AUTH_NONE);
    assert_int_equal(c.serve.session_ttl_ms, 90 * 1000);
    assert_int_equal(c.serve.max_rows, 20);
    assert_string_equal(config_auth_name(c.serve.auth), "none");
    config_free(&c);
    expect_err("[serve]\nauth = \"open\"\n", "a.toml:2:8: key `auth`: unknown value \"open\" (\"portal\", \"none\")");
    expect_err("[serve]\nmax_rows = 0\n", "a.toml:2:12: key `max_rows`: must be between 1 and 10000000, got 0");
    expect_err("[serve]\nsession_ttl = \"0s\"\n", "a.toml:2:15: key `session_ttl`: must be greater than 0");
    /* a select the cache cannot answer: forwarded by default */
    parse_ok("", &c);
    assert_int_equal(c.serve.unknown_tables, UNKNOWN_FORWARD);
    config_free(&c);
    parse_ok("[serve]\nunknown_tables = \"refuse\"\n", &c);
    assert_int_equal(c.serve.unknown_tables, UNKNOWN_REFUSE);
    config_free(&c);
    parse_ok("[serve]\nunknown_tables = \"forward\"\n", &c);
    assert_int_equal(c.serve.unknown_tables, UNKNOWN_FORWARD);
    assert_int_equal(c.serve.max_auto_tables, 16);
    config_free(&c);
    parse_ok("[serve]\nunknown_tables = \"cache\"\nmax_auto_tables = 2\n"
             "[defaults]\nstrategy = \"incremental\"\nttl = \"5m\"\nchunk = 50\n", &c);
    assert_int_equal(c.serve.unknown_tables, UNKNOWN_CACHE);
    assert_int_equal(c.serve.max_auto_tables, 2);
    /* a table `cache` adds: the defaults, but full (an incremental one's cursor is not known) */
    struct config_table t;
    config_table_auto(&c, "package", &t);
    assert_string_equal(t.name, "package");
    assert_int_equal(t.strategy, STRATEGY_FULL);
    assert_null(t.cursor);
    assert_int_equal(t.ttl_ms, 5 * 60 * 1000);
    assert_int_equal(t.chunk, 50);
    assert_string_equal(t.key, "id");
    assert_int_equal(t.ncolumns, 0);
    config_table_free(&t);
    config_free(&c);
    expect_err("[serve]\nunknown_tables = \"later\"\n",
               "a.toml:2:18: key `unknown_tables`: unknown value \"later\" (\"forward\", \"cache\", \"refuse\")");
    expect_err("[serve]\nmax_auto_tables = -1\n", "a.toml:2:19: key `max_auto_tables`: must be between 0 and 1000, got -1");
}

static void test_listen_helpers(void **state)
{
    (void)state;
    const char *loop[] = {"127.0.0.1:8642", "127.1.2.3:1", "[::1]:80", "localhost:80",
                          "LocalHost:0", "[::ffff:127.0.0.2]:5", "[0:0:0:0:0:0:0:1]:9"};
    for (size_t i = 0; i < sizeof loop / sizeof *loop; i++) {
        if (!config_listen_is_loopback(loop[i])) print_error("%s\n", loop[i]);
        assert_true(config_listen_is_loopback(loop[i]));
    }
    const char *other[] = {"0.0.0.0:80", "10.0.0.1:80", "128.0.0.1:80", "[::]:80",
                           "example.com:80", "localhost.evil:80", "127.0.0.1", "::1:80",
                           "[127.0.0.1]:80", "127.0.0.1:65536", "localhost:", ":80",
                           "[::1]80", "[::1:80", "127.0.0.1:8x", "127.0.0.1:-1", ""};
    for (size_t i = 0; i < sizeof other / sizeof *other; i++) {
        if (config_listen_is_loopback(other[i])) print_error("%s\n", other[i]);
        assert_false(config_listen_is_loopback(other[i]));
    }
    char host[64];
    int port = -1;
    assert_int_equal(config_listen_split("[::1]:8642", host, sizeof host, &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 8642);
    assert_int_equal(config_listen_split("example.com:65535", host, sizeof host, &port), 0);
    assert_string_equal(host, "example.com");
    assert_int_equal(port, 65535);
    assert_int_equal(config_listen_split("example.com:1", host, 11, &port), -1);   /* too long */
    assert_int_equal(config_listen_split("a b:1", host, sizeof host, &port), -1);
}

static const char TABLES_WITH_DEFAULTS[] =
    "[[table]]\n"
    "name = \"a\"\n"
    "[defaults]\n"                       /* after a table: still applies to it */
    "strategy = \"incremental\"\n"
    "key = \"uid\"\n"
    "chunk = 50\n"
    "ttl = \"2h\"\n"
    "interval = \"30s\"\n"
    "lookback = \"1m\"\n"
    "sweep = \"0s\"\n"
    "[[table]]\n"
    "name = \"b\"\n"
    "strategy = \"full\"\n"
    "key = \"id\"\n"
    "chunk = 100000\n"
    "ttl = \"5m\"\n"
    "interval = \"10s\"\n"
    "lookback = \"0s\"\n"
    "sweep = \"1d\"\n"
    "[[table]]\n"
    "name = \"c\"\n"
    "cursor = \"changed\"\n";

static void test_table_defaults(void **state)
{
    (void)state;
    struct config c;
    /* No [defaults]: the built-in ones. */
    parse_ok("[[table]]\nname = \"t\"\n", &c);
    assert_int_equal(c.ntables, 1);
    const struct config_table *t = &c.tables[0];
    assert_string_equal(t->name, "t");
    assert_int_equal(t->strategy, STRATEGY_FULL);
    assert_string_equal(t->key, "id");
    assert_null(t->cursor);
    assert_null(t->columns);
    assert_int_equal(t->ncolumns, 0);
    assert_int_equal(t->chunk, 1000);
    assert_int_equal(t->ttl_ms, HOUR);
    assert_int_equal(t->interval_ms, MIN);
    assert_int_equal(t->lookback_ms, 0);
    assert_int_equal(t->sweep_ms, 6 * HOUR);
    assert_int_equal(t->writes, WRITES_QUEUE);
    assert_int_equal(t->conflict, CONFLICT_PORTAL);
    assert_int_equal(t->line, 1);
    config_free(&c);

    /* [defaults] applied to a (even though it comes later), overridden by b,
     * partly by c. a needs a cursor under the incremental default: it has none. */
    expect_err(TABLES_WITH_DEFAULTS,
               "a.toml:1:1: table `a`: strategy incremental needs key `cursor` "
               "(e.g. cursor = \"updated_at\")");
    parse_ok(TABLES_WITH_DEFAULTS + strlen("[[table]]\nname = \"a\"\n"), &c);
    assert_int_equal(c.ntables, 2);
    t = config_table_find(&c, "b");
    assert_int_equal(t->strategy, STRATEGY_FULL);
    assert_string_equal(t->key, "id");
    assert_int_equal(t->chunk, 100000);
    assert_int_equal(t->ttl_ms, 5 * MIN);
    assert_int_equal(t->interval_ms, 10 * SEC);
    assert_int_equal(t->lookback_ms, 0);
    assert_int_equal(t->sweep_ms, DAY);
    assert_int_equal(t->line, 9);
    t = config_table_find(&c, "c");
    assert_int_equal(t->strategy, STRATEGY_INCREMENTAL);
    assert_string_equal(t->key, "uid");
    assert_string_equal(t->cursor, "changed");
    assert_int_equal(t->chunk, 50);
    assert_int_equal(t->ttl_ms, 2 * HOUR);
    assert_int_equal(t->interval_ms, 30 * SEC);
    assert_int_equal(t->lookback_ms, MIN);
    assert_int_equal(t->sweep_ms, 0);
    assert_int_equal(t->line, 18);
    config_free(&c);
}

/* writes and conflict (docs/outbox.md, "Policy"): [defaults] sets them for
 * every table, a [[table]] overrides; other values are refused naming them. */
static void test_write_policy(void **state)
{
    (void)state;
    struct config c;
    parse_ok("[defaults]\nwrites = \"forward\"\nconflict = \"agent\"\n"
             "[[table]]\nname = \"a\"\n"
             "[[table]]\nname = \"b\"\nwrites = \"refuse\"\n"
             "[[table]]\nname = \"c\"\nwrites = \"queue\"\nconflict = \"portal\"\n", &c);
    assert_int_equal(config_table_find(&c, "a")->writes, WRITES_FORWARD);
    assert_int_equal(config_table_find(&c, "a")->conflict, CONFLICT_AGENT);
    assert_int_equal(config_table_find(&c, "b")->writes, WRITES_REFUSE);
    assert_int_equal(config_table_find(&c, "b")->conflict, CONFLICT_AGENT);
    assert_int_equal(config_table_find(&c, "c")->writes, WRITES_QUEUE);
    assert_int_equal(config_table_find(&c, "c")->conflict, CONFLICT_PORTAL);
    assert_string_equal(config_writes_name(WRITES_FORWARD), "forward");
    assert_string_equal(config_conflict_name(CONFLICT_AGENT), "agent");
    config_free(&c);
    expect_err("[[table]]\nname = \"a\"\nwrites = \"later\"\n",
               "a.toml:3:10: key `writes`: unknown value \"later\" (\"queue\", \"forward\", \"refuse\")");
    expect_err("[defaults]\nconflict = \"hub\"\n",
               "a.toml:2:12: key `conflict`: unknown value \"hub\" (\"portal\", \"agent\")");
    expect_err("[[table]]\nname = \"a\"\nwrites = true\n",
               "a.toml:3:10: key `writes`: expected string, got boolean");
}

static void test_table_errors(void **state)
{
    (void)state;
    expect_err("[[table]]\nname = \"a\"\n\n[[table]]\nname = \"a\"\n",
               "a.toml:5:8: key `name`: table `a` is defined twice ([[table]] at lines 1 and 4)");
    expect_err("[[table]]\nname = \"subscriber\"\nstrategy = \"incremental\"\n",
               "a.toml:1:1: table `subscriber`: strategy incremental needs key `cursor` "
               "(e.g. cursor = \"updated_at\")");
    expect_err("[[table]]\nname = \"a\"\ncursor = \"updated_at\"\n",
               "a.toml:3:1: key `cursor`: table `a` is full; only incremental tables have a "
               "cursor");
    expect_err("[[table]]\nname = \"a\"\nstrategy = \"on_demand\"\ncursor = \"u\"\n",
               "a.toml:4:1: key `cursor`: table `a` is on_demand; only incremental tables have "
               "a cursor");
    expect_err("[[table]]\nname = \"a\"\nstrategy = \"snapshot\"\n",
               "a.toml:3:12: key `strategy`: unknown strategy \"snapshot\" (full, incremental or "
               "on_demand)");
    expect_err("[[table]]\nstrategy = \"full\"\n", "a.toml:1:1: [[table]]: key `name` is required");
    expect_err("[[table]]\nname = \"1abc\"\n",
               "a.toml:2:8: key `name`: \"1abc\" is not an identifier ([A-Za-z_][A-Za-z0-9_]*)");
    /* Issue 11: names replay refuses must not reach the journal. */
    expect_err("[[table]]\nname = \"_agent_state\"\n",
               "a.toml:2:8: key `name`: table name \"_agent_state\": names starting with \"sqlite_\" or "
               "\"_agent_\" are reserved");
    expect_err("[defaults]\nchunk = 5\n\n[[table]]\nname = \"SQLite_x\"\n",
               "a.toml:5:8: key `name`: table name \"SQLite_x\": names starting with \"sqlite_\" or "
               "\"_agent_\" are reserved");
    expect_err("[[table]]\nname = \"_Agent_mine\"\n",
               "a.toml:2:8: key `name`: table name \"_Agent_mine\": names starting with \"sqlite_\" or "
               "\"_agent_\" are reserved");
    expect_err("[[table]]\nname = \"a\"\nkey = \"a-b\"\n",
               "a.toml:3:7: key `key`: \"a-b\" is not an identifier ([A-Za-z_][A-Za-z0-9_]*)");
    expect_err("[[table]]\nname = \"a\"\nchunk = 0\n",
               "a.toml:3:9: key `chunk`: must be between 1 and 100000, got 0");
    expect_err("[[table]]\nname = \"a\"\nchunk = 100001\n",
               "a.toml:3:9: key `chunk`: must be between 1 and 100000, got 100001");
    expect_err("[[table]]\nname = \"a\"\ninterval = \"0ms\"\n",
               "a.toml:3:12: key `interval`: must be greater than 0");
    expect_err("[[table]]\nname = \"a\"\nttl = \"1y\"\n",
               "a.toml:3:7: key `ttl`: invalid duration \"1y\": unknown unit (ms, s, m, h or d)");
    expect_err("[[table]]\nname = \"a\"\nlimit = 5\n",
               "a.toml:3:1: key `limit`: unknown key in [[table]] (known: name, strategy, key, "
               "cursor, columns, chunk, streams, ttl, interval, lookback, sweep, writes, conflict)");
    expect_err("[defaults]\ncursor = \"u\"\n",
               "a.toml:2:1: key `cursor`: belongs in each [[table]], not in [defaults]");
    expect_err("[defaults]\nretries = 1\n",
               "a.toml:2:1: key `retries`: unknown key in [defaults] (known: strategy, key, "
               "chunk, streams, ttl, interval, lookback, sweep, writes, conflict)");
    expect_err("[defaults]\nchunk = \"big\"\n",
               "a.toml:2:9: key `chunk`: expected integer, got string");
}

static void test_columns(void **state)
{
    (void)state;
    struct config c;
    parse_ok("[[table]]\nname = \"a\"\nkey = \"k\"\ncolumns = [\n  \"x\",\n  \"k\", # key\n]\n", &c);
    assert_int_equal(c.tables[0].ncolumns, 2);
    assert_string_equal(c.tables[0].columns[0], "x");
    assert_string_equal(c.tables[0].columns[1], "k");
    config_free(&c);
    expect_err("[[table]]\nname = \"a\"\ncolumns = []\n",
               "a.toml:3:11: key `columns`: must not be empty (leave it out for all columns)");
    expect_err("[[table]]\nname = \"a\"\ncolumns = \"id\"\n",
               "a.toml:3:11: key `columns`: expected array of column names, got string");
    expect_err("[[table]]\nname = \"a\"\ncolumns = [\"id\", 2]\n",
               "a.toml:3:18: key `columns`: item 2: expected string");
    expect_err("[[table]]\nname = \"a\"\ncolumns = [\"id\",\n  \"x y\"]\n",
               "a.toml:4:3: key `columns`: item 2 \"x y\": not an identifier "
               "([A-Za-z_][A-Za-z0-9_]*)");
    expect_err("[[table]]\nname = \"a\"\ncolumns = [\"id\", \"n\", \"id\"]\n",
               "a.toml:3:23: key `columns`: item 3 \"id\": listed twice");
    expect_err("[[table]]\nname = \"a\"\ncolumns = [\"name\"]\n",
               "a.toml:3:1: key `columns`: table `a`: must include the key column `id`");
    expect_err("[[table]]\nname = \"a\"\nstrategy = \"incremental\"\ncursor = \"u\"\n"
               "columns = [\"id\"]\n",
               "a.toml:5:1: key `columns`: table `a`: must include the cursor column `u`");
}

static void test_env_domain(void **state)
{
    (void)state;
    struct config c;
    setenv("IPTVPORTAL_DOMAIN", "envdom", 1);
    parse_ok("", &c);   /* neither url nor domain in the file: env supplies domain */
    assert_string_equal(c.remote.domain, "envdom");
    assert_string_equal(c.remote.url, "https://envdom.admin.iptvportal.ru");
    config_free(&c);

    parse_ok("[remote]\ndomain = \"filedom\"\n", &c);   /* the file wins */
    assert_string_equal(c.remote.domain, "filedom");
    assert_string_equal(c.remote.url, "https://filedom.admin.iptvportal.ru");
    config_free(&c);

    parse_ok("[remote]\nurl = \"https://portal.example/\"\n", &c);
    assert_null(c.remote.domain);
    assert_string_equal(c.remote.url, "https://portal.example");
    config_free(&c);

    setenv("IPTVPORTAL_DOMAIN", "", 1);   /* empty counts as unset */
    parse_ok("", &c);
    assert_null(c.remote.domain);
    assert_null(c.remote.url);
    config_free(&c);

    setenv("IPTVPORTAL_DOMAIN", "bad/dom", 1);
    struct config z;
    memset(&z, 0x5A, sizeof z);
    char err[256];
    assert_int_equal(config_parse("a.toml", "", 0, &z, err, sizeof err), -1);
    assert_string_equal(err, "a.toml: environment IPTVPORTAL_DOMAIN: \"bad/dom\" is not a bare "
                             "domain like \"example\"");
    assert_null(z.path);
    unsetenv("IPTVPORTAL_DOMAIN");
}

static void test_env_username(void **state)
{
    (void)state;
    struct config c;
    setenv("IPTVPORTAL_USERNAME", "envuser", 1);
    parse_ok("[remote]\nusername = \"fileuser\"\n", &c);
    assert_string_equal(c.remote.username, "envuser");
    config_free(&c);
    parse_ok("", &c);
    assert_string_equal(c.remote.username, "envuser");
    config_free(&c);
    setenv("IPTVPORTAL_USERNAME", "", 1);
    parse_ok("[remote]\nusername = \"fileuser\"\n", &c);
    assert_string_equal(c.remote.username, "fileuser");
    config_free(&c);
    unsetenv("IPTVPORTAL_USERNAME");
    /* The password is never read or kept: only the variable's name. */
    setenv("IPTVPORTAL_PASSWORD", "s3cret-value", 1);
    parse_ok("", &c);
    assert_string_equal(c.remote.password_env, "IPTVPORTAL_PASSWORD");
    config_free(&c);
    unsetenv("IPTVPORTAL_PASSWORD");
}

static void test_load_files(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("test_config");
    assert_non_null(dir);
    char path[512], err[512];
    struct config c;

    snprintf(path, sizeof path, "%s/missing.toml", dir);
    memset(&c, 0x5A, sizeof c);
    assert_int_equal(config_load(path, &c, err, sizeof err), -1);
    char want[600];
    snprintf(want, sizeof want, "%s: cannot read: No such file or directory", path);
    assert_string_equal(err, want);
    assert_null(c.path);

    assert_int_equal(config_load(dir, &c, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s: cannot read: Is a directory", dir);
    assert_string_equal(err, want);

    snprintf(path, sizeof path, "%s/bad.toml", dir);
    const char *bad = "[remote]\nurl = \"https://x\"\n\n[[table]]\nname = \"t\"\nttl = \"1\"\n";
    assert_int_equal(tu_write_file(path, bad, strlen(bad)), 0);
    assert_int_equal(config_load(path, &c, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s:6:7: key `ttl`: invalid duration \"1\": missing unit "
                                "(ms, s, m, h or d)", path);
    assert_string_equal(err, want);

    snprintf(path, sizeof path, "%s/good.toml", dir);
    const char *good = "[remote]\r\ndomain = \"x\"\r\n";
    assert_int_equal(tu_write_file(path, good, strlen(good)), 0);
    assert_int_equal(config_load(path, &c, err, sizeof err), 0);
    assert_string_equal(c.path, path);
    assert_string_equal(c.remote.url, "https://x.admin.iptvportal.ru");
    config_free(&c);

    tu_rmrf(dir);
    free(dir);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(config_strategy_name(STRATEGY_FULL), "full");
    assert_string_equal(config_strategy_name(STRATEGY_INCREMENTAL), "incremental");
    assert_string_equal(config_strategy_name(STRATEGY_ON_DEMAND), "on_demand");
    struct config c = {0};
    config_free(&c);   /* a zeroed config frees cleanly */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_repo_agent_toml, clear_env),
        cmocka_unit_test_setup(test_empty_file_defaults, clear_env),
        cmocka_unit_test_setup(test_every_key_set, clear_env),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_upstream),
        cmocka_unit_test_setup(test_sizes, clear_env),
        cmocka_unit_test_setup(test_value_errors, clear_env),
        cmocka_unit_test_setup(test_key_and_section_errors, clear_env),
        cmocka_unit_test_setup(test_toml_errors_propagate, clear_env),
        cmocka_unit_test_setup(test_sane_values, clear_env),
        cmocka_unit_test_setup(test_serve_listen, clear_env),
        cmocka_unit_test(test_listen_helpers),
        cmocka_unit_test_setup(test_table_defaults, clear_env),
        cmocka_unit_test_setup(test_table_errors, clear_env),
        cmocka_unit_test_setup(test_write_policy, clear_env),
        cmocka_unit_test_setup(test_columns, clear_env),
        cmocka_unit_test_setup(test_env_domain, clear_env),
        cmocka_unit_test_setup(test_env_username, clear_env),
        cmocka_unit_test_setup(test_load_files, clear_env),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
