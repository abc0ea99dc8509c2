/* crc32.h — CRC-32 (IEEE 802.3, the zlib/PNG polynomial), for checkpoint integrity. */
#ifndef INITLAB_UTIL_CRC32_H
#define INITLAB_UTIL_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* Continues crc over n bytes; start with crc = 0. crc32_update(0, "123456789", 9) is
 * 0xCBF43926. Thread-safe. */
uint32_t crc32_update(uint32_t crc, const void *data, size_t n);

#endif
