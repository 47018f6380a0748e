/* cmd_outbox.c — `iptv-agent outbox`: the writes accepted while the portal was
 * unreachable (docs/outbox.md). Listing reads cache.db read-only, as status
 * does; `retry` and `drop` journal an op_state record and apply it, under the
 * journal lock, like every other change to cache.db (the journal is the
 * outbox's durable copy; cache.db follows it). */
#include "agent/base/buf.h"
#include "agent/base/err.h"
#include "agent/base/json.h"
#include "agent/cli/cmd.h"
#include "agent/pull/store.h"
#include "journal/rows.h"
#include "replay/outbox.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char outbox_usage[] =
    "usage: iptv-agent outbox [--json]\n"
    "       iptv-agent outbox retry ID\n"
    "       iptv-agent outbox drop ID\n"
    "\n"
    "Writes accepted while the portal was unreachable, oldest first: id, table, kind\n"
    "(insert|update|delete), state, attempts, when accepted, the keys it touches and\n"
    "the last error. States: pending (waits for the portal), sent (the request may\n"
    "have reached the portal; the outcome is not known yet), done, conflict (the\n"
    "portal changed the row first), rejected (the portal refused it), dropped.\n"
    "conflict, rejected and dropped ops had their local change reverted.\n"
    "--json: one JSON document {\"ops\":[...]}. Only reads: creates nothing.\n"
    "\n"
    "retry ID  an update or delete in state sent: back to pending, so the sender\n"
    "          takes it again; it was sent before, so it is read back from the\n"
    "          portal before any resend. (A sent insert is read back by the sender\n"
    "          itself; conflict and rejected ops have ended: write the change again.)\n"
    "drop ID   an open op (pending or sent): never send it; its local change is\n"
    "          reverted. A sent op may still have reached the portal: the next pull\n"
    "          shows the portal's rows.\n"
    "retry and drop go through the journal: they need its lock, which a running\n"
    "daemon holds (stop it first).\n"
    "Exit: 0 ok, 1 failure (cache.db unreadable, the journal locked), 2 usage or an\n"
    "op in a state the action does not apply to, 3 no cache.db yet or no such op.\n";

static void fmt_time(int64_t ms, char *out, size_t n)
{
    if (ms <= 0) { snprintf(out, n, "-"); return; }
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void put_json_str(struct buf *b, const char *s)
{
    if (s) json_write_string(b, s, strlen(s));
    else buf_puts(b, "null");
}

static void render_json(const struct replay_outbox_op *ops, size_t n, struct buf *out)
{
    char created[40], updated[40];
    buf_puts(out, "{\"ops\":[");
    for (size_t i = 0; i < n; i++) {
        const struct replay_outbox_op *o = &ops[i];
        fmt_time(o->created_ms, created, sizeof created);
        fmt_time(o->updated_ms, updated, sizeof updated);
        if (i) buf_putc(out, ',');
        buf_printf(out, "{\"id\":%llu,\"table\":", (unsigned long long)o->id);
        put_json_str(out, o->table);
        buf_puts(out, ",\"kind\":");
        put_json_str(out, o->kind);
        buf_puts(out, ",\"state\":");
        put_json_str(out, o->state);
        /* keys is replay's json_group_array: JSON already. */
        buf_printf(out, ",\"attempts\":%lld,\"keys\":%s,\"last_error\":", (long long)o->attempts,
                   o->keys && *o->keys ? o->keys : "[]");
        put_json_str(out, o->last_error);
        buf_printf(out, ",\"created\":\"%s\",\"updated\":\"%s\"}", created, updated);
    }
    buf_puts(out, "]}\n");
}

static void render_text(const struct replay_outbox_op *ops, size_t n, struct buf *out)
{
    if (n == 0) {
        buf_puts(out, "the outbox is empty: no write was queued\n");
        return;
    }
    /* Column widths from the widest value (at least the heading): ids and
     * table names vary; the rest are short words. */
    int wid = 2, wtab = 5;
    char num[32];
    for (size_t i = 0; i < n; i++) {
        int l = snprintf(num, sizeof num, "%llu", (unsigned long long)ops[i].id);
        if (l > wid) wid = l;
        l = (int)strlen(ops[i].table ? ops[i].table : "");
        if (l > wtab) wtab = l;
    }
    buf_printf(out, "%*s  %-*s  %-6s  %-8s  %8s  %-20s  %-24s  %s\n", wid, "id", wtab, "table", "kind", "state",
               "attempts", "created", "keys", "last error");
    for (size_t i = 0; i < n; i++) {
        const struct replay_outbox_op *o = &ops[i];
        char created[40];
        fmt_time(o->created_ms, created, sizeof created);
        buf_printf(out, "%*llu  %-*s  %-6s  %-8s  %8lld  %-20s  %-24.24s  %s\n", wid, (unsigned long long)o->id, wtab,
                   o->table ? o->table : "", o->kind ? o->kind : "", o->state ? o->state : "",
                   (long long)o->attempts, created, o->keys ? o->keys : "", o->last_error ? o->last_error : "");
    }
}

/* cache.db read-only, as status opens it: never created, and a cache.db of an
 * older schema (before the outbox) is named as such rather than "no such
 * table". 0, or the exit status (1, 3) with the message printed. */
static int open_ro(const struct config *cfg, const char *what, struct replay **r)
{
    char err[IA_ERRLEN], path[4200];
    snprintf(path, sizeof path, "%s/cache.db", cfg->storage.dir);
    int rc = replay_open_readonly(path, r, err, sizeof err);
    if (rc == 1) {
        fprintf(stderr, "iptv-agent %s: no cache yet, so no outbox: %s\n", what, err);
        return 3;
    }
    if (rc != 0) {
        fprintf(stderr, "iptv-agent %s: %s\n", what, err);
        return 1;
    }
    return 0;
}

static int list(const struct config *cfg, int as_json)
{
    struct replay *r;
    int rc = open_ro(cfg, "outbox", &r);
    if (rc != 0) return rc;
    struct replay_outbox_op *ops = NULL;
    size_t n = 0;
    char err[IA_ERRLEN];
    rc = replay_outbox_list(replay_db(r), 0, 0, &ops, &n, err, sizeof err);
    replay_close(r);
    if (rc != 0) {
        fprintf(stderr, "iptv-agent outbox: %s\n", err);
        return 1;
    }
    struct buf out = {0};
    if (as_json) render_json(ops, n, &out);
    else render_text(ops, n, &out);
    fwrite(out.p, 1, out.len, stdout);
    buf_free(&out);
    replay_outbox_free(ops, n);
    return 0;
}

/* What `action` makes of an op in `state`: the op_state to journal, or 0 with
 * why (for exit 2). Only moves replay accepts: it refuses any state after an
 * end (done, conflict, rejected, dropped), and a refused record would stop
 * replay for every later record, so nothing is journaled that it would refuse. */
static int next_state(int drop, const char *state, const char *kind, const char **why)
{
    int open = !strcmp(state, "pending") || !strcmp(state, "sent");
    if (drop) {
        *why = !strcmp(state, "done") ? "the portal has it; nothing to drop"
             : "it has ended and its local change was already reverted";
        return open ? JOURNAL_OPS_DROPPED : 0;
    }
    /* An insert cannot be read back exactly (a row equal to it may have been
     * there before), so a pending insert is sent as it is: pending again would
     * be a blind resend. The sender reads a sent insert back by itself. */
    if (!strcmp(state, "sent") && !strcmp(kind, "insert")) {
        *why = "the sender reads a sent insert back by itself; to send it again anyway, check the portal, "
               "`outbox drop` it and write it again";
        return 0;
    }
    if (!strcmp(state, "sent")) return JOURNAL_OPS_PENDING;
    *why = !strcmp(state, "pending")  ? "it is already waiting to be sent"
         : !strcmp(state, "done")     ? "the portal has it"
         : !strcmp(state, "dropped")  ? "it was dropped and its local change reverted"
                                      : "it has ended and its local change was reverted; replay accepts no state "
                                        "after an end: write the change again";
    return 0;
}

/* One op's state as the action finds it: 0 it applies (*to the new state);
 * else the exit status with the message printed. */
static int check_op(sqlite3 *db, const char *what, uint64_t id, int drop, struct replay_outbox_op *op, int *to)
{
    char err[IA_ERRLEN];
    int rc = replay_outbox_get(db, id, op, err, sizeof err);
    if (rc == 1) {
        fprintf(stderr, "iptv-agent %s: op %llu: no such op in the outbox (`iptv-agent outbox` lists them)\n", what,
                (unsigned long long)id);
        return 3;
    }
    if (rc != 0) {
        fprintf(stderr, "iptv-agent %s: %s\n", what, err);
        return 1;
    }
    const char *why = "";
    *to = next_state(drop, op->state, op->kind, &why);
    if (*to == 0) {
        fprintf(stderr, "iptv-agent %s: op %llu (table \"%s\", %s) is %s: %s\n", what, (unsigned long long)id,
                op->table, op->kind, op->state, why);
        replay_outbox_op_clear(op);
        return 2;
    }
    return 0;
}

static int change(const struct config *cfg, int drop, const char *idtext)
{
    const char *what = drop ? "outbox drop" : "outbox retry";
    char *end;
    errno = 0;
    unsigned long long id = strtoull(idtext, &end, 10);
    if (errno || end == idtext || *end || id == 0 || idtext[0] == '-' || idtext[0] == '+') {
        fprintf(stderr, "iptv-agent %s: \"%s\" is not an op id (a positive integer; `iptv-agent outbox` lists "
                        "them)\n", what, idtext);
        return 2;
    }
    /* First a read-only look: an unknown op or a wrong state is said as such
     * even while a daemon holds the journal. */
    struct replay *ro;
    int rc = open_ro(cfg, what, &ro);
    if (rc != 0) return rc;
    struct replay_outbox_op op;
    int to = 0;
    rc = check_op(replay_db(ro), what, id, drop, &op, &to);
    replay_close(ro);
    if (rc != 0) return rc;

    char err[IA_ERRLEN];
    struct store s;
    int src = store_open(cfg, 1, &s, err, sizeof err);
    if (src == STORE_ELOCKED) {
        /* store's hint is about pulls (POST /sync); ours is another: keep the
         * holder's part only. */
        char *hint = strstr(err, "; ");
        if (hint) *hint = '\0';
        fprintf(stderr, "iptv-agent %s: op %llu (table \"%s\"): not changed: %s. A running daemon (or a sync) "
                        "holds the journal: stop the daemon (e.g. `systemctl stop iptv-agent`) or let the sync end, "
                        "run this again, then start the daemon\n", what, id, op.table, err);
        replay_outbox_op_clear(&op);
        return 1;
    }
    if (src != 0) fprintf(stderr, "iptv-agent %s: op %llu (table \"%s\"): %s\n", what, id, op.table, err);
    replay_outbox_op_clear(&op);   /* read again under the lock */
    if (src != 0) return 1;
    /* Again under the lock: store_open applied whatever the journal held that
     * cache.db had not seen, and from here on nobody else appends. */
    rc = check_op(replay_db(s.rp), what, id, drop, &op, &to);
    if (rc != 0) {
        store_close(&s);
        return rc;
    }
    static const char dropped_msg[] = "dropped with `iptv-agent outbox drop`";
    struct journal_op_state_rec rec = {
        .op_id = id,
        .state = to,
        /* retry clears the last error (an empty message): the op waits again. */
        .message = drop ? dropped_msg : "",
        .nmessage = drop ? sizeof dropped_msg - 1 : 0,
    };
    struct journal_payload pl = {0};
    uint64_t seq = 0;
    rc = journal_payload_op_state(&pl, &rec, err, sizeof err);
    if (rc == 0) rc = journal_append(s.jw, JOURNAL_OP_STATE, op.table, pl.p, pl.len, &seq, err, sizeof err);
    journal_payload_free(&pl);
    if (rc != 0) {
        fprintf(stderr, "iptv-agent %s: op %llu (table \"%s\"): journaling the new state: %s\n", what, id, op.table,
                err);
        goto out;
    }
    rc = replay_apply(s.rp, journal_writer_durable_seq(s.jw), NULL, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "iptv-agent %s: op %llu (table \"%s\"): journaled at seq %llu but not applied to cache.db: "
                        "%s\n", what, id, op.table, (unsigned long long)seq, err);
        goto out;
    }
    if (drop)
        printf("op %llu (table \"%s\", %s): dropped; its local change is reverted%s\n", id, op.table, op.kind,
               !strcmp(op.state, "sent") ? ". It was sent: it may have reached the portal, and the next pull shows "
                                          "the portal's rows" : "");
    else
        printf("op %llu (table \"%s\", %s): pending again; it was sent before (%lld attempt%s), so it is read back "
               "from the portal before any resend\n", id, op.table, op.kind, (long long)op.attempts,
               op.attempts == 1 ? "" : "s");
out:
    replay_outbox_op_clear(&op);
    store_close(&s);
    return rc == 0 ? 0 : 1;
}

int cmd_outbox(const struct config *cfg, int argc, char **argv)
{
    if (cmd_wants_help(argc, argv)) { fputs(outbox_usage, stdout); return 0; }
    if (argc >= 2 && (!strcmp(argv[1], "retry") || !strcmp(argv[1], "drop"))) {
        if (argc != 3) {
            fprintf(stderr, "iptv-agent outbox %s: needs one op ID\n%s", argv[1], outbox_usage);
            return 2;
        }
        return change(cfg, !strcmp(argv[1], "drop"), argv[2]);
    }
    int as_json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) as_json = 1;
        else { fprintf(stderr, "iptv-agent outbox: unexpected argument %s\n%s", argv[i], outbox_usage); return 2; }
    }
    return list(cfg, as_json);
}
