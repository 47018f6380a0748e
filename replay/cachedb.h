/* cachedb.h — internal to replay/: the writer connection and the in-memory copy
 * of each table's metadata that apply.c changes during a batch and cachedb.c
 * loads from and writes back to _agent_tables. Callers outside replay/ use
 * replay.h only.
 *
 * Invariant: between replay_apply() calls (no transaction open) every struct
 * rp_table equals its _agent_tables/_agent_columns rows; within a batch, dirty
 * ones are written back by rp_table_save() just before COMMIT, so the rows,
 * marks and pending state commit together with the applied position. After a
 * ROLLBACK the whole cache is dropped (rp_tables_drop) and reloaded on demand. */
#ifndef IA_REPLAY_CACHEDB_H
#define IA_REPLAY_CACHEDB_H
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "journal/journal.h"
#include "journal/rows.h"
#include "replay/replay.h"

/* One table's metadata and its cached statements. */
struct rp_table {
    char *name;
    int known;                       /* a SCHEMA has been applied */
    int live;                        /* the live table exists */
    uint64_t rows;                   /* rows in the live table */
    char hash[17];                   /* of the last SCHEMA */
    uint32_t ncols;                  /* columns of the last SCHEMA */
    char **cols;                     /* their names (ncols, malloc'd) */
    enum journal_coltype *types;     /* their types */
    int key_col, cursor_col;         /* of the last SCHEMA, -1 none */
    char live_hash[17];              /* layout the live table was built with */
    int live_key_col, live_cursor_col;
    struct replay_value mark_cursor, mark_key;
    uint64_t snapshot_id;
    int64_t snapshot_at_ms;
    uint64_t pending_id, pending_rows;
    struct replay_value pending_key;
    int64_t schema_changed_ms;       /* a SCHEMA last changed known columns, 0 never */
    int dirty;                       /* changed since loaded or saved */
    /* prepared on first use, finalized whenever the table's DDL changes */
    sqlite3_stmt *ins_shadow;        /* INSERT OR REPLACE INTO shadow */
    sqlite3_stmt *ign_live;          /* INSERT OR IGNORE INTO live */
    sqlite3_stmt *rep_live;          /* INSERT OR REPLACE INTO live */
    sqlite3_stmt *del_live;          /* DELETE FROM live WHERE key = ? */
    sqlite3_stmt *del_shadow;        /* DELETE FROM shadow WHERE key = ? */
    sqlite3_stmt *open_any;          /* does the table have open outbox keys */
    sqlite3_stmt *open_key;          /* is this key open */
};

/* A record marked applied by replay_skip() (_agent_skipped). */
struct rp_skip {
    uint64_t seq;
    int type;
    char *table;
};

struct replay {
    sqlite3 *db;
    char *db_path;
    char *journal_dir;               /* NULL: replay_apply refuses */
    void (*warn)(void *ctx, const char *msg);
    void *warn_ctx;
    uint64_t applied;                /* _agent_state.applied_seq, as committed */
    uint64_t base_seq;               /* _agent_state.base_seq, as committed */
    struct journal_place next;       /* where the last apply's reader stopped: the next
                                        apply starts there when its seq is applied + 1 */
    struct rp_table **t;             /* metadata cache, loaded on demand */
    size_t nt, capt;
    char **warned;                   /* tables already warned about skipped records */
    size_t nwarned;
    struct rp_skip *skips;           /* _agent_skipped, loaded at open */
    size_t nskips;
    /* The record the last apply refused (0: none, or the failure was the
     * environment's, e.g. a full disk): what replay_skip() may skip. */
    uint64_t refused_seq;
    int env_fail;                    /* set by a failure that is not the record's fault */
    sqlite3_stmt *save_table;        /* upsert of _agent_tables' replay-owned fields */
    sqlite3_stmt *save_state;        /* UPDATE _agent_state */
    sqlite3_stmt *op_keys, *op_row;  /* apply_op's inserts, prepared on first use */
    /* replay_op_group_begin/end (outbox.c): a group savepoint is open; a kept
     * capture awaits replay_op_capture_settle; a failed rollback lost the group. */
    int op_group, op_kept, op_group_lost;
};

/* sqlite3_errmsg(db), and what to do when the file itself is the problem: for
 * a damaged cache.db (SQLITE_CORRUPT, SQLITE_NOTADB) "cache.db is damaged; run
 * `iptv-agent replay --rebuild` ..." (the journal holds everything it held);
 * for a refused write (SQLITE_READONLY) that the files are not writable; for
 * a failed system call (I/O error, full disk, file too large) the system's
 * reason. Returned by value: use .s within the same expression. */
struct rp_msg {
    char s[768];
};
struct rp_msg rp_errmsg(sqlite3 *db);
/* The same, with os_errno as the system's reason when SQLite kept none. */
struct rp_msg rp_errmsg_os(sqlite3 *db, int os_errno);

/* Remove a database file and its -wal, -shm and -journal (missing ones are
 * fine). 0 or -1 with err naming the file. */
int rp_remove_db(const char *path, char *err, size_t errlen);
/* Checkpoint db's WAL into the file and close it: afterwards the file at path
 * is the whole database (no -wal to carry along). Closes db even on error. */
int rp_close_whole(sqlite3 *db, const char *path, char *err, size_t errlen);

/* Run SQL without results; err names `what`. 0 or -1. */
int rp_exec(sqlite3 *db, const char *sql, const char *what, char *err, size_t errlen);
/* "name" with embedded quotes doubled, appended to b. */
struct buf;
void rp_quote(struct buf *b, const char *name);
void rp_value_set(struct replay_value *dst, const struct journal_value *src);  /* copies text */
void rp_value_clear(struct replay_value *v);                                   /* -> NULL */
/* Bind a journal value (text STATIC: it must outlive the step). */
int rp_bind(sqlite3_stmt *st, int i, const struct journal_value *v);

/* The cached metadata of `name`, loaded on first use (a fresh entry with
 * known = 0 when cache.db has none). NULL with err on a database error. */
struct rp_table *rp_table(struct replay *r, const char *name, char *err, size_t errlen);
void rp_table_finalize(struct rp_table *t);                 /* its statements */
/* Write every dirty table and the applied position; inside the batch. 0 or -1. */
int rp_save(struct replay *r, uint64_t applied, uint64_t base_seq, char *err, size_t errlen);
/* Replace the columns stored for t (from its cols/types). 0 or -1. */
int rp_save_columns(struct replay *r, const struct rp_table *t, char *err, size_t errlen);
void rp_tables_drop(struct replay *r);                       /* after a ROLLBACK */
/* table's snapshot coverage (ranges.c), sorted by lo (unbounded below first);
 * *out malloc'd, NULL when none. 0, or -1 on a database error (see db). */
int rp_ranges_read(sqlite3 *db, const char *table, struct replay_range **out, size_t *n);
/* The skip entry for seq, or NULL. */
const struct rp_skip *rp_skipped(const struct replay *r, uint64_t seq);
/* 1 when a SCHEMA record of table was skipped: its later records depend on it. */
int rp_schema_skipped(const struct replay *r, const char *table);
/* Record seq as skipped, and with advance as the applied position too, in one
 * transaction. 0 or -1. */
int rp_add_skip(struct replay *r, uint64_t seq, int type, const char *table, const char *reason, int advance,
                char *err, size_t errlen);
/* Copy the skip entries of the cache.db at old_path (a rebuild's predecessor)
 * into r. A missing or older file has none. 0 or -1. */
int rp_carry_skips(struct replay *r, const char *old_path, char *err, size_t errlen);

#endif
