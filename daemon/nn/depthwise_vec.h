/* depthwise_vec.h — depthwise.c's 3×3 vector row kernels, compiled once per instruction set.
 *
 * Not a header of its own: depthwise.c includes it once for each instruction set, after
 * defining VL (floats per vector), OB (pixels a tile computes at once), V (a vector type of
 * VL floats), VFMA(a, b, c) (a·b + c, fused where the set has FMA) and SFX(name) (the
 * name with the set's suffix), inside #pragma GCC target for that set so that a binary
 * built for x86-64-v2 still carries the AVX2 and AVX-512 code, chosen at run time. It
 * undefines those parameters at its end, ready for the next instruction set.
 *
 * Every kernel does one row for the channels [r->c_lo, r->c_hi) (a multiple of VL wide),
 * VL channels at a time in registers. Every kernel walks the row by tiles of output
 * pixels and, within a tile, every channel block: the tile's loads of a source pixel serve
 * all the taps that read it, and the row is read in address order (wide layers stream from
 * memory; a block-by-block walk of the whole row jumps a pixel's width between loads and
 * ran the weight gradient at half the memory bandwidth). The weight gradient keeps a
 * tile's ten sums of a channel block in registers and adds them to a float buffer (rb,
 * L1-resident) once a tile. Each kernel prefetches the rows the thread's next row reads
 * first (r->pf), spread over the row, so that those rows are in cache when the next row
 * starts whatever the hardware prefetcher makes of the access pattern. */

static inline __attribute__((always_inline)) V SFX(ld)(const float *p)
{
    V v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline __attribute__((always_inline)) void SFX(st)(float *p, V v)
{
    memcpy(p, &v, sizeof v);
}

/* Stores v to d (VL-aligned when nt): past the caches when nt, for a row that will be read
 * again only after the rest of a tensor too big for them has been written. */
static inline __attribute__((always_inline)) void SFX(st_out)(float *d, V v, bool nt)
{
    if (nt)
        VSTREAM(d, v);
    else
        SFX(st)(d, v);
}

/* Prefetches columns [lo, hi) of the rows r->pf, channels [c0, c0 + VL). */
static inline __attribute__((always_inline)) void SFX(pf_cols)(const DwRow *r, int lo, int hi,
                                                             int c0)
{
    if (lo < 0)
        lo = 0;
    if (hi > r->in_w)
        hi = r->in_w;
    for (int j = 0; j < 3; j++)
        if (r->pf[j])
            for (int x = lo; x < hi; x++)
                __builtin_prefetch(r->pf[j] + (size_t)x * r->C + c0, 0, 2);
}

/* Adds the n output vectors a (channels [c0, c0 + VL)) to the row's moments r->ms: Σd
 * and Σd², d = a − r->shift, summed over the n in registers first. */
static inline __attribute__((always_inline)) void SFX(moments)(const DwRow *r, const V *a,
                                                             const int n, int c0)
{
    const V sh = SFX(ld)(r->shift + c0);
    V sp[4] = {{0}, {0}, {0}, {0}}, qp[4] = {{0}, {0}, {0}, {0}}; /* 4 short chains */
#pragma GCC unroll 16
    for (int i = 0; i < n; i++) {
        V d = a[i] - sh;
        sp[i % 4] += d;
        qp[i % 4] = VFMA(d, d, qp[i % 4]);
    }
    V s = (sp[0] + sp[1]) + (sp[2] + sp[3]), q = (qp[0] + qp[1]) + (qp[2] + qp[3]);
    float *ms = r->ms + c0;
    SFX(st)(ms, SFX(ld)(ms) + s);
    SFX(st)(ms + r->C, SFX(ld)(ms + r->C) + q);
}

/* Output pixel ox, channels [c0, c0 + VL), taps tested against the source's edges; one
 * partial sum per tap row so that the nine products are not one chain. */
static inline __attribute__((always_inline)) void
SFX(fwd_pixel)(float *restrict o, const float *restrict w, const float *restrict bias,
               const DwRow *r, int ox, int c0, const int S, const bool flip, const bool acc)
{
    const int C = r->C, ix0 = ox * S - r->pad_left;
    V s[3] = {{0}, {0}, {0}};
#pragma GCC unroll 3
    for (int ky = 0; ky < 3; ky++) {
        if (!r->src[ky])
            continue;
#pragma GCC unroll 3
        for (int kx = 0; kx < 3; kx++) {
            int ix = ix0 + kx, t = ky * 3 + kx;
            if ((unsigned)ix < (unsigned)r->in_w)
                s[ky] = VFMA(SFX(ld)(r->src[ky] + (size_t)ix * C + c0),
                             SFX(ld)(w + (size_t)(flip ? 8 - t : t) * C + c0), s[ky]);
        }
    }
    V a = s[0] + s[1] + s[2];
    float *d = o + (size_t)ox * C + c0;
    if (bias)
        a += SFX(ld)(bias + c0);
    if (acc)
        a += SFX(ld)(d);
    SFX(st_out)(d, a, r->nt);
    if (r->ms)
        SFX(moments)(r, &a, 1, c0);
}

/* N interior output pixels from ox (every tap inside the source), channels [c0, c0 + VL):
 * one accumulator per pixel; each tap row's 3 weights and N·S + 2 source pixels serve its
 * 3·N products. */
static inline __attribute__((always_inline)) void
SFX(fwd_tile)(float *restrict o, const float *restrict w, const float *restrict bias,
              const DwRow *r, int ox, int c0, const int N, const int S, const bool flip,
              const bool acc)
{
    const int C = r->C;
    V a[OB];
    V b = bias ? SFX(ld)(bias + c0) : (V){0};
#pragma GCC unroll 16
    for (int i = 0; i < N; i++)
        a[i] = b;
#pragma GCC unroll 3
    for (int ky = 0; ky < 3; ky++) {
        if (!r->src[ky])
            continue;
        const float *x = r->src[ky] + (size_t)(ox * S - r->pad_left) * C + c0;
        V wk[3];
#pragma GCC unroll 3
        for (int kx = 0; kx < 3; kx++)
            wk[kx] = SFX(ld)(w + (size_t)(flip ? 8 - ky * 3 - kx : ky * 3 + kx) * C + c0);
#pragma GCC unroll 3
        for (int kx = 0; kx < 3; kx++)
#pragma GCC unroll 16
            for (int i = 0; i < N; i++)
                a[i] = VFMA(SFX(ld)(x + (size_t)(i * S + kx) * C), wk[kx], a[i]);
    }
#pragma GCC unroll 16
    for (int i = 0; i < N; i++) {
        float *d = o + (size_t)(ox + i) * C + c0;
        SFX(st_out)(d, acc ? SFX(ld)(d) + a[i] : a[i], r->nt);
    }
    if (r->ms)
        SFX(moments)(r, a, N, c0);
}

/* One output row of a 3×3 window of stride S: orow[ox] (+)= bias + Σ taps src·w, w flipped
 * (tap t read as 8 − t) for the stride-1 input gradient. Interior pixels go by tiles of
 * OB, then OB / 2, edge pixels one at a time. */
static inline __attribute__((always_inline)) void
SFX(fwd_row_s)(float *restrict orow, const float *restrict w, const float *restrict bias,
               const DwRow *r, const int S, const bool flip, const bool acc)
{
    const int OW = r->out_w, pl = r->pad_left;
    /* [oxa, oxb): the output columns whose 3 taps all fall inside the source */
    int oxa = pl <= 0 ? 0 : (pl + S - 1) / S;
    int oxb = r->in_w - 3 + pl < 0 ? 0 : (r->in_w - 3 + pl) / S + 1;
    if (oxb > OW)
        oxb = OW;
    if (oxa > oxb)
        oxa = oxb;
    for (int ox = 0; ox < OW;) {
        int n = ox >= oxa && ox + OB <= oxb ? OB : ox >= oxa && ox + OB / 2 <= oxb ? OB / 2 : 1;
        int plo = ox * S, phi = ox + n >= OW ? r->in_w : (ox + n) * S;
        for (int c0 = r->c_lo; c0 < r->c_hi; c0 += VL) {
            if (n == OB)
                SFX(fwd_tile)(orow, w, bias, r, ox, c0, OB, S, flip, acc);
            else if (n == OB / 2)
                SFX(fwd_tile)(orow, w, bias, r, ox, c0, OB / 2, S, flip, acc);
            else
                SFX(fwd_pixel)(orow, w, bias, r, ox, c0, S, flip, acc);
            SFX(pf_cols)(r, plo, phi, c0);
        }
        ox += n;
    }
}

/* The forward (flip false, acc false) and the stride-1 input gradient (flip true, bias
 * NULL): see DwKernels.fwd. */
static void SFX(dw3_fwd)(float *restrict orow, const float *restrict w,
                         const float *restrict bias, const DwRow *r, bool flip, bool acc)
{
    if (r->stride == 2)
        SFX(fwd_row_s)(orow, w, bias, r, 2, false, false);
    else if (!flip)
        SFX(fwd_row_s)(orow, w, bias, r, 1, false, false);
    else if (acc)
        SFX(fwd_row_s)(orow, w, NULL, r, 1, true, true);
    else
        SFX(fwd_row_s)(orow, w, NULL, r, 1, true, false);
}

/* Adds the products of the N output pixels from ox to the tap sums of channels
 * [c0, c0 + VL) in rb (tap t at rb[t·r->rs], the bias at rb[9·r->rs]), the tile's sums in
 * registers; taps tested against the source's edges when `checked`. The tile's output
 * gradients stay in registers; each source pixel is loaded once, in address order, and
 * serves the taps of its row that read it. */
static inline __attribute__((always_inline)) void
SFX(dw_tile)(float *restrict rb, const float *restrict dyrow, const DwRow *r, int ox, int c0,
             const int N, const int S, const bool checked)
{
    const int C = r->C, ix0 = ox * S - r->pad_left;
    const size_t rs = (size_t)r->rs;
    float *s = rb + c0;
    V dy[OB], a[3];
    V ab = SFX(ld)(s + 9 * rs);
#pragma GCC unroll 16
    for (int i = 0; i < N; i++) {
        dy[i] = SFX(ld)(dyrow + (size_t)(ox + i) * C + c0);
        ab += dy[i];
    }
    SFX(st)(s + 9 * rs, ab);
#pragma GCC unroll 3
    for (int ky = 0; ky < 3; ky++) {
        if (!r->src[ky])
            continue;
        const float *x = r->src[ky] + c0;
        float *sk = s + (size_t)(ky * 3) * rs;
#pragma GCC unroll 3
        for (int kx = 0; kx < 3; kx++)
            a[kx] = SFX(ld)(sk + kx * rs);
        /* source pixel ix0 + p feeds output i through tap kx where p = i·S + kx */
#pragma GCC unroll 32
        for (int p = 0; p < (N - 1) * S + 3; p++) {
            int ix = ix0 + p;
            if (checked && (unsigned)ix >= (unsigned)r->in_w)
                continue;
            V xv = SFX(ld)(x + (size_t)ix * C);
#pragma GCC unroll 3
            for (int kx = 0; kx < 3; kx++)
                if (p >= kx && (p - kx) % S == 0 && (p - kx) / S < N)
                    a[kx] = VFMA(dy[(p - kx) / S], xv, a[kx]);
        }
#pragma GCC unroll 3
        for (int kx = 0; kx < 3; kx++)
            SFX(st)(sk + kx * rs, a[kx]);
    }
}

/* Weight and bias gradients of one output row, stride S, added to the float sums rb:
 * tiles of OB, then OB / 2 interior pixels and edge pixels one at a time, each tile over
 * every channel block, so the row is read in address order (see the top of the file). */
static inline __attribute__((always_inline)) void
SFX(dw_row_s)(float *restrict rb, const float *restrict dyrow, const DwRow *r, const int S)
{
    const int C = r->C, OW = r->out_w, pl = r->pad_left;
    int oxa = pl <= 0 ? 0 : (pl + S - 1) / S;
    int oxb = r->in_w - 3 + pl < 0 ? 0 : (r->in_w - 3 + pl) / S + 1;
    if (oxb > OW)
        oxb = OW;
    if (oxa > oxb)
        oxa = oxb;
    for (int ox = 0; ox < OW;) {
        int n = ox >= oxa && ox + OB <= oxb ? OB : ox >= oxa && ox + OB / 2 <= oxb ? OB / 2 : 1;
        int plo = ox * S, phi = ox + n >= OW ? r->in_w : (ox + n) * S;
        for (int c0 = r->c_lo; c0 < r->c_hi; c0 += VL) {
            if (n == OB)
                SFX(dw_tile)(rb, dyrow, r, ox, c0, OB, S, false);
            else if (n == OB / 2)
                SFX(dw_tile)(rb, dyrow, r, ox, c0, OB / 2, S, false);
            else
                SFX(dw_tile)(rb, dyrow, r, ox, c0, 1, S, true);
            SFX(pf_cols)(r, plo, phi, c0);
            if (r->pfd)
                for (int i = 0; i < n; i++)
                    __builtin_prefetch(r->pfd + (size_t)(ox + i) * C + c0, 0, 2);
        }
        ox += n;
    }
}

static void SFX(dw3_dw)(float *restrict rb, const float *restrict dyrow, const DwRow *r)
{
    if (r->stride == 2)
        SFX(dw_row_s)(rb, dyrow, r, 2);
    else
        SFX(dw_row_s)(rb, dyrow, r, 1);
}

/* Stride-2 input gradient of input pixel x, channels [c0, c0 + VL), taps tested: pixel x
 * (a = x + pad_left) gathers output column (a − kx) / 2 through tap kx where a − kx is
 * even. */
static inline __attribute__((always_inline)) void
SFX(dx2_pixel)(float *restrict drow, const float *restrict w, const DwRow *r, int x, int c0,
               const bool acc)
{
    const int C = r->C, a0 = x + r->pad_left;
    V s[3] = {{0}, {0}, {0}};
#pragma GCC unroll 3
    for (int ky = 0; ky < 3; ky++) {
        if (!r->src[ky])
            continue;
#pragma GCC unroll 3
        for (int kx = 0; kx < 3; kx++) {
            int e = a0 - kx;
            if (!(e & 1) && (unsigned)(e / 2) < (unsigned)r->in_w && e >= 0)
                s[ky] = VFMA(SFX(ld)(r->src[ky] + (size_t)(e / 2) * C + c0),
                             SFX(ld)(w + (size_t)(ky * 3 + kx) * C + c0), s[ky]);
        }
    }
    V v = s[0] + s[1] + s[2];
    float *d = drow + (size_t)x * C + c0;
    SFX(st_out)(d, acc ? SFX(ld)(d) + v : v, r->nt);
}

/* Stride-2 input gradient of the 2·N input pixels from x = 2q − pad_left: the even one of
 * pair i gathers output columns q + i (tap 0) and q + i − 1 (tap 2), the odd one q + i
 * (tap 1); all N + 1 output columns q − 1 ... q + N − 1 inside the row. */
static inline __attribute__((always_inline)) void
SFX(dx2_tile)(float *restrict drow, const float *restrict w, const DwRow *r, int q, int c0,
              const int N, const bool acc)
{
    const int C = r->C;
    V e[OB], o[OB];
#pragma GCC unroll 16
    for (int i = 0; i < N; i++)
        e[i] = o[i] = (V){0};
#pragma GCC unroll 3
    for (int ky = 0; ky < 3; ky++) {
        if (!r->src[ky])
            continue;
        const float *dy = r->src[ky] + (size_t)(q - 1) * C + c0;
        V w0 = SFX(ld)(w + (size_t)(ky * 3) * C + c0);
        V w1 = SFX(ld)(w + (size_t)(ky * 3 + 1) * C + c0);
        V w2 = SFX(ld)(w + (size_t)(ky * 3 + 2) * C + c0);
#pragma GCC unroll 16
        for (int i = 0; i < N; i++) {
            V cur = SFX(ld)(dy + (size_t)(i + 1) * C);
            e[i] = VFMA(SFX(ld)(dy + (size_t)i * C), w2, VFMA(cur, w0, e[i]));
            o[i] = VFMA(cur, w1, o[i]);
        }
    }
    float *d = drow + (size_t)(2 * q - r->pad_left) * C + c0;
#pragma GCC unroll 16
    for (int i = 0; i < N; i++) {
        float *de = d + (size_t)(2 * i) * C, *dd = de + C;
        SFX(st_out)(de, acc ? SFX(ld)(de) + e[i] : e[i], r->nt);
        SFX(st_out)(dd, acc ? SFX(ld)(dd) + o[i] : o[i], r->nt);
    }
}

/* One input row of the stride-2 input gradient: r->src[ky] is the output-gradient row tap
 * row ky reaches (NULL: none), in_w its columns, out_w the input row's. */
static inline __attribute__((always_inline)) void
SFX(dx2_row_a)(float *restrict drow, const float *restrict w, const DwRow *r, const bool acc)
{
    const int W = r->out_w, OW = r->in_w, pl = r->pad_left;
    /* tiles start at q in [qa, ...) and end by qb: every output column q − 1 ... q + n − 1
     * inside [0, OW), every input pixel 2q − pl ... 2(q + n) − 1 − pl inside [0, W) */
    const int qa = pl / 2 + pl % 2 > 1 ? pl / 2 + pl % 2 : 1;
    const int qb = OW < (W + pl) / 2 ? OW : (W + pl) / 2;
    for (int x = 0; x < W;) {
        int a = x + pl, q = a / 2, n = 0;
        if (!(a & 1) && q >= qa)
            n = q + OB <= qb ? OB : q + OB / 2 <= qb ? OB / 2 : q + 1 <= qb ? 1 : 0;
        for (int c0 = r->c_lo; c0 < r->c_hi; c0 += VL) {
            if (n == OB)
                SFX(dx2_tile)(drow, w, r, q, c0, OB, acc);
            else if (n == OB / 2)
                SFX(dx2_tile)(drow, w, r, q, c0, OB / 2, acc);
            else if (n == 1)
                SFX(dx2_tile)(drow, w, r, q, c0, 1, acc);
            else
                SFX(dx2_pixel)(drow, w, r, x, c0, acc);
            SFX(pf_cols)(r, q, x + 2 * n + 1 >= W ? r->in_w : q + (n ? n : 1), c0);
        }
        x += n ? 2 * n : 1;
    }
}

static void SFX(dw3_dx2)(float *restrict drow, const float *restrict w, const DwRow *r,
                         bool acc)
{
    if (acc)
        SFX(dx2_row_a)(drow, w, r, true);
    else
        SFX(dx2_row_a)(drow, w, r, false);
}

/* The row kernels of this instruction set, for depthwise.c's dispatch. */
static const DwKernels SFX(dw3_kernels) = {VL, SFX(dw3_fwd), SFX(dw3_dw), SFX(dw3_dx2)};

/* The parameters above are this instantiation's: the next one defines its own. */
#undef VL
#undef OB
#undef V
#undef VFMA
#undef VSTREAM
#undef SFX
