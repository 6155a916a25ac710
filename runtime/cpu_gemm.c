/* cpu_gemm.c: row-major SGEMM through CBLAS (OpenBLAS), or a plain loop when
 * the build found no BLAS (slow, but keeps a GPU-only machine without
 * OpenBLAS buildable: there the CPU device is only a test oracle).
 *
 * Large GEMMs are split here into one block of C per thread, each a
 * single-threaded BLAS call (OpenBLAS built for OpenMP does not thread inside
 * an active parallel region); the convolution likewise hands each thread
 * whole GEMMs.  OpenBLAS's own threading synchronises its threads many times
 * per call with spin-waits, which collapses when another process shares the
 * cores; a static split has a single join and gives the same result for the
 * same thread count. */
#include "cpu_ops.h"

#ifdef DLTRAIN_HAVE_BLAS
#include <cblas.h>

void cpu_gemm_serial(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                     int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c,
                ldc);
}
#else
void cpu_gemm_serial(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                     int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
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

/* Below this many multiply-adds one thread is faster than waking the team. */
#define GEMM_PARALLEL_MIN (1 << 18)

/* Start of block t of `parts` over [0, len), on a 16-element boundary so that
 * every block but the last keeps the BLAS kernels' full register tiles. */
static int block_start(int len, int parts, int t)
{
    if (t >= parts)
        return len;
    int at = (int)((long long)len * t / parts) & ~15;
    return DL_MIN(at, len);
}

void cpu_gemm(dl_device *d, int trans_a, int trans_b, int m, int n, int k, float alpha,
              const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    (void)d;
    int parts = cpu_threads();
    if ((double)m * n * k < GEMM_PARALLEL_MIN || DL_MAX(m, n) < 32 * parts)
        parts = 1;
    if (parts == 1) {
        cpu_gemm_serial(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    /* split the longer side of C: rows of op(A), or columns of op(B) */
    int by_rows = m >= n, len = by_rows ? m : n;
#pragma omp parallel for schedule(static) num_threads(parts)
    for (int t = 0; t < parts; t++) {
        int lo = block_start(len, parts, t), hi = block_start(len, parts, t + 1);
        if (hi <= lo)
            continue;
        if (by_rows)
            cpu_gemm_serial(trans_a, trans_b, hi - lo, n, k, alpha,
                            a + (trans_a ? (size_t)lo : (size_t)lo * lda), lda, b, ldb, beta,
                            c + (size_t)lo * ldc, ldc);
        else
            cpu_gemm_serial(trans_a, trans_b, m, hi - lo, k, alpha, a, lda,
                            b + (trans_b ? (size_t)lo * ldb : (size_t)lo), ldb, beta, c + lo,
                            ldc);
    }
}

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
