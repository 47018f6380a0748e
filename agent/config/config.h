/* config.h — agent.toml: the strict reader's result and how to get it.
 *
 * config_load() parses the TOML subset documented in docs/interface.md (via
 * toml.h), checks every key against the schema (one table, KEYS in config.c),
 * applies [defaults] to each [[table]], then the IPTVPORTAL_* environment
 * fallbacks. Any problem is an error "FILE:LINE:COL: key `K`: what" and
 * nothing is returned half-filled.
 * Durations are stored in milliseconds, sizes in bytes. The caller owns the
 * struct config and releases it with config_free(). */
#ifndef IA_CONFIG_H
#define IA_CONFIG_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A table's ttl when neither it nor [defaults] sets one (1h); also the
 * ttl of a table the config does not list (e.g. an imported one). */
#define CONFIG_DEFAULT_TTL_MS (INT64_C(3600) * 1000)

enum config_strategy { STRATEGY_FULL, STRATEGY_INCREMENTAL, STRATEGY_ON_DEMAND };
/* Writes through the local API (docs/outbox.md, "Policy"): queue while the
 * portal is unreachable (the default), forward only, or refuse every write. */
enum config_writes { WRITES_QUEUE, WRITES_FORWARD, WRITES_REFUSE };
/* Who may use the local API's portal routes (/api/jsonrpc/, /api/jsonsql/):
 * "portal" logs in as the portal does (agent/serve/serve_auth.h), "none" leaves
 * them open to whoever reaches the (loopback) port. */
enum config_auth { AUTH_PORTAL, AUTH_NONE };
/* Who wins when a queued op's rows changed on the portal meanwhile. */
enum config_conflict { CONFLICT_PORTAL, CONFLICT_AGENT };
/* A select the cache cannot answer ([serve] unknown_tables, docs/interface.md
 * "Pass-through"): forward it to the portal (the default); forward it and
 * start caching an unconfigured table (at most max_auto_tables); or refuse it. */
enum config_unknown { UNKNOWN_FORWARD, UNKNOWN_CACHE, UNKNOWN_REFUSE };

struct config_table {
    char *name;                    /* portal table name */
    enum config_strategy strategy;
    char *key;                     /* primary key column, default "id" */
    char *cursor;                  /* incremental: monotonic column, e.g. updated_at; else NULL */
    char **columns;                /* configured column names; NULL when introspected */
    int ncolumns;
    int64_t chunk;                 /* rows per page, default 1000 */
    int streams;                   /* key-range streams of a snapshot or catch-up at once, default 16
                                      (1 for a key that is not an integer) */
    int64_t ttl_ms;                /* full: max age before a new snapshot; on_demand: max age of
                                      a row before a lookup reads it again; default 1h */
    int64_t interval_ms;           /* incremental: pull period, default 1m */
    int64_t lookback_ms;           /* incremental: window re-read behind the mark, default 0 */
    int64_t sweep_ms;              /* incremental: deletion sweep period, default 6h (0 = never) */
    enum config_writes writes;     /* default WRITES_QUEUE */
    enum config_conflict conflict; /* default CONFLICT_PORTAL */
    int line;                      /* line of its [[table]] header, for messages */
    bool auto_added;               /* added at run time (config_table_auto), columns named Field_N
                                      but the key: statements naming others go to the portal */
};

struct config {
    char *path;                    /* file it came from (config_parse: its name, or "<string>") */
    struct {
        char *url;                 /* base URL, no trailing '/', e.g. https://x.admin.iptvportal.ru;
                                      from domain if unset; NULL when neither is known */
        char *domain;              /* bare domain setting or IPTVPORTAL_DOMAIN */
        char *username;            /* IPTVPORTAL_USERNAME overrides */
        char *password_env;        /* env var holding the password, default IPTVPORTAL_PASSWORD */
        int64_t timeout_ms;        /* per request, default 30s */
        int retries;               /* transient retries, default 5 */
        bool verify_tls;           /* default true */
        char *ca_file;             /* optional CA bundle */
        int64_t max_response;      /* bytes; default 256MiB */
        int max_inflight;          /* requests of parallel streams at once, all tables; default 16 */
    } remote;
    struct {
        char *dir;                 /* cache.db and journal/ live here */
        int64_t segment_size;      /* bytes, default 64MiB */
        int compression_level;     /* zlib 1..9, default 3 */
        int64_t retain_ms;         /* default 7d */
        int64_t compact_interval_ms;  /* the daemon compacts the journal this often (and
                                         after each snapshot); default 10m */
    } storage;
    struct {
        char *listen;              /* host:port, default 127.0.0.1:8642 */
        char *token_env;           /* env var holding the API token; required off loopback */
        int token_env_line;        /* its line in the file (0: not set), for `run`'s messages */
        int export_keep;           /* snapshots kept as delta bases for /export, default 4 */
        bool tokenless_writes;     /* tokenless_writes = "loopback": a server without a token
                                      forwards writes; default "refuse" */
        enum config_auth auth;     /* default AUTH_PORTAL */
        int64_t session_ttl_ms;    /* an authorize_user session lives this long unused, default 1h */
        int64_t max_rows;          /* rows per answer on /api/jsonsql/ (a page cap), default 5000 */
        enum config_unknown unknown_tables;   /* default UNKNOWN_FORWARD */
        int max_auto_tables;       /* tables `cache` adds at most, default 16 */
    } serve;
    struct {                       /* an edge agent: tables come from a hub agent, not the portal */
        char *url;                 /* the hub's base URL (no trailing '/'); NULL: not an edge */
        char *token_env;           /* env var holding the hub's API token; NULL: none */
        int64_t interval_ms;       /* how often to ask the hub for a delta, default 30s */
        int64_t timeout_ms;        /* per download, default 30m */
        bool verify_tls;           /* default true */
        char *ca_file;             /* optional CA bundle */
    } upstream;
    struct config_table *tables;
    /* Atomic: the daemon adds tables at run time (unknown_tables = "cache") into
     * room reserved up front, so the array never moves; threads that look a
     * table up read the count once and see every entry below it whole. */
    _Atomic int ntables;
    struct config_table defaults;  /* [defaults] over the built-in ones (name NULL, no columns) */
};

/* Read and check a file. Returns 0, or -1 with err "path:line:col: ...". */
int config_load(const char *path, struct config *out, char *err, size_t errlen);
/* Same for text already in memory; `name` stands for the file in messages. */
int config_parse(const char *name, const char *text, size_t len, struct config *out,
                 char *err, size_t errlen);
void config_free(struct config *c);

const struct config_table *config_table_find(const struct config *c, const char *name);
/* A table `name` as a [[table]] with only its name would be: c->defaults, but
 * a default strategy of incremental becomes full (its cursor is not known),
 * no columns (all, named by introspection). *out owns its strings:
 * config_table_free(). */
void config_table_auto(const struct config *c, const char *name, struct config_table *out);
void config_table_free(struct config_table *t);
const char *config_strategy_name(enum config_strategy s);
const char *config_writes_name(enum config_writes w);        /* "queue" "forward" "refuse" */
const char *config_conflict_name(enum config_conflict c);    /* "portal" "agent" */
const char *config_auth_name(enum config_auth a);            /* "portal" "none" */
/* The one staleness rule (status, X-Cache-Stale, on_demand refresh): data read
 * from the portal at at_ms (<= 0: never, or not known) is stale at now_ms when
 * older than ttl_ms. */
int config_stale(int64_t ttl_ms, int64_t at_ms, int64_t now_ms);
/* The ttl of table `name`: its own, or CONFIG_DEFAULT_TTL_MS for a table this
 * file does not list (an edge's or an imported one). */
int64_t config_ttl_ms(const struct config *cfg, const char *name);

/* Parse "30s" "5m" "1h" "7d" "250ms" -> ms, "64MiB" "512KiB" "1GiB" "100" -> bytes.
 * Return 0 or -1. Exposed for the CLI and tests. */
int config_parse_duration(const char *s, int64_t *ms);
int config_parse_size(const char *s, int64_t *bytes);

/* True when a listen address is loopback (127.0.0.0/8, ::1, localhost). */
bool config_listen_is_loopback(const char *listen);
/* Split "host:port" or "[v6addr]:port" (port 0..65535) into host (without
 * brackets, NUL-terminated, at most hostlen-1 bytes) and port. Returns 0 or -1. */
int config_listen_split(const char *listen, char *host, size_t hostlen, int *port);

#endif
