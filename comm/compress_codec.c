/* compress_codec.c: the element-wise codecs' C reference, the names of the
 * compressors (see compress.h; the wire model is in compress_plan.c). */
#include "compress.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#ifdef __F16C__
#include <immintrin.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[] = {"none", "fp16", "bf16", "int8", "onebit", "powersgd"};

dl_status dl_compress_parse(const char *text, dl_compress_spec *out)
{
    size_t len = strcspn(text, ":");
    for (int k = 0; k <= DL_COMPRESS_POWERSGD; k++) {
        if (strlen(kind_names[k]) != len || strncmp(text, kind_names[k], len) != 0)
            continue;
        *out = (dl_compress_spec){.kind = (dl_compress_kind)k, .rank = 0};
        if (k != DL_COMPRESS_POWERSGD) {
            if (text[len])
                return dl_fail(DL_ERR_ARG, "--compress %s takes no ':RANK' (only powersgd does)",
                               kind_names[k]);
            return DL_OK;
        }
        out->rank = DL_POWERSGD_MAX_RANK;
        if (!text[len])
            return DL_OK;
        char *end;
        long r = strtol(text + len + 1, &end, 10);
        if (end == text + len + 1 || *end || r < 1 || r > DL_POWERSGD_MAX_RANK)
            return dl_fail(DL_ERR_ARG, "--compress %s: the PowerSGD rank must be 1 to %d", text,
                           DL_POWERSGD_MAX_RANK);
        out->rank = (int)r;
        return DL_OK;
    }
    return dl_fail(DL_ERR_ARG, "unknown --compress '%s' (choose from %s)", text, DL_COMPRESS_NAMES);
}

void dl_compress_name(dl_compress_spec s, char *out, size_t size)
{
    if (s.kind == DL_COMPRESS_POWERSGD)
        snprintf(out, size, "powersgd:%d", s.rank);
    else
        snprintf(out, size, "%s", kind_names[s.kind]);
}

/* ---- scalar conversions --------------------------------------------------- */

static uint32_t bits_of(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static float float_of(uint32_t u)
{
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* v >> shift rounded to nearest, ties to even. */
static uint32_t shift_round_even(uint32_t v, int shift)
{
    uint32_t q = v >> shift, rem = v & ((1u << shift) - 1), half = 1u << (shift - 1);
    return q + (rem > half || (rem == half && (q & 1)));
}

uint16_t dl_float_to_half(float x)
{
    uint32_t u = bits_of(x), a = u & 0x7fffffffu;
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    if (a > 0x7f800000u)
        return sign | 0x7e00u; /* NaN stays NaN */
    int e = (int)(a >> 23) - 127;
    if (e > 15)
        return sign | 0x7bffu; /* beyond 65504: the largest half */
    uint32_t h;
    if (e >= -14) /* normal half: rounding may carry into the exponent, which is right */
        h = shift_round_even(((uint32_t)(e + 15) << 23) | (a & 0x7fffffu), 13);
    else if (e >= -25) /* subnormal half, in units of 2^-24 */
        h = shift_round_even((a & 0x7fffffu) | 0x800000u, -(e + 1));
    else
        h = 0;
    return sign | (uint16_t)(h >= 0x7c00u ? 0x7bffu : h);
}

float dl_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1f)
        return float_of(sign | 0x7f800000u | (m << 13));
    if (e == 0) /* zero or subnormal: m x 2^-24, exact in float */
        return sign ? -ldexpf((float)m, -24) : ldexpf((float)m, -24);
    return float_of(sign | ((e + 112) << 23) | (m << 13));
}

uint16_t dl_float_to_bf16(float x)
{
    uint32_t u = bits_of(x);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40u);
    uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    if ((r & 0x7f80u) == 0x7f80u && (u & 0x7f800000u) != 0x7f800000u)
        r = (r & 0x8000u) | 0x7f7fu; /* rounded up to infinity: the largest bf16 */
    return (uint16_t)r;
}

float dl_bf16_to_float(uint16_t b) { return float_of((uint32_t)b << 16); }

/* ---- block codecs --------------------------------------------------------- */

static size_t n_blocks(size_t n) { return (n + DL_COMPRESS_BLOCK - 1) / DL_COMPRESS_BLOCK; }
static size_t round8(size_t b) { return (b + 7) & ~(size_t)7; }

size_t dl_codec_bytes(dl_compress_kind kind, size_t n)
{
    switch (kind) {
    case DL_COMPRESS_FP16:
    case DL_COMPRESS_BF16: return round8(2 * n);
    case DL_COMPRESS_INT8: return round8(4 * n_blocks(n) + n);
    case DL_COMPRESS_ONEBIT: return round8(8 * n_blocks(n) + (n + 7) / 8);
    default: return 4 * n;
    }
}

/* The largest step s with 127 s finite: from FLT_MAX / 127, down while 127 s
 * overflows and up while the next float still fits (both products round,
 * so the quotient may be an ulp or two off).  A handful of iterations, not
 * the millions of walking down from an infinite amax / 127 one float at a
 * time. */
static float int8_step_max(void)
{
    float s = FLT_MAX / 127.0f;
    while (isinf(127.0f * s))
        s = nextafterf(s, 0.0f);
    while (!isinf(127.0f * nextafterf(s, INFINITY)))
        s = nextafterf(s, INFINITY);
    return s;
}

/* The int8 step of a block whose largest magnitude is amax: amax / 127,
 * lowered until 127 steps stay finite (amax near FLT_MAX or infinite): the
 * largest such float no greater than amax / 127. */
static float int8_step(float amax)
{
    float s = amax / 127.0f, top = int8_step_max();
    return s > top ? top : s;
}

/* The largest magnitude of x[0, n), NaNs ignored (as fmaxf does).  On the
 * bits: for floats that are not NaN, magnitude order is the order of
 * |bits| as integers, and an integer max vectorizes where fmaxf does not. */
static float block_amax(const float *x, size_t n)
{
    uint32_t m = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t a = bits_of(x[i]) & 0x7fffffffu;
        a = a > 0x7f800000u ? 0 : a;
        m = a > m ? a : m;
    }
    return float_of(m);
}

/* round(x / s) in [-127, 127]; NaN becomes 127, as fmaxf(-127, fminf(127,
 * NaN)) gives.  Written with comparisons so the loop vectorizes. */
static void int8_quantize(const float *x, size_t n, float s, int8_t *q)
{
    if (!(s > 0.0f)) { /* an all-zero (or all-NaN) block */
        memset(q, 0, n);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        float v = rintf(x[i] / s);
        v = v < 127.0f ? v : 127.0f;
        v = v > -127.0f ? v : -127.0f;
        q[i] = (int8_t)v;
    }
}

static void int8_encode(const float *x, size_t n, void *out)
{
    float *scale = out;
    int8_t *q = (int8_t *)(scale + n_blocks(n));
    for (size_t b = 0; b < n_blocks(n); b++) {
        size_t lo = b * DL_COMPRESS_BLOCK, len = DL_MIN(n, lo + DL_COMPRESS_BLOCK) - lo;
        scale[b] = int8_step(block_amax(x + lo, len));
        int8_quantize(x + lo, len, scale[b], q + lo);
    }
}

static void int8_decode(const void *in, size_t n, float *y)
{
    const float *scale = in;
    const int8_t *q = (const int8_t *)(scale + n_blocks(n));
    for (size_t lo = 0; lo < n; lo += DL_COMPRESS_BLOCK) {
        size_t hi = DL_MIN(n, lo + DL_COMPRESS_BLOCK);
        float s = scale[lo / DL_COMPRESS_BLOCK];
        for (size_t i = lo; i < hi; i++)
            y[i] = (float)q[i] * s;
    }
}

/* Seide et al.'s 1-bit quantization: a sign per value, and per block the
 * means of the non-negative and of the negative values (the reconstruction
 * that minimizes the squared error for a given sign pattern). */
static void onebit_encode(const float *x, size_t n, void *out)
{
    size_t nb = n_blocks(n);
    float *pos = out, *neg = pos + nb;
    unsigned char *bits = (unsigned char *)(neg + nb);
    memset(bits, 0, (n + 7) / 8);
    for (size_t b = 0; b < nb; b++) {
        size_t lo = b * DL_COMPRESS_BLOCK, hi = DL_MIN(n, lo + DL_COMPRESS_BLOCK);
        double sp = 0.0, sn = 0.0;
        size_t np = 0;
        /* without branches (signs are unpredictable, and a compiler may turn
         * a ?: into a jump): each value goes to one sum and +0.0 to the
         * other, by masking its bits, which leaves each sum's bits as its
         * own group alone would give */
        for (size_t i = lo; i < hi; i++) {
            unsigned p = x[i] >= 0.0f;
            double v = x[i], to_pos, to_neg;
            uint64_t vb, mask = 0 - (uint64_t)p;
            memcpy(&vb, &v, sizeof vb);
            uint64_t pos_bits = vb & mask, neg_bits = vb & ~mask;
            memcpy(&to_pos, &pos_bits, sizeof to_pos);
            memcpy(&to_neg, &neg_bits, sizeof to_neg);
            sp += to_pos;
            sn += to_neg;
            np += p;
        }
        for (size_t i = lo; i < hi; i += 8) { /* each byte of signs stored once */
            unsigned byte = 0;
            for (size_t k = 0; k < 8 && i + k < hi; k++)
                byte |= (unsigned)(x[i + k] >= 0.0f) << k;
            bits[i / 8] = (unsigned char)byte;
        }
        size_t nn = hi - lo - np;
        pos[b] = np ? (float)(sp / (double)np) : 0.0f;
        neg[b] = nn ? (float)(sn / (double)nn) : 0.0f;
    }
}

static void onebit_decode(const void *in, size_t n, float *y)
{
    size_t nb = n_blocks(n);
    const float *pos = in, *neg = pos + nb;
    const unsigned char *bits = (const unsigned char *)(neg + nb);
    for (size_t lo = 0; lo < n; lo += DL_COMPRESS_BLOCK) {
        size_t hi = DL_MIN(n, lo + DL_COMPRESS_BLOCK), i = lo;
        float p = pos[lo / DL_COMPRESS_BLOCK], q = neg[lo / DL_COMPRESS_BLOCK];
        uint32_t pb = bits_of(p), qb = bits_of(q);
        for (; i + 8 <= hi; i += 8) { /* a byte at a time: eight selects by mask */
            uint32_t byte = bits[i / 8], out[8];
            for (unsigned k = 0; k < 8; k++) {
                uint32_t m = 0u - ((byte >> k) & 1u);
                out[k] = (pb & m) | (qb & ~m);
            }
            memcpy(y + i, out, sizeof out);
        }
        for (; i < hi; i++)
            y[i] = (bits[i / 8] >> (i % 8)) & 1u ? p : q;
    }
}

/* fp16 over arrays: with F16C, the CPU's conversion (round to nearest
 * even, 8 values an instruction), then the reference's two exceptions
 * patched: beyond the range it saturates instead of giving infinity, and
 * every NaN becomes the one quiet NaN.  Bit for bit dl_float_to_half
 * (numerics_compress checks it over a sweep of all float patterns). */
static void half_encode(const float *x, size_t n, uint16_t *h)
{
    size_t i = 0;
#ifdef __F16C__
    for (; i + 8 <= n; i += 8) {
        __m128i v = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_si128((__m128i *)(h + i), v);
    }
    for (size_t j = 0; j < i; j++)
        if ((h[j] & 0x7c00u) == 0x7c00u) /* rare: infinity or NaN */
            h[j] = dl_float_to_half(x[j]);
#endif
    for (; i < n; i++)
        h[i] = dl_float_to_half(x[i]);
}

/* fp16 decoding by table: every half's float, made once by the reference. */
static float half_table[1u << 16];
static pthread_once_t half_table_once = PTHREAD_ONCE_INIT;

static void make_half_table(void)
{
    for (uint32_t b = 0; b < (1u << 16); b++)
        half_table[b] = dl_half_to_float((uint16_t)b);
}

static void half_decode(const uint16_t *h, size_t n, float *y)
{
    pthread_once(&half_table_once, make_half_table);
    for (size_t i = 0; i < n; i++)
        y[i] = half_table[h[i]];
}

void dl_codec_encode(dl_compress_kind kind, const float *x, size_t n, void *out)
{
    uint16_t *h = out;
    memset(out, 0, dl_codec_bytes(kind, n)); /* padding bytes go on the wire too: defined */
    switch (kind) {
    case DL_COMPRESS_FP16: half_encode(x, n, h); break;
    case DL_COMPRESS_BF16:
        for (size_t i = 0; i < n; i++)
            h[i] = dl_float_to_bf16(x[i]);
        break;
    case DL_COMPRESS_INT8: int8_encode(x, n, out); break;
    case DL_COMPRESS_ONEBIT: onebit_encode(x, n, out); break;
    default: memcpy(out, x, 4 * n); break;
    }
}

void dl_codec_decode(dl_compress_kind kind, const void *in, size_t n, float *y)
{
    const uint16_t *h = in;
    switch (kind) {
    case DL_COMPRESS_FP16: half_decode(h, n, y); break;
    case DL_COMPRESS_BF16:
        for (size_t i = 0; i < n; i++)
            y[i] = dl_bf16_to_float(h[i]);
        break;
    case DL_COMPRESS_INT8: int8_decode(in, n, y); break;
    case DL_COMPRESS_ONEBIT: onebit_decode(in, n, y); break;
    default: memcpy(y, in, 4 * n); break;
    }
}
