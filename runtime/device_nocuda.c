/* device_nocuda.c: stands in for the CUDA device table in builds without the
 * CUDA toolkit, so launch/ asks for a GPU the same way in every build and
 * gets a clear reason instead of an #ifdef. */
#include <stdio.h>

#include "device_cuda.h"

static const char no_cuda[] = "this dltrain was built without CUDA (no CUDA toolkit found at "
                              "configure time)";

int dl_device_cuda_count(char *why, size_t why_size)
{
    if (why && why_size)
        snprintf(why, why_size, "%s", no_cuda);
    dl_fail(DL_ERR_DEVICE, "%s", no_cuda);
    return -1;
}

dl_device *dl_device_cuda(int gpu_index, char *why, size_t why_size)
{
    (void)gpu_index;
    dl_device_cuda_count(why, why_size);
    return NULL;
}

void dl_device_cuda_destroy(dl_device *d) { (void)d; }

dl_status dl_device_cuda_set_precision(dl_device *d, dl_cuda_precision p)
{
    (void)d, (void)p;
    return dl_fail(DL_ERR_DEVICE, "%s", no_cuda);
}

dl_status dl_device_cuda_set_tf32(dl_device *d, int enable)
{
    (void)d, (void)enable;
    return dl_fail(DL_ERR_DEVICE, "%s", no_cuda);
}

dl_status dl_device_cuda_set_conv(dl_device *d, dl_cuda_conv conv)
{
    (void)d, (void)conv;
    return dl_fail(DL_ERR_DEVICE, "%s", no_cuda);
}

size_t dl_device_cuda_cudnn_version(void) { return 0; }

void *dl_device_cuda_stream(dl_device *d)
{
    (void)d;
    return NULL;
}

int dl_device_cuda_ordinal(dl_device *d)
{
    (void)d;
    return -1;
}
