/* utf8.h — the one UTF-8 encoder and the one decoder that checks a sequence.
 *
 * Valid means what RFC 3629 says: shortest form, no surrogates (U+D800..DFFF),
 * nothing past U+10FFFF. The JSON and TOML readers, and the JSONSQL functions
 * (regexp_replace, upper/lower), read and write characters only through here. */
#ifndef IA_UTF8_H
#define IA_UTF8_H
#include <stddef.h>
#include <stdint.h>

#include "agent/base/buf.h"

#define UTF8_MAX 4            /* bytes of the longest sequence */

/* cp (<= U+10FFFF; the caller checks) into out: the number of bytes, 1..4. */
size_t utf8_encode(uint32_t cp, char out[UTF8_MAX]);
/* The same, appended to b. */
void utf8_put(struct buf *b, uint32_t cp);

/* The sequence at s, of at most avail bytes: its length (1..4) with *cp set,
 * or why not. Continuation bytes are read in order up to the first bad one, so
 * a NUL-terminated s may pass avail UTF8_MAX. */
#define UTF8_EBYTE (-1)       /* s[0] starts no sequence (0x80..0xBF, 0xF8..0xFF) */
#define UTF8_ETRUNC (-2)      /* the sequence needs more than avail bytes */
#define UTF8_EBAD (-3)        /* a bad continuation byte, overlong, surrogate or past U+10FFFF */
int utf8_decode(const void *s, size_t avail, uint32_t *cp);

#endif
