/* comm_nostaged.c: stands in for the GPU-staging MPI wrapper in builds
 * without CUDA (where no gradient lives in GPU memory). */
#include "comm.h"

dl_comm *dl_comm_staged(dl_comm *host, dl_device *dev)
{
    (void)host, (void)dev;
    dl_fail(DL_ERR_COMM, "this dltrain was built without CUDA");
    return NULL;
}
