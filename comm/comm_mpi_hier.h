/* comm_mpi_hier.h: which ranks share a node, and the hierarchical all-reduce
 * of the MPI backend (comm_mpi_hier.c); used only by comm_mpi.c. */
#ifndef DL_COMM_MPI_HIER_H
#define DL_COMM_MPI_HIER_H

#include <mpi.h>

#define DL_HOST_CHARS 64

/* The job's nodes as MPI sees them (MPI_Comm_split_type SHARED: the ranks
 * one launcher daemon started, i.e. one host or one network namespace of the
 * virtual cluster), and the communicators of the hierarchical all-reduce:
 * node_reduce and node_bcast span one node (two, so the reduce of one bucket
 * and the broadcast of an earlier one never interleave differently on two
 * ranks), leaders spans local rank 0 of every node (MPI_COMM_NULL elsewhere). */
typedef struct dl_mpi_nodes {
    int nodes, local_rank, local_size, max_local_size;
    char (*host)[DL_HOST_CHARS]; /* [world] each job rank's host name */
    int *local_of;               /* [world] each job rank's local rank, as it found it */
    MPI_Comm node_reduce, node_bcast, leaders;
    long next_seq[3]; /* the bucket whose turn it is at each step (issue order) */
    long issued;      /* hierarchical all-reduces started so far */
} dl_mpi_nodes;

/* Collective over world (blocking; at start-up, before the comm thread). */
int dl_mpi_nodes_init(MPI_Comm world, int rank, int size, dl_mpi_nodes *n);
void dl_mpi_nodes_free(dl_mpi_nodes *n);

/* "2 nodes: h0 ranks 0,1 (local 0,1); h1 ranks 2,3 (local 0,1)" */
void dl_mpi_nodes_layout(const dl_mpi_nodes *n, int world, char *out, size_t size);

/* Whether `auto` picks the hierarchical all-reduce: ranks span several
 * nodes and some node holds more than one of them. */
int dl_mpi_nodes_hier_pays(const dl_mpi_nodes *n);

/* One hierarchical all-reduce (sum) of buf[0, count): reduce to local rank 0
 * over shared memory, all-reduce among the leaders, broadcast in the node,
 * each step non-blocking.  *step counts the steps issued (0 before any, 3
 * when done); call advance first with *step 0 and then whenever *req has
 * completed.  Buckets take each step in the order they were started (seq,
 * from dl_mpi_hier_seq), as MPI requires of collectives on a communicator;
 * a bucket whose turn has not come keeps *req MPI_REQUEST_NULL and is
 * advanced on a later call.  Returns an MPI error code; *done when finished. */
long dl_mpi_hier_seq(dl_mpi_nodes *n);
int dl_mpi_hier_advance(dl_mpi_nodes *n, float *buf, int count, long seq, int *step,
                        MPI_Request *req, int *done);

#endif
