/* static.h — serves the dashboard's files from the web directory for every non-/api path.
 *
 * "/" and any path ending in '/' serve that directory's index.html. Paths with "..",
 * backslashes, '%' (left over from decoding: an encoded '%' or NUL), control characters or
 * a leading "//" are refused with 400; the file is resolved with realpath and must lie
 * inside the web directory (symbolic links pointing out of it are refused with 404).
 * Only regular files are served, with a Content-Type from the extension, an ETag from size
 * and modification time (304 on If-None-Match) and `Cache-Control: no-cache` (clients
 * revalidate; the files are not content-hashed). */
#ifndef INITLAB_API_STATIC_H
#define INITLAB_API_STATIC_H

#include <stddef.h>

#include "api/router.h"

/* Resolves dir (realpath). Returns NULL with err set when it is not a directory. */
StaticDir *static_create(const char *dir, char *err, size_t errlen);
/* Accepts NULL. */
void static_free(StaticDir *s);
/* The resolved absolute directory. */
const char *static_root(const StaticDir *s);

/* Answers req (GET or HEAD; other methods get 405 with Allow) from the directory: the file,
 * 304, or a 400/404/405 problem. s may be NULL (no web directory: 404). Returns 0, or -1
 * when the reply could not be set. Thread-safe. */
int static_serve(const StaticDir *s, ApiRequest *req, ApiReply *reply);

/* The Content-Type for a file name by its extension; "application/octet-stream" when
 * unknown. Can't fail. */
const char *static_mime_type(const char *name);

#endif
