/* decode_bench.c — JPEG decode-and-resize throughput of the data module, 1 and 2 threads.
 *
 * Usage: decode_bench [SECONDS_PER_CASE]   (default 2)
 *
 * Inputs are made here: camera-size (1600x1200) and small (96x96) procedural weed
 * photographs (data/demo.h) encoded at quality 90 with 4:2:0 chroma, as cameras write
 * them. Each case decodes the in-memory JPEGs round robin and resizes to S x S, one
 * DataCodec per thread; "files" cases read each JPEG from a file (page cache) first.
 * Printed: images/s by wall clock with 1 and 2 threads, and images per CPU-second (the
 * per-core rate, which other load on the machine does not distort). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "data/decode.h"
#include "data/demo.h"
#include "data/fsutil.h"
#include "data/resize.h"
#include "util/rng.h"

typedef struct {
    uint8_t *data;
    size_t n;
    char *path;
} Jpeg;

typedef enum { MODE_SCALED, MODE_FULL, MODE_FILE } Mode;

typedef struct {
    const Jpeg *jpegs;
    int n_jpegs, size;
    DataResize resize;
    Mode mode;
    double seconds;
    atomic_long done;
    atomic_int failed;
    pthread_mutex_t lock; /* guards cpu */
    double cpu;           /* CPU seconds of all threads */
} Case;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static double cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static void *bench_thread(void *arg)
{
    Case *c = arg;
    double c0 = cpu_s();
    DataCodec *codec = data_codec_create();
    uint8_t *out = malloc((size_t)c->size * c->size * 3);
    char reason[256];
    if (!codec || !out) {
        atomic_store(&c->failed, 1);
        goto out;
    }
    double t0 = now_s();
    for (long k = 0; now_s() - t0 < c->seconds; k++) {
        const Jpeg *j = &c->jpegs[k % c->n_jpegs];
        DataJpegStatus st = DATA_JPEG_OK;
        if (c->mode == MODE_SCALED) {
            st = data_jpeg_decode(codec, j->data, j->n, c->size, c->resize, out, reason,
                                  sizeof reason);
        } else if (c->mode == MODE_FILE) {
            st = data_jpeg_decode_file(codec, j->path, c->size, c->resize, out, reason,
                                       sizeof reason);
        } else {
            const uint8_t *rgb;
            int w, h, x0, y0, cw, ch;
            st = data_jpeg_decode_full(codec, j->data, j->n, &rgb, &w, &h, reason,
                                       sizeof reason);
            if (st == DATA_JPEG_OK) {
                data_resize_window(c->resize, w, h, &x0, &y0, &cw, &ch);
                data_resize_bilinear(rgb, w * 3, x0, y0, cw, ch, out, c->size, c->size);
            }
        }
        if (st != DATA_JPEG_OK) {
            fprintf(stderr, "decode_bench: %s\n", reason);
            atomic_store(&c->failed, 1);
            break;
        }
        atomic_fetch_add(&c->done, 1);
    }
out:
    pthread_mutex_lock(&c->lock);
    c->cpu += cpu_s() - c0;
    pthread_mutex_unlock(&c->lock);
    free(out);
    data_codec_free(codec);
    return NULL;
}

/* Images per wall-clock second of case c on `threads` threads, and per CPU second in
 * *per_cpu; -1 on failure. */
static double run(Case *c, int threads, double *per_cpu)
{
    pthread_t tid[2];
    atomic_store(&c->done, 0);
    atomic_store(&c->failed, 0);
    c->cpu = 0;
    double t0 = now_s();
    int started = 0;
    for (int t = 0; t < threads; t++)
        if (pthread_create(&tid[t], NULL, bench_thread, c) == 0)
            started++;
    for (int t = 0; t < started; t++)
        pthread_join(tid[t], NULL);
    double dt = now_s() - t0;
    if (started != threads || atomic_load(&c->failed))
        return -1;
    *per_cpu = atomic_load(&c->done) / c->cpu;
    return atomic_load(&c->done) / dt;
}

static int make_jpegs(Jpeg *out, int n, int w, int h, const char *dir, const char *tag)
{
    DataCodec *codec = data_codec_create();
    uint8_t *rgb = malloc((size_t)w * h * 3);
    if (!codec || !rgb)
        return -1;
    for (int i = 0; i < n; i++) {
        const uint8_t *jpeg;
        size_t len;
        char reason[256], name[64];
        int species = i % data_demo_species_count();
        if (data_demo_render_rect(species, w, h, rng_derive(2024, (uint64_t)i), rgb) != 0 ||
            data_jpeg_encode(codec, rgb, w, h, 3, 90, &jpeg, &len, reason, sizeof reason) != 0)
            return -1;
        out[i].data = malloc(len);
        if (!out[i].data)
            return -1;
        memcpy(out[i].data, jpeg, len);
        out[i].n = len;
        snprintf(name, sizeof name, "%s_%02d.jpg", tag, i);
        out[i].path = data_path_join(dir, name);
        if (!out[i].path || data_write_new_file(out[i].path, jpeg, len) != 0)
            return -1;
    }
    free(rgb);
    data_codec_free(codec);
    return 0;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 2.0;
    if (seconds <= 0)
        seconds = 2.0;
    char dir[] = "/tmp/initlab-decode-bench-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("decode_bench: mkdtemp");
        return 1;
    }
    enum { N_CAMERA = 6, N_SMALL = 48 };
    Jpeg camera[N_CAMERA], small[N_SMALL];
    fprintf(stderr, "decode_bench: rendering test images...\n");
    if (make_jpegs(camera, N_CAMERA, 1600, 1200, dir, "camera") != 0 ||
        make_jpegs(small, N_SMALL, 96, 96, dir, "small") != 0) {
        fprintf(stderr, "decode_bench: could not make the test images\n");
        return 1;
    }
    size_t cam_bytes = 0, small_bytes = 0;
    for (int i = 0; i < N_CAMERA; i++)
        cam_bytes += camera[i].n;
    for (int i = 0; i < N_SMALL; i++)
        small_bytes += small[i].n;
    int num, den;
    data_jpeg_scale_for(1600, 1200, 224, &num, &den);
    printf("inputs: %d camera JPEGs 1600x1200 q90 4:2:0 (mean %.0f KB), %d small 96x96 q90 "
           "(mean %.1f KB)\n", N_CAMERA, cam_bytes / 1024.0 / N_CAMERA, N_SMALL,
           small_bytes / 1024.0 / N_SMALL);
    printf("DCT scale for 1600x1200 -> 224: %d/%d; %.1f s per measurement\n\n", num, den,
           seconds);
    struct {
        const char *name;
        Jpeg *jpegs;
        int n, size;
        DataResize resize;
        Mode mode;
    } cases[] = {
        {"camera 1600x1200 -> 224 squash, DCT scaling", camera, N_CAMERA, 224,
         DATA_RESIZE_SQUASH, MODE_SCALED},
        {"camera 1600x1200 -> 224 crop, DCT scaling", camera, N_CAMERA, 224, DATA_RESIZE_CROP,
         MODE_SCALED},
        {"camera 1600x1200 -> 224 squash, from files", camera, N_CAMERA, 224,
         DATA_RESIZE_SQUASH, MODE_FILE},
        {"camera 1600x1200 -> 224 squash, full decode", camera, N_CAMERA, 224,
         DATA_RESIZE_SQUASH, MODE_FULL},
        {"camera 1600x1200 -> 128 squash, DCT scaling", camera, N_CAMERA, 128,
         DATA_RESIZE_SQUASH, MODE_SCALED},
        {"small 96x96 -> 64 squash", small, N_SMALL, 64, DATA_RESIZE_SQUASH, MODE_SCALED},
        {"small 96x96 -> 28 squash", small, N_SMALL, 28, DATA_RESIZE_SQUASH, MODE_SCALED},
    };
    printf("images/s by wall clock with 1 and 2 threads, and per CPU-second of decoding\n"
           "(the per-core rate, unaffected by other load on the machine)\n\n");
    printf("%-46s %9s %9s %9s %9s\n", "case", "1 thread", "2 threads", "cpu-s 1t", "cpu-s 2t");
    int rc = 0;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        Case c = {.jpegs = cases[k].jpegs, .n_jpegs = cases[k].n, .size = cases[k].size,
                  .resize = cases[k].resize, .mode = cases[k].mode, .seconds = seconds};
        pthread_mutex_init(&c.lock, NULL);
        double cpu1 = 0, cpu2 = 0;
        double one = run(&c, 1, &cpu1), two = run(&c, 2, &cpu2);
        pthread_mutex_destroy(&c.lock);
        if (one < 0 || two < 0) {
            rc = 1;
            continue;
        }
        printf("%-46s %9.0f %9.0f %9.0f %9.0f\n", cases[k].name, one, two, cpu1, cpu2);
        fflush(stdout);
    }
    for (int i = 0; i < N_CAMERA; i++) {
        unlink(camera[i].path);
        free(camera[i].path);
        free(camera[i].data);
    }
    for (int i = 0; i < N_SMALL; i++) {
        unlink(small[i].path);
        free(small[i].path);
        free(small[i].data);
    }
    rmdir(dir);
    return rc;
}
