/* gen.c — the fake portal's data (see gen.h for the contract).
 *
 * Layout, top to bottom: the PRNG and time helpers; a fixed scratch area that
 * holds one row's text; the word pools; the table specs (one column-spec array
 * per table — DDL, INSERT and UPDATE statements are all built from them, so the
 * shape lives in one place); the per-column value generator; create; mutate.
 *
 * Determinism: every table draws from its own xoshiro256** stream seeded from
 * (seed, table name), so one table's row count never shifts another's content.
 * Nothing reads the wall clock or rand().
 *
 * Speed: one savepoint, one prepared INSERT per table, every parameter rebound
 * per row from the scratch area (SQLITE_STATIC: the bytes stay put until the
 * next row rebinds them), timestamps formatted by hand (no snprintf). No malloc
 * per row. */
#include "tests/fake_portal/gen.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/buf.h"
#include "agent/base/mem.h"

/* ------------------------------------------------------------------ PRNG */

struct rng {
    uint64_t s[4];
};

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* One independent stream per (seed, name). */
static void rng_seed(struct rng *r, uint64_t seed, const char *stream)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a of the stream name */
    for (const unsigned char *p = (const unsigned char *)stream; *p; p++)
        h = (h ^ *p) * 0x100000001b3ULL;
    uint64_t x = seed ^ h;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(struct rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

/* [0, n) for n > 0; modulo bias does not matter for test data. */
static uint64_t rng_below(struct rng *r, uint64_t n) { return rng_next(r) % n; }

/* [lo, hi], lo <= hi, any int64 span. */
static int64_t rng_range(struct rng *r, int64_t lo, int64_t hi)
{
    uint64_t span = (uint64_t)hi - (uint64_t)lo + 1;
    uint64_t v = span ? rng_below(r, span) : rng_next(r);
    return (int64_t)((uint64_t)lo + v);
}

static int rng_pct(struct rng *r, int pct) { return (int)rng_below(r, 100) < pct; }

/* ------------------------------------------------------------------ time */

/* Seconds since 1970 (UTC, no zones anywhere). */
#define T_DAY 86400
#define T_CLOCK_START INT64_C(1767225600)   /* 2026-01-01 00:00:00 = FAKEGEN_CLOCK_START */
#define T_LIMIT (T_CLOCK_START - 1)         /* every generated timestamp is <= this */
#define T_CREATED_LO INT64_C(1546300800)    /* 2019-01-01 */
#define T_CREATED_HI INT64_C(1764547200)    /* 2025-12-01 */
#define T_BATCH_START INT64_C(1748736000)   /* 2025-06-01: first EPG import batch */
#define T_EPG_START INT64_C(1766188800)     /* 2025-12-20: schedules begin */

/* Howard Hinnant's civil calendar algorithms. */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int64_t *m, int64_t *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yoe + era * 400 + (*m <= 2);
}

static char *put_digits(char *o, int64_t v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        o[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return o + width;
}

/* "YYYY-MM-DD HH:MM:SS", plus ".ffffff" when micros > 0; years 0..9999.
 * out holds >= 27 bytes; returns the length (no NUL written). Hand-rolled
 * because a snprintf per timestamp dominated the 1M-row load. */
static size_t fmt_ts(char *out, int64_t t, int micros, int date_only)
{
    int64_t days = t / T_DAY, sod = t % T_DAY;
    if (sod < 0) {
        sod += T_DAY;
        days--;
    }
    int64_t y, m, d;
    civil_from_days(days, &y, &m, &d);
    char *o = put_digits(out, y, 4);
    *o++ = '-';
    o = put_digits(o, m, 2);
    *o++ = '-';
    o = put_digits(o, d, 2);
    if (date_only)
        return (size_t)(o - out);
    *o++ = ' ';
    o = put_digits(o, sod / 3600, 2);
    *o++ = ':';
    o = put_digits(o, sod / 60 % 60, 2);
    *o++ = ':';
    o = put_digits(o, sod % 60, 2);
    if (micros > 0) {
        *o++ = '.';
        o = put_digits(o, micros, 6);
    }
    return (size_t)(o - out);
}

static int parse_num(const char *s, int n, int64_t *v)
{
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        *v = *v * 10 + (s[i] - '0');
    }
    return 0;
}

/* "YYYY-MM-DD HH:MM:SS" with an optional ".digits" (dropped: the clock only
 * moves in whole seconds). Returns 0 or -1. */
static int parse_ts(const char *s, int64_t *t)
{
    int64_t y, mo, d, h, mi, se;
    if (strlen(s) < 19 || s[4] != '-' || s[7] != '-' || s[10] != ' ' || s[13] != ':' ||
        s[16] != ':' || parse_num(s, 4, &y) || parse_num(s + 5, 2, &mo) ||
        parse_num(s + 8, 2, &d) || parse_num(s + 11, 2, &h) || parse_num(s + 14, 2, &mi) ||
        parse_num(s + 17, 2, &se) || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 ||
        mi > 59 || se > 59)
        return -1;
    const char *p = s + 19;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return -1;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p)
        return -1;
    *t = days_from_civil(y, mo, d) * T_DAY + h * 3600 + mi * 60 + se;
    return 0;
}

/* --------------------------------------------------------------- scratch */

/* One row's text. Sized far above the largest row (media: 74 fields, none over
 * ~4 KiB), so overflow cannot happen with these pools; it is still checked and
 * reported rather than truncating a JSON value into invalid text. */
#define SCRATCH_CAP ((size_t)1 << 20)

struct scratch {
    char *buf;     /* SCRATCH_CAP bytes */
    size_t used;   /* bytes handed out in this row */
    int overflow;  /* sticky until the row ends */
};

static void sc_putn(struct scratch *sc, const char *s, size_t n)
{
    if (sc->overflow || n >= SCRATCH_CAP - sc->used) {
        sc->overflow = 1;
        return;
    }
    memcpy(sc->buf + sc->used, s, n);
    sc->used += n;
}

static void sc_puts(struct scratch *sc, const char *s) { sc_putn(sc, s, strlen(s)); }
static void sc_putc(struct scratch *sc, char c) { sc_putn(sc, &c, 1); }

__attribute__((format(printf, 2, 3))) static void sc_fmt(struct scratch *sc, const char *fmt, ...)
{
    size_t room = SCRATCH_CAP - sc->used;
    va_list ap;
    va_start(ap, fmt);
    int n = sc->overflow ? -1 : vsnprintf(sc->buf + sc->used, room, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= room)
        sc->overflow = 1;
    else
        sc->used += (size_t)n;
}

static void sc_ts(struct scratch *sc, int64_t t, int micros, int date_only)
{
    char tmp[32];
    sc_putn(sc, tmp, fmt_ts(tmp, t, micros, date_only));
}

/* A JSON string literal: quotes, backslashes and control bytes escaped;
 * UTF-8 passes through. */
static void sc_json_str(struct scratch *sc, const char *s)
{
    sc_putc(sc, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': sc_puts(sc, "\\\""); break;
        case '\\': sc_puts(sc, "\\\\"); break;
        case '\n': sc_puts(sc, "\\n"); break;
        case '\r': sc_puts(sc, "\\r"); break;
        case '\t': sc_puts(sc, "\\t"); break;
        default:
            if (*p < 0x20)
                sc_fmt(sc, "\\u%04x", *p);
            else
                sc_putc(sc, (char)*p);
        }
    }
    sc_putc(sc, '"');
}

/* ----------------------------------------------------------------- pools */

#define NELEM(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const char *const P_PROGRAMS[] = {
    "Новости", "Время", "Доброе утро", "Пусть говорят", "Поле чудес", "Что? Где? Когда?",
    "Вечерний Ургант", "Жди меня", "Модный приговор", "Давай поженимся!", "Мужское / Женское",
    "Угадай мелодию", "Кто хочет стать миллионером?", "Футбол. Чемпионат России. \"Спартак\" - \"ЦСКА\"",
    "Хоккей. КХЛ", "Спокойной ночи, малыши!", "Вести", "Вести недели", "Сегодня",
    "Следствие вели...", "Д'Артаньян и три мушкетёра", "Х/ф \"Брат\"",
    "Ирония судьбы, или С лёгким паром!", "Мастер и Маргарита", "Х/ф «Москва слезам не верит»",
    "Т/с \"Улицы разбитых фонарей\"", "Смешарики", "Маша и Медведь", "Погода \\ Weather",
    "Прогноз погоды", "Документальный фильм", "Концерт", "Ералаш", "Орёл и решка",
    "Моя родословная", "На ножах", "Comedy Club", "The Big Bang Theory", "Friends",
    "BBC World News", "Nat Geo: Wild", "Ёжик в тумане", "Танцы со звёздами", "Голос. Дети",
    "Empty \"\" quotes", "Путь домой\tпремьера", "Служебная запись C:\\EPG\\import",
    "Шоу 'Вечер' с 'кавычками'", "Ночной эфир", "Телемагазин",
};

static const char *const P_SENTENCES[] = {
    "В программе: главные события дня.",
    "Ведущий расскажет о погоде на выходные.",
    "Гости студии обсуждают фильм \"Брат 2\" и его героев.",
    "Прямая трансляция из Москвы.",
    "Повтор от 12 марта.",
    "Серия 5: Д'Артаньян прибывает в Париж.",
    "Путь к файлу: C:\\Program Files\\EPG\\data.xml",
    "Цитата: «Сила в правде».",
    "Live coverage of the match, commentary in Russian.",
    "Часть 1.\tЧасть 2.",
    "Фильм получил премию \"Ника\" и приз зрителей.",
    "Ёлки, палки и ёжики — всё в одном выпуске.",
    "Регулярное выражение ^\\d+$ не сработало.",
    "She said: \"it's fine\" — and left.",
    "Программа может быть изменена.",
    "Эфир ведётся с сурдопереводом.",
    "В главных ролях: Сергей Бодров, Виктор Сухоруков.",
    "Тест юникода: ½ € ™ — 日本語.",
    "",
    "Обратный слеш в конце строки \\",
};

static const char *const P_CHANNELS[] = {
    "Первый канал", "Россия 1", "Матч ТВ", "НТВ", "Пятый канал", "Россия К", "Россия 24",
    "Карусель", "ОТР", "ТВ Центр", "РЕН ТВ", "Спас", "СТС", "Домашний", "ТВ-3", "Пятница!",
    "Звезда", "Мир", "ТНТ", "Муз-ТВ", "Дом кино", "Кинопоказ", "Nickelodeon",
    "Discovery Channel", "Eurosport 1", "MTV", "Радио \"Маяк\"", "Europa Plus", "Ретро FM",
    "Канал 'Ностальгия'", "Ю", "Че", "Суббота!", "Солнце", "Мульт", "Boomerang",
    "Travel+Adventure", "Охота и рыбалка", "Ёлка ТВ", "Back\\slash TV",
};

static const char *const P_CATEGORIES[] = {
    "Общие", "Новостные", "Спортивные", "Детские", "Фильмы", "Сериалы", "Музыка",
    "Познавательные", "Развлекательные", "Региональные", "HD", "4K", "Радио", "Религиозные",
    "Бизнес", "Кулинария", "Путешествия", "Охота и рыбалка", "Мода", "Автомобили",
    "Документальные", "Юмор", "Наука", "История", "Природа", "Взрослые 18+", "Международные",
    "English", "Deutsch", "Français", "Архив", "Тестовые", "Премиум", "Базовый пакет",
    "Пакет \"Кино\"", "O'Kids", "Back\\slash", "Tab\tname", "", "Прочие",
};

static const char *const P_PACKAGES[] = {
    "Базовый", "Расширенный", "Премиум", "Кино", "Спорт", "Детский", "Взрослый 18+",
    "Матч! Премьер", "Amediateka", "Viju", "Start", "Пакет \"Наш футбол\"", "Ultra HD",
    "Радио", "Тест", "Архив", "Муз", "Познавательный", "Региональный", "Социальный",
    "Гостевой", "Отель", "Семейный", "Максимальный", "Промо 'лето'",
};

static const char *const P_FIRST[] = {
    "Иван", "Пётр", "Сергей", "Анна", "Мария", "Ольга", "Алексей", "Дмитрий", "Екатерина",
    "Наталья", "Юрий", "Элла", "John", "Mary", "D'Arcy", "Zoë",
};
static const char *const P_LAST[] = {
    "Иванов", "Петрова", "Смирнов", "Кузнецова", "Попов", "Соколова", "Лебедев", "Козлова",
    "Новиков", "Морозова", "Ёлкин", "O'Brien", "Smith", "Müller", "Д'Артаньян",
};
static const char *const P_LOGIN[] = {
    "ivanov", "petrova", "smirnov", "user", "tv", "home", "kv", "office", "hotel",
    "admin.test", "o'neil", "иван", "abonent", "test_",
};
static const char *const P_DOMAINS[] = {
    "mail.ru", "yandex.ru", "gmail.com", "example.org", "почта.рф", "rambler.ru",
};
static const char *const P_TAGS[] = {
    "vip", "тест", "promo \"2025\"", "back\\slash", "должник", "корпоративный", "new",
    "tab\there", "", "line\nbreak", "семья", "hotel",
};
static const char *const P_COMMENTS[] = {
    "Звонил в поддержку, просил перезвонить.",
    "Переезд: адрес 'ул. Ленина, д. 5'.",
    "Оплата через \"Сбербанк Онлайн\".",
    "C:\\Users\\operator\\notes.txt",
    "Line one\nLine two",
    "",
};
static const char *const P_MODELS[] = {
    "MAG 250", "MAG 322w1", "MAG 524", "Eltex NV-711", "Amino A140", "Android TV",
    "Samsung Smart TV", "LG webOS", "Apple TV 4K", "Kodi \"Nexus\"", "ТВ-приставка Ростелеком",
    "Formuler Z8", "Dune HD TV-175",
};
static const char *const P_LANGS[] = { "ru", "en", "uk", "kk", "be", "de", "fr", "tt" };
static const char *const P_GENRES[] = {
    "драма", "комедия", "боевик", "триллер", "мелодрама", "фантастика", "ужасы",
    "мультфильм", "документальный", "военный", "детектив", "семейный", "музыка",
    "sci-fi", "кино \"не для всех\"",
};
static const char *const P_COUNTRIES[] = {
    "Россия", "СССР", "США", "Франция", "Великобритания", "Германия", "Италия", "Япония",
    "Казахстан", "Беларусь", "Кот-д'Ивуар",
};
static const char *const P_STUDIOS[] = {
    "Мосфильм", "Ленфильм", "СТВ", "Bazelevs", "Warner Bros.", "Studio \"Ghibli\"",
    "Союзмультфильм", "A24",
};
static const char *const P_FILMS[] = {
    "Брат", "Брат 2", "Ирония судьбы", "Москва слезам не верит", "Джентльмены удачи",
    "Бриллиантовая рука", "Операция «Ы» и другие приключения Шурика",
    "Иван Васильевич меняет профессию", "Сталкер", "Солярис", "Левиафан", "Т-34",
    "Движение вверх", "Холоп", "Легенда №17", "Экипаж", "Чебурашка", "Мастер и Маргарита",
    "Interstellar", "The Godfather", "Pulp Fiction", "Amélie", "Léon",
    "O Brother, Where Art Thou?", "\"Crocodile\" Dundee", "Путь\\Дорога", "WALL·E",
    "Ёжик в тумане", "Служебный роман", "Кавказская пленница",
};
static const char *const P_ORIG[] = {
    "Brother", "The Irony of Fate", "Moscow Does Not Believe in Tears", "Stalker", "Solaris",
    "Leviathan", "The Godfather", "Pulp Fiction", "Le Fabuleux Destin d'Amélie Poulain",
    "Léon: The Professional", "WALL·E",
};
static const char *const P_SLOGANS[] = {
    "Вся власть — в правде", "\"In space no one can hear you scream\"", "Это не шутка!",
    "Don't panic", "Смотрите в кино\nс 1 января",
};
static const char *const P_CURRENCIES[] = { "RUB", "USD", "EUR", "KZT" };
static const char *const P_QUALITY[] = { "SD", "HD", "FullHD", "UHD", "4K HDR" };
static const char *const P_CODECS[] = { "h264", "hevc", "av1", "mpeg2", "vp9" };
static const char *const P_PROVIDERS[] = {
    "Амедиатека", "Кинопоиск", "Start", "Okko", "ivi", "Premier", "\"Дом кино\" ООО",
    "Provider\\Test",
};
static const char *const P_AUDIO_CODECS[] = { "aac", "ac3", "eac3", "dts", "mp2" };

static const int64_t I_AGE[] = { 0, 6, 12, 16, 18 };
static const int64_t I_WIDTH[] = { 720, 1280, 1920, 3840 };
static const int64_t I_HEIGHT[] = { 576, 720, 1080, 2160 };
static const double D_ASPECT[] = { 4.0 / 3.0, 16.0 / 9.0, 1.85, 2.35, 2.39 };
static const double D_FPS[] = { 23.976, 24.0, 25.0, 29.97, 50.0, 59.94 };
/* EPG programme lengths, seconds. */
static const int64_t I_DURATIONS[] = { 300, 600, 900, 1200, 1500, 1800, 2700, 3000, 3600,
                                       5400, 6000, 7200, 9000, 10800 };

/* ----------------------------------------------------------- table specs */

enum kind {
    K_ID,          /* the row id */
    K_CREATED,     /* row's created_at */
    K_UPDATED,     /* row's updated_at */
    K_SEQ,         /* row number * a (sort orders) */
    K_SEQ_PICK,    /* pool[row number % n] (lookup names) */
    K_INT,         /* uniform [a, b] */
    K_INT_PICK,    /* one of ints[] */
    K_REAL,        /* uniform [a, b] / 10^dec */
    K_REAL_PICK,   /* one of dbls[] */
    K_BOOL,        /* true in a percent of rows */
    K_PICK,        /* one of pool[] */
    K_TS,          /* any timestamp before the clock, some with micros */
    K_DATE,        /* "YYYY-MM-DD", 1925..2025 */
    K_SENTENCES,   /* a..b sentences joined by space or newline */
    K_JSON_STRS,   /* JSON array of a..b strings from pool[] */
    K_JSON_PERSONS,/* JSON array of a..b person names */
    K_FK_CAT,      /* an existing tv_category id */
    K_FK_PKG,      /* an existing package id */
    K_FK_SUB,      /* an existing subscriber id */
    K_PROG_CHANNEL,/* tv_program.channel_id (schedule block or random channel) */
    K_PROG_TITLE,
    K_PROG_START,
    K_PROG_STOP,
    K_PROG_DURATION,
    K_LINK_PROGRAM,/* tv_program_category.program_id */
    K_CHAN_NAME,
    K_CHAN_URL,
    K_EPG_ID,
    K_LOGO,
    K_IS_TV,
    K_IS_RADIO,
    K_CHAN_PARAMS, /* JSON object */
    K_USERNAME,
    K_PWHASH,
    K_EMAIL,
    K_MAC,
    K_SERIAL,
    K_SETTINGS,    /* JSON object, nested */
    K_MEDIA_NAME,
    K_MEDIA_TITLE,
    K_AUDIO,       /* JSON array of objects */
    K_IMG_URL,
    K_VIDEO_URL,
    K_STREAM_URL,
    K_IMDB,
    K_MEDIA_EXTRA, /* JSON object with a > 2^53 integer */
    K_EXTERNAL_ID,
};

struct colspec {
    const char *name;
    const char *decl;        /* declared SQLite type: the catalog's source of truth */
    enum kind kind;
    int null_pct;            /* NULL in this percent of rows (0 = NOT NULL in practice) */
    int mut;                 /* rewritten by mutate's UPDATE */
    int64_t a, b;            /* kind parameters (ranges, counts, percent) */
    int dec;                 /* K_REAL: decimal places */
    const char *const *pool; /* K_PICK, K_SEQ_PICK, K_JSON_STRS */
    const int64_t *ints;     /* K_INT_PICK */
    const double *dbls;      /* K_REAL_PICK */
    int n;                   /* entries in pool / ints / dbls */
};

#define C(nm, ty, k) { .name = nm, .decl = ty, .kind = k }
#define POOL(p) .pool = p, .n = NELEM(p)
#define INTS(p) .ints = p, .n = NELEM(p)
#define DBLS(p) .dbls = p, .n = NELEM(p)

static const struct colspec COLS_TV_CATEGORY[] = {
    C("id", "INTEGER", K_ID),
    { .name = "name", .decl = "TEXT", .kind = K_SEQ_PICK, POOL(P_CATEGORIES) },
    { .name = "sort_order", .decl = "INTEGER", .kind = K_SEQ, .a = 10 },
};

static const struct colspec COLS_PACKAGE[] = {
    C("id", "INTEGER", K_ID),
    { .name = "name", .decl = "TEXT", .kind = K_SEQ_PICK, POOL(P_PACKAGES) },
    { .name = "paid", .decl = "BOOLEAN", .kind = K_BOOL, .a = 70 },
};

static const struct colspec COLS_TV_CHANNEL[] = {
    C("id", "INTEGER", K_ID),
    { .name = "name", .decl = "TEXT", .kind = K_CHAN_NAME, .mut = 1 },
    { .name = "url", .decl = "TEXT", .kind = K_CHAN_URL, .mut = 1 },
    { .name = "epg_id", .decl = "TEXT", .kind = K_EPG_ID, .null_pct = 8 },
    { .name = "logo", .decl = "TEXT", .kind = K_LOGO, .null_pct = 10, .mut = 1 },
    C("is_tv", "BOOLEAN", K_IS_TV),
    C("is_radio", "BOOLEAN", K_IS_RADIO),
    { .name = "sort_order", .decl = "INTEGER", .kind = K_SEQ, .a = 10, .mut = 1 },
    { .name = "category_id", .decl = "INTEGER", .kind = K_FK_CAT, .null_pct = 5 },
    { .name = "languages", .decl = "JSON", .kind = K_JSON_STRS, .a = 1, .b = 3, POOL(P_LANGS) },
    { .name = "params", .decl = "JSON", .kind = K_CHAN_PARAMS, .null_pct = 6, .mut = 1 },
    C("created_at", "TIMESTAMP", K_CREATED),
    C("updated_at", "TIMESTAMP", K_UPDATED),
};

static const struct colspec COLS_SUBSCRIBER[] = {
    C("id", "INTEGER", K_ID),
    C("username", "TEXT", K_USERNAME),
    C("password_hash", "TEXT", K_PWHASH),
    { .name = "disabled", .decl = "BOOLEAN", .kind = K_BOOL, .a = 7, .mut = 1 },
    { .name = "balance", .decl = "REAL", .kind = K_REAL, .a = -500000, .b = 5000000, .dec = 2,
      .mut = 1 },
    { .name = "email", .decl = "TEXT", .kind = K_EMAIL, .null_pct = 8, .mut = 1 },
    C("created_at", "TIMESTAMP", K_CREATED),
    C("updated_at", "TIMESTAMP", K_UPDATED),
    { .name = "tags", .decl = "JSON", .kind = K_JSON_STRS, .null_pct = 7, .mut = 1, .a = 0,
      .b = 4, POOL(P_TAGS) },
    { .name = "comment", .decl = "TEXT", .kind = K_PICK, .null_pct = 10, .mut = 1,
      POOL(P_COMMENTS) },
};

static const struct colspec COLS_TERMINAL[] = {
    C("id", "INTEGER", K_ID),
    C("subscriber_id", "INTEGER", K_FK_SUB),
    C("mac_addr", "TEXT", K_MAC),
    { .name = "model", .decl = "TEXT", .kind = K_PICK, .mut = 1, POOL(P_MODELS) },
    { .name = "serial", .decl = "TEXT", .kind = K_SERIAL, .null_pct = 6 },
    { .name = "active", .decl = "BOOLEAN", .kind = K_BOOL, .a = 85, .mut = 1 },
    C("created_at", "TIMESTAMP", K_CREATED),
    C("updated_at", "TIMESTAMP", K_UPDATED),
    { .name = "settings", .decl = "JSON", .kind = K_SETTINGS, .mut = 1 },
};

static const struct colspec COLS_TV_PROGRAM[] = {
    C("id", "INTEGER", K_ID),
    C("created_at", "TIMESTAMP", K_CREATED),
    C("updated_at", "TIMESTAMP", K_UPDATED),
    C("channel_id", "INTEGER", K_PROG_CHANNEL),
    { .name = "title", .decl = "TEXT", .kind = K_PROG_TITLE, .mut = 1 },
    { .name = "description", .decl = "TEXT", .kind = K_SENTENCES, .null_pct = 8, .mut = 1,
      .a = 1, .b = 4, POOL(P_SENTENCES) },
    { .name = "start", .decl = "TIMESTAMP", .kind = K_PROG_START, .mut = 1 },
    { .name = "stop", .decl = "TIMESTAMP", .kind = K_PROG_STOP, .mut = 1 },
    { .name = "duration", .decl = "INTEGER", .kind = K_PROG_DURATION, .mut = 1 },
    { .name = "age_rating", .decl = "INTEGER", .kind = K_INT_PICK, .null_pct = 10, .mut = 1,
      INTS(I_AGE) },
    { .name = "is_live", .decl = "BOOLEAN", .kind = K_BOOL, .a = 5, .mut = 1 },
};

static const struct colspec COLS_TV_PROGRAM_CATEGORY[] = {
    C("id", "INTEGER", K_ID),
    C("program_id", "INTEGER", K_LINK_PROGRAM),
    C("category_id", "INTEGER", K_FK_CAT),
};

#define INT53 (INT64_C(1) << 53)

static const struct colspec COLS_MEDIA[] = {
    C("id", "INTEGER", K_ID),
    C("name", "TEXT", K_MEDIA_NAME),
    C("title", "TEXT", K_MEDIA_TITLE),
    { .name = "orig_title", .decl = "TEXT", .kind = K_PICK, .null_pct = 30, POOL(P_ORIG) },
    { .name = "description", .decl = "TEXT", .kind = K_SENTENCES, .null_pct = 5, .a = 2, .b = 6,
      POOL(P_SENTENCES) },
    { .name = "short_description", .decl = "TEXT", .kind = K_SENTENCES, .null_pct = 10,
      .a = 1, .b = 1, POOL(P_SENTENCES) },
    { .name = "slogan", .decl = "TEXT", .kind = K_PICK, .null_pct = 40, POOL(P_SLOGANS) },
    { .name = "year", .decl = "INTEGER", .kind = K_INT, .null_pct = 3, .a = 1925, .b = 2025 },
    { .name = "duration", .decl = "INTEGER", .kind = K_INT, .a = 600, .b = 14400 },
    { .name = "rating", .decl = "REAL", .kind = K_REAL, .null_pct = 8, .mut = 1, .a = 10,
      .b = 100, .dec = 1 },
    { .name = "rating_imdb", .decl = "REAL", .kind = K_REAL, .null_pct = 20, .a = 10, .b = 99,
      .dec = 1 },
    { .name = "rating_kinopoisk", .decl = "REAL", .kind = K_REAL, .null_pct = 20, .a = 1000,
      .b = 9999, .dec = 3 },
    { .name = "votes_imdb", .decl = "INTEGER", .kind = K_INT, .mut = 1, .a = 0, .b = 3000000 },
    { .name = "votes_kinopoisk", .decl = "INTEGER", .kind = K_INT, .a = 0, .b = 1500000 },
    { .name = "age_rating", .decl = "INTEGER", .kind = K_INT_PICK, .null_pct = 5, INTS(I_AGE) },
    { .name = "genres", .decl = "JSON", .kind = K_JSON_STRS, .a = 1, .b = 3, POOL(P_GENRES) },
    { .name = "countries", .decl = "JSON", .kind = K_JSON_STRS, .a = 1, .b = 2,
      POOL(P_COUNTRIES) },
    { .name = "actors", .decl = "JSON", .kind = K_JSON_PERSONS, .a = 0, .b = 8 },
    { .name = "directors", .decl = "JSON", .kind = K_JSON_PERSONS, .a = 1, .b = 2 },
    { .name = "producers", .decl = "JSON", .kind = K_JSON_PERSONS, .null_pct = 30, .a = 0,
      .b = 3 },
    { .name = "studios", .decl = "JSON", .kind = K_JSON_STRS, .null_pct = 20, .a = 1, .b = 2,
      POOL(P_STUDIOS) },
    { .name = "keywords", .decl = "JSON", .kind = K_JSON_STRS, .null_pct = 15, .a = 0, .b = 5,
      POOL(P_TAGS) },
    { .name = "languages", .decl = "JSON", .kind = K_JSON_STRS, .a = 1, .b = 3, POOL(P_LANGS) },
    C("audio_tracks", "JSON", K_AUDIO),
    { .name = "subtitles", .decl = "JSON", .kind = K_JSON_STRS, .a = 0, .b = 3, POOL(P_LANGS) },
    C("poster", "TEXT", K_IMG_URL),
    { .name = "poster_wide", .decl = "TEXT", .kind = K_IMG_URL, .null_pct = 20 },
    { .name = "backdrop", .decl = "TEXT", .kind = K_IMG_URL, .null_pct = 25 },
    { .name = "trailer_url", .decl = "TEXT", .kind = K_VIDEO_URL, .null_pct = 30 },
    C("url", "TEXT", K_VIDEO_URL),
    C("stream_url", "TEXT", K_STREAM_URL),
    { .name = "is_series", .decl = "BOOLEAN", .kind = K_BOOL, .a = 20 },
    { .name = "season", .decl = "INTEGER", .kind = K_INT, .null_pct = 60, .a = 1, .b = 12 },
    { .name = "episode", .decl = "INTEGER", .kind = K_INT, .null_pct = 60, .a = 1, .b = 40 },
    { .name = "parent_id", .decl = "INTEGER", .kind = K_INT, .null_pct = 80, .a = INT53,
      .b = INT64_MAX },
    { .name = "kinopoisk_id", .decl = "INTEGER", .kind = K_INT, .a = 300, .b = 5000000 },
    { .name = "imdb_id", .decl = "TEXT", .kind = K_IMDB, .null_pct = 15 },
    { .name = "tmdb_id", .decl = "INTEGER", .kind = K_INT, .null_pct = 20, .a = 1, .b = 1200000 },
    { .name = "price", .decl = "REAL", .kind = K_REAL, .mut = 1, .a = 0, .b = 149999, .dec = 2 },
    { .name = "currency", .decl = "TEXT", .kind = K_PICK, POOL(P_CURRENCIES) },
    { .name = "is_free", .decl = "BOOLEAN", .kind = K_BOOL, .a = 15 },
    { .name = "is_hd", .decl = "BOOLEAN", .kind = K_BOOL, .a = 70 },
    { .name = "is_4k", .decl = "BOOLEAN", .kind = K_BOOL, .a = 15 },
    { .name = "is_3d", .decl = "BOOLEAN", .kind = K_BOOL, .a = 3 },
    { .name = "quality", .decl = "TEXT", .kind = K_PICK, POOL(P_QUALITY) },
    { .name = "release_date", .decl = "TEXT", .kind = K_DATE, .null_pct = 10 },
    { .name = "premiere_date", .decl = "TEXT", .kind = K_DATE, .null_pct = 30 },
    C("available_from", "TIMESTAMP", K_TS),
    { .name = "available_to", .decl = "TIMESTAMP", .kind = K_TS, .null_pct = 50 },
    { .name = "views_count", .decl = "INTEGER", .kind = K_INT, .mut = 1, .a = 0, .b = 50000000 },
    { .name = "likes", .decl = "INTEGER", .kind = K_INT, .mut = 1, .a = 0, .b = 200000 },
    { .name = "dislikes", .decl = "INTEGER", .kind = K_INT, .mut = 1, .a = 0, .b = 50000 },
    { .name = "sort_order", .decl = "INTEGER", .kind = K_SEQ, .a = 1 },
    { .name = "provider_id", .decl = "INTEGER", .kind = K_INT, .a = 1, .b = 40 },
    { .name = "provider_name", .decl = "TEXT", .kind = K_PICK, POOL(P_PROVIDERS) },
    { .name = "package_id", .decl = "INTEGER", .kind = K_FK_PKG, .null_pct = 10 },
    { .name = "category_id", .decl = "INTEGER", .kind = K_FK_CAT, .null_pct = 10 },
    { .name = "budget", .decl = "INTEGER", .kind = K_INT, .null_pct = 40, .a = 100000,
      .b = 400000000 },
    { .name = "box_office", .decl = "INTEGER", .kind = K_INT, .null_pct = 50, .a = 0,
      .b = 3000000000 },
    { .name = "file_size", .decl = "INTEGER", .kind = K_INT, .a = 100000000, .b = 120000000000 },
    { .name = "bitrate", .decl = "INTEGER", .kind = K_INT, .a = 800, .b = 40000 },
    { .name = "width", .decl = "INTEGER", .kind = K_INT_PICK, INTS(I_WIDTH) },
    { .name = "height", .decl = "INTEGER", .kind = K_INT_PICK, INTS(I_HEIGHT) },
    { .name = "aspect_ratio", .decl = "REAL", .kind = K_REAL_PICK, DBLS(D_ASPECT) },
    { .name = "fps", .decl = "REAL", .kind = K_REAL_PICK, DBLS(D_FPS) },
    { .name = "codec", .decl = "TEXT", .kind = K_PICK, POOL(P_CODECS) },
    { .name = "drm", .decl = "BOOLEAN", .kind = K_BOOL, .a = 40 },
    { .name = "enabled", .decl = "BOOLEAN", .kind = K_BOOL, .a = 92, .mut = 1 },
    { .name = "archived", .decl = "BOOLEAN", .kind = K_BOOL, .a = 5 },
    { .name = "extra", .decl = "JSON", .kind = K_MEDIA_EXTRA, .null_pct = 10, .mut = 1 },
    { .name = "comment", .decl = "TEXT", .kind = K_PICK, .null_pct = 70, POOL(P_COMMENTS) },
    { .name = "external_id", .decl = "TEXT", .kind = K_EXTERNAL_ID, .null_pct = 20 },
    C("created_at", "TIMESTAMP", K_CREATED),
    C("updated_at", "TIMESTAMP", K_UPDATED),
};

enum tab {
    T_TV_CATEGORY, T_PACKAGE, T_TV_CHANNEL, T_SUBSCRIBER, T_TERMINAL, T_MEDIA, T_TV_PROGRAM,
    T_TV_PROGRAM_CATEGORY, T_COUNT
};

enum ts_policy {
    TS_NONE,     /* no timestamp columns */
    TS_GENERAL,  /* created uniform 2019..2025-12, updated later or equal, bulk runs */
    TS_PROGRAM,  /* EPG import batches sharing one updated_at second */
};

struct tabspec {
    const char *name;
    const struct colspec *cols;
    int ncols;
    int64_t rows;       /* per unit of scale (scaled) or fixed; tv_program* computed */
    int scaled;         /* rows * opts.scale */
    int64_t id_start;   /* first id */
    int64_t id_gap;     /* ids step by [1, id_gap], at create and at mutate inserts */
    int spread;         /* ids spread from id_start toward ID_TOP (media) */
    enum ts_policy ts;
    int bulk_pct;       /* TS_GENERAL: share of rows whose updated_at is a bulk-run second */
};

/* Media ids stop this far below INT64_MAX so inserts (gap <= id_gap) have room. */
#define ID_TOP (INT64_MAX - (INT64_C(1) << 32))

#define COLS(a) a, NELEM(a)
static const struct tabspec TABLES[T_COUNT] = {
    [T_TV_CATEGORY] = { "tv_category", COLS(COLS_TV_CATEGORY), NELEM(P_CATEGORIES), 0, 1, 1, 0,
                        TS_NONE, 0 },
    [T_PACKAGE] = { "package", COLS(COLS_PACKAGE), NELEM(P_PACKAGES), 0, 1, 3, 0, TS_NONE, 0 },
    [T_TV_CHANNEL] = { "tv_channel", COLS(COLS_TV_CHANNEL), 2000, 1, 1, 3, 0, TS_GENERAL, 25 },
    [T_SUBSCRIBER] = { "subscriber", COLS(COLS_SUBSCRIBER), 5000, 1,
                       (INT64_C(1) << 40) + 17, 1000, 0, TS_GENERAL, 20 },
    [T_TERMINAL] = { "terminal", COLS(COLS_TERMINAL), 8000, 1, 1000003, 5, 0, TS_GENERAL, 10 },
    [T_MEDIA] = { "media", COLS(COLS_MEDIA), 3000, 1, INT53 + 1, 1000, 1, TS_GENERAL, 30 },
    [T_TV_PROGRAM] = { "tv_program", COLS(COLS_TV_PROGRAM), 0, 0, 500000001, 7, 0, TS_PROGRAM,
                       0 },
    [T_TV_PROGRAM_CATEGORY] = { "tv_program_category", COLS(COLS_TV_PROGRAM_CATEGORY), 0, 0,
                                1, 3, 0, TS_NONE, 0 },
};

/* Tables mutate accepts (they have updated_at), in the order NULL expands to. */
static const enum tab MUTABLE[] = { T_SUBSCRIBER, T_TERMINAL, T_TV_PROGRAM, T_TV_CHANNEL,
                                    T_MEDIA };
#define MUTABLE_DEFAULT 3 /* table NULL = the first three */

/* ------------------------------------------------------------- generator */

/* Ids of a referenced table: an array at create (filled while that table was
 * generated), a probe statement at mutate ("first id >= random point"). */
struct fkref {
    enum tab table;
    int64_t *ids;          /* create: owned, n entries */
    size_t n, cap;
    sqlite3_stmt *probe;   /* mutate: owned; NULL until first use */
    int64_t min, max;      /* mutate: id range; empty when !have */
    int have;
};

enum { FK_CAT, FK_PKG, FK_CHAN, FK_SUB, FK_COUNT };

/* One row being generated. */
struct row {
    int64_t id;
    int64_t seq;                /* row number at create; random at mutate */
    int64_t created, updated;   /* seconds */
    int created_us, updated_us; /* micros, 0 = printed without a fraction */
    int64_t start, duration;    /* tv_program */
    int64_t channel;            /* tv_program create: this block's channel */
    int have_channel;
    int64_t link_program;       /* tv_program_category.program_id */
    int chan_kind;              /* tv_channel: 0 radio, 1 tv, 2 neither (service) */
};

struct gen {
    sqlite3 *db;
    struct scratch sc;
    int mutate;                 /* 0 create, 1 mutate */
    struct fkref fk[FK_COUNT];
    /* tv_program at create: the EPG import timeline */
    int64_t prog_rows;          /* rows being created (channel blocks) */
    int64_t chan_block;         /* current channel index, -1 before the first */
    int64_t sched;              /* next programme start on the current channel */
    int64_t batch_ts, batch_left, batch_step_max;
    char *err;
    size_t errlen;
};

__attribute__((format(printf, 2, 3))) static int fail(struct gen *g, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (g->errlen)
        vsnprintf(g->err, g->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static int fail_sql(struct gen *g, const char *table, const char *what)
{
    return fail(g, "fakegen: table %s: %s: %s", table, what, sqlite3_errmsg(g->db));
}

static void gen_init(struct gen *g, sqlite3 *db, int mutate, char *err, size_t errlen)
{
    memset(g, 0, sizeof *g);
    g->db = db;
    g->mutate = mutate;
    g->err = err;
    g->errlen = errlen;
    g->sc.buf = xmalloc(SCRATCH_CAP);
    g->fk[FK_CAT].table = T_TV_CATEGORY;
    g->fk[FK_PKG].table = T_PACKAGE;
    g->fk[FK_CHAN].table = T_TV_CHANNEL;
    g->fk[FK_SUB].table = T_SUBSCRIBER;
    g->chan_block = -1;
}

static void gen_free(struct gen *g)
{
    free(g->sc.buf);
    for (int i = 0; i < FK_COUNT; i++) {
        free(g->fk[i].ids);
        sqlite3_finalize(g->fk[i].probe);
    }
}

static void fk_add(struct fkref *f, int64_t id)
{
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 64;
        f->ids = xrealloc(f->ids, f->cap * sizeof *f->ids);
    }
    f->ids[f->n++] = id;
}

/* min/max of a table's ids; *have = 0 when it is empty. */
static int id_range(struct gen *g, const char *table, int64_t *mn, int64_t *mx, int *have)
{
    char sql[192];
    /* Two subqueries: SQLite answers a lone min() or max() from the b-tree's
     * edge, but "SELECT min(id), max(id)" scans the whole table. */
    snprintf(sql, sizeof sql, "SELECT (SELECT min(id) FROM \"%s\"), (SELECT max(id) FROM \"%s\")",
             table, table);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(g->db, sql, -1, &st, NULL) != SQLITE_OK)
        return fail_sql(g, table, "reading id range");
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(st);
        return fail_sql(g, table, "reading id range");
    }
    *have = sqlite3_column_type(st, 0) != SQLITE_NULL;
    *mn = sqlite3_column_int64(st, 0);
    *mx = sqlite3_column_int64(st, 1);
    sqlite3_finalize(st);
    return 0;
}

static int prepare_probe(struct gen *g, const char *table, sqlite3_stmt **st)
{
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT id FROM \"%s\" WHERE id >= ?1 ORDER BY id LIMIT 1", table);
    if (sqlite3_prepare_v2(g->db, sql, -1, st, NULL) != SQLITE_OK)
        return fail_sql(g, table, "preparing id probe");
    return 0;
}

/* The first id >= a uniform point of [min, max]: O(log n), biased toward ids
 * after wide gaps, which is fine for picking "some existing row". */
static int probe_id(struct gen *g, struct rng *r, sqlite3_stmt *st, const char *table,
                    int64_t mn, int64_t mx, int64_t *id)
{
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, rng_range(r, mn, mx));
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
        return 0;
    }
    if (rc == SQLITE_DONE) { /* cannot happen while max exists; stay defined anyway */
        *id = mx;
        return 0;
    }
    return fail_sql(g, table, "probing ids");
}

/* An existing id of the referenced table; *found = 0 when it has none. */
static int fk_pick(struct gen *g, struct rng *r, struct fkref *f, int64_t *id, int *found)
{
    const char *table = TABLES[f->table].name;
    *found = 0;
    if (!g->mutate) {
        if (f->n) {
            *id = f->ids[rng_below(r, f->n)];
            *found = 1;
        }
        return 0;
    }
    if (!f->probe) {
        if (id_range(g, table, &f->min, &f->max, &f->have) ||
            prepare_probe(g, table, &f->probe))
            return -1;
    }
    if (!f->have)
        return 0;
    *found = 1;
    return probe_id(g, r, f->probe, table, f->min, f->max, id);
}

/* ------------------------------------------------------- value generation */

static const char *pick(struct rng *r, const char *const *pool, int n)
{
    return pool[rng_below(r, (uint64_t)n)];
}

static void gen_sentences(struct rng *r, struct scratch *sc, const char *const *pool, int n,
                          int64_t lo, int64_t hi)
{
    int64_t k = rng_range(r, lo, hi);
    for (int64_t i = 0; i < k; i++) {
        if (i)
            sc_puts(sc, rng_pct(r, 15) ? "\n" : " ");
        sc_puts(sc, pick(r, pool, n));
    }
}

/* A JSON array of lo..hi distinct pool entries (distinct: a partial shuffle of
 * indexes; pools are < 64 entries). */
static void gen_json_strs(struct rng *r, struct scratch *sc, const char *const *pool, int n,
                          int64_t lo, int64_t hi)
{
    int idx[64];
    int m = n < 64 ? n : 64;
    for (int i = 0; i < m; i++)
        idx[i] = i;
    int64_t k = rng_range(r, lo, hi);
    if (k > m)
        k = m;
    sc_putc(sc, '[');
    for (int i = 0; i < k; i++) {
        int j = i + (int)rng_below(r, (uint64_t)(m - i));
        int t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
        if (i)
            sc_putc(sc, ',');
        sc_json_str(sc, pool[idx[i]]);
    }
    sc_putc(sc, ']');
}

static void gen_json_persons(struct rng *r, struct scratch *sc, int64_t lo, int64_t hi)
{
    char name[256];
    int64_t k = rng_range(r, lo, hi);
    sc_putc(sc, '[');
    for (int64_t i = 0; i < k; i++) {
        snprintf(name, sizeof name, "%s %s", pick(r, P_FIRST, NELEM(P_FIRST)),
                 pick(r, P_LAST, NELEM(P_LAST)));
        if (i)
            sc_putc(sc, ',');
        sc_json_str(sc, name);
    }
    sc_putc(sc, ']');
}

static void gen_hex(struct rng *r, struct scratch *sc, int n, int upper)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    for (int i = 0; i < n; i++)
        sc_putc(sc, digits[rng_below(r, 16)]);
}

static void gen_prog_title(struct rng *r, struct scratch *sc)
{
    if (rng_pct(r, 1))
        return; /* an empty title: the portal has them */
    sc_puts(sc, pick(r, P_PROGRAMS, NELEM(P_PROGRAMS)));
    if (rng_pct(r, 25))
        sc_fmt(sc, " (сезон %d, серия %d)", (int)rng_range(r, 1, 12), (int)rng_range(r, 1, 40));
    else if (rng_pct(r, 5))
        sc_puts(sc, rng_pct(r, 50) ? " 16+" : " [повтор]");
}

static void gen_chan_params(struct rng *r, struct scratch *sc)
{
    if (rng_pct(r, 5)) {
        sc_puts(sc, "{}");
        return;
    }
    sc_fmt(sc, "{\"bitrate\":%d,\"hd\":%s,\"archive_days\":%d,\"ratio\":%.4f,\"note\":",
           (int)rng_range(r, 500, 20000), rng_pct(r, 60) ? "true" : "false",
           (int)rng_range(r, 0, 14), (double)rng_range(r, 10000, 30000) / 10000.0);
    sc_json_str(sc, pick(r, P_COMMENTS, NELEM(P_COMMENTS)));
    sc_puts(sc, rng_pct(r, 20) ? ",\"multicast\":null}" : "}");
}

static void gen_settings(struct rng *r, struct scratch *sc)
{
    sc_fmt(sc, "{\"lang\":\"%s\",\"tz\":\"%s\",\"volume\":%d,\"parental_pin\":\"%04d\","
               "\"favorites\":[",
           pick(r, P_LANGS, NELEM(P_LANGS)), rng_pct(r, 80) ? "Europe/Moscow" : "Asia/Almaty",
           (int)rng_range(r, 0, 100), (int)rng_range(r, 0, 9999));
    int64_t k = rng_range(r, 0, 5);
    for (int64_t i = 0; i < k; i++)
        sc_fmt(sc, "%s%d", i ? "," : "", (int)rng_range(r, 1, 20000));
    sc_fmt(sc, "],\"screen\":{\"w\":%d,\"h\":%d},\"label\":",
           (int)I_WIDTH[rng_below(r, NELEM(I_WIDTH))],
           (int)I_HEIGHT[rng_below(r, NELEM(I_HEIGHT))]);
    sc_json_str(sc, pick(r, P_TAGS, NELEM(P_TAGS)));
    sc_putc(sc, '}');
}

static void gen_audio(struct rng *r, struct scratch *sc)
{
    int64_t k = rng_range(r, 1, 3);
    sc_putc(sc, '[');
    for (int64_t i = 0; i < k; i++)
        sc_fmt(sc, "%s{\"lang\":\"%s\",\"codec\":\"%s\",\"channels\":%d}", i ? "," : "",
               pick(r, P_LANGS, NELEM(P_LANGS)), pick(r, P_AUDIO_CODECS, NELEM(P_AUDIO_CODECS)),
               rng_pct(r, 50) ? 2 : 6);
    sc_putc(sc, ']');
}

static void gen_media_extra(struct rng *r, struct scratch *sc)
{
    /* "big" is 2^53 + odd: a JSON reader going through double loses it. */
    sc_fmt(sc, "{\"source\":\"import\",\"big\":%" PRId64 ",\"score\":%.3f,\"nested\":{\"ok\":%s,"
               "\"none\":null,\"list\":[1,2.5,\"три\"]},\"text\":",
           INT53 + 2 * rng_range(r, 0, 1000000) + 1, (double)rng_range(r, 0, 100000) / 1000.0,
           rng_pct(r, 50) ? "true" : "false");
    sc_json_str(sc, pick(r, P_SENTENCES, NELEM(P_SENTENCES)));
    sc_putc(sc, '}');
}

static int bind_text(sqlite3_stmt *st, int idx, struct scratch *sc, size_t start)
{
    const char *p = sc->buf + start;
    int n = (int)(sc->used - start);
    sc_putc(sc, '\0'); /* keeps fields apart; not part of the value */
    return sqlite3_bind_text(st, idx, p, n, SQLITE_STATIC);
}

/* Bind column c of row rw to parameter idx. Returns an SQLite code. */
static int gen_value(struct gen *g, struct rng *r, const struct colspec *c, struct row *rw,
                     sqlite3_stmt *st, int idx)
{
    struct scratch *sc = &g->sc;
    size_t start = sc->used;
    int64_t v;
    int found;

    if (c->null_pct && rng_pct(r, c->null_pct))
        return sqlite3_bind_null(st, idx);
    switch (c->kind) {
    case K_ID: return sqlite3_bind_int64(st, idx, rw->id);
    case K_CREATED: sc_ts(sc, rw->created, rw->created_us, 0); break;
    case K_UPDATED: sc_ts(sc, rw->updated, rw->updated_us, 0); break;
    case K_SEQ: return sqlite3_bind_int64(st, idx, rw->seq * c->a);
    case K_SEQ_PICK: sc_puts(sc, c->pool[rw->seq % c->n]); break;
    case K_INT: return sqlite3_bind_int64(st, idx, rng_range(r, c->a, c->b));
    case K_INT_PICK: return sqlite3_bind_int64(st, idx, c->ints[rng_below(r, (uint64_t)c->n)]);
    case K_REAL: {
        double scale = 1;
        for (int i = 0; i < c->dec; i++)
            scale *= 10;
        return sqlite3_bind_double(st, idx, (double)rng_range(r, c->a, c->b) / scale);
    }
    case K_REAL_PICK: return sqlite3_bind_double(st, idx, c->dbls[rng_below(r, (uint64_t)c->n)]);
    case K_BOOL: return sqlite3_bind_int(st, idx, rng_pct(r, (int)c->a));
    case K_PICK: sc_puts(sc, pick(r, c->pool, c->n)); break;
    case K_TS:
        sc_ts(sc, rng_range(r, T_CREATED_LO, T_LIMIT),
              rng_pct(r, 20) ? (int)rng_range(r, 1, 999999) : 0, 0);
        break;
    case K_DATE: sc_ts(sc, rng_range(r, -1420070400, 1767225599), 0, 1); break; /* 1925..2025 */
    case K_SENTENCES: gen_sentences(r, sc, c->pool, c->n, c->a, c->b); break;
    case K_JSON_STRS: gen_json_strs(r, sc, c->pool, c->n, c->a, c->b); break;
    case K_JSON_PERSONS: gen_json_persons(r, sc, c->a, c->b); break;
    case K_FK_CAT:
    case K_FK_PKG:
    case K_FK_SUB: {
        int f = c->kind == K_FK_CAT ? FK_CAT : c->kind == K_FK_PKG ? FK_PKG : FK_SUB;
        if (fk_pick(g, r, &g->fk[f], &v, &found))
            return SQLITE_ABORT; /* g->err already says which table */
        return found ? sqlite3_bind_int64(st, idx, v) : sqlite3_bind_null(st, idx);
    }
    case K_PROG_CHANNEL:
        if (!rw->have_channel) {
            if (fk_pick(g, r, &g->fk[FK_CHAN], &rw->channel, &rw->have_channel))
                return SQLITE_ABORT;
        }
        return rw->have_channel ? sqlite3_bind_int64(st, idx, rw->channel)
                                : sqlite3_bind_null(st, idx);
    case K_PROG_TITLE: gen_prog_title(r, sc); break;
    case K_PROG_START: sc_ts(sc, rw->start, 0, 0); break;
    case K_PROG_STOP: sc_ts(sc, rw->start + rw->duration, 0, 0); break;
    case K_PROG_DURATION: return sqlite3_bind_int64(st, idx, rw->duration);
    case K_LINK_PROGRAM: return sqlite3_bind_int64(st, idx, rw->link_program);
    case K_CHAN_NAME:
        sc_puts(sc, pick(r, P_CHANNELS, NELEM(P_CHANNELS)));
        if (rng_pct(r, 30))
            sc_puts(sc, rng_pct(r, 50) ? " HD" : " +2");
        break;
    case K_CHAN_URL:
        if (rng_pct(r, 60))
            sc_fmt(sc, "udp://@239.%d.%d.%d:1234", (int)rng_range(r, 0, 255),
                   (int)rng_range(r, 0, 255), (int)rng_range(r, 1, 254));
        else
            sc_fmt(sc, "http://cdn%d.example.tv/live/%" PRId64 "/index.m3u8?token=a%%20b&q=\"x\"",
                   (int)rng_range(r, 1, 9), rw->id);
        break;
    case K_EPG_ID:
        if (rng_pct(r, 20))
            sc_fmt(sc, "канал-%" PRId64, rw->id);
        else
            sc_fmt(sc, "ch%" PRId64, rw->id);
        break;
    case K_LOGO: sc_fmt(sc, "https://static.example.tv/logos/%" PRId64 ".png", rw->id); break;
    case K_IS_TV: return sqlite3_bind_int(st, idx, rw->chan_kind == 1);
    case K_IS_RADIO: return sqlite3_bind_int(st, idx, rw->chan_kind == 0);
    case K_CHAN_PARAMS: gen_chan_params(r, sc); break;
    case K_USERNAME:
        sc_puts(sc, pick(r, P_LOGIN, NELEM(P_LOGIN)));
        sc_fmt(sc, "%" PRId64, rw->seq);
        break;
    case K_PWHASH: {
        static const char b64[] =
            "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        sc_puts(sc, "$2b$12$");
        for (int i = 0; i < 53; i++)
            sc_putc(sc, b64[rng_below(r, 64)]);
        break;
    }
    case K_EMAIL:
        if (rng_pct(r, 3))
            break; /* an empty, not NULL, e-mail */
        sc_puts(sc, pick(r, P_LOGIN, NELEM(P_LOGIN)));
        sc_fmt(sc, "%d@%s", (int)rng_range(r, 1, 99999), pick(r, P_DOMAINS, NELEM(P_DOMAINS)));
        break;
    case K_MAC:
        sc_puts(sc, "00:1A:79");
        for (int i = 0; i < 3; i++) {
            sc_putc(sc, ':');
            gen_hex(r, sc, 2, 1);
        }
        break;
    case K_SERIAL:
        sc_puts(sc, rng_pct(r, 50) ? "SN" : "ЗАВ-");
        gen_hex(r, sc, 10, 1);
        break;
    case K_SETTINGS: gen_settings(r, sc); break;
    case K_MEDIA_NAME:
        sc_puts(sc, pick(r, P_FILMS, NELEM(P_FILMS)));
        sc_fmt(sc, " (%d)", (int)rng_range(r, 1925, 2025));
        break;
    case K_MEDIA_TITLE:
        sc_puts(sc, pick(r, P_FILMS, NELEM(P_FILMS)));
        if (rng_pct(r, 10))
            sc_fmt(sc, ": Часть %d", (int)rng_range(r, 2, 5));
        break;
    case K_AUDIO: gen_audio(r, sc); break;
    case K_IMG_URL:
        sc_fmt(sc, "https://img.example.tv/media/%016" PRIx64 "/%s.jpg", (uint64_t)rw->id,
               rng_pct(r, 50) ? "poster" : "постер");
        break;
    case K_VIDEO_URL:
        sc_fmt(sc, "https://vod.example.tv/v/%" PRId64 "/master.m3u8", rw->id);
        break;
    case K_STREAM_URL:
        sc_fmt(sc, "rtmp://stream%d.example.tv/vod/%" PRId64, (int)rng_range(r, 1, 4), rw->id);
        break;
    case K_IMDB: sc_fmt(sc, "tt%07d", (int)rng_range(r, 1, 9999999)); break;
    case K_MEDIA_EXTRA: gen_media_extra(r, sc); break;
    case K_EXTERNAL_ID:
        gen_hex(r, sc, 8, 0);
        sc_putc(sc, '-');
        gen_hex(r, sc, 4, 0);
        if (rng_pct(r, 10))
            sc_puts(sc, "\\ё");
        break;
    }
    return bind_text(st, idx, sc, start);
}

/* Timestamps and row-level correlations, before the columns are bound.
 * at mutate: now is the row's second; insert says whether created_at is new. */
static void prep_row(struct gen *g, struct rng *r, enum tab t, struct row *rw, int64_t now,
                    int insert)
{
    const struct tabspec *ts = &TABLES[t];
    if (g->mutate) {
        if (insert) {
            rw->created = now;
            rw->created_us = 0;
        }
        rw->updated = now;
        rw->updated_us = 0;
        rw->seq = rng_range(r, 0, 9999);
    } else if (ts->ts == TS_GENERAL) {
        rw->created = rng_range(r, T_CREATED_LO, T_CREATED_HI);
        rw->created_us = rng_pct(r, 20) ? (int)rng_range(r, 1, 999999) : 0;
        /* Bulk runs (billing, catalogue imports) stamp many rows with one second. */
        int64_t bulk = days_from_civil(2025, 7 + rng_range(r, 0, 5), 1) * T_DAY + 3 * 3600;
        if (rng_pct(r, ts->bulk_pct) && bulk > rw->created) {
            rw->updated = bulk;
            rw->updated_us = 0;
        } else if (rng_pct(r, 30)) {
            rw->updated = rw->created;
            rw->updated_us = rw->created_us;
        } else {
            rw->updated = rw->created + rng_range(r, 1, T_LIMIT - rw->created);
            rw->updated_us = rng_pct(r, 20) ? (int)rng_range(r, 1, 999999) : 0;
        }
    } else if (ts->ts == TS_PROGRAM) {
        /* An import batch of 250..1000 consecutive programmes shares one updated_at
         * second; batches step forward by <= batch_step_max so the last one still
         * lands before the clock. 5% of rows were edited later (own, fractional). */
        if (g->batch_left == 0) {
            g->batch_left = rng_range(r, 250, 1000);
            g->batch_ts += rng_range(r, 1, g->batch_step_max);
            if (g->batch_ts > T_LIMIT)
                g->batch_ts = T_LIMIT;
        }
        g->batch_left--;
        rw->created = rw->updated = g->batch_ts;
        rw->created_us = rw->updated_us = 0;
        if (rng_pct(r, 5)) {
            rw->updated = g->batch_ts + rng_range(r, 0, T_LIMIT - g->batch_ts);
            rw->updated_us = (int)rng_range(r, 1, 999999);
        }
    }
    if (t == T_TV_PROGRAM) {
        rw->duration = I_DURATIONS[rng_below(r, NELEM(I_DURATIONS))];
        if (g->mutate) {
            /* A programme somewhere from a week ago to two weeks ahead, on 5 min. */
            rw->start = (now + rng_range(r, -7 * T_DAY, 14 * T_DAY)) / 300 * 300;
            rw->have_channel = 0; /* K_PROG_CHANNEL probes a random channel */
        } else {
            /* Channel blocks: programmes of one channel are consecutive, back to back. */
            struct fkref *ch = &g->fk[FK_CHAN];
            int64_t nch = (int64_t)ch->n;
            int64_t per = nch && g->prog_rows / nch > 0 ? g->prog_rows / nch : 1;
            int64_t block = nch ? (rw->seq / per < nch ? rw->seq / per : nch - 1) : 0;
            if (block != g->chan_block) {
                g->chan_block = block;
                g->sched = T_EPG_START + rng_range(r, 0, 59) * 60;
            }
            rw->start = g->sched;
            g->sched += rw->duration;
            rw->have_channel = ch->n > 0;
            rw->channel = ch->n ? ch->ids[block] : 0;
        }
    } else if (t == T_TV_CHANNEL) {
        rw->chan_kind = rng_pct(r, 88) ? 1 : rng_pct(r, 90) ? 0 : 2;
    }
}

/* Bind every column of table t (INSERT order) or only the mutable ones followed
 * by updated_at and id (UPDATE order), then step. */
static int write_row(struct gen *g, struct rng *r, enum tab t, struct row *rw, sqlite3_stmt *st,
                     int update)
{
    const struct tabspec *ts = &TABLES[t];
    int idx = 1;
    g->sc.used = 0;
    g->sc.overflow = 0;
    for (int i = 0; i < ts->ncols; i++) {
        const struct colspec *c = &ts->cols[i];
        if (update && !c->mut)
            continue;
        int rc = gen_value(g, r, c, rw, st, idx++);
        if (rc == SQLITE_ABORT)
            return -1;
        if (rc != SQLITE_OK)
            return fail_sql(g, ts->name, "binding");
    }
    if (update) {
        size_t start = g->sc.used;
        sc_ts(&g->sc, rw->updated, rw->updated_us, 0);
        if (bind_text(st, idx++, &g->sc, start) != SQLITE_OK ||
            sqlite3_bind_int64(st, idx, rw->id) != SQLITE_OK)
            return fail_sql(g, ts->name, "binding");
    }
    if (g->sc.overflow)
        return fail(g, "fakegen: table %s: row %" PRId64 " does not fit the %zu-byte scratch area",
                    ts->name, rw->id, SCRATCH_CAP);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return fail_sql(g, ts->name, update ? "updating a row" : "inserting a row");
    return 0;
}

static int prepare_insert(struct gen *g, enum tab t, sqlite3_stmt **st)
{
    const struct tabspec *ts = &TABLES[t];
    struct buf b = { 0 };
    buf_printf(&b, "INSERT INTO \"%s\"(", ts->name);
    for (int i = 0; i < ts->ncols; i++)
        buf_printf(&b, "%s\"%s\"", i ? "," : "", ts->cols[i].name);
    buf_puts(&b, ") VALUES(");
    for (int i = 0; i < ts->ncols; i++)
        buf_puts(&b, i ? ",?" : "?");
    buf_putc(&b, ')');
    int rc = sqlite3_prepare_v2(g->db, b.p, -1, st, NULL);
    buf_free(&b);
    return rc == SQLITE_OK ? 0 : fail_sql(g, ts->name, "preparing insert");
}

static int prepare_update(struct gen *g, enum tab t, sqlite3_stmt **st)
{
    const struct tabspec *ts = &TABLES[t];
    struct buf b = { 0 };
    buf_printf(&b, "UPDATE \"%s\" SET ", ts->name);
    for (int i = 0; i < ts->ncols; i++)
        if (ts->cols[i].mut)
            buf_printf(&b, "\"%s\"=?,", ts->cols[i].name);
    buf_puts(&b, "updated_at=? WHERE id=?");
    int rc = sqlite3_prepare_v2(g->db, b.p, -1, st, NULL);
    buf_free(&b);
    return rc == SQLITE_OK ? 0 : fail_sql(g, ts->name, "preparing update");
}

static int exec(struct gen *g, const char *what, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(g->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fail(g, "fakegen: %s: %s", what, msg ? msg : sqlite3_errmsg(g->db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

/* ----------------------------------------------------------------- create */

static int create_table(struct gen *g, enum tab t)
{
    const struct tabspec *ts = &TABLES[t];
    struct buf b = { 0 };
    buf_printf(&b, "CREATE TABLE \"%s\"(", ts->name);
    for (int i = 0; i < ts->ncols; i++)
        buf_printf(&b, "%s\"%s\" %s%s", i ? ", " : "", ts->cols[i].name, ts->cols[i].decl,
                   i ? "" : " PRIMARY KEY");
    buf_putc(&b, ')');
    char *msg = NULL;
    int rc = sqlite3_exec(g->db, b.p, NULL, NULL, &msg);
    buf_free(&b);
    if (rc != SQLITE_OK) {
        fail(g, "fakegen: table %s: %s", ts->name, msg ? msg : sqlite3_errmsg(g->db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

/* Next id at create: gaps of [1, id_gap]; media spreads its ids from 2^53+1
 * toward ID_TOP (each step at most the remaining span / rows left, so it never
 * passes ID_TOP). */
static int64_t next_id(struct rng *r, const struct tabspec *ts, int64_t prev, int64_t left)
{
    if (prev == 0)
        return ts->id_start;
    if (ts->spread) {
        int64_t share = (ID_TOP - prev) / (left + 1);
        return prev + rng_range(r, 1, share > 1 ? share : 1);
    }
    return prev + rng_range(r, 1, ts->id_gap);
}

struct seqrec {
    int64_t last[T_COUNT]; /* highest id generated per table */
};

/* tv_program_category rows for one programme: ~1% of programmes, 1 or 2 links.
 * Drawn from their own stream so the programme stream does not depend on them. */
static int add_links(struct gen *g, struct rng *lr, int64_t program_id, sqlite3_stmt *st,
                     struct seqrec *seq)
{
    if (!rng_pct(lr, 1))
        return 0;
    int64_t k = rng_pct(lr, 30) ? 2 : 1;
    for (int64_t i = 0; i < k; i++) {
        struct row rw = { 0 };
        rw.id = next_id(lr, &TABLES[T_TV_PROGRAM_CATEGORY], seq->last[T_TV_PROGRAM_CATEGORY], 0);
        rw.link_program = program_id;
        if (write_row(g, lr, T_TV_PROGRAM_CATEGORY, &rw, st, 0))
            return -1;
        seq->last[T_TV_PROGRAM_CATEGORY] = rw.id;
    }
    return 0;
}

static int fill_table(struct gen *g, uint64_t seed, enum tab t, int64_t rows, struct seqrec *seq)
{
    const struct tabspec *ts = &TABLES[t];
    struct rng r, lr;
    rng_seed(&r, seed, ts->name);
    rng_seed(&lr, seed, TABLES[T_TV_PROGRAM_CATEGORY].name);
    sqlite3_stmt *ins = NULL, *link = NULL;
    struct fkref *collect = t == T_TV_CATEGORY  ? &g->fk[FK_CAT]
                            : t == T_PACKAGE    ? &g->fk[FK_PKG]
                            : t == T_TV_CHANNEL ? &g->fk[FK_CHAN]
                            : t == T_SUBSCRIBER ? &g->fk[FK_SUB]
                                                : NULL;
    int rc = prepare_insert(g, t, &ins);
    if (!rc && t == T_TV_PROGRAM) {
        rc = prepare_insert(g, T_TV_PROGRAM_CATEGORY, &link);
        g->prog_rows = rows;
        g->batch_ts = T_BATCH_START;
        g->batch_left = 0;
        int64_t step = (T_LIMIT - T_BATCH_START) / (rows / 250 + 1);
        g->batch_step_max = step < 1 ? 1 : step > 600 ? 600 : step;
    }
    int64_t id = 0;
    for (int64_t i = 0; !rc && i < rows; i++) {
        struct row rw = { 0 };
        id = rw.id = next_id(&r, ts, id, rows - i);
        rw.seq = i;
        prep_row(g, &r, t, &rw, 0, 1);
        rc = write_row(g, &r, t, &rw, ins, 0);
        if (!rc && collect)
            fk_add(collect, id);
        if (!rc && link)
            rc = add_links(g, &lr, id, link, seq);
    }
    seq->last[t] = id;
    sqlite3_finalize(ins);
    sqlite3_finalize(link);
    return rc;
}

static int savepoint_end(struct gen *g, const char *name, int rc)
{
    char sql[128];
    if (rc == 0) {
        snprintf(sql, sizeof sql, "RELEASE \"%s\"", name);
        return exec(g, "committing", sql);
    }
    /* Keep the first error; the rollback's own failure would only hide it. */
    snprintf(sql, sizeof sql, "ROLLBACK TO \"%s\"; RELEASE \"%s\"", name, name);
    sqlite3_exec(g->db, sql, NULL, NULL, NULL);
    return rc;
}

int fakegen_create(sqlite3 *db, const struct fakegen_opts *o, char *err, size_t errlen)
{
    struct fakegen_opts def = { 0 };
    if (!o)
        o = &def;
    struct gen g;
    gen_init(&g, db, 0, err, errlen);
    int64_t prog_rows = o->tv_program_rows ? o->tv_program_rows : FAKEGEN_DEFAULT_TV_PROGRAM_ROWS;
    int64_t scale = o->scale ? o->scale : 1;
    int rc = 0;
    if (o->tv_program_rows < 0)
        rc = fail(&g, "fakegen: tv_program_rows %" PRId64 " is negative", o->tv_program_rows);
    else if (o->scale < 0 || scale > INT64_C(1000000))
        rc = fail(&g, "fakegen: scale %" PRId64 " is outside 1..1000000", o->scale);
    if (rc) {
        gen_free(&g);
        return rc;
    }
    /* The load's one commit would fsync a file of ~290 MB per million programmes
     * (~0.5 s); the data is regenerable from the seed, so skip that fsync and give
     * the caller's setting back afterwards. journal_mode stays the caller's: OFF
     * would leave the rollback below undefined, it cannot change inside a caller's
     * transaction, and on a fresh database SQLite journals almost nothing anyway. */
    int old_sync = 2; /* FULL, SQLite's default, if the pragma cannot be read */
    sqlite3_stmt *ps = NULL;
    if (sqlite3_prepare_v2(db, "PRAGMA synchronous", -1, &ps, NULL) == SQLITE_OK &&
        sqlite3_step(ps) == SQLITE_ROW)
        old_sync = sqlite3_column_int(ps, 0);
    sqlite3_finalize(ps);
    rc = exec(&g, "setting synchronous", "PRAGMA synchronous=OFF");
    if (!rc)
        rc = exec(&g, "starting savepoint", "SAVEPOINT fakegen_create");
    int in_savepoint = !rc;
    for (int t = 0; !rc && t < T_COUNT; t++)
        rc = create_table(&g, (enum tab)t);
    if (!rc)
        rc = exec(&g, "table _fake_clock",
                  "CREATE TABLE _fake_clock(now TEXT);"
                  "INSERT INTO _fake_clock VALUES('" FAKEGEN_CLOCK_START "');"
                  "CREATE TABLE _fake_seq(name TEXT PRIMARY KEY, last_id INTEGER)");

    /* Referenced tables first: their ids feed the foreign keys that follow. */
    static const enum tab order[] = { T_TV_CATEGORY, T_PACKAGE, T_TV_CHANNEL, T_SUBSCRIBER,
                                      T_TERMINAL, T_MEDIA, T_TV_PROGRAM };
    struct seqrec seq = { { 0 } };
    for (int i = 0; !rc && i < NELEM(order); i++) {
        const struct tabspec *ts = &TABLES[order[i]];
        int64_t rows = order[i] == T_TV_PROGRAM ? prog_rows : ts->scaled ? ts->rows * scale
                                                                          : ts->rows;
        rc = fill_table(&g, o->seed, order[i], rows, &seq);
    }
    if (!rc) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db, "INSERT INTO _fake_seq VALUES(?,?)", -1, &st, NULL) != SQLITE_OK)
            rc = fail_sql(&g, "_fake_seq", "preparing insert");
        for (int t = 0; !rc && t < T_COUNT; t++) {
            sqlite3_bind_text(st, 1, TABLES[t].name, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 2, seq.last[t]);
            if (sqlite3_step(st) != SQLITE_DONE)
                rc = fail_sql(&g, "_fake_seq", "inserting");
            sqlite3_reset(st);
        }
        sqlite3_finalize(st);
    }
    /* As a real portal would have them: incremental pulls ask for
     * (updated_at, id) > mark ordered the same way. Built after the load. */
    if (!rc)
        rc = exec(&g, "indexes on updated_at",
                  "CREATE INDEX tv_program_updated ON tv_program(updated_at, id);"
                  "CREATE INDEX subscriber_updated ON subscriber(updated_at, id);"
                  "CREATE INDEX terminal_updated ON terminal(updated_at, id)");
    if (in_savepoint)
        rc = savepoint_end(&g, "fakegen_create", rc);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA synchronous=%d", old_sync);
    if (rc)
        sqlite3_exec(db, sql, NULL, NULL, NULL); /* keep the first error */
    else
        rc = exec(&g, "restoring synchronous", sql);
    gen_free(&g);
    return rc;
}

/* ----------------------------------------------------------------- mutate */

/* Open-addressing set of ids (INT64_MIN marks a free slot; ids are never it). */
struct idset {
    int64_t *slot;
    size_t mask;
};

static void idset_init(struct idset *s, size_t want)
{
    size_t cap = 16;
    while (cap < want * 2)
        cap *= 2;
    s->slot = xmalloc(cap * sizeof *s->slot);
    for (size_t i = 0; i < cap; i++)
        s->slot[i] = INT64_MIN;
    s->mask = cap - 1;
}

/* 1 if added, 0 if already there. */
static int idset_add(struct idset *s, int64_t v)
{
    uint64_t h = (uint64_t)v * 0x9E3779B97F4A7C15ULL;
    for (size_t i = (size_t)(h >> 32) & s->mask;; i = (i + 1) & s->mask) {
        if (s->slot[i] == v)
            return 0;
        if (s->slot[i] == INT64_MIN) {
            s->slot[i] = v;
            return 1;
        }
    }
}

/* Probe picking stays cheap while picks are few; above this, or when probes keep
 * hitting ids already picked (a small or tightly picked table), read every id once
 * and partially shuffle them instead. */
#define PICK_PROBE_MAX 65536
#define PICK_ATTEMPTS 32

/* Up to want distinct existing ids of table, in random order, into *out (caller
 * frees); *n may be < want only when the table has fewer rows. */
static int pick_rows(struct gen *g, struct rng *r, const char *table, int64_t want, int64_t mn,
                     int64_t mx, int64_t **out, int64_t *n)
{
    *out = NULL;
    *n = 0;
    if (want == 0)
        return 0;
    sqlite3_stmt *st = NULL;
    if (want <= PICK_PROBE_MAX) {
        if (prepare_probe(g, table, &st))
            return -1;
        int64_t *ids = xmalloc((size_t)want * sizeof *ids);
        struct idset set;
        idset_init(&set, (size_t)want);
        int64_t k = 0;
        int stuck = 0;
        while (k < want && !stuck) {
            int a;
            for (a = 0; a < PICK_ATTEMPTS; a++) {
                int64_t id;
                if (probe_id(g, r, st, table, mn, mx, &id)) {
                    free(set.slot);
                    free(ids);
                    sqlite3_finalize(st);
                    return -1;
                }
                if (idset_add(&set, id)) {
                    ids[k++] = id;
                    break;
                }
            }
            stuck = a == PICK_ATTEMPTS;
        }
        free(set.slot);
        sqlite3_finalize(st);
        if (!stuck) {
            *out = ids;
            *n = k;
            return 0;
        }
        free(ids);
    }
    /* Every id, then a partial Fisher-Yates shuffle. */
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT id FROM \"%s\" ORDER BY id", table);
    if (sqlite3_prepare_v2(g->db, sql, -1, &st, NULL) != SQLITE_OK)
        return fail_sql(g, table, "reading ids");
    int64_t *all = NULL;
    size_t cnt = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (cnt == cap) {
            cap = cap ? cap * 2 : 1024;
            all = xrealloc(all, cap * sizeof *all);
        }
        all[cnt++] = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        free(all);
        return fail_sql(g, table, "reading ids");
    }
    int64_t k = want < (int64_t)cnt ? want : (int64_t)cnt;
    for (int64_t i = 0; i < k; i++) {
        int64_t j = i + (int64_t)rng_below(r, cnt - (uint64_t)i);
        int64_t tmp = all[i];
        all[i] = all[j];
        all[j] = tmp;
    }
    *out = all;
    *n = k;
    return 0;
}

struct mstate {
    int64_t base;      /* the clock before this mutation */
    int64_t written;   /* rows stamped so far */
    int same_ts;
};

/* The second for the next written row. */
static int64_t stamp(struct mstate *ms)
{
    ms->written++;
    return ms->same_ts ? ms->base + 1 : ms->base + ms->written;
}

static int mutate_table(struct gen *g, const struct fakegen_mutation *m, enum tab t,
                        struct mstate *ms, struct fakegen_mutate_result *res)
{
    const struct tabspec *ts = &TABLES[t];
    struct rng r;
    rng_seed(&r, m->seed, ts->name);
    int64_t mn, mx, seqlast = 0;
    int have;
    if (id_range(g, ts->name, &mn, &mx, &have))
        return -1;

    sqlite3_stmt *st = NULL, *del = NULL, *upd = NULL, *ins = NULL;
    if (sqlite3_prepare_v2(g->db, "SELECT last_id FROM _fake_seq WHERE name=?", -1, &st, NULL) !=
        SQLITE_OK)
        return fail_sql(g, "_fake_seq", "reading");
    sqlite3_bind_text(st, 1, ts->name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        seqlast = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return fail_sql(g, "_fake_seq", "reading");

    int64_t *ids = NULL, n = 0;
    rc = have ? pick_rows(g, &r, ts->name, m->updates + m->deletes, mn, mx, &ids, &n) : 0;
    int64_t nd = m->deletes < n ? m->deletes : n;
    int64_t nu = m->updates < n - nd ? m->updates : n - nd;

    char sql[128];
    snprintf(sql, sizeof sql, "DELETE FROM \"%s\" WHERE id=?", ts->name);
    if (!rc && sqlite3_prepare_v2(g->db, sql, -1, &del, NULL) != SQLITE_OK)
        rc = fail_sql(g, ts->name, "preparing delete");
    if (!rc)
        rc = prepare_update(g, t, &upd);
    if (!rc)
        rc = prepare_insert(g, t, &ins);

    for (int64_t i = 0; !rc && i < nd; i++) {
        sqlite3_bind_int64(del, 1, ids[i]);
        if (sqlite3_step(del) != SQLITE_DONE)
            rc = fail_sql(g, ts->name, "deleting a row");
        sqlite3_reset(del);
    }
    for (int64_t i = nd; !rc && i < nd + nu; i++) {
        struct row rw = { 0 };
        rw.id = ids[i];
        prep_row(g, &r, t, &rw, stamp(ms), 0);
        rc = write_row(g, &r, t, &rw, upd, 1);
    }
    /* New ids climb from the highest ever issued, so a deleted id never returns. */
    int64_t last = seqlast > mx ? seqlast : mx;
    for (int64_t i = 0; !rc && i < m->inserts; i++) {
        int64_t gap = rng_range(&r, 1, ts->id_gap);
        if (last > INT64_MAX - gap) {
            rc = fail(g, "fakegen: table %s: no id left above %" PRId64, ts->name, last);
            break;
        }
        struct row rw = { 0 };
        rw.id = last += gap;
        prep_row(g, &r, t, &rw, stamp(ms), 1);
        rc = write_row(g, &r, t, &rw, ins, 0);
    }
    if (!rc) {
        if (sqlite3_prepare_v2(g->db, "INSERT OR REPLACE INTO _fake_seq VALUES(?,?)", -1, &st,
                               NULL) != SQLITE_OK)
            rc = fail_sql(g, "_fake_seq", "preparing update");
        else {
            sqlite3_bind_text(st, 1, ts->name, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 2, last);
            if (sqlite3_step(st) != SQLITE_DONE)
                rc = fail_sql(g, "_fake_seq", "updating");
            sqlite3_finalize(st);
        }
    }
    if (!rc) {
        res->deleted += nd;
        res->updated += nu;
        res->inserted += m->inserts;
    }
    free(ids);
    sqlite3_finalize(del);
    sqlite3_finalize(upd);
    sqlite3_finalize(ins);
    return rc;
}

static int read_clock(struct gen *g, int64_t *now)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(g->db, "SELECT now FROM _fake_clock", -1, &st, NULL) != SQLITE_OK)
        return fail_sql(g, "_fake_clock", "reading");
    int rc = sqlite3_step(st);
    const char *s = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
    if (rc == SQLITE_ROW && s && parse_ts(s, now) == 0 && sqlite3_step(st) == SQLITE_DONE) {
        sqlite3_finalize(st);
        return 0;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        sqlite3_finalize(st);
        return fail_sql(g, "_fake_clock", "reading");
    }
    fail(g, "fakegen: table _fake_clock: want one row \"YYYY-MM-DD HH:MM:SS\", got %s%s%s",
         s ? "\"" : "", s ? s : rc == SQLITE_ROW ? "NULL" : "no row", s ? "\"" : "");
    sqlite3_finalize(st);
    return -1;
}

int fakegen_mutate(sqlite3 *db, const struct fakegen_mutation *m,
                   struct fakegen_mutate_result *r, char *err, size_t errlen)
{
    struct fakegen_mutate_result res = { 0 };
    struct gen g;
    gen_init(&g, db, 1, err, errlen);
    enum tab list[NELEM(MUTABLE)];
    int nlist = 0, rc = 0;

    if (!m)
        rc = fail(&g, "fakegen: mutate: no mutation given");
    else if (m->updates < 0 || m->inserts < 0 || m->deletes < 0)
        rc = fail(&g, "fakegen: mutate %s: negative count (updates %" PRId64 ", inserts %" PRId64
                      ", deletes %" PRId64 ")",
                  m->table ? m->table : "(default tables)", m->updates, m->inserts, m->deletes);
    else if (!m->table) {
        for (int i = 0; i < MUTABLE_DEFAULT; i++)
            list[nlist++] = MUTABLE[i];
    } else {
        for (int i = 0; i < NELEM(MUTABLE); i++)
            if (strcmp(m->table, TABLES[MUTABLE[i]].name) == 0)
                list[nlist++] = MUTABLE[i];
        int known = 0;
        for (int t = 0; t < T_COUNT; t++)
            known |= strcmp(m->table, TABLES[t].name) == 0;
        if (!nlist && known)
            rc = fail(&g, "fakegen: table %s has no updated_at; mutate handles subscriber, "
                          "terminal, tv_program, tv_channel, media",
                      m->table);
        else if (!nlist)
            rc = fail(&g, "fakegen: unknown table '%s'; mutate handles subscriber, terminal, "
                          "tv_program, tv_channel, media",
                      m->table);
    }
    if (!rc)
        rc = exec(&g, "starting savepoint", "SAVEPOINT fakegen_mutate");
    if (rc) {
        gen_free(&g);
        return rc;
    }
    struct mstate ms = { .same_ts = m->same_ts };
    rc = read_clock(&g, &ms.base);
    for (int i = 0; !rc && i < nlist; i++)
        rc = mutate_table(&g, m, list[i], &ms, &res);
    int64_t now = ms.base + (ms.same_ts || ms.written == 0 ? 1 : ms.written);
    res.ts[fmt_ts(res.ts, now, 0, 0)] = '\0';
    if (!rc) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(db, "UPDATE _fake_clock SET now=?", -1, &st, NULL) != SQLITE_OK)
            rc = fail_sql(&g, "_fake_clock", "preparing update");
        else {
            sqlite3_bind_text(st, 1, res.ts, -1, SQLITE_STATIC);
            if (sqlite3_step(st) != SQLITE_DONE)
                rc = fail_sql(&g, "_fake_clock", "updating");
            sqlite3_finalize(st);
        }
    }
    rc = savepoint_end(&g, "fakegen_mutate", rc);
    gen_free(&g);
    if (!rc && r)
        *r = res;
    return rc;
}
