/* test_diff.c — iptv-diff's parts without a portal: the classification of two
 * answers (JSON types, int64 beyond 2^53, float tolerance, order vs multiset,
 * refusals, batches), the generator (deterministic, valid JSON, a limit only
 * with an order ending in a unique id) and the hand-written cases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "agent/base/json.h"
#include "tests/diff/diff.h"

static enum dclass cls3(enum dorder ord, int raw, const char *portal, const char *agent)
{
    struct dstmt st = {.raw = raw, .ord = ord};
    struct danswer p = {.status = 200}, a = {.status = 200};
    struct buf why = {0};
    buf_puts(&p.body, portal);
    buf_puts(&a.body, agent);
    enum dclass c = diff_compare(&st, &p, &a, &why);
    if (c != DC_SAME) assert_non_null(why.p);   /* every non-same says why */
    buf_free(&why);
    danswer_free(&p);
    danswer_free(&a);
    return c;
}

#define R(rows) "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":" rows "}"
#define ERR "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32602,\"message\":\"no\"}}"

static enum dclass cls(enum dorder ord, const char *p, const char *a) { return cls3(ord, 0, p, a); }

static void test_types(void **state)
{
    (void)state;
    assert_int_equal(cls(ORD_FULL, R("[[1,\"a\",true,null]]"), R("[[1,\"a\",true,null]]")), DC_SAME);
    assert_int_equal(cls(ORD_FULL, R("[[1]]"), R("[[1.0]]")), DC_DIFFERENT);          /* int vs float */
    assert_int_equal(cls(ORD_FULL, R("[[true]]"), R("[[1]]")), DC_DIFFERENT);         /* bool vs int */
    assert_int_equal(cls(ORD_FULL, R("[[null]]"), R("[[\"\"]]")), DC_DIFFERENT);
    assert_int_equal(cls(ORD_FULL, R("[[\"1\"]]"), R("[[1]]")), DC_DIFFERENT);
    assert_int_equal(cls(ORD_FULL, R("[[\"Ёж\"]]"), R("[[\"ёж\"]]")), DC_DIFFERENT);
    /* 2^53 + 1 and 2^53 are one double: compared as literals they differ */
    assert_int_equal(cls(ORD_FULL, R("[[9007199254740993]]"), R("[[9007199254740992]]")), DC_DIFFERENT);
    assert_int_equal(cls(ORD_FULL, R("[[9223372036854775807]]"), R("[[9223372036854775807]]")), DC_SAME);
    /* floats within 1e-9 relative */
    assert_int_equal(cls(ORD_FULL, R("[[0.30000000000000004]]"), R("[[0.3]]")), DC_SAME);
    assert_int_equal(cls(ORD_FULL, R("[[1e3]]"), R("[[1000.0]]")), DC_SAME);
    assert_int_equal(cls(ORD_FULL, R("[[0.3]]"), R("[[0.3001]]")), DC_DIFFERENT);
    /* JSON columns: objects by key, arrays in order, numbers by the same rules */
    assert_int_equal(cls(ORD_FULL, R("[[{\"a\":1,\"b\":[1,2]}]]"), R("[[{\"b\":[1,2],\"a\":1}]]")), DC_SAME);
    assert_int_equal(cls(ORD_FULL, R("[[{\"a\":1}]]"), R("[[{\"a\":1,\"b\":2}]]")), DC_DIFFERENT);
    assert_int_equal(cls(ORD_FULL, R("[[[1,2]]]"), R("[[[2,1]]]")), DC_DIFFERENT);
    assert_int_equal(cls(ORD_FULL, R("[[{\"x\":9007199254740993}]]"), R("[[{\"x\":9007199254740992}]]")),
                     DC_DIFFERENT);
    assert_int_equal(cls(ORD_FULL, R("[[1,2]]"), R("[[1]]")), DC_DIFFERENT);          /* row width */
}

static void test_order(void **state)
{
    (void)state;
    const char *p = R("[[1,\"a\"],[2,\"b\"],[2,\"b\"],[3,null]]");
    const char *swapped = R("[[3,null],[2,\"b\"],[1,\"a\"],[2,\"b\"]]");
    assert_int_equal(cls(ORD_FULL, p, p), DC_SAME);
    assert_int_equal(cls(ORD_FULL, p, swapped), DC_DIFFERENT);
    assert_int_equal(cls(ORD_NONE, p, swapped), DC_SAME);
    /* same count, another multiset (a duplicate moved) */
    assert_int_equal(cls(ORD_NONE, p, R("[[1,\"a\"],[1,\"a\"],[2,\"b\"],[3,null]]")), DC_DIFFERENT);
    assert_int_equal(cls(ORD_NONE, R("[[0.3],[1]]"), R("[[1.0],[0.3]]")), DC_DIFFERENT);   /* 1 vs 1.0 */
    assert_int_equal(cls(ORD_NONE, R("[[0.30000000000000004],[1.5]]"), R("[[1.5],[0.3]]")), DC_SAME);
    assert_int_equal(cls(ORD_COUNT, p, R("[[9],[9],[9],[9]]")), DC_SAME);
    assert_int_equal(cls(ORD_COUNT, p, R("[[9],[9],[9]]")), DC_DIFFERENT);
    assert_int_equal(cls(ORD_NONE, p, R("[]")), DC_DIFFERENT);
}

static void test_refusals(void **state)
{
    (void)state;
    assert_int_equal(cls(ORD_FULL, R("[[1]]"), ERR), DC_AGENT_REFUSED);
    assert_int_equal(cls(ORD_FULL, ERR, ERR), DC_BOTH_REFUSED);
    assert_int_equal(cls(ORD_FULL, ERR, R("[[1]]")), DC_PORTAL_REFUSED);
    /* an error as a plain string is still an error */
    assert_int_equal(cls(ORD_FULL, R("[[1]]"), "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":\"no\"}"), DC_AGENT_REFUSED);
    /* garbage, a cut body, or an envelope with neither: a difference, not a refusal */
    assert_int_equal(cls(ORD_FULL, R("[[1]]"), "<html>oops</html>"), DC_DIFFERENT);
    assert_int_equal(cls(ORD_FULL, R("[[1]]"), "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":[[1]"), DC_DIFFERENT);
    assert_int_equal(cls(ORD_FULL, R("[[1]]"), "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":7}"), DC_DIFFERENT);
    assert_int_equal(cls(ORD_FULL, "not json", R("[[1]]")), DC_PORTAL_REFUSED);

    /* no answer at all from the agent */
    struct dstmt st = {.ord = ORD_FULL};
    struct danswer p = {.status = 200}, a = {.status = -1};
    struct buf why = {0};
    buf_puts(&p.body, R("[[1]]"));
    buf_puts(&a.body, "(no answer)");
    assert_int_equal(diff_compare(&st, &p, &a, &why), DC_DIFFERENT);
    assert_non_null(strstr(why.p, "no answer"));
    buf_free(&why);
    danswer_free(&p);
    danswer_free(&a);
}

static void test_batches(void **state)
{
    (void)state;
    const char *two = "[" R("[[1]]") "," R("[[2]]") "]";
    assert_int_equal(cls3(ORD_FULL, 1, two, two), DC_SAME);
    assert_int_equal(cls3(ORD_FULL, 1, two, "[" R("[[1]]") "," R("[[3]]") "]"), DC_DIFFERENT);
    assert_int_equal(cls3(ORD_FULL, 1, two, "[" R("[[1]]") "," ERR "]"), DC_AGENT_REFUSED);
    assert_int_equal(cls3(ORD_FULL, 1, two, "[" R("[[1]]") "]"), DC_DIFFERENT);
    assert_int_equal(cls3(ORD_FULL, 1, two, ERR), DC_AGENT_REFUSED);     /* one error for the batch */
    assert_int_equal(cls3(ORD_FULL, 1, two, R("[[1]]")), DC_DIFFERENT);  /* one answer for the batch */
}

/* The order_by's last name of params, or NULL. */
static const char *last_order(const cJSON *params)
{
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(params, "order_by");
    if (cJSON_IsArray(o)) o = cJSON_GetArrayItem(o, cJSON_GetArraySize(o) - 1);
    return cJSON_IsString(o) ? o->valuestring : NULL;
}

/* Every data item an aggregate function, no group_by: one row. */
static int one_row(const cJSON *params)
{
    if (cJSON_GetObjectItemCaseSensitive(params, "group_by")) return 0;
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(params, "data");
    for (const cJSON *x = d ? d->child : NULL; x; x = x->next)
        if (!cJSON_GetObjectItemCaseSensitive(x, "function")) return 0;
    return d != NULL;
}

static void test_generator(void **state)
{
    (void)state;
    struct dsamples *s = calloc(1, sizeof *s);   /* no samples: typed stand-ins */
    assert_non_null(s);
    struct dstmt a = {0}, b = {0};
    int kinds_seen = 0;
    static const char *const KINDS[] = {"plain", "functions", "aggregate", "group", "distinct",
                                        "join", "in_select", "from_select", "no_limit"};
    for (int i = 0; i < 1500; i++) {
        dgen_statement(42, i, s, &a);
        dgen_statement(42, i, s, &b);
        assert_string_equal(a.params.p, b.params.p);      /* (seed, i) decides */
        assert_string_equal(a.name, b.name);
        cJSON *doc = NULL;
        char err[200];
        if (json_parse(a.params.p, a.params.len, 64, &doc, err, sizeof err) != 0) fail_msg("%s: %s: %s", a.name, err, a.params.p);
        const cJSON *lim = cJSON_GetObjectItemCaseSensitive(doc, "limit");
        const char *last = last_order(doc);
        if (lim && !cJSON_GetObjectItemCaseSensitive(doc, "group_by") &&
            !cJSON_GetObjectItemCaseSensitive(doc, "distinct")) {
            /* a limit only under an order that ends in a unique id (group by and
             * distinct order by their one key, unique in the result) */
            if (!last || (strcmp(last, "id") != 0 && strcmp(last, "a.id") != 0))
                fail_msg("%s: a limit without a full order: %s", a.name, a.params.p);
        }
        if (!lim) {
            /* without a limit: an aggregate (one row) or a small table */
            const cJSON *from = cJSON_GetObjectItemCaseSensitive(doc, "from");
            int small = cJSON_IsString(from) &&
                        (strcmp(from->valuestring, "tv_category") == 0 || strcmp(from->valuestring, "package") == 0);
            if (!small && !one_row(doc))
                fail_msg("%s: no limit on a big table: %s", a.name, a.params.p);
            if (a.ord == ORD_FULL && (!last || strcmp(last, "id") != 0) && !one_row(doc))
                fail_msg("%s: compared in order without an order: %s", a.name, a.params.p);
        }
        for (int k = 0; k < 9; k++)
            if (strstr(a.name, KINDS[k])) kinds_seen |= 1 << k;
        cJSON_Delete(doc);
    }
    assert_int_equal(kinds_seen, (1 << 9) - 1);
    /* another seed, other statements */
    dgen_statement(43, 0, s, &b);
    dgen_statement(42, 0, s, &a);
    assert_string_not_equal(a.params.p, b.params.p);
    dstmt_free(&a);
    dstmt_free(&b);
    dsamples_free(s);
    free(s);
}

static void test_cases(void **state)
{
    (void)state;
    struct dsamples *s = calloc(1, sizeof *s);
    assert_non_null(s);
    struct dstmt st = {0};
    char names[128][64];
    int n = dcases_count();
    assert_true(n >= 40 && n <= 128);
    for (int i = 0; i < n; i++) {
        dcases_get(i, s, &st);
        for (int j = 0; j < i; j++) assert_string_not_equal(names[j], st.name);
        strcpy(names[i], st.name);
        cJSON *doc = NULL;
        char err[200];
        struct buf body = {0};
        dstmt_body(&st, &body);
        if (json_parse(body.p, body.len, 64, &doc, err, sizeof err) != 0) fail_msg("%s: %s: %s", st.name, err, body.p);
        assert_true(st.raw ? cJSON_IsArray(doc) : cJSON_IsObject(doc));
        assert_null(strchr(body.p, '$'));   /* every placeholder replaced */
        cJSON_Delete(doc);
        buf_free(&body);
    }
    dstmt_free(&st);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_types),     cmocka_unit_test(test_order),     cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_batches),   cmocka_unit_test(test_generator), cmocka_unit_test(test_cases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
