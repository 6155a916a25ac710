/* device_cuda.cu: the CUDA device table: device creation, memory, the
 * elementwise ops, GEMM through cuBLAS, softmax cross-entropy and SGD.
 * GEMMs live in cuda_gemm.cu; convolution, pooling and batch norm in
 * cuda_conv.cu (cuda_conv1x1.cu, cuda_cudnn.cu), cuda_pool.cu and
 * cuda_norm.cu.  Semantics: runtime/device.h; reference: device_cpu.c.
 *
 * Every op runs in order on the compute stream.  upload and download return
 * when the copy is complete, so host buffers may be reused at once; the
 * batch upload (a copy stream) and the small reads (read_start/finish) are
 * asynchronous through pinned memory.  Softmax cross-entropy: cuda_loss.cu. */
#include "cuda_internal.cuh"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- errors ---------------------------------------------------------------- */

void cuda_fatal(const char *file, int line, const char *call, const char *name, const char *desc)
{
    dl_fail(DL_ERR_DEVICE, "CUDA error at %s:%d: %s: %s: %s", file, line, call, name, desc);
    fprintf(stderr, "dltrain: %s\n", dl_error_message());
    fflush(stderr);
    abort();
}

void cuda_after_launch(dl_device *d, const char *file, int line, const char *kernel)
{
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess && cuda_of(d)->sync_each_launch)
        e = cudaStreamSynchronize(cuda_stream(d));
    if (e != cudaSuccess)
        cuda_fatal(file, line, kernel, cudaGetErrorName(e), cudaGetErrorString(e));
}

/* ---- memory ---------------------------------------------------------------- */

static void *cu_alloc(dl_device *d, size_t bytes, const char *what)
{
    cuda_impl *g = cuda_of(d);
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        (void)cudaGetLastError(); /* an allocation failure is not sticky: clear it */
        size_t free_b = 0, total_b = 0;
        cudaError_t e2 = cudaMemGetInfo(&free_b, &total_b);
        if (e2 != cudaSuccess)
            (void)cudaGetLastError(), free_b = total_b = 0;
        if (e == cudaErrorMemoryAllocation)
            dl_fail(DL_ERR_OOM,
                    "out of GPU memory: cannot allocate %.1f MiB for %s on %s (%.1f of %.1f MiB "
                    "free); try a smaller --batch",
                    bytes / 1048576.0, what ? what : "a buffer", g->name, free_b / 1048576.0,
                    total_b / 1048576.0);
        else
            dl_fail(DL_ERR_DEVICE, "cudaMalloc of %zu bytes for %s on %s failed: %s: %s", bytes,
                    what ? what : "a buffer", g->name, cudaGetErrorName(e),
                    cudaGetErrorString(e));
        return NULL;
    }
    /* zeroed, like the CPU device's memory */
    CUDA_CHECK(cudaMemsetAsync(p, 0, bytes ? bytes : 1, g->stream));
    return p;
}

static void cu_free(dl_device *d, void *p)
{
    (void)d;
    if (p)
        CUDA_CHECK(cudaFree(p));
}

static void cu_upload(dl_device *d, void *dst, const void *src, size_t bytes)
{
    if (!bytes)
        return;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cuda_stream(d)));
    CUDA_CHECK(cudaStreamSynchronize(cuda_stream(d)));
}

static void cu_download(dl_device *d, void *dst, const void *src, size_t bytes)
{
    if (!bytes)
        return;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cuda_stream(d)));
    CUDA_CHECK(cudaStreamSynchronize(cuda_stream(d)));
}

static void cu_sync(dl_device *d) { CUDA_CHECK(cudaStreamSynchronize(cuda_stream(d))); }

/* Small reads (device.h): a copy on the compute stream into pinned slot
 * memory, an event behind it; finishing waits for that event only, not for
 * the work queued after it. */
static void cu_read_start(dl_device *d, int slot, const void *src, size_t bytes)
{
    cuda_impl *g = cuda_of(d);
    if (slot < 0 || slot >= DL_DEVICE_READ_SLOTS || bytes > DL_DEVICE_READ_BYTES)
        cuda_fatal(__FILE__, __LINE__, "read_start", "bad slot or size", "an internal error");
    char *at = (char *)g->read_host + (size_t)slot * DL_DEVICE_READ_BYTES;
    CUDA_CHECK(cudaMemcpyAsync(at, src, bytes, cudaMemcpyDeviceToHost, g->stream));
    CUDA_CHECK(cudaEventRecord(g->read_done[slot], g->stream));
}

static void cu_read_finish(dl_device *d, int slot, void *dst, const void *src, size_t bytes)
{
    cuda_impl *g = cuda_of(d);
    (void)src; /* copied by read_start */
    if (slot < 0 || slot >= DL_DEVICE_READ_SLOTS || bytes > DL_DEVICE_READ_BYTES)
        cuda_fatal(__FILE__, __LINE__, "read_finish", "bad slot or size", "an internal error");
    CUDA_CHECK(cudaEventSynchronize(g->read_done[slot]));
    memcpy(dst, (char *)g->read_host + (size_t)slot * DL_DEVICE_READ_BYTES, bytes);
}

static void cu_mark(dl_device *d, int slot)
{
    cuda_impl *g = cuda_of(d);
    if (slot < 0 || slot >= DL_DEVICE_MARKS)
        return;
    if (!g->marks[slot])
        CUDA_CHECK(cudaEventCreate(&g->marks[slot])); /* timing enabled */
    CUDA_CHECK(cudaEventRecord(g->marks[slot], g->stream));
}

static double cu_mark_ms(dl_device *d, int a, int b)
{
    cuda_impl *g = cuda_of(d);
    if (a < 0 || b < 0 || a >= DL_DEVICE_MARKS || b >= DL_DEVICE_MARKS || !g->marks[a] ||
        !g->marks[b])
        return 0;
    float ms = 0;
    CUDA_CHECK(cudaEventSynchronize(g->marks[b]));
    CUDA_CHECK(cudaEventElapsedTime(&ms, g->marks[a], g->marks[b]));
    return ms;
}

/* The input pipeline (device.h):
 *   host:     memcpy into pinned[b] (after copied[b]: the copy two calls ago)
 *   copy:     wait(fence of the previous call) H2D(pinned[b] -> dst) [copied[b]]
 *   compute:  ... step k-1 ... | fence | ... step k ... wait(copied[b]) step k+1
 * The network sizes the staging buffers at start-up (reserve_batch); they
 * grow here only for a caller that did not. */
static void pinned_room(cuda_impl *g, int b, size_t need)
{
    CUDA_CHECK(cudaEventSynchronize(g->copied[b])); /* pinned[b] is free again */
    if (need > g->pinned_cap[b]) {
        if (g->pinned[b])
            CUDA_CHECK(cudaFreeHost(g->pinned[b]));
        g->pinned[b] = NULL, g->pinned_cap[b] = 0;
        CUDA_CHECK(cudaMallocHost(&g->pinned[b], need));
        g->pinned_cap[b] = need;
    }
}

static void cu_reserve_batch(dl_device *d, size_t bytes)
{
    for (int b = 0; b < 2; b++)
        pinned_room(cuda_of(d), b, bytes);
}

static void cu_upload_batch(dl_device *d, int buf, void *dst, const dl_host_part *parts,
                            int n_parts)
{
    cuda_impl *g = cuda_of(d);
    int b = buf & 1;
    size_t need = 0;
    for (int i = 0; i < n_parts; i++)
        need = parts[i].dst_off + parts[i].bytes > need ? parts[i].dst_off + parts[i].bytes : need;
    pinned_room(g, b, need);
    for (int i = 0; i < n_parts; i++)
        memcpy((char *)g->pinned[b] + parts[i].dst_off, parts[i].src, parts[i].bytes);
    if (!g->fence_recorded) { /* first batch: after everything queued so far (alloc's memsets) */
        CUDA_CHECK(cudaEventRecord(g->fence, g->stream));
        g->fence_recorded = 1;
    }
    CUDA_CHECK(cudaStreamWaitEvent(g->copy_stream, g->fence, 0));
    CUDA_CHECK(cudaEventRecord(g->fence, g->stream));
    for (int i = 0; i < n_parts; i++)
        if (parts[i].bytes)
            CUDA_CHECK(cudaMemcpyAsync((char *)dst + parts[i].dst_off,
                                       (char *)g->pinned[b] + parts[i].dst_off, parts[i].bytes,
                                       cudaMemcpyHostToDevice, g->copy_stream));
    CUDA_CHECK(cudaEventRecord(g->copied[b], g->copy_stream));
    CUDA_CHECK(cudaStreamWaitEvent(g->stream, g->copied[b], 0));
    if (g->sync_each_launch)
        CUDA_CHECK(cudaStreamSynchronize(g->stream));
}

/* ---- elementwise ------------------------------------------------------------- */

__global__ void fill_kernel(float *x, size_t n, float v)
{
    GRID_STRIDE_LOOP(i, n)
    x[i] = v;
}

__global__ void add_to_kernel(float *dst, const float *src, size_t n)
{
    GRID_STRIDE_LOOP(i, n)
    dst[i] += src[i];
}

__global__ void scale_kernel(float *x, size_t n, float s)
{
    GRID_STRIDE_LOOP(i, n)
    x[i] *= s;
}

__global__ void relu_forward_kernel(const float *x, float *y, size_t n)
{
    GRID_STRIDE_LOOP(i, n)
    y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

/* acc 0 never reads dx (it may hold garbage, NaN included) */
__global__ void relu_backward_kernel(const float *y, const float *dy, float *dx, size_t n, int acc)
{
    GRID_STRIDE_LOOP(i, n)
    {
        float g = y[i] > 0.0f ? dy[i] : 0.0f;
        dx[i] = acc ? dx[i] + g : g;
    }
}

__global__ void add_kernel(const float *a, const float *b, float *y, size_t n)
{
    GRID_STRIDE_LOOP(i, n)
    y[i] = a[i] + b[i];
}

static void cu_fill(dl_device *d, float *x, size_t n, float value)
{
    if (n)
        CUDA_LAUNCH(d, fill_kernel, cuda_grid(n), CUDA_THREADS, 0, x, n, value);
}

static void cu_copy(dl_device *d, float *dst, const float *src, size_t n, int acc)
{
    if (!n)
        return;
    if (acc)
        CUDA_LAUNCH(d, add_to_kernel, cuda_grid(n), CUDA_THREADS, 0, dst, src, n);
    else if (dst != src)
        CUDA_CHECK(cudaMemcpyAsync(dst, src, sizeof(float) * n, cudaMemcpyDeviceToDevice,
                                   cuda_stream(d)));
}

static void cu_scale(dl_device *d, float *x, size_t n, float s)
{
    if (n)
        CUDA_LAUNCH(d, scale_kernel, cuda_grid(n), CUDA_THREADS, 0, x, n, s);
}

static void cu_relu_forward(dl_device *d, const float *x, float *y, size_t n)
{
    if (n)
        CUDA_LAUNCH(d, relu_forward_kernel, cuda_grid(n), CUDA_THREADS, 0, x, y, n);
}

static void cu_relu_backward(dl_device *d, const float *y, const float *dy, float *dx, size_t n,
                             int acc)
{
    if (n)
        CUDA_LAUNCH(d, relu_backward_kernel, cuda_grid(n), CUDA_THREADS, 0, y, dy, dx, n, acc);
}

static void cu_add_forward(dl_device *d, const float *a, const float *b, float *y, size_t n)
{
    if (n)
        CUDA_LAUNCH(d, add_kernel, cuda_grid(n), CUDA_THREADS, 0, a, b, y, n);
}

/* ---- SGD (PyTorch semantics, as cpu_sgd_update) -------------------------------- */

__global__ void sgd_kernel(dl_sgd_args a, float *params, const float *grads, float *velocity,
                           size_t n)
{
    GRID_STRIDE_LOOP(i, n)
    {
        float g = grads[i] + a.weight_decay * params[i];
        float v = a.momentum * velocity[i] + g;
        velocity[i] = v;
        params[i] -= a.lr * (a.nesterov ? g + a.momentum * v : v);
    }
}

static void cu_sgd_update(dl_device *d, const dl_sgd_args *a, float *params, const float *grads,
                          float *velocity, size_t n)
{
    if (n)
        CUDA_LAUNCH(d, sgd_kernel, cuda_grid(n), CUDA_THREADS, 0, *a, params, grads, velocity, n);
}

/* ---- creation ------------------------------------------------------------------ */

static dl_device *open_failed(char *why, size_t why_size, const char *fmt, ...) DL_PRINTF(3, 4);

static dl_device *open_failed(char *why, size_t why_size, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (why && why_size)
        snprintf(why, why_size, "%s", msg);
    dl_fail(DL_ERR_DEVICE, "%s", msg);
    return NULL;
}

static void impl_release(cuda_impl *g)
{
    if (g->bn_partials)
        cudaFree(g->bn_partials);
    if (g->bf16_scratch)
        cudaFree(g->bf16_scratch);
    for (int i = 0; i < DL_DEVICE_READ_SLOTS; i++)
        if (g->read_done[i])
            cudaEventDestroy(g->read_done[i]);
    if (g->read_host)
        cudaFreeHost(g->read_host);
    for (int b = 0; b < 2; b++) {
        if (g->pinned[b])
            cudaFreeHost(g->pinned[b]);
        if (g->copied[b])
            cudaEventDestroy(g->copied[b]);
    }
    if (g->fence)
        cudaEventDestroy(g->fence);
    for (int i = 0; i < DL_DEVICE_MARKS; i++)
        if (g->marks[i])
            cudaEventDestroy(g->marks[i]);
    if (g->copy_stream)
        cudaStreamDestroy(g->copy_stream);
    if (g->blas)
        cublasDestroy(g->blas);
    if (g->stream)
        cudaStreamDestroy(g->stream);
    (void)cudaGetLastError();
    free(g);
}

/* The NVIDIA driver a CUDA major version needs (release notes, table 3). */
static int min_driver_for(int cuda_major)
{
    return cuda_major >= 13 ? 580 : cuda_major == 12 ? 525 : 450;
}

/* Why cudaGetDeviceCount failed, in words.  "no CUDA GPU: " starts the
 * reasons that mean there is nothing to run on (tests SKIP on those); a
 * driver too old for this build is NOT one of them: a GPU may well be there,
 * and a GPU test that skipped on it would be a false green. */
static void count_failed(cudaError_t e, char *why, size_t why_size)
{
    int driver = 0, runtime = 0;
    (void)cudaDriverGetVersion(&driver); /* 0 when no driver is installed */
    (void)cudaRuntimeGetVersion(&runtime);
    if (e == cudaErrorInsufficientDriver && driver > 0)
        open_failed(why, why_size, "CUDA driver too old: it supports CUDA %d.%d, this build "
                    "needs CUDA %d.%d (NVIDIA driver >= %d for CUDA %d)", driver / 1000,
                    driver % 1000 / 10, runtime / 1000, runtime % 1000 / 10,
                    min_driver_for(runtime / 1000), runtime / 1000);
    else if (e == cudaErrorInsufficientDriver || e == cudaErrorStubLibrary)
        open_failed(why, why_size, "no CUDA GPU: no NVIDIA driver installed (%s)",
                    cudaGetErrorName(e));
    else if (e == cudaErrorNoDevice)
        open_failed(why, why_size, "no CUDA GPU: %s", cudaGetErrorString(e));
    else /* a driver and GPU in a bad state: not a reason to skip */
        open_failed(why, why_size, "CUDA cannot count the GPUs: %s: %s", cudaGetErrorName(e),
                    cudaGetErrorString(e));
}

extern "C" int dl_device_cuda_count(char *why, size_t why_size)
{
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        count_failed(e, why, why_size);
        return -1;
    }
    if (count < 1) {
        open_failed(why, why_size, "no CUDA GPU: no device visible");
        return -1;
    }
    return count;
}

extern "C" dl_device *dl_device_cuda(int gpu_index, char *why, size_t why_size)
{
    int count = dl_device_cuda_count(why, why_size);
    cudaError_t e = cudaSuccess;
    if (count < 0)
        return NULL;
    if (gpu_index < 0 || gpu_index >= count)
        return open_failed(why, why_size, "CUDA GPU %d requested, but %d %s visible", gpu_index,
                           count, count == 1 ? "is" : "are");

    cuda_impl *g = (cuda_impl *)calloc(1, sizeof *g);
    dl_device *d = (dl_device *)calloc(1, sizeof *d);
    if (!g || !d) {
        free(g), free(d);
        return open_failed(why, why_size, "out of host memory opening CUDA GPU %d", gpu_index);
    }
    g->gpu = gpu_index;
    const char *env = getenv("DLTRAIN_CUDA_SYNC");
    g->sync_each_launch = env && *env && strcmp(env, "0") != 0;

    cudaDeviceProp prop;
    cublasStatus_t s = CUBLAS_STATUS_SUCCESS;
    const char *step = "cudaSetDevice";
    if ((e = cudaSetDevice(gpu_index)) != cudaSuccess)
        goto cuda_failed;
    step = "cudaGetDeviceProperties";
    if ((e = cudaGetDeviceProperties(&prop, gpu_index)) != cudaSuccess)
        goto cuda_failed;
    step = "creating the CUDA context";
    if ((e = cudaFree(0)) != cudaSuccess)
        goto cuda_failed;
    g->sm_count = prop.multiProcessorCount;
    step = "cudaMalloc (batch-norm partial sums)";
    if ((e = cudaMalloc((void **)&g->bn_partials, CUDA_BN_PARTIALS * sizeof(double))) !=
        cudaSuccess)
        goto cuda_failed;
    step = "cudaStreamCreateWithFlags";
    if ((e = cudaStreamCreateWithFlags(&g->stream, cudaStreamNonBlocking)) != cudaSuccess ||
        (e = cudaStreamCreateWithFlags(&g->copy_stream, cudaStreamNonBlocking)) != cudaSuccess)
        goto cuda_failed;
    step = "cudaEventCreateWithFlags";
    if ((e = cudaEventCreateWithFlags(&g->fence, cudaEventDisableTiming)) != cudaSuccess ||
        (e = cudaEventCreateWithFlags(&g->copied[0], cudaEventDisableTiming)) != cudaSuccess ||
        (e = cudaEventCreateWithFlags(&g->copied[1], cudaEventDisableTiming)) != cudaSuccess)
        goto cuda_failed;
    for (int i = 0; i < DL_DEVICE_READ_SLOTS; i++)
        if ((e = cudaEventCreateWithFlags(&g->read_done[i], cudaEventDisableTiming)) !=
            cudaSuccess)
            goto cuda_failed;
    step = "cudaMallocHost (read slots)";
    if ((e = cudaMallocHost(&g->read_host, DL_DEVICE_READ_SLOTS * DL_DEVICE_READ_BYTES)) !=
        cudaSuccess)
        goto cuda_failed;
    if ((s = cublasCreate(&g->blas)) != CUBLAS_STATUS_SUCCESS ||
        (s = cublasSetStream(g->blas, g->stream)) != CUBLAS_STATUS_SUCCESS ||
        (s = cublasSetMathMode(g->blas, CUBLAS_DEFAULT_MATH)) != CUBLAS_STATUS_SUCCESS) {
        free(d);
        impl_release(g);
        return open_failed(why, why_size, "cuBLAS initialisation failed on CUDA GPU %d: %s: %s",
                           gpu_index, cublasGetStatusName(s), cublasGetStatusString(s));
    }
    snprintf(g->name, sizeof g->name, "cuda:%d (%.80s, sm_%d%d)", gpu_index, prop.name, prop.major,
             prop.minor);

    d->name = g->name;
    d->kind = DL_DEVICE_CUDA;
    d->impl = g;
    d->alloc = cu_alloc;
    d->free = cu_free;
    d->upload = cu_upload;
    d->download = cu_download;
    d->sync = cu_sync;
    d->read_start = cu_read_start;
    d->read_finish = cu_read_finish;
    d->mark = cu_mark;
    d->mark_ms = cu_mark_ms;
    d->upload_batch = cu_upload_batch;
    d->reserve_batch = cu_reserve_batch;
    d->fill = cu_fill;
    d->copy = cu_copy;
    d->scale = cu_scale;
    d->gemm = cuda_gemm_table;
    d->bias_add = cuda_bias_add;
    d->bias_grad = cuda_bias_grad;
    d->conv_workspace = cuda_conv_workspace_any;
    d->conv_forward = cuda_conv_forward_any;
    d->conv_backward = cuda_conv_backward_any;
    d->maxpool_forward = cuda_maxpool_forward;
    d->maxpool_backward = cuda_maxpool_backward;
    d->avgpool_forward = cuda_avgpool_forward;
    d->avgpool_backward = cuda_avgpool_backward;
    d->relu_forward = cu_relu_forward;
    d->relu_backward = cu_relu_backward;
    d->add_forward = cu_add_forward;
    d->bn_forward_train = cuda_bn_forward_train;
    d->bn_forward_eval = cuda_bn_forward_eval;
    d->bn_backward = cuda_bn_backward;
    d->xent_forward = cuda_xent_forward;
    d->xent_backward = cuda_xent_backward;
    d->xent_stats = cuda_xent_stats;
    d->sgd_update = cu_sgd_update;
    return d;

cuda_failed:
    (void)cudaGetLastError();
    free(d);
    impl_release(g);
    return open_failed(why, why_size, "cannot open CUDA GPU %d: %s: %s", gpu_index, step,
                       cudaGetErrorString(e));
}

extern "C" void dl_device_cuda_destroy(dl_device *d)
{
    if (!d)
        return;
    cuda_impl *g = cuda_of(d);
    CUDA_CHECK(cudaStreamSynchronize(g->stream));
    CUDA_CHECK(cudaStreamSynchronize(g->copy_stream));
    cuda_cudnn_detach(d);
    impl_release(g);
    free(d);
}

extern "C" dl_status dl_device_cuda_set_precision(dl_device *d, dl_cuda_precision p)
{
    cuda_impl *g = cuda_of(d);
    int tf32 = p == DL_CUDA_TF32 || p == DL_CUDA_TF32_CONV;
    cublasStatus_t s = cublasSetMathMode(g->blas, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                       : CUBLAS_DEFAULT_MATH);
    if (s != CUBLAS_STATUS_SUCCESS)
        return dl_fail(DL_ERR_DEVICE, "cublasSetMathMode: %s: %s", cublasGetStatusName(s),
                       cublasGetStatusString(s));
    g->tf32 = tf32;
    g->fc_fp32 = p == DL_CUDA_TF32_CONV;
    g->bf16 = p == DL_CUDA_BF16;
    return DL_OK;
}

extern "C" dl_status dl_device_cuda_set_tf32(dl_device *d, int enable)
{
    return dl_device_cuda_set_precision(d, enable ? DL_CUDA_TF32 : DL_CUDA_FP32);
}

extern "C" dl_status dl_device_cuda_set_conv(dl_device *d, dl_cuda_conv conv)
{
    if (conv == DL_CUDA_CONV_GEMM) {
        cuda_cudnn_detach(d);
        return DL_OK;
    }
    if (cuda_of(d)->bf16)
        return dl_fail(DL_ERR_DEVICE, "cuDNN convolutions are fp32 or tf32 here; bf16 runs on "
                                      "the GEMM path (--conv gemm or auto)");
    char why[512];
    if (cuda_cudnn_attach(d, why, sizeof why) != 0)
        return dl_fail(DL_ERR_DEVICE, "%s", why);
    return DL_OK;
}

extern "C" size_t dl_device_cuda_cudnn_version(void) { return cuda_cudnn_version(); }

extern "C" void dl_device_cuda_set_conv_chunk(dl_device *d, size_t floats)
{
    cuda_of(d)->conv_chunk_floats = floats;
}

extern "C" void *dl_device_cuda_stream(dl_device *d) { return (void *)cuda_stream(d); }

extern "C" int dl_device_cuda_ordinal(dl_device *d) { return cuda_of(d)->gpu; }
