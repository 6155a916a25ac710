/* rng.h: a small seeded generator (xoshiro256**, seeded by splitmix64).
 *
 * Every random choice in dltrain derives from the run's seed and a position
 * (epoch, sample index, layer), never from a generator that has run for a
 * while, so a resumed run draws exactly what an uninterrupted one would. */
#ifndef DL_RNG_H
#define DL_RNG_H

#include <stdint.h>

typedef struct dl_rng {
    uint64_t s[4];
} dl_rng;

/* Seed from a base seed and up to two position coordinates. */
void dl_rng_seed(dl_rng *r, uint64_t seed, uint64_t a, uint64_t b);
uint64_t dl_rng_next(dl_rng *r);
/* uniform in [0, 1) */
double dl_rng_uniform(dl_rng *r);
/* uniform integer in [0, n) */
uint64_t dl_rng_below(dl_rng *r, uint64_t n);
/* standard normal (Box-Muller) */
double dl_rng_normal(dl_rng *r);

#endif
