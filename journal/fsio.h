/* fsio.h — a whole file put in place atomically: readers see the old file or
 * the new one, never part of one, and after a crash the name holds one of them.
 *
 * It lives in journal/, the lowest layer, because the journal's segment
 * creation is one of its users and journal/ uses no code of ours; every other
 * writer of a whole file (replay, export, the hub, the edge) calls it here.
 *
 * The one way the agent replaces a file: its bytes under a temporary name in
 * the same directory (rename does not cross file systems), fdatasync of that
 * file, rename over the final name, fsync of the directory (the rename itself
 * is durable only then). fdatasync is enough for the file: it flushes the data
 * and the size needed to read it back; only timestamps may lag.
 *   - small files: fsio_replace() with the bytes in memory;
 *   - a file streamed to disk (a gzip stream, VACUUM INTO, a journal segment):
 *     the caller writes a temporary name beside the final one, then
 *     fsio_commit() (or fsio_commit_fd() while it holds the file open).
 *
 * Failures: FSIO_EFILE (the final name is untouched) or FSIO_EDIR (the new file
 * is in place but the directory's fsync failed, so a crash may bring the old
 * one back); err names the file and errno is the failed call's. The caller
 * owns the temporary file: fsio_commit*() never remove it. */
#ifndef IA_JOURNAL_FSIO_H
#define IA_JOURNAL_FSIO_H
#include <stddef.h>

#define FSIO_OK 0
#define FSIO_EFILE (-1)
#define FSIO_EDIR (-2)

/* Tests only: asked before each step, by name ("fdatasync", "rename",
 * "fsync_dir"); a non-zero errno makes that step fail with it. */
struct fsio_fault {
    int (*fn)(void *ctx, const char *op);
    void *ctx;
};

/* Replace path with len bytes of data (temporary name path.tmp-PID, created
 * with mode 0666 less the umask, removed again on failure). */
int fsio_replace(const char *path, const void *data, size_t len, char *err, size_t errlen);

/* tmp, fully written and closed, becomes final. */
int fsio_commit(const char *tmp, const char *final, char *err, size_t errlen);

/* The same with tmp open as fd, which stays open (now naming final). fault
 * may be NULL. */
int fsio_commit_fd(int fd, const char *tmp, const char *final, const struct fsio_fault *fault, char *err,
                   size_t errlen);

/* fsync the directory holding path, after a rename or link into it. 0 or FSIO_EDIR. */
int fsio_sync_dir_of(const char *path, char *err, size_t errlen);

#endif
