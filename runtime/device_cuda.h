/* device_cuda.h: the CUDA device table (built when CMake finds the CUDA
 * toolkit; DLTRAIN_HAVE_CUDA is then defined for every user of dlruntime).
 *
 * The CUDA table implements exactly the semantics documented in device.h and
 * is tested op by op against the CPU reference (tests/test_cuda_ops.c).
 * Memory handed out by alloc is device memory: the host reaches it only
 * through upload/download.
 *
 * Threading: the device binds GPU `gpu_index` to the calling thread
 * (cudaSetDevice) and issues all work on one stream of its own, with one
 * cuBLAS handle.  Call its ops from the thread that created it (a process
 * drives one GPU: one rank per GPU). */
#ifndef DL_DEVICE_CUDA_H
#define DL_DEVICE_CUDA_H

#include <stddef.h>

#include "device.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Open GPU `gpu_index` (an index among the visible devices).  Returns NULL and
 * writes a one-line reason into why[why_size] when there is no driver, no GPU
 * or the index is out of range ("no CUDA GPU: <CUDA error string>"); the
 * reason is also recorded with dl_fail(DL_ERR_DEVICE). */
dl_device *dl_device_cuda(int gpu_index, char *why, size_t why_size);

/* Number of visible CUDA GPUs, or -1 with a one-line reason in why (no
 * driver, or a build without CUDA: runtime/device_nocuda.c). */
int dl_device_cuda_count(char *why, size_t why_size);

/* Release the stream, the cuBLAS handle and the table itself.  Memory the
 * caller allocated through the table must be freed first. */
void dl_device_cuda_destroy(dl_device *d);

/* GEMM precision (convolutions and fully connected layers; every other op
 * is fp32 throughout).  Parameters, gradients, activations and the optimizer
 * stay fp32 in every mode:
 *   DL_CUDA_FP32  strict fp32 (the default; the op tests assume it)
 *   DL_CUDA_TF32  cuBLAS may use TF32 tensor cores (CUBLAS_TF32_TENSOR_OP_MATH:
 *                 10-bit-mantissa products, fp32 accumulation)
 *   DL_CUDA_BF16  both GEMM inputs rounded to bf16 (8-bit mantissa) in a
 *                 scratch buffer, multiplied on bf16 tensor cores with fp32
 *                 accumulation (cublasGemmEx, CUBLAS_COMPUTE_32F), fp32 output:
 *                 the GEMM numerics of PyTorch's bf16 autocast, with fp32
 *                 master weights and gradients.
 * Returns DL_OK or DL_ERR_DEVICE. */
typedef enum { DL_CUDA_FP32 = 0, DL_CUDA_TF32, DL_CUDA_BF16 } dl_cuda_precision;
dl_status dl_device_cuda_set_precision(dl_device *d, dl_cuda_precision p);
/* = set_precision(enable ? DL_CUDA_TF32 : DL_CUDA_FP32) */
dl_status dl_device_cuda_set_tf32(dl_device *d, int enable);

/* The convolution's workspace per chunk of images, in floats (0: the
 * default, 2^25).  A chunk holds at least one image.  For tests: a small
 * value makes small batches take the several-chunk path that full-size
 * models take.  Set before dl_net_finalize (it sizes the workspace). */
void dl_device_cuda_set_conv_chunk(dl_device *d, size_t floats);

/* What comm/ needs to order its own streams after the device's work: the
 * compute stream (a cudaStream_t) and the CUDA device ordinal. */
void *dl_device_cuda_stream(dl_device *d);
int dl_device_cuda_ordinal(dl_device *d);

#ifdef __cplusplus
}
#endif

#endif
