/* serve_auth.c — see serve_auth.h. The token, the account, the session table. */
#include "agent/serve/serve_auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "agent/base/clock.h"
#include "agent/base/mem.h"

struct session {
    char sid[SERVE_AUTH_SID_LEN + 1];      /* "" : free */
    int64_t expires_ms;                    /* monotonic (the clock hook's) */
};

struct serve_auth {
    enum config_auth mode;
    char *token, *username, *password;     /* NULL: none */
    size_t token_len, username_len, password_len;
    int64_t ttl_ms;
    int64_t (*clock_ms)(void *arg);
    void *clock_arg;
    struct session *sessions;              /* a ring in issue order */
    int cap, next;
    int used;                              /* slots ever filled (the ring fills from 0): what a lookup scans */
};

static int64_t mono_ms(void *arg)
{
    (void)arg;
    return clock_mono_ms();
}

static char *dup_secret(const char *s, size_t *len)
{
    if (!s || !*s) { *len = 0; return NULL; }
    *len = strlen(s);
    return xstrdup(s);
}

static void free_secret(char *s, size_t len)
{
    if (!s) return;
    explicit_bzero(s, len);
    free(s);
}

/* Equal iff same length and bytes; the time taken depends on the length of
 * the secret `b` only, never on where `a` first differs. */
static int ct_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    unsigned char diff = (unsigned char)(alen != blen);
    for (size_t i = 0; i < blen; i++) diff |= (unsigned char)((i < alen ? (unsigned char)a[i] : 0) ^ (unsigned char)b[i]);
    return diff == 0;
}

serve_auth *serve_auth_new(const struct serve_auth_opts *o, char *err, size_t errlen)
{
    int account = o->username && *o->username && o->password && *o->password;
    int token = o->token && *o->token;
    if (o->mode == AUTH_PORTAL && !account && !token) {
        snprintf(err, errlen, "serve: [serve] auth = \"portal\" lets clients log in with the [remote] username and "
                              "password or the API token, and this agent has neither: set token_env (the API "
                              "token), or [remote] username and the password variable, or auth = \"none\" to "
                              "leave the local API open to loopback clients");
        return NULL;
    }
    serve_auth *a = xcalloc(1, sizeof *a);
    a->mode = o->mode;
    a->token = dup_secret(o->token, &a->token_len);
    if (account) {
        a->username = dup_secret(o->username, &a->username_len);
        a->password = dup_secret(o->password, &a->password_len);
    }
    a->ttl_ms = o->ttl_ms > 0 ? o->ttl_ms : SERVE_AUTH_DEFAULT_TTL_MS;
    a->clock_ms = o->clock_ms ? o->clock_ms : mono_ms;
    a->clock_arg = o->clock_arg;
    a->cap = o->max_sessions > 0 ? o->max_sessions : SERVE_AUTH_MAX_SESSIONS;
    a->sessions = xcalloc((size_t)a->cap, sizeof *a->sessions);
    return a;
}

void serve_auth_free(serve_auth *a)
{
    if (!a) return;
    free_secret(a->token, a->token_len);
    free_secret(a->username, a->username_len);
    free_secret(a->password, a->password_len);
    explicit_bzero(a->sessions, sizeof *a->sessions * (size_t)a->cap);
    free(a->sessions);
    free(a);
}

int serve_auth_has_token(const serve_auth *a) { return a->token != NULL; }

enum config_auth serve_auth_mode(const serve_auth *a) { return a->mode; }

int serve_auth_sessions(const serve_auth *a)
{
    int n = 0;
    for (int i = 0; i < a->used; i++) n += a->sessions[i].sid[0] != '\0';
    return n;
}

int serve_auth_login(serve_auth *a, const char *username, const char *password,
                     char sid[SERVE_AUTH_SID_LEN + 1], char *err, size_t errlen)
{
    const char *u = username ? username : "", *p = password ? password : "";
    size_t ul = strlen(u), pl = strlen(p);
    int ok;
    if (a->mode == AUTH_NONE && !a->token) {
        ok = 1;                            /* open by choice */
    } else {
        /* Both compares always run: the time does not say which secret was near. */
        int by_token = a->token ? ct_equal(p, pl, a->token, a->token_len) : 0;
        int by_account = 0;
        if (a->mode == AUTH_PORTAL && a->username) {
            int user = ct_equal(u, ul, a->username, a->username_len);
            int pass = ct_equal(p, pl, a->password, a->password_len);
            by_account = user & pass;
        }
        ok = by_token | by_account;
    }
    if (!ok) return 0;
    unsigned char rnd[SERVE_AUTH_SID_LEN / 2];
    size_t got = 0;
    while (got < sizeof rnd) {
        ssize_t n = getrandom(rnd + got, sizeof rnd - got, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            snprintf(err, errlen, "cannot make a session id: getrandom: %s", n < 0 ? strerror(errno) : "no bytes");
            return -1;
        }
        got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof rnd; i++) snprintf(sid + 2 * i, 3, "%02x", rnd[i]);
    explicit_bzero(rnd, sizeof rnd);
    struct session *s = &a->sessions[a->next];           /* the oldest issued, or a free slot */
    memcpy(s->sid, sid, SERVE_AUTH_SID_LEN + 1);
    s->expires_ms = a->clock_ms(a->clock_arg) + a->ttl_ms;
    a->next = (a->next + 1) % a->cap;
    if (a->used < a->cap) a->used++;
    return 1;
}

static int bearer_ok(const serve_auth *a, const char *h)
{
    if (!a->token || !h) return 0;
    while (*h == ' ') h++;
    if (strncasecmp(h, "Bearer ", 7) != 0) return 0;
    h += 7;
    while (*h == ' ') h++;
    size_t n = strlen(h);
    while (n && h[n - 1] == ' ') n--;
    return ct_equal(h, n, a->token, a->token_len);
}

/* A live session named by "sessionid=SID"; its expiry slides. An expired one is forgotten. */
static int session_ok(serve_auth *a, const char *h)
{
    if (!h || strncmp(h, "sessionid=", 10) != 0) return 0;
    h += 10;
    if (strlen(h) != SERVE_AUTH_SID_LEN) return 0;
    int64_t now = a->clock_ms(a->clock_arg);
    for (int i = 0; i < a->used; i++) {
        struct session *s = &a->sessions[i];
        /* The selector: half the id, compared plainly; the whole id in constant time. */
        if (!s->sid[0] || memcmp(s->sid, h, SERVE_AUTH_SID_LEN / 2) != 0) continue;
        if (!ct_equal(h, SERVE_AUTH_SID_LEN, s->sid, SERVE_AUTH_SID_LEN)) continue;
        if (s->expires_ms <= now) {
            explicit_bzero(s, sizeof *s);
            return 0;
        }
        s->expires_ms = now + a->ttl_ms;
        return 1;
    }
    return 0;
}

int serve_auth_token_ok(serve_auth *a, const char *authorization, const char *session)
{
    if (!a->token) return 1;
    return bearer_ok(a, authorization) || session_ok(a, session);
}

int serve_auth_portal_ok(serve_auth *a, const char *authorization, const char *session)
{
    if (a->mode == AUTH_NONE) return serve_auth_token_ok(a, authorization, session);
    return bearer_ok(a, authorization) || session_ok(a, session);
}
