/* export_hub.h — what a daemon serves at GET /export/snapshot and
 * GET /export/delta?base=ID: export files kept under a directory
 * (<storage.dir>/exports/) so edges can chain deltas.
 *
 * Snapshots. A request is answered with the newest kept snapshot when cache.db
 * has not changed since it was taken (same applied journal position and same
 * at_id, so a hub that is itself an edge notices its imports); otherwise a new
 * one is taken first (export_snapshot) and becomes the newest.
 * Deltas. The asking cache names the snapshot it is at. The answer is the delta
 * from that base to the newest snapshot (taken first if cache.db changed),
 * built once (export_delta_files) and kept as BASE-TARGET.delta for every other
 * edge at the same base. It carries the newest snapshot's id, so the edge that
 * applies it is then at a kept snapshot and its next request chains from there.
 * Retention. The newest `keep` snapshots are kept, with the deltas between
 * them; older files go. A base that is not kept (evicted, or from another hub)
 * is EXPORT_HUB_GONE: the edge takes a snapshot instead. Files left over from
 * an earlier run are kept as bases (oldest first by modification time).
 *
 * Thread-safety: one mutex serialises every call (exports are long: call from
 * a worker, not an event loop). A returned descriptor stays readable even if a
 * later call removes the file. Ownership: the hub owns its directory's files;
 * the caller closes the descriptors it is given and frees the hub. */
#ifndef IA_EXPORT_HUB_H
#define IA_EXPORT_HUB_H
#include <stddef.h>
#include <stdint.h>

#include "agent/ship/export.h"

enum export_hub_rc {
    EXPORT_HUB_ERR = -1,          /* err says why (cache.db unreadable, disk full, ...) */
    EXPORT_HUB_OK = 0,            /* *fd, *size, id describe the file to send */
    EXPORT_HUB_CURRENT = 1,       /* delta: the base is the newest state; nothing to send */
    EXPORT_HUB_GONE = 2,          /* delta: the base is not kept here; err says so */
    EXPORT_HUB_REFUSED = 3,       /* delta: tables were added or changed layout since the base */
};

struct export_hub;

/* dir is created when missing; keep >= 1. NULL with err. */
struct export_hub *export_hub_new(const char *dir, const char *db_path, int level, int keep, char *err,
                                  size_t errlen);
void export_hub_free(struct export_hub *h);

/* The file to send: a read-only descriptor (the caller closes it), its size and id. */
struct export_hub_file {
    int fd;
    int64_t size;
    char id[EXPORT_ID_LEN + 1];       /* the snapshot's id; a delta's id (= its target snapshot) */
    char base_id[EXPORT_ID_LEN + 1];  /* delta: its base; "" snapshot */
    int built;                        /* 1 when this call produced the file, 0 when it was kept */
};

int export_hub_snapshot(struct export_hub *h, struct export_hub_file *f, char *err, size_t errlen);
int export_hub_delta(struct export_hub *h, const char *base_id, struct export_hub_file *f, char *err,
                     size_t errlen);

#endif
