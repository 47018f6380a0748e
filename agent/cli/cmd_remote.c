/* cmd_remote.c — `iptv-agent remote` and `iptv-agent introspect`: talk to the
 * portal directly, for debugging and for writing a [[table]] block. */
#include "agent/cli/cmd.h"
#include "agent/config/config.h"
#include "agent/base/err.h"
#include "agent/base/log.h"
#include "agent/base/mem.h"
#include "agent/portal/remote.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int cmd_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return 1;
    return 0;
}

/* 4: a write may or may not have run; a script must not simply run it again. */
static int exit_for(enum remote_status st) { return st == REMOTE_OK ? 0 : st == REMOTE_EUNKNOWN ? 4 : 1; }

static const char remote_usage[] =
    "usage: iptv-agent remote [--method select|insert|update|delete] JSON\n"
    "\n"
    "Send one JSONSQL statement to the portal and print the result rows as JSON\n"
    "lines. JSON is either {\"method\":\"select\",\"params\":{...}} or the params object\n"
    "itself (method select unless --method says otherwise). Example:\n"
    "  iptv-agent remote '{\"data\":[\"id\",\"name\"],\"from\":\"tv_channel\",\"order_by\":\"id\",\"limit\":10}'\n"
    "A write (insert, update, delete) is sent once and never resent after the\n"
    "request may have reached the portal; its result is printed as the portal sent\n"
    "it: rows as JSON lines, or a row count such as 1. When the answer is lost\n"
    "(connection dropped, HTTP 5xx, unreadable body) the outcome is unknown: exit 4;\n"
    "check the portal before running the write again.\n"
    "Exit: 0 ok, 1 portal or network error (nothing was changed), 2 usage,\n"
    "4 write outcome unknown.\n";

int cmd_remote(const struct config *cfg, int argc, char **argv)
{
    if (cmd_wants_help(argc, argv)) { fputs(remote_usage, stdout); return 0; }
    const char *method = NULL, *text = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--method") && i + 1 < argc) method = argv[++i];
        else if (!text && argv[i][0] != '-') text = argv[i];
        else { fprintf(stderr, "iptv-agent remote: unexpected argument %s\n%s", argv[i], remote_usage); return 2; }
    }
    if (!text) { fputs(remote_usage, stderr); return 2; }

    char err[IA_ERRLEN];
    cJSON *doc = NULL;
    if (json_parse(text, strlen(text), 64, &doc, err, sizeof err) != 0 || !cJSON_IsObject(doc)) {
        fprintf(stderr, "iptv-agent remote: JSON argument: %s\n", doc ? "must be an object" : err);
        cJSON_Delete(doc);
        return 2;
    }
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(doc, "method");
    const cJSON *params = doc;
    if (cJSON_IsString(m)) {
        method = m->valuestring;
        params = cJSON_GetObjectItemCaseSensitive(doc, "params");
    }
    if (!method) method = "select";
    if (strcmp(method, "select") && strcmp(method, "insert") && strcmp(method, "update") &&
        strcmp(method, "delete")) {
        fprintf(stderr, "iptv-agent remote: method \"%s\": expected select, insert, update or delete\n", method);
        cJSON_Delete(doc);
        return 2;
    }
    if (!cJSON_IsObject(params)) {
        fprintf(stderr, "iptv-agent remote: params must be an object\n");
        cJSON_Delete(doc);
        return 2;
    }
    struct buf pb = {0};    /* keeps number literals exact, unlike cJSON's printer */
    json_write_tree(&pb, params);
    char *ptext = buf_detach(&pb);
    remote *r = remote_from_config(cfg, err, sizeof err);
    if (!r) {
        fprintf(stderr, "iptv-agent remote: %s\n", err);
        free(ptext);
        cJSON_Delete(doc);
        return 1;
    }
    struct buf out = {0}, result = {0};
    struct json_rows_text rows = {&out, 1, 0};   /* printed only once the whole answer is good */
    enum remote_status st;
    if (strcmp(method, "select") == 0) {
        st = remote_query(r, method, ptext, &json_rows_text_cb, &rows, err, sizeof err);
    } else {
        st = remote_write(r, method, ptext, &result, err, sizeof err);
        /* rows (returning) as JSON lines like a select's; any other result (a
         * row count) as the portal sent it */
        cJSON *res = NULL;
        char ignore[256];
        if (st == REMOTE_OK && json_parse(result.p, result.len, 64, &res, ignore, sizeof ignore) == 0 &&
            cJSON_IsArray(res)) {
            for (const cJSON *row = res->child; row; row = row->next) {
                json_write_tree(&out, row);
                buf_putc(&out, '\n');
            }
        } else if (st == REMOTE_OK) {
            buf_printf(&out, "%s\n", result.p);
        }
        cJSON_Delete(res);
    }
    if (st == REMOTE_OK) fwrite(out.p ? out.p : "", 1, out.len, stdout);
    else if (st == REMOTE_EUNKNOWN) fprintf(stderr, "iptv-agent remote: %s\n", err);
    else fprintf(stderr, "iptv-agent remote: %s error: %s\n", remote_status_name(st), err);
    buf_free(&out);
    buf_free(&result);
    remote_free(r);
    free(ptext);
    cJSON_Delete(doc);
    return exit_for(st);
}

/* ---- introspect ------------------------------------------------------------------ */

enum { T_NULL, T_BOOL, T_INT, T_REAL, T_TEXT, T_JSON, T_MIXED };
static const char *const type_names[] = {"unknown (null in sample)", "boolean", "integer", "real",
                                         "text", "json", "mixed"};

struct sample {
    int *types;          /* per column, merged over the sampled rows */
    char **example;      /* per column, first non-null value as JSON */
    size_t ncols, cap;
    size_t rows;
    struct buf one;      /* scratch for an example value */
};

static int sample_begin(void *ctx)
{
    struct sample *s = ctx;
    for (size_t i = 0; i < s->ncols; i++) { free(s->example[i]); s->example[i] = NULL; s->types[i] = T_NULL; }
    s->ncols = 0;
    s->rows = 0;
    return 0;
}

static int sample_value(void *ctx, size_t col, const struct json_val *v)
{
    struct sample *s = ctx;
    if (col >= 4096) return 1;
    if (col >= s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 32;
        while (cap <= col) cap *= 2;
        s->types = xrealloc(s->types, cap * sizeof *s->types);
        s->example = xrealloc(s->example, cap * sizeof *s->example);
        for (size_t i = s->cap; i < cap; i++) { s->types[i] = T_NULL; s->example[i] = NULL; }
        s->cap = cap;
    }
    if (col >= s->ncols) s->ncols = col + 1;
    int t = v->type == JV_NULL ? T_NULL : v->type == JV_BOOL ? T_BOOL : v->type == JV_INT ? T_INT
          : v->type == JV_REAL ? T_REAL : v->type == JV_TEXT ? T_TEXT : T_JSON;
    if (t == T_NULL) return 0;
    int *cur = &s->types[col];
    if (*cur == T_NULL) *cur = t;
    else if ((*cur == T_INT && t == T_REAL) || (*cur == T_REAL && t == T_INT)) *cur = T_REAL;
    else if (*cur != t) *cur = T_MIXED;
    if (!s->example[col]) {
        buf_reset(&s->one);
        json_write_val(&s->one, v);
        if (s->one.len > 60) { s->one.len = 57; buf_puts(&s->one, "..."); }
        s->example[col] = xstrdup(s->one.p);
    }
    return 0;
}

static int sample_row_end(void *ctx, size_t row, size_t ncols)
{
    ((struct sample *)ctx)->rows++;
    return 0;
}

/* One scalar result (count, min, max) as text. */
struct scalars {
    struct buf vals[2];
    size_t n;
};

static int scalars_begin(void *ctx)
{
    struct scalars *s = ctx;
    buf_reset(&s->vals[0]);
    buf_reset(&s->vals[1]);
    s->n = 0;
    return 0;
}

static int scalars_value(void *ctx, size_t col, const struct json_val *v)
{
    struct scalars *s = ctx;
    if (col < 2) {
        json_write_val(&s->vals[col], v);
        if (col + 1 > s->n) s->n = col + 1;
    }
    return 0;
}

static const char introspect_usage[] =
    "usage: iptv-agent introspect [--key COLUMN] TABLE\n"
    "\n"
    "Learn a portal table's column count and value types (from a sample of rows),\n"
    "its row count and key range, and print a [[table]] block for agent.toml.\n"
    "The portal sends rows without column names, so columns are numbered: list\n"
    "the real names in `columns` to select them explicitly.\n"
    "Exit: 0 ok, 1 portal error (e.g. forbidden table), 2 usage.\n";

static int valid_ident(const char *s)
{
    if (!*s || strlen(s) > 63 || !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_')) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

int cmd_introspect(const struct config *cfg, int argc, char **argv)
{
    if (cmd_wants_help(argc, argv)) { fputs(introspect_usage, stdout); return 0; }
    const char *table = NULL, *key = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--key") && i + 1 < argc) key = argv[++i];
        else if (!table && argv[i][0] != '-') table = argv[i];
        else { fprintf(stderr, "iptv-agent introspect: unexpected argument %s\n%s", argv[i], introspect_usage); return 2; }
    }
    if (!table) { fputs(introspect_usage, stderr); return 2; }
    const struct config_table *ct = config_table_find(cfg, table);
    if (!key) key = ct && ct->key ? ct->key : "id";
    if (!valid_ident(table) || !valid_ident(key)) {
        fprintf(stderr, "iptv-agent introspect: \"%s\": not a valid table or column name\n",
                valid_ident(table) ? key : table);
        return 2;
    }
    char err[IA_ERRLEN];
    remote *r = remote_from_config(cfg, err, sizeof err);
    if (!r) { fprintf(stderr, "iptv-agent introspect: %s\n", err); return 1; }

    struct sample smp = {0};
    struct scalars cnt = {0}, range = {0};
    static const struct json_rows_cb sample_cb = {sample_begin, NULL, sample_value, sample_row_end};
    static const struct json_rows_cb scalar_cb = {scalars_begin, NULL, scalars_value, NULL};
    struct buf q = {0};
    enum remote_status st;
    buf_printf(&q, "{\"data\":[\"*\"],\"from\":\"%s\",\"limit\":20}", table);
    st = remote_query(r, "select", q.p, &sample_cb, &smp, err, sizeof err);
    if (st == REMOTE_OK) {
        buf_reset(&q);
        buf_printf(&q, "{\"data\":[{\"function\":\"count\",\"args\":[\"*\"]}],\"from\":\"%s\"}", table);
        st = remote_query(r, "select", q.p, &scalar_cb, &cnt, err, sizeof err);
    }
    if (st == REMOTE_OK && smp.rows > 0) {
        buf_reset(&q);
        buf_printf(&q, "{\"data\":[{\"function\":\"min\",\"args\":\"%s\"},{\"function\":\"max\",\"args\":\"%s\"}],"
                       "\"from\":\"%s\"}", key, key, table);
        st = remote_query(r, "select", q.p, &scalar_cb, &range, err, sizeof err);
    }
    int rc = 0;
    if (st != REMOTE_OK) {
        fprintf(stderr, "iptv-agent introspect: table %s: %s error: %s\n", table, remote_status_name(st), err);
        rc = 1;
    } else {
        char when[32];
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        printf("# introspected %s at %s\n", table, when);
        printf("# %zu columns (positional: the portal sends no names), %s rows", smp.ncols,
               cnt.n ? cnt.vals[0].p : "?");
        if (range.n == 2) printf(", %s from %s to %s", key, range.vals[0].p, range.vals[1].p);
        printf("\n# sampled %zu rows:\n", smp.rows);
        for (size_t i = 0; i < smp.ncols; i++) {
            char name[32];
            snprintf(name, sizeof name, "Field_%zu", i + 1);
            printf("#   %-9s %-24s e.g. %s\n", name, type_names[smp.types[i]], smp.example[i] ? smp.example[i] : "null");
        }
        printf("[[table]]\nname = \"%s\"\nstrategy = \"%s\"\nkey = \"%s\"\n", table,
               ct ? config_strategy_name(ct->strategy) : "full", key);
        if (ct && ct->cursor) printf("cursor = \"%s\"\n", ct->cursor);
        printf("# columns = [...]  # the real names, in the portal's order, to select explicitly\n");
    }
    for (size_t i = 0; i < smp.ncols; i++) free(smp.example[i]);
    free(smp.example);
    free(smp.types);
    buf_free(&smp.one);
    for (int i = 0; i < 2; i++) { buf_free(&cnt.vals[i]); buf_free(&range.vals[i]); }
    buf_free(&q);
    remote_free(r);
    return rc;
}
