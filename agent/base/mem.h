/* mem.h — allocation that never returns NULL.
 *
 * Like Redis' zmalloc: running out of memory is not a recoverable condition for
 * the agent (the journal is the durable copy; a restart resumes), so these print
 * one line and abort instead of threading ENOMEM through every caller. Whoever
 * calls x*alloc frees with free(). */
#ifndef IA_MEM_H
#define IA_MEM_H
#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

#endif
