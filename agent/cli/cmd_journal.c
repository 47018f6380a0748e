/* cmd_journal.c — `iptv-agent journal`: ls (segments, sequence ranges, sizes),
 * verify (read and decode everything; exit 1 on damage), cat (records as JSON
 * lines, int64 exact, doubles shortest round trip), compact (retention). */
#include "agent/cli/cmd_journal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/buf.h"
#include "agent/cli/cmd.h"
#include "agent/config/config.h"
#include "agent/base/err.h"
#include "agent/base/json.h"
#include "agent/base/mem.h"
#include "agent/pull/store.h"
#include "journal/journal.h"
#include "journal/rows.h"
#include "replay/replay.h"

static const char usage[] =
    "usage: iptv-agent journal ls\n"
    "       iptv-agent journal verify\n"
    "       iptv-agent journal cat [--from SEQ] [--table T]\n"
    "       iptv-agent journal compact [--applied SEQ]\n"
    "\n"
    "The journal lives in [storage] dir + \"/journal\".\n"
    "  ls       one line per segment: first and last seq, records, raw payload bytes,\n"
    "           bytes on disk, compression ratio; then a total line\n"
    "  verify   read every record, check every CRC, the sequence and every payload;\n"
    "           exit 1 with \"segment N offset M: ...\" on any damage, or when replay\n"
    "           refuses a record (a reserved table name) that cache.db has not skipped\n"
    "  cat      records as JSON lines: seq, type, table and the decoded content\n"
    "  compact  delete the oldest segments that are applied (seq <= SEQ), older than\n"
    "           [storage] retain, and superseded by a later complete snapshot of\n"
    "           every table they hold; SEQ defaults to cache.db's applied position\n"
    "           (--applied can only lower it)\n"
    "Exit: 0 ok, 1 damage or failure, 2 usage.\n";

/* ---- shared reading ----------------------------------------------------------- */

static char *journal_dir(const struct config *cfg)
{
    struct buf b = {0};
    buf_printf(&b, "%s/journal", cfg->storage.dir ? cfg->storage.dir : ".");
    return buf_detach(&b);
}

/* After the reader returned 0: report an incomplete tail, which is not damage. */
static void note_tail(const struct journal_reader *r)
{
    uint64_t seg, off, pending;
    journal_reader_where(r, &seg, &off, &pending);
    if (pending)
        fprintf(stderr, "iptv-agent journal: note: segment %" PRIu64 " offset %" PRIu64
                ": incomplete record of %" PRIu64 " bytes at the end (a torn tail, or a write in"
                " progress); the writer truncates a torn tail when it next opens\n",
                seg, off, pending);
}

static int parse_u64(const char *s, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9') return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) return -1;
    *out = v;
    return 0;
}

/* ---- JSON output of decoded payloads ------------------------------------------ */

static void put_value(struct buf *b, const struct journal_value *v)
{
    switch (v->type) {
    case JOURNAL_NULL: buf_puts(b, "null"); break;
    case JOURNAL_BOOL: buf_puts(b, v->i ? "true" : "false"); break;
    case JOURNAL_INT: buf_printf(b, "%" PRId64, v->i); break;
    case JOURNAL_REAL: json_write_double(b, v->d); break;
    case JOURNAL_TEXT: json_write_string(b, v->s, v->n); break;
    case JOURNAL_JSON: buf_append(b, v->s, v->n); break;
    }
}

/* JSON text from a record, as JSON when it parses (so each line stays one JSON
 * object whatever the writer put there), else as a string. */
static void put_json_text(struct buf *b, const char *s, size_t n)
{
    cJSON *tree = NULL;
    char why[256];
    if (json_parse(s, n, JSON_MAX_DEPTH_DEFAULT, &tree, why, sizeof why) == 0) buf_append(b, s, n);
    else json_write_string(b, s, n);
    cJSON_Delete(tree);
}

/* Rows as "[[...],[...]]"; vals has room for ncols values. */
static int put_rows(struct buf *b, struct journal_rows *rows, char *err, size_t errlen)
{
    struct journal_value *vals = xcalloc(rows->ncols ? rows->ncols : 1, sizeof *vals);
    int rc;
    buf_putc(b, '[');
    for (uint32_t r = 0; (rc = journal_rows_next(rows, vals, err, errlen)) == 1; r++) {
        if (r) buf_putc(b, ',');
        buf_putc(b, '[');
        for (uint32_t c = 0; c < rows->ncols; c++) {
            if (c) buf_putc(b, ',');
            put_value(b, &vals[c]);
        }
        buf_putc(b, ']');
    }
    buf_putc(b, ']');
    free(vals);
    return rc;
}

/* Decode one record into b as the body of a JSON object (after "table").
 * Returns 0, or -1 with err naming what is wrong inside the payload. */
static int put_record(struct buf *b, const struct journal_record *rec, char *err, size_t errlen)
{
    const void *p = rec->payload;
    size_t n = rec->len;
    switch (rec->type) {
    case JOURNAL_SCHEMA: {
        struct journal_schema s;
        if (journal_decode_schema(p, n, &s, err, errlen) != 0) return -1;
        buf_puts(b, ",\"columns\":[");
        for (uint32_t i = 0; i < s.ncols; i++) {
            buf_puts(b, i ? ",{\"name\":" : "{\"name\":");
            json_write_string(b, s.cols[i].name, strlen(s.cols[i].name));
            buf_printf(b, ",\"type\":\"%s\"}", journal_coltype_name(s.cols[i].type));
        }
        buf_puts(b, "],\"key\":");
        if (s.key_col >= 0) json_write_string(b, s.cols[s.key_col].name, strlen(s.cols[s.key_col].name));
        else buf_puts(b, "null");
        buf_puts(b, ",\"cursor\":");
        if (s.cursor_col >= 0)
            json_write_string(b, s.cols[s.cursor_col].name, strlen(s.cols[s.cursor_col].name));
        else buf_puts(b, "null");
        journal_schema_free(&s);
        return 0;
    }
    case JOURNAL_SNAPSHOT_BEGIN: {
        uint64_t expected;
        if (journal_decode_snapshot_begin(p, n, &expected, err, errlen) != 0) return -1;
        buf_printf(b, ",\"snapshot\":%" PRIu64 ",\"expected_rows\":%" PRIu64, rec->seq, expected);
        return 0;
    }
    case JOURNAL_SNAPSHOT_END: {
        struct journal_snapshot_end e;
        if (journal_decode_snapshot_end(p, n, &e, err, errlen) != 0) return -1;
        buf_printf(b, ",\"snapshot\":%" PRIu64 ",\"rows\":%" PRIu64 ",\"mark\":[", e.snapshot_id,
                   e.row_count);
        put_value(b, &e.mark_cursor);
        buf_putc(b, ',');
        put_value(b, &e.mark_key);
        buf_putc(b, ']');
        return 0;
    }
    case JOURNAL_SNAPSHOT_PAGE:
    case JOURNAL_SNAPSHOT_RANGE:
    case JOURNAL_INCREMENTAL_PAGE:
    case JOURNAL_DELETIONS: {
        struct journal_page pg;
        if (journal_decode_page(rec->type, p, n, &pg, err, errlen) != 0) return -1;
        if (rec->type == JOURNAL_SNAPSHOT_PAGE || rec->type == JOURNAL_SNAPSHOT_RANGE)
            buf_printf(b, ",\"snapshot\":%" PRIu64, pg.snapshot_id);
        if (rec->type == JOURNAL_SNAPSHOT_RANGE) {   /* (from, to]; null = unbounded */
            buf_puts(b, ",\"from\":");
            put_value(b, &pg.range_from);
            buf_puts(b, ",\"to\":");
            put_value(b, &pg.range_to);
        }
        if (rec->type == JOURNAL_INCREMENTAL_PAGE) {
            buf_puts(b, ",\"mark\":[");
            put_value(b, &pg.mark_cursor);
            buf_putc(b, ',');
            put_value(b, &pg.mark_key);
            buf_putc(b, ']');
        }
        buf_puts(b, rec->type == JOURNAL_DELETIONS ? ",\"keys\":" : ",\"rows\":");
        return put_rows(b, &pg.rows, err, errlen);
    }
    case JOURNAL_OP: {
        struct journal_op op;
        if (journal_decode_op(p, n, &op, err, errlen) != 0) return -1;
        buf_printf(b, ",\"op\":%" PRIu64 ",\"kind\":\"%s\",\"params\":", rec->seq,
                   journal_op_kind_name(op.kind));
        put_json_text(b, op.params, op.nparams);
        buf_printf(b, ",\"changeset_bytes\":%zu,\"changeset\":\"", op.nchangeset);
        static const char hex[] = "0123456789abcdef";
        for (size_t i = 0; i < op.nchangeset; i++) {
            unsigned char c = ((const unsigned char *)op.changeset)[i];
            buf_putc(b, hex[c >> 4]);
            buf_putc(b, hex[c & 15]);
        }
        buf_puts(b, "\",\"answer\":");
        put_json_text(b, op.answer, op.nanswer);
        return 0;
    }
    case JOURNAL_OP_STATE: {
        struct journal_op_state_rec st;
        if (journal_decode_op_state(p, n, &st, err, errlen) != 0) return -1;
        buf_printf(b, ",\"op\":%" PRIu64 ",\"state\":\"%s\",\"message\":", st.op_id,
                   journal_op_state_name(st.state));
        json_write_string(b, st.message, st.nmessage);
        return 0;
    }
    default:
        snprintf(err, errlen, "unknown record type %d", rec->type);
        return -1;
    }
}

static void record_error(const struct journal_record *rec, const char *why)
{
    fprintf(stderr, "iptv-agent journal: segment %" PRIu64 " offset %" PRIu64 ": seq %" PRIu64
            " (%s, table %s): %s\n", rec->segment, rec->offset, rec->seq,
            journal_type_name(rec->type) ? journal_type_name(rec->type) : "unknown type",
            rec->table, why);
}

/* ---- subcommands -------------------------------------------------------------- */

static int do_cat(const char *dir, uint64_t from, const char *table)
{
    struct journal_reader *r;
    char err[IA_ERRLEN];
    if (journal_reader_open(dir, from, &r, err, sizeof err) != 0) {
        fprintf(stderr, "iptv-agent journal: %s\n", err);
        return 1;
    }
    struct journal_record rec;
    struct buf b = {0};
    int rc, status = 0;
    while ((rc = journal_reader_next(r, JOURNAL_SEQ_MAX, &rec, err, sizeof err)) == 1) {
        if (table && strcmp(table, rec.table) != 0) continue;
        buf_reset(&b);
        const char *tn = journal_type_name(rec.type);
        buf_printf(&b, "{\"seq\":%" PRIu64 ",\"type\":", rec.seq);
        if (tn) buf_printf(&b, "\"%s\"", tn);
        else buf_printf(&b, "%d", rec.type);
        buf_puts(&b, ",\"table\":");
        json_write_string(&b, rec.table, strlen(rec.table));
        if (put_record(&b, &rec, err, sizeof err) != 0) {
            record_error(&rec, err);
            status = 1;
            break;
        }
        buf_puts(&b, "}\n");
        fwrite(b.p, 1, b.len, stdout);
    }
    if (rc < 0) {
        fprintf(stderr, "iptv-agent journal: %s\n", err);
        status = 1;
    } else if (rc == 0) {
        note_tail(r);
    }
    buf_free(&b);
    journal_reader_close(r);
    if (fflush(stdout) != 0) status = 1;
    return status;
}

/* 1 when seq is in the sorted list. */
static int seq_listed(const uint64_t *seqs, size_t n, uint64_t seq)
{
    for (size_t i = 0; i < n; i++)
        if (seqs[i] == seq) return 1;
    return 0;
}

static int do_verify(const struct config *cfg, const char *dir)
{
    struct journal_reader *r;
    char err[IA_ERRLEN];
    /* What cache.db skipped (replay --skip) is not reported as refused again. */
    uint64_t *skipped = NULL;
    size_t nskipped = 0, npassed = 0;
    char **passed = NULL;              /* tables whose records replay passes by */
    struct buf db = {0};
    buf_printf(&db, "%s/cache.db", cfg->storage.dir ? cfg->storage.dir : ".");
    if (replay_skipped_read(db.p, &skipped, &nskipped, err, sizeof err) != 0)
        fprintf(stderr, "iptv-agent journal verify: note: %s\n", err);
    buf_free(&db);
    if (journal_reader_open(dir, 0, &r, err, sizeof err) != 0) {
        fprintf(stderr, "iptv-agent journal verify: %s\n", err);
        free(skipped);
        return 1;
    }
    struct journal_record rec;
    struct buf scratch = {0};
    uint64_t records = 0, first = 0, last = 0, raw = 0, stored = 0, segs = 0, seg = UINT64_MAX, refused = 0;
    int rc;
    while ((rc = journal_reader_next(r, JOURNAL_SEQ_MAX, &rec, err, sizeof err)) == 1) {
        buf_reset(&scratch);
        if (put_record(&scratch, &rec, err, sizeof err) != 0) {
            record_error(&rec, err);
            rc = -2;
            break;
        }
        /* Readable but refused by replay (replay_check_name owns the rule).
         * Replay passes by a skipped record and the later records of its table
         * (they need its SCHEMA): those are noted, not reported. */
        char why[IA_ERRLEN];
        if (replay_check_name(rec.table, why, sizeof why) != 0) {
            size_t t = 0;
            while (t < npassed && strcmp(passed[t], rec.table) != 0) t++;
            if (t == npassed && seq_listed(skipped, nskipped, rec.seq)) {
                passed = xrealloc(passed, (npassed + 1) * sizeof *passed);
                passed[npassed++] = xstrdup(rec.table);
                fprintf(stderr, "iptv-agent journal verify: note: seq %" PRIu64 " (table %s) was skipped by "
                        "`iptv-agent replay --skip`, and with it the later records of that table\n", rec.seq,
                        rec.table);
            } else if (t == npassed) {
                char msg[IA_ERRLEN + 64];
                snprintf(msg, sizeof msg, "replay refuses it: %s; see `iptv-agent replay --skip`", why);
                record_error(&rec, msg);
                refused++;
            }
        }
        if (!records) first = rec.seq;
        if (rec.segment != seg) {
            seg = rec.segment;
            segs++;
        }
        last = rec.seq;
        records++;
        raw += rec.len;
        stored += rec.stored;
    }
    buf_free(&scratch);
    free(skipped);
    for (size_t i = 0; i < npassed; i++) free(passed[i]);
    free(passed);
    if (rc == -1) fprintf(stderr, "iptv-agent journal verify: %s\n", err);
    if (rc == 0 && refused) {
        note_tail(r);
        printf("journal readable, but replay refuses %" PRIu64 " of its %" PRIu64 " records (listed above)\n",
               refused, records);
        rc = -3;
    } else if (rc == 0) {
        note_tail(r);
        if (records)
            printf("journal ok: %" PRIu64 " records (seq %" PRIu64 "..%" PRIu64 ") in %" PRIu64
                   " segments, %" PRIu64 " raw payload bytes in %" PRIu64 " record bytes\n",
                   records, first, last, segs, raw, stored);
        else
            printf("journal ok: no records\n");
    }
    journal_reader_close(r);
    return rc == 0 ? 0 : 1;
}

struct seg_stats {
    uint64_t first, last, records, raw, stored;
};

static void ls_line(const char *name, const struct seg_stats *s)
{
    char range[64];
    if (s->records) snprintf(range, sizeof range, "%" PRIu64 "..%" PRIu64, s->first, s->last);
    else snprintf(range, sizeof range, "-");
    printf("%-24s %-22s %9" PRIu64 " %14" PRIu64 " %14" PRIu64 " %6.2f\n", name, range, s->records,
           s->raw, s->stored, s->stored ? (double)s->raw / (double)s->stored : 0.0);
}

static int do_ls(const char *dir)
{
    char err[IA_ERRLEN];
    uint64_t *segs;
    size_t n;
    if (journal_segments(dir, &segs, &n, err, sizeof err) != 0) {
        fprintf(stderr, "iptv-agent journal ls: %s\n", err);
        return 1;
    }
    struct journal_reader *r = NULL;
    if (n && journal_reader_open(dir, 0, &r, err, sizeof err) != 0) {
        fprintf(stderr, "iptv-agent journal ls: %s\n", err);
        free(segs);
        return 1;
    }
    printf("%-24s %-22s %9s %14s %14s %6s\n", "segment", "seq", "records", "raw_bytes",
           "stored_bytes", "ratio");
    struct seg_stats total = {0};
    struct journal_record rec;
    int rc = 0, have = 0;
    for (size_t i = 0; i < n && rc >= 0; i++) {
        struct seg_stats s = {0};
        /* Records of this segment; the one read ahead belongs to a later one. */
        for (;;) {
            if (!have) {
                rc = journal_reader_next(r, JOURNAL_SEQ_MAX, &rec, err, sizeof err);
                if (rc <= 0) break;
                have = 1;
            }
            if (rec.segment != segs[i]) break;
            if (!s.records) s.first = rec.seq;
            s.last = rec.seq;
            s.records++;
            s.raw += rec.len;
            s.stored += rec.stored;
            have = 0;
        }
        char name[JOURNAL_SEGMENT_NAME_LEN];
        journal_segment_name(segs[i], name);
        ls_line(name, &s);
        if (!total.records) total.first = s.first;
        if (s.records) total.last = s.last;
        total.records += s.records;
        total.raw += s.raw;
        total.stored += s.stored;
    }
    if (rc >= 0) ls_line("total", &total);
    if (rc < 0) fprintf(stderr, "iptv-agent journal ls: %s\n", err);
    else if (r) note_tail(r);
    journal_reader_close(r);
    free(segs);
    return rc < 0 ? 1 : 0;
}

static int do_compact(const struct config *cfg, uint64_t applied)
{
    struct journal_compact_result res;
    char err[IA_ERRLEN];
    struct store st;
    if (store_open(cfg, 0, &st, err, sizeof err) != 0) {
        fprintf(stderr, "iptv-agent journal compact: %s\n", err);
        return 1;
    }
    int rc = store_compact(&st, cfg, applied, NULL, &res, err, sizeof err);
    store_close(&st);
    if (rc != 0) {
        fprintf(stderr, "iptv-agent journal compact: %s\n", err);
        return 1;
    }
    printf("deleted %zu segments (%" PRIu64 " bytes), kept %zu", res.deleted, res.freed, res.kept);
    if (res.kept) printf(": %s", res.reason);
    printf("\n");
    return 0;
}

int cmd_journal(const struct config *cfg, int argc, char **argv)
{
    if (cmd_wants_help(argc, argv)) {
        fputs(usage, stdout);
        return 0;
    }
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    const char *sub = argv[1], *table = NULL;
    uint64_t from = 0, applied = 0;
    int have_applied = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        int is_from = !strcmp(sub, "cat") && !strcmp(a, "--from");
        int is_applied = !strcmp(sub, "compact") && !strcmp(a, "--applied");
        if ((is_from || is_applied) && !val) {
            fprintf(stderr, "iptv-agent journal %s: %s needs a value: a journal sequence number\n%s", sub, a, usage);
            return 2;
        }
        if ((is_from || is_applied) && parse_u64(val, is_from ? &from : &applied) != 0) {
            /* The flag is right; the value is not. */
            fprintf(stderr, "iptv-agent journal %s: %s: invalid value \"%s\": expected a journal sequence number "
                    "(a whole number from 0 to %" PRIu64 ")\n", sub, a, val, UINT64_MAX);
            return 2;
        }
        if (is_from) i++;
        else if (!strcmp(sub, "cat") && !strcmp(a, "--table") && val) table = argv[++i];
        else if (is_applied) {
            have_applied = 1;
            i++;
        } else {
            fprintf(stderr, "iptv-agent journal %s: unexpected argument %s\n%s", sub, a, usage);
            return 2;
        }
    }
    char *dir = journal_dir(cfg);
    int rc;
    if (!strcmp(sub, "ls")) rc = do_ls(dir);
    else if (!strcmp(sub, "verify")) rc = do_verify(cfg, dir);
    else if (!strcmp(sub, "cat")) rc = do_cat(dir, from, table);
    else if (!strcmp(sub, "compact")) {
        rc = do_compact(cfg, have_applied ? applied : UINT64_MAX);   /* --applied can only lower it */
    } else {
        fprintf(stderr, "iptv-agent journal: unknown subcommand \"%s\"\n%s", sub, usage);
        rc = 2;
    }
    free(dir);
    return rc;
}
