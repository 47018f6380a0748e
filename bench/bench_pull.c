/* bench_pull.c — the whole pull path, end to end: `iptv-agent --once` as a child
 * process against the fake portal, cold (snapshot) and warm (increment).
 *
 * Per size (tv_program rows; default 1000000 and 4000000):
 *   pull_snapshot        rows/s of a first --once into an empty storage dir
 *                        (wall time from fork to exit; the portal's generation
 *                        of its data is before the clock starts)
 *   pull_snapshot_rss    the agent's peak RSS (wait4 ru_maxrss), MiB; target < 64
 *   pull_incremental     seconds of a second --once after 1000 rows changed on
 *                        the portal (interval "1ms" so it is due); target < 1
 *   pull_incremental_rss its peak RSS, MiB
 * Only tv_program is configured (incremental on updated_at, chunk --chunk,
 * default 5000; sweep left at its default). Everything lives in one temp dir,
 * removed at the end. The agent is $IA_AGENT, else iptv-agent beside the fake
 * portal binary (both are built in the same directory).
 * Usage: bench_pull [--chunk N] [ROWS...]. One JSON line per result on stdout;
 * progress on stderr. */
#include "tests/testutil.h"
#include "agent/base/clock.h"

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
#include <time.h>
#include <unistd.h>

#define BENCH_PW_ENV "IA_BENCH_PULL_PW"
#define BENCH_PW "bench-pull"
#define CHANGED_ROWS 1000

/* The agent binary: $IA_AGENT, else the one built beside this benchmark. */
static void agent_path(char *out, size_t n)
{
    const char *env = getenv("IA_AGENT");
    snprintf(out, n, "%s", env && *env ? env : IA_AGENT_BIN);
}

struct run {
    int status;          /* exit status, or -signal */
    double seconds;      /* wall time, fork to reaped */
    double rss_mib;      /* peak resident set of the child */
};

/* Run the agent with args, stdout/stderr to files in dir. 0 if it ran and exited 0. */
static int run_agent(const char *agent, const char *dir, const char *const *args, struct run *r)
{
    char out[PATH_MAX], err[PATH_MAX];
    snprintf(out, sizeof out, "%s/agent.out", dir);
    snprintf(err, sizeof err, "%s/agent.err", dir);
    const char *argv[16];
    int n = 0;
    argv[n++] = agent;
    for (int i = 0; args[i] && n < 15; i++) argv[n++] = args[i];
    argv[n] = NULL;
    double t0 = clock_mono_s();
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); return -1; }
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
        if (errno != EINTR) { perror("wait4"); return -1; }
    }
    r->seconds = clock_mono_s() - t0;
    r->rss_mib = (double)ru.ru_maxrss / 1024.0;   /* Linux: KiB */
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? -WTERMSIG(st) : -1;
    if (r->status != 0) {
        char *text = tu_read_file(err, NULL);
        fprintf(stderr, "bench_pull: %s %s exited %d:\n%s\n", agent, args[2], r->status, text ? text : "");
        free(text);
        return -1;
    }
    return 0;
}

static long long count_rows(const char *db_path)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    long long n = -1;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT count(*) FROM tv_program", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

/* The action the agent reported for tv_program ("snapshot", "incremental+sweep"...). */
static void agent_action(const char *dir, char *out, size_t n)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/agent.out", dir);
    char *text = tu_read_file(path, NULL);
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

static void emit(const char *name, const char *unit, double value, long long rows, long long chunk,
                 const char *extra)
{
    printf("{\"bench\":\"%s\",\"unit\":\"%s\",\"value\":%.6g,\"params\":{\"table\":\"tv_program\","
           "\"rows\":%lld,\"chunk\":%lld%s}}\n", name, unit, value, rows, chunk, extra ? extra : "");
    fflush(stdout);
}

/* One size: portal, snapshot, mutate, increment. 0 ok. */
static int bench_size(const char *agent, long long rows, long long chunk)
{
    int rc = -1;
    char *dir = tu_tmpdir("bench_pull");
    if (!dir) { fprintf(stderr, "bench_pull: no temp dir\n"); return -1; }
    char pdb[PATH_MAX], cfg[PATH_MAX], cache[PATH_MAX], rows_s[32], extra[160];
    snprintf(pdb, sizeof pdb, "%s/portal.db", dir);
    snprintf(cfg, sizeof cfg, "%s/agent.toml", dir);
    snprintf(cache, sizeof cache, "%s/data/cache.db", dir);
    snprintf(rows_s, sizeof rows_s, "%lld", rows);

    fprintf(stderr, "bench_pull: generating %lld tv_program rows...\n", rows);
    double g0 = clock_mono_s();
    struct tu_portal portal = {0};
    const char *pargs[] = {"--rows", rows_s, "--db", pdb, "--password", BENCH_PW, NULL};
    if (tu_portal_start(&portal, pargs) != 0) {
        fprintf(stderr, "bench_pull: cannot start the fake portal\n");
        goto out;
    }
    fprintf(stderr, "bench_pull: portal ready in %.1f s at %s\n", clock_mono_s() - g0, portal.url);

    char text[2048];
    int len = snprintf(text, sizeof text,
                       "[remote]\nurl = \"%s\"\nusername = \"admin\"\npassword_env = \"%s\"\n"
                       "retries = 2\ntimeout = \"60s\"\n\n[storage]\ndir = \"%s/data\"\n\n"
                       "[[table]]\nname = \"tv_program\"\nstrategy = \"incremental\"\n"
                       "cursor = \"updated_at\"\nchunk = %lld\ninterval = \"1ms\"\n",
                       portal.url, BENCH_PW_ENV, dir, chunk);
    if (tu_write_file(cfg, text, (size_t)len) != 0) { fprintf(stderr, "bench_pull: writing %s\n", cfg); goto out; }
    setenv(BENCH_PW_ENV, BENCH_PW, 1);

    const char *once[] = {"-c", cfg, "--once", NULL};
    struct run r;
    fprintf(stderr, "bench_pull: --once (snapshot of %lld rows)...\n", rows);
    if (run_agent(agent, dir, once, &r) != 0) goto out;
    long long got = count_rows(cache);
    if (got != rows) {
        fprintf(stderr, "bench_pull: cache.db holds %lld rows after the snapshot, the portal %lld\n", got, rows);
        goto out;
    }
    fprintf(stderr, "bench_pull: snapshot %.2f s, peak RSS %.1f MiB\n", r.seconds, r.rss_mib);
    snprintf(extra, sizeof extra, ",\"seconds\":%.3f", r.seconds);
    emit("pull_snapshot", "rows/s", (double)rows / r.seconds, rows, chunk, extra);
    snprintf(extra, sizeof extra, ",\"target_mib\":64,\"within_target\":%s", r.rss_mib < 64 ? "true" : "false");
    emit("pull_snapshot_rss", "MiB", r.rss_mib, rows, chunk, extra);

    char body[160];
    snprintf(body, sizeof body, "{\"table\":\"tv_program\",\"updates\":%d,\"seed\":7}", CHANGED_ROWS);
    if (tu_admin(&portal, "/_fake/mutate", body) != 200) {
        fprintf(stderr, "bench_pull: POST /_fake/mutate failed\n");
        goto out;
    }
    fprintf(stderr, "bench_pull: --once (increment of %d changed rows)...\n", CHANGED_ROWS);
    if (run_agent(agent, dir, once, &r) != 0) goto out;
    char action[32];
    agent_action(dir, action, sizeof action);
    fprintf(stderr, "bench_pull: increment (%s) %.3f s, peak RSS %.1f MiB\n", action, r.seconds, r.rss_mib);
    snprintf(extra, sizeof extra, ",\"changed\":%d,\"action\":\"%s\",\"target_s\":1,\"within_target\":%s",
             CHANGED_ROWS, action, r.seconds < 1 ? "true" : "false");
    emit("pull_incremental", "s", r.seconds, rows, chunk, extra);
    snprintf(extra, sizeof extra, ",\"changed\":%d", CHANGED_ROWS);
    emit("pull_incremental_rss", "MiB", r.rss_mib, rows, chunk, extra);
    rc = 0;
out:
    tu_portal_stop(&portal);
    tu_rmrf(dir);
    free(dir);
    return rc;
}

int main(int argc, char **argv)
{
    long long chunk = 5000, sizes[16];
    int nsizes = 0;
    for (int i = 1; i < argc; i++) {
        char *end;
        if (!strcmp(argv[i], "--chunk") && i + 1 < argc) {
            chunk = strtoll(argv[++i], &end, 10);
            if (*end || chunk < 1 || chunk > 100000) { fprintf(stderr, "bench_pull: --chunk 1..100000\n"); return 2; }
            continue;
        }
        long long v = strtoll(argv[i], &end, 10);
        if (*end || v < 1 || nsizes == 16) {
            fprintf(stderr, "usage: bench_pull [--chunk N] [ROWS...]   (default 1000000 4000000)\n");
            return 2;
        }
        sizes[nsizes++] = v;
    }
    if (nsizes == 0) {
        sizes[nsizes++] = 1000000;
        sizes[nsizes++] = 4000000;
    }
    char agent[PATH_MAX];
    agent_path(agent, sizeof agent);
    if (access(agent, X_OK) != 0) {
        fprintf(stderr, "bench_pull: no agent binary at %s (set IA_AGENT)\n", agent);
        return 1;
    }
    int failed = 0;
    for (int i = 0; i < nsizes; i++) failed |= bench_size(agent, sizes[i], chunk) != 0;
    return failed ? 1 : 0;
}
