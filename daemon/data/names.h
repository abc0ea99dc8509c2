/* names.h — file and class names are bytes: their one text form, for JSON, CSV, logs and
 * terminals.
 *
 * Linux names are any bytes but '/' and NUL; JSON (and so the store's class lists, the API,
 * the dashboard) carries only valid UTF-8. data_name_text turns a name into text without
 * losing anything: valid UTF-8 stays as it is, except that a backslash becomes "\\" and
 * every control byte (0x00–0x1F, 0x7F) and every byte that is not part of a valid UTF-8
 * sequence becomes "\xHH" (two upper-case hex digits). Because backslashes are doubled,
 * the mapping is one-to-one: two different names never share a text form, and the name
 * can be read back from its text. Names that are plain printable UTF-8 without a backslash
 * — nearly all — are their own text form.
 *
 * Every function here is thread-safe (no shared state). */
#ifndef INITLAB_DATA_NAMES_H
#define INITLAB_DATA_NAMES_H

#include <stdbool.h>
#include <stddef.h>

/* True when bytes[0..n) is valid UTF-8 (no overlong forms, no surrogates, nothing above
 * U+10FFFF), as jansson requires of a JSON string. Can't fail. */
bool data_utf8_valid(const char *bytes, size_t n);

/* The text form of name (see above) as a new string (free it), or NULL when out of
 * memory. */
char *data_name_text(const char *name);

/* The text form of name written into buf[size] (always terminated; cut short, at a whole
 * escape, when buf is too small). Returns buf. Can't fail. */
const char *data_name_text_buf(const char *name, char *buf, size_t size);

#endif
