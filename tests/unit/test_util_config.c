/* test_util_config.c — the key = value parser (util/config.h) and the sd_notify client
 * (util/notify.h) against a real AF_UNIX datagram socket. */
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/config.h"
#include "util/notify.h"

typedef struct {
    char seen[512];
} Collected;

static int collect(void *ud, const char *key, const char *value, char *err, size_t errlen)
{
    Collected *c = ud;
    if (strcmp(value, "reject") == 0) {
        snprintf(err, errlen, "rejected by the caller");
        return -1;
    }
    size_t n = strlen(c->seen);
    snprintf(c->seen + n, sizeof c->seen - n, "%s=[%s];", key, value);
    return 0;
}

static const char *const keys[] = {"listen", "workers", "token_file", "cors_origin", NULL};

TEST(util_config_parses_values_comments_and_quotes)
{
    Collected c = {""};
    char err[256] = "";
    const char *text =
        "# a comment\n"
        "\n"
        "  listen = 127.0.0.1:8470   # trailing comment\n"
        "workers=2\r\n"
        "token_file = \"/etc/initlab/token # not a comment\"\n"
        "cors_origin = 'https://a.example'  \n"
        "\t# indented comment";
    CHECK_INT(config_parse("t.conf", text, keys, collect, &c, err, sizeof err), 0);
    CHECK_STR(c.seen, "listen=[127.0.0.1:8470];workers=[2];"
                      "token_file=[/etc/initlab/token # not a comment];"
                      "cors_origin=[https://a.example];");
}

TEST(util_config_errors_name_file_and_line)
{
    static const struct { const char *text, *error; } cases[] = {
        {"listen = x\n\nwrokers = 2\n", "t.conf:3: unknown key 'wrokers'"},
        {"workers = 1\nworkers = 2\n", "t.conf:2: 'workers' is set twice"},
        {"listen\n", "t.conf:1: expected 'key = value'"},
        {"= 3\n", "t.conf:1: expected a key"},
        {"listen = \"open\n", "t.conf:1: unterminated quoted value"},
        {"listen = \"a\" b\n", "t.conf:1: text after the closing quote"},
        {"\n\nworkers = reject\n", "t.conf:3: workers: rejected by the caller"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Collected c = {""};
        char err[256] = "";
        CHECK_INT(config_parse("t.conf", cases[i].text, keys, collect, &c, err, sizeof err), -1);
        if (strncmp(err, cases[i].error, strlen(cases[i].error)) != 0)
            test_fail(__FILE__, __LINE__, "case %zu: \"%s\", expected \"%s...\"", i, err,
                      cases[i].error);
    }
    char err[256];
    Collected c = {""};
    CHECK_INT(config_load("/nonexistent/initlab.conf", keys, collect, &c, err, sizeof err), -1);
    CHECK(strstr(err, "/nonexistent/initlab.conf") != NULL);
}

/* Binds a datagram socket at path (or, with a leading '@', in the abstract namespace). */
static int bind_notify(const char *name)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    size_t len = strlen(name);
    memcpy(a.sun_path, name, len);
    socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    if (name[0] == '@')
        a.sun_path[0] = 0;
    else
        alen++;
    struct timeval tv = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (bind(fd, (struct sockaddr *)&a, alen) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void check_roundtrip(const char *name)
{
    int fd = bind_notify(name);
    REQUIRE(fd >= 0);
    setenv("NOTIFY_SOCKET", name, 1);
    CHECK_INT(notify_send("READY=1"), 1);
    CHECK_INT(notify_sendf("STATUS=%d queued", 3), 1);
    char buf[64];
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    CHECK_INT(n, 7);
    buf[n > 0 ? n : 0] = 0;
    CHECK_STR(buf, "READY=1");
    n = recv(fd, buf, sizeof buf - 1, 0);
    buf[n > 0 ? n : 0] = 0;
    CHECK_STR(buf, "STATUS=3 queued");
    close(fd);
}

TEST(util_notify_sends_datagrams)
{
    char *saved = getenv("NOTIFY_SOCKET") ? strdup(getenv("NOTIFY_SOCKET")) : NULL;
    char path[64];
    snprintf(path, sizeof path, "/tmp/initlab-notify-%d", (int)getpid());
    unlink(path);
    check_roundtrip(path);
    unlink(path);
    snprintf(path, sizeof path, "@initlab-notify-%d", (int)getpid());
    check_roundtrip(path);
    unsetenv("NOTIFY_SOCKET");
    CHECK_INT(notify_send("READY=1"), 0);
    setenv("NOTIFY_SOCKET", "relative/path", 1);
    CHECK_INT(notify_send("READY=1"), -1);
    setenv("NOTIFY_SOCKET", "/nonexistent/notify.sock", 1);
    CHECK_INT(notify_send("READY=1"), -1);
    if (saved)
        setenv("NOTIFY_SOCKET", saved, 1);
    else
        unsetenv("NOTIFY_SOCKET");
    free(saved);
}

TEST(util_notify_watchdog_interval)
{
    char pid[32];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    unsetenv("WATCHDOG_PID");
    unsetenv("WATCHDOG_USEC");
    CHECK_INT(notify_watchdog_usec(), 0);
    setenv("WATCHDOG_USEC", "200000", 1);
    CHECK_INT(notify_watchdog_usec(), 200000);
    setenv("WATCHDOG_PID", pid, 1);
    CHECK_INT(notify_watchdog_usec(), 200000);
    setenv("WATCHDOG_PID", "1", 1);
    CHECK_INT(notify_watchdog_usec(), 0);
    unsetenv("WATCHDOG_PID");
    setenv("WATCHDOG_USEC", "12x", 1);
    CHECK_INT(notify_watchdog_usec(), 0);
    setenv("WATCHDOG_USEC", "-5", 1);
    CHECK_INT(notify_watchdog_usec(), 0);
    unsetenv("WATCHDOG_USEC");
}
