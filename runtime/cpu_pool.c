/* cpu_pool.c: max and average pooling over square windows, NCHW. */
#include "cpu_ops.h"

#include <float.h>
#include <string.h>

/* The common 2x2 stride-2 window without padding, branch-light. */
static void maxpool_2x2(const dl_pool_desc *p, const float *in, float *out, int32_t *am)
{
    for (int oy = 0; oy < p->oh; oy++) {
        const float *r0 = in + (size_t)(2 * oy) * p->w, *r1 = r0 + p->w;
        for (int ox = 0; ox < p->ow; ox++) {
            int x = 2 * ox, at = 2 * oy * p->w + x;
            float best = r0[x];
            int where = at;
            /* '>' keeps the first maximum, as PyTorch does; NaN wins */
            if (r0[x + 1] > best || r0[x + 1] != r0[x + 1])
                best = r0[x + 1], where = at + 1;
            if (r1[x] > best || r1[x] != r1[x])
                best = r1[x], where = at + p->w;
            if (r1[x + 1] > best || r1[x + 1] != r1[x + 1])
                best = r1[x + 1], where = at + p->w + 1;
            out[oy * p->ow + ox] = best;
            am[oy * p->ow + ox] = where;
        }
    }
}

static void maxpool_plane(const dl_pool_desc *p, const float *in, float *out, int32_t *am)
{
    for (int oy = 0; oy < p->oh; oy++) {
        int y0 = DL_MAX(0, oy * p->stride - p->pad), y1 = DL_MIN(p->h, oy * p->stride - p->pad + p->k);
        for (int ox = 0; ox < p->ow; ox++) {
            int x0 = DL_MAX(0, ox * p->stride - p->pad);
            int x1 = DL_MIN(p->w, ox * p->stride - p->pad + p->k);
            float best = -FLT_MAX;
            int32_t where = -1;
            for (int iy = y0; iy < y1; iy++)
                for (int ix = x0; ix < x1; ix++) {
                    float v = in[iy * p->w + ix];
                    if (v > best || where < 0 || v != v) {
                        best = v;
                        where = iy * p->w + ix;
                    }
                }
            out[oy * p->ow + ox] = best;
            am[oy * p->ow + ox] = where;
        }
    }
}

void cpu_maxpool_forward(dl_device *d, const dl_pool_desc *p, const float *x, float *y,
                         int32_t *argmax)
{
    (void)d;
    size_t in_plane = (size_t)p->h * p->w, out_plane = (size_t)p->oh * p->ow;
    int fast = p->k == 2 && p->stride == 2 && p->pad == 0;
#pragma omp parallel for schedule(static) if ((size_t)p->n * p->c * out_plane > CPU_PARALLEL_MIN)
    for (int nc = 0; nc < p->n * p->c; nc++) {
        if (fast)
            maxpool_2x2(p, x + nc * in_plane, y + nc * out_plane, argmax + nc * out_plane);
        else
            maxpool_plane(p, x + nc * in_plane, y + nc * out_plane, argmax + nc * out_plane);
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
