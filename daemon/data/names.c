/* names.c — the lossless text form of file and class names (names.h). */
#include "data/names.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s[0..n) (1..4), or 0 when s starts with an invalid
 * one. n >= 1. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    uint32_t cp, min;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2, cp = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, cp = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, cp = c & 0x07, min = 0x10000;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

bool data_utf8_valid(const char *bytes, size_t n)
{
    const unsigned char *s = (const unsigned char *)bytes;
    for (size_t i = 0; i < n;) {
        size_t l = utf8_seq(s + i, n - i);
        if (!l)
            return false;
        i += l;
    }
    return true;
}

/* Writes the text form of name into out (when out is not NULL, at most cap bytes, whole
 * escapes only) and returns its full length, not counting the terminator. */
static size_t name_text(const char *name, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *s = (const unsigned char *)name;
    size_t n = strlen(name), len = 0;
    for (size_t i = 0; i < n;) {
        char piece[4];
        size_t pl, take = utf8_seq(s + i, n - i);
        if (take == 1 && s[i] == '\\') {
            piece[0] = piece[1] = '\\';
            pl = 2;
        } else if (take == 0 || (take == 1 && (s[i] < 0x20 || s[i] == 0x7F))) {
            piece[0] = '\\';
            piece[1] = 'x';
            piece[2] = hex[s[i] >> 4];
            piece[3] = hex[s[i] & 15];
            pl = 4;
            take = 1;
        } else {
            memcpy(piece, s + i, take);
            pl = take;
        }
        if (out) {
            if (len + pl > cap)
                return len;
            memcpy(out + len, piece, pl);
        }
        len += pl;
        i += take;
    }
    return len;
}

char *data_name_text(const char *name)
{
    size_t len = name_text(name, NULL, 0);
    char *t = malloc(len + 1);
    if (!t)
        return NULL;
    name_text(name, t, len);
    t[len] = '\0';
    return t;
}

const char *data_name_text_buf(const char *name, char *buf, size_t size)
{
    if (!size)
        return buf;
    size_t len = name_text(name, buf, size - 1);
    buf[len] = '\0';
    return buf;
}
