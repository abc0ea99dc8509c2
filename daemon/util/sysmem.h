/* sysmem.h — how much memory the machine can still give this process. */
#ifndef INITLAB_UTIL_SYSMEM_H
#define INITLAB_UTIL_SYSMEM_H

#include <stdint.h>

/* MemAvailable of /proc/meminfo in bytes (the kernel's estimate of memory available for
 * new work without swapping), or -1 when it cannot be read — as under systemd's
 * ProcSubset=pid, where callers skip their check. Thread-safe. */
int64_t sysmem_available(void);

#endif
