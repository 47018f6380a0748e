/* compact.c — retention: deleting old segments that nothing needs any more.
 *
 * Invariant (architecture.md 1 and 5, never drop an unapplied record): a
 * segment is deleted only if every record in it has seq <= the applied position
 * the caller read from cache.db, and only as part of the oldest run of segments
 * (a hole would be a sequence gap, i.e. damage). A segment is also kept while
 * any table it names lacks a SCHEMA record and a complete snapshot (BEGIN and the
 * END carrying its id) later than the segment, so the journal alone can always
 * rebuild every table; and while it was last written less than retain_ms ago
 * (checked before the tables, so a reason naming a table (res->table) means
 * only a later complete snapshot of that table would let the segment go).
 * A segment holding the `op` record of an open offline write (no end state —
 * done, conflict, rejected, dropped — journaled for it yet) is kept too: the
 * op lives in cache.db, but a rebuild needs its record (docs/outbox.md,
 * Bounds). Once the op ends, its segment may go by the rules above.
 * The newest segment is never deleted: it fixes the next sequence number.
 * The whole journal is read and verified first: damage stops compaction.
 * Tests: test_journal.c test_compact_rules, test_journal_cli.c test_compact. */
#include "journal/journal.h"
#include "journal/rows.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "journal/format.h"

struct table_state {
    char name[JOURNAL_TABLE_MAX + 1];
    uint64_t open_begin;       /* seq of the latest SNAPSHOT_BEGIN */
    uint64_t complete;         /* id of the latest snapshot with its END */
    uint64_t schema;           /* seq of the latest SCHEMA */
    uint64_t open_bytes;       /* record bytes of the open snapshot so far */
    uint64_t complete_bytes;   /* record bytes of the latest complete snapshot */
    size_t last_seg;           /* segment index + 1 it was last noted in */
};

struct seg_state {
    uint64_t first, last;      /* last = first - 1 when empty */
    size_t *tables;            /* indices into the table states */
    size_t ntables, cap;
};

struct open_op {
    uint64_t id;               /* seq of its op record */
    size_t table;              /* index into the table states */
};

struct scan {
    struct table_state *t;
    size_t nt, capt;
    struct seg_state *s;
    size_t ns;
    struct open_op *ops;       /* open offline writes, by id */
    size_t nops, capops;
};

/* An op record opens an op; an end state of the same table closes it. */
static int note_op(struct scan *sc, const struct journal_record *rec, size_t ti, char *err, size_t errlen)
{
    if (rec->type == JOURNAL_OP) {
        if (sc->nops == sc->capops) {
            size_t cap = sc->capops ? sc->capops * 2 : 16;
            struct open_op *p = realloc(sc->ops, cap * sizeof *p);
            if (!p) {
                snprintf(err, errlen, "journal compact: out of memory");
                return -1;
            }
            sc->ops = p;
            sc->capops = cap;
        }
        sc->ops[sc->nops++] = (struct open_op){.id = rec->seq, .table = ti};
        return 0;
    }
    struct journal_op_state_rec s;
    char why[JF_WHY_MAX];
    if (journal_decode_op_state(rec->payload, rec->len, &s, why, sizeof why) != 0) {
        snprintf(err, errlen, "segment %llu offset %llu: seq %llu: %s", (unsigned long long)rec->segment,
                 (unsigned long long)rec->offset, (unsigned long long)rec->seq, why);
        return -1;
    }
    if (s.state == JOURNAL_OPS_SENDING || s.state == JOURNAL_OPS_PENDING) return 0;
    /* Replay refuses an end of another table's op: it does not close it. */
    for (size_t i = 0; i < sc->nops; i++)
        if (sc->ops[i].id == s.op_id && sc->ops[i].table == ti) {
            memmove(&sc->ops[i], &sc->ops[i + 1], (sc->nops - i - 1) * sizeof *sc->ops);
            sc->nops--;
            break;
        }
    return 0;
}

static long table_index(struct scan *sc, const char *name)
{
    for (size_t i = 0; i < sc->nt; i++)
        if (strcmp(sc->t[i].name, name) == 0) return (long)i;
    if (sc->nt == sc->capt) {
        size_t cap = sc->capt ? sc->capt * 2 : 16;
        struct table_state *t = realloc(sc->t, cap * sizeof *t);
        if (!t) return -1;
        sc->t = t;
        sc->capt = cap;
    }
    struct table_state *t = &sc->t[sc->nt];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    return (long)sc->nt++;
}

static int note_table(struct seg_state *s, size_t si, struct table_state *t, size_t ti)
{
    if (t->last_seg == si + 1) return 0;
    t->last_seg = si + 1;
    if (s->ntables == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        size_t *p = realloc(s->tables, cap * sizeof *p);
        if (!p) return -1;
        s->tables = p;
        s->cap = cap;
    }
    s->tables[s->ntables++] = ti;
    return 0;
}

/* Read every record; fill per-segment and per-table facts. */
static int scan_journal(const char *dir, struct scan *sc, char *err, size_t errlen)
{
    struct journal_reader *r;
    if (journal_reader_open(dir, 0, &r, err, errlen) != 0) return -1;
    struct journal_record rec;
    int rc;
    size_t si = 0;
    while ((rc = journal_reader_next(r, JOURNAL_SEQ_MAX, &rec, err, errlen)) == 1) {
        while (si < sc->ns && sc->s[si].first < rec.segment) si++;
        long ti = table_index(sc, rec.table);
        if (ti < 0) {
            rc = -1;
            snprintf(err, errlen, "journal compact: out of memory");
            break;
        }
        struct table_state *t = &sc->t[ti];
        if (si < sc->ns && sc->s[si].first == rec.segment) {
            sc->s[si].last = rec.seq;
            if (note_table(&sc->s[si], si, t, (size_t)ti) != 0) {
                rc = -1;
                snprintf(err, errlen, "journal compact: out of memory");
                break;
            }
        }
        if (rec.type == JOURNAL_OP || rec.type == JOURNAL_OP_STATE) {
            if (note_op(sc, &rec, (size_t)ti, err, errlen) != 0) {
                rc = -1;
                break;
            }
        } else if (rec.type == JOURNAL_SCHEMA) {
            t->schema = rec.seq;
        } else if (rec.type == JOURNAL_SNAPSHOT_BEGIN) {
            t->open_begin = rec.seq;
            t->open_bytes = rec.stored;
        } else if (rec.type == JOURNAL_SNAPSHOT_PAGE || rec.type == JOURNAL_SNAPSHOT_RANGE) {
            t->open_bytes += rec.stored;
        } else if (rec.type == JOURNAL_SNAPSHOT_END) {
            struct journal_snapshot_end end;
            char why[JF_WHY_MAX];
            if (journal_decode_snapshot_end(rec.payload, rec.len, &end, why, sizeof why) != 0) {
                snprintf(err, errlen, "segment %llu offset %llu: seq %llu: %s",
                         (unsigned long long)rec.segment, (unsigned long long)rec.offset,
                         (unsigned long long)rec.seq, why);
                rc = -1;
                break;
            }
            if (end.snapshot_id == t->open_begin) {
                t->complete = end.snapshot_id;
                t->complete_bytes = t->open_bytes + rec.stored;
            }
        }
    }
    journal_reader_close(r);
    return rc < 0 ? -1 : 0;
}

/* 1 when segment i may go; 0 with reason when it must stay. */
static int deletable(const char *dir, struct scan *sc, size_t i, uint64_t applied, int64_t retain_ms,
                     struct journal_compact_result *res)
{
    char *reason = res->reason;
    size_t rlen = sizeof res->reason;
    struct seg_state *s = &sc->s[i];
    unsigned long long first = (unsigned long long)s->first, last = (unsigned long long)s->last;
    if (i + 1 == sc->ns) {
        snprintf(reason, rlen, "segment %llu is the newest", first);
        return 0;
    }
    if (s->last > applied) {
        snprintf(reason, rlen, "segment %llu holds seq %llu..%llu, applied position is %llu", first,
                 first, last, (unsigned long long)applied);
        return 0;
    }
    char path[JF_PATH_MAX];
    struct stat st;
    jf_seg_path(path, sizeof path, dir, s->first);
    if (stat(path, &st) != 0) {
        snprintf(reason, rlen, "segment %llu: %s", first, strerror(errno));
        return 0;
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t age_ms = ((int64_t)now.tv_sec - (int64_t)st.st_mtim.tv_sec) * 1000 +
                     ((int64_t)now.tv_nsec - (int64_t)st.st_mtim.tv_nsec) / 1000000;
    if (age_ms < retain_ms) {
        snprintf(reason, rlen, "segment %llu was last written %llds ago, retain is %llds", first,
                 (long long)(age_ms / 1000), (long long)(retain_ms / 1000));
        return 0;
    }
    /* ops are in id order: the oldest open one is the first. */
    if (sc->nops && sc->ops[0].id <= s->last) {
        snprintf(reason, rlen, "segment %llu holds the op record of open op %llu (table %.100s)", first,
                 (unsigned long long)sc->ops[0].id, sc->t[sc->ops[0].table].name);
        return 0;
    }
    for (size_t k = 0; k < s->ntables; k++) {
        const struct table_state *t = &sc->t[s->tables[k]];
        if (t->complete <= s->last || t->schema <= s->last) {
            snprintf(reason, rlen, "segment %llu: table %.100s has no %s after seq %llu", first, t->name,
                     t->schema <= s->last ? "schema record" : "complete snapshot", last);
            snprintf(res->table, sizeof res->table, "%s", t->name);
            return 0;
        }
    }
    return 1;
}

int journal_compact(const char *dir, uint64_t applied_seq, int64_t retain_ms,
                    struct journal_compact_result *res, char *err, size_t errlen)
{
    memset(res, 0, sizeof *res);
    struct scan sc = {0};
    uint64_t *segs;
    size_t n;
    if (jf_list(dir, &segs, &n, err, errlen) != 0) return -1;
    int rc = -1;
    sc.s = calloc(n ? n : 1, sizeof *sc.s);
    if (!sc.s) {
        snprintf(err, errlen, "journal compact: out of memory");
        goto out;
    }
    sc.ns = n;
    for (size_t i = 0; i < n; i++) {
        sc.s[i].first = segs[i];
        sc.s[i].last = segs[i] - 1;
    }
    if (scan_journal(dir, &sc, err, errlen) != 0) goto out;
    snprintf(res->reason, sizeof res->reason, "the journal is empty");
    for (size_t i = 0; i < n; i++) {
        if (!deletable(dir, &sc, i, applied_seq, retain_ms, res)) break;
        char path[JF_PATH_MAX];
        struct stat st;
        jf_seg_path(path, sizeof path, dir, segs[i]);
        uint64_t size = stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
        if (unlink(path) != 0) {
            snprintf(err, errlen, "segment %llu: unlink %s: %s", (unsigned long long)segs[i], path,
                     strerror(errno));
            goto out;
        }
        res->deleted++;
        res->freed += size;
    }
    res->kept = n - res->deleted;
    for (size_t i = res->deleted; i < n; i++) {
        char path[JF_PATH_MAX];
        struct stat st;
        jf_seg_path(path, sizeof path, dir, segs[i]);
        if (stat(path, &st) == 0) res->kept_bytes += (uint64_t)st.st_size;
    }
    for (size_t i = 0; i < sc.nt; i++) res->snapshot_bytes += sc.t[i].complete_bytes;
    if (res->deleted) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 || fsync(dfd) != 0) {
            snprintf(err, errlen, "journal %s: fsync of the directory: %s", dir, strerror(errno));
            if (dfd >= 0) close(dfd);
            goto out;
        }
        close(dfd);
    }
    rc = 0;
out:
    for (size_t i = 0; i < sc.ns; i++) free(sc.s[i].tables);
    free(sc.s);
    free(sc.t);
    free(sc.ops);
    free(segs);
    return rc;
}
