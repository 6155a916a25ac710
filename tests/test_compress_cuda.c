/* test_compress_cuda.c: the codecs' CUDA kernels (comm/compress_cuda.h)
 * against the C reference: the same bytes on random, zero, all-equal,
 * extreme, denormal and wide-range inputs (with a partial last block), the
 * same decoded values, and the GPU error-feedback step equal to the CPU's;
 * the rank-ordered mean of several ranks' shards bit for bit (side by side,
 * and spaced as a run of a bucket); plain floats (onebit's exact runs) the
 * same way; PowerSGD's
 * three GPU steps (Q orthonormalized + project, orthonormalize + back,
 * apply) against the C products to float rounding, on a folded bucket and
 * on a per-layer piece whose buffers start at an unaligned offset.
 * Without a GPU it prints "SKIPPED: ..." and exits 77 (DLTRAIN_REQUIRE_GPU=1
 * makes that a failure); a GPU it cannot use (a driver too old) fails it
 * (gpu_skip.h). */
#include <cuda_runtime_api.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress_cuda.h"
#include "device_cuda.h"
#include "gpu_skip.h"
#include "rng.h"

static int failures;

#include "expect.h"

#define CUDA_OK(call) EXPECT((call) == cudaSuccess, "%s failed", #call)
#define DL_OK_(call) EXPECT((call) == DL_OK, "%s: %s", #call, dl_error_message())

enum { N = 3000, INPUTS = 6 };

static void make_input(int k, float *x, size_t n)
{
    dl_rng r;
    dl_rng_seed(&r, 77, (uint64_t)k, 0);
    for (size_t i = 0; i < n; i++) {
        double g = dl_rng_normal(&r);
        x[i] = k == 0 ? (float)(0.01 * g) : k == 1 ? 0.0f : k == 2 ? 3.25f
             : k == 3 ? (i % 3 == 0 ? FLT_MAX : i % 3 == 1 ? -FLT_MAX : 1e30f * (float)g)
             : k == 4 ? (float)g * 1e-40f : (float)(g * pow(10.0, (double)(i % 60) - 30.0));
    }
}

static void check_kind(dl_compress_kind kind, int input)
{
    static float x[N], y_cpu[N], y_gpu[N], r_cpu[N], r_gpu[N];
    size_t bytes = dl_codec_bytes(kind, N);
    unsigned char *e_cpu = malloc(bytes), *e_gpu = malloc(bytes);
    float *dx, *dy, *dr;
    void *denc;
    make_input(input, x, N);
    CUDA_OK(cudaMalloc((void **)&dx, N * sizeof(float)));
    CUDA_OK(cudaMalloc((void **)&dy, N * sizeof(float)));
    CUDA_OK(cudaMalloc((void **)&dr, N * sizeof(float)));
    CUDA_OK(cudaMalloc(&denc, bytes));
    CUDA_OK(cudaMemcpy(dx, x, sizeof x, cudaMemcpyHostToDevice));
    DL_OK_(dl_codec_encode_cuda(kind, dx, N, denc, NULL));
    DL_OK_(dl_codec_decode_cuda(kind, denc, N, dy, NULL));
    CUDA_OK(cudaMemcpy(e_gpu, denc, bytes, cudaMemcpyDeviceToHost));
    CUDA_OK(cudaMemcpy(y_gpu, dy, sizeof y_gpu, cudaMemcpyDeviceToHost));
    dl_codec_encode(kind, x, N, e_cpu);
    dl_codec_decode(kind, e_cpu, N, y_cpu);
    /* onebit's double sums are exact (order-free) unless a block spans more
     * than 2^29 in magnitude: the wide-range input is compared to rounding */
    int exact = !(kind == DL_COMPRESS_ONEBIT && input == 5);
    EXPECT(!exact || memcmp(e_cpu, e_gpu, bytes) == 0, "kind %d input %d: encodings differ",
           (int)kind, input);
    int bad = 0;
    for (size_t i = 0; i < N; i++)
        bad += exact ? memcmp(&y_cpu[i], &y_gpu[i], sizeof(float)) != 0
                     : !(fabsf(y_cpu[i] - y_gpu[i]) <= 1e-6f * fabsf(y_cpu[i]));
    EXPECT(bad == 0, "kind %d input %d: %d decoded values differ", (int)kind, input, bad);
    /* error feedback: residual r = 0.5 x, then x' = x + r, r = x' - decode(encode(x')) */
    for (size_t i = 0; i < N; i++)
        r_cpu[i] = 0.5f * x[i];
    CUDA_OK(cudaMemcpy(dr, r_cpu, sizeof r_cpu, cudaMemcpyHostToDevice));
    DL_OK_(dl_codec_feedback_cuda(kind, dx, dr, N, denc, NULL));
    CUDA_OK(cudaMemcpy(r_gpu, dr, sizeof r_gpu, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < N; i++)
        x[i] += r_cpu[i];
    dl_codec_encode(kind, x, N, e_cpu);
    dl_codec_decode(kind, e_cpu, N, y_cpu);
    bad = 0;
    for (size_t i = 0; i < N; i++) {
        float want = x[i] - y_cpu[i];
        /* 0.5 FLT_MAX added to FLT_MAX overflows: infinity minus infinity
         * is a NaN on both, whose payload bits the CPU and GPU choose
         * differently */
        int both_nan = isnan(r_gpu[i]) && isnan(want);
        bad += exact ? !both_nan && memcmp(&r_gpu[i], &want, sizeof(float)) != 0
                     : !(fabsf(r_gpu[i] - want) <= 1e-6f * (fabsf(x[i]) + fabsf(y_cpu[i])));
    }
    EXPECT(bad == 0, "kind %d input %d: %d residuals differ from the CPU's", (int)kind, input, bad);
    cudaFree(dx), cudaFree(dy), cudaFree(dr), cudaFree(denc);
    free(e_cpu), free(e_gpu);
}

/* dl_codec_mean_cuda against compress.c's decode-and-sum of W shards,
 * `stride` bytes apart (a run of a bucket: its shard is part of the
 * bucket's). */
static void check_mean(dl_compress_kind kind, int world, size_t pad)
{
    enum { M = 1000 }; /* a partial last block */
    size_t bytes = dl_codec_bytes(kind, M) + pad;
    unsigned char *shards = calloc((size_t)world, bytes);
    static float x[M], dec[M], want[M], got[M];
    memset(want, 0, sizeof want);
    for (int r = 0; r < world; r++) {
        static const int input_of_rank[4] = {0, 5, 1, 2}; /* random, wide range, zeros, equal */
        make_input(input_of_rank[r % 4], x, M);
        for (size_t i = 0; i < M; i++) /* ranks differ, and stay far below FLT_MAX */
            x[i] *= (float)(r + 1);
        dl_codec_encode(kind, x, M, shards + (size_t)r * bytes);
        dl_codec_decode(kind, shards + (size_t)r * bytes, M, dec);
        for (size_t i = 0; i < M; i++)
            want[i] += dec[i];
    }
    for (size_t i = 0; i < M; i++)
        want[i] *= 1.0f / (float)world;
    void *dshards;
    float *dx;
    CUDA_OK(cudaMalloc(&dshards, bytes * (size_t)world));
    CUDA_OK(cudaMalloc((void **)&dx, sizeof got));
    CUDA_OK(cudaMemcpy(dshards, shards, bytes * (size_t)world, cudaMemcpyHostToDevice));
    DL_OK_(dl_codec_mean_cuda(kind, dshards, bytes, M, world, dx, NULL));
    CUDA_OK(cudaMemcpy(got, dx, sizeof got, cudaMemcpyDeviceToHost));
    int bad = 0;
    for (size_t i = 0; i < M; i++)
        bad += memcmp(&got[i], &want[i], sizeof(float)) != 0;
    EXPECT(bad == 0, "kind %d, %d ranks, shards %zu bytes apart: %d means differ from the C "
           "reference's bits", (int)kind, world, bytes, bad);
    cudaFree(dshards), cudaFree(dx);
    free(shards);
}

static int close_to(const float *got, const float *want, size_t n, double rel, const char *what,
                    int r)
{
    double scale = 0.0;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs((double)want[i]));
    int bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += !(fabs((double)got[i] - want[i]) <= rel * (scale + 1e-30));
    EXPECT(bad == 0, "PowerSGD rank %d: %d of %zu values of %s differ from the C reference",
           r, bad, n, what);
    return bad;
}

static float *gpu_floats(size_t n)
{
    float *d = NULL;
    CUDA_OK(cudaMalloc((void **)&d, (n + 1) * sizeof *d));
    return d;
}

static void from_gpu(float *x, const float *d, size_t n)
{
    CUDA_OK(cudaMemcpy(x, d, n * sizeof *x, cudaMemcpyDeviceToHost));
}

/* PowerSGD on n values as an m x k matrix (zero-padded past n), one rank:
 * every intermediate to float rounding (relative to the largest value).
 * The GPU buffers start `off` floats into their allocations, as a
 * per-layer piece starts anywhere in a bucket and its M, P and Q anywhere
 * in the compressor's buffers. */
static void check_powersgd(int r, size_t n, size_t m, size_t k, size_t off)
{
    size_t mk = m * k, np = m * (size_t)r, nq = k * (size_t)r;
    float *x = malloc(n * sizeof *x), *res = malloc(n * sizeof *res), *q = malloc(nq * 4);
    float *mat = malloc(mk * 4), *p = malloc(np * 4), *q2 = malloc(nq * 4), *approx = malloc(mk * 4);
    float *got = malloc((mk + n) * sizeof *got);
    make_input(0, x, n);
    for (size_t i = 0; i < n; i++)
        res[i] = 1e-3f * x[(i * 7) % n];
    dl_rng rng;
    dl_rng_seed(&rng, 3, 0, 0);
    for (size_t i = 0; i < nq; i++)
        q[i] = (float)dl_rng_normal(&rng);
    float *bx = gpu_floats(n + off), *bres = gpu_floats(n + off), *bq = gpu_floats(nq + off);
    float *bmat = gpu_floats(mk + off), *bp = gpu_floats(np + off);
    float *dx = bx + off, *dres = bres + off, *dq = bq + off, *dmat = bmat + off, *dp = bp + off;
    CUDA_OK(cudaMemcpy(dx, x, n * sizeof *x, cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemcpy(dres, res, n * sizeof *res, cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemcpy(dq, q, nq * sizeof *q, cudaMemcpyHostToDevice));
    for (size_t i = 0; i < mk; i++) /* the C reference, as compress_host.c runs it */
        mat[i] = i < n ? x[i] + res[i] : 0.0f;
    dl_powersgd_orthonormalize(q, k, r);
    dl_powersgd_mul(mat, q, p, m, k, r);
    DL_OK_(dl_powersgd_project_cuda(dx, dres, n, dmat, dq, dp, m, k, r, NULL));
    from_gpu(got, dq, nq);
    close_to(got, q, nq, 1e-5, "the warm start Q orthonormalized", r);
    from_gpu(got, dmat, mk);
    EXPECT(memcmp(got, mat, mk * sizeof *got) == 0, "PowerSGD rank %d: M = x + residual differs", r);
    from_gpu(got, dp, np);
    close_to(got, p, np, 1e-5, "P = M Q", r);
    dl_powersgd_orthonormalize(p, m, r);
    dl_powersgd_mul_t(mat, p, q2, m, k, r);
    DL_OK_(dl_powersgd_back_cuda(dmat, dp, dq, m, k, r, NULL));
    from_gpu(got, dp, np);
    close_to(got, p, np, 1e-5, "orthonormalized P", r);
    from_gpu(got, dq, nq);
    close_to(got, q2, nq, 1e-4, "Q = M^T P", r);
    /* apply from the same P and Q on both sides, so only its own rounding counts */
    CUDA_OK(cudaMemcpy(dp, p, np * sizeof *p, cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemcpy(dq, q2, nq * sizeof *q2, cudaMemcpyHostToDevice));
    dl_powersgd_outer(p, q2, approx, m, k, r);
    DL_OK_(dl_powersgd_apply_cuda(dmat, dp, dq, dx, dres, n, m, k, r, NULL));
    from_gpu(got, dx, n);
    close_to(got, approx, n, 1e-5, "the update P Q^T", r);
    for (size_t i = 0; i < n; i++)
        res[i] = mat[i] - approx[i];
    from_gpu(got, dres, n);
    close_to(got, res, n, 1e-5, "the residual M - P Q^T", r);
    cudaFree(bx), cudaFree(bres), cudaFree(bq), cudaFree(bmat), cudaFree(bp);
    free(x), free(res), free(q), free(mat), free(p), free(q2), free(approx), free(got);
}

int main(void)
{
    char why[256];
    if (dl_device_cuda_count(why, sizeof why) < 1)
        return dl_test_no_gpu(why);
    /* NONE: the plain floats of a run onebit sends exact */
    dl_compress_kind kinds[] = {DL_COMPRESS_FP16, DL_COMPRESS_BF16, DL_COMPRESS_INT8,
                                DL_COMPRESS_ONEBIT, DL_COMPRESS_NONE};
    for (int k = 0; k < 5; k++)
        for (int in = 0; in < INPUTS; in++)
            check_kind(kinds[k], in);
    for (int k = 0; k < 5; k++)
        for (int world = 1; world <= 4; world += 3) {
            check_mean(kinds[k], world, 0);
            check_mean(kinds[k], world, 72);
        }
    size_t m, k;
    dl_powersgd_shape(N, &m, &k);
    for (int r = 1; r <= DL_POWERSGD_MAX_RANK; r++) {
        check_powersgd(r, N, m, k, 0); /* a folded bucket: 55 x 55, padded */
        check_powersgd(r, 37 * 40, 37, 40, 5); /* a layer's rows, 20 bytes into each buffer */
    }
    if (failures) {
        fprintf(stderr, "test_compress_cuda: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_compress_cuda: CUDA codecs, means and PowerSGD steps match the C reference\n");
    return 0;
}
