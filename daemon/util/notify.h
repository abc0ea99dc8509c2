/* notify.h — the systemd notification protocol (sd_notify) without libsystemd.
 *
 * Under `Type=notify`, systemd passes a datagram socket in $NOTIFY_SOCKET (a path, or an
 * abstract socket written with a leading '@'); the service sends "READY=1" when it serves,
 * "WATCHDOG=1" at least every $WATCHDOG_USEC microseconds when the unit has WatchdogSec=,
 * "STATUS=..." for `systemctl status`, and "STOPPING=1" when it shuts down. Outside
 * systemd every call is a no-op. */
#ifndef INITLAB_UTIL_NOTIFY_H
#define INITLAB_UTIL_NOTIFY_H

#include <stdint.h>

/* Sends state (one or more "KEY=value" lines) to $NOTIFY_SOCKET. Returns 1 when sent, 0
 * when NOTIFY_SOCKET is unset, -1 on error (bad address, send failure). Thread-safe. */
int notify_send(const char *state);

/* Like notify_send with a printf format ("STATUS=%d jobs queued"). */
int notify_sendf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The watchdog interval in microseconds from $WATCHDOG_USEC, or 0 when there is none, it
 * does not parse, or $WATCHDOG_PID is set and names another process. Thread-safe. */
uint64_t notify_watchdog_usec(void);

#endif
