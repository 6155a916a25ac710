/* comm_nompi.c: stands in for the MPI backend in builds without MPI. */
#include "comm.h"

#include <stdio.h>

dl_comm *dl_comm_mpi(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    dl_fail(DL_ERR_COMM, "dltrain was built without MPI");
    return NULL;
}

int dl_comm_mpi_available(void) { return 0; }

dl_status dl_comm_set_allreduce(dl_comm *c, dl_allreduce_algo want, char *note, size_t size)
{
    (void)c;
    snprintf(note, size, "flat");
    if (want == DL_ALLREDUCE_HIER)
        return dl_fail(DL_ERR_ARG, "--allreduce hier needs the MPI backend (built without MPI)");
    return DL_OK;
}

void dl_comm_layout(const dl_comm *c, char *out, size_t size)
{
    (void)c;
    if (size)
        out[0] = 0;
}
