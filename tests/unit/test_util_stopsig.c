/* test_util_stopsig.c — stop signals coalesce: copies within the window are one graceful
 * request, a signal after it exits at once with 128 + the signal and says so. Each case
 * runs in a child process, since the handlers are process-wide. */
#include "test.h"

#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/stopsig.h"

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* Runs body in a child whose stderr goes to a pipe; returns its wait status and what it
 * wrote (up to n - 1 bytes) in text. */
static int in_child(void (*body)(void), char *text, size_t n)
{
    int fds[2];
    if (pipe(fds) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], STDERR_FILENO);
        body();
        _exit(0);
    }
    close(fds[1]);
    size_t got = 0;
    ssize_t r;
    while (got + 1 < n && (r = read(fds[0], text + got, n - 1 - got)) > 0)
        got += (size_t)r;
    text[got] = '\0';
    close(fds[0]);
    int status = -1;
    waitpid(pid, &status, 0);
    return status;
}

/* Three SIGINTs at once, then waits: exits 7 after exactly one reported stop. */
static void copies_are_one_request(void)
{
    if (stopsig_install("stoptest", false) < 0)
        _exit(2);
    raise(SIGINT);
    raise(SIGINT);
    raise(SIGTERM);
    if (stopsig_wait() != SIGINT || stopsig_received() != SIGINT)
        _exit(3);
    _exit(7);
}

/* A SIGINT, then another after the window: the second must end the process at once. */
static void a_later_signal_exits_at_once(void)
{
    if (stopsig_install("stoptest", false) < 0)
        _exit(2);
    raise(SIGINT);
    if (stopsig_wait() != SIGINT)
        _exit(3);
    sleep_ms(STOPSIG_WINDOW_MS + 100); /* the graceful stop still under way */
    raise(SIGINT);
    _exit(7); /* not reached when the second signal works */
}

TEST(stopsig_copies_within_the_window_are_one_graceful_request)
{
    char text[256];
    int status = in_child(copies_are_one_request, text, sizeof text);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 7);
    CHECK(strstr(text, "second stop signal") == NULL);
}

TEST(stopsig_a_signal_after_the_window_exits_at_once)
{
    char text[256];
    int status = in_child(a_later_signal_exits_at_once, text, sizeof text);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGINT);
    CHECK(strstr(text, "stoptest: second stop signal, exiting at once") != NULL);
}
