/* diff.h — iptv-diff's parts: the tables' shapes, the sample values read from the
 * portal, the statements (generated and hand-written), the HTTP client and the
 * comparison of two answers. iptv-diff sends each JSONSQL select to a portal
 * (the reference: PostgreSQL underneath) and to the agent's local API and says
 * where the answers differ (tests/diff/KNOWN.md lists what it found).
 *
 * It deliberately shares nothing with agent/jsonsql: statements are JSON text
 * written here, answers are parsed with agent/base/json (exact int64 literals).
 * Ownership: every struct is the caller's; *_free releases what the matching
 * call allocated. No global mutable state. */
#ifndef IA_DIFF_H
#define IA_DIFF_H
#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/base/buf.h"

/* ---- the tables' shapes (tests/fake_portal/gen.c) -------------------------------------- */

enum dtype { DT_INT, DT_REAL, DT_TEXT, DT_TS, DT_DATE, DT_BOOL, DT_JSON };

struct dcol {
    const char *name;
    enum dtype t;
    int nullable;
    int lowcard;              /* few distinct values: group by / distinct material */
};

/* A foreign key of a table: fk column -> target table's id. */
struct dfk {
    const char *col;
    int target;               /* index into diff_tables() */
};

struct dtab {
    const char *name;
    const struct dcol *cols;
    int ncols;
    int small;                /* <= 100 rows: selects without limit are fine */
    const struct dfk *fks;
    int nfks;
};

#define DIFF_NTABLES 8
const struct dtab *diff_tables(void);       /* DIFF_NTABLES entries */
int diff_table_index(const char *name);    /* -1 when unknown */

/* ---- a seeded PRNG (splitmix64): statements follow from the seed alone ---------------- */

struct drng {
    uint64_t x;
};
uint64_t drng_next(struct drng *r);
int drng_below(struct drng *r, int n);      /* [0, n), n > 0 */
int drng_pct(struct drng *r, int pct);      /* true in pct percent of calls */

/* ---- an HTTP JSON-RPC client ------------------------------------------------------------- */

struct dclient {
    CURL *curl;
    char base[256];           /* http://host:port, no trailing slash */
    char session[128];        /* "" until logged in */
    char bearer[256];         /* "" or a token sent as Authorization: Bearer */
};

struct danswer {
    long status;              /* HTTP status; -1 no answer (transport error in body) */
    struct buf body;
};

int dclient_init(struct dclient *c, const char *base, char *err, size_t errlen);
void dclient_free(struct dclient *c);
void danswer_free(struct danswer *a);
/* POST body to base + path ("/api/jsonsql/"), the session and bearer headers added
 * when set. a is reset first. Returns a->status. */
long dclient_post(struct dclient *c, const char *path, const char *body, size_t len, struct danswer *a);
/* authorize_user with user/password; on success the session is kept. 0, or -1
 * with err (the server's answer). */
int dclient_login(struct dclient *c, const char *user, const char *password, char *err, size_t errlen);

/* ---- samples: real values per column, read from the portal --------------------------- */

#define DIFF_MAX_SAMPLES 48
#define DIFF_MAX_COLS 32

struct dsample {
    char *lit;                /* the value as JSON text (exact numbers) */
    char *str;                /* strings: the unescaped text; else NULL */
};

struct dsamples {
    struct dsample v[DIFF_NTABLES][DIFF_MAX_COLS][DIFF_MAX_SAMPLES];
    int n[DIFF_NTABLES][DIFF_MAX_COLS];
};

/* Read up to DIFF_MAX_SAMPLES non-NULL distinct values of every non-JSON column
 * from the portal. 0, or -1 with err naming the table and column. s is zeroed
 * first; dsamples_free releases it. */
int dsamples_load(struct dsamples *s, struct dclient *portal, char *err, size_t errlen);
void dsamples_free(struct dsamples *s);

/* ---- statements ----------------------------------------------------------------------- */

enum dorder {
    ORD_FULL,                 /* the order_by determines the order: compared row by row */
    ORD_NONE,                 /* compared as multisets */
    ORD_COUNT                 /* only the number of rows is compared (which rows is arbitrary) */
};

struct dstmt {
    char name[64];            /* "gen/17 join" or a hand-written case's name */
    struct buf params;        /* the select's params object, or the whole body when raw */
    int raw;                  /* params is a whole request body (a batch) */
    enum dorder ord;
};

void dstmt_free(struct dstmt *st);
/* The full JSON-RPC body of st (id 1, method select) in out (appended). */
void dstmt_body(const struct dstmt *st, struct buf *out);

/* Generated statement number i of the run with this seed, st reset first. */
void dgen_statement(uint64_t seed, int i, const struct dsamples *s, struct dstmt *st);

/* Hand-written cases, one per known difference: the number of them, and case i. */
int dcases_count(void);
void dcases_get(int i, const struct dsamples *s, struct dstmt *st);

/* ---- classification ------------------------------------------------------------------- */

enum dclass { DC_SAME, DC_AGENT_REFUSED, DC_BOTH_REFUSED, DC_PORTAL_REFUSED, DC_DIFFERENT };
const char *dclass_name(enum dclass c);

/* Compare the portal's answer p with the agent's a for st (a batch: element by
 * element, the worst class wins). A JSON-RPC error is a refusal; an agent answer
 * that is no answer, not JSON, or neither an error nor a result array is
 * DC_DIFFERENT (a refusal must say why); a portal answer of that kind counts as
 * the portal refusing. Rows: ord decides (ORD_FULL in order, ORD_NONE as
 * multisets, ORD_COUNT the count only). why gets a short reason for anything
 * but DC_SAME (the first differing row and value, or the refusal). */
enum dclass diff_compare(const struct dstmt *st, const struct danswer *p, const struct danswer *a,
                         struct buf *why);

#endif
