/* rng.h — the one random number generator of initlab: xoshiro256** seeded by splitmix64.
 *
 * Every random choice (initial weights, data splits, shuffles, flips, dropout masks) draws
 * from an Rng seeded explicitly, so a seed reproduces a run bit for bit. The generator is
 * xoshiro256** 1.0 (Blackman and Vigna, 2018); the 64-bit seed is expanded into its
 * 256-bit state with splitmix64. Normals use the Box–Muller transform on two uniforms.
 * An Rng is plain data: copy it to save and restore a stream. Not thread-safe; use one
 * Rng per thread. */
#ifndef INITLAB_UTIL_RNG_H
#define INITLAB_UTIL_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} Rng;

/* Seeds rng from seed (any value, 0 included). Can't fail. */
void rng_seed(Rng *rng, uint64_t seed);
/* Next 64 random bits. Can't fail. */
uint64_t rng_u64(Rng *rng);
/* Uniform double in [0, 1) with 53 random bits. */
double rng_uniform(Rng *rng);
/* Uniform integer in [0, n) without modulo bias; n > 0. */
uint64_t rng_below(Rng *rng, uint64_t n);
/* Standard normal (mean 0, variance 1), Box–Muller; uses two uniforms per call. */
double rng_normal(Rng *rng);
/* Shuffles idx[0..n) in place (Fisher–Yates, drawing rng_below). */
void rng_shuffle_int(Rng *rng, int *idx, int n);
/* A seed derived from (seed, stream): independent streams for one user seed. */
uint64_t rng_derive(uint64_t seed, uint64_t stream);

#endif
