/* testutil.h — helpers shared by unit and scenario tests: temp dirs, files, and
 * the fake portal as a real child process on an ephemeral loopback port.
 * Everything returned is owned by the caller (free / tu_portal_stop). */
#ifndef IA_TESTUTIL_H
#define IA_TESTUTIL_H
#include <stddef.h>
#include <sys/types.h>

/* mkdtemp under $TMPDIR (or /tmp); caller frees; tu_rmrf removes it. */
char *tu_tmpdir(const char *prefix);
void tu_rmrf(const char *path);
/* Write / read a whole file. read returns malloc'd bytes (NUL-terminated) or NULL. */
int tu_write_file(const char *path, const char *data, size_t len);
char *tu_read_file(const char *path, size_t *len);

/* A running fake portal. */
struct tu_portal {
    pid_t pid;
    char url[256];     /* http://127.0.0.1:PORT, read from its first stdout line */
};
/* Start IA_FAKE_PORTAL with the given NULL-terminated extra arguments
 * (e.g. "--rows", "1000", NULL). Returns 0 or -1. */
int tu_portal_start(struct tu_portal *p, const char *const *args);
void tu_portal_stop(struct tu_portal *p);   /* SIGTERM, wait */

/* Run a command (argv[0] is a path), capturing stdout and stderr (each malloc'd,
 * may be NULL to discard). Returns the exit status, or -1/-signal. */
int tu_run(const char *const *argv, const char *const *env_add, char **out, char **errout);

/* POST (body non-NULL) or GET url; returns HTTP status or -1; *resp malloc'd if non-NULL. */
int tu_http(const char *url, const char *body, char **resp);
/* POST JSON to the portal's admin route, e.g. tu_admin(&p, "/_fake/faults", "{...}"). Status. */
int tu_admin(const struct tu_portal *p, const char *path, const char *body);

#endif
