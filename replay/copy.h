/* copy.h — cache.db as it travels: what export and import (agent/ship/) need of
 * replay's metadata tables, so that no SQL on _agent_* lives outside replay/.
 *
 * A copy is a whole cache.db file taken with VACUUM INTO. What travels: every
 * table but SQLite's own, the local identity and position (_agent_state,
 * _agent_export), the outbox (_agent_outbox, _agent_outbox_keys: an
 * agent's offline writes are sent by it alone; a copy has them empty) and the
 * coverage of pending snapshots (_agent_snapshot_ranges: it names key ranges
 * of the source's journal, like the pending state; a copy has it empty). The
 * rows of open offline writes do travel, as cache.db shows them
 * (read-your-writes). What stays local when a copy is installed: the applied
 * journal position and this cache's agent id; a cache with open offline
 * writes refuses a copy (replay_copy_adopt).
 *
 * Functions take open connections (the caller owns and closes them) or a path;
 * every failure returns -1 with err naming the file or table. Strings returned
 * through char ** are malloc'd: the caller frees them. */
#ifndef IA_REPLAY_COPY_H
#define IA_REPLAY_COPY_H
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

/* 1 if `table` travels in a copy or changeset (not sqlite_*, not the local
 * _agent_state/_agent_export/_agent_outbox/_agent_outbox_keys/
 * _agent_snapshot_ranges), else 0. */
int replay_copy_travels(const char *table);

/* The tables of attached schema `schema` ("main", "base" ...) that travel, with
 * their CREATE statements, by name. names[i]/ddls[i] malloc'd; free both arrays
 * with replay_copy_list_free. */
int replay_copy_list(sqlite3 *db, const char *schema, char ***names, char ***ddls, size_t *n, char *err,
                     size_t errlen);
void replay_copy_list_free(char **names, char **ddls, size_t n);

/* VACUUM INTO `copy` (one read transaction of db_path: consistent), check it is
 * this build's schema, then make it portable: the shadows of unfinished
 * snapshots name journal records of the source, so they, their pending state
 * and their coverage are dropped. On failure nothing is left at `copy`. */
int replay_copy_take(const char *db_path, const char *copy, char *err, size_t errlen);

/* Open an existing copy (or cache.db, for import) read-write: never created;
 * extended result codes; a lock is waited for up to 10 s. 0 or -1 with err
 * naming the file; *db is NULL unless 0. */
int replay_copy_open(const char *path, sqlite3 **db, char *err, size_t errlen);

/* Remove a copy and its -wal, -shm and -journal, best effort (temp files). */
void replay_copy_remove(const char *path);

/* Identity and position recorded in a copy or a cache. */
struct replay_copy_state {
    char agent_id[33];                /* _agent_export.agent_id (32 hex digits) */
    char at_id[33];                   /* id of the last export installed, "" none */
    uint64_t applied_seq;             /* _agent_state.applied_seq */
};
int replay_copy_state(sqlite3 *db, struct replay_copy_state *out, char *err, size_t errlen);

/* One table's metadata as a manifest carries it: marks as "type:value" text
 * (NULL when none; malloc'd). A table unknown to _agent_tables: all empty. */
struct replay_copy_marks {
    char schema_hash[17];
    char *mark_cursor, *mark_key;
};
int replay_copy_marks(sqlite3 *db, const char *table, struct replay_copy_marks *out, char *err, size_t errlen);
void replay_copy_marks_free(struct replay_copy_marks *m);

/* Record that db now is at export `id` of `kind` ("snapshot", "delta"). */
int replay_copy_set_at(sqlite3 *db, const char *id, const char *kind, int64_t at_ms, char *err, size_t errlen);

/* Check that `src` (a copy about to be installed; `path` names it in errors)
 * has this build's schema version, only tables and indexes (a trigger or view
 * would run inside the agent's own writes), and metadata tables of the same
 * layout as `dst`'s. 0 ok, -1 refused or error. */
int replay_copy_check(sqlite3 *src, sqlite3 *dst, const char *path, char *err, size_t errlen);

/* Before installing `src` over `dst`: give src dst's local facts (applied
 * position, base seq, creation time, agent id), empty its outbox, and mark it
 * at export `id` (a snapshot), in one transaction of src. Refused while dst
 * has open offline writes (pending or sent), naming how many. */
int replay_copy_adopt(sqlite3 *src, sqlite3 *dst, const char *path, const char *id, int64_t at_ms, char *err,
                      size_t errlen);

#endif
