/* cmd_cache.c — `status`, `query` and `get`: reading what the cache holds.
 * `query` and the cache side of `get` use a read-only connection and never
 * wait for the portal (invariant 6). */
#include "agent/base/buf.h"
#include "agent/base/clock.h"
#include "agent/cli/cmd.h"
#include "agent/ship/export.h"
#include "agent/base/err.h"
#include "agent/base/json.h"
#include "agent/base/log.h"
#include "agent/base/mem.h"
#include "agent/pull/pull.h"
#include "agent/pull/store.h"
#include "agent/ship/upstream.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

static void fmt_time(int64_t ms, char *out, size_t n)
{
    if (ms <= 0) { snprintf(out, n, "never"); return; }
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void value_text(struct buf *b, const struct replay_value *v)
{
    switch (v->type) {
    case JOURNAL_NULL: buf_puts(b, "null"); break;
    case JOURNAL_BOOL: buf_puts(b, v->i ? "true" : "false"); break;
    case JOURNAL_INT: buf_printf(b, "%lld", (long long)v->i); break;
    case JOURNAL_REAL: json_write_double(b, v->d); break;
    default: json_write_string(b, v->s, v->n);
    }
}

/* ---- status -------------------------------------------------------------------- */

static const char status_usage[] =
    "usage: iptv-agent status [--json]\n"
    "\n"
    "Per table: strategy, rows, high-water mark, last success, age, stale?, last\n"
    "error, forbidden?; whether the last contact with the portal (an edge: the hub)\n"
    "worked; journal size, the applied position and the last journal compaction.\n"
    "Lists the configured tables and\n"
    "every other table cache.db holds (imported ones). Only reads: creates nothing.\n"
    "Exit: 0 ok, 1 cache.db unreadable, 3 no cache.db yet (nothing pulled or\n"
    "imported into [storage] dir).\n";

/* The tables status lists: the configured ones in file order, then every other
 * table cache.db knows (an edge's, or imported ones) by name. */
struct status_row {
    const char *name;
    const struct config_table *t;     /* NULL: not configured here */
};

static struct status_row *status_rows(const struct config *cfg, struct replay *rp, char ***cached, size_t *ncached,
                                      int *n)
{
    char err[IA_ERRLEN];
    if (replay_table_list(rp, cached, ncached, err, sizeof err) != 0) {
        log_warn("status: %s", err);
        *cached = NULL;
        *ncached = 0;
    }
    struct status_row *rows = xcalloc((size_t)cfg->ntables + *ncached + 1, sizeof *rows);
    *n = 0;
    for (int i = 0; i < cfg->ntables; i++) rows[(*n)++] = (struct status_row){cfg->tables[i].name, &cfg->tables[i]};
    for (size_t i = 0; i < *ncached; i++)
        if (!config_table_find(cfg, (*cached)[i])) rows[(*n)++] = (struct status_row){(*cached)[i], NULL};
    return rows;
}

int cmd_status(const struct config *cfg, int argc, char **argv)
{
    if (cmd_wants_help(argc, argv)) { fputs(status_usage, stdout); return 0; }
    int as_json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) as_json = 1;
        else { fprintf(stderr, "iptv-agent status: unexpected argument %s\n%s", argv[i], status_usage); return 2; }
    }
    char err[IA_ERRLEN];
    struct store s;
    int orc = store_open_readonly(cfg, &s, err, sizeof err);
    if (orc == 1) {
        fprintf(stderr, "iptv-agent status: no cache yet (%s): nothing has been pulled or imported into [storage] "
                        "dir = \"%s\" of %s; check the path, or run `iptv-agent --once`\n",
                err, cfg->storage.dir, cfg->path);
        return 3;
    }
    if (orc != 0) {
        fprintf(stderr, "iptv-agent status: %s\n", err);
        return 1;
    }
    uint64_t *segs = NULL, bytes = 0;
    size_t nsegs = 0;
    if (journal_segments(s.journal_dir, &segs, &nsegs, err, sizeof err) == 0) {
        for (size_t i = 0; i < nsegs; i++) {
            char path[4200];
            struct stat sb;
            snprintf(path, sizeof path, "%s/%020llu.seg", s.journal_dir, (unsigned long long)segs[i]);
            if (stat(path, &sb) == 0) bytes += (uint64_t)sb.st_size;
        }
    }
    free(segs);
    int64_t now = clock_wall_ms(), last_attempt = 0, last_ok = 0;
    const char *last_err = NULL;
    char **cached = NULL;
    size_t ncached = 0;
    int ntab;
    struct status_row *rows = status_rows(cfg, s.rp, &cached, &ncached, &ntab);
    struct replay_table *ts = xcalloc((size_t)ntab + 1, sizeof *ts);
    int *known = xcalloc((size_t)ntab + 1, sizeof *known);
    for (int i = 0; i < ntab; i++) {
        known[i] = replay_table_get(s.rp, rows[i].name, &ts[i], err, sizeof err) == 0;
        if (!known[i]) continue;
        if (ts[i].last_success_ms > last_ok) last_ok = ts[i].last_success_ms;
        if (ts[i].last_attempt_ms > last_attempt) {
            last_attempt = ts[i].last_attempt_ms;
            last_err = ts[i].last_error;
        }
    }
    struct replay_compact cpt;         /* the last compaction (store_compact) */
    if (replay_compact_read(replay_db(s.rp), &cpt) != 0) cpt.at_ms = 0;
    struct buf out = {0}, v = {0};
    char when[40], okwhen[40];
    fmt_time(last_attempt, when, sizeof when);
    fmt_time(last_ok, okwhen, sizeof okwhen);
    char at[EXPORT_ID_LEN + 1] = "";
    if (export_cache_state(s.db_path, at, NULL, err, sizeof err) != 0) at[0] = '\0';
    /* An edge's own contact with its hub (the tables' times are the hub's). */
    struct upstream_state up;
    int up_known = cfg->upstream.url && upstream_state_read(s.dir, &up) == 0;
    char up_when[40], up_okwhen[40];
    fmt_time(up_known ? up.attempt_ms : 0, up_when, sizeof up_when);
    fmt_time(up_known ? up.success_ms : 0, up_okwhen, sizeof up_okwhen);
    if (as_json) {
        buf_puts(&out, "{");
        if (cfg->upstream.url) {
            buf_puts(&out, "\"upstream\":{\"url\":");
            json_write_string(&out, cfg->upstream.url, strlen(cfg->upstream.url));
            buf_printf(&out, ",\"at\":\"%s\",\"last_attempt\":\"%s\",\"last_success\":\"%s\",\"reachable\":%s,"
                             "\"last_error\":",
                       at, up_when, up_okwhen, !up_known ? "null" : up.error[0] ? "false" : "true");
            if (up_known && up.error[0]) json_write_string(&out, up.error, strlen(up.error));
            else buf_puts(&out, "null");
            buf_puts(&out, "},");
        }
        buf_puts(&out, "\"remote\":{\"url\":");
        if (cfg->remote.url) json_write_string(&out, cfg->remote.url, strlen(cfg->remote.url));
        else buf_puts(&out, "null");
        buf_printf(&out, ",\"last_attempt\":\"%s\",\"last_success\":\"%s\",\"reachable\":%s,\"last_error\":", when,
                   okwhen, last_attempt == 0 ? "null" : last_err ? "false" : "true");
        if (last_err) json_write_string(&out, last_err, strlen(last_err)); else buf_puts(&out, "null");
        buf_printf(&out, "},\"journal\":{\"segments\":%zu,\"bytes\":%llu,\"applied_seq\":%llu,\"last_compaction\":",
                   nsegs, (unsigned long long)bytes, (unsigned long long)replay_applied_seq(s.rp));
        if (cpt.at_ms) {
            char cwhen[40];
            fmt_time(cpt.at_ms, cwhen, sizeof cwhen);
            buf_printf(&out, "{\"at\":\"%s\",\"deleted\":%llu,\"freed\":%llu,\"kept_because\":", cwhen,
                       (unsigned long long)cpt.deleted, (unsigned long long)cpt.freed);
            json_write_string(&out, cpt.reason, strlen(cpt.reason));
            buf_puts(&out, "}},\"tables\":[");
        } else {
            buf_puts(&out, "null},\"tables\":[");
        }
    } else {
        if (cfg->upstream.url) {
            buf_printf(&out, "upstream: %s; at %s; last attempt %s (%s), last success %s\n", cfg->upstream.url,
                       at[0] ? at : "(nothing imported yet)", up_when,
                       !up_known ? "none" : up.error[0] ? "failed" : "ok", up_okwhen);
            if (up_known && up.error[0]) buf_printf(&out, "upstream error: %s\n", up.error);
        }
        buf_printf(&out, "remote:  %s; last attempt %s (%s), last success %s\n",
                   cfg->remote.url ? cfg->remote.url : cfg->upstream.url ? "(the hub's portal)" : "(not configured)",
                   when, last_attempt == 0 ? "none" : last_err ? "failed" : "ok", okwhen);
        buf_printf(&out, "journal: %zu segment%s, %llu bytes; cache applied up to seq %llu\n", nsegs,
                   nsegs == 1 ? "" : "s", (unsigned long long)bytes, (unsigned long long)replay_applied_seq(s.rp));
        if (cpt.at_ms) {
            char cwhen[40];
            fmt_time(cpt.at_ms, cwhen, sizeof cwhen);
            buf_printf(&out, "         last compacted %s: %llu segments (%llu bytes) freed%s%s\n", cwhen,
                       (unsigned long long)cpt.deleted, (unsigned long long)cpt.freed, cpt.reason[0] ? "; kept: " : "",
                       cpt.reason);
        } else {
            buf_puts(&out, "         never compacted\n");
        }
        buf_printf(&out, "%-24s %-12s %10s %-34s %-21s %8s %-5s %s\n", "table", "strategy", "rows", "mark",
                   "last success", "age(s)", "stale", "error");
    }
    for (int i = 0; i < ntab; i++) {
        const struct config_table *t = rows[i].t;
        const char *name = rows[i].name;
        const struct replay_table *st = &ts[i];
        /* Not configured here: what the cache recorded (the hub's or an
         * imported cache's strategy); an edge's tables all come from the hub. */
        const char *strategy = t ? config_strategy_name(t->strategy) : cfg->upstream.url ? "upstream"
                             : known[i] && st->strategy ? st->strategy : "-";
        int64_t ttl_ms = t ? t->ttl_ms : 3600 * 1000;
        int64_t age = known[i] && st->last_success_ms ? (now - st->last_success_ms) / 1000 : -1;
        int stale = config_stale(ttl_ms, known[i] ? st->last_success_ms : 0, now);
        buf_reset(&v);
        if (known[i] && (st->mark_cursor.type != JOURNAL_NULL || st->mark_key.type != JOURNAL_NULL)) {
            if (st->mark_cursor.type != JOURNAL_NULL) { value_text(&v, &st->mark_cursor); buf_putc(&v, ' '); }
            value_text(&v, &st->mark_key);
        }
        fmt_time(known[i] ? st->last_success_ms : 0, when, sizeof when);
        char chg[40];
        fmt_time(known[i] ? st->schema_changed_ms : 0, chg, sizeof chg);
        if (as_json) {
            if (i) buf_putc(&out, ',');
            buf_puts(&out, "{\"name\":");
            json_write_string(&out, name, strlen(name));
            buf_printf(&out, ",\"strategy\":\"%s\",\"configured\":%s,\"rows\":%llu,\"mark_cursor\":", strategy,
                       t ? "true" : "false", (unsigned long long)(known[i] ? st->rows : 0));
            if (known[i]) value_text(&out, &st->mark_cursor); else buf_puts(&out, "null");
            buf_puts(&out, ",\"mark_key\":");
            if (known[i]) value_text(&out, &st->mark_key); else buf_puts(&out, "null");
            buf_printf(&out, ",\"last_success\":\"%s\",\"age_seconds\":%lld,\"stale\":%s,\"forbidden\":%s,"
                             "\"schema_hash\":\"%s\",\"schema_changed_at\":\"%s\",\"schema_changed\":%s,\"snapshot_pending\":%s,\"last_error\":",
                       when, (long long)age, stale ? "true" : "false", known[i] && st->forbidden ? "true" : "false",
                       known[i] ? st->schema_hash : "", chg, known[i] && st->schema_behind ? "true" : "false",
                       known[i] && st->pending_id ? "true" : "false");
            if (known[i] && st->last_error) json_write_string(&out, st->last_error, strlen(st->last_error));
            else buf_puts(&out, "null");
            buf_putc(&out, '}');
        } else {
            char agebuf[24];
            snprintf(agebuf, sizeof agebuf, age < 0 ? "-" : "%lld", (long long)age);
            const char *e = !known[i] ? "not pulled yet" : st->forbidden ? "forbidden (HTTP 403)"
                          : st->last_error ? st->last_error : "";
            char note[96] = "";
            if (known[i] && st->pending_id) snprintf(note, sizeof note, " (snapshot in progress)");
            if (known[i] && st->schema_behind) snprintf(note, sizeof note, " (columns changed: new snapshot pending)");
            else if (known[i] && st->schema_changed_ms) snprintf(note, sizeof note, " (columns changed %s)", chg);
            else if (!t && !cfg->upstream.url) snprintf(note, sizeof note, "%s(imported; not in %s)", *e ? " " : "",
                                                        cfg->path);
            buf_printf(&out, "%-24s %-12s %10llu %-34.34s %-21s %8s %-5s %s%s\n", name,
                       strategy, (unsigned long long)(known[i] ? st->rows : 0),
                       v.len ? v.p : "-", when, agebuf, stale ? "yes" : "no", e, note);
        }
    }
    if (as_json) buf_puts(&out, "]}\n");
    fwrite(out.p, 1, out.len, stdout);
    for (int i = 0; i < ntab; i++) if (known[i]) replay_table_free(&ts[i]);
    if (cached) replay_names_free(cached, ncached);
    free(rows);
    free(ts);
    free(known);
    buf_free(&out);
    buf_free(&v);
    store_close(&s);
    return 0;
}

/* ---- query ------------------------------------------------------------------------- */

enum fmt { FMT_TSV, FMT_JSON, FMT_CSV };

static void csv_field(struct buf *b, const char *s, size_t n)
{
    int quote = 0;
    for (size_t i = 0; i < n && !quote; i++) quote = s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r';
    if (!quote) { buf_append(b, s, n); return; }
    buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"') buf_putc(b, '"');
        buf_putc(b, s[i]);
    }
    buf_putc(b, '"');
}

/* Print every row of a prepared statement; returns the sqlite result code. */
static int print_rows(sqlite3_stmt *ps, enum fmt f, size_t *nrows)
{
    struct buf b = {0};
    int n = sqlite3_column_count(ps), rc;
    if (f != FMT_JSON) {
        for (int i = 0; i < n; i++) {
            if (i) buf_putc(&b, f == FMT_CSV ? ',' : '\t');
            const char *name = sqlite3_column_name(ps, i);
            if (f == FMT_CSV) csv_field(&b, name, strlen(name)); else buf_puts(&b, name);
        }
        buf_putc(&b, '\n');
    }
    *nrows = 0;
    while ((rc = sqlite3_step(ps)) == SQLITE_ROW) {
        if (f == FMT_JSON) buf_putc(&b, '{');
        for (int i = 0; i < n; i++) {
            int t = sqlite3_column_type(ps, i);
            const char *txt = (const char *)sqlite3_column_text(ps, i);
            size_t len = (size_t)sqlite3_column_bytes(ps, i);
            if (f == FMT_JSON) {
                if (i) buf_putc(&b, ',');
                const char *name = sqlite3_column_name(ps, i);
                json_write_string(&b, name, strlen(name));
                buf_putc(&b, ':');
                const char *decl = sqlite3_column_decltype(ps, i);
                if (t == SQLITE_NULL) buf_puts(&b, "null");
                else if (t == SQLITE_INTEGER && decl && !strcasecmp(decl, "BOOLEAN"))
                    buf_puts(&b, sqlite3_column_int64(ps, i) ? "true" : "false");
                else if (t == SQLITE_TEXT && decl && !strcasecmp(decl, "JSON") && len && (*txt == '[' || *txt == '{'))
                    buf_append(&b, txt, len);   /* arrays/objects as the portal sends them */
                else if (t == SQLITE_INTEGER) buf_printf(&b, "%lld", (long long)sqlite3_column_int64(ps, i));
                else if (t == SQLITE_FLOAT) json_write_double(&b, sqlite3_column_double(ps, i));
                else if (t == SQLITE_BLOB) json_write_blob(&b, sqlite3_column_blob(ps, i), len);
                else json_write_string(&b, txt, len);
            } else {
                if (i) buf_putc(&b, f == FMT_CSV ? ',' : '\t');
                if (t == SQLITE_NULL) { if (f == FMT_TSV) buf_puts(&b, "NULL"); continue; }
                if (t == SQLITE_BLOB) { json_blob_text(&b, sqlite3_column_blob(ps, i), len); continue; }
                if (f == FMT_CSV) { csv_field(&b, txt, len); continue; }
                for (size_t k = 0; k < len; k++) {      /* TSV: one line per row */
                    char ch = txt[k];
                    if (ch == '\t') buf_puts(&b, "\\t");
                    else if (ch == '\n') buf_puts(&b, "\\n");
                    else if (ch == '\r') buf_puts(&b, "\\r");
                    else if (ch == '\\') buf_puts(&b, "\\\\");
                    else buf_putc(&b, ch);
                }
            }
        }
        buf_puts(&b, f == FMT_JSON ? "}\n" : "\n");
        (*nrows)++;
        if (b.len > 1 << 16) { fwrite(b.p, 1, b.len, stdout); buf_reset(&b); }
    }
    fwrite(b.p ? b.p : "", 1, b.len, stdout);
    buf_free(&b);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static sqlite3 *open_readonly(const struct config *cfg, char *err, size_t errlen)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/cache.db", cfg->storage.dir);
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%.1024s: %s (has anything been pulled yet? try `iptv-agent --once`)", path,
                 db ? sqlite3_errmsg(db) : "cannot open");
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 5000);
    return db;
}

static const char query_usage[] =
    "usage: iptv-agent query [--json|--csv] SQL\n"
    "\n"
    "Run one read-only SQL statement on cache.db and print the rows: tab-separated\n"
    "with a header (default; tab, newline, CR and backslash escaped as \\t \\n \\r \\\\),\n"
    "one JSON object per line (--json), or CSV (--csv); one of them only. A BLOB\n"
    "prints as \\x and its bytes in hex (PostgreSQL's bytea form; a JSON string).\n"
    "Writes and multiple statements are refused. Exit: 0 ok, 1 SQL error, 2 usage.\n";

int cmd_query(const struct config *cfg, int argc, char **argv)
{
    if (cmd_wants_help(argc, argv)) { fputs(query_usage, stdout); return 0; }
    enum fmt f = FMT_TSV;
    const char *sql = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json") || !strcmp(argv[i], "--csv")) {
            enum fmt want = argv[i][2] == 'j' ? FMT_JSON : FMT_CSV;
            if (f != FMT_TSV && f != want) {
                fprintf(stderr, "iptv-agent query: --json and --csv exclude each other\n%s", query_usage);
                return 2;
            }
            f = want;
        }
        else if (!sql) sql = argv[i];
        else { fprintf(stderr, "iptv-agent query: unexpected argument %s\n%s", argv[i], query_usage); return 2; }
    }
    if (!sql) { fputs(query_usage, stderr); return 2; }
    char err[IA_ERRLEN];
    sqlite3 *db = open_readonly(cfg, err, sizeof err);
    if (!db) { fprintf(stderr, "iptv-agent query: %s\n", err); return 1; }
    sqlite3_stmt *ps = NULL;
    const char *tail = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &ps, &tail);
    if (rc != SQLITE_OK || !ps) {
        fprintf(stderr, "iptv-agent query: %s\n", rc != SQLITE_OK ? sqlite3_errmsg(db) : "empty statement");
        sqlite3_close(db);
        return 1;
    }
    while (tail && (isspace((unsigned char)*tail) || *tail == ';')) tail++;
    if (tail && *tail) {
        fprintf(stderr, "iptv-agent query: one statement only (found more after: \"%.40s\")\n", tail);
        rc = SQLITE_ERROR;
    } else if (!sqlite3_stmt_readonly(ps)) {
        fprintf(stderr, "iptv-agent query: only reads are allowed on the cache\n");
        rc = SQLITE_READONLY;
    } else {
        size_t n;
        rc = print_rows(ps, f, &n);
        if (rc != SQLITE_OK) fprintf(stderr, "iptv-agent query: %s\n", sqlite3_errmsg(db));
    }
    sqlite3_finalize(ps);
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : 1;
}

/* ---- get ----------------------------------------------------------------------------- */

static const char get_usage[] =
    "usage: iptv-agent get TABLE COLUMN=VALUE\n"
    "\n"
    "Print the cached rows of TABLE where COLUMN equals VALUE, one JSON object per\n"
    "line. For an on_demand table a miss is fetched from the portal, journaled,\n"
    "applied and printed; cached rows read from the portal longer ago than the\n"
    "table's ttl are read again first (rows the portal no longer has are dropped;\n"
    "when the portal cannot be asked they are printed as cached, with a warning on\n"
    "stderr). VALUE is always a value, never read as a column. A table that is not\n"
    "configured but is in cache.db (an edge's, or imported) is read from the cache\n"
    "only. Exit: 0 found, 3 not found, 1 error (e.g. the portal is unreachable and\n"
    "the cache does not have it), 2 usage (also: a column TABLE does not have, or a\n"
    "VALUE that is not an integer for an integer column).\n";

/* 0 ok (*n rows printed), -1 SQL error (err). A missing table prints nothing. */
static int lookup(const struct config *cfg, const char *table, const char *col, const char *val, size_t *n,
                  char *err, size_t errlen)
{
    *n = 0;
    sqlite3 *db = open_readonly(cfg, err, errlen);
    if (!db) return 1;   /* no cache yet: a miss */
    struct buf sql = {0};
    /* Names are checked against the cache's own schema before they reach SQL. */
    sqlite3_stmt *ps = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2", -1, &ps, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(ps, 1, table, -1, SQLITE_STATIC);
        sqlite3_bind_text(ps, 2, col, -1, SQLITE_STATIC);
        rc = sqlite3_step(ps);
    }
    sqlite3_finalize(ps);
    ps = NULL;
    if (rc != SQLITE_ROW) {
        sqlite3_close(db);
        return 1;
    }
    buf_printf(&sql, "SELECT * FROM \"%s\" WHERE \"%s\" = ?1", table, col);
    rc = sqlite3_prepare_v2(db, sql.p, -1, &ps, NULL);
    /* Bound as text: the column's affinity turns '42' into 42 for INTEGER columns
     * and keeps '0042' as written for TEXT ones. */
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(ps, 1, val, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = print_rows(ps, FMT_JSON, n);
    if (rc != SQLITE_OK) snprintf(err, errlen, "%s", sqlite3_errmsg(db));
    sqlite3_finalize(ps);
    sqlite3_close(db);
    buf_free(&sql);
    return rc == SQLITE_OK ? 0 : -1;
}

/* Is COLUMN one of TABLE's, and can VALUE be one of its values? Names: the
 * configured columns, else the cache's; an introspected on_demand table may
 * also be asked by a name only the portal knows (the cache calls most of its
 * columns Field_N). Types: the cache's. 0 ok, 2 usage error (printed). */
static int check_column(const struct config *cfg, const struct config_table *t, const char *col, const char *val)
{
    struct buf names = {0};
    int have = t->ncolumns > 0, known = 0, integer = 0;
    for (int i = 0; i < t->ncolumns; i++) {
        buf_printf(&names, "%s%s", i ? ", " : "", t->columns[i]);
        if (!strcmp(t->columns[i], col)) known = 1;
    }
    char err[IA_ERRLEN];
    sqlite3 *db = open_readonly(cfg, err, sizeof err);
    sqlite3_stmt *ps = NULL;
    if (db && sqlite3_prepare_v2(db, "SELECT name, type FROM pragma_table_info(?1)", -1, &ps, NULL) == SQLITE_OK) {
        sqlite3_bind_text(ps, 1, t->name, -1, SQLITE_STATIC);
        while (sqlite3_step(ps) == SQLITE_ROW) {
            const char *name = (const char *)sqlite3_column_text(ps, 0);
            const char *type = (const char *)sqlite3_column_text(ps, 1);
            if (!name) continue;
            if (!t->ncolumns) {
                buf_printf(&names, "%s%s", have ? ", " : "", name);
                have = 1;
            }
            if (strcmp(name, col) != 0) continue;
            known |= !t->ncolumns;
            integer = type && !strcasecmp(type, "INTEGER");
        }
    }
    sqlite3_finalize(ps);
    sqlite3_close(db);
    int rc = 0;
    int64_t iv;
    if (have && !known && !(t->strategy == STRATEGY_ON_DEMAND && !t->ncolumns)) {
        fprintf(stderr, "iptv-agent get: table %s has no column \"%s\"; its columns: %s\n", t->name, col, names.p);
        rc = 2;
    } else if (integer && !pull_int_text(val, &iv)) {
        fprintf(stderr, "iptv-agent get: %s.%s holds integers: \"%s\" is not one\n", t->name, col, val);
        rc = 2;
    }
    buf_free(&names);
    return rc;
}

/* Print the cached rows whose key is in keys_json (a JSON array). 0 or -1. */
static int lookup_keys(const struct config *cfg, const char *table, const char *key, const char *keys_json,
                       size_t *n, char *err, size_t errlen)
{
    *n = 0;
    sqlite3 *db = open_readonly(cfg, err, errlen);
    if (!db) return -1;
    struct buf sql = {0};
    buf_printf(&sql, "SELECT * FROM \"%s\" WHERE \"%s\" IN (SELECT value FROM json_each(?1)) ORDER BY 1", table, key);
    sqlite3_stmt *ps = NULL;
    int rc = sqlite3_prepare_v2(db, sql.p, -1, &ps, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(ps, 1, keys_json, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = print_rows(ps, FMT_JSON, n);
    if (rc != SQLITE_OK) snprintf(err, errlen, "%s", sqlite3_errmsg(db));
    sqlite3_finalize(ps);
    sqlite3_close(db);
    buf_free(&sql);
    return rc == SQLITE_OK ? 0 : -1;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct buf *b = ud;
    if (b->len + size * n > (1u << 26)) return 0;
    buf_append(b, p, size * n);
    return size * n;
}

/* Keeps the X-Cache-Error header: the daemon could not ask the portal. */
static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    struct buf *b = ud;
    size_t len = size * n;
    if (len > 14 && !strncasecmp(p, "X-Cache-Error:", 14)) {
        buf_reset(b);
        buf_append(b, p + 14, len - 14);
        while (b->len && (b->p[b->len - 1] == '\r' || b->p[b->len - 1] == '\n')) b->p[--b->len] = '\0';
    }
    return len;
}

/* The running daemon holds the journal: ask it through its local API (an
 * on_demand select by key that misses is fetched by the daemon). 0 asked,
 * -1 with err. */
static int ask_daemon(const struct config *cfg, const struct config_table *t, const char *val, char *err,
                      size_t errlen)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/agent.url", cfg->storage.dir);
    FILE *f = fopen(path, "r");
    char url[400] = "";
    if (!f || !fgets(url, sizeof url, f)) {
        if (f) fclose(f);
        snprintf(err, errlen, "another process holds the journal and no running daemon is advertised in %.1024s", path);
        return -1;
    }
    fclose(f);
    url[strcspn(url, "\r\n")] = '\0';
    struct buf req = {0}, resp = {0};
    buf_printf(&req, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"select\",\"params\":{\"data\":[\"%s\"],"
                     "\"from\":\"%s\",\"where\":{\"in\":[\"%s\",[", t->key, t->name, t->key);
    int64_t iv;
    if (pull_int_text(val, &iv)) buf_printf(&req, "%lld", (long long)iv);
    else json_write_string(&req, val, strlen(val));
    buf_puts(&req, "]]}}}");    /* in a list, a value that reads like a column is still a value */
    strncat(url, "/api/jsonsql/", sizeof url - strlen(url) - 1);
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    const char *token = cfg->serve.token_env ? getenv(cfg->serve.token_env) : NULL;
    struct buf auth = {0};
    if (token && *token) {
        buf_printf(&auth, "Authorization: Bearer %s", token);
        h = curl_slist_append(h, auth.p);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, req.p);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
    struct buf xerr = {0};
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &xerr);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    char msg[512] = "", perr[256];
    int rc = -1;
    static const struct json_rows_cb no_rows = {0};
    if (cc != CURLE_OK)
        snprintf(err, errlen, "the running daemon at %s: %s", url, curl_easy_strerror(cc));
    else if (json_rpc_rows(resp.p ? resp.p : "", resp.len, &no_rows, NULL, msg, sizeof msg, perr, sizeof perr) ==
             JSON_RPC_ERROR)
        snprintf(err, errlen, "the running daemon at %s: %s", url, msg);
    else if (status != 200)
        snprintf(err, errlen, "the running daemon at %s: HTTP %ld", url, status);
    else if (xerr.len)
        snprintf(err, errlen, "the running daemon could not ask the portal:%s", xerr.p);
    else
        rc = 0;
    buf_free(&xerr);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (auth.p) explicit_bzero(auth.p, auth.len);
    buf_free(&auth);
    buf_free(&req);
    buf_free(&resp);
    return rc;
}

/* 1 when cache.db has `table` (with `col`, when not NULL), 0 not, -1 error. */
static int cache_has(const struct config *cfg, const char *table, const char *col, char *err, size_t errlen)
{
    sqlite3 *db = open_readonly(cfg, err, errlen);
    if (!db) return 0;
    sqlite3_stmt *ps = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT count(*) FROM pragma_table_info(?1) WHERE ?2 IS NULL OR name = ?2", -1,
                                &ps, NULL);
    int has = -1;
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(ps, 1, table, -1, SQLITE_STATIC);
        if (col) sqlite3_bind_text(ps, 2, col, -1, SQLITE_STATIC);
        if (sqlite3_step(ps) == SQLITE_ROW) has = sqlite3_column_int(ps, 0) > 0;
    }
    if (has < 0) snprintf(err, errlen, "%s", sqlite3_errmsg(db));
    sqlite3_finalize(ps);
    sqlite3_close(db);
    return has;
}

/* A table that is not configured here but may be in cache.db: an edge's (its
 * hub sent it) or an imported one. Read from the cache only: there is no
 * portal to fetch a miss from, so a miss is plain not-found (exit 3). */
static int get_unconfigured(const struct config *cfg, const char *table, const char *arg)
{
    char err[IA_ERRLEN];
    char *col = xstrndup(arg, (size_t)(strchr(arg, '=') - arg));
    const char *val = strchr(arg, '=') + 1;
    int rc = 2;
    size_t n = 0;
    int has = cache_has(cfg, table, NULL, err, sizeof err);
    if (has == 0) {
        fprintf(stderr, "iptv-agent get: table \"%s\" is not configured in %s and cache.db does not hold it\n",
                table, cfg->path);
    } else if (has > 0 && (has = cache_has(cfg, table, col, err, sizeof err)) == 0) {
        fprintf(stderr, "iptv-agent get: table %s in cache.db has no column \"%s\"\n", table, col);
    } else if (has < 0 || lookup(cfg, table, col, val, &n, err, sizeof err) != 0) {
        fprintf(stderr, "iptv-agent get: %s\n", err);
        rc = 1;
    } else if (n == 0) {
        fprintf(stderr, "iptv-agent get: no row of %s in the cache has %s (%s)\n", table, arg,
                cfg->upstream.url ? "an edge has no portal to ask" : "not configured here: the portal is not asked");
        rc = 3;
    } else {
        rc = 0;
    }
    free(col);
    return rc;
}

/* Are the cached rows of on_demand table t with col = val older than its ttl?
 * 1 with their keys (JSON array, malloc'd) and oldest fetch time (0: unknown). */
static int stale_rows(const struct config *cfg, const struct config_table *t, const char *col, const char *val,
                      int64_t *at_ms, char **keys)
{
    char err[IA_ERRLEN];
    sqlite3 *db = open_readonly(cfg, err, sizeof err);
    if (!db) return 0;                 /* nothing cached: a miss */
    struct buf sql = {0};
    replay_fetched_sql(&sql, t->name, t->key, col);
    sqlite3_stmt *ps = NULL;
    int stale = 0;
    /* Bound as lookup() binds it, so the same rows are meant. An unknown table or
     * column fails to prepare: lookup() tells. */
    if (sqlite3_prepare_v2(db, sql.p, -1, &ps, NULL) == SQLITE_OK &&
        sqlite3_bind_text(ps, 1, val, -1, SQLITE_STATIC) == SQLITE_OK && sqlite3_step(ps) == SQLITE_ROW &&
        sqlite3_column_int64(ps, 0) > 0) {
        *at_ms = sqlite3_column_int64(ps, 1);
        stale = config_stale(t->ttl_ms, *at_ms, clock_wall_ms());
        if (stale) *keys = xstrdup((const char *)sqlite3_column_text(ps, 2));
    }
    sqlite3_finalize(ps);
    sqlite3_close(db);
    buf_free(&sql);
    return stale;
}

/* Read stale on_demand rows again before they are printed (pull_keys: rows the
 * portal no longer has are dropped). When the portal cannot be asked, say so:
 * the cached rows are printed anyway. */
static void refresh_stale(const struct config *cfg, const struct config_table *t, const char *col, const char *val)
{
    int64_t at = 0;
    char *keys = NULL, err[IA_ERRLEN];
    if (!stale_rows(cfg, t, col, val, &at, &keys)) return;
    int rc = -1;
    struct store s;
    int src = store_open(cfg, 1, &s, err, sizeof err);
    if (src == 0) {
        remote *r = remote_from_config(cfg, err, sizeof err);
        if (r) {
            struct pull_ctx c = {.cfg = cfg, .remote = r, .jw = s.jw, .rp = s.rp};
            rc = pull_keys(&c, t, keys, NULL, err, sizeof err);
        }
        remote_free(r);
        store_close(&s);
    } else if (src == STORE_ELOCKED && !strcmp(col, t->key)) {
        rc = ask_daemon(cfg, t, val, err, sizeof err);   /* the daemon refreshes a stale key lookup */
    }
    if (rc != 0) {
        char when[64];
        if (at > 0) snprintf(when, sizeof when, "read from the portal %lld s ago", (long long)((clock_wall_ms() - at) / 1000));
        else snprintf(when, sizeof when, "read from the portal at a time the cache does not know");
        fprintf(stderr, "iptv-agent get: warning: the cached rows of %s with %s=%s are stale (%s; ttl %lld s) and "
                        "could not be read again: %s\n", t->name, col, val, when, (long long)(t->ttl_ms / 1000), err);
    }
    free(keys);
}

int cmd_get(const struct config *cfg, int argc, char **argv)
{
    if (cmd_wants_help(argc, argv)) { fputs(get_usage, stdout); return 0; }
    if (argc != 3 || !strchr(argv[2], '=')) { fputs(get_usage, stderr); return 2; }
    const char *table = argv[1];
    const struct config_table *t = config_table_find(cfg, table);
    if (!t) return get_unconfigured(cfg, table, argv[2]);
    char *col = xstrndup(argv[2], (size_t)(strchr(argv[2], '=') - argv[2]));
    const char *val = strchr(argv[2], '=') + 1;
    char err[IA_ERRLEN];
    size_t n = 0;
    if (check_column(cfg, t, col, val) != 0) {
        free(col);
        return 2;
    }
    if (t->strategy == STRATEGY_ON_DEMAND) refresh_stale(cfg, t, col, val);
    int rc = lookup(cfg, table, col, val, &n, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "iptv-agent get: %s\n", err);
        free(col);
        return 1;
    }
    if (n > 0 || t->strategy != STRATEGY_ON_DEMAND) {
        free(col);
        if (n == 0) fprintf(stderr, "iptv-agent get: no row of %s in the cache has %s\n", table, argv[2]);
        return n > 0 ? 0 : 3;
    }
    /* on_demand miss: ask the portal */
    struct store s;
    remote *r = NULL;
    uint64_t found = 0;
    int src = store_open(cfg, 1, &s, err, sizeof err);
    if (src != 0) {
        /* A running daemon owns the journal: let it fetch (by key only: its API
         * fetches on_demand misses of a key lookup). */
        int daemon = src == STORE_ELOCKED;
        if (daemon && strcmp(col, t->key) != 0) {
            fprintf(stderr, "iptv-agent get: %s=%s is not in the cache; the running daemon holds the journal and "
                            "fetches only by key (%s=...) — look up by key or stop the daemon\n", col, val, t->key);
        } else if (daemon && ask_daemon(cfg, t, val, err, sizeof err) == 0) {
            int lrc = lookup(cfg, table, col, val, &n, err, sizeof err);
            free(col);
            if (lrc < 0) { fprintf(stderr, "iptv-agent get: %s\n", err); return 1; }
            if (n == 0) fprintf(stderr, "iptv-agent get: no row of %s has %s (cache and portal)\n", table, argv[2]);
            return n > 0 ? 0 : 3;
        } else {
            fprintf(stderr, "iptv-agent get: %s\n", err);
        }
        free(col);
        return 1;
    }
    r = remote_from_config(cfg, err, sizeof err);
    int exit_code = 1;
    struct buf keys = {0};
    if (r) {
        struct pull_ctx c = {.cfg = cfg, .remote = r, .jw = s.jw, .rp = s.rp};
        int prc = pull_get(&c, t, col, val, &found, &keys, err, sizeof err);
        if (prc == 0) exit_code = found ? 0 : 3;
        else if (prc == PULL_EUSAGE) exit_code = 2;
    }
    if (exit_code == 2) fprintf(stderr, "iptv-agent get: %s\n", err);
    if (exit_code == 1)
        fprintf(stderr, "iptv-agent get: %s=%s is not in the cache and the portal could not be asked: %s\n", col, val,
                err);
    store_close(&s);
    remote_free(r);
    /* Read back by key: without configured columns the cache calls most of
     * them Field_N, while the portal was asked by name. */
    if (exit_code == 0 && (lookup_keys(cfg, table, t->key, keys.p, &n, err, sizeof err) != 0 || n == 0)) {
        fprintf(stderr, "iptv-agent get: fetched %llu rows but cannot read them back: %s\n",
                (unsigned long long)found, err);
        exit_code = 1;
    }
    buf_free(&keys);
    if (exit_code == 3) fprintf(stderr, "iptv-agent get: no row of %s has %s=%s (cache and portal)\n", table, col, val);
    free(col);
    return exit_code;
}
