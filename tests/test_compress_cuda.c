/* test_compress_cuda.c: the codecs' CUDA kernels (comm/compress_cuda.h)
 * against the C reference: the same bytes on random, zero, all-equal,
 * extreme, denormal and wide-range inputs (with a partial last block), the
 * same decoded values, and the GPU error-feedback step equal to the CPU's.
 * Without a usable GPU it prints "SKIPPED: ..." and exits 77
 * (DLTRAIN_REQUIRE_GPU=1 makes that a failure). */
#include <cuda_runtime_api.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress_cuda.h"
#include "rng.h"

static int failures;

#define EXPECT(cond, ...)                                                    \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "test_compress_cuda: line %d: ", __LINE__);      \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
            failures++;                                                      \
        }                                                                    \
    } while (0)

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
        bad += exact ? memcmp(&r_gpu[i], &want, sizeof(float)) != 0
                     : !(fabsf(r_gpu[i] - want) <= 1e-6f * (fabsf(x[i]) + fabsf(y_cpu[i])));
    }
    EXPECT(bad == 0, "kind %d input %d: %d residuals differ from the CPU's", (int)kind, input, bad);
    cudaFree(dx), cudaFree(dy), cudaFree(dr), cudaFree(denc);
    free(e_cpu), free(e_gpu);
}

int main(void)
{
    char why[256];
    if (!dl_codec_cuda_usable(why, sizeof why)) {
        const char *req = getenv("DLTRAIN_REQUIRE_GPU");
        printf("SKIPPED: no CUDA GPU (%s)\n", why);
        return req && strcmp(req, "1") == 0 ? 1 : 77;
    }
    dl_compress_kind kinds[] = {DL_COMPRESS_FP16, DL_COMPRESS_BF16, DL_COMPRESS_INT8,
                                DL_COMPRESS_ONEBIT};
    for (int k = 0; k < 4; k++)
        for (int in = 0; in < INPUTS; in++)
            check_kind(kinds[k], in);
    if (failures) {
        fprintf(stderr, "test_compress_cuda: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_compress_cuda: CUDA codecs match the C reference\n");
    return 0;
}
