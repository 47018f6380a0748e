/* log.c — see log.h. */
#include "agent/base/log.h"
#include "agent/base/buf.h"
#include "agent/base/json.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum log_level g_level = LOG_INFO;   /* set once by main via log_init */
static enum log_format g_format = LOG_TEXT;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

void log_init(enum log_level level, enum log_format format)
{
    g_level = level;
    g_format = format;
}

int log_parse_level(const char *s, enum log_level *out)
{
    for (int i = 0; i <= LOG_OFF; i++)
        if (strcmp(s, level_names[i]) == 0) { *out = (enum log_level)i; return 0; }
    return -1;
}

int log_parse_format(const char *s, enum log_format *out)
{
    if (strcmp(s, "text") == 0) { *out = LOG_TEXT; return 0; }
    if (strcmp(s, "json") == 0) { *out = LOG_JSON; return 0; }
    return -1;
}

int log_enabled(enum log_level level) { return level >= g_level && level < LOG_OFF; }

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (!log_enabled(level)) return;
    struct buf msg = {0}, line = {0};
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&msg, fmt, ap);
    va_end(ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[96];
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    if (g_format == LOG_JSON) {
        buf_printf(&line, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":", when, level_names[level]);
        json_write_string(&line, msg.p ? msg.p : "", msg.len);
        buf_puts(&line, "}\n");
    } else {
        buf_printf(&line, "%s %-5s %s\n", when, level_names[level], msg.p ? msg.p : "");
    }
    fwrite(line.p, 1, line.len, stderr);
    buf_free(&msg);
    buf_free(&line);
}
