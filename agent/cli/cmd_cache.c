/* cmd_cache.c — `query` and `get`: reading what the cache holds.
 * `query` and the cache side of `get` use a read-only connection and never
 * wait for the portal (invariant 6). */
#include "agent/base/buf.h"
#include "agent/base/clock.h"
#include "agent/cli/cmd.h"
#include "agent/base/err.h"
#include "agent/base/json.h"
#include "agent/base/mem.h"
#include "agent/pull/pull.h"
#include "agent/pull/store.h"
#include "journal/rows.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

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
    return replay_db_open_readonly(path, 0, 5000, &db, err, errlen) == 0 ? db : NULL;
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

/* Print as JSON lines the rows of sql with ?1 bound to the text arg; closes db.
 * 0 ok (*n rows printed), -1 SQL error (err). */
static int print_query(sqlite3 *db, const char *sql, const char *arg, size_t *n, char *err, size_t errlen)
{
    sqlite3_stmt *ps = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &ps, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(ps, 1, arg, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = print_rows(ps, FMT_JSON, n);
    if (rc != SQLITE_OK) snprintf(err, errlen, "%s", sqlite3_errmsg(db));
    sqlite3_finalize(ps);
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : -1;
}

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
    /* Bound as text: the column's affinity turns '42' into 42 for INTEGER columns
     * and keeps '0042' as written for TEXT ones. */
    rc = print_query(db, sql.p, val, n, err, errlen);
    buf_free(&sql);
    return rc;
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
    int rc = print_query(db, sql.p, keys_json, n, err, errlen);
    buf_free(&sql);
    return rc;
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

/* A session from the daemon's authorize_user with the [remote] account
 * ([serve] auth = "portal" without a token), as "Iptvportal-Authorization:
 * sessionid=SID" into hdr. 0, or -1 (no account, or refused: the select then
 * says why). */
static int daemon_login(const struct config *cfg, const char *base_url, struct buf *hdr)
{
    const char *pw = getenv(cfg->remote.password_env ? cfg->remote.password_env : "IPTVPORTAL_PASSWORD");
    if (!cfg->remote.username || !pw || !*pw) return -1;
    struct buf req = {0}, resp = {0};
    buf_puts(&req, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"authorize_user\",\"params\":{\"username\":");
    json_write_string(&req, cfg->remote.username, strlen(cfg->remote.username));
    buf_puts(&req, ",\"password\":");
    json_write_string(&req, pw, strlen(pw));
    buf_puts(&req, "}}");
    char url[450];
    snprintf(url, sizeof url, "%s/api/jsonrpc/", base_url);
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, req.p);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    int rc = -1;
    cJSON *doc = NULL;
    char perr[256];
    if (curl_easy_perform(c) == CURLE_OK && resp.p &&
        json_parse(resp.p, resp.len, JSON_MAX_DEPTH_DEFAULT, &doc, perr, sizeof perr) == 0) {
        const cJSON *sid = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "result"),
                                                            "session_id");
        if (cJSON_IsString(sid)) {
            buf_printf(hdr, "Iptvportal-Authorization: sessionid=%s", sid->valuestring);
            rc = 0;
        }
    }
    cJSON_Delete(doc);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    explicit_bzero(req.p, req.len);
    buf_free(&req);
    buf_free(&resp);
    return rc;
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
    } else {
        url[strlen(url) - strlen("/api/jsonsql/")] = '\0';
        if (daemon_login(cfg, url, &auth) == 0) h = curl_slist_append(h, auth.p);
        strncat(url, "/api/jsonsql/", sizeof url - strlen(url) - 1);
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
