/* decode.c — TurboJPEG decoding with DCT scaling, colour conversion, resizing and encoding
 * (decode.h). The only includer of turbojpeg.h in initlab. */
#include "data/decode.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <turbojpeg.h>
#include <unistd.h>

#include "data/fsutil.h"

#define HEAD_BYTES (256 * 1024)
#define TAIL_BYTES 4096

struct DataCodec {
    tjhandle dec;
    tjhandle enc;          /* created on first encode */
    uint8_t *file;         /* file bytes */
    size_t file_cap;
    uint8_t *pix;          /* decoded (scaled) image, RGB or CMYK */
    size_t pix_cap;
    unsigned char *jpeg;   /* encoder output, tjAlloc'ed */
    unsigned long jpeg_cap;
};

const char *data_jpeg_status_name(DataJpegStatus st)
{
    switch (st) {
    case DATA_JPEG_OK: return "ok";
    case DATA_JPEG_UNREADABLE: return "unreadable";
    case DATA_JPEG_EMPTY: return "zero-byte file";
    case DATA_JPEG_NOT_JPEG: return "not a JPEG";
    case DATA_JPEG_TRUNCATED: return "truncated";
    case DATA_JPEG_CORRUPT: return "corrupt";
    case DATA_JPEG_TOO_LARGE: return "too large";
    }
    return "unknown";
}

DataCodec *data_codec_create(void)
{
    DataCodec *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->dec = tjInitDecompress();
    if (!c->dec) {
        free(c);
        return NULL;
    }
    return c;
}

void data_codec_free(DataCodec *c)
{
    if (!c)
        return;
    tjDestroy(c->dec);
    if (c->enc)
        tjDestroy(c->enc);
    tjFree(c->jpeg);
    free(c->file);
    free(c->pix);
    free(c);
}

static int grow(uint8_t **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    uint8_t *nb = realloc(*buf, need);
    if (!nb)
        return -1;
    *buf = nb;
    *cap = need;
    return 0;
}

/* A fresh decompressor after a failed call: TurboJPEG 2.1 leaves a handle whose
 * tjDecompressHeader3 failed mid-header in a state that fails every later call. Returns 0,
 * or -1 when none can be made (c->dec stays NULL and later calls report it). */
static int reset_decoder(DataCodec *c)
{
    if (c->dec)
        tjDestroy(c->dec);
    c->dec = tjInitDecompress();
    return c->dec ? 0 : -1;
}

/* Formats a one-line reason (TurboJPEG messages carry no newline, but be safe). */
static void set_reason(char *reason, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_reason(char *reason, size_t len, const char *fmt, ...)
{
    if (!len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, len, fmt, ap);
    va_end(ap);
    for (char *p = reason; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
}

void data_jpeg_scale_for(int w, int h, int size, int *num, int *denom)
{
    int nf = 0;
    tjscalingfactor *sf = tjGetScalingFactors(&nf);
    int bn = 1, bd = 1;
    long best = (long)w * h;
    for (int i = 0; sf && i < nf; i++) {
        if (sf[i].num > sf[i].denom)
            continue;
        int sw = TJSCALED(w, sf[i]), sh = TJSCALED(h, sf[i]);
        if (sw >= size && sh >= size && (long)sw * sh < best) {
            best = (long)sw * sh;
            bn = sf[i].num;
            bd = sf[i].denom;
        }
    }
    *num = bn;
    *denom = bd;
}

/* True for a libjpeg warning that says the image data is damaged (decode.h). */
static int damaged_data_warning(const char *msg)
{
    if (strstr(msg, "Corrupt JPEG data"))
        return !strstr(msg, "ICC");
    return strstr(msg, "Invalid SOS parameters") || strstr(msg, "Inconsistent progression");
}

/* Status of a failed tjDecompress* (decode.h says which warnings are damage). */
static DataJpegStatus decode_failure(tjhandle h, char *reason, size_t len)
{
    const char *msg = tjGetErrorStr2(h);
    int fatal = tjGetErrorCode(h) == TJERR_FATAL;
    if (strcasestr(msg, "premature end")) {
        set_reason(reason, len, "truncated: %s", msg);
        return DATA_JPEG_TRUNCATED;
    }
    if (!fatal && !damaged_data_warning(msg))
        return DATA_JPEG_OK;
    set_reason(reason, len, "corrupt: %s", msg);
    return DATA_JPEG_CORRUPT;
}

static DataJpegStatus header(DataCodec *c, const uint8_t *jpeg, size_t n, int *w, int *h,
                             int *cs, char *reason, size_t len)
{
    int subsamp = 0;
    if (n < 3 || jpeg[0] != 0xFF || jpeg[1] != 0xD8 || jpeg[2] != 0xFF) {
        set_reason(reason, len, "not a JPEG: no start-of-image marker");
        return DATA_JPEG_NOT_JPEG;
    }
    if (!c->dec && reset_decoder(c) != 0) {
        set_reason(reason, len, "unreadable: cannot initialize TurboJPEG");
        return DATA_JPEG_UNREADABLE;
    }
    if (tjDecompressHeader3(c->dec, jpeg, (unsigned long)n, w, h, &subsamp, cs) != 0) {
        const char *msg = tjGetErrorStr2(c->dec);
        DataJpegStatus st = DATA_JPEG_NOT_JPEG;
        if (strcasestr(msg, "premature end") || strstr(msg, "contains no image")) {
            set_reason(reason, len, "truncated: header incomplete (%s)", msg);
            st = DATA_JPEG_TRUNCATED;
        } else {
            set_reason(reason, len, "not a JPEG: %s", msg);
        }
        reset_decoder(c);
        return st;
    }
    if (*w <= 0 || *h <= 0) {
        set_reason(reason, len, "not a JPEG: no image in the data");
        return DATA_JPEG_NOT_JPEG;
    }
    if ((long)*w * *h > DATA_JPEG_MAX_PIXELS) {
        set_reason(reason, len, "too large: %dx%d pixels, more than the %ld an image may have",
                   *w, *h, DATA_JPEG_MAX_PIXELS);
        return DATA_JPEG_TOO_LARGE;
    }
    return DATA_JPEG_OK;
}

/* Decodes at the factor num/denom into c->pix as packed RGB; sets *sw, *sh. */
static DataJpegStatus decode_scaled(DataCodec *c, const uint8_t *jpeg, size_t n, int w, int h,
                                    int cs, int num, int denom, int *sw, int *sh,
                                    char *reason, size_t len)
{
    tjscalingfactor f = {num, denom};
    *sw = TJSCALED(w, f);
    *sh = TJSCALED(h, f);
    int cmyk = cs == TJCS_CMYK || cs == TJCS_YCCK;
    int pf = cmyk ? TJPF_CMYK : TJPF_RGB;
    size_t px = (size_t)*sw * *sh;
    if (grow(&c->pix, &c->pix_cap, px * (cmyk ? 4 : 3)) != 0) {
        set_reason(reason, len, "unreadable: out of memory");
        return DATA_JPEG_UNREADABLE;
    }
    if (tjDecompress2(c->dec, jpeg, (unsigned long)n, c->pix, *sw, 0, *sh, pf, 0) != 0) {
        DataJpegStatus st = decode_failure(c->dec, reason, len);
        if (tjGetErrorCode(c->dec) == TJERR_FATAL)
            reset_decoder(c);
        if (st != DATA_JPEG_OK)
            return st;
    }
    if (cmyk) {
        /* Adobe (inverted) CMYK: each stored value is 255 - ink. In place: dst <= src. */
        uint8_t *p = c->pix;
        for (size_t i = 0; i < px; i++) {
            unsigned k = p[4 * i + 3];
            unsigned r = (p[4 * i] * k + 127) / 255;
            unsigned g = (p[4 * i + 1] * k + 127) / 255;
            unsigned b = (p[4 * i + 2] * k + 127) / 255;
            p[3 * i] = (uint8_t)r;
            p[3 * i + 1] = (uint8_t)g;
            p[3 * i + 2] = (uint8_t)b;
        }
    }
    return DATA_JPEG_OK;
}

DataJpegStatus data_jpeg_decode(DataCodec *c, const uint8_t *jpeg, size_t n, int size,
                                DataResize mode, uint8_t *out, char *reason, size_t len)
{
    int w, h, cs, num, denom, sw, sh;
    DataJpegStatus st = header(c, jpeg, n, &w, &h, &cs, reason, len);
    if (st != DATA_JPEG_OK)
        return st;
    data_jpeg_scale_for(w, h, size, &num, &denom);
    st = decode_scaled(c, jpeg, n, w, h, cs, num, denom, &sw, &sh, reason, len);
    if (st != DATA_JPEG_OK)
        return st;
    int x0, y0, cw, ch;
    data_resize_window(mode, sw, sh, &x0, &y0, &cw, &ch);
    data_resize_bilinear(c->pix, sw * 3, x0, y0, cw, ch, out, size, size);
    return DATA_JPEG_OK;
}

DataJpegStatus data_jpeg_decode_file(DataCodec *c, const char *path, int size,
                                     DataResize mode, uint8_t *out, char *reason, size_t len)
{
    size_t n = 0;
    int rc = data_read_file(path, &c->file, &c->file_cap, &n);
    if (rc != 0) {
        set_reason(reason, len, "unreadable: %s", strerror(-rc));
        return DATA_JPEG_UNREADABLE;
    }
    if (n == 0) {
        set_reason(reason, len, "zero-byte file");
        return DATA_JPEG_EMPTY;
    }
    return data_jpeg_decode(c, c->file, n, size, mode, out, reason, len);
}

DataJpegStatus data_jpeg_decode_at(DataCodec *c, int root_fd, const char *rel, int size,
                                   DataResize mode, uint8_t *out, char *reason, size_t len)
{
    size_t n = 0;
    int fd = data_open_beneath(root_fd, rel, O_RDONLY | O_NONBLOCK);
    if (fd < 0) {
        set_reason(reason, len, "unreadable: %s", data_open_error(fd));
        return DATA_JPEG_UNREADABLE;
    }
    struct stat st;
    int rc = fstat(fd, &st) != 0 ? -errno : !S_ISREG(st.st_mode) ? -EINVAL
                                 : data_read_fd(fd, &c->file, &c->file_cap, &n);
    close(fd);
    if (rc != 0) {
        set_reason(reason, len, "unreadable: %s",
                   rc == -EINVAL ? "not a regular file" : strerror(-rc));
        return DATA_JPEG_UNREADABLE;
    }
    if (n == 0) {
        set_reason(reason, len, "zero-byte file");
        return DATA_JPEG_EMPTY;
    }
    return data_jpeg_decode(c, c->file, n, size, mode, out, reason, len);
}

DataJpegStatus data_jpeg_decode_full(DataCodec *c, const uint8_t *jpeg, size_t n,
                                     const uint8_t **rgb, int *w, int *h, char *reason,
                                     size_t len)
{
    int cs, sw, sh;
    DataJpegStatus st = header(c, jpeg, n, w, h, &cs, reason, len);
    if (st != DATA_JPEG_OK)
        return st;
    st = decode_scaled(c, jpeg, n, *w, *h, cs, 1, 1, &sw, &sh, reason, len);
    if (st != DATA_JPEG_OK)
        return st;
    *rgb = c->pix;
    return DATA_JPEG_OK;
}

static int pread_full(int fd, uint8_t *buf, size_t n, off_t off)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, buf + got, n - got, off + (off_t)got);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            return -EIO; /* the file shrank under us */
        got += (size_t)r;
    }
    return 0;
}

DataJpegStatus data_jpeg_check(DataCodec *c, int fd, bool full, int *wp, int *hp,
                               char *reason, size_t len)
{
    DataJpegStatus st = DATA_JPEG_OK;
    int w = 0, h = 0, cs = 0, rc;
    if (len)
        reason[0] = '\0';
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        set_reason(reason, len, "unreadable: not a regular file");
        st = DATA_JPEG_UNREADABLE;
        goto done;
    }
    size_t size = (size_t)sb.st_size;
    if (size == 0) {
        set_reason(reason, len, "zero-byte file");
        st = DATA_JPEG_EMPTY;
        goto done;
    }
    size_t head = size < HEAD_BYTES ? size : HEAD_BYTES;
    size_t tail = size < TAIL_BYTES ? size : TAIL_BYTES;
    if (grow(&c->file, &c->file_cap, head + tail) != 0) {
        set_reason(reason, len, "unreadable: out of memory");
        st = DATA_JPEG_UNREADABLE;
        goto done;
    }
    rc = pread_full(fd, c->file, head, 0);
    if (rc == 0 && head < size)
        rc = pread_full(fd, c->file + head, tail, (off_t)(size - tail));
    if (rc != 0) {
        set_reason(reason, len, "unreadable: %s", strerror(-rc));
        st = DATA_JPEG_UNREADABLE;
        goto done;
    }
    const uint8_t *t = head < size ? c->file + head : c->file + size - tail;
    int eoi = 0;
    for (size_t i = tail; i >= 2 && !eoi; i--)
        eoi = t[i - 2] == 0xFF && t[i - 1] == 0xD9;
    int soi = size >= 3 && c->file[0] == 0xFF && c->file[1] == 0xD8 && c->file[2] == 0xFF;

    size_t have = head; /* c->file[0..have) holds the start of the file */
    st = header(c, c->file, head, &w, &h, &cs, reason, len);
    if (st != DATA_JPEG_OK && st != DATA_JPEG_TOO_LARGE && soi && head < size) {
        /* the header may run past the first HEAD_BYTES (large EXIF/ICC blocks) */
        if (grow(&c->file, &c->file_cap, size) != 0 ||
            (rc = pread_full(fd, c->file, size, 0)) != 0) {
            set_reason(reason, len, "unreadable: read failed");
            st = DATA_JPEG_UNREADABLE;
            goto done;
        }
        have = size;
        st = header(c, c->file, size, &w, &h, &cs, reason, len);
    }
    if (st == DATA_JPEG_NOT_JPEG && soi && !eoi) {
        /* a JPEG start, no end, a header that breaks off: the file was cut short */
        char msg[200];
        snprintf(msg, sizeof msg, "%s", reason);
        set_reason(reason, len, "truncated: header incomplete (%s)", msg);
        st = DATA_JPEG_TRUNCATED;
    }
    if (st != DATA_JPEG_OK || (eoi && !full))
        goto done;

    if (have < size && (grow(&c->file, &c->file_cap, size) != 0 ||
                        (rc = pread_full(fd, c->file, size, 0)) != 0)) {
        set_reason(reason, len, "unreadable: read failed");
        st = DATA_JPEG_UNREADABLE;
        goto done;
    }
    int sw, sh;
    st = decode_scaled(c, c->file, size, w, h, cs, 1, 8, &sw, &sh, reason, len);
    if (st == DATA_JPEG_OK && !eoi) {
        /* decodes cleanly, data follows the image (e.g. an appended trailer): fine */
    } else if (st == DATA_JPEG_CORRUPT && !eoi) {
        char msg[200];
        snprintf(msg, sizeof msg, "%s", reason);
        set_reason(reason, len, "truncated: no end-of-image marker (%s)", msg);
        st = DATA_JPEG_TRUNCATED;
    }
done:
    if (st == DATA_JPEG_OK) {
        if (wp)
            *wp = w;
        if (hp)
            *hp = h;
    }
    return st;
}

int data_jpeg_encode(DataCodec *c, const uint8_t *pix, int w, int h, int channels,
                     int quality, const uint8_t **jpeg, size_t *n, char *reason, size_t len)
{
    int pf, samp;
    switch (channels) {
    case 1: pf = TJPF_GRAY; samp = TJSAMP_GRAY; break;
    case 3: pf = TJPF_RGB; samp = quality >= 100 ? TJSAMP_444 : TJSAMP_420; break;
    case 4: pf = TJPF_CMYK; samp = quality >= 100 ? TJSAMP_444 : TJSAMP_420; break;
    default:
        set_reason(reason, len, "encode: %d channels unsupported", channels);
        return -1;
    }
    if (quality < 1 || quality > 100 || w <= 0 || h <= 0) {
        set_reason(reason, len, "encode: bad quality or size");
        return -1;
    }
    if (!c->enc && !(c->enc = tjInitCompress())) {
        set_reason(reason, len, "encode: cannot initialize TurboJPEG");
        return -1;
    }
    unsigned long need = tjBufSize(w, h, samp);
    if (need == (unsigned long)-1) {
        set_reason(reason, len, "encode: image too large");
        return -1;
    }
    if (need > c->jpeg_cap) {
        tjFree(c->jpeg);
        c->jpeg = tjAlloc((int)need);
        c->jpeg_cap = c->jpeg ? need : 0;
        if (!c->jpeg) {
            set_reason(reason, len, "encode: out of memory");
            return -1;
        }
    }
    unsigned long size = c->jpeg_cap;
    if (tjCompress2(c->enc, pix, w, 0, h, pf, &c->jpeg, &size, samp, quality,
                    TJFLAG_NOREALLOC) != 0) {
        set_reason(reason, len, "encode: %s", tjGetErrorStr2(c->enc));
        return -1;
    }
    *jpeg = c->jpeg;
    *n = size;
    return 0;
}
