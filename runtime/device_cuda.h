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
 *   DL_CUDA_TF32_CONV  TF32 for convolutions (their cuBLAS GEMMs or cuDNN),
 *                 strict fp32 for the table's gemm (fully connected layers):
 *                 PyTorch's default (torch.backends.cudnn.allow_tf32 = True,
 *                 torch.backends.cuda.matmul.allow_tf32 = False), and the
 *                 launcher's default on CUDA (--precision auto).
 * Returns DL_OK or DL_ERR_DEVICE. */
typedef enum { DL_CUDA_FP32 = 0, DL_CUDA_TF32, DL_CUDA_BF16, DL_CUDA_TF32_CONV } dl_cuda_precision;
dl_status dl_device_cuda_set_precision(dl_device *d, dl_cuda_precision p);
/* = set_precision(enable ? DL_CUDA_TF32 : DL_CUDA_FP32) */
dl_status dl_device_cuda_set_tf32(dl_device *d, int enable);

/* Convolution path:
 *   DL_CUDA_CONV_GEMM   im2col + cuBLAS (cuda_conv.cu; the default, and the
 *                       reference the op tests check the other against)
 *   DL_CUDA_CONV_CUDNN  cuDNN (cuda_cudnn.cu): deterministic algorithms chosen
 *                       per shape when the network is built; falls back to
 *                       GEMM per shape where none fits the GEMM workspace,
 *                       and under DL_CUDA_BF16, which it does not implement.
 * CUDNN returns DL_ERR_DEVICE with the reason when this build has no cuDNN,
 * the library does not initialise, or the precision is bf16.  Choose before
 * building the network (its workspace size is asked then). */
typedef enum { DL_CUDA_CONV_GEMM = 0, DL_CUDA_CONV_CUDNN } dl_cuda_conv;
dl_status dl_device_cuda_set_conv(dl_device *d, dl_cuda_conv conv);
/* The cuDNN library version (e.g. 91900), 0 in builds without it. */
size_t dl_device_cuda_cudnn_version(void);

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
