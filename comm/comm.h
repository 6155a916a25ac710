/* comm.h: the communication interface every backend implements.
 *
 * A backend is a table of functions over one group of ranks.  Counts are in
 * elements, never bytes, except for broadcast which moves raw bytes.  The
 * gradient all-reduce is split into start/wait so a bucket can be reduced
 * while backward is still producing the next one (see bucket.h). */
#ifndef DL_COMM_H
#define DL_COMM_H

#include <stddef.h>

#include "common.h"
#include "device.h"

typedef struct dl_comm dl_comm;
struct dl_comm {
    const char *name; /* "local", "mpi", "nccl" */
    int rank, world;
    int local_rank, local_size; /* within this node */
    int nodes;                  /* nodes the ranks span (0 where the backend does not know) */
    double timeout_s;           /* a collective that makes no progress this long aborts the job */
    int device_memory;          /* allreduce_avg_start and allgather_start take GPU memory
                                 * (nccl, staged MPI); 0: host memory */
    void *impl;

    dl_status (*broadcast)(dl_comm *c, void *buf, size_t bytes, int root);
    /* in-place sum over ranks, for metrics (loss sums, correct counts) */
    dl_status (*allreduce_sum_f64)(dl_comm *c, double *x, int n);
    /* in-place average of x[0, n) over ranks; slot (< DL_COMM_SLOTS) names the request.
     * wait stores when the reduction finished (dl_now() clock) in *done_at if not NULL. */
    dl_status (*allreduce_avg_start)(dl_comm *c, float *x, size_t n, int slot);
    dl_status (*allreduce_wait)(dl_comm *c, int slot, double *done_at);
    /* recv[r * bytes, (r + 1) * bytes) = rank r's send[0, bytes), for every
     * rank r; finished by allreduce_wait(slot).  Compressed gradients travel
     * this way (compress.h): they cannot be summed on the wire.  NULL where
     * a backend has none yet. */
    dl_status (*allgather_start)(dl_comm *c, const void *send, void *recv, size_t bytes,
                                 int slot);
    /* Optional (NULL: nothing to make ahead): makes now, at start-up, what
     * `slot` will need for an all-reduce of `bytes` (gather 0) or an
     * all-gather of `bytes` per rank (gather 1), so the first step allocates
     * nothing (the staged backend's pinned host buffers).  Call it for each
     * use a slot will have; it keeps the largest. */
    dl_status (*reserve)(dl_comm *c, int slot, size_t bytes, int gather);
    dl_status (*barrier)(dl_comm *c);
    /* ends the whole job from one rank, after printing why (a rank-local failure) */
    void (*abort)(dl_comm *c, int code);
    /* How long a collective may wait for ranks that are alive and answer
     * (one rank writing a checkpoint alone), where timeout_s still finds a
     * dead or stopped rank (0 or <= timeout_s: no longer than timeout_s).
     * Read by the backend's threads; set it with dl_comm_set_patience. */
    double patience_s;
    void (*set_patience)(dl_comm *c, double patience_s); /* NULL: the field is enough */
    /* Collective over c: ranks with the same colour >= 0 form a new group,
     * ordered by key; a rank passing a negative colour joins none and gets
     * NULL in *out.  Used by `dltrain scale` to time 1, 2, 4 .. of the ranks
     * while the rest wait.  The group is released with its own free. */
    dl_status (*split)(dl_comm *c, int color, int key, dl_comm **out);
    void (*free)(dl_comm *c);
};

#define DL_COMM_SLOTS 1024

/* The single-rank backend: every collective is the identity. */
dl_comm *dl_comm_local(void);

/* Sets c->patience_s safely while c's communication threads run. */
void dl_comm_set_patience(dl_comm *c, double patience_s);
/* Every rank says whether it failed; all learn how many did and the lowest
 * such rank.  Turns a rank-local error into a decision all ranks share. */
dl_status dl_comm_agree(dl_comm *c, int failed, int *n_failed, int *first_failed);

/* The MPI backend (NULL where dltrain was built without MPI).  Collectives
 * run on a communication thread that polls with a deadline, so a lost rank
 * makes the others abort with its number instead of hanging. */
dl_comm *dl_comm_mpi(int *argc, char ***argv);
int dl_comm_mpi_available(void);

/* How the MPI backend sums a gradient bucket: one MPI_Iallreduce over all
 * ranks (flat), or hierarchical (comm_mpi_hier.c: within each node, among one
 * leader per node, back within the node).  auto is hierarchical when the
 * ranks span several nodes and some node holds more than one of them. */
typedef enum { DL_ALLREDUCE_AUTO, DL_ALLREDUCE_FLAT, DL_ALLREDUCE_HIER } dl_allreduce_algo;

/* Chooses the algorithm on every rank (same `want` everywhere) before the
 * first all-reduce, and says in `note` what it chose and why.  A comm that
 * is not MPI's own (local, or MPI built out) is flat; asking it for hier is
 * DL_ERR_ARG. */
dl_status dl_comm_set_allreduce(dl_comm *c, dl_allreduce_algo want, char *note, size_t size);

/* Which ranks run on which host: "2 nodes: h0 ranks 0,1 (local 0,1); h1 ...";
 * empty for a comm that is not MPI's. */
void dl_comm_layout(const dl_comm *c, char *out, size_t size);

/* The NCCL backend (comm_nccl.c): gradient buckets in GPU memory are averaged
 * by NCCL on a communication stream of its own, ordered after the compute
 * stream's work by events, so the host never waits for a bucket.  Host
 * collectives (broadcast, metrics, the NCCL unique id) go through `host`
 * (mpi, or local for one rank), which the backend owns from then on: its
 * free frees `host` too.  A watchdog thread aborts the communicator when an
 * NCCL error is reported or a bucket is pending longer than timeout_s.
 * Returns NULL after dl_fail where dltrain was built without NCCL or set-up
 * fails (`host` is then still the caller's). */
dl_comm *dl_comm_nccl(dl_comm *host, dl_device *dev);
int dl_comm_nccl_available(void);

/* MPI over GPU gradients (comm_staged.c): each bucket is copied to pinned
 * host memory on a copy stream, averaged by `host` and copied back; the
 * compute stream waits on the copy back.  Owns `host` like dl_comm_nccl.
 * NULL after dl_fail in a build without CUDA. */
dl_comm *dl_comm_staged(dl_comm *host, dl_device *dev);

#endif
