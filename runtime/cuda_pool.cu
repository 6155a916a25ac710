/* cuda_pool.cu: max and average pooling over square windows, NCHW, with the
 * semantics of cpu_pool.c (first maximum in row-major window order wins, a
 * NaN wins; argmax is the index within the input plane; average pooling
 * counts the padding).
 *
 * Backward passes are gathers: one thread per input pixel sums the outputs
 * whose window holds it, in increasing output order (the CPU's order), so
 * they are deterministic and need no atomics and no zeroing pass. */
#include "cuda_internal.cuh"

#include <float.h>

struct pool_geom {
    int h, w, oh, ow, k, stride, pad;
};

static pool_geom geom_of(const dl_pool_desc *p)
{
    pool_geom g = {p->h, p->w, p->oh, p->ow, p->k, p->stride, p->pad};
    return g;
}

/* Outputs along one axis whose window [o*s - p, o*s - p + k) holds input i:
 * [*lo, *hi). */
__device__ __forceinline__ void covering(int i, int k, int s, int p, int out, int *lo, int *hi)
{
    int a = i + p - k + 1; /* o*s >= a */
    int b = i + p;         /* o*s <= b (b >= 0 as p >= 0) */
    *lo = a <= 0 ? 0 : (a + s - 1) / s;
    int h = b / s + 1;
    *hi = h < out ? h : out;
}

__global__ void maxpool_forward_kernel(pool_geom g, const float *x, float *y, int32_t *argmax,
                                       size_t total)
{
    size_t out_plane = (size_t)g.oh * g.ow, in_plane = (size_t)g.h * g.w;
    GRID_STRIDE_LOOP(e, total)
    {
        size_t nc = e / out_plane;
        int q = (int)(e % out_plane), oy = q / g.ow, ox = q % g.ow;
        const float *in = x + nc * in_plane;
        int y0 = max(0, oy * g.stride - g.pad), y1 = min(g.h, oy * g.stride - g.pad + g.k);
        int x0 = max(0, ox * g.stride - g.pad), x1 = min(g.w, ox * g.stride - g.pad + g.k);
        float best = -FLT_MAX;
        int32_t where = -1;
        for (int iy = y0; iy < y1; iy++)
            for (int ix = x0; ix < x1; ix++) {
                float v = in[iy * g.w + ix];
                if (v > best || where < 0 || v != v) {
                    best = v;
                    where = iy * g.w + ix;
                }
            }
        y[e] = best;
        argmax[e] = where;
    }
}

__global__ void maxpool_backward_kernel(pool_geom g, const float *dy, const int32_t *argmax,
                                        float *dx, int acc, size_t total)
{
    size_t out_plane = (size_t)g.oh * g.ow, in_plane = (size_t)g.h * g.w;
    GRID_STRIDE_LOOP(e, total)
    {
        size_t nc = e / in_plane;
        int at = (int)(e % in_plane), iy = at / g.w, ix = at % g.w;
        int oy0, oy1, ox0, ox1;
        covering(iy, g.k, g.stride, g.pad, g.oh, &oy0, &oy1);
        covering(ix, g.k, g.stride, g.pad, g.ow, &ox0, &ox1);
        const float *gy = dy + nc * out_plane;
        const int32_t *am = argmax + nc * out_plane;
        float s = acc ? dx[e] : 0.0f;
        for (int oy = oy0; oy < oy1; oy++)
            for (int ox = ox0; ox < ox1; ox++) {
                int o = oy * g.ow + ox;
                if (am[o] == at)
                    s += gy[o];
            }
        dx[e] = s;
    }
}

__global__ void avgpool_forward_kernel(pool_geom g, const float *x, float *y, size_t total)
{
    size_t out_plane = (size_t)g.oh * g.ow, in_plane = (size_t)g.h * g.w;
    float inv = 1.0f / (float)(g.k * g.k);
    GRID_STRIDE_LOOP(e, total)
    {
        size_t nc = e / out_plane;
        int q = (int)(e % out_plane), oy = q / g.ow, ox = q % g.ow;
        const float *in = x + nc * in_plane;
        float s = 0.0f;
        for (int ky = 0; ky < g.k; ky++) {
            int iy = oy * g.stride - g.pad + ky;
            if (iy < 0 || iy >= g.h)
                continue;
            for (int kx = 0; kx < g.k; kx++) {
                int ix = ox * g.stride - g.pad + kx;
                if (ix >= 0 && ix < g.w)
                    s += in[iy * g.w + ix];
            }
        }
        y[e] = s * inv;
    }
}

__global__ void avgpool_backward_kernel(pool_geom g, const float *dy, float *dx, int acc,
                                        size_t total)
{
    size_t out_plane = (size_t)g.oh * g.ow, in_plane = (size_t)g.h * g.w;
    float inv = 1.0f / (float)(g.k * g.k);
    GRID_STRIDE_LOOP(e, total)
    {
        size_t nc = e / in_plane;
        int at = (int)(e % in_plane), iy = at / g.w, ix = at % g.w;
        int oy0, oy1, ox0, ox1;
        covering(iy, g.k, g.stride, g.pad, g.oh, &oy0, &oy1);
        covering(ix, g.k, g.stride, g.pad, g.ow, &ox0, &ox1);
        const float *gy = dy + nc * out_plane;
        float s = acc ? dx[e] : 0.0f;
        for (int oy = oy0; oy < oy1; oy++)
            for (int ox = ox0; ox < ox1; ox++)
                s += gy[oy * g.ow + ox] * inv;
        dx[e] = s;
    }
}

void cuda_maxpool_forward(dl_device *d, const dl_pool_desc *p, const float *x, float *y,
                          int32_t *argmax)
{
    size_t total = (size_t)p->n * p->c * p->oh * p->ow;
    if (total)
        CUDA_LAUNCH(d, maxpool_forward_kernel, cuda_grid(total), CUDA_THREADS, 0, geom_of(p), x,
                    y, argmax, total);
}

void cuda_maxpool_backward(dl_device *d, const dl_pool_desc *p, const float *dy,
                           const int32_t *argmax, float *dx, int acc)
{
    size_t total = (size_t)p->n * p->c * p->h * p->w;
    if (total)
        CUDA_LAUNCH(d, maxpool_backward_kernel, cuda_grid(total), CUDA_THREADS, 0, geom_of(p),
                    dy, argmax, dx, acc, total);
}

void cuda_avgpool_forward(dl_device *d, const dl_pool_desc *p, const float *x, float *y)
{
    size_t total = (size_t)p->n * p->c * p->oh * p->ow;
    if (total)
        CUDA_LAUNCH(d, avgpool_forward_kernel, cuda_grid(total), CUDA_THREADS, 0, geom_of(p), x,
                    y, total);
}

void cuda_avgpool_backward(dl_device *d, const dl_pool_desc *p, const float *dy, float *dx,
                           int acc)
{
    size_t total = (size_t)p->n * p->c * p->h * p->w;
    if (total)
        CUDA_LAUNCH(d, avgpool_backward_kernel, cuda_grid(total), CUDA_THREADS, 0, geom_of(p),
                    dy, dx, acc, total);
}
