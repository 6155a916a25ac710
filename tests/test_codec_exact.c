/* test_codec_exact.c: the array codecs of comm/compress_codec.c (written to
 * vectorize: F16C, masks instead of branches, a decoding table) give the
 * bits of the plain per-value definitions below, which are the codecs as
 * docs/compression.md states them, on every kind of input: random, zeros,
 * all-equal, ±FLT_MAX, denormals, a wide range, infinities and NaNs, at
 * lengths that end inside a byte, a vector and a block.  fp16 is also
 * checked over a sweep of the float bit patterns (one in 1021). */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress.h"
#include "rng.h"

static int failures;

#include "expect.h"

#define BLOCK DL_COMPRESS_BLOCK

/* ---- the definitions, one value at a time --------------------------------- */

static size_t blocks(size_t n) { return (n + BLOCK - 1) / BLOCK; }

static void int8_definition(const float *x, size_t n, unsigned char *out)
{
    float *scale = (float *)out;
    signed char *q = (signed char *)(scale + blocks(n));
    for (size_t b = 0; b < blocks(n); b++) {
        size_t lo = b * BLOCK, hi = lo + BLOCK < n ? lo + BLOCK : n;
        float amax = 0.0f;
        for (size_t i = lo; i < hi; i++)
            amax = fmaxf(amax, fabsf(x[i]));
        float s = amax / 127.0f; /* lowered until 127 s is finite */
        if (isinf(127.0f * s)) { /* the largest such float, by bisection on the bits */
            uint32_t lo = 0, hi = 0x7f800000u;
            while (lo + 1 < hi) {
                uint32_t mid = lo + (hi - lo) / 2;
                float f;
                memcpy(&f, &mid, sizeof f);
                *(isinf(127.0f * f) ? &hi : &lo) = mid;
            }
            float top;
            memcpy(&top, &lo, sizeof top);
            s = s < top ? s : top;
        }
        scale[b] = s;
        for (size_t i = lo; i < hi; i++) {
            float v = s > 0.0f ? rintf(x[i] / s) : 0.0f;
            q[i] = (signed char)fmaxf(-127.0f, fminf(127.0f, v));
        }
    }
}

static void onebit_definition(const float *x, size_t n, unsigned char *out)
{
    float *pos = (float *)out, *neg = pos + blocks(n);
    unsigned char *bits = (unsigned char *)(neg + blocks(n));
    for (size_t b = 0; b < blocks(n); b++) {
        size_t lo = b * BLOCK, hi = lo + BLOCK < n ? lo + BLOCK : n, np = 0;
        double sp = 0.0, sn = 0.0;
        for (size_t i = lo; i < hi; i++) {
            if (x[i] >= 0.0f) {
                sp += x[i], np++;
                bits[i / 8] |= (unsigned char)(1u << (i % 8));
            } else {
                sn += x[i];
            }
        }
        pos[b] = np ? (float)(sp / (double)np) : 0.0f;
        neg[b] = hi - lo - np ? (float)(sn / (double)(hi - lo - np)) : 0.0f;
    }
}

static void encode_definition(dl_compress_kind kind, const float *x, size_t n, void *out)
{
    memset(out, 0, dl_codec_bytes(kind, n));
    uint16_t *h = out;
    for (size_t i = 0; kind == DL_COMPRESS_FP16 && i < n; i++)
        h[i] = dl_float_to_half(x[i]);
    for (size_t i = 0; kind == DL_COMPRESS_BF16 && i < n; i++)
        h[i] = dl_float_to_bf16(x[i]);
    if (kind == DL_COMPRESS_INT8)
        int8_definition(x, n, out);
    if (kind == DL_COMPRESS_ONEBIT)
        onebit_definition(x, n, out);
}

static void decode_definition(dl_compress_kind kind, const void *in, size_t n, float *y)
{
    const uint16_t *h = in;
    const float *f = in;
    for (size_t i = 0; i < n; i++) {
        size_t b = i / BLOCK;
        switch (kind) {
        case DL_COMPRESS_FP16: y[i] = dl_half_to_float(h[i]); break;
        case DL_COMPRESS_BF16: y[i] = dl_bf16_to_float(h[i]); break;
        case DL_COMPRESS_INT8: y[i] = (float)((const signed char *)(f + blocks(n)))[i] * f[b]; break;
        default: {
            const unsigned char *bits = (const unsigned char *)(f + 2 * blocks(n));
            y[i] = (bits[i / 8] >> (i % 8)) & 1u ? f[b] : f[blocks(n) + b];
        }
        }
    }
}

/* ---- inputs --------------------------------------------------------------- */

enum { KINDS = 8 };
static const char *const input_names[KINDS] = {"random", "zeros", "all-equal", "extremes",
                                               "denormals", "wide range", "inf and NaN",
                                               "signed zeros"};

static void make_input(int k, float *x, size_t n)
{
    dl_rng r;
    dl_rng_seed(&r, 11, 17, (uint64_t)k);
    for (size_t i = 0; i < n; i++) {
        double g = dl_rng_normal(&r);
        switch (k) {
        case 0: x[i] = (float)(0.01 * g); break;
        case 1: x[i] = 0.0f; break;
        case 2: x[i] = -0.37f; break;
        case 3: x[i] = i % 3 == 0 ? FLT_MAX : i % 3 == 1 ? -FLT_MAX : 1e30f * (float)g; break;
        case 4: x[i] = (float)g * 1e-40f; break;
        case 5: x[i] = (float)(g * pow(10.0, (double)(i % 60) - 30.0)); break;
        case 6: x[i] = i % 7 == 0 ? NAN : i % 7 == 3 ? -INFINITY : i % 11 == 0 ? INFINITY
                     : (float)(g * 70000.0); break;
        default: x[i] = i % 2 ? -0.0f : 0.0f; break;
        }
    }
}

static int same_bits(const void *a, const void *b, size_t bytes) { return !memcmp(a, b, bytes); }

static void check_codec(dl_compress_kind kind, const char *name)
{
    static const size_t lengths[] = {1, 7, 8, 9, 255, 256, 257, 1000, 4099};
    for (int k = 0; k < KINDS; k++) {
        for (size_t li = 0; li < sizeof lengths / sizeof *lengths; li++) {
            size_t n = lengths[li], bytes = dl_codec_bytes(kind, n);
            float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y), *z = malloc(n * sizeof *z);
            unsigned char *got = malloc(bytes), *want = malloc(bytes);
            make_input(k, x, n);
            dl_codec_encode(kind, x, n, got);
            encode_definition(kind, x, n, want);
            EXPECT(same_bits(got, want, bytes), "%s encode on %s, n %zu: bits differ", name,
                   input_names[k], n);
            dl_codec_decode(kind, want, n, y);
            decode_definition(kind, want, n, z);
            EXPECT(same_bits(y, z, n * sizeof *y), "%s decode on %s, n %zu: bits differ", name,
                   input_names[k], n);
            free(x), free(y), free(z), free(got), free(want);
        }
    }
}

/* fp16 over a sweep of all 2^32 float patterns (every 1021st, so every
 * exponent and many mantissas of each), and every 16-bit pattern decoded. */
static void check_half_sweep(void)
{
    enum { CHUNK = 4096 };
    float x[CHUNK], y[CHUNK];
    uint16_t got[CHUNK], h[1 << 16];
    long bad = 0;
    uint64_t u = 0;
    while (u < (1ull << 32)) {
        size_t n = 0;
        for (; n < CHUNK && u < (1ull << 32); n++, u += 1021) {
            uint32_t bits = (uint32_t)u;
            memcpy(&x[n], &bits, sizeof bits);
        }
        dl_codec_encode(DL_COMPRESS_FP16, x, n, got);
        for (size_t i = 0; i < n; i++)
            bad += got[i] != dl_float_to_half(x[i]);
    }
    EXPECT(bad == 0, "fp16 encode: %ld of the swept float patterns differ", bad);
    for (uint32_t p = 0; p < (1u << 16); p++)
        h[p] = (uint16_t)p;
    bad = 0;
    for (uint32_t lo = 0; lo < (1u << 16); lo += CHUNK) {
        dl_codec_decode(DL_COMPRESS_FP16, h + lo, CHUNK, y);
        for (uint32_t i = 0; i < CHUNK; i++) {
            float want = dl_half_to_float(h[lo + i]);
            bad += memcmp(&y[i], &want, sizeof want) != 0;
        }
    }
    EXPECT(bad == 0, "fp16 decode: %ld of the 65536 patterns differ", bad);
}

int main(void)
{
    check_codec(DL_COMPRESS_FP16, "fp16");
    check_codec(DL_COMPRESS_BF16, "bf16");
    check_codec(DL_COMPRESS_INT8, "int8");
    check_codec(DL_COMPRESS_ONEBIT, "onebit");
    check_half_sweep();
    if (failures) {
        fprintf(stderr, "test_codec_exact: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_codec_exact: the array codecs give the definitions' bits\n");
    return 0;
}
