/* test_utf8.c — the encoder at each length boundary, every scalar value
 * through encode and decode, and each way a sequence is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "agent/base/utf8.h"

static void expect_encode(uint32_t cp, const char *want)
{
    char o[UTF8_MAX];
    size_t n = utf8_encode(cp, o);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(o, want, n);
}

static void test_encode_boundaries(void **state)
{
    expect_encode(0x41, "A");
    expect_encode(0x7F, "\x7F");
    expect_encode(0x80, "\xC2\x80");
    expect_encode(0x7FF, "\xDF\xBF");
    expect_encode(0x800, "\xE0\xA0\x80");
    expect_encode(0x20AC, "\xE2\x82\xAC");
    expect_encode(0xFFFF, "\xEF\xBF\xBF");
    expect_encode(0x10000, "\xF0\x90\x80\x80");
    expect_encode(0x10FFFF, "\xF4\x8F\xBF\xBF");

    struct buf b = {0};
    utf8_put(&b, 'x');
    utf8_put(&b, 0x416);           /* Ж */
    utf8_put(&b, 0x1F600);
    assert_int_equal(b.len, 7);
    assert_string_equal(b.p, "x\xD0\x96\xF0\x9F\x98\x80");
    buf_free(&b);
}

static void test_round_trip(void **state)
{
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        char o[UTF8_MAX];
        size_t n = utf8_encode(cp, o);
        uint32_t back = 0xFFFFFFFF;
        if (utf8_decode(o, n, &back) != (int)n || back != cp) fail_msg("U+%04X does not round trip", cp);
        if (n > 1 && utf8_decode(o, n - 1, &back) != UTF8_ETRUNC) fail_msg("U+%04X cut short is not ETRUNC", cp);
    }
}

static int dec(const char *s, size_t n)
{
    uint32_t cp;
    return utf8_decode(s, n, &cp);
}

static void test_refusals(void **state)
{
    assert_int_equal(dec("", 0), UTF8_ETRUNC);
    assert_int_equal(dec("\x80", 1), UTF8_EBYTE);          /* a continuation byte first */
    assert_int_equal(dec("\xBF", 1), UTF8_EBYTE);
    assert_int_equal(dec("\xF8\x88\x80\x80\x80", 5), UTF8_EBYTE);
    assert_int_equal(dec("\xFF", 1), UTF8_EBYTE);
    assert_int_equal(dec("\xE2\x82", 2), UTF8_ETRUNC);
    assert_int_equal(dec("\xE2\x41\xAC", 3), UTF8_EBAD);   /* bad continuation */
    assert_int_equal(dec("\xC0\x80", 2), UTF8_EBAD);       /* overlong, each length */
    assert_int_equal(dec("\xC1\xBF", 2), UTF8_EBAD);
    assert_int_equal(dec("\xE0\x9F\xBF", 3), UTF8_EBAD);
    assert_int_equal(dec("\xF0\x8F\xBF\xBF", 4), UTF8_EBAD);
    assert_int_equal(dec("\xED\xA0\x80", 3), UTF8_EBAD);   /* surrogates */
    assert_int_equal(dec("\xED\xBF\xBF", 3), UTF8_EBAD);
    assert_int_equal(dec("\xF4\x90\x80\x80", 4), UTF8_EBAD);   /* past U+10FFFF */
    assert_int_equal(dec("\xF5\x80\x80\x80", 4), UTF8_EBAD);
    /* A NUL-terminated string with avail UTF8_MAX stops at its NUL. */
    assert_int_equal(dec("\xE2\x82", UTF8_MAX), UTF8_EBAD);
    uint32_t cp = 7;
    assert_int_equal(utf8_decode("", UTF8_MAX, &cp), 1);
    assert_int_equal(cp, 0);
    assert_int_equal(utf8_decode("\xE2\x82\xAC!", UTF8_MAX, &cp), 3);
    assert_int_equal(cp, 0x20AC);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_boundaries),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
