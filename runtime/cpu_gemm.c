/* cpu_gemm.c: row-major SGEMM through CBLAS (OpenBLAS), or a plain blocked
 * loop when the build found no BLAS (slow, but keeps a GPU-only machine
 * without OpenBLAS buildable: there the CPU device is only a test oracle). */
#include "cpu_ops.h"

#ifdef DLTRAIN_HAVE_BLAS
#include <cblas.h>

void cpu_gemm(dl_device *d, int trans_a, int trans_b, int m, int n, int k, float alpha,
              const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    (void)d;
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c,
                ldc);
}
#else
void cpu_gemm(dl_device *d, int trans_a, int trans_b, int m, int n, int k, float alpha,
              const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    (void)d;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < m; i++) {
        float *ci = c + (size_t)i * ldc;
        for (int j = 0; j < n; j++)
            ci[j] = beta == 0.0f ? 0.0f : beta * ci[j];
        for (int p = 0; p < k; p++) {
            float av = alpha * (trans_a ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p]);
            if (trans_b)
                for (int j = 0; j < n; j++)
                    ci[j] += av * b[(size_t)j * ldb + p];
            else
                for (int j = 0; j < n; j++)
                    ci[j] += av * b[(size_t)p * ldb + j];
        }
    }
}
#endif

void cpu_bias_add(dl_device *d, float *y, const float *b, int n, int c, int hw)
{
    (void)d;
#pragma omp parallel for schedule(static) if ((size_t)n * c * hw > CPU_PARALLEL_MIN)
    for (int i = 0; i < n * c; i++) {
        float v = b[i % c];
        float *row = y + (size_t)i * hw;
        for (int j = 0; j < hw; j++)
            row[j] += v;
    }
}

void cpu_bias_grad(dl_device *d, const float *dy, float *db, int n, int c, int hw)
{
    (void)d;
#pragma omp parallel for schedule(static) if ((size_t)n * c * hw > CPU_PARALLEL_MIN)
    for (int ch = 0; ch < c; ch++) {
        double s = 0.0;
        for (int i = 0; i < n; i++) {
            const float *row = dy + ((size_t)i * c + ch) * hw;
            for (int j = 0; j < hw; j++)
                s += row[j];
        }
        db[ch] += (float)s;
    }
}
