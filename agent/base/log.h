/* log.h — leveled logging to stderr, as text or JSON lines.
 *
 * main() calls log_init() once from --log-level/--log-format; that is the only
 * mutable global the module keeps. Messages must never contain secrets: callers
 * pass URLs, table names and error texts, never credentials (tests grep for the
 * password in all output). */
#ifndef IA_LOG_H
#define IA_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_OFF };
enum log_format { LOG_TEXT, LOG_JSON };

void log_init(enum log_level level, enum log_format format);
int  log_parse_level(const char *s, enum log_level *out);   /* 0 ok, -1 unknown */
int  log_parse_format(const char *s, enum log_format *out); /* 0 ok, -1 unknown */
int  log_enabled(enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
