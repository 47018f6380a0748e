/* cmd_status.c — `iptv-agent status`: what the cache holds and how fresh it is.
 * Gathers (one read-only look at cache.db, the journal and the edge's upstream
 * state), then renders as text or JSON. The rows and the stale rule are
 * status.h's, the same that GET /status and X-Cache-Stale render. */
#include "agent/base/buf.h"
#include "agent/base/err.h"
#include "agent/base/clock.h"
#include "agent/base/err.h"
#include "agent/base/json.h"
#include "agent/base/log.h"
#include "agent/base/mem.h"
#include "agent/cli/cmd.h"
#include "agent/pull/store.h"
#include "agent/serve/status.h"
#include "agent/ship/export.h"
#include "agent/ship/upstream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char status_usage[] =
    "usage: iptv-agent status [--json]\n"
    "\n"
    "Per table: strategy, rows, high-water mark, last success, age, stale?, last\n"
    "error, forbidden?; whether the last contact with the portal (an edge: the hub)\n"
    "worked; journal size, the applied position and the last journal compaction;\n"
    "writes queued while the portal was unreachable: pending (not sent yet, or sent\n"
    "with the outcome unknown), conflicts, rejected (`iptv-agent outbox` lists them).\n"
    "Lists the configured tables and\n"
    "every other table cache.db holds (imported ones). Only reads: creates nothing.\n"
    "Exit: 0 ok, 1 cache.db unreadable, 3 no cache.db yet (nothing pulled or\n"
    "imported into [storage] dir).\n";

/* Everything one report shows, gathered before anything is printed. */
struct report {
    const struct config *cfg;
    struct store s;
    uint64_t journal_bytes;
    size_t journal_segments;
    struct replay_brief *briefs;
    size_t nbriefs;
    struct status_row *rows;
    int nrows;
    struct replay_table *ts;          /* per row: replay's detail (marks, schema, pending) */
    int *known;                       /* per row: ts[i] was read */
    int64_t last_attempt, last_ok;    /* over all tables: the portal's last contact */
    const char *last_err;
    struct replay_compact cpt;        /* the last compaction (store_compact); at_ms 0 never */
    char at[EXPORT_ID_LEN + 1];       /* the export the cache is at, "" none */
    struct upstream_state up;         /* an edge's own contact with its hub */
    int up_known;
    struct replay_outbox_counts ob;   /* queued writes (status.h renders them) */
    int ob_known;
};

static void fmt_time(int64_t ms, char *out, size_t n)
{
    if (ms <= 0) { snprintf(out, n, "never"); return; }
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void value_text(struct buf *b, const struct replay_value *v)
{
    switch (v->type) {
    case JOURNAL_NULL: buf_puts(b, "null"); break;
    case JOURNAL_BOOL: buf_puts(b, v->i ? "true" : "false"); break;
    case JOURNAL_INT: buf_printf(b, "%lld", (long long)v->i); break;
    case JOURNAL_REAL: json_write_double(b, v->d); break;
    default: json_write_string(b, v->s, v->n);
    }
}

static void put_json_str(struct buf *b, const char *s)
{
    if (s) json_write_string(b, s, strlen(s));
    else buf_puts(b, "null");
}

/* The store is open; read everything else. Failures of the optional parts
 * (journal size, briefs, export state) leave them empty, as "unknown". */
static void gather(struct report *R)
{
    char err[IA_ERRLEN];
    int64_t now = clock_wall_ms();
    if (journal_size(R->s.journal_dir, &R->journal_bytes, &R->journal_segments, err, sizeof err) != 0)
        R->journal_bytes = 0, R->journal_segments = 0;
    if (replay_briefs_read(replay_db(R->s.rp), &R->briefs, &R->nbriefs, err, sizeof err) != 0)
        log_warn("status: %s", err);
    R->nrows = (int)status_rows(R->cfg, R->briefs, R->nbriefs, 0, now, &R->rows);
    R->ts = xcalloc((size_t)R->nrows + 1, sizeof *R->ts);
    R->known = xcalloc((size_t)R->nrows + 1, sizeof *R->known);
    for (int i = 0; i < R->nrows; i++) {
        const struct replay_table *t = &R->ts[i];
        R->known[i] = replay_table_get(R->s.rp, R->rows[i].name, &R->ts[i], err, sizeof err) == 0;
        if (!R->known[i]) continue;
        if (t->last_success_ms > R->last_ok) R->last_ok = t->last_success_ms;
        if (t->last_attempt_ms > R->last_attempt) {
            R->last_attempt = t->last_attempt_ms;
            R->last_err = t->last_error;
        }
    }
    if (replay_compact_read(replay_db(R->s.rp), &R->cpt) != 0) R->cpt.at_ms = 0;
    if (export_cache_state(R->s.db_path, R->at, NULL, err, sizeof err) != 0) R->at[0] = '\0';
    R->up_known = R->cfg->upstream.url && upstream_state_read(R->s.dir, &R->up) == 0;
    R->ob_known = replay_outbox_counts(replay_db(R->s.rp), &R->ob, err, sizeof err) == 0;
    if (!R->ob_known) log_warn("status: %s", err);
}

static void report_free(struct report *R)
{
    for (int i = 0; i < R->nrows; i++)
        if (R->known[i]) replay_table_free(&R->ts[i]);
    replay_briefs_free(R->briefs, R->nbriefs);
    free(R->rows);
    free(R->ts);
    free(R->known);
    store_close(&R->s);
}

/* The high-water mark as one text: cursor then key, "-" when none. */
static void mark_text(struct buf *v, const struct replay_table *st, int known)
{
    buf_reset(v);
    if (!known || (st->mark_cursor.type == JOURNAL_NULL && st->mark_key.type == JOURNAL_NULL)) return;
    if (st->mark_cursor.type != JOURNAL_NULL) {
        value_text(v, &st->mark_cursor);
        buf_putc(v, ' ');
    }
    value_text(v, &st->mark_key);
}

static void render_json(const struct report *R, struct buf *out)
{
    const struct config *cfg = R->cfg;
    char when[40], okwhen[40], cwhen[40];
    buf_puts(out, "{");
    if (cfg->upstream.url) {
        fmt_time(R->up_known ? R->up.attempt_ms : 0, when, sizeof when);
        fmt_time(R->up_known ? R->up.success_ms : 0, okwhen, sizeof okwhen);
        buf_puts(out, "\"upstream\":{\"url\":");
        put_json_str(out, cfg->upstream.url);
        buf_printf(out, ",\"at\":\"%s\",\"last_attempt\":\"%s\",\"last_success\":\"%s\",\"reachable\":%s,"
                        "\"last_error\":",
                   R->at, when, okwhen, !R->up_known ? "null" : R->up.error[0] ? "false" : "true");
        put_json_str(out, R->up_known && R->up.error[0] ? R->up.error : NULL);
        buf_puts(out, "},");
    }
    fmt_time(R->last_attempt, when, sizeof when);
    fmt_time(R->last_ok, okwhen, sizeof okwhen);
    buf_puts(out, "\"remote\":{\"url\":");
    put_json_str(out, cfg->remote.url);
    buf_printf(out, ",\"last_attempt\":\"%s\",\"last_success\":\"%s\",\"reachable\":%s,\"last_error\":", when,
               okwhen, R->last_attempt == 0 ? "null" : R->last_err ? "false" : "true");
    put_json_str(out, R->last_err);
    buf_printf(out, "},\"journal\":{\"segments\":%zu,\"bytes\":%llu,\"applied_seq\":%llu,\"last_compaction\":",
               R->journal_segments, (unsigned long long)R->journal_bytes,
               (unsigned long long)replay_applied_seq(R->s.rp));
    if (R->cpt.at_ms) {
        fmt_time(R->cpt.at_ms, cwhen, sizeof cwhen);
        buf_printf(out, "{\"at\":\"%s\",\"deleted\":%llu,\"freed\":%llu,\"kept_because\":", cwhen,
                   (unsigned long long)R->cpt.deleted, (unsigned long long)R->cpt.freed);
        put_json_str(out, R->cpt.reason);
        buf_puts(out, "}},");
    } else {
        buf_puts(out, "null},");
    }
    status_outbox_json(R->ob_known ? &R->ob : NULL, out);
    buf_puts(out, ",\"tables\":[");
    for (int i = 0; i < R->nrows; i++) {
        const struct status_row *w = &R->rows[i];
        const struct replay_table *st = &R->ts[i];
        int k = R->known[i];
        fmt_time(k ? st->last_success_ms : 0, when, sizeof when);
        fmt_time(k ? st->schema_changed_ms : 0, cwhen, sizeof cwhen);
        if (i) buf_putc(out, ',');
        buf_puts(out, "{\"name\":");
        put_json_str(out, w->name);
        buf_printf(out, ",\"strategy\":\"%s\",\"configured\":%s,\"rows\":%llu,\"mark_cursor\":", w->strategy,
                   w->ct ? "true" : "false", (unsigned long long)(k ? st->rows : 0));
        if (k) value_text(out, &st->mark_cursor); else buf_puts(out, "null");
        buf_puts(out, ",\"mark_key\":");
        if (k) value_text(out, &st->mark_key); else buf_puts(out, "null");
        buf_printf(out, ",\"last_success\":\"%s\",\"age_seconds\":%lld,\"stale\":%s,\"forbidden\":%s,"
                        "\"schema_hash\":\"%s\",\"schema_changed_at\":\"%s\",\"schema_changed\":%s,"
                        "\"snapshot_pending\":%s,\"last_error\":",
                   when, (long long)w->age_s, w->stale ? "true" : "false", k && st->forbidden ? "true" : "false",
                   k ? st->schema_hash : "", cwhen, k && st->schema_behind ? "true" : "false",
                   k && st->pending_id ? "true" : "false");
        put_json_str(out, k ? st->last_error : NULL);
        buf_putc(out, '}');
    }
    buf_puts(out, "]}\n");
}

static void render_text(const struct report *R, struct buf *out)
{
    const struct config *cfg = R->cfg;
    char when[40], okwhen[40], cwhen[40];
    if (cfg->upstream.url) {
        fmt_time(R->up_known ? R->up.attempt_ms : 0, when, sizeof when);
        fmt_time(R->up_known ? R->up.success_ms : 0, okwhen, sizeof okwhen);
        buf_printf(out, "upstream: %s; at %s; last attempt %s (%s), last success %s\n", cfg->upstream.url,
                   R->at[0] ? R->at : "(nothing imported yet)", when,
                   !R->up_known ? "none" : R->up.error[0] ? "failed" : "ok", okwhen);
        if (R->up_known && R->up.error[0]) buf_printf(out, "upstream error: %s\n", R->up.error);
    }
    fmt_time(R->last_attempt, when, sizeof when);
    fmt_time(R->last_ok, okwhen, sizeof okwhen);
    buf_printf(out, "remote:  %s; last attempt %s (%s), last success %s\n",
               cfg->remote.url ? cfg->remote.url : cfg->upstream.url ? "(the hub's portal)" : "(not configured)",
               when, R->last_attempt == 0 ? "none" : R->last_err ? "failed" : "ok", okwhen);
    buf_printf(out, "journal: %zu segment%s, %llu bytes; cache applied up to seq %llu\n", R->journal_segments,
               R->journal_segments == 1 ? "" : "s", (unsigned long long)R->journal_bytes,
               (unsigned long long)replay_applied_seq(R->s.rp));
    if (R->cpt.at_ms) {
        fmt_time(R->cpt.at_ms, cwhen, sizeof cwhen);
        buf_printf(out, "         last compacted %s: %llu segments (%llu bytes) freed%s%s\n", cwhen,
                   (unsigned long long)R->cpt.deleted, (unsigned long long)R->cpt.freed,
                   R->cpt.reason[0] ? "; kept: " : "", R->cpt.reason);
    } else {
        buf_puts(out, "         never compacted\n");
    }
    if (R->ob_known)
        buf_printf(out, "outbox:  %lld pending (%lld of them sent, outcome unknown), %lld conflicts, %lld rejected%s\n",
                   (long long)R->ob.pending, (long long)R->ob.sent, (long long)R->ob.conflicts,
                   (long long)R->ob.rejected, R->ob.conflicts || R->ob.rejected ? " (see `iptv-agent outbox`)" : "");
    else
        buf_puts(out, "outbox:  unknown (cache.db's outbox could not be read)\n");
    buf_printf(out, "%-24s %-12s %10s %-34s %-21s %8s %-5s %s\n", "table", "strategy", "rows", "mark",
               "last success", "age(s)", "stale", "error");
    struct buf v = {0};
    for (int i = 0; i < R->nrows; i++) {
        const struct status_row *w = &R->rows[i];
        const struct replay_table *st = &R->ts[i];
        int k = R->known[i];
        mark_text(&v, st, k);
        fmt_time(k ? st->last_success_ms : 0, when, sizeof when);
        fmt_time(k ? st->schema_changed_ms : 0, cwhen, sizeof cwhen);
        char agebuf[24];
        snprintf(agebuf, sizeof agebuf, w->age_s < 0 ? "-" : "%lld", (long long)w->age_s);
        const char *e = !k ? "not pulled yet" : st->forbidden ? "forbidden (HTTP 403)"
                      : st->last_error ? st->last_error : "";
        char note[96] = "";
        if (k && st->pending_id) snprintf(note, sizeof note, " (snapshot in progress)");
        if (k && st->schema_behind) snprintf(note, sizeof note, " (columns changed: new snapshot pending)");
        else if (k && st->schema_changed_ms) snprintf(note, sizeof note, " (columns changed %s)", cwhen);
        else if (!w->ct && !cfg->upstream.url)
            snprintf(note, sizeof note, "%s(imported; not in %s)", *e ? " " : "", cfg->path);
        buf_printf(out, "%-24s %-12s %10llu %-34.34s %-21s %8s %-5s %s%s\n", w->name, w->strategy,
                   (unsigned long long)(k ? st->rows : 0), v.len ? v.p : "-", when, agebuf,
                   w->stale ? "yes" : "no", e, note);
    }
    buf_free(&v);
}

int cmd_status(const struct config *cfg, int argc, char **argv)
{
    if (cmd_wants_help(argc, argv)) { fputs(status_usage, stdout); return 0; }
    int as_json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) as_json = 1;
        else { fprintf(stderr, "iptv-agent status: unexpected argument %s\n%s", argv[i], status_usage); return 2; }
    }
    struct report R = {.cfg = cfg};
    char err[IA_ERRLEN];
    int orc = store_open_readonly(cfg, &R.s, err, sizeof err);
    if (orc == 1) {
        fprintf(stderr, "iptv-agent status: no cache yet (%s): nothing has been pulled or imported into [storage] "
                        "dir = \"%s\" of %s; check the path, or run `iptv-agent --once`\n",
                err, cfg->storage.dir, cfg->path);
        return 3;
    }
    if (orc != 0) {
        fprintf(stderr, "iptv-agent status: %s\n", err);
        return 1;
    }
    gather(&R);
    struct buf out = {0};
    if (as_json) render_json(&R, &out);
    else render_text(&R, &out);
    fwrite(out.p, 1, out.len, stdout);
    buf_free(&out);
    report_free(&R);
    return 0;
}
