/* tvprogram.h — generated tv_program rows for the benchmarks, deterministic from
 * a seed: 11 columns (id, created_at, updated_at, channel_id, title,
 * description, start, stop, duration, age_rating, is_live), runs of 20-50
 * programmes per channel sharing created/updated times, titles from a pool
 * (Latin and Cyrillic), descriptions 100-300 bytes (15% NULL, some repeated),
 * age_rating 30% NULL. Header-only: each benchmark is its own program. */
#ifndef IA_BENCH_TVPROGRAM_H
#define IA_BENCH_TVPROGRAM_H
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "journal/rows.h"

struct rng {
    uint64_t s;
};

static inline uint64_t next(struct rng *r)
{
    /* xorshift64*: fast, fixed-seed, good enough for test data */
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 2685821657736338717ULL;
}

static inline unsigned pick(struct rng *r, unsigned n) { return (unsigned)(next(r) % n); }

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
static inline size_t sentence(struct rng *r, char *out, size_t n, size_t target)
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

static inline void gen_init(struct gen *g, uint64_t seed)
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

static inline int fmt_time(char *out, int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    return (int)strftime(out, 20, "%Y-%m-%d %H:%M:%S", &tm);
}

static inline void gen_row(struct gen *g, struct journal_payload *pl)
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
    journal_put_bool(pl, pick(r, 20) == 0);
}

#endif
