/* tables.c — the shapes iptv-diff generates statements over (a copy of the
 * columns of tests/fake_portal/gen.c that statements use, with their types),
 * its PRNG and the statements' envelope. media lists a subset of its 74 columns: every kind of value
 * (int64 ids beyond 2^53, reals, booleans, dates, timestamps, JSON) is there. */
#include "tests/diff/diff.h"

#include <string.h>

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

enum { T_CAT, T_PKG, T_CHAN, T_SUB, T_TERM, T_MEDIA, T_PROG, T_PCAT };

static const struct dcol C_CAT[] = {
    {"id", DT_INT, 0, 0}, {"name", DT_TEXT, 0, 0}, {"sort_order", DT_INT, 0, 0},
};
static const struct dcol C_PKG[] = {
    {"id", DT_INT, 0, 0}, {"name", DT_TEXT, 0, 0}, {"paid", DT_BOOL, 0, 1},
};
static const struct dcol C_CHAN[] = {
    {"id", DT_INT, 0, 0},          {"name", DT_TEXT, 0, 0},       {"url", DT_TEXT, 0, 0},
    {"epg_id", DT_TEXT, 1, 0},     {"logo", DT_TEXT, 1, 0},       {"is_tv", DT_BOOL, 0, 1},
    {"is_radio", DT_BOOL, 0, 1},   {"sort_order", DT_INT, 0, 0},  {"category_id", DT_INT, 1, 1},
    {"languages", DT_JSON, 0, 0},  {"params", DT_JSON, 1, 0},     {"created_at", DT_TS, 0, 0},
    {"updated_at", DT_TS, 0, 0},
};
static const struct dcol C_SUB[] = {
    {"id", DT_INT, 0, 0},         {"username", DT_TEXT, 0, 0},  {"password_hash", DT_TEXT, 0, 0},
    {"disabled", DT_BOOL, 0, 1},  {"balance", DT_REAL, 0, 0},   {"email", DT_TEXT, 1, 0},
    {"created_at", DT_TS, 0, 0},  {"updated_at", DT_TS, 0, 0},  {"tags", DT_JSON, 1, 0},
    {"comment", DT_TEXT, 1, 1},
};
static const struct dcol C_TERM[] = {
    {"id", DT_INT, 0, 0},        {"subscriber_id", DT_INT, 0, 0}, {"mac_addr", DT_TEXT, 0, 0},
    {"model", DT_TEXT, 0, 1},    {"serial", DT_TEXT, 1, 0},       {"active", DT_BOOL, 0, 1},
    {"created_at", DT_TS, 0, 0}, {"updated_at", DT_TS, 0, 0},     {"settings", DT_JSON, 0, 0},
};
static const struct dcol C_MEDIA[] = {
    {"id", DT_INT, 0, 0},           {"name", DT_TEXT, 0, 0},          {"title", DT_TEXT, 0, 0},
    {"orig_title", DT_TEXT, 1, 1},  {"year", DT_INT, 1, 0},           {"duration", DT_INT, 0, 0},
    {"rating", DT_REAL, 1, 0},      {"votes_imdb", DT_INT, 0, 0},     {"age_rating", DT_INT, 1, 1},
    {"genres", DT_JSON, 0, 0},      {"is_series", DT_BOOL, 0, 1},     {"season", DT_INT, 1, 1},
    {"parent_id", DT_INT, 1, 0},    {"price", DT_REAL, 0, 0},         {"currency", DT_TEXT, 0, 1},
    {"is_free", DT_BOOL, 0, 1},     {"is_hd", DT_BOOL, 0, 1},         {"enabled", DT_BOOL, 0, 1},
    {"archived", DT_BOOL, 0, 1},    {"quality", DT_TEXT, 0, 1},       {"release_date", DT_DATE, 1, 0},
    {"available_from", DT_TS, 0, 0}, {"available_to", DT_TS, 1, 0},   {"aspect_ratio", DT_REAL, 0, 1},
    {"fps", DT_REAL, 0, 1},         {"package_id", DT_INT, 1, 1},     {"category_id", DT_INT, 1, 1},
    {"comment", DT_TEXT, 1, 1},     {"created_at", DT_TS, 0, 0},      {"updated_at", DT_TS, 0, 0},
};
static const struct dcol C_PROG[] = {
    {"id", DT_INT, 0, 0},          {"created_at", DT_TS, 0, 0}, {"updated_at", DT_TS, 0, 0},
    {"channel_id", DT_INT, 0, 0},  {"title", DT_TEXT, 0, 1},    {"description", DT_TEXT, 1, 0},
    {"start", DT_TS, 0, 0},        {"stop", DT_TS, 0, 0},       {"duration", DT_INT, 0, 1},
    {"age_rating", DT_INT, 1, 1},  {"is_live", DT_BOOL, 0, 1},
};
static const struct dcol C_PCAT[] = {
    {"id", DT_INT, 0, 0}, {"program_id", DT_INT, 0, 0}, {"category_id", DT_INT, 0, 1},
};

static const struct dfk F_CHAN[] = {{"category_id", T_CAT}};
static const struct dfk F_TERM[] = {{"subscriber_id", T_SUB}};
static const struct dfk F_MEDIA[] = {{"category_id", T_CAT}, {"package_id", T_PKG}};
static const struct dfk F_PROG[] = {{"channel_id", T_CHAN}};
static const struct dfk F_PCAT[] = {{"program_id", T_PROG}, {"category_id", T_CAT}};

static const struct dtab TABLES[DIFF_NTABLES] = {
    [T_CAT] = {"tv_category", C_CAT, N(C_CAT), 1, NULL, 0},
    [T_PKG] = {"package", C_PKG, N(C_PKG), 1, NULL, 0},
    [T_CHAN] = {"tv_channel", C_CHAN, N(C_CHAN), 0, F_CHAN, N(F_CHAN)},
    [T_SUB] = {"subscriber", C_SUB, N(C_SUB), 0, NULL, 0},
    [T_TERM] = {"terminal", C_TERM, N(C_TERM), 0, F_TERM, N(F_TERM)},
    [T_MEDIA] = {"media", C_MEDIA, N(C_MEDIA), 0, F_MEDIA, N(F_MEDIA)},
    [T_PROG] = {"tv_program", C_PROG, N(C_PROG), 0, F_PROG, N(F_PROG)},
    [T_PCAT] = {"tv_program_category", C_PCAT, N(C_PCAT), 0, F_PCAT, N(F_PCAT)},
};

const struct dtab *diff_tables(void) { return TABLES; }

int diff_table_index(const char *name)
{
    for (int i = 0; i < DIFF_NTABLES; i++)
        if (strcmp(TABLES[i].name, name) == 0) return i;
    return -1;
}

uint64_t drng_next(struct drng *r)
{
    uint64_t z = (r->x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

int drng_below(struct drng *r, int n) { return (int)(drng_next(r) % (uint64_t)n); }

int drng_pct(struct drng *r, int pct) { return drng_below(r, 100) < pct; }

/* ---- statements ------------------------------------------------------------------------- */

void dstmt_free(struct dstmt *st) { buf_free(&st->params); }

void dstmt_body(const struct dstmt *st, struct buf *out)
{
    if (st->raw) {
        buf_append(out, st->params.p, st->params.len);
        return;
    }
    buf_puts(out, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"select\",\"params\":");
    buf_append(out, st->params.p, st->params.len);
    buf_putc(out, '}');
}
