/* cuda_nocudnn.cu: stands in for cuda_cudnn.cu in CUDA builds without cuDNN,
 * so dl_device_cuda_set_conv() gives a clear reason instead of an #ifdef. */
#include "cuda_internal.cuh"

#include <stdio.h>

int cuda_cudnn_attach(dl_device *d, char *why, size_t why_size)
{
    (void)d;
    snprintf(why, why_size, "this dltrain was built without cuDNN (not found at configure "
                            "time; CUDNN_ROOT=DIR points CMake at one)");
    return -1;
}

void cuda_cudnn_detach(dl_device *d) { (void)d; }

size_t cuda_cudnn_version(void) { return 0; }
