/* status.h — the cache's status as every report shows it. `iptv-agent status`,
 * GET /status, the X-Cache-Stale/-Age headers and /metrics all render these
 * rows, so which tables are listed, the strategy shown, the ttl of a table the
 * config does not list, the age and the stale rule have one owner.
 *
 * Rows borrow their strings from the config and the briefs they were made
 * from: keep both alive while the rows are used. */
#ifndef IA_SERVE_STATUS_H
#define IA_SERVE_STATUS_H
#include <stddef.h>
#include <stdint.h>

#include "agent/base/buf.h"
#include "agent/config/config.h"
#include "replay/outbox.h"
#include "replay/replay.h"

struct status_row {
    const char *name;
    const struct config_table *ct;    /* NULL: not configured here */
    const struct replay_brief *b;     /* NULL: cache.db knows nothing of it */
    const char *strategy;             /* configured; else "upstream" on an edge, the cache's record, or "-" */
    int64_t ttl_ms;                   /* config_ttl_ms() */
    int64_t age_s;                    /* since the last successful pull; -1 never */
    int stale;                        /* never pulled, older than its ttl, or the portal is unreachable */
};

/* The row of table `name`; b is its brief or NULL. portal_down: 1 when the
 * portal (an edge: the hub) is known to be unreachable. */
void status_row(const struct config *cfg, const char *name, const struct replay_brief *b, int portal_down,
                int64_t now_ms, struct status_row *out);

/* Every row a report lists: the configured tables in file order, then every
 * other table of the briefs (sorted by name, as replay_briefs_read gives
 * them). *out is malloc'd (free()); returns how many. */
size_t status_rows(const struct config *cfg, const struct replay_brief *b, size_t nb, int portal_down,
                   int64_t now_ms, struct status_row **out);

/* The brief of `name` in briefs sorted by name, or NULL. */
const struct replay_brief *status_brief(const struct replay_brief *b, size_t nb, const char *name);

/* The outbox as every report shows it (`status`, GET /status, /metrics): the
 * counts of replay_outbox_counts, where pending counts every op not ended
 * (pending and sent). One renderer per form, so the three cannot disagree on
 * what "pending" means. c NULL: the counts could not be read (JSON null, no
 * metric samples: an absent gauge is "unknown", a 0 would say "empty"). */
void status_outbox_json(const struct replay_outbox_counts *c, struct buf *out);     /* "outbox":{...} */
void status_outbox_metrics(const struct replay_outbox_counts *c, struct buf *out);  /* HELP, TYPE, samples */

#endif
