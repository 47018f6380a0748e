/* gen.h — the fake portal's data: deterministic, realistic tables and their mutation.
 *
 * Owns what iptv-fake-portal serves: fakegen_create() creates and fills the tables
 * below in a caller's SQLite handle from a seed; fakegen_mutate() advances the
 * portal's clock and updates/inserts/deletes rows the way a live portal does.
 * Same seed (and same db for mutate) -> byte-identical content. No global state.
 *
 * Tables (declared types drive the server's catalog: INTEGER int, REAL real,
 * TEXT/TIMESTAMP text, BOOLEAN bool stored 0/1, JSON json text of array/object;
 * column 1 is always `id INTEGER PRIMARY KEY`):
 *   tv_program          11 cols  opts.tv_program_rows (default 200000); ids rise with
 *                                gaps; updated_at shared by import batches of 250..1000
 *   tv_channel          13 cols  2000 * scale
 *   subscriber          10 cols  5000 * scale; ids from ~2^40 with random gaps
 *   terminal             9 cols  8000 * scale; subscriber_id names a subscriber
 *   media               74 cols  3000 * scale; ids from 2^53+1 up to near INT64_MAX
 *   tv_category          3 cols  40;  package 3 cols  25
 *   tv_program_category  3 cols  ~1.3% of tv_program rows (1-2 links for 1% of programmes)
 *   indexes on (updated_at, id) of tv_program, subscriber, terminal (as a portal has)
 *   _fake_clock(now TEXT)        one row, the portal's "now", starts at
 *                                FAKEGEN_CLOCK_START
 *   _fake_seq(name, last_id)     highest id ever issued per table (ids never reused)
 *   (tables named `_fake_*` are bookkeeping, hidden from clients)
 * Every existing created_at/updated_at is < FAKEGEN_CLOCK_START, so anything mutate
 * writes is strictly newer. Text carries Cyrillic, ' " \ newline tab and empty
 * strings; nullable columns are NULL in ~5-10% of rows; timestamps are
 * "YYYY-MM-DD HH:MM:SS", some with ".ffffff".
 *
 * Ownership: the caller owns db (open, close, journal mode); nothing is retained. */
#ifndef IA_FAKEGEN_H
#define IA_FAKEGEN_H
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#define FAKEGEN_CLOCK_START "2026-01-01 00:00:00"
#define FAKEGEN_DEFAULT_TV_PROGRAM_ROWS 200000

struct fakegen_opts {
    uint64_t seed;            /* all content derives from it (any value, 0 included) */
    int64_t tv_program_rows;  /* 0 = FAKEGEN_DEFAULT_TV_PROGRAM_ROWS; < 0 is an error */
    int64_t scale;            /* multiplier for tv_channel/subscriber/terminal/media; 0 = 1 */
};

/* Create and fill every table above in one savepoint (o NULL = all defaults).
 * Fails, naming the table, if one already exists; then the savepoint is rolled
 * back. Runs with PRAGMA synchronous=OFF and restores the caller's value after
 * (the data is regenerable; the commit's fsync was a third of a file load).
 * journal_mode is left alone. Returns 0, or -1 with err filled. */
int fakegen_create(sqlite3 *db, const struct fakegen_opts *o, char *err, size_t errlen);

struct fakegen_mutation {
    const char *table;   /* subscriber, terminal, tv_program, tv_channel or media;
                            NULL = each of subscriber, terminal, tv_program */
    int64_t updates;     /* rows to change (per table); >= 0 */
    int64_t inserts;     /* rows to add; ids climb with gaps from the highest ever issued */
    int64_t deletes;     /* rows to remove; deletes and updates pick distinct rows */
    int same_ts;         /* nonzero: every written row gets one updated_at (now+1 s) */
    uint64_t seed;       /* picks rows and new values */
};

struct fakegen_mutate_result {
    int64_t updated, inserted, deleted;  /* done; fewer than asked only when a
                                            table has fewer rows than updates+deletes */
    char ts[32];                         /* the new clock = newest updated_at written */
};

/* One savepoint: advance _fake_clock and apply m. The clock moves by 1 s when
 * same_ts (or nothing is written), else by the number of rows written, each row
 * getting its own second (old now + 1, + 2, ...): updates, then inserts, table by
 * table. Deletes do not cascade (a deleted subscriber's terminals keep its id).
 * r may be NULL; it is written only on success. Returns 0, or -1 with err
 * filled and the savepoint rolled back (unknown table, table without updated_at,
 * negative count, missing or malformed _fake_clock, id space exhausted, SQLite). */
int fakegen_mutate(sqlite3 *db, const struct fakegen_mutation *m,
                   struct fakegen_mutate_result *r, char *err, size_t errlen);

#endif
