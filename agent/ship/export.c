/* export.c — see export.h; the file format is docs/export-format.md.
 *
 * Container (little-endian):
 *   0   8  magic "IAEXPORT"
 *   8   4  format version (EXPORT_FORMAT_VERSION)
 *   12  4  manifest length M
 *   16  M  manifest, JSON (UTF-8)
 *   16+M P gzip stream of the payload (a SQLite database or a changeset)
 *   end 4  CRC-32 of every byte before it
 * Reading checks magic, version, then the trailing CRC, then the manifest, then
 * inflates the payload checking its length and CRC-32 against the manifest (and
 * gzip's own CRC). Temp files sit beside their final name (same filesystem, so
 * rename is atomic) as NAME.tmp-PID-WHAT and are removed on every path. */
#include "agent/ship/export.h"
#include "agent/base/clock.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "agent/base/buf.h"
#include "agent/base/err.h"
#include "journal/fsio.h"
#include "agent/base/mem.h"
#include "replay/copy.h"
#include "replay/replay.h"

static const char magic[8] = {'I', 'A', 'E', 'X', 'P', 'O', 'R', 'T'};
#define HDR_LEN 16
#define MANIFEST_MAX (64u << 20)
#define CHUNK 65536

/* ---- small helpers --------------------------------------------------------------- */

static void put_le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static char *tmp_name(const char *final, const char *what)
{
    struct buf b = {0};
    buf_printf(&b, "%s.tmp-%ld-%s", final, (long)getpid(), what);
    return buf_detach(&b);
}

static void fnv_hex(const char *s, char out[17])
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) h = (h ^ *p) * 1099511628211ULL;
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

static int exec(sqlite3 *db, const char *sql, const char *what, char *err, size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", what, msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

/* One text or integer value of a single-row query; *out malloc'd ("" for NULL). */
static int query_text(sqlite3 *db, const char *sql, const char *bind, char **out, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    *out = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", sql, sqlite3_errmsg(db));
        return -1;
    }
    if (bind) sqlite3_bind_text(st, 1, bind, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *s = sqlite3_column_text(st, 0);
        *out = xstrdup(s ? (const char *)s : "");
    } else {
        snprintf(err, errlen, "%s: %s", sql, rc == SQLITE_DONE ? "no row" : sqlite3_errmsg(db));
    }
    sqlite3_finalize(st);
    return *out ? 0 : -1;
}

static void new_id(sqlite3 *db, char out[EXPORT_ID_LEN + 1])
{
    /* randomblob is SQLite's CSPRNG (seeded from the OS): 128 bits. */
    char err[IA_ERRLEN], *s = NULL;
    if (query_text(db, "SELECT lower(hex(randomblob(16)))", NULL, &s, err, sizeof err) == 0)
        snprintf(out, EXPORT_ID_LEN + 1, "%s", s);
    else
        snprintf(out, EXPORT_ID_LEN + 1, "%016llx%016llx", (unsigned long long)clock_wall_ms(),
                 (unsigned long long)getpid());
    free(s);
}

void export_manifest_free(struct export_manifest *m)
{
    for (size_t i = 0; i < m->ntables; i++) {
        free(m->tables[i].name);
        free(m->tables[i].mark_cursor);
        free(m->tables[i].mark_key);
    }
    free(m->tables);
    memset(m, 0, sizeof *m);
}

/* ---- the copy and its manifest ---------------------------------------------------- */

/* Fill m's identity, position and tables from the copy (schema "main"). */
static int describe(sqlite3 *c, struct export_manifest *m, char *err, size_t errlen)
{
    struct replay_copy_state cs;
    if (replay_copy_state(c, &cs, err, errlen) != 0) return -1;
    snprintf(m->source_agent, sizeof m->source_agent, "%s", cs.agent_id);
    m->journal_seq = cs.applied_seq;
    m->cache_schema = REPLAY_SCHEMA_VERSION;
    char **names, **ddls;
    size_t n;
    if (replay_copy_list(c, "main", &names, &ddls, &n, err, errlen) != 0) return -1;
    m->tables = n ? xcalloc(n, sizeof *m->tables) : NULL;
    int ok = 1;
    for (size_t i = 0; ok && i < n; i++) {
        struct export_table *t = &m->tables[m->ntables++];
        t->name = xstrdup(names[i]);
        fnv_hex(ddls[i], t->ddl_hash);
        struct buf q = {0};
        buf_puts(&q, "SELECT count(*) FROM \"");
        for (const char *p = t->name; *p; p++) {
            if (*p == '"') buf_putc(&q, '"');
            buf_putc(&q, *p);
        }
        buf_putc(&q, '"');
        char *cnt = NULL;
        ok = query_text(c, q.p, NULL, &cnt, err, errlen) == 0;
        buf_free(&q);
        if (ok) t->rows = strtoull(cnt, NULL, 10);
        free(cnt);
        struct replay_copy_marks mk;
        ok = ok && replay_copy_marks(c, t->name, &mk, err, errlen) == 0;
        if (ok) {
            snprintf(t->schema_hash, sizeof t->schema_hash, "%s", mk.schema_hash);
            t->mark_cursor = mk.mark_cursor;
            t->mark_key = mk.mark_key;
        }
    }
    replay_copy_list_free(names, ddls, n);
    return ok ? 0 : -1;
}

/* ---- manifest JSON ------------------------------------------------------------------ */

static void add_u64(cJSON *o, const char *k, uint64_t v)
{
    /* As a string: cJSON numbers are doubles, a seq or count must stay exact. */
    char s[32];
    snprintf(s, sizeof s, "%" PRIu64, v);
    cJSON_AddStringToObject(o, k, s);
}

static char *manifest_json(const struct export_manifest *m)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "format", m->format);
    cJSON_AddStringToObject(o, "kind", m->kind);
    cJSON_AddStringToObject(o, "id", m->id);
    cJSON_AddStringToObject(o, "base_id", m->base_id);
    cJSON_AddStringToObject(o, "source_agent", m->source_agent);
    add_u64(o, "created_ms", (uint64_t)m->created_ms);
    cJSON_AddNumberToObject(o, "cache_schema", m->cache_schema);
    add_u64(o, "journal_seq", m->journal_seq);
    add_u64(o, "changes", m->changes);
    cJSON *ts = cJSON_AddArrayToObject(o, "tables");
    for (size_t i = 0; i < m->ntables; i++) {
        const struct export_table *t = &m->tables[i];
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "name", t->name);
        add_u64(j, "rows", t->rows);
        cJSON_AddStringToObject(j, "ddl_hash", t->ddl_hash);
        cJSON_AddStringToObject(j, "schema_hash", t->schema_hash);
        if (t->mark_cursor) cJSON_AddStringToObject(j, "mark_cursor", t->mark_cursor);
        if (t->mark_key) cJSON_AddStringToObject(j, "mark_key", t->mark_key);
        cJSON_AddItemToArray(ts, j);
    }
    cJSON *p = cJSON_AddObjectToObject(o, "payload");
    cJSON_AddStringToObject(p, "encoding", "gzip");
    add_u64(p, "raw_bytes", m->raw_bytes);
    add_u64(p, "packed_bytes", m->packed_bytes);
    char crc[9];
    snprintf(crc, sizeof crc, "%08" PRIx32, m->raw_crc);
    cJSON_AddStringToObject(p, "raw_crc32", crc);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s) {
        fputs("out of memory\n", stderr);
        abort();
    }
    return s;
}

/* Field readers: 0 or -1 with err naming the JSON path. */
static int get_str(const cJSON *o, const char *path, const char *k, char *out, size_t outlen, char *err,
                   size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= outlen) {
        snprintf(err, errlen, "manifest %s.%s: missing, not a string or too long", path, k);
        return -1;
    }
    snprintf(out, outlen, "%s", v->valuestring);
    return 0;
}

static int get_u64(const cJSON *o, const char *path, const char *k, uint64_t *out, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    char *end = NULL;
    if (cJSON_IsString(v) && v->valuestring[0] >= '0' && v->valuestring[0] <= '9') {
        errno = 0;
        *out = strtoull(v->valuestring, &end, 10);
        if (!*end && errno == 0) return 0;
    }
    snprintf(err, errlen, "manifest %s.%s: missing or not a decimal string", path, k);
    return -1;
}

static int get_int(const cJSON *o, const char *k, int *out, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v)) {
        snprintf(err, errlen, "manifest $.%s: missing or not a number", k);
        return -1;
    }
    *out = v->valueint;
    return 0;
}

/* EXPORT_ID_LEN lowercase hex digits: ids reach cache.db and messages. */
static int hex_id(const char *s)
{
    size_t n = strspn(s, "0123456789abcdef");
    return n == EXPORT_ID_LEN && !s[n];
}

static int parse_manifest(const char *text, struct export_manifest *m, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    cJSON *o = cJSON_Parse(text);
    if (!cJSON_IsObject(o)) {
        snprintf(err, errlen, "manifest: not a JSON object");
        cJSON_Delete(o);
        return -1;
    }
    uint64_t created = 0, crc = 0;
    char crctext[16];
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "payload");
    int ok = get_int(o, "format", &m->format, err, errlen) == 0 &&
             get_str(o, "$", "kind", m->kind, sizeof m->kind, err, errlen) == 0 &&
             get_str(o, "$", "id", m->id, sizeof m->id, err, errlen) == 0 &&
             get_str(o, "$", "base_id", m->base_id, sizeof m->base_id, err, errlen) == 0 &&
             get_str(o, "$", "source_agent", m->source_agent, sizeof m->source_agent, err, errlen) == 0 &&
             get_u64(o, "$", "created_ms", &created, err, errlen) == 0 &&
             get_int(o, "cache_schema", &m->cache_schema, err, errlen) == 0 &&
             get_u64(o, "$", "journal_seq", &m->journal_seq, err, errlen) == 0 &&
             get_u64(o, "$", "changes", &m->changes, err, errlen) == 0;
    if (ok && !cJSON_IsObject(p)) {
        snprintf(err, errlen, "manifest $.payload: missing or not an object");
        ok = 0;
    }
    ok = ok && get_u64(p, "$.payload", "raw_bytes", &m->raw_bytes, err, errlen) == 0 &&
         get_u64(p, "$.payload", "packed_bytes", &m->packed_bytes, err, errlen) == 0 &&
         get_str(p, "$.payload", "raw_crc32", crctext, sizeof crctext, err, errlen) == 0;
    if (ok) {
        char *end;
        crc = strtoull(crctext, &end, 16);
        if (*end || strlen(crctext) != 8) {
            snprintf(err, errlen, "manifest $.payload.raw_crc32: \"%s\" is not 8 hex digits", crctext);
            ok = 0;
        }
        m->raw_crc = (uint32_t)crc;
    }
    m->created_ms = (int64_t)created;
    if (ok && strcmp(m->kind, "snapshot") != 0 && strcmp(m->kind, "delta") != 0) {
        snprintf(err, errlen, "manifest $.kind: \"%s\" is neither \"snapshot\" nor \"delta\"", m->kind);
        ok = 0;
    }
    if (ok && (!hex_id(m->id) || (!strcmp(m->kind, "delta") && !hex_id(m->base_id)))) {
        snprintf(err, errlen, "manifest $.id/$.base_id: expected %d hex digits", EXPORT_ID_LEN);
        ok = 0;
    }
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(o, "tables");
    if (ok && !cJSON_IsArray(ts)) {
        snprintf(err, errlen, "manifest $.tables: missing or not an array");
        ok = 0;
    }
    int n = ok ? cJSON_GetArraySize(ts) : 0;
    if (n > 0) m->tables = xcalloc((size_t)n, sizeof *m->tables);
    for (int i = 0; ok && i < n; i++) {
        const cJSON *j = cJSON_GetArrayItem(ts, i);
        char path[48], name[JOURNAL_TABLE_MAX + 32];
        snprintf(path, sizeof path, "$.tables[%d]", i);
        struct export_table *t = &m->tables[i];
        ok = cJSON_IsObject(j) && get_str(j, path, "name", name, sizeof name, err, errlen) == 0 &&
             get_u64(j, path, "rows", &t->rows, err, errlen) == 0 &&
             get_str(j, path, "ddl_hash", t->ddl_hash, sizeof t->ddl_hash, err, errlen) == 0 &&
             get_str(j, path, "schema_hash", t->schema_hash, sizeof t->schema_hash, err, errlen) == 0;
        if (!cJSON_IsObject(j)) snprintf(err, errlen, "manifest %s: not an object", path);
        if (!ok) break;
        t->name = xstrdup(name);
        m->ntables++;
        const cJSON *mc = cJSON_GetObjectItemCaseSensitive(j, "mark_cursor");
        const cJSON *mk = cJSON_GetObjectItemCaseSensitive(j, "mark_key");
        if (cJSON_IsString(mc)) t->mark_cursor = xstrdup(mc->valuestring);
        if (cJSON_IsString(mk)) t->mark_key = xstrdup(mk->valuestring);
    }
    cJSON_Delete(o);
    if (!ok) export_manifest_free(m);
    return ok ? 0 : -1;
}

/* ---- the container -------------------------------------------------------------------- */

static int write_all(int fd, const void *p, size_t n, uint32_t *crc, const char *path, char *err, size_t errlen)
{
    const unsigned char *b = p;
    if (crc) *crc = (uint32_t)crc32(*crc, b, (uInt)n);
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            snprintf(err, errlen, "%s: write: %s", path, strerror(errno));
            return -1;
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* gzip `in` into `out`, filling m's payload fields. */
static int compress_file(const char *in, const char *out, int level, struct export_manifest *m, char *err,
                         size_t errlen)
{
    FILE *fi = fopen(in, "rb");
    if (!fi) {
        snprintf(err, errlen, "%s: %s", in, strerror(errno));
        return -1;
    }
    int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0640);
    if (fo < 0) {
        snprintf(err, errlen, "%s: %s", out, strerror(errno));
        fclose(fi);
        return -1;
    }
    z_stream z;
    memset(&z, 0, sizeof z);
    /* windowBits 15 + 16: a gzip wrapper, whose own CRC-32 guards the stream too. */
    if (deflateInit2(&z, level < 1 || level > 9 ? 6 : level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        snprintf(err, errlen, "%s: deflateInit failed", out);
        fclose(fi);
        close(fo);
        return -1;
    }
    unsigned char *ib = xmalloc(CHUNK), *ob = xmalloc(CHUNK);
    uint32_t crc = (uint32_t)crc32(0, NULL, 0);
    uint64_t raw = 0, packed = 0;
    int ok = 1, flush;
    do {
        size_t n = fread(ib, 1, CHUNK, fi);
        if (ferror(fi)) {
            snprintf(err, errlen, "%s: read: %s", in, strerror(errno));
            ok = 0;
            break;
        }
        crc = (uint32_t)crc32(crc, ib, (uInt)n);
        raw += n;
        flush = feof(fi) ? Z_FINISH : Z_NO_FLUSH;
        z.next_in = ib;
        z.avail_in = (uInt)n;
        do {
            z.next_out = ob;
            z.avail_out = CHUNK;
            deflate(&z, flush);
            size_t have = CHUNK - z.avail_out;
            packed += have;
            if (write_all(fo, ob, have, NULL, out, err, errlen) != 0) ok = 0;
        } while (ok && z.avail_out == 0);
    } while (ok && flush != Z_FINISH);
    deflateEnd(&z);
    free(ib);
    free(ob);
    fclose(fi);
    if (close(fo) != 0 && ok) {
        snprintf(err, errlen, "%s: close: %s", out, strerror(errno));
        ok = 0;
    }
    m->raw_bytes = raw;
    m->packed_bytes = packed;
    m->raw_crc = crc;
    return ok ? 0 : -1;
}

/* Write the container for payload file `payload` to out_path via a temp name. */
static int write_container(const char *out_path, const char *payload, int level, struct export_manifest *m,
                           char *err, size_t errlen)
{
    char *gz = tmp_name(out_path, "gz"), *tmp = tmp_name(out_path, "file");
    int ok = compress_file(payload, gz, level, m, err, errlen) == 0;
    int fd = -1;
    FILE *fg = NULL;
    char *js = NULL;
    if (ok) {
        js = manifest_json(m);
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0640);
        fg = fopen(gz, "rb");
        if (fd < 0 || !fg) {
            snprintf(err, errlen, "%s: %s", fd < 0 ? tmp : gz, strerror(errno));
            ok = 0;
        }
    }
    uint32_t crc = (uint32_t)crc32(0, NULL, 0);
    if (ok) {
        unsigned char hdr[HDR_LEN];
        memcpy(hdr, magic, 8);
        put_le32(hdr + 8, EXPORT_FORMAT_VERSION);
        put_le32(hdr + 12, (uint32_t)strlen(js));
        ok = write_all(fd, hdr, sizeof hdr, &crc, tmp, err, errlen) == 0 &&
             write_all(fd, js, strlen(js), &crc, tmp, err, errlen) == 0;
    }
    if (ok) {
        unsigned char *b = xmalloc(CHUNK);
        size_t n;
        while (ok && (n = fread(b, 1, CHUNK, fg)) > 0) ok = write_all(fd, b, n, &crc, tmp, err, errlen) == 0;
        free(b);
        unsigned char tr[4];
        put_le32(tr, crc);
        ok = ok && write_all(fd, tr, 4, NULL, tmp, err, errlen) == 0;
    }
    if (fg) fclose(fg);
    if (fd >= 0 && close(fd) != 0 && ok) {
        snprintf(err, errlen, "%s: close: %s", tmp, strerror(errno));
        ok = 0;
    }
    if (ok && fsio_commit(tmp, out_path, err, errlen) != 0) ok = 0;
    if (!ok) unlink(tmp);
    unlink(gz);
    cJSON_free(js);
    free(gz);
    free(tmp);
    return ok ? 0 : -1;
}

/* Verify path and read its manifest; with payload_out, inflate the payload there. */
/* Header and trailer: magic, version, and the whole-file CRC-32 checked
 * before any length in the file is trusted. Sets *size and *mlen. */
static int check_frame(FILE *f, const char *path, uint64_t *size, uint32_t *mlen, char *err, size_t errlen)
{
    struct stat sb;
    unsigned char hdr[HDR_LEN];
    *size = fstat(fileno(f), &sb) == 0 ? (uint64_t)sb.st_size : 0;
    if (*size < HDR_LEN + 4 || fread(hdr, 1, HDR_LEN, f) != HDR_LEN) {
        snprintf(err, errlen, "%s: truncated: %" PRIu64 " bytes, shorter than a header and trailer", path, *size);
        return -1;
    }
    if (memcmp(hdr, magic, 8) != 0) {
        snprintf(err, errlen, "%s: offset 0: not an iptv-agent export file (bad magic)", path);
        return -1;
    }
    uint32_t version = get_le32(hdr + 8);
    *mlen = get_le32(hdr + 12);
    if (version != EXPORT_FORMAT_VERSION) {
        snprintf(err, errlen, "%s: offset 8: format version %" PRIu32 ", this build reads version %d", path,
                 version, EXPORT_FORMAT_VERSION);
        return -1;
    }
    uint32_t crc = (uint32_t)crc32(0, hdr, HDR_LEN);
    unsigned char *b = xmalloc(CHUNK), tr[4];
    uint64_t left = *size - HDR_LEN - 4;
    int ok = 1;
    while (ok && left) {
        size_t want = left < CHUNK ? (size_t)left : CHUNK;
        ok = fread(b, 1, want, f) == want;
        crc = (uint32_t)crc32(crc, b, (uInt)want);
        left -= want;
    }
    free(b);
    ok = ok && fread(tr, 1, 4, f) == 4;
    if (!ok || get_le32(tr) != crc) {
        snprintf(err, errlen,
                 "%s: offset %" PRIu64 ": checksum mismatch (CRC-32 of the file is %08" PRIx32
                 ", its trailer says %08" PRIx32 "): the file is damaged or truncated",
                 path, *size - 4, crc, ok ? get_le32(tr) : 0);
        return -1;
    }
    if ((uint64_t)*mlen > *size - HDR_LEN - 4 || *mlen > MANIFEST_MAX) {
        snprintf(err, errlen, "%s: offset 12: manifest length %" PRIu32 " exceeds the file", path, *mlen);
        return -1;
    }
    return 0;
}

/* The manifest at HDR_LEN, and its agreement with the file's size. */
static int read_manifest(FILE *f, const char *path, uint64_t size, uint32_t mlen, struct export_manifest *m,
                         char *err, size_t errlen)
{
    char *js = xmalloc((size_t)mlen + 1);
    fseeko(f, HDR_LEN, SEEK_SET);
    int ok = fread(js, 1, mlen, f) == mlen;
    js[mlen] = '\0';
    ok = ok && strlen(js) == mlen;
    char merr[512];
    if (!ok || parse_manifest(js, m, merr, sizeof merr) != 0) {
        snprintf(err, errlen, "%s: offset %d: %s", path, HDR_LEN, ok ? merr : "manifest unreadable");
        free(js);
        return -1;
    }
    free(js);
    uint64_t packed = size - HDR_LEN - mlen - 4;
    if (m->format != EXPORT_FORMAT_VERSION || m->packed_bytes != packed) {
        snprintf(err, errlen, "%s: manifest says format %d and %" PRIu64 " payload bytes; the file has %" PRIu64,
                 path, m->format, m->packed_bytes, packed);
        return -1;
    }
    return 0;
}

/* Inflate the payload that follows the manifest (f is positioned at it) to
 * payload_out, or only to check it; its length and CRC-32 must be the
 * manifest's, and nothing may follow the gzip stream. */
static int inflate_payload(FILE *f, const char *path, uint32_t mlen, const struct export_manifest *m,
                           const char *payload_out, char *err, size_t errlen)
{
    FILE *fo = NULL;
    if (payload_out && !(fo = fopen(payload_out, "wb"))) {
        snprintf(err, errlen, "%s: %s", payload_out, strerror(errno));
        return -1;
    }
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 15 + 16) != Z_OK) {
        snprintf(err, errlen, "%s: inflateInit failed", path);
        if (fo) fclose(fo);
        return -1;
    }
    unsigned char *b = xmalloc(CHUNK), *ob = xmalloc(CHUNK);
    uint32_t rcrc = (uint32_t)crc32(0, NULL, 0);
    uint64_t raw = 0, left = m->packed_bytes;
    int zrc = Z_OK, ok = 1;
    while (ok && zrc != Z_STREAM_END) {
        if (z.avail_in == 0) {
            if (!left) break;
            size_t want = left < CHUNK ? (size_t)left : CHUNK;
            if (fread(b, 1, want, f) != want) break;
            left -= want;
            z.next_in = b;
            z.avail_in = (uInt)want;
        }
        z.next_out = ob;
        z.avail_out = CHUNK;
        zrc = inflate(&z, Z_NO_FLUSH);
        if (zrc != Z_OK && zrc != Z_STREAM_END) {
            snprintf(err, errlen, "%s: offset %" PRIu64 ": payload does not inflate: %s", path,
                     (uint64_t)HDR_LEN + mlen + z.total_in, z.msg ? z.msg : "zlib error");
            ok = 0;
            break;
        }
        size_t have = CHUNK - z.avail_out;
        rcrc = (uint32_t)crc32(rcrc, ob, (uInt)have);
        raw += have;
        if (fo && fwrite(ob, 1, have, fo) != have) {
            snprintf(err, errlen, "%s: write: %s", payload_out, strerror(errno));
            ok = 0;
        }
    }
    if (ok && (zrc != Z_STREAM_END || left != 0 || z.avail_in != 0)) {
        snprintf(err, errlen, "%s: offset %d: payload is %s", path, HDR_LEN + (int)mlen,
                 zrc != Z_STREAM_END ? "cut short" : "followed by extra bytes");
        ok = 0;
    }
    if (ok && (raw != m->raw_bytes || rcrc != m->raw_crc)) {
        snprintf(err, errlen,
                 "%s: payload is %" PRIu64 " bytes with CRC-32 %08" PRIx32 "; the manifest says %" PRIu64
                 " bytes, %08" PRIx32,
                 path, raw, rcrc, m->raw_bytes, m->raw_crc);
        ok = 0;
    }
    inflateEnd(&z);
    if (fo && fclose(fo) != 0 && ok) {
        snprintf(err, errlen, "%s: close: %s", payload_out, strerror(errno));
        ok = 0;
    }
    free(ob);
    free(b);
    return ok ? 0 : -1;
}

/* Read and check a whole container: frame, manifest, payload (inflated to
 * payload_out when not NULL). On failure m is empty and payload_out removed. */
static int read_container(const char *path, struct export_manifest *m, const char *payload_out, char *err,
                          size_t errlen)
{
    memset(m, 0, sizeof *m);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    uint64_t size;
    uint32_t mlen;
    int ok = check_frame(f, path, &size, &mlen, err, errlen) == 0 &&
             read_manifest(f, path, size, mlen, m, err, errlen) == 0 &&
             inflate_payload(f, path, mlen, m, payload_out, err, errlen) == 0;
    fclose(f);
    if (!ok) {
        export_manifest_free(m);
        if (payload_out) unlink(payload_out);
    }
    return ok ? 0 : -1;
}

int export_verify(const char *path, struct export_manifest *m, char *err, size_t errlen)
{
    return read_container(path, m, NULL, err, errlen);
}

/* ---- export ------------------------------------------------------------------------ */

int export_snapshot(const char *db_path, const char *out_path, int level, struct export_manifest *mout,
                    char *err, size_t errlen)
{
    struct export_manifest m;
    memset(&m, 0, sizeof m);
    char *copy = tmp_name(out_path, "db");
    sqlite3 *c = NULL;
    int ok = replay_copy_take(db_path, copy, err, errlen) == 0 &&
             replay_copy_open(copy, &c, err, errlen) == 0;
    if (ok) {
        m.format = EXPORT_FORMAT_VERSION;
        snprintf(m.kind, sizeof m.kind, "snapshot");
        new_id(c, m.id);
        m.created_ms = clock_wall_ms();
        /* The copy records what it is, so the importer starts "at" this id. */
        char why[IA_ERRLEN];
        ok = replay_copy_set_at(c, m.id, "snapshot", m.created_ms, why, sizeof why) == 0;
        if (!ok) snprintf(err, errlen, "export copy %s: %s", copy, why);
        ok = ok && describe(c, &m, err, errlen) == 0;
        /* A rollback journal, so the copy is one self-contained file. */
        ok = ok && exec(c, "PRAGMA journal_mode = DELETE", copy, err, errlen) == 0;
    }
    sqlite3_close_v2(c);
    ok = ok && write_container(out_path, copy, level, &m, err, errlen) == 0;
    replay_copy_remove(copy);
    free(copy);
    if (ok && mout) *mout = m;
    else export_manifest_free(&m);
    return ok ? 0 : -1;
}

/* Tables of schema `db` that travel, with their DDL hash, as parallel arrays. */
static int list_tables(sqlite3 *c, const char *db, char ***names, char (**hashes)[17], size_t *n, char *err,
                       size_t errlen)
{
    char **ddls;
    *hashes = NULL;
    if (replay_copy_list(c, db, names, &ddls, n, err, errlen) != 0) return -1;
    *hashes = xcalloc(*n ? *n : 1, sizeof **hashes);
    for (size_t i = 0; i < *n; i++) {
        fnv_hex(ddls[i], (*hashes)[i]);
        free(ddls[i]);
    }
    free(ddls);
    return 0;
}

static int has_pk(sqlite3 *c, const char *table)
{
    struct buf q = {0};
    buf_puts(&q, "SELECT count(*) FROM pragma_table_info(?1) WHERE pk > 0");
    sqlite3_stmt *st;
    int n = 0;
    if (sqlite3_prepare_v2(c, q.p, -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    buf_free(&q);
    return n > 0;
}

/* Check the two schemas carry the same tables with the same DDL, all keyed:
 * 0, or -2 (refused: a delta cannot describe the difference; also when the
 * lists cannot be read, which only happens on a damaged copy). */
static int same_tables(sqlite3 *c, const char *base_path, char *err, size_t errlen)
{
    char **a = NULL, **b = NULL;
    char(*ha)[17] = NULL, (*hb)[17] = NULL;
    size_t na = 0, nb = 0;
    int ok = list_tables(c, "main", &a, &ha, &na, err, errlen) == 0 &&
             list_tables(c, "base", &b, &hb, &nb, err, errlen) == 0;
    for (size_t i = 0, j = 0; ok && (i < na || j < nb);) {
        int cmp = i >= na ? 1 : j >= nb ? -1 : strcmp(a[i], b[j]);
        if (cmp != 0) {
            snprintf(err, errlen, "table %s: %s since the base %s; export a new snapshot", cmp < 0 ? a[i] : b[j],
                     cmp < 0 ? "added" : "dropped", base_path);
            ok = 0;
        } else if (strcmp(ha[i], hb[j]) != 0) {
            snprintf(err, errlen, "table %s: layout changed since the base %s; export a new snapshot", a[i],
                     base_path);
            ok = 0;
        } else if (!has_pk(c, a[i])) {
            snprintf(err, errlen, "table %s: no PRIMARY KEY, so no delta can describe it; export a snapshot", a[i]);
            ok = 0;
        }
        i++, j++;
    }
    for (size_t i = 0; i < na; i++) free(a[i]);
    for (size_t i = 0; i < nb; i++) free(b[i]);
    free(a);
    free(b);
    free(ha);
    free(hb);
    return ok ? 0 : -2;
}

static uint64_t count_changes(int n, void *p)
{
    sqlite3_changeset_iter *it;
    uint64_t k = 0;
    if (sqlite3changeset_start(&it, n, p) != SQLITE_OK) return 0;
    while (sqlite3changeset_next(it) == SQLITE_ROW) k++;
    sqlite3changeset_finalize(it);
    return k;
}

/* The delta from the inflated base snapshot at `base` (described by bm, named
 * base_label in messages) to the portable copy at `copy` (a writable database
 * that is the newer state), written to out_path with id `id` (NULL: a new one). */
static int diff_into(const char *copy, const char *base, const char *base_label, const struct export_manifest *bm,
                     const char *id, const char *out_path, int level, struct export_manifest *m, char *err,
                     size_t errlen)
{
    char *cs = tmp_name(out_path, "cs");
    sqlite3 *c = NULL;
    sqlite3_session *sess = NULL;
    int n = 0;
    void *p = NULL;
    int ok = replay_copy_open(copy, &c, err, errlen) == 0;
    if (ok) {
        sqlite3_stmt *st;
        ok = sqlite3_prepare_v2(c, "ATTACH ?1 AS base", -1, &st, NULL) == SQLITE_OK;
        if (ok) {
            sqlite3_bind_text(st, 1, base, -1, SQLITE_STATIC);
            ok = sqlite3_step(st) == SQLITE_DONE;
        }
        if (!ok) snprintf(err, errlen, "base %s: attach: %s", base_label, sqlite3_errmsg(c));
        sqlite3_finalize(st);
    }
    int refused = ok && same_tables(c, base_label, err, errlen) != 0;
    ok = ok && !refused;
    if (ok && sqlite3session_create(c, "main", &sess) != SQLITE_OK) {
        snprintf(err, errlen, "session: %s", sqlite3_errmsg(c));
        ok = 0;
    }
    if (ok) {
        char **names;
        char(*hashes)[17];
        size_t nn;
        ok = list_tables(c, "main", &names, &hashes, &nn, err, errlen) == 0;
        for (size_t i = 0; ok && i < nn; i++) {
            char *msg = NULL;
            if (sqlite3session_attach(sess, names[i]) != SQLITE_OK ||
                sqlite3session_diff(sess, "base", names[i], &msg) != SQLITE_OK) {
                snprintf(err, errlen, "table %s: diff against the base %s: %s", names[i], base_label,
                         msg ? msg : sqlite3_errmsg(c));
                ok = 0;
            }
            sqlite3_free(msg);
        }
        for (size_t i = 0; i < nn; i++) free(names[i]);
        free(names);
        free(hashes);
    }
    if (ok && sqlite3session_changeset(sess, &n, &p) != SQLITE_OK) {
        snprintf(err, errlen, "changeset: %s", sqlite3_errmsg(c));
        ok = 0;
    }
    if (ok) {
        m->format = EXPORT_FORMAT_VERSION;
        snprintf(m->kind, sizeof m->kind, "delta");
        if (id) snprintf(m->id, sizeof m->id, "%s", id);
        else new_id(c, m->id);
        snprintf(m->base_id, sizeof m->base_id, "%s", bm->id);
        m->created_ms = clock_wall_ms();
        m->changes = count_changes(n, p);
        ok = describe(c, m, err, errlen) == 0;
    }
    if (sess) sqlite3session_delete(sess);
    sqlite3_close_v2(c);
    if (ok) {
        int fd = open(cs, O_WRONLY | O_CREAT | O_TRUNC, 0640);
        ok = fd >= 0 && write_all(fd, p, (size_t)n, NULL, cs, err, errlen) == 0;
        if (fd < 0) snprintf(err, errlen, "%s: %s", cs, strerror(errno));
        if (fd >= 0) close(fd);
    }
    sqlite3_free(p);
    ok = ok && write_container(out_path, cs, level, m, err, errlen) == 0;
    unlink(cs);
    free(cs);
    return ok ? 0 : refused ? -2 : -1;
}

/* Verify a snapshot file and inflate its database to `out`. */
static int read_snapshot(const char *path, struct export_manifest *m, const char *out, char *err, size_t errlen)
{
    if (read_container(path, m, out, err, errlen) != 0) return -1;
    if (strcmp(m->kind, "snapshot") == 0) return 0;
    snprintf(err, errlen, "%s: a %s (id %s); a delta starts and ends at snapshots", path, m->kind, m->id);
    replay_copy_remove(out);
    export_manifest_free(m);
    return -1;
}

int export_delta(const char *db_path, const char *base_path, const char *out_path, int level,
                 struct export_manifest *mout, char *err, size_t errlen)
{
    struct export_manifest m, bm;
    memset(&m, 0, sizeof m);
    memset(&bm, 0, sizeof bm);
    char *base = tmp_name(out_path, "base"), *copy = tmp_name(out_path, "db");
    int rc = read_snapshot(base_path, &bm, base, err, errlen) == 0 && replay_copy_take(db_path, copy, err, errlen) == 0
                 ? diff_into(copy, base, base_path, &bm, NULL, out_path, level, &m, err, errlen)
                 : -1;
    replay_copy_remove(copy);
    replay_copy_remove(base);
    free(copy);
    free(base);
    export_manifest_free(&bm);
    if (rc == 0 && mout) *mout = m;
    else export_manifest_free(&m);
    return rc;
}

int export_delta_files(const char *base_path, const char *target_path, const char *out_path, int level,
                       struct export_manifest *mout, char *err, size_t errlen)
{
    struct export_manifest m, bm, tm;
    memset(&m, 0, sizeof m);
    memset(&bm, 0, sizeof bm);
    memset(&tm, 0, sizeof tm);
    char *base = tmp_name(out_path, "base"), *copy = tmp_name(out_path, "db");
    int rc = read_snapshot(base_path, &bm, base, err, errlen) == 0 &&
                     read_snapshot(target_path, &tm, copy, err, errlen) == 0
                 ? diff_into(copy, base, base_path, &bm, tm.id, out_path, level, &m, err, errlen)
                 : -1;
    replay_copy_remove(copy);
    replay_copy_remove(base);
    free(copy);
    free(base);
    export_manifest_free(&bm);
    export_manifest_free(&tm);
    if (rc == 0 && mout) *mout = m;
    else export_manifest_free(&m);
    return rc;
}

int export_cache_state(const char *db_path, char at_id[EXPORT_ID_LEN + 1], uint64_t *applied_seq, char *err,
                       size_t errlen)
{
    sqlite3 *db = NULL;
    struct replay_copy_state cs;
    char why[IA_ERRLEN];
    if (replay_db_open_readonly(db_path, 0, 10000, &db, err, errlen) != 0) return -1;
    int ok = replay_copy_state(db, &cs, why, sizeof why) == 0;
    if (ok) {
        snprintf(at_id, EXPORT_ID_LEN + 1, "%s", cs.at_id);
        if (applied_seq) *applied_seq = cs.applied_seq;
    } else {
        snprintf(err, errlen, "cache.db %s: %s", db_path, why);
    }
    sqlite3_close_v2(db);
    return ok ? 0 : -1;
}

/* ---- import ------------------------------------------------------------------------ */

static int import_snapshot(const char *db_path, const char *path, const char *payload,
                           const struct export_manifest *m, char *err, size_t errlen)
{
    sqlite3 *src = NULL, *dst = NULL;
    int ok = replay_copy_open(payload, &src, err, errlen) == 0 &&
             replay_copy_open(db_path, &dst, err, errlen) == 0;
    char *v = NULL;
    if (ok && query_text(src, "PRAGMA quick_check", NULL, &v, err, errlen) == 0 && strcmp(v, "ok") != 0) {
        snprintf(err, errlen, "%s: the snapshot's database fails quick_check: %s", path, v);
        ok = 0;
    }
    free(v);
    /* The database inside must be what export_snapshot writes. Then keep what
     * is local: the journal position and this cache's identity. The journal
     * lock (caller) keeps them from moving until the backup commits. */
    ok = ok && replay_copy_check(src, dst, path, err, errlen) == 0 &&
         replay_copy_adopt(src, dst, path, m->id, clock_wall_ms(), err, errlen) == 0;
    /* A WAL destination cannot change its page size: give the copy the cache's. */
    char *sps = NULL, *dps = NULL;
    ok = ok && query_text(src, "PRAGMA page_size", NULL, &sps, err, errlen) == 0 &&
         query_text(dst, "PRAGMA page_size", NULL, &dps, err, errlen) == 0;
    if (ok && strcmp(sps, dps) != 0) {
        struct buf q = {0};
        buf_printf(&q, "PRAGMA page_size = %d; VACUUM", atoi(dps));
        ok = exec(src, q.p, payload, err, errlen) == 0;
        buf_free(&q);
    }
    free(sps);
    free(dps);
    if (ok) {
        /* One step(-1): the whole copy in one write transaction of cache.db; WAL
         * readers keep their snapshot of the old content until it commits. */
        sqlite3_backup *bk = sqlite3_backup_init(dst, "main", src, "main");
        int rc = bk ? sqlite3_backup_step(bk, -1) : SQLITE_ERROR;
        if (rc != SQLITE_DONE) {
            snprintf(err, errlen, "cache.db %s: replacing it with %s: %s", db_path, path,
                     bk ? sqlite3_errstr(rc) : sqlite3_errmsg(dst));
            ok = 0;
        }
        if (bk) sqlite3_backup_finish(bk);
    }
    sqlite3_close_v2(src);
    sqlite3_close_v2(dst);
    return ok ? 0 : -1;
}

struct conflict_ctx {
    uint64_t *counts;
    const struct export_manifest *m;
    char foreign[128];             /* first changeset table the manifest does not list, or "" */
};

/* Only the tables the manifest lists travel, and only those that travel at
 * all (replay_copy_travels). Anything else refuses the whole delta. */
static int filter_table(void *ctx, const char *table)
{
    struct conflict_ctx *c = ctx;
    int listed = 0;
    for (size_t i = 0; i < c->m->ntables; i++) listed |= strcmp(c->m->tables[i].name, table) == 0;
    if (listed && replay_copy_travels(table)) return 1;
    if (!c->foreign[0]) snprintf(c->foreign, sizeof c->foreign, "%s", table);
    return 0;
}

/* Walk the whole changeset before applying it: SQLite's apply trusts its
 * records (3.40 dereferences a missing old primary-key value of an UPDATE), and
 * a damaged file may carry valid CRCs. Every change must have the values its
 * operation needs: an INSERT all new values, a DELETE all old values, an UPDATE
 * the old primary key and an old value for every new one. */
static int changeset_check(const void *p, int n, const char *path, char *err, size_t errlen)
{
    sqlite3_changeset_iter *it = NULL;
    int rc = sqlite3changeset_start(&it, n, (void *)p);
    uint64_t k = 0;
    const char *why = NULL;
    char table[128] = "?";         /* copied: the iterator owns its text */
    while (rc == SQLITE_OK && !why && (rc = sqlite3changeset_next(it)) == SQLITE_ROW) {
        int ncol, op, indirect, npk;
        const char *t;
        unsigned char *pk;
        rc = sqlite3changeset_op(it, &t, &ncol, &op, &indirect);
        if (rc == SQLITE_OK) snprintf(table, sizeof table, "%s", t);
        if (rc == SQLITE_OK) rc = sqlite3changeset_pk(it, &pk, &npk);
        for (int i = 0; rc == SQLITE_OK && !why && i < ncol; i++) {
            sqlite3_value *o = NULL, *v = NULL;
            if (op != SQLITE_INSERT) rc = sqlite3changeset_old(it, i, &o);
            if (rc == SQLITE_OK && op != SQLITE_DELETE) rc = sqlite3changeset_new(it, i, &v);
            if (rc != SQLITE_OK) break;
            if ((op == SQLITE_INSERT && !v) || (op == SQLITE_DELETE && !o) ||
                (op == SQLITE_UPDATE && ((pk[i] && !o) || (v && !o))))
                why = "a value its operation needs is missing";
        }
        k++;
    }
    if (rc == SQLITE_DONE && !why) rc = SQLITE_OK;
    sqlite3changeset_finalize(it);
    if (rc == SQLITE_OK && !why) return 0;
    snprintf(err, errlen, "%s: changeset damaged at change %" PRIu64 " (table %s): %s; nothing changed", path, k,
             table, why ? why : sqlite3_errstr(rc));
    return -1;
}

static int on_conflict(void *ctx, int kind, sqlite3_changeset_iter *it)
{
    (void)it;
    struct conflict_ctx *c = ctx;
    if (kind >= 1 && kind <= 5) c->counts[kind]++;
    c->counts[0]++;
    /* Counted, then the whole delta is rolled back by the caller. */
    return SQLITE_CHANGESET_OMIT;
}

static int import_delta(const char *db_path, const char *path, const char *payload,
                        const struct export_manifest *m, uint64_t conflicts[6], int *already, char *err,
                        size_t errlen)
{
    size_t n = 0;
    FILE *f = fopen(payload, "rb");
    struct buf cs = {0};
    if (f) {
        char b[CHUNK];
        size_t k;
        while ((k = fread(b, 1, sizeof b, f)) > 0) buf_append(&cs, b, k);
        fclose(f);
        n = cs.len;
    }
    sqlite3 *db = NULL;
    int ok = f && replay_copy_open(db_path, &db, err, errlen) == 0;
    if (!f) snprintf(err, errlen, "%s: %s", payload, strerror(errno));
    ok = ok && exec(db, "BEGIN IMMEDIATE", db_path, err, errlen) == 0;
    int in_tx = ok;
    struct replay_copy_state cst;
    const char *at = cst.at_id;
    ok = ok && replay_copy_state(db, &cst, err, errlen) == 0;
    if (ok && strcmp(at, m->id) == 0) {
        /* Applied before: the cache is at this delta's end. Nothing to do. */
        *already = 1;
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close_v2(db);
        buf_free(&cs);
        return 0;
    }
    if (ok && strcmp(at, m->base_id) != 0) {
        snprintf(err, errlen, "%s: delta %s applies to base %s, but this cache is at %s; nothing changed", path,
                 m->id, m->base_id, at[0] ? at : "(no imported snapshot)");
        ok = 0;
    }
    /* The changeset silently skips a table the cache lacks: check every table first. */
    for (size_t i = 0; ok && i < m->ntables; i++) {
        char *sql = NULL;
        ok = query_text(db, "SELECT coalesce((SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1), '')",
                        m->tables[i].name, &sql, err, errlen) == 0;
        char h[17];
        fnv_hex(sql, h);
        if (ok && (!sql[0] || strcmp(h, m->tables[i].ddl_hash) != 0)) {
            snprintf(err, errlen, "%s: table %s: %s in this cache; nothing changed", path, m->tables[i].name,
                     sql[0] ? "layout differs" : "missing");
            ok = 0;
        }
        free(sql);
    }
    ok = ok && changeset_check(cs.p, (int)n, path, err, errlen) == 0;
    if (ok) {
        struct conflict_ctx cc = {.counts = conflicts, .m = m};
        int rc = sqlite3changeset_apply(db, (int)n, cs.p, filter_table, on_conflict, &cc);
        if (rc == SQLITE_OK && cc.foreign[0]) {
            snprintf(err, errlen, "%s: delta %s changes table %s, which does not travel; nothing changed", path, m->id,
                     cc.foreign);
            ok = 0;
        } else if (rc != SQLITE_OK) {
            snprintf(err, errlen, "%s: applying the changeset: %s; nothing changed", path, sqlite3_errmsg(db));
            ok = 0;
        } else if (conflicts[0]) {
            snprintf(err, errlen,
                     "%s: delta %s: %" PRIu64 " conflicts (data %" PRIu64 ", not found %" PRIu64 ", conflict %" PRIu64
                     ", constraint %" PRIu64 ", foreign key %" PRIu64 "); nothing changed",
                     path, m->id, conflicts[0], conflicts[1], conflicts[2], conflicts[3], conflicts[4], conflicts[5]);
            ok = 0;
        }
    }
    if (ok) {
        char why[IA_ERRLEN];
        ok = replay_copy_set_at(db, m->id, "delta", clock_wall_ms(), why, sizeof why) == 0;
        if (!ok) snprintf(err, errlen, "cache.db %s: %s", db_path, why);
        ok = ok && exec(db, "COMMIT", db_path, err, errlen) == 0;
    }
    if (!ok && in_tx) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close_v2(db);
    buf_free(&cs);
    return ok ? 0 : -1;
}

int export_import(const char *db_path, const char *path, struct export_import_result *res, char *err,
                  size_t errlen)
{
    memset(res, 0, sizeof *res);
    err[0] = '\0';
    char *payload = tmp_name(db_path, "import");
    int ok = read_container(path, &res->m, payload, err, errlen) == 0;
    if (ok && res->m.cache_schema != REPLAY_SCHEMA_VERSION) {
        snprintf(err, errlen, "%s: made from a cache.db of schema version %d, this build has %d", path,
                 res->m.cache_schema, REPLAY_SCHEMA_VERSION);
        ok = 0;
    }
    if (ok)
        ok = (!strcmp(res->m.kind, "snapshot")
                  ? import_snapshot(db_path, path, payload, &res->m, err, errlen)
                  : import_delta(db_path, path, payload, &res->m, res->conflicts, &res->already, err, errlen)) == 0;
    replay_copy_remove(payload);
    free(payload);
    return ok ? 0 : -1;
}
