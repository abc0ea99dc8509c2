/* stopsig.c — SIGINT and SIGTERM coalesced into one stop request (stopsig.h). */
#include "util/stopsig.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int wake_pipe[2] = {-1, -1};
static const char *prog_name = "initlab";
static atomic_llong first_stop_ms;   /* CLOCK_MONOTONIC ms of the first stop; 0: none */
static volatile sig_atomic_t first_stop_sig;

static long long monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);   /* async-signal-safe */
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + 1;  /* never 0 */
}

static void say(const char *s)
{
    ssize_t w = write(STDERR_FILENO, s, strlen(s));
    (void)w;
}

static void on_signal(int sig)
{
    int saved_errno = errno;
    if (sig != SIGHUP) {
        long long t = monotonic_ms(), first = 0;
        if (!atomic_compare_exchange_strong(&first_stop_ms, &first, t)) {
            if (t - first < STOPSIG_WINDOW_MS) {
                errno = saved_errno;
                return;   /* the same request, delivered to us twice */
            }
            say(prog_name);
            say(": second stop signal, exiting at once (no checkpoint)\n");
            _exit(128 + sig);
        }
        first_stop_sig = sig;
    }
    unsigned char b = (unsigned char)sig;
    ssize_t w = write(wake_pipe[1], &b, 1);
    (void)w;
    errno = saved_errno;
}

int stopsig_install(const char *prog, bool with_hup)
{
    if (pipe2(wake_pipe, O_CLOEXEC) < 0)
        return -1;
    prog_name = prog;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGINT);
    sigaddset(&sa.sa_mask, SIGTERM);
    sigaddset(&sa.sa_mask, SIGHUP);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (with_hup)
        sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

int stopsig_wait(void)
{
    for (;;) {
        unsigned char b;
        ssize_t n = read(wake_pipe[0], &b, 1);
        if (n == 1)
            return b;
        if (n < 0 && errno == EINTR)
            continue;
        return SIGTERM;   /* the pipe broke: stop rather than hang */
    }
}

int stopsig_received(void)
{
    return first_stop_sig;
}
