/* err.h — the one size of an error-message buffer.
 *
 * A function that can fail takes (char *err, size_t errlen) and writes one line
 * naming what failed; its caller holds that line in `char err[IA_ERRLEN]`. One
 * size everywhere, so a message handed up through the layers is never cut by
 * a smaller buffer on the way; a buffer that adds context to such a message
 * holds IA_ERRLEN plus room for it. 2048 is the largest size in use before:
 * a portal error with the history of every try fits, as do a path or two of
 * the storage directory. (A header only: there is no code.) */
#ifndef IA_ERR_H
#define IA_ERR_H

#define IA_ERRLEN 2048

#endif
