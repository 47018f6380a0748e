/* store.h — the storage directory: cache.db beside journal/, opened together.
 *
 * A writer (store_open with writer=1) holds the journal's directory lock, so one
 * process at a time pulls or replays; it applies any journal records cache.db has
 * not seen yet before returning (a crash between append and apply is healed
 * here). A reader opens cache.db only. The caller closes with store_close(). */
#ifndef IA_STORE_H
#define IA_STORE_H
#include <pthread.h>
#include <stddef.h>

#include "agent/config/config.h"
#include "journal/journal.h"
#include "replay/replay.h"

struct store {
    char *dir;                       /* storage.dir */
    char *journal_dir;               /* dir + "/journal" */
    char *db_path;                   /* dir + "/cache.db" */
    struct journal_writer *jw;       /* NULL for a reader */
    struct replay *rp;
};

/* 0 ok, -1 with err, STORE_ELOCKED (err names the holder) when another process
 * (a running daemon, say) holds the journal. Creates the directory when missing. */
#define STORE_ELOCKED (-2)
int store_open(const struct config *cfg, int writer, struct store *s, char *err, size_t errlen);
/* A reader that only reads (status): creates nothing, not even the directory.
 * 0 ok, 1 there is no cache.db yet (err names it), -1 error. */
int store_open_readonly(const struct config *cfg, struct store *s, char *err, size_t errlen);
void store_close(struct store *s);
/* Compact the journal: journal_compact() bounded by cache.db's applied position
 * (or max_applied when lower) and [storage] retain, then note the outcome in
 * cache.db for `status`, and delete the ended outbox ops older than the
 * journal's new start (replay_outbox_prune). The one way every caller compacts (`journal compact`,
 * --once, the daemon). lock (may be NULL) guards the writer connection: held
 * to read the position and to note the result, not while the journal is read.
 * 0 or -1 with err (nothing noted then). */
int store_compact(struct store *s, const struct config *cfg, uint64_t max_applied, pthread_mutex_t *lock,
                  struct journal_compact_result *res, char *err, size_t errlen);

/* Fill replay_opts for this store (warnings to the log). */
void store_replay_opts(const struct store *s, struct replay_opts *o);

#endif
