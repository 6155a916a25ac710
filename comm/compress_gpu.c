/* compress_gpu.c: the compressor's table for gradients in GPU memory
 * (compress_ops.h).  Memory comes from the CUDA device table (its alloc
 * zeroes on the compute stream; upload and download wait for the stream),
 * and every step is a kernel of compress_cuda.h queued on the device's
 * compute stream, behind backward's writes to the bucket and ahead of the
 * backend's collective, which NCCL and the staged-MPI backend order after
 * the compute stream's work by events (comm_nccl.c, comm_staged.c).  So the
 * host never waits here: a bucket's wait in those backends makes the compute
 * stream wait for the exchanged bytes, and the decode that follows is queued
 * behind it. */
#include "compress_cuda.h"
#include "compress_ops.h"
#include "device_cuda.h"

static void *stream_of(dl_compressor *c) { return dl_device_cuda_stream(c->dev); }

static void *gpu_alloc(dl_compressor *c, size_t bytes, const char *what)
{
    return c->dev->alloc(c->dev, bytes ? bytes : 1, what);
}

static void gpu_release(dl_compressor *c, void *p)
{
    if (p)
        c->dev->free(c->dev, p);
}

static void gpu_to_host(dl_compressor *c, void *host, const void *src, size_t bytes)
{
    c->dev->download(c->dev, host, src, bytes);
}

static void gpu_from_host(dl_compressor *c, void *dst, const void *host, size_t bytes)
{
    c->dev->upload(c->dev, dst, host, bytes);
}

static dl_status gpu_zero(dl_compressor *c, float *x, size_t n)
{
    if (n)
        c->dev->fill(c->dev, x, n, 0.0f);
    return DL_OK;
}

/* on the compute stream, like the kernels around it */
static void gpu_copy(dl_compressor *c, void *dst, const void *src, size_t bytes)
{
    if (bytes)
        c->dev->copy(c->dev, dst, src, bytes / sizeof(float), 0);
}

static dl_status gpu_feedback(dl_compressor *c, dl_compress_kind kind, float *x, float *residual,
                              size_t n, void *enc)
{
    return dl_codec_feedback_cuda(kind, x, residual, n, enc, stream_of(c));
}

static dl_status gpu_mean(dl_compressor *c, dl_compress_kind kind, const unsigned char *shards,
                          size_t stride, size_t n, int world, float *x)
{
    return dl_codec_mean_cuda(kind, shards, stride, n, world, x, stream_of(c));
}

static dl_status gpu_project(dl_compressor *c, const float *x, const float *residual, size_t n,
                             float *mat, float *q, float *p, size_t m, size_t k, int r)
{
    return dl_powersgd_project_cuda(x, residual, n, mat, q, p, m, k, r, stream_of(c));
}

static dl_status gpu_back(dl_compressor *c, const float *mat, float *p, float *q, size_t m,
                          size_t k, int r)
{
    return dl_powersgd_back_cuda(mat, p, q, m, k, r, stream_of(c));
}

static dl_status gpu_apply(dl_compressor *c, const float *mat, const float *p, const float *q,
                           float *x, float *residual, size_t n, size_t m, size_t k, int r)
{
    return dl_powersgd_apply_cuda(mat, p, q, x, residual, n, m, k, r, stream_of(c));
}

const dl_compress_ops *dl_compress_cuda_ops(void)
{
    static const dl_compress_ops ops = {
        .where = "cuda", .alloc = gpu_alloc, .release = gpu_release, .to_host = gpu_to_host,
        .from_host = gpu_from_host, .zero = gpu_zero, .copy = gpu_copy, .feedback = gpu_feedback, .mean = gpu_mean,
        .psgd_project = gpu_project, .psgd_back = gpu_back, .psgd_apply = gpu_apply,
    };
    return &ops;
}
