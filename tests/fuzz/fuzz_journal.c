/* fuzz_journal.c — libFuzzer target for the journal's readers.
 *
 * Input: first byte 'S' and the rest is a whole segment file (written as
 * segment 1 in a private directory and iterated with journal_reader_next, every
 * record decoded by its type); any other first byte selects a record type
 * (byte % 10: 0 .. JOURNAL_SNAPSHOT_RANGE) and the rest is a raw payload fed straight to the decoders, which
 * the CRCs would otherwise keep the fuzzer away from. Seeds: tests/fuzz/corpus/
 * journal/, made by test_journal's test_fuzz_corpus_seeds. Run: tests/fuzz/run.sh. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "journal/journal.h"
#include "journal/rows.h"

/* libFuzzer's entry points take no context, so the scratch directory made once
 * at start-up is the one piece of process state here. */
static char dir[256];
static char seg[300];

static void cleanup(void)
{
    unlink(seg);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/fuzz_journal.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(dir)) abort();
    snprintf(seg, sizeof seg, "%s/00000000000000000001.seg", dir);
    atexit(cleanup);
    return 0;
}

static void decode(int type, const unsigned char *p, size_t n)
{
    char err[256];
    switch (type) {
    case JOURNAL_SCHEMA: {
        struct journal_schema s;
        if (journal_decode_schema(p, n, &s, err, sizeof err) == 0) {
            for (uint32_t i = 0; i < s.ncols; i++)
                if (strlen(s.cols[i].name) == 0 || !journal_coltype_name(s.cols[i].type)) abort();
            journal_schema_free(&s);
        }
        break;
    }
    case JOURNAL_SNAPSHOT_BEGIN: {
        uint64_t e;
        journal_decode_snapshot_begin(p, n, &e, err, sizeof err);
        break;
    }
    case JOURNAL_SNAPSHOT_END: {
        struct journal_snapshot_end e;
        journal_decode_snapshot_end(p, n, &e, err, sizeof err);
        break;
    }
    case JOURNAL_OP: {
        struct journal_op op;
        if (journal_decode_op(p, n, &op, err, sizeof err) != 0) break;
        /* What the decoder accepts is what the builder accepts, inside the payload. */
        if (!journal_op_kind_name(op.kind) || op.nparams == 0 || op.params[0] != '{' || op.nanswer == 0 ||
            op.params < (const char *)p || op.params + op.nparams > (const char *)p + n ||
            (const unsigned char *)op.changeset < p ||
            (const unsigned char *)op.changeset + op.nchangeset > p + n ||
            op.answer < (const char *)p || op.answer + op.nanswer > (const char *)p + n)
            abort();
        /* A decoded op encodes and decodes again to the same fields (not always
         * the same bytes: a varint may have been written longer than needed). */
        struct journal_payload pl = {0};
        struct journal_op again;
        if (journal_payload_op(&pl, &op, err, sizeof err) != 0 ||
            journal_decode_op(pl.p, pl.len, &again, err, sizeof err) != 0 || again.kind != op.kind ||
            again.nparams != op.nparams || memcmp(again.params, op.params, op.nparams) != 0 ||
            again.nchangeset != op.nchangeset ||
            (op.nchangeset && memcmp(again.changeset, op.changeset, op.nchangeset) != 0) ||
            again.nanswer != op.nanswer || memcmp(again.answer, op.answer, op.nanswer) != 0)
            abort();
        journal_payload_free(&pl);
        break;
    }
    case JOURNAL_OP_STATE: {
        struct journal_op_state_rec st;
        if (journal_decode_op_state(p, n, &st, err, sizeof err) != 0) break;
        if (st.op_id == 0 || !journal_op_state_name(st.state) || st.nmessage > JOURNAL_OP_MESSAGE_MAX ||
            st.message < (const char *)p || st.message + st.nmessage > (const char *)p + n)
            abort();
        struct journal_payload pl = {0};
        struct journal_op_state_rec again;
        if (journal_payload_op_state(&pl, &st, err, sizeof err) != 0 ||
            journal_decode_op_state(pl.p, pl.len, &again, err, sizeof err) != 0 || again.op_id != st.op_id ||
            again.state != st.state || again.nmessage != st.nmessage ||
            (st.nmessage && memcmp(again.message, st.message, st.nmessage) != 0))
            abort();
        journal_payload_free(&pl);
        break;
    }
    default: {
        struct journal_page pg;
        if (journal_decode_page(type, p, n, &pg, err, sizeof err) != 0) break;
        /* A decoded range is one the builder would write: INT or NULL, FROM < TO. */
        if ((pg.range_from.type != JOURNAL_NULL && pg.range_from.type != JOURNAL_INT) ||
            (pg.range_to.type != JOURNAL_NULL && pg.range_to.type != JOURNAL_INT) ||
            (pg.range_from.type == JOURNAL_INT && pg.range_to.type == JOURNAL_INT &&
             pg.range_from.i >= pg.range_to.i))
            abort();
        if (pg.rows.nrows == 0) break;
        struct journal_value *v = malloc(pg.rows.ncols * sizeof *v);
        if (!v) abort();
        int rc;
        while ((rc = journal_rows_next(&pg.rows, v, err, sizeof err)) == 1)
            for (uint32_t c = 0; c < pg.rows.ncols; c++)
                if ((v[c].type == JOURNAL_TEXT || v[c].type == JOURNAL_JSON) &&
                    (v[c].s < (const char *)p || v[c].s + v[c].n > (const char *)p + n))
                    abort();   /* a value must stay inside its payload */
        free(v);
        break;
    }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    if (data[0] != 'S') {
        decode(data[0] % 10, data + 1, size - 1);
        return 0;
    }
    FILE *f = fopen(seg, "wb");
    if (!f) abort();
    if (size > 1 && fwrite(data + 1, 1, size - 1, f) != size - 1) abort();
    fclose(f);
    struct journal_reader *r;
    struct journal_record rec;
    char err[512];
    if (journal_reader_open(dir, 0, &r, err, sizeof err) != 0) return 0;
    uint64_t last = 0;
    while (journal_reader_next(r, JOURNAL_SEQ_MAX, &rec, err, sizeof err) == 1) {
        if (last && rec.seq != last + 1) abort();   /* continuity is checked */
        last = rec.seq;
        decode(rec.type, rec.payload, rec.len);
    }
    journal_reader_close(r);
    return 0;
}
