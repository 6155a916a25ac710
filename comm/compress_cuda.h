/* compress_cuda.h: the element-wise codecs (fp16, bf16, int8, onebit) as
 * CUDA kernels over GPU memory, byte for byte the encoding of the C
 * reference in compress_codec.c (tests/test_compress_cuda.c checks that on
 * a GPU).  Launched on `stream` (a cudaStream_t; NULL: the default stream);
 * errors are reported as "file:line: call: CUDA's message".
 *
 * The compressor's GPU table (compress_gpu.c) runs the compressed exchange
 * of gradients in GPU memory with these (docs/compression.md). */
#ifndef DL_COMPRESS_CUDA_H
#define DL_COMPRESS_CUDA_H

#include "compress.h"

/* out[dl_codec_bytes(kind, n)] = encode(x[0, n)); device pointers. */
dl_status dl_codec_encode_cuda(dl_compress_kind kind, const float *x, size_t n, void *out,
                               void *stream);
/* y[0, n) = decode(in). */
dl_status dl_codec_decode_cuda(dl_compress_kind kind, const void *in, size_t n, float *y,
                               void *stream);
/* Error feedback on the GPU: x += residual; enc = encode(x); residual = x - decode(enc). */
dl_status dl_codec_feedback_cuda(dl_compress_kind kind, float *x, float *residual, size_t n,
                                 void *enc, void *stream);
/* x[0, n) = the mean of `world` encoded shards, shard r at
 * shards + r * stride (dl_codec_bytes(kind, n) for shards side by side, a
 * bucket's encoded size for one run of it): decoded, added in rank order
 * from zero and multiplied by 1/world, bit for bit what the C reference
 * computes (compress.c), so every rank holds the same bits.  kind may be
 * DL_COMPRESS_NONE (plain floats, a run of onebit's sent exact) in these
 * three functions. */
dl_status dl_codec_mean_cuda(dl_compress_kind kind, const void *shards, size_t stride, size_t n,
                             int world, float *x, void *stream);

/* PowerSGD on one piece of a bucket (compress.h's plan: a layer's rows, or
 * a folded bucket) of n values as the m x k matrix mat (row-major), rank
 * r <= DL_POWERSGD_MAX_RANK, every pointer at the piece's own offset
 * (compress_psgd_cuda.cu).  The products sum in the C reference's order
 * (dl_powersgd_mul, _mul_t, _outer); Gram-Schmidt's dot products and norms
 * are double sums in a fixed tree order instead of the C loop's, so results
 * agree with the C reference to float rounding, and run to run exactly.
 *   project: q (k x r) orthonormalized; mat = x + residual (zero past n);
 *            p (m x r) = mat q
 *   back:    p orthonormalized; q (k x r) = mat^T p
 *   apply:   x = (p q^T)[0, n); residual = mat - p q^T */
dl_status dl_powersgd_project_cuda(const float *x, const float *residual, size_t n, float *mat,
                                   float *q, float *p, size_t m, size_t k, int r, void *stream);
dl_status dl_powersgd_back_cuda(const float *mat, float *p, float *q, size_t m, size_t k, int r,
                                void *stream);
dl_status dl_powersgd_apply_cuda(const float *mat, const float *p, const float *q, float *x,
                                 float *residual, size_t n, size_t m, size_t k, int r,
                                 void *stream);

#endif
