/* cuda_norm.cu: batch normalisation per channel over (batch, height, width),
 * the formulas of cpu_norm.c:
 *   y = gamma * (x - mean) * invstd + beta,   invstd = 1/sqrt(var + eps)
 *   dbeta = sum dy,  dgamma = sum dy * xhat,
 *   dx = gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat))
 *
 * Training and backward run one block per channel: the block reduces the
 * channel's n*hw values (two passes for the variance, sums in double, fixed
 * tree order: deterministic and stable for a large mean) and then writes the
 * channel's outputs.  With few channels this uses few SMs; a split reduction
 * over several blocks per channel is the obvious next step when tuning.
 *
 * With b->relu the following ReLU is fused: y = max(z, 0) for the
 * pre-activation z = x * scale + shift, and backward masks dy where z <= 0,
 * recomputing z with forward's expression (bn_pre) so the masks agree. */
#include "cuda_internal.cuh"

#define BN_THREADS 256

struct bn_geom {
    int n, c, hw;
    float eps, momentum;
    int relu;
};

static bn_geom geom_of(const dl_bn_desc *b)
{
    bn_geom g = {b->n, b->c, b->hw, b->eps, b->momentum, b->relu};
    return g;
}

__device__ __forceinline__ float bn_pre(float x, float scale, float shift)
{
    return __fmaf_rn(x, scale, shift);
}

__device__ __forceinline__ float bn_out(const bn_geom &g, float z)
{
    return g.relu && !(z > 0.0f) ? 0.0f : z;
}

/* Element e of channel ch (e < n*hw) sits at x[(i*c + ch)*hw + j]. */
__device__ __forceinline__ size_t bn_at(const bn_geom &g, int ch, size_t e)
{
    size_t i = e / g.hw, j = e % g.hw;
    return (i * g.c + ch) * g.hw + j;
}

__global__ void bn_train_kernel(bn_geom g, const float *x, const float *gamma, const float *beta,
                                float *y, float *mean, float *invstd, float *running_mean,
                                float *running_var)
{
    __shared__ double sh[BN_THREADS];
    int ch = blockIdx.x;
    size_t m = (size_t)g.n * g.hw;
    double s = 0.0;
    for (size_t e = threadIdx.x; e < m; e += BN_THREADS)
        s += x[bn_at(g, ch, e)];
    double mu = block_sum<BN_THREADS>(s, sh) / (double)m;
    double ss = 0.0;
    for (size_t e = threadIdx.x; e < m; e += BN_THREADS) {
        double dlt = x[bn_at(g, ch, e)] - mu;
        ss += dlt * dlt;
    }
    double var = block_sum<BN_THREADS>(ss, sh) / (double)m;
    float is = (float)(1.0 / sqrt(var + g.eps));
    if (threadIdx.x == 0) {
        double unbiased = m > 1 ? var * (double)m / (double)(m - 1) : var;
        mean[ch] = (float)mu;
        invstd[ch] = is;
        running_mean[ch] = (1.0f - g.momentum) * running_mean[ch] + g.momentum * (float)mu;
        running_var[ch] = (1.0f - g.momentum) * running_var[ch] + g.momentum * (float)unbiased;
    }
    float scale = gamma[ch] * is, shift = beta[ch] - (float)mu * scale;
    for (size_t e = threadIdx.x; e < m; e += BN_THREADS) {
        size_t at = bn_at(g, ch, e);
        y[at] = bn_out(g, bn_pre(x[at], scale, shift));
    }
}

__global__ void bn_eval_kernel(bn_geom g, const float *x, const float *gamma, const float *beta,
                               float *y, const float *running_mean, const float *running_var,
                               size_t total)
{
    GRID_STRIDE_LOOP(e, total)
    {
        int ch = (int)((e / g.hw) % g.c);
        float scale = gamma[ch] / sqrtf(running_var[ch] + g.eps);
        y[e] = bn_out(g, bn_pre(x[e], scale, beta[ch] - running_mean[ch] * scale));
    }
}

/* dy, masked where forward's fused ReLU was off */
__device__ __forceinline__ float bn_grad_in(const bn_geom &g, float x, float dy, float scale,
                                            float shift)
{
    return g.relu && !(bn_pre(x, scale, shift) > 0.0f) ? 0.0f : dy;
}

__global__ void bn_backward_kernel(bn_geom g, const float *x, const float *gamma,
                                   const float *beta, const float *mean, const float *invstd,
                                   const float *dy, float *dx, int acc, float *dgamma,
                                   float *dbeta)
{
    __shared__ double sh[BN_THREADS];
    int ch = blockIdx.x;
    size_t m = (size_t)g.n * g.hw;
    float mu = mean[ch], is = invstd[ch];
    float scale = gamma[ch] * is, shift = beta[ch] - mu * scale;
    double sdy = 0.0, sdyx = 0.0;
    for (size_t e = threadIdx.x; e < m; e += BN_THREADS) {
        size_t at = bn_at(g, ch, e);
        float gy = bn_grad_in(g, x[at], dy[at], scale, shift);
        sdy += gy;
        sdyx += gy * ((x[at] - mu) * is);
    }
    sdy = block_sum<BN_THREADS>(sdy, sh);
    sdyx = block_sum<BN_THREADS>(sdyx, sh);
    if (threadIdx.x == 0) {
        dbeta[ch] += (float)sdy;
        dgamma[ch] += (float)sdyx;
    }
    float k = gamma[ch] * is, mean_dy = (float)(sdy / (double)m);
    float mean_dyx = (float)(sdyx / (double)m);
    for (size_t e = threadIdx.x; e < m; e += BN_THREADS) {
        size_t at = bn_at(g, ch, e);
        float xhat = (x[at] - mu) * is;
        float gy = bn_grad_in(g, x[at], dy[at], scale, shift);
        float gx = k * (gy - mean_dy - xhat * mean_dyx);
        dx[at] = acc ? dx[at] + gx : gx;
    }
}

void cuda_bn_forward_train(dl_device *d, const dl_bn_desc *b, const float *x, const float *gamma,
                           const float *beta, float *y, float *mean, float *invstd,
                           float *running_mean, float *running_var)
{
    if (b->c > 0 && (size_t)b->n * b->hw > 0)
        CUDA_LAUNCH(d, bn_train_kernel, b->c, BN_THREADS, 0, geom_of(b), x, gamma, beta, y, mean,
                    invstd, running_mean, running_var);
}

void cuda_bn_forward_eval(dl_device *d, const dl_bn_desc *b, const float *x, const float *gamma,
                          const float *beta, float *y, const float *running_mean,
                          const float *running_var)
{
    size_t total = (size_t)b->n * b->c * b->hw;
    if (total)
        CUDA_LAUNCH(d, bn_eval_kernel, cuda_grid(total), CUDA_THREADS, 0, geom_of(b), x, gamma,
                    beta, y, running_mean, running_var, total);
}

void cuda_bn_backward(dl_device *d, const dl_bn_desc *b, const float *x, const float *gamma,
                      const float *beta, const float *mean, const float *invstd, const float *dy,
                      float *dx, int acc, float *dgamma, float *dbeta)
{
    if (b->c > 0 && (size_t)b->n * b->hw > 0)
        CUDA_LAUNCH(d, bn_backward_kernel, b->c, BN_THREADS, 0, geom_of(b), x, gamma, beta,
                    mean, invstd, dy, dx, acc, dgamma, dbeta);
}
