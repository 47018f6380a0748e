/* serve_db.h — internal to serve*.c: cache.db as the local API reads it.
 *
 * Two read-only connections (SQLITE_OPEN_READONLY; cache.db is WAL, so a writer
 * swapping a snapshot in never blocks them and they never block it):
 *   rd    runs what clients send (compiled JSONSQL, /sql text) behind an
 *         authorizer that allows SELECT, SQLITE_READ of catalog tables only (the
 *         pulled tables: never sqlite_*, _agent_* or shadow tables), whitelisted
 *         functions and recursive CTEs, and denies everything else (ATTACH,
 *         PRAGMA, writes, transactions, eponymous virtual tables such as
 *         pragma_table_info or json_each, ...); a progress handler stops a
 *         statement at its deadline; prepared statements are kept in a small
 *         LRU keyed by SQL text, each with the tables the authorizer saw it read.
 *   meta  the agent's own fixed queries, without the authorizer: the catalog
 *         (jsonsql_catalog_from_db, skipping _agent_), _agent_tables, and
 *         PRAGMA data_version / schema_version, which sdb_check() compares per
 *         request to notice commits (reload metadata) and DDL such as a snapshot
 *         swap (rebuild the catalog, drop cached statements).
 * No statement is left unreset between requests, so no read transaction spans
 * two requests (a long one would pin the WAL and starve checkpoints).
 * Tests: test_serve.c test_bad_input_refused (authorizer), test_time_limit,
 * test_catalog_follows_schema and test_cache_headers (version checks).
 * Single-threaded: one struct sdb belongs to the event loop thread.
 * Ownership: struct sdb owns its connections, catalog, metadata and cache. */
#ifndef IA_SERVE_DB_H
#define IA_SERVE_DB_H
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/jsonsql/jsonsql.h"
#include "replay/replay.h"

#define SDB_CACHE 64               /* prepared statements kept */

/* A small set of names. */
struct sdb_names {
    char **v;
    int n, cap;
};

/* A cached prepared statement. */
struct sdb_stmt {
    char *sql;                     /* the key; NULL: free slot */
    uint32_t hash;
    sqlite3_stmt *ps;
    char **tables;                 /* tables the authorizer saw it read (distinct) */
    int ntables;
    uint64_t used;                 /* LRU tick */
};

struct sdb {
    sqlite3 *rd, *meta;
    char *path;
    jsonsql_catalog *cat;          /* catalog tables = what rd may read */
    sqlite3_stmt *version_st;      /* data_version, schema_version on meta */
    int64_t data_version, schema_version;
    struct replay_brief *tables;   /* metadata, sorted by name */
    size_t ntables;
    struct sdb_stmt cache[SDB_CACHE];
    uint64_t tick;
    /* authorizer state, for the statement being prepared */
    int collecting;                /* record into the lists below (not during a re-prepare) */
    struct sdb_names seen;         /* catalog tables read */
    struct sdb_names unsure;       /* other names read by a count(*): must be CTEs */
    struct sdb_names ctes;         /* CTE and view names SQLite reported */
    char deny[256];                /* why the last denial happened */
    /* time limit */
    int64_t deadline_ns;           /* CLOCK_MONOTONIC; 0: none */
    int timed_out;
    int max_sql;                   /* longest SQL text accepted */
};

/* Open both connections on path (which must exist) and load catalog and
 * metadata. max_sql caps SQL text. 0 or -1 with err. */
int sdb_open(struct sdb *d, const char *path, int max_sql, char *err, size_t errlen);
void sdb_close(struct sdb *d);
/* Notice commits and schema changes since the last call (force: reload all). */
void sdb_check(struct sdb *d, int force);
/* The cached prepared statement for sql (len bytes, no NUL inside). It must be
 * exactly one read-only statement that the authorizer allows. Returns it reset
 * and unbound, or NULL with err. */
struct sdb_stmt *sdb_prepare(struct sdb *d, const char *sql, size_t len, char *err, size_t errlen);
/* Arm (ms > 0: clears timed_out) or disarm (0) the time limit for the statement
 * about to run; timed_out says whether the progress handler stopped it. */
void sdb_deadline(struct sdb *d, int64_t ms);

#endif
