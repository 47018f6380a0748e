/* ranges.c — the COVERAGE of a pending snapshot: the union of the key intervals
 * (FROM, TO] its SNAPSHOT_RANGE records proved read (_agent_snapshot_ranges,
 * migration 8). Parallel key-range streams journal their pages interleaved;
 * after a crash the puller fetches exactly the gaps between these intervals.
 *
 * One row per maximal interval: an added interval that touches one (its FROM
 * is that one's hi, or its TO that one's lo) is merged with it, so a table
 * holds about one row per stream. lo NULL is unbounded below, hi NULL above.
 * Intervals never overlap: an added one that would is refused (a record error),
 * because two streams reading the same keys means the puller lost track.
 * All writes happen on the writer connection inside the batch transaction, so
 * coverage commits with the rows that justify it (invariant 3, as marks). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/mem.h"
#include "replay/apply.h"

/* "-inf"/"+inf" or the integer, for messages. */
static const char *bound_str(char *out, size_t n, int inf, int64_t v, int below)
{
    if (inf) snprintf(out, n, "%s", below ? "-inf" : "+inf");
    else snprintf(out, n, "%" PRId64, v);
    return out;
}

static void bind_bound(sqlite3_stmt *st, int i, const struct journal_value *v)
{
    if (v->type == JOURNAL_INT) sqlite3_bind_int64(st, i, v->i);
    else sqlite3_bind_null(st, i);
}

int rp_range_check(const struct journal_record *rec, const struct journal_value *from,
                   const struct journal_value *to, const struct journal_value *key, uint32_t row, char *err,
                   size_t errlen)
{
    if (key->type == JOURNAL_INT && (from->type == JOURNAL_NULL || key->i > from->i) &&
        (to->type == JOURNAL_NULL || key->i <= to->i))
        return 0;
    char f[24], t[24], k[64];
    bound_str(f, sizeof f, from->type == JOURNAL_NULL, from->i, 1);
    bound_str(t, sizeof t, to->type == JOURNAL_NULL, to->i, 0);
    switch (key->type) {
    case JOURNAL_INT: snprintf(k, sizeof k, "%" PRId64, key->i); break;
    case JOURNAL_TEXT: snprintf(k, sizeof k, "text \"%.*s\"", key->n > 32 ? 32 : (int)key->n, key->s); break;
    case JOURNAL_REAL: snprintf(k, sizeof k, "real %.17g", key->d); break;
    case JOURNAL_BOOL: snprintf(k, sizeof k, "bool %s", key->i ? "true" : "false"); break;
    case JOURNAL_JSON: snprintf(k, sizeof k, "json %.*s", key->n > 32 ? 32 : (int)key->n, key->s); break;
    default: snprintf(k, sizeof k, "NULL"); break;   /* refused before as a NULL key */
    }
    return rp_rec_fail(rec, err, errlen, "row %u: key %s is not an INT inside the snapshot range (%s, %s]", row, k,
                       f, t);
}

int rp_range_add(struct replay *r, const struct journal_record *rec, const char *table,
                 const struct journal_value *from, const struct journal_value *to, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    /* (F, T] and (L, H] overlap when F < H and L < T, an unbounded end passing. */
    int rc = sqlite3_prepare_v2(r->db,
                                "SELECT lo, hi FROM _agent_snapshot_ranges WHERE tbl = ?1"
                                " AND (hi IS NULL OR ?2 IS NULL OR ?2 < hi) AND (lo IS NULL OR ?3 IS NULL OR lo < ?3)"
                                " LIMIT 1",
                                -1, &st, NULL);
    if (rc != SQLITE_OK) return rp_sql_fail(r, rec, err, errlen, "reading the snapshot ranges");
    sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
    bind_bound(st, 2, from);
    bind_bound(st, 3, to);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        char f[24], t[24], l[24], h[24];
        bound_str(f, sizeof f, from->type == JOURNAL_NULL, from->i, 1);
        bound_str(t, sizeof t, to->type == JOURNAL_NULL, to->i, 0);
        bound_str(l, sizeof l, sqlite3_column_type(st, 0) == SQLITE_NULL, sqlite3_column_int64(st, 0), 1);
        bound_str(h, sizeof h, sqlite3_column_type(st, 1) == SQLITE_NULL, sqlite3_column_int64(st, 1), 0);
        sqlite3_finalize(st);
        return rp_rec_fail(rec, err, errlen, "snapshot range (%s, %s] overlaps (%s, %s] journaled before", f, t, l,
                           h);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return rp_sql_fail(r, rec, err, errlen, "reading the snapshot ranges");
    /* Absorb the neighbours it touches: one ending at FROM, one starting at TO
     * (NULL bounds compare equal to nothing, so an unbounded end has none). */
    struct journal_value lo = *from, hi = *to;
    rc = sqlite3_prepare_v2(r->db,
                            "DELETE FROM _agent_snapshot_ranges WHERE tbl = ?1 AND (hi = ?2 OR lo = ?3)"
                            " RETURNING lo, hi",
                            -1, &st, NULL);
    if (rc != SQLITE_OK) return rp_sql_fail(r, rec, err, errlen, "merging the snapshot ranges");
    sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
    bind_bound(st, 2, from);
    bind_bound(st, 3, to);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int lo_null = sqlite3_column_type(st, 0) == SQLITE_NULL, hi_null = sqlite3_column_type(st, 1) == SQLITE_NULL;
        if (!hi_null && from->type == JOURNAL_INT && sqlite3_column_int64(st, 1) == from->i) {
            lo.type = lo_null ? JOURNAL_NULL : JOURNAL_INT;
            lo.i = sqlite3_column_int64(st, 0);
        } else {
            hi.type = hi_null ? JOURNAL_NULL : JOURNAL_INT;
            hi.i = sqlite3_column_int64(st, 1);
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return rp_sql_fail(r, rec, err, errlen, "merging the snapshot ranges");
    rc = sqlite3_prepare_v2(r->db, "INSERT INTO _agent_snapshot_ranges (tbl, lo, hi) VALUES (?1, ?2, ?3)", -1, &st,
                            NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
        bind_bound(st, 2, &lo);
        bind_bound(st, 3, &hi);
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : rp_sql_fail(r, rec, err, errlen, "writing the snapshot ranges");
}

int rp_ranges_clear(struct replay *r, const struct journal_record *rec, const char *table, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(r->db, "DELETE FROM _agent_snapshot_ranges WHERE tbl = ?1", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : rp_sql_fail(r, rec, err, errlen, "clearing the snapshot ranges");
}

int rp_ranges_read(sqlite3 *db, const char *table, struct replay_range **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    /* Unbounded below first, then by lo. */
    int rc = sqlite3_prepare_v2(db,
                                "SELECT lo, hi FROM _agent_snapshot_ranges WHERE tbl = ?1"
                                " ORDER BY lo IS NOT NULL, lo",
                                -1, &st, NULL);
    if (rc != SQLITE_OK) return -1;
    sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
    size_t cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 4;
            *out = xrealloc(*out, cap * sizeof **out);
        }
        struct replay_range *g = &(*out)[(*n)++];
        g->lo_inf = sqlite3_column_type(st, 0) == SQLITE_NULL;
        g->hi_inf = sqlite3_column_type(st, 1) == SQLITE_NULL;
        g->lo = g->lo_inf ? 0 : sqlite3_column_int64(st, 0);
        g->hi = g->hi_inf ? 0 : sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE) return 0;
    free(*out);
    *out = NULL;
    *n = 0;
    return -1;
}
