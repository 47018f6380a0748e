/* serve_auth.h — internal to serve*.c: who may use the local API. It owns the
 * secrets serve holds (the API token, the [remote] account's password) and the
 * sessions authorize_user issues.
 *
 * Modes ([serve] auth, docs/interface.md "Local HTTP API"):
 * - AUTH_PORTAL (the default): authorize_user accepts the [remote] account's own
 *   username and password, or the API token as password (with any username: the
 *   token already opens every route). /api/jsonsql/ needs
 *   `Iptvportal-Authorization: sessionid=SID` with a live SID issued here, or
 *   `Authorization: Bearer TOKEN`. With neither an account nor a token nobody
 *   could log in: serve_auth_new refuses (set token_env, or auth = "none").
 * - AUTH_NONE: the portal routes are open as before: without a token any
 *   password logs in and /api/jsonsql/ needs no header; with a token, the
 *   token rules of the other routes apply to them too.
 * The other routes (/sql, /status, /sync, /export, ...) need the token when
 * there is one (Bearer, or a session), in both modes.
 *
 * Sessions: 128 random bits as 32 hex characters. A session lives ttl_ms after
 * its last use (sliding: a client in use is never logged out under it; an
 * idle one after ttl, like a portal's hour). At most max_sessions are kept; a
 * new one evicts the oldest issued. Lookup: the first 16 characters select the
 * candidate slots (a plain compare, which tells an attacker nothing about the
 * other 64 bits), the whole SID is then compared in constant time.
 * Secrets are compared in constant time, never logged, wiped on free.
 * Single-threaded (the event loop thread). The caller frees with serve_auth_free. */
#ifndef IA_SERVE_AUTH_H
#define IA_SERVE_AUTH_H
#include <stddef.h>
#include <stdint.h>

#include "agent/config/config.h"

#define SERVE_AUTH_SID_LEN 32              /* hex characters */
#define SERVE_AUTH_MAX_SESSIONS 10000
#define SERVE_AUTH_DEFAULT_TTL_MS (INT64_C(3600) * 1000)

struct serve_auth_opts {
    enum config_auth mode;
    const char *token;                     /* NULL or "": none */
    const char *username, *password;       /* the [remote] account; NULL or "": unknown */
    int64_t ttl_ms;                        /* <= 0: SERVE_AUTH_DEFAULT_TTL_MS */
    int max_sessions;                      /* <= 0: SERVE_AUTH_MAX_SESSIONS */
    int64_t (*clock_ms)(void *arg);        /* monotonic ms; NULL: clock_mono_ms (tests inject one) */
    void *clock_arg;
};

typedef struct serve_auth serve_auth;

/* Copies what it needs from o. NULL with err when AUTH_PORTAL has no way to log in. */
serve_auth *serve_auth_new(const struct serve_auth_opts *o, char *err, size_t errlen);
void serve_auth_free(serve_auth *a);                 /* wipes the secrets and sessions */

int serve_auth_has_token(const serve_auth *a);
enum config_auth serve_auth_mode(const serve_auth *a);
/* authorize_user: 1 accepted (sid set, NUL-terminated), 0 refused, -1 no
 * randomness for a session id (err says so). username/password may be NULL. */
int serve_auth_login(serve_auth *a, const char *username, const char *password,
                     char sid[SERVE_AUTH_SID_LEN + 1], char *err, size_t errlen);
/* The routes guarded by the token: 1 when there is none, or the request
 * carries it (authorization: the Authorization header) or a live session
 * (session: the Iptvportal-Authorization header). Either header may be NULL. */
int serve_auth_token_ok(serve_auth *a, const char *authorization, const char *session);
/* /api/jsonrpc/'s and /api/jsonsql/'s rule for the mode (see above). */
int serve_auth_portal_ok(serve_auth *a, const char *authorization, const char *session);
int serve_auth_sessions(const serve_auth *a);        /* sessions kept (live or not yet noticed expired) */

#endif
