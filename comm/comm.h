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

typedef struct dl_comm dl_comm;
struct dl_comm {
    const char *name; /* "local", "mpi", "nccl" */
    int rank, world;
    int local_rank, local_size; /* within this node */
    double timeout_s;           /* a collective that makes no progress this long aborts the job */
    void *impl;

    dl_status (*broadcast)(dl_comm *c, void *buf, size_t bytes, int root);
    /* in-place sum over ranks, for metrics (loss sums, correct counts) */
    dl_status (*allreduce_sum_f64)(dl_comm *c, double *x, int n);
    /* in-place average of x[0, n) over ranks; slot (< DL_COMM_SLOTS) names the request.
     * wait stores when the reduction finished (dl_now() clock) in *done_at if not NULL. */
    dl_status (*allreduce_avg_start)(dl_comm *c, float *x, size_t n, int slot);
    dl_status (*allreduce_wait)(dl_comm *c, int slot, double *done_at);
    dl_status (*barrier)(dl_comm *c);
    /* ends the whole job from one rank, after printing why (a rank-local failure) */
    void (*abort)(dl_comm *c, int code);
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

/* Every rank says whether it failed; all learn how many did and the lowest
 * such rank.  Turns a rank-local error into a decision all ranks share. */
dl_status dl_comm_agree(dl_comm *c, int failed, int *n_failed, int *first_failed);

/* The MPI backend (NULL where dltrain was built without MPI).  Collectives
 * run on a communication thread that polls with a deadline, so a lost rank
 * makes the others abort with its number instead of hanging. */
dl_comm *dl_comm_mpi(int *argc, char ***argv);
int dl_comm_mpi_available(void);

#endif
