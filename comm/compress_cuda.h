/* compress_cuda.h: the element-wise codecs (fp16, bf16, int8, onebit) as
 * CUDA kernels over GPU memory, byte for byte the encoding of the C
 * reference in compress_codec.c (tests/test_compress_cuda.c checks that on
 * a GPU).  Launched on `stream` (a cudaStream_t; NULL: the default stream);
 * errors are reported as "file:line: call: CUDA's message".
 *
 * Not yet wired into training: the compressed exchange of GPU gradients
 * needs an all-gather in the NCCL and staged-MPI backends (docs/compression.md). */
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
/* Whether a CUDA GPU can run the kernels; writes why not into why. */
int dl_codec_cuda_usable(char *why, size_t size);

#endif
