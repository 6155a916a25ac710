/* scale.h: `dltrain scale` — training throughput of one model and per-rank
 * batch on groups of 1, 2, 4 .. N ranks of one job (sub-communicators made
 * by dl_comm.split; the other ranks wait), with speedup, efficiency, the
 * per-step breakdown, the analytic model's prediction and the circulating
 * claims.  cmd_scale.c runs it, scale_measure.c times one group,
 * scale_report.c prints, writes JSON and fills the HTML report. */
#ifndef DL_SCALE_H
#define DL_SCALE_H

#include "../runtime/net.h"
#include "../runtime/optim.h"
#include "allreduce_sweep.h"
#include "context.h"

#define DL_SCALE_MAX_SIZES 32
#define DL_SCALE_MAX_REPEATS 100
#define DL_SCALE_MAX_SWEEP 64
#define DL_SCALE_MAX_RANKS 4096
#define DL_SCALE_MAX_POINTS (DL_SCALE_MAX_SIZES + 8) /* sizes, then GPU pairs */

typedef struct scale_opts {
    char model[32], data[512], sizes[256], json[512], report[512];
    char device[16], precision[16], gpus[256], comm[16];
    char compress[24]; /* --compress: none, fp16, .. (compress.h) */
    char allreduce[8]; /* auto, flat, hier: the MPI all-reduce of every group */
    int batch, warmup, steps, repeats, threads, no_overlap;
    double bucket_mb, timeout_s, sweep_max_mb;
    long seed;
} scale_opts;

int dl_cmd_scale(int argc, char **argv);

/* One measured group of ranks.  Times are per step, milliseconds. */
typedef struct scale_point {
    int ranks, first_rank;   /* the group is ranks first_rank .. first_rank+ranks-1 */
    char label[160];
    int n_repeats;
    double ips[DL_SCALE_MAX_REPEATS]; /* global images/s of each repeat */
    double ips_median, ips_min, ips_max;
    double speedup, efficiency, predicted_speedup;
    double step_ms;          /* mean over repeats of the slowest rank's time */
    double forward_ms, backward_ms, compute_ms; /* compute = forward + backward */
    double comm_ms;          /* first bucket's start to last bucket's end */
    double exposed_comm_ms;  /* waited for the all-reduce after backward */
    double optimizer_ms, data_ms; /* data: 0, the batch is fixed */
} scale_point;

/* Everything one run measured and how. */
typedef struct scale_run {
    const scale_opts *o;
    dl_ctx *ctx;
    dl_net net;
    dl_sgd opt;
    int sizes[DL_SCALE_MAX_SIZES], n_sizes;
    int added_one;           /* 1 was not asked for but is measured as the baseline */
    scale_point points[DL_SCALE_MAX_POINTS];
    int n_points;
    dl_sweep_point sweep[DL_SCALE_MAX_SWEEP];
    int n_sweep;
    double link_gbps, link_alpha_us; /* fitted from the sweep; 0 = no sweep */
    int threads;
    double bucket_mb;        /* --bucket-mb, or the default for the model (bucket.h) */
    int n_gpus;              /* GPUs on this node (topology), 0 here means CPU only */
    char command[2048];
    char gpu_links[4096];    /* each GPU's PCIe link read after the runs */
} scale_run;

/* Collective over the world: the first `size` ranks form a group and time
 * the training step; the rest wait at a world barrier.  Rank 0 (always in
 * the group) fills p; other ranks' p is undefined. */
dl_status dl_scale_measure(scale_run *r, int size, scale_point *p);
/* The same for any group: ranks[0..n) of the world, ranks[0] leading; the
 * point reaches world rank 0 whoever leads, labelled with `label` if given. */
dl_status dl_scale_measure_ranks(scale_run *r, const int *ranks, int n, const char *label,
                                 scale_point *p);
/* Collective: GPU pairs whose link differs from ranks 0 and 1's (one per kind
 * of path and bottleneck; scale_subsets.h), measured and appended (rank 0). */
dl_status dl_scale_measure_pairs(scale_run *r);

/* The predicted speedup at `ranks` (scale_model.c): predict's machine model
 * over this machine's GPUs, calibrated on the sweep; CPU ranks' compute
 * stretched when their threads outnumber the cores.  0 without a sweep. */
double dl_scale_model_speedup(const scale_run *r, const scale_point *one, int ranks);
/* ranks x threads over cores, relative to one rank's (>= 1). */
double dl_scale_compute_stretch(int ranks, int threads, long cores);

/* Speedup, efficiency and predicted speedup of every point (rank 0). */
void dl_scale_derive(scale_run *r);
void dl_scale_print(FILE *f, const scale_run *r);
int dl_scale_write_json(const char *path, const scale_run *r);
int dl_scale_write_report(const char *path, const scale_run *r);

#endif
