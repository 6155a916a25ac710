/* cpu_norm.c: batch normalisation, per channel over (batch, height, width),
 * optionally fused with the ReLU that follows it (b->relu):
 *
 *   z = gamma * (x - mean) * invstd + beta,   invstd = 1/sqrt(var + eps)
 *   y = z, or max(z, 0) when fused
 * backward, with xhat = (x - mean) * invstd, m = n*hw and g = dy (masked by
 * z > 0 when fused):
 *   dbeta  = sum g,   dgamma = sum g * xhat
 *   dx     = gamma * invstd / m * (m*g - dbeta - xhat * dgamma)
 *
 * The fused backward recomputes z from x with the very expression forward
 * used (bn_pre), so its mask is forward's exactly and y need not be read.
 * Fusing saves the ReLU's passes over memory (forward: a read and a write;
 * backward: three streams), which at ResNet-20 sizes cost as much as the
 * normalisation itself.
 *
 * Sums run in double: a channel of a 128-image batch has ~10^5 elements.
 * The moments take one pass, as sums of (x - K) and (x - K)^2 with K the
 * channel's first value: the shift keeps E[d^2] - E[d]^2 free of
 * cancellation when the mean is large against the spread.  The `omp simd`
 * reductions let the compiler keep several partial sums in vector lanes
 * (a fixed order, so results stay the same run to run). */
#include "cpu_ops.h"

#include <math.h>

#define BN_PARALLEL_IF(b) if ((size_t)(b)->n * (b)->c * (b)->hw > CPU_PARALLEL_MIN)

/* The pre-activation, shared by forward and the fused backward's mask.  An
 * explicit fma: one rounding whatever the compiler contracts elsewhere, so
 * the two agree bit for bit (and with CUDA's __fmaf_rn). */
static inline float bn_pre(float x, float scale, float shift) { return fmaf(x, scale, shift); }

static inline const float *channel_row(const dl_bn_desc *b, const float *x, int i, int ch)
{
    return x + ((size_t)i * b->c + ch) * b->hw;
}

static void channel_moments(const dl_bn_desc *b, const float *x, int ch, double *mean,
                            double *var)
{
    double s = 0.0, ss = 0.0, m = (double)b->n * b->hw, k = x[(size_t)ch * b->hw];
    for (int i = 0; i < b->n; i++) {
        const float *row = channel_row(b, x, i, ch);
#pragma omp simd reduction(+ : s, ss)
        for (int j = 0; j < b->hw; j++) {
            double dlt = row[j] - k;
            s += dlt;
            ss += dlt * dlt;
        }
    }
    double ds = s / m;
    *mean = k + ds;
    *var = fmax(ss / m - ds * ds, 0.0);
}

static void channel_affine(const dl_bn_desc *b, const float *x, float *y, int ch, float scale,
                           float shift)
{
    for (int i = 0; i < b->n; i++) {
        const float *src = channel_row(b, x, i, ch);
        float *dst = y + (src - x);
        if (b->relu)
            for (int j = 0; j < b->hw; j++) {
                float z = bn_pre(src[j], scale, shift);
                dst[j] = z > 0.0f ? z : 0.0f;
            }
        else
            for (int j = 0; j < b->hw; j++)
                dst[j] = bn_pre(src[j], scale, shift);
    }
}

void cpu_bn_forward_train(dl_device *d, const dl_bn_desc *b, const float *x, const float *gamma,
                          const float *beta, float *y, float *mean, float *invstd,
                          float *running_mean, float *running_var)
{
    (void)d;
    double m = (double)b->n * b->hw;
#pragma omp parallel for schedule(static) BN_PARALLEL_IF(b)
    for (int ch = 0; ch < b->c; ch++) {
        double mu, var;
        channel_moments(b, x, ch, &mu, &var);
        float is = (float)(1.0 / sqrt(var + b->eps));
        mean[ch] = (float)mu;
        invstd[ch] = is;
        double unbiased = m > 1 ? var * m / (m - 1) : var;
        running_mean[ch] = (1.0f - b->momentum) * running_mean[ch] + b->momentum * (float)mu;
        running_var[ch] = (1.0f - b->momentum) * running_var[ch] + b->momentum * (float)unbiased;
        float scale = gamma[ch] * is;
        channel_affine(b, x, y, ch, scale, beta[ch] - mean[ch] * scale);
    }
}

void cpu_bn_forward_eval(dl_device *d, const dl_bn_desc *b, const float *x, const float *gamma,
                         const float *beta, float *y, const float *running_mean,
                         const float *running_var)
{
    (void)d;
#pragma omp parallel for schedule(static) BN_PARALLEL_IF(b)
    for (int ch = 0; ch < b->c; ch++) {
        float scale = gamma[ch] / sqrtf(running_var[ch] + b->eps);
        channel_affine(b, x, y, ch, scale, beta[ch] - running_mean[ch] * scale);
    }
}

/* Rows are processed in chunks of this many values through an L1 buffer. */
#define BN_CHUNK 512

/* The gradient reaching the normalisation for len values at x, dy: dy
 * itself, or (fused ReLU) dy masked where forward's pre-activation was not
 * positive, written to buf.  A separate simple loop, because GCC does not
 * vectorise the masked select inside the double-precision reductions. */
static const float *grad_in(const float *x, const float *dy, int len, float scale,
                            float shift, int relu, float *buf)
{
    if (!relu)
        return dy;
    for (int j = 0; j < len; j++)
        buf[j] = bn_pre(x[j], scale, shift) > 0.0f ? dy[j] : 0.0f;
    return buf;
}

static void channel_backward(const dl_bn_desc *b, const float *x, const float *dy, float *dx,
                             int acc, int ch, float gamma, float beta, float mu, float is,
                             float *dgamma, float *dbeta)
{
    double m = (double)b->n * b->hw, sdy = 0.0, sdyx = 0.0;
    float scale = gamma * is, shift = beta - mu * scale, buf[BN_CHUNK];
    for (int i = 0; i < b->n; i++)
        for (int j0 = 0; j0 < b->hw; j0 += BN_CHUNK) {
            size_t off = ((size_t)i * b->c + ch) * b->hw + j0;
            int len = DL_MIN(BN_CHUNK, b->hw - j0);
            const float *xr = x + off, *g = grad_in(xr, dy + off, len, scale, shift, b->relu, buf);
#pragma omp simd reduction(+ : sdy, sdyx)
            for (int j = 0; j < len; j++) {
                sdy += g[j];
                sdyx += g[j] * ((xr[j] - mu) * is);
            }
        }
    *dbeta += (float)sdy;
    *dgamma += (float)sdyx;
    float mean_dy = (float)(sdy / m), mean_dyx = (float)(sdyx / m);
    for (int i = 0; i < b->n; i++)
        for (int j0 = 0; j0 < b->hw; j0 += BN_CHUNK) {
            size_t off = ((size_t)i * b->c + ch) * b->hw + j0;
            int len = DL_MIN(BN_CHUNK, b->hw - j0);
            const float *xr = x + off, *g = grad_in(xr, dy + off, len, scale, shift, b->relu, buf);
            float *out = dx + off;
            for (int j = 0; j < len; j++) {
                float v = scale * (g[j] - mean_dy - (xr[j] - mu) * is * mean_dyx);
                out[j] = acc ? out[j] + v : v;
            }
        }
}

void cpu_bn_backward(dl_device *d, const dl_bn_desc *b, const float *x, const float *gamma,
                     const float *beta, const float *mean, const float *invstd, const float *dy,
                     float *dx, int acc, float *dgamma, float *dbeta)
{
    (void)d;
#pragma omp parallel for schedule(static) BN_PARALLEL_IF(b)
    for (int ch = 0; ch < b->c; ch++)
        channel_backward(b, x, dy, dx, acc, ch, gamma[ch], beta[ch], mean[ch], invstd[ch],
                         dgamma + ch, dbeta + ch);
}
