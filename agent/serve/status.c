/* status.c — see status.h. */
#include "agent/serve/status.h"

#include <string.h>

#include "agent/base/mem.h"

const struct replay_brief *status_brief(const struct replay_brief *b, size_t nb, const char *name)
{
    size_t lo = 0, hi = nb;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(b[mid].name, name);
        if (c == 0) return &b[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

void status_row(const struct config *cfg, const char *name, const struct replay_brief *b, int portal_down,
                int64_t now_ms, struct status_row *out)
{
    const struct config_table *ct = config_table_find(cfg, name);
    int64_t ok = b ? b->last_success_ms : 0;
    *out = (struct status_row){
        .name = name,
        .ct = ct,
        .b = b,
        /* Not configured here: an edge's tables all come from its hub; an
         * imported cache recorded the strategy it was pulled with. */
        .strategy = ct                  ? config_strategy_name(ct->strategy)
                    : cfg->upstream.url ? "upstream"
                    : b && b->strategy  ? b->strategy
                                        : "-",
        .ttl_ms = config_ttl_ms(cfg, name),
        .age_s = ok > 0 ? (now_ms > ok ? (now_ms - ok) / 1000 : 0) : -1,
    };
    out->stale = portal_down || config_stale(out->ttl_ms, ok, now_ms);
}

size_t status_rows(const struct config *cfg, const struct replay_brief *b, size_t nb, int portal_down,
                   int64_t now_ms, struct status_row **out)
{
    *out = xcalloc((size_t)cfg->ntables + nb + 1, sizeof **out);
    size_t n = 0;
    for (int i = 0; i < cfg->ntables; i++) {
        const char *name = cfg->tables[i].name;
        status_row(cfg, name, status_brief(b, nb, name), portal_down, now_ms, &(*out)[n++]);
    }
    for (size_t i = 0; i < nb; i++)
        if (!config_table_find(cfg, b[i].name)) status_row(cfg, b[i].name, &b[i], portal_down, now_ms, &(*out)[n++]);
    return n;
}

void status_outbox_json(const struct replay_outbox_counts *c, struct buf *out)
{
    if (!c) {
        buf_puts(out, "\"outbox\":null");
        return;
    }
    buf_printf(out, "\"outbox\":{\"pending\":%lld,\"conflicts\":%lld,\"rejected\":%lld}", (long long)c->pending,
               (long long)c->conflicts, (long long)c->rejected);
}

void status_outbox_metrics(const struct replay_outbox_counts *c, struct buf *out)
{
    static const struct {
        const char *name, *help;
    } g[] = {
        {"iptv_agent_outbox_pending", "Queued writes not sent to the portal yet, or sent with the outcome unknown."},
        {"iptv_agent_outbox_conflicts", "Queued writes the portal changed first (their local change reverted)."},
        {"iptv_agent_outbox_rejected", "Queued writes the portal refused (their local change reverted)."},
    };
    int64_t v[] = {c ? c->pending : 0, c ? c->conflicts : 0, c ? c->rejected : 0};
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++) {
        buf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n", g[i].name, g[i].help, g[i].name);
        if (c) buf_printf(out, "%s %lld\n", g[i].name, (long long)v[i]);
    }
}
