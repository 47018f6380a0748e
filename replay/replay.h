/* replay.h — cache.db: its schema, its metadata, and applying the journal to it.
 *
 * EXACTLY ONCE: cache.db holds the applied journal position (_agent_state). A
 * record is applied in the same SQLite transaction that stores its seq as the new
 * position, so a crash before COMMIT leaves neither and a replay after COMMIT
 * starts past it. Many records share one transaction; the position is the last.
 * HIGH-WATER MARKS move in the transaction that applies the rows justifying them.
 * SNAPSHOTS load into a shadow table beside the live one; SNAPSHOT_END swaps it
 * in (drop live, rename shadow, build secondary indexes) in one transaction, so a
 * reader on another connection sees the old table or the new, never part. The
 * shadow and the snapshot's progress (its id, last key, rows) persist, so an
 * interrupted snapshot is resumed by the puller from its last journaled page;
 * a parallel one (SNAPSHOT_RANGE records) from its COVERAGE, the union of the
 * key intervals its pages proved read (replay_table.ranges).
 *
 * cache.db: WAL, synchronous=NORMAL (the journal is the durable copy). Each
 * pulled table has its portal name, the journaled column names and declared types
 * (INTEGER, REAL, TEXT, BOOLEAN, JSON, or none for "any") and PRIMARY KEY on the
 * key column. Metadata tables start with _agent_. Schema changes of cache.db
 * itself are numbered migrations (PRAGMA user_version).
 *
 * Errors: 0 ok, -1 with err naming the table, record (seq, segment:offset) or file.
 * One struct replay per process owns the writer connection; it is not thread-safe.
 *
 * The rules a writer of the journal (the puller) relies on, REFUSED records
 * among them: docs/architecture.md, "Replay: what a journal writer relies on". */
#ifndef IA_REPLAY_H
#define IA_REPLAY_H
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "journal/journal.h"
#include "journal/rows.h"

#define REPLAY_SCHEMA_VERSION 8       /* PRAGMA user_version after migrations */

struct replay_opts {
    const char *db_path;              /* cache.db; created if missing */
    const char *journal_dir;          /* where records are read from */
    void (*warn)(void *ctx, const char *msg);   /* e.g. records skipped after compaction */
    void *warn_ctx;
};

struct replay;

int replay_open(const struct replay_opts *o, struct replay **out, char *err, size_t errlen);
void replay_close(struct replay *r);
/* cache.db for reading only (status): never created, migrated or written;
 * replay_apply and replay_note_* fail on it. 0 ok, 1 no cache.db (err says
 * where), -1 error. */
int replay_open_readonly(const char *db_path, struct replay **out, char *err, size_t errlen);
/* Open cache.db read-only as every reader does (serve, query, status, export):
 * never created; extended result codes; a lock is waited for up to busy_ms;
 * flags adds SQLITE_OPEN_* bits (e.g. NOMUTEX). 0 ok; 1 no such file (err says
 * what creates it); -1 error naming the file. *db is NULL unless 0. */
int replay_db_open_readonly(const char *db_path, int flags, int busy_ms, sqlite3 **db, char *err, size_t errlen);
sqlite3 *replay_db(struct replay *r);            /* the writer connection, for reads */
uint64_t replay_applied_seq(const struct replay *r);

struct replay_stats {
    uint64_t records;                 /* applied by this call */
    uint64_t rows_written;            /* inserted or replaced */
    uint64_t rows_deleted;            /* by DELETIONS, and live rows a snapshot swap left out */
    uint64_t snapshots;               /* snapshots swapped in */
};

/* Apply every record after the applied position with seq <= max_seq
 * (JOURNAL_SEQ_MAX: all there are). Stops at damage or an unknown record type
 * with the journal's error; what was applied before stays applied. */
int replay_apply(struct replay *r, uint64_t max_seq, struct replay_stats *st, char *err, size_t errlen);

/* The way out of a REFUSED record (docs/architecture.md): seq must be the next
 * record to apply (replay_applied_seq() + 1, after applying all before it) and
 * replay must refuse it. Then it is recorded in _agent_skipped with the reason
 * (copied to why) and counts as applied. 0 skipped; 1 the record applied
 * without error (nothing skipped; why says so); -1 error (not refused, not the
 * next record, a damaged journal ...). */
int replay_skip(struct replay *r, uint64_t seq, char *why, size_t whylen, char *err, size_t errlen);

/* Recreate cache.db from the journal alone (build beside, apply all, rename
 * over); on failure cache.db is untouched and err ends "...was left as it was".
 * The records the old cache.db skipped (replay_skip) are skipped again. */
int replay_rebuild(const struct replay_opts *o, struct replay_stats *st, char *err, size_t errlen);

/* A typed value owned by its holder (text copied). */
struct replay_value {
    enum journal_vtype type;
    int64_t i;
    double d;
    char *s;                          /* malloc'd, NUL-terminated, n bytes; NULL otherwise */
    size_t n;
};

/* A key interval (lo, hi] of a pending snapshot's coverage; lo_inf: unbounded
 * below (lo is 0), hi_inf: unbounded above (hi is 0). */
struct replay_range {
    int64_t lo, hi;
    int lo_inf, hi_inf;
};

/* What cache.db knows of one table. Release with replay_table_free(). */
struct replay_table {
    int live;                         /* the table exists in cache.db */
    uint64_t rows;                    /* rows in the live table */
    char schema_hash[17];             /* of the last SCHEMA record (hex), "" if none */
    int ncols;                        /* columns of that schema */
    int key_col, cursor_col;          /* indexes or -1 */
    struct replay_value mark_cursor;  /* high-water mark; JOURNAL_NULL when none */
    struct replay_value mark_key;
    uint64_t snapshot_id;             /* BEGIN seq of the last completed snapshot, 0 none */
    int64_t snapshot_at_ms;           /* when that snapshot was swapped in (unix ms) */
    uint64_t pending_id;              /* BEGIN seq of an unfinished snapshot, 0 none */
    uint64_t pending_rows;            /* rows journaled into it so far */
    struct replay_value pending_key;  /* key of its last journaled SNAPSHOT_PAGE row */
    struct replay_range *ranges;      /* its coverage: the disjoint, merged intervals its
                                         SNAPSHOT_RANGE records proved read, sorted by lo
                                         (unbounded below first); NULL when none */
    size_t nranges;
    /* operational, written by replay_note_pull (not derived from the journal) */
    int64_t last_attempt_ms, last_success_ms;   /* 0 never */
    int64_t last_sweep_ms;            /* last completed deletion sweep, 0 never */
    int64_t schema_changed_ms;        /* when a SCHEMA record last changed its columns, 0 never */
    char *last_error;                 /* NULL when the last attempt succeeded */
    int forbidden;                    /* the portal answered 403 */
    char *strategy;                   /* as configured at the last pull, NULL never */
    /* added: the live table's layout against the last SCHEMA */
    char live_hash[17];               /* schema hash the live table was built with, "" none */
    int schema_behind;                /* live table's columns, key or cursor differ from the
                                         last SCHEMA: only a snapshot swap updates it, and
                                         INCREMENTAL_PAGE/DELETIONS for it are refused */
};
/* 0 found, 1 no such table known, -1 error. */
int replay_table_get(struct replay *r, const char *table, struct replay_table *out, char *err, size_t errlen);
void replay_table_free(struct replay_table *t);

/* Record a pull attempt's outcome: error NULL on success (sets last_success). */
int replay_note_pull(struct replay *r, const char *table, const char *strategy, int64_t when_ms,
                     const char *error, int forbidden, char *err, size_t errlen);

/* Record that the rows of an on_demand table with these keys were read from the
 * portal at when_ms (_agent_fetched; operational, not from the journal: a
 * rebuild forgets it, and a row with no time counts as stale). 0 or -1. */
int replay_note_fetched(struct replay *r, const char *table, const struct journal_value *keys, size_t n,
                        int64_t when_ms, char *err, size_t errlen);
/* The one query that says how fresh the cached rows of `table` whose `column`
 * equals ?1 are, for any connection to cache.db (bind ?1 as the lookup binds
 * its value): one row of count(*), the oldest fetch time (0: a row has none),
 * and a JSON array of their keys (for pull_keys). Appended to out. */
struct buf;
void replay_fetched_sql(struct buf *out, const char *table, const char *key, const char *column);

/* Record a completed deletion sweep (sets last_sweep_ms). */
int replay_note_sweep(struct replay *r, const char *table, int64_t when_ms, char *err, size_t errlen);

/* ---- additions ------------------------------------------------------------- */

/* Every table cache.db knows (a SCHEMA applied or a pull noted), sorted by name.
 * *names is a malloc'd array of malloc'd strings: replay_names_free(). 0 or -1. */
int replay_table_list(struct replay *r, char ***names, size_t *n, char *err, size_t errlen);
void replay_names_free(char **names, size_t n);

/* What a reader shows of each table cache.db knows, read on any connection to
 * it (serve's read-only one, say), sorted by name. Release with
 * replay_briefs_free(). 0 or -1 with err. */
struct replay_brief {
    char *name;
    int64_t rows;
    int64_t last_success_ms, last_attempt_ms;   /* 0 never */
    char *last_error;                 /* NULL when the last attempt succeeded */
    int forbidden;                    /* the portal answered 403 */
    char *strategy;                   /* as configured at the last pull, NULL never */
};
int replay_briefs_read(sqlite3 *db, struct replay_brief **out, size_t *n, char *err, size_t errlen);
void replay_briefs_free(struct replay_brief *b, size_t n);

/* The columns of a table's last SCHEMA, in order. 0 found, 1 no SCHEMA, -1 error.
 * *cols is malloc'd (names too): replay_columns_free(). */
struct replay_column {
    char *name;
    enum journal_coltype type;
};
int replay_table_columns(struct replay *r, const char *table, struct replay_column **cols, size_t *n,
                         char *err, size_t errlen);
void replay_columns_free(struct replay_column *cols, size_t n);

/* 0 if `name` may be a cache.db table name: not empty, at most JOURNAL_TABLE_MAX
 * bytes, not starting with "_agent_" or "sqlite_" (any case); -1 with err. */
int replay_check_name(const char *name, char *err, size_t errlen);

/* Run the numbered migrations on db (at `path`, for messages) up to version `to`
 * (<= REPLAY_SCHEMA_VERSION), each in its own transaction. replay_open() calls it
 * with REPLAY_SCHEMA_VERSION; tests call it with older versions to build the
 * cache.db an older build left behind. Refuses a db newer than `to`. 0 or -1. */
int replay_migrate(sqlite3 *db, const char *path, int to, char *err, size_t errlen);

/* For any connection to cache.db (the agent's readers too): sqlite3_errmsg(db)
 * plus what to do when the file is the problem: "cache.db is damaged; run
 * `iptv-agent replay --rebuild` to recreate it from the journal" (SQLITE_CORRUPT,
 * SQLITE_NOTADB), that it is not writable (SQLITE_READONLY), or the system's
 * reason for an I/O error. Written to out (outlen bytes, NUL-terminated). */
void replay_db_errmsg(sqlite3 *db, char *out, size_t outlen);

/* The seqs cache.db at db_path has skipped (replay_skip), ascending, read
 * without writing anything: a missing file or an older cache.db has none.
 * *seqs is malloc'd (NULL when none). 0 or -1. */
int replay_skipped_read(const char *db_path, uint64_t **seqs, size_t *n, char *err, size_t errlen);

/* The last journal compaction (journal_compact through store_compact), kept in
 * _agent_state for `status`. */
struct replay_compact {
    int64_t at_ms;                    /* when; 0 never */
    uint64_t deleted;                 /* segments it deleted */
    uint64_t freed;                   /* bytes */
    char reason[256];                 /* why the oldest kept segment stays */
};
int replay_note_compact(struct replay *r, const struct replay_compact *c, char *err, size_t errlen);
/* From any connection to cache.db; an older cache.db (no such columns) is -1. */
int replay_compact_read(sqlite3 *db, struct replay_compact *out);

/* Hash of a column list (names and types), as stored in schema_hash. */
void replay_schema_hash(uint32_t ncols, const char *const *names, const enum journal_coltype *types,
                        char out[17]);

#endif
