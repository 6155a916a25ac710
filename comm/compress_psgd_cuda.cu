/* compress_psgd_cuda.cu: PowerSGD's steps on the GPU (compress_cuda.h).
 *
 * The matrices are small next to the bucket (m and k about sqrt(n), rank at
 * most 4), so plain kernels do: one thread per row of P = M Q, one per row
 * of Q = M^T P (reading M down its columns, coalesced across threads), one
 * per value of P Q^T, each summing in the C reference's order with the
 * compiler's usual multiply-add fusion (the C reference is built with the
 * host's FMA too, -march=native).  Gram-Schmidt runs in one block: r <= 4
 * columns of m rows, each thread owning the same rows throughout, so only
 * the block's double sums are shared. */
#include <cuda_runtime.h>

#include <math.h>
#include <stdio.h>

extern "C" {
#include "compress_cuda.h"
}
#include "compress_cuda_try.cuh"

#define MAX_R DL_POWERSGD_MAX_RANK
#define THREADS 256

static unsigned grid_of(size_t n)
{
    size_t g = (n + THREADS - 1) / THREADS;
    return (unsigned)(g < 1 ? 1 : g);
}

#define FOR_EACH(i, n)                                                                      \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n);                \
         i += (size_t)blockDim.x * gridDim.x)

/* mat = x + residual, zero-padded from n to m k */
__global__ static void k_fold(const float *x, const float *residual, size_t n, float *mat,
                              size_t mk)
{
    FOR_EACH(i, mk)
    mat[i] = i < n ? x[i] + residual[i] : 0.0f;
}

/* p (m x r) = a (m x k) q (k x r): row i of p, summed over j in order */
__global__ static void k_mul(const float *a, const float *q, float *p, size_t m, size_t k, int r)
{
    FOR_EACH(i, m) {
        float s[MAX_R] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (size_t j = 0; j < k; j++) {
            float v = a[i * k + j];
            for (int c = 0; c < r; c++)
                s[c] += v * q[j * r + c];
        }
        for (int c = 0; c < r; c++)
            p[i * r + c] = s[c];
    }
}

/* q (k x r) = a^T p: row j of q, summed over the rows i of a in order */
__global__ static void k_mul_t(const float *a, const float *p, float *q, size_t m, size_t k,
                               int r)
{
    FOR_EACH(j, k) {
        float s[MAX_R] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (size_t i = 0; i < m; i++) {
            float v = a[i * k + j];
            for (int c = 0; c < r; c++)
                s[c] += v * p[i * r + c];
        }
        for (int c = 0; c < r; c++)
            q[j * r + c] = s[c];
    }
}

/* x = (p q^T)[0, n), residual = mat - p q^T */
__global__ static void k_apply(const float *mat, const float *p, const float *q, float *x,
                               float *residual, size_t n, size_t k, int r)
{
    FOR_EACH(idx, n) {
        size_t i = idx / k, j = idx % k;
        float s = 0.0f;
        for (int c = 0; c < r; c++)
            s += p[i * r + c] * q[j * r + c];
        residual[idx] = mat[idx] - s;
        x[idx] = s;
    }
}

/* The block's sum of v (a fixed tree: the same bits run to run), to every thread. */
__device__ static double block_sum(double v, double *sh)
{
    sh[threadIdx.x] = v;
    __syncthreads();
    for (unsigned s = THREADS / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s)
            sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    double total = sh[0];
    __syncthreads();
    return total;
}

/* dl_powersgd_orthonormalize in one block: each thread keeps rows
 * threadIdx.x, + THREADS, ..; the epsilon keeps a zero column zero, as
 * PyTorch's hook does. */
__global__ static void k_orthonormalize(float *p, size_t m, int r)
{
    __shared__ double sh[THREADS];
    const double eps = 1e-8;
    for (int c = 0; c < r; c++) {
        for (int j = 0; j < c; j++) {
            double part = 0.0;
            for (size_t i = threadIdx.x; i < m; i += THREADS)
                part += (double)p[i * r + c] * p[i * r + j];
            double dot = block_sum(part, sh);
            for (size_t i = threadIdx.x; i < m; i += THREADS)
                p[i * r + c] -= (float)(dot * p[i * r + j]);
        }
        double part = 0.0;
        for (size_t i = threadIdx.x; i < m; i += THREADS)
            part += (double)p[i * r + c] * p[i * r + c];
        double inv = 1.0 / (sqrt(block_sum(part, sh)) + eps);
        for (size_t i = threadIdx.x; i < m; i += THREADS)
            p[i * r + c] = (float)(p[i * r + c] * inv);
    }
}

static dl_status check_rank(int r)
{
    if (r < 1 || r > MAX_R)
        return dl_fail(DL_ERR_ARG, "PowerSGD rank %d outside 1 to %d", r, MAX_R);
    return DL_OK;
}

extern "C" dl_status dl_powersgd_project_cuda(const float *x, const float *residual, size_t n,
                                              float *mat, float *q, float *p, size_t m, size_t k,
                                              int r, void *stream)
{
    cudaStream_t st = (cudaStream_t)stream;
    dl_status s = check_rank(r);
    if (s != DL_OK)
        return s;
    k_orthonormalize<<<1, THREADS, 0, st>>>(q, k, r); /* the warm start, as PyTorch's hook */
    CUDA_TRY(cudaGetLastError());
    k_fold<<<grid_of(m * k), THREADS, 0, st>>>(x, residual, n, mat, m * k);
    CUDA_TRY(cudaGetLastError());
    k_mul<<<grid_of(m), THREADS, 0, st>>>(mat, q, p, m, k, r);
    CUDA_TRY(cudaGetLastError());
    return DL_OK;
}

extern "C" dl_status dl_powersgd_back_cuda(const float *mat, float *p, float *q, size_t m,
                                           size_t k, int r, void *stream)
{
    cudaStream_t st = (cudaStream_t)stream;
    dl_status s = check_rank(r);
    if (s != DL_OK)
        return s;
    k_orthonormalize<<<1, THREADS, 0, st>>>(p, m, r);
    CUDA_TRY(cudaGetLastError());
    k_mul_t<<<grid_of(k), THREADS, 0, st>>>(mat, p, q, m, k, r);
    CUDA_TRY(cudaGetLastError());
    return DL_OK;
}

extern "C" dl_status dl_powersgd_apply_cuda(const float *mat, const float *p, const float *q,
                                            float *x, float *residual, size_t n, size_t m,
                                            size_t k, int r, void *stream)
{
    (void)m;
    dl_status s = check_rank(r);
    if (s != DL_OK)
        return s;
    k_apply<<<grid_of(n), THREADS, 0, (cudaStream_t)stream>>>(mat, p, q, x, residual, n, k, r);
    CUDA_TRY(cudaGetLastError());
    return DL_OK;
}
