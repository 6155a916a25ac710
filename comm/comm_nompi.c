/* comm_nompi.c: stands in for the MPI backend in builds without MPI. */
#include "comm.h"

dl_comm *dl_comm_mpi(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    dl_fail(DL_ERR_COMM, "dltrain was built without MPI");
    return NULL;
}

int dl_comm_mpi_available(void) { return 0; }
