/* err.h — the one size of an error-message buffer.
 *
 * A function that can fail takes (char *err, size_t errlen) and writes one line
 * naming what failed; its caller holds that line in `char err[IA_ERRLEN]`.
 * One size everywhere, so a message handed up through several layers, each
 * adding what it was doing, is cut nowhere on the way. 2048 is the largest any
 * of them used: a portal error with the history of every try fits, as do a
 * path or two of the storage directory. (A header only: there is no code.) */
#ifndef IA_ERR_H
#define IA_ERR_H

#define IA_ERRLEN 2048

#endif
