/* compare.c — classify a statement by the two answers (diff.h: diff_compare).
 *
 * Values are compared by their JSON text as parsed by agent/base/json (numbers
 * keep their literal): the same JSON type (an integer literal is not a float
 * literal: 1 and 1.0 differ), integers exactly (int64 beyond 2^53 included),
 * floats within 1e-9 relative, strings byte for byte, arrays and objects member
 * by member. Rows are compared in order when the statement's order is fully
 * determined, else as multisets (both sides sorted by a canonical text). */
#include "tests/diff/diff.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/json.h"
#include "agent/base/mem.h"

const char *dclass_name(enum dclass c)
{
    static const char *const N[] = {"same", "agent_refused", "both_refused", "portal_refused", "different"};
    return N[c];
}

/* ---- values ------------------------------------------------------------------------------- */

enum vkind { VK_NULL, VK_BOOL, VK_INT, VK_FLOAT, VK_STRING, VK_ARRAY, VK_OBJECT, VK_OTHER };

static enum vkind vkind(const cJSON *v)
{
    if (cJSON_IsNull(v)) return VK_NULL;
    if (cJSON_IsBool(v)) return VK_BOOL;
    if (cJSON_IsNumber(v)) return v->valuestring && !strpbrk(v->valuestring, ".eE") ? VK_INT : VK_FLOAT;
    if (cJSON_IsString(v)) return VK_STRING;
    if (cJSON_IsArray(v)) return VK_ARRAY;
    if (cJSON_IsObject(v)) return VK_OBJECT;
    return VK_OTHER;
}

static double num(const cJSON *v) { return v->valuestring ? strtod(v->valuestring, NULL) : v->valuedouble; }

/* 0 when p and a are the same value by the rules above. */
static int vcmp(const cJSON *p, const cJSON *a)
{
    enum vkind k = vkind(p);
    if (k != vkind(a)) return 1;
    switch (k) {
    case VK_NULL: return 0;
    case VK_BOOL: return cJSON_IsTrue(p) != cJSON_IsTrue(a);
    case VK_INT: return strcmp(p->valuestring, a->valuestring) != 0;
    case VK_FLOAT: {
        double x = num(p), y = num(a);
        return !(x == y || fabs(x - y) <= 1e-9 * fmax(fabs(x), fabs(y)));
    }
    case VK_STRING: return strcmp(p->valuestring, a->valuestring) != 0;
    case VK_ARRAY: {
        const cJSON *x = p->child, *y = a->child;
        for (; x && y; x = x->next, y = y->next)
            if (vcmp(x, y)) return 1;
        return x || y;
    }
    case VK_OBJECT: {
        if (cJSON_GetArraySize(p) != cJSON_GetArraySize(a)) return 1;
        for (const cJSON *x = p->child; x; x = x->next) {
            const cJSON *y = cJSON_GetObjectItemCaseSensitive(a, x->string);
            if (!y || vcmp(x, y)) return 1;
        }
        return 0;
    }
    default: return 1;
    }
}

/* A canonical text for sorting rows into multisets: the type first, floats
 * rounded (equal within the tolerance sorts together), objects by key. */
static void canon(struct buf *b, const cJSON *v)
{
    enum vkind k = vkind(v);
    buf_putc(b, (char)('0' + k));
    switch (k) {
    case VK_FLOAT: buf_printf(b, "%.8e", num(v)); break;
    case VK_ARRAY:
        buf_putc(b, '[');
        for (const cJSON *x = v->child; x; x = x->next) {
            canon(b, x);
            buf_putc(b, ',');
        }
        buf_putc(b, ']');
        break;
    case VK_OBJECT: {
        /* keys in byte order: a selection sort over a handful of members */
        const char *last = NULL;
        for (int n = cJSON_GetArraySize(v); n > 0; n--) {
            const cJSON *min = NULL;
            for (const cJSON *x = v->child; x; x = x->next)
                if ((!last || strcmp(x->string, last) > 0) && (!min || strcmp(x->string, min->string) < 0)) min = x;
            if (!min) break;
            json_write_string(b, min->string, strlen(min->string));
            buf_putc(b, ':');
            canon(b, min);
            buf_putc(b, ',');
            last = min->string;
        }
        break;
    }
    default: json_write_tree(b, v); break;
    }
    buf_putc(b, '\x1f');
}

/* ---- rows --------------------------------------------------------------------------------- */

static void show(struct buf *why, const cJSON *v)
{
    struct buf t = {0};
    if (v) json_write_tree(&t, v);
    else buf_puts(&t, "(none)");
    buf_printf(why, "%.200s", t.p);
    buf_free(&t);
}

static int row_cmp(const cJSON *p, const cJSON *a, int i, struct buf *why)
{
    if (!cJSON_IsArray(p) || !cJSON_IsArray(a)) {
        buf_printf(why, "row %d is not an array", i);
        return 1;
    }
    int np = cJSON_GetArraySize(p), na = cJSON_GetArraySize(a);
    if (np != na) {
        buf_printf(why, "row %d: portal %d values, agent %d", i, np, na);
        return 1;
    }
    int j = 0;
    for (const cJSON *x = p->child, *y = a->child; x; x = x->next, y = y->next, j++)
        if (vcmp(x, y)) {
            buf_printf(why, "row %d value %d: portal ", i, j);
            show(why, x);
            buf_puts(why, ", agent ");
            show(why, y);
            return 1;
        }
    return 0;
}

struct keyed {
    char *key;
    const cJSON *row;
};

static int keyed_cmp(const void *x, const void *y)
{
    return strcmp(((const struct keyed *)x)->key, ((const struct keyed *)y)->key);
}

static struct keyed *sorted_rows(const cJSON *rows, int n)
{
    struct keyed *k = xcalloc((size_t)n + 1, sizeof *k);
    int i = 0;
    for (const cJSON *r = rows->child; r && i < n; r = r->next, i++) {
        struct buf b = {0};
        canon(&b, r);
        k[i].key = buf_detach(&b);
        k[i].row = r;
    }
    qsort(k, (size_t)n, sizeof *k, keyed_cmp);
    return k;
}

static int rows_cmp(enum dorder ord, const cJSON *p, const cJSON *a, struct buf *why)
{
    int np = cJSON_GetArraySize(p), na = cJSON_GetArraySize(a);
    if (np != na) {
        buf_printf(why, "rows: portal %d, agent %d", np, na);
        return 1;
    }
    if (ord == ORD_COUNT) return 0;
    if (ord == ORD_FULL) {
        int i = 0;
        for (const cJSON *x = p->child, *y = a->child; x; x = x->next, y = y->next, i++)
            if (row_cmp(x, y, i, why)) return 1;
        return 0;
    }
    struct keyed *kp = sorted_rows(p, np), *ka = sorted_rows(a, na);
    int rc = 0;
    for (int i = 0; i < np && !rc; i++) rc = row_cmp(kp[i].row, ka[i].row, i, why);
    if (rc) buf_puts(why, " (rows compared as multisets, sorted)");
    for (int i = 0; i < np; i++) {
        free(kp[i].key);
        free(ka[i].key);
    }
    free(kp);
    free(ka);
    return rc;
}

/* ---- envelopes ---------------------------------------------------------------------------- */

/* What one JSON-RPC envelope holds: rows (*rows set), an error, or neither. */
enum env { ENV_ROWS, ENV_ERROR, ENV_MALFORMED };

static enum env envelope(const cJSON *env, const cJSON **rows, struct buf *msg)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(env, "error");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(env, "result");
    *rows = NULL;
    if (e && !cJSON_IsNull(e)) {
        show(msg, e);
        return ENV_ERROR;
    }
    if (!cJSON_IsArray(r)) {
        buf_puts(msg, "neither an error nor a result array: ");
        show(msg, env);
        return ENV_MALFORMED;
    }
    *rows = r;
    return ENV_ROWS;
}

/* A malformed answer from the agent is a difference (a refusal must be a
 * JSON-RPC error); from the portal it counts as the portal refusing. */
static enum dclass classify_one(enum dorder ord, const cJSON *p, const cJSON *a, struct buf *why)
{
    struct buf pm = {0}, am = {0};
    const cJSON *pr, *ar;
    envelope(p, &pr, &pm);   /* a malformed portal answer: the portal refused */
    enum env ae = envelope(a, &ar, &am);
    enum dclass c;
    if (ae == ENV_MALFORMED) {
        c = DC_DIFFERENT;
        buf_printf(why, "agent: %s", am.p);
    } else if (!pr && !ar) {
        c = DC_BOTH_REFUSED;
        buf_printf(why, "portal: %s; agent: %s", pm.p, am.p);
    } else if (!pr) {
        c = DC_PORTAL_REFUSED;
        buf_printf(why, "portal: %s", pm.p);
    } else if (!ar) {
        c = DC_AGENT_REFUSED;
        buf_printf(why, "agent: %s", am.p);
    } else {
        c = rows_cmp(ord, pr, ar, why) ? DC_DIFFERENT : DC_SAME;
    }
    buf_free(&pm);
    buf_free(&am);
    return c;
}

static cJSON *parse_answer(const struct danswer *x, const char *who, struct buf *why)
{
    cJSON *doc = NULL;
    char err[160];
    if (x->status < 0) {
        buf_printf(why, "%s: %s", who, x->body.p);
        return NULL;
    }
    if (json_parse(x->body.p ? x->body.p : "", x->body.len, 256, &doc, err, sizeof err) != 0) {
        buf_printf(why, "%s: HTTP %ld, not JSON (%s): %.200s", who, x->status, err, x->body.p ? x->body.p : "");
        return NULL;
    }
    return doc;
}

static enum dclass worst(enum dclass x, enum dclass y) { return x > y ? x : y; }

enum dclass diff_compare(const struct dstmt *st, const struct danswer *p, const struct danswer *a, struct buf *why)
{
    buf_reset(why);
    cJSON *pd = parse_answer(p, "portal", why), *ad = parse_answer(a, "agent", why);
    enum dclass c;
    if (!ad) {
        c = DC_DIFFERENT;   /* no answer, or not JSON: never an allowed refusal */
    } else if (!pd) {
        c = DC_PORTAL_REFUSED;
    } else if (!st->raw || !cJSON_IsArray(pd)) {
        c = classify_one(st->ord, pd, ad, why);
    } else if (!cJSON_IsArray(ad)) {
        /* a batch answered by one envelope: a refusal when it is an error */
        struct buf m = {0};
        const cJSON *rows;
        c = envelope(ad, &rows, &m) == ENV_ERROR ? DC_AGENT_REFUSED : DC_DIFFERENT;
        buf_printf(why, "a batch of %d answered by one object (HTTP %ld): %s", cJSON_GetArraySize(pd), a->status, m.p);
        buf_free(&m);
    } else if (cJSON_GetArraySize(pd) != cJSON_GetArraySize(ad)) {
        c = DC_DIFFERENT;
        buf_printf(why, "batch: portal %d answers, agent %d", cJSON_GetArraySize(pd), cJSON_GetArraySize(ad));
    } else {
        c = DC_SAME;
        int i = 0;
        for (const cJSON *x = pd->child, *y = ad->child; x; x = x->next, y = y->next, i++) {
            struct buf w = {0};
            enum dclass one = classify_one(st->ord, x, y, &w);
            if (one != DC_SAME) buf_printf(why, "batch[%d]: %s; ", i, w.p);
            c = worst(c, one);
            buf_free(&w);
        }
        if (c == DC_SAME && p->status != a->status) {
            c = DC_DIFFERENT;
            buf_printf(why, "batch: HTTP %ld from the portal, %ld from the agent", p->status, a->status);
        }
    }
    cJSON_Delete(pd);
    cJSON_Delete(ad);
    return c;
}
