/* compress_cuda_try.cuh: CUDA_TRY for the compression kernels' launchers:
 * a failed CUDA call returns DL_ERR_DEVICE with "file:line: call: CUDA's
 * name: its message". */
#ifndef DL_COMPRESS_CUDA_TRY_CUH
#define DL_COMPRESS_CUDA_TRY_CUH

#include <cuda_runtime.h>

#define CUDA_TRY(call)                                                                      \
    do {                                                                                    \
        cudaError_t e_ = (call);                                                            \
        if (e_ != cudaSuccess)                                                              \
            return dl_fail(DL_ERR_DEVICE, "%s:%d: %s: %s: %s", __FILE__, __LINE__, #call,   \
                           cudaGetErrorName(e_), cudaGetErrorString(e_));                   \
    } while (0)

#endif
