/* tfevents.h — TensorBoard event files: scalar and histogram summaries, written as
 * TensorBoard's Event messages (export/tensorboard.proto, encoded by protobuf-c, the only
 * user of it) in TFRecord framing.
 *
 * A file is a sequence of records: the length of the data (uint64, little-endian), the
 * masked CRC-32C of those 8 bytes (uint32), the data (one serialized Event), the masked
 * CRC-32C of the data; masked(c) = ((c >> 15) | (c << 17)) + 0xa282ead8. The first event
 * carries file_version "brain.Event:2". The file is named
 * events.out.tfevents.<unix seconds>.<host>.initlab, TensorBoard's pattern, in the folder
 * given (a run). */
#ifndef INITLAB_EXPORT_TFEVENTS_H
#define INITLAB_EXPORT_TFEVENTS_H

#include <stddef.h>
#include <stdint.h>

typedef struct TfEvents TfEvents;

/* A histogram: bucket i counts the values in (limits[i-1], limits[i]] (the first from
 * -DBL_MAX); num values in all, their sum and sum of squares. */
typedef struct {
    double min, max, num, sum, sum_squares;
    int n_buckets;
    const double *limits; /* (n_buckets) increasing */
    const double *counts; /* (n_buckets) */
} TfHistogram;

/* Creates dir (and its parents) when missing and a new event file in it, and writes the
 * file_version event. Returns the writer, or NULL with a message in err. */
TfEvents *tfevents_open(const char *dir, double wall_time, char *err, size_t errlen);
/* Appends a scalar (tag, step, value) / a histogram summary. Returns 0, or -1 with the
 * writer's error set (tfevents_close reports it). */
int tfevents_scalar(TfEvents *w, const char *tag, int64_t step, double wall_time, double value);
int tfevents_histogram(TfEvents *w, const char *tag, int64_t step, double wall_time,
                       const TfHistogram *h);
/* The path of the file (owned by w). */
const char *tfevents_path(const TfEvents *w);
/* Flushes, fsyncs and closes; frees w (NULL is fine). Returns 0, or -1 with the first error
 * of the writer's life in err. */
int tfevents_close(TfEvents *w, char *err, size_t errlen);

/* CRC-32C (Castagnoli) of n bytes, continuing from crc (0 to start). Can't fail. */
uint32_t tfevents_crc32c(uint32_t crc, const void *data, size_t n);

#endif
