/* serve_pass.c — see serve_pass.h. Owns the rule "which select the cache
 * cannot answer"; serve.c owns parking the request on hooks->select. */
#include "agent/serve/serve_pass.h"

#include <string.h>

#include "agent/base/json.h"
#include "agent/serve/status.h"

/* 1 when the cache can answer for table `name`. */
static int cached(const struct config *cfg, const struct sdb *db, const char *name)
{
    if (jsonsql_catalog_ncolumns(db->cat, name) < 0) return 0;
    const struct config_table *t = config_table_find(cfg, name);
    if (!t || t->strategy == STRATEGY_ON_DEMAND) return 1;   /* an edge's, a former table's, or lookups' */
    const struct replay_brief *b = status_brief(db->tables, db->ntables, name);
    return b && b->last_success_ms > 0;
}

static const char *walk(const struct config *cfg, const struct sdb *db, const cJSON *n);

/* A `from` value or one of its items: a name, {"table"|"join"|"left_join": name,
 * ...}, a list of those, or a subquery (walked as any other node). */
static const char *source(const struct config *cfg, const struct sdb *db, const cJSON *v)
{
    static const char *const keys[] = {"table", "join", "left_join"};
    if (cJSON_IsString(v)) return cached(cfg, db, v->valuestring) ? NULL : v->valuestring;
    if (cJSON_IsArray(v)) {
        for (const cJSON *it = v->child; it; it = it->next) {
            const char *u = source(cfg, db, it);
            if (u) return u;
        }
        return NULL;
    }
    if (cJSON_IsObject(v))
        for (int i = 0; i < 3; i++) {
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(v, keys[i]);
            if (cJSON_IsString(t) && !cached(cfg, db, t->valuestring)) return t->valuestring;
        }
    return walk(cfg, db, v);
}

/* Every object member named `from` anywhere below n (subqueries in where,
 * data, joins) is a source. */
static const char *walk(const struct config *cfg, const struct sdb *db, const cJSON *n)
{
    for (const cJSON *k = n ? n->child : NULL; k; k = k->next) {
        const char *u = k->string && strcmp(k->string, "from") == 0 ? source(cfg, db, k)
                        : (cJSON_IsObject(k) || cJSON_IsArray(k)) ? walk(cfg, db, k) : NULL;
        if (u) return u;
    }
    return NULL;
}

const char *pass_uncached(const struct config *cfg, const struct sdb *db, const cJSON *params)
{
    return cJSON_IsObject(params) ? walk(cfg, db, params) : NULL;
}

void pass_reply(struct buf *b, const cJSON *id, const char *member, const char *json)
{
    buf_reset(b);
    buf_puts(b, "{\"jsonrpc\":\"2.0\",\"id\":");
    if (id && (cJSON_IsNumber(id) || cJSON_IsString(id))) json_write_tree(b, id);
    else buf_puts(b, "null");
    buf_printf(b, ",\"%s\":%s}", member, json && *json ? json : "null");
}
