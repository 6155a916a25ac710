/* allreduce_sweep.h: the all-reduce measurement behind `dltrain bench
 * allreduce`, callable over any dl_comm (`dltrain scale` sweeps the whole
 * world with it).  Definitions as in NVIDIA's nccl-tests:
 *
 *   algbw = bytes / time
 *   busbw = algbw x 2(n-1)/n   (what each rank's link carries in a ring)
 *
 * time is the slowest rank's median over timed iterations, each started
 * after a barrier; a separate pass on exactly representable values checks
 * every element of the average.  With compression the check compares each
 * element with the mean of the ranks' decompressed values (replayed with
 * the C codecs), or for PowerSGD with rank 0's result. */
#ifndef DL_ALLREDUCE_SWEEP_H
#define DL_ALLREDUCE_SWEEP_H

#include "../comm/comm.h"
#include "../comm/compress.h"
#include "../runtime/device.h"

typedef struct dl_sweep_opts {
    long min_bytes, max_bytes; /* multiples of 4 (float32), min <= max */
    double factor;             /* next size = size x factor (> 1) */
    int iters, warmup;         /* timed and untimed iterations per size */
    dl_device *dev;            /* NULL: host memory; else the buffer lives on this device */
    dl_compress_spec compress; /* none (zero): float average; else compressed, on the host or, with dev, on the GPU */
} dl_sweep_opts;

typedef struct dl_sweep_point {
    double bytes;
    double time_us;      /* the slowest rank's median */
    double time_us_mean; /* the ranks' medians averaged */
    double algbw_gbs, busbw_gbs;
    long errors;         /* elements wrong, summed over ranks */
    double wire_bytes;   /* sent per rank (ring model, compress.h) */
} dl_sweep_point;

/* Called on every rank after each size (rank 0 prints the row as it comes). */
typedef void (*dl_sweep_point_fn)(void *user, const dl_sweep_point *p);

/* 2(n-1)/n, 0 for one rank. */
double dl_sweep_bus_factor(int ranks);

/* Collective over c: sweeps min_bytes .. max_bytes, storing up to max_points
 * points (every rank gets the same ones) and their count in *n.  Fails
 * (on every rank alike) when a rank cannot allocate its buffers or a
 * collective fails. */
dl_status dl_allreduce_sweep(dl_comm *c, const dl_sweep_opts *o, dl_sweep_point *points,
                             int max_points, int *n, dl_sweep_point_fn on_point, void *user);

#endif
