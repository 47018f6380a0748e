/* serve_pass.c — see serve_pass.h. Owns the rule "which select the cache
 * cannot answer"; serve.c owns parking the request on hooks->select. */
#include "agent/serve/serve_pass.h"

#include <string.h>

#include "agent/base/json.h"
#include "agent/serve/status.h"

struct walk {
    const struct config *cfg;
    const struct sdb *db;
    const char *added;             /* a cached table unknown_tables = "cache" added, or NULL */
};

/* 1 when the cache can answer for table `name`. */
static int cached(struct walk *w, const char *name)
{
    const struct config_table *t = config_table_find(w->cfg, name);
    if (!t || jsonsql_catalog_ncolumns(w->db->cat, name) < 0) return 0;
    if (t->strategy == STRATEGY_ON_DEMAND) return 1;         /* lookups have their own path */
    const struct replay_brief *b = status_brief(w->db->tables, w->db->ntables, name);
    if (!b || b->last_success_ms <= 0) return 0;
    if (t->auto_added) w->added = t->name;
    return 1;
}

static const char *walk(struct walk *w, const cJSON *n);

/* A `from` value or one of its items: a name, {"table"|"join"|"left_join": name,
 * ...}, a list of those, or a subquery (walked as any other node). */
static const char *source(struct walk *w, const cJSON *v)
{
    static const char *const keys[] = {"table", "join", "left_join"};
    if (cJSON_IsString(v)) return cached(w, v->valuestring) ? NULL : v->valuestring;
    if (cJSON_IsArray(v)) {
        for (const cJSON *it = v->child; it; it = it->next) {
            const char *u = source(w, it);
            if (u) return u;
        }
        return NULL;
    }
    if (cJSON_IsObject(v))
        for (int i = 0; i < 3; i++) {
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(v, keys[i]);
            if (cJSON_IsString(t) && !cached(w, t->valuestring)) return t->valuestring;
        }
    return walk(w, v);
}

/* Every object member named `from` anywhere below n (subqueries in where,
 * data, joins) is a source. */
static const char *walk(struct walk *w, const cJSON *n)
{
    for (const cJSON *k = n ? n->child : NULL; k; k = k->next) {
        const char *u = k->string && strcmp(k->string, "from") == 0 ? source(w, k)
                        : (cJSON_IsObject(k) || cJSON_IsArray(k)) ? walk(w, k) : NULL;
        if (u) return u;
    }
    return NULL;
}

const char *pass_uncached(const struct config *cfg, const struct sdb *db, const cJSON *params, int max_depth)
{
    struct walk w = {cfg, db, NULL};
    const char *u = cJSON_IsObject(params) ? walk(&w, params) : NULL;
    if (u || !w.added) return u;
    /* A table `cache` added knows its columns as Field_N (the portal names
     * none) but its key: a statement naming others is the portal's to answer. */
    struct jsonsql_limits lim = {.max_depth = max_depth};
    struct jsonsql_stmt st = {0};
    char err[256];
    int bad = jsonsql_compile(db->cat, "select", params, &lim, &st, err, sizeof err) != 0;
    jsonsql_stmt_free(&st);
    return bad ? w.added : NULL;
}
void pass_reply(struct buf *b, const cJSON *id, const char *member, const char *json)
{
    buf_reset(b);
    buf_puts(b, "{\"jsonrpc\":\"2.0\",\"id\":");
    if (id && (cJSON_IsNumber(id) || cJSON_IsString(id))) json_write_tree(b, id);
    else buf_puts(b, "null");
    buf_printf(b, ",\"%s\":%s}", member, json && *json ? json : "null");
}
