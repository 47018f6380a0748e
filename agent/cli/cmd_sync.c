/* cmd_sync.c — `--once`, `sync` and `replay`: pull tables into the journal and
 * apply the journal to cache.db. Exit status per docs/interface.md: 0 every
 * table ok, 1 any table failed (the others are still applied), 2 usage/config. */
#include "agent/cli/cmd.h"
#include "agent/base/clock.h"
#include "agent/base/err.h"
#include "agent/base/log.h"
#include "agent/pull/pull.h"
#include "agent/pull/store.h"
#include "agent/ship/upstream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Pull the selected tables (NULL: all configured), print a summary. */
static int run_pulls(const struct config *cfg, char **only, int nonly, int force, int full, int compact)
{
    char err[IA_ERRLEN];
    for (int i = 0; i < nonly; i++) {
        if (!config_table_find(cfg, only[i])) {
            fprintf(stderr, "iptv-agent: table \"%s\" is not configured in %s\n", only[i], cfg->path);
            return 2;
        }
        for (int k = 0; k < i; k++)
            if (!strcmp(only[k], only[i])) {
                fprintf(stderr, "iptv-agent: table \"%s\" is named twice\n", only[i]);
                return 2;
            }
    }
    if (cfg->upstream.url) {
        fprintf(stderr, "iptv-agent: this agent is an edge of %s ([upstream] in %s): its tables come from the hub; "
                "`iptv-agent --once` takes the hub's changes\n", cfg->upstream.url, cfg->path);
        return 2;
    }
    if (cfg->ntables == 0) {
        fprintf(stderr, "iptv-agent: no [[table]] in %s: nothing to pull\n", cfg->path);
        return 2;
    }
    struct store s;
    if (store_open(cfg, 1, &s, err, sizeof err) != 0) {
        fprintf(stderr, "iptv-agent: %s\n", err);
        return 1;
    }
    remote *r = remote_from_config(cfg, err, sizeof err);
    if (!r) {
        fprintf(stderr, "iptv-agent: %s\n", err);
        store_close(&s);
        return 2;
    }
    struct pull_ctx c = {.cfg = cfg, .remote = r, .jw = s.jw, .rp = s.rp, .progress = isatty(2)};
    int failed = 0, pulled = 0;
    printf("%-24s %-12s %-18s %10s %8s %8s  %s\n", "table", "strategy", "action", "rows", "deleted", "seconds",
           "result");
    for (int i = 0; i < cfg->ntables; i++) {
        const struct config_table *t = &cfg->tables[i];
        int chosen = nonly == 0;
        for (int k = 0; k < nonly; k++) chosen |= !strcmp(only[k], t->name);
        if (!chosen) continue;
        struct replay_table st = {0};
        int known = replay_table_get(s.rp, t->name, &st, err, sizeof err);
        int due = force || pull_due(t, known == 0 ? &st : NULL, clock_wall_ms());
        int forbidden = known == 0 && st.forbidden;
        replay_table_free(&st);
        if (!due || (forbidden && !force)) {
            printf("%-24s %-12s %-18s %10s %8s %8s  %s\n", t->name, config_strategy_name(t->strategy),
                   forbidden ? "skipped" : t->strategy == STRATEGY_ON_DEMAND ? "on demand" : "not due", "-", "-",
                   "-", forbidden ? "forbidden (use sync to retry)" : "ok");
            if (forbidden) log_warn("table %s: skipped: the portal refused it before (403)", t->name);
            continue;
        }
        struct pull_result pr;
        pulled++;
        log_info("table %s: pulling (%s%s)", t->name, config_strategy_name(t->strategy),
                 full && t->strategy == STRATEGY_INCREMENTAL ? ", --full: snapshot" : "");
        if (pull_table(&c, t, full, &pr) != 0) {
            failed++;
            log_error("table %s: %s", t->name, pr.error);
        }
        printf("%-24s %-12s %-18s %10llu %8llu %8.2f  %s\n", t->name, config_strategy_name(t->strategy),
               pr.action, (unsigned long long)pr.rows, (unsigned long long)pr.deleted, pr.seconds,
               pr.ok ? (pr.schema_changed ? "ok (schema changed)" : "ok") : pr.forbidden ? "forbidden" : "FAILED");
        fflush(stdout);
    }
    printf("%d table%s pulled, %d failed; journal at seq %llu, cache applied to %llu\n", pulled,
           pulled == 1 ? "" : "s", failed, (unsigned long long)journal_writer_durable_seq(s.jw),
           (unsigned long long)replay_applied_seq(s.rp));
    /* --once compacts as the daemon does, so a cron job does not fill the disk;
     * a failure here is not the pulls' (they are applied). */
    struct journal_compact_result cr = {0};
    if (compact && store_compact(&s, cfg, UINT64_MAX, NULL, &cr, err, sizeof err) != 0)
        log_warn("journal compaction: %s", err);
    else if (cr.deleted)
        log_info("journal compacted: %zu segments (%llu bytes) deleted, %zu kept", cr.deleted,
                 (unsigned long long)cr.freed, cr.kept);
    remote_free(r);
    store_close(&s);
    return failed ? 1 : 0;
}

/* Edge mode: one exchange with the hub (upstream.h). */
static int run_upstream(const struct config *cfg)
{
    char err[IA_ERRLEN];
    struct store s;
    if (store_open(cfg, 1, &s, err, sizeof err) != 0) {
        fprintf(stderr, "iptv-agent: %s\n", err);
        return 1;
    }
    upstream *u = upstream_new(cfg, err, sizeof err);
    if (!u) {
        fprintf(stderr, "iptv-agent: %s\n", err);
        store_close(&s);
        return 2;
    }
    struct upstream_result r;
    int rc = upstream_sync(u, s.db_path, s.dir, &r, err, sizeof err);
    upstream_free(u);
    store_close(&s);
    if (rc != 0) {
        fprintf(stderr, "iptv-agent: %s\n", err);
        return 1;
    }
    if (!strcmp(r.action, "current"))
        printf("upstream %s: already at %s\n", cfg->upstream.url, r.id);
    else if (!strcmp(r.action, "snapshot"))
        printf("upstream %s: snapshot %s imported, %llu rows, %llu bytes, %.2f s\n", cfg->upstream.url, r.id,
               (unsigned long long)r.rows, (unsigned long long)r.bytes, r.seconds);
    else
        printf("upstream %s: delta to %s applied, %llu changes, %llu bytes, %.2f s\n", cfg->upstream.url, r.id,
               (unsigned long long)r.changes, (unsigned long long)r.bytes, r.seconds);
    return 0;
}

static const char once_usage[] =
    "usage: iptv-agent --once [--force]\n"
    "\n"
    "Apply any journal records cache.db has not seen, pull every table that is due\n"
    "(never pulled, or older than its ttl/interval; --force: all), apply, print a\n"
    "summary, compact the journal (as `journal compact`), exit.\n"
    "Exit: 0 all tables ok; 1 any failed (the others are applied);\n"
    "2 usage or configuration error.\n"
    "An edge ([upstream] url) instead takes the hub's changes once: a delta from the\n"
    "snapshot it is at, or a snapshot when it is at none (exit 1 when the hub fails).\n";

int cmd_once(const struct config *cfg, int argc, char **argv)
{
    if (cmd_wants_help(argc, argv)) { fputs(once_usage, stdout); return 0; }
    int force = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--force")) force = 1;
        else { fprintf(stderr, "iptv-agent --once: unexpected argument %s\n%s", argv[i], once_usage); return 2; }
    }
    return cfg->upstream.url ? run_upstream(cfg) : run_pulls(cfg, NULL, 0, force, 0, 1);
}

static const char sync_usage[] =
    "usage: iptv-agent sync [--full] [TABLE...]\n"
    "\n"
    "Pull now, whether due or not: the named tables, or all configured ones.\n"
    "--full takes a snapshot even of incremental tables. Exit as --once.\n";

int cmd_sync(const struct config *cfg, int argc, char **argv)
{
    if (cmd_wants_help(argc, argv)) { fputs(sync_usage, stdout); return 0; }
    int full = 0, n = 0;
    char **only = calloc((size_t)argc, sizeof *only);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--full")) full = 1;
        else if (argv[i][0] == '-') {
            fprintf(stderr, "iptv-agent sync: unknown option %s\n%s", argv[i], sync_usage);
            free(only);
            return 2;
        } else only[n++] = argv[i];
    }
    int rc = run_pulls(cfg, only, n, 1, full, 0);
    free(only);
    return rc;
}

static const char replay_usage[] =
    "usage: iptv-agent replay [--rebuild]\n"
    "       iptv-agent replay --skip SEQ\n"
    "\n"
    "Apply the journal records cache.db has not seen. --rebuild deletes cache.db and\n"
    "recreates it from the journal alone (the tables come out identical).\n"
    "--skip SEQ: the way out when replay refuses a record for good (the error names\n"
    "it: \"journal seq SEQ (segment N offset M), ... table T: why\"): marks exactly\n"
    "that record applied without its content, logs it, and records it in cache.db\n"
    "so a --rebuild skips it too; later records of a table whose skipped SCHEMA\n"
    "they need are passed by as well. Only the record replay stops at can be\n"
    "skipped, and only a refusal (not a full disk or a damaged file).\n"
    "Exit: 0 ok, 1 error (e.g. a damaged journal: the message names segment and offset).\n";

/* The journal's lock, and replay options for cache.db beside it, without
 * store_open (which applies what is pending): nothing appends or applies
 * meanwhile. ro points into paths (two bufs the caller frees, also on failure);
 * the caller closes *jw. 0, or -1 with err (nothing held). */
static int lock_journal(const struct config *cfg, struct buf paths[2], struct replay_opts *ro,
                        struct journal_writer **jw, char *err, size_t errlen)
{
    buf_printf(&paths[0], "%s/journal", cfg->storage.dir);
    buf_printf(&paths[1], "%s/cache.db", cfg->storage.dir);
    struct journal_opts jo = {.dir = paths[0].p, .segment_size = (uint64_t)cfg->storage.segment_size,
                              .level = cfg->storage.compression_level};
    struct store s = {.journal_dir = paths[0].p, .db_path = paths[1].p};
    store_replay_opts(&s, ro);
    return journal_writer_open(&jo, jw, err, errlen) == 0 ? 0 : -1;
}

static int replay_skip_cmd(const struct config *cfg, const char *arg)
{
    char *end;
    errno = 0;
    unsigned long long seq = arg[0] >= '0' && arg[0] <= '9' ? strtoull(arg, &end, 10) : 0;
    if (seq == 0 || errno || *end) {
        fprintf(stderr, "iptv-agent replay: --skip: invalid value \"%s\": expected the seq of a journal record "
                "(a positive integer, as the refusal names it)\n", arg);
        return 2;
    }
    char err[IA_ERRLEN], why[IA_ERRLEN];
    struct journal_writer *jw = NULL;
    struct replay *rp = NULL;
    struct replay_opts ro;
    struct buf paths[2] = {{0}, {0}};
    /* Not store_open, which would stop at the very record to skip. */
    int rc = lock_journal(cfg, paths, &ro, &jw, err, sizeof err);
    if (rc == 0) rc = replay_open(&ro, &rp, err, sizeof err);
    if (rc == 0) rc = replay_skip(rp, (uint64_t)seq, why, sizeof why, err, sizeof err);
    if (rc == 0) {
        log_warn("journal seq %llu SKIPPED by the user: its content is not in cache.db: %s", seq, why);
        printf("skipped journal seq %llu (recorded in cache.db; a rebuild skips it too): %s\n", seq, why);
    } else if (rc == 1) {
        printf("%s\n", why);
    }
    /* Then the rest, as `replay` does. */
    struct replay_stats st = {0};
    if (rc >= 0 && replay_apply(rp, JOURNAL_SEQ_MAX, &st, err, sizeof err) != 0) rc = -1;
    if (rc < 0) fprintf(stderr, "iptv-agent replay: %s\n", err);
    else printf("cache.db is up to date with the journal (%llu more records applied)\n",
                (unsigned long long)st.records);
    replay_close(rp);
    journal_writer_close(jw);
    buf_free(&paths[0]);
    buf_free(&paths[1]);
    return rc == 0 ? 0 : 1;
}

int cmd_replay(const struct config *cfg, int argc, char **argv)
{
    if (cmd_wants_help(argc, argv)) { fputs(replay_usage, stdout); return 0; }
    int rebuild = 0;
    const char *skip = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rebuild")) rebuild = 1;
        else if (!strcmp(argv[i], "--skip") && i + 1 < argc) skip = argv[++i];
        else { fprintf(stderr, "iptv-agent replay: unexpected argument %s\n%s", argv[i], replay_usage); return 2; }
    }
    if (skip && rebuild) {
        fprintf(stderr, "iptv-agent replay: --skip and --rebuild go separately: skip first, then rebuild\n%s",
                replay_usage);
        return 2;
    }
    if (skip) return replay_skip_cmd(cfg, skip);
    char err[IA_ERRLEN];
    struct replay_stats st = {0};
    int rc;
    if (rebuild) {
        /* Hold the journal lock so nothing appends while cache.db is rebuilt. */
        struct journal_writer *jw = NULL;
        struct replay_opts ro;
        struct buf paths[2] = {{0}, {0}};
        rc = lock_journal(cfg, paths, &ro, &jw, err, sizeof err);
        if (rc == 0) rc = replay_rebuild(&ro, &st, err, sizeof err);
        journal_writer_close(jw);
        buf_free(&paths[0]);
        buf_free(&paths[1]);
    } else {
        struct store s;
        rc = store_open(cfg, 1, &s, err, sizeof err);   /* applies what is pending */
        if (rc == 0) store_close(&s);
    }
    if (rc != 0) {
        fprintf(stderr, "iptv-agent replay: %s\n", err);
        return 1;
    }
    if (rebuild)
        printf("rebuilt cache.db from the journal: %llu records, %llu rows written, %llu deleted, %llu snapshots\n",
               (unsigned long long)st.records, (unsigned long long)st.rows_written,
               (unsigned long long)st.rows_deleted, (unsigned long long)st.snapshots);
    else
        printf("cache.db is up to date with the journal\n");
    return 0;
}
