/* utf8.c — see utf8.h. */
#include "agent/base/utf8.h"

size_t utf8_encode(uint32_t cp, char out[UTF8_MAX])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

void utf8_put(struct buf *b, uint32_t cp)
{
    char o[UTF8_MAX];
    buf_append(b, o, utf8_encode(cp, o));
}

int utf8_decode(const void *s, size_t avail, uint32_t *cp)
{
    const unsigned char *u = s;
    if (avail == 0) return UTF8_ETRUNC;
    uint32_t c = u[0], min;
    int n;
    if (c < 0x80) { n = 1; min = 0; }
    else if ((c & 0xE0) == 0xC0) { n = 2; c &= 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { n = 3; c &= 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { n = 4; c &= 0x07; min = 0x10000; }
    else return UTF8_EBYTE;
    if (avail < (size_t)n) return UTF8_ETRUNC;
    for (int i = 1; i < n; i++) {
        if ((u[i] & 0xC0) != 0x80) return UTF8_EBAD;
        c = (c << 6) | (u[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return UTF8_EBAD;
    *cp = c;
    return n;
}
