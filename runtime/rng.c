/* rng.c: xoshiro256** by Blackman and Vigna (public domain reference). */
#include "rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

void dl_rng_seed(dl_rng *r, uint64_t seed, uint64_t a, uint64_t b)
{
    uint64_t x = seed;
    uint64_t mix = splitmix64(&x) ^ (a * 0xD1B54A32D192ED03ULL) ^ (b * 0x8CB92BA72F3D8DD7ULL);
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&mix);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t dl_rng_next(dl_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double dl_rng_uniform(dl_rng *r) { return (double)(dl_rng_next(r) >> 11) * 0x1.0p-53; }

uint64_t dl_rng_below(dl_rng *r, uint64_t n)
{
    /* Lemire's multiply-shift; the tiny bias is irrelevant for shuffling */
    return (uint64_t)(((__uint128_t)dl_rng_next(r) * n) >> 64);
}

double dl_rng_normal(dl_rng *r)
{
    double u1 = dl_rng_uniform(r), u2 = dl_rng_uniform(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
