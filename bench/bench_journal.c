/* bench_journal.c — journal figures on generated tv_program pages of 1000 rows:
 * row encoding rate, append throughput (MB/s of raw encoded rows) with one
 * fsync per batch and with one fsync per record, read+decode rows/s, and the
 * compression ratio, at zlib levels 1, 3, 6 and 9. One JSON line per figure on
 * stdout; progress on stderr.
 *
 * usage: bench_journal [--pages N] [--fsync-pages N] [--levels 1,3,6,9] [--dir D]
 *   --pages        pages per level for append/read/ratio (default 200 = 200,000 rows)
 *   --fsync-pages  pages per level for the fsync-per-record run (default 30)
 *   --dir          where to make the temp journal (default $IA_BENCH_DIR, else
 *                  /var/tmp: the real disk, not tmpfs)
 *
 * The rows (deterministic, fixed seed) imitate an EPG import: runs of 20-50
 * programmes of one channel with back-to-back start/stop times and one import
 * timestamp; titles from a pool of 400 (Latin and Cyrillic, some with an
 * episode number); descriptions 100-300 bytes, 15% NULL, half of the rest from
 * a pool of 500 (repeats, as series and news do), the rest fresh word sequences
 * from a 300-word vocabulary; age_rating 30% NULL. "raw" bytes are the encoded
 * uncompressed payloads (rows.c), i.e. what the ratio divides by.
 *
 * JOURNAL_DEFAULT_LEVEL (journal.h) is chosen from these figures: see the
 * report in docs/journal-format.md ("Compression level"). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "journal/journal.h"

#define ROWS_PER_PAGE 1000
#define NCOLS 11

struct rng {
    uint64_t s;
};

static uint64_t next(struct rng *r)
{
    /* xorshift64*: fast, fixed-seed, good enough for test data */
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 2685821657736338717ULL;
}

static unsigned pick(struct rng *r, unsigned n) { return (unsigned)(next(r) % n); }

static const char *const words[] = {
    "новости", "фильм", "сериал", "история", "жизнь", "время", "город", "любовь", "семья",
    "дети", "война", "мир", "герой", "тайна", "путешествие", "природа", "спорт", "футбол",
    "хоккей", "матч", "чемпионат", "музыка", "концерт", "шоу", "ток-шоу", "программа", "выпуск",
    "ведущий", "гость", "студия", "эфир", "прямой", "обзор", "неделя", "утро", "вечер", "ночь",
    "день", "погода", "прогноз", "экономика", "политика", "культура", "наука", "техника",
    "здоровье", "кулинария", "рецепт", "дом", "сад", "животные", "океан", "космос", "планета",
    "земля", "россия", "москва", "петербург", "сибирь", "европа", "америка", "документальный",
    "художественный", "детектив", "комедия", "драма", "мелодрама", "боевик", "триллер",
    "приключения", "фантастика", "мультфильм", "анимация", "детский", "молодежный", "классика",
    "премьера", "повтор", "сезон", "серия", "эпизод", "финал", "полуфинал", "турнир", "команда",
    "игрок", "тренер", "победа", "поражение", "счет", "гол", "рекорд", "олимпиада", "лига",
    "он", "она", "они", "мы", "в", "на", "с", "и", "но", "не", "по", "из", "за", "к", "о", "для",
    "который", "когда", "где", "после", "перед", "во", "время", "чтобы", "их", "его", "её",
    "главный", "новый", "старый", "большой", "маленький", "последний", "первый", "второй",
    "лучший", "известный", "молодой", "опасный", "странный", "забытый", "настоящий", "последние",
    "узнает", "решает", "встречает", "находит", "теряет", "спасает", "возвращается", "уезжает",
    "расследует", "рассказывает", "показывает", "открывает", "скрывает", "ищет", "помогает",
    "the", "a", "of", "and", "in", "to", "with", "for", "on", "at", "from", "by", "about",
    "news", "movie", "series", "story", "life", "time", "city", "love", "family", "world",
    "hero", "secret", "journey", "nature", "sport", "football", "match", "music", "concert",
    "show", "talk", "live", "review", "week", "morning", "evening", "night", "weather",
    "science", "health", "cooking", "home", "garden", "animals", "ocean", "space", "planet",
    "documentary", "detective", "comedy", "drama", "action", "thriller", "adventure",
    "fantasy", "cartoon", "classic", "premiere", "season", "episode", "final", "team",
    "player", "coach", "victory", "record", "league", "new", "old", "big", "small", "last",
    "first", "best", "famous", "young", "dangerous", "strange", "forgotten", "real",
    "finds", "loses", "saves", "returns", "leaves", "investigates", "tells", "shows",
    "opens", "hides", "searches", "helps", "meets", "decides", "discovers", "remembers",
    "2024", "HD", "4K", "(12+)", "(16+)", "(18+)", "(0+)", "(6+)", "ч.1", "ч.2", "ч.3",
    "доктор", "полиция", "капитан", "майор", "следователь", "адвокат", "судья", "врач",
    "учитель", "студент", "художник", "писатель", "музыкант", "актёр", "режиссёр", "звезда",
};
#define NWORDS (sizeof words / sizeof words[0])

struct gen {
    struct rng r;
    char titles[400][96];
    char descs[500][320];
    int64_t id;
    int run_left;           /* programmes left in this channel's run */
    int64_t channel;
    int64_t t;              /* start of the next programme, unix seconds */
    int64_t imported;       /* created_at/updated_at of the run */
    char desc[320];         /* scratch for a fresh description */
};

/* Words up to about `target` bytes into out (size n). */
static size_t sentence(struct rng *r, char *out, size_t n, size_t target)
{
    size_t len = 0;
    while (len < target) {
        const char *w = words[pick(r, NWORDS)];
        size_t wl = strlen(w);
        if (len + wl + 2 >= n) break;
        if (len) out[len++] = ' ';
        memcpy(out + len, w, wl);
        len += wl;
    }
    out[len] = '\0';
    return len;
}

static void gen_init(struct gen *g, uint64_t seed)
{
    memset(g, 0, sizeof *g);
    g->r.s = seed;
    for (int i = 0; i < 400; i++) {
        size_t n = sentence(&g->r, g->titles[i], sizeof g->titles[i], 8 + pick(&g->r, 30));
        if (pick(&g->r, 3) == 0)
            snprintf(g->titles[i] + n, sizeof g->titles[i] - n, " (серия %u)", 1 + pick(&g->r, 40));
    }
    for (int i = 0; i < 500; i++)
        sentence(&g->r, g->descs[i], sizeof g->descs[i], 100 + pick(&g->r, 200));
    g->id = 10000000;
    g->t = 1717200000;     /* 2024-06-01 */
}

static int fmt_time(char *out, int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    return (int)strftime(out, 20, "%Y-%m-%d %H:%M:%S", &tm);
}

static void gen_row(struct gen *g, struct journal_payload *pl)
{
    struct rng *r = &g->r;
    if (g->run_left == 0) {
        g->run_left = 20 + (int)pick(r, 31);
        g->channel = 1 + pick(r, 300);
        g->t = 1717200000 + (int64_t)pick(r, 14) * 86400;
        g->imported = g->t - 86400 * 3 + pick(r, 3600);
    }
    g->run_left--;
    char ts[24];
    journal_put_int(pl, g->id++);
    journal_put_text(pl, ts, (size_t)fmt_time(ts, g->imported));
    journal_put_text(pl, ts, (size_t)fmt_time(ts, g->imported + pick(r, 5)));
    journal_put_int(pl, g->channel);
    const char *title = g->titles[pick(r, 400)];
    journal_put_text(pl, title, strlen(title));
    unsigned d = pick(r, 100);
    if (d < 15) {
        journal_put_null(pl);
    } else if (d < 57) {
        const char *s = g->descs[pick(r, 500)];
        journal_put_text(pl, s, strlen(s));
    } else {
        size_t n = sentence(r, g->desc, sizeof g->desc, 100 + pick(r, 200));
        journal_put_text(pl, g->desc, n);
    }
    int64_t dur = 300 * (1 + (int64_t)pick(r, 24));
    journal_put_text(pl, ts, (size_t)fmt_time(ts, g->t));
    journal_put_text(pl, ts, (size_t)fmt_time(ts, g->t + dur));
    g->t += dur;
    journal_put_int(pl, dur);
    static const int64_t ratings[] = {0, 6, 12, 16, 18};
    if (pick(r, 10) < 3) journal_put_null(pl);
    else journal_put_int(pl, ratings[pick(r, 5)]);
    journal_put_int(pl, pick(r, 20) == 0);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct pages {
    unsigned char **p;
    size_t *len;
    int n;
    uint64_t raw;
};

static void make_pages(struct pages *pg, int n, double *encode_rows_s)
{
    struct gen *g = malloc(sizeof *g);
    gen_init(g, 0x1234abcdULL);
    struct journal_payload pl = {0};
    char err[256];
    pg->p = calloc((size_t)n, sizeof *pg->p);
    pg->len = calloc((size_t)n, sizeof *pg->len);
    pg->n = n;
    pg->raw = 0;
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        journal_payload_snapshot_page(&pl, 1, NCOLS);
        for (int r = 0; r < ROWS_PER_PAGE; r++) gen_row(g, &pl);
        if (journal_payload_finish(&pl, err, sizeof err) != 0) {
            fprintf(stderr, "bench_journal: %s\n", err);
            exit(1);
        }
        pg->p[i] = malloc(pl.len);
        memcpy(pg->p[i], pl.p, pl.len);
        pg->len[i] = pl.len;
        pg->raw += pl.len;
    }
    /* Includes generating the values; an upper bound on the encoder's cost. */
    *encode_rows_s = (double)n * ROWS_PER_PAGE / (now_s() - t0);
    journal_payload_free(&pl);
    free(g);
}

static void rmrf_journal(const char *dir)
{
    uint64_t *segs;
    size_t n;
    char err[256], path[4200];
    if (journal_segments(dir, &segs, &n, err, sizeof err) == 0) {
        for (size_t i = 0; i < n; i++) {
            snprintf(path, sizeof path, "%s/%020" PRIu64 ".seg", dir, segs[i]);
            unlink(path);
        }
        free(segs);
    }
    rmdir(dir);
}

static void die(const char *what, const char *err)
{
    fprintf(stderr, "bench_journal: %s: %s\n", what, err);
    exit(1);
}

/* Append pages [0, n) at level; batch = one fsync at the end. Returns seconds. */
static double run_append(const char *dir, const struct pages *pg, int n, int level, int batch)
{
    rmrf_journal(dir);
    struct journal_opts o = {.dir = dir, .level = level};
    struct journal_writer *w;
    char err[512];
    if (journal_writer_open(&o, &w, err, sizeof err) != 0) die("open", err);
    double t0 = now_s();
    if (batch) journal_batch_begin(w);
    for (int i = 0; i < n; i++)
        if (journal_append(w, JOURNAL_SNAPSHOT_PAGE, "tv_program", pg->p[i], pg->len[i], NULL, err,
                           sizeof err) != 0)
            die("append", err);
    if (batch && journal_batch_commit(w, err, sizeof err) != 0) die("commit", err);
    double dt = now_s() - t0;
    journal_writer_close(w);
    return dt;
}

/* Read and decode every row; returns seconds, fills rows and stored bytes. */
static double run_read(const char *dir, uint64_t *rows, uint64_t *stored, uint64_t *checksum)
{
    struct journal_reader *r;
    struct journal_record rec;
    struct journal_page page;
    struct journal_value v[NCOLS];
    char err[512];
    uint64_t sum = 0;
    *rows = *stored = 0;
    double t0 = now_s();
    if (journal_reader_open(dir, 0, &r, err, sizeof err) != 0) die("reader", err);
    int rc;
    while ((rc = journal_reader_next(r, JOURNAL_SEQ_MAX, &rec, err, sizeof err)) == 1) {
        if (journal_decode_page(rec.type, rec.payload, rec.len, &page, err, sizeof err) != 0) die("decode", err);
        while ((rc = journal_rows_next(&page.rows, v, err, sizeof err)) == 1) {
            /* Touch every value as a binder would. */
            for (int c = 0; c < NCOLS; c++)
                sum += v[c].type == JOURNAL_INT ? (uint64_t)v[c].i : v[c].type == JOURNAL_TEXT ? v[c].n : 1;
            (*rows)++;
        }
        if (rc < 0) die("rows", err);
        *stored += rec.stored;
    }
    if (rc < 0) die("read", err);
    journal_reader_close(r);
    *checksum = sum;
    return now_s() - t0;
}

int main(int argc, char **argv)
{
    int pages = 200, fsync_pages = 30;
    const char *levels = "1,3,6,9", *base = getenv("IA_BENCH_DIR");
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--pages") && i + 1 < argc) pages = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--fsync-pages") && i + 1 < argc) fsync_pages = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--levels") && i + 1 < argc) levels = argv[++i];
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc) base = argv[++i];
        else {
            fprintf(stderr, "usage: bench_journal [--pages N] [--fsync-pages N] [--levels 1,3,6,9] [--dir D]\n");
            return 2;
        }
    }
    if (pages < 1 || fsync_pages < 0) {
        fprintf(stderr, "bench_journal: --pages must be >= 1 and --fsync-pages >= 0\n");
        return 2;
    }
    if (!base || !*base) base = "/var/tmp";
    char tmpl[4096], dir[4200];
    snprintf(tmpl, sizeof tmpl, "%s/bench_journal.XXXXXX", base);
    if (!mkdtemp(tmpl)) {
        perror("bench_journal: mkdtemp");
        return 1;
    }
    snprintf(dir, sizeof dir, "%s/journal", tmpl);
    int maxp = pages > fsync_pages ? pages : fsync_pages;
    struct pages pg;
    double enc;
    fprintf(stderr, "bench_journal: generating %d pages of %d rows in %s\n", maxp, ROWS_PER_PAGE, tmpl);
    make_pages(&pg, maxp, &enc);
    uint64_t raw = 0, fraw = 0;
    for (int i = 0; i < pages; i++) raw += pg.len[i];
    for (int i = 0; i < fsync_pages; i++) fraw += pg.len[i];
    printf("{\"bench\":\"journal_encode\",\"unit\":\"rows/s\",\"value\":%.0f,\"params\":{\"rows\":%d,"
           "\"raw_bytes_per_row\":%.1f}}\n", enc, maxp * ROWS_PER_PAGE,
           (double)pg.raw / ((double)maxp * ROWS_PER_PAGE));
    for (const char *l = levels; *l;) {
        int level = atoi(l);
        fprintf(stderr, "bench_journal: level %d\n", level);
        double dt = run_append(dir, &pg, pages, level, 1);
        printf("{\"bench\":\"journal_append\",\"unit\":\"MB/s\",\"value\":%.1f,\"params\":{\"level\":%d,"
               "\"fsync\":\"once_per_batch\",\"pages\":%d,\"rows_per_page\":%d,\"raw_bytes\":%" PRIu64 "}}\n",
               (double)raw / dt / 1e6, level, pages, ROWS_PER_PAGE, raw);
        uint64_t rows, stored, sum, best_rows = 0;
        double best = 1e30;
        for (int k = 0; k < 3; k++) {
            double rt = run_read(dir, &rows, &stored, &sum);
            if (rt < best) best = rt;
            best_rows = rows;
        }
        printf("{\"bench\":\"journal_read_decode\",\"unit\":\"rows/s\",\"value\":%.0f,\"params\":{\"level\":%d,"
               "\"rows\":%" PRIu64 ",\"checksum\":%" PRIu64 "}}\n", (double)best_rows / best, level, best_rows, sum);
        printf("{\"bench\":\"journal_ratio\",\"unit\":\"x\",\"value\":%.2f,\"params\":{\"level\":%d,"
               "\"raw_bytes\":%" PRIu64 ",\"stored_bytes\":%" PRIu64 "}}\n",
               (double)raw / (double)stored, level, raw, stored);
        if (fsync_pages > 0) {
            dt = run_append(dir, &pg, fsync_pages, level, 0);
            printf("{\"bench\":\"journal_append\",\"unit\":\"MB/s\",\"value\":%.1f,\"params\":{\"level\":%d,"
                   "\"fsync\":\"per_record\",\"pages\":%d,\"rows_per_page\":%d,\"records_per_s\":%.1f}}\n",
                   (double)fraw / dt / 1e6, level, fsync_pages, ROWS_PER_PAGE, fsync_pages / dt);
        }
        fflush(stdout);
        while (*l && *l != ',') l++;
        if (*l == ',') l++;
    }
    rmrf_journal(dir);
    rmdir(tmpl);
    for (int i = 0; i < maxp; i++) free(pg.p[i]);
    free(pg.p);
    free(pg.len);
    return 0;
}
