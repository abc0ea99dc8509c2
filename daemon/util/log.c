/* log.c — leveled, line-atomic logging to stderr (see log.h). */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static LogLevel min_level = LOG_INFO;

void log_set_level(LogLevel level)
{
    min_level = level;
}

int log_parse_level(const char *text, LogLevel *level)
{
    static const struct { const char *name; LogLevel level; } names[] = {
        {"error", LOG_ERROR}, {"warn", LOG_WARN}, {"info", LOG_INFO}, {"debug", LOG_DEBUG},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(text, names[i].name) == 0) {
            *level = names[i].level;
            return 0;
        }
    return -1;
}

static const char *level_name(LogLevel level)
{
    switch (level) {
    case LOG_ERROR: return "error";
    case LOG_WARN: return "warn ";
    case LOG_INFO: return "info ";
    default: return "debug";
    }
}

void log_msg(LogLevel level, const char *module, const char *fmt, ...)
{
    if (level > min_level)
        return;
    char line[2048];
    size_t len;
    if (getenv("JOURNAL_STREAM")) {
        len = (size_t)snprintf(line, sizeof line, "<%d>%s: ", (int)level, module);
    } else {
        struct timeval tv;
        struct tm tm;
        gettimeofday(&tv, NULL);
        gmtime_r(&tv.tv_sec, &tm);
        len = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
        len += (size_t)snprintf(line + len, sizeof line - len, ".%03dZ %s %s: ",
                                (int)(tv.tv_usec / 1000), level_name(level), module);
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line + len, sizeof line - len, fmt, ap);
    va_end(ap);
    len = n < 0 ? len : len + (size_t)n;
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    /* One event per line: fold embedded newlines. */
    for (size_t i = 0; i < len; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
