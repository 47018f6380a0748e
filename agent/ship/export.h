/* export.h — cache.db to a file and back: snapshots, deltas, import.
 *
 * A snapshot is a consistent copy of cache.db (VACUUM INTO: one read
 * transaction), made portable (shadow tables of unfinished snapshots dropped,
 * their pending state reset), gzip-compressed, with a JSON manifest. A delta is
 * a SQLite changeset (session extension, sqlite3session_diff table by table
 * against a base snapshot attached beside a fresh copy): the rows inserted,
 * updated and deleted since that base, metadata (_agent_tables, _agent_columns)
 * included, so high-water marks travel with the rows. The container format is in
 * docs/export-format.md; every file is written to a temp name and renamed.
 *
 * Identity: cache.db's _agent_export row (migration 4) holds agent_id (this
 * cache, never copied) and at_id (the snapshot/delta whose content it equals).
 * _agent_state (the local journal position) never travels either: an import
 * keeps the importing cache's own position, so its journal keeps applying.
 *
 * Import: the file is verified (magic, version, whole-file CRC-32, manifest,
 * payload length and CRC-32) before anything changes. A snapshot replaces the
 * cache with the backup API in one write transaction (WAL readers see the old
 * cache or the new). A delta applies in one transaction, only when at_id equals
 * its base; any conflict rolls the whole delta back and is reported by kind.
 *
 * Errors: 0 ok, -1 with err naming the file (and offset, table or ids). */
#ifndef IA_EXPORT_H
#define IA_EXPORT_H
#include <stddef.h>
#include <stdint.h>

#define EXPORT_FORMAT_VERSION 1
#define EXPORT_ID_LEN 32                 /* hex digits of a snapshot/delta/agent id */

/* One table as the manifest describes it. */
struct export_table {
    char *name;                          /* malloc'd */
    uint64_t rows;
    char ddl_hash[17];                   /* FNV-1a 64 of its CREATE TABLE text, hex */
    char schema_hash[17];                /* the agent's column hash ("" metadata tables) */
    char *mark_cursor, *mark_key;        /* "type:value" text, malloc'd; NULL without a mark */
};

/* The manifest of a file. Release with export_manifest_free(). */
struct export_manifest {
    int format;                          /* EXPORT_FORMAT_VERSION */
    char kind[16];                       /* "snapshot" or "delta" */
    char id[EXPORT_ID_LEN + 1];          /* this file's content id (random) */
    char base_id[EXPORT_ID_LEN + 1];     /* delta: the snapshot it applies to; "" snapshot */
    char source_agent[EXPORT_ID_LEN + 1];/* agent_id of the cache it came from */
    int64_t created_ms;                  /* unix ms */
    int cache_schema;                    /* PRAGMA user_version of the copy */
    uint64_t journal_seq;                /* the source's applied journal position */
    uint64_t changes;                    /* delta: changes in the changeset; 0 snapshot */
    struct export_table *tables;         /* sorted by name */
    size_t ntables;
    uint64_t raw_bytes, packed_bytes;    /* payload before / after gzip */
    uint32_t raw_crc;                    /* CRC-32 of the uncompressed payload */
};
void export_manifest_free(struct export_manifest *m);

/* Write a snapshot of cache.db at db_path to out_path (zlib level 1..9). *m (may be
 * NULL) receives the manifest written. */
int export_snapshot(const char *db_path, const char *out_path, int level, struct export_manifest *m,
                    char *err, size_t errlen);

/* Write the delta from the snapshot file base_path to the current cache.db.
 * Refused with -2 (nothing written) when a table was added, dropped or changed
 * layout since the base, or has no PRIMARY KEY: export a new snapshot then. */
int export_delta(const char *db_path, const char *base_path, const char *out_path, int level,
                 struct export_manifest *m, char *err, size_t errlen);

/* The delta between two snapshot files (both verified first): from base_path to
 * target_path, carrying the target's id, so a cache that applies it is then "at"
 * the target snapshot and the next delta can start there (export_hub.h chains
 * deltas this way). Refused like export_delta. */
int export_delta_files(const char *base_path, const char *target_path, const char *out_path, int level,
                       struct export_manifest *m, char *err, size_t errlen);

/* What cache.db at db_path is at: the snapshot/delta id it equals ("" none) and
 * its applied journal position (may be NULL). Read-only. */
int export_cache_state(const char *db_path, char at_id[EXPORT_ID_LEN + 1], uint64_t *applied_seq, char *err,
                       size_t errlen);

/* Verify a file completely (payload decompressed and checked) and read its manifest. */
int export_verify(const char *path, struct export_manifest *m, char *err, size_t errlen);

/* What an import did. */
struct export_import_result {
    struct export_manifest m;            /* of the imported file: export_manifest_free() */
    uint64_t conflicts[6];               /* by SQLITE_CHANGESET_DATA..FOREIGN_KEY (1..5); [0] total */
    int already;                         /* a delta the cache is already at (its id): nothing changed */
};

/* Import path into cache.db at db_path. The caller keeps other writers out (the
 * journal lock) and has applied its journal. On a refused delta res->conflicts
 * says why when conflicts caused it. res is filled as far as known. */
int export_import(const char *db_path, const char *path, struct export_import_result *res, char *err,
                  size_t errlen);

#endif
