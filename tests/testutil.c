/* testutil.c — see testutil.h. */
#include "tests/testutil.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef IA_FAKE_PORTAL
#define IA_FAKE_PORTAL "iptv-fake-portal"
#endif

char *tu_tmpdir(const char *prefix)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    size_t n = strlen(base) + strlen(prefix) + 16;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s.XXXXXX", base, prefix);
    if (!mkdtemp(p)) { free(p); return NULL; }
    return p;
}

void tu_rmrf(const char *path)
{
    const char *argv[] = {"/bin/rm", "-rf", path, NULL};
    tu_run(argv, NULL, NULL, NULL);
}

int tu_write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, len, f);
    if (fclose(f) != 0 || w != len) return -1;
    return 0;
}

char *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *p = malloc(cap);
    size_t r;
    while ((r = fread(p + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n < 2) { cap *= 2; p = realloc(p, cap); }
    }
    fclose(f);
    p[n] = '\0';
    if (len) *len = n;
    return p;
}

int tu_portal_start(struct tu_portal *p, const char *const *args)
{
    int fds[2];
    if (pipe(fds) != 0) return -1;
    const char *argv[64];
    int n = 0;
    argv[n++] = IA_FAKE_PORTAL;
    for (int i = 0; args && args[i] && n < 62; i++) argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    /* The portal prints its URL as the first line once it listens. */
    char line[200];
    size_t got = 0;
    while (got < sizeof line - 1) {
        ssize_t r = read(fds[0], line + got, 1);
        if (r <= 0) break;
        if (line[got] == '\n') break;
        got++;
    }
    line[got] = '\0';
    close(fds[0]);
    if (strncmp(line, "http://", 7) != 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    p->pid = pid;
    snprintf(p->url, sizeof p->url, "%s", line);
    return 0;
}

void tu_portal_stop(struct tu_portal *p)
{
    if (p->pid > 0) {
        kill(p->pid, SIGTERM);
        waitpid(p->pid, NULL, 0);
        p->pid = 0;
    }
}

static void drain(int fd, char **out)
{
    size_t cap = 4096, n = 0;
    char *p = malloc(cap);
    for (;;) {
        if (cap - n < 1024) { cap *= 2; p = realloc(p, cap); }
        ssize_t r = read(fd, p + n, cap - n - 1);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        n += (size_t)r;
    }
    p[n] = '\0';
    if (out) *out = p; else free(p);
}

int tu_run(const char *const *argv, const char *const *env_add, char **out, char **errout)
{
    char tmpl_o[] = "/tmp/tu_out.XXXXXX", tmpl_e[] = "/tmp/tu_err.XXXXXX";
    int fo = mkstemp(tmpl_o), fe = mkstemp(tmpl_e);
    if (fo < 0 || fe < 0) return -1;
    unlink(tmpl_o);
    unlink(tmpl_e);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, 0);
        dup2(fo, 1);
        dup2(fe, 2);
        for (int i = 0; env_add && env_add[i]; i++) putenv((char *)env_add[i]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    lseek(fo, 0, SEEK_SET);
    lseek(fe, 0, SEEK_SET);
    drain(fo, out);
    drain(fe, errout);
    close(fo);
    close(fe);
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    if (WIFSIGNALED(st)) return -WTERMSIG(st);
    return -1;
}

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
    char **acc = ud;
    size_t old = *acc ? strlen(*acc) : 0, len = size * n;
    *acc = realloc(*acc, old + len + 1);
    memcpy(*acc + old, p, len);
    (*acc)[old + len] = '\0';
    return len;
}

int tu_http(const char *url, const char *body, char **resp)
{
    CURL *c = curl_easy_init();
    char *acc = NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &acc);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    if (body) curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    long status = -1;
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    if (resp) *resp = acc ? acc : strdup(""); else free(acc);
    return (int)status;
}

int tu_admin(const struct tu_portal *p, const char *path, const char *body)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", p->url, path);
    return tu_http(url, body ? body : "{}", NULL);
}
