/* cuda_norm.cu: batch normalisation per channel over (batch, height, width),
 * the formulas of cpu_norm.c:
 *   y = gamma * (x - mean) * invstd + beta,   invstd = 1/sqrt(var + eps)
 *   dbeta = sum dy,  dgamma = sum dy * xhat,
 *   dx = gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat))
 *
 * Each op is two kernels over a grid of (split, channel) blocks, so that the
 * whole GPU works even with 16 channels:
 *   1. partial sums: block (p, ch) sums its share of the channel (a strided
 *      walk over the channel's n planes, plane_walk.h: no division per
 *      element) and writes one double per sum to a scratch buffer;
 *   2. apply: every block folds the channel's `split` partials (in a fixed
 *      order, so the result does not depend on scheduling: deterministic run
 *      to run on a given GPU) and writes its share of the outputs; block 0
 *      of a channel also writes the per-channel results (mean, invstd,
 *      running statistics; dgamma, dbeta).
 * The forward moments take one pass, as sums of (x - K) and (x - K)^2 in
 * double with K the channel's first value, exactly as cpu_norm.c (the shift
 * keeps the variance free of cancellation for a large mean).
 *
 * Planes whose length is a multiple of 4 are read and written as float4
 * (when every pointer is 16-byte aligned, which device allocations are):
 * four values per load in flight per thread.  Other shapes (7x7, 1x1) use
 * float loads.  `split` (blocks per channel) is chosen from the channel
 * count and the GPU's SM count (bn_split); the partials live in a buffer
 * allocated when the device is opened (cuda_impl.bn_partials), channels
 * beyond CUDA_BN_GROUP run as further launches.
 *
 * With b->relu the following ReLU is fused: y = max(z, 0) for the
 * pre-activation z = x * scale + shift, and backward masks dy where z <= 0,
 * recomputing z with forward's expression (bn_pre, and bn_scale_shift with
 * explicit roundings) so the masks agree bit for bit. */
#include "cuda_internal.cuh"
#include "plane_walk.h"

#include <stdint.h>

#define BN_THREADS 256

struct bn_geom {
    int n, c, hw;
    float eps, momentum;
    int relu;
    int cols;  /* units per plane: hw / V */
    int split; /* blocks per channel (gridDim.x) */
    int ch0;   /* first channel of this launch (blockIdx.y = ch - ch0) */
};

static bn_geom geom_of(const dl_bn_desc *b, int v, int split)
{
    bn_geom g = {b->n, b->c, b->hw, b->eps, b->momentum, b->relu, b->hw / v, split, 0};
    return g;
}

/* One unit: V consecutive floats at unit index u of p. */
template <int V> struct bn_unit;
template <> struct bn_unit<1> {
    static __device__ __forceinline__ void load(const float *p, size_t u, float *v) { v[0] = p[u]; }
    static __device__ __forceinline__ void store(float *p, size_t u, const float *v) { p[u] = v[0]; }
};
template <> struct bn_unit<4> {
    static __device__ __forceinline__ void load(const float *p, size_t u, float *v)
    {
        float4 t = reinterpret_cast<const float4 *>(p)[u];
        v[0] = t.x, v[1] = t.y, v[2] = t.z, v[3] = t.w;
    }
    static __device__ __forceinline__ void store(float *p, size_t u, const float *v)
    {
        reinterpret_cast<float4 *>(p)[u] = make_float4(v[0], v[1], v[2], v[3]);
    }
};

/* This thread's walk over the units of its block's channel. */
__device__ __forceinline__ dl_walk bn_walk(const bn_geom &g)
{
    return dl_walk_start((long long)blockIdx.x * BN_THREADS + threadIdx.x,
                         (long long)g.split * BN_THREADS, g.cols);
}

__device__ __forceinline__ size_t bn_unit_at(const bn_geom &g, int ch, const dl_walk &w)
{
    return ((size_t)w.i * g.c + ch) * g.cols + (size_t)w.j;
}

/* The affine map of forward, with explicit roundings so that forward and
 * backward (separate kernels) compute the same z bit for bit. */
__device__ __forceinline__ void bn_scale_shift(float gamma, float beta, float mu, float is,
                                               float *scale, float *shift)
{
    *scale = __fmul_rn(gamma, is);
    *shift = __fsub_rn(beta, __fmul_rn(mu, *scale));
}

__device__ __forceinline__ float bn_pre(float x, float scale, float shift)
{
    return __fmaf_rn(x, scale, shift);
}

__device__ __forceinline__ float bn_out(const bn_geom &g, float z)
{
    return g.relu && !(z > 0.0f) ? 0.0f : z;
}

/* The partials of one launch of G = gridDim.y channels (CUDA_BN_PARTIALS
 * doubles): sums a and b of channel chl = blockIdx.y from block p at
 * part[chl*split + p], b likewise after all of a; then one double per
 * channel (forward: the shift K), at bn_part_extra. */
__device__ __forceinline__ double *bn_part_b(const bn_geom &g, double *part)
{
    return part + (size_t)gridDim.y * g.split;
}

__device__ __forceinline__ size_t bn_part_extra(const bn_geom &g)
{
    return 2 * (size_t)gridDim.y * g.split + blockIdx.y;
}

/* Thread 0's fold of the channel's partials, in a fixed order. */
__device__ __forceinline__ void bn_fold(const bn_geom &g, const double *part, double *a, double *b)
{
    const double *pa = part + (size_t)blockIdx.y * g.split;
    const double *pb = pa + (size_t)gridDim.y * g.split;
    double sa = 0.0, sb = 0.0;
    for (int p = 0; p < g.split; p++)
        sa += pa[p], sb += pb[p];
    *a = sa, *b = sb;
}

__device__ __forceinline__ void bn_write_partials(const bn_geom &g, double *part, double a,
                                                  double b)
{
    size_t at = (size_t)blockIdx.y * g.split + blockIdx.x;
    part[at] = a;
    bn_part_b(g, part)[at] = b;
}

/* ---- training forward -------------------------------------------------------- */

template <int V>
__global__ void bn_moments_kernel(bn_geom g, const float *__restrict__ x, double *part)
{
    __shared__ double sh[BN_THREADS];
    int ch = g.ch0 + blockIdx.y;
    double k = x[(size_t)ch * g.hw], s = 0.0, ss = 0.0;
    for (dl_walk w = bn_walk(g); w.i < g.n; dl_walk_next(&w, g.cols)) {
        float v[V];
        bn_unit<V>::load(x, bn_unit_at(g, ch, w), v);
#pragma unroll
        for (int q = 0; q < V; q++) {
            double dlt = (double)v[q] - k;
            s += dlt;
            ss += dlt * dlt;
        }
    }
    s = block_sum<BN_THREADS>(s, sh);
    ss = block_sum<BN_THREADS>(ss, sh);
    if (threadIdx.x == 0) {
        bn_write_partials(g, part, s, ss);
        if (blockIdx.x == 0) /* K, for the apply kernel (x may be y: in place) */
            part[bn_part_extra(g)] = k;
    }
}

/* y = bn_out(scale * x + shift) over this block's share of channel ch: the
 * last pass of the training forward and the whole evaluation forward. */
template <int V>
__device__ __forceinline__ void bn_apply(const bn_geom &g, int ch, const float *x, float *y,
                                         float scale, float shift)
{
    for (dl_walk w = bn_walk(g); w.i < g.n; dl_walk_next(&w, g.cols)) {
        size_t at = bn_unit_at(g, ch, w);
        float v[V];
        bn_unit<V>::load(x, at, v);
#pragma unroll
        for (int q = 0; q < V; q++)
            v[q] = bn_out(g, bn_pre(v[q], scale, shift));
        bn_unit<V>::store(y, at, v);
    }
}

template <int V>
__global__ void bn_train_apply_kernel(bn_geom g, const double *part, const float *x,
                                      const float *gamma, const float *beta, float *y,
                                      float *mean, float *invstd, float *running_mean,
                                      float *running_var)
{
    __shared__ float sh_scale, sh_shift;
    int ch = g.ch0 + blockIdx.y;
    if (threadIdx.x == 0) {
        double s, ss, m = (double)g.n * g.hw;
        bn_fold(g, part, &s, &ss);
        double ds = s / m, mu = part[bn_part_extra(g)] + ds;
        double var = fmax(ss / m - ds * ds, 0.0);
        float is = (float)(1.0 / sqrt(var + (double)g.eps));
        bn_scale_shift(gamma[ch], beta[ch], (float)mu, is, &sh_scale, &sh_shift);
        if (blockIdx.x == 0) {
            double unbiased = m > 1 ? var * m / (m - 1) : var;
            mean[ch] = (float)mu;
            invstd[ch] = is;
            running_mean[ch] = (1.0f - g.momentum) * running_mean[ch] + g.momentum * (float)mu;
            running_var[ch] =
                (1.0f - g.momentum) * running_var[ch] + g.momentum * (float)unbiased;
        }
    }
    __syncthreads();
    float scale = sh_scale, shift = sh_shift;
    bn_apply<V>(g, ch, x, y, scale, shift);
}

/* ---- evaluation forward ------------------------------------------------------ */

template <int V>
__global__ void bn_eval_kernel(bn_geom g, const float *x, const float *gamma, const float *beta,
                               float *y, const float *running_mean, const float *running_var)
{
    int ch = g.ch0 + blockIdx.y;
    float scale = gamma[ch] / sqrtf(running_var[ch] + g.eps);
    float shift = beta[ch] - running_mean[ch] * scale;
    bn_apply<V>(g, ch, x, y, scale, shift);
}

/* ---- backward ------------------------------------------------------------------ */

/* dy, masked where forward's fused ReLU was off */
__device__ __forceinline__ float bn_grad_in(const bn_geom &g, float x, float dy, float scale,
                                            float shift)
{
    return g.relu && !(bn_pre(x, scale, shift) > 0.0f) ? 0.0f : dy;
}

template <int V>
__global__ void bn_grad_sums_kernel(bn_geom g, const float *__restrict__ x,
                                    const float *__restrict__ dy, const float *gamma,
                                    const float *beta, const float *mean, const float *invstd,
                                    double *part)
{
    __shared__ double sh[BN_THREADS];
    int ch = g.ch0 + blockIdx.y;
    float mu = mean[ch], is = invstd[ch], scale, shift;
    bn_scale_shift(gamma[ch], beta[ch], mu, is, &scale, &shift);
    double sdy = 0.0, sdyx = 0.0;
    for (dl_walk w = bn_walk(g); w.i < g.n; dl_walk_next(&w, g.cols)) {
        size_t at = bn_unit_at(g, ch, w);
        float xv[V], gv[V];
        bn_unit<V>::load(x, at, xv);
        bn_unit<V>::load(dy, at, gv);
#pragma unroll
        for (int q = 0; q < V; q++) {
            float gy = bn_grad_in(g, xv[q], gv[q], scale, shift);
            sdy += gy;
            sdyx += gy * ((xv[q] - mu) * is);
        }
    }
    sdy = block_sum<BN_THREADS>(sdy, sh);
    sdyx = block_sum<BN_THREADS>(sdyx, sh);
    if (threadIdx.x == 0)
        bn_write_partials(g, part, sdy, sdyx);
}

template <int V>
__global__ void bn_grad_apply_kernel(bn_geom g, const double *part, const float *x,
                                     const float *gamma, const float *beta, const float *mean,
                                     const float *invstd, const float *dy, float *dx, int acc,
                                     float *dgamma, float *dbeta)
{
    __shared__ float sh_mean_dy, sh_mean_dyx;
    int ch = g.ch0 + blockIdx.y;
    if (threadIdx.x == 0) {
        double sdy, sdyx, m = (double)g.n * g.hw;
        bn_fold(g, part, &sdy, &sdyx);
        sh_mean_dy = (float)(sdy / m);
        sh_mean_dyx = (float)(sdyx / m);
        if (blockIdx.x == 0) {
            dbeta[ch] += (float)sdy;
            dgamma[ch] += (float)sdyx;
        }
    }
    __syncthreads();
    float mu = mean[ch], is = invstd[ch], scale, shift;
    bn_scale_shift(gamma[ch], beta[ch], mu, is, &scale, &shift);
    float mean_dy = sh_mean_dy, mean_dyx = sh_mean_dyx;
    for (dl_walk w = bn_walk(g); w.i < g.n; dl_walk_next(&w, g.cols)) {
        size_t at = bn_unit_at(g, ch, w);
        float xv[V], gv[V], out[V] = {};
        bn_unit<V>::load(x, at, xv);
        bn_unit<V>::load(dy, at, gv);
        if (acc) /* acc 0 never reads dx (it may hold garbage, NaN included) */
            bn_unit<V>::load(dx, at, out);
#pragma unroll
        for (int q = 0; q < V; q++) {
            float gy = bn_grad_in(g, xv[q], gv[q], scale, shift);
            float gx = scale * (gy - mean_dy - (xv[q] - mu) * is * mean_dyx);
            out[q] = acc ? out[q] + gx : gx;
        }
        bn_unit<V>::store(dx, at, out);
    }
}

/* ---- launches ------------------------------------------------------------------ */

/* 4 when every plane starts 16-byte aligned (hw % 4 == 0 and aligned bases) */
static int bn_vec_width(const dl_bn_desc *b, const void *p0, const void *p1, const void *p2,
                        const void *p3)
{
    uintptr_t bits = (uintptr_t)p0 | (uintptr_t)p1 | (uintptr_t)p2 | (uintptr_t)p3;
    return b->hw % 4 == 0 && (bits & 15) == 0 ? 4 : 1;
}

/* Blocks per channel: enough blocks in all to fill every SM twice over
 * (8 blocks of 256 threads per SM), but at least 4 units per thread and at
 * most CUDA_BN_MAX_SPLIT. */
static int bn_split(const cuda_impl *g, int channels, long long units_per_channel)
{
    long long target = 16LL * (g->sm_count > 0 ? g->sm_count : 1);
    long long split = (target + channels - 1) / channels;
    long long work = (units_per_channel + 4LL * BN_THREADS - 1) / (4LL * BN_THREADS);
    split = split < work ? split : work;
    split = split < CUDA_BN_MAX_SPLIT ? split : CUDA_BN_MAX_SPLIT;
    return split < 1 ? 1 : (int)split;
}

static bn_geom bn_plan(dl_device *d, const dl_bn_desc *b, int v)
{
    return geom_of(b, v, bn_split(cuda_of(d), b->c, (long long)b->n * (b->hw / v)));
}

void cuda_bn_forward_train(dl_device *d, const dl_bn_desc *b, const float *x, const float *gamma,
                           const float *beta, float *y, float *mean, float *invstd,
                           float *running_mean, float *running_var)
{
    if (b->c < 1 || (size_t)b->n * b->hw == 0)
        return;
    double *part = cuda_of(d)->bn_partials;
    int v = bn_vec_width(b, x, y, x, y);
    bn_geom gm = bn_plan(d, b, v);
    for (gm.ch0 = 0; gm.ch0 < b->c; gm.ch0 += CUDA_BN_GROUP) {
        dim3 grid((unsigned)gm.split, (unsigned)DL_MIN(CUDA_BN_GROUP, b->c - gm.ch0));
        if (v == 4) {
            CUDA_LAUNCH(d, bn_moments_kernel<4>, grid, BN_THREADS, 0, gm, x, part);
            CUDA_LAUNCH(d, bn_train_apply_kernel<4>, grid, BN_THREADS, 0, gm, part, x, gamma,
                        beta, y, mean, invstd, running_mean, running_var);
        } else {
            CUDA_LAUNCH(d, bn_moments_kernel<1>, grid, BN_THREADS, 0, gm, x, part);
            CUDA_LAUNCH(d, bn_train_apply_kernel<1>, grid, BN_THREADS, 0, gm, part, x, gamma,
                        beta, y, mean, invstd, running_mean, running_var);
        }
    }
}

void cuda_bn_forward_eval(dl_device *d, const dl_bn_desc *b, const float *x, const float *gamma,
                          const float *beta, float *y, const float *running_mean,
                          const float *running_var)
{
    if (b->c < 1 || (size_t)b->n * b->hw == 0)
        return;
    int v = bn_vec_width(b, x, y, x, y);
    bn_geom gm = bn_plan(d, b, v);
    for (gm.ch0 = 0; gm.ch0 < b->c; gm.ch0 += CUDA_BN_GROUP) {
        dim3 grid((unsigned)gm.split, (unsigned)DL_MIN(CUDA_BN_GROUP, b->c - gm.ch0));
        if (v == 4)
            CUDA_LAUNCH(d, bn_eval_kernel<4>, grid, BN_THREADS, 0, gm, x, gamma, beta, y,
                        running_mean, running_var);
        else
            CUDA_LAUNCH(d, bn_eval_kernel<1>, grid, BN_THREADS, 0, gm, x, gamma, beta, y,
                        running_mean, running_var);
    }
}

void cuda_bn_backward(dl_device *d, const dl_bn_desc *b, const float *x, const float *gamma,
                      const float *beta, const float *mean, const float *invstd, const float *dy,
                      float *dx, int acc, float *dgamma, float *dbeta)
{
    if (b->c < 1 || (size_t)b->n * b->hw == 0)
        return;
    double *part = cuda_of(d)->bn_partials;
    int v = bn_vec_width(b, x, dy, dx, x);
    bn_geom gm = bn_plan(d, b, v);
    for (gm.ch0 = 0; gm.ch0 < b->c; gm.ch0 += CUDA_BN_GROUP) {
        dim3 grid((unsigned)gm.split, (unsigned)DL_MIN(CUDA_BN_GROUP, b->c - gm.ch0));
        if (v == 4) {
            CUDA_LAUNCH(d, bn_grad_sums_kernel<4>, grid, BN_THREADS, 0, gm, x, dy, gamma, beta,
                        mean, invstd, part);
            CUDA_LAUNCH(d, bn_grad_apply_kernel<4>, grid, BN_THREADS, 0, gm, part, x, gamma,
                        beta, mean, invstd, dy, dx, acc, dgamma, dbeta);
        } else {
            CUDA_LAUNCH(d, bn_grad_sums_kernel<1>, grid, BN_THREADS, 0, gm, x, dy, gamma, beta,
                        mean, invstd, part);
            CUDA_LAUNCH(d, bn_grad_apply_kernel<1>, grid, BN_THREADS, 0, gm, part, x, gamma,
                        beta, mean, invstd, dy, dx, acc, dgamma, dbeta);
        }
    }
}
