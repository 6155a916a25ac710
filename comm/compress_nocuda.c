/* compress_nocuda.c: a build without CUDA has no GPU table for the
 * compressor (compress_ops.h); dl_compressor_init_on says so. */
#include "compress_ops.h"

const dl_compress_ops *dl_compress_cuda_ops(void) { return NULL; }
