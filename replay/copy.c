/* copy.c — see copy.h: cache.db copies for export and import. */
#include "replay/copy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/buf.h"
#include "agent/base/mem.h"
#include "replay/cachedb.h"
#include "replay/replay.h"

int replay_copy_travels(const char *table)
{
    return strcmp(table, "_agent_state") != 0 && strcmp(table, "_agent_export") != 0 &&
           strcmp(table, "_agent_outbox") != 0 && strcmp(table, "_agent_outbox_keys") != 0 &&
           strcmp(table, "_agent_snapshot_ranges") != 0 &&
           sqlite3_strnicmp(table, "sqlite_", 7) != 0;
}

int replay_copy_list(sqlite3 *db, const char *schema, char ***names, char ***ddls, size_t *n, char *err,
                     size_t errlen)
{
    *names = *ddls = NULL;
    *n = 0;
    struct buf q = {0};
    buf_puts(&q, "SELECT name, sql FROM ");
    rp_quote(&q, schema);
    buf_puts(&q, ".sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
                 " AND name NOT IN ('_agent_state', '_agent_export', '_agent_outbox', '_agent_outbox_keys',"
                 " '_agent_snapshot_ranges')"
                 " ORDER BY name");
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, q.p, -1, &st, NULL);
    buf_free(&q);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "listing the tables of %s: %s", schema, sqlite3_errmsg(db));
        return -1;
    }
    size_t cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            *names = xrealloc(*names, cap * sizeof **names);
            *ddls = xrealloc(*ddls, cap * sizeof **ddls);
        }
        const unsigned char *sql = sqlite3_column_text(st, 1);
        (*names)[*n] = xstrdup((const char *)sqlite3_column_text(st, 0));
        (*ddls)[*n] = xstrdup(sql ? (const char *)sql : "");
        (*n)++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "listing the tables of %s: %s", schema, sqlite3_errmsg(db));
        replay_copy_list_free(*names, *ddls, *n);
        *names = *ddls = NULL;
        *n = 0;
        return -1;
    }
    return 0;
}

void replay_copy_list_free(char **names, char **ddls, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
        free(ddls[i]);
    }
    free(names);
    free(ddls);
}

void replay_copy_remove(const char *path)
{
    char ignored[256];
    rp_remove_db(path, ignored, sizeof ignored);
}

/* The integer of a one-value query, or -1 with err. */
static int query_int(sqlite3 *db, const char *sql, int64_t *out, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *out = sqlite3_column_int64(st, 0);
    else snprintf(err, errlen, "%s: %s", sql, rc == SQLITE_DONE ? "no row" : sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : -1;
}

int replay_copy_open(const char *path, sqlite3 **db, char *err, size_t errlen)
{
    int rc = sqlite3_open_v2(path, db, SQLITE_OPEN_READWRITE, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "%s: open: %s", path, *db ? sqlite3_errmsg(*db) : sqlite3_errstr(rc));
        sqlite3_close_v2(*db);
        *db = NULL;
        return -1;
    }
    sqlite3_extended_result_codes(*db, 1);
    sqlite3_busy_timeout(*db, 10000);
    return 0;
}

int replay_copy_take(const char *db_path, const char *copy, char *err, size_t errlen)
{
    sqlite3 *src = NULL, *c = NULL;
    replay_copy_remove(copy);
    if (replay_db_open_readonly(db_path, 0, 10000, &src, err, errlen) != 0) return -1;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(src, "VACUUM INTO ?1", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, copy, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
    }
    if (rc != SQLITE_DONE && rc != SQLITE_OK) {
        snprintf(err, errlen, "cache.db %s: copying to %s: %s", db_path, copy, sqlite3_errmsg(src));
        sqlite3_finalize(st);
        sqlite3_close_v2(src);
        replay_copy_remove(copy);
        return -1;
    }
    sqlite3_finalize(st);
    sqlite3_close_v2(src);
    if (replay_copy_open(copy, &c, err, errlen) != 0) {
        replay_copy_remove(copy);
        return -1;
    }
    int64_t v = 0;
    int ok = query_int(c, "PRAGMA user_version", &v, err, errlen) == 0;
    if (ok && v != REPLAY_SCHEMA_VERSION) {
        snprintf(err, errlen,
                 "cache.db %s: schema version %lld, this build exports %d (open it with this build first)", db_path,
                 (long long)v, REPLAY_SCHEMA_VERSION);
        ok = 0;
    }
    struct buf drops = {0};
    if (ok) {
        rc = sqlite3_prepare_v2(c,
                                "SELECT name FROM sqlite_master WHERE type = 'table'"
                                " AND name LIKE '\\_agent\\_shadow\\_%' ESCAPE '\\'",
                                -1, &st, NULL);
        while (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
            buf_puts(&drops, "DROP TABLE ");
            rp_quote(&drops, (const char *)sqlite3_column_text(st, 0));
            buf_puts(&drops, ";");
        }
        sqlite3_finalize(st);
        buf_puts(&drops, "UPDATE _agent_tables SET pending_id = 0, pending_rows = 0, pending_key_type = 'null',"
                         " pending_key = NULL WHERE pending_id != 0 OR pending_rows != 0;"
                         "DELETE FROM _agent_snapshot_ranges;");
        /* The outbox is this agent's: its ops are sent by it, from its journal. */
        buf_puts(&drops, "DELETE FROM _agent_outbox; DELETE FROM _agent_outbox_keys;");
        struct buf what = {0};
        buf_printf(&what, "export copy %s", copy);
        ok = rp_exec(c, "BEGIN", what.p, err, errlen) == 0 && rp_exec(c, drops.p, what.p, err, errlen) == 0 &&
             rp_exec(c, "COMMIT", what.p, err, errlen) == 0;
        buf_free(&what);
    }
    buf_free(&drops);
    sqlite3_close_v2(c);
    if (!ok) replay_copy_remove(copy);
    return ok ? 0 : -1;
}

int replay_copy_state(sqlite3 *db, struct replay_copy_state *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT e.agent_id, e.at_id, s.applied_seq FROM _agent_export e, _agent_state s"
                                " WHERE e.id = 1 AND s.id = 1",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *a = sqlite3_column_text(st, 0), *at = sqlite3_column_text(st, 1);
        snprintf(out->agent_id, sizeof out->agent_id, "%s", a ? (const char *)a : "");
        snprintf(out->at_id, sizeof out->at_id, "%s", at ? (const char *)at : "");
        out->applied_seq = (uint64_t)sqlite3_column_int64(st, 2);
    } else {
        snprintf(err, errlen, "reading its identity and position: %s",
                 rc == SQLITE_DONE ? "no _agent_export/_agent_state row 1" : sqlite3_errmsg(db));
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : -1;
}

static char *mark_text(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    if (!t || !strcmp((const char *)t, "null")) return NULL;
    const unsigned char *v = sqlite3_column_text(st, i + 1);
    struct buf b = {0};
    buf_printf(&b, "%s:%s", t, v ? (const char *)v : "");
    return buf_detach(&b);
}

int replay_copy_marks(sqlite3 *db, const char *table, struct replay_copy_marks *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT schema_hash, mark_cursor_type, mark_cursor, mark_key_type, mark_key"
                                " FROM _agent_tables WHERE name = ?1",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
    }
    if (rc == SQLITE_ROW) {
        const unsigned char *h = sqlite3_column_text(st, 0);
        snprintf(out->schema_hash, sizeof out->schema_hash, "%s", h ? (const char *)h : "");
        out->mark_cursor = mark_text(st, 1);
        out->mark_key = mark_text(st, 3);
    } else if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "table %s: reading its marks: %s", table, sqlite3_errmsg(db));
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

void replay_copy_marks_free(struct replay_copy_marks *m)
{
    free(m->mark_cursor);
    free(m->mark_key);
    memset(m, 0, sizeof *m);
}

int replay_copy_set_at(sqlite3 *db, const char *id, const char *kind, int64_t at_ms, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    int ok = sqlite3_prepare_v2(db, "UPDATE _agent_export SET at_id = ?1, at_kind = ?2, at_ms = ?3", -1, &st,
                                NULL) == SQLITE_OK;
    if (ok) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, at_ms);
        ok = sqlite3_step(st) == SQLITE_DONE;
    }
    if (!ok) snprintf(err, errlen, "recording the %s %s: %s", kind, id, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return ok ? 0 : -1;
}

/* The metadata tables' columns as one line of text, to compare two layouts. */
static const char meta_columns_sql[] =
    "SELECT coalesce(group_concat(c, ' '), '') FROM (SELECT m.name || '.' || p.name AS c"
    " FROM sqlite_master m, pragma_table_info(m.name) p WHERE m.type = 'table'"
    " AND m.name IN ('_agent_state', '_agent_export', '_agent_tables', '_agent_columns') ORDER BY 1)";

static char *query_text(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    char *out = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *s = sqlite3_column_text(st, 0);
        out = xstrdup(s ? (const char *)s : "");
    } else {
        snprintf(err, errlen, "%s: %s", sql, rc == SQLITE_DONE ? "no row" : sqlite3_errmsg(db));
    }
    sqlite3_finalize(st);
    return out;
}

int replay_copy_check(sqlite3 *src, sqlite3 *dst, const char *path, char *err, size_t errlen)
{
    int64_t ver = 0, other = 0;
    if (query_int(src, "PRAGMA user_version", &ver, err, errlen) != 0 ||
        query_int(src, "SELECT count(*) FROM sqlite_master WHERE type NOT IN ('table', 'index')", &other, err,
                  errlen) != 0)
        return -1;
    char *smeta = query_text(src, meta_columns_sql, err, errlen);
    char *dmeta = smeta ? query_text(dst, meta_columns_sql, err, errlen) : NULL;
    if (!dmeta) {
        free(smeta);
        return -1;
    }
    const char *why = ver != REPLAY_SCHEMA_VERSION   ? "has another schema version"
                      : other != 0                  ? "holds triggers or views"
                      : strcmp(smeta, dmeta) != 0   ? "has metadata tables of another layout"
                                                    : NULL;
    free(smeta);
    free(dmeta);
    if (why) snprintf(err, errlen, "%s: the snapshot's database %s", path, why);
    return why ? -1 : 0;
}

int replay_copy_adopt(sqlite3 *src, sqlite3 *dst, const char *path, const char *id, int64_t at_ms, char *err,
                      size_t errlen)
{
    sqlite3_stmt *rd = NULL, *wr = NULL;
    int ok = sqlite3_prepare_v2(dst,
                                "SELECT applied_seq, base_seq, created_ms, (SELECT agent_id FROM _agent_export)"
                                " FROM _agent_state WHERE id = 1",
                                -1, &rd, NULL) == SQLITE_OK &&
             sqlite3_step(rd) == SQLITE_ROW;
    if (!ok) {
        snprintf(err, errlen, "cache.db: reading its state: %s", sqlite3_errmsg(dst));
        sqlite3_finalize(rd);
        return -1;
    }
    /* The copy replaces cache.db whole: open offline writes would lose their
     * outbox rows while their records stay in the journal. */
    int64_t open = 0;
    if (query_int(dst, "SELECT count(*) FROM _agent_outbox WHERE state IN ('pending', 'sent')", &open, err,
                  errlen) != 0) {
        sqlite3_finalize(rd);
        return -1;
    }
    if (open) {
        snprintf(err, errlen, "%s: cache.db has %lld open offline writes (iptv-agent outbox): an import would lose "
                 "them; let them be sent, or drop them, then import", path, (long long)open);
        sqlite3_finalize(rd);
        return -1;
    }
    err[0] = '\0';
    ok = rp_exec(src, "BEGIN", path, err, errlen) == 0 &&
         rp_exec(src, "DELETE FROM _agent_outbox; DELETE FROM _agent_outbox_keys", path, err, errlen) == 0 &&
         sqlite3_prepare_v2(src, "UPDATE _agent_state SET applied_seq = ?1, base_seq = ?2, created_ms = ?3 WHERE id = 1",
                            -1, &wr, NULL) == SQLITE_OK;
    if (ok) {
        for (int i = 1; i <= 3; i++) sqlite3_bind_int64(wr, i, sqlite3_column_int64(rd, i - 1));
        ok = sqlite3_step(wr) == SQLITE_DONE;
        if (ok && sqlite3_changes(src) != 1) {
            snprintf(err, errlen, "%s: the snapshot's database has no _agent_state row 1", path);
            ok = 0;
        }
        sqlite3_finalize(wr);
        wr = NULL;
    }
    /* The cache is at the file's id: the manifest names the content, whatever
     * the database inside says. */
    ok = ok && sqlite3_prepare_v2(src,
                                  "UPDATE _agent_export SET agent_id = ?1, at_ms = ?2, at_id = ?3,"
                                  " at_kind = 'snapshot' WHERE id = 1",
                                  -1, &wr, NULL) == SQLITE_OK;
    if (ok) {
        sqlite3_bind_text(wr, 1, (const char *)sqlite3_column_text(rd, 3), -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(wr, 2, at_ms);
        sqlite3_bind_text(wr, 3, id, -1, SQLITE_STATIC);
        ok = sqlite3_step(wr) == SQLITE_DONE;
        if (ok && sqlite3_changes(src) != 1) {
            snprintf(err, errlen, "%s: the snapshot's database has no _agent_export row 1", path);
            ok = 0;
        }
    }
    if (!ok && !err[0]) snprintf(err, errlen, "%s: preparing the snapshot: %s", path, sqlite3_errmsg(src));
    ok = ok && rp_exec(src, "COMMIT", path, err, errlen) == 0;
    if (!ok) sqlite3_exec(src, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_finalize(rd);
    sqlite3_finalize(wr);
    return ok ? 0 : -1;
}
