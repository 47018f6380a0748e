/* remote.h — the portal client: JSON-RPC/JSONSQL over HTTP(S) with libcurl.
 *
 * One remote owns one curl easy handle (keep-alive, Accept-Encoding on) and the
 * portal session. It logs in with authorize_user when it has no session, sends
 * `Iptvportal-Authorization: sessionid=...` with every query, logs in again
 * once when the portal says the session is gone (HTTP 401/403 naming the session,
 * or a JSON-RPC error saying so) and fails with REMOTE_EAUTH on a second refusal.
 *
 * Transient failures — connect errors, timeouts, resets, HTTP 5xx, truncated or
 * non-JSON bodies — are retried up to `retries` times with exponential backoff and
 * full jitter; the final error lists what happened on each try. Responses larger
 * than `max_response` are refused (never buffered without bound).
 *
 * Writes (insert/update/delete) are not idempotent, so they are never resent
 * once the request may have reached the portal: a write goes out on a fresh
 * connection (libcurl would otherwise resend a request whose reused connection
 * died without a byte of answer), only a failure that provably came before
 * sending (DNS, connect, TLS handshake) is retried, and a lost or unreadable
 * answer is REMOTE_EUNKNOWN. A write refused for its session is the exception:
 * the portal checks the session before it runs a statement, so after logging
 * in again the write is sent once more. A write's `result` may be rows (with
 * `returning`) or a row count (`"result": 1`, as PostgreSQL reports it).
 *
 * Secrets: the password is copied in, used only in the login body, never put in
 * an error or log line, and wiped by remote_free(). Not thread-safe: one thread
 * uses a remote at a time. The caller frees a remote with remote_free(). */
#ifndef IA_REMOTE_H
#define IA_REMOTE_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/base/buf.h"
#include "agent/base/json.h"

/* Error classes, so callers can decide what to do. */
enum remote_status {
    REMOTE_OK = 0,
    REMOTE_ETRANSPORT,   /* network, timeout, 5xx, bad body: gave up after retries */
    REMOTE_EAUTH,        /* login refused, or session refused again after re-login */
    REMOTE_EFORBIDDEN,   /* HTTP 403 (not about the session): the account may not read this */
    REMOTE_ERPC,         /* the portal answered with a JSON-RPC error (bad query etc.) */
    REMOTE_EPROTOCOL,    /* unusable answer: too large, unexpected HTTP status or shape */
    REMOTE_ECONFIG,      /* missing url/username/password or bad option */
    REMOTE_EUNKNOWN      /* a write whose answer was lost or unreadable: the portal may
                            have applied it; never resent, check before retrying */
};

struct remote_opts {
    const char *url;          /* base URL: http(s)://host[:port][/prefix]; /api/... is appended */
    const char *username;
    const char *password;     /* copied; wiped on free */
    int64_t timeout_ms;       /* per HTTP request (0: 30 s) */
    int retries;              /* extra tries for transient failures */
    bool verify_tls;          /* false logs a loud warning */
    const char *ca_file;      /* NULL: system bundle */
    int64_t max_response;     /* bytes of decoded body (0: 256 MiB) */
    int64_t backoff_base_ms;  /* first backoff ceiling (0: 200 ms) */
    int64_t backoff_max_ms;   /* backoff ceiling cap (0: 30 s) */
    uint64_t seed;            /* jitter PRNG seed (0: from time and pid) */
};

struct remote_stats {
    uint64_t requests;        /* HTTP requests sent, logins included */
    uint64_t logins;          /* successful authorize_user calls */
    uint64_t retries;         /* tries repeated after a transient failure */
    uint64_t bytes_in;        /* decoded response bytes */
};

typedef struct remote remote;

/* NULL with err on a bad option (no url, username or password). */
remote *remote_new(const struct remote_opts *opts, char *err, size_t errlen);
void remote_free(remote *r);

/* Log in now (also done lazily by the calls below). */
enum remote_status remote_login(remote *r, char *err, size_t errlen);

/* Send one statement: method "select"|"insert"|"update"|"delete", params a JSON
 * object text. Rows of the result are handed to cb (see json.h for `begin`); a
 * write answered with a count hands over no rows (remote_write returns it). */
enum remote_status remote_query(remote *r, const char *method, const char *params_json,
                                const struct json_rows_cb *cb, void *ctx,
                                char *err, size_t errlen);

/* Send one insert/update/delete (the write rules above). On REMOTE_OK *result
 * holds the portal's `result` as JSON text, whatever its shape: rows
 * ("[[7]]"), a count ("1"), "[]" or "null". The caller owns result. */
enum remote_status remote_write(remote *r, const char *method, const char *params_json,
                                struct buf *result, char *err, size_t errlen);

/* Send one select as a client sent it (the local API's pass-through: serve.h).
 * On REMOTE_OK *result holds the portal's `result` JSON text as it sent it. On
 * REMOTE_ERPC or REMOTE_EFORBIDDEN from a JSON-RPC error, *rpc_error holds the
 * portal's `error` member as JSON text (else it is left empty): the portal's
 * own answer to pass on. Retried like remote_query (a select is idempotent).
 * The caller owns both buffers. */
enum remote_status remote_select(remote *r, const char *params_json, struct buf *result, struct buf *rpc_error,
                                 char *err, size_t errlen);

struct config;
/* Build a remote from agent.toml's [remote] (password from getenv(password_env)). */
remote *remote_from_config(const struct config *cfg, char *err, size_t errlen);

/* While *cancel is non-zero, transfers abort and no further try or backoff
 * wait starts (REMOTE_ETRANSPORT "cancelled"). For a daemon shutting down. */
void remote_set_cancel(remote *r, const atomic_int *cancel);

const struct remote_stats *remote_get_stats(const remote *r);
const char *remote_status_name(enum remote_status s);

#endif
