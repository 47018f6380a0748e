/* cmd_export.c — `export --snapshot FILE`, `export --delta --base BASE OUT` and
 * `import FILE` (agent/ship/export.h; the format is docs/export-format.md).
 * Exit: 0 ok, 1 failure (the message names the file, ids or table), 2 usage. */
#include "agent/cli/cmd.h"
#include "agent/ship/export.h"
#include "agent/base/err.h"
#include "agent/base/log.h"
#include "agent/pull/store.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const char export_usage[] =
    "usage: iptv-agent export --snapshot FILE\n"
    "       iptv-agent export --delta --base BASE OUT\n"
    "\n"
    "--snapshot writes a consistent, compressed copy of cache.db with a manifest\n"
    "(ids, journal position, per-table rows, schema hashes and marks, checksums).\n"
    "--delta writes the rows inserted, updated and deleted since the snapshot file\n"
    "BASE (a SQLite changeset); refused when a table was added, dropped or changed\n"
    "layout since BASE. Files appear under their name only when complete.\n"
    "Runs beside a running agent (reads only). Exit: 0 ok, 1 error, 2 usage.\n";

/* Pulled tables only: the _agent_ metadata tables travel too but are not data. */
static uint64_t total_rows(const struct export_manifest *m, size_t *ntables)
{
    uint64_t n = 0;
    *ntables = 0;
    for (size_t i = 0; i < m->ntables; i++)
        if (strncmp(m->tables[i].name, "_agent_", 7) != 0) {
            n += m->tables[i].rows;
            (*ntables)++;
        }
    return n;
}

int cmd_export(const struct config *cfg, int argc, char **argv)
{
    if (cmd_wants_help(argc, argv)) { fputs(export_usage, stdout); return 0; }
    const char *snap = NULL, *base = NULL, *out = NULL;
    int delta = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--snapshot") && i + 1 < argc) snap = argv[++i];
        else if (!strcmp(argv[i], "--delta")) delta = 1;
        else if (!strcmp(argv[i], "--base") && i + 1 < argc) base = argv[++i];
        else if (argv[i][0] != '-' && !out) out = argv[i];
        else {
            fprintf(stderr, "iptv-agent export: unexpected argument %s\n%s", argv[i], export_usage);
            return 2;
        }
    }
    if (!!snap + delta != 1 || (snap && (base || out)) || (delta && (!base || !out))) {
        fprintf(stderr, "iptv-agent export: give either --snapshot FILE or --delta --base BASE OUT\n%s",
                export_usage);
        return 2;
    }
    char err[IA_ERRLEN];
    struct store s;
    if (store_open(cfg, 0, &s, err, sizeof err) != 0) {
        fprintf(stderr, "iptv-agent: %s\n", err);
        return 1;
    }
    struct export_manifest m;
    int rc = snap ? export_snapshot(s.db_path, snap, cfg->storage.compression_level, &m, err, sizeof err)
                  : export_delta(s.db_path, base, out, cfg->storage.compression_level, &m, err, sizeof err);
    store_close(&s);
    if (rc != 0) {
        fprintf(stderr, "iptv-agent export: %s\n", err);
        return 1;
    }
    size_t nt;
    uint64_t rows = total_rows(&m, &nt);
    if (snap)
        printf("snapshot %s written to %s: %zu tables, %" PRIu64 " rows, %" PRIu64 " bytes, journal seq %" PRIu64 "\n",
               m.id, snap, nt, rows, m.packed_bytes, m.journal_seq);
    else
        printf("delta %s (base %s) written to %s: %" PRIu64 " changes, %" PRIu64 " bytes, journal seq %" PRIu64 "\n",
               m.id, m.base_id, out, m.changes, m.packed_bytes, m.journal_seq);
    export_manifest_free(&m);
    return 0;
}

static const char import_usage[] =
    "usage: iptv-agent import FILE\n"
    "\n"
    "Verify FILE (format version, checksums) and load it into cache.db. A snapshot\n"
    "replaces the cache's content in one transaction; a delta applies in one\n"
    "transaction only when the cache is at the delta's base snapshot, and any\n"
    "conflict undoes it. Marks come with the data, so the next pull is incremental.\n"
    "A delta the cache is already at says \"already applied\" and changes nothing\n"
    "(exit 0). With no cache.db yet only a snapshot is taken; anything refused\n"
    "creates nothing. Takes the journal lock: stop a running agent first.\n"
    "Exit: 0 ok, 1 refused.\n";

int cmd_import(const struct config *cfg, int argc, char **argv)
{
    if (cmd_wants_help(argc, argv)) { fputs(import_usage, stdout); return 0; }
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "iptv-agent import: expected one FILE\n%s", import_usage);
        return 2;
    }
    char err[IA_ERRLEN];
    /* No cache here yet: only a snapshot can start one. Check the file before
     * anything is created, so a refused import leaves the directory as it was. */
    char db_path[4200];
    struct stat sb;
    snprintf(db_path, sizeof db_path, "%s/cache.db", cfg->storage.dir);
    if (stat(db_path, &sb) != 0 && errno == ENOENT) {
        struct export_manifest m;
        if (export_verify(argv[1], &m, err, sizeof err) != 0) {
            fprintf(stderr, "iptv-agent import: %s; nothing changed\n", err);
            export_manifest_free(&m);
            return 1;
        }
        int delta = strcmp(m.kind, "snapshot") != 0;
        if (delta)
            fprintf(stderr, "iptv-agent import: %s: delta %s applies to snapshot %s, but there is no cache here "
                            "(%s does not exist): import a snapshot first; nothing changed\n",
                    argv[1], m.id, m.base_id, db_path);
        export_manifest_free(&m);
        if (delta) return 1;
    }
    struct store s;
    if (store_open(cfg, 1, &s, err, sizeof err) != 0) {
        fprintf(stderr, "iptv-agent: %s\n", err);
        return 1;
    }
    struct export_import_result res;
    int rc = export_import(s.db_path, argv[1], &res, err, sizeof err);
    store_close(&s);
    if (rc != 0) {
        fprintf(stderr, "iptv-agent import: %s\n", err);
        export_manifest_free(&res.m);
        return 1;
    }
    size_t nt;
    uint64_t rows = total_rows(&res.m, &nt);
    if (res.already)
        printf("delta %s is already applied (this cache is at %s); nothing changed\n", res.m.id, res.m.id);
    else if (!strcmp(res.m.kind, "snapshot"))
        printf("imported snapshot %s from agent %s: %zu tables, %" PRIu64 " rows\n", res.m.id,
               res.m.source_agent, nt, rows);
    else
        printf("applied delta %s (base %s) from agent %s: %" PRIu64 " changes, 0 conflicts\n", res.m.id,
               res.m.base_id, res.m.source_agent, res.m.changes);
    export_manifest_free(&res.m);
    return 0;
}
