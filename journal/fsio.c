/* fsio.c — see fsio.h. */
#include "journal/fsio.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* -1 with errno set when the test hook wants `op` to fail. */
static int fault(const struct fsio_fault *f, const char *op)
{
    int e = f && f->fn ? f->fn(f->ctx, op) : 0;
    if (!e) return 0;
    errno = e;
    return -1;
}

/* Fill err from errno (kept for the caller), return code. */
static int fail(int code, char *err, size_t errlen, const char *what, const char *path, const char *path2)
{
    int e = errno;
    if (path2) snprintf(err, errlen, "%s %s to %s: %s", what, path, path2, strerror(e));
    else snprintf(err, errlen, "%s %s: %s", what, path, strerror(e));
    errno = e;
    return code;
}

static int sync_dir_of(const char *path, const struct fsio_fault *f, char *err, size_t errlen)
{
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir) {
        errno = ENAMETOOLONG;
        return fail(FSIO_EDIR, err, errlen, "fsync of the directory of", path, NULL);
    }
    char *slash = strrchr(dir, '/');
    if (slash == dir) slash[1] = '\0';
    else if (slash) *slash = '\0';
    else snprintf(dir, sizeof dir, ".");
    int fd = fault(f, "fsync_dir") != 0 ? -1 : open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = FSIO_OK;
    if (fd < 0 || fsync(fd) != 0) rc = fail(FSIO_EDIR, err, errlen, "fsync of the directory", dir, NULL);
    if (fd >= 0) close(fd);
    return rc;
}

int fsio_sync_dir_of(const char *path, char *err, size_t errlen)
{
    return sync_dir_of(path, NULL, err, errlen);
}

int fsio_commit_fd(int fd, const char *tmp, const char *final, const struct fsio_fault *f, char *err,
                   size_t errlen)
{
    if (fault(f, "fdatasync") != 0 || fdatasync(fd) != 0)
        return fail(FSIO_EFILE, err, errlen, "fdatasync of", tmp, NULL);
    if (fault(f, "rename") != 0 || rename(tmp, final) != 0)
        return fail(FSIO_EFILE, err, errlen, "renaming", tmp, final);
    return sync_dir_of(final, f, err, errlen);
}

int fsio_commit(const char *tmp, const char *final, char *err, size_t errlen)
{
    int fd = open(tmp, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail(FSIO_EFILE, err, errlen, "opening", tmp, NULL);
    int rc = fsio_commit_fd(fd, tmp, final, NULL, err, errlen);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

int fsio_replace(const char *path, const void *data, size_t len, char *err, size_t errlen)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid()) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return fail(FSIO_EFILE, err, errlen, "creating a temporary file beside", path, NULL);
    }
    int rc = FSIO_EFILE;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        fail(rc, err, errlen, "creating", tmp, NULL);
        goto out;
    }
    for (const char *p = data; len > 0;) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            if (n == 0) errno = EIO;
            fail(rc, err, errlen, "writing", tmp, NULL);
            goto out;
        }
        p += n;
        len -= (size_t)n;
    }
    rc = fsio_commit_fd(fd, tmp, path, NULL, err, errlen);
out:;
    int e = errno;
    /* After fdatasync a failed close loses nothing. */
    if (fd >= 0) close(fd);
    if (rc == FSIO_EFILE) unlink(tmp);
    errno = e;
    return rc;
}
