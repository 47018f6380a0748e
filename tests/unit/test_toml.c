/* test_toml.c — the TOML-subset reader: every value form, positions, and every
 * refusal with its exact "name:line:col: message". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/config/toml.h"

static int parse(const char *text, struct toml_doc *d, char *err, size_t errlen)
{
    return toml_parse("t.toml", text, strlen(text), d, err, errlen);
}

/* Parse must fail with exactly `want`, and leave the doc empty. */
static void expect_err_n(const char *text, size_t len, const char *want)
{
    struct toml_doc d = {(struct toml_table *)1, 7};
    char err[512];
    int rc = toml_parse("t.toml", text, len, &d, err, sizeof err);
    if (rc == 0) toml_free(&d);
    assert_int_equal(rc, -1);
    assert_string_equal(err, want);
    assert_null(d.tables);
    assert_int_equal(d.ntables, 0);
}

static void expect_err(const char *text, const char *want)
{
    expect_err_n(text, strlen(text), want);
}

/* The value of key k in table t (which must exist). */
static const struct toml_value *val(const struct toml_doc *d, int t, const char *k)
{
    assert_true(t < d->ntables);
    const struct toml_kv *kv = toml_table_get(&d->tables[t], k);
    assert_non_null(kv);
    return &kv->val;
}

static void test_scalars(void **state)
{
    (void)state;
    struct toml_doc d;
    char err[256];
    const char *text =
        "s = \"hello\"\n"
        "lit = 'C:\\path\\no\"escape'\n"
        "empty = \"\"\n"
        "i = 42\n"
        "neg = -17\n"
        "pos = +99\n"
        "zero = 0\n"
        "mzero = -0\n"
        "sep = 1_000_000\n"
        "max = 9223372036854775807\n"
        "min = -9223372036854775808\n"
        "t = true\n"
        "f = false\n"
        "dash-key_9 = 1\n"
        "\tspaced   =\t  'x'   # trailing comment\n";
    assert_int_equal(parse(text, &d, err, sizeof err), 0);
    assert_int_equal(d.ntables, 1);
    assert_null(d.tables[0].name);
    assert_int_equal(d.tables[0].nkvs, 15);
    assert_int_equal(val(&d, 0, "s")->type, TOML_STRING);
    assert_string_equal(val(&d, 0, "s")->s, "hello");
    assert_string_equal(val(&d, 0, "lit")->s, "C:\\path\\no\"escape");
    assert_string_equal(val(&d, 0, "empty")->s, "");
    assert_int_equal(val(&d, 0, "i")->type, TOML_INT);
    assert_int_equal(val(&d, 0, "i")->i, 42);
    assert_int_equal(val(&d, 0, "neg")->i, -17);
    assert_int_equal(val(&d, 0, "pos")->i, 99);
    assert_int_equal(val(&d, 0, "zero")->i, 0);
    assert_int_equal(val(&d, 0, "mzero")->i, 0);
    assert_int_equal(val(&d, 0, "sep")->i, 1000000);
    assert_true(val(&d, 0, "max")->i == INT64_MAX);
    assert_true(val(&d, 0, "min")->i == INT64_MIN);
    assert_int_equal(val(&d, 0, "t")->type, TOML_BOOL);
    assert_true(val(&d, 0, "t")->b);
    assert_false(val(&d, 0, "f")->b);
    assert_int_equal(val(&d, 0, "dash-key_9")->i, 1);
    assert_string_equal(val(&d, 0, "spaced")->s, "x");
    /* Keys stay in file order with their positions; values know theirs. */
    assert_string_equal(d.tables[0].kvs[0].key, "s");
    assert_string_equal(d.tables[0].kvs[14].key, "spaced");
    assert_int_equal(d.tables[0].kvs[14].line, 15);
    assert_int_equal(d.tables[0].kvs[14].col, 2);
    assert_int_equal(d.tables[0].kvs[14].val.line, 15);
    assert_int_equal(d.tables[0].kvs[14].val.col, 15);
    assert_int_equal(val(&d, 0, "neg")->col, 7);
    assert_null(toml_table_get(&d.tables[0], "nope"));
    toml_free(&d);
    assert_null(d.tables);
}

static void test_escapes(void **state)
{
    (void)state;
    struct toml_doc d;
    char err[256];
    const char *text =
        "a = \"q\\\" b\\\\ t\\t n\\n r\\r b\\b f\\f\"\n"
        "cyr = \"\\u041f\\u0440\\u0438\\u0432\\u0435\\u0442\"\n"
        "big = \"\\U0001F600 \\U00000041\"\n"
        "raw = \"Привет, мир\ttab\"\n"
        "lit = '\\u0041 stays'\n";
    assert_int_equal(parse(text, &d, err, sizeof err), 0);
    assert_string_equal(val(&d, 0, "a")->s, "q\" b\\ t\t n\n r\r b\b f\f");
    assert_string_equal(val(&d, 0, "cyr")->s, "Привет");
    assert_string_equal(val(&d, 0, "big")->s, "\xF0\x9F\x98\x80 A");
    assert_string_equal(val(&d, 0, "raw")->s, "Привет, мир\ttab");
    assert_string_equal(val(&d, 0, "lit")->s, "\\u0041 stays");
    toml_free(&d);
}

static void test_arrays(void **state)
{
    (void)state;
    struct toml_doc d;
    char err[256];
    const char *text =
        "empty = []\n"
        "one = [1]\n"
        "strs = [ \"a\", 'b' , \"c\" ]\n"
        "multi = [\n"
        "  \"id\",      # the key\n"
        "  # a whole-line comment\n"
        "\n"
        "  \"name\",\n"
        "]\n"
        "mixed = [1, \"x\", true]\n"
        "nested = [[1, 2], [], [[3]]]\n"
        "after = 1\n";
    assert_int_equal(parse(text, &d, err, sizeof err), 0);
    assert_int_equal(val(&d, 0, "empty")->type, TOML_ARRAY);
    assert_int_equal(val(&d, 0, "empty")->nitems, 0);
    assert_int_equal(val(&d, 0, "one")->nitems, 1);
    assert_int_equal(val(&d, 0, "one")->items[0].i, 1);
    const struct toml_value *s = val(&d, 0, "strs");
    assert_int_equal(s->nitems, 3);
    assert_string_equal(s->items[1].s, "b");
    assert_int_equal(s->items[1].col, 15);
    const struct toml_value *m = val(&d, 0, "multi");
    assert_int_equal(m->nitems, 2);
    assert_string_equal(m->items[0].s, "id");
    assert_string_equal(m->items[1].s, "name");
    assert_int_equal(m->items[1].line, 8);
    assert_int_equal(m->items[1].col, 3);
    const struct toml_value *x = val(&d, 0, "mixed");
    assert_int_equal(x->items[0].type, TOML_INT);
    assert_int_equal(x->items[1].type, TOML_STRING);
    assert_int_equal(x->items[2].type, TOML_BOOL);
    const struct toml_value *n = val(&d, 0, "nested");
    assert_int_equal(n->nitems, 3);
    assert_int_equal(n->items[0].nitems, 2);
    assert_int_equal(n->items[0].items[1].i, 2);
    assert_int_equal(n->items[1].nitems, 0);
    assert_int_equal(n->items[2].items[0].items[0].i, 3);
    assert_int_equal(val(&d, 0, "after")->line, 12);
    toml_free(&d);
}

static void test_tables(void **state)
{
    (void)state;
    struct toml_doc d;
    char err[256];
    const char *text =
        "# leading comment\n"
        "top = 1\n"
        "\n"
        "[remote]   # comment after header\n"
        "url = \"u\"\n"
        "[[table]]\n"
        "name = \"a\"\n"
        "  [ storage ]\n"
        "[[table]]\n"
        "name = \"b\"\n"
        "[[ table ]]\n";
    assert_int_equal(parse(text, &d, err, sizeof err), 0);
    assert_int_equal(d.ntables, 6);
    assert_int_equal(d.tables[0].nkvs, 1);
    assert_string_equal(d.tables[1].name, "remote");
    assert_false(d.tables[1].is_array);
    assert_int_equal(d.tables[1].line, 4);
    assert_int_equal(d.tables[1].col, 1);
    assert_string_equal(d.tables[2].name, "table");
    assert_true(d.tables[2].is_array);
    assert_string_equal(val(&d, 2, "name")->s, "a");
    assert_string_equal(d.tables[3].name, "storage");
    assert_int_equal(d.tables[3].col, 3);
    assert_int_equal(d.tables[3].nkvs, 0);
    assert_string_equal(val(&d, 4, "name")->s, "b");
    assert_int_equal(d.tables[4].line, 9);
    assert_true(d.tables[5].is_array);
    assert_int_equal(d.tables[5].nkvs, 0);
    toml_free(&d);
}

static void test_line_ends_bom_empty(void **state)
{
    (void)state;
    struct toml_doc d;
    char err[256];
    assert_int_equal(parse("\xEF\xBB\xBF" "a = 1\r\n[t]\r\nb = [\r\n 2,\r\n]\r\n# c\r\n", &d, err,
                           sizeof err), 0);
    assert_int_equal(val(&d, 0, "a")->i, 1);
    assert_int_equal(val(&d, 0, "a")->col, 5);   /* the BOM is not a column */
    assert_int_equal(val(&d, 1, "b")->items[0].i, 2);
    assert_int_equal(val(&d, 1, "b")->items[0].line, 4);
    toml_free(&d);
    assert_int_equal(parse("", &d, err, sizeof err), 0);
    assert_int_equal(d.ntables, 1);
    assert_int_equal(d.tables[0].nkvs, 0);
    toml_free(&d);
    assert_int_equal(parse("a = 1", &d, err, sizeof err), 0);   /* no final newline */
    toml_free(&d);
    /* Not NUL-terminated: only len bytes are read. */
    assert_int_equal(toml_parse("t.toml", "a = 12345", 6, &d, err, sizeof err), 0);
    assert_int_equal(val(&d, 0, "a")->i, 12);
    toml_free(&d);
}

static void test_type_names(void **state)
{
    (void)state;
    assert_string_equal(toml_type_name(TOML_STRING), "string");
    assert_string_equal(toml_type_name(TOML_INT), "integer");
    assert_string_equal(toml_type_name(TOML_BOOL), "boolean");
    assert_string_equal(toml_type_name(TOML_ARRAY), "array");
}

static void test_unsupported(void **state)
{
    (void)state;
    expect_err("x = 1.5\n", "t.toml:1:5: floats are not supported by this reader (`1.5`)");
    expect_err("x = 1e5\n", "t.toml:1:5: floats are not supported by this reader (`1e5`)");
    expect_err("x = -inf\n", "t.toml:1:5: floats are not supported by this reader (`-inf`)");
    expect_err("x = nan\n", "t.toml:1:5: floats are not supported by this reader (`nan`)");
    expect_err("x = -2E-3\n", "t.toml:1:5: floats are not supported by this reader (`-2E-3`)");
    expect_err("x = 1_000.5\n",
               "t.toml:1:5: floats are not supported by this reader (`1_000.5`)");
    expect_err("a = 1\nx = { a = 1 }\n",
               "t.toml:2:5: inline tables are not supported by this reader");
    expect_err("d = 1979-05-27\n",
               "t.toml:1:5: dates and times are not supported by this reader (`1979-05-27`)");
    expect_err("d = 07:32:00\n",
               "t.toml:1:5: dates and times are not supported by this reader (`07:32:00`)");
    expect_err("d = 1979-05-27T07:32:00Z\n", "t.toml:1:5: dates and times are not supported "
                                              "by this reader (`1979-05-27T07:32:00Z`)");
    expect_err("s = \"\"\"multi\"\"\"\n",
               "t.toml:1:5: multi-line strings are not supported by this reader");
    expect_err("s = '''multi'''\n",
               "t.toml:1:5: multi-line strings are not supported by this reader");
    expect_err("a.b = 1\n", "t.toml:1:2: dotted keys are not supported by this reader");
    expect_err("\"a\" = 1\n", "t.toml:1:1: quoted keys are not supported by this reader");
    expect_err("[a.b]\n", "t.toml:1:3: dotted table names are not supported by this reader");
    expect_err("['a']\n", "t.toml:1:2: quoted table names are not supported by this reader");
    expect_err("x = 0x1F\n", "t.toml:1:5: hexadecimal, octal and binary integers are not "
                             "supported by this reader (`0x1F`)");
    expect_err("x = \"a\\u0000b\"\n",
               "t.toml:1:7: \\u escape of U+0000 is not supported by this reader");
    char deep[80] = "x = ";
    for (int i = 0; i < 33; i++) strcat(deep, "[");
    expect_err(deep, "t.toml:1:37: arrays nested deeper than 32 are not supported by this reader");
}

static void test_string_errors(void **state)
{
    (void)state;
    expect_err("a = 1\ns = \"abc\n", "t.toml:2:5: unterminated string");
    expect_err("s = \"abc", "t.toml:1:5: unterminated string");
    expect_err("s = 'abc\nt = 1\n", "t.toml:1:5: unterminated string");
    expect_err("s = \"ab\\\"", "t.toml:1:5: unterminated string");
    expect_err("s = \"a\\xb\"\n", "t.toml:1:7: invalid escape `\\x` (allowed: \\\" \\\\ \\b \\t "
                                  "\\n \\f \\r \\uHHHH \\UHHHHHHHH)");
    expect_err("s = \"a\\e\"\n", "t.toml:1:7: invalid escape `\\e` (allowed: \\\" \\\\ \\b \\t "
                                 "\\n \\f \\r \\uHHHH \\UHHHHHHHH)");
    expect_err("s = \"\\u12G4\"\n", "t.toml:1:6: invalid escape: \\u needs 4 hex digits");
    expect_err("s = \"\\U0041\"\n", "t.toml:1:6: invalid escape: \\U needs 8 hex digits");
    expect_err("s = \"\\uD800\"\n",
               "t.toml:1:6: invalid escape: U+D800 is not a Unicode scalar value");
    expect_err("s = \"\\U00110000\"\n",
               "t.toml:1:6: invalid escape: U+110000 is not a Unicode scalar value");
    expect_err("s = \"a\\\n", "t.toml:1:7: invalid escape at end of line");
    expect_err("s = \"a\x01\"\n",
               "t.toml:1:7: control character U+0001 in string (write it as an escape)");
    expect_err("s = 'a\x7f'\n",
               "t.toml:1:7: control character U+007F in string (write it as an escape)");
    expect_err("s = \"a\rb\"\n",
               "t.toml:1:7: control character U+000D in string (write it as an escape)");
    /* Columns count characters: the bad escape sits after 6 Cyrillic letters. */
    expect_err("s = \"Привет\\q\"\n", "t.toml:1:12: invalid escape `\\q` (allowed: \\\" \\\\ "
                                     "\\b \\t \\n \\f \\r \\uHHHH \\UHHHHHHHH)");
}

static void test_integer_errors(void **state)
{
    (void)state;
    expect_err("x = 9223372036854775808\n",
               "t.toml:1:5: integer `9223372036854775808` is out of range (64-bit signed)");
    expect_err("x = -9223372036854775809\n",
               "t.toml:1:5: integer `-9223372036854775809` is out of range (64-bit signed)");
    expect_err("x = 99999999999999999999999\n",
               "t.toml:1:5: integer `99999999999999999999999` is out of range (64-bit signed)");
    expect_err("x = 0123\n",
               "t.toml:1:5: invalid integer `0123`: leading zeros are not allowed");
    expect_err("x = -00\n", "t.toml:1:5: invalid integer `-00`: leading zeros are not allowed");
    expect_err("x = 1__0\n", "t.toml:1:5: invalid integer `1__0`: `_` must sit between digits");
    expect_err("x = 10_\n", "t.toml:1:5: invalid integer `10_`: `_` must sit between digits");
    expect_err("x = +_1\n", "t.toml:1:5: invalid value `+_1` (strings need quotes)");
    expect_err("x = 12abc\n", "t.toml:1:5: invalid value `12abc` (strings need quotes)");
    /* A duration without quotes is not mistaken for a float or a date. */
    expect_err("x = 30sec\n", "t.toml:1:5: invalid value `30sec` (strings need quotes)");
    expect_err("x = 5-day\n", "t.toml:1:5: invalid value `5-day` (strings need quotes)");
    expect_err("x = yes\n", "t.toml:1:5: invalid value `yes` (strings need quotes)");
    expect_err("x = trueish\n", "t.toml:1:5: invalid value `trueish` (strings need quotes)");
}

static void test_structure_errors(void **state)
{
    (void)state;
    expect_err("a = 1\nb = 2\na = 3\n", "t.toml:3:1: duplicate key `a` (first set at line 1)");
    expect_err("[t]\na = 1\n[u]\na = 2\n[t]\n", "t.toml:5:1: table `t` is already defined at line 1");
    expect_err("[t]\n[[t]]\n", "t.toml:2:1: table `t` is already defined at line 1 as [...]");
    expect_err("[[t]]\n[t]\n", "t.toml:2:1: table `t` is already defined at line 1 as [[...]]");
    expect_err("t = 1\n[t]\n", "t.toml:2:1: table `t` clashes with the key set at line 1");
    expect_err("x =\n", "t.toml:1:4: key `x`: missing value");
    expect_err("x = # c\n", "t.toml:1:5: key `x`: missing value");
    expect_err("x 1\n", "t.toml:1:3: expected `=` after key `x`, found `1`");
    expect_err("x = 1 2\n", "t.toml:1:7: expected end of line after the value of `x`, found `2`");
    expect_err("x = \"a\"b\n", "t.toml:1:8: expected end of line after the value of `x`, found `b`");
    expect_err("x = [1, 2\n", "t.toml:1:5: unterminated array");
    expect_err("x = [1 2]\n", "t.toml:1:8: expected `,` or `]` in array, found `2`");
    expect_err("x = [,]\n", "t.toml:1:6: expected a value (string, integer, boolean or array), "
                            "found `,`");
    expect_err("x = [1,,]\n", "t.toml:1:8: expected a value (string, integer, boolean or array), "
                              "found `,`");
    expect_err("[t\n", "t.toml:1:3: expected `]` to close the table header, found end of line");
    expect_err("[[t]\n", "t.toml:1:4: expected `]]` to close the table header, found `]`");
    expect_err("[]\n", "t.toml:1:2: expected a table name, found `]`");
    expect_err("[t] x\n", "t.toml:1:5: expected end of line after the table header, found `x`");
    expect_err("= 1\n", "t.toml:1:1: expected a key, a [table] header or a comment, found `=`");
    expect_err("é = 1\n", "t.toml:1:1: expected a key, a [table] header or a comment, found U+00E9");
    expect_err("a = 1\r\r\n", "t.toml:1:6: expected end of line after the value of `a`, found U+000D");
    expect_err("# bad \x01 comment\n", "t.toml:1:7: control character U+0001 in comment");
    expect_err("a = \"\xC3\x28\"\n", "t.toml:1:6: invalid UTF-8 sequence");
    expect_err("a = 1\nb = \"\xFF\"\n", "t.toml:2:6: invalid UTF-8 byte 0xFF");
    expect_err("a = \"\xE2\x82", "t.toml:1:6: truncated UTF-8 sequence");
    expect_err("a = \"\xED\xA0\x80\"\n", "t.toml:1:6: invalid UTF-8 sequence");   /* surrogate */
    expect_err("a = \"\xC0\x80\"\n", "t.toml:1:6: invalid UTF-8 sequence");       /* overlong */
    expect_err_n("a = 1\n\0", 7, "t.toml:2:1: NUL byte in file");
}

static void test_error_buffer_bounds(void **state)
{
    (void)state;
    struct toml_doc d;
    char small[12];
    assert_int_equal(parse("x = 1.5\n", &d, small, sizeof small), -1);
    assert_string_equal(small, "t.toml:1:5:");   /* truncated, still terminated */
    assert_int_equal(parse("x = 1.5\n", &d, NULL, 0), -1);
    /* A long token is shown shortened. */
    char text[200];
    snprintf(text, sizeof text, "x = 1%s.5\n", "0000000000000000000000000000000000000000000000");
    char err[256];
    assert_int_equal(parse(text, &d, err, sizeof err), -1);
    assert_string_equal(err, "t.toml:1:5: floats are not supported by this reader "
                             "(`1000000000000000000000000000000000000000...`)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalars),
        cmocka_unit_test(test_escapes),
        cmocka_unit_test(test_arrays),
        cmocka_unit_test(test_tables),
        cmocka_unit_test(test_line_ends_bom_empty),
        cmocka_unit_test(test_type_names),
        cmocka_unit_test(test_unsupported),
        cmocka_unit_test(test_string_errors),
        cmocka_unit_test(test_integer_errors),
        cmocka_unit_test(test_structure_errors),
        cmocka_unit_test(test_error_buffer_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
