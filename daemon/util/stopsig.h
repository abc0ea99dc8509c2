/* stopsig.h — SIGINT and SIGTERM as one stop request, however many copies arrive.
 *
 * A terminal's Ctrl-C reaches every process of its foreground group, and a wrapper such as
 * `make run` or a supervisor may pass the same stop on as SIGTERM: one user action, several
 * signals. Stop signals that arrive within STOPSIG_WINDOW_MS of the first count as that
 * first request (the program stops gracefully: running jobs checkpoint). A stop signal
 * after the window is a deliberate second request: the process prints one line and exits
 * at once with status 128 + the signal, skipping the checkpoint. SIGHUP, when asked for,
 * is only reported.
 *
 * DESIGN
 * The handler runs on whichever thread the kernel picks (threads made by libraries do not
 * block the signals), so it touches nothing but an atomic timestamp, a sig_atomic_t and
 * the write end of a self-pipe. The process's main thread waits on the read end. */
#ifndef INITLAB_UTIL_STOPSIG_H
#define INITLAB_UTIL_STOPSIG_H

#include <stdbool.h>

#define STOPSIG_WINDOW_MS 500

/* Installs the handlers for SIGINT and SIGTERM (and SIGHUP when with_hup), ignores SIGPIPE.
 * prog names the program in the "exiting at once" line ("initlab serve"); it must outlive
 * the process. Call once, from the main thread. Returns 0, or -1 with errno set when the
 * self-pipe cannot be made. */
int stopsig_install(const char *prog, bool with_hup);

/* Blocks until a signal is reported and returns it: SIGINT or SIGTERM for the stop
 * request (reported once), SIGHUP each time one arrives (when installed). */
int stopsig_wait(void);

/* The first stop signal received (SIGINT or SIGTERM), or 0 while none has arrived.
 * Async-signal-safe; can't fail. */
int stopsig_received(void);

#endif
