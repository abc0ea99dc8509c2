/* batchnorm_vec.h — batchnorm.c's passes over the rows, compiled once per instruction set.
 *
 * Not a header of its own: batchnorm.c includes it once for each instruction set, after
 * defining SFX(name) (the name with the set's suffix), inside #pragma GCC target for that
 * set (the build's own flags for the generic one), so that a binary built for x86-64-v2
 * still runs these loops with AVX2 or AVX-512 vectors, chosen at run time. They are plain C
 * that the compiler vectorizes; ISO C forbids contracting a·b + c into an FMA, so every set
 * rounds each operation alike and gives the same bits. It undefines SFX at its end, ready
 * for the next instruction set. */

/* v = (x − m)·a + b: the forward's normalized output before any clip. The backward's mask
 * recomputes it, so it must round exactly as the forward's: one expression, one place. */
static inline __attribute__((always_inline)) float SFX(bn_affine)(float x, float m, float a,
                                                                  float b)
{
    return (x - m) * a + b;
}


/* The float sums of one row of n floats into fs, fq (see channel_sums).
 *
 * Masks here and in mask_row load dy unconditionally and then select (d, not dy[c], after
 * the ?): a load under the condition is one the compiler may not hoist without masked loads,
 * so without AVX-512 (the x86-64-v2 package) the loop stayed scalar, with a branch per
 * element, and the backward ran 7× slower. */
static inline __attribute__((always_inline)) void
SFX(row_sums)(float *restrict fs, float *restrict fq, const float *restrict x,
              const float *restrict dy, const float *restrict yr, const float *restrict mean,
              const float *restrict invstd, const float *restrict ka, const float *restrict kb,
              float hi, int n)
{
    if (!dy) {
#pragma omp simd
        for (int c = 0; c < n; c++) {
            float d = x[c] - mean[c];
            fs[c] += d;
            fq[c] += d * d;
        }
    } else if (ka) {
#pragma omp simd
        for (int c = 0; c < n; c++) {
            float v = SFX(bn_affine)(x[c], mean[c], ka[c], kb[c]), d = dy[c];
            float g = (v > 0.0f) & (v < hi) ? d : 0.0f;
            fs[c] += g;
            fq[c] += g * ((x[c] - mean[c]) * invstd[c]);
        }
    } else if (!yr) {
#pragma omp simd
        for (int c = 0; c < n; c++) {
            fs[c] += dy[c];
            fq[c] += dy[c] * ((x[c] - mean[c]) * invstd[c]);
        }
    } else {
#pragma omp simd
        for (int c = 0; c < n; c++) {
            float d = dy[c];
            float g = (yr[c] > 0.0f) & (yr[c] < hi) ? d : 0.0f;
            fs[c] += g;
            fq[c] += g * ((x[c] - mean[c]) * invstd[c]);
        }
    }
}

/* row_sums of ROW_BLOCK whole rows of W floats (a multiple of 64) into fs, fq (zeros
 * beforehand), 64 lanes at a time: a slice's 2·64 sums stay in registers across the rows
 * instead of being read and written back for each row (the block's rows stay in L1 for
 * the next slice). The same additions in the same order as ROW_BLOCK calls of row_sums:
 * the same bits, 1.5–1.8× faster where rows are 64 floats wide. */
static inline __attribute__((always_inline)) void
SFX(block_sums)(float *restrict fs, float *restrict fq, const float *restrict x,
                const float *restrict dy, const float *restrict yr, const float *restrict mean,
                const float *restrict invstd, const float *restrict ka,
                const float *restrict kb, float hi, int W)
{
    for (int c0 = 0; c0 < W; c0 += 64) {
        float S[64] = {0}, Q[64] = {0};
        for (int r = 0; r < ROW_BLOCK; r++) {
            size_t o = (size_t)r * W + c0;
            SFX(row_sums)(S, Q, x + o, dy ? dy + o : NULL, yr ? yr + o : NULL, mean + c0,
                          invstd ? invstd + c0 : NULL, ka ? ka + c0 : NULL,
                          kb ? kb + c0 : NULL, hi, 64);
        }
        memcpy(fs + c0, S, sizeof S);
        memcpy(fq + c0, Q, sizeof Q);
    }
}

/* Per-channel sums over rows, per thread, reduced into part[0..2C): (Σ a, Σ a·b) where
 * a = b = x − mean when dout is NULL (mean is then a shift, any value near the true mean),
 * else a = g, b = xhat = (x − mean)·invstd, with g = dout masked by k (a fused ReLU:
 * dout where 0 < y < hi, or 0 < v < hi, and 0 elsewhere). mean, invstd and k's vectors are
 * widened to W. Each thread sums ROW_BLOCK wide rows in float (fs, fq: 2W floats of
 * scratch per thread), then adds them into its 2W double sums, which keeps the inner loop in
 * single precision; the threads' sums are added in thread order, then the W lanes folded
 * into the C channels. */
static void SFX(channel_sums)(double *part, float *scratch, const float *dout, const Mask *k,
                              const float *inp, const float *mean, const float *invstd, int M,
                              int C, int W, int threads)
{
    const float *y = k ? k->y : NULL, *ka = k ? k->a : NULL, *kb = k ? k->b : NULL;
    const float hi = k ? k->hi : 0;
    memset(part, 0, sizeof(double) * threads * 2 * W);
#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads(), tail;
        long r0, r1;
        wide_share(M, C, W, t, T, &r0, &r1, &tail);
        double *restrict s = part + (size_t)t * 2 * W;
        double *restrict q = s + W;
        float *restrict fs = scratch + (size_t)t * 2 * W;
        float *restrict fq = fs + W;
        /* the wide rows, then the shorter last row as one more of n floats */
        long end = r1 + (tail > 0);
        for (long b = r0; b < end; b += ROW_BLOCK) {
            long e = b + ROW_BLOCK < end ? b + ROW_BLOCK : end;
            memset(fs, 0, sizeof(float) * 2 * W);
            if (W % 64 == 0 && e - b == ROW_BLOCK && e <= r1) {
                size_t o = (size_t)b * W;
                SFX(block_sums)(fs, fq, inp + o, dout ? dout + o : NULL, y ? y + o : NULL,
                                mean, invstd, ka, kb, hi, W);
                e = b; /* done */
            }
            for (long r = b; r < e; r++) {
                size_t o = (size_t)r * W;
                int n = r < r1 ? W : tail;
                SFX(row_sums)(fs, fq, inp + o, dout ? dout + o : NULL, y ? y + o : NULL, mean,
                              invstd, ka, kb, hi, n);
            }
            for (int c = 0; c < W; c++) {
                s[c] += fs[c];
                q[c] += fq[c];
            }
        }
    }
    for (int t = 1; t < threads; t++)
        for (int c = 0; c < 2 * W; c++)
            part[c] += part[(size_t)t * 2 * W + c];
    /* fold the lanes: Σ first (its lanes ≥ C are read before Σ·· overwrites them) */
    for (int c = 0; c < C; c++)
        for (int j = c + C; j < W; j += C)
            part[c] += part[j];
    for (int c = 0; c < C; c++) {
        double sq = 0;
        for (int j = c; j < W; j += C)
            sq += part[W + j];
        part[C + c] = sq;
    }
}


/* out = (x - m)·a + b per channel (subtracting first keeps a large mean exact); with f,
 * plus f->res and clipped to [0, f->hi] (a fused residual add and ReLU/ReLU6). m, a and b
 * are widened to W; the rows run as wide rows. */
static void SFX(affine_rows)(float *out, const float *inp, const float *m, const float *a,
                             const float *b, int M, int C, int W, const BnFused *f, int threads)
{
    const float hi = f ? f->hi : 0;
    const float *res = f ? f->res : NULL;
    const long rows = M / (W / C);
    const int tail = (int)((M - rows * (W / C)) * C);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long r = 0; r < rows + (tail > 0); r++) {
        const int n = r < rows ? W : tail;
        const float *restrict x = inp + (size_t)r * W;
        float *restrict o = out + (size_t)r * W;
        if (!f) {
#pragma omp simd
            for (int c = 0; c < n; c++)
                o[c] = SFX(bn_affine)(x[c], m[c], a[c], b[c]);
        } else if (!res) {
#pragma omp simd
            for (int c = 0; c < n; c++) {
                float v = SFX(bn_affine)(x[c], m[c], a[c], b[c]);
                v = v > 0.0f ? v : 0.0f;
                o[c] = v < hi ? v : hi;
            }
        } else {
            const float *restrict z = res + (size_t)r * W;
#pragma omp simd
            for (int c = 0; c < n; c++) {
                float v = SFX(bn_affine)(x[c], m[c], a[c], b[c]) + z[c];
                v = v > 0.0f ? v : 0.0f;
                o[c] = v < hi ? v : hi;
            }
        }
    }
}


/* g = dy masked by k (see Mask; the row's x, k's a and b, and m start at channel c0), or
 * g = dy when k has no mask. */
static inline __attribute__((always_inline)) void
SFX(mask_row)(float *restrict g, const float *restrict dy, const float *restrict x,
              const float *restrict m, const Mask *k, const float *restrict y, int c0, int n)
{
    const float hi = k ? k->hi : 0;
    if (y) {
#pragma omp simd
        for (int c = 0; c < n; c++) {
            float d = dy[c];
            g[c] = (y[c] > 0.0f) & (y[c] < hi) ? d : 0.0f;
        }
    } else if (k && k->a) {
        const float *restrict a = k->a + c0, *restrict b = k->b + c0;
#pragma omp simd
        for (int c = 0; c < n; c++) {
            float v = SFX(bn_affine)(x[c], m[c], a[c], b[c]), d = dy[c];
            g[c] = (v > 0.0f) & (v < hi) ? d : 0.0f;
        }
    } else {
        memcpy(g, dy, sizeof(float) * n);
    }
}

/* d = or += s (n floats). */
static inline __attribute__((always_inline)) void
SFX(put_row)(float *restrict d, const float *restrict s, int n, bool accumulate)
{
    if (accumulate)
        for (int c = 0; c < n; c++)
            d[c] += s[c];
    else
        memcpy(d, s, sizeof(float) * n);
}

/* The input gradient of both modes, wide row by wide row: g = dout masked by k, dres = or
 * += g, and dinp = or += k1·g + k3·(x − m) + k2 (k3 = k2 = NULL: k1·g); m, k1, k2, k3 and
 * k's vectors are widened to W. A reused buffer may hold anything, so overwriting never
 * reads it. */
static void SFX(input_gradient)(float *dinp, const float *dout, const float *inp,
                                const float *m, const float *k1, const float *k2,
                                const float *k3, int M, int C, int W, const BnFused *f,
                                const Mask *k, int threads)
{
    const float *y = k ? k->y : NULL;
    float *dres = f ? f->dres : NULL;
    const bool acc = f ? f->accumulate : true, res_acc = f ? f->res_accumulate : true;
    const long rows = M / (W / C);
    const int tail = (int)((M - rows * (W / C)) * C);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long r = 0; r < rows + (tail > 0); r++) {
        const int width = r < rows ? W : tail;
        const float *restrict x = inp + (size_t)r * W;
        const float *restrict dy = dout + (size_t)r * W;
        const float *restrict yr = y ? y + (size_t)r * W : NULL;
        float *restrict dx = dinp ? dinp + (size_t)r * W : NULL;
        if (dx && !dres && !acc && k3 && k && k->a) {
            /* train mode, the mask from x, nothing else to write: one loop, the row
             * straight from its inputs to dx with the same expressions as below */
            const float *restrict ka = k->a, *restrict kb = k->b;
            const float hi = k->hi;
#pragma omp simd
            for (int c = 0; c < width; c++) {
                float u = SFX(bn_affine)(x[c], m[c], ka[c], kb[c]), d = dy[c];
                float gc = (u > 0.0f) & (u < hi) ? d : 0.0f;
                dx[c] = k1[c] * gc + k3[c] * (x[c] - m[c]) + k2[c];
            }
            continue;
        }
        float g[MAX_ROW_BLOCK], v[MAX_ROW_BLOCK];
        for (int c0 = 0; c0 < width; c0 += MAX_ROW_BLOCK) {
            int n = width - c0 < MAX_ROW_BLOCK ? width - c0 : MAX_ROW_BLOCK;
            SFX(mask_row)(g, dy + c0, x + c0, m + c0, k, yr ? yr + c0 : NULL, c0, n);
            if (dres)
                SFX(put_row)(dres + (size_t)r * W + c0, g, n, res_acc);
            if (!dx)
                continue;
            const float *restrict a1 = k1 + c0;
            if (k3) {
                const float *restrict xc = x + c0, *restrict mc = m + c0;
                const float *restrict a2 = k2 + c0, *restrict a3 = k3 + c0;
#pragma omp simd
                for (int c = 0; c < n; c++)
                    v[c] = a1[c] * g[c] + a3[c] * (xc[c] - mc[c]) + a2[c];
            } else {
#pragma omp simd
                for (int c = 0; c < n; c++)
                    v[c] = a1[c] * g[c];
            }
            SFX(put_row)(dx + c0, v, n, acc);
        }
    }
}

/* The instruction set's passes, for batchnorm.c's table. */
static const BnKernels SFX(bn_kernels) = {SFX(channel_sums), SFX(affine_rows),
                                          SFX(input_gradient)};

/* SFX is this instantiation's: the next one defines its own. */
#undef SFX
