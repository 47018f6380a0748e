/* fuzz_toml.c — libFuzzer target for the agent.toml reader (agent/config/toml.h) and
 * the config checker on top of it (agent/config/config.h).
 *
 * Input: the whole input is the text of a file named "fuzz.toml", given to
 * toml_parse and then to config_parse; an input of at most 32 bytes is also
 * given, NUL-terminated, to config_parse_duration and config_parse_size.
 * Oracles: an error names the file ("fuzz.toml:" first); a tree holds what
 * toml.h promises (root first and unnamed, bare keys, every key found by
 * toml_table_get, no table header repeated unless [[...]], positions from 1,
 * strings without an inner NUL); a config holds what config.h promises (the
 * path, every table named with its key, an incremental table has its cursor,
 * configured columns include the key and the cursor, table names unique, a
 * non-loopback listen has a token_env); durations and sizes are never
 * negative. ASan/LSan catch leaks on every error path. Seeds: tests/fuzz/
 * corpus/toml/ (the repo's agent.toml among them). Run: tests/fuzz/run.sh. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/config/config.h"
#include "agent/config/toml.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    /* config_parse reads these as fallbacks: keep every run the same. */
    unsetenv("IPTVPORTAL_DOMAIN");
    unsetenv("IPTVPORTAL_USERNAME");
    return 0;
}

static void check_error(const char *err)
{
    if (strncmp(err, "fuzz.toml:", 10) != 0) {
        fprintf(stderr, "error does not name the file: \"%s\"\n", err);
        abort();
    }
}

static int bare_key(const char *k)
{
    if (!*k) return 0;
    for (; *k; k++)
        if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') || (*k >= '0' && *k <= '9') || *k == '_' ||
              *k == '-'))
            return 0;
    return 1;
}

static void check_value(const struct toml_value *v, int depth)
{
    if (v->line < 1 || v->col < 1 || depth > 64) abort();
    switch (v->type) {
    case TOML_STRING:
        if (!v->s) abort();
        break;
    case TOML_INT:
    case TOML_BOOL:
        break;
    case TOML_ARRAY:
        if (v->nitems < 0 || (v->nitems > 0 && !v->items)) abort();
        for (int i = 0; i < v->nitems; i++) check_value(&v->items[i], depth + 1);
        break;
    default:
        abort();
    }
    if (!toml_type_name(v->type)) abort();
}

static void check_doc(const struct toml_doc *d)
{
    if (d->ntables < 1 || d->tables[0].name || d->tables[0].is_array) abort();
    for (int i = 0; i < d->ntables; i++) {
        const struct toml_table *t = &d->tables[i];
        if (i > 0 && (!t->name || !bare_key(t->name))) abort();
        if (t->line < 1 || t->col < 1) abort();
        for (int j = 1; i > 0 && j < i; j++)
            if (!strcmp(d->tables[j].name, t->name) && !(t->is_array && d->tables[j].is_array)) {
                fprintf(stderr, "table [%s] accepted twice\n", t->name);
                abort();
            }
        for (int k = 0; k < t->nkvs; k++) {
            const struct toml_kv *kv = &t->kvs[k];
            if (!bare_key(kv->key) || kv->line < 1 || kv->col < 1) abort();
            if (toml_table_get(t, kv->key) != kv) {
                fprintf(stderr, "key `%s` not unique or not found\n", kv->key);
                abort();
            }
            check_value(&kv->val, 0);
        }
    }
}

static int has(char **cols, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(cols[i], name)) return 1;
    return 0;
}

static void check_config(const struct config *c)
{
    if (!c->path || strcmp(c->path, "fuzz.toml") != 0) abort();
    if (!c->storage.dir || !c->serve.listen || !c->remote.password_env) abort();
    if (c->remote.timeout_ms <= 0 || c->storage.segment_size <= 0 || c->remote.max_response <= 0) abort();
    if (c->storage.compression_level < 1 || c->storage.compression_level > 9) abort();
    if (!config_listen_is_loopback(c->serve.listen) && !c->serve.token_env) {
        fprintf(stderr, "listen %s off loopback without token_env\n", c->serve.listen);
        abort();
    }
    for (int i = 0; i < c->ntables; i++) {
        const struct config_table *t = &c->tables[i];
        if (!t->name || !t->key || !config_strategy_name(t->strategy)) abort();
        if ((t->strategy == STRATEGY_INCREMENTAL) != (t->cursor != NULL)) {
            fprintf(stderr, "table %s: strategy %s with cursor %s\n", t->name, config_strategy_name(t->strategy),
                    t->cursor ? t->cursor : "(none)");
            abort();
        }
        if (t->columns && (!has(t->columns, t->ncolumns, t->key) ||
                           (t->cursor && !has(t->columns, t->ncolumns, t->cursor)))) {
            fprintf(stderr, "table %s: columns lack the key or cursor\n", t->name);
            abort();
        }
        if (t->chunk <= 0 || t->ttl_ms <= 0 || t->interval_ms <= 0 || t->lookback_ms < 0 || t->sweep_ms < 0) abort();
        for (int j = 0; j < i; j++)
            if (!strcmp(c->tables[j].name, t->name)) abort();
        if (config_table_find(c, t->name) != t) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    char err[1024];
    struct toml_doc doc;
    int trc = toml_parse("fuzz.toml", text, size, &doc, err, sizeof err);
    if (trc == 0) {
        check_doc(&doc);
        toml_free(&doc);
    } else {
        check_error(err);
    }

    struct config c;
    if (config_parse("fuzz.toml", text, size, &c, err, sizeof err) == 0) {
        if (trc != 0) abort();   /* the config reader accepted what the TOML reader refused */
        check_config(&c);
        config_free(&c);
    } else {
        check_error(err);
    }

    if (size <= 32) {
        char s[33];
        memcpy(s, data, size);
        s[size] = '\0';
        int64_t v = -1;
        if (config_parse_duration(s, &v) == 0 && v < 0) abort();
        v = -1;
        if (config_parse_size(s, &v) == 0 && v < 0) abort();
    }
    return 0;
}
