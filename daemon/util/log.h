/* log.h — leveled log lines on stderr, one event per line, journald priorities under systemd.
 *
 * Format: "2026-11-27T09:00:00.123Z info  jobs: job 12 started (mobilenet, he_uniform)".
 * When stderr is the journal (JOURNAL_STREAM is set, as systemd does), each line starts
 * with the syslog priority prefix "<3>".."<7>" and the timestamp is left to journald.
 * Thread-safe: each line is written with one write(2). Never log secrets (tokens). */
#ifndef INITLAB_UTIL_LOG_H
#define INITLAB_UTIL_LOG_H

typedef enum { LOG_ERROR = 3, LOG_WARN = 4, LOG_INFO = 6, LOG_DEBUG = 7 } LogLevel;

/* Lines below level are dropped (default LOG_INFO). Call before starting threads. */
void log_set_level(LogLevel level);
/* Parses "error", "warn", "info", "debug"; returns 0, or -1 for anything else. */
int log_parse_level(const char *text, LogLevel *level);
void log_msg(LogLevel level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_error(mod, ...) log_msg(LOG_ERROR, mod, __VA_ARGS__)
#define log_warn(mod, ...)  log_msg(LOG_WARN, mod, __VA_ARGS__)
#define log_info(mod, ...)  log_msg(LOG_INFO, mod, __VA_ARGS__)
#define log_debug(mod, ...) log_msg(LOG_DEBUG, mod, __VA_ARGS__)

#endif
