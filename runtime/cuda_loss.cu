/* cuda_loss.cu: softmax cross-entropy on the GPU: forward (probabilities
 * and per-sample losses), backward, and the statistics the host reads (the
 * loss sum and the correct count, reduced here so 16 bytes go back).
 * Semantics: runtime/device.h; reference: cpu_loss.c. */
#include "cuda_internal.cuh"

/* ---- softmax cross-entropy ----------------------------------------------------
 * One block per sample (classes is 10 .. 1000).  Like the CPU reference, the
 * sum of exponentials and the logarithms are taken in double. */
#define XENT_THREADS 128

__global__ void xent_forward_kernel(const float *logits, const int32_t *labels, float *probs,
                                    float *loss, int classes)
{
    __shared__ double sh[XENT_THREADS];
    __shared__ float shmax[XENT_THREADS];
    int i = blockIdx.x, t = threadIdx.x;
    const float *z = logits + (size_t)i * classes;
    float *p = probs + (size_t)i * classes;

    float m = z[0];
    for (int k = t; k < classes; k += XENT_THREADS)
        m = z[k] > m ? z[k] : m;
    shmax[t] = m;
    __syncthreads();
    for (int s = XENT_THREADS / 2; s > 0; s >>= 1) {
        if (t < s && shmax[t + s] > shmax[t])
            shmax[t] = shmax[t + s];
        __syncthreads();
    }
    float zmax = shmax[0];

    double part = 0.0;
    for (int k = t; k < classes; k += XENT_THREADS)
        part += exp((double)(z[k] - zmax));
    double logsum = log(block_sum<XENT_THREADS>(part, sh));
    for (int k = t; k < classes; k += XENT_THREADS)
        p[k] = (float)exp((double)(z[k] - zmax) - logsum);
    if (t == 0)
        loss[i] = (float)(logsum - (double)(z[labels[i]] - zmax));
}

__global__ void xent_backward_kernel(const float *probs, const int32_t *labels, float *dlogits,
                                     int n, int classes)
{
    float inv_n = 1.0f / (float)n;
    size_t total = (size_t)n * classes;
    GRID_STRIDE_LOOP(at, total)
    {
        int i = (int)(at / classes), k = (int)(at % classes);
        dlogits[at] = (probs[at] - (k == labels[i] ? 1.0f : 0.0f)) * inv_n;
    }
}

/* One block: sample i by thread i % XENT_THREADS, the sums in fixed trees
 * (deterministic).  The argmax takes the first maximum, as the CPU. */
__global__ void xent_stats_kernel(const float *probs, const float *loss, const int32_t *labels,
                                  int n, int classes, double *out)
{
    __shared__ double sh[XENT_THREADS];
    double sum = 0.0, right = 0.0;
    for (int i = threadIdx.x; i < n; i += XENT_THREADS) {
        const float *p = probs + (size_t)i * classes;
        int best = 0;
        for (int j = 1; j < classes; j++)
            if (p[j] > p[best])
                best = j;
        sum += loss[i];
        right += best == labels[i] ? 1.0 : 0.0;
    }
    sum = block_sum<XENT_THREADS>(sum, sh);
    right = block_sum<XENT_THREADS>(right, sh);
    if (threadIdx.x == 0)
        out[0] = sum, out[1] = right;
}

void cuda_xent_stats(dl_device *d, const float *probs, const float *loss, const int32_t *labels,
                     int n, int classes, double *out)
{
    CUDA_LAUNCH(d, xent_stats_kernel, 1, XENT_THREADS, 0, probs, loss, labels, n, classes, out);
}

void cuda_xent_forward(dl_device *d, const float *logits, const int32_t *labels, float *probs,
                       float *loss, int n, int classes)
{
    if (n > 0)
        CUDA_LAUNCH(d, xent_forward_kernel, n, XENT_THREADS, 0, logits, labels, probs, loss,
                    classes);
}

void cuda_xent_backward(dl_device *d, const float *probs, const int32_t *labels, float *dlogits,
                        int n, int classes)
{
    size_t total = (size_t)n * classes;
    if (total)
        CUDA_LAUNCH(d, xent_backward_kernel, cuda_grid(total), CUDA_THREADS, 0, probs, labels,
                    dlogits, n, classes);
}
