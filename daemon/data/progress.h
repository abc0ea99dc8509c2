/* progress.h — the progress callback of the data module's long operations (cache, demo). */
#ifndef INITLAB_DATA_PROGRESS_H
#define INITLAB_DATA_PROGRESS_H

/* Called with done of total units; return nonzero to cancel the operation. Called from
 * the thread that started the operation, never concurrently with itself. */
typedef int (*DataProgressFn)(void *user, long done, long total);

#endif
