/* cpu_loss.c: softmax cross-entropy and the SGD update. */
#include "cpu_ops.h"

#include <math.h>

void cpu_xent_forward(dl_device *d, const float *logits, const int32_t *labels, float *probs,
                      float *loss, int n, int classes)
{
    (void)d;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * classes;
        float *p = probs + (size_t)i * classes;
        float zmax = z[0];
        for (int k = 1; k < classes; k++)
            zmax = z[k] > zmax ? z[k] : zmax;
        double sum = 0.0;
        for (int k = 0; k < classes; k++)
            sum += exp((double)(z[k] - zmax));
        double logsum = log(sum);
        for (int k = 0; k < classes; k++)
            p[k] = (float)exp((double)(z[k] - zmax) - logsum);
        loss[i] = (float)(logsum - (double)(z[labels[i]] - zmax));
    }
}

void cpu_xent_backward(dl_device *d, const float *probs, const int32_t *labels, float *dlogits,
                       int n, int classes)
{
    (void)d;
    float inv_n = 1.0f / (float)n;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < classes; k++) {
            size_t at = (size_t)i * classes + k;
            dlogits[at] = (probs[at] - (k == labels[i] ? 1.0f : 0.0f)) * inv_n;
        }
}

/* Samples in order, the loss summed in double: the sums dl_net_loss made on
 * the host before this op existed, bit for bit. */
void cpu_xent_stats(dl_device *d, const float *probs, const float *loss, const int32_t *labels,
                    int n, int classes, double *out)
{
    (void)d;
    double sum = 0.0;
    int right = 0;
    for (int i = 0; i < n; i++) {
        sum += loss[i];
        const float *p = probs + (size_t)i * classes;
        int best = 0;
        for (int j = 1; j < classes; j++)
            if (p[j] > p[best])
                best = j;
        right += best == labels[i];
    }
    out[0] = sum, out[1] = right;
}

void cpu_sgd_update(dl_device *d, const dl_sgd_args *a, float *params, const float *grads,
                    float *velocity, size_t n)
{
    (void)d;
    float lr = a->lr, mu = a->momentum, wd = a->weight_decay;
#pragma omp parallel for schedule(static) if (n > CPU_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) {
        float g = grads[i] + wd * params[i];
        float v = mu * velocity[i] + g;
        velocity[i] = v;
        params[i] -= lr * (a->nesterov ? g + mu * v : v);
    }
}
