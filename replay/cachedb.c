/* cachedb.c — cache.db itself: opening it, its numbered migrations, its metadata
 * tables, and reading/writing a table's metadata.
 *
 * Metadata (all names start with _agent_, which replay_check_name() refuses for
 * pulled tables, so they can never collide):
 *   _agent_state    one row (id = 1): applied_seq — the last journal record whose
 *                   effects are in this database (the EXACTLY ONCE position);
 *                   base_seq — the first seq this cache applied from (0 none yet;
 *                   > 1 means it was built from a journal whose start retention
 *                   had compacted away: see apply.c "compacted start");
 *                   created_ms; compact_ms, compact_deleted, compact_freed,
 *                   compact_reason — the last journal compaction (status).
 *   _agent_tables   one row per table: the fields of struct replay_table. Marks
 *                   and the pending key are stored as a type name ("null" "bool"
 *                   "int" "real" "text" "json") plus a value in an untyped column,
 *                   so an int64 key stays exact and a text cursor stays text.
 *   _agent_columns  the last SCHEMA's columns per table: (tbl, pos, name, type).
 *   _agent_export   one row (id = 1): agent_id, at_id, at_kind, at_ms (export.c).
 *   _agent_fetched  (tbl, key, at_ms): when an on_demand row was last read from
 *                   the portal (replay_note_fetched).
 *   _agent_skipped  journal records `replay --skip` marked applied without their
 *                   effects: (seq, tbl, type, reason, at_ms). Replay passes them
 *                   by (a rebuild too: replay_rebuild carries the list over).
 *   _agent_outbox, _agent_outbox_keys  offline writes and the keys of open ones
 *                   (migration 7, docs/outbox.md).
 *   _agent_snapshot_ranges  (tbl, lo, hi): the coverage of a table's pending
 *                   snapshot, key intervals (lo, hi] (NULL unbounded) its
 *                   SNAPSHOT_RANGE records proved read (migration 8, ranges.c).
 * Creation: a missing cache.db is made whole under a temporary name and linked
 * into place (create_db). Errors name what to do about the file (rp_errmsg).
 * Migrations: migrations[i] takes PRAGMA user_version from i to i + 1, in one
 * transaction with the version bump; a db newer than this build is refused.
 * Tests: test_replay.c "migrate_from_v0", "migrate_from_v1", "newer_version_refused";
 * test_replay_range.c "migrate_from_v7". */
#include "replay/replay.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/base/buf.h"
#include "agent/base/clock.h"
#include "agent/base/err.h"
#include "journal/fsio.h"
#include "agent/base/mem.h"
#include "journal/rows.h"
#include "replay/cachedb.h"

/* ---- migrations ---------------------------------------------------------------- */

/* Version 1. Never edit a released step: add the next one (a db created by an
 * older build runs only the steps after its user_version). */
static const char migration_1[] =
    "CREATE TABLE _agent_state ("
    " id INTEGER PRIMARY KEY CHECK (id = 1),"
    " applied_seq INTEGER NOT NULL,"
    " base_seq INTEGER NOT NULL,"
    " created_ms INTEGER NOT NULL);"
    "INSERT INTO _agent_state VALUES (1, 0, 0,"
    " CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));"
    "CREATE TABLE _agent_tables ("
    " name TEXT PRIMARY KEY,"
    " live INTEGER NOT NULL DEFAULT 0,"
    " rows INTEGER NOT NULL DEFAULT 0,"
    " schema_hash TEXT NOT NULL DEFAULT '',"
    " ncols INTEGER NOT NULL DEFAULT 0,"
    " key_col INTEGER NOT NULL DEFAULT -1,"
    " cursor_col INTEGER NOT NULL DEFAULT -1,"
    " live_hash TEXT NOT NULL DEFAULT '',"
    " live_key_col INTEGER NOT NULL DEFAULT -1,"
    " live_cursor_col INTEGER NOT NULL DEFAULT -1,"
    " mark_cursor_type TEXT NOT NULL DEFAULT 'null', mark_cursor,"
    " mark_key_type TEXT NOT NULL DEFAULT 'null', mark_key,"
    " snapshot_id INTEGER NOT NULL DEFAULT 0,"
    " snapshot_at_ms INTEGER NOT NULL DEFAULT 0,"
    " pending_id INTEGER NOT NULL DEFAULT 0,"
    " pending_rows INTEGER NOT NULL DEFAULT 0,"
    " pending_key_type TEXT NOT NULL DEFAULT 'null', pending_key,"
    " last_attempt_ms INTEGER NOT NULL DEFAULT 0,"
    " last_success_ms INTEGER NOT NULL DEFAULT 0,"
    " last_error TEXT,"
    " forbidden INTEGER NOT NULL DEFAULT 0,"
    " strategy TEXT);"
    "CREATE TABLE _agent_columns ("
    " tbl TEXT NOT NULL, pos INTEGER NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL,"
    " PRIMARY KEY (tbl, pos)) WITHOUT ROWID;";

/* Version 2: when each table's last deletion sweep completed (pull.c). */
static const char migration_2[] =
    "ALTER TABLE _agent_tables ADD COLUMN last_sweep_ms INTEGER NOT NULL DEFAULT 0;";

/* Version 3: when a SCHEMA record last changed a known table's columns (apply.c). */
static const char migration_3[] =
    "ALTER TABLE _agent_tables ADD COLUMN schema_changed_ms INTEGER NOT NULL DEFAULT 0;";

/* Version 4: this cache's identity for export/import (agent/ship/export.c): agent_id is
 * made once here and never travels; at_id is the snapshot or delta whose content
 * this cache equals ('' none), the base a delta must name to be applied. */
static const char migration_4[] =
    "CREATE TABLE _agent_export ("
    " id INTEGER PRIMARY KEY CHECK (id = 1),"
    " agent_id TEXT NOT NULL,"
    " at_id TEXT NOT NULL DEFAULT '',"
    " at_kind TEXT NOT NULL DEFAULT '',"
    " at_ms INTEGER NOT NULL DEFAULT 0);"
    "INSERT INTO _agent_export (id, agent_id) VALUES (1, lower(hex(randomblob(16))));";

/* Version 5: when each on_demand row was last read from the portal (pull.c notes
 * it after applying; replay_note_fetched), so a row older than its table's ttl
 * is read again. Operational like last_success_ms: a rebuild starts it over. */
static const char migration_5[] =
    "CREATE TABLE _agent_fetched ("
    " tbl TEXT NOT NULL, key NOT NULL, at_ms INTEGER NOT NULL,"
    " PRIMARY KEY (tbl, key)) WITHOUT ROWID;";

/* Version 6: records replay refused and the user skipped (replay_skip); the
 * last journal compaction's outcome (replay_note_compact), for status. */
static const char migration_6[] =
    "CREATE TABLE _agent_skipped ("
    " seq INTEGER PRIMARY KEY,"
    " tbl TEXT NOT NULL,"
    " type INTEGER NOT NULL,"
    " reason TEXT NOT NULL,"
    " at_ms INTEGER NOT NULL);"
    "ALTER TABLE _agent_state ADD COLUMN compact_ms INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE _agent_state ADD COLUMN compact_deleted INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE _agent_state ADD COLUMN compact_freed INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE _agent_state ADD COLUMN compact_reason TEXT NOT NULL DEFAULT '';";

/* Version 7: the outbox of offline writes (docs/outbox.md; apply_op.c applies the
 * op and op_state records). keys is the JSON array of the key values the op's
 * changeset touches; _agent_outbox_keys holds them while the op is open
 * (pending or sent), and replay leaves pulled rows of those keys alone. */
static const char migration_7[] =
    "CREATE TABLE _agent_outbox ("
    " id INTEGER PRIMARY KEY,"
    " tbl TEXT NOT NULL,"
    " kind TEXT NOT NULL,"
    " params TEXT NOT NULL,"
    " changeset BLOB NOT NULL,"
    " answer TEXT NOT NULL,"
    " keys TEXT NOT NULL,"
    " state TEXT NOT NULL,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " last_error TEXT,"
    " created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL);"
    "CREATE TABLE _agent_outbox_keys ("
    " tbl TEXT NOT NULL, key NOT NULL, id INTEGER NOT NULL,"
    " PRIMARY KEY (tbl, key, id)) WITHOUT ROWID;"
    "CREATE INDEX _agent_outbox_keys_id ON _agent_outbox_keys (id);";

/* Version 8: the coverage of a pending snapshot read by parallel key-range
 * streams (SNAPSHOT_RANGE records; ranges.c): disjoint key intervals (lo, hi],
 * lo NULL unbounded below, hi NULL unbounded above, about one per stream. */
static const char migration_8[] =
    "CREATE TABLE _agent_snapshot_ranges (tbl TEXT NOT NULL, lo INTEGER, hi INTEGER);"
    "CREATE INDEX _agent_snapshot_ranges_tbl ON _agent_snapshot_ranges (tbl, lo);";

static const char *const migrations[] = {migration_1, migration_2, migration_3, migration_4, migration_5,
                                          migration_6, migration_7, migration_8};
#define NMIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))
_Static_assert(sizeof migrations / sizeof migrations[0] == REPLAY_SCHEMA_VERSION,
               "one migration step per schema version");

/* ---- small helpers --------------------------------------------------------------- */

struct rp_msg rp_errmsg_os(sqlite3 *db, int os_errno)
{
    struct rp_msg m;
    int code = sqlite3_extended_errcode(db) & 0xff;
    int sys = sqlite3_system_errno(db);
    const char *msg = sqlite3_errmsg(db);
    if (sys == 0) sys = os_errno;
    if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB)
        snprintf(m.s, sizeof m.s,
                 "%s: cache.db is damaged; run `iptv-agent replay --rebuild` to recreate it from the journal", msg);
    else if (code == SQLITE_READONLY)
        snprintf(m.s, sizeof m.s,
                 "%s: cache.db, its -wal/-shm files or its directory are not writable by this user", msg);
    else if ((code == SQLITE_IOERR || code == SQLITE_FULL || code == SQLITE_CANTOPEN || code == SQLITE_PERM) &&
             sys != 0)
        snprintf(m.s, sizeof m.s, "%s (%s)", msg, strerror(sys));
    else
        snprintf(m.s, sizeof m.s, "%s", msg);
    return m;
}

struct rp_msg rp_errmsg(sqlite3 *db) { return rp_errmsg_os(db, 0); }

void replay_db_errmsg(sqlite3 *db, char *out, size_t outlen) { snprintf(out, outlen, "%s", rp_errmsg(db).s); }

int rp_exec(sqlite3 *db, const char *sql, const char *what, char *err, size_t errlen)
{
    /* A failed COMMIT does not record its system error in the connection
     * (sqlite3_system_errno stays 0); errno still holds the write's. */
    errno = 0;
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", what, rp_errmsg_os(db, e).s);
        return -1;
    }
    return 0;
}

void rp_quote(struct buf *b, const char *name)
{
    buf_putc(b, '"');
    for (const char *p = name; *p; p++) {
        if (*p == '"') buf_putc(b, '"');
        buf_putc(b, *p);
    }
    buf_putc(b, '"');
}

int replay_check_name(const char *name, char *err, size_t errlen)
{
    size_t n = strlen(name);
    if (n == 0 || n > JOURNAL_TABLE_MAX) {
        snprintf(err, errlen, "table name \"%s\": must be 1..%d bytes", name, JOURNAL_TABLE_MAX);
        return -1;
    }
    /* SQLite reserves sqlite_ (any case); _agent_ is this cache's metadata. */
    if (strncasecmp(name, "sqlite_", 7) == 0 || strncasecmp(name, "_agent_", 7) == 0) {
        snprintf(err, errlen, "table name \"%s\": names starting with \"sqlite_\" or \"_agent_\" are reserved",
                 name);
        return -1;
    }
    return 0;
}

void replay_schema_hash(uint32_t ncols, const char *const *names, const enum journal_coltype *types,
                        char out[17])
{
    /* FNV-1a 64 over "name\0type\0" per column; type by name, not enum value,
     * so the hash survives a renumbering. */
    uint64_t h = 1469598103934665603ULL;
    for (uint32_t i = 0; i < ncols; i++) {
        const char *tn = journal_coltype_name(types[i]);
        for (int part = 0; part < 2; part++) {
            const unsigned char *p = (const unsigned char *)(part ? (tn ? tn : "?") : names[i]);
            for (; *p; p++) h = (h ^ *p) * 1099511628211ULL;
            h = (h ^ 0) * 1099511628211ULL;
        }
    }
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

static const char *const vtype_names[] = {"null", "bool", "int", "real", "text", "json"};

static enum journal_vtype vtype_parse(const char *s)
{
    for (int i = 0; i < 6; i++)
        if (s && strcmp(s, vtype_names[i]) == 0) return (enum journal_vtype)i;
    return JOURNAL_NULL;
}

static enum journal_coltype coltype_parse(const char *s)
{
    for (int i = JOURNAL_COL_ANY; i <= JOURNAL_COL_BOOL; i++) {
        const char *n = journal_coltype_name((enum journal_coltype)i);
        if (s && n && strcmp(s, n) == 0) return (enum journal_coltype)i;
    }
    return JOURNAL_COL_ANY;
}

void rp_value_clear(struct replay_value *v)
{
    free(v->s);
    memset(v, 0, sizeof *v);
    v->type = JOURNAL_NULL;
}

void rp_value_set(struct replay_value *dst, const struct journal_value *src)
{
    rp_value_clear(dst);
    dst->type = src->type;
    dst->i = src->i;
    dst->d = src->d;
    if (src->type == JOURNAL_TEXT || src->type == JOURNAL_JSON) {
        dst->s = xmalloc(src->n + 1);
        if (src->n) memcpy(dst->s, src->s, src->n);
        dst->s[src->n] = '\0';
        dst->n = src->n;
    }
}

int rp_bind(sqlite3_stmt *st, int i, const struct journal_value *v)
{
    switch (v->type) {
    case JOURNAL_BOOL:
    case JOURNAL_INT:
        return sqlite3_bind_int64(st, i, v->i);
    case JOURNAL_REAL:
        return sqlite3_bind_double(st, i, v->d);
    case JOURNAL_TEXT:
    case JOURNAL_JSON:
        /* Explicit length: embedded NULs survive. A NULL pointer would bind NULL. */
        return sqlite3_bind_text64(st, i, v->s ? v->s : "", v->n, SQLITE_STATIC, SQLITE_UTF8);
    case JOURNAL_NULL:
    default:
        return sqlite3_bind_null(st, i);
    }
}

/* Bind a stored value as (type name, value) at i, i + 1. */
static int bind_typed(sqlite3_stmt *st, int i, const struct replay_value *v)
{
    struct journal_value jv = {.type = v->type, .i = v->i, .d = v->d, .s = v->s, .n = v->n};
    int t = (unsigned)v->type < 6 ? (int)v->type : 0;
    int rc = sqlite3_bind_text(st, i, vtype_names[t], -1, SQLITE_STATIC);
    return rc != SQLITE_OK ? rc : rp_bind(st, i + 1, &jv);
}

/* Read a (type name, value) pair from columns i, i + 1. */
static void column_typed(sqlite3_stmt *st, int i, struct replay_value *v)
{
    rp_value_clear(v);
    v->type = vtype_parse((const char *)sqlite3_column_text(st, i));
    switch (v->type) {
    case JOURNAL_BOOL:
    case JOURNAL_INT:
        v->i = sqlite3_column_int64(st, i + 1);
        break;
    case JOURNAL_REAL:
        v->d = sqlite3_column_double(st, i + 1);
        break;
    case JOURNAL_TEXT:
    case JOURNAL_JSON: {
        const unsigned char *s = sqlite3_column_text(st, i + 1);
        size_t n = (size_t)sqlite3_column_bytes(st, i + 1);
        v->s = xmalloc(n + 1);
        if (n) memcpy(v->s, s, n);
        v->s[n] = '\0';
        v->n = n;
        break;
    }
    default:
        break;
    }
}

static char *column_strdup(sqlite3_stmt *st, int i)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    return s ? xstrdup((const char *)s) : NULL;
}

static void copy_hash(char dst[17], sqlite3_stmt *st, int i)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    snprintf(dst, 17, "%s", s ? (const char *)s : "");
}

/* ---- open, migrate, close --------------------------------------------------------- */

static int user_version(sqlite3 *db, int *v, const char *path, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        snprintf(err, errlen, "cache.db %s: reading user_version: %s", path, rp_errmsg(db).s);
        sqlite3_finalize(st);
        return -1;
    }
    *v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return 0;
}

int replay_migrate(sqlite3 *db, const char *path, int to, char *err, size_t errlen)
{
    int v;
    if (to < 0 || to > NMIGRATIONS) {
        snprintf(err, errlen, "cache.db %s: cannot migrate to schema version %d (this build knows 0..%d)",
                 path, to, NMIGRATIONS);
        return -1;
    }
    if (user_version(db, &v, path, err, errlen) != 0) return -1;
    if (v > to) {
        snprintf(err, errlen,
                 "cache.db %s: schema version %d is newer than this build knows (%d); "
                 "use a newer iptv-agent, or move the file away and run `iptv-agent replay --rebuild`",
                 path, v, to);
        return -1;
    }
    for (; v < to; v++) {
        char what[512], sql[64];
        snprintf(what, sizeof what, "cache.db %s: migration to schema version %d", path, v + 1);
        if (rp_exec(db, "BEGIN IMMEDIATE", what, err, errlen) != 0) return -1;
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", v + 1);
        if (rp_exec(db, migrations[v], what, err, errlen) != 0 || rp_exec(db, sql, what, err, errlen) != 0 ||
            rp_exec(db, "COMMIT", what, err, errlen) != 0) {
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return -1;
        }
    }
    return 0;
}

static int load_state(struct replay *r, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(r->db, "SELECT applied_seq, base_seq FROM _agent_state WHERE id = 1", -1,
                                &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        snprintf(err, errlen, "cache.db %s: reading _agent_state: %s", r->db_path,
                 rc == SQLITE_DONE ? "no row" : rp_errmsg(r->db).s);
        sqlite3_finalize(st);
        return -1;
    }
    r->applied = (uint64_t)sqlite3_column_int64(st, 0);
    r->base_seq = (uint64_t)sqlite3_column_int64(st, 1);
    sqlite3_finalize(st);
    rc = sqlite3_prepare_v2(r->db, "SELECT seq, type, tbl FROM _agent_skipped ORDER BY seq", -1, &st, NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        r->skips = xrealloc(r->skips, (r->nskips + 1) * sizeof *r->skips);
        struct rp_skip *k = &r->skips[r->nskips++];
        k->seq = (uint64_t)sqlite3_column_int64(st, 0);
        k->type = sqlite3_column_int(st, 1);
        k->table = column_strdup(st, 2);
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "cache.db %s: reading _agent_skipped: %s", r->db_path, rp_errmsg(r->db).s);
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    return 0;
}

const struct rp_skip *rp_skipped(const struct replay *r, uint64_t seq)
{
    for (size_t i = 0; i < r->nskips; i++)
        if (r->skips[i].seq == seq) return &r->skips[i];
    return NULL;
}

int rp_schema_skipped(const struct replay *r, const char *table)
{
    for (size_t i = 0; i < r->nskips; i++)
        if (r->skips[i].type == JOURNAL_SCHEMA && strcmp(r->skips[i].table, table) == 0) return 1;
    return 0;
}

/* Open db_path read-only, if it exists and has _agent_skipped: 1 open, 0 none. */
static int open_skips(const char *db_path, sqlite3 **db, sqlite3_stmt **st, char *err, size_t errlen)
{
    *db = NULL;
    *st = NULL;
    int rc = replay_db_open_readonly(db_path, 0, 10000, db, err, errlen);
    if (rc != 0) return rc == 1 ? 0 : -1;
    /* An older cache.db has no such table: nothing was skipped. */
    sqlite3_stmt *has;
    int found = -1;
    if (sqlite3_prepare_v2(*db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_agent_skipped'",
                           -1, &has, NULL) == SQLITE_OK &&
        sqlite3_step(has) == SQLITE_ROW)
        found = sqlite3_column_int(has, 0) > 0;
    sqlite3_finalize(has);
    if (found == 1 &&
        sqlite3_prepare_v2(*db, "SELECT seq, tbl, type, reason, at_ms FROM _agent_skipped ORDER BY seq", -1, st,
                           NULL) == SQLITE_OK)
        return 1;
    if (found != 0) snprintf(err, errlen, "cache.db %s: reading _agent_skipped: %s", db_path, rp_errmsg(*db).s);
    sqlite3_close_v2(*db);
    *db = NULL;
    return found == 0 ? 0 : -1;
}

int replay_skipped_read(const char *db_path, uint64_t **seqs, size_t *n, char *err, size_t errlen)
{
    *seqs = NULL;
    *n = 0;
    sqlite3 *db;
    sqlite3_stmt *st;
    int rc = open_skips(db_path, &db, &st, err, errlen);
    if (rc <= 0) return rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        *seqs = xrealloc(*seqs, (*n + 1) * sizeof **seqs);
        (*seqs)[(*n)++] = (uint64_t)sqlite3_column_int64(st, 0);
    }
    if (rc != SQLITE_DONE) snprintf(err, errlen, "cache.db %s: reading _agent_skipped: %s", db_path, rp_errmsg(db).s);
    sqlite3_finalize(st);
    sqlite3_close_v2(db);
    return rc == SQLITE_DONE ? 0 : -1;
}

int rp_carry_skips(struct replay *r, const char *old_path, char *err, size_t errlen)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    int rc = open_skips(old_path, &db, &st, err, errlen);
    if (rc <= 0) return rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        uint64_t seq = (uint64_t)sqlite3_column_int64(st, 0);
        const char *tbl = (const char *)sqlite3_column_text(st, 1), *why = (const char *)sqlite3_column_text(st, 3);
        rc = rp_add_skip(r, seq, sqlite3_column_int(st, 2), tbl ? tbl : "", why ? why : "", 0, err, errlen);
        if (rc != 0) break;
        rc = SQLITE_ROW;
    }
    int ok = rc == SQLITE_DONE;
    if (!ok && rc != -1)
        snprintf(err, errlen, "cache.db %s: reading _agent_skipped: %s", old_path, rp_errmsg(db).s);
    sqlite3_finalize(st);
    sqlite3_close_v2(db);
    return ok ? 0 : -1;
}

int rp_add_skip(struct replay *r, uint64_t seq, int type, const char *table, const char *reason, int advance,
                char *err, size_t errlen)
{
    char what[4200];
    snprintf(what, sizeof what, "cache.db %s: recording skipped seq %llu", r->db_path, (unsigned long long)seq);
    if (rp_exec(r->db, "BEGIN IMMEDIATE", what, err, errlen) != 0) return -1;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(r->db, "INSERT OR REPLACE INTO _agent_skipped VALUES (?1, ?2, ?3, ?4, ?5)", -1, &st,
                                NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, (int64_t)seq);
        sqlite3_bind_text(st, 2, table, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 3, type);
        sqlite3_bind_text(st, 4, reason, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, clock_wall_ms());
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", what, rp_errmsg(r->db).s);
        sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    /* Skipping the next record moves the position past it, in the same
     * transaction; an entry carried into a rebuild only lets replay pass it by. */
    uint64_t applied = advance ? seq : r->applied;
    uint64_t base = r->base_seq || !advance ? r->base_seq : seq;
    if (rp_save(r, applied, base, err, errlen) != 0 || rp_exec(r->db, "COMMIT", what, err, errlen) != 0) {
        sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
        rp_tables_drop(r);
        return -1;
    }
    r->applied = applied;
    r->base_seq = base;
    r->skips = xrealloc(r->skips, (r->nskips + 1) * sizeof *r->skips);
    r->skips[r->nskips++] = (struct rp_skip){.seq = seq, .type = type, .table = xstrdup(table)};
    return 0;
}

int rp_remove_db(const char *path, char *err, size_t errlen)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s%s", path, suffixes[i]);
        if (unlink(p) != 0 && errno != ENOENT) {
            snprintf(err, errlen, "removing %s: %s", p, strerror(errno));
            return -1;
        }
    }
    return 0;
}

int rp_close_whole(sqlite3 *db, const char *path, char *err, size_t errlen)
{
    char what[4300];
    snprintf(what, sizeof what, "cache.db %s", path);
    int rc = rp_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", what, err, errlen);
    if (sqlite3_close(db) != SQLITE_OK) {
        if (rc == 0) snprintf(err, errlen, "cache.db %s: close: %s", path, rp_errmsg(db).s);
        rc = -1;
        sqlite3_close_v2(db);
    }
    char wal[4200];
    struct stat sb;
    snprintf(wal, sizeof wal, "%s-wal", path);
    if (rc == 0 && stat(wal, &sb) == 0 && sb.st_size > 0) {
        snprintf(err, errlen, "cache.db %s: its WAL (%s) was not checkpointed on close", path, wal);
        rc = -1;
    }
    return rc;
}

/* A new cache.db is made whole (WAL mode, every migration) under a temporary
 * name and linked into place. Made in place, a crash while the fresh file
 * switches to WAL leaves a hot rollback journal beside it, which read-only
 * readers cannot roll back ("attempt to write a readonly database") until a
 * writer opens the file. link() never replaces a cache.db another process
 * made meanwhile. Test: test_replay.c "create_crash_leaves_nothing". */
static int create_db(const char *path, char *err, size_t errlen)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.new-%ld", path, (long)getpid());
    if (rp_remove_db(tmp, err, errlen) != 0) return -1;
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(tmp, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cache.db %s: open: %s", path, db ? rp_errmsg(db).s : sqlite3_errstr(rc));
        sqlite3_close_v2(db);
        char ignore[256];
        rp_remove_db(tmp, ignore, sizeof ignore);
        return -1;
    }
    sqlite3_extended_result_codes(db, 1);
    char what[4300];
    snprintf(what, sizeof what, "cache.db %s: creating it", path);
    int ok = rp_exec(db, "PRAGMA journal_mode = WAL", what, err, errlen) == 0 &&
             replay_migrate(db, path, REPLAY_SCHEMA_VERSION, err, errlen) == 0;
    if (ok) ok = rp_close_whole(db, tmp, err, errlen) == 0;
    else sqlite3_close_v2(db);
    if (ok && link(tmp, path) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cache.db %s: creating it: link from %s: %s", path, tmp, strerror(errno));
        ok = 0;
    }
    if (ok) ok = fsio_sync_dir_of(path, err, errlen) == 0;
    char e2[IA_ERRLEN];
    if (rp_remove_db(tmp, e2, sizeof e2) != 0 && ok) {
        snprintf(err, errlen, "cache.db %s: %s", path, e2);
        ok = 0;
    }
    return ok ? 0 : -1;
}

static const char save_table_sql[] =
    "INSERT INTO _agent_tables (name, live, rows, schema_hash, ncols, key_col, cursor_col,"
    " live_hash, live_key_col, live_cursor_col, mark_cursor_type, mark_cursor, mark_key_type, mark_key,"
    " snapshot_id, snapshot_at_ms, pending_id, pending_rows, pending_key_type, pending_key, schema_changed_ms)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)"
    " ON CONFLICT (name) DO UPDATE SET live = ?2, rows = ?3, schema_hash = ?4, ncols = ?5, key_col = ?6,"
    " cursor_col = ?7, live_hash = ?8, live_key_col = ?9, live_cursor_col = ?10, mark_cursor_type = ?11,"
    " mark_cursor = ?12, mark_key_type = ?13, mark_key = ?14, snapshot_id = ?15, snapshot_at_ms = ?16,"
    " pending_id = ?17, pending_rows = ?18, pending_key_type = ?19, pending_key = ?20, schema_changed_ms = ?21";

int replay_open(const struct replay_opts *o, struct replay **out, char *err, size_t errlen)
{
    *out = NULL;
    struct replay *r = xcalloc(1, sizeof *r);
    r->db_path = xstrdup(o->db_path);
    r->journal_dir = o->journal_dir ? xstrdup(o->journal_dir) : NULL;
    r->warn = o->warn;
    r->warn_ctx = o->warn_ctx;
    struct stat sb;
    if (stat(o->db_path, &sb) != 0 && errno == ENOENT && create_db(o->db_path, err, errlen) != 0) goto fail;
    int rc = sqlite3_open_v2(o->db_path, &r->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cache.db %s: open: %s", o->db_path,
                 r->db ? rp_errmsg(r->db).s : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_extended_result_codes(r->db, 1);
    sqlite3_busy_timeout(r->db, 10000);
    char what[4200];
    snprintf(what, sizeof what, "cache.db %s", o->db_path);
    /* The journal is the durable copy (invariant 2): NORMAL is enough here. */
    /* legacy_alter_table: the snapshot swap renames the shadow after dropping the
     * live table; the modern RENAME re-checks every view in the schema and would
     * fail on a user's view of that table ("no such table"). The legacy one just
     * renames, and the view sees the new table. */
    if (rp_exec(r->db, "PRAGMA journal_mode = WAL", what, err, errlen) != 0 ||
        rp_exec(r->db, "PRAGMA synchronous = NORMAL", what, err, errlen) != 0 ||
        rp_exec(r->db, "PRAGMA legacy_alter_table = ON", what, err, errlen) != 0)
        goto fail;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->db, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        const char *mode = (const char *)sqlite3_column_text(st, 0);
        if (!mode || strcasecmp(mode, "wal") != 0) {
            snprintf(err, errlen, "cache.db %s: cannot switch to WAL mode (journal_mode is %s)", o->db_path,
                     mode ? mode : "?");
            sqlite3_finalize(st);
            goto fail;
        }
    }
    sqlite3_finalize(st);
    if (replay_migrate(r->db, o->db_path, REPLAY_SCHEMA_VERSION, err, errlen) != 0) goto fail;
    if (load_state(r, err, errlen) != 0) goto fail;
    if (sqlite3_prepare_v2(r->db, save_table_sql, -1, &r->save_table, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(r->db, "UPDATE _agent_state SET applied_seq = ?1, base_seq = ?2 WHERE id = 1", -1,
                           &r->save_state, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cache.db %s: %s", o->db_path, rp_errmsg(r->db).s);
        goto fail;
    }
    *out = r;
    return 0;
fail:
    replay_close(r);
    return -1;
}

int replay_db_open_readonly(const char *db_path, int flags, int busy_ms, sqlite3 **db, char *err, size_t errlen)
{
    *db = NULL;
    struct stat sb;
    if (stat(db_path, &sb) != 0) {
        int e = errno;
        if (e == ENOENT)
            snprintf(err, errlen, "cache.db %s: no such file (the agent creates it when it first pulls: "
                                  "try `iptv-agent --once`)", db_path);
        else
            snprintf(err, errlen, "cache.db %s: %s", db_path, strerror(e));
        return e == ENOENT ? 1 : -1;
    }
    int rc = sqlite3_open_v2(db_path, db, SQLITE_OPEN_READONLY | flags, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cache.db %s: cannot open read-only: %s", db_path,
                 *db ? rp_errmsg(*db).s : sqlite3_errstr(rc));
        sqlite3_close_v2(*db);
        *db = NULL;
        return -1;
    }
    sqlite3_extended_result_codes(*db, 1);
    sqlite3_busy_timeout(*db, busy_ms);
    return 0;
}

int replay_open_readonly(const char *db_path, struct replay **out, char *err, size_t errlen)
{
    *out = NULL;
    sqlite3 *db;
    int rc = replay_db_open_readonly(db_path, 0, 10000, &db, err, errlen);
    if (rc != 0) return rc;
    struct replay *r = xcalloc(1, sizeof *r);
    r->db_path = xstrdup(db_path);
    r->db = db;
    int v = 0;
    if (user_version(r->db, &v, db_path, err, errlen) != 0) goto fail;
    /* A reader cannot migrate: an older file waits for the next writer. */
    if (v != REPLAY_SCHEMA_VERSION) {
        snprintf(err, errlen, "cache.db %s: schema version %d, this build reads %d; %s", db_path, v,
                 REPLAY_SCHEMA_VERSION, v < REPLAY_SCHEMA_VERSION ? "run `iptv-agent replay` once to migrate it"
                                                                   : "use a newer iptv-agent");
        goto fail;
    }
    if (load_state(r, err, errlen) != 0) goto fail;
    *out = r;
    return 0;
fail:
    replay_close(r);
    return -1;
}

void replay_close(struct replay *r)
{
    if (!r) return;
    rp_tables_drop(r);
    free(r->t);
    for (size_t i = 0; i < r->nwarned; i++) free(r->warned[i]);
    free(r->warned);
    for (size_t i = 0; i < r->nskips; i++) free(r->skips[i].table);
    free(r->skips);
    sqlite3_finalize(r->save_table);
    sqlite3_finalize(r->save_state);
    sqlite3_finalize(r->op_keys);
    sqlite3_finalize(r->op_row);
    sqlite3_close_v2(r->db);
    free(r->db_path);
    free(r->journal_dir);
    free(r);
}

sqlite3 *replay_db(struct replay *r) { return r->db; }

uint64_t replay_applied_seq(const struct replay *r) { return r->applied; }

/* ---- the metadata cache used while applying ----------------------------------------- */

static void table_free(struct rp_table *t)
{
    rp_table_finalize(t);
    for (uint32_t i = 0; i < t->ncols; i++) free(t->cols[i]);
    free(t->cols);
    free(t->types);
    rp_value_clear(&t->mark_cursor);
    rp_value_clear(&t->mark_key);
    rp_value_clear(&t->pending_key);
    free(t->name);
    free(t);
}

void rp_table_finalize(struct rp_table *t)
{
    sqlite3_finalize(t->ins_shadow);
    sqlite3_finalize(t->ign_live);
    sqlite3_finalize(t->rep_live);
    sqlite3_finalize(t->del_live);
    sqlite3_finalize(t->del_shadow);
    sqlite3_finalize(t->open_any);
    sqlite3_finalize(t->open_key);
    t->ins_shadow = t->ign_live = t->rep_live = t->del_live = t->del_shadow = t->open_any = t->open_key = NULL;
}

void rp_tables_drop(struct replay *r)
{
    for (size_t i = 0; i < r->nt; i++) table_free(r->t[i]);
    r->nt = 0;
}

static const char load_sql[] =
    "SELECT live, rows, schema_hash, ncols, key_col, cursor_col, live_hash, live_key_col, live_cursor_col,"
    " mark_cursor_type, mark_cursor, mark_key_type, mark_key, snapshot_id, snapshot_at_ms, pending_id,"
    " pending_rows, pending_key_type, pending_key, last_attempt_ms, last_success_ms, last_error, forbidden,"
    " strategy, last_sweep_ms, schema_changed_ms FROM _agent_tables WHERE name = ?1";

static int load_columns(struct replay *r, struct rp_table *t, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->db, "SELECT name, type FROM _agent_columns WHERE tbl = ?1 ORDER BY pos", -1,
                           &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "table %s: reading _agent_columns: %s", t->name, rp_errmsg(r->db).s);
        return -1;
    }
    sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
    uint32_t n = 0;
    int rc;
    t->cols = xcalloc(t->ncols ? t->ncols : 1, sizeof *t->cols);
    t->types = xcalloc(t->ncols ? t->ncols : 1, sizeof *t->types);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < t->ncols) {
        t->cols[n] = column_strdup(st, 0);
        t->types[n] = coltype_parse((const char *)sqlite3_column_text(st, 1));
        n++;
    }
    sqlite3_finalize(st);
    if (n != t->ncols || !(rc == SQLITE_DONE || rc == SQLITE_ROW)) {
        snprintf(err, errlen, "table %s: _agent_columns holds %u columns, _agent_tables says %u", t->name, n,
                 t->ncols);
        return -1;
    }
    return 0;
}

struct rp_table *rp_table(struct replay *r, const char *name, char *err, size_t errlen)
{
    for (size_t i = 0; i < r->nt; i++)
        if (strcmp(r->t[i]->name, name) == 0) return r->t[i];
    struct rp_table *t = xcalloc(1, sizeof *t);
    t->name = xstrdup(name);
    t->key_col = t->cursor_col = t->live_key_col = t->live_cursor_col = -1;
    rp_value_clear(&t->mark_cursor);
    rp_value_clear(&t->mark_key);
    rp_value_clear(&t->pending_key);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->db, load_sql, -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "table %s: reading _agent_tables: %s", name, rp_errmsg(r->db).s);
        table_free(t);
        return NULL;
    }
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        t->live = sqlite3_column_int(st, 0);
        t->rows = (uint64_t)sqlite3_column_int64(st, 1);
        copy_hash(t->hash, st, 2);
        t->known = t->hash[0] != '\0';
        t->ncols = (uint32_t)sqlite3_column_int(st, 3);
        t->key_col = sqlite3_column_int(st, 4);
        t->cursor_col = sqlite3_column_int(st, 5);
        copy_hash(t->live_hash, st, 6);
        t->live_key_col = sqlite3_column_int(st, 7);
        t->live_cursor_col = sqlite3_column_int(st, 8);
        column_typed(st, 9, &t->mark_cursor);
        column_typed(st, 11, &t->mark_key);
        t->snapshot_id = (uint64_t)sqlite3_column_int64(st, 13);
        t->snapshot_at_ms = sqlite3_column_int64(st, 14);
        t->pending_id = (uint64_t)sqlite3_column_int64(st, 15);
        t->pending_rows = (uint64_t)sqlite3_column_int64(st, 16);
        column_typed(st, 17, &t->pending_key);
        t->schema_changed_ms = sqlite3_column_int64(st, 25);
    } else if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "table %s: reading _agent_tables: %s", name, rp_errmsg(r->db).s);
        sqlite3_finalize(st);
        table_free(t);
        return NULL;
    }
    sqlite3_finalize(st);
    if (!t->known) t->ncols = 0;
    if (t->known && load_columns(r, t, err, errlen) != 0) {
        table_free(t);
        return NULL;
    }
    if (r->nt == r->capt) {
        r->capt = r->capt ? r->capt * 2 : 16;
        r->t = xrealloc(r->t, r->capt * sizeof *r->t);
    }
    r->t[r->nt++] = t;
    return t;
}

int rp_save_columns(struct replay *r, const struct rp_table *t, char *err, size_t errlen)
{
    sqlite3_stmt *del = NULL, *ins = NULL;
    int ok = sqlite3_prepare_v2(r->db, "DELETE FROM _agent_columns WHERE tbl = ?1", -1, &del, NULL) == SQLITE_OK &&
             sqlite3_prepare_v2(r->db, "INSERT INTO _agent_columns VALUES (?1, ?2, ?3, ?4)", -1, &ins, NULL) ==
                 SQLITE_OK;
    if (ok) {
        sqlite3_bind_text(del, 1, t->name, -1, SQLITE_STATIC);
        ok = sqlite3_step(del) == SQLITE_DONE;
    }
    for (uint32_t i = 0; ok && i < t->ncols; i++) {
        sqlite3_bind_text(ins, 1, t->name, -1, SQLITE_STATIC);
        sqlite3_bind_int(ins, 2, (int)i);
        sqlite3_bind_text(ins, 3, t->cols[i], -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 4, journal_coltype_name(t->types[i]), -1, SQLITE_STATIC);
        ok = sqlite3_step(ins) == SQLITE_DONE;
        sqlite3_reset(ins);
    }
    if (!ok) snprintf(err, errlen, "table %s: writing _agent_columns: %s", t->name, rp_errmsg(r->db).s);
    sqlite3_finalize(del);
    sqlite3_finalize(ins);
    return ok ? 0 : -1;
}

int rp_save(struct replay *r, uint64_t applied, uint64_t base_seq, char *err, size_t errlen)
{
    sqlite3_stmt *st = r->save_table;
    for (size_t i = 0; i < r->nt; i++) {
        struct rp_table *t = r->t[i];
        if (!t->dirty) continue;
        sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, t->live);
        sqlite3_bind_int64(st, 3, (int64_t)t->rows);
        sqlite3_bind_text(st, 4, t->hash, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 5, (int)t->ncols);
        sqlite3_bind_int(st, 6, t->key_col);
        sqlite3_bind_int(st, 7, t->cursor_col);
        sqlite3_bind_text(st, 8, t->live_hash, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 9, t->live_key_col);
        sqlite3_bind_int(st, 10, t->live_cursor_col);
        bind_typed(st, 11, &t->mark_cursor);
        bind_typed(st, 13, &t->mark_key);
        sqlite3_bind_int64(st, 15, (int64_t)t->snapshot_id);
        sqlite3_bind_int64(st, 16, t->snapshot_at_ms);
        sqlite3_bind_int64(st, 17, (int64_t)t->pending_id);
        sqlite3_bind_int64(st, 18, (int64_t)t->pending_rows);
        bind_typed(st, 19, &t->pending_key);
        sqlite3_bind_int64(st, 21, t->schema_changed_ms);
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        if (rc != SQLITE_DONE) {
            snprintf(err, errlen, "table %s: writing _agent_tables: %s", t->name, rp_errmsg(r->db).s);
            return -1;
        }
    }
    sqlite3_bind_int64(r->save_state, 1, (int64_t)applied);
    sqlite3_bind_int64(r->save_state, 2, (int64_t)base_seq);
    int rc = sqlite3_step(r->save_state);
    sqlite3_reset(r->save_state);
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "cache.db %s: writing _agent_state: %s", r->db_path, rp_errmsg(r->db).s);
        return -1;
    }
    for (size_t i = 0; i < r->nt; i++) r->t[i]->dirty = 0;
    return 0;
}

/* ---- reading metadata for callers ------------------------------------------------- */

int replay_table_get(struct replay *r, const char *table, struct replay_table *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->key_col = out->cursor_col = -1;
    out->mark_cursor.type = out->mark_key.type = out->pending_key.type = JOURNAL_NULL;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->db, load_sql, -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "table %s: reading _agent_tables: %s", table, rp_errmsg(r->db).s);
        return -1;
    }
    sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        if (rc != SQLITE_DONE)
            snprintf(err, errlen, "table %s: reading _agent_tables: %s", table, rp_errmsg(r->db).s);
        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? 1 : -1;
    }
    out->live = sqlite3_column_int(st, 0);
    out->rows = (uint64_t)sqlite3_column_int64(st, 1);
    copy_hash(out->schema_hash, st, 2);
    out->ncols = sqlite3_column_int(st, 3);
    out->key_col = sqlite3_column_int(st, 4);
    out->cursor_col = sqlite3_column_int(st, 5);
    copy_hash(out->live_hash, st, 6);
    out->schema_behind = out->live && out->schema_hash[0] &&
                         (strcmp(out->live_hash, out->schema_hash) != 0 ||
                          sqlite3_column_int(st, 7) != out->key_col || sqlite3_column_int(st, 8) != out->cursor_col);
    column_typed(st, 9, &out->mark_cursor);
    column_typed(st, 11, &out->mark_key);
    out->snapshot_id = (uint64_t)sqlite3_column_int64(st, 13);
    out->snapshot_at_ms = sqlite3_column_int64(st, 14);
    out->pending_id = (uint64_t)sqlite3_column_int64(st, 15);
    out->pending_rows = (uint64_t)sqlite3_column_int64(st, 16);
    column_typed(st, 17, &out->pending_key);
    out->last_attempt_ms = sqlite3_column_int64(st, 19);
    out->last_success_ms = sqlite3_column_int64(st, 20);
    out->last_error = column_strdup(st, 21);
    out->forbidden = sqlite3_column_int(st, 22);
    out->strategy = column_strdup(st, 23);
    out->last_sweep_ms = sqlite3_column_int64(st, 24);
    out->schema_changed_ms = sqlite3_column_int64(st, 25);
    sqlite3_finalize(st);
    if (rp_ranges_read(r->db, table, &out->ranges, &out->nranges) != 0) {
        snprintf(err, errlen, "table %s: reading _agent_snapshot_ranges: %s", table, rp_errmsg(r->db).s);
        replay_table_free(out);
        return -1;
    }
    return 0;
}

void replay_table_free(struct replay_table *t)
{
    rp_value_clear(&t->mark_cursor);
    rp_value_clear(&t->mark_key);
    rp_value_clear(&t->pending_key);
    free(t->last_error);
    free(t->strategy);
    free(t->ranges);
    t->last_error = t->strategy = NULL;
    t->ranges = NULL;
    t->nranges = 0;
}

int replay_table_list(struct replay *r, char ***names, size_t *n, char *err, size_t errlen)
{
    *names = NULL;
    *n = 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->db, "SELECT name FROM _agent_tables ORDER BY name", -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cache.db %s: reading _agent_tables: %s", r->db_path, rp_errmsg(r->db).s);
        return -1;
    }
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            *names = xrealloc(*names, cap * sizeof **names);
        }
        (*names)[(*n)++] = column_strdup(st, 0);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "cache.db %s: reading _agent_tables: %s", r->db_path, rp_errmsg(r->db).s);
        replay_names_free(*names, *n);
        *names = NULL;
        *n = 0;
        return -1;
    }
    return 0;
}

int replay_briefs_read(sqlite3 *db, struct replay_brief **out, size_t *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT name, rows, last_success_ms, last_attempt_ms, last_error, forbidden, strategy"
                                " FROM _agent_tables ORDER BY name",
                                -1, &st, NULL);
    size_t cap = 0;
    while (st && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            *out = xrealloc(*out, sizeof **out * cap);
        }
        const char *le = (const char *)sqlite3_column_text(st, 4);
        (*out)[(*n)++] = (struct replay_brief){
            .name = column_strdup(st, 0),
            .rows = sqlite3_column_int64(st, 1),
            .last_success_ms = sqlite3_column_int64(st, 2),
            .last_attempt_ms = sqlite3_column_int64(st, 3),
            .last_error = le ? xstrdup(le) : NULL,
            .forbidden = sqlite3_column_int(st, 5),
            .strategy = sqlite3_column_type(st, 6) == SQLITE_NULL ? NULL : column_strdup(st, 6),
        };
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "reading _agent_tables: %s", rp_errmsg(db).s);
        replay_briefs_free(*out, *n);
        *out = NULL;
        *n = 0;
        return -1;
    }
    return 0;
}

void replay_briefs_free(struct replay_brief *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(b[i].name);
        free(b[i].last_error);
        free(b[i].strategy);
    }
    free(b);
}

void replay_names_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

int replay_table_columns(struct replay *r, const char *table, struct replay_column **cols, size_t *n,
                         char *err, size_t errlen)
{
    *cols = NULL;
    *n = 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->db, "SELECT name, type FROM _agent_columns WHERE tbl = ?1 ORDER BY pos", -1, &st,
                           NULL) != SQLITE_OK) {
        snprintf(err, errlen, "table %s: reading _agent_columns: %s", table, rp_errmsg(r->db).s);
        return -1;
    }
    sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            *cols = xrealloc(*cols, cap * sizeof **cols);
        }
        (*cols)[*n].name = column_strdup(st, 0);
        (*cols)[*n].type = coltype_parse((const char *)sqlite3_column_text(st, 1));
        (*n)++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "table %s: reading _agent_columns: %s", table, rp_errmsg(r->db).s);
        replay_columns_free(*cols, *n);
        *cols = NULL;
        *n = 0;
        return -1;
    }
    return *n ? 0 : 1;
}

void replay_columns_free(struct replay_column *cols, size_t n)
{
    for (size_t i = 0; i < n; i++) free(cols[i].name);
    free(cols);
}

/* ---- operational metadata --------------------------------------------------------- */

int replay_note_pull(struct replay *r, const char *table, const char *strategy, int64_t when_ms,
                     const char *error, int forbidden, char *err, size_t errlen)
{
    /* Its own small transaction (autocommit); never inside replay_apply's batch,
     * which is not open between calls. COALESCE keeps the last strategy when
     * the caller passes none. */
    static const char sql[] =
        "INSERT INTO _agent_tables (name, last_attempt_ms, last_success_ms, last_error, forbidden, strategy)"
        " VALUES (?1, ?2, CASE WHEN ?3 IS NULL THEN ?2 ELSE 0 END, ?3, ?4, ?5)"
        " ON CONFLICT (name) DO UPDATE SET last_attempt_ms = ?2,"
        " last_success_ms = CASE WHEN ?3 IS NULL THEN ?2 ELSE last_success_ms END,"
        " last_error = ?3, forbidden = ?4, strategy = COALESCE(?5, strategy)";
    if (replay_check_name(table, err, errlen) != 0) return -1;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->db, sql, -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "table %s: recording the pull: %s", table, rp_errmsg(r->db).s);
        return -1;
    }
    sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, when_ms);
    if (error) sqlite3_bind_text(st, 3, error, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, forbidden != 0);
    if (strategy) sqlite3_bind_text(st, 5, strategy, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        snprintf(err, errlen, "table %s: recording the pull: %s", table, rp_errmsg(r->db).s);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

int replay_note_sweep(struct replay *r, const char *table, int64_t when_ms, char *err, size_t errlen)
{
    if (replay_check_name(table, err, errlen) != 0) return -1;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(r->db, "UPDATE _agent_tables SET last_sweep_ms = ?2 WHERE name = ?1", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, when_ms);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
    }
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "table %s: recording the sweep: %s", table, rp_errmsg(r->db).s);
        return -1;
    }
    return 0;
}

int replay_note_fetched(struct replay *r, const char *table, const struct journal_value *keys, size_t n,
                        int64_t when_ms, char *err, size_t errlen)
{
    if (replay_check_name(table, err, errlen) != 0) return -1;
    if (n == 0) return 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->db, "INSERT OR REPLACE INTO _agent_fetched (tbl, key, at_ms) VALUES (?1, ?2, ?3)", -1,
                           &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "table %s: recording when rows were fetched: %s", table, rp_errmsg(r->db).s);
        return -1;
    }
    int rc = rp_exec(r->db, "BEGIN", "recording fetch times", err, errlen) == 0 ? SQLITE_DONE : SQLITE_ERROR;
    for (size_t i = 0; i < n && rc == SQLITE_DONE; i++) {
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
        rp_bind(st, 2, &keys[i]);
        sqlite3_bind_int64(st, 3, when_ms);
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "table %s: recording when rows were fetched: %s", table, rp_errmsg(r->db).s);
        rp_exec(r->db, "ROLLBACK", "recording fetch times", NULL, 0);
        return -1;
    }
    return rp_exec(r->db, "COMMIT", "recording fetch times", err, errlen);
}

void replay_fetched_sql(struct buf *out, const char *table, const char *key, const char *column)
{
    buf_puts(out, "SELECT count(*), min(coalesce(f.at_ms, 0)), json_group_array(t.");
    rp_quote(out, key);
    buf_puts(out, ") FROM ");
    rp_quote(out, table);
    buf_puts(out, " AS t LEFT JOIN _agent_fetched AS f ON f.tbl = '");
    for (const char *p = table; *p; p++) {
        if (*p == '\'') buf_putc(out, '\'');
        buf_putc(out, *p);
    }
    buf_puts(out, "' AND f.key = t.");
    rp_quote(out, key);
    buf_puts(out, " WHERE t.");
    rp_quote(out, column);
    buf_puts(out, " = ?1");
}

int replay_note_compact(struct replay *r, const struct replay_compact *c, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(r->db,
                                "UPDATE _agent_state SET compact_ms = ?1, compact_deleted = ?2, compact_freed = ?3,"
                                " compact_reason = ?4 WHERE id = 1",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, c->at_ms);
        sqlite3_bind_int64(st, 2, (int64_t)c->deleted);
        sqlite3_bind_int64(st, 3, (int64_t)c->freed);
        sqlite3_bind_text(st, 4, c->reason, -1, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    }
    if (rc != SQLITE_OK) snprintf(err, errlen, "cache.db %s: noting the compaction: %s", r->db_path, rp_errmsg(r->db).s);
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? 0 : -1;
}

int replay_compact_read(sqlite3 *db, struct replay_compact *out)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, "SELECT compact_ms, compact_deleted, compact_freed, compact_reason"
                                    " FROM _agent_state WHERE id = 1", -1, &st, NULL);
    if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        out->at_ms = sqlite3_column_int64(st, 0);
        out->deleted = (uint64_t)sqlite3_column_int64(st, 1);
        out->freed = (uint64_t)sqlite3_column_int64(st, 2);
        const unsigned char *t = sqlite3_column_text(st, 3);
        snprintf(out->reason, sizeof out->reason, "%s", t ? (const char *)t : "");
    } else {
        rc = SQLITE_ERROR;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? 0 : -1;
}
