/* layers_bench.c — GFLOP/s of the engine's layer kernels on MobileNet / ResNet-50 shapes.
 *
 * Usage: layers_bench [--threads N] [--batch N] [--chunk-kb KB] [--reps N] [--filter TEXT]
 *                     [--cpu] [--accumulate]
 * Times the fast conv2d forward and backward (dinp + dweight) and the direct depthwise,
 * max-pool, batch-norm and ReLU loops at batch 32 (default), best of --reps runs, and
 * prints one line per layer: milliseconds and GFLOP/s (conv: 2·N·OH·OW·K·kh·kw·C per pass;
 * the backward does twice that, once for a first layer, which needs no input gradient),
 * the weight-gradient-only backward time, or GB/s of memory touched for the direct loops.
 * --chunk-kb is the im2col block (cols) per chunk; 1024 is what a net of 2 threads uses
 * (512 KB per thread), raised like the net's to at least 256 output pixels. --cpu times
 * with the process CPU clock instead of the wall clock: with one thread on a busy machine
 * it shows what the kernel costs, not how long it waited for a core. The max-pool line
 * counts one FLOP per compared element (k·k per output) in both directions and gives no
 * dW-only time. The "mnet-0.25" depthwise shapes are MobileNet α = 0.25 at 128 px, which
 * trains at batch 64 (--batch 64). The conv and depthwise backwards overwrite their input
 * gradient, as the net runs them on a first write; --accumulate times instead a cleared
 * buffer plus the accumulating backward (memset, then dinp +=). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd/cmd.h"
#include "nn/gemm.h"
#include "nn/layers.h"
#include "util/rng.h"

typedef struct {
    const char *name;
    char kind; /* 'c' conv, 'd' depthwise, 'm' max pool */
    int H, W, C, K, k, s;
    Padding p;
} Shape;

static const Shape shapes[] = {
    {"mobilenet conv1 3x3/2", 'c', 224, 224, 3, 32, 3, 2, PAD_SAME},
    {"mobilenet pw 112 32->64", 'c', 112, 112, 32, 64, 1, 1, PAD_SAME},
    {"mobilenet pw 56 128->128", 'c', 56, 56, 128, 128, 1, 1, PAD_SAME},
    {"mobilenet pw 28 256->256", 'c', 28, 28, 256, 256, 1, 1, PAD_SAME},
    {"mobilenet pw 14 512->512", 'c', 14, 14, 512, 512, 1, 1, PAD_SAME},
    {"mobilenet pw 7 1024->1024", 'c', 7, 7, 1024, 1024, 1, 1, PAD_SAME},
    {"mobilenet dw 112 32", 'd', 112, 112, 32, 32, 3, 1, PAD_SAME},
    {"mobilenet dw 113/2 64 valid", 'd', 113, 113, 64, 64, 3, 2, PAD_VALID},
    {"mobilenet dw 56 128", 'd', 56, 56, 128, 128, 3, 1, PAD_SAME},
    {"mobilenet dw 14 512", 'd', 14, 14, 512, 512, 3, 1, PAD_SAME},
    {"mobilenet dw 7 1024", 'd', 7, 7, 1024, 1024, 3, 1, PAD_SAME},
    {"mnet-0.25 dw 64 8", 'd', 64, 64, 8, 8, 3, 1, PAD_SAME},
    {"mnet-0.25 dw 65/2 16 valid", 'd', 65, 65, 16, 16, 3, 2, PAD_VALID},
    {"mnet-0.25 dw 32 32", 'd', 32, 32, 32, 32, 3, 1, PAD_SAME},
    {"mnet-0.25 dw 33/2 32 valid", 'd', 33, 33, 32, 32, 3, 2, PAD_VALID},
    {"mnet-0.25 dw 16 64", 'd', 16, 16, 64, 64, 3, 1, PAD_SAME},
    {"mnet-0.25 dw 17/2 64 valid", 'd', 17, 17, 64, 64, 3, 2, PAD_VALID},
    {"mnet-0.25 dw 8 128", 'd', 8, 8, 128, 128, 3, 1, PAD_SAME},
    {"mnet-0.25 dw 9/2 128 valid", 'd', 9, 9, 128, 128, 3, 2, PAD_VALID},
    {"mnet-0.25 dw 4 256", 'd', 4, 4, 256, 256, 3, 1, PAD_SAME},
    {"resnet conv1 7x7/2 valid", 'c', 230, 230, 3, 64, 7, 2, PAD_VALID},
    {"resnet 3x3 56 64->64", 'c', 56, 56, 64, 64, 3, 1, PAD_SAME},
    {"resnet 3x3 28 128->128", 'c', 28, 28, 128, 128, 3, 1, PAD_SAME},
    {"resnet 3x3 14 256->256", 'c', 14, 14, 256, 256, 3, 1, PAD_SAME},
    {"resnet 3x3 7 512->512", 'c', 7, 7, 512, 512, 3, 1, PAD_SAME},
    {"resnet 1x1 56 64->256", 'c', 56, 56, 64, 256, 1, 1, PAD_SAME},
    {"resnet 1x1 56 256->64", 'c', 56, 56, 256, 64, 1, 1, PAD_SAME},
    {"resnet 1x1/2 56 256->512", 'c', 56, 56, 256, 512, 1, 2, PAD_VALID},
    {"resnet 1x1/2 56 256->128", 'c', 56, 56, 256, 128, 1, 2, PAD_VALID},
    {"resnet 1x1 28 128->512", 'c', 28, 28, 128, 512, 1, 1, PAD_SAME},
    {"resnet 1x1 14 1024->256", 'c', 14, 14, 1024, 256, 1, 1, PAD_SAME},
    {"resnet maxpool 3x3/2 114 64", 'm', 114, 114, 64, 64, 3, 2, PAD_VALID},
};

static clockid_t clock_id = CLOCK_MONOTONIC;

static double now(void)
{
    struct timespec ts;
    clock_gettime(clock_id, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float *buffer(size_t n, Rng *rng)
{
    float *x = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    if (!x) {
        fprintf(stderr, "layers_bench: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(rng_uniform(rng) - 0.5);
    return x;
}

int main(int argc, char **argv)
{
    startup_runtime(argc, argv);
    int threads = 2, batch = 32, reps = 3;
    size_t chunk_kb = 1024;
    const char *filter = NULL;
    bool accumulate = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
            batch = atoi(argv[++i]);
        else if (strcmp(argv[i], "--chunk-kb") == 0 && i + 1 < argc)
            chunk_kb = (size_t)atol(argv[++i]);
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--filter") == 0 && i + 1 < argc)
            filter = argv[++i];
        else if (strcmp(argv[i], "--cpu") == 0)
            clock_id = CLOCK_PROCESS_CPUTIME_ID;
        else if (strcmp(argv[i], "--accumulate") == 0)
            accumulate = true;
        else {
            fprintf(stderr, "usage: layers_bench [--threads N] [--batch N] [--chunk-kb KB] "
                            "[--reps N] [--filter TEXT] [--cpu] [--accumulate]\n");
            return 2;
        }
    }
    printf("OpenBLAS core %s, %d threads, batch %d, im2col chunk %zu KB, %s clock\n",
           gemm_core_name(), threads, batch, chunk_kb,
           clock_id == CLOCK_MONOTONIC ? "wall" : "CPU");
    printf("%-30s %10s %8s %10s %8s %10s\n", "layer", "fwd ms", "GFLOP/s", "bwd ms", "GFLOP/s",
           "dW-only ms");
    Rng rng;
    rng_seed(&rng, 1);
    double tot_f = 0, tot_b = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const Shape *s = &shapes[i];
        if (filter && !strstr(s->name, filter))
            continue;
        ConvGeom g;
        if (shape_conv_geom(&g, batch, s->H, s->W, s->C, s->K, s->k, s->k, s->s, s->p))
            continue;
        size_t nin = (size_t)batch * s->H * s->W * s->C;
        size_t nout = (size_t)batch * g.OH * g.OW * s->K;
        size_t nw = s->kind == 'c' ? (size_t)s->k * s->k * s->C * s->K : (size_t)s->k * s->k * s->K;
        /* as the net sizes it: at least 256 output pixels of im2col per chunk */
        size_t chunk = chunk_kb * 1024, kk = (size_t)s->k * s->k * s->C;
        if (chunk < 256 * kk * sizeof(float))
            chunk = 256 * kk * sizeof(float);
        size_t wf = s->kind == 'c'   ? conv2d_workspace(&g, chunk, threads)
                    : s->kind == 'd' ? depthwise_workspace(&g, threads)
                                     : 0;
        float *x = buffer(nin, &rng), *w = buffer(nw, &rng), *y = buffer(nout, &rng);
        float *dy = buffer(nout, &rng), *dx = buffer(nin, &rng), *dw = buffer(nw, &rng);
        float *work = buffer(wf ? wf : 1, &rng);
        double flops = s->kind == 'c'   ? 2.0 * nout * s->k * s->k * s->C
                       : s->kind == 'd' ? 2.0 * nout * s->k * s->k
                                        : (double)nout * s->k * s->k;
        if (s->kind == 'm') {
            double bf = 1e30, bb = 1e30;
            for (int r = 0; r < reps; r++) {
                double t0 = now();
                maxpool_forward(y, x, &g, threads);
                double t1 = now();
                maxpool_backward(dx, dy, x, y, &g, threads);
                double t2 = now();
                bf = t1 - t0 < bf ? t1 - t0 : bf;
                bb = t2 - t1 < bb ? t2 - t1 : bb;
            }
            printf("%-30s %10.2f %8.1f %10.2f %8.1f\n", s->name, bf * 1e3, flops / bf / 1e9,
                   bb * 1e3, flops / bb / 1e9);
            free(x), free(w), free(y), free(dy), free(dx), free(dw), free(work);
            continue;
        }
        double bf = 1e30, bb = 1e30, bw = 1e30;
        for (int r = 0; r < reps; r++) {
            double t0 = now();
            if (s->kind == 'c')
                conv2d_forward(y, x, w, NULL, &g, work, wf, threads);
            else
                depthwise_forward(y, x, w, NULL, &g, threads);
            double t1 = now();
            if (accumulate) /* what the net paid before first writes overwrote */
                memset(dx, 0, sizeof(float) * nin);
            if (s->kind == 'c') /* a first layer (3 channels) needs no input gradient */
                conv2d_backward(s->C == 3 ? NULL : dx, dw, NULL, dy, x, w, &g, work, wf, threads,
                                accumulate);
            else
                depthwise_backward(dx, dw, NULL, dy, x, w, &g, work, threads, accumulate);
            double t2 = now();
            if (s->kind == 'c')
                conv2d_backward(NULL, dw, NULL, dy, x, w, &g, work, wf, threads, false);
            else
                depthwise_backward(NULL, dw, NULL, dy, x, w, &g, work, threads, false);
            double t3 = now();
            bf = t1 - t0 < bf ? t1 - t0 : bf;
            bb = t2 - t1 < bb ? t2 - t1 : bb;
            bw = t3 - t2 < bw ? t3 - t2 : bw;
        }
        tot_f += bf, tot_b += bb;
        double bflops = s->C == 3 ? flops : 2 * flops;
        printf("%-30s %10.2f %8.1f %10.2f %8.1f %10.2f\n", s->name, bf * 1e3, flops / bf / 1e9,
               bb * 1e3, bflops / bb / 1e9, bw * 1e3);
        free(x), free(w), free(y), free(dy), free(dx), free(dw), free(work);
    }
    /* Direct loops over a MobileNet-sized tensor (batch, 112, 112, 64). */
    if (!filter || strstr("batchnorm relu6", filter)) {
        int M = batch * 112 * 112, C = 64;
        size_t n = (size_t)M * C;
        float *x = buffer(n, &rng), *y = buffer(n, &rng), *dy = buffer(n, &rng);
        float *dx = buffer(n, &rng), *p = buffer(5 * (size_t)C, &rng);
        float *work = buffer(batchnorm_workspace(C, threads), &rng);
        double bn_f = 1e30, bn_b = 1e30, act_f = 1e30, act_b = 1e30;
        for (int r = 0; r < reps; r++) {
            double t0 = now();
            batchnorm_forward_train(y, p + 2 * C, p + 3 * C, p + 4 * C, x, p, p + C, M, C, 1e-3f,
                                    work, threads);
            double t1 = now();
            batchnorm_backward_train(dx, p, p + C, dy, x, p, p + 2 * C, p + 3 * C, M, C, work,
                                     threads);
            double t2 = now();
            activation_forward(y, x, n, ACT_RELU6, threads);
            double t3 = now();
            activation_backward(dx, dy, y, n, ACT_RELU6, threads);
            double t4 = now();
            bn_f = t1 - t0 < bn_f ? t1 - t0 : bn_f;
            bn_b = t2 - t1 < bn_b ? t2 - t1 : bn_b;
            act_f = t3 - t2 < act_f ? t3 - t2 : act_f;
            act_b = t4 - t3 < act_b ? t4 - t3 : act_b;
        }
        double gb = n * 4.0 / 1e9; /* one pass over the tensor */
        printf("%-30s %10.2f %6.1fGB/s %8.2f %6.1fGB/s\n", "batchnorm 112x112x64", bn_f * 1e3,
               3 * gb / bn_f, bn_b * 1e3, 5 * gb / bn_b);
        printf("%-30s %10.2f %6.1fGB/s %8.2f %6.1fGB/s\n", "relu6 112x112x64", act_f * 1e3,
               2 * gb / act_f, act_b * 1e3, 4 * gb / act_b);
        free(x), free(y), free(dy), free(dx), free(p), free(work);
    }
    printf("%-30s %10.2f %8s %10.2f\n", "total conv/depthwise", tot_f * 1e3, "", tot_b * 1e3);
    return 0;
}
