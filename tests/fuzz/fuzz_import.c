/* fuzz_import.c — libFuzzer target for the import file reader (agent/ship/export.h):
 * export_verify on any bytes, and export_import of what verifies into a fresh
 * small cache.db.
 *
 * Input: byte 0 holds flags, the rest one or two export files:
 *   bit 0  two files: bytes 1-4 are the first file's length (little-endian,
 *          clamped to what is there), then the first file, then the second; both
 *          are imported in turn (a snapshot, then a delta on it);
 *   bit 1  fix each file's trailing CRC-32, so that mutations reach the
 *          manifest and the payload instead of stopping at the checksum;
 *   bit 2  the last file is given as header + manifest + raw payload (no gzip,
 *          no trailer): the target gzips the payload, sets the manifest's
 *          payload sizes and CRC (when the manifest is a JSON object), and
 *          appends the trailer — so mutations reach the database file or the
 *          changeset inside.
 * Every file is written under one private temp dir (made once) and checked with
 * export_verify, then imported into a fresh copy of a cache.db made at start-up
 * by replay_open (its journal position set to 7/3 so that it can be told apart).
 * Oracles: a verified manifest is well-formed (kind; id, and a delta's
 * base_id, 32 hex digits; sizes that fit the file); an import refused changes
 * nothing in cache.db (every table's rows and the schema hashed before and
 * after); an accepted import leaves a cache.db that passes quick_check, has
 * this build's schema version, holds only tables and indexes, opens with
 * replay_open, keeps its own journal position and agent_id (export.h: they
 * never travel) and is at the file's id. ASan/LSan watch all of it.
 * Seeds: tests/fuzz/corpus/import/ (real snapshots and deltas made by the
 * agent against the fake portal; crash-* are findings kept as regressions).
 * Run: tests/fuzz/run.sh. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "agent/base/buf.h"
#include "agent/ship/export.h"
#include "replay/replay.h"

#define HDR 16   /* magic, version, manifest length (docs/export-format.md) */

/* libFuzzer's entry points take no context: the scratch directory and the
 * template cache made once at start-up are the process state here. */
static char dir[256], db_path[320], file_path[2][320];
static unsigned char *template_db;
static size_t template_len;

static void remove_db(void)
{
    char p[400];
    const char *sfx[] = {"", "-wal", "-shm", "-journal"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s%s", db_path, sfx[i]);
        unlink(p);
    }
}

static void cleanup(void)
{
    remove_db();
    unlink(file_path[0]);
    unlink(file_path[1]);
    rmdir(dir);
    free(template_db);
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0) {
        fprintf(stderr, "fuzz_import: cannot write %s\n", path);
        abort();
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/fuzz_import.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(dir)) abort();
    snprintf(db_path, sizeof db_path, "%s/cache.db", dir);
    snprintf(file_path[0], sizeof file_path[0], "%s/first.iax", dir);
    snprintf(file_path[1], sizeof file_path[1], "%s/second.iax", dir);
    atexit(cleanup);
    char err[1024];
    struct replay_opts o = {.db_path = db_path};
    struct replay *r;
    if (replay_open(&o, &r, err, sizeof err) != 0 ||
        sqlite3_exec(replay_db(r), "UPDATE _agent_state SET applied_seq = 7, base_seq = 3", NULL, NULL, NULL) !=
            SQLITE_OK) {
        fprintf(stderr, "fuzz_import: template cache.db: %s\n", err);
        abort();
    }
    replay_close(r);   /* checkpoints: the one file is the whole database */
    FILE *f = fopen(db_path, "rb");
    if (!f) abort();
    struct buf b = {0};
    char chunk[8192];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0) buf_append(&b, chunk, k);
    fclose(f);
    template_len = b.len;
    template_db = (unsigned char *)buf_detach(&b);
    remove_db();
    return 0;
}

/* ---- building files from the input -------------------------------------------- */

static uint32_t get_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void fix_crc(struct buf *f)
{
    if (f->len < HDR + 4) return;
    put_le32((unsigned char *)f->p + f->len - 4, (uint32_t)crc32(0, (const unsigned char *)f->p, (uInt)(f->len - 4)));
}

static void set_string(cJSON *o, const char *k, const char *v)
{
    cJSON_DeleteItemFromObjectCaseSensitive(o, k);
    cJSON_AddStringToObject(o, k, v);
}

/* Raw form (header, manifest, uncompressed payload) into a whole container. */
static void build_raw(const unsigned char *p, size_t n, struct buf *out)
{
    unsigned char hdr[HDR] = {'I', 'A', 'E', 'X', 'P', 'O', 'R', 'T', 1, 0, 0, 0, 0, 0, 0, 0};
    if (n >= 12) memcpy(hdr, p, 12);   /* the input's magic and version, mutations included */
    size_t off = n < HDR ? n : HDR;
    size_t mlen = n >= HDR ? get_le32(p + 12) : 0;
    if (mlen > n - off) mlen = n - off;
    const unsigned char *payload = p + off + mlen;
    size_t plen = n - off - mlen;

    uLongf glen = compressBound((uLong)plen) + 64;
    unsigned char *gz = malloc(glen);
    z_stream z;
    memset(&z, 0, sizeof z);
    if (!gz || deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) abort();
    z.next_in = (unsigned char *)payload;
    z.avail_in = (uInt)plen;
    z.next_out = gz;
    z.avail_out = (uInt)glen;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END) abort();
    glen = z.total_out;
    deflateEnd(&z);

    char *manifest = NULL;
    cJSON *m = cJSON_ParseWithLength((const char *)p + off, mlen);
    if (cJSON_IsObject(m)) {
        cJSON *pl = cJSON_GetObjectItemCaseSensitive(m, "payload");
        if (!cJSON_IsObject(pl)) {
            cJSON_DeleteItemFromObjectCaseSensitive(m, "payload");
            pl = cJSON_AddObjectToObject(m, "payload");
        }
        char v[32];
        snprintf(v, sizeof v, "%zu", plen);
        set_string(pl, "raw_bytes", v);
        snprintf(v, sizeof v, "%lu", (unsigned long)glen);
        set_string(pl, "packed_bytes", v);
        snprintf(v, sizeof v, "%08lx", crc32(0, payload, (uInt)plen));
        set_string(pl, "raw_crc32", v);
        manifest = cJSON_PrintUnformatted(m);
    }
    cJSON_Delete(m);
    const char *mt = manifest ? manifest : (const char *)p + off;
    size_t mtlen = manifest ? strlen(manifest) : mlen;
    put_le32(hdr + 12, (uint32_t)mtlen);
    buf_append(out, hdr, HDR);
    buf_append(out, mt, mtlen);
    buf_append(out, gz, glen);
    unsigned char tr[4];
    put_le32(tr, (uint32_t)crc32(0, (const unsigned char *)out->p, (uInt)out->len));
    buf_append(out, tr, 4);
    free(manifest);
    free(gz);
}

/* ---- cache.db checks ---------------------------------------------------------- */

/* A hash of the schema and of every row of every table (rows in key order). */
static uint32_t db_sum(void)
{
    sqlite3 *db;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) abort();
    sqlite3_stmt *tl, *st;
    uint32_t c = (uint32_t)crc32(0, NULL, 0);
    if (sqlite3_prepare_v2(db, "SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name", -1, &tl,
                           NULL) != SQLITE_OK) {
        fprintf(stderr, "cache.db: reading its schema: %s\n", sqlite3_errmsg(db));
        abort();
    }
    while (sqlite3_step(tl) == SQLITE_ROW) {
        const unsigned char *sql = sqlite3_column_text(tl, 1);
        if (sql) c = (uint32_t)crc32(c, sql, (uInt)sqlite3_column_bytes(tl, 1));
        char *q = sqlite3_mprintf("SELECT * FROM \"%w\" ORDER BY 1", (const char *)sqlite3_column_text(tl, 0));
        if (sqlite3_prepare_v2(db, q, -1, &st, NULL) != SQLITE_OK) {
            fprintf(stderr, "cache.db: %s: %s\n", q, sqlite3_errmsg(db));
            abort();
        }
        sqlite3_free(q);
        while (sqlite3_step(st) == SQLITE_ROW)
            for (int i = 0; i < sqlite3_column_count(st); i++) {
                unsigned char t = (unsigned char)sqlite3_column_type(st, i);
                c = (uint32_t)crc32(c, &t, 1);
                const void *v = sqlite3_column_blob(st, i);
                if (v) c = (uint32_t)crc32(c, v, (uInt)sqlite3_column_bytes(st, i));
            }
        sqlite3_finalize(st);
    }
    sqlite3_finalize(tl);
    sqlite3_close(db);
    return c;
}

/* The local identity and position, and the content id, as one line of text. */
static void db_identity(char *out, size_t n, char *at, size_t atn)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "SELECT s.applied_seq, s.base_seq, s.created_ms, e.agent_id, e.at_id"
                           " FROM _agent_state s, _agent_export e WHERE s.id = 1 AND e.id = 1",
                           -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        fprintf(stderr, "cache.db lost its state: %s\n", sqlite3_errmsg(db));
        abort();
    }
    snprintf(out, n, "%lld/%lld/%lld/%s", (long long)sqlite3_column_int64(st, 0),
             (long long)sqlite3_column_int64(st, 1), (long long)sqlite3_column_int64(st, 2),
             (const char *)sqlite3_column_text(st, 3));
    snprintf(at, atn, "%s", sqlite3_column_text(st, 4) ? (const char *)sqlite3_column_text(st, 4) : "");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* The first column of the first row of sql on cache.db, as an int (-1: none). */
static int db_int(const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    int v = -1;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        abort();
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* What an accepted import must leave: a sound cache.db of this build's schema,
 * holding only tables and indexes (cache.db never has a trigger or a view, whose
 * SQL would run inside the agent's own writes), every table readable, that the
 * agent can open. */
static void check_cache(const char *file)
{
    char err[1024];
    if (db_int("SELECT \"quick_check\" = 'ok' FROM pragma_quick_check") != 1) {
        fprintf(stderr, "cache.db fails quick_check after importing %s\n", file);
        abort();
    }
    if (db_int("PRAGMA user_version") != REPLAY_SCHEMA_VERSION) {
        fprintf(stderr, "cache.db has schema version %d after importing %s\n", db_int("PRAGMA user_version"), file);
        abort();
    }
    if (db_int("SELECT count(*) FROM sqlite_master WHERE type NOT IN ('table', 'index')") != 0) {
        fprintf(stderr, "cache.db holds a trigger or a view after importing %s\n", file);
        abort();
    }
    db_sum();
    struct replay_opts o = {.db_path = db_path};
    struct replay *r;
    if (replay_open(&o, &r, err, sizeof err) != 0) {
        fprintf(stderr, "the agent cannot open cache.db after importing %s: %s\n", file, err);
        abort();
    }
    replay_close(r);
}

/* EXPORT_ID_LEN lowercase hex digits, as export.h and docs/export-format.md say ids are. */
static int hex_id(const char *s)
{
    size_t n = strspn(s, "0123456789abcdef");
    return n == EXPORT_ID_LEN && !s[n];
}

static void check_manifest(const struct export_manifest *m, size_t file_size)
{
    int snap = !strcmp(m->kind, "snapshot");
    if (m->format != EXPORT_FORMAT_VERSION || (!snap && strcmp(m->kind, "delta") != 0) || !hex_id(m->id) ||
        (!snap && !hex_id(m->base_id)) || m->packed_bytes > file_size || (m->ntables && !m->tables)) {
        fprintf(stderr, "verified manifest is malformed (kind \"%s\", id \"%s\", base_id \"%s\")\n", m->kind, m->id,
                m->base_id);
        abort();
    }
    for (size_t i = 0; i < m->ntables; i++)
        if (!m->tables[i].name) abort();
}

/* ---- the target ------------------------------------------------------------------ */

static void import_one(const char *path, size_t file_size)
{
    char err[2048], before[256], after[256], at[64], at_after[64];
    struct export_manifest m;
    err[0] = '\0';
    if (export_verify(path, &m, err, sizeof err) == 0) {
        check_manifest(&m, file_size);
        export_manifest_free(&m);
    } else if (!err[0]) {
        abort();   /* a refusal says why */
    }

    db_identity(before, sizeof before, at, sizeof at);
    uint32_t sum = db_sum();
    struct export_import_result res;
    if (export_import(db_path, path, &res, err, sizeof err) == 0) {
        check_cache(path);
        db_identity(after, sizeof after, at_after, sizeof at_after);
        if (strcmp(before, after) != 0 || strcmp(at_after, res.m.id) != 0) {
            fprintf(stderr, "import changed the local state %s -> %s or is not at its id (%s, file %s)\n", before,
                    after, at_after, res.m.id);
            abort();
        }
    } else {
        if (!err[0]) abort();
        if (db_sum() != sum) {
            fprintf(stderr, "a refused import changed cache.db: %s\n", err);
            abort();
        }
    }
    export_manifest_free(&res.m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int flags = data[0];
    const unsigned char *p = data + 1;
    size_t n = size - 1;
    const unsigned char *part[2];
    size_t plen[2];
    int nfiles = 1;
    if (flags & 1) {
        if (n < 4) return 0;
        size_t l1 = get_le32(p);
        p += 4;
        n -= 4;
        if (l1 > n) l1 = n;
        part[0] = p;
        plen[0] = l1;
        part[1] = p + l1;
        plen[1] = n - l1;
        nfiles = 2;
    } else {
        part[0] = p;
        plen[0] = n;
    }

    remove_db();
    write_file(db_path, template_db, template_len);
    for (int i = 0; i < nfiles; i++) {
        struct buf f = {0};
        if ((flags & 4) && i == nfiles - 1) {
            build_raw(part[i], plen[i], &f);
        } else {
            buf_append(&f, part[i], plen[i]);
            if (flags & 2) fix_crc(&f);
        }
        write_file(file_path[i], f.p, f.len);
        import_one(file_path[i], f.len);
        buf_free(&f);
    }
    return 0;
}
