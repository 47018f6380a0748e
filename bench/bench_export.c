/* bench_export.c — export/import of a cache and hub → edge convergence.
 *
 * A cache of ROWS tv_program rows (default 1000000) is pulled from the fake
 * portal with `iptv-agent --once`, then (one JSON line each):
 *   export_snapshot        MB/s (cache.db bytes per second) and rows/s of
 *                          export_snapshot(); baseline: VACUUM INTO alone (the
 *                          consistent copy without portability, gzip, checksums);
 *                          ratio = export time / baseline time
 *   import_snapshot        rows/s of `iptv-agent import` into an empty storage dir
 *                          (a process, as users run it); baseline: SQLite's backup
 *                          API copying the uncompressed database; ratio likewise
 *   delta_size_ratio       after 1% of rows changed on the portal and one
 *                          incremental --once: delta bytes / snapshot bytes
 *                          (target < 0.05), with both sizes
 *   export_delta, import_delta   seconds and changes/s
 *   edge_bootstrap         seconds for an edge daemon ([upstream] = a hub daemon on
 *                          the cache) to hold the hub's rows, from an empty dir
 *   edge_convergence       seconds from 1000 rows changing on the portal to the
 *                          edge holding them: POST /sync on the hub, its pull,
 *                          then POST /sync on the edge (export, delta, transfer,
 *                          import); hub_pull and edge_catchup are its two parts
 * Usage: bench_export [ROWS]. JSON lines on stdout, progress on stderr. */
#include "tests/testutil.h"
#include "agent/base/clock.h"
#include "agent/ship/export.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define PW_ENV "IA_BENCH_EXPORT_PW"
#define PW "bench-export"

static char g_agent[PATH_MAX];
static long long g_rows;

static void emit(const char *name, const char *unit, double value, const char *extra)
{
    printf("{\"bench\":\"%s\",\"unit\":\"%s\",\"value\":%.6g,\"params\":{\"table\":\"tv_program\",\"rows\":%lld%s}}\n",
           name, unit, value, g_rows, extra ? extra : "");
    fflush(stdout);
}

static long long file_size(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 ? (long long)sb.st_size : -1;
}

static long long q_int(const char *db_path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    long long n = -1;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_busy_timeout(db, 10000);
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
            n = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static char *q_text(const char *db_path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char *s = NULL;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
        sqlite3_column_text(st, 0))
        s = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return s;
}

/* `iptv-agent -c cfg args...`: 0 when it exited 0 (its stderr shown otherwise). */
static int agent(const char *cfg, const char *a1, const char *a2, double *secs)
{
    const char *argv[] = {g_agent, "-c", cfg, a1, a2, NULL};
    const char *env[] = {PW_ENV "=" PW, NULL};
    char *out = NULL, *err = NULL;
    double t0 = clock_mono_s();
    int rc = tu_run(argv, env, &out, &err);
    if (secs) *secs = clock_mono_s() - t0;
    if (rc != 0) fprintf(stderr, "bench_export: %s %s: exit %d\n%s%s\n", a1, a2 ? a2 : "", rc, out ? out : "", err ? err : "");
    free(out);
    free(err);
    return rc == 0 ? 0 : -1;
}

struct daemon {
    pid_t pid;
    char url[256];
};

/* `iptv-agent -c cfg run` in the background; its first stdout line is its URL. */
static int daemon_start(struct daemon *d, const char *cfg, const char *log)
{
    int p[2];
    if (pipe(p) != 0) return -1;
    d->pid = fork();
    if (d->pid < 0) return -1;
    if (d->pid == 0) {
        int fe = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int in = open("/dev/null", O_RDONLY);
        if (fe < 0 || in < 0) _exit(126);
        dup2(p[1], 1);
        dup2(fe, 2);
        dup2(in, 0);
        close(p[0]);
        setenv(PW_ENV, PW, 1);
        execl(g_agent, g_agent, "-c", cfg, "run", (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    FILE *f = fdopen(p[0], "r");
    int ok = f && fgets(d->url, sizeof d->url, f) != NULL;
    if (ok) d->url[strcspn(d->url, "\r\n")] = '\0';
    /* Keep the pipe's read end open (in a leaked FILE) so later output cannot SIGPIPE the daemon. */
    if (!ok) fprintf(stderr, "bench_export: daemon %s printed no URL (see %s)\n", cfg, log);
    return ok && !strncmp(d->url, "http://", 7) ? 0 : -1;
}

static void daemon_stop(struct daemon *d)
{
    if (d->pid <= 0) return;
    kill(d->pid, SIGTERM);
    int st;
    while (waitpid(d->pid, &st, 0) < 0 && errno == EINTR) {}
    d->pid = 0;
}

static int post(const char *url, const char *path)
{
    char u[400];
    snprintf(u, sizeof u, "%s%s", url, path);
    return tu_http(u, "{}", NULL);
}

/* Poll until db answers `sql` with want (20 ms steps); seconds waited, or -1 after limit. */
static double wait_count(const char *db, const char *sql, long long want, double limit)
{
    double t0 = clock_mono_s();
    while (clock_mono_s() - t0 < limit) {
        if (q_int(db, sql) == want) return clock_mono_s() - t0;
        usleep(20000);
    }
    return -1;
}

static double vacuum_baseline(const char *db_path, const char *out)
{
    sqlite3 *db = NULL;
    unlink(out);
    double t0 = clock_mono_s();
    char sql[PATH_MAX + 32];
    snprintf(sql, sizeof sql, "VACUUM INTO '%s'", out);
    int rc = sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK
                 ? sqlite3_exec(db, sql, NULL, NULL, NULL) : SQLITE_ERROR;
    sqlite3_close(db);
    return rc == SQLITE_OK ? clock_mono_s() - t0 : -1;
}

static double backup_baseline(const char *src_path, const char *dst_path)
{
    sqlite3 *src = NULL, *dst = NULL;
    unlink(dst_path);
    double t0 = clock_mono_s();
    int ok = sqlite3_open_v2(src_path, &src, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
             sqlite3_open(dst_path, &dst) == SQLITE_OK;
    sqlite3_backup *b = ok ? sqlite3_backup_init(dst, "main", src, "main") : NULL;
    ok = b && sqlite3_backup_step(b, -1) == SQLITE_DONE;
    if (b) sqlite3_backup_finish(b);
    sqlite3_close(src);
    sqlite3_close(dst);
    return ok ? clock_mono_s() - t0 : -1;
}

static int write_cfg(const char *path, const char *body)
{
    return tu_write_file(path, body, strlen(body));
}

int main(int argc, char **argv)
{
    g_rows = argc > 1 ? atoll(argv[1]) : 1000000;
    const char *env = getenv("IA_AGENT");
    snprintf(g_agent, sizeof g_agent, "%s", env && *env ? env : IA_AGENT_BIN);
    char *dir = tu_tmpdir("bench_export");
    if (!dir) return 1;
    char p_db[PATH_MAX], hub_cfg[PATH_MAX], imp_cfg[PATH_MAX], edge_cfg[PATH_MAX], hub_db[PATH_MAX],
        imp_db[PATH_MAX], edge_db[PATH_MAX], snap[PATH_MAX], delta[PATH_MAX], base[PATH_MAX], log[PATH_MAX],
        rowsarg[32], cfgtext[4096], extra[256];
    snprintf(p_db, sizeof p_db, "%s/portal.db", dir);
    snprintf(hub_cfg, sizeof hub_cfg, "%s/hub.toml", dir);
    snprintf(imp_cfg, sizeof imp_cfg, "%s/imp.toml", dir);
    snprintf(edge_cfg, sizeof edge_cfg, "%s/edge.toml", dir);
    snprintf(hub_db, sizeof hub_db, "%s/hub/cache.db", dir);
    snprintf(imp_db, sizeof imp_db, "%s/imp/cache.db", dir);
    snprintf(edge_db, sizeof edge_db, "%s/edge/cache.db", dir);
    snprintf(snap, sizeof snap, "%s/snap.iax", dir);
    snprintf(delta, sizeof delta, "%s/delta.iax", dir);
    snprintf(base, sizeof base, "%s/vacuum.db", dir);
    snprintf(rowsarg, sizeof rowsarg, "%lld", g_rows);
    int rc = 1;
    struct tu_portal portal = {0};
    struct daemon hub = {0}, edge = {0};
    fprintf(stderr, "bench_export: generating %lld tv_program rows on the fake portal...\n", g_rows);
    const char *pargs[] = {"--db", p_db, "--rows", rowsarg, "--password", PW, NULL};
    if (tu_portal_start(&portal, pargs) != 0) goto out;
    snprintf(cfgtext, sizeof cfgtext,
             "[remote]\nurl = \"%s\"\nusername = \"admin\"\npassword_env = \"" PW_ENV "\"\n"
             "[storage]\ndir = \"%s/hub\"\n[serve]\nlisten = \"127.0.0.1:0\"\n"
             "[[table]]\nname = \"tv_program\"\nstrategy = \"incremental\"\ncursor = \"updated_at\"\n"
             "chunk = 5000\ninterval = \"1ms\"\nsweep = \"0s\"\n",
             portal.url, dir);
    write_cfg(hub_cfg, cfgtext);
    snprintf(cfgtext, sizeof cfgtext, "[storage]\ndir = \"%s/imp\"\n", dir);
    write_cfg(imp_cfg, cfgtext);
    fprintf(stderr, "bench_export: pulling the cache (--once)...\n");
    if (agent(hub_cfg, "--once", NULL, NULL) != 0) goto out;
    long long rows = q_int(hub_db, "SELECT count(*) FROM tv_program"), dbbytes = file_size(hub_db);
    if (rows != g_rows) { fprintf(stderr, "bench_export: cache has %lld rows\n", rows); goto out; }

    /* snapshot export vs VACUUM INTO */
    char err[2048];
    struct export_manifest m;
    double tb = vacuum_baseline(hub_db, base);
    unlink(base);
    double t0 = clock_mono_s();
    if (export_snapshot(hub_db, snap, 3, &m, err, sizeof err) != 0) { fprintf(stderr, "%s\n", err); goto out; }
    double te = clock_mono_s() - t0;
    long long snapbytes = file_size(snap);
    snprintf(extra, sizeof extra, ",\"cache_bytes\":%lld,\"file_bytes\":%lld,\"level\":3,\"baseline\":\"VACUUM INTO\","
             "\"baseline_s\":%.3f,\"ratio\":%.3f", dbbytes, snapbytes, tb, te / tb);
    emit("export_snapshot", "MB/s", (double)dbbytes / 1e6 / te, extra);
    snprintf(extra, sizeof extra, ",\"seconds\":%.3f", te);
    emit("export_snapshot_rows", "rows/s", (double)rows / te, extra);
    export_manifest_free(&m);

    /* snapshot import (CLI) vs backup API */
    double tbk = backup_baseline(hub_db, base);
    unlink(base);
    double ti;
    if (agent(imp_cfg, "import", snap, &ti) != 0) goto out;
    if (q_int(imp_db, "SELECT count(*) FROM tv_program") != rows) { fprintf(stderr, "import lost rows\n"); goto out; }
    snprintf(extra, sizeof extra, ",\"file_bytes\":%lld,\"baseline\":\"backup API\",\"baseline_s\":%.3f,\"ratio\":%.3f",
             snapbytes, tbk, ti / tbk);
    emit("import_snapshot", "rows/s", (double)rows / ti, extra);
    snprintf(extra, sizeof extra, ",\"seconds\":%.3f", ti);
    emit("import_snapshot_mb", "MB/s", (double)dbbytes / 1e6 / ti, extra);

    /* 1% of rows change: delta size, export and import */
    long long changed = g_rows / 100;
    char body[256];
    snprintf(body, sizeof body, "{\"table\":\"tv_program\",\"updates\":%lld,\"seed\":5}", changed);
    if (tu_admin(&portal, "/_fake/mutate", body) != 200) { fprintf(stderr, "mutate failed\n"); goto out; }
    if (agent(hub_cfg, "--once", NULL, NULL) != 0) goto out;
    t0 = clock_mono_s();
    if (export_delta(hub_db, snap, delta, 3, &m, err, sizeof err) != 0) { fprintf(stderr, "%s\n", err); goto out; }
    double td = clock_mono_s() - t0;
    long long dbytes = file_size(delta);
    unsigned long long changes = (unsigned long long)m.changes;
    export_manifest_free(&m);
    snprintf(extra, sizeof extra, ",\"changed_rows\":%lld,\"delta_bytes\":%lld,\"snapshot_bytes\":%lld,\"target\":0.05",
             changed, dbytes, snapbytes);
    emit("delta_size_ratio", "ratio", (double)dbytes / (double)snapbytes, extra);
    snprintf(extra, sizeof extra, ",\"changes\":%llu", changes);
    emit("export_delta", "s", td, extra);
    double tid;
    if (agent(imp_cfg, "import", delta, &tid) != 0) goto out;
    snprintf(extra, sizeof extra, ",\"changes\":%llu,\"seconds\":%.3f", changes, tid);
    emit("import_delta", "changes/s", (double)changes / tid, extra);

    /* hub -> edge: the hub pulls only when asked (interval 1h), so the timing is ours. */
    snprintf(cfgtext, sizeof cfgtext,
             "[remote]\nurl = \"%s\"\nusername = \"admin\"\npassword_env = \"" PW_ENV "\"\n"
             "[storage]\ndir = \"%s/hub\"\n[serve]\nlisten = \"127.0.0.1:0\"\n"
             "[[table]]\nname = \"tv_program\"\nstrategy = \"incremental\"\ncursor = \"updated_at\"\n"
             "chunk = 5000\ninterval = \"1h\"\nsweep = \"0s\"\n",
             portal.url, dir);
    write_cfg(hub_cfg, cfgtext);
    snprintf(log, sizeof log, "%s/hub.log", dir);
    if (daemon_start(&hub, hub_cfg, log) != 0) goto out;
    snprintf(cfgtext, sizeof cfgtext, "[upstream]\nurl = \"%s\"\ninterval = \"1h\"\n[storage]\ndir = \"%s/edge\"\n"
             "[serve]\nlisten = \"127.0.0.1:0\"\n", hub.url, dir);
    write_cfg(edge_cfg, cfgtext);
    snprintf(log, sizeof log, "%s/edge.log", dir);
    t0 = clock_mono_s();
    if (daemon_start(&edge, edge_cfg, log) != 0) goto out;
    double tboot = wait_count(edge_db, "SELECT count(*) FROM tv_program", rows, 600);
    if (tboot < 0) { fprintf(stderr, "bench_export: the edge never held the hub's rows\n"); goto out; }
    emit("edge_bootstrap", "s", clock_mono_s() - t0, NULL);
    char *oldmax = q_text(p_db, "SELECT max(updated_at) FROM tv_program");
    if (tu_admin(&portal, "/_fake/mutate", "{\"table\":\"tv_program\",\"updates\":1000,\"seed\":77}") != 200) goto out;
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM tv_program WHERE updated_at > '%s'", oldmax ? oldmax : "");
    free(oldmax);
    long long want = q_int(p_db, sql);
    t0 = clock_mono_s();
    post(hub.url, "/sync/tv_program");
    double thub = wait_count(hub_db, sql, want, 120);
    post(edge.url, "/sync/tv_program");
    double tedge = thub >= 0 ? wait_count(edge_db, sql, want, 300) : -1;
    double total = clock_mono_s() - t0;
    if (thub < 0 || tedge < 0) { fprintf(stderr, "bench_export: no convergence (hub %.1f, edge %.1f)\n", thub, tedge); goto out; }
    snprintf(extra, sizeof extra, ",\"changed_rows\":%lld,\"hub_pull_s\":%.3f,\"edge_catchup_s\":%.3f", want, thub, tedge);
    emit("edge_convergence", "s", total, extra);
    rc = 0;
out:
    daemon_stop(&edge);
    daemon_stop(&hub);
    if (portal.pid) tu_portal_stop(&portal);
    tu_rmrf(dir);
    free(dir);
    return rc;
}
