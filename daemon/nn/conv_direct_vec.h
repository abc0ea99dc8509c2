/* conv_direct_vec.h — conv_direct.c's tile kernels, compiled once per instruction set.
 *
 * Not a header of its own: conv_direct.c includes it once for each instruction set, after
 * defining VL (floats per vector), NREG (vector registers), V (a vector type of VL floats),
 * VFMA(a, b, c) (a·b + c, fused where the set has FMA), VSET1(x) (x in every lane),
 * VSTP(p, v, n) (the first n lanes of v stored at p, 1 <= n < VL), KVMAX (most vectors of
 * filters, 64 / VL) and SFX(name) (the name with the set's suffix), inside #pragma GCC
 * target for that set so that a binary built for x86-64-v2 still carries the AVX2 and
 * AVX-512 code, chosen at run time. It undefines those parameters at its end, ready for
 * the next instruction set.
 *
 * A tile is P consecutive output pixels of one output row, all K filters: P·KV sums in
 * registers (KV = ⌈K / VL⌉ vectors a pixel), for each kernel row (ky, kx, c) one load of
 * the weight row's KV vectors (the caller pads them to KV·VL floats) and, per pixel, one
 * broadcast input value and KV FMAs. P is as large as the registers allow (at most 8: P
 * independent chains hide the FMA latency), so that each weight load serves P pixels. An
 * interior tile (every tap inside the input) reads each kernel row ky as kw·C contiguous
 * floats per pixel, matching the kernel layout; a tile with a tap outside the input
 * (edges, 'same' padding) points that tap at zeros. A row's last tile overlaps the one
 * before when OW is not a multiple of P (its pixels are computed twice, to the same bits),
 * so no pixel runs alone on a single latency-bound chain. */

/* Pixels a tile of KV vectors a pixel computes at once: the P·KV sums, KV weights and a
 * broadcast in registers. */
#define SFX_FREE(KV) ((NREG - (KV)-1) / (KV))
#define SFX_P(KV) (SFX_FREE(KV) >= 8 ? 8 : SFX_FREE(KV) >= 1 ? SFX_FREE(KV) : 1)

static inline __attribute__((always_inline)) V SFX(cd_ld)(const float *p)
{
    V v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Stores the sums of P pixels at o (K floats apart), the last vector of a pixel cut to the
 * K − (KV − 1)·VL filters left. */
static inline __attribute__((always_inline)) void SFX(cd_store)(float *restrict o, const V *acc,
                                                              int K, const int KV, const int P)
{
    const int tail = K - (KV - 1) * VL;
#pragma GCC unroll 8
    for (int p = 0; p < P; p++) {
        float *d = o + (size_t)p * K;
#pragma GCC unroll 16
        for (int v = 0; v < KV - 1; v++)
            memcpy(d + v * VL, &acc[p * KV + v], sizeof(V));
        if (tail == VL)
            memcpy(d + (KV - 1) * VL, &acc[p * KV + KV - 1], sizeof(V));
        else
            VSTP(d + (KV - 1) * VL, acc[p * KV + KV - 1], tail);
    }
}

/* P interior pixels: pixel p's kernel row ky reads the jn floats at a + ky·rs + p·ps, for
 * ky < nky, against the weight rows w + (ky·jn + j)·KV·VL; bp: the bias, KV·VL floats. */
static inline __attribute__((always_inline)) void
SFX(cd_tile)(float *restrict o, const float *restrict a, size_t ps, size_t rs, int nky, int jn,
             const float *restrict w, const float *restrict bp, int K, const int KV,
             const int P)
{
    V acc[8 * KVMAX];
#pragma GCC unroll 8
    for (int p = 0; p < P; p++)
#pragma GCC unroll 16
        for (int v = 0; v < KV; v++)
            acc[p * KV + v] = SFX(cd_ld)(bp + v * VL);
    for (int ky = 0; ky < nky; ky++) {
        const float *restrict ar = a + (size_t)ky * rs;
        const float *restrict wr = w + (size_t)ky * jn * KV * VL;
        for (int j = 0; j < jn; j++) {
            V wv[KVMAX];
#pragma GCC unroll 16
            for (int v = 0; v < KV; v++)
                wv[v] = SFX(cd_ld)(wr + ((size_t)j * KV + v) * VL);
#pragma GCC unroll 8
            for (int p = 0; p < P; p++) {
                V b = VSET1(ar[(size_t)p * ps + j]);
#pragma GCC unroll 16
                for (int v = 0; v < KV; v++)
                    acc[p * KV + v] = VFMA(b, wv[v], acc[p * KV + v]);
            }
        }
    }
    SFX(cd_store)(o, acc, K, KV, P);
}

/* P pixels of an output row whose taps may fall outside the input: rows[ky] is kernel row
 * ky's input row (NULL outside), pixel p's tap kx reads column ix0 + p·s + kx, and a
 * column outside [0, W) reads zeros instead. */
static inline __attribute__((always_inline)) void
SFX(cd_tile_edge)(float *restrict o, const float *const *rows, const ConvGeom *g, int ix0,
                  const float *restrict w, const float *restrict bp, const int KV, const int P)
{
    const int kh = g->kh, kw = g->kw, C = g->C, W = g->W, s = g->stride;
    V acc[8 * KVMAX];
#pragma GCC unroll 8
    for (int p = 0; p < P; p++)
#pragma GCC unroll 16
        for (int v = 0; v < KV; v++)
            acc[p * KV + v] = SFX(cd_ld)(bp + v * VL);
    for (int ky = 0; ky < kh; ky++) {
        if (!rows[ky])
            continue;
        for (int kx = 0; kx < kw; kx++) {
            const float *src[8];
#pragma GCC unroll 8
            for (int p = 0; p < P; p++) {
                int ix = ix0 + p * s + kx;
                src[p] = (unsigned)ix < (unsigned)W ? rows[ky] + (size_t)ix * C : cd_zeros;
            }
            const float *restrict wr = w + ((size_t)ky * kw + kx) * C * KV * VL;
            for (int c = 0; c < C; c++) {
                V wv[KVMAX];
#pragma GCC unroll 16
                for (int v = 0; v < KV; v++)
                    wv[v] = SFX(cd_ld)(wr + ((size_t)c * KV + v) * VL);
#pragma GCC unroll 8
                for (int p = 0; p < P; p++) {
                    V b = VSET1(src[p][c]);
#pragma GCC unroll 16
                    for (int v = 0; v < KV; v++)
                        acc[p * KV + v] = VFMA(b, wv[v], acc[p * KV + v]);
                }
            }
        }
    }
    SFX(cd_store)(o, acc, g->K, KV, P);
}

/* Output rows [r0, r1) of the batch ((n, oy) pairs), KV vectors a pixel. */
static inline __attribute__((always_inline)) void
SFX(cd_rows_kv)(float *restrict out, const float *restrict inp, const float *restrict w,
                const float *restrict bp, const ConvGeom *g, size_t r0, size_t r1, const int KV)
{
    const int P = SFX_P(KV);
    const int H = g->H, W = g->W, C = g->C, K = g->K, OH = g->OH, OW = g->OW;
    const int kh = g->kh, kw = g->kw, s = g->stride, pl = g->pad_left;
    const size_t kp = (size_t)KV * VL;
    /* columns whose every tap is inside the input: ox·s − pl >= 0, ox·s − pl + kw <= W */
    int ox_lo = (pl + s - 1) / s, ox_hi = W - kw + pl >= 0 ? (W - kw + pl) / s + 1 : 0;
    if (ox_hi > OW)
        ox_hi = OW;
    const float *rows[CD_MAX_KK];
    for (size_t r = r0; r < r1; r++) {
        const int n = (int)(r / OH), oy = (int)(r % OH);
        const float *img = inp + (size_t)n * H * W * C;
        int ky0 = kh, ky1 = 0;
        for (int ky = 0; ky < kh; ky++) {
            int iy = oy * s - g->pad_top + ky;
            rows[ky] = (unsigned)iy < (unsigned)H ? img + (size_t)iy * W * C : NULL;
            if (rows[ky]) {
                ky0 = ky < ky0 ? ky : ky0;
                ky1 = ky + 1;
            }
        }
        float *orow = out + r * OW * K;
        if (OW < P) {
            for (int ox = 0; ox < OW; ox++)
                SFX(cd_tile_edge)(orow + (size_t)ox * K, rows, g, ox * s - pl, w, bp, KV, 1);
            continue;
        }
        for (int ox = 0; ox < OW; ox += P) {
            const int x = ox + P > OW ? OW - P : ox;
            if (x >= ox_lo && x + P <= ox_hi && ky0 < ky1)
                SFX(cd_tile)(orow + (size_t)x * K, rows[ky0] + (size_t)(x * s - pl) * C,
                             (size_t)s * C, (size_t)W * C, ky1 - ky0, kw * C,
                             w + (size_t)ky0 * kw * C * kp, bp, K, KV, P);
            else
                SFX(cd_tile_edge)(orow + (size_t)x * K, rows, g, x * s - pl, w, bp, KV, P);
        }
    }
}

/* Pixels [r0, r1) of a 1×1 stride-1 unpadded conv, KV vectors a pixel: rows of the GEMM
 * out (R, K) = inp (R, C) · weight (C, K). */
static inline __attribute__((always_inline)) void
SFX(cd_pixels_kv)(float *restrict out, const float *restrict inp, const float *restrict w,
                  const float *restrict bp, int C, int K, size_t r0, size_t r1, const int KV)
{
    const int P = SFX_P(KV);
    if (r1 - r0 < (size_t)P) {
        for (size_t r = r0; r < r1; r++)
            SFX(cd_tile)(out + r * K, inp + r * C, 0, 0, 1, C, w, bp, K, KV, 1);
        return;
    }
    for (size_t r = r0; r < r1; r += P) {
        const size_t x = r + P > r1 ? r1 - P : r;
        SFX(cd_tile)(out + x * K, inp + x * C, (size_t)C, 0, 1, C, w, bp, K, KV, P);
    }
}

#define SFX_CASE(kv, call)                                                                 \
    case kv:                                                                               \
        call;                                                                              \
        break;

/* The entries conv_direct.c calls: KV = ⌈K / VL⌉ <= KVMAX picks the instantiation. */
static void SFX(cd_rows)(float *out, const float *inp, const float *w, const float *bp,
                         const ConvGeom *g, size_t r0, size_t r1)
{
    switch ((g->K + VL - 1) / VL) {
        SFX_CASE(1, SFX(cd_rows_kv)(out, inp, w, bp, g, r0, r1, 1))
        SFX_CASE(2, SFX(cd_rows_kv)(out, inp, w, bp, g, r0, r1, 2))
        SFX_CASE(3, SFX(cd_rows_kv)(out, inp, w, bp, g, r0, r1, 3))
        SFX_CASE(4, SFX(cd_rows_kv)(out, inp, w, bp, g, r0, r1, 4))
#if KVMAX > 4
        SFX_CASE(5, SFX(cd_rows_kv)(out, inp, w, bp, g, r0, r1, 5))
        SFX_CASE(6, SFX(cd_rows_kv)(out, inp, w, bp, g, r0, r1, 6))
        SFX_CASE(7, SFX(cd_rows_kv)(out, inp, w, bp, g, r0, r1, 7))
        SFX_CASE(8, SFX(cd_rows_kv)(out, inp, w, bp, g, r0, r1, 8))
#endif
#if KVMAX > 8
        SFX_CASE(9, SFX(cd_rows_kv)(out, inp, w, bp, g, r0, r1, 9))
        SFX_CASE(10, SFX(cd_rows_kv)(out, inp, w, bp, g, r0, r1, 10))
        SFX_CASE(11, SFX(cd_rows_kv)(out, inp, w, bp, g, r0, r1, 11))
        SFX_CASE(12, SFX(cd_rows_kv)(out, inp, w, bp, g, r0, r1, 12))
        SFX_CASE(13, SFX(cd_rows_kv)(out, inp, w, bp, g, r0, r1, 13))
        SFX_CASE(14, SFX(cd_rows_kv)(out, inp, w, bp, g, r0, r1, 14))
        SFX_CASE(15, SFX(cd_rows_kv)(out, inp, w, bp, g, r0, r1, 15))
        SFX_CASE(16, SFX(cd_rows_kv)(out, inp, w, bp, g, r0, r1, 16))
#endif
    default:
        assert(!"K above 64");
    }
}

static void SFX(cd_pixels)(float *out, const float *inp, const float *w, const float *bp,
                           int C, int K, size_t r0, size_t r1)
{
    switch ((K + VL - 1) / VL) {
        SFX_CASE(1, SFX(cd_pixels_kv)(out, inp, w, bp, C, K, r0, r1, 1))
        SFX_CASE(2, SFX(cd_pixels_kv)(out, inp, w, bp, C, K, r0, r1, 2))
        SFX_CASE(3, SFX(cd_pixels_kv)(out, inp, w, bp, C, K, r0, r1, 3))
        SFX_CASE(4, SFX(cd_pixels_kv)(out, inp, w, bp, C, K, r0, r1, 4))
#if KVMAX > 4
        SFX_CASE(5, SFX(cd_pixels_kv)(out, inp, w, bp, C, K, r0, r1, 5))
        SFX_CASE(6, SFX(cd_pixels_kv)(out, inp, w, bp, C, K, r0, r1, 6))
        SFX_CASE(7, SFX(cd_pixels_kv)(out, inp, w, bp, C, K, r0, r1, 7))
        SFX_CASE(8, SFX(cd_pixels_kv)(out, inp, w, bp, C, K, r0, r1, 8))
#endif
#if KVMAX > 8
        SFX_CASE(9, SFX(cd_pixels_kv)(out, inp, w, bp, C, K, r0, r1, 9))
        SFX_CASE(10, SFX(cd_pixels_kv)(out, inp, w, bp, C, K, r0, r1, 10))
        SFX_CASE(11, SFX(cd_pixels_kv)(out, inp, w, bp, C, K, r0, r1, 11))
        SFX_CASE(12, SFX(cd_pixels_kv)(out, inp, w, bp, C, K, r0, r1, 12))
        SFX_CASE(13, SFX(cd_pixels_kv)(out, inp, w, bp, C, K, r0, r1, 13))
        SFX_CASE(14, SFX(cd_pixels_kv)(out, inp, w, bp, C, K, r0, r1, 14))
        SFX_CASE(15, SFX(cd_pixels_kv)(out, inp, w, bp, C, K, r0, r1, 15))
        SFX_CASE(16, SFX(cd_pixels_kv)(out, inp, w, bp, C, K, r0, r1, 16))
#endif
    default:
        assert(!"K above 64");
    }
}

#undef SFX_CASE
#undef SFX_P
#undef SFX_FREE

/* The instruction set's kernels, for conv_direct.c's table. */
static const CdKernels SFX(cd_kernels) = {VL, SFX(cd_rows), SFX(cd_pixels)};

/* The parameters above are this instantiation's: the next one defines its own. */
#undef VL
#undef NREG
#undef KVMAX
#undef V
#undef VFMA
#undef VSET1
#undef VSTP
#undef SFX
