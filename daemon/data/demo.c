/* demo.c — procedural weed photographs and the demo dataset writer (demo.h).
 *
 * Rendering: a plant is a list of parts (leaves, leaflets, stems) placed in image pixels;
 * every pixel of the soil background is darkened by the parts' shadow (the parts
 * evaluated at an offset) and then covered by the parts in order. A leaf is evaluated in
 * its own frame: u runs along the midrib from the base (0) to the tip (1), v across it,
 * both in leaf lengths, and the midrib bends as v -= bend·u². Coverage is the signed
 * distance to the outline in pixels, clamped to [0, 1] (cheap antialiasing).
 *
 * DESIGN (writer): `threads` workers (data_run_workers) claim image numbers through an
 * atomic counter, each renders and encodes with its own buffers and DataCodec and writes
 * its own files; the calling thread reports progress and owns `cancelled`. The first
 * error message is kept under `lock`. */
#include "data/demo.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/decode.h"
#include "data/fsutil.h"
#include "data/workers.h"
#include "data/resize.h"
#include "util/rng.h"

#define PI_F 3.14159265f

typedef enum { ARR_ROSETTE, ARR_PAIRS, ARR_CLUMP } Arrangement;
typedef enum { COMP_SIMPLE, COMP_TRIFOLIATE, COMP_PINNATE } Compound;
typedef enum { SHAPE_BLADE, SHAPE_ROUND } Shape;
typedef enum { VEIN_PINNATE, VEIN_PARALLEL, VEIN_PALMATE } Venation;

typedef struct {
    const char *name;
    Arrangement arr;
    Compound comp;
    Shape shape;
    Venation vein;
    int leaves_lo, leaves_hi; /* leaves, leaf pairs or blades per plant */
    float length;       /* leaf (leaflet) length / plant radius; round: diameter */
    float width;        /* widest half-width / length */
    float widest;       /* profile exponent p: widest at u = 0.5^(1/p) */
    float blunt;        /* profile exponent q: < 1 rounder, > 1 narrower */
    float lobes, lobe_depth;
    int runcinate;      /* lobes as teeth pointing back to the base (dandelion) */
    float teeth, tooth_depth;
    float basal;        /* arrow-shaped basal lobes, length / leaf length */
    float petiole;      /* petiole (rachis) length / leaf length */
    float hue, sat, val, hue_jitter;
    int veins;          /* secondary veins per side, parallel veins, or palmate veins */
    float vein_contrast;/* added to the value along veins: > 0 paler, < 0 darker */
    float speckle;      /* mealy white dots */
    float gloss;        /* specular band */
    float chevron;      /* pale V across each leaflet (clover) */
    float stem_red;     /* 0 green .. 1 red stems and petioles */
    int leaflets;       /* compound leaves: leaflets per leaf */
} Species;

/* The first six (the default --classes 6) mix three distinctive species (clover,
 * crabgrass, dandelion) with three simple-leaved ones that differ mostly in margin,
 * colour and surface (amaranth, lambsquarters, nettle). */
static const Species species_table[] = {
    {"amaranth", ARR_ROSETTE, COMP_SIMPLE, SHAPE_BLADE, VEIN_PINNATE, 5, 8, 0.55f, 0.27f,
     0.8f, 0.9f, 0, 0, 0, 0, 0, 0, 0.45f, 95, 0.55f, 0.45f, 10, 7, 0.10f, 0, 0.10f, 0, 0.8f,
     0},
    {"clover", ARR_ROSETTE, COMP_TRIFOLIATE, SHAPE_BLADE, VEIN_PINNATE, 3, 6, 0.27f, 0.38f,
     1.6f, 0.55f, 0, 0, 0, 14, 0.04f, 0, 1.3f, 112, 0.55f, 0.38f, 8, 9, -0.05f, 0, 0.05f,
     0.35f, 0.2f, 3},
    {"crabgrass", ARR_CLUMP, COMP_SIMPLE, SHAPE_BLADE, VEIN_PARALLEL, 6, 11, 0.95f, 0.06f,
     0.55f, 1.3f, 0, 0, 0, 0, 0, 0, 0, 80, 0.55f, 0.55f, 8, 4, 0.07f, 0, 0.05f, 0, 0.35f,
     0},
    {"dandelion", ARR_ROSETTE, COMP_SIMPLE, SHAPE_BLADE, VEIN_PINNATE, 6, 10, 0.8f, 0.17f,
     1.3f, 1.0f, 4.5f, 0.75f, 1, 0, 0, 0, 0.1f, 100, 0.6f, 0.5f, 10, 0, 0.18f, 0, 0.05f, 0,
     0.25f, 0},
    {"lambsquarters", ARR_PAIRS, COMP_SIMPLE, SHAPE_BLADE, VEIN_PINNATE, 3, 5, 0.42f,
     0.30f, 0.75f, 1.2f, 0, 0, 0, 5, 0.18f, 0, 0.35f, 102, 0.30f, 0.50f, 10, 5, 0.06f,
     0.5f, 0, 0, 0.1f, 0},
    {"nettle", ARR_PAIRS, COMP_SIMPLE, SHAPE_BLADE, VEIN_PINNATE, 3, 5, 0.45f, 0.34f, 0.6f,
     1.25f, 0, 0, 0, 11, 0.12f, 0, 0.3f, 112, 0.6f, 0.32f, 10, 6, -0.12f, 0, 0.05f, 0,
     0.15f, 0},
    {"bindweed", ARR_ROSETTE, COMP_SIMPLE, SHAPE_BLADE, VEIN_PINNATE, 4, 7, 0.5f, 0.22f,
     0.25f, 1.1f, 0, 0, 0, 0, 0, 0.3f, 0.5f, 100, 0.5f, 0.42f, 10, 5, 0.08f, 0, 0.1f, 0,
     0.3f, 0},
    {"mallow", ARR_ROSETTE, COMP_SIMPLE, SHAPE_ROUND, VEIN_PALMATE, 4, 7, 0.44f, 0.5f, 1, 1,
     5, 0.15f, 0, 30, 0.05f, 0, 1.2f, 105, 0.5f, 0.40f, 10, 7, -0.08f, 0, 0.05f, 0, 0.1f,
     0},
    {"plantain", ARR_ROSETTE, COMP_SIMPLE, SHAPE_BLADE, VEIN_PARALLEL, 5, 8, 0.6f, 0.3f,
     0.9f, 0.8f, 0, 0, 0, 0, 0, 0, 0.35f, 105, 0.45f, 0.36f, 10, 5, -0.10f, 0, 0.15f, 0,
     0.1f, 0},
    {"chickweed", ARR_PAIRS, COMP_SIMPLE, SHAPE_BLADE, VEIN_PINNATE, 5, 8, 0.22f, 0.28f,
     0.9f, 1.1f, 0, 0, 0, 0, 0, 0, 0.05f, 95, 0.6f, 0.55f, 10, 0, 0.10f, 0, 0.2f, 0, 0.05f,
     0},
    {"purslane", ARR_ROSETTE, COMP_SIMPLE, SHAPE_BLADE, VEIN_PINNATE, 8, 14, 0.3f, 0.3f,
     2.0f, 0.6f, 0, 0, 0, 0, 0, 0, 0.6f, 85, 0.5f, 0.40f, 8, 0, 0.05f, 0, 0.45f, 0, 0.9f,
     0},
    {"vetch", ARR_ROSETTE, COMP_PINNATE, SHAPE_BLADE, VEIN_PINNATE, 3, 5, 0.15f, 0.22f,
     1.0f, 0.9f, 0, 0, 0, 0, 0, 0, 3.5f, 125, 0.45f, 0.40f, 8, 0, 0.05f, 0, 0.05f, 0,
     0.15f, 10},
};
#define N_SPECIES ((int)(sizeof species_table / sizeof species_table[0]))

int data_demo_species_count(void)
{
    return N_SPECIES;
}

const char *data_demo_species_name(int s)
{
    return s >= 0 && s < N_SPECIES ? species_table[s].name : NULL;
}

/* ---- small helpers ---- */

static float clampf(float x, float lo, float hi)
{
    return x < lo ? lo : x > hi ? hi : x;
}

static float frand(Rng *r, float lo, float hi)
{
    return lo + (hi - lo) * (float)rng_uniform(r);
}

static void hsv_to_rgb(float h, float s, float v, float rgb[3])
{
    h = fmodf(h, 360.0f);
    if (h < 0)
        h += 360.0f;
    float c = v * s, x = c * (1 - fabsf(fmodf(h / 60.0f, 2.0f) - 1)), m = v - c;
    float r = 0, g = 0, b = 0;
    if (h < 60) { r = c; g = x; }
    else if (h < 120) { r = x; g = c; }
    else if (h < 180) { g = c; b = x; }
    else if (h < 240) { g = x; b = c; }
    else if (h < 300) { r = x; b = c; }
    else { r = c; b = x; }
    rgb[0] = r + m;
    rgb[1] = g + m;
    rgb[2] = b + m;
}

static uint32_t hash3(int x, int y, uint32_t seed)
{
    uint32_t h = (uint32_t)x * 374761393u + (uint32_t)y * 668265263u + seed * 2246822519u;
    h = (h ^ (h >> 13)) * 1274126177u;
    return h ^ (h >> 16);
}

static float hash01(int x, int y, uint32_t seed)
{
    return (hash3(x, y, seed) & 0xFFFFFF) / 16777216.0f;
}

/* Smooth value noise in [0, 1) with lattice spacing `cell` pixels. */
static float value_noise(float x, float y, float cell, uint32_t seed)
{
    x /= cell;
    y /= cell;
    int ix = (int)floorf(x), iy = (int)floorf(y);
    float fx = x - ix, fy = y - iy;
    fx = fx * fx * (3 - 2 * fx);
    fy = fy * fy * (3 - 2 * fy);
    float a = hash01(ix, iy, seed), b = hash01(ix + 1, iy, seed);
    float c = hash01(ix, iy + 1, seed), d = hash01(ix + 1, iy + 1, seed);
    return a + (b - a) * fx + (c - a) * fy + (a - b - c + d) * fx * fy;
}

/* ---- plant parts ---- */

enum { PART_LEAF, PART_STEM };

typedef struct {
    int kind;
    float ox, oy;        /* base, pixels */
    float ca, sa;        /* direction of the midrib / stem */
    float len;           /* pixels */
    float half;          /* stems: half-width in pixels */
    float bend;          /* midrib curvature */
    float phase[2];      /* serration / lobe phase per side */
    float rgb[3];        /* base colour */
    float x0, y0, x1, y1;/* bounding box */
} Part;

typedef struct {
    const Species *sp;
    Part *parts;
    int n, cap;
    float light_x, light_y; /* direction the light comes from */
    uint32_t seed;
} Plant;

static Part *part_add(Plant *pl)
{
    if (pl->n == pl->cap) {
        int cap = pl->cap ? pl->cap * 2 : 64;
        Part *np = realloc(pl->parts, (size_t)cap * sizeof *np);
        if (!np)
            return NULL;
        pl->parts = np;
        pl->cap = cap;
    }
    Part *p = &pl->parts[pl->n++];
    memset(p, 0, sizeof *p);
    return p;
}

static void part_bbox(Part *p)
{
    float ex = p->ox + p->ca * p->len, ey = p->oy + p->sa * p->len;
    float pad = p->kind == PART_STEM ? p->half + 1 : p->len * 0.75f + 2;
    p->x0 = fminf(p->ox, ex) - pad;
    p->x1 = fmaxf(p->ox, ex) + pad;
    p->y0 = fminf(p->oy, ey) - pad;
    p->y1 = fmaxf(p->oy, ey) + pad;
}

static int add_stem(Plant *pl, float x, float y, float ang, float len, float half,
                    const float rgb[3])
{
    Part *p = part_add(pl);
    if (!p)
        return -1;
    p->kind = PART_STEM;
    p->ox = x;
    p->oy = y;
    p->ca = cosf(ang);
    p->sa = sinf(ang);
    p->len = len;
    p->half = half;
    memcpy(p->rgb, rgb, sizeof p->rgb);
    part_bbox(p);
    return 0;
}

static int add_leaf(Plant *pl, Rng *r, float x, float y, float ang, float len, float bend,
                    const float rgb[3])
{
    Part *p = part_add(pl);
    if (!p)
        return -1;
    p->kind = PART_LEAF;
    p->ox = x;
    p->oy = y;
    p->ca = cosf(ang);
    p->sa = sinf(ang);
    p->len = len;
    p->bend = bend;
    p->phase[0] = frand(r, 0, 1);
    p->phase[1] = pl->sp->lobes > 0 && !pl->sp->runcinate ? p->phase[0] : frand(r, 0, 1);
    float k = frand(r, 0.88f, 1.12f);
    for (int c = 0; c < 3; c++)
        p->rgb[c] = rgb[c] * k;
    part_bbox(p);
    return 0;
}

/* A whole leaf (simple or compound) whose petiole starts at (x, y) in direction ang. */
static int add_compound(Plant *pl, Rng *r, float x, float y, float ang, float len,
                        const float green[3], const float stem[3], float stem_half)
{
    const Species *s = pl->sp;
    float bend = frand(r, -0.25f, 0.25f);
    float pet = s->petiole * len * frand(r, 0.8f, 1.2f);
    if (pet > 0.5f && add_stem(pl, x, y, ang, pet, stem_half, stem) != 0)
        return -1;
    float bx = x + cosf(ang) * pet, by = y + sinf(ang) * pet;
    if (s->comp == COMP_SIMPLE)
        return add_leaf(pl, r, bx, by, ang, len, bend, green);
    if (s->comp == COMP_TRIFOLIATE) {
        for (int k = -1; k <= 1; k++)
            if (add_leaf(pl, r, bx, by, ang + k * frand(r, 1.7f, 2.3f), len * frand(r, 0.9f, 1.1f),
                         frand(r, -0.1f, 0.1f), green) != 0)
                return -1;
        return 0;
    }
    /* pinnate: leaflet pairs along the rachis (the petiole), smallest at the tip */
    int pairs = s->leaflets / 2;
    for (int k = 0; k < pairs; k++) {
        float t = 0.25f + 0.75f * (k + 0.5f) / pairs;
        float lx = x + cosf(ang) * pet * t, ly = y + sinf(ang) * pet * t;
        float ll = len * (1.1f - 0.4f * t) * frand(r, 0.85f, 1.1f);
        for (int side = -1; side <= 1; side += 2)
            if (add_leaf(pl, r, lx, ly, ang + side * frand(r, 0.8f, 1.2f), ll,
                         side * frand(r, 0, 0.15f), green) != 0)
                return -1;
    }
    return 0;
}

static int build_plant(Plant *pl, Rng *r, int w, int h)
{
    const Species *s = pl->sp;
    float side = (float)(w < h ? w : h);
    float cx = w * 0.5f + frand(r, -0.18f, 0.18f) * side;
    float cy = h * 0.5f + frand(r, -0.18f, 0.18f) * side;
    float radius = side * frand(r, 0.30f, 0.55f);
    float rot = frand(r, 0, 2 * PI_F);
    float green[3], stem[3], red[3];
    hsv_to_rgb(s->hue + frand(r, -s->hue_jitter, s->hue_jitter),
               clampf(s->sat * frand(r, 0.8f, 1.2f), 0, 1),
               clampf(s->val * frand(r, 0.85f, 1.15f), 0, 1), green);
    hsv_to_rgb(frand(r, 345, 365), 0.55f, 0.42f, red);
    for (int c = 0; c < 3; c++)
        stem[c] = green[c] * 0.9f * (1 - s->stem_red) + red[c] * s->stem_red;
    int n = s->leaves_lo + (int)rng_below(r, (uint64_t)(s->leaves_hi - s->leaves_lo + 1));
    float stem_half = fmaxf(0.6f, side * 0.006f);

    if (s->arr == ARR_ROSETTE) {
        for (int i = 0; i < n; i++) {
            float ang = rot + 2 * PI_F * i / n + frand(r, -0.35f, 0.35f);
            float len = s->length * radius * frand(r, 0.75f, 1.15f);
            if (add_compound(pl, r, cx, cy, ang, len, green, stem, stem_half) != 0)
                return -1;
        }
    } else if (s->arr == ARR_CLUMP) {
        float spread = frand(r, 0.6f, 1.0f) * PI_F;
        for (int i = 0; i < n; i++) {
            float ang = rot + spread * ((float)i / (n - 1 ? n - 1 : 1) - 0.5f) * 2 +
                        frand(r, -0.2f, 0.2f);
            float len = s->length * radius * frand(r, 0.6f, 1.2f);
            float bx = cx + frand(r, -0.03f, 0.03f) * side, by = cy + frand(r, -0.03f, 0.03f) * side;
            if (add_leaf(pl, r, bx, by, ang, len, frand(r, -0.5f, 0.5f), green) != 0)
                return -1;
        }
    } else {
        /* opposite pairs on one or two stems running through the plant's centre */
        int stems = 1 + (rng_uniform(r) < 0.4);
        for (int k = 0; k < stems; k++) {
            float ang = rot + k * frand(r, 1.2f, 2.0f);
            float sx = cx - cosf(ang) * radius * 0.9f, sy = cy - sinf(ang) * radius * 0.9f;
            float slen = radius * 1.9f;
            if (add_stem(pl, sx, sy, ang, slen, stem_half * 1.3f, stem) != 0)
                return -1;
            for (int i = 0; i < n; i++) {
                float t = (i + 0.5f) / n;
                float px = sx + cosf(ang) * slen * t, py = sy + sinf(ang) * slen * t;
                float len = s->length * radius * (1.15f - 0.45f * fabsf(t - 0.35f)) *
                            frand(r, 0.85f, 1.1f);
                float tw = (i % 2) * 0.25f; /* decussate look: alternate pairs twist */
                for (int sd = -1; sd <= 1; sd += 2)
                    if (add_compound(pl, r, px, py, ang + sd * (PI_F / 2 - 0.35f + tw) +
                                                        frand(r, -0.2f, 0.2f),
                                     len, green, stem, stem_half) != 0)
                        return -1;
            }
        }
    }
    return 0;
}

/* Half-width of a blade at u (leaf lengths), side 0 (v >= 0) or 1. */
static float blade_half(const Species *s, const Part *p, float u, int side)
{
    if (u <= 0 || u >= 1)
        return 0;
    float w = s->width * powf(sinf(PI_F * powf(u, s->widest)), s->blunt);
    if (s->lobes > 0) {
        float t = u * s->lobes + p->phase[side];
        float f = t - floorf(t);
        float taper = sqrtf(sinf(PI_F * u));
        if (s->runcinate)
            w *= 1 - s->lobe_depth * taper * powf(f, 0.7f);
        else
            w *= 1 - s->lobe_depth * taper * (0.5f - 0.5f * cosf(2 * PI_F * f));
    }
    if (s->teeth > 0) {
        float t = u * s->teeth + p->phase[side];
        float f = t - floorf(t);
        w *= 1 - s->tooth_depth * (1 - f) * sqrtf(sinf(PI_F * u));
    }
    return w;
}

/* Shades a leaf pixel: returns coverage and writes the colour. (u, v) in leaf lengths. */
static float leaf_pixel(const Plant *pl, const Part *p, float lx, float ly, int shade,
                        float out[3])
{
    const Species *s = pl->sp;
    float u = lx / p->len, v = ly / p->len - p->bend * u * u;
    float av = fabsf(v);
    int side = v < 0;
    float d;       /* signed distance to the outline, pixels (> 0 inside) */
    float wid = 0; /* local half-width (leaf lengths), for shading */
    float vein = 0;
    if (s->shape == SHAPE_ROUND) {
        float rad = 0.5f;
        float du = u - rad * 0.9f, dv = v;
        float dist = sqrtf(du * du + dv * dv);
        float th = atan2f(dv, du); /* 0 away from the petiole */
        float f = (th + PI_F) / (2 * PI_F);
        float rr = rad * (1 - s->lobe_depth * (0.5f - 0.5f * cosf(s->lobes * th)));
        float ft = f * s->teeth + p->phase[0];
        rr *= 1 - s->tooth_depth * (ft - floorf(ft));
        float sinus = (PI_F - fabsf(th)) / 0.45f;
        if (sinus < 1)
            rr *= powf(fmaxf(sinus, 0), 0.6f);
        d = (rr - dist) * p->len;
        wid = rad;
        if (!shade)
            return clampf(d + 0.5f, 0, 1);
        if (s->veins > 0 && dist < rr * 0.85f) {
            float step = 2 * PI_F / s->veins;
            float k = roundf(th / step);
            float dth = fabsf(th - k * step);
            if (fabsf(k * step) < PI_F - 0.3f) {
                float thick = 0.018f * (1.2f - dist / rad);
                vein = clampf(1 - dist * sinf(dth) / fmaxf(thick, 1e-3f), 0, 1);
            }
        }
        v = dv / rad * s->width; /* for the fold shading below */
    } else {
        wid = blade_half(s, p, u, side);
        float inside = wid - av;
        if (s->basal > 0 && u < 0.12f && u > -s->basal) {
            float t = clampf(-u / s->basal, 0, 1);
            float outer = s->width * (0.85f + 0.35f * t) * (u > 0 ? 1 - u / 0.12f * 0.5f : 1);
            float inner = u < 0 ? outer * powf(t, 0.6f) : 0;
            float lobe = fminf(outer - av, av - inner);
            if (lobe > inside) {
                inside = lobe;
                wid = outer;
            }
        }
        if (wid <= 0)
            return 0; /* beyond the base or the tip */
        d = inside * p->len;
        if (!shade)
            return clampf(d + 0.5f, 0, 1);
        if (d <= -0.5f)
            return 0;
        float thick = (0.010f + 0.012f * (1 - u)) * (s->vein == VEIN_PARALLEL ? 0.6f : 1);
        vein = clampf(1 - (av - 0.002f) / thick, 0, 1); /* midrib */
        if (s->veins > 0 && wid > 1e-4f && av < wid * 0.9f) {
            float m = 0;
            if (s->vein == VEIN_PINNATE) {
                float t = (u - 0.9f * av / fmaxf(s->width, 0.05f) * 0.45f) * s->veins;
                float f = t - floorf(t);
                m = clampf(1 - fminf(f, 1 - f) / (s->veins * thick * 0.7f), 0, 1);
                if (u > 0.92f || t < 0.3f)
                    m = 0;
            } else {
                float t = (av / wid) * s->veins;
                float f = t - floorf(t);
                m = clampf(1 - fminf(f, 1 - f) / (0.12f + 0.2f * (1 - wid / s->width)), 0, 1);
            }
            vein = fmaxf(vein, m * 0.7f);
        }
    }
    float cov = clampf(d + 0.5f, 0, 1);
    if (cov <= 0)
        return 0;
    /* fold along the midrib, lit from one side */
    float lit = p->ca * -pl->light_y + p->sa * pl->light_x; /* light across the leaf */
    float fold = 1 + 0.12f * lit * tanhf(3 * v / fmaxf(wid, 1e-3f));
    float edge = 0.82f + 0.18f * clampf(d / 2.0f, 0, 1);
    float k = fold * edge;
    for (int c = 0; c < 3; c++)
        out[c] = p->rgb[c] * k + s->vein_contrast * vein;
    if (s->chevron > 0 && s->shape == SHAPE_BLADE) {
        float band = fabsf(u - (0.35f + 1.2f * av));
        if (band < 0.07f && av < wid * 0.85f)
            for (int c = 0; c < 3; c++)
                out[c] += s->chevron * (1 - band / 0.07f) * (0.85f - out[c]);
    }
    if (s->gloss > 0) {
        float g = expf(-(v / fmaxf(wid, 1e-3f) - 0.35f) * (v / fmaxf(wid, 1e-3f) - 0.35f) / 0.03f);
        for (int c = 0; c < 3; c++)
            out[c] += s->gloss * 0.5f * g * (1 - out[c]);
    }
    if (s->speckle > 0) {
        float n = hash01((int)(lx * 2.3f), (int)(ly * 2.3f), pl->seed ^ 0x5eedu);
        if (n > 1 - 0.25f * s->speckle)
            for (int c = 0; c < 3; c++)
                out[c] += 0.35f * (0.9f - out[c]);
    }
    return cov;
}

static float stem_pixel(const Part *p, float lx, float ly, float out[3])
{
    float t = clampf(lx, 0, p->len);
    float dx = lx - t, dist = sqrtf(dx * dx + ly * ly);
    float cov = clampf(p->half - dist + 0.5f, 0, 1);
    if (cov > 0) {
        float k = 1 + 0.25f * (0.5f - dist / (p->half + 0.5f));
        for (int c = 0; c < 3; c++)
            out[c] = p->rgb[c] * k;
    }
    return cov;
}

/* Coverage (and colour when out != NULL) of part p at pixel centre (x, y). */
static float part_at(const Plant *pl, const Part *p, float x, float y, float out[3])
{
    if (x < p->x0 || x > p->x1 || y < p->y0 || y > p->y1)
        return 0;
    float dx = x - p->ox, dy = y - p->oy;
    float lx = dx * p->ca + dy * p->sa, ly = -dx * p->sa + dy * p->ca;
    float tmp[3];
    if (p->kind == PART_STEM)
        return stem_pixel(p, lx, ly, out ? out : tmp);
    return leaf_pixel(pl, p, lx, ly, out != NULL, out ? out : tmp);
}

/* ---- the photograph ---- */

static int render(int species, int w, int h, uint64_t seed, uint8_t *rgb)
{
    Rng r;
    rng_seed(&r, seed);
    Plant pl = {.sp = &species_table[species], .seed = (uint32_t)rng_u64(&r)};
    float la = frand(&r, 0, 2 * PI_F);
    pl.light_x = cosf(la);
    pl.light_y = sinf(la);
    float *img = malloc((size_t)w * h * 3 * sizeof *img);
    if (!img || build_plant(&pl, &r, w, h) != 0) {
        free(img);
        free(pl.parts);
        return -1;
    }
    float side = (float)(w < h ? w : h);

    /* soil */
    float soil[3], soil2[3];
    hsv_to_rgb(frand(&r, 18, 42), frand(&r, 0.30f, 0.60f), frand(&r, 0.22f, 0.52f), soil);
    hsv_to_rgb(frand(&r, 20, 40), frand(&r, 0.2f, 0.5f), frand(&r, 0.35f, 0.65f), soil2);
    uint32_t ns = (uint32_t)rng_u64(&r);
    float clump = side * frand(&r, 0.04f, 0.10f);
    int n_pebbles = (int)rng_below(&r, 30);
    float peb[30][6]; /* x, y, rx, ry, brightness, angle */
    for (int k = 0; k < n_pebbles; k++) {
        peb[k][0] = frand(&r, 0, w);
        peb[k][1] = frand(&r, 0, h);
        peb[k][2] = side * frand(&r, 0.006f, 0.03f);
        peb[k][3] = peb[k][2] * frand(&r, 0.5f, 1.0f);
        peb[k][4] = frand(&r, 0.9f, 1.6f);
        peb[k][5] = frand(&r, 0, PI_F);
    }
    int n_straw = (int)rng_below(&r, 6);
    float straw[6][5]; /* x, y, cos, sin, length */
    for (int k = 0; k < n_straw; k++) {
        float a = frand(&r, 0, PI_F);
        straw[k][0] = frand(&r, 0, w);
        straw[k][1] = frand(&r, 0, h);
        straw[k][2] = cosf(a);
        straw[k][3] = sinf(a);
        straw[k][4] = side * frand(&r, 0.05f, 0.2f);
    }
    float straw_half = fmaxf(0.5f, side * 0.004f);
    float shadow_dx = -pl.light_x * side * frand(&r, 0.01f, 0.035f);
    float shadow_dy = -pl.light_y * side * frand(&r, 0.01f, 0.035f);
    float shadow_k = frand(&r, 0.25f, 0.55f);

    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            float px = x + 0.5f, py = y + 0.5f;
            float n1 = value_noise(px, py, clump, ns);
            float n2 = value_noise(px, py, clump * 0.37f, ns + 1);
            float n3 = value_noise(px, py, side * 0.35f, ns + 2);
            float grain = hash01(x, y, ns + 3) - 0.5f;
            float mix = clampf(n3 * 1.4f - 0.2f, 0, 1);
            float k = 0.70f + 0.45f * n1 + 0.25f * n2 + 0.18f * grain;
            float col[3];
            for (int c = 0; c < 3; c++)
                col[c] = (soil[c] * (1 - mix) + soil2[c] * mix) * k;
            for (int q = 0; q < n_pebbles; q++) {
                float dx = px - peb[q][0], dy = py - peb[q][1];
                float ca = cosf(peb[q][5]), sa = sinf(peb[q][5]);
                float ex = (dx * ca + dy * sa) / peb[q][2], ey = (-dx * sa + dy * ca) / peb[q][3];
                float e = ex * ex + ey * ey;
                if (e < 1) {
                    float lit = 1 + 0.35f * (-(dx * pl.light_x + dy * pl.light_y) / peb[q][2]);
                    for (int c = 0; c < 3; c++)
                        col[c] = soil2[c] * peb[q][4] * lit * (0.9f + 0.1f * n2);
                } else if (e < 1.6f) {
                    for (int c = 0; c < 3; c++)
                        col[c] *= 0.8f + 0.2f * (e - 1) / 0.6f;
                }
            }
            for (int q = 0; q < n_straw; q++) {
                float dx = px - straw[q][0], dy = py - straw[q][1];
                float lx = dx * straw[q][2] + dy * straw[q][3];
                float ly = -dx * straw[q][3] + dy * straw[q][2];
                if (lx > 0 && lx < straw[q][4] && fabsf(ly) < straw_half) {
                    col[0] = 0.72f * k;
                    col[1] = 0.62f * k;
                    col[2] = 0.42f * k;
                }
            }
            float sh = 0;
            for (int i = 0; i < pl.n && sh < 1; i++)
                sh = fmaxf(sh, part_at(&pl, &pl.parts[i], px - shadow_dx, py - shadow_dy, NULL));
            for (int c = 0; c < 3; c++)
                col[c] *= 1 - shadow_k * sh;
            for (int i = 0; i < pl.n; i++) {
                float leaf[3];
                float cov = part_at(&pl, &pl.parts[i], px, py, leaf);
                if (cov > 0)
                    for (int c = 0; c < 3; c++)
                        col[c] = col[c] * (1 - cov) + leaf[c] * cov;
            }
            memcpy(img + ((size_t)y * w + x) * 3, col, sizeof col);
        }
    }

    /* camera: exposure, colour cast, lighting gradient, defocus, sensor noise */
    float gain = frand(&r, 0.75f, 1.3f);
    float cast[3] = {frand(&r, 0.92f, 1.08f), frand(&r, 0.95f, 1.05f), frand(&r, 0.9f, 1.1f)};
    float gx = frand(&r, -0.25f, 0.25f) / w, gy = frand(&r, -0.25f, 0.25f) / h;
    float noise = frand(&r, 0.004f, 0.025f);
    int blur = rng_uniform(&r) < 0.3;
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            float g = gain * (1 + gx * (x - w / 2) + gy * (y - h / 2));
            float ux = (x + 0.5f) / w - 0.5f, uy = (y + 0.5f) / h - 0.5f;
            g *= 1 - 0.35f * (ux * ux + uy * uy);
            float *p = img + ((size_t)y * w + x) * 3;
            for (int c = 0; c < 3; c++)
                p[c] *= g * cast[c];
        }
    }
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            for (int c = 0; c < 3; c++) {
                float v;
                if (blur) {
                    float s = 0;
                    int cnt = 0;
                    for (int yy = y - 1; yy <= y + 1; yy++)
                        for (int xx = x - 1; xx <= x + 1; xx++)
                            if (xx >= 0 && yy >= 0 && xx < w && yy < h) {
                                float wgt = (xx == x && yy == y) ? 4.0f : 1.0f;
                                s += wgt * img[((size_t)yy * w + xx) * 3 + c];
                                cnt += (int)wgt;
                            }
                    v = s / cnt;
                } else {
                    v = img[((size_t)y * w + x) * 3 + c];
                }
                v += noise * (float)rng_normal(&r);
                int q = (int)(v * 255.0f + 0.5f);
                rgb[((size_t)y * w + x) * 3 + c] = (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
            }
        }
    }
    free(img);
    free(pl.parts);
    return 0;
}

int data_demo_render(int species, int size, uint64_t seed, uint8_t *rgb)
{
    if (species < 0 || species >= N_SPECIES || size < 8 || size > DATA_RESIZE_MAX)
        return -1;
    return render(species, size, size, seed, rgb);
}

int data_demo_render_rect(int species, int width, int height, uint64_t seed, uint8_t *rgb)
{
    if (species < 0 || species >= N_SPECIES || width < 8 || height < 8 || width > 8192 ||
        height > 8192)
        return -1;
    return render(species, width, height, seed, rgb);
}

/* ---- the dataset writer ---- */

typedef struct {
    const char *dir;
    const DataDemoConfig *cfg;
    DataProgressFn progress;
    void *user;
    int cancelled;        /* the watching thread's own */
    atomic_int next, done, stop;
    pthread_mutex_t lock; /* guards err */
    char err[512];
} DemoJob;

static void demo_fail(DemoJob *job, const char *what, const char *detail)
{
    pthread_mutex_lock(&job->lock);
    if (!job->err[0])
        snprintf(job->err, sizeof job->err, "%s%s%s", what, detail ? ": " : "",
                 detail ? detail : "");
    pthread_mutex_unlock(&job->lock);
    atomic_store(&job->stop, 1);
}

static void demo_worker(void *arg)
{
    DemoJob *job = arg;
    const DataDemoConfig *cfg = job->cfg;
    int total = cfg->classes * cfg->per_class;
    uint8_t *rgb = malloc((size_t)cfg->size * cfg->size * 3);
    DataCodec *codec = data_codec_create();
    if (!rgb || !codec) {
        demo_fail(job, "out of memory", NULL);
        goto out;
    }
    while (!atomic_load(&job->stop)) {
        int i = atomic_fetch_add(&job->next, 1);
        if (i >= total)
            break;
        int sp = i / cfg->per_class, k = i % cfg->per_class;
        uint64_t seed = rng_derive(rng_derive(cfg->seed, (uint64_t)sp), (uint64_t)k);
        const uint8_t *jpeg;
        size_t n;
        char reason[256];
        if (render(sp, cfg->size, cfg->size, seed, rgb) != 0) {
            demo_fail(job, "out of memory", NULL);
            break;
        }
        if (data_jpeg_encode(codec, rgb, cfg->size, cfg->size, 3, cfg->quality, &jpeg, &n,
                             reason, sizeof reason) != 0) {
            demo_fail(job, reason, NULL);
            break;
        }
        char name[300];
        snprintf(name, sizeof name, "%s/%s_%04d.jpg", species_table[sp].name,
                 species_table[sp].name, k);
        char *path = data_path_join(job->dir, name);
        int rc = path ? data_write_new_file(path, jpeg, n) : -ENOMEM;
        if (rc != 0) {
            char what[400];
            snprintf(what, sizeof what, "cannot write %s", path ? path : name);
            demo_fail(job, what, strerror(-rc));
            free(path);
            break;
        }
        free(path);
        atomic_fetch_add(&job->done, 1);
    }
out:
    free(rgb);
    data_codec_free(codec);
}

static void demo_watch(void *arg)
{
    DemoJob *job = arg;
    int total = job->cfg->classes * job->cfg->per_class;
    if (job->progress && !job->cancelled &&
        job->progress(job->user, atomic_load(&job->done), total)) {
        job->cancelled = 1;
        atomic_store(&job->stop, 1);
    }
}

int data_demo_write(const char *dir, const DataDemoConfig *cfg, DataProgressFn progress,
                    void *user, char *err, size_t errlen)
{
    if (cfg->classes < 1 || cfg->classes > N_SPECIES) {
        snprintf(err, errlen, "classes must be 1..%d", N_SPECIES);
        return -1;
    }
    if (cfg->per_class < 1 || cfg->size < 8 || cfg->size > DATA_RESIZE_MAX ||
        cfg->quality < 1 || cfg->quality > 100) {
        snprintf(err, errlen, "per-class must be >= 1, size 8..%d, quality 1..100",
                 DATA_RESIZE_MAX);
        return -1;
    }
    for (int sp = 0; sp < cfg->classes; sp++) {
        char *p = data_path_join(dir, species_table[sp].name);
        int rc = p ? data_mkdirs(p) : -ENOMEM;
        if (rc != 0) {
            snprintf(err, errlen, "cannot create %s: %s", p ? p : dir, strerror(-rc));
            free(p);
            return -1;
        }
        free(p);
    }
    int total = cfg->classes * cfg->per_class;
    if (progress && progress(user, 0, total)) {
        snprintf(err, errlen, "cancelled");
        return -2;
    }
    DemoJob job = {.dir = dir, .cfg = cfg, .progress = progress, .user = user};
    atomic_init(&job.next, 0);
    atomic_init(&job.done, 0);
    atomic_init(&job.stop, 0);
    pthread_mutex_init(&job.lock, NULL);
    data_run_workers(cfg->threads > 0 ? cfg->threads : 2, demo_worker, demo_watch, &job);
    pthread_mutex_destroy(&job.lock);
    if (job.cancelled) {
        snprintf(err, errlen, "cancelled");
        return -2;
    }
    if (job.err[0]) {
        snprintf(err, errlen, "%s", job.err);
        return -1;
    }
    return 0;
}
