/* compress_host.c: the compressor's table for host memory (compress_ops.h):
 * the C reference codecs and PowerSGD's plain C products. */
#include <stdlib.h>
#include <string.h>

#include "compress_ops.h"

static void *host_alloc(dl_compressor *c, size_t bytes, const char *what)
{
    (void)c;
    return dl_alloc_zero(bytes ? bytes : 1, what);
}

static void host_release(dl_compressor *c, void *p)
{
    (void)c;
    free(p);
}

static void host_copy(dl_compressor *c, void *dst, const void *src, size_t bytes)
{
    (void)c;
    if (bytes)
        memmove(dst, src, bytes);
}

static dl_status host_zero(dl_compressor *c, float *x, size_t n)
{
    (void)c;
    memset(x, 0, n * sizeof *x);
    return DL_OK;
}

static dl_status host_feedback(dl_compressor *c, dl_compress_kind kind, float *x,
                               float *residual, size_t n, void *enc)
{
    float *decoded = c->scratch;
    for (size_t j = 0; j < n; j++)
        x[j] += residual[j];
    dl_codec_encode(kind, x, n, enc);
    dl_codec_decode(kind, enc, n, decoded);
    for (size_t j = 0; j < n; j++)
        residual[j] = x[j] - decoded[j];
    return DL_OK;
}

/* Summed in rank order so every rank gets the same bits. */
static dl_status host_mean(dl_compressor *c, dl_compress_kind kind, const unsigned char *shards,
                           size_t stride, size_t n, int world, float *x)
{
    memset(x, 0, n * sizeof *x);
    for (int r = 0; r < world; r++) {
        dl_codec_decode(kind, shards + (size_t)r * stride, n, c->scratch);
        for (size_t j = 0; j < n; j++)
            x[j] += c->scratch[j];
    }
    float inv = 1.0f / (float)world;
    for (size_t j = 0; j < n; j++)
        x[j] *= inv;
    return DL_OK;
}

static dl_status host_project(dl_compressor *c, const float *x, const float *residual, size_t n,
                              float *mat, float *q, float *p, size_t m, size_t k, int r)
{
    (void)c;
    dl_powersgd_orthonormalize(q, k, r);
    for (size_t j = 0; j < n; j++)
        mat[j] = x[j] + residual[j];
    memset(mat + n, 0, (m * k - n) * sizeof *mat);
    dl_powersgd_mul(mat, q, p, m, k, r);
    return DL_OK;
}

static dl_status host_back(dl_compressor *c, const float *mat, float *p, float *q, size_t m,
                           size_t k, int r)
{
    (void)c;
    dl_powersgd_orthonormalize(p, m, r);
    dl_powersgd_mul_t(mat, p, q, m, k, r);
    return DL_OK;
}

static dl_status host_apply(dl_compressor *c, const float *mat, const float *p, const float *q,
                            float *x, float *residual, size_t n, size_t m, size_t k, int r)
{
    float *approx = c->scratch;
    dl_powersgd_outer(p, q, approx, m, k, r);
    for (size_t j = 0; j < n; j++) {
        residual[j] = mat[j] - approx[j];
        x[j] = approx[j];
    }
    return DL_OK;
}

const dl_compress_ops *dl_compress_host_ops(void)
{
    static const dl_compress_ops ops = {
        .where = "host", .alloc = host_alloc, .release = host_release, .to_host = host_copy,
        .from_host = host_copy, .zero = host_zero, .copy = host_copy, .feedback = host_feedback, .mean = host_mean,
        .psgd_project = host_project, .psgd_back = host_back, .psgd_apply = host_apply,
    };
    return &ops;
}
