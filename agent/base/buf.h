/* buf.h — a growable byte buffer, always NUL-terminated after `len` bytes.
 *
 * The owner of a struct buf calls buf_free(); a zeroed struct is an empty buffer.
 * Growth aborts on out-of-memory (see mem.h). */
#ifndef IA_BUF_H
#define IA_BUF_H
#include <stdarg.h>
#include <stddef.h>

struct buf {
    char  *p;    /* bytes, NUL after len; NULL until first append */
    size_t len;  /* bytes in use */
    size_t cap;  /* bytes allocated */
};

void buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *data, size_t n);
void buf_puts(struct buf *b, const char *s);
void buf_putc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
void buf_put_int(struct buf *b, long long v);  /* decimal, without printf (per cell) */
void buf_reset(struct buf *b);               /* len = 0, keeps the allocation */
char *buf_detach(struct buf *b);             /* caller frees the result; b becomes empty */
void buf_free(struct buf *b);

#endif
