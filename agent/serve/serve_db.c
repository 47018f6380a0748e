/* serve_db.c — see serve_db.h. */
#include "agent/serve/serve_db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "agent/base/err.h"
#include "agent/base/log.h"
#include "agent/base/mem.h"

/* Memory bound for any one value a client's SQL can build (replace(), group_concat ...). */
#define SDB_MAX_LENGTH (64 << 20)
/* VM instructions between two looks at the clock. One instruction may be a
 * function building a 16 MiB string (tens of ms), and the caller's work per
 * row (writing it out as JSON) only counts when the clock is next read. With
 * 4000, a 1000 ms limit stopped a query building a 16 MiB string per row after
 * 4.8 s, and one returning a 16 MiB row after 7 s with a 3.4 GB reply; with
 * 100, after 1.05 s and 1.16 s (0.5 GB). A look costs ~20 ns (vDSO
 * clock_gettime): no measurable change on a 4M-row cross join. */
#define SDB_PROGRESS_OPS 100

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- the authorizer ---------------------------------------------------------------- */

/* Read-only functions a client may call: the JSONSQL compiler's (count max min
 * sum avg regexp_replace lower upper coalesce nullif length abs round, substr
 * for concat, like for LIKE .. ESCAPE, and its helpers: jsonsql_helper_function)
 * and SQLite's ordinary scalar, aggregate, date, JSON and window
 * functions. Left out: anything that makes large values from nothing (zeroblob,
 * randomblob, printf/format), load_extension, and the sqlite_* introspection. */
static const char *const allowed_functions[] = {
    "abs", "avg", "ceil", "ceiling", "char", "coalesce", "count", "cume_dist", "date", "datetime",
    "dense_rank", "first_value", "floor", "glob", "group_concat", "hex", "ifnull", "iif", "instr",
    "json", "json_array_length", "json_extract", "json_quote", "json_type", "json_valid", "julianday",
    "lag", "last_value", "lead", "length", "like", "likelihood", "likely", "lower", "ltrim", "max",
    "min", "nth_value", "ntile", "nullif", "octet_length", "percent_rank", "quote", "rank",
    "regexp_replace", "replace", "round", "row_number", "rtrim", "sign", "strftime", "string_agg",
    "substr", "substring", "sum", "time", "total", "trim", "trunc", "typeof", "unicode", "unixepoch",
    "unlikely", "upper", "->", "->>",
};

static int function_allowed(const char *name)
{
    if (!name) return 0;
    if (jsonsql_helper_function(name)) return 1;
    for (size_t i = 0; i < sizeof allowed_functions / sizeof allowed_functions[0]; i++)
        if (strcasecmp(name, allowed_functions[i]) == 0) return 1;
    return 0;
}

static const char *action_name(int action)
{
    switch (action) {
    case SQLITE_INSERT: return "INSERT";
    case SQLITE_UPDATE: return "UPDATE";
    case SQLITE_DELETE: return "DELETE";
    case SQLITE_PRAGMA: return "PRAGMA";
    case SQLITE_ATTACH: return "ATTACH";
    case SQLITE_DETACH: return "DETACH";
    case SQLITE_TRANSACTION: return "a transaction statement";
    case SQLITE_SAVEPOINT: return "SAVEPOINT";
    case SQLITE_ALTER_TABLE: return "ALTER TABLE";
    case SQLITE_REINDEX: return "REINDEX";
    case SQLITE_ANALYZE: return "ANALYZE";
    case SQLITE_CREATE_TABLE: case SQLITE_CREATE_TEMP_TABLE: return "CREATE TABLE";
    case SQLITE_CREATE_INDEX: case SQLITE_CREATE_TEMP_INDEX: return "CREATE INDEX";
    case SQLITE_CREATE_VIEW: case SQLITE_CREATE_TEMP_VIEW: return "CREATE VIEW";
    case SQLITE_CREATE_TRIGGER: case SQLITE_CREATE_TEMP_TRIGGER: return "CREATE TRIGGER";
    case SQLITE_CREATE_VTABLE: return "CREATE VIRTUAL TABLE";
    case SQLITE_DROP_TABLE: case SQLITE_DROP_TEMP_TABLE: case SQLITE_DROP_VTABLE: return "DROP TABLE";
    case SQLITE_DROP_INDEX: case SQLITE_DROP_TEMP_INDEX: return "DROP INDEX";
    case SQLITE_DROP_VIEW: case SQLITE_DROP_TEMP_VIEW: return "DROP VIEW";
    case SQLITE_DROP_TRIGGER: case SQLITE_DROP_TEMP_TRIGGER: return "DROP TRIGGER";
    default: return "this statement";
    }
}

static int names_has(const struct sdb_names *s, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->v[i], name) == 0) return 1;
    return 0;
}

static void names_add(struct sdb_names *s, const char *name)
{
    if (names_has(s, name)) return;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 4;
        s->v = xrealloc(s->v, sizeof *s->v * (size_t)s->cap);
    }
    s->v[s->n++] = xstrdup(name);
}

static void names_clear(struct sdb_names *s)
{
    for (int i = 0; i < s->n; i++) free(s->v[i]);
    s->n = 0;
}

static void names_free(struct sdb_names *s)
{
    names_clear(s);
    free(s->v);
    memset(s, 0, sizeof *s);
}

/* d->collecting while serve_db.c prepares and runs its own statements on rd
 * (the b-tree check): the authorizer lets them through. */
#define INTERNAL 2

/* Names SQLite reserves and the agent's metadata (shadow tables included). */
static int reserved(const char *name)
{
    return strncasecmp(name, "sqlite_", 7) == 0 || strncasecmp(name, "_agent_", 7) == 0;
}

/* Everything not named here is denied, so a new kind of statement in a later
 * SQLite is refused until someone decides otherwise. A re-prepare inside
 * sqlite3_step (after a schema change) passes through here again, against the
 * catalog of that moment.
 * SQLITE_READ names a schema table with its database, except for count(*),
 * which names the table with no database: then the name may also be a CTE
 * (a recursive one is read whole). Such a name is noted as unsure and
 * sdb_prepare accepts the statement only if SQLite also reported that name as a
 * CTE (the `inner` argument of a SELECT inside it). The only schema tables
 * outside the catalog are reserved names, which are refused outright. */
static int authorize(void *ud, int action, const char *a1, const char *a2, const char *dbname,
                     const char *inner)
{
    struct sdb *d = ud;
    if (d->collecting == INTERNAL) return SQLITE_OK;
    switch (action) {
    case SQLITE_SELECT:
        if (inner && d->collecting) names_add(&d->ctes, inner);
        return SQLITE_OK;
    case SQLITE_RECURSIVE:
        return SQLITE_OK;
    case SQLITE_READ:
        if (!a1) break;
        if ((!dbname || strcmp(dbname, "main") == 0) && jsonsql_catalog_ncolumns(d->cat, a1) >= 0) {
            if (d->collecting) names_add(&d->seen, a1);
            return SQLITE_OK;
        }
        if (!dbname && !reserved(a1)) {
            if (d->collecting) names_add(&d->unsure, a1);
            return SQLITE_OK;
        }
        break;
    case SQLITE_FUNCTION:
        if (function_allowed(a2)) return SQLITE_OK;
        if (d->deny[0]) return SQLITE_DENY;
        snprintf(d->deny, sizeof d->deny, "function %.100s() is not allowed here", a2 ? a2 : "?");
        return SQLITE_DENY;
    default:
        if (d->deny[0]) return SQLITE_DENY;          /* keep the first reason */
        /* DDL first asks to write sqlite_master (INSERT for CREATE, DELETE for
         * DROP); a SELECT from an eponymous virtual table asks to UPDATE it. */
        if (a1 && strcasecmp(a1, "sqlite_master") == 0 && action == SQLITE_UPDATE)
            snprintf(d->deny, sizeof d->deny, "virtual tables (pragma_*, json_each ...) are not readable here: "
                                              "only the cache's pulled tables are");
        else if (a1 && (strcasecmp(a1, "sqlite_master") == 0 || strcasecmp(a1, "sqlite_temp_master") == 0))
            snprintf(d->deny, sizeof d->deny, "schema changes (CREATE, DROP, ALTER) are not allowed: "
                                              "the local API only reads the cache");
        else
            snprintf(d->deny, sizeof d->deny, "%s is not allowed: the local API only reads the cache",
                     action_name(action));
        return SQLITE_DENY;
    }
    if (d->deny[0]) return SQLITE_DENY;
    snprintf(d->deny, sizeof d->deny, "table %.100s is not readable here: only the cache's pulled tables are",
             a1 ? a1 : "?");
    return SQLITE_DENY;
}

static int progress(void *ud)
{
    struct sdb *d = ud;
    if (d->deadline_ns && mono_ns() > d->deadline_ns) {
        d->timed_out = 1;
        return 1;
    }
    return 0;
}

void sdb_deadline(struct sdb *d, int64_t ms)
{
    if (ms > 0) d->timed_out = 0;        /* disarming keeps it for the caller to read */
    d->deadline_ns = ms > 0 ? mono_ns() + ms * 1000000 : 0;
}

/* ---- prepared statements --------------------------------------------------------- */

static uint32_t hash_sql(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static void entry_clear(struct sdb_stmt *e)
{
    sqlite3_finalize(e->ps);
    for (int i = 0; i < e->ntables; i++) free(e->tables[i]);
    free(e->tables);
    free(e->sql);
    memset(e, 0, sizeof *e);
}

static void cache_flush(struct sdb *d)
{
    for (int i = 0; i < SDB_CACHE; i++) entry_clear(&d->cache[i]);
}

/* Only whitespace, ';' and comments left after the first statement? */
static int tail_empty(struct sdb *d, const char *tail, const char *end)
{
    if (tail >= end) return 1;
    sqlite3_stmt *ps = NULL;
    int rc = sqlite3_prepare_v2(d->rd, tail, (int)(end - tail), &ps, NULL);
    sqlite3_finalize(ps);
    return rc == SQLITE_OK && ps == NULL;
}

/* Which table each b-tree (table or index, by root page) belongs to. */
struct roots {
    int64_t *page;
    char **tbl;
    int n, cap;
};

static void roots_free(struct roots *r)
{
    for (int i = 0; i < r->n; i++) free(r->tbl[i]);
    free(r->page);
    free(r->tbl);
    memset(r, 0, sizeof *r);
}

static const char *roots_owner(const struct roots *r, int64_t page)
{
    for (int i = 0; i < r->n; i++)
        if (r->page[i] == page) return r->tbl[i];
    return NULL;
}

/* Read sqlite_master on rd itself, inside the read transaction sdb_prepare
 * opened: this first read also makes rd reload its copy of the schema when a
 * commit (a snapshot swap) changed it, so the statement prepared next and the
 * pages listed here describe the same schema. 0, or -1 with err. */
static int load_roots(struct sdb *d, struct roots *r, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int saved = d->collecting;
    d->collecting = INTERNAL;
    int rc = sqlite3_prepare_v2(d->rd, "SELECT rootpage, tbl_name FROM sqlite_master"
                                       " WHERE type IN ('table', 'index') AND rootpage > 0", -1, &st, NULL);
    while (st && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (r->n == r->cap) {
            r->cap = r->cap ? r->cap * 2 : 16;
            r->page = xrealloc(r->page, sizeof *r->page * (size_t)r->cap);
            r->tbl = xrealloc(r->tbl, sizeof *r->tbl * (size_t)r->cap);
        }
        const char *t = (const char *)sqlite3_column_text(st, 1);
        r->page[r->n] = sqlite3_column_int64(st, 0);
        r->tbl[r->n++] = xstrdup(t ? t : "");
    }
    d->collecting = saved;
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "checking the statement: reading the schema: %s", sqlite3_errmsg(d->rd));
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    return 0;
}

/* The b-trees a statement opens, read from its bytecode (EXPLAIN): each must
 * belong to a catalog table (the table or one of its indexes) in the main
 * database. A second line behind the authorizer, which SQLite does not ask
 * about every column it reads: the columns a NATURAL or USING join compares
 * go unasked, and a NATURAL FULL JOIN also returns them, so
 *   SELECT sql FROM (SELECT NULL AS sql WHERE 0) NATURAL FULL JOIN sqlite_master
 * passed the authorizer and listed the schema (SQLite 3.40). 0, or -1 with err. */
static int check_btrees(struct sdb *d, const struct roots *roots, const char *sql, size_t len, char *err,
                        size_t errlen)
{
    char *text = xmalloc(len + 9);
    memcpy(text, "EXPLAIN ", 8);
    memcpy(text + 8, sql, len);
    text[len + 8] = '\0';
    sqlite3_stmt *ex = NULL;
    int saved = d->collecting;
    d->collecting = INTERNAL;            /* the statement itself was authorized already */
    int rc = sqlite3_prepare_v2(d->rd, text, (int)len + 8, &ex, NULL);
    d->collecting = saved;
    free(text);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "checking the statement: %s", sqlite3_errmsg(d->rd));
        return -1;
    }
    int bad = 0;
    while (!bad && (rc = sqlite3_step(ex)) == SQLITE_ROW) {
        const char *op = (const char *)sqlite3_column_text(ex, 1);
        if (!op) continue;
        if (strcmp(op, "VOpen") == 0) {
            snprintf(err, errlen, "virtual tables (pragma_*, json_each ...) are not readable here: "
                                  "only the cache's pulled tables are");
            bad = 1;
            break;
        }
        if (strcmp(op, "OpenRead") != 0 && strcmp(op, "OpenWrite") != 0 && strcmp(op, "ReopenIdx") != 0) continue;
        int64_t page = sqlite3_column_int64(ex, 3), db = sqlite3_column_int64(ex, 4);
        const char *tbl = db != 0 ? "sqlite_temp_master" : page == 1 ? "sqlite_master" : roots_owner(roots, page);
        if (!tbl || reserved(tbl) || jsonsql_catalog_ncolumns(d->cat, tbl) < 0) {
            snprintf(err, errlen, "table %.100s is not readable here: only the cache's pulled tables are",
                     tbl ? tbl : "?");
            bad = 1;
        }
    }
    if (!bad && rc != SQLITE_DONE) {
        snprintf(err, errlen, "checking the statement: %s", sqlite3_errmsg(d->rd));
        bad = 1;
    }
    sqlite3_finalize(ex);
    return bad ? -1 : 0;
}

/* Prepare sql on rd and check it is one read-only query of catalog tables.
 * Runs inside the read transaction sdb_prepare holds. *out or -1 with err. */
static int prepare_checked(struct sdb *d, const char *sql, size_t len, sqlite3_stmt **out, char *err, size_t errlen)
{
    struct roots roots = {0};
    sqlite3_stmt *ps = NULL;
    const char *tail = NULL;
    *out = NULL;
    if (load_roots(d, &roots, err, errlen) != 0) return -1;
    names_clear(&d->seen);
    names_clear(&d->unsure);
    names_clear(&d->ctes);
    d->deny[0] = '\0';
    d->collecting = 1;
    int rc = sqlite3_prepare_v3(d->rd, sql, (int)len, SQLITE_PREPARE_PERSISTENT, &ps, &tail);
    d->collecting = 0;
    if (rc != SQLITE_OK) {
        /* A denial may surface as another code (a virtual table's constructor
         * reports SQLITE_ERROR "not authorized"): the recorded reason is better. */
        snprintf(err, errlen, "%s", d->deny[0] ? d->deny : sqlite3_errmsg(d->rd));
        goto fail;
    }
    if (!ps) {
        snprintf(err, errlen, "empty statement");
        goto fail;
    }
    for (int i = 0; i < d->unsure.n; i++)
        if (!names_has(&d->ctes, d->unsure.v[i])) {
            snprintf(err, errlen, "table %.100s is not readable here: only the cache's pulled tables are",
                     d->unsure.v[i]);
            goto fail;
        }
    while (tail < sql + len && (*tail == ' ' || *tail == '\t' || *tail == '\n' || *tail == '\r' || *tail == ';'))
        tail++;
    if (!tail_empty(d, tail, sql + len)) {
        int more = (int)(sql + len - tail);      /* sql is not NUL-terminated */
        snprintf(err, errlen, "one statement only (more follows: \"%.*s\")", more < 40 ? more : 40, tail);
        goto fail;
    }
    if (!sqlite3_stmt_readonly(ps)) {
        snprintf(err, errlen, "only reads are allowed: the local API never changes the cache");
        goto fail;
    }
    /* A query has result columns. Some statements compile to nothing without
     * asking the authorizer and then count as read-only: DROP TRIGGER IF EXISTS
     * of a missing trigger ran (as a no-op) before this check. */
    if (sqlite3_column_count(ps) == 0) {
        snprintf(err, errlen, "only queries (SELECT, VALUES, WITH ... SELECT) are allowed: "
                              "the local API only reads the cache");
        goto fail;
    }
    /* EXPLAIN lists a program without running it: nothing is read. */
    if (!sqlite3_stmt_isexplain(ps) && check_btrees(d, &roots, sql, len, err, errlen) != 0) goto fail;
    roots_free(&roots);
    *out = ps;
    return 0;
fail:
    roots_free(&roots);
    sqlite3_finalize(ps);
    return -1;
}

struct sdb_stmt *sdb_prepare(struct sdb *d, const char *sql, size_t len, char *err, size_t errlen)
{
    uint32_t h = hash_sql(sql, len);
    struct sdb_stmt *victim = &d->cache[0];
    for (int i = 0; i < SDB_CACHE; i++) {
        struct sdb_stmt *e = &d->cache[i];
        if (e->sql && e->hash == h && strlen(e->sql) == len && memcmp(e->sql, sql, len) == 0) {
            e->used = ++d->tick;
            sqlite3_reset(e->ps);
            sqlite3_clear_bindings(e->ps);
            return e;
        }
        if (!e->sql ? victim->sql != NULL : (victim->sql && e->used < victim->used)) victim = e;
    }
    /* Checked here, not with SQLITE_LIMIT_SQL_LENGTH: that limit also applies
     * to the CREATE TABLE texts in sqlite_master (a wide table's is long). */
    if (len > (size_t)d->max_sql) {
        snprintf(err, errlen, "SQL text of %zu bytes exceeds the limit of %d", len, d->max_sql);
        return NULL;
    }
    /* One read transaction around the schema read and the prepare (see
     * load_roots); ended before returning, as every read is. */
    sqlite3_stmt *ps = NULL;
    int saved = d->collecting;
    d->collecting = INTERNAL;
    int rc = sqlite3_exec(d->rd, "BEGIN", NULL, NULL, NULL);
    d->collecting = saved;
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "checking the statement: %s", sqlite3_errmsg(d->rd));
        return NULL;
    }
    rc = prepare_checked(d, sql, len, &ps, err, errlen);
    d->collecting = INTERNAL;
    if (sqlite3_exec(d->rd, "COMMIT", NULL, NULL, NULL) != SQLITE_OK && rc == 0) {
        snprintf(err, errlen, "checking the statement: %s", sqlite3_errmsg(d->rd));
        sqlite3_finalize(ps);
        rc = -1;
    }
    d->collecting = saved;
    if (rc != 0) return NULL;
    entry_clear(victim);
    victim->sql = xstrndup(sql, len);
    victim->hash = h;
    victim->ps = ps;
    victim->tables = d->seen.v;         /* the names move into the entry */
    victim->ntables = d->seen.n;
    memset(&d->seen, 0, sizeof d->seen);
    victim->used = ++d->tick;
    return victim;
}

/* ---- catalog and metadata --------------------------------------------------------- */

static void tables_free(struct sdb *d)
{
    replay_briefs_free(d->tables, d->ntables);
    d->tables = NULL;
    d->ntables = 0;
}

static int load_tables(struct sdb *d, char *err, size_t errlen)
{
    struct replay_brief *t;
    size_t n;
    char why[IA_ERRLEN];
    if (replay_briefs_read(d->meta, &t, &n, why, sizeof why) != 0) {
        snprintf(err, errlen, "cache.db %s: %s", d->path, why);
        return -1;
    }
    tables_free(d);
    d->tables = t;
    d->ntables = n;
    return 0;
}

static int load_catalog(struct sdb *d, char *err, size_t errlen)
{
    jsonsql_catalog *cat = jsonsql_catalog_new();
    if (jsonsql_catalog_from_db(cat, d->meta, "_agent_", err, errlen) != 0) {
        jsonsql_catalog_free(cat);
        return -1;
    }
    /* Cached statements were authorized against the old catalog. */
    cache_flush(d);
    jsonsql_catalog_free(d->cat);
    d->cat = cat;
    return 0;
}

static int read_versions(struct sdb *d, int64_t *dv, int64_t *sv)
{
    int rc = sqlite3_step(d->version_st);
    if (rc == SQLITE_ROW) {
        *dv = sqlite3_column_int64(d->version_st, 0);
        *sv = sqlite3_column_int64(d->version_st, 1);
    }
    sqlite3_reset(d->version_st);
    return rc == SQLITE_ROW ? 0 : -1;
}

void sdb_check(struct sdb *d, int force)
{
    int64_t dv, sv;
    char err[IA_ERRLEN];
    if (read_versions(d, &dv, &sv) != 0) {
        log_debug("serve: cache.db %s: reading data_version: %s", d->path, sqlite3_errmsg(d->meta));
        return;
    }
    int schema = force || sv != d->schema_version;
    if (schema) {
        if (load_catalog(d, err, sizeof err) != 0) {
            log_warn("serve: %s (keeping the previous catalog)", err);
            return;                      /* versions unchanged: tried again next time */
        }
    }
    if (schema || dv != d->data_version) {
        if (load_tables(d, err, sizeof err) != 0) {
            log_warn("serve: %s", err);
            return;
        }
    }
    d->data_version = dv;
    d->schema_version = sv;
}

/* ---- open and close ------------------------------------------------------------------ */

/* NOMUTEX: each connection is used by the event loop thread only. A WAL
 * reader waits only for a writer's brief wal-index recovery. */
static int open_ro(const char *path, sqlite3 **db, char *err, size_t errlen)
{
    return replay_db_open_readonly(path, SQLITE_OPEN_NOMUTEX, 1000, db, err, errlen) == 0 ? 0 : -1;
}

int sdb_open(struct sdb *d, const char *path, int max_sql, char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    d->path = xstrdup(path);
    d->data_version = d->schema_version = -1;
    d->max_sql = max_sql > 0 ? max_sql : 1 << 20;
    d->cat = jsonsql_catalog_new();
    if (open_ro(path, &d->rd, err, errlen) != 0 || open_ro(path, &d->meta, err, errlen) != 0) goto fail;
    if (jsonsql_register_functions(d->rd) != SQLITE_OK) {
        snprintf(err, errlen, "cache.db %s: registering SQL functions: %s", path, sqlite3_errmsg(d->rd));
        goto fail;
    }
    sqlite3_limit(d->rd, SQLITE_LIMIT_LENGTH, SDB_MAX_LENGTH);
    sqlite3_limit(d->rd, SQLITE_LIMIT_ATTACHED, 0);
    sqlite3_set_authorizer(d->rd, authorize, d);
    sqlite3_progress_handler(d->rd, SDB_PROGRESS_OPS, progress, d);
    if (sqlite3_prepare_v2(d->meta,
                           "SELECT (SELECT data_version FROM pragma_data_version),"
                           " (SELECT schema_version FROM pragma_schema_version)",
                           -1, &d->version_st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cache.db %s: %s", path, sqlite3_errmsg(d->meta));
        goto fail;
    }
    int64_t dv, sv;
    if (read_versions(d, &dv, &sv) != 0) {
        snprintf(err, errlen, "cache.db %s: %s", path, sqlite3_errmsg(d->meta));
        goto fail;
    }
    if (load_catalog(d, err, errlen) != 0 || load_tables(d, err, errlen) != 0) goto fail;
    d->data_version = dv;
    d->schema_version = sv;
    return 0;
fail:
    sdb_close(d);
    return -1;
}

void sdb_close(struct sdb *d)
{
    cache_flush(d);
    names_free(&d->seen);
    names_free(&d->unsure);
    names_free(&d->ctes);
    sqlite3_finalize(d->version_st);
    sqlite3_close_v2(d->rd);
    sqlite3_close_v2(d->meta);
    jsonsql_catalog_free(d->cat);
    tables_free(d);
    free(d->path);
    memset(d, 0, sizeof *d);
}
