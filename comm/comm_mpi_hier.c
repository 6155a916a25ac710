/* comm_mpi_hier.c: node discovery and the hierarchical all-reduce.
 *
 * Horovod's hierarchical all-reduce: the ranks of one node first sum into
 * their leader over shared memory, the leaders (one per node) all-reduce the
 * sums over the network, and each leader broadcasts the result back within
 * its node.  Across a network link the data each node sends drops from
 * local_size shares to one, which is what pays when a node holds several
 * ranks and the network is the bottleneck. */
#include "comm_mpi_hier.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int gather_hosts(MPI_Comm world, int size, dl_mpi_nodes *n)
{
    char me[MPI_MAX_PROCESSOR_NAME] = "", mine[DL_HOST_CHARS] = "";
    int len = 0, rc = MPI_Get_processor_name(me, &len);
    if (rc != MPI_SUCCESS)
        return rc;
    snprintf(mine, sizeof mine, "%.*s", (int)sizeof mine - 1, me); /* names are cut to DL_HOST_CHARS */
    n->host = calloc((size_t)size, sizeof *n->host);
    if (!n->host)
        return MPI_ERR_NO_MEM;
    return MPI_Allgather(mine, DL_HOST_CHARS, MPI_CHAR, n->host, DL_HOST_CHARS, MPI_CHAR, world);
}

int dl_mpi_nodes_init(MPI_Comm world, int rank, int size, dl_mpi_nodes *n)
{
    memset(n, 0, sizeof *n);
    n->node_reduce = n->node_bcast = n->leaders = MPI_COMM_NULL;
    int rc = gather_hosts(world, size, n);
    if (rc == MPI_SUCCESS)
        rc = MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL,
                                 &n->node_reduce);
    if (rc == MPI_SUCCESS)
        rc = MPI_Comm_dup(n->node_reduce, &n->node_bcast);
    if (rc == MPI_SUCCESS)
        rc = MPI_Comm_rank(n->node_reduce, &n->local_rank);
    if (rc == MPI_SUCCESS)
        rc = MPI_Comm_size(n->node_reduce, &n->local_size);
    if (rc == MPI_SUCCESS)
        rc = MPI_Comm_split(world, n->local_rank == 0 ? 0 : MPI_UNDEFINED, rank, &n->leaders);
    if (rc == MPI_SUCCESS && n->leaders != MPI_COMM_NULL)
        rc = MPI_Comm_size(n->leaders, &n->nodes);
    if (rc == MPI_SUCCESS) /* only leaders know the node count: their node learns it */
        rc = MPI_Bcast(&n->nodes, 1, MPI_INT, 0, n->node_reduce);
    if (rc == MPI_SUCCESS)
        rc = MPI_Allreduce(&n->local_size, &n->max_local_size, 1, MPI_INT, MPI_MAX, world);
    if (rc == MPI_SUCCESS && !(n->local_of = calloc((size_t)size, sizeof *n->local_of)))
        rc = MPI_ERR_NO_MEM;
    if (rc == MPI_SUCCESS)
        rc = MPI_Allgather(&n->local_rank, 1, MPI_INT, n->local_of, 1, MPI_INT, world);
    return rc;
}

void dl_mpi_nodes_free(dl_mpi_nodes *n)
{
    MPI_Comm *comms[] = {&n->node_reduce, &n->node_bcast, &n->leaders};
    for (int i = 0; i < 3; i++)
        if (*comms[i] != MPI_COMM_NULL)
            MPI_Comm_free(comms[i]);
    free(n->host);
    free(n->local_of);
    n->host = NULL, n->local_of = NULL;
}

/* Appends "h ranks 0,1 (local 0,1)" for the ranks on host h, with the local
 * rank each of them found (from MPI_Comm_split_type), not one derived here. */
static size_t append_host(const dl_mpi_nodes *n, int world, const char *h, char *out,
                          size_t len, size_t size)
{
    len += (size_t)snprintf(out + len, size - len, "%s ranks ", h);
    for (int r = 0, k = 0; r < world && len < size; r++)
        if (strcmp(n->host[r], h) == 0)
            len += (size_t)snprintf(out + len, size - len, "%s%d", k++ ? "," : "", r);
    if (len < size)
        len += (size_t)snprintf(out + len, size - len, " (local ");
    for (int r = 0, k = 0; r < world && len < size; r++)
        if (strcmp(n->host[r], h) == 0)
            len += (size_t)snprintf(out + len, size - len, "%s%d", k++ ? "," : "", n->local_of[r]);
    if (len < size)
        len += (size_t)snprintf(out + len, size - len, ")");
    return len;
}

void dl_mpi_nodes_layout(const dl_mpi_nodes *n, int world, char *out, size_t size)
{
    size_t len = (size_t)snprintf(out, size, "%d node%s:", n->nodes, n->nodes == 1 ? "" : "s");
    for (int r = 0; r < world && len + 1 < size; r++) {
        int first = 1; /* list each host once, at its lowest rank */
        for (int q = 0; q < r && first; q++)
            first = strcmp(n->host[q], n->host[r]) != 0;
        if (first) {
            len += (size_t)snprintf(out + len, size - len, "%s ", r ? ";" : "");
            if (len < size)
                len = append_host(n, world, n->host[r], out, len, size);
        }
    }
}

int dl_mpi_nodes_hier_pays(const dl_mpi_nodes *n)
{
    return n->nodes > 1 && n->max_local_size > 1;
}

long dl_mpi_hier_seq(dl_mpi_nodes *n) { return n->issued++; }

int dl_mpi_hier_advance(dl_mpi_nodes *n, float *buf, int count, long seq, int *step,
                        MPI_Request *req, int *done)
{
    *done = 0;
    *req = MPI_REQUEST_NULL;
    if (*step == 1 && n->leaders == MPI_COMM_NULL)
        *step = 2; /* not a leader: nothing to do between reduce and broadcast */
    if (*step == 3) {
        *done = 1;
        return MPI_SUCCESS;
    }
    if (n->next_seq[*step] != seq)
        return MPI_SUCCESS; /* an earlier bucket still has to take this step */
    int rc;
    if (*step == 0)
        rc = MPI_Ireduce(n->local_rank == 0 ? MPI_IN_PLACE : buf, n->local_rank == 0 ? buf : NULL,
                         count, MPI_FLOAT, MPI_SUM, 0, n->node_reduce, req);
    else if (*step == 1)
        rc = MPI_Iallreduce(MPI_IN_PLACE, buf, count, MPI_FLOAT, MPI_SUM, n->leaders, req);
    else
        rc = MPI_Ibcast(buf, count, MPI_FLOAT, 0, n->node_bcast, req);
    if (rc == MPI_SUCCESS)
        n->next_seq[*step]++, (*step)++;
    return rc;
}
