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

/* Precision hook: 0 (the default) keeps every GEMM in strict fp32; 1 lets
 * cuBLAS use TF32 tensor cores (CUBLAS_TF32_TENSOR_OP_MATH: ~10-bit mantissa
 * products, fp32 accumulation).  The op tests assume 0.  Returns DL_OK or
 * DL_ERR_DEVICE. */
dl_status dl_device_cuda_set_tf32(dl_device *d, int enable);

/* What comm/ needs to order its own streams after the device's work: the
 * compute stream (a cudaStream_t) and the CUDA device ordinal. */
void *dl_device_cuda_stream(dl_device *d);
int dl_device_cuda_ordinal(dl_device *d);

#ifdef __cplusplus
}
#endif

#endif
