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
    void *impl;

    dl_status (*broadcast)(dl_comm *c, void *buf, size_t bytes, int root);
    /* in-place sum over ranks, for metrics (loss sums, correct counts) */
    dl_status (*allreduce_sum_f64)(dl_comm *c, double *x, int n);
    /* in-place average of x[0, n) over ranks; slot names the request */
    dl_status (*allreduce_avg_start)(dl_comm *c, float *x, size_t n, int slot);
    dl_status (*allreduce_wait)(dl_comm *c, int slot);
    dl_status (*barrier)(dl_comm *c);
    void (*abort)(dl_comm *c, int code);
    void (*free)(dl_comm *c);
};

/* The single-rank backend: every collective is the identity. */
dl_comm *dl_comm_local(void);

#endif
