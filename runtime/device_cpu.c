/* device_cpu.c: the CPU device table (the reference every other device is
 * tested against).  Memory is host memory; upload/download are copies. */
#include "cpu_ops.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#ifdef DLTRAIN_HAVE_BLAS
void openblas_set_num_threads(int num_threads);
#endif

static int cpu_thread_count = 1;

int cpu_threads(void) { return cpu_thread_count; }

static void *cpu_alloc(dl_device *d, size_t bytes, const char *what)
{
    (void)d;
    return dl_alloc_zero(bytes, what);
}

static void cpu_free(dl_device *d, void *p)
{
    (void)d;
    free(p);
}

static void cpu_memcpy(dl_device *d, void *dst, const void *src, size_t bytes)
{
    (void)d;
    if (bytes)
        memcpy(dst, src, bytes);
}

static void cpu_sync(dl_device *d) { (void)d; }

static void cpu_fill(dl_device *d, float *x, size_t n, float value)
{
    (void)d;
#pragma omp parallel for schedule(static) if (n > CPU_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++)
        x[i] = value;
}

static void cpu_copy(dl_device *d, float *dst, const float *src, size_t n, int acc)
{
    (void)d;
#pragma omp parallel for schedule(static) if (n > CPU_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++)
        dst[i] = acc ? dst[i] + src[i] : src[i];
}

static void cpu_scale(dl_device *d, float *x, size_t n, float s)
{
    (void)d;
#pragma omp parallel for schedule(static) if (n > CPU_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++)
        x[i] *= s;
}

static void cpu_relu_forward(dl_device *d, const float *x, float *y, size_t n)
{
    (void)d;
#pragma omp parallel for schedule(static) if (n > CPU_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

static void cpu_relu_backward(dl_device *d, const float *y, const float *dy, float *dx,
                              size_t n, int acc)
{
    (void)d;
#pragma omp parallel for schedule(static) if (n > CPU_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) {
        float g = y[i] > 0.0f ? dy[i] : 0.0f;
        dx[i] = acc ? dx[i] + g : g;
    }
}

static void cpu_add_forward(dl_device *d, const float *a, const float *b, float *y, size_t n)
{
    (void)d;
#pragma omp parallel for schedule(static) if (n > CPU_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++)
        y[i] = a[i] + b[i];
}

static void cpu_upload_batch(dl_device *d, int buf, void *dst, const dl_host_part *parts,
                             int n_parts)
{
    (void)d, (void)buf;
    for (int i = 0; i < n_parts; i++)
        memcpy((char *)dst + parts[i].dst_off, parts[i].src, parts[i].bytes);
}

/* The CPU's ops are done when they return, so there is nothing to wait for:
 * the read happens in read_finish, from the device memory itself. */
static void cpu_read_start(dl_device *d, int slot, const void *src, size_t bytes)
{
    (void)d, (void)slot, (void)src, (void)bytes;
}

static void cpu_read_finish(dl_device *d, int slot, void *dst, const void *src, size_t bytes)
{
    (void)d, (void)slot;
    memcpy(dst, src, bytes);
}

dl_device *dl_device_cpu(int threads)
{
    static dl_device cpu = {
        .name = "cpu",
        .alloc = cpu_alloc,
        .free = cpu_free,
        .upload = cpu_memcpy,
        .download = cpu_memcpy,
        .sync = cpu_sync,
        .read_start = cpu_read_start,
        .read_finish = cpu_read_finish,
        .upload_batch = cpu_upload_batch,
        .fill = cpu_fill,
        .copy = cpu_copy,
        .scale = cpu_scale,
        .gemm = cpu_gemm,
        .bias_add = cpu_bias_add,
        .bias_grad = cpu_bias_grad,
        .conv_workspace = cpu_conv_workspace,
        .conv_forward = cpu_conv_forward,
        .conv_backward = cpu_conv_backward,
        .maxpool_forward = cpu_maxpool_forward,
        .maxpool_backward = cpu_maxpool_backward,
        .avgpool_forward = cpu_avgpool_forward,
        .avgpool_backward = cpu_avgpool_backward,
        .relu_forward = cpu_relu_forward,
        .relu_backward = cpu_relu_backward,
        .add_forward = cpu_add_forward,
        .bn_forward_train = cpu_bn_forward_train,
        .bn_forward_eval = cpu_bn_forward_eval,
        .bn_backward = cpu_bn_backward,
        .xent_forward = cpu_xent_forward,
        .xent_backward = cpu_xent_backward,
        .xent_stats = cpu_xent_stats,
        .sgd_update = cpu_sgd_update,
    };
    if (threads > 0) {
        omp_set_num_threads(threads);
#ifdef DLTRAIN_HAVE_BLAS
        /* OpenBLAS built for OpenMP runs single-threaded when called inside
         * a parallel region, which is where the large GEMMs are (cpu_gemm.c) */
        openblas_set_num_threads(threads);
#endif
    }
    cpu_thread_count = omp_get_max_threads();
    return &cpu;
}
