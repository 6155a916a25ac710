/* predict.h: what the pieces of `dltrain predict` share.
 *
 *   cmd_predict.c      options, inputs (model, compute time, counts), the flow
 *   predict_link.c     --link this, --allreduce-json
 *   predict_machine.c  --machine, --measured (calibration), the what-ifs
 *   predict_print.c    the tables and the JSON
 *
 * The arithmetic of one step is predict_model.c; the machine model (paths,
 * P2P or shared memory, link uses) is comm/topo/topo_cost.c. */
#ifndef DL_PREDICT_H
#define DL_PREDICT_H

#include <stdio.h>

#include "../comm/compress.h"
#include "../comm/topo/topo_cost.h"
#include "../runtime/net.h"
#include "predict_model.h"

#define MAX_COUNTS 64
#define MAX_MEASURED 16
#define MAX_WHATIFS 8
#define MIB (1024.0 * 1024.0)

typedef struct {
    char model[32], input[64], image[64], gpus[256], link[32], net[32];
    char allreduce_json[512], json[512], sysfs_root[512];
    char machine[512], measured[256], grad_dtype[8], compress[24], compress_ms[24];
    double step_ms, gpu_tflops, images_per_s, grad_mb, bucket_mb, backward_frac, alpha_us;
    double transfer_mb;
    int batch, nodes, link_share, images, no_overlap;
} predict_opts;

/* What the ring runs over, after --link, --link-share, --alpha-us, --allreduce-json. */
typedef struct {
    char name[64];       /* table name, "this", "measured" */
    char what[1280];     /* where the figure comes from */
    double link_gbps;    /* the link itself */
    double gbps;         /* per GPU, after --link-share */
    double alpha_us;
    int this_gpus;       /* --link this: GPUs found */
    int ranks;           /* --allreduce-json: ranks the sweep ran over */
} ring_link;

typedef struct {
    int gpus, nodes;
    double gbps, alpha_us;
    dl_step_model m;
    double images_per_s, speedup, efficiency;
    /* --compress: wire bytes over the fp32 all-reduce's, and the codecs'
     * compute per step (1 and 0 without, or on one GPU) */
    double wire_factor, compress_ms;
    /* with --machine: how the ring runs and what limits it */
    int hops[4];                 /* per DL_HOP_* */
    char bottleneck[256];
} predict_row;

/* The quantities --measured fits (1 = the model as it stands). */
typedef struct {
    double bw_factor;            /* effective share of the links' bandwidth */
    double backward_frac;        /* how much of the step the all-reduce can hide behind */
    double alpha_factor;         /* latency per step, relative to NCCL's constants */
    int n_points;                /* measured points, the 1-GPU one included */
    int gpus[MAX_MEASURED];
    double images_per_s[MAX_MEASURED];
    int fitted;                  /* how many of the three were fitted (0..3) */
    int sweep_ranks;             /* --allreduce-json: the sweep's ranks set the factors (0: no) */
    double sweep_gbps, model_gbps; /* its bus bandwidth, and the machine's ring at as many GPUs */
    const char *quantity;        /* what was fitted, in words ("backward share", ...) */
    double rms_log_error;
} predict_fit;

typedef struct {
    char label[48];
    dl_machine machine;
    predict_row row;
} predict_whatif;

typedef struct {
    const predict_opts *o;
    const char *model;            /* "" when --grad-mb alone */
    double params, macs;          /* 0 unknown */
    int grad_elem_bytes;          /* --grad-dtype: 4 fp32, 2 fp16/bf16 */
    double grad_bytes, bucket_bytes;
    dl_compress_spec compress;    /* --compress (none: the fp32 all-reduce) */
    /* --model's weight matrices in its flat gradient layout of layout_floats
     * (padding included), for per-layer PowerSGD; n_mats 0 with --grad-mb */
    dl_grad_matrix mats[DL_NET_MAX_LAYERS];
    int n_mats;
    size_t layout_floats;
    double compress_ms;           /* --compress-ms: given (>= 0), -1 "cpu", -2 not given */
    const char *compute_src;
    double transfer_bytes;        /* 0: not asked */
    char transfer_src[128];
    int have_step;
    ring_link link;
    dl_mnet net_store;
    const dl_mnet *net;
    int gpus_per_node;
    dl_machine *machine;          /* --machine, NULL without */
    predict_fit fit;
    predict_row rows[MAX_COUNTS];
    int n_rows;
    predict_row lanes[9];
    const dl_link *lane_links[9];
    int n_lanes;
    predict_whatif whatifs[MAX_WHATIFS];
    int n_whatifs;
} prediction;

/* predict_link.c */
const dl_link *predict_find_link(const char *opt, const char *name);
int predict_link_this(const predict_opts *o, ring_link *r);
int predict_calibrate_sweep(const char *path, ring_link *r);
/* --net: a dl_mnet name or an InfiniBand/Ethernet link of the table; 0 or exit status */
int predict_resolve_net(const char *name, dl_mnet *out);

/* predict_machine.c */
int predict_load_machine(const predict_opts *o, dl_machine *m);
int predict_parse_measured(const char *text, predict_fit *fit);
/* One row: the step at n GPUs, over the machine when there is one. */
void predict_one(const prediction *p, const dl_step_inputs *base, const dl_machine *m, int n,
                 predict_row *row);
/* Fits p->fit's free quantities to its measured points (base: the step inputs). */
int predict_fit_measured(prediction *p, const dl_step_inputs *base);
/* --machine with --allreduce-json: bandwidth and latency factors that make
 * the machine's ring at the sweep's rank count match the sweep. */
int predict_fit_sweep(prediction *p, const ring_link *sweep);
void predict_whatifs(prediction *p, const dl_step_inputs *base, int n);

/* predict_compress.c: --compress applied to one row's step inputs at n GPUs */
void predict_compress_row(const prediction *p, int n, dl_step_inputs *in, predict_row *row);
/* The source of the compression compute time, for the tables. */
const char *predict_compress_source(const prediction *p);

/* predict_print.c */
void predict_print_tables(FILE *f, const prediction *p);
void predict_print_json(FILE *f, const prediction *p);

#endif
