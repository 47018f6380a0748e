/* test_fsio.c — whole-file replace: the new bytes in place and no temporary
 * left; each failing step (by the fault hook) with its code, the final name
 * untouched before the rename and replaced after it, errno kept, and the
 * message naming the file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "journal/fsio.h"
#include "tests/testutil.h"

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    if (d) closedir(d);
    return n;
}

static void assert_file(const char *path, const char *want)
{
    size_t n;
    char *got = tu_read_file(path, &n);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void test_replace(void **state)
{
    char *dir = tu_tmpdir("fsio");
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/state", dir);
    assert_int_equal(fsio_replace(path, "one\n", 4, err, sizeof err), FSIO_OK);
    assert_file(path, "one\n");
    assert_int_equal(fsio_replace(path, "two\n", 4, err, sizeof err), FSIO_OK);
    assert_file(path, "two\n");
    assert_int_equal(count_files(dir), 1);                 /* no temporary left */

    char missing[600];
    snprintf(missing, sizeof missing, "%s/no-such-dir/state", dir);
    assert_int_equal(fsio_replace(missing, "x", 1, err, sizeof err), FSIO_EFILE);
    assert_int_equal(errno, ENOENT);
    assert_non_null(strstr(err, missing));
    tu_rmrf(dir);
    free(dir);
}

struct faults {
    const char *fail;        /* the step to fail */
    int seen;                /* steps asked about */
};

static int fault(void *ctx, const char *op)
{
    struct faults *f = ctx;
    f->seen++;
    return !strcmp(op, f->fail) ? EIO : 0;
}

/* tmp with `text` written and open: commit it over final with step `fail` failing. */
static int commit_failing(const char *dir, const char *fail, const char *text, char *err, size_t errlen)
{
    char tmp[512], final[512];
    snprintf(tmp, sizeof tmp, "%s/.new", dir);
    snprintf(final, sizeof final, "%s/final", dir);
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    struct faults f = {fail, 0};
    struct fsio_fault hook = {fault, &f};
    int rc = fsio_commit_fd(fd, tmp, final, &hook, err, errlen);
    int e = errno;
    close(fd);
    unlink(tmp);
    assert_int_equal(f.seen, rc == FSIO_OK || rc == FSIO_EDIR ? 3 : !strcmp(fail, "rename") ? 2 : 1);
    errno = e;
    return rc;
}

static void test_commit_steps(void **state)
{
    char *dir = tu_tmpdir("fsio");
    char final[512], err[512];
    snprintf(final, sizeof final, "%s/final", dir);
    assert_int_equal(commit_failing(dir, "none", "old", err, sizeof err), FSIO_OK);
    assert_file(final, "old");

    /* Before the rename: the final name keeps the old file. */
    assert_int_equal(commit_failing(dir, "fdatasync", "new", err, sizeof err), FSIO_EFILE);
    assert_int_equal(errno, EIO);
    assert_non_null(strstr(err, "fdatasync of "));
    assert_non_null(strstr(err, "/.new: Input/output error"));
    assert_file(final, "old");
    assert_int_equal(commit_failing(dir, "rename", "new", err, sizeof err), FSIO_EFILE);
    assert_non_null(strstr(err, "/final: Input/output error"));
    assert_file(final, "old");

    /* After it: the new file is in place, not yet durable. */
    assert_int_equal(commit_failing(dir, "fsync_dir", "new", err, sizeof err), FSIO_EDIR);
    assert_int_equal(errno, EIO);
    char want[600];
    snprintf(want, sizeof want, "fsync of the directory %s: Input/output error", dir);
    assert_string_equal(err, want);
    assert_file(final, "new");

    /* The path form: a temporary that is not there. */
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s/absent", dir);
    assert_int_equal(fsio_commit(tmp, final, err, sizeof err), FSIO_EFILE);
    assert_non_null(strstr(err, tmp));
    tu_write_file(tmp, "path", 4);
    assert_int_equal(fsio_commit(tmp, final, err, sizeof err), FSIO_OK);
    assert_file(final, "path");
    assert_int_equal(count_files(dir), 1);
    tu_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replace),
        cmocka_unit_test(test_commit_steps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
