/* compress_codec.c: the element-wise codecs' C reference, the names of the
 * compressors, and the bytes-on-the-wire model (see compress.h). */
#include "compress.h"

#include <math.h>
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

/* The int8 step of a block whose largest magnitude is amax: amax / 127,
 * lowered until 127 steps stay finite (amax near FLT_MAX). */
static float int8_step(float amax)
{
    float s = amax / 127.0f;
    while (isinf(127.0f * s))
        s = nextafterf(s, 0.0f);
    return s;
}

static void int8_encode(const float *x, size_t n, void *out)
{
    float *scale = out;
    int8_t *q = (int8_t *)(scale + n_blocks(n));
    for (size_t b = 0; b < n_blocks(n); b++) {
        size_t lo = b * DL_COMPRESS_BLOCK, hi = DL_MIN(n, lo + DL_COMPRESS_BLOCK);
        float amax = 0.0f;
        for (size_t i = lo; i < hi; i++)
            amax = fmaxf(amax, fabsf(x[i]));
        float s = int8_step(amax);
        scale[b] = s;
        for (size_t i = lo; i < hi; i++) {
            float v = s > 0.0f ? rintf(x[i] / s) : 0.0f;
            q[i] = (int8_t)fmaxf(-127.0f, fminf(127.0f, v));
        }
    }
}

static void int8_decode(const void *in, size_t n, float *y)
{
    const float *scale = in;
    const int8_t *q = (const int8_t *)(scale + n_blocks(n));
    for (size_t i = 0; i < n; i++)
        y[i] = (float)q[i] * scale[i / DL_COMPRESS_BLOCK];
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
        for (size_t i = lo; i < hi; i++) {
            if (x[i] >= 0.0f) {
                sp += x[i], np++;
                bits[i / 8] |= (unsigned char)(1u << (i % 8));
            } else {
                sn += x[i];
            }
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
    for (size_t i = 0; i < n; i++)
        y[i] = (bits[i / 8] >> (i % 8)) & 1u ? pos[i / DL_COMPRESS_BLOCK]
                                              : neg[i / DL_COMPRESS_BLOCK];
}

void dl_codec_encode(dl_compress_kind kind, const float *x, size_t n, void *out)
{
    uint16_t *h = out;
    memset(out, 0, dl_codec_bytes(kind, n)); /* padding bytes go on the wire too: defined */
    switch (kind) {
    case DL_COMPRESS_FP16:
        for (size_t i = 0; i < n; i++)
            h[i] = dl_float_to_half(x[i]);
        break;
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
    case DL_COMPRESS_FP16:
        for (size_t i = 0; i < n; i++)
            y[i] = dl_half_to_float(h[i]);
        break;
    case DL_COMPRESS_BF16:
        for (size_t i = 0; i < n; i++)
            y[i] = dl_bf16_to_float(h[i]);
        break;
    case DL_COMPRESS_INT8: int8_decode(in, n, y); break;
    case DL_COMPRESS_ONEBIT: onebit_decode(in, n, y); break;
    default: memcpy(y, in, 4 * n); break;
    }
}

/* ---- the wire model ------------------------------------------------------- */

void dl_powersgd_shape(size_t n, size_t *m, size_t *k)
{
    size_t r = (size_t)ceil(sqrt((double)n));
    while (r > 1 && (r - 1) * (r - 1) >= n) /* sqrt's rounding */
        r--;
    *m = r ? r : 1;
    *k = (n + *m - 1) / *m;
    if (*k == 0)
        *k = 1;
}

int dl_powersgd_plain(size_t n, int rank)
{
    size_t m, k;
    dl_powersgd_shape(n, &m, &k);
    return (m + k) * (size_t)rank >= n;
}

/* Floats or bytes one rank contributes for a bucket of n values. */
static double bucket_payload(dl_compress_spec s, size_t n)
{
    if (s.kind == DL_COMPRESS_POWERSGD && !dl_powersgd_plain(n, s.rank)) {
        size_t m, k;
        dl_powersgd_shape(n, &m, &k);
        return 4.0 * (double)(m + k) * s.rank;
    }
    return s.kind == DL_COMPRESS_POWERSGD ? 4.0 * (double)n : (double)dl_codec_bytes(s.kind, n);
}

double dl_compress_payload_bytes(dl_compress_spec s, const size_t *bucket_sizes, int n_buckets)
{
    double bytes = 0.0;
    for (int i = 0; i < n_buckets; i++)
        bytes += bucket_payload(s, bucket_sizes[i]);
    return bytes;
}

double dl_compress_wire_bytes(dl_compress_spec s, int world, const size_t *bucket_sizes,
                              int n_buckets)
{
    if (world <= 1)
        return 0.0;
    double payload = dl_compress_payload_bytes(s, bucket_sizes, n_buckets), w = world;
    int reduces = s.kind == DL_COMPRESS_NONE || s.kind == DL_COMPRESS_POWERSGD;
    return reduces ? 2.0 * (w - 1.0) / w * payload : (w - 1.0) * payload;
}

double dl_compress_ratio(dl_compress_spec s, const size_t *bucket_sizes, int n_buckets)
{
    double fp32 = 0.0, payload = dl_compress_payload_bytes(s, bucket_sizes, n_buckets);
    for (int i = 0; i < n_buckets; i++)
        fp32 += 4.0 * (double)bucket_sizes[i];
    return payload > 0.0 ? fp32 / payload : 1.0;
}

double dl_compress_wire_bytes_params(dl_compress_spec s, int world, size_t n_params,
                                     size_t bucket_floats)
{
    if (bucket_floats == 0 || n_params == 0)
        return 0.0;
    size_t full = n_params / bucket_floats, rest = n_params % bucket_floats;
    double bytes = (double)full * dl_compress_wire_bytes(s, world, &bucket_floats, 1);
    return rest ? bytes + dl_compress_wire_bytes(s, world, &rest, 1) : bytes;
}

double dl_compress_wire_factor(dl_compress_spec s, int world, size_t n_params,
                               size_t bucket_floats)
{
    dl_compress_spec plain = {.kind = DL_COMPRESS_NONE, .rank = 0};
    double fp32 = dl_compress_wire_bytes_params(plain, world, n_params, bucket_floats);
    if (s.kind == DL_COMPRESS_NONE || !(fp32 > 0.0))
        return 1.0;
    return dl_compress_wire_bytes_params(s, world, n_params, bucket_floats) / fp32;
}
