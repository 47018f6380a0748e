/* test_json.c — the JSON module: exact int64, strictness with line:column
 * errors, depth bound, the streaming row reader, and the writers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/json.h"

static void parse_fails(const char *text, const char *expect)
{
    cJSON *j = NULL;
    char err[256];
    if (json_parse(text, strlen(text), 0, &j, err, sizeof err) == 0)
        fail_msg("parsed but should not: %s", text);
    assert_null(j);
    if (!strstr(err, expect)) fail_msg("%s: error \"%s\" lacks \"%s\"", text, err, expect);
}

static void test_int64_exact(void **state)
{
    const char *t = "[9223372036854775807,-9223372036854775808,9007199254740993,0,-0,1.5,1e3,"
                    "9223372036854775808]";
    cJSON *j;
    char err[256];
    assert_int_equal(json_parse(t, strlen(t), 0, &j, err, sizeof err), 0);
    int64_t v;
    assert_true(json_int64(cJSON_GetArrayItem(j, 0), &v));
    assert_true(v == INT64_MAX);
    assert_true(json_int64(cJSON_GetArrayItem(j, 1), &v));
    assert_true(v == INT64_MIN);
    assert_true(json_int64(cJSON_GetArrayItem(j, 2), &v));
    assert_true(v == 9007199254740993LL);              /* 2^53 + 1: a double cannot hold it */
    assert_true(json_int64(cJSON_GetArrayItem(j, 3), &v) && v == 0);
    assert_true(json_int64(cJSON_GetArrayItem(j, 4), &v) && v == 0);
    assert_false(json_int64(cJSON_GetArrayItem(j, 5), &v));   /* fraction */
    assert_false(json_int64(cJSON_GetArrayItem(j, 6), &v));   /* exponent */
    assert_false(json_int64(cJSON_GetArrayItem(j, 7), &v));   /* beyond int64 */
    assert_true(fabs(cJSON_GetArrayItem(j, 5)->valuedouble - 1.5) < 1e-12);
    struct buf b = {0};
    json_write_tree(&b, j);
    assert_string_equal(b.p, t);                        /* literals come back as written */
    buf_free(&b);
    cJSON_Delete(j);
}

static void test_strings(void **state)
{
    const char *t = "{\"k\":\"\\u041f\\u0440\\u0438\\u0432\\u0435\\u0442 \\ud83d\\ude00 \\\"q\\\" \\\\ \\n\\t\",\"e\":\"\"}";
    cJSON *j;
    char err[256];
    assert_int_equal(json_parse(t, strlen(t), 0, &j, err, sizeof err), 0);
    assert_string_equal(cJSON_GetObjectItem(j, "k")->valuestring, "Привет 😀 \"q\" \\ \n\t");
    assert_string_equal(cJSON_GetObjectItem(j, "e")->valuestring, "");
    cJSON_Delete(j);
}

static void test_errors_name_position(void **state)
{
    parse_fails("{\"a\":\n  [1,]}", "line 2, column 6");
    parse_fails("{\"a\":1,\"a\":2}", "duplicate object key");
    parse_fails("[01]", "line 1, column 3");
    parse_fails("[1.]", "digit expected after '.'");
    parse_fails("\"abc", "unterminated string");
    parse_fails("\"a\x01\"", "control character");
    parse_fails("\"\\x\"", "invalid escape");
    parse_fails("\"\\ud800\"", "unpaired surrogate");
    parse_fails("[tru]", "invalid literal");
    parse_fails("[1] x", "trailing characters");
    parse_fails("", "value expected");
    parse_fails("{\"a\" 1}", "':' expected");
    parse_fails("[\"a\\u0000b\"]", "NUL");
}

static void test_depth_bound(void **state)
{
    char deep[200];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    cJSON *j;
    char err[256];
    assert_int_equal(json_parse(deep, 200, 100, &j, err, sizeof err), 0);
    cJSON_Delete(j);
    assert_int_equal(json_parse(deep, 200, 99, &j, err, sizeof err), -1);
    assert_non_null(strstr(err, "nesting too deep"));
}

struct collect {
    struct buf b;
    int begins;
    size_t rows, cols_last;
    int stop_at_row;     /* -1: never */
};

static int c_begin(void *ctx) { struct collect *c = ctx; c->begins++; buf_reset(&c->b); return 0; }
static int c_row_begin(void *ctx, size_t row)
{
    struct collect *c = ctx;
    if ((int)row == c->stop_at_row) return 1;
    buf_putc(&c->b, '[');
    return 0;
}
static int c_value(void *ctx, size_t col, const struct json_val *v)
{
    struct collect *c = ctx;
    if (col) buf_putc(&c->b, ',');
    json_write_val(&c->b, v);
    return 0;
}
static int c_row_end(void *ctx, size_t row, size_t ncols)
{
    struct collect *c = ctx;
    buf_puts(&c->b, "]");
    c->rows++;
    c->cols_last = ncols;
    return 0;
}
static const struct json_rows_cb cb = {c_begin, c_row_begin, c_value, c_row_end};

static enum json_rpc_kind rows(const char *body, struct collect *c, char *msg, char *err)
{
    buf_free(&c->b);
    memset(c, 0, sizeof *c);
    c->stop_at_row = -1;
    return json_rpc_rows(body, strlen(body), &cb, c, msg, 256, err, 256);
}

static void test_rows_typed(void **state)
{
    struct collect c = {0};
    char msg[256], err[256];
    const char *body = "{\"id\":3,\"result\":[[9223372036854775807,-1.25,3.0,\"a\\u0000b\",true,false,null,"
                       "[1,{\"x\":[]}],{\"k\":\"v\"},\"\"],[]],\"jsonrpc\":\"2.0\"}";
    assert_int_equal(rows(body, &c, msg, err), JSON_RPC_RESULT);
    assert_int_equal(c.rows, 2);
    assert_int_equal(c.begins, 1);
    /* embedded NUL survives (length-carrying text), 3.0 stays a float, JSON raw */
    assert_int_equal(c.b.len, strlen("[9223372036854775807,-1.25,3.0,\"a\\u0000b\",true,false,null,"
                                     "[1,{\"x\":[]}],{\"k\":\"v\"},\"\"][]"));
    assert_memory_equal(c.b.p, "[9223372036854775807,-1.25,3.0,\"a\\u0000b\",true,false,null,[1,{\"x\":[]}],"
                               "{\"k\":\"v\"},\"\"][]", c.b.len);
    buf_free(&c.b);
}

static void test_rows_error_shapes(void **state)
{
    struct collect c = {0};
    char msg[256], err[256];
    assert_int_equal(rows("{\"jsonrpc\":\"2.0\",\"error\":{\"code\":1,\"message\":\"bad query\"}}", &c, msg, err),
                     JSON_RPC_ERROR);
    assert_string_equal(msg, "bad query");
    assert_int_equal(rows("{\"error\":\"plain string error\"}", &c, msg, err), JSON_RPC_ERROR);
    assert_string_equal(msg, "plain string error");
    assert_int_equal(rows("{\"error\":null,\"result\":[]}", &c, msg, err), JSON_RPC_RESULT);
    assert_int_equal(rows("{\"result\":{\"session_id\":\"x\"}}", &c, msg, err), JSON_RPC_BAD);
    assert_non_null(strstr(err, "not an array of rows"));
    assert_int_equal(rows("{\"result\":[1]}", &c, msg, err), JSON_RPC_BAD);
    assert_non_null(strstr(err, "row is not an array"));
    assert_int_equal(rows("{\"result\":[[1,2],[3", &c, msg, err), JSON_RPC_BAD);
    assert_non_null(strstr(err, "at end of input"));
    assert_int_equal(rows("<html>500</html>", &c, msg, err), JSON_RPC_BAD);
    assert_int_equal(rows("{\"jsonrpc\":\"2.0\"}", &c, msg, err), JSON_RPC_BAD);
    assert_non_null(strstr(err, "neither result nor error"));
    assert_int_equal(rows("{\"result\":[]} {}", &c, msg, err), JSON_RPC_BAD);
    buf_free(&c.b);
}

static void test_rows_caller_stop(void **state)
{
    struct collect c = {0};
    char msg[256], err[256];
    c.stop_at_row = 1;
    const char *body = "{\"result\":[[1],[2],[3]]}";
    assert_int_equal(json_rpc_rows(body, strlen(body), &cb, &c, msg, sizeof msg, err, sizeof err), JSON_RPC_STOPPED);
    assert_non_null(strstr(err, "stopped by caller"));
    assert_int_equal(c.rows, 1);
    buf_free(&c.b);
}

static void test_rows_text(void **state)
{
    char msg[256], err[256];
    struct buf out = {0};
    const char *body = "{\"result\":[[1,\"a\"],[2,null],[]]}";
    struct json_rows_text arr = {&out, 0, 0};
    buf_puts(&out, "stale");                      /* begin starts over */
    assert_int_equal(json_rpc_rows(body, strlen(body), &json_rows_text_cb, &arr, msg, sizeof msg, err, sizeof err),
                     JSON_RPC_RESULT);
    assert_string_equal(out.p, "[[1,\"a\"],[2,null],[]]");
    assert_int_equal(arr.rows, 3);
    struct json_rows_text lines = {&out, 1, 0};
    assert_int_equal(json_rpc_rows(body, strlen(body), &json_rows_text_cb, &lines, msg, sizeof msg, err, sizeof err),
                     JSON_RPC_RESULT);
    assert_string_equal(out.p, "[1,\"a\"]\n[2,null]\n[]\n");
    const char *empty = "{\"result\":[]}";
    assert_int_equal(json_rpc_rows(empty, strlen(empty), &json_rows_text_cb, &arr, msg, sizeof msg, err, sizeof err),
                     JSON_RPC_RESULT);
    assert_string_equal(out.p, "[]");
    assert_int_equal(arr.rows, 0);
    buf_free(&out);
}

static void test_write_double_shortest(void **state)
{
    struct buf b = {0};
    double vals[] = {0.1, 1.0 / 3.0, 1e300, -2.5e-310, 3.0, 123456789012345680.0};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        buf_reset(&b);
        json_write_double(&b, vals[i]);
        assert_true(strtod(b.p, NULL) == vals[i]);          /* round trip */
        assert_non_null(strpbrk(b.p, ".e"));                /* stays a float */
    }
    buf_reset(&b);
    json_write_double(&b, 0.1);
    assert_string_equal(b.p, "0.1");                        /* shortest, not 0.10000000000000001 */
    buf_reset(&b);
    json_write_double(&b, NAN);
    assert_string_equal(b.p, "null");
    buf_free(&b);
}

static void test_write_string_escapes(void **state)
{
    struct buf b = {0};
    { const char *in = "a\"b\\c\n\x01\x1f Ж"; json_write_string(&b, in, strlen(in)); }
    assert_string_equal(b.p, "\"a\\\"b\\\\c\\n\\u0001\\u001f Ж\"");
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_int64_exact),        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_errors_name_position), cmocka_unit_test(test_depth_bound),
        cmocka_unit_test(test_rows_typed),         cmocka_unit_test(test_rows_error_shapes),
        cmocka_unit_test(test_rows_caller_stop),   cmocka_unit_test(test_rows_text),
        cmocka_unit_test(test_write_double_shortest),
        cmocka_unit_test(test_write_string_escapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
