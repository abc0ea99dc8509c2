/* config.h — `key = value` configuration files.
 *
 * One setting per line: `key = value`. Blank lines and lines starting with '#' are
 * ignored; in an unquoted value, whitespace followed by '#' starts a comment. A value may
 * be wrapped in double or single quotes (kept verbatim inside, '#' included). Keys are
 * letters, digits and '_'. An unknown key, a line without '=', a key given twice or a
 * value the caller rejects is an error naming FILE:LINE. */
#ifndef INITLAB_UTIL_CONFIG_H
#define INITLAB_UTIL_CONFIG_H

#include <stddef.h>

/* Applies one setting. Returns 0, or -1 after writing why the value is invalid into err
 * (the parser prefixes FILE:LINE and the key). */
typedef int (*ConfigSetFn)(void *ud, const char *key, const char *value, char *err,
                           size_t errlen);

/* Parses text (the contents of a file called name) and calls set for each setting, in
 * order. known lists the accepted keys (NULL-terminated). Returns 0, or -1 with the first
 * error in err ("serve.conf:12: unknown key 'wrokers'"). Thread-safe if set is. */
int config_parse(const char *name, const char *text, const char *const known[], ConfigSetFn set,
                 void *ud, char *err, size_t errlen);

/* Reads the file at path (up to 1 MiB) and parses it like config_parse. Returns 0, or -1
 * with err set (including "PATH: No such file or directory"). */
int config_load(const char *path, const char *const known[], ConfigSetFn set, void *ud,
                char *err, size_t errlen);

#endif
