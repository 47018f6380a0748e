/* main.c — iptv-diff: the differential test of the agent's local JSONSQL API
 * against a portal (the reference: iptv-ref-portal, PostgreSQL underneath).
 *
 *   iptv-diff --portal URL --agent URL --user U --password P [--agent-token T]
 *             --seed N --count N [--report FILE] [--verbose]
 *
 * Runs every hand-written case (cases.c), then --count generated statements
 * (gen.c), each sent to both servers and classified (compare.c). Prints one line
 * per difference and a summary; exit 0 when nothing differs (agent refusals
 * are allowed and listed), 1 when a statement differs or only the portal
 * refused it, 2 on a usage error or a failure to start (login, sampling). */
#include "tests/diff/diff.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/json.h"

static const char usage[] =
    "usage: iptv-diff --portal URL --agent URL --user U --password P [--agent-token T]\n"
    "                 --seed N --count N [--report FILE] [--verbose]\n"
    "Sends the hand-written cases and N generated JSONSQL selects (seeded) to the portal\n"
    "and to the agent's /api/jsonsql/ and compares the answers (rows, JSON types, order).\n"
    "Exit: 0 no differences (agent refusals allowed), 1 differences, 2 usage or start error.\n";

struct opts {
    const char *portal, *agent, *user, *password, *token, *report;
    uint64_t seed;
    long count;
    int verbose;
};

struct tally {
    long n[DC_DIFFERENT + 1];
    long total;
    struct buf refused;       /* names of the agent's refusals, for the summary */
    int nrefused_named;
};

/* 0 parsed, 1 --help printed, -1 usage error (said). */
static int parse_args(int argc, char **argv, struct opts *o)
{
    memset(o, 0, sizeof *o);
    o->count = -1;
    int have_seed = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--verbose") == 0) {
            o->verbose = 1;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            return 1;
        }
        if (!v) {
            fprintf(stderr, "iptv-diff: %s needs a value\n%s", a, usage);
            return -1;
        }
        i++;
        char *end;
        errno = 0;
        if (strcmp(a, "--portal") == 0) o->portal = v;
        else if (strcmp(a, "--agent") == 0) o->agent = v;
        else if (strcmp(a, "--user") == 0) o->user = v;
        else if (strcmp(a, "--password") == 0) o->password = v;
        else if (strcmp(a, "--agent-token") == 0) o->token = v;
        else if (strcmp(a, "--report") == 0) o->report = v;
        else if (strcmp(a, "--seed") == 0) {
            o->seed = strtoull(v, &end, 10);
            if (errno || *end || end == v) goto bad;
            have_seed = 1;
        } else if (strcmp(a, "--count") == 0) {
            o->count = strtol(v, &end, 10);
            if (errno || *end || end == v || o->count < 0) goto bad;
        } else {
            fprintf(stderr, "iptv-diff: unknown option %s\n%s", a, usage);
            return -1;
        }
        continue;
    bad:
        fprintf(stderr, "iptv-diff: bad value for %s: \"%s\"\n", a, v);
        return -1;
    }
    if (!o->portal || !o->agent || !o->user || !o->password || !have_seed || o->count < 0) {
        fprintf(stderr, "iptv-diff: --portal, --agent, --user, --password, --seed and --count are required\n%s",
                usage);
        return -1;
    }
    return 0;
}

/* The agent takes the portal account's user/password, or its API token as the
 * password; when neither logs in but a token is given, every request carries it
 * as a bearer token instead. */
static int agent_login(struct dclient *c, const struct opts *o, char *err, size_t errlen)
{
    char e1[512] = "", e2[512] = "";
    if (dclient_login(c, o->user, o->password, e1, sizeof e1) == 0) return 0;
    if (!o->token) {
        snprintf(err, errlen, "%s", e1);
        return -1;
    }
    if (dclient_login(c, o->user, o->token, e2, sizeof e2) == 0) return 0;
    snprintf(c->bearer, sizeof c->bearer, "%s", o->token);
    fprintf(stderr, "iptv-diff: the agent refused both logins (%s; with the token: %s): sending the token as "
                    "Authorization: Bearer\n", e1, e2);
    return 0;
}

static void report_line(FILE *f, const struct dstmt *st, enum dclass c, const char *body,
                        const struct danswer *p, const struct danswer *a, const char *why)
{
    struct buf b = {0};
    buf_puts(&b, "{\"case\":");
    json_write_string(&b, st->name, strlen(st->name));
    buf_printf(&b, ",\"class\":\"%s\",\"why\":", dclass_name(c));
    json_write_string(&b, why, strlen(why));
    buf_puts(&b, ",\"request\":");
    json_write_string(&b, body, strlen(body));
    buf_printf(&b, ",\"portal_status\":%ld,\"portal\":", p->status);
    json_write_string(&b, p->body.p ? p->body.p : "", p->body.len);
    buf_printf(&b, ",\"agent_status\":%ld,\"agent\":", a->status);
    json_write_string(&b, a->body.p ? a->body.p : "", a->body.len);
    buf_puts(&b, "}\n");
    fwrite(b.p, 1, b.len, f);
    buf_free(&b);
}

static void run_one(struct dclient *portal, struct dclient *agent, const struct dstmt *st, const struct opts *o,
                    FILE *report, struct tally *t)
{
    struct buf body = {0}, why = {0};
    struct danswer p = {0}, a = {0};
    dstmt_body(st, &body);
    dclient_post(portal, "/api/jsonsql/", body.p, body.len, &p);
    dclient_post(agent, "/api/jsonsql/", body.p, body.len, &a);
    enum dclass c = diff_compare(st, &p, &a, &why);
    t->n[c]++;
    t->total++;
    if (c == DC_AGENT_REFUSED && t->nrefused_named < 12) {
        buf_printf(&t->refused, "%s%s", t->nrefused_named ? ", " : "", st->name);
        t->nrefused_named++;
    }
    if (c == DC_DIFFERENT || c == DC_PORTAL_REFUSED || (o->verbose && c != DC_SAME)) {
        printf("%s %s: %.*s\n  request: %.400s\n  portal: HTTP %ld %.300s\n  agent:  HTTP %ld %.300s\n",
               dclass_name(c), st->name, 600, why.p ? why.p : "", body.p, p.status, p.body.p ? p.body.p : "",
               a.status, a.body.p ? a.body.p : "");
    } else if (o->verbose) {
        printf("same %s\n", st->name);
    }
    if (report && c != DC_SAME) report_line(report, st, c, body.p, &p, &a, why.p ? why.p : "");
    buf_free(&body);
    buf_free(&why);
    danswer_free(&p);
    danswer_free(&a);
}

int main(int argc, char **argv)
{
    struct opts o;
    int pa = parse_args(argc, argv, &o);
    if (pa) return pa > 0 ? 0 : 2;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char err[1024];
    struct dclient portal = {0}, agent = {0};
    int rc = 2;
    FILE *report = NULL;
    struct dsamples *s = calloc(1, sizeof *s);
    struct tally t = {0};
    if (!s) {
        fprintf(stderr, "iptv-diff: out of memory for the samples\n");
        return 2;
    }
    if (dclient_init(&portal, o.portal, err, sizeof err) || dclient_init(&agent, o.agent, err, sizeof err)) {
        fprintf(stderr, "iptv-diff: %s\n", err);
        goto out;
    }
    if (dclient_login(&portal, o.user, o.password, err, sizeof err)) {
        fprintf(stderr, "iptv-diff: portal login: %s\n", err);
        goto out;
    }
    if (agent_login(&agent, &o, err, sizeof err)) {
        fprintf(stderr, "iptv-diff: agent login: %s\n", err);
        goto out;
    }
    if (dsamples_load(s, &portal, err, sizeof err)) {
        fprintf(stderr, "iptv-diff: %s\n", err);
        goto out;
    }
    if (o.report && !(report = fopen(o.report, "w"))) {
        fprintf(stderr, "iptv-diff: cannot write the report %s: %s\n", o.report, strerror(errno));
        goto out;
    }
    struct dstmt st = {0};
    for (int i = 0; i < dcases_count(); i++) {
        dcases_get(i, s, &st);
        run_one(&portal, &agent, &st, &o, report, &t);
    }
    for (long i = 0; i < o.count; i++) {
        dgen_statement(o.seed, (int)i, s, &st);
        run_one(&portal, &agent, &st, &o, report, &t);
    }
    dstmt_free(&st);
    printf("diff: %ld statements, same %ld, agent_refused %ld (%s%s), both_refused %ld, portal_refused %ld, "
           "different %ld\n",
           t.total, t.n[DC_SAME], t.n[DC_AGENT_REFUSED], t.refused.p ? t.refused.p : "",
           t.n[DC_AGENT_REFUSED] > t.nrefused_named ? ", ..." : "", t.n[DC_BOTH_REFUSED], t.n[DC_PORTAL_REFUSED],
           t.n[DC_DIFFERENT]);
    rc = t.n[DC_DIFFERENT] || t.n[DC_PORTAL_REFUSED] ? 1 : 0;
out:
    if (report && fclose(report) != 0) {
        fprintf(stderr, "iptv-diff: writing the report %s: %s\n", o.report, strerror(errno));
        rc = 2;
    }
    buf_free(&t.refused);
    dsamples_free(s);
    free(s);
    dclient_free(&portal);
    dclient_free(&agent);
    curl_global_cleanup();
    return rc;
}
