/* conv_short_vec.h — conv.c's weight-gradient kernel for short kernels, compiled once per instruction set.
 *
 * Not a header of its own: conv.c includes it once for each instruction set, after defining
 * VL (floats per vector), NACC (vector registers the tile's sums may take), V (a vector type
 * of VL floats), VFMA(a, b, c) (a·b + c, fused where the set has FMA), VSET1(x) (x in every
 * lane) and SFX(name) (the name with the set's suffix), inside #pragma GCC target for that
 * set so that a binary built for x86-64-v2 still carries the AVX2 and AVX-512 code, chosen
 * at run time. It undefines those parameters at its end, ready for the next instruction set.
 *
 * Each lane of a tile sums its (kernel row, filter) entry over the rows in row order, so
 * every set computes the same sums; the sets with FMA round each step once, the portable
 * one twice. */

/* part (IB, ·) row stride K, columns [0, valid) += cols (rows, ·)[:, 0:IB]ᵀ · y (rows, NV·VL)
 * with y's row stride ys. Inlined with constant IB and NV so the tile lives in registers. */
static inline __attribute__((always_inline)) void
SFX(sk_tile)(float *restrict part, const float *restrict cols, size_t kk,
             const float *restrict y, size_t ys, int K, size_t rows, const int IB, const int NV,
             int valid)
{
    V acc[NACC], yv[4];
    for (int j = 0; j < IB * NV; j++)
        acc[j] = VSET1(0.0f);
    for (size_t r = 0; r < rows; r++) {
        const float *c = cols + r * kk;
        for (int v = 0; v < NV; v++)
            memcpy(&yv[v], y + r * ys + (size_t)v * VL, sizeof(V));
        for (int i = 0; i < IB; i++) {
            const V ci = VSET1(c[i]);
            for (int v = 0; v < NV; v++)
                acc[i * NV + v] = VFMA(yv[v], ci, acc[i * NV + v]);
        }
    }
    for (int i = 0; i < IB; i++) {
        float *p = part + (size_t)i * K;
        if (valid == NV * VL) {
            for (int v = 0; v < NV; v++) {
                V s;
                memcpy(&s, p + v * VL, sizeof s);
                s += acc[i * NV + v];
                memcpy(p + v * VL, &s, sizeof s);
            }
        } else {
            float s[4 * VL] = {0};
            memcpy(s, &acc[i * NV], sizeof(V) * NV);
            for (int k = 0; k < valid; k++)
                p[k] += s[k];
        }
    }
}

/* sk_tile for NV vectors of filters and 1 <= ib <= NACC / NV kernel rows. */
static void SFX(sk_tile_any)(float *restrict part, const float *restrict cols, size_t kk,
                             const float *restrict y, size_t ys, int K, size_t rows, int ib,
                             int NV, int valid)
{
    assert(ib >= 1 && ib * NV <= NACC);
#define SK_CASE(n, nv)                                                                     \
    case n:                                                                                \
        SFX(sk_tile)(part, cols, kk, y, ys, K, rows, n, nv, valid);                        \
        break;
#define SK_CASES3(nv) SK_CASE(1, nv) SK_CASE(2, nv) SK_CASE(3, nv)
#define SK_CASES6(nv) SK_CASES3(nv) SK_CASE(4, nv) SK_CASE(5, nv) SK_CASE(6, nv)
#define SK_CASES12(nv)                                                                     \
    SK_CASES6(nv) SK_CASE(7, nv) SK_CASE(8, nv) SK_CASE(9, nv) SK_CASE(10, nv)             \
        SK_CASE(11, nv) SK_CASE(12, nv)
#define SK_CASES24(nv)                                                                     \
    SK_CASES12(nv) SK_CASE(13, nv) SK_CASE(14, nv) SK_CASE(15, nv) SK_CASE(16, nv)         \
        SK_CASE(17, nv) SK_CASE(18, nv) SK_CASE(19, nv) SK_CASE(20, nv) SK_CASE(21, nv)    \
            SK_CASE(22, nv) SK_CASE(23, nv) SK_CASE(24, nv)
#if NACC == 24
    if (NV == 4) {
        switch (ib) { SK_CASES6(4) }
    } else if (NV == 2) {
        switch (ib) { SK_CASES12(2) }
    } else {
        switch (ib) { SK_CASES24(1) }
    }
#elif NACC == 12
    if (NV == 4) {
        switch (ib) { SK_CASES3(4) }
    } else if (NV == 2) {
        switch (ib) { SK_CASES6(2) }
    } else {
        switch (ib) { SK_CASES12(1) }
    }
#else
#error "conv_short_vec.h: NACC must be 12 or 24"
#endif
#undef SK_CASE
#undef SK_CASES3
#undef SK_CASES6
#undef SK_CASES12
#undef SK_CASES24
}

/* part (kh·kw·C, K) += cols ᵀ · dy (rows, K), cols being the receptive fields of output rows
 * [r0, r0 + rows) gathered SK_ROWS at a time into a buffer that stays in L1; each block is
 * summed in registers. Filters go in blocks of 4, 2 or 1 vectors; a last partial vector is
 * copied into a zero-padded buffer. Kernel rows are split into near-equal tiles. */
static void SFX(sk_dweight)(float *restrict part, const float *restrict inp, const ConvGeom *g,
                            size_t r0, const float *restrict dy, size_t rows)
{
    const int K = g->K;
    const size_t kk = (size_t)g->kh * g->kw * g->C;
    float cols[SK_ROWS * SK_MAX_KK], pad[SK_ROWS * VL];
    assert(kk <= SK_MAX_KK);
    for (size_t q = 0; q < rows; q += SK_ROWS) {
        const size_t n = rows - q < SK_ROWS ? rows - q : SK_ROWS;
        const float *yr = dy + q * K;
        im2col(cols, inp, g, r0 + q, n);
        for (int k0 = 0; k0 < K;) {
            const int left = K - k0, NV = left >= 4 * VL ? 4 : left >= 2 * VL ? 2 : 1;
            const int valid = left < VL ? left : NV * VL;
            const float *y = yr + k0;
            size_t ys = (size_t)K;
            if (left < VL) {
                memset(pad, 0, sizeof pad);
                for (size_t r = 0; r < n; r++)
                    memcpy(pad + r * VL, yr + r * K + k0, sizeof(float) * left);
                y = pad, ys = VL;
            }
            const size_t ibmax = (size_t)(NACC / NV), nb = (kk + ibmax - 1) / ibmax;
            for (size_t b = 0; b < nb; b++) {
                const size_t i0 = kk * b / nb, i1 = kk * (b + 1) / nb;
                SFX(sk_tile_any)(part + i0 * K + k0, cols + i0, kk, y, ys, K, n,
                                 (int)(i1 - i0), NV, valid);
            }
            k0 += valid;
        }
    }
}

/* The parameters above are this instantiation's: the next one defines its own. */
#undef VL
#undef NACC
#undef V
#undef VFMA
#undef VSET1
#undef SFX
