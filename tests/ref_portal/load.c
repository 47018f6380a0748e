/* load.c — fakegen's tables into PostgreSQL; see load.h. */
#include "tests/ref_portal/load.h"
#include "agent/base/buf.h"
#include "agent/base/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int pg_exec(PGconn *pg, const char *sql, const char *what, char *err, size_t errlen)
{
    PGresult *r = PQexec(pg, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok) snprintf(err, errlen, "%s: %s", what, PQerrorMessage(pg));
    PQclear(r);
    return ok ? 0 : -1;
}

static const char *pg_type(const char *decl)
{
    static const struct { const char *decl, *pg; } MAP[] = {
        {"INTEGER", "bigint"}, {"REAL", "double precision"}, {"TEXT", "text"},
        {"TIMESTAMP", "timestamp"}, {"BOOLEAN", "boolean"}, {"JSON", "jsonb"}};
    for (size_t i = 0; i < sizeof MAP / sizeof MAP[0]; i++)
        if (!strcasecmp(MAP[i].decl, decl)) return MAP[i].pg;
    return NULL;
}

/* COPY text format: backslash escapes for \, tab, newline, CR; \N is NULL. */
static void copy_text(struct buf *b, const unsigned char *s, int n)
{
    for (int i = 0; i < n; i++) {
        switch (s[i]) {
        case '\\': buf_puts(b, "\\\\"); break;
        case '\t': buf_puts(b, "\\t"); break;
        case '\n': buf_puts(b, "\\n"); break;
        case '\r': buf_puts(b, "\\r"); break;
        default: buf_putc(b, (char)s[i]);
        }
    }
}

static int copy_rows(PGconn *pg, sqlite3 *db, const char *table, int ncols, char *err, size_t errlen)
{
    struct buf q = {0}, line = {0};
    buf_printf(&q, "SELECT * FROM \"%s\" ORDER BY rowid", table);
    sqlite3_stmt *st = NULL;
    int rc = -1;
    if (sqlite3_prepare_v2(db, q.p, -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: reading the generated rows: %s", table, sqlite3_errmsg(db));
        goto out;
    }
    buf_reset(&q);
    buf_printf(&q, "COPY \"%s\" FROM STDIN", table);
    PGresult *r = PQexec(pg, q.p);
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        snprintf(err, errlen, "%s: COPY: %s", table, PQerrorMessage(pg));
        PQclear(r);
        goto out;
    }
    PQclear(r);
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        for (int c = 0; c < ncols; c++) {
            if (c) buf_putc(&line, '\t');
            switch (sqlite3_column_type(st, c)) {
            case SQLITE_NULL: buf_puts(&line, "\\N"); break;
            case SQLITE_INTEGER: buf_put_int(&line, sqlite3_column_int64(st, c)); break;
            case SQLITE_FLOAT: buf_printf(&line, "%.17g", sqlite3_column_double(st, c)); break;
            case SQLITE_TEXT:
                copy_text(&line, sqlite3_column_text(st, c), sqlite3_column_bytes(st, c));
                break;
            default:
                snprintf(err, errlen, "%s: column %d holds a blob (no PostgreSQL type for it here)", table, c + 1);
                PQputCopyEnd(pg, "blob");
                PQclear(PQgetResult(pg));
                goto out;
            }
        }
        buf_putc(&line, '\n');
        if (line.len > (1 << 20)) {
            if (PQputCopyData(pg, line.p, (int)line.len) != 1) {
                snprintf(err, errlen, "%s: COPY data: %s", table, PQerrorMessage(pg));
                goto out;
            }
            buf_reset(&line);
        }
    }
    if (s != SQLITE_DONE) {
        snprintf(err, errlen, "%s: reading the generated rows: %s", table, sqlite3_errmsg(db));
        PQputCopyEnd(pg, "read error");
        PQclear(PQgetResult(pg));
        goto out;
    }
    if ((line.len && PQputCopyData(pg, line.p, (int)line.len) != 1) || PQputCopyEnd(pg, NULL) != 1) {
        snprintf(err, errlen, "%s: COPY data: %s", table, PQerrorMessage(pg));
        goto out;
    }
    r = PQgetResult(pg);
    rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : -1;
    if (rc) snprintf(err, errlen, "%s: COPY: %s", table, PQerrorMessage(pg));
    PQclear(r);
    while ((r = PQgetResult(pg))) PQclear(r);
out:
    sqlite3_finalize(st);
    buf_free(&q);
    buf_free(&line);
    return rc;
}

/* Create one table in PostgreSQL from its SQLite declaration and fill it. */
static int load_table(PGconn *pg, sqlite3 *db, const char *table, struct ref_catalog *cat, char *err,
                      size_t errlen)
{
    struct buf q = {0}, ddl = {0};
    char **cols = NULL;
    int ncols = 0, rc = -1, has_updated = 0;
    sqlite3_stmt *st = NULL;
    buf_printf(&q, "PRAGMA table_info(\"%s\")", table);
    if (sqlite3_prepare_v2(db, q.p, -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", table, sqlite3_errmsg(db));
        goto out;
    }
    buf_printf(&ddl, "DROP TABLE IF EXISTS \"%s\" CASCADE; CREATE TABLE \"%s\" (", table, table);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 1);
        const char *decl = (const char *)sqlite3_column_text(st, 2);
        const char *type = pg_type(decl ? decl : "");
        if (!type) {
            snprintf(err, errlen, "%s.%s: declared type \"%s\" has no PostgreSQL mapping", table, name,
                     decl ? decl : "");
            goto out;
        }
        buf_printf(&ddl, "%s\"%s\" %s%s", ncols ? ", " : "", name, type,
                   sqlite3_column_int(st, 5) ? " PRIMARY KEY" : "");
        cols = xrealloc(cols, sizeof *cols * (size_t)(ncols + 1));
        cols[ncols++] = xstrdup(name);
        if (!strcmp(name, "updated_at")) has_updated = 1;
    }
    buf_putc(&ddl, ')');
    if (pg_exec(pg, ddl.p, table, err, errlen) != 0 || copy_rows(pg, db, table, ncols, err, errlen) != 0)
        goto out;
    if (has_updated) {
        buf_reset(&ddl);
        buf_printf(&ddl, "CREATE INDEX ON \"%s\" (\"updated_at\", \"id\")", table);
        if (pg_exec(pg, ddl.p, table, err, errlen) != 0) goto out;
    }
    ref_catalog_add(cat, table, (const char *const *)cols, ncols);
    rc = 0;
out:
    for (int i = 0; i < ncols; i++) free(cols[i]);
    free(cols);
    sqlite3_finalize(st);
    buf_free(&q);
    buf_free(&ddl);
    return rc;
}

int ref_load(PGconn *pg, const struct fakegen_opts *o, struct ref_catalog *cat, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = -1;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK) {
        snprintf(err, errlen, "in-memory SQLite: %s", sqlite3_errmsg(db));
        goto out;
    }
    if (fakegen_create(db, o, err, errlen) != 0) goto out;
    /* fakegen's order is its creation order: rowid of sqlite_master. */
    if (sqlite3_prepare_v2(db, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE "
                               "'\\_fake\\_%' ESCAPE '\\' ORDER BY rowid", -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "listing the generated tables: %s", sqlite3_errmsg(db));
        goto out;
    }
    if (pg_exec(pg, "SET client_min_messages = warning", "session settings", err, errlen) != 0) goto out;
    /* Stock PostgreSQL has no max/min over boolean; protocol.md says the portal
     * answers them with booleans, so this database gets them (or = max, and = min). */
    if (pg_exec(pg, "DROP AGGREGATE IF EXISTS max(boolean); DROP AGGREGATE IF EXISTS min(boolean);"
                    "CREATE AGGREGATE max(boolean) (SFUNC = boolor_statefunc, STYPE = boolean, SORTOP = >);"
                    "CREATE AGGREGATE min(boolean) (SFUNC = booland_statefunc, STYPE = boolean, SORTOP = <)",
                "max/min(boolean)", err, errlen) != 0)
        goto out;
    while (sqlite3_step(st) == SQLITE_ROW)
        if (load_table(pg, db, (const char *)sqlite3_column_text(st, 0), cat, err, errlen) != 0) goto out;
    rc = pg_exec(pg, "ANALYZE", "ANALYZE", err, errlen);
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}
