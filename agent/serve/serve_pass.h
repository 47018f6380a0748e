/* serve_pass.h — internal to serve*.c: which selects the cache cannot answer.
 *
 * A select on /api/jsonsql/ is passed to the portal (hooks->select, serve.h
 * "Pass-through") when one table it names — in `from`, a join or a subquery,
 * anywhere in the statement — is not one the cache can answer for:
 *   - not configured (cache.db may hold it from an earlier configuration or
 *     a `cache` table of an earlier run: the portal has it as it is now),
 *   - not in cache.db's catalog (configured, and the first pull has not
 *     written it yet), or
 *   - configured (not on_demand) and never pulled to the end (its brief in
 *     _agent_tables has no last success: replay_brief.last_success_ms).
 * An on_demand table in the catalog counts as cached: its misses have their
 * own path (hooks->fetch). A statement joining a cached and an uncached table
 * is passed whole. Tests: test_serve.c test_pass_through.
 * Ownership: nothing is allocated; names point into the caller's tree. */
#ifndef IA_SERVE_PASS_H
#define IA_SERVE_PASS_H
#include <cjson/cJSON.h>

#include "agent/base/buf.h"
#include "agent/config/config.h"
#include "agent/serve/serve_db.h"

/* The first table that params (a select's params object) names and the cache
 * cannot answer for, or NULL when it can answer for all of them. A table
 * unknown_tables = "cache" added (config_table.auto_added) counts as cached
 * only for statements that compile against its columns (max_depth: jsonsql's). */
const char *pass_uncached(const struct config *cfg, const struct sdb *db, const cJSON *params, int max_depth);

/* The reply body of a passed select: {"jsonrpc":"2.0","id":ID,"<member>":<json>},
 * member "result" or "error", json the portal's text as it sent it. */
void pass_reply(struct buf *b, const cJSON *id, const char *member, const char *json);

#endif
