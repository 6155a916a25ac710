/* cuda_internal.cuh: what the CUDA device files share: the backend state,
 * the error-checking macros, launch helpers and a deterministic block
 * reduction.  Not a public header (see device_cuda.h).
 *
 * Error policy (runtime/common.h): library code reports, launch/ decides.
 * Ops of the table return void, so a failing CUDA or cuBLAS call inside an op
 * is fatal: cuda_fatal() records the message with dl_fail(DL_ERR_DEVICE),
 * prints "dltrain: CUDA error at FILE:LINE: CALL: NAME: DESCRIPTION" to
 * stderr and aborts.  Only device creation and alloc, which can return an
 * error, return one (NULL after dl_fail).
 *
 * Kernel faults surface asynchronously, at the next synchronising call, and
 * are then reported at that call's line.  Set DLTRAIN_CUDA_SYNC=1 in the
 * environment to synchronise after every launch and report the kernel that
 * faulted (slow; for debugging). */
#ifndef DL_CUDA_INTERNAL_CUH
#define DL_CUDA_INTERNAL_CUH

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <stddef.h>
#include <stdint.h>

extern "C" {
#include "common.h"
#include "device.h"
}
#include "device_cuda.h"

/* Batch norm (cuda_norm.cu) splits each channel over at most
 * CUDA_BN_MAX_SPLIT blocks and launches at most CUDA_BN_GROUP channels at a
 * time; their partial sums (two per block, one more per channel) live in a
 * buffer of CUDA_BN_PARTIALS doubles allocated with the device (4 MiB). */
#define CUDA_BN_MAX_SPLIT 64
#define CUDA_BN_GROUP 4096
#define CUDA_BN_PARTIALS ((size_t)(2 * CUDA_BN_MAX_SPLIT + 1) * CUDA_BN_GROUP)

typedef struct cuda_impl {
    int gpu;              /* CUDA device ordinal */
    cudaStream_t stream;  /* every op runs on this stream, in order */
    cublasHandle_t blas;  /* bound to `stream` */
    int tf32;             /* see dl_device_cuda_set_precision: convolutions may use TF32 */
    int fc_fp32;          /* DL_CUDA_TF32_CONV: the table's gemm runs in strict fp32 */
    int bf16;
    __nv_bfloat16 *bf16_scratch; /* both GEMM operands rounded to bf16; sized at start-up */
    size_t bf16_cap;             /* elements */
    int sync_each_launch; /* DLTRAIN_CUDA_SYNC=1 */
    int sm_count;         /* multiprocessors: sizes the batch-norm grids */
    double *bn_partials;  /* CUDA_BN_PARTIALS doubles: batch norm's per-block sums */
    void *cudnn;          /* cuDNN state (cuda_cudnn.cu) while convolutions use it, else NULL */
    size_t conv_chunk_floats; /* convolution workspace per chunk; 0 = the default */
    cudaEvent_t marks[DL_DEVICE_MARKS]; /* device.h mark: created on first use */
    char name[128];       /* "cuda:0 (NVIDIA H100 80GB HBM3)" */
    /* input pipeline (upload_batch) */
    cudaStream_t copy_stream;
    cudaEvent_t fence;        /* compute stream at the last upload_batch call */
    int fence_recorded;
    cudaEvent_t copied[2];    /* the copy into buffer b is done */
    void *pinned[2];          /* staging for buffer b, sized by reserve_batch at start-up */
    size_t pinned_cap[2];
    /* small reads (read_start/finish): DL_DEVICE_READ_SLOTS slots of
     * DL_DEVICE_READ_BYTES pinned bytes, each with the event of its copy */
    void *read_host;
    cudaEvent_t read_done[DL_DEVICE_READ_SLOTS];
} cuda_impl;

static inline cuda_impl *cuda_of(dl_device *d) { return (cuda_impl *)d->impl; }
static inline cudaStream_t cuda_stream(dl_device *d) { return cuda_of(d)->stream; }

/* Records, prints and aborts; never returns. */
[[noreturn]] void cuda_fatal(const char *file, int line, const char *call, const char *name,
                             const char *desc);
/* After a launch: report a launch error (bad configuration) and, under
 * DLTRAIN_CUDA_SYNC=1, any fault of the kernel itself. */
void cuda_after_launch(dl_device *d, const char *file, int line, const char *kernel);

#define CUDA_CHECK(call)                                                                         \
    do {                                                                                         \
        cudaError_t e_ = (call);                                                                 \
        if (e_ != cudaSuccess)                                                                   \
            cuda_fatal(__FILE__, __LINE__, #call, cudaGetErrorName(e_), cudaGetErrorString(e_));  \
    } while (0)

#define CUBLAS_CHECK(call)                                                                       \
    do {                                                                                         \
        cublasStatus_t s_ = (call);                                                              \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                         \
            cuda_fatal(__FILE__, __LINE__, #call, cublasGetStatusName(s_),                       \
                       cublasGetStatusString(s_));                                               \
    } while (0)

/* CUDA_LAUNCH(d, kernel, grid, block, shared_bytes, args...) on d's stream. */
#define CUDA_LAUNCH(d, kernel, grid, block, shmem, ...)                                          \
    do {                                                                                         \
        kernel<<<(grid), (block), (shmem), cuda_stream(d)>>>(__VA_ARGS__);                       \
        cuda_after_launch((d), __FILE__, __LINE__, #kernel);                                     \
    } while (0)

/* Elementwise kernels: 256 threads, grid-stride loops over size_t indices. */
#define CUDA_THREADS 256
static inline unsigned cuda_grid(size_t n)
{
    size_t blocks = (n + CUDA_THREADS - 1) / CUDA_THREADS;
    const size_t max_blocks = (size_t)1 << 20; /* the loops stride over the rest */
    return (unsigned)(blocks < 1 ? 1 : blocks > max_blocks ? max_blocks : blocks);
}
#define GRID_STRIDE_LOOP(i, n)                                                                   \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                      \
         i += (size_t)blockDim.x * gridDim.x)

/* Sum of one value per thread over a block of B threads (B a power of two),
 * returned to every thread.  A fixed tree, so the result does not depend on
 * scheduling: reductions built on it are deterministic run to run.  `sh`
 * holds B doubles of shared memory and may be reused after the call. */
template <int B>
__device__ __forceinline__ double block_sum(double v, double *sh)
{
    int t = threadIdx.x;
    sh[t] = v;
    __syncthreads();
    for (int s = B / 2; s > 0; s >>= 1) {
        if (t < s)
            sh[t] += sh[t + s];
        __syncthreads();
    }
    double r = sh[0];
    __syncthreads();
    return r;
}

/* ---- ops implemented across the cuda_*.cu files ---------------------------- */

void cuda_gemm(dl_device *d, int trans_a, int trans_b, int m, int n, int k, float alpha,
               const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);

/* The table's gemm: cuda_gemm, in strict fp32 under DL_CUDA_TF32_CONV. */
void cuda_gemm_table(dl_device *d, int trans_a, int trans_b, int m, int n, int k, float alpha,
                     const float *a, int lda, const float *b, int ldb, float beta, float *c,
                     int ldc);
/* Grows the bf16 GEMM operand scratch to `elements` now (start-up). */
void cuda_bf16_reserve(dl_device *d, size_t elements);
/* The bf16 scratch, at least `elements` long (sized at start-up by the
 * convolutions' workspace queries; cuda_gemm's bf16 path uses it too, so it
 * holds a caller's operands only until its next cuda_gemm call). */
__nv_bfloat16 *cuda_bf16_scratch(dl_device *d, size_t elements);
/* y[0..n) = x rounded to bf16 (to nearest even). */
void cuda_to_bf16(dl_device *d, const float *x, __nv_bfloat16 *y, size_t n);
/* cuda_gemm's bf16 GEMM on operands already in bf16 (fp32 accumulation and
 * output), whatever the device's precision. */
void cuda_gemm_bf16(dl_device *d, int trans_a, int trans_b, int m, int n, int k, float alpha,
                    const __nv_bfloat16 *a, int lda, const __nv_bfloat16 *b, int ldb, float beta,
                    float *c, int ldc);
/* cuda_gemm on `batch` operands at base + j * stride (stride 0: shared) */
void cuda_gemm_batched(dl_device *d, int trans_a, int trans_b, int m, int n, int k, float alpha,
                       const float *a, int lda, long long stride_a, const float *b, int ldb,
                       long long stride_b, float beta, float *c, int ldc, long long stride_c,
                       int batch);

void cuda_bias_add(dl_device *d, float *y, const float *b, int n, int c, int hw);
void cuda_bias_grad(dl_device *d, const float *dy, float *db, int n, int c, int hw);

size_t cuda_conv_workspace(dl_device *d, const dl_conv_desc *c);
void cuda_conv_forward(dl_device *d, const dl_conv_desc *c, const float *x, const float *w,
                       const float *bias, float *y, float *ws);
void cuda_conv_backward(dl_device *d, const dl_conv_desc *c, const float *x, const float *w,
                        const float *dy, float *dx, int acc, float *dw, float *db, float *ws);

/* The table's GEMM-path convolution (cuda_conv1x1.cu): 1x1 stride-1
 * unpadded convolutions as direct batched GEMMs on NCHW, others through
 * cuda_conv_forward/backward (im2col).  The workspace query also sizes the
 * bf16 operand scratch for the shape's GEMMs under DL_CUDA_BF16. */
size_t cuda_conv_workspace_any(dl_device *d, const dl_conv_desc *c);
void cuda_conv_forward_any(dl_device *d, const dl_conv_desc *c, const float *x, const float *w,
                           const float *bias, float *y, float *ws);
void cuda_conv_backward_any(dl_device *d, const dl_conv_desc *c, const float *x, const float *w,
                            const float *dy, float *dx, int acc, float *dw, float *db, float *ws);

void cuda_maxpool_forward(dl_device *d, const dl_pool_desc *p, const float *x, float *y,
                          int32_t *argmax);
void cuda_maxpool_backward(dl_device *d, const dl_pool_desc *p, const float *dy,
                           const int32_t *argmax, float *dx, int acc);
void cuda_avgpool_forward(dl_device *d, const dl_pool_desc *p, const float *x, float *y);
void cuda_avgpool_backward(dl_device *d, const dl_pool_desc *p, const float *dy, float *dx,
                           int acc);

void cuda_xent_forward(dl_device *d, const float *logits, const int32_t *labels, float *probs,
                       float *loss, int n, int classes);
void cuda_xent_backward(dl_device *d, const float *probs, const int32_t *labels, float *dlogits,
                        int n, int classes);
void cuda_xent_stats(dl_device *d, const float *probs, const float *loss, const int32_t *labels,
                     int n, int classes, double *out);

void cuda_bn_forward_train(dl_device *d, const dl_bn_desc *b, const float *x, const float *gamma,
                           const float *beta, float *y, float *mean, float *invstd,
                           float *running_mean, float *running_var);
void cuda_bn_forward_eval(dl_device *d, const dl_bn_desc *b, const float *x, const float *gamma,
                          const float *beta, float *y, const float *running_mean,
                          const float *running_var);
void cuda_bn_backward(dl_device *d, const dl_bn_desc *b, const float *x, const float *gamma,
                      const float *beta, const float *mean, const float *invstd, const float *dy,
                      float *dx, int acc, float *dgamma, float *dbeta);

/* cuDNN convolutions (cuda_cudnn.cu; cuda_nocudnn.cu in builds without
 * cuDNN).  attach creates the handle on the compute stream and puts the
 * cuDNN convolution ops in the table: 0, or -1 with a one-line reason;
 * detach puts the GEMM ops back and releases everything.  version: the
 * loaded library's (0 without cuDNN). */
int cuda_cudnn_attach(dl_device *d, char *why, size_t why_size);
void cuda_cudnn_detach(dl_device *d);
size_t cuda_cudnn_version(void);

#endif
