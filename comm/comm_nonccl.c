/* comm_nonccl.c: stands in for the NCCL backend in builds without NCCL. */
#include "comm.h"

dl_comm *dl_comm_nccl(dl_comm *host, dl_device *dev)
{
    (void)host, (void)dev;
    dl_fail(DL_ERR_COMM, "this dltrain was built without NCCL (set NCCL_ROOT at configure time, "
            "or use --comm mpi)");
    return NULL;
}

int dl_comm_nccl_available(void) { return 0; }
