/* context.h: the one per-process context: who we are in the job, which
 * device and communicator we use.  No other global mutable state. */
#ifndef DL_CONTEXT_H
#define DL_CONTEXT_H

#include <stdio.h>

#include "../comm/comm.h"
#include "../runtime/device.h"

typedef struct dl_ctx {
    int rank, world, local_rank;
    dl_device *dev;
    dl_comm *comm;
    int is_tty;   /* rank 0's stderr is a terminal: draw a live progress line */
    int verbose;  /* this rank prints (rank 0, or every rank with --log-all) */
    char placement[512]; /* which GPU and NUMA node this rank uses, and its CPU binding */
    char device_note[768]; /* "cpu (auto: no CUDA GPU: ...)", "cuda:0 (...) (...), precision tf32" */
    char comm_note[256];   /* which backend averages the gradients, and why */
    int nodes, local_size; /* nodes the job spans (0: unknown), ranks on this one */
    char layout[1024];     /* "2 nodes: h0 ranks 0,1 (local 0,1); h1 ranks 2,3 (local 0,1)" */
    char allreduce_note[160]; /* flat or hier, and why (the MPI backend's --allreduce) */
} dl_ctx;

/* Exit statuses, shared by every subcommand. */
enum { DL_EXIT_OK = 0, DL_EXIT_ERROR = 1, DL_EXIT_USAGE = 2, DL_EXIT_NUMERIC = 3,
       DL_EXIT_INTERRUPTED = 130 };

#endif
