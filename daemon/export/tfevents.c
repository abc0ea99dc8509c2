/* tfevents.c — TensorBoard event files (tfevents.h): Events encoded by protobuf-c from
 * export/tensorboard.proto, framed as TFRecords. */
#include "export/tfevents.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tensorboard.pb-c.h"
#include "util/fileio.h"

struct TfEvents {
    FILE *f;
    char path[4352];
    char err[4608];  /* the first error; "" while none */
};

uint32_t tfevents_crc32c(uint32_t crc, const void *data, size_t n)
{
    static uint32_t table[256];
    static int ready;
    if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
            table[i] = c;
        }
        __atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
    }
    const unsigned char *p = data;
    crc = ~crc;
    for (size_t i = 0; i < n; i++)
        crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

static uint32_t masked(uint32_t crc)
{
    return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

static void put_le(unsigned char *b, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        b[i] = (unsigned char)(v >> (8 * i));
}

/* Serializes event and appends it as one record. */
static int write_event(TfEvents *w, const Tensorboard__Event *event)
{
    if (w->err[0])
        return -1;
    size_t n = tensorboard__event__get_packed_size(event);
    unsigned char *buf = malloc(n ? n : 1);
    if (!buf) {
        snprintf(w->err, sizeof w->err, "out of memory");
        return -1;
    }
    tensorboard__event__pack(event, buf);
    unsigned char head[12], tail[4];
    put_le(head, n, 8);
    put_le(head + 8, masked(tfevents_crc32c(0, head, 8)), 4);
    put_le(tail, masked(tfevents_crc32c(0, buf, n)), 4);
    int rc = fwrite(head, 1, sizeof head, w->f) == sizeof head &&
                     fwrite(buf, 1, n, w->f) == n && fwrite(tail, 1, sizeof tail, w->f) == 4
                 ? 0
                 : -1;
    free(buf);
    if (rc < 0)
        snprintf(w->err, sizeof w->err, "%s: %s", w->path, strerror(errno));
    return rc;
}

TfEvents *tfevents_open(const char *dir, double wall_time, char *err, size_t errlen)
{
    if (file_mkdirs(dir, err, errlen) < 0)
        return NULL;
    TfEvents *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    snprintf(w->path, sizeof w->path, "%s/events.out.tfevents.%lld.%s.initlab", dir,
             (long long)wall_time, host);
    w->f = fopen(w->path, "wbx");
    if (!w->f) {
        snprintf(err, errlen, "%s: %s", w->path, strerror(errno));
        free(w);
        return NULL;
    }
    Tensorboard__SourceMetadata source = TENSORBOARD__SOURCE_METADATA__INIT;
    source.writer = "initlab";
    Tensorboard__Event e = TENSORBOARD__EVENT__INIT;
    e.wall_time = wall_time;
    e.what_case = TENSORBOARD__EVENT__WHAT_FILE_VERSION;
    e.file_version = "brain.Event:2";
    e.source_metadata = &source;
    if (write_event(w, &e) < 0) {
        snprintf(err, errlen, "%s", w->err);
        fclose(w->f);
        free(w);
        return NULL;
    }
    return w;
}

/* Appends an Event holding one summary value. */
static int write_value(TfEvents *w, int64_t step, double wall_time,
                       Tensorboard__Summary__Value *v)
{
    Tensorboard__Summary__Value *values[1] = {v};
    Tensorboard__Summary summary = TENSORBOARD__SUMMARY__INIT;
    summary.n_value = 1;
    summary.value = values;
    Tensorboard__Event e = TENSORBOARD__EVENT__INIT;
    e.wall_time = wall_time;
    e.step = step;
    e.what_case = TENSORBOARD__EVENT__WHAT_SUMMARY;
    e.summary = &summary;
    return write_event(w, &e);
}

int tfevents_scalar(TfEvents *w, const char *tag, int64_t step, double wall_time, double value)
{
    Tensorboard__Summary__Value v = TENSORBOARD__SUMMARY__VALUE__INIT;
    v.tag = (char *)tag;
    v.value_case = TENSORBOARD__SUMMARY__VALUE__VALUE_SIMPLE_VALUE;
    v.simple_value = (float)value;
    return write_value(w, step, wall_time, &v);
}

int tfevents_histogram(TfEvents *w, const char *tag, int64_t step, double wall_time,
                       const TfHistogram *h)
{
    Tensorboard__HistogramProto histo = TENSORBOARD__HISTOGRAM_PROTO__INIT;
    histo.min = h->min;
    histo.max = h->max;
    histo.num = h->num;
    histo.sum = h->sum;
    histo.sum_squares = h->sum_squares;
    histo.n_bucket_limit = (size_t)h->n_buckets;
    histo.bucket_limit = (double *)h->limits;
    histo.n_bucket = (size_t)h->n_buckets;
    histo.bucket = (double *)h->counts;
    Tensorboard__Summary__Value v = TENSORBOARD__SUMMARY__VALUE__INIT;
    v.tag = (char *)tag;
    v.value_case = TENSORBOARD__SUMMARY__VALUE__VALUE_HISTO;
    v.histo = &histo;
    return write_value(w, step, wall_time, &v);
}

const char *tfevents_path(const TfEvents *w)
{
    return w->path;
}

int tfevents_close(TfEvents *w, char *err, size_t errlen)
{
    if (!w)
        return 0;
    if (!w->err[0] && (fflush(w->f) != 0 || fsync(fileno(w->f)) != 0))
        snprintf(w->err, sizeof w->err, "%s: %s", w->path, strerror(errno));
    if (fclose(w->f) != 0 && !w->err[0])
        snprintf(w->err, sizeof w->err, "%s: %s", w->path, strerror(errno));
    int rc = w->err[0] ? -1 : 0;
    if (rc < 0)
        snprintf(err, errlen, "%s", w->err);
    free(w);
    return rc;
}
