/* config.c — see config.h. The schema of agent.toml lives here.
 *
 * Order of work: toml_parse() gives a tree; keys outside any section are
 * refused; [defaults] is read first (it may sit anywhere in the file); then every
 * section in file order; then the environment fallbacks. The result is built in
 * a local struct config and copied out only when everything passed, so a caller
 * never sees a half-filled config.
 *
 * Where messages point: a value that is malformed or out of range points at the
 * value; an unknown or refused key, and a rule that ties keys together (listen
 * without token_env, cursor on a full table, columns without the key column),
 * points at the key; a table missing something points at its [[table]] header. */
#include "agent/config/config.h"
#include "agent/base/err.h"
#include "agent/base/mem.h"
#include "agent/config/toml.h"
#include "replay/replay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONFIG_MAX_FILE (16u << 20)   /* a config file larger than this is a mistake */
/* Floors for values that cannot work (docs/interface.md, agent.toml): a
 * portal reply (a login, an error page, one row) must fit in max_response. */
#define MAX_RESPONSE_MIN (64 * KIB)

#define KIB INT64_C(1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)
#define SEC INT64_C(1000)
#define MIN (SEC * 60)
#define HOUR (MIN * 60)
#define DAY (HOUR * 24)

static const char REMOTE_KEYS[] =
    "url, domain, username, password_env, timeout, retries, verify_tls, ca_file, max_response";
static const char STORAGE_KEYS[] = "dir, segment_size, compression_level, retain, compact_interval";
static const char SERVE_KEYS[] = "listen, token_env, export_keep, tokenless_writes";
static const char UPSTREAM_KEYS[] = "url, token_env, interval, timeout, verify_tls, ca_file";
static const char DEFAULTS_KEYS[] = "strategy, key, chunk, ttl, interval, lookback, sweep";
static const char TABLE_KEYS[] =
    "name, strategy, key, cursor, columns, chunk, ttl, interval, lookback, sweep";

struct ctx {
    const char *path;              /* file name for messages */
    char *err;
    size_t errlen;
};

__attribute__((format(printf, 4, 5)))
static int at_fail(struct ctx *x, int line, int col, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (x->errlen) snprintf(x->err, x->errlen, "%s:%d:%d: %s", x->path, line, col, msg);
    return -1;
}

/* An error about the value of kv: "PATH:L:C: key `K`: msg" at the value. */
__attribute__((format(printf, 3, 4)))
static int val_fail(struct ctx *x, const struct toml_kv *kv, const char *fmt, ...)
{
    char msg[448];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return at_fail(x, kv->val.line, kv->val.col, "key `%s`: %s", kv->key, msg);
}

/* The same, pointing at the key itself. */
__attribute__((format(printf, 3, 4)))
static int key_fail(struct ctx *x, const struct toml_kv *kv, const char *fmt, ...)
{
    char msg[448];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return at_fail(x, kv->line, kv->col, "key `%s`: %s", kv->key, msg);
}

static int unknown_key(struct ctx *x, const struct toml_kv *kv, const char *section,
                       const char *known)
{
    return key_fail(x, kv, "unknown key in %s (known: %s)", section, known);
}

static int want(struct ctx *x, const struct toml_kv *kv, enum toml_type t, const char *what)
{
    if (kv->val.type == t) return 0;
    return val_fail(x, kv, "expected %s, got %s", what, toml_type_name(kv->val.type));
}

static bool is_ident(const char *s)
{
    if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_')) return false;
    for (s++; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return false;
    return true;
}

/* Host label(s) for the hosted portal: letters, digits, '-', inner dots. */
static bool is_domain(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || s[0] == '.' || s[0] == '-' || s[n - 1] == '.' || s[n - 1] == '-') return false;
    for (; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '.'))
            return false;
    return true;
}

static void set_str(char **dst, const char *s)
{
    free(*dst);
    *dst = xstrdup(s);
}

static int get_string(struct ctx *x, const struct toml_kv *kv, char **dst)
{
    if (want(x, kv, TOML_STRING, "string") < 0) return -1;
    if (!kv->val.s[0]) return val_fail(x, kv, "must not be empty");
    set_str(dst, kv->val.s);
    return 0;
}

static int get_ident(struct ctx *x, const struct toml_kv *kv, char **dst)
{
    if (want(x, kv, TOML_STRING, "string") < 0) return -1;
    if (!is_ident(kv->val.s))
        return val_fail(x, kv, "\"%s\" is not an identifier ([A-Za-z_][A-Za-z0-9_]*)", kv->val.s);
    set_str(dst, kv->val.s);
    return 0;
}

/* An environment variable's name, e.g. password_env = "IPTVPORTAL_PASSWORD". */
static int get_envname(struct ctx *x, const struct toml_kv *kv, char **dst)
{
    if (want(x, kv, TOML_STRING, "string") < 0) return -1;
    if (!is_ident(kv->val.s))
        return val_fail(x, kv, "\"%s\" is not an environment variable name "
                               "([A-Za-z_][A-Za-z0-9_]*)", kv->val.s);
    set_str(dst, kv->val.s);
    return 0;
}

static int get_int(struct ctx *x, const struct toml_kv *kv, int64_t min, int64_t max, int64_t *dst)
{
    if (want(x, kv, TOML_INT, "integer") < 0) return -1;
    if (kv->val.i < min || kv->val.i > max)
        return val_fail(x, kv, "must be between %lld and %lld, got %lld", (long long)min,
                        (long long)max, (long long)kv->val.i);
    *dst = kv->val.i;
    return 0;
}

static int get_bool(struct ctx *x, const struct toml_kv *kv, bool *dst)
{
    if (want(x, kv, TOML_BOOL, "boolean") < 0) return -1;
    *dst = kv->val.b;
    return 0;
}

/* "<digits><unit>": the number into *n and the unit's start into *unit.
 * Returns NULL or why it failed. */
static const char *split_number(const char *s, uint64_t *n, const char **unit)
{
    if (*s == '-') return "must not be negative";
    if (!(*s >= '0' && *s <= '9')) return "expected an integer followed by a unit";
    uint64_t v = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (uint64_t)(INT64_MAX - (*s - '0')) / 10) return "too large";
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *n = v;
    *unit = s;
    return NULL;
}

/* Multiply into int64 with an overflow check. */
static const char *scale(uint64_t n, int64_t mult, int64_t *out)
{
    if (n > (uint64_t)(INT64_MAX / mult)) return "too large";
    *out = (int64_t)n * mult;
    return NULL;
}

static const char *duration_why(const char *s, int64_t *ms)
{
    static const struct { const char *u; int64_t mult; } units[] = {
        {"ms", 1}, {"s", SEC}, {"m", MIN}, {"h", HOUR}, {"d", DAY},
    };
    uint64_t n;
    const char *unit, *why = split_number(s, &n, &unit);
    if (why) return why;
    if (!*unit) return "missing unit (ms, s, m, h or d)";
    for (size_t i = 0; i < sizeof units / sizeof *units; i++)
        if (strcmp(unit, units[i].u) == 0) return scale(n, units[i].mult, ms);
    return "unknown unit (ms, s, m, h or d)";
}

static const char *size_why(const char *s, int64_t *bytes)
{
    static const struct { const char *u; int64_t mult; } units[] = {
        {"", 1}, {"B", 1}, {"KiB", KIB}, {"MiB", MIB}, {"GiB", GIB},
        {"KB", 1000}, {"MB", 1000000}, {"GB", 1000000000},
    };
    uint64_t n;
    const char *unit, *why = split_number(s, &n, &unit);
    if (why) return why;
    for (size_t i = 0; i < sizeof units / sizeof *units; i++)
        if (strcmp(unit, units[i].u) == 0) return scale(n, units[i].mult, bytes);
    return "unknown unit (B, KiB, MiB, GiB, KB, MB or GB)";
}

int config_parse_duration(const char *s, int64_t *ms)
{
    int64_t v;
    if (duration_why(s, &v)) return -1;
    *ms = v;
    return 0;
}

int config_parse_size(const char *s, int64_t *bytes)
{
    int64_t v;
    if (size_why(s, &v)) return -1;
    *bytes = v;
    return 0;
}

static int get_duration(struct ctx *x, const struct toml_kv *kv, int64_t min, int64_t *dst)
{
    if (want(x, kv, TOML_STRING, "string (a duration like \"30s\")") < 0) return -1;
    int64_t v;
    const char *why = duration_why(kv->val.s, &v);
    if (why) return val_fail(x, kv, "invalid duration \"%s\": %s", kv->val.s, why);
    if (v < min) return val_fail(x, kv, "must be greater than 0");
    *dst = v;
    return 0;
}

static int get_size(struct ctx *x, const struct toml_kv *kv, int64_t min, int64_t *dst)
{
    int64_t v;
    if (kv->val.type == TOML_INT) {
        v = kv->val.i;
        if (v < 0) return val_fail(x, kv, "must not be negative");
    } else if (kv->val.type == TOML_STRING) {
        const char *why = size_why(kv->val.s, &v);
        if (why) return val_fail(x, kv, "invalid size \"%s\": %s", kv->val.s, why);
    } else {
        return val_fail(x, kv, "expected string (a size like \"64MiB\") or integer, got %s",
                        toml_type_name(kv->val.type));
    }
    if (v < min) return val_fail(x, kv, "must be at least %lld bytes", (long long)min);
    *dst = v;
    return 0;
}

/* The port of a URL's authority (after "scheme://"), when it has one: NULL
 * when fine, else why not (1..65535; port 0 means nothing in a URL). */
static const char *url_port_why(const char *auth)
{
    size_t n = strcspn(auth, "/?#");
    const char *end = auth + n, *host_end = auth;
    if (*auth == '[') {                      /* [v6]:port */
        const char *rb = memchr(auth, ']', n);
        if (!rb) return "has an unclosed [ in its host";
        host_end = rb + 1;
    } else {
        const char *at = auth;
        for (const char *p = auth; p < end; p++) if (*p == '@') at = p + 1;   /* user@host */
        host_end = at;
        while (host_end < end && *host_end != ':') host_end++;
    }
    if (host_end >= end || *host_end != ':') return NULL;      /* no port: the scheme's */
    const char *p = host_end + 1;
    if (p == end) return "has an empty port";
    long v = 0;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9') return "has a port that is not a number";
        if ((v = v * 10 + (*p - '0')) > 65535) break;
    }
    if (v < 1 || v > 65535) return "has a port outside 1..65535";
    return NULL;
}

/* A CA bundle must be readable now, not first at connect time. */
static int get_ca_file(struct ctx *x, const struct toml_kv *kv, char **dst)
{
    if (get_string(x, kv, dst) < 0) return -1;
    /* O_NONBLOCK: a FIFO named here must not hang the load. */
    int fd = open(*dst, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat sb;
    if (fd < 0) return val_fail(x, kv, "%s: cannot read: %s", *dst, strerror(errno));
    int reg = fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode);
    close(fd);
    if (!reg) return val_fail(x, kv, "%s: cannot read: not a regular file", *dst);
    return 0;
}

static int get_url(struct ctx *x, const struct toml_kv *kv, char **dst)
{
    if (want(x, kv, TOML_STRING, "string") < 0) return -1;
    const char *s = kv->val.s;
    size_t skip = !strncmp(s, "http://", 7) ? 7 : !strncmp(s, "https://", 8) ? 8 : 0;
    if (!skip) return val_fail(x, kv, "\"%s\" must start with http:// or https://", s);
    if (!s[skip] || s[skip] == '/') return val_fail(x, kv, "\"%s\" has no host", s);
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return val_fail(x, kv, "\"%s\" contains a space or control character", s);
    if (url_port_why(s + skip)) return val_fail(x, kv, "\"%s\": %s", s, url_port_why(s + skip));
    /* "/api/..." is appended to the URL: after a query or fragment it would be
     * part of them, not of the path. */
    if (strpbrk(s, "?#"))
        return val_fail(x, kv, "\"%s\" must not have a query (?) or fragment (#): \"/api/...\" is appended to it", s);
    /* Stored without trailing '/': the remote client appends "/api/...". */
    size_t n = strlen(s);
    while (n > skip && s[n - 1] == '/') n--;
    free(*dst);
    *dst = xstrndup(s, n);
    return 0;
}

int config_listen_split(const char *listen, char *host, size_t hostlen, int *port)
{
    const char *h = listen, *he, *colon;
    bool bracketed = listen[0] == '[';
    if (bracketed) {
        h = listen + 1;
        he = strchr(h, ']');
        if (!he || he[1] != ':') return -1;
        colon = he + 1;
    } else {
        colon = strrchr(listen, ':');
        if (!colon) return -1;
        he = colon;
        if (memchr(h, ':', (size_t)(he - h))) return -1;   /* bare IPv6 needs brackets */
    }
    size_t hn = (size_t)(he - h);
    if (hn == 0 || hn >= hostlen) return -1;
    for (const char *p = h; p < he; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '[' || *p == ']' || *p == '/')
            return -1;
    const char *ps = colon + 1;
    size_t pn = strlen(ps);
    if (pn == 0 || pn > 5) return -1;
    long v = 0;
    for (size_t i = 0; i < pn; i++) {
        if (ps[i] < '0' || ps[i] > '9') return -1;
        v = v * 10 + (ps[i] - '0');
    }
    if (v > 65535) return -1;
    memcpy(host, h, hn);
    host[hn] = '\0';
    if (bracketed) {
        struct in6_addr a6;
        if (inet_pton(AF_INET6, host, &a6) != 1) return -1;
    }
    *port = (int)v;
    return 0;
}

bool config_listen_is_loopback(const char *listen)
{
    char host[256];
    int port;
    if (config_listen_split(listen, host, sizeof host, &port) < 0) return false;
    if (strcasecmp(host, "localhost") == 0) return true;
    struct in_addr a4;
    if (inet_pton(AF_INET, host, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    struct in6_addr a6;
    if (listen[0] == '[' && inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
    return false;
}

static int section_remote(struct ctx *x, const struct toml_table *tb, struct config *c)
{
    for (int i = 0; i < tb->nkvs; i++) {
        const struct toml_kv *kv = &tb->kvs[i];
        const char *k = kv->key;
        int64_t v = 0;
        int rc;
        if (!strcmp(k, "url")) {
            rc = get_url(x, kv, &c->remote.url);
        } else if (!strcmp(k, "domain")) {
            rc = want(x, kv, TOML_STRING, "string");
            if (rc == 0 && !is_domain(kv->val.s))
                rc = val_fail(x, kv, "\"%s\" is not a bare domain like \"example\"", kv->val.s);
            if (rc == 0) set_str(&c->remote.domain, kv->val.s);
        } else if (!strcmp(k, "username")) {
            rc = get_string(x, kv, &c->remote.username);
        } else if (!strcmp(k, "password")) {
            rc = key_fail(x, kv, "secrets do not go in the file; set password_env");
        } else if (!strcmp(k, "password_env")) {
            rc = get_envname(x, kv, &c->remote.password_env);
        } else if (!strcmp(k, "timeout")) {
            rc = get_duration(x, kv, 1, &c->remote.timeout_ms);
        } else if (!strcmp(k, "retries")) {
            rc = get_int(x, kv, 0, 100, &v);
            if (rc == 0) c->remote.retries = (int)v;
        } else if (!strcmp(k, "verify_tls")) {
            rc = get_bool(x, kv, &c->remote.verify_tls);
        } else if (!strcmp(k, "ca_file")) {
            rc = get_ca_file(x, kv, &c->remote.ca_file);
        } else if (!strcmp(k, "max_response")) {
            rc = get_size(x, kv, MAX_RESPONSE_MIN, &c->remote.max_response);
        } else {
            rc = unknown_key(x, kv, "[remote]", REMOTE_KEYS);
        }
        if (rc < 0) return -1;
    }
    return 0;
}

static int section_storage(struct ctx *x, const struct toml_table *tb, struct config *c)
{
    for (int i = 0; i < tb->nkvs; i++) {
        const struct toml_kv *kv = &tb->kvs[i];
        const char *k = kv->key;
        int64_t v = 0;
        int rc;
        if (!strcmp(k, "dir")) {
            rc = get_string(x, kv, &c->storage.dir);
        } else if (!strcmp(k, "segment_size")) {
            rc = get_size(x, kv, 64 * KIB, &c->storage.segment_size);
        } else if (!strcmp(k, "compression_level")) {
            rc = get_int(x, kv, 1, 9, &v);
            if (rc == 0) c->storage.compression_level = (int)v;
        } else if (!strcmp(k, "retain")) {
            rc = get_duration(x, kv, 0, &c->storage.retain_ms);
        } else if (!strcmp(k, "compact_interval")) {
            rc = get_duration(x, kv, 1, &c->storage.compact_interval_ms);
        } else {
            rc = unknown_key(x, kv, "[storage]", STORAGE_KEYS);
        }
        if (rc < 0) return -1;
    }
    return 0;
}

static int section_serve(struct ctx *x, const struct toml_table *tb, struct config *c)
{
    const struct toml_kv *listen = NULL;
    for (int i = 0; i < tb->nkvs; i++) {
        const struct toml_kv *kv = &tb->kvs[i];
        int rc;
        if (!strcmp(kv->key, "listen")) {
            char host[256];
            int port;
            listen = kv;
            rc = want(x, kv, TOML_STRING, "string");
            if (rc == 0 && config_listen_split(kv->val.s, host, sizeof host, &port) < 0)
                rc = val_fail(x, kv, "\"%s\" is not host:port (e.g. \"127.0.0.1:8642\" or "
                                     "\"[::1]:8642\")", kv->val.s);
            if (rc == 0) set_str(&c->serve.listen, kv->val.s);
        } else if (!strcmp(kv->key, "token_env")) {
            rc = get_envname(x, kv, &c->serve.token_env);
            c->serve.token_env_line = kv->line;
        } else if (!strcmp(kv->key, "tokenless_writes")) {
            rc = want(x, kv, TOML_STRING, "string");
            if (rc == 0 && strcmp(kv->val.s, "refuse") != 0 && strcmp(kv->val.s, "loopback") != 0)
                rc = val_fail(x, kv, "\"%s\": expected \"refuse\" or \"loopback\"", kv->val.s);
            if (rc == 0) c->serve.tokenless_writes = strcmp(kv->val.s, "loopback") == 0;
        } else if (!strcmp(kv->key, "export_keep")) {
            int64_t v = 0;
            rc = get_int(x, kv, 1, 1000, &v);
            if (rc == 0) c->serve.export_keep = (int)v;
        } else {
            rc = unknown_key(x, kv, "[serve]", SERVE_KEYS);
        }
        if (rc < 0) return -1;
    }
    /* Invariant 8: anything reachable off this host needs a token. */
    if (listen && !c->serve.token_env && !config_listen_is_loopback(c->serve.listen))
        return key_fail(x, listen, "%s is not a loopback address; set token_env so the API "
                                   "requires a token", c->serve.listen);
    return 0;
}

static int section_upstream(struct ctx *x, const struct toml_table *tb, struct config *c)
{
    for (int i = 0; i < tb->nkvs; i++) {
        const struct toml_kv *kv = &tb->kvs[i];
        const char *k = kv->key;
        int rc;
        if (!strcmp(k, "url")) rc = get_url(x, kv, &c->upstream.url);
        else if (!strcmp(k, "token_env")) rc = get_envname(x, kv, &c->upstream.token_env);
        else if (!strcmp(k, "interval")) rc = get_duration(x, kv, 1, &c->upstream.interval_ms);
        else if (!strcmp(k, "timeout")) rc = get_duration(x, kv, 1, &c->upstream.timeout_ms);
        else if (!strcmp(k, "verify_tls")) rc = get_bool(x, kv, &c->upstream.verify_tls);
        else if (!strcmp(k, "ca_file")) rc = get_ca_file(x, kv, &c->upstream.ca_file);
        else rc = unknown_key(x, kv, "[upstream]", UPSTREAM_KEYS);
        if (rc < 0) return -1;
    }
    if (!c->upstream.url)
        return at_fail(x, tb->line, tb->col, "section [upstream] needs url (the hub agent, e.g. \"http://hub:8642\")");
    return 0;
}

/* Where a [[table]]'s settings came from, for messages about how they combine. */
struct table_src {
    const struct toml_kv *name, *key, *cursor, *columns, *sweep;
};

static int get_strategy(struct ctx *x, const struct toml_kv *kv, enum config_strategy *dst)
{
    if (want(x, kv, TOML_STRING, "string") < 0) return -1;
    for (int s = STRATEGY_FULL; s <= STRATEGY_ON_DEMAND; s++) {
        if (strcmp(kv->val.s, config_strategy_name((enum config_strategy)s)) == 0) {
            *dst = (enum config_strategy)s;
            return 0;
        }
    }
    return val_fail(x, kv, "unknown strategy \"%s\" (full, incremental or on_demand)", kv->val.s);
}

static int get_columns(struct ctx *x, const struct toml_kv *kv, struct config_table *t)
{
    if (want(x, kv, TOML_ARRAY, "array of column names") < 0) return -1;
    const struct toml_value *v = &kv->val;
    if (v->nitems == 0) return val_fail(x, kv, "must not be empty (leave it out for all columns)");
    for (int i = 0; i < v->nitems; i++) {
        const struct toml_value *it = &v->items[i];
        const char *why = NULL;
        if (it->type != TOML_STRING) why = "expected string";
        else if (!is_ident(it->s)) why = "not an identifier ([A-Za-z_][A-Za-z0-9_]*)";
        for (int j = 0; !why && j < i; j++)
            if (strcmp(v->items[j].s, it->s) == 0) why = "listed twice";
        if (why)
            return at_fail(x, it->line, it->col, "key `%s`: item %d%s%s%s: %s", kv->key, i + 1,
                           it->type == TOML_STRING ? " \"" : "",
                           it->type == TOML_STRING ? it->s : "",
                           it->type == TOML_STRING ? "\"" : "", why);
    }
    t->columns = xcalloc((size_t)v->nitems, sizeof *t->columns);
    for (int i = 0; i < v->nitems; i++) t->columns[i] = xstrdup(v->items[i].s);
    t->ncolumns = v->nitems;
    return 0;
}

/* One key of a [[table]] (or of [defaults] when in_defaults) into t. */
static int table_key(struct ctx *x, const struct toml_kv *kv, struct config_table *t,
                     struct table_src *src, bool in_defaults)
{
    const char *k = kv->key;
    if (!strcmp(k, "strategy")) return get_strategy(x, kv, &t->strategy);
    if (!strcmp(k, "key")) {
        src->key = kv;
        return get_ident(x, kv, &t->key);
    }
    if (!strcmp(k, "chunk")) return get_int(x, kv, 1, 100000, &t->chunk);
    if (!strcmp(k, "ttl")) return get_duration(x, kv, 1, &t->ttl_ms);
    if (!strcmp(k, "interval")) return get_duration(x, kv, 1, &t->interval_ms);
    if (!strcmp(k, "lookback")) return get_duration(x, kv, 0, &t->lookback_ms);
    if (!strcmp(k, "sweep")) {
        src->sweep = kv;
        return get_duration(x, kv, 0, &t->sweep_ms);
    }
    if (in_defaults) {
        if (!strcmp(k, "name") || !strcmp(k, "cursor") || !strcmp(k, "columns"))
            return key_fail(x, kv, "belongs in each [[table]], not in [defaults]");
        return unknown_key(x, kv, "[defaults]", DEFAULTS_KEYS);
    }
    if (!strcmp(k, "name")) {
        src->name = kv;
        if (get_ident(x, kv, &t->name) != 0) return -1;
        /* Replay refuses these names (replay_check_name owns the rule): caught
         * here, before a SCHEMA record the cache could never apply is journaled. */
        char why[IA_ERRLEN];
        if (replay_check_name(t->name, why, sizeof why) != 0) return val_fail(x, kv, "%s", why);
        return 0;
    }
    if (!strcmp(k, "cursor")) {
        src->cursor = kv;
        return get_ident(x, kv, &t->cursor);
    }
    if (!strcmp(k, "columns")) {
        src->columns = kv;
        return get_columns(x, kv, t);
    }
    return unknown_key(x, kv, "[[table]]", TABLE_KEYS);
}

static void table_free(struct config_table *t)
{
    free(t->name);
    free(t->key);
    free(t->cursor);
    for (int i = 0; i < t->ncolumns; i++) free(t->columns[i]);
    free(t->columns);
    memset(t, 0, sizeof *t);
}

static bool has_column(const struct config_table *t, const char *col)
{
    for (int i = 0; i < t->ncolumns; i++)
        if (strcmp(t->columns[i], col) == 0) return true;
    return false;
}

/* A sweep pages through every key of the table and rides on a pull: one more
 * often than the table is pulled cannot happen, and a tiny one (sweep =
 * "1ms" with the default 1m interval) is a typo that would scan the whole
 * table on every pull. So: 0 (never) or at least the interval. */
static int check_sweep(struct ctx *x, const struct toml_table *tb, const struct config_table *t,
                       const struct table_src *src)
{
    if (t->strategy != STRATEGY_INCREMENTAL || t->sweep_ms == 0 || t->sweep_ms >= t->interval_ms) return 0;
    if (src->sweep)
        return val_fail(x, src->sweep, "table `%s`: must be \"0s\" (never) or at least its interval (%lld ms), "
                                       "got %lld ms", t->name, (long long)t->interval_ms, (long long)t->sweep_ms);
    return at_fail(x, tb->line, tb->col, "table `%s`: sweep from [defaults] (%lld ms) must be \"0s\" (never) or "
                   "at least its interval (%lld ms)", t->name, (long long)t->sweep_ms, (long long)t->interval_ms);
}

/* A [[table]]: defaults `d` overlaid with its own keys, then the cross-key rules.
 * Appended to c->tables on success. */
static int section_table(struct ctx *x, const struct toml_table *tb, const struct config_table *d,
                         struct config *c)
{
    struct config_table t = *d;
    struct table_src src = {0};
    t.key = xstrdup(d->key);
    t.line = tb->line;
    int rc = 0;
    for (int i = 0; rc == 0 && i < tb->nkvs; i++) rc = table_key(x, &tb->kvs[i], &t, &src, false);
    if (rc == 0 && !t.name)
        rc = at_fail(x, tb->line, tb->col, "[[table]]: key `name` is required");
    if (rc == 0 && t.strategy == STRATEGY_INCREMENTAL && !t.cursor)
        rc = at_fail(x, tb->line, tb->col, "table `%s`: strategy incremental needs key `cursor` "
                                           "(e.g. cursor = \"updated_at\")", t.name);
    if (rc == 0 && t.strategy != STRATEGY_INCREMENTAL && t.cursor)
        rc = key_fail(x, src.cursor, "table `%s` is %s; only incremental tables have a cursor",
                      t.name, config_strategy_name(t.strategy));
    if (rc == 0 && t.columns && !has_column(&t, t.key))
        rc = key_fail(x, src.columns, "table `%s`: must include the key column `%s`", t.name, t.key);
    if (rc == 0 && t.columns && t.cursor && !has_column(&t, t.cursor))
        rc = key_fail(x, src.columns, "table `%s`: must include the cursor column `%s`", t.name,
                      t.cursor);
    if (rc == 0) rc = check_sweep(x, tb, &t, &src);
    for (int i = 0; rc == 0 && i < c->ntables; i++)
        if (strcmp(c->tables[i].name, t.name) == 0)
            rc = val_fail(x, src.name, "table `%s` is defined twice ([[table]] at lines %d and %d)",
                          t.name, c->tables[i].line, t.line);
    if (rc < 0) {
        table_free(&t);
        return -1;
    }
    c->tables = xrealloc(c->tables, (size_t)(c->ntables + 1) * sizeof *c->tables);
    c->tables[c->ntables++] = t;
    return 0;
}

static void config_defaults(struct config *c, const char *path)
{
    memset(c, 0, sizeof *c);
    c->path = xstrdup(path);
    c->remote.password_env = xstrdup("IPTVPORTAL_PASSWORD");
    c->remote.timeout_ms = 30 * SEC;
    c->remote.retries = 5;
    c->remote.verify_tls = true;
    c->remote.max_response = 256 * MIB;
    c->storage.dir = xstrdup("/var/lib/iptv-agent");
    c->storage.segment_size = 64 * MIB;
    c->storage.compression_level = 3;
    c->storage.retain_ms = 7 * DAY;
    c->storage.compact_interval_ms = 10 * MIN;
    c->serve.listen = xstrdup("127.0.0.1:8642");
    c->serve.export_keep = 4;
    c->upstream.interval_ms = 30 * SEC;
    c->upstream.timeout_ms = 30 * MIN;
    c->upstream.verify_tls = true;
}

/* The IPTVPORTAL_* fallbacks. The password is never read here: the remote client
 * reads getenv(password_env) when it logs in. */
static int apply_env(struct ctx *x, struct config *c)
{
    const char *d = getenv("IPTVPORTAL_DOMAIN");
    if (!c->remote.url && !c->remote.domain && d && *d) {
        if (!is_domain(d)) {
            if (x->errlen)
                snprintf(x->err, x->errlen, "%s: environment IPTVPORTAL_DOMAIN: \"%.200s\" is not "
                         "a bare domain like \"example\"", x->path, d);
            return -1;
        }
        c->remote.domain = xstrdup(d);
    }
    if (!c->remote.url && c->remote.domain) {
        size_t n = strlen(c->remote.domain) + sizeof "https://.admin.iptvportal.ru";
        c->remote.url = xmalloc(n);
        snprintf(c->remote.url, n, "https://%s.admin.iptvportal.ru", c->remote.domain);
    }
    const char *u = getenv("IPTVPORTAL_USERNAME");
    if (u && *u) set_str(&c->remote.username, u);
    return 0;
}

static int build(struct ctx *x, const struct toml_doc *doc, struct config *c)
{
    const struct toml_table *root = &doc->tables[0];
    if (root->nkvs > 0)
        return key_fail(x, &root->kvs[0], "unknown key outside any section "
                                          "(keys go under [remote], [storage], [serve], ...)");

    /* Built-in table defaults, then [defaults] over them, wherever it sits. */
    struct config_table d = {
        .strategy = STRATEGY_FULL, .key = xstrdup("id"), .chunk = 1000, .ttl_ms = HOUR,
        .interval_ms = MIN, .lookback_ms = 0, .sweep_ms = 6 * HOUR,
    };
    struct table_src dsrc = {0};
    const struct toml_table *upstream = NULL;
    int rc = 0;
    for (int i = 1; rc == 0 && i < doc->ntables; i++) {
        const struct toml_table *tb = &doc->tables[i];
        if (strcmp(tb->name, "defaults") != 0 || tb->is_array) continue;
        for (int k = 0; rc == 0 && k < tb->nkvs; k++) rc = table_key(x, &tb->kvs[k], &d, &dsrc, true);
    }

    for (int i = 1; rc == 0 && i < doc->ntables; i++) {
        const struct toml_table *tb = &doc->tables[i];
        const char *n = tb->name;
        bool single = !strcmp(n, "remote") || !strcmp(n, "storage") || !strcmp(n, "serve") ||
                      !strcmp(n, "defaults") || !strcmp(n, "upstream");
        if (single && tb->is_array)
            rc = at_fail(x, tb->line, tb->col, "section [[%s]] must be written [%s]", n, n);
        else if (!strcmp(n, "table") && !tb->is_array)
            rc = at_fail(x, tb->line, tb->col, "section [table] must be written [[table]] "
                                               "(one per table)");
        else if (!strcmp(n, "remote")) rc = section_remote(x, tb, c);
        else if (!strcmp(n, "storage")) rc = section_storage(x, tb, c);
        else if (!strcmp(n, "serve")) rc = section_serve(x, tb, c);
        else if (!strcmp(n, "upstream")) {
            rc = section_upstream(x, tb, c);
            upstream = tb;
        }
        else if (!strcmp(n, "defaults")) continue;
        else if (!strcmp(n, "table")) rc = section_table(x, tb, &d, c);
        else
            rc = at_fail(x, tb->line, tb->col, "unknown section %s%s%s (known: [remote], "
                         "[storage], [serve], [upstream], [defaults], [[table]])",
                         tb->is_array ? "[[" : "[", n, tb->is_array ? "]]" : "]");
    }
    free(d.key);
    if (rc < 0) return -1;
    /* An edge mirrors its hub's cache: a table it pulled itself would make the
     * hub's deltas conflict (docs/export-format.md, Import). */
    if (upstream && c->ntables > 0)
        return at_fail(x, upstream->line, upstream->col, "[upstream] and [[table]] exclude each other: an edge "
                       "agent takes every table its hub has (remove the [[table]] sections, or [upstream])");
    return apply_env(x, c);
}

int config_parse(const char *name, const char *text, size_t len, struct config *out,
                 char *err, size_t errlen)
{
    struct ctx x = {.path = name ? name : "<string>", .err = err, .errlen = errlen};
    memset(out, 0, sizeof *out);
    if (errlen) err[0] = '\0';
    struct toml_doc doc;
    if (toml_parse(x.path, text, len, &doc, err, errlen) < 0) return -1;
    struct config c;
    config_defaults(&c, x.path);
    int rc = build(&x, &doc, &c);
    toml_free(&doc);
    if (rc < 0) {
        config_free(&c);
        return -1;
    }
    *out = c;
    return 0;
}

int config_load(const char *path, struct config *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, len = 0;
    char *text = xmalloc(cap);
    for (;;) {
        if (len == cap) {
            if (cap >= CONFIG_MAX_FILE) {
                snprintf(err, errlen, "%s: cannot read: larger than %u MiB", path,
                         CONFIG_MAX_FILE >> 20);
                free(text);
                fclose(f);
                return -1;
            }
            cap *= 2;
            text = xrealloc(text, cap);
        }
        size_t r = fread(text + len, 1, cap - len, f);
        len += r;
        if (r == 0) break;
    }
    int rerr = ferror(f) ? errno : 0;
    fclose(f);
    if (rerr) {
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(rerr));
        free(text);
        return -1;
    }
    int rc = config_parse(path, text, len, out, err, errlen);
    free(text);
    return rc;
}

void config_free(struct config *c)
{
    free(c->path);
    free(c->remote.url);
    free(c->remote.domain);
    free(c->remote.username);
    free(c->remote.password_env);
    free(c->remote.ca_file);
    free(c->storage.dir);
    free(c->serve.listen);
    free(c->serve.token_env);
    free(c->upstream.url);
    free(c->upstream.token_env);
    free(c->upstream.ca_file);
    for (int i = 0; i < c->ntables; i++) table_free(&c->tables[i]);
    free(c->tables);
    memset(c, 0, sizeof *c);
}

const struct config_table *config_table_find(const struct config *c, const char *name)
{
    for (int i = 0; i < c->ntables; i++)
        if (strcmp(c->tables[i].name, name) == 0) return &c->tables[i];
    return NULL;
}

const char *config_strategy_name(enum config_strategy s)
{
    switch (s) {
    case STRATEGY_FULL: return "full";
    case STRATEGY_INCREMENTAL: return "incremental";
    case STRATEGY_ON_DEMAND: return "on_demand";
    }
    return "?";
}

int config_stale(int64_t ttl_ms, int64_t at_ms, int64_t now_ms)
{
    return at_ms <= 0 || now_ms - at_ms > ttl_ms;
}
