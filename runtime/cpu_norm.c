/* cpu_norm.c: batch normalisation, per channel over (batch, height, width).
 *
 *   y = gamma * (x - mean) * invstd + beta,   invstd = 1/sqrt(var + eps)
 * backward, with xhat = (x - mean) * invstd and m = n*hw:
 *   dbeta  = sum dy,   dgamma = sum dy * xhat
 *   dx     = gamma * invstd / m * (m*dy - dbeta - xhat * dgamma)
 * Sums run in double: a channel of a 128-image batch has ~10^5 elements.
 * The `omp simd` reductions let the compiler keep several partial sums in
 * vector lanes (a fixed order, so results stay the same run to run). */
#include "cpu_ops.h"

#include <math.h>

#define BN_PARALLEL_IF(b) if ((size_t)(b)->n * (b)->c * (b)->hw > CPU_PARALLEL_MIN)

static void channel_moments(const dl_bn_desc *b, const float *x, int ch, double *mean,
                            double *var)
{
    double s = 0.0, ss = 0.0, m = (double)b->n * b->hw;
    for (int i = 0; i < b->n; i++) {
        const float *row = x + ((size_t)i * b->c + ch) * b->hw;
#pragma omp simd reduction(+ : s)
        for (int j = 0; j < b->hw; j++)
            s += row[j];
    }
    double mu = s / m;
    for (int i = 0; i < b->n; i++) {
        const float *row = x + ((size_t)i * b->c + ch) * b->hw;
#pragma omp simd reduction(+ : ss)
        for (int j = 0; j < b->hw; j++) {
            double dlt = row[j] - mu;
            ss += dlt * dlt;
        }
    }
    *mean = mu;
    *var = ss / m;
}

static void channel_affine(const dl_bn_desc *b, const float *x, float *y, int ch, float scale,
                           float shift)
{
    for (int i = 0; i < b->n; i++) {
        size_t off = ((size_t)i * b->c + ch) * b->hw;
        for (int j = 0; j < b->hw; j++)
            y[off + j] = x[off + j] * scale + shift;
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
        channel_affine(b, x, y, ch, scale, beta[ch] - (float)mu * scale);
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

void cpu_bn_backward(dl_device *d, const dl_bn_desc *b, const float *x, const float *gamma,
                     const float *mean, const float *invstd, const float *dy, float *dx, int acc,
                     float *dgamma, float *dbeta)
{
    (void)d;
    double m = (double)b->n * b->hw;
#pragma omp parallel for schedule(static) BN_PARALLEL_IF(b)
    for (int ch = 0; ch < b->c; ch++) {
        float mu = mean[ch], is = invstd[ch];
        double sdy = 0.0, sdyx = 0.0;
        for (int i = 0; i < b->n; i++) {
            size_t off = ((size_t)i * b->c + ch) * b->hw;
#pragma omp simd reduction(+ : sdy, sdyx)
            for (int j = 0; j < b->hw; j++) {
                sdy += dy[off + j];
                sdyx += dy[off + j] * ((x[off + j] - mu) * is);
            }
        }
        dbeta[ch] += (float)sdy;
        dgamma[ch] += (float)sdyx;
        float k = gamma[ch] * is, mean_dy = (float)(sdy / m), mean_dyx = (float)(sdyx / m);
        for (int i = 0; i < b->n; i++) {
            size_t off = ((size_t)i * b->c + ch) * b->hw;
            for (int j = 0; j < b->hw; j++) {
                float xhat = (x[off + j] - mu) * is;
                float g = k * (dy[off + j] - mean_dy - xhat * mean_dyx);
                dx[off + j] = acc ? dx[off + j] + g : g;
            }
        }
    }
}
