/* config.c — see config.h. The schema of agent.toml is KEYS below: one row per key.
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
#include <stddef.h>
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

/* The sections of agent.toml, in the order messages list them. */
enum section { SEC_REMOTE, SEC_STORAGE, SEC_SERVE, SEC_UPSTREAM, SEC_DEFAULTS, SEC_TABLE, SEC_COUNT };
static const struct {
    const char *name;
    bool array;                    /* written [[name]], one per entry */
} SECTIONS[SEC_COUNT] = {
    [SEC_REMOTE] = {"remote", false},     [SEC_STORAGE] = {"storage", false},
    [SEC_SERVE] = {"serve", false},       [SEC_UPSTREAM] = {"upstream", false},
    [SEC_DEFAULTS] = {"defaults", false}, [SEC_TABLE] = {"table", true},
};

/* How a key's value is read and checked; it fixes the C type of its field. */
enum kind {
    K_STRING,                      /* char *, not empty */
    K_IDENT,                       /* char *, [A-Za-z_][A-Za-z0-9_]* */
    K_NAME,                        /* char *, an identifier replay takes as a table name */
    K_ENVNAME,                     /* char *, an environment variable's name */
    K_URL,                         /* char *, http(s)://..., kept without trailing '/' */
    K_DOMAIN,                      /* char *, a bare domain like "example" */
    K_LISTEN,                      /* char *, host:port */
    K_CA_FILE,                     /* char *, a file readable now */
    K_INT,                         /* int in [min, max] */
    K_INT64,                       /* int64_t in [min, max] */
    K_BOOL,                        /* bool */
    K_DURATION,                    /* int64_t ms, >= min */
    K_SIZE,                        /* int64_t bytes, >= min */
    K_STRATEGY,                    /* enum config_strategy */
    K_TOKENLESS,                   /* bool: "loopback" true, "refuse" false */
    K_WRITES,                      /* enum config_writes */
    K_CONFLICT,                    /* enum config_conflict */
    K_AUTH,                        /* enum config_auth */
    K_UNKNOWN,                     /* enum config_unknown */
    K_COLUMNS,                     /* columns + ncolumns of struct config_table */
    K_SECRET,                      /* refused: a secret comes from the environment (<key>_env) */
};

/* One key of agent.toml. Its field is at `off` in struct config, or in struct
 * config_table for the [[table]] keys; [defaults] takes the [[table]] keys
 * marked in_defaults. def / def_s: the value when no file sets the key. The
 * rules that tie keys together are in serve_rules, upstream_rules and
 * section_table. */
struct key {
    enum section sec;
    const char *name;
    enum kind kind;
    size_t off;
    int64_t min, max;              /* K_INT, K_INT64: the range; K_DURATION, K_SIZE: the floor */
    int64_t def;                   /* numbers, booleans, the strategy */
    const char *def_s;             /* strings (NULL: unset) */
    bool in_defaults;
};

#define KEY(s, n, k, o) .sec = s, .name = n, .kind = k, .off = o
#define C_(f) offsetof(struct config, f)
#define T_(f) offsetof(struct config_table, f)
/* In the order of the "known:" lists of messages. */
static const struct key KEYS[] = {
    {KEY(SEC_REMOTE, "url", K_URL, C_(remote.url))},
    {KEY(SEC_REMOTE, "domain", K_DOMAIN, C_(remote.domain))},
    {KEY(SEC_REMOTE, "username", K_STRING, C_(remote.username))},
    {KEY(SEC_REMOTE, "password", K_SECRET, 0)},
    {KEY(SEC_REMOTE, "password_env", K_ENVNAME, C_(remote.password_env)),
      .def_s = "IPTVPORTAL_PASSWORD"},
    {KEY(SEC_REMOTE, "timeout", K_DURATION, C_(remote.timeout_ms)), .min = 1, .def = 30 * SEC},
    {KEY(SEC_REMOTE, "retries", K_INT, C_(remote.retries)), .min = 0, .max = 100, .def = 5},
    {KEY(SEC_REMOTE, "verify_tls", K_BOOL, C_(remote.verify_tls)), .def = true},
    {KEY(SEC_REMOTE, "ca_file", K_CA_FILE, C_(remote.ca_file))},
    {KEY(SEC_REMOTE, "max_response", K_SIZE, C_(remote.max_response)),
      .min = MAX_RESPONSE_MIN, .def = 256 * MIB},
    {KEY(SEC_REMOTE, "max_inflight", K_INT, C_(remote.max_inflight)), .min = 1, .max = 256, .def = 16},

    {KEY(SEC_STORAGE, "dir", K_STRING, C_(storage.dir)), .def_s = "/var/lib/iptv-agent"},
    {KEY(SEC_STORAGE, "segment_size", K_SIZE, C_(storage.segment_size)),
      .min = 64 * KIB, .def = 64 * MIB},
    {KEY(SEC_STORAGE, "compression_level", K_INT, C_(storage.compression_level)),
      .min = 1, .max = 9, .def = 3},
    {KEY(SEC_STORAGE, "retain", K_DURATION, C_(storage.retain_ms)), .min = 0, .def = 7 * DAY},
    {KEY(SEC_STORAGE, "compact_interval", K_DURATION, C_(storage.compact_interval_ms)),
      .min = 1, .def = 10 * MIN},

    {KEY(SEC_SERVE, "listen", K_LISTEN, C_(serve.listen)), .def_s = "127.0.0.1:8642"},
    {KEY(SEC_SERVE, "token_env", K_ENVNAME, C_(serve.token_env))},
    {KEY(SEC_SERVE, "export_keep", K_INT, C_(serve.export_keep)), .min = 1, .max = 1000, .def = 4},
    {KEY(SEC_SERVE, "tokenless_writes", K_TOKENLESS, C_(serve.tokenless_writes)), .def = false},
    {KEY(SEC_SERVE, "auth", K_AUTH, C_(serve.auth)), .def = AUTH_PORTAL},
    {KEY(SEC_SERVE, "session_ttl", K_DURATION, C_(serve.session_ttl_ms)), .min = 1, .def = HOUR},
    {KEY(SEC_SERVE, "max_rows", K_INT64, C_(serve.max_rows)), .min = 1, .max = 10000000, .def = 5000},
    {KEY(SEC_SERVE, "unknown_tables", K_UNKNOWN, C_(serve.unknown_tables)), .def = UNKNOWN_FORWARD},
    {KEY(SEC_SERVE, "max_auto_tables", K_INT, C_(serve.max_auto_tables)), .min = 0, .max = 1000, .def = 16},

    {KEY(SEC_UPSTREAM, "url", K_URL, C_(upstream.url))},
    {KEY(SEC_UPSTREAM, "token_env", K_ENVNAME, C_(upstream.token_env))},
    {KEY(SEC_UPSTREAM, "interval", K_DURATION, C_(upstream.interval_ms)),
      .min = 1, .def = 30 * SEC},
    {KEY(SEC_UPSTREAM, "timeout", K_DURATION, C_(upstream.timeout_ms)), .min = 1, .def = 30 * MIN},
    {KEY(SEC_UPSTREAM, "verify_tls", K_BOOL, C_(upstream.verify_tls)), .def = true},
    {KEY(SEC_UPSTREAM, "ca_file", K_CA_FILE, C_(upstream.ca_file))},

    {KEY(SEC_TABLE, "name", K_NAME, T_(name))},
    {KEY(SEC_TABLE, "strategy", K_STRATEGY, T_(strategy)),
      .def = STRATEGY_FULL, .in_defaults = true},
    {KEY(SEC_TABLE, "key", K_IDENT, T_(key)), .def_s = "id", .in_defaults = true},
    {KEY(SEC_TABLE, "cursor", K_IDENT, T_(cursor))},
    {KEY(SEC_TABLE, "columns", K_COLUMNS, T_(columns))},
    {KEY(SEC_TABLE, "chunk", K_INT64, T_(chunk)),
      .min = 1, .max = 100000, .def = 1000, .in_defaults = true},
    {KEY(SEC_TABLE, "streams", K_INT, T_(streams)), .min = 1, .max = 256, .def = 16, .in_defaults = true},
    {KEY(SEC_TABLE, "ttl", K_DURATION, T_(ttl_ms)),
      .min = 1, .def = CONFIG_DEFAULT_TTL_MS, .in_defaults = true},
    {KEY(SEC_TABLE, "interval", K_DURATION, T_(interval_ms)),
      .min = 1, .def = MIN, .in_defaults = true},
    {KEY(SEC_TABLE, "lookback", K_DURATION, T_(lookback_ms)),
      .min = 0, .def = 0, .in_defaults = true},
    {KEY(SEC_TABLE, "sweep", K_DURATION, T_(sweep_ms)),
      .min = 0, .def = 6 * HOUR, .in_defaults = true},
    {KEY(SEC_TABLE, "writes", K_WRITES, T_(writes)), .def = WRITES_QUEUE, .in_defaults = true},
    {KEY(SEC_TABLE, "conflict", K_CONFLICT, T_(conflict)), .def = CONFLICT_PORTAL, .in_defaults = true},
};
#undef KEY
#undef C_
#undef T_
#define NKEYS (sizeof KEYS / sizeof *KEYS)

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

/* The label of a section as written: [remote], [[table]]. */
static const char *section_label(enum section sec, char *buf, size_t n)
{
    bool a = SECTIONS[sec].array;
    snprintf(buf, n, "%s%s%s", a ? "[[" : "[", SECTIONS[sec].name, a ? "]]" : "]");
    return buf;
}

/* Whether section sec takes the key of row k ([defaults]: the [[table]] keys
 * marked in_defaults). */
static bool takes(enum section sec, const struct key *k)
{
    if (sec == SEC_DEFAULTS) return k->sec == SEC_TABLE && k->in_defaults;
    return k->sec == sec;
}

static int unknown_key(struct ctx *x, const struct toml_kv *kv, enum section sec)
{
    char known[512] = "", label[32];
    size_t n = 0;
    for (size_t i = 0; i < NKEYS && n < sizeof known; i++)
        if (takes(sec, &KEYS[i]) && KEYS[i].kind != K_SECRET)
            n += (size_t)snprintf(known + n, sizeof known - n, "%s%s", n ? ", " : "", KEYS[i].name);
    return key_fail(x, kv, "unknown key in %s (known: %s)", section_label(sec, label, sizeof label),
                    known);
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

static int get_domain(struct ctx *x, const struct toml_kv *kv, char **dst)
{
    if (want(x, kv, TOML_STRING, "string") < 0) return -1;
    if (!is_domain(kv->val.s))
        return val_fail(x, kv, "\"%s\" is not a bare domain like \"example\"", kv->val.s);
    set_str(dst, kv->val.s);
    return 0;
}

static int get_listen(struct ctx *x, const struct toml_kv *kv, char **dst)
{
    char host[256];
    int port;
    if (want(x, kv, TOML_STRING, "string") < 0) return -1;
    if (config_listen_split(kv->val.s, host, sizeof host, &port) < 0)
        return val_fail(x, kv, "\"%s\" is not host:port (e.g. \"127.0.0.1:8642\" or \"[::1]:8642\")",
                        kv->val.s);
    set_str(dst, kv->val.s);
    return 0;
}

static int get_tokenless(struct ctx *x, const struct toml_kv *kv, bool *dst)
{
    if (want(x, kv, TOML_STRING, "string") < 0) return -1;
    if (strcmp(kv->val.s, "refuse") != 0 && strcmp(kv->val.s, "loopback") != 0)
        return val_fail(x, kv, "\"%s\": expected \"refuse\" or \"loopback\"", kv->val.s);
    *dst = strcmp(kv->val.s, "loopback") == 0;
    return 0;
}

/* A table name: replay refuses some (replay_check_name owns the rule), caught
 * here, before a SCHEMA record the cache could never apply is journaled. */
static int get_name(struct ctx *x, const struct toml_kv *kv, char **dst)
{
    if (get_ident(x, kv, dst) != 0) return -1;
    char why[IA_ERRLEN];
    if (replay_check_name(*dst, why, sizeof why) != 0) return val_fail(x, kv, "%s", why);
    return 0;
}

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

/* One of the names `name(i)` gives for i in [0, n): its index into *dst. */
static int get_choice(struct ctx *x, const struct toml_kv *kv, int n, const char *(*name)(int), int *dst)
{
    if (want(x, kv, TOML_STRING, "string") < 0) return -1;
    char known[128];
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(kv->val.s, name(i)) == 0) {
            *dst = i;
            return 0;
        }
        len += (size_t)snprintf(known + len, sizeof known - len, "%s\"%s\"", i ? ", " : "", name(i));
    }
    return val_fail(x, kv, "unknown value \"%s\" (%s)", kv->val.s, known);
}

static const char *writes_name(int i) { return config_writes_name((enum config_writes)i); }
static const char *conflict_name(int i) { return config_conflict_name((enum config_conflict)i); }
static const char *auth_name(int i) { return config_auth_name((enum config_auth)i); }
static const char *unknown_name(int i) { return i == UNKNOWN_FORWARD ? "forward" : i == UNKNOWN_CACHE ? "cache" : "refuse"; }

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

/* Where row k's field is in base (a struct config, or a struct config_table
 * for the [[table]] keys). */
static void *field(void *base, const struct key *k)
{
    return (char *)base + k->off;
}

/* The row of key `name` in section sec, or NULL. */
static const struct key *key_find(enum section sec, const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (KEYS[i].sec == sec && strcmp(KEYS[i].name, name) == 0) return &KEYS[i];
    return NULL;
}

static bool holds_string(enum kind k)
{
    switch (k) {
    case K_STRING: case K_IDENT: case K_NAME: case K_ENVNAME: case K_URL: case K_DOMAIN:
    case K_LISTEN: case K_CA_FILE:
        return true;
    default:
        return false;
    }
}

/* Key kv's value, checked as row k says, into its field in base. */
static int read_key(struct ctx *x, const struct toml_kv *kv, const struct key *k, void *base)
{
    void *dst = field(base, k);
    int64_t v = 0;
    switch (k->kind) {
    case K_STRING: return get_string(x, kv, dst);
    case K_IDENT: return get_ident(x, kv, dst);
    case K_NAME: return get_name(x, kv, dst);
    case K_ENVNAME: return get_envname(x, kv, dst);
    case K_URL: return get_url(x, kv, dst);
    case K_DOMAIN: return get_domain(x, kv, dst);
    case K_LISTEN: return get_listen(x, kv, dst);
    case K_CA_FILE: return get_ca_file(x, kv, dst);
    case K_INT:
        if (get_int(x, kv, k->min, k->max, &v) < 0) return -1;
        *(int *)dst = (int)v;
        return 0;
    case K_INT64: return get_int(x, kv, k->min, k->max, dst);
    case K_BOOL: return get_bool(x, kv, dst);
    case K_DURATION: return get_duration(x, kv, k->min, dst);
    case K_SIZE: return get_size(x, kv, k->min, dst);
    case K_STRATEGY: return get_strategy(x, kv, dst);
    case K_TOKENLESS: return get_tokenless(x, kv, dst);
    case K_WRITES: {
        int w;
        if (get_choice(x, kv, WRITES_REFUSE + 1, writes_name, &w) < 0) return -1;
        *(enum config_writes *)dst = (enum config_writes)w;
        return 0;
    }
    case K_CONFLICT: {
        int cf;
        if (get_choice(x, kv, CONFLICT_AGENT + 1, conflict_name, &cf) < 0) return -1;
        *(enum config_conflict *)dst = (enum config_conflict)cf;
        return 0;
    }
    case K_AUTH: {
        int a;
        if (get_choice(x, kv, AUTH_NONE + 1, auth_name, &a) < 0) return -1;
        *(enum config_auth *)dst = (enum config_auth)a;
        return 0;
    }
    case K_UNKNOWN: {
        int u;
        if (get_choice(x, kv, UNKNOWN_REFUSE + 1, unknown_name, &u) < 0) return -1;
        *(enum config_unknown *)dst = (enum config_unknown)u;
        return 0;
    }
    case K_COLUMNS: return get_columns(x, kv, base);
    case K_SECRET: return key_fail(x, kv, "secrets do not go in the file; set %s_env", kv->key);
    }
    return key_fail(x, kv, "no reader for this key");
}

/* Every key of one section into base, in file order; the first error stops. */
static int read_section(struct ctx *x, const struct toml_table *tb, enum section sec, void *base)
{
    for (int i = 0; i < tb->nkvs; i++) {
        const struct toml_kv *kv = &tb->kvs[i];
        const struct key *k = key_find(sec == SEC_DEFAULTS ? SEC_TABLE : sec, kv->key);
        if (!k) return unknown_key(x, kv, sec);
        if (!takes(sec, k)) return key_fail(x, kv, "belongs in each [[table]], not in [defaults]");
        if (read_key(x, kv, k, base) < 0) return -1;
    }
    return 0;
}

/* The defaults of the rows of section sec ([defaults]: of [[table]]) into base. */
static void put_defaults(enum section sec, void *base)
{
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key *k = &KEYS[i];
        if (k->sec != sec) continue;
        void *dst = field(base, k);
        switch (k->kind) {
        case K_INT: *(int *)dst = (int)k->def; break;
        case K_INT64: case K_DURATION: case K_SIZE: *(int64_t *)dst = k->def; break;
        case K_BOOL: case K_TOKENLESS: *(bool *)dst = k->def != 0; break;
        case K_STRATEGY: *(enum config_strategy *)dst = (enum config_strategy)k->def; break;
        case K_WRITES: *(enum config_writes *)dst = (enum config_writes)k->def; break;
        case K_CONFLICT: *(enum config_conflict *)dst = (enum config_conflict)k->def; break;
        case K_AUTH: *(enum config_auth *)dst = (enum config_auth)k->def; break;
        case K_UNKNOWN: *(enum config_unknown *)dst = (enum config_unknown)k->def; break;
        case K_COLUMNS: case K_SECRET: break;
        default: *(char **)dst = k->def_s ? xstrdup(k->def_s) : NULL; break;
        }
    }
}

/* Free the string fields of the rows of section sec in base. */
static void free_strings(enum section sec, void *base)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (KEYS[i].sec == sec && holds_string(KEYS[i].kind)) {
            char **s = field(base, &KEYS[i]);
            free(*s);
            *s = NULL;
        }
}

static void table_free(struct config_table *t)
{
    free_strings(SEC_TABLE, t);
    for (int i = 0; i < t->ncolumns; i++) free(t->columns[i]);
    free(t->columns);
    memset(t, 0, sizeof *t);
}

/* A [[table]] starts as a copy of [defaults] d (which holds no columns). */
static void table_copy(struct config_table *t, const struct config_table *d)
{
    *t = *d;
    for (size_t i = 0; i < NKEYS; i++)
        if (KEYS[i].sec == SEC_TABLE && holds_string(KEYS[i].kind)) {
            char **s = field(t, &KEYS[i]);
            if (*s) *s = xstrdup(*s);
        }
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
static int check_sweep(struct ctx *x, const struct toml_table *tb, const struct config_table *t)
{
    if (t->strategy != STRATEGY_INCREMENTAL || t->sweep_ms == 0 || t->sweep_ms >= t->interval_ms) return 0;
    const struct toml_kv *sweep = toml_table_get(tb, "sweep");
    if (sweep)
        return val_fail(x, sweep, "table `%s`: must be \"0s\" (never) or at least its interval (%lld ms), "
                                  "got %lld ms", t->name, (long long)t->interval_ms, (long long)t->sweep_ms);
    return at_fail(x, tb->line, tb->col, "table `%s`: sweep from [defaults] (%lld ms) must be \"0s\" (never) or "
                   "at least its interval (%lld ms)", t->name, (long long)t->sweep_ms, (long long)t->interval_ms);
}

/* A [[table]]: defaults `d` overlaid with its own keys, then the cross-key rules
 * (name, cursor and columns can only come from the table's own keys).
 * Appended to c->tables on success. */
static int section_table(struct ctx *x, const struct toml_table *tb, const struct config_table *d,
                         struct config *c)
{
    struct config_table t;
    table_copy(&t, d);
    t.line = tb->line;
    int rc = read_section(x, tb, SEC_TABLE, &t);
    if (rc == 0 && !t.name)
        rc = at_fail(x, tb->line, tb->col, "[[table]]: key `name` is required");
    if (rc == 0 && t.strategy == STRATEGY_INCREMENTAL && !t.cursor)
        rc = at_fail(x, tb->line, tb->col, "table `%s`: strategy incremental needs key `cursor` "
                                           "(e.g. cursor = \"updated_at\")", t.name);
    const struct toml_kv *cursor = toml_table_get(tb, "cursor"), *columns = toml_table_get(tb, "columns");
    if (rc == 0 && t.strategy != STRATEGY_INCREMENTAL && t.cursor)
        rc = key_fail(x, cursor, "table `%s` is %s; only incremental tables have a cursor", t.name,
                      config_strategy_name(t.strategy));
    if (rc == 0 && t.columns && !has_column(&t, t.key))
        rc = key_fail(x, columns, "table `%s`: must include the key column `%s`", t.name, t.key);
    if (rc == 0 && t.columns && t.cursor && !has_column(&t, t.cursor))
        rc = key_fail(x, columns, "table `%s`: must include the cursor column `%s`", t.name, t.cursor);
    if (rc == 0) rc = check_sweep(x, tb, &t);
    for (int i = 0; rc == 0 && i < c->ntables; i++)
        if (strcmp(c->tables[i].name, t.name) == 0)
            rc = val_fail(x, toml_table_get(tb, "name"), "table `%s` is defined twice ([[table]] at lines %d "
                          "and %d)", t.name, c->tables[i].line, t.line);
    if (rc < 0) {
        table_free(&t);
        return -1;
    }
    c->tables = xrealloc(c->tables, (size_t)(c->ntables + 1) * sizeof *c->tables);
    c->tables[c->ntables++] = t;
    return 0;
}

static int serve_rules(struct ctx *x, const struct toml_table *tb, struct config *c)
{
    const struct toml_kv *token_env = toml_table_get(tb, "token_env"), *listen = toml_table_get(tb, "listen");
    if (token_env) c->serve.token_env_line = token_env->line;
    /* Invariant 8: anything reachable off this host needs a token. */
    if (listen && !c->serve.token_env && !config_listen_is_loopback(c->serve.listen))
        return key_fail(x, listen, "%s is not a loopback address; set token_env so the API "
                                   "requires a token", c->serve.listen);
    return 0;
}

static int upstream_rules(struct ctx *x, const struct toml_table *tb, struct config *c)
{
    if (!c->upstream.url)
        return at_fail(x, tb->line, tb->col, "section [upstream] needs url (the hub agent, e.g. \"http://hub:8642\")");
    return 0;
}

static void config_defaults(struct config *c, const char *path)
{
    memset(c, 0, sizeof *c);
    c->path = xstrdup(path);
    for (enum section sec = 0; sec < SEC_COUNT; sec++)
        if (sec != SEC_DEFAULTS && sec != SEC_TABLE) put_defaults(sec, c);
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
    struct config_table d;
    memset(&d, 0, sizeof d);
    put_defaults(SEC_TABLE, &d);
    const struct toml_table *upstream = NULL;
    int rc = 0;
    for (int i = 1; rc == 0 && i < doc->ntables; i++) {
        const struct toml_table *tb = &doc->tables[i];
        if (strcmp(tb->name, SECTIONS[SEC_DEFAULTS].name) == 0 && !tb->is_array)
            rc = read_section(x, tb, SEC_DEFAULTS, &d);
    }

    for (int i = 1; rc == 0 && i < doc->ntables; i++) {
        const struct toml_table *tb = &doc->tables[i];
        const char *n = tb->name;
        enum section sec = 0;
        while (sec < SEC_COUNT && strcmp(SECTIONS[sec].name, n) != 0) sec++;
        if (sec == SEC_COUNT) {
            char known[256] = "", label[32];
            size_t len = 0;
            for (enum section s = 0; s < SEC_COUNT; s++)
                len += (size_t)snprintf(known + len, sizeof known - len, "%s%s", len ? ", " : "",
                                        section_label(s, label, sizeof label));
            rc = at_fail(x, tb->line, tb->col, "unknown section %s%s%s (known: %s)",
                         tb->is_array ? "[[" : "[", n, tb->is_array ? "]]" : "]", known);
        } else if (tb->is_array != SECTIONS[sec].array) {
            rc = tb->is_array ? at_fail(x, tb->line, tb->col, "section [[%s]] must be written [%s]", n, n)
                              : at_fail(x, tb->line, tb->col, "section [%s] must be written [[%s]] "
                                                              "(one per %s)", n, n, n);
        } else if (sec == SEC_TABLE) {
            rc = section_table(x, tb, &d, c);
        } else if (sec != SEC_DEFAULTS) {
            rc = read_section(x, tb, sec, c);
            if (rc == 0 && sec == SEC_SERVE) rc = serve_rules(x, tb, c);
            if (rc == 0 && sec == SEC_UPSTREAM) rc = upstream_rules(x, tb, c);
            if (sec == SEC_UPSTREAM) upstream = tb;
        }
    }
    c->defaults = d;                   /* config_free frees it */
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
    for (enum section sec = 0; sec < SEC_COUNT; sec++)
        if (sec != SEC_DEFAULTS && sec != SEC_TABLE) free_strings(sec, c);
    for (int i = 0; i < c->ntables; i++) table_free(&c->tables[i]);
    free(c->tables);
    table_free(&c->defaults);
    memset(c, 0, sizeof *c);
}

void config_table_auto(const struct config *c, const char *name, struct config_table *out)
{
    table_copy(out, &c->defaults);
    free(out->name);
    out->name = xstrdup(name);
    if (out->strategy == STRATEGY_INCREMENTAL) out->strategy = STRATEGY_FULL;
    free(out->cursor);
    out->cursor = NULL;
    out->line = 0;
    out->auto_added = true;
}

void config_table_free(struct config_table *t) { table_free(t); }

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

const char *config_writes_name(enum config_writes w)
{
    switch (w) {
    case WRITES_QUEUE: return "queue";
    case WRITES_FORWARD: return "forward";
    case WRITES_REFUSE: return "refuse";
    }
    return "?";
}

const char *config_auth_name(enum config_auth a)
{
    switch (a) {
    case AUTH_PORTAL: return "portal";
    case AUTH_NONE: return "none";
    }
    return "?";
}

const char *config_conflict_name(enum config_conflict c)
{
    switch (c) {
    case CONFLICT_PORTAL: return "portal";
    case CONFLICT_AGENT: return "agent";
    }
    return "?";
}

int64_t config_ttl_ms(const struct config *cfg, const char *name)
{
    const struct config_table *t = config_table_find(cfg, name);
    return t ? t->ttl_ms : CONFIG_DEFAULT_TTL_MS;
}

int config_stale(int64_t ttl_ms, int64_t at_ms, int64_t now_ms)
{
    return at_ms <= 0 || now_ms - at_ms > ttl_ms;
}
