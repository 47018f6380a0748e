/* asserts.h — text assertions for cmocka tests (include after cmocka.h). */
#ifndef IA_HARNESS_ASSERTS_H
#define IA_HARNESS_ASSERTS_H
#include <string.h>

/* hay (may be NULL) contains / lacks needle; the failure shows hay's start. */
#define assert_contains(hay, needle)                                                           \
    do {                                                                                       \
        const char *h_ = (hay), *n_ = (needle);                                                \
        if (!h_ || !strstr(h_, n_)) fail_msg("expected \"%s\" in: %.700s", n_, h_ ? h_ : "(null)"); \
    } while (0)

#define assert_lacks(hay, needle)                                                              \
    do {                                                                                       \
        const char *h_ = (hay), *n_ = (needle);                                                \
        if (h_ && strstr(h_, n_)) fail_msg("unexpected \"%s\" in: %.700s", n_, h_);            \
    } while (0)

#endif
