/* bench_pull.c — the whole pull path, end to end, on slow links: `iptv-agent
 * --once` as a child process against the fake portal, parallel key-range
 * streams (the default) against one stream, with the raw insert loop as the
 * ceiling, all in one run of one binary.
 *
 * The portal's database is generated once per size (--db in the temp dir) and
 * the portal stays up; its reply latency is changed between runs through
 * POST /_fake/faults {"latency_ms":N}. Each run gets a fresh storage dir,
 * removed after it. Results (rows/s are wall time from fork to reaped):
 *   pull_snapshot        rows/s of a first --once into an empty storage dir, per
 *                        latency and streams setting; params seconds, rss_mib,
 *                        journal_bytes (the journal on disk after the run);
 *                        streams "default": targets 100k rows/s at 50 ms and
 *                        300k at 0 ms
 *   pull_snapshot_rss    that run's peak RSS (wait4 ru_maxrss), MiB; target < 64
 *   pull_snapshot_ratio  per latency: default rows/s / streams=1 rows/s
 *                        (target 8 at 50 ms)
 *   raw_insert           rows/s of the raw prepared-INSERT loop (bench/raw_insert.c)
 *                        of ROWS generated rows into the table the agent made
 *   pull_vs_raw          0 ms default snapshot rows/s / raw_insert (target 0.7)
 *   pull_catchup         rows/s of the --once after 100000 rows changed on the
 *                        portal, at 50 ms, per streams setting
 *   pull_incremental     seconds of a --once after 1000 rows changed, at 0 ms
 *                        (target < 1), and pull_incremental_rss
 * Every snapshot reads the same unchanged portal. The storage dirs of the
 * last latency's snapshots stay (one per streams setting: the only time more
 * than one is on disk); then 100000 rows change once and each of them catches
 * up, then 1000 more change and the first setting's dir takes the increment.
 * With --rss-rows N (default 4000000; 0 skips) one more
 * portal of N rows and one more snapshot, default settings at 0 ms, checks
 * the RSS at that size. Targets are printed (within_target), not asserted.
 *
 * Only tv_program is configured (incremental on updated_at, interval "1ms" so
 * each --once finds it due). Everything lives in one temp dir, removed at the
 * end. The agent is $IA_AGENT, else the iptv-agent built beside this benchmark.
 * One JSON line per result on stdout; progress on stderr. */
#include "tests/testutil.h"
#include "agent/base/clock.h"
#include "bench/raw_insert.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define BENCH_PW_ENV "IA_BENCH_PULL_PW"
#define BENCH_PW "bench-pull"
#define CHANGED_ROWS 1000
#define CATCHUP_ROWS 100000
#define CATCHUP_LATENCY_MS 50
#define MAX_LIST 16
#define STREAMS_DEFAULT 0          /* in a streams list: write no `streams` key */

static const char usage[] =
    "usage: bench_pull [--latency-ms LIST] [--streams LIST] [--chunk N] [--rss-rows N] [ROWS]\n"
    "  --latency-ms  portal reply latencies, ms (default 0,20,50,100)\n"
    "  --streams     \"default\" (no key) or N per entry (default default,1)\n"
    "  --chunk       rows per page written in the [[table]] (default: none, the table default)\n"
    "  --rss-rows    one more snapshot at this size for the RSS (default 4000000; 0 skips)\n"
    "  ROWS          tv_program rows (default 1000000)\n";

struct bench {
    const char *agent;
    char *dir;                     /* the temp dir holding everything */
    long long rows, chunk;         /* chunk 0: not written */
    struct tu_portal portal;
    int runs;                      /* storage dirs made so far (their names) */
    int mutations;                 /* /_fake/mutate calls so far (each its own seed) */
};

struct run {
    int status;          /* exit status, or -signal */
    double seconds;      /* wall time, fork to reaped */
    double rss_mib;      /* peak resident set of the child */
    long long journal_bytes;
    char action[32];     /* what the agent reported doing to tv_program */
};

/* ---- the agent ------------------------------------------------------------------- */

/* The action the agent reported for tv_program ("snapshot", "incremental+sweep"...). */
static void agent_action(const char *out_path, char *out, size_t n)
{
    char *text = tu_read_file(out_path, NULL);
    snprintf(out, n, "?");
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        char name[64], strategy[32], action[32];
        if (sscanf(line, "%63s %31s %31s", name, strategy, action) == 3 && !strcmp(name, "tv_program")) {
            snprintf(out, n, "%s", action);
            break;
        }
        line = nl ? nl + 1 : NULL;
    }
    free(text);
}

/* Bytes of the files in the storage dir's journal/. */
static long long journal_bytes(const char *run_dir)
{
    char jdir[PATH_MAX], p[PATH_MAX + 300];
    snprintf(jdir, sizeof jdir, "%s/data/journal", run_dir);
    DIR *d = opendir(jdir);
    long long total = 0;
    struct dirent *e;
    struct stat st;
    while (d && (e = readdir(d))) {
        snprintf(p, sizeof p, "%s/%s", jdir, e->d_name);
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) total += st.st_size;
    }
    if (d) closedir(d);
    return total;
}

/* `agent -c run_dir/agent.toml --once`, stdout/stderr to files in run_dir. 0 if it exited 0. */
static int run_once(const struct bench *b, const char *run_dir, struct run *r)
{
    char cfg[PATH_MAX], out[PATH_MAX], err[PATH_MAX];
    snprintf(cfg, sizeof cfg, "%s/agent.toml", run_dir);
    snprintf(out, sizeof out, "%s/agent.out", run_dir);
    snprintf(err, sizeof err, "%s/agent.err", run_dir);
    const char *argv[] = {b->agent, "-c", cfg, "--once", NULL};
    memset(r, 0, sizeof *r);
    double t0 = clock_mono_s();
    pid_t pid = fork();
    if (pid < 0) { perror("bench_pull: fork"); return -1; }
    if (pid == 0) {
        int in = open("/dev/null", O_RDONLY);
        int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (in < 0 || fo < 0 || fe < 0) _exit(126);
        dup2(in, 0);
        dup2(fo, 1);
        dup2(fe, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    while (wait4(pid, &st, 0, &ru) < 0) {
        if (errno != EINTR) { perror("bench_pull: wait4"); return -1; }
    }
    r->seconds = clock_mono_s() - t0;
    r->rss_mib = (double)ru.ru_maxrss / 1024.0;   /* Linux: KiB */
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? -WTERMSIG(st) : -1;
    if (r->status != 0) {
        char *text = tu_read_file(err, NULL);
        fprintf(stderr, "bench_pull: %s -c %s --once exited %d:\n%s\n", b->agent, cfg, r->status, text ? text : "");
        free(text);
        return -1;
    }
    r->journal_bytes = journal_bytes(run_dir);
    agent_action(out, r->action, sizeof r->action);
    return 0;
}

/* A fresh storage dir with its agent.toml (streams: STREAMS_DEFAULT or N). 0 ok. */
static int new_run_dir(struct bench *b, int streams, char *run_dir, size_t n)
{
    snprintf(run_dir, n, "%s/run%d", b->dir, ++b->runs);
    if (mkdir(run_dir, 0755) != 0) {
        fprintf(stderr, "bench_pull: mkdir %s: %s\n", run_dir, strerror(errno));
        return -1;
    }
    char cfg[PATH_MAX], text[2048], extra[96] = "";
    int len = 0;
    if (streams != STREAMS_DEFAULT) len += snprintf(extra + len, sizeof extra - (size_t)len, "streams = %d\n", streams);
    if (b->chunk) snprintf(extra + len, sizeof extra - (size_t)len, "chunk = %lld\n", b->chunk);
    snprintf(cfg, sizeof cfg, "%s/agent.toml", run_dir);
    len = snprintf(text, sizeof text,
                   "[remote]\nurl = \"%s\"\nusername = \"admin\"\npassword_env = \"%s\"\n"
                   "retries = 2\ntimeout = \"60s\"\n\n[storage]\ndir = \"%s/data\"\n\n"
                   "[[table]]\nname = \"tv_program\"\nstrategy = \"incremental\"\n"
                   "cursor = \"updated_at\"\ninterval = \"1ms\"\n%s",
                   b->portal.url, BENCH_PW_ENV, run_dir, extra);
    if (tu_write_file(cfg, text, (size_t)len) != 0) {
        fprintf(stderr, "bench_pull: writing %s\n", cfg);
        return -1;
    }
    return 0;
}

/* ---- the portal ------------------------------------------------------------------ */

/* Start the portal on dir/portal-ROWS.db (generated on the first start). 0 ok. */
static int portal_start(struct bench *b, long long rows)
{
    char pdb[PATH_MAX], rows_s[32];
    snprintf(pdb, sizeof pdb, "%s/portal-%lld.db", b->dir, rows);
    snprintf(rows_s, sizeof rows_s, "%lld", rows);
    fprintf(stderr, "bench_pull: portal of %lld tv_program rows (generated once, in %s)...\n", rows, pdb);
    double t0 = clock_mono_s();
    const char *args[] = {"--rows", rows_s, "--db", pdb, "--password", BENCH_PW, NULL};
    if (tu_portal_start(&b->portal, args) != 0) {
        fprintf(stderr, "bench_pull: cannot start the fake portal on %s\n", pdb);
        return -1;
    }
    fprintf(stderr, "bench_pull: portal ready in %.1f s at %s\n", clock_mono_s() - t0, b->portal.url);
    return 0;
}

static void portal_stop(struct bench *b, long long rows)
{
    char pdb[PATH_MAX];
    tu_portal_stop(&b->portal);
    memset(&b->portal, 0, sizeof b->portal);
    snprintf(pdb, sizeof pdb, "%s/portal-%lld.db", b->dir, rows);
    raw_insert_rm_db(pdb);
}

static int set_latency(const struct bench *b, int ms)
{
    char body[64];
    snprintf(body, sizeof body, "{\"latency_ms\":%d}", ms);
    if (tu_admin(&b->portal, "/_fake/faults", body) == 200) return 0;
    fprintf(stderr, "bench_pull: POST /_fake/faults %s failed\n", body);
    return -1;
}

static int mutate(struct bench *b, long long updates)
{
    char body[160];
    snprintf(body, sizeof body, "{\"table\":\"tv_program\",\"updates\":%lld,\"seed\":%d}", updates, 7 + b->mutations++);
    if (tu_admin(&b->portal, "/_fake/mutate", body) == 200) return 0;
    fprintf(stderr, "bench_pull: POST /_fake/mutate %s failed\n", body);
    return -1;
}

/* ---- results --------------------------------------------------------------------- */

static void streams_json(int streams, char *out, size_t n)
{
    if (streams == STREAMS_DEFAULT) snprintf(out, n, "\"default\"");
    else snprintf(out, n, "%d", streams);
}

/* One result line; params is the rest of the params object after table/rows/chunk. */
static void emit(const struct bench *b, const char *name, const char *unit, double value, long long rows,
                 const char *params)
{
    char chunk[32];
    if (b->chunk) snprintf(chunk, sizeof chunk, "%lld", b->chunk);
    else snprintf(chunk, sizeof chunk, "\"default\"");
    printf("{\"bench\":\"%s\",\"unit\":\"%s\",\"value\":%.6g,\"params\":{\"table\":\"tv_program\","
           "\"rows\":%lld,\"chunk\":%s%s}}\n", name, unit, value, rows, chunk, params);
    fflush(stdout);
}

static const char *tf(int ok) { return ok ? "true" : "false"; }

/* The CREATE TABLE the agent made for tv_program in db_path; malloc'd or NULL. */
static char *table_sql(const char *db_path)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char *s = NULL;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'tv_program'", -1,
                           &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        s = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return s;
}

/* ---- measurements ---------------------------------------------------------------- */

/* A snapshot of b->rows into the fresh run_dir at latency ms; emits pull_snapshot
 * and pull_snapshot_rss. *rps: its rows/s. 0 ok. */
static int snapshot(struct bench *b, const char *run_dir, int ms, int streams, double *rps)
{
    char cache[PATH_MAX], sj[16], params[512];
    struct run r;
    streams_json(streams, sj, sizeof sj);
    fprintf(stderr, "bench_pull: snapshot of %lld rows, %d ms, streams %s...\n", b->rows, ms, sj);
    if (run_once(b, run_dir, &r) != 0) return -1;
    snprintf(cache, sizeof cache, "%s/data/cache.db", run_dir);
    long long got = raw_insert_count(cache);
    if (got != b->rows) {
        fprintf(stderr, "bench_pull: %s holds %lld rows after the snapshot, the portal %lld\n", cache, got, b->rows);
        return -1;
    }
    *rps = (double)b->rows / r.seconds;
    fprintf(stderr, "bench_pull: snapshot %.2f s (%.0f rows/s), peak RSS %.1f MiB, journal %lld bytes\n",
            r.seconds, *rps, r.rss_mib, r.journal_bytes);
    int len = snprintf(params, sizeof params,
                       ",\"latency_ms\":%d,\"streams\":%s,\"seconds\":%.3f,\"rss_mib\":%.1f,\"journal_bytes\":%lld",
                       ms, sj, r.seconds, r.rss_mib, r.journal_bytes);
    /* Issue 15's targets are for the default (parallel) settings. */
    long long target = streams != STREAMS_DEFAULT ? 0 : ms == 50 ? 100000 : ms == 0 ? 300000 : 0;
    if (target)
        snprintf(params + len, sizeof params - (size_t)len, ",\"target_rows_s\":%lld,\"within_target\":%s", target,
                 tf(*rps >= (double)target));
    emit(b, "pull_snapshot", "rows/s", *rps, b->rows, params);
    snprintf(params, sizeof params, ",\"latency_ms\":%d,\"streams\":%s,\"target_mib\":64,\"within_target\":%s", ms,
             sj, tf(r.rss_mib < 64));
    emit(b, "pull_snapshot_rss", "MiB", r.rss_mib, b->rows, params);
    return 0;
}

/* The --once in run_dir (snapshotted before `changed` rows changed on the
 * portal), at the latency set now; emits pull_catchup. 0 ok. */
static int catch_up(const struct bench *b, const char *run_dir, int streams, long long changed)
{
    char sj[16], params[512];
    struct run r;
    streams_json(streams, sj, sizeof sj);
    fprintf(stderr, "bench_pull: catch-up of %lld changed rows, %d ms, streams %s...\n", changed,
            CATCHUP_LATENCY_MS, sj);
    if (run_once(b, run_dir, &r) != 0) return -1;
    fprintf(stderr, "bench_pull: catch-up (%s) %.2f s\n", r.action, r.seconds);
    snprintf(params, sizeof params,
             ",\"latency_ms\":%d,\"streams\":%s,\"changed\":%lld,\"action\":\"%s\",\"seconds\":%.3f,"
             "\"rss_mib\":%.1f,\"journal_bytes\":%lld",
             CATCHUP_LATENCY_MS, sj, changed, r.action, r.seconds, r.rss_mib, r.journal_bytes);
    emit(b, "pull_catchup", "rows/s", (double)changed / r.seconds, b->rows, params);
    return 0;
}

/* The --once in run_dir (up to date before CHANGED_ROWS changed), at 0 ms;
 * emits pull_incremental and pull_incremental_rss. 0 ok. */
static int increment(const struct bench *b, const char *run_dir, int streams)
{
    char sj[16], params[512];
    struct run r;
    streams_json(streams, sj, sizeof sj);
    fprintf(stderr, "bench_pull: increment of %d changed rows, 0 ms, streams %s...\n", CHANGED_ROWS, sj);
    if (run_once(b, run_dir, &r) != 0) return -1;
    fprintf(stderr, "bench_pull: increment (%s) %.3f s, peak RSS %.1f MiB\n", r.action, r.seconds, r.rss_mib);
    snprintf(params, sizeof params,
             ",\"latency_ms\":0,\"streams\":%s,\"changed\":%d,\"action\":\"%s\",\"journal_bytes\":%lld,"
             "\"target_s\":1,\"within_target\":%s",
             sj, CHANGED_ROWS, r.action, r.journal_bytes, tf(r.seconds < 1));
    emit(b, "pull_incremental", "s", r.seconds, b->rows, params);
    snprintf(params, sizeof params, ",\"latency_ms\":0,\"streams\":%s,\"changed\":%d", sj, CHANGED_ROWS);
    emit(b, "pull_incremental_rss", "MiB", r.rss_mib, b->rows, params);
    return 0;
}

/* Every latency x streams snapshot, the catch-ups and the increment, the raw
 * loop and the ratios, at b->rows. 0 ok. */
static int bench_links(struct bench *b, const int *lat, int nlat, const int *streams, int nstreams)
{
    double rps[MAX_LIST][MAX_LIST];
    char run_dir[MAX_LIST][PATH_MAX], params[512], *ddl = NULL;
    int rc = -1, kept = 0;
    if (portal_start(b, b->rows) != 0) return -1;
    /* Every snapshot reads the same, unchanged portal; the last latency's
     * storage dirs stay for the catch-ups. */
    for (int li = 0; li < nlat; li++) {
        if (set_latency(b, lat[li]) != 0) goto out;
        for (int si = 0; si < nstreams; si++) {
            char *dir = run_dir[si];
            if (new_run_dir(b, streams[si], dir, PATH_MAX) != 0) goto out;
            int ok = snapshot(b, dir, lat[li], streams[si], &rps[li][si]) == 0;
            if (ok && !ddl) {
                char cache[PATH_MAX + 16];
                snprintf(cache, sizeof cache, "%s/data/cache.db", dir);
                ok = (ddl = table_sql(cache)) != NULL;
                if (!ok) fprintf(stderr, "bench_pull: no tv_program table in %s\n", cache);
            }
            if (ok && li == nlat - 1) kept = si + 1;
            else tu_rmrf(dir);
            if (!ok) goto out;
        }
    }
    /* One change of the portal, the same catch-up for every setting. */
    long long changed = b->rows < CATCHUP_ROWS ? b->rows : CATCHUP_ROWS;
    if (mutate(b, changed) != 0 || set_latency(b, CATCHUP_LATENCY_MS) != 0) goto out;
    for (int si = 0; si < nstreams; si++)
        if (catch_up(b, run_dir[si], streams[si], changed) != 0) goto out;
    if (set_latency(b, 0) != 0 || mutate(b, CHANGED_ROWS) != 0 || increment(b, run_dir[0], streams[0]) != 0)
        goto out;
    for (; kept > 0; kept--) tu_rmrf(run_dir[kept - 1]);

    int d = -1, one = -1;      /* the default and the streams=1 setting, if listed */
    for (int si = 0; si < nstreams; si++) {
        if (streams[si] == STREAMS_DEFAULT) d = si;
        if (streams[si] == 1) one = si;
    }
    for (int li = 0; li < nlat && d >= 0 && one >= 0; li++) {
        double ratio = rps[li][d] / rps[li][one];
        int len = snprintf(params, sizeof params, ",\"latency_ms\":%d,\"default_rows_s\":%.0f,\"streams1_rows_s\":%.0f",
                           lat[li], rps[li][d], rps[li][one]);
        if (lat[li] == 50)
            snprintf(params + len, sizeof params - (size_t)len, ",\"target\":8,\"within_target\":%s", tf(ratio >= 8));
        emit(b, "pull_snapshot_ratio", "ratio", ratio, b->rows, params);
    }

    char raw_db[PATH_MAX], err[1024];
    double raw = 0;
    snprintf(raw_db, sizeof raw_db, "%s/raw.db", b->dir);
    fprintf(stderr, "bench_pull: raw insert loop, %lld rows...\n", b->rows);
    if (raw_insert_tvprogram(raw_db, ddl, (uint64_t)b->rows, &raw, err, sizeof err) != 0) {
        fprintf(stderr, "bench_pull: raw insert: %s\n", err);
        goto out;
    }
    emit(b, "raw_insert", "rows/s", raw, b->rows, ",\"columns\":11,\"transactions\":1,\"source\":\"bench/tvprogram.h\"");
    for (int li = 0; li < nlat && d >= 0; li++)
        if (lat[li] == 0) {
            double v = rps[li][d] / raw;
            snprintf(params, sizeof params,
                     ",\"latency_ms\":0,\"streams\":\"default\",\"pull_rows_s\":%.0f,\"raw_rows_s\":%.0f,"
                     "\"target\":0.7,\"within_target\":%s",
                     rps[li][d], raw, tf(v >= 0.7));
            emit(b, "pull_vs_raw", "ratio", v, b->rows, params);
            break;
        }
    rc = 0;
out:
    for (; kept > 0; kept--) tu_rmrf(run_dir[kept - 1]);
    free(ddl);
    portal_stop(b, b->rows);
    return rc;
}

/* One snapshot at rss_rows, default settings, 0 ms: the RSS at that size. 0 ok. */
static int bench_rss(struct bench *b, long long rss_rows)
{
    long long rows = b->rows;
    char run_dir[PATH_MAX];
    double rps;
    b->rows = rss_rows;
    int rc = portal_start(b, rss_rows);
    if (rc == 0) {
        rc = new_run_dir(b, STREAMS_DEFAULT, run_dir, sizeof run_dir);
        if (rc == 0) rc = snapshot(b, run_dir, 0, STREAMS_DEFAULT, &rps);
        tu_rmrf(run_dir);
        portal_stop(b, rss_rows);
    }
    b->rows = rows;
    return rc;
}

/* ---- options --------------------------------------------------------------------- */

/* "0,20,50" -> out (values min..max, or STREAMS_DEFAULT for "default" when allow_default). Count, or -1. */
static int parse_list(const char *s, int *out, int min, int max, int allow_default)
{
    int n = 0;
    while (*s && n < MAX_LIST) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        if (allow_default && len == 7 && !strncmp(s, "default", 7)) {
            out[n++] = STREAMS_DEFAULT;
        } else {
            char *end;
            long v = strtol(s, &end, 10);
            if (end != s + len || len == 0 || v < min || v > max) return -1;
            out[n++] = (int)v;
        }
        if (!comma) return n;
        s = comma + 1;
    }
    return -1;
}

static int bad_usage(void)
{
    fputs(usage, stderr);
    return 2;
}

int main(int argc, char **argv)
{
    int lat[MAX_LIST] = {0, 20, 50, 100}, nlat = 4;
    int streams[MAX_LIST] = {STREAMS_DEFAULT, 1}, nstreams = 2;
    long long rss_rows = 4000000;
    struct bench b = {.rows = 1000000};
    int have_rows = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        char *end;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            return 0;
        } else if (!strcmp(a, "--latency-ms") && val) {
            if ((nlat = parse_list(val, lat, 0, 60000, 0)) < 1) return bad_usage();
        } else if (!strcmp(a, "--streams") && val) {
            if ((nstreams = parse_list(val, streams, 1, 256, 1)) < 1) return bad_usage();
        } else if (!strcmp(a, "--chunk") && val) {
            b.chunk = strtoll(val, &end, 10);
            if (*end || b.chunk < 1 || b.chunk > 100000) return bad_usage();
        } else if (!strcmp(a, "--rss-rows") && val) {
            rss_rows = strtoll(val, &end, 10);
            if (*end || rss_rows < 0) return bad_usage();
        } else if (a[0] >= '0' && a[0] <= '9' && !have_rows) {
            b.rows = strtoll(a, &end, 10);
            if (*end || b.rows < 1) return bad_usage();
            have_rows = 1;
            continue;
        } else {
            return bad_usage();
        }
        i++;   /* the option's value */
    }
    char agent[PATH_MAX];
    const char *env = getenv("IA_AGENT");
    snprintf(agent, sizeof agent, "%s", env && *env ? env : IA_AGENT_BIN);
    if (access(agent, X_OK) != 0) {
        fprintf(stderr, "bench_pull: no agent binary at %s (set IA_AGENT)\n", agent);
        return 1;
    }
    b.agent = agent;
    b.dir = tu_tmpdir("bench_pull");
    if (!b.dir) {
        fprintf(stderr, "bench_pull: no temp dir\n");
        return 1;
    }
    setenv(BENCH_PW_ENV, BENCH_PW, 1);
    int failed = bench_links(&b, lat, nlat, streams, nstreams) != 0;
    if (!failed && rss_rows > 0) failed = bench_rss(&b, rss_rows) != 0;
    tu_rmrf(b.dir);
    free(b.dir);
    return failed ? 1 : 0;
}
