/* cpu_pool.c: max and average pooling over square windows, NCHW. */
#include "cpu_ops.h"

#include <float.h>
#include <string.h>

void cpu_maxpool_forward(dl_device *d, const dl_pool_desc *p, const float *x, float *y,
                         int32_t *argmax)
{
    (void)d;
    size_t in_plane = (size_t)p->h * p->w, out_plane = (size_t)p->oh * p->ow;
#pragma omp parallel for schedule(static) if ((size_t)p->n * p->c * out_plane > CPU_PARALLEL_MIN)
    for (int nc = 0; nc < p->n * p->c; nc++) {
        const float *in = x + nc * in_plane;
        float *out = y + nc * out_plane;
        int32_t *am = argmax + nc * out_plane;
        for (int oy = 0; oy < p->oh; oy++)
            for (int ox = 0; ox < p->ow; ox++) {
                float best = -FLT_MAX;
                int32_t where = -1;
                for (int ky = 0; ky < p->k; ky++) {
                    int iy = oy * p->stride - p->pad + ky;
                    if (iy < 0 || iy >= p->h)
                        continue;
                    for (int kx = 0; kx < p->k; kx++) {
                        int ix = ox * p->stride - p->pad + kx;
                        if (ix < 0 || ix >= p->w)
                            continue;
                        float v = in[iy * p->w + ix];
                        /* '>' keeps the first maximum, as PyTorch does; NaN propagates */
                        if (v > best || where < 0 || v != v) {
                            best = v;
                            where = iy * p->w + ix;
                        }
                    }
                }
                out[oy * p->ow + ox] = best;
                am[oy * p->ow + ox] = where;
            }
    }
}

void cpu_maxpool_backward(dl_device *d, const dl_pool_desc *p, const float *dy,
                          const int32_t *argmax, float *dx, int acc)
{
    (void)d;
    size_t in_plane = (size_t)p->h * p->w, out_plane = (size_t)p->oh * p->ow;
#pragma omp parallel for schedule(static) if ((size_t)p->n * p->c * in_plane > CPU_PARALLEL_MIN)
    for (int nc = 0; nc < p->n * p->c; nc++) {
        float *g = dx + nc * in_plane;
        if (!acc)
            memset(g, 0, sizeof(float) * in_plane);
        const float *gy = dy + nc * out_plane;
        const int32_t *am = argmax + nc * out_plane;
        for (size_t o = 0; o < out_plane; o++)
            g[am[o]] += gy[o];
    }
}

void cpu_avgpool_forward(dl_device *d, const dl_pool_desc *p, const float *x, float *y)
{
    (void)d;
    size_t in_plane = (size_t)p->h * p->w, out_plane = (size_t)p->oh * p->ow;
    float inv = 1.0f / (float)(p->k * p->k);
#pragma omp parallel for schedule(static) if ((size_t)p->n * p->c * in_plane > CPU_PARALLEL_MIN)
    for (int nc = 0; nc < p->n * p->c; nc++) {
        const float *in = x + nc * in_plane;
        float *out = y + nc * out_plane;
        for (int oy = 0; oy < p->oh; oy++)
            for (int ox = 0; ox < p->ow; ox++) {
                float s = 0.0f;
                for (int ky = 0; ky < p->k; ky++) {
                    int iy = oy * p->stride - p->pad + ky;
                    if (iy < 0 || iy >= p->h)
                        continue;
                    for (int kx = 0; kx < p->k; kx++) {
                        int ix = ox * p->stride - p->pad + kx;
                        if (ix >= 0 && ix < p->w)
                            s += in[iy * p->w + ix];
                    }
                }
                out[oy * p->ow + ox] = s * inv;
            }
    }
}

void cpu_avgpool_backward(dl_device *d, const dl_pool_desc *p, const float *dy, float *dx,
                          int acc)
{
    (void)d;
    size_t in_plane = (size_t)p->h * p->w, out_plane = (size_t)p->oh * p->ow;
    float inv = 1.0f / (float)(p->k * p->k);
#pragma omp parallel for schedule(static) if ((size_t)p->n * p->c * in_plane > CPU_PARALLEL_MIN)
    for (int nc = 0; nc < p->n * p->c; nc++) {
        float *g = dx + nc * in_plane;
        if (!acc)
            memset(g, 0, sizeof(float) * in_plane);
        const float *gy = dy + nc * out_plane;
        for (int oy = 0; oy < p->oh; oy++)
            for (int ox = 0; ox < p->ow; ox++) {
                float v = gy[oy * p->ow + ox] * inv;
                for (int ky = 0; ky < p->k; ky++) {
                    int iy = oy * p->stride - p->pad + ky;
                    if (iy < 0 || iy >= p->h)
                        continue;
                    for (int kx = 0; kx < p->k; kx++) {
                        int ix = ox * p->stride - p->pad + kx;
                        if (ix >= 0 && ix < p->w)
                            g[iy * p->w + ix] += v;
                    }
                }
            }
    }
}
