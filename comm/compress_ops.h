/* compress_ops.h: where a compressor's buffers live and where its arithmetic
 * runs (not a public header; see compress.h).
 *
 * compress.c runs the exchange (error feedback, all-gather or the two
 * all-reduces of PowerSGD, decode-and-sum) the same way for every device;
 * only these steps differ, so they sit in one table chosen once, when the
 * compressor is made:
 *   host  host memory and the C reference (compress_host.c), for the CPU
 *         device and the local and MPI backends;
 *   cuda  GPU memory (the device table's alloc, upload, download) and the
 *         CUDA kernels of compress_cuda.h on the device's compute stream
 *         (compress_gpu.c), for the NCCL and staged-MPI backends.
 * Pointers handed to the table are the compressor's own buffers or the
 * gradient bucket, all in the table's memory. */
#ifndef DL_COMPRESS_OPS_H
#define DL_COMPRESS_OPS_H

#include "compress.h"

struct dl_compress_ops {
    const char *where; /* "host" or "cuda" */
    /* zeroed memory (NULL after dl_fail); release accepts NULL */
    void *(*alloc)(dl_compressor *c, size_t bytes, const char *what);
    void (*release)(dl_compressor *c, void *p);
    void (*to_host)(dl_compressor *c, void *host, const void *src, size_t bytes);
    void (*from_host)(dl_compressor *c, void *dst, const void *host, size_t bytes);
    dl_status (*zero)(dl_compressor *c, float *x, size_t n);
    /* dst = src, `bytes` a multiple of 4, ordered with the table's other steps */
    void (*copy)(dl_compressor *c, void *dst, const void *src, size_t bytes);
    /* With codec `kind` (the compressor's, or DL_COMPRESS_NONE for a run
     * sent exact): x += residual; enc = encode(x); residual = x - decode(enc) */
    dl_status (*feedback)(dl_compressor *c, dl_compress_kind kind, float *x, float *residual,
                          size_t n, void *enc);
    /* x[0, n) = (the sum in rank order of the world shards decoded) / world;
     * shard r starts at shards + r * stride */
    dl_status (*mean)(dl_compressor *c, dl_compress_kind kind, const unsigned char *shards,
                      size_t stride, size_t n, int world, float *x);
    /* PowerSGD, one piece of a bucket's plan (a layer's rows, or a folded
     * bucket) of n values as the m x k matrix mat, rank r; called piece by
     * piece with x, residual, mat, p and q offset to the piece's own:
     * project: q orthonormalized (PyTorch's hook does so to the warm
     *          start of every step); mat = x + residual (zero past n);
     *          p = mat q
     * back:    p orthonormalized (Gram-Schmidt); q = mat^T p
     * apply:   x = (p q^T)[0, n); residual = mat - p q^T */
    dl_status (*psgd_project)(dl_compressor *c, const float *x, const float *residual, size_t n,
                              float *mat, float *q, float *p, size_t m, size_t k, int r);
    dl_status (*psgd_back)(dl_compressor *c, const float *mat, float *p, float *q, size_t m,
                           size_t k, int r);
    dl_status (*psgd_apply)(dl_compressor *c, const float *mat, const float *p, const float *q,
                            float *x, float *residual, size_t n, size_t m, size_t k, int r);
};

const dl_compress_ops *dl_compress_host_ops(void);
/* NULL where dltrain is built without CUDA (compress_nocuda.c). */
const dl_compress_ops *dl_compress_cuda_ops(void);

#endif
